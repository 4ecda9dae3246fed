/*
 * tests/fuzz/est_fuzz.c — EST request bodies as est_enroll reads them
 * for simpleenroll, simplereenroll and serverkeygen (the three share the
 * parse; they differ only after it): est_b64_body (RFC 8951 §3 base64,
 * line breaks CRLF, LF or none, padding optional), est_csr_decode (DER
 * PKCS#10, nothing after it), then ca_csr_parse. Inputs longer than
 * EST_BODY_MAX are skipped: the route refuses them before the handler.
 *
 * The first byte picks where the rest goes. Even: it is the body as
 * received. Odd: it is DER, which the driver base64-encodes the way
 * clients do (one line, 64 columns LF, 76 columns CRLF by the second
 * byte), so that mutated DER reaches est_csr_decode instead of dying in
 * the base64 decoder.
 *
 * Properties (est.h, encode.c): a refusal leaves no buffer or request
 * behind and carries an error code and message; an accepted body decodes
 * to 1..len*3/4 bytes, and those bytes wrapped by est_b64_wrap in every
 * layout pkid writes decode to the same bytes; an accepted request is
 * refused with one byte more (trailing data) or one byte less, and
 * re-encodes with its signed part unchanged to DER that est_csr_decode
 * accepts and re-encodes unchanged; ca_csr_parse yields
 * a subject and at most CA_MAX_SANS string SANs, or a refusal with a message.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "protocols/est/est.h"
#include "tests/fuzz/fuzz.h"

#define EST_FUZZ_MIME_WRAP	76	/* RFC 2045 line length */

/* The line layouts pkid's encoder writes and clients send. */
static const struct {
	size_t		 wrap;
	const char	*eol;
} est_fuzz_layouts[] = {
	{ 0, "" },
	{ EST_B64_WRAP, "\n" },
	{ EST_FUZZ_MIME_WRAP, "\r\n" },
	{ 1, "\r\n" },
};

#define EST_FUZZ_NLAYOUTS \
	(sizeof(est_fuzz_layouts) / sizeof(est_fuzz_layouts[0]))

FUZZ_INITIALIZE_QUIET

/* A refusal carries a code and a one-line message. */
static void
est_fuzz_refused(const struct common_error *err)
{
	FUZZ_CHECK(err->code != COMMON_E_NONE && err->msg[0] != '\0');
	FUZZ_CHECK(strchr(err->msg, '\n') == NULL);
}

/* The bytes der/len wrapped in each layout decode to themselves. */
static void
est_fuzz_rewrap(const unsigned char *der, size_t len)
{
	struct common_error err;
	unsigned char *back;
	size_t i, backlen;
	char *b64;

	for (i = 0; i < EST_FUZZ_NLAYOUTS; i++) {
		if ((b64 = est_b64_wrap(der, len, est_fuzz_layouts[i].wrap,
		    est_fuzz_layouts[i].eol)) == NULL)
			abort();
		common_error_clear(&err);
		FUZZ_CHECK(est_b64_body(b64, strlen(b64), &back, &backlen,
		    &err) == 0);
		FUZZ_CHECK(backlen == len && memcmp(back, der, len) == 0);
		free(back);
		free(b64);
	}
}

/* est_csr_decode of der/len, which must refuse it. */
static void
est_fuzz_csr_refused(const unsigned char *der, size_t len)
{
	struct common_error err;

	common_error_clear(&err);
	FUZZ_CHECK(est_csr_decode(der, len, &err) == NULL);
	est_fuzz_refused(&err);
}

/*
 * An accepted request: no byte more or less taken; it is its own DER
 * encoding (est_csr_decode refuses BER, which d2i_X509_REQ would take:
 * lengths such as 30 83 00 01 19, non-zero unused bits in the
 * signature), and that encoding is accepted again.
 */
static void
est_fuzz_csr_exact(X509_REQ *csr, const unsigned char *der, size_t len)
{
	struct common_error err;
	unsigned char *enc = NULL, *again = NULL, *longer;
	X509_REQ *back;
	int n;

	/* est_csr_decode takes DER only: the input is its own encoding */
	FUZZ_CHECK((n = i2d_X509_REQ(csr, &enc)) > 0);
	FUZZ_CHECK((size_t)n == len && memcmp(enc, der, len) == 0);
	common_error_clear(&err);
	FUZZ_CHECK((back = est_csr_decode(enc, (size_t)n, &err)) != NULL);
	FUZZ_CHECK(i2d_X509_REQ(back, &again) == n &&
	    memcmp(again, enc, (size_t)n) == 0);
	OPENSSL_free(again);
	X509_REQ_free(back);
	OPENSSL_free(enc);

	if ((longer = malloc(len + 1)) == NULL)
		abort();
	memcpy(longer, der, len);
	longer[len] = 0;
	est_fuzz_csr_refused(longer, len + 1);
	free(longer);
	est_fuzz_csr_refused(der, len - 1);
}

/* One request body, through est_enroll's parse. */
static void
est_fuzz_body(const char *body, size_t len)
{
	struct common_error err;
	unsigned char *der = NULL;
	size_t derlen = 0;
	X509_REQ *csr;

	common_error_clear(&err);
	if (est_b64_body(body, len, &der, &derlen, &err) == -1) {
		FUZZ_CHECK(der == NULL && derlen == 0);
		est_fuzz_refused(&err);
		return;
	}
	FUZZ_CHECK(der != NULL && derlen > 0 && derlen * 4 <= len * 3);
	est_fuzz_rewrap(der, derlen);

	common_error_clear(&err);
	if ((csr = est_csr_decode(der, derlen, &err)) == NULL) {
		est_fuzz_refused(&err);
	} else {
		FUZZ_CHECK(err.code == COMMON_E_NONE);
		est_fuzz_csr_exact(csr, der, derlen);
		fuzz_csr_parse(csr);	/* as est_enroll calls it */
		X509_REQ_free(csr);
	}
	free(der);
	ERR_clear_error();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *b64;
	size_t l;

	/* the route refuses longer bodies before est_enroll sees them */
	if (size == 0 || size > EST_BODY_MAX)
		return 0;
	if ((data[0] & 1) == 0) {
		est_fuzz_body((const char *)data + 1, size - 1);
		return 0;
	}
	if (size < 2)
		return 0;
	l = data[1] % EST_FUZZ_NLAYOUTS;
	if ((b64 = est_b64_wrap(data + 2, size - 2, est_fuzz_layouts[l].wrap,
	    est_fuzz_layouts[l].eol)) == NULL)
		abort();
	est_fuzz_body(b64, strlen(b64));
	free(b64);
	return 0;
}
