/*
 * conf/conf.c — reads the JSON configuration over the defaults.
 *
 * The parser is driven by one table, conf_keys[], that maps every JSON
 * key path ("listen.https") to a field of struct conf, its kind and its
 * bounds. An object member whose path is a strict prefix of some table
 * path is a section and is walked recursively; any other member that is
 * not in the table is refused, so a misspelt key never goes unnoticed.
 * Members whose name starts with "_" are comments at every level.
 * acme.profiles, an object of objects keyed by profile name, has a
 * parser of its own (conf_get_profiles) with the same discipline. EST
 * labels (est.default_label and each member of est.labels) are read
 * through a second table, conf_est_label_keys[], that maps label fields
 * to struct conf_est_label the same way.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

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
#define CONF_ACME_LIST_MAX	256	/* acme.dns_suffixes / ip_ranges */
#define CONF_ACME_IDENTS_MAX	100	/* names per order; ca/ caps SANs
					   per certificate at 100 */
#define CONF_AUTHZ_DAYS_MAX	365.0	/* reuse of a valid authorization */
#define CONF_VALIDATION_MAX	300	/* seconds for one validation */
#define CONF_PROFILE_NAME_MAX	64	/* ACME profile name, bytes */
#define CONF_PROFILE_DAYS	90.0	/* a profile's default validity */
#define CONF_LABEL_MAX		63	/* DNS label (RFC 1035) */
#define CONF_CIDR_TEXT_MAX	(INET6_ADDRSTRLEN + 8)	/* "addr/128" */
#define CONF_REALM_MAX		128	/* est.realm, bytes */
#define CONF_EST_LABEL_DAYS	365.0	/* an EST label's default validity */
#define CONF_EST_RETRY_AFTER	60	/* est.retry_after_seconds default */
#define CONF_DAY_SECONDS	86400
#define CONF_WEEK_SECONDS	(7 * 86400)
#define CONF_HISTORY_MAX	1000	/* lifecycle.history_limit */
#define CONF_PENDING_DAYS_MAX	365.0	/* lifecycle.deletion_pending_days */
#define CONF_WARNING_DAYS_MAX	3650.0	/* lifecycle.expiry_warning_days */
#define CONF_CRL_HOURS_MIN	0.01	/* crl.interval_hours: 36 seconds */
/* nextUpdate is twice the interval and ca/ signs CRLs at most a year and
 * a day ahead, so the interval stops at half a year (183 days). */
#define CONF_CRL_HOURS_MAX	4392.0
#define CONF_DEBOUNCE_MAX	300.0	/* crl.debounce_seconds */
#define CONF_RETRY_MAX		100	/* notifications.retry_max */
#define CONF_WEBHOOK_TIMEOUT	10	/* seconds, default */
#define CONF_WEBHOOK_TIMEOUT_MAX 300
#define CONF_WEBHOOK_SECRET_MAX	1024	/* bytes of an HMAC key */

enum conf_kind {
	CONF_K_STRING,		/* char *, checked by a string rule */
	CONF_K_INT,		/* int, JSON integer within [min, max] */
	CONF_K_SIZE,		/* size_t, JSON integer within [min, max] */
	CONF_K_BOOL,		/* bool */
	CONF_K_REAL,		/* double, JSON number within (min, max] */
	CONF_K_NAMES,		/* char ** + size_t count (at cnt), array of
				   strings, each checked by the rule */
	CONF_K_PROFILES,	/* acme.profiles, see conf_get_profiles */
	CONF_K_EST_LABEL,	/* est.default_label, see conf_get_est_label */
	CONF_K_EST_LABELS,	/* est.labels, see conf_get_est_labels */
	CONF_K_RANGE,		/* double, JSON number within [min, max] */
	CONF_K_LC_PROFILES,	/* lifecycle.profiles, see
				   conf_get_lc_profiles */
	CONF_K_WEBHOOKS,	/* notifications.webhooks, see
				   conf_get_webhooks */
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
	CONF_R_ID,		/* "" or an id: 1..64 of [A-Za-z0-9._-] */
	CONF_R_DNS_SUFFIX,	/* DNS name, optional leading '.'; stored
				   lower-case without the dot */
	CONF_R_CIDR,		/* IPv4/IPv6 "addr/prefix", no host bits;
				   stored in canonical text */
	CONF_R_PKID_PROFILE,	/* one of conf_pkid_profiles[] */
	CONF_R_EST_AUTH,	/* one of conf_est_auths[] */
	CONF_R_EST_KEY_ALG,	/* one of conf_est_key_algorithms[] */
	CONF_R_REALM,		/* 1..CONF_REALM_MAX printable ASCII, no
				   quote or backslash (quoted in a header) */
};

struct conf_key {
	const char	*path;		/* dotted JSON key path */
	enum conf_kind	 kind;
	size_t		 off;		/* offset of the field in struct conf
					   (struct conf_est_label for
					   conf_est_label_keys[]) */
	size_t		 cnt;		/* CONF_K_NAMES: offset of the count */
	enum conf_rule	 rule;		/* CONF_K_STRING and CONF_K_NAMES */
	double		 min, max;	/* numeric bounds, see conf_kind */
};

