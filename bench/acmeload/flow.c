/*
 * bench/acmeload/flow.c — the workers. Each one is a state machine on the
 * run's event loop with one curl easy handle (its requests reuse the
 * multi handle's keep-alive connections):
 *
 *   newNonce (when it holds none) -> newAccount            once
 *   newOrder -> authz -> challenge -> poll authz -> finalize
 *     -> poll order (when finalize did not answer valid) -> download
 *                                                          in a loop
 *
 * Every POST is a fresh ES256 JWS carrying the nonce of the previous
 * answer. Polls honour Retry-After up to --retry-after-cap-ms and wait
 * --poll-ms when there is none. A failed step abandons the flow, counts
 * one error of kind "step: reason", and the worker starts a new flow
 * after --error-backoff-ms.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bench/acmeload/acmeload.h"

#define FLOW_ACME_ERR		"urn:ietf:params:acme:error:"
#define FLOW_WHAT_MAX		128	/* one error reason */
#define FLOW_PAYLOAD_MAX	2048	/* a JSON payload we send */

enum flow_state {
	FLOW_IDLE,		/* no request due */
	FLOW_ACCOUNT,		/* newAccount */
	FLOW_NEWORDER,
	FLOW_AUTHZ,		/* first look at the authorization */
	FLOW_CHALLENGE,		/* POST {} to the challenge */
	FLOW_AUTHZ_POLL,	/* waiting for the validation */
	FLOW_FINALIZE,
	FLOW_ORDER_POLL,	/* waiting for the issuance */
	FLOW_DOWNLOAD,
	FLOW__MAX
};

/* The step a request of each state is measured (and blamed) under. */
static const enum acmeload_step flow_step[FLOW__MAX] = {
	[FLOW_IDLE] = ACMELOAD_STEP_FLOW,
	[FLOW_ACCOUNT] = ACMELOAD_STEP_ACCOUNT,
	[FLOW_NEWORDER] = ACMELOAD_STEP_NEWORDER,
	[FLOW_AUTHZ] = ACMELOAD_STEP_AUTHZ,
	[FLOW_CHALLENGE] = ACMELOAD_STEP_CHALLENGE,
	[FLOW_AUTHZ_POLL] = ACMELOAD_STEP_VALIDATION,
	[FLOW_FINALIZE] = ACMELOAD_STEP_FINALIZE,
	[FLOW_ORDER_POLL] = ACMELOAD_STEP_ISSUANCE,
	[FLOW_DOWNLOAD] = ACMELOAD_STEP_DOWNLOAD,
};

struct acmeload_worker {
	struct acmeload	*run;
	int		 id;
	CURL		*easy;
	struct event	*timer;		/* poll waits, error backoff */
	char		 errbuf[CURL_ERROR_SIZE];

	/* the account */
	EVP_PKEY	*key;
	EVP_PKEY_CTX	*signer;	/* key's, reused */
	json_t		*jwk;
	uint64_t	 certs;		/* certificates checked */
	char		 thumb[ACMELOAD_THUMB_MAX];
	char		 kid[ACMELOAD_URL_MAX];	/* "" until registered */
	char		 nonce[ACMELOAD_NONCE_MAX]; /* "" when used up */
	int		 account_tries;

	/* the request due or in flight */
	enum flow_state	 state;
	bool		 in_flight;
	bool		 nonce_fetch;	/* the transfer is HEAD newNonce */
	bool		 nonce_retried;	/* resent once after badNonce */
	char		 url[ACMELOAD_URL_MAX];
	char		*payload;	/* NULL: POST-as-GET */
	char		*body;		/* the JWS sent */
	uint64_t	 sent_us;

	/* its answer */
	struct common_buf resp;
	char		 r_nonce[ACMELOAD_NONCE_MAX];
	char		 r_location[ACMELOAD_URL_MAX];
	char		 r_ctype[ACMELOAD_CTYPE_MAX];
	long		 r_retry_after;	/* seconds, -1: none */

	/* the flow */
	bool		 active;
	uint64_t	 flow_us;	/* newOrder sent */
	uint64_t	 wait_us;	/* validation or issuance wait began */
	uint64_t	 account_us;	/* account registration began */
	char		 name[ACMELOAD_NAME_MAX];
	char		 order_url[ACMELOAD_URL_MAX];
	char		 authz_url[ACMELOAD_URL_MAX];
	char		 finalize_url[ACMELOAD_URL_MAX];
	char		 token[ACMELOAD_TOKEN_MAX]; /* "" when not published */
	EVP_PKEY	*cert_key;	/* the CSR's key */
};

