/*
 * bench/issue — in-process issuance rate against the physical limit.
 *
 * For an ECDSA P-256 and an RSA-2048 CA hierarchy (root + issuing CA in
 * a fresh store under a temporary directory) it measures, with N threads
 * (default: one per core), one after the other and each for the same
 * time:
 *
 *   raw        EVP_DigestSign of a buffer the size of a real TBSCertificate
 *              with the issuing CA's own key: the physical limit;
 *   ca_issue   ca_issue() inside store_txn_run(), one transaction per
 *              certificate, on the store as pkid opens it (durable,
 *              fsync'd commits): what the CA core delivers;
 *   deferred   the same with durability deferred as pkid's workers run
 *              (store_defer): a thread goes on issuing while the log
 *              flush of its earlier commits runs, with at most
 *              ISSUEBENCH_DEFER_WINDOW of them not yet durable, and a
 *              certificate counts once its commit is durable;
 *   nosync     the same on a store opened with STORE_F_NOSYNC: the share
 *              of the durable rate that the log flush costs;
 *   lifecycle  lifecycle_issue(): the whole inventory write (certificate,
 *              version, issued rows, chain) that ACME and EST pay, one at
 *              a time and deferred.
 *
 * The ratio deferred ca_issue / raw must reach ISSUEBENCH_TARGET_RATIO. Prints the
 * results object of bench/README.md ({"name", "rows", "details"}) to
 * stdout or --out; bench/run adds the reproduction command.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/common.h"
#include "lifecycle/lifecycle.h"
#include "store/store.h"

#define ISSUEBENCH_TARGET_RATIO	0.50	/* ca_issue / raw signatures */
#define ISSUEBENCH_SECONDS	5.0	/* measured time of each phase */
#define ISSUEBENCH_WARMUP	0.5	/* unmeasured start of each phase */
#define ISSUEBENCH_SECONDS_MAX	600.0
#define ISSUEBENCH_THREADS_MAX	256
#define ISSUEBENCH_LEAF_KEYS	16	/* subject keys, reused round robin */
#define ISSUEBENCH_LAT_MAX	(4u * 1024 * 1024)	/* samples per thread */
#define ISSUEBENCH_NAME_MAX	96	/* a SAN / subject of a leaf */
#define ISSUEBENCH_SIG_MAX	1024	/* bytes of one signature */
#define ISSUEBENCH_ERR_MAX	512
#define ISSUEBENCH_NFTW_FDS	16
#define ISSUEBENCH_DEFER_WINDOW	16	/* per thread: 32 in flight on 2
					   cores, as the 32 flows of the
					   ACME and EST benchmarks */

enum issuebench_phase {
	ISSUEBENCH_WARMING,
	ISSUEBENCH_MEASURING,
	ISSUEBENCH_STOPPED
};

/* One CA hierarchy under test. */
struct issuebench_ca {
	enum ca_key_alg	 alg;
	const char	*label;		/* "ECDSA P-256" */
	char		 root_id[LIFECYCLE_ID_MAX];
	char		 ca_id[LIFECYCLE_ID_MAX];	/* the issuing CA */
	char		 nosync_ca_id[LIFECYCLE_ID_MAX]; /* its twin */
	EVP_PKEY	*key;		/* the issuing CA's private key */
	size_t		 tbs_len;	/* DER length of a real TBS */
	unsigned char	*leaf_der;	/* that leaf */
	size_t		 leaf_len;
};

/* The state of the whole run. */
struct issuebench {
	int		 threads;
	double		 seconds;
	char		 dir[PATH_MAX];		/* temporary directory */
	char		 durable_dir[PATH_MAX];
	char		 nosync_dir[PATH_MAX];
	bool		 keep;
	struct store	*st;			/* durable, as pkid opens it */
	struct store	*st_nosync;
	struct ca_ctx	*ctx;
	struct ca_ctx	*ctx_nosync;
	struct lifecycle *lc;
	EVP_PKEY	*leaf[ISSUEBENCH_LEAF_KEYS];
	unsigned char	*csr_der;	/* a P-256 request, as EST gets */
	size_t		 csr_len;
};

struct issuebench_worker;

/* A phase: every worker runs op until the phase stops. */
struct issuebench_run {
	struct issuebench	*b;
	struct issuebench_ca	*ca;
	int			(*op)(struct issuebench_worker *w);
						/* 0 when it succeeded */
	_Atomic int		 phase;
	const char		*ca_id;		/* for ca_issue phases */
	struct ca_ctx		*ctx;
	struct store		*st;
	bool			 defer;		/* store_defer on st */
};

/* A deferred commit not yet known durable. */
struct issuebench_inflight {
	uint64_t	ticket;
	double		t0;
};

