/*
 * Unit tests for server/: TLS context and its live reload, route table,
 * listeners, routing, limits, built-in routes, access log, jobs, timers,
 * signals and drain.
 *
 * A real server runs on 127.0.0.1 with ephemeral ports in a thread and is
 * driven with libcurl. Its TLS certificate chain (root -> intermediate ->
 * leaf, ECDSA P-256) is made here; curl trusts only the root (given as a
 * CAINFO blob) and verifies the peer and host, so the intermediate must
 * be served from the chain. While that server runs, stderr is captured
 * into a file so the access log can be checked line by line at the end;
 * the other stderr lines are replayed afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <curl/curl.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "conf/conf.h"
#include "server/server.h"
#include "tests/unit/test.h"

#define T_ROUTE_BODY_MAX	100	/* max_body of the "t" route */
#define T_SLOW_MS		300	/* delay of the /slow handler */
#define T_WAIT_MS		5000	/* longest wait for an event */
#define T_URL_MAX		256
#define T_CRL_BYTES		"\x30\x03\x02\x01\x2a"	/* any DER will do */
#define T_CRT_BYTES		"\x30\x03\x02\x01\x07"

struct t_pki {			/* made once per process */
	char	*root_pem;	/* what curl trusts */
	char	*chain_pem;	/* leaf + intermediate */
	char	*key_pem;	/* leaf key */
	char	*other_key_pem;	/* a key that matches nothing */
	char	*chain2_pem;	/* a second leaf (same intermediate) */
	char	*key2_pem;
};

struct t_resp {
	long	 status;
	char	*body;
	size_t	 len;
	char	 ctype[128];
	char	 lastmod[64];
	char	 etag[80];
	char	 conn[32];	/* Connection header */
	long	 num_connects;
	long	 local_port;
	curl_off_t content_length;
	CURLcode cc;
};

struct t_fixture {
	bool		 up;		/* server thread running */
	bool		 captured;	/* stderr goes to logpath */
	struct conf	*cf;
	struct server	*srv;
	pthread_t	 thread;
	int		 rc;
	atomic_bool	 returned;
	char		 https[T_URL_MAX];
	char		 http[T_URL_MAX];
	char		 mgmt[T_URL_MAX];
	int		 requests;	/* requests that reach dispatch */
	int		 saved_stderr;
	char		 logpath[512];
	atomic_int	 timer_fires;
	pthread_t	 timer_thread;
	atomic_bool	 slow_started;
	atomic_bool	 slow_replied;
};

static void t_replay(const char *log);

static struct t_pki pki;
static struct t_fixture fx;
static bool curl_ready;

/* ---- helpers ------------------------------------------------------------- */

static void
t_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static bool
t_wait_flag(atomic_bool *flag)
{
	int waited;

	for (waited = 0; waited < T_WAIT_MS; waited += 5) {
		if (atomic_load(flag))
			return true;
		t_sleep_ms(5);
	}
	return atomic_load(flag);
}

static int
t_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int rc;

	if (e == NULL)
		return -1;
	rc = X509_add_ext(x, e, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(e);
	return rc;
}

/* A certificate for key named cn, issued by (issuer, ikey) or self-signed
 * when issuer is NULL. */
static X509 *
t_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey, bool ca)
{
	static long serial = 1;
	X509V3_CTX v3;
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	bool ok;

	ok = x != NULL && name != NULL &&
	    X509_set_version(x, 2) == 1 &&
	    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) == 1 &&
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL &&
	    X509_set_pubkey(x, key) == 1 &&
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) == 1 &&
	    X509_set_subject_name(x, name) == 1 &&
	    X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name) == 1;
	if (ok) {
		X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL,
		    0);
		ok = t_ext(x, &v3, NID_basic_constraints, ca ?
		    "critical,CA:TRUE" : "critical,CA:FALSE") == 0 &&
		    t_ext(x, &v3, NID_key_usage, ca ?
		    "critical,keyCertSign,cRLSign" :
		    "critical,digitalSignature") == 0 &&
		    t_ext(x, &v3, NID_subject_key_identifier, "hash") == 0 &&
		    (issuer == NULL || t_ext(x, &v3,
		    NID_authority_key_identifier, "keyid:always") == 0) &&
		    (ca || (t_ext(x, &v3, NID_subject_alt_name,
		    "IP:127.0.0.1,DNS:localhost") == 0 &&
		    t_ext(x, &v3, NID_ext_key_usage, "serverAuth") == 0)) &&
		    X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256()) > 0;
	}
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static char *
t_concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s != NULL) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

/* Makes root -> intermediate -> leaf once. */
static bool
t_pki_make(void)
{
	EVP_PKEY *rk, *ik, *lk, *ok, *l2k;
	X509 *root = NULL, *inter = NULL, *leaf = NULL, *leaf2 = NULL;
	char *ip = NULL, *lp = NULL, *l2p = NULL;

	if (pki.chain_pem != NULL)
		return true;
	rk = EVP_EC_gen("P-256");
	ik = EVP_EC_gen("P-256");
	lk = EVP_EC_gen("P-256");
	ok = EVP_EC_gen("P-256");
	l2k = EVP_EC_gen("P-256");
	if (rk != NULL && ik != NULL && lk != NULL && ok != NULL &&
	    l2k != NULL) {
		root = t_cert(rk, "test root", NULL, NULL, true);
		inter = root ? t_cert(ik, "test inter", root, rk, true) : NULL;
		leaf = inter ? t_cert(lk, "127.0.0.1", inter, ik, false) : NULL;
		leaf2 = inter ? t_cert(l2k, "127.0.0.1", inter, ik, false) :
		    NULL;
	}
	if (leaf != NULL && leaf2 != NULL) {
		pki.root_pem = common_x509_to_pem(root);
		ip = common_x509_to_pem(inter);
		lp = common_x509_to_pem(leaf);
		l2p = common_x509_to_pem(leaf2);
		pki.chain_pem = ip && lp ? t_concat(lp, ip) : NULL;
		pki.key_pem = common_privkey_to_pem(lk);
		pki.other_key_pem = common_privkey_to_pem(ok);
		pki.chain2_pem = ip && l2p ? t_concat(l2p, ip) : NULL;
		pki.key2_pem = common_privkey_to_pem(l2k);
	}
	free(ip);
	free(lp);
	free(l2p);
	X509_free(root);
	X509_free(inter);
	X509_free(leaf);
	X509_free(leaf2);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
	EVP_PKEY_free(lk);
	EVP_PKEY_free(ok);
	EVP_PKEY_free(l2k);
	return pki.root_pem && pki.chain_pem && pki.key_pem &&
	    pki.other_key_pem && pki.chain2_pem && pki.key2_pem;
}

static void
t_pki_free(void)
{
	free(pki.root_pem);
	free(pki.chain_pem);
	free(pki.key_pem);
	free(pki.other_key_pem);
	free(pki.chain2_pem);
	free(pki.key2_pem);
	memset(&pki, 0, sizeof(pki));
}

/* Redirects fd 2 into path; returns the saved fd. */
static int
t_stderr_capture(const char *path)
{
	int fd, saved;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (saved == -1 || fd == -1) {
		perror("capture stderr");
		exit(2);
	}
	dup2(fd, STDERR_FILENO);
	close(fd);
	return saved;
}

/* Restores fd 2 and returns what was captured (to free()). */
static char *
t_stderr_release(int saved, const char *path)
{
	char *text = NULL;
	size_t len;

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if (common_file_read(path, 64 * 1024 * 1024, &text, &len) == -1)
		return strdup("");
	return text;
}

static int
t_count(const char *text, const char *needle)
{
	int n = 0;

	while ((text = strstr(text, needle)) != NULL) {
		n++;
		text += strlen(needle);
	}
	return n;
}

static struct conf *
t_conf(const char *https, const char *http, const char *mgmt)
{
	struct conf *cf = conf_defaults();
	char dir[512];

	if (cf == NULL)
		return NULL;
	snprintf(dir, sizeof(dir), "%s/data", test_tmpdir());
	free(cf->data_dir);
	free(cf->listen.https);
	free(cf->listen.http);
	free(cf->listen.mgmt);
	cf->data_dir = strdup(dir);
	cf->listen.https = strdup(https);
	cf->listen.http = strdup(http);
	cf->listen.mgmt = strdup(mgmt);
	cf->workers = 2;
	cf->server.drain_seconds = 5;
	return cf;
}

/* ---- curl ---------------------------------------------------------------- */