static void flow_send(struct acmeload_worker *w);
static void flow_next(struct acmeload_worker *w);

/* Copies src into a fixed buffer; -1 (dst emptied) when it does not fit. */
static int
flow_copy(char *dst, size_t dstlen, const char *src)
{
	size_t n = src != NULL ? strlen(src) : 0;

	if (src == NULL || n >= dstlen) {
		dst[0] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

/* ---- curl callbacks ------------------------------------------------------ */

static size_t
flow_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct acmeload_worker *w = arg;

	/* A short count makes curl fail the transfer (body too large). */
	if (common_buf_add(&w->resp, p, size * n) == -1)
		return 0;
	return size * n;
}

/* Copies a header value, without surrounding blanks, into out. */
static void
flow_header_value(const char *v, size_t n, char *out, size_t outlen)
{
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)v[n - 1]))
		n--;
	if (n >= outlen) {
		out[0] = '\0';
		return;
	}
	memcpy(out, v, n);
	out[n] = '\0';
}

/* Retry-After as seconds from now: delay-seconds or an HTTP-date
 * (RFC 9110 §10.2.3); -1 when unparsable. */
static long
flow_retry_after(const char *v)
{
	char *end;
	long s;
	time_t t;

	if (isdigit((unsigned char)*v)) {
		s = strtol(v, &end, 10);
		return *end == '\0' && s >= 0 ? s : -1;
	}
	if ((t = curl_getdate(v, NULL)) == -1)
		return -1;
	return t > time(NULL) ? (long)(t - time(NULL)) : 0;
}

/* Captures the headers the flow needs; a status line starts over (an
 * interim 1xx answer may come first). */
static size_t
flow_header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct acmeload_worker *w = arg;
	size_t len = size * n, nl;
	const char *colon;
	char ra[32];

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		w->r_nonce[0] = w->r_location[0] = w->r_ctype[0] = '\0';
		w->r_retry_after = -1;
		return len;
	}
	if ((colon = memchr(p, ':', len)) == NULL)
		return len;
	nl = (size_t)(colon - p);
	colon++;
	if (nl == strlen("Replay-Nonce") &&
	    strncasecmp(p, "Replay-Nonce", nl) == 0)
		flow_header_value(colon, len - nl - 1, w->r_nonce,
		    sizeof(w->r_nonce));
	else if (nl == strlen("Location") &&
	    strncasecmp(p, "Location", nl) == 0)
		flow_header_value(colon, len - nl - 1, w->r_location,
		    sizeof(w->r_location));
	else if (nl == strlen("Content-Type") &&
	    strncasecmp(p, "Content-Type", nl) == 0)
		flow_header_value(colon, len - nl - 1, w->r_ctype,
		    sizeof(w->r_ctype));
	else if (nl == strlen("Retry-After") &&
	    strncasecmp(p, "Retry-After", nl) == 0) {
		flow_header_value(colon, len - nl - 1, ra, sizeof(ra));
		w->r_retry_after = flow_retry_after(ra);
	}
	return len;
}

/* ---- requests ------------------------------------------------------------ */

/* Options every request of this worker shares. 0 or -1. */
static int
flow_easy_setup(struct acmeload_worker *w)
{
	const struct acmeload_options *o = w->run->opt;
	CURL *e = w->easy;

	if (curl_easy_setopt(e, CURLOPT_PRIVATE, w) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, w->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, flow_write_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, w) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, flow_header_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, w) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_1_1) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "acmeload/1") != CURLE_OK)
		return -1;
	if (o->insecure)
		return curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) ==
		    CURLE_OK && curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST,
		    0L) == CURLE_OK ? 0 : -1;
	if (o->cafile != NULL)
		return curl_easy_setopt(e, CURLOPT_CAINFO, o->cafile) ==
		    CURLE_OK ? 0 : -1;
	return 0;
}

/* Clears what the previous answer left. */
static void
flow_answer_reset(struct acmeload_worker *w)
{
	common_buf_free(&w->resp);
	common_buf_init(&w->resp, ACMELOAD_BODY_MAX);
	w->r_nonce[0] = w->r_location[0] = w->r_ctype[0] = '\0';
	w->r_retry_after = -1;
	w->errbuf[0] = '\0';
}

/* Starts the transfer prepared on w->easy; -1 when curl refuses it. */
static int
flow_start(struct acmeload_worker *w)
{
	flow_answer_reset(w);
	w->in_flight = true;
	w->sent_us = acmeload_now_us();
	w->run->stats.requests++;
	if (acmeload_loop_add(w->run, w->easy) == -1) {
		w->in_flight = false;
		return -1;
	}
	return 0;
}

