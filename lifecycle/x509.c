/*
 * lifecycle/x509.c — what lifecycle reads out of certificates and
 * requests it did not build: SANs and subject text of imported
 * certificates, the profile their EKU implies, and the comparisons that
 * decide whether an external CSR carries the subject and SANs a request
 * names.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "lifecycle/lifecycle.h"

#define LC_RDN_MAX	64	/* attributes in a subject we compare */
#define LC_ATTR_MAX	256	/* bytes of one attribute value */
#define LC_PEM_MAX	(1024 * 1024)	/* PEM text we write back */

/* One subject attribute: type as a NID, value as UTF-8. */
struct lc_attr {
	int	nid;
	char	value[LC_ATTR_MAX];
	bool	used;
};

/*
 * SAN strings of x in the form DESIGN.md types them by: DNS names,
 * e-mail addresses and URIs as written, IP addresses in inet_ntop form.
 * Other name forms are skipped. Returns a JSON array (empty when x has no
 * SAN extension) or NULL on allocation failure.
 */
json_t *
lifecycle_x509_sans(X509 *x)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *g;
	char ip[INET6_ADDRSTRLEN];
	json_t *arr, *s;
	int i;

	if ((arr = json_array()) == NULL)
		return NULL;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		s = NULL;
		switch (g->type) {
		case GEN_DNS:
		case GEN_EMAIL:
		case GEN_URI:
			s = json_stringn((const char *)ASN1_STRING_get0_data(
			    g->d.ia5), (size_t)ASN1_STRING_length(g->d.ia5));
			break;
		case GEN_IPADD:
			if (ASN1_STRING_length(g->d.ip) == 4 &&
			    inet_ntop(AF_INET, ASN1_STRING_get0_data(g->d.ip),
			    ip, sizeof(ip)) != NULL)
				s = json_string(ip);
			else if (ASN1_STRING_length(g->d.ip) == 16 &&
			    inet_ntop(AF_INET6,
			    ASN1_STRING_get0_data(g->d.ip), ip,
			    sizeof(ip)) != NULL)
				s = json_string(ip);
			break;
		default:
			break;
		}
		if (s != NULL && json_array_append_new(arr, s) == -1) {
			json_decref(arr);
			arr = NULL;
			break;
		}
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return arr;
}

/*
 * RFC 4514 text of a name (most specific attribute first, UTF-8 kept).
 * Returns a string to free(), NULL on failure.
 */
char *
lifecycle_name_text(const X509_NAME *name)
{
	unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
	BIO *b = NULL;
	char *data, *out = NULL;
	long n;

	if ((b = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	if (X509_NAME_print_ex(b, name, 0, flags) < 0)
		goto out;
	n = BIO_get_mem_data(b, &data);
	if (n < 0 || (out = strndup(n > 0 ? data : "", (size_t)n)) == NULL)
		goto out;
out:
	BIO_free(b);
	return out;
}

/*
 * The profile a certificate's extended key usage matches, or NULL when it
 * has none or a mix no profile describes.
 */
const char *
lifecycle_x509_profile(X509 *x)
{
	uint32_t xku;
	bool srv, cli, code;

	if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) == 0)
		return NULL;
	xku = X509_get_extended_key_usage(x);
	srv = (xku & XKU_SSL_SERVER) != 0;
	cli = (xku & XKU_SSL_CLIENT) != 0;
	code = (xku & XKU_CODE_SIGN) != 0;
	if (srv && cli && !code)
		return ca_profile_name(CA_PROFILE_TLS_SERVER_OR_CLIENT);
	if (srv && !cli && !code)
		return ca_profile_name(CA_PROFILE_TLS_SERVER);
	if (cli && !srv && !code)
		return ca_profile_name(CA_PROFILE_TLS_CLIENT);
	if (code && !srv && !cli)
		return ca_profile_name(CA_PROFILE_CODE_SIGNING);
	return NULL;
}

