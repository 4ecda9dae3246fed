/*
 * lifecycle/resource.c — resources (where certificates are deployed) and
 * associations (which certificate goes to which resource). An association
 * pins both ends: neither the certificate nor the resource can be deleted
 * while it exists.
 */
#include <stdlib.h>
#include <string.h>

#include "connectors/connectors.h"
#include "lifecycle/lifecycle.h"

#define LC_CONFLICT_TAIL	", ..."	/* marks a cut list of associations */

static const struct lifecycle_field lc_resource_fields[] = {
	{ "name", LIFECYCLE_F_STRING },
	{ "type", LIFECYCLE_F_STRING },
	{ "config", LIFECYCLE_F_OBJECT },
	{ NULL, LIFECYCLE_F_STRING }
};

static const char *const lc_resource_types[] = {
	"nginx", "haproxy", "webhook", "other", NULL
};

static const struct lifecycle_field lc_assoc_fields[] = {
	{ "certificate_id", LIFECYCLE_F_STRING },
	{ "resource_id", LIFECYCLE_F_STRING },
	{ NULL, LIFECYCLE_F_STRING }
};

/* What a resource or association transaction works on. */
struct lc_link {
	struct lifecycle	*lc;
	const char		*who;
	const char		*id;
	json_t			*rec;		/* record to store (owned) */
};

/*
 * Builds the conflict message naming every association in assocs. The
 * list is cut with ", ..." when it would not fit the one-line message.
 */
int
lifecycle_assoc_conflict(struct lifecycle *lc, struct store_txn *txn,
    const char *owner, const json_t *assocs, bool of_cert,
    struct common_error *err)
{
	struct store *st = lifecycle_store(lc);
	struct common_buf b;
	size_t i, n = json_array_size(assocs);
	bool cut = false;
	char *msg;
	json_t *a;

	common_buf_init(&b, sizeof(err->msg) - sizeof(LC_CONFLICT_TAIL));
	if (common_buf_addf(&b, "%s has %zu association%s: ", owner, n,
	    n == 1 ? "" : "s") == -1)
		cut = true;
	json_array_foreach(assocs, i, a) {
		const char *aid = json_string_value(json_object_get(a, "id"));
		const char *other = json_string_value(json_object_get(a,
		    of_cert ? "resource_id" : "certificate_id"));
		json_t *orec = NULL;
		const char *oname = NULL;

		if (cut)
			break;
		if (other != NULL) {
			orec = of_cert ? store_resource_get(st, txn, other) :
			    store_cert_get(st, txn, other);
			oname = json_string_value(json_object_get(orec,
			    "name"));
		}
		if (common_buf_addf(&b, "%s%s (%s %s \"%s\")",
		    i > 0 ? ", " : "", aid != NULL ? aid : "?",
		    of_cert ? "resource" : "certificate",
		    other != NULL ? other : "?",
		    oname != NULL ? oname : "?") == -1)
			cut = true;
		json_decref(orec);
	}
	msg = common_buf_steal(&b, NULL);
	common_error_set(err, COMMON_E_CONFLICT, "%s%s",
	    msg != NULL ? msg : owner, cut ? LC_CONFLICT_TAIL : "");
	free(msg);
	return -1;
}

/* ---- resources ---- */

#define LC_SECRET_SHOWN	"(hidden)"	/* in place of a webhook secret */

/*
 * Hides the secret of a resource's config (the webhook connector's HMAC
 * key) in rec, a record about to be answered: the stored record keeps it
 * for the connector. 0, or -1 on allocation failure.
 */
static int
lc_resource_redact(json_t *rec)
{
	json_t *config = json_object_get(rec, "config"), *copy;

	if (!json_is_object(config) || json_object_get(config, "secret") ==
	    NULL)
		return 0;
	if ((copy = json_deep_copy(config)) == NULL ||
	    json_object_set_new(copy, "secret",
	    json_string(LC_SECRET_SHOWN)) == -1 ||
	    json_object_set_new(rec, "config", copy) == -1)
		return -1;
	return 0;
}

static int
lc_resource_create_txn(struct store_txn *txn, void *arg,
    struct common_error *err)
{
	struct lc_link *l = arg;

