/*
 * protocols/mgmt/certs.c — /api/v1/certificates (with versions),
 * /api/v1/resources and /api/v1/associations, over lifecycle/.
 *
 * Request bodies go to lifecycle_* as they are (it validates them and
 * names the offending field); answers are rebuilt here with the fields
 * docs/api.md documents, so internal record fields (key references and
 * the like) never leave the server.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/mgmt/mgmt.h"

#define CERTS_NAME_MAX	LIFECYCLE_NAME_MAX	/* ?name= filter */

static const char *const certs_stages[] = {
	"pending", "current", "previous", "revoked", "failed", "expired", NULL
};
static const char *const certs_revoke_fields[] = { "reason", NULL };
static const char *const certs_no_fields[] = { NULL };

/* Copies each listed key of rec (null when absent) into out. */
static int
certs_pick(json_t *out, const json_t *rec, const char *const *keys)
{
	json_t *v;
	size_t i;

	for (i = 0; keys[i] != NULL; i++) {
		v = json_object_get(rec, keys[i]);
		if (json_object_set(out, keys[i], v != NULL ? v : json_null()) ==
		    -1)
			return -1;
	}
	return 0;
}

/* Copies each listed key of rec into out only when rec has it. */
static int
certs_pick_present(json_t *out, const json_t *rec, const char *const *keys)
{
	json_t *v;
	size_t i;

	for (i = 0; keys[i] != NULL; i++) {
		if ((v = json_object_get(rec, keys[i])) == NULL)
			continue;
		if (json_object_set(out, keys[i], v) == -1)
			return -1;
	}
	return 0;
}

/*
 * The API's version object: the documented fields, plus "certificate"
 * and "chain" when pems is true, plus "private_key" when key is true and
 * the record carries one. New reference or NULL.
 */
