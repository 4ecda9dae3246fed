/*
 * ca/crl.c — revocation in the serial registry and CRL publication
 * (RFC 5280 section 5: v2 CRLs with CRL number, AKI and reason codes),
 * one CRL per CA key that still answers for certificates.
 *
 * A publication streams the CA's entries from the store's revocation
 * index (store_revoked_walk: no `issued` record is read or held) into
 * the CRL of each due key at once, with one encoded reason extension
 * per reason code, and encodes each CRL once (crl_sign_der).
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
#define CRL_REASON_CODES	11	/* RFC 5280 CRLReason values 0..10 */

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
 * Signs crl with key and returns its DER (to free()) in *der, encoding
 * the TBSCertList once: X509_CRL_sign followed by i2d_X509_CRL encodes
 * it twice, which for a CRL of 100,000 entries costs as much as
 * building them. The signature algorithm must already be set in crl
 * (crl_draft_start signs it once while it is empty): the TBS is encoded,
 * signed with EVP_DigestSign as X509_CRL_sign would, and wrapped as
 * SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }. 0 or -1.
 */
static int
crl_sign_der(X509_CRL *crl, EVP_PKEY *key, const EVP_MD *md,
    unsigned char **der, size_t *derlen)
{
	const ASN1_BIT_STRING *oldsig;
	const X509_ALGOR *alg;
	EVP_MD_CTX *mctx = NULL;
	unsigned char *tbs = NULL, *algder = NULL, *sig = NULL, *buf = NULL;
	unsigned char *p;
	size_t siglen = 0;
	int tbslen, alglen, bitlen, seqlen, rc = -1;

	X509_CRL_get0_signature(crl, &oldsig, &alg);
	if ((tbslen = i2d_re_X509_CRL_tbs(crl, &tbs)) <= 0 ||
	    (alglen = i2d_X509_ALGOR(alg, &algder)) <= 0)
		goto out;
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(mctx, NULL, md, NULL, key) != 1 ||
	    EVP_DigestSign(mctx, NULL, &siglen, tbs, (size_t)tbslen) != 1 ||
	    siglen > INT_MAX - 1 || (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(mctx, sig, &siglen, tbs, (size_t)tbslen) != 1)
		goto out;
	/* The BIT STRING's content: no unused bits, then the signature. */
	bitlen = ASN1_object_size(0, (int)siglen + 1, V_ASN1_BIT_STRING);
	if (bitlen <= 0 || tbslen > INT_MAX - alglen - bitlen ||
	    (seqlen = ASN1_object_size(1, tbslen + alglen + bitlen,
	    V_ASN1_SEQUENCE)) <= 0 || (buf = malloc((size_t)seqlen)) == NULL)
		goto out;
	p = buf;
	ASN1_put_object(&p, 1, tbslen + alglen + bitlen, V_ASN1_SEQUENCE,
	    V_ASN1_UNIVERSAL);
	memcpy(p, tbs, (size_t)tbslen);
	p += tbslen;
	memcpy(p, algder, (size_t)alglen);
	p += alglen;
	ASN1_put_object(&p, 0, (int)siglen + 1, V_ASN1_BIT_STRING,
	    V_ASN1_UNIVERSAL);
	*p++ = 0;
	memcpy(p, sig, siglen);
	*der = buf;	/* steal */
	*derlen = (size_t)seqlen;
	buf = NULL;
	rc = 0;
out:
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(tbs);
	OPENSSL_free(algder);
	free(sig);
	free(buf);
	return rc;
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

/* One CRL being built: a key generation's, with its signer. */
struct crl_draft {
	unsigned	 gen;
	char		 stem[CA_FILE_NAME_MAX];	/* its file name stem */
	X509_CRL	*crl;
	X509		*cert;		/* the generation's newest version */
	EVP_PKEY	*key;
	const EVP_MD	*md;
};

/*
 * What the walk of the revocation index fills: every draft of the
 * publication at once (one walk for all key generations), with scratch
 * objects reused from entry to entry and the reason extensions encoded
 * once per reason code.
 */
struct crl_fill {
	const json_t	*rec;		/* the CA record */
	const char	*ca_id;
	time_t		 now;
	unsigned	 cur;		/* the current key generation */
	struct crl_draft *drafts;
	size_t		 ndrafts;
	unsigned	 versions[CA_VERSIONS_MAX];	/* version -> key */
	unsigned	 version_gens[CA_VERSIONS_MAX];	/* generation memo */
	size_t		 nversions;
	X509_EXTENSION	*reasons[CRL_REASON_CODES];	/* NULL until used */
	BIGNUM		*bn;
	ASN1_INTEGER	*serial;
	ASN1_TIME	*when;
};

static void
crl_draft_free(struct crl_draft *d)
{
	X509_CRL_free(d->crl);
	X509_free(d->cert);
	EVP_PKEY_free(d->key);
	memset(d, 0, sizeof(*d));
}

static void
crl_fill_free(struct crl_fill *f)
{
	size_t i;

	for (i = 0; i < f->ndrafts; i++)
		crl_draft_free(&f->drafts[i]);
	for (i = 0; i < CRL_REASON_CODES; i++)
		X509_EXTENSION_free(f->reasons[i]);
	BN_free(f->bn);
	ASN1_INTEGER_free(f->serial);
	ASN1_TIME_free(f->when);
}

/* Fails job after OpenSSL could not build its CRL (the reason logged). */
static void
crl_build_failed(struct crl_job *job)
{
	log_err("crl: build: %s", common_ssl_error());
	common_error_set(&job->err, COMMON_E_INTERNAL, "cannot build the CRL "
	    "of CA %s", job->ca_id);
}

/*
 * Starts the CRL of key generation gen in d: its signer (the newest
 * version of the generation and its key, which must match), and the
 * CRL's header. The empty CRL is signed once so that it carries the
 * signature algorithm crl_sign_der needs. 0 or -1 (job->err set).
 */
static int
crl_draft_start(struct crl_job *job, const json_t *rec, unsigned gen,
    time_t now, struct crl_draft *d)
{
	const json_t *signer;
	ASN1_TIME *last = NULL, *next = NULL;
	int rc = -1;

	d->gen = gen;
	if ((signer = crl_gen_signer(rec, gen)) == NULL ||
	    (d->cert = ca_record_cert(signer)) == NULL ||
	    ca_crl_stem(rec, gen, d->stem, sizeof(d->stem)) == -1) {
		log_err("ca %s: version %u has no readable certificate",
		    job->ca_id, gen);
		common_error_set(&job->err, COMMON_E_INTERNAL, "CA %s has a "
		    "broken certificate version", job->ca_id);
		goto out;
	}
	if ((d->key = ca_ctx_key_load(job->ctx, job->ca_id,
	    json_object_get(signer, "key"), &job->err)) == NULL)
		goto out;
	if (EVP_PKEY_eq(X509_get0_pubkey(d->cert), d->key) != 1) {
		log_err("ca %s: key of version %u does not match its "
		    "certificate", job->ca_id, gen);
		common_error_set(&job->err, COMMON_E_INTERNAL, "the key of CA "
		    "%s does not match its certificate", job->ca_id);
		goto out;
	}
	if ((d->md = ca_sign_md(d->key)) == NULL ||
	    (d->crl = X509_CRL_new()) == NULL ||
	    X509_CRL_set_version(d->crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(d->crl,
	    X509_get_subject_name(d->cert)) != 1 ||
	    (last = ASN1_TIME_set(NULL, now)) == NULL ||
	    (next = ASN1_TIME_set(NULL, now + job->next_update)) == NULL ||
	    X509_CRL_set1_lastUpdate(d->crl, last) != 1 ||
	    X509_CRL_set1_nextUpdate(d->crl, next) != 1 ||
	    X509_CRL_sign(d->crl, d->key, d->md) <= 0) {
		crl_build_failed(job);
		goto out;
	}
	rc = 0;
out:
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	return rc;
}

/* The crlReason extension of code (not unspecified), encoded once per
 * publication and kept in f; NULL on failure. */
static X509_EXTENSION *
crl_reason_ext(struct crl_fill *f, enum ca_reason code)
{
	ASN1_ENUMERATED *e = NULL;

	if ((unsigned)code >= CRL_REASON_CODES)
		return NULL;
	if (f->reasons[code] == NULL) {
		if ((e = ASN1_ENUMERATED_new()) != NULL &&
		    ASN1_ENUMERATED_set(e, (long)code) == 1)
			f->reasons[code] = X509V3_EXT_i2d(NID_crl_reason, 0,
			    e);
		ASN1_ENUMERATED_free(e);
	}
	return f->reasons[code];
}

/* The draft of the key generation of CA version v (a version naming no
 * known key counts as the current key's), NULL when that generation's
 * CRL is not due. */
static struct crl_draft *
crl_fill_draft(struct crl_fill *f, unsigned v)
{
	unsigned gen = 0;
	size_t i;

	for (i = 0; i < f->nversions && f->versions[i] != v; i++)
		;
	if (i < f->nversions) {
		gen = f->version_gens[i];
	} else {
		gen = ca_record_key_gen(f->rec, v);
		if (f->nversions < CA_VERSIONS_MAX) {
			f->versions[f->nversions] = v;
			f->version_gens[f->nversions++] = gen;
		}
	}
	/* A serial naming no known version still gets listed: in the
	 * current key's CRL rather than in none. */
	if (gen == 0)
		gen = f->cur;
	for (i = 0; i < f->ndrafts; i++)
		if (f->drafts[i].gen == gen)
			return &f->drafts[i];
	return NULL;
}

/*
 * store_revoked_walk callback: adds entry e to the CRL of its key
 * generation, unless its certificate has expired at f->now (RFC 5280
 * lets it drop off). A malformed entry is logged and skipped. 0, or -1
 * when OpenSSL fails (allocation).
 */
static int
crl_fill_entry(const struct store_revoked *e, void *arg)
{
	struct crl_fill *f = arg;
	struct crl_draft *d;
	X509_EXTENSION *ext;
	enum ca_reason why = CA_REASON_UNSPECIFIED;
	X509_REVOKED *r = NULL;
	int rc = -1;

	if (!e->has_not_after || e->not_after <= f->now)
		return 0;
	if ((d = crl_fill_draft(f, e->ca_version != 0 ? e->ca_version :
	    1)) == NULL)
		return 0;
	if (!e->has_revoked_at ||
	    BN_hex2bn(&f->bn, e->serial) != (int)strlen(e->serial)) {
		log_err("crl: skipping malformed issued record %s",
		    e->serial);
		return 0;
	}
	if (e->reason[0] != '\0' && ca_reason_parse(e->reason, &why) == -1)
		why = CA_REASON_UNSPECIFIED;
	if ((r = X509_REVOKED_new()) == NULL ||
	    (f->serial = BN_to_ASN1_INTEGER(f->bn, f->serial)) == NULL ||
	    X509_REVOKED_set_serialNumber(r, f->serial) != 1 ||
	    (f->when = ASN1_TIME_set(f->when, (time_t)e->revoked_at)) ==
	    NULL || X509_REVOKED_set_revocationDate(r, f->when) != 1)
		goto out;
	/* RFC 5280 5.3.1: absent rather than unspecified. */
	if (why != CA_REASON_UNSPECIFIED &&
	    ((ext = crl_reason_ext(f, why)) == NULL ||
	    X509_REVOKED_add_ext(r, ext, -1) != 1))
		goto out;
	if (X509_CRL_add0_revoked(d->crl, r) != 1)
		goto out;
	r = NULL;	/* the CRL owns it */
	rc = 0;
out:
	if (rc == -1)
		log_err("crl: entry %s: %s", e->serial, common_ssl_error());
	X509_REVOKED_free(r);
	return rc;
}

/*
 * Finishes draft d into out: entries sorted by serial, CRL number and
 * AKI, signature, DER. 0 or -1 (job->err set).
 */
static int
crl_draft_finish(struct crl_job *job, struct crl_draft *d, long long number,
    struct crl_out *out)
{
	ASN1_INTEGER *num = NULL;
	int rc = -1;

	out->gen = d->gen;
	out->number = number;
	memcpy(out->stem, d->stem, sizeof(out->stem));
	if (X509_CRL_sort(d->crl) != 1 ||
	    (num = ASN1_INTEGER_new()) == NULL ||
	    ASN1_INTEGER_set_int64(num, number) != 1 ||
	    X509_CRL_add1_ext_i2d(d->crl, NID_crl_number, num, 0, 0) != 1 ||
	    crl_add_aki(d->crl, d->cert) == -1 ||
	    crl_sign_der(d->crl, d->key, d->md, &out->der,
	    &out->derlen) == -1) {
		crl_build_failed(job);
		goto out;
	}
	rc = 0;
out:
	ASN1_INTEGER_free(num);
	return rc;
}

/*
 * Transaction body: reads the CA (active, disabled or scheduled for
 * deletion: a CA that no longer issues still answers for what it
 * issued), builds one CRL per key generation due from one walk of the
 * CA's revocation index, and bumps crl_number once per CRL so every CRL
 * of the CA has its own number (the current key's the highest). Keeps
 * nothing outside job between tries.
 */
static int
crl_txn(struct store_txn *txn, void *arg)
{
	struct crl_job *job = arg;
	struct crl_draft drafts[CA_VERSIONS_MAX];
	struct crl_fill fill;
	unsigned gens[CA_VERSIONS_MAX];
	json_t *rec = NULL;
	const char *state;
	time_t now = common_now();
	long long number;
	size_t i, ngens;
	int rc = -1;

	crl_job_reset(job);
	common_error_clear(&job->err);
	memset(drafts, 0, sizeof(drafts));
	memset(&fill, 0, sizeof(fill));
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
	fill.rec = rec;
	fill.ca_id = job->ca_id;
	fill.now = now;
	fill.cur = ca_record_key_gen(rec, (unsigned)json_integer_value(
	    json_object_get(rec, "current_version")));
	fill.drafts = drafts;
	for (i = 0; i < ngens; i++) {
		if (crl_draft_start(job, rec, gens[i], now, &drafts[i]) == -1)
			goto out;
		fill.ndrafts = i + 1;
	}
	if (store_revoked_walk(txn, job->ca_id, crl_fill_entry, &fill) == -1)
		goto internal;
	number = json_integer_value(json_object_get(rec, "crl_number"));
	for (i = 0; i < ngens; i++) {
		if (crl_draft_finish(job, &drafts[i], ++number,
		    &job->outs[i]) == -1)
			goto out;
		job->nouts = i + 1;
	}
	if (json_object_set_new(rec, "crl_number",
	    json_integer((json_int_t)number)) == -1 ||
	    ca_record_store(job->ctx, txn, job->ca_id, rec) == -1)
		goto internal;
	rc = 0;
	goto out;
internal:
	common_error_set(&job->err, COMMON_E_INTERNAL, "cannot build the CRL "
	    "of CA %s", job->ca_id);
out:
	ERR_clear_error();
	crl_fill_free(&fill);
	json_decref(rec);
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
	/* the numbers on disk before the files (a server worker's commit
	 * returns before its flush): a published number is never reused */
	if (store_flush_all(ca_ctx_store(ctx)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "the CRL numbers of "
		    "CA %s could not be written to disk", ca_id);
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
