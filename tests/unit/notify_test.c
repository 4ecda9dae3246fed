/*
 * Unit tests of lifecycle/notify.c (webhook notifications) and
 * lifecycle/crl.c (the CRL schedule), against a real store and CA.
 *
 * Webhooks are received by an HTTPS server of the test's own (libevent
 * evhttp over OpenSSL, with a self-signed certificate for 127.0.0.1 made
 * here; the webhooks' ca_file points at it) running in its own thread.
 * It records each request and answers with the status the test asks
 * for, so that bodies, headers and the HMAC can be checked, failures
 * retried and deliveries cancelled in flight. The notifier and the CRL
 * schedule run on a "jobs" event base driven by another thread, as in
 * pkid serve; lifecycle_notify and lifecycle_crl_touch are called from
 * the test thread and from extra threads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "lifecycle/lifecycle.h"
#include "tests/unit/test.h"

#define T_HITS_MAX	64		/* requests the receiver records */
#define T_BODY_MAX	(64 * 1024)
#define T_FIELD_MAX	160
#define T_WAIT_MS	8000		/* longest wait for something */
#define T_SECRET_A	"secret-of-hook-a-0123"
#define T_SECRET_B	"another secret, for hook b"

/* ---- the webhook receiver -------------------------------------------- */

struct t_hit {
	char	 path[T_FIELD_MAX];
	char	 method[16];
	char	 ctype[T_FIELD_MAX];
	char	 event[T_FIELD_MAX];
	char	 delivery[T_FIELD_MAX];
	char	 sig[T_FIELD_MAX];
	char	*body;
	size_t	 len;
	int	 status;	/* what the receiver answered */
};

static struct {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct event_base	*base;
	struct evhttp		*http;
	SSL_CTX			*ssl;
	pthread_t		 thread;
	bool			 running;
	int			 port;
	char			 cert_file[512];	/* its certificate */
	char			 other_file[512];	/* an unrelated one */
	struct t_hit		 hits[T_HITS_MAX];
	size_t			 nhits;
	int			 fail_next;	/* answer this many 500/503 */
	bool			 hang;		/* never answer */
} rcv = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static struct store *st;
static struct ca_ctx *ctx;
static char ca_id[64];

static void
t_copy_header(struct evkeyvalq *h, const char *name, char *out, size_t len)
{
	const char *v = evhttp_find_header(h, name);

	snprintf(out, len, "%s", v != NULL ? v : "");
}

static void
t_rcv_handle(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *buf = evhttp_request_get_input_buffer(req);
	struct t_hit *h = NULL;
	size_t len = evbuffer_get_length(buf);
	int status = 200;
	bool hang;

	(void)arg;
	pthread_mutex_lock(&rcv.mu);
	hang = rcv.hang;
	if (rcv.fail_next > 0) {
		status = rcv.fail_next % 2 == 0 ? 500 : 503;
		rcv.fail_next--;
	}
	if (rcv.nhits < T_HITS_MAX && len <= T_BODY_MAX) {
		h = &rcv.hits[rcv.nhits];
		memset(h, 0, sizeof(*h));
		snprintf(h->path, sizeof(h->path), "%s",
		    evhttp_request_get_uri(req));
		snprintf(h->method, sizeof(h->method), "%s",
		    evhttp_request_get_command(req) == EVHTTP_REQ_POST ?
		    "POST" : "other");
		t_copy_header(in, "Content-Type", h->ctype, sizeof(h->ctype));
		t_copy_header(in, "X-Pkid-Event", h->event, sizeof(h->event));
		t_copy_header(in, "X-Pkid-Delivery", h->delivery,
		    sizeof(h->delivery));
		t_copy_header(in, "X-Pkid-Signature", h->sig, sizeof(h->sig));
		if ((h->body = malloc(len + 1)) != NULL) {
			evbuffer_copyout(buf, h->body, len);
			h->body[len] = '\0';
			h->len = len;
		}
		h->status = hang ? 0 : status;
		rcv.nhits++;
	}
	pthread_cond_broadcast(&rcv.cv);
	pthread_mutex_unlock(&rcv.mu);
	if (hang)
		return;	/* evhttp_free reclaims it */
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Failing",
	    NULL);
}

static struct bufferevent *
t_rcv_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);

	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static void *
