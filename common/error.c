/*
 * common/error.c — error reports handed from core modules to protocols.
 */
#include <stdio.h>
#include <string.h>

#include "common/common.h"

static const char *const error_names[COMMON_E__MAX] = {
	[COMMON_E_NONE] = "none",
	[COMMON_E_INVALID] = "invalid",
	[COMMON_E_POLICY] = "policy",
	[COMMON_E_NOTFOUND] = "not_found",
	[COMMON_E_CONFLICT] = "conflict",
	[COMMON_E_FORBIDDEN] = "forbidden",
	[COMMON_E_INTERNAL] = "internal",
};

/*
 * Records the first error only: the deepest failure is usually the most
 * precise, and callers up the stack may call this again with a vaguer
 * message without losing it.
 */
void
common_error_set(struct common_error *err, enum common_errcode code,
    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err->code != COMMON_E_NONE)
		return;
	if ((int)code <= COMMON_E_NONE || code >= COMMON_E__MAX)
		code = COMMON_E_INTERNAL;
	err->code = code;
	va_start(ap, fmt);
	if (vsnprintf(err->msg, sizeof(err->msg), fmt, ap) < 0)
		err->msg[0] = '\0';
	va_end(ap);
}

void
common_error_clear(struct common_error *err)
{
	if (err == NULL)
		return;
	err->code = COMMON_E_NONE;
	err->msg[0] = '\0';
}

const char *
common_error_name(enum common_errcode code)
{
	if ((int)code < 0 || code >= COMMON_E__MAX)
		return "unknown";
	return error_names[code];
}