/* ---- flow bookkeeping ---------------------------------------------------- */

/* Ends the flow phase when the last flow is done. */
static void
flow_phase_check(struct acmeload *run)
{
	if (!run->running || !run->stopping || run->flows_active > 0)
		return;
	/* A stalled server's rate is its rate while it still served. */
	run->t1_us = run->stalled && run->last_order_us > run->t0_us ?
	    run->last_order_us : acmeload_now_us();
	getrusage(RUSAGE_SELF, &run->ru1);
	event_base_loopbreak(run->base);
}

/* Drops what the current flow holds (token, CSR key, payload). */
static void
flow_clear(struct acmeload_worker *w)
{
	if (w->token[0] != '\0')
		acmeload_token_del(w->run->responder, w->token);
	w->token[0] = '\0';
	EVP_PKEY_free(w->cert_key);
	w->cert_key = NULL;
	free(w->payload);
	w->payload = NULL;
	free(w->body);
	w->body = NULL;
}

/* The flow (or the registration) failed at the current step: counts the
 * error (logging the first of each kind with its detail) and schedules
 * what comes next after the error backoff. */
static void
flow_fail(struct acmeload_worker *w, const char *what, const char *detail)
{
	struct acmeload *run = w->run;
	enum acmeload_step step = flow_step[w->state];
	struct timeval tv;

	if (acmeload_error(&run->stats, step, what) == 1)
		log_warn("acmeload: worker %d: %s%s%s: %s%s%s", w->id,
		    acmeload_step_names[step],
		    w->state != FLOW_ACCOUNT ? " of " : "",
		    w->state != FLOW_ACCOUNT ? w->name : "", what,
		    detail != NULL && *detail != '\0' ? ": " : "",
		    detail != NULL ? detail : "");
	flow_clear(w);
	if (w->state == FLOW_ACCOUNT) {
		if (++w->account_tries >= ACMELOAD_ACCOUNT_TRIES) {
			/* Given up: the others must not wait for it. */
			w->state = FLOW_IDLE;
			run->pending_accounts--;
			flow_next(w);
			return;
		}
		/* the timer registers again */
	} else {
		run->stats.orders_failed++;
		w->active = false;
		run->flows_active--;
		w->state = FLOW_IDLE;
	}
	tv.tv_sec = run->opt->error_backoff_ms / 1000;
	tv.tv_usec = (run->opt->error_backoff_ms % 1000) * 1000;
	evtimer_add(w->timer, &tv);
	flow_phase_check(run);
}

/* POSTs payload (NULL: POST-as-GET) to url as the request of state. */
static void
flow_post(struct acmeload_worker *w, enum flow_state state, const char *url,
    const char *payload)
{
	w->state = state;
	w->nonce_retried = false;
	free(w->payload);
	w->payload = NULL;
	if (flow_copy(w->url, sizeof(w->url), url) == -1) {
		flow_fail(w, "URL too long", url);
		return;
	}
	if (payload != NULL && (w->payload = strdup(payload)) == NULL) {
		flow_fail(w, "out of memory", NULL);
		return;
	}
	flow_send(w);
}

/* Sends the POST of w->state, fetching a nonce first when w holds none. */
static void
flow_send(struct acmeload_worker *w)
{
	struct acmeload *run = w->run;
	CURL *e = w->easy;
	bool ok;

	if (w->nonce[0] == '\0') {
		w->nonce_fetch = true;
		ok = curl_easy_setopt(e, CURLOPT_URL, run->new_nonce) ==
		    CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
	} else {
		w->nonce_fetch = false;
		free(w->body);
		w->body = acmeload_jws(w->signer, w->state == FLOW_ACCOUNT ?
		    w->jwk : NULL, w->kid, w->nonce, w->url, w->payload);
		if (w->body == NULL) {
			flow_fail(w, "cannot sign the request", NULL);
			return;
		}
		w->nonce[0] = '\0';	/* used up */
		ok = curl_easy_setopt(e, CURLOPT_URL, w->url) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_NOBODY, 0L) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_HTTPHEADER,
		    w->state == FLOW_DOWNLOAD ? run->pem_headers :
		    run->jose_headers) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(w->body)) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS, w->body) ==
		    CURLE_OK;
	}
	if (!ok || flow_start(w) == -1)
		flow_fail(w, "cannot start the request", NULL);
}

/* ---- answers ------------------------------------------------------------- */

/* Short name of an ACME problem type (the URN prefix dropped). */
static const char *
flow_problem_name(const char *type)
{
	size_t n = strlen(FLOW_ACME_ERR);

	return strncmp(type, FLOW_ACME_ERR, n) == 0 ? type + n : type;
}

