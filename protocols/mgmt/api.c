/*
 * protocols/mgmt/api.c — the management API front: registration on the
 * mgmt listener, authentication, the route table, role checks, query
 * strings, bodies and the one error format every refusal goes through.
 * The handlers live in cas.c (CAs), certs.c (certificates, versions,
 * resources, associations), eab.c (ACME External Account Binding
 * keys), est.c (EST clients and manual-approval requests) and audit.c
 * (the audit trail).
 *
 * Order of checks for each request: token (401), route (404), method
 * (405), role (403), query string (400), then the handler. Every refusal
 * logs one line with method, path, status and reason.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "protocols/mgmt/mgmt.h"

#define API_PREFIX		"/api/v1/"
#define API_PATH_MAX		1024	/* bytes of a routed path */
#define API_WHY_MAX		256	/* token refusal reason */
#define API_MSG_MAX		512	/* error message to the client */
#define API_ALLOW_MAX		64	/* "GET, POST, DELETE" */
#define API_LOG_PATH_MAX	256	/* path bytes quoted in a log line */
#define API_PAGE_TOKEN_MAX	256	/* bytes of a page_token */
#define API_CONTENT_JSON	"application/json"

struct mgmt {
	struct mgmt_token_key	*key;		/* verifies bearer tokens */
	struct ca_ctx		*ca;		/* borrowed */
	struct lifecycle	*lc;		/* borrowed */
	char			*http_base_url;	/* without trailing '/' */
	long			 crl_next_update_seconds;
	const struct conf	*conf;		/* borrowed, may be NULL */
	struct server_route	 route;		/* registered with the server */
};

/*
 * One row per (path pattern, method). Pattern segments are literals,
 * "{id}" (a valid identifier), "{user}" (an EST username, also stored in
 * id) or "{n}" (a version number); query names the accepted query
 * parameters, space separated.
 */
struct api_route {
	const char		*pattern;
	enum evhttp_cmd_type	 method;
	enum mgmt_role		 role;		/* least role allowed */
	const char		*query;
	void			(*fn)(struct mgmt_call *c);
};

#define API_PAGE_QUERY	"limit page_token"