t_rcv_main(void *arg)
{
	(void)arg;
	event_base_loop(rcv.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Starts the receiver on 127.0.0.1:0 in its own thread. */
static bool
t_rcv_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	EVP_PKEY *key = NULL, *okey = NULL;
	X509 *cert = NULL, *other = NULL;
	bool ok = false;

	if (rcv.running)
		return true;
	snprintf(rcv.cert_file, sizeof(rcv.cert_file), "%s/receiver.pem",
	    test_tmpdir());
	snprintf(rcv.other_file, sizeof(rcv.other_file), "%s/other.pem",
	    test_tmpdir());
	if ((cert = test_self_signed(&key, rcv.cert_file)) == NULL ||
	    (other = test_self_signed(&okey, rcv.other_file)) == NULL)
		goto out;
	if ((rcv.ssl = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate(rcv.ssl, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(rcv.ssl, key) != 1)
		goto out;
	if ((rcv.base = event_base_new()) == NULL ||
	    (rcv.http = evhttp_new(rcv.base)) == NULL)
		goto out;
	evhttp_set_bevcb(rcv.http, t_rcv_bev, rcv.ssl);
	evhttp_set_gencb(rcv.http, t_rcv_handle, NULL);
	evhttp_set_allowed_methods(rcv.http, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
	if ((bs = evhttp_bind_socket_with_handle(rcv.http, "127.0.0.1",
	    0)) == NULL || getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sin, &slen) == -1)
		goto out;
	rcv.port = ntohs(sin.sin_port);
	if (pthread_create(&rcv.thread, NULL, t_rcv_main, NULL) != 0)
		goto out;
	rcv.running = true;
	ok = true;
out:
	X509_free(cert);
	X509_free(other);
	EVP_PKEY_free(key);
	EVP_PKEY_free(okey);
	return ok;
}

static void
t_rcv_reset(int fail_next, bool hang)
{
	size_t i;

	pthread_mutex_lock(&rcv.mu);
	for (i = 0; i < rcv.nhits; i++)
		free(rcv.hits[i].body);
	rcv.nhits = 0;
	rcv.fail_next = fail_next;
	rcv.hang = hang;
	pthread_mutex_unlock(&rcv.mu);
}

/* Waits until the receiver recorded at least n requests (at most ms);
 * returns how many it has. */
static size_t
t_rcv_wait(size_t n, int ms)
{
	struct timespec ts;
	size_t got;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rcv.mu);
	while (rcv.nhits < n &&
	    pthread_cond_timedwait(&rcv.cv, &rcv.mu, &ts) == 0)
		;
	got = rcv.nhits;
	pthread_mutex_unlock(&rcv.mu);
	return got;
}

static void
t_rcv_stop(void)
{
	if (!rcv.running)
		return;
	event_base_loopbreak(rcv.base);
	pthread_join(rcv.thread, NULL);
	evhttp_free(rcv.http);
	event_base_free(rcv.base);
	SSL_CTX_free(rcv.ssl);
	t_rcv_reset(0, false);
	rcv.running = false;
}

/* ---- the jobs thread and a lifecycle per configuration ---------------- */

struct t_jobs {
	struct event_base	*base;
	pthread_t		 thread;
	bool			 running;
};

static void *
t_jobs_main(void *arg)
{
	struct t_jobs *j = arg;

	event_base_loop(j->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static bool
t_jobs_run(struct t_jobs *j)
{
	if (pthread_create(&j->thread, NULL, t_jobs_main, j) != 0)
		return false;
	j->running = true;
	return true;
}

/* Stops the loop (as server_run does before returning), then what pkid
 * serve does before server_free: the lifecycle's events go, then the
 * base. */
static void
t_jobs_end(struct t_jobs *j, struct lifecycle *lc)
{
	if (j->running) {
		event_base_loopbreak(j->base);
		pthread_join(j->thread, NULL);
		j->running = false;
	}
	lifecycle_notify_stop(lc);
	lifecycle_crl_stop(lc);
	lifecycle_free(lc);
	if (j->base != NULL)
		event_base_free(j->base);
	j->base = NULL;
}

/* Loads a configuration from JSON text (through conf_load, so the keys
 * are checked as pkid serve checks them). */
static struct conf *
t_conf(const char *name, const char *json)
{
	char path[512], err[512];
	struct conf *c;

	snprintf(path, sizeof(path), "%s/%s.json", test_tmpdir(), name);
	if (common_file_write(path, json, strlen(json), 0600) == -1)
		return NULL;
	if ((c = conf_load(path, err, sizeof(err))) == NULL)
		fprintf(stderr, "%s: %s\n", name, err);
	return c;
}

/* A configuration with webhooks (hooks: the array's members, in JSON,
 * with %s for the receiver's base URL and %s for its certificate). */
static struct conf *
t_conf_hooks(const char *name, const char *hooks, int retry_max)
{
	char base[64], text[8192], list[4096];

	snprintf(base, sizeof(base), "https://127.0.0.1:%d", rcv.port);
	/* Every %s in hooks pairs base and cert. */
	snprintf(list, sizeof(list), hooks, base, rcv.cert_file, base,
	    rcv.cert_file, base, rcv.cert_file);
	snprintf(text, sizeof(text), "{ \"notifications\": { \"retry_max\": "
	    "%d, \"webhooks\": [ %s ] } }", retry_max, list);
	return t_conf(name, text);
}

static struct lifecycle *
t_lc(const struct conf *cf)
{
	struct lifecycle_config lcfg;

	memset(&lcfg, 0, sizeof(lcfg));
	lcfg.default_validity_days = 90;
	lcfg.default_renew_before_days = 30;
	lcfg.conf = cf;
	return lifecycle_new(ctx, &lcfg);
}

/* Waits until lc has no delivery left; true if so within ms. */
static bool
t_drained(struct lifecycle *lc, int ms)
{
	int waited;

	for (waited = 0; waited < ms; waited += 20) {
		if (lifecycle_notify_pending(lc) == 0)
			return true;
		usleep(20 * 1000);
	}
	return lifecycle_notify_pending(lc) == 0;
}

/* Checks one received request: method, headers, the HMAC over the exact
 * body, and the body's envelope; returns the body (new reference). */
static json_t *
t_hit_check(const struct t_hit *h, const char *path, const char *event,
    const char *secret)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], want[T_FIELD_MAX];
	unsigned int maclen = 0;
	const char *t;
	json_t *body;

	CHECK_STR(h->method, "POST");
	CHECK_STR(h->path, path);
	CHECK_STR(h->ctype, "application/json");
	CHECK_STR(h->event, event);
	CHECK(strncmp(h->delivery, "dlv-", 4) == 0 &&
	    strlen(h->delivery) == 20);
	CHECK(h->body != NULL &&
	    HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)h->body, h->len, mac, &maclen) != NULL);
	common_hex(mac, maclen, hex);
	snprintf(want, sizeof(want), "sha256=%s", hex);
	CHECK_STR(h->sig, want);
	body = h->body != NULL ? json_loadb(h->body, h->len, 0, NULL) : NULL;
	CHECK(json_is_object(body));
	CHECK_STR(json_string_value(json_object_get(body, "event")), event);
	CHECK_STR(json_string_value(json_object_get(body, "id")),
	    h->delivery);
	t = json_string_value(json_object_get(body, "time"));
	CHECK(t != NULL && strlen(t) == 20 && t[4] == '-' && t[10] == 'T' &&
	    t[19] == 'Z');
	CHECK(json_is_object(json_object_get(body, "data")));
	CHECK(json_object_size(body) == 4);
	return body;
}

