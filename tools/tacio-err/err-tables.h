/* err-tables.h - the tables tacio-err decodes with.
 *
 * The Windows tables (NTSTATUS, Win32, HRESULT, facilities) are generated
 * at build time by gen-tables.awk from mingw-w64-common's headers; the CLR
 * table (clr.c) and the message texts (messages.c) are written by hand;
 * errno and signal names come from glibc at run time. */
#ifndef TACIO_ERR_TABLES_H
#define TACIO_ERR_TABLES_H

#include <stdint.h>

struct err_entry {
    uint32_t value;
    const char *name;
};

extern const struct err_entry tacio_err_ntstatus[];
extern const unsigned tacio_err_ntstatus_count;
extern const struct err_entry tacio_err_win32[];
extern const unsigned tacio_err_win32_count;
extern const struct err_entry tacio_err_hresult[];
extern const unsigned tacio_err_hresult_count;
extern const struct err_entry tacio_err_facility[];   /* HRESULT facilities */
extern const unsigned tacio_err_facility_count;
extern const struct err_entry tacio_err_ntfacility[]; /* NTSTATUS facilities */
extern const unsigned tacio_err_ntfacility_count;

/* The CLR's HRESULTs and exception codes (clr.c). */
struct clr_entry {
    uint32_t value;
    const char *name;
    const char *message;
};
extern const struct clr_entry tacio_err_clr[];
extern const unsigned tacio_err_clr_count;

/* A short English message for a Windows name, or NULL (messages.c). */
const char *tacio_err_message(const char *name);

#endif
