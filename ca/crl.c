/*
 * ca/crl.c — revocation in the serial registry and CRL publication
 * (RFC 5280 section 5: v2 CRLs with CRL number, AKI and reason codes).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>

#include "ca/ca.h"

#define SERIAL_HEX_MAX		40	/* RFC 5280: at most 20 octets */
#define CRL_NEXT_UPDATE_MAX	(366L * 86400)	/* a year and a day */
#define CRL_LABELS_MAX		96

/*
 * Canonical form of a serial given in hex (either case, leading zeros
 * optional): the upper-case BN_bn2hex text `issued` is keyed by. -1
 * when s is not 1..40 hex digits.
 */
static int
crl_serial_norm(const char *s, char *out, size_t outlen)
{
	BIGNUM *bn = NULL;
	char *hex = NULL;
	size_t i, n;
	int rc = -1;

	if (s == NULL || (n = strlen(s)) == 0 || n > SERIAL_HEX_MAX)
		goto out;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			goto out;
	if (BN_hex2bn(&bn, s) != (int)n || (hex = BN_bn2hex(bn)) == NULL)
		goto out;
	rc = common_path(out, outlen, "%s", hex);
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

/* True for the reasons a CRL entry may carry (7 is unused; removeFromCRL
 * only belongs in delta CRLs, which pkid does not publish). */
static bool
crl_reason_valid(enum ca_reason r)
{
	return r != CA_REASON_REMOVE_FROM_CRL &&
	    strcmp(ca_reason_name(r), "unknown") != 0;
}

/*
 * Marks an issued serial revoked inside txn. NOTFOUND for a serial pkid
 * never issued, CONFLICT when it is already revoked.
 */
int
ca_revoke(struct ca_ctx *ctx, struct store_txn *txn, const char *serial,
    enum ca_reason reason, time_t t, struct common_error *err)
{
	char hex[SERIAL_HEX_MAX + 2], labels[CRL_LABELS_MAX];
	json_t *rec = NULL;
	const char *status, *ca_id;
	int rc = -1;

	if (crl_serial_norm(serial, hex, sizeof(hex)) == -1) {
		common_error_set(err, COMMON_E_INVALID, "serial must be 1..%d "
		    "hex digits", SERIAL_HEX_MAX);
		goto out;
	}
	if (!crl_reason_valid(reason)) {
		common_error_set(err, COMMON_E_INVALID, "revocation reason %d "
		    "cannot be used", (int)reason);
		goto out;
	}
	if ((rec = store_issued_get(ca_ctx_store(ctx), txn, hex)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "no certificate with "
		    "serial %s was issued", hex);
		goto out;
	}
	status = json_string_value(json_object_get(rec, "status"));
	if (status != NULL && strcmp(status, "revoked") == 0) {
		common_error_set(err, COMMON_E_CONFLICT, "certificate %s is "
		    "already revoked", hex);
		goto out;
	}
	if (status == NULL || strcmp(status, "valid") != 0) {
		common_error_set(err, COMMON_E_CONFLICT, "certificate %s is "
		    "%s, not valid", hex, status != NULL ? status : "in no "
		    "state");
		goto out;
	}
	if (json_object_set_new(rec, "status", json_string("revoked")) == -1 ||
	    json_object_set_new(rec, "revoked_at",
	    json_integer((json_int_t)t)) == -1 ||
	    json_object_set_new(rec, "reason",
	    json_string(ca_reason_name(reason))) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (store_issued_put(txn, hex, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot record the "
		    "revocation");
		goto out;
	}
	ca_id = json_string_value(json_object_get(rec, "ca_id"));
	snprintf(labels, sizeof(labels), "ca=\"%s\"",
	    ca_id != NULL ? ca_id : "");
	common_metric_inc("pkid_certificates_revoked_total", labels);
	log_info("ca %s: revoked %s (%s)", ca_id != NULL ? ca_id : "?", hex,
	    ca_reason_name(reason));
	rc = 0;
out:
	json_decref(rec);
	return rc;
}

/* One CRL entry from an `issued` record; NULL on a malformed record. */
static X509_REVOKED *
crl_entry(const json_t *rec)
{
	const char *serial = json_string_value(json_object_get(rec, "serial"));
	const char *reason = json_string_value(json_object_get(rec, "reason"));
	const json_t *at = json_object_get(rec, "revoked_at");
	X509_REVOKED *r = NULL, *result = NULL;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	ASN1_TIME *t = NULL;
	ASN1_ENUMERATED *code = NULL;
	enum ca_reason why = CA_REASON_UNSPECIFIED;

	if (serial == NULL || !json_is_integer(at) ||
	    BN_hex2bn(&bn, serial) != (int)strlen(serial))
		goto out;
	if (reason != NULL && ca_reason_parse(reason, &why) == -1)
		why = CA_REASON_UNSPECIFIED;
	if ((r = X509_REVOKED_new()) == NULL ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    X509_REVOKED_set_serialNumber(r, ai) != 1 ||
	    (t = ASN1_TIME_set(NULL, (time_t)json_integer_value(at))) == NULL ||
	    X509_REVOKED_set_revocationDate(r, t) != 1)
		goto out;
	/* RFC 5280 5.3.1: absent rather than unspecified. */
	if (why != CA_REASON_UNSPECIFIED) {
		if ((code = ASN1_ENUMERATED_new()) == NULL ||
		    ASN1_ENUMERATED_set(code, (long)why) != 1 ||
		    X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, code, 0,
		    0) != 1)
			goto out;
	}
	result = r;	/* steal */
	r = NULL;
out:
	X509_REVOKED_free(r);
	BN_free(bn);
	ASN1_INTEGER_free(ai);
	ASN1_TIME_free(t);
	ASN1_ENUMERATED_free(code);
	return result;
}

/* AKI keyid of the CA (its SKI, else the SHA-1 of its key) on crl. */
static int
crl_add_aki(X509_CRL *crl, X509 *cacert)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	const ASN1_OCTET_STRING *ski;
	AUTHORITY_KEYID *akid = NULL;
	int rc = -1;

	if ((akid = AUTHORITY_KEYID_new()) == NULL)
		goto out;
	if ((ski = X509_get0_subject_key_id(cacert)) != NULL)
		akid->keyid = ASN1_OCTET_STRING_dup(ski);
	else if (X509_pubkey_digest(cacert, EVP_sha1(), md, &n) == 1 &&
	    (akid->keyid = ASN1_OCTET_STRING_new()) != NULL &&
	    ASN1_OCTET_STRING_set(akid->keyid, md, (int)n) != 1)
		goto out;
	if (akid->keyid == NULL)
		goto out;
	if (X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0,
	    0) != 1)
		goto out;
	rc = 0;
