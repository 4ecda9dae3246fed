/*
 * lifecycle/crl.c — when CRLs are rebuilt.
 *
 * Two triggers, both run on the jobs thread's event base:
 *   - lifecycle_crl_touch (any thread, after a revocation committed) marks
 *     a CA dirty and arms a one-shot debounce timer of crl.debounce_seconds;
 *     when it fires every dirty CA's CRL is rebuilt once, however many
 *     revocations came in meanwhile;
 *   - a periodic check rebuilds the CRL of every CA that can sign one
 *     (not pending, with a certificate) once its published CRL is
 *     crl.interval_hours old, or missing. The check runs every tenth of
 *     the interval (1 s to 5 min), so a CRL is never much older than the
 *     interval while its nextUpdate is twice the interval: relying
 *     parties never see a stale CRL even when a rebuild is late.
 * The age is the published CRL's thisUpdate against common_now(), so a
 * test that moves the clock forward sees CRLs come due.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/x509.h>

#include "conf/conf.h"
#include "lifecycle/lifecycle.h"

#define LC_CRL_DIRTY_MAX	1024	/* distinct CAs waiting; past it, all */
#define LC_CRL_INTERVAL_HOURS	24.0	/* without a configuration */
#define LC_CRL_DEBOUNCE_SECONDS	2.0	/* without a configuration */
#define LC_CRL_CHECK_DIVISOR	10	/* checks per interval */
#define LC_CRL_CHECK_MIN	1.0	/* seconds between checks, at least */
#define LC_CRL_CHECK_MAX	300.0	/* and at most */
#define LC_CRL_FILE_MAX		(64 * 1024 * 1024)	/* a CRL read back */

struct lifecycle_crl_sched {
	pthread_mutex_t		 mu;		/* guards every field below */
	char			*dirty[LC_CRL_DIRTY_MAX];	/* CA ids */
	size_t			 ndirty;
	bool			 all_dirty;	/* dirty[] overflowed */
	bool			 started;
	bool			 armed;		/* debounce timer pending */
	struct lifecycle	*lc;		/* set by lifecycle_crl_start */
	struct event		*debounce;	/* one-shot */
	struct event		*check;		/* persistent */
};

/* Why a rebuild pass runs, for its log line. */
enum lc_crl_why {
	LC_CRL_WHY_REVOCATION,
	LC_CRL_WHY_SCHEDULE,
};

struct lifecycle_crl_sched *
lifecycle_crl_sched_new(void)
{
	struct lifecycle_crl_sched *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_err("lifecycle: CRL schedule: out of memory");
		return NULL;
	}
	if ((errno = pthread_mutex_init(&s->mu, NULL)) != 0) {
		log_err("lifecycle: CRL schedule: mutex: %s", strerror(errno));
		free(s);
		return NULL;
	}
	return s;
}

/* Frees the events. Runs with no loop iterating the base (or on its
 * thread). */
static void
lc_crl_events_free(struct lifecycle_crl_sched *s)
{
	if (s->debounce != NULL)
		event_free(s->debounce);
	if (s->check != NULL)
		event_free(s->check);
	s->debounce = s->check = NULL;
}

