/*
 * bench/acmeload — a load generator for any RFC 8555 (ACME) server.
 *
 * N workers each register one account (a fresh ES256 key, real JWS with
 * the server's nonces), then run full issuance flows back to back:
 * newOrder for one random DNS name, the authorization, an http-01
 * challenge answered by the built-in responder (the server really
 * connects to it), polling, finalize with a fresh P-256 CSR, polling,
 * certificate download and a check that the certificate carries the
 * CSR's key and the name. Everything runs on one libevent loop: libcurl
 * multi (HTTP/1.1, keep-alive, connections reused) for the client side
 * and evhttp for the responder.
 *
 * Files: main.c (options, run, report), loop.c (libcurl multi on
 * libevent), crypto.c (keys, JWS, CSR, certificate check), flow.c (the
 * per-worker state machine), responder.c (http-01 server and token
 * table), stats.c (latency samples, errors, JSON and text output).
 */
#ifndef ACMELOAD_H
#define ACMELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "common/common.h"

#define ACMELOAD_URL_MAX	1024	/* a URL the server hands out */
#define ACMELOAD_NONCE_MAX	256	/* a Replay-Nonce value */
#define ACMELOAD_NAME_MAX	256	/* a DNS name we order */
#define ACMELOAD_TOKEN_MAX	256	/* a challenge token */
#define ACMELOAD_THUMB_MAX	64	/* base64url SHA-256 (43) + NUL */
#define ACMELOAD_KEYAUTH_MAX	(ACMELOAD_TOKEN_MAX + ACMELOAD_THUMB_MAX + 2)
#define ACMELOAD_CTYPE_MAX	128	/* a Content-Type value */
#define ACMELOAD_BODY_MAX	(1024 * 1024)	/* largest response body */
#define ACMELOAD_ERROR_KEY_MAX	160	/* "step: type" of one error kind */
#define ACMELOAD_ERROR_KINDS	64	/* distinct kinds counted by name */
#define ACMELOAD_CONCURRENCY_MAX 4096	/* workers */
#define ACMELOAD_SAMPLES_MAX	(16u * 1024 * 1024) /* per step */
#define ACMELOAD_ACCOUNT_TRIES	3	/* newAccount attempts per worker */
#define ACMELOAD_TOKENS_BUCKETS	4096	/* hash buckets of the token table */
#define ACMELOAD_FULL_CHECK_EVERY 16	/* a worker parses 1 in 16 certs */

/* What a worker measures; each flow records one sample per step. */
enum acmeload_step {
	ACMELOAD_STEP_ACCOUNT,		/* newNonce + newAccount (setup) */
	ACMELOAD_STEP_NEWORDER,		/* POST newOrder */
	ACMELOAD_STEP_AUTHZ,		/* POST-as-GET the authorization */
	ACMELOAD_STEP_CHALLENGE,	/* POST {} to the http-01 challenge */
	ACMELOAD_STEP_VALIDATION,	/* challenge answer -> authz valid
					   (waits and polls) */
	ACMELOAD_STEP_FINALIZE,		/* POST finalize with the CSR */
	ACMELOAD_STEP_ISSUANCE,		/* finalize answer -> order valid
					   (waits and polls; 0 if at once) */
	ACMELOAD_STEP_DOWNLOAD,		/* POST-as-GET the certificate */
	ACMELOAD_STEP_FLOW,		/* newOrder sent -> certificate
					   checked */
	ACMELOAD_STEP__MAX
};

/* Latency samples of one step, in microseconds. */
struct acmeload_samples {
	uint32_t	*v;
	size_t		 n;
	size_t		 cap;
	uint64_t	 polls;		/* poll requests, each after a wait */
	uint64_t	 waited_us;	/* time spent sleeping before polls */
	uint64_t	 retry_after_seen; /* answers carrying Retry-After */
	long		 retry_after_max; /* largest value, seconds */
};

struct acmeload_error_kind {
	char		 key[ACMELOAD_ERROR_KEY_MAX];	/* "step: type" */
	uint64_t	 count;
};

