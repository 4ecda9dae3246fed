/*
 * tests/unit/mgmt_test.c — management API: token minting and
 * verification (roles, expiry, foreign keys, alg "none", HMAC confusion,
 * claim checks), then an in-process end-to-end run: store, CA context,
 * lifecycle, server on 127.0.0.1:0 and mgmt, driven with libcurl,
 * including the ACME External Account Binding keys (create, list,
 * delete, role checks, refused bodies), the EST clients (create with a
 * hashed password that is never returned or logged, labels checked
 * against est.labels, conflict, list, delete, roles) and the EST
 * manual-approval requests (seeded through the store; list, status
 * filter, approve, reject, 409 once decided).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "conf/conf.h"
#include "protocols/mgmt/mgmt.h"
#include "server/server.h"
#include "store/store.h"
#include "tests/unit/test.h"

#define T_WHY_MAX	256
#define T_PATH_MAX	512
#define T_URL_MAX	1024
#define T_HDRS_MAX	8192
#define T_BODY_MAX	(4 * 1024 * 1024)
#define T_TTL		3600L
#define T_BIND_TRIES	200	/* x 50 ms waiting for the listener */
#define T_LOG_MAX	(4 * 1024 * 1024)	/* captured log bytes */
#define T_EST_CONF	"{ \"est\": { \"labels\": { \"iot\": {}, " \
	"\"servers\": { \"manual_approval\": true } } } }"
#define T_EST_PASSWORD	"s3cret-Horse-battery"

/* A directory under the test's tmpdir: tmpdir/name. */
static const char *
t_dir(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", test_tmpdir(), name);
	common_mkdirs(buf, 0700);
	return buf;
}

/* Verifies token against the key of dir; 0 or -1 with why. */
static int
t_verify(const char *dir, const char *token, char **sub,
    enum mgmt_role *role, char *why, size_t whylen)
{
	struct mgmt_token_key *k;
	int rc;

	*sub = NULL;
	if ((k = mgmt_token_key_load(dir)) == NULL) {
		snprintf(why, whylen, "key load failed");
		return -1;
	}
	rc = mgmt_token_verify(k, token, sub, role, why, whylen);
	mgmt_token_key_free(k);
	return rc;
}

/* base64url(json) + "." + base64url(json) + "." + sig, to free(). */
static char *
t_compact(const char *hdr, const char *claims, const char *sig)
{
	char *h = common_b64_encode(hdr, strlen(hdr), true, 0);
	char *c = common_b64_encode(claims, strlen(claims), true, 0);
	char *out = NULL;

	if (h != NULL && c != NULL &&
	    asprintf(&out, "%s.%s.%s", h, c, sig) == -1)
		out = NULL;
	free(h);
	free(c);
	return out;
}

/* The private key PEM of dir/token.key, created if needed (to free()). */
static char *
t_priv_pem(const char *dir)
{
	char path[T_PATH_MAX], *pem = NULL;
	size_t len;

	mgmt_token_key_free(mgmt_token_key_load(dir));

	common_path(path, sizeof(path), "%s/token.key", dir);
	if (common_file_read(path, 16384, &pem, &len) == -1)
		return NULL;
	return pem;
}

/* The public key PEM matching dir/token.key (to free()). */
static char *
t_pub_pem(const char *dir)
{
	char *priv = t_priv_pem(dir), *pub = NULL;
	EVP_PKEY *k;

	if (priv == NULL)
		return NULL;
	if ((k = common_privkey_from_pem(priv, strlen(priv))) != NULL)
		pub = common_pubkey_to_pem(k);
	EVP_PKEY_free(k);
	free(priv);
	return pub;
}

/* Signs arbitrary claims (JSON) with alg and key using libjwt. */
static char *
t_sign(const char *claims, jwt_alg_t alg, const char *key)
{
	jwt_t *jwt = NULL;
	char *tok = NULL;

	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_add_grants_json(jwt, claims) == 0 &&
	    jwt_set_alg(jwt, alg, (const unsigned char *)key,
	    key != NULL ? (int)strlen(key) : 0) == 0)
		tok = jwt_encode_str(jwt);
	jwt_free(jwt);
	return tok;
}

/* ---- tokens ---- */

static void
test_role_parse(void)
{
	enum mgmt_role r;
	int i;

	CHECK(mgmt_role_parse("admin", &r) == 0 && r == MGMT_ROLE_ADMIN);
	CHECK(mgmt_role_parse("operator", &r) == 0 &&
	    r == MGMT_ROLE_OPERATOR);
	CHECK(mgmt_role_parse("auditor", &r) == 0 && r == MGMT_ROLE_AUDITOR);
	CHECK(mgmt_role_parse("Admin", &r) == -1);
	CHECK(mgmt_role_parse("root", &r) == -1);
	CHECK(mgmt_role_parse("", &r) == -1);
	CHECK(mgmt_role_parse(NULL, &r) == -1);
	for (i = 0; i < MGMT_ROLE__MAX; i++) {
		CHECK(mgmt_role_parse(mgmt_role_name((enum mgmt_role)i),
		    &r) == 0 && (int)r == i);
	}
	CHECK_STR(mgmt_role_name(MGMT_ROLE__MAX), "unknown");
}

static void
test_token_roundtrip(void)
{
	char dir[T_PATH_MAX], path[T_PATH_MAX], why[T_WHY_MAX];
	char *tok, *sub;
	enum mgmt_role role;
	struct stat st;
	int i;

	t_dir("tok-a", dir, sizeof(dir));
	for (i = 0; i < MGMT_ROLE__MAX; i++) {
		tok = mgmt_token_mint(dir, "alice", (enum mgmt_role)i, T_TTL);
		CHECK(tok != NULL);
		if (tok == NULL)
			continue;
		CHECK(strlen(tok) < MGMT_TOKEN_MAX);
		CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == 0);
		CHECK_STR(sub, "alice");
		CHECK((int)role == i);
		free(sub);
		free(tok);
	}
	/* created on first use, private to the owner */
	common_path(path, sizeof(path), "%s/token.key", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* bad arguments mint nothing */
	CHECK(mgmt_token_mint(dir, "", MGMT_ROLE_ADMIN, T_TTL) == NULL);
	CHECK(mgmt_token_mint(dir, "a\nb", MGMT_ROLE_ADMIN, T_TTL) == NULL);
	CHECK(mgmt_token_mint(dir, "alice", MGMT_ROLE__MAX, T_TTL) == NULL);
	CHECK(mgmt_token_mint(dir, "alice", MGMT_ROLE_ADMIN, 0) == NULL);
	/* a key readable by others is refused */
	CHECK(chmod(path, 0644) == 0);
	CHECK(mgmt_token_key_load(dir) == NULL);
	CHECK(mgmt_token_mint(dir, "alice", MGMT_ROLE_ADMIN, T_TTL) == NULL);
	CHECK(chmod(path, 0600) == 0);
}

static void
test_token_expired(void)
{
	char dir[T_PATH_MAX], why[T_WHY_MAX], *tok, *sub;
	enum mgmt_role role;

	t_dir("tok-a", dir, sizeof(dir));
	tok = mgmt_token_mint(dir, "bob", MGMT_ROLE_OPERATOR, 60);
	CHECK(tok != NULL);
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == 0);
	free(sub);
	common_clock_set_offset(61);
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "expired") != NULL);
	CHECK(sub == NULL);
	common_clock_set_offset(0);
	/* a token minted in the future (iat ahead) is refused too */
	common_clock_set_offset(MGMT_IAT_SKEW + 60);
	free(tok);
	tok = mgmt_token_mint(dir, "bob", MGMT_ROLE_OPERATOR, T_TTL);
	common_clock_set_offset(0);
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "future") != NULL);
	free(tok);
}

static void
test_token_foreign_key(void)
{
	char a[T_PATH_MAX], b[T_PATH_MAX], why[T_WHY_MAX], *tok, *sub;
	enum mgmt_role role;

	t_dir("tok-a", a, sizeof(a));
	t_dir("tok-b", b, sizeof(b));
	tok = mgmt_token_mint(b, "mallory", MGMT_ROLE_ADMIN, T_TTL);
	CHECK(tok != NULL);
	CHECK(t_verify(b, tok, &sub, &role, why, sizeof(why)) == 0);
	free(sub);
	CHECK(t_verify(a, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "signature") != NULL);
	CHECK(strstr(why, tok) == NULL);
	free(tok);
}

static void
test_token_alg_none(void)
{
	char dir[T_PATH_MAX], why[T_WHY_MAX], claims[512], *tok, *sub;
	enum mgmt_role role;
	long now = (long)common_now();

	t_dir("tok-a", dir, sizeof(dir));
	snprintf(claims, sizeof(claims), "{\"iss\":\"pkid\",\"sub\":\"eve\","
	    "\"role\":\"admin\",\"iat\":%ld,\"exp\":%ld,\"jti\":\"x\"}", now,
	    now + 3600);
	/* unsigned, with an empty and with a junk signature part */
	tok = t_compact("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, "");
	CHECK(tok != NULL);
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	free(tok);
	tok = t_compact("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, "AAAA");
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "ES256") != NULL);
	free(tok);
	/* "alg" spelled in another case, or missing */
	tok = t_compact("{\"alg\":\"NONE\"}", claims, "AAAA");
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	free(tok);
	tok = t_compact("{\"typ\":\"JWT\"}", claims, "AAAA");
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	free(tok);
	/* claims the header says ES256 but carry no valid signature */
	tok = t_compact("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", claims, "AAAA");
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "signature") != NULL);
	free(tok);
}

