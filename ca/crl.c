/*
 * ca/crl.c — revocation in the serial registry and CRL publication
 * (RFC 5280 section 5: v2 CRLs with CRL number, AKI and reason codes),
 * one CRL per CA key that still answers for certificates.
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

/* One CRL of a publication: the one of a key of the CA. */
struct crl_out {
	char		 stem[CA_FILE_NAME_MAX];	/* file name stem */
	unsigned	 gen;		/* key generation (first version) */
	unsigned char	*der;
	size_t		 derlen;
	long long	 number;
};

/* State of one CRL publication across transaction retries. */
struct crl_job {
	struct ca_ctx		*ctx;
	const char		*ca_id;
	long			 next_update;
	struct crl_out		 outs[CA_VERSIONS_MAX];	/* result; the
						   current key's last */
	size_t			 nouts;
	struct common_error	 err;
};

static void
crl_job_reset(struct crl_job *job)
{
	size_t i;

	for (i = 0; i < job->nouts; i++)
		free(job->outs[i].der);
	memset(job->outs, 0, sizeof(job->outs));
	job->nouts = 0;
}

/* The CA version number of an `issued` record (absent: version 1). */
static unsigned
crl_ca_version(const json_t *issued)
{
	json_int_t v = json_integer_value(json_object_get(issued,
	    "ca_version"));

	return v > 0 && v <= (json_int_t)UINT32_MAX ? (unsigned)v : 1;
}

/*
 * The key generations of rec whose CRL is due at now: every generation
 * with a version still valid (certificates it signed may still be), and
 * the current one always, last. Fills gens (at most CA_VERSIONS_MAX);
 * returns their count.
 */
static size_t
crl_gens(const json_t *rec, time_t now, unsigned *gens)
{
	const json_t *v;
	unsigned cur, g, num;
	size_t i, j, n = 0;
	time_t na;
	X509 *x;

	cur = ca_record_key_gen(rec, (unsigned)json_integer_value(
	    json_object_get(rec, "current_version")));
	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		num = (unsigned)json_integer_value(json_object_get(v,
		    "version"));
		if ((g = ca_record_key_gen(rec, num)) == 0 || g == cur)
			continue;
		if ((x = ca_record_cert(v)) == NULL)
			continue;
		if (common_asn1_time(X509_get0_notAfter(x), &na) == -1)
			na = 0;
		X509_free(x);
		if (na <= now)
			continue;
		for (j = 0; j < n && gens[j] != g; j++)
			;
		if (j == n && n < CA_VERSIONS_MAX - 1)
			gens[n++] = g;
	}
	if (cur != 0)
		gens[n++] = cur;
	return n;
}

/* The newest version of key generation gen: its certificate signs (and
 * names the key id of) the generation's CRL. */
static const json_t *
crl_gen_signer(const json_t *rec, unsigned gen)
{
	const json_t *v, *best = NULL;
	json_int_t num, bestnum = 0;
	size_t i;

	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		num = json_integer_value(json_object_get(v, "version"));
		if (num > bestnum &&
		    ca_record_key_gen(rec, (unsigned)num) == gen) {
			best = v;
			bestnum = num;
		}
	}
	return best;
}

/*
 * Builds the CRL of key generation gen into out: the revoked records
 * whose signing CA version belongs to it, signed by the generation's key
 * with its newest certificate as issuer.
 */
static int
crl_build_gen(struct crl_job *job, const json_t *rec, const json_t *revoked,
    unsigned gen, long long number, time_t now, struct crl_out *out)
{
	const json_t *signer, *r;
	json_t *mine = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	unsigned cur, rgen;
	size_t i;
	int rc = -1;

	out->gen = gen;
	out->number = number;
	if ((signer = crl_gen_signer(rec, gen)) == NULL ||
	    (cert = ca_record_cert(signer)) == NULL ||
	    ca_crl_stem(rec, gen, out->stem, sizeof(out->stem)) == -1) {
		log_err("ca %s: version %u has no readable certificate",
		    job->ca_id, gen);
		common_error_set(&job->err, COMMON_E_INTERNAL, "CA %s has a "
		    "broken certificate version", job->ca_id);
		goto out;
	}
	if ((key = ca_ctx_key_load(job->ctx, job->ca_id,
	    json_object_get(signer, "key"), &job->err)) == NULL)
		goto out;
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
		log_err("ca %s: key of version %u does not match its "
		    "certificate", job->ca_id, gen);
		common_error_set(&job->err, COMMON_E_INTERNAL, "the key of CA "
		    "%s does not match its certificate", job->ca_id);
		goto out;
	}
	if ((mine = json_array()) == NULL)
		goto internal;
	cur = ca_record_key_gen(rec, (unsigned)json_integer_value(
	    json_object_get(rec, "current_version")));
	json_array_foreach(revoked, i, r) {
		/* A serial naming no known version still gets listed: in
		 * the current key's CRL rather than in none. */
		if ((rgen = ca_record_key_gen(rec, crl_ca_version(r))) == 0)
			rgen = cur;
		if (rgen == gen && json_array_append(mine, (json_t *)r) == -1)
			goto internal;
	}
	if ((out->der = crl_build(cert, key, mine, number, now,
	    job->next_update, &out->derlen)) == NULL)
		goto internal;
	rc = 0;
	goto out;
