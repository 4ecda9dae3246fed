/*
 * ca/hierarchy.c — the CA hierarchy: creating roots, subordinates and
 * subordinates of an external parent (key, certificate or CSR, record),
 * activating the latter with the certificate their parent signed,
 * renewing CAs as new certificate versions, reading CA records, chain
 * bundles and the public CA certificate files.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include "ca/ca.h"

#define CA_ID_MAX	64	/* "ca-" + 16 hex, with room */
#define CA_ID_TRIES	8	/* fresh ids tried on a clash */
#define CA_DEPTH_MAX	32	/* parents followed before calling it a loop */
#define BUNDLE_MAX	(CA_CHAIN_MAX * 2 * 16 * 1024)	/* PEM bytes */
#define EXT_TEXT_MAX	64	/* openssl.cnf extension value */
#define TIME_TEXT_MAX	32
#define DAY_SECONDS	86400.0
#define HIER_FOREVER	((time_t)INT64_MAX)	/* a bundle with no expiring extra */

/* Key usage of every CA certificate (and requested in CA CSRs). */
#define CA_KEY_USAGE	"critical,keyCertSign,cRLSign,digitalSignature"

/* The record's integer field, or def when absent. */
static long long
hier_int(const json_t *rec, const char *field, long long def)
{
	const json_t *v = json_object_get(rec, field);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

/* Adds the fields derived from configuration to a copy of rec for API
 * callers: the URLs of its current CRL and certificate, key algorithm
 * and backend. */
static json_t *
hier_public(const struct ca_ctx *ctx, json_t *rec)
{
	char url[PATH_MAX];
	const char *id = json_string_value(json_object_get(rec, "id"));
	const json_t *key = json_object_get(rec, "key");

	char stem[CA_FILE_NAME_MAX];

	if (id == NULL)
		return rec;
	if (ca_crl_stem(rec, 0, stem, sizeof(stem)) == 0 &&
	    common_path(url, sizeof(url), "%s/crl/%s.crl",
	    ca_ctx_base_url(ctx), stem) == 0)
		json_object_set_new(rec, "crl_url", json_string(url));
	if (common_path(url, sizeof(url), "%s/ca/%s.crt",
	    ca_ctx_base_url(ctx), id) == 0)
		json_object_set_new(rec, "ca_cert_url", json_string(url));
	if (json_is_object(key)) {
		json_object_set(rec, "key_algorithm",
		    json_object_get(key, "algorithm"));
		json_object_set(rec, "key_backend",
		    json_object_get(key, "backend"));
	}
	return rec;
}

/* Writes DATA/public/ca/<stem>.crt (DER, 0644); the stem is the CA id or
 * "<ca-id>-v<n>". */
static int
hier_publish_cert(const struct ca_ctx *ctx, const char *stem, X509 *x)
{
	char dir[PATH_MAX], path[PATH_MAX];
	unsigned char *der = NULL;
	size_t len = 0;
	int rc = -1;

	if (common_path(dir, sizeof(dir), "%s/public/ca",
	    ca_ctx_data_dir(ctx)) == -1 ||
	    common_path(path, sizeof(path), "%s/%s.crt", dir, stem) == -1)
		goto out;
	if (common_mkdirs(dir, 0755) == -1) {
		log_err("ca %s: publish certificate: mkdir %s: %s", stem, dir,
		    strerror(errno));
		goto out;
	}
	if (common_x509_to_der(x, &der, &len) == -1)
		goto out;
	if (common_file_write(path, der, len, 0644) == -1) {
		log_err("ca %s: publish certificate %s: %s", stem, path,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(der);
	return rc;
}

/*
 * Publishes the certificates of a (migrated) record: every version at
 * DATA/public/ca/<ca-id>-v<n>.crt, the current one also at <ca-id>.crt
 * (see ca.h). -1 if any file failed (the others are still written).
 */
static int
hier_publish_rec(const struct ca_ctx *ctx, const json_t *rec)
{
	char stem[CA_FILE_NAME_MAX];
	const char *id = json_string_value(json_object_get(rec, "id"));
	const json_t *v;
	X509 *x;
	size_t i;
	int rc = 0;

	if (id == NULL)
		return -1;
	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		if ((x = ca_record_cert(v)) == NULL ||
		    common_path(stem, sizeof(stem), "%s-v%lld", id,
		    (long long)json_integer_value(json_object_get(v,
		    "version"))) == -1) {
			log_err("ca %s: publish: unreadable certificate "
			    "version", id);
			X509_free(x);
			rc = -1;
			continue;
		}
		if (hier_publish_cert(ctx, stem, x) == -1)
			rc = -1;
		X509_free(x);
	}
	if ((x = ca_record_cert(rec)) == NULL) {
		log_err("ca %s: publish: unreadable certificate", id);
		return -1;
	}
	if (hier_publish_cert(ctx, id, x) == -1)
		rc = -1;
	X509_free(x);
	return rc;
}

/*
 * Builds and signs a CA certificate for key with subject subj: self-
 * signed when issuer is NULL (signer is then key itself), else signed by
 * issuer/signer (the current version of the CA record issuer_rec) with
 * that version's CRL and AIA URLs. Returns the certificate or NULL with
 * err.
 */
static X509 *
hier_ca_cert(struct ca_ctx *ctx, struct store_txn *txn, X509_NAME *subj,
    EVP_PKEY *key, X509 *issuer, EVP_PKEY *signer, const json_t *issuer_rec,
    double days, int path_len, struct common_error *err)
{
	char bc[EXT_TEXT_MAX], serial[64];
	char crl_stem[CA_FILE_NAME_MAX], cert_stem[CA_FILE_NAME_MAX];
	X509 *x = NULL, *result = NULL;
	const EVP_MD *md;

	if ((x = X509_new()) == NULL || X509_set_version(x, X509_VERSION_3) != 1)
		goto internal;
	if (ca_cert_serial(ca_ctx_store(ctx), txn, x, serial, sizeof(serial),
	    err) == -1)
		goto out;
	if (X509_set_subject_name(x, subj) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : subj) != 1 ||
	    X509_set_pubkey(x, key) != 1)
		goto internal;
	if (ca_cert_validity(x, days, issuer, err) == -1)
		goto out;
	if (path_len >= 0)
		snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d",
		    path_len);
	else
		snprintf(bc, sizeof(bc), "critical,CA:TRUE");
	if (ca_cert_add_ext(x, NID_basic_constraints, bc) == -1 ||
	    ca_cert_add_ext(x, NID_key_usage, CA_KEY_USAGE) == -1 ||
	    ca_cert_add_key_ids(x, issuer) == -1)
		goto internal;
	if (issuer != NULL && (ca_crl_stem(issuer_rec, 0, crl_stem,
	    sizeof(crl_stem)) == -1 || ca_cert_stem(issuer_rec, 0, cert_stem,
	    sizeof(cert_stem)) == -1 ||
	    ca_cert_add_urls_stem(x, ctx, crl_stem, cert_stem) == -1))
		goto internal;
	if ((md = ca_sign_md(signer)) == NULL || X509_sign(x, signer, md) <= 0) {
		log_err("ca certificate %s: sign: %s", serial,
		    common_ssl_error());
		goto internal;
	}
	result = x;	/* steal */
	x = NULL;
	goto out;
internal:
	common_error_set(err, COMMON_E_INTERNAL, "cannot build the CA "
	    "certificate");
out:
	X509_free(x);
	return result;
}

