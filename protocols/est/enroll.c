/*
 * protocols/est/enroll.c — POST /simpleenroll, /simplereenroll (RFC 7030
 * §4.2) and /serverkeygen (§4.4), with tls-unique proof of possession
 * (§3.5) and manual approval (§4.2.3: 202 + Retry-After until decided).
 *
 * Order of checks: authentication (401/403), re-enrolment's client
 * certificate (403), Content-Type (415), base64 (400), DER (400), CSR
 * signature (400), proof of possession (400), re-enrolment's names and
 * key (400), then issuance, whose profile and CA policy refusals are 400.
 * Nothing is written before issuance; a refusal there writes nothing
 * either (lifecycle_issue_txn's contract).
 *
 * Every certificate goes through lifecycle_issue_txn with origin "est",
 * so it is in the inventory: a new "external" entry named "<CN or first
 * SAN> (est <label>)", or for simplereenroll the next version of the
 * entry that holds the certificate being renewed.
 *
 * serverkeygen: pkid generates the key (label key_algorithm), issues for
 * it and returns it once in the response. The private key is NOT stored
 * by pkid: the inventory entry is "external" like any CSR-based one, and
 * the key exists only in this handler's memory, wiped after the reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "protocols/est/est.h"

#define EST_CT_PKCS10	"application/pkcs10"
#define EST_CT_CERTS	"application/pkcs7-mime; smime-type=certs-only"
#define EST_CT_PKCS8	"application/pkcs8"
#define EST_CT_TEXT	"text/plain; charset=utf-8"
#define EST_REQ_ID_LEN	(SHA256_DIGEST_LENGTH * 2)	/* hex */
#define EST_TLS_UNIQUE_MAX	64	/* base64 of a Finished message */
#define EST_NAME_SUFFIX_MAX	(EST_USERNAME_MAX + 16)	/* " (est LABEL)" */

/* What happened to the request. */
enum est_outcome {
	EST_OUT_NONE,
	EST_OUT_ISSUED,		/* issued now: version in out */
	EST_OUT_AGAIN,		/* issued before: certificate in cert */
	EST_OUT_PENDING,	/* waits for an admin (stored or already) */
	EST_OUT_REJECTED,	/* an admin said no: reason */
	EST_OUT_DELIVERED,	/* serverkeygen issued before: key is gone */
	EST_OUT_REFUSED		/* the core said no: err */
};

struct est_issue {
	struct est_req		*r;
	const unsigned char	*der;		/* the CSR as received */
	size_t			 derlen;
	const char		*subject;	/* RFC 4514 of the CSR */
	const json_t		*sans;		/* strings of the CSR */
	const char		**sanv;		/* the same as a vector */
	size_t			 nsans;
	EVP_PKEY		*pubkey;	/* borrowed; NULL: genkey's */
	const X509_PUBKEY	*spki;		/* pubkey as the CSR holds it;
						   NULL with pubkey */
	EVP_PKEY		*genkey;	/* serverkeygen, made on use */
	const char		*cert_id;	/* reenroll: entry to extend */
	const char		*name_base;	/* CN or first SAN */
	char			 id[EST_REQ_ID_LEN + 1];	/* approval */
	/* results, reset by each try of the transaction */
	enum est_outcome	 outcome;
	json_t			*out;		/* version record */
	X509			*cert;		/* EST_OUT_ISSUED, EST_OUT_AGAIN */
	char			 reason[EST_REASON_MAX];
	struct common_error	 err;
};

/* ---- proof of possession (tls-unique) ------------------------------------ */