/* PEM of a request, to free(); NULL on failure. */
char *
lifecycle_csr_to_pem(X509_REQ *csr)
{
	BIO *b = NULL;
	char *data, *out = NULL;
	long n;

	if ((b = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	if (PEM_write_bio_X509_REQ(b, csr) != 1)
		goto out;
	n = BIO_get_mem_data(b, &data);
	if (n <= 0 || n > LC_PEM_MAX)
		goto out;
	out = strndup(data, (size_t)n);
out:
	BIO_free(b);
	return out;
}

/* Public key from PEM (SubjectPublicKeyInfo); NULL on failure. */
EVP_PKEY *
lifecycle_pubkey_from_pem(const char *pem)
{
	BIO *b;
	EVP_PKEY *k = NULL;

	if ((b = BIO_new_mem_buf(pem, -1)) != NULL)
		k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	if (k == NULL)
		ERR_clear_error();
	return k;
}

/* Two SAN strings name the same thing: IP addresses by value, anything
 * else without regard to ASCII case. */
static bool
lc_san_equal(const char *a, const char *b)
{
	unsigned char ia[16], ib[16];
	int fa = 0, fb = 0;

	if (inet_pton(AF_INET, a, ia) == 1)
		fa = AF_INET;
	else if (inet_pton(AF_INET6, a, ia) == 1)
		fa = AF_INET6;
	if (inet_pton(AF_INET, b, ib) == 1)
		fb = AF_INET;
	else if (inet_pton(AF_INET6, b, ib) == 1)
		fb = AF_INET6;
	if (fa != 0 || fb != 0)
		return fa == fb && memcmp(ia, ib, fa == AF_INET ? 4 : 16) == 0;
	return strcasecmp(a, b) == 0;
}

static bool
lc_san_in(const json_t *set, const char *s)
{
	size_t i;
	json_t *e;

	json_array_foreach(set, i, e) {
		if (json_is_string(e) && lc_san_equal(json_string_value(e), s))
			return true;
	}
	return false;
}

/* Appends the strings of a that are not in b to buf, comma separated. */
static bool
lc_san_missing(struct common_buf *buf, const json_t *a, const json_t *b,
    const char *label)
{
	bool any = false;
	size_t i;
	json_t *e;

	json_array_foreach(a, i, e) {
		const char *s = json_string_value(e);

		if (s == NULL || lc_san_in(b, s))
			continue;
		(void)common_buf_addf(buf, "%s%s", any ? ", " : label, s);
		any = true;
	}
	return any;
}

/*
 * Compares the SAN set a request names with the set its CSR carries. On
 * a difference sets COMMON_E_INVALID saying what is missing on each side
 * and returns -1.
 */
int
lifecycle_sans_match(const json_t *want, const json_t *csr,
    struct common_error *err)
{
	struct common_buf b;
	bool diff;
	char *msg;

	common_buf_init(&b, sizeof(err->msg) - 1);
	(void)common_buf_addstr(&b, "csr SANs differ from \"sans\":");
	diff = lc_san_missing(&b, want, csr, " not in csr: ");
	if (diff)
		(void)common_buf_addstr(&b, ";");
	diff = lc_san_missing(&b, csr, want, " only in csr: ") || diff;
	if (!diff) {
		common_buf_free(&b);
		return 0;
	}
	msg = common_buf_steal(&b, NULL);
	common_error_set(err, COMMON_E_INVALID, "%s",
	    msg != NULL ? msg : "csr SANs differ from \"sans\"");
	free(msg);
	return -1;
}

/* The attributes of an X509_NAME, values as UTF-8. -1 on failure. */
static int
lc_name_attrs(const X509_NAME *name, struct lc_attr *attrs, int max)
{
	const X509_NAME_ENTRY *e;
	unsigned char *utf8;
	int i, n = X509_NAME_entry_count(name), len;

	if (n > max)
		return -1;
	for (i = 0; i < n; i++) {
		e = X509_NAME_get_entry(name, i);
		attrs[i].nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
		attrs[i].used = false;
		if ((len = ASN1_STRING_to_UTF8(&utf8,
		    X509_NAME_ENTRY_get_data(e))) < 0)
			return -1;
		if ((size_t)len >= sizeof(attrs[i].value)) {
			OPENSSL_free(utf8);
			return -1;
		}
		memcpy(attrs[i].value, utf8, (size_t)len);
		attrs[i].value[len] = '\0';
		OPENSSL_free(utf8);
	}
	return n;
}

/*
 * True when the request's subject text (parsed by ca/, the one RFC 4514
 * parser) and the CSR's subject hold the same attributes (type and value,
 * values without regard to ASCII case, in any order: writers disagree on
 * which end comes first). A subject that does not parse never matches.
 */
bool
lifecycle_subject_match(const char *want, const X509_NAME *csr)
{
	struct common_error err;
	struct lc_attr *a = NULL, *b = NULL;
	X509_NAME *wn = NULL;
	int na, nb, i, j;
	bool ok = false;

	common_error_clear(&err);
	a = calloc(LC_RDN_MAX, sizeof(*a));
	b = calloc(LC_RDN_MAX, sizeof(*b));
	if (a == NULL || b == NULL)
		goto out;
	if ((wn = ca_name_parse(want, &err)) == NULL ||
	    (na = lc_name_attrs(wn, a, LC_RDN_MAX)) < 0 ||
	    (nb = lc_name_attrs(csr, b, LC_RDN_MAX)) < 0 || na != nb)
		goto out;
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb; j++) {
			if (!b[j].used && a[i].nid == b[j].nid &&
			    strcasecmp(a[i].value, b[j].value) == 0)
				break;
		}
		if (j == nb)
			goto out;
		b[j].used = true;
	}
	ok = true;
out:
	X509_NAME_free(wn);
	free(a);
	free(b);
	return ok;
}
