/*
 * bench/estload/estload.c — options, the phases, and the results object
 * of bench/README.md ({"name": "est", "rows", "details"}). See
 * estload.h for what is measured.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bench/estload/estload.h"
#include "common/common.h"

#define ESTLOAD_TARGET_RATE	1000.0	/* enrollments/s, fresh TLS 1.3 */
#define ESTLOAD_CONNECTIONS	32
#define ESTLOAD_SECONDS		10.0
#define ESTLOAD_WARMUP		2.0
#define ESTLOAD_TIMEOUT		10.0
#define ESTLOAD_SECONDS_MAX	600.0
#define ESTLOAD_CSRS		30000	/* default pool */
#define ESTLOAD_CSRS_MAX	2000000
#define ESTLOAD_PASSWORD_MAX	1024
#define ESTLOAD_CRED_MAX	(ESTLOAD_PASSWORD_MAX + 128)
#define ESTLOAD_PROC_STAT_MAX	4096
#define ESTLOAD_LIMIT_NAME	"limit: TLS 1.3 handshakes/s of the same " \
				"server (GET /healthz, new connection each)"

/* What one phase measured. */
struct estload_result {
	enum estload_mode	 mode;
	bool			 ran;
	double			 elapsed;
	double			 rate;
	struct estload_stats	 st;
	uint64_t		 errors;
	double			 p50, p90, p99, max, mean;	/* ms */
	double			 client_cpu;	/* seconds */
	double			 server_cpu;	/* seconds; < 0: unknown */
};

static int
estload_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double
estload_pct(const uint32_t *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)((p / 100.0) * (double)n + 0.999999);
	k = k < 1 ? 1 : k > n ? n : k;
	return v[k - 1] / 1000.0;
}