/* Appends an extension in openssl.cnf syntax to a request's list. */
static int
hier_req_ext(STACK_OF(X509_EXTENSION) *exts, X509V3_CTX *v3, int nid,
    const char *value)
{
	X509_EXTENSION *ext;

	if ((ext = X509V3_EXT_nconf_nid(NULL, v3, nid, value)) == NULL)
		return -1;
	if (sk_X509_EXTENSION_push(exts, ext) <= 0) {
		X509_EXTENSION_free(ext);
		return -1;
	}
	return 0;
}

/*
 * PKCS#10 request (PEM, to free()) for a subordinate-of-external CA: its
 * subject and key, asking for basicConstraints CA:TRUE (with pathlen)
 * and the CA key usage, self-signed with the CA key.
 */
static char *
hier_ca_csr(X509_NAME *subj, EVP_PKEY *key, int path_len,
    struct common_error *err)
{
	char bc[EXT_TEXT_MAX];
	X509_REQ *req = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509V3_CTX v3;
	BIO *bio = NULL;
	char *data, *pem = NULL;
	const EVP_MD *md;
	long n;

	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, subj) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL)
		goto internal;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, NULL, NULL, req, NULL, 0);
	if (path_len >= 0)
		snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d",
		    path_len);
	else
		snprintf(bc, sizeof(bc), "critical,CA:TRUE");
	if (hier_req_ext(exts, &v3, NID_basic_constraints, bc) == -1 ||
	    hier_req_ext(exts, &v3, NID_key_usage, CA_KEY_USAGE) == -1 ||
	    X509_REQ_add_extensions(req, exts) != 1)
		goto internal;
	if ((md = ca_sign_md(key)) == NULL || X509_REQ_sign(req, key, md) <= 0)
		goto internal;
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509_REQ(bio, req) != 1)
		goto internal;
	n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || (pem = malloc((size_t)n + 1)) == NULL)
		goto internal;
	memcpy(pem, data, (size_t)n);
	pem[n] = '\0';
	goto out;
internal:
	log_err("ca csr: %s", common_ssl_error());
	common_error_set(err, COMMON_E_INTERNAL, "cannot build the CA CSR");
out:
	BIO_free(bio);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return pem;
}

/* Checks the request fields that need no store access. */
static int
hier_check_req(const struct ca_create_req *req, struct common_error *err)
{
	const char *p;
	bool sub;

	if (req->name == NULL || req->name[0] == '\0' ||
	    strlen(req->name) > CA_NAME_MAX) {
		common_error_set(err, COMMON_E_INVALID, "name is required "
		    "(1..%d bytes)", CA_NAME_MAX);
		return -1;
	}
	for (p = req->name; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			common_error_set(err, COMMON_E_INVALID, "name contains "
			    "control characters");
			return -1;
		}
	}
	if (req->type == NULL || (strcmp(req->type, "root") != 0 &&
	    strcmp(req->type, "subordinate") != 0 &&
	    strcmp(req->type, "subordinate-of-external") != 0)) {
		common_error_set(err, COMMON_E_INVALID, "type must be root, "
		    "subordinate or subordinate-of-external");
		return -1;
	}
	sub = strcmp(req->type, "subordinate") == 0;
	if (sub && (req->issuer_ca_id == NULL || req->issuer_ca_id[0] == '\0')) {
		common_error_set(err, COMMON_E_INVALID, "issuer_ca_id is "
		    "required for a subordinate CA");
		return -1;
	}
	if (!sub && req->issuer_ca_id != NULL && req->issuer_ca_id[0] != '\0') {
		common_error_set(err, COMMON_E_INVALID, "issuer_ca_id is only "
		    "for subordinate CAs");
		return -1;
	}
	if (req->subject == NULL || req->subject[0] == '\0') {
		common_error_set(err, COMMON_E_INVALID, "subject is required");
		return -1;
	}
	if ((int)req->key_alg < 0 || req->key_alg >= CA_KEY__MAX ||
	    !ca_key_alg_ca_allowed(req->key_alg)) {
		common_error_set(err, COMMON_E_INVALID, "key_algorithm %s "
		    "cannot be used for a CA (use RSA2048, RSA3072, RSA4096, "
		    "ECDSA_P256 or ECDSA_P384)", ca_key_alg_name(req->key_alg));
		return -1;
	}
	if (!isfinite(req->validity_days) || req->validity_days < 0 ||
	    req->validity_days > CA_MAX_VALIDITY_DAYS) {
		common_error_set(err, COMMON_E_INVALID, "validity_days must be "
		    "> 0 and <= %.0f", CA_MAX_VALIDITY_DAYS);
		return -1;
	}
	if (req->path_len < -1 || req->path_len > CA_PATH_LEN_MAX) {
		common_error_set(err, COMMON_E_INVALID, "path_len must be "
		    "-1 (none) or 0..%d", CA_PATH_LEN_MAX);
		return -1;
	}
	return 0;
}

/*
 * The issuer of a new subordinate: active, allowed to sign CAs by its
 * path length. Adjusts *path_len (none under an issuer with n becomes
 * n - 1). Returns the issuer record with its certificate and key, or
 * NULL with err.
 */
