/*
 * lifecycle/renew.c — the scheduler: one lifecycle_tick visits the
 * certificates whose dates call for something and does it: executes due
 * deletions, marks versions past notAfter "expired", renews managed
 * certificates past their due date (with jitter, and exponential backoff
 * after failures), flags the ones pkid cannot renew "renewal_due", and
 * sends renewal_window, expiring, renewed and renewal_failed
 * notifications.
 *
 * It finds them through the certificate indexes rather than by walking
 * the inventory, so a tick costs what is due, not the inventory's size:
 *
 *  - the due walk: the index by due_at_epoch up to now. Every renewal,
 *    renewal_due flag and renewal_window notice happens at or after
 *    due_at, and due_at <= notAfter, so it also sees every current
 *    version that expired. A certificate that can never need anything
 *    at its due date again (pkid cannot renew it and it was flagged and
 *    notified, or its current version is revoked) is retired from this
 *    index ("due_at_epoch": null; "due_at" stays), so certificates past
 *    due do not pile up in it for the rest of their lives;
 *  - the expiry walk: the index by not_after_epoch from where the last
 *    tick stopped up to now + expiry_warning_days, for the "expiring"
 *    notices of certificates pkid cannot renew (they may come before
 *    due_at) and the expiry of retired ones. Records that were sent
 *    their notice are skipped on their stored text, unparsed;
 *  - the sweep: every LIFECYCLE_TICK_SWEEP_SECONDS a walk over the whole
 *    table by id that parses only the records whose stored text shows a
 *    scheduled deletion, a version that may have expired
 *    (expiry_check_epoch, which also covers previous versions) or no
 *    due date yet (records written by an older pkid). Scheduled
 *    deletions are not indexed (scheduling them is delete.c's, and the
 *    store has no index for them) and are days away, so minutes of
 *    delay cost nothing, and the unparsed walk is cheap (about 2 us a
 *    record).
 *
 * Each certificate is handled in its own transaction that re-reads the
 * record, so a tick never overwrites what an API call changed meanwhile;
 * notifications leave only after their change committed. Events that
 * must be sent once per version are remembered in the record
 * ("notified"), so a restart or a retried tick does not repeat them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "conf/conf.h"
#include "lifecycle/lifecycle.h"

/* Meta keys of the scheduler's positions. */
#define LC_META_CURSOR		"lifecycle_scan_after"	/* the sweep's id
							   position; "" when
							   no sweep runs */
#define LC_META_SWEEP_AT	"lifecycle_sweep_at"	/* epoch the last
							   sweep began */
#define LC_META_EXPIRY		"lifecycle_expiry_after" /* the expiry walk:
							   "t:EPOCH" (done
							   through EPOCH) or
							   a page token */
#define LC_EXPIRY_DONE_PREFIX	"t:"
#define LC_META_VALUE_MAX	160	/* a position or an epoch, as text */
#define LC_EPOCH_DIGITS_MAX	18	/* digits of a stored integer */
#define LC_DAY			86400.0
#define LC_AUDIT_DETAIL_MAX	512
#define LC_TEXT_MAX		256	/* version lists, event details */

/* Defaults of lifecycle.* when the context has no configuration (they
 * match conf/pkid.json). */
#define LC_DEF_HISTORY_LIMIT	10
#define LC_DEF_DELETION_DAYS	7.0
#define LC_DEF_JITTER_SECONDS	300
#define LC_DEF_RETRY_MIN	60
#define LC_DEF_RETRY_MAX	3600
#define LC_DEF_WARNING_DAYS	14.0

/* What the dates of one certificate call for now. */
struct lc_plan {
	bool	delete_due;	/* scheduled deletion reached execute_at */
	bool	expire;		/* a version may have passed notAfter */
	bool	refresh_due;	/* record without a due date (older pkid) */
	bool	window;		/* send renewal_window (once per version) */
	bool	flag_due;	/* set renewal_due: pkid cannot renew it */
	bool	schedule;	/* first attempt: due + jitter */
	bool	renew;		/* attempt a renewal now */
	bool	expiring;	/* send expiring (once per version) */
	bool	retire;		/* nothing due is left: leave the due index */
};

/* One tick: its clock, settings and budgets; the arg of the walks'
 * filters. */
struct lc_walk {
	struct lifecycle		*lc;
	struct store			*st;
	const struct lifecycle_sched	*sc;
	time_t				 now;
	size_t				 handled;	/* certificates handled */
	size_t				 renewed;	/* renewal attempts */
};

/* One certificate's transaction in a tick. */
struct lc_tick_one {
	struct lifecycle		*lc;
	const struct lifecycle_sched	*sc;
	const char			*id;
	time_t				 now;
	long				 jitter;	/* drawn before the txn */
	bool				 renew;		/* out: attempt now */
	json_t				*events;	/* out: [[ev, data]] */
};

/* The failure record of one renewal attempt. */
struct lc_tick_fail {
	struct lifecycle		*lc;
	const struct lifecycle_sched	*sc;
	const char			*id;
	time_t				 now;
	const char			*error;
	json_t				*event;		/* out */
};

/* ---- shared helpers (declared in lifecycle.h) ---- */

