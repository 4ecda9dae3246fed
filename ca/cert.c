/*
 * ca/cert.c — pieces shared by every certificate ca/ signs (CA and leaf):
 * serial numbers, validity, key identifiers, CRL/AIA URLs, the signing
 * digest, and the lookup of an active CA with its certificate and key.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "ca/ca.h"

#define SERIAL_BITS	128	/* DESIGN.md: serials are 128 random bits */
#define SERIAL_TRIES	8	/* fresh serials tried on a collision */
#define URL_MAX		1024
#define SECONDS_PER_DAY	86400.0
#define CERT_CACHE_MAX	64	/* parsed CA certificates kept */
#define FNV_OFFSET	1469598103934665603ULL
#define FNV_PRIME	1099511628211ULL
#define SPKI_POINT_MAX	133	/* uncompressed P-521 point, the largest */
#define SPKI_PARAM_MAX	32	/* "uncompressed", "named_curve" */
#define SPKI_ED25519_LEN 32	/* RFC 8410: the raw public key */

/*
 * Parsed CA certificates, keyed by their PEM text: issuance, chains and
 * downloads read the same few CA certificates thousands of times, and
 * decoding PEM (an OpenSSL 3 decoder per call) dominated them. An entry
 * is immutable and named by its whole text, so it can never be stale: a
 * renewal or an import brings new text, hence a new entry; old ones age
 * out (least recently used). Shared by every thread under one lock;
 * callers get their own reference (X509 objects are safe to read from
 * several threads).
 */
struct cert_cached {
	uint64_t	 hash;		/* FNV-1a of pem */
	char		*pem;		/* the record's text; NULL: free slot */
	X509		*x;
	char		*canon;		/* x re-encoded as PEM */
	uint64_t	 used;		/* cert_cache_tick when last read */
};

static pthread_mutex_t cert_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cert_cached cert_cache[CERT_CACHE_MAX];
static uint64_t cert_cache_tick;

const EVP_MD *
ca_sign_md(const EVP_PKEY *key)
{
	enum ca_key_alg alg;

	if (ca_key_alg_of(key, &alg) == -1)
		return NULL;
	switch (alg) {
	case CA_KEY_RSA2048:
	case CA_KEY_RSA3072:
	case CA_KEY_RSA4096:
	case CA_KEY_ECDSA_P256:
		return EVP_sha256();
	case CA_KEY_ECDSA_P384:
		return EVP_sha384();
	default:
		return NULL;
	}
}

/*
 * Draws positive non-zero 128-bit serials until one is not yet recorded
 * in `issued` (a collision is all but impossible, but a duplicate serial
 * from one issuer would be a real defect), sets it on x and writes its
 * hex (the `issued` key form) into hex.
 */
