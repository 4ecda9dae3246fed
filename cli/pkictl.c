/*
 * cli/pkictl.c — pkictl's entry point: parses the command line, resolves
 * the connection settings (flags, then the environment, then defaults),
 * picks the command and runs it.
 *
 * Options may appear before, between or after the command words; every
 * option has one meaning wherever it appears, so a single pass over argv
 * separates options from words. A command accepts the global options and
 * the ones in its mask; anything else is a usage error (exit 2).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "cli/cli.h"

struct opt_spec {
	const char	*name;		/* "--name" */
	bool		 has_arg;
	bool		 repeat;	/* may be given more than once */
};

static const struct opt_spec opt_specs[CLI_OPT__MAX] = {
	[CLI_OPT_URL] = { "--url", true, false },
	[CLI_OPT_TOKEN] = { "--token", true, false },
	[CLI_OPT_TOKEN_FILE] = { "--token-file", true, false },
	[CLI_OPT_CACERT] = { "--cacert", true, false },
	[CLI_OPT_JSON] = { "--json", false, true },
	[CLI_OPT_TIMEOUT] = { "--timeout", true, false },
	[CLI_OPT_HELP] = { "--help", false, true },
	[CLI_OPT_NAME] = { "--name", true, false },
	[CLI_OPT_TYPE] = { "--type", true, false },
	[CLI_OPT_ISSUER] = { "--issuer", true, false },
	[CLI_OPT_SUBJECT] = { "--subject", true, false },
	[CLI_OPT_KEY_ALGORITHM] = { "--key-algorithm", true, false },
	[CLI_OPT_KEY_BACKEND] = { "--key-backend", true, false },
	[CLI_OPT_VALIDITY_DAYS] = { "--validity-days", true, false },
	[CLI_OPT_PATH_LEN] = { "--path-len", true, false },
	[CLI_OPT_DNS_SUFFIX] = { "--dns-suffix", true, true },
	[CLI_OPT_IP_RANGE] = { "--ip-range", true, true },
	[CLI_OPT_OUT] = { "--out", true, false },
	[CLI_OPT_CERT] = { "--cert", true, false },
	[CLI_OPT_CHAIN] = { "--chain", true, false },
	[CLI_OPT_CA] = { "--ca", true, false },
	[CLI_OPT_STAGE] = { "--stage", true, false },
	[CLI_OPT_EXPIRING] = { "--expiring-within-days", true, false },
	[CLI_OPT_LIMIT] = { "--limit", true, false },
	[CLI_OPT_PAGE_TOKEN] = { "--page-token", true, false },
	[CLI_OPT_ALL] = { "--all", false, true },
	[CLI_OPT_PROFILE] = { "--profile", true, false },
	[CLI_OPT_SAN] = { "--san", true, true },
	[CLI_OPT_RENEW_BEFORE] = { "--renew-before-days", true, false },
	[CLI_OPT_CSR] = { "--csr", true, false },
	[CLI_OPT_KEY] = { "--key", true, false },
	[CLI_OPT_VERSION] = { "--version", true, false },
	[CLI_OPT_KEY_OUT] = { "--key-out", true, false },
	[CLI_OPT_REASON] = { "--reason", true, false },
	[CLI_OPT_CONFIG] = { "--config", true, false },
	[CLI_OPT_RESOURCE] = { "--resource", true, false },
	[CLI_OPT_ONE_TIME] = { "--one-time", false, false },
	[CLI_OPT_REUSABLE] = { "--reusable", false, false },
	[CLI_OPT_EXPIRES_IN] = { "--expires-in-days", true, false },
	[CLI_OPT_ALG] = { "--alg", true, false },
	[CLI_OPT_NOTE] = { "--note", true, false },
	[CLI_OPT_USERNAME] = { "--username", true, false },
	[CLI_OPT_PASSWORD_FILE] = { "--password-file", true, false },
	[CLI_OPT_PASSWORD] = { "--password", true, false },
	[CLI_OPT_LABEL] = { "--label", true, true },
	[CLI_OPT_STATUS] = { "--status", true, false },
	[CLI_OPT_NOW] = { "--now", false, false },
	[CLI_OPT_OBJECT] = { "--object", true, false },
	[CLI_OPT_ACTION] = { "--action", true, false },
	[CLI_OPT_WHO] = { "--who", true, false },
	[CLI_OPT_NEW_KEY] = { "--new-key", false, false },
	[CLI_OPT_REISSUE_LEAVES] = { "--reissue-leaves", false, false },
};

