/*
 * lifecycle/ — certificate objects and their versions, resources and
 * associations. Every change to a certificate (issue, import, renew,
 * revoke, delete) goes through here: it calls ca/ to sign or revoke and
 * records the result in the same store transaction, so the inventory can
 * never miss a certificate.
 *
 * Tables owned here: `certificate`, `version`, `key`, `resource`,
 * `association`, `audit`.
 *
 * Certificate record (table `certificate`):
 *   {"id", "name", "mode": "managed"|"external"|"imported", "origin":
 *    "mgmt"|"acme"|"est", "ca_id" (null for imported from outside),
 *    "profile", "subject", "sans": [..], "key_algorithm",
 *    "validity_days", "renewal": {"renew_before_days" | "renew_at_fraction",
 *    "reuse_key" (managed)} (null for ACME/EST: their clients renew),
 *    "current_version", "latest_version", "created_at",
 *    "state": "active"|"pending_deletion", "deletion": {"scheduled_at",
 *    "execute_at", "scheduled_by"} | null, "due_at" + "due_at_epoch"
 *    (renewal due: not_after - renew_before, not_before + fraction x
 *    lifetime, or for ACME/EST the ARI window start not_after -
 *    lifetime/3; "due_at_epoch" becomes null once the scheduler has
 *    done all that falls due for the version: retired from the due
 *    index), "renewal_due" (bool: past due_at, pkid cannot renew),
 *    "renewal_state": {"next_attempt_at", "failures", "last_error",
 *    "last_attempt_at"} (scheduler, managed), and for the scheduler only
 *    "notified": {"renewal_window": n, "expiring": n} (versions whose
 *    event was sent), "expiry_check_epoch" (earliest notAfter of a
 *    live version; null: none) and "pending_version" (a renewal waiting
 *    for promotion)}
 * Version record (table `version`):
 *   {"certificate_id", "version", "serial", "stage": "pending"|"current"|
 *    "previous"|"revoked"|"failed"|"expired", "not_before", "not_after",
 *    "not_before_epoch", "not_after_epoch",
 *    "certificate" (PEM), "chain" (PEM), "key_id" (managed only),
 *    "revoked_at", "revocation_reason", "created_at", "pruned" (true once
 *    lifecycle.history_limit removed its PEMs and key)}
 *
 * Every function returns new JSON references (caller decrefs) or NULL /
 * -1 with err set; "who" names the actor for the audit trail
 * ("token:<sub>", "acme:<account>", "est:<user>").
 */
#ifndef PKID_LIFECYCLE_H
#define PKID_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ca/ca.h"
#include "common/common.h"
#include "store/store.h"

#define LIFECYCLE_NAME_MAX	128
#define LIFECYCLE_PAGE_MAX	1000
#define LIFECYCLE_PAGE_DEFAULT	100

struct lifecycle;
struct event_base;
struct conf;

struct lifecycle_config {
	double	default_validity_days;	/* when a request names none */
	double	default_renew_before_days;
	const struct conf *conf;	/* the whole configuration (lifecycle.*,
					   crl.*, notifications.*), borrowed;
					   NULL: built-in defaults */
};

/* Borrows ctx (and its store); NULL on allocation failure. */
struct lifecycle *lifecycle_new(struct ca_ctx *ctx,
    const struct lifecycle_config *cfg);
void lifecycle_free(struct lifecycle *lc);

/*
 * Creates a certificate from a management-API style request object:
 *   managed:  {"name", "mode": "managed", "ca_id", "profile", "subject",
 *              "sans", "key_algorithm", "validity_days", "renewal"}
 *   external: {"name", "mode": "external", "ca_id", "profile",
 *              "validity_days", "csr"} (subject and SANs come from the CSR
 *              unless given, and then must match it)
 *   imported: {"name", "mode": "imported", "certificate", "private_key",
 *              "chain"} (key must match the certificate)
 * Unknown fields, wrong types and bad values are COMMON_E_INVALID naming
 * the field. Version 1 is created "current". Returns the certificate
 * record with "current" (its current version, without private key).
 */
