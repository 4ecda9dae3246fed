/*
 * protocols/acme/order.c — orders (RFC 8555 §7.4): newOrder with dns
 * (wildcards) and ip (RFC 8738) identifiers, profiles
 * (draft-ietf-acme-profiles) and replaces (RFC 9773 §5), authorization
 * reuse, the order object, finalize and certificate download (§7.4.2).
 *
 * Order record (table acme_order): {"id", "account_id", "status":
 * "pending"|"ready"|"processing"|"valid"|"invalid", "expires" (int),
 * "identifiers": [{"type", "value"}], "authorizations": [authz ids],
 * "profile", "error", "certificate_serial", "cert_id", "cert_version",
 * "replaces" (certID), "replaces_cert_id", "created_at"}.
 *
 * State machine: pending -> ready happens in the transaction that
 * validates the last authorization (authz.c); ready -> valid in the one
 * finalize transaction that issues the certificate, so a finalize never
 * answers "ready" and two concurrent finalizes issue once.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "protocols/acme/acme.h"

#define ORDER_TIME_MAX		32	/* RFC 3339 text + NUL */
#define ORDER_LABEL_MAX		63	/* bytes of a DNS label */
#define ORDER_CN_MAX		64	/* RFC 5280 ub-common-name */
#define ORDER_SCAN_PAGE		1000	/* orders read per page in scans */
#define ORDER_PEM_COLS		64	/* base64 columns of a PEM body */
#define ORDER_PEM_BEGIN		"-----BEGIN CERTIFICATE-----\n"
#define ORDER_PEM_END		"-----END CERTIFICATE-----\n"
#define ORDER_IP_TEXT_MAX	INET6_ADDRSTRLEN
#define ORDER_SHOW_MAX		80	/* bytes of client input quoted */
#define ORDER_CSR_MAX		ACME_JWS_MAX
#define ORDER_SECONDS_PER_HOUR	3600.0
#define ORDER_SECONDS_PER_DAY	86400.0

/* ---- helpers ------------------------------------------------------------ */

static const char *
order_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static time_t
order_int(const json_t *o, const char *key)
{
	return (time_t)json_integer_value(json_object_get(o, key));
}

const char *
acme_order_status(const json_t *order, time_t now)
{
	const char *s = order_str(order, "status");

	if (s == NULL)
		return "invalid";
	if ((strcmp(s, "pending") == 0 || strcmp(s, "ready") == 0) &&
	    order_int(order, "expires") <= now)
		return "invalid";
	return s;
}

/* A 32-byte random token, base64url, into out (>= ACME_TOKEN_MAX). */
static int
order_token(char *out, size_t outlen)
{
	unsigned char raw[ACME_TOKEN_BYTES];
	char *t;

	if (RAND_bytes(raw, sizeof(raw)) != 1 ||
	    (t = common_b64_encode(raw, sizeof(raw), true, 0)) == NULL)
		return -1;
	snprintf(out, outlen, "%s", t);
	free(t);
	return 0;
}

/* ---- identifiers -------------------------------------------------------- */

/* Validates a DNS name (lower-cased in place): LDH labels of 1..63
 * bytes, no leading/trailing hyphen, at most ACME_IDENT_MAX bytes, not an
 * IP address. NULL when fine, else the reason. */
static const char *
order_dns_check(const char *name)
{
	struct in_addr a4;
	const char *c, *label = name;
	bool digits = true;
	size_t n = 0;

	if (*name == '\0')
		return "empty DNS name";
	if (strlen(name) > ACME_IDENT_MAX)
		return "DNS name longer than 253 bytes";
	if (inet_pton(AF_INET, name, &a4) == 1)
		return "an IP address is not a dns identifier (use type ip, "
		    "RFC 8738)";
	for (c = name; ; c++) {
		if (*c == '.' || *c == '\0') {
			if (n == 0)
				return "empty DNS label";
			if (n > ORDER_LABEL_MAX)
				return "DNS label longer than 63 bytes";
			if (*label == '-' || c[-1] == '-')
				return "DNS label starts or ends with a hyphen";
			if (*c == '\0')
				break;
			label = c + 1;
			n = 0;
			digits = true;
			continue;
		}
		if (*c == '*')
			return "a wildcard is only allowed as the leftmost "
			    "label \"*.\"";
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		    *c == '-'))
			return "DNS name has a character outside "
			    "letters, digits, hyphen and dot";
		if (!(*c >= '0' && *c <= '9'))
			digits = false;
		n++;
	}
	if (digits)
		return "the last DNS label is numeric";
	return NULL;
}

/* True when name equals a configured suffix or ends in "." + suffix
 * (an empty list allows everything). */
static bool
order_dns_allowed(const struct conf *cf, const char *name)
{
	const char *sfx;
	size_t i, nl = strlen(name), sl;

	if (cf->acme.nsuffixes == 0)
		return true;
	for (i = 0; i < cf->acme.nsuffixes; i++) {
		sfx = cf->acme.dns_suffixes[i];
		while (*sfx == '.' || *sfx == '*')
			sfx++;
		sl = strlen(sfx);
		if (sl == 0)
			return true;
		if (nl == sl && strcasecmp(name, sfx) == 0)
			return true;
		if (nl > sl && name[nl - sl - 1] == '.' &&
		    strcasecmp(name + nl - sl, sfx) == 0)
			return true;
	}
	return false;
}

/* True when the address (family af, bytes ip) lies in the CIDR range
 * ("10.0.0.0/8", "fd00::/8" or a single address). */
static bool
order_ip_in(int af, const unsigned char *ip, const char *cidr)
{
	unsigned char net[sizeof(struct in6_addr)];
	char host[ORDER_IP_TEXT_MAX + 1];
	const char *slash = strchr(cidr, '/');
	size_t hl = slash != NULL ? (size_t)(slash - cidr) : strlen(cidr);
	int bits, max = af == AF_INET ? 32 : 128, i;
	char *end;

	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, cidr, hl);
	host[hl] = '\0';
	if (inet_pton(af, host, net) != 1)
		return false;
	bits = max;
	if (slash != NULL) {
		long v = strtol(slash + 1, &end, 10);

		if (*end != '\0' || end == slash + 1 || v < 0 || v > max)
			return false;
		bits = (int)v;
	}
	for (i = 0; i < bits / 8; i++)
		if (ip[i] != net[i])
			return false;
	if (bits % 8 != 0) {
		unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));

		if ((ip[i] & mask) != (net[i] & mask))
			return false;
	}
	return true;
}

static bool
order_ip_allowed(const struct conf *cf, int af, const unsigned char *ip)
{
	size_t i;

	if (cf->acme.nranges == 0)
		return true;
	for (i = 0; i < cf->acme.nranges; i++)
		if (order_ip_in(af, ip, cf->acme.ip_ranges[i]))
			return true;
	return false;
}

/* The kinds of subproblem, for the top-level type. */
enum order_refusal {
	ORDER_R_MALFORMED = 1,
	ORDER_R_REJECTED = 2,
	ORDER_R_UNSUPPORTED = 4
};

