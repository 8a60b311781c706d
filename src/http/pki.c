/* src/http/pki.c - development and test certificates (see pki.h). */
#include "http/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#define DAY (24L * 3600L)

/* The private enterprise number RFC 5612 reserves for documentation: the
 * padding extension must not collide with anything real. */
#define PAD_OID "1.3.6.1.4.1.32473.1.1"

/* ---- small helpers -------------------------------------------------------- */

const char *tacio__pki_last_error(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (e)
        ERR_error_string_n(e, buf, size);
    return buf;
}

void tacio__pki_identity_free(struct tacio__pki_identity *id)
{
    if (!id)
        return;
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
    sk_X509_pop_free(id->chain, X509_free);
    id->cert = NULL;
    id->key = NULL;
    id->chain = NULL;
}

static EVP_PKEY *new_key(tacio__pki_key_type_t type)
{
    return type == TACIO__PKI_RSA_2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
}

/* "/CN=a/O=b" into name. Values may not contain '/'. */
static int parse_subject(const char *s, X509_NAME *name)
{
    char buf[1024];
    if (!s || s[0] != '/' || strlen(s) >= sizeof buf)
        return 0;
    strcpy(buf, s);
    int entries = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf + 1, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok || eq[1] == '\0')
            return 0;
        *eq = '\0';
        if (!X509_NAME_add_entry_by_txt(name, tok, MBSTRING_UTF8,
                                        (const unsigned char *)(eq + 1), -1, -1, 0))
            return 0;
        entries++;
    }
    return entries > 0;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ex = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    if (!ex)
        return 0;
    int ok = X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    return ok;
}

/* A non-critical extension whose value is an OCTET STRING of n bytes:
 * verifiers skip unknown non-critical extensions, so it only adds size. */
static int add_pad_ext(X509 *x, size_t n)
{
    int ok = 0;
    unsigned char *fill = malloc(n), *der = NULL;
    ASN1_OCTET_STRING *inner = ASN1_OCTET_STRING_new(), *outer = ASN1_OCTET_STRING_new();
    ASN1_OBJECT *obj = OBJ_txt2obj(PAD_OID, 1);
    X509_EXTENSION *ex = NULL;
    if (!fill || !inner || !outer || !obj || n > INT_MAX)
        goto out;
    /* Random bytes, so that the size survives any compression. */
    if (RAND_bytes(fill, (int)n) != 1 || !ASN1_OCTET_STRING_set(inner, fill, (int)n))
        goto out;
    int dl = i2d_ASN1_OCTET_STRING(inner, &der);
    if (dl <= 0 || !ASN1_OCTET_STRING_set(outer, der, dl))
        goto out;
    ex = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, outer);
    ok = ex && X509_add_ext(x, ex, -1);
out:
    X509_EXTENSION_free(ex);
    ASN1_OBJECT_free(obj);
    ASN1_OCTET_STRING_free(inner);
    ASN1_OCTET_STRING_free(outer);
    OPENSSL_free(der);
    free(fill);
    return ok;
}

/* 127 random bits: positive, at most 16 bytes, unique in practice
 * (RFC 5280 4.1.2.2 wants at most 20 octets, positive). */