static json_t *
hier_issuer(struct ca_ctx *ctx, struct store_txn *txn, const char *id,
    int *path_len, X509 **cert, EVP_PKEY **key, struct common_error *err)
{
	json_t *rec;
	const char *state;
	long long ipl;

	if (!common_id_valid(id) ||
	    (rec = store_ca_get(ca_ctx_store(ctx), txn, id)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "issuer CA %s not "
		    "found", id);
		return NULL;
	}
	state = json_string_value(json_object_get(rec, "state"));
	if (state != NULL && strcmp(state, "disabled") == 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is disabled",
		    id);
		json_decref(rec);
		return NULL;
	}
	if (state != NULL && strcmp(state, "pending_deletion") == 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is scheduled "
		    "for deletion", id);
		json_decref(rec);
		return NULL;
	}
	if (state == NULL || strcmp(state, "active") != 0) {
		common_error_set(err, COMMON_E_CONFLICT, "issuer CA %s is %s, "
		    "not active", id, state != NULL ? state : "in no state");
		json_decref(rec);
		return NULL;
	}
	ipl = hier_int(rec, "path_len", -1);
	json_decref(rec);
	if (ipl == 0) {
		common_error_set(err, COMMON_E_POLICY, "issuer CA %s has "
		    "path_len 0: it may not sign subordinate CAs", id);
		return NULL;
	}
	if (ipl > 0) {
		if (*path_len < 0)
			*path_len = (int)(ipl - 1);
		else if (*path_len >= ipl) {
			common_error_set(err, COMMON_E_POLICY, "path_len %d "
			    "must be less than the path_len %lld of issuer "
			    "CA %s", *path_len, ipl, id);
			return NULL;
		}
	}
	return ca_active_get(ctx, txn, id, cert, key, err);
}

/* A CA id not yet in the store, into out. */
static int
hier_new_id(struct ca_ctx *ctx, struct store_txn *txn, char *out,
    size_t outlen)
{
	json_t *rec;
	int tries;

	for (tries = 0; tries < CA_ID_TRIES; tries++) {
		if (common_random_id("ca-", out, outlen) == -1)
			return -1;
		if ((rec = store_ca_get(ca_ctx_store(ctx), txn, out)) == NULL)
			return 0;
		json_decref(rec);
	}
	return -1;
}

/*
 * Creates a CA inside txn (see ca.h). The key is generated by the backend
 * first and removed again when anything after it fails, so a refused
 * request leaves no key behind; the public certificate file is written
 * at once (it is public, and rewritten by ca_publish_certs at start).
 */
json_t *
ca_create(struct ca_ctx *ctx, struct store_txn *txn,
    const struct ca_create_req *req, struct common_error *err)
{
	char id[CA_ID_MAX], now[TIME_TEXT_MAX];
	const struct ca_keystore_type *ks = NULL;
	const char *backend;
	X509_NAME *subj = NULL;
	X509 *icert = NULL, *x = NULL;
	EVP_PKEY *ikey = NULL, *key = NULL;
	json_t *issuer = NULL, *policy = NULL, *rec = NULL, *result = NULL;
	json_t *v = NULL;
	char *handle = NULL, *subject = NULL, *csr = NULL;
	bool root, external;
	double days;
	int path_len;

	if (req == NULL) {
		common_error_set(err, COMMON_E_INVALID, "no request");
		goto out;
	}
	if (hier_check_req(req, err) == -1)
		goto out;
	backend = req->key_backend != NULL && req->key_backend[0] != '\0' ?
	    req->key_backend : "file";
	if ((ks = ca_keystore_find(backend)) == NULL) {
		common_error_set(err, COMMON_E_INVALID, "key backend %s is not "
		    "available", backend);
		goto out;
	}
	if ((subj = ca_name_parse(req->subject, err)) == NULL)
		goto out;
	if ((policy = ca_policy_normalize(req->policy, err)) == NULL)
		goto out;
	root = strcmp(req->type, "root") == 0;
	external = strcmp(req->type, "subordinate-of-external") == 0;
	days = req->validity_days;
	if (days == 0)
		days = root ? CA_ROOT_VALIDITY_DEFAULT : CA_SUB_VALIDITY_DEFAULT;
	path_len = req->path_len;
	if (!root && !external && (issuer = hier_issuer(ctx, txn,
	    req->issuer_ca_id, &path_len, &icert, &ikey, err)) == NULL)
		goto out;
	if (hier_new_id(ctx, txn, id, sizeof(id)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "no free CA id");
		goto out;
	}

	if (ks->generate(ctx, req->key_alg, &handle, &key) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot create the "
		    "key of the CA");
		goto out;
	}
	if (external) {
		if ((csr = hier_ca_csr(subj, key, path_len, err)) == NULL)
			goto out;
	} else if ((x = hier_ca_cert(ctx, txn, subj, key, icert,
	    root ? key : ikey, issuer, days, path_len, err)) == NULL)
		goto out;

	if ((subject = ca_name_string(subj)) == NULL)
		goto oom;
	common_time_rfc3339(common_now(), now, sizeof(now));
	rec = json_pack("{s:s,s:s,s:s,s:o,s:s,s:{s:s,s:s,s:s},s:s,s:i,s:i,"
	    "s:O,s:s,s:[],s:i}",
	    "id", id, "name", req->name, "type", req->type,
	    "parent_id", root || external ? json_null() :
	    json_string(req->issuer_ca_id),
	    "state", external ? "pending" : "active",
	    "key", "backend", ks->name, "handle", handle, "algorithm",
	    ca_key_alg_name(req->key_alg),
	    "subject", subject, "path_len", path_len, "crl_number", 0,
	    "policy", policy, "created_at", now, "versions",
	    "current_version", 0);
	if (rec == NULL)
		goto oom;
	if (external) {
		if (json_object_set_new(rec, "csr", json_string(csr)) == -1)
			goto oom;
	} else if ((v = ca_version_entry(x, 1, json_object_get(rec,
	    "key"))) == NULL || ca_record_add_version(rec, v) == -1)
		goto oom;
	if (ca_record_store(ctx, txn, id, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot store the CA");
		goto out;
	}
	if (ca_ctx_cache_put(ctx, id, json_object_get(rec, "key"), key) == -1)
		log_warn("ca %s: key not cached (out of memory)", id);
	if (x != NULL)
		(void)hier_publish_rec(ctx, rec);
	log_info("ca %s: created %s CA \"%s\" (%s, %s)%s", id, req->type,
	    subject, ca_key_alg_name(req->key_alg), ks->name,
	    external ? ", pending its external certificate" : "");
	result = hier_public(ctx, rec);	/* steal */
	rec = NULL;
	goto out;
oom:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	if (result == NULL && handle != NULL)
		(void)ks->remove(ctx, handle);
	X509_NAME_free(subj);
	X509_free(icert);
	X509_free(x);
	EVP_PKEY_free(ikey);
	EVP_PKEY_free(key);
	json_decref(issuer);
	json_decref(policy);
	json_decref(rec);
	json_decref(v);
	free(handle);
	free(subject);
	free(csr);
	return result;
}