/*
 * Normalises one identifier of a newOrder: dns (lower case, wildcard
 * only as "*.", LDH) or ip (canonical text, IPv6 compressed), then the
 * server's dns_suffixes/ip_ranges and the profile's identifier types.
 * Returns a new {"type", "value"}, or NULL after adding a subproblem to p
 * and its kind to *kinds.
 */
static json_t *
order_ident_norm(const struct acme *a, const struct conf_acme_profile *pr,
    const json_t *in, struct acme_prob *p, unsigned *kinds)
{
	unsigned char ip[sizeof(struct in6_addr)];
	char val[ACME_IDENT_MAX + 3], txt[ORDER_IP_TEXT_MAX];
	const char *type = order_str(in, "type");
	const char *value = order_str(in, "value");
	const char *why, *base;
	int af;
	size_t i;

	if (!json_is_object(in) || type == NULL || value == NULL) {
		acme_prob_sub(p, "malformed", type != NULL ? type : "",
		    value != NULL ? value : "",
		    "an identifier needs string \"type\" and \"value\"");
		*kinds |= ORDER_R_MALFORMED;
		return NULL;
	}
	if (strcmp(type, "dns") == 0) {
		if (strlen(value) >= sizeof(val)) {
			acme_prob_sub(p, "malformed", type, "",
			    "DNS name longer than 253 bytes");
			*kinds |= ORDER_R_MALFORMED;
			return NULL;
		}
		for (i = 0; value[i] != '\0'; i++)
			val[i] = (char)tolower((unsigned char)value[i]);
		val[i] = '\0';
		base = strncmp(val, "*.", 2) == 0 ? val + 2 : val;
		if ((why = order_dns_check(base)) != NULL) {
			acme_prob_sub(p, "malformed", type, val, "%s", why);
			*kinds |= ORDER_R_MALFORMED;
			return NULL;
		}
		if (!pr->allow_dns) {
			acme_prob_sub(p, "rejectedIdentifier", type, val,
			    "profile %s does not issue for dns identifiers",
			    pr->name);
			*kinds |= ORDER_R_REJECTED;
			return NULL;
		}
		if (!order_dns_allowed(a->cf, base)) {
			acme_prob_sub(p, "rejectedIdentifier", type, val,
			    "%s is outside the DNS suffixes this server "
			    "issues for", val);
			*kinds |= ORDER_R_REJECTED;
			return NULL;
		}
		return json_pack("{s:s,s:s}", "type", "dns", "value", val);
	}
	if (strcmp(type, "ip") == 0) {
		af = strchr(value, ':') != NULL ? AF_INET6 : AF_INET;
		if (inet_pton(af, value, ip) != 1 ||
		    inet_ntop(af, ip, txt, sizeof(txt)) == NULL) {
			acme_prob_sub(p, "malformed", type, value,
			    "not an IPv4 or IPv6 address in textual form "
			    "(RFC 8738 §3)");
			*kinds |= ORDER_R_MALFORMED;
			return NULL;
		}
		if (!pr->allow_ip) {
			acme_prob_sub(p, "rejectedIdentifier", type, txt,
			    "profile %s does not issue for ip identifiers",
			    pr->name);
			*kinds |= ORDER_R_REJECTED;
			return NULL;
		}
		if (!order_ip_allowed(a->cf, af, ip)) {
			acme_prob_sub(p, "rejectedIdentifier", type, txt,
			    "%s is outside the IP ranges this server issues "
			    "for", txt);
			*kinds |= ORDER_R_REJECTED;
			return NULL;
		}
		return json_pack("{s:s,s:s}", "type", "ip", "value", txt);
	}
	acme_prob_sub(p, "unsupportedIdentifier", type, value,
	    "identifier type \"%.*s\" is not supported (dns, ip)",
	    ORDER_SHOW_MAX, type);
	*kinds |= ORDER_R_UNSUPPORTED;
	return NULL;
}

/* True when idents holds {type, value}. */
static bool
order_idents_have(const json_t *idents, const char *type, const char *value)
{
	const char *t, *v;
	json_t *e;
	size_t i;

	json_array_foreach(idents, i, e) {
		t = order_str(e, "type");
		v = order_str(e, "value");
		if (t != NULL && v != NULL && strcmp(t, type) == 0 &&
		    strcmp(v, value) == 0)
			return true;
	}
	return false;
}

/* The normalised, de-duplicated identifiers of a newOrder payload, or
 * NULL with p set. */
static json_t *
order_idents(const struct acme *a, const struct conf_acme_profile *pr,
    const json_t *in, struct acme_prob *p)
{
	json_t *out = NULL, *e, *n;
	unsigned kinds = 0;
	size_t i, max = a->cf->acme.max_identifiers;

	if (!json_is_array(in) || json_array_size(in) == 0) {
		acme_prob_set(p, 400, "malformed",
		    "newOrder needs a non-empty \"identifiers\" array");
		return NULL;
	}
	if (json_array_size(in) > max) {
		acme_prob_set(p, 400, "malformed",
		    "%zu identifiers: at most %zu per order",
		    json_array_size(in), max);
		return NULL;
	}
	if ((out = json_array()) == NULL) {
		acme_prob_set(p, 500, "serverInternal", "out of memory");
		return NULL;
	}
	json_array_foreach(in, i, e) {
		if ((n = order_ident_norm(a, pr, e, p, &kinds)) == NULL)
			continue;
		if (order_idents_have(out, order_str(n, "type"),
		    order_str(n, "value"))) {
			json_decref(n);
			continue;
		}
		if (json_array_append_new(out, n) == -1) {
			json_decref(out);
			acme_prob_set(p, 500, "serverInternal",
			    "out of memory");
			return NULL;
		}
	}
	if (kinds != 0) {
		json_t *first = json_array_get(p->subproblems, 0);
		size_t bad = json_array_size(p->subproblems);

		acme_prob_set(p, 400, kinds == ORDER_R_REJECTED ?
		    "rejectedIdentifier" : kinds == ORDER_R_UNSUPPORTED ?
		    "unsupportedIdentifier" : "malformed",
		    "%zu identifier%s refused%s%s", bad, bad == 1 ? "" : "s",
		    first != NULL ? ", first: " : "",
		    first != NULL ? order_str(first, "detail") : "");
		json_decref(out);
		return NULL;
	}
	return out;
}

/* ---- the order object --------------------------------------------------- */

/*
 * The status a client sees: the stored one, expiry, and for pending or
 * ready orders the state of their authorizations (an authorization
 * deactivated or expired after it was reused makes the order invalid).
 * *why gets a detail for a derived "invalid".
 */
