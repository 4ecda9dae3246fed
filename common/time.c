/*
 * common/time.c — the injectable wall clock, monotonic time and time
 * conversions.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>

#include "common/common.h"

/* Seconds added to time(NULL); tests move time forward without waiting. */
static _Atomic long long clock_offset;

time_t
common_now(void)
{
	return time(NULL) + (time_t)atomic_load(&clock_offset);
}

void
common_clock_set_offset(time_t seconds)
{
	atomic_store(&clock_offset, (long long)seconds);
}

uint64_t
common_mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * "YYYY-MM-DDTHH:MM:SSZ" of t in UTC. out gets "" when it is too small
 * or t cannot be represented.
 */
void
common_time_rfc3339(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (gmtime_r(&t, &tm) == NULL)
		return;
	if (strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

/*
 * ASN1_TIME (UTCTime or GeneralizedTime) to time_t, without going
 * through the local time zone. -1 on a malformed time.
 */
int
common_asn1_time(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;

	if (a == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(a, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	if (*out == (time_t)-1 && !(tm.tm_year == 69 && tm.tm_mon == 11 &&
	    tm.tm_mday == 31 && tm.tm_hour == 23 && tm.tm_min == 59 &&
	    tm.tm_sec == 59))
		return -1;
	return 0;
}
