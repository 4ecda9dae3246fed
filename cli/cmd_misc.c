/*
 * cli/cmd_misc.c — resources and associations, and the pieces every
 * command shares: running a list, showing an object, deleting one.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define MISC_ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const struct cli_column resource_columns[] = {
	{ "ID", "id" },
	{ "NAME", "name" },
	{ "TYPE", "type" },
	{ "CREATED", "created_at" },
};

static const struct cli_column assoc_columns[] = {
	{ "ID", "id" },
	{ "CERTIFICATE", "certificate_id" },
	{ "RESOURCE", "resource_id" },
	{ "CREATED", "created_at" },
};

/* --limit is checked here; the server enforces its own maximum. */
enum cli_exit
cli_list_run(struct cli_ctx *ctx, const char *path, const char *key,
    const struct cli_column *cols, size_t ncols)
{
	char p[CLI_PATH_MAX], num[32];
	json_t *doc = NULL;
	long long limit;
	bool given;
	enum cli_exit rc;

	if ((rc = cli_get_int(ctx, CLI_OPT_LIMIT, 1, INT_MAX, &limit,
	    &given)) != CLI_EXIT_OK)
		return rc;
	snprintf(num, sizeof(num), "%lld", limit);
	if (common_path(p, sizeof(p), "%s", path) == -1 ||
	    (given && cli_query_add(p, sizeof(p), "limit", num) == -1)) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	rc = cli_http_list(ctx->http, p, key, cli_arg(ctx, CLI_OPT_PAGE_TOKEN),
	    cli_arg(ctx, CLI_OPT_ALL) != NULL, &doc);
	if (rc == CLI_EXIT_OK)
		rc = cli_out_list(ctx, doc, key, cols, ncols);
	json_decref(doc);
	return rc;
}

enum cli_exit
cli_object_run(struct cli_ctx *ctx, const char *method, const char *path,
    const json_t *body)
{
	json_t *obj = NULL;
	enum cli_exit rc;

	rc = cli_http_call(ctx->http, method, path, body, true, &obj);
	if (rc == CLI_EXIT_OK)
		rc = cli_out_single(ctx, obj);
	json_decref(obj);
	return rc;
}

enum cli_exit
cli_delete_run(struct cli_ctx *ctx, const char *path, const char *id)
{
	json_t *ans = NULL;
	enum cli_exit rc;

	rc = cli_http_call(ctx->http, "DELETE", path, NULL, true, &ans);
	if (rc != CLI_EXIT_OK)
		goto out;
	/* 204 has no body: --json then prints nothing, as the server did. */
	if (ctx->conf.json) {
		if (ans != NULL && cli_out_json(ans) == -1)
			rc = CLI_EXIT_ERROR;
	} else
		printf("deleted %s\n", id);
out:
	json_decref(ans);
	return rc;
}

enum cli_exit
cli_id_path(const struct cli_ctx *ctx, const char *what, char *out,
    size_t outlen, const char *fmt)
{
	const char *id = cli_operand(ctx, 0);
	enum cli_exit rc;

	if ((rc = cli_check_id(ctx, what, id)) != CLI_EXIT_OK)
		return rc;
	if (common_path(out, outlen, fmt, id) == -1) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

enum cli_exit
cli_id_object_run(struct cli_ctx *ctx, const char *what, const char *method,
    const char *fmt)
{
	char path[CLI_PATH_MAX];
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, what, path, sizeof(path), fmt)) !=
	    CLI_EXIT_OK)
		return rc;
	return cli_object_run(ctx, method, path, NULL);
}

enum cli_exit
cli_id_delete_run(struct cli_ctx *ctx, const char *what, const char *fmt)
{
	char path[CLI_PATH_MAX];
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, what, path, sizeof(path), fmt)) !=
	    CLI_EXIT_OK)
		return rc;
	return cli_delete_run(ctx, path, cli_operand(ctx, 0));
}

