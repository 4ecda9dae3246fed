/*
 * protocols/acme/authz.c — authorizations and challenges (RFC 8555 §7.5):
 * the authorization object, deactivation (§7.5.2), responding to a
 * challenge (§7.5.1) and the validation that follows on the jobs thread.
 *
 * Authz record (table acme_authz): {"id", "account_id", "status":
 * "pending"|"valid"|"invalid"|"deactivated", "expires" (int),
 * "identifier": {"type", "value" (without "*.")}, "wildcard",
 * "challenges": [{"type", "token", "status", "validated", "error",
 * "attempt", "started_at"}], "orders": [order ids], "created_at"}.
 *
 * A challenge POST marks the challenge "processing" in one transaction
 * and queues a job; the job starts the validator on the jobs thread; its
 * result is recorded in ONE transaction that updates the challenge, the
 * authorization and every order waiting on it (ready when all its
 * authorizations are valid, invalid with an error when one failed). A
 * validation lost to a restart is started again when the client polls
 * after ACME_JOB_STALE_MIN (or three validation timeouts).
 *
 * The response to a challenge is held (never blocking the worker) until
 * its validation is recorded or a short bound passes, then answered with
 * the challenge as it is then (RFC 8555 §7.5.1 lets the server answer
 * with the updated object): a client whose responder answers at once
 * sees "valid" and goes straight on to finalize instead of polling after
 * Retry-After. The jobs thread hands the result back to the request's
 * worker with event_active() on an event of that worker's base; the
 * request itself is only touched on its worker.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>

#include "protocols/acme/acme.h"

#define AUTHZ_TIME_MAX		32	/* RFC 3339 text + NUL */
#define AUTHZ_TYPE_MAX		16	/* "tls-alpn-01" + NUL */
#define AUTHZ_IDTYPE_MAX	8	/* "dns" | "ip" */
#define AUTHZ_KEYAUTH_MAX	(ACME_TOKEN_MAX + ACME_THUMB_MAX + 2)
#define AUTHZ_STALE_TIMEOUTS	3	/* validation timeouts before restart */
#define AUTHZ_SECONDS_PER_DAY	86400.0

static const char *const authz_chall_names[ACME_CHALL__MAX] = {
	[ACME_CHALL_HTTP01] = "http-01",
	[ACME_CHALL_DNS01] = "dns-01",
	[ACME_CHALL_TLSALPN01] = "tls-alpn-01",
};

/*
 * A challenge response held until its validation is recorded. Shared by
 * the worker that owns the request and the job: refs (2, then 1, then 0)
 * and ev are guarded by lock. ev lives on the worker's base; only the
 * worker frees it (after setting it NULL under lock), so the jobs thread
 * activates it only while it exists. Whoever drops the last reference
 * frees the rest, which touches no event.
 */
struct authz_wait {
	pthread_mutex_t		 lock;
	int			 refs;
	struct event		*ev;		/* NULL once answered */
	struct acme_req		 r;		/* worker only: no owned
						   members */
	char			 authz_id[ACME_ID_MAX];
	enum acme_chall_type	 type;
};

/* One validation on its way (jobs thread). */
struct acme_vjob {
	struct acme_vjob	*next;		/* a->vjobs, in flight */
	struct acme		*a;
	struct authz_wait	*wait;		/* held response or NULL */
	char			 authz_id[ACME_ID_MAX];
	enum acme_chall_type	 type;
	char			 ident_type[AUTHZ_IDTYPE_MAX];
	char			 ident_value[ACME_IDENT_MAX + 1];
	char			 token[ACME_TOKEN_MAX];
	char			 keyauth[AUTHZ_KEYAUTH_MAX];
	json_int_t		 attempt;	/* matches the challenge's */
	struct acme_validation_result res;	/* once finished */
};

static const char *
authz_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int
authz_chall_type(const char *name, enum acme_chall_type *out)
{
	int i;

	for (i = 0; i < ACME_CHALL__MAX; i++)
		if (name != NULL && strcmp(name, authz_chall_names[i]) == 0) {
			*out = (enum acme_chall_type)i;
			return 0;
		}
	return -1;
}

const char *
acme_authz_status(const json_t *authz, time_t now)
{
	const char *s = authz_str(authz, "status");

	if (s == NULL)
		return "invalid";
	if ((strcmp(s, "pending") == 0 || strcmp(s, "valid") == 0) &&
	    (time_t)json_integer_value(json_object_get(authz, "expires")) <=
	    now)
		return "expired";
	return s;
}