/* Checks the transfer and the status (one of ok1, ok2; 0: unused) and
 * parses the JSON body into *out when out is not NULL. On badNonce the
 * request is signed again with the answer's nonce and resent once (as
 * real clients do; the error is still counted). 0: go on; -1: the flow
 * failed or the request was resent, nothing more to do. */
static int
flow_answer(struct acmeload_worker *w, CURLcode result, long ok1, long ok2,
    json_t **out)
{
	char what[FLOW_WHAT_MAX];
	const char *type = NULL, *detail = NULL;
	json_error_t jerr;
	json_t *j = NULL;
	long status = 0;

	if (out != NULL)
		*out = NULL;
	if (result != CURLE_OK) {
		snprintf(what, sizeof(what), "curl: %s",
		    curl_easy_strerror(result));
		flow_fail(w, what, w->errbuf);
		return -1;
	}
	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
	if (w->resp.len > 0 && (out != NULL || (status != ok1 &&
	    status != ok2)))
		j = json_loadb((const char *)w->resp.data, w->resp.len, 0,
		    &jerr);
	if (status != ok1 && (ok2 == 0 || status != ok2)) {
		if (j != NULL) {
			type = json_string_value(json_object_get(j, "type"));
			detail = json_string_value(json_object_get(j,
			    "detail"));
		}
		if (type != NULL && strcmp(flow_problem_name(type),
		    "badNonce") == 0 && !w->nonce_retried) {
			acmeload_error(&w->run->stats, flow_step[w->state],
			    "badNonce (resent)");
			w->nonce_retried = true;
			json_decref(j);
			flow_send(w);
			return -1;
		}
		snprintf(what, sizeof(what), "HTTP %ld %s", status,
		    type != NULL ? flow_problem_name(type) :
		    "(no problem document)");
		flow_fail(w, what, detail);
		json_decref(j);
		return -1;
	}
	if (out != NULL) {
		if (!json_is_object(j)) {
			flow_fail(w, "answer is not a JSON object", NULL);
			json_decref(j);
			return -1;
		}
		*out = j;
	} else
		json_decref(j);
	return 0;
}

/* Records the Retry-After of the last answer on step and returns the
 * wait before the next poll, in milliseconds. */
static long
flow_wait_ms(struct acmeload_worker *w, enum acmeload_step step)
{
	const struct acmeload_options *o = w->run->opt;
	struct acmeload_samples *sm = &w->run->stats.step[step];
	long ms;

	if (w->r_retry_after < 0)
		return o->poll_ms;
	sm->retry_after_seen++;
	if (w->r_retry_after > sm->retry_after_max)
		sm->retry_after_max = w->r_retry_after;
	ms = w->r_retry_after > o->retry_after_cap_ms / 1000 ?
	    o->retry_after_cap_ms : w->r_retry_after * 1000;
	return ms < o->retry_after_cap_ms ? ms : o->retry_after_cap_ms;
}

/* Polls url (POST-as-GET) as state after the wait the last answer asks
 * for; fails the flow when its time is up. */
static void
flow_poll(struct acmeload_worker *w, enum flow_state state, const char *url)
{
	const struct acmeload_options *o = w->run->opt;
	enum acmeload_step step = flow_step[state];
	uint64_t now = acmeload_now_us();
	struct timeval tv;
	long ms;

	w->state = state;
	ms = flow_wait_ms(w, step);
	if (now + (uint64_t)ms * 1000u > w->flow_us +
	    (uint64_t)o->flow_timeout_ms * 1000u) {
		flow_fail(w, "flow timeout while polling", url);
		return;
	}
	if (flow_copy(w->url, sizeof(w->url), url) == -1) {
		flow_fail(w, "URL too long", url);
		return;
	}
	free(w->payload);
	w->payload = NULL;
	w->run->stats.step[step].polls++;
	w->run->stats.step[step].waited_us += (uint64_t)ms * 1000u;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(w->timer, &tv);
}

/* The status member of an ACME object ("" when absent). */
static const char *
flow_status(const json_t *j)
{
	const char *s = json_string_value(json_object_get(j, "status"));

	return s != NULL ? s : "";
}

/* The error of an invalid authorization's failed challenge (borrowed
 * from authz), NULL when none says why. */
static const json_t *
flow_chall_error(const json_t *authz)
{
	const json_t *ch, *err;
	size_t i;

	json_array_foreach(json_object_get(authz, "challenges"), i, ch) {
		err = json_object_get(ch, "error");
		if (json_string_value(json_object_get(err, "type")) != NULL)
			return err;
	}
	return NULL;
}

