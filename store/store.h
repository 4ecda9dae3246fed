/*
 * store/ — the Berkeley DB store. The only module that includes <db.h>.
 *
 * One transactional environment (DB_INIT_TXN|DB_INIT_LOCK|DB_INIT_LOG|
 * DB_INIT_MPOOL|DB_THREAD|DB_RECOVER) in DIR/db, one B-tree per table,
 * secondary indexes where a query needs them, records serialised as JSON
 * text (readable with `db_dump -p`). Every change runs inside
 * store_txn_run(), which commits durably (fsync'd log) before returning.
 *
 * Tables (key -> record):
 *   meta          name -> string             ("schema_version" = "2")
 *   ca            ca id -> JSON
 *   certificate   cert id -> JSON; indexes: by "name" (unique), by "ca_id",
 *                 by "origin", by "not_after_epoch" (big-endian u64),
 *                 by "due_at_epoch" (big-endian u64)
 *   version       cert id + big-endian u32 n -> JSON
 *   issued        serial (upper-case hex) -> JSON; indexes: by "not_after"
 *                 (big-endian u64 seconds), by "ca_id" + "\0" + "status" +
 *                 "\0" + serial, and the revocation index: the records
 *                 whose status is "revoked", by "ca_id" + "\0" + serial,
 *                 the key also carrying what a CRL entry needs
 *                 (store_revoked_walk)
 *   key           key id -> opaque bytes (sealed private keys)
 *   resource      resource id -> JSON
 *   association   assoc id -> JSON; indexes: by "certificate_id",
 *                 by "resource_id"
 *   audit         big-endian u64 sequence -> JSON (append-only); index:
 *                 by "object"
 *   acme_account  account id -> JSON; index: by "thumbprint" (unique)
 *   acme_order    order id -> JSON; index: by "account_id"
 *   acme_authz    authz id -> JSON; index: by "account_id" + "\0" +
 *                 identifier.type + ":" + identifier.value
 *   eab_key       kid -> JSON
 *   est_client    username -> JSON
 *   est_request   lower-case hex SHA-256 -> JSON
 *
 * Record ownership: *_put functions never take ownership of the json_t
 * passed in; *_get/list functions return new references the caller
 * json_decref()s.
 *
 * Errors: a get that finds nothing returns NULL. A real failure inside a
 * transaction (I/O, deadlock, corrupt record) is logged, marks the txn
 * failed, and store_txn_run() then aborts it (and retries a deadlock) no
 * matter what the callback returned; so callers may treat NULL as "not
 * found". Functions that take a txn also accept NULL for a standalone read
 * (retried on deadlock internally).
 */
#ifndef PKID_STORE_H
#define PKID_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

/* 2: the revocation index and serial-terminated (ca_id, status) keys.
 * A data directory of version 1 is upgraded at open (its indexes
 * rebuilt); a build that reads only version 1 refuses version 2, so it
 * cannot leave the revocation index behind the table. */
#define STORE_SCHEMA_VERSION	"2"
#define STORE_TXN_RETRIES	16	/* deadlock retries before giving up */
#define STORE_RECORD_MAX	(4 * 1024 * 1024)	/* largest record */

struct store;
struct store_txn;

/* Opens (creating if needed) the environment under dir/db with recovery,
 * takes an exclusive lock on dir/pkid.lock (a second process gets NULL
 * with a log line naming the directory), opens every table and index, and
 * writes or checks the schema version. NULL on failure. */
struct store *store_open(const char *dir);

/* Flags of store_open_flags. */
#define STORE_F_NOSYNC	0x1u	/* commits reach the log (the OS) but are not
				   fsync'd: for bulk loads and tests only. A
				   system crash may lose the last commits,
				   never consistency; a process crash loses
				   nothing. */
/* store_open with flags (0 = store_open). */
struct store *store_open_flags(const char *dir, unsigned int flags);
/* Checkpoints and closes everything; accepts NULL. */
void store_close(struct store *st);

/* Runs fn(txn, arg) in a new transaction. Commits (durably) when fn
 * returns 0 and no operation failed; aborts otherwise. On a deadlock the
 * transaction is aborted and fn is run again, up to STORE_TXN_RETRIES
 * times, so fn must not keep side effects outside the store between tries.
 * Returns 0 when committed, otherwise fn's non-zero result or -1. */
