/*
 * Inventory queries over 100,000 certificate rows (lifecycle/query.c and
 * the store's certificate indexes). The rows are written straight into
 * the store with store_cert_put, 1000 per transaction, with realistic
 * fields: five CAs, three origins, a mix of stages, not_after spread over
 * two years (some already expired, some rows without a current version),
 * names and SANs. Then each filter's first page is timed (printed, not
 * asserted), results are compared with a brute-force filter over the same
 * rows, paging through an expiring_within_days query must return every
 * match exactly once in not_after order, and the store must survive a
 * close, a reopen, a rebuild of a removed index file and store_check.
 *
 * The store is opened with STORE_F_NOSYNC for the bulk load. The test
 * includes <db.h> only to remove an index file with the store closed.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <db.h>

#include "lifecycle/lifecycle.h"
#include "tests/unit/test.h"

#define T_ROWS		100000	/* certificates generated */
#define T_BATCH		1000	/* rows per transaction */
#define T_CAS		5
#define T_ZONES		20	/* SAN domains */
#define T_DAY		86400
#define T_SPREAD_DAYS	730	/* not_after spread */
#define T_PAST_DAYS	60	/* ... starting this long ago */
#define T_NO_CURRENT	997	/* every Nth row has no current version */
#define T_ID_MAX	40
#define T_TEXT_MAX	96
#define T_PAGE		100	/* page size of the paging checks */
#define T_WALK_PAGE	1000	/* page size of the full walks */
#define T_SLACK_SECONDS	600	/* clock movement tolerated while paging */

enum t_origin { T_MGMT, T_ACME, T_EST, T_ORIGINS };
enum t_stage { T_CURRENT, T_PENDING, T_REVOKED, T_EXPIRED, T_FAILED,
	T_STAGES };

static const char *const t_origin_names[T_ORIGINS] = { "mgmt", "acme",
	"est" };
static const char *const t_stage_names[T_STAGES] = { "current", "pending",
	"revoked", "expired", "failed" };

/* What a brute-force filter needs of one generated row. */
struct t_row {
	char		id[T_ID_MAX];
	unsigned	n;		/* row number: name and SANs derive */
	unsigned char	ca;
	unsigned char	origin;
	unsigned char	stage;
	bool		due;		/* renewal_due */
	bool		has_na;		/* has a current version */
	int64_t		na;		/* not_after_epoch */
};

static struct t_row *rows;
static struct store *st;
static struct ca_ctx *ctx;
static struct lifecycle *lc;
static time_t t0;		/* the clock when the rows were made */
static char dir[T_TEXT_MAX * 4];

/* ---- generation ---- */

/* splitmix64: deterministic, well spread. */
static uint64_t
t_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void
t_name(unsigned n, char *out, size_t outlen)
{
	snprintf(out, outlen, "svc-%06u", n);
}

static void
t_san(unsigned n, int which, char *out, size_t outlen)
{
	if (which == 0)
		snprintf(out, outlen, "svc-%06u.zone%02u.example.com", n,
		    (unsigned)(t_mix(n) % T_ZONES));
	else
		snprintf(out, outlen, "alt-%u.internal", n * 7u);
}

/* Fills row n: ids are random-looking (not in row or expiry order). */
static void
t_row_make(unsigned n, struct t_row *r)
{
	uint64_t h = t_mix(n + 1);
	unsigned p;

	snprintf(r->id, sizeof(r->id), "cert-%016" PRIx64, h);
	r->n = n;
	p = (unsigned)(h >> 8) % 100;	/* CA skew: 40/25/15/10/10 */
	r->ca = p < 40 ? 0 : p < 65 ? 1 : p < 80 ? 2 : p < 90 ? 3 : 4;
	p = (unsigned)(h >> 16) % 100;
	r->origin = p < 50 ? T_MGMT : p < 85 ? T_ACME : T_EST;
	p = (unsigned)(h >> 24) % 100;
	r->stage = p < 85 ? T_CURRENT : p < 88 ? T_PENDING : p < 93 ?
	    T_REVOKED : p < 98 ? T_EXPIRED : T_FAILED;
	r->has_na = n % T_NO_CURRENT != 0;
	r->na = (int64_t)t0 - T_PAST_DAYS * T_DAY +
	    (int64_t)((h >> 32) % ((uint64_t)T_SPREAD_DAYS * T_DAY));
	r->due = r->origin != T_MGMT && (h >> 40) % 100 < 6;
}

