/*
 * ca/state.c — the states of a CA after its creation: disabled (no
 * issuance, CRLs go on), scheduled for deletion, and deletion itself
 * (refused while the CA answers for unexpired, unrevoked certificates or
 * has subordinates), with the removal of its keys and public files.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/ca.h"

#define STATE_TIME_MAX	32	/* RFC 3339 */
#define STATE_KEYS_MAX	(CA_VERSIONS_MAX + 1)	/* keys of one CA */

/* The state of rec, "" when it has none. */
static const char *
state_of(const json_t *rec)
{
	const char *s = json_string_value(json_object_get(rec, "state"));

	return s != NULL ? s : "";
}

/* The record of ca_id read in txn, or NULL with NOTFOUND. */
static json_t *
state_load(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	json_t *rec;

	if ((rec = ca_record_load(ctx, txn, ca_id)) == NULL)
		common_error_set(err, COMMON_E_NOTFOUND, "CA %s not found",
		    ca_id != NULL ? ca_id : "(none)");
	return rec;
}

/*
 * Switches an active CA to disabled or back. A CA scheduled for deletion
 * keeps that state (cancel the deletion first); a pending one has no
 * certificate to issue with yet.
 */
int
ca_set_state(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    const char *state, struct common_error *err)
{
	json_t *rec = NULL;
	const char *cur;
	int rc = -1;

	if (state == NULL || (strcmp(state, "active") != 0 &&
	    strcmp(state, "disabled") != 0)) {
		common_error_set(err, COMMON_E_INVALID, "state must be active "
		    "or disabled");
		goto out;
	}
	if ((rec = state_load(ctx, txn, ca_id, err)) == NULL)
		goto out;
	cur = state_of(rec);
	if (strcmp(cur, state) == 0) {
		rc = 0;
		goto out;
	}
	if (strcmp(cur, "active") != 0 && strcmp(cur, "disabled") != 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is %s: only an "
		    "active or disabled CA can be %s", ca_id, cur[0] != '\0' ?
		    cur : "in no state", strcmp(state, "active") == 0 ?
		    "enabled" : "disabled");
		goto out;
	}
	if (json_object_set_new(rec, "state", json_string(state)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (ca_record_store(ctx, txn, ca_id, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot store the CA");
		goto out;
	}
	log_info("ca %s: %s", ca_id, strcmp(state, "active") == 0 ?
	    "enabled" : "disabled");
	rc = 0;
out:
	json_decref(rec);
	return rc;
}

/* Number of certificates ca_id issued that are valid (not revoked) and
 * unexpired at now; -1 on a store failure. */
static long
state_active_certs(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, time_t now)
{
	json_t *valid, *rec, *na;
	size_t i;
	long n = 0;

	if ((valid = store_issued_by_ca_status(ca_ctx_store(ctx), txn, ca_id,
	    "valid")) == NULL)
		return -1;
	json_array_foreach(valid, i, rec) {
		na = json_object_get(rec, "not_after");
		if (!json_is_integer(na) || json_integer_value(na) > now)
			n++;
	}
	json_decref(valid);
	return n;
}

/* Number of CA records whose parent is ca_id; -1 on a store failure. */
static long
state_subordinates(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id)
{
	json_t *list, *rec;
	const char *parent;
	size_t i;
	long n = 0;

	if ((list = store_ca_list(ca_ctx_store(ctx), txn)) == NULL)
		return -1;
	json_array_foreach(list, i, rec) {
		parent = json_string_value(json_object_get(rec, "parent_id"));
		if (parent != NULL && strcmp(parent, ca_id) == 0)
			n++;
	}
	json_decref(list);
	return n;
}

/*
 * Refuses the deletion of a CA that still answers for something: a
 * certificate neither revoked nor expired (relying parties would lose its
 * CRL and chain) or a subordinate CA (in any state: its chain runs
 * through this CA).
 */
int
ca_delete_check(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    time_t now, struct common_error *err)
{
	json_t *rec;
	long certs, subs;

	if ((rec = state_load(ctx, txn, ca_id, err)) == NULL)
		return -1;
	json_decref(rec);
	if ((certs = state_active_certs(ctx, txn, ca_id, now)) == -1 ||
	    (subs = state_subordinates(ctx, txn, ca_id)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot count what CA "
		    "%s answers for", ca_id);
		return -1;
	}
	if (certs > 0 && subs > 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s has %ld active "
		    "certificate%s and %ld subordinate CA%s", ca_id, certs,
		    certs == 1 ? "" : "s", subs, subs == 1 ? "" : "s");
		return -1;
	}
	if (certs > 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s has %ld active "
		    "certificate%s (revoke them or let them expire, or "
		    "disable the CA instead)", ca_id, certs,
		    certs == 1 ? "" : "s");
		return -1;
	}
	if (subs > 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s has %ld "
		    "subordinate CA%s (delete them first)", ca_id, subs,
		    subs == 1 ? "" : "s");
		return -1;
	}
	return 0;
}

/*
 * Schedules the deletion of a CA (active, disabled or pending) that
 * passes ca_delete_check. The state it had is kept so a cancellation
 * restores it.
 */
