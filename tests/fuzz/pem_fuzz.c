/*
 * tests/fuzz/pem_fuzz.c — the PEM readers of common/pem.c and what the
 * inventory reads from an imported certificate (lifecycle/x509.c).
 *
 * The input is tried as PEM text with every reader, then wrapped as the
 * body of a CERTIFICATE, CERTIFICATE REQUEST and PRIVATE KEY block for
 * the matching reader, so that mutated DER reaches the DER decoders
 * behind the PEM layer.
 *
 * Properties: a certificate or key that was read writes back to PEM that
 * reads to the same object; a public key read back from its PEM is the
 * same key.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/common.h"
#include "lifecycle/lifecycle.h"
#include "tests/fuzz/fuzz.h"

#define PEM_FUZZ_SERIAL_MAX	64	/* >= 41 bytes, as common.h asks */

#define PEM_FUZZ_CERT	0x1u	/* common_x509_from_pem, common_x509s_from_pem */
#define PEM_FUZZ_CSR	0x2u	/* common_csr_from_pem */
#define PEM_FUZZ_KEY	0x4u	/* common_privkey_from_pem */

FUZZ_INITIALIZE_QUIET

/* What pkid does with a certificate it accepted: PEM round trip, DER,
 * serial, validity, SANs, subject text and profile. */
static void
pem_fuzz_cert(X509 *x)
{
	char serial[PEM_FUZZ_SERIAL_MAX];
	unsigned char *der = NULL;
	const char *profile;
	enum ca_profile p;
	json_t *sans;
	X509 *back;
	size_t derlen;
	time_t t;
	char *pem;

	FUZZ_CHECK((pem = common_x509_to_pem(x)) != NULL);
	FUZZ_CHECK((back = common_x509_from_pem(pem, strlen(pem))) != NULL);
	FUZZ_CHECK(X509_cmp(x, back) == 0);
	X509_free(back);
	free(pem);

	if (common_x509_to_der(x, &der, &derlen) == 0) {
		FUZZ_CHECK(der != NULL && derlen > 0);
		free(der);
	}
	if (common_x509_serial_hex(x, serial, sizeof(serial)) == 0)
		FUZZ_CHECK(memchr(serial, '\0', sizeof(serial)) != NULL);
	(void)common_asn1_time(X509_get0_notBefore(x), &t);
	(void)common_asn1_time(X509_get0_notAfter(x), &t);

	if ((sans = lifecycle_x509_sans(x)) != NULL)
		FUZZ_CHECK(json_is_array(sans));
	json_decref(sans);
	free(lifecycle_name_text(X509_get_subject_name(x)));
	free(lifecycle_name_text(X509_get_issuer_name(x)));
	if ((profile = lifecycle_x509_profile(x)) != NULL)
		FUZZ_CHECK(ca_profile_parse(profile, &p) == 0);
}

/* A private key: PKCS#8 round trip and public key PEM round trip. */
static void
pem_fuzz_key(EVP_PKEY *k)
{
	enum ca_key_alg alg;
	EVP_PKEY *back;
	char *pem;

	(void)ca_key_alg_of(k, &alg);
	if ((pem = common_privkey_to_pem(k)) != NULL) {
		FUZZ_CHECK((back = common_privkey_from_pem(pem,
		    strlen(pem))) != NULL);
		FUZZ_CHECK(EVP_PKEY_eq(k, back) == 1);
		EVP_PKEY_free(back);
		free(pem);
	}
	if ((pem = common_pubkey_to_pem(k)) != NULL) {
		FUZZ_CHECK((back = lifecycle_pubkey_from_pem(pem)) != NULL);
		FUZZ_CHECK(EVP_PKEY_eq(k, back) == 1);
		EVP_PKEY_free(back);
		free(pem);
	}
}

/* The readers of one PEM text, chosen by a mask of PEM_FUZZ_* bits. */
static void
pem_fuzz_text(const char *pem, size_t len, unsigned readers)
{
	STACK_OF(X509) *sk;
	X509_REQ *req;
	EVP_PKEY *k;
	X509 *x;
	int i;

	if (readers & PEM_FUZZ_CERT) {
		if ((x = common_x509_from_pem(pem, len)) != NULL)
			pem_fuzz_cert(x);
		X509_free(x);
		sk = common_x509s_from_pem(pem, len, CA_CHAIN_MAX);
		if (sk != NULL) {
			FUZZ_CHECK(sk_X509_num(sk) <= CA_CHAIN_MAX);
			for (i = 0; i < sk_X509_num(sk); i++)
				pem_fuzz_cert(sk_X509_value(sk, i));
		}
		sk_X509_pop_free(sk, X509_free);
	}
	if (readers & PEM_FUZZ_CSR) {
		if ((req = common_csr_from_pem(pem, len)) != NULL)
			free(lifecycle_csr_to_pem(req));
		X509_REQ_free(req);
	}
	if (readers & PEM_FUZZ_KEY) {
		if ((k = common_privkey_from_pem(pem, len)) != NULL)
			pem_fuzz_key(k);
		EVP_PKEY_free(k);
	}
	ERR_clear_error();
}

/*
 * The text as it is goes to every reader; each wrapping only to the
 * reader of its label (OpenSSL 3's key decoder costs a fraction of a
 * millisecond per call, so running it on certificates would slow the
 * whole run down for nothing).
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		const char	*label;
		unsigned	 readers;
	} wraps[] = {
		{ "CERTIFICATE", PEM_FUZZ_CERT },
		{ "CERTIFICATE REQUEST", PEM_FUZZ_CSR },
		{ "PRIVATE KEY", PEM_FUZZ_KEY },
	};
	char *pem;
	size_t i;

	pem_fuzz_text((const char *)data, size,
	    PEM_FUZZ_CERT | PEM_FUZZ_CSR | PEM_FUZZ_KEY);
	for (i = 0; i < sizeof(wraps) / sizeof(wraps[0]); i++) {
		pem = fuzz_pem_wrap(wraps[i].label, data, size);
		pem_fuzz_text(pem, strlen(pem), wraps[i].readers);
		free(pem);
	}
	return 0;
}
