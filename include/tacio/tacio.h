/* tacio/tacio.h - everything tacio offers, in one include. */
#ifndef TACIO_TACIO_H
#define TACIO_TACIO_H
#include <tacio/status.h>
#include <tacio/port.h>
#include <tacio/io.h>
#include <tacio/pool.h>
#include <tacio/diag.h>
#include <tacio/verify.h>
#include <tacio/faults.h>
#endif