static json_t *
certs_version(const json_t *rec, bool pems, bool key)
{
	static const char *const base[] = {
		"version", "stage", "serial", "not_before", "not_after",
		"revoked_at", "revocation_reason", "created_at", NULL
	};
	static const char *const pem_keys[] = { "certificate", "chain", NULL };
	static const char *const key_keys[] = { "private_key", NULL };
	static const char *const extra[] = { "pruned", NULL };
	json_t *out;

	if ((out = json_object()) == NULL)
		return NULL;
	if (certs_pick(out, rec, base) == -1 ||
	    certs_pick_present(out, rec, extra) == -1 ||
	    (pems && certs_pick_present(out, rec, pem_keys) == -1) ||
	    (key && certs_pick_present(out, rec, key_keys) == -1)) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static json_t *
certs_version_brief(const json_t *rec)
{
	return certs_version(rec, false, false);
}

/*
 * The API's certificate object, plus "stage" and "serial" (of the current
 * version: the list filters on the stage, and people look for serials). "not_after" comes from the record or its
 * current version; "current" (when the record has the key; null while
 * there is no current version) carries PEMs only when pems is true, and
 * never a private key.
 */
static json_t *
certs_object(const json_t *rec, bool pems)
{
	static const char *const base[] = {
		"id", "name", "mode", "origin", "ca_id", "profile", "subject",
		"sans", "key_algorithm", "validity_days", "renewal",
		"current_version", "latest_version", "stage", "serial",
		"created_at", "state", "due_at", "renewal_due", "renewal_state",
		"deletion", NULL
	};
	const json_t *cur = json_object_get(rec, "current");
	json_t *na = json_object_get(rec, "not_after");
	json_t *out, *ret = NULL;

	if ((out = json_object()) == NULL)
		goto out;
	if (na == NULL && json_is_object(cur))
		na = json_object_get(cur, "not_after");
	if (certs_pick(out, rec, base) == -1 ||
	    json_object_set(out, "not_after", na != NULL ? na : json_null()) ==
	    -1)
		goto out;
	if (cur != NULL && json_object_set_new(out, "current",
	    json_is_object(cur) ? certs_version(cur, pems, false) :
	    json_null()) == -1)
		goto out;
	ret = out;	/* steal */
	out = NULL;
out:
	json_decref(out);
	return ret;
}

static json_t *
certs_object_brief(const json_t *rec)
{
	return certs_object(rec, false);
}

static json_t *
certs_resource(const json_t *rec)
{
	static const char *const keys[] = {
		"id", "name", "type", "config", "created_at", NULL
	};
	json_t *out;

	if ((out = json_object()) != NULL && certs_pick(out, rec, keys) == -1) {
		json_decref(out);
		out = NULL;
	}
	return out;
}

static json_t *
certs_assoc(const json_t *rec)
{
	static const char *const keys[] = {
		"id", "certificate_id", "resource_id", "created_at", NULL
	};
	json_t *out;

	if ((out = json_object()) != NULL && certs_pick(out, rec, keys) == -1) {
		json_decref(out);
		out = NULL;
	}
	return out;
}

/*
 * Answers a lifecycle result: rec shaped by shape() with status, or the
 * error in err when rec is NULL. Steals rec.
 */
static void
certs_reply(struct mgmt_call *c, int status, json_t *rec,
    json_t *(*shape)(const json_t *), struct common_error *err)
{
	if (rec == NULL) {
		if (err->code == COMMON_E_NONE)
			common_error_set(err, COMMON_E_INTERNAL,
			    "the operation failed");
		mgmt_reply_cerr(c, err);
		return;
	}
	mgmt_reply_json(c, status, shape(rec));
	json_decref(rec);
}

/* Answers a lifecycle list result. Steals res. */
static void
certs_reply_list(struct mgmt_call *c, json_t *res, const char *key,
    json_t *(*shape)(const json_t *), struct common_error *err)
{
	json_t *out;

	if (res == NULL) {
		if (err->code == COMMON_E_NONE)
			common_error_set(err, COMMON_E_INTERNAL,
			    "cannot list %s", key);
		mgmt_reply_cerr(c, err);
		return;
	}
	if ((out = mgmt_list_shape(res, key, shape)) == NULL) {
		mgmt_reply_error(c, 500, "internal", "cannot list %s", key);
		return;
	}
	mgmt_reply_json(c, 200, out);
}

/* Answers a lifecycle delete: 204 with no body, or the error. */
static void
certs_reply_deleted(struct mgmt_call *c, int rc, struct common_error *err)
{
	if (rc == -1) {
		if (err->code == COMMON_E_NONE)
			common_error_set(err, COMMON_E_INTERNAL,
			    "the deletion failed");
		mgmt_reply_cerr(c, err);
		return;
	}
	server_reply(c->req, 204, NULL, NULL, 0);
}

/* Reads a body that must be empty or an object without fields. */
static int
certs_body_empty(struct mgmt_call *c)
{
	json_t *body;
	int rc;

	if (mgmt_body_object(c, true, &body) == -1)
		return -1;
	rc = mgmt_body_known(c, body, certs_no_fields, "");
	json_decref(body);
	return rc;
}

/* True when s is 1..max printable ASCII characters. */
static bool
certs_text_ok(const char *s, size_t max)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
			return false;
	return n > 0 && n <= max;
}

/* ---- certificates ---- */

/*
 * Fills q from ?ca_id=&stage=&origin=&name=&expiring_within_days=
 * &renewal_due=&sort= and the paging parameters. 0, or -1 after
 * answering 400 naming the parameter.
 */
