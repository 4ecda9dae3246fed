/*
 * lifecycle/query.c — inventory queries and the audit trail.
 *
 * An inventory query walks one order of the certificate table (store.h,
 * enum store_cert_index): the one that answers its most selective filter
 * with a key range, so a page costs about its own size instead of a walk
 * of the whole table. The other filters are applied to what the walk
 * meets. Pages are chained by the store's opaque position tokens.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle/lifecycle.h"

#define LQ_DAY_SECONDS		86400.0
#define LQ_SEQ_TEXT_MAX		24	/* decimal u64 + NUL */
#define LQ_RAW_MAX		4	/* byte strings a record's text must
					   hold: ca_id, origin, stage, true */
#define LQ_RAW_TEXT_MAX		160	/* one of them, quoted, + NUL */

/* Origins a certificate can have (lifecycle.h, certificate record). */
static const char *const lq_origins[] = { "mgmt", "acme", "est", NULL };

/* The filters of one inventory query, normalised (NULL = any). */
struct lq_filter {
	const char	*ca_id;
	const char	*stage;
	const char	*origin;
	const char	*name;
	int		 renewal_due;	/* -1 any, 0 unflagged, 1 flagged */
	bool		 expiring;
	json_int_t	 before;	/* not_after_epoch below this */
	/* The prefilter's view: strings the stored JSON text of a match
	 * must contain, so most records a filtered walk passes over are
	 * skipped without being parsed. */
	char		 raw[LQ_RAW_MAX][LQ_RAW_TEXT_MAX];
	size_t		 raw_len[LQ_RAW_MAX];
	size_t		 nraw;
	bool		 raw_name;	/* name itself, ignoring case */
};

/* The walk chosen for a query: an order and a key range of it. */
struct lq_plan {
	struct store_range	 range;
	unsigned char		 bound[STORE_TIME_KEY_LEN]; /* range.hi */
	bool			 by_id;	/* in id order: tokens are ids */
	const char		*why;	/* the order, for the debug log */
};

static const char *
lq_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* s, or NULL when s is NULL or empty: empty filters count as absent. */
static const char *
lq_opt(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

/* True when field of rec is a string equal to want. */
static bool
lq_str_is(const json_t *rec, const char *field, const char *want)
{
	const char *s = lq_str(rec, field);

	return s != NULL && strcmp(s, want) == 0;
}

/* True when the name or a SAN of rec holds name, ignoring case. */
static bool
lq_name_match(const json_t *rec, const char *name)
{
	const char *s;
	json_t *san;
	size_t i;

	if ((s = lq_str(rec, "name")) != NULL && strcasestr(s, name) != NULL)
		return true;
	json_array_foreach(json_object_get(rec, "sans"), i, san) {
		if ((s = json_string_value(san)) != NULL &&
		    strcasestr(s, name) != NULL)
			return true;
	}
	return false;
}

/* The inventory filter over certificate records (store_page filter). A
 * record without an integer not_after_epoch never expires "within". */
static bool
lq_cert_filter(const json_t *rec, void *arg)
{
	const struct lq_filter *f = arg;
	const json_t *na;

	if (f->ca_id != NULL && !lq_str_is(rec, "ca_id", f->ca_id))
		return false;
	if (f->origin != NULL && !lq_str_is(rec, "origin", f->origin))
		return false;
	if (f->stage != NULL && !lq_str_is(rec, "stage", f->stage))
		return false;
	if (f->renewal_due != -1 && (json_is_true(json_object_get(rec,
	    "renewal_due")) ? 1 : 0) != f->renewal_due)
		return false;
	if (f->expiring) {
		na = json_object_get(rec, "not_after_epoch");
		if (!json_is_integer(na) || json_integer_value(na) >= f->before)
			return false;
	}
	return f->name == NULL || lq_name_match(rec, f->name);
}

/* True when s appears in JSON text as is: printable ASCII that JSON
 * never escapes. */
static bool
lq_json_plain(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e ||
		    *s == '"' || *s == '\\')
			return false;
	return true;
}

