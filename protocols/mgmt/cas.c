/*
 * protocols/mgmt/cas.c — /api/v1/cas: list, create, show, bundle, CSR,
 * certificate import and CRL publication, over ca/; renewal, disabling
 * and deletion over lifecycle/ (which audits them).
 *
 * CA creation is validated here field by field (the request shape is the
 * API's, not ca/'s), then ca_create() runs in one store transaction; the
 * CA certificate files and a first CRL are published after the commit.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "protocols/mgmt/mgmt.h"

#define CAS_NAME_MAX		128	/* "name" */
#define CAS_SUBJECT_MAX		1024	/* "subject", RFC 4514 text */
#define CAS_BACKEND_MAX		32	/* "key_backend" */
#define CAS_PATH_LEN_MAX	32	/* "path_len" */
#define CAS_POLICY_ITEMS_MAX	256	/* entries of each policy list */
#define CAS_POLICY_ITEM_MAX	255	/* bytes of one policy entry */
#define CAS_ROOT_DAYS		3650.0	/* default validity of a root */
#define CAS_SUB_DAYS		1825.0	/* default validity otherwise */
#define CAS_URL_MAX		1024
#define CAS_TIME_MAX		32	/* RFC 3339 */
#define CAS_SERIAL_MAX		64	/* hex serial, 20 bytes max + NUL */
#define CAS_PEM_MAX		(64 * 1024)	/* one CA certificate PEM */
#define CAS_CTYPE_BUNDLE	"application/pem-certificate-chain"

static const char *const cas_create_fields[] = {
	"name", "type", "issuer_ca_id", "subject", "key_algorithm",
	"key_backend", "validity_days", "path_len", "policy", NULL
};
static const char *const cas_policy_fields[] = {
	"dns_suffixes", "ip_ranges", NULL
};
static const char *const cas_import_fields[] = {
	"certificate", "chain", NULL
};
static const char *const cas_no_fields[] = { NULL };
static const char *const cas_renew_fields[] = {
	"new_key", "validity_days", "reissue_leaves", NULL
};

/* True when s is 1..max printable ASCII characters. */
static bool
cas_text_ok(const char *s, size_t max)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
			return false;
	return n > 0 && n <= max;
}

/* Copies rec[key] (or null) into out[as]. */
static int
cas_copy(json_t *out, const char *as, const json_t *rec, const char *key)
{
	json_t *v = json_object_get(rec, key);

	return json_object_set(out, as, v != NULL ? v : json_null());
}

/* Sets out[key] to "BASE/dir/ID.ext", or null without a base URL. */
static int
cas_url(json_t *out, const char *key, const struct mgmt_call *c,
    const char *dir, const char *id, const char *ext)
{
	char url[CAS_URL_MAX];

	if (c->http_base_url[0] == '\0' || id == NULL ||
	    common_path(url, sizeof(url), "%s/%s/%s.%s", c->http_base_url,
	    dir, id, ext) == -1)
		return json_object_set_new(out, key, json_null());
	return json_object_set_new(out, key, json_string(url));
}

/* Sets out[key] to the RFC 3339 form of an ASN1_TIME (null if absent). */
static int
cas_time(json_t *out, const char *key, const ASN1_TIME *a)
{
	char buf[CAS_TIME_MAX];
	time_t t;

	if (a == NULL || common_asn1_time(a, &t) == -1)
		return json_object_set_new(out, key, json_null());
	common_time_rfc3339(t, buf, sizeof(buf));
	return json_object_set_new(out, key, json_string(buf));
}

/* Sets out[key] to the public URL BASE/dir/<stem of version n>.ext. */
static int
cas_stem_url(json_t *out, const char *key, const struct mgmt_call *c,
    const char *dir, const json_t *rec, unsigned n, const char *ext)
{
	char stem[CA_FILE_NAME_MAX];
	int rc;

	rc = strcmp(dir, "crl") == 0 ? ca_crl_stem(rec, n, stem, sizeof(stem)) :
	    ca_cert_stem(rec, n, stem, sizeof(stem));
	if (rc == -1)
		return json_object_set_new(out, key, json_null());
	return cas_url(out, key, c, dir, stem, ext);
}

