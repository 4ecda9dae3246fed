/*
 * tests/unit/acme_test.c — the ACME server in process: store, a CA
 * hierarchy, lifecycle, the server on 127.0.0.1:0 with acme_new(), an
 * http-01 responder (evhttp) whose port is acme.http01_port, and a small
 * ACME client of the test's own (OpenSSL JWS with ES256 and RS256 account
 * keys, libcurl) that walks RFC 8555 and its error paths: directory,
 * nonces, accounts, JWS refusals, orders, validation, finalize, download,
 * ARI, revocation, keyChange, deactivation and EAB.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "conf/conf.h"
#include "protocols/acme/acme.h"
#include "server/server.h"
#include "store/store.h"
#include "tests/unit/test.h"

#define T_PATH_MAX	512
#define T_URL_MAX	1024
#define T_BASE_MAX	256	/* "https://127.0.0.1:PORT" and the like */
#define T_KID_MAX	512
#define T_HDRS_MAX	16384
#define T_BODY_MAX	(4 * 1024 * 1024)
#define T_NONCE_MAX	256
#define T_BIND_TRIES	200	/* x 50 ms waiting for the listener */
#define T_POLL_TRIES	150	/* x 100 ms waiting for a validation */
#define T_RESP_MAX	64	/* http-01 responder entries */
#define T_TOKEN_MAX	128
#define T_KEYAUTH_MAX	256
#define T_ES256_COORD	32

/* ---- environment -------------------------------------------------------- */

struct t_resp_ent {
	char	token[T_TOKEN_MAX];
	char	body[T_KEYAUTH_MAX];
	int	delay_ms;	/* answer this late (0: at once) */
};

struct t_env {
	bool			 up;
	char			 dir[T_PATH_MAX];
	char			 cafile[T_PATH_MAX];	/* server TLS trust */
	char			 base[T_BASE_MAX]; /* https://HOST:PORT */
	char			 dirurl[T_BASE_MAX + 32];
	char			*ca_id;
	struct conf		*cf;
	struct store		*st;
	struct ca_ctx		*ca;
	struct lifecycle	*lc;
	struct server		*srv;
	struct acme		*acme;
	pthread_t		 thr;
	bool			 running;
	/* http-01 responder */
	struct event_base	*rbase;
	struct evhttp		*rhttp;
	pthread_t		 rthr;
	bool			 rrunning;
	int			 rport;
	pthread_mutex_t		 rlock;
	struct t_resp_ent	 rtab[T_RESP_MAX];
	size_t			 nr;
	char			 nonce[T_NONCE_MAX];	/* next to use */
	pthread_mutex_t		 nlock;
};

static struct t_env E;

struct t_resp {
	long	 status;
	char	*body;
	size_t	 len;
	char	 hdrs[T_HDRS_MAX];
	size_t	 hlen;
	json_t	*json;
};

/* An ACME client identity: the account key and its account URL. */
struct t_key {
	EVP_PKEY	*k;
	const char	*alg;		/* "ES256" | "RS256" */
	json_t		*jwk;
	char		 kid[T_KID_MAX];	/* "" before newAccount */
};

static void
t_resp_free(struct t_resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static void
t_key_free(struct t_key *k)
{
	EVP_PKEY_free(k->k);
	json_decref(k->jwk);
	memset(k, 0, sizeof(*k));
}

/* ---- the http-01 responder ---------------------------------------------- */

/* A delayed responder answer (the body is already in the buffer). */
static void
t_responder_late(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evhttp_send_reply(arg, 200, "OK", NULL);
}

static void
t_responder_cb(struct evhttp_request *req, void *arg)
{
	static const char prefix[] = "/.well-known/acme-challenge/";
	const char *path = evhttp_uri_get_path(
	    evhttp_request_get_evhttp_uri(req));
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct timeval tv;
	size_t i;
	int delay;

	(void)arg;
	if (path != NULL && strncmp(path, prefix, sizeof(prefix) - 1) == 0) {
		pthread_mutex_lock(&E.rlock);
		for (i = 0; i < E.nr; i++) {
			if (strcmp(E.rtab[i].token, path + sizeof(prefix) -
			    1) == 0) {
				evbuffer_add(out, E.rtab[i].body,
				    strlen(E.rtab[i].body));
				delay = E.rtab[i].delay_ms;
				pthread_mutex_unlock(&E.rlock);
				tv.tv_sec = delay / 1000;
				tv.tv_usec = (delay % 1000) * 1000;
				if (delay == 0 || event_base_once(E.rbase, -1,
				    EV_TIMEOUT, t_responder_late, req, &tv) ==
				    -1)
					evhttp_send_reply(req, 200, "OK", NULL);
				return;
			}
		}
		pthread_mutex_unlock(&E.rlock);
	}
	evhttp_send_reply(req, 404, "Not Found", NULL);
}

static void
t_responder_set_delayed(const char *token, const char *body, int delay_ms)
{
	pthread_mutex_lock(&E.rlock);
	if (E.nr < T_RESP_MAX) {
		snprintf(E.rtab[E.nr].token, sizeof(E.rtab[E.nr].token), "%s",
		    token);
		snprintf(E.rtab[E.nr].body, sizeof(E.rtab[E.nr].body), "%s",
		    body);
		E.rtab[E.nr].delay_ms = delay_ms;
		E.nr++;
	}
	pthread_mutex_unlock(&E.rlock);
}

static void
t_responder_set(const char *token, const char *body)
{
	t_responder_set_delayed(token, body, 0);
}

static void *
t_responder_thread(void *arg)
{
	(void)arg;
	event_base_loop(E.rbase, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static int
t_responder_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	pthread_mutex_init(&E.rlock, NULL);
	if ((E.rbase = event_base_new()) == NULL ||
	    (E.rhttp = evhttp_new(E.rbase)) == NULL ||
	    (bs = evhttp_bind_socket_with_handle(E.rhttp, "127.0.0.1", 0)) ==
	    NULL ||
	    getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sin, &slen) == -1)
		return -1;
	E.rport = ntohs(sin.sin_port);
	evhttp_set_gencb(E.rhttp, t_responder_cb, NULL);
	if (pthread_create(&E.rthr, NULL, t_responder_thread, NULL) != 0)
		return -1;
	E.rrunning = true;
	return 0;
}

/* ---- server ------------------------------------------------------------- */

static void
t_setstr(char **slot, const char *v)
{
	free(*slot);
	*slot = strdup(v);
}

/* A self-signed P-256 certificate for 127.0.0.1 (the https listener). */
static int
t_server_cert(char **cert_pem, char **key_pem)
{
	X509_EXTENSION *ext = NULL;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int rc = -1;

	*cert_pem = *key_pem = NULL;
	if ((k = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	if ((ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    "IP:127.0.0.1,DNS:localhost")) == NULL ||
	    X509_add_ext(x, ext, -1) != 1 ||
	    X509_sign(x, k, EVP_sha256()) == 0)
		goto out;
	*cert_pem = common_x509_to_pem(x);
	*key_pem = common_privkey_to_pem(k);
	rc = *cert_pem != NULL && *key_pem != NULL ? 0 : -1;
out:
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

struct t_hier {
	struct ca_ctx		*ca;
	char			*issuing_id;
	struct common_error	 err;
};

/* Root and issuing CA, as pkid init makes them. */
static int
t_hier_txn(struct store_txn *txn, void *arg)
{
	struct t_hier *h = arg;
	struct ca_create_req req;
	json_t *root = NULL, *sub = NULL;
	int rc = -1;

	free(h->issuing_id);
	h->issuing_id = NULL;
	common_error_clear(&h->err);
	memset(&req, 0, sizeof(req));
	req.name = "Test Root";
	req.type = "root";
	req.subject = "CN=ACME Test Root";
	req.key_alg = CA_KEY_ECDSA_P256;
	req.validity_days = 3650;
	req.path_len = -1;
	if ((root = ca_create(h->ca, txn, &req, &h->err)) == NULL)
		goto out;
	req.name = "Test Issuing";
	req.type = "subordinate";
	req.issuer_ca_id = json_string_value(json_object_get(root, "id"));
	req.subject = "CN=ACME Test Issuing";
	req.validity_days = 1825;
	req.path_len = 0;
	if ((sub = ca_create(h->ca, txn, &req, &h->err)) == NULL)
		goto out;
	if ((h->issuing_id = strdup(json_string_value(json_object_get(sub,
	    "id")))) == NULL ||
	    store_meta_put(txn, "issuing_ca_id", h->issuing_id) == -1)
		goto out;
	rc = 0;
out:
	json_decref(root);
	json_decref(sub);
	return rc;
}

static void *
t_server_thread(void *arg)
{
	(void)arg;
	if (server_run(E.srv) != 0)
		fprintf(stderr, "server_run failed\n");
	return NULL;
}

static void
t_env_stop(void)
{
	if (!E.up)
		return;
	if (E.running) {
		server_stop(E.srv);
		pthread_join(E.thr, NULL);
	}
	acme_free(E.acme);
	lifecycle_crl_stop(E.lc);
	server_free(E.srv);
	lifecycle_free(E.lc);
	ca_ctx_free(E.ca);
	store_close(E.st);
	conf_free(E.cf);
	free(E.ca_id);
	if (E.rrunning) {
		event_base_loopbreak(E.rbase);
		pthread_join(E.rthr, NULL);
	}
	if (E.rhttp != NULL)
		evhttp_free(E.rhttp);
	if (E.rbase != NULL)
		event_base_free(E.rbase);
	curl_global_cleanup();
	E.up = false;
}

/* Builds the stack once per process; false when it cannot. */
static bool
t_env(void)
{
	static bool tried;
	struct lifecycle_config lccfg = { 90, 30, NULL };
	struct ca_config cacfg;
	struct t_hier h;
	char *cert = NULL, *key = NULL;
	const char *bound = NULL;
	SSL_CTX *tls = NULL;
	int i;

	if (tried)
		return E.up;
	tried = true;
	evthread_use_pthreads();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_mutex_init(&E.nlock, NULL);
	E.up = true;
	snprintf(E.dir, sizeof(E.dir), "%s/acme", test_tmpdir());
	atexit(t_env_stop);	/* runs before the tmpdir removal */
	common_mkdirs(E.dir, 0700);
	common_path(E.cafile, sizeof(E.cafile), "%s/tls-ca.pem", E.dir);
	if (t_responder_start() == -1) {
		fprintf(stderr, "env: http-01 responder failed\n");
		goto fail;
	}
	if (t_server_cert(&cert, &key) == -1 ||
	    common_file_write(E.cafile, cert, strlen(cert), 0644) == -1 ||
	    (tls = server_tls_ctx(cert, key)) == NULL) {
		fprintf(stderr, "env: TLS setup failed\n");
		goto fail;
	}
	if ((E.cf = conf_defaults()) == NULL)
		goto fail;
	t_setstr(&E.cf->data_dir, E.dir);
	t_setstr(&E.cf->listen.mgmt, "");
	t_setstr(&E.cf->listen.http, "127.0.0.1:0");
	t_setstr(&E.cf->listen.https, "127.0.0.1:0");
	E.cf->workers = 2;
	E.cf->access_log = false;
	E.cf->acme.http01_port = E.rport;
	E.cf->acme.validation_timeout_seconds = 5;
	E.cf->acme.retry_after_seconds = 1;
	E.cf->acme.max_identifiers = 5;
	if ((E.st = store_open(E.dir)) == NULL)
		goto fail;
	memset(&cacfg, 0, sizeof(cacfg));
	cacfg.data_dir = E.dir;
	cacfg.http_base_url = "http://127.0.0.1:8080";
	if ((E.ca = ca_ctx_new(E.st, &cacfg)) == NULL ||
	    (E.lc = lifecycle_new(E.ca, &lccfg)) == NULL)
		goto fail;
	memset(&h, 0, sizeof(h));
	h.ca = E.ca;
	if (store_txn_run(E.st, t_hier_txn, &h) != 0) {
		fprintf(stderr, "env: CA hierarchy: %s\n", h.err.msg);
		free(h.issuing_id);
		goto fail;
	}
	E.ca_id = h.issuing_id;
	if ((E.srv = server_new(E.cf, tls)) == NULL ||
	    lifecycle_crl_start(E.lc, server_jobs_base(E.srv)) == -1)
		goto fail;
	/* base "…:0": learned from the bound listener; ca_id "": the
	 * issuing CA recorded in meta, as pkid init leaves it. */
	if ((E.acme = acme_new(E.srv, E.lc, E.cf, "https://127.0.0.1:0",
	    "")) == NULL) {
		fprintf(stderr, "env: acme_new failed\n");
		goto fail;
	}
	if (pthread_create(&E.thr, NULL, t_server_thread, NULL) != 0)
		goto fail;
	E.running = true;
	for (i = 0; i < T_BIND_TRIES; i++) {
		if ((bound = server_bound(E.srv, SERVER_HTTPS)) != NULL &&
		    strcmp(strrchr(bound, ':'), ":0") != 0)
			break;
		bound = NULL;
		usleep(50 * 1000);
	}
	if (bound == NULL) {
		fprintf(stderr, "env: https listener never bound\n");
		goto fail;
	}
	snprintf(E.base, sizeof(E.base), "https://%s", bound);
	snprintf(E.dirurl, sizeof(E.dirurl), "%s/acme/directory", E.base);
	SSL_CTX_free(tls);
	free(cert);
	free(key);
	return true;
fail:
	SSL_CTX_free(tls);
	free(cert);
	free(key);
	E.up = false;
	CHECK(!"environment setup failed");
	return false;
}

/* ---- HTTP --------------------------------------------------------------- */

static size_t
t_body_cb(char *p, size_t size, size_t n, void *arg)
{
	struct t_resp *r = arg;
	size_t add = size * n;
	char *nb;

	if (r->len + add > T_BODY_MAX ||
	    (nb = realloc(r->body, r->len + add + 1)) == NULL)
		return 0;
	memcpy(nb + r->len, p, add);
	r->body = nb;
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t
t_hdr_cb(char *p, size_t size, size_t n, void *arg)
{
	struct t_resp *r = arg;
	size_t add = size * n;

	if (r->hlen + add < sizeof(r->hdrs)) {
		memcpy(r->hdrs + r->hlen, p, add);
		r->hlen += add;
		r->hdrs[r->hlen] = '\0';
	}
	return add;
}

/* The value of the first header name (case-insensitive) into out; NULL
 * when absent. */
static const char *
t_hdr(const struct t_resp *r, const char *name, char *out, size_t outlen)
{
	const char *line = r->hdrs, *end, *v;
	size_t n = strlen(name);

	while (*line != '\0') {
		end = strstr(line, "\r\n");
		if (end == NULL)
			end = line + strlen(line);
		if ((size_t)(end - line) > n && strncasecmp(line, name, n) ==
		    0 && line[n] == ':') {
			for (v = line + n + 1; *v == ' '; v++)
				;
			snprintf(out, outlen, "%.*s", (int)(end - v), v);
			return out;
		}
		line = *end != '\0' ? end + 2 : end;
	}
	return NULL;
}

/* True when some header line contains both name and text. */
static bool
t_hdr_has(const struct t_resp *r, const char *name, const char *text)
{
	const char *line = r->hdrs, *end;
	size_t n = strlen(name);
	char buf[T_URL_MAX * 2];

	while (*line != '\0') {
		end = strstr(line, "\r\n");
		if (end == NULL)
			end = line + strlen(line);
		snprintf(buf, sizeof(buf), "%.*s", (int)(end - line), line);
		if (strncasecmp(buf, name, n) == 0 && buf[n] == ':' &&
		    strstr(buf + n, text) != NULL)
			return true;
		line = *end != '\0' ? end + 2 : end;
	}
	return false;
}

/* One request; fills r and remembers its Replay-Nonce. 0 or -1. */
static int
t_http(const char *method, const char *url, const char *ctype,
    const char *body, size_t blen, struct t_resp *r)
{
	struct curl_slist *h = NULL;
	char hv[T_URL_MAX], nonce[T_NONCE_MAX];
	CURLcode cc;
	CURL *cu;

	memset(r, 0, sizeof(*r));
	if ((cu = curl_easy_init()) == NULL)
		return -1;
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_CAINFO, E.cafile);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(cu, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, t_body_cb);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, t_hdr_cb);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, r);
	if (ctype != NULL) {
		snprintf(hv, sizeof(hv), "Content-Type: %s", ctype);
		h = curl_slist_append(h, hv);
	}
	h = curl_slist_append(h, "Accept: text/html");	/* any is fine */
	if (body != NULL) {
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)blen);
	}
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	cc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(cu);
	curl_slist_free_all(h);
	if (cc != CURLE_OK && r->status == 0) {
		fprintf(stderr, "curl %s %s: %s\n", method, url,
		    curl_easy_strerror(cc));
		return -1;
	}
	if (r->body != NULL)
		r->json = json_loadb(r->body, r->len, 0, NULL);
	if (t_hdr(r, "Replay-Nonce", nonce, sizeof(nonce)) != NULL) {
		pthread_mutex_lock(&E.nlock);
		snprintf(E.nonce, sizeof(E.nonce), "%s", nonce);
		pthread_mutex_unlock(&E.nlock);
	}
	if (getenv("ACME_TEST_VERBOSE") != NULL)
		fprintf(stderr, "%s %s -> %ld %s\n", method, url, r->status,
		    r->body != NULL ? r->body : "");
	return 0;
}