/* The challenge of type name in the authz record (borrowed), or NULL. */
static json_t *
authz_chall_find(const json_t *authz, const char *name)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(authz, "challenges"), i, c) {
		const char *t = authz_str(c, "type");

		if (t != NULL && strcmp(t, name) == 0)
			return c;
	}
	return NULL;
}

/* Seconds after which a "processing" challenge counts as lost. */
static time_t
authz_stale_seconds(const struct acme *a)
{
	time_t t = (time_t)a->cf->acme.validation_timeout_seconds *
	    AUTHZ_STALE_TIMEOUTS;

	return t > ACME_JOB_STALE_MIN ? t : ACME_JOB_STALE_MIN;
}

/* ---- views -------------------------------------------------------------- */

/* The challenge object (RFC 8555 §8). New reference. */
static json_t *
authz_chall_view(const struct acme_req *r, const char *authz_id,
    const json_t *c)
{
	char url[ACME_URL_MAX];
	const char *type = authz_str(c, "type"), *s;
	json_t *v, *err;

	if (type == NULL || acme_url(r, url, sizeof(url), "chall/%s/%s",
	    authz_id, type) == -1)
		return NULL;
	if ((v = json_pack("{s:s,s:s,s:s,s:s}", "type", type, "url", url,
	    "status", authz_str(c, "status") != NULL ? authz_str(c, "status") :
	    "pending", "token", authz_str(c, "token") != NULL ?
	    authz_str(c, "token") : "")) == NULL)
		return NULL;
	if ((s = authz_str(c, "validated")) != NULL)
		json_object_set_new(v, "validated", json_string(s));
	if ((err = json_object_get(c, "error")) != NULL && json_is_object(err))
		json_object_set(v, "error", err);
	return v;
}

/* The authorization object (RFC 8555 §7.1.4). Final authorizations show
 * the challenge that was attempted, pending ones all. New reference. */
static json_t *
authz_view(const struct acme_req *r, const json_t *az, const char *status)
{
	char t[AUTHZ_TIME_MAX];
	const char *id = authz_str(az, "id"), *cs;
	json_t *v = NULL, *chall, *c, *cv;
	bool final = strcmp(status, "valid") == 0 ||
	    strcmp(status, "invalid") == 0;
	size_t i;

	if (id == NULL || (chall = json_array()) == NULL)
		return NULL;
	json_array_foreach(json_object_get(az, "challenges"), i, c) {
		cs = authz_str(c, "status");
		if (final && cs != NULL && strcmp(cs, "pending") == 0)
			continue;
		if ((cv = authz_chall_view(r, id, c)) == NULL ||
		    json_array_append_new(chall, cv) == -1) {
			json_decref(chall);
			return NULL;
		}
	}
	common_time_rfc3339((time_t)json_integer_value(json_object_get(az,
	    "expires")), t, sizeof(t));
	v = json_pack("{s:O,s:s,s:s,s:o}", "identifier",
	    json_object_get(az, "identifier"), "status", status, "expires", t,
	    "challenges", chall);
	if (v != NULL && json_is_true(json_object_get(az, "wildcard")))
		json_object_set_new(v, "wildcard", json_true());
	return v;
}

/* ---- held challenge responses ------------------------------------------ */

/* Drops one reference; the last one frees w (its event is gone by then
 * or was never made). */
static void
authz_wait_unref(struct authz_wait *w)
{
	bool last;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->lock);
	if (!last)
		return;
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* Jobs thread: the validation of the held challenge was recorded (or
 * given up); wakes the worker and drops the job's reference. */
static void
authz_wait_signal(struct authz_wait *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->ev != NULL)
		event_active(w->ev, EV_READ, 0);
	pthread_mutex_unlock(&w->lock);
	authz_wait_unref(w);
}

/* Answers a challenge response with the challenge as stored now: valid or
 * invalid when the validation finished, else processing with
 * Retry-After. */
static void
authz_chall_answer(struct acme_req *r, const char *authz_id,
    enum acme_chall_type type, const json_t *az)
{
	char up[ACME_URL_MAX];
	const char *cs;
	json_t *ch;

