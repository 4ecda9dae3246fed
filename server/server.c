/*
 * server/server.c — listeners, worker threads, routing, the access log,
 * the built-in routes, the jobs thread and graceful drain.
 *
 * Threads and what each may touch:
 *
 *   control (the caller of server_run): owns the listening sockets, the
 *	signal events and the drain timer. It talks to the other threads
 *	only through event_active() on their bases (made thread-safe by
 *	evthread_use_pthreads) and a few atomics.
 *   worker i: owns one event_base, one evhttp per listener (accepting on
 *	a dup of the shared listening socket) and every request that
 *	arrives there. A request is only ever touched on its worker: evhttp
 *	is not thread-safe, so a handler that answers later (from a timer)
 *	answers from the same thread.
 *   jobs: owns its event_base; runs queued jobs and periodic timers.
 *
 * Per-request state (start time, route, body copy, peer) lives in a
 * struct server_reqctx that a worker keeps in a small hash keyed by the
 * evhttp_request pointer: evhttp has no user pointer on a request, and
 * the thread-local "current worker" makes the lookup lock-free. The state
 * ends in exactly one place, server_req_finish(), which writes the access
 * log line, counts the metric and decrements the in-flight count that
 * drain waits on. It is reached from evhttp's on-complete callback (the
 * reply was written), from the connection close callback (the connection
 * died first), or from server_reply() on a request whose client already
 * left.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "conf/conf.h"
#include "server/server.h"

#define SERVER_BACKLOG		1024	/* listen(2) backlog */
#define SERVER_WORKERS_MAX	256	/* cap on worker threads */
/* Default workers per core. A worker runs each request to its end,
 * including the wait for the commit's log flush and for page locks, so
 * with one per core a core idles while its worker waits on the disk; two
 * keep it busy (ACME at 32 flows on 2 cores: 384 -> 437 orders/s, mean of
 * three runs each), more gained nothing measurable. */
#define SERVER_WORKERS_PER_CORE	2
#define SERVER_BUILTIN_ROUTES	4	/* /healthz /metrics /crl/ /ca/ */
#define SERVER_REQ_BUCKETS	256	/* per-worker request hash size */
#define SERVER_JOBS_BATCH	64	/* jobs per wakeup before yielding */
#define SERVER_DRAIN_POLL_MS	20	/* drain progress check interval */
#define SERVER_PUBLIC_FILE_MAX	(16 * 1024 * 1024)	/* CRL / CA file */
/*
 * libevent refuses larger bodies itself, with an HTML 413 that no route
 * sees (libevent 2.1 has no hook for it). Routes enforce their own,
 * smaller limits (default server.max_body_bytes) in their protocol's error
 * format, so this ceiling only has to stop abuse, not give the answer.
 */
#define SERVER_BODY_CEILING	(16 * 1024 * 1024)
#define SERVER_METRICS_MAX	(8 * 1024 * 1024)	/* /metrics body */
#define SERVER_JSON_MAX		(64 * 1024 * 1024)	/* JSON reply body */
#define SERVER_ADDR_MAX		64	/* "[v6]:port" text */
#define SERVER_LOG_PATH_MAX	256	/* path bytes kept for the access log */
#define SERVER_MSG_PATH_MAX	200	/* path bytes quoted in errors */
#define SERVER_ID_MAX		64	/* common_id_valid() length limit */
#define SERVER_LABELS_MAX	160	/* metric label text */
#define SERVER_HTTPDATE_MAX	32	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define SERVER_ETAG_BYTES	16	/* SHA-256 prefix in a public ETag */
#define SERVER_ETAG_MAX		(2 * SERVER_ETAG_BYTES + 3)	/* quoted */
#define SERVER_STATUS_GONE	499	/* logged when the client left first */

#define SERVER_METHODS	(EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | \
	EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS)

static const char *const server_listener_names[SERVER_LISTENER__MAX] = {
	[SERVER_HTTPS] = "https",
	[SERVER_HTTP] = "http",
	[SERVER_MGMT] = "mgmt",
};

static const bool server_listener_tls[SERVER_LISTENER__MAX] = {
	[SERVER_HTTPS] = true,
	[SERVER_HTTP] = false,
	[SERVER_MGMT] = true,
};

struct server_rt {			/* a registered route (owned copy) */
	char		*name;
	char		*prefix;
	size_t		 prefix_len;
	unsigned	 listeners;
	size_t		 max_body;	/* 0: server max */
	void		(*handle)(struct evhttp_request *, void *);
	void		(*error)(struct evhttp_request *, int, const char *,
			    void *);
	void		*arg;
};

struct server_worker;

struct server_http {			/* one listener on one worker */
	struct server_worker		*w;
	enum server_listener		 l;
	struct evhttp			*http;
	struct evhttp_bound_socket	*bound;	/* NULL once not accepting */
};

struct server_reqctx {			/* one dispatched request */
	struct server_reqctx	*next;		/* hash chain */
	struct server_worker	*w;
	struct evhttp_request	*req;
	const struct server_rt	*route;		/* NULL: no route */
	enum server_listener	 l;
	const char		*method;
	uint64_t		 start_ms;
	char			*body;		/* NUL-terminated copy */
	size_t			 body_len;
	size_t			 sent;		/* response body bytes */
	int			 status;
	bool			 replied;	/* server_reply() was called */
	bool			 detached;	/* connection gone, reply due */
	bool			 held;		/* reply waits for a flush */
	struct server_reqctx	*held_next;
	uint64_t		 ticket;	/* held: durable when this is */
	char			 peer[SERVER_ADDR_MAX];
	char			 path[SERVER_LOG_PATH_MAX];
};

struct server_worker {
	struct server		*srv;
	int			 idx;
	pthread_t		 thread;
	bool			 started;
	struct event_base	*base;
	struct event		*accept_off_ev;	/* stop accepting (drain) */
	struct event		*shutdown_ev;	/* leave the loop */
	struct event		*durable_ev;	/* a log flush completed */
	bool			 subscribed;	/* durable_ev to the flusher */
	atomic_int		 nheld;		/* held, or about to be: the
						   flusher wakes only those */
	struct server_reqctx	*held_head;	/* replies held, FIFO */
	struct server_reqctx	*held_tail;
	struct server_http	 http[SERVER_LISTENER__MAX];
	struct server_reqctx	*reqs[SERVER_REQ_BUCKETS];
};

struct server_listen {
	char	*addr;			/* configured "host:port", NULL: off */
	int	 fd;			/* listening socket, -1 when closed */
	char	 bound[SERVER_ADDR_MAX];
};

struct server_job_ent {
	void		(*fn)(void *);
	void		*arg;
	uint64_t	 ticket;	/* durable before the job runs */
};

struct server_timer_ent {
	struct event	*ev;
	void		(*fn)(void *);
	void		*arg;
};

struct server {
	/* configuration, copied at server_new() */
	char			*data_dir;
	int			 workers_cf;
	bool			 access_log;
	struct server_durability dur;		/* hooks; pending NULL: off */
	size_t			 max_header_bytes;
	size_t			 max_body_bytes;
	int			 timeout_seconds;
	int			 drain_seconds;
	pthread_mutex_t		 tls_lock;	/* tls (server_tls_reload) */
	SSL_CTX			*tls;		/* for new TLS connections */

	struct server_rt	 routes[SERVER_ROUTES_MAX +
				    SERVER_BUILTIN_ROUTES];
	size_t			 nroutes;
	size_t			 nuser_routes;

	struct server_listen	 listens[SERVER_LISTENER__MAX];
	atomic_bool		 bound_ready;	/* listens[].bound valid */

	struct server_worker	*workers;
	int			 nworkers;
	atomic_bool		 ran;		/* server_run() was entered */
	atomic_bool		 draining;
	atomic_int		 inflight;	/* dispatched, not finished */
	atomic_int		 accept_acks;	/* workers done accepting */

	/* control thread */
	pthread_mutex_t		 lock;		/* stop_requested, stop_ev */
	bool			 stop_requested;
	struct event_base	*cbase;
	struct event		*stop_ev;
	struct event		*sigterm_ev;
	struct event		*sigint_ev;
	struct event		*drain_ev;
	uint64_t		 drain_deadline;	/* common_mono_ms() */

	/* jobs thread */
	struct event_base	*jbase;
	struct event		*jwake;
	pthread_t		 jthread;
	bool			 jstarted;
	pthread_mutex_t		 jlock;		/* queue and timers */
	struct server_job_ent	*jq;		/* ring of SERVER_QUEUE_MAX */
	struct server_job_ent	*jwait;		/* ring of SERVER_QUEUE_MAX:
						   jobs thread only, waiting
						   for their ticket */
	size_t			 jwhead;
	size_t			 jwcount;
	atomic_bool		 jsubscribed;	/* jwake on each flush */
	atomic_bool		 jwaiting;	/* ...while jobs wait */
	size_t			 jhead;
	size_t			 jcount;
	bool			 jclosed;
	struct server_timer_ent	 timers[SERVER_TIMERS_MAX];
	size_t			 ntimers;
};

/* The worker whose loop runs on this thread (NULL elsewhere). */
static __thread struct server_worker *server_worker_self;

static pthread_once_t server_once = PTHREAD_ONCE_INIT;

static void server_route_error_default(struct evhttp_request *, int,
    const char *, void *);

/* ---- process-wide setup ----------------------------------------------- */