int
ca_cert_serial(struct store *st, struct store_txn *txn, X509 *x, char *hex,
    size_t hexlen, struct common_error *err)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	json_t *existing;
	int tries, rc = -1;

	if ((bn = BN_new()) == NULL)
		goto oom;
	for (tries = 0; tries < SERIAL_TRIES; tries++) {
		if (BN_rand(bn, SERIAL_BITS, BN_RAND_TOP_ANY,
		    BN_RAND_BOTTOM_ANY) != 1) {
			log_err("serial: BN_rand: %s", common_ssl_error());
			common_error_set(err, COMMON_E_INTERNAL,
			    "random number generator failed");
			goto out;
		}
		if (BN_is_zero(bn))
			continue;
		ASN1_INTEGER_free(ai);
		if ((ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
		    X509_set_serialNumber(x, ai) != 1 ||
		    common_x509_serial_hex(x, hex, hexlen) == -1)
			goto oom;
		existing = store_issued_get(st, txn, hex);
		if (existing == NULL)
			break;
		json_decref(existing);
		log_warn("serial %s: already issued, drawing another", hex);
	}
	if (tries == SERIAL_TRIES) {
		log_err("serial: no unused serial after %d tries", SERIAL_TRIES);
		common_error_set(err, COMMON_E_INTERNAL, "no unused serial");
		goto out;
	}
	rc = 0;
	goto out;
oom:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

/*
 * Sets the validity of x: backdated notBefore against clock skew, and a
 * notAfter that never outlives the issuer (a certificate valid past its
 * issuer cannot be validated then).
 */
int
ca_cert_validity(X509 *x, double days, const X509 *issuer,
    struct common_error *err)
{
	time_t now = common_now(), nb, na, ina;

	if (!isfinite(days) || days <= 0 || days > CA_MAX_VALIDITY_DAYS) {
		common_error_set(err, COMMON_E_INVALID, "validity_days must be "
		    "> 0 and <= %.0f", CA_MAX_VALIDITY_DAYS);
		return -1;
	}
	nb = now - CA_BACKDATE_SECONDS;
	na = now + (time_t)llround(days * SECONDS_PER_DAY);
	if (issuer != NULL) {
		if (common_asn1_time(X509_get0_notAfter(issuer), &ina) == -1) {
			common_error_set(err, COMMON_E_INTERNAL, "issuer "
			    "certificate has a malformed notAfter");
			return -1;
		}
		if (ina <= now) {
			common_error_set(err, COMMON_E_CONFLICT, "the issuing "
			    "CA certificate has expired");
			return -1;
		}
		if (na > ina)
			na = ina;
	}
	if (ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "cannot set validity");
		return -1;
	}
	return 0;
}

/* SHA-1 of the subjectPublicKey bits of x (RFC 5280 4.2.1.2 method 1). */
static ASN1_OCTET_STRING *
cert_key_id(const X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	ASN1_OCTET_STRING *os;

	if (X509_pubkey_digest(x, EVP_sha1(), md, &n) != 1)
		return NULL;
	if ((os = ASN1_OCTET_STRING_new()) == NULL)
		return NULL;
	if (ASN1_OCTET_STRING_set(os, md, (int)n) != 1) {
		ASN1_OCTET_STRING_free(os);
		return NULL;
	}
	return os;
}

/*
 * SKI from x's key; AKI keyid from the issuer's SKI extension when it has
 * one (so chains built from certificates signed elsewhere still match),
 * else from the issuer's key the same way.
 */
int
ca_cert_add_key_ids(X509 *x, X509 *issuer)
{
	ASN1_OCTET_STRING *ski = NULL;
	AUTHORITY_KEYID *akid = NULL;
	const ASN1_OCTET_STRING *iski;
	int rc = -1;

	if ((ski = cert_key_id(x)) == NULL)
		goto out;
	if (X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0,
	    X509V3_ADD_REPLACE) != 1)
		goto out;
	if ((akid = AUTHORITY_KEYID_new()) == NULL)
		goto out;
	if (issuer == NULL)
		akid->keyid = ASN1_OCTET_STRING_dup(ski);
	else if ((iski = X509_get0_subject_key_id(issuer)) != NULL)
		akid->keyid = ASN1_OCTET_STRING_dup(iski);
	else
		akid->keyid = cert_key_id(issuer);
	if (akid->keyid == NULL)
		goto out;
	if (X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0,
	    X509V3_ADD_REPLACE) != 1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		log_err("certificate: key identifiers: %s", common_ssl_error());
	ASN1_OCTET_STRING_free(ski);
	AUTHORITY_KEYID_free(akid);
	return rc;
}

/* A URI GeneralName of url; NULL on allocation failure. */
static GENERAL_NAME *
cert_uri(const char *url)
{
	GENERAL_NAME *gen;
	ASN1_IA5STRING *s;

	if ((s = ASN1_IA5STRING_new()) == NULL)
		return NULL;
	if (ASN1_STRING_set(s, url, (int)strlen(url)) != 1 ||
	    (gen = GENERAL_NAME_new()) == NULL) {
		ASN1_IA5STRING_free(s);
		return NULL;
	}
	GENERAL_NAME_set0_value(gen, GEN_URI, s);	/* steal */
	return gen;
}