static void
test_token_hmac_confusion(void)
{
	char dir[T_PATH_MAX], why[T_WHY_MAX], claims[512], *tok, *sub, *pub;
	enum mgmt_role role;
	long now = (long)common_now();

	t_dir("tok-a", dir, sizeof(dir));
	pub = t_pub_pem(dir);
	CHECK(pub != NULL);
	if (pub == NULL)
		return;
	snprintf(claims, sizeof(claims), "{\"iss\":\"pkid\",\"sub\":\"eve\","
	    "\"role\":\"admin\",\"iat\":%ld,\"exp\":%ld}", now, now + 3600);
	/* HMAC keyed with the public key PEM: libjwt 1.10 alone would
	 * accept it when handed that PEM as the verification key. */
	tok = t_sign(claims, JWT_ALG_HS256, pub);
	CHECK(tok != NULL);
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "ES256") != NULL);
	free(tok);
	free(pub);
}

static void
test_token_claims(void)
{
	char dir[T_PATH_MAX], why[T_WHY_MAX], claims[512], *tok, *sub, *priv;
	char *good, *dot;
	enum mgmt_role role;
	long now = (long)common_now();

	t_dir("tok-a", dir, sizeof(dir));
	priv = t_priv_pem(dir);
	CHECK(priv != NULL);
	if (priv == NULL)
		return;
	/* validly signed, but another issuer */
	snprintf(claims, sizeof(claims), "{\"iss\":\"other\",\"sub\":\"eve\","
	    "\"role\":\"admin\",\"iat\":%ld,\"exp\":%ld}", now, now + 3600);
	tok = t_sign(claims, JWT_ALG_ES256, priv);
	CHECK(tok != NULL);
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "issuer") != NULL);
	free(tok);
	/* no exp */
	snprintf(claims, sizeof(claims), "{\"iss\":\"pkid\",\"sub\":\"eve\","
	    "\"role\":\"admin\",\"iat\":%ld}", now);
	tok = t_sign(claims, JWT_ALG_ES256, priv);
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "exp") != NULL);
	free(tok);
	/* unknown role */
	snprintf(claims, sizeof(claims), "{\"iss\":\"pkid\",\"sub\":\"eve\","
	    "\"role\":\"root\",\"iat\":%ld,\"exp\":%ld}", now, now + 3600);
	tok = t_sign(claims, JWT_ALG_ES256, priv);
	CHECK(t_verify(dir, tok, &sub, &role, why, sizeof(why)) == -1);
	CHECK(strstr(why, "role") != NULL);
	free(tok);
	/* the same claims, correct: accepted (so the refusals above are
	 * about the claims, not the signing) */
	snprintf(claims, sizeof(claims), "{\"iss\":\"pkid\",\"sub\":\"eve\","
	    "\"role\":\"auditor\",\"iat\":%ld,\"exp\":%ld}", now, now + 3600);
	good = t_sign(claims, JWT_ALG_ES256, priv);
	CHECK(t_verify(dir, good, &sub, &role, why, sizeof(why)) == 0);
	CHECK(role == MGMT_ROLE_AUDITOR);
	free(sub);
	/* its claims swapped for admin claims under the same signature */
	if (good != NULL && (dot = strchr(good, '.')) != NULL) {
		char *forged, *sig = strrchr(good, '.');
		char *h = strndup(good, (size_t)(dot - good));
		char *c2;

		snprintf(claims, sizeof(claims), "{\"iss\":\"pkid\",\"sub\":"
		    "\"eve\",\"role\":\"admin\",\"iat\":%ld,\"exp\":%ld}", now,
		    now + 3600);
		c2 = common_b64_encode(claims, strlen(claims), true, 0);
		CHECK(asprintf(&forged, "%s.%s%s", h, c2, sig) > 0);
		CHECK(t_verify(dir, forged, &sub, &role, why, sizeof(why)) ==
		    -1);
		CHECK(strstr(why, "signature") != NULL);
		free(forged);
		free(c2);
		free(h);
	}
	/* malformed shapes */
	CHECK(t_verify(dir, "", &sub, &role, why, sizeof(why)) == -1);
	CHECK(t_verify(dir, "abc", &sub, &role, why, sizeof(why)) == -1);
	CHECK(t_verify(dir, "a.b.c.d", &sub, &role, why, sizeof(why)) == -1);
	CHECK(t_verify(dir, "a b.c.d", &sub, &role, why, sizeof(why)) == -1);
	free(good);
	free(priv);
}

static void
test_token_header(void)
{
	char dir[T_PATH_MAX], why[T_WHY_MAX], *tok, *sub, *hdr, *big;
	struct mgmt_token_key *k;
	enum mgmt_role role;

	t_dir("tok-a", dir, sizeof(dir));
	k = mgmt_token_key_load(dir);
	tok = mgmt_token_mint(dir, "carol", MGMT_ROLE_ADMIN, T_TTL);
	CHECK(k != NULL && tok != NULL);
	if (k == NULL || tok == NULL)
		goto out;
	CHECK(asprintf(&hdr, "bEaReR %s", tok) > 0);
	CHECK(mgmt_token_verify_header(k, hdr, &sub, &role, why,
	    sizeof(why)) == 0);
	CHECK_STR(sub, "carol");
	free(sub);
	free(hdr);
	CHECK(asprintf(&hdr, "Basic %s", tok) > 0);
	CHECK(mgmt_token_verify_header(k, hdr, &sub, &role, why,
	    sizeof(why)) == -1);
	CHECK(strstr(why, "Bearer") != NULL);
	free(hdr);
	CHECK(mgmt_token_verify_header(k, NULL, &sub, &role, why,
	    sizeof(why)) == -1);
	CHECK(strstr(why, "missing") != NULL);
	CHECK(mgmt_token_verify_header(k, "Bearer", &sub, &role, why,
	    sizeof(why)) == -1);
	CHECK(mgmt_token_verify_header(k, "Bearer ", &sub, &role, why,
	    sizeof(why)) == -1);
	big = malloc(MGMT_TOKEN_MAX + 16);
	if (big != NULL) {
		memcpy(big, "Bearer ", 7);
		memset(big + 7, 'a', MGMT_TOKEN_MAX + 1);
		big[7 + MGMT_TOKEN_MAX + 1] = '\0';
		CHECK(mgmt_token_verify_header(k, big, &sub, &role, why,
		    sizeof(why)) == -1);
		CHECK(strstr(why, "longer") != NULL);
		free(big);
	}
out:
	free(tok);
	mgmt_token_key_free(k);
	mgmt_token_key_free(NULL);
	mgmt_free(NULL);
}

/* ---- end to end ---- */

struct t_env {
	char		 dir[T_PATH_MAX];
	char		 cafile[T_PATH_MAX];
	char		 cffile[T_PATH_MAX];
	char		 base[T_URL_MAX];	/* "https://127.0.0.1:PORT" */
	struct conf	*cf;
	struct store	*st;
	struct ca_ctx	*ca;
	struct lifecycle *lc;
	struct server	*srv;
	struct mgmt	*m;
	pthread_t	 thr;
	bool		 running;
	char		*admin, *operator, *auditor;
};

struct t_resp {
	long	 status;
	char	*body;
	size_t	 len;
	char	 hdrs[T_HDRS_MAX];
	size_t	 hlen;
	json_t	*json;
};

static size_t
t_body_cb(char *p, size_t size, size_t n, void *arg)
{
	struct t_resp *r = arg;
	size_t add = size * n;
	char *nb;

	if (r->len + add > T_BODY_MAX ||
	    (nb = realloc(r->body, r->len + add + 1)) == NULL)
		return 0;
	memcpy(nb + r->len, p, add);
	r->body = nb;
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t
t_hdr_cb(char *p, size_t size, size_t n, void *arg)
{
	struct t_resp *r = arg;
	size_t add = size * n;

	if (r->hlen + add < sizeof(r->hdrs)) {
		memcpy(r->hdrs + r->hlen, p, add);
		r->hlen += add;
		r->hdrs[r->hlen] = '\0';
	}
	return add;
}

static void
t_resp_free(struct t_resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/*
 * One request to the mgmt listener; fills r (status, body, headers and
 * the body as JSON when it parses). 0, or -1 on a transport failure.
 */
static int
t_http(struct t_env *e, const char *method, const char *path,
    const char *token, const char *body, size_t blen, struct t_resp *r)
{
	char url[T_URL_MAX], auth[MGMT_TOKEN_MAX + 64];
	struct curl_slist *h = NULL;
	CURLcode cc;
	CURL *cu;

	memset(r, 0, sizeof(*r));
	if ((cu = curl_easy_init()) == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s%s", e->base, path);
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_CAINFO, e->cafile);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, t_body_cb);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, t_hdr_cb);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, r);
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		    token);
		h = curl_slist_append(h, auth);
	}
	if (body != NULL) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)blen);
	}
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	cc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(cu);
	curl_slist_free_all(h);
	if (cc != CURLE_OK && r->status == 0) {
		fprintf(stderr, "curl %s %s: %s\n", method, path,
		    curl_easy_strerror(cc));
		return -1;
	}
	if (r->body != NULL)
		r->json = json_loadb(r->body, r->len, 0, NULL);
	return 0;
}