struct issuebench_worker {
	struct issuebench_run	*run;
	int			 idx;
	pthread_t		 tid;
	uint64_t		 seq;		/* names issued by this worker */
	uint64_t		 ops;		/* measured successes */
	uint64_t		 fails;		/* measured failures */
	uint32_t		*lat;		/* microseconds, measured ops */
	size_t			 nlat;
	EVP_MD_CTX		*md;
	unsigned char		*tbs;
	char			 err[ISSUEBENCH_ERR_MAX];	/* first failure */
};

/* The results of one phase. */
struct issuebench_result {
	double		 rate;		/* successes per second */
	uint64_t	 ops;
	uint64_t	 fails;
	double		 p50_ms, p99_ms, max_ms;
	char		 err[ISSUEBENCH_ERR_MAX];
};

static double
issuebench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
issuebench_sleep(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- operations ---- */

/* The raw signature: what X509_sign costs without the certificate. */
static int
issuebench_op_raw(struct issuebench_worker *w)
{
	struct issuebench_ca *ca = w->run->ca;
	unsigned char sig[ISSUEBENCH_SIG_MAX];
	size_t siglen = sizeof(sig);

	if (EVP_MD_CTX_reset(w->md) != 1 ||
	    EVP_DigestSignInit(w->md, NULL, ca_sign_md(ca->key), NULL,
	    ca->key) != 1 ||
	    EVP_DigestSign(w->md, sig, &siglen, w->tbs, ca->tbs_len) != 1) {
		snprintf(w->err, sizeof(w->err), "EVP_DigestSign: %s",
		    common_ssl_error());
		return -1;
	}
	return 0;
}

/*
 * What reading a request and a certificate costs with OpenSSL 3.0 (its
 * d2i decodes the public key through a decoder context it builds per
 * call): the parse each EST enrollment and ACME finalize does once, and
 * a TLS client once per certificate of the server's chain.
 */
static int
issuebench_op_csr_parse(struct issuebench_worker *w)
{
	struct issuebench *b = w->run->b;
	const unsigned char *p = b->csr_der;
	X509_REQ *req;

	if ((req = d2i_X509_REQ(NULL, &p, (long)b->csr_len)) == NULL) {
		snprintf(w->err, sizeof(w->err), "d2i_X509_REQ: %s",
		    common_ssl_error());
		return -1;
	}
	X509_REQ_free(req);
	return 0;
}

static int
issuebench_op_cert_parse(struct issuebench_worker *w)
{
	struct issuebench_ca *ca = w->run->ca;
	const unsigned char *p = ca->leaf_der;
	X509 *x;

	if ((x = d2i_X509(NULL, &p, (long)ca->leaf_len)) == NULL) {
		snprintf(w->err, sizeof(w->err), "d2i_X509: %s",
		    common_ssl_error());
		return -1;
	}
	X509_free(x);
	return 0;
}

/* Arguments of the issuance transaction. */
struct issuebench_txn {
	struct issuebench_worker	*w;
	const struct ca_issue_req	*req;
	struct common_error		 err;
};

/* store_txn_run body: one ca_issue (retry-safe: it keeps nothing). */
static int
issuebench_issue_txn(struct store_txn *txn, void *arg)
{
	struct issuebench_txn *t = arg;
	struct issuebench_run *run = t->w->run;
	X509 *x;

	common_error_clear(&t->err);
	if ((x = ca_issue(run->ctx, txn, run->ca_id, t->req, &t->err)) ==
	    NULL)
		return -1;
	X509_free(x);
	return 0;
}

/* Fills name with this worker's next leaf name. */
static void
issuebench_next_name(struct issuebench_worker *w, char *name, size_t len)
{
	snprintf(name, len, "w%d-%llu.bench.example", w->idx,
	    (unsigned long long)w->seq++);
}

/* ca_issue of one leaf in a transaction of its own, as lifecycle does. */
static int
issuebench_op_issue(struct issuebench_worker *w)
{
	struct issuebench *b = w->run->b;
	struct ca_issue_req req;
	struct issuebench_txn t;
	char name[ISSUEBENCH_NAME_MAX], subject[ISSUEBENCH_NAME_MAX + 3];
	const char *sans[1];

	issuebench_next_name(w, name, sizeof(name));
	snprintf(subject, sizeof(subject), "CN=%s", name);
	sans[0] = name;
	memset(&req, 0, sizeof(req));
	req.pubkey = b->leaf[w->seq % ISSUEBENCH_LEAF_KEYS];
	req.subject = subject;
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 90;
	req.origin = "acme";
	req.version = 1;
	memset(&t, 0, sizeof(t));
	t.w = w;
	t.req = &req;
	if (store_txn_run(w->run->st, issuebench_issue_txn, &t) != 0) {
		if (w->err[0] == '\0')
			snprintf(w->err, sizeof(w->err), "ca_issue: %.400s",
			    t.err.msg[0] != '\0' ? t.err.msg :
			    "transaction failed");
		return -1;
	}
	return 0;
}

/* lifecycle_issue: certificate, version and issued rows, chain. */
static int
issuebench_op_lifecycle(struct issuebench_worker *w)
{
	struct issuebench *b = w->run->b;
	struct lifecycle_issue_req req;
	struct common_error err;
	char name[ISSUEBENCH_NAME_MAX], subject[ISSUEBENCH_NAME_MAX + 3];
	const char *sans[1];
	json_t *v;

	issuebench_next_name(w, name, sizeof(name));
	snprintf(subject, sizeof(subject), "CN=%s", name);
	sans[0] = name;
	memset(&req, 0, sizeof(req));
	req.ca_id = w->run->ca_id;
	req.pubkey = b->leaf[w->seq % ISSUEBENCH_LEAF_KEYS];
	req.subject = subject;
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 90;
	req.origin = "acme";
	common_error_clear(&err);
	if ((v = lifecycle_issue(b->lc, &req, "bench:issue", &err)) == NULL) {
		if (w->err[0] == '\0')
			snprintf(w->err, sizeof(w->err), "lifecycle_issue: "
			    "%.400s", err.msg);
		return -1;
	}
	json_decref(v);
	return 0;
}

/* ---- phases ---- */

/* Counts a measured success that took t1 - t0 seconds. */
static void
issuebench_count(struct issuebench_worker *w, double t0, double t1)
{
	if (atomic_load(&w->run->phase) != ISSUEBENCH_MEASURING)
		return;
	w->ops++;
	if (w->nlat < ISSUEBENCH_LAT_MAX)
		w->lat[w->nlat++] = (uint32_t)((t1 - t0) * 1e6);
}

/*
 * A deferred phase: each commit returns before its log flush; its ticket
 * joins the window and the flusher is asked for it (as a held reply
 * asks); a certificate counts, with its latency to that moment, when
 * its ticket is durable. A full window waits for its oldest ticket. A
 * thread's tickets only grow, so the window is a FIFO.
 */
static void
issuebench_worker_deferred(struct issuebench_worker *w)
{
	struct issuebench_inflight win[ISSUEBENCH_DEFER_WINDOW];
	struct store *st = w->run->st;
	size_t head = 0, n = 0;
	uint64_t t;
	double t0;
	int rc;

	if (store_defer(st) == -1) {
		snprintf(w->err, sizeof(w->err), "store_defer failed");
		return;
	}
	while (atomic_load(&w->run->phase) != ISSUEBENCH_STOPPED) {
		t0 = issuebench_now();
		rc = w->run->op(w);
		if (rc != 0) {
			if (atomic_load(&w->run->phase) ==
			    ISSUEBENCH_MEASURING)
				w->fails++;
		} else if ((t = store_defer_pending(st)) == 0)
			issuebench_count(w, t0, issuebench_now());
		else {
			store_flush_request(st, t);
			win[(head + n++) % ISSUEBENCH_DEFER_WINDOW] =
			    (struct issuebench_inflight){ t, t0 };
		}
		while (n > 0 && (n == ISSUEBENCH_DEFER_WINDOW ||
		    store_flush_state(st, win[head].ticket) != 0)) {
			if (store_flush_wait(st, win[head].ticket) == 0)
				issuebench_count(w, win[head].t0,
				    issuebench_now());
			else if (atomic_load(&w->run->phase) ==
			    ISSUEBENCH_MEASURING)
				w->fails++;
			head = (head + 1) % ISSUEBENCH_DEFER_WINDOW;
			n--;
		}
	}
	/* the rest is durable after the phase: not counted */
	if (n > 0)
		(void)store_flush_wait(st, win[(head + n - 1) %
		    ISSUEBENCH_DEFER_WINDOW].ticket);
}

static void *
issuebench_worker_main(void *arg)
{
	struct issuebench_worker *w = arg;
	double t0, t1;
	int rc;

	if (w->run->defer) {
		issuebench_worker_deferred(w);
		return NULL;
	}
	while (atomic_load(&w->run->phase) != ISSUEBENCH_STOPPED) {
		t0 = issuebench_now();
		rc = w->run->op(w);
		t1 = issuebench_now();
		if (atomic_load(&w->run->phase) != ISSUEBENCH_MEASURING)
			continue;
		if (rc != 0) {
			w->fails++;
			continue;
		}
		issuebench_count(w, t0, t1);
	}
	return NULL;
}

static int
issuebench_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0..100) of n sorted samples, in ms. */
static double
issuebench_pct(const uint32_t *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1] / 1000.0;
}