/* Fails the flow with the problem of an invalid challenge or
 * authorization (err may be NULL). */
static void
flow_fail_problem(struct acmeload_worker *w, const json_t *err)
{
	const char *t = json_string_value(json_object_get(err, "type"));

	flow_fail(w, t != NULL ? flow_problem_name(t) : "invalid, no error "
	    "given", json_string_value(json_object_get(err, "detail")));
}

/* The flow reached the certificate: counts it, starts the next one. */
static void
flow_complete(struct acmeload_worker *w)
{
	struct acmeload *run = w->run;

	run->last_order_us = acmeload_now_us();
	acmeload_sample(&run->stats, ACMELOAD_STEP_FLOW,
	    run->last_order_us - w->flow_us);
	run->stats.orders_ok++;
	flow_clear(w);
	w->active = false;
	run->flows_active--;
	w->state = FLOW_IDLE;
	flow_next(w);
}

/* Sends finalize with a CSR for a fresh key. */
static void
flow_finalize(struct acmeload_worker *w)
{
	char payload[FLOW_PAYLOAD_MAX], *csr = NULL;

	w->state = FLOW_FINALIZE;
	EVP_PKEY_free(w->cert_key);
	if ((w->cert_key = acmeload_key_new()) == NULL ||
	    (csr = acmeload_csr(w->cert_key, w->name)) == NULL) {
		flow_fail(w, "cannot build the CSR", NULL);
		goto out;
	}
	if (snprintf(payload, sizeof(payload), "{\"csr\":\"%s\"}", csr) >=
	    (int)sizeof(payload)) {
		flow_fail(w, "CSR too long", NULL);
		goto out;
	}
	flow_post(w, FLOW_FINALIZE, w->finalize_url, payload);
out:
	free(csr);
}

/* The order is valid: downloads its certificate. */
static void
flow_download(struct acmeload_worker *w, const json_t *order)
{
	const char *cert = json_string_value(json_object_get(order,
	    "certificate"));

	if (cert == NULL) {
		flow_fail(w, "valid order without certificate URL", NULL);
		return;
	}
	flow_post(w, FLOW_DOWNLOAD, cert, NULL);
}

/* newAccount answered: 201 (or 200 for a known key) with the account URL
 * in Location, the kid of every later request. */
static void
flow_on_account(struct acmeload_worker *w, CURLcode result)
{
	struct acmeload *run = w->run;

	if (flow_answer(w, result, 201, 200, NULL) == -1)
		return;
	if (flow_copy(w->kid, sizeof(w->kid), w->r_location) == -1) {
		flow_fail(w, "no Location for the account", NULL);
		return;
	}
	acmeload_sample(&run->stats, ACMELOAD_STEP_ACCOUNT,
	    acmeload_now_us() - w->account_us);
	run->stats.accounts++;
	w->state = FLOW_IDLE;
	run->pending_accounts--;
	flow_next(w);
}

/* newOrder answered: 201, one authorization and a finalize URL; a
 * pending order goes to its authorization, a ready one (reused
 * authorization) straight to finalize. */
static void
flow_on_neworder(struct acmeload_worker *w, CURLcode result)
{
	const char *s, *authz, *fin;
	json_t *o;

	if (flow_answer(w, result, 201, 0, &o) == -1)
		return;
	acmeload_sample(&w->run->stats, ACMELOAD_STEP_NEWORDER,
	    acmeload_now_us() - w->sent_us);
	s = flow_status(o);
	authz = json_string_value(json_array_get(json_object_get(o,
	    "authorizations"), 0));
	fin = json_string_value(json_object_get(o, "finalize"));
	if (json_array_size(json_object_get(o, "authorizations")) != 1 ||
	    authz == NULL || fin == NULL ||
	    flow_copy(w->order_url, sizeof(w->order_url), w->r_location) ==
	    -1 ||
	    flow_copy(w->authz_url, sizeof(w->authz_url), authz) == -1 ||
	    flow_copy(w->finalize_url, sizeof(w->finalize_url), fin) == -1)
		flow_fail(w, "order without Location, one authorization or "
		    "finalize URL", NULL);
	else if (strcmp(s, "pending") == 0)
		flow_post(w, FLOW_AUTHZ, w->authz_url, NULL);
	else if (strcmp(s, "ready") == 0)	/* authorization reused */
		flow_finalize(w);
	else
		flow_fail(w, "new order neither pending nor ready", s);
	json_decref(o);
}

/* The new authorization: publishes the http-01 key authorization
 * (token "." thumbprint) on the responder, then POSTs {} to the
 * challenge. */
