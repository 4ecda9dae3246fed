/*
 * ca/issue.c — leaf certificate issuance (the one call every door uses:
 * profile, policy, serial registry) and the parsing of PKCS#10 requests
 * into the subject and SAN strings an issuance request takes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "ca/ca.h"

#define ISSUE_DEPTH_MAX	32	/* ancestors whose policy is checked */
#define ISSUE_ID_MAX	64

/* Key usage and extended key usage of each profile (DESIGN.md). */
static const struct {
	bool		 key_encipherment;	/* for RSA keys */
	const char	*eku;
} issue_profiles[CA_PROFILE__MAX] = {
	[CA_PROFILE_TLS_SERVER_OR_CLIENT] = { true, "serverAuth,clientAuth" },
	[CA_PROFILE_TLS_SERVER] = { true, "serverAuth" },
	[CA_PROFILE_TLS_CLIENT] = { false, "clientAuth" },
	[CA_PROFILE_CODE_SIGNING] = { false, "codeSigning" },
};

#define ISSUE_BC	"critical,CA:FALSE"
#define ISSUE_KU	"critical,digitalSignature"
#define ISSUE_KU_RSA	"critical,digitalSignature,keyEncipherment"

/*
 * The leaf extensions that never vary (basicConstraints, both key
 * usages, each profile's EKU), built once from the same openssl.cnf text
 * ca_cert_add_ext parses: parsing it per certificate cost more than
 * copying the result. A NULL entry (allocation failure at start) falls
 * back to parsing.
 */
static pthread_once_t issue_exts_once = PTHREAD_ONCE_INIT;
static X509_EXTENSION *issue_ext_bc;
static X509_EXTENSION *issue_ext_ku[2];	/* [with keyEncipherment] */
static X509_EXTENSION *issue_ext_eku[CA_PROFILE__MAX];

/* One constant extension of value (no certificate context needed). */
static X509_EXTENSION *
issue_ext_build(int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, NULL, NULL, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value)) == NULL)
		ERR_clear_error();
	return ext;
}

/* pthread_once body: the prebuilt extensions above. */
static void
issue_exts_init(void)
{
	int p;

	issue_ext_bc = issue_ext_build(NID_basic_constraints, ISSUE_BC);
	issue_ext_ku[0] = issue_ext_build(NID_key_usage, ISSUE_KU);
	issue_ext_ku[1] = issue_ext_build(NID_key_usage, ISSUE_KU_RSA);
	for (p = 0; p < CA_PROFILE__MAX; p++)
		issue_ext_eku[p] = issue_ext_build(NID_ext_key_usage,
		    issue_profiles[p].eku);
}

/* Adds a copy of the prebuilt ext, else the extension parsed from
 * value. 0 or -1 (logged). */
static int
issue_ext_add(X509 *x, X509_EXTENSION *ext, int nid, const char *value)
{
	if (ext == NULL)
		return ca_cert_add_ext(x, nid, value);
	if (X509_add_ext(x, ext, -1) != 1) {
		log_err("certificate: extension %s: %s", OBJ_nid2sn(nid),
		    common_ssl_error());
		return -1;
	}
	return 0;
}

/*
 * Appends to path the records of rec's ancestors that pkid holds, read
 * in txn, so the policy of each can be checked (a subordinate cannot
 * widen what its parents allow). 0 or -1 with err (a missing parent or a
 * corrupt hierarchy).
 */
static int
issue_ancestors(struct ca_ctx *ctx, struct store_txn *txn, const json_t *rec,
    json_t *path, struct common_error *err)
{
	char next[ISSUE_ID_MAX];
	json_t *cur;
	const char *parent;
	int depth;

	parent = json_string_value(json_object_get(rec, "parent_id"));
	for (depth = 0; parent != NULL && depth < ISSUE_DEPTH_MAX; depth++) {
		if (common_path(next, sizeof(next), "%s", parent) == -1)
			break;
		if ((cur = ca_record_load(ctx, txn, next)) == NULL) {
			log_err("ca: parent CA %s is missing", next);
			common_error_set(err, COMMON_E_INTERNAL, "parent CA %s "
			    "is missing", next);
			return -1;
		}
		if (json_array_append_new(path, cur) == -1) {
			common_error_set(err, COMMON_E_INTERNAL, "out of "
			    "memory");
			return -1;
		}
		parent = json_string_value(json_object_get(cur, "parent_id"));
	}
	if (parent != NULL) {
		log_err("ca: hierarchy above %s is too deep or loops", next);
		common_error_set(err, COMMON_E_INTERNAL, "CA hierarchy is "
		    "corrupt");
		return -1;
	}
	return 0;
}

/* Builds the CDP and AIA extensions of is's leaves once (on failure
 * they stay NULL and each leaf builds its own). */