/*
 * Runs op on b->threads workers: ISSUEBENCH_WARMUP unmeasured, then
 * b->seconds measured. Fills res. 0, or -1 when the workers could not
 * be set up.
 */
static int
issuebench_phase_run(struct issuebench_run *run, struct issuebench_result *res)
{
	struct issuebench *b = run->b;
	struct issuebench_worker *ws = NULL;
	uint32_t *all = NULL;
	size_t total = 0, k;
	double start, elapsed = 0;
	int i, started = 0, rc = -1;

	memset(res, 0, sizeof(*res));
	if ((ws = calloc((size_t)b->threads, sizeof(*ws))) == NULL)
		goto out;
	for (i = 0; i < b->threads; i++) {
		ws[i].run = run;
		ws[i].idx = i;
		if ((ws[i].lat = malloc(ISSUEBENCH_LAT_MAX *
		    sizeof(*ws[i].lat))) == NULL ||
		    (ws[i].md = EVP_MD_CTX_new()) == NULL ||
		    (ws[i].tbs = malloc(run->ca->tbs_len)) == NULL)
			goto out;
		/* Content does not change the cost of hashing and signing. */
		memset(ws[i].tbs, 0x5a, run->ca->tbs_len);
	}
	atomic_store(&run->phase, ISSUEBENCH_WARMING);
	for (i = 0; i < b->threads; i++) {
		if (pthread_create(&ws[i].tid, NULL, issuebench_worker_main,
		    &ws[i]) != 0) {
			log_err("issue: cannot start worker %d", i);
			atomic_store(&run->phase, ISSUEBENCH_STOPPED);
			goto join;
		}
		started++;
	}
	issuebench_sleep(ISSUEBENCH_WARMUP);
	start = issuebench_now();
	atomic_store(&run->phase, ISSUEBENCH_MEASURING);
	issuebench_sleep(b->seconds);
	atomic_store(&run->phase, ISSUEBENCH_STOPPED);
	elapsed = issuebench_now() - start;
join:
	for (i = 0; i < started; i++)
		pthread_join(ws[i].tid, NULL);
	if (started != b->threads)
		goto out;
	for (i = 0; i < b->threads; i++) {
		res->ops += ws[i].ops;
		res->fails += ws[i].fails;
		total += ws[i].nlat;
		if (res->err[0] == '\0' && ws[i].err[0] != '\0')
			snprintf(res->err, sizeof(res->err), "%s", ws[i].err);
	}
	if ((all = malloc((total + 1) * sizeof(*all))) == NULL)
		goto out;
	for (i = 0, k = 0; i < b->threads; i++) {
		memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof(*all));
		k += ws[i].nlat;
	}
	qsort(all, total, sizeof(*all), issuebench_u32_cmp);
	res->rate = (double)res->ops / elapsed;
	res->p50_ms = issuebench_pct(all, total, 50);
	res->p99_ms = issuebench_pct(all, total, 99);
	res->max_ms = total > 0 ? all[total - 1] / 1000.0 : 0;
	rc = 0;