static size_t
t_curl_write(char *p, size_t size, size_t n, void *arg)
{
	struct t_resp *r = arg;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (nb == NULL)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static void
t_header_value(const char *line, size_t len, const char *name, char *out,
    size_t outlen)
{
	size_t nl = strlen(name), vl;

	if (len <= nl || strncasecmp(line, name, nl) != 0)
		return;
	line += nl;
	len -= nl;
	while (len > 0 && *line == ' ') {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	vl = len < outlen - 1 ? len : outlen - 1;
	memcpy(out, line, vl);
	out[vl] = '\0';
}

static size_t
t_curl_header(char *p, size_t size, size_t n, void *arg)
{
	struct t_resp *r = arg;

	t_header_value(p, size * n, "Content-Type:", r->ctype,
	    sizeof(r->ctype));
	t_header_value(p, size * n, "Last-Modified:", r->lastmod,
	    sizeof(r->lastmod));
	t_header_value(p, size * n, "ETag:", r->etag, sizeof(r->etag));
	t_header_value(p, size * n, "Connection:", r->conn, sizeof(r->conn));
	return size * n;
}

struct t_req {
	const char	*method;	/* NULL: GET */
	const char	*body;
	size_t		 len;
	long		 sslversion;	/* CURL_SSLVERSION_*, 0: default */
	const char	*header;	/* one extra request header */
	const char	*header2;	/* and another */
	bool		 no_alpn;
	bool		 dispatched;	/* reaches server_dispatch() */
};

/* One request on h (reused for keep-alive) or a fresh handle. */
static void
t_do(CURL *h, const char *url, const struct t_req *q, struct t_resp *r)
{
	struct curl_blob ca;
	struct curl_slist *hdrs = NULL;
	CURL *own = NULL;

	memset(r, 0, sizeof(*r));
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = true;
	}
	if (h == NULL)
		h = own = curl_easy_init();
	ca.data = pki.root_pem;
	ca.len = strlen(pki.root_pem);
	ca.flags = CURL_BLOB_COPY;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)T_WAIT_MS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, t_curl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, t_curl_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, q->sslversion != 0 ?
	    q->sslversion : CURL_SSLVERSION_DEFAULT);
	curl_easy_setopt(h, CURLOPT_SSL_ENABLE_ALPN, q->no_alpn ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	if (q->method != NULL && strcmp(q->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)q->len);
	} else if (q->method != NULL && strcmp(q->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (q->method != NULL)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
	if (q->header != NULL)
		hdrs = curl_slist_append(hdrs, q->header);
	if (q->header2 != NULL)
		hdrs = curl_slist_append(hdrs, q->header2);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	r->cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->num_connects);
	curl_easy_getinfo(h, CURLINFO_LOCAL_PORT, &r->local_port);
	curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
	    &r->content_length);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	if (own != NULL)
		curl_easy_cleanup(own);
	if (q->dispatched)
		fx.requests++;
	if (r->body == NULL)
		r->body = strdup("");
}

static void
t_get(const char *base, const char *path, struct t_resp *r)
{
	char url[T_URL_MAX * 2];
	struct t_req q = { .dispatched = true };

	snprintf(url, sizeof(url), "%s%s", base, path);
	t_do(NULL, url, &q, r);
}

static json_t *
t_json(const struct t_resp *r)
{
	return json_loads(r->body, 0, NULL);
}

static const char *
t_jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* ---- the fixture's handlers ---------------------------------------------- */

/* Echoes what the server tells a handler about the request. */
static void
t_handle(struct evhttp_request *req, void *arg)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	SSL *ssl = server_req_ssl(req);
	const unsigned char *alpn = NULL;
	unsigned alpnlen = 0;
	const char *body;
	size_t blen = 0;
	int fd, nodelay = -1;
	socklen_t sl = sizeof(nodelay);
	json_t *j;

	body = server_req_body(req, &blen);
	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &sl) == -1)
		nodelay = -1;
	if (ssl != NULL)
		SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
	if (strcmp(server_req_path(req), "/t/stop") == 0)
		server_stop(fx.srv);	/* from a handler */
	j = json_pack("{s:s,s:i,s:s?,s:s?,s:s#,s:i,s:I,s:b,s:s#,s:s}",
	    "route", (const char *)arg,
	    "listener", (int)server_req_listener(req),
	    "tls", ssl != NULL ? SSL_get_version(ssl) : NULL,
	    "cipher", ssl != NULL ? SSL_get_cipher_name(ssl) : NULL,
	    "alpn", alpn != NULL ? (const char *)alpn : "", (int)alpnlen,
	    "nodelay", nodelay,
	    "body_len", (json_int_t)blen,
	    "body_nul", body != NULL && strlen(body) == blen,
	    "body", body != NULL ? body : "", (int)blen,
	    "path", server_req_path(req));
	server_reply_json(req, 200, j);
}

static void
t_error(struct evhttp_request *req, int status, const char *msg, void *arg)
{
	(void)arg;
	server_reply_json(req, status, json_pack("{s:{s:s,s:s}}", "error",
	    "code", "test_error", "message", msg));
}

struct t_slow {
	struct evhttp_request	*req;
	struct event		*ev;
};

static void
t_slow_fire(evutil_socket_t fd, short what, void *arg)
{
	struct t_slow *s = arg;

	(void)fd;
	(void)what;
	server_reply(s->req, 200, "text/plain", "slow\n", 5);
	atomic_store(&fx.slow_replied, true);
	event_free(s->ev);
	free(s);
}

/* Replies T_SLOW_MS later from a timer on the worker's loop. */
static void
t_slow(struct evhttp_request *req, void *arg)
{
	struct event_base *base =
	    evhttp_connection_get_base(evhttp_request_get_connection(req));
	struct timeval tv = { 0, T_SLOW_MS * 1000 };
	struct t_slow *s = calloc(1, sizeof(*s));

	(void)arg;
	s->req = req;
	s->ev = evtimer_new(base, t_slow_fire, s);
	evtimer_add(s->ev, &tv);
	atomic_store(&fx.slow_started, true);
}

static void
t_timer(void *arg)
{
	(void)arg;
	fx.timer_thread = pthread_self();
	atomic_fetch_add(&fx.timer_fires, 1);
}

static void *
t_run(void *arg)
{
	struct t_fixture *f = arg;

	f->rc = server_run(f->srv);
	atomic_store(&f->returned, true);
	return NULL;
}

/* Replays captured stderr lines other than INFO ones (failed CHECKs,
 * warnings, errors) on the real stderr. */
static void
t_replay(const char *log)
{
	const char *line, *end;

	for (line = log; *line != '\0'; line = end) {
		end = strchr(line, '\n');
		end = end != NULL ? end + 1 : line + strlen(line);
		if (memmem(line, (size_t)(end - line), " INFO ", 6) == NULL)
			fprintf(stderr, "%.*s", (int)(end - line), line);
	}
}

/* At exit when test_drain did not run (a single test was selected):
 * stops the shared server and gives stderr back. */
static void
fx_atexit(void)
{
	char *log;

	if (!fx.captured)
		return;
	if (fx.up) {
		server_stop(fx.srv);
		pthread_join(fx.thread, NULL);
	}
	server_free(fx.srv);
	conf_free(fx.cf);
	fx.srv = NULL;
	fx.cf = NULL;
	fx.up = false;
	fx.captured = false;
	log = t_stderr_release(fx.saved_stderr, fx.logpath);
	t_replay(log);
	free(log);
	t_pki_free();
}

/* Starts the shared server unless it runs. */
static bool
fx_up(void)
{
	const struct server_route routes[] = {
		{ "t", "/t/", SERVER_ON(SERVER_HTTPS) | SERVER_ON(SERVER_MGMT),
		    T_ROUTE_BODY_MAX, t_handle, t_error, "t" },
		{ "long", "/t/long/", SERVER_ON(SERVER_HTTPS), 0, t_handle,
		    t_error, "long" },
		{ "slow", "/slow", SERVER_ON(SERVER_HTTPS), 0, t_slow, NULL,
		    NULL },
	};
	char dir[600], file[700];
	SSL_CTX *tls;
	size_t i;
	int waited;

	if (fx.up)
		return true;
	if (fx.captured)	/* an earlier start failed */
		return false;
	if (!t_pki_make())
		return false;
	fx.cf = t_conf("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0");
	if (fx.cf == NULL)
		return false;
	snprintf(dir, sizeof(dir), "%s/public/crl", fx.cf->data_dir);
	common_mkdirs(dir, 0755);
	snprintf(file, sizeof(file), "%s/x.crl", dir);
	common_file_write(file, T_CRL_BYTES, sizeof(T_CRL_BYTES) - 1, 0644);
	snprintf(dir, sizeof(dir), "%s/public/ca", fx.cf->data_dir);
	common_mkdirs(dir, 0755);
	snprintf(file, sizeof(file), "%s/x.crt", dir);
	common_file_write(file, T_CRT_BYTES, sizeof(T_CRT_BYTES) - 1, 0644);

	snprintf(fx.logpath, sizeof(fx.logpath), "%s/server.log",
	    test_tmpdir());
	fx.saved_stderr = t_stderr_capture(fx.logpath);
	fx.captured = true;
	atexit(fx_atexit);

	tls = server_tls_ctx(pki.chain_pem, pki.key_pem);
	fx.srv = server_new(fx.cf, tls);
	SSL_CTX_free(tls);	/* the server holds its own reference */
	if (fx.srv == NULL)
		return false;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (server_route_add(fx.srv, &routes[i]) == -1)
			return false;
	if (server_timer(fx.srv, 1, t_timer, NULL) == -1)
		return false;
	if (pthread_create(&fx.thread, NULL, t_run, &fx) != 0)
		return false;
	fx.up = true;
	for (waited = 0; waited < T_WAIT_MS; waited += 5) {
		if (server_bound(fx.srv, SERVER_MGMT) != NULL ||
		    atomic_load(&fx.returned))
			break;
		t_sleep_ms(5);
	}
	if (server_bound(fx.srv, SERVER_MGMT) == NULL)
		return false;
	snprintf(fx.https, sizeof(fx.https), "https://%s",
	    server_bound(fx.srv, SERVER_HTTPS));
	snprintf(fx.http, sizeof(fx.http), "http://%s",
	    server_bound(fx.srv, SERVER_HTTP));
	snprintf(fx.mgmt, sizeof(fx.mgmt), "https://%s",
	    server_bound(fx.srv, SERVER_MGMT));
	return true;
}

