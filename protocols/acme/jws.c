/*
 * protocols/acme/jws.c — request authentication (RFC 8555 §6.2-6.5):
 * flattened JWS only (RFC 7515 §7.2.2), account keys as JWK (RFC 7517,
 * RFC 7518 §6, RFC 8037 "OKP"), signatures RS256, ES256/384/512 and
 * EdDSA, JWK thumbprints (RFC 7638), anti-replay nonces and the url
 * header. Order of checks: content type, JWS shape, alg, jwk/kid (account
 * lookup and status), signature, nonce, url, payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include "protocols/acme/acme.h"

#define JWS_CURVE_NAME_MAX	32	/* "prime256v1" */
#define JWS_EC_COORD_MAX	66	/* P-521 coordinate bytes */
#define JWS_RSA_E_MAX_BYTES	8	/* public exponent */
#define JWS_THUMB_INPUT_MAX	4096	/* canonical JWK text */
#define JWS_SHOW_MAX		80	/* bytes of a header value quoted */

const char *const acme_jws_algs[] = {
	"RS256", "ES256", "ES384", "ES512", "EdDSA", NULL
};

/* What an "alg" asks of the key. */
struct jws_alg {
	const char	*name;
	int		 pkey_id;	/* EVP_PKEY_RSA, _EC, _ED25519 */
	const char	*curve;		/* EC group (OpenSSL name) */
	size_t		 coord;		/* EC coordinate bytes */
	const EVP_MD	*(*md)(void);	/* NULL: EdDSA (no pre-hash) */
};

static const struct jws_alg jws_alg_table[] = {
	{ "RS256", EVP_PKEY_RSA, NULL, 0, EVP_sha256 },
	{ "ES256", EVP_PKEY_EC, "prime256v1", 32, EVP_sha256 },
	{ "ES384", EVP_PKEY_EC, "secp384r1", 48, EVP_sha384 },
	{ "ES512", EVP_PKEY_EC, "secp521r1", 66, EVP_sha512 },
	{ "EdDSA", EVP_PKEY_ED25519, NULL, 0, NULL },
	{ NULL, 0, NULL, 0, NULL }
};

/* JWK "crv" names of the EC curves, with their OpenSSL group names. */
static const struct {
	const char	*crv;
	const char	*group;
	size_t		 coord;
} jws_curves[] = {
	{ "P-256", "prime256v1", 32 },
	{ "P-384", "secp384r1", 48 },
	{ "P-521", "secp521r1", 66 },
	{ NULL, NULL, 0 }
};

static const struct jws_alg *
jws_alg_find(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && jws_alg_table[i].name != NULL; i++)
		if (strcmp(jws_alg_table[i].name, name) == 0)
			return &jws_alg_table[i];
	return NULL;
}

/* badSignatureAlgorithm with the list RFC 8555 §6.2 asks for. */
void
acme_jws_bad_alg(struct acme_prob *p, const char *alg)
{
	json_t *algs;
	size_t i;

	acme_prob_set(p, 400, "badSignatureAlgorithm",
	    "JWS algorithm \"%.*s\" is not supported for this key; use one "
	    "of RS256, ES256, ES384, ES512, EdDSA", JWS_SHOW_MAX,
	    alg != NULL ? alg : "");
	if ((algs = json_array()) == NULL)
		return;
	for (i = 0; acme_jws_algs[i] != NULL; i++)
		json_array_append_new(algs, json_string(acme_jws_algs[i]));
	json_decref(p->extra);
	p->extra = json_pack("{s:o}", "algorithms", algs);
}

/* ---- JWK ---------------------------------------------------------------- */

/* Decodes the base64url string member name of jwk. -1 when absent, not a
 * string or not strict base64url. */
static int
jwk_member(const json_t *jwk, const char *name, unsigned char **out,
    size_t *len)
{
	const char *s = json_string_value(json_object_get(jwk, name));

	*out = NULL;
	*len = 0;
	if (s == NULL || *s == '\0')
		return -1;
	return common_b64_decode(s, strlen(s), true, out, len);
}

