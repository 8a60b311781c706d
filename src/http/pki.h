/* src/http/pki.h - development and test certificates on OpenSSL 3 (internal API).
 *
 * tacio-httpd creates a development CA, a server certificate and a client
 * certificate on first run (tacio__pki_dev_set_ensure); the tests create,
 * in addition, the client certificates whose verdicts the front end must
 * report: expired, not yet valid, wrongly signed, from an untrusted CA, and
 * one with a chain of at least 64 KiB (tacio__pki_test_set_create). All of
 * it goes through OpenSSL's EVP/X509 APIs; nothing here is hand-written
 * crypto.
 *
 * FILES: an identity NAME is written as three PEM files in a directory:
 *   NAME.pem        the certificate
 *   NAME.key        its private key (PKCS#8, unencrypted, mode 0600)
 *   NAME-chain.pem  the certificate followed by its intermediates, nearest
 *                   first, without the root (what a TLS peer sends; what
 *                   SSL_CTX_use_certificate_chain_file and curl --cert take)
 * Files are written to a temporary name and renamed, so a reader never sees
 * a half-written file and a crash leaves either the old set or none.
 *
 * RETURN VALUES: TACIO_SUCCESS; a mapped errno for file errors
 * (tacio_status_from_errno); TACIO_UNSUCCESSFUL when OpenSSL failed (its
 * error queue is left for the caller: tacio__pki_last_error());
 * TACIO_INVALID_PARAMETER for bad arguments.
 *
 * THREAD SAFETY: every function may be called from any thread; functions
 * that write files must not race on the same directory. OpenSSL 3 needs no
 * explicit initialisation.
 */
#ifndef TACIO_HTTP_PKI_H
#define TACIO_HTTP_PKI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tacio/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tacio__pki_key_type {
    TACIO__PKI_EC_P256 = 0,   /* the default: small, fast handshakes */
    TACIO__PKI_RSA_2048,
} tacio__pki_key_type_t;

typedef enum tacio__pki_role {
    TACIO__PKI_ROLE_CA = 0,   /* basicConstraints CA:TRUE, keyCertSign */
    TACIO__PKI_ROLE_SERVER,   /* EKU serverAuth */
    TACIO__PKI_ROLE_CLIENT,   /* EKU clientAuth */
} tacio__pki_role_t;

/* A certificate, its key and the intermediates above it (nearest first,
 * root excluded). Owns one reference to each object. */
struct tacio__pki_identity {
    X509 *cert;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;
};

struct tacio__pki_spec {
    const char *subject;          /* "/CN=name/O=org" (openssl req -subj syntax, no escapes) */
    tacio__pki_key_type_t key_type;
    tacio__pki_role_t role;
    long not_before;              /* seconds from now; negative is in the past */
    long not_after;               /* seconds from now */
    const char *san;              /* subjectAltName in OpenSSL config syntax
                                   * ("DNS:localhost,IP:127.0.0.1"), or NULL */
    size_t pad_bytes;             /* > 0: a non-critical private extension of
                                   * about this size, to make big certificates */
    EVP_PKEY *sign_key;           /* NULL: the issuer's key (or its own when
                                   * self-signed). Otherwise sign with this key
                                   * while naming the issuer: a wrongly signed
                                   * certificate. Borrowed for the call. */
};

/* tacio__pki_issue - make a key of spec->key_type and a certificate for it,
 * issued by issuer (NULL: self-signed; then role must be CA). The result's
 * chain is issuer's chain with issuer's certificate in front, unless issuer
 * is self-signed (a root is never in a chain).
 * LIFETIME: *out is the caller's; free with tacio__pki_identity_free.
 *   issuer is borrowed for the call. On failure *out is all NULL. */
tacio_status_t tacio__pki_issue(const struct tacio__pki_spec *spec,
                                const struct tacio__pki_identity *issuer,
                                struct tacio__pki_identity *out);

void tacio__pki_identity_free(struct tacio__pki_identity *id);

/* tacio__pki_write / tacio__pki_load - the three files of identity name in
 * dir (see FILES). load reads NAME.pem and NAME.key (NAME-chain.pem for the
 * chain, when present) and checks that the key matches the certificate
 * (TACIO_UNSUCCESSFUL if not). A missing file gives
 * TACIO_OBJECT_NAME_NOT_FOUND. */