/* CRL distribution point and AIA caIssuers of the CA issuer_id's first
 * key and version (the URLs every CA had before versions existed). */
int
ca_cert_add_urls(X509 *x, const struct ca_ctx *ctx, const char *issuer_id)
{
	return ca_cert_add_urls_stem(x, ctx, issuer_id, issuer_id);
}

/*
 * CRL distribution point BASE/crl/<crl_stem>.crl and AIA caIssuers
 * BASE/ca/<cert_stem>.crt, built as structures rather than openssl.cnf
 * text so no character in the configured base URL can change their
 * meaning.
 */
int
ca_cert_add_urls_stem(X509 *x, const struct ca_ctx *ctx,
    const char *crl_stem, const char *cert_stem)
{
	char crl[URL_MAX], crt[URL_MAX];
	CRL_DIST_POINTS *cdp = NULL;
	DIST_POINT *dp = NULL;
	AUTHORITY_INFO_ACCESS *aia = NULL;
	ACCESS_DESCRIPTION *ad = NULL;
	GENERAL_NAME *gen = NULL;
	int rc = -1;

	if (common_path(crl, sizeof(crl), "%s/crl/%s.crl",
	    ca_ctx_base_url(ctx), crl_stem) == -1 ||
	    common_path(crt, sizeof(crt), "%s/ca/%s.crt",
	    ca_ctx_base_url(ctx), cert_stem) == -1) {
		log_err("certificate: URL of CA %s too long", crl_stem);
		goto out;
	}

	if ((cdp = sk_DIST_POINT_new_null()) == NULL ||
	    (dp = DIST_POINT_new()) == NULL ||
	    (dp->distpoint = DIST_POINT_NAME_new()) == NULL)
		goto out;
	dp->distpoint->type = 0;	/* fullName */
	if ((dp->distpoint->name.fullname = GENERAL_NAMES_new()) == NULL ||
	    (gen = cert_uri(crl)) == NULL)
		goto out;
	if (sk_GENERAL_NAME_push(dp->distpoint->name.fullname, gen) <= 0)
		goto out;
	gen = NULL;
	if (sk_DIST_POINT_push(cdp, dp) <= 0)
		goto out;
	dp = NULL;
	if (X509_add1_ext_i2d(x, NID_crl_distribution_points, cdp, 0,
	    X509V3_ADD_REPLACE) != 1)
		goto out;

	if ((aia = sk_ACCESS_DESCRIPTION_new_null()) == NULL ||
	    (ad = ACCESS_DESCRIPTION_new()) == NULL ||
	    (gen = cert_uri(crt)) == NULL)
		goto out;
	ASN1_OBJECT_free(ad->method);
	ad->method = OBJ_nid2obj(NID_ad_ca_issuers);
	GENERAL_NAME_free(ad->location);
	ad->location = gen;	/* steal */
	gen = NULL;
	if (sk_ACCESS_DESCRIPTION_push(aia, ad) <= 0)
		goto out;
	ad = NULL;
	if (X509_add1_ext_i2d(x, NID_info_access, aia, 0,
	    X509V3_ADD_REPLACE) != 1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		log_err("certificate: CRL/AIA URLs of CA %s: %s", crl_stem,
		    common_ssl_error());
	GENERAL_NAME_free(gen);
	DIST_POINT_free(dp);
	ACCESS_DESCRIPTION_free(ad);
	sk_DIST_POINT_pop_free(cdp, DIST_POINT_free);
	sk_ACCESS_DESCRIPTION_pop_free(aia, ACCESS_DESCRIPTION_free);
	return rc;
}

/* DER RSAPublicKey (RFC 8017 A.1.1) of key, to OPENSSL_free(); NULL on
 * failure. */
static unsigned char *
cert_rsa_public_der(const EVP_PKEY *key, int *len)
{
	BIGNUM *n = NULL, *e = NULL;
	ASN1_INTEGER *an = NULL, *ae = NULL;
	unsigned char *der = NULL, *p;
	int ln, le, total;

	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1 ||
	    (an = BN_to_ASN1_INTEGER(n, NULL)) == NULL ||
	    (ae = BN_to_ASN1_INTEGER(e, NULL)) == NULL)
		goto out;
	if ((ln = i2d_ASN1_INTEGER(an, NULL)) <= 0 ||
	    (le = i2d_ASN1_INTEGER(ae, NULL)) <= 0 ||
	    (total = ASN1_object_size(1, ln + le, V_ASN1_SEQUENCE)) <= 0 ||
	    (der = OPENSSL_malloc((size_t)total)) == NULL)
		goto out;
	p = der;
	ASN1_put_object(&p, 1, ln + le, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	if (i2d_ASN1_INTEGER(an, &p) != ln || i2d_ASN1_INTEGER(ae, &p) != le) {
		OPENSSL_free(der);
		der = NULL;
		goto out;
	}
	*len = total;
out:
	ASN1_INTEGER_free(an);
	ASN1_INTEGER_free(ae);
	BN_free(n);
	BN_free(e);
	return der;
}

/* The public point of an EC key on a named curve, uncompressed (the
 * form OpenSSL's encoder writes for such keys), to OPENSSL_free(); NULL
 * for other encodings or forms, which the caller leaves to OpenSSL. */
static unsigned char *
cert_ec_public_point(const EVP_PKEY *key, int *len)
{
	char enc[SPKI_PARAM_MAX], form[SPKI_PARAM_MAX];
	unsigned char pt[SPKI_POINT_MAX], *der;
	size_t n = 0;

	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING,
	    enc, sizeof(enc), NULL) != 1 ||
	    strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP) != 0 ||
	    EVP_PKEY_get_utf8_string_param(key,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, form, sizeof(form),
	    NULL) != 1 ||
	    strcmp(form, OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) !=
	    0 ||
	    EVP_PKEY_get_octet_string_param(key,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &n) != 1 ||
	    n == 0 || (der = OPENSSL_memdup(pt, n)) == NULL)
		return NULL;
	*len = (int)n;
	return der;
}