	if ((ch = authz_chall_find(az, authz_chall_names[type])) == NULL) {
		acme_problem(r, 404, "malformed",
		    "authorization %s offers no %s challenge", authz_id,
		    authz_chall_names[type]);
		return;
	}
	if (acme_url(r, up, sizeof(up), "authz/%s", authz_id) == 0)
		acme_link(r, up, "up");
	cs = authz_str(ch, "status");
	if (cs != NULL && strcmp(cs, "processing") == 0)
		acme_retry_after(r, acme_retry_seconds(r->a));
	acme_reply_json(r, 200, authz_chall_view(r, authz_id, ch), NULL);
}

/* Worker: the validation result arrived or the bound passed. Answers the
 * held request, frees the event (no activation can follow: ev is NULL
 * under lock first) and drops the worker's reference. */
static void
authz_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct authz_wait *w = arg;
	struct event *ev;
	json_t *az;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->lock);
	ev = w->ev;
	w->ev = NULL;
	pthread_mutex_unlock(&w->lock);
	event_free(ev);
	if ((az = store_acme_authz_get(w->r.a->st, NULL, w->authz_id)) ==
	    NULL)
		acme_problem(&w->r, 500, "serverInternal",
		    "cannot read authorization %s", w->authz_id);
	else
		authz_chall_answer(&w->r, w->authz_id, w->type, az);
	json_decref(az);
	authz_wait_unref(w);
}

/* How long a challenge response is held: ACME_CHALL_WAIT_MS, at most the
 * validation timeout and half the drain time (a held request must be
 * answered while its worker still runs). 0: not held. */
static long
authz_wait_ms(const struct acme *a)
{
	long ms = ACME_CHALL_WAIT_MS;
	long v = (long)a->cf->acme.validation_timeout_seconds * 1000;
	long d = (long)a->cf->server.drain_seconds * 1000 / 2;

	if (v < ms)
		ms = v;
	if (d < ms)
		ms = d;
	return ms > 0 ? ms : 0;
}

/* Worker: prepares holding r's response for the validation of challenge
 * type of authz_id: the event on this worker's base is armed with the
 * bound. Two references (worker, job). NULL when not held (the caller
 * answers at once). */
static struct authz_wait *
authz_wait_new(struct acme_req *r, const char *authz_id,
    enum acme_chall_type type)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(
	    r->req);
	struct event_base *base;
	struct authz_wait *w;
	struct timeval tv;
	long ms = authz_wait_ms(r->a);

	if (ms == 0 || evcon == NULL ||
	    (base = evhttp_connection_get_base(evcon)) == NULL)
		return NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	if (pthread_mutex_init(&w->lock, NULL) != 0) {
		free(w);
		return NULL;
	}
	w->refs = 2;
	w->type = type;
	snprintf(w->authz_id, sizeof(w->authz_id), "%s", authz_id);
	w->r = *r;
	/* the copy owns nothing: the handler's r releases these */
	w->r.payload = w->r.account = w->r.jwk = NULL;
	w->r.account_id = NULL;
	w->r.key = NULL;
	memset(w->r.seg, 0, sizeof(w->r.seg));
	w->r.nseg = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if ((w->ev = event_new(base, -1, 0, authz_wait_cb, w)) == NULL ||
	    event_add(w->ev, &tv) == -1) {
		if (w->ev != NULL)
			event_free(w->ev);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

/* Worker: gives up a hold whose job was not queued (before any other
 * thread saw it). */
static void
authz_wait_cancel(struct authz_wait *w)
{
	if (w == NULL)
		return;
	event_free(w->ev);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* ---- jobs thread: validation -------------------------------------------- */

/* Sets obj[key] to an RFC 8555 problem document. */
static int
authz_set_problem(json_t *obj, const char *key, const char *type,
    const char *detail)
{
	int status = 400;

	if (strcmp(type, ACME_ERR_PREFIX "unauthorized") == 0)
		status = 403;
	else if (strcmp(type, ACME_ERR_PREFIX "serverInternal") == 0)
		status = 500;
	return json_object_set_new(obj, key, json_pack("{s:s,s:s,s:i}",
	    "type", type, "detail", detail, "status", status));
}

/* Updates one order waiting on the authorization az (already updated in
 * txn): ready when all its authorizations are valid, invalid when az
 * failed. */
static int
authz_order_update(struct store_txn *txn, const json_t *az,
    const char *order_id, time_t now)
{
	struct store *st = store_txn_store(txn);
	const char *azid = authz_str(az, "id"), *azs, *aid;
	json_t *o, *e, *other;
	char detail[ACME_DETAIL_MAX];
	bool all_valid = true;
	size_t i;
	int rc = -1;

	if ((o = store_acme_order_get(st, txn, order_id)) == NULL)
		return 0;	/* removed meanwhile: nothing to update */
	if (strcmp(acme_order_status(o, now), "pending") != 0) {
		json_decref(o);
		return 0;
	}
	azs = authz_str(az, "status");
	if (strcmp(azs, "invalid") == 0 || strcmp(azs, "deactivated") == 0) {
		json_t *c, *err = NULL;

		json_array_foreach(json_object_get(az, "challenges"), i, c)
			if (json_object_get(c, "error") != NULL)
				err = json_object_get(c, "error");
		snprintf(detail, sizeof(detail),
		    "authorization for %s:%s %s%s%s",
		    authz_str(json_object_get(az, "identifier"), "type"),
		    authz_str(json_object_get(az, "identifier"), "value"),
		    strcmp(azs, "invalid") == 0 ? "failed" : "was deactivated",
		    err != NULL ? ": " : "",
		    err != NULL && authz_str(err, "detail") != NULL ?
		    authz_str(err, "detail") : "");
		if (json_object_set_new(o, "status", json_string("invalid")) ||
		    authz_set_problem(o, "error", err != NULL &&
		    authz_str(err, "type") != NULL ? authz_str(err, "type") :
		    ACME_ERR_PREFIX "unauthorized", detail) == -1)
			goto out;
		rc = store_acme_order_put(txn, order_id, o);
		goto out;
	}
	json_array_foreach(json_object_get(o, "authorizations"), i, e) {
		if ((aid = json_string_value(e)) == NULL)
			continue;
		if (strcmp(aid, azid) == 0) {
			if (strcmp(acme_authz_status(az, now), "valid") != 0)
				all_valid = false;
			continue;
		}
		if ((other = store_acme_authz_get(st, txn, aid)) == NULL ||
		    strcmp(acme_authz_status(other, now), "valid") != 0)
			all_valid = false;
		json_decref(other);
	}
	if (!all_valid) {
		rc = 0;
		goto out;
	}
	if (json_object_set_new(o, "status", json_string("ready")) == -1)
		goto out;
	rc = store_acme_order_put(txn, order_id, o);
out:
	json_decref(o);
	return rc;
}

/* Updates every order the authorization lists. */
static int
authz_orders_update(struct store_txn *txn, const json_t *az, time_t now)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(az, "orders"), i, e)
		if (json_string_value(e) != NULL && authz_order_update(txn, az,
		    json_string_value(e), now) == -1)
			return -1;
	return 0;
}