/* Routes libevent's own diagnostics into our log. */
static void
server_libevent_log(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_DEBUG:
		log_debug("libevent: %s", msg);
		break;
	case EVENT_LOG_MSG:
		log_info("libevent: %s", msg);
		break;
	case EVENT_LOG_WARN:
		log_warn("libevent: %s", msg);
		break;
	default:
		log_err("libevent: %s", msg);
		break;
	}
}

/* Must precede the first event_base: makes bases lockable so other
 * threads may event_active() them. */
static void
server_global_init(void)
{
	if (evthread_use_pthreads() == -1)
		log_err("server: evthread_use_pthreads failed");
	event_set_log_callback(server_libevent_log);
}

/* ---- small helpers ---------------------------------------------------- */

static const char *
server_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:		return "GET";
	case EVHTTP_REQ_POST:		return "POST";
	case EVHTTP_REQ_HEAD:		return "HEAD";
	case EVHTTP_REQ_PUT:		return "PUT";
	case EVHTTP_REQ_DELETE:		return "DELETE";
	case EVHTTP_REQ_OPTIONS:	return "OPTIONS";
	case EVHTTP_REQ_TRACE:		return "TRACE";
	case EVHTTP_REQ_CONNECT:	return "CONNECT";
	case EVHTTP_REQ_PATCH:		return "PATCH";
	default:			return "OTHER";
	}
}

/* Reason phrase for a status code (RFC 9110 section 15). */
static const char *
server_status_phrase(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default:
		break;
	}
	if (status >= 200 && status < 300)
		return "Success";
	if (status >= 300 && status < 400)
		return "Redirection";
	if (status >= 400 && status < 500)
		return "Client Error";
	return "Server Error";
}

/* Copies at most outlen-1 bytes of s, replacing bytes outside printable
 * ASCII, '"' and '\\' with '?', so that client input is safe in a JSON
 * message and in the quoted field of an access log line. */
static void
server_printable(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ?
		    (char)c : '?';
	}
	out[i] = '\0';
}

/* "addr:port", or "[addr]:port" for IPv6, of a socket address. */
static int
server_addr_format(const struct sockaddr *sa, socklen_t salen, char *out,
    size_t outlen)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getnameinfo(sa, salen, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return -1;
	if (sa->sa_family == AF_INET6)
		return common_path(out, outlen, "[%s]:%s", host, port);
	return common_path(out, outlen, "%s:%s", host, port);
}

/* RFC 9110 IMF-fixdate of t; locale-independent. */
static void
server_http_date(time_t t, char *out, size_t outlen)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		out[0] = '\0';
		return;
	}
	snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d GMT",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- per-request state ------------------------------------------------ */

static size_t
server_req_hash(const struct evhttp_request *req)
{
	uint64_t v = (uint64_t)(uintptr_t)req;

	v ^= v >> 29;
	v *= UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(v >> 32) % SERVER_REQ_BUCKETS;
}

static void
server_reqctx_insert(struct server_worker *w, struct server_reqctx *ctx)
{
	size_t h = server_req_hash(ctx->req);

	ctx->next = w->reqs[h];
	w->reqs[h] = ctx;
}

static void
server_reqctx_remove(struct server_worker *w, struct server_reqctx *ctx)
{
	struct server_reqctx **pp;

	for (pp = &w->reqs[server_req_hash(ctx->req)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == ctx) {
			*pp = ctx->next;
			return;
		}
	}
}

/* The state of req, looked up on the calling worker; NULL when req was
 * not dispatched by this thread's worker or has finished. */
static struct server_reqctx *
server_reqctx_find(struct evhttp_request *req)
{
	struct server_worker *w = server_worker_self;
	struct server_reqctx *ctx;

	if (w == NULL || req == NULL)
		return NULL;
	for (ctx = w->reqs[server_req_hash(req)]; ctx != NULL; ctx = ctx->next)
		if (ctx->req == req)
			return ctx;
	return NULL;
}

/* Takes ctx off its worker's list of held replies. */
static void
server_held_remove(struct server_worker *w, struct server_reqctx *ctx)
{
	struct server_reqctx **pp, *prev = NULL;

	for (pp = &w->held_head; *pp != NULL; pp = &(*pp)->held_next) {
		if (*pp == ctx) {
			*pp = ctx->held_next;
			if (w->held_tail == ctx)
				w->held_tail = prev;
			break;
		}
		prev = *pp;
	}
	ctx->held = false;
	ctx->held_next = NULL;
	atomic_fetch_sub(&w->nheld, 1);
}

/*
 * Ends a request's life as far as the server is concerned: one access
 * log line, one metric increment, the in-flight count down, ctx freed.
 * aborted: the connection ended before the reply was delivered.
 */
static void
server_req_finish(struct server_reqctx *ctx, bool aborted)
{
	struct server_worker *w = ctx->w;
	struct server *srv = w->srv;
	char labels[SERVER_LABELS_MAX];
	uint64_t ms = common_mono_ms() - ctx->start_ms;
	int status = ctx->status;

	if (aborted && !ctx->replied)
		status = SERVER_STATUS_GONE;
	if (srv->access_log)
		log_info("access %s %s \"%s %s\" %d %zu %llums%s",
		    server_listener_names[ctx->l], ctx->peer, ctx->method,
		    ctx->path, status, ctx->sent, (unsigned long long)ms,
		    aborted ? " aborted" : "");
	snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"",
	    ctx->route != NULL ? ctx->route->name : "none", status);
	common_metric_inc("pkid_http_requests_total", labels);

	server_reqctx_remove(w, ctx);
	if (ctx->held)
		server_held_remove(w, ctx);
	free(ctx->body);
	free(ctx);
	atomic_fetch_sub(&srv->inflight, 1);
}

/* evhttp on-complete callback: the reply has been written out. */
static void
server_req_complete(struct evhttp_request *req, void *arg)
{
	struct server_reqctx *ctx = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *cl;

	if (evcon != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	ctx->status = evhttp_request_get_response_code(req);
	if (!ctx->replied) {
		/* Replied with evhttp_send_reply() directly: take the
		 * length evhttp computed. */
		cl = evhttp_find_header(evhttp_request_get_output_headers(req),
		    "Content-Length");
		ctx->sent = cl != NULL ? (size_t)strtoull(cl, NULL, 10) : 0;
	}
	server_req_finish(ctx, false);
}

/*
 * evhttp close callback of a connection with a request in flight. When
 * evhttp detached the request (client timeout or EOF before the handler
 * replied) the handler still owns it and will reply; server_reply() then
 * finishes it. Otherwise evhttp frees the request right after this call.
 */
static void
server_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct server_reqctx *ctx = arg;

	(void)evcon;
	if (evhttp_request_get_connection(ctx->req) == NULL) {
		ctx->detached = true;
		return;
	}
	server_req_finish(ctx, true);
}

/* ---- replies ---------------------------------------------------------- */

/* Hands the reply to evhttp (server_reply, or a held reply released). */
static void
server_reply_send(struct evhttp_request *req, struct server_reqctx *ctx,
    int status)
{
	struct evhttp_connection *evcon;
	struct bufferevent *bev;

	/* evhttp frees a detached request in evhttp_send_reply() without
	 * calling on-complete: finish it here. */
	if (ctx != NULL && (ctx->detached ||
	    evhttp_request_get_connection(req) == NULL))
		server_req_finish(ctx, true);
	evcon = evhttp_request_get_connection(req);
	bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	evhttp_send_reply(req, status, server_status_phrase(status), NULL);
	/*
	 * evhttp queues the status line and headers and the body as separate
	 * buffer chunks; over TLS each chunk becomes its own record and
	 * write, which clients with Nagle-style coalescing (and EST devices)
	 * pay for with a stall. One contiguous chunk goes out as one record.
	 */
	if (bev != NULL)
		evbuffer_pullup(bufferevent_get_output(bev), -1);
}

/*
 * Holds ctx's reply when its worker made commits that are not durable
 * yet (deferred durability): the reply goes out from
 * server_worker_durable once they are. True when held. A request whose
 * connection is gone is not held (nobody would get the reply).
 */
static bool
server_reply_hold(struct server_reqctx *ctx)
{
	struct server_worker *w = ctx->w;
	struct server *srv = w->srv;
	uint64_t t;

	if (srv->dur.pending == NULL || !w->subscribed || ctx->detached ||
	    evhttp_request_get_connection(ctx->req) == NULL)
		return false;
	/* counted first: a flush that completes after pending() looked
	 * then sees it and wakes this worker */
	atomic_fetch_add(&w->nheld, 1);
	if ((t = srv->dur.pending(srv->dur.arg)) == 0) {
		atomic_fetch_sub(&w->nheld, 1);
		return false;
	}
	ctx->held = true;
	ctx->ticket = t;
	ctx->held_next = NULL;
	if (w->held_tail != NULL)
		w->held_tail->held_next = ctx;
	else
		w->held_head = ctx;
	w->held_tail = ctx;
	/* A flush that completes from here on wakes durable_ev; one that
	 * completed since pending() looked did too. One that failed
	 * before may wake nobody again: look once more. */
	srv->dur.request(srv->dur.arg, t);
	if (srv->dur.state(srv->dur.arg, t) != 0)
		event_active(w->durable_ev, EV_READ, 0);
	return true;
}

/*
 * durable_ev (a flush completed): sends the held replies whose commits
 * are now durable. A worker's tickets only grow, so the list is in
 * ticket order. A reply whose commit can never be durable (the log
 * flush failed) becomes a 500: nothing may say it was done.
 */
