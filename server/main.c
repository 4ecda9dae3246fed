/*
 * pkid — the daemon's entry point. The table of contents:
 *
 *   pkid init  --data-dir DIR [--config FILE]   create DIR (idempotent)
 *   pkid serve [--config FILE]                  init if needed, then serve
 *   pkid token --data-dir DIR --role R [--ttl 30d] [--subject S]
 *
 * serve starts, in this order and on these threads:
 *   1. conf/       read once; nothing changes it afterwards (main thread)
 *   2. store/      the BDB environment, recovered on open (shared, locked)
 *   3. ca/         master key, key backends, CA cache (shared, locked)
 *   4. lifecycle/  inventory over ca/ and store/ (stateless, shared)
 *   5. server/     listeners + N worker threads (handlers) + 1 jobs thread
 *                  (store checkpoints, the lifecycle scan that renews and
 *                  deletes, then a live reload of pkid's own TLS
 *                  certificate when it was renewed, CRL rebuilds, webhook
 *                  deliveries, ACME validations); the main thread waits
 *                  for SIGTERM/SIGINT and drains
 *   6. protocols/  mgmt registers /api/v1/ on the mgmt listener; acme
 *                  (/acme/) and est (/.well-known/est/) on the https one
 * and stops them in reverse order.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ca/ca.h"
#include "common/common.h"
#include "conf/conf.h"
#include "lifecycle/lifecycle.h"
#include "protocols/acme/acme.h"
#include "protocols/est/est.h"
#include "protocols/mgmt/mgmt.h"
#include "server/server.h"
#include "store/store.h"

#define MAIN_ADMIN_TOKEN_TTL	(365L * 86400)	/* bootstrap token */
#define MAIN_SERVER_CERT_DAYS	365.0
#define MAIN_SERVER_RENEW_DAYS	30.0	/* renew the TLS cert at start */
#define MAIN_CHECKPOINT_SECONDS	60
#define MAIN_URL_MAX		256
#define MAIN_SERIAL_MAX		80	/* hex serial + NUL */

/* Everything serve and init hold, torn down by main_close(). */
struct main_ctx {
	struct conf		*cf;
	struct store		*st;
	struct ca_ctx		*ca;
	struct lifecycle	*lc;
	struct server		*srv;
	struct mgmt		*mgmt;
	struct acme		*acme;
	struct est		*est;
	char			 http_url[MAIN_URL_MAX];
	char			*issuing_ca_id;
	char			*server_cert_id;
	char			 tls_serial[MAIN_SERIAL_MAX];	/* served */
};

static void
main_usage(void)
{
	fprintf(stderr,
	    "usage: pkid init --data-dir DIR [--config FILE]\n"
	    "       pkid serve [--config FILE]\n"
	    "       pkid token --data-dir DIR --role admin|operator|auditor "
	    "[--ttl 30d] [--subject NAME]\n");
}

/* Base URL of a listener as clients should use it: public_url.X when set,
 * else scheme://listen.X. */
static void
main_base_url(const char *public_url, const char *listen, const char *scheme,
    char *out, size_t outlen)
{
	if (public_url != NULL && public_url[0] != '\0')
		snprintf(out, outlen, "%s", public_url);
	else
		snprintf(out, outlen, "%s://%s", scheme, listen);
	/* no trailing slash: callers append "/crl/..." */
	while (strlen(out) > 0 && out[strlen(out) - 1] == '/')
		out[strlen(out) - 1] = '\0';
}

/* ---- init ---------------------------------------------------------------- */

struct main_hier {
	const struct conf	*cf;
	struct ca_ctx		*ca;
	char			*root_id;	/* out */
	char			*issuing_id;	/* out */
	struct common_error	 err;
};

/* Creates the default root and issuing CA in one transaction and records
 * their ids in meta. Retry-safe: outputs are replaced on each try. */