int
est_tls_unique(struct est_req *r, char *out, size_t outlen)
{
	unsigned char fin[EVP_MAX_MD_SIZE];
	char *b64;
	size_t n;
	int rc = -1;

	if (r->ssl == NULL || SSL_version(r->ssl) != TLS1_2_VERSION) {
		est_error(r, 400, "this label requires tls-unique proof of "
		    "possession, which needs TLS 1.2");
		return -1;
	}
	/* RFC 5929 §3.1: the first Finished of the latest handshake: the
	 * client's in a full handshake, the server's in an abbreviated
	 * (resumed) one. Renegotiation is off, so there is only one. */
	if (SSL_session_reused(r->ssl))
		n = SSL_get_finished(r->ssl, fin, sizeof(fin));
	else
		n = SSL_get_peer_finished(r->ssl, fin, sizeof(fin));
	if (n == 0 || n > sizeof(fin)) {
		log_err("est: tls-unique: no Finished message on the "
		    "connection");
		est_error(r, 500, "the TLS channel binding is not available");
		return -1;
	}
	if ((b64 = common_b64_encode(fin, n, false, 0)) == NULL ||
	    strlen(b64) >= outlen) {
		est_error(r, 500, "the TLS channel binding is not available");
		goto out;
	}
	snprintf(out, outlen, "%s", b64);
	rc = 0;
out:
	free(b64);
	return rc;
}

/*
 * RFC 7030 §3.5: the CSR's challengePassword must be the base64 of the
 * tls-unique value of this connection. 0, or -1 after replying.
 */
static int
est_pop_check(struct est_req *r, X509_REQ *csr)
{
	char want[EST_TLS_UNIQUE_MAX];
	const ASN1_STRING *s;
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	size_t wlen;
	int idx;

	if (est_tls_unique(r, want, sizeof(want)) == -1)
		return -1;
	idx = X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1);
	if (idx < 0) {
		est_error(r, 400, "this label requires tls-unique proof of "
		    "possession (RFC 7030 §3.5): the CSR has no "
		    "challengePassword attribute");
		return -1;
	}
	attr = X509_REQ_get_attr(csr, idx);
	if (X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword,
	    idx) >= 0 || X509_ATTRIBUTE_count(attr) != 1 ||
	    (t = X509_ATTRIBUTE_get0_type(attr, 0)) == NULL ||
	    (t->type != V_ASN1_PRINTABLESTRING &&
	    t->type != V_ASN1_UTF8STRING && t->type != V_ASN1_IA5STRING &&
	    t->type != V_ASN1_T61STRING && t->type != V_ASN1_VISIBLESTRING)) {
		est_error(r, 400, "the CSR's challengePassword must be one "
		    "string (RFC 2985 §5.4.1)");
		return -1;
	}
	s = t->value.asn1_string;
	wlen = strlen(want);
	if ((size_t)ASN1_STRING_length(s) != wlen ||
	    CRYPTO_memcmp(ASN1_STRING_get0_data(s), want, wlen) != 0) {
		est_error(r, 400, "tls-unique proof of possession failed");
		return -1;
	}
	return 0;
}

/* ---- re-enrolment -------------------------------------------------------- */

/* DER of GENERAL_NAMES (an empty string for none); 0 or -1. */
static int
est_gens_der(GENERAL_NAMES *gens, unsigned char **der, int *len)
{
	*der = NULL;
	*len = 0;
	if (gens == NULL)
		return 0;
	return (*len = i2d_GENERAL_NAMES(gens, der)) < 0 ? -1 : 0;
}

/*
 * RFC 7030 §4.2.2: the CSR asks for the same subject and the same
 * subjectAltName as the certificate being renewed. The SANs compared are
 * those the CSR would be issued with (typed and normalised by
 * ca_sans_parse, as issuance does), DER against the certificate's
 * extension. A different key only where the label allows it.
 */
