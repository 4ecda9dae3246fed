/*
 * protocols/est/cacerts.c — GET /cacerts (RFC 7030 §4.1): the label's
 * issuing CA and its parents up to the root as a PKCS#7 certs-only,
 * base64. No authentication: this is how a client bootstraps its trust
 * (after checking the chain out of band, RFC 7030 §4.1.1).
 */
#include <stdlib.h>
#include <string.h>

#include "protocols/est/est.h"

#define EST_CT_PKCS7	"application/pkcs7-mime"

/*
 * A copy of the answer kept for label l when it was built from the
 * bundle text pem, into *der (OPENSSL_free). 0, or -1 when none is kept
 * for that text (or the copy failed).
 */
static int
est_cacerts_find(struct est *e, size_t l, const char *pem,
    unsigned char **der, size_t *len)
{
	const struct est_cacerts *c = &e->cacerts[l];
	int rc = -1;

	*der = NULL;
	*len = 0;
	pthread_mutex_lock(&e->cacerts_lock);
	if (c->pem != NULL && strcmp(c->pem, pem) == 0 &&
	    (*der = OPENSSL_memdup(c->der, c->len)) != NULL) {
		*len = c->len;
		rc = 0;
	}
	pthread_mutex_unlock(&e->cacerts_lock);
	return rc;
}

/* Keeps copies of der, built from pem, as label l's answer in place of
 * the one before; when a copy fails nothing changes. */
static void
est_cacerts_keep(struct est *e, size_t l, const char *pem,
    const unsigned char *der, size_t len)
{
	struct est_cacerts *c = &e->cacerts[l], old;
	char *p = strdup(pem);
	unsigned char *d = OPENSSL_memdup(der, len);

	if (p == NULL || d == NULL) {
		free(p);
		OPENSSL_free(d);
		return;
	}
	pthread_mutex_lock(&e->cacerts_lock);
	old = *c;
	c->pem = p;	/* steal */
	c->der = d;	/* steal */
	c->len = len;
	pthread_mutex_unlock(&e->cacerts_lock);
	free(old.pem);
	OPENSSL_free(old.der);
}

/*
 * The bundle is read on every request, so that a CA renewal shows at
 * once, but its certificates are parsed and encoded as PKCS#7 only when
 * its text changed: OpenSSL 3 sets up a key decoder for every
 * certificate it parses, which cost more than the rest of the request.
 */
void
est_cacerts(struct est_req *r)
{
	struct common_error err;
	STACK_OF(X509) *certs = NULL;
	unsigned char *der = NULL;
	size_t len = 0, l = (size_t)(r->label - r->e->labels);
	char *pem = NULL;

	common_error_clear(&err);
	if ((pem = ca_bundle_pem(r->e->ca, NULL, r->label->ca_id,
	    &err)) == NULL) {
		log_err("est: cacerts of label %s: bundle of CA %s: %s",
		    est_label_show(r->label), r->label->ca_id, err.msg);
		est_error(r, 500, "the CA certificates are not available");
		goto out;
	}
	if (est_cacerts_find(r->e, l, pem, &der, &len) == 0) {
		est_reply_b64(r, 200, EST_CT_PKCS7, der, len);
		goto out;
	}
	certs = common_x509s_from_pem(pem, strlen(pem), CA_CHAIN_MAX);
	if (certs == NULL || sk_X509_num(certs) == 0) {
		log_err("est: cacerts of label %s: CA %s has no readable "
		    "certificate chain", est_label_show(r->label),
		    r->label->ca_id);
		est_error(r, 500, "the CA certificates are not available");
		goto out;
	}
	if (est_pkcs7_certs(certs, &der, &len) == -1) {
		est_error(r, 500, "cannot encode the CA certificates");
		goto out;
	}
	est_cacerts_keep(r->e, l, pem, der, len);
	est_reply_b64(r, 200, EST_CT_PKCS7, der, len);
out:
	OPENSSL_free(der);
	sk_X509_pop_free(certs, X509_free);
	free(pem);
}
