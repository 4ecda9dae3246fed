/*
 * common/encode.c — base64, base64url, hex and random identifiers.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/common.h"

#define ID_MAX		64	/* longest identifier common_id_valid accepts */
#define RANDOM_ID_BYTES	8	/* 64 bits -> 16 hex characters */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * Encodes n bytes. Standard base64 is padded with '='; base64url is not
 * (RFC 7515 section 2). With wrap > 0 a "\n" follows every wrap output
 * characters and the last line. Returns a string to free(), NULL on
 * allocation failure or size overflow.
 */
char *
common_b64_encode(const void *p, size_t n, bool url, int wrap)
{
	const unsigned char *in = p;
	const char *alpha = url ? b64_url : b64_std;
	char *out = NULL;
	size_t enc, total, i, o = 0, col = 0;
	char quad[4];
	size_t qn, k;

	if (n > (SIZE_MAX / 4) * 3 - 3)
		return NULL;
	enc = (n + 2) / 3 * 4;
	if (url)
		enc = n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
	total = enc + 1;
	if (wrap > 0)
		total += enc / (size_t)wrap + 1;
	if ((out = malloc(total)) == NULL)
		return NULL;

	for (i = 0; i < n; i += 3) {
		unsigned long v = (unsigned long)in[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (unsigned long)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		quad[0] = alpha[(v >> 18) & 0x3f];
		quad[1] = alpha[(v >> 12) & 0x3f];
		quad[2] = left > 1 ? alpha[(v >> 6) & 0x3f] : '=';
		quad[3] = left > 2 ? alpha[v & 0x3f] : '=';
		qn = 4;
		if (url)
			qn = left > 2 ? 4 : left + 1;
		for (k = 0; k < qn; k++) {
			out[o++] = quad[k];
			if (wrap > 0 && ++col == (size_t)wrap) {
				out[o++] = '\n';
				col = 0;
			}
		}
	}
	if (wrap > 0 && col > 0)
		out[o++] = '\n';
	out[o] = '\0';
	return out;
}

static int
b64_value(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/*
 * Decodes base64 (url=false) or base64url (url=true).
 *
 * base64 (EST bodies, PEM-like text): CR, LF, space and tab are skipped
 * anywhere (RFC 7030 section 4 allows line breaks); padding is optional
 * but, when present, must complete the final quantum and be followed only
 * by whitespace. base64url (JOSE, RFC 7515 section 2): no padding and no
 * whitespace. In both, a final quantum of one character is impossible
 * and refused, as are non-zero bits left over in the last character
 * (so every encoding is canonical).
 *
 * Returns 0 with *out (to free(), NUL-terminated for convenience) and
 * *outlen; -1 on any invalid input or allocation failure.
 */
int
common_b64_decode(const char *s, size_t n, bool url, unsigned char **out,
    size_t *outlen)
{
	unsigned char *buf = NULL;
	unsigned long acc = 0;
	size_t i, o = 0, q = 0, pad = 0;
	int v, rc = -1;

	*out = NULL;
	*outlen = 0;
	if ((buf = malloc(n / 4 * 3 + 3 + 1)) == NULL)
		goto out;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!url && (c == '\r' || c == '\n' || c == ' ' || c == '\t'))
			continue;
		if (!url && c == '=') {
			pad++;
			continue;
		}
		if (pad > 0)
			goto out;	/* data after padding */
		if ((v = b64_value(c, url)) < 0)
			goto out;
		acc = (acc << 6) | (unsigned long)v;
		if (++q == 4) {
			buf[o++] = (acc >> 16) & 0xff;
			buf[o++] = (acc >> 8) & 0xff;
			buf[o++] = acc & 0xff;
			acc = 0;
			q = 0;
		}
	}

	switch (q) {
	case 0:
		if (pad != 0)
			goto out;
		break;
	case 1:
		goto out;	/* 6 bits cannot encode a byte */
	case 2:
		if (pad != 0 && pad != 2)
			goto out;
		if (acc & 0xf)
			goto out;
		buf[o++] = (acc >> 4) & 0xff;
		break;
	case 3:
		if (pad != 0 && pad != 1)
			goto out;
		if (acc & 0x3)
			goto out;
		buf[o++] = (acc >> 10) & 0xff;
		buf[o++] = (acc >> 2) & 0xff;
		break;
	}
	buf[o] = '\0';
	*out = buf;	/* steal */
	buf = NULL;
	*outlen = o;
	rc = 0;
out:
	free(buf);
	return rc;
}

void
common_hex(const void *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *in = p;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/*
 * prefix followed by 16 lower-case hex characters from 64 random bits.
 * -1 when out cannot hold it (out is then "") or the RNG fails.
 */
int
common_random_id(const char *prefix, char *out, size_t outlen)
{
	unsigned char rnd[RANDOM_ID_BYTES];
	size_t plen;

	if (prefix == NULL)
		prefix = "";
	plen = strlen(prefix);
	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (plen >= outlen || outlen - plen < 2 * RANDOM_ID_BYTES + 1)
		return -1;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		log_err("random id: RAND_bytes: %s", common_ssl_error());
		return -1;
	}
	memcpy(out, prefix, plen);
	common_hex(rnd, sizeof(rnd), out + plen);
	return 0;
}

/*
 * A safe identifier is 1..ID_MAX characters of [A-Za-z0-9._-] and does
 * not start with '.', so it can be used as a file name or a URL path
 * segment without escaping ("." and ".." are impossible).
 */
bool
common_id_valid(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= ID_MAX)
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-'))
			return false;
	}
	return true;
}
