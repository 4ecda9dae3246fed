/*
 * cli/cmd_ca.c — the "ca" commands: list, show, create, bundle, crl, csr,
 * import-cert, renew, disable, enable, delete and cancel-deletion, mapped
 * onto /api/v1/cas.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CA_ARRAY_LEN(a)		(sizeof(a) / sizeof((a)[0]))
#define CA_PATH_LEN_MAX		INT32_MAX
#define CA_FILE_MODE		0644	/* bundles and CSRs are public */

static const struct cli_column ca_columns[] = {
	{ "ID", "id" },
	{ "NAME", "name" },
	{ "TYPE", "type" },
	{ "STATE", "state" },
	{ "KEY", "key_algorithm" },
	{ "NOT_AFTER", "not_after" },
	{ "PARENT", "parent_id" },
};

static const char *const ca_types[] = {
	"root", "subordinate", "subordinate-of-external", NULL
};

static enum cli_exit
ca_list(struct cli_ctx *ctx)
{
	return cli_list_run(ctx, "/cas", "cas", ca_columns,
	    CA_ARRAY_LEN(ca_columns));
}

static enum cli_exit
ca_show(struct cli_ctx *ctx)
{
	return cli_id_object_run(ctx, "CA", "GET", "/cas/%s");
}

/* Builds the array of every value of a repeatable option, or NULL when
 * none was given; *bad is set on an allocation or UTF-8 failure. */
static json_t *
ca_strings(const struct cli_ctx *ctx, enum cli_opt opt, bool *bad)
{
	json_t *a = NULL;
	const char *v;
	size_t it = 0;

	while ((v = cli_arg_next(ctx, opt, &it)) != NULL) {
		if ((a == NULL && (a = json_array()) == NULL) ||
		    json_array_append_new(a, json_string(v)) == -1) {
			cli_err("%s: not valid UTF-8 text", cli_opt_name(opt));
			json_decref(a);
			*bad = true;
			return NULL;
		}
	}
	return a;
}