/* Adds the JSON string "value" (quotes included) to what the text of a
 * match must hold, when it is plain enough to be found as is. */
static void
lq_raw_add(struct lq_filter *f, const char *value, bool quoted)
{
	int n;

	if (value == NULL || f->nraw == LQ_RAW_MAX || !lq_json_plain(value))
		return;
	n = snprintf(f->raw[f->nraw], sizeof(f->raw[f->nraw]),
	    quoted ? "\"%s\"" : "%s", value);
	if (n < 0 || (size_t)n >= sizeof(f->raw[f->nraw]))
		return;
	f->raw_len[f->nraw++] = (size_t)n;
}

/* Case-insensitive search of needle (NUL-terminated) in (hay, len). */
static bool
lq_text_has_ci(const unsigned char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle), i, j;

	if (n == 0)
		return true;
	for (i = 0; i + n <= len; i++) {
		for (j = 0; j < n; j++)
			if (tolower(hay[i + j]) !=
			    tolower((unsigned char)needle[j]))
				break;
		if (j == n)
			return true;
	}
	return false;
}

/*
 * The prefilter: the stored text of a certificate that lq_cert_filter
 * keeps holds each quoted value it must equal, "true" when it must be
 * flagged renewal_due, and the name filter (in its name or a SAN).
 * Only necessary conditions: whatever passes is parsed and filtered.
 */
static bool
lq_cert_prefilter(const void *text, size_t len, void *arg)
{
	const struct lq_filter *f = arg;
	size_t i;

	for (i = 0; i < f->nraw; i++)
		if (memmem(text, len, f->raw[i], f->raw_len[i]) == NULL)
			return false;
	return !f->raw_name || lq_text_has_ci(text, len, f->name);
}

/*
 * Normalises and checks the filters of q into f. 0, or -1 with INVALID
 * naming the parameter.
 */
static int
lq_filter_init(const struct lifecycle_query *q, struct lq_filter *f,
    struct common_error *err)
{
	double days = q->expiring_within_days;
	size_t i;

	memset(f, 0, sizeof(*f));
	f->ca_id = lq_opt(q->ca_id);
	f->stage = lq_opt(q->stage);
	f->name = lq_opt(q->name);
	if ((f->origin = lq_opt(q->origin)) != NULL) {
		for (i = 0; lq_origins[i] != NULL; i++)
			if (strcmp(f->origin, lq_origins[i]) == 0)
				break;
		if (lq_origins[i] == NULL) {
			common_error_set(err, COMMON_E_INVALID,
			    "origin must be mgmt, acme or est");
			return -1;
		}
	}
	if (q->renewal_due < -1 || q->renewal_due > 1) {
		common_error_set(err, COMMON_E_INVALID,
		    "renewal_due must be true or false");
		return -1;
	}
	f->renewal_due = q->renewal_due;
	if ((int)q->sort < 0 || q->sort >= LIFECYCLE_SORT__MAX) {
		common_error_set(err, COMMON_E_INVALID,
		    "sort must be id or not_after");
		return -1;
	}
	if (isnan(days)) {
		common_error_set(err, COMMON_E_INVALID,
		    "expiring_within_days must be a number");
		return -1;
	}
	if (days >= 0) {
		if (days > CA_MAX_VALIDITY_DAYS)
			days = CA_MAX_VALIDITY_DAYS;
		f->expiring = true;
		f->before = (json_int_t)common_now() +
		    (json_int_t)(days * LQ_DAY_SECONDS);
	}
	lq_raw_add(f, f->ca_id, true);
	lq_raw_add(f, f->origin, true);
	lq_raw_add(f, f->stage, true);
	if (f->renewal_due == 1)
		lq_raw_add(f, "true", false);
	f->raw_name = f->name != NULL && lq_json_plain(f->name);
	return 0;
}

