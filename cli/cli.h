/*
 * cli/ — pkictl, the admin CLI of the management API v1 (docs/api.md).
 *
 * pkictl.c parses the command line (global and command options may appear
 * anywhere among the command words), resolves the URL, token and CA bundle
 * and dispatches to a command. The commands live in cmd_ca.c, cmd_cert.c,
 * cmd_eab.c, cmd_est.c, cmd_audit.c and cmd_misc.c, each exporting a
 * table of struct
 * cli_command; they talk to the server through http.c (one libcurl easy
 * handle per run), turn option values into request fields with args.c
 * and print through output.c (aligned tables, key: value blocks, or the
 * server's JSON with --json).
 *
 * Exit status: 0 success, 1 HTTP error status or local failure, 2 usage
 * error, 3 connection or TLS failure. The token is never printed.
 */
#ifndef PKID_CLI_H
#define PKID_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/common.h"

#define CLI_PROG		"pkictl"
#define CLI_URL_DEFAULT		"https://127.0.0.1:9443"
#define CLI_API_PREFIX		"/api/v1"
#define CLI_BODY_MAX		(16 * 1024 * 1024)	/* response body cap */
#define CLI_INPUT_MAX		(256 * 1024)	/* PEM/JSON file given to a flag */
#define CLI_TOKEN_MAX		8192		/* bearer token, bytes */
#define CLI_TIMEOUT_DEFAULT	30		/* seconds, whole request */
#define CLI_TIMEOUT_MAX		3600		/* seconds */
#define CLI_URL_MAX		1024		/* --url / $PKID_URL */
#define CLI_PATH_MAX		2048		/* request path with query */
#define CLI_PAGES_MAX		10000		/* pages followed by --all */
#define CLI_POS_MAX		8		/* positional words */
#define CLI_CA_KEY_DEFAULT	"ECDSA_P256"	/* ca create without --key-algorithm */
#define CLI_REVOKE_REASON_DEFAULT "unspecified"

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,	/* HTTP error status, bad answer, local I/O */
	CLI_EXIT_USAGE = 2,	/* bad command line */
	CLI_EXIT_CONNECT = 3,	/* connection or TLS failure */
};

/* Every option pkictl knows, global and per command. */
enum cli_opt {
	CLI_OPT_URL,
	CLI_OPT_TOKEN,
	CLI_OPT_TOKEN_FILE,
	CLI_OPT_CACERT,
	CLI_OPT_JSON,
	CLI_OPT_TIMEOUT,
	CLI_OPT_HELP,
	CLI_OPT_NAME,
	CLI_OPT_TYPE,
	CLI_OPT_ISSUER,
	CLI_OPT_SUBJECT,
	CLI_OPT_KEY_ALGORITHM,
	CLI_OPT_KEY_BACKEND,
	CLI_OPT_VALIDITY_DAYS,
	CLI_OPT_PATH_LEN,
	CLI_OPT_DNS_SUFFIX,
	CLI_OPT_IP_RANGE,
	CLI_OPT_OUT,
	CLI_OPT_CERT,
	CLI_OPT_CHAIN,
	CLI_OPT_CA,
	CLI_OPT_STAGE,
	CLI_OPT_EXPIRING,
	CLI_OPT_LIMIT,
	CLI_OPT_PAGE_TOKEN,
	CLI_OPT_ALL,
	CLI_OPT_PROFILE,
	CLI_OPT_SAN,
	CLI_OPT_RENEW_BEFORE,
	CLI_OPT_CSR,
	CLI_OPT_KEY,
	CLI_OPT_VERSION,
	CLI_OPT_KEY_OUT,
	CLI_OPT_REASON,
	CLI_OPT_CONFIG,
	CLI_OPT_RESOURCE,
	CLI_OPT_ONE_TIME,
	CLI_OPT_REUSABLE,
	CLI_OPT_EXPIRES_IN,
	CLI_OPT_ALG,
	CLI_OPT_NOTE,
	CLI_OPT_USERNAME,
	CLI_OPT_PASSWORD_FILE,
	CLI_OPT_PASSWORD,
	CLI_OPT_LABEL,
	CLI_OPT_STATUS,
	CLI_OPT_NOW,		/* cert delete --now */
	CLI_OPT_OBJECT,		/* audit --object */
	CLI_OPT_ACTION,		/* audit --action */
	CLI_OPT_WHO,		/* audit --who */
	CLI_OPT_NEW_KEY,	/* ca renew --new-key */
	CLI_OPT_REISSUE_LEAVES,	/* ca renew --reissue-leaves */
	CLI_OPT__MAX
};