static void
server_worker_durable(evutil_socket_t fd, short what, void *arg)
{
	static const char lost[] = "internal error: the change could not be "
	    "written to disk\n";
	struct server_worker *w = arg;
	struct server *srv = w->srv;
	struct server_reqctx *ctx;
	struct evkeyvalq *out;
	int state;

	(void)fd;
	(void)what;
	while ((ctx = w->held_head) != NULL) {
		if ((state = srv->dur.state(srv->dur.arg, ctx->ticket)) == 0)
			break;
		server_held_remove(w, ctx);
		if (state < 0) {
			out = evhttp_request_get_output_headers(ctx->req);
			evbuffer_drain(evhttp_request_get_output_buffer(
			    ctx->req), (size_t)-1);
			evhttp_remove_header(out, "Content-Type");
			evhttp_remove_header(out, "Content-Length");
			evhttp_add_header(out, "Content-Type",
			    "text/plain; charset=utf-8");
			evbuffer_add(evhttp_request_get_output_buffer(
			    ctx->req), lost, sizeof(lost) - 1);
			ctx->status = 500;
			ctx->sent = sizeof(lost) - 1;
		}
		server_reply_send(ctx->req, ctx, ctx->status);
	}
}

/* Flusher thread: a flush completed (only wakes the worker). */
static void
server_worker_kick(void *arg)
{
	struct server_worker *w = arg;

	if (atomic_load(&w->nheld) > 0)
		event_active(w->durable_ev, EV_READ, 0);
}

/*
 * Sends the reply: status with its reason phrase, Content-Type when ctype
 * is set, body (not for HEAD, 1xx, 204, 304; HEAD gets the length). While
 * draining, asks the client to close the connection. Must run on the
 * request's worker thread; every request gets exactly one reply.
 */
void
server_reply(struct evhttp_request *req, int status, const char *ctype,
    const void *body, size_t len)
{
	struct server_reqctx *ctx = server_reqctx_find(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct server *srv = ctx != NULL ? ctx->w->srv :
	    server_worker_self != NULL ? server_worker_self->srv : NULL;
	char lenbuf[32];
	size_t sent = 0;
	bool nobody;

	if (status < 100 || status > 599) {
		log_err("reply: invalid status %d, sending 500", status);
		status = 500;
		body = NULL;
		len = 0;
	}
	nobody = status < 200 || status == 204 || status == 304;
	if (ctype != NULL && !nobody) {
		evhttp_remove_header(out, "Content-Type");
		evhttp_add_header(out, "Content-Type", ctype);
	}
	if (srv != NULL && atomic_load(&srv->draining)) {
		evhttp_remove_header(out, "Connection");
		evhttp_add_header(out, "Connection", "close");
	}
	if (!nobody && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		snprintf(lenbuf, sizeof(lenbuf), "%zu", len);
		evhttp_remove_header(out, "Content-Length");
		evhttp_add_header(out, "Content-Length", lenbuf);
	} else if (!nobody && body != NULL && len > 0) {
		if (evbuffer_add(evhttp_request_get_output_buffer(req), body,
		    len) == -1)
			log_err("reply: %zu byte body: out of memory", len);
		else
			sent = len;
	}
	if (ctx != NULL) {
		ctx->replied = true;
		ctx->status = status;
		ctx->sent = sent;
		if (server_reply_hold(ctx))
			return;
	}
	server_reply_send(req, ctx, status);
}

static int
server_json_dump_cb(const char *buf, size_t size, void *data)
{
	return common_buf_add(data, buf, size);
}

/* Compact JSON plus "\n" as application/json; steals j. */
void
server_reply_json(struct evhttp_request *req, int status, json_t *j)
{
	static const char internal[] = "{\"error\":{\"code\":\"internal\","
	    "\"message\":\"cannot encode the response\"}}\n";
	struct common_buf b;

	common_buf_init(&b, SERVER_JSON_MAX);
	if (j == NULL || json_dump_callback(j, server_json_dump_cb, &b,
	    JSON_COMPACT) == -1 || common_buf_add(&b, "\n", 1) == -1) {
		log_err("reply: cannot encode the JSON body (status %d)",
		    status);
		server_reply(req, 500, "application/json", internal,
		    sizeof(internal) - 1);
		goto out;
	}
	server_reply(req, status, "application/json", b.data, b.len);
out:
	json_decref(j);
	common_buf_free(&b);
}

/* {"error": {"code", "message"}} with status. */
static void
server_reply_error(struct evhttp_request *req, int status, const char *code,
    const char *msg)
{
	json_t *j;

	j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	server_reply_json(req, status, j);
}

/* The error answer of routes that bring no error callback. */
static void
server_route_error_default(struct evhttp_request *req, int status,
    const char *msg, void *arg)
{
	const char *code;

	(void)arg;
	switch (status) {
	case 400: code = "invalid_request"; break;
	case 401: code = "unauthorized"; break;
	case 403: code = "forbidden"; break;
	case 404: code = "not_found"; break;
	case 405: code = "method_not_allowed"; break;
	case 413: code = "too_large"; break;
	case 503: code = "unavailable"; break;
	default: code = status >= 500 ? "internal" : "invalid_request"; break;
	}
	server_reply_error(req, status, code, msg);
}

/* ---- request helpers --------------------------------------------------- */

enum server_listener
server_req_listener(struct evhttp_request *req)
{
	struct server_reqctx *ctx = server_reqctx_find(req);
	struct server_worker *w = server_worker_self;
	struct evhttp_connection *evcon;
	struct evhttp *http;
	int l;

	if (ctx != NULL)
		return ctx->l;
	/* Not (or no longer) dispatched: map the connection's evhttp. */
	if (w != NULL && (evcon = evhttp_request_get_connection(req)) != NULL) {
		http = evhttp_connection_get_server(evcon);
		for (l = 0; l < SERVER_LISTENER__MAX; l++)
			if (w->http[l].http != NULL && w->http[l].http == http)
				return (enum server_listener)l;
	}
	log_err("server_req_listener: request not owned by this thread's "
	    "worker");
	return SERVER_LISTENER__MAX;
}

SSL *
server_req_ssl(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;

	if (evcon == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return NULL;
	return bufferevent_openssl_get_ssl(bev);
}

/*
 * The body as one NUL-terminated block owned by the request state (valid
 * until the reply is written); the NUL is not counted in *len. The copy
 * is made once, on the first call.
 */
const char *
server_req_body(struct evhttp_request *req, size_t *len)
{
	struct server_reqctx *ctx = server_reqctx_find(req);
	struct evbuffer *in;
	size_t n;

	*len = 0;
	if (ctx == NULL) {
		log_err("server_req_body: request not owned by this thread's "
		    "worker");
		return NULL;
	}
	if (ctx->body == NULL) {
		in = evhttp_request_get_input_buffer(req);
		n = evbuffer_get_length(in);
		if ((ctx->body = malloc(n + 1)) == NULL) {
			log_err("server_req_body: %zu bytes: out of memory", n);
			return NULL;
		}
		if (n > 0 && evbuffer_copyout(in, ctx->body, n) !=
		    (ev_ssize_t)n) {
			log_err("server_req_body: copying %zu bytes failed", n);
			free(ctx->body);
			ctx->body = NULL;
			return NULL;
		}
		ctx->body[n] = '\0';
		ctx->body_len = n;
	}
	*len = ctx->body_len;
	return ctx->body;
}

const char *
server_req_path(struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

	return path != NULL ? path : "";
}

/* ---- routing and dispatch --------------------------------------------- */

/* Longest prefix among the routes enabled on l; NULL when none. */
static const struct server_rt *
server_route_match(const struct server *srv, enum server_listener l,
    const char *path)
{
	const struct server_rt *best = NULL;
	size_t i;

	for (i = 0; i < srv->nroutes; i++) {
		const struct server_rt *r = &srv->routes[i];

		if ((r->listeners & SERVER_ON(l)) == 0)
			continue;
		if (best != NULL && r->prefix_len <= best->prefix_len)
			continue;
		if (strncmp(path, r->prefix, r->prefix_len) == 0)
			best = r;
	}
	return best;
}

/*
 * evhttp's generic callback on every listener of every worker: records
 * the request state, finds the route, checks the body against the route's
 * limit and calls the handler.
 */
static void
server_dispatch(struct evhttp_request *req, void *arg)
{
	struct server_http *hh = arg;
	struct server_worker *w = hh->w;
	struct server *srv = w->srv;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct server_reqctx *ctx;
	const struct server_rt *rt;
	const char *path = server_req_path(req);
	char msg[SERVER_MSG_PATH_MAX + 64], show[SERVER_MSG_PATH_MAX];
	char *addr = NULL;
	ev_uint16_t port = 0;
	size_t max, blen;

	if (server_listener_tls[hh->l] && server_req_ssl(req) == NULL) {
		/* Only when SSL_new() failed in server_bev_tls(). */
		log_err("listener %s: connection without a TLS session "
		    "refused", server_listener_names[hh->l]);
		evhttp_send_error(req, HTTP_BADREQUEST, NULL);
		return;
	}
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		log_err("listener %s: request state: out of memory",
		    server_listener_names[hh->l]);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	ctx->w = w;
	ctx->req = req;
	ctx->l = hh->l;
	ctx->method = server_method_name(evhttp_request_get_command(req));
	ctx->start_ms = common_mono_ms();
	server_printable(path, ctx->path, sizeof(ctx->path));
	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &addr, &port);
	if (addr == NULL)
		snprintf(ctx->peer, sizeof(ctx->peer), "-");
	else if (strchr(addr, ':') != NULL)
		snprintf(ctx->peer, sizeof(ctx->peer), "[%s]:%u", addr,
		    (unsigned)port);
	else
		snprintf(ctx->peer, sizeof(ctx->peer), "%s:%u", addr,
		    (unsigned)port);
	server_reqctx_insert(w, ctx);
	atomic_fetch_add(&srv->inflight, 1);
	evhttp_request_set_on_complete_cb(req, server_req_complete, ctx);
	if (evcon != NULL)
		evhttp_connection_set_closecb(evcon, server_conn_closed, ctx);

	if ((rt = server_route_match(srv, hh->l, path)) == NULL) {
		server_printable(path, show, sizeof(show));
		snprintf(msg, sizeof(msg), "no route for %s", show);
		server_reply_error(req, 404, "not_found", msg);
		return;
	}
	ctx->route = rt;
	max = rt->max_body != 0 ? rt->max_body : srv->max_body_bytes;
	blen = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if (blen > max) {
		log_warn("%s %s \"%s %s\": body of %zu bytes refused, route "
		    "%s allows %zu", server_listener_names[hh->l], ctx->peer,
		    ctx->method, ctx->path, blen, rt->name, max);
		snprintf(msg, sizeof(msg), "request body exceeds %zu bytes",
		    max);
		rt->error(req, 413, msg, rt->arg);
		return;
	}
	rt->handle(req, rt->arg);
}

/*
 * Stores a copy of r (name and prefix duplicated). -1 when the table is
 * full, r is malformed or the prefix is taken on one of its listeners.
 */
static int
server_route_insert(struct server *srv, const struct server_route *r,
    size_t cap)
{
	struct server_rt *rt;
	size_t i;

	if (r == NULL || r->name == NULL || r->prefix == NULL ||
	    r->prefix[0] != '/' || r->handle == NULL || r->listeners == 0 ||
	    (r->listeners & ~((1u << SERVER_LISTENER__MAX) - 1)) != 0) {
		log_err("route %s: needs a name, a prefix starting with '/', "
		    "a handler and listeners", r != NULL && r->name != NULL ?
		    r->name : "(unnamed)");
		return -1;
	}
	if (atomic_load(&srv->ran)) {
		log_err("route %s: added after server_run()", r->name);
		return -1;
	}
	if (srv->nroutes >= cap) {
		log_err("route %s: route table full (%d routes)", r->name,
		    SERVER_ROUTES_MAX);
		return -1;
	}
	for (i = 0; i < srv->nroutes; i++) {
		if (strcmp(srv->routes[i].prefix, r->prefix) == 0 &&
		    (srv->routes[i].listeners & r->listeners) != 0) {
			log_err("route %s: prefix %s already taken by route %s",
			    r->name, r->prefix, srv->routes[i].name);
			return -1;
		}
	}
	rt = &srv->routes[srv->nroutes];
	memset(rt, 0, sizeof(*rt));
	if ((rt->name = strdup(r->name)) == NULL ||
	    (rt->prefix = strdup(r->prefix)) == NULL) {
		log_err("route %s: out of memory", r->name);
		free(rt->name);
		rt->name = NULL;
		return -1;
	}
	rt->prefix_len = strlen(rt->prefix);
	rt->listeners = r->listeners;
	rt->max_body = r->max_body;
	rt->handle = r->handle;
	rt->error = r->error != NULL ? r->error : server_route_error_default;
	rt->arg = r->arg;
	srv->nroutes++;
	return 0;
}

int
server_route_add(struct server *srv, const struct server_route *r)
{
	if (srv->nuser_routes >= SERVER_ROUTES_MAX) {
		log_err("route %s: route table full (%d routes)",
		    r != NULL && r->name != NULL ? r->name : "(unnamed)",
		    SERVER_ROUTES_MAX);
		return -1;
	}
	if (server_route_insert(srv, r, SERVER_ROUTES_MAX +
	    SERVER_BUILTIN_ROUTES) == -1)
		return -1;
	srv->nuser_routes++;
	return 0;
}

/* ---- built-in routes ---------------------------------------------------- */

/* Answers 404 unless the path is exactly `path` and 405 unless the method
 * is GET or HEAD; true when the request may proceed. */
static bool
server_builtin_check(struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	char msg[SERVER_MSG_PATH_MAX + 32], show[SERVER_MSG_PATH_MAX];

	if (path != NULL && strcmp(server_req_path(req), path) != 0) {
		server_printable(server_req_path(req), show, sizeof(show));
		snprintf(msg, sizeof(msg), "no route for %s", show);
		server_reply_error(req, 404, "not_found", msg);
		return false;
	}
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		snprintf(msg, sizeof(msg), "%s is not allowed here",
		    server_method_name(m));
		server_reply_error(req, 405, "method_not_allowed", msg);
		return false;
	}
	return true;
}