/*
 * The summary of a CA's certificate versions, oldest first: number,
 * serial, validity, stage ("current", "previous" while valid, else
 * "expired"), the version whose key it uses ("key_version": versions
 * sharing a key share a CRL) and its public URLs. No PEM, no key
 * reference. New reference or NULL on allocation failure.
 */
static json_t *
cas_versions(const struct mgmt_call *c, const json_t *rec)
{
	char stem[CA_FILE_NAME_MAX];
	json_int_t cur = json_integer_value(json_object_get(rec,
	    "current_version"));
	const char *id = json_string_value(json_object_get(rec, "id"));
	const json_t *v;
	json_t *arr, *one;
	json_int_t n;
	const char *stage;
	X509 *x;
	time_t na;
	size_t i;
	int e = 0;

	if ((arr = json_array()) == NULL)
		return NULL;
	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		n = json_integer_value(json_object_get(v, "version"));
		stage = "previous";
		if (n == cur)
			stage = "current";
		else if ((x = ca_record_cert(v)) != NULL) {
			if (common_asn1_time(X509_get0_notAfter(x), &na) ==
			    0 && na <= common_now())
				stage = "expired";
			X509_free(x);
		}
		if ((one = json_object()) == NULL ||
		    json_array_append_new(arr, one) == -1) {
			json_decref(arr);
			return NULL;
		}
		e |= cas_copy(one, "version", v, "version");
		e |= json_object_set_new(one, "stage", json_string(stage));
		e |= cas_copy(one, "serial", v, "serial");
		e |= cas_copy(one, "not_before", v, "not_before");
		e |= cas_copy(one, "not_after", v, "not_after");
		e |= cas_copy(one, "key_algorithm", json_object_get(v, "key"),
		    "algorithm");
		e |= json_object_set_new(one, "key_version", json_integer(
		    ca_record_key_gen(rec, (unsigned)n)));
		e |= cas_stem_url(one, "crl_url", c, "crl", rec, (unsigned)n,
		    "crl");
		if (id != NULL && common_path(stem, sizeof(stem), "%s-v%lld",
		    id, (long long)n) == 0)
			e |= cas_url(one, "ca_cert_url", c, "ca", stem, "crt");
		e |= cas_copy(one, "created_at", v, "created_at");
	}
	if (e != 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/*
 * Builds the API's CA object from a CA record: key algorithm and backend
 * lifted out of "key" (the key handle stays inside), serial and validity
 * from the certificate when the record lacks them, public URLs derived
 * from the HTTP base URL (the CRL of the current key), the versions
 * summary, the deletion schedule when there is one, the CSR only while
 * pending. New reference or NULL on allocation failure.
 */
static json_t *
cas_object(const struct mgmt_call *c, const json_t *rec)
{
	static const char *const same[] = {
		"id", "name", "type", "parent_id", "state", "subject",
		"path_len", "crl_number", "policy", "certificate",
		"created_at", NULL
	};
	const json_t *key = json_object_get(rec, "key");
	const char *id = json_string_value(json_object_get(rec, "id"));
	const char *state = json_string_value(json_object_get(rec, "state"));
	const char *pem;
	char serial[CAS_SERIAL_MAX];
	json_t *out = NULL, *ret = NULL;
	X509 *x = NULL;
	size_t i;
	int e = 0;

	if ((out = json_object()) == NULL)
		goto out;
	for (i = 0; same[i] != NULL; i++)
		e |= cas_copy(out, same[i], rec, same[i]);
	e |= cas_copy(out, "key_algorithm", key, "algorithm");
	e |= cas_copy(out, "key_backend", key, "backend");
	e |= cas_copy(out, "not_before", rec, "not_before");
	e |= cas_copy(out, "not_after", rec, "not_after");
	e |= json_object_set_new(out, "serial", json_null());
	pem = json_string_value(json_object_get(rec, "certificate"));
	if (pem != NULL &&
	    (x = common_x509_from_pem(pem, strlen(pem))) != NULL) {
		if (common_x509_serial_hex(x, serial, sizeof(serial)) == 0)
			e |= json_object_set_new(out, "serial",
			    json_string(serial));
		if (json_is_null(json_object_get(out, "not_before")))
			e |= cas_time(out, "not_before", X509_get0_notBefore(x));
		if (json_is_null(json_object_get(out, "not_after")))
			e |= cas_time(out, "not_after", X509_get0_notAfter(x));
	}
	e |= cas_stem_url(out, "crl_url", c, "crl", rec, 0, "crl");
	e |= cas_url(out, "ca_cert_url", c, "ca", id, "crt");
	e |= cas_copy(out, "current_version", rec, "current_version");
	e |= json_object_set_new(out, "versions", cas_versions(c, rec));
	if (json_is_object(json_object_get(rec, "deletion"))) {
		e |= json_object_set_new(out, "deletion", json_pack(
		    "{s:O?, s:O?}", "scheduled_at", json_object_get(
		    json_object_get(rec, "deletion"), "scheduled_at"),
		    "execute_at", json_object_get(json_object_get(rec,
		    "deletion"), "execute_at")));
	}
	if (state != NULL && strcmp(state, "pending") == 0)
		e |= cas_copy(out, "csr", rec, "csr");
	if (e != 0)
		goto out;
	ret = out;	/* steal */
	out = NULL;
out:
	X509_free(x);
	json_decref(out);
	return ret;
}

/* Answers 200 with the CA object of ca_id, read afresh. */
static void
cas_reply_ca(struct mgmt_call *c, int status, const char *ca_id)
{
	struct common_error err = { 0 };
	json_t *rec;

	if ((rec = ca_get(c->ca, NULL, ca_id, &err)) == NULL) {
		if (err.code == COMMON_E_NONE)
			common_error_set(&err, COMMON_E_NOTFOUND,
			    "no CA %s", ca_id);
		mgmt_reply_cerr(c, &err);
		return;
	}
	mgmt_reply_json(c, status, cas_object(c, rec));
	json_decref(rec);
}

/* Sorts CA records by id (page tokens are ids). */
static int
cas_cmp_id(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(
	    *(json_t *const *)a, "id"));
	const char *y = json_string_value(json_object_get(
	    *(json_t *const *)b, "id"));

	return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

/* GET /cas: every CA, paged by id. */
void
mgmt_cas_list(struct mgmt_call *c)
{
	json_t *all = NULL, **recs = NULL, *arr = NULL, *res;
	const char *token, *id = NULL;
	size_t limit, n, i, taken = 0;
	bool more = false;

	if (mgmt_query_page(c, &limit, &token) == -1)
		goto out;
	if ((all = ca_list(c->ca, NULL)) == NULL || !json_is_array(all)) {
		mgmt_reply_error(c, 500, "internal", "cannot list CAs");
		goto out;
	}
	n = json_array_size(all);
	if (n > 0 && (recs = calloc(n, sizeof(*recs))) == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		recs[i] = json_array_get(all, i);
	if (n > 1)
		qsort(recs, n, sizeof(*recs), cas_cmp_id);
	if ((arr = json_array()) == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *rid = json_string_value(json_object_get(recs[i],
		    "id"));

		if (rid == NULL ||
		    (token != NULL && strcmp(rid, token) <= 0))
			continue;
		if (taken == limit) {
			more = true;
			break;
		}
		if (json_array_append_new(arr, cas_object(c, recs[i])) == -1) {
			mgmt_reply_error(c, 500, "internal", "out of memory");
			goto out;
		}
		taken++;
		id = rid;
	}
	res = json_pack("{s:o, s:o}", "cas", arr, "next_page_token",
	    more && id != NULL ? json_string(id) : json_null());
	arr = NULL;	/* stolen by json_pack */
	mgmt_reply_json(c, 200, res);
out:
	json_decref(arr);
	free(recs);
	json_decref(all);
}

/* ---- creation ---- */

/* Reads an optional string field; -1 after answering 400. */
static int
cas_field_str(struct mgmt_call *c, const json_t *body, const char *name,
    size_t max, const char **out)
{
	const json_t *v = json_object_get(body, name);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || !cas_text_ok(json_string_value(v), max)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"%s\" must be a string of 1..%zu printable "
		    "characters", name, max);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* Checks "policy": {"dns_suffixes": [str], "ip_ranges": [str]}. */
static int
cas_policy_check(struct mgmt_call *c, const json_t *policy)
{
	const char *lists[] = { "dns_suffixes", "ip_ranges" };
	const json_t *arr, *v;
	size_t i, j;

	if (!json_is_object(policy)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"policy\" must be an object");
		return -1;
	}
	if (mgmt_body_known(c, policy, cas_policy_fields, "policy.") == -1)
		return -1;
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		if ((arr = json_object_get(policy, lists[i])) == NULL)
			continue;
		if (!json_is_array(arr) ||
		    json_array_size(arr) > CAS_POLICY_ITEMS_MAX) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "field \"policy.%s\" must be an array of at most "
			    "%d strings", lists[i], CAS_POLICY_ITEMS_MAX);
			return -1;
		}
		json_array_foreach(arr, j, v) {
			if (!json_is_string(v) || !cas_text_ok(
			    json_string_value(v), CAS_POLICY_ITEM_MAX)) {
				mgmt_reply_error(c, 400, "invalid_request",
				    "field \"policy.%s[%zu]\" must be a string "
				    "of 1..%d printable characters", lists[i],
				    j, CAS_POLICY_ITEM_MAX);
				return -1;
			}
		}
	}
	return 0;
}

