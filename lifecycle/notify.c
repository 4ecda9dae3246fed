/*
 * lifecycle/notify.c — webhook notifications of lifecycle events.
 *
 * lifecycle_notify (any thread) builds one delivery per webhook that
 * wants the event — the JSON body {"event", "time", "id", "data"} and its
 * HMAC-SHA256 signature are computed there, once, so every attempt sends
 * the same bytes — and appends it to a mutex-guarded queue of at most
 * LIFECYCLE_NOTIFY_QUEUE_MAX live deliveries. Everything else runs on the
 * jobs thread's event base: a wake-up event moves queued deliveries into
 * a libcurl multi handle (at most LC_NOTIFY_INFLIGHT_MAX transfers at a
 * time) that common_curlev drives on that base. A delivery that fails
 * (transport error or a status outside 2xx) waits 1, 2, 4, ... seconds
 * (at most LC_NOTIFY_BACKOFF_MAX) on its own timer and goes back to the
 * queue, until notifications.retry_max attempts were made. Each
 * attempt's outcome is logged once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conf/conf.h"
#include "lifecycle/lifecycle.h"

#define LC_NOTIFY_INFLIGHT_MAX	16	/* concurrent HTTP transfers */
#define LC_NOTIFY_BODY_MAX	(64 * 1024)	/* bytes of one JSON body */
#define LC_NOTIFY_BACKOFF_MAX	300	/* seconds between attempts, at most */
#define LC_NOTIFY_CONNECT_MAX	10	/* connect timeout, seconds, at most */
#define LC_NOTIFY_ID_MAX	32	/* "dlv-" + 16 hex + NUL */
#define LC_NOTIFY_SIG_HEADER_MAX (32 + 2 * EVP_MAX_MD_SIZE)
#define LC_NOTIFY_HEADER_MAX	128	/* one of the other headers */
#define LC_NOTIFY_URL_SHOWN	256	/* characters of a URL in logs */
#define LC_NOTIFY_USER_AGENT	"pkid-webhook/1"
#define LC_NOTIFY_METRIC	"pkid_webhook_deliveries_total"

static const char *const lc_event_names[LIFECYCLE_EV__MAX] = {
	[LIFECYCLE_EV_RENEWAL_WINDOW] = "renewal_window",
	[LIFECYCLE_EV_RENEWED] = "renewed",
	[LIFECYCLE_EV_RENEWAL_FAILED] = "renewal_failed",
	[LIFECYCLE_EV_DEPLOYMENT_FAILED] = "deployment_failed",
	[LIFECYCLE_EV_EXPIRING] = "expiring",
	[LIFECYCLE_EV_REVOKED] = "revoked",
};

/* One event for one webhook, from lifecycle_notify until delivered or
 * given up. */
struct lc_delivery {
	TAILQ_ENTRY(lc_delivery) entry;		/* queue, in flight or
						   waiting to retry */
	struct lifecycle_notifier *n;
	const struct conf_webhook *hook;	/* borrowed from the conf */
	enum lifecycle_event	 ev;
	char			 id[LC_NOTIFY_ID_MAX];
	char			*body;		/* exact bytes signed */
	size_t			 len;
	char			 sig[LC_NOTIFY_SIG_HEADER_MAX];	/* header */
	int			 attempts;	/* made so far */
	CURL			*easy;		/* while in flight */
	struct curl_slist	*headers;	/* while in flight */
	struct event		*retry;		/* while waiting to retry */
	char			 errbuf[CURL_ERROR_SIZE];
};

TAILQ_HEAD(lc_delivery_list, lc_delivery);

struct lifecycle_notifier {
	pthread_mutex_t		 mu;		/* guards the next block */
	struct lc_delivery_list	 queue;		/* waiting for a transfer */
	size_t			 live;		/* queued + in flight + retrying */
	size_t			 dropped;	/* refused since the last log */
	bool			 full;		/* "queue full" was logged */
	bool			 started;
	struct event		*wake;		/* active: look at the queue */

