/* Runner for tests/unit/test.h: runs test_cases[] and reports. */
#include <libgen.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/unit/test.h"

int test_failed_checks;

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
