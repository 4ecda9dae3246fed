/*
 * lifecycle/cert.c — certificates and their versions: creation in the
 * three modes (managed, external, imported), issuance for the protocol
 * doors, inventory queries, renewal rules and due dates, renewal into a
 * pending version, promotion, history pruning and revocation.
 *
 * Every change runs in one store transaction through lifecycle_txn_run:
 * what is slow or random (key generation, sealing, ids, request parsing)
 * happens before it, so a retried transaction repeats only store work
 * and signing, and a refused request stores nothing.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "conf/conf.h"
#include "lifecycle/lifecycle.h"

#define LC_ALGS_TEXT_MAX	128	/* "RSA2048, ..., ED25519" */
#define LC_SERIAL_MAX		41	/* 20-byte serial in hex + NUL */
#define LC_DAY_SECONDS		86400.0
#define LC_RENEW_SHARE		3.0	/* a default renewal window that does
					   not fit the validity becomes this
					   share of it (the 30-of-90 ratio) */
#define LC_JSON_INT_MAX		1e15	/* whole numbers shown as integers */
#define LC_DEFAULT_KEY_ALG	CA_KEY_ECDSA_P256
#define LC_NAME_FALLBACK	"certificate"	/* derived name of last resort */
#define LC_ARI_DIVISOR		3	/* ACME/EST due date: notAfter -
					   lifetime / 3, the start of the
					   ARI window (protocols/acme/ari.c) */
#define LC_DETAIL_MAX		256	/* event detail text */
#define LC_PRUNED_TEXT_MAX	256	/* "1, 2, 3" in a prune audit record */
#define LC_STAGE_MAX		16	/* "previous" + NUL, with room */

enum lc_mode {
	LC_MODE_MANAGED,
	LC_MODE_EXTERNAL,
	LC_MODE_IMPORTED,
	LC_MODE__MAX
};

static const char *const lc_mode_names[LC_MODE__MAX] = {
	[LC_MODE_MANAGED] = "managed",
	[LC_MODE_EXTERNAL] = "external",
	[LC_MODE_IMPORTED] = "imported",
};

static const struct lifecycle_field lc_cert_fields[] = {
	{ "name", LIFECYCLE_F_STRING },
	{ "mode", LIFECYCLE_F_STRING },
	{ "ca_id", LIFECYCLE_F_STRING },
	{ "profile", LIFECYCLE_F_STRING },
	{ "subject", LIFECYCLE_F_STRING },
	{ "sans", LIFECYCLE_F_STRINGS },
	{ "key_algorithm", LIFECYCLE_F_STRING },
	{ "validity_days", LIFECYCLE_F_NUMBER },
	{ "renewal", LIFECYCLE_F_OBJECT },
	{ "csr", LIFECYCLE_F_STRING },
	{ "certificate", LIFECYCLE_F_STRING },
	{ "private_key", LIFECYCLE_F_STRING },
	{ "chain", LIFECYCLE_F_STRING },
	{ NULL, LIFECYCLE_F_STRING }
};

/* renewal.reuse_key (a boolean) is checked on its own. */
static const struct lifecycle_field lc_renewal_fields[] = {
	{ "renew_before_days", LIFECYCLE_F_NUMBER },
	{ "renew_at_fraction", LIFECYCLE_F_NUMBER },
	{ NULL, LIFECYCLE_F_STRING }
};

#define LC_M	(1u << LC_MODE_MANAGED)
#define LC_E	(1u << LC_MODE_EXTERNAL)
#define LC_I	(1u << LC_MODE_IMPORTED)

/* Which modes may and must carry each field. */
static const struct lc_field_use {
	const char	*name;
	unsigned	 allowed;
	unsigned	 required;
} lc_field_uses[] = {
	{ "name",		LC_M | LC_E | LC_I,	LC_M | LC_E | LC_I },
	{ "mode",		LC_M | LC_E | LC_I,	0 },
	{ "ca_id",		LC_M | LC_E,		LC_M | LC_E },
	{ "profile",		LC_M | LC_E,		LC_M | LC_E },
	{ "subject",		LC_M | LC_E,		0 },
	{ "sans",		LC_M | LC_E,		0 },
	{ "key_algorithm",	LC_M,			0 },
	{ "validity_days",	LC_M | LC_E,		0 },
	{ "renewal",		LC_M | LC_E | LC_I,	0 },
	{ "csr",		LC_E,			LC_E },
	{ "certificate",	LC_I,			LC_I },
	{ "private_key",	LC_I,			LC_I },
	{ "chain",		LC_I,			0 },
	{ NULL,			0,			0 }
};

/*
 * A validated creation: everything the transaction needs, prepared
 * before it starts. Strings are owned unless marked borrowed.
 */
struct lc_create {
	struct lifecycle	*lc;
	const char		*who;		/* borrowed */
	enum lc_mode		 mode;
	const char		*origin;	/* borrowed, static */
	char			 cert_id[LIFECYCLE_ID_MAX];
	char			 key_id[LIFECYCLE_ID_MAX];	/* "": none */
	char			 req_ca_id[LIFECYCLE_ID_MAX];	/* "": none */
	char			*name;		/* as requested or derived */
	bool			 derived_name;	/* may take a suffix */
	const char		*profile;	/* borrowed, static; NULL */
	enum ca_profile		 profile_id;
	char			*subject;	/* "" when none */
	json_t			*sans;		/* array of strings */
	const char		*key_alg;	/* borrowed, static; NULL */
	double			 validity_days;
	double			 renew_before_days;	/* 0 when a fraction */
	double			 renew_at_fraction;	/* 0 when days */
	bool			 reuse_key;	/* managed: renew with the key */
	bool			 client_renews;	/* ACME/EST: no renewal rule */
	EVP_PKEY		*key;		/* managed, imported */
	EVP_PKEY		*pubkey;	/* borrowed: key, csr or caller */
	X509_REQ		*csr;		/* external from mgmt */
	char			*csr_pem;
	char			*pubkey_pem;	/* external */
	char			*sealed;	/* sealed private key */
	X509			*cert;		/* imported */
	char			*chain_pem;	/* imported, NULL: none given */
	X509			**issued;	/* borrowed; NULL: not wanted */

	/* set by each try of the transaction */
	char			 ca_id[LIFECYCLE_ID_MAX];	/* "": none */
	char			 final_name[LIFECYCLE_NAME_MAX + 1];
	json_t			*out;
};

/* Parameters of one signing. */
struct lc_sign {
	const char		*ca_id;
	const char		*cert_id;
	unsigned		 version;
	EVP_PKEY		*pubkey;
	const char		*subject;
	const json_t		*sans;
	enum ca_profile		 profile;
	double			 validity_days;
	const char		*origin;
	const char		*key_id;	/* NULL: none */
	const char		*csr_pem;	/* NULL: none */
	const char		*pubkey_pem;	/* NULL: none */
	X509			**issued;	/* NULL, or receives the
						   certificate */
};

/* A transaction on one existing certificate (renew, revoke, delete,
 * issue into an existing entry). */
struct lc_change {
	struct lifecycle	*lc;
	const char		*who;
	const char		*id;
	unsigned		 n;		/* revoke: version */
	enum ca_reason		 reason;	/* revoke */
	enum lc_mode		 mode;		/* renew: mode read before */
	char			 key_id[LIFECYCLE_ID_MAX];	/* renew */
	char			*sealed;	/* renew, managed, new key */
	EVP_PKEY		*key;		/* renew, managed */
	bool			 reused;	/* renew: key_id is the current
						   version's key */
	const struct lc_create	*issue;		/* issue into existing */
	json_t			*out;
	json_t			*event;		/* notification data, sent
						   after commit */
};

/* ---- small helpers ---- */

/* Sets an internal "out of memory" error; returns -1. */
static int
lc_nomem(struct common_error *err)
{
	common_error_set(err, COMMON_E_INTERNAL, "out of memory");
	return -1;
}

/* Sets an internal error for a failed random id; returns -1. */
static int
lc_noid(struct common_error *err)
{
	common_error_set(err, COMMON_E_INTERNAL, "cannot make an id");
	return -1;
}

/* Days as JSON: an integer when whole (90, not 90.0), else a real. */
static json_t *
lc_json_days(double d)
{
	if (d > -LC_JSON_INT_MAX && d < LC_JSON_INT_MAX &&
	    d == (double)(json_int_t)d)
		return json_integer((json_int_t)d);
	return json_real(d);
}

static const char *
lc_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static int
lc_mode_parse(const char *s, enum lc_mode *out)
{
	int i;

	for (i = 0; i < LC_MODE__MAX; i++) {
		if (s != NULL && strcmp(s, lc_mode_names[i]) == 0) {
			*out = (enum lc_mode)i;
			return 0;
		}
	}
	return -1;
}

/* Version number of a record field; 0 when absent or out of range. */
static unsigned
lc_uint(const json_t *obj, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(obj, key));

	return v > 0 && v <= (json_int_t)UINT32_MAX ? (unsigned)v : 0;
}

/* Checks that ca_id names a CA, inside txn. NOTFOUND names the id. */
static int
lc_ca_check(struct lifecycle *lc, struct store_txn *txn, const char *ca_id,
    struct common_error *err)
{
	if (ca_exists(lifecycle_ca(lc), txn, ca_id))
		return 0;
	common_error_set(err, COMMON_E_NOTFOUND, "ca_id: no CA %s", ca_id);
	return -1;
}

/*
 * Words a signing refusal for a CA that does not exist (ca_issue's
 * NOTFOUND) as lc_ca_check does: the issuing transactions leave that
 * check to ca_issue, which reads the CA record anyway.
 */
static void
lc_ca_notfound(const char *ca_id, struct common_error *err)
{
	if (err->code != COMMON_E_NOTFOUND)
		return;
	common_error_clear(err);
	common_error_set(err, COMMON_E_NOTFOUND, "ca_id: no CA %s", ca_id);
}

/*
 * The public view of a version: a copy without the key reference, the
 * stored request and public key, and (unless pem) without the PEMs.
 */
static json_t *
lc_version_view(const json_t *v, bool pem)
{
	json_t *out;

	if ((out = json_deep_copy(v)) == NULL)
		return NULL;
	json_object_del(out, "key_id");
	json_object_del(out, "csr");
	json_object_del(out, "public_key");
	json_object_del(out, "not_after_epoch");
	json_object_del(out, "not_before_epoch");
	if (!pem) {
		json_object_del(out, "certificate");
		json_object_del(out, "chain");
	}
	return out;
}

