/*
 * cli/output.c — what pkictl prints: aligned tables for lists, aligned
 * "key: value" blocks for single objects, or the server's JSON as one
 * pretty document with --json; plus atomic file writes for --out.
 *
 * Every string that came from the server is cleaned of control
 * characters before it reaches a terminal. Private keys are never part
 * of the human output.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define OUT_DEPTH_MAX	4	/* nested objects flattened in key: value blocks */
#define OUT_KEY_MAX	64	/* one key of a column's "a.b|c" path */
#define OUT_LABEL_MAX	40	/* PEM label shown, e.g. "CERTIFICATE" */
#define OUT_SECRET_KEY	"private_key"
#define OUT_PEM_BEGIN	"-----BEGIN "
#define OUT_NONE	"-"	/* shown for null, missing and empty values */

struct out_line {
	char	*key;
	char	*val;
};

struct out_lines {
	struct out_line	*v;
	size_t		 n;
	size_t		 cap;
};

/*
 * Replaces ASCII controls (C0 and DEL) and UTF-8 encoded C1 controls
 * (U+0080..U+009F, which some terminals obey) with '?'. The result is
 * never longer than s.
 */
char *
cli_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out, *o;

	if ((out = malloc(strlen(s) + 1)) == NULL)
		return NULL;
	for (o = out; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*o++ = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			*o++ = '?';
			p++;
		} else
			*o++ = (char)*p;
	}
	*o = '\0';
	return out;
}

/* Display columns of a UTF-8 string (one per code point). */
static size_t
out_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void
out_pad(size_t n)
{
	while (n-- > 0)
		putchar(' ');
}

/* "[PEM CERTIFICATE]" or "[PEM CERTIFICATE x3]" for a PEM text. */
static char *
out_pem_summary(const char *s)
{
	char label[OUT_LABEL_MAX + 1], buf[OUT_LABEL_MAX + 32];
	const char *p, *first = strstr(s, OUT_PEM_BEGIN);
	size_t count = 0, n;
	char *clean = NULL, *ret = NULL;

	if (first == NULL)
		return cli_clean(s);
	for (p = first; p != NULL; p = strstr(p + 1, OUT_PEM_BEGIN))
		count++;
	first += strlen(OUT_PEM_BEGIN);
	n = strcspn(first, "-\r\n");
	if (n > OUT_LABEL_MAX)
		n = OUT_LABEL_MAX;
	memcpy(label, first, n);
	label[n] = '\0';
	if ((clean = cli_clean(label)) == NULL)
		goto out;
	if (count == 1)
		snprintf(buf, sizeof(buf), "[PEM %s]", clean);
	else
		snprintf(buf, sizeof(buf), "[PEM %s x%zu]", clean, count);
	ret = strdup(buf);
out:
	free(clean);
	return ret;
}

/*
 * Formats one JSON value for people: strings cleaned (PEM summarized),
 * numbers as written, null/missing/empty as "-", arrays joined with
 * ", ", objects as "{...}" (blocks flatten them before getting here).
 * Returns a string to free(), NULL on allocation failure.
 */
