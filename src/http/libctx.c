/* src/http/libctx.c - the lean OpenSSL library context of src/http/libctx.h.
 *
 * Two private contexts, made once: "full" has OpenSSL's default provider
 * loaded as usual; "lean" has only tacio-lean, a provider (provider-base(7))
 * that answers every query with the default provider's own tables, except
 * the decoder query, where it gives the SubjectPublicKeyInfo ones for keys
 * that can sign (agreement_only). Its
 * provider context is the default provider's, so each algorithm runs
 * exactly as it would there, fetching what it needs from "full". Neither is
 * the process's default context, so an application's own provider setup
 * (FIPS, config) is left alone.
 */
#include "http/libctx.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

static OSSL_LIB_CTX *full, *lean;
static OSSL_PROVIDER *deflt;
static OSSL_ALGORITHM *spki_decoders; /* NULL-terminated, owned here */

static const OSSL_ALGORITHM *lean_query(void *provctx, int id, int *no_cache)
{
    (void)provctx;
    if (id == OSSL_OP_DECODER) {
        *no_cache = 0;
        return spki_decoders;
    }
    return OSSL_PROVIDER_query_operation(deflt, id, no_cache);
}

static void lean_unquery(void *provctx, int id, const OSSL_ALGORITHM *algs)
{
    (void)provctx;
    if (id != OSSL_OP_DECODER)
        OSSL_PROVIDER_unquery_operation(deflt, id, algs);
}

/* libssl learns the TLS groups from here. */
static int lean_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb, void *arg)
{
    (void)provctx;
    return OSSL_PROVIDER_get_capabilities(deflt, capability, cb, arg);
}

static const OSSL_PARAM *lean_gettable(void *provctx)
{
    (void)provctx;
    return OSSL_PROVIDER_gettable_params(deflt);
}

static int lean_get_params(void *provctx, OSSL_PARAM params[])
{
    (void)provctx;
    return OSSL_PROVIDER_get_params(deflt, params);
}

static const OSSL_DISPATCH lean_dispatch[] = {
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))lean_query },
    { OSSL_FUNC_PROVIDER_UNQUERY_OPERATION, (void (*)(void))lean_unquery },
    { OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))lean_capabilities },
    { OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))lean_gettable },
    { OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))lean_get_params },
    { 0, NULL },
};

/* A key that can only agree on secrets cannot sign a handshake or a
 * certificate, so no TLS peer's chain holds one (static-DH suites are gone
 * from OpenSSL); each decoder left out shortens every certificate's decode
 * by a few microseconds. A name list starts with its primary name. */
static bool agreement_only(const char *names)
{
    static const char *const kinds[] = { "DH", "DHX", "X25519", "X448" };
    size_t len = strcspn(names, ":");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strlen(kinds[i]) == len && !strncmp(names, kinds[i], len))
            return true;
    return false;
}

static int lean_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    int no_cache = 0;
    const OSSL_ALGORITHM *all = OSSL_PROVIDER_query_operation(deflt, OSSL_OP_DECODER, &no_cache);
    size_t n = 0, kept = 0;
    while (all && all[n].algorithm_names)
        n++;
    spki_decoders = calloc(n + 1, sizeof *spki_decoders);
    if (!spki_decoders)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (all[i].property_definition &&
            strstr(all[i].property_definition, "structure=SubjectPublicKeyInfo") &&
            !agreement_only(all[i].algorithm_names))
            spki_decoders[kept++] = all[i];
    OSSL_PROVIDER_unquery_operation(deflt, OSSL_OP_DECODER, all);
    if (kept == 0) /* not the default provider this was written against */
        return 0;
    *out = lean_dispatch;
    *provctx = OSSL_PROVIDER_get0_provider_ctx(deflt);
    return 1;
}

static bool make_lean(void)
{
    full = OSSL_LIB_CTX_new();
    deflt = full ? OSSL_PROVIDER_load(full, "default") : NULL;
    lean = deflt ? OSSL_LIB_CTX_new() : NULL;
    if (lean && OSSL_PROVIDER_add_builtin(lean, "tacio-lean", lean_init) &&
        OSSL_PROVIDER_load(lean, "tacio-lean"))
        return true;
    unsigned long e = ERR_peek_last_error();
    fprintf(stderr, "tacio: TLS listeners use OpenSSL's default context (the lean one failed: %s)\n",
            e ? ERR_reason_error_string(e) : "no reason given");
    ERR_clear_error();
    OSSL_LIB_CTX_free(lean);
    lean = NULL;
    /* full and deflt stay: tacio__tls_load_key may still read through them,
     * and unloading the provider a failed init saw would gain nothing. */
    return false;
}

static void setup(void)
{
    const char *e = getenv("TACIO_TLS_LEAN");
    if (e && !strcmp(e, "0"))
        return;
    make_lean();
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

OSSL_LIB_CTX *tacio__tls_libctx(void)
{
    pthread_once(&once, setup);
    return lean;
}

/* OSSL_PARAM_free leaves the private numbers in freed memory. */
static void params_clear_free(OSSL_PARAM *params)
{
    for (OSSL_PARAM *p = params; p && p->key; p++)
        if (p->data)
            OPENSSL_cleanse(p->data, p->data_size);
    OSSL_PARAM_free(params);
}

EVP_PKEY *tacio__tls_load_key(const char *path, OSSL_LIB_CTX *lc)
{
    pthread_once(&once, setup);
    BIO *b = BIO_new_file(path, "r");
    if (!b)
        return NULL;
    /* A PEM key needs the PEM and PKCS#8 decoders, which lean lacks. */
    EVP_PKEY *k = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, lc ? full : NULL, NULL);
    BIO_free(b);
    if (!k || !lc)
        return k;
    OSSL_PARAM *params = NULL;
    EVP_PKEY *moved = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(lc, EVP_PKEY_get0_type_name(k), NULL);
    if (pc && EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &params) == 1 && EVP_PKEY_fromdata_init(pc) == 1 &&
        EVP_PKEY_fromdata(pc, &moved, EVP_PKEY_KEYPAIR, params) != 1) {
        EVP_PKEY_free(moved);
        moved = NULL;
    }
    params_clear_free(params);
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(k);
    return moved;
}
