/*
 * lifecycle/deploy.c — deploys pending versions to the resources their
 * certificate is associated with, through connectors/, and records the
 * outcome (DESIGN.md: "lifecycle hands a connector a version and a
 * resource, the connector deploys and verifies, and lifecycle records
 * the result").
 *
 * lifecycle_deploy_request (any thread) appends {certificate, version}
 * to a mutex-guarded queue and wakes the jobs loop. There, a run starts
 * per certificate (never two at a time for one certificate: two versions
 * must not race to the same files): every associated resource whose
 * type has a connector gets connector_run; when the last one answered,
 * one transaction records the per-resource results in the version (and
 * its stage "failed" when one failed) with an audit record; then the
 * version is promoted, or "deployment_failed" is emitted.
 *
 * The deployer lives beside struct lifecycle (whose fields are
 * lifecycle.c's) in a small registry keyed by the context.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "connectors/connectors.h"
#include "lifecycle/lifecycle.h"

#define LC_DEPLOY_DETAIL_MAX	CONNECTOR_DETAIL_MAX

/* A version waiting to be deployed. */
struct lc_deploy_req {
	TAILQ_ENTRY(lc_deploy_req)	 entry;
	char				 cert_id[LIFECYCLE_ID_MAX];
	unsigned			 n;
};
TAILQ_HEAD(lc_deploy_reqs, lc_deploy_req);

struct lc_deployer;
struct lc_deploy_target;

/* The deployment of one version to its resources. */
struct lc_deploy_run {
	LIST_ENTRY(lc_deploy_run)	 entry;
	struct lc_deployer		*d;
	char				 cert_id[LIFECYCLE_ID_MAX];
	unsigned			 n;
	json_t				*results;	/* deployments array */
	size_t				 waiting;	/* connectors running */
	size_t				 started;	/* connectors asked */
	bool				 failed;
	char				 failure[LC_DEPLOY_DETAIL_MAX];
	LIST_HEAD(lc_deploy_targets, lc_deploy_target) targets; /* running */
};

/* One resource of a run. */
struct lc_deploy_target {
	LIST_ENTRY(lc_deploy_target) entry;
	struct lc_deploy_run	*run;
	char			 resource_id[LIFECYCLE_ID_MAX];
	char			 name[LIFECYCLE_NAME_MAX + 1];
};

struct lc_deployer {
	struct lifecycle	*lc;
	pthread_mutex_t		 mu;		/* guards queue and nqueue */
	struct lc_deploy_reqs	 queue;
	size_t			 nqueue;
	size_t			 nruns;		/* jobs thread, read under mu */
	struct event		*wake;
	struct connector_ctx	*conn;
	LIST_HEAD(lc_deploy_runs, lc_deploy_run) runs; /* jobs thread only */
};

static pthread_mutex_t lc_deployers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lc_deployer *lc_deployers[LIFECYCLE_DEPLOY_CONTEXTS_MAX];

static const char *
lc_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool
lc_streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* The deployer of lc, NULL when none was started; under
 * lc_deployers_mu. */
static struct lc_deployer *
lc_deployer_find(struct lifecycle *lc, size_t *slot)
{
	size_t i;

	for (i = 0; i < LIFECYCLE_DEPLOY_CONTEXTS_MAX; i++)
		if (lc_deployers[i] != NULL && lc_deployers[i]->lc == lc) {
			if (slot != NULL)
				*slot = i;
			return lc_deployers[i];
		}
	return NULL;
}

static void
lc_deploy_run_free(struct lc_deploy_run *r)
{
	struct lc_deploy_target *t;

	if (r == NULL)
		return;
	while ((t = LIST_FIRST(&r->targets)) != NULL) {
		LIST_REMOVE(t, entry);
		free(t);
	}
	json_decref(r->results);
	free(r);
}

