/*
 * tests/fuzz/json_fuzz.c — management API request bodies: json_loadb with
 * the flags protocols/mgmt uses, then the validation that runs before any
 * store access: lifecycle_req_check against the field tables of
 * certificate, renewal, resource and association requests, the name and
 * paging checks, CA policy normalisation, SAN typing, the SAN set
 * comparison and the policy check.
 *
 * The field tables are copies of the static ones in lifecycle/cert.c and
 * lifecycle/resource.c (they are not exported); keep them in step.
 *
 * Properties: a normalised policy normalises to itself; a SAN list
 * equals itself under lifecycle_sans_match; a refusal always carries an
 * error code and message.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/common.h"
#include "lifecycle/lifecycle.h"
#include "tests/fuzz/fuzz.h"

static const struct lifecycle_field json_fuzz_cert_fields[] = {
	{ "name", LIFECYCLE_F_STRING },
	{ "mode", LIFECYCLE_F_STRING },
	{ "ca_id", LIFECYCLE_F_STRING },
	{ "profile", LIFECYCLE_F_STRING },
	{ "subject", LIFECYCLE_F_STRING },
	{ "sans", LIFECYCLE_F_STRINGS },
	{ "key_algorithm", LIFECYCLE_F_STRING },
	{ "validity_days", LIFECYCLE_F_NUMBER },
	{ "renewal", LIFECYCLE_F_OBJECT },
	{ "csr", LIFECYCLE_F_STRING },
	{ "certificate", LIFECYCLE_F_STRING },
	{ "private_key", LIFECYCLE_F_STRING },
	{ "chain", LIFECYCLE_F_STRING },
	{ NULL, LIFECYCLE_F_STRING }
};

static const struct lifecycle_field json_fuzz_renewal_fields[] = {
	{ "renew_before_days", LIFECYCLE_F_NUMBER },
	{ NULL, LIFECYCLE_F_STRING }
};

static const struct lifecycle_field json_fuzz_resource_fields[] = {
	{ "name", LIFECYCLE_F_STRING },
	{ "type", LIFECYCLE_F_STRING },
	{ "config", LIFECYCLE_F_OBJECT },
	{ NULL, LIFECYCLE_F_STRING }
};

static const struct lifecycle_field json_fuzz_assoc_fields[] = {
	{ "certificate_id", LIFECYCLE_F_STRING },
	{ "resource_id", LIFECYCLE_F_STRING },
	{ NULL, LIFECYCLE_F_STRING }
};

FUZZ_INITIALIZE_QUIET

/* lifecycle_req_check, with the promise that a refusal is explained. */
static int
json_fuzz_check(const json_t *req, const char *prefix,
    const struct lifecycle_field *fields)
{
	struct common_error err;

	common_error_clear(&err);
	if (lifecycle_req_check(req, prefix, fields, &err) == 0)
		return 0;
	FUZZ_CHECK(err.code == COMMON_E_INVALID && err.msg[0] != '\0');
	return -1;
}

/* True when v is an array of strings (what LIFECYCLE_F_STRINGS admits). */
static bool
json_fuzz_strings(const json_t *v)
{
	const json_t *e;
	size_t i;

	if (!json_is_array(v))
		return false;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e))
			return false;
	}
	return true;
}

/* The policy member: normalise, and normalise the result again. Returns
 * the normalised policy (new reference) or NULL. */
static json_t *
json_fuzz_policy(const json_t *req)
{
	struct common_error err;
	json_t *norm, *again;

	common_error_clear(&err);
	if ((norm = ca_policy_normalize(json_object_get(req, "policy"),
	    &err)) == NULL) {
		FUZZ_CHECK(err.code != COMMON_E_NONE);
		return NULL;
	}
	common_error_clear(&err);
	FUZZ_CHECK((again = ca_policy_normalize(norm, &err)) != NULL);
	FUZZ_CHECK(json_equal(norm, again));
	json_decref(again);
	return norm;
}

/* The sans member (an array of strings, checked by the caller): type
 * the names and, with a policy, check them against it. */
static void
json_fuzz_sans(const json_t *sans, const json_t *policy)
{
	struct common_error err;
	GENERAL_NAMES *gens;
	const char **v;
	json_t *ca_rec;
	size_t i, n = json_array_size(sans);

	common_error_clear(&err);
	FUZZ_CHECK(lifecycle_sans_match(sans, sans, &err) == 0);
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		abort();
	for (i = 0; i < n; i++)
		v[i] = json_string_value(json_array_get(sans, i));
	common_error_clear(&err);
	gens = ca_sans_parse(v, n, &err);
	FUZZ_CHECK(gens != NULL || err.code != COMMON_E_NONE);
	if (gens != NULL && policy != NULL) {
		if ((ca_rec = json_pack("{s:s, s:s, s:O}", "id", "ca-fuzz",
		    "name", "fuzz", "policy", policy)) == NULL)
			abort();
		common_error_clear(&err);
		if (ca_policy_check(ca_rec, gens, &err) == -1)
			FUZZ_CHECK(err.code != COMMON_E_NONE);
		json_decref(ca_rec);
	}
	GENERAL_NAMES_free(gens);
	free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct common_error err;
	json_error_t jerr;
	json_t *req, *v, *policy = NULL;
	size_t limit;

	if ((req = json_loadb((const char *)data, size,
	    JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return 0;

	if (json_fuzz_check(req, "", json_fuzz_cert_fields) == 0) {
		v = json_object_get(req, "renewal");
		if (json_is_object(v))
			(void)json_fuzz_check(v, "renewal.",
			    json_fuzz_renewal_fields);
		v = json_object_get(req, "sans");
		if (json_fuzz_strings(v))
			json_fuzz_sans(v, NULL);
	}
	(void)json_fuzz_check(req, "", json_fuzz_resource_fields);
	(void)json_fuzz_check(req, "", json_fuzz_assoc_fields);

	common_error_clear(&err);
	if (lifecycle_name_check("name", lifecycle_req_str(req, "name"),
	    &err) == -1)
		FUZZ_CHECK(err.code == COMMON_E_INVALID);

	/* The query parameters of a list, as numbers and strings. */
	v = json_object_get(req, "limit");
	limit = json_is_integer(v) && json_integer_value(v) >= 0 ?
	    (size_t)json_integer_value(v) : 0;
	common_error_clear(&err);
	if (lifecycle_page_check(lifecycle_req_str(req, "page_token"), limit,
	    &limit, &err) == 0)
		FUZZ_CHECK(limit >= 1 && limit <= LIFECYCLE_PAGE_MAX);

	/* A CA creation body: its policy, and SANs to test against it. */
	if (json_is_object(req) && json_object_get(req, "policy") != NULL &&
	    (policy = json_fuzz_policy(req)) != NULL) {
		v = json_object_get(req, "sans");
		if (json_fuzz_strings(v))
			json_fuzz_sans(v, policy);
	}
	json_decref(policy);
	json_decref(req);
	ERR_clear_error();
	return 0;
}
