/*
 * lifecycle/ca.c — the lifecycle of CAs themselves: renewal as a new CA
 * certificate version (and the re-issue of the CA's managed leaves under
 * it), disabling and enabling, and deletion scheduled like a
 * certificate's. Each change runs ca/ inside one store transaction with
 * its audit record; what lives outside the store (public files, CRLs,
 * keys) follows after the commit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle/lifecycle.h"

#define LC_CA_DAY_SECONDS	86400.0
#define LC_CA_SCAN_PAGE		1000	/* certificates read per index page */
#define LC_CA_REISSUE_MAX	100000	/* leaves one re-issue walks */

/* One CA operation across transaction retries. */
struct lc_ca_op {
	struct lifecycle	*lc;
	const char		*ca_id;
	const char		*who;
	struct ca_renew_req	 renew;
	const char		*state;		/* set_state */
	time_t			 execute_at;	/* schedule */
	json_t			*out;		/* the CA record, or the
						   deleted one */
	const struct lifecycle_ca_reissue_result *reissue;	/* audit */
};

/* ---- renewal ---- */

static int
lc_ca_renew_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_ca_op *op = arg;

	json_decref(op->out);
	op->out = ca_renew(lifecycle_ca(op->lc), txn, op->ca_id, &op->renew,
	    err);
	if (op->out == NULL)
		return -1;
	return lifecycle_audit(txn, op->who, "ca.renew", op->ca_id,
	    "version %lld, %s key, valid until %s",
	    (long long)json_integer_value(json_object_get(op->out,
	    "current_version")), op->renew.new_key ? "new" : "same",
	    json_string_value(json_object_get(op->out, "not_after")));
}

/* After a CA changed certificate: its public files (every version, the
 * trust bundle) and its CRLs at once, so the CRL URL that leaves issued
 * from now on carry answers before the first of them is fetched. */
static void
lc_ca_publish(struct lifecycle *lc, const char *ca_id)
{
	struct common_error e;

	if (ca_publish_certs(lifecycle_ca(lc)) == -1)
		log_warn("lifecycle: CA %s: public certificate files not all "
		    "written", ca_id);
	common_error_clear(&e);
	if (ca_crl_publish(lifecycle_ca(lc), ca_id,
	    lifecycle_crl_next_update_seconds(lc), NULL, NULL, &e) == -1)
		log_warn("lifecycle: CA %s: CRLs not published after the "
		    "renewal: %s", ca_id, e.msg);
}

/*
 * Renews CA ca_id (ca_renew): a new key is made before the transaction
 * (so a retried transaction does not make several) and removed again
 * when the renewal does not commit. Returns the CA record (new
 * reference) or NULL with err.
 */
json_t *
lifecycle_ca_renew(struct lifecycle *lc, const char *ca_id, bool new_key,
    double validity_days, const char *who, struct common_error *err)
{
	struct lc_ca_op op;
	json_t *key = NULL, *res = NULL;

	memset(&op, 0, sizeof(op));
	op.lc = lc;
	op.ca_id = ca_id;
	op.who = who;
	op.renew.new_key = new_key;
	op.renew.validity_days = validity_days;
	if (new_key) {
		/* Refusals that need no key come first (no key made). */
		if ((op.out = ca_get(lifecycle_ca(lc), NULL, ca_id, err)) ==
		    NULL)
			goto out;
		json_decref(op.out);
		op.out = NULL;
		if ((key = ca_key_create(lifecycle_ca(lc), ca_id, err)) ==
		    NULL)
			goto out;
		op.renew.key = key;
	}
	if (lifecycle_txn_run(lc, lc_ca_renew_txn, &op, err) == -1) {
		ca_key_discard(lifecycle_ca(lc), ca_id, key);
		goto out;
	}
	log_info("lifecycle: %s renewed CA %s (version %lld, %s key)", who,
	    ca_id, (long long)json_integer_value(json_object_get(op.out,
	    "current_version")), new_key ? "new" : "same");
	lc_ca_publish(lc, ca_id);
	/* Read again: publishing moved the CRL number on. */
	common_error_clear(err);
	if ((res = ca_get(lifecycle_ca(lc), NULL, ca_id, err)) == NULL) {
		res = op.out;	/* steal */
		op.out = NULL;
		common_error_clear(err);
	}
out:
	json_decref(op.out);
	json_decref(key);
	return res;
}

