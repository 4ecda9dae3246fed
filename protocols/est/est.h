/*
 * protocols/est/ — Enrollment over Secure Transport (RFC 7030, with the
 * RFC 8951 clarifications) under https://HTTPS/.well-known/est/ and
 * https://HTTPS/.well-known/est/<label>/.
 *
 * Operations: cacerts, simpleenroll, simplereenroll, csrattrs,
 * serverkeygen. Authentication per label: HTTP Basic against EST clients
 * (PBKDF2-SHA256 hashes in the store), TLS client certificates (checked
 * against the label's trust bundle or pkid's own CAs), or both. Issuance
 * goes through lifecycle/ so every EST certificate is in the inventory
 * with origin "est" and its label.
 */
#ifndef PKID_EST_H
#define PKID_EST_H

#include "conf/conf.h"
#include "lifecycle/lifecycle.h"
#include "server/server.h"

#define EST_BODY_MAX	(64 * 1024)	/* largest request body */

struct est;

/* Registers the /.well-known/est/ route on the https listener. ca_id is
 * the default issuing CA (labels may name another). Borrows everything.
 * NULL on failure (e.g. a label's trust bundle cannot be read). */
struct est *est_new(struct server *srv, struct lifecycle *lc,
    const struct conf *cf, const char *ca_id);
void est_free(struct est *e);

/* ---- internal to protocols/est (shared by its files; not an API) ------- */

#include <pthread.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/common.h"
#include "store/store.h"

#define EST_PREFIX		"/.well-known/est/"
#define EST_B64_WRAP		64	/* base64 columns in responses */
#define EST_USERNAME_MAX	64	/* Basic user name, bytes */
#define EST_AUTH_HEADER_MAX	2048	/* Authorization header, bytes */
#define EST_CRED_CACHE_MAX	128	/* verified Basic credentials kept */
#define EST_CRED_TTL_MS		60000	/* how long one stays verified */
#define EST_TRUST_FILE_MAX	(1024 * 1024)	/* trust bundle file */
#define EST_TRUST_CERTS_MAX	256	/* certificates in a trust bundle */
#define EST_WHO_MAX		128	/* "est:<user>" | "cert:<serial>" */
#define EST_SERIAL_MAX		41	/* upper-case hex serial + NUL */
#define EST_REASON_MAX		512	/* one-line refusal text */
#define EST_BOUNDARY		"est-server-keygen-boundary"

enum est_op {
	EST_OP_CACERTS,
	EST_OP_SIMPLEENROLL,
	EST_OP_SIMPLEREENROLL,
	EST_OP_CSRATTRS,
	EST_OP_SERVERKEYGEN,
	EST_OP__MAX
};

enum est_auth_mode {
	EST_AUTH_BASIC,
	EST_AUTH_CERT,
	EST_AUTH_BASIC_OR_CERT,
	EST_AUTH_BASIC_AND_CERT,
	EST_AUTH__MAX
};

/* A configured label resolved at est_new(). */
struct est_label {
	const struct conf_est_label *cf;	/* the configuration entry */
	const char	*name;		/* "" for the unlabelled default */
	char		*ca_id;		/* issuing CA (default resolved) */
	enum ca_profile	 profile;
	enum ca_key_alg	 key_alg;	/* serverkeygen and csrattrs */
	enum est_auth_mode auth;
	X509_STORE	*trust;		/* trust_bundle; NULL: pkid's CAs */
};

/* One verified Basic credential: an HMAC tag, never the password. */
struct est_cred {
	unsigned char	 tag[32];	/* HMAC-SHA256(cred_key, ...) */
	uint64_t	 expires_ms;	/* common_mono_ms(); 0: free slot */
};

/* The cacerts answer of one label, kept while its CA bundle (whose text
 * is the key: a CA renewal or an expired version changes it) is the
 * same. */
struct est_cacerts {
	char		*pem;		/* the bundle it was built from */
	unsigned char	*der;		/* PKCS#7 certs-only of it */
	size_t		 len;
};

struct est {
	struct server	*srv;
	struct lifecycle *lc;
	struct ca_ctx	*ca;
	struct store	*st;
	const struct conf *cf;
	char		*ca_id;		/* default issuing CA */
	struct est_label *labels;	/* [0] is the unlabelled default */
	size_t		 nlabels;
	char		*dummy_hash;	/* verified for unknown users */
	unsigned char	 cred_key[32];	/* per-process HMAC key */
	pthread_mutex_t	 cred_lock;
	struct est_cred	 creds[EST_CRED_CACHE_MAX];
	pthread_mutex_t	 cacerts_lock;
	struct est_cacerts *cacerts;	/* [nlabels], as labels */
};