/* Request with a JSON body given as a string. */
static long
t_call(struct t_env *e, const char *method, const char *path,
    const char *token, const char *body, struct t_resp *r)
{
	if (t_http(e, method, path, token, body, body != NULL ?
	    strlen(body) : 0, r) == -1)
		return -1;
	if (getenv("MGMT_TEST_VERBOSE") != NULL)
		fprintf(stderr, "%s %s -> %ld %s\n", method, path, r->status,
		    r->body != NULL ? r->body : "");
	return r->status;
}

/* The error code of an error answer, or "". */
static const char *
t_err_code(const struct t_resp *r)
{
	const char *s = json_string_value(json_object_get(json_object_get(
	    r->json, "error"), "code"));

	return s != NULL ? s : "";
}

static const char *
t_err_msg(const struct t_resp *r)
{
	const char *s = json_string_value(json_object_get(json_object_get(
	    r->json, "error"), "message"));

	return s != NULL ? s : "";
}

static const char *
t_str(const struct t_resp *r, const char *key)
{
	return json_string_value(json_object_get(r->json, key));
}

/*
 * A certificate for pub named subj (or CN=cn), signed by issuer/ikey (self-signed
 * when issuer is NULL; ikey then signs its own pub), with the extensions
 * given as "name:value" OpenSSL config strings. NULL on failure.
 */
static X509 *
t_make_cert(const char *cn, const X509_NAME *subj, EVP_PKEY *pub,
    X509 *issuer, EVP_PKEY *ikey, long serial, const char *const *exts)
{
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	X509 *x;
	char name[64];
	const char *val;
	size_t i;

	if ((x = X509_new()) == NULL)
		return NULL;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3L * 365 * 86400);
	if (subj != NULL)
		X509_set_subject_name(x, subj);
	else
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
		    MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ?
	    issuer : x));
	X509_set_pubkey(x, pub);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	for (i = 0; exts[i] != NULL; i++) {
		val = strchr(exts[i], ':');
		snprintf(name, sizeof(name), "%.*s", (int)(val - exts[i]),
		    exts[i]);
		ext = X509V3_EXT_nconf(NULL, &v3, name, val + 1);
		if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
			X509_EXTENSION_free(ext);
			X509_free(x);
			return NULL;
		}
		X509_EXTENSION_free(ext);
	}
	if (X509_sign(x, ikey, EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* A self-signed P-256 certificate for 127.0.0.1: chain and key PEM. */
static int
t_server_cert(char **cert_pem, char **key_pem)
{
	static const char *const exts[] = {
		"subjectAltName:IP:127.0.0.1,DNS:localhost", NULL
	};
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int rc = -1;

	*cert_pem = *key_pem = NULL;
	if ((k = EVP_EC_gen("P-256")) == NULL ||
	    (x = t_make_cert("localhost", NULL, k, NULL, k, 1, exts)) == NULL)
		goto out;
	*cert_pem = common_x509_to_pem(x);
	*key_pem = common_privkey_to_pem(k);
	rc = *cert_pem != NULL && *key_pem != NULL ? 0 : -1;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

/*
 * Plays an external CA: makes its own root and signs csr_pem as an
 * intermediate CA certificate. 0 with both PEMs (to free()), or -1.
 */
static int
t_external_sign(const char *csr_pem, char **cert_pem, char **root_pem)
{
	static const char *const root_exts[] = {
		"basicConstraints:critical,CA:TRUE",
		"keyUsage:critical,keyCertSign,cRLSign",
		"subjectKeyIdentifier:hash", NULL
	};
	static const char *const sub_exts[] = {
		"basicConstraints:critical,CA:TRUE,pathlen:0",
		"keyUsage:critical,keyCertSign,cRLSign",
		"subjectKeyIdentifier:hash",
		"authorityKeyIdentifier:keyid:always", NULL
	};
	X509_REQ *req = NULL;
	EVP_PKEY *rk = NULL;
	X509 *root = NULL, *x = NULL;
	int rc = -1;

	*cert_pem = *root_pem = NULL;
	if ((req = common_csr_from_pem(csr_pem, strlen(csr_pem))) == NULL ||
	    (rk = EVP_EC_gen("P-256")) == NULL ||
	    (root = t_make_cert("External Root", NULL, rk, NULL, rk, 10,
	    root_exts)) == NULL ||
	    (x = t_make_cert(NULL, X509_REQ_get_subject_name(req),
	    X509_REQ_get0_pubkey(req), root, rk, 11, sub_exts)) == NULL)
		goto out;
	*cert_pem = common_x509_to_pem(x);
	*root_pem = common_x509_to_pem(root);
	rc = *cert_pem != NULL && *root_pem != NULL ? 0 : -1;
out:
	X509_free(x);
	X509_free(root);
	EVP_PKEY_free(rk);
	X509_REQ_free(req);
	return rc;
}

static void *
t_server_thread(void *arg)
{
	struct t_env *e = arg;

	if (server_run(e->srv) != 0)
		fprintf(stderr, "server_run failed\n");
	return NULL;
}

static void
t_setstr(char **slot, const char *v)
{
	free(*slot);
	*slot = strdup(v);
}

/* Builds the whole stack and starts the server. 0 or -1. */
static int
t_env_start(struct t_env *e)
{
	struct ca_config cacfg;
	struct lifecycle_config lccfg = { 90, 30, NULL };
	struct mgmt_config mcfg;
	char *cert = NULL, *key = NULL, why[T_WHY_MAX + T_PATH_MAX];
	SSL_CTX *tls = NULL;
	const char *bound = NULL;
	int i, rc = -1;

	t_dir("e2e", e->dir, sizeof(e->dir));
	common_path(e->cafile, sizeof(e->cafile), "%s/tls-ca.pem", e->dir);
	if (t_server_cert(&cert, &key) == -1 ||
	    common_file_write(e->cafile, cert, strlen(cert), 0644) == -1 ||
	    (tls = server_tls_ctx(cert, key)) == NULL) {
		fprintf(stderr, "e2e: TLS setup failed\n");
		goto out;
	}
	/* Two EST labels, for the label checks of EST clients. */
	common_path(e->cffile, sizeof(e->cffile), "%s/pkid.json", e->dir);
	if (common_file_write(e->cffile, T_EST_CONF, strlen(T_EST_CONF),
	    0600) == -1 ||
	    (e->cf = conf_load(e->cffile, why, sizeof(why))) == NULL) {
		fprintf(stderr, "e2e: configuration: %s\n", why);
		goto out;
	}
	t_setstr(&e->cf->data_dir, e->dir);
	t_setstr(&e->cf->listen.mgmt, "127.0.0.1:0");
	t_setstr(&e->cf->listen.http, "127.0.0.1:0");
	t_setstr(&e->cf->listen.https, "127.0.0.1:0");
	e->cf->workers = 2;
	if ((e->st = store_open(e->dir)) == NULL) {
		fprintf(stderr, "e2e: store_open failed\n");
		goto out;
	}
	memset(&cacfg, 0, sizeof(cacfg));
	cacfg.data_dir = e->dir;
	cacfg.http_base_url = "http://127.0.0.1:8080";
	if ((e->ca = ca_ctx_new(e->st, &cacfg)) == NULL ||
	    (e->lc = lifecycle_new(e->ca, &lccfg)) == NULL) {
		fprintf(stderr, "e2e: ca/lifecycle setup failed\n");
		goto out;
	}
	if ((e->srv = server_new(e->cf, tls)) == NULL)
		goto out;
	memset(&mcfg, 0, sizeof(mcfg));
	mcfg.data_dir = e->dir;
	mcfg.crl_next_update_seconds = 86400;
	mcfg.http_base_url = "http://127.0.0.1:8080/";
	mcfg.conf = e->cf;
	if ((e->m = mgmt_new(e->srv, e->ca, e->lc, &mcfg)) == NULL)
		goto out;
	e->admin = mgmt_token_mint(e->dir, "alice", MGMT_ROLE_ADMIN, T_TTL);
	e->operator = mgmt_token_mint(e->dir, "olga", MGMT_ROLE_OPERATOR,
	    T_TTL);
	e->auditor = mgmt_token_mint(e->dir, "audrey", MGMT_ROLE_AUDITOR,
	    T_TTL);
	if (e->admin == NULL || e->operator == NULL || e->auditor == NULL)
		goto out;
	if (pthread_create(&e->thr, NULL, t_server_thread, e) != 0)
		goto out;
	e->running = true;
	for (i = 0; i < T_BIND_TRIES; i++) {
		if ((bound = server_bound(e->srv, SERVER_MGMT)) != NULL &&
		    strchr(bound, ':') != NULL &&
		    strcmp(strrchr(bound, ':'), ":0") != 0)
			break;
		bound = NULL;
		usleep(50 * 1000);
	}
	if (bound == NULL) {
		fprintf(stderr, "e2e: mgmt listener never bound\n");
		goto out;
	}
	snprintf(e->base, sizeof(e->base), "https://%s", bound);
	rc = 0;
out:
	SSL_CTX_free(tls);
	free(cert);
	free(key);
	return rc;
}

static void
t_env_stop(struct t_env *e)
{
	if (e->running) {
		server_stop(e->srv);
		pthread_join(e->thr, NULL);
	}
	mgmt_free(e->m);
	server_free(e->srv);
	lifecycle_free(e->lc);
	ca_ctx_free(e->ca);
	store_close(e->st);
	conf_free(e->cf);
	free(e->admin);
	free(e->operator);
	free(e->auditor);
}

/* Authentication, routing and body refusals. */
static void
t_e2e_refusals(struct t_env *e)
{
	struct t_resp r;
	char *big;
	size_t i;

	CHECK(t_call(e, "GET", "/api/v1/cas", NULL, NULL, &r) == 401);
	CHECK_STR(t_err_code(&r), "unauthorized");
	CHECK(strstr(r.hdrs, "WWW-Authenticate: Bearer realm=\"pkid\"") !=
	    NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/cas", "not.a.token", NULL, &r) ==
	    401);
	CHECK(strstr(t_err_msg(&r), "not.a.token") == NULL);
	t_resp_free(&r);

	CHECK(t_call(e, "POST", "/api/v1/certificates", e->auditor, "{}",
	    &r) == 403);
	CHECK_STR(t_err_code(&r), "forbidden");
	CHECK(strstr(t_err_msg(&r), "operator") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/cas", e->operator, "{}", &r) == 403);
	CHECK(strstr(t_err_msg(&r), "admin") != NULL);
	t_resp_free(&r);

	CHECK(t_call(e, "GET", "/api/v1/nope", e->admin, NULL, &r) == 404);
	CHECK_STR(t_err_code(&r), "not_found");
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/cas/bad%20id", e->admin, NULL, &r) ==
	    404);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/certificates/x/versions/0", e->admin,
	    NULL, &r) == 404);
	t_resp_free(&r);
	CHECK(t_call(e, "DELETE", "/api/v1/cas", e->admin, NULL, &r) == 405);
	CHECK_STR(t_err_code(&r), "method_not_allowed");
	CHECK(strstr(r.hdrs, "Allow: GET, POST") != NULL);
	t_resp_free(&r);

	CHECK(t_call(e, "POST", "/api/v1/certificates", e->operator,
	    "{\"name\": ", &r) == 400);
	CHECK_STR(t_err_code(&r), "invalid_json");
	CHECK(strstr(t_err_msg(&r), "line 1") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/resources", e->operator,
	    "{\"a\":1,\"a\":2}", &r) == 400);
	CHECK_STR(t_err_code(&r), "invalid_json");
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/resources", e->operator, "[1]",
	    &r) == 400);
	CHECK_STR(t_err_code(&r), "invalid_json");
	t_resp_free(&r);

	if ((big = malloc(MGMT_BODY_MAX + 4096)) != NULL) {
		big[0] = '"';
		for (i = 1; i < MGMT_BODY_MAX + 4094; i++)
			big[i] = 'a';
		big[i++] = '"';
		big[i] = '\0';
		CHECK(t_http(e, "POST", "/api/v1/certificates", e->operator,
		    big, i, &r) == 0);
		CHECK(r.status == 413);
		CHECK_STR(t_err_code(&r), "too_large");
		t_resp_free(&r);
		free(big);
	}

	CHECK(t_call(e, "GET", "/api/v1/cas?limit=0", e->admin, NULL, &r) ==
	    400);
	CHECK(strstr(t_err_msg(&r), "limit") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/cas?bogus=1", e->admin, NULL, &r) ==
	    400);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/cas", e->admin, "{\"name\":\"x\","
	    "\"type\":\"root\",\"subject\":\"CN=x\",\"key_algorithm\":"
	    "\"ECDSA_P256\",\"colour\":\"red\"}", &r) == 400);
	CHECK_STR(t_err_code(&r), "invalid_request");
	CHECK(strstr(t_err_msg(&r), "colour") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/cas", e->admin, "{\"name\":\"x\","
	    "\"type\":\"subordinate\",\"subject\":\"CN=x\",\"key_algorithm\":"
	    "\"ECDSA_P256\"}", &r) == 400);
	CHECK(strstr(t_err_msg(&r), "issuer_ca_id") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/cas", e->admin, "{\"name\":\"x\","
	    "\"type\":\"root\",\"subject\":\"CN=x\",\"key_algorithm\":"
	    "\"ED25519\"}", &r) == 400);
	CHECK(strstr(t_err_msg(&r), "key_algorithm") != NULL);
	t_resp_free(&r);
}