void
lifecycle_crl_sched_free(struct lifecycle_crl_sched *s)
{
	size_t i;

	if (s == NULL)
		return;
	lc_crl_events_free(s);
	for (i = 0; i < s->ndirty; i++)
		free(s->dirty[i]);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* crl.interval_hours in seconds (the built-in value without a
 * configuration). */
static double
lc_crl_interval(struct lifecycle *lc)
{
	const struct conf *cf = lifecycle_cfg(lc)->conf;

	return (cf != NULL ? cf->crl.interval_hours : LC_CRL_INTERVAL_HOURS) *
	    3600.0;
}

long
lifecycle_crl_next_update_seconds(struct lifecycle *lc)
{
	return (long)(2 * lc_crl_interval(lc));
}

static struct timeval
lc_crl_tv(double seconds)
{
	struct timeval tv;

	if (seconds < 0)
		seconds = 0;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return tv;
}

/* Arms the debounce timer unless it is pending. Called with s->mu held,
 * once started. */
static void
lc_crl_arm(struct lifecycle_crl_sched *s)
{
	const struct conf *cf = lifecycle_cfg(s->lc)->conf;
	struct timeval tv;

	if (s->armed)
		return;
	tv = lc_crl_tv(cf != NULL ? cf->crl.debounce_seconds :
	    LC_CRL_DEBOUNCE_SECONDS);
	if (event_add(s->debounce, &tv) == -1) {
		log_err("crl: cannot arm the rebuild timer");
		return;
	}
	s->armed = true;
}

void
lifecycle_crl_touch(struct lifecycle *lc, const char *ca_id)
{
	struct lifecycle_crl_sched *s;
	size_t i;

	if (lc == NULL || ca_id == NULL || !common_id_valid(ca_id))
		return;
	s = lifecycle_crl_sched(lc);
	pthread_mutex_lock(&s->mu);
	if (!s->all_dirty) {
		for (i = 0; i < s->ndirty; i++)
			if (strcmp(s->dirty[i], ca_id) == 0)
				break;
		if (i == s->ndirty) {
			if (s->ndirty == LC_CRL_DIRTY_MAX ||
			    (s->dirty[s->ndirty] = strdup(ca_id)) == NULL) {
				/* Rebuilding every CA still covers ca_id. */
				log_warn("crl: %s: too many CAs waiting for "
				    "a rebuild; rebuilding all", ca_id);
				s->all_dirty = true;
			} else
				s->ndirty++;
		}
	}
	if (s->started)
		lc_crl_arm(s);
	pthread_mutex_unlock(&s->mu);
}

/* True when the CA record can have a CRL: it has a certificate and is
 * not waiting for one. */
static bool
lc_crl_signs(const json_t *ca)
{
	const char *state = json_string_value(json_object_get(ca, "state"));

	return json_is_string(json_object_get(ca, "certificate")) &&
	    state != NULL && strcmp(state, "pending") != 0;
}

/* True when ca_id's published CRL is missing, unreadable, or its
 * thisUpdate is at least age_min seconds ago. */
static bool
lc_crl_due(struct lifecycle *lc, const char *ca_id, double age_min)
{
	char path[PATH_MAX], *der = NULL;
	const unsigned char *p;
	X509_CRL *crl = NULL;
	time_t this_update;
	size_t len;
	bool due = true;

	if (common_path(path, sizeof(path), "%s/public/crl/%s.crl",
	    ca_ctx_data_dir(lifecycle_ca(lc)), ca_id) == -1 ||
	    common_file_read(path, LC_CRL_FILE_MAX, &der, &len) == -1)
		goto out;
	p = (const unsigned char *)der;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL ||
	    common_asn1_time(X509_CRL_get0_lastUpdate(crl),
	    &this_update) == -1)
		goto out;
	due = (double)(common_now() - this_update) >= age_min;
out:
	X509_CRL_free(crl);
	free(der);
	return due;
}

/* Rebuilds one CA's CRL; 0 or -1 (logged). */
static int
lc_crl_build(struct lifecycle *lc, const char *ca_id)
{
	struct common_error err;

	common_error_clear(&err);
	if (ca_crl_publish(lifecycle_ca(lc), ca_id,
	    lifecycle_crl_next_update_seconds(lc), NULL, NULL, &err) == -1) {
		log_warn("crl: %s: rebuild failed: %s", ca_id, err.msg);
		return -1;
	}
	return 0;
}

/*
 * Rebuilds, among the CAs that sign CRLs, those in ids[0..n) (all of them
 * when all is set) whose CRL is at least age_min seconds old. One log
 * line for the pass when it rebuilt or failed anything.
 */
static void
lc_crl_pass(struct lifecycle *lc, char *const *ids, size_t n, bool all,
    double age_min, enum lc_crl_why why)
{
	bool seen[LC_CRL_DIRTY_MAX] = { false };
	json_t *cas, *ca;
	size_t i, j, built = 0, failed = 0;
	const char *id, *what;

	if ((cas = ca_list(lifecycle_ca(lc), NULL)) == NULL) {
		log_err("crl: cannot list the CAs");
		return;
	}
	json_array_foreach(cas, i, ca) {
		id = json_string_value(json_object_get(ca, "id"));
		if (id == NULL || !lc_crl_signs(ca))
			continue;
		if (!all) {
			for (j = 0; j < n; j++)
				if (strcmp(ids[j], id) == 0)
					break;
			if (j == n)
				continue;
			seen[j] = true;
		}
		if (age_min > 0 && !lc_crl_due(lc, id, age_min))
			continue;
		if (lc_crl_build(lc, id) == -1) {
			failed++;
			continue;
		}
		built++;
		common_metric_inc("pkid_crl_rebuilds_total",
		    why == LC_CRL_WHY_REVOCATION ?
		    "reason=\"revocation\"" : "reason=\"schedule\"");
	}
	json_decref(cas);
	for (j = 0; j < n && !all; j++)
		if (!seen[j])
			log_warn("crl: %s: no such CA with a certificate; no CRL "
			    "rebuilt", ids[j]);
	what = why == LC_CRL_WHY_REVOCATION ? "after revocation" :
	    "scheduled";
	if (failed > 0)
		log_warn("crl: %s rebuild: %zu rebuilt, %zu failed", what,
		    built, failed);
	else if (built > 0)
		log_info("crl: %s rebuild: %zu CRL%s rebuilt", what, built,
		    built == 1 ? "" : "s");
}