/* One EST request while it is handled on its worker. */
struct est_req {
	struct est		*e;
	struct evhttp_request	*req;
	const struct est_label	*label;
	enum est_op		 op;
	SSL			*ssl;		/* NULL on plain HTTP */
	X509			*peer;		/* TLS client cert (borrowed) */
	bool			 cert_ok;	/* peer passed the checks */
	char			 peer_serial[EST_SERIAL_MAX];
	char			 user[EST_USERNAME_MAX + 1]; /* Basic user */
	char			 who[EST_WHO_MAX];	/* audit actor */
	size_t			 wrap;		/* base64 columns of answers */
	bool			 replied;
};

/* est.c: replies. Each request ends in exactly one of these. */
/* Text error: status with a one-line text/plain reason; logged once. */
void est_error(struct est_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a core error (policy/invalid -> 400, not found -> 404,
 * forbidden -> 403, conflict -> 409, else 500) to est_error(). */
void est_error_core(struct est_req *r, const struct common_error *err);
/* Adds a response header. */
void est_header(struct est_req *r, const char *name, const char *value);
/* Sends status with body as is. */
void est_reply(struct est_req *r, int status, const char *ctype,
    const void *body, size_t len);
/* Sends der base64-encoded (lines of r->wrap columns, trailing newline)
 * with Content-Transfer-Encoding: base64. */
void est_reply_b64(struct est_req *r, int status, const char *ctype,
    const unsigned char *der, size_t len);
/* The label's name for messages: "default" or the label. */
const char *est_label_show(const struct est_label *l);

/* auth.c */
/* Authenticates r per its label's mode; fills r->user / r->cert_ok /
 * r->who. 0, or -1 after replying 401/403/500. */
int est_auth(struct est_req *r);
/* The registry record of r's TLS client certificate when pkid issued it
 * (same DER), valid and unexpired, for simplereenroll. New reference, or
 * NULL after replying 403. */
json_t *est_auth_reenroll(struct est_req *r);
/* Loads a PEM trust bundle into a new store (partial chains allowed: an
 * intermediate listed there is an anchor). NULL on failure (logged). */
X509_STORE *est_trust_load(const char *path);
/* Verifies peer (with the TLS chain as untrusted certificates) against
 * the label's trust at common_now(); for certificates of a pkid CA also
 * that the registry holds this DER, unrevoked. true when accepted; else
 * why (one line) goes to reason. */
bool est_cert_verify(struct est *e, const struct est_label *l, SSL *ssl,
    X509 *peer, char *reason, size_t reasonlen);

/* auth.c */
/* Parses an HTTP Basic Authorization header value (RFC 7617): 0 with the
 * user name in user (1..EST_USERNAME_MAX bytes; userlen its size) and the
 * password in *password, to release with est_basic_forget(); -1 with the
 * client's reason in why and nothing kept. */
int est_basic_parse(const char *h, char *user, size_t userlen,
    char **password, char *why, size_t whylen);
/* Cleanses and frees a password est_basic_parse returned; accepts NULL. */
void est_basic_forget(char *password);

/* encode.c */
/* Decodes an RFC 8951 base64 body (line breaks CRLF/LF or none). 0 and
 * a buffer to free(), or -1 with why in err. */
int est_b64_body(const char *body, size_t len, unsigned char **der,
    size_t *derlen, struct common_error *err);
/* A DER PKCS#10 request with nothing after it (BER, which d2i would
 * take, is refused); NULL with err. */
X509_REQ *est_csr_decode(const unsigned char *der, size_t len,
    struct common_error *err);
/* PKCS#7 signed-data "certs-only" (no signers, no content) holding
 * certs, as DER to OPENSSL_free(). 0 or -1 (logged). */
int est_pkcs7_certs(STACK_OF(X509) *certs, unsigned char **der,
    size_t *len);
/* Base64 of p in lines of wrap columns (0: one line), each line ending
 * in eol (the last one too). NUL-terminated, to free(); NULL on
 * failure. */
char *est_b64_wrap(const void *p, size_t n, size_t wrap, const char *eol);
/* True when the request's Content-Type media type is ctype (parameters
 * and case ignored). */
bool est_ctype_is(struct evhttp_request *req, const char *ctype);

/* cacerts.c, csrattrs.c, enroll.c: the operations. */
void est_cacerts(struct est_req *r);
void est_csrattrs(struct est_req *r);
/* The label's CsrAttrs DER (to OPENSSL_free()); *len 0 and *der NULL
 * when there is nothing to say. 0 or -1 (logged). */
int est_csrattrs_der(const struct est_label *l, unsigned char **der,
    size_t *len);
/* simpleenroll, simplereenroll and serverkeygen. */
void est_enroll(struct est_req *r);
/* The tls-unique value of r's connection (RFC 5929 §3.1) as base64 into
 * out. 0, or -1 after replying 400 (not TLS 1.2). */
int est_tls_unique(struct est_req *r, char *out, size_t outlen);

#endif