/* PEM text of the certificates in chain (to free()); "" for none. */
static char *
hier_chain_pem(STACK_OF(X509) *chain)
{
	struct common_buf b;
	char *pem;
	int i;

	common_buf_init(&b, BUNDLE_MAX);
	if (common_buf_addstr(&b, "") == -1)
		return NULL;
	for (i = 0; i < sk_X509_num(chain); i++) {
		if ((pem = common_x509_to_pem(sk_X509_value(chain, i))) ==
		    NULL || common_buf_addstr(&b, pem) == -1) {
			free(pem);
			common_buf_free(&b);
			return NULL;
		}
		free(pem);
	}
	return common_buf_steal(&b, NULL);
}

/*
 * Verifies cert against the external chain: a self-signed certificate in
 * the chain is the trust anchor (the others untrusted intermediates);
 * without one the chain's certificates are trusted as a partial chain,
 * which still checks every signature up to the topmost given.
 */
static int
hier_verify_chain(X509 *cert, STACK_OF(X509) *chain, const char *ca_id,
    struct common_error *err)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *sctx = NULL;
	STACK_OF(X509) *untrusted = NULL;
	X509 *c;
	bool anchored = false;
	int i, rc = -1;

	if ((store = X509_STORE_new()) == NULL ||
	    (sctx = X509_STORE_CTX_new()) == NULL ||
	    (untrusted = sk_X509_new_null()) == NULL)
		goto internal;
	for (i = 0; i < sk_X509_num(chain); i++) {
		c = sk_X509_value(chain, i);
		if (X509_self_signed(c, 1) == 1) {
			if (X509_STORE_add_cert(store, c) != 1)
				goto internal;
			anchored = true;
		} else if (sk_X509_push(untrusted, c) <= 0)
			goto internal;
	}
	if (!anchored) {
		for (i = 0; i < sk_X509_num(untrusted); i++)
			if (X509_STORE_add_cert(store,
			    sk_X509_value(untrusted, i)) != 1)
				goto internal;
		X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	}
	if (X509_STORE_CTX_init(sctx, store, cert, untrusted) != 1)
		goto internal;
	X509_STORE_CTX_set_time(sctx, 0, common_now());
	if (X509_verify_cert(sctx) != 1) {
		common_error_set(err, COMMON_E_INVALID, "certificate does not "
		    "verify against the given chain: %s",
		    X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(sctx)));
		log_info("ca %s: import refused: chain verification: %s",
		    ca_id, X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(sctx)));
		goto out;
	}
	rc = 0;
	goto out;
internal:
	common_error_set(err, COMMON_E_INTERNAL, "cannot verify the chain");
out:
	ERR_clear_error();
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	return rc;
}

/* Checks that cert can be the certificate of the pending CA rec. */
static int
hier_check_import(struct ca_ctx *ctx, const json_t *rec, X509 *cert,
    struct common_error *err)
{
	const char *id = json_string_value(json_object_get(rec, "id"));
	const char *csr_pem = json_string_value(json_object_get(rec, "csr"));
	X509_REQ *csr = NULL;
	EVP_PKEY *key = NULL;
	char *want = NULL, *got = NULL;
	uint32_t flags;
	time_t na;
	int rc = -1;

	if ((key = ca_ctx_ca_key(ctx, rec, err)) == NULL)
		goto out;
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
		common_error_set(err, COMMON_E_INVALID, "certificate does not "
		    "match the key of CA %s (its CSR)", id);
		goto out;
	}
	flags = X509_get_extension_flags(cert);
	if (!(flags & EXFLAG_BCONS) || !(flags & EXFLAG_CA) ||
	    !(flags & EXFLAG_KUSAGE) ||
	    !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
		common_error_set(err, COMMON_E_INVALID, "certificate is not a "
		    "CA certificate (needs basicConstraints CA:TRUE and "
		    "keyUsage keyCertSign)");
		goto out;
	}
	if (csr_pem == NULL ||
	    (csr = common_csr_from_pem(csr_pem, strlen(csr_pem))) == NULL) {
		log_err("ca %s: pending record holds no readable CSR", id);
		common_error_set(err, COMMON_E_INTERNAL, "CA %s has no "
		    "readable CSR", id);
		goto out;
	}
	if (X509_NAME_cmp(X509_get_subject_name(cert),
	    X509_REQ_get_subject_name(csr)) != 0) {
		want = ca_name_string(X509_REQ_get_subject_name(csr));
		got = ca_name_string(X509_get_subject_name(cert));
		common_error_set(err, COMMON_E_INVALID, "certificate subject "
		    "\"%s\" differs from the CSR subject \"%s\"",
		    got != NULL ? got : "?", want != NULL ? want : "?");
		goto out;
	}
	if (common_asn1_time(X509_get0_notAfter(cert), &na) == -1 ||
	    na <= common_now()) {
		common_error_set(err, COMMON_E_INVALID, "certificate has "
		    "expired");
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	free(want);
	free(got);
	return rc;
}

/*
 * Activates a pending subordinate-of-external CA: the certificate must
 * carry the CA's key and the CSR's subject and be a CA certificate; a
 * given chain (the certificate itself may be repeated in it) must verify
 * it and is kept for bundles. The CA's path_len becomes the one the
 * external parent actually granted.
 */
