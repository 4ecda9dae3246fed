/*
 * protocols/mgmt/est.c — /api/v1/est/clients (the HTTP Basic clients of
 * the EST server) and /api/v1/est/requests (EST enrollments waiting for
 * manual approval).
 *
 * Clients: a password arrives once, in the creation body, and is stored
 * only as a PBKDF2-SHA256 hash (common_password_hash); no answer and no
 * log line ever carries it or its hash. A client may be bound to labels
 * (each a label of est.labels, or "" for the unlabelled endpoint); none
 * means every label.
 *
 * Requests: protocols/est records a request when a label with
 * manual_approval receives a CSR; approving or rejecting here only
 * flips its status and records who, when and why. The certificate is
 * issued by protocols/est when the client posts the same CSR again.
 *
 * Both tables are EST protocol state, not certificates, so they go
 * straight to store/ and leave no audit record; every change is logged.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conf/conf.h"
#include "protocols/mgmt/mgmt.h"

#define EST_TIME_MAX		32	/* RFC 3339 timestamp + NUL */
#define EST_REQUEST_ID_LEN	64	/* lower-case hex SHA-256 */
/* Labels one client may name: every configured label and "". */
#define EST_CLIENT_LABELS_MAX	(CONF_EST_LABELS_MAX + 1)

static const char *const est_client_fields[] = {
	"username", "password", "labels", NULL
};
static const char *const est_reject_fields[] = { "reason", NULL };
static const char *const est_no_fields[] = { NULL };
/* "issued": protocols/est delivered the certificate of an approved
 * request. */
static const char *const est_statuses[] = {
	"pending", "approved", "rejected", "issued", NULL
};
/* What the API shows of a client and of a request ("csr" stays in). */
static const char *const est_client_shown[] = {
	"username", "labels", "created_at", "created_by", NULL
};
static const char *const est_request_shown[] = {
	"id", "label", "status", "subject", "sans", "requested_by",
	"operation", "created_at", "decided_by", "decided_at", "reason",
	"cert_id", "serial", "issued_at", NULL
};

/*
 * An EST username is 1..MGMT_EST_USERNAME_MAX of [A-Za-z0-9._@-] (so
 * "user@example.com" works, and ':' — the HTTP Basic separator — never
 * appears), and not "." or ".." (it is a URL path segment).
 */
bool
mgmt_est_username_valid(const char *s)
{
	size_t i;

	if (s == NULL || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= MGMT_EST_USERNAME_MAX)
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '@' || c == '-'))
			return false;
	}
	return i > 0;
}