/* A fresh nonce (taken from the last response, else HEAD newNonce). */
static void
t_nonce(char *out, size_t outlen)
{
	struct t_resp r;
	char url[T_URL_MAX];

	pthread_mutex_lock(&E.nlock);
	snprintf(out, outlen, "%s", E.nonce);
	E.nonce[0] = '\0';
	pthread_mutex_unlock(&E.nlock);
	if (*out != '\0')
		return;
	snprintf(url, sizeof(url), "%s/acme/new-nonce", E.base);
	if (t_http("HEAD", url, NULL, NULL, 0, &r) == 0)
		t_hdr(&r, "Replay-Nonce", out, outlen);
	pthread_mutex_lock(&E.nlock);
	E.nonce[0] = '\0';
	pthread_mutex_unlock(&E.nlock);
	t_resp_free(&r);
}

static const char *
t_str(const json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* The problem type without its URN prefix, or "". */
static const char *
t_ptype(const struct t_resp *r)
{
	const char *t = t_str(r->json, "type");
	size_t n = strlen(ACME_ERR_PREFIX);

	if (t == NULL || strncmp(t, ACME_ERR_PREFIX, n) != 0)
		return "";
	return t + n;
}

/* ---- JWS client --------------------------------------------------------- */

/* base64url of a BIGNUM parameter of k, padded to pad bytes (0: none). */
static json_t *
t_bn_b64(EVP_PKEY *k, const char *param, int pad)
{
	unsigned char buf[1024];
	BIGNUM *bn = NULL;
	char *s;
	json_t *j = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(k, param, &bn) != 1)
		return NULL;
	n = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	BN_free(bn);
	if (n <= 0 || (s = common_b64_encode(buf, (size_t)n, true, 0)) == NULL)
		return NULL;
	j = json_string(s);
	free(s);
	return j;
}

/* The public JWK of k. */
static json_t *
t_jwk(EVP_PKEY *k)
{
	if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA)
		return json_pack("{s:s,s:o,s:o}", "kty", "RSA", "n",
		    t_bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0), "e",
		    t_bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0));
	return json_pack("{s:s,s:s,s:o,s:o}", "kty", "EC", "crv", "P-256",
	    "x", t_bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, T_ES256_COORD),
	    "y", t_bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, T_ES256_COORD));
}

static bool
t_key_new(struct t_key *k, bool rsa)
{
	memset(k, 0, sizeof(*k));
	k->k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	k->alg = rsa ? "RS256" : "ES256";
	if (k->k != NULL)
		k->jwk = t_jwk(k->k);
	CHECK(k->k != NULL && k->jwk != NULL);
	return k->k != NULL && k->jwk != NULL;
}

/* JWS signature of input with k (RS256, or ES256 as raw r||s). */
static char *
t_sign(EVP_PKEY *k, const char *input)
{
	unsigned char sig[1024], raw[2 * T_ES256_COORD];
	const unsigned char *p = sig;
	const BIGNUM *r, *s;
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	char *out = NULL;

	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    k) != 1 || EVP_DigestSign(md, sig, &siglen,
	    (const unsigned char *)input, strlen(input)) != 1)
		goto out;
	if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
		out = common_b64_encode(sig, siglen, true, 0);
		goto out;
	}
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)siglen)) == NULL)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	BN_bn2binpad(r, raw, T_ES256_COORD);
	BN_bn2binpad(s, raw + T_ES256_COORD, T_ES256_COORD);
	out = common_b64_encode(raw, sizeof(raw), true, 0);
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return out;
}

/* How to spoil a JWS for the error tests. */
struct t_jws_opt {
	const char	*alg;		/* claimed alg instead of the key's */
	const char	*nonce;		/* instead of a fresh one */
	bool		 no_nonce;
	bool		 jwk;		/* jwk even when the key has a kid */
	const char	*kid;		/* this kid instead */
	const char	*url;		/* header url instead of the target */
	bool		 bad_sig;	/* flip a signature byte */
	bool		 extra;		/* add an unprotected "header" */
};

/* A flattened JWS of payload (NULL: "" POST-as-GET) for url. */
static char *
t_jws(struct t_key *k, const char *url, const char *payload,
    const struct t_jws_opt *o)
{
	static const struct t_jws_opt none;
	char nonce[T_NONCE_MAX], *hdr = NULL, *ph = NULL, *pp = NULL;
	char *input = NULL, *sig = NULL, *out = NULL;
	json_t *prot, *jws = NULL;

	if (o == NULL)
		o = &none;
	if (o->nonce != NULL)
		snprintf(nonce, sizeof(nonce), "%s", o->nonce);
	else
		t_nonce(nonce, sizeof(nonce));
	prot = json_pack("{s:s,s:s}", "alg", o->alg != NULL ? o->alg : k->alg,
	    "url", o->url != NULL ? o->url : url);
	if (!o->no_nonce)
		json_object_set_new(prot, "nonce", json_string(nonce));
	if (o->kid != NULL)
		json_object_set_new(prot, "kid", json_string(o->kid));
	else if (k->kid[0] != '\0' && !o->jwk)
		json_object_set_new(prot, "kid", json_string(k->kid));
	else
		json_object_set(prot, "jwk", k->jwk);
	if ((hdr = json_dumps(prot, JSON_COMPACT)) == NULL ||
	    (ph = common_b64_encode(hdr, strlen(hdr), true, 0)) == NULL ||
	    (pp = common_b64_encode(payload != NULL ? payload : "",
	    payload != NULL ? strlen(payload) : 0, true, 0)) == NULL ||
	    asprintf(&input, "%s.%s", ph, pp) == -1 ||
	    (sig = t_sign(k->k, input)) == NULL)
		goto out;
	if (o->bad_sig)
		sig[3] = sig[3] == 'A' ? 'B' : 'A';
	jws = json_pack("{s:s,s:s,s:s}", "protected", ph, "payload", pp,
	    "signature", sig);
	if (o->extra)
		json_object_set_new(jws, "header", json_pack("{s:s}", "kid",
		    "x"));
	out = json_dumps(jws, JSON_COMPACT);
out:
	json_decref(prot);
	json_decref(jws);
	free(hdr);
	free(ph);
	free(pp);
	free(input);
	free(sig);
	return out;
}

/* POSTs a JWS by k to url; the status, or -1. */
static long
t_post_opt(struct t_key *k, const char *url, const char *payload,
    const struct t_jws_opt *o, struct t_resp *r)
{
	char *jws = t_jws(k, url, payload, o);
	int rc;

	memset(r, 0, sizeof(*r));
	if (jws == NULL)
		return -1;
	rc = t_http("POST", url, "application/jose+json", jws, strlen(jws), r);
	free(jws);
	return rc == -1 ? -1 : r->status;
}

static long
t_post(struct t_key *k, const char *url, const char *payload,
    struct t_resp *r)
{
	return t_post_opt(k, url, payload, NULL, r);
}

static void
t_url(char *out, size_t outlen, const char *rest)
{
	snprintf(out, outlen, "%s/acme/%s", E.base, rest);
}

/* Creates an account for k (201) and records its kid. */
static bool
t_account(struct t_key *k, bool rsa)
{
	struct t_resp r;
	char url[T_URL_MAX];
	bool ok;

	if (!t_key_new(k, rsa))
		return false;
	t_url(url, sizeof(url), "new-account");
	CHECK(t_post(k, url, "{\"termsOfServiceAgreed\":true,\"contact\":"
	    "[\"mailto:admin@example.com\"]}", &r) == 201);
	ok = r.status == 201 && t_hdr(&r, "Location", k->kid,
	    sizeof(k->kid)) != NULL;
	CHECK(ok);
	t_resp_free(&r);
	return ok;
}

/* A CSR of key for the given SANs ("IP:1.2.3.4,DNS:x"), CN optional,
 * signed with md; base64url DER (to free()). */
static char *
t_csr_md(EVP_PKEY *key, const char *cn, const char *sans, const EVP_MD *md)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	unsigned char *der = NULL;
	X509_REQ *req = NULL;
	char *out = NULL;
	int n;

	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_pubkey(req, key) != 1)
		goto out;
	if (cn != NULL)
		X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req),
		    "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	if (sans != NULL) {
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL ||
		    (ext = X509V3_EXT_conf_nid(NULL, NULL,
		    NID_subject_alt_name, sans)) == NULL ||
		    sk_X509_EXTENSION_push(exts, ext) == 0)
			goto out;
		ext = NULL;
		if (X509_REQ_add_extensions(req, exts) != 1)
			goto out;
	}
	if (X509_REQ_sign(req, key, md) == 0 ||
	    (n = i2d_X509_REQ(req, &der)) <= 0)
		goto out;
	out = common_b64_encode(der, (size_t)n, true, 0);
out:
	OPENSSL_free(der);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return out;
}

static char *
t_csr(EVP_PKEY *key, const char *cn, const char *sans)
{
	return t_csr_md(key, cn, sans, EVP_sha256());
}

/* {"csr": ...} payload (to free()). */
static char *
t_csr_payload(EVP_PKEY *key, const char *cn, const char *sans)
{
	char *csr = t_csr(key, cn, sans), *p = NULL;

	if (csr != NULL && asprintf(&p, "{\"csr\":\"%s\"}", csr) == -1)
		p = NULL;
	free(csr);
	return p;
}

/* POST-as-GETs url until its "status" is want or final; the last one. */
static json_t *
t_poll(struct t_key *k, const char *url, const char *want)
{
	struct t_resp r;
	json_t *j = NULL;
	const char *s;
	int i;

	for (i = 0; i < T_POLL_TRIES; i++) {
		if (t_post(k, url, NULL, &r) != 200) {
			t_resp_free(&r);
			break;
		}
		j = json_incref(r.json);
		t_resp_free(&r);
		s = t_str(j, "status");
		if (s == NULL || strcmp(s, want) == 0 ||
		    strcmp(s, "invalid") == 0 || strcmp(s, "valid") == 0)
			return j;
		json_decref(j);
		j = NULL;
		usleep(100 * 1000);
	}
	return j;
}

/* newOrder for the identifiers JSON; the order object and its URL. */
static json_t *
t_order(struct t_key *k, const char *idents, char *loc, size_t loclen)
{
	struct t_resp r;
	char url[T_URL_MAX], *payload = NULL;
	json_t *o = NULL;

	t_url(url, sizeof(url), "new-order");
	if (asprintf(&payload, "{\"identifiers\":%s}", idents) == -1)
		return NULL;
	CHECK(t_post(k, url, payload, &r) == 201);
	if (r.status == 201) {
		CHECK(t_hdr(&r, "Location", loc, loclen) != NULL);
		o = json_incref(r.json);
	}
	t_resp_free(&r);
	free(payload);
	return o;
}