/* CAs, a managed certificate, associations, revocation, deletion. */
static void
t_e2e_flow(struct t_env *e)
{
	char path[T_PATH_MAX], body[1024], root[80] = "", sub[80] = "";
	char cert[80] = "", res[80] = "", assoc[80] = "";
	struct t_resp r;
	json_t *v;

	/* CAs */
	CHECK(t_call(e, "POST", "/api/v1/cas", e->admin, "{\"name\":\"Root\","
	    "\"type\":\"root\",\"subject\":\"CN=Test Root,O=pkid\","
	    "\"key_algorithm\":\"ECDSA_P256\"}", &r) == 201);
	if (t_str(&r, "id") != NULL)
		snprintf(root, sizeof(root), "%s", t_str(&r, "id"));
	CHECK_STR(t_str(&r, "type"), "root");
	CHECK_STR(t_str(&r, "state"), "active");
	CHECK_STR(t_str(&r, "key_algorithm"), "ECDSA_P256");
	CHECK_STR(t_str(&r, "key_backend"), "file");
	CHECK(t_str(&r, "serial") != NULL);
	CHECK(t_str(&r, "certificate") != NULL);
	CHECK(json_object_get(r.json, "key") == NULL);
	snprintf(path, sizeof(path), "http://127.0.0.1:8080/crl/%s.crl", root);
	CHECK_STR(t_str(&r, "crl_url"), path);
	t_resp_free(&r);

	snprintf(body, sizeof(body), "{\"name\":\"Issuing\",\"type\":"
	    "\"subordinate\",\"issuer_ca_id\":\"%s\",\"subject\":"
	    "\"CN=Test Issuing,O=pkid\",\"key_algorithm\":\"ECDSA_P256\","
	    "\"path_len\":0,\"validity_days\":365}", root);
	CHECK(t_call(e, "POST", "/api/v1/cas", e->admin, body, &r) == 201);
	if (t_str(&r, "id") != NULL)
		snprintf(sub, sizeof(sub), "%s", t_str(&r, "id"));
	CHECK_STR(t_str(&r, "parent_id"), root);
	t_resp_free(&r);

	CHECK(t_call(e, "GET", "/api/v1/cas?limit=1", e->auditor, NULL,
	    &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "cas")) == 1);
	CHECK(t_str(&r, "next_page_token") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/cas", e->auditor, NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "cas")) == 2);
	CHECK(json_is_null(json_object_get(r.json, "next_page_token")));
	t_resp_free(&r);

	snprintf(path, sizeof(path), "/api/v1/cas/%s/bundle", sub);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 200);
	CHECK(strstr(r.hdrs, "application/pem-certificate-chain") != NULL);
	CHECK(r.body != NULL && strstr(r.body, "BEGIN CERTIFICATE") != NULL &&
	    strstr(strstr(r.body, "END CERTIFICATE"), "BEGIN CERTIFICATE") !=
	    NULL);
	t_resp_free(&r);

	snprintf(path, sizeof(path), "/api/v1/cas/%s/crl", sub);
	CHECK(t_call(e, "POST", path, e->auditor, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 200);
	CHECK_STR(t_str(&r, "ca_id"), sub);
	CHECK(json_is_integer(json_object_get(r.json, "crl_number")));
	CHECK(t_str(&r, "this_update") != NULL);
	CHECK(t_str(&r, "next_update") != NULL);
	t_resp_free(&r);

	/* a managed certificate, a resource and an association */
	snprintf(body, sizeof(body), "{\"name\":\"web1\",\"mode\":\"managed\","
	    "\"ca_id\":\"%s\",\"profile\":\"tls_server\",\"subject\":"
	    "\"CN=web1.example.com\",\"sans\":[\"web1.example.com\","
	    "\"10.0.0.5\"],\"key_algorithm\":\"ECDSA_P256\","
	    "\"validity_days\":30}", sub);
	CHECK(t_call(e, "POST", "/api/v1/certificates", e->operator, body,
	    &r) == 201);
	if (t_str(&r, "id") != NULL)
		snprintf(cert, sizeof(cert), "%s", t_str(&r, "id"));
	v = json_object_get(r.json, "current");
	CHECK(json_is_object(v));
	CHECK(json_object_get(v, "private_key") == NULL);
	CHECK(json_object_get(v, "key_id") == NULL);
	t_resp_free(&r);

	CHECK(t_call(e, "POST", "/api/v1/resources", e->operator,
	    "{\"name\":\"box1\",\"type\":\"other\",\"config\":{}}", &r) == 201);
	if (t_str(&r, "id") != NULL)
		snprintf(res, sizeof(res), "%s", t_str(&r, "id"));
	t_resp_free(&r);
	snprintf(body, sizeof(body), "{\"certificate_id\":\"%s\","
	    "\"resource_id\":\"%s\"}", cert, res);
	CHECK(t_call(e, "POST", "/api/v1/associations", e->operator, body,
	    &r) == 201);
	if (t_str(&r, "id") != NULL)
		snprintf(assoc, sizeof(assoc), "%s", t_str(&r, "id"));
	t_resp_free(&r);

	snprintf(path, sizeof(path), "/api/v1/certificates/%s", cert);
	CHECK(t_call(e, "DELETE", path, e->operator, NULL, &r) == 409);
	CHECK_STR(t_err_code(&r), "conflict");
	t_resp_free(&r);

	CHECK(t_call(e, "GET", "/api/v1/certificates?ca_id=bad%20id",
	    e->auditor, NULL, &r) == 400);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates?ca_id=%s&limit=10",
	    sub);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "certificates")) == 1);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/certificates?stage=current&name=web1"
	    "&expiring_within_days=31", e->auditor, NULL, &r) == 200);
	v = json_array_get(json_object_get(r.json, "certificates"), 0);
	CHECK(json_array_size(json_object_get(r.json, "certificates")) == 1);
	CHECK_STR(json_string_value(json_object_get(v, "stage")), "current");
	CHECK(json_object_get(json_object_get(v, "current"), "certificate") ==
	    NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/certificates?expiring_within_days=x",
	    e->auditor, NULL, &r) == 400);
	CHECK(strstr(t_err_msg(&r), "expiring_within_days") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/certificates?stage=bogus",
	    e->auditor, NULL, &r) == 400);
	t_resp_free(&r);

	/* private key export: admin only */
	snprintf(path, sizeof(path), "/api/v1/certificates/%s/versions/1"
	    "?include_private_key=true", cert);
	CHECK(t_call(e, "GET", path, e->operator, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", path, e->admin, NULL, &r) == 200);
	CHECK(t_str(&r, "private_key") != NULL);
	CHECK(t_str(&r, "certificate") != NULL);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates/%s/versions/1",
	    cert);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 200);
	CHECK(json_object_get(r.json, "private_key") == NULL);
	t_resp_free(&r);

	/* renew: version 2 is pending while the certificate has an
	 * association, until promoted */
	snprintf(path, sizeof(path), "/api/v1/certificates/%s/renew", cert);
	CHECK(t_call(e, "POST", path, e->auditor, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator, "{\"x\":1}", &r) == 400);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 201);
	CHECK(json_integer_value(json_object_get(r.json, "version")) == 2);
	CHECK_STR(t_str(&r, "stage"), "pending");
	CHECK(t_str(&r, "certificate") != NULL);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates/%s/versions/2/"
	    "promote", cert);
	CHECK(t_call(e, "POST", path, e->auditor, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 200);
	CHECK_STR(t_str(&r, "stage"), "current");
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates/%s/versions/9/"
	    "promote", cert);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 404);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates/%s/versions",
	    cert);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "versions")) == 2);
	CHECK(json_object_get(json_array_get(json_object_get(r.json,
	    "versions"), 0), "certificate") == NULL);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates/%s", cert);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 200);
	CHECK(json_integer_value(json_object_get(r.json,
	    "current_version")) == 2);
	CHECK(json_is_string(json_object_get(json_object_get(r.json,
	    "current"), "certificate")));
	t_resp_free(&r);

	/* revoke: lifecycle schedules the CRL; the answer does not wait */
	snprintf(path, sizeof(path), "/api/v1/certificates/%s/versions/1/"
	    "revoke", cert);
	CHECK(t_call(e, "POST", path, e->operator, "{\"reason\":\"nope\"}",
	    &r) == 400);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator,
	    "{\"reason\":\"keyCompromise\"}", &r) == 200);
	CHECK_STR(t_str(&r, "stage"), "revoked");
	CHECK(json_object_get(r.json, "crl_published") == NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator,
	    "{\"reason\":\"keyCompromise\"}", &r) == 409);
	t_resp_free(&r);

	/* unassociate, then delete */
	snprintf(path, sizeof(path), "/api/v1/associations/%s", assoc);
	CHECK(t_call(e, "DELETE", path, e->operator, NULL, &r) == 204);
	CHECK(r.len == 0);
	t_resp_free(&r);
	/* DELETE schedules (202), cancel-deletion undoes it, ?now=true
	 * (admin only) deletes at once */
	snprintf(path, sizeof(path), "/api/v1/certificates/%s", cert);
	CHECK(t_call(e, "DELETE", path, e->operator, NULL, &r) == 202);
	CHECK_STR(json_string_value(json_object_get(r.json, "state")),
	    "pending_deletion");
	CHECK(json_is_string(json_object_get(json_object_get(r.json,
	    "deletion"), "execute_at")));
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates/%s/cancel-deletion",
	    cert);
	CHECK(t_call(e, "POST", path, e->auditor, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 200);
	CHECK_STR(t_str(&r, "state"), "active");
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 409);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates/%s?now=true", cert);
	CHECK(t_call(e, "DELETE", path, e->operator, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "DELETE", path, e->admin, NULL, &r) == 204);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/certificates/%s", cert);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 404);
	CHECK_STR(t_err_code(&r), "not_found");
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/resources/%s", res);
	CHECK(t_call(e, "DELETE", path, e->operator, NULL, &r) == 204);
	t_resp_free(&r);
}