/* An RSA public key from n and e. */
static EVP_PKEY *
jwk_rsa(const json_t *jwk, struct acme_prob *p)
{
	unsigned char *n = NULL, *e = NULL;
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	int bits;

	if (jwk_member(jwk, "n", &n, &nlen) == -1 ||
	    jwk_member(jwk, "e", &e, &elen) == -1) {
		acme_prob_set(p, 400, "malformed",
		    "RSA JWK needs base64url members n and e");
		goto out;
	}
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL) {
		acme_prob_set(p, 500, "serverInternal", "out of memory");
		goto out;
	}
	bits = BN_num_bits(bn);
	if (bits < ACME_RSA_MIN_BITS || bits > ACME_RSA_MAX_BITS) {
		acme_prob_set(p, 400, "badPublicKey",
		    "RSA key of %d bits: %d to %d bits are accepted", bits,
		    ACME_RSA_MIN_BITS, ACME_RSA_MAX_BITS);
		goto out;
	}
	if (BN_num_bytes(be) > JWS_RSA_E_MAX_BYTES || !BN_is_odd(be) ||
	    BN_cmp(be, BN_value_one()) <= 0) {
		acme_prob_set(p, 400, "badPublicKey",
		    "RSA public exponent is not acceptable");
		goto out;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		acme_prob_set(p, 400, "badPublicKey",
		    "RSA JWK is not a usable key");
		key = NULL;
	}
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return key;
}

/* An EC public key from crv, x and y (full-length coordinates, RFC 7518
 * §6.2.1.2), checked to be on the curve. */
static EVP_PKEY *
jwk_ec(const json_t *jwk, struct acme_prob *p)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	unsigned char *x = NULL, *y = NULL, pt[1 + 2 * JWS_EC_COORD_MAX];
	size_t xlen, ylen, i;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	EVP_PKEY *key = NULL;

	for (i = 0; jws_curves[i].crv != NULL; i++)
		if (crv != NULL && strcmp(crv, jws_curves[i].crv) == 0)
			break;
	if (jws_curves[i].crv == NULL) {
		acme_prob_set(p, 400, "badPublicKey",
		    "EC JWK curve \"%.*s\": P-256, P-384 and P-521 are "
		    "accepted", JWS_SHOW_MAX, crv != NULL ? crv : "");
		goto out;
	}
	if (jwk_member(jwk, "x", &x, &xlen) == -1 ||
	    jwk_member(jwk, "y", &y, &ylen) == -1 ||
	    xlen != jws_curves[i].coord || ylen != jws_curves[i].coord) {
		acme_prob_set(p, 400, "malformed",
		    "EC JWK needs base64url x and y of %zu bytes each",
		    jws_curves[i].coord);
		goto out;
	}
	pt[0] = 0x04;	/* uncompressed point */
	memcpy(pt + 1, x, xlen);
	memcpy(pt + 1 + xlen, y, ylen);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    jws_curves[i].group, 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt,
	    1 + xlen + ylen) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
	    (chk = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
	    EVP_PKEY_public_check(chk) != 1) {
		acme_prob_set(p, 400, "badPublicKey",
		    "EC JWK is not a point on %s", jws_curves[i].crv);
		EVP_PKEY_free(key);
		key = NULL;
	}
out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return key;
}

/* An Ed25519 public key (RFC 8037 §2). */
static EVP_PKEY *
jwk_okp(const json_t *jwk, struct acme_prob *p)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	unsigned char *x = NULL;
	size_t xlen;
	EVP_PKEY *key = NULL;

	if (crv == NULL || strcmp(crv, "Ed25519") != 0) {
		acme_prob_set(p, 400, "badPublicKey",
		    "OKP JWK curve \"%.*s\": only Ed25519 is accepted",
		    JWS_SHOW_MAX, crv != NULL ? crv : "");
		goto out;
	}
	if (jwk_member(jwk, "x", &x, &xlen) == -1 || xlen != 32) {
		acme_prob_set(p, 400, "malformed",
		    "Ed25519 JWK needs a base64url x of 32 bytes");
		goto out;
	}
	if ((key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x,
	    xlen)) == NULL)
		acme_prob_set(p, 400, "badPublicKey",
		    "Ed25519 JWK is not a usable key");
out:
	free(x);
	return key;
}

/*
 * The public key of a JWK. A JWK carrying private members ("d", "p",
 * ...) is refused: a client that sends its private key has a bug we
 * should not reward. New reference, or NULL with p set.
 */