static const char *
order_status_live(struct acme *a, struct store_txn *txn, const json_t *o,
    time_t now, char *why, size_t whylen)
{
	const char *s = acme_order_status(o, now), *as, *aid;
	json_t *ids = json_object_get(o, "authorizations"), *az, *e;
	bool all_valid = true;
	size_t i;

	if (why != NULL)
		why[0] = '\0';
	if (strcmp(s, "pending") != 0 && strcmp(s, "ready") != 0) {
		if (strcmp(s, "invalid") == 0 && why != NULL &&
		    json_object_get(o, "error") == NULL)
			snprintf(why, whylen, "the order expired");
		return s;
	}
	json_array_foreach(ids, i, e) {
		if ((aid = json_string_value(e)) == NULL)
			continue;
		if ((az = store_acme_authz_get(a->st, txn, aid)) == NULL) {
			if (why != NULL)
				snprintf(why, whylen,
				    "authorization %s is missing", aid);
			return "invalid";
		}
		as = acme_authz_status(az, now);
		if (strcmp(as, "valid") != 0)
			all_valid = false;
		if (strcmp(as, "valid") != 0 && strcmp(as, "pending") != 0) {
			if (why != NULL)
				snprintf(why, whylen, "authorization %s is %s",
				    aid, as);
			json_decref(az);
			return "invalid";
		}
		json_decref(az);
	}
	return all_valid ? "ready" : "pending";
}

/* The order object of RFC 8555 §7.1.3 (new reference). */
static json_t *
order_view(const struct acme_req *r, const json_t *o, const char *status,
    const char *why)
{
	char url[ACME_URL_MAX], t[ORDER_TIME_MAX];
	const char *id = order_str(o, "id"), *s;
	json_t *v = NULL, *authzs, *e, *err;
	size_t i;

	if (id == NULL || (authzs = json_array()) == NULL)
		return NULL;
	json_array_foreach(json_object_get(o, "authorizations"), i, e) {
		if (json_string_value(e) == NULL || acme_url(r, url,
		    sizeof(url), "authz/%s", json_string_value(e)) == -1 ||
		    json_array_append_new(authzs, json_string(url)) == -1) {
			json_decref(authzs);
			return NULL;
		}
	}
	common_time_rfc3339(order_int(o, "expires"), t, sizeof(t));
	if (acme_url(r, url, sizeof(url), "order/%s/finalize", id) == -1) {
		json_decref(authzs);
		return NULL;
	}
	/* "o" steals authzs, also on failure */
	if ((v = json_pack("{s:s,s:s,s:O,s:o,s:s}", "status", status,
	    "expires", t, "identifiers", json_object_get(o, "identifiers"),
	    "authorizations", authzs, "finalize", url)) == NULL)
		return NULL;
	if ((s = order_str(o, "profile")) != NULL)
		json_object_set_new(v, "profile", json_string(s));
	if ((s = order_str(o, "replaces")) != NULL)
		json_object_set_new(v, "replaces", json_string(s));
	if (strcmp(status, "valid") == 0 &&
	    (s = order_str(o, "certificate_serial")) != NULL &&
	    acme_url(r, url, sizeof(url), "cert/%s", s) == 0)
		json_object_set_new(v, "certificate", json_string(url));
	if (strcmp(status, "invalid") == 0) {
		if ((err = json_object_get(o, "error")) != NULL)
			json_object_set(v, "error", err);
		else if (why != NULL && *why != '\0')
			json_object_set_new(v, "error", json_pack(
			    "{s:s,s:s,s:i}", "type", ACME_ERR_PREFIX
			    "unauthorized", "detail", why, "status", 403));
	}
	return v;
}

/* Replies with the order (status as seen now), its Location and, while
 * pending or processing, Retry-After. */
static void
order_reply(struct acme_req *r, int status, const json_t *o,
    const char *order_status, const char *why)
{
	char loc[ACME_URL_MAX];
	const char *id = order_str(o, "id");

	if (id == NULL || acme_url(r, loc, sizeof(loc), "order/%s", id) ==
	    -1) {
		acme_problem(r, 500, "serverInternal",
		    "order record without id");
		return;
	}
	if (strcmp(order_status, "pending") == 0 ||
	    strcmp(order_status, "processing") == 0)
		acme_retry_after(r, acme_retry_seconds(r->a));
	acme_reply_json(r, status, order_view(r, o, order_status, why), loc);
}

/* ---- replaces (RFC 9773 §5) --------------------------------------------- */

