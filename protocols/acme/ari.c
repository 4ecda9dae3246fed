/*
 * protocols/acme/ari.c — ACME Renewal Information (RFC 9773): the
 * renewalInfo resource GET /acme/renewal-info/<certID>, where certID is
 * base64url(AKI keyIdentifier) "." base64url(serial DER content bytes)
 * (§4.1). The suggested window is the last third of the lifetime up to
 * its last sixth; a revoked certificate gets a window already open so
 * clients replace it at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "protocols/acme/acme.h"

#define ARI_CERTID_MAX		256	/* bytes of a certID */
#define ARI_SERIAL_BYTES_MAX	20	/* RFC 5280 §4.1.2.2 */
#define ARI_TIME_MAX		32	/* RFC 3339 text + NUL */
#define ARI_REVOKED_OPEN	86400	/* revoked: window opened a day ago */
#define ARI_REVOKED_CLOSE	3600	/* ... and closed an hour ago */
#define ARI_START_DIVISOR	3	/* start = notAfter - lifetime / 3 */
#define ARI_END_DIVISOR		6	/* end = notAfter - lifetime / 6 */

int
acme_ari_certid_parse(const char *certid, char *serial, size_t seriallen,
    unsigned char **aki, size_t *akilen)
{
	const char *dot;
	unsigned char *sb = NULL;
	size_t sblen = 0, i, o = 0;
	int rc = -1;

	*aki = NULL;
	*akilen = 0;
	if (certid == NULL || strlen(certid) > ARI_CERTID_MAX ||
	    (dot = strchr(certid, '.')) == NULL || dot == certid ||
	    strchr(dot + 1, '.') != NULL || dot[1] == '\0')
		goto out;
	if (common_b64_decode(certid, (size_t)(dot - certid), true, aki,
	    akilen) == -1 || *akilen == 0 ||
	    common_b64_decode(dot + 1, strlen(dot + 1), true, &sb,
	    &sblen) == -1 || sblen == 0 || sblen > ARI_SERIAL_BYTES_MAX + 1)
		goto out;
	/* DER INTEGER content: a positive serial has its top bit clear. */
	if (sb[0] & 0x80)
		goto out;
	for (i = 0; i + 1 < sblen && sb[i] == 0; i++)
		;
	if ((sblen - i) * 2 + 1 > seriallen)
		goto out;
	for (; i < sblen; i++, o += 2)
		snprintf(serial + o, seriallen - o, "%02X", sb[i]);
	rc = 0;
out:
	if (rc == -1) {
		free(*aki);
		*aki = NULL;
		*akilen = 0;
	}
	free(sb);
	return rc;
}

/* True when x's AKI keyIdentifier equals aki. */
static bool
ari_aki_match(X509 *x, const unsigned char *aki, size_t akilen)
{
	const ASN1_OCTET_STRING *kid = X509_get0_authority_key_id(x);

	return kid != NULL && (size_t)kid->length == akilen &&
	    memcmp(kid->data, aki, akilen) == 0;
}

/* GET /acme/renewal-info/<certID> */
void
acme_renewal_info(struct acme_req *r, const char *certid)
{
	char serial[ACME_SERIAL_MAX], ts[ARI_TIME_MAX], te[ARI_TIME_MAX];
	unsigned char *aki = NULL, *der = NULL;
	const unsigned char *dp;
	struct common_error err;
	size_t akilen = 0, derlen = 0;
	json_t *issued = NULL;
	const char *b64, *status;
	time_t nb, na, life, start, end, now = common_now();
	X509 *x = NULL;

	if (acme_ari_certid_parse(certid, serial, sizeof(serial), &aki,
	    &akilen) == -1) {
		acme_problem(r, 400, "malformed",
		    "not an RFC 9773 certID (base64url AKI \".\" base64url "
		    "serial)");
		goto out;
	}
	common_error_clear(&err);
	if ((issued = lifecycle_issued_get(r->a->lc, serial, &err)) == NULL ||
	    (b64 = json_string_value(json_object_get(issued, "der"))) ==
	    NULL || common_b64_decode(b64, strlen(b64), false, &der,
	    &derlen) == -1 || (dp = der, x = d2i_X509(NULL, &dp,
	    (long)derlen)) == NULL || !ari_aki_match(x, aki, akilen)) {
		acme_problem(r, 404, "malformed",
		    "no certificate of this server has certID %.*s",
		    ARI_CERTID_MAX, certid);
		goto out;
	}
	nb = (time_t)json_integer_value(json_object_get(issued,
	    "not_before"));
	na = (time_t)json_integer_value(json_object_get(issued, "not_after"));
	if (nb == 0 && common_asn1_time(X509_get0_notBefore(x), &nb) == -1)
		nb = 0;
	if (na == 0 && common_asn1_time(X509_get0_notAfter(x), &na) == -1)
		na = 0;
	life = na > nb ? na - nb : 0;
	start = na - life / ARI_START_DIVISOR;
	end = na - life / ARI_END_DIVISOR;
	status = json_string_value(json_object_get(issued, "status"));
	if (status != NULL && strcmp(status, "revoked") == 0) {
		start = now - ARI_REVOKED_OPEN;
		end = now - ARI_REVOKED_CLOSE;
	}
	common_time_rfc3339(start, ts, sizeof(ts));
	common_time_rfc3339(end, te, sizeof(te));
	acme_retry_after(r, ACME_ARI_RETRY_AFTER);
	acme_reply_json(r, 200, json_pack("{s:{s:s,s:s}}", "suggestedWindow",
	    "start", ts, "end", te), NULL);
out:
	X509_free(x);
	free(der);
	free(aki);
	json_decref(issued);
}
