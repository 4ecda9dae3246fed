/*
 * connectors/connector.c — the connector context and the operation that
 * runs a connector's deploy and verify steps on the jobs loop.
 *
 * An operation owns a copy of its job. Each step is started by the type
 * and ended with connector_op_done; the move to the next step (and the
 * final done callback) always happens from a fresh loop callback, so a
 * type may end a step before its deploy or verify returned.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "connectors/connectors.h"

enum connector_step {
	CONNECTOR_STEP_DEPLOY,
	CONNECTOR_STEP_VERIFY,
	CONNECTOR_STEP_DONE,
	CONNECTOR_STEP__MAX
};

struct connector_op {
	LIST_ENTRY(connector_op) entry;
	struct connector_ctx	*ctx;
	const struct connector_type *type;
	struct connector_job	 job;		/* its strings are owned */
	json_t			*config;	/* owned copy */
	enum connector_step	 step;
	bool			 in_step;	/* the type holds a step */
	bool			 ok;		/* of the step that ended */
	bool			 failed;	/* a reason was recorded */
	void			*state;		/* the type's */
	long			 status;	/* deploy -> verify */
	struct event		*next;		/* moves to the next step */
	char			 detail[CONNECTOR_DETAIL_MAX];
	void			(*done)(bool, const char *, void *);
	void			*arg;
};

struct connector_ctx {
	struct event_base		*base;		/* borrowed */
	struct common_curlev		*curl;
	LIST_HEAD(connector_ops, connector_op) ops;
	size_t				 nops;
};

const struct connector_type *
connector_type_for(const char *resource_type)
{
	if (resource_type == NULL)
		return NULL;
	if (strcmp(resource_type, "nginx") == 0 ||
	    strcmp(resource_type, "haproxy") == 0)
		return &connector_file;
	if (strcmp(resource_type, "webhook") == 0)
		return &connector_webhook;
	return NULL;
}

int
connector_validate(const char *resource_type, const json_t *config,
    struct common_error *err)
{
	const struct connector_type *t = connector_type_for(resource_type);

	if (t == NULL)
		return 0;
	if (config != NULL && !json_is_object(config)) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"config\" must be an object");
		return -1;
	}
	return t->validate(config, err);
}

int
connector_sign(const char *secret, const void *body, size_t len, char *out,
    size_t outlen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned int maclen = 0;

	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, mac,
	    &maclen) == NULL) {
		log_err("connectors: HMAC-SHA256: %s", common_ssl_error());
		return -1;
	}
	common_hex(mac, maclen, hex);
	if (snprintf(out, outlen, "sha256=%s", hex) >= (int)outlen)
		return -1;
	return 0;
}

/* Every HTTP transfer of the context is a webhook connector's. */
static void
connector_curl_done(CURL *easy, CURLcode rc, void *arg)
{
	(void)arg;
	connector_webhook_finished(easy, rc);
}

