/* tests/test-http-libctx.c - the TLS listeners' OpenSSL context
 * (src/http/libctx.h): what the lean context offers, that peers'
 * certificates of every signing key type decode and verify in it, that key
 * files of each PEM form load into it and sign, that narrowing its ciphers,
 * digests, MACs and KDFs to TLS's costs TLS no cipher suite (each one
 * completes a handshake and carries data), and TACIO_TLS_LEAN=0.
 * The handshakes themselves run in it in test-http-queue (curl, s_client,
 * required and on-demand client certificates, the 64 KiB chain).
 * Each case runs in a child of its own, so the context is made afresh.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tacio-test.h"
#include "http/libctx.h"

static OSSL_LIB_CTX *lean_ctx(void)
{
    unsetenv("TACIO_TLS_LEAN");
    OSSL_LIB_CTX *lc = tacio__tls_libctx();
    if (!lc)
        TT_FAIL("no lean context (stderr says why)");
    ASSERT_TRUE(tacio__tls_libctx() == lc); /* made once */
    return lc;
}

struct seen {
    int total, spki, agreement;
    bool ec, rsa, ed25519;
};

static void count_decoder(OSSL_DECODER *d, void *arg)
{
    struct seen *s = arg;
    const char *props = OSSL_DECODER_get0_properties(d);
    s->total++;
    if (props && strstr(props, "structure=SubjectPublicKeyInfo"))
        s->spki++;
    if (OSSL_DECODER_is_a(d, "DH") || OSSL_DECODER_is_a(d, "DHX") ||
        OSSL_DECODER_is_a(d, "X25519") || OSSL_DECODER_is_a(d, "X448"))
        s->agreement++;
    s->ec |= OSSL_DECODER_is_a(d, "EC");
    s->rsa |= OSSL_DECODER_is_a(d, "RSA");
    s->ed25519 |= OSSL_DECODER_is_a(d, "ED25519");
}

TT_CASE(lean_context_offers_only_peer_key_decoders)
{
    OSSL_LIB_CTX *lc = lean_ctx();
    struct seen lean = { 0 }, full = { 0 };
    OSSL_DECODER_do_all_provided(lc, count_decoder, &lean);
    OSSL_DECODER_do_all_provided(NULL, count_decoder, &full);
    tt_note("decoders: lean %d, OpenSSL's default context %d", lean.total, full.total);
    ASSERT_TRUE(lean.total > 0);
    ASSERT_EQ_INT(lean.spki, lean.total);
    ASSERT_EQ_INT(lean.agreement, 0);
    ASSERT_TRUE(lean.ec && lean.rsa && lean.ed25519);
    ASSERT_TRUE(full.total > lean.total); /* else the context gains nothing */
    /* Everything else is the default provider's: TLS needs these. */
    const char *mds[] = { "SHA256", "SHA384", "SHA1" };
    for (size_t i = 0; i < sizeof mds / sizeof mds[0]; i++) {
        EVP_MD *md = EVP_MD_fetch(lc, mds[i], NULL);
        if (!md)
            TT_FAIL("no %s in the lean context", mds[i]);
        EVP_MD_free(md);
    }
    EVP_CIPHER *c = EVP_CIPHER_fetch(lc, "AES-128-GCM", NULL);
    ASSERT_TRUE(c != NULL);
    EVP_CIPHER_free(c);
    EVP_KDF *k = EVP_KDF_fetch(lc, "TLS13-KDF", NULL);
    ASSERT_TRUE(k != NULL);
    EVP_KDF_free(k);
}

/* A self-signed certificate for a fresh key of type alg (full context). */
static X509 *self_signed(const char *alg, const char *arg, EVP_PKEY **key_out)
{
    EVP_PKEY *k = !strcmp(alg, "RSA") ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                  : arg                 ? EVP_PKEY_Q_keygen(NULL, NULL, alg, arg)
                                        : EVP_PKEY_Q_keygen(NULL, NULL, alg);
    ASSERT_TRUE(k != NULL);
    X509 *x = X509_new();
    ASSERT_TRUE(x != NULL);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)alg, -1, -1, 0);
    X509_set_issuer_name(x, n);
    ASSERT_TRUE(X509_set_pubkey(x, k) == 1);
    bool no_digest = !strcmp(alg, "ED25519") || !strcmp(alg, "ED448");
    ASSERT_TRUE(X509_sign(x, k, no_digest ? NULL : EVP_sha256()) > 0);
    *key_out = k;
    return x;
}