json_t *
acme_order_by_serial(struct acme *a, const char *account_id,
    const char *serial)
{
	char up[ACME_SERIAL_MAX];
	const char *s, *owner;
	json_t *o;
	size_t i;

	/* Serials are stored as upper-case hex; a client may send either. */
	for (i = 0; serial[i] != '\0' && i + 1 < sizeof(up); i++)
		up[i] = (char)toupper((unsigned char)serial[i]);
	up[i] = '\0';
	if (serial[i] != '\0')
		return NULL;	/* longer than any serial */
	if ((o = store_acme_order_by_serial(a->st, NULL, up)) == NULL &&
	    strcmp(up, serial) != 0)
		o = store_acme_order_by_serial(a->st, NULL, serial);
	if (o == NULL)
		return NULL;
	s = order_str(o, "certificate_serial");
	owner = order_str(o, "account_id");
	if (s == NULL || strcasecmp(s, serial) != 0 || owner == NULL ||
	    strcmp(owner, account_id) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The AKI keyIdentifier of x as bytes (to free()); -1 when absent. */
static int
order_cert_aki(X509 *x, unsigned char **out, size_t *len)
{
	const ASN1_OCTET_STRING *kid = X509_get0_authority_key_id(x);

	*out = NULL;
	*len = 0;
	if (kid == NULL || kid->length <= 0)
		return -1;
	if ((*out = malloc((size_t)kid->length)) == NULL)
		return -1;
	memcpy(*out, kid->data, (size_t)kid->length);
	*len = (size_t)kid->length;
	return 0;
}

/*
 * Checks a "replaces" certID (RFC 9773 §5): well formed, a certificate
 * of this server with that AKI, ordered by this account, sharing at
 * least one identifier with the new order. The already-replaced check is
 * done in the transaction. Sets *old_order (new reference). -1 with p.
 */
static int
order_replaces_check(struct acme_req *r, const char *certid,
    const json_t *idents, json_t **old_order, struct acme_prob *p)
{
	char serial[ACME_SERIAL_MAX];
	unsigned char *aki = NULL, *caki = NULL, *der = NULL;
	size_t akilen = 0, cakilen = 0, derlen = 0, i;
	const unsigned char *dp;
	struct common_error err;
	json_t *issued = NULL, *e;
	const char *b64;
	X509 *x = NULL;
	bool shared = false;
	int rc = -1;

	*old_order = NULL;
	if (acme_ari_certid_parse(certid, serial, sizeof(serial), &aki,
	    &akilen) == -1) {
		acme_prob_set(p, 400, "malformed",
		    "\"replaces\" is not an RFC 9773 certID");
		goto out;
	}
	common_error_clear(&err);
	if ((issued = lifecycle_issued_get(r->a->lc, serial, &err)) == NULL ||
	    (b64 = order_str(issued, "der")) == NULL ||
	    common_b64_decode(b64, strlen(b64), false, &der, &derlen) == -1 ||
	    (dp = der, x = d2i_X509(NULL, &dp, (long)derlen)) == NULL ||
	    order_cert_aki(x, &caki, &cakilen) == -1 || cakilen != akilen ||
	    memcmp(caki, aki, akilen) != 0) {
		acme_prob_set(p, 400, "malformed",
		    "\"replaces\" names no certificate of this server");
		goto out;
	}
	if ((*old_order = acme_order_by_serial(r->a, r->account_id,
	    serial)) == NULL) {
		acme_prob_set(p, 400, "malformed",
		    "\"replaces\": certificate %s was not ordered by this "
		    "account (RFC 9773 §5)", serial);
		goto out;
	}
	json_array_foreach(json_object_get(*old_order, "identifiers"), i, e)
		if (order_idents_have(idents, order_str(e, "type"),
		    order_str(e, "value")))
			shared = true;
	if (!shared) {
		acme_prob_set(p, 400, "malformed",
		    "\"replaces\": certificate %s shares no identifier with "
		    "this order (RFC 9773 §5)", serial);
		goto out;
	}
	rc = 0;
out:
	if (rc == -1) {
		json_decref(*old_order);
		*old_order = NULL;
	}
	X509_free(x);
	free(der);
	free(aki);
	free(caki);
	json_decref(issued);
	return rc;
}

/* True when an order of account_id other than invalid already replaces
 * certid (read inside txn). */
static bool
order_already_replaced(struct acme *a, struct store_txn *txn,
    const char *account_id, const char *certid, time_t now)
{
	json_t *page = NULL, *o;
	char *next = NULL, *after = NULL;
	const char *s;
	bool found = false;
	size_t i;

	do {
		free(after);
		after = next;
		next = NULL;
		json_decref(page);
		if ((page = store_acme_orders_by_account(a->st, txn,
		    account_id, after, ORDER_SCAN_PAGE, &next)) == NULL)
			break;
		json_array_foreach(page, i, o) {
			if ((s = order_str(o, "replaces")) != NULL &&
			    strcmp(s, certid) == 0 &&
			    strcmp(acme_order_status(o, now), "invalid") != 0)
				found = true;
		}
	} while (!found && next != NULL);
	json_decref(page);
	free(after);
	free(next);
	return found;
}

/* ---- newOrder ----------------------------------------------------------- */

struct order_new {
	struct acme_req		*r;
	const json_t		*idents;	/* normalised */
	const struct conf_acme_profile *profile;
	const char		*replaces;	/* certID or NULL */
	const char		*replaces_cert_id; /* inventory id or NULL */
	char			 id[ACME_ID_MAX];
	json_t			*out;		/* the order record */
	struct acme_prob	 prob;
};

/* A new pending authorization for one identifier (value with "*." for
 * wildcards), with its challenges; stored in txn. Returns its id in
 * idout. -1 on failure. */
static int
order_authz_create(struct store_txn *txn, const struct acme_req *r,
    const char *order_id, const char *type, const char *value,
    time_t expires, char *idout, size_t idlen)
{
	static const char *const dns_types[] = { "http-01", "dns-01",
	    "tls-alpn-01", NULL };
	static const char *const wild_types[] = { "dns-01", NULL };
	static const char *const ip_types[] = { "http-01", "tls-alpn-01",
	    NULL };
	const char *const *types;
	char token[ACME_TOKEN_MAX], now[ORDER_TIME_MAX];
	bool wildcard = strncmp(value, "*.", 2) == 0;
	json_t *rec = NULL, *chall, *c;
	size_t i;
	int rc = -1;

	types = strcmp(type, "ip") == 0 ? ip_types : wildcard ? wild_types :
	    dns_types;
	if (common_random_id("authz-", idout, idlen) == -1 ||
	    (chall = json_array()) == NULL)
		return -1;
	for (i = 0; types[i] != NULL; i++) {
		if (order_token(token, sizeof(token)) == -1 ||
		    (c = json_pack("{s:s,s:s,s:s,s:i}", "type", types[i],
		    "token", token, "status", "pending", "attempt", 0)) ==
		    NULL || json_array_append_new(chall, c) == -1) {
			json_decref(chall);
			return -1;
		}
	}
	common_time_rfc3339(common_now(), now, sizeof(now));
	rec = json_pack("{s:s,s:s,s:s,s:I,s:{s:s,s:s},s:b,s:o,s:[s],s:s}",
	    "id", idout, "account_id", r->account_id, "status", "pending",
	    "expires", (json_int_t)expires, "identifier", "type", type,
	    "value", wildcard ? value + 2 : value, "wildcard", wildcard,
	    "challenges", chall, "orders", order_id, "created_at", now);
	if (rec != NULL && store_acme_authz_put(txn, idout, rec) == 0)
		rc = 0;
	json_decref(rec);
	return rc;
}

/* A valid, unexpired authorization of the account for the identifier
 * (same wildcard flag) with the latest expiry, or NULL. Its id goes to
 * idout and its expiry to *expires. */
static bool
order_authz_reuse(struct store_txn *txn, const struct acme_req *r,
    const char *type, const char *value, time_t now, char *idout,
    size_t idlen, time_t *expires)
{
	bool wildcard = strncmp(value, "*.", 2) == 0, found = false;
	json_t *list, *az;
	const char *aid;
	size_t i;

	if ((list = store_acme_authz_by_account_ident(r->a->st, txn,
	    r->account_id, type, wildcard ? value + 2 : value)) == NULL)
		return false;
	json_array_foreach(list, i, az) {
		if (json_is_true(json_object_get(az, "wildcard")) != wildcard ||
		    strcmp(acme_authz_status(az, now), "valid") != 0 ||
		    (aid = order_str(az, "id")) == NULL ||
		    (found && order_int(az, "expires") <= *expires))
			continue;
		snprintf(idout, idlen, "%s", aid);
		*expires = order_int(az, "expires");
		found = true;
	}
	json_decref(list);
	return found;
}

static int
order_new_txn(struct store_txn *txn, void *arg)
{
	struct order_new *c = arg;
	struct acme_req *r = c->r;
	const struct conf *cf = r->a->cf;
	time_t now = common_now(), expires, aexp;
	char aid[ACME_ID_MAX], t[ORDER_TIME_MAX];
	json_t *authzs = NULL, *e;
	bool all_valid = true;
	size_t i;
	int rc = -1;

	json_decref(c->out);
	c->out = NULL;
	acme_prob_clear(&c->prob);
	if (c->replaces != NULL && order_already_replaced(r->a, txn,
	    r->account_id, c->replaces, now)) {
		acme_prob_set(&c->prob, 409, "alreadyReplaced",
		    "the certificate named by \"replaces\" already has a "
		    "replacement order (RFC 9773 §5)");
		return 1;
	}
	expires = now + (time_t)(cf->acme.order_lifetime_hours *
	    ORDER_SECONDS_PER_HOUR);
	if ((authzs = json_array()) == NULL)
		goto out;
	json_array_foreach(c->idents, i, e) {
		const char *type = order_str(e, "type");
		const char *value = order_str(e, "value");

		if (cf->acme.authz_reuse && order_authz_reuse(txn, r, type,
		    value, now, aid, sizeof(aid), &aexp)) {
			if (aexp < expires)
				expires = aexp;
		} else {
			all_valid = false;
			if (order_authz_create(txn, r, c->id, type, value,
			    now + (time_t)(cf->acme.order_lifetime_hours *
			    ORDER_SECONDS_PER_HOUR), aid, sizeof(aid)) == -1)
				goto out;
		}
		if (json_array_append_new(authzs, json_string(aid)) == -1)
			goto out;
	}
	common_time_rfc3339(now, t, sizeof(t));
	c->out = json_pack("{s:s,s:s,s:s,s:I,s:O,s:O,s:s,s:s}",
	    "id", c->id, "account_id", r->account_id,
	    "status", all_valid ? "ready" : "pending",
	    "expires", (json_int_t)expires, "identifiers", c->idents,
	    "authorizations", authzs, "profile", c->profile->name,
	    "created_at", t);
	if (c->out == NULL)
		goto out;
	if (c->replaces != NULL && (json_object_set_new(c->out, "replaces",
	    json_string(c->replaces)) == -1 || (c->replaces_cert_id != NULL &&
	    json_object_set_new(c->out, "replaces_cert_id",
	    json_string(c->replaces_cert_id)) == -1)))
		goto out;
	rc = store_acme_order_put(txn, c->id, c->out);
out:
	json_decref(authzs);
	return rc;
}

/* POST /acme/new-order (RFC 8555 §7.4) */
void
acme_order_new(struct acme_req *r)
{
	struct order_new c;
	json_t *idents = NULL, *old = NULL, *v;
	const char *name = NULL;
	int rc;

	memset(&c, 0, sizeof(c));
	c.r = r;
	if (acme_req_auth(r, ACME_AUTH_KID) == -1)
		goto out;
	if (r->payload == NULL) {
		acme_problem(r, 400, "malformed",
		    "newOrder needs a JSON object payload");
		goto out;
	}
	if (json_object_get(r->payload, "notBefore") != NULL ||
	    json_object_get(r->payload, "notAfter") != NULL) {
		acme_problem(r, 400, "malformed",
		    "notBefore/notAfter are not supported");
		goto out;
	}
	if ((v = json_object_get(r->payload, "profile")) != NULL &&
	    (name = json_string_value(v)) == NULL) {
		acme_problem(r, 400, "malformed",
		    "\"profile\" must be a string");
		goto out;
	}
	if ((c.profile = acme_profile_find(r->a, name)) == NULL) {
		acme_problem(r, 400, "invalidProfile",
		    "profile \"%.*s\" is not offered by this server",
		    ORDER_SHOW_MAX, name != NULL ? name : "");
		goto out;
	}
	if ((idents = order_idents(r->a, c.profile, json_object_get(
	    r->payload, "identifiers"), &c.prob)) == NULL) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	c.idents = idents;
	if ((v = json_object_get(r->payload, "replaces")) != NULL) {
		if ((c.replaces = json_string_value(v)) == NULL) {
			acme_problem(r, 400, "malformed",
			    "\"replaces\" must be a string");
			goto out;
		}
		if (order_replaces_check(r, c.replaces, idents, &old,
		    &c.prob) == -1) {
			acme_problem_send(r, &c.prob);
			goto out;
		}
		c.replaces_cert_id = order_str(old, "cert_id");
	}
	if (common_random_id("order-", c.id, sizeof(c.id)) == -1) {
		acme_problem(r, 500, "serverInternal", "no random id");
		goto out;
	}
	rc = store_txn_run(r->a->st, order_new_txn, &c);
	if (rc > 0) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	if (rc != 0 || c.out == NULL) {
		acme_problem(r, 500, "serverInternal",
		    "cannot store the order");
		goto out;
	}
	log_info("acme: order %s of account %s: %zu identifier%s, profile %s",
	    c.id, r->account_id, json_array_size(idents),
	    json_array_size(idents) == 1 ? "" : "s", c.profile->name);
	order_reply(r, 201, c.out, order_str(c.out, "status"), NULL);
out:
	acme_prob_clear(&c.prob);
	json_decref(c.out);
	json_decref(old);
	json_decref(idents);
}

/* Loads order id for the signing account: 404 when unknown, 403 when
 * another account's. NULL after answering. */
static json_t *
order_load(struct acme_req *r, const char *id)
{
	json_t *o;
	const char *owner;

	if ((o = store_acme_order_get(r->a->st, NULL, id)) == NULL) {
		acme_problem(r, 404, "malformed", "no order %s", id);
		return NULL;
	}
	owner = order_str(o, "account_id");
	if (owner == NULL || strcmp(owner, r->account_id) != 0) {
		json_decref(o);
		acme_problem(r, 403, "unauthorized",
		    "order %s belongs to another account", id);
		return NULL;
	}
	return o;
}

/* POST-as-GET /acme/order/<id> */
void
acme_order_post(struct acme_req *r, const char *id)
{
	char why[ACME_DETAIL_MAX];
	const char *status;
	json_t *o = NULL;

	if (acme_req_auth(r, ACME_AUTH_KID) == -1 ||
	    acme_req_post_as_get(r) == -1)
		return;
	if ((o = order_load(r, id)) == NULL)
		return;
	status = order_status_live(r->a, NULL, o, common_now(), why,
	    sizeof(why));
	order_reply(r, 200, o, status, why);
	json_decref(o);
}

/* ---- finalize ----------------------------------------------------------- */

/* What finalize issues: the checked CSR's key, subject and SANs. */
struct order_csr {
	X509_REQ	*req;
	EVP_PKEY	*pubkey;	/* borrowed from req */
	char		 subject[ORDER_CN_MAX + 8];	/* "CN=..." or "" */
	const char	**sans;		/* the order's identifiers */
	size_t		 nsans;
};

static void
order_csr_clear(struct order_csr *c)
{
	X509_REQ_free(c->req);
	free(c->sans);
	memset(c, 0, sizeof(*c));
}

/* The identifier string of a GENERAL_NAME ("dns" lower case, "ip"
 * canonical) into out; -1 for other name types. */
int
acme_gen_ident(const GENERAL_NAME *g, const char **type, char *out,
    size_t outlen)
{
	const unsigned char *d;
	int len, i;

	if (g->type == GEN_DNS) {
		d = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		if (len <= 0 || (size_t)len >= outlen)
			return -1;
		for (i = 0; i < len; i++) {
			if (d[i] == '\0')
				return -1;
			out[i] = (char)tolower(d[i]);
		}
		out[len] = '\0';
		*type = "dns";
		return 0;
	}
	if (g->type == GEN_IPADD) {
		d = ASN1_STRING_get0_data(g->d.iPAddress);
		len = ASN1_STRING_length(g->d.iPAddress);
		if (len == 4 && inet_ntop(AF_INET, d, out,
		    (socklen_t)outlen) != NULL) {
			*type = "ip";
			return 0;
		}
		if (len == 16 && inet_ntop(AF_INET6, d, out,
		    (socklen_t)outlen) != NULL) {
			*type = "ip";
			return 0;
		}
	}
	return -1;
}

/* The CN of a CSR as an identifier value: lower case, or an IP in
 * canonical form. */
static void
order_cn_norm(const char *cn, char *out, size_t outlen)
{
	unsigned char ip[sizeof(struct in6_addr)];
	size_t i;

	if (inet_pton(AF_INET, cn, ip) == 1 &&
	    inet_ntop(AF_INET, ip, out, (socklen_t)outlen) != NULL)
		return;
	if (inet_pton(AF_INET6, cn, ip) == 1 &&
	    inet_ntop(AF_INET6, ip, out, (socklen_t)outlen) != NULL)
		return;
	for (i = 0; cn[i] != '\0' && i + 1 < outlen; i++)
		out[i] = (char)tolower((unsigned char)cn[i]);
	out[i] = '\0';
}

/* Checks the CN entries of the CSR subject: each must be one of the
 * identifiers. The first one becomes the certificate's CN. */
static int
order_csr_cn(X509_REQ *req, const json_t *idents, struct order_csr *out,
    struct acme_prob *p)
{
	const X509_NAME *name = X509_REQ_get_subject_name(req);
	char norm[ACME_IDENT_MAX + 3];
	unsigned char *utf8 = NULL;
	const X509_NAME_ENTRY *e;
	int i = -1, n;

	while ((i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >=
	    0) {
		e = X509_NAME_get_entry(name, i);
		if ((n = ASN1_STRING_to_UTF8(&utf8,
		    X509_NAME_ENTRY_get_data(e))) < 0 ||
		    (size_t)n >= sizeof(norm) || memchr(utf8, '\0',
		    (size_t)n) != NULL) {
			OPENSSL_free(utf8);
			acme_prob_set(p, 400, "badCSR",
			    "CSR common name is not usable");
			return -1;
		}
		order_cn_norm((const char *)utf8, norm, sizeof(norm));
		OPENSSL_free(utf8);
		utf8 = NULL;
		if (!order_idents_have(idents, "dns", norm) &&
		    !order_idents_have(idents, "ip", norm)) {
			acme_prob_set(p, 400, "badCSR",
			    "CSR common name \"%.*s\" is not one of the "
			    "order's identifiers", ORDER_SHOW_MAX, norm);
			return -1;
		}
		if (out->subject[0] == '\0' && strlen(norm) <= ORDER_CN_MAX)
			snprintf(out->subject, sizeof(out->subject),
			    "CN=%.*s", ORDER_CN_MAX, norm);
	}
	return 0;
}

/* True when the CSR's signature uses SHA-256/384/512, or a scheme
 * without a separate digest (Ed25519, RSA-PSS parameters). */
static bool
order_csr_digest_ok(const X509_REQ *req)
{
	int md = NID_undef, pk = NID_undef;

	if (OBJ_find_sigid_algs(X509_REQ_get_signature_nid(req), &md,
	    &pk) != 1)
		return false;
	return md == NID_undef || md == NID_sha256 || md == NID_sha384 ||
	    md == NID_sha512;
}

/*
 * Parses and checks a finalize CSR (RFC 8555 §7.4): base64url DER with
 * no trailing bytes, a valid self-signature, an accepted key type and
 * size (RSA >= 2048, P-256, P-384, Ed25519) other than the account key,
 * DNS/IP SANs equal to the order's identifiers (no other SAN types), and
 * a CN, if any, among them. Fills out. -1 with p (badCSR).
 */
static int
order_csr_check(struct acme_req *r, const char *b64, const json_t *idents,
    struct order_csr *out, struct acme_prob *p)
{
	char val[ACME_IDENT_MAX + 3];
	unsigned char *der = NULL;
	const unsigned char *dp;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	json_t *have = NULL, *e;
	const char *type, *first = NULL;
	enum ca_key_alg alg;
	size_t derlen = 0, i;
	int crit = -1, j, rc = -1;

	memset(out, 0, sizeof(*out));
	if (strlen(b64) > ORDER_CSR_MAX || common_b64_decode(b64,
	    strlen(b64), true, &der, &derlen) == -1 || derlen == 0) {
		acme_prob_set(p, 400, "badCSR", "\"csr\" is not base64url");
		goto out;
	}
	dp = der;
	if ((out->req = d2i_X509_REQ(NULL, &dp, (long)derlen)) == NULL ||
	    dp != der + derlen || !common_csr_is_der(out->req, der, derlen)) {
		acme_prob_set(p, 400, "badCSR",
		    "\"csr\" is not one DER PKCS#10 request");
		goto out;
	}
	if ((out->pubkey = X509_REQ_get0_pubkey(out->req)) == NULL ||
	    X509_REQ_verify(out->req, out->pubkey) != 1) {
		acme_prob_set(p, 400, "badCSR",
		    "CSR signature does not verify");
		goto out;
	}
	if (!order_csr_digest_ok(out->req)) {
		acme_prob_set(p, 400, "badCSR",
		    "CSR is signed with a weak digest: use SHA-256 or better");
		goto out;
	}
	if (ca_key_alg_of(out->pubkey, &alg) == -1 ||
	    !(alg == CA_KEY_RSA2048 || alg == CA_KEY_RSA3072 ||
	    alg == CA_KEY_RSA4096 || alg == CA_KEY_ECDSA_P256 ||
	    alg == CA_KEY_ECDSA_P384 || alg == CA_KEY_ED25519)) {
		acme_prob_set(p, 400, "badCSR",
		    "CSR key type or size is not accepted (RSA 2048-4096, "
		    "ECDSA P-256/P-384, Ed25519)");
		goto out;
	}
	if (EVP_PKEY_eq(out->pubkey, r->key) == 1) {
		acme_prob_set(p, 400, "badCSR",
		    "the CSR key must not be the account key (RFC 8555 §11.1)");
		goto out;
	}
	if ((have = json_array()) == NULL) {
		acme_prob_set(p, 500, "serverInternal", "out of memory");
		goto out;
	}
	if ((exts = X509_REQ_get_extensions(out->req)) != NULL)
		gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL && crit != -1) {
		acme_prob_set(p, 400, "badCSR",
		    "CSR subjectAltName is malformed or repeated");
		goto out;
	}
	for (j = 0; gens != NULL && j < sk_GENERAL_NAME_num(gens); j++) {
		if (acme_gen_ident(sk_GENERAL_NAME_value(gens, j), &type,
		    val, sizeof(val)) == -1) {
			acme_prob_set(p, 400, "badCSR",
			    "CSR has a subjectAltName that is neither a DNS "
			    "name nor an IP address");
			goto out;
		}
		if (!order_idents_have(idents, type, val)) {
			acme_prob_set(p, 400, "badCSR",
			    "CSR names %s:%.*s, which is not an identifier of "
			    "the order", type, ORDER_SHOW_MAX, val);
			goto out;
		}
		if (!order_idents_have(have, type, val) &&
		    json_array_append_new(have, json_pack("{s:s,s:s}",
		    "type", type, "value", val)) == -1) {
			acme_prob_set(p, 500, "serverInternal",
			    "out of memory");
			goto out;
		}
	}
	json_array_foreach(idents, i, e) {
		if (!order_idents_have(have, order_str(e, "type"),
		    order_str(e, "value"))) {
			acme_prob_set(p, 400, "badCSR",
			    "CSR lacks the identifier %s:%.*s of the order",
			    order_str(e, "type"), ORDER_SHOW_MAX,
			    order_str(e, "value"));
			goto out;
		}
	}
	if (order_csr_cn(out->req, idents, out, p) == -1)
		goto out;
	if ((out->sans = calloc(json_array_size(idents) + 1,
	    sizeof(*out->sans))) == NULL) {
		acme_prob_set(p, 500, "serverInternal", "out of memory");
		goto out;
	}
	json_array_foreach(idents, i, e) {
		out->sans[out->nsans++] = order_str(e, "value");
		if (first == NULL && strcmp(order_str(e, "type"), "dns") == 0)
			first = order_str(e, "value");
	}
	/* No CN in the CSR: the first DNS name, when it fits. */
	if (out->subject[0] == '\0' && first != NULL &&
	    strlen(first) <= ORDER_CN_MAX)
		snprintf(out->subject, sizeof(out->subject), "CN=%.*s",
		    ORDER_CN_MAX, first);
	rc = 0;
out:
	if (rc == -1) {
		X509_REQ_free(out->req);
		free(out->sans);
		memset(out, 0, sizeof(*out));
	}
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	json_decref(have);
	free(der);
	return rc;
}

struct order_fin {
	struct acme_req		*r;
	const char		*id;
	struct order_csr	*csr;	/* NULL: only report the state */
	json_t			*out;	/* the order record after the txn */
	const char		*status;
	bool			 issued;
	struct acme_prob	 prob;
};

/* Maps a lifecycle refusal to a problem. */
static void
order_fin_refusal(struct acme_prob *p, const struct common_error *err)
{
	switch (err->code) {
	case COMMON_E_POLICY:
		acme_prob_set(p, 400, "rejectedIdentifier",
		    "the CA refused to issue: %s", err->msg);
		break;
	case COMMON_E_INVALID:
		acme_prob_set(p, 400, "badCSR", "the CA refused the CSR: %s",
		    err->msg);
		break;
	default:
		acme_prob_set(p, 500, "serverInternal", "issuance failed: %s",
		    err->msg[0] != '\0' ? err->msg : "unknown error");
		break;
	}
}

/*
 * The finalize transaction: re-reads the order; processing/valid are
 * returned unchanged, anything but ready is orderNotReady; every
 * authorization must still be valid. The order is written "processing"
 * first (taking its write lock, so a concurrent finalize waits or
 * deadlocks and is retried, then sees "valid"), then the certificate is
 * issued through lifecycle in this same transaction and the order becomes
 * "valid" with the certificate's serial.
 */
static int
order_fin_txn(struct store_txn *txn, void *arg)
{
	struct order_fin *c = arg;
	struct acme *a = c->r->a;
	const struct conf_acme_profile *pr;
	struct lifecycle_issue_req req;
	struct common_error err;
	enum ca_profile prof;
	char who[ACME_ID_MAX + 8], why[ACME_DETAIL_MAX];
	time_t now = common_now();
	json_t *v = NULL;
	const char *serial, *cert_id;
	int rc = -1;

	json_decref(c->out);
	c->out = NULL;
	c->issued = false;
	acme_prob_clear(&c->prob);
	if ((c->out = store_acme_order_get(a->st, txn, c->id)) == NULL) {
		acme_prob_set(&c->prob, 404, "malformed", "no order %s", c->id);
		return 1;
	}
	c->status = order_status_live(a, txn, c->out, now, why, sizeof(why));
	if (strcmp(c->status, "valid") == 0 ||
	    strcmp(c->status, "processing") == 0)
		return 0;
	if (strcmp(c->status, "ready") != 0) {
		acme_prob_set(&c->prob, 403, "orderNotReady",
		    "order %s is %s%s%s, not ready", c->id, c->status,
		    why[0] != '\0' ? ": " : "", why);
		return 1;
	}
	if ((pr = acme_profile_find(a, order_str(c->out, "profile"))) ==
	    NULL || ca_profile_parse(pr->pkid_profile, &prof) == -1) {
		acme_prob_set(&c->prob, 500, "serverInternal",
		    "order %s: profile %s is no longer configured", c->id,
		    order_str(c->out, "profile") != NULL ?
		    order_str(c->out, "profile") : "?");
		return 1;
	}
	if (json_object_set_new(c->out, "status", json_string("processing")) ==
	    -1 || store_acme_order_put(txn, c->id, c->out) == -1)
		return -1;
	memset(&req, 0, sizeof(req));
	req.ca_id = a->ca_id;
	req.cert_id = order_str(c->out, "replaces_cert_id");
	req.pubkey = c->csr->pubkey;
	req.spki = X509_REQ_get_X509_PUBKEY(c->csr->req);
	req.subject = c->csr->subject;
	req.sans = c->csr->sans;
	req.nsans = c->csr->nsans;
	req.profile = prof;
	req.validity_days = pr->validity_days;
	req.origin = "acme";
	snprintf(who, sizeof(who), "acme:%s", c->r->account_id);
	common_error_clear(&err);
	v = lifecycle_issue_txn(a->lc, txn, &req, who, &err);
	if (v == NULL && req.cert_id != NULL &&
	    (err.code == COMMON_E_NOTFOUND || err.code == COMMON_E_CONFLICT)) {
		/* The replaced certificate's inventory entry is gone or no
		 * longer external: start a new one. */
		req.cert_id = NULL;
		common_error_clear(&err);
		v = lifecycle_issue_txn(a->lc, txn, &req, who, &err);
	}
	if (v == NULL) {
		if (err.code == COMMON_E_INTERNAL || err.code == COMMON_E_NONE)
			goto out;
		order_fin_refusal(&c->prob, &err);
		rc = 1;
		goto out;
	}
	serial = order_str(v, "serial");
	cert_id = order_str(v, "certificate_id");
	if (serial == NULL || cert_id == NULL) {
		log_err("acme: order %s: issued version lacks serial or "
		    "certificate_id", c->id);
		goto out;
	}
	if (json_object_set_new(c->out, "status", json_string("valid")) ||
	    json_object_set_new(c->out, "certificate_serial",
	    json_string(serial)) ||
	    json_object_set_new(c->out, "cert_id", json_string(cert_id)) ||
	    json_object_set_new(c->out, "cert_version", json_integer(
	    json_integer_value(json_object_get(v, "version")))) ||
	    store_acme_order_put(txn, c->id, c->out) == -1)
		goto out;
	c->status = "valid";
	c->issued = true;
	rc = 0;
out:
	json_decref(v);
	return rc;
}

/* POST /acme/order/<id>/finalize {"csr"} (RFC 8555 §7.4) */
void
acme_order_finalize(struct acme_req *r, const char *id)
{
	struct order_csr csr;
	struct order_fin c;
	char why[ACME_DETAIL_MAX];
	const char *b64, *status;
	json_t *o = NULL;
	int rc;

	memset(&csr, 0, sizeof(csr));
	memset(&c, 0, sizeof(c));
	if (acme_req_auth(r, ACME_AUTH_KID) == -1)
		goto out;
	if ((o = order_load(r, id)) == NULL)
		goto out;
	/* Idempotent and cheap for a finished order, whatever the CSR. */
	status = order_status_live(r->a, NULL, o, common_now(), why,
	    sizeof(why));
	if (strcmp(status, "valid") == 0 || strcmp(status, "processing") == 0) {
		order_reply(r, 200, o, status, NULL);
		goto out;
	}
	if (strcmp(status, "ready") != 0) {
		acme_problem(r, 403, "orderNotReady",
		    "order %s is %s%s%s, not ready", id, status,
		    why[0] != '\0' ? ": " : "", why);
		goto out;
	}
	if (r->payload == NULL ||
	    (b64 = json_string_value(json_object_get(r->payload, "csr"))) ==
	    NULL) {
		acme_problem(r, 400, "malformed",
		    "finalize needs {\"csr\": base64url DER}");
		goto out;
	}
	if (order_csr_check(r, b64, json_object_get(o, "identifiers"), &csr,
	    &c.prob) == -1) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	c.r = r;
	c.id = id;
	c.csr = &csr;
	rc = store_txn_run(r->a->st, order_fin_txn, &c);
	if (rc > 0) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	if (rc != 0 || c.out == NULL) {
		acme_problem(r, 500, "serverInternal",
		    "cannot finalize order %s", id);
		goto out;
	}
	if (c.issued)
		log_info("acme: order %s: issued certificate %s (%s)", id,
		    order_str(c.out, "certificate_serial"),
		    order_str(c.out, "cert_id"));
	order_reply(r, 200, c.out, c.status, NULL);
out:
	acme_prob_clear(&c.prob);
	json_decref(c.out);
	json_decref(o);
	order_csr_clear(&csr);
}

/* ---- certificate download ----------------------------------------------- */

/* True for 1..ACME_SERIAL_MAX-1 hex digits. */
static bool
order_serial_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return i > 0 && i < ACME_SERIAL_MAX;
}

/* True when der[0..len) is exactly one DER SEQUENCE holding a
 * SEQUENCE (the shape of a Certificate): a damaged registry row is
 * refused rather than sent. */
static bool
order_der_is_cert(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	long n;
	int tag, cls, ret;

	if (len == 0 || len > LONG_MAX)
		return false;
	ret = ASN1_get_object(&p, &n, &tag, &cls, (long)len);
	if ((ret & 0x80) || ret != V_ASN1_CONSTRUCTED ||
	    tag != V_ASN1_SEQUENCE || cls != V_ASN1_UNIVERSAL ||
	    (size_t)(p - der) + (size_t)n != len)
		return false;
	ret = ASN1_get_object(&p, &n, &tag, &cls, n);
	return !(ret & 0x80) && ret == V_ASN1_CONSTRUCTED &&
	    tag == V_ASN1_SEQUENCE;
}

/* POST-as-GET /acme/cert/<serial>: the leaf and its chain up to the root
 * as application/pem-certificate-chain; only for the ordering account. */
void
acme_cert_download(struct acme_req *r, const char *serial)
{
	struct common_error err;
	struct common_buf b;
	json_t *o = NULL, *issued = NULL;
	unsigned char *der = NULL;
	const char *b64, *ca_id, *hex;
	char *body = NULL, *chain = NULL;
	size_t derlen = 0;

	common_buf_init(&b, STORE_RECORD_MAX);
	if (acme_req_auth(r, ACME_AUTH_KID) == -1 ||
	    acme_req_post_as_get(r) == -1)
		goto out;
	if (!order_serial_ok(serial)) {
		acme_problem(r, 404, "malformed", "no certificate %.*s",
		    ORDER_SHOW_MAX, serial);
		goto out;
	}
	if ((o = acme_order_by_serial(r->a, r->account_id, serial)) == NULL) {
		common_error_clear(&err);
		if ((issued = lifecycle_issued_get(r->a->lc, serial, &err)) !=
		    NULL)
			acme_problem(r, 403, "unauthorized",
			    "certificate %s was not ordered by this account",
			    serial);
		else
			acme_problem(r, 404, "malformed", "no certificate %s",
			    serial);
		goto out;
	}
	/* The registry row (lifecycle_issued_get): the DER goes out as PEM
	 * as it is, without decoding the certificate. */
	common_error_clear(&err);
	hex = order_str(o, "certificate_serial");
	if (hex == NULL ||
	    (issued = lifecycle_issued_get(r->a->lc, hex, &err)) == NULL ||
	    (b64 = order_str(issued, "der")) == NULL ||
	    (ca_id = order_str(issued, "ca_id")) == NULL ||
	    common_b64_decode(b64, strlen(b64), false, &der, &derlen) == -1 ||
	    !order_der_is_cert(der, derlen) ||
	    (body = common_b64_encode(der, derlen, false, ORDER_PEM_COLS)) ==
	    NULL) {
		log_err("acme: certificate %s: registry row unreadable",
		    serial);
		acme_problem(r, 500, "serverInternal",
		    "certificate %s cannot be read: bad registry record",
		    serial);
		goto out;
	}
	common_error_clear(&err);
	if ((chain = ca_bundle_pem(r->a->ca, NULL, ca_id, &err)) == NULL) {
		acme_problem(r, 500, "serverInternal",
		    "chain of CA %s cannot be read: %s", ca_id, err.msg);
		goto out;
	}
	if (common_buf_addstr(&b, ORDER_PEM_BEGIN) == -1 ||
	    common_buf_addstr(&b, body) == -1 ||
	    common_buf_addstr(&b, ORDER_PEM_END) == -1 ||
	    common_buf_addstr(&b, chain) == -1) {
		acme_problem(r, 500, "serverInternal",
		    "certificate chain too large");
		goto out;
	}
	acme_reply(r, 200, ACME_CT_PEM_CHAIN, b.data, b.len);
out:
	common_buf_free(&b);
	free(der);
	free(body);
	free(chain);
	json_decref(issued);
	json_decref(o);
}