struct connector_ctx *
connector_ctx_new(struct event_base *base)
{
	struct connector_ctx *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_err("connectors: context: out of memory");
		return NULL;
	}
	c->base = base;
	LIST_INIT(&c->ops);
	if ((c->curl = common_curlev_new(base, "connectors",
	    connector_curl_done, c)) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

static void
connector_op_free(struct connector_op *op)
{
	if (op == NULL)
		return;
	if (op->in_step && op->type->cancel != NULL)
		op->type->cancel(op);
	if (op->next != NULL)
		event_free(op->next);
	free((char *)op->job.resource_id);
	free((char *)op->job.resource_type);
	free((char *)op->job.certificate_id);
	free((char *)op->job.serial);
	free((char *)op->job.certificate);
	free((char *)op->job.chain);
	if (op->job.private_key != NULL) {
		OPENSSL_cleanse((char *)op->job.private_key,
		    strlen(op->job.private_key));
		free((char *)op->job.private_key);
	}
	json_decref(op->config);
	free(op);
}

void
connector_ctx_free(struct connector_ctx *c)
{
	struct connector_op *op;

	if (c == NULL)
		return;
	while ((op = LIST_FIRST(&c->ops)) != NULL) {
		LIST_REMOVE(op, entry);
		connector_op_free(op);
	}
	/* after the ops: their cancel took their transfers out */
	common_curlev_free(c->curl);
	free(c);
}

size_t
connector_ctx_running(const struct connector_ctx *c)
{
	return c != NULL ? c->nops : 0;
}

/* Starts the operation's current step, or finishes it when a step
 * failed at once. */
static void
connector_op_start_step(struct connector_op *op)
{
	int (*fn)(struct connector_op *) = op->step ==
	    CONNECTOR_STEP_DEPLOY ? op->type->deploy : op->type->verify;

	op->in_step = true;
	if (fn(op) == -1) {
		op->in_step = false;
		op->ok = false;
		event_active(op->next, EV_TIMEOUT, 0);
	}
}

/* The loop callback after a step ended: the next step, or the end. */
static void
connector_op_next_cb(evutil_socket_t fd, short what, void *arg)
{
	struct connector_op *op = arg;
	struct connector_ctx *c = op->ctx;

	(void)fd;
	(void)what;
	if (op->ok && op->step == CONNECTOR_STEP_DEPLOY) {
		op->step = CONNECTOR_STEP_VERIFY;
		connector_op_start_step(op);
		return;
	}
	op->step = CONNECTOR_STEP_DONE;
	if (!op->ok && !op->failed)
		snprintf(op->detail, sizeof(op->detail), "%s failed",
		    op->type->name);
	LIST_REMOVE(op, entry);
	c->nops--;
	op->done(op->ok, op->detail, op->arg);
	connector_op_free(op);
}

/* strdup of s, or of "" for NULL when empty is true; false on failure */
static bool
connector_dup(const char **dst, const char *s, bool empty)
{
	if (s == NULL && !empty) {
		*dst = NULL;
		return true;
	}
	*dst = strdup(s != NULL ? s : "");
	return *dst != NULL;
}

int
connector_run(struct connector_ctx *c, const struct connector_job *job,
    void (*done)(bool ok, const char *detail, void *arg), void *arg)
{
	const struct connector_type *t = connector_type_for(job->resource_type);
	struct connector_op *op = NULL;
	int rc = -1;

	if (t == NULL) {
		log_err("connectors: resource %s: type %s has no connector",
		    job->resource_id, job->resource_type);
		goto out;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL)
		goto nomem;
	op->ctx = c;
	op->type = t;
	op->done = done;
	op->arg = arg;
	op->job.version = job->version;
	if (!connector_dup(&op->job.resource_id, job->resource_id, true) ||
	    !connector_dup(&op->job.resource_type, job->resource_type,
	    true) ||
	    !connector_dup(&op->job.certificate_id, job->certificate_id,
	    true) ||
	    !connector_dup(&op->job.serial, job->serial, true) ||
	    !connector_dup(&op->job.certificate, job->certificate, true) ||
	    !connector_dup(&op->job.chain, job->chain, true) ||
	    !connector_dup(&op->job.private_key, job->private_key, false))
		goto nomem;
	if ((op->config = job->config != NULL ? json_deep_copy(job->config) :
	    json_object()) == NULL)
		goto nomem;
	op->job.config = op->config;
	if ((op->next = event_new(c->base, -1, 0, connector_op_next_cb,
	    op)) == NULL)
		goto nomem;
	LIST_INSERT_HEAD(&c->ops, op, entry);
	c->nops++;
	op->step = CONNECTOR_STEP_DEPLOY;
	connector_op_start_step(op);
	op = NULL;	/* the loop owns it now */
	rc = 0;
	goto out;
nomem:
	log_err("connectors: resource %s: setting up the deployment: out of "
	    "memory", job->resource_id);
out:
	connector_op_free(op);
	return rc;
}

const struct connector_job *
connector_op_job(const struct connector_op *op)
{
	return &op->job;
}

struct event_base *
connector_op_base(const struct connector_op *op)
{
	return op->ctx->base;
}

struct common_curlev *
connector_op_curl(const struct connector_op *op)
{
	return op->ctx->curl;
}

void *
connector_op_state(const struct connector_op *op)
{
	return op->state;
}

void
connector_op_set_state(struct connector_op *op, void *state)
{
	op->state = state;
}

void
connector_op_set_status(struct connector_op *op, long status)
{
	op->status = status;
}

long
connector_op_status(const struct connector_op *op)
{
	return op->status;
}

void
connector_op_fail(struct connector_op *op, const char *fmt, ...)
{
	va_list ap;

	if (op->failed)
		return;
	op->failed = true;
	va_start(ap, fmt);
	vsnprintf(op->detail, sizeof(op->detail), fmt, ap);
	va_end(ap);
}

void
connector_op_note(struct connector_op *op, const char *fmt, ...)
{
	size_t used = strlen(op->detail);
	va_list ap;

	if (op->failed || used + 3 >= sizeof(op->detail))
		return;
	if (used > 0) {
		memcpy(op->detail + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(op->detail + used, sizeof(op->detail) - used, fmt, ap);
	va_end(ap);
}

void
connector_op_done(struct connector_op *op, bool ok)
{
	op->in_step = false;
	op->state = NULL;
	op->ok = ok;
	event_active(op->next, EV_TIMEOUT, 0);
}