	/* jobs thread only (or with no loop running) */
	struct lifecycle	*lc;
	struct event_base	*base;
	struct common_curlev	*curl;		/* the HTTP transfers */
	struct lc_delivery_list	 inflight;
	size_t			 ninflight;
	struct lc_delivery_list	 retrying;
};

const char *
lifecycle_event_name(enum lifecycle_event ev)
{
	if ((int)ev < 0 || ev >= LIFECYCLE_EV__MAX)
		return NULL;
	return lc_event_names[ev];
}

int
lifecycle_event_parse(const char *name, enum lifecycle_event *out)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < LIFECYCLE_EV__MAX; i++)
		if (strcmp(name, lc_event_names[i]) == 0) {
			if (out != NULL)
				*out = (enum lifecycle_event)i;
			return 0;
		}
	return -1;
}

/* ---- deliveries ------------------------------------------------------------ */

static void
lc_delivery_free(struct lc_delivery *d)
{
	if (d == NULL)
		return;
	if (d->easy != NULL)
		curl_easy_cleanup(d->easy);
	curl_slist_free_all(d->headers);
	if (d->retry != NULL)
		event_free(d->retry);
	free(d->body);
	free(d);
}

/* The webhook's URL for a log line: at most LC_NOTIFY_URL_SHOWN
 * characters, without a query (it may carry a token). */
static void
lc_notify_url_shown(const char *url, char *out, size_t outlen)
{
	size_t n = strcspn(url, "?#");

	if (n > LC_NOTIFY_URL_SHOWN)
		n = LC_NOTIFY_URL_SHOWN;
	snprintf(out, outlen, "%.*s", (int)n, url);
}

/* True when the webhook asks for ev (no event list: every event). */
static bool
lc_notify_wants(const struct conf_webhook *w, const char *name)
{
	size_t i;

	if (w->nevents == 0)
		return true;
	for (i = 0; i < w->nevents; i++)
		if (strcmp(w->events[i], name) == 0)
			return true;
	return false;
}

/*
 * Builds the delivery of event ev with data (borrowed; NULL is {}) for
 * webhook w: a fresh id, the body and its signature header. NULL (logged)
 * on failure.
 */
static struct lc_delivery *
lc_delivery_new(struct lifecycle_notifier *n, const struct conf_webhook *w,
    enum lifecycle_event ev, const json_t *data, const char *when)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned int maclen = 0;
	struct lc_delivery *d = NULL, *res = NULL;
	json_t *body = NULL, *copy;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		goto nomem;
	d->n = n;
	d->hook = w;
	d->ev = ev;
	if (common_random_id("dlv-", d->id, sizeof(d->id)) == -1) {
		log_err("notify: %s: cannot draw a delivery id",
		    lc_event_names[ev]);
		goto out;
	}
	copy = data != NULL ? json_deep_copy(data) : json_object();
	if (copy == NULL || (body = json_pack("{s:s, s:s, s:s, s:o}",
	    "event", lc_event_names[ev], "time", when, "id", d->id,
	    "data", copy)) == NULL)
		goto nomem;
	if ((d->body = json_dumps(body, JSON_COMPACT)) == NULL)
		goto nomem;
	d->len = strlen(d->body);
	if (d->len > LC_NOTIFY_BODY_MAX) {
		log_err("notify: %s %s: body of %zu bytes is over the limit of "
		    "%d; not sent", lc_event_names[ev], d->id, d->len,
		    LC_NOTIFY_BODY_MAX);
		goto out;
	}
	if (HMAC(EVP_sha256(), w->secret, (int)strlen(w->secret),
	    (const unsigned char *)d->body, d->len, mac, &maclen) == NULL) {
		log_err("notify: %s %s: HMAC-SHA256: %s", lc_event_names[ev],
		    d->id, common_ssl_error());
		goto out;
	}
	common_hex(mac, maclen, hex);
	snprintf(d->sig, sizeof(d->sig), "X-Pkid-Signature: sha256=%s", hex);
	res = d;	/* steal */
	d = NULL;
	goto out;
nomem:
	log_err("notify: %s: building the delivery: out of memory",
	    lc_event_names[ev]);