#define KEY_STR(p, f, r)	{ p, CONF_K_STRING, offsetof(struct conf, f), 0, r, 0, 0 }
#define KEY_INT(p, f, lo, hi)	{ p, CONF_K_INT, offsetof(struct conf, f), 0, CONF_R_ANY, lo, hi }
#define KEY_SIZE(p, f, lo, hi)	{ p, CONF_K_SIZE, offsetof(struct conf, f), 0, CONF_R_ANY, lo, hi }
#define KEY_BOOL(p, f)		{ p, CONF_K_BOOL, offsetof(struct conf, f), 0, CONF_R_ANY, 0, 0 }
#define KEY_REAL(p, f, hi)	{ p, CONF_K_REAL, offsetof(struct conf, f), 0, CONF_R_ANY, 0, hi }
#define KEY_RANGE(p, f, lo, hi)	{ p, CONF_K_RANGE, offsetof(struct conf, f), 0, CONF_R_ANY, lo, hi }
#define KEY_LIST(p, f, n, r, lo, hi) \
	{ p, CONF_K_NAMES, offsetof(struct conf, f), offsetof(struct conf, n), r, lo, hi }

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
	KEY_LIST("ca.server_names", ca.server_names, ca.nserver_names,
	    CONF_R_NONEMPTY, 1, CONF_SERVER_NAMES_MAX),
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
	KEY_STR("acme.ca_id", acme.ca_id, CONF_R_ID),
	KEY_STR("acme.terms_of_service", acme.terms_of_service, CONF_R_URL),
	KEY_STR("acme.website", acme.website, CONF_R_URL),
	KEY_BOOL("acme.eab_required", acme.eab_required),
	KEY_STR("acme.default_profile", acme.default_profile,
	    CONF_R_NONEMPTY),
	{ "acme.profiles", CONF_K_PROFILES, offsetof(struct conf,
	    acme.profiles), 0, CONF_R_ANY, 1, CONF_ACME_PROFILES_MAX },
	KEY_LIST("acme.dns_suffixes", acme.dns_suffixes, acme.nsuffixes,
	    CONF_R_DNS_SUFFIX, 0, CONF_ACME_LIST_MAX),
	KEY_LIST("acme.ip_ranges", acme.ip_ranges, acme.nranges, CONF_R_CIDR,
	    0, CONF_ACME_LIST_MAX),
	KEY_REAL("acme.authz_lifetime_days", acme.authz_lifetime_days,
	    CONF_AUTHZ_DAYS_MAX),
	KEY_BOOL("acme.authz_reuse", acme.authz_reuse),
	KEY_REAL("acme.order_lifetime_hours", acme.order_lifetime_hours,
	    CONF_HOURS_MAX),
	KEY_INT("acme.validation_timeout_seconds",
	    acme.validation_timeout_seconds, 1, CONF_VALIDATION_MAX),
	KEY_INT("acme.retry_after_seconds", acme.retry_after_seconds, 1,
	    CONF_SECONDS_MAX),
	KEY_INT("acme.max_identifiers", acme.max_identifiers, 1,
	    CONF_ACME_IDENTS_MAX),
	KEY_BOOL("est.enabled", est.enabled),
	{ "est.default_label", CONF_K_EST_LABEL, offsetof(struct conf,
	    est.default_label), 0, CONF_R_ANY, 0, 0 },
	{ "est.labels", CONF_K_EST_LABELS, offsetof(struct conf, est.labels),
	    0, CONF_R_ANY, 0, CONF_EST_LABELS_MAX },
	KEY_STR("est.realm", est.realm, CONF_R_REALM),
	KEY_INT("est.retry_after_seconds", est.retry_after_seconds, 1,
	    CONF_SECONDS_MAX),
	KEY_INT("lifecycle.scan_interval_seconds",
	    lifecycle.scan_interval_seconds, 1, CONF_DAY_SECONDS),
	KEY_INT("lifecycle.history_limit", lifecycle.history_limit, 1,
	    CONF_HISTORY_MAX),
	KEY_RANGE("lifecycle.deletion_pending_days",
	    lifecycle.deletion_pending_days, 0, CONF_PENDING_DAYS_MAX),
	KEY_INT("lifecycle.renewal_jitter_seconds",
	    lifecycle.renewal_jitter_seconds, 0, CONF_DAY_SECONDS),
	KEY_INT("lifecycle.retry_min_seconds", lifecycle.retry_min_seconds,
	    1, CONF_DAY_SECONDS),
	KEY_INT("lifecycle.retry_max_seconds", lifecycle.retry_max_seconds,
	    1, CONF_WEEK_SECONDS),
	KEY_REAL("lifecycle.expiry_warning_days",
	    lifecycle.expiry_warning_days, CONF_WARNING_DAYS_MAX),
	{ "lifecycle.profiles", CONF_K_LC_PROFILES, offsetof(struct conf,
	    lifecycle.profiles), 0, CONF_R_ANY, 0,
	    CONF_LIFECYCLE_PROFILES_MAX },
	KEY_RANGE("crl.interval_hours", crl.interval_hours,
	    CONF_CRL_HOURS_MIN, CONF_CRL_HOURS_MAX),
	KEY_RANGE("crl.debounce_seconds", crl.debounce_seconds, 0,
	    CONF_DEBOUNCE_MAX),
	{ "notifications.webhooks", CONF_K_WEBHOOKS, offsetof(struct conf,
	    notifications.webhooks), 0, CONF_R_ANY, 0, CONF_WEBHOOKS_MAX },
	KEY_INT("notifications.retry_max", notifications.retry_max, 1,
	    CONF_RETRY_MAX),
};

/* Keys that were removed, with what replaces them (for the error). */
static const struct conf_removed_key {
	const char	*path;
	const char	*instead;
} conf_removed_keys[] = {
	{ "ca.crl_next_update_hours", "crl.interval_hours (CRLs are rebuilt "
	    "every interval; nextUpdate is twice it)" },
};

/* Event names a webhook may subscribe to; the same list, in the same
 * order, as enum lifecycle_event (lifecycle/ sits above conf/). */
static const char *const conf_event_names[] = {
	"renewal_window", "renewed", "renewal_failed", "deployment_failed",
	"expiring", "revoked",
};

#define LKEY_STR(p, f, r) \
	{ p, CONF_K_STRING, offsetof(struct conf_est_label, f), 0, r, 0, 0 }
#define LKEY_BOOL(p, f) \
	{ p, CONF_K_BOOL, offsetof(struct conf_est_label, f), 0, CONF_R_ANY, \
	    0, 0 }
#define LKEY_REAL(p, f, hi) \
	{ p, CONF_K_REAL, offsetof(struct conf_est_label, f), 0, CONF_R_ANY, \
	    0, hi }

/* The fields of an EST label object; path is the member name. */
static const struct conf_key conf_est_label_keys[] = {
	LKEY_STR("ca_id", ca_id, CONF_R_ID),
	LKEY_STR("profile", profile, CONF_R_PKID_PROFILE),
	LKEY_REAL("validity_days", validity_days, CONF_DAYS_MAX),
	LKEY_STR("auth", auth, CONF_R_EST_AUTH),
	/* Only a string here: est/ loads and checks the bundle at start. */
	LKEY_STR("trust_bundle", trust_bundle, CONF_R_ANY),
	LKEY_BOOL("allow_new_key", allow_new_key),
	LKEY_BOOL("pop_required", pop_required),
	LKEY_BOOL("manual_approval", manual_approval),
	LKEY_BOOL("serverkeygen", serverkeygen),
	LKEY_STR("key_algorithm", key_algorithm, CONF_R_EST_KEY_ALG),
};

/* EST client authentication modes of a label. */
static const char *const conf_est_auths[] = {
	"basic", "cert", "basic_or_cert", "basic_and_cert",
};

/* Keys pkid can generate for /serverkeygen (CA keys plus Ed25519). */
static const char *const conf_est_key_algorithms[] = {
	"ECDSA_P256", "ECDSA_P384", "RSA2048", "RSA3072", "RSA4096",
	"ED25519",
};

/* RFC 7030 operation names: a label equal to one would make
 * /.well-known/est/NAME ambiguous to read. */
static const char *const conf_est_operations[] = {
	"cacerts", "simpleenroll", "simplereenroll", "fullcmc",
	"serverkeygen", "csrattrs",
};

/* Built-in values of every EST label field (conf/pkid.json lists them). */
static const struct conf_est_label conf_est_label_default = {
	.name = "",
	.ca_id = "",
	.profile = "tls_client",
	.validity_days = CONF_EST_LABEL_DAYS,
	.auth = "basic_or_cert",
	.trust_bundle = "",
	.allow_new_key = true,
	.pop_required = false,
	.manual_approval = false,
	.serverkeygen = true,
	.key_algorithm = "ECDSA_P256",
};

#define CONF_NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* The pkid profiles an ACME profile may map to (ca/ names). */
static const char *const conf_pkid_profiles[] = {
	"tls_server_or_client", "tls_server", "tls_client", "code_signing",
};

/* ACME identifier types a profile may allow. */
enum conf_ident {
	CONF_IDENT_DNS,
	CONF_IDENT_IP,
	CONF_IDENT__MAX
};

