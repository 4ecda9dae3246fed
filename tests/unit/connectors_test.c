/*
 * Unit tests of connectors/ (the file and webhook connectors) and of
 * lifecycle/deploy.c (renewals deployed to associated resources),
 * against a real store and CA.
 *
 * The file connector writes into the test's temporary directory and runs
 * real commands (/usr/bin/touch proves the reload ran, /bin/true,
 * /bin/false). The webhook connector posts to an HTTPS receiver of the
 * test's own (libevent evhttp over OpenSSL, self-signed certificate for
 * 127.0.0.1, in its own thread) that records the body and signature and
 * answers 500 on /fail. Connector operations run on an event base the
 * test thread drives; lifecycle deployments on a "jobs" base driven by
 * another thread, as in pkid serve.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "connectors/connectors.h"
#include "lifecycle/lifecycle.h"
#include "tests/unit/test.h"

#define WHO		"token:test"
#define T_BODY_MAX	(64 * 1024)
#define T_FIELD_MAX	200
#define T_WAIT_MS	15000		/* longest wait for something */
#define T_SECRET	"deploy-secret-0123456789"
#define T_PATH_MAX	512

/* ---- the HTTPS receiver ----------------------------------------------- */

static struct {
	pthread_mutex_t		 mu;
	struct event_base	*base;
	struct evhttp		*http;
	SSL_CTX			*ssl;
	pthread_t		 thread;
	bool			 running;
	int			 port;
	char			 cert_file[T_PATH_MAX];
	size_t			 nhits;
	char			 path[T_FIELD_MAX];	/* of the last hit */
	char			 sig[T_FIELD_MAX];
	char			 event[T_FIELD_MAX];
	char			*body;
	size_t			 len;
} rcv = { .mu = PTHREAD_MUTEX_INITIALIZER };

static struct store *st;
static struct ca_ctx *ctx;
static char ca_id[64];

static void
t_rcv_handle(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *buf = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(buf);
	const char *uri = evhttp_request_get_uri(req), *h;
	int status = strcmp(uri, "/fail") == 0 ? 500 : 200;

	(void)arg;
	pthread_mutex_lock(&rcv.mu);
	rcv.nhits++;
	snprintf(rcv.path, sizeof(rcv.path), "%s", uri);
	h = evhttp_find_header(in, "X-Pkid-Signature");
	snprintf(rcv.sig, sizeof(rcv.sig), "%s", h != NULL ? h : "");
	h = evhttp_find_header(in, "X-Pkid-Event");
	snprintf(rcv.event, sizeof(rcv.event), "%s", h != NULL ? h : "");
	free(rcv.body);
	rcv.body = NULL;
	rcv.len = 0;
	if (len <= T_BODY_MAX && (rcv.body = malloc(len + 1)) != NULL) {
		evbuffer_copyout(buf, rcv.body, len);
		rcv.body[len] = '\0';
		rcv.len = len;
	}
	pthread_mutex_unlock(&rcv.mu);
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

static bool
t_rcv_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	bool ok = false;

	snprintf(rcv.cert_file, sizeof(rcv.cert_file), "%s/receiver.pem",
	    test_tmpdir());
	if ((cert = test_self_signed(&key, rcv.cert_file)) == NULL)
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
	evhttp_set_allowed_methods(rcv.http, EVHTTP_REQ_POST);
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
	EVP_PKEY_free(key);
	return ok;
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
	free(rcv.body);
	rcv.body = NULL;
	rcv.running = false;
}

/* ---- helpers ------------------------------------------------------------ */

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static long long
jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static int
t_make_ca(struct store_txn *txn, void *arg)
{
	struct ca_create_req req;
	struct common_error err;
	json_t *ca;

	(void)arg;
	common_error_clear(&err);
	memset(&req, 0, sizeof(req));
	req.name = "Connectors Test Root";
	req.type = "root";
	req.subject = "CN=Connectors Test Root";
	req.key_alg = CA_KEY_ECDSA_P256;
	req.validity_days = 365;
	req.path_len = -1;
	if ((ca = ca_create(ctx, txn, &req, &err)) == NULL) {
		fprintf(stderr, "CA: %s\n", err.msg);
		return -1;
	}
	snprintf(ca_id, sizeof(ca_id), "%s", jstr(ca, "id"));
	json_decref(ca);
	return 0;
}