/*
 * Sets x's SubjectPublicKeyInfo to key of class alg. On OpenSSL 3,
 * X509_set_pubkey encodes a provider key with a new OSSL_ENCODER context
 * and decodes the result back with a new OSSL_DECODER context, which
 * cost more than a leaf's whole signature; here the algorithm identifier
 * and key bits are written directly, as those encoders write them (RSA:
 * rsaEncryption with NULL parameters over RSAPublicKey; EC: id-ecPublicKey
 * with the named curve over the uncompressed point; Ed25519: its OID
 * over the raw key). Keys outside that (explicit curve parameters, a
 * compressed point, a legacy key) go through X509_set_pubkey. Either way
 * the bytes are the same; on the direct path x holds no EVP_PKEY, so
 * X509_get0_pubkey(x) is NULL. 0 or -1.
 */
int
ca_cert_set_spki(X509 *x, EVP_PKEY *key, enum ca_key_alg alg)
{
	X509_PUBKEY *spki = X509_get_X509_PUBKEY(x);
	unsigned char raw[SPKI_ED25519_LEN];
	unsigned char *bits = NULL;
	size_t rawlen = sizeof(raw);
	int nid = NID_undef, curve = NID_undef, len = 0, ptype = V_ASN1_UNDEF;

	/* a legacy (engine) key has no encoder round trip to avoid */
	if (EVP_PKEY_get0_provider(key) == NULL || spki == NULL)
		return X509_set_pubkey(x, key) == 1 ? 0 : -1;
	switch (alg) {
	case CA_KEY_RSA2048:
	case CA_KEY_RSA3072:
	case CA_KEY_RSA4096:
		nid = NID_rsaEncryption;
		ptype = V_ASN1_NULL;
		bits = cert_rsa_public_der(key, &len);
		break;
	case CA_KEY_ECDSA_P256:
	case CA_KEY_ECDSA_P384:
		nid = NID_X9_62_id_ecPublicKey;
		ptype = V_ASN1_OBJECT;
		curve = alg == CA_KEY_ECDSA_P256 ? NID_X9_62_prime256v1 :
		    NID_secp384r1;
		bits = cert_ec_public_point(key, &len);
		break;
	case CA_KEY_ED25519:
		nid = NID_ED25519;
		if (EVP_PKEY_get_raw_public_key(key, raw, &rawlen) == 1 &&
		    rawlen == sizeof(raw) &&
		    (bits = OPENSSL_memdup(raw, rawlen)) != NULL)
			len = (int)rawlen;
		break;
	default:
		break;
	}
	ERR_clear_error();
	if (bits == NULL)
		return X509_set_pubkey(x, key) == 1 ? 0 : -1;
	if (X509_PUBKEY_set0_param(spki, OBJ_nid2obj(nid), ptype,
	    curve != NID_undef ? (void *)OBJ_nid2obj(curve) : NULL, bits,
	    len) != 1) {
		OPENSSL_free(bits);
		return -1;
	}
	return 0;
}