static int
est_reenroll_match(struct est_req *r, X509_REQ *csr, const json_t *sans)
{
	struct common_error err;
	GENERAL_NAMES *want = NULL, *have = NULL;
	unsigned char *wder = NULL, *hder = NULL;
	const char **v = NULL;
	json_t *s;
	size_t i, n = json_array_size(sans);
	int wlen = 0, hlen = 0, crit = -1, rc = -1;

	if (X509_NAME_cmp(X509_REQ_get_subject_name(csr),
	    X509_get_subject_name(r->peer)) != 0) {
		est_error(r, 400, "the CSR subject must equal the subject of "
		    "the certificate being renewed (RFC 7030 §4.2.2)");
		goto out;
	}
	common_error_clear(&err);
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
		log_err("est: simplereenroll: out of memory");
		est_error(r, 500, "internal error");
		goto out;
	}
	json_array_foreach(sans, i, s) {
		v[i] = json_string_value(s);
	}
	if (n > 0 && (want = ca_sans_parse(v, n, &err)) == NULL) {
		est_error_core(r, &err);
		goto out;
	}
	have = X509_get_ext_d2i(r->peer, NID_subject_alt_name, &crit, NULL);
	if (est_gens_der(want, &wder, &wlen) == -1 ||
	    est_gens_der(have, &hder, &hlen) == -1) {
		log_err("est: simplereenroll: encoding SANs: %s",
		    common_ssl_error());
		est_error(r, 500, "internal error");
		goto out;
	}
	if (wlen != hlen || (wlen > 0 && memcmp(wder, hder,
	    (size_t)wlen) != 0)) {
		est_error(r, 400, "the CSR subjectAltName must equal that of "
		    "the certificate being renewed (RFC 7030 §4.2.2)");
		goto out;
	}
	if (!r->label->cf->allow_new_key &&
	    EVP_PKEY_eq(X509_REQ_get0_pubkey(csr),
	    X509_get0_pubkey(r->peer)) != 1) {
		est_error(r, 400, "label %s does not allow a new key on "
		    "simplereenroll: sign the CSR with the current key",
		    est_label_show(r->label));
		goto out;
	}
	rc = 0;
out:
	OPENSSL_free(wder);
	OPENSSL_free(hder);
	GENERAL_NAMES_free(want);
	GENERAL_NAMES_free(have);
	free(v);
	return rc;
}

/* ---- issuance ------------------------------------------------------------ */

/* A copy of s (to free()) with anything outside printable ASCII shown as
 * '?': inventory names are printable. NULL on allocation failure. */
static char *
est_printable(const char *s)
{
	char *out;
	size_t i;

	if (s == NULL || (out = strdup(s)) == NULL)
		return NULL;
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20 ||
		    (unsigned char)out[i] > 0x7e)
			out[i] = '?';
	return out;
}

/* The printable-ASCII CN of name (to free()), or NULL when it has none. */
static char *
est_cn(const X509_NAME *name)
{
	const X509_NAME_ENTRY *ent;
	unsigned char *utf8 = NULL;
	char *out = NULL;
	int i, n, idx;

	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0 || (ent = X509_NAME_get_entry(name, idx)) == NULL ||
	    (n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ent))) <=
	    0)
		return NULL;
	if ((out = malloc((size_t)n + 1)) != NULL) {
		for (i = 0; i < n; i++)
			out[i] = utf8[i] < 0x20 || utf8[i] > 0x7e ? '?' :
			    (char)utf8[i];
		out[n] = '\0';
	}
	OPENSSL_free(utf8);
	return out;
}

/*
 * The name of a new inventory entry: "<base> (est <label>)". lifecycle
 * adds " (<cert-id>)" when another entry has it (name_is_hint).
 */
static void
est_entry_name(const struct est_issue *is, char *out, size_t outlen)
{
	const struct est_label *l = is->r->label;
	char suffix[EST_NAME_SUFFIX_MAX];
	size_t room;

	if (l->name[0] == '\0')
		snprintf(suffix, sizeof(suffix), " (est)");
	else
		snprintf(suffix, sizeof(suffix), " (est %s)", l->name);
	/* room for lifecycle's " (cert-<16 hex>)" too, so that a suffixed
	 * name keeps the label */
	room = LIFECYCLE_NAME_MAX - strlen(suffix) -
	    sizeof(" (cert-0123456789abcdef)");
	snprintf(out, outlen, "%.*s%s", (int)room, is->name_base, suffix);
}