/* A lifecycle whose configuration has one webhook that wants only
 * deployment_failed (never started: its events stay queued, which
 * lifecycle_notify_pending counts). */
static struct lifecycle *
t_lc(struct conf **cfp)
{
	struct lifecycle_config lcfg;
	char path[T_PATH_MAX], text[1024], err[512];

	snprintf(path, sizeof(path), "%s/pkid.json", test_tmpdir());
	snprintf(text, sizeof(text), "{ \"notifications\": { \"webhooks\": "
	    "[ { \"url\": \"https://127.0.0.1:%d/events\", \"secret\": \""
	    T_SECRET "\", \"events\": [\"deployment_failed\"], "
	    "\"ca_file\": \"%s\" } ] } }", rcv.port, rcv.cert_file);
	if (common_file_write(path, text, strlen(text), 0600) == -1 ||
	    (*cfp = conf_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "conf: %s\n", err);
		return NULL;
	}
	memset(&lcfg, 0, sizeof(lcfg));
	lcfg.default_validity_days = 90;
	lcfg.default_renew_before_days = 30;
	lcfg.conf = *cfp;
	return lifecycle_new(ctx, &lcfg);
}

static json_t *
t_managed(struct lifecycle *lc, const char *name)
{
	struct common_error err;
	json_t *req, *res;

	req = json_pack("{s:s, s:s, s:s, s:s, s:[s], s:s, s:i}", "name", name,
	    "mode", "managed", "ca_id", ca_id, "profile", "tls_server",
	    "sans", "deploy.example.com", "key_algorithm", "ECDSA_P256",
	    "validity_days", 30);
	common_error_clear(&err);
	if ((res = lifecycle_cert_create(lc, req, WHO, &err)) == NULL)
		fprintf(stderr, "certificate %s: %s\n", name, err.msg);
	json_decref(req);
	return res;
}

static char *
t_path(const char *name)
{
	static char paths[8][T_PATH_MAX];
	static unsigned next;
	char *p = paths[next++ % 8];

	snprintf(p, T_PATH_MAX, "%s/%s", test_tmpdir(), name);
	return p;
}

static bool
t_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static mode_t
t_mode(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (sb.st_mode & 07777) : (mode_t)-1;
}