out:
	if (ws != NULL)
		for (i = 0; i < b->threads; i++) {
			free(ws[i].lat);
			free(ws[i].tbs);
			EVP_MD_CTX_free(ws[i].md);
		}
	free(ws);
	free(all);
	return rc;
}

/* ---- setup ---- */

struct issuebench_create {
	struct ca_ctx		*ctx;
	struct ca_create_req	 req;
	char			*id_out;	/* LIFECYCLE_ID_MAX bytes */
	struct common_error	 err;
};

static int
issuebench_create_txn(struct store_txn *txn, void *arg)
{
	struct issuebench_create *c = arg;
	json_t *rec;

	common_error_clear(&c->err);
	if ((rec = ca_create(c->ctx, txn, &c->req, &c->err)) == NULL)
		return -1;
	snprintf(c->id_out, LIFECYCLE_ID_MAX, "%s",
	    json_string_value(json_object_get(rec, "id")));
	json_decref(rec);
	return 0;
}

/* Creates a CA (root when issuer is NULL) of alg in ctx's store. */
static int
issuebench_ca_create(struct ca_ctx *ctx, enum ca_key_alg alg,
    const char *name, const char *issuer, char *id_out)
{
	struct issuebench_create c;
	char subject[CA_SUBJECT_MAX];

	memset(&c, 0, sizeof(c));
	snprintf(subject, sizeof(subject), "CN=%s,O=pkid bench", name);
	c.ctx = ctx;
	c.id_out = id_out;
	c.req.name = name;
	c.req.type = issuer == NULL ? "root" : "subordinate";
	c.req.issuer_ca_id = issuer;
	c.req.subject = subject;
	c.req.key_alg = alg;
	c.req.validity_days = issuer == NULL ? 3650 : 1825;
	c.req.path_len = issuer == NULL ? -1 : 0;
	if (store_txn_run(ca_ctx_store(ctx), issuebench_create_txn, &c) != 0) {
		log_err("issue: create CA %s: %s", name, c.err.msg);
		return -1;
	}
	return 0;
}


