/*
 * protocols/acme/account.c — accounts (RFC 8555 §7.3): newAccount with
 * onlyReturnExisting, contacts, terms of service and External Account
 * Binding (§7.3.4), account update and deactivation (§7.3.2, §7.3.6),
 * key rollover (§7.3.5) and the account's orders list (§7.1.2.1).
 *
 * Account record (table acme_account): {"id", "status": "valid"|
 * "deactivated", "jwk" (required members only), "thumbprint" (RFC 7638),
 * "contact": [..], "termsOfServiceAgreed", "eab_kid", "created_at"}.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "protocols/acme/acme.h"

#define ACCOUNT_MAILTO		"mailto:"
#define ACCOUNT_TIME_MAX	32	/* RFC 3339 text + NUL */
#define ACCOUNT_KID_SHOW	80	/* bytes of an EAB kid quoted */

/* The URL of account id; -1 when too long. */
static int
account_url(const struct acme_req *r, const char *id, char *out,
    size_t outlen)
{
	return acme_url(r, out, outlen, "acct/%s", id);
}

/* The account object a client sees (RFC 8555 §7.1.2). */
json_t *
acme_account_view(const struct acme_req *r, const json_t *acct)
{
	const char *id = json_string_value(json_object_get(acct, "id"));
	const char *status = json_string_value(json_object_get(acct,
	    "status"));
	json_t *contact = json_object_get(acct, "contact"), *v;
	char orders[ACME_URL_MAX];

	if (id == NULL || status == NULL ||
	    acme_url(r, orders, sizeof(orders), "acct/%s/orders", id) == -1)
		return NULL;
	v = json_pack("{s:s,s:o,s:s}", "status", status, "contact",
	    json_is_array(contact) ? json_incref(contact) : json_array(),
	    "orders", orders);
	if (v != NULL && json_is_true(json_object_get(acct,
	    "termsOfServiceAgreed")))
		json_object_set_new(v, "termsOfServiceAgreed", json_true());
	return v;
}

/* Replies 200/201 with the account object and its Location. */
static void
account_reply(struct acme_req *r, int status, const json_t *acct)
{
	char loc[ACME_URL_MAX];
	const char *id = json_string_value(json_object_get(acct, "id"));

	if (id == NULL || account_url(r, id, loc, sizeof(loc)) == -1) {
		acme_problem(r, 500, "serverInternal",
		    "account record without id");
		return;
	}
	acme_reply_json(r, status, acme_account_view(r, acct), loc);
}

/* ---- contacts ----------------------------------------------------------- */

/* True for a plausible addr-spec without hfields: local@domain, the
 * domain made of LDH labels. */