/* Serial (upper hex) of the first certificate in a PEM file, into out. */
static bool
t_file_serial(const char *path, char *out, size_t outlen)
{
	char *text = NULL;
	size_t len = 0;
	X509 *x = NULL;
	BIO *b = NULL;
	bool ok = false;

	if (common_file_read(path, 1 << 20, &text, &len) == 0 &&
	    (b = BIO_new_mem_buf(text, (int)len)) != NULL &&
	    (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL &&
	    common_x509_serial_hex(x, out, outlen) == 0)
		ok = true;
	X509_free(x);
	BIO_free(b);
	free(text);
	return ok;
}

/* How many times needle occurs in the file. */
static int
t_file_count(const char *path, const char *needle)
{
	char *text = NULL, *p;
	size_t len = 0;
	int n = 0;

	if (common_file_read(path, 1 << 20, &text, &len) == -1)
		return -1;
	for (p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(text);
	return n;
}

/* ---- running one connector operation on a loop of the test thread ---- */

struct t_outcome {
	bool	finished;
	bool	ok;
	int	calls;
	char	detail[CONNECTOR_DETAIL_MAX];
};

static void
t_done(bool ok, const char *detail, void *arg)
{
	struct t_outcome *o = arg;

	o->finished = true;
	o->calls++;
	o->ok = ok;
	snprintf(o->detail, sizeof(o->detail), "%s", detail);
}

/* Runs job with a fresh connector context; false when it did not end
 * within T_WAIT_MS. */
static bool
t_run(const struct connector_job *job, struct t_outcome *o)
{
	struct event_base *base = event_base_new();
	struct connector_ctx *c = base != NULL ? connector_ctx_new(base) :
	    NULL;
	struct timeval tv = { 0, 20 * 1000 };
	uint64_t end = common_mono_ms() + T_WAIT_MS;

	memset(o, 0, sizeof(*o));
	if (c == NULL || connector_run(c, job, t_done, o) == -1)
		goto out;
	CHECK(!o->finished);	/* never before connector_run returned */
	while (!o->finished && common_mono_ms() < end) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	CHECK(o->calls <= 1);
	CHECK(connector_ctx_running(c) == (o->finished ? 0u : 1u));
out:
	connector_ctx_free(c);
	if (base != NULL)
		event_base_free(base);
	return o->finished;
}

/* A job for version n (with its key) of certificate cert_id. */
static json_t *
t_version(struct lifecycle *lc, const char *cert_id, unsigned n)
{
	struct common_error err;

	common_error_clear(&err);
	return lifecycle_version_get(lc, cert_id, n, true, &err);
}

static void
t_job(struct connector_job *job, const json_t *v, const char *cert_id,
    const char *type, const json_t *config)
{
	memset(job, 0, sizeof(*job));
	job->resource_id = "res-test";
	job->resource_type = type;
	job->config = config;
	job->certificate_id = cert_id;
	job->version = (unsigned)jint(v, "version");
	job->serial = jstr(v, "serial");
	job->certificate = jstr(v, "certificate");
	job->chain = jstr(v, "chain");
	job->private_key = jstr(v, "private_key");
}

/* ---- tests -------------------------------------------------------------- */

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
	CHECK(store_txn_run(st, t_make_ca, NULL) == 0 && ca_id[0] != '\0');
	CHECK(t_rcv_start());
	if (!rcv.running || ca_id[0] == '\0')
		exit(1);
}

/* Refused and accepted configurations, directly and at resource create. */
static void
test_validate(void)
{
	static const char *const bad[][2] = {
		{ "nginx", "{}" },
		{ "nginx", "{\"cert_path\": \"relative.pem\"}" },
		{ "nginx", "{\"cert_path\": \"/a.pem\", \"key_path\": "
		    "\"/a.pem\"}" },
		{ "haproxy", "{\"cert_path\": \"/a.pem\", \"mode\": "
		    "\"0644\"}" },
		{ "haproxy", "{\"cert_path\": \"/a.pem\", \"mode\": 384}" },
		{ "nginx", "{\"cert_path\": \"/a.pem\", \"reload_command\": "
		    "\"nginx -s reload\"}" },
		{ "nginx", "{\"cert_path\": \"/a.pem\", \"reload_command\": "
		    "[\"\"]}" },
		{ "nginx", "{\"cert_path\": \"/a.pem\", \"port\": 1}" },
		{ "webhook", "{\"url\": \"https://h/x\"}" },
		{ "webhook", "{\"url\": \"ftp://h/x\", \"secret\": \"s\"}" },
		{ "webhook", "{\"url\": \"http://h/x\", \"secret\": \"s\", "
		    "\"include_private_key\": true}" },
		{ "webhook", "{\"url\": \"https://h/x\", \"secret\": \"s\", "
		    "\"include_private_key\": \"yes\"}" },
	};
	static const char *const good[][2] = {
		{ "nginx", "{\"cert_path\": \"/etc/nginx/web1.pem\"}" },
		{ "nginx", "{\"cert_path\": \"/a.pem\", \"key_path\": "
		    "\"/k.pem\", \"chain_path\": \"/c.pem\", "
		    "\"fullchain_path\": \"/f.pem\", \"mode\": \"0640\", "
		    "\"reload_command\": [\"nginx\", \"-s\", \"reload\"]}" },
		{ "haproxy", "{\"cert_path\": \"/a.pem\", "
		    "\"reload_command\": []}" },
		{ "webhook", "{\"url\": \"https://h/x\", \"secret\": \"s\", "
		    "\"ca_file\": \"/ca.pem\", \"include_private_key\": "
		    "true}" },
		{ "other", "{\"anything\": [1, 2]}" },
	};
	struct common_error err;
	struct conf *cf = NULL;
	struct lifecycle *lc;
	json_t *c, *req, *res;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = json_loads(bad[i][1], 0, NULL);
		common_error_clear(&err);
		CHECK(c != NULL && connector_validate(bad[i][0], c, &err) ==
		    -1 && err.code == COMMON_E_INVALID &&
		    strstr(err.msg, "config") != NULL);
		if (err.code != COMMON_E_INVALID)
			fprintf(stderr, "accepted: %s %s\n", bad[i][0],
			    bad[i][1]);
		json_decref(c);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		c = json_loads(good[i][1], 0, NULL);
		common_error_clear(&err);
		CHECK(c != NULL && connector_validate(good[i][0], c, &err) ==
		    0);
		if (err.code != COMMON_E_NONE)
			fprintf(stderr, "refused: %s %s: %s\n", good[i][0],
			    good[i][1], err.msg);
		json_decref(c);
	}
	CHECK(connector_type_for("nginx") == &connector_file);
	CHECK(connector_type_for("haproxy") == &connector_file);
	CHECK(connector_type_for("webhook") == &connector_webhook);
	CHECK(connector_type_for("other") == NULL);

	CHECK((lc = t_lc(&cf)) != NULL);
	if (lc == NULL)
		goto out;
	req = json_pack("{s:s, s:s, s:{s:s}}", "name", "web", "type",
	    "nginx", "config", "key_path", "/k.pem");
	common_error_clear(&err);
	CHECK(lifecycle_resource_create(lc, req, WHO, &err) == NULL &&
	    err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "config.cert_path") != NULL);
	json_decref(req);
	req = json_pack("{s:s, s:s}", "name", "hook", "type", "webhook");
	common_error_clear(&err);
	CHECK(lifecycle_resource_create(lc, req, WHO, &err) == NULL &&
	    err.code == COMMON_E_INVALID);
	json_decref(req);
	req = json_pack("{s:s, s:s, s:{s:s, s:s}}", "name", "hook", "type",
	    "webhook", "config", "url", "https://127.0.0.1/x", "secret", "s");
	common_error_clear(&err);
	res = lifecycle_resource_create(lc, req, WHO, &err);
	CHECK(res != NULL && err.code == COMMON_E_NONE);
	/* the secret stays in the store, never in an answer */
	CHECK_STR(jstr(json_object_get(res, "config"), "secret"), "(hidden)");
	if (res != NULL) {
		json_t *g, *l, *stored, *r;
		size_t j, hooks = 0;

		g = lifecycle_resource_get(lc, jstr(res, "id"), &err);
		CHECK_STR(jstr(json_object_get(g, "config"), "secret"),
		    "(hidden)");
		l = lifecycle_resource_list(lc, NULL, 0, &err);
		json_array_foreach(json_object_get(l, "resources"), j, r)
			if (json_object_get(json_object_get(r, "config"),
			    "secret") != NULL) {
				hooks++;
				CHECK_STR(jstr(json_object_get(r, "config"),
				    "secret"), "(hidden)");
			}
		CHECK(hooks >= 1);
		stored = store_resource_get(st, NULL, jstr(res, "id"));
		CHECK_STR(jstr(json_object_get(stored, "config"), "secret"),
		    "s");
		json_decref(stored);
		json_decref(l);
		json_decref(g);
	}
	json_decref(res);
	json_decref(req);