/* ---- re-issue of the leaves ---- */

/* Index filter: managed certificates that may be renewed (not revoked,
 * not being deleted). */
static bool
lc_ca_reissue_filter(const json_t *rec, void *arg)
{
	const char *mode = json_string_value(json_object_get(rec, "mode"));
	const char *state = json_string_value(json_object_get(rec, "state"));
	const char *stage = json_string_value(json_object_get(rec, "stage"));
	size_t *skipped = arg;

	if (mode == NULL || strcmp(mode, "managed") != 0)
		return false;
	if ((state != NULL && strcmp(state, "pending_deletion") == 0) ||
	    (stage != NULL && strcmp(stage, "revoked") == 0)) {
		(*skipped)++;
		return false;
	}
	return true;
}

/*
 * The ids of the managed certificates of ca_id, through the certificate
 * index by CA (page by page). A JSON array of strings (new reference) or
 * NULL with err.
 */
static json_t *
lc_ca_leaves(struct lifecycle *lc, const char *ca_id, size_t *skipped,
    struct common_error *err)
{
	struct store_range range;
	struct store_page page;
	json_t *ids = NULL, *items, *rec, *result = NULL;
	char *next = NULL, *after = NULL;
	size_t i;

	memset(&range, 0, sizeof(range));
	range.index = STORE_CERT_BY_CA;
	range.lo = ca_id;
	range.lo_len = strlen(ca_id);
	range.hi = ca_id;
	range.hi_len = strlen(ca_id);
	range.hi_inclusive = true;
	if ((ids = json_array()) == NULL)
		goto oom;
	do {
		memset(&page, 0, sizeof(page));
		page.after = after;
		page.limit = LC_CA_SCAN_PAGE;
		page.filter = lc_ca_reissue_filter;
		page.arg = skipped;
		if ((items = store_cert_scan(lifecycle_store(lc), NULL, &range,
		    &page, &next)) == NULL) {
			common_error_set(err, COMMON_E_INTERNAL, "cannot list "
			    "the certificates of CA %s", ca_id);
			goto out;
		}
		json_array_foreach(items, i, rec) {
			if (json_array_size(ids) >= LC_CA_REISSUE_MAX ||
			    json_array_append(ids, json_object_get(rec,
			    "id")) == -1) {
				json_decref(items);
				common_error_set(err, COMMON_E_INTERNAL, "CA %s "
				    "has more than %d managed certificates to "
				    "re-issue at once", ca_id,
				    LC_CA_REISSUE_MAX);
				goto out;
			}
		}
		json_decref(items);
		free(after);
		after = next;	/* steal */
		next = NULL;
	} while (after != NULL);
	result = ids;	/* steal */
	ids = NULL;
	goto out;
oom:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	free(after);
	free(next);
	json_decref(ids);
	return result;
}

static int
lc_ca_reissue_audit_txn(struct store_txn *txn, void *arg,
    struct common_error *err)
{
	struct lc_ca_op *op = arg;

	(void)err;
	return lifecycle_audit(txn, op->who, "ca.reissue", op->ca_id, "%zu "
	    "renewed, %zu failed, %zu skipped", op->reissue->renewed,
	    op->reissue->failed, op->reissue->skipped);
}

/*
 * Re-issues every managed leaf of ca_id as a new version (the usual
 * renewal path, one transaction per certificate, so a failure leaves the
 * others done): revoked certificates and those being deleted are
 * skipped. Counts go to res; the run is audited as "ca.reissue".
 * 0, or -1 with err when the certificates cannot be listed.
 */