/* ---- tests without the shared server ------------------------------------- */

static void
test_tls_ctx(void)
{
	SSL_CTX *ctx;
	STACK_OF(X509) *chain = NULL;
	char *full;

	CHECK(t_pki_make());
	ctx = server_tls_ctx(pki.chain_pem, pki.key_pem);
	CHECK(ctx != NULL);
	if (ctx != NULL) {
		CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
		CHECK(SSL_CTX_get_max_proto_version(ctx) == TLS1_3_VERSION);
		CHECK((SSL_CTX_get_options(ctx) &
		    SSL_OP_NO_RENEGOTIATION) != 0);
		CHECK((SSL_CTX_get_options(ctx) &
		    SSL_OP_CIPHER_SERVER_PREFERENCE) != 0);
		CHECK(SSL_CTX_get0_chain_certs(ctx, &chain) == 1);
		CHECK(chain != NULL && sk_X509_num(chain) == 1);
		SSL_CTX_free(ctx);
	}
	/* A chain that ends with its self-signed root: the root is not
	 * sent (RFC 8446 4.4.2), the intermediate still is. */
	full = t_concat(pki.chain_pem, pki.root_pem);
	ctx = full != NULL ? server_tls_ctx(full, pki.key_pem) : NULL;
	CHECK(ctx != NULL);
	if (ctx != NULL) {
		chain = NULL;
		CHECK(SSL_CTX_get0_chain_certs(ctx, &chain) == 1);
		CHECK(chain != NULL && sk_X509_num(chain) == 1 &&
		    X509_check_issued(sk_X509_value(chain, 0),
		    sk_X509_value(chain, 0)) != X509_V_OK);
		SSL_CTX_free(ctx);
	}
	free(full);
	/* Key of another certificate, garbage, nothing. */
	CHECK(server_tls_ctx(pki.chain_pem, pki.other_key_pem) == NULL);
	CHECK(server_tls_ctx("not a certificate", pki.key_pem) == NULL);
	CHECK(server_tls_ctx(pki.chain_pem, "not a key") == NULL);
	CHECK(server_tls_ctx(NULL, pki.key_pem) == NULL);
}

static void
t_nop(struct evhttp_request *req, void *arg)
{
	(void)arg;
	server_reply(req, 204, NULL, NULL, 0);
}

static void
test_route_table(void)
{
	struct conf *cf = t_conf("", "127.0.0.1:0", "");
	struct server *srv;
	struct server_route r = { "r", "/r/", SERVER_ON(SERVER_HTTP), 0,
	    t_nop, NULL, NULL };
	char prefix[SERVER_ROUTES_MAX + 1][16];
	int i, added = 0;

	CHECK(cf != NULL);
	/* https wants a TLS context. */
	free(cf->listen.https);
	cf->listen.https = strdup("127.0.0.1:0");
	CHECK(server_new(cf, NULL) == NULL);
	free(cf->listen.https);
	cf->listen.https = strdup("");

	srv = server_new(cf, NULL);
	CHECK(srv != NULL);
	if (srv == NULL)
		goto out;
	CHECK(server_bound(srv, SERVER_HTTP) == NULL);	/* not bound yet */
	CHECK(server_jobs_base(srv) != NULL);
	CHECK(server_route_add(srv, &r) == 0);
	CHECK(server_route_add(srv, &r) == -1);		/* same prefix */
	r.listeners = SERVER_ON(SERVER_MGMT);
	CHECK(server_route_add(srv, &r) == 0);		/* other listener */
	r.prefix = "no-slash";
	CHECK(server_route_add(srv, &r) == -1);
	r.prefix = "/h/";
	r.handle = NULL;
	CHECK(server_route_add(srv, &r) == -1);
	r.handle = t_nop;
	r.listeners = 1u << SERVER_LISTENER__MAX;
	CHECK(server_route_add(srv, &r) == -1);
	r.listeners = SERVER_ON(SERVER_HTTP);
	/* The built-in routes do not use up the table. */
	for (i = 0; i <= SERVER_ROUTES_MAX; i++) {
		snprintf(prefix[i], sizeof(prefix[i]), "/p%d/", i);
		r.prefix = prefix[i];
		if (server_route_add(srv, &r) == 0)
			added++;
	}
	CHECK(added == SERVER_ROUTES_MAX - 2);
	CHECK(server_timer(srv, 0, t_timer, NULL) == -1);
	for (i = 0; i < SERVER_TIMERS_MAX; i++)
		CHECK(server_timer(srv, 3600, t_timer, NULL) == 0);
	CHECK(server_timer(srv, 3600, t_timer, NULL) == -1);
out:
	server_free(srv);
	server_free(NULL);
	conf_free(cf);
}

static void
test_bind_failure(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct conf *cf;
	struct server *srv;
	char addr[64], logpath[600], want[128], *log;
	int fd, saved;

	/* Hold a port so that the server cannot bind it. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(listen(fd, 1) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	cf = t_conf("", addr, "");
	srv = server_new(cf, NULL);
	CHECK(srv != NULL);
	snprintf(logpath, sizeof(logpath), "%s/bind.log", test_tmpdir());
	saved = t_stderr_capture(logpath);
	CHECK(srv != NULL && server_run(srv) == -1);
	log = t_stderr_release(saved, logpath);
	snprintf(want, sizeof(want), "cannot bind %s: ", addr);
	CHECK(strstr(log, want) != NULL);
	CHECK(strstr(log, "(errno 98)") != NULL);	/* EADDRINUSE */
	if (strstr(log, want) == NULL)
		fprintf(stderr, "log was: %s\n", log);
	free(log);
	/* A second run is refused. */
	CHECK(srv != NULL && server_run(srv) == -1);
	server_free(srv);
	conf_free(cf);
	close(fd);
}

struct t_solo {
	struct server	*srv;
	int		 rc;
	atomic_bool	 returned;
};

static void *
t_solo_run(void *arg)
{
	struct t_solo *s = arg;

	s->rc = server_run(s->srv);
	atomic_store(&s->returned, true);
	return NULL;
}

/* A server of its own for cf, with the shared test PKI's chain. */
static struct server *
t_solo_new(const struct conf *cf)
{
	SSL_CTX *tls = server_tls_ctx(pki.chain_pem, pki.key_pem);
	struct server *srv = server_new(cf, tls);

	SSL_CTX_free(tls);
	return srv;
}

/* server_stop() from another thread, even before server_run() got
 * going, and SIGTERM: both end in a clean drain and return 0. */
static void
test_stop_and_signal(void)
{
	struct conf *cf = t_conf("", "127.0.0.1:0", "");
	struct t_solo s;
	pthread_t th;
	int waited;

	memset(&s, 0, sizeof(s));
	s.srv = server_new(cf, NULL);
	CHECK(s.srv != NULL);
	if (s.srv == NULL)
		goto out;
	server_stop(s.srv);
	CHECK(pthread_create(&th, NULL, t_solo_run, &s) == 0);
	CHECK(t_wait_flag(&s.returned));
	pthread_join(th, NULL);
	CHECK(s.rc == 0);
	server_free(s.srv);

	memset(&s, 0, sizeof(s));
	s.srv = server_new(cf, NULL);
	CHECK(s.srv != NULL);
	if (s.srv == NULL)
		goto out;
	CHECK(pthread_create(&th, NULL, t_solo_run, &s) == 0);
	for (waited = 0; waited < T_WAIT_MS && server_bound(s.srv,
	    SERVER_HTTP) == NULL; waited += 5)
		t_sleep_ms(5);
	CHECK(server_bound(s.srv, SERVER_HTTP) != NULL);
	CHECK(kill(getpid(), SIGTERM) == 0);
	CHECK(t_wait_flag(&s.returned));
	pthread_join(th, NULL);
	CHECK(s.rc == 0);
	server_free(s.srv);
out:
	conf_free(cf);
}