/* The certificate record lifecycle would store for row r. */
static json_t *
t_record(const struct t_row *r)
{
	char name[T_TEXT_MAX], san0[T_TEXT_MAX], san1[T_TEXT_MAX];
	char ca[16], na[LIFECYCLE_TIME_MAX], due[LIFECYCLE_TIME_MAX];
	char created[LIFECYCLE_TIME_MAX], serial[48], subject[T_TEXT_MAX + 8];
	const char *mode;
	json_t *j;

	t_name(r->n, name, sizeof(name));
	t_san(r->n, 0, san0, sizeof(san0));
	t_san(r->n, 1, san1, sizeof(san1));
	snprintf(ca, sizeof(ca), "ca-%u", r->ca);
	snprintf(subject, sizeof(subject), "CN=%s", san0);
	snprintf(serial, sizeof(serial), "%016" PRIX64 "%016" PRIX64,
	    t_mix(r->n * 3u), t_mix(r->n * 5u));
	common_time_rfc3339((time_t)r->na, na, sizeof(na));
	common_time_rfc3339((time_t)(r->na - 30 * T_DAY), due, sizeof(due));
	common_time_rfc3339((time_t)(r->na - 90 * T_DAY), created,
	    sizeof(created));
	mode = r->origin != T_MGMT ? "external" : r->n % 10 == 0 ?
	    "imported" : r->n % 10 == 1 ? "external" : "managed";
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s, s],"
	    " s:s, s:i, s:{s:i}, s:i, s:i, s:s, s:s, s:b}",
	    "id", r->id, "name", name, "mode", mode,
	    "origin", t_origin_names[r->origin], "ca_id", ca,
	    "profile", "tls_server", "subject", subject, "sans", san0, san1,
	    "key_algorithm", "ECDSA_P256", "validity_days", 90,
	    "renewal", "renew_before_days", 30,
	    "current_version", r->has_na ? 1 : 0, "latest_version", 1,
	    "created_at", created, "state", "active",
	    "renewal_due", r->due);
	if (j == NULL || !r->has_na)
		return j;
	if (json_object_set_new(j, "not_after", json_string(na)) == -1 ||
	    json_object_set_new(j, "not_after_epoch",
	    json_integer((json_int_t)r->na)) == -1 ||
	    json_object_set_new(j, "due_at", json_string(due)) == -1 ||
	    json_object_set_new(j, "due_at_epoch",
	    json_integer((json_int_t)(r->na - 30 * T_DAY))) == -1 ||
	    json_object_set_new(j, "stage",
	    json_string(t_stage_names[r->stage])) == -1 ||
	    json_object_set_new(j, "serial", json_string(serial)) == -1) {
		json_decref(j);
		return NULL;
	}
	return j;
}

struct t_batch {
	unsigned	first;
	unsigned	count;
};