/* GET /healthz: 200 {"status":"ok"}; 503 {"status":"draining"} during
 * drain so that load balancers move away first. */
static void
server_builtin_healthz(struct evhttp_request *req, void *arg)
{
	struct server *srv = arg;
	static const char ok[] = "{\"status\":\"ok\"}\n";
	static const char draining[] = "{\"status\":\"draining\"}\n";

	if (!server_builtin_check(req, "/healthz"))
		return;
	if (atomic_load(&srv->draining))
		server_reply(req, 503, "application/json", draining,
		    sizeof(draining) - 1);
	else
		server_reply(req, 200, "application/json", ok, sizeof(ok) - 1);
}

/* GET /metrics: Prometheus text format 0.0.4. */
static void
server_builtin_metrics(struct evhttp_request *req, void *arg)
{
	struct server *srv = arg;
	struct common_buf b;

	common_buf_init(&b, SERVER_METRICS_MAX);
	if (!server_builtin_check(req, "/metrics"))
		goto out;
	if (common_buf_addf(&b, "# TYPE pkid_up gauge\npkid_up 1\n"
	    "# TYPE pkid_http_requests_in_flight gauge\n"
	    "pkid_http_requests_in_flight %d\n",
	    atomic_load(&srv->inflight)) == -1 ||
	    common_metric_render(&b) == -1) {
		log_err("metrics: rendering failed");
		server_reply_error(req, 500, "internal",
		    "cannot render metrics");
		goto out;
	}
	server_reply(req, 200, "text/plain; version=0.0.4", b.data, b.len);
out:
	common_buf_free(&b);
}

struct server_public {			/* a directory of DATA/public */
	const char	*prefix;	/* "/crl/" */
	const char	*dir;		/* "crl" */
	const char	*ext;		/* ".crl" */
	const char	*ctype;
};

static const struct server_public server_public_crl = {
	"/crl/", "crl", ".crl", "application/pkix-crl",
};
static const struct server_public server_public_ca = {
	"/ca/", "ca", ".crt", "application/pkix-cert",
};

/* The server is the route argument of the public-file routes; the kind
 * is told apart by the path prefix. */
static const struct server_public *
server_public_kind(const char *path)
{
	if (strncmp(path, server_public_crl.prefix,
	    strlen(server_public_crl.prefix)) == 0)
		return &server_public_crl;
	return &server_public_ca;
}

/*
 * Parses an RFC 9110 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the
 * only form pkid sends, into *out. 0, or -1 for anything else (the
 * condition is then ignored, as RFC 9110 section 13.1.3 asks).
 */
static int
server_http_date_parse(const char *s, time_t *out)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char wday[4], mon[4], zone[4];
	const char *m;
	struct tm tm;
	int n = 0;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3[A-Z]%n",
	    wday, &tm.tm_mday, mon, &tm.tm_year, &tm.tm_hour, &tm.tm_min,
	    &tm.tm_sec, zone, &n) != 8 || s[n] != '\0' ||
	    strcmp(zone, "GMT") != 0 || strlen(mon) != 3 ||
	    (m = strstr(months, mon)) == NULL || (m - months) % 3 != 0 ||
	    tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
		return -1;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year -= 1900;
	if ((*out = timegm(&tm)) == (time_t)-1)
		return -1;
	return 0;
}

/*
 * True when the If-None-Match field value inm names etag (a quoted
 * strong tag): "*", or a comma-separated list one of whose members
 * equals it under the weak comparison of RFC 9110 section 8.8.3.2 (a
 * "W/" prefix is ignored), as section 13.1.2 prescribes for GET.
 */
static bool
server_etag_match(const char *inm, const char *etag)
{
	size_t elen = strlen(etag), n;
	const char *p = inm, *end;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return false;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"')
			return false;	/* malformed: no match */
		if ((end = strchr(p + 1, '"')) == NULL)
			return false;
		n = (size_t)(end - p) + 1;
		if (n == elen && memcmp(p, etag, n) == 0)
			return true;
		p = end + 1;
	}
}

/*
 * Reads a public file through one descriptor, so that the Last-Modified
 * date (*st) and the body belong to the same version even while it is
 * being replaced. 0, or -1 with errno (ENOENT also for a non-regular
 * file, EFBIG above SERVER_PUBLIC_FILE_MAX).
 */
