/*
 * store/store.c — the Berkeley DB store: environment, tables, secondary
 * indexes, transactions with deadlock retry, typed record operations.
 *
 * Layout of DIR:
 *   pkid.lock	exclusive flock(2) held while the store is open; holds the
 *		pid of the owner (so a second opener can name it)
 *   db/	the transactional environment: one B-tree file per table
 *		(ca.db, certificate.db, ...) and per secondary index
 *		(certificate-name.db, issued-not-after.db, ...), logs, regions
 *
 * Every operation runs in a struct store_txn. An operation that fails
 * (I/O, deadlock, corrupt record, refused value) logs once and marks the
 * txn failed; later operations in the same txn fail at once without
 * touching BDB, and store_txn_run() aborts (and, on a deadlock, reruns).
 * Reads called with a NULL txn run in a short internal read-committed
 * transaction, retried on deadlock.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <db.h>

#include "common/common.h"
#include "store/store.h"

#define STORE_ENV_DIR		"db"
#define STORE_LOCK_FILE		"pkid.lock"
#define STORE_DIR_MODE		0700
#define STORE_FILE_MODE		0600
/* The cache is touched as it is used, so an idle daemon's RSS stays
 * small (~20 MB); under load the pages a new certificate lands on (the
 * issued table is keyed by random serial) stay cached for longer: 16 MB
 * made every insert past ~100k certificates read and write back a page
 * (bench/issue P-256 deferred: 5,905-6,811 -> 7,511-7,852/s). */
#define STORE_CACHE_BYTES	(64 * 1024 * 1024)
/* Page-level locks: a long scan inside one caller transaction holds one
 * lock per page, so the lock table is sized well above the default. */
#define STORE_LOCKS_MAX		20000
#define STORE_LOCK_OBJECTS_MAX	20000
#define STORE_LOCKERS_MAX	2000
#define STORE_KEY_MAX		512	/* longest id / serial / meta name */
#define STORE_VKEY_MAX		(STORE_KEY_MAX + 1 + 4)	/* id, NUL, u32 */
#define STORE_PAGE_MAX		1000	/* largest page a list returns */
#define STORE_BACKOFF_MIN_US	200	/* deadlock retry backoff range */
#define STORE_BACKOFF_MAX_US	32000
#define STORE_KEY_REPR_MAX	160	/* printable form of a key in logs */
#define STORE_PID_TEXT_MAX	32
#define STORE_U64_TEXT_MAX	24
#define STORE_SHA256_HEX_LEN	64	/* est_request ids */

#define STORE_META_SCHEMA	"schema_version"
#define STORE_META_AUDIT_SEQ	"audit_seq"
/* Meta key prefix: STORE_META_BUILD_PREFIX + an index file names an
 * index whose build is under way. */
#define STORE_META_BUILD_PREFIX	"index_build:"
#define STORE_BUILD_BATCH	1000	/* records indexed per transaction
					   when an index is built */
/* Meta key prefix: STORE_META_FORMAT_PREFIX + an index file holds the
 * key format of that file when it is not the first (see
 * store_index_def.format). */
#define STORE_META_FORMAT_PREFIX "index_format:"
#define STORE_FORMAT_TEXT_MAX	12	/* decimal u32 and NUL */
/* The schema version before the revocation index: opened and upgraded. */
#define STORE_SCHEMA_PREVIOUS	"1"

/* The `issued` status whose records the revocation index holds. */
#define STORE_STATUS_REVOKED	"revoked"
/* A revocation index key: ca_id, NUL, serial, NUL, then the fixed part
 * (flags byte, big-endian revoked_at and not_after as two's complement
 * i64, big-endian u32 ca_version), then the reason's bytes. */
#define STORE_REVOKED_FIXED	(1 + 8 + 8 + 4)
#define STORE_REVOKED_AT_OFF	1	/* offsets in the fixed part */
#define STORE_REVOKED_NA_OFF	9
#define STORE_REVOKED_VER_OFF	17
#define STORE_REVOKED_HAS_AT	0x01u	/* flags: "revoked_at" is an integer */
#define STORE_REVOKED_HAS_NA	0x02u	/* flags: "not_after" is an integer */
#define STORE_REASON_MAX	64	/* longer reasons are indexed as "" */

enum store_table {
	STORE_T_META,
	STORE_T_CA,
	STORE_T_CERT,
	STORE_T_VERSION,
	STORE_T_ISSUED,
	STORE_T_KEY,
	STORE_T_RESOURCE,
	STORE_T_ASSOC,
	STORE_T_AUDIT,
	STORE_T_ACME_ACCOUNT,
	STORE_T_ACME_ORDER,
	STORE_T_ACME_AUTHZ,
	STORE_T_EAB_KEY,
	STORE_T_EST_CLIENT,
	STORE_T_EST_REQUEST,
	STORE_T__MAX
};

struct store_table_def {
	const char	*name;		/* for logs */
	const char	*file;		/* in DIR/db */
	bool		 json;		/* records are JSON objects */
	u_int32_t	 pagesize;	/* new files; 0: BDB's (the fs block) */
};

/*
 * Tables whose records carry a certificate (~1.1-1.5 KB of JSON) get
 * 16 KB pages: on 4 KB pages such a record is past the B-tree's overflow
 * threshold (about a quarter of a page) and takes an overflow page of
 * its own, 4 KB on disk and one more page to allocate, log and read per
 * record. Only files created from now on get it (a page size is fixed
 * when a file is made).
 */
#define STORE_PAGE_CERT	(16 * 1024)

static const struct store_table_def store_tables[STORE_T__MAX] = {
	[STORE_T_META] = { "meta", "meta.db", false, 0 },
	[STORE_T_CA] = { "ca", "ca.db", true, 0 },
	[STORE_T_CERT] = { "certificate", "certificate.db", true,
	    STORE_PAGE_CERT },
	[STORE_T_VERSION] = { "version", "version.db", true,
	    STORE_PAGE_CERT },
	[STORE_T_ISSUED] = { "issued", "issued.db", true,
	    STORE_PAGE_CERT },
	[STORE_T_KEY] = { "key", "key.db", false, 0 },
	[STORE_T_RESOURCE] = { "resource", "resource.db", true, 0 },
	[STORE_T_ASSOC] = { "association", "association.db", true, 0 },
	[STORE_T_AUDIT] = { "audit", "audit.db", true, 0 },
	[STORE_T_ACME_ACCOUNT] = { "acme_account", "acme-account.db", true, 0 },
	[STORE_T_ACME_ORDER] = { "acme_order", "acme-order.db", true,
	    STORE_PAGE_CERT },
	[STORE_T_ACME_AUTHZ] = { "acme_authz", "acme-authz.db", true, 0 },
	[STORE_T_EAB_KEY] = { "eab_key", "eab-key.db", true, 0 },
	[STORE_T_EST_CLIENT] = { "est_client", "est-client.db", true, 0 },
	[STORE_T_EST_REQUEST] = { "est_request", "est-request.db", true, 0 },
};

enum store_index {
	STORE_I_CERT_NAME,
	STORE_I_CERT_CA,
	STORE_I_CERT_ORIGIN,
	STORE_I_CERT_NOT_AFTER,
	STORE_I_CERT_DUE,
	STORE_I_ISSUED_NOT_AFTER,
	STORE_I_ISSUED_CA_STATUS,
	STORE_I_ASSOC_CERT,
	STORE_I_ASSOC_RESOURCE,
	STORE_I_ACME_ACCOUNT_THUMBPRINT,
	STORE_I_ACME_ORDER_ACCOUNT,
	STORE_I_ACME_AUTHZ_IDENT,
	STORE_I_AUDIT_OBJECT,
	STORE_I_ACME_ORDER_SERIAL,
	STORE_I_ISSUED_REVOKED,
	STORE_I__MAX
};

/* How a secondary key is built from the primary's JSON record. */
enum store_ikind {
	STORE_IK_STRING,	/* the string field1 */
	STORE_IK_U64,		/* the integer field1, big-endian u64 */
	STORE_IK_U64_LAST,	/* the same, but a record without that
				   integer is keyed UINT64_MAX: an order
				   that lists every record, those last */
	STORE_IK_PAIR,		/* field1 + "\0" + field2, both strings */
	STORE_IK_PAIR_PK,	/* the same + "\0" + the primary key: one
				   key per record, so records of equal
				   fields do not share one B-tree entry */
	STORE_IK_REVOKED,	/* records whose field2 is "revoked": the
				   revocation index key (see
				   STORE_REVOKED_FIXED), field1 first */
	STORE_IK_IDENT,		/* field1 + "\0" + field2.type + ":" +
				   field2.value (an ACME identifier) */
};

struct store_index_def {
	const char		*name;		/* for logs */
	const char		*file;
	enum store_table	 primary;
	bool			 unique;	/* no DB_DUP */
	enum store_ikind	 kind;
	const char		*field1;
	const char		*field2;
	unsigned		 format;	/* key format: 0 for the first;
						   a later one is recorded in
						   meta, and a file written in
						   another is rebuilt at open */
};

static const struct store_index_def store_indexes[STORE_I__MAX] = {
	[STORE_I_CERT_NAME] = { "certificate by name",
	    "certificate-name.db", STORE_T_CERT, true, STORE_IK_STRING,
	    "name", NULL, 0 },
	[STORE_I_CERT_CA] = { "certificate by ca_id",
	    "certificate-ca.db", STORE_T_CERT, false, STORE_IK_STRING,
	    "ca_id", NULL, 0 },
	[STORE_I_CERT_ORIGIN] = { "certificate by origin",
	    "certificate-origin.db", STORE_T_CERT, false, STORE_IK_STRING,
	    "origin", NULL, 0 },
	[STORE_I_CERT_NOT_AFTER] = { "certificate by not_after_epoch",
	    "certificate-not-after.db", STORE_T_CERT, false,
	    STORE_IK_U64_LAST, "not_after_epoch", NULL, 0 },
	[STORE_I_CERT_DUE] = { "certificate by due_at_epoch",
	    "certificate-due.db", STORE_T_CERT, false, STORE_IK_U64,
	    "due_at_epoch", NULL, 0 },
	[STORE_I_ISSUED_NOT_AFTER] = { "issued by not_after",
	    "issued-not-after.db", STORE_T_ISSUED, false, STORE_IK_U64,
	    "not_after", NULL, 0 },
	/* format 2: the serial ends the key (format 0 was ca_id + status
	 * only, every record of a CA under one duplicate set) */
	[STORE_I_ISSUED_CA_STATUS] = { "issued by ca_id+status",
	    "issued-ca-status.db", STORE_T_ISSUED, true, STORE_IK_PAIR_PK,
	    "ca_id", "status", 2 },
	[STORE_I_ASSOC_CERT] = { "association by certificate_id",
	    "association-certificate.db", STORE_T_ASSOC, false,
	    STORE_IK_STRING, "certificate_id", NULL, 0 },
	[STORE_I_ASSOC_RESOURCE] = { "association by resource_id",
	    "association-resource.db", STORE_T_ASSOC, false,
	    STORE_IK_STRING, "resource_id", NULL, 0 },
	[STORE_I_ACME_ACCOUNT_THUMBPRINT] = { "acme_account by thumbprint",
	    "acme-account-thumbprint.db", STORE_T_ACME_ACCOUNT, true,
	    STORE_IK_STRING, "thumbprint", NULL, 0 },
	[STORE_I_ACME_ORDER_ACCOUNT] = { "acme_order by account_id",
	    "acme-order-account.db", STORE_T_ACME_ORDER, false,
	    STORE_IK_STRING, "account_id", NULL, 0 },
	[STORE_I_ACME_AUTHZ_IDENT] = { "acme_authz by account_id+identifier",
	    "acme-authz-ident.db", STORE_T_ACME_AUTHZ, false,
	    STORE_IK_IDENT, "account_id", "identifier", 0 },
	[STORE_I_AUDIT_OBJECT] = { "audit by object", "audit-object.db",
	    STORE_T_AUDIT, false, STORE_IK_STRING, "object", NULL, 0 },
	/* only orders that hold a certificate are indexed */
	[STORE_I_ACME_ORDER_SERIAL] = { "acme_order by certificate_serial",
	    "acme-order-serial.db", STORE_T_ACME_ORDER, false,
	    STORE_IK_STRING, "certificate_serial", NULL, 0 },
	/* what a CRL needs of each revoked serial, without the record */
	[STORE_I_ISSUED_REVOKED] = { "issued revoked by ca_id",
	    "issued-revoked.db", STORE_T_ISSUED, true, STORE_IK_REVOKED,
	    "ca_id", "status", 0 },
};

/* The certificate orders of store.h and the index behind each (the
 * table itself for STORE_CERT_BY_ID). */
static const enum store_index store_cert_orders[STORE_CERT_BY__MAX] = {
	[STORE_CERT_BY_ID] = STORE_I__MAX,
	[STORE_CERT_BY_CA] = STORE_I_CERT_CA,
	[STORE_CERT_BY_ORIGIN] = STORE_I_CERT_ORIGIN,
	[STORE_CERT_BY_NOT_AFTER] = STORE_I_CERT_NOT_AFTER,
	[STORE_CERT_BY_DUE] = STORE_I_CERT_DUE,
};

struct store {
	DB_ENV	*env;
	DB	*db[STORE_T__MAX];	/* primaries */
	DB	*idx[STORE_I__MAX];	/* secondaries */
	DB	*revoked_plain;		/* the revocation index opened again,
					   not associated: a cursor on it
					   reads the entries (key, serial)
					   without the primary records */
	int	 lock_fd;		/* flock'd DIR/pkid.lock, -1 if none */
	bool	 nosync;		/* STORE_F_NOSYNC: commits not fsync'd */
	char	 dir[PATH_MAX];
	struct store_flusher *fl;	/* deferred durability, or NULL */
	pthread_mutex_t fl_once;	/* creating fl */
};

/*
 * Deferred durability (store_defer): on a deferring thread a commit
 * writes its commit record and returns without flushing the log; its
 * ticket (seq, counted after the commit returned) is durable once a flush
 * that started after it completed. One flusher thread per store runs
 * those flushes as tickets are asked for (each deferred commit asks for
 * its own), so every commit made while a flush runs shares the next one.
 */
#define STORE_FLUSH_SUBS_MAX	1024	/* subscribers (server workers) */

struct store_flush_sub {
	void	(*fn)(void *);
	void	*arg;
};

struct store_flusher {
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 work;		/* to the flusher */
	pthread_cond_t		 done;		/* to blocking waiters */
	uint64_t		 seq;		/* deferred commits made
						   (atomic) */
	uint64_t		 requested;	/* highest ticket asked for */
	uint64_t		 flushed;	/* tickets <= this are durable */
	uint64_t		 failed;	/* tickets <= this (and past
						   flushed) were in a flush
						   that failed */
	bool			 stop;
	struct store_flush_sub	 subs[STORE_FLUSH_SUBS_MAX];
	size_t			 nsubs;
};

/* The store the calling thread defers durability on, and its last
 * deferred commit's ticket. */
static __thread struct store *store_defer_st;
static __thread uint64_t store_defer_ticket;

struct store_txn {
	struct store	*st;
	DB_TXN		*tid;
	bool		 failed;	/* an operation failed: never commits */
	bool		 deadlock;	/* ...because of a deadlock: retry */
};

/*
 * Arguments and results of one read operation, so the same operation can
 * run in a caller's txn or in internal read transactions retried on
 * deadlock (store_read_run). An operation sets its results only when it
 * succeeds and frees everything it built when it fails.
 */
struct store_read {
	enum store_table	 table;
	enum store_index	 index;
	const void		*key;		/* lookup key or scan start */
	size_t			 klen;
	size_t			 prefix;	/* scan: shared key prefix */
	bool			 skip_exact;	/* scan: skip key itself */
	size_t			 limit;		/* scan: most records */
	uint64_t		 below;		/* index range: keys < below */
	bool			 (*filter)(const json_t *, void *);
	bool			 (*prefilter)(const void *, size_t, void *);
	void			*filter_arg;	/* of both */
	bool			 want_next;	/* scan: produce a next token */
	const void		*after_pk;	/* index page: start after */
	size_t			 after_len;
	u_int32_t		 flags;		/* get: extra DB->get flags */
	bool			 use_index;	/* range: walk r->index */
	const void		*hi;		/* range: last key or NULL */
	size_t			 hi_len;
	bool			 hi_incl;	/* range: hi itself included */
	const void		*after_key;	/* range: position's key */
	size_t			 after_key_len;

	json_t			*out;
	char			*next;
	unsigned char		*raw;
	size_t			 rawlen;
	long			 count;
	unsigned char		*last_key;	/* range: last record out, */
	size_t			 last_key_len;	/* set when more may follow */
	unsigned char		*last_pk;
	size_t			 last_pk_len;
};

/* ---- small helpers ------------------------------------------------------ */

static bool
store_is_deadlock(int rc)
{
	return rc == DB_LOCK_DEADLOCK || rc == DB_LOCK_NOTGRANTED;
}

/* Printable form of a key for logs: printable ASCII as is, other bytes
 * as \xNN, truncated. */