static int set_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int ok = bn && BN_rand(bn, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static int is_self_signed(X509 *x)
{
    return (X509_get_extension_flags(x) & EXFLAG_SS) != 0;
}

/* ---- issuing ---------------------------------------------------------------- */

static int build_cert(const struct tacio__pki_spec *spec, const struct tacio__pki_identity *issuer,
                      X509 *x, EVP_PKEY *key)
{
    X509_NAME *name = X509_NAME_new();
    int ok = 0;
    if (!name || !parse_subject(spec->subject, name))
        goto out;
    if (!X509_set_version(x, X509_VERSION_3) || !set_serial(x) ||
        !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : name) ||
        !X509_time_adj_ex(X509_getm_notBefore(x), 0, spec->not_before, NULL) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), 0, spec->not_after, NULL) ||
        !X509_set_pubkey(x, key))
        goto out;

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer->cert : x, x, NULL, NULL, 0);
    int ca = spec->role == TACIO__PKI_ROLE_CA;
    if (!add_ext(x, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE"))
        goto out;
    const char *ku = ca ? "critical,keyCertSign,cRLSign"
                        : (spec->key_type == TACIO__PKI_RSA_2048 &&
                           spec->role == TACIO__PKI_ROLE_SERVER)
                              ? "critical,digitalSignature,keyEncipherment"
                              : "critical,digitalSignature";
    if (!add_ext(x, &ctx, NID_key_usage, ku) ||
        !add_ext(x, &ctx, NID_subject_key_identifier, "hash"))
        goto out;
    /* A root needs no authority key id; everything else names its issuer's
     * key, which is also what makes the wrongly signed certificate find the
     * real CA and fail on the signature rather than on the lookup. */
    if (issuer && !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"))
        goto out;
    if (spec->role == TACIO__PKI_ROLE_SERVER && !add_ext(x, &ctx, NID_ext_key_usage, "serverAuth"))
        goto out;
    if (spec->role == TACIO__PKI_ROLE_CLIENT && !add_ext(x, &ctx, NID_ext_key_usage, "clientAuth"))
        goto out;
    if (spec->san && !add_ext(x, &ctx, NID_subject_alt_name, spec->san))
        goto out;
    if (spec->pad_bytes && !add_pad_ext(x, spec->pad_bytes))
        goto out;

    EVP_PKEY *signer = spec->sign_key ? spec->sign_key : issuer ? issuer->key : key;
    ok = X509_sign(x, signer, EVP_sha256()) > 0;
out:
    X509_NAME_free(name);
    return ok;
}

tacio_status_t tacio__pki_issue(const struct tacio__pki_spec *spec,
                                const struct tacio__pki_identity *issuer,
                                struct tacio__pki_identity *out)
{
    memset(out, 0, sizeof *out);
    if (!spec || !spec->subject || (!issuer && spec->role != TACIO__PKI_ROLE_CA) ||
        (issuer && (!issuer->cert || !issuer->key)))
        return TACIO_INVALID_PARAMETER;

    out->key = new_key(spec->key_type);
    out->cert = X509_new();
    out->chain = sk_X509_new_null();
    if (!out->key || !out->cert || !out->chain || !build_cert(spec, issuer, out->cert, out->key))
        goto fail;
    if (issuer && !is_self_signed(issuer->cert)) {
        if (!X509_up_ref(issuer->cert) || !sk_X509_push(out->chain, issuer->cert))
            goto fail;
        for (int i = 0; issuer->chain && i < sk_X509_num(issuer->chain); i++) {
            X509 *c = sk_X509_value(issuer->chain, i);
            if (!X509_up_ref(c) || !sk_X509_push(out->chain, c))
                goto fail;
        }
    }
    return TACIO_SUCCESS;
fail:
    tacio__pki_identity_free(out);
    return TACIO_UNSUCCESSFUL;
}

/* ---- files ------------------------------------------------------------------ */

static int join(char *buf, size_t size, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(buf, size, "%s/%s%s", dir, name, suffix);
    return n > 0 && (size_t)n < size;
}

static tacio_status_t write_atomic(const char *dir, const char *name, const char *suffix,
                                   BIO *mem, mode_t mode)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    char *data;
    long len = BIO_get_mem_data(mem, &data);
    if (len < 0 || !join(path, sizeof path, dir, name, suffix) ||
        snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return TACIO_INVALID_PARAMETER;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return tacio_status_from_errno(errno);
    for (long off = 0; off < len;) {
        ssize_t w = write(fd, data + off, (size_t)(len - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return tacio_status_from_errno(e);
        }
        off += w;
    }
    /* fsync before rename: after a crash the name points at a whole file. */
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return tacio_status_from_errno(e);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tacio_status_from_errno(e);
    }
    return TACIO_SUCCESS;
}

tacio_status_t tacio__pki_write(const struct tacio__pki_identity *id, const char *dir,
                                const char *name)
{
    if (!id || !id->cert || !id->key || !dir || !name)
        return TACIO_INVALID_PARAMETER;
    BIO *cert = BIO_new(BIO_s_mem()), *key = BIO_new(BIO_s_mem()), *chain = BIO_new(BIO_s_mem());
    tacio_status_t st = TACIO_UNSUCCESSFUL;
    if (!cert || !key || !chain || !PEM_write_bio_X509(cert, id->cert) ||
        !PEM_write_bio_PrivateKey(key, id->key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509(chain, id->cert))
        goto out;
    for (int i = 0; id->chain && i < sk_X509_num(id->chain); i++)
        if (!PEM_write_bio_X509(chain, sk_X509_value(id->chain, i)))
            goto out;
    /* Key first: a reader that finds NAME.pem finds its key too. */
    if ((st = write_atomic(dir, name, ".key", key, 0600)) != TACIO_SUCCESS ||
        (st = write_atomic(dir, name, ".pem", cert, 0644)) != TACIO_SUCCESS ||
        (st = write_atomic(dir, name, "-chain.pem", chain, 0644)) != TACIO_SUCCESS)
        goto out;
out:
    BIO_free(cert);
    BIO_free(key);
    BIO_free(chain);
    return st;
}

static BIO *open_read(const char *dir, const char *name, const char *suffix, tacio_status_t *st)
{
    char path[PATH_MAX];
    if (!join(path, sizeof path, dir, name, suffix)) {
        *st = TACIO_INVALID_PARAMETER;
        return NULL;
    }
    FILE *f = fopen(path, "re");
    if (!f) {
        *st = errno == ENOENT ? TACIO_OBJECT_NAME_NOT_FOUND : tacio_status_from_errno(errno);
        return NULL;
    }
    BIO *b = BIO_new_fp(f, BIO_CLOSE);
    if (!b) {
        fclose(f);
        *st = TACIO_NO_MEMORY;
    }
    return b;
}

tacio_status_t tacio__pki_load(const char *dir, const char *name, struct tacio__pki_identity *out)
{
    tacio_status_t st = TACIO_UNSUCCESSFUL;
    memset(out, 0, sizeof *out);
    BIO *b = open_read(dir, name, ".pem", &st);
    if (!b)
        return st;
    out->cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!(b = open_read(dir, name, ".key", &st)))
        goto fail;
    out->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    st = TACIO_UNSUCCESSFUL;
    if (!out->cert || !out->key || X509_check_private_key(out->cert, out->key) != 1)
        goto fail;
    if (!(out->chain = sk_X509_new_null()))
        goto fail;
    tacio_status_t cst;
    if ((b = open_read(dir, name, "-chain.pem", &cst))) {
        X509 *c;
        int first = 1;
        while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
            /* The chain file starts with the certificate itself. */
            if (first) {
                first = 0;
                X509_free(c);
                continue;
            }
            if (!sk_X509_push(out->chain, c)) {
                X509_free(c);
                BIO_free(b);
                goto fail;
            }
        }
        BIO_free(b);
    }
    ERR_clear_error();   /* the end of a PEM file is reported as an error */
    return TACIO_SUCCESS;
fail:
    tacio__pki_identity_free(out);
    return st;
}

static tacio_status_t mkdir_p(const char *dir)
{
    char buf[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf)
        return TACIO_INVALID_PARAMETER;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return tacio_status_from_errno(errno);
        buf[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return tacio_status_from_errno(errno);
    return S_ISDIR(sb.st_mode) ? TACIO_SUCCESS : TACIO_NOT_A_DIRECTORY;
}

/* ---- the sets ----------------------------------------------------------------- */

static const char DEFAULT_CLIENT[] = "/CN=tacio client/O=tacio development";

static tacio_status_t issue_write(const struct tacio__pki_spec *spec,
                                  const struct tacio__pki_identity *issuer, const char *dir,
                                  const char *name, struct tacio__pki_identity *keep)
{
    struct tacio__pki_identity id;
    tacio_status_t st = tacio__pki_issue(spec, issuer, &id);
    if (st != TACIO_SUCCESS)
        return st;
    st = tacio__pki_write(&id, dir, name);
    if (st == TACIO_SUCCESS && keep)
        *keep = id;
    else
        tacio__pki_identity_free(&id);
    return st;
}

/* An existing leaf is kept only if it still belongs to ca: issued by it
 * (names, key ids) and signed by its key. */
static int leaf_ok(const char *dir, const char *name, const struct tacio__pki_identity *ca)
{
    struct tacio__pki_identity id;
    if (tacio__pki_load(dir, name, &id) != TACIO_SUCCESS)
        return 0;
    EVP_PKEY *pub = X509_get0_pubkey(ca->cert);
    int ok = X509_check_issued(ca->cert, id.cert) == X509_V_OK && pub &&
             X509_verify(id.cert, pub) == 1;
    tacio__pki_identity_free(&id);
    ERR_clear_error();
    return ok;
}

static tacio_status_t ensure(const char *dir, tacio__pki_key_type_t type, const char *client_subject,
                             unsigned *created, struct tacio__pki_identity *ca)
{
    unsigned made = 0;
    tacio_status_t st = mkdir_p(dir);
    if (st != TACIO_SUCCESS)
        return st;
    if (tacio__pki_load(dir, TACIO__PKI_CA, ca) != TACIO_SUCCESS) {
        ERR_clear_error();
        struct tacio__pki_spec s = {
            .subject = "/CN=tacio development CA/O=tacio development",
            .key_type = type, .role = TACIO__PKI_ROLE_CA,
            .not_before = -3600, .not_after = 3650 * DAY,
        };
        if ((st = issue_write(&s, NULL, dir, TACIO__PKI_CA, ca)) != TACIO_SUCCESS)
            return st;
        made |= TACIO__PKI_CREATED_CA;
    }
    /* not_before an hour back: a client whose clock is a little behind
     * must not see "not yet valid" on a fresh set. */
    struct tacio__pki_spec server = {
        .subject = "/CN=localhost/O=tacio development", .key_type = type,
        .role = TACIO__PKI_ROLE_SERVER, .not_before = -3600, .not_after = 730 * DAY,
        .san = "DNS:localhost,IP:127.0.0.1,IP:::1",
    };
    struct tacio__pki_spec client = {
        .subject = client_subject ? client_subject : DEFAULT_CLIENT, .key_type = type,
        .role = TACIO__PKI_ROLE_CLIENT, .not_before = -3600, .not_after = 730 * DAY,
    };
    if ((made & TACIO__PKI_CREATED_CA) || !leaf_ok(dir, TACIO__PKI_SERVER, ca)) {
        if ((st = issue_write(&server, ca, dir, TACIO__PKI_SERVER, NULL)) != TACIO_SUCCESS)
            goto fail;
        made |= TACIO__PKI_CREATED_SERVER;
    }
    if ((made & TACIO__PKI_CREATED_CA) || !leaf_ok(dir, TACIO__PKI_CLIENT, ca)) {
        if ((st = issue_write(&client, ca, dir, TACIO__PKI_CLIENT, NULL)) != TACIO_SUCCESS)
            goto fail;
        made |= TACIO__PKI_CREATED_CLIENT;
    }
    if (created)
        *created = made;
    return TACIO_SUCCESS;
fail:
    tacio__pki_identity_free(ca);
    return st;
}

tacio_status_t tacio__pki_dev_set_ensure(const char *dir, tacio__pki_key_type_t type,
                                         const char *client_subject, unsigned *created)
{
    struct tacio__pki_identity ca;
    if (created)
        *created = 0;
    if (!dir)
        return TACIO_INVALID_PARAMETER;
    tacio_status_t st = ensure(dir, type, client_subject, created, &ca);
    if (st == TACIO_SUCCESS)
        tacio__pki_identity_free(&ca);
    return st;
}

/* The big chain: 8 intermediates of about 8 KiB each plus the leaf make
 * about 72 KiB of DER, over the 64 KiB the front end must carry and under
 * OpenSSL's default 100 KiB certificate-message limit (max_cert_list). */
#define BIG_INTERMEDIATES 8
#define BIG_PAD 8192

static tacio_status_t make_big(const char *dir, tacio__pki_key_type_t type,
                               const struct tacio__pki_identity *ca)
{
    struct tacio__pki_identity cur = { 0 }, next;
    tacio_status_t st = TACIO_SUCCESS;
    const struct tacio__pki_identity *issuer = ca;
    for (int i = 1; i <= BIG_INTERMEDIATES; i++) {
        char subject[64];
        snprintf(subject, sizeof subject, "/CN=tacio intermediate %d/O=tacio tests", i);
        struct tacio__pki_spec s = {
            .subject = subject, .key_type = TACIO__PKI_EC_P256, .role = TACIO__PKI_ROLE_CA,
            .not_before = -3600, .not_after = 730 * DAY, .pad_bytes = BIG_PAD,
        };
        if ((st = tacio__pki_issue(&s, issuer, &next)) != TACIO_SUCCESS)
            goto out;
        tacio__pki_identity_free(&cur);
        cur = next;
        issuer = &cur;
    }
    struct tacio__pki_spec leaf = {
        .subject = "/CN=tacio big-chain client/O=tacio tests", .key_type = type,
        .role = TACIO__PKI_ROLE_CLIENT, .not_before = -3600, .not_after = 730 * DAY,
        .pad_bytes = BIG_PAD / 2,
    };
    st = issue_write(&leaf, issuer, dir, TACIO__PKI_CLIENT_BIG, NULL);
out:
    tacio__pki_identity_free(&cur);
    return st;
}

tacio_status_t tacio__pki_test_set_create(const char *dir, tacio__pki_key_type_t type)
{
    struct tacio__pki_identity ca, other = { 0 };
    EVP_PKEY *wrong = NULL;
    if (!dir)
        return TACIO_INVALID_PARAMETER;
    tacio_status_t st = ensure(dir, type, NULL, NULL, &ca);
    if (st != TACIO_SUCCESS)
        return st;

    struct tacio__pki_spec c = {
        .key_type = type, .role = TACIO__PKI_ROLE_CLIENT,
    };
    c.subject = "/CN=tacio expired client/O=tacio tests";
    c.not_before = -30 * DAY;
    c.not_after = -DAY;
    if ((st = issue_write(&c, &ca, dir, TACIO__PKI_CLIENT_EXPIRED, NULL)) != TACIO_SUCCESS)
        goto out;
    c.subject = "/CN=tacio future client/O=tacio tests";
    c.not_before = DAY;
    c.not_after = 30 * DAY;
    if ((st = issue_write(&c, &ca, dir, TACIO__PKI_CLIENT_FUTURE, NULL)) != TACIO_SUCCESS)
        goto out;

    st = TACIO_UNSUCCESSFUL;
    if (!(wrong = new_key(type)))
        goto out;
    c.subject = "/CN=tacio wrongly signed client/O=tacio tests";
    c.not_before = -3600;
    c.not_after = 730 * DAY;
    c.sign_key = wrong;
    if ((st = issue_write(&c, &ca, dir, TACIO__PKI_CLIENT_BADSIG, NULL)) != TACIO_SUCCESS)
        goto out;
    c.sign_key = NULL;

    struct tacio__pki_spec oca = {
        .subject = "/CN=tacio untrusted CA/O=tacio tests", .key_type = type,
        .role = TACIO__PKI_ROLE_CA, .not_before = -3600, .not_after = 3650 * DAY,
    };
    if ((st = issue_write(&oca, NULL, dir, TACIO__PKI_UNTRUSTED_CA, &other)) != TACIO_SUCCESS)
        goto out;
    c.subject = "/CN=tacio untrusted client/O=tacio tests";
    if ((st = issue_write(&c, &other, dir, TACIO__PKI_CLIENT_UNTRUSTED, NULL)) != TACIO_SUCCESS)
        goto out;

    st = make_big(dir, type, &ca);
out:
    EVP_PKEY_free(wrong);
    tacio__pki_identity_free(&other);
    tacio__pki_identity_free(&ca);
    return st;
}

/* ---- certificate facts ----------------------------------------------------------- */

static char *name_string(const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *s = NULL, *data;
    if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        long n = BIO_get_mem_data(b, &data);
        if (n >= 0 && (s = malloc((size_t)n + 1))) {
            memcpy(s, data, (size_t)n);
            s[n] = '\0';
        }
    }
    BIO_free(b);
    return s;
}

static char *hex(const unsigned char *p, size_t n, int colons, int negative)
{
    static const char digits[] = "0123456789ABCDEF";
    char *s = malloc(n * 3 + 4), *d = s;
    if (!s)
        return NULL;
    if (negative)
        *d++ = '-';
    if (n == 0) {
        /* openssl prints a zero serial as "00" */
        *d++ = '0';
        *d++ = '0';
    }
    for (size_t i = 0; i < n; i++) {
        if (colons && i)
            *d++ = ':';
        *d++ = digits[p[i] >> 4];
        *d++ = digits[p[i] & 15];
    }
    *d = '\0';
    return s;
}

static time_t asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return (time_t)-1;
    return timegm(&tm);
}