static const char *const conf_ident_names[CONF_IDENT__MAX] = {
	[CONF_IDENT_DNS] = "dns",
	[CONF_IDENT_IP] = "ip",
};

/* The built-in acme.profiles (conf/pkid.json lists the same). */
static const struct conf_profile_default {
	const char	*name;
	const char	*pkid_profile;
	double		 validity_days;
	const char	*description;
} conf_profile_defaults[] = {
	{ "tls_server", "tls_server", 90,
	    "TLS server certificate, 90 days" },
	{ "tls_server_or_client", "tls_server_or_client", 90,
	    "TLS server and client certificate, 90 days" },
	{ "shortlived", "tls_server", 7,
	    "Short-lived TLS server certificate, 7 days" },
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
 * Checks an ACME DNS suffix: an optional leading '.', then a DNS name
 * (letters of any case, digits, '-', labels of 1..63, at most 253, a
 * top-level label not all digits). NULL when valid, else why not.
 */
static const char *
conf_dns_suffix_check(const char *s)
{
	size_t len, llen;
	const char *label;
	bool digits;

	if (s[0] == '.')
		s++;
	if ((len = strlen(s)) == 0)
		return "empty name";
	if (len > CONF_HOST_MAX)
		return "longer than 253 characters";
	for (;;) {
		label = s;
		digits = true;
		for (; *s != '\0' && *s != '.'; s++) {
			if (!isascii((unsigned char)*s) ||
			    !(isalnum((unsigned char)*s) || *s == '-'))
				return "only letters, digits, '-' and '.' are "
				    "allowed";
			if (!isdigit((unsigned char)*s))
				digits = false;
		}
		llen = (size_t)(s - label);
		if (llen == 0)
			return "empty label";
		if (llen > CONF_LABEL_MAX)
			return "label longer than 63 characters";
		if (label[0] == '-' || label[llen - 1] == '-')
			return "label starts or ends with '-'";
		if (*s == '\0')
			break;
		s++;
	}
	return digits ? "all-numeric top-level label" : NULL;
}

/*
 * Parses "addr/prefix" (IPv4 or IPv6, prefix within the address size,
 * no bits set beyond it, so the range reads as meant). When out is not
 * NULL the canonical text goes there. NULL when valid, else why not.
 */
static const char *
conf_cidr_parse(const char *s, char *out, size_t outlen)
{
	unsigned char addr[16];
	char buf[CONF_CIDR_TEXT_MAX], text[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/'), *q;
	int af, alen, prefix = 0, bits, i;

	if (slash == NULL)
		return "no /prefix";
	if ((size_t)(slash - s) >= sizeof(buf))
		return "address too long";
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1) {
		af = AF_INET;
		alen = 4;
	} else if (inet_pton(AF_INET6, buf, addr) == 1) {
		af = AF_INET6;
		alen = 16;
	} else
		return "not an IPv4 or IPv6 address";
	for (q = slash + 1; *q != '\0'; q++) {
		if (*q < '0' || *q > '9' || q - slash > 3)
			return "bad prefix length";
		prefix = prefix * 10 + (*q - '0');
	}
	if (q == slash + 1 || prefix > alen * 8)
		return "bad prefix length";
	for (i = 0; i < alen; i++) {
		bits = prefix - i * 8;
		if (bits >= 8)
			continue;
		if (bits <= 0 ? addr[i] != 0 :
		    (addr[i] & (0xff >> bits)) != 0)
			return "host bits are set";
	}
	if (out != NULL && (inet_ntop(af, addr, text, sizeof(text)) == NULL ||
	    common_path(out, outlen, "%s/%d", text, prefix) == -1))
		return "cannot format";
	return NULL;
}

/*
 * Rewrites a checked value into its stored form: DNS suffixes lose the
 * leading dot and are lower-cased, CIDR ranges become canonical. Takes
 * *s and replaces it; 0, or -1 on allocation failure.
 */
static int
conf_normalize(enum conf_rule rule, char **s)
{
	char cidr[CONF_CIDR_TEXT_MAX], *v = *s, *copy;
	size_t i;

	switch (rule) {
	case CONF_R_DNS_SUFFIX:
		if (v[0] == '.')
			memmove(v, v + 1, strlen(v));
		for (i = 0; v[i] != '\0'; i++)
			v[i] = (char)tolower((unsigned char)v[i]);
		return 0;
	case CONF_R_CIDR:
		if (conf_cidr_parse(v, cidr, sizeof(cidr)) != NULL ||
		    (copy = strdup(cidr)) == NULL)
			return -1;
		free(v);
		*s = copy;
		return 0;
	default:
		return 0;
	}
}

/* True when v equals one of the n strings in set. */
static bool
conf_in(const char *v, const char *const *set, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v, set[i]) == 0)
			return true;
	return false;
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
	const char *host, *why;
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
	case CONF_R_ID:
		if (len == 0 || common_id_valid(v))
			return 0;
		conf_fail(p, key, "expected \"\" or an id of 1..64 letters, "
		    "digits, '.', '_' or '-', got %s", show);
		return -1;
	case CONF_R_DNS_SUFFIX:
		if ((why = conf_dns_suffix_check(v)) != NULL) {
			conf_fail(p, key, "%s is not a DNS name: %s", show,
			    why);
			return -1;
		}
		return 0;
	case CONF_R_CIDR:
		if ((why = conf_cidr_parse(v, NULL, 0)) != NULL) {
			conf_fail(p, key, "%s is not a CIDR range such as "
			    "\"10.0.0.0/8\" or \"fd00::/8\": %s", show, why);
			return -1;
		}
		return 0;
	case CONF_R_PKID_PROFILE:
		if (conf_in(v, conf_pkid_profiles,
		    CONF_NELEM(conf_pkid_profiles)))
			return 0;
		conf_fail(p, key, "expected one of tls_server_or_client, "
		    "tls_server, tls_client, code_signing, got %s", show);
		return -1;
	case CONF_R_EST_AUTH:
		if (conf_in(v, conf_est_auths, CONF_NELEM(conf_est_auths)))
			return 0;
		conf_fail(p, key, "expected one of basic, cert, basic_or_cert, "
		    "basic_and_cert, got %s", show);
		return -1;
	case CONF_R_EST_KEY_ALG:
		if (conf_in(v, conf_est_key_algorithms,
		    CONF_NELEM(conf_est_key_algorithms)))
			return 0;
		conf_fail(p, key, "expected one of ECDSA_P256, ECDSA_P384, "
		    "RSA2048, RSA3072, RSA4096, ED25519, got %s", show);
		return -1;
	case CONF_R_REALM:
		if (len == 0)
			goto empty;
		if (len > CONF_REALM_MAX) {
			conf_fail(p, key, "longer than %d bytes",
			    CONF_REALM_MAX);
			return -1;
		}
		for (i = 0; i < len; i++) {
			if ((unsigned char)v[i] >= 0x80 || v[i] == '"' ||
			    v[i] == '\\') {
				conf_fail(p, key, "%s: only printable ASCII "
				    "without quotes or backslashes (it is "
				    "quoted in WWW-Authenticate)", show);
				return -1;
			}
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
	if ((copy = strdup(s)) == NULL || conf_normalize(rule, &copy) == -1) {
		free(copy);
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

/* Reads an array of min..max strings, each checked (and normalised) by
 * k->rule, into *names / *n. */
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
		conf_fail(p, key, "expected %d to %d entries, got %zu",
		    (int)k->min, (int)k->max, count);
		goto out;
	}
	if ((list = calloc(count > 0 ? count : 1, sizeof(*list))) == NULL) {
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

static void
conf_profiles_free(struct conf_acme_profile *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(list[i].name);
		free(list[i].pkid_profile);
		free(list[i].description);
	}
	free(list);
}

/* True for a profile name clients can send back in newOrder: 1..64 of
 * [A-Za-z0-9._-]. */
static bool
conf_profile_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= CONF_PROFILE_NAME_MAX ||
		    !(isascii((unsigned char)s[i]) &&
		    (isalnum((unsigned char)s[i]) || s[i] == '.' ||
		    s[i] == '_' || s[i] == '-')))
			return false;
	return i > 0;
}

