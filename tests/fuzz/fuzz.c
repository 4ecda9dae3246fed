/*
 * tests/fuzz/fuzz.c — helpers shared by the libFuzzer drivers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "common/common.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_PEM_WRAP	64	/* base64 columns in a PEM body */

void
fuzz_fail(const char *file, int line, const char *expr)
{
	fprintf(stderr, "%s:%d: property %s broken\n", file, line, expr);
	abort();
}

void
fuzz_quiet(void)
{
	common_log_set_level(COMMON_LOG_ERR);
}

char *
fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s;

	if ((s = malloc(size + 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

size_t
fuzz_lines(const uint8_t *data, size_t size, size_t max, char **buf,
    char ***lines)
{
	char *s, *p, *nl;
	char **v;
	size_t n = 0;

	s = fuzz_strndup(data, size);
	if ((v = calloc(max + 1, sizeof(*v))) == NULL)
		abort();
	/* An embedded NUL ends the text, as fuzz_strndup documents. */
	for (p = s; n < max; p = nl + 1) {
		v[n++] = p;
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		*nl = '\0';
	}
	*buf = s;
	*lines = v;
	return n;
}

char *
fuzz_pem_wrap(const char *label, const uint8_t *data, size_t size)
{
	struct common_buf b;
	char *body, *pem;

	if ((body = common_b64_encode(data, size, false, FUZZ_PEM_WRAP)) ==
	    NULL)
		abort();
	common_buf_init(&b, strlen(body) + 2 * strlen(label) + 64);
	if (common_buf_addf(&b, "-----BEGIN %s-----\n%s-----END %s-----\n",
	    label, body, label) == -1)
		abort();
	free(body);
	if ((pem = common_buf_steal(&b, NULL)) == NULL)
		abort();
	return pem;
}

void
fuzz_csr_parse(X509_REQ *req)
{
	struct common_error err;
	json_t *sans, *v;
	char *subject;
	size_t i;

	common_error_clear(&err);
	if (ca_csr_parse(req, &subject, &sans, &err) == -1) {
		FUZZ_CHECK(subject == NULL && sans == NULL);
		FUZZ_CHECK(err.code != COMMON_E_NONE && err.msg[0] != '\0');
		return;
	}
	FUZZ_CHECK(subject != NULL && json_is_array(sans));
	FUZZ_CHECK(json_array_size(sans) <= CA_MAX_SANS);
	json_array_foreach(sans, i, v)
		FUZZ_CHECK(json_is_string(v));
	free(subject);
	json_decref(sans);
}