/* serverkeygen: the label's key into is->genkey. 0 or -1 (logged). */
static int
est_keygen(struct est_issue *is)
{
	const struct est_label *l = is->r->label;

	if ((is->genkey = ca_key_generate(l->key_alg)) == NULL) {
		log_err("est: serverkeygen on label %s: generating a %s key "
		    "failed", est_label_show(l), ca_key_alg_name(l->key_alg));
		return -1;
	}
	return 0;
}

/*
 * True when serverkeygen will issue now, so the key is worth making
 * before the transaction (it takes up to seconds for RSA and must not
 * hold locks meanwhile): always without manual approval, else only once
 * the request is approved (a poll of a pending request makes none).
 */
static bool
est_keygen_now(struct est_issue *is)
{
	const char *status;
	json_t *rec;
	bool now;

	if (!is->r->label->cf->manual_approval)
		return true;
	rec = store_est_request_get(is->r->e->st, NULL, is->id);
	status = json_string_value(json_object_get(rec, "status"));
	now = status != NULL && strcmp(status, "approved") == 0;
	json_decref(rec);
	return now;
}

/* Issues inside txn; sets is->out or is->err. 0, or -1 (abort). */
static int
est_issue_now(struct est_issue *is, struct store_txn *txn)
{
	struct est_req *r = is->r;
	struct lifecycle_issue_req ir;
	char name[LIFECYCLE_NAME_MAX + 1];

	/* serverkeygen: est_enroll made the key before the transaction
	 * unless the request was approved since it looked */
	if (is->pubkey == NULL && is->genkey == NULL &&
	    est_keygen(is) == -1) {
		common_error_set(&is->err, COMMON_E_INTERNAL,
		    "cannot generate a key");
		return -1;
	}
	memset(&ir, 0, sizeof(ir));
	ir.ca_id = r->label->ca_id;
	ir.cert_id = is->cert_id;
	ir.pubkey = is->pubkey != NULL ? is->pubkey : is->genkey;
	ir.spki = is->pubkey != NULL ? is->spki : NULL;
	ir.issued = &is->cert;
	ir.subject = is->subject;
	ir.sans = is->sanv;
	ir.nsans = is->nsans;
	ir.profile = r->label->profile;
	ir.validity_days = r->label->cf->validity_days;
	ir.origin = "est";
	if (is->cert_id == NULL) {
		est_entry_name(is, name, sizeof(name));
		ir.name = name;
		ir.name_is_hint = true;
	}
	if ((is->out = lifecycle_issue_txn(r->e->lc, txn, &ir, r->who,
	    &is->err)) == NULL) {
		is->outcome = is->err.code == COMMON_E_INTERNAL ?
		    EST_OUT_NONE : EST_OUT_REFUSED;
		return -1;
	}
	is->outcome = EST_OUT_ISSUED;
	return 0;
}

/* store_txn_run callback of a label without manual approval. */
static int
est_issue_txn(struct store_txn *txn, void *arg)
{
	struct est_issue *is = arg;

	json_decref(is->out);
	is->out = NULL;
	X509_free(is->cert);
	is->cert = NULL;
	is->outcome = EST_OUT_NONE;
	common_error_clear(&is->err);
	return est_issue_now(is, txn);
}

static const char *const est_op_store_names[EST_OP__MAX] = {
	[EST_OP_SIMPLEENROLL] = "simpleenroll",
	[EST_OP_SIMPLEREENROLL] = "simplereenroll",
	[EST_OP_SERVERKEYGEN] = "serverkeygen",
};