/* All certificates of data, PEM or concatenated DER; NULL if there is not
 * at least one, or if anything else is left over. */
static STACK_OF(X509) *read_chain(const void *data, size_t len)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    const unsigned char *p = data;
    if (!sk || len == 0 || len > INT_MAX)
        goto fail;
    size_t lead = 0;
    while (lead < len && (p[lead] == ' ' || p[lead] == '\t' || p[lead] == '\r' || p[lead] == '\n'))
        lead++;
    if (len - lead >= 10 && memcmp(p + lead, "-----BEGIN", 10) == 0) {
        BIO *b = BIO_new_mem_buf(data, (int)len);
        X509 *c;
        if (!b)
            goto fail;
        while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL)))
            if (!sk_X509_push(sk, c)) {
                X509_free(c);
                BIO_free(b);
                goto fail;
            }
        BIO_free(b);
        ERR_clear_error();   /* end of input is reported as an error */
    } else {
        const unsigned char *end = p + len;
        while (p < end) {
            X509 *c = d2i_X509(NULL, &p, end - p);
            if (!c || !sk_X509_push(sk, c)) {
                X509_free(c);
                goto fail;
            }
        }
    }
    if (sk_X509_num(sk) == 0)
        goto fail;
    return sk;
fail:
    sk_X509_pop_free(sk, X509_free);
    return NULL;
}

