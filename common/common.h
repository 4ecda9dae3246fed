/*
 * common/ — small helpers shared by every layer: logging, bounded byte
 * buffers, base64/base64url, hex, random identifiers, an injectable clock,
 * atomic file writes, PEM/DER conversions, module error reports, the
 * process-wide metrics registry and the libcurl-on-libevent driver that
 * moves outbound HTTP transfers without looking into them. Nothing here
 * knows about HTTP semantics, BDB or a protocol.
 */
#ifndef PKID_COMMON_H
#define PKID_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

struct event_base;

/* ---- logging --------------------------------------------------------- */

enum common_log_level {
	COMMON_LOG_DEBUG,
	COMMON_LOG_INFO,
	COMMON_LOG_WARN,
	COMMON_LOG_ERR,
	COMMON_LOG__MAX
};

/* Sets the minimum level written; lines below it are dropped. */
void common_log_set_level(enum common_log_level level);
/* Parses "debug"|"info"|"warn"|"error"; -1 on anything else. */
int common_log_level_parse(const char *s, enum common_log_level *out);
/* Writes one line "TIMESTAMP LEVEL message" to stderr; thread-safe. */
void common_log(enum common_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) common_log(COMMON_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  common_log(COMMON_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  common_log(COMMON_LOG_WARN, __VA_ARGS__)
#define log_err(...)   common_log(COMMON_LOG_ERR, __VA_ARGS__)

/* ---- errors reported by core modules to the protocols ---------------- */

enum common_errcode {
	COMMON_E_NONE = 0,
	COMMON_E_INVALID,	/* malformed or inconsistent input (400) */
	COMMON_E_POLICY,	/* well-formed but refused by policy (400/403) */
	COMMON_E_NOTFOUND,	/* the named object does not exist (404) */
	COMMON_E_CONFLICT,	/* state forbids it, e.g. associations (409) */
	COMMON_E_FORBIDDEN,	/* caller may not do this (403) */
	COMMON_E_INTERNAL,	/* broken infrastructure (500) */
	COMMON_E__MAX
};

struct common_error {
	enum common_errcode code;
	char msg[512];		/* one line for the client, no secrets */
};

/* Records code and a printf-style message in err (err may be NULL).
 * Keeps the first error set: later calls do not overwrite it. */
void common_error_set(struct common_error *err, enum common_errcode code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Clears err to COMMON_E_NONE. */
void common_error_clear(struct common_error *err);
/* Short stable name of a code: "invalid", "policy", "not_found", ... */
const char *common_error_name(enum common_errcode code);

/* ---- bounded growable buffers ---------------------------------------- */

struct common_buf {
	unsigned char	*data;	/* always NUL-terminated after len */
	size_t		 len;
	size_t		 cap;
	size_t		 max;	/* hard limit on len; adds past it fail */
};

void common_buf_init(struct common_buf *b, size_t max);
/* Appends n bytes; -1 (buffer unchanged) if len would exceed max or on
 * allocation failure. */
int common_buf_add(struct common_buf *b, const void *p, size_t n);
int common_buf_addstr(struct common_buf *b, const char *s);
int common_buf_addf(struct common_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (free() it) and resets b. */
char *common_buf_steal(struct common_buf *b, size_t *len);
void common_buf_free(struct common_buf *b);

/* ---- encodings --------------------------------------------------------- */

/* Standard base64 (url=false) or unpadded base64url (url=true). wrap>0
 * inserts "\n" every wrap columns (and after the last line). Returns a
 * NUL-terminated string to free(), NULL on allocation failure. */
char *common_b64_encode(const void *p, size_t n, bool url, int wrap);
/* Decodes base64 (url=false: ignores CR, LF, spaces and tabs; padding
 * optional) or strict base64url (url=true: no padding, no whitespace).
 * Returns 0 and a buffer to free(), -1 on any invalid character. */
int common_b64_decode(const char *s, size_t n, bool url,
    unsigned char **out, size_t *outlen);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void common_hex(const void *p, size_t n, char *out);

/* Fills out with prefix + 16 random lower-case hex characters
 * (64 bits from RAND_bytes); -1 if outlen is too small or RNG fails. */
int common_random_id(const char *prefix, char *out, size_t outlen);
/* True when s is a safe identifier: 1..64 of [A-Za-z0-9._-]. */
bool common_id_valid(const char *s);

/* ---- time ---------------------------------------------------------------- */

/* Wall clock in seconds, plus the offset set by common_clock_set_offset
 * (tests move time forward without waiting). */
time_t common_now(void);
void common_clock_set_offset(time_t seconds);
/* Monotonic milliseconds for durations. */
uint64_t common_mono_ms(void);
/* RFC 3339 UTC "2026-11-27T14:28:41Z" into out (>= 21 bytes). */
void common_time_rfc3339(time_t t, char *out, size_t outlen);
/* Converts an ASN1_TIME to time_t; -1 on failure. */
int common_asn1_time(const ASN1_TIME *a, time_t *out);

/* ---- files --------------------------------------------------------------- */

/* mkdir -p with mode for each created component; 0 or -1. */
int common_mkdirs(const char *path, mode_t mode);
/* Writes data to path atomically: temp file in the same directory, fsync,
 * chmod mode, rename, fsync of the directory. 0 or -1 (errno kept). */
int common_file_write(const char *path, const void *data, size_t len,
    mode_t mode);
/* Reads at most max bytes of path into a NUL-terminated buffer to free();
 * -1 if missing, unreadable or larger than max. */
int common_file_read(const char *path, size_t max, char **out, size_t *len);
/* snprintf that reports truncation: 0 or -1. */
int common_path(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- PEM / DER ------------------------------------------------------------ */

/* Each *_to_pem returns a NUL-terminated PEM string to free(). */
char *common_x509_to_pem(X509 *x);
char *common_pubkey_to_pem(EVP_PKEY *k);
/* "PUBLIC KEY" PEM of a SubjectPublicKeyInfo as it was received (a CSR's):
 * the same text common_pubkey_to_pem writes for its key, without the
 * OpenSSL 3 encoder that one sets up per call. */
char *common_spki_to_pem(const X509_PUBKEY *spki);
/* Unencrypted PKCS#8 PEM of a private key (only for callers entitled to it). */
char *common_privkey_to_pem(EVP_PKEY *k);
/* Parses exactly one certificate from PEM; NULL if none or malformed. */
X509 *common_x509_from_pem(const char *pem, size_t len);
/* Parses every certificate in a PEM text (at most max); NULL on malformed
 * input or when there are more than max. An empty text gives an empty stack. */
STACK_OF(X509) *common_x509s_from_pem(const char *pem, size_t len, int max);
/* Unencrypted private key from PEM (PKCS#8, or traditional RSA/EC). */
EVP_PKEY *common_privkey_from_pem(const char *pem, size_t len);
/* PKCS#10 request from PEM; NULL on malformed input or trailing garbage. */
X509_REQ *common_csr_from_pem(const char *pem, size_t len);
/* True when der, the len bytes req was decoded from, is req's DER
 * encoding: d2i_X509_REQ also takes BER around the signed part (long
 * length forms, signature bits), which a door that keys on the bytes
 * must refuse. */
bool common_csr_is_der(X509_REQ *req, const unsigned char *der,
    size_t len);
/* DER of a certificate to a malloc'd buffer; -1 on failure. */
int common_x509_to_der(X509 *x, unsigned char **out, size_t *len);
/* Upper-case hex serial number of x into out (>= 41 bytes). */
int common_x509_serial_hex(X509 *x, char *out, size_t outlen);
/* Last OpenSSL error as one line (for logs), thread-local storage. */
const char *common_ssl_error(void);

/* ---- passwords (EST HTTP Basic clients) ------------------------------- */

#define COMMON_PASSWORD_ITERATIONS	100000	/* PBKDF2 count, new hashes */
/* Iteration counts common_password_hash and _verify accept. */
#define COMMON_PASSWORD_ITER_MIN	1000
#define COMMON_PASSWORD_ITER_MAX	10000000
#define COMMON_PASSWORD_MAX		1024	/* longest password, bytes */

/* PBKDF2-HMAC-SHA256 with a 16-byte random salt; returns
 * "pbkdf2-sha256$ITER$SALT_B64$HASH_B64" (to free()) or NULL (iterations
 * outside COMMON_PASSWORD_ITER_MIN..MAX, password longer than
 * COMMON_PASSWORD_MAX, RNG or allocation failure). */
char *common_password_hash(const char *password, unsigned iterations);
/* Recomputes and compares in constant time (CRYPTO_memcmp over
 * fixed-length digests); false on any malformed stored string. */
bool common_password_verify(const char *stored, const char *password);

/* ---- metrics ------------------------------------------------------------- */

/* Increments the counter name{labels} (labels is Prometheus label text
 * without braces, e.g. "ca=\"ca-1\"", or "" for none). Thread-safe. */
void common_metric_inc(const char *name, const char *labels);
/* Appends every counter in Prometheus text format (with # TYPE lines) to b. */
int common_metric_render(struct common_buf *b);

/* ---- libcurl multi on a libevent loop ------------------------------------ */

#define COMMON_CURLEV_NAME_MAX	64	/* log prefix, bytes with the NUL */

struct common_curlev;

/*
 * Creates a libcurl multi handle whose sockets and timer are events on
 * base (borrowed; it must outlive the driver), and does curl_global_init
 * (undone by common_curlev_free). name prefixes the driver's log lines
 * ("notify", "acme: validator"). done(easy, rc, arg) runs on base's loop
 * once for every transfer that finishes, after the easy handle left the
 * multi handle: from then on the easy handle is the caller's alone again
 * (read its info, clean it up or add it again). done may add and remove
 * transfers but must not free the driver. NULL (logged) on failure.
 */
struct common_curlev *common_curlev_new(struct event_base *base,
    const char *name, void (*done)(CURL *easy, CURLcode rc, void *arg),
    void *arg);
/* Starts the transfer easy (set up by the caller, who keeps owning it;
 * CURLOPT_PRIVATE stays free for the caller). 0, or -1 (logged). */
int common_curlev_add(struct common_curlev *c, CURL *easy);
/* Stops a transfer before it finished: done() will not be called for it.
 * No-op for an easy handle c does not hold (NULL, finished, never added). */
void common_curlev_remove(struct common_curlev *c, CURL *easy);
/* Takes every transfer still running out of the multi handle (without
 * calling done() or cleaning up the easy handles: their owners do), then
 * frees the multi handle and the events. Accepts NULL. Not from done(). */
void common_curlev_free(struct common_curlev *c);

#endif