/* The pending est_request record of is. NULL on allocation failure. */
static json_t *
est_request_new(struct est_issue *is)
{
	struct est_req *r = is->r;
	char now[32], *csr;
	json_t *rec;

	if ((csr = common_b64_encode(is->der, is->derlen, false, 0)) == NULL)
		return NULL;
	common_time_rfc3339(common_now(), now, sizeof(now));
	rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:s, s:s, s:s, s:n, "
	    "s:n, s:n, s:n, s:n}", "id", is->id, "label", r->label->name,
	    "status", "pending", "csr", csr, "subject", is->subject, "sans",
	    is->sans, "requested_by", r->who, "operation",
	    est_op_store_names[r->op], "created_at", now, "decided_by",
	    "decided_at", "reason", "cert_id", "serial");
	free(csr);
	return rec;
}

/*
 * store_txn_run callback of a label with manual approval: the request's
 * state decides. New: stored pending. Approved: issued now, and the
 * request marked "issued" with cert_id and serial in the same
 * transaction. Issued: the same certificate again.
 */
static int
est_approval_txn(struct store_txn *txn, void *arg)
{
	struct est_issue *is = arg;
	struct est_req *r = is->r;
	struct store *st = r->e->st;
	const char *status, *serial, *b64, *reason;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t derlen = 0;
	json_t *rec = NULL, *issued = NULL;
	char now[32];
	int rc = -1;

	json_decref(is->out);
	is->out = NULL;
	X509_free(is->cert);
	is->cert = NULL;
	is->outcome = EST_OUT_NONE;
	is->reason[0] = '\0';
	common_error_clear(&is->err);

	if ((rec = store_est_request_get(st, txn, is->id)) == NULL) {
		if (store_txn_failed(txn))
			goto out;
		if ((rec = est_request_new(is)) == NULL) {
			common_error_set(&is->err, COMMON_E_INTERNAL,
			    "out of memory");
			goto out;
		}
		if (store_est_request_put(txn, is->id, rec) == -1)
			goto out;
		is->outcome = EST_OUT_PENDING;
		rc = 0;
		goto out;
	}
	status = json_string_value(json_object_get(rec, "status"));
	status = status != NULL ? status : "";
	if (strcmp(status, "pending") == 0) {
		is->outcome = EST_OUT_PENDING;
		rc = 0;
	} else if (strcmp(status, "rejected") == 0) {
		reason = json_string_value(json_object_get(rec, "reason"));
		snprintf(is->reason, sizeof(is->reason), "%s",
		    reason != NULL && *reason != '\0' ? reason :
		    "no reason given");
		is->outcome = EST_OUT_REJECTED;
		rc = 0;
	} else if (strcmp(status, "issued") == 0) {
		if (r->op == EST_OP_SERVERKEYGEN) {
			is->outcome = EST_OUT_DELIVERED;
			rc = 0;
			goto out;
		}
		serial = json_string_value(json_object_get(rec, "serial"));
		if (serial == NULL || (issued = store_issued_get(st, txn,
		    serial)) == NULL ||
		    (b64 = json_string_value(json_object_get(issued,
		    "der"))) == NULL ||
		    common_b64_decode(b64, strlen(b64), false, &der,
		    &derlen) == -1) {
			log_err("est: request %s: issued certificate %s not "
			    "in the registry", is->id, serial != NULL ?
			    serial : "(none)");
			common_error_set(&is->err, COMMON_E_INTERNAL,
			    "the issued certificate cannot be found");
			goto out;
		}
		p = der;
		if ((is->cert = d2i_X509(NULL, &p, (long)derlen)) == NULL) {
			common_error_set(&is->err, COMMON_E_INTERNAL,
			    "the issued certificate cannot be read");
			goto out;
		}
		is->outcome = EST_OUT_AGAIN;
		rc = 0;
	} else if (strcmp(status, "approved") == 0) {
		if (est_issue_now(is, txn) == -1)
			goto out;
		common_time_rfc3339(common_now(), now, sizeof(now));
		if (json_object_set_new(rec, "status",
		    json_string("issued")) == -1 ||
		    json_object_set(rec, "cert_id", json_object_get(is->out,
		    "certificate_id")) == -1 ||
		    json_object_set(rec, "serial", json_object_get(is->out,
		    "serial")) == -1 ||
		    json_object_set_new(rec, "issued_at",
		    json_string(now)) == -1) {
			common_error_set(&is->err, COMMON_E_INTERNAL,
			    "out of memory");
			goto out;
		}
		if (store_est_request_put(txn, is->id, rec) == -1)
			goto out;
		rc = 0;
	} else {
		log_err("est: request %s has an unknown status \"%s\"",
		    is->id, status);
		common_error_set(&is->err, COMMON_E_INTERNAL,
		    "the enrollment request is damaged");
	}
out:
	if (rc == -1 && is->err.code == COMMON_E_NONE)
		common_error_set(&is->err, COMMON_E_INTERNAL,
		    "store operation failed");
	free(der);
	json_decref(issued);
	json_decref(rec);
	return rc;
}