struct authz_result {
	const struct acme_vjob			*job;
	const struct acme_validation_result	*res;
};

/* Records a validation result: challenge, authorization and orders in
 * one transaction. A result for an older attempt is dropped. */
static int
authz_result_txn(struct store_txn *txn, void *arg)
{
	struct authz_result *c = arg;
	const struct acme_vjob *job = c->job;
	const struct conf *cf = job->a->cf;
	time_t now = common_now();
	char t[AUTHZ_TIME_MAX];
	json_t *az, *ch;
	const char *cs;
	bool live;
	int rc = -1;

	if ((az = store_acme_authz_get(store_txn_store(txn), txn,
	    job->authz_id)) == NULL)
		return 0;
	ch = authz_chall_find(az, authz_chall_names[job->type]);
	cs = ch != NULL ? authz_str(ch, "status") : NULL;
	if (cs == NULL || strcmp(cs, "processing") != 0 ||
	    json_integer_value(json_object_get(ch, "attempt")) !=
	    job->attempt) {
		rc = 0;
		goto out;
	}
	live = strcmp(acme_authz_status(az, now), "pending") == 0;
	if (c->res->valid) {
		common_time_rfc3339(now, t, sizeof(t));
		json_object_del(ch, "error");
		if (json_object_set_new(ch, "status", json_string("valid")) ||
		    json_object_set_new(ch, "validated", json_string(t)))
			goto out;
		if (live && (json_object_set_new(az, "status",
		    json_string("valid")) || json_object_set_new(az, "expires",
		    json_integer((json_int_t)now + (json_int_t)(
		    cf->acme.authz_lifetime_days * AUTHZ_SECONDS_PER_DAY)))))
			goto out;
	} else {
		if (json_object_set_new(ch, "status", json_string("invalid")) ||
		    authz_set_problem(ch, "error", c->res->problem_type[0] !=
		    '\0' ? c->res->problem_type : ACME_ERR_PREFIX
		    "serverInternal", c->res->detail) == -1)
			goto out;
		if (live && json_object_set_new(az, "status",
		    json_string("invalid")))
			goto out;
	}
	if (store_acme_authz_put(txn, job->authz_id, az) == -1)
		goto out;
	rc = live ? authz_orders_update(txn, az, now) : 0;
out:
	json_decref(az);
	return rc;
}