/* An IPv6 listener: bound address and peers in "[addr]:port" form. */
static void
test_ipv6(void)
{
	struct conf *cf = t_conf("", "[::1]:0", "");
	struct sockaddr_in6 sin6;
	struct t_solo s;
	struct t_req q = { .dispatched = false };	/* not fx's server */
	struct t_resp r;
	pthread_t th;
	char url[T_URL_MAX], logpath[600], *log;
	int fd, saved, waited;

	/* Without IPv6 on this host there is nothing to test. */
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin6,
	    sizeof(sin6)) == -1) {
		fprintf(stderr, "test_ipv6: no IPv6 loopback, skipped\n");
		if (fd != -1)
			close(fd);
		conf_free(cf);
		return;
	}
	close(fd);
	CHECK(t_pki_make());
	memset(&s, 0, sizeof(s));
	s.srv = server_new(cf, NULL);
	CHECK(s.srv != NULL);
	if (s.srv == NULL)
		goto out;
	snprintf(logpath, sizeof(logpath), "%s/ipv6.log", test_tmpdir());
	saved = t_stderr_capture(logpath);
	CHECK(pthread_create(&th, NULL, t_solo_run, &s) == 0);
	for (waited = 0; waited < T_WAIT_MS && server_bound(s.srv,
	    SERVER_HTTP) == NULL; waited += 5)
		t_sleep_ms(5);
	CHECK(server_bound(s.srv, SERVER_HTTP) != NULL &&
	    strncmp(server_bound(s.srv, SERVER_HTTP), "[::1]:", 6) == 0);
	snprintf(url, sizeof(url), "http://%s/healthz",
	    server_bound(s.srv, SERVER_HTTP));
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 200);
	free(r.body);
	server_stop(s.srv);
	pthread_join(th, NULL);
	CHECK(s.rc == 0);
	server_free(s.srv);
	log = t_stderr_release(saved, logpath);
	CHECK(strstr(log, "listening on http://[::1]:") != NULL);
	CHECK(strstr(log, "access http [::1]:") != NULL);
	t_replay(log);
	free(log);
out:
	conf_free(cf);
}

static void
t_hang(struct evhttp_request *req, void *arg)
{
	atomic_bool *started = arg;

	(void)req;	/* never answered: drain must give up on it */
	atomic_store(started, true);
}

struct t_hang_client {
	char		 url[T_URL_MAX * 2];
	struct t_resp	 r;
};

static void *
t_hang_get(void *arg)
{
	struct t_hang_client *c = arg;
	struct t_req q = { .dispatched = false };

	t_do(NULL, c->url, &q, &c->r);
	return NULL;
}

/* A request that is never answered: drain waits drain_seconds, then the
 * connection is closed, the request logged as aborted, and nothing
 * leaks. */
static void
test_drain_deadline(void)
{
	struct conf *cf = t_conf("127.0.0.1:0", "", "");
	atomic_bool started = false;
	struct server_route hang = { "hang", "/hang", SERVER_ON(SERVER_HTTPS),
	    0, t_hang, NULL, &started };
	struct t_hang_client c;
	struct t_solo s;
	pthread_t th, cth;
	char logpath[600], *log;
	uint64_t t0;
	int saved, waited;

	CHECK(t_pki_make());
	memset(&s, 0, sizeof(s));
	memset(&c, 0, sizeof(c));
	cf->server.drain_seconds = 1;
	s.srv = t_solo_new(cf);
	CHECK(s.srv != NULL);
	if (s.srv == NULL)
		goto out;
	CHECK(server_route_add(s.srv, &hang) == 0);
	snprintf(logpath, sizeof(logpath), "%s/deadline.log", test_tmpdir());
	saved = t_stderr_capture(logpath);
	CHECK(pthread_create(&th, NULL, t_solo_run, &s) == 0);
	for (waited = 0; waited < T_WAIT_MS && server_bound(s.srv,
	    SERVER_HTTPS) == NULL; waited += 5)
		t_sleep_ms(5);
	snprintf(c.url, sizeof(c.url), "https://%s/hang",
	    server_bound(s.srv, SERVER_HTTPS));
	CHECK(pthread_create(&cth, NULL, t_hang_get, &c) == 0);
	CHECK(t_wait_flag(&started));
	t0 = common_mono_ms();
	server_stop(s.srv);
	CHECK(t_wait_flag(&s.returned));
	pthread_join(th, NULL);
	pthread_join(cth, NULL);
	CHECK(s.rc == 0);
	CHECK(common_mono_ms() - t0 >= 1000);	/* waited drain_seconds */
	CHECK(c.r.cc == CURLE_GOT_NOTHING);	/* closed without a reply */
	free(c.r.body);
	server_free(s.srv);
	log = t_stderr_release(saved, logpath);
	if (strstr(log, "drain: 1 request still in flight after 1 s") ==
	    NULL || strstr(log, "\"GET /hang\" 499 0 ") == NULL ||
	    strstr(log, "ms aborted") == NULL) {
		CHECK(!"deadline drain log lines");
		fprintf(stderr, "log was:\n%s", log);
	} else
		t_replay(log);
	free(log);
out:
	conf_free(cf);
}

/* ---- deferred durability -------------------------------------------------- */

/* A stand-in for the store's flusher that the test drives by hand: a
 * handler "commits" by taking a ticket, and nothing is durable until
 * t_dur_flush() says so. */
struct t_dur {
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	uint64_t	 seq;		/* tickets handed out */
	uint64_t	 flushed;	/* durable up to */
	bool		 failed;
	int		 requests;	/* request hook calls: workers */
	int		 job_requests;	/* ...and the jobs thread */
	atomic_int	 thread_starts;
	void		(*fn[8])(void *);
	void		*fnarg[8];
	int		 nsubs;
	atomic_bool	 job_ran;
	uint64_t	 job_saw_flushed;	/* flushed when the job ran */
	struct server	*srv;
};

static struct t_dur tdur = { .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER };
static __thread uint64_t t_dur_ticket;
static __thread bool t_dur_worker;	/* thread_start ran here */

static int
t_dur_thread_start(void *arg)
{
	struct t_dur *d = arg;

	t_dur_worker = true;
	atomic_fetch_add(&d->thread_starts, 1);
	return 0;
}

static uint64_t
t_dur_pending(void *arg)
{
	struct t_dur *d = arg;
	uint64_t t;

	pthread_mutex_lock(&d->lock);
	t = t_dur_ticket > d->flushed ? t_dur_ticket : 0;
	pthread_mutex_unlock(&d->lock);
	return t;
}

static int
t_dur_state(void *arg, uint64_t ticket)
{
	struct t_dur *d = arg;
	int s;

	pthread_mutex_lock(&d->lock);
	s = ticket <= d->flushed ? 1 : d->failed ? -1 : 0;
	pthread_mutex_unlock(&d->lock);
	return s;
}

static void
t_dur_request(void *arg, uint64_t ticket)
{
	struct t_dur *d = arg;

	(void)ticket;
	pthread_mutex_lock(&d->lock);
	if (t_dur_worker)	/* a held reply, not the jobs thread's */
		d->requests++;
	else
		d->job_requests++;
	pthread_mutex_unlock(&d->lock);
}