out:
	lifecycle_free(lc);
	conf_free(cf);
}

/* The file connector: separate files with a reload that leaves a marker,
 * the combined file, /bin/true, /bin/false, a missing command, and a
 * certificate whose key pkid does not hold. */
static void
test_file(void)
{
	struct conf *cf = NULL;
	struct lifecycle *lc;
	struct connector_job job;
	struct t_outcome o;
	json_t *cert = NULL, *v = NULL, *cfg;
	char serial[72];
	const char *marker = t_path("reloaded");

	CHECK((lc = t_lc(&cf)) != NULL);
	if (lc == NULL || (cert = t_managed(lc, "file-1")) == NULL ||
	    (v = t_version(lc, jstr(cert, "id"), 1)) == NULL) {
		CHECK(false);
		goto out;
	}
	CHECK(jstr(v, "private_key") != NULL);

	cfg = json_pack("{s:s, s:s, s:s, s:s, s:[s, s]}",
	    "cert_path", t_path("f1/cert.pem"), "key_path",
	    t_path("f1/key.pem"), "chain_path", t_path("f1/chain.pem"),
	    "fullchain_path", t_path("f1/fullchain.pem"),
	    "reload_command", "/usr/bin/touch", marker);
	CHECK(common_mkdirs(t_path("f1"), 0700) == 0);
	t_job(&job, v, jstr(cert, "id"), "nginx", cfg);
	CHECK(!t_exists(marker));
	CHECK(t_run(&job, &o));
	CHECK(o.ok);
	if (!o.ok)
		fprintf(stderr, "file deploy: %s\n", o.detail);
	CHECK(strstr(o.detail, "reload command /usr/bin/touch succeeded"));
	CHECK(strstr(o.detail, "verified serial"));
	CHECK(t_exists(marker));
	CHECK(t_mode(t_path("f1/key.pem")) == 0600);
	CHECK(t_mode(t_path("f1/cert.pem")) == 0644);
	CHECK(t_file_serial(t_path("f1/cert.pem"), serial, sizeof(serial)) &&
	    strcmp(serial, jstr(v, "serial")) == 0);
	CHECK(t_file_count(t_path("f1/cert.pem"), "BEGIN CERTIFICATE") == 1);
	CHECK(t_file_count(t_path("f1/fullchain.pem"), "BEGIN CERTIFICATE") ==
	    1 + t_file_count(t_path("f1/chain.pem"), "BEGIN CERTIFICATE"));
	CHECK(t_file_count(t_path("f1/chain.pem"), "BEGIN CERTIFICATE") >= 1);
	CHECK(t_file_count(t_path("f1/key.pem"), "PRIVATE KEY-----") == 2);
	CHECK(t_file_count(t_path("f1/cert.pem"), "PRIVATE KEY") == 0);
	json_decref(cfg);

	/* combined file (HAProxy): certificate, chain and key, mode 0640 */
	cfg = json_pack("{s:s, s:s, s:[s]}", "cert_path",
	    t_path("f1/haproxy.pem"), "mode", "0640", "reload_command",
	    "/bin/true");
	t_job(&job, v, jstr(cert, "id"), "haproxy", cfg);
	CHECK(t_run(&job, &o) && o.ok);
	CHECK(t_mode(t_path("f1/haproxy.pem")) == 0640);
	CHECK(t_file_count(t_path("f1/haproxy.pem"), "BEGIN PRIVATE KEY") ==
	    1);
	CHECK(t_file_count(t_path("f1/haproxy.pem"), "BEGIN CERTIFICATE") >=
	    2);
	json_decref(cfg);

	/* a reload that fails: the deployment fails, the files were written */
	cfg = json_pack("{s:s, s:s, s:[s]}", "cert_path",
	    t_path("f1/c2.pem"), "key_path", t_path("f1/k2.pem"),
	    "reload_command", "/bin/false");
	t_job(&job, v, jstr(cert, "id"), "nginx", cfg);
	CHECK(t_run(&job, &o) && !o.ok);
	CHECK(strstr(o.detail, "reload command /bin/false exited with "
	    "status 1") != NULL);
	CHECK(t_mode(t_path("f1/k2.pem")) == 0600);
	json_decref(cfg);

	/* a command that does not exist */
	cfg = json_pack("{s:s, s:[s]}", "cert_path", t_path("f1/c3.pem"),
	    "reload_command", "/nonexistent/reload");
	t_job(&job, v, jstr(cert, "id"), "haproxy", cfg);
	CHECK(t_run(&job, &o) && !o.ok);
	CHECK(strstr(o.detail, "/nonexistent/reload") != NULL);
	json_decref(cfg);

	/* a directory that cannot be written */
	cfg = json_pack("{s:s, s:[]}", "cert_path",
	    "/nonexistent-dir/cert.pem", "reload_command");
	t_job(&job, v, jstr(cert, "id"), "haproxy", cfg);
	CHECK(t_run(&job, &o) && !o.ok);
	CHECK(strstr(o.detail, "writing the") != NULL);
	json_decref(cfg);

	/* no key held by pkid (external certificate) but key_path asked */
	cfg = json_pack("{s:s, s:s, s:[]}", "cert_path", t_path("f1/c4.pem"),
	    "key_path", t_path("f1/k4.pem"), "reload_command");
	t_job(&job, v, jstr(cert, "id"), "nginx", cfg);
	job.private_key = NULL;
	CHECK(t_run(&job, &o) && !o.ok);
	CHECK(strstr(o.detail, "no private key") != NULL);
	CHECK(!t_exists(t_path("f1/k4.pem")));
	json_decref(cfg);
out:
	json_decref(v);
	json_decref(cert);
	lifecycle_free(lc);
	conf_free(cf);
}