/*
 * The answer of a scheduled deletion is 202 {"deletion": {"execute_at"}};
 * a 2xx without a schedule means the object is gone already. With --json
 * the answer is printed as it is (nothing for a 204).
 */
enum cli_exit
cli_deletion_run(struct cli_ctx *ctx, const char *what, const char *fmt,
    const char *shown)
{
	char path[CLI_PATH_MAX];
	const char *id = cli_operand(ctx, 0), *at;
	json_t *ans = NULL;
	char *clean;
	enum cli_exit rc;

	if ((rc = cli_id_path(ctx, what, path, sizeof(path), fmt)) !=
	    CLI_EXIT_OK)
		return rc;
	if (cli_arg(ctx, CLI_OPT_NOW) != NULL) {
		if (cli_query_add(path, sizeof(path), "now", "true") == -1) {
			cli_err("request path too long");
			return CLI_EXIT_USAGE;
		}
		return cli_delete_run(ctx, path, id);
	}
	if ((rc = cli_http_call(ctx->http, "DELETE", path, NULL, true,
	    &ans)) != CLI_EXIT_OK)
		goto out;
	if (ctx->conf.json) {
		if (ans != NULL && cli_out_json(ans) == -1)
			rc = CLI_EXIT_ERROR;
		goto out;
	}
	at = json_string_value(json_object_get(json_object_get(ans,
	    "deletion"), "execute_at"));
	if (at == NULL) {
		printf("deleted %s\n", id);
		goto out;
	}
	clean = cli_clean(at);
	printf("deletion of %s%s%s scheduled for %s (cancel with: " CLI_PROG
	    " %s cancel-deletion %s)\n", shown != NULL ? shown : "",
	    shown != NULL ? " " : "", id, clean != NULL ? clean : "?",
	    ctx->cmd->noun, id);
	free(clean);
out:
	json_decref(ans);
	return rc;
}

/* ---- resources ----------------------------------------------------------- */

static enum cli_exit
resource_list(struct cli_ctx *ctx)
{
	return cli_list_run(ctx, "/resources", "resources", resource_columns,
	    MISC_ARRAY_LEN(resource_columns));
}

/* Parses --config: inline JSON, or "@FILE" to read it from a file. Must
 * be an object. Sets *out to a new reference. */