/* A certificate record with "current" (the version v with PEMs, or null). */
static json_t *
lc_cert_view(const json_t *crec, const json_t *v)
{
	json_t *out, *cur = NULL;

	if ((out = json_deep_copy(crec)) == NULL)
		return NULL;
	if (v != NULL && (cur = lc_version_view(v, true)) == NULL) {
		json_decref(out);
		return NULL;
	}
	if (json_object_set_new(out, "current",
	    cur != NULL ? cur : json_null()) == -1) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static bool
lc_streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* True for certificates their ACME or EST client renews. */
static bool
lc_client_renews(const char *origin)
{
	return lc_streq(origin, "acme") || lc_streq(origin, "est");
}

/* notBefore of a version in seconds: the stored epoch, else parsed from
 * the RFC 3339 text (records written before the epoch was kept). */
static json_int_t
lc_not_before(const json_t *v)
{
	const json_t *e = json_object_get(v, "not_before_epoch");
	time_t t;

	if (json_is_integer(e))
		return json_integer_value(e);
	if (lifecycle_time_parse(lc_str(v, "not_before"), &t) == 0)
		return (json_int_t)t;
	return json_integer_value(json_object_get(v, "not_after_epoch"));
}

/*
 * When version v of the certificate crec is due for renewal: not_after -
 * renew_before_days, or not_before + renew_at_fraction x lifetime; for
 * ACME and EST certificates (and records without a rule) the start of
 * the ARI window, not_after - lifetime / 3, as protocols/acme/ari.c
 * suggests to clients.
 */
json_int_t
lifecycle_due_epoch(const json_t *crec, const json_t *v)
{
	const json_t *r = json_object_get(crec, "renewal");
	json_int_t na, nb, life;
	double f, d;

	na = json_integer_value(json_object_get(v, "not_after_epoch"));
	nb = lc_not_before(v);
	life = na > nb ? na - nb : 0;
	if (lc_client_renews(lc_str(crec, "origin")) || !json_is_object(r))
		return na - life / LC_ARI_DIVISOR;
	f = json_number_value(json_object_get(r, "renew_at_fraction"));
	d = json_number_value(json_object_get(r, "renew_before_days"));
	if (f > 0 && f < 1)
		return nb + (json_int_t)(f * (double)life);
	if (d > 0)
		return na - (json_int_t)(d * LC_DAY_SECONDS);
	return na - life / LC_ARI_DIVISOR;
}

/* Lowers crec's "expiry_check_epoch" (when the scheduler next looks for
 * expired versions) to v's notAfter. 0 or -1. */
static int
lc_expiry_note(json_t *crec, const json_t *v)
{
	const json_t *cur = json_object_get(crec, "expiry_check_epoch");
	json_int_t na = json_integer_value(json_object_get(v,
	    "not_after_epoch"));

	if (json_is_integer(cur) && json_integer_value(cur) <= na)
		return 0;
	return json_object_set_new(crec, "expiry_check_epoch",
	    json_integer(na));
}

/*
 * Makes v the certificate's current version in crec (not stored): the
 * version fields, its due date, and a fresh renewal state (nothing is
 * due for a version that just became current).
 */
static int
lc_cert_set_current(json_t *crec, const json_t *v)
{
	char due[LIFECYCLE_TIME_MAX];
	unsigned n = lc_uint(v, "version");
	json_int_t d = lifecycle_due_epoch(crec, v);
	int rc = 0;

	common_time_rfc3339((time_t)d, due, sizeof(due));
	rc |= json_object_set_new(crec, "due_at", json_string(due));
	rc |= json_object_set_new(crec, "due_at_epoch", json_integer(d));
	rc |= json_object_set_new(crec, "renewal_due", json_false());
	json_object_del(crec, "renewal_state");
	if (lc_uint(crec, "pending_version") <= n)
		json_object_del(crec, "pending_version");
	rc |= lc_expiry_note(crec, v);
	rc |= json_object_set_new(crec, "current_version", json_integer(n));
	if (n > lc_uint(crec, "latest_version"))
		rc |= json_object_set_new(crec, "latest_version",
		    json_integer(n));
	rc |= json_object_set(crec, "not_after",
	    json_object_get(v, "not_after"));
	rc |= json_object_set(crec, "not_after_epoch",
	    json_object_get(v, "not_after_epoch"));
	rc |= json_object_set(crec, "stage", json_object_get(v, "stage"));
	rc |= json_object_set(crec, "serial", json_object_get(v, "serial"));
	return rc == 0 ? 0 : -1;
}

/*
 * A version record (stage "current") for certificate x. ca_id, key_id,
 * csr_pem and pubkey_pem may be NULL. New reference or NULL with err.
 */
static json_t *
lc_version_new(const char *cert_id, unsigned n, const char *ca_id, X509 *x,
    const char *chain, const char *key_id, const char *csr_pem,
    const char *pubkey_pem, struct common_error *err)
{
	char serial[LC_SERIAL_MAX], now[LIFECYCLE_TIME_MAX];
	char nb[LIFECYCLE_TIME_MAX], na[LIFECYCLE_TIME_MAX];
	time_t tnb, tna;
	char *pem = NULL;
	json_t *v = NULL;
	int rc = 0;

	if (common_x509_serial_hex(x, serial, sizeof(serial)) == -1 ||
	    common_asn1_time(X509_get0_notBefore(x), &tnb) == -1 ||
	    common_asn1_time(X509_get0_notAfter(x), &tna) == -1 ||
	    (pem = common_x509_to_pem(x)) == NULL) {
		log_err("lifecycle: certificate %s version %u: cannot read "
		    "the certificate: %s", cert_id, n, common_ssl_error());
		common_error_set(err, COMMON_E_INTERNAL,
		    "cannot read the certificate");
		goto out;
	}
	common_time_rfc3339(tnb, nb, sizeof(nb));
	common_time_rfc3339(tna, na, sizeof(na));
	common_time_rfc3339(common_now(), now, sizeof(now));
	v = json_pack("{s:s, s:I, s:o, s:s, s:s, s:s, s:s, s:I, s:I, s:s,"
	    " s:s, s:n, s:n, s:s}",
	    "certificate_id", cert_id, "version", (json_int_t)n,
	    "ca_id", ca_id != NULL ? json_string(ca_id) : json_null(),
	    "serial", serial, "stage", "current", "not_before", nb,
	    "not_after", na, "not_before_epoch", (json_int_t)tnb,
	    "not_after_epoch", (json_int_t)tna,
	    "certificate", pem, "chain", chain != NULL ? chain : "",
	    "revoked_at", "revocation_reason", "created_at", now);
	if (v != NULL && key_id != NULL)
		rc |= json_object_set_new(v, "key_id", json_string(key_id));
	if (v != NULL && csr_pem != NULL)
		rc |= json_object_set_new(v, "csr", json_string(csr_pem));
	if (v != NULL && pubkey_pem != NULL)
		rc |= json_object_set_new(v, "public_key",
		    json_string(pubkey_pem));
	if (v == NULL || rc != 0) {
		json_decref(v);
		v = NULL;
		lc_nomem(err);
	}
out:
	free(pem);
	return v;
}

/*
 * Signs one version under s->ca_id inside txn (ca_issue records the
 * serial in `issued`) and returns its version record with the issuer's
 * bundle as chain, and the certificate in *s->issued when asked. NULL
 * with err (a CA or policy refusal passes through).
 */
static json_t *
lc_sign_version(struct lifecycle *lc, struct store_txn *txn,
    const struct lc_sign *s, struct common_error *err)
{
	struct ca_issue_req ir;
	struct common_error e;
	const char **sanv = NULL;
	size_t i, n = json_array_size(s->sans);
	char *chain = NULL;
	X509 *x = NULL;
	json_t *v = NULL;

	if ((sanv = calloc(n + 1, sizeof(*sanv))) == NULL) {
		lc_nomem(err);
		goto out;
	}
	for (i = 0; i < n; i++)
		sanv[i] = json_string_value(json_array_get(s->sans, i));
	memset(&ir, 0, sizeof(ir));
	ir.pubkey = s->pubkey;
	ir.subject = s->subject != NULL && *s->subject != '\0' ?
	    s->subject : NULL;
	ir.sans = sanv;
	ir.nsans = n;
	ir.profile = s->profile;
	ir.validity_days = s->validity_days;
	ir.origin = s->origin;
	ir.cert_id = s->cert_id;
	ir.version = s->version;
	if ((x = ca_issue(lifecycle_ca(lc), txn, s->ca_id, &ir, err)) == NULL)
		goto out;
	/* The serial is recorded now: whatever fails from here on is
	 * internal, so a refusal always means nothing was written (see
	 * lifecycle_issue_txn). */
	common_error_clear(&e);
	if ((chain = ca_bundle_pem(lifecycle_ca(lc), txn, s->ca_id, &e)) ==
	    NULL) {
		log_err("lifecycle: certificate %s version %u: chain of CA %s: "
		    "%s", s->cert_id, s->version, s->ca_id, e.msg);
		common_error_set(err, COMMON_E_INTERNAL,
		    "cannot build the chain of CA %s", s->ca_id);
		goto out;
	}
	v = lc_version_new(s->cert_id, s->version, s->ca_id, x, chain,
	    s->key_id, s->csr_pem, s->pubkey_pem, err);
	if (v != NULL && s->issued != NULL) {
		*s->issued = x;	/* steal */
		x = NULL;
	}
out:
	free(chain);
	X509_free(x);
	free(sanv);
	return v;
}

/*
 * Stores v as the new current version of crec inside txn: the old
 * current version (if still "current") becomes "previous", and crec is
 * updated and stored. 0 or -1.
 */
static int
lc_version_advance(struct store_txn *txn, json_t *crec, const json_t *v,
    struct common_error *err)
{
	const char *id = lc_str(crec, "id");
	unsigned old = lc_uint(crec, "current_version");
	json_t *prev = NULL;
	int rc = -1;

	if (old != 0 && (prev = store_version_get(store_txn_store(txn), txn,
	    id, old)) != NULL) {
		const char *stage = lc_str(prev, "stage");

		if (stage != NULL && strcmp(stage, "current") == 0 &&
		    (json_object_set_new(prev, "stage",
		    json_string("previous")) == -1 ||
		    store_version_put(txn, id, old, prev) == -1))
			goto out;
	}
	if (store_version_put(txn, id, lc_uint(v, "version"), v) == -1)
		goto out;
	if (lc_cert_set_current(crec, v) == -1) {
		lc_nomem(err);
		goto out;
	}
	if (store_cert_put(txn, id, crec) == -1)
		goto out;
	rc = 0;
out:
	json_decref(prev);
	return rc;
}

/* True when version v is pruned now: beyond the newest limit versions,
 * "previous" or "expired", and not pruned already. */
static bool
lc_prune_due(const json_t *v, unsigned cut)
{
	const char *stage = lc_str(v, "stage");

	return lc_uint(v, "version") <= cut &&
	    !json_is_true(json_object_get(v, "pruned")) &&
	    (lc_streq(stage, "previous") || lc_streq(stage, "expired"));
}

/* True when a version that keeps its material after this pass (not
 * pruned, not pruned now) refers to key_id. */
static bool
lc_key_kept(const json_t *versions, const char *key_id, unsigned cut)
{
	const json_t *v;
	size_t i;

	json_array_foreach(versions, i, v) {
		if (json_is_true(json_object_get(v, "pruned")) ||
		    lc_prune_due(v, cut))
			continue;
		if (lc_streq(lc_str(v, "key_id"), key_id))
			return true;
	}
	return false;
}

/*
 * The history limit (lifecycle.history_limit) inside txn: "previous" and
 * "expired" versions older than the newest limit versions of
 * certificate id lose their certificate and chain PEM and their sealed
 * key (unless a kept version shares it, as with reuse_key); their rows
 * stay, marked "pruned". Audited as "version.prune". 0 or -1.
 */
static int
lc_history_prune(struct lifecycle *lc, struct store_txn *txn,
    const char *id, unsigned latest, const char *who,
    struct common_error *err)
{
	struct lifecycle_sched sc;
	char list[LC_PRUNED_TEXT_MAX], now[LIFECYCLE_TIME_MAX];
	json_t *versions = NULL, *v, *copy = NULL;
	const char *key_id;
	size_t i, off = 0, pruned = 0;
	unsigned cut;
	int rc = -1, w;

	lifecycle_sched_get(lc, &sc);
	if (sc.history_limit < 1 || latest <= (unsigned)sc.history_limit)
		return 0;
	cut = latest - (unsigned)sc.history_limit;
	if ((versions = store_version_list(store_txn_store(txn), txn,
	    id)) == NULL)
		goto out;
	common_time_rfc3339(common_now(), now, sizeof(now));
	list[0] = '\0';
	json_array_foreach(versions, i, v) {
		if (!lc_prune_due(v, cut))
			continue;
		if ((copy = json_deep_copy(v)) == NULL) {
			lc_nomem(err);
			goto out;
		}
		key_id = lc_str(v, "key_id");
		/* a key another kept version uses stays; deleting a key a
		 * version pruned earlier in this pass shares is harmless */
		if (key_id != NULL && !lc_key_kept(versions, key_id, cut) &&
		    store_key_del(txn, key_id) == -1 && store_txn_failed(txn))
			goto out;
		json_object_del(copy, "certificate");
		json_object_del(copy, "chain");
		json_object_del(copy, "key_id");
		if (json_object_set_new(copy, "pruned", json_true()) == -1 ||
		    json_object_set_new(copy, "pruned_at",
		    json_string(now)) == -1) {
			lc_nomem(err);
			goto out;
		}
		if (store_version_put(txn, id, lc_uint(v, "version"), copy) ==
		    -1)
			goto out;
		json_decref(copy);
		copy = NULL;
		w = snprintf(list + off, sizeof(list) - off, "%s%u",
		    pruned > 0 ? ", " : "", lc_uint(v, "version"));
		if (w > 0 && (size_t)w < sizeof(list) - off)
			off += (size_t)w;
		pruned++;
	}
	if (pruned > 0 && lifecycle_audit(txn, who, "version.prune", id,
	    "version%s %s lost PEM and key (history limit %d)",
	    pruned > 1 ? "s" : "", list, sc.history_limit) == -1)
		goto out;
	rc = 0;
out:
	json_decref(copy);
	json_decref(versions);
	return rc;
}

/* ---- creation ---- */

static void
lc_create_free(struct lc_create *c)
{
	free(c->name);
	free(c->subject);
	json_decref(c->sans);
	EVP_PKEY_free(c->key);
	X509_REQ_free(c->csr);
	free(c->csr_pem);
	free(c->pubkey_pem);
	free(c->sealed);
	X509_free(c->cert);
	free(c->chain_pem);
	json_decref(c->out);
}

/* Comma-separated names of every leaf key algorithm, for messages. */
static void
lc_key_alg_list(char *out, size_t outlen)
{
	size_t off = 0;
	int i, w;

	out[0] = '\0';
	for (i = 0; i < CA_KEY__MAX; i++) {
		w = snprintf(out + off, outlen - off, "%s%s", i > 0 ? ", " : "",
		    ca_key_alg_name((enum ca_key_alg)i));
		if (w < 0 || (size_t)w >= outlen - off)
			break;
		off += (size_t)w;
	}
}

/* The lifecycle.profiles defaults of a certificate profile, or NULL. */
static const struct conf_lifecycle_profile *
lc_profile_conf(struct lifecycle *lc, const char *profile)
{
	const struct conf *cf = lifecycle_cfg(lc)->conf;
	size_t i;

	if (cf == NULL || profile == NULL)
		return NULL;
	for (i = 0; i < cf->lifecycle.nprofiles; i++)
		if (lc_streq(cf->lifecycle.profiles[i].profile, profile))
			return &cf->lifecycle.profiles[i];
	return NULL;
}

/* Validity of a request without one: lifecycle.profiles, else
 * certificates.default_validity_days. */
static double
lc_default_validity(struct lifecycle *lc, const char *profile)
{
	const struct conf_lifecycle_profile *pd = lc_profile_conf(lc, profile);

	if (pd != NULL && pd->validity_days > 0)
		return pd->validity_days;
	return lifecycle_cfg(lc)->default_validity_days;
}

/* Renewal rule of a request without one: lifecycle.profiles, else
 * certificates.default_renew_before_days; a defaulted window that does
 * not fit the validity becomes a third of it. */
static void
lc_default_renewal(struct lifecycle *lc, struct lc_create *c)
{
	const struct conf_lifecycle_profile *pd = lc_profile_conf(lc,
	    c->profile);

	c->renew_at_fraction = 0;
	if (pd != NULL && pd->renew_at_fraction > 0 &&
	    pd->renew_at_fraction < 1) {
		c->renew_before_days = 0;
		c->renew_at_fraction = pd->renew_at_fraction;
		return;
	}
	c->renew_before_days = pd != NULL && pd->renew_before_days > 0 ?
	    pd->renew_before_days : lifecycle_cfg(lc)->default_renew_before_days;
	if (c->renew_before_days >= c->validity_days)
		c->renew_before_days = c->validity_days / LC_RENEW_SHARE;
}

/* Checks the "renewal" object: renew_before_days or renew_at_fraction
 * (numbers, not both) and reuse_key (a boolean, managed mode only). */
static int
lc_renewal_check(const json_t *renewal, enum lc_mode mode,
    struct common_error *err)
{
	const json_t *rk;
	json_t *nums = NULL;
	int rc = -1;

	if (json_is_object(renewal)) {
		if ((nums = json_copy((json_t *)renewal)) == NULL)
			return lc_nomem(err);
		json_object_del(nums, "reuse_key");
	}
	if (lifecycle_req_check(nums != NULL ? nums : renewal, "renewal.",
	    lc_renewal_fields, err) == -1)
		goto out;
	rk = json_object_get(renewal, "reuse_key");
	if (rk != NULL && !json_is_null(rk) && !json_is_boolean(rk)) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"renewal.reuse_key\" must be true or false");
		goto out;
	}
	if (json_is_true(rk) && mode != LC_MODE_MANAGED) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"renewal.reuse_key\" is only used in managed mode");
		goto out;
	}
	if (json_is_number(json_object_get(renewal, "renew_before_days")) &&
	    json_is_number(json_object_get(renewal, "renew_at_fraction"))) {
		common_error_set(err, COMMON_E_INVALID,
		    "give \"renewal.renew_before_days\" or "
		    "\"renewal.renew_at_fraction\", not both");
		goto out;
	}
	rc = 0;