json_t *lifecycle_cert_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err);

/*
 * Issues a certificate for a protocol door (ACME finalize, EST enroll):
 * the public key, subject and SANs were validated by the caller. Creates
 * (or, when cert_id names an existing certificate, adds a version to) an
 * inventory entry with mode "external" and the given origin. Returns the
 * version record (with "certificate" and "chain" PEM).
 */
struct lifecycle_issue_req {
	const char		*ca_id;
	const char		*cert_id;	/* NULL: new inventory entry */
	const char		*name;		/* NULL: derived from first SAN */
	EVP_PKEY		*pubkey;
	const char		*subject;
	const char *const	*sans;
	size_t			 nsans;
	enum ca_profile		 profile;
	double			 validity_days;
	const char		*origin;	/* "acme" | "est" | "mgmt" */
	bool			 name_is_hint;	/* name may take a " (<id>)"
						   suffix when taken, as a
						   derived one does */
	const X509_PUBKEY	*spki;		/* NULL, or pubkey as received
						   (the CSR's): the version's
						   public_key is its DER, with
						   no key re-encoding */
	X509			**issued;	/* NULL, or receives the new
						   certificate (X509_free) so
						   that the caller need not
						   parse "certificate" back;
						   what it held is freed first
						   and it is NULL on failure */
};
json_t *lifecycle_issue(struct lifecycle *lc,
    const struct lifecycle_issue_req *req, const char *who,
    struct common_error *err);
/*
 * lifecycle_issue inside the caller's transaction (so ACME finalize marks
 * the order valid in the same transaction that records the certificate).
 * Same semantics; err is cleared first and each call starts afresh, so
 * the caller's store_txn_run may retry it as a whole. A refusal (any code
 * but COMMON_E_INTERNAL) has written nothing in txn: the caller may
 * record its own verdict (an invalid order) and commit. After
 * COMMON_E_INTERNAL the caller must abort.
 */
json_t *lifecycle_issue_txn(struct lifecycle *lc, struct store_txn *txn,
    const struct lifecycle_issue_req *req, const char *who,
    struct common_error *err);

/*
 * Revokes the certificate with this serial (hex, any case; the registry
 * keeps upper-case) in one transaction: the registry row, the inventory
 * version holding it (stage "revoked", and the certificate's stage when
 * it was current) and an audit record. Returns {"serial", "ca_id",
 * "cert_id", "version"} (cert_id/version null when no inventory version
 * holds the serial any more) or NULL with err: NOTFOUND for an unknown
 * or malformed serial, CONFLICT when already revoked. After commit the
 * issuer's CRL is touched (lifecycle_crl_touch) and "revoked" emitted.
 */
json_t *lifecycle_revoke_serial(struct lifecycle *lc, const char *serial,
    enum ca_reason reason, const char *who, struct common_error *err);
/*
 * The registry record of a serial, for ARI and revocation authorisation:
 * {"serial", "ca_id", "cert_id", "version", "origin", "not_before" (int;
 * derived from the DER on rows that lack it), "not_after" (int),
 * "status": "valid"|"revoked", "der" (base64), "revoked_at", "reason"}.
 * NULL with NOTFOUND for an unknown or malformed serial.
 */
json_t *lifecycle_issued_get(struct lifecycle *lc, const char *serial,
    struct common_error *err);

/* One certificate with "current" (its current version record, no key). */
json_t *lifecycle_cert_get(struct lifecycle *lc, const char *id,
    struct common_error *err);

/* Order of an inventory page. */
enum lifecycle_sort {
	LIFECYCLE_SORT_DEFAULT,	/* by not_after when expiring_within_days is
				   given, else by id */
	LIFECYCLE_SORT_ID,
	LIFECYCLE_SORT_NOT_AFTER, /* ascending, then id; certificates without
				   a current version last */
	LIFECYCLE_SORT__MAX
};