/* Records one resource's outcome in r. */
static void
lc_deploy_result(struct lc_deploy_run *r, const char *resource_id,
    const char *name, bool ok, const char *detail)
{
	char now[LIFECYCLE_TIME_MAX];
	json_t *e;

	common_time_rfc3339(common_now(), now, sizeof(now));
	if ((e = json_pack("{s:s, s:s, s:s, s:s}", "resource_id",
	    resource_id, "result", ok ? "ok" : "failed", "detail", detail,
	    "at", now)) == NULL || json_array_append_new(r->results, e) ==
	    -1) {
		log_err("deploy: certificate %s version %u: recording the "
		    "result of resource %s: out of memory", r->cert_id, r->n,
		    resource_id);
		ok = false;
	}
	if (!ok && !r->failed) {
		r->failed = true;
		snprintf(r->failure, sizeof(r->failure), "resource %s \"%s\": "
		    "%s", resource_id, name, detail);
	}
}

/* What the recording transaction works on. */
struct lc_deploy_rec {
	struct lc_deploy_run	*run;
	json_t			*crec;		/* out: the certificate */
	json_t			*v;		/* out: the version */
	bool			 pending;	/* out: still pending before */
};

/*
 * After a failed deployment: the scheduler's renewal state of crec says
 * when to try again (a new renewal, deployed again), with the same
 * exponential backoff as failed renewals (lifecycle.retry_min_seconds
 * doubling up to retry_max_seconds) over "deploy_failures" consecutive
 * failures; without it the scheduler would renew and fail again at
 * every tick. 0, or -1 on allocation failure.
 */
static int
lc_deploy_backoff(struct lifecycle *lc, json_t *crec, const char *reason)
{
	struct lifecycle_sched sc;
	char now_s[LIFECYCLE_TIME_MAX], next_s[LIFECYCLE_TIME_MAX];
	char why[LC_DEPLOY_DETAIL_MAX];
	json_int_t failures = json_integer_value(json_object_get(crec,
	    "deploy_failures")) + 1;
	time_t now = common_now();
	long delay;
	json_int_t i;
	json_t *rs;

	lifecycle_sched_get(lc, &sc);
	delay = sc.retry_min_seconds > 0 ? sc.retry_min_seconds : 1;
	for (i = 1; i < failures && delay < sc.retry_max_seconds; i++)
		delay *= 2;
	if (delay > sc.retry_max_seconds && sc.retry_max_seconds > 0)
		delay = sc.retry_max_seconds;
	common_time_rfc3339(now, now_s, sizeof(now_s));
	common_time_rfc3339(now + delay, next_s, sizeof(next_s));
	snprintf(why, sizeof(why), "deployment failed: %s", reason);
	if ((rs = json_pack("{s:I, s:s, s:s, s:s}", "failures", failures,
	    "last_error", why, "last_attempt_at", now_s, "next_attempt_at",
	    next_s)) == NULL ||
	    json_object_set_new(crec, "renewal_state", rs) == -1 ||
	    json_object_set_new(crec, "deploy_failures",
	    json_integer(failures)) == -1)
		return -1;
	return 0;
}

static int
lc_deploy_record_txn(struct store_txn *txn, void *arg,
    struct common_error *err)
{
	struct lc_deploy_rec *x = arg;
	struct lc_deploy_run *r = x->run;
	struct store *st = store_txn_store(txn);
	json_t *copy;
	int rc = -1;