static void
flow_on_authz(struct acmeload_worker *w, CURLcode result)
{
	char keyauth[ACMELOAD_KEYAUTH_MAX];
	const char *s, *type, *token = NULL, *url = NULL;
	const json_t *ch;
	json_t *a;
	size_t i;

	if (flow_answer(w, result, 200, 0, &a) == -1)
		return;
	acmeload_sample(&w->run->stats, ACMELOAD_STEP_AUTHZ,
	    acmeload_now_us() - w->sent_us);
	s = flow_status(a);
	if (strcmp(s, "valid") == 0) {
		flow_finalize(w);
		goto out;
	}
	if (strcmp(s, "pending") != 0) {
		flow_fail(w, "new authorization not pending", s);
		goto out;
	}
	json_array_foreach(json_object_get(a, "challenges"), i, ch) {
		type = json_string_value(json_object_get(ch, "type"));
		if (type != NULL && strcmp(type, "http-01") == 0) {
			token = json_string_value(json_object_get(ch,
			    "token"));
			url = json_string_value(json_object_get(ch, "url"));
			break;
		}
	}
	if (token == NULL || url == NULL) {
		flow_fail(w, "no http-01 challenge with token and url", NULL);
		goto out;
	}
	if (snprintf(keyauth, sizeof(keyauth), "%s.%s", token, w->thumb) >=
	    (int)sizeof(keyauth) ||
	    flow_copy(w->token, sizeof(w->token), token) == -1 ||
	    acmeload_token_add(w->run->responder, w->token, keyauth) == -1) {
		w->token[0] = '\0';
		flow_fail(w, "token too long", token);
		goto out;
	}
	flow_post(w, FLOW_CHALLENGE, url, "{}");
out:
	json_decref(a);
}

/* The challenge answer: valid goes on to finalize, pending/processing
 * starts polling the authorization, invalid ends the flow. */
static void
flow_on_challenge(struct acmeload_worker *w, CURLcode result)
{
	const char *s;
	json_t *c;

	if (flow_answer(w, result, 200, 0, &c) == -1)
		return;
	w->wait_us = acmeload_now_us();
	acmeload_sample(&w->run->stats, ACMELOAD_STEP_CHALLENGE,
	    w->wait_us - w->sent_us);
	s = flow_status(c);
	if (strcmp(s, "valid") == 0) {
		acmeload_sample(&w->run->stats, ACMELOAD_STEP_VALIDATION, 0);
		flow_finalize(w);
	} else if (strcmp(s, "invalid") == 0) {
		w->state = FLOW_AUTHZ_POLL;
		flow_fail_problem(w, json_object_get(c, "error"));
	} else if (strcmp(s, "pending") == 0 || strcmp(s, "processing") == 0)
		flow_poll(w, FLOW_AUTHZ_POLL, w->authz_url);
	else
		flow_fail(w, "unexpected challenge status", s);
	json_decref(c);
}

/* One poll of the authorization while the server validates. */
static void
flow_on_authz_poll(struct acmeload_worker *w, CURLcode result)
{
	const char *s;
	json_t *a;

	if (flow_answer(w, result, 200, 0, &a) == -1)
		return;
	s = flow_status(a);
	if (strcmp(s, "valid") == 0) {
		acmeload_sample(&w->run->stats, ACMELOAD_STEP_VALIDATION,
		    acmeload_now_us() - w->wait_us);
		acmeload_token_del(w->run->responder, w->token);
		w->token[0] = '\0';
		flow_finalize(w);
	} else if (strcmp(s, "pending") == 0)
		flow_poll(w, FLOW_AUTHZ_POLL, w->authz_url);
	else if (strcmp(s, "invalid") == 0)
		flow_fail_problem(w, flow_chall_error(a));
	else
		flow_fail(w, "unexpected authorization status", s);
	json_decref(a);
}

/* finalize and the order polls after it. */
static void
flow_on_order(struct acmeload_worker *w, CURLcode result)
{
	const char *s;
	json_t *o;

	if (flow_answer(w, result, 200, 0, &o) == -1)
		return;
	if (w->state == FLOW_FINALIZE) {
		w->wait_us = acmeload_now_us();
		acmeload_sample(&w->run->stats, ACMELOAD_STEP_FINALIZE,
		    w->wait_us - w->sent_us);
	}
	s = flow_status(o);
	if (strcmp(s, "valid") == 0) {
		acmeload_sample(&w->run->stats, ACMELOAD_STEP_ISSUANCE,
		    acmeload_now_us() - w->wait_us);
		flow_download(w, o);
	} else if (strcmp(s, "processing") == 0)
		flow_poll(w, FLOW_ORDER_POLL, w->order_url);
	else {
		/* "ready" after finalize would leave a real client waiting
		 * for nothing; "invalid" is a refused issuance. */
		flow_fail(w, *s != '\0' ? s : "order without status",
		    json_string_value(json_object_get(json_object_get(o,
		    "error"), "detail")));
	}
	json_decref(o);
}

