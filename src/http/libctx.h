/* src/http/libctx.h - the OpenSSL library context the TLS listeners run in
 * (internal API).
 *
 * WHY: OpenSSL 3.0 decodes the public key of every certificate a peer sends
 * by building a decoder chain from scratch: it walks every key manager and
 * every decoder its providers offer and compares their names under a lock,
 * about 80 us per certificate here, more than a quarter of a required-mode
 * handshake's server CPU (docs/http.md "Client certificates and OpenSSL's
 * decoders"). A peer's certificate only ever needs the decoders that read a
 * DER SubjectPublicKeyInfo, and the key manager walk copies the context's
 * whole method store, in which every cipher, digest, MAC and KDF of the
 * default provider lands once TLS fetches one of each. So the listeners'
 * SSL_CTXs live in a library context of their own whose one provider,
 * "tacio-lean", hands out the default provider's algorithms unchanged but,
 * of its decoders, only those, and of its ciphers, digests, MACs and KDFs
 * only the ones TLS (libssl's suites, signature schemes, record MACs, key
 * schedules and tickets, and certificate checks) can use.
 * Nothing is reimplemented: every algorithm is OpenSSL's default one.
 *
 * What that context cannot do is read a private key from PEM, so the key
 * files are read in a full context of the same provider and the key moved
 * across (tacio__tls_load_key).
 *
 * Set TACIO_TLS_LEAN=0 in the environment to run the listeners in OpenSSL's
 * default context instead (as before 2026-12-04); it is read once, at the
 * first listener.
 */
#ifndef TACIO_HTTP_LIBCTX_H
#define TACIO_HTTP_LIBCTX_H

#include <openssl/evp.h>
#include <openssl/types.h>

/* The listeners' context: the lean one, created on first use (thread-safe),
 * or NULL for OpenSSL's default context when TACIO_TLS_LEAN=0 or the lean
 * one could not be made (then said once on stderr). Never freed: OpenSSL's
 * own default context is not either, and SSL_CTXs made in it may outlive
 * any queue. */
OSSL_LIB_CTX *tacio__tls_libctx(void);

/* Read an unencrypted PEM private key from path into a key usable in
 * context lc (tacio__tls_libctx()'s answer, NULL included). Returns a new
 * key the caller frees, or NULL with the reason on OpenSSL's error queue. */
EVP_PKEY *tacio__tls_load_key(const char *path, OSSL_LIB_CTX *lc);

#endif