#define CLI_OPT_BIT(o)	(UINT64_C(1) << (o))
/* Options every list command takes. */
#define CLI_OPTS_LIST	(CLI_OPT_BIT(CLI_OPT_LIMIT) | \
	CLI_OPT_BIT(CLI_OPT_PAGE_TOKEN) | CLI_OPT_BIT(CLI_OPT_ALL))

struct cli_optval {
	enum cli_opt	 opt;
	const char	*value;		/* borrowed from argv; "" for flags */
};

/* The parsed command line; every string is borrowed from argv. */
struct cli_args {
	const char		*pos[CLI_POS_MAX];	/* noun, verb, operands */
	size_t			 npos;
	struct cli_optval	*vals;			/* in command-line order */
	size_t			 nvals;
};

/* Connection settings resolved from flags and the environment. */
struct cli_conf {
	const char	*url;		/* base URL, no trailing slash */
	char		*token;		/* owned; cleansed when freed */
	const char	*cacert;	/* CA bundle file or NULL (system) */
	bool		 json;		/* --json */
	long		 timeout_ms;
};

struct cli_http;
struct cli_ctx;

/* One command: "NOUN VERB OPERANDS", or "NOUN OPERANDS" when verb is ""
 * (the noun's only command); opts is the mask of the command's own
 * options (global ones are always allowed). */
struct cli_command {
	const char	*noun;
	const char	*verb;
	size_t		 noperands;	/* exact number of operands (IDs) */
	uint64_t	 opts;
	const char	*usage;		/* operands and options, for messages */
	enum cli_exit	(*run)(struct cli_ctx *ctx);
};

struct cli_ctx {
	struct cli_conf			 conf;
	const struct cli_args		*args;
	const struct cli_command	*cmd;
	struct cli_http			*http;
};

/* Command tables, each ended by an entry with noun NULL. */
extern const struct cli_command cli_ca_commands[];
extern const struct cli_command cli_cert_commands[];
extern const struct cli_command cli_misc_commands[];
extern const struct cli_command cli_eab_commands[];
extern const struct cli_command cli_est_commands[];
extern const struct cli_command cli_audit_commands[];

/* ---- pkictl.c: messages and option access ---------------------------- */

/* Prints "pkictl: message" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "pkictl: message" and the usage of the current command on
 * stderr; returns CLI_EXIT_USAGE. */