/*
 * Inventory page (lifecycle/query.c). Filters (NULL or "" = any): ca_id,
 * stage (of the current version), origin ("mgmt"|"acme"|"est"), name
 * (case-insensitive substring of the name or any SAN),
 * expiring_within_days (< 0 = any: not_after before now + that many
 * days, expired ones included), renewal_due (-1 = any, 0 = not flagged,
 * 1 = flagged). The walk uses the index of the most selective filter:
 * the not_after index up to the bound for expiring_within_days (or for
 * sort by not_after), else the ca_id or origin index (the smaller when
 * both are given), else the table; the other filters are applied to
 * what it walks. page_token is opaque (from next_page_token of the same
 * query); limit 0 = LIFECYCLE_PAGE_DEFAULT. Returns {"certificates":
 * [...], "next_page_token": ..}; INVALID for a bad limit, filter value
 * or token.
 */
struct lifecycle_query {
	const char		*ca_id;
	const char		*stage;
	const char		*name;
	double			 expiring_within_days;
	const char		*page_token;
	size_t			 limit;
	const char		*origin;
	int			 renewal_due;
	enum lifecycle_sort	 sort;
};
json_t *lifecycle_cert_list(struct lifecycle *lc,
    const struct lifecycle_query *q, struct common_error *err);

#define LIFECYCLE_AUDIT_FILTER_MAX	256	/* bytes of an audit filter */

/*
 * Audit trail page (lifecycle/query.c): records with seq > after, in
 * seq order, whose "action", "object" and "who" equal the filters given
 * (NULL or "" = any; at most LIFECYCLE_AUDIT_FILTER_MAX printable
 * bytes); an object filter walks the audit index by object. limit 0 =
 * LIFECYCLE_PAGE_DEFAULT, at most LIFECYCLE_PAGE_MAX. Returns {"audit":
 * [{"seq", "time", "who", "action", "object", "result", "detail"}...],
 * "next_page_token": the last seq as a decimal string when more may
 * follow, else null}; INVALID for a bad limit or filter.
 */
struct lifecycle_audit_query {
	uint64_t	 after;
	const char	*action;
	const char	*object;
	const char	*who;
	size_t		 limit;
};
json_t *lifecycle_audit_list(struct lifecycle *lc,
    const struct lifecycle_audit_query *q, struct common_error *err);

/* Every version of a certificate, without PEMs or keys. */
json_t *lifecycle_versions(struct lifecycle *lc, const char *id,
    struct common_error *err);
/* One version: {"version", "stage", ..., "certificate", "chain"} plus
 * "private_key" (unencrypted PKCS#8 PEM) when with_key is true and the
 * certificate is managed. */
json_t *lifecycle_version_get(struct lifecycle *lc, const char *id,
    unsigned n, bool with_key, struct common_error *err);
/* New version n+1 of a managed certificate (a new key, or the current
 * one with renewal.reuse_key) or, for external ones, re-signs the last
 * CSR key. It is "pending"; when the certificate has no associations it
 * becomes current at once and the old current becomes previous (with
 * associations it waits for lifecycle_version_promote). Emits "renewed"
 * after commit. Returns the version with PEMs. */
json_t *lifecycle_cert_renew(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);
/* Revokes version n (reason per RFC 5280); after commit asks for the
 * issuer's CRL (lifecycle_crl_touch) and emits "revoked". Returns the
 * version record with stage "revoked" and "ca_id" of the issuer. */
json_t *lifecycle_version_revoke(struct lifecycle *lc, const char *id,
    unsigned n, enum ca_reason reason, const char *who,
    struct common_error *err);
/* Schedules the deletion of a certificate, as
 * lifecycle_cert_delete_schedule does (the answer aside). A certificate
 * that has associations is a conflict whose message names them. */
int lifecycle_cert_delete(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);

/* ---- resources and associations ---- */

/* {"name", "type": "nginx"|"haproxy"|"webhook"|"other", "config": {..}} */
json_t *lifecycle_resource_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err);
json_t *lifecycle_resource_get(struct lifecycle *lc, const char *id,
    struct common_error *err);