/* True for an est_request id: 64 lower-case hex digits. */
static bool
est_request_id_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= EST_REQUEST_ID_LEN ||
		    !((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == EST_REQUEST_ID_LEN;
}

/* A copy of the listed fields of rec (null when absent); NULL on
 * allocation failure. */
static json_t *
est_pick(const json_t *rec, const char *const *keys)
{
	json_t *out = json_object(), *v;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; keys[i] != NULL; i++) {
		if ((v = json_object_get(rec, keys[i])) == NULL)
			v = json_null();
		if (json_object_set(out, keys[i], v) == -1) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static json_t *
est_client_public(const json_t *rec)
{
	return est_pick(rec, est_client_shown);
}

static json_t *
est_request_public(const json_t *rec)
{
	return est_pick(rec, est_request_shown);
}

/*
 * Parses the body of a client creation. Like mgmt_body_object, except
 * that a JSON syntax error is reported by position only: jansson's text
 * quotes the body ("near '...'"), which may be the password, and the
 * refusal is logged. 0 and *out, or -1 after answering.
 */
static int
est_body_secret(struct mgmt_call *c, json_t **out)
{
	json_error_t e;
	const char *body;
	size_t len = 0;
	json_t *j;

	*out = NULL;
	if ((body = server_req_body(c->req, &len)) == NULL)
		len = 0;
	if (len > MGMT_BODY_MAX) {
		mgmt_reply_error(c, 413, "too_large", "body over %d bytes",
		    MGMT_BODY_MAX);
		return -1;
	}
	j = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES,
	    &e);
	if (j == NULL) {
		mgmt_reply_error(c, 400, "invalid_json", "body is not valid "
		    "JSON (line %d, column %d)", e.line, e.column);
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

/*
 * Checks "labels" of a client: absent or null gives an empty array
 * (every label); otherwise an array of distinct strings, each "" (the
 * unlabelled endpoint) or a label of est.labels. 0 and *out (new
 * reference), or -1 after answering 400.
 */
static int
est_client_labels(struct mgmt_call *c, const json_t *v, json_t **out)
{
	const json_t *e, *e2;
	const char *name;
	size_t i, j;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if ((*out = json_array()) == NULL) {
			mgmt_reply_error(c, 500, "internal", "out of memory");
			return -1;
		}
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > EST_CLIENT_LABELS_MAX) {
		mgmt_reply_error(c, 400, "invalid_request", "field \"labels\" "
		    "must be an array of at most %d label names",
		    EST_CLIENT_LABELS_MAX);
		return -1;
	}
	json_array_foreach(v, i, e) {
		if ((name = json_string_value(e)) == NULL ||
		    strlen(name) != json_string_length(e)) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "labels[%zu] must be a string", i);
			return -1;
		}
		/* Without a configuration only the default label exists. */
		if (c->conf != NULL ? conf_est_label_find(c->conf,
		    name) == NULL : name[0] != '\0') {
			mgmt_reply_error(c, 400, "invalid_request",
			    "labels[%zu] \"%.64s\" is not a configured EST "
			    "label (est.labels; \"\" is the default label)", i,
			    name);
			return -1;
		}
		for (j = 0; j < i; j++) {
			e2 = json_array_get(v, j);
			if (strcmp(json_string_value(e2), name) == 0) {
				mgmt_reply_error(c, 400, "invalid_request",
				    "labels[%zu] \"%.64s\" is listed twice", i,
				    name);
				return -1;
			}
		}
	}
	if ((*out = json_deep_copy(v)) == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		return -1;
	}
	return 0;
}

struct est_client_put {
	const char	*username;
	const json_t	*rec;
};

/* Stores a new client; 1 when the username is taken. */
static int
est_client_create_txn(struct store_txn *txn, void *arg)
{
	struct est_client_put *p = arg;
	json_t *old;

	/* Read under the txn so the existence check and the put agree. */
	old = store_est_client_get(store_txn_store(txn), txn, p->username);
	if (old != NULL) {
		json_decref(old);
		return 1;
	}
	if (store_txn_failed(txn))
		return -1;
	return store_est_client_put(txn, p->username, p->rec);
}

/*
 * POST /est/clients (operator) {"username", "password", "labels"} ->
 * 201 {"username", "labels", "created_at"}; 409 when the username
 * exists. The password is hashed here and wiped from the parsed body.
 */