/* Checks the receiver's last request: signature over the exact body and
 * the body's fields; returns the body (new reference). */
static json_t *
t_rcv_body(const char *path)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], want[T_FIELD_MAX];
	unsigned int maclen = 0;
	json_t *body = NULL;

	pthread_mutex_lock(&rcv.mu);
	CHECK_STR(rcv.path, path);
	CHECK_STR(rcv.event, "deploy");
	CHECK(rcv.body != NULL && HMAC(EVP_sha256(), T_SECRET,
	    (int)strlen(T_SECRET), (const unsigned char *)rcv.body, rcv.len,
	    mac, &maclen) != NULL);
	common_hex(mac, maclen, hex);
	snprintf(want, sizeof(want), "sha256=%s", hex);
	CHECK_STR(rcv.sig, want);
	if (rcv.body != NULL)
		body = json_loadb(rcv.body, rcv.len, 0, NULL);
	pthread_mutex_unlock(&rcv.mu);
	CHECK(json_is_object(body));
	return body;
}

/* The webhook connector against the HTTPS receiver. */
static void
test_webhook(void)
{
	struct conf *cf = NULL;
	struct lifecycle *lc;
	struct connector_job job;
	struct t_outcome o;
	json_t *cert = NULL, *v = NULL, *cfg, *body;
	char url[256];
	size_t hits;

	CHECK((lc = t_lc(&cf)) != NULL);
	if (lc == NULL || (cert = t_managed(lc, "hook-1")) == NULL ||
	    (v = t_version(lc, jstr(cert, "id"), 1)) == NULL) {
		CHECK(false);
		goto out;
	}
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/deploy", rcv.port);
	cfg = json_pack("{s:s, s:s, s:s}", "url", url, "secret", T_SECRET,
	    "ca_file", rcv.cert_file);
	t_job(&job, v, jstr(cert, "id"), "webhook", cfg);
	CHECK(t_run(&job, &o) && o.ok);
	if (!o.ok)
		fprintf(stderr, "webhook deploy: %s\n", o.detail);
	CHECK(strstr(o.detail, "answered 200") != NULL);
	body = t_rcv_body("/deploy");
	CHECK_STR(jstr(body, "certificate"), jstr(v, "certificate"));
	CHECK_STR(jstr(body, "chain"), jstr(v, "chain"));
	CHECK_STR(jstr(body, "certificate_id"), jstr(cert, "id"));
	CHECK_STR(jstr(body, "serial"), jstr(v, "serial"));
	CHECK(jint(body, "version") == 1);
	CHECK(json_object_get(body, "private_key") == NULL);
	json_decref(body);
	json_decref(cfg);

	/* with the key, when configured */
	cfg = json_pack("{s:s, s:s, s:s, s:b}", "url", url, "secret",
	    T_SECRET, "ca_file", rcv.cert_file, "include_private_key", 1);
	t_job(&job, v, jstr(cert, "id"), "webhook", cfg);
	CHECK(t_run(&job, &o) && o.ok);
	body = t_rcv_body("/deploy");
	CHECK_STR(jstr(body, "private_key"), jstr(v, "private_key"));
	json_decref(body);
	json_decref(cfg);

	/* a 500 fails the deployment */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/fail", rcv.port);
	cfg = json_pack("{s:s, s:s, s:s}", "url", url, "secret", T_SECRET,
	    "ca_file", rcv.cert_file);
	t_job(&job, v, jstr(cert, "id"), "webhook", cfg);
	CHECK(t_run(&job, &o) && !o.ok);
	CHECK(strstr(o.detail, "answered 500") != NULL);
	json_decref(t_rcv_body("/fail"));
	json_decref(cfg);

	/* an untrusted receiver: TLS verification refuses it unheard */
	pthread_mutex_lock(&rcv.mu);
	hits = rcv.nhits;
	pthread_mutex_unlock(&rcv.mu);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/deploy", rcv.port);
	cfg = json_pack("{s:s, s:s, s:s}", "url", url, "secret", T_SECRET,
	    "ca_file", t_path("f1/cert.pem"));
	t_job(&job, v, jstr(cert, "id"), "webhook", cfg);
	CHECK(t_run(&job, &o) && !o.ok);
	CHECK(strstr(o.detail, "POST") != NULL);
	pthread_mutex_lock(&rcv.mu);
	CHECK(rcv.nhits == hits);
	pthread_mutex_unlock(&rcv.mu);
	json_decref(cfg);
out:
	json_decref(v);
	json_decref(cert);
	lifecycle_free(lc);
	conf_free(cf);
}