static int
t_dur_wait(void *arg, uint64_t ticket)
{
	struct t_dur *d = arg;
	int rc;

	pthread_mutex_lock(&d->lock);
	while (ticket > d->flushed && !d->failed)
		pthread_cond_wait(&d->cond, &d->lock);
	rc = ticket <= d->flushed ? 0 : -1;
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static int
t_dur_subscribe(void *arg, void (*fn)(void *), void *fnarg)
{
	struct t_dur *d = arg;

	pthread_mutex_lock(&d->lock);
	d->fn[d->nsubs] = fn;
	d->fnarg[d->nsubs++] = fnarg;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void
t_dur_unsubscribe(void *arg, void (*fn)(void *), void *fnarg)
{
	struct t_dur *d = arg;
	int i;

	pthread_mutex_lock(&d->lock);
	for (i = 0; i < d->nsubs; i++) {
		if (d->fn[i] == fn && d->fnarg[i] == fnarg) {
			d->nsubs--;
			d->fn[i] = d->fn[d->nsubs];
			d->fnarg[i] = d->fnarg[d->nsubs];
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
}

/* "The flush" of everything handed out so far, or its failure. */
static void
t_dur_flush(struct t_dur *d, bool fail)
{
	int i;

	pthread_mutex_lock(&d->lock);
	if (fail)
		d->failed = true;
	else
		d->flushed = d->seq;
	pthread_cond_broadcast(&d->cond);
	for (i = 0; i < d->nsubs; i++)
		d->fn[i](d->fnarg[i]);
	pthread_mutex_unlock(&d->lock);
}

static int
t_dur_requests(struct t_dur *d)
{
	int n;

	pthread_mutex_lock(&d->lock);
	n = d->requests;
	pthread_mutex_unlock(&d->lock);
	return n;
}

static void
t_dur_job(void *arg)
{
	struct t_dur *d = arg;

	pthread_mutex_lock(&d->lock);
	d->job_saw_flushed = d->flushed;
	pthread_mutex_unlock(&d->lock);
	atomic_store(&d->job_ran, true);
}

/* /commit: "commits" (takes a ticket), queues a job when asked, replies. */
static void
t_dur_commit(struct evhttp_request *req, void *arg)
{
	struct t_dur *d = arg;
	const char *uri = evhttp_request_get_uri(req);

	pthread_mutex_lock(&d->lock);
	t_dur_ticket = ++d->seq;
	pthread_mutex_unlock(&d->lock);
	if (strstr(uri, "job") != NULL)
		CHECK(server_job(d->srv, t_dur_job, d) == 0);
	server_reply(req, 201, "text/plain", "stored\n", 7);
}

/* /plain: commits nothing on a thread that has nothing pending. */
static void
t_dur_plain(struct evhttp_request *req, void *arg)
{
	(void)arg;
	server_reply(req, 200, "text/plain", "plain\n", 6);
}

struct t_dur_client {
	char		 url[T_URL_MAX * 2];
	struct t_resp	 r;
	atomic_bool	 done;
};

static void *
t_dur_get(void *arg)
{
	struct t_dur_client *c = arg;
	struct t_req q = { .dispatched = false };	/* not fx's server */

	t_do(NULL, c->url, &q, &c->r);
	atomic_store(&c->done, true);
	return NULL;
}

/* Starts a client thread on path and waits until its reply is held. */
static void
t_dur_start(struct t_dur_client *c, pthread_t *th, struct server *srv,
    const char *path, int requests_before)
{
	int waited;

	memset(c, 0, sizeof(*c));
	snprintf(c->url, sizeof(c->url), "https://%s%s",
	    server_bound(srv, SERVER_HTTPS), path);
	CHECK(pthread_create(th, NULL, t_dur_get, c) == 0);
	for (waited = 0; waited < T_WAIT_MS &&
	    t_dur_requests(&tdur) == requests_before; waited += 5)
		t_sleep_ms(5);
	CHECK(t_dur_requests(&tdur) == requests_before + 1);
}

/*
 * With durability hooks the reply of a request that committed is held
 * until its commit is durable (other clients are answered meanwhile),
 * a job queued after it runs only then, a failed flush turns the reply
 * into a 500, and the workers unsubscribe when the server stops.
 */
static void
test_durable_hold(void)
{
	struct conf *cf = t_conf("127.0.0.1:0", "", "");
	struct server_route commit = { "commit", "/commit",
	    SERVER_ON(SERVER_HTTPS), 0, t_dur_commit, NULL, &tdur };
	struct server_route plain = { "plain", "/plain",
	    SERVER_ON(SERVER_HTTPS), 0, t_dur_plain, NULL, &tdur };
	struct server_durability hooks = { t_dur_thread_start, t_dur_pending,
	    t_dur_state, t_dur_request, t_dur_wait, t_dur_subscribe,
	    t_dur_unsubscribe, &tdur };
	struct t_dur_client c, p;
	struct t_solo s;
	pthread_t th, pth, sth;
	int waited;

	CHECK(t_pki_make());
	memset(&s, 0, sizeof(s));
	cf->workers = 1;	/* one worker: its tickets are all of them */
	s.srv = t_solo_new(cf);
	CHECK(s.srv != NULL);
	if (s.srv == NULL)
		goto out;
	tdur.srv = s.srv;
	server_set_durability(s.srv, &hooks);
	CHECK(server_route_add(s.srv, &commit) == 0);
	CHECK(server_route_add(s.srv, &plain) == 0);
	CHECK(pthread_create(&sth, NULL, t_solo_run, &s) == 0);
	for (waited = 0; waited < T_WAIT_MS && server_bound(s.srv,
	    SERVER_HTTPS) == NULL; waited += 5)
		t_sleep_ms(5);
	CHECK(server_bound(s.srv, SERVER_HTTPS) != NULL);
	if (server_bound(s.srv, SERVER_HTTPS) == NULL)
		goto stop;

	/* held until the flush, with its job */
	t_dur_start(&c, &th, s.srv, "/commit?job", 0);
	t_sleep_ms(200);
	CHECK(!atomic_load(&c.done));
	CHECK(!atomic_load(&tdur.job_ran));
	CHECK(atomic_load(&tdur.thread_starts) == 1);
	pthread_mutex_lock(&tdur.lock);
	CHECK(tdur.nsubs == 2);		/* the worker and the jobs thread */
	pthread_mutex_unlock(&tdur.lock);
	t_dur_flush(&tdur, false);
	pthread_join(th, NULL);
	CHECK(c.r.cc == CURLE_OK && c.r.status == 201);
	CHECK(c.r.body != NULL && strcmp(c.r.body, "stored\n") == 0);
	CHECK(t_wait_flag(&tdur.job_ran));
	CHECK(tdur.job_saw_flushed >= 1);	/* ran after the flush */
	pthread_mutex_lock(&tdur.lock);
	CHECK(tdur.job_requests == 1);		/* it waited, unblocked */
	pthread_mutex_unlock(&tdur.lock);
	free(c.r.body);

	/* nothing pending: answered at once, no flush asked for */
	memset(&p, 0, sizeof(p));
	snprintf(p.url, sizeof(p.url), "https://%s/plain",
	    server_bound(s.srv, SERVER_HTTPS));
	t_dur_get(&p);
	CHECK(p.r.cc == CURLE_OK && p.r.status == 200);
	CHECK(t_dur_requests(&tdur) == 1);
	free(p.r.body);

	/* the worker keeps serving while a reply is held; a reply after a
	 * held one on the same worker waits for the same flush */
	t_dur_start(&c, &th, s.srv, "/commit", 1);
	memset(&p, 0, sizeof(p));
	snprintf(p.url, sizeof(p.url), "https://%s/plain",
	    server_bound(s.srv, SERVER_HTTPS));
	CHECK(pthread_create(&pth, NULL, t_dur_get, &p) == 0);
	for (waited = 0; waited < T_WAIT_MS && t_dur_requests(&tdur) < 3;
	    waited += 5)
		t_sleep_ms(5);
	CHECK(t_dur_requests(&tdur) == 3);	/* both held, one loop */
	CHECK(!atomic_load(&c.done) && !atomic_load(&p.done));
	t_dur_flush(&tdur, false);
	pthread_join(th, NULL);
	pthread_join(pth, NULL);
	CHECK(c.r.status == 201 && p.r.status == 200);
	free(c.r.body);
	free(p.r.body);

	/* a flush that fails: the reply says the change was not made */
	t_dur_start(&c, &th, s.srv, "/commit", 3);
	t_dur_flush(&tdur, true);
	pthread_join(th, NULL);
	CHECK(c.r.cc == CURLE_OK && c.r.status == 500);
	CHECK(c.r.body != NULL && strstr(c.r.body, "could not be written "
	    "to disk") != NULL);
	free(c.r.body);

	/* after the failure no flush comes to wake anyone: a reply held
	 * then is not left waiting */
	t_dur_start(&c, &th, s.srv, "/commit", 4);
	pthread_join(th, NULL);
	CHECK(c.r.cc == CURLE_OK && c.r.status == 500);
	free(c.r.body);

	/* the failure passed (a later flush works): answered again */
	pthread_mutex_lock(&tdur.lock);
	tdur.failed = false;
	pthread_mutex_unlock(&tdur.lock);
	t_dur_start(&c, &th, s.srv, "/commit", 5);
	t_dur_flush(&tdur, false);
	pthread_join(th, NULL);
	CHECK(c.r.cc == CURLE_OK && c.r.status == 201);
	free(c.r.body);
stop:
	server_stop(s.srv);
	CHECK(t_wait_flag(&s.returned));
	pthread_join(sth, NULL);
	CHECK(s.rc == 0);
	server_free(s.srv);
	pthread_mutex_lock(&tdur.lock);
	CHECK(tdur.nsubs == 0);		/* no flush wakes a freed worker */
	pthread_mutex_unlock(&tdur.lock);
out:
	conf_free(cf);
}

/* ---- tests on the shared server ------------------------------------------ */

static void
test_listeners(void)
{
	CHECK(fx_up());
	if (!fx.up)
		return;
	CHECK(strncmp(server_bound(fx.srv, SERVER_HTTPS), "127.0.0.1:",
	    10) == 0);
	CHECK(strcmp(server_bound(fx.srv, SERVER_HTTPS), "127.0.0.1:0") != 0);
	CHECK(strcmp(server_bound(fx.srv, SERVER_HTTP), "127.0.0.1:0") != 0);
	CHECK(strcmp(server_bound(fx.srv, SERVER_MGMT), "127.0.0.1:0") != 0);
	CHECK(server_bound(fx.srv, SERVER_LISTENER__MAX) == NULL);
}

static void
test_route_tls13_and_tls12(void)
{
	struct t_req q = { .dispatched = true };
	struct t_resp r;
	char url[T_URL_MAX * 2];
	json_t *j;

	CHECK(fx_up());
	snprintf(url, sizeof(url), "%s/t/x?q=1", fx.https);
	q.sslversion = CURL_SSLVERSION_TLSv1_3;
	t_do(NULL, url, &q, &r);
	CHECK(r.cc == CURLE_OK);
	CHECK(r.status == 200);
	CHECK_STR(r.ctype, "application/json");
	CHECK(r.len > 0 && r.body[r.len - 1] == '\n');
	j = t_json(&r);
	CHECK_STR(t_jstr(j, "route"), "t");
	CHECK_STR(t_jstr(j, "tls"), "TLSv1.3");
	CHECK_STR(t_jstr(j, "alpn"), "http/1.1");
	CHECK_STR(t_jstr(j, "path"), "/t/x");		/* no query */
	CHECK(json_integer_value(json_object_get(j, "listener")) ==
	    SERVER_HTTPS);
	CHECK(json_integer_value(json_object_get(j, "nodelay")) == 1);
	json_decref(j);
	free(r.body);

	q.sslversion = CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2;
	q.no_alpn = true;	/* and a client that sends no ALPN */
	t_do(NULL, url, &q, &r);
	CHECK(r.cc == CURLE_OK);
	CHECK(r.status == 200);
	j = t_json(&r);
	CHECK_STR(t_jstr(j, "tls"), "TLSv1.2");
	CHECK(t_jstr(j, "cipher") != NULL &&
	    strncmp(t_jstr(j, "cipher"), "ECDHE-ECDSA-", 12) == 0 &&
	    strstr(t_jstr(j, "cipher"), "GCM") != NULL);
	CHECK_STR(t_jstr(j, "alpn"), "");
	json_decref(j);
	free(r.body);

	/* The same route on the mgmt listener. */
	t_get(fx.mgmt, "/t/m", &r);
	CHECK(r.status == 200);
	j = t_json(&r);
	CHECK(json_integer_value(json_object_get(j, "listener")) ==
	    SERVER_MGMT);
	json_decref(j);
	free(r.body);
}

/* A raw TLS handshake with the https listener offering only the ALPN
 * protocols in alpn (wire format); true when it succeeds. */
static bool
t_tls_handshake(const unsigned char *alpn, unsigned alpnlen)
{
	const char *bound = server_bound(fx.srv, SERVER_HTTPS);
	struct sockaddr_in sin;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	int fd = -1;
	bool ok = false;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)atoi(strrchr(bound, ':') + 1));
	if (ctx == NULL || SSL_CTX_set_alpn_protos(ctx, alpn, alpnlen) != 0)
		goto out;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);	/* ALPN only */
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		goto out;
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		goto out;
	ok = SSL_connect(ssl) == 1;
	if (ok)
		SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd != -1)
		close(fd);
	return ok;
}