void
mgmt_est_clients_create(struct mgmt_call *c)
{
	char created[EST_TIME_MAX];
	const json_t *user, *pw = NULL;
	const char *username;
	struct est_client_put put;
	json_t *body = NULL, *labels = NULL, *rec = NULL;
	char *hash = NULL;
	size_t pwlen = 0;
	int rc;

	if (est_body_secret(c, &body) == -1)
		goto out;
	if (mgmt_body_known(c, body, est_client_fields, "") == -1)
		goto out;
	user = json_object_get(body, "username");
	pw = json_object_get(body, "password");
	if ((username = json_string_value(user)) == NULL ||
	    strlen(username) != json_string_length(user) ||
	    !mgmt_est_username_valid(username)) {
		mgmt_reply_error(c, 400, "invalid_request", "field "
		    "\"username\" must be 1..%d letters, digits, '.', '_', "
		    "'@' or '-'", MGMT_EST_USERNAME_MAX);
		goto out;
	}
	if (pw != NULL && json_is_string(pw))
		pwlen = json_string_length(pw);
	if (!json_is_string(pw) || pwlen < MGMT_EST_PASSWORD_MIN ||
	    pwlen > MGMT_EST_PASSWORD_MAX ||
	    strlen(json_string_value(pw)) != pwlen) {
		mgmt_reply_error(c, 400, "invalid_request", "field "
		    "\"password\" must be a string of %d..%d bytes without "
		    "NUL", MGMT_EST_PASSWORD_MIN, MGMT_EST_PASSWORD_MAX);
		goto out;
	}
	if (est_client_labels(c, json_object_get(body, "labels"),
	    &labels) == -1)
		goto out;
	if ((hash = common_password_hash(json_string_value(pw),
	    COMMON_PASSWORD_ITERATIONS)) == NULL) {
		mgmt_reply_error(c, 500, "internal", "cannot hash the "
		    "password");
		goto out;
	}
	common_time_rfc3339(common_now(), created, sizeof(created));
	rec = json_pack("{s:s, s:s, s:O, s:s, s:s}", "username", username,
	    "password_hash", hash, "labels", labels, "created_at", created,
	    "created_by", c->actor);
	if (rec == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		goto out;
	}
	put.username = username;
	put.rec = rec;
	rc = store_txn_run(lifecycle_store(c->lc), est_client_create_txn,
	    &put);
	if (rc == 1) {
		mgmt_reply_error(c, 409, "conflict", "EST client \"%s\" "
		    "already exists", username);
		goto out;
	}
	if (rc != 0) {
		mgmt_reply_error(c, 500, "internal", "cannot store EST client "
		    "\"%s\"", username);
		goto out;
	}
	log_info("mgmt: %s created EST client \"%s\" (%zu label(s)%s)",
	    c->actor, username, json_array_size(labels),
	    json_array_size(labels) == 0 ? ": every label" : "");
	mgmt_reply_json(c, 201, json_pack("{s:s, s:O, s:s}", "username",
	    username, "labels", labels, "created_at", created));
out:
	if (pwlen > 0)
		OPENSSL_cleanse((char *)(uintptr_t)json_string_value(pw),
		    pwlen);
	if (hash != NULL) {
		OPENSSL_cleanse(hash, strlen(hash));
		free(hash);
	}
	json_decref(rec);
	json_decref(labels);
	json_decref(body);
}

/* GET /est/clients -> {"est_clients": [{"username", "labels",
 * "created_at", "created_by"}], "next_page_token"}, by username. */
void
mgmt_est_clients_list(struct mgmt_call *c)
{
	struct store_page page;
	const char *token;
	char *next = NULL;
	json_t *items;
	size_t limit;

	if (mgmt_query_page(c, &limit, &token) == -1)
		return;
	if (token != NULL && !mgmt_est_username_valid(token)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "page_token is not a valid token");
		return;
	}
	memset(&page, 0, sizeof(page));
	page.after = token;
	page.limit = limit;
	if ((items = store_est_client_list(lifecycle_store(c->lc), NULL,
	    &page, &next)) == NULL) {
		mgmt_reply_error(c, 500, "internal", "cannot list EST "
		    "clients");
		return;
	}
	mgmt_reply_json(c, 200, mgmt_list_shape(json_pack("{s:o, s:o}",
	    "est_clients", items, "next_page_token", next != NULL ?
	    json_string(next) : json_null()), "est_clients",
	    est_client_public));
	free(next);
}

static int
est_client_del_txn(struct store_txn *txn, void *arg)
{
	const char *username = arg;
	json_t *rec;

	if ((rec = store_est_client_get(store_txn_store(txn), txn,
	    username)) == NULL)
		return store_txn_failed(txn) ? -1 : 1;
	json_decref(rec);
	return store_est_client_del(txn, username);
}

/* DELETE /est/clients/{username} (operator) -> 204. Connections already
 * authenticated are not affected; the next request is. */
