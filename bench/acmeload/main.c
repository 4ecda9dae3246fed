/*
 * bench/acmeload/main.c — options, the directory, the run and its
 * reports.
 *
 * The run: fetch the directory; start the http-01 responder; every
 * worker registers an account; then the flow phase runs full issuance
 * flows until --duration has passed (or --orders flows were started),
 * lets the flows in flight finish (at most --flow-timeout more), and
 * reports. Orders per second are the orders completed over the time from
 * the start of the flow phase to the end of the last flow.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "bench/acmeload/acmeload.h"

#define MAIN_DIR_TIMEOUT_MS	30000	/* fetching the directory */
#define MAIN_DURATION_MAX	86400.0	/* seconds */
#define MAIN_DURATION_DEFAULT	10.0	/* seconds */
#define MAIN_MS_MAX		3600000	/* any millisecond option */
#define MAIN_STALL_TICK_MS	250	/* how often progress is checked */

uint64_t
acmeload_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char main_usage[] =
"usage: acmeload --directory URL [--cafile FILE | --insecure]\n"
"                [--concurrency N] [--duration SECONDS] [--orders N]\n"
"                [--http01-address ADDR] [--http01-port PORT]\n"
"                [--domain-suffix NAME] [--poll-ms MS]\n"
"                [--retry-after-cap-ms MS] [--timeout-ms MS]\n"
"                [--flow-timeout-ms MS] [--error-backoff-ms MS]\n"
"                [--stall-ms MS] [--samples FILE]\n"
"                [--json FILE|-] [--quiet] [--log-level LEVEL]\n"
"\n"
"Runs --concurrency full ACME flows at a time against the server of\n"
"--directory: one account per worker, then newOrder (one random name\n"
"under --domain-suffix), authorization, http-01 answered by the built-in\n"
"responder on --http01-address:--http01-port, finalize with a fresh\n"
"P-256 CSR, polling, download. Polls wait for Retry-After, at most\n"
"--retry-after-cap-ms, or --poll-ms when there is none. When nothing\n"
"comes back for --stall-ms while flows wait, the server is stuck: the\n"
"run ends and orders/s cover the time until the last completed order.\n"
"--json writes the report as JSON, --samples every full-flow latency\n"
"(microseconds, one per line).\n"
"\n"
"defaults: --concurrency 32 --duration 10 --http01-address 127.0.0.1\n"
"  --http01-port 5002 --domain-suffix acmeload.test --poll-ms 10\n"
"  --retry-after-cap-ms 100 --timeout-ms 30000 --flow-timeout-ms 60000\n"
"  --error-backoff-ms 100 --stall-ms 5000\n";