/* A subordinate-of-external CA: pending with a CSR, then activated. */
static void
t_e2e_external(struct t_env *e)
{
	char path[T_PATH_MAX], id[80] = "", *cert = NULL, *root = NULL;
	struct t_resp r;
	json_t *body;
	char *text;

	CHECK(t_call(e, "POST", "/api/v1/cas", e->admin, "{\"name\":\"Ext\","
	    "\"type\":\"subordinate-of-external\",\"subject\":"
	    "\"CN=Ext Issuing\",\"key_algorithm\":\"ECDSA_P384\"}", &r) ==
	    201);
	CHECK_STR(t_str(&r, "state"), "pending");
	CHECK(t_str(&r, "csr") != NULL);
	CHECK(json_is_null(json_object_get(r.json, "certificate")));
	if (t_str(&r, "id") != NULL)
		snprintf(id, sizeof(id), "%s", t_str(&r, "id"));
	t_resp_free(&r);

	snprintf(path, sizeof(path), "/api/v1/cas/%s/csr", id);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 200);
	CHECK(t_str(&r, "csr") != NULL);
	if (t_str(&r, "csr") != NULL)
		CHECK(t_external_sign(t_str(&r, "csr"), &cert, &root) == 0);
	t_resp_free(&r);
	if (cert == NULL || root == NULL)
		goto out;

	snprintf(path, sizeof(path), "/api/v1/cas/%s/certificate", id);
	body = json_pack("{s:s, s:s}", "certificate", cert, "chain", root);
	text = json_dumps(body, 0);
	CHECK(t_call(e, "POST", path, e->operator, text, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->admin, text, &r) == 200);
	CHECK_STR(t_str(&r, "state"), "active");
	CHECK(t_str(&r, "serial") != NULL);
	CHECK(json_object_get(r.json, "csr") == NULL);
	t_resp_free(&r);
	free(text);
	json_decref(body);

	snprintf(path, sizeof(path), "/api/v1/cas/%s/csr", id);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 409);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/cas/%s/bundle", id);
	CHECK(t_call(e, "GET", path, e->auditor, NULL, &r) == 200);
	CHECK(r.body != NULL && strstr(r.body, "BEGIN CERTIFICATE") != NULL);
	t_resp_free(&r);
out:
	free(cert);
	free(root);
}

/* The base64url HMAC key of an EAB answer decodes to 32 bytes. */
static bool
t_eab_key_ok(const char *b64)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	bool ok;

	ok = b64 != NULL && common_b64_decode(b64, strlen(b64), true, &raw,
	    &len) == 0 && len == 32;
	free(raw);
	return ok;
}