static bool
account_email_ok(const char *addr)
{
	static const char bad_local[] = " \"(),:;<>@[\\]";
	const char *at = strchr(addr, '@'), *c;
	size_t label = 0;

	if (at == NULL || at == addr || strchr(at + 1, '@') != NULL ||
	    at[1] == '\0')
		return false;
	for (c = addr; c < at; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f ||
		    strchr(bad_local, *c) != NULL)
			return false;
	for (c = at + 1; *c != '\0'; c++) {
		if (*c == '.') {
			if (label == 0 || c[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '-'))
			return false;
		if (label == 0 && *c == '-')
			return false;
		label++;
	}
	return label > 0 && c[-1] != '-';
}

/* Checks a "contact" member (RFC 8555 §7.3): at most ACME_CONTACTS_MAX
 * mailto: URLs, each a single address without hfields. 0, or -1 with p
 * (unsupportedContact, invalidContact, malformed). */
static int
account_contacts_check(const json_t *contact, struct acme_prob *p)
{
	const char *s;
	json_t *v;
	size_t i;

	if (!json_is_array(contact)) {
		acme_prob_set(p, 400, "malformed",
		    "\"contact\" must be an array of URLs");
		return -1;
	}
	if (json_array_size(contact) > ACME_CONTACTS_MAX) {
		acme_prob_set(p, 400, "invalidContact",
		    "%zu contacts: at most %d are accepted",
		    json_array_size(contact), ACME_CONTACTS_MAX);
		return -1;
	}
	json_array_foreach(contact, i, v) {
		if ((s = json_string_value(v)) == NULL) {
			acme_prob_set(p, 400, "malformed",
			    "contact %zu is not a string", i + 1);
			return -1;
		}
		if (strncasecmp(s, ACCOUNT_MAILTO,
		    strlen(ACCOUNT_MAILTO)) != 0) {
			acme_prob_set(p, 400, "unsupportedContact",
			    "contact \"%.*s\": only mailto: URLs are "
			    "supported", ACME_CONTACT_MAX, s);
			return -1;
		}
		if (strlen(s) > ACME_CONTACT_MAX ||
		    !account_email_ok(s + strlen(ACCOUNT_MAILTO))) {
			acme_prob_set(p, 400, "invalidContact",
			    "contact \"%.*s\" is not a single e-mail address "
			    "(mailto: with one addr-spec, no hfields)",
			    ACME_CONTACT_MAX, s);
			return -1;
		}
	}
	return 0;
}

/* ---- External Account Binding (RFC 8555 §7.3.4) ------------------------- */

/* Parses "YYYY-MM-DDTHH:MM:SSZ"; -1 otherwise. */
static int
account_time_parse(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || (end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) ==
	    NULL)
		return -1;
	if (*end == '.')
		for (end++; *end >= '0' && *end <= '9'; end++)
			;
	if (strcmp(end, "Z") != 0)
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* The digest of an HS* alg; NULL for anything else. */
static const EVP_MD *
account_hmac_md(const char *alg)
{
	if (alg == NULL)
		return NULL;
	if (strcmp(alg, "HS256") == 0)
		return EVP_sha256();
	if (strcmp(alg, "HS384") == 0)
		return EVP_sha384();
	if (strcmp(alg, "HS512") == 0)
		return EVP_sha512();
	return NULL;
}

/* The refusals of an EAB key record that may change between the
 * signature check and the transaction: expiry, and a one-time key bound
 * to another account. */
static int
account_eab_usable(const json_t *eab, const char *kid, struct acme_prob *p)
{
	const char *exp = json_string_value(json_object_get(eab,
	    "expires_at"));
	const char *used = json_string_value(json_object_get(eab, "used_by"));
	time_t t;

	if (exp != NULL && (account_time_parse(exp, &t) == -1 ||
	    t <= common_now())) {
		acme_prob_set(p, 403, "unauthorized",
		    "external account binding key %.*s has expired",
		    ACCOUNT_KID_SHOW, kid);
		return -1;
	}
	if (json_is_true(json_object_get(eab, "one_time")) && used != NULL) {
		acme_prob_set(p, 403, "unauthorized",
		    "external account binding key %.*s was already used",
		    ACCOUNT_KID_SHOW, kid);
		return -1;
	}
	return 0;
}

/*
 * Verifies the externalAccountBinding of a newAccount request: a
 * flattened JWS with alg HS256/384/512, the kid of an eab_key whose alg
 * it matches, url equal to the newAccount URL, no nonce, payload equal to
 * the account key; HMAC compared in constant time. On success *kid_out
 * (to free()) names the key. -1 with p.
 */
static int
account_eab_verify(struct acme_req *r, const json_t *eab, char **kid_out,
    struct acme_prob *p)
{
	unsigned char mac[EVP_MAX_MD_SIZE], *key = NULL;
	char why[ACME_DETAIL_MAX];
	unsigned int maclen = 0;
	struct acme_jws j;
	json_t *rec = NULL, *inner = NULL, *pub = NULL;
	const char *kid, *url, *ralg, *hkey;
	const EVP_MD *md;
	json_error_t jerr;
	size_t keylen = 0;
	int rc = -1;

	*kid_out = NULL;
	if (acme_jws_parse(eab, &j, p) == -1) {
		snprintf(why, sizeof(why), "%s", p->detail);
		acme_prob_set(p, p->status, p->type,
		    "externalAccountBinding: %s", why);
		goto out;
	}
	if ((md = account_hmac_md(j.alg)) == NULL) {
		acme_prob_set(p, 400, "badSignatureAlgorithm",
		    "externalAccountBinding must use HS256, HS384 or HS512");
		goto out;
	}
	kid = json_string_value(json_object_get(j.prot, "kid"));
	url = json_string_value(json_object_get(j.prot, "url"));
	if (kid == NULL || url == NULL ||
	    json_object_get(j.prot, "nonce") != NULL ||
	    json_object_get(j.prot, "jwk") != NULL) {
		acme_prob_set(p, 400, "malformed",
		    "externalAccountBinding header needs kid and url and must "
		    "not carry nonce or jwk (RFC 8555 §7.3.4)");
		goto out;
	}
	if (strcmp(url, r->url) != 0) {
		acme_prob_set(p, 403, "unauthorized",
		    "externalAccountBinding url does not match the "
		    "newAccount URL");
		goto out;
	}
	if (j.payload_len == 0 || (inner = json_loadb((const char *)j.payload,
	    j.payload_len, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    (pub = acme_jwk_public(inner)) == NULL ||
	    !json_equal(pub, r->jwk)) {
		acme_prob_set(p, 400, "malformed",
		    "externalAccountBinding payload must be the account key "
		    "of the request (RFC 8555 §7.3.4)");
		goto out;
	}
	if (!common_id_valid(kid) || (rec = store_eab_get(r->a->st, NULL,
	    kid)) == NULL) {
		acme_prob_set(p, 403, "unauthorized",
		    "external account binding key %.*s is unknown",
		    ACCOUNT_KID_SHOW, kid);
		goto out;
	}
	ralg = json_string_value(json_object_get(rec, "alg"));
	if (ralg == NULL || strcmp(ralg, j.alg) != 0) {
		acme_prob_set(p, 400, "badSignatureAlgorithm",
		    "external account binding key %.*s is for %s, not %s",
		    ACCOUNT_KID_SHOW, kid, ralg != NULL ? ralg : "?", j.alg);
		goto out;
	}
	if ((hkey = json_string_value(json_object_get(rec, "hmac_key"))) ==
	    NULL || common_b64_decode(hkey, strlen(hkey), true, &key,
	    &keylen) == -1 || keylen == 0) {
		acme_prob_set(p, 500, "serverInternal",
		    "external account binding key %.*s is unusable",
		    ACCOUNT_KID_SHOW, kid);
		goto out;
	}
	if (HMAC(md, key, (int)keylen, (const unsigned char *)j.signing_input,
	    strlen(j.signing_input), mac, &maclen) == NULL) {
		acme_prob_set(p, 500, "serverInternal", "HMAC failed");
		goto out;
	}
	if (j.siglen != maclen || CRYPTO_memcmp(mac, j.sig, maclen) != 0) {
		acme_prob_set(p, 403, "unauthorized",
		    "externalAccountBinding signature does not verify");
		goto out;
	}
	if (account_eab_usable(rec, kid, p) == -1)
		goto out;
	if ((*kid_out = strdup(kid)) == NULL) {
		acme_prob_set(p, 500, "serverInternal", "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (key != NULL)
		OPENSSL_clear_free(key, keylen);
	OPENSSL_cleanse(mac, sizeof(mac));
	json_decref(pub);
	json_decref(inner);
	json_decref(rec);
	acme_jws_clear(&j);
	return rc;
}

/* ---- newAccount --------------------------------------------------------- */

struct account_new {
	struct acme_req		*r;
	const json_t		*contact;	/* NULL: none */
	bool			 tos;
	const char		*eab_kid;	/* NULL: none */
	char			 id[ACME_ID_MAX];
	json_t			*out;		/* the record */
	bool			 existed;	/* out is an older account */
	struct acme_prob	 prob;
};

static int
account_new_txn(struct store_txn *txn, void *arg)
{
	struct account_new *c = arg;
	struct acme_req *r = c->r;
	struct store *st = r->a->st;
	char now[ACCOUNT_TIME_MAX];
	json_t *eab = NULL;
	int rc = -1;

	json_decref(c->out);
	c->out = NULL;
	c->existed = false;
	acme_prob_clear(&c->prob);
	/* A concurrent newAccount with the same key may have won. */
	if ((c->out = store_acme_account_by_thumbprint(st, txn,
	    r->thumbprint)) != NULL) {
		c->existed = true;
		return 0;
	}
	common_time_rfc3339(common_now(), now, sizeof(now));
	if (c->eab_kid != NULL) {
		if ((eab = store_eab_get(st, txn, c->eab_kid)) == NULL) {
			acme_prob_set(&c->prob, 403, "unauthorized",
			    "external account binding key %.*s is unknown",
			    ACCOUNT_KID_SHOW, c->eab_kid);
			rc = 1;
			goto out;
		}
		if (account_eab_usable(eab, c->eab_kid, &c->prob) == -1) {
			rc = 1;
			goto out;
		}
		if (json_string_value(json_object_get(eab, "used_by")) ==
		    NULL && (json_object_set_new(eab, "used_by",
		    json_string(c->id)) == -1 ||
		    store_eab_put(txn, c->eab_kid, eab) == -1))
			goto out;
	}
	c->out = json_pack("{s:s,s:s,s:O,s:s,s:o,s:b,s:s?,s:s}",
	    "id", c->id, "status", "valid", "jwk", r->jwk,
	    "thumbprint", r->thumbprint, "contact", c->contact != NULL ?
	    json_deep_copy(c->contact) : json_array(),
	    "termsOfServiceAgreed", c->tos, "eab_kid", c->eab_kid,
	    "created_at", now);
	if (c->out == NULL)
		goto out;
	if (store_acme_account_put(txn, c->id, c->out) == -1)
		goto out;
	rc = 0;
out:
	json_decref(eab);
	return rc;
}

/* POST /acme/new-account (RFC 8555 §7.3) */
void
acme_account_new(struct acme_req *r)
{
	const struct conf *cf = r->a->cf;
	struct account_new c;
	json_t *existing = NULL, *v;
	char *eab_kid = NULL;
	const char *status;
	int rc;

	memset(&c, 0, sizeof(c));
	c.r = r;
	if (acme_req_auth(r, ACME_AUTH_JWK) == -1)
		goto out;
	if (r->payload == NULL) {
		acme_problem(r, 400, "malformed",
		    "newAccount needs a JSON object payload");
		goto out;
	}
	if ((v = json_object_get(r->payload, "onlyReturnExisting")) != NULL &&
	    !json_is_boolean(v)) {
		acme_problem(r, 400, "malformed",
		    "\"onlyReturnExisting\" must be a boolean");
		goto out;
	}
	if ((existing = store_acme_account_by_thumbprint(r->a->st, NULL,
	    r->thumbprint)) != NULL) {
		status = json_string_value(json_object_get(existing,
		    "status"));
		if (status == NULL || strcmp(status, "valid") != 0) {
			acme_problem(r, 403, "unauthorized",
			    "the account of this key is %s",
			    status != NULL ? status : "not valid");
			goto out;
		}
		account_reply(r, 200, existing);
		goto out;
	}
	if (json_is_true(v)) {
		acme_problem(r, 400, "accountDoesNotExist",
		    "no account exists with this key");
		goto out;
	}
	if ((v = json_object_get(r->payload, "termsOfServiceAgreed")) !=
	    NULL && !json_is_boolean(v)) {
		acme_problem(r, 400, "malformed",
		    "\"termsOfServiceAgreed\" must be a boolean");
		goto out;
	}
	c.tos = json_is_true(v);
	if (cf->acme.terms_of_service != NULL &&
	    *cf->acme.terms_of_service != '\0' && !c.tos) {
		acme_problem(r, 400, "malformed",
		    "the terms of service at %s must be agreed to "
		    "(\"termsOfServiceAgreed\": true)",
		    cf->acme.terms_of_service);
		goto out;
	}
	if ((c.contact = json_object_get(r->payload, "contact")) != NULL &&
	    json_is_null(c.contact))
		c.contact = NULL;
	if (c.contact != NULL &&
	    account_contacts_check(c.contact, &c.prob) == -1) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	if ((v = json_object_get(r->payload, "externalAccountBinding")) !=
	    NULL && !json_is_null(v)) {
		if (account_eab_verify(r, v, &eab_kid, &c.prob) == -1) {
			acme_problem_send(r, &c.prob);
			goto out;
		}
		c.eab_kid = eab_kid;
	} else if (cf->acme.eab_required) {
		acme_problem(r, 400, "externalAccountRequired",
		    "this server requires an externalAccountBinding "
		    "(RFC 8555 §7.3.4)");
		goto out;
	}
	if (common_random_id("acct-", c.id, sizeof(c.id)) == -1) {
		acme_problem(r, 500, "serverInternal", "no random id");
		goto out;
	}
	rc = store_txn_run(r->a->st, account_new_txn, &c);
	if (rc > 0) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	if (rc != 0 || c.out == NULL) {
		acme_problem(r, 500, "serverInternal",
		    "cannot store the account");
		goto out;
	}
	if (c.existed) {
		account_reply(r, 200, c.out);
		goto out;
	}
	log_info("acme: account %s created (key %s%s%s)", c.id,
	    r->thumbprint, c.eab_kid != NULL ? ", EAB " : "",
	    c.eab_kid != NULL ? c.eab_kid : "");
	account_reply(r, 201, c.out);
out:
	acme_prob_clear(&c.prob);
	json_decref(c.out);
	json_decref(existing);
	free(eab_kid);
}

/* ---- account update and deactivation ------------------------------------ */

struct account_update {
	const char		*id;
	const json_t		*contact;	/* NULL: unchanged */
	bool			 deactivate;
	json_t			*out;
	struct acme_prob	 prob;
};

static int
account_update_txn(struct store_txn *txn, void *arg)
{
	struct account_update *c = arg;
	const char *status;

	json_decref(c->out);
	acme_prob_clear(&c->prob);
	if ((c->out = store_acme_account_get(store_txn_store(txn), txn,
	    c->id)) == NULL) {
		acme_prob_set(&c->prob, 400, "accountDoesNotExist",
		    "no account %s", c->id);
		return 1;
	}
	status = json_string_value(json_object_get(c->out, "status"));
	if (status == NULL || strcmp(status, "valid") != 0) {
		acme_prob_set(&c->prob, 403, "unauthorized",
		    "account %s is %s", c->id, status != NULL ? status :
		    "not valid");
		return 1;
	}
	if (c->contact != NULL &&
	    json_object_set_new(c->out, "contact",
	    json_deep_copy(c->contact)) == -1)
		return -1;
	if (c->deactivate && json_object_set_new(c->out, "status",
	    json_string("deactivated")) == -1)
		return -1;
	return store_acme_account_put(txn, c->id, c->out);
}

/* POST /acme/acct/<id>: POST-as-GET, contact update, deactivation. */
void
acme_account_post(struct acme_req *r, const char *id)
{
	struct account_update c;
	const char *status = NULL;
	json_t *v;
	int rc;

	memset(&c, 0, sizeof(c));
	c.id = id;
	if (acme_req_auth(r, ACME_AUTH_KID) == -1)
		goto out;
	if (strcmp(r->account_id, id) != 0) {
		acme_problem(r, 403, "unauthorized",
		    "the request is signed by account %s, not %s",
		    r->account_id, id);
		goto out;
	}
	if (r->payload != NULL &&
	    (v = json_object_get(r->payload, "status")) != NULL) {
		status = json_string_value(v);
		if (status == NULL || strcmp(status, "deactivated") != 0) {
			acme_problem(r, 400, "malformed",
			    "an account's status can only be changed to "
			    "\"deactivated\" (RFC 8555 §7.3.6)");
			goto out;
		}
		c.deactivate = true;
	}
	if (r->payload != NULL &&
	    (c.contact = json_object_get(r->payload, "contact")) != NULL &&
	    account_contacts_check(c.contact, &c.prob) == -1) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	if (c.contact == NULL && !c.deactivate) {
		account_reply(r, 200, r->account);
		goto out;
	}
	rc = store_txn_run(r->a->st, account_update_txn, &c);
	if (rc > 0) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	if (rc != 0) {
		acme_problem(r, 500, "serverInternal",
		    "cannot update account %s", id);
		goto out;
	}
	if (c.deactivate) {
		acme_keycache_forget(r->a->keys, id);
		log_info("acme: account %s deactivated", id);
	}
	account_reply(r, 200, c.out);
out:
	acme_prob_clear(&c.prob);
	json_decref(c.out);
}

/* ---- key rollover (RFC 8555 §7.3.5) ------------------------------------- */

struct account_rollover {
	const char		*id;
	json_t			*jwk;		/* new key, required members */
	const char		*thumbprint;	/* of the new key */
	json_t			*out;
	char			 other[ACME_ID_MAX]; /* conflicting account */
	struct acme_prob	 prob;
};

static int
account_rollover_txn(struct store_txn *txn, void *arg)
{
	struct account_rollover *c = arg;
	struct store *st = store_txn_store(txn);
	const char *status, *oid;
	json_t *other;

	json_decref(c->out);
	c->out = NULL;
	c->other[0] = '\0';
	acme_prob_clear(&c->prob);
	if ((other = store_acme_account_by_thumbprint(st, txn,
	    c->thumbprint)) != NULL) {
		oid = json_string_value(json_object_get(other, "id"));
		snprintf(c->other, sizeof(c->other), "%s",
		    oid != NULL ? oid : "");
		json_decref(other);
		acme_prob_set(&c->prob, 409, "conflict",
		    "the new key is already the key of account %s",
		    c->other);
		return 1;
	}
	if ((c->out = store_acme_account_get(st, txn, c->id)) == NULL) {
		acme_prob_set(&c->prob, 400, "accountDoesNotExist",
		    "no account %s", c->id);
		return 1;
	}
	status = json_string_value(json_object_get(c->out, "status"));
	if (status == NULL || strcmp(status, "valid") != 0) {
		acme_prob_set(&c->prob, 403, "unauthorized",
		    "account %s is %s", c->id, status != NULL ? status :
		    "not valid");
		return 1;
	}
	if (json_object_set(c->out, "jwk", c->jwk) == -1 ||
	    json_object_set_new(c->out, "thumbprint",
	    json_string(c->thumbprint)) == -1)
		return -1;
	return store_acme_account_put(txn, c->id, c->out);
}

/*
 * Checks the inner JWS of a keyChange request: signed by the new key
 * (jwk, no kid, no nonce), same url as the outer JWS, payload
 * {"account": the outer kid, "oldKey": the account's current key}. Sets
 * *newkey and c->jwk / thumb. -1 with p.
 */
static int
account_rollover_inner(struct acme_req *r, struct account_rollover *c,
    EVP_PKEY **newkey, char *thumb, size_t thumblen, struct acme_prob *p)
{
	char kid[ACME_URL_MAX];
	struct acme_jws j;
	json_t *inner = NULL, *jwk;
	EVP_PKEY *old = NULL;
	const char *account, *url;
	json_error_t jerr;
	size_t i;
	int rc = -1;

	*newkey = NULL;
	if (acme_jws_parse(r->payload, &j, p) == -1)
		goto out;
	for (i = 0; acme_jws_algs[i] != NULL; i++)
		if (strcmp(j.alg, acme_jws_algs[i]) == 0)
			break;
	if (acme_jws_algs[i] == NULL) {
		acme_jws_bad_alg(p, j.alg);
		goto out;
	}
	jwk = json_object_get(j.prot, "jwk");
	url = json_string_value(json_object_get(j.prot, "url"));
	if (jwk == NULL || json_object_get(j.prot, "kid") != NULL ||
	    json_object_get(j.prot, "nonce") != NULL || url == NULL) {
		acme_prob_set(p, 400, "malformed",
		    "keyChange inner JWS must carry jwk and url, and neither "
		    "kid nor nonce (RFC 8555 §7.3.5)");
		goto out;
	}
	if (strcmp(url, r->url) != 0) {
		acme_prob_set(p, 400, "malformed",
		    "keyChange inner JWS url differs from the outer url");
		goto out;
	}
	if ((*newkey = acme_jwk_key(jwk, p)) == NULL ||
	    acme_jws_check_sig(&j, *newkey, p) == -1)
		goto out;
	if ((c->jwk = acme_jwk_public(jwk)) == NULL ||
	    acme_jwk_thumbprint(c->jwk, thumb, thumblen) == -1) {
		acme_prob_set(p, 400, "malformed",
		    "keyChange: JWK members must be base64url strings");
		goto out;
	}
	if (j.payload_len == 0 || (inner = json_loadb((const char *)j.payload,
	    j.payload_len, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(inner) ||
	    (account = json_string_value(json_object_get(inner,
	    "account"))) == NULL ||
	    json_object_get(inner, "oldKey") == NULL) {
		acme_prob_set(p, 400, "malformed",
		    "keyChange inner payload must be {\"account\", "
		    "\"oldKey\"}");
		goto out;
	}
	if (account_url(r, r->account_id, kid, sizeof(kid)) == -1 ||
	    strcmp(account, kid) != 0) {
		acme_prob_set(p, 403, "unauthorized",
		    "keyChange \"account\" is not the account that signed the "
		    "request");
		goto out;
	}
	if ((old = acme_jwk_key(json_object_get(inner, "oldKey"), p)) ==
	    NULL)
		goto out;
	if (EVP_PKEY_eq(old, r->key) != 1) {
		acme_prob_set(p, 403, "unauthorized",
		    "keyChange \"oldKey\" is not the account's current key");
		goto out;
	}
	if (EVP_PKEY_eq(*newkey, r->key) == 1) {
		acme_prob_set(p, 400, "malformed",
		    "keyChange: the new key is the current key");
		goto out;
	}
	rc = 0;
out:
	if (rc == -1) {
		EVP_PKEY_free(*newkey);
		*newkey = NULL;
	}
	EVP_PKEY_free(old);
	json_decref(inner);
	acme_jws_clear(&j);
	return rc;
}

/* POST /acme/key-change */
void
acme_key_change(struct acme_req *r)
{
	struct account_rollover c;
	char thumb[ACME_THUMB_MAX], loc[ACME_URL_MAX];
	EVP_PKEY *newkey = NULL;
	int rc;

	memset(&c, 0, sizeof(c));
	if (acme_req_auth(r, ACME_AUTH_KID) == -1)
		goto out;
	if (r->payload == NULL) {
		acme_problem(r, 400, "malformed",
		    "keyChange needs an inner JWS as payload");
		goto out;
	}
	if (account_rollover_inner(r, &c, &newkey, thumb, sizeof(thumb),
	    &c.prob) == -1) {
		acme_problem_send(r, &c.prob);
		goto out;
	}
	c.id = r->account_id;
	c.thumbprint = thumb;
	rc = store_txn_run(r->a->st, account_rollover_txn, &c);
	if (rc > 0) {
		if (c.other[0] != '\0' &&
		    account_url(r, c.other, loc, sizeof(loc)) == 0)
			acme_header(r, "Location", loc);
		acme_problem_send(r, &c.prob);
		goto out;
	}
	if (rc != 0) {
		acme_problem(r, 500, "serverInternal",
		    "cannot change the key of account %s", r->account_id);
		goto out;
	}
	acme_keycache_forget(r->a->keys, r->account_id);
	log_info("acme: account %s changed its key to %s", r->account_id,
	    thumb);
	account_reply(r, 200, c.out);
out:
	EVP_PKEY_free(newkey);
	json_decref(c.jwk);
	json_decref(c.out);
	acme_prob_clear(&c.prob);
}

/* ---- orders list -------------------------------------------------------- */

/* POST-as-GET /acme/acct/<id>/orders[?cursor=ORDER-ID]: {"orders":
 * [URLs]}, ACME_ORDERS_PAGE per page, Link rel="next" to the next page. */
void
acme_account_orders(struct acme_req *r, const char *id)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	const char *cursor = NULL, *oid;
	struct evkeyvalq q;
	char url[ACME_URL_MAX];
	json_t *page = NULL, *urls = NULL, *o;
	char *next = NULL;
	size_t i;

	TAILQ_INIT(&q);
	if (acme_req_auth(r, ACME_AUTH_KID) == -1 ||
	    acme_req_post_as_get(r) == -1)
		goto out;
	if (strcmp(r->account_id, id) != 0) {
		acme_problem(r, 403, "unauthorized",
		    "the orders of account %s belong to that account", id);
		goto out;
	}
	if (query != NULL && *query != '\0') {
		if (evhttp_parse_query_str(query, &q) == -1 ||
		    ((cursor = evhttp_find_header(&q, "cursor")) != NULL &&
		    !common_id_valid(cursor))) {
			acme_problem(r, 400, "malformed",
			    "bad orders cursor");
			goto out;
		}
	}
	if ((page = store_acme_orders_by_account(r->a->st, NULL, id, cursor,
	    ACME_ORDERS_PAGE, &next)) == NULL || (urls = json_array()) ==
	    NULL) {
		acme_problem(r, 500, "serverInternal",
		    "cannot list the orders of account %s", id);
		goto out;
	}
	json_array_foreach(page, i, o) {
		if ((oid = json_string_value(json_object_get(o, "id"))) ==
		    NULL || acme_url(r, url, sizeof(url), "order/%s", oid) ==
		    -1)
			continue;
		json_array_append_new(urls, json_string(url));
	}
	if (next != NULL && acme_url(r, url, sizeof(url),
	    "acct/%s/orders?cursor=%s", id, next) == 0)
		acme_link(r, url, "next");
	acme_reply_json(r, 200, json_pack("{s:o}", "orders", urls), NULL);
	urls = NULL;
out:
	evhttp_clear_headers(&q);
	json_decref(urls);
	json_decref(page);
	free(next);
}