json_t *lifecycle_resource_list(struct lifecycle *lc, const char *page_token,
    size_t limit, struct common_error *err);
/* A resource with associations is a conflict naming them. */
int lifecycle_resource_delete(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);

/* {"certificate_id", "resource_id"}: both must exist; a duplicate pair is
 * a conflict. */
json_t *lifecycle_assoc_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err);
json_t *lifecycle_assoc_list(struct lifecycle *lc, const char *cert_id,
    const char *page_token, size_t limit, struct common_error *err);
int lifecycle_assoc_delete(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);

/* The borrowed CA context and its store: protocols read their own tables
 * (accounts, orders, EST clients) and CA certificates through them. */
struct ca_ctx *lifecycle_ca(struct lifecycle *lc);
struct store *lifecycle_store(struct lifecycle *lc);

/* ---- notifications (notify.c) ---- */

#define LIFECYCLE_NOTIFY_QUEUE_MAX	10000	/* deliveries waiting */

enum lifecycle_event {
	LIFECYCLE_EV_RENEWAL_WINDOW,	/* "renewal_window" */
	LIFECYCLE_EV_RENEWED,		/* "renewed" */
	LIFECYCLE_EV_RENEWAL_FAILED,	/* "renewal_failed" */
	LIFECYCLE_EV_DEPLOYMENT_FAILED,	/* "deployment_failed" */
	LIFECYCLE_EV_EXPIRING,		/* "expiring" */
	LIFECYCLE_EV_REVOKED,		/* "revoked" */
	LIFECYCLE_EV__MAX
};

/* The event's name as webhooks see it, NULL when ev is out of range. */
const char *lifecycle_event_name(enum lifecycle_event ev);
/* Parses an event name; -1 when unknown. */
int lifecycle_event_parse(const char *name, enum lifecycle_event *out);

/*
 * Queues a notification (call after the change committed; thread-safe;
 * never blocks on the network; a no-op when no webhook of
 * notifications.webhooks wants ev). data is borrowed and copied:
 * {"certificate_id", "name", "version", "serial", "ca_id", "not_after",
 * "detail", ...}. Before lifecycle_notify_start events wait in the queue
 * (at most LIFECYCLE_NOTIFY_QUEUE_MAX deliveries; past it they are
 * dropped and logged).
 */
void lifecycle_notify(struct lifecycle *lc, enum lifecycle_event ev,
    const json_t *data);
/*
 * Starts webhook delivery on the jobs thread's event base (libcurl multi)
 * and sends what was queued. Call once, after server_new and before the
 * jobs thread runs (or from it). Each webhook POST carries {"event",
 * "time", "id", "data"} with X-Pkid-Event, X-Pkid-Delivery and
 * X-Pkid-Signature: sha256=<hex HMAC-SHA256(secret, body)>; failures are
 * retried with backoff (1, 2, 4, ... s, at most 300 s) up to
 * notifications.retry_max attempts. 0, or -1 when started already or
 * libcurl cannot be set up.
 */
int lifecycle_notify_start(struct lifecycle *lc, struct event_base *jobs_base);
/*
 * Cancels in-flight and queued deliveries and removes every event from
 * the jobs base. Call once the jobs thread no longer runs (after
 * server_run returned) and before the base is freed (server_free);
 * lifecycle_free calls it too. Idempotent.
 */
void lifecycle_notify_stop(struct lifecycle *lc);
/* Deliveries not finished yet: queued, in flight or waiting to retry
 * (for metrics and tests). */
size_t lifecycle_notify_pending(struct lifecycle *lc);

/* ---- deployment through connectors (deploy.c) ---- */

#define LIFECYCLE_WHO_DEPLOY		"system:deploy"	/* audit actor */
#define LIFECYCLE_DEPLOY_QUEUE_MAX	1000	/* versions waiting */
#define LIFECYCLE_DEPLOY_CONTEXTS_MAX	16	/* lifecycle contexts with a
						   deployer at once */

