/* tests/test-http-pki.c - the PKI module (src/http/pki.h) with real OpenSSL
 * and real files: every certificate kind is created in a temp dir and
 * verified with X509_verify_cert against the store it belongs to; facts
 * are compared with what the openssl command prints.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tacio-test.h"
#include "http/pki.h"

/* ---- helpers ----------------------------------------------------------------- */

static char g_dir[256];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup_dir(void)
{
    if (g_dir[0])
        nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/tacio-pki-XXXXXX", t && *t ? t : "/tmp");
    ASSERT_TRUE(mkdtemp(g_dir) != NULL);
    /* Removed by cleanup_dir() at the end of the case (the runner's child
     * leaves with _exit, so atexit would not run); a failing case leaves
     * it behind for inspection. */
    return g_dir;
}

static void path_of(char *buf, size_t size, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(buf, size, "%s/%s%s", dir, name, suffix);
    if (n < 0 || (size_t)n >= size)
        TT_FAIL("path too long: %s/%s%s", dir, name, suffix);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        TT_FAIL("cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static void assert_status(tacio_status_t got, tacio_status_t want, const char *what)
{
    if (got != want) {
        char e[256];
        TT_FAIL("%s: status 0x%08X, expected 0x%08X (openssl: %s)", what, (unsigned)got,
                (unsigned)want, tacio__pki_last_error(e, sizeof e));
    }
}

static struct tacio__pki_identity load(const char *dir, const char *name)
{
    struct tacio__pki_identity id;
    assert_status(tacio__pki_load(dir, name, &id), TACIO_SUCCESS, name);
    return id;
}

static X509_STORE *store_with(const char *dir, const char *ca_name)
{
    struct tacio__pki_identity ca = load(dir, ca_name);
    X509_STORE *st = X509_STORE_new();
    ASSERT_TRUE(st && X509_STORE_add_cert(st, ca.cert) == 1);
    tacio__pki_identity_free(&ca);
    return st;
}

/* Plain X509_verify_cert, stopping at the first error as a TLS stack does;
 * returns the X509_V_* result. */
static long plain_verify(X509_STORE *store, const struct tacio__pki_identity *id, int purpose)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    ASSERT_TRUE(ctx && X509_STORE_CTX_init(ctx, store, id->cert, id->chain) == 1);
    X509_STORE_CTX_set_purpose(ctx, purpose);
    int ok = X509_verify_cert(ctx);
    long err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    ASSERT_EQ_INT(ok == 1, err == X509_V_OK);
    return err;
}

/* Runs cmd and returns its stdout (at most size-1 bytes); fails on exit != 0. */
static void run_cmd(const char *cmd, char *out, size_t size)
{
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        TT_FAIL("'%s' failed (status %d): %s", cmd, st, out);
}

/* The value after "key=" on its own line of text (case-insensitive key), copied to buf. */
static const char *field(const char *text, const char *key, char *buf, size_t size)
{
    size_t kl = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncasecmp(l, key, kl) == 0 && l[kl] == '=') {
            const char *v = l + kl + 1, *e = strchr(v, '\n');
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= size)
                n = size - 1;
            memcpy(buf, v, n);
            buf[n] = '\0';
            return buf;
        }
    }
    TT_FAIL("no '%s=' in: %s", key, text);
}

/* ---- cases --------------------------------------------------------------------- */