out:
	json_decref(nums);
	return rc;
}

/*
 * Validity and renewal rule of a request. validity_days defaults to the
 * profile's (lifecycle.profiles), then to the configuration; a renewal
 * window the caller gave must fit inside it and a fraction lie in
 * (0, 1); without one the profile's rule applies, then the configured
 * window (see lc_default_renewal).
 */
static int
lc_parse_timing(struct lifecycle *lc, const json_t *req, bool has_validity,
    struct lc_create *c, struct common_error *err)
{
	const json_t *renewal = json_object_get(req, "renewal"), *rb, *rf;

	if (has_validity) {
		const json_t *vd = json_object_get(req, "validity_days");

		c->validity_days = json_is_number(vd) ? json_number_value(vd) :
		    lc_default_validity(lc, c->profile);
		if (!(c->validity_days > 0) ||
		    c->validity_days > CA_MAX_VALIDITY_DAYS) {
			common_error_set(err, COMMON_E_INVALID,
			    "field \"validity_days\" must be > 0 and <= %g",
			    CA_MAX_VALIDITY_DAYS);
			return -1;
		}
	}
	if (renewal != NULL && !json_is_null(renewal) &&
	    lc_renewal_check(renewal, c->mode, err) == -1)
		return -1;
	c->reuse_key = json_is_true(json_object_get(renewal, "reuse_key"));
	rb = json_object_get(renewal, "renew_before_days");
	rf = json_object_get(renewal, "renew_at_fraction");
	if (json_is_number(rb)) {
		c->renew_before_days = json_number_value(rb);
		if (!(c->renew_before_days > 0) ||
		    c->renew_before_days >= c->validity_days) {
			common_error_set(err, COMMON_E_INVALID,
			    "field \"renewal.renew_before_days\" must be > 0 "
			    "and less than validity_days (%g)",
			    c->validity_days);
			return -1;
		}
		return 0;
	}
	if (json_is_number(rf)) {
		c->renew_at_fraction = json_number_value(rf);
		if (!(c->renew_at_fraction > 0 && c->renew_at_fraction < 1)) {
			common_error_set(err, COMMON_E_INVALID,
			    "field \"renewal.renew_at_fraction\" must be "
			    "> 0 and < 1");
			return -1;
		}
		return 0;
	}
	lc_default_renewal(lc, c);
	return 0;
}

/* Managed: the key algorithm, then a fresh key, sealed for the store. */
static int
lc_parse_managed(const json_t *req, struct lc_create *c,
    struct common_error *err)
{
	const char *s = lifecycle_req_str(req, "key_algorithm");
	enum ca_key_alg alg = LC_DEFAULT_KEY_ALG;
	char algs[LC_ALGS_TEXT_MAX];

	if (s != NULL && ca_key_alg_parse(s, &alg) == -1) {
		lc_key_alg_list(algs, sizeof(algs));
		common_error_set(err, COMMON_E_INVALID,
		    "field \"key_algorithm\" must be one of %s", algs);
		return -1;
	}
	c->key_alg = ca_key_alg_name(alg);
	if (*c->subject == '\0' && json_array_size(c->sans) == 0) {
		common_error_set(err, COMMON_E_INVALID,
		    "managed mode needs \"sans\" or \"subject\"");
		return -1;
	}
	if ((c->key = ca_key_generate(alg)) == NULL) {
		log_err("lifecycle: certificate %s: %s key generation failed",
		    c->name, c->key_alg);
		common_error_set(err, COMMON_E_INTERNAL,
		    "key generation failed");
		return -1;
	}
	c->pubkey = c->key;
	return 0;
}

/*
 * External: the CSR must parse and carry a valid self-signature; subject
 * and SANs come from it unless the request names them, and then must be
 * the ones it carries.
 */
static int
lc_parse_external(const json_t *req, struct lc_create *c,
    struct common_error *err)
{
	const char *pem = lifecycle_req_str(req, "csr");
	char *csr_subject = NULL;
	json_t *csr_sans = NULL;
	enum ca_key_alg alg;
	int rc = -1;

	if ((c->csr = common_csr_from_pem(pem, strlen(pem))) == NULL) {
		ERR_clear_error();
		common_error_set(err, COMMON_E_INVALID,
		    "csr is not a PEM certificate request");
		goto out;
	}
	if (ca_csr_parse(c->csr, &csr_subject, &csr_sans, err) == -1) {
		common_error_set(err, COMMON_E_INVALID,
		    "csr signature does not verify");
		goto out;
	}
	if ((c->pubkey = X509_REQ_get0_pubkey(c->csr)) == NULL ||
	    ca_key_alg_of(c->pubkey, &alg) == -1) {
		ERR_clear_error();
		common_error_set(err, COMMON_E_INVALID,
		    "csr key type or size is not supported");
		goto out;
	}
	c->key_alg = ca_key_alg_name(alg);
	if (*c->subject != '\0' && !lifecycle_subject_match(c->subject,
	    X509_REQ_get_subject_name(c->csr))) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"subject\" \"%s\" does not match the csr subject "
		    "\"%s\"", c->subject, csr_subject);
		goto out;
	}
	if (*c->subject == '\0') {
		free(c->subject);
		c->subject = csr_subject;	/* steal */
		csr_subject = NULL;
	}
	if (json_object_get(req, "sans") != NULL &&
	    !json_is_null(json_object_get(req, "sans"))) {
		if (lifecycle_sans_match(c->sans, csr_sans, err) == -1)
			goto out;
	} else {
		json_decref(c->sans);
		c->sans = csr_sans;		/* steal */
		csr_sans = NULL;
	}
	if (*c->subject == '\0' && json_array_size(c->sans) == 0) {
		common_error_set(err, COMMON_E_INVALID,
		    "csr has neither a subject nor SANs");
		goto out;
	}
	if ((c->csr_pem = lifecycle_csr_to_pem(c->csr)) == NULL ||
	    (c->pubkey_pem = common_spki_to_pem(
	    X509_REQ_get_X509_PUBKEY(c->csr))) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "cannot encode the csr");
		goto out;
	}
	rc = 0;
out:
	free(csr_subject);
	json_decref(csr_sans);
	return rc;
}

/* Re-encodes a parsed chain as PEM text ("" when empty). */
static char *
lc_chain_pem(STACK_OF(X509) *sk)
{
	struct common_buf b;
	char *pem;
	int i;

	common_buf_init(&b, STORE_RECORD_MAX);
	for (i = 0; i < sk_X509_num(sk); i++) {
		if ((pem = common_x509_to_pem(sk_X509_value(sk, i))) == NULL ||
		    common_buf_addstr(&b, pem) == -1) {
			free(pem);
			common_buf_free(&b);
			return NULL;
		}
		free(pem);
	}
	return common_buf_steal(&b, NULL);
}

/*
 * Imported: one certificate, the private key that matches it, an
 * optional chain. Subject, SANs, profile and validity come from the
 * certificate.
 */
static int
lc_parse_imported(struct lifecycle *lc, const json_t *req,
    struct lc_create *c, struct common_error *err)
{
	const char *cert = lifecycle_req_str(req, "certificate");
	const char *key = lifecycle_req_str(req, "private_key");
	const char *chain = lifecycle_req_str(req, "chain");
	STACK_OF(X509) *sk = NULL;
	enum ca_key_alg alg;
	time_t nb, na;
	int rc = -1;