/*
 * Starts deployments on the jobs thread's event base: from then on a
 * pending version of a certificate with associations (a renewal) is
 * deployed to every associated resource whose type has a connector
 * (connectors/connectors.h), one certificate at a time. The results go
 * into the version record, "deployments": [{"resource_id", "result":
 * "ok"|"failed", "detail", "at"}], in one transaction with an audit
 * record "version.deploy" (by LIFECYCLE_WHO_DEPLOY). When every
 * connector succeeded the version is promoted (lifecycle_version_
 * promote) and "renewed" emitted; when one failed the version becomes
 * "failed", the current version stays current, "deployment_failed"
 * is emitted with a detail naming the resource and the reason, and the
 * certificate's "renewal_state" schedules the next renewal with the
 * scheduler's backoff over its consecutive "deploy_failures". Versions
 * whose resources have no connector ("other") stay pending until
 * promoted by hand. Call once, after server_new, like
 * lifecycle_notify_start. 0, or -1 when started already or the events
 * cannot be created.
 */
int lifecycle_deploy_start(struct lifecycle *lc, struct event_base *jobs_base);
/*
 * Abandons deployments in flight (reload commands are killed; their
 * versions stay pending) and removes the deployer's events. Call once
 * the jobs thread no longer runs and before lifecycle_free (which does
 * not know the deployer). Idempotent.
 */
void lifecycle_deploy_stop(struct lifecycle *lc);
/* Asks for version n of certificate cert_id to be deployed (any thread;
 * never blocks). A no-op before lifecycle_deploy_start: the version
 * stays pending. lifecycle_cert_renew calls it for pending renewals. */
void lifecycle_deploy_request(struct lifecycle *lc, const char *cert_id,
    unsigned n);
/* Deployments queued or in flight (for tests and metrics). */
size_t lifecycle_deploy_pending(struct lifecycle *lc);

/* ---- CRL schedule (crl.c) ---- */

/* Asks for the CA's CRL to be rebuilt within crl.debounce_seconds
 * (coalesces bursts); thread-safe, never blocks on a rebuild. Touches
 * before lifecycle_crl_start are rebuilt when it starts. */
void lifecycle_crl_touch(struct lifecycle *lc, const char *ca_id);
/* Starts, on the jobs base, the periodic rebuild of every active CA's CRL
 * every crl.interval_hours (nextUpdate twice that) and the debounce timer
 * of lifecycle_crl_touch. 0, or -1 when started already or the events
 * cannot be created. */
int lifecycle_crl_start(struct lifecycle *lc, struct event_base *jobs_base);
/* Removes the CRL events from the jobs base; same rules as
 * lifecycle_notify_stop. Idempotent. */
void lifecycle_crl_stop(struct lifecycle *lc);
/* nextUpdate - thisUpdate of the CRLs pkid publishes, in seconds:
 * 2 x crl.interval_hours (the default when lc has no configuration). */
long lifecycle_crl_next_update_seconds(struct lifecycle *lc);

/* ---- stages, renewal scheduler, deletion (cert.c, renew.c, delete.c) ---- */

#define LIFECYCLE_WHO_SCHEDULER	"system:scheduler"	/* audit actor */
#define LIFECYCLE_TICK_SCAN_MAX	1000	/* certificates handled per tick */
#define LIFECYCLE_TICK_RENEW_MAX 100	/* renewal attempts per tick */
#define LIFECYCLE_TICK_SWEEP_SECONDS 600 /* between the starts of two
					   sweeps over the whole inventory
					   (renew.c) */

/*
 * Makes version n of a certificate its current version (roll back or
 * forward by hand): n must be "pending" or "previous", unexpired and not
 * pruned (else CONFLICT); the old current version becomes "previous". A
 * version that is current already is answered as is. Returns the version
 * record without PEMs (new reference) or NULL with err.
 */
json_t *lifecycle_version_promote(struct lifecycle *lc, const char *id,
    unsigned n, const char *who, struct common_error *err);