TT_CASE(peer_certificates_decode_and_verify)
{
    OSSL_LIB_CTX *lc = lean_ctx();
    static const struct {
        const char *alg, *arg;
    } kinds[] = { { "EC", "P-256" }, { "EC", "P-384" }, { "RSA", NULL },
                  { "ED25519", NULL }, { "ED448", NULL } };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        tt_context("%s %s", kinds[i].alg, kinds[i].arg ? kinds[i].arg : "");
        EVP_PKEY *k;
        X509 *orig = self_signed(kinds[i].alg, kinds[i].arg, &k);
        unsigned char *der = NULL;
        int n = i2d_X509(orig, &der);
        ASSERT_TRUE(n > 0);
        /* What libssl does with a peer's certificate. */
        X509 *x = X509_new_ex(lc, NULL);
        const unsigned char *p = der;
        ASSERT_TRUE(x && d2i_X509(&x, &p, n) == x);
        EVP_PKEY *pub = X509_get0_pubkey(x);
        if (!pub)
            TT_FAIL("%s: public key not decoded in the lean context", kinds[i].alg);
        ASSERT_TRUE(EVP_PKEY_is_a(pub, kinds[i].alg));
        ASSERT_EQ_INT(EVP_PKEY_eq(pub, k), 1);
        ASSERT_EQ_INT(X509_verify(x, pub), 1);
        /* A flipped signature bit is caught there too. */
        der[n - 1] ^= 1;
        X509 *bad = X509_new_ex(lc, NULL);
        p = der;
        ASSERT_TRUE(bad && d2i_X509(&bad, &p, n) == bad);
        ASSERT_TRUE(X509_verify(bad, X509_get0_pubkey(bad)) != 1);
        ERR_clear_error();
        X509_free(bad);
        X509_free(x);
        OPENSSL_free(der);
        X509_free(orig);
        EVP_PKEY_free(k);
    }
    tt_context("%s", "");
}

static char g_path[256];

static void cleanup(void)
{
    if (g_path[0])
        unlink(g_path);
}

/* Write k to a temp file in the given PEM form; returns its path. */
static const char *write_key(EVP_PKEY *k, bool traditional)
{
    const char *t = getenv("TMPDIR");
    snprintf(g_path, sizeof g_path, "%s/tacio-key-XXXXXX", t && *t ? t : "/tmp");
    int fd = mkstemp(g_path);
    ASSERT_TRUE(fd >= 0);
    BIO *b = BIO_new_fd(fd, BIO_CLOSE);
    ASSERT_TRUE(b != NULL);
    int ok = traditional ? PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    ASSERT_EQ_INT(ok, 1);
    BIO_free(b);
    return g_path;
}

/* k signs in context lc; the signature checks with the original key. */
static void signs_for(EVP_PKEY *k, OSSL_LIB_CTX *lc, EVP_PKEY *orig)
{
    static const unsigned char msg[] = "CertificateVerify stand-in";
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    ASSERT_TRUE(m != NULL);
    ASSERT_EQ_INT(EVP_DigestSignInit_ex(m, NULL, "SHA256", lc, NULL, k, NULL), 1);
    ASSERT_EQ_INT(EVP_DigestSign(m, sig, &siglen, msg, sizeof msg), 1);
    EVP_MD_CTX_free(m);
    m = EVP_MD_CTX_new();
    ASSERT_EQ_INT(EVP_DigestVerifyInit_ex(m, NULL, "SHA256", NULL, NULL, orig, NULL), 1);
    ASSERT_EQ_INT(EVP_DigestVerify(m, sig, siglen, msg, sizeof msg), 1);
    EVP_MD_CTX_free(m);
}

TT_CASE(key_files_load_into_lean_context)
{
    OSSL_LIB_CTX *lc = lean_ctx();
    atexit(cleanup);
    EVP_PKEY *keys[] = { EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
                         EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) };
    for (size_t i = 0; i < 2; i++) {
        ASSERT_TRUE(keys[i] != NULL);
        for (int trad = 0; trad < 2; trad++) {
            tt_context("%s, %s PEM", EVP_PKEY_get0_type_name(keys[i]), trad ? "traditional" : "PKCS#8");
            EVP_PKEY *k = tacio__tls_load_key(write_key(keys[i], trad), lc);
            if (!k)
                TT_FAIL("not loaded: %s", ERR_reason_error_string(ERR_peek_last_error()));
            ASSERT_EQ_INT(EVP_PKEY_eq(k, keys[i]), 1);
            ASSERT_EQ_INT(EVP_PKEY_get_bits(k), EVP_PKEY_get_bits(keys[i]));
            signs_for(k, lc, keys[i]);
            EVP_PKEY_free(k);
            cleanup();
        }
        EVP_PKEY_free(keys[i]);
    }
    tt_context("%s", "bad files");
    ASSERT_TRUE(tacio__tls_load_key("/nonexistent/tacio/key.pem", lc) == NULL);
    ERR_clear_error();
    const char *t = getenv("TMPDIR");
    snprintf(g_path, sizeof g_path, "%s/tacio-key-XXXXXX", t && *t ? t : "/tmp");
    int fd = mkstemp(g_path);
    ASSERT_TRUE(fd >= 0);
    ASSERT_TRUE(write(fd, "-----BEGIN PRIVATE KEY-----\nnot base64!\n", 40) == 40);
    close(fd);
    ASSERT_TRUE(tacio__tls_load_key(g_path, lc) == NULL);
    ASSERT_TRUE(ERR_peek_error() != 0); /* a reason for the caller's log */
    ERR_clear_error();
    tt_context("%s", "");
}