tacio_status_t tacio__pki_cert_info(const void *data, size_t len, struct tacio__pki_cert_info *out)
{
    memset(out, 0, sizeof *out);
    if (!data)
        return TACIO_INVALID_PARAMETER;
    STACK_OF(X509) *sk = read_chain(data, len);
    if (!sk) {
        ERR_clear_error();
        return TACIO_INVALID_PARAMETER;
    }
    X509 *leaf = sk_X509_value(sk, 0);
    const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
    unsigned mdlen = 0;
    tacio_status_t st = TACIO_NO_MEMORY;

    out->subject = name_string(X509_get_subject_name(leaf));
    out->issuer = name_string(X509_get_issuer_name(leaf));
    out->serial_hex = hex(ASN1_STRING_get0_data(serial), (size_t)ASN1_STRING_length(serial), 0,
                          ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER);
    if (!out->subject || !out->issuer || !out->serial_hex)
        goto out;
    st = TACIO_UNSUCCESSFUL;
    if (!X509_digest(leaf, EVP_sha256(), out->sha256, &mdlen) || mdlen != sizeof out->sha256)
        goto out;
    char *fp = hex(out->sha256, sizeof out->sha256, 1, 0);
    if (!fp)
        goto out;
    memcpy(out->sha256_hex, fp, sizeof out->sha256_hex);
    free(fp);
    out->not_before = asn1_time(X509_get0_notBefore(leaf));
    out->not_after = asn1_time(X509_get0_notAfter(leaf));
    out->count = (size_t)sk_X509_num(sk);
    for (int i = 0; i < sk_X509_num(sk); i++) {
        int n = i2d_X509(sk_X509_value(sk, i), NULL);
        if (n <= 0)
            goto out;
        out->der_len += (size_t)n;
    }
    st = TACIO_SUCCESS;
out:
    sk_X509_pop_free(sk, X509_free);
    if (st != TACIO_SUCCESS)
        tacio__pki_cert_info_free(out);
    return st;
}