/* Index of the first hit with this path and event, or -1. */
static int
t_hit_find(const char *path, const char *event)
{
	size_t i;

	for (i = 0; i < rcv.nhits; i++)
		if (strcmp(rcv.hits[i].path, path) == 0 &&
		    strcmp(rcv.hits[i].event, event) == 0)
			return (int)i;
	return -1;
}

static size_t
t_hit_count(const char *path)
{
	size_t i, n = 0;

	for (i = 0; i < rcv.nhits; i++)
		if (strcmp(rcv.hits[i].path, path) == 0)
			n++;
	return n;
}

static json_t *
t_data(const char *cert, int version)
{
	return json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s}",
	    "certificate_id", cert, "name", "www.example.test",
	    "version", version, "serial", "0A1B2C", "ca_id", "ca-test",
	    "not_after", "2030-01-01T00:00:00Z", "detail", "test");
}

/* ---- tests: notifications ------------------------------------------------ */

static void
test_setup(void)
{
	struct ca_config cfg = { test_tmpdir(), NULL,
	    "http://127.0.0.1:8080" };

	CHECK(evthread_use_pthreads() == 0);
	CHECK((st = store_open(test_tmpdir())) != NULL);
	CHECK((ctx = ca_ctx_new(st, &cfg)) != NULL);
	if (st == NULL || ctx == NULL)
		exit(1);
	CHECK(t_rcv_start());
	if (!rcv.running)
		exit(1);
}

static void
test_event_names(void)
{
	static const char *const names[] = { "renewal_window", "renewed",
	    "renewal_failed", "deployment_failed", "expiring", "revoked" };
	enum lifecycle_event ev;
	int i;

	CHECK(LIFECYCLE_EV__MAX == 6);
	for (i = 0; i < LIFECYCLE_EV__MAX; i++) {
		CHECK_STR(lifecycle_event_name((enum lifecycle_event)i),
		    names[i]);
		CHECK(lifecycle_event_parse(names[i], &ev) == 0 &&
		    (int)ev == i);
	}
	CHECK(lifecycle_event_name(LIFECYCLE_EV__MAX) == NULL);
	CHECK(lifecycle_event_name((enum lifecycle_event)-1) == NULL);
	CHECK(lifecycle_event_parse("Renewed", &ev) == -1);
	CHECK(lifecycle_event_parse("", &ev) == -1);
	CHECK(lifecycle_event_parse(NULL, &ev) == -1);
}