	json_decref(x->crec);
	json_decref(x->v);
	x->v = NULL;
	if ((x->crec = store_cert_get(st, txn, r->cert_id)) == NULL ||
	    (x->v = store_version_get(st, txn, r->cert_id, r->n)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "certificate %s "
		    "version %u is gone", r->cert_id, r->n);
		goto out;
	}
	x->pending = lc_streq(lc_str(x->v, "stage"), "pending");
	if ((copy = json_deep_copy(r->results)) == NULL ||
	    json_object_set_new(x->v, "deployments", copy) == -1)
		goto nomem;
	if (x->pending && r->failed) {
		if (json_object_set_new(x->v, "stage", json_string("failed")) ==
		    -1)
			goto nomem;
		if (json_integer_value(json_object_get(x->crec,
		    "pending_version")) == (json_int_t)r->n)
			json_object_del(x->crec, "pending_version");
		if (lc_deploy_backoff(r->d->lc, x->crec, r->failure) == -1)
			goto nomem;
		if (store_cert_put(txn, r->cert_id, x->crec) == -1)
			goto out;
	} else if (x->pending && json_object_get(x->crec,
	    "deploy_failures") != NULL) {
		json_object_del(x->crec, "deploy_failures");
		if (store_cert_put(txn, r->cert_id, x->crec) == -1)
			goto out;
	}
	if (store_version_put(txn, r->cert_id, r->n, x->v) == -1)
		goto out;
	if (lifecycle_audit_result(txn, LIFECYCLE_WHO_DEPLOY,
	    "version.deploy", r->cert_id, r->failed ? "failed" : "ok",
	    "version %u serial %s to %zu resource%s: %s%s", r->n,
	    lc_str(x->v, "serial"), r->started, r->started == 1 ? "" : "s",
	    r->failed ? r->failure : "deployed and verified",
	    x->pending ? "" : " (no longer pending: recorded only)") == -1)
		goto out;
	rc = 0;
	goto out;
nomem:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	return rc;
}

/*
 * Ends a run whose connectors all answered: records, then promotes or
 * reports the failure. Frees r and wakes the queue (requests for the
 * same certificate waited for it).
 */
static void
lc_deploy_finish(struct lc_deploy_run *r)
{
	struct lc_deployer *d = r->d;
	struct lifecycle *lc = d->lc;
	struct lc_deploy_rec x = { r, NULL, NULL, false };
	struct common_error err;
	char detail[LC_DEPLOY_DETAIL_MAX];
	json_t *pv = NULL, *ev = NULL, *crec = NULL;

	common_error_clear(&err);
	if (lifecycle_txn_run(lc, lc_deploy_record_txn, &x, &err) == -1) {
		log_err("deploy: certificate %s version %u: recording the "
		    "deployment: %s", r->cert_id, r->n, err.msg);
		goto out;
	}
	if (!x.pending) {
		log_info("deploy: certificate %s version %u is %s now: "
		    "results recorded, stage left as is", r->cert_id, r->n,
		    lc_str(x.v, "stage"));
		goto out;
	}
	if (r->failed) {
		log_err("deploy: certificate %s version %u failed: %s",
		    r->cert_id, r->n, r->failure);
		ev = lifecycle_event_data(x.crec, x.v, r->failure);
		if (ev != NULL)
			lifecycle_notify(lc, LIFECYCLE_EV_DEPLOYMENT_FAILED,
			    ev);
		goto out;
	}
	common_error_clear(&err);
	if ((pv = lifecycle_version_promote(lc, r->cert_id, r->n,
	    LIFECYCLE_WHO_DEPLOY, &err)) == NULL) {
		log_err("deploy: certificate %s version %u deployed but not "
		    "promoted: %s", r->cert_id, r->n, err.msg);
		goto out;
	}
	log_info("deploy: certificate %s version %u deployed to %zu "
	    "resource%s and promoted", r->cert_id, r->n, r->started,
	    r->started == 1 ? "" : "s");
	snprintf(detail, sizeof(detail), "current: version %u deployed to "
	    "%zu resource%s", r->n, r->started, r->started == 1 ? "" : "s");
	if ((crec = store_cert_get(lifecycle_store(lc), NULL, r->cert_id)) ==
	    NULL)
		crec = json_incref(x.crec);
	if ((ev = lifecycle_event_data(crec, x.v, detail)) != NULL &&
	    json_object_set_new(ev, "stage", json_string("current")) == 0)
		lifecycle_notify(lc, LIFECYCLE_EV_RENEWED, ev);
out:
	json_decref(crec);
	json_decref(ev);
	json_decref(pv);
	json_decref(x.crec);
	json_decref(x.v);
	LIST_REMOVE(r, entry);
	pthread_mutex_lock(&d->mu);
	d->nruns--;
	pthread_mutex_unlock(&d->mu);
	lc_deploy_run_free(r);
	event_active(d->wake, EV_TIMEOUT, 0);
}

