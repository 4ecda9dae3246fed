/*
 * ca/san.c — subject alternative names typed by their form (DESIGN.md:
 * IP literal, user@domain, scheme://..., else a DNS name) and the naming
 * policy of a CA (DNS suffixes and IP ranges).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "ca/ca.h"

#define SAN_DNS_MAX		253	/* RFC 1035 name length, no final dot */
#define SAN_LABEL_MAX		63	/* RFC 1035 label length */
#define SAN_LOCAL_MAX		64	/* RFC 5321 section 4.5.3.1.1 */
#define SAN_SCHEME_MAX		32	/* URI scheme, bytes */
#define SAN_IP_TEXT_MAX		INET6_ADDRSTRLEN
#define SAN_CIDR_MAX		64	/* "addr/prefix" text, bytes */
#define POLICY_LIST_TEXT_MAX	300	/* rule list quoted in a refusal */

/*
 * Checks a lower-case DNS name: LDH labels of 1..63 characters that
 * neither start nor end with '-', at most 253 characters, no trailing
 * dot, a top-level label that is not all digits, and (when wildcard is
 * true) an optional "*." as the whole leftmost label. NULL when valid,
 * else the reason.
 */
static const char *
san_dns_check(const char *name, bool wildcard)
{
	const char *p = name, *label;
	size_t len = strlen(name), llen;
	bool digits;

	if (len == 0)
		return "empty name";
	if (len > SAN_DNS_MAX)
		return "longer than 253 characters";
	if (name[len - 1] == '.')
		return "trailing dot";
	if (wildcard && strncmp(p, "*.", 2) == 0)
		p += 2;
	if (strchr(p, '*') != NULL)
		return wildcard ? "a wildcard may only be the whole leftmost "
		    "label" : "wildcards are not allowed here";
	for (;;) {
		label = p;
		digits = true;
		while (*p != '\0' && *p != '.') {
			if (!((*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || *p == '-'))
				return "only letters, digits, '-' and '.' are "
				    "allowed";
			if (!(*p >= '0' && *p <= '9'))
				digits = false;
			p++;
		}
		llen = (size_t)(p - label);
		if (llen == 0)
			return "empty label";
		if (llen > SAN_LABEL_MAX)
			return "label longer than 63 characters";
		if (label[0] == '-' || label[llen - 1] == '-')
			return "label starts or ends with '-'";
		if (*p == '\0')
			break;
		p++;
	}
	if (digits)
		return "all-numeric top-level label";
	return NULL;
}

/* RFC 5322 atext, the characters of a dot-atom local part. */
static bool
san_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* True for a dot-atom local part of 1..64 characters. */
static bool
san_local_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > SAN_LOCAL_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return false;
			continue;
		}
		if (!san_atext(s[i]))
			return false;
	}
	return true;
}

/* Length of the URI scheme ending at "://" in s, or 0 when s has no
 * valid scheme there (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" /
 * "." )). */
static size_t
san_scheme_len(const char *s)
{
	const char *sep = strstr(s, "://");
	size_t n, i;

	if (sep == NULL)
		return 0;
	n = (size_t)(sep - s);
	if (n == 0 || n > SAN_SCHEME_MAX || !isalpha((unsigned char)s[0]))
		return 0;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' &&
		    s[i] != '-' && s[i] != '.')
			return 0;
	return n;
}

/* New GENERAL_NAME of an IA5String type (GEN_DNS, GEN_EMAIL, GEN_URI). */
static GENERAL_NAME *
san_ia5(int type, const char *s)
{
	GENERAL_NAME *gen = NULL;
	ASN1_IA5STRING *str = NULL;

	if ((str = ASN1_IA5STRING_new()) == NULL ||
	    ASN1_STRING_set(str, s, (int)strlen(s)) != 1)
		goto out;
	if ((gen = GENERAL_NAME_new()) == NULL)
		goto out;
	GENERAL_NAME_set0_value(gen, type, str);	/* steal */
	str = NULL;
out:
	ASN1_IA5STRING_free(str);
	return gen;
}

