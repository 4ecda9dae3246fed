/*
 * tests/fuzz/csr_fuzz.c — PKCS#10 requests as ACME finalize, EST enroll
 * and the management API "csr" field receive them: DER through
 * d2i_X509_REQ (no trailing bytes, as STYLE.md asks of every DER input),
 * and the input as PEM text through common_csr_from_pem, then
 * ca_csr_parse.
 *
 * A mutated request almost never carries a valid self-signature, which
 * would stop ca_csr_parse before the SAN extraction. So each decoded
 * request is also re-signed with a fixed Ed25519 key (deterministic
 * signatures keep runs reproducible) and parsed again: the subject and
 * extensions the fuzzer produced are kept, only the key and signature
 * change.
 *
 * Properties: an accepted request yields a subject string and a JSON
 * array of at most CA_MAX_SANS strings; a request writes back to PEM that
 * common_csr_from_pem reads.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/common.h"
#include "lifecycle/lifecycle.h"
#include "tests/fuzz/fuzz.h"

static EVP_PKEY *csr_fuzz_key;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	if ((csr_fuzz_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) ==
	    NULL)
		abort();
	return 0;
}

/* The PEM round trip and both parses of one decoded request. */
static void
csr_fuzz_req(X509_REQ *req)
{
	X509_REQ *back;
	char *pem;

	if ((pem = lifecycle_csr_to_pem(req)) != NULL) {
		FUZZ_CHECK((back = common_csr_from_pem(pem, strlen(pem))) !=
		    NULL);
		X509_REQ_free(back);
		free(pem);
	}
	fuzz_csr_parse(req);
	if (X509_REQ_set_pubkey(req, csr_fuzz_key) == 1 &&
	    X509_REQ_sign(req, csr_fuzz_key, NULL) > 0)
		fuzz_csr_parse(req);
	ERR_clear_error();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	X509_REQ *req;

	if ((req = d2i_X509_REQ(NULL, &p, (long)size)) != NULL &&
	    p == data + size)
		csr_fuzz_req(req);
	X509_REQ_free(req);

	if ((req = common_csr_from_pem((const char *)data, size)) != NULL)
		csr_fuzz_req(req);
	X509_REQ_free(req);
	ERR_clear_error();
	return 0;
}