void
lifecycle_sched_get(struct lifecycle *lc, struct lifecycle_sched *out)
{
	const struct conf *cf = lifecycle_cfg(lc)->conf;

	if (cf == NULL) {
		out->history_limit = LC_DEF_HISTORY_LIMIT;
		out->deletion_pending_days = LC_DEF_DELETION_DAYS;
		out->renewal_jitter_seconds = LC_DEF_JITTER_SECONDS;
		out->retry_min_seconds = LC_DEF_RETRY_MIN;
		out->retry_max_seconds = LC_DEF_RETRY_MAX;
		out->expiry_warning_days = LC_DEF_WARNING_DAYS;
		return;
	}
	out->history_limit = cf->lifecycle.history_limit;
	out->deletion_pending_days = cf->lifecycle.deletion_pending_days;
	out->renewal_jitter_seconds = cf->lifecycle.renewal_jitter_seconds;
	out->retry_min_seconds = cf->lifecycle.retry_min_seconds;
	out->retry_max_seconds = cf->lifecycle.retry_max_seconds;
	out->expiry_warning_days = cf->lifecycle.expiry_warning_days;
}

/*
 * Appends {"time", "who", "action", "object", "result", "detail"} to the
 * audit table inside txn. Unlike lifecycle_audit it records failures
 * too: a failed renewal attempt changes the renewal state, and the trail
 * must say why.
 */
int
lifecycle_audit_result(struct store_txn *txn, const char *who,
    const char *action, const char *object, const char *result,
    const char *fmt, ...)
{
	char when[LIFECYCLE_TIME_MAX], detail[LC_AUDIT_DETAIL_MAX];
	json_t *rec = NULL;
	va_list ap;
	int rc = -1;

	common_time_rfc3339(common_now(), when, sizeof(when));
	va_start(ap, fmt);
	if (vsnprintf(detail, sizeof(detail), fmt, ap) < 0)
		detail[0] = '\0';
	va_end(ap);
	rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "time", when,
	    "who", who != NULL && *who != '\0' ? who : "system",
	    "action", action, "object", object, "result", result,
	    "detail", detail);
	if (rec == NULL) {
		log_err("lifecycle: audit %s %s: out of memory", action,
		    object);
		goto out;
	}
	if (store_audit_append(txn, rec, NULL) == -1) {
		log_err("lifecycle: audit %s %s: append failed", action,
		    object);
		goto out;
	}
	rc = 0;
out:
	json_decref(rec);
	return rc;
}

int
lifecycle_time_parse(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;
	time_t t;

	if (s == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL ||
	    *end != '\0')
		return -1;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = t;
	return 0;
}

/* Copies obj[key] into out (null when absent). 0 or -1. */
static int
lc_copy_field(json_t *out, const json_t *obj, const char *key,
    const char *as)
{
	json_t *v = json_object_get(obj, key);

	return json_object_set(out, as, v != NULL ? v : json_null());
}

json_t *
lifecycle_event_data(const json_t *crec, const json_t *v, const char *detail)
{
	json_t *ev;
	int rc = 0;

	if ((ev = json_object()) == NULL)
		return NULL;
	rc |= lc_copy_field(ev, crec, "id", "certificate_id");
	rc |= lc_copy_field(ev, crec, "name", "name");
	rc |= lc_copy_field(ev, crec, "ca_id", "ca_id");
	rc |= lc_copy_field(ev, crec, "mode", "mode");
	rc |= lc_copy_field(ev, crec, "origin", "origin");
	if (v != NULL) {
		rc |= lc_copy_field(ev, v, "version", "version");
		rc |= lc_copy_field(ev, v, "serial", "serial");
		rc |= lc_copy_field(ev, v, "not_after", "not_after");
	} else {
		rc |= lc_copy_field(ev, crec, "current_version", "version");
		rc |= lc_copy_field(ev, crec, "serial", "serial");
		rc |= lc_copy_field(ev, crec, "not_after", "not_after");
	}
	rc |= json_object_set_new(ev, "detail", json_string(detail != NULL ?
	    detail : ""));
	if (rc != 0) {
		json_decref(ev);
		return NULL;
	}
	return ev;
}

/* ---- small helpers ---- */

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

