/*
 * protocols/est/csrattrs.c — GET /csrattrs (RFC 7030 §4.5, RFC 8951 §3.5):
 * what the label wants in a CSR, as a DER CsrAttrs
 *
 *	CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
 *	AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
 *
 * in the style of the RFC 7030 §4.5.2 example: challengePassword (bare
 * OID) when the label needs tls-unique proof of possession; the key type
 * as an attribute carrying its parameter (id-ecPublicKey with the curve
 * OID, rsaEncryption with the modulus size in bits) or a bare id-Ed25519;
 * the signature algorithm as a bare OID (ecdsa-with-SHA256/SHA384,
 * sha256WithRSAEncryption; none for Ed25519, whose hash is intrinsic).
 * No authentication, like /cacerts: the answer reveals only policy.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "protocols/est/est.h"

#define EST_CT_CSRATTRS	"application/csrattrs"

/* Appends a bare OBJECT IDENTIFIER. 0 or -1. */
static int
est_attrs_oid(STACK_OF(ASN1_TYPE) *seq, int nid)
{
	ASN1_TYPE *t;

	if ((t = ASN1_TYPE_new()) == NULL)
		return -1;
	ASN1_TYPE_set(t, V_ASN1_OBJECT, OBJ_nid2obj(nid));
	if (sk_ASN1_TYPE_push(seq, t) == 0) {
		ASN1_TYPE_free(t);
		return -1;
	}
	return 0;
}

/* Appends Attribute { nid, SET { value } } where the value is of type
 * vtype at vptr (stolen, also on failure). 0 or -1. */
static int
est_attrs_attr(STACK_OF(ASN1_TYPE) *seq, int nid, int vtype, void *vptr)
{
	X509_ATTRIBUTE *a;
	ASN1_STRING *s = NULL;
	ASN1_TYPE *t = NULL;
	unsigned char *der = NULL;
	int n, rc = -1;

	if ((a = X509_ATTRIBUTE_create(nid, vtype, vptr)) == NULL) {
		if (vtype == V_ASN1_INTEGER)
			ASN1_INTEGER_free(vptr);
		goto out;
	}
	/* the attribute now owns vptr */
	if ((n = i2d_X509_ATTRIBUTE(a, &der)) <= 0 ||
	    (s = ASN1_STRING_new()) == NULL ||
	    ASN1_STRING_set(s, der, n) != 1 || (t = ASN1_TYPE_new()) == NULL)
		goto out;
	ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);	/* steal */
	s = NULL;
	if (sk_ASN1_TYPE_push(seq, t) == 0)
		goto out;
	t = NULL;
	rc = 0;
out:
	ASN1_TYPE_free(t);
	ASN1_STRING_free(s);
	OPENSSL_free(der);
	X509_ATTRIBUTE_free(a);
	return rc;
}

/* Appends the key type and signature algorithm of alg. 0 or -1. */
static int
est_attrs_key(STACK_OF(ASN1_TYPE) *seq, enum ca_key_alg alg)
{
	ASN1_INTEGER *bits;
	long nbits;

	switch (alg) {
	case CA_KEY_ECDSA_P256:
		return est_attrs_attr(seq, NID_X9_62_id_ecPublicKey,
		    V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1)) == -1 ||
		    est_attrs_oid(seq, NID_ecdsa_with_SHA256) == -1 ? -1 : 0;
	case CA_KEY_ECDSA_P384:
		return est_attrs_attr(seq, NID_X9_62_id_ecPublicKey,
		    V_ASN1_OBJECT, OBJ_nid2obj(NID_secp384r1)) == -1 ||
		    est_attrs_oid(seq, NID_ecdsa_with_SHA384) == -1 ? -1 : 0;
	case CA_KEY_RSA2048:
	case CA_KEY_RSA3072:
	case CA_KEY_RSA4096:
		nbits = alg == CA_KEY_RSA2048 ? 2048 :
		    alg == CA_KEY_RSA3072 ? 3072 : 4096;
		if ((bits = ASN1_INTEGER_new()) == NULL ||
		    ASN1_INTEGER_set(bits, nbits) != 1) {
			ASN1_INTEGER_free(bits);
			return -1;
		}
		return est_attrs_attr(seq, NID_rsaEncryption, V_ASN1_INTEGER,
		    bits) == -1 ||
		    est_attrs_oid(seq, NID_sha256WithRSAEncryption) == -1 ?
		    -1 : 0;
	case CA_KEY_ED25519:
		return est_attrs_oid(seq, NID_ED25519);
	default:
		return 0;	/* nothing to say */
	}
}

int
est_csrattrs_der(const struct est_label *l, unsigned char **der,
    size_t *len)
{
	STACK_OF(ASN1_TYPE) *seq = NULL;
	unsigned char *buf = NULL;
	int n, rc = -1;

	*der = NULL;
	*len = 0;
	if ((seq = sk_ASN1_TYPE_new_null()) == NULL)
		goto out;
	if (l->cf->pop_required &&
	    est_attrs_oid(seq, NID_pkcs9_challengePassword) == -1)
		goto out;
	if (est_attrs_key(seq, l->key_alg) == -1)
		goto out;
	if (sk_ASN1_TYPE_num(seq) == 0) {
		rc = 0;
		goto out;
	}
	if ((n = i2d_ASN1_SEQUENCE_ANY(seq, &buf)) <= 0)
		goto out;
	*der = buf;	/* steal */
	*len = (size_t)n;
	buf = NULL;
	rc = 0;
out:
	if (rc == -1)
		log_err("est: csrattrs of label %s: %s", est_label_show(l),
		    common_ssl_error());
	OPENSSL_free(buf);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return rc;
}

void
est_csrattrs(struct est_req *r)
{
	unsigned char *der = NULL;
	size_t len = 0;

	if (est_csrattrs_der(r->label, &der, &len) == -1) {
		est_error(r, 500, "cannot encode the CSR attributes");
		return;
	}
	if (len == 0)
		est_reply(r, 204, NULL, NULL, 0);
	else
		est_reply_b64(r, 200, EST_CT_CSRATTRS, der, len);
	OPENSSL_free(der);
}