out:
	json_decref(body);
	lc_delivery_free(d);
	return res;
}

void
lifecycle_notify(struct lifecycle *lc, enum lifecycle_event ev,
    const json_t *data)
{
	struct lifecycle_notifier *n;
	const struct conf *cf;
	struct lc_delivery *d;
	char when[LIFECYCLE_TIME_MAX];
	size_t i;

	if (lc == NULL || lifecycle_event_name(ev) == NULL)
		return;
	if ((cf = lifecycle_cfg(lc)->conf) == NULL ||
	    cf->notifications.nwebhooks == 0)
		return;
	n = lifecycle_notifier(lc);
	common_time_rfc3339(common_now(), when, sizeof(when));
	for (i = 0; i < cf->notifications.nwebhooks; i++) {
		const struct conf_webhook *w = &cf->notifications.webhooks[i];

		if (!lc_notify_wants(w, lc_event_names[ev]))
			continue;
		pthread_mutex_lock(&n->mu);
		if (n->live >= LIFECYCLE_NOTIFY_QUEUE_MAX) {
			/* Once per overflow; the count comes when it ends. */
			if (!n->full)
				log_err("notify: queue full (%d deliveries "
				    "waiting): dropping notifications",
				    LIFECYCLE_NOTIFY_QUEUE_MAX);
			n->full = true;
			n->dropped++;
			pthread_mutex_unlock(&n->mu);
			common_metric_inc(LC_NOTIFY_METRIC,
			    "result=\"dropped\"");
			continue;
		}
		n->live++;	/* reserved before the unlocked build */
		pthread_mutex_unlock(&n->mu);
		d = lc_delivery_new(n, w, ev, data, when);
		pthread_mutex_lock(&n->mu);
		if (d == NULL)
			n->live--;
		else {
			TAILQ_INSERT_TAIL(&n->queue, d, entry);
			/* Thread-safe (evthread); under the lock so that
			 * lifecycle_notify_stop cannot free it meanwhile. */
			if (n->started)
				event_active(n->wake, EV_TIMEOUT, 0);
		}
		pthread_mutex_unlock(&n->mu);
	}
}

/* ---- attempts ---------------------------------------------------------------- */

static void lc_notify_pump(struct lifecycle_notifier *);

/* The receiver's answer is not used: read and forget it. */
static size_t
lc_notify_discard(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

/* The delivery is over (delivered or given up): frees it and lets a
 * queued one in. */
static void
lc_delivery_done(struct lc_delivery *d)
{
	struct lifecycle_notifier *n = d->n;
	size_t dropped = 0;

	lc_delivery_free(d);
	pthread_mutex_lock(&n->mu);
	n->live--;
	if (n->full && n->live < LIFECYCLE_NOTIFY_QUEUE_MAX / 2) {
		n->full = false;
		dropped = n->dropped;
		n->dropped = 0;
	}
	pthread_mutex_unlock(&n->mu);
	if (dropped > 0)
		log_warn("notify: queue has room again; %zu notification%s "
		    "dropped while it was full", dropped,
		    dropped == 1 ? " was" : "s were");
}

/* Retry timer: the delivery goes back to the queue. */
static void
lc_delivery_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lc_delivery *d = arg;
	struct lifecycle_notifier *n = d->n;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&n->retrying, d, entry);
	event_free(d->retry);
	d->retry = NULL;
	pthread_mutex_lock(&n->mu);
	TAILQ_INSERT_TAIL(&n->queue, d, entry);
	pthread_mutex_unlock(&n->mu);
	lc_notify_pump(n);
}

/*
 * Ends one attempt that failed for reason: schedules the next one after
 * the backoff, or gives up after notifications.retry_max attempts. One
 * log line either way.
 */