/* The trial issuance that measures the TBS length of a real leaf. */
struct issuebench_trial {
	struct ca_ctx		*ctx;
	const char		*ca_id;
	EVP_PKEY		*pubkey;
	size_t			 tbs_len;
	unsigned char		*der;		/* the leaf, to free() */
	size_t			 der_len;
	struct common_error	 err;
};

static int
issuebench_trial_txn(struct store_txn *txn, void *arg)
{
	struct issuebench_trial *t = arg;
	const char *sans[] = { "tbs.bench.example" };
	struct ca_issue_req req;
	X509 *x;
	int len;

	memset(&req, 0, sizeof(req));
	req.pubkey = t->pubkey;
	req.subject = "CN=tbs.bench.example";
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 90;
	req.origin = "acme";
	req.version = 1;
	common_error_clear(&t->err);
	if ((x = ca_issue(t->ctx, txn, t->ca_id, &req, &t->err)) == NULL)
		return -1;
	len = i2d_re_X509_tbs(x, NULL);
	free(t->der);
	if (common_x509_to_der(x, &t->der, &t->der_len) == -1)
		len = -1;
	X509_free(x);
	if (len <= 0) {
		common_error_set(&t->err, COMMON_E_INTERNAL, "i2d_re_X509_tbs: "
		    "%s", common_ssl_error());
		return -1;
	}
	t->tbs_len = (size_t)len;
	return 0;
}

/*
 * Creates the hierarchy of ca in both stores, loads the issuing CA's key
 * and measures the TBS length of a real leaf issued by it.
 */
static int
issuebench_ca_setup(struct issuebench *b, struct issuebench_ca *ca)
{
	struct issuebench_trial t;
	struct common_error err;
	char name[CA_NAME_MAX], root_nosync[LIFECYCLE_ID_MAX];
	json_t *rec = NULL;
	int rc = -1;

	memset(&t, 0, sizeof(t));
	snprintf(name, sizeof(name), "bench root %s", ca->label);
	if (issuebench_ca_create(b->ctx, ca->alg, name, NULL,
	    ca->root_id) == -1 ||
	    issuebench_ca_create(b->ctx_nosync, ca->alg, name, NULL,
	    root_nosync) == -1)
		goto out;
	snprintf(name, sizeof(name), "bench issuing %s", ca->label);
	if (issuebench_ca_create(b->ctx, ca->alg, name, ca->root_id,
	    ca->ca_id) == -1 ||
	    issuebench_ca_create(b->ctx_nosync, ca->alg, name, root_nosync,
	    ca->nosync_ca_id) == -1)
		goto out;
	common_error_clear(&err);
	if ((rec = ca_get(b->ctx, NULL, ca->ca_id, &err)) == NULL ||
	    (ca->key = ca_ctx_ca_key(b->ctx, rec, &err)) == NULL) {
		log_err("issue: key of CA %s: %s", ca->ca_id, err.msg);
		goto out;
	}
	t.ctx = b->ctx;
	t.ca_id = ca->ca_id;
	t.pubkey = b->leaf[0];
	if (store_txn_run(b->st, issuebench_trial_txn, &t) != 0) {
		log_err("issue: trial issuance under CA %s: %s", ca->ca_id,
		    t.err.msg);
		goto out;
	}
	ca->tbs_len = t.tbs_len;
	ca->leaf_der = t.der;	/* steal */
	t.der = NULL;
	ca->leaf_len = t.der_len;
	rc = 0;
out:
	free(t.der);
	json_decref(rec);
	return rc;
}

static int
issuebench_rm_entry(const char *path, const struct stat *sb, int type,
    struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	if (remove(path) == -1)
		log_warn("issue: remove %s: %s", path, strerror(errno));
	return 0;
}

/* A P-256 request as an EST device sends one (CN, SAN), for the parse
 * phase. */
static int
issuebench_csr_make(struct issuebench *b)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *san = NULL;
	X509_REQ *req = NULL;
	unsigned char *der = NULL;
	int len, rc = -1;

	if ((req = X509_REQ_new()) == NULL ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_ASC, (const unsigned char *)"device-000001", -1, -1,
	    0) != 1 ||
	    X509_REQ_set_pubkey(req, b->leaf[0]) != 1 ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL ||
	    (san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    "DNS:device-000001.bench.example")) == NULL ||
	    sk_X509_EXTENSION_push(exts, san) == 0)
		goto out;
	san = NULL;
	if (X509_REQ_add_extensions(req, exts) != 1 ||
	    X509_REQ_sign(req, b->leaf[0], EVP_sha256()) <= 0 ||
	    (len = i2d_X509_REQ(req, &der)) <= 0 ||
	    (b->csr_der = malloc((size_t)len)) == NULL)
		goto out;
	memcpy(b->csr_der, der, (size_t)len);
	b->csr_len = (size_t)len;
	rc = 0;