static void
store_key_repr(const void *key, size_t len, char *out, size_t outlen)
{
	const unsigned char *p = key;
	size_t i, o = 0;

	if (outlen == 0)
		return;
	for (i = 0; i < len && o + 5 < outlen; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			out[o++] = (char)p[i];
		} else {
			snprintf(out + o, outlen - o, "\\x%02x", p[i]);
			o += 4;
		}
	}
	if (i < len && o + 3 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Marks txn failed after BDB returned rc at step on table/key. A deadlock
 * is routine under contention (the txn is retried), so it is logged at
 * debug level; anything else is an error. */
static void
store_txn_dberr(struct store_txn *txn, int rc, const char *step,
    const char *table, const void *key, size_t klen)
{
	char repr[STORE_KEY_REPR_MAX];

	txn->failed = true;
	store_key_repr(key, klen, repr, sizeof(repr));
	if (store_is_deadlock(rc)) {
		txn->deadlock = true;
		log_debug("store: %s %s \"%s\": %s", table, step, repr,
		    db_strerror(rc));
		return;
	}
	log_err("store: %s %s \"%s\": %s", table, step, repr, db_strerror(rc));
}

/* Marks txn failed for a reason that is not a BDB error (logged by the
 * caller). */
static void
store_txn_refuse(struct store_txn *txn)
{
	txn->failed = true;
}

/* Logs an allocation failure during what and fails txn. */
static void
store_txn_nomem(struct store_txn *txn, const char *what)
{
	log_err("store: %s: out of memory", what);
	txn->failed = true;
}

/* True when p (len bytes) is STORE_SHA256_HEX_LEN lower-case hex digits. */
static bool
store_sha256_hex_valid(const void *p, size_t len)
{
	const unsigned char *s = p;
	size_t i;

	if (len != STORE_SHA256_HEX_LEN)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Length of a valid id key (1..STORE_KEY_MAX bytes), 0 if invalid. */
static size_t
store_id_len(const char *id)
{
	size_t len;

	if (id == NULL)
		return 0;
	len = strnlen(id, STORE_KEY_MAX + 1);
	return len > STORE_KEY_MAX ? 0 : len;
}

static void
store_be32(unsigned char *out, uint32_t v)
{
	out[0] = (unsigned char)(v >> 24);
	out[1] = (unsigned char)(v >> 16);
	out[2] = (unsigned char)(v >> 8);
	out[3] = (unsigned char)v;
}

static void
store_be64(unsigned char *out, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		out[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint32_t
store_get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
store_get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Version key: cert id bytes, NUL, big-endian n. Returns its length. */
static size_t
store_version_key(const char *cert_id, size_t idlen, uint32_t n,
    unsigned char out[STORE_VKEY_MAX])
{
	memcpy(out, cert_id, idlen);
	out[idlen] = '\0';
	store_be32(out + idlen + 1, n);
	return idlen + 1 + 4;
}

/* Byte order of keys, as BDB's default B-tree comparison: memcmp over
 * the common length, then the shorter first. */
static int
store_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0 || alen == blen)
		return c;
	return alen < blen ? -1 : 1;
}

/* Copies (p, len) into the DB_DBT_REALLOC buffer of t. -1 on ENOMEM. */
static int
store_dbt_set(DBT *t, const void *p, size_t len)
{
	void *n;

	if ((n = realloc(t->data, len > 0 ? len : 1)) == NULL)
		return -1;
	memcpy(n, p, len);
	t->data = n;
	t->size = (u_int32_t)len;
	return 0;
}

/* Copies (p, len) into *buf (reallocated) and *buflen. -1 on ENOMEM. */
static int
store_bytes_keep(unsigned char **buf, size_t *buflen, const void *p,
    size_t len)
{
	unsigned char *n;

	if ((n = realloc(*buf, len > 0 ? len : 1)) == NULL)
		return -1;
	memcpy(n, p, len);
	*buf = n;
	*buflen = len;
	return 0;
}

/* Copies len bytes into a new NUL-terminated string; NULL on ENOMEM. */
static char *
store_strndup(const void *p, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static size_t
store_clamp_limit(size_t limit)
{
	if (limit < 1)
		return 1;
	return limit > STORE_PAGE_MAX ? STORE_PAGE_MAX : limit;
}

/* Randomised exponential backoff before rerunning a deadlocked txn, so
 * the two sides of a deadlock do not collide again in lockstep. */
static void
store_backoff(unsigned int attempt)
{
	static __thread unsigned int seed;
	unsigned int span = STORE_BACKOFF_MIN_US;

	if (seed == 0)
		seed = (unsigned int)(common_mono_ms() ^
		    (uintptr_t)pthread_self() ^ (uintptr_t)getpid()) | 1u;
	while (attempt-- > 0 && span < STORE_BACKOFF_MAX_US)
		span *= 2;
	if (span > STORE_BACKOFF_MAX_US)
		span = STORE_BACKOFF_MAX_US;
	usleep(STORE_BACKOFF_MIN_US + (useconds_t)(rand_r(&seed) % span));
}

/* ---- JSON records ------------------------------------------------------- */

/* Parses a stored record; NULL (reason in jerr) unless it is a JSON
 * object of at most STORE_RECORD_MAX bytes. */
static json_t *
store_json_parse(const void *data, size_t len, json_error_t *jerr)
{
	json_t *j;

	if (len > STORE_RECORD_MAX) {
		snprintf(jerr->text, sizeof(jerr->text),
		    "record of %zu bytes exceeds the %d byte limit", len,
		    STORE_RECORD_MAX);
		return NULL;
	}
	j = json_loadb(data, len, JSON_REJECT_DUPLICATES, jerr);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		snprintf(jerr->text, sizeof(jerr->text), "not a JSON object");
		return NULL;
	}
	return j;
}

/* Parses a record read from table at key; a record that does not parse
 * is corrupt: logged, and txn fails. */
static json_t *
store_json_load(struct store_txn *txn, enum store_table t, const void *key,
    size_t klen, const void *data, size_t len)
{
	char repr[STORE_KEY_REPR_MAX];
	json_error_t jerr;
	json_t *j;

	if ((j = store_json_parse(data, len, &jerr)) != NULL)
		return j;
	store_key_repr(key, klen, repr, sizeof(repr));
	log_err("store: %s \"%s\": corrupt record: %s", store_tables[t].name,
	    repr, jerr.text);
	store_txn_refuse(txn);
	return NULL;
}

/*
 * The key of an account's authorisations for one identifier:
 * account_id + "\0" + type + ":" + value. Returns 0 with *out (malloc'd,
 * NULL on ENOMEM) and *outlen, 1 when the pieces are missing or empty.
 */
static int
store_ident_make(const char *account_id, size_t alen, const char *type,
    size_t tlen, const char *value, size_t vlen, unsigned char **out,
    size_t *outlen)
{
	unsigned char *buf;

	*out = NULL;
	if (alen == 0 || tlen == 0 || vlen == 0)
		return 1;
	if ((buf = malloc(alen + 1 + tlen + 1 + vlen)) == NULL)
		return 0;
	memcpy(buf, account_id, alen);
	buf[alen] = '\0';
	memcpy(buf + alen + 1, type, tlen);
	buf[alen + 1 + tlen] = ':';
	memcpy(buf + alen + 1 + tlen + 1, value, vlen);
	*outlen = alen + 1 + tlen + 1 + vlen;
	*out = buf;
	return 0;
}

/* store_ident_make from a record's "account_id" (acct) and "identifier"
 * object (ident). */
static int
store_ident_key(const json_t *acct, const json_t *ident, unsigned char **out,
    size_t *outlen)
{
	const json_t *type = json_object_get(ident, "type");
	const json_t *value = json_object_get(ident, "value");

	*out = NULL;
	if (!json_is_string(acct) || !json_is_string(type) ||
	    !json_is_string(value))
		return 1;
	return store_ident_make(json_string_value(acct),
	    json_string_length(acct), json_string_value(type),
	    json_string_length(type), json_string_value(value),
	    json_string_length(value), out, outlen);
}

/*
 * The revocation index key of an `issued` record (STORE_IK_REVOKED;
 * ca, the record's "ca_id", is a non-empty string). Returns 0 with *out
 * (malloc'd) and *outlen, 1 when the record is not revoked or its key
 * cannot be indexed (a NUL in it), -1 on ENOMEM.
 */
static int
store_revoked_key(const json_t *rec, const json_t *ca, const void *pk,
    size_t pklen, unsigned char **out, size_t *outlen)
{
	const json_t *at = json_object_get(rec, "revoked_at");
	const json_t *na = json_object_get(rec, "not_after");
	const json_t *ver = json_object_get(rec, "ca_version");
	const json_t *why = json_object_get(rec, "reason");
	const char *status = json_string_value(json_object_get(rec, "status"));
	size_t clen = json_string_length(ca), rlen = 0, off;
	unsigned char *buf, flags = 0;
	json_int_t v;

	if (status == NULL || strcmp(status, STORE_STATUS_REVOKED) != 0 ||
	    pklen == 0 || memchr(pk, '\0', pklen) != NULL)
		return 1;
	/* A reason too long to be a name is as good as none. */
	if (json_is_string(why) && json_string_length(why) <= STORE_REASON_MAX &&
	    memchr(json_string_value(why), '\0', json_string_length(why)) ==
	    NULL)
		rlen = json_string_length(why);
	if ((buf = malloc(clen + 1 + pklen + 1 + STORE_REVOKED_FIXED +
	    rlen)) == NULL)
		return -1;
	memcpy(buf, json_string_value(ca), clen);
	buf[clen] = '\0';
	memcpy(buf + clen + 1, pk, pklen);
	off = clen + 1 + pklen;
	buf[off++] = '\0';
	if (json_is_integer(at))
		flags |= STORE_REVOKED_HAS_AT;
	if (json_is_integer(na))
		flags |= STORE_REVOKED_HAS_NA;
	buf[off] = flags;
	store_be64(buf + off + STORE_REVOKED_AT_OFF,
	    (uint64_t)json_integer_value(at));
	store_be64(buf + off + STORE_REVOKED_NA_OFF,
	    (uint64_t)json_integer_value(na));
	v = json_integer_value(ver);
	store_be32(buf + off + STORE_REVOKED_VER_OFF, json_is_integer(ver) &&
	    v > 0 && v <= (json_int_t)UINT32_MAX ? (uint32_t)v : 0);
	off += STORE_REVOKED_FIXED;
	if (rlen > 0)
		memcpy(buf + off, json_string_value(why), rlen);
	*out = buf;
	*outlen = off + rlen;
	return 0;
}

/*
 * Builds the secondary key of index def from the primary record rec
 * (borrowed) stored under pk. Returns 0 with *out (malloc'd) and
 * *outlen, 1 when the record has no value for this index (not indexed),
 * -1 on ENOMEM.
 */
static int
store_index_key_rec(const struct store_index_def *def, const void *pk,
    size_t pklen, const json_t *rec, unsigned char **out, size_t *outlen)
{
	const json_t *v1, *v2 = NULL;
	const char *s1, *s2;
	size_t l1, l2, extra;
	json_int_t t;
	unsigned char *buf = NULL;

	v1 = json_object_get(rec, def->field1);
	if (def->field2 != NULL)
		v2 = json_object_get(rec, def->field2);
	switch (def->kind) {
	case STORE_IK_STRING:
		if (!json_is_string(v1) || json_string_length(v1) == 0)
			return 1;
		l1 = json_string_length(v1);
		if ((buf = malloc(l1)) == NULL)
			return -1;
		memcpy(buf, json_string_value(v1), l1);
		*outlen = l1;
		break;
	case STORE_IK_U64:
	case STORE_IK_U64_LAST:
		if (!json_is_integer(v1) && def->kind == STORE_IK_U64)
			return 1;
		if ((buf = malloc(8)) == NULL)
			return -1;
		if (!json_is_integer(v1)) {
			store_be64(buf, UINT64_MAX);
		} else {
			/* Times before 1970 sort first, as 0. */
			t = json_integer_value(v1);
			store_be64(buf, t < 0 ? 0 : (uint64_t)t);
		}
		*outlen = 8;
		break;
	case STORE_IK_PAIR:
	case STORE_IK_PAIR_PK:
		if (!json_is_string(v1) || !json_is_string(v2) ||
		    json_string_length(v1) == 0)
			return 1;
		s1 = json_string_value(v1);
		s2 = json_string_value(v2);
		l1 = json_string_length(v1);
		l2 = json_string_length(v2);
		extra = def->kind == STORE_IK_PAIR_PK ? 1 + pklen : 0;
		if ((buf = malloc(l1 + 1 + l2 + 1 + extra)) == NULL)
			return -1;
		memcpy(buf, s1, l1);
		buf[l1] = '\0';
		memcpy(buf + l1 + 1, s2, l2);
		if (extra > 0) {
			buf[l1 + 1 + l2] = '\0';
			memcpy(buf + l1 + 1 + l2 + 1, pk, pklen);
		}
		*outlen = l1 + 1 + l2 + extra;
		break;
	case STORE_IK_REVOKED:
		if (!json_is_string(v1) || json_string_length(v1) == 0)
			return 1;
		return store_revoked_key(rec, v1, pk, pklen, out, outlen);
	case STORE_IK_IDENT:
		if (store_ident_key(v1, v2, &buf, outlen) == 1)
			return 1;
		if (buf == NULL)
			return -1;
		break;
	}
	*out = buf;
	return 0;
}

/*
 * The put or delete under way in this thread. BDB runs the index
 * callbacks of a write in the writing thread, once per index for the new
 * record and once per index for the record it replaces: the new one is
 * the record the caller handed in (its text is what DB->put got), the
 * old one is parsed by the first callback that meets it and kept for the
 * others, so a write parses at most one record however many indexes its
 * table has. Callbacks outside a write (index builds) parse.
 */
struct store_write_cache {
	const void	*text;		/* the bytes handed to DB->put (NULL
					   for a delete) */
	size_t		 len;
	const json_t	*rec;		/* ...the record they encode */
	unsigned char	*old;		/* a copy of the replaced bytes */
	size_t		 old_len;
	json_t		*old_rec;	/* ...parsed */
};

static __thread struct store_write_cache *store_write_cur;

/* Ends the write cache wc (installed as store_write_cur) and frees what
 * it kept. */
static void
store_write_done(struct store_write_cache *wc)
{
	store_write_cur = NULL;
	free(wc->old);
	json_decref(wc->old_rec);
}

/*
 * The parsed record of the primary bytes (data, len) an index callback
 * got: from the write cache when it holds them, else parsed (and kept
 * when a write is under way). A new reference, NULL (reason in jerr)
 * when the bytes do not parse or on ENOMEM.
 */
static json_t *
store_index_record(const void *data, size_t len, json_error_t *jerr)
{
	struct store_write_cache *wc = store_write_cur;
	unsigned char *copy;
	json_t *rec;

	if (wc != NULL && wc->text == data && wc->len == len)
		return json_incref((json_t *)(uintptr_t)wc->rec);
	if (wc != NULL && wc->old_rec != NULL && wc->old_len == len &&
	    memcmp(wc->old, data, len) == 0)
		return json_incref(wc->old_rec);
	if ((rec = store_json_parse(data, len, jerr)) == NULL || wc == NULL)
		return rec;
	if ((copy = malloc(len > 0 ? len : 1)) != NULL) {
		memcpy(copy, data, len);
		free(wc->old);
		json_decref(wc->old_rec);
		wc->old = copy;
		wc->old_len = len;
		wc->old_rec = json_incref(rec);
	}
	return rec;
}

/*
 * Builds the secondary key of index def from the primary record (data,
 * len) stored under pk. Returns 0 with *out (malloc'd) and *outlen, 1
 * when the record has no value for this index (not indexed), -1 when the
 * record does not parse or on ENOMEM.
 */
static int
store_index_key(const struct store_index_def *def, const void *pk,
    size_t pklen, const void *data, size_t len, unsigned char **out,
    size_t *outlen)
{
	json_error_t jerr;
	json_t *rec;
	int rc;

	if ((rec = store_index_record(data, len, &jerr)) == NULL)
		return -1;
	rc = store_index_key_rec(def, pk, pklen, rec, out, outlen);
	json_decref(rec);
	return rc;
}

/* DB->associate callback shared by every index; the secondary handle's
 * app_private holds the index number. */
static int
store_index_callback(DB *sdb, const DBT *pkey, const DBT *pdata, DBT *skey)
{
	const struct store_index_def *def =
	    &store_indexes[(uintptr_t)sdb->app_private];
	char repr[STORE_KEY_REPR_MAX];
	unsigned char *buf = NULL;
	size_t len = 0;

	switch (store_index_key(def, pkey->data, pkey->size, pdata->data,
	    pdata->size, &buf, &len)) {
	case 0:
		break;
	case 1:
		return DB_DONOTINDEX;
	default:
		store_key_repr(pkey->data, pkey->size, repr, sizeof(repr));
		log_err("store: %s: cannot index record \"%s\" (corrupt or "
		    "out of memory)", def->name, repr);
		return EINVAL;
	}
	skey->data = buf;
	skey->size = (u_int32_t)len;
	skey->flags = DB_DBT_APPMALLOC;	/* BDB frees it */
	return 0;
}

/* ---- raw record operations (txn must not be NULL) ----------------------- */

static int
store_raw_put(struct store_txn *txn, enum store_table t, const void *key,
    size_t klen, const void *data, size_t dlen, u_int32_t flags)
{
	DB *db = txn->st->db[t];
	char repr[STORE_KEY_REPR_MAX];
	DBT k, d;
	int rc;

	if (txn->failed)
		return -1;
	if (dlen > STORE_RECORD_MAX) {
		store_key_repr(key, klen, repr, sizeof(repr));
		log_err("store: %s put \"%s\": record of %zu bytes exceeds "
		    "the %d byte limit", store_tables[t].name, repr, dlen,
		    STORE_RECORD_MAX);
		store_txn_refuse(txn);
		return -1;
	}
	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	k.data = (void *)(uintptr_t)key;
	k.size = (u_int32_t)klen;
	d.data = (void *)(uintptr_t)data;
	d.size = (u_int32_t)dlen;
	if ((rc = db->put(db, txn->tid, &k, &d, flags)) != 0) {
		store_txn_dberr(txn, rc, "put", store_tables[t].name, key,
		    klen);
		return -1;
	}
	return 0;
}

/* Reads the record at key: 0 with *data (malloc'd, to free) and *dlen,
 * 1 when absent, -1 on failure (txn marked). */
static int
store_raw_get(struct store_txn *txn, enum store_table t, const void *key,
    size_t klen, u_int32_t flags, unsigned char **data, size_t *dlen)
{
	DB *db = txn->st->db[t];
	DBT k, d;
	int rc;

	if (txn->failed)
		return -1;
	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	k.data = (void *)(uintptr_t)key;
	k.size = (u_int32_t)klen;
	d.flags = DB_DBT_MALLOC;
	rc = db->get(db, txn->tid, &k, &d, flags);
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != 0) {
		store_txn_dberr(txn, rc, "get", store_tables[t].name, key,
		    klen);
		return -1;
	}
	*data = d.data;
	*dlen = d.size;
	return 0;
}

/* Deletes key (and its index entries); an absent key is not an error. */
static int
store_raw_del(struct store_txn *txn, enum store_table t, const void *key,
    size_t klen)
{
	struct store_write_cache wc = { .text = NULL };
	DB *db = txn->st->db[t];
	DBT k;
	int rc;

	if (txn->failed)
		return -1;
	memset(&k, 0, sizeof(k));
	k.data = (void *)(uintptr_t)key;
	k.size = (u_int32_t)klen;
	store_write_cur = &wc;
	rc = db->del(db, txn->tid, &k, 0);
	store_write_done(&wc);
	if (rc != 0 && rc != DB_NOTFOUND) {
		store_txn_dberr(txn, rc, "del", store_tables[t].name, key,
		    klen);
		return -1;
	}
	return 0;
}

/* store_raw_put of text, the serialised rec: the index callbacks of
 * this put read rec rather than parse text (store_write_cache). */
static int
store_text_put(struct store_txn *txn, enum store_table t, const void *key,
    size_t klen, const char *text, const json_t *rec, u_int32_t flags)
{
	struct store_write_cache wc = { .text = text, .len = strlen(text),
	    .rec = rec };
	int rc;

	store_write_cur = &wc;
	rc = store_raw_put(txn, t, key, klen, text, wc.len, flags);
	store_write_done(&wc);
	return rc;
}

/* Serialises rec (compact, sorted keys) and stores it at key. */
static int
store_json_put(struct store_txn *txn, enum store_table t, const void *key,
    size_t klen, const json_t *rec)
{
	char repr[STORE_KEY_REPR_MAX];
	char *text = NULL;
	int rc = -1;

	if (txn->failed)
		goto out;
	store_key_repr(key, klen, repr, sizeof(repr));
	if (!json_is_object(rec)) {
		log_err("store: %s put \"%s\": record is not a JSON object",
		    store_tables[t].name, repr);
		store_txn_refuse(txn);
		goto out;
	}
	if ((text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		log_err("store: %s put \"%s\": cannot serialise the record",
		    store_tables[t].name, repr);
		store_txn_refuse(txn);
		goto out;
	}
	rc = store_text_put(txn, t, key, klen, text, rec, 0);
out:
	free(text);
	return rc;
}

/* Checks the txn and key of a write; logs and fails the txn if bad. */
static int
store_write_check(struct store_txn *txn, enum store_table t, const char *id,
    size_t *len)
{
	if (txn == NULL) {
		log_err("store: %s write outside a transaction",
		    store_tables[t].name);
		return -1;
	}
	if (txn->failed)
		return -1;
	if ((*len = store_id_len(id)) == 0) {
		log_err("store: %s write: invalid key (empty or longer than "
		    "%d bytes)", store_tables[t].name, STORE_KEY_MAX);
		store_txn_refuse(txn);
		return -1;
	}
	return 0;
}

/* ---- transactions ------------------------------------------------------- */

static struct store_txn *
store_txn_begin_flags(struct store *st, u_int32_t flags)
{
	struct store_txn *txn;
	int rc;

	if (st == NULL || st->env == NULL) {
		log_err("store: txn begin: store not open");
		return NULL;
	}
	if ((txn = calloc(1, sizeof(*txn))) == NULL) {
		log_err("store: txn begin: out of memory");
		return NULL;
	}
	txn->st = st;
	if ((rc = st->env->txn_begin(st->env, NULL, &txn->tid, flags)) != 0) {
		log_err("store: %s: txn begin: %s", st->dir, db_strerror(rc));
		free(txn);
		return NULL;
	}
	return txn;
}

struct store_txn *
store_txn_begin(struct store *st)
{
	return store_txn_begin_flags(st, 0);
}

/* Commits durably unless an operation failed (then aborts). Frees txn.
 * 0 when committed, -1 otherwise. */
int
store_txn_commit(struct store_txn *txn)
{
	struct store *st;
	int rc;

	if (txn == NULL)
		return -1;
	if (txn->failed) {
		store_txn_abort(txn);
		return -1;
	}
	st = txn->st;
	/*
	 * Group commit: the commit record is written without waiting for
	 * the disk, which releases the txn's locks at once, and the log is
	 * then flushed before the caller hears "committed". Committers that
	 * arrive while a flush is running share the next one (BDB waits on
	 * the flush in progress and skips a flush that already covered its
	 * records), and a txn waiting for a page this one wrote no longer
	 * waits for this one's fsync too. A reader can see such a commit a
	 * fraction of a millisecond before it is durable; its writer is not
	 * answered until it is. DB_TXN->commit releases the handle even
	 * when it fails.
	 */
	if ((rc = txn->tid->commit(txn->tid, st->nosync ? 0 :
	    DB_TXN_NOSYNC)) != 0)
		log_err("store: %s: txn commit: %s", st->dir, db_strerror(rc));
	else if (store_defer_st == st && st->fl != NULL) {
		/* deferred: the ticket counts from after the commit, and
		 * its flush is asked for at once, whoever waits for it */
		store_defer_ticket = __atomic_add_fetch(&st->fl->seq, 1,
		    __ATOMIC_SEQ_CST);
		store_flush_request(st, store_defer_ticket);
	}
	else if (!st->nosync && (rc = st->env->log_flush(st->env, NULL)) != 0)
		log_err("store: %s: txn commit: log flush (the commit is not "
		    "durable): %s", st->dir, db_strerror(rc));
	free(txn);
	return rc == 0 ? 0 : -1;
}

/* ---- deferred durability ------------------------------------------------ */

static void *
store_flusher_main(void *arg)
{
	struct store *st = arg;
	struct store_flusher *fl = st->fl;
	uint64_t target;
	size_t i;
	int rc;

	(void)pthread_setname_np(pthread_self(), "pkid-flush");
	pthread_mutex_lock(&fl->lock);
	for (;;) {
		while (!fl->stop && (fl->requested <= fl->flushed ||
		    fl->requested <= fl->failed))
			pthread_cond_wait(&fl->work, &fl->lock);
		if (fl->stop && (fl->requested <= fl->flushed ||
		    fl->requested <= fl->failed))
			break;
		/* every ticket counted so far has its commit record in the
		 * log: one flush makes them all durable */
		target = __atomic_load_n(&fl->seq, __ATOMIC_SEQ_CST);
		pthread_mutex_unlock(&fl->lock);
		rc = st->env->log_flush(st->env, NULL);
		pthread_mutex_lock(&fl->lock);
		if (rc != 0) {
			/* those waiting hear it failed; a later request
			 * tries again (an earlier failure may have been
			 * passing, as a full disk) */
			log_err("store: %s: log flush (commits %" PRIu64
			    "..%" PRIu64 " are not durable): %s", st->dir,
			    fl->flushed + 1, target, db_strerror(rc));
			if (target > fl->failed)
				fl->failed = target;
		} else if (target > fl->flushed)
			fl->flushed = target;
		pthread_cond_broadcast(&fl->done);
		/* under the lock, so that unsubscribing waits for this */
		for (i = 0; i < fl->nsubs; i++)
			fl->subs[i].fn(fl->subs[i].arg);
	}
	pthread_mutex_unlock(&fl->lock);
	return NULL;
}

/* Creates st's flusher and starts its thread once; 0 or -1. */
static int
store_flusher_start(struct store *st)
{
	struct store_flusher *fl;
	int rc = 0;

	pthread_mutex_lock(&st->fl_once);
	if (st->fl != NULL)
		goto out;
	if ((fl = calloc(1, sizeof(*fl))) == NULL) {
		log_err("store: %s: flusher: out of memory", st->dir);
		rc = -1;
		goto out;
	}
	pthread_mutex_init(&fl->lock, NULL);
	pthread_cond_init(&fl->work, NULL);
	pthread_cond_init(&fl->done, NULL);
	st->fl = fl;
	if (pthread_create(&fl->thread, NULL, store_flusher_main, st) != 0) {
		log_err("store: %s: flusher: cannot start its thread",
		    st->dir);
		st->fl = NULL;
		pthread_cond_destroy(&fl->done);
		pthread_cond_destroy(&fl->work);
		pthread_mutex_destroy(&fl->lock);
		free(fl);
		rc = -1;
	}
out:
	pthread_mutex_unlock(&st->fl_once);
	return rc;
}

/* Flushes what is left, stops and frees st's flusher (store_close). */
static void
store_flusher_stop(struct store *st)
{
	struct store_flusher *fl = st->fl;

	if (fl == NULL)
		return;
	pthread_mutex_lock(&fl->lock);
	fl->requested = __atomic_load_n(&fl->seq, __ATOMIC_SEQ_CST);
	fl->stop = true;
	pthread_cond_signal(&fl->work);
	pthread_mutex_unlock(&fl->lock);
	pthread_join(fl->thread, NULL);
	st->fl = NULL;
	pthread_cond_destroy(&fl->done);
	pthread_cond_destroy(&fl->work);
	pthread_mutex_destroy(&fl->lock);
	free(fl);
}

int
store_defer(struct store *st)
{
	if (st == NULL)
		return -1;
	if (st->nosync) {
		/* nothing is flushed: there is nothing to defer */
		store_defer_st = NULL;
		return 0;
	}
	if (store_flusher_start(st) == -1)
		return -1;
	store_defer_st = st;
	store_defer_ticket = 0;
	return 0;
}

uint64_t
store_defer_pending(struct store *st)
{
	struct store_flusher *fl;
	uint64_t t = store_defer_ticket;
	bool durable;

	if (st == NULL || store_defer_st != st || t == 0 ||
	    (fl = st->fl) == NULL)
		return 0;
	pthread_mutex_lock(&fl->lock);
	durable = t <= fl->flushed;
	pthread_mutex_unlock(&fl->lock);
	if (durable) {
		store_defer_ticket = 0;
		return 0;
	}
	return t;
}

int
store_flush_state(struct store *st, uint64_t ticket)
{
	struct store_flusher *fl;
	int state;

	if (st == NULL || ticket == 0 || (fl = st->fl) == NULL)
		return 1;
	pthread_mutex_lock(&fl->lock);
	state = ticket <= fl->flushed ? 1 : ticket <= fl->failed ? -1 : 0;
	pthread_mutex_unlock(&fl->lock);
	return state;
}

void
store_flush_request(struct store *st, uint64_t ticket)
{
	struct store_flusher *fl;

	if (st == NULL || ticket == 0 || (fl = st->fl) == NULL)
		return;
	pthread_mutex_lock(&fl->lock);
	if (ticket > fl->requested) {
		fl->requested = ticket;
		pthread_cond_signal(&fl->work);
	}
	pthread_mutex_unlock(&fl->lock);
}

int
store_flush_wait(struct store *st, uint64_t ticket)
{
	struct store_flusher *fl;
	int rc;

	if (st == NULL || ticket == 0 || (fl = st->fl) == NULL)
		return 0;
	pthread_mutex_lock(&fl->lock);
	if (ticket > fl->requested) {
		fl->requested = ticket;
		pthread_cond_signal(&fl->work);
	}
	while (ticket > fl->flushed && ticket > fl->failed)
		pthread_cond_wait(&fl->done, &fl->lock);
	rc = ticket <= fl->flushed ? 0 : -1;
	pthread_mutex_unlock(&fl->lock);
	return rc;
}

int
store_flush_all(struct store *st)
{
	if (st == NULL || st->fl == NULL)
		return 0;	/* every commit flushed itself */
	return store_flush_wait(st, __atomic_load_n(&st->fl->seq,
	    __ATOMIC_SEQ_CST));
}

int
store_flush_subscribe(struct store *st, void (*fn)(void *), void *arg)
{
	struct store_flusher *fl;
	int rc = -1;

	if (st == NULL || fn == NULL)
		return -1;
	if (st->nosync)
		return 0;
	if (store_flusher_start(st) == -1)
		return -1;
	fl = st->fl;
	pthread_mutex_lock(&fl->lock);
	if (fl->nsubs < STORE_FLUSH_SUBS_MAX) {
		fl->subs[fl->nsubs++] = (struct store_flush_sub){ fn, arg };
		rc = 0;
	} else
		log_err("store: %s: more than %d flush subscribers", st->dir,
		    STORE_FLUSH_SUBS_MAX);
	pthread_mutex_unlock(&fl->lock);
	return rc;
}

void
store_flush_unsubscribe(struct store *st, void (*fn)(void *), void *arg)
{
	struct store_flusher *fl;
	size_t i;

	if (st == NULL || (fl = st->fl) == NULL)
		return;
	pthread_mutex_lock(&fl->lock);
	for (i = 0; i < fl->nsubs; i++) {
		if (fl->subs[i].fn == fn && fl->subs[i].arg == arg) {
			fl->subs[i] = fl->subs[--fl->nsubs];
			break;
		}
	}
	pthread_mutex_unlock(&fl->lock);
}

void
store_txn_abort(struct store_txn *txn)
{
	int rc;

	if (txn == NULL)
		return;
	if ((rc = txn->tid->abort(txn->tid)) != 0)
		log_err("store: %s: txn abort: %s", txn->st->dir,
		    db_strerror(rc));
	free(txn);
}

bool
store_txn_failed(const struct store_txn *txn)
{
	return txn == NULL || txn->failed;
}

struct store *
store_txn_store(struct store_txn *txn)
{
	return txn == NULL ? NULL : txn->st;
}

/*
 * Runs fn in a fresh txn; commits when fn returns 0 and nothing failed,
 * otherwise aborts, and reruns fn after a deadlock (with backoff) up to
 * STORE_TXN_RETRIES times. 0 when committed, else fn's result or -1.
 */
int
store_txn_run(struct store *st, int (*fn)(struct store_txn *, void *),
    void *arg)
{
	struct store_txn *txn;
	unsigned int attempt;
	bool deadlock;
	int rc;

	for (attempt = 0; ; attempt++) {
		if ((txn = store_txn_begin(st)) == NULL)
			return -1;
		rc = fn(txn, arg);
		if (rc == 0 && !txn->failed)
			return store_txn_commit(txn);
		deadlock = txn->deadlock;
		store_txn_abort(txn);
		if (!deadlock)
			return rc != 0 ? rc : -1;
		if (attempt >= STORE_TXN_RETRIES) {
			log_err("store: %s: transaction abandoned after %d "
			    "deadlock retries", st->dir, STORE_TXN_RETRIES);
			return -1;
		}
		store_backoff(attempt);
	}
}

/*
 * Runs the read operation fn in txn, or, when txn is NULL, in internal
 * read-committed transactions retried on deadlock. Returns fn's result
 * (-1 on failure).
 */
static int
store_read_run(struct store *st, struct store_txn *txn,
    int (*fn)(struct store_txn *, struct store_read *), struct store_read *r)
{
	struct store_txn *t;
	unsigned int attempt;
	bool deadlock;
	int rc;

	if (txn != NULL)
		return txn->failed ? -1 : fn(txn, r);
	if (st == NULL) {
		log_err("store: read without a store or a transaction");
		return -1;
	}
	for (attempt = 0; ; attempt++) {
		if ((t = store_txn_begin_flags(st, DB_READ_COMMITTED)) == NULL)
			return -1;
		rc = fn(t, r);
		deadlock = t->deadlock;
		/* Read-only: aborting releases the locks without a log
		 * record. */
		store_txn_abort(t);
		if (!deadlock)
			return rc;
		if (attempt >= STORE_TXN_RETRIES) {
			log_err("store: %s: read abandoned after %d deadlock "
			    "retries", st->dir, STORE_TXN_RETRIES);
			return -1;
		}
		store_backoff(attempt);
	}
}

/* ---- read operations (see struct store_read) ---------------------------- */

/* r->out = the JSON record of r->table at r->key; -1 when absent. */
static int
store_op_get_json(struct store_txn *txn, struct store_read *r)
{
	unsigned char *data = NULL;
	size_t len = 0;
	int rc = -1;

	if (store_raw_get(txn, r->table, r->key, r->klen, r->flags, &data,
	    &len) != 0)
		goto out;
	if ((r->out = store_json_load(txn, r->table, r->key, r->klen, data,
	    len)) == NULL)
		goto out;
	rc = 0;
out:
	free(data);
	return rc;
}

/* r->raw/r->rawlen = the bytes of r->table at r->key (NUL-terminated
 * copy); -1 when absent. */
static int
store_op_get_raw(struct store_txn *txn, struct store_read *r)
{
	unsigned char *data = NULL;
	size_t len = 0;
	int rc = -1;

	if (store_raw_get(txn, r->table, r->key, r->klen, r->flags, &data,
	    &len) != 0)
		goto out;
	if ((r->raw = (unsigned char *)store_strndup(data, len)) == NULL) {
		store_txn_nomem(txn, store_tables[r->table].name);
		goto out;
	}
	r->rawlen = len;
	rc = 0;
out:
	free(data);
	return rc;
}

/* r->out = the record whose unique index r->index key is r->key; r->raw =
 * its primary key (NUL-terminated). -1 when absent. */
static int
store_op_index_get(struct store_txn *txn, struct store_read *r)
{
	const struct store_index_def *def = &store_indexes[r->index];
	DB *sdb = txn->st->idx[r->index];
	DBT k, pk, d;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&pk, 0, sizeof(pk));
	memset(&d, 0, sizeof(d));
	k.data = (void *)(uintptr_t)r->key;
	k.size = (u_int32_t)r->klen;
	pk.flags = DB_DBT_MALLOC;
	d.flags = DB_DBT_MALLOC;
	rc = sdb->pget(sdb, txn->tid, &k, &pk, &d, r->flags);
	if (rc == DB_NOTFOUND)
		goto out;
	if (rc != 0) {
		store_txn_dberr(txn, rc, "get", def->name, r->key, r->klen);
		goto out;
	}
	if ((r->out = store_json_load(txn, def->primary, pk.data, pk.size,
	    d.data, d.size)) == NULL)
		goto out;
	if ((r->raw = (unsigned char *)store_strndup(pk.data,
	    pk.size)) == NULL) {
		store_txn_nomem(txn, def->name);
		json_decref(r->out);
		r->out = NULL;
		goto out;
	}
	ret = 0;
out:
	free(pk.data);
	free(d.data);
	return ret;
}

/*
 * Scans r->table in key order from r->key (the start when klen is 0),
 * skipping the exact key when r->skip_exact, stopping at the first key
 * without r->prefix, keeping records r->filter accepts, at most r->limit.
 * r->out = the array; with r->want_next, r->next = the last key returned
 * when the limit was reached and more keys follow.
 */
static int
store_op_scan(struct store_txn *txn, struct store_read *r)
{
	const char *tname = store_tables[r->table].name;
	DB *db = txn->st->db[r->table];
	DBC *c = NULL;
	DBT k, d;
	json_t *arr = NULL, *rec;
	char *next = NULL;
	size_t n = 0;
	u_int32_t op = DB_FIRST;
	bool more = false;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	k.flags = DB_DBT_REALLOC;
	d.flags = DB_DBT_REALLOC;
	if ((arr = json_array()) == NULL) {
		store_txn_nomem(txn, tname);
		goto out;
	}
	if (r->klen > 0) {
		if ((k.data = malloc(r->klen)) == NULL) {
			store_txn_nomem(txn, tname);
			goto out;
		}
		memcpy(k.data, r->key, r->klen);
		k.size = (u_int32_t)r->klen;
		op = DB_SET_RANGE;
	}
	if ((rc = db->cursor(db, txn->tid, &c, 0)) != 0) {
		store_txn_dberr(txn, rc, "cursor", tname, r->key, r->klen);
		goto out;
	}
	for (;;) {
		rc = c->get(c, &k, &d, op);
		op = DB_NEXT;
		if (rc == DB_NOTFOUND)
			break;
		if (rc != 0) {
			store_txn_dberr(txn, rc, "scan", tname, r->key,
			    r->klen);
			goto out;
		}
		if (r->prefix > 0 && (k.size < r->prefix ||
		    memcmp(k.data, r->key, r->prefix) != 0))
			break;
		if (r->skip_exact && k.size == r->klen &&
		    memcmp(k.data, r->key, r->klen) == 0)
			continue;
		if (n == r->limit) {
			more = true;
			break;
		}
		if ((rec = store_json_load(txn, r->table, k.data, k.size,
		    d.data, d.size)) == NULL)
			goto out;
		if (r->filter != NULL && !r->filter(rec, r->filter_arg)) {
			json_decref(rec);
			continue;
		}
		if (json_array_append_new(arr, rec) == -1) {
			store_txn_nomem(txn, tname);
			goto out;
		}
		n++;
		if (r->want_next) {
			free(next);
			if ((next = store_strndup(k.data, k.size)) == NULL) {
				store_txn_nomem(txn, tname);
				goto out;
			}
		}
	}
	if (!more) {
		free(next);
		next = NULL;
	}
	r->out = arr;	/* steal */
	arr = NULL;
	r->next = next;	/* steal */
	next = NULL;
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed)
		store_txn_dberr(txn, rc, "cursor close", tname, r->key,
		    r->klen);
	free(k.data);
	free(d.data);
	free(next);
	json_decref(arr);
	return ret;
}