	if ((c->cert = common_x509_from_pem(cert, strlen(cert))) == NULL) {
		common_error_set(err, COMMON_E_INVALID, "field \"certificate\""
		    " must hold exactly one PEM certificate");
		goto out;
	}
	if ((c->key = common_privkey_from_pem(key, strlen(key))) == NULL) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"private_key\" is not an unencrypted PEM private "
		    "key");
		goto out;
	}
	if (X509_check_private_key(c->cert, c->key) != 1) {
		common_error_set(err, COMMON_E_INVALID,
		    "private_key does not match certificate");
		goto out;
	}
	if (chain != NULL) {
		if ((sk = common_x509s_from_pem(chain, strlen(chain),
		    CA_CHAIN_MAX)) == NULL) {
			common_error_set(err, COMMON_E_INVALID,
			    "field \"chain\" must hold at most %d PEM "
			    "certificates", CA_CHAIN_MAX);
			goto out;
		}
		if ((c->chain_pem = lc_chain_pem(sk)) == NULL) {
			common_error_set(err, COMMON_E_INTERNAL,
			    "cannot encode the chain");
			goto out;
		}
	}
	if (common_asn1_time(X509_get0_notBefore(c->cert), &nb) == -1 ||
	    common_asn1_time(X509_get0_notAfter(c->cert), &na) == -1 ||
	    na <= nb) {
		common_error_set(err, COMMON_E_INVALID,
		    "certificate has no usable validity period");
		goto out;
	}
	c->validity_days = (double)(na - nb) / LC_DAY_SECONDS;
	c->profile = lifecycle_x509_profile(c->cert);
	if (lc_parse_timing(lc, req, false, c, err) == -1)
		goto out;
	free(c->subject);
	json_decref(c->sans);
	c->subject = lifecycle_name_text(X509_get_subject_name(c->cert));
	c->sans = lifecycle_x509_sans(c->cert);
	if (c->subject == NULL || c->sans == NULL) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "cannot read the certificate names");
		goto out;
	}
	c->key_alg = ca_key_alg_of(c->key, &alg) == 0 ?
	    ca_key_alg_name(alg) : NULL;
	rc = 0;
out:
	sk_X509_pop_free(sk, X509_free);
	ERR_clear_error();
	return rc;
}

/* Field presence per mode: not-applicable fields are refused, missing
 * required ones named. */
static int
lc_check_mode_fields(const json_t *req, enum lc_mode mode,
    struct common_error *err)
{
	const struct lc_field_use *u;
	unsigned bit = 1u << mode;
	const json_t *v;

	for (u = lc_field_uses; u->name != NULL; u++) {
		v = json_object_get(req, u->name);
		if (v != NULL && json_is_null(v))
			v = NULL;
		if (v != NULL && (u->allowed & bit) == 0) {
			common_error_set(err, COMMON_E_INVALID,
			    "field \"%s\" is not used in %s mode", u->name,
			    lc_mode_names[mode]);
			return -1;
		}
		if (v == NULL && (u->required & bit) != 0) {
			common_error_set(err, COMMON_E_INVALID,
			    "field \"%s\" is required in %s mode", u->name,
			    lc_mode_names[mode]);
			return -1;
		}
	}
	return 0;
}

/* Fails with CONFLICT when a certificate is named name (txn may be NULL). */
static int
lc_name_free(struct lifecycle *lc, struct store_txn *txn, const char *name,
    struct common_error *err)
{
	json_t *rec = store_cert_by_name(lifecycle_store(lc), txn, name);

	if (rec == NULL)
		return 0;
	common_error_set(err, COMMON_E_CONFLICT,
	    "a certificate named \"%s\" exists (%s)", name, lc_str(rec, "id"));
	json_decref(rec);
	return -1;
}

/*
 * Everything about a management-API creation request that can be checked
 * or prepared outside the transaction, in the order a client fixes its
 * mistakes: shape, mode, fields of the mode, values; then the expensive
 * parts (key generation) once the cheap checks passed.
 */
static int
lc_create_parse(struct lifecycle *lc, const json_t *req,
    struct lc_create *c, struct common_error *err)
{
	const char *mode, *name, *ca_id, *profile, *subject;
	const json_t *sans;

	if (lifecycle_req_check(req, "", lc_cert_fields, err) == -1)
		return -1;
	if ((mode = lifecycle_req_str(req, "mode")) == NULL)
		mode = lc_mode_names[LC_MODE_MANAGED];
	if (lc_mode_parse(mode, &c->mode) == -1) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"mode\" must be managed, external or imported");
		return -1;
	}
	if (lc_check_mode_fields(req, c->mode, err) == -1)
		return -1;
	name = lifecycle_req_str(req, "name");
	if (lifecycle_name_check("name", name, err) == -1)
		return -1;
	if ((c->name = strdup(name)) == NULL)
		return lc_nomem(err);
	c->origin = "mgmt";
	subject = lifecycle_req_str(req, "subject");
	if ((c->subject = strdup(subject != NULL ? subject : "")) == NULL)
		return lc_nomem(err);
	sans = json_object_get(req, "sans");
	c->sans = json_is_array(sans) ? json_deep_copy(sans) : json_array();
	if (c->sans == NULL)
		return lc_nomem(err);
	if (json_array_size(c->sans) > CA_MAX_SANS) {
		common_error_set(err, COMMON_E_INVALID,
		    "field \"sans\" has more than %d entries", CA_MAX_SANS);
		return -1;
	}
	if (c->mode != LC_MODE_IMPORTED) {
		ca_id = lifecycle_req_str(req, "ca_id");
		if (!common_id_valid(ca_id) ||
		    strlen(ca_id) >= sizeof(c->req_ca_id)) {
			common_error_set(err, COMMON_E_NOTFOUND,
			    "ca_id: no CA with that id");
			return -1;
		}
		snprintf(c->req_ca_id, sizeof(c->req_ca_id), "%s", ca_id);
		profile = lifecycle_req_str(req, "profile");
		if (ca_profile_parse(profile, &c->profile_id) == -1) {
			common_error_set(err, COMMON_E_INVALID,
			    "field \"profile\" must be tls_server_or_client, "
			    "tls_server, tls_client or code_signing");
			return -1;
		}
		c->profile = ca_profile_name(c->profile_id);
		if (lc_parse_timing(lc, req, true, c, err) == -1)
			return -1;
		/* fail fast, before a key is generated for nothing */
		if (lc_ca_check(lc, NULL, c->req_ca_id, err) == -1)
			return -1;
	}
	if (lc_name_free(lc, NULL, c->name, err) == -1)
		return -1;
	if (common_random_id("cert-", c->cert_id, sizeof(c->cert_id)) == -1)
		return lc_noid(err);
	switch (c->mode) {
	case LC_MODE_MANAGED:
		if (lc_parse_managed(req, c, err) == -1)
			return -1;
		break;
	case LC_MODE_EXTERNAL:
		if (lc_parse_external(req, c, err) == -1)
			return -1;
		break;
	default:
		if (lc_parse_imported(lc, req, c, err) == -1)
			return -1;
		break;
	}
	if (c->key != NULL) {
		if (common_random_id("key-", c->key_id,
		    sizeof(c->key_id)) == -1)
			return lc_noid(err);
		if ((c->sealed = ca_key_seal(lifecycle_ca(lc), c->key)) ==
		    NULL) {
			log_err("lifecycle: certificate %s: sealing the key "
			    "failed", c->cert_id);
			common_error_set(err, COMMON_E_INTERNAL,
			    "cannot seal the private key");
			return -1;
		}
	}
	return 0;
}

/*
 * The id of the pkid CA that issued an imported certificate (issuer name
 * and key identifier match and the signature verifies), into out; ""
 * when none did.
 */
static void
lc_import_issuer(struct lifecycle *lc, struct store_txn *txn, X509 *cert,
    char *out, size_t outlen)
{
	json_t *cas, *rec;
	const char *pem, *id;
	X509 *ca;
	size_t i;

	out[0] = '\0';
	if ((cas = ca_list(lifecycle_ca(lc), txn)) == NULL)
		return;
	json_array_foreach(cas, i, rec) {
		pem = lc_str(rec, "certificate");
		id = lc_str(rec, "id");
		if (pem == NULL || id == NULL ||
		    (ca = common_x509_from_pem(pem, strlen(pem))) == NULL)
			continue;
		if (X509_check_issued(ca, cert) == X509_V_OK &&
		    X509_verify(cert, X509_get0_pubkey(ca)) == 1)
			snprintf(out, outlen, "%s", id);
		X509_free(ca);
		if (out[0] != '\0')
			break;
	}
	ERR_clear_error();
	json_decref(cas);
}

/* The "renewal" object of a new entry: its rule (days before notAfter
 * or a share of the lifetime) and, for managed ones, reuse_key; null
 * when the certificate's ACME or EST client renews it. */
static json_t *
lc_renewal_json(const struct lc_create *c)
{
	json_t *r;
	int rc = 0;

	if (c->client_renews)
		return json_null();
	if ((r = json_object()) == NULL)
		return NULL;
	if (c->renew_at_fraction > 0)
		rc |= json_object_set_new(r, "renew_at_fraction",
		    json_real(c->renew_at_fraction));
	else
		rc |= json_object_set_new(r, "renew_before_days",
		    lc_json_days(c->renew_before_days));
	if (c->mode == LC_MODE_MANAGED)
		rc |= json_object_set_new(r, "reuse_key",
		    json_boolean(c->reuse_key));
	if (rc != 0) {
		json_decref(r);
		return NULL;
	}
	return r;
}

/* The certificate record of a new entry whose version 1 is v. */
static json_t *
lc_cert_record(const struct lc_create *c, const json_t *v)
{
	char now[LIFECYCLE_TIME_MAX];
	json_t *crec, *renewal;

	if ((renewal = lc_renewal_json(c)) == NULL)
		return NULL;
	common_time_rfc3339(common_now(), now, sizeof(now));
	crec = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:O, s:o,"
	    " s:o, s:o, s:i, s:i, s:s, s:s, s:b, s:n}",
	    "id", c->cert_id, "name", c->final_name,
	    "mode", lc_mode_names[c->mode], "origin", c->origin,
	    "ca_id", c->ca_id[0] != '\0' ? json_string(c->ca_id) : json_null(),
	    "profile", c->profile != NULL ? json_string(c->profile) :
	    json_null(),
	    "subject", c->subject, "sans", c->sans,
	    "key_algorithm", c->key_alg != NULL ? json_string(c->key_alg) :
	    json_null(),
	    "validity_days", lc_json_days(c->validity_days),
	    "renewal", renewal,
	    "current_version", 0, "latest_version", 0,
	    "created_at", now, "state", "active", "renewal_due", 0,
	    "deletion");
	if (crec != NULL && lc_cert_set_current(crec, v) == -1) {
		json_decref(crec);
		crec = NULL;
	}
	return crec;
}

/*
 * Picks the name of a new entry inside txn: the requested one must be
 * free; a derived one that is taken gets the certificate id appended.
 */
static int
lc_pick_name(struct lc_create *c, struct store_txn *txn,
    struct common_error *err)
{
	json_t *rec;

	snprintf(c->final_name, sizeof(c->final_name), "%s", c->name);
	if (!c->derived_name)
		return lc_name_free(c->lc, txn, c->final_name, err);
	if ((rec = store_cert_by_name(lifecycle_store(c->lc), txn,
	    c->final_name)) == NULL)
		return 0;
	json_decref(rec);
	snprintf(c->final_name, sizeof(c->final_name), "%.*s (%s)",
	    (int)(LIFECYCLE_NAME_MAX - strlen(c->cert_id) - 3), c->name,
	    c->cert_id);
	return lc_name_free(c->lc, txn, c->final_name, err);
}

/*
 * The creation transaction: signing (or, for imports, the issuer
 * lookup), name, key, version 1, certificate record, audit. A name that
 * is taken aborts it after the signing (the certificate is not stored).
 * Retry-safe: what
 * it hands back (c->out, c->ca_id, c->final_name) is reset first.
 */
