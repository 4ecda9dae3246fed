/*
 * protocols/est/encode.c — the EST wire encodings: base64 bodies in both
 * directions (RFC 8951 §3: line breaks optional, CRLF or LF, the
 * Content-Transfer-Encoding header optional), PKCS#10 requests read with
 * a trailing-bytes check, and PKCS#7 certs-only replies (RFC 7030 §4.1.3,
 * §4.2.3: a SignedData with no signers and no content).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/pkcs7.h>

#include "protocols/est/est.h"

int
est_b64_body(const char *body, size_t len, unsigned char **der,
    size_t *derlen, struct common_error *err)
{
	size_t i;

	*der = NULL;
	*derlen = 0;
	for (i = 0; i < len; i++)
		if (!isspace((unsigned char)body[i]))
			break;
	if (i == len) {
		common_error_set(err, COMMON_E_INVALID, "the request body is "
		    "empty: expected a base64 PKCS#10 request");
		return -1;
	}
	/* url=false skips CR, LF, spaces and tabs and takes optional
	 * padding: every RFC 8951 line layout decodes the same way. */
	if (common_b64_decode(body, len, false, der, derlen) == -1 ||
	    *derlen == 0) {
		free(*der);
		*der = NULL;
		*derlen = 0;
		common_error_set(err, COMMON_E_INVALID, "the request body is "
		    "not valid base64 (RFC 8951 §3)");
		return -1;
	}
	return 0;
}

X509_REQ *
est_csr_decode(const unsigned char *der, size_t len,
    struct common_error *err)
{
	const unsigned char *p = der;
	X509_REQ *csr;

	if ((csr = d2i_X509_REQ(NULL, &p, (long)len)) == NULL) {
		common_error_set(err, COMMON_E_INVALID, "the request body is "
		    "not a DER PKCS#10 certification request");
		return NULL;
	}
	if (p != der + len) {
		common_error_set(err, COMMON_E_INVALID, "%zu byte(s) of "
		    "trailing data after the PKCS#10 request",
		    (size_t)(der + len - p));
		X509_REQ_free(csr);
		return NULL;
	}
	/* d2i accepts BER around the signed part (long length forms, a
	 * signature BIT STRING with unused bits set); the stored request
	 * and a pending request's id are its bytes, so one request must
	 * have one encoding. */
	if (!common_csr_is_der(csr, der, len)) {
		common_error_set(err, COMMON_E_INVALID, "the PKCS#10 request "
		    "is not DER (RFC 2986; RFC 7030 section 4.2.1)");
		X509_REQ_free(csr);
		csr = NULL;
	}
	return csr;
}

/*
 * The degenerate SignedData of "openssl crl2pkcs7 -nocrl": version 1, no
 * digest algorithms, encapsulated content of type data with no content,
 * the certificates, no CRLs, no signerInfos.
 */
int
est_pkcs7_certs(STACK_OF(X509) *certs, unsigned char **der, size_t *len)
{
	PKCS7 *p7 = NULL;
	unsigned char *buf = NULL;
	int i, n, rc = -1;

	*der = NULL;
	*len = 0;
	if ((p7 = PKCS7_new()) == NULL ||
	    PKCS7_set_type(p7, NID_pkcs7_signed) != 1)
		goto out;
	/* certs-only: type data, content absent */
	ASN1_OBJECT_free(p7->d.sign->contents->type);
	p7->d.sign->contents->type = OBJ_nid2obj(NID_pkcs7_data);
	for (i = 0; i < sk_X509_num(certs); i++)
		if (PKCS7_add_certificate(p7, sk_X509_value(certs, i)) != 1)
			goto out;
	if ((n = i2d_PKCS7(p7, &buf)) <= 0)
		goto out;
	*der = buf;	/* steal */
	*len = (size_t)n;
	buf = NULL;
	rc = 0;
out:
	if (rc == -1)
		log_err("est: PKCS#7 certs-only of %d certificate(s): %s",
		    sk_X509_num(certs), common_ssl_error());
	OPENSSL_free(buf);
	PKCS7_free(p7);
	return rc;
}

/* Sized once and the intermediate cleansed: it also carries private
 * keys (serverkeygen). */
char *
est_b64_wrap(const void *p, size_t n, size_t wrap, const char *eol)
{
	char *flat = NULL, *ret = NULL, *w;
	size_t i, flen, line, lines, elen = strlen(eol);

	if ((flat = common_b64_encode(p, n, false, 0)) == NULL)
		goto out;
	flen = strlen(flat);
	if (wrap == 0)
		wrap = flen > 0 ? flen : 1;
	lines = (flen + wrap - 1) / wrap;
	if ((ret = malloc(flen + lines * elen + 1)) == NULL)
		goto out;
	w = ret;
	for (i = 0; i < flen; i += line) {
		line = flen - i < wrap ? flen - i : wrap;
		memcpy(w, flat + i, line);
		w += line;
		memcpy(w, eol, elen);
		w += elen;
	}
	*w = '\0';
out:
	if (flat != NULL) {
		OPENSSL_cleanse(flat, strlen(flat));
		free(flat);
	}
	return ret;
}

bool
est_ctype_is(struct evhttp_request *req, const char *ctype)
{
	const char *v, *end;
	size_t n = strlen(ctype);

	v = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type");
	if (v == NULL)
		return false;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strcspn(v, ";");
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return (size_t)(end - v) == n && strncasecmp(v, ctype, n) == 0;
}