/* connector_run's callback: one resource answered. */
static void
lc_deploy_one_done(bool ok, const char *detail, void *arg)
{
	struct lc_deploy_target *t = arg;
	struct lc_deploy_run *r = t->run;

	lc_deploy_result(r, t->resource_id, t->name, ok, detail);
	LIST_REMOVE(t, entry);
	free(t);
	if (--r->waiting == 0)
		lc_deploy_finish(r);
}

/* Starts the connector of one associated resource; a resource without
 * one is skipped, a refusal recorded at once. */
static void
lc_deploy_target_start(struct lc_deploy_run *r, const json_t *res,
    const json_t *v)
{
	const char *rid = lc_str(res, "id"), *type = lc_str(res, "type");
	const json_t *config = json_object_get(res, "config");
	struct connector_job job;
	struct lc_deploy_target *t;
	struct common_error err;

	if (connector_type_for(type) == NULL)
		return;
	r->started++;
	common_error_clear(&err);
	if (connector_validate(type, config, &err) == -1) {
		lc_deploy_result(r, rid, lc_str(res, "name"), false, err.msg);
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		lc_deploy_result(r, rid, lc_str(res, "name"), false,
		    "out of memory");
		return;
	}
	t->run = r;
	snprintf(t->resource_id, sizeof(t->resource_id), "%s", rid);
	snprintf(t->name, sizeof(t->name), "%s", lc_str(res, "name") !=
	    NULL ? lc_str(res, "name") : "?");
	memset(&job, 0, sizeof(job));
	job.resource_id = rid;
	job.resource_type = type;
	job.config = config;
	job.certificate_id = r->cert_id;
	job.version = r->n;
	job.serial = lc_str(v, "serial");
	job.certificate = lc_str(v, "certificate");
	job.chain = lc_str(v, "chain");
	job.private_key = lc_str(v, "private_key");
	r->waiting++;
	LIST_INSERT_HEAD(&r->targets, t, entry);
	if (connector_run(r->d->conn, &job, lc_deploy_one_done, t) == -1) {
		r->waiting--;
		lc_deploy_result(r, rid, t->name, false,
		    "the deployment could not be started");
		LIST_REMOVE(t, entry);
		free(t);
	}
}

/*
 * Starts the run of a request: the version (with its key) must still be
 * pending; each associated resource with a connector gets one. A
 * version none of whose resources has a connector stays pending.
 */
static void
lc_deploy_begin(struct lc_deployer *d, const struct lc_deploy_req *q)
{
	struct lifecycle *lc = d->lc;
	struct store *st = lifecycle_store(lc);
	struct lc_deploy_run *r = NULL;
	struct common_error err;
	json_t *v = NULL, *assocs = NULL, *a, *res;
	const char *key;
	size_t i;

	common_error_clear(&err);
	if ((v = lifecycle_version_get(lc, q->cert_id, q->n, true,
	    &err)) == NULL) {
		log_warn("deploy: certificate %s version %u: %s", q->cert_id,
		    q->n, err.msg);
		goto out;
	}
	if (!lc_streq(lc_str(v, "stage"), "pending")) {
		log_info("deploy: certificate %s version %u is %s, not "
		    "pending: not deployed", q->cert_id, q->n,
		    lc_str(v, "stage"));
		goto out;
	}
	if ((assocs = store_assoc_by_cert(st, NULL, q->cert_id)) == NULL) {
		log_err("deploy: certificate %s: reading its associations "
		    "failed", q->cert_id);
		goto out;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->results = json_array()) == NULL) {
		log_err("deploy: certificate %s version %u: out of memory",
		    q->cert_id, q->n);
		goto out;
	}
	r->d = d;
	r->n = q->n;
	LIST_INIT(&r->targets);
	snprintf(r->cert_id, sizeof(r->cert_id), "%s", q->cert_id);
	LIST_INSERT_HEAD(&d->runs, r, entry);
	pthread_mutex_lock(&d->mu);
	d->nruns++;
	pthread_mutex_unlock(&d->mu);
	/* held while starting: a connector that answers from the loop
	 * cannot end the run before every target is started */
	r->waiting++;
	json_array_foreach(assocs, i, a) {
		if ((res = store_resource_get(st, NULL, lc_str(a,
		    "resource_id"))) == NULL) {
			log_warn("deploy: certificate %s: association %s names "
			    "a missing resource %s", q->cert_id,
			    lc_str(a, "id"), lc_str(a, "resource_id"));
			continue;
		}
		lc_deploy_target_start(r, res, v);
		json_decref(res);
	}
	if (r->started == 0) {
		log_info("deploy: certificate %s version %u: no associated "
		    "resource has a connector; it stays pending until "
		    "promoted", q->cert_id, q->n);
		LIST_REMOVE(r, entry);
		pthread_mutex_lock(&d->mu);
		d->nruns--;
		pthread_mutex_unlock(&d->mu);
		lc_deploy_run_free(r);
		r = NULL;
		goto out;
	}
	if (--r->waiting == 0)
		lc_deploy_finish(r);
	r = NULL;