/* identifier_types of a profile: a non-empty array of distinct "dns" /
 * "ip". */
static int
conf_get_ident_types(struct conf_parse *p, const char *key, json_t *v,
    struct conf_acme_profile *pr)
{
	char path[CONF_PATH_MAX * 2 + 24], show[CONF_SHOW_MAX * 4 + 8];
	bool seen[CONF_IDENT__MAX] = { false };
	const char *s;
	json_t *e;
	size_t i;
	int t;

	if (!json_is_array(v) || json_array_size(v) == 0) {
		conf_fail(p, key, "expected a non-empty array of \"dns\" and "
		    "\"ip\", got %s", json_is_array(v) ? "an empty array" :
		    conf_json_type(v));
		return -1;
	}
	json_array_foreach(v, i, e) {
		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		if ((s = json_string_value(e)) == NULL) {
			conf_fail(p, path, "expected string, got %s",
			    conf_json_type(e));
			return -1;
		}
		for (t = 0; t < CONF_IDENT__MAX; t++)
			if (strcmp(s, conf_ident_names[t]) == 0)
				break;
		if (t == CONF_IDENT__MAX) {
			conf_show(s, json_string_length(e), show,
			    sizeof(show));
			conf_fail(p, path, "expected \"dns\" or \"ip\", got %s",
			    show);
			return -1;
		}
		if (seen[t]) {
			conf_fail(p, path, "\"%s\" is listed twice", s);
			return -1;
		}
		seen[t] = true;
	}
	pr->allow_dns = seen[CONF_IDENT_DNS];
	pr->allow_ip = seen[CONF_IDENT_IP];
	return 0;
}

/*
 * One member of acme.profiles: {"pkid_profile" (required), "validity_days"
 * (default 90), "identifier_types" (default ["dns", "ip"]),
 * "description" (default "")}. prefix is "acme.profiles.NAME".
 */
static int
conf_get_profile(struct conf_parse *p, const char *prefix, json_t *obj,
    struct conf_acme_profile *pr)
{
	char path[CONF_PATH_MAX * 2];
	const char *name;
	json_t *v;
	size_t i;
	double dv;

	if (!json_is_object(obj)) {
		conf_fail(p, prefix, "expected object, got %s",
		    conf_json_type(obj));
		return -1;
	}
	pr->validity_days = CONF_PROFILE_DAYS;
	pr->allow_dns = pr->allow_ip = true;
	if ((pr->description = strdup("")) == NULL) {
		conf_fail(p, prefix, "out of memory");
		return -1;
	}
	json_object_foreach(obj, name, v) {
		if (name[0] == '_')
			continue;
		snprintf(path, sizeof(path), "%s.%s", prefix, name);
		if (strcmp(name, "pkid_profile") == 0) {
			if (conf_get_string(p, path, v, CONF_R_NONEMPTY,
			    &pr->pkid_profile) == -1)
				return -1;
			for (i = 0; i < sizeof(conf_pkid_profiles) /
			    sizeof(conf_pkid_profiles[0]); i++)
				if (strcmp(pr->pkid_profile,
				    conf_pkid_profiles[i]) == 0)
					break;
			if (i == sizeof(conf_pkid_profiles) /
			    sizeof(conf_pkid_profiles[0])) {
				conf_fail(p, path, "expected one of "
				    "tls_server_or_client, tls_server, "
				    "tls_client, code_signing");
				return -1;
			}
		} else if (strcmp(name, "validity_days") == 0) {
			if (!json_is_number(v)) {
				conf_fail(p, path, "expected number, got %s",
				    conf_json_type(v));
				return -1;
			}
			dv = json_number_value(v);
			if (!(dv > 0 && dv <= CONF_DAYS_MAX)) {
				conf_fail(p, path, "must be greater than 0 and "
				    "at most %g, got %g", CONF_DAYS_MAX, dv);
				return -1;
			}
			pr->validity_days = dv;
		} else if (strcmp(name, "identifier_types") == 0) {
			if (conf_get_ident_types(p, path, v, pr) == -1)
				return -1;
		} else if (strcmp(name, "description") == 0) {
			free(pr->description);
			pr->description = NULL;
			if (conf_get_string(p, path, v, CONF_R_ANY,
			    &pr->description) == -1)
				return -1;
		} else {
			conf_safe_key(prefix, name, path, sizeof(path));
			conf_fail(p, path, "unknown key");
			return -1;
		}
	}
	if (pr->pkid_profile == NULL) {
		snprintf(path, sizeof(path), "%s.pkid_profile", prefix);
		conf_fail(p, path, "required");
		return -1;
	}
	return 0;
}

/*
 * The members of object v that are not comments ("_..."), counted into
 * *count: the shape of acme.profiles, est.labels and lifecycle.profiles.
 * -1 (reported at k->path) when v is not an object.
 */
static int
conf_named_count(struct conf_parse *p, const struct conf_key *k, json_t *v,
    size_t *count)
{
	const char *name;
	json_t *e;

	*count = 0;
	if (!json_is_object(v)) {
		conf_fail(p, k->path, "expected object, got %s",
		    conf_json_type(v));
		return -1;
	}
	json_object_foreach(v, name, e) {
		if (name[0] != '_')
			(*count)++;
	}
	return 0;
}

/*
 * acme.profiles: an object of k->min..k->max profiles keyed by name. A
 * file that sets it replaces the built-in set as a whole, so an operator
 * can withdraw a profile.
 */
static int
conf_get_profiles(struct conf_parse *p, struct conf *c,
    const struct conf_key *k, json_t *v)
{
	char prefix[CONF_PATH_MAX + 8];
	struct conf_acme_profile *list = NULL;
	const char *name;
	json_t *e;
	size_t n = 0, count = 0;
	int rc = -1;

	if (conf_named_count(p, k, v, &count) == -1)
		goto out;
	if (count < (size_t)k->min || count > (size_t)k->max) {
		conf_fail(p, k->path, "expected %d to %d profiles, got %zu",
		    (int)k->min, (int)k->max, count);
		goto out;
	}
	if ((list = calloc(count, sizeof(*list))) == NULL) {
		conf_fail(p, k->path, "out of memory");
		goto out;
	}
	json_object_foreach(v, name, e) {
		if (name[0] == '_')
			continue;
		conf_safe_key(k->path, name, prefix, sizeof(prefix));
		if (!conf_profile_name_ok(name)) {
			conf_fail(p, prefix, "a profile name is 1..%d letters, "
			    "digits, '.', '_' or '-'", CONF_PROFILE_NAME_MAX);
			goto out;
		}
		if ((list[n].name = strdup(name)) == NULL) {
			conf_fail(p, prefix, "out of memory");
			goto out;
		}
		n++;
		if (conf_get_profile(p, prefix, e, &list[n - 1]) == -1)
			goto out;
	}
	conf_profiles_free(c->acme.profiles, c->acme.nprofiles);
	c->acme.profiles = list;	/* steal */
	c->acme.nprofiles = n;
	list = NULL;
	rc = 0;
out:
	conf_profiles_free(list, n);
	return rc;
}