static const struct api_route api_routes[] = {
	{ "cas", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, API_PAGE_QUERY,
	    mgmt_cas_list },
	{ "cas", EVHTTP_REQ_POST, MGMT_ROLE_ADMIN, "", mgmt_cas_create },
	{ "cas/{id}", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, "", mgmt_cas_get },
	{ "cas/{id}/bundle", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, "",
	    mgmt_cas_bundle },
	{ "cas/{id}/csr", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, "",
	    mgmt_cas_csr },
	{ "cas/{id}/certificate", EVHTTP_REQ_POST, MGMT_ROLE_ADMIN, "",
	    mgmt_cas_import },
	{ "cas/{id}/crl", EVHTTP_REQ_POST, MGMT_ROLE_OPERATOR, "",
	    mgmt_cas_crl },
	{ "cas/{id}", EVHTTP_REQ_DELETE, MGMT_ROLE_ADMIN, "now",
	    mgmt_cas_delete },
	{ "cas/{id}/renew", EVHTTP_REQ_POST, MGMT_ROLE_ADMIN, "",
	    mgmt_cas_renew },
	{ "cas/{id}/disable", EVHTTP_REQ_POST, MGMT_ROLE_ADMIN, "",
	    mgmt_cas_disable },
	{ "cas/{id}/enable", EVHTTP_REQ_POST, MGMT_ROLE_ADMIN, "",
	    mgmt_cas_enable },
	{ "cas/{id}/cancel-deletion", EVHTTP_REQ_POST, MGMT_ROLE_ADMIN, "",
	    mgmt_cas_cancel_deletion },
	{ "certificates", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR,
	    API_PAGE_QUERY " ca_id stage name expiring_within_days origin "
	    "renewal_due sort", mgmt_certs_list },
	{ "certificates", EVHTTP_REQ_POST, MGMT_ROLE_OPERATOR, "",
	    mgmt_certs_create },
	{ "certificates/{id}", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, "",
	    mgmt_certs_get },
	{ "certificates/{id}", EVHTTP_REQ_DELETE, MGMT_ROLE_OPERATOR, "now",
	    mgmt_certs_delete },
	{ "certificates/{id}/cancel-deletion", EVHTTP_REQ_POST,
	    MGMT_ROLE_OPERATOR, "", mgmt_certs_cancel_deletion },
	{ "certificates/{id}/renew", EVHTTP_REQ_POST, MGMT_ROLE_OPERATOR, "",
	    mgmt_certs_renew },
	{ "certificates/{id}/versions", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, "",
	    mgmt_versions_list },
	{ "certificates/{id}/versions/{n}", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR,
	    "include_private_key", mgmt_versions_get },
	{ "certificates/{id}/versions/{n}/revoke", EVHTTP_REQ_POST,
	    MGMT_ROLE_OPERATOR, "", mgmt_versions_revoke },
	{ "certificates/{id}/versions/{n}/promote", EVHTTP_REQ_POST,
	    MGMT_ROLE_OPERATOR, "", mgmt_versions_promote },
	{ "resources", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, API_PAGE_QUERY,
	    mgmt_resources_list },
	{ "resources", EVHTTP_REQ_POST, MGMT_ROLE_OPERATOR, "",
	    mgmt_resources_create },
	{ "resources/{id}", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, "",
	    mgmt_resources_get },
	{ "resources/{id}", EVHTTP_REQ_DELETE, MGMT_ROLE_OPERATOR, "",
	    mgmt_resources_delete },
	{ "associations", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR,
	    API_PAGE_QUERY " certificate_id", mgmt_assocs_list },
	{ "associations", EVHTTP_REQ_POST, MGMT_ROLE_OPERATOR, "",
	    mgmt_assocs_create },
	{ "associations/{id}", EVHTTP_REQ_DELETE, MGMT_ROLE_OPERATOR, "",
	    mgmt_assocs_delete },
	{ "audit", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR,
	    API_PAGE_QUERY " after action object who", mgmt_audit_list },
	/* EAB keys let their holder open ACME accounts: admin only, even to
	 * list them. */
	{ "acme/eab", EVHTTP_REQ_GET, MGMT_ROLE_ADMIN, API_PAGE_QUERY,
	    mgmt_eab_list },
	{ "acme/eab", EVHTTP_REQ_POST, MGMT_ROLE_ADMIN, "", mgmt_eab_create },
	{ "acme/eab/{id}", EVHTTP_REQ_DELETE, MGMT_ROLE_ADMIN, "",
	    mgmt_eab_delete },
	/* EST: reading is for auditors too (no secret is ever shown);
	 * adding clients and deciding requests is an operator's job. */
	{ "est/clients", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR, API_PAGE_QUERY,
	    mgmt_est_clients_list },
	{ "est/clients", EVHTTP_REQ_POST, MGMT_ROLE_OPERATOR, "",
	    mgmt_est_clients_create },
	{ "est/clients/{user}", EVHTTP_REQ_DELETE, MGMT_ROLE_OPERATOR, "",
	    mgmt_est_clients_delete },
	{ "est/requests", EVHTTP_REQ_GET, MGMT_ROLE_AUDITOR,
	    API_PAGE_QUERY " status", mgmt_est_requests_list },
	{ "est/requests/{id}/approve", EVHTTP_REQ_POST, MGMT_ROLE_OPERATOR,
	    "", mgmt_est_requests_approve },
	{ "est/requests/{id}/reject", EVHTTP_REQ_POST, MGMT_ROLE_OPERATOR,
	    "", mgmt_est_requests_reject },
};
#define API_NROUTES	(sizeof(api_routes) / sizeof(api_routes[0]))

/* Methods in the order an Allow header lists them. */
static const struct {
	enum evhttp_cmd_type	 cmd;
	const char		*name;
} api_methods[] = {
	{ EVHTTP_REQ_GET, "GET" },
	{ EVHTTP_REQ_POST, "POST" },
	{ EVHTTP_REQ_PUT, "PUT" },
	{ EVHTTP_REQ_PATCH, "PATCH" },
	{ EVHTTP_REQ_DELETE, "DELETE" },
	{ EVHTTP_REQ_HEAD, "HEAD" },
	{ EVHTTP_REQ_OPTIONS, "OPTIONS" },
	{ EVHTTP_REQ_TRACE, "TRACE" },
	{ EVHTTP_REQ_CONNECT, "CONNECT" },
};

