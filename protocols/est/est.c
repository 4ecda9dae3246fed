/*
 * protocols/est/est.c — the EST server's front: the /.well-known/est/
 * route on the https listener, the labels resolved from the configuration,
 * dispatch by label, operation and method, and the replies every handler
 * ends in (RFC 7030 §3.2.2 paths, RFC 8951 encodings).
 *
 * Paths: /.well-known/est/<op> (the unlabelled default label) and
 * /.well-known/est/<label>/<op>, op one of cacerts, simpleenroll,
 * simplereenroll, csrattrs, serverkeygen. Unknown labels and operations
 * (fullcmc included: not offered) are 404, a wrong method 405 with Allow.
 * Errors are a status with a one-line text/plain reason (RFC 7030 §4.2.3
 * leaves the body free; one line is what clients print).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "protocols/est/est.h"

#define EST_ROUTE_NAME		"est"
#define EST_CT_TEXT		"text/plain; charset=utf-8"
#define EST_DUMMY_PASSWORD	"pkid-est-unknown-user"

static const char *const est_op_names[EST_OP__MAX] = {
	[EST_OP_CACERTS] = "cacerts",
	[EST_OP_SIMPLEENROLL] = "simpleenroll",
	[EST_OP_SIMPLEREENROLL] = "simplereenroll",
	[EST_OP_CSRATTRS] = "csrattrs",
	[EST_OP_SERVERKEYGEN] = "serverkeygen",
};

static const char *const est_auth_names[EST_AUTH__MAX] = {
	[EST_AUTH_BASIC] = "basic",
	[EST_AUTH_CERT] = "cert",
	[EST_AUTH_BASIC_OR_CERT] = "basic_or_cert",
	[EST_AUTH_BASIC_AND_CERT] = "basic_and_cert",
};

/* ---- replies ------------------------------------------------------------- */

const char *
est_label_show(const struct est_label *l)
{
	return l == NULL || l->name[0] == '\0' ? "default" : l->name;
}

void
est_header(struct est_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->req), name,
	    value);
}

/*
 * The one place replies leave. A second reply on the same request is a
 * bug: logged and suppressed, since evhttp allows exactly one.
 */
void
est_reply(struct est_req *r, int status, const char *ctype, const void *body,
    size_t len)
{
	if (r->replied) {
		log_err("est: %s: second reply (%d) suppressed",
		    evhttp_request_get_uri(r->req), status);
		return;
	}
	r->replied = true;
	/* server_reply() sends status line, headers and body as one TLS
	 * record (RFC 8951 clients such as strongSwan want them early). */
	server_reply(r->req, status, ctype, body, len);
}

static const char *
est_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	default:
		return "other";
	}
}

/* Logs one line (method, path, label, actor, status, reason) and answers
 * status with the reason as one text/plain line. */
void
est_error(struct est_req *r, int status, const char *fmt, ...)
{
	char msg[EST_REASON_MAX + 1];
	va_list ap;
	size_t i, n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	/* one line, printable: the text may quote client input */
	for (i = 0; msg[i] != '\0'; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = ' ';
	log_warn("est: %s %s (label %s, %s): %d %s",
	    est_method_name(evhttp_request_get_command(r->req)),
	    server_req_path(r->req), est_label_show(r->label),
	    r->who[0] != '\0' ? r->who : "anonymous", status, msg);
	n = strlen(msg);
	msg[n++] = '\n';
	est_reply(r, status, EST_CT_TEXT, msg, n);
}

void
est_error_core(struct est_req *r, const struct common_error *err)
{
	int status;

	switch (err->code) {
	case COMMON_E_INVALID:
	case COMMON_E_POLICY:
		status = 400;
		break;
	case COMMON_E_NOTFOUND:
		status = 404;
		break;
	case COMMON_E_FORBIDDEN:
		status = 403;
		break;
	case COMMON_E_CONFLICT:
		status = 409;
		break;
	default:
		status = 500;
		break;
	}
	est_error(r, status, "%s", err->code != COMMON_E_NONE ? err->msg :
	    "internal error");
}

void
est_reply_b64(struct est_req *r, int status, const char *ctype,
    const unsigned char *der, size_t len)
{
	char *b64;

	if ((b64 = est_b64_wrap(der, len, r->wrap, "\n")) == NULL) {
		log_err("est: base64 of a %zu byte response: out of memory",
		    len);
		est_error(r, 500, "cannot encode the response");
		return;
	}
	est_header(r, "Content-Transfer-Encoding", "base64");
	est_reply(r, status, ctype, b64, strlen(b64));
	free(b64);
}

/* Refusals by the server before the handler (413 body too large). */
static void
est_route_error(struct evhttp_request *req, int status, const char *msg,
    void *arg)
{
	struct est_req r;

	memset(&r, 0, sizeof(r));
	r.e = arg;
	r.req = req;
	est_error(&r, status, "%s", msg);
}

/* ---- dispatch ------------------------------------------------------------ */

static const struct est_label *
est_label_find(const struct est *e, const char *name, size_t len)
{
	size_t i;

	for (i = 1; i < e->nlabels; i++)
		if (strlen(e->labels[i].name) == len &&
		    memcmp(e->labels[i].name, name, len) == 0)
			return &e->labels[i];
	return NULL;
}

static int
est_op_parse(const char *s, enum est_op *out)
{
	int i;

	for (i = 0; i < EST_OP__MAX; i++) {
		if (strcmp(s, est_op_names[i]) == 0) {
			*out = (enum est_op)i;
			return 0;
		}
	}
	return -1;
}

/* Copies at most outlen-1 bytes of s (n bytes) for a message, with
 * anything outside printable ASCII shown as '?'. */
static void
est_show(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; i < n && i + 1 < outlen; i++)
		out[i] = (unsigned char)s[i] < 0x20 ||
		    (unsigned char)s[i] > 0x7e ? '?' : s[i];
	out[i] = '\0';
}