static void
lc_delivery_failed(struct lc_delivery *d, const char *reason)
{
	struct lifecycle_notifier *n = d->n;
	const struct conf *cf = lifecycle_cfg(n->lc)->conf;
	char url[LC_NOTIFY_URL_SHOWN + 1];
	struct timeval tv = { 0, 0 };
	int delay, max = cf != NULL ? cf->notifications.retry_max : 1;

	lc_notify_url_shown(d->hook->url, url, sizeof(url));
	if (d->attempts >= max) {
		log_err("notify: %s %s to %s: attempt %d failed: %s; giving "
		    "up", lc_event_names[d->ev], d->id, url, d->attempts,
		    reason);
		common_metric_inc(LC_NOTIFY_METRIC, "result=\"failed\"");
		lc_delivery_done(d);
		return;
	}
	/* 1, 2, 4, ... seconds; the shift stays far below int's width. */
	delay = d->attempts <= 9 ? 1 << (d->attempts - 1) :
	    LC_NOTIFY_BACKOFF_MAX;
	if (delay > LC_NOTIFY_BACKOFF_MAX)
		delay = LC_NOTIFY_BACKOFF_MAX;
	tv.tv_sec = delay;
	if ((d->retry = evtimer_new(n->base, lc_delivery_retry_cb, d)) ==
	    NULL || evtimer_add(d->retry, &tv) == -1) {
		log_err("notify: %s %s to %s: attempt %d failed: %s; cannot "
		    "schedule a retry, giving up", lc_event_names[d->ev],
		    d->id, url, d->attempts, reason);
		common_metric_inc(LC_NOTIFY_METRIC, "result=\"failed\"");
		lc_delivery_done(d);
		return;
	}
	TAILQ_INSERT_TAIL(&n->retrying, d, entry);
	log_warn("notify: %s %s to %s: attempt %d of %d failed: %s; retrying "
	    "in %d s", lc_event_names[d->ev], d->id, url, d->attempts, max,
	    reason, delay);
}

/* Sets up and adds the transfer of one attempt; on failure the attempt
 * counts as failed. */
static void
lc_delivery_send(struct lc_delivery *d)
{
	struct lifecycle_notifier *n = d->n;
	const struct conf_webhook *w = d->hook;
	char ev_hdr[LC_NOTIFY_HEADER_MAX], id_hdr[LC_NOTIFY_HEADER_MAX];
	struct curl_slist *h = NULL, *t;
	long connect;
	CURL *e;

	d->attempts++;
	d->errbuf[0] = '\0';
	snprintf(ev_hdr, sizeof(ev_hdr), "X-Pkid-Event: %s",
	    lc_event_names[d->ev]);
	snprintf(id_hdr, sizeof(id_hdr), "X-Pkid-Delivery: %s", d->id);
	if ((e = curl_easy_init()) == NULL)
		goto fail;
	d->easy = e;
	if ((t = curl_slist_append(h, "Content-Type: application/json")) ==
	    NULL)
		goto fail;
	h = t;
	if ((t = curl_slist_append(h, ev_hdr)) == NULL)
		goto fail;
	h = t;
	if ((t = curl_slist_append(h, id_hdr)) == NULL)
		goto fail;
	h = t;
	if ((t = curl_slist_append(h, d->sig)) == NULL)
		goto fail;
	h = t;
	/* No "Expect: 100-continue" round trip for small bodies. */
	if ((t = curl_slist_append(h, "Expect:")) == NULL)
		goto fail;
	h = t;
	d->headers = h;	/* steal */
	h = NULL;
	connect = w->timeout_seconds < LC_NOTIFY_CONNECT_MAX ?
	    w->timeout_seconds : LC_NOTIFY_CONNECT_MAX;
	if (curl_easy_setopt(e, CURLOPT_URL, w->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)d->len) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, LC_NOTIFY_USER_AGENT) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)w->timeout_seconds) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, connect) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    (w->ca_file[0] != '\0' && curl_easy_setopt(e, CURLOPT_CAINFO,
	    w->ca_file) != CURLE_OK) ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, lc_notify_discard) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, d) != CURLE_OK)
		goto fail;
	if (common_curlev_add(n->curl, e) == -1)
		goto fail;
	TAILQ_INSERT_TAIL(&n->inflight, d, entry);
	n->ninflight++;
	return;
