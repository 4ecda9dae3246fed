/*
 * server/ — the daemon: listeners, TLS, worker threads, the route table,
 * request limits, access log, /healthz and /metrics, public files (CRLs
 * and CA certificates), the jobs thread and graceful drain. It knows no
 * protocol internals: protocols register {prefix, handler} routes.
 *
 * Threads: N workers each own an event_base and an evhttp on the shared
 * listening sockets; handlers run on a worker and must not block on the
 * network. One jobs thread runs queued work (validations, CRLs, renewals).
 */
#ifndef PKID_SERVER_H
#define PKID_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "conf/conf.h"

#define SERVER_ROUTES_MAX	64
#define SERVER_QUEUE_MAX	4096	/* pending jobs */
#define SERVER_TIMERS_MAX	32	/* server_timer() entries */

enum server_listener {
	SERVER_HTTPS,
	SERVER_HTTP,
	SERVER_MGMT,
	SERVER_LISTENER__MAX
};
#define SERVER_ON(l)	(1u << (l))

struct server;
struct event_base;

/*
 * A route: requests on one of `listeners` whose path starts with `prefix`
 * (longest prefix wins) go to handle(). Before calling it the server has
 * checked the header limit and that the body is at most max_body bytes;
 * refusals go through error() so that each protocol answers in its own
 * format. Every handler sends exactly one reply.
 */
struct server_route {
	const char	*name;		/* metrics label, e.g. "mgmt" */
	const char	*prefix;	/* "/api/v1/" */
	unsigned	 listeners;	/* SERVER_ON(SERVER_MGMT) | ... */
	size_t		 max_body;	/* 0: server.max_body_bytes */
	void		(*handle)(struct evhttp_request *req, void *arg);
	void		(*error)(struct evhttp_request *req, int status,
			    const char *msg, void *arg);
	void		*arg;
};

/* Creates the server (no sockets yet). tls is used for the https and mgmt
 * listeners and is borrowed (up-ref'd). NULL on failure. */
struct server *server_new(const struct conf *cf, SSL_CTX *tls);
void server_free(struct server *srv);
/* Adds a route; -1 when the table is full. Call before server_run(). */
int server_route_add(struct server *srv, const struct server_route *r);
/* Binds the listeners (log line with each URL), starts the workers and the
 * jobs thread, and blocks until SIGTERM/SIGINT; then stops accepting,
 * lets in-flight requests finish (at most server.drain_seconds) and
 * returns 0. -1 if a listener cannot be bound. */
int server_run(struct server *srv);
/*
 * Deferred durability: with these hooks (the store's, see store_defer)
 * the workers commit without waiting for the disk, and the server holds
 * each reply until the commits its worker made before it are durable,
 * answering other clients meanwhile; a job queued after such a commit
 * runs once it is durable. Every hook gets arg. Without them (NULL
 * hooks) replies go out at once and commits wait for the disk.
 */
struct server_durability {
	int	 (*thread_start)(void *arg);	/* on each worker: 0 or -1 */
	uint64_t (*pending)(void *arg);		/* the calling thread's
						   ticket, 0: nothing */
	int	 (*state)(void *arg, uint64_t ticket);	/* 1 durable, 0 not
							   yet, -1 never */
	void	 (*request)(void *arg, uint64_t ticket);	/* async */
	int	 (*wait)(void *arg, uint64_t ticket);		/* blocking */
	int	 (*subscribe)(void *arg, void (*fn)(void *), void *fnarg);
	void	 (*unsubscribe)(void *arg, void (*fn)(void *), void *fnarg);
	void	*arg;
};
/* Sets the hooks (copied); call before server_run(). */
void server_set_durability(struct server *srv,
    const struct server_durability *d);
/* Makes server_run() return as if signalled (tests, fatal errors). */
void server_stop(struct server *srv);
/* Queues fn(arg) on the jobs thread; -1 when the queue is full. */
int server_job(struct server *srv, void (*fn)(void *arg), void *arg);
/* The actual bound address of a listener ("127.0.0.1:8443"), valid after
 * binding. */
const char *server_bound(struct server *srv, enum server_listener l);

/* The jobs thread's event loop, for modules that drive their own I/O
 * there (libcurl multi, c-ares). Exists from server_new() to
 * server_free(); use it from the jobs thread (a job or a timer) or through
 * libevent's thread-safe calls (event_add, event_active). */
struct event_base *server_jobs_base(struct server *srv);
/* Runs fn(arg) on the jobs thread every `seconds` seconds (the first run
 * one period after this call, or as soon as server_run() starts the jobs
 * thread if that is later) until the server stops. -1 when seconds < 1 or
 * SERVER_TIMERS_MAX timers exist. */
int server_timer(struct server *srv, int seconds, void (*fn)(void *arg),
    void *arg);

/* Builds the TLS context (TLS 1.2 and 1.3) from a certificate chain and
 * key in PEM. NULL on failure. */
SSL_CTX *server_tls_ctx(const char *chain_pem, const char *key_pem);
/* Makes tls (borrowed, up-ref'd) the context of the TLS connections
 * accepted from now on, e.g. after the server certificate was renewed;
 * connections in flight keep theirs. Thread-safe. 0, or -1 when tls is
 * NULL or the server has no TLS listener. */
int server_tls_reload(struct server *srv, SSL_CTX *tls);

/* ---- helpers for handlers ---- */

/* Which listener a request arrived on. */
enum server_listener server_req_listener(struct evhttp_request *req);
/* The TLS session of the request, NULL on plain HTTP. */
SSL *server_req_ssl(struct evhttp_request *req);
/* The request body as one contiguous NUL-terminated block (owned by the
 * request); *len set. */
const char *server_req_body(struct evhttp_request *req, size_t *len);
/* The path of the request URI without query, percent-decoding not done. */
const char *server_req_path(struct evhttp_request *req);
/* Sends status with body (may be NULL/0) and content type. */
void server_reply(struct evhttp_request *req, int status, const char *ctype,
    const void *body, size_t len);
/* Sends a JSON body (steals j). */
void server_reply_json(struct evhttp_request *req, int status, json_t *j);

#endif