static void
test_alpn(void)
{
	CHECK(fx_up());
	if (!fx.up)
		return;
	CHECK(t_tls_handshake((const unsigned char *)"\x08http/1.1", 9));
	CHECK(t_tls_handshake((const unsigned char *)"\x02h2\x08http/1.1",
	    12));
	/* RFC 7301 section 3.2: no overlap is a fatal alert. */
	CHECK(!t_tls_handshake((const unsigned char *)"\x02h2", 3));
}

static void
test_longest_prefix_and_404(void)
{
	struct t_resp r;
	json_t *j;

	CHECK(fx_up());
	t_get(fx.https, "/t/long/x", &r);
	CHECK(r.status == 200);
	j = t_json(&r);
	CHECK_STR(t_jstr(j, "route"), "long");
	json_decref(j);
	free(r.body);

	t_get(fx.https, "/t/longer", &r);	/* "/t/long/" does not match */
	j = t_json(&r);
	CHECK_STR(t_jstr(j, "route"), "t");
	json_decref(j);
	free(r.body);

	t_get(fx.https, "/nope", &r);
	CHECK(r.status == 404);
	CHECK_STR(r.ctype, "application/json");
	CHECK_STR(r.body, "{\"error\":{\"code\":\"not_found\","
	    "\"message\":\"no route for /nope\"}}\n");
	free(r.body);

	t_get(fx.http, "/t/x", &r);		/* route not on http */
	CHECK(r.status == 404);
	free(r.body);
}

static void
test_body_limit(void)
{
	struct t_req q = { .method = "POST", .dispatched = true };
	struct t_resp r;
	char big[200], url[T_URL_MAX * 2], *huge;
	json_t *j;

	CHECK(fx_up());
	snprintf(url, sizeof(url), "%s/t/post", fx.https);
	memset(big, 'b', sizeof(big));
	q.body = big;
	q.len = sizeof(big);
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 413);
	CHECK_STR(r.body, "{\"error\":{\"code\":\"test_error\",\"message\":"
	    "\"request body exceeds 100 bytes\"}}\n");
	free(r.body);

	q.body = "{\"hello\":\"world\"}";
	q.len = strlen(q.body);
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 200);
	j = t_json(&r);
	CHECK(json_integer_value(json_object_get(j, "body_len")) ==
	    (json_int_t)q.len);
	CHECK(json_is_true(json_object_get(j, "body_nul")));
	CHECK_STR(t_jstr(j, "body"), q.body);
	json_decref(j);
	free(r.body);

	/* Exactly the limit passes. */
	q.body = big;
	q.len = T_ROUTE_BODY_MAX;
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 200);
	free(r.body);

	/* Over server.max_body_bytes on a route with the default limit: the
	 * route still answers, in its own format (not libevent's page). */
	snprintf(url, sizeof(url), "%s/t/long/post", fx.https);
	q.len = 2 * 1024 * 1024;
	if ((huge = malloc(q.len)) == NULL)
		return;
	memset(huge, 'h', q.len);
	q.body = huge;
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 413);
	CHECK(r.body != NULL && strstr(r.body, "\"code\":\"test_error\"") !=
	    NULL);
	CHECK(r.body != NULL && strstr(r.body, "exceeds 1048576 bytes") !=
	    NULL);
	free(r.body);
	free(huge);
}

static void
test_header_limit(void)
{
	struct t_req q = { .dispatched = false };
	struct t_resp r;
	char url[T_URL_MAX * 2], *hdr;
	size_t n = 20000;	/* over server.max_header_bytes (16384) */

	CHECK(fx_up());
	hdr = malloc(n + 16);
	memcpy(hdr, "X-Big: ", 7);
	memset(hdr + 7, 'a', n);
	hdr[7 + n] = '\0';
	q.header = hdr;
	snprintf(url, sizeof(url), "%s/healthz", fx.http);
	/* libevent refuses it with its own HTML page before any route
	 * runs, so it is not access-logged. */
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 400);		/* libevent 2.1's answer */
	CHECK_STR(r.ctype, "text/html");
	free(r.body);
	free(hdr);
}

static void
test_healthz_and_metrics(void)
{
	const char *bases[3];
	struct t_req q = { .method = "POST", .body = "x", .len = 1,
	    .dispatched = true };
	struct t_resp r;
	char url[T_URL_MAX * 2];
	int i, tries;
	bool found = false;

	CHECK(fx_up());
	bases[0] = fx.https;
	bases[1] = fx.http;
	bases[2] = fx.mgmt;
	for (i = 0; i < 3; i++) {
		t_get(bases[i], "/healthz", &r);
		CHECK(r.status == 200);
		CHECK_STR(r.body, "{\"status\":\"ok\"}\n");
		CHECK_STR(r.ctype, "application/json");
		free(r.body);
	}
	snprintf(url, sizeof(url), "%s/healthz", fx.http);
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 405);
	free(r.body);
	t_get(fx.http, "/healthzz", &r);
	CHECK(r.status == 404);
	free(r.body);

	/* A request to count, then its series must show up (it is counted
	 * when the reply has been written, so allow a moment). */
	t_get(fx.https, "/t/metrics-probe", &r);
	free(r.body);
	for (tries = 0; tries < 50 && !found; tries++) {
		t_get(tries % 2 ? fx.mgmt : fx.http, "/metrics", &r);
		CHECK(r.status == 200);
		CHECK_STR(r.ctype, "text/plain; version=0.0.4");
		CHECK(strstr(r.body, "\npkid_up 1\n") != NULL);
		found = strstr(r.body, "pkid_http_requests_total{route=\"t\","
		    "status=\"200\"} ") != NULL &&
		    strstr(r.body, "pkid_http_requests_total{route=\"none\","
		    "status=\"404\"} ") != NULL;
		free(r.body);
		if (!found)
			t_sleep_ms(10);
	}
	CHECK(found);
	t_get(fx.https, "/metrics", &r);	/* not on https */
	CHECK(r.status == 404);
	free(r.body);
}

static void
test_public_files(void)
{
	struct t_req q = { .dispatched = true };
	struct t_resp r;
	char url[T_URL_MAX * 2], ims[128], lastmod[64];

	CHECK(fx_up());
	t_get(fx.http, "/crl/x.crl", &r);
	CHECK(r.status == 200);
	CHECK_STR(r.ctype, "application/pkix-crl");
	CHECK(r.len == sizeof(T_CRL_BYTES) - 1 &&
	    memcmp(r.body, T_CRL_BYTES, r.len) == 0);
	CHECK(strlen(r.lastmod) > 20 && strstr(r.lastmod, " GMT") != NULL);
	snprintf(lastmod, sizeof(lastmod), "%s", r.lastmod);
	free(r.body);

	t_get(fx.http, "/ca/x.crt", &r);
	CHECK(r.status == 200);
	CHECK_STR(r.ctype, "application/pkix-cert");
	CHECK(r.len == sizeof(T_CRT_BYTES) - 1 &&
	    memcmp(r.body, T_CRT_BYTES, r.len) == 0);
	free(r.body);

	/* Conditional GET and HEAD. */
	snprintf(url, sizeof(url), "%s/crl/x.crl", fx.http);
	snprintf(ims, sizeof(ims), "If-Modified-Since: %s", lastmod);
	q.header = ims;
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 304);
	CHECK(r.len == 0);
	free(r.body);
	q.header = NULL;
	q.method = "HEAD";
	t_do(NULL, url, &q, &r);
	CHECK(r.status == 200);
	CHECK(r.len == 0);
	CHECK(r.content_length == (curl_off_t)(sizeof(T_CRL_BYTES) - 1));
	free(r.body);

	/* Missing, hostile or misnamed ids, and the wrong listener. */
	t_get(fx.http, "/crl/missing.crl", &r);
	CHECK(r.status == 404);
	CHECK_STR(r.body, "{\"error\":{\"code\":\"not_found\","
	    "\"message\":\"no such file: /crl/missing.crl\"}}\n");
	free(r.body);
	t_get(fx.http, "/crl/../etc.crl", &r);
	CHECK(r.status == 404);
	free(r.body);
	t_get(fx.http, "/crl/..%2fetc.crl", &r);
	CHECK(r.status == 404);
	free(r.body);
	t_get(fx.http, "/crl/.x.crl", &r);
	CHECK(r.status == 404);
	free(r.body);
	t_get(fx.http, "/crl/x.crt", &r);
	CHECK(r.status == 404);
	free(r.body);
	t_get(fx.http, "/crl/.crl", &r);
	CHECK(r.status == 404);
	free(r.body);
	t_get(fx.https, "/crl/x.crl", &r);
	CHECK(r.status == 404);
	free(r.body);
}