/* New iPAddress GENERAL_NAME of n (4 or 16) bytes. */
static GENERAL_NAME *
san_ip(const unsigned char *addr, int n)
{
	GENERAL_NAME *gen = NULL;
	ASN1_OCTET_STRING *os = NULL;

	if ((os = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(os, addr, n) != 1)
		goto out;
	if ((gen = GENERAL_NAME_new()) == NULL)
		goto out;
	GENERAL_NAME_set0_value(gen, GEN_IPADD, os);	/* steal */
	os = NULL;
out:
	ASN1_OCTET_STRING_free(os);
	return gen;
}

/*
 * Types and validates one SAN string. DNS names and email domains are
 * lower-cased (they are case-insensitive). Returns a new GENERAL_NAME or
 * NULL with err naming the SAN.
 */
static GENERAL_NAME *
san_parse_one(const char *s, struct common_error *err)
{
	unsigned char addr[16];
	char buf[CA_SAN_LEN_MAX + 1];
	const char *at, *why;
	GENERAL_NAME *gen = NULL;
	size_t len, i, local;

	len = strlen(s);
	if (len == 0) {
		common_error_set(err, COMMON_E_INVALID, "empty SAN");
		return NULL;
	}
	if (len > CA_SAN_LEN_MAX) {
		common_error_set(err, COMMON_E_INVALID, "SAN \"%.64s...\" is "
		    "longer than %d bytes", s, CA_SAN_LEN_MAX);
		return NULL;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
			common_error_set(err, COMMON_E_INVALID, "SAN \"%s\" "
			    "contains spaces, control or non-ASCII "
			    "characters", s);
			return NULL;
		}
	}
	if (inet_pton(AF_INET, s, addr) == 1)
		gen = san_ip(addr, 4);
	else if (inet_pton(AF_INET6, s, addr) == 1)
		gen = san_ip(addr, 16);
	else if (san_scheme_len(s) > 0) {
		if (len == san_scheme_len(s) + 3) {
			common_error_set(err, COMMON_E_INVALID, "SAN \"%s\" is "
			    "a URI without anything after the scheme", s);
			return NULL;
		}
		gen = san_ia5(GEN_URI, s);
	} else if ((at = strchr(s, '@')) != NULL) {
		if (strchr(at + 1, '@') != NULL ||
		    !san_local_valid(s, (size_t)(at - s))) {
			common_error_set(err, COMMON_E_INVALID, "SAN \"%s\" is "
			    "not a valid email address (local part)", s);
			return NULL;
		}
		local = (size_t)(at - s);
		for (i = 0; i <= len; i++)
			buf[i] = i > local ?
			    (char)tolower((unsigned char)s[i]) : s[i];
		if ((why = san_dns_check(buf + local + 1, false)) != NULL) {
			common_error_set(err, COMMON_E_INVALID, "SAN \"%s\" is "
			    "not a valid email address (domain: %s)", s, why);
			return NULL;
		}
		gen = san_ia5(GEN_EMAIL, buf);
	} else {
		for (i = 0; i <= len; i++)
			buf[i] = (char)tolower((unsigned char)s[i]);
		if ((why = san_dns_check(buf, true)) != NULL) {
			common_error_set(err, COMMON_E_INVALID, "SAN \"%s\" is "
			    "not a valid DNS name (%s)", s, why);
			return NULL;
		}
		gen = san_ia5(GEN_DNS, buf);
	}
	if (gen == NULL)
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
	return gen;
}

/*
 * Types each SAN string (san_parse_one) into a GENERAL_NAMES in the
 * given order, refusing duplicates (compared after normalisation, so
 * "A.example.com" repeats "a.example.com" and "0:0::1" repeats "::1").
 */