/* Adds "policy": {"dns_suffixes", "ip_ranges"} when either was given. */
static enum cli_exit
ca_policy_set(const struct cli_ctx *ctx, json_t *body)
{
	json_t *policy = NULL, *dns, *ip;
	bool bad = false;
	enum cli_exit rc = CLI_EXIT_ERROR;

	dns = ca_strings(ctx, CLI_OPT_DNS_SUFFIX, &bad);
	ip = ca_strings(ctx, CLI_OPT_IP_RANGE, &bad);
	if (bad)
		goto out;
	if (dns == NULL && ip == NULL) {
		rc = CLI_EXIT_OK;
		goto out;
	}
	if ((policy = json_object()) == NULL ||
	    (dns != NULL && json_object_set(policy, "dns_suffixes", dns) ==
	    -1) ||
	    (ip != NULL && json_object_set(policy, "ip_ranges", ip) == -1) ||
	    json_object_set(body, "policy", policy) == -1) {
		cli_err("policy: out of memory");
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	json_decref(dns);
	json_decref(ip);
	json_decref(policy);
	return rc;
}

/* Prints the next steps for a CA waiting for its external issuer. */
static void
ca_pending_hint(const json_t *ca)
{
	const char *id = json_string_value(json_object_get(ca, "id"));
	char *clean;

	if (id == NULL || (clean = cli_clean(id)) == NULL)
		return;
	fflush(stdout);
	fprintf(stderr, "%s: CA %s is pending: have the external CA sign its "
	    "CSR (%s ca csr %s --out F), then %s ca import-cert %s --cert "
	    "CERT [--chain CHAIN]\n", CLI_PROG, clean, CLI_PROG, clean,
	    CLI_PROG, clean);
	free(clean);
}

/*
 * Checks what the API documents as required (name, type, subject; an
 * issuer for "subordinate") before sending, so a typo costs no round
 * trip; values are left to the server.
 */
static enum cli_exit
ca_create(struct cli_ctx *ctx)
{
	json_t *body = NULL, *ca = NULL;
	const char *type, *issuer, *st;
	long long path_len;
	bool given;
	size_t i;
	enum cli_exit rc;

	if ((rc = cli_require(ctx, CLI_OPT_BIT(CLI_OPT_NAME) |
	    CLI_OPT_BIT(CLI_OPT_TYPE) | CLI_OPT_BIT(CLI_OPT_SUBJECT))) !=
	    CLI_EXIT_OK)
		goto out;
	type = cli_arg(ctx, CLI_OPT_TYPE);
	for (i = 0; ca_types[i] != NULL && strcmp(ca_types[i], type) != 0; i++)
		;
	if (ca_types[i] == NULL) {
		rc = cli_usage_err(ctx, "--type: want root, subordinate or "
		    "subordinate-of-external");
		goto out;
	}
	issuer = cli_arg(ctx, CLI_OPT_ISSUER);
	if (strcmp(type, "subordinate") == 0 && issuer == NULL) {
		rc = cli_usage_err(ctx, "a subordinate CA needs --issuer");
		goto out;
	}
	if (issuer != NULL && (rc = cli_check_id(ctx, "issuer CA", issuer)) !=
	    CLI_EXIT_OK)
		goto out;
	if ((rc = cli_get_int(ctx, CLI_OPT_PATH_LEN, 0, CA_PATH_LEN_MAX,
	    &path_len, &given)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_ERROR;
	if ((body = json_object()) == NULL ||
	    cli_set_str(ctx, body, "name", CLI_OPT_NAME) == -1 ||
	    cli_set_str(ctx, body, "type", CLI_OPT_TYPE) == -1 ||
	    cli_set_str(ctx, body, "issuer_ca_id", CLI_OPT_ISSUER) == -1 ||
	    cli_set_str(ctx, body, "subject", CLI_OPT_SUBJECT) == -1 ||
	    cli_set_str(ctx, body, "key_backend", CLI_OPT_KEY_BACKEND) == -1)
		goto out;
	/* The API requires key_algorithm; the CLI supplies a default. */
	if (json_object_set_new(body, "key_algorithm", json_string(
	    cli_arg(ctx, CLI_OPT_KEY_ALGORITHM) != NULL ?
	    cli_arg(ctx, CLI_OPT_KEY_ALGORITHM) : CLI_CA_KEY_DEFAULT)) == -1 ||
	    (given && json_object_set_new(body, "path_len",
	    json_integer(path_len)) == -1)) {
		cli_err("--key-algorithm: not valid UTF-8 text, or out of "
		    "memory");
		goto out;
	}
	if ((rc = cli_set_days(ctx, body, "validity_days",
	    CLI_OPT_VALIDITY_DAYS)) != CLI_EXIT_OK ||
	    (rc = ca_policy_set(ctx, body)) != CLI_EXIT_OK)
		goto out;
	if ((rc = cli_http_call(ctx->http, "POST", "/cas", body, true, &ca)) !=
	    CLI_EXIT_OK || (rc = cli_out_single(ctx, ca)) != CLI_EXIT_OK)
		goto out;
	st = json_string_value(json_object_get(ca, "state"));
	if (!ctx->conf.json && st != NULL && strcmp(st, "pending") == 0)
		ca_pending_hint(ca);
out:
	json_decref(ca);
	json_decref(body);
	return rc;
}

/* Writes text to --out (mode 0644) or, without --out, prints it. */
static enum cli_exit
ca_emit(const struct cli_ctx *ctx, const char *text)
{
	const char *out = cli_arg(ctx, CLI_OPT_OUT);

	if (out != NULL)
		return cli_out_file(out, text, strlen(text), CA_FILE_MODE);
	return cli_out_raw(text, strlen(text)) == 0 ? CLI_EXIT_OK :
	    CLI_EXIT_ERROR;
}

/* The bundle answer is PEM, not JSON: it is printed or written as is,
 * with or without --json. */
static enum cli_exit
ca_bundle(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	json_t *pem = NULL;
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, "CA", path, sizeof(path),
	    "/cas/%s/bundle")) != CLI_EXIT_OK)
		return rc;
	if ((rc = cli_http_call(ctx->http, "GET", path, NULL, false, &pem)) !=
	    CLI_EXIT_OK)
		goto out;
	if (pem == NULL) {
		cli_err("the server answered an empty bundle");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	rc = ca_emit(ctx, json_string_value(pem));
out:
	json_decref(pem);
	return rc;
}

static enum cli_exit
ca_crl(struct cli_ctx *ctx)
{
	static const char *const fields[] = {
		"crl_number", "url", "next_update", NULL
	};
	char path[CLI_PATH_MAX];
	json_t *crl = NULL;
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, "CA", path, sizeof(path), "/cas/%s/crl")) !=
	    CLI_EXIT_OK)
		return rc;
	if ((rc = cli_http_call(ctx->http, "POST", path, NULL, true, &crl)) !=
	    CLI_EXIT_OK)
		goto out;
	if (ctx->conf.json)
		rc = cli_out_json(crl) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
	else if (!json_is_object(crl)) {
		cli_err("the answer is not a JSON object");
		rc = CLI_EXIT_ERROR;
	} else
		rc = cli_out_fields(crl, fields) == 0 ? CLI_EXIT_OK :
		    CLI_EXIT_ERROR;
