/*
 * common/metrics.c — the process-wide registry of Prometheus counters.
 *
 * Series are kept in an open-addressing hash table keyed by (name,
 * labels) under one mutex; increments are a hash, a compare and an add.
 * The number of series is bounded so a label fed by outside input can
 * never grow memory without limit.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define METRIC_SERIES_MAX	4096	/* distinct (name, labels) pairs */
#define METRIC_SLOTS		8192	/* hash slots, 2x the series bound */
#define METRIC_NAME_MAX		128	/* bytes of a metric name */
#define METRIC_LABELS_MAX	512	/* bytes of a label set */

struct metric_series {
	char		*name;
	char		*labels;	/* label text without braces, or "" */
	uint64_t	 value;
};

static pthread_mutex_t metric_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_series *metric_slots[METRIC_SLOTS];
static size_t metric_count;
static bool metric_full_logged;

/* FNV-1a over name, a separator and labels. */
static size_t
metric_hash(const char *name, const char *labels)
{
	uint64_t h = 1469598103934665603ULL;
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (p = (const unsigned char *)labels; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % METRIC_SLOTS);
}

/* Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]*, bounded. */
static bool
metric_name_valid(const char *s)
{
	size_t i;

	if (s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= METRIC_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == ':'))
			return false;
	}
	return true;
}

/* Label text must stay on one line of the exposition format. */
static bool
metric_labels_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= METRIC_LABELS_MAX)
			return false;
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	}
	return true;
}

/*
 * Adds one to name{labels}, creating the series at zero first. Invalid
 * names or labels and new series past METRIC_SERIES_MAX are dropped with
 * a log line (once for the bound, since it would repeat on every call).
 */
void
common_metric_inc(const char *name, const char *labels)
{
	struct metric_series *s = NULL;
	size_t i, slot;

	if (labels == NULL)
		labels = "";
	if (name == NULL || !metric_name_valid(name) ||
	    !metric_labels_valid(labels)) {
		log_warn("metrics: dropping series with invalid name or "
		    "labels: %.64s", name != NULL ? name : "(null)");
		return;
	}

	pthread_mutex_lock(&metric_lock);
	slot = metric_hash(name, labels);
	for (i = 0; i < METRIC_SLOTS; i++) {
		s = metric_slots[(slot + i) % METRIC_SLOTS];
		if (s == NULL)
			break;
		if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0)
			goto found;
	}
	s = NULL;
	if (metric_count >= METRIC_SERIES_MAX || i == METRIC_SLOTS) {
		if (!metric_full_logged) {
			metric_full_logged = true;
			log_err("metrics: %d series reached, dropping new "
			    "series (first: %s{%s})", METRIC_SERIES_MAX, name,
			    labels);
		}
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->name = strdup(name)) == NULL ||
	    (s->labels = strdup(labels)) == NULL) {
		log_err("metrics: %s: out of memory", name);
		if (s != NULL)
			free(s->name);
		free(s);
		s = NULL;
		goto out;
	}
	metric_slots[(slot + i) % METRIC_SLOTS] = s;
	metric_count++;
found:
	s->value++;
out:
	pthread_mutex_unlock(&metric_lock);
}

static int
metric_cmp(const void *a, const void *b)
{
	const struct metric_series *x = *(const struct metric_series *const *)a;
	const struct metric_series *y = *(const struct metric_series *const *)b;
	int c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return c;
	return strcmp(x->labels, y->labels);
}

/*
 * Appends every counter in the Prometheus text format, sorted by name and
 * then labels, with one "# TYPE name counter" line before each name's
 * series. The values are a snapshot taken under the lock; formatting
 * happens outside it. -1 if b's maximum is reached or on allocation
 * failure (b then holds a prefix of the text).
 */
int
common_metric_render(struct common_buf *b)
{
	struct metric_series *snap = NULL;
	struct metric_series **order = NULL;
	const char *prev = NULL;
	size_t i, n = 0;
	int rc = -1;

	/* Even with no series, b->data is a valid string afterwards. */
	if (common_buf_add(b, "", 0) == -1)
		goto out;
	pthread_mutex_lock(&metric_lock);
	if (metric_count > 0) {
		snap = calloc(metric_count, sizeof(*snap));
		order = calloc(metric_count, sizeof(*order));
	}
	if (metric_count > 0 && (snap == NULL || order == NULL)) {
		pthread_mutex_unlock(&metric_lock);
		log_err("metrics: render: out of memory");
		goto out;
	}
	/* Series are never removed, so name and labels stay valid. */
	for (i = 0; i < METRIC_SLOTS; i++) {
		if (metric_slots[i] == NULL)
			continue;
		snap[n] = *metric_slots[i];
		order[n] = &snap[n];
		n++;
	}
	pthread_mutex_unlock(&metric_lock);

	if (n > 0)
		qsort(order, n, sizeof(*order), metric_cmp);
	for (i = 0; i < n; i++) {
		if (prev == NULL || strcmp(prev, order[i]->name) != 0) {
			if (common_buf_addf(b, "# TYPE %s counter\n",
			    order[i]->name) == -1)
				goto out;
			prev = order[i]->name;
		}
		if (common_buf_addf(b, order[i]->labels[0] != '\0' ?
		    "%s{%s} %llu\n" : "%s%s %llu\n", order[i]->name,
		    order[i]->labels,
		    (unsigned long long)order[i]->value) == -1)
			goto out;
	}
	rc = 0;
out:
	free(order);
	free(snap);
	return rc;
}