static int
main_hier_txn(struct store_txn *txn, void *arg)
{
	struct main_hier *h = arg;
	struct ca_create_req req;
	json_t *root = NULL, *sub = NULL;
	int rc = -1;

	free(h->root_id);
	free(h->issuing_id);
	h->root_id = h->issuing_id = NULL;
	common_error_clear(&h->err);

	memset(&req, 0, sizeof(req));
	req.name = "pkid Root CA";
	req.type = "root";
	req.subject = h->cf->ca.root_subject;
	if (ca_key_alg_parse(h->cf->ca.key_algorithm, &req.key_alg) == -1) {
		common_error_set(&h->err, COMMON_E_INVALID,
		    "ca.key_algorithm %s unknown", h->cf->ca.key_algorithm);
		goto out;
	}
	req.validity_days = h->cf->ca.root_validity_days;
	req.path_len = -1;
	if ((root = ca_create(h->ca, txn, &req, &h->err)) == NULL)
		goto out;

	req.name = "pkid Issuing CA";
	req.type = "subordinate";
	req.issuer_ca_id = json_string_value(json_object_get(root, "id"));
	req.subject = h->cf->ca.issuing_subject;
	req.validity_days = h->cf->ca.issuing_validity_days;
	req.path_len = 0;
	if ((sub = ca_create(h->ca, txn, &req, &h->err)) == NULL)
		goto out;

	h->root_id = strdup(req.issuer_ca_id);
	h->issuing_id = strdup(json_string_value(json_object_get(sub, "id")));
	if (h->root_id == NULL || h->issuing_id == NULL)
		goto out;
	if (store_meta_put(txn, "root_ca_id", h->root_id) == -1 ||
	    store_meta_put(txn, "issuing_ca_id", h->issuing_id) == -1)
		goto out;
	rc = 0;
out:
	json_decref(root);
	json_decref(sub);
	return rc;
}

struct main_meta {
	const char	*name;
	const char	*value;
};

static int
main_meta_txn(struct store_txn *txn, void *arg)
{
	struct main_meta *m = arg;

	return store_meta_put(txn, m->name, m->value);
}

/* Issues the server's own TLS certificate (an inventory entry named
 * "pkid-server") for ca.server_names under the issuing CA. */
static char *
main_server_cert_create(struct main_ctx *mc)
{
	struct common_error err;
	json_t *req = NULL, *sans = NULL, *cert = NULL;
	char *id = NULL;
	size_t i;

	common_error_clear(&err);
	if ((sans = json_array()) == NULL)
		goto out;
	for (i = 0; i < mc->cf->ca.nserver_names; i++)
		json_array_append_new(sans,
		    json_string(mc->cf->ca.server_names[i]));
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:s, s:f, s:{s:f}}",
	    "name", "pkid-server", "mode", "managed",
	    "ca_id", mc->issuing_ca_id, "profile", "tls_server",
	    "subject", "CN=pkid server", "sans", sans,
	    "key_algorithm", "ECDSA_P256",
	    "validity_days", MAIN_SERVER_CERT_DAYS,
	    "renewal", "renew_before_days", MAIN_SERVER_RENEW_DAYS);
	if (req == NULL)
		goto out;
	if ((cert = lifecycle_cert_create(mc->lc, req, "system:init",
	    &err)) == NULL) {
		log_err("init: server TLS certificate: %s", err.msg);
		goto out;
	}
	id = strdup(json_string_value(json_object_get(cert, "id")));
out:
	json_decref(req);
	json_decref(sans);
	json_decref(cert);
	return id;
}