static json_int_t
lc_int(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

/* A version number field; 0 when absent or out of range. */
static unsigned
lc_uint(const json_t *obj, const char *key)
{
	json_int_t v = lc_int(obj, key);

	return v > 0 && v <= (json_int_t)UINT32_MAX ? (unsigned)v : 0;
}

/* True when the scheduler renews this certificate itself: managed and
 * issued here on the management API's behalf (ACME and EST clients renew
 * their own). */
static bool
lc_renewable(const json_t *crec)
{
	const char *origin = lc_str(crec, "origin");

	return lc_streq(lc_str(crec, "mode"), "managed") &&
	    (origin == NULL || lc_streq(origin, "mgmt")) &&
	    lc_str(crec, "ca_id") != NULL;
}

/* A uniformly drawn delay in [0, max] seconds (0 if the RNG fails). */
static long
lc_jitter(int max)
{
	uint32_t r;

	if (max <= 0 || RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0;
	return (long)(r % ((uint32_t)max + 1));
}

/* Delay before attempt failures+1: retry_min x 2^(failures-1), capped
 * at retry_max. */
static long
lc_backoff(const struct lifecycle_sched *sc, long failures)
{
	long d = sc->retry_min_seconds > 0 ? sc->retry_min_seconds : 1;

	while (--failures > 0 && d < sc->retry_max_seconds)
		d *= 2;
	return d < sc->retry_max_seconds ? d : sc->retry_max_seconds;
}

/* Queues an event for after the commit: appends [ev, data] (steals
 * data). 0 or -1. */
static int
lc_event_add(json_t *events, enum lifecycle_event ev, json_t *data)
{
	if (data == NULL)
		return -1;
	return json_array_append_new(events, json_pack("[i, o]", (int)ev,
	    data));
}

/* Sends what lc_event_add queued, once the transaction committed. */
static void
lc_events_send(struct lifecycle *lc, const json_t *events)
{
	const json_t *e;
	size_t i;

	json_array_foreach(events, i, e)
		lifecycle_notify(lc, (enum lifecycle_event)json_integer_value(
		    json_array_get(e, 0)), json_array_get(e, 1));
}

/* Sets crec.notified[what] = n. 0 or -1. */
static int
lc_notified_set(json_t *crec, const char *what, unsigned n)
{
	json_t *nt = json_object_get(crec, "notified");

	if (!json_is_object(nt)) {
		if ((nt = json_object()) == NULL ||
		    json_object_set_new(crec, "notified", nt) == -1)
			return -1;
	}
	return json_object_set_new(nt, what, json_integer(n));
}

/* ---- the plan ---- */

/*
 * What the dates of crec call for at now (no I/O: called on the scanned
 * record to skip quiet ones, then again on the record read inside the
 * transaction). A record whose "due_at_epoch" is null was retired from
 * the due index: what was due was done, and only "expiring" and expiry
 * are left; a record without the key predates due dates.
 */
static void
lc_plan_make(const json_t *crec, time_t now, const struct lifecycle_sched *sc,
    struct lc_plan *p)
{
	const json_t *del = json_object_get(crec, "deletion");
	const json_t *exp = json_object_get(crec, "expiry_check_epoch");
	const json_t *rs = json_object_get(crec, "renewal_state");
	const json_t *nt = json_object_get(crec, "notified");
	const json_t *dj = json_object_get(crec, "due_at_epoch");
	unsigned cur = lc_uint(crec, "current_version");
	bool renewable = lc_renewable(crec);
	json_int_t due, na, warn;
	time_t t;

	memset(p, 0, sizeof(*p));
	if (json_is_object(del)) {
		p->delete_due = lifecycle_time_parse(lc_str(del, "execute_at"),
		    &t) == 0 && t <= now;
		return;
	}
	if (lc_streq(lc_str(crec, "state"), "pending_deletion"))
		return;
	if (exp == NULL ? lc_uint(crec, "latest_version") != 0 :
	    json_is_integer(exp) && json_integer_value(exp) <= (json_int_t)now)
		p->expire = true;
	if (cur == 0 || lc_streq(lc_str(crec, "stage"), "revoked")) {
		/* nothing falls due for a revoked current version; a
		 * promotion gives the certificate a due date again */
		p->retire = json_is_integer(dj);
		return;
	}
	/* a renewable certificate is never retired (a retired one is
	 * given its due date back) */
	if (!json_is_integer(dj) && (dj == NULL || renewable)) {
		p->refresh_due = true;
		return;
	}
	due = json_integer_value(dj);
	na = lc_int(crec, "not_after_epoch");
	warn = (json_int_t)(sc->expiry_warning_days * LC_DAY);
	if (renewable) {
		/* a renewal waiting for promotion is not renewed again */
		if (lc_uint(crec, "pending_version") > cur ||
		    (json_int_t)now < due)
			return;
		p->window = lc_uint(nt, "renewal_window") != cur;
		if (!json_is_object(rs) ||
		    lifecycle_time_parse(lc_str(rs, "next_attempt_at"), &t) ==
		    -1)
			p->schedule = true;
		else
			p->renew = t <= now;
		p->expiring = lc_int(rs, "failures") > 0 &&
		    na - warn <= (json_int_t)now &&
		    lc_uint(nt, "expiring") != cur;
		return;
	}
	if (json_is_integer(dj) && (json_int_t)now >= due) {
		p->flag_due = !json_is_true(json_object_get(crec,
		    "renewal_due"));
		p->window = lc_uint(nt, "renewal_window") != cur;
		p->retire = !p->flag_due && !p->window;
	}
	p->expiring = na - warn <= (json_int_t)now &&
	    lc_uint(nt, "expiring") != cur;
}

static bool
lc_plan_any(const struct lc_plan *p)
{
	return p->delete_due || p->expire || p->refresh_due || p->window ||
	    p->flag_due || p->schedule || p->renew || p->expiring ||
	    p->retire;
}

/* True when this tick should handle a certificate with plan p: renewal
 * attempts wait for the next tick once LIFECYCLE_TICK_RENEW_MAX were
 * made, everything else is done. */
static bool
lc_plan_wanted(const struct lc_walk *w, const struct lc_plan *p)
{
	struct lc_plan q = *p;

	if (w->renewed >= LIFECYCLE_TICK_RENEW_MAX)
		q.renew = false;
	return lc_plan_any(&q);
}

/* ---- the steps, inside the certificate's transaction ---- */

/*
 * Marks the versions of crec whose notAfter passed "expired" (the
 * certificate's stage too when it was the current one) and sets
 * crec.expiry_check_epoch to the earliest notAfter still ahead (null
 * when no version is live). Audited as "version.expire".
 */
static int
lc_step_expire(struct store_txn *txn, json_t *crec, time_t now)
{
	const char *id = lc_str(crec, "id"), *stage;
	char list[LC_TEXT_MAX];
	json_t *versions, *v, *next = json_null();
	json_int_t na, min = 0;
	unsigned n;
	size_t i, off = 0, count = 0;
	int rc = -1, w;

	if ((versions = store_version_list(store_txn_store(txn), txn,
	    id)) == NULL)
		return -1;
	list[0] = '\0';
	json_array_foreach(versions, i, v) {
		stage = lc_str(v, "stage");
		if (!lc_streq(stage, "pending") && !lc_streq(stage,
		    "current") && !lc_streq(stage, "previous"))
			continue;
		na = lc_int(v, "not_after_epoch");
		n = lc_uint(v, "version");
		if (na > (json_int_t)now) {
			if (min == 0 || na < min)
				min = na;
			continue;
		}
		if (json_object_set_new(v, "stage", json_string("expired")) ==
		    -1 || store_version_put(txn, id, n, v) == -1)
			goto out;
		if (n == lc_uint(crec, "current_version") &&
		    json_object_set_new(crec, "stage",
		    json_string("expired")) == -1)
			goto out;
		if (n == lc_uint(crec, "pending_version"))
			json_object_del(crec, "pending_version");
		w = snprintf(list + off, sizeof(list) - off, "%s%u",
		    count > 0 ? ", " : "", n);
		if (w > 0 && (size_t)w < sizeof(list) - off)
			off += (size_t)w;
		count++;
	}
	if (min != 0)
		next = json_integer(min);
	if (json_object_set_new(crec, "expiry_check_epoch", next) == -1)
		goto out;
	if (count > 0 && lifecycle_audit(txn, LIFECYCLE_WHO_SCHEDULER,
	    "version.expire", id, "version%s %s passed notAfter",
	    count > 1 ? "s" : "", list) == -1)
		goto out;
	rc = 0;
out:
	json_decref(versions);
	return rc;
}

/* Computes the due date of a record written before pkid kept one. */
static int
lc_step_refresh_due(struct store_txn *txn, json_t *crec)
{
	char due[LIFECYCLE_TIME_MAX];
	json_t *v;
	json_int_t d;
	int rc = -1;

	if ((v = store_version_get(store_txn_store(txn), txn,
	    lc_str(crec, "id"), lc_uint(crec, "current_version"))) == NULL)
		return -1;
	d = lifecycle_due_epoch(crec, v);
	common_time_rfc3339((time_t)d, due, sizeof(due));
	if (json_object_set_new(crec, "due_at", json_string(due)) == 0 &&
	    json_object_set_new(crec, "due_at_epoch", json_integer(d)) == 0)
		rc = 0;
	json_decref(v);
	return rc;
}

/* The detail of a renewal_window event, by who renews. */
static void
lc_window_detail(const json_t *crec, char *out, size_t outlen)
{
	const char *origin = lc_str(crec, "origin"), *mode = lc_str(crec,
	    "mode");

	if (lc_renewable(crec))
		snprintf(out, outlen, "renewal window opened at %s; pkid "
		    "renews it", lc_str(crec, "due_at"));
	else if (lc_streq(origin, "acme") || lc_streq(origin, "est"))
		snprintf(out, outlen, "renewal window opened at %s; its %s "
		    "client renews it", lc_str(crec, "due_at"),
		    lc_streq(origin, "acme") ? "ACME" : "EST");
	else
		snprintf(out, outlen, "renewal due since %s; pkid cannot "
		    "renew %s certificates without their key: renew it "
		    "outside and sign or import the new one",
		    lc_str(crec, "due_at"), mode != NULL ? mode : "?");
}

/* Applies the plan's flags and notices to crec (stored by the caller). */
static int
lc_step_notices(struct lc_tick_one *t, json_t *crec,
    const struct lc_plan *p)
{
	char detail[LC_TEXT_MAX], when[LIFECYCLE_TIME_MAX];
	unsigned cur = lc_uint(crec, "current_version");
	json_int_t next, na;
	json_t *rs, *ev;

	if (p->flag_due && json_object_set_new(crec, "renewal_due",
	    json_true()) == -1)
		return -1;
	if (p->window) {
		lc_window_detail(crec, detail, sizeof(detail));
		if ((ev = lifecycle_event_data(crec, NULL, detail)) == NULL)
			return -1;
		if (lc_copy_field(ev, crec, "due_at", "due_at") == -1) {
			json_decref(ev);
			return -1;
		}
		if (lc_notified_set(crec, "renewal_window", cur) == -1 ||
		    lc_event_add(t->events, LIFECYCLE_EV_RENEWAL_WINDOW,
		    ev) == -1)
			return -1;
	}
	if (p->expiring) {
		na = lc_int(crec, "not_after_epoch");
		snprintf(detail, sizeof(detail), "expires at %s (in %.1f "
		    "days) and %s", lc_str(crec, "not_after"),
		    (double)(na - (json_int_t)t->now) / LC_DAY,
		    lc_renewable(crec) ? "its renewal keeps failing" :
		    "pkid cannot renew it");
		if (lc_notified_set(crec, "expiring", cur) == -1 ||
		    lc_event_add(t->events, LIFECYCLE_EV_EXPIRING,
		    lifecycle_event_data(crec, NULL, detail)) == -1)
			return -1;
	}
	if (p->schedule) {
		/* the first attempt waits for a random share of the jitter
		 * so that certificates issued together are not renewed in
		 * one burst */
		next = lc_int(crec, "due_at_epoch") + t->jitter;
		common_time_rfc3339((time_t)next, when, sizeof(when));
		if ((rs = json_pack("{s:s, s:i, s:n, s:n}", "next_attempt_at",
		    when, "failures", 0, "last_error", "last_attempt_at")) ==
		    NULL || json_object_set_new(crec, "renewal_state", rs) ==
		    -1)
			return -1;
		t->renew = next <= (json_int_t)t->now;
	}
	if (p->renew)
		t->renew = true;
	return 0;
}

/*
 * One certificate's transaction: re-reads the record, marks expired
 * versions, then applies what the plan asks on the fresh record, retires
 * it from the due index when nothing due is left, and stores it when
 * something changed. t->renew says whether to attempt a renewal after
 * the commit.
 */
static int
lc_tick_one_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_tick_one *t = arg;
	struct lc_plan p;
	json_t *crec = NULL;
	bool changed = false;
	int rc = -1;

	t->renew = false;
	json_array_clear(t->events);
	if ((crec = store_cert_get(store_txn_store(txn), txn, t->id)) ==
	    NULL) {
		rc = 0;		/* deleted meanwhile: nothing to do */
		goto out;
	}
	lc_plan_make(crec, t->now, t->sc, &p);
	if (p.delete_due) {
		rc = 0;		/* the caller executes it */
		goto out;
	}
	if (p.expire) {
		if (lc_step_expire(txn, crec, t->now) == -1)
			goto out;
		changed = true;
	}
	if (p.refresh_due) {
		if (lc_step_refresh_due(txn, crec) == -1)
			goto out;
		changed = true;
	}
	if (p.expire || p.refresh_due)
		lc_plan_make(crec, t->now, t->sc, &p);
	if (p.flag_due && lifecycle_audit(txn, LIFECYCLE_WHO_SCHEDULER,
	    "certificate.renewal_due", t->id, "version %u due since %s; "
	    "mode %s origin %s: pkid does not renew it",
	    lc_uint(crec, "current_version"), lc_str(crec, "due_at"),
	    lc_str(crec, "mode"), lc_str(crec, "origin")) == -1)
		goto out;
	if (p.flag_due || p.window || p.expiring || p.schedule) {
		if (lc_step_notices(t, crec, &p) == -1) {
			common_error_set(err, COMMON_E_INTERNAL,
			    "out of memory");
			goto out;
		}
		changed = true;
	} else if (p.renew)
		t->renew = true;
	/* once what fell due is done, the record leaves the due index */
	lc_plan_make(crec, t->now, t->sc, &p);
	if (p.retire) {
		if (json_object_set_new(crec, "due_at_epoch", json_null()) ==
		    -1) {
			common_error_set(err, COMMON_E_INTERNAL,
			    "out of memory");
			goto out;
		}
		changed = true;
	}
	if (changed && store_cert_put(txn, t->id, crec) == -1)
		goto out;
	rc = 0;
out:
	json_decref(crec);
	return rc;
}

/*
 * Records a failed renewal attempt: failures + 1, the error, and the
 * next attempt after the backoff; audited "certificate.renew" failed.
 * Nothing else of the certificate changes.
 */
static int
lc_tick_fail_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_tick_fail *f = arg;
	char when[LIFECYCLE_TIME_MAX], next_at[LIFECYCLE_TIME_MAX];
	json_t *crec = NULL, *rs;
	json_int_t failures;
	long delay;
	int rc = -1;

	json_decref(f->event);
	f->event = NULL;
	if ((crec = store_cert_get(store_txn_store(txn), txn, f->id)) ==
	    NULL) {
		rc = 0;		/* deleted meanwhile */
		goto out;
	}
	failures = lc_int(json_object_get(crec, "renewal_state"),
	    "failures") + 1;
	delay = lc_backoff(f->sc, (long)failures);
	common_time_rfc3339(f->now, when, sizeof(when));
	common_time_rfc3339(f->now + delay, next_at, sizeof(next_at));
	if ((rs = json_pack("{s:s, s:I, s:s, s:s}", "next_attempt_at",
	    next_at, "failures", failures, "last_error", f->error,
	    "last_attempt_at", when)) == NULL ||
	    json_object_set_new(crec, "renewal_state", rs) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	if (store_cert_put(txn, f->id, crec) == -1)
		goto out;
	if (lifecycle_audit_result(txn, LIFECYCLE_WHO_SCHEDULER,
	    "certificate.renew", f->id, "failed", "attempt %lld failed: %s; "
	    "next attempt at %s", (long long)failures, f->error, next_at) ==
	    -1)
		goto out;
	if ((f->event = lifecycle_event_data(crec, NULL, f->error)) == NULL ||
	    json_object_set_new(f->event, "failures",
	    json_integer(failures)) == -1 ||
	    json_object_set_new(f->event, "next_attempt_at",
	    json_string(next_at)) == -1) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(crec);
	return rc;
}

/* A scheduled renewal of id: the renewal itself (audited and notified by
 * lifecycle_cert_renew), or the failure's record and notification. */
static void
lc_tick_renew(struct lifecycle *lc, const struct lifecycle_sched *sc,
    const char *id, time_t now)
{
	struct common_error err, ferr;
	struct lc_tick_fail f;
	json_t *v;

	common_error_clear(&err);
	if ((v = lifecycle_cert_renew(lc, id, LIFECYCLE_WHO_SCHEDULER,
	    &err)) != NULL) {
		log_info("lifecycle: scheduler renewed certificate %s: version "
		    "%lld (%s)", id, (long long)lc_int(v, "version"),
		    lc_str(v, "stage"));
		json_decref(v);
		return;
	}
	log_warn("lifecycle: scheduler: renewal of certificate %s failed: %s",
	    id, err.msg);
	memset(&f, 0, sizeof(f));
	f.lc = lc;
	f.sc = sc;
	f.id = id;
	f.now = now;
	f.error = err.msg;
	common_error_clear(&ferr);
	if (lifecycle_txn_run(lc, lc_tick_fail_txn, &f, &ferr) == -1)
		log_err("lifecycle: scheduler: certificate %s: recording the "
		    "failed renewal failed: %s", id, ferr.msg);
	else if (f.event != NULL)
		lifecycle_notify(lc, LIFECYCLE_EV_RENEWAL_FAILED, f.event);
	json_decref(f.event);
}

/* Handles one scanned certificate when its plan asks for something this
 * tick; counts it in w->handled (and its renewal in w->renewed). */
static void
lc_tick_cert(struct lc_walk *w, const json_t *scanned)
{
	struct common_error err;
	struct lc_tick_one t;
	struct lc_plan p;
	const char *id = lc_str(scanned, "id");

	lc_plan_make(scanned, w->now, w->sc, &p);
	if (id == NULL || !lc_plan_wanted(w, &p))
		return;
	w->handled++;
	common_error_clear(&err);
	if (p.delete_due) {
		if (lifecycle_deletion_execute(w->lc, id, &err) == -1)
			log_err("lifecycle: scheduler: deleting certificate "
			    "%s failed: %s", id, err.msg);
		return;
	}
	memset(&t, 0, sizeof(t));
	t.lc = w->lc;
	t.sc = w->sc;
	t.id = id;
	t.now = w->now;
	t.jitter = lc_jitter(w->sc->renewal_jitter_seconds);
	if ((t.events = json_array()) == NULL) {
		log_err("lifecycle: scheduler: certificate %s: out of memory",
		    id);
		return;
	}
	if (lifecycle_txn_run(w->lc, lc_tick_one_txn, &t, &err) == -1) {
		log_err("lifecycle: scheduler: certificate %s: %s", id,
		    err.msg);
		json_decref(t.events);
		return;
	}
	lc_events_send(w->lc, t.events);
	json_decref(t.events);
	/* past the budget the attempt waits for the next tick: the record
	 * stays due */
	if (t.renew && w->renewed < LIFECYCLE_TICK_RENEW_MAX) {
		lc_tick_renew(w->lc, w->sc, id, w->now);
		w->renewed++;
	}
}

/* ---- reading stored records unparsed (the walks' prefilters) ---- */

/*
 * The prefilters see a certificate record as the store keeps it:
 * compact JSON with sorted keys. A quoted key followed by ':' cannot
 * occur inside a string value (its quotes would be escaped), so a key
 * the record schema holds once is found by a plain search. Whenever the
 * text is not as expected they answer "parse it": a prefilter may only
 * spare records that need nothing.
 */
enum lc_text_value {
	LC_TV_INT,	/* an integer, in *out */
	LC_TV_NULL,
	LC_TV_ABSENT,
	LC_TV_OTHER	/* another type, or the key occurs twice */
};

/* True when the quoted key pattern pat (with its ':') occurs in text;
 * *at (may be NULL) is the first occurrence, *twice says whether there
 * is another. */
static bool
lc_text_find(const char *text, size_t len, const char *pat,
    const char **at, bool *twice)
{
	size_t plen = strlen(pat);
	const char *first, *rest;

	if ((first = memmem(text, len, pat, plen)) == NULL)
		return false;
	rest = first + plen;
	if (at != NULL)
		*at = first;
	if (twice != NULL)
		*twice = memmem(rest, len - (size_t)(rest - text), pat,
		    plen) != NULL;
	return true;
}

/* The value of the key pattern pat in the record text. */
static enum lc_text_value
lc_text_int(const char *text, size_t len, const char *pat, json_int_t *out)
{
	const char *at, *p, *end = text + len;
	json_int_t v = 0;
	size_t digits = 0;
	bool twice, neg = false;

	if (!lc_text_find(text, len, pat, &at, &twice))
		return LC_TV_ABSENT;
	if (twice)
		return LC_TV_OTHER;
	p = at + strlen(pat);
	if ((size_t)(end - p) >= 4 && memcmp(p, "null", 4) == 0)
		return LC_TV_NULL;
	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (++digits > LC_EPOCH_DIGITS_MAX)
			return LC_TV_OTHER;
		v = v * 10 + (*p - '0');
	}
	/* a number ends the value: a fraction or exponent is another type */
	if (digits == 0 || p == end || (*p != ',' && *p != '}'))
		return LC_TV_OTHER;
	*out = neg ? -v : v;
	return LC_TV_INT;
}

