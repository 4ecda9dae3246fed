/*
 * lifecycle/lifecycle.c — the lifecycle context and what every lifecycle
 * file shares: the transaction wrapper, the audit trail, request field
 * checks and paging parameters.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle/lifecycle.h"

#define LC_DETAIL_MAX	512	/* audit detail text */
#define LC_SHOWN_MAX	65	/* a client's field name quoted in a message */

struct lifecycle {
	struct ca_ctx		*ca;	/* borrowed */
	struct store		*st;	/* borrowed, the CA context's store */
	struct lifecycle_config	 cfg;
	struct lifecycle_notifier *notifier;	/* notify.c */
	struct lifecycle_crl_sched *crl;	/* crl.c */
};

struct lc_txn_call {
	int			(*fn)(struct store_txn *, void *,
				    struct common_error *);
	void			*arg;
	struct common_error	*err;
};

/*
 * Creates the context. The configuration is copied; ctx (and its store)
 * are borrowed and must outlive lc. NULL on allocation failure or a
 * configuration no request could satisfy.
 */
struct lifecycle *
lifecycle_new(struct ca_ctx *ctx, const struct lifecycle_config *cfg)
{
	struct lifecycle *lc = NULL;

	if (ctx == NULL || cfg == NULL) {
		log_err("lifecycle: new: missing CA context or configuration");
		goto out;
	}
	if (!(cfg->default_validity_days > 0) ||
	    cfg->default_validity_days > CA_MAX_VALIDITY_DAYS ||
	    !(cfg->default_renew_before_days > 0)) {
		log_err("lifecycle: new: default validity %g days or renew "
		    "before %g days out of range", cfg->default_validity_days,
		    cfg->default_renew_before_days);
		goto out;
	}
	if ((lc = calloc(1, sizeof(*lc))) == NULL) {
		log_err("lifecycle: new: out of memory");
		goto out;
	}
	lc->ca = ctx;
	lc->st = ca_ctx_store(ctx);
	lc->cfg = *cfg;
	if ((lc->notifier = lifecycle_notifier_new()) == NULL ||
	    (lc->crl = lifecycle_crl_sched_new()) == NULL) {
		lifecycle_free(lc);
		lc = NULL;
	}
out:
	return lc;
}

void
lifecycle_free(struct lifecycle *lc)
{
	if (lc == NULL)
		return;
	lifecycle_notifier_free(lc->notifier);
	lifecycle_crl_sched_free(lc->crl);
	free(lc);
}

struct lifecycle_notifier *
lifecycle_notifier(struct lifecycle *lc)
{
	return lc->notifier;
}

struct lifecycle_crl_sched *
lifecycle_crl_sched(struct lifecycle *lc)
{
	return lc->crl;
}

struct ca_ctx *
lifecycle_ca(struct lifecycle *lc)
{
	return lc->ca;
}

struct store *
lifecycle_store(struct lifecycle *lc)
{
	return lc->st;
}

const struct lifecycle_config *
lifecycle_cfg(struct lifecycle *lc)
{
	return &lc->cfg;
}

/*
 * One try of a lifecycle transaction. The error is cleared first so that
 * a try that failed on a deadlock leaves nothing behind for the next.
 * A failed store operation looks like "not found" to fn, so its verdict
 * is replaced by an internal error.
 */
static int
lifecycle_txn_try(struct store_txn *txn, void *p)
{
	struct lc_txn_call *c = p;
	int rc;

	common_error_clear(c->err);
	rc = c->fn(txn, c->arg, c->err);
	if (store_txn_failed(txn)) {
		common_error_clear(c->err);
		common_error_set(c->err, COMMON_E_INTERNAL,
		    "store operation failed");
		return -1;
	}
	if (rc != 0 && c->err->code == COMMON_E_NONE)
		common_error_set(c->err, COMMON_E_INTERNAL, "internal error");
	return rc;
}

int
lifecycle_txn_run(struct lifecycle *lc,
    int (*fn)(struct store_txn *txn, void *arg, struct common_error *err),
    void *arg, struct common_error *err)
{
	struct common_error local;
	struct lc_txn_call call = { fn, arg, &local };

	common_error_clear(&local);
	if (store_txn_run(lc->st, lifecycle_txn_try, &call) == 0)
		return 0;
	if (local.code == COMMON_E_NONE)
		common_error_set(&local, COMMON_E_INTERNAL,
		    "transaction failed");
	common_error_set(err, local.code, "%s", local.msg);
	return -1;
}

/*
 * Appends one audit record inside txn. The record only says what
 * happened; refusals abort their transaction and leave no record.
 */