_Static_assert(CLI_OPT__MAX <= 64, "option masks are 64-bit");

#define PKICTL_OPTS_GLOBAL (CLI_OPT_BIT(CLI_OPT_URL) | \
	CLI_OPT_BIT(CLI_OPT_TOKEN) | CLI_OPT_BIT(CLI_OPT_TOKEN_FILE) | \
	CLI_OPT_BIT(CLI_OPT_CACERT) | CLI_OPT_BIT(CLI_OPT_JSON) | \
	CLI_OPT_BIT(CLI_OPT_TIMEOUT) | CLI_OPT_BIT(CLI_OPT_HELP))

static const char pkictl_global_usage[] =
    "[--url URL] [--token-file F | --token T] [--cacert F] [--json] "
    "[--timeout S]";

static const struct cli_command *const pkictl_tables[] = {
	cli_ca_commands,
	cli_cert_commands,
	cli_misc_commands,
	cli_eab_commands,
	cli_est_commands,
	cli_audit_commands,
};

/* Words that name command c: noun and verb, or the noun alone. */
static size_t
pkictl_words(const struct cli_command *c)
{
	return c->verb[0] != '\0' ? 2 : 1;
}

/* What separates noun and verb of c when printed. */
static const char *
pkictl_sep(const struct cli_command *c)
{
	return c->verb[0] != '\0' ? " " : "";
}