/* The certificate chain: checked against the CSR's key and the name. */
static void
flow_on_download(struct acmeload_worker *w, CURLcode result)
{
	const char *why;

	if (flow_answer(w, result, 200, 0, NULL) == -1)
		return;
	acmeload_sample(&w->run->stats, ACMELOAD_STEP_DOWNLOAD,
	    acmeload_now_us() - w->sent_us);
	if (!acmeload_cert_check((const char *)w->resp.data, w->resp.len,
	    w->cert_key, w->name, w->certs++ % ACMELOAD_FULL_CHECK_EVERY == 0,
	    &why)) {
		flow_fail(w, why, NULL);
		return;
	}
	flow_complete(w);
}

void
acmeload_flow_done(struct acmeload *run, CURL *easy, CURLcode result)
{
	struct acmeload_worker *w;
	char what[FLOW_WHAT_MAX], *priv = NULL;

	if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
	    priv == NULL)
		return;
	w = (struct acmeload_worker *)(void *)priv;
	w->in_flight = false;
	run->last_progress_us = acmeload_now_us();
	if (w->r_nonce[0] != '\0')
		memcpy(w->nonce, w->r_nonce, sizeof(w->nonce));
	if (w->nonce_fetch) {
		w->nonce_fetch = false;
		if (result != CURLE_OK || w->nonce[0] == '\0') {
			snprintf(what, sizeof(what), "newNonce: %s",
			    result != CURLE_OK ? curl_easy_strerror(result) :
			    "no Replay-Nonce");
			flow_fail(w, what, w->errbuf);
		} else
			flow_send(w);
		return;
	}
	switch (w->state) {
	case FLOW_ACCOUNT:
		flow_on_account(w, result);
		break;
	case FLOW_NEWORDER:
		flow_on_neworder(w, result);
		break;
	case FLOW_AUTHZ:
		flow_on_authz(w, result);
		break;
	case FLOW_CHALLENGE:
		flow_on_challenge(w, result);
		break;
	case FLOW_AUTHZ_POLL:
		flow_on_authz_poll(w, result);
		break;
	case FLOW_FINALIZE:
	case FLOW_ORDER_POLL:
		flow_on_order(w, result);
		break;
	case FLOW_DOWNLOAD:
		flow_on_download(w, result);
		break;
	default:
		break;
	}
}

/* ---- scheduling ---------------------------------------------------------- */

/* Starts the flow phase once every worker is registered (or given up). */
static void
flow_phase_start(struct acmeload *run)
{
	struct timeval tv;
	int i, with_account = 0;

	if (run->running || run->pending_accounts > 0)
		return;
	run->running = true;
	run->t0_us = run->last_progress_us = acmeload_now_us();
	getrusage(RUSAGE_SELF, &run->ru0);
	for (i = 0; i < run->nworkers; i++)
		if (run->workers[i].kid[0] != '\0')
			with_account++;
	if (with_account == 0) {
		log_err("acmeload: no worker could register an account");
		run->exit_code = 1;
		run->stopping = true;
		flow_phase_check(run);
		return;
	}
	if (run->opt->duration > 0) {
		tv.tv_sec = (time_t)run->opt->duration;
		tv.tv_usec = (suseconds_t)((run->opt->duration -
		    (double)tv.tv_sec) * 1e6);
		evtimer_add(run->deadline, &tv);
	}
	for (i = 0; i < run->nworkers; i++)
		if (run->workers[i].kid[0] != '\0')
			flow_next(&run->workers[i]);
}

/* Registers the account: a fresh nonce, then newAccount. */
static void
flow_account(struct acmeload_worker *w)
{
	w->account_us = acmeload_now_us();
	w->nonce[0] = '\0';
	flow_post(w, FLOW_ACCOUNT, w->run->new_account,
	    "{\"termsOfServiceAgreed\":true}");
}

/* What an idle worker does next: start the flow phase when it was the
 * last to register, else a new flow unless the phase is ending. */