static int
t_batch_txn(struct store_txn *txn, void *arg)
{
	const struct t_batch *b = arg;
	json_t *j;
	unsigned i;
	int rc;

	for (i = b->first; i < b->first + b->count; i++) {
		if ((j = t_record(&rows[i])) == NULL)
			return -1;
		rc = store_cert_put(txn, rows[i].id, j);
		json_decref(j);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* ---- helpers ---- */

static double
t_ms_since(uint64_t start)
{
	return (double)(common_mono_ms() - start);
}

static int
t_cmp_id(const void *a, const void *b)
{
	const struct t_row *x = *(const struct t_row *const *)a;
	const struct t_row *y = *(const struct t_row *const *)b;

	return strcmp(x->id, y->id);
}

/* not_after order: by not_after, rows without one last, then by id. */
static int
t_cmp_na(const void *a, const void *b)
{
	const struct t_row *x = *(const struct t_row *const *)a;
	const struct t_row *y = *(const struct t_row *const *)b;
	uint64_t kx = x->has_na ? (uint64_t)(x->na < 0 ? 0 : x->na) :
	    UINT64_MAX;
	uint64_t ky = y->has_na ? (uint64_t)(y->na < 0 ? 0 : y->na) :
	    UINT64_MAX;

	if (kx != ky)
		return kx < ky ? -1 : 1;
	return strcmp(x->id, y->id);
}

static bool
t_has_ci(const char *hay, const char *needle)
{
	return strcasestr(hay, needle) != NULL;
}

/* The brute-force filter: what lifecycle_cert_list must answer. */
static bool
t_match(const struct t_row *r, const struct lifecycle_query *q,
    int64_t bound)
{
	char buf[T_TEXT_MAX];
	bool hit;

	if (q->ca_id != NULL) {
		snprintf(buf, sizeof(buf), "ca-%u", r->ca);
		if (strcmp(buf, q->ca_id) != 0)
			return false;
	}
	if (q->origin != NULL &&
	    strcmp(t_origin_names[r->origin], q->origin) != 0)
		return false;
	if (q->stage != NULL && (!r->has_na ||
	    strcmp(t_stage_names[r->stage], q->stage) != 0))
		return false;
	if (q->renewal_due != -1 && (r->due ? 1 : 0) != q->renewal_due)
		return false;
	if (q->expiring_within_days >= 0 && (!r->has_na || r->na >= bound))
		return false;
	if (q->name == NULL)
		return true;
	t_name(r->n, buf, sizeof(buf));
	hit = t_has_ci(buf, q->name);
	t_san(r->n, 0, buf, sizeof(buf));
	hit = hit || t_has_ci(buf, q->name);
	t_san(r->n, 1, buf, sizeof(buf));
	return hit || t_has_ci(buf, q->name);
}

static void
t_query_init(struct lifecycle_query *q)
{
	memset(q, 0, sizeof(*q));
	q->expiring_within_days = -1;
	q->renewal_due = -1;
}

static int64_t
t_bound(double days)
{
	return (int64_t)common_now() + (int64_t)(days * T_DAY);
}

/*
 * Every row matching q by brute force, in the order the query answers
 * (not_after when by_na), into a new array of row pointers (*n rows).
 */
static const struct t_row **
t_expected(const struct lifecycle_query *q, int64_t bound, bool by_na,
    size_t *n)
{
	const struct t_row **out = calloc(T_ROWS, sizeof(*out));
	size_t i;

	*n = 0;
	if (out == NULL)
		return NULL;
	for (i = 0; i < T_ROWS; i++)
		if (t_match(&rows[i], q, bound))
			out[(*n)++] = &rows[i];
	qsort(out, *n, sizeof(*out), by_na ? t_cmp_na : t_cmp_id);
	return out;
}

/* Looks a row up by id (rows are few enough to index by a sorted copy). */
static const struct t_row **by_id;

static const struct t_row *
t_row_find(const char *id)
{
	size_t lo = 0, hi = T_ROWS, mid;
	int c;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		c = strcmp(by_id[mid]->id, id);
		if (c == 0)
			return by_id[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Pages through q with page size limit; returns every id in answer order
 * (new array, *n entries) and checks each page's size and tokens. NULL
 * when a page failed.
 */
static char (*t_walk(struct lifecycle_query *q, size_t limit, size_t *n,
    size_t *pages))[T_ID_MAX]
{
	char (*ids)[T_ID_MAX] = calloc(T_ROWS, T_ID_MAX);
	struct common_error err;
	char *token = NULL;
	json_t *res, *items, *e, *next;
	size_t i;

	*n = *pages = 0;
	if (ids == NULL)
		return NULL;
	q->limit = limit;
	for (;;) {
		q->page_token = token;
		common_error_clear(&err);
		res = lifecycle_cert_list(lc, q, &err);
		CHECK(res != NULL);
		if (res == NULL) {
			fprintf(stderr, "query failed: %s\n", err.msg);
			free(ids);
			ids = NULL;
			break;
		}
		(*pages)++;
		items = json_object_get(res, "certificates");
		CHECK(json_array_size(items) <= limit);
		json_array_foreach(items, i, e) {
			if (*n < T_ROWS)
				snprintf(ids[(*n)++], T_ID_MAX, "%s",
				    json_string_value(json_object_get(e,
				    "id")));
		}
		next = json_object_get(res, "next_page_token");
		free(token);
		token = json_is_string(next) ? strdup(json_string_value(next)) :
		    NULL;
		json_decref(res);
		if (token == NULL || *pages > T_ROWS)
			break;
	}
	free(token);
	q->page_token = NULL;
	return ids;
}

/* Pages through q and compares the answer, in order, with brute force.
 * by_na: the answer comes in not_after order. */
static void
t_compare(const char *what, struct lifecycle_query *q, bool by_na)
{
	const struct t_row **want;
	char (*got)[T_ID_MAX];
	size_t nwant = 0, ngot = 0, pages = 0, i, bad = 0;
	int64_t bound = t_bound(q->expiring_within_days);

	want = t_expected(q, bound, by_na, &nwant);
	got = t_walk(q, T_WALK_PAGE, &ngot, &pages);
	CHECK(want != NULL && got != NULL);
	if (want == NULL || got == NULL)
		goto out;
	printf("  %-34s %6zu rows in %zu pages, brute force %zu\n", what,
	    ngot, pages, nwant);
	CHECK(ngot == nwant);
	for (i = 0; i < ngot && i < nwant; i++)
		if (strcmp(got[i], want[i]->id) != 0)
			bad++;
	if (bad != 0)
		fprintf(stderr, "%s: %zu rows differ from brute force\n", what,
		    bad);
	CHECK(bad == 0);
out:
	free(want);
	free(got);
}

/* Times the first page of q (limit 100) and prints it; returns the
 * number of rows on it. */
static size_t
t_time_first(const char *what, struct lifecycle_query *q)
{
	struct common_error err;
	uint64_t start;
	json_t *res;
	size_t n;
	double ms;

	q->limit = T_PAGE;
	q->page_token = NULL;
	common_error_clear(&err);
	start = common_mono_ms();
	res = lifecycle_cert_list(lc, q, &err);
	ms = t_ms_since(start);
	CHECK(res != NULL);
	n = json_array_size(json_object_get(res, "certificates"));
	printf("  %-34s first page %4zu rows %8.1f ms\n", what, n, ms);
	json_decref(res);
	return n;
}

static void
t_open_all(unsigned flags)
{
	struct ca_config cfg = { .data_dir = dir,
	    .http_base_url = "http://127.0.0.1:8080" };
	struct lifecycle_config lcfg = { .default_validity_days = 90,
	    .default_renew_before_days = 30 };

	CHECK((st = store_open_flags(dir, flags)) != NULL);
	if (st == NULL)
		exit(1);
	CHECK((ctx = ca_ctx_new(st, &cfg)) != NULL);
	CHECK((lc = lifecycle_new(ctx, &lcfg)) != NULL);
	if (ctx == NULL || lc == NULL)
		exit(1);
}

static void
t_close_all(void)
{
	lifecycle_free(lc);
	ca_ctx_free(ctx);
	store_close(st);
	lc = NULL;
	ctx = NULL;
	st = NULL;
}

/* ---- tests ---- */

static void
test_load(void)
{
	struct t_batch b;
	uint64_t start;
	unsigned i;

	snprintf(dir, sizeof(dir), "%s/inventory", test_tmpdir());
	t0 = common_now();
	CHECK((rows = calloc(T_ROWS, sizeof(*rows))) != NULL);
	CHECK((by_id = calloc(T_ROWS, sizeof(*by_id))) != NULL);
	if (rows == NULL || by_id == NULL)
		exit(1);
	for (i = 0; i < T_ROWS; i++) {
		t_row_make(i, &rows[i]);
		by_id[i] = &rows[i];
	}
	qsort(by_id, T_ROWS, sizeof(*by_id), t_cmp_id);
	for (i = 1; i < T_ROWS; i++)	/* ids must be unique */
		CHECK(strcmp(by_id[i - 1]->id, by_id[i]->id) < 0);
	t_open_all(STORE_F_NOSYNC);
	start = common_mono_ms();
	for (i = 0; i < T_ROWS; i += T_BATCH) {
		b.first = i;
		b.count = T_ROWS - i < T_BATCH ? T_ROWS - i : T_BATCH;
		if (store_txn_run(st, t_batch_txn, &b) != 0) {
			CHECK(!"batch insert failed");
			exit(1);
		}
	}
	printf("inserted %d certificate rows in %.0f ms (%d per txn)\n",
	    T_ROWS, t_ms_since(start), T_BATCH);
}

/* First-page time of each filter (printed, not asserted); each page
 * also holds only matching rows. */
static void
test_first_pages(void)
{
	struct lifecycle_query q;

	printf("first page (limit %d) of each filter over %d rows:\n",
	    T_PAGE, T_ROWS);
	t_query_init(&q);
	CHECK(t_time_first("no filter (id order)", &q) == T_PAGE);
	q.ca_id = "ca-3";
	CHECK(t_time_first("ca_id=ca-3", &q) == T_PAGE);
	t_query_init(&q);
	q.origin = "est";
	CHECK(t_time_first("origin=est", &q) == T_PAGE);
	q.ca_id = "ca-4";
	CHECK(t_time_first("origin=est ca_id=ca-4", &q) == T_PAGE);
	t_query_init(&q);
	q.stage = "revoked";
	CHECK(t_time_first("stage=revoked", &q) == T_PAGE);
	t_query_init(&q);
	q.renewal_due = 1;
	CHECK(t_time_first("renewal_due=true", &q) == T_PAGE);
	t_query_init(&q);
	q.expiring_within_days = 30;
	CHECK(t_time_first("expiring_within_days=30", &q) == T_PAGE);
	q.ca_id = "ca-2";
	CHECK(t_time_first("expiring_within_days=30 ca_id=ca-2", &q) ==
	    T_PAGE);
	t_query_init(&q);
	q.expiring_within_days = 1;
	q.stage = "current";
	q.origin = "acme";
	t_time_first("expiring 1 day, current, acme", &q);
	t_query_init(&q);
	q.sort = LIFECYCLE_SORT_NOT_AFTER;
	CHECK(t_time_first("sort=not_after", &q) == T_PAGE);
	t_query_init(&q);
	q.name = "zone07.example";
	CHECK(t_time_first("name=zone07.example (SAN)", &q) == T_PAGE);
	q.name = "SVC-04217";
	CHECK(t_time_first("name=SVC-04217 (rare, full walk)", &q) == 10);
	t_query_init(&q);
	q.name = "no-such-name";
	CHECK(t_time_first("name=no-such-name (none)", &q) == 0);
}

/* Whole answers equal a brute-force filter over the generated rows. */
static void
test_brute_force(void)
{
	struct lifecycle_query q;

	printf("full answers against brute force:\n");
	t_query_init(&q);
	q.ca_id = "ca-3";
	q.origin = "acme";
	t_compare("ca_id=ca-3 origin=acme", &q, false);
	t_query_init(&q);
	q.stage = "revoked";
	q.renewal_due = 1;
	t_compare("stage=revoked renewal_due=true", &q, false);
	t_query_init(&q);
	q.renewal_due = 0;
	q.origin = "est";
	q.name = "ZONE1";
	t_compare("origin=est renewal_due=false name", &q, false);
	t_query_init(&q);
	q.name = "svc-0421";
	t_compare("name=svc-0421", &q, false);
	t_query_init(&q);
	q.expiring_within_days = 45;
	q.ca_id = "ca-1";
	q.stage = "current";
	t_compare("expiring 45 ca-1 current", &q, true);
	t_query_init(&q);
	q.expiring_within_days = 10;
	q.sort = LIFECYCLE_SORT_ID;
	t_compare("expiring 10 sort=id", &q, false);
}

/*
 * Paging an expiring_within_days query 100 at a time returns every row
 * that matches exactly once, in not_after order (ties by id); the
 * whole not_after order lists every row, those without a current
 * version last.
 */
static void
test_expiring_paging(void)
{
	struct lifecycle_query q;
	const struct t_row *r, *prev = NULL;
	char (*got)[T_ID_MAX];
	unsigned char *seen;
	size_t n = 0, pages = 0, i, want = 0, nocur = 0;
	int64_t bound0 = t_bound(90), bound1;
	uint64_t start;

	CHECK((seen = calloc(T_ROWS, 1)) != NULL);
	if (seen == NULL)
		return;
	t_query_init(&q);
	q.expiring_within_days = 90;
	start = common_mono_ms();
	got = t_walk(&q, T_PAGE, &n, &pages);
	bound1 = t_bound(90);
	printf("expiring_within_days=90: %zu rows in %zu pages of %d, "
	    "%.0f ms\n", n, pages, T_PAGE, t_ms_since(start));
	CHECK(got != NULL);
	for (i = 0; got != NULL && i < n; i++) {
		r = t_row_find(got[i]);
		CHECK(r != NULL);
		if (r == NULL)
			continue;
		CHECK(!seen[r - rows]);		/* exactly once */
		seen[r - rows] = 1;
		CHECK(r->has_na && r->na < bound1);
		if (prev != NULL)
			CHECK(t_cmp_na(&prev, &r) < 0);
		prev = r;
	}
	for (i = 0; i < T_ROWS; i++) {
		if (rows[i].has_na && rows[i].na < bound0) {
			want++;
			CHECK(seen[i]);		/* every match */
		}
	}
	CHECK(n >= want && want > 10 * T_PAGE);
	CHECK(pages >= n / T_PAGE);
	free(got);

	/* The whole not_after order: every row once, ordered. */
	memset(seen, 0, T_ROWS);
	t_query_init(&q);
	q.sort = LIFECYCLE_SORT_NOT_AFTER;
	prev = NULL;
	start = common_mono_ms();
	got = t_walk(&q, T_WALK_PAGE, &n, &pages);
	printf("sort=not_after: %zu rows in %zu pages of %d, %.0f ms\n", n,
	    pages, T_WALK_PAGE, t_ms_since(start));
	CHECK(got != NULL && n == T_ROWS);
	for (i = 0; got != NULL && i < n; i++) {
		r = t_row_find(got[i]);
		CHECK(r != NULL && !seen[r - rows]);
		if (r == NULL)
			continue;
		seen[r - rows] = 1;
		if (prev != NULL && t_cmp_na(&prev, &r) >= 0) {
			CHECK(!"not_after order broken");
			break;
		}
		if (!r->has_na)
			nocur++;
		else
			CHECK(nocur == 0);	/* no current version: last */
		prev = r;
	}
	CHECK(nocur == T_ROWS / T_NO_CURRENT + 1);
	free(got);
	free(seen);
}

/* Tokens are opaque but checked: one query's token is refused by
 * another, and a forged one too. */
static void
test_tokens(void)
{
	struct lifecycle_query q;
	struct common_error err;
	json_t *res;
	char *tok;

	t_query_init(&q);
	q.expiring_within_days = 30;
	q.limit = 5;
	common_error_clear(&err);
	res = lifecycle_cert_list(lc, &q, &err);
	CHECK(res != NULL);
	tok = strdup(json_string_value(json_object_get(res,
	    "next_page_token")) != NULL ? json_string_value(json_object_get(
	    res, "next_page_token")) : "");
	json_decref(res);
	CHECK(tok != NULL && strchr(tok, ':') != NULL);
	t_query_init(&q);
	q.page_token = tok;
	common_error_clear(&err);
	CHECK(lifecycle_cert_list(lc, &q, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	t_query_init(&q);
	q.expiring_within_days = 30;
	q.page_token = "zz:cert-1";
	common_error_clear(&err);
	CHECK(lifecycle_cert_list(lc, &q, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	q.page_token = "cert-1";
	common_error_clear(&err);
	CHECK(lifecycle_cert_list(lc, &q, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	q.page_token = "00000000000000ff:../x";
	common_error_clear(&err);
	CHECK(lifecycle_cert_list(lc, &q, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	/* bad filter values */
	t_query_init(&q);
	q.origin = "ftp";
	common_error_clear(&err);
	CHECK(lifecycle_cert_list(lc, &q, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	t_query_init(&q);
	q.renewal_due = 2;
	common_error_clear(&err);
	CHECK(lifecycle_cert_list(lc, &q, &err) == NULL);
	t_query_init(&q);
	q.limit = LIFECYCLE_PAGE_MAX + 1;
	common_error_clear(&err);
	CHECK(lifecycle_cert_list(lc, &q, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	free(tok);
}

/*
 * The store survives close and reopen (normal durable mode): the same
 * queries answer the same; an index file removed while closed is
 * rebuilt from the 100k rows on open; store_check passes.
 */
static void
test_reopen(void)
{
	struct lifecycle_query q;
	struct common_error err;
	char envdir[sizeof(dir) + 8];
	json_t *before, *after;
	DB_ENV *env = NULL;
	uint64_t start;
	char *a, *b;

	t_query_init(&q);
	q.expiring_within_days = 200;
	q.origin = "mgmt";
	q.limit = 50;
	common_error_clear(&err);
	before = lifecycle_cert_list(lc, &q, &err);
	CHECK(before != NULL);
	t_close_all();

	snprintf(envdir, sizeof(envdir), "%s/db", dir);
	CHECK(db_env_create(&env, 0) == 0);
	CHECK(env->open(env, envdir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK |
	    DB_INIT_LOG | DB_INIT_MPOOL | DB_RECOVER, 0600) == 0);
	CHECK(env->dbremove(env, NULL, "certificate-not-after.db", NULL,
	    DB_AUTO_COMMIT) == 0);
	CHECK(env->close(env, 0) == 0);

	start = common_mono_ms();
	t_open_all(0);
	printf("reopened, not_after index rebuilt from %d rows in %.0f ms\n",
	    T_ROWS, t_ms_since(start));
	common_error_clear(&err);
	after = lifecycle_cert_list(lc, &q, &err);
	CHECK(after != NULL);
	a = json_dumps(before, JSON_COMPACT | JSON_SORT_KEYS);
	b = json_dumps(after, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(a != NULL && b != NULL && strcmp(a, b) == 0);
	CHECK(json_array_size(json_object_get(after, "certificates")) == 50);
	free(a);
	free(b);
	json_decref(before);
	json_decref(after);
	start = common_mono_ms();
	CHECK(store_check(st) == 0);
	printf("store_check over %d rows and their indexes: %.0f ms\n",
	    T_ROWS, t_ms_since(start));
	t_close_all();
	free(rows);
	free(by_id);
}

const struct test_case test_cases[] = {
	TEST(test_load),
	TEST(test_first_pages),
	TEST(test_brute_force),
	TEST(test_expiring_paging),
	TEST(test_tokens),
	TEST(test_reopen),
	{ 0 },
};