out:
	AUTHORITY_KEYID_free(akid);
	return rc;
}

/*
 * Builds and signs the CRL of cacert: every revoked record whose
 * certificate has not expired at now, sorted by serial. Returns its DER
 * (to free()) or NULL.
 */
static unsigned char *
crl_build(X509 *cacert, EVP_PKEY *key, const json_t *revoked,
    long long number, time_t now, long next_update, size_t *derlen)
{
	X509_CRL *crl = NULL;
	X509_REVOKED *r;
	ASN1_TIME *last = NULL, *next = NULL;
	ASN1_INTEGER *num = NULL;
	const json_t *rec, *na;
	const EVP_MD *md;
	unsigned char *der = NULL, *result = NULL;
	size_t i;
	int len;

	if ((crl = X509_CRL_new()) == NULL ||
	    X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(cacert)) != 1 ||
	    (last = ASN1_TIME_set(NULL, now)) == NULL ||
	    (next = ASN1_TIME_set(NULL, now + next_update)) == NULL ||
	    X509_CRL_set1_lastUpdate(crl, last) != 1 ||
	    X509_CRL_set1_nextUpdate(crl, next) != 1)
		goto out;
	json_array_foreach(revoked, i, rec) {
		na = json_object_get(rec, "not_after");
		if (!json_is_integer(na) || json_integer_value(na) <= now)
			continue;	/* expired: RFC 5280 lets it drop off */
		if ((r = crl_entry(rec)) == NULL) {
			log_err("crl: skipping malformed issued record %s",
			    json_string_value(json_object_get(rec, "serial")));
			continue;
		}
		if (X509_CRL_add0_revoked(crl, r) != 1) {
			X509_REVOKED_free(r);
			goto out;
		}
	}
	if (X509_CRL_sort(crl) != 1)
		goto out;
	if ((num = ASN1_INTEGER_new()) == NULL ||
	    ASN1_INTEGER_set_int64(num, number) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1 ||
	    crl_add_aki(crl, cacert) == -1)
		goto out;
	if ((md = ca_sign_md(key)) == NULL || X509_CRL_sign(crl, key, md) <= 0)
		goto out;
	if ((len = i2d_X509_CRL(crl, &der)) <= 0)
		goto out;
	if ((result = malloc((size_t)len)) == NULL)
		goto out;
	memcpy(result, der, (size_t)len);
	*derlen = (size_t)len;