void
cli_err(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(CLI_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Prints the usage of every command whose noun matches (all when noun is
 * NULL or unknown) to f. */
static void
pkictl_usage(FILE *f, const char *noun)
{
	const struct cli_command *c;
	bool any = false;
	size_t t;

	for (t = 0; noun != NULL && t < sizeof(pkictl_tables) /
	    sizeof(pkictl_tables[0]); t++)
		for (c = pkictl_tables[t]; c->noun != NULL; c++)
			if (strcmp(c->noun, noun) == 0)
				any = true;
	fprintf(f, "usage: %s %s COMMAND ...\n\ncommands:\n", CLI_PROG,
	    pkictl_global_usage);
	for (t = 0; t < sizeof(pkictl_tables) / sizeof(pkictl_tables[0]); t++)
		for (c = pkictl_tables[t]; c->noun != NULL; c++)
			if (!any || strcmp(c->noun, noun) == 0)
				fprintf(f, "  %s%s%s%s%s\n", c->noun,
				    pkictl_sep(c), c->verb,
				    c->usage[0] != '\0' ? " " : "", c->usage);
	fputs("\nenvironment: PKID_URL (default " CLI_URL_DEFAULT "), "
	    "PKID_TOKEN, PKID_TOKEN_FILE, PKID_CACERT\n", f);
}

enum cli_exit
cli_usage_err(const struct cli_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(CLI_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (ctx != NULL && ctx->cmd != NULL)
		fprintf(stderr, "usage: %s %s%s%s%s%s\n", CLI_PROG,
		    ctx->cmd->noun, pkictl_sep(ctx->cmd), ctx->cmd->verb,
		    ctx->cmd->usage[0] != '\0' ? " " : "", ctx->cmd->usage);
	else
		fprintf(stderr, "usage: %s %s COMMAND ...\n(%s --help lists the "
		    "commands)\n", CLI_PROG, pkictl_global_usage, CLI_PROG);
	return CLI_EXIT_USAGE;
}

/* A bad connection setting (URL, token, timeout): the message and the
 * global options' usage on stderr; returns CLI_EXIT_USAGE. */
static enum cli_exit __attribute__((format(printf, 1, 2)))
pkictl_conf_err(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(CLI_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s %s COMMAND ...\n", CLI_PROG,
	    pkictl_global_usage);
	return CLI_EXIT_USAGE;
}

const char *
cli_arg(const struct cli_ctx *ctx, enum cli_opt opt)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < ctx->args->nvals; i++)
		if (ctx->args->vals[i].opt == opt)
			v = ctx->args->vals[i].value;
	return v;
}

const char *
cli_arg_next(const struct cli_ctx *ctx, enum cli_opt opt, size_t *iter)
{
	while (*iter < ctx->args->nvals) {
		const struct cli_optval *v = &ctx->args->vals[(*iter)++];

		if (v->opt == opt)
			return v->value;
	}
	return NULL;
}

const char *
cli_operand(const struct cli_ctx *ctx, size_t i)
{
	size_t w = pkictl_words(ctx->cmd);

	if (i + w >= ctx->args->npos)
		return NULL;
	return ctx->args->pos[i + w];
}

const char *
cli_opt_name(enum cli_opt opt)
{
	if ((int)opt < 0 || opt >= CLI_OPT__MAX)
		return "--?";
	return opt_specs[opt].name;
}

/* Looks up "--name" or "--name=value"; the option or CLI_OPT__MAX when
 * unknown. *namelen gets the length before '='. */
static enum cli_opt
pkictl_opt_find(const char *s, size_t *namelen)
{
	const char *eq = strchr(s, '=');
	size_t n = eq != NULL ? (size_t)(eq - s) : strlen(s);
	int i;

	*namelen = n;
	for (i = 0; i < CLI_OPT__MAX; i++)
		if (strlen(opt_specs[i].name) == n &&
		    strncmp(opt_specs[i].name, s, n) == 0)
			return (enum cli_opt)i;
	return CLI_OPT__MAX;
}

/*
 * Splits argv into words and options ("--opt VALUE", "--opt=VALUE",
 * flags; "--" ends the options). args->vals must hold argc entries. A
 * non-repeatable option given twice, an unknown option or a missing value
 * is a usage error.
 */
static enum cli_exit
pkictl_parse(int argc, char **argv, struct cli_args *args)
{
	bool opts_done = false;
	enum cli_opt o;
	const char *a, *value;
	size_t namelen, i;
	int k;

	for (k = 1; k < argc; k++) {
		a = argv[k];
		if (opts_done || a[0] != '-' || a[1] == '\0') {
			if (args->npos == CLI_POS_MAX)
				return cli_usage_err(NULL, "too many words");
			args->pos[args->npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (strcmp(a, "-h") == 0)
			a = "--help";
		if ((o = pkictl_opt_find(a, &namelen)) == CLI_OPT__MAX)
			return cli_usage_err(NULL, "unknown option %.64s", a);
		if (!opt_specs[o].has_arg) {
			if (a[namelen] == '=')
				return cli_usage_err(NULL,
				    "%s takes no value", cli_opt_name(o));
			value = "";
		} else if (a[namelen] == '=')
			value = a + namelen + 1;
		else if (k + 1 < argc)
			value = argv[++k];
		else
			return cli_usage_err(NULL, "%s needs a value",
			    cli_opt_name(o));
		if (!opt_specs[o].repeat)
			for (i = 0; i < args->nvals; i++)
				if (args->vals[i].opt == o)
					return cli_usage_err(NULL,
					    "%s given twice", cli_opt_name(o));
		args->vals[args->nvals].opt = o;
		args->vals[args->nvals].value = value;
		args->nvals++;
	}
	return CLI_EXIT_OK;
}

/* The command named by the first two words (or the first, for a noun
 * whose command has no verb), or NULL. */
static const struct cli_command *
pkictl_command_find(const struct cli_args *args)
{
	const struct cli_command *c;
	size_t t;

	if (args->npos < 1)
		return NULL;
	for (t = 0; t < sizeof(pkictl_tables) / sizeof(pkictl_tables[0]); t++)
		for (c = pkictl_tables[t]; c->noun != NULL; c++)
			if (strcmp(c->noun, args->pos[0]) == 0 &&
			    (c->verb[0] == '\0' || (args->npos >= 2 &&
			    strcmp(c->verb, args->pos[1]) == 0)))
				return c;
	return NULL;
}

/* Value of an environment variable, NULL when unset or empty. */
static const char *
pkictl_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/*
 * Checks the base URL: http or https with a host, no credentials, query
 * or fragment.
 * Plain http is accepted only for a loopback host, because the bearer
 * token travels in every request. Copies it without trailing slashes
 * into out.
 */
static enum cli_exit
pkictl_url_check(const char *url, char *out, size_t outlen)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *query = NULL, *frag = NULL;
	char *user = NULL;
	enum cli_exit rc = CLI_EXIT_USAGE;
	size_t n;

	n = strlen(url);
	if (n == 0 || n >= outlen || n > CLI_URL_MAX) {
		pkictl_conf_err("URL too long or empty");
		goto out;
	}
	if ((u = curl_url()) == NULL) {
		cli_err("URL: out of memory");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		pkictl_conf_err("invalid URL (want https://HOST:PORT)");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		pkictl_conf_err("the URL must not carry a query or fragment");
		goto out;
	}
	/* Credentials in the URL would compete with the bearer token. */
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		pkictl_conf_err("the URL must not carry credentials");
		goto out;
	}
	if (strcmp(scheme, "https") != 0) {
		if (strcmp(scheme, "http") != 0) {
			pkictl_conf_err("URL scheme must be https");
			goto out;
		}
		if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "[::1]") != 0 &&
		    strcmp(host, "localhost") != 0) {
			pkictl_conf_err("refusing plain http to a non-loopback "
			    "host: the token would travel in clear text");
			goto out;
		}
	}
	memcpy(out, url, n + 1);
	while (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
	rc = CLI_EXIT_OK;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(query);
	curl_free(frag);
	curl_free(user);
	curl_url_cleanup(u);
	return rc;
}