static int
certs_query(struct mgmt_call *c, struct lifecycle_query *q)
{
	static const char *const origins[] = { "mgmt", "acme", "est", NULL };
	const char *s;
	char *end;
	double d;
	size_t i;

	memset(q, 0, sizeof(*q));
	q->expiring_within_days = -1;
	q->renewal_due = -1;
	if (mgmt_query_page(c, &q->limit, &q->page_token) == -1)
		return -1;
	if ((s = mgmt_query(c, "origin")) != NULL) {
		for (i = 0; origins[i] != NULL; i++)
			if (strcmp(s, origins[i]) == 0)
				break;
		if (origins[i] == NULL) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "origin must be mgmt, acme or est");
			return -1;
		}
		q->origin = s;
	}
	if ((s = mgmt_query(c, "renewal_due")) != NULL) {
		if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "renewal_due must be true or false");
			return -1;
		}
		q->renewal_due = strcmp(s, "true") == 0;
	}
	if ((s = mgmt_query(c, "sort")) != NULL) {
		if (strcmp(s, "id") == 0)
			q->sort = LIFECYCLE_SORT_ID;
		else if (strcmp(s, "not_after") == 0)
			q->sort = LIFECYCLE_SORT_NOT_AFTER;
		else {
			mgmt_reply_error(c, 400, "invalid_request",
			    "sort must be id or not_after");
			return -1;
		}
	}
	if ((s = mgmt_query(c, "ca_id")) != NULL) {
		if (!common_id_valid(s)) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "ca_id is not a valid CA id");
			return -1;
		}
		q->ca_id = s;
	}
	if ((s = mgmt_query(c, "stage")) != NULL) {
		for (i = 0; certs_stages[i] != NULL; i++)
			if (strcmp(s, certs_stages[i]) == 0)
				break;
		if (certs_stages[i] == NULL) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "stage must be pending, current, previous, "
			    "revoked, failed or expired");
			return -1;
		}
		q->stage = s;
	}
	if ((s = mgmt_query(c, "name")) != NULL) {
		if (!certs_text_ok(s, CERTS_NAME_MAX)) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "name must be 1..%d printable characters",
			    CERTS_NAME_MAX);
			return -1;
		}
		q->name = s;
	}
	if ((s = mgmt_query(c, "expiring_within_days")) != NULL) {
		errno = 0;
		d = strtod(s, &end);
		if (s[0] == '\0' || *end != '\0' || errno != 0 ||
		    !isfinite(d) || d < 0 || d > CA_MAX_VALIDITY_DAYS) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "expiring_within_days must be a number 0..%g",
			    CA_MAX_VALIDITY_DAYS);
			return -1;
		}
		q->expiring_within_days = d;
	}
	return 0;
}

/* GET /certificates. */
void
mgmt_certs_list(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	struct lifecycle_query q;

	if (certs_query(c, &q) == -1)
		return;
	certs_reply_list(c, lifecycle_cert_list(c->lc, &q, &err),
	    "certificates", certs_object_brief, &err);
}

static json_t *
certs_object_full(const json_t *rec)
{
	return certs_object(rec, true);
}

/* POST /certificates (operator) -> 201. */
void
mgmt_certs_create(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	json_t *body, *rec;

	if (mgmt_body_object(c, false, &body) == -1)
		return;
	rec = lifecycle_cert_create(c->lc, body, c->actor, &err);
	json_decref(body);
	if (rec != NULL)
		log_info("mgmt: %s created certificate %s", c->actor,
		    json_string_value(json_object_get(rec, "id")));
	certs_reply(c, 201, rec, certs_object_full, &err);
}

/* GET /certificates/{id}. */
void
mgmt_certs_get(struct mgmt_call *c)
{
	struct common_error err = { 0 };

	certs_reply(c, 200, lifecycle_cert_get(c->lc, c->id, &err),
	    certs_object_full, &err);
}

/* The answer to a scheduled deletion: {"id", "state", "deletion"}. */
static json_t *
certs_deletion(const json_t *rec)
{
	static const char *const keys[] = { "id", "state", "deletion", NULL };
	json_t *out;

	if ((out = json_object()) != NULL && certs_pick(out, rec, keys) == -1) {
		json_decref(out);
		out = NULL;
	}
	return out;
}

/*
 * DELETE /certificates/{id} (operator) -> 202 {"deletion": {...}}: the
 * deletion is scheduled lifecycle.deletion_pending_days ahead and can be
 * cancelled until then. ?now=true (admin only) deletes at once -> 204.
 * 409 naming the associations while there are any.
 */
