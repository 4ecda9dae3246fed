/*
 * tests/fuzz/subject_fuzz.c — the RFC 4514 subject parser (ca_name_parse)
 * and the SAN classifier (ca_sans_parse) of ca/, with the subject
 * comparison and SAN set comparison lifecycle/ applies to external
 * requests, and the CA naming policy check.
 *
 * The whole input is one subject; its lines are a SAN list.
 *
 * Properties: the text ca_name_string gives for a parsed subject parses
 * to the same name (ca/name.c promises the round trip); the SAN strings
 * ca_san_string gives for a parsed list parse to the same names, and
 * lifecycle_sans_match finds them equal to the input list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/common.h"
#include "lifecycle/lifecycle.h"
#include "tests/fuzz/fuzz.h"

/* A CA record with a policy on both kinds of names, for ca_policy_check. */
static json_t *subject_fuzz_ca;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct common_error err;
	json_t *policy, *norm;

	(void)argc;
	(void)argv;
	fuzz_quiet();
	common_error_clear(&err);
	policy = json_pack("{s:[s,s], s:[s,s,s]}",
	    "dns_suffixes", "example.com", "Sub.Example.ORG",
	    "ip_ranges", "10.0.0.0/8", "2001:db8::/32", "192.168.1.7/32");
	if (policy == NULL ||
	    (norm = ca_policy_normalize(policy, &err)) == NULL ||
	    (subject_fuzz_ca = json_pack("{s:s, s:s, s:o}", "id", "ca-fuzz",
	    "name", "fuzz", "policy", norm)) == NULL)
		abort();
	json_decref(policy);
	return 0;
}

static void
subject_fuzz_name(const char *s)
{
	struct common_error err;
	X509_NAME *name, *back;
	char *text;

	common_error_clear(&err);
	if ((name = ca_name_parse(s, &err)) == NULL) {
		FUZZ_CHECK(err.code != COMMON_E_NONE);
		return;
	}
	FUZZ_CHECK((text = ca_name_string(name)) != NULL);
	common_error_clear(&err);
	back = ca_name_parse(text, &err);
	if (back == NULL)
		fprintf(stderr, "subject_fuzz: \"%s\" -> \"%s\": %s\n", s,
		    text, err.msg);
	FUZZ_CHECK(back != NULL);
	FUZZ_CHECK(X509_NAME_cmp(name, back) == 0);
	(void)lifecycle_subject_match(s, name);
	(void)lifecycle_subject_match(text, back);
	free(text);
	X509_NAME_free(back);
	X509_NAME_free(name);
}

/* The SAN texts of gens, as a JSON array; aborts on failure. */
static json_t *
subject_fuzz_texts(const GENERAL_NAMES *gens)
{
	json_t *arr;
	char *s;
	int i;

	if ((arr = json_array()) == NULL)
		abort();
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		FUZZ_CHECK((s = ca_san_string(sk_GENERAL_NAME_value(gens,
		    i))) != NULL);
		if (json_array_append_new(arr, json_string(s)) == -1)
			abort();
		free(s);
	}
	return arr;
}

static void
subject_fuzz_sans(const char *const *sans, size_t n)
{
	struct common_error err;
	GENERAL_NAMES *gens, *back;
	const char **texts = NULL;
	json_t *in, *out;
	size_t i;

	common_error_clear(&err);
	if ((gens = ca_sans_parse(sans, n, &err)) == NULL) {
		FUZZ_CHECK(err.code != COMMON_E_NONE);
		return;
	}
	FUZZ_CHECK((size_t)sk_GENERAL_NAME_num(gens) == n);
	out = subject_fuzz_texts(gens);
	if ((in = json_array()) == NULL ||
	    (texts = calloc(n + 1, sizeof(*texts))) == NULL)
		abort();
	for (i = 0; i < n; i++) {
		if (json_array_append_new(in, json_string(sans[i])) == -1)
			abort();
		texts[i] = json_string_value(json_array_get(out, i));
	}

	common_error_clear(&err);
	FUZZ_CHECK((back = ca_sans_parse(texts, n, &err)) != NULL);
	for (i = 0; i < n; i++)
		FUZZ_CHECK(GENERAL_NAME_cmp(sk_GENERAL_NAME_value(gens,
		    (int)i), sk_GENERAL_NAME_value(back, (int)i)) == 0);
	common_error_clear(&err);
	FUZZ_CHECK(lifecycle_sans_match(in, out, &err) == 0);

	common_error_clear(&err);
	if (ca_policy_check(subject_fuzz_ca, gens, &err) == -1)
		FUZZ_CHECK(err.code == COMMON_E_POLICY ||
		    err.code == COMMON_E_INVALID);
	GENERAL_NAMES_free(back);
	GENERAL_NAMES_free(gens);
	json_decref(in);
	json_decref(out);
	free(texts);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, *buf;
	char **lines;
	size_t n;

	s = fuzz_strndup(data, size);
	subject_fuzz_name(s);
	free(s);

	/* One past the limit, so the count check is reached too. */
	n = fuzz_lines(data, size, CA_MAX_SANS + 1, &buf, &lines);
	subject_fuzz_sans((const char *const *)lines, n);
	free(lines);
	free(buf);
	ERR_clear_error();
	return 0;
}
