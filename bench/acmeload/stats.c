/*
 * bench/acmeload/stats.c — latency samples per step, errors by kind, and
 * the two reports: JSON for scripts and a text summary for people.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/acmeload/acmeload.h"

#define STATS_FIRST_CAP		1024	/* samples allocated at first */
#define STATS_ERRORS_SHOWN	20	/* kinds listed in the text summary */
#define STATS_SAMPLES_FILE_MAX	((size_t)ACMELOAD_SAMPLES_MAX * 11) /* bytes */

const char *const acmeload_step_names[ACMELOAD_STEP__MAX] = {
	[ACMELOAD_STEP_ACCOUNT] = "account",
	[ACMELOAD_STEP_NEWORDER] = "newOrder",
	[ACMELOAD_STEP_AUTHZ] = "authz",
	[ACMELOAD_STEP_CHALLENGE] = "challenge",
	[ACMELOAD_STEP_VALIDATION] = "validation",
	[ACMELOAD_STEP_FINALIZE] = "finalize",
	[ACMELOAD_STEP_ISSUANCE] = "issuance",
	[ACMELOAD_STEP_DOWNLOAD] = "download",
	[ACMELOAD_STEP_FLOW] = "flow",
};

void
acmeload_sample(struct acmeload_stats *s, enum acmeload_step step,
    uint64_t us)
{
	struct acmeload_samples *sm = &s->step[step];
	uint32_t *v;
	size_t cap;

	if (sm->n == sm->cap) {
		if (sm->cap >= ACMELOAD_SAMPLES_MAX)
			return;		/* enough for any percentile */
		cap = sm->cap == 0 ? STATS_FIRST_CAP : sm->cap * 2;
		if ((v = realloc(sm->v, cap * sizeof(*v))) == NULL) {
			log_err("acmeload: out of memory for samples");
			return;
		}
		sm->v = v;
		sm->cap = cap;
	}
	sm->v[sm->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

uint64_t
acmeload_error(struct acmeload_stats *s, enum acmeload_step step,
    const char *what)
{
	char key[ACMELOAD_ERROR_KEY_MAX];
	size_t i;

	s->errors++;
	snprintf(key, sizeof(key), "%s: %s", acmeload_step_names[step], what);
	for (i = 0; i < s->nkinds; i++)
		if (strcmp(s->kinds[i].key, key) == 0)
			return ++s->kinds[i].count;
	if (s->nkinds == ACMELOAD_ERROR_KINDS)
		return ++s->errors_other;
	memcpy(s->kinds[s->nkinds].key, key, sizeof(key));
	s->kinds[s->nkinds].count = 1;
	s->nkinds++;
	return 1;
}

void
acmeload_stats_free(struct acmeload_stats *s)
{
	size_t i;

	for (i = 0; i < ACMELOAD_STEP__MAX; i++) {
		free(s->step[i].v);
		s->step[i].v = NULL;
		s->step[i].n = s->step[i].cap = 0;
	}
}

static int
stats_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts the samples of one step (none: nothing to sort). */
static void
stats_sort(struct acmeload_samples *sm)
{
	if (sm->n > 1)
		qsort(sm->v, sm->n, sizeof(*sm->v), stats_cmp);
}

/* Nearest-rank percentile of sorted samples, in milliseconds. */
static double
stats_pct(const struct acmeload_samples *sm, double p)
{
	size_t rank;

	if (sm->n == 0)
		return 0;
	rank = (size_t)ceil(p / 100.0 * (double)sm->n);
	if (rank < 1)
		rank = 1;
	return sm->v[rank - 1] / 1000.0;
}

static double
stats_mean(const struct acmeload_samples *sm)
{
	uint64_t sum = 0;
	size_t i;

	if (sm->n == 0)
		return 0;
	for (i = 0; i < sm->n; i++)
		sum += sm->v[i];
	return (double)sum / (double)sm->n / 1000.0;
}

static double
stats_tv(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* Elapsed seconds of the flow phase (0 before it ended). */
static double
stats_elapsed(const struct acmeload *run)
{
	if (run->t1_us <= run->t0_us || run->flows_started == 0)
		return 0;
	return (double)(run->t1_us - run->t0_us) / 1e6;
}

/* Rounds to three decimals so the JSON stays readable. */
static json_t *
stats_ms(double v)
{
	return json_real(round(v * 1000.0) / 1000.0);
}

/* One step's figures, sorting its samples in place. */
static json_t *
stats_step_json(struct acmeload_samples *sm)
{
	stats_sort(sm);
	return json_pack("{s:I,s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:I,s:I}",
	    "n", (json_int_t)sm->n,
	    "mean_ms", stats_ms(stats_mean(sm)),
	    "p50_ms", stats_ms(stats_pct(sm, 50)),
	    "p90_ms", stats_ms(stats_pct(sm, 90)),
	    "p99_ms", stats_ms(stats_pct(sm, 99)),
	    "max_ms", stats_ms(stats_pct(sm, 100)),
	    "polls", (json_int_t)sm->polls,
	    "waited_ms", stats_ms((double)sm->waited_us / 1000.0),
	    "retry_after_seen", (json_int_t)sm->retry_after_seen,
	    "retry_after_max_s", (json_int_t)sm->retry_after_max);
}

json_t *
acmeload_report_json(struct acmeload *run)
{
	const struct acmeload_options *o = run->opt;
	struct acmeload_stats *s = &run->stats;
	json_t *j = NULL, *steps, *kinds, *v;
	double el = stats_elapsed(run);
	double user, sys;
	size_t i;

	user = stats_tv(&run->ru1.ru_utime) - stats_tv(&run->ru0.ru_utime);
	sys = stats_tv(&run->ru1.ru_stime) - stats_tv(&run->ru0.ru_stime);
	if ((steps = json_object()) == NULL || (kinds = json_object()) == NULL) {
		json_decref(steps);
		return NULL;
	}
	for (i = 0; i < ACMELOAD_STEP__MAX; i++)
		if ((v = stats_step_json(&s->step[i])) == NULL ||
		    json_object_set_new(steps, acmeload_step_names[i], v) == -1)
			goto out;
	for (i = 0; i < s->nkinds; i++)
		if (json_object_set_new(kinds, s->kinds[i].key,
		    json_integer((json_int_t)s->kinds[i].count)) == -1)
			goto out;
	if (s->errors_other > 0 && json_object_set_new(kinds, "other",
	    json_integer((json_int_t)s->errors_other)) == -1)
		goto out;
	j = json_pack("{s:s,s:i,s:{s:f,s:I,s:s,s:i,s:s,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:b},s:o,s:b,s:I,s:I,s:o,s:I,s:I,s:o,s:{s:I,s:O},s:O,"
	    "s:{s:I,s:I},s:{s:o,s:o,s:o}}",
	    "directory", o->directory,
	    "concurrency", o->concurrency,
	    "settings",
		"duration_s", o->duration,
		"orders_max", (json_int_t)o->orders,
		"http01_address", o->http01_address,
		"http01_port", o->http01_port,
		"domain_suffix", o->domain_suffix,
		"poll_ms", (json_int_t)o->poll_ms,
		"retry_after_cap_ms", (json_int_t)o->retry_after_cap_ms,
		"timeout_ms", (json_int_t)o->timeout_ms,
		"flow_timeout_ms", (json_int_t)o->flow_timeout_ms,
		"error_backoff_ms", (json_int_t)o->error_backoff_ms,
		"stall_ms", (json_int_t)o->stall_ms,
		"insecure", o->insecure,
	    "elapsed_s", stats_ms(el),
	    "stalled", run->stalled,
	    "accounts", (json_int_t)s->accounts,
	    "orders", (json_int_t)s->orders_ok,
	    "orders_per_s", stats_ms(el > 0 ? (double)s->orders_ok / el : 0),
	    "orders_failed", (json_int_t)s->orders_failed,
	    "requests", (json_int_t)s->requests,
	    "requests_per_s", stats_ms(el > 0 ? (double)s->requests / el : 0),
	    "errors",
		"total", (json_int_t)s->errors,
		"by_type", kinds,
	    "steps", steps,
	    "responder",
		"hits", (json_int_t)s->responder_hits,
		"misses", (json_int_t)s->responder_misses,
	    "client_cpu",
		"user_s", stats_ms(user),
		"sys_s", stats_ms(sys),
		"cores", stats_ms(el > 0 ? (user + sys) / el : 0));
out:
	json_decref(steps);
	json_decref(kinds);
	return j;
}

void
acmeload_report_text(struct acmeload *run)
{
	const struct acmeload_options *o = run->opt;
	struct acmeload_stats *s = &run->stats;
	struct acmeload_samples *sm;
	double el = stats_elapsed(run);
	double user, sys;
	size_t i;

	user = stats_tv(&run->ru1.ru_utime) - stats_tv(&run->ru0.ru_utime);
	sys = stats_tv(&run->ru1.ru_stime) - stats_tv(&run->ru0.ru_stime);
	printf("acmeload: %s, %d concurrent flows, %.1f s\n", o->directory,
	    o->concurrency, el);
	printf("orders: %llu completed (%.1f/s), %llu failed; %llu requests "
	    "(%.1f/s); %llu accounts\n",
	    (unsigned long long)s->orders_ok,
	    el > 0 ? (double)s->orders_ok / el : 0,
	    (unsigned long long)s->orders_failed,
	    (unsigned long long)s->requests,
	    el > 0 ? (double)s->requests / el : 0,
	    (unsigned long long)s->accounts);
	printf("%-11s %8s %9s %9s %9s %9s %9s %7s %10s %5s\n", "step (ms)",
	    "n", "mean", "p50", "p90", "p99", "max", "polls", "waited", "RA");
	for (i = 0; i < ACMELOAD_STEP__MAX; i++) {
		sm = &s->step[i];
		stats_sort(sm);
		printf("%-11s %8zu %9.2f %9.2f %9.2f %9.2f %9.2f %7llu %10.0f "
		    "%5ld\n", acmeload_step_names[i], sm->n, stats_mean(sm),
		    stats_pct(sm, 50), stats_pct(sm, 90), stats_pct(sm, 99),
		    stats_pct(sm, 100), (unsigned long long)sm->polls,
		    (double)sm->waited_us / 1000.0, sm->retry_after_max);
	}
	if (run->stalled)
		printf("the server STALLED (no answer for %ld ms): rates cover "
		    "the time until its last completed order\n", o->stall_ms);
	printf("http-01 responder: %llu served, %llu refused\n",
	    (unsigned long long)s->responder_hits,
	    (unsigned long long)s->responder_misses);
	if (s->errors == 0)
		printf("errors: none\n");
	else {
		printf("errors: %llu\n", (unsigned long long)s->errors);
		for (i = 0; i < s->nkinds && i < STATS_ERRORS_SHOWN; i++)
			printf("  %8llu  %s\n",
			    (unsigned long long)s->kinds[i].count,
			    s->kinds[i].key);
		if (s->errors_other > 0)
			printf("  %8llu  (other kinds)\n",
			    (unsigned long long)s->errors_other);
	}
	printf("client CPU: user %.2f s, sys %.2f s (%.2f cores)\n", user, sys,
	    el > 0 ? (user + sys) / el : 0);
}

int
acmeload_samples_write(struct acmeload *run, const char *path)
{
	const struct acmeload_samples *sm = &run->stats.step[ACMELOAD_STEP_FLOW];
	struct common_buf b;
	size_t i;
	int ret = -1;

	common_buf_init(&b, STATS_SAMPLES_FILE_MAX);
	for (i = 0; i < sm->n; i++)
		if (common_buf_addf(&b, "%u\n", (unsigned)sm->v[i]) == -1)
			goto out;
	ret = common_file_write(path, b.len > 0 ? b.data : (const void *)"",
	    b.len, 0644);
out:
	if (ret == -1)
		log_err("acmeload: cannot write the samples to %s", path);
	common_buf_free(&b);
	return ret;
}