/* ---- lifecycle: renewals deployed on a jobs thread ---------------------- */

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

/* Waits until lc has no deployment left; true if so in time. */
static bool
t_deployed(struct lifecycle *lc)
{
	int waited;

	for (waited = 0; waited < T_WAIT_MS; waited += 20) {
		if (lifecycle_deploy_pending(lc) == 0)
			return true;
		usleep(20 * 1000);
	}
	return false;
}

/* A resource and its association with cert_id; the resource id into
 * rid. */
static bool
t_associate(struct lifecycle *lc, const char *cert_id, const char *name,
    const char *type, json_t *config, char *rid, size_t ridlen)
{
	struct common_error err;
	json_t *req, *res, *a = NULL;

	req = json_pack("{s:s, s:s, s:o}", "name", name, "type", type,
	    "config", config);
	common_error_clear(&err);
	res = lifecycle_resource_create(lc, req, WHO, &err);
	json_decref(req);
	if (res == NULL) {
		fprintf(stderr, "resource %s: %s\n", name, err.msg);
		return false;
	}
	snprintf(rid, ridlen, "%s", jstr(res, "id"));
	req = json_pack("{s:s, s:s}", "certificate_id", cert_id,
	    "resource_id", rid);
	a = lifecycle_assoc_create(lc, req, WHO, &err);
	json_decref(req);
	json_decref(res);
	json_decref(a);
	return a != NULL;
}