/* r->out = every record of the dup-sorted index r->index under key
 * r->key, in primary-key order. */
static int
store_op_index_dups(struct store_txn *txn, struct store_read *r)
{
	const struct store_index_def *def = &store_indexes[r->index];
	DB *sdb = txn->st->idx[r->index];
	DBC *c = NULL;
	DBT k, pk, d;
	json_t *arr = NULL, *rec;
	u_int32_t op = DB_SET;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&pk, 0, sizeof(pk));
	memset(&d, 0, sizeof(d));
	k.flags = DB_DBT_REALLOC;
	pk.flags = DB_DBT_REALLOC;
	d.flags = DB_DBT_REALLOC;
	if ((arr = json_array()) == NULL ||
	    (k.data = malloc(r->klen)) == NULL) {
		store_txn_nomem(txn, def->name);
		goto out;
	}
	memcpy(k.data, r->key, r->klen);
	k.size = (u_int32_t)r->klen;
	if ((rc = sdb->cursor(sdb, txn->tid, &c, 0)) != 0) {
		store_txn_dberr(txn, rc, "cursor", def->name, r->key, r->klen);
		goto out;
	}
	for (;;) {
		rc = c->pget(c, &k, &pk, &d, op);
		op = DB_NEXT_DUP;
		if (rc == DB_NOTFOUND)
			break;
		if (rc != 0) {
			store_txn_dberr(txn, rc, "scan", def->name, r->key,
			    r->klen);
			goto out;
		}
		if ((rec = store_json_load(txn, def->primary, pk.data,
		    pk.size, d.data, d.size)) == NULL)
			goto out;
		if (json_array_append_new(arr, rec) == -1) {
			store_txn_nomem(txn, def->name);
			goto out;
		}
	}
	r->out = arr;	/* steal */
	arr = NULL;
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed)
		store_txn_dberr(txn, rc, "cursor close", def->name, r->key,
		    r->klen);
	free(k.data);
	free(pk.data);
	free(d.data);
	json_decref(arr);
	return ret;
}