TT_CASE(test_set_verdicts)
{
    const char *dir = tmpdir();
    assert_status(tacio__pki_test_set_create(dir, TACIO__PKI_EC_P256), TACIO_SUCCESS, "test set");
    X509_STORE *store = store_with(dir, TACIO__PKI_CA);

    static const struct {
        const char *name;
        unsigned flags;         /* from tacio__pki_verify (all errors) */
        long first;             /* X509_verify_cert's verdict */
    } cases[] = {
        { TACIO__PKI_CLIENT, 0, X509_V_OK },
        { TACIO__PKI_CLIENT_BIG, 0, X509_V_OK },
        { TACIO__PKI_CLIENT_EXPIRED, TACIO__PKI_V_EXPIRED, X509_V_ERR_CERT_HAS_EXPIRED },
        { TACIO__PKI_CLIENT_FUTURE, TACIO__PKI_V_NOT_YET_VALID, X509_V_ERR_CERT_NOT_YET_VALID },
        { TACIO__PKI_CLIENT_BADSIG, TACIO__PKI_V_BAD_SIGNATURE, X509_V_ERR_CERT_SIGNATURE_FAILURE },
        { TACIO__PKI_CLIENT_UNTRUSTED, TACIO__PKI_V_UNTRUSTED, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tt_context("%s", cases[i].name);
        struct tacio__pki_identity id = load(dir, cases[i].name);
        long first = -1;
        unsigned flags = tacio__pki_verify(store, id.cert, id.chain, X509_PURPOSE_SSL_CLIENT, 0, &first);
        ASSERT_EQ_U64(flags, cases[i].flags);
        ASSERT_EQ_INT(first, cases[i].first);
        long plain = plain_verify(store, &id, X509_PURPOSE_SSL_CLIENT);
        ASSERT_EQ_INT(plain, cases[i].first);
        ASSERT_EQ_U64(tacio__pki_verify_flags(plain), cases[i].flags);
        /* A client certificate is no server certificate. */
        if (cases[i].flags == 0)
            ASSERT_EQ_U64(tacio__pki_verify(store, id.cert, id.chain, X509_PURPOSE_SSL_SERVER, 0, NULL),
                          TACIO__PKI_V_OTHER);
        tacio__pki_identity_free(&id);
    }
    tt_context("%s", "");

    /* The untrusted client does verify against its own CA: it is only the
     * trust that is missing, nothing else is wrong with it. */
    X509_STORE *other = store_with(dir, TACIO__PKI_UNTRUSTED_CA);
    struct tacio__pki_identity u = load(dir, TACIO__PKI_CLIENT_UNTRUSTED);
    ASSERT_EQ_U64(tacio__pki_verify(other, u.cert, u.chain, X509_PURPOSE_SSL_CLIENT, 0, NULL), 0);
    /* Errors are collected at every depth: ten days ago the expired client
     * was valid, but the CA (made an hour ago) was not yet. */
    struct tacio__pki_identity e = load(dir, TACIO__PKI_CLIENT_EXPIRED);
    long first;
    ASSERT_EQ_U64(tacio__pki_verify(store, e.cert, e.chain, X509_PURPOSE_SSL_CLIENT,
                                    time(NULL) - 10 * 24 * 3600, &first),
                  TACIO__PKI_V_NOT_YET_VALID);
    ASSERT_EQ_INT(first, X509_V_ERR_CERT_NOT_YET_VALID);
    tacio__pki_identity_free(&e);
    tacio__pki_identity_free(&u);
    X509_STORE_free(other);

    /* The server certificate: right purpose and names. */
    struct tacio__pki_identity s = load(dir, TACIO__PKI_SERVER);
    ASSERT_EQ_INT(plain_verify(store, &s, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    ASSERT_EQ_INT(X509_check_host(s.cert, "localhost", 0, 0, NULL), 1);
    ASSERT_EQ_INT(X509_check_ip_asc(s.cert, "127.0.0.1", 0), 1);
    ASSERT_EQ_INT(X509_check_ip_asc(s.cert, "::1", 0), 1);
    ASSERT_EQ_INT(X509_check_host(s.cert, "example.com", 0, 0, NULL), 0);
    ASSERT_EQ_INT(EVP_PKEY_get_base_id(s.key), EVP_PKEY_EC);
    tacio__pki_identity_free(&s);
    X509_STORE_free(store);
    ERR_clear_error();
    cleanup_dir();
}

/* The verdict cache: keyed by the presented DER, bounded by the earliest
 * notAfter of the built chain and by the TTL, one entry per slot. */
TT_CASE(verdict_cache)
{
    struct tacio__pki_spec ca_spec = {.subject = "/CN=vcache CA", .key_type = TACIO__PKI_EC_P256,
                                      .role = TACIO__PKI_ROLE_CA, .not_before = -60,
                                      .not_after = 10 * 24 * 3600};
    struct tacio__pki_identity ca, shortlived, longlived, expired;
    assert_status(tacio__pki_issue(&ca_spec, NULL, &ca), TACIO_SUCCESS, "CA");
    struct tacio__pki_spec cs = {.subject = "/CN=vcache client", .key_type = TACIO__PKI_EC_P256,
                                 .role = TACIO__PKI_ROLE_CLIENT, .not_before = -60, .not_after = 30};
    assert_status(tacio__pki_issue(&cs, &ca, &shortlived), TACIO_SUCCESS, "short-lived client");
    cs.not_after = 5 * 24 * 3600;
    assert_status(tacio__pki_issue(&cs, &ca, &longlived), TACIO_SUCCESS, "long-lived client");
    cs.not_before = -7200;
    cs.not_after = -3600;
    assert_status(tacio__pki_issue(&cs, &ca, &expired), TACIO_SUCCESS, "expired client");

    unsigned char k_short[32], k_long[32], k_long2[32], k_with_ca[32], k_expired[32];
    STACK_OF(X509) *with_ca = sk_X509_new_null();
    ASSERT_TRUE(with_ca && sk_X509_push(with_ca, ca.cert));
    ASSERT_TRUE(tacio__pki_vcache_key(shortlived.cert, NULL, k_short));
    ASSERT_TRUE(tacio__pki_vcache_key(longlived.cert, NULL, k_long));
    ASSERT_TRUE(tacio__pki_vcache_key(longlived.cert, NULL, k_long2));
    ASSERT_TRUE(tacio__pki_vcache_key(longlived.cert, with_ca, k_with_ca));
    ASSERT_TRUE(tacio__pki_vcache_key(expired.cert, NULL, k_expired));
    ASSERT_TRUE(memcmp(k_long, k_long2, 32) == 0);      /* the same chain, the same key */
    ASSERT_TRUE(memcmp(k_long, k_short, 32) != 0);
    ASSERT_TRUE(memcmp(k_long, k_with_ca, 32) != 0);    /* the untrusted part counts */
    ASSERT_TRUE(!tacio__pki_vcache_key(NULL, NULL, k_long2));

    STACK_OF(X509) *built_short = sk_X509_new_null(), *built_long = sk_X509_new_null(),
                   *built_expired = sk_X509_new_null();
    ASSERT_TRUE(sk_X509_push(built_short, shortlived.cert) && sk_X509_push(built_short, ca.cert));
    ASSERT_TRUE(sk_X509_push(built_long, longlived.cert) && sk_X509_push(built_long, ca.cert));
    ASSERT_TRUE(sk_X509_push(built_expired, expired.cert) && sk_X509_push(built_expired, ca.cert));

    tacio__pki_vcache_t *vc = tacio__pki_vcache_new();
    ASSERT_TRUE(vc != NULL);
    time_t now = time(NULL);
    ASSERT_TRUE(!tacio__pki_vcache_hit(vc, k_long, now));
    tacio__pki_vcache_put(vc, k_long, built_long, now);
    ASSERT_TRUE(tacio__pki_vcache_hit(vc, k_long, now));
    ASSERT_TRUE(tacio__pki_vcache_hit(vc, k_long, now + TACIO__PKI_VCACHE_TTL - 1));
    ASSERT_TRUE(!tacio__pki_vcache_hit(vc, k_long, now + TACIO__PKI_VCACHE_TTL + 1));
    ASSERT_TRUE(!tacio__pki_vcache_hit(vc, k_with_ca, now)); /* another chain */
    /* The short-lived certificate's verdict ends with it, TTL or not. */
    tacio__pki_vcache_put(vc, k_short, built_short, now);
    ASSERT_TRUE(tacio__pki_vcache_hit(vc, k_short, now));
    ASSERT_TRUE(!tacio__pki_vcache_hit(vc, k_short, now + 40));
    /* An expired chain is never remembered. */
    tacio__pki_vcache_put(vc, k_expired, built_expired, now);
    ASSERT_TRUE(!tacio__pki_vcache_hit(vc, k_expired, now));
    /* A key in the same slot takes it: a miss, never a wrong hit. */
    unsigned char k_same_slot[32];
    memcpy(k_same_slot, k_long, 32);
    k_same_slot[31] ^= 1;
    ASSERT_TRUE(!tacio__pki_vcache_hit(vc, k_same_slot, now));
    tacio__pki_vcache_put(vc, k_same_slot, built_long, now);
    ASSERT_TRUE(tacio__pki_vcache_hit(vc, k_same_slot, now));
    ASSERT_TRUE(!tacio__pki_vcache_hit(vc, k_long, now));
    tacio__pki_vcache_free(vc);

    sk_X509_free(built_short);
    sk_X509_free(built_long);
    sk_X509_free(built_expired);
    sk_X509_free(with_ca);
    tacio__pki_identity_free(&expired);
    tacio__pki_identity_free(&longlived);
    tacio__pki_identity_free(&shortlived);
    tacio__pki_identity_free(&ca);
    ERR_clear_error();
}

TT_CASE(big_chain)
{
    const char *dir = tmpdir();
    assert_status(tacio__pki_test_set_create(dir, TACIO__PKI_EC_P256), TACIO_SUCCESS, "test set");
    struct tacio__pki_identity id = load(dir, TACIO__PKI_CLIENT_BIG);
    ASSERT_GE_INT(sk_X509_num(id.chain), 8);

    unsigned char *der;
    size_t der_len;
    assert_status(tacio__pki_chain_der(id.cert, id.chain, &der, &der_len), TACIO_SUCCESS, "der");
    ASSERT_GE_INT(der_len, 64 * 1024);
    /* Under OpenSSL's default 100 KiB limit for a Certificate message. */
    ASSERT_LE_INT(der_len, 100 * 1024 - 1024);

    /* The DER chain and the PEM chain file say the same. */
    struct tacio__pki_cert_info a, b;
    assert_status(tacio__pki_cert_info(der, der_len, &a), TACIO_SUCCESS, "info der");
    char path[512];
    path_of(path, sizeof path, dir, TACIO__PKI_CLIENT_BIG, "-chain.pem");
    size_t pem_len;
    char *pem = read_all(path, &pem_len);
    assert_status(tacio__pki_cert_info(pem, pem_len, &b), TACIO_SUCCESS, "info pem");
    ASSERT_EQ_U64(a.count, (size_t)sk_X509_num(id.chain) + 1);
    ASSERT_EQ_U64(a.count, b.count);
    ASSERT_EQ_U64(a.der_len, der_len);
    ASSERT_EQ_U64(b.der_len, der_len);
    ASSERT_TRUE(memcmp(a.sha256, b.sha256, 32) == 0);
    ASSERT_TRUE(strcmp(a.subject, b.subject) == 0);
    ASSERT_TRUE(strcmp(a.subject, "O=tacio tests,CN=tacio big-chain client") == 0);

    /* And the openssl command verifies it too. */
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof cmd,
             "openssl verify -purpose sslclient -CAfile '%s/ca.pem' -untrusted '%s' '%s/%s.pem' 2>&1",
             dir, path, dir, TACIO__PKI_CLIENT_BIG);
    run_cmd(cmd, out, sizeof out);
    ASSERT_TRUE(strstr(out, ": OK") != NULL);

    tacio__pki_cert_info_free(&a);
    tacio__pki_cert_info_free(&b);
    free(pem);
    free(der);
    tacio__pki_identity_free(&id);
    cleanup_dir();
}

TT_CASE(info_matches_openssl_command)
{
    const char *dir = tmpdir();
    assert_status(tacio__pki_test_set_create(dir, TACIO__PKI_EC_P256), TACIO_SUCCESS, "test set");
    static const char *const names[] = { TACIO__PKI_CA, TACIO__PKI_SERVER, TACIO__PKI_CLIENT,
                                         TACIO__PKI_CLIENT_BIG, TACIO__PKI_CLIENT_BADSIG };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        tt_context("%s", names[i]);
        char path[512], cmd[1024], out[8192], v[512];
        path_of(path, sizeof path, dir, names[i], ".pem");
        snprintf(cmd, sizeof cmd,
                 "openssl x509 -in '%s' -noout -fingerprint -sha256 -serial -subject -issuer "
                 "-nameopt RFC2253", path);
        run_cmd(cmd, out, sizeof out);

        size_t len;
        char *pem = read_all(path, &len);
        struct tacio__pki_cert_info info;
        assert_status(tacio__pki_cert_info(pem, len, &info), TACIO_SUCCESS, "info");
        if (strcmp(field(out, "sha256 Fingerprint", v, sizeof v), info.sha256_hex) != 0)
            TT_FAIL("fingerprint: openssl %s, ours %s", v, info.sha256_hex);
        if (strcmp(field(out, "serial", v, sizeof v), info.serial_hex) != 0)
            TT_FAIL("serial: openssl %s, ours %s", v, info.serial_hex);
        if (strcmp(field(out, "subject", v, sizeof v), info.subject) != 0)
            TT_FAIL("subject: openssl %s, ours %s", v, info.subject);
        if (strcmp(field(out, "issuer", v, sizeof v), info.issuer) != 0)
            TT_FAIL("issuer: openssl %s, ours %s", v, info.issuer);
        ASSERT_EQ_U64(info.count, 1);
        ASSERT_TRUE(info.not_before < time(NULL) && info.not_after > time(NULL));

        /* The same facts from DER. */
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        unsigned char *der = NULL;
        int dl = i2d_X509(x, &der);
        struct tacio__pki_cert_info d;
        assert_status(tacio__pki_cert_info(der, (size_t)dl, &d), TACIO_SUCCESS, "info der");
        ASSERT_TRUE(memcmp(d.sha256, info.sha256, 32) == 0);
        ASSERT_TRUE(strcmp(d.serial_hex, info.serial_hex) == 0);
        ASSERT_EQ_U64(d.der_len, (size_t)dl);
        /* Trailing garbage after a DER certificate is refused. */
        unsigned char *junk = malloc((size_t)dl + 3);
        memcpy(junk, der, (size_t)dl);
        memcpy(junk + dl, "xyz", 3);
        struct tacio__pki_cert_info j;
        ASSERT_EQ_STATUS(tacio__pki_cert_info(junk, (size_t)dl + 3, &j), TACIO_INVALID_PARAMETER);
        ASSERT_TRUE(j.subject == NULL);
        free(junk);
        tacio__pki_cert_info_free(&d);
        OPENSSL_free(der);
        X509_free(x);
        BIO_free(bio);
        tacio__pki_cert_info_free(&info);
        free(pem);
    }
    tt_context("%s", "");
    struct tacio__pki_cert_info j;
    ASSERT_EQ_STATUS(tacio__pki_cert_info("junk", 4, &j), TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio__pki_cert_info("-----BEGIN CERTIFICATE-----\n", 28, &j),
                     TACIO_INVALID_PARAMETER);
    ASSERT_EQ_STATUS(tacio__pki_cert_info("", 0, &j), TACIO_INVALID_PARAMETER);
    ERR_clear_error();
    cleanup_dir();
}

static char *file_bytes(const char *dir, const char *name, const char *suffix, size_t *len)
{
    char path[512];
    path_of(path, sizeof path, dir, name, suffix);
    return read_all(path, len);
}

static int same_file(const char *dir, const char *name, const char *suffix, const char *old, size_t old_len)
{
    size_t len;
    char *now = file_bytes(dir, name, suffix, &len);
    int same = len == old_len && memcmp(now, old, len) == 0;
    free(now);
    return same;
}

TT_CASE(dev_set_idempotent)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nested/pki", tmpdir());   /* parents created too */
    unsigned created = 0;
    assert_status(tacio__pki_dev_set_ensure(dir, TACIO__PKI_EC_P256, NULL, &created), TACIO_SUCCESS, "first");
    ASSERT_EQ_U64(created, TACIO__PKI_CREATED_CA | TACIO__PKI_CREATED_SERVER | TACIO__PKI_CREATED_CLIENT);

    static const char *const names[] = { TACIO__PKI_CA, TACIO__PKI_SERVER, TACIO__PKI_CLIENT };
    static const char *const suffixes[] = { ".pem", ".key", "-chain.pem" };
    char *saved[3][3];
    size_t saved_len[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            saved[i][j] = file_bytes(dir, names[i], suffixes[j], &saved_len[i][j]);
    /* The key is private. */
    char kp[600];
    struct stat sb;
    path_of(kp, sizeof kp, dir, TACIO__PKI_CLIENT, ".key");
    ASSERT_EQ_INT(stat(kp, &sb), 0);
    ASSERT_EQ_INT(sb.st_mode & 0777, 0600);
    ASSERT_EQ_INT(stat(dir, &sb), 0);
    ASSERT_EQ_INT(sb.st_mode & 0777, 0700);

    /* Second run: nothing written, every byte the same. */
    assert_status(tacio__pki_dev_set_ensure(dir, TACIO__PKI_EC_P256, NULL, &created), TACIO_SUCCESS, "second");
    ASSERT_EQ_U64(created, 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            ASSERT_TRUE(same_file(dir, names[i], suffixes[j], saved[i][j], saved_len[i][j]));

    /* A missing client is re-issued from the same CA; the rest is kept. */
    char p[600];
    path_of(p, sizeof p, dir, TACIO__PKI_CLIENT, ".pem");
    ASSERT_EQ_INT(unlink(p), 0);
    assert_status(tacio__pki_dev_set_ensure(dir, TACIO__PKI_EC_P256, NULL, &created), TACIO_SUCCESS, "third");
    ASSERT_EQ_U64(created, TACIO__PKI_CREATED_CLIENT);
    for (int j = 0; j < 3; j++) {
        ASSERT_TRUE(same_file(dir, TACIO__PKI_CA, suffixes[j], saved[0][j], saved_len[0][j]));
        ASSERT_TRUE(same_file(dir, TACIO__PKI_SERVER, suffixes[j], saved[1][j], saved_len[1][j]));
    }
    X509_STORE *store = store_with(dir, TACIO__PKI_CA);
    struct tacio__pki_identity c = load(dir, TACIO__PKI_CLIENT);
    ASSERT_EQ_INT(plain_verify(store, &c, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    tacio__pki_identity_free(&c);
    X509_STORE_free(store);

    /* A client whose key no longer matches is replaced too. */
    path_of(p, sizeof p, dir, TACIO__PKI_SERVER, ".key");
    path_of(kp, sizeof kp, dir, TACIO__PKI_CLIENT, ".key");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p, kp);
    ASSERT_EQ_INT(system(cmd), 0);
    assert_status(tacio__pki_dev_set_ensure(dir, TACIO__PKI_EC_P256, NULL, &created), TACIO_SUCCESS, "fourth");
    ASSERT_EQ_U64(created, TACIO__PKI_CREATED_CLIENT);

    /* A new CA re-issues both leaves. */
    path_of(p, sizeof p, dir, TACIO__PKI_CA, ".key");
    ASSERT_EQ_INT(unlink(p), 0);
    assert_status(tacio__pki_dev_set_ensure(dir, TACIO__PKI_EC_P256, NULL, &created), TACIO_SUCCESS, "fifth");
    ASSERT_EQ_U64(created, TACIO__PKI_CREATED_CA | TACIO__PKI_CREATED_SERVER | TACIO__PKI_CREATED_CLIENT);
    store = store_with(dir, TACIO__PKI_CA);
    struct tacio__pki_identity s = load(dir, TACIO__PKI_SERVER);
    ASSERT_EQ_INT(plain_verify(store, &s, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    tacio__pki_identity_free(&s);
    X509_STORE_free(store);

    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            free(saved[i][j]);
    /* No temporary file is left behind. */
    char ls[700], out[4096];
    snprintf(ls, sizeof ls, "ls -A '%s'", dir);
    run_cmd(ls, out, sizeof out);
    ASSERT_TRUE(strstr(out, ".tmp") == NULL);
    ERR_clear_error();
    cleanup_dir();
}

TT_CASE(dev_set_rsa_and_subject)
{
    const char *dir = tmpdir();
    unsigned created;
    assert_status(tacio__pki_dev_set_ensure(dir, TACIO__PKI_RSA_2048, "/CN=alice/O=example", &created),
                  TACIO_SUCCESS, "rsa");
    ASSERT_EQ_U64(created, 7);
    X509_STORE *store = store_with(dir, TACIO__PKI_CA);
    struct tacio__pki_identity c = load(dir, TACIO__PKI_CLIENT), s = load(dir, TACIO__PKI_SERVER);
    ASSERT_EQ_INT(EVP_PKEY_get_base_id(c.key), EVP_PKEY_RSA);
    ASSERT_EQ_INT(EVP_PKEY_get_bits(c.key), 2048);
    ASSERT_EQ_INT(plain_verify(store, &c, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    ASSERT_EQ_INT(plain_verify(store, &s, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    unsigned char *der;
    size_t dl;
    assert_status(tacio__pki_chain_der(c.cert, c.chain, &der, &dl), TACIO_SUCCESS, "der");
    struct tacio__pki_cert_info info;
    assert_status(tacio__pki_cert_info(der, dl, &info), TACIO_SUCCESS, "info");
    ASSERT_TRUE(strcmp(info.subject, "O=example,CN=alice") == 0);
    ASSERT_TRUE(strcmp(info.issuer, "O=tacio development,CN=tacio development CA") == 0);
    tacio__pki_cert_info_free(&info);
    free(der);
    tacio__pki_identity_free(&c);
    tacio__pki_identity_free(&s);
    X509_STORE_free(store);
    cleanup_dir();
}

TT_CASE(bad_arguments)
{
    struct tacio__pki_identity id;
    struct tacio__pki_spec spec = { .subject = "/CN=x", .role = TACIO__PKI_ROLE_CLIENT };
    /* A leaf needs an issuer; a subject needs the /K=V form. */
    ASSERT_EQ_STATUS(tacio__pki_issue(&spec, NULL, &id), TACIO_INVALID_PARAMETER);
    spec.role = TACIO__PKI_ROLE_CA;
    spec.subject = "CN=x";
    ASSERT_EQ_STATUS(tacio__pki_issue(&spec, NULL, &id), TACIO_UNSUCCESSFUL);
    ASSERT_TRUE(id.cert == NULL && id.key == NULL && id.chain == NULL);
    ASSERT_EQ_STATUS(tacio__pki_load("/nonexistent-dir", "ca", &id), TACIO_OBJECT_NAME_NOT_FOUND);
    ERR_clear_error();
}

TT_CASE(verify_flag_mapping)
{
    static const struct { long v; unsigned f; } map[] = {
        { X509_V_OK, 0 },
        { X509_V_ERR_CERT_HAS_EXPIRED, TACIO__PKI_V_EXPIRED },
        { X509_V_ERR_CERT_NOT_YET_VALID, TACIO__PKI_V_NOT_YET_VALID },
        { X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, TACIO__PKI_V_UNTRUSTED },
        { X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, TACIO__PKI_V_UNTRUSTED },
        { X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, TACIO__PKI_V_UNTRUSTED },
        { X509_V_ERR_CERT_UNTRUSTED, TACIO__PKI_V_UNTRUSTED },
        { X509_V_ERR_CERT_SIGNATURE_FAILURE, TACIO__PKI_V_BAD_SIGNATURE },
        { X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE, TACIO__PKI_V_BAD_SIGNATURE },
        { X509_V_ERR_CERT_REVOKED, TACIO__PKI_V_REVOKED_UNKNOWN },
        { X509_V_ERR_UNABLE_TO_GET_CRL, TACIO__PKI_V_REVOKED_UNKNOWN },
        { X509_V_ERR_OCSP_CERT_UNKNOWN, TACIO__PKI_V_REVOKED_UNKNOWN },
        { X509_V_ERR_INVALID_PURPOSE, TACIO__PKI_V_OTHER },
        { X509_V_ERR_PATH_LENGTH_EXCEEDED, TACIO__PKI_V_OTHER },
        { 100000, TACIO__PKI_V_OTHER },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        ASSERT_EQ_U64(tacio__pki_verify_flags(map[i].v), map[i].f);
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(test_set_verdicts, 60),
    TT_ENTRY(verdict_cache, 30),
    TT_ENTRY(big_chain, 60),
    TT_ENTRY(info_matches_openssl_command, 60),
    TT_ENTRY(dev_set_idempotent, 60),
    TT_ENTRY(dev_set_rsa_and_subject, 120),
    TT_ENTRY(bad_arguments, 10),
    TT_ENTRY(verify_flag_mapping, 10),
};
TT_MAIN()
