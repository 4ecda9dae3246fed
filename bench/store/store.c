/*
 * bench/store — the store at inventory scale.
 *
 * In a fresh data directory opened as pkid opens it (durable commits,
 * the default cache), with a root and an issuing ECDSA P-256 CA:
 *
 *  1. inserts --rows certificate records (default a million) through
 *     store_cert_put(), --batch per transaction, shaped as lifecycle
 *     writes them (ids random, notAfter spread over a year, origins
 *     acme/est/mgmt), checkpointing every STOREBENCH_CHECKPOINT_SECONDS
 *     as pkid's jobs thread does: the insert rate;
 *  2. closes and reopens the store (recovery, cold cache) and asks
 *     lifecycle_cert_list() for the first page of expiring_within_days=30
 *     (the public API, so an indexed implementation is what is timed):
 *     the first call, then the median and p99 of repeats;
 *  3. writes --revoked revoked `issued` rows of the issuing CA with
 *     store_issued_put() and times ca_crl_publish(), checking that the
 *     CRL lists every one of them;
 *  4. reports the size of the data directory (as du: allocated blocks)
 *     after a checkpoint, and this process's peak RSS.
 *
 * Prints the results object of bench/README.md ({"name", "rows",
 * "details"}) to stdout or --out; bench/run adds pkid's idle RSS and the
 * reproduction command.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/common.h"
#include "lifecycle/lifecycle.h"
#include "store/store.h"

#define STOREBENCH_ROWS			1000000L
#define STOREBENCH_ROWS_MAX		100000000L
#define STOREBENCH_BATCH		1000L	/* records per transaction */
#define STOREBENCH_BATCH_MAX		10000L
#define STOREBENCH_REVOKED		100000L
#define STOREBENCH_EXPIRING_DAYS	30.0	/* the query's window */
#define STOREBENCH_PAGE_TARGET_MS	50.0
#define STOREBENCH_CRL_TARGET_S		1.0
#define STOREBENCH_QUERY_REPEATS	20
#define STOREBENCH_CHECKPOINT_SECONDS	60.0	/* server/main.c's period */
#define STOREBENCH_PROGRESS_SECONDS	10.0
#define STOREBENCH_DAY			86400L
#define STOREBENCH_PAST_DAYS		30L	/* notAfter from now - this */
#define STOREBENCH_SPAN_DAYS		395L	/* ... over this many days */
#define STOREBENCH_CRL_NEXT_UPDATE	(2 * STOREBENCH_DAY)
#define STOREBENCH_ID_MAX		32	/* "cert-" + 16 hex + NUL */
#define STOREBENCH_NAME_MAX		96
#define STOREBENCH_SERIAL_BYTES		16	/* 128-bit serials, as pkid */
#define STOREBENCH_NFTW_FDS		16
#define STOREBENCH_MB			(1024.0 * 1024.0)
#define STOREBENCH_FILE_SHOWN		(1024ULL * 1024)	/* files listed
							   in the details */
#define STOREBENCH_NUM_MAX		32	/* "1,000,000" */

struct storebench {
	long		 rows;
	long		 batch;
	long		 revoked;
	bool		 keep;
	char		 dir[PATH_MAX];
	struct store	*st;
	struct ca_ctx	*ctx;
	struct lifecycle *lc;
	char		 root_id[LIFECYCLE_ID_MAX];
	char		 ca_id[LIFECYCLE_ID_MAX];
	time_t		 now;		/* fixed for the whole run */
	unsigned char	 seed[8];	/* makes ids differ between runs */
	char		*der_b64;	/* a real leaf, for `issued` rows */
	json_t		*details;
	json_t		*rows_out;
};

static double
storebench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SplitMix64: a fast, well-mixed function of the record number, so a
 * retried batch rebuilds exactly the same records. */
static uint64_t
storebench_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t
storebench_seed(const struct storebench *b)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < sizeof(b->seed); i++)
		s = (s << 8) | b->seed[i];
	return s;
}