int
lifecycle_ca_reissue_run(struct lifecycle *lc, const char *ca_id,
    const char *who, struct lifecycle_ca_reissue_result *res,
    struct common_error *err)
{
	struct common_error e;
	struct lc_ca_op op;
	json_t *ids = NULL, *rec, *v;
	const char *id;
	size_t i;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if ((rec = ca_get(lifecycle_ca(lc), NULL, ca_id, err)) == NULL)
		goto out;
	json_decref(rec);
	if ((ids = lc_ca_leaves(lc, ca_id, &res->skipped, err)) == NULL)
		goto out;
	json_array_foreach(ids, i, v) {
		id = json_string_value(v);
		common_error_clear(&e);
		if ((rec = lifecycle_cert_renew(lc, id, who, &e)) == NULL) {
			log_warn("lifecycle: CA %s: re-issue of certificate "
			    "%s failed: %s", ca_id, id, e.msg);
			res->failed++;
			continue;
		}
		json_decref(rec);
		res->renewed++;
	}
	/* The summary is a record of its own: each renewal audited itself
	 * in its transaction. */
	memset(&op, 0, sizeof(op));
	op.ca_id = ca_id;
	op.who = who;
	op.reissue = res;
	common_error_clear(&e);
	if (lifecycle_txn_run(lc, lc_ca_reissue_audit_txn, &op, &e) == -1)
		log_warn("lifecycle: CA %s: re-issue summary not audited: %s",
		    ca_id, e.msg);
	log_info("lifecycle: %s re-issued the leaves of CA %s: %zu renewed, "
	    "%zu failed, %zu skipped", who, ca_id, res->renewed, res->failed,
	    res->skipped);
	rc = 0;
out:
	json_decref(ids);
	return rc;
}

int
lifecycle_ca_reissue(struct lifecycle *lc, const char *ca_id, const char *who,
    struct common_error *err)
{
	struct lifecycle_ca_reissue_result res;

	if (lifecycle_ca_reissue_run(lc, ca_id, who, &res, err) == -1)
		return -1;
	return res.renewed > (size_t)INT32_MAX ? INT32_MAX : (int)res.renewed;
}

/* ---- state ---- */

static int
lc_ca_state_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_ca_op *op = arg;

	if (ca_set_state(lifecycle_ca(op->lc), txn, op->ca_id, op->state,
	    err) == -1)
		return -1;
	return lifecycle_audit(txn, op->who, strcmp(op->state, "active") == 0 ?
	    "ca.enable" : "ca.disable", op->ca_id, "state %s", op->state);
}

/* Disables or enables CA ca_id (ca_set_state), audited. 0 or -1. */
int
lifecycle_ca_set_state(struct lifecycle *lc, const char *ca_id,
    const char *state, const char *who, struct common_error *err)
{
	struct lc_ca_op op;

	memset(&op, 0, sizeof(op));
	op.lc = lc;
	op.ca_id = ca_id;
	op.who = who;
	op.state = state;
	if (lifecycle_txn_run(lc, lc_ca_state_txn, &op, err) == -1)
		return -1;
	log_info("lifecycle: %s set CA %s %s", who, ca_id, state);
	return 0;
}

/* ---- deletion ---- */

static int
lc_ca_schedule_txn(struct store_txn *txn, void *arg,
    struct common_error *err)
{
	struct lc_ca_op *op = arg;

	json_decref(op->out);
	if ((op->out = ca_delete_schedule(lifecycle_ca(op->lc), txn,
	    op->ca_id, op->execute_at, err)) == NULL)
		return -1;
	return lifecycle_audit(txn, op->who, "ca.delete_scheduled", op->ca_id,
	    "executes at %s", json_string_value(json_object_get(
	    json_object_get(op->out, "deletion"), "execute_at")));
}

static int
lc_ca_delete_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_ca_op *op = arg;

	json_decref(op->out);
	if ((op->out = ca_delete(lifecycle_ca(op->lc), txn, op->ca_id,
	    err)) == NULL)
		return -1;
	return lifecycle_audit(txn, op->who, "ca.delete", op->ca_id,
	    "%s CA \"%s\"", json_string_value(json_object_get(op->out,
	    "type")), json_string_value(json_object_get(op->out, "name")));
}

/* Deletes at once: the record in a transaction, then its keys and public
 * files (ca_purge). */
static int
lc_ca_delete_now(struct lifecycle *lc, const char *ca_id, const char *who,
    struct common_error *err)
{
	struct lc_ca_op op;