/*
 * Fills req from a POST /cas body, applying the documented defaults.
 * Strings in req point into body. 0, or -1 after answering 400.
 */
static int
cas_create_parse(struct mgmt_call *c, const json_t *body,
    struct ca_create_req *req)
{
	const char *alg = NULL;
	const json_t *v;
	bool sub;

	memset(req, 0, sizeof(*req));
	if (mgmt_body_known(c, body, cas_create_fields, "") == -1)
		return -1;
	if (cas_field_str(c, body, "name", CAS_NAME_MAX, &req->name) == -1 ||
	    cas_field_str(c, body, "type", CAS_NAME_MAX, &req->type) == -1 ||
	    cas_field_str(c, body, "issuer_ca_id", CAS_NAME_MAX,
	    &req->issuer_ca_id) == -1 ||
	    cas_field_str(c, body, "subject", CAS_SUBJECT_MAX,
	    &req->subject) == -1 ||
	    cas_field_str(c, body, "key_algorithm", CAS_NAME_MAX, &alg) == -1 ||
	    cas_field_str(c, body, "key_backend", CAS_BACKEND_MAX,
	    &req->key_backend) == -1)
		return -1;
	if (req->name == NULL) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"name\" is required");
		return -1;
	}
	if (req->type == NULL || (strcmp(req->type, "root") != 0 &&
	    strcmp(req->type, "subordinate") != 0 &&
	    strcmp(req->type, "subordinate-of-external") != 0)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"type\" must be \"root\", \"subordinate\" or "
		    "\"subordinate-of-external\"");
		return -1;
	}
	sub = strcmp(req->type, "subordinate") == 0;
	if (sub && req->issuer_ca_id == NULL) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"issuer_ca_id\" is required for a subordinate CA");
		return -1;
	}
	if (!sub && req->issuer_ca_id != NULL) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"issuer_ca_id\" is only for type \"subordinate\"");
		return -1;
	}
	if (req->issuer_ca_id != NULL && !common_id_valid(req->issuer_ca_id)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"issuer_ca_id\" is not a valid CA id");
		return -1;
	}
	if (req->subject == NULL) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"subject\" is required");
		return -1;
	}
	if (alg == NULL) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"key_algorithm\" is required");
		return -1;
	}
	if (ca_key_alg_parse(alg, &req->key_alg) == -1 ||
	    !ca_key_alg_ca_allowed(req->key_alg)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"key_algorithm\" must be ECDSA_P256, ECDSA_P384, "
		    "RSA2048, RSA3072 or RSA4096");
		return -1;
	}
	if (req->key_backend == NULL)
		req->key_backend = "file";
	req->validity_days = strcmp(req->type, "root") == 0 ?
	    CAS_ROOT_DAYS : CAS_SUB_DAYS;
	if ((v = json_object_get(body, "validity_days")) != NULL) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
		    json_number_value(v) <= 0 ||
		    json_number_value(v) > CA_MAX_VALIDITY_DAYS) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "field \"validity_days\" must be a number > 0 and "
			    "<= %g", CA_MAX_VALIDITY_DAYS);
			return -1;
		}
		req->validity_days = json_number_value(v);
	}
	req->path_len = -1;
	if ((v = json_object_get(body, "path_len")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < -1 ||
		    json_integer_value(v) > CAS_PATH_LEN_MAX) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "field \"path_len\" must be an integer -1..%d",
			    CAS_PATH_LEN_MAX);
			return -1;
		}
		req->path_len = (int)json_integer_value(v);
	}
	if ((v = json_object_get(body, "policy")) != NULL && !json_is_null(v)) {
		if (cas_policy_check(c, v) == -1)
			return -1;
		req->policy = v;
	}
	return 0;
}

