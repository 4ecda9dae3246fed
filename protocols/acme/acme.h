/*
 * protocols/acme/ — the ACME server (RFC 8555) with ARI (RFC 9773), EAB,
 * IP identifiers (RFC 8738), tls-alpn-01 (RFC 8737) and profiles
 * (draft-ietf-acme-profiles), under https://HTTPS/acme/.
 *
 * Requests are parsed and authenticated on the worker threads (JWS,
 * nonces, accounts); issuance goes through lifecycle_issue() so every
 * ACME certificate is in the inventory; challenge validation runs on the
 * jobs thread through the validator below and never blocks a request.
 */
#ifndef PKID_ACME_H
#define PKID_ACME_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "conf/conf.h"
#include "lifecycle/lifecycle.h"
#include "server/server.h"

#define ACME_JWS_MAX		(64 * 1024)	/* largest JWS body */

struct acme;

/* Registers the /acme/ routes on the https listener. base_url is the
 * public https base ("https://127.0.0.1:8443"); ca_id the issuing CA.
 * Borrows everything. NULL on failure. */
struct acme *acme_new(struct server *srv, struct lifecycle *lc,
    const struct conf *cf, const char *base_url, const char *ca_id);
void acme_free(struct acme *a);

/* ---- challenge validation (jobs thread only) ---------------------------- */

enum acme_chall_type {
	ACME_CHALL_HTTP01,
	ACME_CHALL_DNS01,
	ACME_CHALL_TLSALPN01,
	ACME_CHALL__MAX
};

struct acme_validator;

struct acme_validator_config {
	int		 http01_port;	/* where http-01 connects (80) */
	int		 tlsalpn01_port; /* where tls-alpn-01 connects (443) */
	const char	*dns_resolver;	/* "host:port" or ""/NULL: system */
	int		 timeout_seconds; /* whole validation, incl. redirects */
};

struct acme_validation_req {
	enum acme_chall_type	 type;
	const char		*ident_type;	/* "dns" | "ip" */
	const char		*ident_value;	/* "www.example.com", "::1";
						   wildcards arrive without
						   the "*." for dns-01 */
	const char		*token;
	const char		*key_authorization; /* token "." thumbprint */
};

struct acme_validation_result {
	bool	 valid;
	/* when !valid: full RFC 8555 §6.7 type URN, e.g.
	 * "urn:ietf:params:acme:error:connection", ":unauthorized",
	 * ":incorrectResponse", ":dns", ":tls" */
	char	 problem_type[64];
	char	 detail[512];	/* says what was fetched and what was wrong */
};

/* Creates the validator on the jobs thread's event base (libcurl multi
 * and c-ares driven by it). NULL on failure. */
struct acme_validator *acme_validator_new(struct event_base *base,
    const struct acme_validator_config *cfg);
/* Cancels validations in flight (their callbacks are not called). */
void acme_validator_free(struct acme_validator *v);
/* Starts one validation; copies what it needs from req. done(arg, result)
 * is called exactly once, later, on the jobs thread (never from inside
 * this call). -1 when it cannot start (done is then not called). */
int acme_validator_start(struct acme_validator *v,
    const struct acme_validation_req *req,
    void (*done)(void *arg, const struct acme_validation_result *res),
    void *arg);


/* ---- internal to protocols/acme (shared by its files; not an API) ------ */