/* Whether expiry_check_epoch in the text may have passed. */
static bool
lc_text_expiry_due(const char *text, size_t len, time_t now)
{
	json_int_t v;

	switch (lc_text_int(text, len, "\"expiry_check_epoch\":", &v)) {
	case LC_TV_INT:
		return v <= (json_int_t)now;
	case LC_TV_NULL:
		return false;	/* no live version left */
	default:
		return true;	/* an older record, or unexpected */
	}
}

/*
 * The sweep's prefilter: what the indexed walks cannot see. A scheduled
 * deletion, a version that may have expired (previous versions expire
 * before the current one's notAfter, where neither index looks), or a
 * record without a due date (written by an older pkid).
 */
static bool
lc_prefilter_sweep(const void *data, size_t len, void *arg)
{
	const struct lc_walk *w = arg;
	const char *text = data;

	return lc_text_find(text, len, "\"deletion\":{", NULL, NULL) ||
	    !lc_text_find(text, len, "\"due_at_epoch\":", NULL, NULL) ||
	    lc_text_expiry_due(text, len, w->now);
}

/*
 * The expiry walk's prefilter: a version that may have expired, or an
 * "expiring" notice not sent for the current version yet ("expiring"
 * sorts first in "notified").
 */
static bool
lc_prefilter_expiry(const void *data, size_t len, void *arg)
{
	const struct lc_walk *w = arg;
	const char *text = data;
	json_int_t cur, sent;

	if (lc_text_expiry_due(text, len, w->now))
		return true;
	return lc_text_int(text, len, "\"current_version\":", &cur) !=
	    LC_TV_INT || lc_text_int(text, len,
	    "\"notified\":{\"expiring\":", &sent) != LC_TV_INT || sent != cur;
}