int store_txn_run(struct store *st,
    int (*fn)(struct store_txn *txn, void *arg), void *arg);
/* Lower-level form for tests and callers that manage tries themselves. */
struct store_txn *store_txn_begin(struct store *st);
int store_txn_commit(struct store_txn *txn);	/* frees txn */
void store_txn_abort(struct store_txn *txn);	/* frees txn; accepts NULL */
/* True once an operation in txn failed (it will not commit). */
bool store_txn_failed(const struct store_txn *txn);
struct store *store_txn_store(struct store_txn *txn);

/*
 * Deferred durability, for threads that answer many clients (the server's
 * workers). After store_defer(st) on a thread, its commits on st return
 * as soon as the commit record is written, without waiting for the log
 * flush; store_defer_pending() then gives the ticket of the thread's last
 * commit that is not durable yet (0 when there is none), and the caller
 * must not acknowledge that commit to anyone before store_flush_state()
 * says the ticket is durable. A flusher thread per store flushes the log
 * as tickets are asked for (each deferred commit asks for its own;
 * store_flush_request, store_flush_wait), so every commit made during
 * one flush shares the next. Other threads keep durable commits. On a store opened with STORE_F_NOSYNC nothing is
 * deferred (there is no flush to wait for).
 */
int store_defer(struct store *st);			/* 0 or -1 */
uint64_t store_defer_pending(struct store *st);
/* 1: ticket is durable (or 0), 0: not yet, -1: a log flush failed and it
 * never will be (the store needs a restart with recovery). */
int store_flush_state(struct store *st, uint64_t ticket);
/* Asks the flusher to make ticket durable; returns at once. */
void store_flush_request(struct store *st, uint64_t ticket);
/* Waits until ticket is durable: 0, or -1 when a flush failed. */
int store_flush_wait(struct store *st, uint64_t ticket);
/* Waits until every commit made so far, deferred or not, is durable:
 * for work that acts outside on what others committed (deployments,
 * webhooks, CRLs). 0, or -1 when a flush failed. */
int store_flush_all(struct store *st);
/* fn(arg) is called on the flusher thread after every flush it runs,
 * under its lock: it must only wake someone (event_active), never call
 * the store. Unsubscribing waits for a call in progress. */
int store_flush_subscribe(struct store *st, void (*fn)(void *), void *arg);
void store_flush_unsubscribe(struct store *st, void (*fn)(void *), void *arg);

/* ---- meta ---- */
char *store_meta_get(struct store *st, struct store_txn *txn, const char *name);
int store_meta_put(struct store_txn *txn, const char *name, const char *value);

/* ---- ca ---- */
int store_ca_put(struct store_txn *txn, const char *id, const json_t *rec);
json_t *store_ca_get(struct store *st, struct store_txn *txn, const char *id);
/* Every CA record, ordered by id. */
json_t *store_ca_list(struct store *st, struct store_txn *txn);
int store_ca_del(struct store_txn *txn, const char *id);

/* ---- certificate ---- */

/* A page query over a table ordered by id. Filter (may be NULL) is called
 * for each record and keeps it when it returns true. At most limit
 * records (1..1000) with id > after (NULL or "" for the start) are
 * returned as a JSON array; *next (to free()) is set to the last id
 * returned when more records may follow, else NULL. */
struct store_page {
	const char	*after;
	size_t		 limit;
	bool		(*filter)(const json_t *rec, void *arg);
	void		*arg;
};

int store_cert_put(struct store_txn *txn, const char *id, const json_t *rec);
json_t *store_cert_get(struct store *st, struct store_txn *txn, const char *id);
/* The certificate named name. With a txn the read takes the write lock
 * (it is the check that a name is free before a put takes it). */
json_t *store_cert_by_name(struct store *st, struct store_txn *txn,
    const char *name);
json_t *store_cert_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next);
/* Number of certificates whose "ca_id" is ca_id. -1 on failure. */
long store_cert_count_by_ca(struct store *st, struct store_txn *txn,
    const char *ca_id);
int store_cert_del(struct store_txn *txn, const char *id);

/*
 * Orders in which certificates can be walked: the table itself and its
 * secondary indexes. Duplicates of an index key sort by certificate id,
 * so every order is total and a position is (index key, id).
 */