/*
 * One scheduler pass over the certificates whose dates call for
 * something, found through the indexes by due_at_epoch (up to now) and
 * by not_after_epoch (up to now + expiry_warning_days), plus a sweep of
 * the whole inventory every LIFECYCLE_TICK_SWEEP_SECONDS for scheduled
 * deletions and expired previous versions (renew.c says why); at most
 * LIFECYCLE_TICK_SCAN_MAX certificates are handled per pass, the rest
 * in the next. It executes due deletions, marks versions past notAfter
 * "expired", renews due managed certificates (first attempt at due_at +
 * random jitter up to lifecycle.renewal_jitter_seconds, failures
 * retried with exponential
 * backoff between lifecycle.retry_min_seconds and retry_max_seconds, each
 * attempt audited as "certificate.renew" ok/failed by
 * LIFECYCLE_WHO_SCHEDULER), flags external, imported, ACME and EST
 * certificates past due_at "renewal_due", and emits renewal_window and
 * expiring once per version (renewed and renewal_failed per attempt).
 * Runs on the jobs thread every lifecycle.scan_interval_seconds (tests
 * call it directly). 0, or -1 when the store could not be read.
 */
int lifecycle_tick(struct lifecycle *lc);

/*
 * Schedules the deletion of a certificate without associations (else
 * CONFLICT naming them) lifecycle.deletion_pending_days from now: the
 * record gets "state": "pending_deletion" and "deletion": {"scheduled_at",
 * "execute_at", "scheduled_by"}, stays listed, is no longer renewed, and
 * lifecycle_tick deletes it once execute_at passed. Scheduling again
 * answers the existing schedule. Returns the certificate record (new
 * reference) or NULL with err.
 */
json_t *lifecycle_cert_delete_schedule(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);
/* Deletes a certificate without associations at once (versions, keys;
 * the serial registry keeps its rows for CRLs). 0 or -1 with err. */
int lifecycle_cert_delete_now(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);
/* Cancels a scheduled deletion (CONFLICT when none is scheduled).
 * Returns the certificate as lifecycle_cert_get does, or NULL with err. */
json_t *lifecycle_cert_cancel_deletion(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);

/* ---- CA lifecycle (ca.c) ---- */

/*
 * Renews CA ca_id as a new certificate version (ca_renew): same key, or
 * a new key of the same backend and algorithm; validity_days 0 keeps the
 * current version's lifetime. Audited as "ca.renew"; after the commit the
 * public certificate files, the registered trust bundle and the CA's
 * CRLs are published. Returns the CA record (new reference) or NULL with
 * err (CONFLICT for subordinate-of-external, pending or deleted CAs).
 */
json_t *lifecycle_ca_renew(struct lifecycle *lc, const char *ca_id,
    bool new_key, double validity_days, const char *who,
    struct common_error *err);

struct lifecycle_ca_reissue_result {
	size_t	renewed;	/* leaves that got a new version */
	size_t	failed;		/* renewals refused or failed (logged) */
	size_t	skipped;	/* revoked, or scheduled for deletion */
};
/*
 * Re-issues every managed leaf of CA ca_id (found through the
 * certificate index by CA) as a new version through lifecycle_cert_renew,
 * each in its own transaction; counts go to res and the run is audited
 * as "ca.reissue". 0, or -1 with err when the CA or its certificates
 * cannot be read.
 */
int lifecycle_ca_reissue_run(struct lifecycle *lc, const char *ca_id,
    const char *who, struct lifecycle_ca_reissue_result *res,
    struct common_error *err);
/* The same, returning the number of leaves renewed (or -1 with err). */
int lifecycle_ca_reissue(struct lifecycle *lc, const char *ca_id,
    const char *who, struct common_error *err);

/* Sets CA ca_id "disabled" (no issuance, no new subordinates; CRLs go
 * on) or "active" again; audited as "ca.disable" / "ca.enable". 0 or -1
 * with err. */
int lifecycle_ca_set_state(struct lifecycle *lc, const char *ca_id,
    const char *state, const char *who, struct common_error *err);
