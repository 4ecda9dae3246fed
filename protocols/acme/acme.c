/*
 * protocols/acme/acme.c — the ACME server's front: registration of the
 * /acme/ route on the https listener, dispatch by path and method, and
 * the replies every handler ends in (each with Replay-Nonce and
 * Link rel="index", RFC 8555 §6.5 and §7.1).
 *
 * Resources (contract E):
 *   GET  /acme/directory, GET|HEAD /acme/new-nonce,
 *   GET  /acme/renewal-info/<certID>                       (RFC 9773)
 *   POST /acme/new-account, /acme/new-order, /acme/revoke-cert,
 *        /acme/key-change, /acme/acct/<id>, /acme/acct/<id>/orders,
 *        /acme/order/<id>, /acme/order/<id>/finalize, /acme/authz/<id>,
 *        /acme/chall/<authz-id>/<type>, /acme/cert/<serial>
 * Everything but the GET resources is a JWS POST (application/jose+json).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "protocols/acme/acme.h"

#define ACME_ROUTE_NAME		"acme"
#define ACME_RETRY_DEFAULT	1	/* Retry-After when unconfigured */

/* ---- replies ------------------------------------------------------------ */

void
acme_header(struct acme_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->req), name,
	    value);
}

void
acme_link(struct acme_req *r, const char *url, const char *rel)
{
	char v[ACME_URL_MAX * 2 + 32];

	snprintf(v, sizeof(v), "<%s>;rel=\"%s\"", url, rel);
	acme_header(r, "Link", v);
}

void
acme_retry_after(struct acme_req *r, long seconds)
{
	char v[32];

	snprintf(v, sizeof(v), "%ld", seconds > 0 ? seconds : 1);
	evhttp_remove_header(evhttp_request_get_output_headers(r->req),
	    "Retry-After");
	acme_header(r, "Retry-After", v);
}

/*
 * The one place replies leave: adds a fresh Replay-Nonce and the
 * directory's Link rel="index", then sends. Each request is answered once;
 * a second call is a bug, logged and ignored.
 */
void
acme_reply(struct acme_req *r, int status, const char *ctype,
    const void *body, size_t len)
{
	char nonce[ACME_NONCE_MAX], dir[ACME_URL_MAX];

	if (r->replied) {
		log_err("acme: %s %s: second reply (%d) suppressed", r->method,
		    evhttp_request_get_uri(r->req), status);
		return;
	}
	r->replied = true;
	if (acme_nonce_issue(r->a->nonces, nonce, sizeof(nonce)) == 0)
		acme_header(r, "Replay-Nonce", nonce);
	if (acme_url(r, dir, sizeof(dir), "directory") == 0)
		acme_link(r, dir, "index");
	server_reply(r->req, status, ctype, body, len);
}

void
acme_reply_json(struct acme_req *r, int status, json_t *j,
    const char *location)
{
	char *body = NULL;

	if (j == NULL || (body = json_dumps(j, JSON_COMPACT)) == NULL) {
		json_decref(j);
		acme_problem(r, 500, "serverInternal",
		    "cannot encode the response");
		return;
	}
	if (location != NULL)
		acme_header(r, "Location", location);
	acme_reply(r, status, ACME_CT_JSON, body, strlen(body));
	free(body);
	json_decref(j);
}

