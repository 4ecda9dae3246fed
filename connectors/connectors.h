/*
 * connectors/ — deployment of a certificate version to a resource
 * (DESIGN.md "connectors"). A connector holds no state of its own:
 * lifecycle hands it a version and a resource (a connector_job), the
 * connector deploys and verifies, and lifecycle records the result.
 *
 * Types:
 *   "file"     writes the certificate, key, chain and full chain
 *              atomically, runs an optional reload command (argv, no
 *              shell, bounded in time) and verifies by reading the files
 *              back (serial and key match). Resource types "nginx" and
 *              "haproxy" deploy through it (nginx reloads with
 *              ["nginx", "-s", "reload"] unless the config names
 *              another command).
 *   "webhook"  POSTs {"certificate", "chain", "version",
 *              "certificate_id"} (+ "private_key" only when the config
 *              says include_private_key) signed with X-Pkid-Signature:
 *              sha256=<hex HMAC-SHA256(secret, body)>; verified by a 2xx
 *              answer.
 * Resource type "other" has no connector: its certificates are promoted
 * by hand.
 *
 * Threads: connector_validate is thread-safe. Everything else runs on
 * the event base given to connector_ctx_new (pkid's jobs thread): a
 * deploy never blocks that loop (reload commands are waited for by
 * timer, HTTP goes through common_curlev).
 */
#ifndef PKID_CONNECTORS_H
#define PKID_CONNECTORS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/common.h"

#define CONNECTOR_DETAIL_MAX		512	/* one result line, bytes */
#define CONNECTOR_RELOAD_TIMEOUT_SECONDS 30	/* a reload command, at most */
#define CONNECTOR_WEBHOOK_TIMEOUT_SECONDS 30	/* a webhook POST, at most */
#define CONNECTOR_ARGV_MAX		32	/* reload_command elements */
#define CONNECTOR_ARG_MAX		1024	/* bytes of one of them */
#define CONNECTOR_PATH_MAX		1024	/* bytes of a configured path */
#define CONNECTOR_URL_MAX		2048	/* bytes of a webhook URL */
#define CONNECTOR_SECRET_MAX		1024	/* bytes of a webhook secret */
#define CONNECTOR_FILE_MAX		(1024 * 1024) /* a file read back */

struct event_base;
struct connector_ctx;
struct connector_op;

/* What to deploy where. Every pointer is borrowed for the duration of
 * the call that takes it (connector_run copies what it keeps). */
struct connector_job {
	const char	*resource_id;
	const char	*resource_type;	/* "nginx"|"haproxy"|"webhook"|.. */
	const json_t	*config;	/* the resource's config object */
	const char	*certificate_id;
	unsigned	 version;
	const char	*serial;	/* upper-case hex, as the inventory */
	const char	*certificate;	/* PEM of the leaf */
	const char	*chain;		/* PEM of the issuers, may be "" */
	const char	*private_key;	/* PKCS#8 PEM; NULL: pkid holds none */
};

/*
 * A connector type. validate checks a resource's config (COMMON_E_INVALID
 * naming the field). deploy and verify start a step of the running
 * operation op (connector_op_job gives the job): they return 0 when the
 * step is under way, and the type then calls connector_op_done exactly
 * once (from the loop, or before returning); -1 when the step failed at
 * once, with the reason in connector_op_fail. cancel releases what a
 * step in flight holds when the operation is abandoned (NULL: nothing).
 */
struct connector_type {
	const char	*name;
	int		(*validate)(const json_t *config,
			    struct common_error *err);
	int		(*deploy)(struct connector_op *op);
	int		(*verify)(struct connector_op *op);
	void		(*cancel)(struct connector_op *op);
};

/* The connector of a resource type ("nginx" and "haproxy": file;
 * "webhook": webhook), or NULL when the type has none ("other"). */
const struct connector_type *connector_type_for(const char *resource_type);

/* Checks config for a resource of resource_type (types without a
 * connector accept any object). 0, or -1 with COMMON_E_INVALID. */
int connector_validate(const char *resource_type, const json_t *config,
    struct common_error *err);

/* The connector context on base (borrowed, must outlive it): the HTTP
 * driver and the operations in flight. NULL (logged) on failure. */
struct connector_ctx *connector_ctx_new(struct event_base *base);
/* Abandons the operations in flight (their done callbacks are not
 * called; reload commands still running are killed) and frees c. Call
 * from base's thread, or once it no longer runs. Accepts NULL. */
void connector_ctx_free(struct connector_ctx *c);

/*
 * Deploys job (copied) with the connector of its resource type, then
 * verifies it; done(ok, detail, arg) runs once on the loop, never before
 * connector_run returned: ok, and a one-line detail (what was done, or
 * the failing step and its reason). 0, or -1 (logged; done will not
 * run) when the type has no connector or the operation cannot be set up.
 */
int connector_run(struct connector_ctx *c, const struct connector_job *job,
    void (*done)(bool ok, const char *detail, void *arg), void *arg);
/* Operations in flight on c. */
size_t connector_ctx_running(const struct connector_ctx *c);

/* ---- for the connector types of this directory only ---- */

/* The operation's job (its copy), event base and HTTP driver. */
const struct connector_job *connector_op_job(const struct connector_op *op);
struct event_base *connector_op_base(const struct connector_op *op);
struct common_curlev *connector_op_curl(const struct connector_op *op);
/* The type's per-step state (NULL when none). */
void *connector_op_state(const struct connector_op *op);
void connector_op_set_state(struct connector_op *op, void *state);
/* A number the deploy step leaves for verify (the webhook's HTTP
 * status); 0 until set. */
void connector_op_set_status(struct connector_op *op, long status);
long connector_op_status(const struct connector_op *op);
/* Records the reason of a failing step (the first one set is kept). */
void connector_op_fail(struct connector_op *op, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Records what a successful step did (appended to the detail). */
void connector_op_note(struct connector_op *op, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Ends the current step: ok moves on (deploy -> verify -> done), !ok
 * ends the operation with the reason given to connector_op_fail. The
 * state must have been released by the type before. */
void connector_op_done(struct connector_op *op, bool ok);

/* A webhook transfer of the context ended (its easy handle's
 * CURLOPT_PRIVATE is the operation). */
void connector_webhook_finished(CURL *easy, CURLcode rc);

extern const struct connector_type connector_file;
extern const struct connector_type connector_webhook;

/* Webhook signature header value "sha256=<hex>" of body under secret
 * into out (>= CONNECTOR_SIG_MAX bytes). 0 or -1. */
#define CONNECTOR_SIG_MAX	80
int connector_sign(const char *secret, const void *body, size_t len,
    char *out, size_t outlen);

#endif