static void
issue_urls(struct ca_ctx *ctx, struct ca_issuer *is)
{
	X509 *tmpl;

	if ((tmpl = X509_new()) == NULL)
		return;
	if (ca_cert_add_urls_stem(tmpl, ctx, is->crl_stem, is->cert_stem) ==
	    0 && X509_get_ext_count(tmpl) == 2) {
		is->cdp = X509_EXTENSION_dup(X509_get_ext(tmpl, 0));
		is->aia = X509_EXTENSION_dup(X509_get_ext(tmpl, 1));
	}
	ERR_clear_error();
	X509_free(tmpl);
}

void
ca_issuer_free(struct ca_issuer *is)
{
	if (is == NULL)
		return;
	json_decref(is->path);
	X509_free(is->cert);
	EVP_PKEY_free(is->key);
	X509_EXTENSION_free(is->cdp);
	X509_EXTENSION_free(is->aia);
	free(is);
}

/*
 * Builds the issuer of ca_id from txn's reads: the active CA with its
 * certificate and key (ca_active_get), its ancestors' records, its
 * signature digest and the stems of its CRL and caIssuers URLs. Cached
 * when nothing was written since the reads began and txn wrote no CA
 * (see ctx.c). Returns a reference of the caller's or NULL with err.
 */
struct ca_issuer *
ca_issuer_get(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	struct ca_issuer *is = NULL, *result = NULL;
	json_t *rec;
	uint64_t gen;

	if ((result = ca_ctx_issuer_get(ctx, txn, ca_id)) != NULL)
		return result;
	gen = ca_ctx_ca_gen(ctx);
	if ((is = calloc(1, sizeof(*is))) == NULL ||
	    (is->path = json_array()) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	is->refs = 1;
	if ((rec = ca_active_get(ctx, txn, ca_id, &is->cert, &is->key,
	    err)) == NULL)
		goto out;
	if (json_array_append_new(is->path, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (issue_ancestors(ctx, txn, rec, is->path, err) == -1)
		goto out;
	if ((is->md = ca_sign_md(is->key)) == NULL ||
	    ca_crl_stem(rec, 0, is->crl_stem, sizeof(is->crl_stem)) == -1 ||
	    ca_cert_stem(rec, 0, is->cert_stem, sizeof(is->cert_stem)) ==
	    -1) {
		log_err("ca %s: no signature digest or file stem", ca_id);
		common_error_set(err, COMMON_E_INTERNAL, "cannot build the "
		    "certificate");
		goto out;
	}
	is->version = json_integer_value(json_object_get(rec,
	    "current_version"));
	issue_urls(ctx, is);
	ca_ctx_issuer_put(ctx, txn, ca_id, is, gen);
	result = is;	/* steal */
	is = NULL;
out:
	ca_issuer_free(is);
	return result;
}

/* Checks the SANs against the policy of the CA and of each ancestor. */
static int
issue_policy(const struct ca_issuer *is, const GENERAL_NAMES *gens,
    struct common_error *err)
{
	const json_t *rec;
	size_t i;

	json_array_foreach(is->path, i, rec) {
		if (ca_policy_check(rec, gens, err) == -1)
			return -1;
	}
	return 0;
}

/* Checks the request fields that need no CA. */
static int
issue_check_req(const struct ca_issue_req *req, enum ca_key_alg *alg,
    struct common_error *err)
{
	if (req == NULL) {
		common_error_set(err, COMMON_E_INVALID, "no request");
		return -1;
	}
	if (req->pubkey == NULL || ca_key_alg_of(req->pubkey, alg) == -1) {
		common_error_set(err, COMMON_E_INVALID, "public key type or "
		    "size is not supported (RSA 2048/3072/4096, ECDSA "
		    "P-256/P-384, Ed25519)");
		return -1;
	}
	if ((int)req->profile < 0 || req->profile >= CA_PROFILE__MAX) {
		common_error_set(err, COMMON_E_INVALID, "unknown profile");
		return -1;
	}
	if (req->origin == NULL || (strcmp(req->origin, "mgmt") != 0 &&
	    strcmp(req->origin, "acme") != 0 &&
	    strcmp(req->origin, "est") != 0)) {
		common_error_set(err, COMMON_E_INVALID, "origin must be mgmt, "
		    "acme or est");
		return -1;
	}
	if (req->nsans > 0 && req->sans == NULL) {
		common_error_set(err, COMMON_E_INVALID, "SANs are missing");
		return -1;
	}
	return 0;
}

/*
 * Adds the leaf extensions: constraints, usages, SANs, key ids, and the
 * CRL and caIssuers URLs of the CA version that signs.
 */
static int
issue_extensions(struct ca_ctx *ctx, X509 *x, const struct ca_issuer *is,
    const struct ca_issue_req *req, enum ca_key_alg alg,
    GENERAL_NAMES *gens, bool empty_subject)
{
	bool rsa = alg == CA_KEY_RSA2048 || alg == CA_KEY_RSA3072 ||
	    alg == CA_KEY_RSA4096;
	bool kenc = rsa && issue_profiles[req->profile].key_encipherment;

	pthread_once(&issue_exts_once, issue_exts_init);
	if (issue_ext_add(x, issue_ext_bc, NID_basic_constraints, ISSUE_BC) ==
	    -1)
		return -1;
	if (issue_ext_add(x, issue_ext_ku[kenc], NID_key_usage,
	    kenc ? ISSUE_KU_RSA : ISSUE_KU) == -1)
		return -1;
	if (issue_ext_add(x, issue_ext_eku[req->profile], NID_ext_key_usage,
	    issue_profiles[req->profile].eku) == -1)
		return -1;
	/* RFC 5280 4.2.1.6: critical when the subject is empty. */
	if (sk_GENERAL_NAME_num(gens) > 0 &&
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens,
	    empty_subject ? 1 : 0, X509V3_ADD_REPLACE) != 1) {
		log_err("certificate: SAN extension: %s", common_ssl_error());
		return -1;
	}
	if (ca_cert_add_key_ids(x, is->cert) == -1)
		return -1;
	if (is->cdp != NULL && is->aia != NULL)
		return X509_add_ext(x, is->cdp, -1) == 1 &&
		    X509_add_ext(x, is->aia, -1) == 1 ? 0 : -1;
	return ca_cert_add_urls_stem(x, ctx, is->crl_stem, is->cert_stem);
}

/* Records the certificate in `issued` under its serial hex, with the
 * CA version that signed it (its CRL is that version's key's). */
static int
issue_record(struct store_txn *txn, X509 *x, const char *serial,
    const char *ca_id, json_int_t ca_version, const struct ca_issue_req *req,
    struct common_error *err)
{
	unsigned char *der = NULL;
	size_t len = 0;
	char *b64 = NULL;
	json_t *rec = NULL;
	time_t na, nb;
	int rc = -1;

	if (common_asn1_time(X509_get0_notAfter(x), &na) == -1 ||
	    common_asn1_time(X509_get0_notBefore(x), &nb) == -1 ||
	    common_x509_to_der(x, &der, &len) == -1 ||
	    (b64 = common_b64_encode(der, len, false, 0)) == NULL)
		goto oom;
	/* not_before too, so that readers of the registry (ARI, EST,
	 * downloads) never decode the certificate for it */
	rec = json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:s,s:s,s:I}",
	    "serial", serial, "ca_id", ca_id, "origin", req->origin,
	    "cert_id", req->cert_id != NULL ? json_string(req->cert_id) :
	    json_null(), "version", (json_int_t)req->version,
	    "not_before", (json_int_t)nb,
	    "not_after", (json_int_t)na, "status", "valid", "der", b64,
	    "ca_version", ca_version);
	if (rec == NULL)
		goto oom;
	if (store_issued_put(txn, serial, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot record the "
		    "issued certificate");
		goto out;
	}
	rc = 0;
	goto out;
oom:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	json_decref(rec);
	free(b64);
	free(der);
	return rc;
}