void
mgmt_certs_delete(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	const char *s;
	json_t *rec;
	bool now = false;
	int rc;

	if ((s = mgmt_query(c, "now")) != NULL) {
		if (strcmp(s, "true") == 0)
			now = true;
		else if (strcmp(s, "false") != 0) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "now must be true or false");
			return;
		}
	}
	if (now && c->role < MGMT_ROLE_ADMIN) {
		mgmt_reply_error(c, 403, "forbidden", "now=true requires role "
		    "admin (token has %s)", mgmt_role_name(c->role));
		return;
	}
	if (now) {
		rc = lifecycle_cert_delete_now(c->lc, c->id, c->actor, &err);
		if (rc == 0)
			log_info("mgmt: %s deleted certificate %s at once",
			    c->actor, c->id);
		certs_reply_deleted(c, rc, &err);
		return;
	}
	rec = lifecycle_cert_delete_schedule(c->lc, c->id, c->actor, &err);
	if (rec != NULL)
		log_info("mgmt: %s scheduled the deletion of certificate %s "
		    "at %s", c->actor, c->id, json_string_value(
		    json_object_get(json_object_get(rec, "deletion"),
		    "execute_at")));
	certs_reply(c, 202, rec, certs_deletion, &err);
}

/* POST /certificates/{id}/cancel-deletion (operator) -> 200 certificate. */
void
mgmt_certs_cancel_deletion(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	json_t *rec;

	if (certs_body_empty(c) == -1)
		return;
	rec = lifecycle_cert_cancel_deletion(c->lc, c->id, c->actor, &err);
	if (rec != NULL)
		log_info("mgmt: %s cancelled the deletion of certificate %s",
		    c->actor, c->id);
	certs_reply(c, 200, rec, certs_object_full, &err);
}

static json_t *
certs_version_pems(const json_t *rec)
{
	return certs_version(rec, true, false);
}

/* POST /certificates/{id}/versions/{n}/promote (operator) -> 200
 * version, now current; 409 for revoked, expired, failed or pruned
 * versions. */
void
mgmt_versions_promote(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	json_t *rec;

	if (certs_body_empty(c) == -1)
		return;
	rec = lifecycle_version_promote(c->lc, c->id, c->version, c->actor,
	    &err);
	if (rec != NULL)
		log_info("mgmt: %s promoted certificate %s version %u", c->actor,
		    c->id, c->version);
	certs_reply(c, 200, rec, certs_version_brief, &err);
}

/* POST /certificates/{id}/renew (operator) -> 201 version. */
void
mgmt_certs_renew(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	json_t *rec;

	if (certs_body_empty(c) == -1)
		return;
	rec = lifecycle_cert_renew(c->lc, c->id, c->actor, &err);
	if (rec != NULL)
		log_info("mgmt: %s renewed certificate %s", c->actor, c->id);
	certs_reply(c, 201, rec, certs_version_pems, &err);
}

/* GET /certificates/{id}/versions. */
void
mgmt_versions_list(struct mgmt_call *c)
{
	struct common_error err = { 0 };

	certs_reply_list(c, lifecycle_versions(c->lc, c->id, &err),
	    "versions", certs_version_brief, &err);
}

static json_t *
certs_version_key(const json_t *rec)
{
	return certs_version(rec, true, true);
}

/*
 * GET /certificates/{id}/versions/{n}[?include_private_key=true]. The
 * key is for admins only, whatever role reached the route.
 */
void
mgmt_versions_get(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	const char *s;
	bool with_key = false;

	if ((s = mgmt_query(c, "include_private_key")) != NULL) {
		if (strcmp(s, "true") == 0)
			with_key = true;
		else if (strcmp(s, "false") != 0) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "include_private_key must be true or false");
			return;
		}
	}
	if (with_key && c->role < MGMT_ROLE_ADMIN) {
		mgmt_reply_error(c, 403, "forbidden",
		    "include_private_key=true requires role admin (token has "
		    "%s)", mgmt_role_name(c->role));
		return;
	}
	if (with_key)
		log_info("mgmt: %s exports the private key of certificate %s "
		    "version %u", c->actor, c->id, c->version);
	certs_reply(c, 200, lifecycle_version_get(c->lc, c->id, c->version,
	    with_key, &err), with_key ? certs_version_key : certs_version_pems,
	    &err);
}