/*
 * Deletes CA ca_id: refused (CONFLICT "CA ca-x has 3 active certificates
 * and 1 subordinate CA") while it has certificates neither revoked nor
 * expired or subordinate CAs; with now, at once (record, keys, public
 * files; audited "ca.delete"), else scheduled lifecycle.deletion_pending_
 * days ahead ("pending_deletion", *scheduled = the CA record; audited
 * "ca.delete_scheduled"). 0 or -1 with err.
 */
int lifecycle_ca_delete(struct lifecycle *lc, const char *ca_id, bool now,
    const char *who, json_t **scheduled, struct common_error *err);
/* Cancels a scheduled CA deletion ("ca.delete_cancelled"); returns the
 * CA record (new reference) or NULL with err. */
json_t *lifecycle_ca_cancel_deletion(struct lifecycle *lc, const char *ca_id,
    const char *who, struct common_error *err);
/* Executes the CA deletions whose time came (by LIFECYCLE_WHO_SCHEDULER;
 * lifecycle_tick's job for CAs). Returns how many, or -1. */
int lifecycle_ca_tick(struct lifecycle *lc);

/* ---- shared by the files of lifecycle/ only (not an API) ---- */

#define LIFECYCLE_ID_MAX	64	/* "assoc-" + 16 hex + NUL, with room */
#define LIFECYCLE_TIME_MAX	32	/* RFC 3339 timestamp + NUL */

/* The configuration. */
const struct lifecycle_config *lifecycle_cfg(struct lifecycle *lc);

/* State of notify.c and crl.c, created by lifecycle_new and freed by
 * lifecycle_free (which stops them first). */
struct lifecycle_notifier;
struct lifecycle_crl_sched;
struct lifecycle_notifier *lifecycle_notifier_new(void);
void lifecycle_notifier_free(struct lifecycle_notifier *n);
struct lifecycle_crl_sched *lifecycle_crl_sched_new(void);
void lifecycle_crl_sched_free(struct lifecycle_crl_sched *s);
/* The context's notifier and CRL scheduler (never NULL). */
struct lifecycle_notifier *lifecycle_notifier(struct lifecycle *lc);
struct lifecycle_crl_sched *lifecycle_crl_sched(struct lifecycle *lc);

/* Runs fn(txn, arg, err) in one store transaction (retried on deadlock;
 * err is cleared before each try, so fn sets it freshly). A store failure
 * inside fn is reported as COMMON_E_INTERNAL whatever fn said. 0 when
 * committed, -1 with err set otherwise. */
int lifecycle_txn_run(struct lifecycle *lc,
    int (*fn)(struct store_txn *txn, void *arg, struct common_error *err),
    void *arg, struct common_error *err);
/* Appends {"time", "who", "action", "object", "result": "ok", "detail"}
 * to the audit table inside txn. 0 or -1. */