/* Without webhooks, or without one that wants the event, nothing is
 * queued; a full queue drops (and frees) the rest. */
static void
test_notify_nothing_and_bound(void)
{
	struct conf *none = conf_defaults(), *cf;
	struct lifecycle *lc;
	json_t *d = t_data("cert-1", 1);
	size_t i;

	lc = t_lc(NULL);
	CHECK(lc != NULL);
	lifecycle_notify(lc, LIFECYCLE_EV_REVOKED, d);
	CHECK(lifecycle_notify_pending(lc) == 0);
	lifecycle_free(lc);
	lc = t_lc(none);
	lifecycle_notify(lc, LIFECYCLE_EV_REVOKED, d);
	CHECK(lifecycle_notify_pending(lc) == 0);
	lifecycle_free(lc);
	lifecycle_notify(NULL, LIFECYCLE_EV_REVOKED, d);

	cf = t_conf_hooks("bound", "{ \"url\": \"%s/only-revoked\", "
	    "\"secret\": \"" T_SECRET_A "\", \"events\": [\"revoked\"], "
	    "\"ca_file\": \"%s\" }", 5);
	CHECK(cf != NULL);
	if (cf == NULL)
		goto out;
	lc = t_lc(cf);
	lifecycle_notify(lc, LIFECYCLE_EV_RENEWED, d);
	lifecycle_notify(lc, LIFECYCLE_EV__MAX, d);
	CHECK(lifecycle_notify_pending(lc) == 0);
	/* Never started: everything waits, up to the bound. */
	for (i = 0; i < LIFECYCLE_NOTIFY_QUEUE_MAX + 3; i++)
		lifecycle_notify(lc, LIFECYCLE_EV_REVOKED, i % 2 ? d : NULL);
	CHECK(lifecycle_notify_pending(lc) == LIFECYCLE_NOTIFY_QUEUE_MAX);
	lifecycle_notify_stop(lc);
	CHECK(lifecycle_notify_pending(lc) == 0);
	lifecycle_free(lc);	/* nothing delivered, nothing leaked */
out:
	conf_free(cf);
	conf_free(none);
	json_decref(d);
}

struct t_notifier_arg {
	struct lifecycle	*lc;
	json_t			*data;
};

static void *
t_notify_thread(void *p)
{
	struct t_notifier_arg *a = p;

	lifecycle_notify(a->lc, LIFECYCLE_EV_RENEWED, a->data);
	return NULL;
}

/* Queued before the start and sent once it runs; sent from another
 * thread; body, headers and signature as documented. */
static void
test_notify_deliver(void)
{
	struct t_jobs j = { 0 };
	struct t_notifier_arg a;
	struct conf *cf;
	struct lifecycle *lc;
	json_t *d1 = t_data("cert-1", 1), *d2 = t_data("cert-2", 7), *b;
	pthread_t th;
	int i1, i2;

	t_rcv_reset(0, false);
	cf = t_conf_hooks("deliver", "{ \"url\": \"%s/hook?token=x\", "
	    "\"secret\": \"" T_SECRET_A "\", \"ca_file\": \"%s\", "
	    "\"timeout_seconds\": 5 }", 5);
	CHECK(cf != NULL && (lc = t_lc(cf)) != NULL);
	if (cf == NULL || lc == NULL)
		goto out;
	lifecycle_notify(lc, LIFECYCLE_EV_REVOKED, d1);
	CHECK(lifecycle_notify_pending(lc) == 1);
	CHECK((j.base = event_base_new()) != NULL);
	CHECK(lifecycle_notify_start(lc, j.base) == 0);
	CHECK(lifecycle_notify_start(lc, j.base) == -1);	/* once */
	CHECK(t_jobs_run(&j));
	CHECK(t_rcv_wait(1, T_WAIT_MS) == 1);
	a.lc = lc;
	a.data = d2;
	CHECK(pthread_create(&th, NULL, t_notify_thread, &a) == 0);
	pthread_join(th, NULL);
	CHECK(t_rcv_wait(2, T_WAIT_MS) == 2);
	CHECK(t_drained(lc, T_WAIT_MS));
	pthread_mutex_lock(&rcv.mu);
	i1 = t_hit_find("/hook?token=x", "revoked");
	i2 = t_hit_find("/hook?token=x", "renewed");
	CHECK(i1 >= 0 && i2 >= 0);
	if (i1 >= 0 && i2 >= 0) {
		b = t_hit_check(&rcv.hits[i1], "/hook?token=x", "revoked",
		    T_SECRET_A);
		CHECK(json_equal(json_object_get(b, "data"), d1));
		json_decref(b);
		b = t_hit_check(&rcv.hits[i2], "/hook?token=x", "renewed",
		    T_SECRET_A);
		CHECK(json_equal(json_object_get(b, "data"), d2));
		json_decref(b);
		CHECK(strcmp(rcv.hits[i1].delivery,
		    rcv.hits[i2].delivery) != 0);
	}
	pthread_mutex_unlock(&rcv.mu);
	t_jobs_end(&j, lc);
out:
	conf_free(cf);
	json_decref(d1);
	json_decref(d2);
}