static int g_count;

static void count_cipher(EVP_CIPHER *c, void *arg)
{
    (void)c;
    (void)arg;
    g_count++;
}

static void count_md(EVP_MD *m, void *arg)
{
    (void)m;
    (void)arg;
    g_count++;
}

/* Every suite OpenSSL has, TLS 1.3's included, at any security level. */
static const char all_suites[] = "ALL:COMPLEMENTOFALL:@SECLEVEL=0";
static const char all_tls13[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256:"
                                "TLS_AES_128_CCM_8_SHA256";

static SSL_CTX *server_ctx_all(OSSL_LIB_CTX *lc)
{
    SSL_CTX *ctx = SSL_CTX_new_ex(lc, NULL, TLS_server_method());
    ASSERT_TRUE(ctx != NULL);
    ASSERT_EQ_INT(SSL_CTX_set_cipher_list(ctx, all_suites), 1);
    ASSERT_EQ_INT(SSL_CTX_set_ciphersuites(ctx, all_tls13), 1);
    return ctx;
}

TT_CASE(narrowed_context_keeps_every_cipher_suite)
{
    OSSL_LIB_CTX *lc = lean_ctx();
    OSSL_LIB_CTX *plain = OSSL_LIB_CTX_new();
    ASSERT_TRUE(plain != NULL);
    SSL_CTX *lean_ssl = server_ctx_all(lc), *plain_ssl = server_ctx_all(plain);
    STACK_OF(SSL_CIPHER) *l = SSL_CTX_get_ciphers(lean_ssl), *d = SSL_CTX_get_ciphers(plain_ssl);
    tt_note("suites: lean %d, OpenSSL's default provider %d", sk_SSL_CIPHER_num(l),
            sk_SSL_CIPHER_num(d));
    for (int i = 0; i < sk_SSL_CIPHER_num(d); i++) {
        const char *name = SSL_CIPHER_get_name(sk_SSL_CIPHER_value(d, i));
        bool found = false;
        for (int j = 0; j < sk_SSL_CIPHER_num(l) && !found; j++)
            found = !strcmp(name, SSL_CIPHER_get_name(sk_SSL_CIPHER_value(l, j)));
        if (!found)
            TT_FAIL("suite %s is gone from the lean context", name);
    }
    ASSERT_EQ_INT(sk_SSL_CIPHER_num(l), sk_SSL_CIPHER_num(d));
    /* ... while the method store the decodes copy is smaller. */
    int lean_n, plain_n;
    g_count = 0;
    EVP_CIPHER_do_all_provided(lc, count_cipher, NULL);
    EVP_MD_do_all_provided(lc, count_md, NULL);
    lean_n = g_count;
    g_count = 0;
    EVP_CIPHER_do_all_provided(plain, count_cipher, NULL);
    EVP_MD_do_all_provided(plain, count_md, NULL);
    plain_n = g_count;
    tt_note("ciphers and digests: lean %d, default provider %d", lean_n, plain_n);
    ASSERT_TRUE(lean_n > 0 && lean_n * 3 < plain_n);
    SSL_CTX_free(lean_ssl);
    SSL_CTX_free(plain_ssl);
    OSSL_LIB_CTX_free(plain);
}

/* Drive a client and a server over a BIO pair until both are done. */
static bool handshake_and_talk(SSL *cl, SSL *sv)
{
    bool cdone = false, sdone = false;
    for (int round = 0; round < 100 && !(cdone && sdone); round++) {
        if (!cdone) {
            int r = SSL_do_handshake(cl);
            if (r == 1)
                cdone = true;
            else if (SSL_get_error(cl, r) != SSL_ERROR_WANT_READ)
                return false;
        }
        if (!sdone) {
            int r = SSL_do_handshake(sv);
            if (r == 1)
                sdone = true;
            else if (SSL_get_error(sv, r) != SSL_ERROR_WANT_READ)
                return false;
        }
    }
    char buf[16] = { 0 };
    if (!cdone || !sdone || SSL_write(cl, "ping", 4) != 4 || SSL_read(sv, buf, sizeof buf) != 4 ||
        memcmp(buf, "ping", 4) || SSL_write(sv, "pong", 4) != 4)
        return false;
    /* The client reads past the server's session tickets to the reply. */
    return SSL_read(cl, buf, sizeof buf) == 4 && !memcmp(buf, "pong", 4);
}

TT_CASE(every_suite_handshakes_in_lean_context)
{
    OSSL_LIB_CTX *lc = lean_ctx();
    atexit(cleanup);
    static const struct {
        const char *alg, *arg;
        int auth;
    } servers[] = { { "EC", "P-256", NID_auth_ecdsa }, { "RSA", NULL, NID_auth_rsa } };
    int tried = 0;
    for (size_t s = 0; s < 2; s++) {
        EVP_PKEY *k;
        X509 *cert = self_signed(servers[s].alg, servers[s].arg, &k);
        EVP_PKEY *lean_key = tacio__tls_load_key(write_key(k, false), lc);
        cleanup();
        ASSERT_TRUE(lean_key != NULL);
        SSL_CTX *sctx = server_ctx_all(lc);
        ASSERT_EQ_INT(SSL_CTX_use_certificate(sctx, cert), 1);
        ASSERT_EQ_INT(SSL_CTX_use_PrivateKey(sctx, lean_key), 1);
        SSL_CTX_set_dh_auto(sctx, 1);
        SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
        STACK_OF(SSL_CIPHER) *suites = SSL_CTX_get_ciphers(sctx);
        for (int i = 0; i < sk_SSL_CIPHER_num(suites); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(suites, i);
            int auth = SSL_CIPHER_get_auth_nid(c), kx = SSL_CIPHER_get_kx_nid(c);
            bool v13 = !strcmp(SSL_CIPHER_get_version(c), "TLSv1.3");
            if (auth != servers[s].auth && auth != NID_auth_any)
                continue;
            if (kx != NID_kx_ecdhe && kx != NID_kx_dhe && kx != NID_kx_rsa && kx != NID_kx_any)
                continue;
            tt_context("%s server, %s", servers[s].alg, SSL_CIPHER_get_name(c));
            SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
            ASSERT_TRUE(cctx != NULL);
            SSL_CTX_set_security_level(cctx, 0);
            if (v13) {
                ASSERT_EQ_INT(SSL_CTX_set_ciphersuites(cctx, SSL_CIPHER_get_name(c)), 1);
            } else {
                SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
                char list[128];
                snprintf(list, sizeof list, "%s:@SECLEVEL=0", SSL_CIPHER_get_name(c));
                ASSERT_EQ_INT(SSL_CTX_set_cipher_list(cctx, list), 1);
            }
            SSL *cl = SSL_new(cctx), *sv = SSL_new(sctx);
            BIO *cb, *sb;
            ASSERT_TRUE(cl && sv && BIO_new_bio_pair(&cb, 0, &sb, 0) == 1);
            SSL_set_bio(cl, cb, cb);
            SSL_set_bio(sv, sb, sb);
            SSL_set_connect_state(cl);
            SSL_set_accept_state(sv);
            if (!handshake_and_talk(cl, sv))
                TT_FAIL("no handshake: %s", ERR_reason_error_string(ERR_peek_last_error()));
            ASSERT_TRUE(!strcmp(SSL_CIPHER_get_name(SSL_get_current_cipher(sv)),
                                SSL_CIPHER_get_name(c)));
            tried++;
            SSL_free(cl);
            SSL_free(sv);
            SSL_CTX_free(cctx);
        }
        SSL_CTX_free(sctx);
        EVP_PKEY_free(lean_key);
        EVP_PKEY_free(k);
        X509_free(cert);
    }
    tt_context("%s", "");
    tt_note("%d suites completed a handshake", tried);
    ASSERT_GE_INT(tried, 20);
}

TT_CASE(lean_off_by_environment)
{
    setenv("TACIO_TLS_LEAN", "0", 1);
    ASSERT_TRUE(tacio__tls_libctx() == NULL);
    atexit(cleanup);
    EVP_PKEY *orig = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ASSERT_TRUE(orig != NULL);
    EVP_PKEY *k = tacio__tls_load_key(write_key(orig, false), NULL);
    ASSERT_TRUE(k != NULL);
    ASSERT_EQ_INT(EVP_PKEY_eq(k, orig), 1);
    signs_for(k, NULL, orig);
    EVP_PKEY_free(k);
    EVP_PKEY_free(orig);
}

static const tt_case_t tt_cases[] = {
    TT_ENTRY(lean_context_offers_only_peer_key_decoders, 30),
    TT_ENTRY(peer_certificates_decode_and_verify, 60),
    TT_ENTRY(key_files_load_into_lean_context, 60),
    TT_ENTRY(narrowed_context_keeps_every_cipher_suite, 30),
    TT_ENTRY(every_suite_handshakes_in_lean_context, 120),
    TT_ENTRY(lean_off_by_environment, 30),
};
TT_MAIN()