out:
	if (result == NULL)
		log_err("crl: build: %s", common_ssl_error());
	OPENSSL_free(der);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	ASN1_INTEGER_free(num);
	X509_CRL_free(crl);
	return result;
}

/* State of one CRL publication across transaction retries. */
struct crl_job {
	struct ca_ctx		*ctx;
	const char		*ca_id;
	long			 next_update;
	unsigned char		*der;		/* result */
	size_t			 derlen;
	long long		 number;	/* result */
	struct common_error	 err;
};

/* Transaction body: bumps crl_number, reads the revoked serials, builds
 * the CRL. Keeps nothing outside job between tries. */
static int
crl_txn(struct store_txn *txn, void *arg)
{
	struct crl_job *job = arg;
	json_t *rec = NULL, *revoked = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	time_t now = common_now();
	int rc = -1;

	free(job->der);
	job->der = NULL;
	common_error_clear(&job->err);
	if ((rec = ca_active_get(job->ctx, txn, job->ca_id, &cert, &key,
	    &job->err)) == NULL)
		goto out;
	job->number = json_integer_value(json_object_get(rec, "crl_number"))
	    + 1;
	if (json_object_set_new(rec, "crl_number",
	    json_integer((json_int_t)job->number)) == -1 ||
	    store_ca_put(txn, job->ca_id, rec) == -1)
		goto internal;
	if ((revoked = store_issued_by_ca_status(ca_ctx_store(job->ctx), txn,
	    job->ca_id, "revoked")) == NULL)
		goto internal;
	if ((job->der = crl_build(cert, key, revoked, job->number, now,
	    job->next_update, &job->derlen)) == NULL)
		goto internal;
	rc = 0;
	goto out;
internal:
	common_error_set(&job->err, COMMON_E_INTERNAL, "cannot build the CRL "
	    "of CA %s", job->ca_id);
out:
	json_decref(rec);
	json_decref(revoked);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/*
 * Publishes the CA's next CRL: number, entries and signature in one
 * transaction (retried on deadlock), then the DER file written after the
 * commit so a published number is never reused.
 */
int
ca_crl_publish(struct ca_ctx *ctx, const char *ca_id,
    long next_update_seconds, unsigned char **der, size_t *derlen,
    struct common_error *err)
{
	struct crl_job job;
	char dir[PATH_MAX], path[PATH_MAX];
	int rc = -1;

	memset(&job, 0, sizeof(job));
	job.ctx = ctx;
	job.ca_id = ca_id;
	job.next_update = next_update_seconds;
	if (der != NULL)
		*der = NULL;
	if (derlen != NULL)
		*derlen = 0;
	if (ca_id == NULL || !common_id_valid(ca_id)) {
		common_error_set(err, COMMON_E_NOTFOUND, "CA %s not found",
		    ca_id != NULL ? ca_id : "(none)");
		goto out;
	}
	if (next_update_seconds <= 0 ||
	    next_update_seconds > CRL_NEXT_UPDATE_MAX) {
		common_error_set(err, COMMON_E_INVALID, "CRL next update must "
		    "be 1..%ld seconds ahead", CRL_NEXT_UPDATE_MAX);
		goto out;
	}
	if (store_txn_run(ca_ctx_store(ctx), crl_txn, &job) != 0 ||
	    job.der == NULL) {
		if (job.err.code != COMMON_E_NONE)
			common_error_set(err, job.err.code, "%s", job.err.msg);
		else
			common_error_set(err, COMMON_E_INTERNAL, "cannot update "
			    "the CRL number of CA %s", ca_id);
		goto out;
	}
	if (common_path(dir, sizeof(dir), "%s/public/crl",
	    ca_ctx_data_dir(ctx)) == -1 ||
	    common_path(path, sizeof(path), "%s/%s.crl", dir, ca_id) == -1 ||
	    common_mkdirs(dir, 0755) == -1 ||
	    common_file_write(path, job.der, job.derlen, 0644) == -1) {
		log_err("ca %s: write CRL %lld to %s/public/crl: %s", ca_id,
		    job.number, ca_ctx_data_dir(ctx), strerror(errno));
		common_error_set(err, COMMON_E_INTERNAL, "cannot write the CRL "
		    "of CA %s", ca_id);
		goto out;
	}
	log_info("ca %s: published CRL %lld", ca_id, job.number);
	if (der != NULL) {
		*der = job.der;	/* steal */
		job.der = NULL;
		if (derlen != NULL)
			*derlen = job.derlen;
	}
	rc = 0;
out:
	free(job.der);
	return rc;
}