const struct conf_acme_profile *
conf_acme_profile_find(const struct conf *c, const char *name)
{
	size_t i;

	if (c == NULL || name == NULL)
		return NULL;
	for (i = 0; i < c->acme.nprofiles; i++)
		if (strcmp(c->acme.profiles[i].name, name) == 0)
			return &c->acme.profiles[i];
	return NULL;
}

/*
 * Stores JSON value v into the field that k describes at base + k->off
 * (a struct conf, or a struct conf_est_label for conf_est_label_keys[]);
 * path names the key in errors. Only the scalar and list kinds.
 */
static int
conf_apply_value(struct conf_parse *p, const char *path, void *base,
    const struct conf_key *k, json_t *v)
{
	char *field = (char *)base + k->off;
	json_int_t iv;
	double dv;
	char *s;

	switch (k->kind) {
	case CONF_K_STRING:
		if (conf_get_string(p, path, v, k->rule, &s) == -1)
			return -1;
		free(*(char **)field);
		*(char **)field = s;	/* steal */
		return 0;
	case CONF_K_INT:
	case CONF_K_SIZE:
		if (!json_is_integer(v)) {
			conf_fail(p, path, "expected integer, got %s",
			    conf_json_type(v));
			return -1;
		}
		iv = json_integer_value(v);
		if ((double)iv < k->min || (double)iv > k->max) {
			conf_fail(p, path, "must be %.0f..%.0f, got %lld",
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
			conf_fail(p, path, "expected true or false, got %s",
			    conf_json_type(v));
			return -1;
		}
		*(bool *)(void *)field = json_is_true(v);
		return 0;
	case CONF_K_REAL:
		if (!json_is_number(v)) {
			conf_fail(p, path, "expected number, got %s",
			    conf_json_type(v));
			return -1;
		}
		dv = json_number_value(v);
		/* The negated form also refuses NaN. */
		if (!(dv > k->min && dv <= k->max)) {
			conf_fail(p, path, "must be greater than %g and at "
			    "most %g, got %g", k->min, k->max, dv);
			return -1;
		}
		*(double *)(void *)field = dv;
		return 0;
	case CONF_K_RANGE:
		if (!json_is_number(v)) {
			conf_fail(p, path, "expected number, got %s",
			    conf_json_type(v));
			return -1;
		}
		dv = json_number_value(v);
		if (!(dv >= k->min && dv <= k->max)) {
			conf_fail(p, path, "must be %g..%g, got %g", k->min,
			    k->max, dv);
			return -1;
		}
		*(double *)(void *)field = dv;
		return 0;
	case CONF_K_NAMES:
		return conf_get_names(p, path, v, k,
		    (char ***)(void *)field,
		    (size_t *)(void *)((char *)base + k->cnt));
	case CONF_K_PROFILES:
	case CONF_K_EST_LABEL:
	case CONF_K_EST_LABELS:
	case CONF_K_LC_PROFILES:
	case CONF_K_WEBHOOKS:
		break;
	}
	conf_fail(p, path, "internal error: kind not handled here");
	return -1;
}

/* ---- EST labels --------------------------------------------------------- */

/* Frees the strings of one label (not the struct); accepts NULL. */
static void
conf_est_label_clear(struct conf_est_label *l)
{
	if (l == NULL)
		return;
	free(l->name);
	free(l->ca_id);
	free(l->profile);
	free(l->auth);
	free(l->trust_bundle);
	free(l->key_algorithm);
	memset(l, 0, sizeof(*l));
}

static void
conf_est_labels_free(struct conf_est_label *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		conf_est_label_clear(&list[i]);
	free(list);
}

/* Fills l with the built-in label values and the given name (copies).
 * 0, or -1 on allocation failure (l is then cleared). */
static int
conf_est_label_init(struct conf_est_label *l, const char *name)
{
	const struct conf_est_label *d = &conf_est_label_default;

	memset(l, 0, sizeof(*l));
	l->validity_days = d->validity_days;
	l->allow_new_key = d->allow_new_key;
	l->pop_required = d->pop_required;
	l->manual_approval = d->manual_approval;
	l->serverkeygen = d->serverkeygen;
	if ((l->name = strdup(name)) == NULL ||
	    (l->ca_id = strdup(d->ca_id)) == NULL ||
	    (l->profile = strdup(d->profile)) == NULL ||
	    (l->auth = strdup(d->auth)) == NULL ||
	    (l->trust_bundle = strdup(d->trust_bundle)) == NULL ||
	    (l->key_algorithm = strdup(d->key_algorithm)) == NULL) {
		conf_est_label_clear(l);
		return -1;
	}
	return 0;
}

/*
 * Why name cannot be an EST label, or NULL when it can: 1..64 of
 * [A-Za-z0-9._-] (RFC 7030 section 3.2.2 puts it in the path), not "."
 * or "..", and not an operation name.
 */
static const char *
conf_est_label_name_check(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++)
		if (i >= CONF_EST_LABEL_NAME_MAX ||
		    !(isascii((unsigned char)name[i]) &&
		    (isalnum((unsigned char)name[i]) || name[i] == '.' ||
		    name[i] == '_' || name[i] == '-')))
			return "a label name is 1..64 letters, digits, '.', "
			    "'_' or '-'";
	if (i == 0)
		return "a label name must not be empty (est.default_label is "
		    "the unlabelled endpoint)";
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return "\".\" and \"..\" cannot be path segments";
	if (conf_in(name, conf_est_operations,
	    CONF_NELEM(conf_est_operations)))
		return "an EST operation name cannot be a label";
	return NULL;
}

/*
 * Reads the members of a label object over l (already holding its
 * defaults): each member must be one of conf_est_label_keys[], "_"
 * members are comments. prefix is the object's key path for errors.
 */
static int
conf_get_est_label(struct conf_parse *p, const char *prefix, json_t *obj,
    struct conf_est_label *l)
{
	char path[CONF_PATH_MAX * 2];
	const char *name;
	json_t *v;
	size_t i;

	if (!json_is_object(obj)) {
		conf_fail(p, prefix, "expected object, got %s",
		    conf_json_type(obj));
		return -1;
	}
	json_object_foreach(obj, name, v) {
		if (name[0] == '_')
			continue;
		for (i = 0; i < CONF_NELEM(conf_est_label_keys); i++)
			if (strcmp(name, conf_est_label_keys[i].path) == 0)
				break;
		if (i == CONF_NELEM(conf_est_label_keys)) {
			conf_safe_key(prefix, name, path, sizeof(path));
			conf_fail(p, path, "unknown key");
			return -1;
		}
		snprintf(path, sizeof(path), "%s.%s", prefix, name);
		if (conf_apply_value(p, path, l, &conf_est_label_keys[i],
		    v) == -1)
			return -1;
	}
	return 0;
}