struct cas_create_txn {
	struct ca_ctx			*ca;
	const struct ca_create_req	*req;
	json_t				*rec;	/* the new CA record */
	struct common_error		 err;
};

/* Runs in the store transaction; may run again after a deadlock. */
static int
cas_create_fn(struct store_txn *txn, void *arg)
{
	struct cas_create_txn *t = arg;

	json_decref(t->rec);
	common_error_clear(&t->err);
	t->rec = ca_create(t->ca, txn, t->req, &t->err);
	return t->rec != NULL ? 0 : -1;
}

/*
 * After a CA became active: rewrites the public CA certificate files and
 * publishes the CA's first CRL, so its CDP URL answers at once. Failures
 * are logged; the CA itself is committed either way.
 */
static void
cas_publish_new(struct mgmt_call *c, const char *ca_id)
{
	struct common_error err = { 0 };

	if (ca_publish_certs(c->ca) == -1)
		log_warn("mgmt: CA %s: publishing CA certificate files failed",
		    ca_id);
	if (ca_crl_publish(c->ca, ca_id, c->crl_next_update_seconds, NULL,
	    NULL, &err) == -1)
		log_warn("mgmt: CA %s: first CRL not published: %s", ca_id,
		    err.msg);
}

/* POST /cas (admin). */
void
mgmt_cas_create(struct mgmt_call *c)
{
	struct cas_create_txn t;
	struct ca_create_req req;
	json_t *body = NULL;
	const char *id, *state;
	int rc;

	memset(&t, 0, sizeof(t));
	if (mgmt_body_object(c, false, &body) == -1)
		goto out;
	if (cas_create_parse(c, body, &req) == -1)
		goto out;
	t.ca = c->ca;
	t.req = &req;
	rc = store_txn_run(ca_ctx_store(c->ca), cas_create_fn, &t);
	if (rc != 0 || t.rec == NULL) {
		if (t.err.code == COMMON_E_NONE)
			common_error_set(&t.err, COMMON_E_INTERNAL,
			    "store transaction failed creating CA \"%s\"",
			    req.name);
		mgmt_reply_cerr(c, &t.err);
		goto out;
	}
	id = json_string_value(json_object_get(t.rec, "id"));
	state = json_string_value(json_object_get(t.rec, "state"));
	if (id == NULL) {
		mgmt_reply_error(c, 500, "internal", "new CA record has no id");
		goto out;
	}
	log_info("mgmt: %s created CA %s (%s, %s)", c->actor, id, req.type,
	    req.name);
	if (state != NULL && strcmp(state, "active") == 0)
		cas_publish_new(c, id);
	cas_reply_ca(c, 201, id);
out:
	json_decref(t.rec);
	json_decref(body);
}

