/*
 * cli/cmd_est.c — EST: the HTTP Basic clients of the EST server
 * (est-client add|list|remove) and the enrollments waiting for manual
 * approval (est-request list|approve|reject).
 *
 * The password of a new client comes from --password-file (one trailing
 * newline is dropped, so `echo pw > f` works) or --password (visible to
 * other local users in the process list). It is sent once and wiped
 * from pkictl's own buffers; the server keeps only a PBKDF2 hash.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/cli.h"

#define EST_ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))
#define EST_USERNAME_MAX	64	/* the server's limit, checked early */
#define EST_PASSWORD_FILE_MAX	4096	/* bytes read from --password-file */
#define EST_REQUEST_ID_LEN	64	/* lower-case hex SHA-256 */
/* How the label bindings of a client read in a table. */
#define EST_LABELS_ALL		"(every label)"
#define EST_LABEL_DEFAULT	"(default)"

static const struct cli_column est_client_columns[] = {
	{ "USERNAME", "username" },
	{ "LABELS", "labels" },
	{ "CREATED", "created_at" },
	{ "CREATED-BY", "created_by" },
};

static const struct cli_column est_request_columns[] = {
	{ "ID", "id" },
	{ "LABEL", "label" },
	{ "STATUS", "status" },
	{ "OPERATION", "operation" },
	{ "SUBJECT", "subject" },
	{ "SANS", "sans" },
	{ "REQUESTED-BY", "requested_by" },
	{ "CREATED", "created_at" },
	{ "DECIDED-BY", "decided_by" },
};

static const char *const est_statuses[] = {
	"pending", "approved", "rejected", "issued", NULL
};

/* The server's rule for usernames (1..64 of [A-Za-z0-9._@-], not "." or
 * ".."), checked here so a bad operand never becomes a request path. */
static bool
est_username_ok(const char *s)
{
	size_t i;

	if (s == NULL || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= EST_USERNAME_MAX)
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '@' || c == '-'))
			return false;
	}
	return i > 0;
}

/*
 * The password: the contents of --password-file without one trailing
 * "\n" or "\r\n", or --password. Exactly one of them. Sets *out (to
 * free() after OPENSSL_cleanse) and *len.
 */
static enum cli_exit
est_password(const struct cli_ctx *ctx, char **out, size_t *len)
{
	const char *file = cli_arg(ctx, CLI_OPT_PASSWORD_FILE);
	const char *inline_pw = cli_arg(ctx, CLI_OPT_PASSWORD);
	char *data = NULL;
	size_t n = 0;

	*out = NULL;
	*len = 0;
	if ((file == NULL) == (inline_pw == NULL))
		return cli_usage_err(ctx, "give the password with exactly one "
		    "of --password-file and --password");
	if (inline_pw != NULL) {
		n = strlen(inline_pw);
		if ((data = malloc(n + 1)) == NULL) {
			cli_err("out of memory");
			return CLI_EXIT_ERROR;
		}
		memcpy(data, inline_pw, n + 1);
	} else {
		if (common_file_read(file, EST_PASSWORD_FILE_MAX, &data,
		    &n) == -1) {
			if (errno == EFBIG)
				cli_err("%s: larger than %d bytes", file,
				    EST_PASSWORD_FILE_MAX);
			else
				cli_err("%s: %s", file, strerror(errno));
			return CLI_EXIT_ERROR;
		}
		if (n > 0 && data[n - 1] == '\n')
			data[--n] = '\0';
		if (n > 0 && data[n - 1] == '\r')
			data[--n] = '\0';
		if (strlen(data) != n) {
			OPENSSL_cleanse(data, n);
			free(data);
			cli_err("%s: the password holds a NUL byte", file);
			return CLI_EXIT_ERROR;
		}
	}
	*out = data;	/* steal */
	*len = n;
	return CLI_EXIT_OK;
}

/*
 * One client's "labels" array as one string for the table: none means
 * every label, "" the unlabelled endpoint. NULL on allocation failure.
 */
static char *
est_labels_text(const json_t *labels)
{
	struct common_buf b;
	const json_t *l;
	const char *name;
	size_t j;

	common_buf_init(&b, CLI_INPUT_MAX);
	if (json_array_size(labels) == 0 &&
	    common_buf_addstr(&b, EST_LABELS_ALL) == -1)
		goto fail;
	json_array_foreach(labels, j, l) {
		if ((name = json_string_value(l)) == NULL)
			continue;
		if (common_buf_addf(&b, "%s%s", j > 0 ? ", " : "",
		    name[0] != '\0' ? name : EST_LABEL_DEFAULT) == -1)
			goto fail;
	}
	return common_buf_steal(&b, NULL);
fail:
	common_buf_free(&b);
	return NULL;
}