fail:
	curl_slist_free_all(h);
	curl_slist_free_all(d->headers);
	d->headers = NULL;
	if (d->easy != NULL)
		curl_easy_cleanup(d->easy);
	d->easy = NULL;
	lc_delivery_failed(d, d->errbuf[0] != '\0' ? d->errbuf :
	    "cannot set up the HTTP transfer");
}

/* A transfer ended with rc (its easy handle is out of the multi handle):
 * logs the outcome and frees or retries. */
static void
lc_delivery_finish(struct lc_delivery *d, CURLcode rc)
{
	struct lifecycle_notifier *n = d->n;
	char url[LC_NOTIFY_URL_SHOWN + 1], why[CURL_ERROR_SIZE + 64];
	long status = 0;

	TAILQ_REMOVE(&n->inflight, d, entry);
	n->ninflight--;
	curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(d->easy);
	d->easy = NULL;
	curl_slist_free_all(d->headers);
	d->headers = NULL;
	if (rc == CURLE_OK && status >= 200 && status <= 299) {
		lc_notify_url_shown(d->hook->url, url, sizeof(url));
		log_info("notify: %s %s to %s: delivered (HTTP %ld, attempt "
		    "%d)", lc_event_names[d->ev], d->id, url, status,
		    d->attempts);
		common_metric_inc(LC_NOTIFY_METRIC, "result=\"delivered\"");
		lc_delivery_done(d);
		return;
	}
	if (rc != CURLE_OK)
		snprintf(why, sizeof(why), "%s", d->errbuf[0] != '\0' ?
		    d->errbuf : curl_easy_strerror(rc));
	else
		snprintf(why, sizeof(why), "HTTP status %ld", status);
	lc_delivery_failed(d, why);
}

/* common_curlev's done callback: finishes the delivery whose transfer
 * ended, then lets queued deliveries take the free slot. */
static void
lc_notify_done(CURL *easy, CURLcode rc, void *arg)
{
	struct lifecycle_notifier *n = arg;
	struct lc_delivery *d;
	char *priv = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
	d = (struct lc_delivery *)(void *)priv;
	if (d != NULL && d->easy == easy)
		lc_delivery_finish(d, rc);
	lc_notify_pump(n);
}

/* Starts queued deliveries while transfer slots are free. */
static void
lc_notify_pump(struct lifecycle_notifier *n)
{
	struct lc_delivery *d;

	while (n->ninflight < LC_NOTIFY_INFLIGHT_MAX) {
		/* the change an event reports may have been committed by a
		 * server worker whose flush is still due: announce nothing
		 * a crash could take back (when the flush fails the
		 * deliveries wait for the next wake-up) */
		if (n->lc != NULL && store_flush_all(lifecycle_store(n->lc)) ==
		    -1) {
			log_err("notify: the log flush failed; deliveries "
			    "wait");
			break;
		}
		pthread_mutex_lock(&n->mu);
		if ((d = TAILQ_FIRST(&n->queue)) != NULL)
			TAILQ_REMOVE(&n->queue, d, entry);
		pthread_mutex_unlock(&n->mu);
		if (d == NULL)
			break;
		lc_delivery_send(d);
	}
}

static void
lc_notify_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lc_notify_pump(arg);
}

/* ---- start and stop ------------------------------------------------------------ */

struct lifecycle_notifier *
lifecycle_notifier_new(void)
{
	struct lifecycle_notifier *n;

	if ((n = calloc(1, sizeof(*n))) == NULL) {
		log_err("notify: out of memory");
		return NULL;
	}
	if ((errno = pthread_mutex_init(&n->mu, NULL)) != 0) {
		log_err("notify: mutex: %s", strerror(errno));
		free(n);
		return NULL;
	}
	TAILQ_INIT(&n->queue);
	TAILQ_INIT(&n->inflight);
	TAILQ_INIT(&n->retrying);
	return n;
}

/*
 * Cancels what is in flight or waiting to retry and frees the curl and
 * libevent state, keeping the queue. Runs with no loop iterating the base
 * (or on its thread). Returns how many deliveries were cancelled.
 */