int lifecycle_audit(struct store_txn *txn, const char *who,
    const char *action, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

enum lifecycle_field_type {
	LIFECYCLE_F_STRING,
	LIFECYCLE_F_NUMBER,
	LIFECYCLE_F_OBJECT,
	LIFECYCLE_F_STRINGS,	/* array of strings */
	LIFECYCLE_F__MAX
};

struct lifecycle_field {
	const char			*name;
	enum lifecycle_field_type	 type;
};

/* Checks that req is a JSON object whose every key is in fields (a table
 * ending with a NULL name) with the right type; a JSON null counts as
 * absent. prefix ("" or "renewal.") qualifies names in messages. 0, or
 * -1 with COMMON_E_INVALID naming the field. */
int lifecycle_req_check(const json_t *req, const char *prefix,
    const struct lifecycle_field *fields, struct common_error *err);
/* The string value of req[name], NULL when absent or null. */
const char *lifecycle_req_str(const json_t *req, const char *name);
/* 1..LIFECYCLE_NAME_MAX printable ASCII characters; else -1 with
 * COMMON_E_INVALID naming field. */
int lifecycle_name_check(const char *field, const char *s,
    struct common_error *err);
/* Validates a page token (NULL/"" = start) and a limit (0 = default,
 * else 1..LIFECYCLE_PAGE_MAX) into *limit_out. 0 or -1 with err. */
int lifecycle_page_check(const char *page_token, size_t limit,
    size_t *limit_out, struct common_error *err);
/* {key: items, "next_page_token": next or null}; steals items (also on
 * failure). NULL on allocation failure. */
json_t *lifecycle_page_result(const char *key, json_t *items,
    const char *next);
/* Sets COMMON_E_CONFLICT "OWNER has N association(s): assoc-1 (resource
 * res-1 "name"), ..." for the associations in assocs (of a certificate
 * when of_cert, else of a resource), looking the other side's names up
 * in txn. Always returns -1. */
int lifecycle_assoc_conflict(struct lifecycle *lc, struct store_txn *txn,
    const char *owner, const json_t *assocs, bool of_cert,
    struct common_error *err);

/* ---- scheduler internals (renew.c, delete.c, cert.c) ---- */

/* The scheduler settings of lifecycle.* in the configuration, or their
 * defaults when lifecycle_config.conf is NULL. */
struct lifecycle_sched {
	int	history_limit;		/* versions that keep their PEM */
	double	deletion_pending_days;
	int	renewal_jitter_seconds;
	int	retry_min_seconds;
	int	retry_max_seconds;
	double	expiry_warning_days;
};
void lifecycle_sched_get(struct lifecycle *lc, struct lifecycle_sched *out);
/* lifecycle_audit with an explicit result ("ok" | "failed"). 0 or -1. */
int lifecycle_audit_result(struct store_txn *txn, const char *who,
    const char *action, const char *object, const char *result,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Parses an RFC 3339 UTC time as common_time_rfc3339 writes it. 0/-1. */
int lifecycle_time_parse(const char *s, time_t *out);
/* Event data {"certificate_id", "name", "ca_id", "mode", "origin",
 * "version", "serial", "not_after", "detail"} of certificate crec and
 * its version v (NULL: the fields of the record). New reference or
 * NULL. */
json_t *lifecycle_event_data(const json_t *crec, const json_t *v,
    const char *detail);
/* When version v of certificate crec is due for renewal (epoch
 * seconds): not_after - renew_before_days, not_before + renew_at_fraction
 * x lifetime, or for ACME/EST the ARI window start not_after -
 * lifetime / 3 (cert.c). */
json_int_t lifecycle_due_epoch(const json_t *crec, const json_t *v);
/* Executes the scheduled deletion of id when it is due (delete.c; the
 * scheduler's half of lifecycle_cert_delete_schedule). 0 when deleted or
 * nothing was due, -1 with err. */
int lifecycle_deletion_execute(struct lifecycle *lc, const char *id,
    struct common_error *err);

/* ---- x509.c ---- */

/* SAN strings of x (DNS, e-mail, URI as written; IPs in inet_ntop form)
 * as a JSON array; NULL on allocation failure. */
json_t *lifecycle_x509_sans(X509 *x);
/* RFC 4514 text of name, to free(); NULL on failure. */
char *lifecycle_name_text(const X509_NAME *name);
/* Profile name matching x's extended key usage, or NULL. */
const char *lifecycle_x509_profile(X509 *x);
/* PEM text of csr, to free(); NULL on failure. */
char *lifecycle_csr_to_pem(X509_REQ *csr);
/* SubjectPublicKeyInfo PEM to a key; NULL on failure. */
EVP_PKEY *lifecycle_pubkey_from_pem(const char *pem);
/* 0 when the SAN sets want and csr are equal (IPs by value, names without
 * regard to case); else -1 with COMMON_E_INVALID listing the differences. */
int lifecycle_sans_match(const json_t *want, const json_t *csr,
    struct common_error *err);
/* True when the RFC 4514 text want names the same attributes as csr, in
 * any order. */
bool lifecycle_subject_match(const char *want, const X509_NAME *csr);

#endif