/* Unlinks job from a->vjobs. */
static void
authz_job_unlink(struct acme_vjob *job)
{
	struct acme_vjob **pp;

	for (pp = &job->a->vjobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			return;
		}
}

/* Logs a recorded (or lost) result, wakes the held answer (wake false:
 * the workers are gone, only the reference is dropped), frees job. */
static void
authz_job_done_free(struct acme_vjob *job, bool recorded, bool wake)
{
	if (!recorded)
		log_err("acme: authz %s: %s: cannot record the validation "
		    "result (%s)", job->authz_id, authz_chall_names[job->type],
		    job->res.valid ? "valid" : "invalid");
	else
		log_info("acme: authz %s: %s for %s:%s %s%s%s", job->authz_id,
		    authz_chall_names[job->type], job->ident_type,
		    job->ident_value, job->res.valid ? "valid" : "invalid",
		    job->res.valid ? "" : ": ", job->res.valid ? "" :
		    job->res.detail);
	if (wake)
		authz_wait_signal(job->wait);
	else
		authz_wait_unref(job->wait);
	free(job);
}

/* Every result of the list in one transaction (retry-safe: each result
 * transaction is). */
static int
authz_results_txn(struct store_txn *txn, void *arg)
{
	struct acme_vjob *job;
	struct authz_result c;

	for (job = arg; job != NULL; job = job->next) {
		c.job = job;
		c.res = &job->res;
		if (authz_result_txn(txn, &c) != 0)
			return -1;
	}
	return 0;
}

/*
 * Records the results finished since the last time in one commit, then
 * wakes their held answers. The jobs thread runs every validation and a
 * commit waits for its log flush: one per result made it the bottleneck
 * of ACME (~0.6 ms of fdatasync per validation, the thread busy ~93 % of
 * the time at ~450 orders/s). Results that finish while a commit runs
 * share the next. When the shared commit fails each result is recorded
 * on its own, so one bad result does not take the others with it.
 */
static void
authz_results_record(struct acme *a, bool wake)
{
	struct acme_vjob *list = a->vdone, *job, *next;
	struct authz_result c;
	bool batch_ok;

	a->vdone = NULL;
	a->vdone_tail = &a->vdone;
	if (list == NULL)
		return;
	batch_ok = list->next != NULL &&
	    store_txn_run(a->st, authz_results_txn, list) == 0;
	for (job = list; job != NULL; job = next) {
		next = job->next;
		job->next = NULL;
		if (batch_ok) {
			authz_job_done_free(job, true, wake);
			continue;
		}
		c.job = job;
		c.res = &job->res;
		authz_job_done_free(job, store_txn_run(a->st,
		    authz_result_txn, &c) == 0, wake);
	}
}

static void
authz_results_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	authz_results_record(arg, true);
}

/* Queues the result for the next shared commit (jobs thread). */
static void
authz_job_finish(struct acme_vjob *job,
    const struct acme_validation_result *res)
{
	struct acme *a = job->a;
	struct authz_result c;

	job->res = *res;
	job->next = NULL;
	if (a->vdone_tail == NULL)
		a->vdone_tail = &a->vdone;
	if (a->vdone_ev == NULL && (a->vdone_ev = event_new(
	    server_jobs_base(a->srv), -1, 0, authz_results_cb, a)) == NULL) {
		/* no event: recorded here, on its own */
		c.job = job;
		c.res = &job->res;
		authz_job_done_free(job, store_txn_run(a->st,
		    authz_result_txn, &c) == 0, true);
		return;
	}
	*a->vdone_tail = job;
	a->vdone_tail = &job->next;
	/* runs after the callbacks already due in this pass of the loop,
	 * so the results they finish join this commit */
	event_active(a->vdone_ev, EV_READ, 0);
}

/* The validator's done callback. */
static void
authz_job_done(void *arg, const struct acme_validation_result *res)
{
	struct acme_vjob *job = arg;

	authz_job_unlink(job);
	authz_job_finish(job, res);
}

/* Runs on the jobs thread: creates the validator on first use (on this
 * thread's event base) and starts the validation. */