static char *
out_format(const json_t *v)
{
	struct common_buf b;
	char num[64], *item;
	const json_t *e;
	size_t i;

	switch (v != NULL ? json_typeof(v) : JSON_NULL) {
	case JSON_STRING:
		if (json_string_length(v) == 0)
			return strdup(OUT_NONE);
		if (strstr(json_string_value(v), OUT_PEM_BEGIN) != NULL)
			return out_pem_summary(json_string_value(v));
		return cli_clean(json_string_value(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		return strdup(num);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.15g", json_real_value(v));
		return strdup(num);
	case JSON_TRUE:
		return strdup("true");
	case JSON_FALSE:
		return strdup("false");
	case JSON_OBJECT:
		return strdup(json_object_size(v) == 0 ? OUT_NONE : "{...}");
	case JSON_ARRAY:
		if (json_array_size(v) == 0)
			return strdup(OUT_NONE);
		common_buf_init(&b, CLI_BODY_MAX);
		json_array_foreach(v, i, e) {
			if ((item = out_format(e)) == NULL ||
			    (i > 0 && common_buf_addstr(&b, ", ") == -1) ||
			    common_buf_addstr(&b, item) == -1) {
				free(item);
				common_buf_free(&b);
				return NULL;
			}
			free(item);
		}
		return common_buf_steal(&b, NULL);
	case JSON_NULL:
	default:
		return strdup(OUT_NONE);
	}
}

/*
 * The value named by keys ("a.b|c": the first alternative present and
 * not null; a dot descends into a nested object), or NULL.
 */
static const json_t *
out_lookup(const json_t *obj, const char *keys)
{
	char key[OUT_KEY_MAX];
	const char *alt = keys, *seg, *end;
	const json_t *v;
	size_t altlen, n;

	while (*alt != '\0') {
		altlen = strcspn(alt, "|");
		v = obj;
		for (seg = alt; v != NULL && seg < alt + altlen; seg = end + 1) {
			end = seg + strcspn(seg, ".|");
			n = (size_t)(end - seg);
			if (n >= sizeof(key)) {
				v = NULL;
				break;
			}
			memcpy(key, seg, n);
			key[n] = '\0';
			v = json_object_get(v, key);
			if (*end != '.')
				break;
		}
		if (v != NULL && !json_is_null(v))
			return v;
		alt += altlen;
		if (*alt == '|')
			alt++;
	}
	return NULL;
}

/* Formats every cell first so each column is as wide as its widest
 * cell; the last column is not padded. */
int
cli_out_table(const json_t *items, const struct cli_column *cols,
    size_t ncols)
{
	char **cells = NULL;
	size_t *width = NULL, nrows, r, c, w;
	int rc = -1;

	nrows = json_array_size(items) + 1;
	if ((cells = calloc(nrows * ncols, sizeof(*cells))) == NULL ||
	    (width = calloc(ncols, sizeof(*width))) == NULL)
		goto out;
	for (r = 0; r < nrows; r++) {
		for (c = 0; c < ncols; c++) {
			cells[r * ncols + c] = r == 0 ?
			    strdup(cols[c].header) :
			    out_format(out_lookup(json_array_get(items, r - 1),
			    cols[c].keys));
			if (cells[r * ncols + c] == NULL)
				goto out;
			if ((w = out_width(cells[r * ncols + c])) > width[c])
				width[c] = w;
		}
	}
	for (r = 0; r < nrows; r++) {
		for (c = 0; c < ncols; c++) {
			fputs(cells[r * ncols + c], stdout);
			if (c + 1 < ncols)
				out_pad(width[c] - out_width(cells[r * ncols +
				    c]) + 2);
		}
		putchar('\n');
	}
	rc = 0;
out:
	if (rc == -1)
		cli_err("out of memory printing a table");
	for (r = 0; cells != NULL && r < nrows * ncols; r++)
		free(cells[r]);
	free(cells);
	free(width);
	return rc;
}

/* Appends key (cleaned) and val (taken over, may be NULL on OOM). */
static int
out_lines_add(struct out_lines *L, const char *key, char *val)
{
	struct out_line *nv;
	size_t cap;
	char *k = NULL;
	int rc = -1;

	if (val == NULL || (k = cli_clean(key)) == NULL)
		goto out;
	if (L->n == L->cap) {
		cap = L->cap == 0 ? 32 : L->cap * 2;
		if ((nv = realloc(L->v, cap * sizeof(*nv))) == NULL)
			goto out;
		L->v = nv;
		L->cap = cap;
	}
	L->v[L->n].key = k;	/* steal */
	L->v[L->n].val = val;	/* steal */
	L->n++;
	k = val = NULL;
	rc = 0;
out:
	free(k);
	free(val);
	return rc;
}

/* Adds key = v, descending into non-empty objects as "key.inner". */
static int
out_flatten(struct out_lines *L, const char *key, const json_t *v, int depth)
{
	struct common_buf name;
	const char *k;
	json_t *e;
	int rc = -1;

	if (strcmp(key, OUT_SECRET_KEY) == 0 ||
	    (strlen(key) > strlen("." OUT_SECRET_KEY) &&
	    strcmp(key + strlen(key) - strlen("." OUT_SECRET_KEY),
	    "." OUT_SECRET_KEY) == 0))
		return 0;
	if (!json_is_object(v) || json_object_size(v) == 0 ||
	    depth >= OUT_DEPTH_MAX)
		return out_lines_add(L, key, out_format(v));
	common_buf_init(&name, CLI_PATH_MAX);
	json_object_foreach((json_t *)v, k, e) {
		name.len = 0;
		if (common_buf_addf(&name, "%s.%s", key, k) == -1 ||
		    out_flatten(L, (const char *)name.data, e, depth + 1) == -1)
			goto out;
	}
	rc = 0;
out:
	common_buf_free(&name);
	return rc;
}

/* Prints the lines with the values aligned after "key:". */
static void
out_lines_print(const struct out_lines *L)
{
	size_t i, w = 0;

	for (i = 0; i < L->n; i++)
		if (out_width(L->v[i].key) > w)
			w = out_width(L->v[i].key);
	for (i = 0; i < L->n; i++) {
		printf("%s:", L->v[i].key);
		out_pad(w - out_width(L->v[i].key) + 1);
		puts(L->v[i].val);
	}
}

static void
out_lines_free(struct out_lines *L)
{
	size_t i;

	for (i = 0; i < L->n; i++) {
		free(L->v[i].key);
		free(L->v[i].val);
	}
	free(L->v);
}

/* Prints the named keys of obj (every key when keys is NULL). */
static int
out_block(const json_t *obj, const char *const *keys)
{
	struct out_lines L = { 0 };
	const char *k;
	json_t *v;
	int rc = -1;

	if (keys == NULL) {
		json_object_foreach((json_t *)obj, k, v)
			if (out_flatten(&L, k, v, 1) == -1)
				goto out;
	} else {
		for (; *keys != NULL; keys++)
			if ((v = json_object_get(obj, *keys)) != NULL &&
			    out_flatten(&L, *keys, v, 1) == -1)
				goto out;
	}
	out_lines_print(&L);
	rc = 0;
out:
	if (rc == -1)
		cli_err("out of memory printing an object");
	out_lines_free(&L);
	return rc;
}

int
cli_out_object(const json_t *obj)
{
	return out_block(obj, NULL);
}

int
cli_out_fields(const json_t *obj, const char *const *keys)
{
	return out_block(obj, keys);
}

int
cli_out_json(const json_t *doc)
{
	if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) == -1 ||
	    putchar('\n') == EOF) {
		cli_err("stdout: cannot write the JSON answer");
		return -1;
	}
	return 0;
}