/* The key authorization of token for k. */
static void
t_keyauth(struct t_key *k, const char *token, char *out, size_t outlen)
{
	struct acme_prob p;
	char thumb[ACME_THUMB_MAX];

	memset(&p, 0, sizeof(p));
	thumb[0] = '\0';
	CHECK(acme_jwk_thumbprint(k->jwk, thumb, sizeof(thumb)) == 0);
	snprintf(out, outlen, "%s.%s", token, thumb);
}

/* Answers the http-01 challenge of the first authorization of order o
 * (serving body, or the right key authorization when body is NULL);
 * returns the authorization after validation. */
static json_t *
t_http01(struct t_key *k, const json_t *o, const char *body)
{
	struct t_resp r;
	char ka[T_KEYAUTH_MAX], up[T_URL_MAX], link[T_URL_MAX];
	const char *azurl = json_string_value(json_array_get(
	    json_object_get(o, "authorizations"), 0));
	const char *churl = NULL, *token = NULL, *cs;
	json_t *az = NULL, *c;
	size_t i;

	if (azurl == NULL)
		return NULL;
	CHECK(t_post(k, azurl, NULL, &r) == 200);
	json_array_foreach(json_object_get(r.json, "challenges"), i, c)
		if (strcmp(t_str(c, "type"), "http-01") == 0) {
			churl = t_str(c, "url");
			token = t_str(c, "token");
			break;
		}
	CHECK(churl != NULL && token != NULL);
	if (churl == NULL || token == NULL) {
		t_resp_free(&r);
		return NULL;
	}
	CHECK(strlen(token) == 43);	/* 32 random bytes */
	t_keyauth(k, token, ka, sizeof(ka));
	t_responder_set(token, body != NULL ? body : ka);
	snprintf(up, sizeof(up), "%s", churl);
	t_resp_free(&r);

	/* the responder answers at once: the response waits for the
	 * validation's result instead of saying "processing" */
	CHECK(t_post(k, up, "{}", &r) == 200);
	cs = t_str(r.json, "status") != NULL ? t_str(r.json, "status") : "";
	CHECK(strcmp(cs, "valid") == 0 || strcmp(cs, "invalid") == 0);
	if (body != NULL)	/* a wrong key authorization */
		CHECK_STR(cs, "invalid");
	CHECK(strcmp(cs, "valid") != 0 || t_str(r.json, "validated") != NULL);
	CHECK(strcmp(cs, "invalid") != 0 || json_is_object(json_object_get(
	    r.json, "error")));
	snprintf(link, sizeof(link), "<%s>;rel=\"up\"", azurl);
	CHECK(t_hdr_has(&r, "Link", link));
	CHECK(t_hdr(&r, "Retry-After", link, sizeof(link)) == NULL);
	t_resp_free(&r);
	/* a second response to a started challenge changes nothing */
	CHECK(t_post(k, up, "{}", &r) == 200);
	CHECK(t_str(r.json, "status") != NULL &&
	    strcmp(t_str(r.json, "status"), "pending") != 0);
	t_resp_free(&r);

	az = t_poll(k, azurl, "valid");
	return az;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_directory(void)
{
	struct t_resp r;
	char url[T_URL_MAX], v[T_URL_MAX], link[T_URL_MAX];
	json_t *meta;

	if (!t_env())
		return;
	CHECK(t_http("GET", E.dirurl, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 200);
	t_url(url, sizeof(url), "new-nonce");
	CHECK_STR(t_str(r.json, "newNonce"), url);
	t_url(url, sizeof(url), "new-account");
	CHECK_STR(t_str(r.json, "newAccount"), url);
	t_url(url, sizeof(url), "new-order");
	CHECK_STR(t_str(r.json, "newOrder"), url);
	t_url(url, sizeof(url), "revoke-cert");
	CHECK_STR(t_str(r.json, "revokeCert"), url);
	t_url(url, sizeof(url), "key-change");
	CHECK_STR(t_str(r.json, "keyChange"), url);
	t_url(url, sizeof(url), "renewal-info");
	CHECK_STR(t_str(r.json, "renewalInfo"), url);
	meta = json_object_get(r.json, "meta");
	CHECK(json_is_false(json_object_get(meta, "externalAccountRequired")));
	CHECK(json_is_string(json_object_get(json_object_get(meta,
	    "profiles"), "tls_server")));
	CHECK(json_object_size(json_object_get(meta, "profiles")) ==
	    E.cf->acme.nprofiles);
	CHECK(t_hdr(&r, "Replay-Nonce", v, sizeof(v)) != NULL);
	snprintf(link, sizeof(link), "<%s>;rel=\"index\"", E.dirurl);
	CHECK(t_hdr_has(&r, "Link", link));
	CHECK(t_hdr(&r, "Content-Type", v, sizeof(v)) != NULL &&
	    strncmp(v, "application/json", 16) == 0);
	t_resp_free(&r);

	/* newNonce: HEAD 200, GET 204, never cached */
	t_url(url, sizeof(url), "new-nonce");
	CHECK(t_http("HEAD", url, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 200);
	CHECK(t_hdr(&r, "Replay-Nonce", v, sizeof(v)) != NULL &&
	    strlen(v) == 32);
	CHECK(t_hdr_has(&r, "Cache-Control", "no-store"));
	CHECK(t_hdr_has(&r, "Link", "rel=\"index\""));
	t_resp_free(&r);
	CHECK(t_http("GET", url, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 204);
	CHECK(t_hdr(&r, "Replay-Nonce", v, sizeof(v)) != NULL);
	CHECK(t_hdr_has(&r, "Cache-Control", "no-store"));
	t_resp_free(&r);

	/* unknown resource, wrong method: problems with a nonce */
	t_url(url, sizeof(url), "nope");
	CHECK(t_http("GET", url, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 404);
	CHECK_STR(t_ptype(&r), "malformed");
	CHECK(t_hdr(&r, "Content-Type", v, sizeof(v)) != NULL &&
	    strcmp(v, "application/problem+json") == 0);
	CHECK(t_hdr(&r, "Replay-Nonce", v, sizeof(v)) != NULL);
	CHECK(json_integer_value(json_object_get(r.json, "status")) == 404);
	t_resp_free(&r);
	t_url(url, sizeof(url), "new-account");
	CHECK(t_http("GET", url, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 405);
	CHECK_STR(t_ptype(&r), "malformed");
	CHECK(t_hdr_has(&r, "Allow", "POST"));
	t_resp_free(&r);
	CHECK(t_http("POST", E.dirurl, "application/jose+json", "{}", 2,
	    &r) == 0);
	CHECK(r.status == 405);
	t_resp_free(&r);
}

static void
test_nonce_unit(void)
{
	struct acme_nonces *n = acme_nonces_new();
	char a[ACME_NONCE_MAX], b[ACME_NONCE_MAX], forged[ACME_NONCE_MAX];
	int i;

	CHECK(n != NULL);
	if (n == NULL)
		return;
	CHECK(acme_nonce_issue(n, a, sizeof(a)) == 0);
	CHECK(acme_nonce_issue(n, b, sizeof(b)) == 0);
	CHECK(strlen(a) == 32 && strcmp(a, b) != 0);
	CHECK(acme_nonce_redeem(n, b));
	CHECK(!acme_nonce_redeem(n, b));	/* once */
	CHECK(acme_nonce_redeem(n, a));	/* order does not matter */
	CHECK(!acme_nonce_redeem(n, a));
	CHECK(acme_nonce_issue(n, a, sizeof(a)) == 0);
	snprintf(forged, sizeof(forged), "%s", a);
	forged[20] = forged[20] == 'A' ? 'B' : 'A';
	CHECK(!acme_nonce_redeem(n, forged));
	CHECK(!acme_nonce_redeem(n, ""));
	CHECK(!acme_nonce_redeem(n, NULL));
	CHECK(!acme_nonce_redeem(n, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	/* a nonce of another process key */
	{
		struct acme_nonces *o = acme_nonces_new();

		CHECK(acme_nonce_issue(o, b, sizeof(b)) == 0);
		CHECK(!acme_nonce_redeem(n, b));
		acme_nonces_free(o);
	}
	/* still valid within the window, gone once it slid past */
	for (i = 0; i < 1000; i++)
		acme_nonce_issue(n, b, sizeof(b));
	CHECK(acme_nonce_redeem(n, a));
	CHECK(acme_nonce_issue(n, a, sizeof(a)) == 0);
	for (i = 0; i < (int)ACME_NONCE_WINDOW; i++)
		acme_nonce_issue(n, b, sizeof(b));
	CHECK(!acme_nonce_redeem(n, a));
	CHECK(acme_nonce_redeem(n, b));
	acme_nonces_free(n);
	acme_nonces_free(NULL);
}

static void
test_nonce_http(void)
{
	struct t_jws_opt o;
	struct t_resp r;
	struct t_key k;
	char url[T_URL_MAX], nonce[T_NONCE_MAX];

	if (!t_env() || !t_key_new(&k, false))
		return;
	t_url(url, sizeof(url), "new-account");
	t_nonce(nonce, sizeof(nonce));
	memset(&o, 0, sizeof(o));
	o.nonce = nonce;
	CHECK(t_post_opt(&k, url, "{\"termsOfServiceAgreed\":true}", &o,
	    &r) == 201);
	t_resp_free(&r);
	/* reused */
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "badNonce");
	CHECK(t_str(r.json, "detail") != NULL && strncmp(t_str(r.json,
	    "detail"), "JWS has an invalid anti-replay nonce", 36) == 0);
	CHECK(t_hdr(&r, "Replay-Nonce", nonce, sizeof(nonce)) != NULL);
	t_resp_free(&r);
	/* forged */
	t_nonce(nonce, sizeof(nonce));
	nonce[5] = nonce[5] == 'x' ? 'y' : 'x';
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "badNonce");
	t_resp_free(&r);
	/* missing */
	memset(&o, 0, sizeof(o));
	o.no_nonce = true;
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "badNonce");
	t_resp_free(&r);
	/* the refusals did not hurt the account: it is found again */
	CHECK(t_post(&k, url, "{}", &r) == 200);
	t_resp_free(&r);
	t_key_free(&k);
}

static void
test_account(void)
{
	struct t_resp r;
	struct t_key k, rk;
	char url[T_URL_MAX], loc[T_KID_MAX], loc2[T_KID_MAX];
	char *orders = NULL;

	if (!t_env() || !t_key_new(&k, false) || !t_key_new(&rk, true))
		return;
	t_url(url, sizeof(url), "new-account");
	/* onlyReturnExisting without an account */
	CHECK(t_post(&k, url, "{\"onlyReturnExisting\":true}", &r) == 400);
	CHECK_STR(t_ptype(&r), "accountDoesNotExist");
	t_resp_free(&r);
	/* contacts */
	CHECK(t_post(&k, url, "{\"contact\":[\"tel:+1555\"]}", &r) == 400);
	CHECK_STR(t_ptype(&r), "unsupportedContact");
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"contact\":[\"mailto:a@b.com,c@d.com\"]}",
	    &r) == 400);
	CHECK_STR(t_ptype(&r), "invalidContact");
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"contact\":[\"mailto:nobody\"]}", &r) == 400);
	CHECK_STR(t_ptype(&r), "invalidContact");
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"contact\":\"mailto:a@b.com\"}", &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"contact\":[\"mailto:a@b.com\","
	    "\"mailto:a@b.com\","
	    "\"mailto:a@b.com\",\"mailto:a@b.com\",\"mailto:a@b.com\","
	    "\"mailto:a@b.com\",\"mailto:a@b.com\",\"mailto:a@b.com\","
	    "\"mailto:a@b.com\",\"mailto:a@b.com\",\"mailto:a@b.com\"]}", &r) ==
	    400);
	CHECK_STR(t_ptype(&r), "invalidContact");
	t_resp_free(&r);
	/* created: 201 + Location, then 200 with the same Location */
	CHECK(t_post(&k, url, "{\"termsOfServiceAgreed\":true,\"contact\":"
	    "[\"mailto:ops@example.com\"]}", &r) == 201);
	CHECK(t_hdr(&r, "Location", loc, sizeof(loc)) != NULL);
	CHECK(strncmp(loc, E.base, strlen(E.base)) == 0 &&
	    strstr(loc, "/acme/acct/acct-") != NULL);
	CHECK_STR(t_str(r.json, "status"), "valid");
	CHECK_STR(json_string_value(json_array_get(json_object_get(r.json,
	    "contact"), 0)),
	    "mailto:ops@example.com");
	CHECK(json_is_true(json_object_get(r.json, "termsOfServiceAgreed")));
	if (t_str(r.json, "orders") != NULL)
		orders = strdup(t_str(r.json, "orders"));
	CHECK(orders != NULL && strcmp(orders + strlen(orders) - 7,
	    "/orders") == 0);
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"onlyReturnExisting\":true}", &r) == 200);
	CHECK(t_hdr(&r, "Location", loc2, sizeof(loc2)) != NULL);
	CHECK_STR(loc2, loc);
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"contact\":[\"mailto:x@y.org\"]}", &r) ==
	    200);
	/* an existing account is returned as it is */
	CHECK_STR(json_string_value(json_array_get(json_object_get(r.json,
	    "contact"), 0)),
	    "mailto:ops@example.com");
	t_resp_free(&r);
	/* RSA account */
	CHECK(t_post(&rk, url, "{}", &r) == 201);
	CHECK(t_hdr(&r, "Location", loc2, sizeof(loc2)) != NULL);
	CHECK(strcmp(loc2, loc) != 0);
	t_resp_free(&r);

	/* update the contact, POST-as-GET the account */
	snprintf(k.kid, sizeof(k.kid), "%s", loc);
	CHECK(t_post(&k, loc, "{\"contact\":[\"mailto:new@example.com\"]}",
	    &r) == 200);
	CHECK_STR(json_string_value(json_array_get(json_object_get(r.json,
	    "contact"), 0)),
	    "mailto:new@example.com");
	t_resp_free(&r);
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	CHECK_STR(json_string_value(json_array_get(json_object_get(r.json,
	    "contact"), 0)),
	    "mailto:new@example.com");
	t_resp_free(&r);
	CHECK(t_post(&k, loc, "{\"status\":\"valid\"}", &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	/* another account's URL */
	snprintf(rk.kid, sizeof(rk.kid), "%s", loc2);
	CHECK(t_post(&rk, loc, NULL, &r) == 403);
	CHECK_STR(t_ptype(&r), "unauthorized");
	t_resp_free(&r);
	/* the orders list: empty */
	if (orders != NULL) {
		CHECK(t_post(&k, orders, NULL, &r) == 200);
		CHECK(json_array_size(json_object_get(r.json, "orders")) == 0);
		t_resp_free(&r);
		CHECK(t_post(&rk, orders, NULL, &r) == 403);
		t_resp_free(&r);
	}
	free(orders);
	t_key_free(&k);
	t_key_free(&rk);
}

static void
test_jws_refusals(void)
{
	struct t_jws_opt o;
	struct t_resp r;
	struct t_key k;
	char url[T_URL_MAX], other[T_URL_MAX], *big, *jws;
	const char *p;
	size_t i;

	if (!t_env() || !t_account(&k, false))
		return;
	t_url(url, sizeof(url), "new-order");
	/* wrong url */
	memset(&o, 0, sizeof(o));
	t_url(other, sizeof(other), "new-account");
	o.url = other;
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 403);
	CHECK_STR(t_ptype(&r), "unauthorized");
	t_resp_free(&r);
	/* bad signature */
	memset(&o, 0, sizeof(o));
	o.bad_sig = true;
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	CHECK(strstr(t_str(r.json, "detail"), "JWS verification error") !=
	    NULL);
	t_resp_free(&r);
	/* unsupported algorithms */
	memset(&o, 0, sizeof(o));
	o.alg = "none";
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "badSignatureAlgorithm");
	CHECK(json_array_size(json_object_get(r.json, "algorithms")) == 5);
	t_resp_free(&r);
	o.alg = "HS256";
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "badSignatureAlgorithm");
	t_resp_free(&r);
	o.alg = "RS256";	/* the key is EC: cannot verify */
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	/* alg none, empty signature */
	{
		char *j2 = t_jws(&k, url, "{}", NULL);
		json_t *jj = json_loads(j2, 0, NULL), *ph;
		char *hdr, *enc, *body;

		ph = json_pack("{s:s,s:s,s:s}", "alg", "none", "url", url,
		    "kid", k.kid);
		hdr = json_dumps(ph, JSON_COMPACT);
		enc = common_b64_encode(hdr, strlen(hdr), true, 0);
		json_object_set_new(jj, "protected", json_string(enc));
		json_object_set_new(jj, "signature", json_string(""));
		body = json_dumps(jj, JSON_COMPACT);
		CHECK(t_http("POST", url, "application/jose+json", body,
		    strlen(body), &r) == 0);
		CHECK(r.status == 400);
		CHECK_STR(t_ptype(&r), "badSignatureAlgorithm");
		t_resp_free(&r);
		free(body);
		free(enc);
		free(hdr);
		json_decref(ph);
		json_decref(jj);
		free(j2);
	}
	/* unknown kid */
	memset(&o, 0, sizeof(o));
	t_url(other, sizeof(other), "acct/acct-0000000000000000");
	o.kid = other;
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "accountDoesNotExist");
	t_resp_free(&r);
	o.kid = "https://elsewhere.example/acct/1";
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "accountDoesNotExist");
	t_resp_free(&r);
	/* jwk where kid is required, and an unprotected header */
	memset(&o, 0, sizeof(o));
	o.jwk = true;
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	memset(&o, 0, sizeof(o));
	o.extra = true;
	CHECK(t_post_opt(&k, url, "{}", &o, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	/* content type and shape */
	jws = t_jws(&k, url, "{}", NULL);
	CHECK(t_http("POST", url, "application/json", jws, strlen(jws), &r) ==
	    0);
	CHECK(r.status == 415);
	CHECK_STR(t_ptype(&r), "malformed");
	CHECK(t_hdr_has(&r, "Replay-Nonce", ""));
	t_resp_free(&r);
	free(jws);
	CHECK(t_http("POST", url, "application/jose+json", "a.b.c", 5, &r) ==
	    0);
	CHECK(r.status == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	/* oversized: 413 as a problem with a nonce */
	if ((big = malloc(ACME_JWS_MAX + 2)) != NULL) {
		memset(big, 'a', ACME_JWS_MAX + 1);
		big[ACME_JWS_MAX + 1] = '\0';
		CHECK(t_http("POST", url, "application/jose+json", big,
		    ACME_JWS_MAX + 1, &r) == 0);
		CHECK(r.status == 413);
		CHECK_STR(t_ptype(&r), "malformed");
		CHECK(t_hdr_has(&r, "Replay-Nonce", ""));
		t_resp_free(&r);
		free(big);
	}
	/* POST-as-GET where an object is needed; non-object payload */
	CHECK(t_post(&k, url, NULL, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	CHECK(t_post(&k, url, "[1]", &r) == 400);
	t_resp_free(&r);
	/* after all that the account still works and no order exists */
	p = strstr(k.kid, "/acme/acct/");
	snprintf(other, sizeof(other), "%s/orders", k.kid);
	CHECK(t_post(&k, other, NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "orders")) == 0);
	t_resp_free(&r);
	(void)p;
	(void)i;
	t_key_free(&k);
}

/* Verifies the PEM chain: leaf first, ends in a self-signed root; the
 * leaf names want_ip. Returns the leaf (caller frees). */
static X509 *
t_chain_verify(const char *pem, size_t len, const char *want_ip)
{
	STACK_OF(X509) *sk = common_x509s_from_pem(pem, len, 8);
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *leaf = NULL, *root;
	ASN1_OCTET_STRING *ip = NULL;
	int i, ok = 0;

	CHECK(sk != NULL && sk_X509_num(sk) >= 3);
	if (sk == NULL || sk_X509_num(sk) < 2)
		goto out;
	leaf = sk_X509_value(sk, 0);
	root = sk_X509_value(sk, sk_X509_num(sk) - 1);
	CHECK(X509_check_issued(root, root) == X509_V_OK);
	if ((store = X509_STORE_new()) == NULL ||
	    X509_STORE_add_cert(store, root) != 1 ||
	    (untrusted = sk_X509_new_null()) == NULL ||
	    (ctx = X509_STORE_CTX_new()) == NULL)
		goto out;
	for (i = 1; i < sk_X509_num(sk) - 1; i++)
		sk_X509_push(untrusted, sk_X509_value(sk, i));
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1)
		goto out;
	ok = X509_verify_cert(ctx);
	CHECK(ok == 1);
	if (want_ip != NULL) {
		ip = a2i_IPADDRESS(want_ip);
		CHECK(X509_check_ip(leaf, ip->data, (size_t)ip->length, 0) ==
		    1);
	}
	X509_up_ref(leaf);
out:
	ASN1_OCTET_STRING_free(ip);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(untrusted);
	sk_X509_pop_free(sk, X509_free);
	return ok == 1 ? leaf : (X509_free(leaf), NULL);
}

/* certID (RFC 9773) of x into out. */
static void
t_certid(X509 *x, char *out, size_t outlen)
{
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
	const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
	unsigned char *der = NULL, *p;
	char *a, *s;
	int n;

	out[0] = '\0';
	if (aki == NULL || (n = i2d_ASN1_INTEGER(sn, &der)) <= 2)
		return;
	p = der + 2;	/* tag and (short) length */
	a = common_b64_encode(aki->data, (size_t)aki->length, true, 0);
	s = common_b64_encode(p, (size_t)n - 2, true, 0);
	snprintf(out, outlen, "%s.%s", a, s);
	free(a);
	free(s);
	OPENSSL_free(der);
}

/* base64url DER of x (to free()). */
static char *
t_cert_b64(X509 *x)
{
	unsigned char *der = NULL;
	char *s = NULL;
	int n;

	if ((n = i2d_X509(x, &der)) > 0)
		s = common_b64_encode(der, (size_t)n, true, 0);
	OPENSSL_free(der);
	return s;
}

/* True when the DER CRL at path lists serial (upper-case hex). */
static bool
t_crl_lists(const char *path, const char *serial)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	X509_CRL *crl = NULL;
	STACK_OF(X509_REVOKED) *revs;
	BIGNUM *bn = NULL;
	char *hex;
	size_t len;
	bool found = false;
	int i;

	if (common_file_read(path, 16 * 1024 * 1024, (char **)&der,
	    &len) == -1)
		return false;
	p = der;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL)
		goto out;
	revs = X509_CRL_get_REVOKED(crl);
	for (i = 0; i < sk_X509_REVOKED_num(revs) && !found; i++) {
		bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(
		    sk_X509_REVOKED_value(revs, i)), NULL);
		if (bn != NULL && (hex = BN_bn2hex(bn)) != NULL) {
			found = strcasecmp(hex, serial) == 0;
			OPENSSL_free(hex);
		}
		BN_free(bn);
	}