static void
authz_job_run(void *arg)
{
	struct acme_vjob *job = arg;
	struct acme *a = job->a;
	struct acme_validator_config vc;
	struct acme_validation_req req;
	struct acme_validation_result res;

	if (a->validator == NULL) {
		memset(&vc, 0, sizeof(vc));
		vc.http01_port = a->cf->acme.http01_port;
		vc.tlsalpn01_port = a->cf->acme.tlsalpn01_port;
		vc.dns_resolver = a->cf->acme.dns_resolver;
		vc.timeout_seconds = a->cf->acme.validation_timeout_seconds;
		a->validator = acme_validator_new(server_jobs_base(a->srv),
		    &vc);
	}
	memset(&req, 0, sizeof(req));
	req.type = job->type;
	req.ident_type = job->ident_type;
	req.ident_value = job->ident_value;
	req.token = job->token;
	req.key_authorization = job->keyauth;
	if (a->validator != NULL) {
		job->next = a->vjobs;
		a->vjobs = job;
		if (acme_validator_start(a->validator, &req, authz_job_done,
		    job) == 0)
			return;
		authz_job_unlink(job);
	}
	memset(&res, 0, sizeof(res));
	snprintf(res.problem_type, sizeof(res.problem_type), "%s",
	    ACME_ERR_PREFIX "serverInternal");
	snprintf(res.detail, sizeof(res.detail),
	    "the server could not start the %s validation",
	    authz_chall_names[job->type]);
	log_err("acme: authz %s: %s", job->authz_id, res.detail);
	authz_job_finish(job, &res);
}

void
acme_authz_jobs_free(struct acme *a)
{
	struct acme_vjob *job;

	/* Cancels the validations in flight (no callbacks after this). */
	acme_validator_free(a->validator);
	a->validator = NULL;
	/* results finished but not yet recorded: recorded now (the
	 * workers are gone: no wake-up, only the references) */
	authz_results_record(a, false);
	if (a->vdone_ev != NULL)
		event_free(a->vdone_ev);
	a->vdone_ev = NULL;
	while ((job = a->vjobs) != NULL) {
		a->vjobs = job->next;
		/* the workers are gone: no wake-up, only the reference */
		authz_wait_unref(job->wait);
		free(job);
	}
}

/* ---- starting a validation ---------------------------------------------- */

struct authz_kick {
	struct acme_req		*r;
	const char		*id;
	const char		*type;	/* challenge the client responded
					   to; NULL: only restart lost ones */
	json_t			*out;	/* authz record after the txn */
	struct acme_vjob	*job;	/* to queue after commit */
	bool			 hold;	/* hold the response for the result */
	bool			 held;	/* it is held: no reply now */
	struct acme_prob	 prob;
};

/* Fills a job for challenge ch of az. */
static struct acme_vjob *
authz_job_new(struct authz_kick *c, const json_t *az, const json_t *ch,
    enum acme_chall_type type, json_int_t attempt)
{
	const json_t *ident = json_object_get(az, "identifier");
	struct acme_vjob *job;

	if ((job = calloc(1, sizeof(*job))) == NULL)
		return NULL;
	job->a = c->r->a;
	job->type = type;
	job->attempt = attempt;
	snprintf(job->authz_id, sizeof(job->authz_id), "%s", c->id);
	snprintf(job->ident_type, sizeof(job->ident_type), "%s",
	    authz_str(ident, "type") != NULL ? authz_str(ident, "type") : "");
	snprintf(job->ident_value, sizeof(job->ident_value), "%s",
	    authz_str(ident, "value") != NULL ? authz_str(ident, "value") :
	    "");
	snprintf(job->token, sizeof(job->token), "%s",
	    authz_str(ch, "token") != NULL ? authz_str(ch, "token") : "");
	snprintf(job->keyauth, sizeof(job->keyauth), "%s.%s", job->token,
	    c->r->thumbprint);
	return job;
}

/* Marks challenge ch processing (next attempt) in az. */
static int
authz_chall_begin(json_t *ch, time_t now, json_int_t *attempt)
{
	*attempt = json_integer_value(json_object_get(ch, "attempt")) + 1;
	return json_object_set_new(ch, "status", json_string("processing")) ||
	    json_object_set_new(ch, "attempt", json_integer(*attempt)) ||
	    json_object_set_new(ch, "started_at", json_integer(now)) ? -1 : 0;
}

/*
 * The challenge transaction: for a response to a pending challenge of a
 * pending authorization (no other challenge in flight) the challenge
 * becomes processing; a processing challenge whose validation was lost
 * (older than the stale limit) is started again. Other states are
 * returned unchanged.
 */