int
acme_url(const struct acme_req *r, char *out, size_t outlen,
    const char *fmt, ...)
{
	char rest[ACME_URL_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rest, sizeof(rest), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(rest))
		return -1;
	n = snprintf(out, outlen, "%s%s%s", r->base, ACME_PREFIX, rest);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* ---- settings ----------------------------------------------------------- */

const struct conf_acme_profile *
acme_profile_find(const struct acme *a, const char *name)
{
	size_t i;

	if (name == NULL)
		name = a->cf->acme.default_profile;
	for (i = 0; name != NULL && i < a->cf->acme.nprofiles; i++)
		if (strcmp(a->cf->acme.profiles[i].name, name) == 0)
			return &a->cf->acme.profiles[i];
	return NULL;
}

long
acme_retry_seconds(const struct acme *a)
{
	return a->cf->acme.retry_after_seconds > 0 ?
	    (long)a->cf->acme.retry_after_seconds : ACME_RETRY_DEFAULT;
}

/* ---- requests ----------------------------------------------------------- */

/* The public https base: as configured, or (port 0, unset) the bound
 * address of the https listener once the server knows it. */
static void
acme_base(struct acme *a, char *out, size_t outlen)
{
	const char *bound;

	pthread_mutex_lock(&a->base_lock);
	if (a->base[0] == '\0' &&
	    (bound = server_bound(a->srv, SERVER_HTTPS)) != NULL)
		snprintf(a->base, sizeof(a->base), "https://%s", bound);
	snprintf(out, outlen, "%s", a->base);
	pthread_mutex_unlock(&a->base_lock);
}

static const char *
acme_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

/* Fills r for req: method, base, full URL, path segments after /acme/.
 * -1 when the path has empty or too many segments. */
static int
acme_req_init(struct acme_req *r, struct acme *a, struct evhttp_request *req)
{
	const char *uri = evhttp_request_get_uri(req);
	const char *path = server_req_path(req);
	char *s, *slash;

	memset(r, 0, sizeof(*r));
	r->a = a;
	r->req = req;
	r->method = acme_method_name(evhttp_request_get_command(req));
	acme_base(a, r->base, sizeof(r->base));
	snprintf(r->url, sizeof(r->url), "%s%s", r->base,
	    uri != NULL ? uri : "");
	if (strncmp(path, ACME_PREFIX, strlen(ACME_PREFIX)) != 0 ||
	    strlen(path) >= sizeof(r->pathbuf))
		return -1;
	snprintf(r->pathbuf, sizeof(r->pathbuf), "%s",
	    path + strlen(ACME_PREFIX));
	for (s = r->pathbuf; ; s = slash + 1) {
		if (*s == '\0' || r->nseg >= ACME_SEGMENTS_MAX)
			return -1;
		r->seg[r->nseg++] = s;
		if ((slash = strchr(s, '/')) == NULL)
			break;
		*slash = '\0';
	}
	return 0;
}

static void
acme_req_clear(struct acme_req *r)
{
	json_decref(r->payload);
	json_decref(r->account);
	json_decref(r->jwk);
	EVP_PKEY_free(r->key);
	r->payload = r->account = r->jwk = NULL;
	r->key = NULL;
}

/* True when the method is allowed: POST, or (get) GET/HEAD. Otherwise
 * answers 405 with Allow. */
static bool
acme_method_ok(struct acme_req *r, bool get)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(r->req);

	if (get ? (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) :
	    m == EVHTTP_REQ_POST)
		return true;
	acme_header(r, "Allow", get ? "GET, HEAD" : "POST");
	acme_problem(r, 405, "malformed", "%s is not allowed here; use %s",
	    r->method, get ? "GET" : "POST (RFC 8555 §6.3)");
	return false;
}

static bool
acme_seg_is(const struct acme_req *r, size_t i, const char *s)
{
	return i < r->nseg && strcmp(r->seg[i], s) == 0;
}

/* 404 for a path that names no resource. */
static void
acme_dispatch_none(struct acme_req *r)
{
	acme_problem(r, 404, "malformed", "no ACME resource at %.*s",
	    ACME_URL_MAX, evhttp_request_get_uri(r->req));
}

/* Routes r to its handler by path and method. */
static void
acme_dispatch(struct acme_req *r)
{
	const char *s0 = r->seg[0];
	size_t n = r->nseg;

	if (n == 1 && strcmp(s0, "directory") == 0) {
		if (acme_method_ok(r, true))
			acme_directory(r);
		return;
	}
	if (n == 1 && strcmp(s0, "new-nonce") == 0) {
		if (acme_method_ok(r, true))
			acme_new_nonce(r);
		return;
	}
	if (n == 2 && strcmp(s0, "renewal-info") == 0) {
		if (acme_method_ok(r, true))
			acme_renewal_info(r, r->seg[1]);
		return;
	}
	if (n == 1 && (strcmp(s0, "new-account") == 0 ||
	    strcmp(s0, "new-order") == 0 || strcmp(s0, "revoke-cert") == 0 ||
	    strcmp(s0, "key-change") == 0)) {
		if (!acme_method_ok(r, false))
			return;
		if (s0[4] == 'a')
			acme_account_new(r);
		else if (s0[4] == 'o')
			acme_order_new(r);
		else if (s0[0] == 'r')
			acme_revoke(r);
		else
			acme_key_change(r);
		return;
	}
	if (n >= 2 && !common_id_valid(r->seg[1])) {
		acme_dispatch_none(r);
		return;
	}
	if (strcmp(s0, "acct") == 0 && (n == 2 ||
	    (n == 3 && acme_seg_is(r, 2, "orders")))) {
		if (!acme_method_ok(r, false))
			return;
		if (n == 2)
			acme_account_post(r, r->seg[1]);
		else
			acme_account_orders(r, r->seg[1]);
		return;
	}
	if (strcmp(s0, "order") == 0 && (n == 2 ||
	    (n == 3 && acme_seg_is(r, 2, "finalize")))) {
		if (!acme_method_ok(r, false))
			return;
		if (n == 2)
			acme_order_post(r, r->seg[1]);
		else
			acme_order_finalize(r, r->seg[1]);
		return;
	}
	if (n == 2 && strcmp(s0, "authz") == 0) {
		if (acme_method_ok(r, false))
			acme_authz_post(r, r->seg[1]);
		return;
	}
	if (n == 3 && strcmp(s0, "chall") == 0) {
		if (acme_method_ok(r, false))
			acme_chall_post(r, r->seg[1], r->seg[2]);
		return;
	}
	if (n == 2 && strcmp(s0, "cert") == 0) {
		if (acme_method_ok(r, false))
			acme_cert_download(r, r->seg[1]);
		return;
	}
	acme_dispatch_none(r);
}

