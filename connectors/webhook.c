/*
 * connectors/webhook.c — the "webhook" connector: POSTs the version to
 * the resource's URL, signed like pkid's notifications, and counts a 2xx
 * answer as verified.
 *
 * Config: {"url" (http or https; https when the key is sent),
 * "secret" (HMAC-SHA256 key, required), "ca_file" (PEM trust anchors for
 * the receiver's TLS certificate; default the system store),
 * "include_private_key" (bool, default false)}. Body: {"certificate_id",
 * "version", "serial", "certificate", "chain"} (+ "private_key" only
 * when include_private_key) with X-Pkid-Signature: sha256=<hex
 * HMAC-SHA256(secret, body)> and X-Pkid-Event: deploy. TLS is always
 * verified; redirects are not followed. The transfer runs on the jobs
 * loop through common_curlev.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "connectors/connectors.h"

#define WEBHOOK_BODY_MAX	(256 * 1024)	/* bytes of one body */
#define WEBHOOK_CONNECT_SECONDS	10	/* connect timeout */
#define WEBHOOK_HEADER_MAX	(32 + CONNECTOR_SIG_MAX)
#define WEBHOOK_URL_SHOWN	256	/* characters of a URL in details */
#define WEBHOOK_USER_AGENT	"pkid-connector/1"

static const char *const webhook_fields[] = {
	"url", "secret", "ca_file", "include_private_key", NULL
};

/* One POST in flight. */
struct webhook_xfer {
	struct connector_op	*op;
	CURL			*easy;
	struct curl_slist	*headers;
	char			*body;		/* may hold the key */
	size_t			 len;
	char			 errbuf[CURL_ERROR_SIZE];
};

static const char *
webhook_str(const json_t *config, const char *key)
{
	return json_string_value(json_object_get(config, key));
}

static bool
webhook_is_https(const char *url)
{
	return strncasecmp(url, "https://", 8) == 0;
}

static int
webhook_validate(const json_t *config, struct common_error *err)
{
	const char *key, *url, *secret, *ca;
	const json_t *v;
	size_t i;

	if (config == NULL || !json_is_object(config)) {
		common_error_set(err, COMMON_E_INVALID, "field \"config\" "
		    "must be an object with \"url\" and \"secret\"");
		return -1;
	}
	json_object_foreach((json_t *)config, key, v) {
		for (i = 0; webhook_fields[i] != NULL; i++)
			if (strcmp(webhook_fields[i], key) == 0)
				break;
		if (webhook_fields[i] == NULL) {
			common_error_set(err, COMMON_E_INVALID, "unknown field "
			    "\"config.%.64s\"", key);
			return -1;
		}
	}
	url = webhook_str(config, "url");
	if (url == NULL || strlen(url) >= CONNECTOR_URL_MAX ||
	    (!webhook_is_https(url) && strncasecmp(url, "http://", 7) != 0) ||
	    strpbrk(url, " \t\r\n") != NULL) {
		common_error_set(err, COMMON_E_INVALID, "field \"config.url\" "
		    "must be an http:// or https:// URL of at most %d bytes",
		    CONNECTOR_URL_MAX - 1);
		return -1;
	}
	secret = webhook_str(config, "secret");
	if (secret == NULL || *secret == '\0' || strlen(secret) >=
	    CONNECTOR_SECRET_MAX) {
		common_error_set(err, COMMON_E_INVALID, "field "
		    "\"config.secret\" must be a non-empty string of at most "
		    "%d bytes", CONNECTOR_SECRET_MAX - 1);
		return -1;
	}
	v = json_object_get(config, "ca_file");
	if (v != NULL && !json_is_null(v) && ((ca = json_string_value(v)) ==
	    NULL || ca[0] != '/' || strlen(ca) >= CONNECTOR_PATH_MAX)) {
		common_error_set(err, COMMON_E_INVALID, "field "
		    "\"config.ca_file\" must be an absolute path of at most "
		    "%d bytes", CONNECTOR_PATH_MAX - 1);
		return -1;
	}
	v = json_object_get(config, "include_private_key");
	if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
		common_error_set(err, COMMON_E_INVALID, "field "
		    "\"config.include_private_key\" must be a boolean");
		return -1;
	}
	/* a private key never travels in clear text */
	if (json_is_true(v) && !webhook_is_https(url)) {
		common_error_set(err, COMMON_E_INVALID, "field \"config.url\" "
		    "must be https:// when include_private_key is true");
		return -1;
	}
	return 0;
}

static void
webhook_xfer_free(struct webhook_xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	if (x->body != NULL) {
		OPENSSL_cleanse(x->body, x->len);
		free(x->body);
	}
	free(x);
}