static int
lc_create_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_create *c = arg;
	struct lifecycle *lc = c->lc;
	struct lc_sign s;
	char *bundle = NULL;
	const char *chain;
	json_t *v = NULL, *crec = NULL;
	int rc = -1;

	json_decref(c->out);
	c->out = NULL;
	c->ca_id[0] = '\0';
	if (c->mode == LC_MODE_IMPORTED) {
		lc_import_issuer(lc, txn, c->cert, c->ca_id, sizeof(c->ca_id));
		chain = c->chain_pem;
		if (chain == NULL && c->ca_id[0] != '\0' &&
		    (bundle = ca_bundle_pem(lifecycle_ca(lc), txn, c->ca_id,
		    err)) == NULL)
			goto out;
		if (chain == NULL)
			chain = bundle;
		v = lc_version_new(c->cert_id, 1, NULL, c->cert, chain,
		    c->key_id, NULL, NULL, err);
	} else {
		snprintf(c->ca_id, sizeof(c->ca_id), "%s", c->req_ca_id);
		memset(&s, 0, sizeof(s));
		s.ca_id = c->ca_id;
		s.cert_id = c->cert_id;
		s.version = 1;
		s.pubkey = c->pubkey;
		s.subject = c->subject;
		s.sans = c->sans;
		s.profile = c->profile_id;
		s.validity_days = c->validity_days;
		s.origin = c->origin;
		s.key_id = c->key_id[0] != '\0' ? c->key_id : NULL;
		s.csr_pem = c->csr_pem;
		s.pubkey_pem = c->pubkey_pem;
		s.issued = c->issued;
		if ((v = lc_sign_version(lc, txn, &s, err)) == NULL)
			lc_ca_notfound(c->ca_id, err);
	}
	if (v == NULL)
		goto out;
	/*
	 * The name check after the signing: it locks the name index's page
	 * (for writing: the put below writes it) until the commit, and every
	 * creation touches the same few pages of that index, so the shorter
	 * the hold the more creations run side by side.
	 */
	if (lc_pick_name(c, txn, err) == -1)
		goto out;
	if (c->sealed != NULL && store_key_put(txn, c->key_id, c->sealed,
	    strlen(c->sealed)) == -1)
		goto out;
	if (store_version_put(txn, c->cert_id, 1, v) == -1)
		goto out;
	if ((crec = lc_cert_record(c, v)) == NULL) {
		lc_nomem(err);
		goto out;
	}
	if (store_cert_put(txn, c->cert_id, crec) == -1)
		goto out;
	if (lifecycle_audit(txn, c->who, "certificate.create", c->cert_id,
	    "name \"%s\" mode %s origin %s ca %s version 1 serial %s",
	    c->final_name, lc_mode_names[c->mode], c->origin,
	    c->ca_id[0] != '\0' ? c->ca_id : "none", lc_str(v, "serial")) ==
	    -1)
		goto out;
	if ((c->out = lc_cert_view(crec, v)) == NULL) {
		lc_nomem(err);
		goto out;
	}
	rc = 0;
out:
	free(bundle);
	json_decref(crec);
	json_decref(v);
	return rc;
}

/*
 * Creates a certificate (managed, external or imported) from a
 * management-API request. Returns the certificate record with "current"
 * (new reference) or NULL with err; nothing is stored on refusal.
 */
json_t *
lifecycle_cert_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err)
{
	struct lc_create c;
	json_t *res = NULL;

	memset(&c, 0, sizeof(c));
	c.lc = lc;
	c.who = who;
	if (lc_create_parse(lc, req, &c, err) == -1)
		goto out;
	/* a name the caller chose and that is taken: refused before the
	 * signing (the transaction checks again) */
	if (!c.derived_name && lc_name_free(lc, NULL, c.name, err) == -1)
		goto out;
	if (lifecycle_txn_run(lc, lc_create_txn, &c, err) == -1)
		goto out;
	res = c.out;	/* steal */
	c.out = NULL;
out:
	lc_create_free(&c);
	return res;
}

/* ---- issuance for protocol doors ---- */

/*
 * A name for an entry the caller did not name: the first SAN, else the
 * subject, made printable and short enough to take an id suffix.
 */
static char *
lc_derive_name(const struct lifecycle_issue_req *req)
{
	const char *base = LC_NAME_FALLBACK;
	size_t i, n, max = LIFECYCLE_NAME_MAX - LIFECYCLE_ID_MAX;
	char *out;

	if (req->nsans > 0 && req->sans[0] != NULL && *req->sans[0] != '\0')
		base = req->sans[0];
	else if (req->subject != NULL && *req->subject != '\0')
		base = req->subject;
	n = strlen(base) < max ? strlen(base) : max;
	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		out[i] = (unsigned char)base[i] < 0x20 ||
		    (unsigned char)base[i] > 0x7e ? '?' : base[i];
	out[n] = '\0';
	return out;
}

/* Validates a protocol door's issuance request into c. */
static int
lc_issue_parse(struct lifecycle *lc, const struct lifecycle_issue_req *req,
    struct lc_create *c, struct common_error *err)
{
	enum ca_key_alg alg;
	size_t i;

	if (req == NULL || req->pubkey == NULL || (req->nsans > 0 &&
	    req->sans == NULL)) {
		common_error_set(err, COMMON_E_INVALID,
		    "issuance request without a public key");
		return -1;
	}
	if (req->ca_id == NULL || !common_id_valid(req->ca_id) ||
	    strlen(req->ca_id) >= sizeof(c->req_ca_id)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "ca_id: no CA with that id");
		return -1;
	}
	snprintf(c->req_ca_id, sizeof(c->req_ca_id), "%s", req->ca_id);
	if (req->nsans > CA_MAX_SANS) {
		common_error_set(err, COMMON_E_INVALID,
		    "more than %d SANs", CA_MAX_SANS);
		return -1;
	}
	if ((unsigned)req->profile >= CA_PROFILE__MAX) {
		common_error_set(err, COMMON_E_INVALID, "unknown profile");
		return -1;
	}
	c->profile_id = req->profile;
	c->profile = ca_profile_name(req->profile);
	c->validity_days = req->validity_days > 0 ? req->validity_days :
	    lc_default_validity(lc, c->profile);
	if (c->validity_days > CA_MAX_VALIDITY_DAYS) {
		common_error_set(err, COMMON_E_INVALID,
		    "validity must be <= %g days", CA_MAX_VALIDITY_DAYS);
		return -1;
	}
	c->origin = req->origin != NULL ? req->origin : "mgmt";
	if (strcmp(c->origin, "mgmt") != 0 && strcmp(c->origin, "acme") != 0 &&
	    strcmp(c->origin, "est") != 0) {
		common_error_set(err, COMMON_E_INVALID,
		    "origin must be mgmt, acme or est");
		return -1;
	}
	c->mode = LC_MODE_EXTERNAL;
	c->client_renews = lc_client_renews(c->origin);
	if (!c->client_renews)
		lc_default_renewal(lc, c);
	if ((c->subject = strdup(req->subject != NULL ? req->subject : "")) ==
	    NULL || (c->sans = json_array()) == NULL)
		return lc_nomem(err);
	for (i = 0; i < req->nsans; i++) {
		if (req->sans[i] == NULL) {
			common_error_set(err, COMMON_E_INVALID, "empty SAN");
			return -1;
		}
		if (json_array_append_new(c->sans,
		    json_string(req->sans[i])) == -1) {
			common_error_set(err, COMMON_E_INVALID,
			    "SAN %zu is not UTF-8", i + 1);
			return -1;
		}
	}
	if (req->name != NULL) {
		if (lifecycle_name_check("name", req->name, err) == -1)
			return -1;
		c->name = strdup(req->name);
		c->derived_name = req->name_is_hint;
	} else {
		c->name = lc_derive_name(req);
		c->derived_name = true;
	}
	if (c->name == NULL)
		return lc_nomem(err);
	c->pubkey = req->pubkey;
	c->key_alg = ca_key_alg_of(req->pubkey, &alg) == 0 ?
	    ca_key_alg_name(alg) : NULL;
	c->pubkey_pem = req->spki != NULL ? common_spki_to_pem(req->spki) :
	    common_pubkey_to_pem(req->pubkey);
	if (c->pubkey_pem == NULL)
		return lc_nomem(err);
	c->issued = req->issued;
	c->mode = LC_MODE_EXTERNAL;
	return 0;
}

/*
 * Issuance into an existing external entry: version n+1 becomes current
 * and the record takes the new request's names, profile and validity.
 */
static int
lc_issue_add_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_change *ch = arg;
	const struct lc_create *c = ch->issue;
	struct lc_sign s;
	json_t *crec = NULL, *v = NULL;
	const char *mode;
	int rc = -1;

	json_decref(ch->out);
	ch->out = NULL;
	if ((crec = store_cert_get(store_txn_store(txn), txn, ch->id)) ==
	    NULL) {
		common_error_set(err, COMMON_E_NOTFOUND, "no certificate %s",
		    ch->id);
		goto out;
	}
	mode = lc_str(crec, "mode");
	if (mode == NULL ||
	    strcmp(mode, lc_mode_names[LC_MODE_EXTERNAL]) != 0) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "certificate %s is %s: only external certificates take "
		    "keys from outside", ch->id, mode != NULL ? mode : "?");
		goto out;
	}
	memset(&s, 0, sizeof(s));
	s.ca_id = c->req_ca_id;
	s.cert_id = ch->id;
	s.version = lc_uint(crec, "latest_version") + 1;
	s.pubkey = c->pubkey;
	s.subject = c->subject;
	s.sans = c->sans;
	s.profile = c->profile_id;
	s.validity_days = c->validity_days;
	s.origin = c->origin;
	s.pubkey_pem = c->pubkey_pem;
	s.issued = c->issued;
	if ((v = lc_sign_version(ch->lc, txn, &s, err)) == NULL) {
		lc_ca_notfound(c->req_ca_id, err);
		goto out;
	}
	if (json_object_set_new(crec, "ca_id", json_string(c->req_ca_id)) ||
	    json_object_set_new(crec, "subject", json_string(c->subject)) ||
	    json_object_set(crec, "sans", c->sans) ||
	    json_object_set_new(crec, "profile", json_string(c->profile)) ||
	    json_object_set_new(crec, "key_algorithm", c->key_alg != NULL ?
	    json_string(c->key_alg) : json_null()) ||
	    json_object_set_new(crec, "validity_days",
	    lc_json_days(c->validity_days))) {
		lc_nomem(err);
		goto out;
	}
	if (lc_version_advance(txn, crec, v, err) == -1)
		goto out;
	if (lifecycle_audit(txn, ch->who, "certificate.renew", ch->id,
	    "origin %s ca %s version %u serial %s", c->origin, c->req_ca_id,
	    s.version, lc_str(v, "serial")) == -1)
		goto out;
	if (lc_history_prune(ch->lc, txn, ch->id, s.version, ch->who,
	    err) == -1)
		goto out;
	if ((ch->out = lc_version_view(v, true)) == NULL) {
		lc_nomem(err);
		goto out;
	}
	rc = 0;
out:
	json_decref(v);
	json_decref(crec);
	return rc;
}

/*
 * Issues for a protocol door inside the caller's txn: a new external
 * inventory entry, or version n+1 of req->cert_id. Retry-safe: every
 * call starts from scratch (err cleared, request parsed again). A
 * refusal (any code but COMMON_E_INTERNAL) leaves txn without a write,
 * so the caller may record its own verdict and commit; after an internal
 * error it must not commit. Returns the version record with
 * "certificate" and "chain" (new reference) or NULL with err.
 */
json_t *
lifecycle_issue_txn(struct lifecycle *lc, struct store_txn *txn,
    const struct lifecycle_issue_req *req, const char *who,
    struct common_error *err)
{
	struct common_error e;
	struct lc_create c;
	struct lc_change ch;
	json_t *res = NULL;

	common_error_clear(err);
	common_error_clear(&e);
	memset(&c, 0, sizeof(c));
	memset(&ch, 0, sizeof(ch));
	c.lc = lc;
	c.who = who;
	if (req != NULL && req->issued != NULL) {
		X509_free(*req->issued);
		*req->issued = NULL;
	}
	if (lc == NULL || txn == NULL) {
		log_err("lifecycle: issue: no context or no transaction");
		common_error_set(&e, COMMON_E_INTERNAL,
		    "issuance outside a transaction");
		goto out;
	}
	if (store_txn_failed(txn)) {
		common_error_set(&e, COMMON_E_INTERNAL,
		    "store operation failed");
		goto out;
	}
	if (lc_issue_parse(lc, req, &c, &e) == -1)
		goto out;
	if (req->cert_id != NULL) {
		if (!common_id_valid(req->cert_id)) {
			common_error_set(&e, COMMON_E_NOTFOUND,
			    "certificate id is not valid");
			goto out;
		}
		ch.lc = lc;
		ch.who = who;
		ch.id = req->cert_id;
		ch.issue = &c;
		if (lc_issue_add_txn(txn, &ch, &e) == 0) {
			res = ch.out;	/* steal */
			ch.out = NULL;
		}
	} else {
		if (common_random_id("cert-", c.cert_id,
		    sizeof(c.cert_id)) == -1) {
			lc_noid(&e);
			goto out;
		}
		if (lc_create_txn(txn, &c, &e) == 0 && (res = json_incref(
		    json_object_get(c.out, "current"))) == NULL)
			lc_nomem(&e);
	}
	/* A failed store operation looks like "not found" to the code
	 * above: report it as what it is. */
	if (store_txn_failed(txn)) {
		json_decref(res);
		res = NULL;
		common_error_clear(&e);
		common_error_set(&e, COMMON_E_INTERNAL,
		    "store operation failed");
	}
out:
	if (res == NULL)
		common_error_set(err, e.code != COMMON_E_NONE ? e.code :
		    COMMON_E_INTERNAL, "%s", e.code != COMMON_E_NONE ? e.msg :
		    "internal error");
	if (res == NULL && req != NULL && req->issued != NULL) {
		X509_free(*req->issued);
		*req->issued = NULL;
	}
	json_decref(ch.out);
	lc_create_free(&c);
	return res;
}

