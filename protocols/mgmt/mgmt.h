/*
 * protocols/mgmt/ — the management API v1 (JSON over HTTPS on the mgmt
 * listener) and its bearer-token authentication.
 *
 * Tokens are JWTs (libjwt, ES256) signed by the installation's key in
 * DATA/token.key (mode 0600, created on first use) with claims iss
 * "pkid", sub, role ("admin" | "operator" | "auditor"), iat, exp, jti.
 */
#ifndef PKID_MGMT_H
#define PKID_MGMT_H

#include <stdbool.h>

#include "ca/ca.h"
#include "lifecycle/lifecycle.h"
#include "server/server.h"

#define MGMT_BODY_MAX	(256 * 1024)
#define MGMT_TOKEN_MAX		4096	/* bytes of a bearer token */
#define MGMT_TOKEN_TTL_MAX	(10L * 366 * 86400)	/* longest token life */
#define MGMT_SUBJECT_MAX	128	/* bytes of the "sub" claim */
#define MGMT_IAT_SKEW		300	/* seconds "iat" may lie ahead */
#define MGMT_EST_USERNAME_MAX	64	/* bytes of an EST client username */
#define MGMT_EST_PASSWORD_MIN	8	/* bytes of an EST client password */
#define MGMT_EST_PASSWORD_MAX	COMMON_PASSWORD_MAX
#define MGMT_EST_REASON_MAX	256	/* bytes of a rejection reason */

enum mgmt_role {
	MGMT_ROLE_AUDITOR,
	MGMT_ROLE_OPERATOR,
	MGMT_ROLE_ADMIN,
	MGMT_ROLE__MAX
};

struct mgmt;
struct conf;

struct mgmt_config {
	const char	*data_dir;
	long		 crl_next_update_seconds;
	const char	*http_base_url;	/* "http://HOST:PORT": crl_url, ca_cert_url */
	const struct conf *conf;	/* est.labels, against which EST client
					   labels are checked; borrowed. NULL:
					   only "" (the default label) */
};

/* Loads (or creates) the token key and registers the /api/v1/ routes on
 * the mgmt listener. Borrows ca and lc. NULL on failure. */
struct mgmt *mgmt_new(struct server *srv, struct ca_ctx *ca,
    struct lifecycle *lc, const struct mgmt_config *cfg);
void mgmt_free(struct mgmt *m);

/* Parses "admin"|"operator"|"auditor". */
int mgmt_role_parse(const char *s, enum mgmt_role *out);
/* Mints a token for role valid ttl_seconds, signed by DATA/token.key
 * (created when missing). Returns the token (to free()) or NULL. */
char *mgmt_token_mint(const char *data_dir, const char *subject,
    enum mgmt_role role, long ttl_seconds);

/* ---- token verification (also used by tests and tools) ---- */

/* The public half of an installation's token key. */
struct mgmt_token_key;

/* "admin"|"operator"|"auditor"; "unknown" out of range. */
const char *mgmt_role_name(enum mgmt_role role);
/* Loads (or creates, as mgmt_token_mint does) DATA/token.key and keeps
 * only its public key. NULL on failure (logged). */
struct mgmt_token_key *mgmt_token_key_load(const char *data_dir);
void mgmt_token_key_free(struct mgmt_token_key *k);
/* Verifies a bearer token: ES256 only (alg "none" and HMAC are refused
 * before and after the signature check), signature by k, iss "pkid", exp
 * in the future, iat at most MGMT_IAT_SKEW ahead, known role, sane sub.
 * 0 with *subject (to free()) and *role; -1 with a reason in why (the
 * token itself is never quoted). */
int mgmt_token_verify(const struct mgmt_token_key *k, const char *token,
    char **subject, enum mgmt_role *role, char *why, size_t whylen);
/* Same, from an Authorization header value (NULL: missing), which must be
 * "Bearer <token>" (scheme case-insensitive). */
int mgmt_token_verify_header(const struct mgmt_token_key *k,
    const char *authorization, char **subject, enum mgmt_role *role,
    char *why, size_t whylen);

/* ---- internal: shared by the files of protocols/mgmt ---- */

#define MGMT_SEGMENTS_MAX	8	/* path segments after /api/v1/ */
#define MGMT_ACTOR_MAX		(MGMT_SUBJECT_MAX + 8)	/* "token:<sub>" */

struct evkeyvalq;

/* One authenticated, routed request, handed to a handler. */
struct mgmt_call {
	struct evhttp_request	*req;
	struct ca_ctx		*ca;		/* borrowed from struct mgmt */
	struct lifecycle	*lc;
	const char		*http_base_url;	/* "" when unknown */
	long			 crl_next_update_seconds;
	const struct conf	*conf;		/* NULL when not given */
	const char		*method;	/* "GET", ... */
	const char		*path;		/* as received, for logs */
	enum mgmt_role		 role;
	char			 actor[MGMT_ACTOR_MAX];	/* "token:<sub>" */
	const char		*id;		/* the {id} segment or NULL */
	unsigned		 version;	/* the {n} segment or 0 */
	struct evkeyvalq	*query;		/* parsed query string */
};