out:
	if (r != NULL)
		lc_deploy_run_free(r);
	if (v != NULL && (key = lc_str(v, "private_key")) != NULL)
		OPENSSL_cleanse((char *)key, strlen(key));
	json_decref(v);
	json_decref(assocs);
}

/* True when a run of cert_id is in flight (jobs thread). */
static bool
lc_deploy_busy(const struct lc_deployer *d, const char *cert_id)
{
	const struct lc_deploy_run *r;

	LIST_FOREACH(r, &d->runs, entry)
		if (strcmp(r->cert_id, cert_id) == 0)
			return true;
	return false;
}

/* The wake-up: starts every queued request whose certificate is idle. */
static void
lc_deploy_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lc_deployer *d = arg;
	struct lc_deploy_req *q, *next;

	(void)fd;
	(void)what;
	for (;;) {
		/* a version queued by a server worker may not be durable
		 * yet: nothing is deployed that a crash could take back
		 * (when the flush fails the queue waits for the next
		 * wake-up) */
		if (store_flush_all(lifecycle_store(d->lc)) == -1) {
			log_err("deploy: the log flush failed; deployments "
			    "wait");
			return;
		}
		pthread_mutex_lock(&d->mu);
		for (q = TAILQ_FIRST(&d->queue); q != NULL; q = next) {
			next = TAILQ_NEXT(q, entry);
			if (!lc_deploy_busy(d, q->cert_id))
				break;
		}
		if (q != NULL) {
			TAILQ_REMOVE(&d->queue, q, entry);
			d->nqueue--;
			/* counted as a run until begin decides */
			d->nruns++;
		}
		pthread_mutex_unlock(&d->mu);
		if (q == NULL)
			return;
		lc_deploy_begin(d, q);
		pthread_mutex_lock(&d->mu);
		d->nruns--;
		pthread_mutex_unlock(&d->mu);
		free(q);
	}
}

