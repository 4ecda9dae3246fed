/*
 * cli/cmd_eab.c — ACME External Account Binding keys: create (the only
 * time the HMAC key is shown), list, delete. Admin tokens only; the
 * server refuses others.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define EAB_ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const struct cli_column eab_columns[] = {
	{ "KID", "kid" },
	{ "ALG", "alg" },
	{ "ONE-TIME", "one_time" },
	{ "USED-BY", "used_by" },
	{ "EXPIRES", "expires_at" },
	{ "CREATED", "created_at" },
	{ "NOTE", "note" },
};

/* The fields of a created key, in the order a person needs them. */
static const char *const eab_created_fields[] = {
	"kid", "hmac_key", "alg", "one_time", "expires_at", "created_at",
	"note", NULL
};

/*
 * {"one_time", "expires_in_days", "alg", "note"}: what is not given is
 * left to the server's defaults (one-time, HS256, no expiry). Prints the
 * kid and the base64url HMAC key, which the server never shows again.
 */
static enum cli_exit
eab_create(struct cli_ctx *ctx)
{
	json_t *body = NULL, *ans = NULL;
	enum cli_exit rc;
	bool one = cli_arg(ctx, CLI_OPT_ONE_TIME) != NULL;
	bool reusable = cli_arg(ctx, CLI_OPT_REUSABLE) != NULL;

	if (one && reusable) {
		rc = cli_usage_err(ctx, "--one-time and --reusable exclude "
		    "each other");
		goto out;
	}
	if ((body = json_object()) == NULL) {
		cli_err("out of memory");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	if ((rc = cli_set_days(ctx, body, "expires_in_days",
	    CLI_OPT_EXPIRES_IN)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_ERROR;
	if ((one || reusable) && json_object_set_new(body, "one_time",
	    json_boolean(one)) == -1) {
		cli_err("out of memory");
		goto out;
	}
	if (cli_set_str(ctx, body, "alg", CLI_OPT_ALG) == -1 ||
	    cli_set_str(ctx, body, "note", CLI_OPT_NOTE) == -1) {
		cli_err("out of memory");
		goto out;
	}
	if ((rc = cli_http_call(ctx->http, "POST", "/acme/eab", body, true,
	    &ans)) != CLI_EXIT_OK)
		goto out;
	if (!json_is_object(ans) ||
	    !json_is_string(json_object_get(ans, "kid")) ||
	    !json_is_string(json_object_get(ans, "hmac_key"))) {
		cli_err("the answer carries no kid and hmac_key");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	if (ctx->conf.json) {
		rc = cli_out_json(ans) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
		goto out;
	}
	if (cli_out_fields(ans, eab_created_fields) == -1) {
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	fprintf(stderr, "%s: the HMAC key is shown only now; give kid and "
	    "hmac_key to the ACME client (certbot --eab-kid KID "
	    "--eab-hmac-key KEY, lego --eab --kid KID --hmac KEY)\n",
	    CLI_PROG);
	rc = CLI_EXIT_OK;
out:
	json_decref(ans);
	json_decref(body);
	return rc;
}

static enum cli_exit
eab_list(struct cli_ctx *ctx)
{
	return cli_list_run(ctx, "/acme/eab", "eab_keys", eab_columns,
	    EAB_ARRAY_LEN(eab_columns));
}

/* An account already bound with the key keeps its binding. */
static enum cli_exit
eab_delete(struct cli_ctx *ctx)
{
	return cli_id_delete_run(ctx, "EAB key", "/acme/eab/%s");
}

const struct cli_command cli_eab_commands[] = {
	{ "eab", "create", 0, CLI_OPT_BIT(CLI_OPT_ONE_TIME) |
	  CLI_OPT_BIT(CLI_OPT_REUSABLE) | CLI_OPT_BIT(CLI_OPT_EXPIRES_IN) |
	  CLI_OPT_BIT(CLI_OPT_ALG) | CLI_OPT_BIT(CLI_OPT_NOTE),
	  "[--one-time|--reusable] [--expires-in-days D] "
	  "[--alg HS256|HS384|HS512] [--note N]", eab_create },
	{ "eab", "list", 0, CLI_OPTS_LIST,
	  "[--limit N] [--page-token T] [--all]", eab_list },
	{ "eab", "delete", 1, 0, "KID", eab_delete },
	{ NULL, NULL, 0, 0, NULL, NULL },
};