json_t *
ca_delete_schedule(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, time_t execute_at, struct common_error *err)
{
	char now[STATE_TIME_MAX], at[STATE_TIME_MAX];
	json_t *rec = NULL, *result = NULL;
	const char *cur;

	if ((rec = state_load(ctx, txn, ca_id, err)) == NULL)
		goto out;
	cur = state_of(rec);
	if (strcmp(cur, "pending_deletion") == 0) {
		json_decref(rec);
		rec = NULL;
		result = ca_get(ctx, txn, ca_id, err);
		goto out;
	}
	if (strcmp(cur, "active") != 0 && strcmp(cur, "disabled") != 0 &&
	    strcmp(cur, "pending") != 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is %s: it "
		    "cannot be scheduled for deletion", ca_id, cur[0] != '\0' ?
		    cur : "in no state");
		goto out;
	}
	if (ca_delete_check(ctx, txn, ca_id, common_now(), err) == -1)
		goto out;
	common_time_rfc3339(common_now(), now, sizeof(now));
	common_time_rfc3339(execute_at, at, sizeof(at));
	if (json_object_set_new(rec, "state_before_deletion",
	    json_string(cur)) == -1 ||
	    json_object_set_new(rec, "state",
	    json_string("pending_deletion")) == -1 ||
	    json_object_set_new(rec, "deletion", json_pack("{s:s, s:s, s:I}",
	    "scheduled_at", now, "execute_at", at, "execute_at_epoch",
	    (json_int_t)execute_at)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (ca_record_store(ctx, txn, ca_id, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot store the CA");
		goto out;
	}
	log_info("ca %s: deletion scheduled for %s", ca_id, at);
	result = ca_get(ctx, txn, ca_id, err);
out:
	json_decref(rec);
	return result;
}

int
ca_delete_cancel(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	json_t *rec = NULL;
	const char *before;
	int rc = -1;

	if ((rec = state_load(ctx, txn, ca_id, err)) == NULL)
		goto out;
	if (strcmp(state_of(rec), "pending_deletion") != 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s has no "
		    "deletion scheduled", ca_id);
		goto out;
	}
	before = json_string_value(json_object_get(rec,
	    "state_before_deletion"));
	if (before == NULL || (strcmp(before, "active") != 0 &&
	    strcmp(before, "disabled") != 0 && strcmp(before, "pending") != 0))
		before = "active";
	if (json_object_set_new(rec, "state", json_string(before)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	json_object_del(rec, "state_before_deletion");
	json_object_del(rec, "deletion");
	if (ca_record_store(ctx, txn, ca_id, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot store the CA");
		goto out;
	}
	log_info("ca %s: deletion cancelled (%s again)", ca_id,
	    state_of(rec));
	rc = 0;
out:
	json_decref(rec);
	return rc;
}

json_t *
ca_delete(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	json_t *rec;

	if ((rec = state_load(ctx, txn, ca_id, err)) == NULL)
		return NULL;
	if (ca_delete_check(ctx, txn, ca_id, common_now(), err) == -1) {
		json_decref(rec);
		return NULL;
	}
	if (ca_record_store(ctx, txn, ca_id, NULL) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot delete the "
		    "record of CA %s", ca_id);
		json_decref(rec);
		return NULL;
	}
	log_info("ca %s: deleted", ca_id);
	return rec;
}

/* Removes DATA/public/<dir>/<stem>.<ext> when it exists. */
static void
state_unlink(struct ca_ctx *ctx, const char *dir, const char *stem,
    const char *ext)
{
	char path[PATH_MAX];

	if (common_path(path, sizeof(path), "%s/public/%s/%s.%s",
	    ca_ctx_data_dir(ctx), dir, stem, ext) == -1)
		return;
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("ca: remove %s: %s", path, strerror(errno));
}

/* Removes the key keyref names from its backend unless one of the first
 * n references in seen named it already. */
static void
state_remove_key(struct ca_ctx *ctx, const char *ca_id, const json_t *keyref,
    const json_t **seen, size_t *n)
{
	const struct ca_keystore_type *ks;
	const char *handle, *backend;
	size_t i;

	handle = json_string_value(json_object_get(keyref, "handle"));
	backend = json_string_value(json_object_get(keyref, "backend"));
	if (handle == NULL || backend == NULL)
		return;
	for (i = 0; i < *n; i++)
		if (json_equal(json_object_get(seen[i], "handle"),
		    json_object_get(keyref, "handle")) &&
		    json_equal(json_object_get(seen[i], "backend"),
		    json_object_get(keyref, "backend")))
			return;
	if (*n < STATE_KEYS_MAX)
		seen[(*n)++] = keyref;
	if ((ks = ca_keystore_find(backend)) == NULL ||
	    ks->remove(ctx, handle) == -1)
		log_warn("ca %s: key %s (%s backend) not removed", ca_id,
		    handle, backend);
}

/*
 * After a deletion committed: every key of the CA (each version's, and
 * the record's own, which is the only one of a pending CA) leaves its
 * backend, and the public files go (a fetch of the CRL now answers 404).
 */
void
ca_purge(struct ca_ctx *ctx, const json_t *rec)
{
	const json_t *seen[STATE_KEYS_MAX], *v;
	char stem[CA_FILE_NAME_MAX];
	const char *id = json_string_value(json_object_get(rec, "id"));
	size_t i, n = 0;

	if (id == NULL)
		return;
	state_remove_key(ctx, id, json_object_get(rec, "key"), seen, &n);
	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		state_remove_key(ctx, id, json_object_get(v, "key"), seen, &n);
		if (common_path(stem, sizeof(stem), "%s-v%lld", id,
		    (long long)json_integer_value(json_object_get(v,
		    "version"))) == -1)
			continue;
		state_unlink(ctx, "ca", stem, "crt");
		state_unlink(ctx, "crl", stem, "crl");
	}
	state_unlink(ctx, "ca", id, "crt");
	state_unlink(ctx, "crl", id, "crl");
	ca_ctx_forget(ctx, id, NULL);
	log_info("ca %s: keys and public files removed", id);
}