	memset(&op, 0, sizeof(op));
	op.lc = lc;
	op.ca_id = ca_id;
	op.who = who;
	if (lifecycle_txn_run(lc, lc_ca_delete_txn, &op, err) == -1) {
		json_decref(op.out);
		return -1;
	}
	/* on a server worker the deletion may not be on disk yet: the
	 * keys go only once it is (a crash would bring the CA back) */
	if (store_flush_all(lifecycle_store(lc)) == -1)
		log_err("lifecycle: CA %s deleted but the log flush failed: "
		    "its keys and files are kept", ca_id);
	else
		ca_purge(lifecycle_ca(lc), op.out);
	json_decref(op.out);
	log_info("lifecycle: %s deleted CA %s", who, ca_id);
	return 0;
}

/*
 * Deletes CA ca_id: at once when now is set (admin), else scheduled
 * lifecycle.deletion_pending_days ahead; *scheduled then gets the CA
 * record (new reference). Refused (CONFLICT with the counts) while the
 * CA has active certificates or subordinates. 0 or -1 with err.
 */
int
lifecycle_ca_delete(struct lifecycle *lc, const char *ca_id, bool now,
    const char *who, json_t **scheduled, struct common_error *err)
{
	struct lifecycle_sched sc;
	struct lc_ca_op op;

	*scheduled = NULL;
	if (now)
		return lc_ca_delete_now(lc, ca_id, who, err);
	lifecycle_sched_get(lc, &sc);
	memset(&op, 0, sizeof(op));
	op.lc = lc;
	op.ca_id = ca_id;
	op.who = who;
	op.execute_at = common_now() + (time_t)(sc.deletion_pending_days *
	    LC_CA_DAY_SECONDS);
	if (lifecycle_txn_run(lc, lc_ca_schedule_txn, &op, err) == -1) {
		json_decref(op.out);
		return -1;
	}
	*scheduled = op.out;	/* steal */
	return 0;
}

static int
lc_ca_cancel_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_ca_op *op = arg;

	if (ca_delete_cancel(lifecycle_ca(op->lc), txn, op->ca_id, err) == -1)
		return -1;
	return lifecycle_audit(txn, op->who, "ca.delete_cancelled", op->ca_id,
	    "deletion cancelled");
}

/* Cancels a scheduled deletion; returns the CA record (new reference)
 * or NULL with err (CONFLICT when none is scheduled). */
json_t *
lifecycle_ca_cancel_deletion(struct lifecycle *lc, const char *ca_id,
    const char *who, struct common_error *err)
{
	struct lc_ca_op op;

	memset(&op, 0, sizeof(op));
	op.lc = lc;
	op.ca_id = ca_id;
	op.who = who;
	if (lifecycle_txn_run(lc, lc_ca_cancel_txn, &op, err) == -1)
		return NULL;
	log_info("lifecycle: %s cancelled the deletion of CA %s", who, ca_id);
	return ca_get(lifecycle_ca(lc), NULL, ca_id, err);
}

/*
 * Executes the CA deletions that are due: every CA "pending_deletion"
 * whose execute_at passed is deleted (re-checked: a CA that gained a
 * subordinate meanwhile stays scheduled, logged). Returns the number
 * deleted, or -1 when the CAs cannot be listed.
 */
int
lifecycle_ca_tick(struct lifecycle *lc)
{
	struct common_error err;
	json_t *cas, *rec;
	const char *id, *state;
	json_int_t at;
	time_t now = common_now();
	size_t i;
	int done = 0;

	if ((cas = ca_list(lifecycle_ca(lc), NULL)) == NULL) {
		log_err("lifecycle: CA deletions: cannot list CAs");
		return -1;
	}
	json_array_foreach(cas, i, rec) {
		id = json_string_value(json_object_get(rec, "id"));
		state = json_string_value(json_object_get(rec, "state"));
		at = json_integer_value(json_object_get(json_object_get(rec,
		    "deletion"), "execute_at_epoch"));
		if (id == NULL || state == NULL ||
		    strcmp(state, "pending_deletion") != 0 || at > now)
			continue;
		common_error_clear(&err);
		if (lc_ca_delete_now(lc, id, LIFECYCLE_WHO_SCHEDULER,
		    &err) == -1) {
			log_warn("lifecycle: scheduled deletion of CA %s not "
			    "executed: %s", id, err.msg);
			continue;
		}
		done++;
	}
	json_decref(cas);
	return done;
}