static void
flow_next(struct acmeload_worker *w)
{
	struct acmeload *run = w->run;
	char id[ACMELOAD_NAME_MAX], payload[FLOW_PAYLOAD_MAX];

	if (!run->running) {
		flow_phase_start(run);
		return;
	}
	if (w->kid[0] == '\0')
		return;
	if (run->opt->orders > 0 && run->flows_started >= run->opt->orders)
		run->stopping = true;
	if (run->stopping) {
		flow_phase_check(run);
		return;
	}
	if (common_random_id("", id, sizeof(id)) == -1 ||
	    snprintf(w->name, sizeof(w->name), "%s.%s", id,
	    run->opt->domain_suffix) >= (int)sizeof(w->name) ||
	    snprintf(payload, sizeof(payload), "{\"identifiers\":[{\"type\":"
	    "\"dns\",\"value\":\"%s\"}]}", w->name) >= (int)sizeof(payload)) {
		log_err("acmeload: cannot make a name under %s",
		    run->opt->domain_suffix);
		run->exit_code = 1;
		run->stopping = true;
		flow_phase_check(run);
		return;
	}
	run->flows_started++;
	run->flows_active++;
	w->active = true;
	w->flow_us = acmeload_now_us();
	w->order_url[0] = w->authz_url[0] = w->finalize_url[0] = '\0';
	flow_post(w, FLOW_NEWORDER, run->new_order, payload);
}

/* The worker's timer: a poll is due, or the error backoff is over. */
static void
flow_timer(evutil_socket_t fd, short what, void *arg)
{
	struct acmeload_worker *w = arg;

	(void)fd;
	(void)what;
	switch (w->state) {
	case FLOW_ACCOUNT:
		flow_account(w);
		break;
	case FLOW_AUTHZ_POLL:
	case FLOW_ORDER_POLL:
		w->nonce_retried = false;
		flow_send(w);
		break;
	default:
		flow_next(w);
		break;
	}
}

/* ---- the worker set -------------------------------------------------------- */

int
acmeload_workers_new(struct acmeload *run)
{
	struct acmeload_worker *w;
	int i;

	if ((run->workers = calloc((size_t)run->opt->concurrency,
	    sizeof(*run->workers))) == NULL)
		return -1;
	run->nworkers = run->opt->concurrency;
	for (i = 0; i < run->nworkers; i++) {
		w = &run->workers[i];
		w->run = run;
		w->id = i;
		w->r_retry_after = -1;
		common_buf_init(&w->resp, ACMELOAD_BODY_MAX);
		if ((w->easy = curl_easy_init()) == NULL ||
		    flow_easy_setup(w) == -1 ||
		    (w->timer = evtimer_new(run->base, flow_timer, w)) ==
		    NULL ||
		    (w->key = acmeload_key_new()) == NULL ||
		    (w->signer = acmeload_signer_new(w->key)) == NULL ||
		    (w->jwk = acmeload_jwk(w->key, w->thumb,
		    sizeof(w->thumb))) == NULL) {
			log_err("acmeload: cannot prepare worker %d", i);
			return -1;
		}
	}
	return 0;
}

void
acmeload_workers_free(struct acmeload *run)
{
	struct acmeload_worker *w;
	int i;

	if (run->workers == NULL)
		return;
	for (i = 0; i < run->nworkers; i++) {
		w = &run->workers[i];
		if (w->in_flight)
			curl_multi_remove_handle(run->multi, w->easy);
		if (w->timer != NULL)
			event_free(w->timer);
		if (w->easy != NULL)
			curl_easy_cleanup(w->easy);
		flow_clear(w);
		EVP_PKEY_CTX_free(w->signer);
		EVP_PKEY_free(w->key);
		json_decref(w->jwk);
		common_buf_free(&w->resp);
	}
	free(run->workers);
	run->workers = NULL;
}

void
acmeload_workers_start(struct acmeload *run)
{
	int i;

	run->pending_accounts = run->nworkers;
	for (i = 0; i < run->nworkers; i++)
		flow_account(&run->workers[i]);
}

void
acmeload_flow_stop(struct acmeload *run)
{
	run->stopping = true;
	flow_phase_check(run);
}

void
acmeload_flow_abort(struct acmeload *run, const char *why)
{
	struct acmeload_worker *w;
	int i;

	for (i = 0; i < run->nworkers; i++) {
		w = &run->workers[i];
		if (!w->active)
			continue;
		if (w->in_flight) {
			curl_multi_remove_handle(run->multi, w->easy);
			w->in_flight = false;
		}
		evtimer_del(w->timer);
		acmeload_error(&run->stats, flow_step[w->state], why);
		flow_clear(w);
		w->active = false;
		run->stats.orders_failed++;
		run->flows_active--;
		w->state = FLOW_IDLE;
	}
	run->stopping = true;
	flow_phase_check(run);
}
