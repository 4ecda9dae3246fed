/*
 * Minimal unit-test harness. A test file defines test functions and a
 * table:
 *
 *	static void test_b64(void) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *	const struct test_case test_cases[] = { TEST(test_b64), { 0 } };
 *
 * test.c runs each case in order and prints "NAME: N passed, N failed";
 * the exit status is 1 when anything failed. A CHECK failure prints the
 * file, line and expression and marks the current case failed (the case
 * goes on, so one run shows every broken check).
 */
#ifndef PKID_TEST_H
#define PKID_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct test_case {
	const char	*name;
	void		(*fn)(void);
};

#define TEST(fn)	{ #fn, fn }

extern const struct test_case test_cases[];
extern int test_failed_checks;
/* A fresh empty directory for this test binary (removed at exit unless
 * PKID_TEST_KEEP is set); the returned path is static. */
const char *test_tmpdir(void);
/* A self-signed P-256 CA certificate for IP 127.0.0.1 (for test TLS
 * peers), its PEM written to pem_file; the key into *keyp. Each call
 * gets another serial. NULL on failure. Caller frees both. */
X509 *test_self_signed(EVP_PKEY **keyp, const char *pem_file);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
		    __LINE__, #cond); \
		test_failed_checks++; \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *check_a_ = (a), *check_b_ = (b); \
	if (check_a_ == NULL || check_b_ == NULL || \
	    strcmp(check_a_, check_b_) != 0) { \
		fprintf(stderr, "%s:%d: CHECK_STR(%s, %s) failed: " \
		    "\"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, \
		    check_a_ ? check_a_ : "(null)", \
		    check_b_ ? check_b_ : "(null)"); \
		test_failed_checks++; \
	} \
} while (0)

#endif
