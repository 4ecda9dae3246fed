/*
 * cli/cmd_audit.c — pkictl audit: the audit trail (GET /audit), oldest
 * first, filtered by object, action and actor. Any token may read it.
 */
#include <stdio.h>

#include "cli/cli.h"

#define AUDIT_ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const struct cli_column audit_columns[] = {
	{ "SEQ", "seq" },
	{ "TIME", "time" },
	{ "WHO", "who" },
	{ "ACTION", "action" },
	{ "OBJECT", "object" },
	{ "RESULT", "result" },
};

/* GET /audit?object=&action=&who= with the list options. */
static enum cli_exit
audit_list(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX] = "/audit";

	if (cli_query_add(path, sizeof(path), "object",
	    cli_arg(ctx, CLI_OPT_OBJECT)) == -1 ||
	    cli_query_add(path, sizeof(path), "action",
	    cli_arg(ctx, CLI_OPT_ACTION)) == -1 ||
	    cli_query_add(path, sizeof(path), "who",
	    cli_arg(ctx, CLI_OPT_WHO)) == -1) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	return cli_list_run(ctx, path, "audit", audit_columns,
	    AUDIT_ARRAY_LEN(audit_columns));
}

const struct cli_command cli_audit_commands[] = {
	{ "audit", "", 0, CLI_OPTS_LIST | CLI_OPT_BIT(CLI_OPT_OBJECT) |
	  CLI_OPT_BIT(CLI_OPT_ACTION) | CLI_OPT_BIT(CLI_OPT_WHO),
	  "[--object ID] [--action A] [--who W] [--limit N] "
	  "[--page-token T] [--all]", audit_list },
	{ NULL, NULL, 0, 0, NULL, NULL },
};