/* A conditional GET of url with one header (and extra, when not NULL);
 * the status, or -1 for a 304 with a body. */
static long
t_cond2(const char *url, const char *fmt, const char *value,
    const char *extra, char *etag, size_t etaglen)
{
	struct t_req q = { .dispatched = true };
	struct t_resp r;
	char hdr[256];

	snprintf(hdr, sizeof(hdr), fmt, value);
	q.header = hdr;
	q.header2 = extra;
	t_do(NULL, url, &q, &r);
	if (etag != NULL)
		snprintf(etag, etaglen, "%s", r.etag);
	if (r.status == 304 && r.len != 0)
		r.status = -1;	/* a 304 has no body */
	free(r.body);
	return r.status;
}

static long
t_cond(const char *url, const char *fmt, const char *value, char *etag,
    size_t etaglen)
{
	return t_cond2(url, fmt, value, NULL, etag, etaglen);
}

/* ETag and Last-Modified on public files, and the conditional requests
 * of RFC 9110 section 13.2.2. */
static void
test_public_conditional(void)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char url[T_URL_MAX * 2], file[PATH_MAX], want[80], hex[65];
	char etag[80], lastmod[64], other[128], tag304[80];
	struct t_resp r;
	time_t mtime;

	CHECK(fx_up());
	snprintf(url, sizeof(url), "%s/crl/x.crl", fx.http);
	t_get(fx.http, "/crl/x.crl", &r);
	CHECK(r.status == 200);
	/* Strong: quoted, no W/, the first 16 bytes of the SHA-256. */
	CHECK(EVP_Digest(T_CRL_BYTES, sizeof(T_CRL_BYTES) - 1, md, &mdlen,
	    EVP_sha256(), NULL) == 1);
	common_hex(md, 16, hex);
	snprintf(want, sizeof(want), "\"%s\"", hex);
	CHECK_STR(r.etag, want);
	snprintf(etag, sizeof(etag), "%s", r.etag);
	snprintf(lastmod, sizeof(lastmod), "%s", r.lastmod);
	free(r.body);

	/* If-None-Match: the tag, a list holding it, a weak form, "*". */
	CHECK(t_cond(url, "If-None-Match: %s", etag, tag304,
	    sizeof(tag304)) == 304);
	CHECK_STR(tag304, etag);	/* a 304 carries the validator */
	snprintf(other, sizeof(other), "\"nope\", %s", etag);
	CHECK(t_cond(url, "If-None-Match: %s", other, NULL, 0) == 304);
	snprintf(other, sizeof(other), "W/%s", etag);
	CHECK(t_cond(url, "If-None-Match: %s", other, NULL, 0) == 304);
	CHECK(t_cond(url, "If-None-Match: %s", "*", NULL, 0) == 304);
	CHECK(t_cond(url, "If-None-Match: %s", "\"nope\"", NULL, 0) == 200);
	CHECK(t_cond(url, "If-None-Match: %s", "garbage", NULL, 0) == 200);
	CHECK(t_cond(url, "If-None-Match: %s", "\"unterminated", NULL, 0) ==
	    200);
	/* If-None-Match wins over If-Modified-Since (section 13.2.2). */
	snprintf(other, sizeof(other), "If-Modified-Since: %s", lastmod);
	CHECK(t_cond2(url, "If-None-Match: %s", "\"nope\"", other, NULL,
	    0) == 200);
	CHECK(t_cond2(url, "If-None-Match: %s", etag,
	    "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT", NULL, 0) ==
	    304);

	/* If-Modified-Since: the same date or later is fresh, earlier or
	 * malformed is not. */
	CHECK(t_cond(url, "If-Modified-Since: %s", lastmod, NULL, 0) == 304);
	CHECK(t_cond(url, "If-Modified-Since: %s",
	    "Fri, 01 Jan 2100 00:00:00 GMT", NULL, 0) == 304);
	CHECK(t_cond(url, "If-Modified-Since: %s",
	    "Thu, 01 Jan 1970 00:00:01 GMT", NULL, 0) == 200);
	CHECK(t_cond(url, "If-Modified-Since: %s", "yesterday", NULL, 0) ==
	    200);
	CHECK(t_cond(url, "If-Modified-Since: %s",
	    "Fri, 01 Foo 2100 00:00:00 GMT", NULL, 0) == 200);
	CHECK(t_cond(url, "If-Modified-Since: %s",
	    "Fri, 01 Jan 2100 00:00:00 PST", NULL, 0) == 200);

	/* A new version of the file: a new tag, the old one is stale. */
	snprintf(file, sizeof(file), "%s/public/crl/x.crl", fx.cf->data_dir);
	CHECK(common_file_write(file, T_CRT_BYTES, sizeof(T_CRT_BYTES) - 1,
	    0644) == 0);
	mtime = time(NULL) + 10;
	{
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

		CHECK(utimensat(AT_FDCWD, file, ts, 0) == 0);
	}
	CHECK(t_cond(url, "If-None-Match: %s", etag, other,
	    sizeof(other)) == 200);
	CHECK(other[0] == '"' && strcmp(other, etag) != 0);
	CHECK(t_cond(url, "If-Modified-Since: %s", lastmod, NULL, 0) == 200);
	CHECK(t_cond(url, "If-None-Match: %s", other, NULL, 0) == 304);
	CHECK(common_file_write(file, T_CRL_BYTES, sizeof(T_CRL_BYTES) - 1,
	    0644) == 0);
}

static void
test_keepalive(void)
{
	struct t_req q = { .dispatched = true };
	struct t_resp r1, r2;
	char url[T_URL_MAX * 2];
	CURL *h;

	CHECK(fx_up());
	h = curl_easy_init();
	snprintf(url, sizeof(url), "%s/t/ka", fx.https);
	t_do(h, url, &q, &r1);
	t_do(h, url, &q, &r2);
	CHECK(r1.status == 200 && r2.status == 200);
	CHECK(r1.num_connects == 1);
	CHECK(r2.num_connects == 0);		/* reused */
	CHECK(r1.local_port == r2.local_port);
	free(r1.body);
	free(r2.body);
	curl_easy_cleanup(h);
}

/* A TLS connection of our own to the https listener, verifying the
 * server against the test root. */
struct t_conn {
	SSL_CTX	*ctx;
	SSL	*ssl;
	int	 fd;
};

static void
t_conn_close(struct t_conn *c)
{
	if (c->ssl != NULL)
		SSL_shutdown(c->ssl);
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	if (c->fd != -1)
		close(c->fd);
	c->ssl = NULL;
	c->ctx = NULL;
	c->fd = -1;
}

static bool
t_conn_open(struct t_conn *c)
{
	const char *bound = server_bound(fx.srv, SERVER_HTTPS);
	struct sockaddr_in sin;
	X509 *root = NULL;
	bool ok = false;

	c->ssl = NULL;
	c->fd = -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)atoi(strrchr(bound, ':') + 1));
	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (root = common_x509_from_pem(pki.root_pem,
	    strlen(pki.root_pem))) == NULL ||
	    X509_STORE_add_cert(SSL_CTX_get_cert_store(c->ctx), root) != 1)
		goto out;
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	ok = (c->fd = socket(AF_INET, SOCK_STREAM, 0)) != -1 &&
	    connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    (c->ssl = SSL_new(c->ctx)) != NULL &&
	    SSL_set_fd(c->ssl, c->fd) == 1 && SSL_connect(c->ssl) == 1 &&
	    SSL_get_verify_result(c->ssl) == X509_V_OK;
out:
	X509_free(root);
	if (!ok)
		t_conn_close(c);
	return ok;
}

/* Serial of the certificate the server presented on c, or -1. */
static long
t_conn_serial(const struct t_conn *c)
{
	X509 *x = c->ssl != NULL ? SSL_get1_peer_certificate(c->ssl) : NULL;
	long serial = x != NULL ?
	    ASN1_INTEGER_get(X509_get0_serialNumber(x)) : -1;

	X509_free(x);
	return serial;
}