/* Whether the audit trail has action on object with result. */
static bool
t_audited(const char *action, const char *object, const char *result)
{
	json_t *all = store_audit_list(st, NULL, 0, 10000), *r;
	bool found = false;
	size_t i;

	json_array_foreach(all, i, r)
		if (strcmp(jstr(r, "action"), action) == 0 &&
		    strcmp(jstr(r, "object"), object) == 0 &&
		    jstr(r, "result") != NULL &&
		    strcmp(jstr(r, "result"), result) == 0)
			found = true;
	json_decref(all);
	return found;
}

static void
test_lifecycle_deploy(void)
{
	struct t_jobs j = { 0 };
	struct common_error err;
	struct conf *cf = NULL;
	struct lifecycle *lc;
	json_t *ok_cert = NULL, *bad_cert = NULL, *man_cert = NULL, *v, *c,
	    *d;
	char rid_ok[64], rid_bad[64], rid_man[64], serial[72];
	const char *marker = t_path("deployed-marker");

	CHECK((lc = t_lc(&cf)) != NULL);
	CHECK(lc != NULL && (j.base = event_base_new()) != NULL);
	if (lc == NULL || j.base == NULL)
		goto out;
	CHECK(common_mkdirs(t_path("d1"), 0700) == 0);
	CHECK((ok_cert = t_managed(lc, "deploy-ok")) != NULL);
	CHECK((bad_cert = t_managed(lc, "deploy-bad")) != NULL);
	CHECK((man_cert = t_managed(lc, "deploy-manual")) != NULL);
	if (ok_cert == NULL || bad_cert == NULL || man_cert == NULL)
		goto out;
	CHECK(t_associate(lc, jstr(ok_cert, "id"), "web-ok", "nginx",
	    json_pack("{s:s, s:s, s:[s, s]}", "cert_path",
	    t_path("d1/cert.pem"), "key_path", t_path("d1/key.pem"),
	    "reload_command", "/usr/bin/touch", marker),
	    rid_ok, sizeof(rid_ok)));
	CHECK(t_associate(lc, jstr(bad_cert, "id"), "web-bad", "haproxy",
	    json_pack("{s:s, s:[s]}", "cert_path", t_path("d1/bad.pem"),
	    "reload_command", "/bin/false"), rid_bad, sizeof(rid_bad)));
	CHECK(t_associate(lc, jstr(man_cert, "id"), "by-hand", "other",
	    json_object(), rid_man, sizeof(rid_man)));

	/* before the start: a renewal stays pending, as without connectors */
	lifecycle_deploy_request(lc, jstr(ok_cert, "id"), 1);
	CHECK(lifecycle_deploy_pending(lc) == 0);
	CHECK(lifecycle_deploy_start(lc, j.base) == 0);
	CHECK(lifecycle_deploy_start(lc, j.base) == -1);
	CHECK(pthread_create(&j.thread, NULL, t_jobs_main, &j) == 0);
	j.running = true;

	/* success: version 2 deployed, verified, then current */
	common_error_clear(&err);
	v = lifecycle_cert_renew(lc, jstr(ok_cert, "id"), WHO, &err);
	CHECK(v != NULL && jint(v, "version") == 2);
	CHECK_STR(jstr(v, "stage"), "pending");
	json_decref(v);
	CHECK(t_deployed(lc));
	v = t_version(lc, jstr(ok_cert, "id"), 2);
	CHECK_STR(jstr(v, "stage"), "current");
	d = json_object_get(v, "deployments");
	CHECK(json_array_size(d) == 1);
	CHECK_STR(jstr(json_array_get(d, 0), "resource_id"), rid_ok);
	CHECK_STR(jstr(json_array_get(d, 0), "result"), "ok");
	CHECK(jstr(json_array_get(d, 0), "at") != NULL);
	CHECK(jstr(json_array_get(d, 0), "detail") != NULL &&
	    strstr(jstr(json_array_get(d, 0), "detail"), "verified") != NULL);
	CHECK(t_file_serial(t_path("d1/cert.pem"), serial, sizeof(serial)) &&
	    strcmp(serial, jstr(v, "serial")) == 0);
	CHECK(t_exists(marker));
	CHECK(t_mode(t_path("d1/key.pem")) == 0600);
	json_decref(v);
	c = lifecycle_cert_get(lc, jstr(ok_cert, "id"), &err);
	CHECK(jint(c, "current_version") == 2);
	CHECK(json_object_get(c, "deploy_failures") == NULL);
	json_decref(c);
	v = t_version(lc, jstr(ok_cert, "id"), 1);
	CHECK_STR(jstr(v, "stage"), "previous");
	json_decref(v);
	CHECK(t_audited("version.deploy", jstr(ok_cert, "id"), "ok"));
	CHECK(lifecycle_notify_pending(lc) == 0);

	/* failure: version 2 failed, version 1 stays current, event queued */
	common_error_clear(&err);
	v = lifecycle_cert_renew(lc, jstr(bad_cert, "id"), WHO, &err);
	CHECK_STR(jstr(v, "stage"), "pending");
	json_decref(v);
	CHECK(t_deployed(lc));
	v = t_version(lc, jstr(bad_cert, "id"), 2);
	CHECK_STR(jstr(v, "stage"), "failed");
	d = json_array_get(json_object_get(v, "deployments"), 0);
	CHECK_STR(jstr(d, "resource_id"), rid_bad);
	CHECK_STR(jstr(d, "result"), "failed");
	CHECK(jstr(d, "detail") != NULL && strstr(jstr(d, "detail"),
	    "/bin/false exited with status 1") != NULL);
	json_decref(v);
	c = lifecycle_cert_get(lc, jstr(bad_cert, "id"), &err);
	CHECK(jint(c, "current_version") == 1);
	CHECK(json_object_get(c, "pending_version") == NULL);
	/* the scheduler retries later, with backoff, not at every tick */
	CHECK(jint(c, "deploy_failures") == 1);
	CHECK(jint(json_object_get(c, "renewal_state"), "failures") == 1);
	CHECK(jstr(json_object_get(c, "renewal_state"), "next_attempt_at") !=
	    NULL);
	CHECK(jstr(json_object_get(c, "renewal_state"), "last_error") !=
	    NULL && strstr(jstr(json_object_get(c, "renewal_state"),
	    "last_error"), "deployment failed: resource") != NULL);
	CHECK_STR(jstr(json_object_get(c, "current"), "stage"), "current");
	json_decref(c);
	CHECK(t_audited("version.deploy", jstr(bad_cert, "id"), "failed"));
	CHECK(lifecycle_notify_pending(lc) == 1);

	/* "other": no connector, stays pending until promoted by hand */
	common_error_clear(&err);
	v = lifecycle_cert_renew(lc, jstr(man_cert, "id"), WHO, &err);
	CHECK_STR(jstr(v, "stage"), "pending");
	json_decref(v);
	CHECK(t_deployed(lc));
	v = t_version(lc, jstr(man_cert, "id"), 2);
	CHECK_STR(jstr(v, "stage"), "pending");
	CHECK(json_object_get(v, "deployments") == NULL);
	json_decref(v);
out:
	if (j.running) {
		event_base_loopbreak(j.base);
		pthread_join(j.thread, NULL);
	}
	lifecycle_deploy_stop(lc);
	lifecycle_deploy_stop(lc);	/* idempotent */
	lifecycle_notify_stop(lc);
	lifecycle_free(lc);
	if (j.base != NULL)
		event_base_free(j.base);
	conf_free(cf);
	json_decref(ok_cert);
	json_decref(bad_cert);
	json_decref(man_cert);
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
	TEST(test_validate),
	TEST(test_file),
	TEST(test_webhook),
	TEST(test_lifecycle_deploy),
	TEST(test_teardown),
	{ 0 }
};