/* ---- replies ------------------------------------------------------------- */

/* DER of the PKCS#7 certs-only holding x. 0 or -1. */
static int
est_cert_p7(X509 *x, unsigned char **der, size_t *len)
{
	STACK_OF(X509) *one;
	int rc = -1;

	if ((one = sk_X509_new_null()) != NULL && sk_X509_push(one, x) != 0)
		rc = est_pkcs7_certs(one, der, len);
	sk_X509_free(one);
	return rc;
}

/* Appends n bytes to a buffer sized in advance. */
static void
est_put(char *buf, size_t *off, const char *s)
{
	size_t n = strlen(s);

	memcpy(buf + *off, s, n);
	*off += n;
}

/*
 * RFC 7030 §4.4.2: multipart/mixed, the PKCS#8 PrivateKeyInfo first,
 * then the certificate as certs-only, each base64 with CRLF line ends
 * (MIME). Everything that held the key is wiped.
 */
static void
est_reply_keygen(struct est_req *r, EVP_PKEY *key, const unsigned char *p7,
    size_t p7len)
{
	static const char key_head[] = "--" EST_BOUNDARY "\r\n"
	    "Content-Type: " EST_CT_PKCS8 "\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n";
	static const char cert_head[] = "--" EST_BOUNDARY "\r\n"
	    "Content-Type: " EST_CT_CERTS "\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n";
	static const char tail[] = "--" EST_BOUNDARY "--\r\n";
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	unsigned char *kder = NULL;
	char *kb64 = NULL, *cb64 = NULL, *body = NULL;
	size_t total, off = 0, kb64len = 0;
	int klen = 0;

	if ((p8 = EVP_PKEY2PKCS8(key)) == NULL ||
	    (klen = i2d_PKCS8_PRIV_KEY_INFO(p8, &kder)) <= 0 ||
	    (kb64 = est_b64_wrap(kder, (size_t)klen, r->wrap, "\r\n")) ==
	    NULL ||
	    (cb64 = est_b64_wrap(p7, p7len, r->wrap, "\r\n")) == NULL) {
		log_err("est: serverkeygen: encoding the key: %s",
		    common_ssl_error());
		est_error(r, 500, "cannot encode the generated key");
		goto out;
	}
	kb64len = strlen(kb64);
	total = strlen(key_head) + kb64len + strlen(cert_head) +
	    strlen(cb64) + strlen(tail);
	if ((body = malloc(total + 1)) == NULL) {
		log_err("est: serverkeygen: out of memory");
		est_error(r, 500, "cannot encode the generated key");
		goto out;
	}
	est_put(body, &off, key_head);
	est_put(body, &off, kb64);
	est_put(body, &off, cert_head);
	est_put(body, &off, cb64);
	est_put(body, &off, tail);
	body[off] = '\0';
	est_reply(r, 200, "multipart/mixed; boundary=" EST_BOUNDARY, body,
	    off);
out:
	if (body != NULL) {
		OPENSSL_cleanse(body, off);
		free(body);
	}
	if (kb64 != NULL) {
		OPENSSL_cleanse(kb64, kb64len);
		free(kb64);
	}
	if (kder != NULL)
		OPENSSL_clear_free(kder, (size_t)klen);
	PKCS8_PRIV_KEY_INFO_free(p8);
	free(cb64);
}

