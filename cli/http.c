/*
 * cli/http.c — the management API client: one libcurl easy handle per
 * run, reused for every request (so a paginated list or a lookup followed
 * by a fetch share one TLS connection). TLS is always verified; answers
 * are capped at CLI_BODY_MAX; error answers become one line,
 * "pkictl: STATUS: message".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "cli/cli.h"

#define HTTP_URL_MAX		(CLI_URL_MAX + sizeof(CLI_API_PREFIX) + \
				 CLI_PATH_MAX)	/* base URL + prefix + path */
#define HTTP_AUTH_MAX		(CLI_TOKEN_MAX + 32)	/* "Authorization: Bearer " */
#define HTTP_ERRMSG_MAX		300	/* bytes of a non-JSON error body shown */
#define HTTP_USER_AGENT		CLI_PROG "/1"

struct cli_http {
	CURL			*curl;
	const struct cli_conf	*conf;		/* borrowed */
	struct curl_slist	*hdr_get;	/* Authorization */
	struct curl_slist	*hdr_post;	/* + Content-Type: application/json */
	struct common_buf	 body;		/* the last answer */
	bool			 overflow;	/* the answer passed CLI_BODY_MAX */
	char			 errbuf[CURL_ERROR_SIZE];
};

/* libcurl write callback: appends to the bounded body buffer; returning
 * less than asked makes curl abort the transfer. */
static size_t
http_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct cli_http *h = arg;

	if (common_buf_add(&h->body, p, size * n) == -1) {
		h->overflow = true;
		return 0;
	}
	return size * n;
}

/* Frees a header list after wiping it: one entry holds the token. */
static void
http_slist_free(struct curl_slist *l)
{
	struct curl_slist *p;

	for (p = l; p != NULL; p = p->next)
		if (p->data != NULL)
			OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* Wipes and releases the last answer: it may have held a private key. */
static void
http_body_reset(struct cli_http *h)
{
	if (h->body.data != NULL)
		OPENSSL_cleanse(h->body.data, h->body.len);
	common_buf_free(&h->body);
	common_buf_init(&h->body, CLI_BODY_MAX);
	h->overflow = false;
}

/*
 * Creates the handle with every per-run option set: verified TLS 1.2+
 * (with conf->cacert as the trust bundle when given), http/https only, no
 * redirects (the token must not follow one), the whole-request timeout,
 * and the Authorization header built from the token.
 */
struct cli_http *
cli_http_new(const struct cli_conf *conf)
{
	struct cli_http *h = NULL, *ret = NULL;
	struct curl_slist *l;
	char auth[HTTP_AUTH_MAX] = "";
	bool ok;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		cli_err("out of memory");
		goto out;
	}
	h->conf = conf;
	common_buf_init(&h->body, CLI_BODY_MAX);
	if ((h->curl = curl_easy_init()) == NULL) {
		cli_err("libcurl: cannot create a handle");
		goto out;
	}
	if (common_path(auth, sizeof(auth), "Authorization: Bearer %s",
	    conf->token) == -1) {
		cli_err("token too long");
		goto out;
	}
	if ((h->hdr_get = curl_slist_append(NULL, auth)) == NULL) {
		cli_err("out of memory");
		goto out;
	}
	if ((l = curl_slist_append(NULL, auth)) == NULL) {
		cli_err("out of memory");
		goto out;
	}
	h->hdr_post = l;
	if (curl_slist_append(l, "Content-Type: application/json") == NULL) {
		cli_err("out of memory");
		goto out;
	}
	ok = curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf) ==
	    CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, http_write_cb) ==
	    CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h) == CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https") ==
	    CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_SSLVERSION,
	    (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, conf->timeout_ms) ==
	    CURLE_OK &&
	    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, HTTP_USER_AGENT) ==
	    CURLE_OK;
	if (ok && conf->cacert != NULL)
		ok = curl_easy_setopt(h->curl, CURLOPT_CAINFO, conf->cacert) ==
		    CURLE_OK;
	if (!ok) {
		cli_err("libcurl: cannot set up the handle");
		goto out;
	}
	ret = h;	/* steal */
	h = NULL;
