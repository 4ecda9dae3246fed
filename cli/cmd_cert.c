/*
 * cli/cmd_cert.c — the "cert" commands, mapped onto /api/v1/certificates:
 * the inventory (list, show, versions), the three ways to create one
 * (create = managed, sign = external CSR, import), fetching a version
 * with its chain and key (get), renew, promote, revoke, and deletion
 * (scheduled, at once with --now, or cancelled).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/cli.h"

#define CERT_ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))
#define CERT_VERSION_MAX	INT32_MAX
#define CERT_FILE_MODE		0644	/* certificate and chain */
#define CERT_KEY_MODE		0600	/* private key */

static const struct cli_column cert_columns[] = {
	{ "ID", "id" },
	{ "NAME", "name" },
	{ "MODE", "mode" },
	{ "PROFILE", "profile" },
	{ "STAGE", "stage|current.stage" },
	{ "NOT_AFTER", "not_after|current.not_after" },
	{ "CA", "ca_id" },
};

static const struct cli_column version_columns[] = {
	{ "VERSION", "version" },
	{ "STAGE", "stage" },
	{ "SERIAL", "serial" },
	{ "NOT_BEFORE", "not_before" },
	{ "NOT_AFTER", "not_after" },
	{ "REVOKED_AT", "revoked_at" },
	{ "REASON", "revocation_reason" },
};

/* RFC 5280 section 5.3.1 reason names, as the API takes them. */
static const char *const cert_reasons[] = {
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold",
	"privilegeWithdrawn", "aACompromise", NULL
};

/* Filters become query parameters; --expiring-within-days is checked
 * here and sent as typed. */
static enum cli_exit
cert_list(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX] = "/certificates";
	const char *ca = cli_arg(ctx, CLI_OPT_CA);
	const char *exp = cli_arg(ctx, CLI_OPT_EXPIRING);
	enum cli_exit rc;
	char *end;
	double d;

	if (ca != NULL && (rc = cli_check_id(ctx, "CA", ca)) != CLI_EXIT_OK)
		return rc;
	if (exp != NULL) {
		errno = 0;
		d = strtod(exp, &end);
		if (errno != 0 || end == exp || *end != '\0' || !isfinite(d) ||
		    d < 0)
			return cli_usage_err(ctx, "--expiring-within-days: want "
			    "a number of days >= 0");
	}
	if (cli_query_add(path, sizeof(path), "ca_id", ca) == -1 ||
	    cli_query_add(path, sizeof(path), "stage",
	    cli_arg(ctx, CLI_OPT_STAGE)) == -1 ||
	    cli_query_add(path, sizeof(path), "name",
	    cli_arg(ctx, CLI_OPT_NAME)) == -1 ||
	    cli_query_add(path, sizeof(path), "expiring_within_days",
	    exp) == -1) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	return cli_list_run(ctx, path, "certificates", cert_columns,
	    CERT_ARRAY_LEN(cert_columns));
}

/* Starts a creation request: {"name", "mode"} plus "ca_id" and "profile"
 * when with_ca. NULL (message printed) on failure. */
static json_t *
cert_body_new(const struct cli_ctx *ctx, const char *mode, bool with_ca)
{
	json_t *body;

	if ((body = json_object()) == NULL ||
	    cli_set_str(ctx, body, "name", CLI_OPT_NAME) == -1 ||
	    json_object_set_new(body, "mode", json_string(mode)) == -1 ||
	    (with_ca && (cli_set_str(ctx, body, "ca_id", CLI_OPT_CA) == -1 ||
	    cli_set_str(ctx, body, "profile", CLI_OPT_PROFILE) == -1))) {
		cli_err("cannot build the request");
		json_decref(body);
		return NULL;
	}
	return body;
}