/*
 * POST /certificates/{id}/versions/{n}/revoke (operator). lifecycle asks
 * for the issuing CA's CRL after the revocation commits (rebuilt within
 * crl.debounce_seconds, coalescing bursts), so the answer does not wait
 * for a CRL.
 */
void
mgmt_versions_revoke(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	enum ca_reason reason = CA_REASON_UNSPECIFIED;
	json_t *body = NULL, *rec = NULL;
	const json_t *v;

	if (mgmt_body_object(c, true, &body) == -1)
		goto out;
	if (mgmt_body_known(c, body, certs_revoke_fields, "") == -1)
		goto out;
	if ((v = json_object_get(body, "reason")) != NULL) {
		if (!json_is_string(v) ||
		    ca_reason_parse(json_string_value(v), &reason) == -1 ||
		    reason == CA_REASON_REMOVE_FROM_CRL) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "field \"reason\" must be an RFC 5280 reason: "
			    "unspecified, keyCompromise, cACompromise, "
			    "affiliationChanged, superseded, "
			    "cessationOfOperation, certificateHold, "
			    "privilegeWithdrawn or aACompromise");
			goto out;
		}
	}
	rec = lifecycle_version_revoke(c->lc, c->id, c->version, reason,
	    c->actor, &err);
	if (rec != NULL)
		log_info("mgmt: %s revoked certificate %s version %u (%s)",
		    c->actor, c->id, c->version, ca_reason_name(reason));
	certs_reply(c, 200, rec, certs_version_brief, &err);
	rec = NULL;	/* stolen */
out:
	json_decref(rec);
	json_decref(body);
}

/* ---- resources ---- */

/* GET /resources. */
void
mgmt_resources_list(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	const char *token;
	size_t limit;

	if (mgmt_query_page(c, &limit, &token) == -1)
		return;
	certs_reply_list(c, lifecycle_resource_list(c->lc, token, limit, &err),
	    "resources", certs_resource, &err);
}

/* POST /resources (operator) -> 201. */
void
mgmt_resources_create(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	json_t *body, *rec;

	if (mgmt_body_object(c, false, &body) == -1)
		return;
	rec = lifecycle_resource_create(c->lc, body, c->actor, &err);
	json_decref(body);
	certs_reply(c, 201, rec, certs_resource, &err);
}

/* GET /resources/{id}. */
void
mgmt_resources_get(struct mgmt_call *c)
{
	struct common_error err = { 0 };

	certs_reply(c, 200, lifecycle_resource_get(c->lc, c->id, &err),
	    certs_resource, &err);
}

/* DELETE /resources/{id} (operator) -> 204, 409 while associated. */
void
mgmt_resources_delete(struct mgmt_call *c)
{
	struct common_error err = { 0 };

	certs_reply_deleted(c, lifecycle_resource_delete(c->lc, c->id,
	    c->actor, &err), &err);
}

/* ---- associations ---- */

/* GET /associations[?certificate_id=]. */
void
mgmt_assocs_list(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	const char *token, *cert_id;
	size_t limit;

	if (mgmt_query_page(c, &limit, &token) == -1)
		return;
	if ((cert_id = mgmt_query(c, "certificate_id")) != NULL &&
	    !common_id_valid(cert_id)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "certificate_id is not a valid certificate id");
		return;
	}
	certs_reply_list(c, lifecycle_assoc_list(c->lc, cert_id, token, limit,
	    &err), "associations", certs_assoc, &err);
}

/* POST /associations (operator) -> 201. */
void
mgmt_assocs_create(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	json_t *body, *rec;

	if (mgmt_body_object(c, false, &body) == -1)
		return;
	rec = lifecycle_assoc_create(c->lc, body, c->actor, &err);
	json_decref(body);
	certs_reply(c, 201, rec, certs_assoc, &err);
}

/* DELETE /associations/{id} (operator) -> 204. */
void
mgmt_assocs_delete(struct mgmt_call *c)
{
	struct common_error err = { 0 };

	certs_reply_deleted(c, lifecycle_assoc_delete(c->lc, c->id, c->actor,
	    &err), &err);
}