/* An exact-key range of order index. */
static void
lq_plan_exact(struct lq_plan *p, enum store_cert_index index,
    const char *key, const char *why)
{
	p->range.index = index;
	p->range.lo = p->range.hi = key;
	p->range.lo_len = p->range.hi_len = strlen(key);
	p->range.hi_inclusive = true;
	p->by_id = true;
	p->why = why;
}

/*
 * Chooses the walk. Results come in not_after order when asked for or,
 * by default, when the query is about expiry: then the not_after index
 * is walked up to the bound and stops there. In id order the ca_id and
 * origin indexes (whose duplicates sort by id) beat the table; with both
 * filters the one with fewer certificates under its key is walked.
 */
static void
lq_plan_pick(struct lifecycle *lc, const struct lq_filter *f,
    enum lifecycle_sort sort, struct lq_plan *p)
{
	long nca, norigin;

	memset(p, 0, sizeof(*p));
	if (sort == LIFECYCLE_SORT_NOT_AFTER ||
	    (sort == LIFECYCLE_SORT_DEFAULT && f->expiring)) {
		p->range.index = STORE_CERT_BY_NOT_AFTER;
		p->why = "not_after";
		if (f->expiring) {
			store_time_key((time_t)f->before, p->bound);
			p->range.hi = p->bound;
			p->range.hi_len = sizeof(p->bound);
		}
		return;
	}
	if (f->ca_id != NULL && f->origin != NULL) {
		nca = store_cert_count_key(lifecycle_store(lc), NULL,
		    STORE_CERT_BY_CA, f->ca_id, strlen(f->ca_id));
		norigin = store_cert_count_key(lifecycle_store(lc), NULL,
		    STORE_CERT_BY_ORIGIN, f->origin, strlen(f->origin));
		if (norigin >= 0 && (nca < 0 || norigin < nca))
			lq_plan_exact(p, STORE_CERT_BY_ORIGIN, f->origin,
			    "origin");
		else
			lq_plan_exact(p, STORE_CERT_BY_CA, f->ca_id, "ca_id");
		return;
	}
	if (f->ca_id != NULL)
		lq_plan_exact(p, STORE_CERT_BY_CA, f->ca_id, "ca_id");
	else if (f->origin != NULL)
		lq_plan_exact(p, STORE_CERT_BY_ORIGIN, f->origin, "origin");
	else {
		p->range.index = STORE_CERT_BY_ID;
		p->by_id = true;
		p->why = "id";
	}
}

/*
 * True when token is a position of plan's walk: in id order a
 * certificate id, else an index key and an id (store_cert_scan). Tokens
 * are opaque to clients, so one from a walk in the other kind of order
 * is refused rather than misread.
 */
static bool
lq_token_ok(const struct lq_plan *p, const char *token)
{
	const char *colon = strchr(token, ':');

	if (p->by_id ? colon != NULL : colon == NULL)
		return false;
	return common_id_valid(colon != NULL ? colon + 1 : token) &&
	    store_cert_token_valid(&p->range, token);
}

/* Checks limit (0 = default) into *out. 0, or -1 with INVALID. */
static int
lq_limit(size_t limit, size_t *out, struct common_error *err)
{
	if (limit > LIFECYCLE_PAGE_MAX) {
		common_error_set(err, COMMON_E_INVALID, "limit must be 1..%d",
		    LIFECYCLE_PAGE_MAX);
		return -1;
	}
	*out = limit == 0 ? LIFECYCLE_PAGE_DEFAULT : limit;
	return 0;
}

/*
 * One inventory page: {"certificates": [...], "next_page_token"}, the
 * records as stored (callers shape them). See lifecycle.h for filters,
 * order and the index chosen.
 */
json_t *
lifecycle_cert_list(struct lifecycle *lc, const struct lifecycle_query *q,
    struct common_error *err)
{
	struct lifecycle_query none;
	struct lq_filter f;
	struct lq_plan plan;
	struct store_page page;
	const char *token;
	char *next = NULL;
	json_t *items, *res = NULL;

