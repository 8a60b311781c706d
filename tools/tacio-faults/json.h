/* json.h - a small JSON reader for fault records (one line = one value). */
#ifndef TACIO_FAULTS_JSON_H
#define TACIO_FAULTS_JSON_H

#include <stddef.h>

enum jv_type { JV_NULL, JV_BOOL, JV_NUMBER, JV_STRING, JV_ARRAY, JV_OBJECT };

struct jv {
    enum jv_type type;
    double num;          /* JV_NUMBER, JV_BOOL (0/1) */
    char *s;             /* JV_STRING, decoded */
    struct jv *items;    /* JV_ARRAY, JV_OBJECT values */
    char **keys;         /* JV_OBJECT keys */
    size_t n;
};

/* Parse one JSON text. RETURN VALUE: a tree to jv_free(), NULL on error. */
struct jv *jv_parse(const char *text);
void jv_free(struct jv *v);
/* Member k of object o, or NULL. */
const struct jv *jv_get(const struct jv *o, const char *k);
/* The value as compact JSON text (malloc'd). */
char *jv_text(const struct jv *v);

#endif
