/*
 * ca/version.c — the certificate versions of a CA record: the migration
 * of records written before versions existed, version lookups, key
 * generations (the versions that share one key share one CRL) and the
 * names of the public files each version and key publishes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"

#define VERSION_TIME_MAX	32	/* RFC 3339 */
#define VERSION_SERIAL_MAX	64	/* hex serial and the NUL */

/* A version number field (1..UINT32_MAX), or 0. */
static unsigned
version_num(const json_t *obj, const char *field)
{
	json_int_t v = json_integer_value(json_object_get(obj, field));

	return v > 0 && v <= (json_int_t)UINT32_MAX ? (unsigned)v : 0;
}

/* True when the key references a and b name the same key. */
static bool
version_same_key(const json_t *a, const json_t *b)
{
	const char *ba = json_string_value(json_object_get(a, "backend"));
	const char *bb = json_string_value(json_object_get(b, "backend"));
	const char *ha = json_string_value(json_object_get(a, "handle"));
	const char *hb = json_string_value(json_object_get(b, "handle"));

	return ba != NULL && bb != NULL && ha != NULL && hb != NULL &&
	    strcmp(ba, bb) == 0 && strcmp(ha, hb) == 0;
}

/*
 * Version 1 of a record written before versions existed, from its
 * top-level fields (the serial read from the certificate when the record
 * lacks it). A record with an unreadable certificate or no key reference
 * still reads (using it fails later, logged, as it did before versions).
 * NULL on allocation failure.
 */
static json_t *
version_from_top(const json_t *rec)
{
	char serial[VERSION_SERIAL_MAX] = "";
	const char *s = json_string_value(json_object_get(rec, "serial"));
	json_t *key;
	X509 *x;

	if (s == NULL && (x = ca_record_cert(rec)) != NULL) {
		if (common_x509_serial_hex(x, serial, sizeof(serial)) == -1)
			serial[0] = '\0';
		X509_free(x);
	}
	if (s == NULL && serial[0] != '\0')
		s = serial;
	key = json_is_object(json_object_get(rec, "key")) ?
	    json_deep_copy(json_object_get(rec, "key")) : json_object();
	if (key == NULL)
		return NULL;
	return json_pack("{s:i, s:s?, s:O?, s:O?, s:O, s:o, s:O?}",
	    "version", 1, "serial", s,
	    "not_before", json_object_get(rec, "not_before"),
	    "not_after", json_object_get(rec, "not_after"),
	    "certificate", json_object_get(rec, "certificate"),
	    "key", key,
	    "created_at", json_object_get(rec, "created_at"));
}

/*
 * Gives a record without "versions" its version list: version 1 made of
 * its top-level fields, or none while it has no certificate (pending).
 * Records that have versions are left alone.
 */
int
ca_record_migrate(json_t *rec)
{
	json_t *versions = NULL, *v = NULL;
	int rc = -1;

	if (!json_is_object(rec))
		return -1;
	if (json_is_array(json_object_get(rec, "versions")))
		return 0;
	if ((versions = json_array()) == NULL)
		goto out;
	if (json_is_string(json_object_get(rec, "certificate"))) {
		if ((v = version_from_top(rec)) == NULL ||
		    json_array_append(versions, v) == -1)
			goto out;
	}
	if (json_object_set(rec, "versions", versions) == -1 ||
	    json_object_set_new(rec, "current_version",
	    json_integer(v != NULL ? 1 : 0)) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		log_err("ca %s: versions of its record: out of memory",
		    json_string_value(json_object_get(rec, "id")));
	json_decref(v);
	json_decref(versions);
	return rc;
}

/* Reads the record (see ca.h); the read also tells the record caches
 * that writers of ca_id before it have ended, when txn is not one. */
json_t *
ca_record_load(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id)
{
	json_t *rec;
	uint64_t gen;

	if (ca_id == NULL || !common_id_valid(ca_id))
		return NULL;
	gen = ca_ctx_ca_gen(ctx);
	if ((rec = store_ca_get(ca_ctx_store(ctx), txn, ca_id)) == NULL)
		return NULL;
	ca_ctx_ca_settle(ctx, txn, ca_id, gen);
	if (ca_record_migrate(rec) == -1) {
		json_decref(rec);
		return NULL;
	}
	return rec;
}

const json_t *
ca_record_version(const json_t *rec, unsigned n)
{
	const json_t *v;
	size_t i;

	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		if (version_num(v, "version") == n)
			return v;
	}
	return NULL;
}

/* n, or the current version when n is 0. */
static unsigned
version_pick(const json_t *rec, unsigned n)
{
	return n != 0 ? n : version_num(rec, "current_version");
}

