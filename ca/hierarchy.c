/*
 * ca/hierarchy.c — the CA hierarchy: creating roots, subordinates and
 * subordinates of an external parent (key, certificate or CSR, record),
 * activating the latter with the certificate their parent signed, reading
 * CA records, chain bundles and the public CA certificate files.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
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
 * callers: its CRL and certificate URLs, key algorithm and backend. */
static json_t *
hier_public(const struct ca_ctx *ctx, json_t *rec)
{
	char url[PATH_MAX];
	const char *id = json_string_value(json_object_get(rec, "id"));
	const json_t *key = json_object_get(rec, "key");

	if (id == NULL)
		return rec;
	if (common_path(url, sizeof(url), "%s/crl/%s.crl",
	    ca_ctx_base_url(ctx), id) == 0)
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

/* Writes DATA/public/ca/<id>.crt (DER, 0644). */
static int
hier_publish_cert(const struct ca_ctx *ctx, const char *id, X509 *x)
{
	char dir[PATH_MAX], path[PATH_MAX];
	unsigned char *der = NULL;
	size_t len = 0;
	int rc = -1;

	if (common_path(dir, sizeof(dir), "%s/public/ca",
	    ca_ctx_data_dir(ctx)) == -1 ||
	    common_path(path, sizeof(path), "%s/%s.crt", dir, id) == -1)
		goto out;
	if (common_mkdirs(dir, 0755) == -1) {
		log_err("ca %s: publish certificate: mkdir %s: %s", id, dir,
		    strerror(errno));
		goto out;
	}
	if (common_x509_to_der(x, &der, &len) == -1)
		goto out;
	if (common_file_write(path, der, len, 0644) == -1) {
		log_err("ca %s: publish certificate %s: %s", id, path,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(der);
	return rc;
}

/* Sets not_before, not_after, serial and certificate of rec from x. */
static int
hier_record_cert(json_t *rec, X509 *x)
{
	char nb[TIME_TEXT_MAX], na[TIME_TEXT_MAX], serial[64];
	char *pem = NULL;
	time_t t;
	int rc = -1;

	if (common_asn1_time(X509_get0_notBefore(x), &t) == -1)
		goto out;
	common_time_rfc3339(t, nb, sizeof(nb));
	if (common_asn1_time(X509_get0_notAfter(x), &t) == -1)
		goto out;
	common_time_rfc3339(t, na, sizeof(na));
	if (common_x509_serial_hex(x, serial, sizeof(serial)) == -1 ||
	    (pem = common_x509_to_pem(x)) == NULL)
		goto out;
	if (json_object_set_new(rec, "certificate", json_string(pem)) == -1 ||
	    json_object_set_new(rec, "not_before", json_string(nb)) == -1 ||
	    json_object_set_new(rec, "not_after", json_string(na)) == -1 ||
	    json_object_set_new(rec, "serial", json_string(serial)) == -1)
		goto out;
	rc = 0;
out:
	free(pem);
	return rc;
}

/*
 * Builds and signs a CA certificate for key with subject subj: self-
 * signed when issuer is NULL (signer is then key itself), else signed by
 * issuer/signer with the issuer's CRL and AIA URLs. Returns the
 * certificate or NULL with err.
 */
static X509 *
hier_ca_cert(struct ca_ctx *ctx, struct store_txn *txn, X509_NAME *subj,
    EVP_PKEY *key, X509 *issuer, EVP_PKEY *signer, const char *issuer_id,
    double days, int path_len, struct common_error *err)
{
	char bc[EXT_TEXT_MAX], serial[64];
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
	if (issuer != NULL && ca_cert_add_urls(x, ctx, issuer_id) == -1)
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
	    root ? key : ikey, req->issuer_ca_id, days, path_len, err)) == NULL)
		goto out;

	if ((subject = ca_name_string(subj)) == NULL)
		goto oom;
	common_time_rfc3339(common_now(), now, sizeof(now));
	rec = json_pack("{s:s,s:s,s:s,s:o,s:s,s:{s:s,s:s,s:s},s:s,s:i,s:i,"
	    "s:O,s:s}",
	    "id", id, "name", req->name, "type", req->type,
	    "parent_id", root || external ? json_null() :
	    json_string(req->issuer_ca_id),
	    "state", external ? "pending" : "active",
	    "key", "backend", ks->name, "handle", handle, "algorithm",
	    ca_key_alg_name(req->key_alg),
	    "subject", subject, "path_len", path_len, "crl_number", 0,
	    "policy", policy, "created_at", now);
	if (rec == NULL)
		goto oom;
	if (external) {
		if (json_object_set_new(rec, "csr", json_string(csr)) == -1)
			goto oom;
	} else if (hier_record_cert(rec, x) == -1)
		goto oom;
	if (store_ca_put(txn, id, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot store the CA");
		goto out;
	}
	if (ca_ctx_cache_key(ctx, id, key) == -1)
		log_warn("ca %s: key not cached (out of memory)", id);
	if (x != NULL)
		(void)hier_publish_cert(ctx, id, x);
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
	json_t *rec = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL;
	const char *state;
	char *chain_text = NULL;
	int i, rc = -1;

	if (ca_id == NULL || !common_id_valid(ca_id) ||
	    (rec = store_ca_get(ca_ctx_store(ctx), txn, ca_id)) == NULL) {
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
	if (hier_record_cert(rec, cert) == -1 ||
	    json_object_set_new(rec, "state", json_string("active")) == -1 ||
	    json_object_set_new(rec, "path_len",
	    json_integer(X509_get_pathlen(cert))) == -1)
		goto oom;
	if (chain_text != NULL && chain_text[0] != '\0' &&
	    json_object_set_new(rec, "chain", json_string(chain_text)) == -1)
		goto oom;
	json_object_del(rec, "csr");
	if (store_ca_put(txn, ca_id, rec) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot store the CA");
		goto out;
	}
	(void)hier_publish_cert(ctx, ca_id, cert);
	log_info("ca %s: activated with its external certificate", ca_id);
	rc = 0;
	goto out;
oom:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	json_decref(rec);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	free(chain_text);
	return rc;
}

/* The CA record plus its derived URLs, key algorithm and backend. */
json_t *
ca_get(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	json_t *rec;

	if (ca_id == NULL || !common_id_valid(ca_id) ||
	    (rec = store_ca_get(ca_ctx_store(ctx), txn, ca_id)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "CA %s not found",
		    ca_id != NULL ? ca_id : "(none)");
		return NULL;
	}
	return hier_public(ctx, rec);
}

/* Every CA record (as ca_get shows them), or NULL on a store failure. */
json_t *
ca_list(struct ca_ctx *ctx, struct store_txn *txn)
{
	json_t *list, *rec;
	size_t i;

	if ((list = store_ca_list(ca_ctx_store(ctx), txn)) == NULL)
		return NULL;
	json_array_foreach(list, i, rec) {
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

/*
 * The CA's certificate, then (for subordinate-of-external CAs) the
 * external chain it was imported with, then the same for each parent up
 * to the top; at most CA_DEPTH_MAX levels, so a corrupt parent loop ends.
 */
char *
ca_bundle_pem(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	struct common_buf b;
	json_t *rec = NULL;
	const char *pem, *chain, *parent, *id = ca_id;
	char next[CA_ID_MAX];
	char *result = NULL;
	int depth;

	common_buf_init(&b, BUNDLE_MAX);
	for (depth = 0; depth < CA_DEPTH_MAX; depth++) {
		if (id == NULL || !common_id_valid(id) ||
		    (rec = store_ca_get(ca_ctx_store(ctx), txn, id)) == NULL) {
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
		pem = json_string_value(json_object_get(rec, "certificate"));
		if (pem == NULL) {
			common_error_set(err, COMMON_E_CONFLICT, "CA %s has no "
			    "certificate yet (pending)", id);
			goto out;
		}
		chain = json_string_value(json_object_get(rec, "chain"));
		if (hier_bundle_add(&b, pem) == -1 ||
		    (chain != NULL && hier_bundle_add(&b, chain) == -1)) {
			common_error_set(err, COMMON_E_INTERNAL, "bundle of CA "
			    "%s is too large", ca_id);
			goto out;
		}
		parent = json_string_value(json_object_get(rec, "parent_id"));
		if (parent == NULL) {
			if ((result = common_buf_steal(&b, NULL)) == NULL)
				common_error_set(err, COMMON_E_INTERNAL,
				    "out of memory");
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
	common_buf_free(&b);
	return result;
}

/* Rewrites DATA/public/ca/<id>.crt for every active CA; -1 if any failed
 * (the others are still written). */
int
ca_publish_certs(struct ca_ctx *ctx)
{
	json_t *list, *rec;
	const char *id, *state;
	X509 *x;
	size_t i;
	int rc = 0;

	if ((list = store_ca_list(ca_ctx_store(ctx), NULL)) == NULL) {
		log_err("ca: publish certificates: cannot list CAs");
		return -1;
	}
	json_array_foreach(list, i, rec) {
		id = json_string_value(json_object_get(rec, "id"));
		state = json_string_value(json_object_get(rec, "state"));
		if (id == NULL || state == NULL || strcmp(state, "active") != 0)
			continue;
		if ((x = ca_record_cert(rec)) == NULL) {
			log_err("ca %s: publish: unreadable certificate", id);
			rc = -1;
			continue;
		}
		if (hier_publish_cert(ctx, id, x) == -1)
			rc = -1;
		X509_free(x);
	}
	json_decref(list);
	return rc;
}
