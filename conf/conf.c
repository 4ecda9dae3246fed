/*
 * conf/conf.c — reads the JSON configuration over the defaults.
 *
 * The parser is driven by one table, conf_keys[], that maps every JSON
 * key path ("listen.https") to a field of struct conf, its kind and its
 * bounds. An object member whose path is a strict prefix of some table
 * path is a section and is walked recursively; any other member that is
 * not in the table is refused, so a misspelt key never goes unnoticed.
 * Members whose name starts with "_" are comments at every level.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "conf/conf.h"

#define CONF_PATH_MAX		128	/* longest key path shown in errors */
#define CONF_SHOW_MAX		64	/* characters of a value shown in errors */
#define CONF_HOST_MAX		253	/* DNS name length limit (RFC 1035) */
#define CONF_PORT_MAX		65535
#define CONF_WORKERS_MAX	256
#define CONF_BYTES_MIN		1024
#define CONF_BYTES_MAX		(64 * 1024 * 1024)
#define CONF_SECONDS_MIN	1
#define CONF_SECONDS_MAX	3600
#define CONF_DAYS_MAX		36500.0	/* a hundred years */
#define CONF_HOURS_MAX		8760.0	/* a year */
#define CONF_SERVER_NAMES_MAX	32
#define CONF_STRING_MAX		4096	/* bytes of any string value */

enum conf_kind {
	CONF_K_STRING,		/* char *, checked by a string rule */
	CONF_K_INT,		/* int, JSON integer within [min, max] */
	CONF_K_SIZE,		/* size_t, JSON integer within [min, max] */
	CONF_K_BOOL,		/* bool */
	CONF_K_REAL,		/* double, JSON number within (min, max] */
	CONF_K_NAMES,		/* char ** + count, array of strings */
};

enum conf_rule {
	CONF_R_ANY,		/* any string without control characters */
	CONF_R_NONEMPTY,	/* non-empty */
	CONF_R_LISTEN,		/* "" or host:port, port 0..65535 */
	CONF_R_HOSTPORT,	/* "" or host:port, port 1..65535 */
	CONF_R_URL,		/* "" or http(s)://... */
	CONF_R_LOG_LEVEL,	/* debug | info | warn | error */
	CONF_R_KEY_ALG,		/* one of conf_key_algorithms[] */
	CONF_R_SUBJECT,		/* RFC 4514-looking: non-empty with '=' */
};

struct conf_key {
	const char	*path;		/* dotted JSON key path */
	enum conf_kind	 kind;
	size_t		 off;		/* offset of the field in struct conf */
	enum conf_rule	 rule;		/* CONF_K_STRING only */
	double		 min, max;	/* numeric bounds, see conf_kind */
};

#define KEY_STR(p, f, r)	{ p, CONF_K_STRING, offsetof(struct conf, f), r, 0, 0 }
#define KEY_INT(p, f, lo, hi)	{ p, CONF_K_INT, offsetof(struct conf, f), CONF_R_ANY, lo, hi }
#define KEY_SIZE(p, f, lo, hi)	{ p, CONF_K_SIZE, offsetof(struct conf, f), CONF_R_ANY, lo, hi }
#define KEY_BOOL(p, f)		{ p, CONF_K_BOOL, offsetof(struct conf, f), CONF_R_ANY, 0, 0 }
#define KEY_REAL(p, f, hi)	{ p, CONF_K_REAL, offsetof(struct conf, f), CONF_R_ANY, 0, hi }