/* Adds one extension written in openssl.cnf syntax; 0 or -1 (logged). */
int
ca_cert_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int rc = -1;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, NULL, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value)) == NULL)
		goto out;
	if (X509_add_ext(x, ext, -1) != 1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		log_err("certificate: extension %s \"%s\": %s", OBJ_nid2sn(nid),
		    value, common_ssl_error());
	X509_EXTENSION_free(ext);
	return rc;
}

/* Parses the "certificate" PEM of a CA record; NULL when absent. */
static uint64_t
cert_cache_hash(const char *s, size_t len)
{
	uint64_t h = FNV_OFFSET;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
	return h;
}

/* The entry for pem (lock held), NULL when absent. */
static struct cert_cached *
cert_cache_find(const char *pem, size_t len, uint64_t h)
{
	size_t i;

	for (i = 0; i < CERT_CACHE_MAX; i++)
		if (cert_cache[i].pem != NULL && cert_cache[i].hash == h &&
		    strncmp(cert_cache[i].pem, pem, len + 1) == 0)
			return &cert_cache[i];
	return NULL;
}

static void
cert_cache_clear(struct cert_cached *e)
{
	free(e->pem);
	X509_free(e->x);
	free(e->canon);
	memset(e, 0, sizeof(*e));
}

/* Hands out e's certificate (and canonical PEM) to a caller (lock held).
 * -1 on allocation failure. */
static int
cert_cache_take(struct cert_cached *e, X509 **x, char **canon)
{
	if (canon != NULL && (*canon = strdup(e->canon)) == NULL)
		return -1;
	X509_up_ref(e->x);
	*x = e->x;
	e->used = ++cert_cache_tick;
	return 0;
}