GENERAL_NAMES *
ca_sans_parse(const char *const *sans, size_t n, struct common_error *err)
{
	GENERAL_NAMES *gens = NULL, *result = NULL;
	GENERAL_NAME *gen = NULL;
	size_t i;
	int j;

	if (n > CA_MAX_SANS) {
		common_error_set(err, COMMON_E_INVALID, "%zu SANs: at most %d "
		    "are allowed", n, CA_MAX_SANS);
		goto out;
	}
	if ((gens = GENERAL_NAMES_new()) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (sans[i] == NULL) {
			common_error_set(err, COMMON_E_INVALID, "SAN %zu is "
			    "missing", i);
			goto out;
		}
		if ((gen = san_parse_one(sans[i], err)) == NULL)
			goto out;
		for (j = 0; j < sk_GENERAL_NAME_num(gens); j++) {
			if (GENERAL_NAME_cmp(gen,
			    sk_GENERAL_NAME_value(gens, j)) == 0) {
				common_error_set(err, COMMON_E_INVALID, "SAN "
				    "\"%s\" is given twice", sans[i]);
				goto out;
			}
		}
		if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
			common_error_set(err, COMMON_E_INTERNAL,
			    "out of memory");
			goto out;
		}
		gen = NULL;	/* owned by gens */
	}
	result = gens;	/* steal */
	gens = NULL;
out:
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return result;
}

/* Copy of an IA5String's text; NULL when it holds NUL or non-ASCII. */
static char *
san_ia5_text(const ASN1_STRING *str)
{
	const unsigned char *d = ASN1_STRING_get0_data(str);
	int n = ASN1_STRING_length(str), i;
	char *s;

	if (d == NULL || n <= 0 || n > CA_SAN_LEN_MAX)
		return NULL;
	for (i = 0; i < n; i++)
		if (d[i] < 0x20 || d[i] >= 0x7f)
			return NULL;
	if ((s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	memcpy(s, d, (size_t)n);
	s[n] = '\0';
	return s;
}

/* Text of a DNS, email, URI or IP SAN (to free()); NULL otherwise. */
char *
ca_san_string(const GENERAL_NAME *gen)
{
	char ip[SAN_IP_TEXT_MAX];
	const ASN1_OCTET_STRING *os;
	int type;
	const void *val;

	val = GENERAL_NAME_get0_value(gen, &type);
	switch (type) {
	case GEN_DNS:
	case GEN_EMAIL:
	case GEN_URI:
		return san_ia5_text(val);
	case GEN_IPADD:
		os = val;
		if (ASN1_STRING_length(os) == 4) {
			if (inet_ntop(AF_INET, ASN1_STRING_get0_data(os), ip,
			    sizeof(ip)) == NULL)
				return NULL;
		} else if (ASN1_STRING_length(os) == 16) {
			if (inet_ntop(AF_INET6, ASN1_STRING_get0_data(os), ip,
			    sizeof(ip)) == NULL)
				return NULL;
		} else
			return NULL;
		return strdup(ip);
	default:
		return NULL;
	}
}

/* ---- policy ---- */

/*
 * Parses "addr/prefix" (or a bare address: a single host) into addr,
 * its length (4 or 16) and the prefix. Host bits must be zero so the
 * range reads as the operator meant it. NULL when valid, else why not.
 */
static const char *
san_cidr_parse(const char *s, unsigned char addr[16], int *alen, int *prefix)
{
	char buf[SAN_CIDR_MAX];
	char *slash, *end;
	long v;
	int i, bits;

	if (strlen(s) >= sizeof(buf))
		return "too long";
	memcpy(buf, s, strlen(s) + 1);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1)
		*alen = 4;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		*alen = 16;
	else
		return "not an IPv4 or IPv6 address";
	*prefix = *alen * 8;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 3)
			return "bad prefix length";
		v = strtol(slash + 1, &end, 10);
		if (*end != '\0' || v < 0 || v > *alen * 8)
			return "bad prefix length";
		*prefix = (int)v;
	}
	for (i = 0; i < *alen; i++) {
		bits = *prefix - i * 8;
		if (bits >= 8)
			continue;
		if (bits <= 0 ? addr[i] != 0 :
		    (addr[i] & (0xff >> bits)) != 0)
			return "host bits are set";
	}
	return NULL;
}