/* Each webhook gets the events it subscribed to, signed with its own
 * secret. */
static void
test_notify_filter(void)
{
	struct t_jobs j = { 0 };
	struct conf *cf;
	struct lifecycle *lc;
	json_t *d = t_data("cert-3", 2), *b;
	int i;

	t_rcv_reset(0, false);
	cf = t_conf_hooks("filter",
	    "{ \"url\": \"%s/a\", \"secret\": \"" T_SECRET_A "\", "
	    "\"events\": [\"revoked\", \"renewal_failed\"], "
	    "\"ca_file\": \"%s\" }, "
	    "{ \"url\": \"%s/b\", \"secret\": \"" T_SECRET_B "\", "
	    "\"ca_file\": \"%s\" }", 5);
	CHECK(cf != NULL && (lc = t_lc(cf)) != NULL);
	if (cf == NULL || lc == NULL)
		goto out;
	CHECK((j.base = event_base_new()) != NULL);
	CHECK(lifecycle_notify_start(lc, j.base) == 0);
	CHECK(t_jobs_run(&j));
	lifecycle_notify(lc, LIFECYCLE_EV_RENEWAL_WINDOW, d);
	lifecycle_notify(lc, LIFECYCLE_EV_REVOKED, d);
	lifecycle_notify(lc, LIFECYCLE_EV_RENEWAL_FAILED, d);
	lifecycle_notify(lc, LIFECYCLE_EV_EXPIRING, d);
	CHECK(t_rcv_wait(6, T_WAIT_MS) == 6);
	CHECK(t_drained(lc, T_WAIT_MS));
	usleep(200 * 1000);	/* nothing more comes */
	pthread_mutex_lock(&rcv.mu);
	CHECK(rcv.nhits == 6);
	CHECK(t_hit_count("/a") == 2 && t_hit_count("/b") == 4);
	CHECK(t_hit_find("/a", "revoked") >= 0);
	CHECK(t_hit_find("/a", "renewal_failed") >= 0);
	CHECK(t_hit_find("/a", "renewal_window") == -1);
	CHECK(t_hit_find("/a", "expiring") == -1);
	CHECK(t_hit_find("/b", "renewal_window") >= 0);
	CHECK(t_hit_find("/b", "expiring") >= 0);
	if ((i = t_hit_find("/a", "revoked")) >= 0) {
		b = t_hit_check(&rcv.hits[i], "/a", "revoked", T_SECRET_A);
		json_decref(b);
	}
	if ((i = t_hit_find("/b", "revoked")) >= 0) {
		b = t_hit_check(&rcv.hits[i], "/b", "revoked", T_SECRET_B);
		json_decref(b);
	}
	pthread_mutex_unlock(&rcv.mu);
	t_jobs_end(&j, lc);
out:
	conf_free(cf);
	json_decref(d);
}

/* 500 then 503, then success: three attempts of one delivery, the same
 * bytes and signature each time, 1 s and 2 s apart. */