/* GET path on c (kept alive); the status, or -1. */
static int
t_conn_get(struct t_conn *c, const char *path)
{
	char req[256], buf[16384];
	const char *end, *cl;
	size_t have = 0;
	int n, status = -1;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "\r\n", path);
	if (SSL_write(c->ssl, req, (int)strlen(req)) != (int)strlen(req))
		return -1;
	fx.requests++;
	for (;;) {
		if (have + 1 >= sizeof(buf) || (n = SSL_read(c->ssl,
		    buf + have, (int)(sizeof(buf) - 1 - have))) <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) == NULL ||
		    (cl = strcasestr(buf, "\r\nContent-Length:")) == NULL ||
		    cl > end)
			continue;
		if (have >= (size_t)(end + 4 - buf) + (size_t)atol(cl + 17))
			break;
	}
	sscanf(buf, "HTTP/1.1 %d", &status);
	return status;
}

/*
 * server_tls_reload: a connection made after the reload is served the
 * new certificate; one kept alive from before goes on with the old one
 * (more requests on it work); the reload is refused without a context
 * or on a server without TLS.
 */
static void
test_tls_reload(void)
{
	struct t_conn old = { .fd = -1 }, fresh = { .fd = -1 };
	struct conf *cf = t_conf("", "127.0.0.1:0", "");
	struct server *plain = NULL;
	struct t_resp r;
	SSL_CTX *tls1 = NULL, *tls2 = NULL;
	long s1, s2;

	CHECK(fx_up());
	if (!fx.up)
		goto out;
	CHECK((tls1 = server_tls_ctx(pki.chain_pem, pki.key_pem)) != NULL);
	CHECK((tls2 = server_tls_ctx(pki.chain2_pem, pki.key2_pem)) != NULL);
	if (tls1 == NULL || tls2 == NULL)
		goto out;
	CHECK(t_conn_open(&old));
	CHECK(t_conn_get(&old, "/t/reload-1") == 200);
	s1 = t_conn_serial(&old);

	CHECK(server_tls_reload(fx.srv, tls2) == 0);
	SSL_CTX_free(tls2);	/* the server holds its own reference */
	tls2 = NULL;
	CHECK(t_conn_open(&fresh));
	s2 = t_conn_serial(&fresh);
	CHECK(s1 > 0 && s2 > 0 && s1 != s2);
	CHECK(t_conn_get(&fresh, "/t/reload-2") == 200);
	/* the connection from before keeps working, on its certificate */
	CHECK(t_conn_get(&old, "/t/reload-3") == 200);
	CHECK(t_conn_get(&old, "/t/reload-4") == 200);
	CHECK(t_conn_serial(&old) == s1);
	/* curl verifying the new chain and host name */
	t_get(fx.https, "/t/reload-5", &r);
	CHECK(r.cc == CURLE_OK && r.status == 200);
	free(r.body);

	/* back to the first certificate for the tests that follow */
	CHECK(server_tls_reload(fx.srv, tls1) == 0);
	t_conn_close(&fresh);
	CHECK(t_conn_open(&fresh));
	CHECK(t_conn_serial(&fresh) == s1);

	CHECK(server_tls_reload(fx.srv, NULL) == -1);
	CHECK(cf != NULL && (plain = server_new(cf, NULL)) != NULL);
	CHECK(plain != NULL && server_tls_reload(plain, tls1) == -1);
out:
	t_conn_close(&old);
	t_conn_close(&fresh);
	server_free(plain);
	conf_free(cf);
	SSL_CTX_free(tls1);
	SSL_CTX_free(tls2);
}

struct t_jobrec {
	pthread_t	 thread;
	bool		 on_jobs_loop;
	atomic_bool	 done;
};

static void
t_job(void *arg)
{
	struct t_jobrec *rec = arg;

	rec->thread = pthread_self();
	rec->on_jobs_loop =
	    event_base_get_running_event(server_jobs_base(fx.srv)) != NULL;
	atomic_store(&rec->done, true);
}

static void
test_jobs_and_timer(void)
{
	struct t_jobrec rec;
	int waited;

	CHECK(fx_up());
	memset(&rec, 0, sizeof(rec));
	CHECK(server_job(fx.srv, t_job, &rec) == 0);
	CHECK(t_wait_flag(&rec.done));
	CHECK(!pthread_equal(rec.thread, pthread_self()));
	CHECK(!pthread_equal(rec.thread, fx.thread));
	CHECK(rec.on_jobs_loop);
	CHECK(server_job(fx.srv, NULL, NULL) == -1);

	/* The 1 s timer registered before server_run(). */
	for (waited = 0; waited < T_WAIT_MS &&
	    atomic_load(&fx.timer_fires) == 0; waited += 10)
		t_sleep_ms(10);
	CHECK(atomic_load(&fx.timer_fires) >= 1);
	CHECK(pthread_equal(fx.timer_thread, rec.thread));
}

struct t_bg {
	char		 url[T_URL_MAX * 2];
	struct t_resp	 r;
};

static void *
t_bg_get(void *arg)
{
	struct t_bg *bg = arg;
	struct t_req q = { .dispatched = false };	/* counted by caller */

	t_do(NULL, bg->url, &q, &bg->r);
	return NULL;
}

/* Last: a slow request is in flight when a handler asks the server to
 * stop; it still completes, then server_run() returns 0, the port is
 * closed and the access log has one line per request. */
static void
test_drain(void)
{
	struct t_bg bg;
	struct t_resp r;
	struct sockaddr_in sin;
	pthread_t th;
	char *log, want[128];
	const char *port;
	uint64_t t0;
	int fd, lines;

	CHECK(fx_up());
	if (!fx.up)
		return;
	memset(&bg, 0, sizeof(bg));
	snprintf(bg.url, sizeof(bg.url), "%s/slow", fx.https);
	CHECK(pthread_create(&th, NULL, t_bg_get, &bg) == 0);
	fx.requests++;
	CHECK(t_wait_flag(&fx.slow_started));
	CHECK(!atomic_load(&fx.slow_replied));

	t0 = common_mono_ms();
	t_get(fx.https, "/t/stop", &r);		/* server_stop() in there */
	CHECK(r.status == 200);
	free(r.body);
	pthread_join(th, NULL);
	CHECK(bg.r.status == 200);
	CHECK_STR(bg.r.body, "slow\n");
	CHECK_STR(bg.r.conn, "close");		/* replied while draining */
	free(bg.r.body);

	CHECK(t_wait_flag(&fx.returned));
	pthread_join(fx.thread, NULL);
	CHECK(fx.rc == 0);
	CHECK(atomic_load(&fx.slow_replied));
	CHECK(common_mono_ms() - t0 < 3000);	/* no wait for the deadline */

	/* The listening socket is gone. */
	port = strrchr(fx.http, ':') + 1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)atoi(port));
	CHECK(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno == ECONNREFUSED);
	close(fd);
	CHECK(server_job(fx.srv, t_job, NULL) == -1);	/* queue closed */
	server_free(fx.srv);
	conf_free(fx.cf);
	fx.srv = NULL;
	fx.cf = NULL;
	fx.up = false;
	fx.captured = false;

	log = t_stderr_release(fx.saved_stderr, fx.logpath);
	lines = t_count(log, " INFO access ");
	CHECK(lines == fx.requests);
	if (lines != fx.requests)
		fprintf(stderr, "access lines %d, requests %d\n", lines,
		    fx.requests);
	snprintf(want, sizeof(want), "listening on https://%s (https)",
	    strchr(fx.https, '/') + 2);
	CHECK(strstr(log, want) != NULL);
	CHECK(strstr(log, "(mgmt)") != NULL);
	CHECK(strstr(log, "INFO draining (stop requested)") != NULL);
	CHECK(strstr(log, "INFO stopped") != NULL);
	CHECK(strstr(log, " aborted") == NULL);
	CHECK(strstr(log, "access https 127.0.0.1:") != NULL);
	CHECK(strstr(log, "\"GET /slow\" 200 5 ") != NULL);
	CHECK(strstr(log, "\"POST /t/post\" 413 ") != NULL);
	CHECK(strstr(log, "access http 127.0.0.1:") != NULL &&
	    strstr(log, "\"GET /nope\" 404 ") != NULL);
	t_replay(log);
	free(log);
	t_pki_free();
	if (curl_ready)
		curl_global_cleanup();
	curl_ready = false;
}

const struct test_case test_cases[] = {
	TEST(test_tls_ctx),
	TEST(test_route_table),
	TEST(test_bind_failure),
	TEST(test_stop_and_signal),
	TEST(test_ipv6),
	TEST(test_drain_deadline),
	TEST(test_durable_hold),
	TEST(test_listeners),
	TEST(test_route_tls13_and_tls12),
	TEST(test_alpn),
	TEST(test_longest_prefix_and_404),
	TEST(test_body_limit),
	TEST(test_header_limit),
	TEST(test_healthz_and_metrics),
	TEST(test_public_files),
	TEST(test_public_conditional),
	TEST(test_keepalive),
	TEST(test_tls_reload),
	TEST(test_jobs_and_timer),
	TEST(test_drain),
	{ 0 },
};