static int
authz_kick_txn(struct store_txn *txn, void *arg)
{
	struct authz_kick *c = arg;
	struct acme *a = c->r->a;
	time_t now = common_now();
	enum acme_chall_type type;
	json_int_t attempt;
	const char *owner, *cs, *ct;
	json_t *ch, *e;
	size_t i;

	json_decref(c->out);
	free(c->job);
	c->job = NULL;
	acme_prob_clear(&c->prob);
	if ((c->out = store_acme_authz_get(a->st, txn, c->id)) == NULL) {
		acme_prob_set(&c->prob, 404, "malformed",
		    "no authorization %s", c->id);
		return 1;
	}
	owner = authz_str(c->out, "account_id");
	if (owner == NULL || strcmp(owner, c->r->account_id) != 0) {
		acme_prob_set(&c->prob, 403, "unauthorized",
		    "authorization %s belongs to another account", c->id);
		return 1;
	}
	if (c->type != NULL && authz_chall_find(c->out, c->type) == NULL) {
		acme_prob_set(&c->prob, 404, "malformed",
		    "authorization %s offers no %s challenge", c->id,
		    c->type);
		return 1;
	}
	if (strcmp(acme_authz_status(c->out, now), "pending") != 0)
		return 0;
	json_array_foreach(json_object_get(c->out, "challenges"), i, e) {
		cs = authz_str(e, "status");
		ct = authz_str(e, "type");
		if (cs == NULL || strcmp(cs, "processing") != 0 ||
		    authz_chall_type(ct, &type) == -1)
			continue;
		if ((time_t)json_integer_value(json_object_get(e,
		    "started_at")) + authz_stale_seconds(a) > now)
			return 0;	/* in flight */
		log_warn("acme: authz %s: %s validation lost, starting it "
		    "again", c->id, ct);
		if (authz_chall_begin(e, now, &attempt) == -1 ||
		    (c->job = authz_job_new(c, c->out, e, type, attempt)) ==
		    NULL)
			return -1;
		return store_acme_authz_put(txn, c->id, c->out);
	}
	if (c->type == NULL)
		return 0;
	ch = authz_chall_find(c->out, c->type);
	cs = authz_str(ch, "status");
	if (cs == NULL || strcmp(cs, "pending") != 0 ||
	    authz_chall_type(c->type, &type) == -1)
		return 0;
	if (authz_chall_begin(ch, now, &attempt) == -1 ||
	    (c->job = authz_job_new(c, c->out, ch, type, attempt)) == NULL)
		return -1;
	return store_acme_authz_put(txn, c->id, c->out);
}

/* Runs the challenge transaction and queues the validation it started.
 * 0 with c->out, or -1 after answering. */
static int
authz_kick(struct authz_kick *c)
{
	int rc = store_txn_run(c->r->a->st, authz_kick_txn, c);
	enum acme_chall_type type;
	bool held;

	if (rc != 0) {
		free(c->job);	/* not committed: nothing to validate */
		c->job = NULL;
	}
	if (rc > 0) {
		acme_problem_send(c->r, &c->prob);
		return -1;
	}
	if (rc != 0 || c->out == NULL) {
		acme_problem(c->r, 500, "serverInternal",
		    "cannot update authorization %s", c->id);
		return -1;
	}
	if (c->job != NULL) {
		/* Held only for the challenge the client responded to (a
		 * lost validation of another one may be restarting). */
		if (c->hold && c->type != NULL &&
		    strcmp(authz_chall_names[c->job->type], c->type) == 0)
			c->job->wait = authz_wait_new(c->r, c->id,
			    c->job->type);
		/* Read before the hand-off: once queued, the jobs thread may
		 * finish and free the job before server_job returns. */
		held = c->job->wait != NULL;
		type = c->job->type;
		/* A full queue leaves the challenge processing; the stale
		 * check starts it again on a later poll. */
		if (server_job(c->r->a->srv, authz_job_run, c->job) == -1) {
			log_warn("acme: authz %s: validation not queued, it "
			    "will be retried", c->id);
			authz_wait_cancel(c->job->wait);
			free(c->job);
		} else {
			log_info("acme: authz %s: %s validation queued",
			    c->id, authz_chall_names[type]);
			c->held = held;
		}
		c->job = NULL;	/* owned by the jobs thread now */
	}
	return 0;
}

/* ---- handlers ----------------------------------------------------------- */

