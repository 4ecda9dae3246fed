/*
 * common/password.c — password hashing for EST HTTP Basic clients.
 *
 * Stored form: "pbkdf2-sha256$ITER$SALT$HASH" where ITER is the decimal
 * PBKDF2 iteration count, SALT the 16-byte random salt and HASH the
 * 32-byte PBKDF2-HMAC-SHA256 output, both in padded standard base64
 * without line breaks (the Django/passlib layout, so an operator can
 * recognise it).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/common.h"

#define PASSWORD_SCHEME		"pbkdf2-sha256"
#define PASSWORD_SALT_LEN	16	/* bytes of random salt */
#define PASSWORD_HASH_LEN	32	/* SHA-256 output */
#define PASSWORD_ITER_DIGITS	8	/* "10000000" */
/* Longest stored string: scheme, 3 '$', digits, base64 of salt and hash. */
#define PASSWORD_STORED_MAX	(sizeof(PASSWORD_SCHEME) + 3 + \
	PASSWORD_ITER_DIGITS + 4 * ((PASSWORD_SALT_LEN + 2) / 3) + \
	4 * ((PASSWORD_HASH_LEN + 2) / 3))

/* Runs PBKDF2-HMAC-SHA256 into out (PASSWORD_HASH_LEN bytes); 0 or -1. */
static int
password_derive(const char *password, const unsigned char *salt,
    unsigned iterations, unsigned char *out)
{
	size_t plen = strlen(password);

	if (plen > COMMON_PASSWORD_MAX)
		return -1;
	if (PKCS5_PBKDF2_HMAC(password, (int)plen, salt, PASSWORD_SALT_LEN,
	    (int)iterations, EVP_sha256(), PASSWORD_HASH_LEN, out) != 1) {
		log_err("password hash: PBKDF2: %s", common_ssl_error());
		return -1;
	}
	return 0;
}

/*
 * Hashes password with a fresh random salt and the given iteration count
 * (COMMON_PASSWORD_ITER_MIN..COMMON_PASSWORD_ITER_MAX). Returns the
 * stored form (to free()), NULL on a bad argument, RNG or allocation
 * failure. The password itself is never logged.
 */
char *
common_password_hash(const char *password, unsigned iterations)
{
	unsigned char salt[PASSWORD_SALT_LEN], hash[PASSWORD_HASH_LEN];
	char *salt64 = NULL, *hash64 = NULL, *out = NULL;
	size_t outlen;

	if (password == NULL || strlen(password) > COMMON_PASSWORD_MAX) {
		log_err("password hash: password missing or longer than %d "
		    "bytes", COMMON_PASSWORD_MAX);
		goto out;
	}
	if (iterations < COMMON_PASSWORD_ITER_MIN ||
	    iterations > COMMON_PASSWORD_ITER_MAX) {
		log_err("password hash: %u iterations outside %u..%u",
		    iterations, COMMON_PASSWORD_ITER_MIN,
		    COMMON_PASSWORD_ITER_MAX);
		goto out;
	}
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		log_err("password hash: RAND_bytes: %s", common_ssl_error());
		goto out;
	}
	if (password_derive(password, salt, iterations, hash) == -1)
		goto out;
	salt64 = common_b64_encode(salt, sizeof(salt), false, 0);
	hash64 = common_b64_encode(hash, sizeof(hash), false, 0);
	if (salt64 == NULL || hash64 == NULL)
		goto out;
	outlen = PASSWORD_STORED_MAX + 1;
	if ((out = malloc(outlen)) == NULL)
		goto out;
	if (common_path(out, outlen, "%s$%u$%s$%s", PASSWORD_SCHEME,
	    iterations, salt64, hash64) == -1) {
		free(out);
		out = NULL;
	}
out:
	OPENSSL_cleanse(hash, sizeof(hash));
	free(salt64);
	free(hash64);
	return out;
}

/*
 * Decodes one base64 field of exactly want bytes into out. Strict: the
 * field must be the canonical padded encoding (no whitespace, which
 * common_b64_decode would otherwise skip). 0 or -1.
 */
static int
password_field(const char *s, size_t n, unsigned char *out, size_t want)
{
	unsigned char *raw = NULL;
	size_t rawlen, i;
	int rc = -1;

	if (n != 4 * ((want + 2) / 3))
		goto out;
	for (i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == ' ' ||
		    s[i] == '\t')
			goto out;
	if (common_b64_decode(s, n, false, &raw, &rawlen) == -1 ||
	    rawlen != want)
		goto out;
	memcpy(out, raw, want);
	rc = 0;
out:
	free(raw);
	return rc;
}

/*
 * Parses the stored form into its iteration count, salt and hash.
 * Everything is checked: the scheme, a decimal count without sign or
 * leading zero inside the accepted range, and salt and hash of their
 * exact lengths. 0 or -1.
 */
static int
password_parse(const char *stored, unsigned *iterations,
    unsigned char *salt, unsigned char *hash)
{
	const char *p, *d1, *d2;
	unsigned long iter = 0;
	size_t slen = strlen(PASSWORD_SCHEME), ndig;

	if (strnlen(stored, PASSWORD_STORED_MAX + 1) > PASSWORD_STORED_MAX)
		return -1;
	if (strncmp(stored, PASSWORD_SCHEME, slen) != 0 || stored[slen] != '$')
		return -1;
	p = stored + slen + 1;
	if ((d1 = strchr(p, '$')) == NULL ||
	    (d2 = strchr(d1 + 1, '$')) == NULL ||
	    strchr(d2 + 1, '$') != NULL)
		return -1;

	ndig = (size_t)(d1 - p);
	if (ndig == 0 || ndig > PASSWORD_ITER_DIGITS || p[0] == '0')
		return -1;
	for (; p < d1; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		iter = iter * 10 + (unsigned long)(*p - '0');
	}
	if (iter < COMMON_PASSWORD_ITER_MIN || iter > COMMON_PASSWORD_ITER_MAX)
		return -1;
	*iterations = (unsigned)iter;

	if (password_field(d1 + 1, (size_t)(d2 - d1 - 1), salt,
	    PASSWORD_SALT_LEN) == -1)
		return -1;
	if (password_field(d2 + 1, strlen(d2 + 1), hash,
	    PASSWORD_HASH_LEN) == -1)
		return -1;
	return 0;
}

/*
 * True when password hashes, under the salt and iteration count in
 * stored, to the hash in stored. The digests are compared with
 * CRYPTO_memcmp over their fixed length. False on NULL arguments, any
 * malformed stored string or a password longer than COMMON_PASSWORD_MAX.
 */
bool
common_password_verify(const char *stored, const char *password)
{
	unsigned char salt[PASSWORD_SALT_LEN], want[PASSWORD_HASH_LEN] = { 0 };
	unsigned char got[PASSWORD_HASH_LEN] = { 0 };
	unsigned iterations;
	bool ok = false;

	if (stored == NULL || password == NULL)
		goto out;
	if (password_parse(stored, &iterations, salt, want) == -1) {
		log_warn("password verify: stored hash is malformed");
		goto out;
	}
	if (password_derive(password, salt, iterations, got) == -1)
		goto out;
	ok = CRYPTO_memcmp(got, want, PASSWORD_HASH_LEN) == 0;
out:
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}