void tacio__pki_cert_info_free(struct tacio__pki_cert_info *info)
{
    free(info->subject);
    free(info->issuer);
    free(info->serial_hex);
    info->subject = info->issuer = info->serial_hex = NULL;
}

tacio_status_t tacio__pki_chain_der(X509 *cert, STACK_OF(X509) *chain, unsigned char **out,
                                    size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!cert)
        return TACIO_INVALID_PARAMETER;
    int n = chain ? sk_X509_num(chain) : 0;
    size_t total = 0;
    for (int i = -1; i < n; i++) {
        int l = i2d_X509(i < 0 ? cert : sk_X509_value(chain, i), NULL);
        if (l <= 0)
            return TACIO_UNSUCCESSFUL;
        total += (size_t)l;
    }
    unsigned char *buf = malloc(total), *p = buf;
    if (!buf)
        return TACIO_NO_MEMORY;
    for (int i = -1; i < n; i++)
        i2d_X509(i < 0 ? cert : sk_X509_value(chain, i), &p);
    *out = buf;
    *len = total;
    return TACIO_SUCCESS;
}

/* ---- verdicts ------------------------------------------------------------------------ */

unsigned tacio__pki_verify_flags(long r)
{
    switch (r) {
    case X509_V_OK:
        return 0;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return TACIO__PKI_V_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return TACIO__PKI_V_NOT_YET_VALID;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
        return TACIO__PKI_V_UNTRUSTED;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
    case X509_V_ERR_NO_ISSUER_PUBLIC_KEY:
    case X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH:
    case X509_V_ERR_UNSUPPORTED_SIGNATURE_ALGORITHM:
        return TACIO__PKI_V_BAD_SIGNATURE;
    case X509_V_ERR_CERT_REVOKED:
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_DIFFERENT_CRL_SCOPE:
    case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
    case X509_V_ERR_OCSP_VERIFY_NEEDED:
    case X509_V_ERR_OCSP_VERIFY_FAILED:
    case X509_V_ERR_OCSP_CERT_UNKNOWN:
        return TACIO__PKI_V_REVOKED_UNKNOWN;
    default:
        return TACIO__PKI_V_OTHER;
    }
}