/*
 * Sets conf->token from --token, else --token-file, else $PKID_TOKEN, else
 * the file named by $PKID_TOKEN_FILE; surrounding whitespace is trimmed.
 * The token must be printable ASCII without spaces (it goes into a
 * header). Messages never show the token.
 */
static enum cli_exit
pkictl_token_load(struct cli_ctx *ctx)
{
	const char *tok, *file = NULL, *src;
	char *data = NULL;
	size_t len = 0, start, end, i;
	enum cli_exit rc = CLI_EXIT_USAGE;

	if ((tok = cli_arg(ctx, CLI_OPT_TOKEN)) != NULL)
		src = "--token";
	else if ((file = cli_arg(ctx, CLI_OPT_TOKEN_FILE)) != NULL)
		src = file;
	else if ((tok = pkictl_env("PKID_TOKEN")) != NULL)
		src = "$PKID_TOKEN";
	else if ((file = pkictl_env("PKID_TOKEN_FILE")) != NULL)
		src = file;
	else {
		pkictl_conf_err("no token: give --token-file F, --token T, "
		    "$PKID_TOKEN or $PKID_TOKEN_FILE");
		goto out;
	}
	if (tok == NULL) {
		if (common_file_read(file, CLI_TOKEN_MAX, &data, &len) == -1) {
			cli_err("token file %s: %s", file, errno == EFBIG ?
			    "too large" : strerror(errno));
			rc = CLI_EXIT_ERROR;
			goto out;
		}
		tok = data;
	} else
		len = strlen(tok);
	for (start = 0; start < len && strchr(" \t\r\n", tok[start]) != NULL;
	    start++)
		;
	for (end = len; end > start && strchr(" \t\r\n", tok[end - 1]) != NULL;
	    end--)
		;
	if (end == start || end - start > CLI_TOKEN_MAX) {
		pkictl_conf_err("token from %s is empty or too long", src);
		goto out;
	}
	for (i = start; i < end; i++) {
		if ((unsigned char)tok[i] <= ' ' ||
		    (unsigned char)tok[i] >= 0x7f) {
			pkictl_conf_err("token from %s holds invalid characters",
			    src);
			goto out;
		}
	}
	if ((ctx->conf.token = strndup(tok + start, end - start)) == NULL) {
		cli_err("token: out of memory");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	if (data != NULL) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
	return rc;
}

/* Resolves URL, CA bundle, timeout and token into ctx->conf. */
static enum cli_exit
pkictl_conf_load(struct cli_ctx *ctx, char *urlbuf, size_t urlbuflen)
{
	const char *url, *s;
	char *end;
	double secs = CLI_TIMEOUT_DEFAULT;
	enum cli_exit rc;

	if ((url = cli_arg(ctx, CLI_OPT_URL)) == NULL &&
	    (url = pkictl_env("PKID_URL")) == NULL)
		url = CLI_URL_DEFAULT;
	if ((rc = pkictl_url_check(url, urlbuf, urlbuflen)) != CLI_EXIT_OK)
		return rc;
	ctx->conf.url = urlbuf;
	if ((ctx->conf.cacert = cli_arg(ctx, CLI_OPT_CACERT)) == NULL)
		ctx->conf.cacert = pkictl_env("PKID_CACERT");
	ctx->conf.json = cli_arg(ctx, CLI_OPT_JSON) != NULL;
	if ((s = cli_arg(ctx, CLI_OPT_TIMEOUT)) != NULL) {
		errno = 0;
		secs = strtod(s, &end);
		if (errno != 0 || end == s || *end != '\0' || !isfinite(secs) ||
		    secs <= 0 || secs > CLI_TIMEOUT_MAX)
			return pkictl_conf_err("--timeout: want seconds in "
			    "(0, %d]", CLI_TIMEOUT_MAX);
	}
	/* Rounded up so a tiny timeout never becomes 0 ("no timeout"). */
	ctx->conf.timeout_ms = (long)(secs * 1000);
	if ((double)ctx->conf.timeout_ms < secs * 1000)
		ctx->conf.timeout_ms++;
	return pkictl_token_load(ctx);
}

/* Checks the operand count and that every option given belongs to the
 * command. */
static enum cli_exit
pkictl_command_check(const struct cli_ctx *ctx)
{
	const struct cli_args *args = ctx->args;
	uint64_t allowed = PKICTL_OPTS_GLOBAL | ctx->cmd->opts;
	size_t i;

	if (args->npos - pkictl_words(ctx->cmd) != ctx->cmd->noperands)
		return cli_usage_err(ctx, "%s%s%s takes %zu operand%s",
		    ctx->cmd->noun, pkictl_sep(ctx->cmd), ctx->cmd->verb,
		    ctx->cmd->noperands, ctx->cmd->noperands == 1 ? "" : "s");
	for (i = 0; i < args->nvals; i++)
		if ((allowed & CLI_OPT_BIT(args->vals[i].opt)) == 0)
			return cli_usage_err(ctx, "%s%s%s does not take %s",
			    ctx->cmd->noun, pkictl_sep(ctx->cmd),
			    ctx->cmd->verb, cli_opt_name(args->vals[i].opt));
	return CLI_EXIT_OK;
}

/*
 * Parse, pick the command, resolve the connection settings, run. Usage
 * errors come before any network or token access.
 */
int
main(int argc, char **argv)
{
	struct cli_args args = { 0 };
	struct cli_ctx ctx = { 0 };
	char urlbuf[CLI_URL_MAX + 1];
	enum cli_exit rc = CLI_EXIT_ERROR;
	bool curl_up = false;

	/* common/ helpers log failures with timestamps; pkictl reports them
	 * itself, once, as "pkictl: ...". */
	common_log_set_level(COMMON_LOG_ERR);
	ctx.args = &args;
	if (argc < 1 || (args.vals = calloc((size_t)argc,
	    sizeof(*args.vals))) == NULL) {
		cli_err("out of memory");
		goto out;
	}
	if ((rc = pkictl_parse(argc, argv, &args)) != CLI_EXIT_OK)
		goto out;
	if (cli_arg(&ctx, CLI_OPT_HELP) != NULL) {
		pkictl_usage(stdout, args.npos > 0 ? args.pos[0] : NULL);
		rc = CLI_EXIT_OK;
		goto out;
	}
	if ((ctx.cmd = pkictl_command_find(&args)) == NULL) {
		if (args.npos == 0)
			cli_err("no command");
		else if (args.npos == 1)
			cli_err("%.32s: missing a command word", args.pos[0]);
		else
			cli_err("unknown command: %.32s %.32s", args.pos[0],
			    args.pos[1]);
		pkictl_usage(stderr, args.npos > 0 ? args.pos[0] : NULL);
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if ((rc = pkictl_command_check(&ctx)) != CLI_EXIT_OK)
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		cli_err("libcurl initialisation failed");
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	curl_up = true;
	if ((rc = pkictl_conf_load(&ctx, urlbuf, sizeof(urlbuf))) !=
	    CLI_EXIT_OK)
		goto out;
	if ((ctx.http = cli_http_new(&ctx.conf)) == NULL) {
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	rc = ctx.cmd->run(&ctx);
out:
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "%s: stdout: %s\n", CLI_PROG, strerror(errno));
		if (rc == CLI_EXIT_OK)
			rc = CLI_EXIT_ERROR;
	}
	cli_http_free(ctx.http);
	if (curl_up)
		curl_global_cleanup();
	if (ctx.conf.token != NULL) {
		OPENSSL_cleanse(ctx.conf.token, strlen(ctx.conf.token));
		free(ctx.conf.token);
	}
	free(args.vals);
	return (int)rc;
}