/*
 * A page of the dup-sorted index r->index under key r->key: its records
 * in primary-key order (duplicates sort by primary key), starting after
 * primary key r->after_pk (the first when NULL), at most r->limit.
 * r->next = the last primary key returned when more follow.
 */
static int
store_op_index_page(struct store_txn *txn, struct store_read *r)
{
	const struct store_index_def *def = &store_indexes[r->index];
	DB *sdb = txn->st->idx[r->index];
	DBC *c = NULL;
	DBT k, pk, d;
	json_t *arr = NULL, *rec;
	char *next = NULL;
	u_int32_t op = DB_SET;
	size_t n = 0;
	bool more = false;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&pk, 0, sizeof(pk));
	memset(&d, 0, sizeof(d));
	k.flags = DB_DBT_REALLOC;
	pk.flags = DB_DBT_REALLOC;
	d.flags = DB_DBT_REALLOC;
	if ((arr = json_array()) == NULL ||
	    (k.data = malloc(r->klen)) == NULL) {
		store_txn_nomem(txn, def->name);
		goto out;
	}
	memcpy(k.data, r->key, r->klen);
	k.size = (u_int32_t)r->klen;
	if (r->after_len > 0) {
		/* Position at the first duplicate whose primary key is >=
		 * the token: a page costs its own size, not the prefix. */
		if ((pk.data = malloc(r->after_len)) == NULL) {
			store_txn_nomem(txn, def->name);
			goto out;
		}
		memcpy(pk.data, r->after_pk, r->after_len);
		pk.size = (u_int32_t)r->after_len;
		op = DB_GET_BOTH_RANGE;
	}
	if ((rc = sdb->cursor(sdb, txn->tid, &c, 0)) != 0) {
		store_txn_dberr(txn, rc, "cursor", def->name, r->key, r->klen);
		goto out;
	}
	for (;;) {
		rc = c->pget(c, &k, &pk, &d, op);
		op = DB_NEXT_DUP;
		if (rc == DB_NOTFOUND)
			break;
		if (rc != 0) {
			store_txn_dberr(txn, rc, "scan", def->name, r->key,
			    r->klen);
			goto out;
		}
		if (r->after_len > 0 && pk.size == r->after_len &&
		    memcmp(pk.data, r->after_pk, r->after_len) == 0)
			continue;
		if (n == r->limit) {
			more = true;
			break;
		}
		if ((rec = store_json_load(txn, def->primary, pk.data,
		    pk.size, d.data, d.size)) == NULL)
			goto out;
		if (json_array_append_new(arr, rec) == -1) {
			store_txn_nomem(txn, def->name);
			goto out;
		}
		n++;
		free(next);
		if ((next = store_strndup(pk.data, pk.size)) == NULL) {
			store_txn_nomem(txn, def->name);
			goto out;
		}
	}
	if (!more) {
		free(next);
		next = NULL;
	}
	r->out = arr;	/* steal */
	arr = NULL;
	r->next = next;	/* steal */
	next = NULL;
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed)
		store_txn_dberr(txn, rc, "cursor close", def->name, r->key,
		    r->klen);
	free(k.data);
	free(pk.data);
	free(d.data);
	free(next);
	json_decref(arr);
	return ret;
}

/* r->out = up to r->limit records of the u64 index r->index with key <
 * r->below, ascending. */
static int
store_op_index_below(struct store_txn *txn, struct store_read *r)
{
	const struct store_index_def *def = &store_indexes[r->index];
	DB *sdb = txn->st->idx[r->index];
	DBC *c = NULL;
	DBT k, pk, d;
	json_t *arr = NULL, *rec;
	u_int32_t op = DB_FIRST;
	size_t n = 0;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&pk, 0, sizeof(pk));
	memset(&d, 0, sizeof(d));
	k.flags = DB_DBT_REALLOC;
	pk.flags = DB_DBT_REALLOC;
	d.flags = DB_DBT_REALLOC;
	if ((arr = json_array()) == NULL) {
		store_txn_nomem(txn, def->name);
		goto out;
	}
	if ((rc = sdb->cursor(sdb, txn->tid, &c, 0)) != 0) {
		store_txn_dberr(txn, rc, "cursor", def->name, "", 0);
		goto out;
	}
	while (n < r->limit) {
		rc = c->pget(c, &k, &pk, &d, op);
		op = DB_NEXT;
		if (rc == DB_NOTFOUND)
			break;
		if (rc != 0) {
			store_txn_dberr(txn, rc, "scan", def->name, "", 0);
			goto out;
		}
		if (k.size != 8) {
			log_err("store: %s: corrupt index key of %u bytes",
			    def->name, (unsigned int)k.size);
			store_txn_refuse(txn);
			goto out;
		}
		if (store_get_be64(k.data) >= r->below)
			break;
		if ((rec = store_json_load(txn, def->primary, pk.data,
		    pk.size, d.data, d.size)) == NULL)
			goto out;
		if (json_array_append_new(arr, rec) == -1) {
			store_txn_nomem(txn, def->name);
			goto out;
		}
		n++;
	}
	r->out = arr;	/* steal */
	arr = NULL;
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed)
		store_txn_dberr(txn, rc, "cursor close", def->name, "", 0);
	free(k.data);
	free(pk.data);
	free(d.data);
	json_decref(arr);
	return ret;
}

/* r->count = number of entries under key r->key in index r->index. */
static int
store_op_index_count(struct store_txn *txn, struct store_read *r)
{
	const struct store_index_def *def = &store_indexes[r->index];
	DB *sdb = txn->st->idx[r->index];
	DBC *c = NULL;
	DBT k, d;
	db_recno_t count = 0;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	k.flags = DB_DBT_REALLOC;
	/* Only the position matters: fetch no record bytes. */
	d.flags = DB_DBT_MALLOC | DB_DBT_PARTIAL;
	d.dlen = 0;
	if ((k.data = malloc(r->klen)) == NULL) {
		store_txn_nomem(txn, def->name);
		goto out;
	}
	memcpy(k.data, r->key, r->klen);
	k.size = (u_int32_t)r->klen;
	if ((rc = sdb->cursor(sdb, txn->tid, &c, 0)) != 0) {
		store_txn_dberr(txn, rc, "cursor", def->name, r->key, r->klen);
		goto out;
	}
	rc = c->get(c, &k, &d, DB_SET);
	if (rc == 0)
		rc = c->count(c, &count, 0);
	if (rc != 0 && rc != DB_NOTFOUND) {
		store_txn_dberr(txn, rc, "count", def->name, r->key, r->klen);
		goto out;
	}
	r->count = rc == DB_NOTFOUND ? 0 : (long)count;
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed) {
		store_txn_dberr(txn, rc, "cursor close", def->name, r->key,
		    r->klen);
		ret = -1;
	}
	free(k.data);
	free(d.data);
	return ret;
}

/*
 * Positions c for store_op_range: just after (r->after_key, r->after_pk)
 * when a position is given and lies in the range, else at r->key (the
 * range's first key), else at the first entry. For an index, the cursor
 * seeks the duplicate directly (DB_GET_BOTH_RANGE), so a page deep in a
 * long duplicate list costs its own size; when the position's key or
 * record is gone, the next key takes its place. *skip says the entry
 * found may be the position itself. Returns the BDB status.
 */
static int
store_range_seek(struct store_read *r, DBC *c, DBT *k, DBT *pk, DBT *d,
    bool *skip)
{
	bool after = r->after_len > 0 && (r->klen == 0 ||
	    store_key_cmp(r->after_key, r->after_key_len, r->key,
	    r->klen) >= 0);
	int rc;

	*skip = false;
	if (after && r->use_index) {
		if (store_dbt_set(k, r->after_key, r->after_key_len) == -1 ||
		    store_dbt_set(pk, r->after_pk, r->after_len) == -1)
			return ENOMEM;
		rc = c->pget(c, k, pk, d, DB_GET_BOTH_RANGE);
		if (rc != DB_NOTFOUND) {
			*skip = rc == 0;
			return rc;
		}
		if (store_dbt_set(k, r->after_key, r->after_key_len) == -1)
			return ENOMEM;
		rc = c->pget(c, k, pk, d, DB_SET_RANGE);
		if (rc == 0 && store_key_cmp(k->data, k->size, r->after_key,
		    r->after_key_len) == 0)
			rc = c->pget(c, k, pk, d, DB_NEXT_NODUP);
		return rc;
	}
	if (after) {
		if (store_dbt_set(k, r->after_pk, r->after_len) == -1)
			return ENOMEM;
		*skip = true;
		return c->get(c, k, d, DB_SET_RANGE);
	}
	if (r->klen > 0) {
		if (store_dbt_set(k, r->key, r->klen) == -1)
			return ENOMEM;
		return r->use_index ? c->pget(c, k, pk, d, DB_SET_RANGE) :
		    c->get(c, k, d, DB_SET_RANGE);
	}
	return r->use_index ? c->pget(c, k, pk, d, DB_FIRST) :
	    c->get(c, k, d, DB_FIRST);
}

/*
 * A page of a key range: r->table in key order, or (r->use_index) index
 * r->index in (index key, primary key) order. Entries with r->key <= key
 * (r->klen 0: from the first) and key < r->hi (<= with r->hi_incl; hi
 * NULL: to the last), after the position (r->after_key, r->after_pk)
 * when r->after_len > 0, whose text r->prefilter and record r->filter
 * accept (either may be NULL), at most r->limit. r->out = the array;
 * r->last_key/r->last_pk = the position of the last record returned
 * when another entry follows in the range.
 */
static int
store_op_range(struct store_txn *txn, struct store_read *r)
{
	enum store_table t = r->use_index ? store_indexes[r->index].primary :
	    r->table;
	const char *name = r->use_index ? store_indexes[r->index].name :
	    store_tables[t].name;
	DB *db = r->use_index ? txn->st->idx[r->index] : txn->st->db[t];
	unsigned char *lk = NULL, *lpk = NULL;
	size_t lklen = 0, lpklen = 0, n = 0;
	DBC *c = NULL;
	DBT k, pk, d, *pkp;
	json_t *arr = NULL, *rec;
	bool skip = false, more = false;
	int rc, cmp, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&pk, 0, sizeof(pk));
	memset(&d, 0, sizeof(d));
	k.flags = pk.flags = d.flags = DB_DBT_REALLOC;
	/* In the table the key is the primary key. */
	pkp = r->use_index ? &pk : &k;
	if ((arr = json_array()) == NULL) {
		store_txn_nomem(txn, name);
		goto out;
	}
	if ((rc = db->cursor(db, txn->tid, &c, 0)) != 0) {
		store_txn_dberr(txn, rc, "cursor", name, r->key, r->klen);
		goto out;
	}
	for (rc = store_range_seek(r, c, &k, &pk, &d, &skip); ;
	    rc = r->use_index ? c->pget(c, &k, &pk, &d, DB_NEXT) :
	    c->get(c, &k, &d, DB_NEXT)) {
		if (rc == DB_NOTFOUND)
			break;
		if (rc == ENOMEM) {
			store_txn_nomem(txn, name);
			goto out;
		}
		if (rc != 0) {
			store_txn_dberr(txn, rc, "scan", name, r->key, r->klen);
			goto out;
		}
		if (r->hi != NULL && ((cmp = store_key_cmp(k.data, k.size,
		    r->hi, r->hi_len)) > 0 || (cmp == 0 && !r->hi_incl)))
			break;
		if (skip) {
			skip = false;
			if (store_key_cmp(k.data, k.size, r->after_key,
			    r->after_key_len) == 0 && store_key_cmp(pkp->data,
			    pkp->size, r->after_pk, r->after_len) == 0)
				continue;
		}
		if (n == r->limit) {
			more = true;
			break;
		}
		if (r->prefilter != NULL &&
		    !r->prefilter(d.data, d.size, r->filter_arg))
			continue;
		if ((rec = store_json_load(txn, t, pkp->data, pkp->size,
		    d.data, d.size)) == NULL)
			goto out;
		if (r->filter != NULL && !r->filter(rec, r->filter_arg)) {
			json_decref(rec);
			continue;
		}
		if (json_array_append_new(arr, rec) == -1 ||
		    store_bytes_keep(&lk, &lklen, k.data, k.size) == -1 ||
		    store_bytes_keep(&lpk, &lpklen, pkp->data,
		    pkp->size) == -1) {
			store_txn_nomem(txn, name);
			goto out;
		}
		n++;
	}
	r->out = arr;	/* steal */
	arr = NULL;
	if (more && n > 0) {
		r->last_key = lk;	/* steal */
		r->last_key_len = lklen;
		r->last_pk = lpk;	/* steal */
		r->last_pk_len = lpklen;
		lk = lpk = NULL;
	}
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed) {
		store_txn_dberr(txn, rc, "cursor close", name, r->key,
		    r->klen);
		ret = -1;
	}
	if (ret == -1) {
		free(r->last_key);
		free(r->last_pk);
		r->last_key = r->last_pk = NULL;
		json_decref(r->out);
		r->out = NULL;
	}
	free(lk);
	free(lpk);
	free(k.data);
	free(pk.data);
	free(d.data);
	json_decref(arr);
	return ret;
}

