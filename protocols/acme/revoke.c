/*
 * protocols/acme/revoke.c — revokeCert (RFC 8555 §7.6). Authorised when
 * the request is signed by (a) the account that ordered the certificate,
 * (b) an account holding valid authorizations for every identifier in
 * it, or (c) the certificate's own key (with "jwk"). The revocation goes
 * through lifecycle (registry, inventory version, audit) and the CA's CRL
 * is published right after.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "protocols/acme/acme.h"

#define REVOKE_REASON_MAX	10	/* aACompromise */
#define REVOKE_REASON_UNUSED	7	/* not assigned by RFC 5280 */
#define REVOKE_WHO_MAX		(ACME_ID_MAX + 16)

/* True for the RFC 5280 reason codes ACME clients may ask for: 0-10
 * without 7 (unused) and 8 (removeFromCRL). */
static bool
revoke_reason_ok(json_int_t v)
{
	return v >= 0 && v <= REVOKE_REASON_MAX && v != REVOKE_REASON_UNUSED &&
	    v != CA_REASON_REMOVE_FROM_CRL;
}

/* True when the account holds a valid, unexpired authorization for
 * every DNS/IP name of x (and x has at least one). */
static bool
revoke_authorized_by_authz(struct acme_req *r, X509 *x)
{
	char val[ACME_IDENT_MAX + 3];
	GENERAL_NAMES *gens;
	const char *type, *base;
	json_t *list, *az;
	time_t now = common_now();
	bool ok = true, found, wildcard;
	size_t k;
	int i, n;

	if ((gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) ==
	    NULL)
		return false;
	n = sk_GENERAL_NAME_num(gens);
	for (i = 0; ok && i < n; i++) {
		if (acme_gen_ident(sk_GENERAL_NAME_value(gens, i), &type, val,
		    sizeof(val)) == -1) {
			ok = false;
			break;
		}
		wildcard = strncmp(val, "*.", 2) == 0;
		base = wildcard ? val + 2 : val;
		found = false;
		if ((list = store_acme_authz_by_account_ident(r->a->st, NULL,
		    r->account_id, type, base)) != NULL) {
			json_array_foreach(list, k, az)
				if (json_is_true(json_object_get(az,
				    "wildcard")) == wildcard &&
				    strcmp(acme_authz_status(az, now),
				    "valid") == 0)
					found = true;
			json_decref(list);
		}
		ok = found;
	}
	GENERAL_NAMES_free(gens);
	return ok && n > 0;
}

/* POST /acme/revoke-cert {"certificate": base64url DER, "reason"} */
void
acme_revoke(struct acme_req *r)
{
	char serial[ACME_SERIAL_MAX], who[REVOKE_WHO_MAX];
	struct common_error err;
	unsigned char *der = NULL, *ider = NULL;
	const unsigned char *dp;
	size_t derlen = 0, iderlen = 0;
	json_t *issued = NULL, *order = NULL, *res = NULL, *v;
	const char *b64, *ib64, *status;
	json_int_t reason = CA_REASON_UNSPECIFIED;
	X509 *x = NULL;

	if (acme_req_auth(r, ACME_AUTH_ANY) == -1)
		goto out;
	if (r->payload == NULL || (b64 = json_string_value(json_object_get(
	    r->payload, "certificate"))) == NULL) {
		acme_problem(r, 400, "malformed",
		    "revokeCert needs {\"certificate\": base64url DER}");
		goto out;
	}
	if ((v = json_object_get(r->payload, "reason")) != NULL) {
		if (!json_is_integer(v) ||
		    !revoke_reason_ok(json_integer_value(v))) {
			acme_problem(r, 400, "badRevocationReason",
			    "reason must be an RFC 5280 code 0-10 other than "
			    "7 and 8");
			goto out;
		}
		reason = json_integer_value(v);
	}
	if (common_b64_decode(b64, strlen(b64), true, &der, &derlen) == -1 ||
	    (dp = der, x = d2i_X509(NULL, &dp, (long)derlen)) == NULL ||
	    dp != der + derlen ||
	    common_x509_serial_hex(x, serial, sizeof(serial)) == -1) {
		acme_problem(r, 400, "malformed",
		    "\"certificate\" is not one DER certificate");
		goto out;
	}
	/* The registry's copy must be byte-identical: a certificate made up
	 * around a known serial and the caller's own key proves nothing. */
	common_error_clear(&err);
	if ((issued = lifecycle_issued_get(r->a->lc, serial, &err)) == NULL ||
	    (ib64 = json_string_value(json_object_get(issued, "der"))) ==
	    NULL || common_b64_decode(ib64, strlen(ib64), false, &ider,
	    &iderlen) == -1 || iderlen != derlen ||
	    memcmp(ider, der, derlen) != 0) {
		acme_problem(r, 404, "malformed",
		    "certificate %s was not issued by this server", serial);
		goto out;
	}
	status = json_string_value(json_object_get(issued, "status"));
	if (status != NULL && strcmp(status, "revoked") == 0) {
		acme_problem(r, 400, "alreadyRevoked",
		    "certificate %s is already revoked", serial);
		goto out;
	}
	if (r->account != NULL) {
		order = acme_order_by_serial(r->a, r->account_id, serial);
		if (order == NULL && !revoke_authorized_by_authz(r, x)) {
			acme_problem(r, 403, "unauthorized",
			    "account %s neither ordered certificate %s nor "
			    "holds authorizations for all its names",
			    r->account_id, serial);
			goto out;
		}
		snprintf(who, sizeof(who), "acme:%s", r->account_id);
	} else {
		if (EVP_PKEY_eq(r->key, X509_get0_pubkey(x)) != 1) {
			acme_problem(r, 403, "unauthorized",
			    "the JWS key is not the key of certificate %s",
			    serial);
			goto out;
		}
		snprintf(who, sizeof(who), "acme:certificate-key");
	}
	common_error_clear(&err);
	if ((res = lifecycle_revoke_serial(r->a->lc, serial,
	    (enum ca_reason)reason, who, &err)) == NULL) {
		if (err.code == COMMON_E_CONFLICT)
			acme_problem(r, 400, "alreadyRevoked",
			    "certificate %s is already revoked", serial);
		else if (err.code == COMMON_E_NOTFOUND)
			acme_problem(r, 404, "malformed",
			    "certificate %s was not issued by this server",
			    serial);
		else
			acme_problem(r, 500, "serverInternal",
			    "cannot revoke certificate %s: %s", serial,
			    err.msg);
		goto out;
	}
	log_info("acme: certificate %s revoked by %s (reason %s)", serial, who,
	    ca_reason_name((enum ca_reason)reason));
	/* lifecycle_revoke_serial asked for the CA's CRL to be rebuilt
	 * (within crl.debounce_seconds) and notified the webhooks. */
	acme_reply(r, 200, NULL, NULL, 0);
out:
	X509_free(x);
	free(der);
	free(ider);
	json_decref(res);
	json_decref(order);
	json_decref(issued);
}