unsigned tacio__pki_failed_flags(long r)
{
    unsigned f = tacio__pki_verify_flags(r);
    return f ? f : TACIO__PKI_V_OTHER;
}

struct verify_state {
    unsigned flags;
    long first;
};

/* Collect every error instead of stopping at the first, so that a
 * certificate both expired and untrusted says both. Returning 1 is safe
 * here because the caller only reads the flags, never "verified". */
static int collect_cb(int ok, X509_STORE_CTX *ctx)
{
    if (!ok) {
        struct verify_state *vs = X509_STORE_CTX_get_app_data(ctx);
        int err = X509_STORE_CTX_get_error(ctx);
        vs->flags |= tacio__pki_verify_flags(err);
        if (vs->first == X509_V_OK)
            vs->first = err;
    }
    return 1;
}

_Atomic unsigned long tacio__pki_verify_calls;

unsigned tacio__pki_verify(X509_STORE *store, X509 *leaf, STACK_OF(X509) *chain, int purpose,
                           time_t at, long *first_error)
{
    atomic_fetch_add_explicit(&tacio__pki_verify_calls, 1, memory_order_relaxed);
    struct verify_state vs = { 0, X509_V_OK };
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (first_error)
        *first_error = X509_V_ERR_UNSPECIFIED;
    if (!ctx || !store || !leaf || !X509_STORE_CTX_init(ctx, store, leaf, chain)) {
        X509_STORE_CTX_free(ctx);
        return TACIO__PKI_V_OTHER;
    }
    X509_STORE_CTX_set_app_data(ctx, &vs);
    X509_STORE_CTX_set_verify_cb(ctx, collect_cb);
    if (purpose)
        X509_STORE_CTX_set_purpose(ctx, purpose);
    if (at)
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), at);
    int r = X509_verify_cert(ctx);
    if (r <= 0 && vs.flags == 0) {
        /* Failed without telling the callback (internal error). */
        vs.first = X509_STORE_CTX_get_error(ctx);
        vs.flags = tacio__pki_failed_flags(vs.first);
    }
    X509_STORE_CTX_free(ctx);
    if (first_error)
        *first_error = vs.first;
    return vs.flags;
}