	if (store_resource_put(txn, l->id, l->rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "could not store resource %s", l->id);
		return -1;
	}
	return lifecycle_audit(txn, l->who, "resource.create", l->id,
	    "name \"%s\" type %s",
	    json_string_value(json_object_get(l->rec, "name")),
	    json_string_value(json_object_get(l->rec, "type")));
}

/*
 * Creates a resource from {"name", "type", "config"}; the config of a
 * type with a connector is checked by it (connector_validate). Returns
 * the stored record {"id", "name", "type", "config", "created_at"} (new
 * reference; a webhook secret shown as "(hidden)") or NULL with err.
 */
json_t *
lifecycle_resource_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err)
{
	char id[LIFECYCLE_ID_MAX], now[LIFECYCLE_TIME_MAX];
	struct lc_link l = { lc, who, id, NULL };
	const char *name, *type;
	const json_t *config;
	size_t i;

	if (lifecycle_req_check(req, "", lc_resource_fields, err) == -1)
		goto out;
	name = lifecycle_req_str(req, "name");
	if (lifecycle_name_check("name", name, err) == -1)
		goto out;
	if ((type = lifecycle_req_str(req, "type")) == NULL)
		type = "other";
	for (i = 0; lc_resource_types[i] != NULL; i++)
		if (strcmp(lc_resource_types[i], type) == 0)
			break;
	if (lc_resource_types[i] == NULL) {
		common_error_set(err, COMMON_E_INVALID, "field \"type\" must "
		    "be nginx, haproxy, webhook or other");
		goto out;
	}
	config = json_object_get(req, "config");
	/* the connector of the type (nginx, haproxy, webhook) checks it */
	if (connector_validate(type, json_is_object(config) ? config : NULL,
	    err) == -1)
		goto out;
	if (common_random_id("res-", id, sizeof(id)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "could not make a resource id");
		goto out;
	}
	common_time_rfc3339(common_now(), now, sizeof(now));
	l.rec = json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", id,
	    "name", name, "type", type, "config",
	    json_is_object(config) ? json_deep_copy(config) : json_object(),
	    "created_at", now);
	if (l.rec == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (lifecycle_txn_run(lc, lc_resource_create_txn, &l, err) == -1 ||
	    lc_resource_redact(l.rec) == -1) {
		/* keeps the transaction's error when it set one */
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		json_decref(l.rec);
		l.rec = NULL;
	}
out:
	return l.rec;
}

json_t *
lifecycle_resource_get(struct lifecycle *lc, const char *id,
    struct common_error *err)
{
	json_t *rec = NULL;

	if (id == NULL || !common_id_valid(id)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "resource id is not valid");
		goto out;
	}
	if ((rec = store_resource_get(lifecycle_store(lc), NULL, id)) ==
	    NULL)
		common_error_set(err, COMMON_E_NOTFOUND, "no resource %s", id);
	else if (lc_resource_redact(rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		json_decref(rec);
		rec = NULL;
	}
out:
	return rec;
}

/* One page of resources: {"resources": [...], "next_page_token"}. */
json_t *
lifecycle_resource_list(struct lifecycle *lc, const char *page_token,
    size_t limit, struct common_error *err)
{
	struct store_page page = { page_token, 0, NULL, NULL };
	char *next = NULL;
	json_t *items, *res = NULL, *r;
	size_t i;

	if (lifecycle_page_check(page_token, limit, &page.limit, err) == -1)
		goto out;
	if ((items = store_resource_list(lifecycle_store(lc), NULL, &page,
	    &next)) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "could not list resources");
		goto out;
	}
	json_array_foreach(items, i, r)
		if (lc_resource_redact(r) == -1) {
			common_error_set(err, COMMON_E_INTERNAL,
			    "out of memory");
			json_decref(items);
			goto out;
		}
	if ((res = lifecycle_page_result("resources", items, next)) == NULL)
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	free(next);
	return res;
}

static int
lc_resource_delete_txn(struct store_txn *txn, void *arg,
    struct common_error *err)
{
	struct lc_link *l = arg;
	struct store *st = store_txn_store(txn);
	json_t *rec = NULL, *assocs = NULL;
	char owner[LIFECYCLE_ID_MAX + LIFECYCLE_NAME_MAX + 16];
	int rc = -1;

