/*
 * common/curlev.c — a libcurl multi handle driven by a libevent
 * event_base, for the code that sends HTTP from an event loop without
 * blocking it (webhook deliveries in lifecycle/notify.c, http-01
 * validation in protocols/acme/validate.c).
 *
 * curl says which sockets it wants watched (CURLMOPT_SOCKETFUNCTION) and
 * when it wants to be called without I/O (CURLMOPT_TIMERFUNCTION); each
 * socket becomes a persistent libevent event and the timer one libevent
 * timer. After every curl_multi_socket_action the finished transfers are
 * taken out of the multi handle and handed to the owner's done callback.
 * The easy handles are the owner's; this file only keeps the list of
 * those it holds, so that common_curlev_free can take them out first,
 * as libcurl wants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "common/common.h"

/* A socket libcurl asked us to watch (its socketp). */
struct curlev_sock {
	LIST_ENTRY(curlev_sock)	 entry;
	curl_socket_t		 fd;
	struct event		*ev;
};

/* An easy handle in the multi handle. */
struct curlev_xfer {
	LIST_ENTRY(curlev_xfer)	 entry;
	CURL			*easy;		/* the owner's */
};

struct common_curlev {
	struct event_base	*base;		/* borrowed */
	char			 name[COMMON_CURLEV_NAME_MAX]; /* log prefix */
	void			(*done)(CURL *, CURLcode, void *);
	void			*arg;
	bool			 curl_lib;	/* curl_global_init done */
	CURLM			*multi;
	struct event		*timer;		/* curl's timeout */
	LIST_HEAD(curlev_socks, curlev_sock) socks;
	LIST_HEAD(curlev_xfers, curlev_xfer) xfers;
};

/*
 * Takes easy off the list of transfers c holds. True when it was there
 * (and is still in the multi handle), false otherwise.
 */
static bool
curlev_forget(struct common_curlev *c, CURL *easy)
{
	struct curlev_xfer *x;

	LIST_FOREACH(x, &c->xfers, entry)
		if (x->easy == easy)
			break;
	if (x == NULL)
		return false;
	LIST_REMOVE(x, entry);
	free(x);
	return true;
}

/*
 * Hands every finished transfer to done(), each after it left the multi
 * handle. done() may add and remove transfers (curl drops the queued
 * message of a removed one), so the queue is read again each time.
 */
static void
curlev_check(struct common_curlev *c)
{
	CURLMsg *msg;
	CURLcode rc;
	CURL *easy;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		easy = msg->easy_handle;
		rc = msg->data.result;
		if (!curlev_forget(c, easy))
			continue;
		curl_multi_remove_handle(c->multi, easy); /* msg is invalid now */
		c->done(easy, rc, c->arg);
	}
}

static void
curlev_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct common_curlev *c = arg;
	int action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, fd, action, &running);
	curlev_check(c);
}

static void
curlev_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct common_curlev *c = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	curlev_check(c);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, 0 means "as soon as
 * possible" (never call socket_action from in here). */
static int
curlev_timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct common_curlev *c = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		event_del(c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return event_add(c->timer, &tv) == 0 ? 0 : -1;
}

/* CURLMOPT_SOCKETFUNCTION: watches or forgets one of curl's sockets. */
static int
curlev_sock_fn(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
	struct common_curlev *c = userp;
	struct curlev_sock *s = socketp;
	short flags = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			LIST_REMOVE(s, entry);
			if (s->ev != NULL)
				event_free(s->ev);
			free(s);	/* curl forgets the socket itself */
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			log_err("%s: watching an HTTP socket: out of memory",
			    c->name);
			return -1;
		}
		s->fd = fd;
		LIST_INSERT_HEAD(&c->socks, s, entry);
		curl_multi_assign(c->multi, fd, s);
	} else if (s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (what & CURL_POLL_IN)
		flags |= EV_READ;
	if (what & CURL_POLL_OUT)
		flags |= EV_WRITE;
	if ((s->ev = event_new(c->base, fd, flags, curlev_io_cb, c)) ==
	    NULL || event_add(s->ev, NULL) == -1) {
		log_err("%s: watching HTTP socket %d failed", c->name,
		    (int)fd);
		return -1;
	}
	return 0;
}

struct common_curlev *
common_curlev_new(struct event_base *base, const char *name,
    void (*done)(CURL *easy, CURLcode rc, void *arg), void *arg)
{
	struct common_curlev *c;

	if (name == NULL)
		name = "curl";
	if (base == NULL || done == NULL) {
		log_err("%s: HTTP driver: no event base or callback", name);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_err("%s: HTTP driver: out of memory", name);
		return NULL;
	}
	c->base = base;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->done = done;
	c->arg = arg;
	LIST_INIT(&c->socks);
	LIST_INIT(&c->xfers);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("%s: curl global init failed", c->name);
		goto fail;
	}
	c->curl_lib = true;
	/* The timer exists before the multi handle, which may call
	 * curlev_timer_fn from its first add until its cleanup. */
	if ((c->timer = evtimer_new(base, curlev_timer_cb, c)) == NULL) {
		log_err("%s: creating the curl timer failed", c->name);
		goto fail;
	}
	if ((c->multi = curl_multi_init()) == NULL ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION,
	    curlev_sock_fn) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION,
	    curlev_timer_fn) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
		log_err("%s: curl multi handle setup failed", c->name);
		goto fail;
	}
	return c;
fail:
	common_curlev_free(c);
	return NULL;
}

int
common_curlev_add(struct common_curlev *c, CURL *easy)
{
	struct curlev_xfer *x;
	CURLMcode mrc;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		log_err("%s: adding an HTTP transfer: out of memory", c->name);
		return -1;
	}
	if ((mrc = curl_multi_add_handle(c->multi, easy)) != CURLM_OK) {
		log_err("%s: adding an HTTP transfer: %s", c->name,
		    curl_multi_strerror(mrc));
		free(x);
		return -1;
	}
	x->easy = easy;
	LIST_INSERT_HEAD(&c->xfers, x, entry);
	return 0;
}

void
common_curlev_remove(struct common_curlev *c, CURL *easy)
{
	if (c == NULL || easy == NULL)
		return;
	if (curlev_forget(c, easy))
		curl_multi_remove_handle(c->multi, easy);
}

void
common_curlev_free(struct common_curlev *c)
{
	struct curlev_xfer *x;
	struct curlev_sock *s;

	if (c == NULL)
		return;
	while ((x = LIST_FIRST(&c->xfers)) != NULL) {
		LIST_REMOVE(x, entry);
		curl_multi_remove_handle(c->multi, x->easy);
		free(x);
	}
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	while ((s = LIST_FIRST(&c->socks)) != NULL) {
		LIST_REMOVE(s, entry);
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
	}
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->curl_lib)
		curl_global_cleanup();
	free(c);
}