int
ca_import_cert(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    const char *cert_pem, const char *chain_pem, struct common_error *err)
{
	json_t *rec = NULL, *v = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL;
	const char *state;
	char *chain_text = NULL;
	int i, rc = -1;

	if ((rec = ca_record_load(ctx, txn, ca_id)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "CA %s not found",
		    ca_id != NULL ? ca_id : "(none)");
		goto out;
	}
	state = json_string_value(json_object_get(rec, "state"));
	if (state == NULL || strcmp(state, "pending") != 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is %s; only a "
		    "pending CA takes a certificate", ca_id,
		    state != NULL ? state : "in no state");
		goto out;
	}
	if (cert_pem == NULL || (cert = common_x509_from_pem(cert_pem,
	    strlen(cert_pem))) == NULL) {
		common_error_set(err, COMMON_E_INVALID, "certificate is "
		    "missing or not one PEM certificate");
		goto out;
	}
	if (hier_check_import(ctx, rec, cert, err) == -1)
		goto out;
	if (chain_pem != NULL && chain_pem[0] != '\0') {
		if ((chain = common_x509s_from_pem(chain_pem, strlen(chain_pem),
		    CA_CHAIN_MAX)) == NULL) {
			common_error_set(err, COMMON_E_INVALID, "chain is not "
			    "PEM certificates or has more than %d",
			    CA_CHAIN_MAX);
			goto out;
		}
		/* A pasted full chain may repeat the certificate itself. */
		for (i = sk_X509_num(chain) - 1; i >= 0; i--) {
			if (X509_cmp(sk_X509_value(chain, i), cert) == 0)
				X509_free(sk_X509_delete(chain, i));
		}
		if (sk_X509_num(chain) > 0 &&
		    hier_verify_chain(cert, chain, ca_id, err) == -1)
			goto out;
		if ((chain_text = hier_chain_pem(chain)) == NULL)
			goto oom;
	}
	if (json_array_size(json_object_get(rec, "versions")) != 0) {
		log_err("ca %s: pending record already holds versions", ca_id);
		common_error_set(err, COMMON_E_INTERNAL, "CA %s record is "
		    "corrupt", ca_id);
		goto out;
	}
	if ((v = ca_version_entry(cert, 1, json_object_get(rec, "key"))) ==
	    NULL || ca_record_add_version(rec, v) == -1 ||
	    json_object_set_new(rec, "state", json_string("active")) == -1 ||
	    json_object_set_new(rec, "path_len",
	    json_integer(X509_get_pathlen(cert))) == -1)
		goto oom;
	if (chain_text != NULL && chain_text[0] != '\0' &&
	    json_object_set_new(rec, "chain", json_string(chain_text)) == -1)
		goto oom;
	json_object_del(rec, "csr");
	if (ca_record_store(ctx, txn, ca_id, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot store the CA");
		goto out;
	}
	(void)hier_publish_rec(ctx, rec);
	log_info("ca %s: activated with its external certificate", ca_id);
	rc = 0;
	goto out;
oom:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	json_decref(rec);
	json_decref(v);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	free(chain_text);
	return rc;
}

/* The CA record (with its versions) plus its derived URLs, key algorithm
 * and backend. */
json_t *
ca_get(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	json_t *rec;

	if ((rec = ca_record_load(ctx, txn, ca_id)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "CA %s not found",
		    ca_id != NULL ? ca_id : "(none)");
		return NULL;
	}
	return hier_public(ctx, rec);
}

/* Existence without decoding the record when the CA's issuer is cached
 * (the caches never outlive a deletion: see ctx.c). */
bool
ca_exists(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id)
{
	struct ca_issuer *is;
	json_t *rec;

	if ((is = ca_ctx_issuer_get(ctx, txn, ca_id)) != NULL) {
		ca_ctx_issuer_release(ctx, is);
		return true;
	}
	if ((rec = ca_record_load(ctx, txn, ca_id)) == NULL)
		return false;
	json_decref(rec);
	return true;
}

/* Every CA record (as ca_get shows them), or NULL on a store failure. */
json_t *
ca_list(struct ca_ctx *ctx, struct store_txn *txn)
{
	json_t *list, *rec;
	uint64_t gen = ca_ctx_ca_gen(ctx);
	size_t i;

	if ((list = store_ca_list(ca_ctx_store(ctx), txn)) == NULL)
		return NULL;
	ca_ctx_ca_settle(ctx, txn, NULL, gen);
	json_array_foreach(list, i, rec) {
		if (ca_record_migrate(rec) == -1) {
			json_decref(list);
			return NULL;
		}
		hier_public(ctx, rec);
	}
	return list;
}

/* Appends pem to b, with a final newline if it lacks one. */
static int
hier_bundle_add(struct common_buf *b, const char *pem)
{
	size_t n = strlen(pem);

	if (common_buf_add(b, pem, n) == -1)
		return -1;
	if (n > 0 && pem[n - 1] != '\n')
		return common_buf_addstr(b, "\n");
	return 0;
}

/* True when the certificate PEM of version v has not expired at now;
 * its notAfter then goes to *na. */
static bool
hier_version_valid(const json_t *v, time_t now, time_t *na)
{
	X509 *x;
	bool ok;

	if ((x = ca_record_cert(v)) == NULL)
		return false;
	ok = common_asn1_time(X509_get0_notAfter(x), na) == 0 && *na > now;
	X509_free(x);
	return ok;
}

/*
 * The version of rec on a certification path: the current one when
 * child is NULL, else the one that issued child (name and key id match),
 * preferring the current version, then the newest. The current version
 * when none matches (a chain pkid did not build). Its number goes to
 * *picked, its PEM text (borrowed from rec) to *src; NULL when the record
 * holds no readable certificate.
 */
static X509 *
hier_path_cert(const json_t *rec, X509 *child, json_int_t *picked,
    const char **src)
{
	json_int_t cur = json_integer_value(json_object_get(rec,
	    "current_version")), num, best = 0;
	const json_t *v;
	X509 *x, *found = NULL;
	size_t i;

	*picked = cur;
	*src = json_string_value(json_object_get(rec, "certificate"));
	if (child != NULL) {
		json_array_foreach(json_object_get(rec, "versions"), i, v) {
			num = json_integer_value(json_object_get(v,
			    "version"));
			if ((x = ca_record_cert(v)) == NULL)
				continue;
			/* Once the current version matched it stays. */
			if (X509_check_issued(x, child) == X509_V_OK &&
			    (found == NULL || (best != cur && (num == cur ||
			    num > best)))) {
				X509_free(found);
				found = x;
				best = num;
				*src = json_string_value(json_object_get(v,
				    "certificate"));
			} else
				X509_free(x);
		}
		ERR_clear_error();
		if (found != NULL) {
			*picked = best;
			return found;
		}
	}
	return ca_record_cert(rec);
}

/* Adds to extra the still-valid versions of rec other than skip, and
 * lowers *until to the first time one of them expires. */
static int
hier_bundle_extra(struct common_buf *extra, const json_t *rec,
    json_int_t skip, time_t now, time_t *until)
{
	const json_t *v;
	const char *pem;
	time_t na;
	size_t i;

	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		if (json_integer_value(json_object_get(v, "version")) == skip ||
		    (pem = json_string_value(json_object_get(v,
		    "certificate"))) == NULL || !hier_version_valid(v, now,
		    &na))
			continue;
		if (hier_bundle_add(extra, pem) == -1)
			return -1;
		if (na < *until)
			*until = na;
	}
	return 0;
}