int
lifecycle_audit(struct store_txn *txn, const char *who, const char *action,
    const char *object, const char *fmt, ...)
{
	char when[LIFECYCLE_TIME_MAX], detail[LC_DETAIL_MAX];
	json_t *rec = NULL;
	va_list ap;
	int rc = -1;

	common_time_rfc3339(common_now(), when, sizeof(when));
	va_start(ap, fmt);
	if (vsnprintf(detail, sizeof(detail), fmt, ap) < 0)
		detail[0] = '\0';
	va_end(ap);
	rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "time", when,
	    "who", who != NULL && *who != '\0' ? who : "system",
	    "action", action, "object", object, "result", "ok",
	    "detail", detail);
	if (rec == NULL) {
		log_err("lifecycle: audit %s %s: out of memory", action,
		    object);
		goto out;
	}
	if (store_audit_append(txn, rec, NULL) == -1) {
		log_err("lifecycle: audit %s %s: append failed", action,
		    object);
		goto out;
	}
	rc = 0;
out:
	json_decref(rec);
	return rc;
}

static const char *const lc_type_text[LIFECYCLE_F__MAX] = {
	[LIFECYCLE_F_STRING] = "a string",
	[LIFECYCLE_F_NUMBER] = "a number",
	[LIFECYCLE_F_OBJECT] = "an object",
	[LIFECYCLE_F_STRINGS] = "an array of strings",
};

/* Copies s into out for a one-line message: control and non-ASCII bytes
 * become '?', and a long text is cut. */
static void
lc_printable(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outlen; i++)
		out[i] = (unsigned char)s[i] < 0x20 ||
		    (unsigned char)s[i] > 0x7e ? '?' : s[i];
	out[i] = '\0';
}

static bool
lc_type_ok(const json_t *v, enum lifecycle_field_type type)
{
	size_t i;
	json_t *e;

	switch (type) {
	case LIFECYCLE_F_STRING:
		return json_is_string(v);
	case LIFECYCLE_F_NUMBER:
		return json_is_number(v);
	case LIFECYCLE_F_OBJECT:
		return json_is_object(v);
	case LIFECYCLE_F_STRINGS:
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, e) {
			if (!json_is_string(e))
				return false;
		}
		return true;
	default:
		return false;
	}
}

/*
 * Field check of a request object against a table. Unknown keys are
 * refused rather than ignored so that a typo ("san") never silently
 * produces a certificate without the intended names.
 */
int
lifecycle_req_check(const json_t *req, const char *prefix,
    const struct lifecycle_field *fields, struct common_error *err)
{
	const struct lifecycle_field *f;
	char shown[LC_SHOWN_MAX];
	const char *key;
	json_t *v;
	int rc = -1;

	if (!json_is_object(req)) {
		if (*prefix == '\0')
			common_error_set(err, COMMON_E_INVALID,
			    "request must be a JSON object");
		else
			common_error_set(err, COMMON_E_INVALID,
			    "field \"%.*s\" must be an object",
			    (int)strlen(prefix) - 1, prefix);
		goto out;
	}
	json_object_foreach((json_t *)req, key, v) {
		for (f = fields; f->name != NULL; f++)
			if (strcmp(f->name, key) == 0)
				break;
		if (f->name == NULL) {
			lc_printable(key, shown, sizeof(shown));
			common_error_set(err, COMMON_E_INVALID,
			    "unknown field \"%s%s\"", prefix, shown);
			goto out;
		}
		if (json_is_null(v))
			continue;
		if (!lc_type_ok(v, f->type)) {
			common_error_set(err, COMMON_E_INVALID,
			    "field \"%s%s\" must be %s", prefix, key,
			    (unsigned)f->type < LIFECYCLE_F__MAX ?
			    lc_type_text[f->type] : "valid");
			goto out;
		}
	}
	rc = 0;
out:
	return rc;
}

const char *
lifecycle_req_str(const json_t *req, const char *name)
{
	return json_string_value(json_object_get(req, name));
}

int
lifecycle_name_check(const char *field, const char *s,
    struct common_error *err)
{
	size_t n;

	if (s == NULL) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"%s\" is required", field);
		return -1;
	}
	for (n = 0; s[n] != '\0'; n++) {
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
			break;
	}
	if (n == 0 || s[n] != '\0' || n > LIFECYCLE_NAME_MAX) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"%s\" must be 1..%d printable ASCII characters",
		    field, LIFECYCLE_NAME_MAX);
		return -1;
	}
	return 0;
}

int
lifecycle_page_check(const char *page_token, size_t limit,
    size_t *limit_out, struct common_error *err)
{
	if (page_token != NULL && *page_token != '\0' &&
	    !common_id_valid(page_token)) {
		common_error_set(err, COMMON_E_INVALID,
		    "page_token is not a valid token");
		return -1;
	}
	if (limit > LIFECYCLE_PAGE_MAX) {
		common_error_set(err, COMMON_E_INVALID,
		    "limit must be 1..%d", LIFECYCLE_PAGE_MAX);
		return -1;
	}
	*limit_out = limit == 0 ? LIFECYCLE_PAGE_DEFAULT : limit;
	return 0;
}

json_t *
lifecycle_page_result(const char *key, json_t *items, const char *next)
{
	json_t *res = NULL;

	if (items == NULL)
		goto out;
	res = json_pack("{s:O, s:o}", key, items,
	    "next_page_token", next != NULL ? json_string(next) : json_null());
	if (res == NULL)
		log_err("lifecycle: page of %s: out of memory", key);
out:
	json_decref(items);
	return res;
}