static double
estload_cpu_self(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of process pid in seconds (from /proc); -1 when it
 * cannot be read. */
static double
estload_cpu_of(long pid)
{
	char path[64], text[ESTLOAD_PROC_STAT_MAX], *p;
	unsigned long ut, stime;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	if (pid <= 0 || hz <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	/* Fields after "(comm)": state is field 3, utime 14, stime 15. */
	if ((p = strrchr(text, ')')) == NULL ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%lu %lu", &ut, &stime) != 2)
		return -1;
	return (double)(ut + stime) / (double)hz;
}

static void
estload_sleep(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Runs one phase of el->mode with el->threads threads. 0 or -1. */
static int
estload_phase(struct estload *el, long server_pid, struct estload_result *res)
{
	struct estload_thread *ts = NULL;
	uint32_t *all = NULL;
	size_t total = 0, k;
	double start, cpu0, scpu0, sum = 0;
	int i, started = 0, rc = -1, e;

	memset(res, 0, sizeof(*res));
	res->mode = el->mode;
	if ((ts = calloc((size_t)el->threads, sizeof(*ts))) == NULL)
		goto out;
	for (i = 0; i < el->threads; i++)
		ts[i].epfd = -1;
	for (i = 0; i < el->threads; i++) {
		ts[i].el = el;
		ts[i].idx = i;
		ts[i].nconns = el->connections / el->threads +
		    (i < el->connections % el->threads ? 1 : 0);
		if (estload_thread_init(&ts[i]) == -1) {
			fprintf(stderr, "estload: thread %d: %s\n", i,
			    strerror(errno));
			goto out;
		}
	}
	atomic_store(&el->phase, ESTLOAD_WARMING);
	for (i = 0; i < el->threads; i++) {
		if (pthread_create(&ts[i].tid, NULL, estload_thread_main,
		    &ts[i]) != 0) {
			atomic_store(&el->phase, ESTLOAD_STOPPED);
			break;
		}
		started++;
	}
	if (started == el->threads) {
		estload_sleep(el->warmup);
		cpu0 = estload_cpu_self();
		scpu0 = estload_cpu_of(server_pid);
		start = estload_now();
		atomic_store(&el->phase, ESTLOAD_MEASURING);
		estload_sleep(el->seconds);
		atomic_store(&el->phase, ESTLOAD_STOPPED);
		res->elapsed = estload_now() - start;
		res->client_cpu = estload_cpu_self() - cpu0;
		res->server_cpu = scpu0 < 0 ? -1 :
		    estload_cpu_of(server_pid) - scpu0;
	}
	for (i = 0; i < started; i++)
		pthread_join(ts[i].tid, NULL);
	if (started != el->threads)
		goto out;
	for (i = 0; i < el->threads; i++) {
		res->st.ok += ts[i].st.ok;
		res->st.connects += ts[i].st.connects;
		res->st.bytes_in += ts[i].st.bytes_in;
		for (e = 0; e < ESTLOAD_E__MAX; e++) {
			res->st.err[e] += ts[i].st.err[e];
			res->errors += ts[i].st.err[e];
		}
		for (e = 0; e < ESTLOAD_STATUS_MAX; e++)
			res->st.status[e] += ts[i].st.status[e];
		if (res->st.first_err[0] == '\0')
			memcpy(res->st.first_err, ts[i].st.first_err,
			    sizeof(res->st.first_err));
		total += ts[i].nlat;
	}
	if ((all = malloc((total + 1) * sizeof(*all))) == NULL)
		goto out;
	for (i = 0, k = 0; i < el->threads; i++) {
		memcpy(all + k, ts[i].lat, ts[i].nlat * sizeof(*all));
		k += ts[i].nlat;
	}
	qsort(all, total, sizeof(*all), estload_u32_cmp);
	for (k = 0; k < total; k++)
		sum += all[k];
	res->rate = (double)res->st.ok / res->elapsed;
	res->p50 = estload_pct(all, total, 50);
	res->p90 = estload_pct(all, total, 90);
	res->p99 = estload_pct(all, total, 99);
	res->max = total > 0 ? all[total - 1] / 1000.0 : 0;
	res->mean = total > 0 ? sum / (double)total / 1000.0 : 0;
	res->ran = true;
	rc = 0;
out:
	if (ts != NULL)
		for (i = 0; i < el->threads; i++)
			estload_thread_free(&ts[i]);
	free(ts);
	free(all);
	return rc;
}

static json_t *
estload_result_json(const struct estload *el, const struct estload_result *r)
{
	json_t *o, *errs;
	char key[32];
	int e;

	if ((errs = json_object()) == NULL)
		return NULL;
	for (e = 0; e < ESTLOAD_E__MAX; e++)
		if (e != ESTLOAD_E_STATUS && r->st.err[e] > 0)
			json_object_set_new(errs, estload_err_name(e),
			    json_integer((json_int_t)r->st.err[e]));
	for (e = 0; e < ESTLOAD_STATUS_MAX; e++)
		if (r->st.status[e] > 0) {
			snprintf(key, sizeof(key), "http_%d", e);
			json_object_set_new(errs, key,
			    json_integer((json_int_t)r->st.status[e]));
		}
	o = json_pack("{s:s, s:i, s:i, s:f, s:I, s:f, s:I, s:o, s:{s:f, s:f,"
	    " s:f, s:f, s:f}, s:f, s:f, s:I}",
	    "mode", estload_mode_name(r->mode),
	    "connections", el->connections, "threads", el->threads,
	    "seconds", r->elapsed, "completed", (json_int_t)r->st.ok,
	    "per_second", r->rate, "errors_total", (json_int_t)r->errors,
	    "errors", errs,
	    "latency_ms", "p50", r->p50, "p90", r->p90, "p99", r->p99,
	    "max", r->max, "mean", r->mean,
	    "client_cpu_seconds", r->client_cpu,
	    "client_cpu_share_of_machine", r->client_cpu / r->elapsed /
	    (double)sysconf(_SC_NPROCESSORS_ONLN),
	    "connections_opened", (json_int_t)r->st.connects);
	if (o == NULL)
		return NULL;
	if (r->server_cpu >= 0) {
		json_object_set_new(o, "server_cpu_seconds",
		    json_real(r->server_cpu));
		json_object_set_new(o, "server_cpu_ms_per_request",
		    json_real(r->st.ok > 0 ? r->server_cpu * 1000.0 /
		    (double)r->st.ok : 0));
	}
	if (r->st.first_err[0] != '\0')
		json_object_set_new(o, "first_error",
		    json_string(r->st.first_err));
	return o;
}

/* The table rows of the phases that ran. */
static json_t *
estload_rows(const struct estload *el, const struct estload_result *rs)
{
	const struct estload_result *hs = &rs[ESTLOAD_HANDSHAKE];
	const struct estload_result *ca = &rs[ESTLOAD_CACERTS];
	const struct estload_result *fr = &rs[ESTLOAD_FRESH];
	const struct estload_result *ka = &rs[ESTLOAD_KEEPALIVE];
	char metric[256], target[64];
	json_t *rows = json_array();

	if (rows == NULL)
		return NULL;
	if (fr->ran) {
		snprintf(metric, sizeof(metric), "EST simpleenroll, new TLS "
		    "1.3 connection each (enrollments/s, %d connections)",
		    el->connections);
		snprintf(target, sizeof(target), ">= %.0f/s, no errors",
		    ESTLOAD_TARGET_RATE);
		json_array_append_new(rows, json_pack("{s:s, s:f, s:s, s:o,"
		    " s:o, s:s, s:b}", "metric", metric, "pkid", fr->rate,
		    "peer_name", hs->ran ? ESTLOAD_LIMIT_NAME : "",
		    "peer", hs->ran ? json_real(hs->rate) : json_null(),
		    "ratio", hs->ran && hs->rate > 0 ?
		    json_real(fr->rate / hs->rate) : json_null(),
		    "target", target, "ok", fr->rate >= ESTLOAD_TARGET_RATE &&
		    fr->errors == 0));
		snprintf(metric, sizeof(metric), "EST simpleenroll, new TLS "
		    "1.3 connection each: p99 latency (ms)");
		json_array_append_new(rows, json_pack("{s:s, s:f, s:s, s:o,"
		    " s:o, s:s, s:n}", "metric", metric, "pkid", fr->p99,
		    "peer_name", hs->ran ? "limit: GET /healthz on a new "
		    "connection, p99 (ms)" : "", "peer", hs->ran ?
		    json_real(hs->p99) :
		    json_null(), "ratio", hs->ran && hs->p99 > 0 ?
		    json_real(fr->p99 / hs->p99) : json_null(),
		    "target", "", "ok"));
	}
	if (ka->ran) {
		snprintf(metric, sizeof(metric), "EST simpleenroll, keep-alive "
		    "connections (enrollments/s, %d connections)",
		    el->connections);
		json_array_append_new(rows, json_pack("{s:s, s:f, s:s, s:o,"
		    " s:o, s:s, s:n}", "metric", metric, "pkid", ka->rate,
		    "peer_name", fr->ran ? "the same with a new TLS 1.3 "
		    "connection each" : "", "peer", fr->ran ?
		    json_real(fr->rate) : json_null(), "ratio", fr->ran &&
		    fr->rate > 0 ? json_real(ka->rate / fr->rate) :
		    json_null(), "target", "", "ok"));
	}
	if (ca->ran) {
		snprintf(metric, sizeof(metric), "EST cacerts, new TLS 1.3 "
		    "connection each (requests/s, %d connections)",
		    el->connections);
		json_array_append_new(rows, json_pack("{s:s, s:f, s:s, s:o,"
		    " s:o, s:s, s:n}", "metric", metric, "pkid", ca->rate,
		    "peer_name", hs->ran ? ESTLOAD_LIMIT_NAME : "",
		    "peer", hs->ran ? json_real(hs->rate) : json_null(),
		    "ratio", hs->ran && hs->rate > 0 ?
		    json_real(ca->rate / hs->rate) : json_null(),
		    "target", "", "ok"));
	}
	if (!fr->ran && !ca->ran && hs->ran) {
		json_array_append_new(rows, json_pack("{s:s, s:f, s:s, s:n,"
		    " s:n, s:s, s:n}", "metric", ESTLOAD_LIMIT_NAME, "pkid",
		    hs->rate, "peer_name", "", "peer", "ratio", "target", "",
		    "ok"));
	}
	return rows;
}

/*
 * Server certificate verification that remembers what it verified: the
 * first handshake runs X509_verify_cert (chain to --cacert, the host's
 * IP in the certificate); later handshakes presenting the same
 * certificate (X509_cmp: its DER) are accepted without rebuilding the
 * chain, as a client with a verified-certificate cache would. libssl
 * still checks every handshake's CertificateVerify signature, so each
 * connection proves the server holds the key. The server does the same
 * work either way; the client saves the CPU it would take from it on a
 * shared machine.
 */
static int
estload_verify(X509_STORE_CTX *xs, void *arg)
{
	struct estload *el = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	bool known;
	int ok;

	pthread_mutex_lock(&el->pin_lock);
	known = el->pinned != NULL && leaf != NULL &&
	    X509_cmp(el->pinned, leaf) == 0;
	pthread_mutex_unlock(&el->pin_lock);
	if (known)
		return 1;
	if ((ok = X509_verify_cert(xs)) == 1 && leaf != NULL) {
		pthread_mutex_lock(&el->pin_lock);
		if (el->pinned == NULL && X509_up_ref(leaf) == 1)
			el->pinned = leaf;
		pthread_mutex_unlock(&el->pin_lock);
	}
	return ok;
}

/* The TLS client context: TLS 1.3 only, the server's certificate
 * verified against cacert and the host IP (estload_verify), no session
 * resumption (each device connects once). NULL on failure. */
static SSL_CTX *
estload_tls(struct estload *el)
{
	SSL_CTX *ctx;
	X509_VERIFY_PARAM *vp;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, el->cacert, NULL) != 1 ||
	    (vp = SSL_CTX_get0_param(ctx)) == NULL ||
	    (X509_VERIFY_PARAM_set1_ip_asc(vp, el->host) != 1 &&
	    X509_VERIFY_PARAM_set1_host(vp, el->host, 0) != 1)) {
		fprintf(stderr, "estload: TLS context (%s): %s\n", el->cacert,
		    ERR_error_string(ERR_get_error(), NULL));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, estload_verify, el);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

/* "Basic base64(user:password)" with the password from the first line
 * of file. 0 or -1. */
static int
estload_auth(struct estload *el, const char *user, const char *file)
{
	char pw[ESTLOAD_PASSWORD_MAX + 2], cred[ESTLOAD_CRED_MAX], *b64;
	FILE *f;
	size_t n;
	int rc = -1;

	if ((f = fopen(file, "r")) == NULL) {
		fprintf(stderr, "estload: %s: %s\n", file, strerror(errno));
		return -1;
	}
	if (fgets(pw, sizeof(pw), f) == NULL) {
		fprintf(stderr, "estload: %s: empty\n", file);
		goto out;
	}
	n = strcspn(pw, "\r\n");
	pw[n] = '\0';
	if (strchr(user, ':') != NULL || snprintf(cred, sizeof(cred), "%s:%s",
	    user, pw) >= (int)sizeof(cred)) {
		fprintf(stderr, "estload: bad user name or password\n");
		goto out;
	}
	if ((b64 = common_b64_encode(cred, strlen(cred), false, 0)) == NULL)
		goto out;
	if (snprintf(el->auth, sizeof(el->auth), "Basic %s", b64) <
	    (int)sizeof(el->auth))
		rc = 0;
	OPENSSL_cleanse(cred, sizeof(cred));
	free(b64);
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	fclose(f);
	return rc;
}

static int
estload_phases_parse(const char *s, bool want[ESTLOAD_MODE__MAX])
{
	const char *p = s, *comma;
	size_t n;
	int m;

	memset(want, 0, sizeof(bool) * ESTLOAD_MODE__MAX);
	for (;;) {
		comma = strchr(p, ',');
		n = comma != NULL ? (size_t)(comma - p) : strlen(p);
		for (m = 0; m < ESTLOAD_MODE__MAX; m++)
			if (strlen(estload_mode_name(m)) == n &&
			    strncmp(p, estload_mode_name(m), n) == 0)
				break;
		if (m == ESTLOAD_MODE__MAX)
			return -1;
		want[m] = true;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

static int
estload_num(const char *opt, const char *s, double min, double max,
    double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(*out >= min) || *out > max) {
		fprintf(stderr, "estload: %s must be %g..%g\n", opt, min, max);
		return -1;
	}
	return 0;
}

static void
estload_usage(void)
{
	fprintf(stderr, "usage: estload --port PORT --cacert FILE --user USER "
	    "--password-file FILE\n"
	    "               [--host IP] [--label LABEL] [--connections N] "
	    "[--threads N]\n"
	    "               [--seconds S] [--warmup S] [--timeout S] "
	    "[--csrs N]\n"
	    "               [--phases handshake,cacerts,fresh,keepalive] "
	    "[--server-pid PID]\n"
	    "               [--no-check-body] [--out FILE]\n"
	    "  defaults: host 127.0.0.1, %d connections, one thread per "
	    "core,\n"
	    "  %.0f s measured after %.0f s of warm-up per phase, %d CSRs "
	    "made first\n", ESTLOAD_CONNECTIONS, ESTLOAD_SECONDS,
	    ESTLOAD_WARMUP, ESTLOAD_CSRS);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "label", required_argument, NULL, 'l' },
		{ "cacert", required_argument, NULL, 'c' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'P' },
		{ "connections", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "csrs", required_argument, NULL, 'C' },
		{ "phases", required_argument, NULL, 'f' },
		{ "server-pid", required_argument, NULL, 'S' },
		{ "no-check-body", no_argument, NULL, 'B' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static struct estload el;
	struct estload_result rs[ESTLOAD_MODE__MAX];
	bool want[ESTLOAD_MODE__MAX] = { true, true, true, true };
	const char *user = NULL, *pwfile = NULL, *out = NULL;
	json_t *res = NULL, *details = NULL, *phases = NULL, *rows = NULL;
	double v, csrs = ESTLOAD_CSRS, t0, pid = 0;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int c, m, rc = 1;

	memset(rs, 0, sizeof(rs));
	snprintf(el.host, sizeof(el.host), "127.0.0.1");
	el.connections = ESTLOAD_CONNECTIONS;
	el.threads = cores > 0 ? (int)cores : 1;
	el.seconds = ESTLOAD_SECONDS;
	el.warmup = ESTLOAD_WARMUP;
	el.timeout = ESTLOAD_TIMEOUT;
	el.check_body = true;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			if (snprintf(el.host, sizeof(el.host), "%s", optarg) >=
			    (int)sizeof(el.host))
				return 2;
			break;
		case 'p':
			if (estload_num("--port", optarg, 1, 65535, &v) == -1)
				return 2;
			el.port = (int)v;
			break;
		case 'l':
			if (!common_id_valid(optarg) ||
			    snprintf(el.label, sizeof(el.label), "%s/",
			    optarg) >= (int)sizeof(el.label)) {
				fprintf(stderr, "estload: bad --label\n");
				return 2;
			}
			break;
		case 'c':
			el.cacert = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'P':
			pwfile = optarg;
			break;
		case 'n':
			if (estload_num("--connections", optarg, 1,
			    ESTLOAD_CONNS_MAX, &v) == -1)
				return 2;
			el.connections = (int)v;
			break;
		case 't':
			if (estload_num("--threads", optarg, 1,
			    ESTLOAD_THREADS_MAX, &v) == -1)
				return 2;
			el.threads = (int)v;
			break;
		case 's':
			if (estload_num("--seconds", optarg, 0.1,
			    ESTLOAD_SECONDS_MAX, &el.seconds) == -1)
				return 2;
			break;
		case 'w':
			if (estload_num("--warmup", optarg, 0,
			    ESTLOAD_SECONDS_MAX, &el.warmup) == -1)
				return 2;
			break;
		case 'T':
			if (estload_num("--timeout", optarg, 0.1,
			    ESTLOAD_SECONDS_MAX, &el.timeout) == -1)
				return 2;
			break;
		case 'C':
			if (estload_num("--csrs", optarg, 1, ESTLOAD_CSRS_MAX,
			    &csrs) == -1)
				return 2;
			break;
		case 'f':
			if (estload_phases_parse(optarg, want) == -1) {
				fprintf(stderr, "estload: --phases is a list "
				    "of handshake, cacerts, fresh, "
				    "keepalive\n");
				return 2;
			}
			break;
		case 'S':
			if (estload_num("--server-pid", optarg, 1, 4194304,
			    &pid) == -1)
				return 2;
			break;
		case 'B':
			el.check_body = false;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			estload_usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc || el.port == 0 || el.cacert == NULL ||
	    ((want[ESTLOAD_FRESH] || want[ESTLOAD_KEEPALIVE]) &&
	    (user == NULL || pwfile == NULL))) {
		estload_usage();
		return 2;
	}
	if (el.threads > el.connections)
		el.threads = el.connections;
	signal(SIGPIPE, SIG_IGN);
	if (pthread_mutex_init(&el.pin_lock, NULL) != 0)
		return 1;
	if ((el.tls = estload_tls(&el)) == NULL)
		goto out;
	if (user != NULL && estload_auth(&el, user, pwfile) == -1)
		goto out;
	if (want[ESTLOAD_FRESH] || want[ESTLOAD_KEEPALIVE]) {
		t0 = estload_now();
		if (estload_csrs_make(&el.csrs, (size_t)csrs, el.threads) ==
		    -1) {
			fprintf(stderr, "estload: cannot make the CSRs\n");
			goto out;
		}
		fprintf(stderr, "estload: %zu CSRs (fresh P-256 keys) made in "
		    "%.1f s\n", el.csrs.n, estload_now() - t0);
	}
	if ((phases = json_object()) == NULL)
		goto out;
	for (m = 0; m < ESTLOAD_MODE__MAX; m++) {
		if (!want[m])
			continue;
		el.mode = (enum estload_mode)m;
		fprintf(stderr, "estload: %s: %d connections, %d threads, "
		    "%.0f s + %.0f s warm-up\n", estload_mode_name(m),
		    el.connections, el.threads, el.seconds, el.warmup);
		if (estload_phase(&el, (long)pid, &rs[m]) == -1) {
			fprintf(stderr, "estload: phase %s could not run\n",
			    estload_mode_name(m));
			goto out;
		}
		fprintf(stderr, "estload: %s: %.1f/s, p50 %.1f ms, p99 %.1f "
		    "ms, %llu errors%s%s\n", estload_mode_name(m),
		    rs[m].rate, rs[m].p50, rs[m].p99,
		    (unsigned long long)rs[m].errors,
		    rs[m].st.first_err[0] != '\0' ? "; first: " : "",
		    rs[m].st.first_err);
		json_object_set_new(phases, estload_mode_name(m),
		    estload_result_json(&el, &rs[m]));
	}
	if ((rows = estload_rows(&el, rs)) == NULL)
		goto out;
	details = json_pack("{s:O, s:s, s:i, s:s, s:I, s:I, s:b, s:f, s:f,"
	    " s:s}", "phases", phases, "endpoint", el.label[0] != '\0' ?
	    el.label : "(default label)", "port", el.port,
	    "tls", "TLS 1.3 only, no resumption; the server certificate "
	    "verified (chain to the trust bundle, IP) on the first "
	    "handshake, then recognised by its DER; every CertificateVerify "
	    "checked", "csr_pool", (json_int_t)el.csrs.n,
	    "csrs_used", (json_int_t)estload_csrs_used(&el.csrs),
	    "answers_checked", el.check_body, "seconds_per_phase", el.seconds,
	    "warmup_seconds", el.warmup, "method",
	    "one epoll loop per client thread over non-blocking OpenSSL; "
	    "every request counted when it completes inside the measured "
	    "window; latency from connect (new connections) or from the "
	    "request (keep-alive) to the last byte of the answer; each "
	    "enrollment sends a CSR of its own (fresh P-256 key, made "
	    "before the phases) with HTTP Basic credentials");
	res = json_pack("{s:s, s:O, s:O}", "name", "est", "rows", rows,
	    "details", details);
	if (res == NULL)
		goto out;
	if (out != NULL ? json_dump_file(res, out, JSON_INDENT(2)) == -1 :
	    (json_dumpf(res, stdout, JSON_INDENT(2)) == -1 ||
	    fputc('\n', stdout) == EOF)) {
		fprintf(stderr, "estload: cannot write the results\n");
		goto out;
	}
	rc = 0;
out:
	json_decref(res);
	json_decref(details);
	json_decref(phases);
	json_decref(rows);
	estload_csrs_free(&el.csrs);
	SSL_CTX_free(el.tls);
	X509_free(el.pinned);
	pthread_mutex_destroy(&el.pin_lock);
	OPENSSL_cleanse(el.auth, sizeof(el.auth));
	return rc;
}