out:
	if (rc != 0)
		log_err("issue: the request of the parse phase: %s",
		    common_ssl_error());
	OPENSSL_free(der);
	X509_EXTENSION_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return rc;
}

/* Closes everything and removes the temporary directory (unless kept). */
static void
issuebench_teardown(struct issuebench *b)
{
	int i;

	lifecycle_free(b->lc);
	ca_ctx_free(b->ctx);
	ca_ctx_free(b->ctx_nosync);
	store_close(b->st);
	store_close(b->st_nosync);
	for (i = 0; i < ISSUEBENCH_LEAF_KEYS; i++)
		EVP_PKEY_free(b->leaf[i]);
	free(b->csr_der);
	if (b->dir[0] == '\0')
		return;
	if (b->keep)
		fprintf(stderr, "issue: kept %s\n", b->dir);
	else
		nftw(b->dir, issuebench_rm_entry, ISSUEBENCH_NFTW_FDS,
		    FTW_DEPTH | FTW_PHYS);
}

/* Opens both stores, their CA contexts and the lifecycle context. */
static int
issuebench_setup(struct issuebench *b)
{
	struct ca_config cc;
	struct lifecycle_config lcfg;
	int i;

	snprintf(b->dir, sizeof(b->dir), "%s/pkid-bench-issue-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(b->dir) == NULL) {
		log_err("issue: mkdtemp %s: %s", b->dir, strerror(errno));
		b->dir[0] = '\0';
		return -1;
	}
	if (common_path(b->durable_dir, sizeof(b->durable_dir), "%s/durable",
	    b->dir) == -1 ||
	    common_path(b->nosync_dir, sizeof(b->nosync_dir), "%s/nosync",
	    b->dir) == -1)
		return -1;
	if ((b->st = store_open(b->durable_dir)) == NULL ||
	    (b->st_nosync = store_open_flags(b->nosync_dir,
	    STORE_F_NOSYNC)) == NULL)
		return -1;
	memset(&cc, 0, sizeof(cc));
	cc.data_dir = b->durable_dir;
	if ((b->ctx = ca_ctx_new(b->st, &cc)) == NULL)
		return -1;
	cc.data_dir = b->nosync_dir;
	if ((b->ctx_nosync = ca_ctx_new(b->st_nosync, &cc)) == NULL)
		return -1;
	memset(&lcfg, 0, sizeof(lcfg));
	lcfg.default_validity_days = 90;
	lcfg.default_renew_before_days = 30;
	if ((b->lc = lifecycle_new(b->ctx, &lcfg)) == NULL)
		return -1;
	/* Subject keys are made before any timing: key generation is the
	 * client's cost, not the CA's. */
	for (i = 0; i < ISSUEBENCH_LEAF_KEYS; i++)
		if ((b->leaf[i] = ca_key_generate(CA_KEY_ECDSA_P256)) == NULL) {
			log_err("issue: leaf key: %s", common_ssl_error());
			return -1;
		}
	return issuebench_csr_make(b);
}

/* ---- results ---- */

static json_t *
issuebench_result_json(const struct issuebench_result *r)
{
	json_t *o = json_pack("{s:f, s:I, s:I, s:f, s:f, s:f}",
	    "per_second", r->rate, "operations", (json_int_t)r->ops,
	    "failures", (json_int_t)r->fails, "p50_ms", r->p50_ms,
	    "p99_ms", r->p99_ms, "max_ms", r->max_ms);

	if (o != NULL && r->err[0] != '\0')
		json_object_set_new(o, "first_error", json_string(r->err));
	return o;
}

/* A row of the results table. target NULL: an informative row. */
static json_t *
issuebench_row(const char *metric, double value, const char *peer_name,
    double peer, const char *target, double min_ratio)
{
	double ratio = peer > 0 ? value / peer : 0;

	return json_pack("{s:s, s:f, s:s, s:f, s:f, s:s, s:o}",
	    "metric", metric, "pkid", value, "peer_name", peer_name,
	    "peer", peer, "ratio", ratio, "target", target != NULL ? target :
	    "", "ok", target == NULL ? json_null() :
	    json_boolean(ratio >= min_ratio));
}