/*
 * The line length of base64 answers. RFC 8951 §3 lets the sender choose;
 * pkid wraps at EST_B64_WRAP columns as PEM and libest do. strongSwan's
 * pki, though, decodes the body with chunk_from_base64(), which does not
 * skip line breaks, and it is the client that sends no User-Agent (curl,
 * libest, Go, Python, OpenSSL-based clients all do): such requests get
 * one line, which every RFC 8951 reader accepts as well.
 */
static size_t
est_b64_columns(struct evhttp_request *req)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req),
	    "User-Agent") != NULL ? EST_B64_WRAP : 0;
}

/*
 * evhttp handler of the route: finds the label and the operation, checks
 * the method and runs the operation, which replies.
 */
static void
est_handle(struct evhttp_request *req, void *arg)
{
	struct est *e = arg;
	struct est_req r;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const char *path = server_req_path(req), *rest, *slash, *opname;
	char show[80];
	bool get_op;

	memset(&r, 0, sizeof(r));
	r.e = e;
	r.req = req;
	r.label = &e->labels[0];
	r.wrap = est_b64_columns(req);
	rest = path + strlen(EST_PREFIX);
	opname = rest;
	if ((slash = strchr(rest, '/')) != NULL) {
		if ((r.label = est_label_find(e, rest,
		    (size_t)(slash - rest))) == NULL) {
			est_show(rest, (size_t)(slash - rest), show,
			    sizeof(show));
			r.label = &e->labels[0];
			est_error(&r, 404, "no EST label \"%s\"", show);
			return;
		}
		opname = slash + 1;
	}
	if (est_op_parse(opname, &r.op) == -1) {
		est_show(opname, strlen(opname), show, sizeof(show));
		est_error(&r, 404, "no EST operation \"%s\" (cacerts, "
		    "simpleenroll, simplereenroll, csrattrs, serverkeygen)",
		    show);
		return;
	}
	get_op = r.op == EST_OP_CACERTS || r.op == EST_OP_CSRATTRS;
	if (get_op && m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		est_header(&r, "Allow", "GET, HEAD");
		est_error(&r, 405, "%s takes GET", est_op_names[r.op]);
		return;
	}
	if (!get_op && m != EVHTTP_REQ_POST) {
		est_header(&r, "Allow", "POST");
		est_error(&r, 405, "%s takes POST", est_op_names[r.op]);
		return;
	}
	if (r.op == EST_OP_SERVERKEYGEN && !r.label->cf->serverkeygen) {
		est_error(&r, 404, "serverkeygen is not enabled on label %s",
		    est_label_show(r.label));
		return;
	}
	r.ssl = server_req_ssl(req);
	r.peer = r.ssl != NULL ? SSL_get0_peer_certificate(r.ssl) : NULL;
	switch (r.op) {
	case EST_OP_CACERTS:
		est_cacerts(&r);
		break;
	case EST_OP_CSRATTRS:
		est_csrattrs(&r);
		break;
	default:
		est_enroll(&r);
		break;
	}
	if (!r.replied) {
		log_err("est: %s: handler ended without a reply", path);
		est_error(&r, 500, "internal error");
	}
}

/* ---- life cycle ---------------------------------------------------------- */

static int
est_auth_parse(const char *s, enum est_auth_mode *out)
{
	int i;

	for (i = 0; s != NULL && i < EST_AUTH__MAX; i++) {
		if (strcmp(s, est_auth_names[i]) == 0) {
			*out = (enum est_auth_mode)i;
			return 0;
		}
	}
	return -1;
}