static int
server_public_read(const char *file, struct stat *st, char **data,
    size_t *len)
{
	char *buf = NULL;
	size_t got = 0;
	ssize_t r;
	int fd, rc = -1, saved;

	*data = NULL;
	*len = 0;
	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return -1;
	if (fstat(fd, st) == -1)
		goto out;
	if (!S_ISREG(st->st_mode)) {
		errno = ENOENT;
		goto out;
	}
	if (st->st_size > SERVER_PUBLIC_FILE_MAX) {
		errno = EFBIG;
		goto out;
	}
	if ((buf = malloc((size_t)st->st_size + 1)) == NULL)
		goto out;
	while (got < (size_t)st->st_size) {
		r = read(fd, buf + got, (size_t)st->st_size - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto out;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	*data = buf;	/* steal */
	*len = got;
	buf = NULL;
	rc = 0;
out:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return rc;
}

/* The strong ETag of a public file's bytes: a quoted hex prefix of their
 * SHA-256. 0 or -1. */
static int
server_public_etag(const void *data, size_t len, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * SERVER_ETAG_BYTES + 1];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < SERVER_ETAG_BYTES)
		return -1;
	common_hex(md, SERVER_ETAG_BYTES, hex);
	return common_path(out, outlen, "\"%s\"", hex);
}

/*
 * GET /crl/<id>.crl and /ca/<id>.crt from DATA/public/{crl,ca}/: the id
 * must pass common_id_valid() (no '/', no leading '.'), the file must be a
 * regular file of at most SERVER_PUBLIC_FILE_MAX bytes. Every answer
 * carries Last-Modified (the file's mtime) and a strong ETag (a SHA-256
 * prefix of the bytes). Conditional requests follow RFC 9110 section
 * 13.2.2: If-None-Match naming the current tag answers 304, and only
 * without If-None-Match does If-Modified-Since apply (304 when the file
 * is not newer than the date).
 */
static void
server_builtin_public(struct evhttp_request *req, void *arg)
{
	struct server *srv = arg;
	const char *path = server_req_path(req);
	const struct server_public *pub = server_public_kind(path);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *rest, *ims, *inm;
	char id[SERVER_ID_MAX + 1], file[PATH_MAX];
	char date[SERVER_HTTPDATE_MAX], show[SERVER_MSG_PATH_MAX];
	char msg[SERVER_MSG_PATH_MAX + 32], etag[SERVER_ETAG_MAX];
	struct stat st;
	char *data = NULL;
	size_t len = 0, idlen, extlen = strlen(pub->ext);
	time_t since;
	bool fresh;

	if (!server_builtin_check(req, NULL))
		goto out;
	server_printable(path, show, sizeof(show));
	snprintf(msg, sizeof(msg), "no such file: %s", show);
	rest = path + strlen(pub->prefix);
	idlen = strlen(rest);
	if (idlen <= extlen || idlen - extlen > SERVER_ID_MAX ||
	    strcmp(rest + idlen - extlen, pub->ext) != 0) {
		server_reply_error(req, 404, "not_found", msg);
		goto out;
	}
	memcpy(id, rest, idlen - extlen);
	id[idlen - extlen] = '\0';
	if (!common_id_valid(id)) {
		server_reply_error(req, 404, "not_found", msg);
		goto out;
	}
	if (common_path(file, sizeof(file), "%s/public/%s/%s%s",
	    srv->data_dir, pub->dir, id, pub->ext) == -1) {
		log_err("public: path for %s/%s%s too long", pub->dir, id,
		    pub->ext);
		server_reply_error(req, 500, "internal", "path too long");
		goto out;
	}
	if (server_public_read(file, &st, &data, &len) == -1) {
		if (errno == ENOENT || errno == ENOTDIR) {
			server_reply_error(req, 404, "not_found", msg);
			goto out;
		}
		log_err("public: read %s: %s", file, strerror(errno));
		server_reply_error(req, 500, "internal",
		    "cannot read the file");
		goto out;
	}
	if (server_public_etag(data, len, etag, sizeof(etag)) == -1) {
		log_err("public: %s: SHA-256: %s", file, common_ssl_error());
		server_reply_error(req, 500, "internal",
		    "cannot read the file");
		goto out;
	}
	server_http_date(st.st_mtime, date, sizeof(date));
	evhttp_add_header(out, "Last-Modified", date);
	evhttp_add_header(out, "ETag", etag);
	inm = evhttp_find_header(in, "If-None-Match");
	ims = evhttp_find_header(in, "If-Modified-Since");
	if (inm != NULL)
		fresh = server_etag_match(inm, etag);
	else
		fresh = ims != NULL && server_http_date_parse(ims, &since) ==
		    0 && st.st_mtime <= since;
	if (fresh) {
		server_reply(req, 304, NULL, NULL, 0);
		goto out;
	}
	server_reply(req, 200, pub->ctype, data, len);
out:
	free(data);
}

static int
server_builtin_routes(struct server *srv)
{
	const struct server_route builtin[SERVER_BUILTIN_ROUTES] = {
		{ "healthz", "/healthz", SERVER_ON(SERVER_HTTPS) |
		    SERVER_ON(SERVER_HTTP) | SERVER_ON(SERVER_MGMT), 0,
		    server_builtin_healthz, NULL, srv },
		{ "metrics", "/metrics", SERVER_ON(SERVER_HTTP) |
		    SERVER_ON(SERVER_MGMT), 0, server_builtin_metrics, NULL,
		    srv },
		{ "crl", server_public_crl.prefix, SERVER_ON(SERVER_HTTP), 0,
		    server_builtin_public, NULL, srv },
		{ "ca", server_public_ca.prefix, SERVER_ON(SERVER_HTTP), 0,
		    server_builtin_public, NULL, srv },
	};
	size_t i;

	for (i = 0; i < SERVER_BUILTIN_ROUTES; i++)
		if (server_route_insert(srv, &builtin[i],
		    SERVER_BUILTIN_ROUTES) == -1)
			return -1;
	return 0;
}

/* ---- connections -------------------------------------------------------- */

/* The TLS context for a new connection, with a reference for the caller
 * (SSL_CTX_free); NULL when none or the reference cannot be taken. */
static SSL_CTX *
server_tls_get(struct server *srv)
{
	SSL_CTX *tls;

	pthread_mutex_lock(&srv->tls_lock);
	tls = srv->tls;
	if (tls != NULL && SSL_CTX_up_ref(tls) != 1)
		tls = NULL;
	pthread_mutex_unlock(&srv->tls_lock);
	if (tls == NULL)
		log_err("server: no TLS context for a new connection: %s",
		    common_ssl_error());
	return tls;
}

/*
 * Makes tls (up-ref'd) the context of every TLS connection accepted from
 * now on; connections in flight keep the one they began with (each holds
 * a reference), and the old context is freed with the last of them.
 * Thread-safe. 0, or -1 when tls is NULL or the server has no TLS
 * listener.
 */
int
server_tls_reload(struct server *srv, SSL_CTX *tls)
{
	SSL_CTX *old;

	if (srv == NULL || tls == NULL) {
		log_err("server: TLS reload: no context");
		return -1;
	}
	if (SSL_CTX_up_ref(tls) != 1) {
		log_err("server: TLS reload: cannot take a reference: %s",
		    common_ssl_error());
		return -1;
	}
	pthread_mutex_lock(&srv->tls_lock);
	old = srv->tls;
	if (old != NULL)
		srv->tls = tls;	/* steal */
	pthread_mutex_unlock(&srv->tls_lock);
	if (old == NULL) {
		log_err("server: TLS reload: no TLS listener");
		SSL_CTX_free(tls);
		return -1;
	}
	SSL_CTX_free(old);
	return 0;
}

/* bevcb of the https and mgmt listeners: a TLS server bufferevent. On
 * failure evhttp falls back to a plain one, which server_dispatch()
 * refuses. */
static struct bufferevent *
server_bev_tls(struct event_base *base, void *arg)
{
	struct server_http *hh = arg;
	struct bufferevent *bev;
	SSL_CTX *tls;
	SSL *ssl;

	if ((tls = server_tls_get(hh->w->srv)) == NULL)
		return NULL;
	/* the connection holds its own reference (SSL_new takes one): a
	 * reload leaves it on the context it started with */
	ssl = SSL_new(tls);
	SSL_CTX_free(tls);
	if (ssl == NULL) {
		log_err("listener %s: SSL_new: %s",
		    server_listener_names[hh->l], common_ssl_error());
		return NULL;
	}
	/* Deferred callbacks: evhttp may free the connection from inside a
	 * callback that the TLS layer runs while it is itself reading. */
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		log_err("listener %s: TLS bufferevent: out of memory",
		    server_listener_names[hh->l]);
		SSL_free(ssl);
		return NULL;
	}
	/* Many clients close without close_notify; that is not an error
	 * for a request that is complete. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* bevcb of the plain http listener. */
