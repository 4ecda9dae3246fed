/* Runner for tests/unit/test.h: runs test_cases[] and reports. */
#include <libgen.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "common/common.h"
#include "tests/unit/test.h"

int test_failed_checks;
static long next_serial = 1;

static char tmpdir[256];

static void
test_cleanup(void)
{
	char cmd[300];

	if (tmpdir[0] == '\0' || getenv("PKID_TEST_KEEP") != NULL)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *
test_tmpdir(void)
{
	if (tmpdir[0] == '\0') {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/pkid-unit-XXXXXX");
		if (mkdtemp(tmpdir) == NULL) {
			perror("mkdtemp");
			exit(2);
		}
		atexit(test_cleanup);
	}
	return tmpdir;
}

/* See test.h. */
X509 *
test_self_signed(EVP_PKEY **keyp, const char *pem_file)
{
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	X509_NAME *n;
	char *pem = NULL;
	bool ok = false;

	if ((k = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL ||
	    X509_set_version(x, 2) != 1 ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x),
	    (long)(next_serial++ + (common_now() & 0xffff) * 1000)) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL ||
	    X509_set_pubkey(x, k) != 1)
		goto out;
	n = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"127.0.0.1", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, n) != 1)
		goto out;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    "IP:127.0.0.1")) == NULL)
		goto out;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	    "critical,CA:TRUE")) == NULL)
		goto out;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(x, k, EVP_sha256()) <= 0 ||
	    (pem = common_x509_to_pem(x)) == NULL ||
	    common_file_write(pem_file, pem, strlen(pem), 0644) == -1)
		goto out;
	ok = true;
out:
	free(pem);
	if (!ok) {
		X509_free(x);
		EVP_PKEY_free(k);
		return NULL;
	}
	*keyp = k;
	return x;
}

int
main(int argc, char **argv)
{
	const struct test_case *tc;
	const char *only = argc > 1 ? argv[1] : NULL;
	int passed = 0, failed = 0;

	for (tc = test_cases; tc->name != NULL; tc++) {
		int before = test_failed_checks;

		if (only != NULL && strcmp(only, tc->name) != 0)
			continue;
		tc->fn();
		if (test_failed_checks == before) {
			passed++;
			fprintf(stderr, "ok   %s\n", tc->name);
		} else {
			failed++;
			fprintf(stderr, "FAIL %s\n", tc->name);
		}
	}
	printf("%s: %d passed, %d failed\n", basename(argv[0]), passed, failed);
	return failed == 0 ? 0 : 1;
}