static void
test_notify_retry(void)
{
	struct t_jobs j = { 0 };
	struct conf *cf;
	struct lifecycle *lc;
	json_t *d = t_data("cert-4", 3), *b;
	uint64_t t0, t3;
	size_t i;

	t_rcv_reset(2, false);
	cf = t_conf_hooks("retry", "{ \"url\": \"%s/r\", \"secret\": \""
	    T_SECRET_A "\", \"ca_file\": \"%s\" }", 5);
	CHECK(cf != NULL && (lc = t_lc(cf)) != NULL);
	if (cf == NULL || lc == NULL)
		goto out;
	CHECK((j.base = event_base_new()) != NULL);
	CHECK(lifecycle_notify_start(lc, j.base) == 0);
	CHECK(t_jobs_run(&j));
	t0 = common_mono_ms();
	lifecycle_notify(lc, LIFECYCLE_EV_RENEWAL_FAILED, d);
	CHECK(t_rcv_wait(3, T_WAIT_MS) == 3);
	t3 = common_mono_ms();
	CHECK(t_drained(lc, T_WAIT_MS));
	CHECK(t3 - t0 >= 2900);	/* backoff 1 s + 2 s */
	pthread_mutex_lock(&rcv.mu);
	CHECK(rcv.nhits == 3);
	if (rcv.nhits == 3) {
		CHECK(rcv.hits[0].status == 500 && rcv.hits[1].status == 503 &&
		    rcv.hits[2].status == 200);
		for (i = 1; i < 3; i++) {
			CHECK_STR(rcv.hits[i].delivery, rcv.hits[0].delivery);
			CHECK_STR(rcv.hits[i].sig, rcv.hits[0].sig);
			CHECK(rcv.hits[i].len == rcv.hits[0].len &&
			    memcmp(rcv.hits[i].body, rcv.hits[0].body,
			    rcv.hits[0].len) == 0);
		}
		b = t_hit_check(&rcv.hits[2], "/r", "renewal_failed",
		    T_SECRET_A);
		CHECK(json_equal(json_object_get(b, "data"), d));
		json_decref(b);
	}
	pthread_mutex_unlock(&rcv.mu);
	t_jobs_end(&j, lc);
out:
	conf_free(cf);
	json_decref(d);
}

/* notifications.retry_max attempts, then the delivery is given up. */
static void
test_notify_give_up(void)
{
	struct t_jobs j = { 0 };
	struct conf *cf;
	struct lifecycle *lc;
	json_t *d = t_data("cert-5", 1);

	t_rcv_reset(1000, false);
	cf = t_conf_hooks("give-up", "{ \"url\": \"%s/g\", \"secret\": \""
	    T_SECRET_A "\", \"ca_file\": \"%s\" }", 2);
	CHECK(cf != NULL && (lc = t_lc(cf)) != NULL);
	if (cf == NULL || lc == NULL)
		goto out;
	CHECK((j.base = event_base_new()) != NULL);
	CHECK(lifecycle_notify_start(lc, j.base) == 0);
	CHECK(t_jobs_run(&j));
	lifecycle_notify(lc, LIFECYCLE_EV_EXPIRING, d);
	CHECK(t_rcv_wait(2, T_WAIT_MS) == 2);
	CHECK(t_drained(lc, T_WAIT_MS));
	CHECK(t_rcv_wait(3, 2500) == 2);	/* no third attempt */
	t_jobs_end(&j, lc);
out:
	t_rcv_reset(0, false);
	conf_free(cf);
	json_decref(d);
}

/* TLS is verified: a receiver whose certificate is not trusted (the
 * wrong ca_file, or the system store) never sees the request; a refused
 * connection fails too. Each is given up after its attempts. */
