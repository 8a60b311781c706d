/* src/http/libctx.c - the lean OpenSSL library context of src/http/libctx.h.
 *
 * Two private contexts, made once: "full" has OpenSSL's default provider
 * loaded as usual; "lean" has only tacio-lean, a provider (provider-base(7))
 * that answers every query with the default provider's own tables, except
 * five, which it narrows to what TLS can use: the decoders to the
 * SubjectPublicKeyInfo ones for keys that can sign (agreement_only), the
 * ciphers, digests, MACs and KDFs to the names libssl fetches (tls_ciphers
 * and the lists after it). Its
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
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

static OSSL_LIB_CTX *full, *lean;
static OSSL_PROVIDER *deflt;

/* What TLS can use of the operations it fetches by name. OpenSSL 3.0 builds
 * every algorithm of an operation into the context's method store the first
 * time one of them is fetched, and every public-key decode (each peer
 * certificate) copies that whole store to look for key managers: the
 * default provider's 124 ciphers, 20 digests, 17 KDFs and 9 MACs were three
 * quarters of it and half the cost of decoding a client certificate
 * (docs/http.md "Client certificates"). Any name of an algorithm may match. */
static const char *const tls_ciphers[] = {
    "AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305", "AES-128-CCM", "AES-256-CCM",
    "AES-128-CBC", "AES-256-CBC", "AES-128-CBC-HMAC-SHA1", "AES-256-CBC-HMAC-SHA1",
    "AES-128-CBC-HMAC-SHA256", "AES-256-CBC-HMAC-SHA256", "CAMELLIA-128-CBC",
    "CAMELLIA-256-CBC", "ARIA-128-GCM", "ARIA-256-GCM", "DES-EDE3-CBC", "NULL", NULL,
};
/* Handshake hashes, signature digests (certificates' too, SHA-3 included)
 * and the SHA-1 of every decoded certificate. */
static const char *const tls_digests[] = {
    "SHA1", "SHA2-224", "SHA2-256", "SHA2-384", "SHA2-512", "SHA2-512/224", "SHA2-512/256",
    "SHA3-224", "SHA3-256", "SHA3-384", "SHA3-512", "MD5", "MD5-SHA1", "SM3", NULL,
};
static const char *const tls_macs[] = { "HMAC", NULL };
static const char *const tls_kdfs[] = { "TLS1-PRF", "HKDF", "TLS13-KDF", NULL };

/* The operations answered from a table of our own, NULL-terminated. */
static struct narrowed {
    int id;
    const char *const *names; /* NULL: the decoders (see wanted) */
    OSSL_ALGORITHM *algs;
} narrowed[] = {
    { OSSL_OP_DECODER, NULL, NULL },   { OSSL_OP_CIPHER, tls_ciphers, NULL },
    { OSSL_OP_DIGEST, tls_digests, NULL }, { OSSL_OP_MAC, tls_macs, NULL },
    { OSSL_OP_KDF, tls_kdfs, NULL },
};
#define N_NARROWED (sizeof narrowed / sizeof narrowed[0])

static struct narrowed *narrowed_op(int id)
{
    for (size_t i = 0; i < N_NARROWED; i++)
        if (narrowed[i].id == id && narrowed[i].algs)
            return &narrowed[i];
    return NULL;
}

static const OSSL_ALGORITHM *lean_query(void *provctx, int id, int *no_cache)
{
    (void)provctx;
    struct narrowed *n = narrowed_op(id);
    if (n) {
        *no_cache = 0;
        return n->algs;
    }
    return OSSL_PROVIDER_query_operation(deflt, id, no_cache);
}

static void lean_unquery(void *provctx, int id, const OSSL_ALGORITHM *algs)
{
    (void)provctx;
    if (!narrowed_op(id))
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

static bool names_match(const char *names, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = names; *p;) {
        size_t n = strcspn(p, ":");
        if (n == len && !strncasecmp(p, name, n))
            return true;
        p += n;
        if (*p == ':')
            p++;
    }
    return false;
}

static bool wanted(const struct narrowed *n, const OSSL_ALGORITHM *a)
{
    if (!n->names)
        return a->property_definition &&
               strstr(a->property_definition, "structure=SubjectPublicKeyInfo") &&
               !agreement_only(a->algorithm_names);
    for (const char *const *w = n->names; *w; w++)
        if (names_match(a->algorithm_names, *w))
            return true;
    return false;
}

/* The default provider's table for n->id, cut to what is wanted. */
static bool narrow(struct narrowed *n)
{
    int no_cache = 0;
    const OSSL_ALGORITHM *all = OSSL_PROVIDER_query_operation(deflt, n->id, &no_cache);
    size_t count = 0, kept = 0;
    while (all && all[count].algorithm_names)
        count++;
    n->algs = calloc(count + 1, sizeof *n->algs);
    if (n->algs)
        for (size_t i = 0; i < count; i++)
            if (wanted(n, &all[i]))
                n->algs[kept++] = all[i];
    OSSL_PROVIDER_unquery_operation(deflt, n->id, all);
    if (kept == 0) { /* not the default provider this was written against */
        free(n->algs);
        n->algs = NULL;
    }
    return n->algs != NULL;
}

static int lean_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    for (size_t i = 0; i < N_NARROWED; i++)
        if (!narrow(&narrowed[i])) {
            for (size_t j = 0; j < i; j++) {
                free(narrowed[j].algs);
                narrowed[j].algs = NULL;
            }
            return 0;
        }
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
