/*
 * bench/acmeload/crypto.c — what a real ACME client computes: P-256 keys,
 * their JWK and thumbprint, ES256 flattened JWS, PKCS#10 requests, and
 * the check of the certificate it gets back.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "bench/acmeload/acmeload.h"

#define CRYPTO_P256_BYTES	32	/* one coordinate, one of r and s */
#define CRYPTO_SIG_DER_MAX	80	/* DER ECDSA-Sig-Value of P-256 */
#define CRYPTO_JWS_FIXED	64	/* the JSON around the three parts */
#define CRYPTO_POINT_MAX	(1 + 2 * CRYPTO_P256_BYTES) /* uncompressed */

EVP_PKEY *
acmeload_key_new(void)
{
	EVP_PKEY *k;

	if ((k = EVP_EC_gen("P-256")) == NULL)
		log_err("acmeload: P-256 key generation: %s",
		    common_ssl_error());
	return k;
}

/* Base64url of one public-key coordinate (32 bytes, left-padded) into a
 * string to free(); NULL on failure. */
static char *
crypto_coord(EVP_PKEY *key, const char *param)
{
	unsigned char bin[CRYPTO_P256_BYTES];
	BIGNUM *bn = NULL;
	char *s = NULL;

	if (EVP_PKEY_get_bn_param(key, param, &bn) != 1 ||
	    BN_bn2binpad(bn, bin, sizeof(bin)) != (int)sizeof(bin))
		goto out;
	s = common_b64_encode(bin, sizeof(bin), true, 0);
out:
	BN_free(bn);
	return s;
}

json_t *
acmeload_jwk(EVP_PKEY *key, char *thumb, size_t thumblen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *x = NULL, *y = NULL, *canon = NULL, *t = NULL;
	json_t *jwk = NULL;
	int n;

	if ((x = crypto_coord(key, OSSL_PKEY_PARAM_EC_PUB_X)) == NULL ||
	    (y = crypto_coord(key, OSSL_PKEY_PARAM_EC_PUB_Y)) == NULL) {
		log_err("acmeload: JWK: cannot read the public key: %s",
		    common_ssl_error());
		goto out;
	}
	/* RFC 7638 §3.2: the required members, lexicographic, no spaces. */
	n = asprintf(&canon, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\","
	    "\"y\":\"%s\"}", x, y);
	if (n < 0) {
		canon = NULL;
		goto out;
	}
	if (EVP_Digest(canon, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    (t = common_b64_encode(md, mdlen, true, 0)) == NULL ||
	    strlen(t) >= thumblen)
		goto out;
	memcpy(thumb, t, strlen(t) + 1);
	jwk = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256",
	    "x", x, "y", y);
out:
	free(x);
	free(y);
	free(canon);
	free(t);
	return jwk;
}

EVP_PKEY_CTX *
acmeload_signer_new(EVP_PKEY *key)
{
	EVP_PKEY_CTX *ctx;

	if ((ctx = EVP_PKEY_CTX_new(key, NULL)) == NULL ||
	    EVP_PKEY_sign_init(ctx) != 1) {
		log_err("acmeload: signer: %s", common_ssl_error());
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ES256 signature (RFC 7518 §3.4: r || s, 32 bytes each) of the signing
 * input, base64url, to free(); NULL on failure. */
static char *
crypto_es256(EVP_PKEY_CTX *signer, const char *input, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned char der[CRYPTO_SIG_DER_MAX], raw[2 * CRYPTO_P256_BYTES];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	char *out = NULL;

	SHA256((const unsigned char *)input, len, md);
	if (EVP_PKEY_sign(signer, der, &derlen, md, sizeof(md)) != 1 ||
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, CRYPTO_P256_BYTES) != CRYPTO_P256_BYTES ||
	    BN_bn2binpad(s, raw + CRYPTO_P256_BYTES, CRYPTO_P256_BYTES) !=
	    CRYPTO_P256_BYTES)
		goto out;
	out = common_b64_encode(raw, sizeof(raw), true, 0);
out:
	if (out == NULL)
		log_err("acmeload: ES256 signature: %s", common_ssl_error());
	ECDSA_SIG_free(sig);
	return out;
}

char *
acmeload_jws(EVP_PKEY_CTX *signer, const json_t *jwk, const char *kid,
    const char *nonce, const char *url, const char *payload)
{
	char *prot_json = NULL, *prot = NULL, *pay = NULL, *input = NULL;
	char *sig = NULL, *body = NULL;
	json_t *hdr;
	size_t plen = 0, ylen = 0, n;

	if (jwk != NULL)
		hdr = json_pack("{s:s,s:O,s:s,s:s}", "alg", "ES256", "jwk",
		    jwk, "nonce", nonce, "url", url);
	else
		hdr = json_pack("{s:s,s:s,s:s,s:s}", "alg", "ES256", "kid",
		    kid, "nonce", nonce, "url", url);
	if (hdr == NULL ||
	    (prot_json = json_dumps(hdr, JSON_COMPACT)) == NULL ||
	    (prot = common_b64_encode(prot_json, strlen(prot_json), true,
	    0)) == NULL)
		goto out;
	if (payload == NULL)
		pay = strdup("");
	else
		pay = common_b64_encode(payload, strlen(payload), true, 0);
	if (pay == NULL)
		goto out;
	plen = strlen(prot);
	ylen = strlen(pay);
	if ((input = malloc(plen + 1 + ylen + 1)) == NULL)
		goto out;
	memcpy(input, prot, plen);
	input[plen] = '.';
	memcpy(input + plen + 1, pay, ylen + 1);
	if ((sig = crypto_es256(signer, input, plen + 1 + ylen)) == NULL)
		goto out;
	/* All three parts are base64url: no JSON escaping needed. */
	n = plen + ylen + strlen(sig) + CRYPTO_JWS_FIXED;
	if ((body = malloc(n)) == NULL)
		goto out;
	if (snprintf(body, n, "{\"protected\":\"%s\",\"payload\":\"%s\","
	    "\"signature\":\"%s\"}", prot, pay, sig) >= (int)n) {
		free(body);
		body = NULL;
	}
out:
	json_decref(hdr);
	free(prot_json);
	free(prot);
	free(pay);
	free(input);
	free(sig);
	return body;
}

/* Sets the CSR's SubjectPublicKeyInfo from the raw P-256 point of key.
 * X509_REQ_set_pubkey() would encode the key and decode it again through
 * OpenSSL 3's provider decoders, a large share of a client's CPU. 0 or
 * -1. */
static int
crypto_csr_pubkey(X509_REQ *req, EVP_PKEY *key)
{
	unsigned char point[CRYPTO_POINT_MAX], *copy;
	X509_PUBKEY *spki = X509_REQ_get_X509_PUBKEY(req);
	size_t len = 0;

	if (spki == NULL ||
	    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY,
	    point, sizeof(point), &len) != 1 || len == 0 ||
	    (copy = OPENSSL_memdup(point, len)) == NULL)
		return -1;
	if (X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
	    V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1), copy,
	    (int)len) != 1) {
		OPENSSL_free(copy);
		return -1;
	}
	return 0;
}