struct lc_issue_call {
	struct lifecycle			*lc;
	const struct lifecycle_issue_req	*req;
	const char				*who;
	json_t					*out;
};

static int
lc_issue_call_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_issue_call *ic = arg;

	json_decref(ic->out);
	ic->out = lifecycle_issue_txn(ic->lc, txn, ic->req, ic->who, err);
	return ic->out != NULL ? 0 : -1;
}

/* lifecycle_issue_txn in a transaction of its own. */
json_t *
lifecycle_issue(struct lifecycle *lc, const struct lifecycle_issue_req *req,
    const char *who, struct common_error *err)
{
	struct lc_issue_call ic = { lc, req, who, NULL };
	json_t *res = NULL;

	if (lifecycle_txn_run(lc, lc_issue_call_txn, &ic, err) == 0) {
		res = ic.out;	/* steal */
		ic.out = NULL;
	}
	json_decref(ic.out);
	return res;
}

/* ---- queries ---- */

/* The certificate record of id, or NULL with NOTFOUND. */
static json_t *
lc_cert_load(struct lifecycle *lc, struct store_txn *txn, const char *id,
    struct common_error *err)
{
	json_t *crec = NULL;

	if (id == NULL || !common_id_valid(id))
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate id is not valid");
	else if ((crec = store_cert_get(lifecycle_store(lc), txn, id)) ==
	    NULL)
		common_error_set(err, COMMON_E_NOTFOUND, "no certificate %s",
		    id);
	return crec;
}

json_t *
lifecycle_cert_get(struct lifecycle *lc, const char *id,
    struct common_error *err)
{
	json_t *crec, *v = NULL, *res = NULL;
	unsigned n;

	if ((crec = lc_cert_load(lc, NULL, id, err)) == NULL)
		goto out;
	if ((n = lc_uint(crec, "current_version")) != 0)
		v = store_version_get(lifecycle_store(lc), NULL, id, n);
	if ((res = lc_cert_view(crec, v)) == NULL)
		lc_nomem(err);
out:
	json_decref(v);
	json_decref(crec);
	return res;
}

json_t *
lifecycle_versions(struct lifecycle *lc, const char *id,
    struct common_error *err)
{
	json_t *crec, *all = NULL, *list = NULL, *res = NULL, *v, *view;
	size_t i;

	if ((crec = lc_cert_load(lc, NULL, id, err)) == NULL)
		goto out;
	if ((all = store_version_list(lifecycle_store(lc), NULL, id)) ==
	    NULL || (list = json_array()) == NULL) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "could not list the versions of %s", id);
		goto out;
	}
	json_array_foreach(all, i, v) {
		if ((view = lc_version_view(v, false)) == NULL ||
		    json_array_append_new(list, view) == -1) {
			lc_nomem(err);
			goto out;
		}
	}
	if ((res = json_pack("{s:O}", "versions", list)) == NULL)
		lc_nomem(err);
out:
	json_decref(list);
	json_decref(all);
	json_decref(crec);
	return res;
}

/* Adds "private_key" (PKCS#8 PEM) of version v to out. 0 or -1 with err. */
static int
lc_add_private_key(struct lifecycle *lc, const json_t *crec,
    const json_t *v, json_t *out, struct common_error *err)
{
	const char *key_id = lc_str(v, "key_id"), *mode = lc_str(crec, "mode");
	unsigned char *blob = NULL;
	EVP_PKEY *key = NULL;
	char *pem = NULL;
	size_t len = 0;
	int rc = -1;

	if (mode != NULL && strcmp(mode, lc_mode_names[LC_MODE_EXTERNAL]) ==
	    0) {
		common_error_set(err, COMMON_E_FORBIDDEN, "certificate %s has "
		    "no private key in pkid (mode external)",
		    lc_str(crec, "id"));
		goto out;
	}
	if (json_is_true(json_object_get(v, "pruned"))) {
		common_error_set(err, COMMON_E_CONFLICT, "version %u of "
		    "certificate %s was pruned (lifecycle.history_limit): its "
		    "private key is gone", lc_uint(v, "version"),
		    lc_str(crec, "id"));
		goto out;
	}
	if (key_id == NULL || store_key_get(lifecycle_store(lc), NULL, key_id,
	    &blob, &len) == -1) {
		log_err("lifecycle: certificate %s version %u: key %s is "
		    "missing", lc_str(crec, "id"), lc_uint(v, "version"),
		    key_id != NULL ? key_id : "(none)");
		common_error_set(err, COMMON_E_INTERNAL,
		    "the private key of this version is missing");
		goto out;
	}
	if ((key = ca_key_unseal(lifecycle_ca(lc), (const char *)blob,
	    len)) == NULL || (pem = common_privkey_to_pem(key)) == NULL) {
		log_err("lifecycle: certificate %s: key %s cannot be "
		    "unsealed", lc_str(crec, "id"), key_id);
		common_error_set(err, COMMON_E_INTERNAL,
		    "the private key cannot be unsealed");
		goto out;
	}
	if (json_object_set_new(out, "private_key", json_string(pem)) == -1) {
		lc_nomem(err);
		goto out;
	}
	rc = 0;
out:
	if (pem != NULL) {
		OPENSSL_cleanse(pem, strlen(pem));
		free(pem);
	}
	EVP_PKEY_free(key);
	free(blob);
	return rc;
}

json_t *
lifecycle_version_get(struct lifecycle *lc, const char *id, unsigned n,
    bool with_key, struct common_error *err)
{
	json_t *crec, *v = NULL, *res = NULL;

	if ((crec = lc_cert_load(lc, NULL, id, err)) == NULL)
		goto out;
	if ((v = store_version_get(lifecycle_store(lc), NULL, id, n)) ==
	    NULL) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate %s has no version %u", id, n);
		goto out;
	}
	if ((res = lc_version_view(v, true)) == NULL) {
		lc_nomem(err);
		goto out;
	}
	if (with_key && lc_add_private_key(lc, crec, v, res, err) == -1) {
		json_decref(res);
		res = NULL;
	}
out:
	json_decref(v);
	json_decref(crec);
	return res;
}

/* ---- renewal ---- */

/*
 * The public key an external certificate's versions were signed for:
 * from the newest version's stored CSR, else its stored public key.
 * NULL when none is kept.
 */
static EVP_PKEY *
lc_external_key(struct store_txn *txn, const char *id, const char **csr_pem,
    const char **pubkey_pem, json_t **versions)
{
	const char *csr, *pub;
	X509_REQ *req;
	EVP_PKEY *key = NULL;
	size_t i;

	*csr_pem = *pubkey_pem = NULL;
	if ((*versions = store_version_list(store_txn_store(txn), txn,
	    id)) == NULL)
		return NULL;
	for (i = json_array_size(*versions); i > 0 && key == NULL; i--) {
		const json_t *v = json_array_get(*versions, i - 1);

		csr = lc_str(v, "csr");
		pub = lc_str(v, "public_key");
		if (csr != NULL && (req = common_csr_from_pem(csr,
		    strlen(csr))) != NULL) {
			if ((key = X509_REQ_get_pubkey(req)) != NULL)
				*csr_pem = csr;
			X509_REQ_free(req);
		}
		if (key == NULL && pub != NULL &&
		    (key = lifecycle_pubkey_from_pem(pub)) != NULL)
			*pubkey_pem = pub;
	}
	ERR_clear_error();
	return key;
}

/* CONFLICT when crec is scheduled for deletion (what = "renew"). */
static int
lc_deletion_refuse(const json_t *crec, const char *what,
    struct common_error *err)
{
	if (!lc_streq(lc_str(crec, "state"), "pending_deletion"))
		return 0;
	common_error_set(err, COMMON_E_CONFLICT, "certificate %s is scheduled "
	    "for deletion at %s: cancel the deletion to %s it",
	    lc_str(crec, "id"), lc_str(json_object_get(crec, "deletion"),
	    "execute_at") != NULL ? lc_str(json_object_get(crec, "deletion"),
	    "execute_at") : "?", what);
	return -1;
}

/*
 * Stores the renewed version v (stage "pending") of crec inside txn. An
 * older version still pending is superseded (it becomes "previous").
 * Without associations v becomes current at once and the old current
 * previous; with associations it stays pending until promoted. Either
 * way the renewal state is cleared. *nassoc gets the association count.
 */
static int
lc_renew_store(struct store_txn *txn, json_t *crec, json_t *v,
    size_t *nassoc, struct common_error *err)
{
	const char *id = lc_str(crec, "id");
	unsigned n = lc_uint(v, "version"), last = lc_uint(crec,
	    "latest_version");
	json_t *assocs = NULL, *old = NULL;
	int rc = -1;

	if (last != 0 && last != lc_uint(crec, "current_version") &&
	    (old = store_version_get(store_txn_store(txn), txn, id, last)) !=
	    NULL && lc_streq(lc_str(old, "stage"), "pending") &&
	    (json_object_set_new(old, "stage", json_string("previous")) ==
	    -1 || store_version_put(txn, id, last, old) == -1))
		goto out;
	if ((assocs = store_assoc_by_cert(store_txn_store(txn), txn, id)) ==
	    NULL)
		goto out;
	*nassoc = json_array_size(assocs);
	if (*nassoc == 0) {
		if (json_object_set_new(v, "stage", json_string("current")) ==
		    -1) {
			lc_nomem(err);
			goto out;
		}
		rc = lc_version_advance(txn, crec, v, err);
		goto out;
	}
	if (json_object_set_new(v, "stage", json_string("pending")) == -1 ||
	    json_object_set_new(crec, "latest_version", json_integer(n)) ==
	    -1 || json_object_set_new(crec, "pending_version",
	    json_integer(n)) == -1 ||
	    json_object_set_new(crec, "renewal_due", json_false()) ==
	    -1 || lc_expiry_note(crec, v) == -1) {
		lc_nomem(err);
		goto out;
	}
	json_object_del(crec, "renewal_state");
	if (store_version_put(txn, id, n, v) == -1 ||
	    store_cert_put(txn, id, crec) == -1)
		goto out;
	rc = 0;
out:
	json_decref(old);
	json_decref(assocs);
	return rc;
}

/* The "renewed" notification: the new version, the one it replaces and
 * whether it is in use yet. */
static json_t *
lc_renewed_event(const json_t *crec, const json_t *v, unsigned old,
    const char *old_serial, size_t nassoc)
{
	char detail[LC_DETAIL_MAX];
	json_t *ev;

	if (nassoc > 0)
		snprintf(detail, sizeof(detail), "pending: certificate has %zu "
		    "association%s; promote when deployed", nassoc,
		    nassoc > 1 ? "s" : "");
	else
		snprintf(detail, sizeof(detail), "current: version %u "
		    "replaces version %u", lc_uint(v, "version"), old);
	if ((ev = lifecycle_event_data(crec, v, detail)) == NULL)
		return NULL;
	if (json_object_set_new(ev, "stage", json_string(lc_str(v,
	    "stage"))) == -1 ||
	    json_object_set_new(ev, "previous_version", old != 0 ?
	    json_integer(old) : json_null()) == -1 ||
	    json_object_set_new(ev, "previous_serial", old_serial != NULL ?
	    json_string(old_serial) : json_null()) == -1) {
		json_decref(ev);
		return NULL;
	}
	return ev;
}

/*
 * The renewal transaction: signs version n+1 for the prepared key (or the
 * external certificate's stored request), stores it pending or current
 * (lc_renew_store), audits, prunes the history and prepares the
 * "renewed" notification. Retry-safe: ch->out and ch->event are reset.
 */
