/*
 * lifecycle/delete.c — deleting certificates the way OCI Certificates
 * does: a DELETE schedules the deletion lifecycle.deletion_pending_days
 * ahead (the certificate stays listed as "pending_deletion" and is no
 * longer renewed), it can be cancelled until then, and the scheduler
 * executes it once due. Associations block scheduling and execution;
 * an admin may delete at once.
 *
 * Deleting removes the certificate record, its versions and their sealed
 * keys; the serial registry (`issued`) keeps its rows so that CRLs go on
 * listing revoked serials.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle/lifecycle.h"

#define LC_DAY_SECONDS	86400.0
#define LC_REFUSED_MAX	512	/* a conflict message (common_error.msg) */

/* One deletion operation. */
struct lc_del {
	struct lifecycle	*lc;
	const char		*who;
	const char		*id;
	time_t			 now;
	json_t			*out;		/* schedule: the record */
	bool			 deleted;	/* execute: it was */
	char			 refused[LC_REFUSED_MAX];
						/* execute: why not */
};

static const char *
lc_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool
lc_pending(const json_t *crec)
{
	const char *state = lc_str(crec, "state");

	return state != NULL && strcmp(state, "pending_deletion") == 0;
}

/* The record of id inside txn, or NULL with NOTFOUND. */
static json_t *
lc_del_load(struct lc_del *d, struct store_txn *txn,
    struct common_error *err)
{
	json_t *crec;

	if ((crec = store_cert_get(store_txn_store(txn), txn, d->id)) == NULL)
		common_error_set(err, COMMON_E_NOTFOUND, "no certificate %s",
		    d->id);
	return crec;
}

/* CONFLICT naming the associations of the certificate, if it has any. */
static int
lc_del_assocs(struct lc_del *d, struct store_txn *txn,
    struct common_error *err)
{
	char owner[LIFECYCLE_ID_MAX + 16];
	json_t *assocs;
	int rc = -1;

	if ((assocs = store_assoc_by_cert(store_txn_store(txn), txn,
	    d->id)) == NULL)
		return -1;
	if (json_array_size(assocs) > 0) {
		snprintf(owner, sizeof(owner), "certificate %s", d->id);
		lifecycle_assoc_conflict(d->lc, txn, owner, assocs, true, err);
		goto out;
	}
	rc = 0;
out:
	json_decref(assocs);
	return rc;
}

/* Removes crec, its versions and their keys, audited as
 * "certificate.delete" with detail. */
static int
lc_del_remove(struct lc_del *d, struct store_txn *txn, const json_t *crec,
    const char *detail)
{
	json_t *versions, *v;
	const char *key_id;
	size_t i;
	int rc = -1;

	if ((versions = store_version_list(store_txn_store(txn), txn,
	    d->id)) == NULL)
		return -1;
	json_array_foreach(versions, i, v) {
		/* versions renewed with reuse_key share a key: the second
		 * delete finds nothing, which is fine */
		if ((key_id = lc_str(v, "key_id")) != NULL &&
		    store_key_del(txn, key_id) == -1 && store_txn_failed(txn))
			goto out;
		if (store_version_del(txn, d->id, (uint32_t)json_integer_value(
		    json_object_get(v, "version"))) == -1)
			goto out;
	}
	if (store_cert_del(txn, d->id) == -1)
		goto out;
	rc = lifecycle_audit(txn, d->who, "certificate.delete", d->id,
	    "name \"%s\" mode %s versions %zu%s", lc_str(crec, "name"),
	    lc_str(crec, "mode"), json_array_size(versions), detail);
out:
	json_decref(versions);
	return rc;
}

/* Schedules the deletion (or answers the standing schedule); d->out
 * gets the record. */
static int
lc_schedule_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_del *d = arg;
	struct lifecycle_sched sc;
	char now[LIFECYCLE_TIME_MAX], at[LIFECYCLE_TIME_MAX];
	json_t *crec = NULL, *del;
	int rc = -1;

	json_decref(d->out);
	d->out = NULL;
	if ((crec = lc_del_load(d, txn, err)) == NULL)
		goto out;
	if (lc_pending(crec)) {
		/* DELETE is idempotent: the schedule stands as it was */
		d->out = crec;	/* steal */
		crec = NULL;
		rc = 0;
		goto out;
	}
	if (lc_del_assocs(d, txn, err) == -1)
		goto out;
	lifecycle_sched_get(d->lc, &sc);
	common_time_rfc3339(d->now, now, sizeof(now));
	common_time_rfc3339(d->now + (time_t)(sc.deletion_pending_days *
	    LC_DAY_SECONDS), at, sizeof(at));
	if ((del = json_pack("{s:s, s:s, s:s}", "scheduled_at", now,
	    "execute_at", at, "scheduled_by", d->who != NULL ? d->who :
	    "system")) == NULL ||
	    json_object_set_new(crec, "deletion", del) == -1 ||
	    json_object_set_new(crec, "state",
	    json_string("pending_deletion")) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (store_cert_put(txn, d->id, crec) == -1)
		goto out;
	if (lifecycle_audit(txn, d->who, "certificate.delete_scheduled",
	    d->id, "name \"%s\": deletion at %s", lc_str(crec, "name"), at) ==
	    -1)
		goto out;
	d->out = crec;	/* steal */
	crec = NULL;
	rc = 0;
out:
	json_decref(crec);
	return rc;
}