EVP_PKEY *
acme_jwk_key(const json_t *jwk, struct acme_prob *p)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));

	if (!json_is_object(jwk) || kty == NULL) {
		acme_prob_set(p, 400, "malformed",
		    "JWK must be an object with a \"kty\"");
		return NULL;
	}
	if (json_object_get(jwk, "d") != NULL) {
		acme_prob_set(p, 400, "badPublicKey",
		    "JWK contains a private key");
		return NULL;
	}
	if (strcmp(kty, "RSA") == 0)
		return jwk_rsa(jwk, p);
	if (strcmp(kty, "EC") == 0)
		return jwk_ec(jwk, p);
	if (strcmp(kty, "OKP") == 0)
		return jwk_okp(jwk, p);
	acme_prob_set(p, 400, "badPublicKey",
	    "JWK key type \"%.*s\": RSA, EC and OKP are accepted",
	    JWS_SHOW_MAX, kty);
	return NULL;
}

/* The required members of each key type, in RFC 7638 order. */
static const char *const *
jwk_required(const char *kty)
{
	static const char *const rsa[] = { "e", "kty", "n", NULL };
	static const char *const ec[] = { "crv", "kty", "x", "y", NULL };
	static const char *const okp[] = { "crv", "kty", "x", NULL };

	if (kty == NULL)
		return NULL;
	if (strcmp(kty, "RSA") == 0)
		return rsa;
	if (strcmp(kty, "EC") == 0)
		return ec;
	if (strcmp(kty, "OKP") == 0)
		return okp;
	return NULL;
}