/* est.default_label: the unlabelled endpoint's fields over the built-in
 * ones. */
static int
conf_get_est_default(struct conf_parse *p, struct conf *c,
    const struct conf_key *k, json_t *v)
{
	struct conf_est_label l;

	if (conf_est_label_init(&l, "") == -1) {
		conf_fail(p, k->path, "out of memory");
		return -1;
	}
	if (conf_get_est_label(p, k->path, v, &l) == -1) {
		conf_est_label_clear(&l);
		return -1;
	}
	conf_est_label_clear(&c->est.default_label);
	c->est.default_label = l;	/* steal */
	return 0;
}

/*
 * est.labels: an object of 0..k->max labels keyed by name; fields a
 * label leaves out take the built-in defaults (not est.default_label's,
 * so a label reads the same wherever it sits in the file).
 */
static int
conf_get_est_labels(struct conf_parse *p, struct conf *c,
    const struct conf_key *k, json_t *v)
{
	char prefix[CONF_PATH_MAX + 8];
	struct conf_est_label *list = NULL;
	const char *name, *why;
	json_t *e;
	size_t n = 0, count = 0;
	int rc = -1;

	if (conf_named_count(p, k, v, &count) == -1)
		goto out;
	if (count > (size_t)k->max) {
		conf_fail(p, k->path, "at most %d labels, got %zu",
		    (int)k->max, count);
		goto out;
	}
	if ((list = calloc(count > 0 ? count : 1, sizeof(*list))) == NULL) {
		conf_fail(p, k->path, "out of memory");
		goto out;
	}
	json_object_foreach(v, name, e) {
		if (name[0] == '_')
			continue;
		conf_safe_key(k->path, name, prefix, sizeof(prefix));
		if ((why = conf_est_label_name_check(name)) != NULL) {
			conf_fail(p, prefix, "%s", why);
			goto out;
		}
		if (conf_est_label_init(&list[n], name) == -1) {
			conf_fail(p, prefix, "out of memory");
			goto out;
		}
		n++;
		if (conf_get_est_label(p, prefix, e, &list[n - 1]) == -1)
			goto out;
	}
	conf_est_labels_free(c->est.labels, c->est.nlabels);
	c->est.labels = list;	/* steal */
	c->est.nlabels = n;
	list = NULL;
	rc = 0;
out:
	conf_est_labels_free(list, n);
	return rc;
}

const struct conf_est_label *
conf_est_label_find(const struct conf *c, const char *name)
{
	size_t i;

	if (c == NULL)
		return NULL;
	if (name == NULL || name[0] == '\0')
		return &c->est.default_label;
	for (i = 0; i < c->est.nlabels; i++)
		if (strcmp(c->est.labels[i].name, name) == 0)
			return &c->est.labels[i];
	return NULL;
}

/* ---- lifecycle.profiles and notifications.webhooks ---------------------- */

static void
conf_lifecycle_profiles_free(struct conf_lifecycle_profile *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		free(list[i].profile);
	free(list);
}

/* Frees the strings of one webhook (not the struct); accepts NULL. */
static void
conf_webhook_clear(struct conf_webhook *w)
{
	if (w == NULL)
		return;
	free(w->url);
	if (w->secret != NULL)
		OPENSSL_cleanse(w->secret, strlen(w->secret));
	free(w->secret);
	conf_names_free(w->events, w->nevents);
	free(w->ca_file);
	memset(w, 0, sizeof(*w));
}

static void
conf_webhooks_free(struct conf_webhook *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		conf_webhook_clear(&list[i]);
	free(list);
}

const struct conf_lifecycle_profile *
conf_lifecycle_profile_find(const struct conf *c, const char *name)
{
	size_t i;

	if (c == NULL || name == NULL)
		return NULL;
	for (i = 0; i < c->lifecycle.nprofiles; i++)
		if (strcmp(c->lifecycle.profiles[i].profile, name) == 0)
			return &c->lifecycle.profiles[i];
	return NULL;
}

/* A number member of a lifecycle profile: > 0 and < hi (hi_open) or
 * <= hi. */
static int
conf_get_positive(struct conf_parse *p, const char *path, json_t *v,
    double hi, bool hi_open, double *out)
{
	double dv;

	if (!json_is_number(v)) {
		conf_fail(p, path, "expected number, got %s",
		    conf_json_type(v));
		return -1;
	}
	dv = json_number_value(v);
	if (!(dv > 0) || (hi_open ? !(dv < hi) : !(dv <= hi))) {
		conf_fail(p, path, "must be greater than 0 and %s %g, got %g",
		    hi_open ? "less than" : "at most", hi, dv);
		return -1;
	}
	*out = dv;
	return 0;
}

/*
 * One member of lifecycle.profiles: {"validity_days", "renew_before_days"
 * | "renew_at_fraction"}, every member optional (0 = unset). prefix is
 * "lifecycle.profiles.NAME".
 */
static int
conf_get_lc_profile(struct conf_parse *p, const char *prefix, json_t *obj,
    struct conf_lifecycle_profile *pr)
{
	char path[CONF_PATH_MAX * 2];
	const char *name;
	json_t *v;

	if (!json_is_object(obj)) {
		conf_fail(p, prefix, "expected object, got %s",
		    conf_json_type(obj));
		return -1;
	}
	json_object_foreach(obj, name, v) {
		if (name[0] == '_')
			continue;
		snprintf(path, sizeof(path), "%s.%s", prefix, name);
		if (strcmp(name, "validity_days") == 0) {
			if (conf_get_positive(p, path, v, CONF_DAYS_MAX, false,
			    &pr->validity_days) == -1)
				return -1;
		} else if (strcmp(name, "renew_before_days") == 0) {
			if (conf_get_positive(p, path, v, CONF_DAYS_MAX, false,
			    &pr->renew_before_days) == -1)
				return -1;
		} else if (strcmp(name, "renew_at_fraction") == 0) {
			if (conf_get_positive(p, path, v, 1, true,
			    &pr->renew_at_fraction) == -1)
				return -1;
		} else {
			conf_safe_key(prefix, name, path, sizeof(path));
			conf_fail(p, path, "unknown key");
			return -1;
		}
	}
	if (pr->renew_before_days > 0 && pr->renew_at_fraction > 0) {
		snprintf(path, sizeof(path), "%s.renew_at_fraction", prefix);
		conf_fail(p, path, "give renew_before_days or "
		    "renew_at_fraction, not both");
		return -1;
	}
	return 0;
}

/*
 * lifecycle.profiles: renewal defaults keyed by certificate profile name
 * (one of conf_pkid_profiles[]). A file that sets it replaces the set.
 */