tacio_status_t tacio__pki_write(const struct tacio__pki_identity *id, const char *dir,
                                const char *name);
tacio_status_t tacio__pki_load(const char *dir, const char *name,
                               struct tacio__pki_identity *out);

/* ---- the sets -------------------------------------------------------------- */

/* Names of the identities (files NAME.pem, NAME.key, NAME-chain.pem). */
#define TACIO__PKI_CA             "ca"               /* the development CA (root) */
#define TACIO__PKI_SERVER         "server"           /* CN=localhost; SAN localhost, 127.0.0.1, ::1 */
#define TACIO__PKI_CLIENT         "client"           /* CN=tacio client */
#define TACIO__PKI_CLIENT_EXPIRED "client-expired"   /* valid 30 days ago until yesterday */
#define TACIO__PKI_CLIENT_FUTURE  "client-future"    /* valid from tomorrow */
#define TACIO__PKI_CLIENT_BADSIG  "client-badsig"    /* names ca as issuer, signed by another key */
#define TACIO__PKI_UNTRUSTED_CA   "untrusted-ca"     /* a CA no store trusts */
#define TACIO__PKI_CLIENT_UNTRUSTED "client-untrusted" /* issued by untrusted-ca */
#define TACIO__PKI_CLIENT_BIG     "client-big"       /* 8 intermediates, chain DER >= 64 KiB */

#define TACIO__PKI_CREATED_CA     0x1u
#define TACIO__PKI_CREATED_SERVER 0x2u
#define TACIO__PKI_CREATED_CLIENT 0x4u

/* tacio__pki_dev_set_ensure - create dir (mode 0700, parents too) and the
 * development set in it where missing: ca, server, client. What exists and
 * loads (key matching certificate) is kept, byte for byte; a new CA
 * re-issues both leaves, since old leaves would no longer chain to it.
 * *created (may be NULL) gets the TACIO__PKI_CREATED_* bits of what was
 * written. Validity: 10 years for the CA, 2 years for leaves.
 * client_subject NULL means "/CN=tacio client/O=tacio development". */
tacio_status_t tacio__pki_dev_set_ensure(const char *dir, tacio__pki_key_type_t type,
                                         const char *client_subject, unsigned *created);

/* tacio__pki_test_set_create - the development set (kept if present, as
 * dev_set_ensure) plus every TACIO__PKI_CLIENT_* variant and untrusted-ca,
 * which are always written anew. */
tacio_status_t tacio__pki_test_set_create(const char *dir, tacio__pki_key_type_t type);

/* ---- what the certificate-receive API reports ------------------------------ */

struct tacio__pki_cert_info {
    char *subject;                /* leaf subject, RFC 2253 (openssl -nameopt RFC2253) */
    char *issuer;                 /* leaf issuer, same format */
    char *serial_hex;             /* upper-case hex, as openssl x509 -serial */
    unsigned char sha256[32];     /* SHA-256 of the leaf's DER */
    char sha256_hex[32 * 3];      /* "AB:CD:...", as openssl x509 -fingerprint -sha256 */
    time_t not_before, not_after;
    size_t count;                 /* certificates in the chain given */
    size_t der_len;               /* bytes of the chain as concatenated DER */
};

/* tacio__pki_cert_info - facts about the first certificate of a chain held
 * as PEM (one or more CERTIFICATE blocks) or as concatenated DER.
 * RETURN VALUE: TACIO_SUCCESS; TACIO_INVALID_PARAMETER if no certificate
 *   could be read or trailing bytes are not a certificate.
 * LIFETIME: free the strings with tacio__pki_cert_info_free. */
tacio_status_t tacio__pki_cert_info(const void *data, size_t len, struct tacio__pki_cert_info *out);
void tacio__pki_cert_info_free(struct tacio__pki_cert_info *info);

/* tacio__pki_chain_der - cert then chain as concatenated DER, the form the
 * certificate-receive API hands out. LIFETIME: *out is malloc'd. */