/* Parses a whole decimal number within [min, max]; -1 otherwise. */
static int
main_long(const char *name, const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "acmeload: --%s: expected a number in "
		    "%ld..%ld, got \"%s\"\n", name, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Parses the command line into o; -1 after printing why. */
static int
main_options(int argc, char **argv, struct acmeload_options *o)
{
	static const struct option longopts[] = {
		{ "directory", required_argument, NULL, 'd' },
		{ "cafile", required_argument, NULL, 'C' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 't' },
		{ "orders", required_argument, NULL, 'n' },
		{ "http01-address", required_argument, NULL, 'a' },
		{ "http01-port", required_argument, NULL, 'p' },
		{ "domain-suffix", required_argument, NULL, 's' },
		{ "poll-ms", required_argument, NULL, 'P' },
		{ "retry-after-cap-ms", required_argument, NULL, 'R' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "flow-timeout-ms", required_argument, NULL, 'F' },
		{ "error-backoff-ms", required_argument, NULL, 'B' },
		{ "stall-ms", required_argument, NULL, 'S' },
		{ "json", required_argument, NULL, 'j' },
		{ "samples", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	enum common_log_level level;
	char *end;
	long v;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->directory = optarg;
			break;
		case 'C':
			o->cafile = optarg;
			break;
		case 'k':
			o->insecure = true;
			break;
		case 'c':
			if (main_long("concurrency", optarg, 1,
			    ACMELOAD_CONCURRENCY_MAX, &v) == -1)
				return -1;
			o->concurrency = (int)v;
			break;
		case 't':
			errno = 0;
			o->duration = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !isfinite(o->duration) || o->duration < 0 ||
			    o->duration > MAIN_DURATION_MAX) {
				fprintf(stderr, "acmeload: --duration: "
				    "expected seconds in 0..%.0f, got \"%s\"\n",
				    MAIN_DURATION_MAX, optarg);
				return -1;
			}
			break;
		case 'n':
			if (main_long("orders", optarg, 0, LONG_MAX, &v) == -1)
				return -1;
			o->orders = (uint64_t)v;
			break;
		case 'a':
			o->http01_address = optarg;
			break;
		case 'p':
			if (main_long("http01-port", optarg, 1, 65535, &v) ==
			    -1)
				return -1;
			o->http01_port = (int)v;
			break;
		case 's':
			o->domain_suffix = optarg;
			break;
		case 'P':
			if (main_long("poll-ms", optarg, 0, MAIN_MS_MAX,
			    &o->poll_ms) == -1)
				return -1;
			break;
		case 'R':
			if (main_long("retry-after-cap-ms", optarg, 0,
			    MAIN_MS_MAX, &o->retry_after_cap_ms) == -1)
				return -1;
			break;
		case 'T':
			if (main_long("timeout-ms", optarg, 1, MAIN_MS_MAX,
			    &o->timeout_ms) == -1)
				return -1;
			break;
		case 'F':
			if (main_long("flow-timeout-ms", optarg, 1,
			    MAIN_MS_MAX, &o->flow_timeout_ms) == -1)
				return -1;
			break;
		case 'B':
			if (main_long("error-backoff-ms", optarg, 0,
			    MAIN_MS_MAX, &o->error_backoff_ms) == -1)
				return -1;
			break;
		case 'S':
			if (main_long("stall-ms", optarg, 0, MAIN_MS_MAX,
			    &o->stall_ms) == -1)
				return -1;
			break;
		case 'j':
			o->json_path = optarg;
			break;
		case 'o':
			o->samples_path = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'l':
			if (common_log_level_parse(optarg, &level) == -1) {
				fprintf(stderr, "acmeload: --log-level: "
				    "debug, info, warn or error\n");
				return -1;
			}
			common_log_set_level(level);
			break;
		case 'h':
			fputs(main_usage, stdout);
			exit(0);
		default:
			fputs(main_usage, stderr);
			return -1;
		}
	}
	if (optind != argc || o->directory == NULL) {
		fputs(main_usage, stderr);
		return -1;
	}
	/* --orders alone runs until that many flows are done. */
	if (o->duration < 0)
		o->duration = o->orders > 0 ? 0 : MAIN_DURATION_DEFAULT;
	if (o->duration == 0 && o->orders == 0) {
		fprintf(stderr, "acmeload: give --duration or --orders\n");
		return -1;
	}
	if (o->insecure && o->cafile != NULL) {
		fprintf(stderr, "acmeload: --cafile and --insecure exclude "
		    "each other\n");
		return -1;
	}
	if (strlen(o->domain_suffix) == 0 ||
	    strlen(o->domain_suffix) > ACMELOAD_NAME_MAX / 2) {
		fprintf(stderr, "acmeload: --domain-suffix: 1..%d bytes\n",
		    ACMELOAD_NAME_MAX / 2);
		return -1;
	}
	return 0;
}

static size_t
main_dir_write(char *p, size_t size, size_t n, void *arg)
{
	return common_buf_add(arg, p, size * n) == -1 ? 0 : size * n;
}

/* Copies the string member key of the directory into out; -1 if it is
 * missing or too long. */