/* GET /cas/{id}. */
void
mgmt_cas_get(struct mgmt_call *c)
{
	cas_reply_ca(c, 200, c->id);
}

/* GET /cas/{id}/bundle: PEM, the CA then its parents. */
void
mgmt_cas_bundle(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	char *pem;

	if ((pem = ca_bundle_pem(c->ca, NULL, c->id, &err)) == NULL) {
		if (err.code == COMMON_E_NONE)
			common_error_set(&err, COMMON_E_INTERNAL,
			    "cannot build the bundle of CA %s", c->id);
		mgmt_reply_cerr(c, &err);
		return;
	}
	server_reply(c->req, 200, CAS_CTYPE_BUNDLE, pem, strlen(pem));
	free(pem);
}

/* GET /cas/{id}/csr: the CSR of a pending subordinate-of-external CA. */
void
mgmt_cas_csr(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	const char *state, *csr;
	json_t *rec;

	if ((rec = ca_get(c->ca, NULL, c->id, &err)) == NULL) {
		if (err.code == COMMON_E_NONE)
			common_error_set(&err, COMMON_E_NOTFOUND,
			    "no CA %s", c->id);
		mgmt_reply_cerr(c, &err);
		return;
	}
	state = json_string_value(json_object_get(rec, "state"));
	csr = json_string_value(json_object_get(rec, "csr"));
	if (state == NULL || strcmp(state, "pending") != 0 || csr == NULL)
		mgmt_reply_error(c, 409, "conflict",
		    "CA %s is not pending: it has no CSR", c->id);
	else
		mgmt_reply_json(c, 200, json_pack("{s:s}", "csr", csr));
	json_decref(rec);
}