/* ---- generic typed wrappers --------------------------------------------- */

/* The JSON record of table t at key (any bytes), or NULL. */
static json_t *
store_get_json_key(struct store *st, struct store_txn *txn,
    enum store_table t, const void *key, size_t klen)
{
	struct store_read r = { .table = t, .key = key, .klen = klen };

	if (store_read_run(st, txn, store_op_get_json, &r) != 0)
		return NULL;
	return r.out;
}

static json_t *
store_get_json(struct store *st, struct store_txn *txn, enum store_table t,
    const char *id)
{
	size_t len = store_id_len(id);

	return len == 0 ? NULL : store_get_json_key(st, txn, t, id, len);
}

static int
store_put_json(struct store_txn *txn, enum store_table t, const char *id,
    const json_t *rec)
{
	size_t len;

	if (store_write_check(txn, t, id, &len) == -1)
		return -1;
	return store_json_put(txn, t, id, len, rec);
}

static int
store_del_id(struct store_txn *txn, enum store_table t, const char *id)
{
	size_t len;

	if (store_write_check(txn, t, id, &len) == -1)
		return -1;
	return store_raw_del(txn, t, id, len);
}

/* A page of table t (see struct store_page). */
static json_t *
store_page_list(struct store *st, struct store_txn *txn, enum store_table t,
    const struct store_page *page, char **next)
{
	struct store_read r = { .table = t, .want_next = true,
	    .limit = STORE_PAGE_MAX, .skip_exact = true };

	if (next != NULL)
		*next = NULL;
	if (page != NULL) {
		if (page->after != NULL && page->after[0] != '\0') {
			if ((r.klen = store_id_len(page->after)) == 0) {
				log_warn("store: %s list: invalid page "
				    "token", store_tables[t].name);
				return NULL;
			}
			r.key = page->after;
		}
		r.limit = store_clamp_limit(page->limit);
		r.filter = page->filter;
		r.filter_arg = page->arg;
	}
	if (store_read_run(st, txn, store_op_scan, &r) != 0)
		return NULL;
	if (next != NULL)
		*next = r.next;	/* steal */
	else
		free(r.next);
	return r.out;
}

/* Every record of index i under the string key (may be empty array). */
static json_t *
store_index_list(struct store *st, struct store_txn *txn, enum store_index i,
    const void *key, size_t klen)
{
	struct store_read r = { .index = i, .key = key, .klen = klen };

	if (store_read_run(st, txn, store_op_index_dups, &r) != 0)
		return NULL;
	return r.out;
}

/* ---- environment -------------------------------------------------------- */

static void
store_bdb_errcall(const DB_ENV *env, const char *pfx, const char *msg)
{
	(void)env;
	(void)pfx;
	log_err("store: bdb: %s", msg);
}

static void
store_bdb_msgcall(const DB_ENV *env, const char *msg)
{
	(void)env;
	log_info("store: bdb: %s", msg);
}

/*
 * Takes the exclusive lock on DIR/pkid.lock and records our pid in it.
 * The pid goes into the locked file itself (not an atomic rename), since
 * replacing the file would detach the lock from the name.
 */
static int
store_lock(struct store *st)
{
	char path[PATH_MAX], pid[STORE_PID_TEXT_MAX];
	ssize_t n;
	int fd = -1, len, rc = -1;

	if (common_path(path, sizeof(path), "%s/%s", st->dir,
	    STORE_LOCK_FILE) == -1) {
		log_err("store: %s: path too long", st->dir);
		goto out;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    STORE_FILE_MODE);
	if (fd == -1) {
		log_err("store: %s: open: %s", path, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK) {
			log_err("store: %s: flock: %s", path, strerror(errno));
			goto out;
		}
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\r\n")] = '\0';
		log_err("store: %s is in use by another pkid (pid %s, lock "
		    "%s)", st->dir, pid[0] != '\0' ? pid : "unknown", path);
		goto out;
	}
	len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)len, 0) != len)
		log_warn("store: %s: cannot record our pid: %s", path,
		    strerror(errno));
	st->lock_fd = fd;
	fd = -1;
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	return rc;
}

static int
store_env_open(struct store *st, unsigned int flags)
{
	char path[PATH_MAX];
	DB_ENV *env = NULL;
	int rc;

	if (common_path(path, sizeof(path), "%s/%s", st->dir,
	    STORE_ENV_DIR) == -1) {
		log_err("store: %s: path too long", st->dir);
		return -1;
	}
	if (common_mkdirs(path, STORE_DIR_MODE) == -1) {
		log_err("store: %s: mkdir: %s", path, strerror(errno));
		return -1;
	}
	if ((rc = db_env_create(&env, 0)) != 0) {
		log_err("store: %s: db_env_create: %s", path, db_strerror(rc));
		return -1;
	}
	env->set_errcall(env, store_bdb_errcall);
	env->set_msgcall(env, store_bdb_msgcall);
	if ((rc = env->set_cachesize(env, 0, STORE_CACHE_BYTES, 1)) != 0 ||
	    (rc = env->set_lk_detect(env, DB_LOCK_DEFAULT)) != 0 ||
	    (rc = env->set_lk_max_locks(env, STORE_LOCKS_MAX)) != 0 ||
	    (rc = env->set_lk_max_objects(env, STORE_LOCK_OBJECTS_MAX)) != 0 ||
	    (rc = env->set_lk_max_lockers(env, STORE_LOCKERS_MAX)) != 0 ||
	    (rc = env->log_set_config(env, DB_LOG_AUTO_REMOVE, 1)) != 0 ||
	    /* log files written full of zeros when made: a commit's
	     * fdatasync then never has a file size to write as well */
	    (rc = env->log_set_config(env, DB_LOG_ZERO, 1)) != 0 ||
	    ((flags & STORE_F_NOSYNC) != 0 &&
	    (rc = env->set_flags(env, DB_TXN_WRITE_NOSYNC, 1)) != 0)) {
		log_err("store: %s: configure environment: %s", path,
		    db_strerror(rc));
		env->close(env, 0);
		return -1;
	}
	/* DB_RECOVER is safe: the flock guarantees no other process has the
	 * environment open. */
	rc = env->open(env, path, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK |
	    DB_INIT_LOG | DB_INIT_MPOOL | DB_THREAD | DB_RECOVER,
	    STORE_FILE_MODE);
	if (rc != 0) {
		log_err("store: %s: open environment (with recovery): %s",
		    path, db_strerror(rc));
		env->close(env, 0);
		return -1;
	}
	st->env = env;
	return 0;
}

/* Opens (creating) one B-tree file of the environment, in tid (NULL:
 * its own transaction). NULL on failure (logged). */
static DB *
store_db_open(struct store *st, DB_TXN *tid, const char *file,
    u_int32_t dbflags, u_int32_t pagesize)
{
	DB *db = NULL;
	int rc;

	if ((rc = db_create(&db, st->env, 0)) != 0) {
		log_err("store: %s/%s/%s: db_create: %s", st->dir,
		    STORE_ENV_DIR, file, db_strerror(rc));
		return NULL;
	}
	if ((dbflags != 0 && (rc = db->set_flags(db, dbflags)) != 0) ||
	    (pagesize != 0 && (rc = db->set_pagesize(db, pagesize)) != 0)) {
		log_err("store: %s/%s/%s: configure: %s", st->dir,
		    STORE_ENV_DIR, file, db_strerror(rc));
		db->close(db, 0);
		return NULL;
	}
	rc = db->open(db, tid, file, NULL, DB_BTREE,
	    (tid == NULL ? DB_AUTO_COMMIT : 0) | DB_CREATE | DB_THREAD,
	    STORE_FILE_MODE);
	if (rc != 0) {
		log_err("store: %s/%s/%s: open: %s", st->dir, STORE_ENV_DIR,
		    file, db_strerror(rc));
		db->close(db, 0);
		return NULL;
	}
	return db;
}

/* True when file exists in the environment directory. */
static bool
store_file_exists(const struct store *st, const char *file)
{
	char path[PATH_MAX];
	struct stat sb;

	return common_path(path, sizeof(path), "%s/%s/%s", st->dir,
	    STORE_ENV_DIR, file) == 0 && stat(path, &sb) == 0;
}

/* An index build under way: the table's primary key after which the
 * next batch starts (store_build_txn). */
struct store_build {
	size_t		 index;
	unsigned char	*last;		/* NULL: from the first record */
	size_t		 last_len;
	unsigned char	*next;		/* the batch's last key, kept once it
					   committed */
	size_t		 next_len;
	bool		 done;		/* the batch reached the end */
	long		 count;		/* entries written, for the log */
	long		 batch_count;
};

/* The meta key that marks index i as being built. */
static void
store_build_marker(size_t i, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s%s", STORE_META_BUILD_PREFIX,
	    store_indexes[i].file);
}

/*
 * One batch of an index build: up to STORE_BUILD_BATCH records of the
 * table after b->last, their entries written straight into the index
 * (not associated yet). The table is read committed, so the batch holds
 * locks only on the index pages it writes; nothing else runs while the
 * store opens. The last batch removes the build marker in the same
 * transaction, so a crash at any point leaves the marker and the next
 * open starts over.
 */
static int
store_build_txn(struct store_txn *txn, void *arg)
{
	struct store_build *b = arg;
	const struct store_index_def *def = &store_indexes[b->index];
	DB *db = txn->st->db[def->primary], *sdb = txn->st->idx[b->index];
	char marker[STORE_KEY_MAX], repr[STORE_KEY_REPR_MAX];
	unsigned char *skey = NULL;
	size_t slen = 0, n = 0;
	DBC *c = NULL;
	DBT k, d, sk;
	u_int32_t op = DB_FIRST;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	memset(&sk, 0, sizeof(sk));
	k.flags = d.flags = DB_DBT_REALLOC;
	b->done = false;
	b->batch_count = 0;
	if ((rc = db->cursor(db, txn->tid, &c, DB_READ_COMMITTED)) != 0) {
		store_txn_dberr(txn, rc, "cursor", def->name, "", 0);
		goto out;
	}
	if (b->last != NULL) {
		if (store_dbt_set(&k, b->last, b->last_len) == -1) {
			store_txn_nomem(txn, def->name);
			goto out;
		}
		op = DB_SET_RANGE;
	}
	for (;; op = DB_NEXT) {
		rc = c->get(c, &k, &d, op);
		if (rc == DB_NOTFOUND) {
			b->done = true;
			break;
		}
		if (rc != 0) {
			store_txn_dberr(txn, rc, "build", def->name, "", 0);
			goto out;
		}
		if (op == DB_SET_RANGE && store_key_cmp(k.data, k.size,
		    b->last, b->last_len) == 0)
			continue;
		if (n == STORE_BUILD_BATCH)
			break;
		n++;
		free(skey);
		skey = NULL;
		rc = store_index_key(def, k.data, k.size, d.data, d.size,
		    &skey, &slen);
		if (rc == -1) {
			store_key_repr(k.data, k.size, repr, sizeof(repr));
			log_err("store: %s: cannot index record \"%s\" "
			    "(corrupt or out of memory)", def->name, repr);
			store_txn_refuse(txn);
			goto out;
		}
		if (rc == 0) {
			sk.data = skey;
			sk.size = (u_int32_t)slen;
			rc = sdb->put(sdb, txn->tid, &sk, &k,
			    def->unique ? DB_NOOVERWRITE : 0);
			if (rc == DB_KEYEXIST) {
				store_key_repr(skey, slen, repr, sizeof(repr));
				log_err("store: %s: two records share the "
				    "unique value \"%s\"", def->name, repr);
				store_txn_refuse(txn);
				goto out;
			}
			if (rc != 0) {
				store_txn_dberr(txn, rc, "build", def->name,
				    k.data, k.size);
				goto out;
			}
			b->batch_count++;
		}
		if (store_bytes_keep(&b->next, &b->next_len, k.data,
		    k.size) == -1) {
			store_txn_nomem(txn, def->name);
			goto out;
		}
	}
	if (b->done) {
		store_build_marker(b->index, marker, sizeof(marker));
		if (store_raw_del(txn, STORE_T_META, marker,
		    strlen(marker)) == -1)
			goto out;
	}
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed) {
		store_txn_dberr(txn, rc, "cursor close", def->name, "", 0);
		ret = -1;
	}
	free(skey);
	free(k.data);
	free(d.data);
	return ret;
}

/* Starts a build of index i: sets its marker (created is false) and
 * empties what a build that did not finish left behind. */
static int
store_build_start_txn(struct store_txn *txn, void *arg)
{
	size_t i = *(size_t *)arg;
	char marker[STORE_KEY_MAX];
	u_int32_t count = 0;
	int rc;

	store_build_marker(i, marker, sizeof(marker));
	if (store_raw_put(txn, STORE_T_META, marker, strlen(marker), "1", 1,
	    0) == -1)
		return -1;
	if (txn->st->idx[i] != NULL && (rc = txn->st->idx[i]->truncate(
	    txn->st->idx[i], txn->tid, &count, 0)) != 0) {
		store_txn_dberr(txn, rc, "truncate", store_indexes[i].name,
		    "", 0);
		return -1;
	}
	return 0;
}

/* Builds index i (open, not associated) from its table in batches of
 * STORE_BUILD_BATCH records, one transaction each. 0 or -1. */
static int
store_index_build(struct store *st, size_t i)
{
	struct store_build b = { .index = i };
	uint64_t start = common_mono_ms();
	int rc = -1;

	if (store_txn_run(st, store_build_start_txn, &i) != 0)
		goto out;
	do {
		if (store_txn_run(st, store_build_txn, &b) != 0)
			goto out;
		free(b.last);
		b.last = b.next;	/* steal: the batch committed */
		b.last_len = b.next_len;
		b.next = NULL;
		b.count += b.batch_count;
	} while (!b.done);
	log_info("store: %s: index %s built: %ld entries in %" PRIu64 " ms",
	    st->dir, store_indexes[i].name, b.count,
	    common_mono_ms() - start);
	rc = 0;
out:
	if (rc == -1)
		log_err("store: %s: building index %s failed", st->dir,
		    store_indexes[i].name);
	free(b.last);
	free(b.next);
	return rc;
}

/* The meta key that records the key format of index i. */
static void
store_format_marker(size_t i, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s%s", STORE_META_FORMAT_PREFIX,
	    store_indexes[i].file);
}

/* True when meta says the file of index i holds keys of the format its
 * definition wants (the first format has no meta record). */
static bool
store_index_format_ok(struct store *st, size_t i)
{
	char marker[STORE_KEY_MAX], want[STORE_FORMAT_TEXT_MAX], *v;
	bool ok;

	store_format_marker(i, marker, sizeof(marker));
	v = store_meta_get(st, NULL, marker);
	if (store_indexes[i].format == 0) {
		ok = v == NULL;
	} else {
		snprintf(want, sizeof(want), "%u", store_indexes[i].format);
		ok = v != NULL && strcmp(v, want) == 0;
	}
	free(v);
	return ok;
}

/* Records in meta the key format of index i (its file is complete). */
static int
store_format_txn(struct store_txn *txn, void *arg)
{
	size_t i = *(size_t *)arg;
	char marker[STORE_KEY_MAX], text[STORE_FORMAT_TEXT_MAX];

	store_format_marker(i, marker, sizeof(marker));
	snprintf(text, sizeof(text), "%u", store_indexes[i].format);
	return store_meta_put(txn, marker, text);
}

/*
 * Drops the file of index i, whose keys are of another format: the
 * build marker first, so that a crash before the rebuild finishes
 * leaves the marker and the next open builds it again.
 */
