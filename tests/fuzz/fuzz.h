/*
 * tests/fuzz/ — libFuzzer drivers, one per parser. Each driver is one
 * file defining LLVMFuzzerTestOneInput (and, when it needs set-up,
 * LLVMFuzzerInitialize) and is linked with fuzz.c, the modules it
 * exercises and the layers below them (see the fuzz section of the
 * Makefile and tests/fuzz/README.md).
 *
 * A driver feeds the input to a parser, frees what it got back, and
 * checks the properties the module's header promises (a decode of an
 * encode gives the input back, ...). A broken property calls FUZZ_CHECK,
 * which aborts so that libFuzzer records the input as a crash.
 */
#ifndef PKID_FUZZ_H
#define PKID_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

/* The libFuzzer entry points (declared here for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with "FILE:LINE: property EXPR broken" on stderr. */
#define FUZZ_CHECK(cond) do { \
	if (!(cond)) \
		fuzz_fail(__FILE__, __LINE__, #cond); \
} while (0)

void fuzz_fail(const char *file, int line, const char *expr)
    __attribute__((noreturn));

/* Drops log lines below COMMON_LOG_ERR: refusals of hostile input are
 * logged at info/warn level and would only slow the run down. */
void fuzz_quiet(void);

/* The LLVMFuzzerInitialize of a driver whose only set-up is
 * fuzz_quiet(). */
#define FUZZ_INITIALIZE_QUIET \
int \
LLVMFuzzerInitialize(int *argc, char ***argv) \
{ \
	(void)argc; \
	(void)argv; \
	fuzz_quiet(); \
	return 0; \
}

/* A NUL-terminated copy of the input (an embedded NUL ends the string,
 * as it would for a C caller). To free(); aborts on allocation failure
 * so a NULL never passes for a parser result. */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* Splits the input at '\n' into at most max strings (the rest is
 * dropped): *lines holds pointers into *buf; free() both. Aborts on
 * allocation failure. Returns the number of lines. */
size_t fuzz_lines(const uint8_t *data, size_t size, size_t max,
    char **buf, char ***lines);

/* Wraps bytes in a PEM block with label ("CERTIFICATE", ...), so that a
 * driver can reach a PEM parser's DER decoder with mutated DER. To
 * free(); aborts on allocation failure. */
char *fuzz_pem_wrap(const char *label, const uint8_t *data, size_t size);

/* ca_csr_parse on req (borrowed) and the checks of what ca.h promises:
 * a subject and a JSON array of at most CA_MAX_SANS strings, or nothing
 * back and a refusal with a code and message. Frees what it got. */
void fuzz_csr_parse(X509_REQ *req);

#endif
