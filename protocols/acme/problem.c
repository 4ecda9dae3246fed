/*
 * protocols/acme/problem.c — ACME problem documents (RFC 8555 §6.7 on
 * RFC 7807): {"type": "urn:ietf:params:acme:error:X", "detail",
 * "status", "subproblems"}. Every refusal of the ACME server is answered
 * by acme_problem_send(), which also writes the one log line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocols/acme/acme.h"

#define PROBLEM_LOG_DETAIL	200	/* detail bytes quoted in the log */

/* Sets status, type (short name, e.g. "malformed") and detail; keeps
 * subproblems and extra members already collected. */
void
acme_prob_set(struct acme_prob *p, int status, const char *type,
    const char *fmt, ...)
{
	va_list ap;

	p->status = status;
	snprintf(p->type, sizeof(p->type), "%s", type);
	va_start(ap, fmt);
	vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
	va_end(ap);
}

/* Appends {"type", "detail", "identifier": {"type", "value"}} to the
 * subproblems (RFC 8555 §6.7.1). Allocation failures drop the entry: the
 * top-level problem still goes out. */
void
acme_prob_sub(struct acme_prob *p, const char *type, const char *ident_type,
    const char *ident_value, const char *fmt, ...)
{
	char detail[ACME_DETAIL_MAX], urn[96];
	json_t *sub;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(urn, sizeof(urn), "%s%s", ACME_ERR_PREFIX, type);
	if (p->subproblems == NULL && (p->subproblems = json_array()) == NULL)
		return;
	sub = json_pack("{s:s,s:s,s:{s:s,s:s}}", "type", urn, "detail",
	    detail, "identifier", "type", ident_type, "value", ident_value);
	if (sub != NULL)
		json_array_append_new(p->subproblems, sub);
}

void
acme_prob_clear(struct acme_prob *p)
{
	json_decref(p->subproblems);
	json_decref(p->extra);
	memset(p, 0, sizeof(*p));
}

/* The document of p: type URN, detail, status, subproblems and the extra
 * members (e.g. "algorithms" of badSignatureAlgorithm). New reference. */
json_t *
acme_prob_json(const struct acme_prob *p)
{
	char urn[96];
	json_t *j;

	snprintf(urn, sizeof(urn), "%s%s", ACME_ERR_PREFIX,
	    p->type[0] != '\0' ? p->type : "serverInternal");
	if ((j = json_pack("{s:s,s:s,s:i}", "type", urn, "detail", p->detail,
	    "status", p->status != 0 ? p->status : 500)) == NULL)
		return NULL;
	if ((p->subproblems != NULL && json_array_size(p->subproblems) > 0 &&
	    json_object_set(j, "subproblems", p->subproblems) == -1) ||
	    (p->extra != NULL && json_object_update(j, p->extra) == -1)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/*
 * Answers the problem as application/problem+json with its status (the
 * reply adds Replay-Nonce and Link rel="index") and logs one line with
 * method, path, status, type and detail (log_err for 5xx). Clears p.
 */
void
acme_problem_send(struct acme_req *r, struct acme_prob *p)
{
	static const char fallback[] = "{\"type\":\"" ACME_ERR_PREFIX
	    "serverInternal\",\"detail\":\"cannot encode the problem\","
	    "\"status\":500}";
	const char *path = r->req != NULL ? evhttp_request_get_uri(r->req) :
	    "-";
	int status = p->status != 0 ? p->status : 500;
	char *body = NULL;
	json_t *j;

	if (status >= 500)
		log_err("acme: %s %.*s: %d %s: %.*s", r->method,
		    ACME_URL_MAX, path != NULL ? path : "-", status,
		    p->type[0] != '\0' ? p->type : "serverInternal",
		    PROBLEM_LOG_DETAIL, p->detail);
	else
		log_warn("acme: %s %.*s: %d %s: %.*s", r->method,
		    ACME_URL_MAX, path != NULL ? path : "-", status, p->type,
		    PROBLEM_LOG_DETAIL, p->detail);
	if ((j = acme_prob_json(p)) == NULL ||
	    (body = json_dumps(j, JSON_COMPACT)) == NULL) {
		acme_reply(r, 500, ACME_CT_PROBLEM, fallback,
		    sizeof(fallback) - 1);
		goto out;
	}
	acme_reply(r, status, ACME_CT_PROBLEM, body, strlen(body));
out:
	free(body);
	json_decref(j);
	acme_prob_clear(p);
}

void
acme_problem(struct acme_req *r, int status, const char *type,
    const char *fmt, ...)
{
	struct acme_prob p;
	va_list ap;

	memset(&p, 0, sizeof(p));
	p.status = status;
	snprintf(p.type, sizeof(p.type), "%s", type);
	va_start(ap, fmt);
	vsnprintf(p.detail, sizeof(p.detail), fmt, ap);
	va_end(ap);
	acme_problem_send(r, &p);
}