/* Deletes at once, scheduled or not; associations still block it. */
static int
lc_now_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_del *d = arg;
	json_t *crec;
	int rc = -1;

	if ((crec = lc_del_load(d, txn, err)) == NULL)
		return -1;
	if (lc_del_assocs(d, txn, err) == -1)
		goto out;
	rc = lc_del_remove(d, txn, crec, lc_pending(crec) ?
	    " (was scheduled; deleted at once)" : "");
out:
	json_decref(crec);
	return rc;
}

/* Drops a scheduled deletion: the certificate is active again. */
static int
lc_cancel_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_del *d = arg;
	json_t *crec;
	int rc = -1;

	if ((crec = lc_del_load(d, txn, err)) == NULL)
		return -1;
	if (!lc_pending(crec)) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "certificate %s is not scheduled for deletion", d->id);
		goto out;
	}
	if (json_object_set_new(crec, "state", json_string("active")) == -1 ||
	    json_object_set_new(crec, "deletion", json_null()) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (store_cert_put(txn, d->id, crec) == -1)
		goto out;
	rc = lifecycle_audit(txn, d->who, "certificate.delete_cancelled",
	    d->id, "name \"%s\": deletion cancelled", lc_str(crec, "name"));
out:
	json_decref(crec);
	return rc;
}

/*
 * The scheduler's half: deletes id when it is still scheduled and due.
 * Associations made since it was scheduled stop it: the schedule is then
 * dropped (the certificate is active again), audited as a failed
 * "certificate.delete".
 */
static int
lc_execute_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_del *d = arg;
	struct common_error why;
	char detail[LIFECYCLE_TIME_MAX + LIFECYCLE_NAME_MAX + 32];
	const json_t *del;
	json_t *crec;
	time_t at;
	int rc = -1;

	d->deleted = false;
	d->refused[0] = '\0';
	if ((crec = store_cert_get(store_txn_store(txn), txn, d->id)) == NULL)
		return 0;	/* gone already */
	del = json_object_get(crec, "deletion");
	if (!lc_pending(crec) || lifecycle_time_parse(lc_str(del,
	    "execute_at"), &at) == -1 || at > d->now) {
		rc = 0;		/* cancelled or not due (any more) */
		goto out;
	}
	common_error_clear(&why);
	if (lc_del_assocs(d, txn, &why) == -1) {
		if (store_txn_failed(txn))
			goto out;
		snprintf(d->refused, sizeof(d->refused), "%s", why.msg);
		if (json_object_set_new(crec, "state", json_string("active")) ==
		    -1 || json_object_set_new(crec, "deletion", json_null()) ==
		    -1) {
			common_error_set(err, COMMON_E_INTERNAL,
			    "out of memory");
			goto out;
		}
		if (store_cert_put(txn, d->id, crec) == -1)
			goto out;
		rc = lifecycle_audit_result(txn, d->who, "certificate.delete",
		    d->id, "failed", "scheduled deletion dropped: %s",
		    why.msg);
		goto out;
	}
	snprintf(detail, sizeof(detail), "; scheduled by %s at %s",
	    lc_str(del, "scheduled_by") != NULL ? lc_str(del, "scheduled_by") :
	    "?", lc_str(del, "scheduled_at") != NULL ? lc_str(del,
	    "scheduled_at") : "?");
	if (lc_del_remove(d, txn, crec, detail) == -1)
		goto out;
	d->deleted = true;
	rc = 0;
out:
	json_decref(crec);
	return rc;
}

/* Checks id and prepares d. 0, or -1 with NOTFOUND. */
static int
lc_del_init(struct lc_del *d, struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err)
{
	memset(d, 0, sizeof(*d));
	d->lc = lc;
	d->who = who;
	d->id = id;
	d->now = common_now();
	if (id == NULL || !common_id_valid(id)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate id is not valid");
		return -1;
	}
	return 0;
}

json_t *
lifecycle_cert_delete_schedule(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err)
{
	struct lc_del d;
	json_t *res = NULL;

	if (lc_del_init(&d, lc, id, who, err) == -1)
		return NULL;
	if (lifecycle_txn_run(lc, lc_schedule_txn, &d, err) == 0) {
		res = d.out;	/* steal */
		d.out = NULL;
	}
	json_decref(d.out);
	return res;
}

int
lifecycle_cert_delete(struct lifecycle *lc, const char *id, const char *who,
    struct common_error *err)
{
	json_t *rec = lifecycle_cert_delete_schedule(lc, id, who, err);

	json_decref(rec);
	return rec != NULL ? 0 : -1;
}

int
lifecycle_cert_delete_now(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err)
{
	struct lc_del d;

	if (lc_del_init(&d, lc, id, who, err) == -1)
		return -1;
	return lifecycle_txn_run(lc, lc_now_txn, &d, err);
}

json_t *
lifecycle_cert_cancel_deletion(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err)
{
	struct lc_del d;

	if (lc_del_init(&d, lc, id, who, err) == -1)
		return NULL;
	if (lifecycle_txn_run(lc, lc_cancel_txn, &d, err) == -1)
		return NULL;
	return lifecycle_cert_get(lc, id, err);
}

int
lifecycle_deletion_execute(struct lifecycle *lc, const char *id,
    struct common_error *err)
{
	struct lc_del d;

	if (lc_del_init(&d, lc, id, LIFECYCLE_WHO_SCHEDULER, err) == -1)
		return -1;
	if (lifecycle_txn_run(lc, lc_execute_txn, &d, err) == -1)
		return -1;
	if (d.deleted)
		log_info("lifecycle: scheduler deleted certificate %s", id);
	else if (d.refused[0] != '\0')
		log_warn("lifecycle: scheduled deletion of certificate %s "
		    "dropped: %s", id, d.refused);
	return 0;
}
