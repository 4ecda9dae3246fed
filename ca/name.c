/*
 * ca/name.c — subjects as RFC 4514 strings ("CN=web,O=Acme") to and from
 * X509_NAME. The string lists RDNs most specific first, the reverse of
 * the DER order, so parsing adds them back to front.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "ca/ca.h"

#define NAME_ATTRS_MAX	32	/* attribute values in one subject */
#define NAME_TYPE_MAX	32	/* attribute type keyword, bytes */

/* Attribute types accepted in subjects, RFC 4514 keywords first. */
static const struct {
	const char	*keyword;
	int		 nid;
} name_types[] = {
	{ "CN", NID_commonName },
	{ "O", NID_organizationName },
	{ "OU", NID_organizationalUnitName },
	{ "C", NID_countryName },
	{ "ST", NID_stateOrProvinceName },
	{ "L", NID_localityName },
	{ "DC", NID_domainComponent },
	{ "emailAddress", NID_pkcs9_emailAddress },
	{ "E", NID_pkcs9_emailAddress },
	{ "serialNumber", NID_serialNumber },
};

/* One parsed attribute value; val points into the decode buffer. */
struct name_ava {
	int		 nid;
	const char	*type;	/* keyword as accepted, for messages */
	bool		 new_rdn; /* false: joined to the previous by '+' */
	unsigned char	*val;
	size_t		 len;
};

static int
name_type_nid(const char *type, const char **keyword)
{
	size_t i;

	for (i = 0; i < sizeof(name_types) / sizeof(name_types[0]); i++) {
		if (strcasecmp(type, name_types[i].keyword) == 0) {
			*keyword = name_types[i].keyword;
			return name_types[i].nid;
		}
	}
	return NID_undef;
}

static int
name_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes one attribute value starting at *pp into out (room for the
 * rest of the string), stopping at an unescaped ',' or '+' or the end.
 * Unescaped leading and trailing spaces are dropped. Sets *pp to the
 * stopping character. -1 with err on a bad escape or a character RFC
 * 4514 requires to be escaped.
 */
static int
name_value(const char **pp, unsigned char *out, size_t *outlen,
    const char *type, struct common_error *err)
{
	const char *p = *pp;
	size_t n = 0, keep = 0;
	int hi, lo;

	while (*p == ' ')
		p++;
	if (*p == '#') {
		common_error_set(err, COMMON_E_INVALID, "subject attribute "
		    "%s: hex-encoded (#) values are not supported", type);
		return -1;
	}
	for (; *p != '\0' && *p != ',' && *p != '+'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\\') {
			p++;
			if (*p != '\0' && strchr(",+\"\\<>;=# ", *p) != NULL) {
				out[n++] = (unsigned char)*p;
			} else if ((hi = name_hexval(p[0])) >= 0 &&
			    (lo = name_hexval(p[1])) >= 0) {
				out[n++] = (unsigned char)(hi << 4 | lo);
				p++;
				if (out[n - 1] == '\0') {
					common_error_set(err, COMMON_E_INVALID,
					    "subject attribute %s: NUL byte in "
					    "the value", type);
					return -1;
				}
			} else {
				common_error_set(err, COMMON_E_INVALID,
				    "subject attribute %s: invalid escape "
				    "sequence", type);
				return -1;
			}
			keep = n;
			continue;
		}
		if (c == '"' || c == ';' || c == '<' || c == '>' || c < 0x20 ||
		    c == 0x7f) {
			common_error_set(err, COMMON_E_INVALID, "subject "
			    "attribute %s: character '%s' must be escaped",
			    type, c < 0x20 || c == 0x7f ? "control" :
			    c == '"' ? "\"" : c == ';' ? ";" : c == '<' ? "<" :
			    ">");
			return -1;
		}
		out[n++] = c;
		if (c != ' ')
			keep = n;
	}
	*outlen = keep;
	*pp = p;
	return 0;
}

/*
 * Parses an RFC 4514 subject. Types are case-insensitive keywords from
 * name_types; values may use the RFC 4514 escapes (\, \+ \" \\ \; \< \>
 * \= \# and "\ ") and hex pairs (\C3\A9), UTF-8 otherwise; '+' joins
 * attributes into a multi-valued RDN. Spaces around types, '=' and
 * separators are tolerated. Returns a new X509_NAME or NULL with err.
 */