/* ACME EAB keys: admin only; create, list without secrets, delete. */
static void
t_e2e_eab(struct t_env *e)
{
	static const char *const bad[] = {
		"{\"alg\": \"HS1\"}", "alg",
		"{\"alg\": \"RS256\"}", "alg",
		"{\"alg\": 256}", "alg",
		"{\"expires_in_days\": 0}", "expires_in_days",
		"{\"expires_in_days\": -2}", "expires_in_days",
		"{\"expires_in_days\": \"7\"}", "expires_in_days",
		"{\"expires_in_days\": 3651}", "expires_in_days",
		"{\"one_time\": \"yes\"}", "one_time",
		"{\"one_time\": 1}", "one_time",
		"{\"note\": \"line\\nbreak\"}", "note",
		"{\"note\": 5}", "note",
		"{\"kid\": \"eab-mine\"}", "kid",
		"{\"hmac_key\": \"AAAA\"}", "hmac_key",
		NULL, NULL
	};
	char kid1[80] = "", kid2[80] = "", path[T_PATH_MAX], body[512];
	char key1[128] = "";
	struct t_resp r;
	json_t *rec, *keys, *k;
	size_t i;

	/* roles: not even listing below admin */
	CHECK(t_call(e, "POST", "/api/v1/acme/eab", e->operator, "{}", &r) ==
	    403);
	CHECK(strstr(t_err_msg(&r), "admin") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/acme/eab", e->auditor, NULL, &r) ==
	    403);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/acme/eab", e->operator, NULL, &r) ==
	    403);
	t_resp_free(&r);
	CHECK(t_call(e, "DELETE", "/api/v1/acme/eab/eab-0000000000000000",
	    e->operator, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/acme/eab", NULL, NULL, &r) == 401);
	t_resp_free(&r);
	CHECK(t_call(e, "PUT", "/api/v1/acme/eab", e->admin, "{}", &r) == 405);
	CHECK(strstr(r.hdrs, "Allow: GET, POST") != NULL);
	t_resp_free(&r);

	/* an empty body: one-time HS256, no expiry */
	CHECK(t_call(e, "POST", "/api/v1/acme/eab", e->admin, NULL, &r) ==
	    201);
	if (t_str(&r, "kid") != NULL)
		snprintf(kid1, sizeof(kid1), "%s", t_str(&r, "kid"));
	if (t_str(&r, "hmac_key") != NULL)
		snprintf(key1, sizeof(key1), "%s", t_str(&r, "hmac_key"));
	CHECK(strncmp(kid1, "eab-", 4) == 0 && common_id_valid(kid1));
	CHECK(t_eab_key_ok(t_str(&r, "hmac_key")));
	CHECK_STR(t_str(&r, "alg"), "HS256");
	CHECK(json_is_true(json_object_get(r.json, "one_time")));
	CHECK(json_is_null(json_object_get(r.json, "expires_at")));
	CHECK(t_str(&r, "created_at") != NULL);
	CHECK_STR(t_str(&r, "note"), "");
	t_resp_free(&r);
	/* stored as the ACME side reads it */
	rec = store_eab_get(e->st, NULL, kid1);
	CHECK_STR(json_string_value(json_object_get(rec, "hmac_key")), key1);
	CHECK(json_is_null(json_object_get(rec, "used_by")));
	CHECK(json_is_true(json_object_get(rec, "one_time")));
	json_decref(rec);

	/* every option */
	snprintf(body, sizeof(body), "{\"one_time\": false, "
	    "\"expires_in_days\": 1.5, \"alg\": \"HS512\", \"note\": "
	    "\"team x \\u00e9\"}");
	CHECK(t_call(e, "POST", "/api/v1/acme/eab", e->admin, body, &r) ==
	    201);
	if (t_str(&r, "kid") != NULL)
		snprintf(kid2, sizeof(kid2), "%s", t_str(&r, "kid"));
	CHECK(kid2[0] != '\0' && strcmp(kid1, kid2) != 0);
	CHECK(t_eab_key_ok(t_str(&r, "hmac_key")));
	CHECK(t_str(&r, "hmac_key") != NULL &&
	    strcmp(t_str(&r, "hmac_key"), key1) != 0);
	CHECK_STR(t_str(&r, "alg"), "HS512");
	CHECK(json_is_false(json_object_get(r.json, "one_time")));
	CHECK(t_str(&r, "expires_at") != NULL && t_str(&r, "created_at") !=
	    NULL && strcmp(t_str(&r, "expires_at"), t_str(&r,
	    "created_at")) > 0);
	CHECK_STR(t_str(&r, "note"), "team x \xc3\xa9");
	t_resp_free(&r);

	for (i = 0; bad[i] != NULL; i += 2) {
		CHECK(t_call(e, "POST", "/api/v1/acme/eab", e->admin, bad[i],
		    &r) == 400);
		if (strstr(t_err_msg(&r), bad[i + 1]) == NULL)
			fprintf(stderr, "%s: message \"%s\" lacks %s\n",
			    bad[i], t_err_msg(&r), bad[i + 1]);
		CHECK(strstr(t_err_msg(&r), bad[i + 1]) != NULL);
		t_resp_free(&r);
	}
	memset(body, 'n', sizeof(body));
	memcpy(body, "{\"note\": \"", 10);
	memcpy(body + 10 + 257, "\"}", 3);
	CHECK(t_call(e, "POST", "/api/v1/acme/eab", e->admin, body, &r) ==
	    400);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/acme/eab", e->admin, "[]", &r) ==
	    400);
	CHECK_STR(t_err_code(&r), "invalid_json");
	t_resp_free(&r);

	/* listing: ordered by kid, never the secret, paged */
	CHECK(t_call(e, "GET", "/api/v1/acme/eab", e->admin, NULL, &r) ==
	    200);
	keys = json_object_get(r.json, "eab_keys");
	CHECK(json_array_size(keys) == 2);
	json_array_foreach(keys, i, k) {
		CHECK(json_object_get(k, "hmac_key") == NULL);
		CHECK(json_is_string(json_object_get(k, "alg")));
		CHECK(json_object_get(k, "used_by") != NULL);
	}
	CHECK(json_array_size(keys) == 2 && strcmp(json_string_value(
	    json_object_get(json_array_get(keys, 0), "kid")),
	    json_string_value(json_object_get(json_array_get(keys, 1),
	    "kid"))) < 0);
	CHECK(json_is_null(json_object_get(r.json, "next_page_token")));
	CHECK(r.body != NULL && strstr(r.body, key1) == NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/acme/eab?limit=1", e->admin, NULL,
	    &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "eab_keys")) == 1);
	snprintf(path, sizeof(path), "/api/v1/acme/eab?limit=1&page_token=%s",
	    t_str(&r, "next_page_token") != NULL ? t_str(&r,
	    "next_page_token") : "missing");
	t_resp_free(&r);
	CHECK(t_call(e, "GET", path, e->admin, NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "eab_keys")) == 1);
	CHECK(json_is_null(json_object_get(r.json, "next_page_token")));
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/acme/eab?page_token=..%2Fx", e->admin,
	    NULL, &r) == 400);
	t_resp_free(&r);

	/* deletion */
	snprintf(path, sizeof(path), "/api/v1/acme/eab/%s", kid1);
	CHECK(t_call(e, "DELETE", path, e->admin, NULL, &r) == 204);
	t_resp_free(&r);
	CHECK(t_call(e, "DELETE", path, e->admin, NULL, &r) == 404);
	CHECK_STR(t_err_code(&r), "not_found");
	t_resp_free(&r);
	CHECK(t_call(e, "DELETE", "/api/v1/acme/eab/not%20an%20id", e->admin,
	    NULL, &r) == 404);
	t_resp_free(&r);
	CHECK(store_eab_get(e->st, NULL, kid1) == NULL);
	CHECK(t_call(e, "GET", "/api/v1/acme/eab", e->admin, NULL, &r) ==
	    200);
	keys = json_object_get(r.json, "eab_keys");
	CHECK(json_array_size(keys) == 1 && strcmp(json_string_value(
	    json_object_get(json_array_get(keys, 0), "kid")), kid2) == 0);
	t_resp_free(&r);
}

/* ---- EST clients and requests ---------------------------------------- */

/* Sends stderr (where every log line goes, the server thread's too) to
 * a file until t_log_stop, which returns what was written (to free()). */
struct t_log {
	int	saved;
	char	path[T_PATH_MAX];
};

static void
t_log_start(struct t_log *l, const char *name)
{
	int fd;

	fflush(stderr);
	l->saved = dup(STDERR_FILENO);
	common_path(l->path, sizeof(l->path), "%s/%s", test_tmpdir(), name);
	fd = open(l->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd != -1) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

static char *
t_log_stop(struct t_log *l)
{
	char *text = NULL;
	size_t len;

	fflush(stderr);
	if (l->saved != -1) {
		dup2(l->saved, STDERR_FILENO);
		close(l->saved);
	}
	if (common_file_read(l->path, T_LOG_MAX, &text, &len) == -1)
		return NULL;
	fputs(text, stderr);	/* still shown, after the fact */
	return text;
}

/* The string array arr joined with ',' (static buffer). */
static const char *
t_joined(const json_t *arr, const char *field)
{
	static char buf[1024];
	const json_t *v;
	size_t i, off = 0;

	buf[0] = '\0';
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(field != NULL ?
		    json_object_get(v, field) : v);

		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
		    i > 0 ? "," : "", s != NULL ? s : "<null>");
		if (off >= sizeof(buf))
			break;
	}
	return buf;
}

