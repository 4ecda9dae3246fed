/*
 * common/pem.c — PEM and DER conversions of certificates, keys and
 * requests through OpenSSL, with the exactness checks OpenSSL leaves to
 * the caller: the expected label only, no trailing bytes after the DER,
 * nothing but whitespace after the last END line, count limits.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/common.h"

#define SSL_ERROR_MAX	256	/* one formatted OpenSSL error line */

static __thread char ssl_error_buf[SSL_ERROR_MAX];

/* Copies a memory BIO's contents into a NUL-terminated string to free(). */
static char *
pem_bio_string(BIO *bio)
{
	char *data, *s;
	long n;

	n = BIO_get_mem_data(bio, &data);
	if (n < 0)
		return NULL;
	if ((s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

/* What pem_encode writes. */
enum pem_kind {
	PEM_KIND_CERT,		/* "CERTIFICATE", from an X509 */
	PEM_KIND_PUBKEY,	/* "PUBLIC KEY" (SubjectPublicKeyInfo) */
	PEM_KIND_PRIVKEY	/* "PRIVATE KEY" (PKCS#8, unencrypted) */
};

/*
 * Writes obj (an X509 for PEM_KIND_CERT, an EVP_PKEY otherwise) as PEM
 * into a NUL-terminated string to free(); NULL on failure or when obj is
 * NULL. A private key only passes through a secure-heap BIO.
 */
static char *
pem_encode(enum pem_kind kind, const void *obj)
{
	BIO *bio = NULL;
	char *s = NULL;
	int ok = 0;

	if (obj == NULL || (bio = BIO_new(kind == PEM_KIND_PRIVKEY ?
	    BIO_s_secmem() : BIO_s_mem())) == NULL)
		goto out;
	switch (kind) {
	case PEM_KIND_CERT:
		ok = PEM_write_bio_X509(bio, obj);
		break;
	case PEM_KIND_PUBKEY:
		ok = PEM_write_bio_PUBKEY(bio, obj);
		break;
	case PEM_KIND_PRIVKEY:
		ok = PEM_write_bio_PKCS8PrivateKey(bio, obj, NULL, NULL, 0,
		    NULL, NULL);
		break;
	}
	if (ok != 1)
		goto out;
	s = pem_bio_string(bio);
out:
	BIO_free(bio);
	return s;
}

char *
common_x509_to_pem(X509 *x)
{
	return pem_encode(PEM_KIND_CERT, x);
}

char *
common_pubkey_to_pem(EVP_PKEY *k)
{
	return pem_encode(PEM_KIND_PUBKEY, k);
}

/*
 * i2d_X509_PUBKEY writes the stored algorithm and key bits as they are;
 * only EVP_PKEY encoding (PEM_write_bio_PUBKEY, i2d_PUBKEY) goes through
 * an OSSL_ENCODER context, whose set-up walks every provider's encoders.
 */
char *
common_spki_to_pem(const X509_PUBKEY *spki)
{
	unsigned char *der = NULL;
	char *s = NULL;
	BIO *bio = NULL;
	int len;

	if (spki == NULL || (len = i2d_X509_PUBKEY(spki, &der)) <= 0 ||
	    (bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio(bio, PEM_STRING_PUBLIC, "", der, len) <= 0)
		goto out;
	s = pem_bio_string(bio);
out:
	BIO_free(bio);
	OPENSSL_free(der);
	return s;
}

/* PKCS#8 "PRIVATE KEY", unencrypted. The caller must wipe and free it. */
char *
common_privkey_to_pem(EVP_PKEY *k)
{
	return pem_encode(PEM_KIND_PRIVKEY, k);
}

/* True when the len bytes at p are all PEM whitespace. */
static bool
pem_is_blank(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' &&
		    p[i] != '\n')
			return false;
	return true;
}

/*
 * Reads the next PEM block from a memory BIO over text. Text before a
 * BEGIN line is skipped (RFC 7468 section 2 lets parsers ignore it), but
 * anything except whitespace after the last END line is refused.
 * Returns 1 with the label and the DER (OPENSSL_free both), 0 at the end
 * of the text, -1 on malformed PEM, encrypted blocks or trailing garbage.
 */
static int
pem_next(BIO *bio, char **name, unsigned char **der, long *derlen)
{
	char *header = NULL, *rest;
	long restlen;
	unsigned long e;
	int rc = -1;

	*name = NULL;
	*der = NULL;
	restlen = BIO_get_mem_data(bio, &rest);
	if (restlen <= 0 || pem_is_blank(rest, (size_t)restlen)) {
		rc = 0;
		goto out;
	}
	if (PEM_read_bio(bio, name, &header, der, derlen) != 1) {
		e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
		    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
			ERR_clear_error();	/* only trailing text: garbage */
		goto out;
	}
	if (header != NULL && header[0] != '\0')
		goto out;	/* RFC 1421 headers mean an encrypted block */
	rc = 1;
out:
	OPENSSL_free(header);
	if (rc != 1) {
		OPENSSL_free(*name);
		OPENSSL_free(*der);
		*name = NULL;
		*der = NULL;
	}
	return rc;
}

/* Memory BIO over (pem, len); NULL if len does not fit an int. */
static BIO *
pem_bio_open(const char *pem, size_t len)
{
	if (pem == NULL || len > INT_MAX)
		return NULL;
	return BIO_new_mem_buf(pem, (int)len);
}

/* One DER certificate with no trailing bytes; NULL otherwise. */
static X509 *
pem_der_x509(const unsigned char *der, long derlen)
{
	const unsigned char *p = der;
	X509 *x;

	if ((x = d2i_X509(NULL, &p, derlen)) == NULL)
		return NULL;
	if (p != der + derlen) {
		X509_free(x);
		return NULL;
	}
	return x;
}

X509 *
common_x509_from_pem(const char *pem, size_t len)
{
	STACK_OF(X509) *sk;
	X509 *x = NULL;

	if ((sk = common_x509s_from_pem(pem, len, 1)) == NULL)
		goto out;
	if (sk_X509_num(sk) == 1)
		x = sk_X509_shift(sk);	/* steal */
out:
	sk_X509_pop_free(sk, X509_free);
	return x;
}

/*
 * Every "CERTIFICATE" block of the text, in order. Any other label, a
 * malformed block, trailing garbage or more than max certificates
 * rejects the whole text. Returns a stack to sk_X509_pop_free(), empty
 * for a blank text, NULL on failure.
 */
STACK_OF(X509) *
common_x509s_from_pem(const char *pem, size_t len, int max)
{
	STACK_OF(X509) *sk = NULL, *res = NULL;
	unsigned char *der = NULL;
	char *name = NULL;
	BIO *bio = NULL;
	X509 *x = NULL;
	long derlen;
	int r;

	if ((bio = pem_bio_open(pem, len)) == NULL ||
	    (sk = sk_X509_new_null()) == NULL)
		goto out;
	while ((r = pem_next(bio, &name, &der, &derlen)) == 1) {
		if (strcmp(name, PEM_STRING_X509) != 0)
			goto out;
		if (sk_X509_num(sk) >= max)
			goto out;
		if ((x = pem_der_x509(der, derlen)) == NULL)
			goto out;
		if (sk_X509_push(sk, x) <= 0)
			goto out;
		x = NULL;	/* owned by sk */
		OPENSSL_free(name);
		OPENSSL_free(der);
		name = NULL;
		der = NULL;
	}
	if (r == -1)
		goto out;
	res = sk;	/* steal */
	sk = NULL;
out:
	X509_free(x);
	OPENSSL_free(name);
	OPENSSL_free(der);
	sk_X509_pop_free(sk, X509_free);
	BIO_free(bio);
	return res;
}

/* Refuses every passphrase prompt: only unencrypted keys are read. */
static int
pem_no_password(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

/*
 * The first private key of the text: PKCS#8 "PRIVATE KEY" or the
 * traditional "RSA PRIVATE KEY" / "EC PRIVATE KEY" (an "EC PARAMETERS"
 * block before it is skipped, as openssl ecparam -genkey writes one).
 * Encrypted keys are refused. NULL on failure.
 */
EVP_PKEY *
common_privkey_from_pem(const char *pem, size_t len)
{
	EVP_PKEY *k = NULL;
	BIO *bio;

	if ((bio = pem_bio_open(pem, len)) == NULL)
		return NULL;
	k = PEM_read_bio_PrivateKey(bio, NULL, pem_no_password, NULL);
	BIO_free(bio);
	return k;
}

bool
common_csr_is_der(X509_REQ *req, const unsigned char *der, size_t len)
{
	unsigned char *enc = NULL;
	int n;
	bool same;

	n = i2d_X509_REQ(req, &enc);
	same = n > 0 && (size_t)n == len && memcmp(enc, der, len) == 0;
	OPENSSL_free(enc);
	return same;
}

/*
 * Exactly one PKCS#10 request ("CERTIFICATE REQUEST", or "NEW
 * CERTIFICATE REQUEST" as older tools write it) with nothing but
 * whitespace after its END line. NULL on failure.
 */
X509_REQ *
common_csr_from_pem(const char *pem, size_t len)
{
	X509_REQ *req = NULL, *res = NULL;
	const unsigned char *p;
	unsigned char *der = NULL, *der2 = NULL;
	char *name = NULL, *name2 = NULL;
	BIO *bio = NULL;
	long derlen, derlen2;

	if ((bio = pem_bio_open(pem, len)) == NULL)
		goto out;
	if (pem_next(bio, &name, &der, &derlen) != 1)
		goto out;
	if (strcmp(name, PEM_STRING_X509_REQ) != 0 &&
	    strcmp(name, PEM_STRING_X509_REQ_OLD) != 0)
		goto out;
	p = der;
	if ((req = d2i_X509_REQ(NULL, &p, derlen)) == NULL ||
	    p != der + derlen)
		goto out;
	/* Whatever follows must be blank: no second request, no garbage. */
	if (pem_next(bio, &name2, &der2, &derlen2) != 0)
		goto out;
	res = req;	/* steal */
	req = NULL;
out:
	X509_REQ_free(req);
	OPENSSL_free(name);
	OPENSSL_free(der);
	OPENSSL_free(name2);
	OPENSSL_free(der2);
	BIO_free(bio);
	return res;
}

/* DER of x into a buffer to free(). */
int
common_x509_to_der(X509 *x, unsigned char **out, size_t *len)
{
	unsigned char *buf = NULL, *p;
	int n, rc = -1;

	*out = NULL;
	*len = 0;
	if (x == NULL || (n = i2d_X509(x, NULL)) <= 0)
		goto out;
	if ((buf = malloc((size_t)n)) == NULL)
		goto out;
	p = buf;
	if (i2d_X509(x, &p) != n)
		goto out;
	*out = buf;	/* steal */
	buf = NULL;
	*len = (size_t)n;
	rc = 0;
out:
	free(buf);
	return rc;
}

/*
 * Upper-case hex of the serial number ("0" for zero; RFC 5280 allows at
 * most 20 octets, i.e. 40 characters). -1 if out is too small.
 */
int
common_x509_serial_hex(X509 *x, char *out, size_t outlen)
{
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int rc = -1;

	if (outlen > 0)
		out[0] = '\0';
	if (x == NULL)
		goto out;
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) == NULL)
		goto out;
	if ((hex = BN_bn2hex(bn)) == NULL)
		goto out;
	if (common_path(out, outlen, "%s", hex) == -1) {
		if (outlen > 0)
			out[0] = '\0';
		goto out;
	}
	rc = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

/*
 * The most recent OpenSSL error of this thread as one line, then clears
 * the thread's error queue so a later failure is not blamed on it. The
 * string lives in thread-local storage until the next call.
 */
const char *
common_ssl_error(void)
{
	unsigned long e;

	e = ERR_peek_last_error();
	if (e == 0)
		snprintf(ssl_error_buf, sizeof(ssl_error_buf),
		    "no OpenSSL error reported");
	else
		ERR_error_string_n(e, ssl_error_buf, sizeof(ssl_error_buf));
	ERR_clear_error();
	return ssl_error_buf;
}