json_t *
acme_jwk_public(const json_t *jwk)
{
	const char *const *req = jwk_required(json_string_value(
	    json_object_get(jwk, "kty")));
	json_t *out, *v;
	size_t i;

	if (req == NULL || (out = json_object()) == NULL)
		return NULL;
	for (i = 0; req[i] != NULL; i++) {
		if ((v = json_object_get(jwk, req[i])) == NULL ||
		    !json_is_string(v) ||
		    json_object_set(out, req[i], v) == -1) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/*
 * RFC 7638 §3: SHA-256 over the JSON object of the required members in
 * lexicographic order without whitespace. The member values are used as
 * the client sent them (they are base64url or fixed names, so no JSON
 * escaping applies): that is what the client hashes for its key
 * authorizations.
 */
int
acme_jwk_thumbprint(const json_t *jwk, char *out, size_t outlen)
{
	const char *const *req = jwk_required(json_string_value(
	    json_object_get(jwk, "kty")));
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct common_buf b;
	const char *v, *c;
	char *txt = NULL;
	size_t i;
	int rc = -1;

	common_buf_init(&b, JWS_THUMB_INPUT_MAX);
	if (req == NULL || common_buf_addstr(&b, "{") == -1)
		goto out;
	for (i = 0; req[i] != NULL; i++) {
		if ((v = json_string_value(json_object_get(jwk, req[i]))) ==
		    NULL)
			goto out;
		for (c = v; *c != '\0'; c++)
			if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
				goto out;
		if (common_buf_addf(&b, "%s\"%s\":\"%s\"", i > 0 ? "," : "",
		    req[i], v) == -1)
			goto out;
	}
	if (common_buf_addstr(&b, "}") == -1)
		goto out;
	SHA256(b.data, b.len, md);
	if ((txt = common_b64_encode(md, sizeof(md), true, 0)) == NULL ||
	    strlen(txt) >= outlen)
		goto out;
	snprintf(out, outlen, "%s", txt);
	rc = 0;
out:
	free(txt);
	common_buf_free(&b);
	return rc;
}

/* ---- JWS ---------------------------------------------------------------- */

void
acme_jws_clear(struct acme_jws *j)
{
	json_decref(j->prot);
	free(j->signing_input);
	free(j->sig);
	free(j->payload);
	memset(j, 0, sizeof(*j));
}

/* True when jws is an object of exactly the string members protected,
 * payload and signature (RFC 8555 §6.2: flattened, no unprotected
 * header). */
static bool
jws_shape_ok(const json_t *jws)
{
	const char *key;
	json_t *v;

	if (!json_is_object(jws) || json_object_size(jws) != 3)
		return false;
	json_object_foreach((json_t *)jws, key, v) {
		if ((strcmp(key, "protected") != 0 &&
		    strcmp(key, "payload") != 0 &&
		    strcmp(key, "signature") != 0) || !json_is_string(v))
			return false;
	}
	return true;
}

int
acme_jws_parse(const json_t *jws, struct acme_jws *out, struct acme_prob *p)
{
	const char *prot, *payload, *sig;
	unsigned char *hdr = NULL;
	json_error_t jerr;
	size_t hlen;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!jws_shape_ok(jws)) {
		acme_prob_set(p, 400, "malformed",
		    "request must be a flattened JWS with exactly the members "
		    "protected, payload and signature (RFC 8555 §6.2)");
		goto out;
	}
	prot = json_string_value(json_object_get(jws, "protected"));
	payload = json_string_value(json_object_get(jws, "payload"));
	sig = json_string_value(json_object_get(jws, "signature"));
	if (*prot == '\0' || common_b64_decode(prot, strlen(prot), true, &hdr,
	    &hlen) == -1) {
		acme_prob_set(p, 400, "malformed",
		    "JWS protected header is not base64url");
		goto out;
	}
	if ((out->prot = json_loadb((const char *)hdr, hlen,
	    JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(out->prot)) {
		acme_prob_set(p, 400, "malformed",
		    "JWS protected header is not a JSON object");
		goto out;
	}
	if ((out->alg = json_string_value(json_object_get(out->prot,
	    "alg"))) == NULL) {
		acme_prob_set(p, 400, "malformed",
		    "JWS protected header lacks \"alg\"");
		goto out;
	}
	if (json_object_get(out->prot, "crit") != NULL ||
	    json_object_get(out->prot, "b64") != NULL) {
		acme_prob_set(p, 400, "malformed",
		    "JWS header parameters \"crit\" and \"b64\" are not "
		    "supported");
		goto out;
	}
	if (common_b64_decode(payload, strlen(payload), true, &out->payload,
	    &out->payload_len) == -1) {
		acme_prob_set(p, 400, "malformed",
		    "JWS payload is not base64url");
		goto out;
	}
	/* An empty signature parses (alg "none" is then refused as an
	 * algorithm) and never verifies. */
	if (*sig != '\0' && common_b64_decode(sig, strlen(sig), true,
	    &out->sig, &out->siglen) == -1) {
		acme_prob_set(p, 400, "malformed",
		    "JWS signature is not base64url");
		goto out;
	}
	if (asprintf(&out->signing_input, "%s.%s", prot, payload) == -1) {
		out->signing_input = NULL;
		acme_prob_set(p, 500, "serverInternal", "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(hdr);
	if (rc == -1)
		acme_jws_clear(out);
	return rc;
}

/* The DER ECDSA-Sig-Value of a JWS raw r||s signature (RFC 7518 §3.4);
 * NULL when the length is not exactly twice the coordinate size. */
static unsigned char *
jws_ecdsa_der(const unsigned char *raw, size_t rawlen, size_t coord,
    size_t *derlen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int n;

	*derlen = 0;
	if (rawlen != 2 * coord)
		return NULL;
	if ((es = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(raw, (int)coord, NULL)) == NULL ||
	    (s = BN_bin2bn(raw + coord, (int)coord, NULL)) == NULL ||
	    ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	/* r and s now belong to es */
	if ((n = i2d_ECDSA_SIG(es, &der)) <= 0) {
		der = NULL;
		goto out;
	}
	*derlen = (size_t)n;
out:
	ECDSA_SIG_free(es);
	return der;
}

int
acme_jws_check_sig(const struct acme_jws *j, EVP_PKEY *key,
    struct acme_prob *p)
{
	const struct jws_alg *alg = jws_alg_find(j->alg);
	char group[JWS_CURVE_NAME_MAX];
	const unsigned char *sig = j->sig;
	unsigned char *der = NULL;
	size_t siglen = j->siglen, glen = 0;
	EVP_MD_CTX *md = NULL;
	int rc = -1;

	if (alg == NULL) {
		acme_jws_bad_alg(p, j->alg);
		goto out;
	}
	/* A supported alg the key cannot have made: the signature does not
	 * verify under this key (e.g. an account whose key was changed). */
	if (EVP_PKEY_get_base_id(key) != alg->pkey_id ||
	    (alg->curve != NULL && (EVP_PKEY_get_group_name(key, group,
	    sizeof(group), &glen) != 1 || strcmp(group, alg->curve) != 0))) {
		acme_prob_set(p, 400, "malformed",
		    "JWS verification error: alg %s does not suit the key",
		    alg->name);
		goto out;
	}
	if (j->siglen == 0) {
		acme_prob_set(p, 400, "malformed",
		    "JWS verification error: empty signature");
		goto out;
	}
	if (alg->curve != NULL) {
		if ((der = jws_ecdsa_der(j->sig, j->siglen, alg->coord,
		    &siglen)) == NULL) {
			acme_prob_set(p, 400, "malformed",
			    "JWS verification error: %s signature must be "
			    "%zu bytes", alg->name, 2 * alg->coord);
			goto out;
		}
		sig = der;
	}
	if ((md = EVP_MD_CTX_new()) == NULL) {
		acme_prob_set(p, 500, "serverInternal", "out of memory");
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, alg->md != NULL ? alg->md() : NULL,
	    NULL, key) != 1 ||
	    EVP_DigestVerify(md, sig, siglen,
	    (const unsigned char *)j->signing_input,
	    strlen(j->signing_input)) != 1) {
		acme_prob_set(p, 400, "malformed", "JWS verification error");
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	return rc;
}

/* ---- request authentication --------------------------------------------- */

/* True for "application/jose+json" with optional parameters. */
static bool
jws_content_type_ok(const char *ct)
{
	size_t n = strlen(ACME_CT_JOSE);

	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, ACME_CT_JOSE, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* Looks the kid account up: kid must be base + /acme/acct/<id>. */
/* ---- account key cache -------------------------------------------------- */

struct keycache_ent {
	char		 id[ACME_ID_MAX];	/* "": free slot */
	char		 thumb[ACME_THUMB_MAX];
	EVP_PKEY	*key;
	uint64_t	 used;			/* tick of the last hit */
};

/* Entries are found by a linear scan: at ACME_KEYCACHE_MAX entries it
 * costs less than one JWK conversion, and keeps eviction trivial. */
struct acme_keycache {
	pthread_mutex_t		 lock;
	uint64_t		 tick;
	struct keycache_ent	 ent[ACME_KEYCACHE_MAX];
};

struct acme_keycache *
acme_keycache_new(void)
{
	struct acme_keycache *kc;

	if ((kc = calloc(1, sizeof(*kc))) == NULL)
		return NULL;
	if (pthread_mutex_init(&kc->lock, NULL) != 0) {
		free(kc);
		return NULL;
	}
	return kc;
}

void
acme_keycache_free(struct acme_keycache *kc)
{
	size_t i;

	if (kc == NULL)
		return;
	for (i = 0; i < ACME_KEYCACHE_MAX; i++)
		EVP_PKEY_free(kc->ent[i].key);
	pthread_mutex_destroy(&kc->lock);
	free(kc);
}

/* The entry of (id, thumb), lock held; NULL when absent. */
static struct keycache_ent *
keycache_find(struct acme_keycache *kc, const char *id, const char *thumb)
{
	size_t i;

	for (i = 0; i < ACME_KEYCACHE_MAX; i++)
		if (kc->ent[i].id[0] != '\0' &&
		    strcmp(kc->ent[i].id, id) == 0 &&
		    strcmp(kc->ent[i].thumb, thumb) == 0)
			return &kc->ent[i];
	return NULL;
}

EVP_PKEY *
acme_keycache_get(struct acme_keycache *kc, const char *id,
    const char *thumb, const json_t *jwk, struct acme_prob *p)
{
	struct keycache_ent *e;
	EVP_PKEY *key = NULL;
	size_t i;

	/* Without a usable thumbprint there is nothing to key on. */
	if (kc == NULL || id == NULL || thumb == NULL ||
	    strlen(id) >= ACME_ID_MAX || strlen(thumb) >= ACME_THUMB_MAX ||
	    *thumb == '\0')
		return acme_jwk_key(jwk, p);
	pthread_mutex_lock(&kc->lock);
	if ((e = keycache_find(kc, id, thumb)) != NULL &&
	    EVP_PKEY_up_ref(e->key) == 1) {
		key = e->key;
		e->used = ++kc->tick;
	}
	pthread_mutex_unlock(&kc->lock);
	if (key != NULL)
		return key;

	/* Converted outside the lock. */
	if ((key = acme_jwk_key(jwk, p)) == NULL)
		return NULL;
	pthread_mutex_lock(&kc->lock);
	if (keycache_find(kc, id, thumb) == NULL &&
	    EVP_PKEY_up_ref(key) == 1) {
		/* the entry of an older key of id, a free slot, or the
		 * least recently used */
		e = &kc->ent[0];
		for (i = 0; i < ACME_KEYCACHE_MAX; i++) {
			if (strcmp(kc->ent[i].id, id) == 0) {
				e = &kc->ent[i];
				break;
			}
			if (e->id[0] != '\0' && (kc->ent[i].id[0] == '\0' ||
			    kc->ent[i].used < e->used))
				e = &kc->ent[i];
		}
		EVP_PKEY_free(e->key);
		snprintf(e->id, sizeof(e->id), "%s", id);
		snprintf(e->thumb, sizeof(e->thumb), "%s", thumb);
		e->key = key;
		e->used = ++kc->tick;
	}
	pthread_mutex_unlock(&kc->lock);
	return key;
}

void
acme_keycache_forget(struct acme_keycache *kc, const char *id)
{
	size_t i;

	if (kc == NULL || id == NULL)
		return;
	pthread_mutex_lock(&kc->lock);
	for (i = 0; i < ACME_KEYCACHE_MAX; i++)
		if (kc->ent[i].id[0] != '\0' &&
		    strcmp(kc->ent[i].id, id) == 0) {
			EVP_PKEY_free(kc->ent[i].key);
			memset(&kc->ent[i], 0, sizeof(kc->ent[i]));
		}
	pthread_mutex_unlock(&kc->lock);
}

static int
jws_kid_account(struct acme_req *r, const char *kid, struct acme_prob *p)
{
	char prefix[ACME_URL_MAX];
	const char *id, *status, *thumb;

	if (acme_url(r, prefix, sizeof(prefix), "acct/") == -1 ||
	    strncmp(kid, prefix, strlen(prefix)) != 0 ||
	    !common_id_valid(id = kid + strlen(prefix))) {
		acme_prob_set(p, 400, "accountDoesNotExist",
		    "kid \"%.*s\" is not an account URL of this server",
		    JWS_SHOW_MAX, kid);
		return -1;
	}
	if ((r->account = store_acme_account_get(r->a->st, NULL, id)) ==
	    NULL) {
		acme_prob_set(p, 400, "accountDoesNotExist",
		    "no account %s", id);
		return -1;
	}
	r->account_id = json_string_value(json_object_get(r->account, "id"));
	if (r->account_id == NULL) {
		acme_prob_set(p, 500, "serverInternal",
		    "account %s: record without id", id);
		return -1;
	}
	status = json_string_value(json_object_get(r->account, "status"));
	if (status == NULL || strcmp(status, "valid") != 0) {
		acme_prob_set(p, 403, "unauthorized", "account %s is %s", id,
		    status != NULL ? status : "not valid");
		return -1;
	}
	thumb = json_string_value(json_object_get(r->account, "thumbprint"));
	if ((r->key = acme_keycache_get(r->a->keys, r->account_id, thumb,
	    json_object_get(r->account, "jwk"), p)) == NULL) {
		acme_prob_set(p, 500, "serverInternal",
		    "account %s: stored key unusable", id);
		return -1;
	}
	snprintf(r->thumbprint, sizeof(r->thumbprint), "%s",
	    thumb != NULL ? thumb : "");
	return 0;
}

int
acme_req_auth(struct acme_req *r, enum acme_auth mode)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
	struct acme_prob p;
	struct acme_jws j;
	json_error_t jerr;
	json_t *body = NULL, *jwk, *kid_v;
	const char *raw, *nonce, *url, *kid;
	size_t len, i;
	int rc = -1;

	memset(&p, 0, sizeof(p));
	memset(&j, 0, sizeof(j));
	if (!jws_content_type_ok(evhttp_find_header(in, "Content-Type"))) {
		acme_prob_set(&p, 415, "malformed",
		    "Content-Type must be application/jose+json");
		goto out;
	}
	if ((raw = server_req_body(r->req, &len)) == NULL || len == 0) {
		acme_prob_set(&p, 400, "malformed", "request body is empty");
		goto out;
	}
	if ((body = json_loadb(raw, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		acme_prob_set(&p, 400, "malformed",
		    "request body is not JSON: %s", jerr.text);
		goto out;
	}
	if (acme_jws_parse(body, &j, &p) == -1)
		goto out;
	for (i = 0; acme_jws_algs[i] != NULL; i++)
		if (strcmp(j.alg, acme_jws_algs[i]) == 0)
			break;
	if (acme_jws_algs[i] == NULL) {
		acme_jws_bad_alg(&p, j.alg);
		goto out;
	}
	jwk = json_object_get(j.prot, "jwk");
	kid_v = json_object_get(j.prot, "kid");
	if ((jwk == NULL) == (kid_v == NULL)) {
		acme_prob_set(&p, 400, "malformed",
		    "JWS header must carry exactly one of \"jwk\" and \"kid\"");
		goto out;
	}
	if (mode == ACME_AUTH_KID && jwk != NULL) {
		acme_prob_set(&p, 400, "malformed",
		    "this request must be signed by an account key named by "
		    "\"kid\" (RFC 8555 §6.2)");
		goto out;
	}
	if (mode == ACME_AUTH_JWK && kid_v != NULL) {
		acme_prob_set(&p, 400, "malformed",
		    "newAccount must be signed with a \"jwk\" header "
		    "(RFC 8555 §6.2)");
		goto out;
	}
	if ((url = json_string_value(json_object_get(j.prot, "url"))) ==
	    NULL) {
		acme_prob_set(&p, 400, "malformed",
		    "JWS header lacks \"url\"");
		goto out;
	}
	nonce = json_string_value(json_object_get(j.prot, "nonce"));
	if (jwk != NULL) {
		if ((r->key = acme_jwk_key(jwk, &p)) == NULL)
			goto out;
		if ((r->jwk = acme_jwk_public(jwk)) == NULL ||
		    acme_jwk_thumbprint(r->jwk, r->thumbprint,
		    sizeof(r->thumbprint)) == -1) {
			acme_prob_set(&p, 400, "malformed",
			    "JWK members must be base64url strings");
			goto out;
		}
	} else {
		if ((kid = json_string_value(kid_v)) == NULL) {
			acme_prob_set(&p, 400, "malformed",
			    "JWS header \"kid\" must be a string");
			goto out;
		}
		if (jws_kid_account(r, kid, &p) == -1)
			goto out;
	}
	if (acme_jws_check_sig(&j, r->key, &p) == -1)
		goto out;
	if (nonce == NULL || !acme_nonce_redeem(r->a->nonces, nonce)) {
		acme_prob_set(&p, 400, "badNonce",
		    "JWS has an invalid anti-replay nonce: \"%.*s\"",
		    JWS_SHOW_MAX, nonce != NULL ? nonce : "");
		goto out;
	}
	if (strcmp(url, r->url) != 0) {
		acme_prob_set(&p, 403, "unauthorized",
		    "JWS header url \"%.*s\" does not match the request URL "
		    "\"%.*s\" (RFC 8555 §6.4)", ACME_URL_MAX, url,
		    ACME_URL_MAX, r->url);
		goto out;
	}
	if (j.payload_len > 0 && (r->payload = json_loadb(
	    (const char *)j.payload, j.payload_len, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL) {
		acme_prob_set(&p, 400, "malformed",
		    "JWS payload is not JSON: %s", jerr.text);
		goto out;
	}
	if (r->payload != NULL && !json_is_object(r->payload)) {
		acme_prob_set(&p, 400, "malformed",
		    "JWS payload must be a JSON object");
		goto out;
	}
	rc = 0;
out:
	acme_jws_clear(&j);
	json_decref(body);
	if (rc == -1)
		acme_problem_send(r, &p);
	return rc;
}

int
acme_req_post_as_get(struct acme_req *r)
{
	if (r->payload == NULL)
		return 0;
	acme_problem(r, 400, "malformed",
	    "this resource is read with POST-as-GET: the JWS payload must be "
	    "empty (RFC 8555 §6.3)");
	return -1;
}