/*
 * The certification path of ca_id, from its current certificate up to
 * the top (each parent's version that signed the level below, and the
 * external chain of a subordinate-of-external CA), then, when extras is
 * set, the still-valid certificates of the other versions of every level
 * (the overlap after a renewal, during which certificates signed under
 * older versions are still in use). At most CA_DEPTH_MAX levels, so a
 * corrupt parent loop ends. *until is set to the time the text changes
 * by itself (an extra version expires; else HIER_FOREVER).
 */
static char *
hier_bundle(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    bool extras, time_t now, time_t *until, struct common_error *err)
{
	struct common_buf b, extra;
	json_t *rec = NULL;
	const char *chain, *parent, *id = ca_id;
	char next[CA_ID_MAX], *pem = NULL, *tail = NULL, *result = NULL;
	X509 *child = NULL, *x;
	json_int_t picked;
	const char *src;
	int depth;

	*until = HIER_FOREVER;
	common_buf_init(&b, BUNDLE_MAX);
	common_buf_init(&extra, BUNDLE_MAX);
	for (depth = 0; depth < CA_DEPTH_MAX; depth++) {
		if ((rec = ca_record_load(ctx, txn, id)) == NULL) {
			if (depth == 0)
				common_error_set(err, COMMON_E_NOTFOUND,
				    "CA %s not found", id != NULL ? id :
				    "(none)");
			else {
				log_err("ca %s: parent CA %s is missing",
				    ca_id, id);
				common_error_set(err, COMMON_E_INTERNAL,
				    "parent CA %s is missing", id);
			}
			goto out;
		}
		if (json_string_value(json_object_get(rec, "certificate")) ==
		    NULL) {
			common_error_set(err, COMMON_E_CONFLICT, "CA %s has no "
			    "certificate yet (pending)", id);
			goto out;
		}
		x = hier_path_cert(rec, child, &picked, &src);
		/* x's PEM as common_x509_to_pem() writes it, kept with
		 * the parsed certificate */
		X509_free(ca_cert_cached(src, &pem));
		if (x == NULL || pem == NULL) {
			X509_free(x);
			log_err("ca %s: record holds no readable certificate",
			    id);
			common_error_set(err, COMMON_E_INTERNAL, "CA %s has no "
			    "readable certificate", id);
			goto out;
		}
		X509_free(child);
		child = x;
		chain = json_string_value(json_object_get(rec, "chain"));
		if (hier_bundle_add(&b, pem) == -1 ||
		    (chain != NULL && hier_bundle_add(&b, chain) == -1) ||
		    (extras && hier_bundle_extra(&extra, rec, picked,
		    now, until) == -1)) {
			common_error_set(err, COMMON_E_INTERNAL, "bundle of CA "
			    "%s is too large", ca_id);
			goto out;
		}
		free(pem);
		pem = NULL;
		parent = json_string_value(json_object_get(rec, "parent_id"));
		if (parent == NULL) {
			if ((tail = common_buf_steal(&extra, NULL)) == NULL ||
			    (tail[0] != '\0' && common_buf_addstr(&b, tail) ==
			    -1) || (result = common_buf_steal(&b, NULL)) ==
			    NULL)
				common_error_set(err, COMMON_E_INTERNAL,
				    "bundle of CA %s is too large", ca_id);
			goto out;
		}
		if (common_path(next, sizeof(next), "%s", parent) == -1)
			break;
		json_decref(rec);
		rec = NULL;
		id = next;
	}
	log_err("ca %s: parent chain is longer than %d or loops", ca_id,
	    CA_DEPTH_MAX);
	common_error_set(err, COMMON_E_INTERNAL, "CA hierarchy of %s is "
	    "corrupt", ca_id);
out:
	json_decref(rec);
	X509_free(child);
	common_buf_free(&b);
	common_buf_free(&extra);
	free(pem);
	free(tail);
	return result;
}

/*
 * The path, then the other still-valid versions of every level: every
 * issuance hands it out as the chain, so it is cached per CA until a CA
 * record changes or one of its versions expires (see ctx.c).
 */
char *
ca_bundle_pem(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	time_t now = common_now(), until;
	uint64_t gen;
	char *pem;

	if ((pem = ca_ctx_bundle_get(ctx, txn, ca_id, now)) != NULL)
		return pem;
	gen = ca_ctx_ca_gen(ctx);
	if ((pem = hier_bundle(ctx, txn, ca_id, true, now, &until, err)) !=
	    NULL)
		ca_ctx_bundle_put(ctx, txn, ca_id, pem, until, gen);
	return pem;
}

/* The certification path only. */
char *
ca_chain_pem(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	time_t until;

	return hier_bundle(ctx, txn, ca_id, false, common_now(), &until, err);
}

/* Rewrites the registered trust bundle file (if any) from the store. */
static int
hier_trust_bundle(struct ca_ctx *ctx)
{
	struct common_error err;
	char id[CA_ID_MAX], path[PATH_MAX], *pem;
	int rc = -1;

	if (ca_ctx_trust_bundle_get(ctx, id, sizeof(id), path,
	    sizeof(path)) == -1)
		return 0;
	common_error_clear(&err);
	if ((pem = ca_bundle_pem(ctx, NULL, id, &err)) == NULL) {
		log_err("ca %s: trust bundle %s: %s", id, path, err.msg);
		return -1;
	}
	if (common_file_write(path, pem, strlen(pem), 0644) == -1)
		log_err("ca %s: trust bundle %s: %s", id, path,
		    strerror(errno));
	else
		rc = 0;
	free(pem);
	return rc;
}

/*
 * Rewrites the public certificate files of every CA that has a
 * certificate (active, disabled or scheduled for deletion: certificates
 * they signed are still checked against them), and the registered trust
 * bundle; -1 if any failed (the others are still written).
 */