static void
t_e2e_est_clients(struct t_env *e)
{
	static const char *const bad[] = {
		"{\"password\": \"" T_EST_PASSWORD "\"}", "username",
		"{\"username\": \"\", \"password\": \"" T_EST_PASSWORD "\"}",
		    "username",
		"{\"username\": \"a:b\", \"password\": \"" T_EST_PASSWORD
		    "\"}", "username",
		"{\"username\": \"a b\", \"password\": \"" T_EST_PASSWORD
		    "\"}", "username",
		"{\"username\": \"..\", \"password\": \"" T_EST_PASSWORD
		    "\"}", "username",
		"{\"username\": \"a/b\", \"password\": \"" T_EST_PASSWORD
		    "\"}", "username",
		"{\"username\": 7, \"password\": \"" T_EST_PASSWORD "\"}",
		    "username",
		"{\"username\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxx\", \"password\": \"" T_EST_PASSWORD
		    "\"}", "username",
		"{\"username\": \"dev-9\"}", "password",
		"{\"username\": \"dev-9\", \"password\": \"short-7\"}",
		    "password",
		"{\"username\": \"dev-9\", \"password\": 12345678}", "password",
		"{\"username\": \"dev-9\", \"password\": \"" T_EST_PASSWORD
		    "\", \"labels\": \"iot\"}", "labels",
		"{\"username\": \"dev-9\", \"password\": \"" T_EST_PASSWORD
		    "\", \"labels\": [\"nope\"]}", "not a configured EST label",
		"{\"username\": \"dev-9\", \"password\": \"" T_EST_PASSWORD
		    "\", \"labels\": [\"iot\", \"iot\"]}", "listed twice",
		"{\"username\": \"dev-9\", \"password\": \"" T_EST_PASSWORD
		    "\", \"labels\": [3]}", "labels[0]",
		"{\"username\": \"dev-9\", \"password\": \"" T_EST_PASSWORD
		    "\", \"password_hash\": \"x\"}", "password_hash",
		NULL, NULL
	};
	char path[T_PATH_MAX], *logged;
	struct t_log log;
	struct t_resp r;
	json_t *rec, *list, *one;
	size_t i;

	t_log_start(&log, "est-clients.log");

	/* roles */
	CHECK(t_call(e, "POST", "/api/v1/est/clients", e->auditor,
	    "{\"username\": \"dev-1\", \"password\": \"" T_EST_PASSWORD
	    "\"}", &r) == 403);
	CHECK(strstr(t_err_msg(&r), "operator") != NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/est/clients", NULL,
	    "{\"username\": \"dev-1\", \"password\": \"" T_EST_PASSWORD
	    "\"}", &r) == 401);
	t_resp_free(&r);
	CHECK(store_est_client_get(e->st, NULL, "dev-1") == NULL);

	/* minimal: every label */
	CHECK(t_call(e, "POST", "/api/v1/est/clients", e->operator,
	    "{\"username\": \"dev-1\", \"password\": \"" T_EST_PASSWORD
	    "\"}", &r) == 201);
	CHECK_STR(t_str(&r, "username"), "dev-1");
	CHECK(json_is_array(json_object_get(r.json, "labels")) &&
	    json_array_size(json_object_get(r.json, "labels")) == 0);
	CHECK(t_str(&r, "created_at") != NULL);
	CHECK(json_object_size(r.json) == 3);
	CHECK(r.body != NULL && strstr(r.body, T_EST_PASSWORD) == NULL &&
	    strstr(r.body, "pbkdf2") == NULL);
	t_resp_free(&r);
	/* stored as a PBKDF2 hash that verifies, as EST will check it */
	rec = store_est_client_get(e->st, NULL, "dev-1");
	CHECK(rec != NULL);
	CHECK(common_password_verify(json_string_value(json_object_get(rec,
	    "password_hash")), T_EST_PASSWORD));
	CHECK(!common_password_verify(json_string_value(json_object_get(rec,
	    "password_hash")), "s3cret-Horse-batterY"));
	CHECK_STR(json_string_value(json_object_get(rec, "created_by")),
	    "token:olga");
	json_decref(rec);

	/* labels: configured ones and "" (the default label) */
	CHECK(t_call(e, "POST", "/api/v1/est/clients", e->admin,
	    "{\"username\": \"alice@example.com\", \"password\": \""
	    T_EST_PASSWORD "\", \"labels\": [\"servers\", \"\"]}", &r) ==
	    201);
	CHECK_STR(t_joined(json_object_get(r.json, "labels"), NULL),
	    "servers,");
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/est/clients", e->operator,
	    "{\"username\": \"Cam.e_ra-1\", \"password\": \"12345678\", "
	    "\"labels\": null}", &r) == 201);
	t_resp_free(&r);

	/* conflict */
	CHECK(t_call(e, "POST", "/api/v1/est/clients", e->operator,
	    "{\"username\": \"dev-1\", \"password\": \"another-pass\"}",
	    &r) == 409);
	CHECK_STR(t_err_code(&r), "conflict");
	t_resp_free(&r);
	rec = store_est_client_get(e->st, NULL, "dev-1");
	CHECK(common_password_verify(json_string_value(json_object_get(rec,
	    "password_hash")), T_EST_PASSWORD));
	json_decref(rec);

	/* refused bodies: 400 naming the field, nothing stored */
	for (i = 0; bad[i] != NULL; i += 2) {
		CHECK(t_call(e, "POST", "/api/v1/est/clients", e->operator,
		    bad[i], &r) == 400);
		if (strstr(t_err_msg(&r), bad[i + 1]) == NULL)
			fprintf(stderr, "%s: message \"%s\" lacks %s\n",
			    bad[i], t_err_msg(&r), bad[i + 1]);
		CHECK(strstr(t_err_msg(&r), bad[i + 1]) != NULL);
		t_resp_free(&r);
	}
	CHECK(store_est_client_get(e->st, NULL, "dev-9") == NULL);
	/* a syntax error is reported by position, never quoting the body */
	CHECK(t_call(e, "POST", "/api/v1/est/clients", e->operator,
	    "{\"username\": \"dev-9\", \"password\": " T_EST_PASSWORD "}",
	    &r) == 400);
	CHECK_STR(t_err_code(&r), "invalid_json");
	CHECK(strstr(t_err_msg(&r), "line 1") != NULL);
	CHECK(r.body != NULL && strstr(r.body, "s3cret") == NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/est/clients", e->operator, "[]",
	    &r) == 400);
	t_resp_free(&r);
	/* NUL bytes never get past the JSON parser */
	CHECK(t_call(e, "POST", "/api/v1/est/clients", e->operator,
	    "{\"username\": \"dev-9\", \"password\": \"1234\\u00005678\"}",
	    &r) == 400);
	CHECK_STR(t_err_code(&r), "invalid_json");
	t_resp_free(&r);

	/* list: by username, no hash, paged; auditors may read */
	CHECK(t_call(e, "GET", "/api/v1/est/clients", e->auditor, NULL, &r) ==
	    200);
	list = json_object_get(r.json, "est_clients");
	CHECK_STR(t_joined(list, "username"),
	    "Cam.e_ra-1,alice@example.com,dev-1");
	json_array_foreach(list, i, one) {
		CHECK(json_object_get(one, "password_hash") == NULL);
		CHECK(json_is_array(json_object_get(one, "labels")));
		CHECK(json_is_string(json_object_get(one, "created_by")));
	}
	CHECK(json_is_null(json_object_get(r.json, "next_page_token")));
	CHECK(r.body != NULL && strstr(r.body, "pbkdf2") == NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/clients?limit=2", e->operator,
	    NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "est_clients")) == 2);
	snprintf(path, sizeof(path), "/api/v1/est/clients?page_token=%s",
	    t_str(&r, "next_page_token") != NULL ? t_str(&r,
	    "next_page_token") : "missing");
	t_resp_free(&r);
	CHECK(t_call(e, "GET", path, e->operator, NULL, &r) == 200);
	CHECK_STR(t_joined(json_object_get(r.json, "est_clients"),
	    "username"), "dev-1");
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/clients?page_token=a%3Ab",
	    e->operator, NULL, &r) == 400);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/clients?status=x", e->operator,
	    NULL, &r) == 400);
	t_resp_free(&r);

	/* delete */
	CHECK(t_call(e, "DELETE", "/api/v1/est/clients/alice@example.com",
	    e->auditor, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "DELETE", "/api/v1/est/clients/alice@example.com",
	    e->operator, NULL, &r) == 204);
	t_resp_free(&r);
	CHECK(store_est_client_get(e->st, NULL, "alice@example.com") == NULL);
	CHECK(t_call(e, "DELETE", "/api/v1/est/clients/alice@example.com",
	    e->operator, NULL, &r) == 404);
	CHECK_STR(t_err_code(&r), "not_found");
	t_resp_free(&r);
	CHECK(t_call(e, "DELETE", "/api/v1/est/clients/a:b", e->operator,
	    NULL, &r) == 404);
	t_resp_free(&r);
	CHECK(t_call(e, "PUT", "/api/v1/est/clients/dev-1", e->operator, "{}",
	    &r) == 405);
	CHECK(strstr(r.hdrs, "Allow: DELETE") != NULL);
	t_resp_free(&r);

	/* the password never reached a log line */
	logged = t_log_stop(&log);
	CHECK(logged != NULL);
	CHECK(logged != NULL && strstr(logged, "s3cret") == NULL &&
	    strstr(logged, "pbkdf2") == NULL);
	CHECK(logged != NULL && strstr(logged, "created EST client \"dev-1\"")
	    != NULL);
	free(logged);
}

