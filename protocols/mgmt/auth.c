/*
 * protocols/mgmt/auth.c — bearer tokens of the management API: the
 * installation key DATA/token.key (EC P-256, PKCS#8 PEM, mode 0600),
 * minting (libjwt, ES256), verification and roles.
 *
 * Verification trusts nothing libjwt might accept by default: the header
 * is decoded first and anything but "alg": "ES256" is refused before
 * jwt_decode() runs (a key given to libjwt 1.10 doubles as an HMAC secret,
 * so an HS256 token "signed" with the public key would verify), and the
 * algorithm of the decoded object is checked again afterwards.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "protocols/mgmt/mgmt.h"

#define AUTH_KEY_FILE		"token.key"
#define AUTH_KEY_FILE_MAX	(16 * 1024)	/* a P-256 PEM is ~250 bytes */
#define AUTH_KEY_MODE		0600
#define AUTH_DIR_MODE		0700
#define AUTH_CURVE		"P-256"
#define AUTH_CURVE_OSSL		"prime256v1"	/* OpenSSL's group name */
#define AUTH_ISSUER		"pkid"
#define AUTH_ALG		"ES256"
#define AUTH_SCHEME		"Bearer"
#define AUTH_JTI_BYTES		16
#define AUTH_GROUP_MAX		64
#define AUTH_SEGMENT_MAX	MGMT_TOKEN_MAX	/* decoded header/claims */

struct mgmt_token_key {
	char	*pub_pem;	/* SubjectPublicKeyInfo PEM of token.key */
	size_t	 pub_len;
};

static const char *const auth_role_names[MGMT_ROLE__MAX] = {
	[MGMT_ROLE_AUDITOR] = "auditor",
	[MGMT_ROLE_OPERATOR] = "operator",
	[MGMT_ROLE_ADMIN] = "admin",
};

int
mgmt_role_parse(const char *s, enum mgmt_role *out)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = 0; i < MGMT_ROLE__MAX; i++) {
		if (strcmp(s, auth_role_names[i]) == 0) {
			*out = (enum mgmt_role)i;
			return 0;
		}
	}
	return -1;
}

const char *
mgmt_role_name(enum mgmt_role role)
{
	if ((int)role < 0 || role >= MGMT_ROLE__MAX)
		return "unknown";
	return auth_role_names[role];
}

/* Wipes and frees a string that held private key material. */
static void
auth_free_secret(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* True when k is an EC key on P-256. */
static bool
auth_key_is_p256(EVP_PKEY *k)
{
	char group[AUTH_GROUP_MAX];

	if (!EVP_PKEY_is_a(k, "EC"))
		return false;
	if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), NULL) != 1)
		return false;
	return strcmp(group, AUTH_CURVE_OSSL) == 0;
}

/*
 * Reads the private key at path. Refuses a file that group or others can
 * read (anyone who reads it can mint admin tokens) and keys that are not
 * P-256. Returns the key (caller frees), or NULL: *missing tells whether
 * the file simply does not exist yet.
 */