/* True for an EST client username: 1..MGMT_EST_USERNAME_MAX of
 * [A-Za-z0-9._@-], not "." or "..". Routes match it as "{user}". */
bool mgmt_est_username_valid(const char *s);

/* Answers {"error": {"code", "message"}} with status and logs one line
 * naming method, path, status and reason (log_err for 5xx). */
void mgmt_reply_error(struct mgmt_call *c, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Answers the error a core module reported (invalid -> 400, policy ->
 * 400, not_found -> 404, conflict -> 409, forbidden -> 403, else 500). */
void mgmt_reply_cerr(struct mgmt_call *c, const struct common_error *err);
/* Answers status with a JSON body (steals j; NULL is a 500). */
void mgmt_reply_json(struct mgmt_call *c, int status, json_t *j);
/* Parses the request body as a JSON object. An empty body gives an empty
 * object when optional is true. 0 and *out (new reference), or -1 after
 * answering 400 invalid_json. */
int mgmt_body_object(struct mgmt_call *c, bool optional, json_t **out);
/* Refuses (400 invalid_request naming the field) any key of obj outside
 * the NULL-terminated list allowed; prefix ("policy.") names nesting. */
int mgmt_body_known(struct mgmt_call *c, const json_t *obj,
    const char *const *allowed, const char *prefix);
/* The decoded value of query parameter name, or NULL. */
const char *mgmt_query(const struct mgmt_call *c, const char *name);
/* ?limit= (default LIFECYCLE_PAGE_DEFAULT) and ?page_token=. 0, or -1
 * after answering 400. */
int mgmt_query_page(struct mgmt_call *c, size_t *limit,
    const char **page_token);
/* Builds a list answer {"<key>": [...], "next_page_token": ..} from what
 * lifecycle returned (an object holding key, or a bare array), keeping
 * only the fields shape() keeps. Steals res. NULL on failure. */
json_t *mgmt_list_shape(json_t *res, const char *key,
    json_t *(*shape)(const json_t *rec));

/* Handlers (cas.c, certs.c, eab.c); each sends exactly one reply. */
void mgmt_cas_list(struct mgmt_call *c);
void mgmt_cas_create(struct mgmt_call *c);
void mgmt_cas_get(struct mgmt_call *c);
void mgmt_cas_bundle(struct mgmt_call *c);
void mgmt_cas_csr(struct mgmt_call *c);
void mgmt_cas_import(struct mgmt_call *c);
void mgmt_cas_crl(struct mgmt_call *c);
void mgmt_cas_renew(struct mgmt_call *c);
void mgmt_cas_disable(struct mgmt_call *c);
void mgmt_cas_enable(struct mgmt_call *c);
void mgmt_cas_delete(struct mgmt_call *c);
void mgmt_cas_cancel_deletion(struct mgmt_call *c);
void mgmt_certs_list(struct mgmt_call *c);
void mgmt_certs_create(struct mgmt_call *c);
void mgmt_certs_get(struct mgmt_call *c);
void mgmt_certs_delete(struct mgmt_call *c);
void mgmt_certs_renew(struct mgmt_call *c);
void mgmt_versions_list(struct mgmt_call *c);
void mgmt_versions_get(struct mgmt_call *c);
void mgmt_versions_revoke(struct mgmt_call *c);
void mgmt_versions_promote(struct mgmt_call *c);
void mgmt_certs_cancel_deletion(struct mgmt_call *c);
void mgmt_resources_list(struct mgmt_call *c);
void mgmt_resources_create(struct mgmt_call *c);
void mgmt_resources_get(struct mgmt_call *c);
void mgmt_resources_delete(struct mgmt_call *c);
void mgmt_assocs_list(struct mgmt_call *c);
void mgmt_assocs_create(struct mgmt_call *c);
void mgmt_assocs_delete(struct mgmt_call *c);
/* The audit trail (audit.c), auditor and up. */
void mgmt_audit_list(struct mgmt_call *c);
/* ACME External Account Binding keys (eab.c), admin only. */
void mgmt_eab_create(struct mgmt_call *c);
void mgmt_eab_list(struct mgmt_call *c);
void mgmt_eab_delete(struct mgmt_call *c);
/* EST clients and manual-approval requests (est.c). */
void mgmt_est_clients_create(struct mgmt_call *c);
void mgmt_est_clients_list(struct mgmt_call *c);
void mgmt_est_clients_delete(struct mgmt_call *c);
void mgmt_est_requests_list(struct mgmt_call *c);
void mgmt_est_requests_approve(struct mgmt_call *c);
void mgmt_est_requests_reject(struct mgmt_call *c);

#endif
