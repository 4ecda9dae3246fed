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

void
est_cacerts(struct est_req *r)
{
	struct common_error err;
	STACK_OF(X509) *certs = NULL;
	unsigned char *der = NULL;
	size_t len = 0;
	char *pem = NULL;

	common_error_clear(&err);
	if ((pem = ca_bundle_pem(r->e->ca, NULL, r->label->ca_id,
	    &err)) == NULL) {
		log_err("est: cacerts of label %s: bundle of CA %s: %s",
		    est_label_show(r->label), r->label->ca_id, err.msg);
		est_error(r, 500, "the CA certificates are not available");
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
	est_reply_b64(r, 200, EST_CT_PKCS7, der, len);
out:
	OPENSSL_free(der);
	sk_X509_pop_free(certs, X509_free);
	free(pem);
}