enum store_cert_index {
	STORE_CERT_BY_ID,	/* the table: key = id */
	STORE_CERT_BY_CA,	/* key = "ca_id" (records without: absent) */
	STORE_CERT_BY_ORIGIN,	/* key = "origin" (likewise) */
	STORE_CERT_BY_NOT_AFTER, /* key = store_time_key("not_after_epoch");
				   a record without that integer is keyed
				   UINT64_MAX: present, and last */
	STORE_CERT_BY_DUE,	/* key = store_time_key("due_at_epoch");
				   records without it: absent */
	STORE_CERT_BY__MAX
};

#define STORE_TIME_KEY_LEN	8	/* big-endian u64 seconds */

/* The index key of time t (seconds; before 1970 counts as 0). */
void store_time_key(time_t t, unsigned char out[STORE_TIME_KEY_LEN]);

/*
 * A key range of one certificate order: index keys k with lo <= k and
 * k < hi (k <= hi when hi_inclusive), compared as bytes (a shorter key
 * sorts first). lo NULL: from the first key; hi NULL: to the last. For
 * STORE_CERT_BY_ID the keys are ids. A range with lo == hi inclusive is
 * one exact key.
 *
 * prefilter (may be NULL) sees each record's stored JSON text before it
 * is parsed, with the page's arg; false skips the record. It must be a
 * necessary condition of the page's filter (never refuse a record the
 * filter keeps), e.g. a substring the text must hold: it spares the
 * parse of records a filtered walk passes over.
 */
struct store_range {
	enum store_cert_index	 index;
	const void		*lo;
	size_t			 lo_len;
	const void		*hi;
	size_t			 hi_len;
	bool			 hi_inclusive;
	bool			(*prefilter)(const void *text, size_t len,
				    void *arg);
};

/*
 * A page of the certificates in range, in (index key, id) order, after
 * the position page->after (NULL or "": from the start of the range),
 * keeping the records page->filter accepts (filter may be NULL), at most
 * page->limit (clamped to 1..1000; page NULL: a first page of 1000).
 * *next (to free(); next may be NULL) is the position of the last record
 * returned when more records may follow in the range, else NULL.
 *
 * Positions are opaque page tokens: the id of the record when the range
 * fixes the index key (STORE_CERT_BY_ID, or an exact key), else the
 * lower-case hex of its index key, ':' and the id. A page costs its own
 * size: the scan seeks to the position and stops at the end of the range.
 * NULL on failure or a malformed token (store_cert_token_valid).
 */
json_t *store_cert_scan(struct store *st, struct store_txn *txn,
    const struct store_range *range, const struct store_page *page,
    char **next);
/* True when token is a position store_cert_scan could give for range. */
bool store_cert_token_valid(const struct store_range *range,
    const char *token);
/* Number of certificates under the exact key of a secondary index
 * (every index but STORE_CERT_BY_ID). -1 on failure. */
long store_cert_count_key(struct store *st, struct store_txn *txn,
    enum store_cert_index index, const void *key, size_t key_len);

/* ---- version ---- */
int store_version_put(struct store_txn *txn, const char *cert_id,
    uint32_t n, const json_t *rec);
json_t *store_version_get(struct store *st, struct store_txn *txn,
    const char *cert_id, uint32_t n);
/* Every version of cert_id, ordered by n (empty array when none). */
json_t *store_version_list(struct store *st, struct store_txn *txn,
    const char *cert_id);
int store_version_del(struct store_txn *txn, const char *cert_id, uint32_t n);

/* ---- issued (serial registry) ---- */

/* rec must hold "ca_id" (string), "status" (string) and "not_after"
 * (integer seconds): the indexes are built from them. */
int store_issued_put(struct store_txn *txn, const char *serial,
    const json_t *rec);
/* The record of serial. With a txn the read takes the page's write lock
 * (it precedes a write of that serial: issuance, revocation). */
json_t *store_issued_get(struct store *st, struct store_txn *txn,
    const char *serial);
/* Every record of ca_id whose status equals status, as an array
 * ordered by serial. */
json_t *store_issued_by_ca_status(struct store *st, struct store_txn *txn,
    const char *ca_id, const char *status);

/* One revoked serial as the revocation index holds it: the fields of
 * its `issued` record that a CRL entry needs. The strings live until fn
 * returns. */