static const char *
api_method_name(enum evhttp_cmd_type cmd)
{
	size_t i;

	for (i = 0; i < sizeof(api_methods) / sizeof(api_methods[0]); i++)
		if (api_methods[i].cmd == cmd)
			return api_methods[i].name;
	return "?";
}

/* ---- replies ---- */

static void
api_header(struct evhttp_request *req, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), name, value);
}

/* The error code of a status the server refused on our behalf. */
static const char *
api_status_code(int status)
{
	switch (status) {
	case 400:
		return "invalid_request";
	case 401:
		return "unauthorized";
	case 403:
		return "forbidden";
	case 404:
		return "not_found";
	case 405:
		return "method_not_allowed";
	case 408:
		return "timeout";
	case 409:
		return "conflict";
	case 413:
	case 414:
	case 431:
		return "too_large";
	case 503:
		return "unavailable";
	default:
		return status >= 500 ? "internal" : "invalid_request";
	}
}

/*
 * Sends {"error": {"code", "message"}} and logs the refusal: 401/403 as
 * warnings (someone knocked without the right key), other 4xx as info,
 * 5xx as errors. 401 carries the WWW-Authenticate challenge.
 */
static void
api_reply_error(struct evhttp_request *req, const char *method,
    const char *path, int status, const char *code, const char *msg)
{
	json_t *j;

	if (status >= 500)
		log_err("mgmt: %s %.*s -> %d %s: %s", method,
		    API_LOG_PATH_MAX, path, status, code, msg);
	else if (status == 401 || status == 403)
		log_warn("mgmt: %s %.*s -> %d %s: %s", method,
		    API_LOG_PATH_MAX, path, status, code, msg);
	else
		log_info("mgmt: %s %.*s -> %d %s: %s", method,
		    API_LOG_PATH_MAX, path, status, code, msg);
	if (status == 401)
		api_header(req, "WWW-Authenticate",
		    "Bearer realm=\"pkid\", error=\"invalid_token\"");
	api_header(req, "Cache-Control", "no-store");
	j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message",
	    msg);
	if (j == NULL) {
		server_reply(req, 500, API_CONTENT_JSON, NULL, 0);
		return;
	}
	server_reply_json(req, status, j);
}

void
mgmt_reply_error(struct mgmt_call *c, int status, const char *code,
    const char *fmt, ...)
{
	char msg[API_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	api_reply_error(c->req, c->method, c->path, status, code, msg);
}

void
mgmt_reply_cerr(struct mgmt_call *c, const struct common_error *err)
{
	int status;
	const char *code;

	switch (err->code) {
	case COMMON_E_INVALID:
		status = 400;
		code = "invalid_request";
		break;
	case COMMON_E_POLICY:
		status = 400;
		code = "policy";
		break;
	case COMMON_E_NOTFOUND:
		status = 404;
		code = "not_found";
		break;
	case COMMON_E_CONFLICT:
		status = 409;
		code = "conflict";
		break;
	case COMMON_E_FORBIDDEN:
		status = 403;
		code = "forbidden";
		break;
	default:
		status = 500;
		code = "internal";
		break;
	}
	mgmt_reply_error(c, status, code, "%s",
	    err->msg[0] != '\0' ? err->msg : "internal error");
}

void
mgmt_reply_json(struct mgmt_call *c, int status, json_t *j)
{
	if (j == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory building "
		    "the answer");
		return;
	}
	api_header(c->req, "Cache-Control", "no-store");
	server_reply_json(c->req, status, j);
}

/* ---- bodies and query strings ---- */

int
mgmt_body_object(struct mgmt_call *c, bool optional, json_t **out)
{
	json_error_t e;
	const char *body;
	size_t len = 0;
	json_t *j;

	*out = NULL;
	body = server_req_body(c->req, &len);
	if (body == NULL)
		len = 0;
	if (len > MGMT_BODY_MAX) {
		mgmt_reply_error(c, 413, "too_large", "body over %d bytes",
		    MGMT_BODY_MAX);
		return -1;
	}
	if (len == 0 && optional) {
		if ((*out = json_object()) == NULL) {
			mgmt_reply_error(c, 500, "internal", "out of memory");
			return -1;
		}
		return 0;
	}
	j = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES,
	    &e);
	if (j == NULL) {
		mgmt_reply_error(c, 400, "invalid_json",
		    "body is not valid JSON: line %d, column %d: %s",
		    e.line, e.column, e.text);
		return -1;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		mgmt_reply_error(c, 400, "invalid_json",
		    "body must be a JSON object");
		return -1;
	}
	*out = j;
	return 0;
}