/* Writes DATA/admin.token (0600) when missing. */
static int
main_init_token(struct main_ctx *mc)
{
	char path[PATH_MAX], *token = NULL;
	struct stat sb;
	int rc = -1;

	if (common_path(path, sizeof(path), "%s/admin.token",
	    mc->cf->data_dir) == -1)
		goto out;
	if (stat(path, &sb) == -1) {
		if ((token = mgmt_token_mint(mc->cf->data_dir, "admin",
		    MGMT_ROLE_ADMIN, MAIN_ADMIN_TOKEN_TTL)) == NULL)
			goto out;
		if (common_file_write(path, token, strlen(token), 0600) == -1) {
			log_err("init: %s: %s", path, strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	free(token);
	return rc;
}

/* Publishes every CA's certificate, DATA/ca-bundle.pem (the chain that
 * signs the server's TLS certificate, kept current across CA renewals by
 * ca_publish_certs) and a CRL for each CA that has a certificate but no
 * CRL yet, so that `pkid init` leaves a servable directory (serve's CRL
 * schedule, lifecycle_crl_start, keeps them fresh afterwards). */
static void
main_publish(struct main_ctx *mc)
{
	struct common_error err;
	json_t *cas, *ca;
	size_t i;
	char path[PATH_MAX];
	long next = lifecycle_crl_next_update_seconds(mc->lc);

	if (ca_publish_certs(mc->ca) == -1)
		log_warn("publish: CA certificates not written");
	if ((cas = ca_list(mc->ca, NULL)) == NULL)
		return;
	json_array_foreach(cas, i, ca) {
		const char *id = json_string_value(json_object_get(ca, "id"));
		const char *state = json_string_value(json_object_get(ca,
		    "state"));

		/* disabled and pending-deletion CAs still publish CRLs */
		if (id == NULL || state == NULL || strcmp(state, "pending") == 0)
			continue;
		if (common_path(path, sizeof(path),
		    "%s/public/crl/%s.crl", mc->cf->data_dir, id) == 0 &&
		    access(path, R_OK) == 0)
			continue;
		common_error_clear(&err);
		if (ca_crl_publish(mc->ca, id, next, NULL, NULL, &err) == -1)
			log_warn("publish: CRL of %s: %s", id, err.msg);
	}
	json_decref(cas);
}

/* Opens store, CA core and lifecycle for data_dir. */
static int
main_open(struct main_ctx *mc)
{
	struct ca_config cc;
	struct lifecycle_config lcc;

	if (common_mkdirs(mc->cf->data_dir, 0700) == -1) {
		log_err("init: %s: %s", mc->cf->data_dir, strerror(errno));
		return -1;
	}
	if ((mc->st = store_open(mc->cf->data_dir)) == NULL)
		return -1;
	main_base_url(mc->cf->public_url.http, mc->cf->listen.http, "http",
	    mc->http_url, sizeof(mc->http_url));
	memset(&cc, 0, sizeof(cc));
	cc.data_dir = mc->cf->data_dir;
	cc.master_key_file = mc->cf->ca.master_key_file;
	cc.http_base_url = mc->http_url;
	if ((mc->ca = ca_ctx_new(mc->st, &cc)) == NULL)
		return -1;
	memset(&lcc, 0, sizeof(lcc));
	lcc.conf = mc->cf;
	lcc.default_validity_days = mc->cf->certificates.default_validity_days;
	lcc.default_renew_before_days =
	    mc->cf->certificates.default_renew_before_days;
	if ((mc->lc = lifecycle_new(mc->ca, &lcc)) == NULL)
		return -1;
	return 0;
}

/* Brings DATA to a serving state; each step is skipped when done. */
static int
main_init(struct main_ctx *mc)
{
	struct main_hier h;
	struct main_meta m;
	char path[PATH_MAX];
	int rc;

	if (main_open(mc) == -1)
		return -1;

	mc->issuing_ca_id = store_meta_get(mc->st, NULL, "issuing_ca_id");
	if (mc->issuing_ca_id == NULL) {
		memset(&h, 0, sizeof(h));
		h.cf = mc->cf;
		h.ca = mc->ca;
		rc = store_txn_run(mc->st, main_hier_txn, &h);
		free(h.root_id);
		if (rc != 0) {
			log_err("init: default CA hierarchy: %s",
			    h.err.msg[0] ? h.err.msg : "store failure");
			free(h.issuing_id);
			return -1;
		}
		mc->issuing_ca_id = h.issuing_id;
		log_info("init: created root and issuing CA %s",
		    mc->issuing_ca_id);
	}

	mc->server_cert_id = store_meta_get(mc->st, NULL, "server_cert_id");
	if (mc->server_cert_id == NULL) {
		if ((mc->server_cert_id = main_server_cert_create(mc)) == NULL)
			return -1;
		m.name = "server_cert_id";
		m.value = mc->server_cert_id;
		if (store_txn_run(mc->st, main_meta_txn, &m) != 0)
			return -1;
	}
	if (common_path(path, sizeof(path), "%s/ca-bundle.pem",
	    mc->cf->data_dir) == -1 ||
	    ca_ctx_trust_bundle(mc->ca, mc->issuing_ca_id, path) == -1)
		return -1;
	if (main_init_token(mc) == -1)
		return -1;
	main_publish(mc);
	return 0;
}

static void
main_close(struct main_ctx *mc)
{
	est_free(mc->est);
	acme_free(mc->acme);
	mgmt_free(mc->mgmt);
	/* both run on the jobs base that server_free() frees */
	lifecycle_deploy_stop(mc->lc);
	lifecycle_notify_stop(mc->lc);
	lifecycle_crl_stop(mc->lc);
	server_free(mc->srv);
	lifecycle_free(mc->lc);
	ca_ctx_free(mc->ca);
	store_close(mc->st);
	conf_free(mc->cf);
	free(mc->issuing_ca_id);
	free(mc->server_cert_id);
}

/* ---- serve ---------------------------------------------------------------- */

/* The TLS context of version n of the server's certificate (with its
 * key); the version's serial into serial. NULL on failure (logged). */
static SSL_CTX *
main_tls_load(struct main_ctx *mc, unsigned n, char *serial,
    size_t seriallen)
{
	struct common_error err;
	struct common_buf chain;
	json_t *ver = NULL;
	SSL_CTX *tls = NULL;

	common_error_clear(&err);
	common_buf_init(&chain, 1024 * 1024);
	if ((ver = lifecycle_version_get(mc->lc, mc->server_cert_id, n, true,
	    &err)) == NULL) {
		log_err("serve: server TLS certificate %s version %u: %s",
		    mc->server_cert_id, n, err.msg);
		goto out;
	}
	if (common_buf_addstr(&chain, json_string_value(json_object_get(ver,
	    "certificate"))) == -1 ||
	    common_buf_addstr(&chain, json_string_value(json_object_get(ver,
	    "chain"))) == -1)
		goto out;
	tls = server_tls_ctx((const char *)chain.data,
	    json_string_value(json_object_get(ver, "private_key")));
	snprintf(serial, seriallen, "%s", json_string_value(json_object_get(
	    ver, "serial")) != NULL ? json_string_value(json_object_get(ver,
	    "serial")) : "");
out:
	if (ver != NULL && json_string_value(json_object_get(ver,
	    "private_key")) != NULL)	/* wipe the key before freeing it */
		OPENSSL_cleanse((char *)json_string_value(json_object_get(ver,
		    "private_key")), json_string_length(json_object_get(ver,
		    "private_key")));
	json_decref(ver);
	common_buf_free(&chain);
	return tls;
}

/* Loads the server's TLS certificate, renewing it first when it is within
 * MAIN_SERVER_RENEW_DAYS of expiry. */
static SSL_CTX *
main_tls(struct main_ctx *mc)
{
	struct common_error err;
	json_t *cert = NULL, *renewed = NULL;
	SSL_CTX *tls = NULL;
	json_int_t n, exp;

	common_error_clear(&err);
	if ((cert = lifecycle_cert_get(mc->lc, mc->server_cert_id,
	    &err)) == NULL)
		goto fail;
	exp = json_integer_value(json_object_get(cert, "not_after_epoch"));
	if (exp < common_now() + (json_int_t)(MAIN_SERVER_RENEW_DAYS * 86400)) {
		if ((renewed = lifecycle_cert_renew(mc->lc, mc->server_cert_id,
		    "system:serve", &err)) == NULL)
			goto fail;
		log_info("serve: renewed the server TLS certificate");
		n = json_integer_value(json_object_get(renewed, "version"));
	} else
		n = json_integer_value(json_object_get(cert,
		    "current_version"));
	tls = main_tls_load(mc, (unsigned)n, mc->tls_serial,
	    sizeof(mc->tls_serial));
	goto out;
fail:
	log_err("serve: server TLS certificate %s: %s", mc->server_cert_id,
	    err.msg);
out:
	json_decref(cert);
	json_decref(renewed);
	return tls;
}

/* Jobs thread: when the scheduler renewed the server's TLS certificate
 * (its current version's serial is not the one served), new connections
 * get the new one; connections in flight keep theirs. */
static void
main_tls_refresh(struct main_ctx *mc)
{
	char serial[MAIN_SERIAL_MAX];
	struct common_error err;
	const char *cur;
	json_t *cert;
	SSL_CTX *tls = NULL;
	unsigned n;

	common_error_clear(&err);
	if ((cert = lifecycle_cert_get(mc->lc, mc->server_cert_id,
	    &err)) == NULL) {
		log_warn("serve: server TLS certificate %s: %s",
		    mc->server_cert_id, err.msg);
		return;
	}
	cur = json_string_value(json_object_get(cert, "serial"));
	n = (unsigned)json_integer_value(json_object_get(cert,
	    "current_version"));
	if (cur != NULL && n > 0 && strcmp(cur, mc->tls_serial) != 0 &&
	    (tls = main_tls_load(mc, n, serial, sizeof(serial))) != NULL &&
	    server_tls_reload(mc->srv, tls) == 0) {
		log_info("serve: TLS certificate reloaded: %s version %u, "
		    "serial %s (was %s)", mc->server_cert_id, n, serial,
		    mc->tls_serial);
		snprintf(mc->tls_serial, sizeof(mc->tls_serial), "%s", serial);
	}
	SSL_CTX_free(tls);
	json_decref(cert);
}

static void
main_job_checkpoint(void *arg)
{
	struct main_ctx *mc = arg;

	if (store_checkpoint(mc->st) == -1)
		log_warn("jobs: store checkpoint failed");
}

static void
main_job_tick(void *arg)
{
	struct main_ctx *mc = arg;

	if (lifecycle_tick(mc->lc) == -1)
		log_warn("jobs: lifecycle scan failed");
	if (lifecycle_ca_tick(mc->lc) == -1)
		log_warn("jobs: CA deletion scan failed");
	main_tls_refresh(mc);
}

/* Prints where everything is. Runs as the first job: the jobs thread
 * starts after the listeners are bound, so server_bound() knows the real
 * ports even when the configuration asked for port 0. */
static void
main_banner(void *arg)
{
	struct main_ctx *mc = arg;
	char https[MAIN_URL_MAX], mgmt[MAIN_URL_MAX], http[MAIN_URL_MAX];
	const char *b;

	b = server_bound(mc->srv, SERVER_HTTPS);
	main_base_url(mc->cf->public_url.https, b ? b : mc->cf->listen.https,
	    "https", https, sizeof(https));
	b = server_bound(mc->srv, SERVER_MGMT);
	main_base_url(mc->cf->public_url.mgmt, b ? b : mc->cf->listen.mgmt,
	    "https", mgmt, sizeof(mgmt));
	b = server_bound(mc->srv, SERVER_HTTP);
	main_base_url(mc->cf->public_url.http, b ? b : mc->cf->listen.http,
	    "http", http, sizeof(http));
	printf("pkid is serving\n"
	    "  ACME directory  %s/acme/directory\n"
	    "  EST             %s/.well-known/est/\n"
	    "  management API  %s/api/v1/\n"
	    "  CRL             %s/crl/%s.crl\n"
	    "  CA certificate  %s/ca/%s.crt\n"
	    "  CA bundle       %s/ca-bundle.pem (trust this for https)\n"
	    "  admin token     %s/admin.token\n",
	    https, https, mgmt, http, mc->issuing_ca_id,
	    http, mc->issuing_ca_id, mc->cf->data_dir, mc->cf->data_dir);
	fflush(stdout);
}

/* ---- deferred durability: the store's, for the server's workers ---- */

static int
main_dur_thread_start(void *arg)
{
	return store_defer(arg);
}

static uint64_t
main_dur_pending(void *arg)
{
	return store_defer_pending(arg);
}

static int
main_dur_state(void *arg, uint64_t ticket)
{
	return store_flush_state(arg, ticket);
}

static void
main_dur_request(void *arg, uint64_t ticket)
{
	store_flush_request(arg, ticket);
}

static int
main_dur_wait(void *arg, uint64_t ticket)
{
	return store_flush_wait(arg, ticket);
}

static int
main_dur_subscribe(void *arg, void (*fn)(void *), void *fnarg)
{
	return store_flush_subscribe(arg, fn, fnarg);
}

static void
main_dur_unsubscribe(void *arg, void (*fn)(void *), void *fnarg)
{
	store_flush_unsubscribe(arg, fn, fnarg);
}

static int
main_serve(struct main_ctx *mc)
{
	struct mgmt_config mcfg;
	char https[MAIN_URL_MAX];
	const char *acme_ca;
	SSL_CTX *tls = NULL;
	int rc = -1;

	if (main_init(mc) == -1)
		goto out;
	if ((tls = main_tls(mc)) == NULL)
		goto out;
	if ((mc->srv = server_new(mc->cf, tls)) == NULL)
		goto out;
	server_set_durability(mc->srv, &(struct server_durability){
	    .thread_start = main_dur_thread_start,
	    .pending = main_dur_pending,
	    .state = main_dur_state,
	    .request = main_dur_request,
	    .wait = main_dur_wait,
	    .subscribe = main_dur_subscribe,
	    .unsubscribe = main_dur_unsubscribe,
	    .arg = mc->st });
	memset(&mcfg, 0, sizeof(mcfg));
	mcfg.data_dir = mc->cf->data_dir;
	mcfg.http_base_url = mc->http_url;
	mcfg.conf = mc->cf;
	mcfg.crl_next_update_seconds = lifecycle_crl_next_update_seconds(mc->lc);
	if ((mc->mgmt = mgmt_new(mc->srv, mc->ca, mc->lc, &mcfg)) == NULL)
		goto out;
	main_base_url(mc->cf->public_url.https, mc->cf->listen.https, "https",
	    https, sizeof(https));
	acme_ca = mc->cf->acme.ca_id[0] != '\0' ? mc->cf->acme.ca_id :
	    mc->issuing_ca_id;
	if ((mc->acme = acme_new(mc->srv, mc->lc, mc->cf, https,
	    acme_ca)) == NULL)
		goto out;
	if (mc->cf->est.enabled && (mc->est = est_new(mc->srv, mc->lc, mc->cf,
	    mc->issuing_ca_id)) == NULL)
		goto out;
	if (server_timer(mc->srv, MAIN_CHECKPOINT_SECONDS,
	    main_job_checkpoint, mc) == -1 ||
	    server_timer(mc->srv, mc->cf->lifecycle.scan_interval_seconds,
	    main_job_tick, mc) == -1)
		goto out;
	if (lifecycle_notify_start(mc->lc, server_jobs_base(mc->srv)) == -1 ||
	    lifecycle_crl_start(mc->lc, server_jobs_base(mc->srv)) == -1 ||
	    lifecycle_deploy_start(mc->lc, server_jobs_base(mc->srv)) == -1)
		goto out;
	if (server_job(mc->srv, main_banner, mc) == -1)
		goto out;
	rc = server_run(mc->srv);
out:
	SSL_CTX_free(tls);
	return rc;
}

/* ---- token ---------------------------------------------------------------- */

/* "30d", "12h", "15m", "45s" or plain seconds; -1 when malformed. */
static long
main_ttl_parse(const char *s)
{
	char *end;
	long v, mult = 1;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || v <= 0)
		return -1;
	if (*end != '\0') {
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	if (v > 3650L * 86400 / mult)
		return -1;
	return v * mult;
}

static int
main_token(const char *data_dir, const char *role_s, const char *ttl_s,
    const char *subject, double default_ttl_days)
{
	enum mgmt_role role;
	long ttl = (long)(default_ttl_days * 86400);
	char *tok;

	if (mgmt_role_parse(role_s, &role) == -1) {
		fprintf(stderr, "pkid: --role must be admin, operator or "
		    "auditor\n");
		return 2;
	}
	if (ttl_s != NULL && (ttl = main_ttl_parse(ttl_s)) == -1) {
		fprintf(stderr, "pkid: --ttl %s: expected N[s|m|h|d]\n", ttl_s);
		return 2;
	}
	if ((tok = mgmt_token_mint(data_dir, subject, role, ttl)) == NULL)
		return 1;
	printf("%s\n", tok);
	free(tok);
	return 0;
}

/* ---- main ---------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "role", required_argument, NULL, 'r' },
		{ "ttl", required_argument, NULL, 't' },
		{ "subject", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct main_ctx mc;
	const char *cmd, *config = NULL, *data_dir = NULL, *role = NULL;
	const char *ttl = NULL, *subject = NULL;
	char err[512];
	enum common_log_level level;
	int ch, rc;

	if (argc < 2) {
		main_usage();
		return 2;
	}
	cmd = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': config = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'r': role = optarg; break;
		case 't': ttl = optarg; break;
		case 's': subject = optarg; break;
		default: main_usage(); return 2;
		}
	}
	if (optind != argc) {
		main_usage();
		return 2;
	}
	if (config == NULL && strcmp(cmd, "serve") == 0)
		config = "conf/pkid.json";

	memset(&mc, 0, sizeof(mc));
	mc.cf = config != NULL ? conf_load(config, err, sizeof(err)) :
	    conf_defaults();
	if (mc.cf == NULL) {
		fprintf(stderr, "pkid: %s\n", config != NULL ? err :
		    "out of memory");
		return 1;
	}
	if (common_log_level_parse(mc.cf->log_level, &level) == 0)
		common_log_set_level(level);
	if (data_dir != NULL) {
		free(mc.cf->data_dir);
		if ((mc.cf->data_dir = strdup(data_dir)) == NULL)
			return 1;
	}

	if (strcmp(cmd, "serve") == 0) {
		rc = main_serve(&mc) == 0 ? 0 : 1;
	} else if (strcmp(cmd, "init") == 0 && data_dir != NULL) {
		rc = main_init(&mc) == 0 ? 0 : 1;
		if (rc == 0)
			printf("initialised %s: issuing CA %s, CA bundle "
			    "%s/ca-bundle.pem, admin token %s/admin.token\n",
			    mc.cf->data_dir, mc.issuing_ca_id, mc.cf->data_dir,
			    mc.cf->data_dir);
	} else if (strcmp(cmd, "token") == 0 && data_dir != NULL &&
	    role != NULL) {
		/* the token's subject defaults to its role's name */
		rc = main_token(data_dir, role, ttl,
		    subject != NULL ? subject : role,
		    mc.cf->tokens.default_ttl_days);
	} else {
		main_usage();
		rc = 2;
	}
	main_close(&mc);
	return rc;
}