static int
main_dir_url(const json_t *dir, const char *key, char *out, size_t outlen)
{
	const char *v = json_string_value(json_object_get(dir, key));

	if (v == NULL || strlen(v) >= outlen) {
		log_err("acmeload: the directory has no usable \"%s\"", key);
		return -1;
	}
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* GETs the directory and records the URLs the flows need. 0 or -1. */
static int
main_directory(struct acmeload *run)
{
	const struct acmeload_options *o = run->opt;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct common_buf body;
	json_error_t jerr;
	json_t *dir = NULL;
	CURL *e = NULL;
	CURLcode rc;
	long status = 0;
	int ret = -1;

	common_buf_init(&body, ACMELOAD_BODY_MAX);
	if ((e = curl_easy_init()) == NULL)
		goto out;
	curl_easy_setopt(e, CURLOPT_URL, o->directory);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, main_dir_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)MAIN_DIR_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	if (o->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (o->cafile != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, o->cafile);
	if ((rc = curl_easy_perform(e)) != CURLE_OK) {
		log_err("acmeload: GET %s: %s: %s", o->directory,
		    curl_easy_strerror(rc), errbuf);
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200 || (dir = json_loadb((const char *)body.data,
	    body.len, 0, &jerr)) == NULL || !json_is_object(dir)) {
		log_err("acmeload: GET %s: HTTP %ld, not a JSON directory",
		    o->directory, status);
		goto out;
	}
	if (main_dir_url(dir, "newNonce", run->new_nonce,
	    sizeof(run->new_nonce)) == -1 ||
	    main_dir_url(dir, "newAccount", run->new_account,
	    sizeof(run->new_account)) == -1 ||
	    main_dir_url(dir, "newOrder", run->new_order,
	    sizeof(run->new_order)) == -1)
		goto out;
	ret = 0;
out:
	json_decref(dir);
	common_buf_free(&body);
	curl_easy_cleanup(e);
	return ret;
}

/* End of the flow phase: no new flows; the ones in flight get
 * --flow-timeout-ms to finish. */
static void
main_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct acmeload *run = arg;
	struct timeval tv;

	(void)fd;
	(void)what;
	tv.tv_sec = run->opt->flow_timeout_ms / 1000;
	tv.tv_usec = (run->opt->flow_timeout_ms % 1000) * 1000;
	evtimer_add(run->hard_stop, &tv);
	acmeload_flow_stop(run);
}

static void
main_hard_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	acmeload_flow_abort(arg, "unfinished when the drain time ran out");
}

/* Every MAIN_STALL_TICK_MS: when flows are waiting on the server and
 * nothing at all came back for --stall-ms, the server is stuck (Pebble
 * 2.4 deadlocks under concurrent newOrders, for one): the run ends and
 * reports what the server did until then. */
static void
main_stall_check(evutil_socket_t fd, short what, void *arg)
{
	struct acmeload *run = arg;
	uint64_t now = acmeload_now_us();

	(void)fd;
	(void)what;
	if (!run->running || run->stalled || run->flows_active == 0 ||
	    now - run->last_progress_us < (uint64_t)run->opt->stall_ms * 1000u)
		return;
	log_err("acmeload: the server answered nothing for %ld ms with %d "
	    "flows waiting: stalled; ending the run", run->opt->stall_ms,
	    run->flows_active);
	run->stalled = true;
	acmeload_flow_abort(run, "server stalled");
}