struct cas_import_txn {
	struct ca_ctx		*ca;
	const char		*ca_id;
	const char		*cert;
	const char		*chain;
	struct common_error	 err;
};

static int
cas_import_fn(struct store_txn *txn, void *arg)
{
	struct cas_import_txn *t = arg;

	common_error_clear(&t->err);
	return ca_import_cert(t->ca, txn, t->ca_id, t->cert, t->chain,
	    &t->err);
}

/* POST /cas/{id}/certificate (admin): activates a pending CA. */
void
mgmt_cas_import(struct mgmt_call *c)
{
	struct cas_import_txn t;
	const json_t *v;
	json_t *body = NULL;

	memset(&t, 0, sizeof(t));
	if (mgmt_body_object(c, false, &body) == -1)
		goto out;
	if (mgmt_body_known(c, body, cas_import_fields, "") == -1)
		goto out;
	v = json_object_get(body, "certificate");
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > CAS_PEM_MAX) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"certificate\" (PEM) is required");
		goto out;
	}
	t.cert = json_string_value(v);
	v = json_object_get(body, "chain");
	if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"chain\" must be a PEM string");
		goto out;
	}
	t.chain = json_string_value(v);
	t.ca = c->ca;
	t.ca_id = c->id;
	if (store_txn_run(ca_ctx_store(c->ca), cas_import_fn, &t) != 0) {
		if (t.err.code == COMMON_E_NONE)
			common_error_set(&t.err, COMMON_E_INTERNAL,
			    "store transaction failed importing the "
			    "certificate of CA %s", c->id);
		mgmt_reply_cerr(c, &t.err);
		goto out;
	}
	log_info("mgmt: %s activated CA %s with an external certificate",
	    c->actor, c->id);
	cas_publish_new(c, c->id);
	cas_reply_ca(c, 200, c->id);
out:
	json_decref(body);
}

/*
 * Describes a CRL from its DER: number, thisUpdate, nextUpdate. Returns
 * a new object, or NULL when the DER does not parse exactly.
 */