/* v with thousands separators ("1,000,000") into out. */
static void
storebench_thousands(long v, char *out, size_t outlen)
{
	char digits[32];
	size_t n, i, o = 0;

	snprintf(digits, sizeof(digits), "%ld", v < 0 ? -v : v);
	n = strlen(digits);
	if (v < 0 && o + 1 < outlen)
		out[o++] = '-';
	for (i = 0; i < n && o + 1 < outlen; i++) {
		if (i > 0 && (n - i) % 3 == 0 && o + 2 < outlen)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
}

/* ---- 1. certificate records ---- */

/*
 * The certificate record number i, as lifecycle writes one for an ACME,
 * EST or management-API certificate with one current version. New
 * reference; NULL on allocation failure. id receives its id.
 */
static json_t *
storebench_cert_record(const struct storebench *b, long i, char *id,
    size_t idlen)
{
	static const char *const origins[] = { "acme", "acme", "acme", "acme",
	    "acme", "acme", "est", "est", "est", "mgmt" };
	char name[STOREBENCH_NAME_MAX], subject[STOREBENCH_NAME_MAX + 3];
	char serial[2 * STOREBENCH_SERIAL_BYTES + 1];
	char nb[LIFECYCLE_TIME_MAX], na[LIFECYCLE_TIME_MAX];
	char due[LIFECYCLE_TIME_MAX], created[LIFECYCLE_TIME_MAX];
	uint64_t h = storebench_mix(storebench_seed(b) ^ (uint64_t)i);
	uint64_t h2 = storebench_mix(h);
	const char *origin = origins[h2 % 10];
	bool managed = strcmp(origin, "mgmt") == 0;
	time_t tna, tnb, tdue;
	json_t *renewal;

	snprintf(id, idlen, "cert-%016llx", (unsigned long long)h);
	snprintf(serial, sizeof(serial), "%016llX%016llX",
	    (unsigned long long)(h2 | 0x1000000000000000ULL),
	    (unsigned long long)storebench_mix(h2));
	snprintf(name, sizeof(name), "d%ld.svc%ld.bench.example", i,
	    i % 1000);
	snprintf(subject, sizeof(subject), "CN=%s", name);
	tna = b->now - STOREBENCH_PAST_DAYS * STOREBENCH_DAY +
	    (time_t)(h2 % (uint64_t)(STOREBENCH_SPAN_DAYS * STOREBENCH_DAY));
	tnb = tna - 90 * STOREBENCH_DAY;
	/* renew_before_days 30, or for ACME/EST a third of 90 days. */
	tdue = tna - 30 * STOREBENCH_DAY;
	common_time_rfc3339(tna, na, sizeof(na));
	common_time_rfc3339(tnb, nb, sizeof(nb));
	common_time_rfc3339(tdue, due, sizeof(due));
	common_time_rfc3339(tnb, created, sizeof(created));
	renewal = managed ? json_pack("{s:i, s:b}", "renew_before_days", 30,
	    "reuse_key", 0) : json_null();
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:s,"
	    " s:i, s:o, s:i, s:i, s:s, s:s, s:b, s:n, s:s, s:I, s:s, s:I,"
	    " s:s, s:s, s:s, s:I}",
	    "id", id, "name", name, "mode", managed ? "managed" : "external",
	    "origin", origin, "ca_id", b->ca_id, "profile",
	    managed ? "tls_server_or_client" : "tls_server",
	    "subject", subject, "sans", name, "key_algorithm", "ECDSA_P256",
	    "validity_days", 90, "renewal", renewal,
	    "current_version", 1, "latest_version", 1,
	    "created_at", created, "state", "active", "renewal_due", 0,
	    "deletion",
	    "due_at", due, "due_at_epoch", (json_int_t)tdue,
	    "not_after", na, "not_after_epoch", (json_int_t)tna,
	    "stage", "current", "serial", serial, "not_before", nb,
	    "expiry_check_epoch", (json_int_t)tna);
}

struct storebench_batch {
	struct storebench	*b;
	long			 first;
	long			 count;
	bool			 nomem;
};