struct acmeload_stats {
	struct acmeload_samples	 step[ACMELOAD_STEP__MAX];
	struct acmeload_error_kind kinds[ACMELOAD_ERROR_KINDS];
	size_t			 nkinds;
	uint64_t		 errors;	/* every error, all kinds */
	uint64_t		 errors_other;	/* kinds beyond the table */
	uint64_t		 orders_ok;	/* flows that got a good cert */
	uint64_t		 orders_failed;	/* flows abandoned */
	uint64_t		 accounts;	/* accounts registered */
	uint64_t		 requests;	/* HTTP requests sent */
	uint64_t		 responder_hits; /* key authorizations served */
	uint64_t		 responder_misses; /* unknown tokens, bad paths */
};

struct acmeload_options {
	const char	*directory;	/* directory URL */
	const char	*cafile;	/* trust for the server's TLS */
	bool		 insecure;	/* no TLS verification */
	int		 concurrency;	/* workers = concurrent flows */
	double		 duration;	/* seconds of flows */
	uint64_t	 orders;	/* stop after this many (0: none) */
	const char	*http01_address; /* responder address */
	int		 http01_port;	/* responder port */
	const char	*domain_suffix;	/* names are RANDOM.suffix */
	long		 poll_ms;	/* poll interval, no Retry-After */
	long		 retry_after_cap_ms; /* Retry-After honoured up to */
	long		 timeout_ms;	/* one HTTP request */
	long		 flow_timeout_ms; /* one flow, polls included */
	long		 error_backoff_ms; /* pause after a failed flow */
	long		 stall_ms;	/* no answer at all for this long:
					   the server is stuck (0: never) */
	const char	*json_path;	/* JSON report ("-": stdout) */
	const char	*samples_path;	/* full-flow latencies, one per line */
	bool		 quiet;		/* no text summary */
};

struct acmeload_worker;
struct acmeload_responder;

/* The whole run: one event loop, one curl multi, the workers. */
struct acmeload {
	const struct acmeload_options *opt;
	struct event_base	*base;
	CURLM			*multi;
	struct event		*curl_timer;	/* libcurl's timeout */
	struct event		*deadline;	/* end of the flow phase */
	struct event		*hard_stop;	/* flows still running: stop */
	struct event		*stall_check;	/* periodic progress check */
	struct curl_slist	*jose_headers;	/* for every POST */
	struct curl_slist	*pem_headers;	/* certificate download */
	struct acmeload_responder *responder;
	struct acmeload_worker	*workers;
	int			 nworkers;
	char			 new_nonce[ACMELOAD_URL_MAX];
	char			 new_account[ACMELOAD_URL_MAX];
	char			 new_order[ACMELOAD_URL_MAX];
	int			 pending_accounts; /* workers still registering */
	bool			 running;	/* flow phase started */
	bool			 stopping;	/* no new flows */
	uint64_t		 flows_started;
	int			 flows_active;
	uint64_t		 t0_us;		/* flow phase start */
	uint64_t		 t1_us;		/* last flow finished */
	uint64_t		 last_progress_us; /* last transfer completed */
	uint64_t		 last_order_us;	/* last flow completed */
	bool			 stalled;	/* the server stopped answering */
	struct rusage		 ru0;		/* client CPU at t0 */
	struct rusage		 ru1;		/* at t1 */
	struct acmeload_stats	 stats;
	int			 exit_code;
};

/* ---- main.c ------------------------------------------------------------- */

/* Monotonic clock in microseconds. */
uint64_t acmeload_now_us(void);

/* ---- loop.c: libcurl multi driven by libevent --------------------------- */

/* Installs the socket and timer callbacks of run->multi on run->base.
 * 0 or -1. */
int acmeload_loop_init(struct acmeload *run);
/* Frees the timer event (the multi handle is the caller's). */
void acmeload_loop_free(struct acmeload *run);
/* Adds an easy handle (CURLOPT_PRIVATE is its worker) to the multi;
 * acmeload_flow_done() is called when its transfer completes. 0 or -1. */
int acmeload_loop_add(struct acmeload *run, CURL *easy);

/* ---- crypto.c ----------------------------------------------------------- */