tacio_status_t tacio__pki_chain_der(X509 *cert, STACK_OF(X509) *chain,
                                    unsigned char **out, size_t *len);

/* ---- verification verdicts ------------------------------------------------- */

/* The flags an OpenSSL verification result maps to. 0 means verified. */
#define TACIO__PKI_V_EXPIRED         0x01u  /* CERT_HAS_EXPIRED (any depth) */
#define TACIO__PKI_V_NOT_YET_VALID   0x02u  /* CERT_NOT_YET_VALID */
#define TACIO__PKI_V_UNTRUSTED       0x04u  /* no path to a trusted root: issuer
                                             * not found, self-signed not
                                             * trusted, explicitly untrusted or
                                             * rejected */
#define TACIO__PKI_V_BAD_SIGNATURE   0x08u  /* a signature does not verify, or
                                             * the issuer key cannot be used */
#define TACIO__PKI_V_REVOKED_UNKNOWN 0x10u  /* revoked, or revocation status
                                             * unknown (CRL/OCSP missing, stale,
                                             * unverifiable) */
#define TACIO__PKI_V_OTHER           0x20u  /* anything else (purpose, path
                                             * length, name constraints, ...) */

/* tacio__pki_verify_flags - flags for one X509_V_* code (X509_V_OK -> 0).
 * Pure. */
unsigned tacio__pki_verify_flags(long x509_v_result);

/* tacio__pki_failed_flags - flags for a verification known to have failed
 * with x509_v_result: tacio__pki_verify_flags, or TACIO__PKI_V_OTHER when
 * that maps to none (X509_V_OK from a check that failed anyway). Pure. */
unsigned tacio__pki_failed_flags(long x509_v_result);

/* Calls of tacio__pki_verify so far: a test's way to see that a chain the
 * TLS handshake checked is not checked again. */
extern _Atomic unsigned long tacio__pki_verify_calls;

/* tacio__pki_verify - verify leaf with its untrusted chain against store
 * for purpose (X509_PURPOSE_SSL_CLIENT, ...; 0: none), going on past
 * errors so that every problem is reported: the result is the OR of the
 * flags of all errors met. *first_error (may be NULL) gets the first
 * X509_V_* code (X509_V_OK if none). at (0: now) is the verification time.
 * Returns TACIO__PKI_V_OTHER if the verification could not run at all. */
unsigned tacio__pki_verify(X509_STORE *store, X509 *leaf, STACK_OF(X509) *chain, int purpose,
                           time_t at, long *first_error);

/* ---- remembered verdicts ------------------------------------------------------------
 *
 * A client that reconnects presents the same chain each time, and checking
 * it again gives the same answer until one of its certificates expires. A
 * verdict cache remembers chains that verified cleanly: the key is the
 * SHA-256 of the presented DER (leaf, then the untrusted certificates in
 * order), the entry lasts until the earliest notAfter of the chain that was
 * built (trust anchor included) or TACIO__PKI_VCACHE_TTL seconds, whichever
 * is first. Failures are never remembered. Only valid while the trust store
 * it was filled against does not change (tacio's never do: one per context)
 * and no CRL checking is on. Thread-safe; fixed size (older entries are
 * overwritten). */
#define TACIO__PKI_VCACHE_TTL 600
typedef struct tacio__pki_vcache tacio__pki_vcache_t;

tacio__pki_vcache_t *tacio__pki_vcache_new(void);
void tacio__pki_vcache_free(tacio__pki_vcache_t *vc);

/* The key of a presented chain. False if it could not be encoded. */
bool tacio__pki_vcache_key(X509 *leaf, STACK_OF(X509) *untrusted, unsigned char key[32]);

/* Whether key verified cleanly and is still within its lifetime at now. */
bool tacio__pki_vcache_hit(tacio__pki_vcache_t *vc, const unsigned char key[32], time_t now);

/* Remember that key verified cleanly at now, building chain (the verified
 * chain, trust anchor included). */
void tacio__pki_vcache_put(tacio__pki_vcache_t *vc, const unsigned char key[32],
                           STACK_OF(X509) *built, time_t now);

/* OpenSSL's most recent error as text ("error:...:reason"), or "" . */
const char *tacio__pki_last_error(char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