/* The route's handler (worker thread). */
static void
acme_handle(struct evhttp_request *req, void *arg)
{
	struct acme_req r;

	if (acme_req_init(&r, arg, req) == -1)
		acme_dispatch_none(&r);
	else
		acme_dispatch(&r);
	if (!r.replied && !r.deferred)
		acme_problem(&r, 500, "serverInternal",
		    "the request was not answered");
	acme_req_clear(&r);
}

/* Refusals by the server before the handler (413 body too large, ...):
 * answered as malformed problems with the given status. */
static void
acme_route_error(struct evhttp_request *req, int status, const char *msg,
    void *arg)
{
	struct acme_req r;

	acme_req_init(&r, arg, req);
	acme_problem(&r, status, "malformed", "%s", msg);
	acme_req_clear(&r);
}

/* ---- life cycle --------------------------------------------------------- */

/* The issuing CA: the argument, else acme.ca_id, else the one pkid init
 * created (meta "issuing_ca_id"). */
static char *
acme_ca_pick(struct acme *a, const char *ca_id)
{
	if (ca_id != NULL && *ca_id != '\0')
		return strdup(ca_id);
	if (a->cf->acme.ca_id != NULL && *a->cf->acme.ca_id != '\0')
		return strdup(a->cf->acme.ca_id);
	return store_meta_get(a->st, NULL, "issuing_ca_id");
}

struct acme *
acme_new(struct server *srv, struct lifecycle *lc, const struct conf *cf,
    const char *base_url, const char *ca_id)
{
	struct acme *a = NULL, *ret = NULL;
	struct common_error err;
	json_t *ca = NULL;
	size_t n;

	if (srv == NULL || lc == NULL || cf == NULL) {
		log_err("acme: needs a server, a lifecycle and a "
		    "configuration");
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		log_err("acme: out of memory");
		return NULL;
	}
	pthread_mutex_init(&a->base_lock, NULL);
	a->srv = srv;
	a->lc = lc;
	a->cf = cf;
	a->ca = lifecycle_ca(lc);
	a->st = lifecycle_store(lc);
	/* A base ending in ":0" (listener on an ephemeral port) is learned
	 * from the bound socket on the first request instead. */
	if (base_url != NULL && *base_url != '\0' &&
	    ((n = strlen(base_url)) < 2 ||
	    strcmp(base_url + n - 2, ":0") != 0)) {
		if (n >= sizeof(a->base)) {
			log_err("acme: base URL longer than %d bytes",
			    ACME_URL_MAX - 1);
			goto out;
		}
		snprintf(a->base, sizeof(a->base), "%s", base_url);
		while ((n = strlen(a->base)) > 0 && a->base[n - 1] == '/')
			a->base[n - 1] = '\0';
	}
	if ((a->ca_id = acme_ca_pick(a, ca_id)) == NULL) {
		log_err("acme: no issuing CA: set acme.ca_id or run pkid init");
		goto out;
	}
	common_error_clear(&err);
	if ((ca = ca_get(a->ca, NULL, a->ca_id, &err)) == NULL) {
		log_err("acme: issuing CA %s: %s", a->ca_id, err.msg);
		goto out;
	}
	if (acme_profile_find(a, NULL) == NULL) {
		log_err("acme: default profile \"%s\" is not configured",
		    cf->acme.default_profile != NULL ?
		    cf->acme.default_profile : "");
		goto out;
	}
	if ((a->nonces = acme_nonces_new()) == NULL)
		goto out;
	if ((a->keys = acme_keycache_new()) == NULL) {
		log_err("acme: account key cache: out of memory");
		goto out;
	}
	a->route.name = ACME_ROUTE_NAME;
	a->route.prefix = ACME_PREFIX;
	a->route.listeners = SERVER_ON(SERVER_HTTPS);
	a->route.max_body = ACME_JWS_MAX;
	a->route.handle = acme_handle;
	a->route.error = acme_route_error;
	a->route.arg = a;
	if (server_route_add(srv, &a->route) == -1)
		goto out;
	log_info("acme: directory at %s%sdirectory, issuing CA %s",
	    a->base[0] != '\0' ? a->base : "https://<https listener>",
	    ACME_PREFIX, a->ca_id);
	ret = a;	/* steal */
	a = NULL;
out:
	json_decref(ca);
	acme_free(a);
	return ret;
}

/* Frees a; the server must have stopped (its jobs thread joined), since
 * validations in flight are cancelled from here. */
void
acme_free(struct acme *a)
{
	if (a == NULL)
		return;
	acme_authz_jobs_free(a);
	acme_nonces_free(a->nonces);
	acme_keycache_free(a->keys);
	pthread_mutex_destroy(&a->base_lock);
	free(a->ca_id);
	free(a);
}