/* The debounce timer: rebuilds what was touched since it was armed. */
static void
lc_crl_on_debounce(evutil_socket_t fd, short what, void *arg)
{
	struct lifecycle_crl_sched *s = arg;
	char *ids[LC_CRL_DIRTY_MAX];
	size_t i, n;
	bool all;

	(void)fd;
	(void)what;
	/*
	 * The revocations that armed it may still wait for their flush (a
	 * server worker committed them): a CRL must not list a revocation
	 * a crash could take back. When the flush fails the rebuild waits
	 * for the next debounce.
	 */
	if (store_flush_all(lifecycle_store(s->lc)) == -1) {
		log_err("crl: the log flush failed; rebuild postponed");
		pthread_mutex_lock(&s->mu);
		s->armed = false;
		lc_crl_arm(s);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	pthread_mutex_lock(&s->mu);
	n = s->ndirty;
	memcpy(ids, s->dirty, n * sizeof(ids[0]));	/* steal */
	all = s->all_dirty;
	s->ndirty = 0;
	s->all_dirty = false;
	s->armed = false;
	pthread_mutex_unlock(&s->mu);
	lc_crl_pass(s->lc, ids, n, all, 0, LC_CRL_WHY_REVOCATION);
	for (i = 0; i < n; i++)
		free(ids[i]);
}

/* The periodic check: rebuilds every CRL that is an interval old. */
static void
lc_crl_on_check(evutil_socket_t fd, short what, void *arg)
{
	struct lifecycle_crl_sched *s = arg;

	(void)fd;
	(void)what;
	lc_crl_pass(s->lc, NULL, 0, true, lc_crl_interval(s->lc),
	    LC_CRL_WHY_SCHEDULE);
}

int
lifecycle_crl_start(struct lifecycle *lc, struct event_base *jobs_base)
{
	struct lifecycle_crl_sched *s;
	struct timeval period;
	double check;
	int rc = -1;

	if (lc == NULL || jobs_base == NULL)
		return -1;
	s = lifecycle_crl_sched(lc);
	check = lc_crl_interval(lc) / LC_CRL_CHECK_DIVISOR;
	if (check < LC_CRL_CHECK_MIN)
		check = LC_CRL_CHECK_MIN;
	if (check > LC_CRL_CHECK_MAX)
		check = LC_CRL_CHECK_MAX;
	period = lc_crl_tv(check);
	pthread_mutex_lock(&s->mu);
	if (s->started) {
		log_err("crl: schedule started twice");
		goto out;
	}
	s->lc = lc;
	if ((s->debounce = event_new(jobs_base, -1, 0, lc_crl_on_debounce,
	    s)) == NULL || (s->check = event_new(jobs_base, -1, EV_PERSIST,
	    lc_crl_on_check, s)) == NULL ||
	    event_add(s->check, &period) == -1) {
		log_err("crl: cannot create the schedule's events");
		lc_crl_events_free(s);
		goto out;
	}
	s->started = true;
	/* A CRL that went stale while pkid was down is rebuilt at once. */
	event_active(s->check, EV_TIMEOUT, 0);
	if (s->ndirty > 0 || s->all_dirty)
		lc_crl_arm(s);
	log_info("crl: every CRL rebuilt every %g hours (nextUpdate %ld s), "
	    "%g s after a revocation", lc_crl_interval(lc) / 3600,
	    lifecycle_crl_next_update_seconds(lc),
	    lifecycle_cfg(lc)->conf != NULL ?
	    lifecycle_cfg(lc)->conf->crl.debounce_seconds :
	    LC_CRL_DEBOUNCE_SECONDS);
	rc = 0;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void
lifecycle_crl_stop(struct lifecycle *lc)
{
	struct lifecycle_crl_sched *s;

	if (lc == NULL || (s = lifecycle_crl_sched(lc)) == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->started = false;
	s->armed = false;
	lc_crl_events_free(s);
	pthread_mutex_unlock(&s->mu);
}