/* The answer once is->outcome is known. */
static void
est_reply_outcome(struct est_issue *is)
{
	struct est_req *r = is->r;
	unsigned char *p7 = NULL;
	size_t p7len = 0;
	char ra[32], msg[EST_REASON_MAX];
	X509 *x = NULL;

	switch (is->outcome) {
	case EST_OUT_PENDING:
		snprintf(ra, sizeof(ra), "%d",
		    r->e->cf->est.retry_after_seconds > 0 ?
		    r->e->cf->est.retry_after_seconds : 1);
		est_header(r, "Retry-After", ra);
		snprintf(msg, sizeof(msg), "request %s is waiting for manual "
		    "approval; retry after %s seconds\n", is->id, ra);
		log_info("est: label %s: request %s by %s waits for approval",
		    est_label_show(r->label), is->id, r->who);
		est_reply(r, 202, EST_CT_TEXT, msg, strlen(msg));
		goto out;
	case EST_OUT_REJECTED:
		est_error(r, 403, "request %s was rejected: %s", is->id,
		    is->reason);
		goto out;
	case EST_OUT_DELIVERED:
		est_error(r, 403, "request %s was fulfilled already: a "
		    "server-generated key is delivered once", is->id);
		goto out;
	case EST_OUT_AGAIN:
		x = is->cert;	/* steal */
		is->cert = NULL;
		break;
	case EST_OUT_ISSUED:
		/* lifecycle hands over the certificate it signed: no
		 * parsing of the version's PEM back */
		x = is->cert;	/* steal */
		is->cert = NULL;
		if (x == NULL) {
			log_err("est: the issued certificate was not handed "
			    "back");
			est_error(r, 500, "the certificate was issued but "
			    "cannot be read back");
			goto out;
		}
		log_info("est: label %s: %s issued serial %s (certificate %s) "
		    "to %s", est_label_show(r->label),
		    est_op_store_names[r->op], json_string_value(
		    json_object_get(is->out, "serial")), json_string_value(
		    json_object_get(is->out, "certificate_id")), r->who);
		break;
	default:
		est_error_core(r, &is->err);
		goto out;
	}
	if (est_cert_p7(x, &p7, &p7len) == -1) {
		est_error(r, 500, "cannot encode the certificate");
		goto out;
	}
	if (r->op == EST_OP_SERVERKEYGEN)
		est_reply_keygen(r, is->genkey, p7, p7len);
	else
		est_reply_b64(r, 200, EST_CT_CERTS, p7, p7len);
out:
	OPENSSL_free(p7);
	X509_free(x);
}

/* ---- the handler --------------------------------------------------------- */

/* Lower-case hex SHA-256 of label + "\0" + CSR DER into is->id. 0 or
 * -1. */
static int
est_request_id(struct est_issue *is)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	const char *label = is->r->label->name;
	EVP_MD_CTX *c;
	int ok;

	ok = (c = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(c, label, strlen(label) + 1) == 1 &&
	    EVP_DigestUpdate(c, is->der, is->derlen) == 1 &&
	    EVP_DigestFinal_ex(c, md, NULL) == 1;
	EVP_MD_CTX_free(c);
	if (!ok)
		return -1;
	common_hex(md, sizeof(md), is->id);
	return 0;
}