	if ((rec = store_resource_get(st, txn, l->id)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "no resource %s",
		    l->id);
		goto out;
	}
	if ((assocs = store_assoc_by_resource(st, txn, l->id)) == NULL)
		goto out;
	if (json_array_size(assocs) > 0) {
		snprintf(owner, sizeof(owner), "resource %s \"%s\"", l->id,
		    json_string_value(json_object_get(rec, "name")));
		lifecycle_assoc_conflict(l->lc, txn, owner, assocs, false,
		    err);
		goto out;
	}
	if (store_resource_del(txn, l->id) == -1)
		goto out;
	rc = lifecycle_audit(txn, l->who, "resource.delete", l->id,
	    "name \"%s\"", json_string_value(json_object_get(rec, "name")));
out:
	json_decref(assocs);
	json_decref(rec);
	return rc;
}

int
lifecycle_resource_delete(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err)
{
	struct lc_link l = { lc, who, id, NULL };

	if (id == NULL || !common_id_valid(id)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "resource id is not valid");
		return -1;
	}
	return lifecycle_txn_run(lc, lc_resource_delete_txn, &l, err);
}

/* ---- associations ---- */

static int
lc_assoc_create_txn(struct store_txn *txn, void *arg,
    struct common_error *err)
{
	struct lc_link *l = arg;
	struct store *st = store_txn_store(txn);
	const char *cid = json_string_value(json_object_get(l->rec,
	    "certificate_id"));
	const char *rid = json_string_value(json_object_get(l->rec,
	    "resource_id"));
	json_t *cert = NULL, *res = NULL, *assocs = NULL, *a;
	size_t i;
	int rc = -1;

	if ((cert = store_cert_get(st, txn, cid)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate_id: no certificate %s", cid);
		goto out;
	}
	if ((res = store_resource_get(st, txn, rid)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "resource_id: no resource %s", rid);
		goto out;
	}
	if ((assocs = store_assoc_by_cert(st, txn, cid)) == NULL)
		goto out;
	json_array_foreach(assocs, i, a) {
		const char *other = json_string_value(json_object_get(a,
		    "resource_id"));

		if (other != NULL && strcmp(other, rid) == 0) {
			common_error_set(err, COMMON_E_CONFLICT,
			    "certificate %s is already associated with "
			    "resource %s (%s)", cid, rid,
			    json_string_value(json_object_get(a, "id")));
			goto out;
		}
	}
	if (store_assoc_put(txn, l->id, l->rec) == -1)
		goto out;
	rc = lifecycle_audit(txn, l->who, "association.create", l->id,
	    "certificate %s \"%s\" resource %s \"%s\"", cid,
	    json_string_value(json_object_get(cert, "name")), rid,
	    json_string_value(json_object_get(res, "name")));
out:
	json_decref(assocs);
	json_decref(res);
	json_decref(cert);
	return rc;
}

/*
 * Associates a certificate with a resource from {"certificate_id",
 * "resource_id"}. Returns {"id", "certificate_id", "resource_id",
 * "created_at"} (new reference) or NULL with err.
 */
json_t *
lifecycle_assoc_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err)
{
	char id[LIFECYCLE_ID_MAX], now[LIFECYCLE_TIME_MAX];
	struct lc_link l = { lc, who, id, NULL };
	const char *cid, *rid;

	if (lifecycle_req_check(req, "", lc_assoc_fields, err) == -1)
		goto out;
	cid = lifecycle_req_str(req, "certificate_id");
	rid = lifecycle_req_str(req, "resource_id");
	if (cid == NULL || rid == NULL) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"%s\" is required",
		    cid == NULL ? "certificate_id" : "resource_id");
		goto out;
	}
	if (!common_id_valid(cid)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate_id: not a certificate id");
		goto out;
	}
	if (!common_id_valid(rid)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "resource_id: not a resource id");
		goto out;
	}
	if (common_random_id("assoc-", id, sizeof(id)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "could not make an association id");
		goto out;
	}
	common_time_rfc3339(common_now(), now, sizeof(now));
	l.rec = json_pack("{s:s, s:s, s:s, s:s}", "id", id,
	    "certificate_id", cid, "resource_id", rid, "created_at", now);
	if (l.rec == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (lifecycle_txn_run(lc, lc_assoc_create_txn, &l, err) == -1) {
		json_decref(l.rec);
		l.rec = NULL;
	}
out:
	return l.rec;
}