/* Measures the four phases of ca and appends its rows and details. */
static int
issuebench_measure(struct issuebench *b, struct issuebench_ca *ca,
    json_t *rows, json_t *details)
{
	struct issuebench_run run;
	struct issuebench_result raw, dur, def, nos, lcr, lcd, csrp, crtp;
	char metric[256], peer[256], target[64];
	json_t *d;

	memset(&run, 0, sizeof(run));
	run.b = b;
	run.ca = ca;
	run.op = issuebench_op_raw;
	fprintf(stderr, "issue: %s: raw signatures, %d threads, %.0f s\n",
	    ca->label, b->threads, b->seconds);
	if (issuebench_phase_run(&run, &raw) == -1)
		return -1;
	/* the request does not depend on the CA: read it once per run */
	if (json_object_get(details, "d2i_X509_REQ_p256_request") == NULL) {
		fprintf(stderr, "issue: parsing a P-256 request\n");
		run.op = issuebench_op_csr_parse;
		if (issuebench_phase_run(&run, &csrp) == -1)
			return -1;
		json_object_set_new(details, "d2i_X509_REQ_p256_request",
		    issuebench_result_json(&csrp));
	}
	fprintf(stderr, "issue: %s: parsing its leaf\n", ca->label);
	run.op = issuebench_op_cert_parse;
	if (issuebench_phase_run(&run, &crtp) == -1)
		return -1;
	fprintf(stderr, "issue: %s: ca_issue (durable)\n", ca->label);
	run.op = issuebench_op_issue;
	run.ctx = b->ctx;
	run.st = b->st;
	run.ca_id = ca->ca_id;
	if (issuebench_phase_run(&run, &dur) == -1)
		return -1;
	fprintf(stderr, "issue: %s: ca_issue (durable, deferred)\n",
	    ca->label);
	run.defer = true;
	if (issuebench_phase_run(&run, &def) == -1)
		return -1;
	run.defer = false;
	fprintf(stderr, "issue: %s: ca_issue (nosync)\n", ca->label);
	run.ctx = b->ctx_nosync;
	run.st = b->st_nosync;
	run.ca_id = ca->nosync_ca_id;
	if (issuebench_phase_run(&run, &nos) == -1)
		return -1;
	fprintf(stderr, "issue: %s: lifecycle_issue (durable)\n", ca->label);
	run.op = issuebench_op_lifecycle;
	run.ctx = b->ctx;
	run.st = b->st;
	run.ca_id = ca->ca_id;
	if (issuebench_phase_run(&run, &lcr) == -1)
		return -1;
	fprintf(stderr, "issue: %s: lifecycle_issue (durable, deferred)\n",
	    ca->label);
	run.defer = true;
	if (issuebench_phase_run(&run, &lcd) == -1)
		return -1;
	run.defer = false;

	snprintf(peer, sizeof(peer), "raw %s signatures, same key "
	    "(EVP_DigestSign of %zu bytes)", ca->label, ca->tbs_len);
	snprintf(target, sizeof(target), ">= %.0f%% of raw",
	    ISSUEBENCH_TARGET_RATIO * 100);
	snprintf(metric, sizeof(metric), "issuance %s: ca_issue in "
	    "store_txn_run, durable, acknowledged after the log flush as "
	    "pkid's workers do (certificates/s, %d threads, %d in flight "
	    "each)", ca->label, b->threads, ISSUEBENCH_DEFER_WINDOW);
	json_array_append_new(rows, issuebench_row(metric, def.rate, peer,
	    raw.rate, target, ISSUEBENCH_TARGET_RATIO));
	snprintf(metric, sizeof(metric), "issuance %s: the same, one "
	    "durable commit at a time per thread (certificates/s)",
	    ca->label);
	json_array_append_new(rows, issuebench_row(metric, dur.rate, peer,
	    raw.rate, NULL, 0));
	snprintf(metric, sizeof(metric), "issuance %s: lifecycle_issue, "
	    "durable, with inventory, deferred as above (certificates/s)",
	    ca->label);
	json_array_append_new(rows, issuebench_row(metric, lcd.rate, peer,
	    raw.rate, NULL, 0));
	d = json_pack("{s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "issuing_ca", ca->ca_id, "key", ca->label,
	    "tbs_bytes", (json_int_t)ca->tbs_len,
	    "raw_sign", issuebench_result_json(&raw),
	    "d2i_X509_leaf", issuebench_result_json(&crtp),
	    "ca_issue_durable", issuebench_result_json(&dur),
	    "ca_issue_deferred", issuebench_result_json(&def),
	    "ca_issue_nosync", issuebench_result_json(&nos),
	    "lifecycle_issue_durable", issuebench_result_json(&lcr),
	    "lifecycle_issue_deferred", issuebench_result_json(&lcd));
	json_object_set_new(details, ca->label, d);
	return 0;
}