/* The due walk's filter: what the plan wants done now. */
static bool
lc_filter_due(const json_t *rec, void *arg)
{
	const struct lc_walk *w = arg;
	struct lc_plan p;

	lc_plan_make(rec, w->now, w->sc, &p);
	return lc_plan_wanted(w, &p);
}

/* The expiry walk's filter: certificates pkid does not renew (what a
 * renewable one needs falls due first, so the due walk does it). */
static bool
lc_filter_expiry(const json_t *rec, void *arg)
{
	return !lc_renewable(rec) && lc_filter_due(rec, arg);
}

/* The sweep's filter: what only the sweep finds. */
static bool
lc_filter_sweep(const json_t *rec, void *arg)
{
	const struct lc_walk *w = arg;
	struct lc_plan p;

	lc_plan_make(rec, w->now, w->sc, &p);
	return p.delete_due || p.expire || p.refresh_due;
}

/* ---- the walks ---- */

enum lc_walk_end {
	LC_WALK_ERROR = -1,
	LC_WALK_DONE,		/* the range was walked to its end */
	LC_WALK_STOPPED		/* the tick's budget ran out */
};

/*
 * Handles the certificates of range that filter keeps (the plan wants
 * them handled), page by page from position after (NULL or "": the start of the range), until the
 * range ends or the tick has handled LIFECYCLE_TICK_SCAN_MAX. When
 * stopped, *stop (to free(); NULL: nothing was walked) is where to go
 * on from.
 */