out:
	X509_CRL_free(crl);
	free(der);
	return found;
}

static void
test_order_flow(void)
{
	struct t_resp r;
	struct t_key k;
	char loc[T_URL_MAX], url[T_URL_MAX], fin[T_URL_MAX];
	char certurl[T_URL_MAX], certid[T_KID_MAX], serial[64];
	char path[T_PATH_MAX];
	char *payload = NULL, *b64 = NULL;
	json_t *o = NULL, *az = NULL, *ch, *issued = NULL;
	EVP_PKEY *ck = NULL;
	X509 *leaf = NULL;
	struct common_error err;
	struct stat sb;
	size_t i;

	if (!t_env() || !t_account(&k, false))
		return;
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    sizeof(loc));
	CHECK(o != NULL);
	if (o == NULL)
		goto out;
	CHECK_STR(t_str(o, "status"), "pending");
	CHECK(t_str(o, "expires") != NULL);
	CHECK_STR(t_str(o, "profile"), "tls_server");
	CHECK(json_array_size(json_object_get(o, "authorizations")) == 1);
	CHECK(json_object_get(o, "certificate") == NULL);
	snprintf(fin, sizeof(fin), "%s", t_str(o, "finalize"));
	CHECK(strcmp(fin + strlen(fin) - 9, "/finalize") == 0);

	/* the authorization offers http-01 and tls-alpn-01 for an IP */
	CHECK(t_post(&k, json_string_value(json_array_get(json_object_get(o,
	    "authorizations"), 0)), NULL, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "pending");
	CHECK_STR(t_str(json_object_get(r.json, "identifier"), "value"),
	    "127.0.0.1");
	CHECK(json_array_size(json_object_get(r.json, "challenges")) == 2);
	json_array_foreach(json_object_get(r.json, "challenges"), i, ch)
		CHECK(strcmp(t_str(ch, "type"), "dns-01") != 0);
	CHECK(t_hdr_has(&r, "Retry-After", ""));
	t_resp_free(&r);

	/* finalize before ready */
	ck = EVP_EC_gen("P-256");
	payload = t_csr_payload(ck, NULL, "IP:127.0.0.1");
	CHECK(t_post(&k, fin, payload, &r) == 403);
	CHECK_STR(t_ptype(&r), "orderNotReady");
	t_resp_free(&r);

	/* http-01 through the responder */
	az = t_http01(&k, o, NULL);
	CHECK(az != NULL);
	CHECK_STR(t_str(az, "status"), "valid");
	ch = json_array_get(json_object_get(az, "challenges"), 0);
	CHECK(json_array_size(json_object_get(az, "challenges")) == 1);
	CHECK_STR(t_str(ch, "type"), "http-01");
	CHECK_STR(t_str(ch, "status"), "valid");
	CHECK(t_str(ch, "validated") != NULL);
	/* orders are read with POST-as-GET only */
	CHECK(t_post(&k, loc, "{}", &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	/* the order turned ready in the same transaction */
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "ready");
	CHECK(!t_hdr_has(&r, "Retry-After", ""));
	t_resp_free(&r);

	/* finalize: 200, valid, certificate URL; again: unchanged */
	CHECK(t_post(&k, fin, payload, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "valid");
	CHECK(t_str(r.json, "certificate") != NULL);
	snprintf(certurl, sizeof(certurl), "%s",
	    t_str(r.json, "certificate") != NULL ?
	    t_str(r.json, "certificate") : "");
	t_resp_free(&r);
	CHECK(t_post(&k, fin, payload, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "valid");
	CHECK_STR(t_str(r.json, "certificate"), certurl);
	t_resp_free(&r);

	/* download: leaf + chain verifying up to the root */
	CHECK(t_post(&k, certurl, NULL, &r) == 200);
	CHECK(t_hdr_has(&r, "Content-Type",
	    "application/pem-certificate-chain"));
	if (r.body != NULL)
		leaf = t_chain_verify(r.body, r.len, "127.0.0.1");
	CHECK(leaf != NULL);
	if (leaf != NULL) {
		/* the leaf first, written as OpenSSL writes PEM */
		char *lp = common_x509_to_pem(leaf);

		CHECK(lp != NULL && r.body != NULL && r.len > strlen(lp) &&
		    strncmp(r.body, lp, strlen(lp)) == 0);
		free(lp);
	}
	t_resp_free(&r);
	if (leaf == NULL)
		goto out;
	CHECK(EVP_PKEY_eq(X509_get0_pubkey(leaf), ck) == 1);
	common_x509_serial_hex(leaf, serial, sizeof(serial));
	CHECK(strstr(certurl, serial) != NULL);
	/* the serial in lower case names the same certificate */
	{
		char lower[T_URL_MAX], *p;

		snprintf(lower, sizeof(lower), "%s", certurl);
		for (p = strrchr(lower, '/'); p != NULL && *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		CHECK(t_post(&k, lower, NULL, &r) == 200);
		CHECK(t_hdr_has(&r, "Content-Type",
		    "application/pem-certificate-chain"));
		t_resp_free(&r);
	}
	/* in the registry, from ACME */
	common_error_clear(&err);
	issued = lifecycle_issued_get(E.lc, serial, &err);
	CHECK_STR(t_str(issued, "origin"), "acme");
	CHECK(t_str(issued, "cert_id") != NULL);

	/* another account may not download it */
	{
		struct t_key other;

		if (t_account(&other, true)) {
			CHECK(t_post(&other, certurl, NULL, &r) == 403);
			CHECK_STR(t_ptype(&r), "unauthorized");
			t_resp_free(&r);
			/* nor revoke it */
			b64 = t_cert_b64(leaf);
			free(payload);
			if (asprintf(&payload, "{\"certificate\":\"%s\"}",
			    b64) == -1)
				payload = NULL;
			t_url(url, sizeof(url), "revoke-cert");
			CHECK(t_post(&other, url, payload, &r) == 403);
			CHECK_STR(t_ptype(&r), "unauthorized");
			t_resp_free(&r);
			free(b64);
			b64 = NULL;
		}
		t_key_free(&other);
	}

	/* the orders list names the order */
	snprintf(url, sizeof(url), "%s/orders", k.kid);
	CHECK(t_post(&k, url, NULL, &r) == 200);
	CHECK_STR(json_string_value(json_array_get(json_object_get(r.json,
	    "orders"), 0)), loc);
	t_resp_free(&r);

	/* ARI: a window in the last third of the lifetime */
	t_certid(leaf, certid, sizeof(certid));
	snprintf(url, sizeof(url), "%s/acme/renewal-info/%s", E.base, certid);
	CHECK(t_http("GET", url, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 200);
	CHECK(t_hdr_has(&r, "Retry-After", "21600"));
	CHECK(t_str(json_object_get(r.json, "suggestedWindow"), "start") !=
	    NULL);
	CHECK(t_str(json_object_get(r.json, "suggestedWindow"), "end") !=
	    NULL);
	t_resp_free(&r);
	snprintf(url, sizeof(url), "%s/acme/renewal-info/AAAA.AQ", E.base);
	CHECK(t_http("GET", url, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 404);
	t_resp_free(&r);
	snprintf(url, sizeof(url), "%s/acme/renewal-info/nodot", E.base);
	CHECK(t_http("GET", url, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 400);
	t_resp_free(&r);

	/* revoke by the ordering account: reason 8 is refused first */
	b64 = t_cert_b64(leaf);
	free(payload);
	if (asprintf(&payload, "{\"certificate\":\"%s\",\"reason\":8}",
	    b64) == -1)
		payload = NULL;
	t_url(url, sizeof(url), "revoke-cert");
	CHECK(t_post(&k, url, payload, &r) == 400);
	CHECK_STR(t_ptype(&r), "badRevocationReason");
	t_resp_free(&r);
	free(payload);
	if (asprintf(&payload, "{\"certificate\":\"%s\",\"reason\":4}",
	    b64) == -1)
		payload = NULL;
	CHECK(t_post(&k, url, payload, &r) == 200);
	CHECK(r.len == 0);
	t_resp_free(&r);
	CHECK(t_post(&k, url, payload, &r) == 400);
	CHECK_STR(t_ptype(&r), "alreadyRevoked");
	t_resp_free(&r);
	json_decref(issued);
	issued = lifecycle_issued_get(E.lc, serial, &err);
	CHECK_STR(t_str(issued, "status"), "revoked");
	/* the revocation asks for a CRL rebuild (crl.debounce_seconds) */
	common_path(path, sizeof(path), "%s/public/crl/%s.crl", E.dir,
	    E.ca_id);
	for (i = 0; i < 100 && !t_crl_lists(path, serial); i++)
		usleep(100 * 1000);
	CHECK(t_crl_lists(path, serial));
	CHECK(stat(path, &sb) == 0 && sb.st_size > 0);
	/* ARI of a revoked certificate: renew now */
	snprintf(url, sizeof(url), "%s/acme/renewal-info/%s", E.base, certid);
	CHECK(t_http("GET", url, NULL, NULL, 0, &r) == 0);
	CHECK(r.status == 200);
	{
		char now[32];

		common_time_rfc3339(common_now(), now, sizeof(now));
		CHECK(strcmp(t_str(json_object_get(r.json, "suggestedWindow"),
		    "start"), now) < 0);
	}
	t_resp_free(&r);
out:
	X509_free(leaf);
	json_decref(issued);
	json_decref(o);
	json_decref(az);
	EVP_PKEY_free(ck);
	free(payload);
	free(b64);
	t_key_free(&k);
}

struct t_fin_thread {
	char		*jws;
	char		 url[T_URL_MAX];
	struct t_resp	 r;
};

static void *
t_fin_thread(void *arg)
{
	struct t_fin_thread *t = arg;

	t_http("POST", t->url, "application/jose+json", t->jws,
	    strlen(t->jws), &t->r);
	return NULL;
}

static void
test_finalize_checks(void)
{
	struct t_fin_thread th[2];
	pthread_t tid[2];
	struct t_resp r;
	struct t_key k;
	char loc[T_URL_MAX], fin[T_URL_MAX], *p;
	json_t *o = NULL, *az = NULL;
	EVP_PKEY *ck = EVP_EC_gen("P-256"), *rsa1024 = NULL;
	int i;

	if (!t_env() || !t_account(&k, false))
		goto out;
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    sizeof(loc));
	if (o == NULL)
		goto out;
	az = t_http01(&k, o, NULL);
	CHECK_STR(t_str(az, "status"), "valid");
	json_decref(o);
	/* the valid authorization is reused: the new order is ready at
	 * once and names the same authorization */
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    sizeof(loc));
	if (o == NULL)
		goto out;
	CHECK_STR(t_str(o, "status"), "ready");
	snprintf(fin, sizeof(fin), "%s", t_str(o, "finalize"));

	/* CSR / identifier mismatches */
	p = t_csr_payload(ck, NULL, "IP:127.0.0.2");
	CHECK(t_post(&k, fin, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "badCSR");
	t_resp_free(&r);
	free(p);
	p = t_csr_payload(ck, NULL, "IP:127.0.0.1,DNS:extra.example.com");
	CHECK(t_post(&k, fin, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "badCSR");
	CHECK(strstr(t_str(r.json, "detail"), "extra.example.com") != NULL);
	t_resp_free(&r);
	free(p);
	p = t_csr_payload(ck, "other.example.com", "IP:127.0.0.1");
	CHECK(t_post(&k, fin, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "badCSR");
	t_resp_free(&r);
	free(p);
	p = t_csr_payload(ck, NULL, NULL);
	CHECK(t_post(&k, fin, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "badCSR");
	t_resp_free(&r);
	free(p);
	p = t_csr_payload(k.k, NULL, "IP:127.0.0.1");	/* account key */
	CHECK(t_post(&k, fin, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "badCSR");
	t_resp_free(&r);
	free(p);
	rsa1024 = EVP_RSA_gen(1024);
	p = t_csr_payload(rsa1024, NULL, "IP:127.0.0.1");
	CHECK(t_post(&k, fin, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "badCSR");
	t_resp_free(&r);
	free(p);
	CHECK(t_post(&k, fin, "{\"csr\":\"!!\"}", &r) == 400);
	CHECK_STR(t_ptype(&r), "badCSR");
	t_resp_free(&r);
	{
		char *c1 = t_csr_md(ck, NULL, "IP:127.0.0.1", EVP_sha1());

		CHECK(c1 != NULL);
		if (c1 != NULL && asprintf(&p, "{\"csr\":\"%s\"}", c1) > 0) {
			CHECK(t_post(&k, fin, p, &r) == 400);
			CHECK_STR(t_ptype(&r), "badCSR");
			t_resp_free(&r);
			free(p);
		}
		free(c1);
	}
	/* the refusals stored nothing: still ready */
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "ready");
	t_resp_free(&r);

	/* two finalizes at once: one issues, both see the same result */
	p = t_csr_payload(ck, "127.0.0.1", "IP:127.0.0.1");
	memset(th, 0, sizeof(th));
	for (i = 0; i < 2; i++) {
		th[i].jws = t_jws(&k, fin, p, NULL);
		snprintf(th[i].url, sizeof(th[i].url), "%s", fin);
	}
	for (i = 0; i < 2; i++)
		pthread_create(&tid[i], NULL, t_fin_thread, &th[i]);
	for (i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	for (i = 0; i < 2; i++) {
		CHECK(th[i].r.status == 200);
		CHECK_STR(t_str(th[i].r.json, "status"), "valid");
	}
	CHECK_STR(t_str(th[0].r.json, "certificate"),
	    t_str(th[1].r.json, "certificate"));
	for (i = 0; i < 2; i++) {
		t_resp_free(&th[i].r);
		free(th[i].jws);
	}
	free(p);
out:
	json_decref(o);
	json_decref(az);
	EVP_PKEY_free(ck);
	EVP_PKEY_free(rsa1024);
	t_key_free(&k);
}

static void
test_order_refusals(void)
{
	struct t_resp r;
	struct t_key k;
	char url[T_URL_MAX], loc[T_URL_MAX];
	json_t *o = NULL, *sub;
	size_t i;

	if (!t_env() || !t_account(&k, false))
		return;
	t_url(url, sizeof(url), "new-order");
	CHECK(t_post(&k, url, "{\"identifiers\":[{\"type\":\"dns\",\"value\":"
	    "\"a.example.com\"}],\"notAfter\":\"2030-01-01T00:00:00Z\"}",
	    &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	CHECK(strstr(t_str(r.json, "detail"), "notBefore/notAfter") != NULL);
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"identifiers\":[{\"type\":\"dns\",\"value\":"
	    "\"a.example.com\"}],\"profile\":\"nope\"}", &r) == 400);
	CHECK_STR(t_ptype(&r), "invalidProfile");
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"identifiers\":[{\"type\":\"email\","
	    "\"value\":\"a@example.com\"}]}", &r) == 400);
	CHECK_STR(t_ptype(&r), "unsupportedIdentifier");
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{\"identifiers\":[]}", &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	/* bad names: one subproblem each, naming the identifier */
	CHECK(t_post(&k, url, "{\"identifiers\":["
	    "{\"type\":\"dns\",\"value\":\"ok.example.com\"},"
	    "{\"type\":\"dns\",\"value\":\"bad_name.example.com\"},"
	    "{\"type\":\"dns\",\"value\":\"a.*.example.com\"},"
	    "{\"type\":\"ip\",\"value\":\"300.1.1.1\"}]}", &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	CHECK(json_array_size(json_object_get(r.json, "subproblems")) == 3);
	json_array_foreach(json_object_get(r.json, "subproblems"), i, sub)
		CHECK(json_object_get(json_object_get(sub, "identifier"),
		    "value") != NULL);
	t_resp_free(&r);
	/* too many */
	CHECK(t_post(&k, url, "{\"identifiers\":["
	    "{\"type\":\"dns\",\"value\":\"a1.example.com\"},"
	    "{\"type\":\"dns\",\"value\":\"a2.example.com\"},"
	    "{\"type\":\"dns\",\"value\":\"a3.example.com\"},"
	    "{\"type\":\"dns\",\"value\":\"a4.example.com\"},"
	    "{\"type\":\"dns\",\"value\":\"a5.example.com\"},"
	    "{\"type\":\"dns\",\"value\":\"a6.example.com\"}]}", &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	/* DNS suffixes: refused as rejectedIdentifier */
	{
		char *sfx[] = { "example.org" };
		char **saved = E.cf->acme.dns_suffixes;
		size_t nsaved = E.cf->acme.nsuffixes;

		E.cf->acme.dns_suffixes = sfx;
		E.cf->acme.nsuffixes = 1;
		CHECK(t_post(&k, url, "{\"identifiers\":["
		    "{\"type\":\"dns\",\"value\":\"www.example.org\"},"
		    "{\"type\":\"dns\",\"value\":\"www.example.com\"}]}",
		    &r) == 400);
		CHECK_STR(t_ptype(&r), "rejectedIdentifier");
		CHECK(json_array_size(json_object_get(r.json,
		    "subproblems")) == 1);
		CHECK_STR(t_str(json_object_get(json_array_get(
		    json_object_get(r.json, "subproblems"), 0),
		    "identifier"), "value"), "www.example.com");
		t_resp_free(&r);
		E.cf->acme.dns_suffixes = saved;
		E.cf->acme.nsuffixes = nsaved;
	}

	/* wildcard: only dns-01; names normalised and de-duplicated */
	o = t_order(&k, "[{\"type\":\"dns\",\"value\":\"*.Example.COM\"},"
	    "{\"type\":\"dns\",\"value\":\"*.example.com\"},"
	    "{\"type\":\"ip\",\"value\":\"::0:1\"}]", loc, sizeof(loc));
	if (o != NULL) {
		CHECK(json_array_size(json_object_get(o, "identifiers")) == 2);
		CHECK_STR(t_str(json_array_get(json_object_get(o,
		    "identifiers"), 0), "value"), "*.example.com");
		CHECK_STR(t_str(json_array_get(json_object_get(o,
		    "identifiers"), 1), "value"), "::1");
		CHECK(t_post(&k, json_string_value(json_array_get(
		    json_object_get(o, "authorizations"), 0)), NULL, &r) ==
		    200);
		CHECK(json_is_true(json_object_get(r.json, "wildcard")));
		CHECK_STR(t_str(json_object_get(r.json, "identifier"),
		    "value"), "example.com");
		CHECK(json_array_size(json_object_get(r.json,
		    "challenges")) == 1);
		CHECK_STR(t_str(json_array_get(json_object_get(r.json,
		    "challenges"), 0), "type"), "dns-01");
		t_resp_free(&r);
		/* http-01 for the wildcard does not exist */
		snprintf(url, sizeof(url), "%s", json_string_value(
		    json_array_get(json_object_get(o, "authorizations"), 0)));
		{
			char *id = strrchr(url, '/');
			char cu[T_URL_MAX * 2];

			snprintf(cu, sizeof(cu), "%s/acme/chall%s/http-01",
			    E.base, id != NULL ? id : "/x");
			CHECK(t_post(&k, cu, "{}", &r) == 404);
			CHECK_STR(t_ptype(&r), "malformed");
			t_resp_free(&r);
		}
		/* a plain dns name gets all three challenges */
		json_decref(o);
		o = t_order(&k, "[{\"type\":\"dns\",\"value\":"
		    "\"www.example.net\"}]", loc, sizeof(loc));
		CHECK(t_post(&k, json_string_value(json_array_get(
		    json_object_get(o, "authorizations"), 0)), NULL, &r) ==
		    200);
		CHECK(json_array_size(json_object_get(r.json,
		    "challenges")) == 3);
		CHECK(json_object_get(r.json, "wildcard") == NULL);
		t_resp_free(&r);
	}
	json_decref(o);
	t_key_free(&k);
}

static void
test_validation_failures(void)
{
	struct t_resp r;
	struct t_key k;
	char loc[T_URL_MAX];
	json_t *o = NULL, *az = NULL, *ch, *err;

	if (!t_env() || !t_account(&k, true))	/* RSA account */
		return;
	/* wrong key authorization served */
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    sizeof(loc));
	if (o == NULL)
		goto out;
	az = t_http01(&k, o, "wrong.keyauthorization");
	CHECK_STR(t_str(az, "status"), "invalid");
	ch = json_array_get(json_object_get(az, "challenges"), 0);
	CHECK_STR(t_str(ch, "status"), "invalid");
	err = json_object_get(ch, "error");
	CHECK(t_str(err, "type") != NULL && strstr(t_str(err, "type"),
	    "urn:ietf:params:acme:error:") == t_str(err, "type"));
	CHECK(t_str(err, "detail") != NULL);
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "invalid");
	CHECK(json_object_get(r.json, "error") != NULL);
	t_resp_free(&r);
	json_decref(o);
	json_decref(az);
	az = NULL;
	/* refused connection: nothing listens on 127.0.0.2 */
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.2\"}]", loc,
	    sizeof(loc));
	if (o == NULL)
		goto out;
	az = t_http01(&k, o, NULL);
	CHECK_STR(t_str(az, "status"), "invalid");
	ch = json_array_get(json_object_get(az, "challenges"), 0);
	CHECK_STR(t_str(json_object_get(ch, "error"), "type"),
	    "urn:ietf:params:acme:error:connection");
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "invalid");
	t_resp_free(&r);
out:
	json_decref(o);
	json_decref(az);
	t_key_free(&k);
}

static void
test_deactivation(void)
{
	struct t_resp r;
	struct t_key k;
	char loc[T_URL_MAX], url[T_URL_MAX];
	const char *azurl;
	json_t *o = NULL;

	if (!t_env() || !t_account(&k, false))
		return;
	/* authorization deactivation invalidates its order */
	o = t_order(&k, "[{\"type\":\"dns\",\"value\":\"d.example.com\"}]",
	    loc, sizeof(loc));
	if (o == NULL)
		goto out;
	azurl = json_string_value(json_array_get(json_object_get(o,
	    "authorizations"), 0));
	CHECK(t_post(&k, azurl, "{\"status\":\"valid\"}", &r) == 400);
	t_resp_free(&r);
	CHECK(t_post(&k, azurl, "{\"status\":\"deactivated\"}", &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "deactivated");
	t_resp_free(&r);
	CHECK(t_post(&k, azurl, "{\"status\":\"deactivated\"}", &r) == 400);
	t_resp_free(&r);
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "invalid");
	t_resp_free(&r);

	/* account deactivation: later requests are unauthorized */
	CHECK(t_post(&k, k.kid, "{\"status\":\"deactivated\"}", &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "deactivated");
	t_resp_free(&r);
	CHECK(t_post(&k, k.kid, NULL, &r) == 403);
	CHECK_STR(t_ptype(&r), "unauthorized");
	t_resp_free(&r);
	t_url(url, sizeof(url), "new-order");
	CHECK(t_post(&k, url, "{\"identifiers\":[{\"type\":\"dns\","
	    "\"value\":\"e.example.com\"}]}", &r) == 403);
	CHECK_STR(t_ptype(&r), "unauthorized");
	t_resp_free(&r);
	/* and the key cannot come back through newAccount */
	k.kid[0] = '\0';
	t_url(url, sizeof(url), "new-account");
	CHECK(t_post(&k, url, "{}", &r) == 403);
	CHECK_STR(t_ptype(&r), "unauthorized");
	t_resp_free(&r);
out:
	json_decref(o);
	t_key_free(&k);
}

/* The inner JWS of a keyChange (no nonce; url of keyChange). */
static char *
t_keychange_inner(struct t_key *newk, struct t_key *oldk, const char *url)
{
	struct t_jws_opt o;
	struct t_key tmp = *newk;
	char *payload = NULL, *old = NULL, *jws;

	if ((old = json_dumps(oldk->jwk, JSON_COMPACT)) == NULL ||
	    asprintf(&payload, "{\"account\":\"%s\",\"oldKey\":%s}",
	    oldk->kid, old) == -1) {
		free(old);
		return NULL;
	}
	memset(&o, 0, sizeof(o));
	o.no_nonce = true;
	o.nonce = "unused";
	tmp.kid[0] = '\0';
	jws = t_jws(&tmp, url, payload, &o);
	free(payload);
	free(old);
	return jws;
}

static void
test_key_change(void)
{
	struct t_resp r;
	struct t_key k, nk, other;
	char url[T_URL_MAX], loc[T_URL_MAX], na[T_URL_MAX], *inner = NULL;

	memset(&nk, 0, sizeof(nk));
	memset(&other, 0, sizeof(other));
	if (!t_env() || !t_account(&k, true) || !t_key_new(&nk, true) ||
	    !t_account(&other, false))
		goto out;
	t_url(url, sizeof(url), "key-change");
	snprintf(nk.kid, sizeof(nk.kid), "%s", k.kid);
	/* the new key belongs to another account: 409 + its Location */
	inner = t_keychange_inner(&other, &k, url);
	CHECK(t_post(&k, url, inner, &r) == 409);
	CHECK_STR(t_ptype(&r), "conflict");
	CHECK(t_hdr(&r, "Location", loc, sizeof(loc)) != NULL);
	CHECK_STR(loc, other.kid);
	t_resp_free(&r);
	free(inner);
	/* oldKey that is not the account's key */
	inner = t_keychange_inner(&nk, &other, url);
	CHECK(t_post(&k, url, inner, &r) == 403);
	CHECK_STR(t_ptype(&r), "unauthorized");
	t_resp_free(&r);
	free(inner);
	/* inner url differs */
	t_url(na, sizeof(na), "new-account");
	inner = t_keychange_inner(&nk, &k, na);
	CHECK(t_post(&k, url, inner, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	free(inner);
	/* the real thing */
	inner = t_keychange_inner(&nk, &k, url);
	CHECK(t_post(&k, url, inner, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "valid");
	t_resp_free(&r);
	/* the old key no longer signs for the account, the new one does */
	CHECK(t_post(&k, k.kid, NULL, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	CHECK(t_post(&nk, nk.kid, NULL, &r) == 200);
	t_resp_free(&r);
	/* newAccount with the new key finds the same account */
	nk.kid[0] = '\0';
	CHECK(t_post(&nk, na, "{\"onlyReturnExisting\":true}", &r) == 200);
	CHECK(t_hdr(&r, "Location", loc, sizeof(loc)) != NULL);
	CHECK_STR(loc, k.kid);
	t_resp_free(&r);
	k.kid[0] = '\0';
	CHECK(t_post(&k, na, "{\"onlyReturnExisting\":true}", &r) == 400);
	CHECK_STR(t_ptype(&r), "accountDoesNotExist");
	t_resp_free(&r);
out:
	free(inner);
	t_key_free(&k);
	t_key_free(&nk);
	t_key_free(&other);
}

struct t_eab_put {
	const char	*kid;
	const char	*key_b64;
};

static int
t_eab_txn(struct store_txn *txn, void *arg)
{
	struct t_eab_put *e = arg;
	json_t *rec = json_pack("{s:s,s:s,s:s,s:b,s:n,s:s,s:n,s:s}", "kid",
	    e->kid, "hmac_key", e->key_b64, "alg", "HS256", "one_time", 1,
	    "used_by", "created_at", "2026-01-01T00:00:00Z", "expires_at",
	    "note", "test");
	int rc = store_eab_put(txn, e->kid, rec);

	json_decref(rec);
	return rc;
}

/* The externalAccountBinding JSON for k's jwk, signed with key. */
static char *
t_eab(struct t_key *k, const char *kid, const unsigned char *key,
    size_t keylen, const char *url)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *hdr = NULL, *ph = NULL, *jwk = NULL, *pp = NULL, *in = NULL;
	char *sig = NULL, *out = NULL;
	json_t *h = json_pack("{s:s,s:s,s:s}", "alg", "HS256", "kid", kid,
	    "url", url);

	if ((hdr = json_dumps(h, JSON_COMPACT)) == NULL ||
	    (ph = common_b64_encode(hdr, strlen(hdr), true, 0)) == NULL ||
	    (jwk = json_dumps(k->jwk, JSON_COMPACT)) == NULL ||
	    (pp = common_b64_encode(jwk, strlen(jwk), true, 0)) == NULL ||
	    asprintf(&in, "%s.%s", ph, pp) == -1 ||
	    HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)in,
	    strlen(in), mac, &maclen) == NULL ||
	    (sig = common_b64_encode(mac, maclen, true, 0)) == NULL ||
	    asprintf(&out, "{\"protected\":\"%s\",\"payload\":\"%s\","
	    "\"signature\":\"%s\"}", ph, pp, sig) == -1)
		out = NULL;
	json_decref(h);
	free(hdr);
	free(ph);
	free(jwk);
	free(pp);
	free(in);
	free(sig);
	return out;
}

static void
test_eab(void)
{
	struct t_eab_put put = { "eab-test-1", NULL };
	unsigned char key[32], wrong[32];
	struct t_resp r;
	struct t_key k, k2;
	char url[T_URL_MAX], *eab = NULL, *payload = NULL;

	memset(&k2, 0, sizeof(k2));
	if (!t_env() || !t_key_new(&k, false) || !t_key_new(&k2, true))
		goto out;
	RAND_bytes(key, sizeof(key));
	memset(wrong, 7, sizeof(wrong));
	put.key_b64 = common_b64_encode(key, sizeof(key), true, 0);
	CHECK(store_txn_run(E.st, t_eab_txn, &put) == 0);
	E.cf->acme.eab_required = true;
	t_url(url, sizeof(url), "new-account");
	/* the directory says so; an account without EAB is refused */
	CHECK(t_http("GET", E.dirurl, NULL, NULL, 0, &r) == 0);
	CHECK(json_is_true(json_object_get(json_object_get(r.json, "meta"),
	    "externalAccountRequired")));
	t_resp_free(&r);
	CHECK(t_post(&k, url, "{}", &r) == 400);
	CHECK_STR(t_ptype(&r), "externalAccountRequired");
	t_resp_free(&r);
	/* wrong HMAC key */
	eab = t_eab(&k, put.kid, wrong, sizeof(wrong), url);
	CHECK(asprintf(&payload, "{\"externalAccountBinding\":%s}", eab) > 0);
	CHECK(t_post(&k, url, payload, &r) == 403);
	CHECK_STR(t_ptype(&r), "unauthorized");
	t_resp_free(&r);
	free(eab);
	free(payload);
	/* unknown kid */
	eab = t_eab(&k, "eab-unknown", key, sizeof(key), url);
	CHECK(asprintf(&payload, "{\"externalAccountBinding\":%s}", eab) > 0);
	CHECK(t_post(&k, url, payload, &r) == 403);
	t_resp_free(&r);
	free(eab);
	free(payload);
	/* bound to another key (payload = k2's jwk) */
	eab = t_eab(&k2, put.kid, key, sizeof(key), url);
	CHECK(asprintf(&payload, "{\"externalAccountBinding\":%s}", eab) > 0);
	CHECK(t_post(&k, url, payload, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	free(eab);
	free(payload);
	/* right: 201 */
	eab = t_eab(&k, put.kid, key, sizeof(key), url);
	CHECK(asprintf(&payload, "{\"externalAccountBinding\":%s}", eab) > 0);
	CHECK(t_post(&k, url, payload, &r) == 201);
	t_resp_free(&r);
	free(eab);
	free(payload);
	/* one-time: a second account cannot use it */
	eab = t_eab(&k2, put.kid, key, sizeof(key), url);
	CHECK(asprintf(&payload, "{\"externalAccountBinding\":%s}", eab) > 0);
	CHECK(t_post(&k2, url, payload, &r) == 403);
	CHECK_STR(t_ptype(&r), "unauthorized");
	t_resp_free(&r);
	free(eab);
	free(payload);
	eab = payload = NULL;
	/* the bound account is found again without EAB */
	CHECK(t_post(&k, url, "{\"onlyReturnExisting\":true}", &r) == 200);
	t_resp_free(&r);
out:
	E.cf->acme.eab_required = false;
	free((char *)put.key_b64);
	free(eab);
	free(payload);
	t_key_free(&k);
	t_key_free(&k2);
}

static void
test_revoke_by_cert_key(void)
{
	struct t_resp r;
	struct t_key k, ck;
	char loc[T_URL_MAX], url[T_URL_MAX], *p = NULL, *b64 = NULL;
	json_t *o = NULL, *az = NULL;
	X509 *leaf = NULL;

	memset(&ck, 0, sizeof(ck));
	if (!t_env() || !t_account(&k, false) || !t_key_new(&ck, true))
		goto out;
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    sizeof(loc));
	if (o == NULL)
		goto out;
	az = t_http01(&k, o, NULL);
	CHECK_STR(t_str(az, "status"), "valid");
	p = t_csr_payload(ck.k, NULL, "IP:127.0.0.1");
	CHECK(t_post(&k, t_str(o, "finalize"), p, &r) == 200);
	snprintf(url, sizeof(url), "%s", t_str(r.json, "certificate") != NULL ?
	    t_str(r.json, "certificate") : "");
	t_resp_free(&r);
	CHECK(t_post(&k, url, NULL, &r) == 200);
	if (r.body != NULL)
		leaf = t_chain_verify(r.body, r.len, "127.0.0.1");
	t_resp_free(&r);
	if (leaf == NULL)
		goto out;
	b64 = t_cert_b64(leaf);
	free(p);
	CHECK(asprintf(&p, "{\"certificate\":\"%s\",\"reason\":1}", b64) > 0);
	t_url(url, sizeof(url), "revoke-cert");
	/* signed by the certificate's key with jwk */
	CHECK(t_post(&ck, url, p, &r) == 200);
	t_resp_free(&r);
	CHECK(t_post(&ck, url, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "alreadyRevoked");
	t_resp_free(&r);
out:
	X509_free(leaf);
	json_decref(o);
	json_decref(az);
	free(p);
	free(b64);
	t_key_free(&k);
	t_key_free(&ck);
}

/* A flattened JWS by key with alg and a jwk header, built by hand:
 * coord > 0 makes an ECDSA signature raw r||s of that size. */
static json_t *
t_jws_raw(EVP_PKEY *key, const char *alg, const json_t *jwk,
    const EVP_MD *md, size_t coord, bool flip)
{
	unsigned char sig[1024], raw[2 * 66];
	const unsigned char *p = sig;
	size_t siglen = sizeof(sig), rawlen = 0;
	char *hdr, *ph, *pp, *in = NULL, *sg = NULL;
	json_t *prot, *out = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;

	prot = json_pack("{s:s,s:s,s:s,s:O}", "alg", alg, "nonce", "n",
	    "url", "https://x/acme/new-account", "jwk", jwk);
	hdr = json_dumps(prot, JSON_COMPACT);
	ph = common_b64_encode(hdr, strlen(hdr), true, 0);
	pp = common_b64_encode("{}", 2, true, 0);
	if (asprintf(&in, "%s.%s", ph, pp) == -1 ||
	    EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)in,
	    strlen(in)) != 1)
		goto out;
	if (coord > 0) {
		if ((es = d2i_ECDSA_SIG(NULL, &p, (long)siglen)) == NULL)
			goto out;
		ECDSA_SIG_get0(es, &r, &s);
		BN_bn2binpad(r, raw, (int)coord);
		BN_bn2binpad(s, raw + coord, (int)coord);
		rawlen = 2 * coord;
		memcpy(sig, raw, rawlen);
		siglen = rawlen;
	}
	if (flip)
		sig[siglen / 2] ^= 1;
	sg = common_b64_encode(sig, siglen, true, 0);
	out = json_pack("{s:s,s:s,s:s}", "protected", ph, "payload", pp,
	    "signature", sg);
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	json_decref(prot);
	free(hdr);
	free(ph);
	free(pp);
	free(in);
	free(sg);
	return out;
}

/* Parses and checks a JWS made by t_jws_raw; 0 or -1 with *type. */
static int
t_jws_check(const json_t *jws, char *type, size_t typelen)
{
	struct acme_prob p;
	struct acme_jws j;
	EVP_PKEY *k = NULL;
	int rc = -1;

	memset(&p, 0, sizeof(p));
	type[0] = '\0';
	if (acme_jws_parse(jws, &j, &p) == 0 &&
	    (k = acme_jwk_key(json_object_get(j.prot, "jwk"), &p)) != NULL &&
	    acme_jws_check_sig(&j, k, &p) == 0)
		rc = 0;
	snprintf(type, typelen, "%s", p.type);
	EVP_PKEY_free(k);
	acme_jws_clear(&j);
	acme_prob_clear(&p);
	return rc;
}

static void
test_jws_algs(void)
{
	static const struct {
		const char	*alg;
		const char	*curve;		/* NULL: Ed25519 */
		const char	*crv;
		size_t		 coord;
		const EVP_MD	*(*md)(void);
	} cases[] = {
		{ "ES256", "P-256", "P-256", 32, EVP_sha256 },
		{ "ES384", "P-384", "P-384", 48, EVP_sha384 },
		{ "ES512", "P-521", "P-521", 66, EVP_sha512 },
		{ "EdDSA", NULL, "Ed25519", 0, NULL },
	};
	unsigned char pub[32];
	size_t i, publen;
	char type[64], *x;
	json_t *jwk, *jws;
	EVP_PKEY *k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].curve != NULL) {
			k = EVP_EC_gen(cases[i].curve);
			jwk = json_pack("{s:s,s:s,s:o,s:o}", "kty", "EC", "crv",
			    cases[i].crv, "x", t_bn_b64(k,
			    OSSL_PKEY_PARAM_EC_PUB_X, (int)cases[i].coord),
			    "y", t_bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y,
			    (int)cases[i].coord));
		} else {
			k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
			publen = sizeof(pub);
			EVP_PKEY_get_raw_public_key(k, pub, &publen);
			x = common_b64_encode(pub, publen, true, 0);
			jwk = json_pack("{s:s,s:s,s:s}", "kty", "OKP", "crv",
			    "Ed25519", "x", x);
			free(x);
		}
		CHECK(k != NULL && jwk != NULL);
		jws = t_jws_raw(k, cases[i].alg, jwk, cases[i].md != NULL ?
		    cases[i].md() : NULL, cases[i].coord, false);
		CHECK(t_jws_check(jws, type, sizeof(type)) == 0);
		json_decref(jws);
		jws = t_jws_raw(k, cases[i].alg, jwk, cases[i].md != NULL ?
		    cases[i].md() : NULL, cases[i].coord, true);
		CHECK(t_jws_check(jws, type, sizeof(type)) == -1);
		CHECK_STR(type, "malformed");
		json_decref(jws);
		/* the key does not suit another alg */
		jws = t_jws_raw(k, i == 0 ? "ES384" : "ES256", jwk,
		    cases[i].md != NULL ? cases[i].md() : NULL,
		    cases[i].coord, false);
		CHECK(t_jws_check(jws, type, sizeof(type)) == -1);
		CHECK_STR(type, "malformed");
		json_decref(jws);
		/* an algorithm outside the table */
		jws = t_jws_raw(k, "PS256", jwk, cases[i].md != NULL ?
		    cases[i].md() : NULL, cases[i].coord, false);
		CHECK(t_jws_check(jws, type, sizeof(type)) == -1);
		CHECK_STR(type, "badSignatureAlgorithm");
		json_decref(jws);
		json_decref(jwk);
		EVP_PKEY_free(k);
	}
	/* DER instead of raw r||s for ES256 is refused */
	k = EVP_EC_gen("P-256");
	jwk = t_jwk(k);
	jws = t_jws_raw(k, "ES256", jwk, EVP_sha256(), 0, false);
	CHECK(t_jws_check(jws, type, sizeof(type)) == -1);
	CHECK_STR(type, "malformed");
	/* padding, unknown members */
	json_object_set_new(jws, "signature", json_string("AAAA=="));
	CHECK(t_jws_check(jws, type, sizeof(type)) == -1);
	json_object_set_new(jws, "signatures", json_array());
	CHECK(t_jws_check(jws, type, sizeof(type)) == -1);
	CHECK_STR(type, "malformed");
	json_decref(jws);
	json_decref(jwk);
	EVP_PKEY_free(k);
}

static void
test_jwk_thumbprint(void)
{
	/* RFC 7638 §3.1 example */
	json_t *jwk = json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "n",
	    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86z"
	    "wu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsG"
	    "Y4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicA"
	    "taSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-b"
	    "FTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFC"
	    "ur-kEgU8awapJzKnqDKgw", "e", "AQAB", "alg", "RS256", "kid",
	    "2011-04-29");
	char out[ACME_THUMB_MAX];
	struct acme_prob p;
	EVP_PKEY *k;

	memset(&p, 0, sizeof(p));
	CHECK(acme_jwk_thumbprint(jwk, out, sizeof(out)) == 0);
	CHECK_STR(out, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	k = acme_jwk_key(jwk, &p);
	CHECK(k != NULL);
	EVP_PKEY_free(k);
	/* a private member is refused */
	json_object_set_new(jwk, "d", json_string("AAAA"));
	CHECK(acme_jwk_key(jwk, &p) == NULL);
	CHECK_STR(p.type, "badPublicKey");
	acme_prob_clear(&p);
	json_decref(jwk);
	/* an EC point off the curve */
	jwk = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256",
	    "x", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    "y", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	CHECK(acme_jwk_key(jwk, &p) == NULL);
	CHECK_STR(p.type, "badPublicKey");
	acme_prob_clear(&p);
	json_decref(jwk);
}

/* The account key cache: hits share one key, a new thumbprint of the
 * same account replaces its entry, forget drops it, a bad JWK is refused,
 * and entries survive (or are re-parsed right) past the cache's size. */
static void
test_keycache(void)
{
	struct acme_keycache *kc = acme_keycache_new();
	struct t_key a, b;
	struct acme_prob p;
	char ta[ACME_THUMB_MAX], tb[ACME_THUMB_MAX], id[ACME_ID_MAX];
	EVP_PKEY *k1 = NULL, *k2 = NULL, *k3 = NULL, *k4 = NULL, *k;
	json_t *bad;
	int i;

	memset(&p, 0, sizeof(p));
	t_key_new(&a, false);
	t_key_new(&b, false);
	CHECK(kc != NULL && a.jwk != NULL && b.jwk != NULL);
	if (kc == NULL || a.jwk == NULL || b.jwk == NULL)
		goto out;
	CHECK(acme_jwk_thumbprint(a.jwk, ta, sizeof(ta)) == 0);
	CHECK(acme_jwk_thumbprint(b.jwk, tb, sizeof(tb)) == 0);
	k1 = acme_keycache_get(kc, "acct-1", ta, a.jwk, &p);
	k2 = acme_keycache_get(kc, "acct-1", ta, a.jwk, &p);
	CHECK(k1 != NULL && k1 == k2);		/* parsed once */
	CHECK(k1 != NULL && EVP_PKEY_eq(k1, a.k) == 1);
	/* the account's key changed: a new entry with the new key */
	k3 = acme_keycache_get(kc, "acct-1", tb, b.jwk, &p);
	CHECK(k3 != NULL && k3 != k1 && EVP_PKEY_eq(k3, b.k) == 1);
	/* forgotten: parsed afresh */
	acme_keycache_forget(kc, "acct-1");
	k4 = acme_keycache_get(kc, "acct-1", tb, b.jwk, &p);
	CHECK(k4 != NULL && k4 != k3 && EVP_PKEY_eq(k4, b.k) == 1);
	/* an unusable stored key */
	bad = json_pack("{s:s,s:s}", "kty", "EC", "crv", "P-256");
	CHECK(acme_keycache_get(kc, "acct-2", "thumb", bad, &p) == NULL);
	CHECK(p.status != 0);
	acme_prob_clear(&p);
	json_decref(bad);
	/* more accounts than entries: every answer is the right key */
	for (i = 0; i < ACME_KEYCACHE_MAX + 16; i++) {
		snprintf(id, sizeof(id), "acct-x%d", i);
		k = acme_keycache_get(kc, id, i % 2 ? ta : tb, i % 2 ?
		    a.jwk : b.jwk, &p);
		CHECK(k != NULL && EVP_PKEY_eq(k, i % 2 ? a.k : b.k) == 1);
		EVP_PKEY_free(k);
	}
	k = acme_keycache_get(kc, "acct-1", tb, b.jwk, &p);
	CHECK(k != NULL && EVP_PKEY_eq(k, b.k) == 1);
	EVP_PKEY_free(k);
out:
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	EVP_PKEY_free(k4);
	acme_keycache_free(kc);
	t_key_free(&a);
	t_key_free(&b);
}

static void
test_certid_parse(void)
{
	char serial[ACME_SERIAL_MAX];
	unsigned char *aki = NULL;
	size_t akilen = 0;

	/* RFC 9773 §4.1 example */
	CHECK(acme_ari_certid_parse("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
	    serial, sizeof(serial), &aki, &akilen) == 0);
	CHECK_STR(serial, "87654321");
	CHECK(akilen == 20 && aki != NULL && aki[0] == 0x69);
	free(aki);
	CHECK(acme_ari_certid_parse("aYhba4dGQEHhs3uEe6CuLN4ByNQ", serial,
	    sizeof(serial), &aki, &akilen) == -1);
	CHECK(acme_ari_certid_parse(".AIdlQyE", serial, sizeof(serial), &aki,
	    &akilen) == -1);
	CHECK(acme_ari_certid_parse("aYhb.gIdlQyE", serial, sizeof(serial),
	    &aki, &akilen) == -1);	/* negative serial */
	CHECK(acme_ari_certid_parse("aY=b.AIdlQyE", serial, sizeof(serial),
	    &aki, &akilen) == -1);
	CHECK(aki == NULL);
}

/* Issues a certificate for 127.0.0.1 to k (validating when needed);
 * returns the leaf and its order URL. */
static X509 *
t_issue(struct t_key *k, EVP_PKEY *ck, char *loc, size_t loclen)
{
	struct t_resp r;
	char url[T_URL_MAX], *p = NULL;
	json_t *o, *az = NULL;
	X509 *leaf = NULL;

	o = t_order(k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    loclen);
	if (o == NULL)
		return NULL;
	if (strcmp(t_str(o, "status"), "pending") == 0) {
		az = t_http01(k, o, NULL);
		CHECK_STR(t_str(az, "status"), "valid");
	}
	p = t_csr_payload(ck, NULL, "IP:127.0.0.1");
	CHECK(t_post(k, t_str(o, "finalize"), p, &r) == 200);
	snprintf(url, sizeof(url), "%s", t_str(r.json, "certificate") != NULL ?
	    t_str(r.json, "certificate") : "");
	t_resp_free(&r);
	CHECK(t_post(k, url, NULL, &r) == 200);
	if (r.body != NULL)
		leaf = t_chain_verify(r.body, r.len, "127.0.0.1");
	t_resp_free(&r);
	free(p);
	json_decref(o);
	json_decref(az);
	return leaf;
}

static void
test_replaces(void)
{
	struct t_resp r;
	struct t_key k, b;
	struct common_error err;
	char loc[T_URL_MAX], url[T_URL_MAX], certid[T_KID_MAX];
	char serial[64], serial2[64], *p = NULL, *b64 = NULL;
	json_t *i1 = NULL, *i2 = NULL, *o = NULL;
	EVP_PKEY *ck = EVP_EC_gen("P-256");
	X509 *leaf = NULL, *leaf2 = NULL;

	memset(&b, 0, sizeof(b));
	if (!t_env() || !t_account(&k, false) || !t_account(&b, true))
		goto out;
	if ((leaf = t_issue(&k, ck, loc, sizeof(loc))) == NULL)
		goto out;
	t_certid(leaf, certid, sizeof(certid));
	common_x509_serial_hex(leaf, serial, sizeof(serial));
	t_url(url, sizeof(url), "new-order");
	/* not a certID; another account's certificate; no shared name */
	CHECK(t_post(&k, url, "{\"identifiers\":[{\"type\":\"ip\",\"value\":"
	    "\"127.0.0.1\"}],\"replaces\":\"zz\"}", &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	CHECK(asprintf(&p, "{\"identifiers\":[{\"type\":\"ip\",\"value\":"
	    "\"127.0.0.1\"}],\"replaces\":\"%s\"}", certid) > 0);
	CHECK(t_post(&b, url, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	free(p);
	CHECK(asprintf(&p, "{\"identifiers\":[{\"type\":\"dns\",\"value\":"
	    "\"x.example.com\"}],\"replaces\":\"%s\"}", certid) > 0);
	CHECK(t_post(&k, url, p, &r) == 400);
	CHECK_STR(t_ptype(&r), "malformed");
	t_resp_free(&r);
	free(p);
	/* the renewal: ready at once (authorization reused) */
	CHECK(asprintf(&p, "{\"identifiers\":[{\"type\":\"ip\",\"value\":"
	    "\"127.0.0.1\"}],\"replaces\":\"%s\"}", certid) > 0);
	CHECK(t_post(&k, url, p, &r) == 201);
	CHECK_STR(t_str(r.json, "replaces"), certid);
	CHECK_STR(t_str(r.json, "status"), "ready");
	o = json_incref(r.json);
	t_resp_free(&r);
	/* a second replacement of the same certificate */
	CHECK(t_post(&k, url, p, &r) == 409);
	CHECK_STR(t_ptype(&r), "alreadyReplaced");
	t_resp_free(&r);
	free(p);
	p = t_csr_payload(ck, NULL, "IP:127.0.0.1");
	CHECK(t_post(&k, t_str(o, "finalize"), p, &r) == 200);
	snprintf(url, sizeof(url), "%s", t_str(r.json, "certificate") != NULL ?
	    t_str(r.json, "certificate") : "");
	t_resp_free(&r);
	CHECK(t_post(&k, url, NULL, &r) == 200);
	if (r.body != NULL)
		leaf2 = t_chain_verify(r.body, r.len, "127.0.0.1");
	t_resp_free(&r);
	if (leaf2 == NULL)
		goto out;
	/* the renewal is version 2 of the same inventory entry */
	common_x509_serial_hex(leaf2, serial2, sizeof(serial2));
	common_error_clear(&err);
	i1 = lifecycle_issued_get(E.lc, serial, &err);
	i2 = lifecycle_issued_get(E.lc, serial2, &err);
	CHECK(t_str(i1, "cert_id") != NULL);
	CHECK_STR(t_str(i2, "cert_id"), t_str(i1, "cert_id"));
	CHECK(json_integer_value(json_object_get(i2, "version")) ==
	    json_integer_value(json_object_get(i1, "version")) + 1);

	/* revocation by an account holding authorizations for all names */
	free(p);
	p = NULL;
	{
		json_t *bo, *baz;
		char bloc[T_URL_MAX];

		bo = t_order(&b, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]",
		    bloc, sizeof(bloc));
		baz = bo != NULL ? t_http01(&b, bo, NULL) : NULL;
		CHECK_STR(t_str(baz, "status"), "valid");
		json_decref(bo);
		json_decref(baz);
	}
	b64 = t_cert_b64(leaf2);
	CHECK(asprintf(&p, "{\"certificate\":\"%s\"}", b64) > 0);
	t_url(url, sizeof(url), "revoke-cert");
	CHECK(t_post(&b, url, p, &r) == 200);
	t_resp_free(&r);
	json_decref(i2);
	i2 = lifecycle_issued_get(E.lc, serial2, &err);
	CHECK_STR(t_str(i2, "status"), "revoked");
out:
	X509_free(leaf);
	X509_free(leaf2);
	EVP_PKEY_free(ck);
	json_decref(i1);
	json_decref(i2);
	json_decref(o);
	free(p);
	free(b64);
	t_key_free(&k);
	t_key_free(&b);
}

static void
test_orders_paging(void)
{
	struct t_resp r;
	struct t_key k;
	char loc[T_URL_MAX], url[T_URL_MAX], next[T_URL_MAX], id[64];
	char *lt, *gt;
	json_t *o;
	int i;

	if (!t_env() || !t_account(&k, false))
		return;
	for (i = 0; i < ACME_ORDERS_PAGE + 1; i++) {
		snprintf(id, sizeof(id), "[{\"type\":\"dns\",\"value\":"
		    "\"p%d.example.com\"}]", i);
		o = t_order(&k, id, loc, sizeof(loc));
		CHECK(o != NULL);
		json_decref(o);
	}
	snprintf(url, sizeof(url), "%s/orders", k.kid);
	CHECK(t_post(&k, url, NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "orders")) ==
	    ACME_ORDERS_PAGE);
	CHECK(t_hdr_has(&r, "Link", "rel=\"next\""));
	next[0] = '\0';
	{
		const char *line = strstr(r.hdrs, "?cursor=");

		if (line != NULL && (lt = memrchr(r.hdrs, '<',
		    (size_t)(line - r.hdrs))) != NULL &&
		    (gt = strchr(line, '>')) != NULL)
			snprintf(next, sizeof(next), "%.*s",
			    (int)(gt - lt - 1), lt + 1);
	}
	t_resp_free(&r);
	CHECK(strstr(next, "/orders?cursor=order-") != NULL);
	CHECK(t_post(&k, next, NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "orders")) == 1);
	CHECK(!t_hdr_has(&r, "Link", "rel=\"next\""));
	t_resp_free(&r);
	t_key_free(&k);
}

struct t_stale {
	const char	*authz_id;
};

/* Makes the http-01 challenge look like a validation lost an hour ago
 * (as after a crash between the challenge POST and its result). */
static int
t_stale_txn(struct store_txn *txn, void *arg)
{
	struct t_stale *s = arg;
	json_t *az, *c;
	size_t i;
	int rc = -1;

	if ((az = store_acme_authz_get(E.st, txn, s->authz_id)) == NULL)
		return -1;
	json_array_foreach(json_object_get(az, "challenges"), i, c)
		if (strcmp(t_str(c, "type"), "http-01") == 0) {
			json_object_set_new(c, "status",
			    json_string("processing"));
			json_object_set_new(c, "attempt", json_integer(7));
			json_object_set_new(c, "started_at",
			    json_integer(common_now() - 3600));
		}
	rc = store_acme_authz_put(txn, s->authz_id, az);
	json_decref(az);
	return rc;
}

static void
test_lost_validation(void)
{
	struct t_stale st;
	struct t_resp r;
	struct t_key k;
	char loc[T_URL_MAX], ka[T_KEYAUTH_MAX];
	const char *azurl, *token = NULL;
	json_t *o = NULL, *az = NULL, *c;
	size_t i;

	if (!t_env() || !t_account(&k, false))
		return;
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    sizeof(loc));
	if (o == NULL)
		goto out;
	azurl = json_string_value(json_array_get(json_object_get(o,
	    "authorizations"), 0));
	CHECK(t_post(&k, azurl, NULL, &r) == 200);
	json_array_foreach(json_object_get(r.json, "challenges"), i, c)
		if (strcmp(t_str(c, "type"), "http-01") == 0)
			token = t_str(c, "token");
	CHECK(token != NULL);
	if (token != NULL) {
		t_keyauth(&k, token, ka, sizeof(ka));
		t_responder_set(token, ka);
	}
	t_resp_free(&r);
	st.authz_id = strrchr(azurl, '/') + 1;
	CHECK(store_txn_run(E.st, t_stale_txn, &st) == 0);
	/* polling the authorization starts the lost validation again */
	az = t_poll(&k, azurl, "valid");
	CHECK_STR(t_str(az, "status"), "valid");
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "ready");
	t_resp_free(&r);
out:
	json_decref(o);
	json_decref(az);
	t_key_free(&k);
}

/* A responder slower than the hold: the challenge response comes back
 * "processing" with Retry-After once ACME_CHALL_WAIT_MS passed, and the
 * validation still completes. */
static void
test_chall_slow_responder(void)
{
	struct t_resp r;
	struct t_key k;
	char loc[T_URL_MAX], ka[T_KEYAUTH_MAX], churl[T_URL_MAX];
	const char *azurl, *token = NULL, *cu = NULL;
	json_t *o = NULL, *az = NULL, *c;
	uint64_t t0, ms;
	size_t i;

	if (!t_env() || !t_account(&k, false))
		return;
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    sizeof(loc));
	if (o == NULL)
		goto out;
	azurl = json_string_value(json_array_get(json_object_get(o,
	    "authorizations"), 0));
	CHECK(t_post(&k, azurl, NULL, &r) == 200);
	json_array_foreach(json_object_get(r.json, "challenges"), i, c)
		if (strcmp(t_str(c, "type"), "http-01") == 0) {
			token = t_str(c, "token");
			cu = t_str(c, "url");
		}
	CHECK(token != NULL && cu != NULL);
	if (token == NULL || cu == NULL) {
		t_resp_free(&r);
		goto out;
	}
	snprintf(churl, sizeof(churl), "%s", cu);
	t_keyauth(&k, token, ka, sizeof(ka));
	t_responder_set_delayed(token, ka, ACME_CHALL_WAIT_MS + 1000);
	t_resp_free(&r);

	t0 = common_mono_ms();
	CHECK(t_post(&k, churl, "{}", &r) == 200);
	ms = common_mono_ms() - t0;
	CHECK_STR(t_str(r.json, "status"), "processing");
	CHECK(t_hdr_has(&r, "Retry-After", "1"));
	CHECK(ms >= ACME_CHALL_WAIT_MS - 100);
	CHECK(ms < ACME_CHALL_WAIT_MS + 1000);
	t_resp_free(&r);
	az = t_poll(&k, azurl, "valid");
	CHECK_STR(t_str(az, "status"), "valid");
	/* once recorded, the challenge answers valid at once */
	CHECK(t_post(&k, churl, "{}", &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "valid");
	t_resp_free(&r);
out:
	json_decref(o);
	json_decref(az);
	t_key_free(&k);
}

/* POSTs a JWS by k to url and hangs up after timeout_ms without reading
 * an answer; true when the client indeed gave up. */
static bool
t_post_abandon(struct t_key *k, const char *url, const char *payload,
    long timeout_ms)
{
	struct curl_slist *h = NULL;
	struct t_resp r;
	char *jws = t_jws(k, url, payload, NULL);
	CURLcode cc = CURLE_OK;
	CURL *cu;

	memset(&r, 0, sizeof(r));
	if (jws == NULL || (cu = curl_easy_init()) == NULL) {
		free(jws);
		return false;
	}
	h = curl_slist_append(h, "Content-Type: application/jose+json");
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_CAINFO, E.cafile);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, t_body_cb);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDS, jws);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)strlen(jws));
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	cc = curl_easy_perform(cu);
	curl_easy_cleanup(cu);	/* closes the connection */
	curl_slist_free_all(h);
	free(jws);
	t_resp_free(&r);
	return cc == CURLE_OPERATION_TIMEDOUT;
}

/* The client hangs up while its challenge response is held: the hold
 * still ends (answering nobody), the server goes on serving, and the
 * validation is recorded. */
static void
test_chall_client_gone(void)
{
	struct t_resp r;
	struct t_key k;
	char loc[T_URL_MAX], ka[T_KEYAUTH_MAX], churl[T_URL_MAX];
	const char *azurl, *token = NULL, *cu = NULL;
	json_t *o = NULL, *az = NULL, *c;
	size_t i;

	if (!t_env() || !t_account(&k, false))
		return;
	o = t_order(&k, "[{\"type\":\"ip\",\"value\":\"127.0.0.1\"}]", loc,
	    sizeof(loc));
	if (o == NULL)
		goto out;
	azurl = json_string_value(json_array_get(json_object_get(o,
	    "authorizations"), 0));
	CHECK(t_post(&k, azurl, NULL, &r) == 200);
	json_array_foreach(json_object_get(r.json, "challenges"), i, c)
		if (strcmp(t_str(c, "type"), "http-01") == 0) {
			token = t_str(c, "token");
			cu = t_str(c, "url");
		}
	CHECK(token != NULL && cu != NULL);
	if (token == NULL || cu == NULL) {
		t_resp_free(&r);
		goto out;
	}
	snprintf(churl, sizeof(churl), "%s", cu);
	t_keyauth(&k, token, ka, sizeof(ka));
	t_responder_set_delayed(token, ka, ACME_CHALL_WAIT_MS / 2);
	t_resp_free(&r);

	CHECK(t_post_abandon(&k, churl, "{}", ACME_CHALL_WAIT_MS / 8));
	/* while it is held, and after it ended, others are served */
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	t_resp_free(&r);
	usleep((useconds_t)ACME_CHALL_WAIT_MS * 1000 + 200 * 1000);
	az = t_poll(&k, azurl, "valid");
	CHECK_STR(t_str(az, "status"), "valid");
	CHECK(t_post(&k, loc, NULL, &r) == 200);
	CHECK_STR(t_str(r.json, "status"), "ready");
	t_resp_free(&r);
out:
	json_decref(o);
	json_decref(az);
	t_key_free(&k);
}

static void
test_stop(void)
{
	t_env_stop();
	acme_free(NULL);
}

const struct test_case test_cases[] = {
	TEST(test_nonce_unit),
	TEST(test_jwk_thumbprint),
	TEST(test_jws_algs),
	TEST(test_keycache),
	TEST(test_certid_parse),
	TEST(test_directory),
	TEST(test_nonce_http),
	TEST(test_account),
	TEST(test_jws_refusals),
	TEST(test_order_flow),
	TEST(test_finalize_checks),
	TEST(test_order_refusals),
	TEST(test_validation_failures),
	TEST(test_deactivation),
	TEST(test_key_change),
	TEST(test_eab),
	TEST(test_revoke_by_cert_key),
	TEST(test_replaces),
	TEST(test_orders_paging),
	TEST(test_lost_validation),
	TEST(test_chall_slow_responder),
	TEST(test_chall_client_gone),
	TEST(test_stop),
	{ 0 }
};