/* True when word is one of the space-separated words of list. */
static bool
api_word_in(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	if (n == 0)
		return false;
	while ((p = strstr(p, word)) != NULL) {
		if ((p == list || p[-1] == ' ') &&
		    (p[n] == ' ' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

int
mgmt_body_known(struct mgmt_call *c, const json_t *obj,
    const char *const *allowed, const char *prefix)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)obj, key, v) {
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "unknown field \"%s%.64s\"", prefix, key);
			return -1;
		}
	}
	return 0;
}

const char *
mgmt_query(const struct mgmt_call *c, const char *name)
{
	return evhttp_find_header(c->query, name);
}

int
mgmt_query_page(struct mgmt_call *c, size_t *limit, const char **page_token)
{
	const char *s, *t;
	char *end;
	unsigned long v;
	size_t i;

	*limit = LIFECYCLE_PAGE_DEFAULT;
	*page_token = NULL;
	if ((s = mgmt_query(c, "limit")) != NULL) {
		errno = 0;
		v = strtoul(s, &end, 10);
		if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 ||
		    v < 1 || v > LIFECYCLE_PAGE_MAX) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "limit must be an integer 1..%d",
			    LIFECYCLE_PAGE_MAX);
			return -1;
		}
		*limit = v;
	}
	if ((t = mgmt_query(c, "page_token")) != NULL && t[0] != '\0') {
		for (i = 0; t[i] != '\0' && i <= API_PAGE_TOKEN_MAX; i++)
			if ((unsigned char)t[i] <= 0x20 ||
			    (unsigned char)t[i] > 0x7e)
				break;
		if (t[i] != '\0') {
			mgmt_reply_error(c, 400, "invalid_request",
			    "page_token must be up to %d printable characters",
			    API_PAGE_TOKEN_MAX);
			return -1;
		}
		*page_token = t;
	}
	return 0;
}

json_t *
mgmt_list_shape(json_t *res, const char *key,
    json_t *(*shape)(const json_t *rec))
{
	json_t *items, *next = NULL, *arr = NULL, *out = NULL, *one;
	size_t i;

	if (res == NULL)
		goto out;
	if (json_is_array(res))
		items = res;
	else {
		items = json_object_get(res, key);
		next = json_object_get(res, "next_page_token");
	}
	if (!json_is_array(items)) {
		log_err("mgmt: list %s: core answered without an array", key);
		goto out;
	}
	if ((arr = json_array()) == NULL)
		goto out;
	json_array_foreach(items, i, one) {
		if (json_array_append_new(arr, shape(one)) == -1)
			goto out;
	}
	out = json_pack("{s:o, s:O}", key, arr, "next_page_token",
	    json_is_string(next) ? next : json_null());
	arr = NULL;	/* stolen by json_pack, even when it fails */
out:
	json_decref(arr);
	json_decref(res);
	return out;
}

/*
 * Parses the query string into c->query and refuses malformed strings,
 * parameters the route does not take and repeated parameters. 0, or -1
 * after answering 400.
 */
static int
api_query_parse(struct mgmt_call *c, const char *allowed)
{
	const struct evhttp_uri *uri;
	const char *q;
	struct evkeyval *kv, *kv2;

	uri = evhttp_request_get_evhttp_uri(c->req);
	q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (q == NULL || q[0] == '\0')
		return 0;
	if (evhttp_parse_query_str(q, c->query) == -1) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "malformed query string");
		return -1;
	}
	TAILQ_FOREACH(kv, c->query, next) {
		if (!api_word_in(allowed, kv->key)) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "unknown query parameter \"%.64s\"", kv->key);
			return -1;
		}
		for (kv2 = TAILQ_NEXT(kv, next); kv2 != NULL;
		    kv2 = TAILQ_NEXT(kv2, next)) {
			if (strcmp(kv->key, kv2->key) == 0) {
				mgmt_reply_error(c, 400, "invalid_request",
				    "query parameter \"%s\" given twice",
				    kv->key);
				return -1;
			}
		}
	}
	return 0;
}