static enum lc_walk_end
lc_walk_range(struct lc_walk *w, const struct store_range *range,
    bool (*filter)(const json_t *, void *), const char *after, char **stop)
{
	struct store_page page;
	enum lc_walk_end end = LC_WALK_ERROR;
	char *pos = NULL, *next = NULL;
	json_t *list;
	size_t i;

	*stop = NULL;
	if (after != NULL && after[0] != '\0' &&
	    (pos = strdup(after)) == NULL) {
		log_err("lifecycle: scheduler: out of memory");
		goto out;
	}
	for (;;) {
		if (w->handled >= LIFECYCLE_TICK_SCAN_MAX) {
			*stop = pos;	/* steal */
			pos = NULL;
			end = LC_WALK_STOPPED;
			break;
		}
		memset(&page, 0, sizeof(page));
		page.after = pos;
		page.limit = LIFECYCLE_TICK_SCAN_MAX - w->handled;
		page.filter = filter;
		page.arg = w;
		if ((list = store_cert_scan(w->st, NULL, range, &page,
		    &next)) == NULL) {
			log_err("lifecycle: scheduler: cannot read the "
			    "certificates");
			goto out;
		}
		for (i = 0; i < json_array_size(list); i++)
			lc_tick_cert(w, json_array_get(list, i));
		json_decref(list);
		free(pos);
		pos = next;	/* steal */
		next = NULL;
		if (pos == NULL) {
			end = LC_WALK_DONE;
			break;
		}
	}
out:
	free(pos);
	free(next);
	return end;
}

