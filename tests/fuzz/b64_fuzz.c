/*
 * tests/fuzz/b64_fuzz.c — common_b64_decode in both modes (base64 for
 * EST bodies, strict base64url for JOSE).
 *
 * Properties (common.h, common/encode.c): what decodes re-encodes and
 * decodes to the same bytes; every accepted encoding is canonical, so a
 * base64url input is exactly the encoding of its bytes, and a base64
 * input is that encoding once whitespace and padding are set aside.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tests/fuzz/fuzz.h"

#define B64_FUZZ_WRAP	64	/* PEM / EST line length */

FUZZ_INITIALIZE_QUIET

/* Decodes enc (mode url) and checks it yields exactly want/wantlen. */
static void
b64_fuzz_redecode(const char *enc, bool url, const unsigned char *want,
    size_t wantlen)
{
	unsigned char *out;
	size_t outlen;

	FUZZ_CHECK(common_b64_decode(enc, strlen(enc), url, &out, &outlen) ==
	    0);
	FUZZ_CHECK(outlen == wantlen);
	FUZZ_CHECK(wantlen == 0 || memcmp(out, want, wantlen) == 0);
	free(out);
}

/* Copy of s[0..n) without the bytes in drop. To free(). */
static char *
b64_fuzz_strip(const char *s, size_t n, const char *drop)
{
	char *out;
	size_t i, o = 0;

	if ((out = malloc(n + 1)) == NULL)
		abort();
	for (i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(drop, s[i]) == NULL)
			out[o++] = s[i];
	out[o] = '\0';
	return out;
}

static void
b64_fuzz_mode(const uint8_t *data, size_t size, bool url)
{
	const char *s = (const char *)data;
	unsigned char *out = NULL;
	char *enc = NULL, *wrapped = NULL, *a = NULL, *b = NULL;
	size_t outlen;

	if (common_b64_decode(s, size, url, &out, &outlen) == -1) {
		FUZZ_CHECK(out == NULL);
		return;
	}
	FUZZ_CHECK(out != NULL && out[outlen] == '\0');
	if ((enc = common_b64_encode(out, outlen, url, 0)) == NULL)
		abort();
	b64_fuzz_redecode(enc, url, out, outlen);
	if (url) {
		FUZZ_CHECK(strlen(enc) == size && memcmp(enc, s, size) == 0);
	} else {
		a = b64_fuzz_strip(s, size, "\r\n \t=");
		b = b64_fuzz_strip(enc, strlen(enc), "=");
		FUZZ_CHECK(strcmp(a, b) == 0);
		if ((wrapped = common_b64_encode(out, outlen, false,
		    B64_FUZZ_WRAP)) == NULL)
			abort();
		b64_fuzz_redecode(wrapped, false, out, outlen);
	}
	free(a);
	free(b);
	free(wrapped);
	free(enc);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	b64_fuzz_mode(data, size, false);
	b64_fuzz_mode(data, size, true);
	return 0;
}