static int
conf_get_lc_profiles(struct conf_parse *p, struct conf *c,
    const struct conf_key *k, json_t *v)
{
	char prefix[CONF_PATH_MAX + 8];
	struct conf_lifecycle_profile *list = NULL;
	const char *name;
	json_t *e;
	size_t n = 0, count = 0;
	int rc = -1;

	if (conf_named_count(p, k, v, &count) == -1)
		goto out;
	/* Names are distinct profiles, so count <= k->max follows from the
	 * name check; the allocation is sized for the worst case anyway. */
	if ((list = calloc((size_t)k->max, sizeof(*list))) == NULL) {
		conf_fail(p, k->path, "out of memory");
		goto out;
	}
	json_object_foreach(v, name, e) {
		if (name[0] == '_')
			continue;
		conf_safe_key(k->path, name, prefix, sizeof(prefix));
		if (!conf_in(name, conf_pkid_profiles,
		    CONF_NELEM(conf_pkid_profiles)) || n >= (size_t)k->max) {
			conf_fail(p, prefix, "not a certificate profile: "
			    "expected tls_server_or_client, tls_server, "
			    "tls_client or code_signing");
			goto out;
		}
		if ((list[n].profile = strdup(name)) == NULL) {
			conf_fail(p, prefix, "out of memory");
			goto out;
		}
		n++;
		if (conf_get_lc_profile(p, prefix, e, &list[n - 1]) == -1)
			goto out;
	}
	conf_lifecycle_profiles_free(c->lifecycle.profiles,
	    c->lifecycle.nprofiles);
	c->lifecycle.profiles = list;	/* steal */
	c->lifecycle.nprofiles = n;
	list = NULL;
	rc = 0;
out:
	conf_lifecycle_profiles_free(list, n);
	return rc;
}

/* A webhook's secret: a string of CONF_WEBHOOK_SECRET_MIN..MAX bytes
 * without NUL or control characters. Errors never show the value. */