static json_t *
cas_crl_describe(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	ASN1_INTEGER *num = NULL;
	X509_CRL *crl = NULL;
	json_t *out = NULL, *ret = NULL;
	int64_t n;
	int e = 0;

	if (len > LONG_MAX || (crl = d2i_X509_CRL(NULL, &p, (long)len)) ==
	    NULL || p != der + len)
		goto out;
	if ((out = json_object()) == NULL)
		goto out;
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	if (num != NULL && ASN1_INTEGER_get_int64(&n, num) == 1)
		e |= json_object_set_new(out, "crl_number",
		    json_integer((json_int_t)n));
	else
		e |= json_object_set_new(out, "crl_number", json_null());
	e |= cas_time(out, "this_update", X509_CRL_get0_lastUpdate(crl));
	e |= cas_time(out, "next_update", X509_CRL_get0_nextUpdate(crl));
	if (e != 0)
		goto out;
	ret = out;	/* steal */
	out = NULL;
out:
	ASN1_INTEGER_free(num);
	X509_CRL_free(crl);
	json_decref(out);
	return ret;
}

/* POST /cas/{id}/crl (operator): publishes a fresh CRL now. */
void
mgmt_cas_crl(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	unsigned char *der = NULL;
	size_t derlen = 0;
	json_t *body = NULL, *res = NULL, *rec = NULL;

	if (mgmt_body_object(c, true, &body) == -1)
		goto out;
	if (mgmt_body_known(c, body, cas_no_fields, "") == -1)
		goto out;
	if (ca_crl_publish(c->ca, c->id, c->crl_next_update_seconds, &der,
	    &derlen, &err) == -1) {
		if (err.code == COMMON_E_NONE)
			common_error_set(&err, COMMON_E_INTERNAL,
			    "CRL publication for CA %s failed", c->id);
		mgmt_reply_cerr(c, &err);
		goto out;
	}
	if ((res = cas_crl_describe(der, derlen)) == NULL) {
		mgmt_reply_error(c, 500, "internal",
		    "CA %s published a CRL that does not parse", c->id);
		goto out;
	}
	if ((rec = ca_get(c->ca, NULL, c->id, &err)) == NULL) {
		mgmt_reply_cerr(c, &err);
		goto out;
	}
	if (json_object_set_new(res, "ca_id", json_string(c->id)) == -1 ||
	    cas_stem_url(res, "url", c, "crl", rec, 0, "crl") == -1) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		goto out;
	}
	log_info("mgmt: %s published a CRL for CA %s", c->actor, c->id);
	mgmt_reply_json(c, 200, res);
	res = NULL;	/* stolen */
out:
	json_decref(res);
	json_decref(rec);
	free(der);
	json_decref(body);
}

/* ---- CA lifecycle: renewal, disable/enable, deletion ---- */

/* Reads an optional boolean field (absent: false); -1 after 400. */
static int
cas_field_bool(struct mgmt_call *c, const json_t *body, const char *name,
    bool *out)
{
	const json_t *v = json_object_get(body, name);

	*out = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"%s\" must be true or false", name);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/*
 * POST /cas/{id}/renew (admin) {"new_key", "validity_days",
 * "reissue_leaves"}: a new CA certificate version; with reissue_leaves,
 * every managed leaf of the CA is then renewed under it (one transaction
 * each, in this request: the answer says how many) and the answer gains
 * "reissue": {"renewed", "failed", "skipped"}. 200 with the CA.
 */