out:
	OPENSSL_cleanse(auth, sizeof(auth));
	cli_http_free(h);
	return ret;
}

void
cli_http_free(struct cli_http *h)
{
	if (h == NULL)
		return;
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	http_slist_free(h->hdr_get);
	http_slist_free(h->hdr_post);
	if (h->body.data != NULL)
		OPENSSL_cleanse(h->body.data, h->body.len);
	common_buf_free(&h->body);
	free(h);
}

/* Selects the method, headers and body of the next transfer. */
static int
http_method_set(struct cli_http *h, const char *method, const char *data,
    size_t len)
{
	CURL *c = h->curl;

	if (strcmp(method, "POST") == 0)
		return curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL) ==
		    CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_POST, 1L) == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)len) == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_POSTFIELDS, data) == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hdr_post) ==
		    CURLE_OK ? 0 : -1;
	/* GET and DELETE carry no body; HTTPGET undoes an earlier POST. */
	return curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
	    strcmp(method, "GET") == 0 ? NULL : method) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hdr_get) == CURLE_OK ?
	    0 : -1;
}

/*
 * Prints the error answer of status: the server's error.message when the
 * body is the documented {"error": {"code", "message"}}, else the start
 * of the body's first line, else a generic text.
 */
static void
http_error_print(const struct cli_http *h, long status)
{
	json_t *doc = NULL;
	const char *msg = NULL;
	char line[HTTP_ERRMSG_MAX + 1];
	char *clean = NULL;
	size_t n;

	if (h->body.len > 0)
		doc = json_loadb((const char *)h->body.data, h->body.len, 0,
		    NULL);
	if (doc != NULL)
		msg = json_string_value(json_object_get(json_object_get(doc,
		    "error"), "message"));
	if (msg == NULL && h->body.len > 0 && doc == NULL) {
		n = strcspn((const char *)h->body.data, "\r\n");
		if (n > HTTP_ERRMSG_MAX)
			n = HTTP_ERRMSG_MAX;
		memcpy(line, h->body.data, n);
		line[n] = '\0';
		if (n > 0)
			msg = line;
	}
	if (msg == NULL)
		msg = status >= 300 && status < 400 ?
		    "unexpected redirect (check --url)" :
		    "the server gave no error message";
	clean = cli_clean(msg);
	cli_err("%ld: %s", status, clean != NULL ? clean : "(unprintable)");
	free(clean);
	json_decref(doc);
}

/*
 * One request on the shared handle. The serialized body is wiped after
 * the transfer (an import carries a private key). A transfer failure is
 * CLI_EXIT_CONNECT except when it was our own body cap that stopped it.
 */