static size_t
webhook_discard(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

/* The signed JSON body of the job into x. 0, or -1 (reason recorded). */
static int
webhook_body(struct connector_op *op, struct webhook_xfer *x,
    char *sig_hdr, size_t sig_len)
{
	const struct connector_job *job = connector_op_job(op);
	char sig[CONNECTOR_SIG_MAX];
	json_t *body = NULL;
	int rc = -1;

	if ((body = json_pack("{s:s, s:I, s:s, s:s, s:s}", "certificate_id",
	    job->certificate_id, "version", (json_int_t)job->version,
	    "serial", job->serial, "certificate", job->certificate, "chain",
	    job->chain)) == NULL)
		goto nomem;
	if (json_is_true(json_object_get(job->config, "include_private_key"))) {
		if (job->private_key == NULL) {
			connector_op_fail(op, "pkid holds no private key of "
			    "certificate %s to include", job->certificate_id);
			goto out;
		}
		if (json_object_set_new(body, "private_key",
		    json_string(job->private_key)) == -1)
			goto nomem;
	}
	if ((x->body = json_dumps(body, JSON_COMPACT)) == NULL)
		goto nomem;
	x->len = strlen(x->body);
	if (x->len > WEBHOOK_BODY_MAX) {
		connector_op_fail(op, "body of %zu bytes is over the limit of "
		    "%d", x->len, WEBHOOK_BODY_MAX);
		goto out;
	}
	if (connector_sign(webhook_str(job->config, "secret"), x->body, x->len,
	    sig, sizeof(sig)) == -1) {
		connector_op_fail(op, "signing the body failed");
		goto out;
	}
	snprintf(sig_hdr, sig_len, "X-Pkid-Signature: %s", sig);
	rc = 0;
	goto out;
nomem:
	connector_op_fail(op, "out of memory");
out:
	json_decref(body);
	return rc;
}

static int
webhook_deploy(struct connector_op *op)
{
	const struct connector_job *job = connector_op_job(op);
	const char *url = webhook_str(job->config, "url");
	const char *ca = webhook_str(job->config, "ca_file");
	char sig_hdr[WEBHOOK_HEADER_MAX];
	struct webhook_xfer *x = NULL;
	struct curl_slist *t;
	CURL *e;
	int rc = -1;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		connector_op_fail(op, "out of memory");
		goto out;
	}
	x->op = op;
	if (webhook_body(op, x, sig_hdr, sizeof(sig_hdr)) == -1)
		goto out;
	if ((e = x->easy = curl_easy_init()) == NULL)
		goto setup;
	if ((t = curl_slist_append(x->headers,
	    "Content-Type: application/json")) == NULL)
		goto setup;
	x->headers = t;
	if ((t = curl_slist_append(x->headers, "X-Pkid-Event: deploy")) ==
	    NULL)
		goto setup;
	x->headers = t;
	if ((t = curl_slist_append(x->headers, sig_hdr)) == NULL)
		goto setup;
	x->headers = t;
	if ((t = curl_slist_append(x->headers, "Expect:")) == NULL)
		goto setup;
	x->headers = t;
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)x->len) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, WEBHOOK_USER_AGENT) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT,
	    (long)CONNECTOR_WEBHOOK_TIMEOUT_SECONDS) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT,
	    (long)WEBHOOK_CONNECT_SECONDS) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    (ca != NULL && curl_easy_setopt(e, CURLOPT_CAINFO, ca) !=
	    CURLE_OK) ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, webhook_discard) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK)
		goto setup;
	if (common_curlev_add(connector_op_curl(op), e) == -1)
		goto setup;
	connector_op_set_state(op, x);
	x = NULL;	/* steal */
	rc = 0;
	goto out;
setup:
	log_err("connectors: resource %s: setting up the POST: %s",
	    job->resource_id, x->errbuf[0] != '\0' ? x->errbuf :
	    "libcurl refused an option");
	connector_op_fail(op, "cannot set up the HTTP transfer");
out:
	webhook_xfer_free(x);
	return rc;
}

/* The URL of job for details: cut, and without its query. */
static void
webhook_url_shown(const char *url, char *out, size_t outlen)
{
	size_t n = strcspn(url, "?#");

	if (n > WEBHOOK_URL_SHOWN)
		n = WEBHOOK_URL_SHOWN;
	snprintf(out, outlen, "%.*s", (int)n, url);
}

void
connector_webhook_finished(CURL *easy, CURLcode rc)
{
	struct webhook_xfer *x = NULL;
	struct connector_op *op;
	const struct connector_job *job;
	char shown[WEBHOOK_URL_SHOWN + 1];
	long status = 0;
	bool ok = false;

	if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x) !=
	    CURLE_OK || x == NULL)
		return;
	op = x->op;
	job = connector_op_job(op);
	webhook_url_shown(webhook_str(job->config, "url"), shown,
	    sizeof(shown));
	if (rc != CURLE_OK) {
		log_err("connectors: resource %s: POST %s: %s",
		    job->resource_id, shown, x->errbuf[0] != '\0' ?
		    x->errbuf : curl_easy_strerror(rc));
		connector_op_fail(op, "POST %s failed: %s", shown,
		    x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc));
	} else {
		(void)curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		connector_op_set_status(op, status);
		ok = true;
	}
	webhook_xfer_free(x);
	connector_op_done(op, ok);
}

static int
webhook_verify(struct connector_op *op)
{
	const struct connector_job *job = connector_op_job(op);
	char shown[WEBHOOK_URL_SHOWN + 1];
	long status = connector_op_status(op);

	webhook_url_shown(webhook_str(job->config, "url"), shown,
	    sizeof(shown));
	if (status < 200 || status > 299) {
		log_err("connectors: resource %s: certificate %s version %u: "
		    "POST %s answered %ld", job->resource_id,
		    job->certificate_id, job->version, shown, status);
		connector_op_fail(op, "POST %s answered %ld", shown, status);
		return -1;
	}
	connector_op_note(op, "POST %s answered %ld", shown, status);
	connector_op_done(op, true);
	return 0;
}

/* Abandons a POST in flight. */
static void
webhook_cancel(struct connector_op *op)
{
	struct webhook_xfer *x = connector_op_state(op);

	if (x == NULL)
		return;
	common_curlev_remove(connector_op_curl(op), x->easy);
	webhook_xfer_free(x);
	connector_op_set_state(op, NULL);
}

const struct connector_type connector_webhook = {
	.name = "webhook",
	.validate = webhook_validate,
	.deploy = webhook_deploy,
	.verify = webhook_verify,
	.cancel = webhook_cancel,
};