/*
 * Issues a leaf certificate (see ca.h): request checks first, then the
 * CA (active, key matching its current certificate version), the policy
 * of the CA and its ancestors, the certificate itself, and its `issued`
 * record in txn.
 */
X509 *
ca_issue(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    const struct ca_issue_req *req, struct common_error *err)
{
	char serial[64], labels[ISSUE_ID_MAX + 8];
	enum ca_key_alg alg;
	X509_NAME *subj = NULL;
	GENERAL_NAMES *gens = NULL;
	struct ca_issuer *is = NULL;
	X509 *x = NULL, *result = NULL;
	bool empty;

	if (issue_check_req(req, &alg, err) == -1)
		goto out;
	if ((subj = ca_name_parse(req->subject, err)) == NULL)
		goto out;
	if ((gens = ca_sans_parse(req->sans, req->nsans, err)) == NULL)
		goto out;
	empty = X509_NAME_entry_count(subj) == 0;
	if (empty && sk_GENERAL_NAME_num(gens) == 0) {
		common_error_set(err, COMMON_E_INVALID, "a certificate needs a "
		    "subject or at least one SAN");
		goto out;
	}
	if ((is = ca_issuer_get(ctx, txn, ca_id, err)) == NULL)
		goto out;
	if (issue_policy(is, gens, err) == -1)
		goto out;

	if ((x = X509_new()) == NULL || X509_set_version(x, X509_VERSION_3) != 1)
		goto internal;
	if (ca_cert_serial(ca_ctx_store(ctx), txn, x, serial, sizeof(serial),
	    err) == -1)
		goto out;
	if (X509_set_subject_name(x, subj) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(is->cert)) != 1 ||
	    ca_cert_set_spki(x, req->pubkey, alg) == -1)
		goto internal;
	if (ca_cert_validity(x, req->validity_days, is->cert, err) == -1)
		goto out;
	if (issue_extensions(ctx, x, is, req, alg, gens, empty) == -1)
		goto internal;
	if (X509_sign(x, is->key, is->md) <= 0) {
		log_err("ca %s: sign certificate %s: %s", ca_id, serial,
		    common_ssl_error());
		goto internal;
	}
	if (issue_record(txn, x, serial, ca_id, is->version, req, err) == -1)
		goto out;
	snprintf(labels, sizeof(labels), "ca=\"%s\"", ca_id);
	common_metric_inc("pkid_certificates_issued_total", labels);
	log_info("ca %s: issued %s (%s, origin %s)", ca_id, serial,
	    ca_profile_name(req->profile), req->origin);
	result = x;	/* steal */
	x = NULL;
	goto out;