char *
acmeload_csr(EVP_PKEY *key, const char *name)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *san = NULL;
	X509_REQ *req = NULL;
	X509_NAME *subj;
	unsigned char *der = NULL;
	char value[ACMELOAD_NAME_MAX + 8], *out = NULL;
	int len;

	if (snprintf(value, sizeof(value), "DNS:%s", name) >=
	    (int)sizeof(value))
		goto out;
	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    (subj = X509_REQ_get_subject_name(req)) == NULL ||
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
	    (const unsigned char *)name, -1, -1, 0) != 1 ||
	    (san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    value)) == NULL ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL ||
	    sk_X509_EXTENSION_push(exts, san) == 0)
		goto out;
	san = NULL;	/* owned by exts */
	if (X509_REQ_add_extensions(req, exts) != 1 ||
	    crypto_csr_pubkey(req, key) == -1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
	    (len = i2d_X509_REQ(req, &der)) <= 0)
		goto out;
	out = common_b64_encode(der, (size_t)len, true, 0);
out:
	if (out == NULL)
		log_err("acmeload: CSR for %s: %s", name, common_ssl_error());
	X509_EXTENSION_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	OPENSSL_free(der);
	return out;
}

/* The DER of the first certificate of a PEM text (to free()); -1 when
 * there is none or it is not base64. */
static int
crypto_first_der(const char *pem, size_t len, unsigned char **der,
    size_t *derlen)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	const char *b, *e;

	if ((b = memmem(pem, len, begin, strlen(begin))) == NULL)
		return -1;
	b += strlen(begin);
	if ((e = memmem(b, len - (size_t)(b - pem), end, strlen(end))) ==
	    NULL)
		return -1;
	return common_b64_decode(b, (size_t)(e - b), false, der, derlen);
}

/* The full check: parses the leaf, compares its key with key and
 * matches name against it (X509_check_host). */
static bool
crypto_cert_parse_check(const unsigned char *der, size_t derlen,
    EVP_PKEY *key, const char *name, const char **why)
{
	const unsigned char *p = der;
	X509 *leaf = NULL;
	bool ok = false;

	if (derlen > LONG_MAX || (leaf = d2i_X509(NULL, &p, (long)derlen)) ==
	    NULL || p != der + derlen)
		*why = "certificate is not DER X.509";
	else if (EVP_PKEY_eq(X509_get0_pubkey(leaf), key) != 1)
		*why = "certificate key is not the CSR's";
	else if (X509_check_host(leaf, name, strlen(name), 0, NULL) != 1)
		*why = "certificate does not name the ordered identifier";
	else
		ok = true;
	X509_free(leaf);
	return ok;
}

bool
acmeload_cert_check(const char *pem, size_t len, EVP_PKEY *key,
    const char *name, bool full, const char **why)
{
	unsigned char point[CRYPTO_POINT_MAX], *der = NULL;
	size_t derlen = 0, plen = 0;
	bool ok = false;

	if (crypto_first_der(pem, len, &der, &derlen) == -1) {
		*why = "no certificate in the answer";
		goto out;
	}
	if (full) {
		ok = crypto_cert_parse_check(der, derlen, key, name, why);
		goto out;
	}
	/* The quick check: the DER carries the CSR's public point (a
	 * random 65-byte string) and the ordered name. */
	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY,
	    point, sizeof(point), &plen) != 1 ||
	    memmem(der, derlen, point, plen) == NULL)
		*why = "certificate key is not the CSR's";
	else if (memmem(der, derlen, name, strlen(name)) == NULL)
		*why = "certificate does not name the ordered identifier";
	else
		ok = true;
out:
	free(der);
	return ok;
}