static const struct conf_key conf_keys[] = {
	KEY_STR("data_dir", data_dir, CONF_R_NONEMPTY),
	KEY_INT("workers", workers, 0, CONF_WORKERS_MAX),
	KEY_STR("log_level", log_level, CONF_R_LOG_LEVEL),
	KEY_BOOL("access_log", access_log),
	KEY_STR("listen.https", listen.https, CONF_R_LISTEN),
	KEY_STR("listen.http", listen.http, CONF_R_LISTEN),
	KEY_STR("listen.mgmt", listen.mgmt, CONF_R_LISTEN),
	KEY_STR("public_url.https", public_url.https, CONF_R_URL),
	KEY_STR("public_url.http", public_url.http, CONF_R_URL),
	KEY_STR("public_url.mgmt", public_url.mgmt, CONF_R_URL),
	KEY_SIZE("server.max_header_bytes", server.max_header_bytes,
	    CONF_BYTES_MIN, CONF_BYTES_MAX),
	KEY_SIZE("server.max_body_bytes", server.max_body_bytes,
	    CONF_BYTES_MIN, CONF_BYTES_MAX),
	KEY_INT("server.timeout_seconds", server.timeout_seconds,
	    CONF_SECONDS_MIN, CONF_SECONDS_MAX),
	KEY_INT("server.drain_seconds", server.drain_seconds,
	    CONF_SECONDS_MIN, CONF_SECONDS_MAX),
	KEY_STR("ca.master_key_file", ca.master_key_file, CONF_R_ANY),
	KEY_STR("ca.root_subject", ca.root_subject, CONF_R_SUBJECT),
	KEY_STR("ca.issuing_subject", ca.issuing_subject, CONF_R_SUBJECT),
	KEY_STR("ca.key_algorithm", ca.key_algorithm, CONF_R_KEY_ALG),
	KEY_REAL("ca.root_validity_days", ca.root_validity_days,
	    CONF_DAYS_MAX),
	KEY_REAL("ca.issuing_validity_days", ca.issuing_validity_days,
	    CONF_DAYS_MAX),
	{ "ca.server_names", CONF_K_NAMES, offsetof(struct conf,
	    ca.server_names), CONF_R_NONEMPTY, 1, CONF_SERVER_NAMES_MAX },
	KEY_REAL("ca.crl_next_update_hours", ca.crl_next_update_hours,
	    CONF_HOURS_MAX),
	KEY_REAL("certificates.default_validity_days",
	    certificates.default_validity_days, CONF_DAYS_MAX),
	KEY_REAL("certificates.default_renew_before_days",
	    certificates.default_renew_before_days, CONF_DAYS_MAX),
	KEY_REAL("tokens.default_ttl_days", tokens.default_ttl_days,
	    CONF_DAYS_MAX),
	KEY_INT("acme.http01_port", acme.http01_port, 1, CONF_PORT_MAX),
	KEY_INT("acme.tlsalpn01_port", acme.tlsalpn01_port, 1,
	    CONF_PORT_MAX),
	KEY_STR("acme.dns_resolver", acme.dns_resolver, CONF_R_HOSTPORT),
};

static const char *const conf_key_algorithms[] = {
	"ECDSA_P256", "ECDSA_P384", "RSA2048", "RSA3072", "RSA4096",
};

/* State of one conf_load call. */
struct conf_parse {
	const char	*file;		/* path for error messages */
	char		*err;
	size_t		 errlen;
};

/*
 * Writes "FILE: KEY: reason" (or "FILE: reason" when key is NULL) into
 * the caller's error buffer.
 */
static void __attribute__((format(printf, 3, 4)))
conf_fail(struct conf_parse *p, const char *key, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(why, sizeof(why), fmt, ap) < 0)
		why[0] = '\0';
	va_end(ap);
	if (p->err == NULL || p->errlen == 0)
		return;
	if (key != NULL)
		snprintf(p->err, p->errlen, "%s: %s: %s", p->file, key, why);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->file, why);
}

/*
 * Quotes an untrusted string for an error message: at most CONF_SHOW_MAX
 * characters, quotes and backslashes escaped, control bytes as \xNN.
 */