internal:
	common_error_set(&job->err, COMMON_E_INTERNAL, "cannot build the CRL "
	    "of CA %s", job->ca_id);
out:
	ERR_clear_error();
	json_decref(mine);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/*
 * Transaction body: reads the CA (active, disabled or scheduled for
 * deletion: a CA that no longer issues still answers for what it
 * issued), builds one CRL per key generation due, and bumps crl_number
 * once per CRL so every CRL of the CA has its own number (the current
 * key's the highest). Keeps nothing outside job between tries.
 */
static int
crl_txn(struct store_txn *txn, void *arg)
{
	struct crl_job *job = arg;
	unsigned gens[CA_VERSIONS_MAX];
	json_t *rec = NULL, *revoked = NULL;
	const char *state;
	time_t now = common_now();
	long long number;
	size_t i, ngens;
	int rc = -1;

	crl_job_reset(job);
	common_error_clear(&job->err);
	if ((rec = ca_record_load(job->ctx, txn, job->ca_id)) == NULL) {
		common_error_set(&job->err, COMMON_E_NOTFOUND, "CA %s not "
		    "found", job->ca_id);
		goto out;
	}
	state = json_string_value(json_object_get(rec, "state"));
	if (state == NULL || (strcmp(state, "active") != 0 &&
	    strcmp(state, "disabled") != 0 &&
	    strcmp(state, "pending_deletion") != 0)) {
		common_error_set(&job->err, COMMON_E_CONFLICT, "CA %s is %s: "
		    "it has no CRL", job->ca_id, state != NULL ? state :
		    "in no state");
		goto out;
	}
	if ((ngens = crl_gens(rec, now, gens)) == 0) {
		log_err("ca %s: record holds no certificate version",
		    job->ca_id);
		common_error_set(&job->err, COMMON_E_INTERNAL, "CA %s has no "
		    "certificate", job->ca_id);
		goto out;
	}
	if ((revoked = store_issued_by_ca_status(ca_ctx_store(job->ctx), txn,
	    job->ca_id, "revoked")) == NULL)
		goto internal;
	number = json_integer_value(json_object_get(rec, "crl_number"));
	for (i = 0; i < ngens; i++) {
		if (crl_build_gen(job, rec, revoked, gens[i], ++number, now,
		    &job->outs[i]) == -1)
			goto out;
		job->nouts = i + 1;
	}
	if (json_object_set_new(rec, "crl_number",
	    json_integer((json_int_t)number)) == -1 ||
	    store_ca_put(txn, job->ca_id, rec) == -1)
		goto internal;
	rc = 0;
	goto out;
internal:
	common_error_set(&job->err, COMMON_E_INTERNAL, "cannot build the CRL "
	    "of CA %s", job->ca_id);
out:
	json_decref(rec);
	json_decref(revoked);
	return rc;
}

/* Writes one CRL to DATA/public/crl/<stem>.crl (0644). */
static int
crl_write(struct ca_ctx *ctx, const char *ca_id, const struct crl_out *o)
{
	char dir[PATH_MAX], path[PATH_MAX];

	if (common_path(dir, sizeof(dir), "%s/public/crl",
	    ca_ctx_data_dir(ctx)) == -1 ||
	    common_path(path, sizeof(path), "%s/%s.crl", dir, o->stem) == -1 ||
	    common_mkdirs(dir, 0755) == -1 ||
	    common_file_write(path, o->der, o->derlen, 0644) == -1) {
		log_err("ca %s: write CRL %lld to %s/public/crl/%s.crl: %s",
		    ca_id, o->number, ca_ctx_data_dir(ctx), o->stem,
		    strerror(errno));
		return -1;
	}
	log_info("ca %s: published CRL %lld (%s.crl)", ca_id, o->number,
	    o->stem);
	return 0;
}

/*
 * Publishes the CA's next CRLs (one per key still answering for
 * certificates, see ca.h): numbers, entries and signatures in one
 * transaction (retried on deadlock), then the DER files written after
 * the commit so a published number is never reused. der gets the CRL of
 * the current key.
 */
int
ca_crl_publish(struct ca_ctx *ctx, const char *ca_id,
    long next_update_seconds, unsigned char **der, size_t *derlen,
    struct common_error *err)
{
	struct crl_job job;
	struct crl_out *cur;
	size_t i;
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
	    job.nouts == 0) {
		if (job.err.code != COMMON_E_NONE)
			common_error_set(err, job.err.code, "%s", job.err.msg);
		else
			common_error_set(err, COMMON_E_INTERNAL, "cannot update "
			    "the CRL number of CA %s", ca_id);
		goto out;
	}
	for (i = 0; i < job.nouts; i++) {
		if (crl_write(ctx, ca_id, &job.outs[i]) == -1) {
			common_error_set(err, COMMON_E_INTERNAL, "cannot write "
			    "the CRL of CA %s", ca_id);
			goto out;
		}
	}
	cur = &job.outs[job.nouts - 1];
	if (der != NULL) {
		*der = cur->der;	/* steal */
		cur->der = NULL;
		if (derlen != NULL)
			*derlen = cur->derlen;
	}
	rc = 0;
out:
	crl_job_reset(&job);
	return rc;
}