static struct bufferevent *
server_bev_plain(struct event_base *base, void *arg)
{
	(void)arg;
	return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

/*
 * Creates the listening socket of l on its configured address and records
 * the bound address. TCP_NODELAY is set here because accepted sockets
 * inherit it (Linux, BSDs) before their first byte, which evhttp's bevcb,
 * called without the fd, could not do. 0 or -1 (logged).
 */
static int
server_listen_open(struct server *srv, enum server_listener l)
{
	struct server_listen *ls = &srv->listens[l];
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char *host = NULL, portstr[16];
	int port, fd = -1, one = 1, gai, rc = -1;

	if (conf_split_hostport(ls->addr, &host, &port) == -1) {
		log_err("listener %s: bad address \"%s\"",
		    server_listener_names[l], ls->addr);
		goto out;
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		log_err("listener %s: cannot resolve %s: %s",
		    server_listener_names[l], ls->addr, gai_strerror(gai));
		goto out;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		log_err("listener %s: socket for %s: %s (errno %d)",
		    server_listener_names[l], ls->addr, strerror(errno), errno);
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ||
	    (res->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1)) {
		log_err("listener %s: socket options for %s: %s (errno %d)",
		    server_listener_names[l], ls->addr, strerror(errno), errno);
		goto out;
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1) {
		log_err("listener %s: cannot bind %s: %s (errno %d)",
		    server_listener_names[l], ls->addr, strerror(errno), errno);
		goto out;
	}
	if (listen(fd, SERVER_BACKLOG) == -1) {
		log_err("listener %s: cannot listen on %s: %s (errno %d)",
		    server_listener_names[l], ls->addr, strerror(errno), errno);
		goto out;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
	    server_addr_format((struct sockaddr *)&ss, sslen, ls->bound,
	    sizeof(ls->bound)) == -1) {
		log_err("listener %s: bound address of %s: %s",
		    server_listener_names[l], ls->addr, strerror(errno));
		goto out;
	}
	log_info("listening on %s://%s (%s)",
	    server_listener_tls[l] ? "https" : "http", ls->bound,
	    server_listener_names[l]);
	ls->fd = fd;	/* steal */
	fd = -1;
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	return rc;
}

static void
server_listens_close(struct server *srv)
{
	int l;

	for (l = 0; l < SERVER_LISTENER__MAX; l++) {
		if (srv->listens[l].fd != -1) {
			close(srv->listens[l].fd);
			srv->listens[l].fd = -1;
		}
	}
}

/* ---- workers ------------------------------------------------------------ */

/* Runs on the worker (drain): stops accepting new connections. */
static void
server_worker_accept_off(evutil_socket_t fd, short what, void *arg)
{
	struct server_worker *w = arg;
	int l;

	(void)fd;
	(void)what;
	for (l = 0; l < SERVER_LISTENER__MAX; l++) {
		if (w->http[l].bound != NULL) {
			/* Closes this worker's dup of the socket. */
			evhttp_del_accept_socket(w->http[l].http,
			    w->http[l].bound);
			w->http[l].bound = NULL;
		}
	}
	atomic_fetch_add(&w->srv->accept_acks, 1);
}

/* Runs on the worker: leaves the loop; teardown follows in the thread. */
static void
server_worker_shutdown(evutil_socket_t fd, short what, void *arg)
{
	struct server_worker *w = arg;

	(void)fd;
	(void)what;
	event_base_loopbreak(w->base);
}

/*
 * Frees the worker's evhttps (closing its connections, which finishes
 * their requests as aborted) and any request left detached. Runs on the
 * worker thread after its loop ended, or on the control thread for a
 * worker that never started; either way no callback can run any more.
 */
static void
server_worker_teardown(struct server_worker *w)
{
	struct server_reqctx *ctx;
	size_t h;
	int l;

	for (l = 0; l < SERVER_LISTENER__MAX; l++) {
		if (w->http[l].http != NULL) {
			evhttp_free(w->http[l].http);
			w->http[l].http = NULL;
			w->http[l].bound = NULL;
		}
	}
	for (h = 0; h < SERVER_REQ_BUCKETS; h++)
		while ((ctx = w->reqs[h]) != NULL)
			server_req_finish(ctx, true);
}

static void *
server_worker_main(void *arg)
{
	struct server_worker *w = arg;
	char name[16];

	snprintf(name, sizeof(name), "pkid-worker-%d", w->idx);
	(void)pthread_setname_np(pthread_self(), name);
	server_worker_self = w;
	if (w->subscribed && w->srv->dur.thread_start(w->srv->dur.arg) == -1)
		log_warn("worker %d: deferred durability unavailable: each "
		    "commit waits for the disk", w->idx);
	if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) == -1)
		log_err("worker %d: event loop failed", w->idx);
	server_worker_teardown(w);
	server_worker_self = NULL;
	return NULL;
}

/* Sets up worker idx: its base, control events and one evhttp per
 * listener accepting on a dup of the listening socket (evhttp closes the
 * fd it accepts on when it stops, so each worker needs its own). */
static int
server_worker_init(struct server *srv, struct server_worker *w, int idx)
{
	struct server_http *hh;
	int l, fd;

	w->srv = srv;
	w->idx = idx;
	if ((w->base = event_base_new()) == NULL ||
	    (w->accept_off_ev = event_new(w->base, -1, 0,
	    server_worker_accept_off, w)) == NULL ||
	    (w->shutdown_ev = event_new(w->base, -1, 0,
	    server_worker_shutdown, w)) == NULL ||
	    (w->durable_ev = event_new(w->base, -1, 0,
	    server_worker_durable, w)) == NULL) {
		log_err("worker %d: event base: out of memory", idx);
		return -1;
	}
	if (srv->dur.pending != NULL) {
		if (srv->dur.subscribe(srv->dur.arg, server_worker_kick,
		    w) == 0)
			w->subscribed = true;
		else
			log_warn("worker %d: deferred durability unavailable: "
			    "each commit waits for the disk", idx);
	}
	for (l = 0; l < SERVER_LISTENER__MAX; l++) {
		if (srv->listens[l].fd == -1)
			continue;
		hh = &w->http[l];
		hh->w = w;
		hh->l = (enum server_listener)l;
		if ((hh->http = evhttp_new(w->base)) == NULL) {
			log_err("worker %d: evhttp for %s: out of memory", idx,
			    server_listener_names[l]);
			return -1;
		}
		evhttp_set_max_headers_size(hh->http,
		    (ev_ssize_t)srv->max_header_bytes);
		evhttp_set_max_body_size(hh->http, (ev_ssize_t)
		    (srv->max_body_bytes > SERVER_BODY_CEILING ?
		    srv->max_body_bytes : SERVER_BODY_CEILING));
		evhttp_set_timeout(hh->http, srv->timeout_seconds);
		evhttp_set_allowed_methods(hh->http, SERVER_METHODS);
		evhttp_set_default_content_type(hh->http, NULL);
		/* Read an oversized body to its end before answering 413,
		 * so the client sees the answer instead of a reset. */
		evhttp_set_flags(hh->http, EVHTTP_SERVER_LINGERING_CLOSE);
		evhttp_set_gencb(hh->http, server_dispatch, hh);
		evhttp_set_bevcb(hh->http, server_listener_tls[l] ?
		    server_bev_tls : server_bev_plain, hh);
		fd = fcntl(srv->listens[l].fd, F_DUPFD_CLOEXEC, 0);
		if (fd == -1) {
			log_err("worker %d: dup of the %s socket: %s", idx,
			    server_listener_names[l], strerror(errno));
			return -1;
		}
		if ((hh->bound = evhttp_accept_socket_with_handle(hh->http,
		    fd)) == NULL) {
			log_err("worker %d: accepting on %s failed", idx,
			    server_listener_names[l]);
			close(fd);
			return -1;
		}
	}
	return 0;
}

/* Stops and frees every worker: started ones leave their loop and tear
 * down on their own thread, then are joined. */
static void
server_workers_stop(struct server *srv)
{
	struct server_worker *w;
	int i;

	for (i = 0; i < srv->nworkers; i++) {
		w = &srv->workers[i];
		if (w->started)
			event_active(w->shutdown_ev, EV_READ, 0);
	}
	for (i = 0; i < srv->nworkers; i++) {
		w = &srv->workers[i];
		if (w->started) {
			pthread_join(w->thread, NULL);
			w->started = false;
		} else
			server_worker_teardown(w);
		if (w->subscribed) {
			/* after this no flush wakes durable_ev */
			srv->dur.unsubscribe(srv->dur.arg, server_worker_kick,
			    w);
			w->subscribed = false;
		}
		if (w->durable_ev != NULL)
			event_free(w->durable_ev);
		if (w->accept_off_ev != NULL)
			event_free(w->accept_off_ev);
		if (w->shutdown_ev != NULL)
			event_free(w->shutdown_ev);
		if (w->base != NULL)
			event_base_free(w->base);
	}
	free(srv->workers);
	srv->workers = NULL;
	srv->nworkers = 0;
}

/* ---- jobs thread -------------------------------------------------------- */

/* Runs the waiting jobs whose ticket is durable (all of them when
 * block: at the stop, waiting for each), in the order they came among
 * themselves (a later job without a ticket may have run before). A job
 * whose commit could not be made durable runs all the same: jobs are
 * ACME validations, whose own result commit flushes (or fails) in
 * turn. */
static void
server_jobs_run_waiting(struct server *srv, bool block)
{
	struct server_job_ent job;
	size_t n, i;
	int state;

	for (n = srv->jwcount, i = 0; i < n; i++) {
		job = srv->jwait[srv->jwhead];
		srv->jwhead = (srv->jwhead + 1) % SERVER_QUEUE_MAX;
		srv->jwcount--;
		state = block ? (srv->dur.wait(srv->dur.arg, job.ticket) == 0 ?
		    1 : -1) : srv->dur.state(srv->dur.arg, job.ticket);
		if (state == 0) {	/* not yet: back at the end */
			srv->jwait[(srv->jwhead + srv->jwcount) %
			    SERVER_QUEUE_MAX] = job;
			srv->jwcount++;
			continue;
		}
		if (state < 0)
			log_err("jobs: a commit before this job is not "
			    "durable (log flush failed)");
		job.fn(job.arg);
	}
}