internal:
	common_error_set(err, COMMON_E_INTERNAL, "cannot build the "
	    "certificate");
out:
	X509_NAME_free(subj);
	GENERAL_NAMES_free(gens);
	ca_ctx_issuer_release(ctx, is);
	X509_free(x);
	return result;
}

/* Name of a GeneralName type, for refusals. */
static const char *
issue_gen_type_name(int type)
{
	switch (type) {
	case GEN_OTHERNAME:
		return "otherName";
	case GEN_X400:
		return "x400Address";
	case GEN_DIRNAME:
		return "directoryName";
	case GEN_EDIPARTY:
		return "ediPartyName";
	case GEN_RID:
		return "registeredID";
	default:
		return "unknown";
	}
}

/*
 * Verifies a CSR's self-signature and reads its subject and the SANs of
 * its extensionRequest as strings (IP addresses formatted). Other
 * GeneralName types are refused rather than silently dropped.
 */
int
ca_csr_parse(X509_REQ *csr, char **subject, json_t **sans,
    struct common_error *err)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gen;
	EVP_PKEY *pk;
	json_t *list = NULL;
	char *subj = NULL, *s;
	int i, type, crit = -1, rc = -1;

	*subject = NULL;
	*sans = NULL;
	if (csr == NULL || (pk = X509_REQ_get0_pubkey(csr)) == NULL) {
		common_error_set(err, COMMON_E_INVALID, "CSR has no usable "
		    "public key");
		goto out;
	}
	if (X509_REQ_verify(csr, pk) != 1) {
		common_error_set(err, COMMON_E_INVALID, "CSR signature does "
		    "not verify");
		goto out;
	}
	if ((subj = ca_name_string(X509_REQ_get_subject_name(csr))) == NULL ||
	    (list = json_array()) == NULL)
		goto oom;
	exts = X509_REQ_get_extensions(csr);
	if (exts != NULL)
		gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL && crit == -2) {
		common_error_set(err, COMMON_E_INVALID, "CSR has more than one "
		    "SAN extension");
		goto out;
	}
	if (gens == NULL && crit >= 0) {
		common_error_set(err, COMMON_E_INVALID, "CSR SAN extension is "
		    "malformed");
		goto out;
	}
	if (sk_GENERAL_NAME_num(gens) > CA_MAX_SANS) {
		common_error_set(err, COMMON_E_INVALID, "CSR has more than %d "
		    "SANs", CA_MAX_SANS);
		goto out;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		gen = sk_GENERAL_NAME_value(gens, i);
		GENERAL_NAME_get0_value(gen, &type);
		if (type != GEN_DNS && type != GEN_IPADD && type != GEN_EMAIL &&
		    type != GEN_URI) {
			common_error_set(err, COMMON_E_INVALID, "CSR SAN of "
			    "type %s is not supported (DNS, IP, email and URI "
			    "are)", issue_gen_type_name(type));
			goto out;
		}
		if ((s = ca_san_string(gen)) == NULL) {
			common_error_set(err, COMMON_E_INVALID, "CSR SAN %d is "
			    "malformed", i + 1);
			goto out;
		}
		if (json_array_append_new(list, json_string(s)) == -1) {
			free(s);
			goto oom;
		}
		free(s);
	}
	*subject = subj;	/* steal */
	subj = NULL;
	*sans = list;		/* steal */
	list = NULL;
	rc = 0;
	goto out;
oom:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	ERR_clear_error();
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	json_decref(list);
	free(subj);
	return rc;
}