/* True when the n-byte address ip lies in the range text. */
static bool
san_ip_in_range(const unsigned char *ip, int n, const char *range)
{
	unsigned char net[16];
	int alen, prefix, full, rest;

	if (san_cidr_parse(range, net, &alen, &prefix) != NULL || alen != n)
		return false;
	full = prefix / 8;
	rest = prefix % 8;
	if (memcmp(ip, net, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((ip[full] ^ net[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* True when name equals suffix or ends with "." + suffix. */
static bool
san_dns_in_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	if (n == s)
		return strcmp(name, suffix) == 0;
	return n > s && name[n - s - 1] == '.' &&
	    strcmp(name + n - s, suffix) == 0;
}

/* Array of strings from a policy field, validated and normalised. */
static json_t *
san_policy_list(const json_t *policy, const char *field,
    struct common_error *err)
{
	unsigned char addr[16];
	char norm[SAN_CIDR_MAX], text[SAN_IP_TEXT_MAX], lower[SAN_DNS_MAX + 2];
	const json_t *list, *v;
	json_t *arr = NULL, *result = NULL;
	const char *s, *why;
	size_t i, k;
	int alen, prefix;

	if ((arr = json_array()) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	list = json_object_get(policy, field);
	if (list == NULL || json_is_null(list)) {
		result = arr;	/* steal: no entries */
		arr = NULL;
		goto out;
	}
	if (!json_is_array(list)) {
		common_error_set(err, COMMON_E_INVALID, "policy: %s must be an "
		    "array of strings", field);
		goto out;
	}
	if (json_array_size(list) > CA_POLICY_ENTRIES_MAX) {
		common_error_set(err, COMMON_E_INVALID, "policy: %s has more "
		    "than %d entries", field, CA_POLICY_ENTRIES_MAX);
		goto out;
	}
	json_array_foreach(list, i, v) {
		if ((s = json_string_value(v)) == NULL) {
			common_error_set(err, COMMON_E_INVALID, "policy: %s "
			    "must be an array of strings", field);
			goto out;
		}
		if (strcmp(field, "dns_suffixes") == 0) {
			if (s[0] == '.')
				s++;	/* ".example.com" means the same */
			if (strlen(s) > SAN_DNS_MAX) {
				common_error_set(err, COMMON_E_INVALID,
				    "policy: dns_suffixes entry \"%.64s...\" "
				    "is too long", s);
				goto out;
			}
			for (k = 0; k <= strlen(s); k++)
				lower[k] = (char)tolower((unsigned char)s[k]);
			if ((why = san_dns_check(lower, false)) != NULL) {
				common_error_set(err, COMMON_E_INVALID,
				    "policy: dns_suffixes entry \"%s\" is not a "
				    "valid DNS name (%s)",
				    json_string_value(v), why);
				goto out;
			}
			if (json_array_append_new(arr, json_string(lower)) == -1)
				goto oom;
		} else {
			if ((why = san_cidr_parse(s, addr, &alen, &prefix)) !=
			    NULL) {
				common_error_set(err, COMMON_E_INVALID,
				    "policy: ip_ranges entry \"%s\" is not a "
				    "valid CIDR range (%s)", s, why);
				goto out;
			}
			if (inet_ntop(alen == 4 ? AF_INET : AF_INET6, addr,
			    text, sizeof(text)) == NULL ||
			    common_path(norm, sizeof(norm), "%s/%d", text,
			    prefix) == -1)
				goto oom;
			if (json_array_append_new(arr, json_string(norm)) == -1)
				goto oom;
		}
	}
	result = arr;	/* steal */
	arr = NULL;
	goto out;
oom:
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	json_decref(arr);
	return result;
}

/*
 * Validates a policy and returns {"dns_suffixes": [..], "ip_ranges":
 * [..]} with suffixes lower-cased and ranges in canonical text. Unknown
 * fields are refused so a typo does not silently leave a CA open.
 */
json_t *
ca_policy_normalize(const json_t *policy, struct common_error *err)
{
	json_t *out = NULL, *dns = NULL, *ips = NULL;
	const char *k;
	json_t *v;

	if (policy != NULL && !json_is_null(policy)) {
		if (!json_is_object(policy)) {
			common_error_set(err, COMMON_E_INVALID, "policy must be "
			    "an object");
			goto out;
		}
		json_object_foreach((json_t *)policy, k, v) {
			if (strcmp(k, "dns_suffixes") != 0 &&
			    strcmp(k, "ip_ranges") != 0) {
				common_error_set(err, COMMON_E_INVALID,
				    "policy: unknown field \"%s\"", k);
				goto out;
			}
		}
	}
	if ((dns = san_policy_list(policy, "dns_suffixes", err)) == NULL ||
	    (ips = san_policy_list(policy, "ip_ranges", err)) == NULL)
		goto out;
	out = json_pack("{s:O,s:O}", "dns_suffixes", dns, "ip_ranges", ips);
	if (out == NULL)
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
out:
	json_decref(dns);
	json_decref(ips);
	return out;
}

/* Refusal for san outside the rule (field) of the CA ca_rec. */
static void
san_policy_refuse(struct common_error *err, const json_t *ca_rec,
    const char *field, const json_t *list, const char *san)
{
	struct common_buf b;
	const json_t *v;
	size_t i;
	const char *name = json_string_value(json_object_get(ca_rec, "name"));
	const char *id = json_string_value(json_object_get(ca_rec, "id"));

	/* Room past the limit for the ", ..." that marks a cut list. */
	common_buf_init(&b, POLICY_LIST_TEXT_MAX + 8);
	json_array_foreach(list, i, v) {
		if (b.len + strlen(json_string_value(v)) + 2 >
		    POLICY_LIST_TEXT_MAX) {
			(void)common_buf_addstr(&b, i > 0 ? ", ..." : "...");
			break;
		}
		(void)common_buf_addf(&b, "%s%s", i > 0 ? ", " : "",
		    json_string_value(v));
	}
	common_error_set(err, COMMON_E_POLICY, "SAN \"%s\" is outside the %s "
	    "[%s] of CA %s \"%s\"", san, field,
	    b.data != NULL ? (const char *)b.data : "", id != NULL ? id : "?",
	    name != NULL ? name : "");
	log_info("policy: CA %s refused SAN \"%s\": outside its %s",
	    id != NULL ? id : "?", san, field);
	common_buf_free(&b);
}

/*
 * Checks each SAN against the CA's own rules: DNS names and email
 * domains against dns_suffixes, IP addresses against ip_ranges (an empty
 * list leaves that kind unrestricted; URIs are not constrained). The
 * first SAN outside a rule is refused with a message naming it, the
 * rule and the CA.
 */
int
ca_policy_check(const json_t *ca_rec, const GENERAL_NAMES *sans,
    struct common_error *err)
{
	const json_t *policy, *dns, *ips, *v;
	const GENERAL_NAME *gen;
	const ASN1_STRING *str;
	const char *domain, *at;
	char *text = NULL;
	bool ok;
	size_t k;
	int i, type, rc = -1;

	policy = json_object_get(ca_rec, "policy");
	dns = json_object_get(policy, "dns_suffixes");
	ips = json_object_get(policy, "ip_ranges");
	for (i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		gen = sk_GENERAL_NAME_value(sans, i);
		free(text);
		if ((text = ca_san_string(gen)) == NULL) {
			common_error_set(err, COMMON_E_INVALID, "SAN %d has an "
			    "unsupported type or a malformed value", i + 1);
			goto out;
		}
		str = GENERAL_NAME_get0_value(gen, &type);
		if (type == GEN_DNS || type == GEN_EMAIL) {
			if (json_array_size(dns) == 0)
				continue;
			domain = text;
			if (type == GEN_EMAIL &&
			    (at = strrchr(text, '@')) != NULL)
				domain = at + 1;
			ok = false;
			json_array_foreach(dns, k, v) {
				if (json_is_string(v) && san_dns_in_suffix(
				    domain, json_string_value(v))) {
					ok = true;
					break;
				}
			}
			if (!ok) {
				san_policy_refuse(err, ca_rec, "dns_suffixes",
				    dns, text);
				goto out;
			}
		} else if (type == GEN_IPADD) {
			if (json_array_size(ips) == 0)
				continue;
			ok = false;
			json_array_foreach(ips, k, v) {
				if (json_is_string(v) && san_ip_in_range(
				    ASN1_STRING_get0_data(str),
				    ASN1_STRING_length(str),
				    json_string_value(v))) {
					ok = true;
					break;
				}
			}
			if (!ok) {
				san_policy_refuse(err, ca_rec, "ip_ranges",
				    ips, text);
				goto out;
			}
		}
	}
	rc = 0;
out:
	free(text);
	return rc;
}