void
est_enroll(struct est_req *r)
{
	struct est_issue is;
	struct common_error err;
	const char *body;
	unsigned char *der = NULL;
	size_t len, i;
	X509_REQ *csr = NULL;
	json_t *issued = NULL, *sans = NULL, *s;
	char *subject = NULL, *base = NULL;
	int rc;

	memset(&is, 0, sizeof(is));
	is.r = r;
	common_error_clear(&err);
	if (est_auth(r) == -1)
		goto out;
	if (r->op == EST_OP_SIMPLEREENROLL &&
	    (issued = est_auth_reenroll(r)) == NULL)
		goto out;
	if (!est_ctype_is(r->req, EST_CT_PKCS10)) {
		est_error(r, 415, "Content-Type must be " EST_CT_PKCS10
		    " (RFC 7030 §4.2.1)");
		goto out;
	}
	body = server_req_body(r->req, &len);
	if (body == NULL || est_b64_body(body, len, &der, &is.derlen,
	    &err) == -1 || (csr = est_csr_decode(der, is.derlen,
	    &err)) == NULL || ca_csr_parse(csr, &subject, &sans, &err) == -1) {
		if (err.code == COMMON_E_NONE)
			common_error_set(&err, COMMON_E_INVALID, "the request "
			    "body cannot be read");
		est_error_core(r, &err);
		goto out;
	}
	is.der = der;
	if (r->label->cf->pop_required && est_pop_check(r, csr) == -1)
		goto out;
	if (r->op == EST_OP_SIMPLEREENROLL) {
		if (est_reenroll_match(r, csr, sans) == -1)
			goto out;
		is.cert_id = json_string_value(json_object_get(issued,
		    "cert_id"));
	}
	is.subject = subject;
	is.sans = sans;
	is.nsans = json_array_size(sans);
	if (is.nsans > 0 && (is.sanv = calloc(is.nsans,
	    sizeof(*is.sanv))) == NULL) {
		est_error(r, 500, "internal error");
		goto out;
	}
	json_array_foreach(sans, i, s) {
		is.sanv[i] = json_string_value(s);
	}
	if ((base = est_cn(X509_REQ_get_subject_name(csr))) == NULL &&
	    is.nsans > 0)
		base = est_printable(is.sanv[0]);
	is.name_base = base != NULL ? base : "EST enrollment";
	/* serverkeygen: the CSR's key only signed the request */
	is.pubkey = r->op == EST_OP_SERVERKEYGEN ? NULL :
	    X509_REQ_get0_pubkey(csr);
	is.spki = is.pubkey != NULL ? X509_REQ_get_X509_PUBKEY(csr) : NULL;
	if (r->label->cf->manual_approval && est_request_id(&is) == -1) {
		log_err("est: request id: %s", common_ssl_error());
		est_error(r, 500, "internal error");
		goto out;
	}
	if (r->op == EST_OP_SERVERKEYGEN && est_keygen_now(&is) &&
	    est_keygen(&is) == -1) {
		est_error(r, 500, "cannot generate a key");
		goto out;
	}
	if (r->label->cf->manual_approval) {
		rc = store_txn_run(r->e->st, est_approval_txn, &is);
	} else {
		rc = store_txn_run(r->e->st, est_issue_txn, &is);
	}
	if (rc != 0) {
		if (is.outcome != EST_OUT_REFUSED) {
			if (is.err.code != COMMON_E_INTERNAL) {
				common_error_clear(&is.err);
				common_error_set(&is.err, COMMON_E_INTERNAL,
				    "store operation failed");
			}
			log_err("est: label %s: %s for %s: %s",
			    est_label_show(r->label),
			    est_op_store_names[r->op], r->who, is.err.msg);
		}
		is.outcome = EST_OUT_REFUSED;
	}
	est_reply_outcome(&is);
out:
	EVP_PKEY_free(is.genkey);
	X509_free(is.cert);
	json_decref(is.out);
	free(is.sanv);
	free(base);
	free(subject);
	json_decref(sans);
	X509_REQ_free(csr);
	free(der);
	json_decref(issued);
}
