/*
 * common/log.c — one-line log records on stderr.
 *
 * Each record is formatted into a local buffer and written with a single
 * write(2), so lines from concurrent threads never interleave.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

#define LOG_LINE_MAX	4096	/* longer messages are truncated with "..." */

static _Atomic int log_level = COMMON_LOG_INFO;

static const char *const log_names[COMMON_LOG__MAX] = {
	[COMMON_LOG_DEBUG] = "DEBUG",
	[COMMON_LOG_INFO] = "INFO",
	[COMMON_LOG_WARN] = "WARN",
	[COMMON_LOG_ERR] = "ERROR",
};

static const char *const log_parse_names[COMMON_LOG__MAX] = {
	[COMMON_LOG_DEBUG] = "debug",
	[COMMON_LOG_INFO] = "info",
	[COMMON_LOG_WARN] = "warn",
	[COMMON_LOG_ERR] = "error",
};

void
common_log_set_level(enum common_log_level level)
{
	if ((int)level < 0 || level >= COMMON_LOG__MAX)
		return;
	atomic_store(&log_level, (int)level);
}

int
common_log_level_parse(const char *s, enum common_log_level *out)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = 0; i < COMMON_LOG__MAX; i++) {
		if (strcmp(s, log_parse_names[i]) == 0) {
			if (out != NULL)
				*out = (enum common_log_level)i;
			return 0;
		}
	}
	return -1;
}

/*
 * Formats "TIMESTAMP LEVEL message\n" and writes it to stderr in one
 * write(2). Control characters in the message (a newline smuggled in by
 * a client-supplied string, say) are replaced with '?' so one call is
 * always one line. Keeps errno unchanged for the caller.
 */
void
common_log(enum common_log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	char ts[32];
	va_list ap;
	size_t off, end, i;
	ssize_t w;
	int n, saved_errno = errno;

	if ((int)level < 0 || level >= COMMON_LOG__MAX)
		level = COMMON_LOG_ERR;
	if ((int)level < atomic_load(&log_level))
		goto out;

	/* The real clock, not common_now(): logs record when it happened. */
	common_time_rfc3339(time(NULL), ts, sizeof(ts));
	n = snprintf(line, sizeof(line), "%s %s ", ts, log_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		goto out;
	off = (size_t)n;

	va_start(ap, fmt);
	n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		goto out;
	if ((size_t)n >= sizeof(line) - off - 1) {
		end = sizeof(line) - 2;		/* room for "\n" and NUL */
		memcpy(line + end - 3, "...", 3);
	} else
		end = off + (size_t)n;
	for (i = off; i < end; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 && c != '\t')
			line[i] = '?';
		else if (c == 0x7f)
			line[i] = '?';
	}
	line[end++] = '\n';

	off = 0;
	while (off < end) {
		w = write(STDERR_FILENO, line + off, end - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
out:
	errno = saved_errno;
}