static void
lc_deployer_free(struct lc_deployer *d)
{
	struct lc_deploy_req *q;
	struct lc_deploy_run *r;

	if (d == NULL)
		return;
	/* first: abandons the connectors, whose callbacks hold targets */
	connector_ctx_free(d->conn);
	while ((r = LIST_FIRST(&d->runs)) != NULL) {
		LIST_REMOVE(r, entry);
		lc_deploy_run_free(r);
	}
	while ((q = TAILQ_FIRST(&d->queue)) != NULL) {
		TAILQ_REMOVE(&d->queue, q, entry);
		free(q);
	}
	if (d->wake != NULL)
		event_free(d->wake);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

int
lifecycle_deploy_start(struct lifecycle *lc, struct event_base *jobs_base)
{
	struct lc_deployer *d = NULL;
	size_t i;
	int rc = -1;

	pthread_mutex_lock(&lc_deployers_mu);
	if (lc_deployer_find(lc, NULL) != NULL) {
		log_err("deploy: started already");
		goto out;
	}
	for (i = 0; i < LIFECYCLE_DEPLOY_CONTEXTS_MAX; i++)
		if (lc_deployers[i] == NULL)
			break;
	if (i == LIFECYCLE_DEPLOY_CONTEXTS_MAX) {
		log_err("deploy: more than %d lifecycle contexts deploy at "
		    "once", LIFECYCLE_DEPLOY_CONTEXTS_MAX);
		goto out;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		log_err("deploy: start: out of memory");
		goto out;
	}
	if ((errno = pthread_mutex_init(&d->mu, NULL)) != 0) {
		log_err("deploy: start: mutex: %s", strerror(errno));
		free(d);
		d = NULL;
		goto out;
	}
	d->lc = lc;
	TAILQ_INIT(&d->queue);
	LIST_INIT(&d->runs);
	if ((d->wake = event_new(jobs_base, -1, 0, lc_deploy_wake_cb, d)) ==
	    NULL || (d->conn = connector_ctx_new(jobs_base)) == NULL) {
		log_err("deploy: start: cannot create the events");
		goto out;
	}
	lc_deployers[i] = d;
	d = NULL;	/* the registry's now */
	rc = 0;
out:
	pthread_mutex_unlock(&lc_deployers_mu);
	lc_deployer_free(d);
	return rc;
}

void
lifecycle_deploy_stop(struct lifecycle *lc)
{
	struct lc_deployer *d;
	size_t slot = 0;

	pthread_mutex_lock(&lc_deployers_mu);
	if ((d = lc_deployer_find(lc, &slot)) != NULL)
		lc_deployers[slot] = NULL;
	pthread_mutex_unlock(&lc_deployers_mu);
	lc_deployer_free(d);
}

void
lifecycle_deploy_request(struct lifecycle *lc, const char *cert_id,
    unsigned n)
{
	struct lc_deployer *d;
	struct lc_deploy_req *q = NULL, *e;

	if (cert_id == NULL || strlen(cert_id) >= LIFECYCLE_ID_MAX)
		return;
	pthread_mutex_lock(&lc_deployers_mu);
	if ((d = lc_deployer_find(lc, NULL)) == NULL)
		goto out;
	pthread_mutex_lock(&d->mu);
	TAILQ_FOREACH(e, &d->queue, entry)
		if (e->n == n && strcmp(e->cert_id, cert_id) == 0)
			break;
	if (e == NULL && d->nqueue >= LIFECYCLE_DEPLOY_QUEUE_MAX)
		log_err("deploy: queue full (%d): certificate %s version %u "
		    "stays pending", LIFECYCLE_DEPLOY_QUEUE_MAX, cert_id, n);
	else if (e == NULL && (q = calloc(1, sizeof(*q))) == NULL)
		log_err("deploy: certificate %s version %u: out of memory; "
		    "it stays pending", cert_id, n);
	else if (e == NULL) {
		snprintf(q->cert_id, sizeof(q->cert_id), "%s", cert_id);
		q->n = n;
		TAILQ_INSERT_TAIL(&d->queue, q, entry);
		d->nqueue++;
		/* thread-safe (evthread); under the lock so stop cannot
		 * free the event meanwhile */
		event_active(d->wake, EV_TIMEOUT, 0);
	}
	pthread_mutex_unlock(&d->mu);
out:
	pthread_mutex_unlock(&lc_deployers_mu);
}

size_t
lifecycle_deploy_pending(struct lifecycle *lc)
{
	struct lc_deployer *d;
	size_t n = 0;

	pthread_mutex_lock(&lc_deployers_mu);
	if ((d = lc_deployer_find(lc, NULL)) != NULL) {
		pthread_mutex_lock(&d->mu);
		n = d->nqueue + d->nruns;
		pthread_mutex_unlock(&d->mu);
	}
	pthread_mutex_unlock(&lc_deployers_mu);
	return n;
}