enum cli_exit
cli_out_list(const struct cli_ctx *ctx, const json_t *doc, const char *key,
    const struct cli_column *cols, size_t ncols)
{
	const char *next;
	char *clean;

	if (ctx->conf.json)
		return cli_out_json(doc) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
	if (!json_is_array(json_object_get(doc, key))) {
		cli_err("the answer has no \"%s\" list", key);
		return CLI_EXIT_ERROR;
	}
	if (cli_out_table(json_object_get(doc, key), cols, ncols) == -1)
		return CLI_EXIT_ERROR;
	next = json_string_value(json_object_get(doc, "next_page_token"));
	if (next != NULL && next[0] != '\0' && (clean = cli_clean(next)) !=
	    NULL) {
		cli_err("more results: add --all, or --page-token %s", clean);
		free(clean);
	}
	return CLI_EXIT_OK;
}

enum cli_exit
cli_out_single(const struct cli_ctx *ctx, const json_t *obj)
{
	if (ctx->conf.json)
		return cli_out_json(obj) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
	if (!json_is_object(obj)) {
		cli_err("the answer is not a JSON object");
		return CLI_EXIT_ERROR;
	}
	return cli_out_object(obj) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

enum cli_exit
cli_out_file(const char *path, const char *data, size_t len, mode_t mode)
{
	if (common_file_write(path, data, len, mode) == -1) {
		cli_err("%s: %s", path, strerror(errno));
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

int
cli_out_raw(const char *s, size_t len)
{
	if (fwrite(s, 1, len, stdout) != len) {
		cli_err("stdout: %s", strerror(errno));
		return -1;
	}
	return 0;
}
