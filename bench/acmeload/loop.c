/*
 * bench/acmeload/loop.c — libcurl's multi socket interface on a libevent
 * base: curl says which sockets to watch and when to time out, libevent
 * watches them, and finished transfers go to acmeload_flow_done().
 */
#include <stdlib.h>

#include "bench/acmeload/acmeload.h"

/* Hands every finished transfer to the flow logic. The easy handle is
 * removed from the multi first, so the flow may reuse and re-add it. */
static void
loop_drain(struct acmeload *run)
{
	CURLMsg *m;
	CURL *easy;
	CURLcode result;
	int left;

	while ((m = curl_multi_info_read(run->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		easy = m->easy_handle;
		result = m->data.result;
		curl_multi_remove_handle(run->multi, easy);
		acmeload_flow_done(run, easy, result);
	}
}

/* A watched socket is ready. */
static void
loop_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct acmeload *run = arg;
	int action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(run->multi, fd, action, &running);
	loop_drain(run);
}

/* libcurl's timeout expired. */
static void
loop_timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct acmeload *run = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(run->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	loop_drain(run);
}

/* CURLMOPT_SOCKETFUNCTION: (re)arms or drops the event of socket s; the
 * event is the socket's curl_multi_assign() pointer. */
static int
loop_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
    void *socketp)
{
	struct acmeload *run = userp;
	struct event *ev = socketp;
	short kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL) {
			event_free(ev);
			curl_multi_assign(run->multi, s, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (ev != NULL) {
		event_del(ev);
		if (event_assign(ev, run->base, s, kind, loop_socket_event,
		    run) == -1)
			return -1;
	} else {
		if ((ev = event_new(run->base, s, kind, loop_socket_event,
		    run)) == NULL)
			return -1;
		curl_multi_assign(run->multi, s, ev);
	}
	return event_add(ev, NULL) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, 0 means "as soon as
 * possible" (the next loop iteration, never from inside this call). */
static int
loop_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct acmeload *run = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0)
		return evtimer_del(run->curl_timer) == 0 ? 0 : -1;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(run->curl_timer, &tv) == 0 ? 0 : -1;
}

int
acmeload_loop_init(struct acmeload *run)
{
	if ((run->curl_timer = evtimer_new(run->base, loop_timer_event,
	    run)) == NULL) {
		log_err("acmeload: cannot create the curl timer");
		return -1;
	}
	if (curl_multi_setopt(run->multi, CURLMOPT_SOCKETFUNCTION,
	    loop_socket_cb) != CURLM_OK ||
	    curl_multi_setopt(run->multi, CURLMOPT_SOCKETDATA, run) !=
	    CURLM_OK ||
	    curl_multi_setopt(run->multi, CURLMOPT_TIMERFUNCTION,
	    loop_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(run->multi, CURLMOPT_TIMERDATA, run) !=
	    CURLM_OK ||
	    /* One idle connection per worker stays open (keep-alive). */
	    curl_multi_setopt(run->multi, CURLMOPT_MAXCONNECTS,
	    (long)run->opt->concurrency + 1) != CURLM_OK) {
		log_err("acmeload: cannot configure the curl multi handle");
		return -1;
	}
	return 0;
}

void
acmeload_loop_free(struct acmeload *run)
{
	if (run->curl_timer != NULL)
		event_free(run->curl_timer);
	run->curl_timer = NULL;
}

int
acmeload_loop_add(struct acmeload *run, CURL *easy)
{
	CURLMcode rc;

	if ((rc = curl_multi_add_handle(run->multi, easy)) != CURLM_OK) {
		log_err("acmeload: curl_multi_add_handle: %s",
		    curl_multi_strerror(rc));
		return -1;
	}
	return 0;
}