X509 *
ca_cert_cached(const char *pem, char **canon)
{
	struct cert_cached *e, fresh;
	size_t len, i;
	uint64_t h;
	X509 *x = NULL;

	if (canon != NULL)
		*canon = NULL;
	if (pem == NULL)
		return NULL;
	len = strlen(pem);
	h = cert_cache_hash(pem, len);
	pthread_mutex_lock(&cert_cache_lock);
	if ((e = cert_cache_find(pem, len, h)) != NULL &&
	    cert_cache_take(e, &x, canon) == -1)
		x = NULL;
	pthread_mutex_unlock(&cert_cache_lock);
	if (e != NULL)
		return x;

	/* Parsed outside the lock: other threads keep reading. */
	memset(&fresh, 0, sizeof(fresh));
	fresh.hash = h;
	if ((fresh.x = common_x509_from_pem(pem, len)) == NULL)
		return NULL;
	if ((fresh.pem = strdup(pem)) == NULL ||
	    (fresh.canon = common_x509_to_pem(fresh.x)) == NULL) {
		cert_cache_clear(&fresh);
		return NULL;
	}
	pthread_mutex_lock(&cert_cache_lock);
	if ((e = cert_cache_find(pem, len, h)) == NULL) {
		/* a free slot, else the least recently used */
		e = &cert_cache[0];
		for (i = 0; i < CERT_CACHE_MAX && e->pem != NULL; i++)
			if (cert_cache[i].pem == NULL ||
			    cert_cache[i].used < e->used)
				e = &cert_cache[i];
		cert_cache_clear(e);
		*e = fresh;
		memset(&fresh, 0, sizeof(fresh));
	}
	if (cert_cache_take(e, &x, canon) == -1)
		x = NULL;
	pthread_mutex_unlock(&cert_cache_lock);
	cert_cache_clear(&fresh);	/* another thread was first */
	return x;
}

void
ca_cert_cache_flush(void)
{
	size_t i;

	pthread_mutex_lock(&cert_cache_lock);
	for (i = 0; i < CERT_CACHE_MAX; i++)
		cert_cache_clear(&cert_cache[i]);
	pthread_mutex_unlock(&cert_cache_lock);
}

X509 *
ca_record_cert(const json_t *ca_rec)
{
	return ca_cert_cached(json_string_value(json_object_get(ca_rec,
	    "certificate")), NULL);
}

/*
 * The record of an active CA (migrated to versions), with (when asked)
 * its current certificate and private key, checked to belong together.
 * NOTFOUND for an unknown id, CONFLICT for a pending, disabled or
 * pending_deletion CA ("CA <id> is disabled"), INTERNAL for a broken
 * record.
 */
json_t *
ca_active_get(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    X509 **cert, EVP_PKEY **key, struct common_error *err)
{
	json_t *rec = NULL, *result = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	const char *state;

	if (cert != NULL)
		*cert = NULL;
	if (key != NULL)
		*key = NULL;
	if ((rec = ca_record_load(ctx, txn, ca_id)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "CA %s not found",
		    ca_id != NULL ? ca_id : "(none)");
		goto out;
	}
	state = json_string_value(json_object_get(rec, "state"));
	if (state != NULL && strcmp(state, "disabled") == 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is disabled",
		    ca_id);
		goto out;
	}
	if (state != NULL && strcmp(state, "pending_deletion") == 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is scheduled "
		    "for deletion", ca_id);
		goto out;
	}
	if (state == NULL || strcmp(state, "active") != 0) {
		common_error_set(err, COMMON_E_CONFLICT, "CA %s is %s, not "
		    "active", ca_id, state != NULL ? state : "in no state");
		goto out;
	}
	if ((x = ca_record_cert(rec)) == NULL) {
		log_err("ca %s: record holds no readable certificate", ca_id);
		common_error_set(err, COMMON_E_INTERNAL, "CA %s has no "
		    "readable certificate", ca_id);
		goto out;
	}
	if (key != NULL) {
		if ((k = ca_ctx_ca_key(ctx, rec, err)) == NULL)
			goto out;
		if (EVP_PKEY_eq(X509_get0_pubkey(x), k) != 1) {
			log_err("ca %s: private key does not match its "
			    "certificate", ca_id);
			common_error_set(err, COMMON_E_INTERNAL, "the key of CA "
			    "%s does not match its certificate", ca_id);
			goto out;
		}
	}
	if (cert != NULL) {
		*cert = x;	/* steal */
		x = NULL;
	}
	if (key != NULL) {
		*key = k;	/* steal */
		k = NULL;
	}
	result = rec;	/* steal */
	rec = NULL;
out:
	ERR_clear_error();
	json_decref(rec);
	X509_free(x);
	EVP_PKEY_free(k);
	return result;
}