static enum cli_exit
resource_config(const struct cli_ctx *ctx, json_t **out)
{
	const char *v = cli_arg(ctx, CLI_OPT_CONFIG);
	char *data = NULL;
	size_t len;
	json_error_t jerr;
	enum cli_exit rc = CLI_EXIT_USAGE;

	*out = NULL;
	if (v == NULL)
		return CLI_EXIT_OK;
	if (v[0] == '@') {
		if (common_file_read(v + 1, CLI_INPUT_MAX, &data, &len) == -1) {
			cli_err("%s: cannot read (missing, unreadable or over "
			    "%d KiB)", v + 1, CLI_INPUT_MAX / 1024);
			rc = CLI_EXIT_ERROR;
			goto out;
		}
		v = data;
	}
	if ((*out = json_loads(v, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		cli_usage_err(ctx, "--config: not JSON: %s (line %d)", jerr.text,
		    jerr.line);
		goto out;
	}
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		cli_usage_err(ctx, "--config: want a JSON object");
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	free(data);
	return rc;
}

/* {"name", "type", "config"}: the type is left to the server, which
 * knows its connectors. */
static enum cli_exit
resource_create(struct cli_ctx *ctx)
{
	json_t *body = NULL, *config = NULL;
	enum cli_exit rc;

	if ((rc = cli_require(ctx, CLI_OPT_BIT(CLI_OPT_NAME) |
	    CLI_OPT_BIT(CLI_OPT_TYPE))) != CLI_EXIT_OK)
		goto out;
	if ((rc = resource_config(ctx, &config)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_ERROR;
	if ((body = json_object()) == NULL ||
	    cli_set_str(ctx, body, "name", CLI_OPT_NAME) == -1 ||
	    cli_set_str(ctx, body, "type", CLI_OPT_TYPE) == -1)
		goto out;
	if (config != NULL) {
		int set = json_object_set_new(body, "config", config);

		config = NULL;	/* steal: set_new consumes it even on failure */
		if (set == -1)
			goto out;
	}
	rc = cli_object_run(ctx, "POST", "/resources", body);
out:
	json_decref(config);
	json_decref(body);
	return rc;
}

static enum cli_exit
resource_show(struct cli_ctx *ctx)
{
	return cli_id_object_run(ctx, "resource", "GET", "/resources/%s");
}

static enum cli_exit
resource_delete(struct cli_ctx *ctx)
{
	return cli_id_delete_run(ctx, "resource", "/resources/%s");
}

/* ---- associations ---------------------------------------------------------- */

static enum cli_exit
assoc_list(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX] = "/associations";
	const char *cert = cli_arg(ctx, CLI_OPT_CERT);
	enum cli_exit rc;

	if (cert != NULL) {
		if ((rc = cli_check_id(ctx, "certificate", cert)) !=
		    CLI_EXIT_OK)
			return rc;
		if (cli_query_add(path, sizeof(path), "certificate_id",
		    cert) == -1) {
			cli_err("request path too long");
			return CLI_EXIT_USAGE;
		}
	}
	return cli_list_run(ctx, path, "associations", assoc_columns,
	    MISC_ARRAY_LEN(assoc_columns));
}

static enum cli_exit
assoc_create(struct cli_ctx *ctx)
{
	json_t *body = NULL;
	enum cli_exit rc;

	if ((rc = cli_require(ctx, CLI_OPT_BIT(CLI_OPT_CERT) |
	    CLI_OPT_BIT(CLI_OPT_RESOURCE))) != CLI_EXIT_OK ||
	    (rc = cli_check_id(ctx, "certificate", cli_arg(ctx,
	    CLI_OPT_CERT))) != CLI_EXIT_OK ||
	    (rc = cli_check_id(ctx, "resource", cli_arg(ctx,
	    CLI_OPT_RESOURCE))) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_ERROR;
	if ((body = json_object()) == NULL ||
	    cli_set_str(ctx, body, "certificate_id", CLI_OPT_CERT) == -1 ||
	    cli_set_str(ctx, body, "resource_id", CLI_OPT_RESOURCE) == -1)
		goto out;
	rc = cli_object_run(ctx, "POST", "/associations", body);
out:
	json_decref(body);
	return rc;
}

static enum cli_exit
assoc_delete(struct cli_ctx *ctx)
{
	return cli_id_delete_run(ctx, "association", "/associations/%s");
}

const struct cli_command cli_misc_commands[] = {
	{ "resource", "list", 0, CLI_OPTS_LIST,
	  "[--limit N] [--page-token T] [--all]", resource_list },
	{ "resource", "create", 0, CLI_OPT_BIT(CLI_OPT_NAME) |
	  CLI_OPT_BIT(CLI_OPT_TYPE) | CLI_OPT_BIT(CLI_OPT_CONFIG),
	  "--name N --type nginx|haproxy|webhook|other [--config JSON|@FILE]",
	  resource_create },
	{ "resource", "show", 1, 0, "ID", resource_show },
	{ "resource", "delete", 1, 0, "ID", resource_delete },
	{ "assoc", "list", 0, CLI_OPTS_LIST | CLI_OPT_BIT(CLI_OPT_CERT),
	  "[--cert ID] [--limit N] [--page-token T] [--all]", assoc_list },
	{ "assoc", "create", 0, CLI_OPT_BIT(CLI_OPT_CERT) |
	  CLI_OPT_BIT(CLI_OPT_RESOURCE), "--cert ID --resource ID",
	  assoc_create },
	{ "assoc", "delete", 1, 0, "ID", assoc_delete },
	{ NULL, NULL, 0, 0, NULL, NULL },
};