enum cli_exit cli_usage_err(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The last value given for opt, or NULL when absent ("" for a flag). */
const char *cli_arg(const struct cli_ctx *ctx, enum cli_opt opt);
/* Iterates over every value of a repeatable option: start with *iter = 0;
 * returns NULL after the last one. */
const char *cli_arg_next(const struct cli_ctx *ctx, enum cli_opt opt,
    size_t *iter);
/* The operand at index i (after noun and verb). */
const char *cli_operand(const struct cli_ctx *ctx, size_t i);
/* The "--name" spelling of an option, for messages. */
const char *cli_opt_name(enum cli_opt opt);

/* ---- args.c: validating option values --------------------------------- */

/* Validates an object ID operand (safe path segment); usage error if not. */
enum cli_exit cli_check_id(const struct cli_ctx *ctx, const char *what,
    const char *id);
/* Adds opt's value, when given, to obj under key as a JSON number of days
 * (fractions allowed, > 0). Usage error on a bad number. */
enum cli_exit cli_set_days(const struct cli_ctx *ctx, json_t *obj,
    const char *key, enum cli_opt opt);
/* Parses opt's value as an integer in [min, max] into *out; *given says
 * whether it was on the command line. Usage error on a bad value. */
enum cli_exit cli_get_int(const struct cli_ctx *ctx, enum cli_opt opt,
    long long min, long long max, long long *out, bool *given);
/* Adds opt's value, when given, to obj under key as a string. */
int cli_set_str(const struct cli_ctx *ctx, json_t *obj, const char *key,
    enum cli_opt opt);
/* Reads the file named by opt (at most CLI_INPUT_MAX bytes) and adds its
 * text to obj under key. When required and the option is absent: usage
 * error. Returns CLI_EXIT_ERROR (message printed) when unreadable. */
enum cli_exit cli_set_file(const struct cli_ctx *ctx, json_t *obj,
    const char *key, enum cli_opt opt, bool required);
/* Usage error naming the first option of mask that is absent. */
enum cli_exit cli_require(const struct cli_ctx *ctx, uint64_t mask);
/* Appends "?key=value" or "&key=value" to a path buffer, percent-encoding
 * the value; no-op when value is NULL. -1 when it does not fit. */
int cli_query_add(char *path, size_t pathlen, const char *key,
    const char *value);

/* ---- http.c: the management API client -------------------------------- */

/* Creates the client for conf (borrowed; must outlive it). NULL on
 * failure (message printed). */
struct cli_http *cli_http_new(const struct cli_conf *conf);
void cli_http_free(struct cli_http *h);
/*
 * Sends METHOD CLI_API_PREFIX path with body (serialized as JSON, or no
 * body when NULL; POST without a body sends "{}"). On a 2xx answer sets
 * *out to the parsed JSON (NULL for an empty body) when want_json, else
 * to a JSON string holding the raw body. Otherwise prints the error
 * ("pkictl: STATUS: message" or the connection failure) and returns
 * CLI_EXIT_ERROR or CLI_EXIT_CONNECT. The caller decrefs *out.
 */
enum cli_exit cli_http_call(struct cli_http *h, const char *method,
    const char *path, const json_t *body, bool want_json, json_t **out);
/*
 * GETs a list at path (which may carry a query), starting at page_token
 * (NULL: the first page). With all, follows next_page_token and merges
 * every page's array under key into the first answer, whose
 * next_page_token becomes null. *out as for cli_http_call (an object
 * holding an array under key).
 */
enum cli_exit cli_http_list(struct cli_http *h, const char *path,
    const char *key, const char *page_token, bool all, json_t **out);

/* ---- output.c: what people and scripts read ---------------------------- */

/* A table column: header and the object keys to show, tried in order
 * ("stage|current.stage"; a dot descends into a nested object). */
struct cli_column {
	const char	*header;
	const char	*keys;
};

/* Prints the server's JSON, pretty, as one document on stdout. */
int cli_out_json(const json_t *doc);
/* Prints items (an array of objects) as an aligned table on stdout. */
int cli_out_table(const json_t *items, const struct cli_column *cols,
    size_t ncols);
/* Prints an object as aligned "key: value" lines, nested objects as
 * "outer.inner", PEM values summarized and private keys never shown. */
int cli_out_object(const json_t *obj);
/* Prints only the named keys of obj (NULL-terminated list) the same way. */
int cli_out_fields(const json_t *obj, const char *const *keys);
/* Prints the answer of a list command: --json document or table, then a
 * hint on stderr when more pages exist. */
enum cli_exit cli_out_list(const struct cli_ctx *ctx, const json_t *doc,
    const char *key, const struct cli_column *cols, size_t ncols);
/* Prints a single object: --json document or key: value block. */
enum cli_exit cli_out_single(const struct cli_ctx *ctx, const json_t *obj);
/* Writes data to path atomically with mode; CLI_EXIT_ERROR (message
 * printed) on failure. */
enum cli_exit cli_out_file(const char *path, const char *data, size_t len,
    mode_t mode);
/* Writes s to stdout as is; -1 on a write error. */
int cli_out_raw(const char *s, size_t len);
/* Copy of s to free() with control characters (terminal escapes from a
 * hostile server, C1 controls included) replaced by '?'; NULL on
 * allocation failure. */
char *cli_clean(const char *s);

/* ---- cmd_misc.c: steps shared by the commands ------------------------------ */

/* Runs a list command: GET path with --limit, --page-token and --all
 * applied, then prints the array under key as a table (or --json). */
enum cli_exit cli_list_run(struct cli_ctx *ctx, const char *path,
    const char *key, const struct cli_column *cols, size_t ncols);
/* Sends METHOD path with body (may be NULL) and prints the object the
 * server answers (key: value block, or --json). */
enum cli_exit cli_object_run(struct cli_ctx *ctx, const char *method,
    const char *path, const json_t *body);
/* DELETEs path and reports "deleted ID" (or the answer with --json). */
enum cli_exit cli_delete_run(struct cli_ctx *ctx, const char *path,
    const char *id);
/* Formats the API path fmt (holding one "%s") with the command's first
 * operand, after checking it is a valid ID of kind what. */
enum cli_exit cli_id_path(const struct cli_ctx *ctx, const char *what,
    char *out, size_t outlen, const char *fmt);
/* cli_id_path, then cli_object_run of METHOD on that path with no body. */
enum cli_exit cli_id_object_run(struct cli_ctx *ctx, const char *what,
    const char *method, const char *fmt);
/* cli_id_path, then cli_delete_run of that path ("deleted ID"). */
enum cli_exit cli_id_delete_run(struct cli_ctx *ctx, const char *what,
    const char *fmt);
/* "NOUN delete ID [--now]" of an object whose deletion the server
 * schedules (path from cli_id_path): with --now, DELETE ...?now=true as
 * cli_delete_run; otherwise prints "deletion of [SHOWN ]ID scheduled for
 * TIME (cancel with: pkictl NOUN cancel-deletion ID)" (or the answer with
 * --json). shown may be NULL. */
enum cli_exit cli_deletion_run(struct cli_ctx *ctx, const char *what,
    const char *fmt, const char *shown);

#endif