static void
test_notify_tls_verified(void)
{
	struct t_jobs j = { 0 };
	struct conf *cf = NULL;
	struct lifecycle *lc;
	json_t *d = t_data("cert-6", 1);
	char hooks[2048];
	int fd, closed_port;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	/* A port nobody listens on: bound, then closed. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &slen) == 0);
	closed_port = ntohs(sin.sin_port);
	close(fd);

	t_rcv_reset(0, false);
	snprintf(hooks, sizeof(hooks),
	    "{ \"notifications\": { \"retry_max\": 1, \"webhooks\": [ "
	    "{ \"url\": \"https://127.0.0.1:%d/wrong-ca\", \"secret\": \""
	    T_SECRET_A "\", \"ca_file\": \"%s\" }, "
	    "{ \"url\": \"https://127.0.0.1:%d/system-ca\", \"secret\": \""
	    T_SECRET_A "\" }, "
	    "{ \"url\": \"http://127.0.0.1:%d/closed\", \"secret\": \""
	    T_SECRET_A "\", \"timeout_seconds\": 2 } ] } }",
	    rcv.port, rcv.other_file, rcv.port, closed_port);
	cf = t_conf("tls", hooks);
	CHECK(cf != NULL && (lc = t_lc(cf)) != NULL);
	if (cf == NULL || lc == NULL)
		goto out;
	CHECK((j.base = event_base_new()) != NULL);
	CHECK(lifecycle_notify_start(lc, j.base) == 0);
	CHECK(t_jobs_run(&j));
	lifecycle_notify(lc, LIFECYCLE_EV_REVOKED, d);
	CHECK(lifecycle_notify_pending(lc) <= 3);
	CHECK(t_drained(lc, T_WAIT_MS));
	CHECK(t_rcv_wait(1, 300) == 0);
	t_jobs_end(&j, lc);
out:
	conf_free(cf);
	json_decref(d);
}

/* Stopping cancels a delivery in flight (the receiver never answers)
 * and the ones waiting behind or for a retry; nothing leaks. */
static void
test_notify_stop_in_flight(void)
{
	struct t_jobs j = { 0 };
	struct conf *cf;
	struct lifecycle *lc;
	json_t *d = t_data("cert-7", 1);

	t_rcv_reset(0, true);
	cf = t_conf_hooks("stop", "{ \"url\": \"%s/hang\", \"secret\": \""
	    T_SECRET_A "\", \"ca_file\": \"%s\" }, "
	    "{ \"url\": \"http://127.0.0.1:1/never\", \"secret\": \""
	    T_SECRET_B "\" }", 5);
	CHECK(cf != NULL && (lc = t_lc(cf)) != NULL);
	if (cf == NULL || lc == NULL)
		goto out;
	CHECK((j.base = event_base_new()) != NULL);
	CHECK(lifecycle_notify_start(lc, j.base) == 0);
	CHECK(t_jobs_run(&j));
	lifecycle_notify(lc, LIFECYCLE_EV_DEPLOYMENT_FAILED, d);
	CHECK(t_rcv_wait(1, T_WAIT_MS) == 1);
	usleep(300 * 1000);	/* /never failed and waits to retry */
	CHECK(lifecycle_notify_pending(lc) == 2);
	t_jobs_end(&j, lc);	/* cancels both */
out:
	t_rcv_reset(0, false);
	conf_free(cf);
	json_decref(d);
}

/* ---- tests: the CRL schedule ---------------------------------------------- */

static int
t_make_ca(struct store_txn *txn, void *arg)
{
	struct ca_create_req req;
	struct common_error err;
	json_t *ca;

	(void)arg;
	common_error_clear(&err);
	memset(&req, 0, sizeof(req));
	req.name = "Notify Test Root";
	req.type = "root";
	req.subject = "CN=Notify Test Root";
	req.key_alg = CA_KEY_ECDSA_P256;
	req.validity_days = 365;
	req.path_len = -1;
	if ((ca = ca_create(ctx, txn, &req, &err)) == NULL) {
		fprintf(stderr, "CA: %s\n", err.msg);
		return -1;
	}
	snprintf(ca_id, sizeof(ca_id), "%s",
	    json_string_value(json_object_get(ca, "id")));
	json_decref(ca);
	return 0;
}

static long long
t_crl_number(void)
{
	struct common_error err;
	json_t *ca;
	long long n;

	common_error_clear(&err);
	ca = ca_get(ctx, NULL, ca_id, &err);
	n = json_integer_value(json_object_get(ca, "crl_number"));
	json_decref(ca);
	return n;
}

/* Waits (at most ms) for the CRL number to reach want; returns it. */
static long long
t_crl_wait(long long want, int ms)
{
	int waited;

	for (waited = 0; waited < ms && t_crl_number() < want; waited += 50)
		usleep(50 * 1000);
	return t_crl_number();
}

/* thisUpdate and nextUpdate of the published CRL; 0 or -1. */
static int
t_crl_times(time_t *this_update, time_t *next_update)
{
	char path[512], *der = NULL;
	const unsigned char *p;
	X509_CRL *crl = NULL;
	size_t len;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/public/crl/%s.crl", test_tmpdir(),
	    ca_id);
	if (common_file_read(path, 1 << 20, &der, &len) == -1)
		goto out;
	p = (const unsigned char *)der;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL ||
	    common_asn1_time(X509_CRL_get0_lastUpdate(crl), this_update) ==
	    -1 || common_asn1_time(X509_CRL_get0_nextUpdate(crl),
	    next_update) == -1)
		goto out;
	rc = 0;
out:
	X509_CRL_free(crl);
	free(der);
	return rc;
}

struct t_toucher {
	struct lifecycle	*lc;
	int			 n;
};

static void *
t_touch_thread(void *p)
{
	struct t_toucher *t = p;
	int i;

	for (i = 0; i < t->n; i++)
		lifecycle_crl_touch(t->lc, ca_id);
	return NULL;
}

/* A missing CRL is built at start; a burst of touches from two threads
 * gives one rebuild after the debounce delay; nextUpdate is twice the
 * interval. */
