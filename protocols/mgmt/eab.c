/*
 * protocols/mgmt/eab.c — /api/v1/acme/eab: the External Account Binding
 * keys (RFC 8555 §7.3.4) that ACME clients present on newAccount when
 * acme.eab_required is set (or voluntarily). Admin only.
 *
 * A key is 32 random bytes under a random kid ("eab-" + 16 hex). The
 * HMAC key is shown once, in the answer to its creation; listings never
 * carry it. Keys are ACME protocol state (table eab_key, read by
 * protocols/acme on newAccount), not certificates, so they go straight
 * to store/ and leave no audit record; every change is logged.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "protocols/mgmt/mgmt.h"

#define EAB_KEY_BYTES		32	/* HMAC key length */
#define EAB_KID_MAX		64	/* "eab-" + 16 hex + NUL, with room */
#define EAB_TIME_MAX		32	/* RFC 3339 timestamp + NUL */
#define EAB_NOTE_MAX		256	/* bytes of "note" */
#define EAB_EXPIRES_DAYS_MAX	3650.0	/* longest "expires_in_days" */
#define EAB_DAY_SECONDS		86400.0
#define EAB_DEFAULT_ALG		"HS256"

static const char *const eab_create_fields[] = {
	"one_time", "expires_in_days", "alg", "note", NULL
};

/* The MAC algorithms a binding may use (RFC 8555 §7.3.4: HMAC). */
static const char *const eab_algs[] = { "HS256", "HS384", "HS512", NULL };

/* What a listing shows of a key: everything but the secret. */
static json_t *
eab_public(const json_t *rec)
{
	json_t *out = json_deep_copy(rec);

	if (out != NULL)
		json_object_del(out, "hmac_key");
	return out;
}

/* JSON null counts as absent, as in every other request body. */
static const json_t *
eab_field(const json_t *body, const char *name)
{
	const json_t *v = json_object_get(body, name);

	return json_is_null(v) ? NULL : v;
}

/* True for at most EAB_NOTE_MAX bytes without control characters. */
static bool
eab_note_ok(const char *s, size_t len)
{
	size_t i;

	if (len > EAB_NOTE_MAX || strlen(s) != len)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

struct eab_put {
	const char	*kid;
	const json_t	*rec;
};

static int
eab_put_txn(struct store_txn *txn, void *arg)
{
	struct eab_put *p = arg;

	return store_eab_put(txn, p->kid, p->rec);
}

static int
eab_del_txn(struct store_txn *txn, void *arg)
{
	const char *kid = arg;
	json_t *rec;

	/* Read under the txn so "absent" and the delete agree. */
	if ((rec = store_eab_get(store_txn_store(txn), txn, kid)) == NULL)
		return store_txn_failed(txn) ? -1 : 1;
	json_decref(rec);
	return store_eab_del(txn, kid);
}

/*
 * POST /acme/eab (admin) {"one_time" (default true), "expires_in_days",
 * "alg" (default HS256), "note"} -> 201 {"kid", "hmac_key", "alg",
 * "one_time", "expires_at", "created_at", "note"}.
 */
void
mgmt_eab_create(struct mgmt_call *c)
{
	unsigned char key[EAB_KEY_BYTES];
	char kid[EAB_KID_MAX], created[EAB_TIME_MAX], expires[EAB_TIME_MAX];
	const json_t *one_time, *days, *alg, *note;
	const char *alg_name = EAB_DEFAULT_ALG, *note_text = "";
	struct eab_put put;
	json_t *body = NULL, *rec = NULL, *out = NULL;
	char *b64 = NULL;
	time_t now = common_now();
	double d = 0;
	size_t i;

	if (mgmt_body_object(c, true, &body) == -1)
		goto out;
	if (mgmt_body_known(c, body, eab_create_fields, "") == -1)
		goto out;
	one_time = eab_field(body, "one_time");
	days = eab_field(body, "expires_in_days");
	alg = eab_field(body, "alg");
	note = eab_field(body, "note");
	if (one_time != NULL && !json_is_boolean(one_time)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "field \"one_time\" must be true or false");
		goto out;
	}
	if (days != NULL) {
		d = json_is_number(days) ? json_number_value(days) : NAN;
		if (!(d > 0 && d <= EAB_EXPIRES_DAYS_MAX)) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "field \"expires_in_days\" must be a number > 0 "
			    "and <= %g", EAB_EXPIRES_DAYS_MAX);
			goto out;
		}
	}
	if (alg != NULL) {
		alg_name = json_string_value(alg);
		for (i = 0; alg_name != NULL && eab_algs[i] != NULL; i++)
			if (strcmp(alg_name, eab_algs[i]) == 0)
				break;
		if (alg_name == NULL || eab_algs[i] == NULL) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "field \"alg\" must be HS256, HS384 or HS512");
			goto out;
		}
	}
	if (note != NULL) {
		if (!json_is_string(note) || !eab_note_ok(
		    json_string_value(note), json_string_length(note))) {
			mgmt_reply_error(c, 400, "invalid_request",
			    "field \"note\" must be a string of at most %d "
			    "bytes without control characters", EAB_NOTE_MAX);
			goto out;
		}
		note_text = json_string_value(note);
	}
	if (RAND_bytes(key, sizeof(key)) != 1 ||
	    common_random_id("eab-", kid, sizeof(kid)) == -1) {
		mgmt_reply_error(c, 500, "internal", "random number generator "
		    "failed");
		goto out;
	}
	if ((b64 = common_b64_encode(key, sizeof(key), true, 0)) == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		goto out;
	}
	common_time_rfc3339(now, created, sizeof(created));
	if (days != NULL)
		common_time_rfc3339(now + (time_t)(d * EAB_DAY_SECONDS),
		    expires, sizeof(expires));
	rec = json_pack("{s:s, s:s, s:s, s:b, s:n, s:s, s:o, s:s}",
	    "kid", kid, "hmac_key", b64, "alg", alg_name,
	    "one_time", one_time == NULL || json_is_true(one_time),
	    "used_by", "created_at", created,
	    "expires_at", days != NULL ? json_string(expires) : json_null(),
	    "note", note_text);
	if (rec == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		goto out;
	}
	put.kid = kid;
	put.rec = rec;
	if (store_txn_run(lifecycle_store(c->lc), eab_put_txn, &put) != 0) {
		mgmt_reply_error(c, 500, "internal", "cannot store the EAB "
		    "key");
		goto out;
	}
	log_info("mgmt: %s created ACME EAB key %s (%s, %s, expires %s)",
	    c->actor, kid, alg_name, json_is_true(json_object_get(rec,
	    "one_time")) ? "one-time" : "reusable", days != NULL ? expires :
	    "never");
	if ((out = json_deep_copy(rec)) != NULL)
		json_object_del(out, "used_by");
	mgmt_reply_json(c, 201, out);