struct store_revoked {
	const char	*serial;	/* the issued key */
	const char	*reason;	/* "reason"; "" when absent, not a
					   string or too long to be a name */
	int64_t		 revoked_at;	/* "revoked_at", when has_revoked_at */
	int64_t		 not_after;	/* "not_after", when has_not_after */
	uint32_t	 ca_version;	/* "ca_version"; 0 when absent or not
					   in 1..UINT32_MAX */
	bool		 has_revoked_at;	/* ...is an integer */
	bool		 has_not_after;
};

/*
 * Calls fn for each revoked serial of ca_id (records whose "status" is
 * "revoked"), in the byte order of the serials, reading only the
 * revocation index (never the records). fn returns 0 to go on, anything
 * else stops the walk. txn must not be NULL (a walk is not rerun on a
 * deadlock: the caller's txn is). 0 when every entry was seen, -1 when
 * fn stopped the walk or the store failed (txn marked).
 */
int store_revoked_walk(struct store_txn *txn, const char *ca_id,
    int (*fn)(const struct store_revoked *e, void *arg), void *arg);
/* Up to limit records with not_after < before, ascending by not_after. */
json_t *store_issued_expiring_before(struct store *st, struct store_txn *txn,
    time_t before, size_t limit);

/* ---- key (sealed private keys, opaque bytes) ---- */
int store_key_put(struct store_txn *txn, const char *id, const void *blob,
    size_t len);
/* 0 and a malloc'd copy, or -1 when absent. */
int store_key_get(struct store *st, struct store_txn *txn, const char *id,
    unsigned char **blob, size_t *len);
int store_key_del(struct store_txn *txn, const char *id);

/* ---- resource ---- */
int store_resource_put(struct store_txn *txn, const char *id, const json_t *rec);
json_t *store_resource_get(struct store *st, struct store_txn *txn,
    const char *id);
json_t *store_resource_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next);
int store_resource_del(struct store_txn *txn, const char *id);

/* ---- association ---- */
int store_assoc_put(struct store_txn *txn, const char *id, const json_t *rec);
json_t *store_assoc_get(struct store *st, struct store_txn *txn, const char *id);
json_t *store_assoc_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next);
/* Every association whose "certificate_id" / "resource_id" matches. */
json_t *store_assoc_by_cert(struct store *st, struct store_txn *txn,
    const char *cert_id);
json_t *store_assoc_by_resource(struct store *st, struct store_txn *txn,
    const char *resource_id);
int store_assoc_del(struct store_txn *txn, const char *id);

/* ---- audit (append-only) ---- */

/* Appends rec under the next sequence number (stored into *seq when seq is
 * not NULL) and adds "seq" to the stored copy. */
int store_audit_append(struct store_txn *txn, const json_t *rec, uint64_t *seq);
/* Up to limit records with seq > after, ascending. */
json_t *store_audit_list(struct store *st, struct store_txn *txn,
    uint64_t after, size_t limit);
/*
 * A page of audit records with seq > after, ascending: only those whose
 * "object" equals object when it is not NULL (through the index by
 * object), and those filter accepts (filter may be NULL); at most limit
 * (clamped to 1..1000). *next is the seq of the last record returned
 * when more may follow, else 0. NULL on failure.
 */
json_t *store_audit_scan(struct store *st, struct store_txn *txn,
    uint64_t after, const char *object, size_t limit,
    bool (*filter)(const json_t *rec, void *arg), void *arg,
    uint64_t *next);

/* ---- acme_account ---- */

/* id -> {"id", "status": "valid"|"deactivated"|"revoked", "jwk": {..},
 * "thumbprint" (RFC 7638 SHA-256, base64url), "contact": [..], "eab_kid",
 * "created_at", "orders_seq", ...}. The thumbprint index is unique: a put
 * whose "thumbprint" another account holds is refused (logged, txn
 * failed). */
int store_acme_account_put(struct store_txn *txn, const char *id,
    const json_t *rec);
json_t *store_acme_account_get(struct store *st, struct store_txn *txn,
    const char *id);
json_t *store_acme_account_by_thumbprint(struct store *st,
    struct store_txn *txn, const char *thumbprint);

/* ---- acme_order ---- */