void
mgmt_cas_renew(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	struct lifecycle_ca_reissue_result res;
	json_t *body = NULL, *rec = NULL, *out = NULL, *re = NULL;
	const json_t *v;
	bool new_key, reissue;
	double days = 0;

	if (mgmt_body_object(c, true, &body) == -1)
		goto out;
	if (mgmt_body_known(c, body, cas_renew_fields, "") == -1 ||
	    cas_field_bool(c, body, "new_key", &new_key) == -1 ||
	    cas_field_bool(c, body, "reissue_leaves", &reissue) == -1)
		goto out;
	if ((v = json_object_get(body, "validity_days")) != NULL &&
	    !json_is_null(v)) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
		    json_number_value(v) <= 0 ||
		    json_number_value(v) > CA_MAX_VALIDITY_DAYS) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "field \"validity_days\" must be a number > 0 and "
			    "<= %g", CA_MAX_VALIDITY_DAYS);
			goto out;
		}
		days = json_number_value(v);
	}
	if ((rec = lifecycle_ca_renew(c->lc, c->id, new_key, days, c->actor,
	    &err)) == NULL) {
		mgmt_reply_cerr(c, &err);
		goto out;
	}
	if ((out = cas_object(c, rec)) == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		goto out;
	}
	if (reissue) {
		common_error_clear(&err);
		/* The CA is renewed whatever happens to its leaves: the
		 * answer stays 200 and says what the re-issue did. */
		if (lifecycle_ca_reissue_run(c->lc, c->id, c->actor, &res,
		    &err) == -1)
			log_err("mgmt: CA %s renewed, its leaves not "
			    "re-issued: %s", c->id, err.msg);
		if ((re = json_pack("{s:I, s:I, s:I}", "renewed",
		    (json_int_t)res.renewed, "failed", (json_int_t)res.failed,
		    "skipped", (json_int_t)res.skipped)) == NULL ||
		    (err.code != COMMON_E_NONE && json_object_set_new(re,
		    "error", json_string(err.msg)) == -1) ||
		    json_object_set(out, "reissue", re) == -1) {
			mgmt_reply_error(c, 500, "internal", "out of memory");
			goto out;
		}
	}
	mgmt_reply_json(c, 200, out);
	out = NULL;	/* stolen */
out:
	json_decref(re);
	json_decref(out);
	json_decref(rec);
	json_decref(body);
}

/* POST /cas/{id}/disable and /enable (admin): 200 with the CA. */
static void
cas_set_state(struct mgmt_call *c, const char *state)
{
	struct common_error err = { 0 };
	json_t *body = NULL;

	if (mgmt_body_object(c, true, &body) == -1)
		goto out;
	if (mgmt_body_known(c, body, cas_no_fields, "") == -1)
		goto out;
	if (lifecycle_ca_set_state(c->lc, c->id, state, c->actor, &err) ==
	    -1) {
		mgmt_reply_cerr(c, &err);
		goto out;
	}
	cas_reply_ca(c, 200, c->id);
out:
	json_decref(body);
}

void
mgmt_cas_disable(struct mgmt_call *c)
{
	cas_set_state(c, "disabled");
}

void
mgmt_cas_enable(struct mgmt_call *c)
{
	cas_set_state(c, "active");
}

/*
 * DELETE /cas/{id}[?now=true] (admin): 409 with the counts while the CA
 * has active certificates or subordinates; else 202 with the CA and its
 * "deletion" schedule, or, with now=true, 204 (record, keys and public
 * files gone).
 */
void
mgmt_cas_delete(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	const char *s;
	json_t *rec = NULL;
	bool now = false;

	if ((s = mgmt_query(c, "now")) != NULL) {
		if (strcmp(s, "true") == 0)
			now = true;
		else if (strcmp(s, "false") != 0) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "now must be true or false");
			return;
		}
	}
	if (lifecycle_ca_delete(c->lc, c->id, now, c->actor, &rec, &err) ==
	    -1) {
		mgmt_reply_cerr(c, &err);
		return;
	}
	if (now) {
		server_reply(c->req, 204, NULL, NULL, 0);
		return;
	}
	mgmt_reply_json(c, 202, cas_object(c, rec));
	json_decref(rec);
}

/* POST /cas/{id}/cancel-deletion (admin): 200 with the CA. */
void
mgmt_cas_cancel_deletion(struct mgmt_call *c)
{
	struct common_error err = { 0 };
	json_t *body = NULL, *rec = NULL;

	if (mgmt_body_object(c, true, &body) == -1)
		goto out;
	if (mgmt_body_known(c, body, cas_no_fields, "") == -1)
		goto out;
	if ((rec = lifecycle_ca_cancel_deletion(c->lc, c->id, c->actor,
	    &err)) == NULL) {
		mgmt_reply_cerr(c, &err);
		goto out;
	}
	mgmt_reply_json(c, 200, cas_object(c, rec));
out:
	json_decref(rec);
	json_decref(body);
}