static void
issuebench_usage(void)
{
	fprintf(stderr, "usage: issue [--threads N] [--seconds S] "
	    "[--key ALG] [--out FILE] [--keep]\n"
	    "  --threads N   workers per phase (default: one per core)\n"
	    "  --key ALG     only this CA key: ECDSA_P256 or RSA2048\n"
	    "  --seconds S   measured seconds per phase (default %.0f)\n"
	    "  --out FILE    write the results JSON there (default stdout)\n"
	    "  --keep        keep the temporary data directory\n",
	    ISSUEBENCH_SECONDS);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "keep", no_argument, NULL, 'k' },
		{ "key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct issuebench b;
	struct issuebench_ca cas[] = {
		{ .alg = CA_KEY_ECDSA_P256, .label = "ECDSA P-256" },
		{ .alg = CA_KEY_RSA2048, .label = "RSA-2048" },
	};
	const char *out = NULL, *only = NULL;
	enum ca_key_alg alg;
	json_t *res = NULL, *rows = NULL, *details = NULL;
	char *end;
	long cores;
	size_t i;
	int c, rc = 1;

	memset(&b, 0, sizeof(b));
	cores = sysconf(_SC_NPROCESSORS_ONLN);
	b.threads = cores > 0 ? (int)cores : 1;
	b.seconds = ISSUEBENCH_SECONDS;
	while ((c = getopt_long(argc, argv, "t:s:o:kK:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			errno = 0;
			b.threads = (int)strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || b.threads < 1 ||
			    b.threads > ISSUEBENCH_THREADS_MAX) {
				fprintf(stderr, "issue: --threads must be "
				    "1..%d\n", ISSUEBENCH_THREADS_MAX);
				return 2;
			}
			break;
		case 's':
			b.seconds = strtod(optarg, &end);
			if (*end != '\0' || !(b.seconds > 0) ||
			    b.seconds > ISSUEBENCH_SECONDS_MAX) {
				fprintf(stderr, "issue: --seconds must be in "
				    "(0, %.0f]\n", ISSUEBENCH_SECONDS_MAX);
				return 2;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 'k':
			b.keep = true;
			break;
		case 'K':
			if (ca_key_alg_parse(optarg, &alg) == -1 ||
			    (alg != CA_KEY_ECDSA_P256 &&
			    alg != CA_KEY_RSA2048)) {
				fprintf(stderr, "issue: --key must be "
				    "ECDSA_P256 or RSA2048\n");
				return 2;
			}
			only = optarg;
			break;
		default:
			issuebench_usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc) {
		issuebench_usage();
		return 2;
	}
	if (issuebench_setup(&b) == -1)
		goto out;
	if ((rows = json_array()) == NULL || (details = json_object()) == NULL)
		goto out;
	for (i = 0; i < sizeof(cas) / sizeof(cas[0]); i++)
		if ((only == NULL || strcmp(only,
		    ca_key_alg_name(cas[i].alg)) == 0) &&
		    (issuebench_ca_setup(&b, &cas[i]) == -1 ||
		    issuebench_measure(&b, &cas[i], rows, details) == -1))
			goto out;
	json_object_set_new(details, "threads", json_integer(b.threads));
	json_object_set_new(details, "seconds_per_phase", json_real(b.seconds));
	json_object_set_new(details, "warmup_seconds",
	    json_real(ISSUEBENCH_WARMUP));
	json_object_set_new(details, "leaf_key", json_string("ECDSA P-256"));
	json_object_set_new(details, "method", json_string(
	    "phases run one after the other with the same threads: raw "
	    "EVP_DigestSign (SHA-256) of a buffer as long as a real leaf's "
	    "TBSCertificate with the issuing CA's key; ca_issue in one "
	    "store_txn_run per certificate on a store opened as pkid opens "
	    "it (fsync'd commits) and on one opened with STORE_F_NOSYNC; "
	    "the durable one again with durability deferred as pkid's "
	    "workers run (store_defer: a thread keeps issuing while the "
	    "log flush of its earlier commits runs, at most "
	    "ISSUEBENCH_DEFER_WINDOW not yet durable, a certificate counted "
	    "when its commit is durable); lifecycle_issue (certificate, "
	    "version and issued rows in one durable transaction), one at a "
	    "time and deferred"));
	json_object_set_new(details, "defer_window",
	    json_integer(ISSUEBENCH_DEFER_WINDOW));
	res = json_pack("{s:s, s:O, s:O}", "name", "issue", "rows", rows,
	    "details", details);
	if (res == NULL)
		goto out;
	if (out != NULL) {
		if (json_dump_file(res, out, JSON_INDENT(2)) == -1) {
			log_err("issue: cannot write %s", out);
			goto out;
		}
	} else if (json_dumpf(res, stdout, JSON_INDENT(2)) == -1 ||
	    fputc('\n', stdout) == EOF)
		goto out;
	rc = 0;
out:
	for (i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
		EVP_PKEY_free(cas[i].key);
		free(cas[i].leaf_der);
	}
	json_decref(res);
	json_decref(rows);
	json_decref(details);
	issuebench_teardown(&b);
	return rc;
}