/* Resolves one configured label into l; 0 or -1 (logged). */
static int
est_label_init(struct est *e, struct est_label *l,
    const struct conf_est_label *c)
{
	struct common_error err;
	json_t *rec;
	const char *show;

	l->cf = c;
	l->name = c->name != NULL ? c->name : "";
	show = est_label_show(l);
	if (l->name[0] != '\0' && !common_id_valid(l->name)) {
		log_err("est: label \"%s\": name must be 1..64 of "
		    "[A-Za-z0-9._-]", l->name);
		return -1;
	}
	l->ca_id = strdup(c->ca_id != NULL && c->ca_id[0] != '\0' ?
	    c->ca_id : e->ca_id);
	if (l->ca_id == NULL) {
		log_err("est: label %s: out of memory", show);
		return -1;
	}
	common_error_clear(&err);
	if ((rec = ca_get(e->ca, NULL, l->ca_id, &err)) == NULL) {
		log_err("est: label %s: issuing CA %s: %s", show, l->ca_id,
		    err.msg);
		return -1;
	}
	json_decref(rec);
	if (ca_profile_parse(c->profile, &l->profile) == -1) {
		log_err("est: label %s: unknown profile \"%s\"", show,
		    c->profile != NULL ? c->profile : "");
		return -1;
	}
	if (ca_key_alg_parse(c->key_algorithm, &l->key_alg) == -1) {
		log_err("est: label %s: unknown key_algorithm \"%s\"", show,
		    c->key_algorithm != NULL ? c->key_algorithm : "");
		return -1;
	}
	if (est_auth_parse(c->auth, &l->auth) == -1) {
		log_err("est: label %s: unknown auth mode \"%s\"", show,
		    c->auth != NULL ? c->auth : "");
		return -1;
	}
	if (c->trust_bundle != NULL && c->trust_bundle[0] != '\0' &&
	    (l->trust = est_trust_load(c->trust_bundle)) == NULL) {
		log_err("est: label %s: trust bundle %s cannot be used", show,
		    c->trust_bundle);
		return -1;
	}
	return 0;
}

struct est *
est_new(struct server *srv, struct lifecycle *lc, const struct conf *cf,
    const char *ca_id)
{
	struct server_route route;
	struct est *e = NULL, *ret = NULL;
	size_t i;

	if (srv == NULL || lc == NULL || cf == NULL) {
		log_err("est: needs a server, a lifecycle and a configuration");
		return NULL;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		log_err("est: out of memory");
		return NULL;
	}
	pthread_mutex_init(&e->cred_lock, NULL);
	pthread_mutex_init(&e->cacerts_lock, NULL);
	e->srv = srv;
	e->lc = lc;
	e->cf = cf;
	e->ca = lifecycle_ca(lc);
	e->st = lifecycle_store(lc);
	if (!cf->est.enabled) {
		log_info("est: disabled (est.enabled is false)");
		ret = e;	/* steal */
		e = NULL;
		goto out;
	}
	if (RAND_bytes(e->cred_key, sizeof(e->cred_key)) != 1) {
		log_err("est: credential cache key: %s", common_ssl_error());
		goto out;
	}
	e->ca_id = ca_id != NULL && *ca_id != '\0' ? strdup(ca_id) :
	    store_meta_get(e->st, NULL, "issuing_ca_id");
	if (e->ca_id == NULL) {
		log_err("est: no issuing CA: pass one or run pkid init");
		goto out;
	}
	e->nlabels = 1 + cf->est.nlabels;
	if ((e->labels = calloc(e->nlabels, sizeof(*e->labels))) == NULL ||
	    (e->cacerts = calloc(e->nlabels, sizeof(*e->cacerts))) == NULL) {
		log_err("est: out of memory");
		goto out;
	}
	if (est_label_init(e, &e->labels[0], &cf->est.default_label) == -1)
		goto out;
	e->labels[0].name = "";
	for (i = 1; i < e->nlabels; i++)
		if (est_label_init(e, &e->labels[i],
		    &cf->est.labels[i - 1]) == -1)
			goto out;
	/* Unknown users are checked against this so that a probe cannot
	 * tell them from known ones by the time the answer takes. */
	if ((e->dummy_hash = common_password_hash(EST_DUMMY_PASSWORD,
	    COMMON_PASSWORD_ITERATIONS)) == NULL) {
		log_err("est: cannot prepare the password check");
		goto out;
	}
	memset(&route, 0, sizeof(route));
	route.name = EST_ROUTE_NAME;
	route.prefix = EST_PREFIX;
	route.listeners = SERVER_ON(SERVER_HTTPS);
	route.max_body = EST_BODY_MAX;
	route.handle = est_handle;
	route.error = est_route_error;
	route.arg = e;
	if (server_route_add(srv, &route) == -1)
		goto out;
	log_info("est: %s on the https listener, %zu label(s), default CA %s",
	    EST_PREFIX, e->nlabels - 1, e->ca_id);
	ret = e;	/* steal */
	e = NULL;
out:
	est_free(e);
	return ret;
}

/* Frees e; call after the server stopped (handlers borrow it). */
void
est_free(struct est *e)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; e->labels != NULL && i < e->nlabels; i++) {
		free(e->labels[i].ca_id);
		X509_STORE_free(e->labels[i].trust);
	}
	for (i = 0; e->cacerts != NULL && i < e->nlabels; i++) {
		free(e->cacerts[i].pem);
		OPENSSL_free(e->cacerts[i].der);
	}
	free(e->cacerts);
	free(e->labels);
	free(e->ca_id);
	free(e->dummy_hash);
	OPENSSL_cleanse(e->cred_key, sizeof(e->cred_key));
	OPENSSL_cleanse(e->creds, sizeof(e->creds));
	pthread_mutex_destroy(&e->cred_lock);
	pthread_mutex_destroy(&e->cacerts_lock);
	free(e);
}