static int
lc_renew_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_change *ch = arg;
	struct lc_sign s;
	const char *ca_id, *mode;
	json_t *crec = NULL, *v = NULL, *versions = NULL, *cur = NULL;
	EVP_PKEY *ext = NULL;
	enum lc_mode m;
	unsigned old;
	size_t nassoc = 0;
	int rc = -1;

	json_decref(ch->out);
	ch->out = NULL;
	json_decref(ch->event);
	ch->event = NULL;
	if ((crec = lc_cert_load(ch->lc, txn, ch->id, err)) == NULL)
		goto out;
	mode = lc_str(crec, "mode");
	if (lc_mode_parse(mode, &m) == -1 || m != ch->mode) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "certificate %s changed while renewing", ch->id);
		goto out;
	}
	if (lc_deletion_refuse(crec, "renew", err) == -1)
		goto out;
	if ((ca_id = lc_str(crec, "ca_id")) == NULL) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "certificate %s has no issuing CA", ch->id);
		goto out;
	}
	old = lc_uint(crec, "current_version");
	if (old != 0)
		cur = store_version_get(store_txn_store(txn), txn, ch->id, old);
	if (ch->reused && !lc_streq(lc_str(cur, "key_id"), ch->key_id)) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "certificate %s changed while renewing", ch->id);
		goto out;
	}
	memset(&s, 0, sizeof(s));
	if (m == LC_MODE_MANAGED) {
		s.pubkey = ch->key;
		s.key_id = ch->key_id;
	} else if ((ext = lc_external_key(txn, ch->id, &s.csr_pem,
	    &s.pubkey_pem, &versions)) == NULL) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "certificate %s keeps no request to re-sign", ch->id);
		goto out;
	} else
		s.pubkey = ext;
	if (ca_profile_parse(lc_str(crec, "profile"), &s.profile) == -1) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "certificate %s has no valid profile", ch->id);
		goto out;
	}
	s.ca_id = ca_id;
	s.cert_id = ch->id;
	s.version = lc_uint(crec, "latest_version") + 1;
	s.subject = lc_str(crec, "subject");
	s.sans = json_object_get(crec, "sans");
	s.validity_days = json_number_value(json_object_get(crec,
	    "validity_days"));
	s.origin = lc_str(crec, "origin") != NULL ? lc_str(crec, "origin") :
	    "mgmt";
	if ((v = lc_sign_version(ch->lc, txn, &s, err)) == NULL)
		goto out;
	if (ch->sealed != NULL && store_key_put(txn, ch->key_id, ch->sealed,
	    strlen(ch->sealed)) == -1)
		goto out;
	if (lc_renew_store(txn, crec, v, &nassoc, err) == -1)
		goto out;
	if (lifecycle_audit(txn, ch->who, "certificate.renew", ch->id,
	    "name \"%s\" mode %s ca %s version %u serial %s stage %s key %s",
	    lc_str(crec, "name"), mode, ca_id, s.version, lc_str(v, "serial"),
	    lc_str(v, "stage"), m != LC_MODE_MANAGED ? "of the request" :
	    ch->reused ? "reused" : "new") == -1)
		goto out;
	if (lc_history_prune(ch->lc, txn, ch->id, s.version, ch->who,
	    err) == -1)
		goto out;
	if ((ch->out = lc_version_view(v, true)) == NULL ||
	    (ch->event = lc_renewed_event(crec, v, old, lc_str(cur,
	    "serial"), nassoc)) == NULL) {
		lc_nomem(err);
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(ext);
	json_decref(versions);
	json_decref(cur);
	json_decref(v);
	json_decref(crec);
	return rc;
}

/*
 * The key of the current version of a managed certificate, for a
 * renewal with reuse_key: into ch->key and ch->key_id. -1 when there is
 * none to reuse (no current version, revoked, key missing): the caller
 * then makes a new key.
 */
static int
lc_reuse_key(struct lifecycle *lc, const json_t *crec, struct lc_change *ch)
{
	const char *id = lc_str(crec, "id"), *key_id;
	unsigned n = lc_uint(crec, "current_version");
	unsigned char *blob = NULL;
	size_t len = 0;
	json_t *v = NULL;
	int rc = -1;

	if (n == 0 || (v = store_version_get(lifecycle_store(lc), NULL, id,
	    n)) == NULL)
		goto out;
	/* a revoked key (it may be compromised) is never signed again */
	if (lc_streq(lc_str(v, "stage"), "revoked") ||
	    (key_id = lc_str(v, "key_id")) == NULL ||
	    strlen(key_id) >= sizeof(ch->key_id))
		goto out;
	if (store_key_get(lifecycle_store(lc), NULL, key_id, &blob,
	    &len) == -1 || (ch->key = ca_key_unseal(lifecycle_ca(lc),
	    (const char *)blob, len)) == NULL) {
		log_warn("lifecycle: certificate %s: renewal with reuse_key: "
		    "key %s of version %u cannot be read; making a new key",
		    id, key_id, n);
		goto out;
	}
	snprintf(ch->key_id, sizeof(ch->key_id), "%s", key_id);
	ch->reused = true;
	rc = 0;
out:
	if (blob != NULL) {
		OPENSSL_cleanse(blob, len);
		free(blob);
	}
	json_decref(v);
	return rc;
}

/*
 * Renews a certificate: for managed ones a new key (generated and sealed
 * before the transaction) or, with renewal.reuse_key, the current one;
 * for external ones the stored request's key. The new version is pending
 * and becomes current at once when the certificate has no associations.
 * "renewed" is emitted after commit. Returns the new version with PEMs,
 * or NULL with err.
 */
json_t *
lifecycle_cert_renew(struct lifecycle *lc, const char *id, const char *who,
    struct common_error *err)
{
	struct lc_change ch;
	enum ca_key_alg alg;
	json_t *crec, *res = NULL;

	memset(&ch, 0, sizeof(ch));
	ch.lc = lc;
	ch.who = who;
	ch.id = id;
	if ((crec = lc_cert_load(lc, NULL, id, err)) == NULL)
		goto out;
	if (lc_mode_parse(lc_str(crec, "mode"), &ch.mode) == -1) {
		common_error_set(err, COMMON_E_INTERNAL,
		    "certificate %s has no valid mode", id);
		goto out;
	}
	if (ch.mode == LC_MODE_IMPORTED) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "imported certificates are renewed by their issuer");
		goto out;
	}
	if (lc_deletion_refuse(crec, "renew", err) == -1)
		goto out;
	if (ch.mode == LC_MODE_MANAGED && json_is_true(json_object_get(
	    json_object_get(crec, "renewal"), "reuse_key")))
		(void)lc_reuse_key(lc, crec, &ch);
	if (ch.mode == LC_MODE_MANAGED && !ch.reused) {
		if (ca_key_alg_parse(lc_str(crec, "key_algorithm"),
		    &alg) == -1) {
			common_error_set(err, COMMON_E_INTERNAL,
			    "certificate %s has no valid key algorithm", id);
			goto out;
		}
		if ((ch.key = ca_key_generate(alg)) == NULL ||
		    (ch.sealed = ca_key_seal(lifecycle_ca(lc), ch.key)) ==
		    NULL || common_random_id("key-", ch.key_id,
		    sizeof(ch.key_id)) == -1) {
			log_err("lifecycle: certificate %s: new %s key for "
			    "renewal failed", id, ca_key_alg_name(alg));
			common_error_set(err, COMMON_E_INTERNAL,
			    "key generation failed");
			goto out;
		}
	}
	if (lifecycle_txn_run(lc, lc_renew_txn, &ch, err) == -1)
		goto out;
	lifecycle_notify(lc, LIFECYCLE_EV_RENEWED, ch.event);
	/* pending because of associations: deploy it (deploy.c) */
	if (lc_streq(lc_str(ch.out, "stage"), "pending"))
		lifecycle_deploy_request(lc, id, lc_uint(ch.out, "version"));
	res = ch.out;	/* steal */
	ch.out = NULL;
out:
	json_decref(ch.out);
	json_decref(ch.event);
	free(ch.sealed);
	EVP_PKEY_free(ch.key);
	json_decref(crec);
	return res;
}

/* ---- promotion ---- */

/* The promotion transaction (see lifecycle_version_promote). */
static int
lc_promote_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_change *ch = arg;
	char stage[LC_STAGE_MAX];
	json_t *crec = NULL, *v = NULL;
	unsigned old;
	int rc = -1;

	json_decref(ch->out);
	ch->out = NULL;
	if ((crec = lc_cert_load(ch->lc, txn, ch->id, err)) == NULL)
		goto out;
	if ((v = store_version_get(store_txn_store(txn), txn, ch->id,
	    ch->n)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate %s has no version %u", ch->id, ch->n);
		goto out;
	}
	/* a copy: the record's string goes when the stage changes */
	snprintf(stage, sizeof(stage), "%s", lc_str(v, "stage") != NULL ?
	    lc_str(v, "stage") : "?");
	old = lc_uint(crec, "current_version");
	if (lc_streq(stage, "current") && old == ch->n) {
		if ((ch->out = lc_version_view(v, false)) == NULL)
			lc_nomem(err);
		rc = ch->out != NULL ? 0 : -1;
		goto out;
	}
	if (lc_deletion_refuse(crec, "promote", err) == -1)
		goto out;
	if (!lc_streq(stage, "pending") && !lc_streq(stage, "previous")) {
		common_error_set(err, COMMON_E_CONFLICT, "version %u of "
		    "certificate %s is %s: only pending or previous versions "
		    "can be promoted", ch->n, ch->id, stage);
		goto out;
	}
	if (json_is_true(json_object_get(v, "pruned"))) {
		common_error_set(err, COMMON_E_CONFLICT, "version %u of "
		    "certificate %s was pruned (lifecycle.history_limit)",
		    ch->n, ch->id);
		goto out;
	}
	if (json_integer_value(json_object_get(v, "not_after_epoch")) <=
	    (json_int_t)common_now()) {
		common_error_set(err, COMMON_E_CONFLICT, "version %u of "
		    "certificate %s expired at %s", ch->n, ch->id,
		    lc_str(v, "not_after"));
		goto out;
	}
	if (json_object_set_new(v, "stage", json_string("current")) == -1) {
		lc_nomem(err);
		goto out;
	}
	/* the old current becomes previous, v current, crec follows */
	if (lc_version_advance(txn, crec, v, err) == -1)
		goto out;
	if (lifecycle_audit(txn, ch->who, "version.promote", ch->id,
	    "version %u (was %s, serial %s) replaces version %u", ch->n,
	    stage, lc_str(v, "serial"), old) == -1)
		goto out;
	if (lc_history_prune(ch->lc, txn, ch->id, lc_uint(crec,
	    "latest_version"), ch->who, err) == -1)
		goto out;
	if ((ch->out = lc_version_view(v, false)) == NULL) {
		lc_nomem(err);
		goto out;
	}
	rc = 0;
out:
	json_decref(v);
	json_decref(crec);
	return rc;
}

json_t *
lifecycle_version_promote(struct lifecycle *lc, const char *id, unsigned n,
    const char *who, struct common_error *err)
{
	struct lc_change ch;
	json_t *res = NULL;

	memset(&ch, 0, sizeof(ch));
	ch.lc = lc;
	ch.who = who;
	ch.id = id;
	ch.n = n;
	if (id == NULL || !common_id_valid(id)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate id is not valid");
		goto out;
	}
	if (lifecycle_txn_run(lc, lc_promote_txn, &ch, err) == -1)
		goto out;
	res = ch.out;	/* steal */
	ch.out = NULL;
out:
	json_decref(ch.out);
	return res;
}

/* ---- revocation ---- */