static void
conf_show(const char *s, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (outlen < 8) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (i = 0; i < len && i < CONF_SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (o + 6 >= outlen)
			break;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(out + o, outlen - o, "\\x%02x", c);
			o += 4;
		} else
			out[o++] = (char)c;
	}
	if (i < len && o + 4 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/*
 * prefix.name for an error message about an unknown member: bytes that
 * are not printable ASCII become '?' and a long name is cut with "...".
 */
static void
conf_safe_key(const char *prefix, const char *name, char *out,
    size_t outlen)
{
	size_t i, o = 0, plen = strlen(prefix);

	if (outlen < 8) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	if (plen > 0 && plen + 1 < outlen - 4) {
		memcpy(out, prefix, plen);
		out[plen] = '.';
		o = plen + 1;
	}
	for (i = 0; name[i] != '\0' && o < outlen - 4 && i < CONF_SHOW_MAX;
	    i++) {
		unsigned char ch = (unsigned char)name[i];

		out[o++] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
	}
	if (name[i] != '\0') {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static const char *
conf_json_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

enum conf_hp {
	CONF_HP_OK,
	CONF_HP_FORM,		/* not host:port or [v6]:port */
	CONF_HP_RANGE,		/* well formed, port above 65535 */
};

/*
 * Parses "host:port" or "[v6]:port" without copying: the host is
 * (*h, *hlen), brackets excluded. The host is a DNS name or IPv4 literal
 * of [A-Za-z0-9._-] (an IPv6 literal must be bracketed, since its colons
 * would make the port ambiguous); the port is 1 to 5 decimal digits.
 */
static enum conf_hp
conf_hostport_parse(const char *s, const char **h, size_t *hlen, int *port)
{
	struct in6_addr a6;
	const char *colon, *q;
	char v6[INET6_ADDRSTRLEN + 1];
	size_t i;
	long pv = 0;

	if (s[0] == '[') {
		if ((q = strchr(s, ']')) == NULL || q[1] != ':')
			return CONF_HP_FORM;
		*h = s + 1;
		*hlen = (size_t)(q - *h);
		colon = q + 1;
		if (*hlen == 0 || *hlen >= sizeof(v6))
			return CONF_HP_FORM;
		memcpy(v6, *h, *hlen);
		v6[*hlen] = '\0';
		if (inet_pton(AF_INET6, v6, &a6) != 1)
			return CONF_HP_FORM;
	} else {
		if ((colon = strchr(s, ':')) == NULL ||
		    strchr(colon + 1, ':') != NULL)
			return CONF_HP_FORM;
		*h = s;
		*hlen = (size_t)(colon - s);
		if (*hlen == 0 || *hlen > CONF_HOST_MAX)
			return CONF_HP_FORM;
		for (i = 0; i < *hlen; i++) {
			unsigned char c = (unsigned char)s[i];

			if (!((c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
			    c == '_'))
				return CONF_HP_FORM;
		}
	}
	for (q = colon + 1; *q != '\0'; q++) {
		if (*q < '0' || *q > '9' || q - colon > 5)
			return CONF_HP_FORM;
		pv = pv * 10 + (*q - '0');
	}
	if (q == colon + 1)
		return CONF_HP_FORM;
	if (pv > CONF_PORT_MAX)
		return CONF_HP_RANGE;
	*port = (int)pv;
	return CONF_HP_OK;
}

/*
 * Splits "host:port" or "[v6]:port" (port 0..65535) into *host, a copy
 * to free() without brackets, and *port. 0 or -1.
 */
int
conf_split_hostport(const char *s, char **host, int *port)
{
	const char *h;
	size_t hlen;
	int pv;

	if (host != NULL)
		*host = NULL;
	if (s == NULL || conf_hostport_parse(s, &h, &hlen, &pv) != CONF_HP_OK)
		return -1;
	if (host != NULL && (*host = strndup(h, hlen)) == NULL)
		return -1;
	if (port != NULL)
		*port = pv;
	return 0;
}

/*
 * Applies a string rule to value. Returns 0, or -1 with the error already
 * written for key.
 */
static int
conf_check_string(struct conf_parse *p, const char *key,
    enum conf_rule rule, const char *v)
{
	char show[CONF_SHOW_MAX * 4 + 8];
	enum common_log_level lvl;
	const char *host;
	size_t i, hlen, len = strlen(v);
	int port = 0;

	conf_show(v, len, show, sizeof(show));
	for (i = 0; i < len; i++) {
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
			conf_fail(p, key, "control character in %s", show);
			return -1;
		}
	}
	switch (rule) {
	case CONF_R_ANY:
		return 0;
	case CONF_R_NONEMPTY:
		if (len == 0)
			goto empty;
		return 0;
	case CONF_R_LISTEN:
	case CONF_R_HOSTPORT:
		if (len == 0)
			return 0;
		switch (conf_hostport_parse(v, &host, &hlen, &port)) {
		case CONF_HP_OK:
			break;
		case CONF_HP_FORM:
			conf_fail(p, key, "expected host:port, got %s", show);
			return -1;
		case CONF_HP_RANGE:
			conf_fail(p, key, "port out of range 0..65535, got %s",
			    show);
			return -1;
		}
		if (rule == CONF_R_HOSTPORT && port == 0) {
			conf_fail(p, key, "port out of range 1..65535, got %s",
			    show);
			return -1;
		}
		return 0;
	case CONF_R_URL:
		if (len == 0)
			return 0;
		if ((strncmp(v, "http://", 7) != 0 || len == 7) &&
		    (strncmp(v, "https://", 8) != 0 || len == 8)) {
			conf_fail(p, key, "expected \"\" or a URL starting "
			    "with http:// or https://, got %s", show);
			return -1;
		}
		if (strpbrk(v, " \t") != NULL) {
			conf_fail(p, key, "space in URL %s", show);
			return -1;
		}
		return 0;
	case CONF_R_LOG_LEVEL:
		if (common_log_level_parse(v, &lvl) == -1) {
			conf_fail(p, key, "expected one of debug, info, warn, "
			    "error, got %s", show);
			return -1;
		}
		return 0;
	case CONF_R_KEY_ALG:
		for (i = 0; i < sizeof(conf_key_algorithms) /
		    sizeof(conf_key_algorithms[0]); i++)
			if (strcmp(v, conf_key_algorithms[i]) == 0)
				return 0;
		conf_fail(p, key, "expected one of ECDSA_P256, ECDSA_P384, "
		    "RSA2048, RSA3072, RSA4096, got %s", show);
		return -1;
	case CONF_R_SUBJECT:
		if (len == 0)
			goto empty;
		if (strchr(v, '=') == NULL) {
			conf_fail(p, key, "expected an RFC 4514 name such as "
			    "\"CN=Example,O=Org\", got %s", show);
			return -1;
		}
		return 0;
	}
	conf_fail(p, key, "internal error: unknown rule");
	return -1;
empty:
	conf_fail(p, key, "must not be empty");
	return -1;
}

/*
 * Reads a JSON string member into a fresh copy. Refuses non-strings,
 * embedded NUL bytes and values over CONF_STRING_MAX.
 */
static int
conf_get_string(struct conf_parse *p, const char *key, json_t *v,
    enum conf_rule rule, char **out)
{
	const char *s;
	char *copy;
	size_t len;

	if (!json_is_string(v)) {
		conf_fail(p, key, "expected string, got %s", conf_json_type(v));
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (len != strlen(s)) {
		conf_fail(p, key, "NUL byte in string");
		return -1;
	}
	if (len > CONF_STRING_MAX) {
		conf_fail(p, key, "string longer than %d bytes",
		    CONF_STRING_MAX);
		return -1;
	}
	if (conf_check_string(p, key, rule, s) == -1)
		return -1;
	if ((copy = strdup(s)) == NULL) {
		conf_fail(p, key, "out of memory");
		return -1;
	}
	*out = copy;
	return 0;
}

static void
conf_names_free(char **names, size_t n)
{
	size_t i;

	if (names == NULL)
		return;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Reads an array of 1..max non-empty strings into *names / *n. */
static int
conf_get_names(struct conf_parse *p, const char *key, json_t *v,
    const struct conf_key *k, char ***names, size_t *n)
{
	char path[CONF_PATH_MAX + 16];
	char **list = NULL;
	size_t i, count = 0;
	int rc = -1;

	if (!json_is_array(v)) {
		conf_fail(p, key, "expected array of strings, got %s",
		    conf_json_type(v));
		goto out;
	}
	count = json_array_size(v);
	if (count < (size_t)k->min || count > (size_t)k->max) {
		conf_fail(p, key, "expected %d to %d names, got %zu",
		    (int)k->min, (int)k->max, count);
		goto out;
	}
	if ((list = calloc(count, sizeof(*list))) == NULL) {
		conf_fail(p, key, "out of memory");
		goto out;
	}
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		if (conf_get_string(p, path, json_array_get(v, i), k->rule,
		    &list[i]) == -1)
			goto out;
	}
	conf_names_free(*names, *n);
	*names = list;	/* steal */
	*n = count;
	list = NULL;
	rc = 0;
out:
	conf_names_free(list, count);
	return rc;
}

/* Stores JSON value v into the field that k describes. */
static int
conf_apply(struct conf_parse *p, struct conf *c, const struct conf_key *k,
    json_t *v)
{
	char *field = (char *)c + k->off;
	json_int_t iv;
	double dv;
	char *s;

	switch (k->kind) {
	case CONF_K_STRING:
		if (conf_get_string(p, k->path, v, k->rule, &s) == -1)
			return -1;
		free(*(char **)field);
		*(char **)field = s;	/* steal */
		return 0;
	case CONF_K_INT:
	case CONF_K_SIZE:
		if (!json_is_integer(v)) {
			conf_fail(p, k->path, "expected integer, got %s",
			    conf_json_type(v));
			return -1;
		}
		iv = json_integer_value(v);
		if ((double)iv < k->min || (double)iv > k->max) {
			conf_fail(p, k->path, "must be %.0f..%.0f, got %lld",
			    k->min, k->max, (long long)iv);
			return -1;
		}
		if (k->kind == CONF_K_INT)
			*(int *)(void *)field = (int)iv;
		else
			*(size_t *)(void *)field = (size_t)iv;
		return 0;
	case CONF_K_BOOL:
		if (!json_is_boolean(v)) {
			conf_fail(p, k->path, "expected true or false, got %s",
			    conf_json_type(v));
			return -1;
		}
		*(bool *)(void *)field = json_is_true(v);
		return 0;
	case CONF_K_REAL:
		if (!json_is_number(v)) {
			conf_fail(p, k->path, "expected number, got %s",
			    conf_json_type(v));
			return -1;
		}
		dv = json_number_value(v);
		/* The negated form also refuses NaN. */
		if (!(dv > k->min && dv <= k->max)) {
			conf_fail(p, k->path, "must be greater than %g and at "
			    "most %g, got %g", k->min, k->max, dv);
			return -1;
		}
		*(double *)(void *)field = dv;
		return 0;
	case CONF_K_NAMES:
		return conf_get_names(p, k->path, v, k,
		    (char ***)(void *)field, &c->ca.nserver_names);
	}
	conf_fail(p, k->path, "internal error: unknown kind");
	return -1;
}

/* True when path names a section: some table key lies below it. */
static bool
conf_is_section(const char *path)
{
	size_t i, n = strlen(path);

	for (i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
		if (strncmp(conf_keys[i].path, path, n) == 0 &&
		    conf_keys[i].path[n] == '.')
			return true;
	return false;
}

static const struct conf_key *
conf_key_find(const char *path)
{
	size_t i;

	for (i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
		if (strcmp(conf_keys[i].path, path) == 0)
			return &conf_keys[i];
	return NULL;
}

/*
 * Walks the members of obj, whose key path is prefix ("" at the top).
 * Comment members are skipped; sections recurse; leaves are applied.
 */
static int
conf_walk(struct conf_parse *p, struct conf *c, json_t *obj,
    const char *prefix)
{
	char path[CONF_PATH_MAX];
	const struct conf_key *k;
	const char *name;
	json_t *v;

	json_object_foreach(obj, name, v) {
		if (name[0] == '_')
			continue;
		/* A dotted member name is not a path: {"listen.http": ..}. */
		if (common_path(path, sizeof(path), "%s%s%s", prefix,
		    prefix[0] != '\0' ? "." : "", name) == -1 ||
		    strchr(name, '.') != NULL) {
			conf_safe_key(prefix, name, path, sizeof(path));
			conf_fail(p, path, "unknown key (nest objects instead "
			    "of dotted names)");
			return -1;
		}
		if ((k = conf_key_find(path)) != NULL) {
			if (conf_apply(p, c, k, v) == -1)
				return -1;
			continue;
		}
		if (!conf_is_section(path)) {
			conf_safe_key(prefix, name, path, sizeof(path));
			conf_fail(p, path, "unknown key");
			return -1;
		}
		if (!json_is_object(v)) {
			conf_fail(p, path, "expected object, got %s",
			    conf_json_type(v));
			return -1;
		}
		if (conf_walk(p, c, v, path) == -1)
			return -1;
	}
	return 0;
}

/* Checks that involve more than one key, after every key is read. */
static int
conf_check_cross(struct conf_parse *p, const struct conf *c)
{
	const char *const names[] = { "listen.https", "listen.http",
	    "listen.mgmt" };
	const char *const addrs[] = { c->listen.https, c->listen.http,
	    c->listen.mgmt };
	const size_t n = sizeof(names) / sizeof(names[0]);
	char *host;
	size_t i, j;
	int port;

	/* Two listeners on one fixed address could never both bind. */
	for (i = 0; i < n; i++) {
		if (addrs[i][0] == '\0')
			continue;
		if (conf_split_hostport(addrs[i], &host, &port) == -1)
			continue;
		free(host);
		if (port == 0)
			continue;
		for (j = i + 1; j < n; j++)
			if (strcmp(addrs[i], addrs[j]) == 0) {
				conf_fail(p, names[j], "same address as %s",
				    names[i]);
				return -1;
			}
	}
	if (c->ca.issuing_validity_days > c->ca.root_validity_days) {
		conf_fail(p, "ca.issuing_validity_days", "%g days is longer "
		    "than ca.root_validity_days (%g)",
		    c->ca.issuing_validity_days, c->ca.root_validity_days);
		return -1;
	}
	if (c->certificates.default_renew_before_days >=
	    c->certificates.default_validity_days) {
		conf_fail(p, "certificates.default_renew_before_days",
		    "%g days is not shorter than "
		    "certificates.default_validity_days (%g)",
		    c->certificates.default_renew_before_days,
		    c->certificates.default_validity_days);
		return -1;
	}
	return 0;
}

/*
 * Built-in defaults, the same values conf/pkid.json lists. NULL on
 * allocation failure.
 */
struct conf *
conf_defaults(void)
{
	static const char *const server_names[] = { "localhost",
	    "127.0.0.1" };
	struct conf *c;
	size_t i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->workers = 0;
	c->access_log = true;
	c->server.max_header_bytes = 16384;
	c->server.max_body_bytes = 1048576;
	c->server.timeout_seconds = 30;
	c->server.drain_seconds = 10;
	c->ca.root_validity_days = 3650;
	c->ca.issuing_validity_days = 1825;
	c->ca.crl_next_update_hours = 24;
	c->certificates.default_validity_days = 90;
	c->certificates.default_renew_before_days = 30;
	c->tokens.default_ttl_days = 30;
	c->acme.http01_port = 80;
	c->acme.tlsalpn01_port = 443;
	if ((c->data_dir = strdup("var")) == NULL ||
	    (c->log_level = strdup("info")) == NULL ||
	    (c->listen.https = strdup("127.0.0.1:8443")) == NULL ||
	    (c->listen.http = strdup("127.0.0.1:8080")) == NULL ||
	    (c->listen.mgmt = strdup("127.0.0.1:9443")) == NULL ||
	    (c->public_url.https = strdup("")) == NULL ||
	    (c->public_url.http = strdup("")) == NULL ||
	    (c->public_url.mgmt = strdup("")) == NULL ||
	    (c->ca.master_key_file = strdup("")) == NULL ||
	    (c->ca.root_subject = strdup("CN=pkid Root CA")) == NULL ||
	    (c->ca.issuing_subject = strdup("CN=pkid Issuing CA")) == NULL ||
	    (c->ca.key_algorithm = strdup("ECDSA_P256")) == NULL ||
	    (c->acme.dns_resolver = strdup("")) == NULL)
		goto fail;
	c->ca.nserver_names = sizeof(server_names) / sizeof(server_names[0]);
	if ((c->ca.server_names = calloc(c->ca.nserver_names,
	    sizeof(*c->ca.server_names))) == NULL)
		goto fail;
	for (i = 0; i < c->ca.nserver_names; i++)
		if ((c->ca.server_names[i] = strdup(server_names[i])) == NULL)
			goto fail;
	return c;
fail:
	conf_free(c);
	return NULL;
}

/*
 * Reads path (at most CONF_FILE_MAX bytes) over the defaults. The file
 * is read once into memory and parsed from there, so the size checked
 * is the size parsed. Duplicate keys are refused: with two "listen"
 * objects, which one wins would be a guess. On failure returns NULL and
 * writes "FILE: KEY: REASON" into err.
 */
struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	struct conf_parse p = { path, err, errlen };
	struct conf *c = NULL, *res = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	char *text = NULL;
	size_t len;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL) {
		p.file = "(null)";
		conf_fail(&p, NULL, "no configuration file given");
		goto out;
	}
	if (common_file_read(path, CONF_FILE_MAX, &text, &len) == -1) {
		if (errno == EFBIG)
			conf_fail(&p, NULL, "file larger than %d bytes",
			    CONF_FILE_MAX);
		else
			conf_fail(&p, NULL, "cannot read: %s",
			    strerror(errno));
		goto out;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		conf_fail(&p, NULL, "malformed JSON at line %d, column %d: %s",
		    jerr.line, jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		conf_fail(&p, NULL, "expected a JSON object at the top, got %s",
		    conf_json_type(root));
		goto out;
	}
	if ((c = conf_defaults()) == NULL) {
		conf_fail(&p, NULL, "out of memory");
		goto out;
	}
	if (conf_walk(&p, c, root, "") == -1 || conf_check_cross(&p, c) == -1)
		goto out;
	if ((c->path = strdup(path)) == NULL) {
		conf_fail(&p, NULL, "out of memory");
		goto out;
	}
	res = c;	/* steal */
	c = NULL;
out:
	conf_free(c);
	json_decref(root);
	free(text);
	return res;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->data_dir);
	free(c->log_level);
	free(c->listen.https);
	free(c->listen.http);
	free(c->listen.mgmt);
	free(c->public_url.https);
	free(c->public_url.http);
	free(c->public_url.mgmt);
	free(c->ca.master_key_file);
	free(c->ca.root_subject);
	free(c->ca.issuing_subject);
	free(c->ca.key_algorithm);
	conf_names_free(c->ca.server_names, c->ca.nserver_names);
	free(c->acme.dns_resolver);
	free(c);
}
