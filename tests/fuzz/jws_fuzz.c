/*
 * tests/fuzz/jws_fuzz.c — the ACME JWS layer of protocols/acme/jws.c:
 * acme_jws_parse on a flattened JWS, acme_jwk_key on its "jwk" header,
 * the RFC 7638 thumbprint and acme_jws_check_sig.
 *
 * The first input byte picks the form of the rest:
 *   even: the request body as sent (JSON text);
 *   odd:  three raw parts separated by '\n' (protected header JSON,
 *         payload, signature), which the driver base64url-encodes into a
 *         flattened JWS, so that mutations reach the header and JWK
 *         parsers instead of dying in base64url.
 *
 * Properties: a refusal sets a problem; the thumbprint of an accepted
 * JWK exists and equals that of acme_jwk_public's copy; a JWS whose
 * "alg" is one of acme_jws_algs, signed with a key that suits the alg,
 * verifies (which checks the raw r||s to DER conversion of RFC 7518
 * §3.4), and does not verify under a key of the wrong type or curve.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "protocols/acme/acme.h"
#include "tests/fuzz/fuzz.h"

/* The algorithms of RFC 8555 §6.2 pkid accepts, with a key for each. */
static struct {
	const char	*alg;
	const char	*type;		/* EVP_PKEY_Q_keygen arguments */
	const char	*curve_or_bits;
	size_t		 coord;		/* ECDSA: bytes of r and of s */
	const EVP_MD	*(*md)(void);
	EVP_PKEY	*key;		/* generated at start */
} jws_fuzz_keys[] = {
	{ "RS256", "RSA", NULL, 0, EVP_sha256, NULL },
	{ "ES256", "EC", "P-256", 32, EVP_sha256, NULL },
	{ "ES384", "EC", "P-384", 48, EVP_sha384, NULL },
	{ "ES512", "EC", "P-521", 66, EVP_sha512, NULL },
	{ "EdDSA", "ED25519", NULL, 0, NULL, NULL },
};
#define JWS_FUZZ_NKEYS	(sizeof(jws_fuzz_keys) / sizeof(jws_fuzz_keys[0]))
#define JWS_FUZZ_RSA_BITS	2048
#define JWS_FUZZ_SIG_MAX	512	/* RSA-2048 and raw ECDSA fit */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	fuzz_quiet();
	for (i = 0; i < JWS_FUZZ_NKEYS; i++) {
		if (strcmp(jws_fuzz_keys[i].type, "RSA") == 0)
			jws_fuzz_keys[i].key = EVP_PKEY_Q_keygen(NULL, NULL,
			    "RSA", (size_t)JWS_FUZZ_RSA_BITS);
		else if (strcmp(jws_fuzz_keys[i].type, "EC") == 0)
			jws_fuzz_keys[i].key = EVP_PKEY_Q_keygen(NULL, NULL,
			    "EC", jws_fuzz_keys[i].curve_or_bits);
		else
			jws_fuzz_keys[i].key = EVP_PKEY_Q_keygen(NULL, NULL,
			    jws_fuzz_keys[i].type);
		if (jws_fuzz_keys[i].key == NULL)
			abort();
	}
	return 0;
}

/* Signs msg with entry k the way a JOSE client does (raw r||s for
 * ECDSA) into sig; returns its length, 0 on failure. */
static size_t
jws_fuzz_sign(size_t k, const char *msg, unsigned char *sig, size_t max)
{
	const EVP_MD *md = jws_fuzz_keys[k].md != NULL ?
	    jws_fuzz_keys[k].md() : NULL;
	unsigned char der[JWS_FUZZ_SIG_MAX];
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *es = NULL;
	EVP_MD_CTX *ctx;
	size_t len = sizeof(der), out = 0, c = jws_fuzz_keys[k].coord;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		abort();
	if (EVP_DigestSignInit(ctx, NULL, md, NULL, jws_fuzz_keys[k].key) !=
	    1 || EVP_DigestSign(ctx, der, &len, (const unsigned char *)msg,
	    strlen(msg)) != 1)
		goto out;
	if (c == 0) {
		if (len <= max) {
			memcpy(sig, der, len);
			out = len;
		}
		goto out;
	}
	if (2 * c > max || (es = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, (int)c) == (int)c &&
	    BN_bn2binpad(s, sig + c, (int)c) == (int)c)
		out = 2 * c;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return out;
}