/* ---- remembered verdicts ------------------------------------------------------------ */

#define VCACHE_SLOTS 256 /* direct-mapped by the key's first byte */

struct vslot {
    unsigned char key[32];
    time_t until; /* 0: empty */
};

struct tacio__pki_vcache {
    pthread_mutex_t mu;
    struct vslot slot[VCACHE_SLOTS];
};

tacio__pki_vcache_t *tacio__pki_vcache_new(void)
{
    tacio__pki_vcache_t *vc = calloc(1, sizeof *vc);
    if (vc)
        pthread_mutex_init(&vc->mu, NULL);
    return vc;
}

void tacio__pki_vcache_free(tacio__pki_vcache_t *vc)
{
    if (!vc)
        return;
    pthread_mutex_destroy(&vc->mu);
    free(vc);
}

static bool digest_cert(EVP_MD_CTX *md, X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    bool ok = n > 0 && EVP_DigestUpdate(md, der, (size_t)n) == 1;
    OPENSSL_free(der);
    return ok;
}

bool tacio__pki_vcache_key(X509 *leaf, STACK_OF(X509) *untrusted, unsigned char key[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && leaf && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && digest_cert(md, leaf);
    for (int i = 0; ok && i < sk_X509_num(untrusted); i++)
        ok = digest_cert(md, sk_X509_value(untrusted, i));
    unsigned len = 0;
    ok = ok && EVP_DigestFinal_ex(md, key, &len) == 1 && len == 32;
    EVP_MD_CTX_free(md);
    return ok;
}

bool tacio__pki_vcache_hit(tacio__pki_vcache_t *vc, const unsigned char key[32], time_t now)
{
    struct vslot *s = &vc->slot[key[0] % VCACHE_SLOTS];
    pthread_mutex_lock(&vc->mu);
    bool hit = s->until > now && memcmp(s->key, key, 32) == 0;
    pthread_mutex_unlock(&vc->mu);
    return hit;
}

void tacio__pki_vcache_put(tacio__pki_vcache_t *vc, const unsigned char key[32],
                           STACK_OF(X509) *built, time_t now)
{
    if (sk_X509_num(built) <= 0)
        return;
    time_t until = now + TACIO__PKI_VCACHE_TTL;
    for (int i = 0; i < sk_X509_num(built); i++) {
        const ASN1_TIME *na = X509_get0_notAfter(sk_X509_value(built, i));
        int days = 0, secs = 0;
        /* The seconds from now to notAfter; unreadable: remember nothing. */
        if (!na || ASN1_TIME_diff(&days, &secs, NULL, na) != 1)
            return;
        long long left = (long long)days * 86400 + secs;
        if (left <= 0)
            return;
        if (now + left < until)
            until = now + (time_t)left;
    }
    struct vslot *s = &vc->slot[key[0] % VCACHE_SLOTS];
    pthread_mutex_lock(&vc->mu);
    memcpy(s->key, key, 32);
    s->until = until;
    pthread_mutex_unlock(&vc->mu);
}