/* Certificates due for renewal (or past due and not retired): the due
 * index up to now, from its start every tick (what was handled is quiet
 * or retired by then). */
static int
lc_walk_due(struct lc_walk *w)
{
	unsigned char hi[STORE_TIME_KEY_LEN];
	struct store_range range;
	char *stop = NULL;
	enum lc_walk_end end;

	store_time_key(w->now, hi);
	memset(&range, 0, sizeof(range));
	range.index = STORE_CERT_BY_DUE;
	range.hi = hi;
	range.hi_len = sizeof(hi);
	range.hi_inclusive = true;
	end = lc_walk_range(w, &range, lc_filter_due, NULL, &stop);
	free(stop);
	return end == LC_WALK_ERROR ? -1 : 0;
}

/* The epoch in text (decimal, as the scheduler writes it). 0 or -1. */
static int
lc_epoch_parse(const char *text, time_t *out)
{
	long long v;
	char *end;

	if (text == NULL || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = (time_t)v;
	return 0;
}

/* The scheduler's positions, read at the start of a tick and stored at
 * its end when they changed. */
struct lc_positions {
	char	*expiry;	/* LC_META_EXPIRY */
	char	*cursor;	/* LC_META_CURSOR */
	char	*sweep_at;	/* LC_META_SWEEP_AT */
	char	 expiry_new[LC_META_VALUE_MAX];
	char	 cursor_new[LC_META_VALUE_MAX];
	char	 sweep_at_new[LC_META_VALUE_MAX];
};

/*
 * Certificates expiring within expiry_warning_days (for "expiring") or
 * expired since the last tick: the not_after index from where the last
 * tick stopped up to now + the warning. A first tick (or a clock set
 * back) starts at now: anything that expired before is past due and
 * the due walk's.
 */
static int
lc_walk_expiry(struct lc_walk *w, struct lc_positions *pos)
{
	unsigned char lo[STORE_TIME_KEY_LEN], hi[STORE_TIME_KEY_LEN];
	struct store_range range;
	const char *after = NULL;
	char *stop = NULL;
	time_t done = w->now - 1;
	enum lc_walk_end end;
	int rc = -1;

	memset(&range, 0, sizeof(range));
	range.index = STORE_CERT_BY_NOT_AFTER;
	range.prefilter = lc_prefilter_expiry;
	store_time_key(w->now + (time_t)(w->sc->expiry_warning_days * LC_DAY),
	    hi);
	range.hi = hi;
	range.hi_len = sizeof(hi);
	range.hi_inclusive = true;
	if (pos->expiry != NULL && strncmp(pos->expiry,
	    LC_EXPIRY_DONE_PREFIX, strlen(LC_EXPIRY_DONE_PREFIX)) == 0) {
		if (lc_epoch_parse(pos->expiry +
		    strlen(LC_EXPIRY_DONE_PREFIX), &done) == -1 ||
		    done > w->now)
			done = w->now - 1;
	} else if (pos->expiry != NULL && store_cert_token_valid(&range,
	    pos->expiry))
		after = pos->expiry;
	if (after == NULL) {
		store_time_key(done + 1, lo);
		range.lo = lo;
		range.lo_len = sizeof(lo);
	}
	if ((end = lc_walk_range(w, &range, lc_filter_expiry, after,
	    &stop)) == LC_WALK_ERROR)
		goto out;
	if (end == LC_WALK_DONE)
		snprintf(pos->expiry_new, sizeof(pos->expiry_new), "%s%lld",
		    LC_EXPIRY_DONE_PREFIX, (long long)w->now);
	else if (stop != NULL)
		snprintf(pos->expiry_new, sizeof(pos->expiry_new), "%s", stop);
	else
		snprintf(pos->expiry_new, sizeof(pos->expiry_new), "%s",
		    pos->expiry != NULL ? pos->expiry : "");
	rc = 0;
out:
	free(stop);
	return rc;
}

/*
 * The sweep over the whole table by id: one goes on where the last one
 * stopped; a new one starts LIFECYCLE_TICK_SWEEP_SECONDS after the last
 * began (at once when the clock was set back).
 */
static int
lc_walk_sweep(struct lc_walk *w, struct lc_positions *pos)
{
	struct store_range range;
	const char *after = NULL;
	char *stop = NULL;
	time_t began;
	enum lc_walk_end end;
	int rc = -1;

	memset(&range, 0, sizeof(range));
	range.index = STORE_CERT_BY_ID;
	range.prefilter = lc_prefilter_sweep;
	snprintf(pos->cursor_new, sizeof(pos->cursor_new), "%s",
	    pos->cursor != NULL ? pos->cursor : "");
	snprintf(pos->sweep_at_new, sizeof(pos->sweep_at_new), "%s",
	    pos->sweep_at != NULL ? pos->sweep_at : "");
	if (pos->cursor != NULL && pos->cursor[0] != '\0' &&
	    store_cert_token_valid(&range, pos->cursor))
		after = pos->cursor;
	else if (lc_epoch_parse(pos->sweep_at, &began) == 0 &&
	    began <= w->now && w->now - began < LIFECYCLE_TICK_SWEEP_SECONDS)
		return 0;
	if ((end = lc_walk_range(w, &range, lc_filter_sweep, after,
	    &stop)) == LC_WALK_ERROR)
		goto out;
	if (after == NULL && (end == LC_WALK_DONE || stop != NULL))
		snprintf(pos->sweep_at_new, sizeof(pos->sweep_at_new), "%lld",
		    (long long)w->now);
	if (end == LC_WALK_DONE)
		pos->cursor_new[0] = '\0';
	else if (stop != NULL)
		snprintf(pos->cursor_new, sizeof(pos->cursor_new), "%s", stop);
	rc = 0;
out:
	free(stop);
	return rc;
}

/* Stores the positions that changed. */
static int
lc_positions_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	const struct lc_positions *pos = arg;

	(void)err;
	if (pos->expiry_new[0] != '\0' && !lc_streq(pos->expiry_new,
	    pos->expiry) && store_meta_put(txn, LC_META_EXPIRY,
	    pos->expiry_new) == -1)
		return -1;
	if (!lc_streq(pos->cursor_new, pos->cursor != NULL ? pos->cursor :
	    "") && store_meta_put(txn, LC_META_CURSOR, pos->cursor_new) == -1)
		return -1;
	if (pos->sweep_at_new[0] != '\0' && !lc_streq(pos->sweep_at_new,
	    pos->sweep_at) && store_meta_put(txn, LC_META_SWEEP_AT,
	    pos->sweep_at_new) == -1)
		return -1;
	return 0;
}