X509_NAME *
ca_name_parse(const char *s, struct common_error *err)
{
	struct name_ava avas[NAME_ATTRS_MAX];
	char type[NAME_TYPE_MAX];
	X509_NAME *name = NULL, *result = NULL;
	unsigned char *buf = NULL, *w;
	const char *p, *t;
	size_t navas = 0, tlen, i;
	bool new_rdn = true;

	if (s == NULL)
		s = "";
	if (strlen(s) > CA_SUBJECT_MAX) {
		common_error_set(err, COMMON_E_INVALID, "subject is longer "
		    "than %d bytes", CA_SUBJECT_MAX);
		goto out;
	}
	if ((name = X509_NAME_new()) == NULL ||
	    (buf = malloc(strlen(s) + 1)) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL, "out of memory");
		goto out;
	}
	w = buf;
	p = s;
	while (*p == ' ')
		p++;
	if (*p == '\0') {
		result = name;	/* steal: the empty subject */
		name = NULL;
		goto out;
	}
	for (;;) {
		while (*p == ' ')
			p++;
		t = p;
		while (*p != '\0' && *p != '=' && *p != ',' && *p != '+')
			p++;
		if (*p != '=') {
			common_error_set(err, COMMON_E_INVALID, "subject: "
			    "expected TYPE=value at \"%.40s\"", t);
			goto out;
		}
		tlen = (size_t)(p - t);
		while (tlen > 0 && t[tlen - 1] == ' ')
			tlen--;
		if (tlen == 0 || tlen >= sizeof(type)) {
			common_error_set(err, COMMON_E_INVALID, "subject: "
			    "missing or overlong attribute type at \"%.40s\"",
			    t);
			goto out;
		}
		memcpy(type, t, tlen);
		type[tlen] = '\0';
		if (navas == NAME_ATTRS_MAX) {
			common_error_set(err, COMMON_E_INVALID, "subject has "
			    "more than %d attributes", NAME_ATTRS_MAX);
			goto out;
		}
		avas[navas].nid = name_type_nid(type, &avas[navas].type);
		if (avas[navas].nid == NID_undef) {
			common_error_set(err, COMMON_E_INVALID, "subject "
			    "attribute type \"%s\" is not supported (use CN, "
			    "O, OU, C, ST, L, DC, emailAddress, serialNumber)",
			    type);
			goto out;
		}
		p++;	/* '=' */
		avas[navas].val = w;
		if (name_value(&p, w, &avas[navas].len, avas[navas].type,
		    err) == -1)
			goto out;
		if (avas[navas].len == 0) {
			common_error_set(err, COMMON_E_INVALID, "subject "
			    "attribute %s has an empty value",
			    avas[navas].type);
			goto out;
		}
		w += avas[navas].len;
		avas[navas].new_rdn = new_rdn;
		navas++;
		if (*p == '\0')
			break;
		new_rdn = *p == ',';
		p++;
		while (*p == ' ')
			p++;
		if (*p == '\0') {
			common_error_set(err, COMMON_E_INVALID, "subject ends "
			    "with a separator");
			goto out;
		}
	}

	/*
	 * Everything back to front, values inside a multi-valued RDN too:
	 * X509_NAME_print_ex with XN_FLAG_DN_REV reverses both, so the text
	 * round-trips unchanged. An attribute opens a new RDN when the one
	 * after it in the text was not joined to it by '+'.
	 */
	for (i = navas; i-- > 0;) {
		if (X509_NAME_add_entry_by_NID(name, avas[i].nid, MBSTRING_UTF8,
		    avas[i].val, (int)avas[i].len, -1,
		    i + 1 == navas || avas[i + 1].new_rdn ? 0 : -1) != 1) {
			ERR_clear_error();
			common_error_set(err, COMMON_E_INVALID, "subject "
			    "attribute %s: value is too long or has characters "
			    "the attribute does not allow", avas[i].type);
			goto out;
		}
	}
	result = name;	/* steal */
	name = NULL;
out:
	X509_NAME_free(name);
	free(buf);
	return result;
}

/*
 * RFC 4514 text of name, most specific RDN first, with UTF-8 left as is
 * (not hex-escaped) so API clients read it; "" for an empty name.
 */
char *
ca_name_string(const X509_NAME *name)
{
	BIO *bio = NULL;
	char *data, *s = NULL;
	long n, i, o;

	if (name == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	if (X509_NAME_print_ex(bio, name, 0,
	    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
		goto out;
	n = BIO_get_mem_data(bio, &data);
	/* worst case every byte gains a backslash (see below) */
	if (n < 0 || (s = malloc((size_t)n * 2 + 1)) == NULL)
		goto out;
	/*
	 * OpenSSL escapes a leading '#' only in values longer than one
	 * character, so a value that is exactly "#" prints as "CN=#", which
	 * RFC 4514 reads as an (empty) hex-encoded value. Escape it so the
	 * text parses back to the same name (found by tests/fuzz).
	 */
	for (i = o = 0; i < n; i++) {
		s[o++] = data[i];
		if (data[i] == '=' && i + 1 < n && data[i + 1] == '#' &&
		    (i + 2 == n || data[i + 2] == ',' || data[i + 2] == '+'))
			s[o++] = '\\';
	}
	s[o] = '\0';
out:
	BIO_free(bio);
	return s;
}