static void
test_crl_debounce(void)
{
	struct t_jobs j = { 0 };
	struct t_toucher t;
	struct conf *cf;
	struct lifecycle *lc;
	time_t tu, nu;
	long long n0;
	pthread_t th;
	uint64_t t0;

	CHECK(store_txn_run(st, t_make_ca, NULL) == 0 && ca_id[0] != '\0');
	cf = t_conf("debounce", "{ \"crl\": { \"interval_hours\": 24, "
	    "\"debounce_seconds\": 0.5 } }");
	CHECK(cf != NULL && (lc = t_lc(cf)) != NULL);
	if (cf == NULL || lc == NULL)
		goto out;
	CHECK(lifecycle_crl_next_update_seconds(lc) == 2 * 24 * 3600);
	n0 = t_crl_number();
	lifecycle_crl_touch(lc, ca_id);		/* before the start */
	CHECK((j.base = event_base_new()) != NULL);
	CHECK(lifecycle_crl_start(lc, j.base) == 0);
	CHECK(lifecycle_crl_start(lc, j.base) == -1);	/* once */
	CHECK(t_jobs_run(&j));
	/* The start builds the missing CRL, the early touch one more. */
	CHECK(t_crl_wait(n0 + 2, T_WAIT_MS) == n0 + 2);
	usleep(800 * 1000);
	CHECK(t_crl_number() == n0 + 2);
	CHECK(t_crl_times(&tu, &nu) == 0 && nu - tu == 2 * 24 * 3600);

	t.lc = lc;
	t.n = 3;
	t0 = common_mono_ms();
	CHECK(pthread_create(&th, NULL, t_touch_thread, &t) == 0);
	lifecycle_crl_touch(lc, ca_id);
	lifecycle_crl_touch(lc, ca_id);
	pthread_join(th, NULL);
	lifecycle_crl_touch(lc, "ca-unknown");	/* fails, logged */
	lifecycle_crl_touch(lc, "../../etc");	/* not an id: ignored */
	lifecycle_crl_touch(lc, NULL);
	CHECK(t_crl_wait(n0 + 3, T_WAIT_MS) == n0 + 3);
	CHECK(common_mono_ms() - t0 >= 450);	/* not before the delay */
	usleep(1000 * 1000);
	CHECK(t_crl_number() == n0 + 3);	/* five touches, one CRL */
	t_jobs_end(&j, lc);
out:
	conf_free(cf);
}

/* The periodic check rebuilds a CRL once it is an interval old (here
 * 36 s, checked every 3.6 s; the clock is moved, not waited for). */
static void
test_crl_periodic(void)
{
	struct t_jobs j = { 0 };
	struct conf *cf;
	struct lifecycle *lc;
	time_t tu, nu, before;
	long long n0;

	cf = t_conf("periodic", "{ \"crl\": { \"interval_hours\": 0.01 } }");
	CHECK(cf != NULL && (lc = t_lc(cf)) != NULL);
	if (cf == NULL || lc == NULL)
		goto out;
	CHECK(lifecycle_crl_next_update_seconds(lc) == 72);
	n0 = t_crl_number();
	CHECK(n0 > 0);
	CHECK((j.base = event_base_new()) != NULL);
	CHECK(lifecycle_crl_start(lc, j.base) == 0);
	CHECK(t_jobs_run(&j));
	/* The CRL of the last test is fresh: not rebuilt at start nor at
	 * the next check. */
	usleep(4000 * 1000);
	CHECK(t_crl_number() == n0);
	before = common_now();
	common_clock_set_offset(40);
	CHECK(t_crl_wait(n0 + 1, T_WAIT_MS) == n0 + 1);
	CHECK(t_crl_times(&tu, &nu) == 0);
	/* On a loaded machine the previous test's CRL may already have aged
	 * into a rebuild before the clock moved; either way it is a
	 * periodic rebuild with nextUpdate = 2 x interval. */
	CHECK(tu >= before && nu - tu == 72);
	usleep(4000 * 1000);
	CHECK(t_crl_number() == n0 + 1);	/* fresh again */
	common_clock_set_offset(0);
	t_jobs_end(&j, lc);
out:
	conf_free(cf);
}

static void
test_teardown(void)
{
	t_rcv_stop();
	ca_ctx_free(ctx);
	store_close(st);
}

const struct test_case test_cases[] = {
	TEST(test_setup),
	TEST(test_event_names),
	TEST(test_notify_nothing_and_bound),
	TEST(test_notify_deliver),
	TEST(test_notify_filter),
	TEST(test_notify_retry),
	TEST(test_notify_give_up),
	TEST(test_notify_tls_verified),
	TEST(test_notify_stop_in_flight),
	TEST(test_crl_debounce),
	TEST(test_crl_periodic),
	TEST(test_teardown),
	{ 0 },
};