struct authz_deact {
	struct acme_req		*r;
	const char		*id;
	json_t			*out;
	struct acme_prob	 prob;
};

/* Deactivates the authorization (RFC 8555 §7.5.2) and invalidates the
 * orders waiting on it, in one transaction. */
static int
authz_deact_txn(struct store_txn *txn, void *arg)
{
	struct authz_deact *c = arg;
	time_t now = common_now();
	const char *owner, *s;

	json_decref(c->out);
	acme_prob_clear(&c->prob);
	if ((c->out = store_acme_authz_get(c->r->a->st, txn, c->id)) ==
	    NULL) {
		acme_prob_set(&c->prob, 404, "malformed",
		    "no authorization %s", c->id);
		return 1;
	}
	owner = authz_str(c->out, "account_id");
	if (owner == NULL || strcmp(owner, c->r->account_id) != 0) {
		acme_prob_set(&c->prob, 403, "unauthorized",
		    "authorization %s belongs to another account", c->id);
		return 1;
	}
	s = acme_authz_status(c->out, now);
	if (strcmp(s, "pending") != 0 && strcmp(s, "valid") != 0) {
		acme_prob_set(&c->prob, 400, "malformed",
		    "authorization %s is %s: only pending and valid "
		    "authorizations can be deactivated", c->id, s);
		return 1;
	}
	if (json_object_set_new(c->out, "status", json_string("deactivated")) ==
	    -1 || store_acme_authz_put(txn, c->id, c->out) == -1)
		return -1;
	return authz_orders_update(txn, c->out, now);
}

/* POST /acme/authz/<id>: POST-as-GET, or {"status": "deactivated"}. */
void
acme_authz_post(struct acme_req *r, const char *id)
{
	struct authz_kick k;
	struct authz_deact d;
	const char *status;
	json_t *v;
	int rc;

	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	if (acme_req_auth(r, ACME_AUTH_KID) == -1)
		goto out;
	if (r->payload != NULL &&
	    (v = json_object_get(r->payload, "status")) != NULL) {
		if (json_string_value(v) == NULL ||
		    strcmp(json_string_value(v), "deactivated") != 0) {
			acme_problem(r, 400, "malformed",
			    "an authorization's status can only be changed to "
			    "\"deactivated\"");
			goto out;
		}
		d.r = r;
		d.id = id;
		rc = store_txn_run(r->a->st, authz_deact_txn, &d);
		if (rc > 0) {
			acme_problem_send(r, &d.prob);
			goto out;
		}
		if (rc != 0) {
			acme_problem(r, 500, "serverInternal",
			    "cannot deactivate authorization %s", id);
			goto out;
		}
		log_info("acme: authz %s deactivated", id);
		acme_reply_json(r, 200, authz_view(r, d.out, "deactivated"),
		    NULL);
		goto out;
	}
	k.r = r;
	k.id = id;
	if (authz_kick(&k) == -1)
		goto out;
	status = acme_authz_status(k.out, common_now());
	if (strcmp(status, "pending") == 0)
		acme_retry_after(r, acme_retry_seconds(r->a));
	acme_reply_json(r, 200, authz_view(r, k.out, status), NULL);
out:
	json_decref(k.out);
	json_decref(d.out);
	acme_prob_clear(&d.prob);
	acme_prob_clear(&k.prob);
}

/* POST /acme/chall/<authz-id>/<type>: {} starts the validation (RFC 8555
 * §7.5.1); POST-as-GET, or a challenge already started, returns it. */
void
acme_chall_post(struct acme_req *r, const char *authz_id, const char *type)
{
	enum acme_chall_type t;
	struct authz_kick k;

	memset(&k, 0, sizeof(k));
	if (authz_chall_type(type, &t) == -1) {
		acme_problem(r, 404, "malformed", "no challenge type %.*s",
		    AUTHZ_TYPE_MAX, type);
		return;
	}
	if (acme_req_auth(r, ACME_AUTH_KID) == -1)
		return;
	k.r = r;
	k.id = authz_id;
	k.type = r->payload != NULL ? authz_chall_names[t] : NULL;
	k.hold = r->payload != NULL;
	if (authz_kick(&k) == -1)
		goto out;
	if (k.held) {
		r->deferred = true;	/* authz_wait_cb answers */
		goto out;
	}
	authz_chall_answer(r, authz_id, t, k.out);
out:
	json_decref(k.out);
	acme_prob_clear(&k.prob);
}