	if (q == NULL) {
		memset(&none, 0, sizeof(none));
		none.expiring_within_days = -1;
		none.renewal_due = -1;
		q = &none;
	}
	memset(&page, 0, sizeof(page));
	if (lq_limit(q->limit, &page.limit, err) == -1 ||
	    lq_filter_init(q, &f, err) == -1)
		goto out;
	lq_plan_pick(lc, &f, q->sort, &plan);
	if (f.nraw > 0 || f.raw_name)
		plan.range.prefilter = lq_cert_prefilter;
	if ((token = lq_opt(q->page_token)) != NULL &&
	    !lq_token_ok(&plan, token)) {
		common_error_set(err, COMMON_E_INVALID,
		    "page_token is not a token of this query");
		goto out;
	}
	page.after = token;
	page.filter = lq_cert_filter;
	page.arg = &f;
	log_debug("lifecycle: inventory query walks the %s order", plan.why);
	if ((items = store_cert_scan(lifecycle_store(lc), NULL, &plan.range,
	    &page, &next)) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "could not list certificates");
		goto out;
	}
	if ((res = lifecycle_page_result("certificates", items, next)) ==
	    NULL)
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	free(next);
	return res;
}

/* ---- audit trail ---- */

struct lq_audit_filter {
	const char	*action;
	const char	*who;
};

static bool
lq_audit_filter(const json_t *rec, void *arg)
{
	const struct lq_audit_filter *f = arg;

	return (f->action == NULL || lq_str_is(rec, "action", f->action)) &&
	    (f->who == NULL || lq_str_is(rec, "who", f->who));
}

/* Checks an audit filter value: at most LIFECYCLE_AUDIT_FILTER_MAX
 * printable ASCII bytes. 0, or -1 with INVALID naming it. */
static int
lq_audit_text(const char *name, const char *s, struct common_error *err)
{
	size_t n;

	if (s == NULL)
		return 0;
	for (n = 0; s[n] != '\0' && n <= LIFECYCLE_AUDIT_FILTER_MAX; n++)
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
			break;
	if (s[n] != '\0') {
		common_error_set(err, COMMON_E_INVALID,
		    "%s must be up to %d printable characters", name,
		    LIFECYCLE_AUDIT_FILTER_MAX);
		return -1;
	}
	return 0;
}

/*
 * One page of the audit trail: {"audit": [...], "next_page_token"}, the
 * token being the seq of the last record (pass it back as "after").
 */
json_t *
lifecycle_audit_list(struct lifecycle *lc,
    const struct lifecycle_audit_query *q, struct common_error *err)
{
	struct lq_audit_filter f;
	char text[LQ_SEQ_TEXT_MAX] = "";
	const char *object;
	uint64_t next = 0;
	size_t limit;
	json_t *items, *res = NULL;

	if (q == NULL) {
		common_error_set(err, COMMON_E_INVALID, "no query");
		goto out;
	}
	f.action = lq_opt(q->action);
	f.who = lq_opt(q->who);
	object = lq_opt(q->object);
	if (lq_limit(q->limit, &limit, err) == -1 ||
	    lq_audit_text("action", f.action, err) == -1 ||
	    lq_audit_text("object", object, err) == -1 ||
	    lq_audit_text("who", f.who, err) == -1)
		goto out;
	if ((items = store_audit_scan(lifecycle_store(lc), NULL, q->after,
	    object, limit, f.action != NULL || f.who != NULL ?
	    lq_audit_filter : NULL, &f, &next)) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "could not read the audit trail");
		goto out;
	}
	if (next != 0)
		snprintf(text, sizeof(text), "%" PRIu64, next);
	if ((res = lifecycle_page_result("audit", items, next != 0 ? text :
	    NULL)) == NULL)
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	return res;
}