/* store_txn_run body: records first .. first+count-1. */
static int
storebench_insert_txn(struct store_txn *txn, void *arg)
{
	struct storebench_batch *t = arg;
	char id[STOREBENCH_ID_MAX];
	json_t *rec;
	long i;
	int rc;

	for (i = t->first; i < t->first + t->count; i++) {
		if ((rec = storebench_cert_record(t->b, i, id,
		    sizeof(id))) == NULL) {
			t->nomem = true;
			return -1;
		}
		rc = store_cert_put(txn, id, rec);
		json_decref(rec);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* Inserts b->rows records; appends the insert row and details. */
static int
storebench_insert(struct storebench *b)
{
	struct storebench_batch t;
	double start, last_cp, last_report, now, elapsed;
	long done = 0, checkpoints = 0;
	char metric[256], rows[STOREBENCH_NUM_MAX], batch[STOREBENCH_NUM_MAX];

	memset(&t, 0, sizeof(t));
	t.b = b;
	start = last_cp = last_report = storebench_now();
	while (done < b->rows) {
		t.first = done;
		t.count = b->rows - done < b->batch ? b->rows - done : b->batch;
		if (store_txn_run(b->st, storebench_insert_txn, &t) != 0) {
			log_err("store bench: insert of records %ld..%ld "
			    "failed%s", t.first, t.first + t.count - 1,
			    t.nomem ? ": out of memory" : "");
			return -1;
		}
		done += t.count;
		now = storebench_now();
		if (now - last_cp >= STOREBENCH_CHECKPOINT_SECONDS) {
			if (store_checkpoint(b->st) == -1)
				return -1;
			checkpoints++;
			last_cp = now;
		}
		if (now - last_report >= STOREBENCH_PROGRESS_SECONDS) {
			fprintf(stderr, "store: %ld records, %.0f/s\n", done,
			    (double)done / (now - start));
			last_report = now;
		}
	}
	elapsed = storebench_now() - start;
	storebench_thousands(b->rows, rows, sizeof(rows));
	storebench_thousands(b->batch, batch, sizeof(batch));
	snprintf(metric, sizeof(metric), "store: %s certificate records "
	    "inserted with store_cert_put, %s per durable transaction "
	    "(records/s)", rows, batch);
	json_array_append_new(b->rows_out, json_pack("{s:s, s:f, s:s, s:n,"
	    " s:n, s:s, s:n}", "metric", metric,
	    "pkid", (double)b->rows / elapsed, "peer_name", "", "peer",
	    "ratio", "target", "", "ok"));
	json_object_set_new(b->details, "insert", json_pack("{s:I, s:I,"
	    " s:f, s:f, s:I}", "records", (json_int_t)b->rows,
	    "per_transaction", (json_int_t)b->batch, "seconds", elapsed,
	    "per_second", (double)b->rows / elapsed,
	    "checkpoints", (json_int_t)checkpoints));
	fprintf(stderr, "store: inserted %ld records in %.1f s\n", b->rows,
	    elapsed);
	return 0;
}

/* ---- 2. the inventory query ---- */

static int
storebench_dbl_cmp(const void *a, const void *c)
{
	double x = *(const double *)a, y = *(const double *)c;

	return x < y ? -1 : x > y;
}

/* One lifecycle_cert_list call: its time in ms into *ms, its result
 * (new reference) or NULL with the reason logged. */
static json_t *
storebench_query(struct storebench *b, const struct lifecycle_query *q,
    double *ms)
{
	struct common_error err;
	double t0 = storebench_now();
	json_t *res;

	common_error_clear(&err);
	res = lifecycle_cert_list(b->lc, q, &err);
	*ms = (storebench_now() - t0) * 1000.0;
	if (res == NULL)
		log_err("store bench: lifecycle_cert_list: %s", err.msg);
	return res;
}

static void
storebench_query_init(struct lifecycle_query *q)
{
	memset(q, 0, sizeof(*q));
	q->expiring_within_days = -1;
	q->renewal_due = -1;
}

/*
 * The first page of expiring_within_days=30 after a reopen: first call,
 * repeats, the second page, and two reference queries (no filter; a
 * name filter that matches nothing inside the window, which walks it).
 */
static int
storebench_queries(struct storebench *b)
{
	struct lifecycle_query q;
	double first, times[STOREBENCH_QUERY_REPEATS], second, plain, miss;
	double ms;
	size_t n, i;
	char *token = NULL;
	char metric[256], target[64], rows[STOREBENCH_NUM_MAX];
	json_t *res = NULL, *certs;
	const json_t *rec;
	int rc = -1;

	storebench_query_init(&q);
	q.expiring_within_days = STOREBENCH_EXPIRING_DAYS;
	if ((res = storebench_query(b, &q, &first)) == NULL)
		goto out;
	certs = json_object_get(res, "certificates");
	n = json_array_size(certs);
	/* The answer must be right, not only fast. */
	json_array_foreach(certs, i, rec) {
		if (json_integer_value(json_object_get(rec,
		    "not_after_epoch")) >= b->now + (json_int_t)(
		    STOREBENCH_EXPIRING_DAYS * STOREBENCH_DAY) + 60) {
			log_err("store bench: %s is not expiring within %.0f "
			    "days", json_string_value(json_object_get(rec,
			    "id")), STOREBENCH_EXPIRING_DAYS);
			goto out;
		}
	}
	if (n != LIFECYCLE_PAGE_DEFAULT && b->rows > 10L *
	    LIFECYCLE_PAGE_DEFAULT) {
		log_err("store bench: first page holds %zu certificates, not "
		    "%d", n, LIFECYCLE_PAGE_DEFAULT);
		goto out;
	}
	if (json_string_value(json_object_get(res, "next_page_token")) != NULL)
		token = strdup(json_string_value(json_object_get(res,
		    "next_page_token")));
	json_decref(res);
	res = NULL;
	for (i = 0; i < STOREBENCH_QUERY_REPEATS; i++) {
		if ((res = storebench_query(b, &q, &times[i])) == NULL)
			goto out;
		json_decref(res);
		res = NULL;
	}
	qsort(times, STOREBENCH_QUERY_REPEATS, sizeof(times[0]),
	    storebench_dbl_cmp);
	second = -1;
	if (token != NULL) {
		q.page_token = token;
		if ((res = storebench_query(b, &q, &second)) == NULL)
			goto out;
		json_decref(res);
		res = NULL;
		q.page_token = NULL;
	}
	storebench_query_init(&q);
	if ((res = storebench_query(b, &q, &plain)) == NULL)
		goto out;
	json_decref(res);
	res = NULL;
	q.expiring_within_days = STOREBENCH_EXPIRING_DAYS;
	q.name = "no-such-name-anywhere";
	if ((res = storebench_query(b, &q, &miss)) == NULL)
		goto out;
	json_decref(res);
	res = NULL;

	ms = times[STOREBENCH_QUERY_REPEATS / 2];
	storebench_thousands(b->rows, rows, sizeof(rows));
	snprintf(metric, sizeof(metric), "inventory: first page (%d) of "
	    "expiring_within_days=%.0f at %s certificates, first call after "
	    "reopen (ms)", LIFECYCLE_PAGE_DEFAULT, STOREBENCH_EXPIRING_DAYS,
	    rows);
	snprintf(target, sizeof(target), "< %.0f ms",
	    STOREBENCH_PAGE_TARGET_MS);
	json_array_append_new(b->rows_out, json_pack("{s:s, s:f, s:s, s:n,"
	    " s:n, s:s, s:b}", "metric", metric, "pkid", first,
	    "peer_name", "", "peer", "ratio", "target", target,
	    "ok", first < STOREBENCH_PAGE_TARGET_MS));
	snprintf(metric, sizeof(metric), "inventory: same query repeated, "
	    "median of %d (ms)", STOREBENCH_QUERY_REPEATS);
	json_array_append_new(b->rows_out, json_pack("{s:s, s:f, s:s, s:n,"
	    " s:n, s:s, s:b}", "metric", metric, "pkid", ms,
	    "peer_name", "", "peer", "ratio", "target", target,
	    "ok", ms < STOREBENCH_PAGE_TARGET_MS));
	json_object_set_new(b->details, "query", json_pack("{s:f, s:f, s:f,"
	    " s:f, s:f, s:f, s:f, s:I}",
	    "first_call_after_reopen_ms", first,
	    "repeat_median_ms", ms,
	    "repeat_max_ms", times[STOREBENCH_QUERY_REPEATS - 1],
	    "second_page_ms", second,
	    "no_filter_first_page_ms", plain,
	    "expiring_with_unmatched_name_ms", miss,
	    "expiring_within_days", STOREBENCH_EXPIRING_DAYS,
	    "page_size", (json_int_t)LIFECYCLE_PAGE_DEFAULT));
	fprintf(stderr, "store: first page %.2f ms (repeat median %.2f ms, "
	    "whole window walk %.0f ms)\n", first, ms, miss);
	rc = 0;
out:
	free(token);
	json_decref(res);
	return rc;
}

/* ---- 3. the CRL ---- */

struct storebench_issued {
	struct storebench	*b;
	long			 first;
	long			 count;
	unsigned char		*serials;	/* count * SERIAL_BYTES */
};

/* store_txn_run body: revoked `issued` rows first .. first+count-1. */
static int
storebench_issued_txn(struct store_txn *txn, void *arg)
{
	static const char *const reasons[] = { "keyCompromise", "superseded",
	    "cessationOfOperation", "affiliationChanged" };
	struct storebench_issued *t = arg;
	struct storebench *b = t->b;
	char hex[2 * STOREBENCH_SERIAL_BYTES + 1], *p;
	unsigned char *s;
	json_t *rec;
	long i;
	int rc;

	for (i = 0; i < t->count; i++) {
		s = t->serials + (size_t)i * STOREBENCH_SERIAL_BYTES;
		/* BN_bn2hex form (pkid's key): no leading zero byte. */
		s[0] = (unsigned char)((s[0] & 0x7f) | 0x10);
		common_hex(s, STOREBENCH_SERIAL_BYTES, hex);
		for (p = hex; *p != '\0'; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 'a' + 'A');
		rec = json_pack("{s:s, s:s, s:s, s:n, s:i, s:I, s:s, s:I,"
		    " s:s, s:s, s:i}", "serial", hex, "ca_id", b->ca_id,
		    "origin", "acme", "cert_id", "version", 1,
		    "not_after", (json_int_t)(b->now + 60 * STOREBENCH_DAY +
		    (t->first + i) % (30 * STOREBENCH_DAY)),
		    "status", "revoked",
		    "revoked_at", (json_int_t)(b->now - (t->first + i) %
		    STOREBENCH_DAY),
		    "reason", reasons[(t->first + i) % 4], "der", b->der_b64,
		    "ca_version", 1);
		if (rec == NULL)
			return -1;
		rc = store_issued_put(txn, hex, rec);
		json_decref(rec);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* Trial issuance: a real leaf DER for the synthetic `issued` rows. */
struct storebench_trial {
	struct storebench	*b;
	EVP_PKEY		*key;
	struct common_error	 err;
};

static int
storebench_trial_txn(struct store_txn *txn, void *arg)
{
	struct storebench_trial *t = arg;
	const char *sans[] = { "crl-template.bench.example" };
	struct ca_issue_req req;
	unsigned char *der = NULL;
	size_t len = 0;
	X509 *x;

	memset(&req, 0, sizeof(req));
	req.pubkey = t->key;
	req.subject = "CN=crl-template.bench.example";
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 90;
	req.origin = "acme";
	common_error_clear(&t->err);
	free(t->b->der_b64);
	t->b->der_b64 = NULL;
	if ((x = ca_issue(t->b->ctx, txn, t->b->ca_id, &req, &t->err)) == NULL)
		return -1;
	if (common_x509_to_der(x, &der, &len) == 0)
		t->b->der_b64 = common_b64_encode(der, len, false, 0);
	free(der);
	X509_free(x);
	return t->b->der_b64 != NULL ? 0 : -1;
}

/* Counts the entries of a DER CRL; -1 when it does not parse. */
static long
storebench_crl_entries(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	X509_CRL *crl;
	long n;

	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		X509_CRL_free(crl);
		return -1;
	}
	n = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl));
	X509_CRL_free(crl);
	return n;
}

/* Writes the revoked rows and times two CRL publications. */
static int
storebench_crl(struct storebench *b)
{
	struct storebench_trial trial;
	struct storebench_issued t;
	struct common_error err;
	unsigned char *der = NULL;
	size_t derlen = 0;
	double t0, first, second, wstart, wsecs;
	long done = 0, entries;
	char metric[256], target[64], revoked[STOREBENCH_NUM_MAX];
	int rc = -1;

	memset(&trial, 0, sizeof(trial));
	memset(&t, 0, sizeof(t));
	trial.b = b;
	if ((trial.key = ca_key_generate(CA_KEY_ECDSA_P256)) == NULL ||
	    store_txn_run(b->st, storebench_trial_txn, &trial) != 0) {
		log_err("store bench: template certificate: %s",
		    trial.err.msg);
		goto out;
	}
	t.b = b;
	if ((t.serials = malloc((size_t)b->batch *
	    STOREBENCH_SERIAL_BYTES)) == NULL)
		goto out;
	wstart = storebench_now();
	while (done < b->revoked) {
		t.first = done;
		t.count = b->revoked - done < b->batch ? b->revoked - done :
		    b->batch;
		if (RAND_bytes(t.serials, (int)(t.count *
		    STOREBENCH_SERIAL_BYTES)) != 1 ||
		    store_txn_run(b->st, storebench_issued_txn, &t) != 0) {
			log_err("store bench: revoked rows %ld..%ld failed",
			    t.first, t.first + t.count - 1);
			goto out;
		}
		done += t.count;
	}
	wsecs = storebench_now() - wstart;
	fprintf(stderr, "store: %ld revoked rows written in %.1f s\n",
	    b->revoked, wsecs);
	common_error_clear(&err);
	t0 = storebench_now();
	if (ca_crl_publish(b->ctx, b->ca_id, STOREBENCH_CRL_NEXT_UPDATE, &der,
	    &derlen, &err) == -1) {
		log_err("store bench: ca_crl_publish: %s", err.msg);
		goto out;
	}
	first = storebench_now() - t0;
	if ((entries = storebench_crl_entries(der, derlen)) != b->revoked) {
		log_err("store bench: the CRL lists %ld entries, %ld were "
		    "revoked", entries, b->revoked);
		goto out;
	}
	free(der);
	der = NULL;
	t0 = storebench_now();
	if (ca_crl_publish(b->ctx, b->ca_id, STOREBENCH_CRL_NEXT_UPDATE, &der,
	    &derlen, &err) == -1) {
		log_err("store bench: ca_crl_publish: %s", err.msg);
		goto out;
	}
	second = storebench_now() - t0;
	storebench_thousands(b->revoked, revoked, sizeof(revoked));
	snprintf(metric, sizeof(metric), "CRL: ca_crl_publish with %s "
	    "revoked entries (s)", revoked);
	snprintf(target, sizeof(target), "< %.0f s", STOREBENCH_CRL_TARGET_S);
	json_array_append_new(b->rows_out, json_pack("{s:s, s:f, s:s, s:n,"
	    " s:n, s:s, s:b}", "metric", metric, "pkid", first,
	    "peer_name", "", "peer", "ratio", "target", target,
	    "ok", first < STOREBENCH_CRL_TARGET_S));
	json_object_set_new(b->details, "crl", json_pack("{s:I, s:f, s:f,"
	    " s:I, s:I, s:f}", "revoked", (json_int_t)b->revoked,
	    "first_seconds", first, "second_seconds", second,
	    "crl_bytes", (json_int_t)derlen, "entries", (json_int_t)entries,
	    "rows_written_seconds", wsecs));
	fprintf(stderr, "store: CRL of %ld entries in %.3f s (again %.3f s), "
	    "%zu bytes\n", entries, first, second, derlen);
	rc = 0;
out:
	free(der);
	free(t.serials);
	EVP_PKEY_free(trial.key);
	return rc;
}

/* ---- 4. sizes ---- */

/* nftw() takes no argument: the walk of storebench_sizes sums here. */
static unsigned long long storebench_du_blocks;
static unsigned long long storebench_du_bytes;
static unsigned long long storebench_du_logs;
static json_t *storebench_du_files;	/* file -> MB, the big ones */
static size_t storebench_du_skip;	/* length of "DIR/" */

static int
storebench_du_entry(const char *path, const struct stat *sb, int type,
    struct FTW *ftw)
{
	unsigned long long used;

	if (type != FTW_F)
		return 0;
	used = (unsigned long long)sb->st_blocks * 512;
	storebench_du_blocks += used;
	storebench_du_bytes += (unsigned long long)sb->st_size;
	if (strncmp(path + ftw->base, "log.", 4) == 0)
		storebench_du_logs += (unsigned long long)sb->st_size;
	if (used >= STOREBENCH_FILE_SHOWN && storebench_du_files != NULL &&
	    strlen(path) > storebench_du_skip)
		json_object_set_new(storebench_du_files,
		    path + storebench_du_skip,
		    json_real((double)used / STOREBENCH_MB));
	return 0;
}


static int
storebench_rm_entry(const char *path, const struct stat *sb, int type,
    struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	if (remove(path) == -1)
		log_warn("store bench: remove %s: %s", path, strerror(errno));
	return 0;
}

/* Size of the data directory (after a checkpoint) and peak RSS. */
static int
storebench_sizes(struct storebench *b)
{
	struct rusage ru;
	char metric[256];
	double mb, rss;

	char rows[STOREBENCH_NUM_MAX], revoked[STOREBENCH_NUM_MAX];
	json_t *files;

	if (store_checkpoint(b->st) == -1 || (files = json_object()) == NULL)
		return -1;
	storebench_du_blocks = storebench_du_bytes = storebench_du_logs = 0;
	storebench_du_files = files;
	storebench_du_skip = strlen(b->dir) + 1;
	if (nftw(b->dir, storebench_du_entry, STOREBENCH_NFTW_FDS,
	    FTW_PHYS) == -1) {
		log_err("store bench: walk %s: %s", b->dir, strerror(errno));
		storebench_du_files = NULL;
		json_decref(files);
		return -1;
	}
	storebench_du_files = NULL;
	mb = (double)storebench_du_blocks / STOREBENCH_MB;
	storebench_thousands(b->rows, rows, sizeof(rows));
	storebench_thousands(b->revoked, revoked, sizeof(revoked));
	snprintf(metric, sizeof(metric), "data directory at %s certificates "
	    "+ %s revoked serials, after a checkpoint (MB, du)", rows,
	    revoked);
	json_array_append_new(b->rows_out, json_pack("{s:s, s:f, s:s, s:n,"
	    " s:n, s:s, s:n}", "metric", metric, "pkid", mb,
	    "peer_name", "", "peer", "ratio", "target", "", "ok"));
	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return -1;
	rss = (double)ru.ru_maxrss / 1024.0;
	json_array_append_new(b->rows_out, json_pack("{s:s, s:f, s:s, s:n,"
	    " s:n, s:s, s:n}", "metric", "peak RSS of bench/store, in-process "
	    "store + lifecycle through all of the above (MB)", "pkid", rss,
	    "peer_name", "", "peer", "ratio", "target", "", "ok"));
	json_object_set_new(b->details, "size", json_pack("{s:f, s:f, s:f,"
	    " s:f, s:f, s:o}", "du_mb", mb,
	    "apparent_mb", (double)storebench_du_bytes / STOREBENCH_MB,
	    "log_files_mb", (double)storebench_du_logs / STOREBENCH_MB,
	    "bytes_per_certificate", b->rows > 0 ?
	    (double)storebench_du_blocks / (double)b->rows : 0.0,
	    "peak_rss_mb", rss, "files_mb", files));
	fprintf(stderr, "store: data directory %.1f MB (du), peak RSS %.1f "
	    "MB\n", mb, rss);
	return 0;
}

/* ---- setup ---- */

struct storebench_create {
	struct ca_ctx		*ctx;
	struct ca_create_req	 req;
	char			*id_out;
	struct common_error	 err;
};

static int
storebench_create_txn(struct store_txn *txn, void *arg)
{
	struct storebench_create *c = arg;
	json_t *rec;

	common_error_clear(&c->err);
	if ((rec = ca_create(c->ctx, txn, &c->req, &c->err)) == NULL)
		return -1;
	snprintf(c->id_out, LIFECYCLE_ID_MAX, "%s",
	    json_string_value(json_object_get(rec, "id")));
	json_decref(rec);
	return 0;
}

static int
storebench_ca_create(struct storebench *b, const char *name,
    const char *issuer, char *id_out)
{
	struct storebench_create c;
	char subject[CA_SUBJECT_MAX];

	memset(&c, 0, sizeof(c));
	snprintf(subject, sizeof(subject), "CN=%s,O=pkid bench", name);
	c.ctx = b->ctx;
	c.id_out = id_out;
	c.req.name = name;
	c.req.type = issuer == NULL ? "root" : "subordinate";
	c.req.issuer_ca_id = issuer;
	c.req.subject = subject;
	c.req.key_alg = CA_KEY_ECDSA_P256;
	c.req.validity_days = issuer == NULL ? 3650 : 1825;
	c.req.path_len = issuer == NULL ? -1 : 0;
	if (store_txn_run(b->st, storebench_create_txn, &c) != 0) {
		log_err("store bench: create CA %s: %s", name, c.err.msg);
		return -1;
	}
	return 0;
}

/* Opens (or reopens) the store, the CA context and lifecycle. */
static int
storebench_open(struct storebench *b)
{
	struct ca_config cc;
	struct lifecycle_config lcfg;

	if ((b->st = store_open(b->dir)) == NULL)
		return -1;
	memset(&cc, 0, sizeof(cc));
	cc.data_dir = b->dir;
	if ((b->ctx = ca_ctx_new(b->st, &cc)) == NULL)
		return -1;
	memset(&lcfg, 0, sizeof(lcfg));
	lcfg.default_validity_days = 90;
	lcfg.default_renew_before_days = 30;
	if ((b->lc = lifecycle_new(b->ctx, &lcfg)) == NULL)
		return -1;
	return 0;
}

static void
storebench_close(struct storebench *b)
{
	lifecycle_free(b->lc);
	ca_ctx_free(b->ctx);
	store_close(b->st);
	b->lc = NULL;
	b->ctx = NULL;
	b->st = NULL;
}

/* Closes and reopens: recovery runs, the cache starts cold. */
static int
storebench_reopen(struct storebench *b)
{
	double t0, secs;

	storebench_close(b);
	t0 = storebench_now();
	if (storebench_open(b) == -1)
		return -1;
	secs = storebench_now() - t0;
	json_object_set_new(b->details, "reopen_seconds", json_real(secs));
	fprintf(stderr, "store: reopened in %.2f s\n", secs);
	return 0;
}

static int
storebench_setup(struct storebench *b)
{
	snprintf(b->dir, sizeof(b->dir), "%s/pkid-bench-store-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(b->dir) == NULL) {
		log_err("store bench: mkdtemp %s: %s", b->dir,
		    strerror(errno));
		b->dir[0] = '\0';
		return -1;
	}
	if (RAND_bytes(b->seed, sizeof(b->seed)) != 1)
		return -1;
	b->now = common_now();
	if (storebench_open(b) == -1 ||
	    storebench_ca_create(b, "bench root", NULL, b->root_id) == -1 ||
	    storebench_ca_create(b, "bench issuing", b->root_id,
	    b->ca_id) == -1)
		return -1;
	return 0;
}

static void
storebench_teardown(struct storebench *b)
{
	storebench_close(b);
	free(b->der_b64);
	if (b->dir[0] == '\0')
		return;
	if (b->keep)
		fprintf(stderr, "store: kept %s\n", b->dir);
	else
		nftw(b->dir, storebench_rm_entry, STOREBENCH_NFTW_FDS,
		    FTW_DEPTH | FTW_PHYS);
}

static int
storebench_long_arg(const char *opt, const char *s, long min, long max,
    long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || *out < min || *out > max) {
		fprintf(stderr, "store: %s must be %ld..%ld\n", opt, min, max);
		return -1;
	}
	return 0;
}