out:
	json_decref(crl);
	return rc;
}

static enum cli_exit
ca_csr(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	json_t *ans = NULL;
	const char *csr;
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, "CA", path, sizeof(path), "/cas/%s/csr")) !=
	    CLI_EXIT_OK)
		return rc;
	if ((rc = cli_http_call(ctx->http, "GET", path, NULL, true, &ans)) !=
	    CLI_EXIT_OK)
		goto out;
	if ((csr = json_string_value(json_object_get(ans, "csr"))) == NULL) {
		cli_err("the answer holds no csr");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	if (ctx->conf.json) {
		if (cli_arg(ctx, CLI_OPT_OUT) != NULL &&
		    (rc = ca_emit(ctx, csr)) != CLI_EXIT_OK)
			goto out;
		rc = cli_out_json(ans) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
	} else
		rc = ca_emit(ctx, csr);
out:
	json_decref(ans);
	return rc;
}

static enum cli_exit
ca_import_cert(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	json_t *body = NULL;
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, "CA", path, sizeof(path),
	    "/cas/%s/certificate")) != CLI_EXIT_OK)
		return rc;
	if ((body = json_object()) == NULL) {
		cli_err("out of memory");
		return CLI_EXIT_ERROR;
	}
	if ((rc = cli_set_file(ctx, body, "certificate", CLI_OPT_CERT,
	    true)) != CLI_EXIT_OK ||
	    (rc = cli_set_file(ctx, body, "chain", CLI_OPT_CHAIN, false)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = cli_object_run(ctx, "POST", path, body);
out:
	json_decref(body);
	return rc;
}

/*
 * POST /cas/ID/renew: a new CA certificate version; --reissue-leaves
 * also renews the CA's managed leaves, and the answer's "reissue"
 * counts are printed after the CA.
 */
static enum cli_exit
ca_renew(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	json_t *body = NULL, *ca = NULL, *re;
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, "CA", path, sizeof(path),
	    "/cas/%s/renew")) != CLI_EXIT_OK)
		return rc;
	if ((body = json_object()) == NULL ||
	    json_object_set_new(body, "new_key", json_boolean(cli_arg(ctx,
	    CLI_OPT_NEW_KEY) != NULL)) == -1 ||
	    json_object_set_new(body, "reissue_leaves", json_boolean(
	    cli_arg(ctx, CLI_OPT_REISSUE_LEAVES) != NULL)) == -1) {
		cli_err("out of memory");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	if ((rc = cli_set_days(ctx, body, "validity_days",
	    CLI_OPT_VALIDITY_DAYS)) != CLI_EXIT_OK)
		goto out;
	if ((rc = cli_http_call(ctx->http, "POST", path, body, true, &ca)) !=
	    CLI_EXIT_OK || (rc = cli_out_single(ctx, ca)) != CLI_EXIT_OK)
		goto out;
	re = json_object_get(ca, "reissue");
	if (!ctx->conf.json && json_is_object(re)) {
		fflush(stdout);
		fprintf(stderr, "%s: leaves re-issued: %lld renewed, %lld "
		    "failed, %lld skipped\n", CLI_PROG,
		    (long long)json_integer_value(json_object_get(re,
		    "renewed")), (long long)json_integer_value(
		    json_object_get(re, "failed")), (long long)
		    json_integer_value(json_object_get(re, "skipped")));
		if (json_integer_value(json_object_get(re, "failed")) > 0 ||
		    json_object_get(re, "error") != NULL)
			rc = CLI_EXIT_ERROR;
	}
out:
	json_decref(ca);
	json_decref(body);
	return rc;
}