/* Adds "sans": [every --san] when at least one was given. */
static int
cert_sans_set(const struct cli_ctx *ctx, json_t *body)
{
	json_t *sans = NULL;
	const char *v;
	size_t it = 0;
	int rc = -1;

	while ((v = cli_arg_next(ctx, CLI_OPT_SAN, &it)) != NULL)
		if ((sans == NULL && (sans = json_array()) == NULL) ||
		    json_array_append_new(sans, json_string(v)) == -1)
			goto out;
	if (sans != NULL && json_object_set(body, "sans", sans) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		cli_err("--san: not valid UTF-8 text, or out of memory");
	json_decref(sans);
	return rc;
}

/* Managed certificate: the server generates the key. Needs at least one
 * --san or a --subject (a certificate must name something). */
static enum cli_exit
cert_create(struct cli_ctx *ctx)
{
	json_t *body = NULL, *renewal = NULL;
	enum cli_exit rc;

	if ((rc = cli_require(ctx, CLI_OPT_BIT(CLI_OPT_NAME) |
	    CLI_OPT_BIT(CLI_OPT_CA) | CLI_OPT_BIT(CLI_OPT_PROFILE))) !=
	    CLI_EXIT_OK ||
	    (rc = cli_check_id(ctx, "CA", cli_arg(ctx, CLI_OPT_CA))) !=
	    CLI_EXIT_OK)
		goto out;
	if (cli_arg(ctx, CLI_OPT_SAN) == NULL &&
	    cli_arg(ctx, CLI_OPT_SUBJECT) == NULL) {
		rc = cli_usage_err(ctx, "give at least one --san (or a "
		    "--subject)");
		goto out;
	}
	rc = CLI_EXIT_ERROR;
	if ((body = cert_body_new(ctx, "managed", true)) == NULL ||
	    cli_set_str(ctx, body, "subject", CLI_OPT_SUBJECT) == -1 ||
	    cert_sans_set(ctx, body) == -1 ||
	    cli_set_str(ctx, body, "key_algorithm", CLI_OPT_KEY_ALGORITHM) ==
	    -1)
		goto out;
	if ((rc = cli_set_days(ctx, body, "validity_days",
	    CLI_OPT_VALIDITY_DAYS)) != CLI_EXIT_OK)
		goto out;
	if (cli_arg(ctx, CLI_OPT_RENEW_BEFORE) != NULL) {
		if ((renewal = json_object()) == NULL ||
		    json_object_set(body, "renewal", renewal) == -1) {
			cli_err("out of memory");
			rc = CLI_EXIT_ERROR;
			goto out;
		}
		if ((rc = cli_set_days(ctx, renewal, "renew_before_days",
		    CLI_OPT_RENEW_BEFORE)) != CLI_EXIT_OK)
			goto out;
	}
	rc = cli_object_run(ctx, "POST", "/certificates", body);
out:
	json_decref(renewal);
	json_decref(body);
	return rc;
}

static enum cli_exit
cert_sign(struct cli_ctx *ctx)
{
	json_t *body = NULL;
	enum cli_exit rc;

	if ((rc = cli_require(ctx, CLI_OPT_BIT(CLI_OPT_NAME) |
	    CLI_OPT_BIT(CLI_OPT_CA) | CLI_OPT_BIT(CLI_OPT_PROFILE) |
	    CLI_OPT_BIT(CLI_OPT_CSR))) != CLI_EXIT_OK ||
	    (rc = cli_check_id(ctx, "CA", cli_arg(ctx, CLI_OPT_CA))) !=
	    CLI_EXIT_OK)
		goto out;
	if ((body = cert_body_new(ctx, "external", true)) == NULL) {
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	if ((rc = cli_set_days(ctx, body, "validity_days",
	    CLI_OPT_VALIDITY_DAYS)) != CLI_EXIT_OK ||
	    (rc = cli_set_file(ctx, body, "csr", CLI_OPT_CSR, true)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = cli_object_run(ctx, "POST", "/certificates", body);
out:
	json_decref(body);
	return rc;
}

static enum cli_exit
cert_import(struct cli_ctx *ctx)
{
	json_t *body = NULL;
	enum cli_exit rc;

	if ((rc = cli_require(ctx, CLI_OPT_BIT(CLI_OPT_NAME) |
	    CLI_OPT_BIT(CLI_OPT_CERT) | CLI_OPT_BIT(CLI_OPT_KEY))) !=
	    CLI_EXIT_OK)
		goto out;
	if ((body = cert_body_new(ctx, "imported", false)) == NULL) {
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	if ((rc = cli_set_file(ctx, body, "certificate", CLI_OPT_CERT,
	    true)) != CLI_EXIT_OK ||
	    (rc = cli_set_file(ctx, body, "private_key", CLI_OPT_KEY,
	    true)) != CLI_EXIT_OK ||
	    (rc = cli_set_file(ctx, body, "chain", CLI_OPT_CHAIN, false)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = cli_object_run(ctx, "POST", "/certificates", body);
out:
	json_decref(body);
	return rc;
}

static enum cli_exit
cert_show(struct cli_ctx *ctx)
{
	return cli_id_object_run(ctx, "certificate", "GET",
	    "/certificates/%s");
}

static enum cli_exit
cert_versions(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	json_t *doc = NULL;
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, "certificate", path, sizeof(path),
	    "/certificates/%s/versions")) != CLI_EXIT_OK)
		return rc;
	rc = cli_http_call(ctx->http, "GET", path, NULL, true, &doc);
	if (rc == CLI_EXIT_OK)
		rc = cli_out_list(ctx, doc, "versions", version_columns,
		    CERT_ARRAY_LEN(version_columns));
	json_decref(doc);
	return rc;
}

/*
 * The version a command acts on: --version N, or else the certificate's
 * current_version, asked from the server.
 */
static enum cli_exit
cert_version_pick(struct cli_ctx *ctx, const char *id, long long *n)
{
	char path[CLI_PATH_MAX];
	json_t *cert = NULL, *cur;
	bool given;
	enum cli_exit rc;

	if ((rc = cli_get_int(ctx, CLI_OPT_VERSION, 1, CERT_VERSION_MAX, n,
	    &given)) != CLI_EXIT_OK || given)
		return rc;
	if (common_path(path, sizeof(path), "/certificates/%s", id) == -1) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	if ((rc = cli_http_call(ctx->http, "GET", path, NULL, true, &cert)) !=
	    CLI_EXIT_OK)
		goto out;
	cur = json_object_get(cert, "current_version");
	if (!json_is_integer(cur) || json_integer_value(cur) < 1 ||
	    json_integer_value(cur) > CERT_VERSION_MAX) {
		cli_err("certificate %s has no current version; give "
		    "--version N", id);
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	*n = json_integer_value(cur);
out:
	json_decref(cert);
	return rc;
}

/* Certificate PEM followed by the chain PEM, each ending in a newline.
 * NULL (message printed) when the version holds no certificate. */
static char *
cert_pem_join(const json_t *ver, size_t *len)
{
	struct common_buf b;
	const char *cert, *chain;

	cert = json_string_value(json_object_get(ver, "certificate"));
	chain = json_string_value(json_object_get(ver, "chain"));
	if (cert == NULL || cert[0] == '\0') {
		cli_err("the answer holds no certificate");
		return NULL;
	}
	common_buf_init(&b, CLI_BODY_MAX);
	if (common_buf_addstr(&b, cert) == -1 ||
	    (cert[strlen(cert) - 1] != '\n' && common_buf_addstr(&b, "\n") ==
	    -1) ||
	    (chain != NULL && chain[0] != '\0' &&
	    (common_buf_addstr(&b, chain) == -1 ||
	    (chain[strlen(chain) - 1] != '\n' &&
	    common_buf_addstr(&b, "\n") == -1)))) {
		cli_err("out of memory");
		common_buf_free(&b);
		return NULL;
	}
	return common_buf_steal(&b, len);
}

/*
 * cert get: fetches one version. --out gets certificate + chain (0644),
 * --key-out the private key (0600, asked with include_private_key=true;
 * an answer without one is an error and nothing is written). Without
 * --out the PEM goes to stdout; with --json the answer does, minus the
 * private key, which only ever goes to the --key-out file.
 */
static enum cli_exit
cert_get(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	const char *id = cli_operand(ctx, 0), *key = NULL;
	const char *out = cli_arg(ctx, CLI_OPT_OUT);
	const char *keyout = cli_arg(ctx, CLI_OPT_KEY_OUT);
	json_t *ver = NULL;
	char *pem = NULL;
	size_t pemlen = 0;
	long long n;
	enum cli_exit rc;

	if ((rc = cli_check_id(ctx, "certificate", id)) != CLI_EXIT_OK)
		goto out;
	if (out != NULL && keyout != NULL && strcmp(out, keyout) == 0) {
		rc = cli_usage_err(ctx, "--out and --key-out name the same file");
		goto out;
	}
	if ((rc = cert_version_pick(ctx, id, &n)) != CLI_EXIT_OK)
		goto out;
	if (common_path(path, sizeof(path), "/certificates/%s/versions/%lld%s",
	    id, n, keyout != NULL ? "?include_private_key=true" : "") == -1) {
		cli_err("request path too long");
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if ((rc = cli_http_call(ctx->http, "GET", path, NULL, true, &ver)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_ERROR;
	if (keyout != NULL && ((key = json_string_value(json_object_get(ver,
	    "private_key"))) == NULL || key[0] == '\0')) {
		cli_err("certificate %s version %lld: the answer holds no "
		    "private key (only managed certificates, admin token)", id,
		    n);
		goto out;
	}
	if ((pem = cert_pem_join(ver, &pemlen)) == NULL)
		goto out;
	if (keyout != NULL &&
	    (rc = cli_out_file(keyout, key, strlen(key), CERT_KEY_MODE)) !=
	    CLI_EXIT_OK)
		goto out;
	if (out != NULL &&
	    (rc = cli_out_file(out, pem, pemlen, CERT_FILE_MODE)) !=
	    CLI_EXIT_OK)
		goto out;
	if (ctx->conf.json) {
		json_object_del(ver, "private_key");
		rc = cli_out_json(ver) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
	} else if (out == NULL)
		rc = cli_out_raw(pem, pemlen) == 0 ? CLI_EXIT_OK :
		    CLI_EXIT_ERROR;
	else
		rc = CLI_EXIT_OK;
out:
	free(pem);
	json_decref(ver);
	return rc;
}

static enum cli_exit
cert_renew(struct cli_ctx *ctx)
{
	return cli_id_object_run(ctx, "certificate", "POST",
	    "/certificates/%s/renew");
}

/* The reason is checked against RFC 5280 names locally; the version
 * defaults to the current one. */
static enum cli_exit
cert_revoke(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	const char *id = cli_operand(ctx, 0), *reason;
	json_t *body = NULL;
	long long n;
	size_t i;
	enum cli_exit rc;

	if ((rc = cli_check_id(ctx, "certificate", id)) != CLI_EXIT_OK)
		goto out;
	if ((reason = cli_arg(ctx, CLI_OPT_REASON)) == NULL)
		reason = CLI_REVOKE_REASON_DEFAULT;
	for (i = 0; cert_reasons[i] != NULL &&
	    strcmp(cert_reasons[i], reason) != 0; i++)
		;
	if (cert_reasons[i] == NULL) {
		rc = cli_usage_err(ctx, "--reason: want one of unspecified, "
		    "keyCompromise, cACompromise, affiliationChanged, "
		    "superseded, cessationOfOperation, certificateHold, "
		    "privilegeWithdrawn, aACompromise");
		goto out;
	}
	if ((rc = cert_version_pick(ctx, id, &n)) != CLI_EXIT_OK)
		goto out;
	if (common_path(path, sizeof(path),
	    "/certificates/%s/versions/%lld/revoke", id, n) == -1) {
		cli_err("request path too long");
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if ((body = json_pack("{s:s}", "reason", reason)) == NULL) {
		cli_err("out of memory");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	rc = cli_object_run(ctx, "POST", path, body);
out:
	json_decref(body);
	return rc;
}

/* Makes a version current by hand: --version N is required (promoting
 * "the current version" would do nothing). */
static enum cli_exit
cert_promote(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	const char *id = cli_operand(ctx, 0);
	long long n;
	bool given;
	enum cli_exit rc;

	if ((rc = cli_check_id(ctx, "certificate", id)) != CLI_EXIT_OK ||
	    (rc = cli_require(ctx, CLI_OPT_BIT(CLI_OPT_VERSION))) !=
	    CLI_EXIT_OK ||
	    (rc = cli_get_int(ctx, CLI_OPT_VERSION, 1, CERT_VERSION_MAX, &n,
	    &given)) != CLI_EXIT_OK)
		return rc;
	if (common_path(path, sizeof(path),
	    "/certificates/%s/versions/%lld/promote", id, n) == -1) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	return cli_object_run(ctx, "POST", path, NULL);
}

/*
 * cert delete: schedules the deletion (the server answers 202 with the
 * date it happens) or, with --now (admin token), deletes at once.
 */
static enum cli_exit
cert_delete(struct cli_ctx *ctx)
{
	return cli_deletion_run(ctx, "certificate", "/certificates/%s", NULL);
}

static enum cli_exit
cert_cancel_deletion(struct cli_ctx *ctx)
{
	return cli_id_object_run(ctx, "certificate", "POST",
	    "/certificates/%s/cancel-deletion");
}

const struct cli_command cli_cert_commands[] = {
	{ "cert", "list", 0, CLI_OPTS_LIST | CLI_OPT_BIT(CLI_OPT_CA) |
	  CLI_OPT_BIT(CLI_OPT_STAGE) | CLI_OPT_BIT(CLI_OPT_NAME) |
	  CLI_OPT_BIT(CLI_OPT_EXPIRING),
	  "[--ca ID] [--stage S] [--name N] [--expiring-within-days D] "
	  "[--limit N] [--page-token T] [--all]", cert_list },
	{ "cert", "create", 0, CLI_OPT_BIT(CLI_OPT_NAME) |
	  CLI_OPT_BIT(CLI_OPT_CA) | CLI_OPT_BIT(CLI_OPT_PROFILE) |
	  CLI_OPT_BIT(CLI_OPT_SAN) | CLI_OPT_BIT(CLI_OPT_SUBJECT) |
	  CLI_OPT_BIT(CLI_OPT_KEY_ALGORITHM) |
	  CLI_OPT_BIT(CLI_OPT_VALIDITY_DAYS) |
	  CLI_OPT_BIT(CLI_OPT_RENEW_BEFORE),
	  "--name N --ca ID --profile P --san S... [--subject S] "
	  "[--key-algorithm A] [--validity-days D] [--renew-before-days D]",
	  cert_create },
	{ "cert", "sign", 0, CLI_OPT_BIT(CLI_OPT_NAME) |
	  CLI_OPT_BIT(CLI_OPT_CA) | CLI_OPT_BIT(CLI_OPT_PROFILE) |
	  CLI_OPT_BIT(CLI_OPT_CSR) | CLI_OPT_BIT(CLI_OPT_VALIDITY_DAYS),
	  "--name N --ca ID --profile P --csr F [--validity-days D]",
	  cert_sign },
	{ "cert", "import", 0, CLI_OPT_BIT(CLI_OPT_NAME) |
	  CLI_OPT_BIT(CLI_OPT_CERT) | CLI_OPT_BIT(CLI_OPT_KEY) |
	  CLI_OPT_BIT(CLI_OPT_CHAIN),
	  "--name N --cert F --key F [--chain F]", cert_import },
	{ "cert", "show", 1, 0, "ID", cert_show },
	{ "cert", "versions", 1, 0, "ID", cert_versions },
	{ "cert", "get", 1, CLI_OPT_BIT(CLI_OPT_VERSION) |
	  CLI_OPT_BIT(CLI_OPT_OUT) | CLI_OPT_BIT(CLI_OPT_KEY_OUT),
	  "ID [--version N] [--out F] [--key-out F]", cert_get },
	{ "cert", "renew", 1, 0, "ID", cert_renew },
	{ "cert", "promote", 1, CLI_OPT_BIT(CLI_OPT_VERSION),
	  "ID --version N", cert_promote },
	{ "cert", "revoke", 1, CLI_OPT_BIT(CLI_OPT_VERSION) |
	  CLI_OPT_BIT(CLI_OPT_REASON), "ID [--version N] [--reason R]",
	  cert_revoke },
	{ "cert", "delete", 1, CLI_OPT_BIT(CLI_OPT_NOW), "ID [--now]",
	  cert_delete },
	{ "cert", "cancel-deletion", 1, 0, "ID", cert_cancel_deletion },
	{ NULL, NULL, 0, 0, NULL, NULL },
};