/* id -> {"id", "account_id", "status", "expires", "identifiers",
 * "authorizations": [authz ids], "profile", "not_before", "not_after",
 * "error", "certificate_serial", "cert_id", "replaces", "created_at"}. */
int store_acme_order_put(struct store_txn *txn, const char *id,
    const json_t *rec);
json_t *store_acme_order_get(struct store *st, struct store_txn *txn,
    const char *id);
/* A page of account_id's order records ordered by order id: at most limit
 * (clamped to 1..1000) with id > after (NULL or "" for the start); *next
 * (to free(); next may be NULL) is the last id returned when more may
 * follow, else NULL. An empty array for an unknown account; NULL on
 * failure or a malformed token. */
json_t *store_acme_orders_by_account(struct store *st, struct store_txn *txn,
    const char *account_id, const char *after, size_t limit, char **next);
/* The order record whose "certificate_serial" is exactly serial (new
 * reference; through the index acme_order by certificate_serial), NULL
 * when none. */
json_t *store_acme_order_by_serial(struct store *st, struct store_txn *txn,
    const char *serial);

/* ---- acme_authz ---- */

/* id -> {"id", "account_id", "status", "expires", "identifier": {"type",
 * "value"}, "wildcard": bool, "challenges": [{"type", "token", "status",
 * "validated", "error"}], "created_at"}. */
int store_acme_authz_put(struct store_txn *txn, const char *id,
    const json_t *rec);
json_t *store_acme_authz_get(struct store *st, struct store_txn *txn,
    const char *id);
/* Every authorisation of account_id for identifier (type, value), any
 * status, ordered by authz id (for authorisation reuse); an empty array
 * when none, NULL on failure. */
json_t *store_acme_authz_by_account_ident(struct store *st,
    struct store_txn *txn, const char *account_id, const char *ident_type,
    const char *ident_value);

/* ---- eab_key (ACME External Account Binding keys) ---- */

/* kid -> {"kid", "hmac_key" (base64url of the raw key), "alg": "HS256"|
 * "HS384"|"HS512", "one_time": bool, "used_by": account id or null,
 * "created_at", "expires_at" (RFC 3339 or null), "note"}. */
int store_eab_put(struct store_txn *txn, const char *kid, const json_t *rec);
json_t *store_eab_get(struct store *st, struct store_txn *txn,
    const char *kid);
json_t *store_eab_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next);
int store_eab_del(struct store_txn *txn, const char *kid);

/* ---- est_client (EST HTTP Basic clients) ---- */

/* username -> {"username", "password_hash" (common_password_hash form),
 * "labels": [..] (empty = every label), "created_at", "created_by"}.
 * store_check requires the key to equal "username". */
int store_est_client_put(struct store_txn *txn, const char *username,
    const json_t *rec);
json_t *store_est_client_get(struct store *st, struct store_txn *txn,
    const char *username);
json_t *store_est_client_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next);
int store_est_client_del(struct store_txn *txn, const char *username);

/* ---- est_request (EST enrollments waiting for manual approval) ---- */

/* id = lower-case hex SHA-256 of (label + "\0" + CSR DER) -> {"id",
 * "label", "status": "pending"|"approved"|"rejected"|"issued" (set by
 * protocols/est once it delivered, with "issued_at"), "csr" (base64 DER),
 * "subject", "sans": [..], "requested_by" ("est:<user>" or
 * "cert:<serial>"), "operation": "simpleenroll"|"simplereenroll"|
 * "serverkeygen", "created_at", "decided_by", "decided_at", "reason",
 * "cert_id", "serial"}. A put whose id is not 64 lower-case hex digits
 * is refused (logged, txn failed); store_check requires the key to equal
 * "id". */
int store_est_request_put(struct store_txn *txn, const char *id,
    const json_t *rec);
json_t *store_est_request_get(struct store *st, struct store_txn *txn,
    const char *id);
json_t *store_est_request_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next);

/* ---- maintenance ---- */

/* Flushes the cache and writes a checkpoint (old logs are then removed
 * automatically); the jobs thread calls it periodically. 0 or -1. */
int store_checkpoint(struct store *st);
/* Consistency check: walks every table and index; each record must
 * parse, keys must be well formed, and every index must hold exactly the
 * entries its table implies. 0 when consistent, -1 (problems logged). */
int store_check(struct store *st);

#endif