static EVP_PKEY *
auth_key_read(const char *path, bool *missing)
{
	struct stat st;
	EVP_PKEY *k = NULL;
	char *pem = NULL;
	size_t len = 0;

	*missing = false;
	if (stat(path, &st) == -1) {
		if (errno == ENOENT)
			*missing = true;
		else
			log_err("mgmt: token key %s: stat: %s", path,
			    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_err("mgmt: token key %s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		log_err("mgmt: token key %s: mode %04o lets others read it "
		    "(want 0600)", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (common_file_read(path, AUTH_KEY_FILE_MAX, &pem, &len) == -1) {
		log_err("mgmt: token key %s: read: %s", path, strerror(errno));
		goto out;
	}
	if ((k = common_privkey_from_pem(pem, len)) == NULL) {
		log_err("mgmt: token key %s: not a private key PEM: %s", path,
		    common_ssl_error());
		goto out;
	}
	if (!auth_key_is_p256(k)) {
		log_err("mgmt: token key %s: not an EC %s key", path,
		    AUTH_CURVE);
		EVP_PKEY_free(k);
		k = NULL;
	}
out:
	auth_free_secret(pem);
	return k;
}

/* Generates a P-256 key and writes it atomically to path, mode 0600. */
static int
auth_key_create(const char *data_dir, const char *path)
{
	EVP_PKEY *k = NULL;
	char *pem = NULL;
	int rc = -1;

	if (common_mkdirs(data_dir, AUTH_DIR_MODE) == -1) {
		log_err("mgmt: token key: create directory %s: %s", data_dir,
		    strerror(errno));
		goto out;
	}
	if ((k = EVP_EC_gen(AUTH_CURVE)) == NULL ||
	    (pem = common_privkey_to_pem(k)) == NULL) {
		log_err("mgmt: token key %s: generate: %s", path,
		    common_ssl_error());
		goto out;
	}
	if (common_file_write(path, pem, strlen(pem), AUTH_KEY_MODE) == -1) {
		log_err("mgmt: token key %s: write: %s", path,
		    strerror(errno));
		goto out;
	}
	log_info("mgmt: created token key %s", path);
	rc = 0;
out:
	auth_free_secret(pem);
	EVP_PKEY_free(k);
	return rc;
}

/*
 * Loads DATA/token.key, creating it first when missing. After creating,
 * the file is read back, so that two processes racing to create it both
 * end up with whichever key won the rename. Returns the private key
 * (caller frees) or NULL (logged).
 */
static EVP_PKEY *
auth_key_load_or_create(const char *data_dir)
{
	char path[PATH_MAX];
	EVP_PKEY *k = NULL;
	bool missing;

	if (data_dir == NULL || data_dir[0] == '\0') {
		log_err("mgmt: token key: no data directory");
		goto out;
	}
	if (common_path(path, sizeof(path), "%s/%s", data_dir,
	    AUTH_KEY_FILE) == -1) {
		log_err("mgmt: token key: path under %s too long", data_dir);
		goto out;
	}
	if ((k = auth_key_read(path, &missing)) != NULL || !missing)
		goto out;
	if (auth_key_create(data_dir, path) == -1)
		goto out;
	if ((k = auth_key_read(path, &missing)) == NULL && missing)
		log_err("mgmt: token key %s: vanished after creation", path);
out:
	return k;
}

struct mgmt_token_key *
mgmt_token_key_load(const char *data_dir)
{
	struct mgmt_token_key *tk = NULL;
	EVP_PKEY *k = NULL;

	if ((k = auth_key_load_or_create(data_dir)) == NULL)
		goto out;
	if ((tk = calloc(1, sizeof(*tk))) == NULL ||
	    (tk->pub_pem = common_pubkey_to_pem(k)) == NULL) {
		log_err("mgmt: token key under %s: public key: out of memory",
		    data_dir);
		mgmt_token_key_free(tk);
		tk = NULL;
		goto out;
	}
	tk->pub_len = strlen(tk->pub_pem);
out:
	EVP_PKEY_free(k);
	return tk;
}

void
mgmt_token_key_free(struct mgmt_token_key *k)
{
	if (k == NULL)
		return;
	free(k->pub_pem);
	free(k);
}

/* True when s (1..MGMT_SUBJECT_MAX bytes) is printable ASCII. */
static bool
auth_subject_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
			return false;
	return n > 0 && n <= MGMT_SUBJECT_MAX;
}

/*
 * Mints a token: claims iss, sub, role, iat, exp = iat + ttl and a random
 * jti, signed ES256 with DATA/token.key (created when missing). Returns
 * the compact JWT (caller frees) or NULL (logged).
 */
char *
mgmt_token_mint(const char *data_dir, const char *subject,
    enum mgmt_role role, long ttl_seconds)
{
	unsigned char rnd[AUTH_JTI_BYTES];
	char jti[2 * AUTH_JTI_BYTES + 1];
	jwt_t *jwt = NULL;
	EVP_PKEY *k = NULL;
	char *pem = NULL, *enc = NULL, *tok = NULL;
	time_t now;

	if (subject == NULL || !auth_subject_ok(subject)) {
		log_err("mgmt: mint token: subject must be 1..%d printable "
		    "characters", MGMT_SUBJECT_MAX);
		goto out;
	}
	if ((int)role < 0 || role >= MGMT_ROLE__MAX) {
		log_err("mgmt: mint token for %s: bad role %d", subject,
		    (int)role);
		goto out;
	}
	if (ttl_seconds <= 0 || ttl_seconds > MGMT_TOKEN_TTL_MAX) {
		log_err("mgmt: mint token for %s: ttl %ld outside 1..%ld "
		    "seconds", subject, ttl_seconds, MGMT_TOKEN_TTL_MAX);
		goto out;
	}
	if ((k = auth_key_load_or_create(data_dir)) == NULL)
		goto out;
	if ((pem = common_privkey_to_pem(k)) == NULL) {
		log_err("mgmt: mint token for %s: key PEM: %s", subject,
		    common_ssl_error());
		goto out;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		log_err("mgmt: mint token for %s: RNG: %s", subject,
		    common_ssl_error());
		goto out;
	}
	common_hex(rnd, sizeof(rnd), jti);
	now = common_now();
	if (jwt_new(&jwt) != 0 ||
	    jwt_add_grant(jwt, "iss", AUTH_ISSUER) != 0 ||
	    jwt_add_grant(jwt, "sub", subject) != 0 ||
	    jwt_add_grant(jwt, "role", mgmt_role_name(role)) != 0 ||
	    jwt_add_grant_int(jwt, "iat", (long)now) != 0 ||
	    jwt_add_grant_int(jwt, "exp", (long)now + ttl_seconds) != 0 ||
	    jwt_add_grant(jwt, "jti", jti) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)pem,
	    (int)strlen(pem)) != 0) {
		log_err("mgmt: mint token for %s: building the JWT failed",
		    subject);
		goto out;
	}
	if ((enc = jwt_encode_str(jwt)) == NULL) {
		log_err("mgmt: mint token for %s: signing failed", subject);
		goto out;
	}
	/* libjwt may use its own allocator: hand out a malloc'd copy. */
	if ((tok = strdup(enc)) == NULL)
		log_err("mgmt: mint token for %s: out of memory", subject);
out:
	free(enc);
	jwt_free(jwt);
	auth_free_secret(pem);
	EVP_PKEY_free(k);
	return tok;
}

