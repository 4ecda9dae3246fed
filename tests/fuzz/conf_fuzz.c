/*
 * tests/fuzz/conf_fuzz.c — conf_load on arbitrary file contents.
 *
 * conf_load reads a path, so the input is written to a memfd once per
 * run and loaded through /proc/self/fd/N: no file is left behind. An
 * accepted configuration must hold what conf.h promises.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/common.h"
#include "conf/conf.h"
#include "tests/fuzz/fuzz.h"

#define CONF_FUZZ_ERR_MAX	1024	/* conf_load error text */

static int conf_fuzz_fd = -1;
static char conf_fuzz_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	if ((conf_fuzz_fd = memfd_create("pkid-conf-fuzz", 0)) == -1) {
		perror("conf_fuzz: memfd_create");
		abort();
	}
	if (common_path(conf_fuzz_path, sizeof(conf_fuzz_path),
	    "/proc/self/fd/%d", conf_fuzz_fd) == -1)
		abort();
	return 0;
}

/* Replaces the memfd's contents with the input. */
static void
conf_fuzz_write(const uint8_t *data, size_t size)
{
	size_t off = 0;
	ssize_t w;

	if (ftruncate(conf_fuzz_fd, 0) == -1)
		abort();
	while (off < size) {
		if ((w = pwrite(conf_fuzz_fd, data + off, size - off,
		    (off_t)off)) <= 0)
			abort();
		off += (size_t)w;
	}
}

/* The invariants of an accepted configuration (conf.h). */
static void
conf_fuzz_check(const struct conf *c)
{
	const char *listens[] = { c->listen.https, c->listen.http,
	    c->listen.mgmt };
	char *host;
	size_t i;
	int port;

	FUZZ_CHECK(c->path != NULL && strcmp(c->path, conf_fuzz_path) == 0);
	for (i = 0; i < sizeof(listens) / sizeof(listens[0]); i++) {
		FUZZ_CHECK(listens[i] != NULL);
		if (listens[i][0] == '\0')
			continue;
		FUZZ_CHECK(conf_split_hostport(listens[i], &host, &port) == 0);
		FUZZ_CHECK(port >= 0 && port <= 65535);
		free(host);
	}
	FUZZ_CHECK(c->acme.nprofiles >= 1 &&
	    c->acme.nprofiles <= CONF_ACME_PROFILES_MAX);
	FUZZ_CHECK(conf_acme_profile_find(c, c->acme.default_profile) !=
	    NULL);
	for (i = 0; i < c->acme.nprofiles; i++) {
		FUZZ_CHECK(c->acme.profiles[i].validity_days > 0 &&
		    c->acme.profiles[i].validity_days <= 36500);
		FUZZ_CHECK(conf_acme_profile_find(c,
		    c->acme.profiles[i].name) == &c->acme.profiles[i]);
	}
	FUZZ_CHECK(c->ca.nserver_names == 0 || c->ca.server_names != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONF_FUZZ_ERR_MAX];
	struct conf *c;

	/* conf_load refuses larger files itself; skip the write. */
	if (size > CONF_FILE_MAX + 1)
		return 0;
	conf_fuzz_write(data, size);
	err[0] = '\0';
	c = conf_load(conf_fuzz_path, err, sizeof(err));
	if (c != NULL)
		conf_fuzz_check(c);
	else
		FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
	conf_free(c);
	return 0;
}