/* Replaces the "labels" array of each client by est_labels_text. */
static int
est_labels_readable(json_t *items)
{
	json_t *item, *labels;
	char *text;
	size_t i;
	int rc;

	json_array_foreach(items, i, item) {
		labels = json_object_get(item, "labels");
		if (!json_is_array(labels))
			continue;
		if ((text = est_labels_text(labels)) == NULL)
			return -1;
		rc = json_object_set_new(item, "labels", json_string(text));
		free(text);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* {"username", "password", "labels": [each --label]}; no --label binds
 * the client to every label, --label "" to the unlabelled endpoint. */
static enum cli_exit
est_client_add(struct cli_ctx *ctx)
{
	const char *user = cli_arg(ctx, CLI_OPT_USERNAME), *label;
	json_t *body = NULL, *labels = NULL, *ans = NULL, *one;
	char *pw = NULL;
	size_t pwlen = 0, iter = 0;
	enum cli_exit rc;

	if ((rc = cli_require(ctx, CLI_OPT_BIT(CLI_OPT_USERNAME))) !=
	    CLI_EXIT_OK)
		goto out;
	if (!est_username_ok(user)) {
		rc = cli_usage_err(ctx, "invalid --username (want 1-%d of "
		    "A-Z a-z 0-9 . _ @ -)", EST_USERNAME_MAX);
		goto out;
	}
	if ((rc = est_password(ctx, &pw, &pwlen)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_ERROR;
	if ((labels = json_array()) == NULL) {
		cli_err("out of memory");
		goto out;
	}
	while ((label = cli_arg_next(ctx, CLI_OPT_LABEL, &iter)) != NULL)
		if (json_array_append_new(labels, json_string(label)) == -1) {
			cli_err("--label: not valid UTF-8");
			goto out;
		}
	body = json_pack("{s:s, s:s%, s:O}", "username", user, "password",
	    pw, pwlen, "labels", labels);
	if (body == NULL) {
		cli_err("--password: not valid UTF-8");
		goto out;
	}
	if ((rc = cli_http_call(ctx->http, "POST", "/est/clients", body, true,
	    &ans)) != CLI_EXIT_OK)
		goto out;
	if (!ctx->conf.json && json_is_object(ans)) {
		one = json_pack("[O]", ans);
		if (one == NULL || est_labels_readable(one) == -1) {
			json_decref(one);
			cli_err("out of memory");
			rc = CLI_EXIT_ERROR;
			goto out;
		}
		json_decref(one);
	}
	rc = cli_out_single(ctx, ans);
out:
	if (pw != NULL) {
		OPENSSL_cleanse(pw, pwlen);
		free(pw);
	}
	json_decref(ans);
	json_decref(labels);
	json_decref(body);
	return rc;
}

static enum cli_exit
est_client_list(struct cli_ctx *ctx)
{
	char p[CLI_PATH_MAX], num[32];
	json_t *doc = NULL;
	long long limit;
	bool given;
	enum cli_exit rc;

	if (ctx->conf.json)
		return cli_list_run(ctx, "/est/clients", "est_clients",
		    est_client_columns, EST_ARRAY_LEN(est_client_columns));
	/* The table shows the bindings in words: the same steps as
	 * cli_list_run, with the labels rewritten before printing. */
	if ((rc = cli_get_int(ctx, CLI_OPT_LIMIT, 1, INT_MAX, &limit,
	    &given)) != CLI_EXIT_OK)
		return rc;
	snprintf(num, sizeof(num), "%lld", limit);
	if (common_path(p, sizeof(p), "/est/clients") == -1 ||
	    (given && cli_query_add(p, sizeof(p), "limit", num) == -1)) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	rc = cli_http_list(ctx->http, p, "est_clients",
	    cli_arg(ctx, CLI_OPT_PAGE_TOKEN), cli_arg(ctx, CLI_OPT_ALL) !=
	    NULL, &doc);
	if (rc == CLI_EXIT_OK) {
		if (est_labels_readable(json_object_get(doc,
		    "est_clients")) == -1) {
			cli_err("out of memory");
			rc = CLI_EXIT_ERROR;
		} else
			rc = cli_out_list(ctx, doc, "est_clients",
			    est_client_columns,
			    EST_ARRAY_LEN(est_client_columns));
	}
	json_decref(doc);
	return rc;
}

/* Existing connections are not cut; the next request is refused. */
static enum cli_exit
est_client_remove(struct cli_ctx *ctx)
{
	const char *user = cli_operand(ctx, 0);
	char path[CLI_PATH_MAX];

	if (!est_username_ok(user))
		return cli_usage_err(ctx, "invalid username (want 1-%d of "
		    "A-Z a-z 0-9 . _ @ -)", EST_USERNAME_MAX);
	if (common_path(path, sizeof(path), "/est/clients/%s", user) == -1) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	return cli_delete_run(ctx, path, user);
}

static enum cli_exit
est_request_list(struct cli_ctx *ctx)
{
	const char *status = cli_arg(ctx, CLI_OPT_STATUS);
	char path[CLI_PATH_MAX] = "/est/requests";
	size_t i;

	if (status != NULL) {
		for (i = 0; est_statuses[i] != NULL; i++)
			if (strcmp(status, est_statuses[i]) == 0)
				break;
		if (est_statuses[i] == NULL)
			return cli_usage_err(ctx, "--status must be pending, "
			    "approved, rejected or issued");
		if (cli_query_add(path, sizeof(path), "status", status) ==
		    -1) {
			cli_err("request path too long");
			return CLI_EXIT_USAGE;
		}
	}
	return cli_list_run(ctx, path, "est_requests", est_request_columns,
	    EST_ARRAY_LEN(est_request_columns));
}

/* "/est/requests/ID/<verb>" after checking the ID is a request id. */
static enum cli_exit
est_request_path(const struct cli_ctx *ctx, const char *verb, char *out,
    size_t outlen)
{
	const char *id = cli_operand(ctx, 0);
	size_t i;

	for (i = 0; id != NULL && id[i] != '\0'; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			break;
	if (id == NULL || id[i] != '\0' || i != EST_REQUEST_ID_LEN)
		return cli_usage_err(ctx, "invalid request ID (want the %d "
		    "lower-case hex digits that est-request list shows)",
		    EST_REQUEST_ID_LEN);
	if (common_path(out, outlen, "/est/requests/%s/%s", id, verb) == -1) {
		cli_err("request path too long");
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

/* The client gets its certificate when it posts the same CSR again. */
static enum cli_exit
est_request_approve(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	enum cli_exit rc;

	if ((rc = est_request_path(ctx, "approve", path, sizeof(path))) !=
	    CLI_EXIT_OK)
		return rc;
	return cli_object_run(ctx, "POST", path, NULL);
}

/* The client gets 403 when it posts the same CSR again. */
static enum cli_exit
est_request_reject(struct cli_ctx *ctx)
{
	char path[CLI_PATH_MAX];
	json_t *body = NULL;
	enum cli_exit rc;

	if ((rc = est_request_path(ctx, "reject", path, sizeof(path))) !=
	    CLI_EXIT_OK)
		return rc;
	if ((body = json_object()) == NULL ||
	    cli_set_str(ctx, body, "reason", CLI_OPT_REASON) == -1) {
		cli_err("--reason: out of memory or not valid UTF-8");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	rc = cli_object_run(ctx, "POST", path, body);
out:
	json_decref(body);
	return rc;
}

const struct cli_command cli_est_commands[] = {
	{ "est-client", "add", 0, CLI_OPT_BIT(CLI_OPT_USERNAME) |
	  CLI_OPT_BIT(CLI_OPT_PASSWORD_FILE) | CLI_OPT_BIT(CLI_OPT_PASSWORD) |
	  CLI_OPT_BIT(CLI_OPT_LABEL),
	  "--username U (--password-file F | --password P) [--label L]...",
	  est_client_add },
	{ "est-client", "list", 0, CLI_OPTS_LIST,
	  "[--limit N] [--page-token T] [--all]", est_client_list },
	{ "est-client", "remove", 1, 0, "USERNAME", est_client_remove },
	{ "est-request", "list", 0, CLI_OPTS_LIST | CLI_OPT_BIT(CLI_OPT_STATUS),
	  "[--status pending|approved|rejected|issued] [--limit N] "
	  "[--page-token T] [--all]", est_request_list },
	{ "est-request", "approve", 1, 0, "ID", est_request_approve },
	{ "est-request", "reject", 1, CLI_OPT_BIT(CLI_OPT_REASON),
	  "ID [--reason R]", est_request_reject },
	{ NULL, NULL, 0, 0, NULL, NULL },
};
