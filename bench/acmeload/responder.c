/*
 * bench/acmeload/responder.c — the http-01 responder (RFC 8555 §8.3):
 * an evhttp server on the run's event loop answering
 * GET /.well-known/acme-challenge/TOKEN with the key authorization the
 * workers published for TOKEN. The table is a chained hash; the loop is
 * single-threaded, so it needs no lock.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "bench/acmeload/acmeload.h"

#define RESPONDER_PREFIX	"/.well-known/acme-challenge/"
#define RESPONDER_TIMEOUT	30	/* seconds an idle validator may stay */

struct responder_token {
	struct responder_token	*next;
	char			 token[ACMELOAD_TOKEN_MAX];
	char			 keyauth[ACMELOAD_KEYAUTH_MAX];
};

struct acmeload_responder {
	struct acmeload		*run;
	struct evhttp		*http;
	struct responder_token	*bucket[ACMELOAD_TOKENS_BUCKETS];
};

/* FNV-1a of a NUL-terminated string, reduced to a bucket index. */
static size_t
responder_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h & (ACMELOAD_TOKENS_BUCKETS - 1);
}

static struct responder_token *
responder_find(struct acmeload_responder *r, const char *token)
{
	struct responder_token *t;

	for (t = r->bucket[responder_hash(token)]; t != NULL; t = t->next)
		if (strcmp(t->token, token) == 0)
			return t;
	return NULL;
}

int
acmeload_token_add(struct acmeload_responder *r, const char *token,
    const char *keyauth)
{
	struct responder_token *t;
	size_t b;

	if (strlen(token) >= sizeof(t->token) ||
	    strlen(keyauth) >= sizeof(t->keyauth))
		return -1;
	if ((t = responder_find(r, token)) == NULL) {
		if ((t = calloc(1, sizeof(*t))) == NULL)
			return -1;
		memcpy(t->token, token, strlen(token) + 1);
		b = responder_hash(token);
		t->next = r->bucket[b];
		r->bucket[b] = t;
	}
	memcpy(t->keyauth, keyauth, strlen(keyauth) + 1);
	return 0;
}

void
acmeload_token_del(struct acmeload_responder *r, const char *token)
{
	struct responder_token **pp, *t;

	for (pp = &r->bucket[responder_hash(token)]; (t = *pp) != NULL;
	    pp = &t->next)
		if (strcmp(t->token, token) == 0) {
			*pp = t->next;
			free(t);
			return;
		}
}

/* Answers one validation request: 200 text/plain with the key
 * authorization, 404 for an unknown token or path, 405 for methods other
 * than GET and HEAD. */
static void
responder_request(struct evhttp_request *req, void *arg)
{
	struct acmeload_responder *r = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = evhttp_request_get_uri(req);
	struct responder_token *t = NULL;
	struct evbuffer *body;
	size_t plen = strlen(RESPONDER_PREFIX);

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		r->run->stats.responder_misses++;
		evhttp_send_error(req, 405, NULL);
		return;
	}
	if (path != NULL && strncmp(path, RESPONDER_PREFIX, plen) == 0)
		t = responder_find(r, path + plen);
	if (t == NULL) {
		r->run->stats.responder_misses++;
		evhttp_send_error(req, 404, NULL);
		return;
	}
	if ((body = evbuffer_new()) == NULL ||
	    evbuffer_add(body, t->keyauth, strlen(t->keyauth)) == -1) {
		evbuffer_free(body);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	r->run->stats.responder_hits++;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain");
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
}

struct acmeload_responder *
acmeload_responder_new(struct acmeload *run, const char *address, int port)
{
	struct acmeload_responder *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->run = run;
	if ((r->http = evhttp_new(run->base)) == NULL) {
		log_err("acmeload: responder: evhttp_new failed");
		goto out;
	}
	evhttp_set_timeout(r->http, RESPONDER_TIMEOUT);
	evhttp_set_allowed_methods(r->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST);
	evhttp_set_gencb(r->http, responder_request, r);
	if (evhttp_bind_socket(r->http, address, (uint16_t)port) != 0) {
		log_err("acmeload: responder: cannot listen on %s:%d",
		    address, port);
		goto out;
	}
	return r;
out:
	acmeload_responder_free(r);
	return NULL;
}

void
acmeload_responder_free(struct acmeload_responder *r)
{
	struct responder_token *t, *next;
	size_t i;

	if (r == NULL)
		return;
	if (r->http != NULL)
		evhttp_free(r->http);
	for (i = 0; i < ACMELOAD_TOKENS_BUCKETS; i++)
		for (t = r->bucket[i]; t != NULL; t = next) {
			next = t->next;
			free(t);
		}
	free(r);
}