unsigned
ca_record_key_gen(const json_t *rec, unsigned n)
{
	const json_t *want, *v;
	unsigned first = 0, num;
	size_t i;

	if ((want = ca_record_version(rec, n)) == NULL)
		return 0;
	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		num = version_num(v, "version");
		if (num != 0 && (first == 0 || num < first) &&
		    version_same_key(json_object_get(v, "key"),
		    json_object_get(want, "key")))
			first = num;
	}
	return first != 0 ? first : n;
}

int
ca_crl_stem(const json_t *rec, unsigned n, char *out, size_t outlen)
{
	const char *id = json_string_value(json_object_get(rec, "id"));
	unsigned gen;

	if (id == NULL)
		return -1;
	gen = ca_record_key_gen(rec, version_pick(rec, n));
	if (gen <= 1)
		return common_path(out, outlen, "%s", id);
	return common_path(out, outlen, "%s-v%u", id, gen);
}

int
ca_cert_stem(const json_t *rec, unsigned n, char *out, size_t outlen)
{
	const char *id = json_string_value(json_object_get(rec, "id"));

	if (id == NULL)
		return -1;
	n = version_pick(rec, n);
	if (n <= 1)
		return common_path(out, outlen, "%s", id);
	return common_path(out, outlen, "%s-v%u", id, n);
}

X509 *
ca_record_version_cert(const json_t *rec, unsigned n)
{
	const json_t *v = ca_record_version(rec, version_pick(rec, n));

	return ca_record_cert(v);
}

/* The entry of version n: x's serial, validity and PEM, and keyref. */
json_t *
ca_version_entry(X509 *x, unsigned n, const json_t *keyref)
{
	char nb[VERSION_TIME_MAX], na[VERSION_TIME_MAX], now[VERSION_TIME_MAX];
	char serial[VERSION_SERIAL_MAX];
	char *pem = NULL;
	json_t *key = NULL, *v = NULL;
	time_t t;

	if (common_asn1_time(X509_get0_notBefore(x), &t) == -1)
		goto out;
	common_time_rfc3339(t, nb, sizeof(nb));
	if (common_asn1_time(X509_get0_notAfter(x), &t) == -1)
		goto out;
	common_time_rfc3339(t, na, sizeof(na));
	common_time_rfc3339(common_now(), now, sizeof(now));
	if (common_x509_serial_hex(x, serial, sizeof(serial)) == -1 ||
	    (pem = common_x509_to_pem(x)) == NULL ||
	    (key = json_deep_copy(keyref)) == NULL)
		goto out;
	v = json_pack("{s:I, s:s, s:s, s:s, s:s, s:O, s:s}",
	    "version", (json_int_t)n, "serial", serial, "not_before", nb,
	    "not_after", na, "certificate", pem, "key", key,
	    "created_at", now);
out:
	json_decref(key);
	free(pem);
	return v;
}

/*
 * Appends v to rec's versions and makes it current; the top-level
 * fields that mirror the current version follow it.
 */
int
ca_record_add_version(json_t *rec, const json_t *v)
{
	static const char *const mirror[] = {
		"certificate", "serial", "not_before", "not_after", NULL
	};
	json_t *versions = json_object_get(rec, "versions");
	json_t *key = NULL;
	size_t i;
	int rc = -1;

	if (!json_is_array(versions) ||
	    json_array_size(versions) >= CA_VERSIONS_MAX) {
		log_err("ca %s: no room for another certificate version "
		    "(%d at most)", json_string_value(json_object_get(rec,
		    "id")), CA_VERSIONS_MAX);
		goto out;
	}
	if ((key = json_deep_copy(json_object_get(v, "key"))) == NULL ||
	    json_array_append(versions, (json_t *)v) == -1)
		goto out;
	for (i = 0; mirror[i] != NULL; i++)
		if (json_object_set(rec, mirror[i],
		    json_object_get(v, mirror[i])) == -1)
			goto out;
	if (json_object_set(rec, "key", key) == -1 ||
	    json_object_set(rec, "current_version",
	    json_object_get(v, "version")) == -1)
		goto out;
	rc = 0;
out:
	json_decref(key);
	return rc;
}

/*
 * Writes (or, rec NULL, deletes) the record of ca_id in txn, then marks
 * the record caches stale and txn a writer whatever the result (a failed
 * write fails txn). The order matters: a read that begins after the mark
 * waits for txn's lock.
 */
int
ca_record_store(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    const json_t *rec)
{
	int rc;

	rc = rec != NULL ? store_ca_put(txn, ca_id, rec) :
	    store_ca_del(txn, ca_id);
	ca_ctx_ca_written(ctx, txn, ca_id);
	return rc;
}
