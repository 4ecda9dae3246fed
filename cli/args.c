/*
 * cli/args.c — turning option values into request fields: IDs checked
 * before they become path segments, numbers checked before they are
 * sent, files read with a size limit, query strings percent-encoded.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/cli.h"

/* Larger day counts are sent as reals; the bound also keeps the cast to
 * long long defined. The binary links no libm: no floor()/ceil(). */
#define ARGS_INT_REAL_MAX	1e15

enum cli_exit
cli_check_id(const struct cli_ctx *ctx, const char *what, const char *id)
{
	/* "." and ".." pass common_id_valid but would be dot segments. */
	if (id == NULL || !common_id_valid(id) || strcmp(id, ".") == 0 ||
	    strcmp(id, "..") == 0)
		return cli_usage_err(ctx, "invalid %s ID (want 1-64 of "
		    "A-Z a-z 0-9 . _ -)", what);
	return CLI_EXIT_OK;
}

/* Parses s as a finite number > 0; -1 otherwise. */
static int
args_days_parse(const char *s, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d <= 0)
		return -1;
	*out = d;
	return 0;
}

enum cli_exit
cli_set_days(const struct cli_ctx *ctx, json_t *obj, const char *key,
    enum cli_opt opt)
{
	const char *s = cli_arg(ctx, opt);
	json_t *v;
	double d;

	if (s == NULL)
		return CLI_EXIT_OK;
	if (args_days_parse(s, &d) == -1)
		return cli_usage_err(ctx, "%s: want a number of days > 0 "
		    "(fractions allowed)", cli_opt_name(opt));
	/* Whole days go out as integers, as a person would write them. */
	if (d <= ARGS_INT_REAL_MAX && d == (double)(long long)d)
		v = json_integer((json_int_t)d);
	else
		v = json_real(d);
	if (json_object_set_new(obj, key, v) == -1) {
		cli_err("%s: out of memory", key);
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

enum cli_exit
cli_get_int(const struct cli_ctx *ctx, enum cli_opt opt, long long min,
    long long max, long long *out, bool *given)
{
	const char *s = cli_arg(ctx, opt);
	char *end;
	long long v;

	*given = s != NULL;
	if (s == NULL)
		return CLI_EXIT_OK;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return cli_usage_err(ctx, "%s: want an integer in [%lld, %lld]",
		    cli_opt_name(opt), min, max);
	*out = v;
	return CLI_EXIT_OK;
}

int
cli_set_str(const struct cli_ctx *ctx, json_t *obj, const char *key,
    enum cli_opt opt)
{
	const char *s = cli_arg(ctx, opt);

	if (s == NULL)
		return 0;
	if (json_object_set_new(obj, key, json_string(s)) == -1) {
		cli_err("%s: not valid UTF-8 text", cli_opt_name(opt));
		return -1;
	}
	return 0;
}

/* The file is read with CLI_INPUT_MAX as its limit, the server body
 * limit being of the same order. */
enum cli_exit
cli_set_file(const struct cli_ctx *ctx, json_t *obj, const char *key,
    enum cli_opt opt, bool required)
{
	const char *path = cli_arg(ctx, opt);
	char *data = NULL;
	size_t len = 0;
	enum cli_exit rc = CLI_EXIT_ERROR;

	if (path == NULL) {
		if (required)
			return cli_usage_err(ctx, "missing %s", cli_opt_name(opt));
		return CLI_EXIT_OK;
	}
	if (common_file_read(path, CLI_INPUT_MAX, &data, &len) == -1) {
		if (errno == EFBIG)
			cli_err("%s: larger than %d KiB", path,
			    CLI_INPUT_MAX / 1024);
		else
			cli_err("%s: %s", path, strerror(errno));
		goto out;
	}
	if (json_object_set_new(obj, key, json_stringn(data, len)) == -1) {
		cli_err("%s: not a text (PEM) file", path);
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	/* The file may be a private key: wipe our copy. */
	if (data != NULL) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
	return rc;
}

enum cli_exit
cli_require(const struct cli_ctx *ctx, uint64_t mask)
{
	int o;

	for (o = 0; o < CLI_OPT__MAX; o++)
		if ((mask & CLI_OPT_BIT(o)) != 0 &&
		    cli_arg(ctx, (enum cli_opt)o) == NULL)
			return cli_usage_err(ctx, "missing %s",
			    cli_opt_name((enum cli_opt)o));
	return CLI_EXIT_OK;
}

/*
 * Appends "?key=value" (or "&key=value" when path has a query) to the
 * NUL-terminated path; the value is percent-encoded except for RFC 3986
 * unreserved characters. -1 and path unchanged when it does not fit.
 */
int
cli_query_add(char *path, size_t pathlen, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len, start;
	const unsigned char *p;
	int rc = -1;

	if (value == NULL)
		return 0;
	start = len = strlen(path);
	if (common_path(path + len, pathlen - len, "%c%s=",
	    strchr(path, '?') != NULL ? '&' : '?', key) == -1)
		goto out;
	len = strlen(path);
	for (p = (const unsigned char *)value; *p != '\0'; p++) {
		if (len + 4 > pathlen)
			goto out;
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL)
			path[len++] = (char)*p;
		else {
			path[len++] = '%';
			path[len++] = hex[*p >> 4];
			path[len++] = hex[*p & 0x0f];
		}
	}
	path[len] = '\0';
	rc = 0;
out:
	if (rc == -1)
		path[start] = '\0';
	return rc;
}