static size_t
lc_notify_teardown(struct lifecycle_notifier *n)
{
	struct lc_delivery *d;
	size_t cancelled = 0;

	while ((d = TAILQ_FIRST(&n->inflight)) != NULL) {
		TAILQ_REMOVE(&n->inflight, d, entry);
		common_curlev_remove(n->curl, d->easy);
		lc_delivery_free(d);
		cancelled++;
	}
	n->ninflight = 0;
	while ((d = TAILQ_FIRST(&n->retrying)) != NULL) {
		TAILQ_REMOVE(&n->retrying, d, entry);
		lc_delivery_free(d);
		cancelled++;
	}
	common_curlev_free(n->curl);
	n->curl = NULL;
	if (n->wake != NULL)
		event_free(n->wake);
	n->wake = NULL;
	n->base = NULL;
	return cancelled;
}

int
lifecycle_notify_start(struct lifecycle *lc, struct event_base *jobs_base)
{
	struct lifecycle_notifier *n;
	const struct conf *cf;
	size_t queued;

	if (lc == NULL || jobs_base == NULL)
		return -1;
	n = lifecycle_notifier(lc);
	if (n->base != NULL) {
		log_err("notify: started twice");
		return -1;
	}
	n->lc = lc;
	n->base = jobs_base;
	if ((n->wake = event_new(jobs_base, -1, 0, lc_notify_wake_cb, n)) ==
	    NULL) {
		log_err("notify: cannot create the delivery events");
		goto fail;
	}
	if ((n->curl = common_curlev_new(jobs_base, "notify", lc_notify_done,
	    n)) == NULL)
		goto fail;
	pthread_mutex_lock(&n->mu);
	n->started = true;
	queued = n->live;
	pthread_mutex_unlock(&n->mu);
	/* Deliveries queued before the start go out once the loop runs. */
	event_active(n->wake, EV_TIMEOUT, 0);
	cf = lifecycle_cfg(lc)->conf;
	log_info("notify: delivering to %zu webhook%s (%zu waiting)",
	    cf != NULL ? cf->notifications.nwebhooks : 0,
	    cf != NULL && cf->notifications.nwebhooks == 1 ? "" : "s",
	    queued);
	return 0;
fail:
	lc_notify_teardown(n);
	return -1;
}

void
lifecycle_notify_stop(struct lifecycle *lc)
{
	struct lifecycle_notifier *n;
	struct lc_delivery *d;
	size_t cancelled;

	if (lc == NULL || (n = lifecycle_notifier(lc)) == NULL)
		return;
	pthread_mutex_lock(&n->mu);
	n->started = false;
	pthread_mutex_unlock(&n->mu);
	cancelled = lc_notify_teardown(n);
	pthread_mutex_lock(&n->mu);
	while ((d = TAILQ_FIRST(&n->queue)) != NULL) {
		TAILQ_REMOVE(&n->queue, d, entry);
		lc_delivery_free(d);
		cancelled++;
	}
	n->live = 0;
	pthread_mutex_unlock(&n->mu);
	if (cancelled > 0)
		log_warn("notify: stopping: %zu undelivered notification%s "
		    "cancelled", cancelled, cancelled == 1 ? "" : "s");
}

size_t
lifecycle_notify_pending(struct lifecycle *lc)
{
	struct lifecycle_notifier *n;
	size_t live;

	if (lc == NULL || (n = lifecycle_notifier(lc)) == NULL)
		return 0;
	pthread_mutex_lock(&n->mu);
	live = n->live;
	pthread_mutex_unlock(&n->mu);
	return live;
}

void
lifecycle_notifier_free(struct lifecycle_notifier *n)
{
	struct lc_delivery *d;

	if (n == NULL)
		return;
	lc_notify_teardown(n);
	while ((d = TAILQ_FIRST(&n->queue)) != NULL) {
		TAILQ_REMOVE(&n->queue, d, entry);
		lc_delivery_free(d);
	}
	pthread_mutex_destroy(&n->mu);
	free(n);
}
