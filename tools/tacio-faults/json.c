/* json.c - recursive-descent JSON reader; enough for fault records. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct p {
    const char *s;
    int depth;
};

static void ws(struct p *p)
{
    while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
        p->s++;
}

static int value(struct p *p, struct jv *v);
static void free_inner(struct jv *v);

static void put_utf8(char **o, unsigned c)
{
    if (c < 0x80) {
        *(*o)++ = (char)c;
    } else if (c < 0x800) {
        *(*o)++ = (char)(0xC0 | c >> 6);
        *(*o)++ = (char)(0x80 | (c & 0x3F));
    } else {
        *(*o)++ = (char)(0xE0 | c >> 12);
        *(*o)++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *(*o)++ = (char)(0x80 | (c & 0x3F));
    }
}

static char *string(struct p *p)
{
    if (*p->s != '"')
        return NULL;
    p->s++;
    const char *start = p->s;
    size_t n = 0;
    while (start[n] && start[n] != '"')
        n += start[n] == '\\' && start[n + 1] ? 2 : 1;
    char *out = malloc(n * 2 + 1), *o = out;
    if (!out)
        return NULL;
    while (*p->s && *p->s != '"') {
        char c = *p->s++;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        c = *p->s++;
        switch (c) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned cp = 0;
            for (int i = 0; i < 4 && *p->s; i++) {
                char h = *p->s++;
                cp = cp * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : (h | 32) - 'a' + 10);
            }
            put_utf8(&o, cp);
            break;
        }
        case 0: free(out); return NULL;
        default: *o++ = c; break;
        }
    }
    if (*p->s != '"') {
        free(out);
        return NULL;
    }
    p->s++;
    *o = 0;
    return out;
}

static int push(struct jv *v, struct jv *item, char *key)
{
    struct jv *items = realloc(v->items, (v->n + 1) * sizeof *items);
    if (!items)
        return -1;
    v->items = items;
    if (v->type == JV_OBJECT) {
        char **keys = realloc(v->keys, (v->n + 1) * sizeof *keys);
        if (!keys)
            return -1;
        v->keys = keys;
        keys[v->n] = key;
    }
    items[v->n++] = *item;
    return 0;
}

static int value(struct p *p, struct jv *v)
{
    memset(v, 0, sizeof *v);
    if (++p->depth > 64)
        return -1;
    ws(p);
    int rc = 0;
    if (*p->s == '{' || *p->s == '[') {
        char close = *p->s == '{' ? '}' : ']';
        v->type = *p->s == '{' ? JV_OBJECT : JV_ARRAY;
        p->s++;
        ws(p);
        if (*p->s == close) {
            p->s++;
        } else {
            for (;;) {
                char *key = NULL;
                ws(p);
                if (v->type == JV_OBJECT) {
                    key = string(p);
                    ws(p);
                    if (!key || *p->s != ':') {
                        free(key);
                        rc = -1;
                        break;
                    }
                    p->s++;
                }
                struct jv item;
                if (value(p, &item) != 0 || push(v, &item, key) != 0) {
                    free(key);
                    free_inner(&item);
                    rc = -1;
                    break;
                }
                ws(p);
                if (*p->s == ',') {
                    p->s++;
                    continue;
                }
                if (*p->s == close) {
                    p->s++;
                    break;
                }
                rc = -1;
                break;
            }
        }
    } else if (*p->s == '"') {
        v->type = JV_STRING;
        v->s = string(p);
        rc = v->s ? 0 : -1;
    } else if (strncmp(p->s, "true", 4) == 0 || strncmp(p->s, "false", 5) == 0) {
        v->type = JV_BOOL;
        v->num = *p->s == 't';
        p->s += *p->s == 't' ? 4 : 5;
    } else if (strncmp(p->s, "null", 4) == 0) {
        v->type = JV_NULL;
        p->s += 4;
    } else {
        char *end;
        v->type = JV_NUMBER;
        v->num = strtod(p->s, &end);
        rc = end == p->s ? -1 : 0;
        p->s = end;
    }
    p->depth--;
    return rc;
}

static void free_inner(struct jv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free_inner(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
}

void jv_free(struct jv *v)
{
    if (!v)
        return;
    free_inner(v);
    free(v);
}

struct jv *jv_parse(const char *text)
{
    struct p p = { text, 0 };
    struct jv *v = malloc(sizeof *v);
    if (!v)
        return NULL;
    if (value(&p, v) != 0) {
        free_inner(v);
        free(v);
        return NULL;
    }
    ws(&p);
    if (*p.s) {
        jv_free(v);
        return NULL;
    }
    return v;
}

const struct jv *jv_get(const struct jv *o, const char *k)
{
    if (!o || o->type != JV_OBJECT)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], k) == 0)
            return &o->items[i];
    return NULL;
}

static void emit(FILE *f, const struct jv *v)
{
    switch (v->type) {
    case JV_NULL: fputs("null", f); break;
    case JV_BOOL: fputs(v->num ? "true" : "false", f); break;
    case JV_NUMBER: fprintf(f, "%.17g", v->num); break;
    case JV_STRING: {
        fputc('"', f);
        for (const char *s = v->s; *s; s++) {
            if (*s == '"' || *s == '\\')
                fputc('\\', f);
            fputc(*s, f);
        }
        fputc('"', f);
        break;
    }
    case JV_ARRAY:
    case JV_OBJECT:
        fputc(v->type == JV_ARRAY ? '[' : '{', f);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                fputc(',', f);
            if (v->type == JV_OBJECT)
                fprintf(f, "\"%s\":", v->keys[i]);
            emit(f, &v->items[i]);
        }
        fputc(v->type == JV_ARRAY ? ']' : '}', f);
        break;
    }
}

char *jv_text(const struct jv *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    emit(f, v);
    fclose(f);
    return buf;
}