static int
lc_assoc_cmp(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(
	    *(json_t *const *)a, "id"));
	const char *y = json_string_value(json_object_get(
	    *(json_t *const *)b, "id"));

	return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

/*
 * The associations of one certificate, paged like the full list: sorted
 * by id, those after page_token, at most limit. A certificate has few
 * associations, so they are read whole.
 */
static json_t *
lc_assoc_page_of_cert(struct lifecycle *lc, const char *cert_id,
    const char *after, size_t limit, char **next)
{
	json_t *all = NULL, *items = NULL, **v = NULL;
	size_t i, n;

	*next = NULL;
	if ((all = store_assoc_by_cert(lifecycle_store(lc), NULL,
	    cert_id)) == NULL)
		goto out;
	n = json_array_size(all);
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		v[i] = json_array_get(all, i);
	if (n > 0)
		qsort(v, n, sizeof(*v), lc_assoc_cmp);
	if ((items = json_array()) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		const char *id = json_string_value(json_object_get(v[i],
		    "id"));

		if (id == NULL || (after != NULL && strcmp(id, after) <= 0))
			continue;
		if (json_array_size(items) == limit) {
			const char *last = json_string_value(json_object_get(
			    json_array_get(items, limit - 1), "id"));

			if ((*next = strdup(last)) == NULL) {
				json_decref(items);
				items = NULL;
			}
			break;
		}
		if (json_array_append(items, v[i]) == -1) {
			json_decref(items);
			items = NULL;
			break;
		}
	}
out:
	free(v);
	json_decref(all);
	return items;
}

/*
 * One page of associations, of one certificate when cert_id is not NULL:
 * {"associations": [...], "next_page_token"}.
 */
json_t *
lifecycle_assoc_list(struct lifecycle *lc, const char *cert_id,
    const char *page_token, size_t limit, struct common_error *err)
{
	struct store_page page = { page_token, 0, NULL, NULL };
	char *next = NULL;
	json_t *items = NULL, *res = NULL;

	if (lifecycle_page_check(page_token, limit, &page.limit, err) == -1)
		goto out;
	if (page_token != NULL && *page_token == '\0')
		page_token = NULL;
	if (cert_id != NULL && !common_id_valid(cert_id))
		items = json_array();
	else if (cert_id != NULL)
		items = lc_assoc_page_of_cert(lc, cert_id, page_token,
		    page.limit, &next);
	else
		items = store_assoc_list(lifecycle_store(lc), NULL, &page,
		    &next);
	if (items == NULL) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "could not list associations");
		goto out;
	}
	if ((res = lifecycle_page_result("associations", items, next)) ==
	    NULL)
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	free(next);
	return res;
}

static int
lc_assoc_delete_txn(struct store_txn *txn, void *arg,
    struct common_error *err)
{
	struct lc_link *l = arg;
	json_t *rec;
	int rc = -1;

	if ((rec = store_assoc_get(store_txn_store(txn), txn, l->id)) ==
	    NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "no association %s",
		    l->id);
		goto out;
	}
	if (store_assoc_del(txn, l->id) == -1)
		goto out;
	rc = lifecycle_audit(txn, l->who, "association.delete", l->id,
	    "certificate %s resource %s",
	    json_string_value(json_object_get(rec, "certificate_id")),
	    json_string_value(json_object_get(rec, "resource_id")));
out:
	json_decref(rec);
	return rc;
}

int
lifecycle_assoc_delete(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err)
{
	struct lc_link l = { lc, who, id, NULL };

	if (id == NULL || !common_id_valid(id)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "association id is not valid");
		return -1;
	}
	return lifecycle_txn_run(lc, lc_assoc_delete_txn, &l, err);
}