#define ACME_PREFIX		"/acme/"
#define ACME_URL_MAX		512	/* a URL we build or compare */
#define ACME_ID_MAX		64	/* account/order/authz ids */
#define ACME_DETAIL_MAX		512	/* problem detail */
#define ACME_THUMB_MAX		64	/* base64url SHA-256 is 43 chars */
#define ACME_TOKEN_BYTES	32	/* random bytes of a challenge token */
#define ACME_TOKEN_MAX		64	/* its base64url (43) + NUL */
#define ACME_NONCE_MAX		64	/* base64url nonce (32) + NUL */
#define ACME_NONCE_WINDOW	(1u << 20)	/* newest nonces accepted */
#define ACME_SEGMENTS_MAX	6	/* path segments after /acme/ */
#define ACME_CONTACTS_MAX	10	/* contact URLs per account */
#define ACME_CONTACT_MAX	320	/* bytes of one contact URL */
#define ACME_IDENT_MAX		253	/* bytes of a DNS name */
#define ACME_ORDERS_PAGE	50	/* order URLs per orders-list page */
#define ACME_SERIAL_MAX		80	/* hex serial + NUL, with room */
#define ACME_RSA_MIN_BITS	2048	/* account and certificate keys */
#define ACME_RSA_MAX_BITS	8192	/* account keys */
#define ACME_ARI_RETRY_AFTER	21600	/* seconds, renewalInfo answers */
#define ACME_JOB_STALE_MIN	60	/* seconds before a lost validation
					   is started again */
#define ACME_CHALL_WAIT_MS	2000	/* longest a challenge response is
					   held for its validation result */

#define ACME_CT_JSON		"application/json"
#define ACME_CT_PROBLEM		"application/problem+json"
#define ACME_CT_JOSE		"application/jose+json"
#define ACME_CT_PEM_CHAIN	"application/pem-certificate-chain"
#define ACME_ERR_PREFIX		"urn:ietf:params:acme:error:"

struct acme_nonces;
struct acme_vjob;
struct acme_keycache;

struct acme {
	struct server		*srv;		/* borrowed */
	struct lifecycle	*lc;		/* borrowed */
	struct ca_ctx		*ca;		/* lc's CA context */
	struct store		*st;		/* lc's store */
	const struct conf	*cf;		/* borrowed; acme.* settings */
	char			*ca_id;		/* issuing CA */
	pthread_mutex_t		 base_lock;	/* guards base */
	char			 base[ACME_URL_MAX]; /* "https://h:p", "" until
						       known */
	struct acme_nonces	*nonces;
	struct acme_keycache	*keys;		/* account keys, parsed */
	struct acme_validator	*validator;	/* jobs thread only */
	struct acme_vjob	*vjobs;		/* in flight; jobs thread */
	struct acme_vjob	*vdone;		/* results to record in one
						   commit; jobs thread */
	struct acme_vjob	**vdone_tail;
	struct event		*vdone_ev;	/* records vdone */
	struct server_route	 route;
};

/* A problem document under construction (RFC 8555 §6.7, RFC 7807). */
struct acme_prob {
	int	 status;		/* 0: none */
	char	 type[64];		/* short name: "malformed" */
	char	 detail[ACME_DETAIL_MAX];
	json_t	*subproblems;		/* owned; array or NULL */
	json_t	*extra;			/* owned; members merged in */
};

/* One request as the handlers see it. */
struct acme_req {
	struct acme		*a;
	struct evhttp_request	*req;
	const char		*method;	/* "GET", "POST", ... */
	char			 base[ACME_URL_MAX]; /* "https://h:p" */
	char			 url[ACME_URL_MAX * 2]; /* base + request URI */
	char			 pathbuf[ACME_URL_MAX];
	const char		*seg[ACME_SEGMENTS_MAX]; /* after /acme/ */
	size_t			 nseg;
	bool			 replied;
	bool			 deferred;	/* a handler answers later, on
						   this worker (authz.c) */
	/* after acme_req_auth(): */
	json_t			*payload;	/* NULL for POST-as-GET */
	json_t			*account;	/* kid requests: the record */
	const char		*account_id;	/* in account */
	json_t			*jwk;		/* jwk requests: required
						   members only */
	EVP_PKEY		*key;		/* the key that signed */
	char			 thumbprint[ACME_THUMB_MAX];
};