static int
store_index_drop(struct store *st, size_t i)
{
	const struct store_index_def *def = &store_indexes[i];
	int rc;

	log_info("store: %s: index %s has keys of an older format: "
	    "rebuilding it", st->dir, def->name);
	if (store_txn_run(st, store_build_start_txn, &i) != 0)
		return -1;
	if ((rc = st->env->dbremove(st->env, NULL, def->file, NULL,
	    DB_AUTO_COMMIT)) != 0) {
		log_err("store: %s: remove %s: %s", st->dir, def->file,
		    db_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * Opens index i and associates it with its table. An index file that
 * does not exist yet (a data directory from before the index, or a file
 * removed to have it rebuilt) is built from the table first, in batches
 * (store_index_build) rather than by DB->associate's DB_CREATE, whose
 * single transaction would lock every page of a large table and exhaust
 * the lock table. A marker in meta, set before the file is created and
 * removed by the last batch, makes an interrupted build start over at
 * the next open. Only a missing or marked file is built: DB_CREATE would
 * also rebuild an existing index that happens to be empty, a walk of
 * the whole table at every open. A file whose key format (meta) is not
 * the one its definition wants is dropped first (store_index_drop), and
 * so built again.
 */
static int
store_index_open(struct store *st, size_t i, bool table_new)
{
	const struct store_index_def *def = &store_indexes[i];
	DB *primary = st->db[def->primary];
	char marker[STORE_KEY_MAX], *v = NULL;
	bool exists, build, format_ok;
	int rc, ret = -1;

	exists = store_file_exists(st, def->file);
	format_ok = store_index_format_ok(st, i);
	if (exists && !format_ok) {
		if (store_index_drop(st, i) == -1)
			goto out;
		exists = false;
	}
	store_build_marker(i, marker, sizeof(marker));
	if ((v = store_meta_get(st, NULL, marker)) != NULL)
		build = true;
	else
		build = !exists && !table_new;
	if (build && !exists &&
	    store_txn_run(st, store_build_start_txn, &i) != 0)
		goto out;
	if ((st->idx[i] = store_db_open(st, NULL, def->file,
	    def->unique ? 0 : DB_DUP | DB_DUPSORT, 0)) == NULL)
		goto out;
	st->idx[i]->app_private = (void *)(uintptr_t)i;
	if (build) {
		log_info("store: %s: building index %s from its table",
		    st->dir, def->name);
		if (store_index_build(st, i) == -1)
			goto out;
	}
	if ((rc = primary->associate(primary, NULL, st->idx[i],
	    store_index_callback, 0)) != 0) {
		log_err("store: %s: associate %s: %s", st->dir, def->name,
		    db_strerror(rc));
		goto out;
	}
	if (!format_ok && def->format != 0 &&
	    store_txn_run(st, store_format_txn, &i) != 0)
		goto out;
	ret = 0;
out:
	free(v);
	return ret;
}

static int
store_tables_open(struct store *st)
{
	bool table_new[STORE_T__MAX];
	size_t i;

	for (i = 0; i < STORE_T__MAX; i++) {
		table_new[i] = !store_file_exists(st, store_tables[i].file);
		if ((st->db[i] = store_db_open(st, NULL, store_tables[i].file,
		    0, store_tables[i].pagesize)) == NULL)
			return -1;
	}
	for (i = 0; i < STORE_I__MAX; i++)
		if (store_index_open(st, i,
		    table_new[store_indexes[i].primary]) == -1)
			return -1;
	if ((st->revoked_plain = store_db_open(st, NULL,
	    store_indexes[STORE_I_ISSUED_REVOKED].file, 0, 0)) == NULL)
		return -1;
	return 0;
}

struct store_schema_arg {
	const char	*dir;
	bool		 mismatch;
};

static int
store_schema_txn(struct store_txn *txn, void *arg)
{
	struct store_schema_arg *a = arg;
	char *v;
	int rc = -1;

	a->mismatch = false;
	v = store_meta_get(NULL, txn, STORE_META_SCHEMA);
	if (txn->failed)
		goto out;
	if (v == NULL) {
		rc = store_meta_put(txn, STORE_META_SCHEMA,
		    STORE_SCHEMA_VERSION);
		goto out;
	}
	/* The tables of the previous version are the same; its indexes
	 * were brought up to date when they were opened. */
	if (strcmp(v, STORE_SCHEMA_PREVIOUS) == 0) {
		log_info("store: %s: schema version \"%s\" upgraded to "
		    "\"%s\"", a->dir, v, STORE_SCHEMA_VERSION);
		rc = store_meta_put(txn, STORE_META_SCHEMA,
		    STORE_SCHEMA_VERSION);
		goto out;
	}
	if (strcmp(v, STORE_SCHEMA_VERSION) != 0) {
		log_err("store: %s: schema version \"%s\" on disk, this build "
		    "reads \"%s\"; refusing to open", a->dir, v,
		    STORE_SCHEMA_VERSION);
		a->mismatch = true;
		goto out;
	}
	rc = 0;
out:
	free(v);
	return rc;
}

static void
store_handles_close(struct store *st)
{
	int i, rc;

	if (st->revoked_plain != NULL && (rc = st->revoked_plain->close(
	    st->revoked_plain, 0)) != 0)
		log_err("store: %s: close %s: %s", st->dir,
		    store_indexes[STORE_I_ISSUED_REVOKED].name,
		    db_strerror(rc));
	st->revoked_plain = NULL;
	/* Secondaries first: they are associated with the primaries. */
	for (i = STORE_I__MAX - 1; i >= 0; i--) {
		if (st->idx[i] != NULL && (rc = st->idx[i]->close(st->idx[i],
		    0)) != 0)
			log_err("store: %s: close %s: %s", st->dir,
			    store_indexes[i].name, db_strerror(rc));
		st->idx[i] = NULL;
	}
	for (i = STORE_T__MAX - 1; i >= 0; i--) {
		if (st->db[i] != NULL && (rc = st->db[i]->close(st->db[i],
		    0)) != 0)
			log_err("store: %s: close %s: %s", st->dir,
			    store_tables[i].name, db_strerror(rc));
		st->db[i] = NULL;
	}
	if (st->env != NULL && (rc = st->env->close(st->env, 0)) != 0)
		log_err("store: %s: close environment: %s", st->dir,
		    db_strerror(rc));
	st->env = NULL;
	if (st->lock_fd != -1)
		close(st->lock_fd);	/* releases the flock */
	st->lock_fd = -1;
}

struct store *
store_open(const char *dir)
{
	return store_open_flags(dir, 0);
}

/*
 * Opens (creating) DIR and DIR/db, takes the process lock, opens the
 * environment with recovery, every table and index (an index file that
 * is new is built from its table), and writes or checks the schema
 * version. STORE_F_NOSYNC commits without fsync (bulk loads, tests).
 * NULL on failure (logged).
 */
struct store *
store_open_flags(const char *dir, unsigned int flags)
{
	struct store_schema_arg sa;
	struct store *st = NULL;
	bool ok = false;

	if (dir == NULL || dir[0] == '\0') {
		log_err("store: open: no data directory");
		goto out;
	}
	if ((flags & ~STORE_F_NOSYNC) != 0) {
		log_err("store: %s: open: unknown flags 0x%x", dir, flags);
		goto out;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		log_err("store: %s: open: out of memory", dir);
		goto out;
	}
	st->lock_fd = -1;
	st->nosync = (flags & STORE_F_NOSYNC) != 0;
	pthread_mutex_init(&st->fl_once, NULL);
	if (common_path(st->dir, sizeof(st->dir), "%s", dir) == -1) {
		log_err("store: %s: path too long", dir);
		goto out;
	}
	if (common_mkdirs(st->dir, STORE_DIR_MODE) == -1) {
		log_err("store: %s: mkdir: %s", st->dir, strerror(errno));
		goto out;
	}
	if (store_lock(st) == -1 || store_env_open(st, flags) == -1 ||
	    store_tables_open(st) == -1)
		goto out;
	sa.dir = st->dir;
	if (store_txn_run(st, store_schema_txn, &sa) != 0) {
		if (!sa.mismatch)
			log_err("store: %s: cannot read or write the schema "
			    "version", st->dir);
		goto out;
	}
	ok = true;
out:
	if (!ok && st != NULL) {
		store_handles_close(st);
		pthread_mutex_destroy(&st->fl_once);
		free(st);
		st = NULL;
	}
	return st;
}

/* Flushes the cache and writes a checkpoint, so recovery after a crash
 * replays little log and old log files can be removed. */
int
store_checkpoint(struct store *st)
{
	int rc;

	if (st == NULL || st->env == NULL)
		return -1;
	if ((rc = st->env->txn_checkpoint(st->env, 0, 0, 0)) != 0) {
		log_err("store: %s: checkpoint: %s", st->dir, db_strerror(rc));
		return -1;
	}
	return 0;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	store_flusher_stop(st);
	if (st->env != NULL)
		(void)store_checkpoint(st);
	store_handles_close(st);
	pthread_mutex_destroy(&st->fl_once);
	free(st);
}

/* ---- consistency check -------------------------------------------------- */

struct store_check_state {
	long	 expected[STORE_I__MAX];	/* primary records indexed */
	int	 problems;
};

/* Tables whose key repeats a field of the record: est_client is keyed by
 * "username", est_request by "id" (which must also be a lower-case hex
 * SHA-256). -1 when the key and the record disagree, else 0. */
static int
store_check_self_key(enum store_table t, const DBT *k, const json_t *rec)
{
	const json_t *f;
	const char *field, *v;

	switch (t) {
	case STORE_T_EST_CLIENT:
		field = "username";
		break;
	case STORE_T_EST_REQUEST:
		field = "id";
		if (!store_sha256_hex_valid(k->data, k->size))
			return -1;
		break;
	default:
		return 0;
	}
	f = json_object_get(rec, field);
	if ((v = json_string_value(f)) == NULL ||
	    json_string_length(f) != k->size ||
	    memcmp(v, k->data, k->size) != 0)
		return -1;
	return 0;
}

/* True when v is present (not null) but of a type the kind of index
 * cannot read (want_int: an integer, else a string). */
static bool
store_check_type_bad(const json_t *v, bool want_int)
{
	if (v == NULL || json_is_null(v))
		return false;
	return want_int ? !json_is_integer(v) : !json_is_string(v);
}

/*
 * The field of rec that index def cannot read although it is set (a
 * "not_after_epoch" written as a string or a real, say): such a record
 * silently falls out of the index or sorts as if it had no value. NULL
 * when every field is absent, null or well typed.
 */
static const char *
store_check_index_fields(const struct store_index_def *def, const json_t *rec)
{
	const json_t *v1 = json_object_get(rec, def->field1);
	const json_t *v2 = def->field2 != NULL ?
	    json_object_get(rec, def->field2) : NULL;

	switch (def->kind) {
	case STORE_IK_STRING:
		return store_check_type_bad(v1, false) ? def->field1 : NULL;
	case STORE_IK_U64:
	case STORE_IK_U64_LAST:
		return store_check_type_bad(v1, true) ? def->field1 : NULL;
	case STORE_IK_PAIR:
	case STORE_IK_PAIR_PK:
	case STORE_IK_REVOKED:
		if (store_check_type_bad(v1, false))
			return def->field1;
		return store_check_type_bad(v2, false) ? def->field2 : NULL;
	case STORE_IK_IDENT:
		if (store_check_type_bad(v1, false))
			return def->field1;
		return v2 != NULL && !json_is_null(v2) && !json_is_object(v2) ?
		    def->field2 : NULL;
	}
	return NULL;
}

/* Checks one primary record: parses, checks the key shape and the types
 * of its indexed fields, and looks up each of its index entries. */
static int
store_check_record(struct store_txn *txn, struct store_check_state *cs,
    enum store_table t, const DBT *k, const DBT *d)
{
	const char *tname = store_tables[t].name, *field;
	char repr[STORE_KEY_REPR_MAX];
	json_error_t jerr;
	json_t *rec = NULL;
	unsigned char *skey = NULL, *pkbuf = NULL;
	size_t slen = 0, i;
	DB *sdb;
	DBT sk, pk, sd;
	int rc, ret = -1;

	memset(&sk, 0, sizeof(sk));
	memset(&pk, 0, sizeof(pk));
	memset(&sd, 0, sizeof(sd));
	store_key_repr(k->data, k->size, repr, sizeof(repr));
	if (store_tables[t].json &&
	    (rec = store_json_parse(d->data, d->size, &jerr)) == NULL) {
		log_err("store: check: %s \"%s\": corrupt record: %s", tname,
		    repr, jerr.text);
		cs->problems++;
		return 0;
	}
	if ((t == STORE_T_VERSION && (k->size < 6 ||
	    memchr(k->data, '\0', k->size - 4) !=
	    (char *)k->data + k->size - 5)) ||
	    (t == STORE_T_AUDIT && (k->size != 8 ||
	    json_integer_value(json_object_get(rec, "seq")) !=
	    (json_int_t)store_get_be64(k->data)))) {
		log_err("store: check: %s \"%s\": malformed key", tname, repr);
		cs->problems++;
	}
	if (store_check_self_key(t, k, rec) == -1) {
		log_err("store: check: %s \"%s\": key does not match the "
		    "record", tname, repr);
		cs->problems++;
	}
	for (i = 0; i < STORE_I__MAX; i++) {
		if (store_indexes[i].primary != t)
			continue;
		if (rec != NULL && (field = store_check_index_fields(
		    &store_indexes[i], rec)) != NULL) {
			log_err("store: check: %s \"%s\": field \"%s\" has a "
			    "type %s cannot index", tname, repr, field,
			    store_indexes[i].name);
			cs->problems++;
		}
		sdb = txn->st->idx[i];
		free(skey);
		skey = NULL;
		rc = rec != NULL ? store_index_key_rec(&store_indexes[i],
		    k->data, k->size, rec, &skey, &slen) :
		    store_index_key(&store_indexes[i], k->data, k->size,
		    d->data, d->size, &skey, &slen);
		if (rc == 1)
			continue;
		if (rc == -1) {
			log_err("store: check: %s \"%s\": cannot build its "
			    "index key", store_indexes[i].name, repr);
			cs->problems++;
			continue;
		}
		cs->expected[i]++;
		sk.data = skey;
		sk.size = (u_int32_t)slen;
		/* DB_THREAD wants a memory flag even on this input DBT:
		 * BDB writes the (identical) primary key back into it. */
		if ((pkbuf = malloc(k->size)) == NULL) {
			store_txn_nomem(txn, "check");
			goto out;
		}
		memcpy(pkbuf, k->data, k->size);
		pk.data = pkbuf;
		pk.size = pk.ulen = k->size;
		pk.flags = DB_DBT_USERMEM;
		sd.flags = DB_DBT_MALLOC | DB_DBT_PARTIAL;
		sd.dlen = 0;
		rc = sdb->pget(sdb, txn->tid, &sk, &pk, &sd, DB_GET_BOTH);
		free(sd.data);
		sd.data = NULL;
		free(pkbuf);
		pkbuf = NULL;
		if (rc == DB_NOTFOUND) {
			log_err("store: check: %s: no entry for %s \"%s\"",
			    store_indexes[i].name, tname, repr);
			cs->problems++;
		} else if (rc != 0) {
			store_txn_dberr(txn, rc, "check",
			    store_indexes[i].name, k->data, k->size);
			goto out;
		}
	}
	ret = 0;
out:
	free(pkbuf);
	free(skey);
	json_decref(rec);
	return ret;
}

/* Walks db (a primary when t >= 0, else index i) and checks each entry;
 * *count = entries seen. */
static int
store_check_walk(struct store_txn *txn, struct store_check_state *cs,
    DB *db, int t, int i, long *count)
{
	const char *name = t >= 0 ? store_tables[t].name :
	    store_indexes[i].name;
	DBC *c = NULL;
	DBT k, pk, d;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&pk, 0, sizeof(pk));
	memset(&d, 0, sizeof(d));
	k.flags = pk.flags = d.flags = DB_DBT_REALLOC;
	*count = 0;
	if ((rc = db->cursor(db, txn->tid, &c, 0)) != 0) {
		store_txn_dberr(txn, rc, "cursor", name, "", 0);
		goto out;
	}
	for (;;) {
		if (t >= 0)
			rc = c->get(c, &k, &d, DB_NEXT);
		else
			rc = c->pget(c, &k, &pk, &d, DB_NEXT);
		if (rc == DB_NOTFOUND)
			break;
		if (rc == DB_SECONDARY_BAD) {
			log_err("store: check: %s: entry without a primary "
			    "record", name);
			cs->problems++;
			continue;
		}
		if (rc != 0) {
			store_txn_dberr(txn, rc, "check", name, "", 0);
			goto out;
		}
		(*count)++;
		if (t >= 0 && store_check_record(txn, cs, (enum store_table)t,
		    &k, &d) == -1)
			goto out;
	}
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed) {
		store_txn_dberr(txn, rc, "cursor close", name, "", 0);
		ret = -1;
	}
	free(k.data);
	free(pk.data);
	free(d.data);
	return ret;
}

static int
store_op_check(struct store_txn *txn, struct store_read *r)
{
	struct store_check_state cs;
	long count;
	int i;

	memset(&cs, 0, sizeof(cs));
	for (i = 0; i < STORE_T__MAX; i++)
		if (store_check_walk(txn, &cs, txn->st->db[i], i, -1,
		    &count) == -1)
			return -1;
	for (i = 0; i < STORE_I__MAX; i++) {
		if (store_check_walk(txn, &cs, txn->st->idx[i], -1, i,
		    &count) == -1)
			return -1;
		if (count != cs.expected[i]) {
			log_err("store: check: %s holds %ld entries, its "
			    "table %ld indexed records", store_indexes[i].name,
			    count, cs.expected[i]);
			cs.problems++;
		}
	}
	r->count = cs.problems;
	return 0;
}

/* Walks every table and index: each record parses, keys are well
 * formed, and every index holds exactly the entries its table implies.
 * 0 when consistent, -1 (each problem logged) otherwise. */
int
store_check(struct store *st)
{
	struct store_read r = { .count = 0 };

	if (store_read_run(st, NULL, store_op_check, &r) != 0)
		return -1;
	if (r.count != 0) {
		log_err("store: %s: check found %ld problem(s)", st->dir,
		    r.count);
		return -1;
	}
	return 0;
}

/* ---- meta --------------------------------------------------------------- */

char *
store_meta_get(struct store *st, struct store_txn *txn, const char *name)
{
	struct store_read r = { .table = STORE_T_META, .key = name };

	if ((r.klen = store_id_len(name)) == 0)
		return NULL;
	if (store_read_run(st, txn, store_op_get_raw, &r) != 0)
		return NULL;
	return (char *)r.raw;
}

int
store_meta_put(struct store_txn *txn, const char *name, const char *value)
{
	size_t len;

	if (store_write_check(txn, STORE_T_META, name, &len) == -1)
		return -1;
	if (value == NULL) {
		log_err("store: meta put \"%s\": no value", name);
		store_txn_refuse(txn);
		return -1;
	}
	return store_raw_put(txn, STORE_T_META, name, len, value,
	    strlen(value), 0);
}

/* ---- ca ----------------------------------------------------------------- */

int
store_ca_put(struct store_txn *txn, const char *id, const json_t *rec)
{
	return store_put_json(txn, STORE_T_CA, id, rec);
}

json_t *
store_ca_get(struct store *st, struct store_txn *txn, const char *id)
{
	return store_get_json(st, txn, STORE_T_CA, id);
}

json_t *
store_ca_list(struct store *st, struct store_txn *txn)
{
	struct store_read r = { .table = STORE_T_CA, .limit = SIZE_MAX };

	if (store_read_run(st, txn, store_op_scan, &r) != 0)
		return NULL;
	return r.out;
}

int
store_ca_del(struct store_txn *txn, const char *id)
{
	return store_del_id(txn, STORE_T_CA, id);
}

/* ---- certificate -------------------------------------------------------- */

/*
 * Refuses (logged, txn failed) a write of rec under primary key id when
 * the unique index i already maps rec's value to another record, so the
 * log names the holder instead of BDB's bare DB_KEYEXIST. 0 when the
 * write may go ahead.
 */
static int
store_unique_check(struct store_txn *txn, enum store_index i, const char *id,
    size_t len, const json_t *rec)
{
	const struct store_index_def *def = &store_indexes[i];
	struct store_read r = { .index = i };
	const json_t *v = json_object_get(rec, def->field1);
	int rc = -1;

	if (!json_is_string(v) || json_string_length(v) == 0)
		return 0;
	r.key = json_string_value(v);
	r.klen = json_string_length(v);
	/* DB_RMW: we are about to write, take the write lock now rather
	 * than deadlock on the upgrade. */
	r.flags = DB_RMW;
	if (store_op_index_get(txn, &r) == 0 &&
	    (strlen((char *)r.raw) != len || memcmp(r.raw, id, len) != 0)) {
		log_warn("store: %s \"%s\": %s \"%s\" is already used by %s "
		    "\"%s\"", store_tables[def->primary].name, id, def->field1,
		    json_string_value(v), store_tables[def->primary].name,
		    (char *)r.raw);
		store_txn_refuse(txn);
		goto out;
	}
	if (txn->failed)
		goto out;
	rc = 0;
out:
	json_decref(r.out);
	free(r.raw);
	return rc;
}

/* Stores a certificate record; a "name" already used by another
 * certificate is refused (store_unique_check). */
int
store_cert_put(struct store_txn *txn, const char *id, const json_t *rec)
{
	size_t len;

	if (store_write_check(txn, STORE_T_CERT, id, &len) == -1 ||
	    store_unique_check(txn, STORE_I_CERT_NAME, id, len, rec) == -1)
		return -1;
	return store_json_put(txn, STORE_T_CERT, id, len, rec);
}

json_t *
store_cert_get(struct store *st, struct store_txn *txn, const char *id)
{
	return store_get_json(st, txn, STORE_T_CERT, id);
}

json_t *
store_cert_by_name(struct store *st, struct store_txn *txn, const char *name)
{
	/* In a caller's txn this is the check that a name is free before
	 * a certificate takes it: the write lock (DB_RMW) now rather than
	 * a deadlock of two such txns on the upgrade. */
	struct store_read r = { .index = STORE_I_CERT_NAME, .key = name,
	    .flags = txn != NULL ? DB_RMW : 0 };

	if (name == NULL ||
	    (r.klen = strnlen(name, STORE_RECORD_MAX + 1)) == 0 ||
	    r.klen > STORE_RECORD_MAX)
		return NULL;
	if (store_read_run(st, txn, store_op_index_get, &r) != 0)
		return NULL;
	free(r.raw);
	return r.out;
}

json_t *
store_cert_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next)
{
	return store_page_list(st, txn, STORE_T_CERT, page, next);
}

