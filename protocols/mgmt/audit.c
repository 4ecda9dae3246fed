/*
 * protocols/mgmt/audit.c — GET /api/v1/audit: the audit trail (every
 * state change, who made it and its result), oldest first, paged by
 * sequence number and filtered by action, object and actor, over
 * lifecycle_audit_list. Auditors and up may read it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/mgmt/mgmt.h"

#define AUDIT_SEQ_DIGITS_MAX	19	/* decimal digits below 2^63 */

/* The fields of an audit record the API shows, in this order. */
static const char *const audit_fields[] = {
	"seq", "time", "who", "action", "object", "result", "detail", NULL
};

/* Parses a sequence number: 1..19 decimal digits, below 2^63. */
static bool
audit_seq_parse(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	size_t n = strlen(s);

	if (n == 0 || n > AUDIT_SEQ_DIGITS_MAX || strspn(s, "0123456789") != n)
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v >= (unsigned long long)INT64_MAX)
		return false;
	*out = (uint64_t)v;
	return true;
}

/* The API's view of one audit record (fields absent in old records are
 * null). New reference or NULL. */
static json_t *
audit_record(const json_t *rec)
{
	json_t *out, *v;
	size_t i;

	if ((out = json_object()) == NULL)
		return NULL;
	for (i = 0; audit_fields[i] != NULL; i++) {
		v = json_object_get(rec, audit_fields[i]);
		if (json_object_set(out, audit_fields[i],
		    v != NULL ? v : json_null()) == -1) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/*
 * GET /audit?after=SEQ&limit=&page_token=&action=&object=&who= ->
 * {"audit": [...], "next_page_token"}. The token is the seq of the last
 * record shown: page_token and after are the same position, so only one
 * of them may be given.
 */
void
mgmt_audit_list(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	struct lifecycle_audit_query q;
	const char *token, *after;
	json_t *res, *out;

	memset(&q, 0, sizeof(q));
	if (mgmt_query_page(c, &q.limit, &token) == -1)
		return;
	after = mgmt_query(c, "after");
	if (after != NULL && token != NULL) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "give after or page_token, not both");
		return;
	}
	if (after != NULL && !audit_seq_parse(after, &q.after)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "after must be a sequence number");
		return;
	}
	if (token != NULL && !audit_seq_parse(token, &q.after)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "page_token is not a token of this list");
		return;
	}
	q.action = mgmt_query(c, "action");
	q.object = mgmt_query(c, "object");
	q.who = mgmt_query(c, "who");
	if ((res = lifecycle_audit_list(c->lc, &q, &err)) == NULL) {
		if (err.code == COMMON_E_NONE)
			common_error_set(&err, COMMON_E_INTERNAL,
			    "cannot read the audit trail");
		mgmt_reply_cerr(c, &err);
		return;
	}
	if ((out = mgmt_list_shape(res, "audit", audit_record)) == NULL) {
		mgmt_reply_error(c, 500, "internal",
		    "cannot read the audit trail");
		return;
	}
	mgmt_reply_json(c, 200, out);
}