/* The signature properties for a parsed JWS whose alg is entry k's. */
static void
jws_fuzz_signed(const struct acme_jws *j, size_t k)
{
	unsigned char sig[JWS_FUZZ_SIG_MAX];
	struct acme_prob p;
	struct acme_jws s = *j;		/* borrows j's strings */
	size_t i;

	if ((s.siglen = jws_fuzz_sign(k, j->signing_input, sig,
	    sizeof(sig))) == 0)
		abort();
	s.sig = sig;
	memset(&p, 0, sizeof(p));
	FUZZ_CHECK(acme_jws_check_sig(&s, jws_fuzz_keys[k].key, &p) == 0);
	acme_prob_clear(&p);
	for (i = 0; i < JWS_FUZZ_NKEYS; i++) {
		if (i == k)
			continue;
		memset(&p, 0, sizeof(p));
		FUZZ_CHECK(acme_jws_check_sig(&s, jws_fuzz_keys[i].key, &p) ==
		    -1 && p.status != 0);
		acme_prob_clear(&p);
	}
}

/* The JWK of the protected header, when there is one. */
static void
jws_fuzz_jwk(const struct acme_jws *j, const json_t *jwk)
{
	char t1[ACME_THUMB_MAX], t2[ACME_THUMB_MAX];
	struct acme_prob p;
	EVP_PKEY *key;
	json_t *pub;

	memset(&p, 0, sizeof(p));
	if ((key = acme_jwk_key(jwk, &p)) == NULL) {
		FUZZ_CHECK(p.status != 0);
		acme_prob_clear(&p);
		return;
	}
	FUZZ_CHECK(acme_jwk_thumbprint(jwk, t1, sizeof(t1)) == 0);
	FUZZ_CHECK((pub = acme_jwk_public(jwk)) != NULL);
	FUZZ_CHECK(acme_jwk_thumbprint(pub, t2, sizeof(t2)) == 0);
	FUZZ_CHECK(strcmp(t1, t2) == 0);
	if (acme_jws_check_sig(j, key, &p) == -1)
		FUZZ_CHECK(p.status != 0);
	acme_prob_clear(&p);
	json_decref(pub);
	EVP_PKEY_free(key);
}

static void
jws_fuzz_body(const json_t *body)
{
	struct acme_jws j;
	struct acme_prob p;
	size_t k;

	memset(&p, 0, sizeof(p));
	if (acme_jws_parse(body, &j, &p) == -1) {
		FUZZ_CHECK(p.status != 0 && j.prot == NULL && j.sig == NULL);
		acme_prob_clear(&p);
		return;
	}
	FUZZ_CHECK(j.alg != NULL && j.signing_input != NULL);
	FUZZ_CHECK(j.sig != NULL && j.siglen > 0);
	FUZZ_CHECK(j.payload != NULL && j.payload[j.payload_len] == '\0');
	if (json_object_get(j.prot, "jwk") != NULL)
		jws_fuzz_jwk(&j, json_object_get(j.prot, "jwk"));
	for (k = 0; k < JWS_FUZZ_NKEYS; k++)
		if (strcmp(j.alg, jws_fuzz_keys[k].alg) == 0)
			jws_fuzz_signed(&j, k);
	acme_jws_clear(&j);
	acme_prob_clear(&p);
}

/* Next '\n'-terminated part of [*p, end), or the rest. */
static char *
jws_fuzz_part(const uint8_t **p, const uint8_t *end, bool last)
{
	const uint8_t *nl = last ? NULL : memchr(*p, '\n', (size_t)(end - *p));
	const uint8_t *stop = nl != NULL ? nl : end;
	char *enc;

	if ((enc = common_b64_encode(*p, (size_t)(stop - *p), true, 0)) ==
	    NULL)
		abort();
	*p = nl != NULL ? nl + 1 : end;
	return enc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p, *end = data + size;
	char *prot, *payload, *sig;
	json_error_t jerr;
	json_t *body;

	if (size == 0 || size - 1 > ACME_JWS_MAX)
		return 0;
	if ((data[0] & 1) == 0) {
		body = json_loadb((const char *)data + 1, size - 1,
		    JSON_REJECT_DUPLICATES, &jerr);
	} else {
		p = data + 1;
		prot = jws_fuzz_part(&p, end, false);
		payload = jws_fuzz_part(&p, end, false);
		sig = jws_fuzz_part(&p, end, true);
		body = json_pack("{s:s, s:s, s:s}", "protected", prot,
		    "payload", payload, "signature", sig);
		free(prot);
		free(payload);
		free(sig);
		if (body == NULL)
			abort();
	}
	if (body != NULL)
		jws_fuzz_body(body);
	json_decref(body);
	ERR_clear_error();
	return 0;
}