long
store_cert_count_by_ca(struct store *st, struct store_txn *txn,
    const char *ca_id)
{
	struct store_read r = { .index = STORE_I_CERT_CA, .key = ca_id };

	if (ca_id == NULL || (r.klen = strlen(ca_id)) == 0)
		return 0;
	if (store_read_run(st, txn, store_op_index_count, &r) != 0)
		return -1;
	return r.count;
}

int
store_cert_del(struct store_txn *txn, const char *id)
{
	return store_del_id(txn, STORE_T_CERT, id);
}

void
store_time_key(time_t t, unsigned char out[STORE_TIME_KEY_LEN])
{
	store_be64(out, t < 0 ? 0 : (uint64_t)t);
}

/* True when range names a known order with sane bounds. */
static bool
store_range_ok(const struct store_range *range)
{
	return range != NULL && (int)range->index >= 0 &&
	    range->index < STORE_CERT_BY__MAX &&
	    (range->lo == NULL || (range->lo_len > 0 &&
	    range->lo_len <= STORE_RECORD_MAX)) &&
	    (range->hi == NULL || (range->hi_len > 0 &&
	    range->hi_len <= STORE_RECORD_MAX));
}

/* True when the range fixes the index key, so a position is an id. */
static bool
store_range_fixed(const struct store_range *range)
{
	return range->index == STORE_CERT_BY_ID ||
	    (range->lo != NULL && range->hi != NULL && range->hi_inclusive &&
	    store_key_cmp(range->lo, range->lo_len, range->hi,
	    range->hi_len) == 0);
}

static int
store_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Decodes a page token of range (see store_cert_scan) into r's position:
 * r->after_key/after_key_len and r->after_pk/after_len, pointing into
 * token or into *buf (malloc'd, to free). 0, or -1 when the token is
 * malformed (or on ENOMEM, logged).
 */
static int
store_token_parse(const struct store_range *range, const char *token,
    unsigned char **buf, struct store_read *r)
{
	const char *colon;
	size_t hexlen, i;
	int hi, lo;

	*buf = NULL;
	if (store_range_fixed(range)) {
		if ((r->after_len = store_id_len(token)) == 0)
			return -1;
		r->after_pk = token;
		r->after_key = range->index == STORE_CERT_BY_ID ? token :
		    range->lo;
		r->after_key_len = range->index == STORE_CERT_BY_ID ?
		    r->after_len : range->lo_len;
		return 0;
	}
	if ((colon = strchr(token, ':')) == NULL)
		return -1;
	hexlen = (size_t)(colon - token);
	if (hexlen == 0 || hexlen % 2 != 0 || hexlen > 2 * STORE_KEY_MAX ||
	    ((range->index == STORE_CERT_BY_NOT_AFTER ||
	    range->index == STORE_CERT_BY_DUE) &&
	    hexlen != 2 * STORE_TIME_KEY_LEN) ||
	    (r->after_len = store_id_len(colon + 1)) == 0)
		return -1;
	if ((*buf = malloc(hexlen / 2)) == NULL) {
		log_err("store: page token: out of memory");
		return -1;
	}
	for (i = 0; i < hexlen / 2; i++) {
		if ((hi = store_hex_digit(token[2 * i])) == -1 ||
		    (lo = store_hex_digit(token[2 * i + 1])) == -1) {
			free(*buf);
			*buf = NULL;
			return -1;
		}
		(*buf)[i] = (unsigned char)(hi << 4 | lo);
	}
	r->after_key = *buf;
	r->after_key_len = hexlen / 2;
	r->after_pk = colon + 1;
	return 0;
}

/* The page token of position (key, pk) in range, to free(); NULL on
 * ENOMEM. */
static char *
store_token_make(const struct store_range *range, const unsigned char *key,
    size_t klen, const unsigned char *pk, size_t pklen)
{
	char *tok;

	if (store_range_fixed(range))
		return store_strndup(pk, pklen);
	if ((tok = malloc(2 * klen + 1 + pklen + 1)) == NULL)
		return NULL;
	common_hex(key, klen, tok);
	tok[2 * klen] = ':';
	memcpy(tok + 2 * klen + 1, pk, pklen);
	tok[2 * klen + 1 + pklen] = '\0';
	return tok;
}

bool
store_cert_token_valid(const struct store_range *range, const char *token)
{
	struct store_read r = { .limit = 0 };
	unsigned char *buf = NULL;
	bool ok;

	if (!store_range_ok(range) || token == NULL)
		return false;
	ok = store_token_parse(range, token, &buf, &r) == 0;
	free(buf);
	return ok;
}

/*
 * A page of certificates in one order and key range (see store.h): the
 * table or one of its secondary indexes, positioned by the page token.
 */
json_t *
store_cert_scan(struct store *st, struct store_txn *txn,
    const struct store_range *range, const struct store_page *page,
    char **next)
{
	struct store_read r = { .table = STORE_T_CERT,
	    .limit = STORE_PAGE_MAX };
	unsigned char *tokbuf = NULL;
	json_t *out = NULL;

	if (next != NULL)
		*next = NULL;
	if (!store_range_ok(range)) {
		log_err("store: certificate scan: invalid range");
		goto out;
	}
	if (range->index != STORE_CERT_BY_ID) {
		r.use_index = true;
		r.index = store_cert_orders[range->index];
	}
	r.key = range->lo;
	r.klen = range->lo != NULL ? range->lo_len : 0;
	r.hi = range->hi;
	r.hi_len = range->hi_len;
	r.hi_incl = range->hi_inclusive;
	if (page != NULL) {
		if (page->after != NULL && page->after[0] != '\0' &&
		    store_token_parse(range, page->after, &tokbuf, &r) == -1) {
			log_warn("store: certificate scan: invalid page token");
			goto out;
		}
		r.limit = store_clamp_limit(page->limit);
		r.filter = page->filter;
		r.filter_arg = page->arg;
		r.prefilter = range->prefilter;
	}
	if (store_read_run(st, txn, store_op_range, &r) != 0)
		goto out;
	if (next != NULL && r.last_pk != NULL &&
	    (*next = store_token_make(range, r.last_key, r.last_key_len,
	    r.last_pk, r.last_pk_len)) == NULL) {
		log_err("store: certificate scan: out of memory");
		json_decref(r.out);
		goto out;
	}
	out = r.out;	/* steal */
out:
	free(r.last_key);
	free(r.last_pk);
	free(tokbuf);
	return out;
}

long
store_cert_count_key(struct store *st, struct store_txn *txn,
    enum store_cert_index index, const void *key, size_t key_len)
{
	struct store_read r = { .key = key, .klen = key_len };

	if ((int)index <= (int)STORE_CERT_BY_ID ||
	    index >= STORE_CERT_BY__MAX || key == NULL || key_len == 0 ||
	    key_len > STORE_RECORD_MAX)
		return -1;
	r.index = store_cert_orders[index];
	if (store_read_run(st, txn, store_op_index_count, &r) != 0)
		return -1;
	return r.count;
}

/* ---- version ------------------------------------------------------------ */

int
store_version_put(struct store_txn *txn, const char *cert_id, uint32_t n,
    const json_t *rec)
{
	unsigned char key[STORE_VKEY_MAX];
	size_t len;

	if (store_write_check(txn, STORE_T_VERSION, cert_id, &len) == -1)
		return -1;
	return store_json_put(txn, STORE_T_VERSION, key,
	    store_version_key(cert_id, len, n, key), rec);
}

json_t *
store_version_get(struct store *st, struct store_txn *txn,
    const char *cert_id, uint32_t n)
{
	unsigned char key[STORE_VKEY_MAX];
	size_t len = store_id_len(cert_id);

	if (len == 0)
		return NULL;
	return store_get_json_key(st, txn, STORE_T_VERSION, key,
	    store_version_key(cert_id, len, n, key));
}

json_t *
store_version_list(struct store *st, struct store_txn *txn,
    const char *cert_id)
{
	unsigned char key[STORE_VKEY_MAX];
	struct store_read r = { .table = STORE_T_VERSION, .key = key,
	    .limit = SIZE_MAX };
	size_t len = store_id_len(cert_id);

	if (len == 0)
		return json_array();
	memcpy(key, cert_id, len);
	key[len] = '\0';
	r.klen = r.prefix = len + 1;
	if (store_read_run(st, txn, store_op_scan, &r) != 0)
		return NULL;
	return r.out;
}

int
store_version_del(struct store_txn *txn, const char *cert_id, uint32_t n)
{
	unsigned char key[STORE_VKEY_MAX];
	size_t len;

	if (store_write_check(txn, STORE_T_VERSION, cert_id, &len) == -1)
		return -1;
	return store_raw_del(txn, STORE_T_VERSION, key,
	    store_version_key(cert_id, len, n, key));
}

/* ---- issued ------------------------------------------------------------- */

int
store_issued_put(struct store_txn *txn, const char *serial, const json_t *rec)
{
	size_t len;

	if (store_write_check(txn, STORE_T_ISSUED, serial, &len) == -1)
		return -1;
	if (!json_is_string(json_object_get(rec, "ca_id")) ||
	    json_string_length(json_object_get(rec, "ca_id")) == 0 ||
	    !json_is_string(json_object_get(rec, "status")) ||
	    !json_is_integer(json_object_get(rec, "not_after"))) {
		log_err("store: issued put \"%s\": record needs \"ca_id\", "
		    "\"status\" and integer \"not_after\"", serial);
		store_txn_refuse(txn);
		return -1;
	}
	return store_json_put(txn, STORE_T_ISSUED, serial, len, rec);
}

/*
 * Inside a caller's txn the read takes the write lock (DB_RMW), found
 * or not: such a read comes before a write of that serial (the serial
 * check of an issuance, a revocation), and two txns that both held the
 * page's read lock would deadlock on the upgrade.
 */
json_t *
store_issued_get(struct store *st, struct store_txn *txn, const char *serial)
{
	struct store_read r = { .table = STORE_T_ISSUED, .key = serial,
	    .flags = txn != NULL ? DB_RMW : 0 };

	if ((r.klen = store_id_len(serial)) == 0)
		return NULL;
	if (store_read_run(st, txn, store_op_get_json, &r) != 0)
		return NULL;
	return r.out;
}

/* The key prefix ca_id + "\0" (+ status + "\0" when status is not NULL)
 * of the (ca_id, status) and revocation indexes into key (at least
 * STORE_KEY_MAX * 2 + 2 bytes); its length, 0 when an argument is not a
 * valid key. */
static size_t
store_issued_prefix(const char *ca_id, const char *status,
    unsigned char *key)
{
	size_t clen = store_id_len(ca_id), slen = 0;

	if (clen == 0 || (status != NULL &&
	    (slen = strnlen(status, STORE_KEY_MAX + 1)) > STORE_KEY_MAX))
		return 0;
	memcpy(key, ca_id, clen);
	key[clen] = '\0';
	if (status == NULL)
		return clen + 1;
	memcpy(key + clen + 1, status, slen);
	key[clen + 1 + slen] = '\0';
	return clen + 1 + slen + 1;
}

json_t *
store_issued_by_ca_status(struct store *st, struct store_txn *txn,
    const char *ca_id, const char *status)
{
	unsigned char lo[STORE_KEY_MAX * 2 + 2], hi[STORE_KEY_MAX * 2 + 2];
	struct store_read r = { .use_index = true,
	    .index = STORE_I_ISSUED_CA_STATUS, .limit = SIZE_MAX };
	size_t len = store_issued_prefix(ca_id, status, lo);

	if (len == 0)
		return json_array();
	/* Keys are the prefix and a serial: those below the prefix with
	 * its closing NUL raised to 1. */
	memcpy(hi, lo, len);
	hi[len - 1] = 1;
	r.key = lo;
	r.klen = len;
	r.hi = hi;
	r.hi_len = len;
	if (store_read_run(st, txn, store_op_range, &r) != 0)
		return NULL;
	free(r.last_key);
	free(r.last_pk);
	return r.out;
}

/*
 * Decodes the revocation index key k (klen bytes) whose ca_id prefix
 * is plen bytes into e, with serial (STORE_KEY_MAX + 1 bytes) and
 * reason (STORE_REASON_MAX + 1) as its strings. -1 when malformed.
 */
static int
store_revoked_decode(const unsigned char *k, size_t klen, size_t plen,
    struct store_revoked *e, char *serial, char *reason)
{
	const unsigned char *p = k + plen, *end = k + klen, *nul;
	size_t slen, rlen;

	if ((nul = memchr(p, '\0', (size_t)(end - p))) == NULL ||
	    (slen = (size_t)(nul - p)) == 0 || slen > STORE_KEY_MAX ||
	    (size_t)(end - nul - 1) < STORE_REVOKED_FIXED ||
	    (rlen = (size_t)(end - nul - 1) - STORE_REVOKED_FIXED) >
	    STORE_REASON_MAX)
		return -1;
	memcpy(serial, p, slen);
	serial[slen] = '\0';
	p = nul + 1;
	e->serial = serial;
	e->has_revoked_at = (p[0] & STORE_REVOKED_HAS_AT) != 0;
	e->has_not_after = (p[0] & STORE_REVOKED_HAS_NA) != 0;
	e->revoked_at = (int64_t)store_get_be64(p + STORE_REVOKED_AT_OFF);
	e->not_after = (int64_t)store_get_be64(p + STORE_REVOKED_NA_OFF);
	e->ca_version = store_get_be32(p + STORE_REVOKED_VER_OFF);
	memcpy(reason, p + STORE_REVOKED_FIXED, rlen);
	reason[rlen] = '\0';
	e->reason = reason;
	return 0;
}

/*
 * Walks the revocation index of ca_id in serial order and calls fn for
 * each entry. Only index pages are read: the `issued` records are not.
 * 0 at the end, -1 when fn stopped the walk or the store failed (txn
 * marked, logged).
 */
int
store_revoked_walk(struct store_txn *txn, const char *ca_id,
    int (*fn)(const struct store_revoked *e, void *arg), void *arg)
{
	const struct store_index_def *def =
	    &store_indexes[STORE_I_ISSUED_REVOKED];
	unsigned char prefix[STORE_KEY_MAX * 2 + 2];
	char serial[STORE_KEY_MAX + 1], reason[STORE_REASON_MAX + 1];
	char repr[STORE_KEY_REPR_MAX];
	struct store_revoked e;
	size_t plen;
	DB *sdb;
	DBC *c = NULL;
	DBT k, pk;
	u_int32_t op = DB_SET_RANGE;
	int rc, ret = -1;

	memset(&k, 0, sizeof(k));
	memset(&pk, 0, sizeof(pk));
	k.flags = pk.flags = DB_DBT_REALLOC;
	if (txn == NULL || fn == NULL) {
		log_err("store: %s walk outside a transaction", def->name);
		return -1;
	}
	if (txn->failed || (plen = store_issued_prefix(ca_id, NULL,
	    prefix)) == 0)
		return txn->failed ? -1 : 0;
	sdb = txn->st->revoked_plain;
	if (store_dbt_set(&k, prefix, plen) == -1) {
		store_txn_nomem(txn, def->name);
		goto out;
	}
	if ((rc = sdb->cursor(sdb, txn->tid, &c, 0)) != 0) {
		store_txn_dberr(txn, rc, "cursor", def->name, prefix, plen);
		goto out;
	}
	/* Through the handle that is not associated, the data of an
	 * entry is the primary key as stored: a get on the secondary would
	 * read each `issued` record (pget) for nothing. */
	for (;; op = DB_NEXT) {
		rc = c->get(c, &k, &pk, op);
		if (rc == DB_NOTFOUND)
			break;
		if (rc != 0) {
			store_txn_dberr(txn, rc, "walk", def->name, prefix,
			    plen);
			goto out;
		}
		if (k.size < plen || memcmp(k.data, prefix, plen) != 0)
			break;
		if (store_revoked_decode(k.data, k.size, plen, &e, serial,
		    reason) == -1) {
			store_key_repr(k.data, k.size, repr, sizeof(repr));
			log_err("store: %s: corrupt key \"%s\"", def->name,
			    repr);
			store_txn_refuse(txn);
			goto out;
		}
		if (fn(&e, arg) != 0)
			goto out;
	}
	ret = 0;
out:
	if (c != NULL && (rc = c->close(c)) != 0 && !txn->failed) {
		store_txn_dberr(txn, rc, "cursor close", def->name, prefix,
		    plen);
		ret = -1;
	}
	free(k.data);
	free(pk.data);
	return ret;
}

json_t *
store_issued_expiring_before(struct store *st, struct store_txn *txn,
    time_t before, size_t limit)
{
	struct store_read r = { .index = STORE_I_ISSUED_NOT_AFTER,
	    .limit = store_clamp_limit(limit) };

	if (before <= 0)
		return json_array();
	r.below = (uint64_t)before;
	if (store_read_run(st, txn, store_op_index_below, &r) != 0)
		return NULL;
	return r.out;
}

/* ---- key ---------------------------------------------------------------- */

int
store_key_put(struct store_txn *txn, const char *id, const void *blob,
    size_t len)
{
	size_t klen;

	if (store_write_check(txn, STORE_T_KEY, id, &klen) == -1)
		return -1;
	if (blob == NULL || len == 0) {
		log_err("store: key put \"%s\": empty key blob", id);
		store_txn_refuse(txn);
		return -1;
	}
	return store_raw_put(txn, STORE_T_KEY, id, klen, blob, len, 0);
}

int
store_key_get(struct store *st, struct store_txn *txn, const char *id,
    unsigned char **blob, size_t *len)
{
	struct store_read r = { .table = STORE_T_KEY, .key = id };

	if ((r.klen = store_id_len(id)) == 0)
		return -1;
	if (store_read_run(st, txn, store_op_get_raw, &r) != 0)
		return -1;
	*blob = r.raw;	/* steal */
	*len = r.rawlen;
	return 0;
}

int
store_key_del(struct store_txn *txn, const char *id)
{
	return store_del_id(txn, STORE_T_KEY, id);
}

/* ---- resource ----------------------------------------------------------- */

int
store_resource_put(struct store_txn *txn, const char *id, const json_t *rec)
{
	return store_put_json(txn, STORE_T_RESOURCE, id, rec);
}

json_t *
store_resource_get(struct store *st, struct store_txn *txn, const char *id)
{
	return store_get_json(st, txn, STORE_T_RESOURCE, id);
}

json_t *
store_resource_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next)
{
	return store_page_list(st, txn, STORE_T_RESOURCE, page, next);
}