enum acme_auth {
	ACME_AUTH_KID,		/* an account's request */
	ACME_AUTH_JWK,		/* newAccount */
	ACME_AUTH_ANY		/* revokeCert: account or certificate key */
};

/* acme.c: replies and URLs. Every handler ends in exactly one reply;
 * each adds Replay-Nonce and Link rel="index". */
void acme_reply(struct acme_req *r, int status, const char *ctype,
    const void *body, size_t len);
/* JSON reply (steals j; NULL is a 500 problem); location may be NULL. */
void acme_reply_json(struct acme_req *r, int status, json_t *j,
    const char *location);
void acme_header(struct acme_req *r, const char *name, const char *value);
void acme_link(struct acme_req *r, const char *url, const char *rel);
void acme_retry_after(struct acme_req *r, long seconds);
/* base + "/acme/" + formatted rest into out; -1 when too long. */
int acme_url(const struct acme_req *r, char *out, size_t outlen,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The settings of cf->acme.profiles named name (NULL: the default). */
const struct conf_acme_profile *acme_profile_find(const struct acme *a,
    const char *name);
/* Retry-After seconds for pending/processing objects. */
long acme_retry_seconds(const struct acme *a);

/* problem.c */
void acme_prob_set(struct acme_prob *p, int status, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Appends a subproblem {"type", "detail", "identifier"}. */
void acme_prob_sub(struct acme_prob *p, const char *type,
    const char *ident_type, const char *ident_value, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void acme_prob_clear(struct acme_prob *p);
/* The problem document of p (new reference), NULL on allocation failure. */
json_t *acme_prob_json(const struct acme_prob *p);
/* Answers p as application/problem+json and logs one line; clears p. */
void acme_problem_send(struct acme_req *r, struct acme_prob *p);
/* Sets and sends in one call. */
void acme_problem(struct acme_req *r, int status, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* nonce.c: authenticated counters, no database write. */
struct acme_nonces *acme_nonces_new(void);
void acme_nonces_free(struct acme_nonces *n);
/* A fresh nonce into out (>= ACME_NONCE_MAX); -1 on failure. */
int acme_nonce_issue(struct acme_nonces *n, char *out, size_t outlen);
/* True when s is a nonce issued here, within the window and never
 * redeemed before; it is then used up. */
bool acme_nonce_redeem(struct acme_nonces *n, const char *s);

/* jws.c */
/* The public key of a JWK (RSA >= 2048 bits, EC P-256/384/521, OKP
 * Ed25519); NULL with p set (badPublicKey or malformed). */
EVP_PKEY *acme_jwk_key(const json_t *jwk, struct acme_prob *p);
/* The JWK with only the members RFC 7638 requires (new reference). */
json_t *acme_jwk_public(const json_t *jwk);
/* RFC 7638 SHA-256 thumbprint, base64url, into out; -1 on failure. */
int acme_jwk_thumbprint(const json_t *jwk, char *out, size_t outlen);
/* A flattened JWS (RFC 7515 §7.2.2) taken apart. */
struct acme_jws {
	json_t		*prot;		/* protected header (owned) */
	const char	*alg;		/* in prot */
	char		*signing_input;	/* protected "." payload, as sent */
	unsigned char	*sig;
	size_t		 siglen;
	unsigned char	*payload;	/* decoded, NUL-terminated */
	size_t		 payload_len;	/* 0: empty (POST-as-GET) */
};
/* Takes a flattened JWS apart: exactly the members protected, payload
 * and signature, strict base64url, a protected header that is a JSON
 * object with a string "alg" and no "crit"/"b64". -1 with p (malformed). */
int acme_jws_parse(const json_t *jws, struct acme_jws *out,
    struct acme_prob *p);
void acme_jws_clear(struct acme_jws *j);
/* Verifies the signature with key: badSignatureAlgorithm for an alg
 * outside the table, malformed "JWS verification error" when the key
 * does not suit the alg (RS256: RSA; ES256/384/512: that curve; EdDSA:
 * Ed25519) or the signature does not verify. 0, or -1 with p set. */
int acme_jws_check_sig(const struct acme_jws *j, EVP_PKEY *key,
    struct acme_prob *p);
/* Sets badSignatureAlgorithm with the "algorithms" list. */
void acme_jws_bad_alg(struct acme_prob *p, const char *alg);
/* RFC 8555 §6.2-6.3: content type, JWS, alg, key (jwk or kid: account
 * lookup and status), signature, nonce, url; then the payload (empty:
 * POST-as-GET). Fills r; on failure answers the problem and returns -1. */
int acme_req_auth(struct acme_req *r, enum acme_auth mode);
/* For resources that are only read: refuses (malformed) a non-empty
 * payload, RFC 8555 §6.3. -1 after answering. */
int acme_req_post_as_get(struct acme_req *r);
/* The algorithms accepted for account keys, NULL-terminated. */
extern const char *const acme_jws_algs[];

#define ACME_KEYCACHE_MAX	1024	/* account keys kept parsed */

/* A bounded, thread-safe cache of account public keys (the JWK ->
 * EVP_PKEY conversion of every kid request), keyed by account id and
 * the key's RFC 7638 thumbprint, least recently used out. */
struct acme_keycache *acme_keycache_new(void);
void acme_keycache_free(struct acme_keycache *kc);
/* The key of account id whose stored JWK has thumbprint thumb (new
 * reference), parsed from jwk on a miss; NULL with p set when jwk is
 * unusable. */
EVP_PKEY *acme_keycache_get(struct acme_keycache *kc, const char *id,
    const char *thumb, const json_t *jwk, struct acme_prob *p);
/* Drops the key of account id (key change, deactivation). */
void acme_keycache_forget(struct acme_keycache *kc, const char *id);

/* directory.c */
void acme_directory(struct acme_req *r);
void acme_new_nonce(struct acme_req *r);

/* account.c */
void acme_account_new(struct acme_req *r);
void acme_account_post(struct acme_req *r, const char *id);
void acme_account_orders(struct acme_req *r, const char *id);
void acme_key_change(struct acme_req *r);
/* The account object of a record (new reference). */
json_t *acme_account_view(const struct acme_req *r, const json_t *acct);

/* order.c */
void acme_order_new(struct acme_req *r);
void acme_order_post(struct acme_req *r, const char *id);
void acme_order_finalize(struct acme_req *r, const char *id);
void acme_cert_download(struct acme_req *r, const char *serial);
/* The order record of account_id whose certificate has this serial
 * (new reference), NULL when none. */
json_t *acme_order_by_serial(struct acme *a, const char *account_id,
    const char *serial);
/* The identifier of a SAN: *type "dns" (value lower-cased) or "ip"
 * (canonical text) into out; -1 for other name types. */
int acme_gen_ident(const GENERAL_NAME *g, const char **type, char *out,
    size_t outlen);
/* Status of an order record as a client sees it now (expiry). */
const char *acme_order_status(const json_t *order, time_t now);

/* authz.c */
void acme_authz_post(struct acme_req *r, const char *id);
void acme_chall_post(struct acme_req *r, const char *authz_id,
    const char *type);
/* Status of an authz record as a client sees it now (expiry). */
const char *acme_authz_status(const json_t *authz, time_t now);
/* Frees what the jobs thread left (after it stopped). */
void acme_authz_jobs_free(struct acme *a);

/* revoke.c */
void acme_revoke(struct acme_req *r);

/* ari.c */
void acme_renewal_info(struct acme_req *r, const char *cert_id);
/* Parses an RFC 9773 certID into the serial's upper-case hex and the
 * AKI keyIdentifier bytes (to free()). -1 when malformed. */
int acme_ari_certid_parse(const char *certid, char *serial,
    size_t seriallen, unsigned char **aki, size_t *akilen);

#endif