/* A 64-hex request id made of one repeated digit. */
static const char *
t_est_req_id(char c, char *buf)
{
	memset(buf, c, 64);
	buf[64] = '\0';
	return buf;
}

static int
t_est_seed_txn(struct store_txn *txn, void *arg)
{
	static const struct {
		char		 c;
		const char	*status;
		const char	*subject;
	} seed[] = {
		{ 'a', "pending", "CN=dev-a" },
		{ 'b', "pending", "CN=dev-b" },
		{ 'c', "rejected", "CN=dev-c" },
		{ 'e', "issued", "CN=dev-e" },
	};
	char id[65];
	json_t *rec;
	size_t i;
	int rc = 0;

	(void)arg;
	for (i = 0; i < sizeof(seed) / sizeof(seed[0]); i++) {
		t_est_req_id(seed[i].c, id);
		rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:s, s:s, "
		    "s:s, s:n, s:n, s:n, s:n, s:n}", "id", id, "label",
		    "servers", "status", seed[i].status, "csr", "MIIBcsrDER",
		    "subject", seed[i].subject, "sans", "dev.example",
		    "requested_by", "est:dev-1", "operation", "simpleenroll",
		    "created_at", "2025-01-01T00:00:00Z", "decided_by",
		    "decided_at", "reason", "cert_id", "serial");
		if (rec == NULL || store_est_request_put(txn, id, rec) == -1)
			rc = -1;
		json_decref(rec);
	}
	return rc;
}

static void
t_e2e_est_requests(struct t_env *e)
{
	char ida[65], idb[65], idc[65], idd[65], ide[65], path[T_PATH_MAX];
	struct t_resp r;
	json_t *list, *one, *rec;
	size_t i;

	t_est_req_id('a', ida);
	t_est_req_id('b', idb);
	t_est_req_id('c', idc);
	t_est_req_id('d', idd);
	t_est_req_id('e', ide);
	CHECK(store_txn_run(e->st, t_est_seed_txn, NULL) == 0);

	/* list: every field but the CSR */
	CHECK(t_call(e, "GET", "/api/v1/est/requests", e->auditor, NULL,
	    &r) == 200);
	list = json_object_get(r.json, "est_requests");
	CHECK(json_array_size(list) == 4);
	json_array_foreach(list, i, one) {
		CHECK(json_object_get(one, "csr") == NULL);
		CHECK_STR(json_string_value(json_object_get(one, "label")),
		    "servers");
		CHECK(json_is_string(json_object_get(one, "subject")));
		CHECK(json_is_array(json_object_get(one, "sans")));
		CHECK(json_is_null(json_object_get(one, "decided_by")));
	}
	CHECK(r.body != NULL && strstr(r.body, "MIIBcsrDER") == NULL);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/requests?status=pending",
	    e->operator, NULL, &r) == 200);
	CHECK_STR(t_joined(json_object_get(r.json, "est_requests"),
	    "subject"), "CN=dev-a,CN=dev-b");
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/requests?status=rejected&limit=5",
	    e->operator, NULL, &r) == 200);
	CHECK_STR(t_joined(json_object_get(r.json, "est_requests"), "id"),
	    idc);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/requests?status=issued",
	    e->auditor, NULL, &r) == 200);
	CHECK_STR(t_joined(json_object_get(r.json, "est_requests"), "id"),
	    ide);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/requests?limit=2", e->operator,
	    NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "est_requests")) == 2);
	CHECK_STR(t_str(&r, "next_page_token"), idb);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/requests?status=done",
	    e->operator, NULL, &r) == 400);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/requests?page_token=zz",
	    e->operator, NULL, &r) == 400);
	t_resp_free(&r);

	/* roles */
	snprintf(path, sizeof(path), "/api/v1/est/requests/%s/approve", ida);
	CHECK(t_call(e, "POST", path, e->auditor, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, NULL, NULL, &r) == 401);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator, "{\"note\": 1}", &r) ==
	    400);
	t_resp_free(&r);

	/* approve: status flips, who and when recorded, the CSR kept */
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 200);
	CHECK_STR(t_str(&r, "id"), ida);
	CHECK_STR(t_str(&r, "status"), "approved");
	CHECK_STR(t_str(&r, "decided_by"), "token:olga");
	CHECK(t_str(&r, "decided_at") != NULL);
	CHECK(json_object_get(r.json, "csr") == NULL);
	t_resp_free(&r);
	rec = store_est_request_get(e->st, NULL, ida);
	CHECK_STR(json_string_value(json_object_get(rec, "status")),
	    "approved");
	CHECK_STR(json_string_value(json_object_get(rec, "csr")),
	    "MIIBcsrDER");
	json_decref(rec);
	/* decided once only */
	CHECK(t_call(e, "POST", path, e->admin, "{}", &r) == 409);
	CHECK_STR(t_err_code(&r), "conflict");
	CHECK(strstr(t_err_msg(&r), "approved") != NULL);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/est/requests/%s/reject", ida);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 409);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/est/requests/%s/approve", idc);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 409);
	CHECK(strstr(t_err_msg(&r), "rejected") != NULL);
	t_resp_free(&r);
	snprintf(path, sizeof(path), "/api/v1/est/requests/%s/reject", ide);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 409);
	CHECK(strstr(t_err_msg(&r), "issued") != NULL);
	t_resp_free(&r);

	/* reject with a reason */
	snprintf(path, sizeof(path), "/api/v1/est/requests/%s/reject", idb);
	CHECK(t_call(e, "POST", path, e->operator,
	    "{\"reason\": \"line\\nbreak\"}", &r) == 400);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator, "{\"reason\": 5}", &r) ==
	    400);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator,
	    "{\"reason\": \"unknown device\", \"x\": 1}", &r) == 400);
	t_resp_free(&r);
	CHECK(t_call(e, "POST", path, e->operator,
	    "{\"reason\": \"unknown device\"}", &r) == 200);
	CHECK_STR(t_str(&r, "status"), "rejected");
	CHECK_STR(t_str(&r, "reason"), "unknown device");
	CHECK_STR(t_str(&r, "decided_by"), "token:olga");
	t_resp_free(&r);
	CHECK(t_call(e, "GET", "/api/v1/est/requests?status=pending",
	    e->operator, NULL, &r) == 200);
	CHECK(json_array_size(json_object_get(r.json, "est_requests")) == 0);
	t_resp_free(&r);

	/* unknown and malformed ids */
	snprintf(path, sizeof(path), "/api/v1/est/requests/%s/approve", idd);
	CHECK(t_call(e, "POST", path, e->operator, NULL, &r) == 404);
	CHECK_STR(t_err_code(&r), "not_found");
	t_resp_free(&r);
	CHECK(t_call(e, "POST", "/api/v1/est/requests/ABCD/reject",
	    e->operator, NULL, &r) == 404);
	t_resp_free(&r);
	CHECK(t_call(e, "GET", path, e->operator, NULL, &r) == 405);
	t_resp_free(&r);
	CHECK(store_check(e->st) == 0);
}

static void
test_e2e(void)
{
	struct t_env e;

	memset(&e, 0, sizeof(e));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CHECK(t_env_start(&e) == 0);
	if (e.running && e.base[0] != '\0') {
		t_e2e_refusals(&e);
		t_e2e_flow(&e);
		t_e2e_external(&e);
		t_e2e_eab(&e);
		t_e2e_est_clients(&e);
		t_e2e_est_requests(&e);
	}
	t_env_stop(&e);
	curl_global_cleanup();
}

const struct test_case test_cases[] = {
	TEST(test_role_parse),
	TEST(test_token_roundtrip),
	TEST(test_token_expired),
	TEST(test_token_foreign_key),
	TEST(test_token_alg_none),
	TEST(test_token_hmac_confusion),
	TEST(test_token_claims),
	TEST(test_token_header),
	TEST(test_e2e),
	{ 0 },
};