static int
lc_revoke_txn(struct store_txn *txn, void *arg, struct common_error *err)
{
	struct lc_change *ch = arg;
	char when[LIFECYCLE_TIME_MAX], detail[LC_DETAIL_MAX];
	const char *serial, *stage, *ca_id, *mode;
	json_t *crec = NULL, *v = NULL;
	time_t now = common_now();
	int rc = -1;

	json_decref(ch->out);
	ch->out = NULL;
	json_decref(ch->event);
	ch->event = NULL;
	if ((crec = lc_cert_load(ch->lc, txn, ch->id, err)) == NULL)
		goto out;
	if ((v = store_version_get(store_txn_store(txn), txn, ch->id,
	    ch->n)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate %s has no version %u", ch->id, ch->n);
		goto out;
	}
	mode = lc_str(crec, "mode");
	if (mode != NULL && strcmp(mode, lc_mode_names[LC_MODE_IMPORTED]) ==
	    0) {
		common_error_set(err, COMMON_E_CONFLICT, "pkid did not issue "
		    "certificate %s (mode imported): revoke it with its "
		    "issuer", ch->id);
		goto out;
	}
	serial = lc_str(v, "serial");
	stage = lc_str(v, "stage");
	if (stage != NULL && strcmp(stage, "revoked") == 0) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "version %u of certificate %s is already revoked", ch->n,
		    ch->id);
		goto out;
	}
	if (serial == NULL || ca_revoke(lifecycle_ca(ch->lc), txn, serial,
	    ch->reason, now, err) == -1)
		goto out;
	common_time_rfc3339(now, when, sizeof(when));
	if (json_object_set_new(v, "stage", json_string("revoked")) ||
	    json_object_set_new(v, "revoked_at", json_string(when)) ||
	    json_object_set_new(v, "revocation_reason",
	    json_string(ca_reason_name(ch->reason)))) {
		lc_nomem(err);
		goto out;
	}
	if (store_version_put(txn, ch->id, ch->n, v) == -1)
		goto out;
	if (lc_uint(crec, "current_version") == ch->n) {
		if (json_object_set_new(crec, "stage",
		    json_string("revoked")) == -1 ||
		    store_cert_put(txn, ch->id, crec) == -1)
			goto out;
	}
	if (lifecycle_audit(txn, ch->who, "version.revoke", ch->id,
	    "version %u serial %s reason %s", ch->n, serial,
	    ca_reason_name(ch->reason)) == -1)
		goto out;
	ca_id = lc_str(v, "ca_id") != NULL ? lc_str(v, "ca_id") :
	    lc_str(crec, "ca_id");
	snprintf(detail, sizeof(detail), "version %u revoked: %s", ch->n,
	    ca_reason_name(ch->reason));
	if ((ch->out = lc_version_view(v, false)) == NULL ||
	    json_object_set_new(ch->out, "ca_id", ca_id != NULL ?
	    json_string(ca_id) : json_null()) == -1 ||
	    (ch->event = lifecycle_event_data(crec, v, detail)) == NULL ||
	    json_object_set_new(ch->event, "reason",
	    json_string(ca_reason_name(ch->reason))) == -1) {
		lc_nomem(err);
		goto out;
	}
	rc = 0;
out:
	json_decref(v);
	json_decref(crec);
	return rc;
}

/*
 * What both revocations (by version, by serial) share once the target is
 * checked: refuses an unknown reason, runs fn(arg) in one transaction,
 * which leaves its answer in *out and the "revoked" event data in *event;
 * after the commit the issuer's CRL is rebuilt soon (the CRL schedule
 * coalesces bursts) and webhooks hear of it. Frees *event; returns *out
 * (stolen) or NULL with err.
 */
static json_t *
lc_revoke_run(struct lifecycle *lc, enum ca_reason reason,
    int (*fn)(struct store_txn *, void *, struct common_error *), void *arg,
    json_t **out, json_t **event, struct common_error *err)
{
	enum ca_reason check;
	const char *ca_id;
	json_t *res = NULL;

	if (ca_reason_parse(ca_reason_name(reason), &check) == -1) {
		common_error_set(err, COMMON_E_INVALID,
		    "unknown revocation reason");
		goto out;
	}
	if (lifecycle_txn_run(lc, fn, arg, err) == -1)
		goto out;
	if ((ca_id = lc_str(*out, "ca_id")) != NULL)
		lifecycle_crl_touch(lc, ca_id);
	if (*event != NULL)
		lifecycle_notify(lc, LIFECYCLE_EV_REVOKED, *event);
	res = *out;	/* steal */
	*out = NULL;
out:
	json_decref(*out);
	*out = NULL;
	json_decref(*event);
	*event = NULL;
	return res;
}

json_t *
lifecycle_version_revoke(struct lifecycle *lc, const char *id, unsigned n,
    enum ca_reason reason, const char *who, struct common_error *err)
{
	struct lc_change ch;

	if (id == NULL || !common_id_valid(id)) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "certificate id is not valid");
		return NULL;
	}
	memset(&ch, 0, sizeof(ch));
	ch.lc = lc;
	ch.who = who;
	ch.id = id;
	ch.n = n;
	ch.reason = reason;
	return lc_revoke_run(lc, reason, lc_revoke_txn, &ch, &ch.out,
	    &ch.event, err);
}

/* ---- by serial (protocol doors: ACME revokeCert, ARI) ---- */

/*
 * Normalises a serial given as hex (any case, leading zeros allowed) to
 * the registry's key: upper-case hex of whole bytes (BN_bn2hex, as
 * common_x509_serial_hex writes it). 0, or -1 when s is no serial.
 */
static int
lc_serial_norm(const char *s, char *out, size_t outlen)
{
	BIGNUM *bn = NULL;
	char *hex = NULL;
	size_t i, n;
	int rc = -1;

	if (s == NULL || (n = strnlen(s, LC_SERIAL_MAX)) == 0 ||
	    n >= LC_SERIAL_MAX)
		goto out;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F')))
			goto out;
	if (BN_hex2bn(&bn, s) != (int)n || BN_is_zero(bn) ||
	    (hex = BN_bn2hex(bn)) == NULL)
		goto out;
	rc = common_path(out, outlen, "%s", hex);
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

struct lc_serial_op {
	struct lifecycle	*lc;
	const char		*who;
	char			 serial[LC_SERIAL_MAX];	/* normalised */
	enum ca_reason		 reason;
	json_t			*out;
	json_t			*event;		/* "revoked" data */
};

/*
 * Revocation by serial in one transaction: the registry row names the
 * inventory version, which is revoked as lifecycle_version_revoke does
 * (registry, version stage, certificate stage when current, audit). A
 * serial whose inventory entry is gone (deleted certificates keep their
 * registry rows) is revoked in the registry alone, with its own audit
 * record.
 */
static int
lc_revoke_serial_txn(struct store_txn *txn, void *arg,
    struct common_error *err)
{
	struct lc_serial_op *op = arg;
	struct lc_change ch;
	const char *status, *cert_id, *ca_id, *vserial;
	json_t *rec = NULL, *v = NULL;
	unsigned n;
	int rc = -1;

	json_decref(op->out);
	op->out = NULL;
	json_decref(op->event);
	op->event = NULL;
	memset(&ch, 0, sizeof(ch));
	if ((rec = store_issued_get(store_txn_store(txn), txn,
	    op->serial)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "no certificate with serial %s was issued", op->serial);
		goto out;
	}
	status = lc_str(rec, "status");
	if (status != NULL && strcmp(status, "revoked") == 0) {
		common_error_set(err, COMMON_E_CONFLICT,
		    "certificate %s is already revoked", op->serial);
		goto out;
	}
	cert_id = lc_str(rec, "cert_id");
	ca_id = lc_str(rec, "ca_id");
	n = lc_uint(rec, "version");
	if (cert_id != NULL && n != 0 && common_id_valid(cert_id))
		v = store_version_get(store_txn_store(txn), txn, cert_id, n);
	if (store_txn_failed(txn))
		goto out;
	vserial = lc_str(v, "serial");
	if (v != NULL && vserial != NULL &&
	    strcmp(vserial, op->serial) != 0) {
		log_warn("lifecycle: serial %s: version %u of certificate %s "
		    "holds serial %s; revoking in the registry only",
		    op->serial, n, cert_id, vserial);
		json_decref(v);
		v = NULL;
	}
	if (v != NULL) {
		ch.lc = op->lc;
		ch.who = op->who;
		ch.id = cert_id;
		ch.n = n;
		ch.reason = op->reason;
		if (lc_revoke_txn(txn, &ch, err) == -1)
			goto out;
		op->event = ch.event;	/* steal */
		ch.event = NULL;
	} else {
		if (ca_revoke(lifecycle_ca(op->lc), txn, op->serial,
		    op->reason, common_now(), err) == -1)
			goto out;
		if (lifecycle_audit(txn, op->who, "serial.revoke", op->serial,
		    "ca %s reason %s (no inventory version)",
		    ca_id != NULL ? ca_id : "?",
		    ca_reason_name(op->reason)) == -1)
			goto out;
		cert_id = NULL;
		if ((op->event = json_pack("{s:n, s:n, s:s, s:o, s:s, s:s}",
		    "certificate_id", "version", "serial", op->serial,
		    "ca_id", ca_id != NULL ? json_string(ca_id) : json_null(),
		    "reason", ca_reason_name(op->reason), "detail",
		    "revoked (no inventory version holds the serial)")) ==
		    NULL) {
			lc_nomem(err);
			goto out;
		}
	}
	op->out = json_pack("{s:s, s:o, s:o, s:o}", "serial", op->serial,
	    "ca_id", ca_id != NULL ? json_string(ca_id) : json_null(),
	    "cert_id", cert_id != NULL ? json_string(cert_id) : json_null(),
	    "version", cert_id != NULL ? json_integer(n) : json_null());
	if (op->out == NULL) {
		lc_nomem(err);
		goto out;
	}
	rc = 0;
out:
	json_decref(ch.out);
	json_decref(ch.event);
	json_decref(v);
	json_decref(rec);
	return rc;
}

/*
 * Revokes the certificate with this serial (hex) and the inventory
 * version that holds it. Returns {"serial", "ca_id", "cert_id",
 * "version"} (new reference; cert_id and version null when no inventory
 * version holds the serial) or NULL with err: NOTFOUND for an unknown
 * serial, CONFLICT when already revoked, INVALID for a bad serial or
 * reason. After commit the issuer's CRL is touched and "revoked" sent.
 */
json_t *
lifecycle_revoke_serial(struct lifecycle *lc, const char *serial,
    enum ca_reason reason, const char *who, struct common_error *err)
{
	struct lc_serial_op op;

	memset(&op, 0, sizeof(op));
	op.lc = lc;
	op.who = who;
	op.reason = reason;
	if (lc_serial_norm(serial, op.serial, sizeof(op.serial)) == -1) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "serial must be 1..%d hex digits", LC_SERIAL_MAX - 1);
		return NULL;
	}
	return lc_revoke_run(lc, reason, lc_revoke_serial_txn, &op, &op.out,
	    &op.event, err);
}

/* notBefore of the base64 DER certificate b64; -1 when unreadable. */
static int
lc_der_not_before(const char *b64, time_t *out)
{
	const unsigned char *p;
	unsigned char *der = NULL;
	size_t len = 0;
	X509 *x = NULL;
	int rc = -1;

	if (b64 == NULL || common_b64_decode(b64, strlen(b64), false, &der,
	    &len) == -1 || len == 0 || len > LONG_MAX)
		goto out;
	p = der;
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL ||
	    p != der + len)
		goto out;
	rc = common_asn1_time(X509_get0_notBefore(x), out);
out:
	ERR_clear_error();
	X509_free(x);
	free(der);
	return rc;
}

/*
 * The registry record of a serial (hex, any case): {"serial", "ca_id",
 * "cert_id", "version", "origin", "not_before" (int; derived from the DER
 * when the row predates it), "not_after" (int), "status", "der" (base64),
 * plus "revoked_at"/"reason" once revoked}. New reference, or NULL with
 * err (NOTFOUND for an unknown or malformed serial).
 */
json_t *
lifecycle_issued_get(struct lifecycle *lc, const char *serial,
    struct common_error *err)
{
	char hex[LC_SERIAL_MAX];
	json_t *rec = NULL, *res = NULL;
	time_t nb;

	if (lc_serial_norm(serial, hex, sizeof(hex)) == -1) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "serial must be 1..%d hex digits", LC_SERIAL_MAX - 1);
		goto out;
	}
	if ((rec = store_issued_get(lifecycle_store(lc), NULL, hex)) == NULL) {
		common_error_set(err, COMMON_E_NOTFOUND,
		    "no certificate with serial %s was issued", hex);
		goto out;
	}
	if (!json_is_integer(json_object_get(rec, "not_before"))) {
		if (lc_der_not_before(lc_str(rec, "der"), &nb) == -1) {
			log_err("lifecycle: serial %s: the registry row holds "
			    "no readable certificate", hex);
			common_error_set(err, COMMON_E_INTERNAL,
			    "the record of serial %s is damaged", hex);
			goto out;
		}
		if (json_object_set_new(rec, "not_before",
		    json_integer((json_int_t)nb)) == -1) {
			lc_nomem(err);
			goto out;
		}
	}
	res = rec;	/* steal */
	rec = NULL;
out:
	json_decref(rec);
	return res;
}