/* ---- routing ---- */

/* Parses a version number: decimal 1..UINT32_MAX without leading zeros. */
static bool
api_version_parse(const char *s, unsigned *out)
{
	unsigned long v;
	char *end;

	if (s[0] < '1' || s[0] > '9' || strlen(s) > 10)
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || errno != 0 || v > UINT32_MAX)
		return false;
	*out = (unsigned)v;
	return true;
}

/*
 * Matches the request segments against one pattern, capturing {id} and
 * {n} into c. Invalid identifiers do not match, so they answer 404.
 */
static bool
api_match(const char *pattern, char *const *segs, size_t nsegs,
    struct mgmt_call *c)
{
	const char *p = pattern, *slash;
	size_t i, n;

	for (i = 0; i < nsegs; i++) {
		if (*p == '\0')
			return false;
		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n == 4 && strncmp(p, "{id}", n) == 0) {
			if (!common_id_valid(segs[i]))
				return false;
			c->id = segs[i];
		} else if (n == 6 && strncmp(p, "{user}", n) == 0) {
			if (!mgmt_est_username_valid(segs[i]))
				return false;
			c->id = segs[i];
		} else if (n == 3 && strncmp(p, "{n}", n) == 0) {
			if (!api_version_parse(segs[i], &c->version))
				return false;
		} else if (strlen(segs[i]) != n ||
		    strncmp(p, segs[i], n) != 0)
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return *p == '\0';
}

/*
 * Splits the path after the prefix into segments (in buf). Empty
 * segments ("//", a trailing '/') are not part of any route. Returns the
 * count, or -1 when the path cannot name a route.
 */
static int
api_split(const char *rest, char *buf, size_t buflen, char **segs)
{
	size_t n = 0;
	char *p, *slash;

	if (common_path(buf, buflen, "%s", rest) == -1 || buf[0] == '\0')
		return -1;
	for (p = buf; p != NULL; p = slash) {
		if (n == MGMT_SEGMENTS_MAX)
			return -1;
		if ((slash = strchr(p, '/')) != NULL)
			*slash++ = '\0';
		if (*p == '\0')
			return -1;
		segs[n++] = p;
	}
	return (int)n;
}

/* The request handler registered for /api/v1/. */
static void
api_handle(struct evhttp_request *req, void *arg)
{
	struct mgmt *m = arg;
	struct mgmt_call c;
	struct evkeyvalq query;
	char buf[API_PATH_MAX], why[API_WHY_MAX], allow[API_ALLOW_MAX];
	char *segs[MGMT_SEGMENTS_MAX], *subject = NULL;
	const struct api_route *hit = NULL;
	const char *authz;
	enum evhttp_cmd_type cmd;
	unsigned allowed = 0;
	size_t i, off;
	int nsegs;

	TAILQ_INIT(&query);
	memset(&c, 0, sizeof(c));
	c.req = req;
	c.ca = m->ca;
	c.lc = m->lc;
	c.http_base_url = m->http_base_url;
	c.crl_next_update_seconds = m->crl_next_update_seconds;
	c.conf = m->conf;
	cmd = evhttp_request_get_command(req);
	c.method = api_method_name(cmd);
	c.path = server_req_path(req);
	if (c.path == NULL)
		c.path = "";
	c.query = &query;

	authz = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (mgmt_token_verify_header(m->key, authz, &subject, &c.role, why,
	    sizeof(why)) == -1) {
		mgmt_reply_error(&c, 401, "unauthorized", "%s", why);
		goto out;
	}
	if (common_path(c.actor, sizeof(c.actor), "token:%s", subject) ==
	    -1) {
		mgmt_reply_error(&c, 401, "unauthorized", "token subject too "
		    "long");
		goto out;
	}

	if (strncmp(c.path, API_PREFIX, sizeof(API_PREFIX) - 1) != 0 ||
	    (nsegs = api_split(c.path + sizeof(API_PREFIX) - 1, buf,
	    sizeof(buf), segs)) == -1) {
		mgmt_reply_error(&c, 404, "not_found", "no such route");
		goto out;
	}
	for (i = 0; i < API_NROUTES; i++) {
		c.id = NULL;
		c.version = 0;
		if (!api_match(api_routes[i].pattern, segs, (size_t)nsegs, &c))
			continue;
		allowed |= (unsigned)api_routes[i].method;
		if (api_routes[i].method == cmd) {
			hit = &api_routes[i];
			break;
		}
	}
	if (hit == NULL && allowed == 0) {
		mgmt_reply_error(&c, 404, "not_found", "no such route");
		goto out;
	}
	if (hit == NULL) {
		allow[0] = '\0';
		off = 0;
		for (i = 0; i < sizeof(api_methods) / sizeof(api_methods[0]);
		    i++) {
			if ((allowed & (unsigned)api_methods[i].cmd) == 0)
				continue;
			off += (size_t)snprintf(allow + off,
			    sizeof(allow) - off, "%s%s", off > 0 ? ", " : "",
			    api_methods[i].name);
			if (off >= sizeof(allow))
				break;
		}
		api_header(req, "Allow", allow);
		mgmt_reply_error(&c, 405, "method_not_allowed",
		    "method %s not allowed here (allowed: %s)", c.method,
		    allow);
		goto out;
	}
	if (c.role < hit->role) {
		mgmt_reply_error(&c, 403, "forbidden",
		    "this operation requires role %s (token has %s)",
		    mgmt_role_name(hit->role), mgmt_role_name(c.role));
		goto out;
	}
	if (api_query_parse(&c, hit->query) == -1)
		goto out;
	hit->fn(&c);
out:
	evhttp_clear_headers(&query);
	free(subject);
}

