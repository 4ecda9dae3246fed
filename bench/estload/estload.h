/*
 * bench/estload — concurrent EST simpleenroll load (RFC 7030 §4.2.1)
 * against any EST server, as devices enrol: Basic authentication, a
 * fresh P-256 key and CSR per enrollment (made before the timed part),
 * the server's certificate verified against a trust bundle, each answer
 * decoded (base64 PKCS#7 certs-only holding a certificate).
 *
 * Phases, each WARMUP + SECONDS long with the same connections:
 *   handshake  GET /.well-known/est/cacerts on a new TLS 1.3 connection
 *              each: the server's handshake rate, the limit of ...
 *   fresh      POST simpleenroll on a new TLS 1.3 connection each;
 *   keepalive  POST simpleenroll, many per connection.
 *
 * One epoll loop per thread drives its share of the connections through
 * non-blocking OpenSSL, so the client stays cheap next to the server.
 * Internal header of the tool (estload.c, conn.c, csr.c).
 */
#ifndef PKID_BENCH_ESTLOAD_H
#define PKID_BENCH_ESTLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define ESTLOAD_HOST_MAX	256
#define ESTLOAD_PATH_MAX	512	/* request path */
#define ESTLOAD_AUTH_MAX	1024	/* "Basic ..." header value */
#define ESTLOAD_REQ_MAX		8192	/* one request: headers + CSR */
#define ESTLOAD_RESP_MAX	(256 * 1024)	/* one response */
#define ESTLOAD_LAT_MAX		(2u * 1024 * 1024)	/* samples per thread */
#define ESTLOAD_ERR_TEXT_MAX	256
#define ESTLOAD_CONNS_MAX	4096
#define ESTLOAD_THREADS_MAX	64
#define ESTLOAD_EVENTS_MAX	256	/* epoll_wait batch */
#define ESTLOAD_TICK_MS		50	/* epoll timeout: phase/timeouts */

enum estload_mode {
	ESTLOAD_HANDSHAKE,	/* GET /healthz, new connection each */
	ESTLOAD_CACERTS,	/* GET cacerts, new connection each */
	ESTLOAD_FRESH,		/* simpleenroll, new connection each */
	ESTLOAD_KEEPALIVE,	/* simpleenroll, persistent connections */
	ESTLOAD_MODE__MAX
};

enum estload_phase {
	ESTLOAD_WARMING,
	ESTLOAD_MEASURING,
	ESTLOAD_STOPPED
};

/* Failure kinds, counted separately; statuses other than 200 are kept
 * by code in estload_stats.status. */
enum estload_err {
	ESTLOAD_E_CONNECT,	/* TCP connect failed */
	ESTLOAD_E_HANDSHAKE,	/* TLS handshake failed (or not TLS 1.3) */
	ESTLOAD_E_IO,		/* TLS read/write error */
	ESTLOAD_E_CLOSED,	/* server closed before a full answer */
	ESTLOAD_E_PARSE,	/* malformed or oversized HTTP answer */
	ESTLOAD_E_BODY,		/* 200 without a certificate in PKCS#7 */
	ESTLOAD_E_TIMEOUT,	/* no answer within --timeout */
	ESTLOAD_E_STATUS,	/* an HTTP status other than 200 */
	ESTLOAD_E__MAX
};

#define ESTLOAD_STATUS_MAX	600	/* HTTP statuses counted by code */

/* CSRs made before the timed part: base64 DER, one line each. */
struct estload_csrs {
	char		**b64;
	size_t		 n;
	_Atomic uint64_t next;		/* next to hand out (wraps) */
};

/* Configuration and shared state. */
struct estload {
	char		 host[ESTLOAD_HOST_MAX];	/* IP literal */
	int		 port;
	char		 label[ESTLOAD_PATH_MAX];	/* "" or "label/" */
	char		 auth[ESTLOAD_AUTH_MAX];	/* Basic header value */
	const char	*cacert;
	int		 connections;
	int		 threads;
	double		 seconds;
	double		 warmup;
	double		 timeout;	/* one request, seconds */
	bool		 check_body;	/* decode and check answers */
	SSL_CTX		*tls;		/* TLS 1.3 only, verifying */
	pthread_mutex_t	 pin_lock;
	X509		*pinned;	/* server certificate verified */
	struct estload_csrs csrs;
	enum estload_mode mode;		/* of the running phase */
	_Atomic int	 phase;
};

/* Counters of one thread (then of the phase). */
struct estload_stats {
	uint64_t	 ok;			/* measured successes */
	uint64_t	 err[ESTLOAD_E__MAX];	/* measured failures */
	uint64_t	 status[ESTLOAD_STATUS_MAX];
	uint64_t	 connects;		/* connections opened, measured */
	uint64_t	 bytes_in;
	char		 first_err[ESTLOAD_ERR_TEXT_MAX];
};

struct estload_conn;

/* One thread: an epoll loop over its connections. */
struct estload_thread {
	struct estload		*el;
	int			 idx;
	pthread_t		 tid;
	int			 epfd;
	struct estload_conn	*conns;
	int			 nconns;
	struct estload_stats	 st;
	uint32_t		*lat;		/* microseconds, measured */
	size_t			 nlat;
};

/* conn.c */
/* Runs the thread's connections until the phase is stopped. */
void *estload_thread_main(void *arg);
/* Allocates t's connections (t->nconns); 0 or -1. */
int estload_thread_init(struct estload_thread *t);
/* Frees what estload_thread_init allocated; accepts a zeroed t. */
void estload_thread_free(struct estload_thread *t);
/* Monotonic seconds. */
double estload_now(void);
/* The name of an error kind ("connect", ...). */
const char *estload_err_name(enum estload_err e);
/* The name of a mode ("handshake", ...). */
const char *estload_mode_name(enum estload_mode m);

/* csr.c */
/* Makes n CSRs (fresh P-256 key each, subject CN=device-<i>,O=pkid
 * bench) with the given number of threads. 0 or -1. */
int estload_csrs_make(struct estload_csrs *c, size_t n, int threads);
void estload_csrs_free(struct estload_csrs *c);
/* The next CSR's base64, round robin (it wraps when the pool is
 * exhausted; estload_csrs_used tells). */
const char *estload_csrs_take(struct estload_csrs *c);
/* How many CSRs were handed out in total. */
uint64_t estload_csrs_used(const struct estload_csrs *c);

#endif