/* True for the base64url alphabet. */
static bool
auth_b64url_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

/*
 * Decodes one base64url segment of a compact JWT into a JSON object,
 * refusing duplicate keys so that this parse and libjwt's agree on every
 * value. NULL when the segment is not base64url or not a JSON object.
 */
static json_t *
auth_segment_json(const char *p, size_t n)
{
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	json_t *j = NULL;

	if (n == 0 || n > AUTH_SEGMENT_MAX)
		goto out;
	if (common_b64_decode(p, n, true, &raw, &rawlen) == -1)
		goto out;
	j = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES,
	    NULL);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
out:
	free(raw);
	return j;
}

/* Checks the registered and private claims of a verified payload. */
static int
auth_claims_check(const json_t *claims, char **subject, enum mgmt_role *role,
    char *why, size_t whylen)
{
	const json_t *exp, *iat;
	const char *iss, *sub, *r;
	time_t now = common_now();

	iss = json_string_value(json_object_get(claims, "iss"));
	if (iss == NULL || strcmp(iss, AUTH_ISSUER) != 0) {
		snprintf(why, whylen, "wrong issuer (want \"%s\")",
		    AUTH_ISSUER);
		return -1;
	}
	exp = json_object_get(claims, "exp");
	if (!json_is_integer(exp)) {
		snprintf(why, whylen, "token has no expiry (exp)");
		return -1;
	}
	if (json_integer_value(exp) <= (json_int_t)now) {
		snprintf(why, whylen, "token expired");
		return -1;
	}
	iat = json_object_get(claims, "iat");
	if (!json_is_integer(iat)) {
		snprintf(why, whylen, "token has no issue time (iat)");
		return -1;
	}
	if (json_integer_value(iat) > (json_int_t)now + MGMT_IAT_SKEW) {
		snprintf(why, whylen, "token issued in the future");
		return -1;
	}
	r = json_string_value(json_object_get(claims, "role"));
	if (mgmt_role_parse(r, role) == -1) {
		snprintf(why, whylen, "token has an unknown role");
		return -1;
	}
	sub = json_string_value(json_object_get(claims, "sub"));
	if (sub == NULL || !auth_subject_ok(sub)) {
		snprintf(why, whylen, "token has a bad subject (sub)");
		return -1;
	}
	if ((*subject = strdup(sub)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * Verifies a compact JWT. The order of checks: size and shape, header
 * (alg must be ES256), claims parse, signature (jwt_decode with the public
 * key), the algorithm of the decoded object, then the claims. Returns 0
 * with *subject and *role, or -1 with the failed check in why.
 */
int
mgmt_token_verify(const struct mgmt_token_key *k, const char *token,
    char **subject, enum mgmt_role *role, char *why, size_t whylen)
{
	json_t *hdr = NULL, *claims = NULL;
	const char *alg, *dot1 = NULL, *dot2 = NULL;
	jwt_t *jwt = NULL;
	size_t len, i;
	int rc = -1;

	*subject = NULL;
	if (token == NULL || token[0] == '\0') {
		snprintf(why, whylen, "missing bearer token");
		goto out;
	}
	len = strnlen(token, MGMT_TOKEN_MAX + 1);
	if (len > MGMT_TOKEN_MAX) {
		snprintf(why, whylen, "token longer than %d bytes",
		    MGMT_TOKEN_MAX);
		goto out;
	}
	for (i = 0; i < len; i++) {
		if (token[i] == '.') {
			if (dot1 == NULL)
				dot1 = token + i;
			else if (dot2 == NULL)
				dot2 = token + i;
			else
				break;
		} else if (!auth_b64url_char(token[i]))
			break;
	}
	if (i != len || dot2 == NULL || dot2 + 1 == token + len) {
		snprintf(why, whylen, "malformed token (want three base64url "
		    "parts)");
		goto out;
	}
	if ((hdr = auth_segment_json(token, (size_t)(dot1 - token))) == NULL) {
		snprintf(why, whylen, "malformed token header");
		goto out;
	}
	alg = json_string_value(json_object_get(hdr, "alg"));
	if (alg == NULL || strcmp(alg, AUTH_ALG) != 0) {
		snprintf(why, whylen, "token algorithm must be %s", AUTH_ALG);
		goto out;
	}
	if ((claims = auth_segment_json(dot1 + 1,
	    (size_t)(dot2 - dot1 - 1))) == NULL) {
		snprintf(why, whylen, "malformed token claims");
		goto out;
	}
	if (jwt_decode(&jwt, token, (const unsigned char *)k->pub_pem,
	    (int)k->pub_len) != 0 || jwt == NULL) {
		jwt = NULL;
		snprintf(why, whylen, "bad token signature");
		goto out;
	}
	if (jwt_get_alg(jwt) != JWT_ALG_ES256) {
		snprintf(why, whylen, "token algorithm must be %s", AUTH_ALG);
		goto out;
	}
	rc = auth_claims_check(claims, subject, role, why, whylen);
out:
	jwt_free(jwt);
	json_decref(hdr);
	json_decref(claims);
	return rc;
}

int
mgmt_token_verify_header(const struct mgmt_token_key *k,
    const char *authorization, char **subject, enum mgmt_role *role,
    char *why, size_t whylen)
{
	const char *p;
	size_t n = sizeof(AUTH_SCHEME) - 1;

	*subject = NULL;
	if (authorization == NULL || authorization[0] == '\0') {
		snprintf(why, whylen, "missing bearer token");
		return -1;
	}
	if (strncasecmp(authorization, AUTH_SCHEME, n) != 0 ||
	    (authorization[n] != ' ' && authorization[n] != '\t')) {
		snprintf(why, whylen, "Authorization must use the Bearer "
		    "scheme");
		return -1;
	}
	for (p = authorization + n; *p == ' ' || *p == '\t'; p++)
		;
	return mgmt_token_verify(k, p, subject, role, why, whylen);
}