int
ca_publish_certs(struct ca_ctx *ctx)
{
	json_t *list, *rec;
	const char *id, *state;
	uint64_t gen = ca_ctx_ca_gen(ctx);
	size_t i;
	int rc = 0;

	if ((list = store_ca_list(ca_ctx_store(ctx), NULL)) == NULL) {
		log_err("ca: publish certificates: cannot list CAs");
		return -1;
	}
	ca_ctx_ca_settle(ctx, NULL, NULL, gen);
	json_array_foreach(list, i, rec) {
		id = json_string_value(json_object_get(rec, "id"));
		state = json_string_value(json_object_get(rec, "state"));
		if (id == NULL || state == NULL || strcmp(state, "pending") == 0)
			continue;
		if (ca_record_migrate(rec) == -1 ||
		    hier_publish_rec(ctx, rec) == -1)
			rc = -1;
	}
	json_decref(list);
	if (hier_trust_bundle(ctx) == -1)
		rc = -1;
	return rc;
}

/* ---- renewal ---- */

/* Checks a renewal request and the CA it names: a CA pkid signs (not
 * subordinate-of-external) that is active or disabled. */
static int
hier_renew_check(const json_t *rec, const char *ca_id,
    const struct ca_renew_req *req, struct common_error *err)
{
	const char *type = json_string_value(json_object_get(rec, "type"));
	const char *state = json_string_value(json_object_get(rec, "state"));

	if (req == NULL || !isfinite(req->validity_days) ||
	    req->validity_days < 0 ||
	    req->validity_days > CA_MAX_VALIDITY_DAYS) {
		common_error_set(err, COMMON_E_INVALID, "validity_days must be "
		    "> 0 and <= %.0f", CA_MAX_VALIDITY_DAYS);
		return -1;
	}
	if (req->key != NULL && !req->new_key) {
		common_error_set(err, COMMON_E_INVALID, "a renewal key is only "
		    "for a renewal with a new key");
		return -1;
	}
	if (type != NULL && strcmp(type, "subordinate-of-external") == 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is a "
		    "subordinate-of-external CA: its certificate comes from "
		    "the external CA, so pkid cannot renew it (create a new "
		    "subordinate-of-external CA instead)", ca_id);
		return -1;
	}
	if (type == NULL || (strcmp(type, "root") != 0 &&
	    strcmp(type, "subordinate") != 0)) {
		log_err("ca %s: record has no valid type", ca_id);
		common_error_set(err, COMMON_E_INTERNAL, "CA %s record is "
		    "corrupt", ca_id);
		return -1;
	}
	if (state == NULL || (strcmp(state, "active") != 0 &&
	    strcmp(state, "disabled") != 0)) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is %s: only an "
		    "active or disabled CA can be renewed", ca_id,
		    state != NULL ? state : "in no state");
		return -1;
	}
	return 0;
}

/* Validity of the renewal: asked, or the current version's lifetime
 * (without the backdating of its notBefore). */
static double
hier_renew_days(const struct ca_renew_req *req, X509 *cur)
{
	time_t nb, na;

	if (req->validity_days > 0)
		return req->validity_days;
	if (common_asn1_time(X509_get0_notBefore(cur), &nb) == -1 ||
	    common_asn1_time(X509_get0_notAfter(cur), &na) == -1 ||
	    na - nb <= CA_BACKDATE_SECONDS)
		return CA_SUB_VALIDITY_DEFAULT;
	return (double)(na - nb - CA_BACKDATE_SECONDS) / DAY_SECONDS;
}

/* True when a and b hold the same string under field. */
static bool
hier_str_eq(const json_t *a, const json_t *b, const char *field)
{
	const char *x = json_string_value(json_object_get(a, field));
	const char *y = json_string_value(json_object_get(b, field));

	return x != NULL && y != NULL && strcmp(x, y) == 0;
}

/* True when some version of rec uses the key keyref names. */
static bool
hier_key_used(const json_t *rec, const json_t *keyref)
{
	const json_t *v, *k;
	size_t i;

	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		k = json_object_get(v, "key");
		if (hier_str_eq(k, keyref, "backend") &&
		    hier_str_eq(k, keyref, "handle"))
			return true;
	}
	return false;
}

/*
 * The key of the renewal and its reference (new references): the current
 * key, the key ca_key_create made (same backend and algorithm, not used
 * by any version yet), or a new one generated now (*made set: the caller
 * removes it on failure).
 */
static EVP_PKEY *
hier_renew_key(struct ca_ctx *ctx, const json_t *rec, const char *ca_id,
    const struct ca_renew_req *req, json_t **keyref, bool *made,
    struct common_error *err)
{
	const json_t *cur = json_object_get(rec, "key");
	const char *backend = json_string_value(json_object_get(cur,
	    "backend"));
	const char *alg = json_string_value(json_object_get(cur, "algorithm"));
	const struct ca_keystore_type *ks;
	enum ca_key_alg a;
	EVP_PKEY *key = NULL;
	char *handle = NULL;

	*keyref = NULL;
	*made = false;
	if (backend == NULL || alg == NULL || ca_key_alg_parse(alg, &a) == -1) {
		log_err("ca %s: record has no valid key reference", ca_id);
		common_error_set(err, COMMON_E_INTERNAL, "CA %s record is "
		    "corrupt", ca_id);
		return NULL;
	}
	if (!req->new_key) {
		if ((*keyref = json_deep_copy(cur)) == NULL) {
			common_error_set(err, COMMON_E_INTERNAL, "out of "
			    "memory");
			return NULL;
		}
		return ca_ctx_ca_key(ctx, rec, err);
	}
	if (req->key != NULL) {
		if (!json_is_string(json_object_get(req->key, "handle")) ||
		    !json_equal(json_object_get(req->key, "backend"),
		    json_object_get(cur, "backend")) ||
		    !json_equal(json_object_get(req->key, "algorithm"),
		    json_object_get(cur, "algorithm")) ||
		    hier_key_used(rec, req->key)) {
			common_error_set(err, COMMON_E_INVALID, "the renewal "
			    "key is not a fresh %s key of the %s backend", alg,
			    backend);
			return NULL;
		}
		if ((key = ca_ctx_key_load(ctx, ca_id, req->key, err)) == NULL)
			return NULL;
		if ((*keyref = json_deep_copy(req->key)) == NULL) {
			EVP_PKEY_free(key);
			common_error_set(err, COMMON_E_INTERNAL, "out of "
			    "memory");
			return NULL;
		}
		return key;
	}
	if ((ks = ca_keystore_find(backend)) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "key backend %s of CA "
		    "%s is not available", backend, ca_id);
		return NULL;
	}
	if (ks->generate(ctx, a, &handle, &key) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot create a new "
		    "key for CA %s", ca_id);
		return NULL;
	}
	*made = true;
	if ((*keyref = json_pack("{s:s, s:s, s:s}", "backend", backend,
	    "handle", handle, "algorithm", alg)) == NULL) {
		(void)ks->remove(ctx, handle);
		*made = false;
		EVP_PKEY_free(key);
		key = NULL;
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
	}
	free(handle);
	return key;
}