static enum cli_exit
ca_disable(struct cli_ctx *ctx)
{
	return cli_id_object_run(ctx, "CA", "POST", "/cas/%s/disable");
}

static enum cli_exit
ca_enable(struct cli_ctx *ctx)
{
	return cli_id_object_run(ctx, "CA", "POST", "/cas/%s/enable");
}

/* DELETE /cas/ID: scheduled (202, the date is printed) or, with --now,
 * at once (204). */
static enum cli_exit
ca_delete(struct cli_ctx *ctx)
{
	return cli_deletion_run(ctx, "CA", "/cas/%s", "CA");
}

static enum cli_exit
ca_cancel_deletion(struct cli_ctx *ctx)
{
	return cli_id_object_run(ctx, "CA", "POST", "/cas/%s/cancel-deletion");
}

const struct cli_command cli_ca_commands[] = {
	{ "ca", "list", 0, CLI_OPTS_LIST,
	  "[--limit N] [--page-token T] [--all]", ca_list },
	{ "ca", "show", 1, 0, "ID", ca_show },
	{ "ca", "create", 0, CLI_OPT_BIT(CLI_OPT_NAME) |
	  CLI_OPT_BIT(CLI_OPT_TYPE) | CLI_OPT_BIT(CLI_OPT_ISSUER) |
	  CLI_OPT_BIT(CLI_OPT_SUBJECT) | CLI_OPT_BIT(CLI_OPT_KEY_ALGORITHM) |
	  CLI_OPT_BIT(CLI_OPT_KEY_BACKEND) |
	  CLI_OPT_BIT(CLI_OPT_VALIDITY_DAYS) | CLI_OPT_BIT(CLI_OPT_PATH_LEN) |
	  CLI_OPT_BIT(CLI_OPT_DNS_SUFFIX) | CLI_OPT_BIT(CLI_OPT_IP_RANGE),
	  "--name N --type root|subordinate|subordinate-of-external "
	  "[--issuer ID] --subject S [--key-algorithm A] [--key-backend B] "
	  "[--validity-days D] [--path-len N] [--dns-suffix S]... "
	  "[--ip-range R]...", ca_create },
	{ "ca", "bundle", 1, CLI_OPT_BIT(CLI_OPT_OUT), "ID [--out F]",
	  ca_bundle },
	{ "ca", "crl", 1, 0, "ID", ca_crl },
	{ "ca", "csr", 1, CLI_OPT_BIT(CLI_OPT_OUT), "ID [--out F]", ca_csr },
	{ "ca", "import-cert", 1, CLI_OPT_BIT(CLI_OPT_CERT) |
	  CLI_OPT_BIT(CLI_OPT_CHAIN), "ID --cert F [--chain F]",
	  ca_import_cert },
	{ "ca", "renew", 1, CLI_OPT_BIT(CLI_OPT_NEW_KEY) |
	  CLI_OPT_BIT(CLI_OPT_VALIDITY_DAYS) |
	  CLI_OPT_BIT(CLI_OPT_REISSUE_LEAVES),
	  "ID [--new-key] [--validity-days D] [--reissue-leaves]", ca_renew },
	{ "ca", "disable", 1, 0, "ID", ca_disable },
	{ "ca", "enable", 1, 0, "ID", ca_enable },
	{ "ca", "delete", 1, CLI_OPT_BIT(CLI_OPT_NOW), "ID [--now]",
	  ca_delete },
	{ "ca", "cancel-deletion", 1, 0, "ID", ca_cancel_deletion },
	{ NULL, NULL, 0, 0, NULL, NULL },
};