out:
	OPENSSL_cleanse(key, sizeof(key));
	if (b64 != NULL) {
		OPENSSL_cleanse(b64, strlen(b64));
		free(b64);
	}
	json_decref(rec);
	json_decref(body);
}

/* GET /acme/eab (admin) -> {"eab_keys": [.. without hmac_key ..],
 * "next_page_token"}, ordered by kid. */
void
mgmt_eab_list(struct mgmt_call *c)
{
	struct store_page page;
	const char *token;
	char *next = NULL;
	json_t *items = NULL, *shown = NULL, *rec, *one;
	size_t i, limit;

	if (mgmt_query_page(c, &limit, &token) == -1)
		goto out;
	if (token != NULL && !common_id_valid(token)) {
		mgmt_reply_error(c, 400, "invalid_request",
		    "page_token is not a valid token");
		goto out;
	}
	memset(&page, 0, sizeof(page));
	page.after = token;
	page.limit = limit;
	if ((items = store_eab_list(lifecycle_store(c->lc), NULL, &page,
	    &next)) == NULL) {
		mgmt_reply_error(c, 500, "internal", "cannot list EAB keys");
		goto out;
	}
	if ((shown = json_array()) == NULL) {
		mgmt_reply_error(c, 500, "internal", "out of memory");
		goto out;
	}
	json_array_foreach(items, i, rec) {
		if ((one = eab_public(rec)) == NULL ||
		    json_array_append_new(shown, one) == -1) {
			mgmt_reply_error(c, 500, "internal", "out of memory");
			goto out;
		}
	}
	mgmt_reply_json(c, 200, json_pack("{s:O, s:o}", "eab_keys", shown,
	    "next_page_token", next != NULL ? json_string(next) :
	    json_null()));
out:
	free(next);
	json_decref(shown);
	json_decref(items);
}

/* DELETE /acme/eab/{id} (admin) -> 204; an account already bound with
 * the key keeps its binding. */
void
mgmt_eab_delete(struct mgmt_call *c)
{
	int rc;

	rc = store_txn_run(lifecycle_store(c->lc), eab_del_txn,
	    (void *)(uintptr_t)c->id);
	if (rc == 1) {
		mgmt_reply_error(c, 404, "not_found", "no EAB key %s", c->id);
		return;
	}
	if (rc != 0) {
		mgmt_reply_error(c, 500, "internal", "cannot delete EAB key %s",
		    c->id);
		return;
	}
	log_info("mgmt: %s deleted ACME EAB key %s", c->actor, c->id);
	server_reply(c->req, 204, NULL, NULL, 0);
}