/* A fresh P-256 key; NULL on failure. */
EVP_PKEY *acmeload_key_new(void);
/* The JWK of a P-256 public key as a jansson object (new reference) and
 * its RFC 7638 thumbprint (base64url) into thumb. NULL on failure. */
json_t *acmeload_jwk(EVP_PKEY *key, char *thumb, size_t thumblen);
/* A signing context for key, reused for every JWS of the account
 * (EVP_PKEY_CTX_free() it); NULL on failure. */
EVP_PKEY_CTX *acmeload_signer_new(EVP_PKEY *key);
/* A flattened JWS (RFC 7515 §7.2.2) with ES256 (signer) over payload
 * (NULL: POST-as-GET, the empty payload). The protected header carries
 * either jwk (newAccount) or kid, and nonce and url. Returns the JSON
 * text to free(), NULL on failure. */
char *acmeload_jws(EVP_PKEY_CTX *signer, const json_t *jwk,
    const char *kid, const char *nonce, const char *url,
    const char *payload);
/* A PKCS#10 request for name (CN and one DNS SAN) signed with key, as
 * base64url DER (to free()); NULL on failure. */
char *acmeload_csr(EVP_PKEY *key, const char *name);
/* True when the first certificate of the PEM chain is for key and name;
 * else false with why set. full parses it as X.509 and compares the key
 * and the name the way a TLS stack would; otherwise the DER must carry
 * the key's public point and the name (parsing a certificate costs a
 * client more CPU under OpenSSL 3 than the rest of a flow's checks). */
bool acmeload_cert_check(const char *pem, size_t len, EVP_PKEY *key,
    const char *name, bool full, const char **why);

/* ---- responder.c: the http-01 server ------------------------------------ */

/* Listens on address:port on run->base and serves
 * /.well-known/acme-challenge/TOKEN from the token table. NULL on
 * failure (logged). */
struct acmeload_responder *acmeload_responder_new(struct acmeload *run,
    const char *address, int port);
void acmeload_responder_free(struct acmeload_responder *r);
/* Publishes token -> key authorization; -1 if too long or no memory. */
int acmeload_token_add(struct acmeload_responder *r, const char *token,
    const char *keyauth);
/* Withdraws a token (no-op if absent). */
void acmeload_token_del(struct acmeload_responder *r, const char *token);

/* ---- flow.c: the workers ------------------------------------------------ */

/* Allocates and prepares the workers (keys, easy handles); -1 on
 * failure. */
int acmeload_workers_new(struct acmeload *run);
void acmeload_workers_free(struct acmeload *run);
/* Every worker registers its account; when the last one is done the
 * flow phase starts by itself. */
void acmeload_workers_start(struct acmeload *run);
/* Called by loop.c when the transfer of easy completes with result. */
void acmeload_flow_done(struct acmeload *run, CURL *easy, CURLcode result);
/* Ends the flow phase (no new flows); called at the deadline. */
void acmeload_flow_stop(struct acmeload *run);
/* Abandons the flows still running (counted as errors of kind why) and
 * ends the loop; called when the drain after the deadline takes too
 * long or the server stalled. */
void acmeload_flow_abort(struct acmeload *run, const char *why);

/* ---- stats.c ------------------------------------------------------------ */

extern const char *const acmeload_step_names[ACMELOAD_STEP__MAX];

/* Records one latency sample of step (microseconds). */
void acmeload_sample(struct acmeload_stats *s, enum acmeload_step step,
    uint64_t us);
/* Counts one error of kind "step: what"; returns how many of that kind
 * there are now (1: first seen, worth a log line). */
uint64_t acmeload_error(struct acmeload_stats *s, enum acmeload_step step,
    const char *what);
void acmeload_stats_free(struct acmeload_stats *s);
/* The report as JSON (new reference); NULL on allocation failure. */
json_t *acmeload_report_json(struct acmeload *run);
/* The human summary on stdout. */
void acmeload_report_text(struct acmeload *run);
/* Writes every full-flow latency (microseconds), one per line, to path
 * (so that runs can be merged before taking percentiles). 0 or -1. */
int acmeload_samples_write(struct acmeload *run, const char *path);

#endif