/*
 * One scheduler pass: the due walk, the expiry walk and (when its time
 * came) the sweep, handling at most LIFECYCLE_TICK_SCAN_MAX certificates
 * and LIFECYCLE_TICK_RENEW_MAX renewal attempts (slow: key generation
 * and signing) in all; what is left waits for the next tick.
 */
int
lifecycle_tick(struct lifecycle *lc)
{
	struct lifecycle_sched sc;
	struct lc_positions pos;
	struct common_error err;
	struct lc_walk w;
	int rc = 0;

	lifecycle_sched_get(lc, &sc);
	memset(&w, 0, sizeof(w));
	w.lc = lc;
	w.st = lifecycle_store(lc);
	w.sc = &sc;
	w.now = common_now();
	memset(&pos, 0, sizeof(pos));
	pos.expiry = store_meta_get(w.st, NULL, LC_META_EXPIRY);
	pos.cursor = store_meta_get(w.st, NULL, LC_META_CURSOR);
	pos.sweep_at = store_meta_get(w.st, NULL, LC_META_SWEEP_AT);
	if (lc_walk_due(&w) == -1)
		rc = -1;
	if (lc_walk_expiry(&w, &pos) == -1)
		rc = -1;
	if (lc_walk_sweep(&w, &pos) == -1)
		rc = -1;
	common_error_clear(&err);
	if (lifecycle_txn_run(lc, lc_positions_txn, &pos, &err) == -1)
		log_err("lifecycle: scheduler: saving the scan positions "
		    "failed: %s", err.msg);
	free(pos.expiry);
	free(pos.cursor);
	free(pos.sweep_at);
	return rc;
}