void
mgmt_est_clients_delete(struct mgmt_call *c)
{
	int rc;

	rc = store_txn_run(lifecycle_store(c->lc), est_client_del_txn,
	    (void *)(uintptr_t)c->id);
	if (rc == 1) {
		mgmt_reply_error(c, 404, "not_found", "no EST client \"%s\"",
		    c->id);
		return;
	}
	if (rc != 0) {
		mgmt_reply_error(c, 500, "internal", "cannot delete EST client "
		    "\"%s\"", c->id);
		return;
	}
	log_info("mgmt: %s deleted EST client \"%s\"", c->actor, c->id);
	server_reply(c->req, 204, NULL, NULL, 0);
}

/* store_page filter: the request's status equals arg. */
static bool
est_status_is(const json_t *rec, void *arg)
{
	const char *s = json_string_value(json_object_get(rec, "status"));

	return s != NULL && strcmp(s, arg) == 0;
}

/* GET /est/requests[?status=S] -> {"est_requests": [.. without "csr"
 * ..], "next_page_token"}, by id. */
void
mgmt_est_requests_list(struct mgmt_call *c)
{
	struct store_page page;
	const char *token, *status;
	char *next = NULL;
	json_t *items;
	size_t limit, i;

	if (mgmt_query_page(c, &limit, &token) == -1)
		return;
	if (token != NULL && !est_request_id_valid(token)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "page_token is not a valid token");
		return;
	}
	memset(&page, 0, sizeof(page));
	if ((status = mgmt_query(c, "status")) != NULL) {
		for (i = 0; est_statuses[i] != NULL; i++)
			if (strcmp(status, est_statuses[i]) == 0)
				break;
		if (est_statuses[i] == NULL) {
			mgmt_reply_error(c, 400, "invalid_request", "status "
			    "must be pending, approved, rejected or issued");
			return;
		}
		page.filter = est_status_is;
		page.arg = (void *)(uintptr_t)est_statuses[i];
	}
	page.after = token;
	page.limit = limit;
	if ((items = store_est_request_list(lifecycle_store(c->lc), NULL,
	    &page, &next)) == NULL) {
		mgmt_reply_error(c, 500, "internal", "cannot list EST "
		    "requests");
		return;
	}
	mgmt_reply_json(c, 200, mgmt_list_shape(json_pack("{s:o, s:o}",
	    "est_requests", items, "next_page_token", next != NULL ?
	    json_string(next) : json_null()), "est_requests",
	    est_request_public));
	free(next);
}

/* One decision on a request, made inside a transaction. */
struct est_decision {
	const char	*id;
	const char	*status;	/* "approved" | "rejected" */
	const char	*actor;
	const char	*reason;	/* NULL: leave the field as it is */
	char		 was[16];	/* status found when not pending */
	json_t		*rec;		/* the decided record (out) */
};

/* Flips a pending request; 1 when absent, 2 when already decided. */
static int
est_decide_txn(struct store_txn *txn, void *arg)
{
	struct est_decision *d = arg;
	char now[EST_TIME_MAX];
	const char *status;
	json_t *rec;
	int rc = -1;

	json_decref(d->rec);	/* from a try ended by a deadlock */
	d->rec = NULL;
	if ((rec = store_est_request_get(store_txn_store(txn), txn,
	    d->id)) == NULL)
		return store_txn_failed(txn) ? -1 : 1;
	status = json_string_value(json_object_get(rec, "status"));
	if (status == NULL || strcmp(status, "pending") != 0) {
		snprintf(d->was, sizeof(d->was), "%s", status != NULL ?
		    status : "unknown");
		rc = 2;
		goto out;
	}
	common_time_rfc3339(common_now(), now, sizeof(now));
	if (json_object_set_new(rec, "status", json_string(d->status)) ==
	    -1 ||
	    json_object_set_new(rec, "decided_by", json_string(d->actor)) ==
	    -1 ||
	    json_object_set_new(rec, "decided_at", json_string(now)) == -1 ||
	    (d->reason != NULL && json_object_set_new(rec, "reason",
	    json_string(d->reason)) == -1)) {
		log_err("mgmt: EST request %s: out of memory", d->id);
		goto out;
	}
	if (store_est_request_put(txn, d->id, rec) == -1)
		goto out;
	d->rec = rec;	/* steal */
	rec = NULL;
	rc = 0;
out:
	json_decref(rec);
	return rc;
}