/*
 * Renews a CA inside txn (see ca.h): the new certificate keeps the
 * subject exactly (the DER of the current certificate's name, so chains
 * keep matching) and the path length; the record gains the version and
 * mirrors it at the top. Nothing is published here: the caller does
 * (ca_publish_certs, ca_crl_publish) once txn committed.
 */
json_t *
ca_renew(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    const struct ca_renew_req *req, struct common_error *err)
{
	const struct ca_keystore_type *ks;
	json_t *rec = NULL, *parent = NULL, *keyref = NULL, *v = NULL;
	json_t *result = NULL;
	X509 *cur = NULL, *icert = NULL, *x = NULL;
	EVP_PKEY *key = NULL, *ikey = NULL;
	const char *parent_id;
	const json_t *ver;
	json_int_t n = 0, num;
	bool made = false, root;
	size_t i;

	if ((rec = ca_record_load(ctx, txn, ca_id)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "CA %s not found",
		    ca_id != NULL ? ca_id : "(none)");
		goto out;
	}
	if (hier_renew_check(rec, ca_id, req, err) == -1)
		goto out;
	if ((cur = ca_record_cert(rec)) == NULL) {
		log_err("ca %s: record holds no readable certificate", ca_id);
		common_error_set(err, COMMON_E_INTERNAL, "CA %s has no "
		    "readable certificate", ca_id);
		goto out;
	}
	json_array_foreach(json_object_get(rec, "versions"), i, ver) {
		if ((num = json_integer_value(json_object_get(ver,
		    "version"))) > n)
			n = num;
	}
	if (n >= CA_VERSIONS_MAX) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s has %d "
		    "certificate versions, the most a CA keeps", ca_id,
		    CA_VERSIONS_MAX);
		goto out;
	}
	root = strcmp(json_string_value(json_object_get(rec, "type")),
	    "root") == 0;
	if (!root) {
		parent_id = json_string_value(json_object_get(rec,
		    "parent_id"));
		if ((parent = ca_active_get(ctx, txn, parent_id, &icert, &ikey,
		    err)) == NULL)
			goto out;
	}
	if ((key = hier_renew_key(ctx, rec, ca_id, req, &keyref, &made,
	    err)) == NULL)
		goto out;
	if ((x = hier_ca_cert(ctx, txn, X509_get_subject_name(cur), key,
	    icert, root ? key : ikey, parent, hier_renew_days(req, cur),
	    (int)json_integer_value(json_object_get(rec, "path_len")),
	    err)) == NULL)
		goto out;
	if ((v = ca_version_entry(x, (unsigned)n + 1, keyref)) == NULL ||
	    ca_record_add_version(rec, v) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (ca_record_store(ctx, txn, ca_id, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot store the CA");
		goto out;
	}
	if (made && ca_ctx_cache_put(ctx, ca_id, keyref, key) == -1)
		log_warn("ca %s: key not cached (out of memory)", ca_id);
	log_info("ca %s: renewed as version %lld (%s key)", ca_id,
	    (long long)n + 1, req->new_key ? "new" : "same");
	result = hier_public(ctx, rec);	/* steal */
	rec = NULL;
out:
	if (result == NULL && made &&
	    (ks = ca_keystore_find(json_string_value(json_object_get(keyref,
	    "backend")))) != NULL) {
		(void)ks->remove(ctx, json_string_value(json_object_get(keyref,
		    "handle")));
		ca_ctx_forget(ctx, ca_id, keyref);
	}
	json_decref(rec);
	json_decref(parent);
	json_decref(keyref);
	json_decref(v);
	X509_free(cur);
	X509_free(icert);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ikey);
	return result;
}

/*
 * Makes a key for a coming renewal of ca_id outside any transaction (so a
 * retried transaction reuses it rather than making several), with the
 * backend and algorithm of the CA's current key, and caches it.
 */
json_t *
ca_key_create(struct ca_ctx *ctx, const char *ca_id, struct common_error *err)
{
	const struct ca_keystore_type *ks;
	const char *backend, *alg;
	enum ca_key_alg a;
	json_t *rec = NULL, *keyref = NULL;
	EVP_PKEY *key = NULL;
	char *handle = NULL;

	if ((rec = ca_record_load(ctx, NULL, ca_id)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "CA %s not found",
		    ca_id != NULL ? ca_id : "(none)");
		goto out;
	}
	backend = json_string_value(json_object_get(json_object_get(rec,
	    "key"), "backend"));
	alg = json_string_value(json_object_get(json_object_get(rec, "key"),
	    "algorithm"));
	if (backend == NULL || alg == NULL || ca_key_alg_parse(alg, &a) == -1) {
		log_err("ca %s: record has no valid key reference", ca_id);
		common_error_set(err, COMMON_E_INTERNAL, "CA %s record is "
		    "corrupt", ca_id);
		goto out;
	}
	if ((ks = ca_keystore_find(backend)) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "key backend %s of CA "
		    "%s is not available", backend, ca_id);
		goto out;
	}
	if (ks->generate(ctx, a, &handle, &key) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot create a new "
		    "key for CA %s", ca_id);
		goto out;
	}
	if ((keyref = json_pack("{s:s, s:s, s:s}", "backend", backend,
	    "handle", handle, "algorithm", alg)) == NULL) {
		(void)ks->remove(ctx, handle);
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (ca_ctx_cache_put(ctx, ca_id, keyref, key) == -1)
		log_warn("ca %s: key not cached (out of memory)", ca_id);
out:
	json_decref(rec);
	EVP_PKEY_free(key);
	free(handle);
	return keyref;
}

void
ca_key_discard(struct ca_ctx *ctx, const char *ca_id, const json_t *key)
{
	const struct ca_keystore_type *ks;
	const char *handle;

	if (key == NULL)
		return;
	handle = json_string_value(json_object_get(key, "handle"));
	ks = ca_keystore_find(json_string_value(json_object_get(key,
	    "backend")));
	if (ks == NULL || handle == NULL ||
	    ks->remove(ctx, handle) == -1)
		log_warn("ca %s: unused renewal key %s not removed", ca_id,
		    handle != NULL ? handle : "(none)");
	ca_ctx_forget(ctx, ca_id, key);
}