/*
 * Runs up to max queued jobs, one at a time without the lock; true when
 * more are waiting. A job queued by a worker after commits that are not
 * durable yet (a validation, a deployment may act outside on them)
 * waits, without holding up the others, until a flush makes them so:
 * the jobs thread hears of every flush (jwake).
 */
static bool
server_jobs_run(struct server *srv, size_t max)
{
	struct server_job_ent job;
	size_t n;
	int state;

	if (srv->jwcount > 0)
		server_jobs_run_waiting(srv, false);
	for (n = 0; n < max; n++) {
		pthread_mutex_lock(&srv->jlock);
		if (srv->jcount == 0) {
			pthread_mutex_unlock(&srv->jlock);
			atomic_store(&srv->jwaiting, srv->jwcount > 0);
			return false;
		}
		job = srv->jq[srv->jhead];
		srv->jhead = (srv->jhead + 1) % SERVER_QUEUE_MAX;
		srv->jcount--;
		pthread_mutex_unlock(&srv->jlock);
		/* set before looking: a flush that completes after the
		 * look then wakes the jobs thread */
		if (job.ticket != 0)
			atomic_store(&srv->jwaiting, true);
		state = job.ticket == 0 ? 1 :
		    srv->dur.state(srv->dur.arg, job.ticket);
		if (state == 0 && atomic_load(&srv->jsubscribed) &&
		    srv->jwcount < SERVER_QUEUE_MAX) {
			srv->dur.request(srv->dur.arg, job.ticket);
			srv->jwait[(srv->jwhead + srv->jwcount) %
			    SERVER_QUEUE_MAX] = job;
			srv->jwcount++;
			if (srv->dur.state(srv->dur.arg, job.ticket) != 0)
				event_active(srv->jwake, EV_READ, 0);
			continue;
		}
		if (state == 0 && srv->dur.wait(srv->dur.arg,
		    job.ticket) == -1)
			state = -1;
		if (state < 0)
			log_err("jobs: a commit before this job is not "
			    "durable (log flush failed)");
		job.fn(job.arg);
	}
	atomic_store(&srv->jwaiting, srv->jwcount > 0);
	pthread_mutex_lock(&srv->jlock);
	n = srv->jcount;
	pthread_mutex_unlock(&srv->jlock);
	return n > 0;
}

/* Wakeup event: runs a batch, and comes back if more are queued so that
 * other events on the jobs base (timers, sockets) are not starved. */
static void
server_jobs_wake(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (server_jobs_run(srv, SERVER_JOBS_BATCH))
		event_active(srv->jwake, EV_READ, 0);
}

static void *
server_jobs_main(void *arg)
{
	struct server *srv = arg;

	(void)pthread_setname_np(pthread_self(), "pkid-jobs");
	if (event_base_loop(srv->jbase, EVLOOP_NO_EXIT_ON_EMPTY) == -1)
		log_err("jobs: event loop failed");
	/* The queue is closed: run what was accepted before the stop. */
	server_jobs_run(srv, SERVER_QUEUE_MAX);
	server_jobs_run_waiting(srv, true);
	return NULL;
}

/* Flusher thread: a flush completed; the waiting jobs may run. */
static void
server_jobs_kick(void *arg)
{
	struct server *srv = arg;

	if (atomic_load(&srv->jwaiting))
		event_active(srv->jwake, EV_READ, 0);
}

int
server_job(struct server *srv, void (*fn)(void *arg), void *arg)
{
	uint64_t ticket = srv->dur.pending != NULL &&
	    server_worker_self != NULL && server_worker_self->subscribed ?
	    srv->dur.pending(srv->dur.arg) : 0;

	pthread_mutex_lock(&srv->jlock);
	if (fn == NULL || srv->jclosed || srv->jcount >= SERVER_QUEUE_MAX) {
		bool closed = srv->jclosed;

		pthread_mutex_unlock(&srv->jlock);
		log_warn("jobs: job refused: %s", fn == NULL ? "no function" :
		    closed ? "server stopped" : "queue full");
		return -1;
	}
	srv->jq[(srv->jhead + srv->jcount) % SERVER_QUEUE_MAX] =
	    (struct server_job_ent){ fn, arg, ticket };
	srv->jcount++;
	pthread_mutex_unlock(&srv->jlock);
	event_active(srv->jwake, EV_READ, 0);
	return 0;
}

void
server_set_durability(struct server *srv, const struct server_durability *d)
{
	if (d == NULL || d->thread_start == NULL || d->pending == NULL ||
	    d->state == NULL || d->request == NULL || d->wait == NULL ||
	    d->subscribe == NULL || d->unsubscribe == NULL) {
		memset(&srv->dur, 0, sizeof(srv->dur));
		return;
	}
	srv->dur = *d;
}

struct event_base *
server_jobs_base(struct server *srv)
{
	return srv->jbase;
}

static void
server_timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct server_timer_ent *t = arg;

	(void)fd;
	(void)what;
	t->fn(t->arg);
}

int
server_timer(struct server *srv, int seconds, void (*fn)(void *arg),
    void *arg)
{
	struct server_timer_ent *t;
	struct timeval tv = { seconds, 0 };
	int rc = -1;

	if (seconds < 1 || fn == NULL) {
		log_err("jobs: timer of %d seconds refused", seconds);
		return -1;
	}
	pthread_mutex_lock(&srv->jlock);
	if (srv->ntimers >= SERVER_TIMERS_MAX) {
		log_err("jobs: timer table full (%d timers)",
		    SERVER_TIMERS_MAX);
		goto out;
	}
	t = &srv->timers[srv->ntimers];
	t->fn = fn;
	t->arg = arg;
	if ((t->ev = event_new(srv->jbase, -1, EV_PERSIST, server_timer_fire,
	    t)) == NULL || event_add(t->ev, &tv) == -1) {
		log_err("jobs: timer of %d seconds: cannot add the event",
		    seconds);
		if (t->ev != NULL)
			event_free(t->ev);
		t->ev = NULL;
		goto out;
	}
	srv->ntimers++;
	rc = 0;
out:
	pthread_mutex_unlock(&srv->jlock);
	return rc;
}

/* Closes the queue (later server_job() calls fail), stops the jobs loop
 * and joins the thread, which runs what was still queued. */
static void
server_jobs_stop(struct server *srv)
{
	pthread_mutex_lock(&srv->jlock);
	srv->jclosed = true;
	pthread_mutex_unlock(&srv->jlock);
	if (atomic_exchange(&srv->jsubscribed, false))
		/* the jobs thread's last pass waits on each ticket itself */
		srv->dur.unsubscribe(srv->dur.arg, server_jobs_kick, srv);
	if (!srv->jstarted)
		return;
	event_base_loopexit(srv->jbase, NULL);
	pthread_join(srv->jthread, NULL);
	srv->jstarted = false;
}

/* ---- control thread: signals and drain -------------------------------- */

/* Drain progress, every SERVER_DRAIN_POLL_MS: once every worker stopped
 * accepting the listening sockets are closed (new connections are then
 * refused at once); the loop ends when nothing is in flight or the
 * deadline passed. */
static void
server_ctl_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	int acks = atomic_load(&srv->accept_acks);
	int inflight = atomic_load(&srv->inflight);
	bool accepting_done = acks >= srv->nworkers;

	(void)fd;
	(void)what;
	if (accepting_done)
		server_listens_close(srv);
	if (inflight > 0 || !accepting_done) {
		if (common_mono_ms() < srv->drain_deadline)
			return;
		log_warn("drain: %d request%s still in flight after %d s, "
		    "closing", inflight, inflight == 1 ? "" : "s",
		    srv->drain_seconds);
	}
	event_del(srv->drain_ev);
	event_base_loopbreak(srv->cbase);
}

/* Starts the drain (first stop request or signal); a second signal cuts
 * it short. */
static void
server_ctl_drain_begin(struct server *srv, const char *why, bool from_signal)
{
	struct timeval tv = { 0, SERVER_DRAIN_POLL_MS * 1000 };
	int i;

	if (atomic_exchange(&srv->draining, true)) {
		if (from_signal) {
			log_warn("%s during drain: stopping now", why);
			srv->drain_deadline = 0;
		}
		return;
	}
	log_info("draining (%s): %d request%s in flight, waiting at most "
	    "%d s", why, atomic_load(&srv->inflight),
	    atomic_load(&srv->inflight) == 1 ? "" : "s", srv->drain_seconds);
	srv->drain_deadline = common_mono_ms() +
	    (uint64_t)srv->drain_seconds * 1000;
	for (i = 0; i < srv->nworkers; i++)
		event_active(srv->workers[i].accept_off_ev, EV_READ, 0);
	if (event_add(srv->drain_ev, &tv) == -1) {
		log_err("drain: cannot schedule progress checks; stopping now");
		event_base_loopbreak(srv->cbase);
	}
}

static void
server_ctl_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	server_ctl_drain_begin(arg, sig == SIGINT ? "SIGINT" : "SIGTERM",
	    true);
}

static void
server_ctl_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	server_ctl_drain_begin(arg, "stop requested", false);
}