enum cli_exit
cli_http_call(struct cli_http *h, const char *method, const char *path,
    const json_t *body, bool want_json, json_t **out)
{
	char url[HTTP_URL_MAX];
	char *data = NULL;
	size_t len = 0;
	long status = 0;
	json_error_t jerr;
	enum cli_exit rc = CLI_EXIT_ERROR;
	CURLcode cc;

	*out = NULL;
	http_body_reset(h);
	h->errbuf[0] = '\0';
	if (common_path(url, sizeof(url), "%s%s%s", h->conf->url,
	    CLI_API_PREFIX, path) == -1) {
		cli_err("request URL too long");
		goto out;
	}
	if (strcmp(method, "POST") == 0) {
		data = body != NULL ? json_dumps(body, JSON_COMPACT) :
		    strdup("{}");
		if (data == NULL) {
			cli_err("%s: cannot serialize the request", path);
			goto out;
		}
		len = strlen(data);
	}
	if (curl_easy_setopt(h->curl, CURLOPT_URL, url) != CURLE_OK ||
	    http_method_set(h, method, data, len) == -1) {
		cli_err("%s: libcurl refused the request", url);
		goto out;
	}
	if ((cc = curl_easy_perform(h->curl)) != CURLE_OK) {
		if (h->overflow)
			cli_err("%s: answer larger than %d MiB", url,
			    CLI_BODY_MAX / (1024 * 1024));
		else {
			cli_err("%s: %s", url, h->errbuf[0] != '\0' ?
			    h->errbuf : curl_easy_strerror(cc));
			rc = CLI_EXIT_CONNECT;
		}
		goto out;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		http_error_print(h, status);
		goto out;
	}
	if (h->body.len == 0) {
		rc = CLI_EXIT_OK;
		goto out;
	}
	if (want_json) {
		if ((*out = json_loadb((const char *)h->body.data, h->body.len,
		    0, &jerr)) == NULL) {
			cli_err("%ld: the answer is not JSON (%s)", status,
			    jerr.text);
			goto out;
		}
	} else if ((*out = json_stringn((const char *)h->body.data,
	    h->body.len)) == NULL) {
		cli_err("%ld: the answer is not text", status);
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	if (data != NULL) {
		OPENSSL_cleanse(data, len);	/* may hold a private key */
		free(data);
	}
	return rc;
}

/* The array under key in a list answer, or NULL (message printed). */
static json_t *
http_list_items(const json_t *doc, const char *key)
{
	json_t *a = json_object_get(doc, key);

	if (!json_is_array(a))
		cli_err("the answer has no \"%s\" list", key);
	return json_is_array(a) ? a : NULL;
}

/*
 * Fetches one page or, with all, every page from page_token on. A server
 * that hands back a token it already gave, or more than CLI_PAGES_MAX
 * pages, is treated as broken rather than followed forever.
 */
enum cli_exit
cli_http_list(struct cli_http *h, const char *path, const char *key,
    const char *page_token, bool all, json_t **out)
{
	char pagepath[CLI_PATH_MAX], token[CLI_PATH_MAX], prev[CLI_PATH_MAX];
	json_t *first = NULL, *page = NULL, *items;
	const char *next;
	enum cli_exit rc = CLI_EXIT_ERROR;
	size_t pages = 0;

	*out = NULL;
	token[0] = prev[0] = '\0';
	if (page_token != NULL && common_path(token, sizeof(token), "%s",
	    page_token) == -1) {
		cli_err("--page-token too long");
		goto out;
	}
	for (;;) {
		if (common_path(pagepath, sizeof(pagepath), "%s", path) == -1 ||
		    (token[0] != '\0' && cli_query_add(pagepath,
		    sizeof(pagepath), "page_token", token) == -1)) {
			cli_err("request path too long");
			goto out;
		}
		if ((rc = cli_http_call(h, "GET", pagepath, NULL, true,
		    &page)) != CLI_EXIT_OK)
			goto out;
		rc = CLI_EXIT_ERROR;
		if ((items = http_list_items(page, key)) == NULL)
			goto out;
		pages++;
		if (first == NULL) {
			first = page;	/* steal */
			page = NULL;
		} else if (json_array_extend(json_object_get(first, key),
		    items) == -1) {
			cli_err("out of memory");
			goto out;
		}
		next = json_string_value(json_object_get(page != NULL ? page :
		    first, "next_page_token"));
		if (!all || next == NULL || next[0] == '\0')
			break;
		if (pages >= CLI_PAGES_MAX) {
			cli_err("more than %d pages; stopping", CLI_PAGES_MAX);
			goto out;
		}
		memcpy(prev, token, sizeof(prev));
		if (common_path(token, sizeof(token), "%s", next) == -1 ||
		    strcmp(token, prev) == 0) {
			cli_err("the server gave a bad next_page_token");
			goto out;
		}
		json_decref(page);
		page = NULL;
	}
	if (all && json_object_set_new(first, "next_page_token",
	    json_null()) == -1) {
		cli_err("out of memory");
		goto out;
	}
	*out = first;	/* steal */
	first = NULL;
	rc = CLI_EXIT_OK;
out:
	json_decref(page);
	json_decref(first);
	return rc;
}