static void
storebench_usage(void)
{
	fprintf(stderr, "usage: store [--rows N] [--batch N] [--revoked N] "
	    "[--out FILE] [--keep]\n"
	    "  --rows N     certificate records (default %ld)\n"
	    "  --batch N    records per transaction (default %ld)\n"
	    "  --revoked N  revoked serials in the CRL (default %ld)\n"
	    "  --out FILE   write the results JSON there (default stdout)\n"
	    "  --keep       keep the temporary data directory\n",
	    STOREBENCH_ROWS, STOREBENCH_BATCH, STOREBENCH_REVOKED);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rows", required_argument, NULL, 'r' },
		{ "batch", required_argument, NULL, 'b' },
		{ "revoked", required_argument, NULL, 'v' },
		{ "out", required_argument, NULL, 'o' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct storebench b;
	const char *out = NULL;
	json_t *res = NULL;
	int c, rc = 1;

	memset(&b, 0, sizeof(b));
	b.rows = STOREBENCH_ROWS;
	b.batch = STOREBENCH_BATCH;
	b.revoked = STOREBENCH_REVOKED;
	while ((c = getopt_long(argc, argv, "r:b:v:o:kh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (storebench_long_arg("--rows", optarg, 1,
			    STOREBENCH_ROWS_MAX, &b.rows) == -1)
				return 2;
			break;
		case 'b':
			if (storebench_long_arg("--batch", optarg, 1,
			    STOREBENCH_BATCH_MAX, &b.batch) == -1)
				return 2;
			break;
		case 'v':
			if (storebench_long_arg("--revoked", optarg, 1,
			    STOREBENCH_ROWS_MAX, &b.revoked) == -1)
				return 2;
			break;
		case 'o':
			out = optarg;
			break;
		case 'k':
			b.keep = true;
			break;
		default:
			storebench_usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc) {
		storebench_usage();
		return 2;
	}
	if ((b.details = json_object()) == NULL ||
	    (b.rows_out = json_array()) == NULL)
		goto out;
	if (storebench_setup(&b) == -1 || storebench_insert(&b) == -1 ||
	    storebench_reopen(&b) == -1 || storebench_queries(&b) == -1 ||
	    storebench_crl(&b) == -1 || storebench_sizes(&b) == -1)
		goto out;
	json_object_set_new(b.details, "method", json_string(
	    "one process, one thread, a fresh data directory opened with "
	    "store_open (durable commits, pkid's cache size); records shaped "
	    "as lifecycle writes them, random ids, notAfter uniform over "
	    "[now-30d, now+365d], origins 60% acme / 30% est / 10% mgmt; "
	    "checkpoint every 60 s as pkid's jobs thread; the query after a "
	    "close and reopen; CRL rows revoked under the issuing CA"));
	res = json_pack("{s:s, s:O, s:O}", "name", "store", "rows", b.rows_out,
	    "details", b.details);
	if (res == NULL)
		goto out;
	if (out != NULL) {
		if (json_dump_file(res, out, JSON_INDENT(2)) == -1) {
			log_err("store bench: cannot write %s", out);
			goto out;
		}
	} else if (json_dumpf(res, stdout, JSON_INDENT(2)) == -1 ||
	    fputc('\n', stdout) == EOF)
		goto out;
	rc = 0;
out:
	json_decref(res);
	json_decref(b.details);
	json_decref(b.rows_out);
	storebench_teardown(&b);
	return rc;
}