/* Runs a decision and answers: 200 with the request, 404, 409 or 500. */
static void
est_decide(struct mgmt_call *c, const char *status, const char *reason)
{
	struct est_decision d;
	int rc;

	memset(&d, 0, sizeof(d));
	d.id = c->id;
	d.status = status;
	d.actor = c->actor;
	d.reason = reason;
	rc = store_txn_run(lifecycle_store(c->lc), est_decide_txn, &d);
	if (rc == 1) {
		mgmt_reply_error(c, 404, "not_found", "no EST request %s",
		    c->id);
		goto out;
	}
	if (rc == 2) {
		mgmt_reply_error(c, 409, "conflict", "EST request %s is %s; "
		    "only pending requests can be decided", c->id, d.was);
		goto out;
	}
	if (rc != 0 || d.rec == NULL) {
		mgmt_reply_error(c, 500, "internal", "cannot record the "
		    "decision on EST request %s", c->id);
		goto out;
	}
	log_info("mgmt: %s %s EST request %s (label \"%s\", subject \"%.128s\""
	    ", requested by %s)%s%.256s", c->actor, status, c->id,
	    json_string_value(json_object_get(d.rec, "label")) != NULL ?
	    json_string_value(json_object_get(d.rec, "label")) : "",
	    json_string_value(json_object_get(d.rec, "subject")) != NULL ?
	    json_string_value(json_object_get(d.rec, "subject")) : "",
	    json_string_value(json_object_get(d.rec, "requested_by")) != NULL ?
	    json_string_value(json_object_get(d.rec, "requested_by")) : "?",
	    reason != NULL && reason[0] != '\0' ? ": " : "",
	    reason != NULL ? reason : "");
	mgmt_reply_json(c, 200, est_request_public(d.rec));
out:
	json_decref(d.rec);
}

/* True for a reason of at most MGMT_EST_REASON_MAX bytes without control
 * characters. */
static bool
est_reason_ok(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t i, len = json_string_length(v);

	if (s == NULL || len > MGMT_EST_REASON_MAX || strlen(s) != len)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* POST /est/requests/{id}/approve (operator), empty body -> 200 the
 * request, now "approved"; 409 unless it was pending. */
void
mgmt_est_requests_approve(struct mgmt_call *c)
{
	json_t *body = NULL;

	if (!est_request_id_valid(c->id)) {
		mgmt_reply_error(c, 404, "not_found", "no EST request %s",
		    c->id);
		return;
	}
	if (mgmt_body_object(c, true, &body) == -1)
		return;
	if (mgmt_body_known(c, body, est_no_fields, "") == 0)
		est_decide(c, "approved", NULL);
	json_decref(body);
}

/* POST /est/requests/{id}/reject (operator) {"reason"} -> 200 the
 * request, now "rejected"; 409 unless it was pending. */
void
mgmt_est_requests_reject(struct mgmt_call *c)
{
	const json_t *reason;
	json_t *body = NULL;

	if (!est_request_id_valid(c->id)) {
		mgmt_reply_error(c, 404, "not_found", "no EST request %s",
		    c->id);
		return;
	}
	if (mgmt_body_object(c, true, &body) == -1)
		return;
	if (mgmt_body_known(c, body, est_reject_fields, "") == -1)
		goto out;
	reason = json_object_get(body, "reason");
	if (reason != NULL && !json_is_null(reason) && !est_reason_ok(reason)) {
		mgmt_reply_error(c, 400, "invalid_request", "field \"reason\" "
		    "must be a string of at most %d bytes without control "
		    "characters", MGMT_EST_REASON_MAX);
		goto out;
	}
	est_decide(c, "rejected", json_is_string(reason) ?
	    json_string_value(reason) : "");
out:
	json_decref(body);
}