/* Writes the JSON report to path ("-": stdout). 0 or -1. */
static int
main_json(struct acmeload *run, const char *path)
{
	json_t *j;
	char *text = NULL;
	int ret = -1;

	if ((j = acmeload_report_json(run)) == NULL ||
	    (text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
		log_err("acmeload: cannot build the JSON report");
		goto out;
	}
	if (strcmp(path, "-") == 0) {
		puts(text);
		ret = fflush(stdout) == 0 ? 0 : -1;
	} else if ((ret = common_file_write(path, text, strlen(text),
	    0644)) == -1)
		log_err("acmeload: cannot write %s: %s", path,
		    strerror(errno));
out:
	free(text);
	json_decref(j);
	return ret;
}

int
main(int argc, char **argv)
{
	struct acmeload_options o = {
		.concurrency = 32,
		.duration = -1,		/* unset */
		.http01_address = "127.0.0.1",
		.http01_port = 5002,
		.domain_suffix = "acmeload.test",
		.poll_ms = 10,
		.retry_after_cap_ms = 100,
		.timeout_ms = 30000,
		.flow_timeout_ms = 60000,
		.error_backoff_ms = 100,
		.stall_ms = 5000,
	};
	struct timeval tick = { 0, MAIN_STALL_TICK_MS * 1000 };
	struct acmeload run;
	struct curl_slist *h;

	memset(&run, 0, sizeof(run));
	run.exit_code = 1;
	if (main_options(argc, argv, &o) == -1)
		return 2;
	run.opt = &o;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("acmeload: curl_global_init failed");
		return 1;
	}
	if (RAND_status() != 1) {
		log_err("acmeload: the random generator is not seeded");
		goto out;
	}
	if (main_directory(&run) == -1)
		goto out;
	if ((run.base = event_base_new()) == NULL ||
	    (run.multi = curl_multi_init()) == NULL ||
	    (run.deadline = evtimer_new(run.base, main_deadline, &run)) ==
	    NULL ||
	    (run.hard_stop = evtimer_new(run.base, main_hard_stop, &run)) ==
	    NULL ||
	    (run.stall_check = event_new(run.base, -1, EV_PERSIST,
	    main_stall_check, &run)) == NULL ||
	    acmeload_loop_init(&run) == -1) {
		log_err("acmeload: cannot set up the event loop");
		goto out;
	}
	/* No "Expect: 100-continue" round trip before a CSR-sized body. */
	if ((h = curl_slist_append(NULL, "Content-Type: "
	    "application/jose+json")) == NULL ||
	    (run.jose_headers = curl_slist_append(h, "Expect:")) == NULL ||
	    (h = curl_slist_append(NULL, "Content-Type: "
	    "application/jose+json")) == NULL ||
	    (h = curl_slist_append(h, "Expect:")) == NULL ||
	    (run.pem_headers = curl_slist_append(h, "Accept: "
	    "application/pem-certificate-chain")) == NULL) {
		log_err("acmeload: out of memory");
		goto out;
	}
	if ((run.responder = acmeload_responder_new(&run, o.http01_address,
	    o.http01_port)) == NULL ||
	    acmeload_workers_new(&run) == -1)
		goto out;
	run.exit_code = 0;
	if (o.stall_ms > 0)
		evtimer_add(run.stall_check, &tick);
	acmeload_workers_start(&run);
	if (event_base_dispatch(run.base) == -1) {
		log_err("acmeload: the event loop failed");
		run.exit_code = 1;
	}
	if (run.t1_us == 0) {
		run.t1_us = acmeload_now_us();
		getrusage(RUSAGE_SELF, &run.ru1);
	}
	if (!o.quiet)
		acmeload_report_text(&run);
	if (o.json_path != NULL && main_json(&run, o.json_path) == -1)
		run.exit_code = 1;
	if (o.samples_path != NULL &&
	    acmeload_samples_write(&run, o.samples_path) == -1)
		run.exit_code = 1;
out:
	acmeload_workers_free(&run);
	acmeload_responder_free(run.responder);
	acmeload_loop_free(&run);
	if (run.deadline != NULL)
		event_free(run.deadline);
	if (run.hard_stop != NULL)
		event_free(run.hard_stop);
	if (run.stall_check != NULL)
		event_free(run.stall_check);
	if (run.multi != NULL)
		curl_multi_cleanup(run.multi);
	if (run.base != NULL)
		event_base_free(run.base);
	curl_slist_free_all(run.jose_headers);
	curl_slist_free_all(run.pem_headers);
	acmeload_stats_free(&run.stats);
	curl_global_cleanup();
	return run.exit_code;
}
