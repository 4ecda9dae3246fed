/*
 * tests/fuzz/basic_fuzz.c — est_basic_parse, the HTTP Basic
 * Authorization header of EST requests (RFC 7617), the first thing EST
 * reads from a client that has not proven anything yet.
 *
 * Properties (protocols/est/est.h): a refusal keeps nothing and says
 * why; an accepted header gives a non-empty user name of at most
 * EST_USERNAME_MAX bytes without ':' and a password of at most
 * COMMON_PASSWORD_MAX bytes, and the header written back from them
 * parses to the same two strings.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "protocols/est/est.h"
#include "tests/fuzz/fuzz.h"

#define BASIC_FUZZ_WHY	256	/* reason buffer, as est_basic's caller */

FUZZ_INITIALIZE_QUIET

/* The header for user and password, written as clients write it; to
 * free(). */
static char *
basic_fuzz_header(const char *user, const char *password)
{
	size_t ulen = strlen(user), plen = strlen(password);
	char *pair, *b64, *h;

	if ((pair = malloc(ulen + plen + 2)) == NULL)
		abort();
	memcpy(pair, user, ulen);
	pair[ulen] = ':';
	memcpy(pair + ulen + 1, password, plen + 1);
	if ((b64 = common_b64_encode(pair, ulen + plen + 1, false, 0)) ==
	    NULL || (h = malloc(strlen(b64) + 7)) == NULL)
		abort();
	memcpy(h, "Basic ", 6);
	memcpy(h + 6, b64, strlen(b64) + 1);
	free(b64);
	free(pair);
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char user[EST_USERNAME_MAX + 1], user2[EST_USERNAME_MAX + 1];
	char why[BASIC_FUZZ_WHY], *h, *again, *pass = NULL, *pass2 = NULL;

	/* a header value is a C string: libevent stops at a NUL */
	if ((h = malloc(size + 1)) == NULL)
		abort();
	memcpy(h, data, size);
	h[size] = '\0';
	why[0] = '\0';
	if (est_basic_parse(h, user, sizeof(user), &pass, why,
	    sizeof(why)) == -1) {
		FUZZ_CHECK(pass == NULL);
		FUZZ_CHECK(why[0] != '\0' && strchr(why, '\n') == NULL);
		free(h);
		return 0;
	}
	FUZZ_CHECK(pass != NULL);
	FUZZ_CHECK(user[0] != '\0' && strlen(user) <= EST_USERNAME_MAX);
	FUZZ_CHECK(strchr(user, ':') == NULL);
	FUZZ_CHECK(strlen(pass) <= COMMON_PASSWORD_MAX);
	again = basic_fuzz_header(user, pass);
	FUZZ_CHECK(est_basic_parse(again, user2, sizeof(user2), &pass2, why,
	    sizeof(why)) == 0);
	FUZZ_CHECK(strcmp(user, user2) == 0 && strcmp(pass, pass2) == 0);
	est_basic_forget(pass);
	est_basic_forget(pass2);
	free(again);
	free(h);
	return 0;
}