int
store_resource_del(struct store_txn *txn, const char *id)
{
	return store_del_id(txn, STORE_T_RESOURCE, id);
}

/* ---- association -------------------------------------------------------- */

int
store_assoc_put(struct store_txn *txn, const char *id, const json_t *rec)
{
	return store_put_json(txn, STORE_T_ASSOC, id, rec);
}

json_t *
store_assoc_get(struct store *st, struct store_txn *txn, const char *id)
{
	return store_get_json(st, txn, STORE_T_ASSOC, id);
}

json_t *
store_assoc_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next)
{
	return store_page_list(st, txn, STORE_T_ASSOC, page, next);
}

json_t *
store_assoc_by_cert(struct store *st, struct store_txn *txn,
    const char *cert_id)
{
	size_t len = store_id_len(cert_id);

	if (len == 0)
		return json_array();
	return store_index_list(st, txn, STORE_I_ASSOC_CERT, cert_id, len);
}

json_t *
store_assoc_by_resource(struct store *st, struct store_txn *txn,
    const char *resource_id)
{
	size_t len = store_id_len(resource_id);

	if (len == 0)
		return json_array();
	return store_index_list(st, txn, STORE_I_ASSOC_RESOURCE, resource_id,
	    len);
}

int
store_assoc_del(struct store_txn *txn, const char *id)
{
	return store_del_id(txn, STORE_T_ASSOC, id);
}

/* ---- audit -------------------------------------------------------------- */

/*
 * Appends a copy of rec with "seq" set to the next sequence number. The
 * counter lives in meta and is read with DB_RMW in the same txn, so
 * concurrent appends serialise and a number is never reused, even if
 * audit records were ever removed.
 */
int
store_audit_append(struct store_txn *txn, const json_t *rec, uint64_t *seq)
{
	struct store_read r = { .table = STORE_T_META,
	    .key = STORE_META_AUDIT_SEQ, .flags = DB_RMW };
	char text[STORE_U64_TEXT_MAX], *end;
	unsigned char key[8];
	json_t *copy = NULL;
	char *s = NULL;
	uint64_t last = 0;
	int rc = -1;

	r.klen = strlen(STORE_META_AUDIT_SEQ);
	if (txn == NULL) {
		log_err("store: audit append outside a transaction");
		goto out;
	}
	if (txn->failed)
		goto out;
	if (!json_is_object(rec)) {
		log_err("store: audit append: record is not a JSON object");
		store_txn_refuse(txn);
		goto out;
	}
	if (store_op_get_raw(txn, &r) == 0) {
		errno = 0;
		last = strtoull((char *)r.raw, &end, 10);
		if (errno != 0 || end == (char *)r.raw || *end != '\0' ||
		    last >= (uint64_t)INT64_MAX) {
			log_err("store: meta \"%s\": corrupt value \"%s\"",
			    STORE_META_AUDIT_SEQ, (char *)r.raw);
			store_txn_refuse(txn);
			goto out;
		}
	} else if (txn->failed) {
		goto out;
	}
	if ((copy = json_deep_copy(rec)) == NULL ||
	    json_object_set_new(copy, "seq",
	    json_integer((json_int_t)(last + 1))) == -1) {
		store_txn_nomem(txn, "audit append");
		goto out;
	}
	if ((s = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		log_err("store: audit append: cannot serialise the record");
		store_txn_refuse(txn);
		goto out;
	}
	snprintf(text, sizeof(text), "%" PRIu64, last + 1);
	if (store_raw_put(txn, STORE_T_META, STORE_META_AUDIT_SEQ, r.klen,
	    text, strlen(text), 0) == -1)
		goto out;
	store_be64(key, last + 1);
	/* DB_NOOVERWRITE: append-only, an existing seq is never replaced. */
	rc = store_text_put(txn, STORE_T_AUDIT, key, sizeof(key), s, copy,
	    DB_NOOVERWRITE);
	if (rc == 0 && seq != NULL)
		*seq = last + 1;
out:
	free(s);
	free(r.raw);
	json_decref(copy);
	return rc;
}

json_t *
store_audit_list(struct store *st, struct store_txn *txn, uint64_t after,
    size_t limit)
{
	unsigned char key[8];
	struct store_read r = { .table = STORE_T_AUDIT, .key = key,
	    .klen = sizeof(key), .limit = store_clamp_limit(limit) };

	if (after >= (uint64_t)INT64_MAX)
		return json_array();
	store_be64(key, after + 1);
	if (store_read_run(st, txn, store_op_scan, &r) != 0)
		return NULL;
	return r.out;
}

/*
 * A page of the audit trail after seq, optionally only one object's
 * records (through the index by object, whose duplicates sort by seq).
 */
json_t *
store_audit_scan(struct store *st, struct store_txn *txn, uint64_t after,
    const char *object, size_t limit,
    bool (*filter)(const json_t *rec, void *arg), void *arg, uint64_t *next)
{
	unsigned char start[8], pos[8];
	struct store_read r = { .table = STORE_T_AUDIT,
	    .limit = store_clamp_limit(limit), .filter = filter,
	    .filter_arg = arg };
	json_t *out = NULL;

	if (next != NULL)
		*next = 0;
	if (after >= (uint64_t)INT64_MAX)
		return json_array();
	if (object != NULL) {
		if ((r.klen = store_id_len(object)) == 0)
			return json_array();
		r.use_index = true;
		r.index = STORE_I_AUDIT_OBJECT;
		r.key = r.hi = r.after_key = object;
		r.hi_len = r.after_key_len = r.klen;
		r.hi_incl = true;
		if (after > 0) {
			store_be64(pos, after);
			r.after_pk = pos;
			r.after_len = sizeof(pos);
		}
	} else {
		store_be64(start, after + 1);
		r.key = start;
		r.klen = sizeof(start);
	}
	if (store_read_run(st, txn, store_op_range, &r) != 0)
		goto out;
	if (next != NULL && r.last_pk != NULL && r.last_pk_len == 8)
		*next = store_get_be64(r.last_pk);
	out = r.out;	/* steal */
out:
	free(r.last_key);
	free(r.last_pk);
	return out;
}

/* ---- acme_account ------------------------------------------------------- */

/* Stores an account; a "thumbprint" (account key) already held by
 * another account is refused (store_unique_check). */
int
store_acme_account_put(struct store_txn *txn, const char *id,
    const json_t *rec)
{
	size_t len;

	if (store_write_check(txn, STORE_T_ACME_ACCOUNT, id, &len) == -1 ||
	    store_unique_check(txn, STORE_I_ACME_ACCOUNT_THUMBPRINT, id, len,
	    rec) == -1)
		return -1;
	return store_json_put(txn, STORE_T_ACME_ACCOUNT, id, len, rec);
}

json_t *
store_acme_account_get(struct store *st, struct store_txn *txn,
    const char *id)
{
	return store_get_json(st, txn, STORE_T_ACME_ACCOUNT, id);
}

json_t *
store_acme_account_by_thumbprint(struct store *st, struct store_txn *txn,
    const char *thumbprint)
{
	struct store_read r = { .index = STORE_I_ACME_ACCOUNT_THUMBPRINT,
	    .key = thumbprint };

	if ((r.klen = store_id_len(thumbprint)) == 0)
		return NULL;
	if (store_read_run(st, txn, store_op_index_get, &r) != 0)
		return NULL;
	free(r.raw);
	return r.out;
}

/* ---- acme_order --------------------------------------------------------- */

int
store_acme_order_put(struct store_txn *txn, const char *id, const json_t *rec)
{
	return store_put_json(txn, STORE_T_ACME_ORDER, id, rec);
}

json_t *
store_acme_order_get(struct store *st, struct store_txn *txn, const char *id)
{
	return store_get_json(st, txn, STORE_T_ACME_ORDER, id);
}

json_t *
store_acme_order_by_serial(struct store *st, struct store_txn *txn,
    const char *serial)
{
	struct store_read r = { .index = STORE_I_ACME_ORDER_SERIAL,
	    .key = serial };

	if ((r.klen = store_id_len(serial)) == 0)
		return NULL;
	if (store_read_run(st, txn, store_op_index_get, &r) != 0)
		return NULL;
	free(r.raw);
	return r.out;
}

/*
 * A page of the orders of account_id in order-id order: at most limit
 * (clamped to 1..STORE_PAGE_MAX) records with id > after (NULL or "" for
 * the start). *next (to free(), when next is not NULL) is the last id
 * returned when more may follow, else NULL. NULL on failure or a
 * malformed token.
 */
json_t *
store_acme_orders_by_account(struct store *st, struct store_txn *txn,
    const char *account_id, const char *after, size_t limit, char **next)
{
	struct store_read r = { .index = STORE_I_ACME_ORDER_ACCOUNT,
	    .key = account_id, .limit = store_clamp_limit(limit) };

	if (next != NULL)
		*next = NULL;
	if ((r.klen = store_id_len(account_id)) == 0)
		return json_array();
	if (after != NULL && after[0] != '\0') {
		if ((r.after_len = store_id_len(after)) == 0) {
			log_warn("store: acme_order list of account \"%s\": "
			    "invalid page token", account_id);
			return NULL;
		}
		r.after_pk = after;
	}
	if (store_read_run(st, txn, store_op_index_page, &r) != 0)
		return NULL;
	if (next != NULL)
		*next = r.next;	/* steal */
	else
		free(r.next);
	return r.out;
}

/* ---- acme_authz --------------------------------------------------------- */

int
store_acme_authz_put(struct store_txn *txn, const char *id, const json_t *rec)
{
	return store_put_json(txn, STORE_T_ACME_AUTHZ, id, rec);
}

json_t *
store_acme_authz_get(struct store *st, struct store_txn *txn, const char *id)
{
	return store_get_json(st, txn, STORE_T_ACME_AUTHZ, id);
}

/* Every authorisation of account_id for the identifier (ident_type,
 * ident_value), whatever its status, in authz-id order (an empty array
 * when none). NULL on failure. */
json_t *
store_acme_authz_by_account_ident(struct store *st, struct store_txn *txn,
    const char *account_id, const char *ident_type, const char *ident_value)
{
	unsigned char *key = NULL;
	size_t klen = 0, alen = store_id_len(account_id), tlen, vlen;
	json_t *arr;

	if (alen == 0 || ident_type == NULL || ident_value == NULL ||
	    (tlen = strnlen(ident_type, STORE_KEY_MAX + 1)) > STORE_KEY_MAX ||
	    (vlen = strnlen(ident_value, STORE_KEY_MAX + 1)) > STORE_KEY_MAX)
		return json_array();
	if (store_ident_make(account_id, alen, ident_type, tlen, ident_value,
	    vlen, &key, &klen) == 1)
		return json_array();
	if (key == NULL) {
		log_err("store: acme_authz lookup: out of memory");
		return NULL;
	}
	arr = store_index_list(st, txn, STORE_I_ACME_AUTHZ_IDENT, key, klen);
	free(key);
	return arr;
}

/* ---- eab_key ------------------------------------------------------------ */

int
store_eab_put(struct store_txn *txn, const char *kid, const json_t *rec)
{
	return store_put_json(txn, STORE_T_EAB_KEY, kid, rec);
}

json_t *
store_eab_get(struct store *st, struct store_txn *txn, const char *kid)
{
	return store_get_json(st, txn, STORE_T_EAB_KEY, kid);
}

json_t *
store_eab_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next)
{
	return store_page_list(st, txn, STORE_T_EAB_KEY, page, next);
}

int
store_eab_del(struct store_txn *txn, const char *kid)
{
	return store_del_id(txn, STORE_T_EAB_KEY, kid);
}

/* ---- est_client --------------------------------------------------------- */

int
store_est_client_put(struct store_txn *txn, const char *username,
    const json_t *rec)
{
	return store_put_json(txn, STORE_T_EST_CLIENT, username, rec);
}

json_t *
store_est_client_get(struct store *st, struct store_txn *txn,
    const char *username)
{
	return store_get_json(st, txn, STORE_T_EST_CLIENT, username);
}

json_t *
store_est_client_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next)
{
	return store_page_list(st, txn, STORE_T_EST_CLIENT, page, next);
}

int
store_est_client_del(struct store_txn *txn, const char *username)
{
	return store_del_id(txn, STORE_T_EST_CLIENT, username);
}

/* ---- est_request -------------------------------------------------------- */

/* Stores a request; an id that is not a lower-case hex SHA-256 is
 * refused (logged, txn failed). */
int
store_est_request_put(struct store_txn *txn, const char *id,
    const json_t *rec)
{
	size_t len;

	if (store_write_check(txn, STORE_T_EST_REQUEST, id, &len) == -1)
		return -1;
	if (!store_sha256_hex_valid(id, len)) {
		log_err("store: est_request write: key is not a lower-case "
		    "hex SHA-256");
		store_txn_refuse(txn);
		return -1;
	}
	return store_json_put(txn, STORE_T_EST_REQUEST, id, len, rec);
}

json_t *
store_est_request_get(struct store *st, struct store_txn *txn, const char *id)
{
	return store_get_json(st, txn, STORE_T_EST_REQUEST, id);
}

json_t *
store_est_request_list(struct store *st, struct store_txn *txn,
    const struct store_page *page, char **next)
{
	return store_page_list(st, txn, STORE_T_EST_REQUEST, page, next);
}