void
server_stop(struct server *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->stop_requested = true;
	if (srv->stop_ev != NULL)
		event_active(srv->stop_ev, EV_READ, 0);
	pthread_mutex_unlock(&srv->lock);
}

/* Frees the control base and its events (restoring signal handlers). */
static void
server_ctl_free(struct server *srv)
{
	pthread_mutex_lock(&srv->lock);
	if (srv->stop_ev != NULL)
		event_free(srv->stop_ev);
	srv->stop_ev = NULL;
	pthread_mutex_unlock(&srv->lock);
	if (srv->sigterm_ev != NULL)
		event_free(srv->sigterm_ev);
	if (srv->sigint_ev != NULL)
		event_free(srv->sigint_ev);
	if (srv->drain_ev != NULL)
		event_free(srv->drain_ev);
	srv->sigterm_ev = srv->sigint_ev = srv->drain_ev = NULL;
	if (srv->cbase != NULL)
		event_base_free(srv->cbase);
	srv->cbase = NULL;
}

/* ---- life cycle --------------------------------------------------------- */

/*
 * Order: signal handling first (so a SIGTERM right after the listeners
 * appear is a clean stop), listeners, workers, jobs thread; then the
 * control loop until the drain ends; then everything in reverse.
 */
int
server_run(struct server *srv)
{
	struct sigaction sa;
	long cores;
	int i, l, rc = -1;

	if (atomic_exchange(&srv->ran, true)) {
		log_err("server_run: the server already ran");
		return -1;
	}
	/* A peer closing mid-write must be an error return, not a kill. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		log_warn("server: ignoring SIGPIPE: %s", strerror(errno));

	if ((srv->cbase = event_base_new()) == NULL ||
	    (srv->sigterm_ev = evsignal_new(srv->cbase, SIGTERM,
	    server_ctl_signal, srv)) == NULL ||
	    (srv->sigint_ev = evsignal_new(srv->cbase, SIGINT,
	    server_ctl_signal, srv)) == NULL ||
	    (srv->drain_ev = event_new(srv->cbase, -1, EV_PERSIST,
	    server_ctl_drain_tick, srv)) == NULL ||
	    event_add(srv->sigterm_ev, NULL) == -1 ||
	    event_add(srv->sigint_ev, NULL) == -1) {
		log_err("server: control loop: cannot set up events");
		goto out;
	}
	pthread_mutex_lock(&srv->lock);
	srv->stop_ev = event_new(srv->cbase, -1, 0, server_ctl_stop, srv);
	pthread_mutex_unlock(&srv->lock);
	if (srv->stop_ev == NULL) {
		log_err("server: control loop: out of memory");
		goto out;
	}

	for (l = 0; l < SERVER_LISTENER__MAX; l++)
		if (srv->listens[l].addr != NULL &&
		    server_listen_open(srv, (enum server_listener)l) == -1)
			goto out;
	atomic_store(&srv->bound_ready, true);

	srv->nworkers = srv->workers_cf;
	if (srv->nworkers <= 0) {
		cores = sysconf(_SC_NPROCESSORS_ONLN);
		srv->nworkers = cores > 0 ? (int)cores *
		    SERVER_WORKERS_PER_CORE : SERVER_WORKERS_PER_CORE;
	}
	if (srv->nworkers > SERVER_WORKERS_MAX)
		srv->nworkers = SERVER_WORKERS_MAX;
	if ((srv->workers = calloc((size_t)srv->nworkers,
	    sizeof(*srv->workers))) == NULL) {
		log_err("server: %d workers: out of memory", srv->nworkers);
		srv->nworkers = 0;
		goto out;
	}
	for (i = 0; i < srv->nworkers; i++)
		if (server_worker_init(srv, &srv->workers[i], i) == -1)
			goto out;
	for (i = 0; i < srv->nworkers; i++) {
		if ((errno = pthread_create(&srv->workers[i].thread, NULL,
		    server_worker_main, &srv->workers[i])) != 0) {
			log_err("worker %d: cannot start the thread: %s", i,
			    strerror(errno));
			goto out;
		}
		srv->workers[i].started = true;
	}
	if (srv->dur.pending != NULL) {
		if (srv->dur.subscribe(srv->dur.arg, server_jobs_kick,
		    srv) == 0)
			atomic_store(&srv->jsubscribed, true);
		else
			log_warn("jobs: a job queued after a commit blocks "
			    "the jobs thread until the commit is durable");
	}
	if ((errno = pthread_create(&srv->jthread, NULL, server_jobs_main,
	    srv)) != 0) {
		log_err("jobs: cannot start the thread: %s", strerror(errno));
		goto out;
	}
	srv->jstarted = true;
	log_info("serving: %d worker%s, jobs thread running", srv->nworkers,
	    srv->nworkers == 1 ? "" : "s");

	pthread_mutex_lock(&srv->lock);
	if (srv->stop_requested)
		event_active(srv->stop_ev, EV_READ, 0);
	pthread_mutex_unlock(&srv->lock);
	if (event_base_loop(srv->cbase, EVLOOP_NO_EXIT_ON_EMPTY) == -1) {
		log_err("server: control loop failed");
		goto out;
	}
	rc = 0;
out:
	server_workers_stop(srv);
	server_jobs_stop(srv);
	server_ctl_free(srv);
	server_listens_close(srv);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

const char *
server_bound(struct server *srv, enum server_listener l)
{
	if ((int)l < 0 || l >= SERVER_LISTENER__MAX ||
	    !atomic_load(&srv->bound_ready) || srv->listens[l].bound[0] == '\0')
		return NULL;
	return srv->listens[l].bound;
}

/* Creates the server from cf (values copied) and tls (up-ref'd; may be
 * NULL when neither https nor mgmt listens). NULL on failure. */
struct server *
server_new(const struct conf *cf, SSL_CTX *tls)
{
	struct server *srv = NULL, *ret = NULL;
	const char *addrs[SERVER_LISTENER__MAX];
	int l;

	pthread_once(&server_once, server_global_init);
	if (cf == NULL || cf->data_dir == NULL) {
		log_err("server: no configuration");
		return NULL;
	}
	addrs[SERVER_HTTPS] = cf->listen.https;
	addrs[SERVER_HTTP] = cf->listen.http;
	addrs[SERVER_MGMT] = cf->listen.mgmt;
	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		log_err("server: out of memory");
		goto out;
	}
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->jlock, NULL);
	pthread_mutex_init(&srv->tls_lock, NULL);
	for (l = 0; l < SERVER_LISTENER__MAX; l++)
		srv->listens[l].fd = -1;
	srv->workers_cf = cf->workers;
	srv->access_log = cf->access_log;
	srv->max_header_bytes = cf->server.max_header_bytes;
	srv->max_body_bytes = cf->server.max_body_bytes;
	srv->timeout_seconds = cf->server.timeout_seconds;
	srv->drain_seconds = cf->server.drain_seconds;
	if ((srv->data_dir = strdup(cf->data_dir)) == NULL) {
		log_err("server: out of memory");
		goto out;
	}
	for (l = 0; l < SERVER_LISTENER__MAX; l++) {
		if (addrs[l] == NULL || addrs[l][0] == '\0')
			continue;
		if (server_listener_tls[l] && tls == NULL) {
			log_err("server: listener %s needs a TLS context",
			    server_listener_names[l]);
			goto out;
		}
		if ((srv->listens[l].addr = strdup(addrs[l])) == NULL) {
			log_err("server: out of memory");
			goto out;
		}
	}
	if (tls != NULL) {
		if (SSL_CTX_up_ref(tls) != 1) {
			log_err("server: TLS context: cannot take a reference");
			goto out;
		}
		srv->tls = tls;
	}
	if ((srv->jq = calloc(SERVER_QUEUE_MAX, sizeof(*srv->jq))) == NULL ||
	    (srv->jwait = calloc(SERVER_QUEUE_MAX,
	    sizeof(*srv->jwait))) == NULL) {
		log_err("server: jobs queue: out of memory");
		goto out;
	}
	if ((srv->jbase = event_base_new()) == NULL ||
	    (srv->jwake = event_new(srv->jbase, -1, EV_PERSIST,
	    server_jobs_wake, srv)) == NULL) {
		log_err("server: jobs event base: cannot create");
		goto out;
	}
	if (server_builtin_routes(srv) == -1)
		goto out;
	ret = srv;	/* steal */
	srv = NULL;
out:
	server_free(srv);
	return ret;
}

/* Frees srv; server_run() must have returned (or never been called). */
void
server_free(struct server *srv)
{
	size_t i;
	int l;

	if (srv == NULL)
		return;
	server_workers_stop(srv);
	server_ctl_free(srv);
	server_listens_close(srv);
	for (i = 0; i < srv->ntimers; i++)
		event_free(srv->timers[i].ev);
	if (srv->jwake != NULL)
		event_free(srv->jwake);
	if (srv->jbase != NULL)
		event_base_free(srv->jbase);
	for (i = 0; i < srv->nroutes; i++) {
		free(srv->routes[i].name);
		free(srv->routes[i].prefix);
	}
	for (l = 0; l < SERVER_LISTENER__MAX; l++)
		free(srv->listens[l].addr);
	free(srv->jq);
	free(srv->jwait);
	free(srv->data_dir);
	SSL_CTX_free(srv->tls);
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->jlock);
	pthread_mutex_destroy(&srv->tls_lock);
	free(srv);
}