static int
conf_get_secret(struct conf_parse *p, const char *path, json_t *v,
    char **out)
{
	const char *s;
	size_t i, len;

	if (!json_is_string(v)) {
		conf_fail(p, path, "expected string, got %s",
		    conf_json_type(v));
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (len != strlen(s)) {
		conf_fail(p, path, "NUL byte in string");
		return -1;
	}
	if (len < CONF_WEBHOOK_SECRET_MIN || len > CONF_WEBHOOK_SECRET_MAX) {
		conf_fail(p, path, "must be %d..%d bytes, got %zu",
		    CONF_WEBHOOK_SECRET_MIN, CONF_WEBHOOK_SECRET_MAX, len);
		return -1;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			conf_fail(p, path, "control character in the secret");
			return -1;
		}
	if ((*out = strdup(s)) == NULL) {
		conf_fail(p, path, "out of memory");
		return -1;
	}
	return 0;
}

/* A webhook's events: distinct names of conf_event_names[]; [] is every
 * event. */
static int
conf_get_events(struct conf_parse *p, const char *key, json_t *v,
    struct conf_webhook *w)
{
	static const struct conf_key k = { "events", CONF_K_NAMES, 0, 0,
	    CONF_R_NONEMPTY, 0, CONF_NELEM(conf_event_names) };
	char path[CONF_PATH_MAX * 2 + 24], show[CONF_SHOW_MAX * 4 + 8];
	size_t i, j;

	if (conf_get_names(p, key, v, &k, &w->events, &w->nevents) == -1)
		return -1;
	for (i = 0; i < w->nevents; i++) {
		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		if (!conf_in(w->events[i], conf_event_names,
		    CONF_NELEM(conf_event_names))) {
			conf_show(w->events[i], strlen(w->events[i]), show,
			    sizeof(show));
			conf_fail(p, path, "unknown event %s: expected "
			    "renewal_window, renewed, renewal_failed, "
			    "deployment_failed, expiring or revoked", show);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(w->events[i], w->events[j]) == 0) {
				conf_fail(p, path, "\"%s\" is listed twice",
				    w->events[i]);
				return -1;
			}
	}
	return 0;
}

/*
 * One member of notifications.webhooks: {"url" (required, http(s)),
 * "secret" (required), "events" ([]), "ca_file" ("": system trust; else
 * a readable file), "timeout_seconds" (10)}. prefix is
 * "notifications.webhooks[N]".
 */
static int
conf_get_webhook(struct conf_parse *p, const char *prefix, json_t *obj,
    struct conf_webhook *w)
{
	char path[CONF_PATH_MAX * 2];
	const char *name;
	json_int_t iv;
	json_t *v;

	if (!json_is_object(obj)) {
		conf_fail(p, prefix, "expected object, got %s",
		    conf_json_type(obj));
		return -1;
	}
	w->timeout_seconds = CONF_WEBHOOK_TIMEOUT;
	if ((w->ca_file = strdup("")) == NULL) {
		conf_fail(p, prefix, "out of memory");
		return -1;
	}
	json_object_foreach(obj, name, v) {
		if (name[0] == '_')
			continue;
		snprintf(path, sizeof(path), "%s.%s", prefix, name);
		if (strcmp(name, "url") == 0) {
			if (conf_get_string(p, path, v, CONF_R_URL,
			    &w->url) == -1)
				return -1;
			if (w->url[0] == '\0') {
				conf_fail(p, path, "must not be empty");
				return -1;
			}
		} else if (strcmp(name, "secret") == 0) {
			if (conf_get_secret(p, path, v, &w->secret) == -1)
				return -1;
		} else if (strcmp(name, "events") == 0) {
			if (conf_get_events(p, path, v, w) == -1)
				return -1;
		} else if (strcmp(name, "ca_file") == 0) {
			free(w->ca_file);
			w->ca_file = NULL;
			if (conf_get_string(p, path, v, CONF_R_ANY,
			    &w->ca_file) == -1)
				return -1;
			/* Found now rather than at the first delivery. */
			if (w->ca_file[0] != '\0' &&
			    access(w->ca_file, R_OK) == -1) {
				conf_fail(p, path, "cannot read %s: %s",
				    w->ca_file, strerror(errno));
				return -1;
			}
		} else if (strcmp(name, "timeout_seconds") == 0) {
			if (!json_is_integer(v)) {
				conf_fail(p, path, "expected integer, got %s",
				    conf_json_type(v));
				return -1;
			}
			iv = json_integer_value(v);
			if (iv < 1 || iv > CONF_WEBHOOK_TIMEOUT_MAX) {
				conf_fail(p, path, "must be 1..%d, got %lld",
				    CONF_WEBHOOK_TIMEOUT_MAX, (long long)iv);
				return -1;
			}
			w->timeout_seconds = (int)iv;
		} else {
			conf_safe_key(prefix, name, path, sizeof(path));
			conf_fail(p, path, "unknown key");
			return -1;
		}
	}
	if (w->url == NULL || w->secret == NULL) {
		snprintf(path, sizeof(path), "%s.%s", prefix,
		    w->url == NULL ? "url" : "secret");
		conf_fail(p, path, "required");
		return -1;
	}
	return 0;
}

/* notifications.webhooks: an array of 0..k->max webhooks, in file
 * order. */
static int
conf_get_webhooks(struct conf_parse *p, struct conf *c,
    const struct conf_key *k, json_t *v)
{
	char prefix[CONF_PATH_MAX + 24];
	struct conf_webhook *list = NULL;
	size_t i, count = 0;
	int rc = -1;

	if (!json_is_array(v)) {
		conf_fail(p, k->path, "expected array of objects, got %s",
		    conf_json_type(v));
		goto out;
	}
	count = json_array_size(v);
	if (count > (size_t)k->max) {
		conf_fail(p, k->path, "at most %d webhooks, got %zu",
		    (int)k->max, count);
		goto out;
	}
	if ((list = calloc(count > 0 ? count : 1, sizeof(*list))) == NULL) {
		conf_fail(p, k->path, "out of memory");
		goto out;
	}
	for (i = 0; i < count; i++) {
		snprintf(prefix, sizeof(prefix), "%s[%zu]", k->path, i);
		if (conf_get_webhook(p, prefix, json_array_get(v, i),
		    &list[i]) == -1)
			goto out;
	}
	conf_webhooks_free(c->notifications.webhooks,
	    c->notifications.nwebhooks);
	c->notifications.webhooks = list;	/* steal */
	c->notifications.nwebhooks = count;
	list = NULL;
	rc = 0;
out:
	conf_webhooks_free(list, count);
	return rc;
}

/* The error for an unknown member name of the object at prefix; a
 * removed key says what replaced it. path is scratch space. */
static void
conf_unknown(struct conf_parse *p, const char *prefix, const char *name,
    char *path)
{
	char full[CONF_PATH_MAX];
	size_t i;

	if (common_path(full, sizeof(full), "%s%s%s", prefix,
	    prefix[0] != '\0' ? "." : "", name) == 0)
		for (i = 0; i < CONF_NELEM(conf_removed_keys); i++)
			if (strcmp(full, conf_removed_keys[i].path) == 0) {
				conf_fail(p, full, "removed: use %s",
				    conf_removed_keys[i].instead);
				return;
			}
	conf_safe_key(prefix, name, path, CONF_PATH_MAX);
	conf_fail(p, path, "unknown key");
}

/* Stores JSON value v into the field of c that k describes. */
static int
conf_apply(struct conf_parse *p, struct conf *c, const struct conf_key *k,
    json_t *v)
{
	switch (k->kind) {
	case CONF_K_PROFILES:
		return conf_get_profiles(p, c, k, v);
	case CONF_K_EST_LABEL:
		return conf_get_est_default(p, c, k, v);
	case CONF_K_EST_LABELS:
		return conf_get_est_labels(p, c, k, v);
	case CONF_K_LC_PROFILES:
		return conf_get_lc_profiles(p, c, k, v);
	case CONF_K_WEBHOOKS:
		return conf_get_webhooks(p, c, k, v);
	default:
		return conf_apply_value(p, k->path, c, k, v);
	}
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
			conf_unknown(p, prefix, name, path);
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
	char show[CONF_SHOW_MAX * 4 + 8];
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
	if (conf_acme_profile_find(c, c->acme.default_profile) == NULL) {
		conf_show(c->acme.default_profile,
		    strlen(c->acme.default_profile), show, sizeof(show));
		conf_fail(p, "acme.default_profile", "%s is not a profile in "
		    "acme.profiles", show);
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
	if (c->lifecycle.retry_min_seconds > c->lifecycle.retry_max_seconds) {
		conf_fail(p, "lifecycle.retry_min_seconds", "%d is more than "
		    "lifecycle.retry_max_seconds (%d)",
		    c->lifecycle.retry_min_seconds,
		    c->lifecycle.retry_max_seconds);
		return -1;
	}
	for (i = 0; i < c->lifecycle.nprofiles; i++) {
		const struct conf_lifecycle_profile *pr =
		    &c->lifecycle.profiles[i];
		double validity = pr->validity_days > 0 ? pr->validity_days :
		    c->certificates.default_validity_days;

		if (pr->renew_before_days > 0 &&
		    pr->renew_before_days >= validity) {
			snprintf(show, sizeof(show), "lifecycle.profiles.%s."
			    "renew_before_days", pr->profile);
			conf_fail(p, show, "%g days is not shorter than the "
			    "validity (%g days)", pr->renew_before_days,
			    validity);
			return -1;
		}
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
	size_t i, np;

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
	c->lifecycle.scan_interval_seconds = 60;
	c->lifecycle.history_limit = 10;
	c->lifecycle.deletion_pending_days = 7;
	c->lifecycle.renewal_jitter_seconds = 300;
	c->lifecycle.retry_min_seconds = 60;
	c->lifecycle.retry_max_seconds = 3600;
	c->lifecycle.expiry_warning_days = 14;
	c->crl.interval_hours = 24;
	c->crl.debounce_seconds = 2;
	c->notifications.retry_max = 5;
	c->certificates.default_validity_days = 90;
	c->certificates.default_renew_before_days = 30;
	c->tokens.default_ttl_days = 30;
	c->acme.http01_port = 80;
	c->acme.tlsalpn01_port = 443;
	c->acme.eab_required = false;
	c->acme.authz_lifetime_days = 30;
	c->acme.authz_reuse = true;
	c->acme.order_lifetime_hours = 24;
	c->acme.validation_timeout_seconds = 10;
	c->acme.retry_after_seconds = 1;
	c->acme.max_identifiers = CONF_ACME_IDENTS_MAX;
	c->est.enabled = true;
	c->est.retry_after_seconds = CONF_EST_RETRY_AFTER;
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
	    (c->acme.dns_resolver = strdup("")) == NULL ||
	    (c->acme.ca_id = strdup("")) == NULL ||
	    (c->acme.terms_of_service = strdup("")) == NULL ||
	    (c->acme.website = strdup("")) == NULL ||
	    (c->acme.default_profile = strdup("tls_server")) == NULL ||
	    (c->est.realm = strdup("pkid EST")) == NULL ||
	    conf_est_label_init(&c->est.default_label, "") == -1)
		goto fail;
	np = sizeof(conf_profile_defaults) / sizeof(conf_profile_defaults[0]);
	if ((c->acme.profiles = calloc(np, sizeof(*c->acme.profiles))) ==
	    NULL)
		goto fail;
	for (i = 0; i < np; i++) {
		struct conf_acme_profile *pr = &c->acme.profiles[i];

		c->acme.nprofiles = i + 1;
		pr->validity_days = conf_profile_defaults[i].validity_days;
		pr->allow_dns = pr->allow_ip = true;
		if ((pr->name = strdup(conf_profile_defaults[i].name)) ==
		    NULL || (pr->pkid_profile = strdup(
		    conf_profile_defaults[i].pkid_profile)) == NULL ||
		    (pr->description = strdup(
		    conf_profile_defaults[i].description)) == NULL)
			goto fail;
	}
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
	free(c->acme.ca_id);
	free(c->acme.terms_of_service);
	free(c->acme.website);
	free(c->acme.default_profile);
	conf_profiles_free(c->acme.profiles, c->acme.nprofiles);
	conf_names_free(c->acme.dns_suffixes, c->acme.nsuffixes);
	conf_names_free(c->acme.ip_ranges, c->acme.nranges);
	conf_est_label_clear(&c->est.default_label);
	conf_est_labels_free(c->est.labels, c->est.nlabels);
	free(c->est.realm);
	conf_lifecycle_profiles_free(c->lifecycle.profiles,
	    c->lifecycle.nprofiles);
	conf_webhooks_free(c->notifications.webhooks,
	    c->notifications.nwebhooks);
	free(c);
}