/* Answers refusals the server made before routing (size limits, ...). */
static void
api_error(struct evhttp_request *req, int status, const char *msg,
    void *arg)
{
	const char *path = server_req_path(req);

	(void)arg;
	api_reply_error(req, api_method_name(evhttp_request_get_command(req)),
	    path != NULL ? path : "", status, api_status_code(status),
	    msg != NULL && msg[0] != '\0' ? msg : "request refused");
}

/*
 * Loads the token key, copies the configuration and registers the
 * /api/v1/ route on the mgmt listener. ca and lc are borrowed and must
 * outlive m; m must outlive the server's use of the route (free it after
 * server_run() returned). NULL on failure (logged).
 */
struct mgmt *
mgmt_new(struct server *srv, struct ca_ctx *ca, struct lifecycle *lc,
    const struct mgmt_config *cfg)
{
	struct mgmt *m = NULL, *ret = NULL;
	const char *base;
	size_t n;

	if (srv == NULL || ca == NULL || lc == NULL || cfg == NULL) {
		log_err("mgmt: new: missing server, CA, lifecycle or "
		    "configuration");
		goto out;
	}
	if (cfg->crl_next_update_seconds <= 0) {
		log_err("mgmt: new: crl_next_update_seconds %ld must be > 0",
		    cfg->crl_next_update_seconds);
		goto out;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		log_err("mgmt: new: out of memory");
		goto out;
	}
	m->ca = ca;
	m->lc = lc;
	m->crl_next_update_seconds = cfg->crl_next_update_seconds;
	m->conf = cfg->conf;
	base = cfg->http_base_url != NULL ? cfg->http_base_url : "";
	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	if ((m->http_base_url = strndup(base, n)) == NULL) {
		log_err("mgmt: new: out of memory");
		goto out;
	}
	if ((m->key = mgmt_token_key_load(cfg->data_dir)) == NULL)
		goto out;
	m->route.name = "mgmt";
	m->route.prefix = API_PREFIX;
	m->route.listeners = SERVER_ON(SERVER_MGMT);
	m->route.max_body = MGMT_BODY_MAX;
	m->route.handle = api_handle;
	m->route.error = api_error;
	m->route.arg = m;
	if (server_route_add(srv, &m->route) == -1) {
		log_err("mgmt: new: cannot add route %s: route table full",
		    API_PREFIX);
		goto out;
	}
	ret = m;	/* steal */
	m = NULL;
out:
	mgmt_free(m);
	return ret;
}

void
mgmt_free(struct mgmt *m)
{
	if (m == NULL)
		return;
	mgmt_token_key_free(m->key);
	free(m->http_base_url);
	free(m);
}
