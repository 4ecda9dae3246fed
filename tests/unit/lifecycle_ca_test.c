/*
 * Unit tests of lifecycle/ca.c: CA renewal through lifecycle (audit,
 * public files and CRLs published after the commit, a failed renewal
 * leaving no key behind), the re-issue of a CA's managed leaves under
 * its new version (revoked ones and other modes left alone), disabling
 * and enabling (renewals of leaves refused meanwhile), and CA deletion:
 * refused with counts, scheduled, cancelled, executed by
 * lifecycle_ca_tick once due (clock moved), or at once.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "lifecycle/lifecycle.h"
#include "tests/unit/test.h"

#define WHO		"token:test"
#define T_PATH_MAX	512
#define T_DAY		86400

static struct store *st;
static struct ca_ctx *ctx;
static struct lifecycle *lc;
static char root_id[64], sub_id[64];

/* ---- helpers ---- */

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t
jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* A CA created and committed; its id goes to id. */
static int
t_ca(const char *name, const char *type, const char *issuer, char *id,
    size_t idlen)
{
	struct ca_create_req req;
	struct common_error err = { 0 };
	struct store_txn *txn;
	json_t *rec;

	memset(&req, 0, sizeof(req));
	req.name = name;
	req.type = type;
	req.issuer_ca_id = issuer;
	req.subject = name;
	req.key_alg = CA_KEY_ECDSA_P256;
	req.validity_days = 365;
	req.path_len = -1;
	txn = store_txn_begin(st);
	if ((rec = ca_create(ctx, txn, &req, &err)) == NULL) {
		fprintf(stderr, "CA %s: %s\n", name, err.msg);
		store_txn_abort(txn);
		return -1;
	}
	snprintf(id, idlen, "%s", jstr(rec, "id"));
	json_decref(rec);
	return store_txn_commit(txn);
}

/* A managed certificate under ca_id; NULL on refusal (err set). */
static json_t *
t_managed(const char *name, const char *ca_id, struct common_error *err)
{
	json_t *req, *res;

	req = json_pack("{s:s, s:s, s:s, s:s, s:[s], s:s, s:i}", "name", name,
	    "mode", "managed", "ca_id", ca_id, "profile", "tls_server",
	    "sans", "leaf.example.com", "key_algorithm", "ECDSA_P256",
	    "validity_days", 30);
	common_error_clear(err);
	res = lifecycle_cert_create(lc, req, WHO, err);
	json_decref(req);
	return res;
}

/* Whether the audit trail holds action on object by who. */
static bool
t_audited(const char *action, const char *object, const char *who)
{
	json_t *a = store_audit_list(st, NULL, 0, 1000), *r;
	bool found = false;
	size_t i;

	json_array_foreach(a, i, r) {
		if (strcmp(jstr(r, "action"), action) == 0 &&
		    strcmp(jstr(r, "object"), object) == 0 &&
		    strcmp(jstr(r, "who"), who) == 0 &&
		    strcmp(jstr(r, "result"), "ok") == 0)
			found = true;
	}
	json_decref(a);
	return found;
}

static bool
t_public(const char *dir, const char *stem, const char *ext)
{
	char path[T_PATH_MAX];

	snprintf(path, sizeof(path), "%s/public/%s/%s.%s", test_tmpdir(), dir,
	    stem, ext);
	return access(path, F_OK) == 0;
}

/* Number of key files in DATA/keys. */
static int
t_key_files(void)
{
	char path[T_PATH_MAX];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/keys", test_tmpdir());
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The certificate of the current version of certificate id. */
static X509 *
t_current_cert(const char *id)
{
	struct common_error err = { 0 };
	json_t *c = lifecycle_cert_get(lc, id, &err), *v;
	const char *pem;
	X509 *x = NULL;

	v = lifecycle_version_get(lc, id, (unsigned)jint(c,
	    "current_version"), false, &err);
	if ((pem = jstr(v, "certificate")) != NULL)
		x = common_x509_from_pem(pem, strlen(pem));
	json_decref(v);
	json_decref(c);
	return x;
}

static json_int_t
t_current_version(const char *id)
{
	struct common_error err = { 0 };
	json_t *c = lifecycle_cert_get(lc, id, &err);
	json_int_t n = jint(c, "current_version");

	json_decref(c);
	return n;
}

/* ---- tests ---- */

static void
test_setup(void)
{
	struct ca_config cfg = { test_tmpdir(), NULL,
	    "http://127.0.0.1:8080" };
	struct lifecycle_config lcfg = { 90, 30, NULL };

	CHECK((st = store_open(test_tmpdir())) != NULL);
	CHECK((ctx = ca_ctx_new(st, &cfg)) != NULL);
	if (st == NULL || ctx == NULL)
		exit(1);
	CHECK(t_ca("CN=LC Root", "root", NULL, root_id, sizeof(root_id)) ==
	    0);
	CHECK(t_ca("CN=LC Sub", "subordinate", root_id, sub_id,
	    sizeof(sub_id)) == 0);
	CHECK((lc = lifecycle_new(ctx, &lcfg)) != NULL);
	if (lc == NULL || sub_id[0] == '\0')
		exit(1);
}

/*
 * Renewal with a new key, then the re-issue of the leaves: managed ones
 * get a version signed by the new key (AKI), a revoked one is skipped,
 * an external (ACME) one is left to its client.
 */
static void
test_renew_and_reissue(void)
{
	static const char *const sans[] = { "acme.example.com" };
	struct common_error err = { 0 };
	struct lifecycle_ca_reissue_result res;
	struct lifecycle_issue_req ir;
	json_t *m1, *m2, *m3, *ext = NULL, *ca = NULL, *v;
	X509 *cax = NULL, *x = NULL;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	char stem[96], ext_id[64] = "";
	int n;

	m1 = t_managed("m1", sub_id, &err);
	m2 = t_managed("m2", sub_id, &err);
	m3 = t_managed("m3", sub_id, &err);
	CHECK(m1 != NULL && m2 != NULL && m3 != NULL);
	if (m1 == NULL || m2 == NULL || m3 == NULL)
		goto out;
	v = lifecycle_version_revoke(lc, jstr(m3, "id"), 1,
	    CA_REASON_SUPERSEDED, WHO, &err);
	CHECK(v != NULL);
	json_decref(v);
	memset(&ir, 0, sizeof(ir));
	ir.ca_id = sub_id;
	ir.pubkey = k;
	ir.sans = sans;
	ir.nsans = 1;
	ir.profile = CA_PROFILE_TLS_SERVER;
	ir.validity_days = 10;
	ir.origin = "acme";
	ext = lifecycle_issue(lc, &ir, "acme:acct-1", &err);
	CHECK(ext != NULL);
	snprintf(ext_id, sizeof(ext_id), "%s", ext != NULL ?
	    jstr(ext, "certificate_id") : "");

	n = t_key_files();
	ca = lifecycle_ca_renew(lc, sub_id, true, 0, WHO, &err);
	CHECK(ca != NULL);
	if (ca == NULL) {
		fprintf(stderr, "renew: %s\n", err.msg);
		goto out;
	}
	CHECK(t_key_files() == n + 1);
	CHECK(jint(ca, "current_version") == 2);
	CHECK(t_audited("ca.renew", sub_id, WHO));
	snprintf(stem, sizeof(stem), "%s-v2", sub_id);
	CHECK(t_public("ca", stem, "crt") && t_public("crl", stem, "crl"));
	cax = ca_record_cert(ca);

	memset(&res, 0, sizeof(res));
	CHECK(lifecycle_ca_reissue_run(lc, sub_id, WHO, &res, &err) == 0);
	CHECK(res.renewed == 2 && res.failed == 0 && res.skipped == 1);
	CHECK(t_audited("ca.reissue", sub_id, WHO));
	CHECK(t_current_version(jstr(m1, "id")) == 2);
	CHECK(t_current_version(jstr(m2, "id")) == 2);
	CHECK(t_current_version(jstr(m3, "id")) == 1);
	CHECK(ext_id[0] != '\0' && t_current_version(ext_id) == 1);
	x = t_current_cert(jstr(m1, "id"));
	CHECK(x != NULL && cax != NULL);
	if (x != NULL && cax != NULL) {
		CHECK(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
		    X509_get0_subject_key_id(cax)) == 0);
		CHECK(X509_verify(x, X509_get0_pubkey(cax)) == 1);
	}
	/* The plain form counts the renewed leaves. */
	CHECK(lifecycle_ca_reissue(lc, sub_id, WHO, &err) == 2);
	common_error_clear(&err);
	CHECK(lifecycle_ca_reissue(lc, "ca-0000000000000001", WHO, &err) ==
	    -1 && err.code == COMMON_E_NOTFOUND);

	/* Refused renewals make no key (and leave none behind). */
	n = t_key_files();
	common_error_clear(&err);
	CHECK(lifecycle_ca_renew(lc, "ca-0000000000000001", true, 0, WHO,
	    &err) == NULL && err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(lifecycle_ca_renew(lc, sub_id, true, CA_MAX_VALIDITY_DAYS * 2,
	    WHO, &err) == NULL && err.code == COMMON_E_INVALID);
	CHECK(t_key_files() == n);
out:
	X509_free(cax);
	X509_free(x);
	EVP_PKEY_free(k);
	json_decref(m1);
	json_decref(m2);
	json_decref(m3);
	json_decref(ext);
	json_decref(ca);
}

/* A disabled CA refuses leaf renewals and new certificates; enabled
 * again, both work. */
static void
test_disable_enable(void)
{
	struct common_error err = { 0 };
	json_t *m, *r;
	char want[128];

	m = t_managed("state-1", sub_id, &err);
	CHECK(m != NULL);
	if (m == NULL)
		return;
	CHECK(lifecycle_ca_set_state(lc, sub_id, "disabled", WHO, &err) == 0);
	CHECK(t_audited("ca.disable", sub_id, WHO));
	snprintf(want, sizeof(want), "CA %s is disabled", sub_id);
	common_error_clear(&err);
	r = lifecycle_cert_renew(lc, jstr(m, "id"), WHO, &err);
	CHECK(r == NULL && err.code == COMMON_E_CONFLICT &&
	    strstr(err.msg, want) != NULL);
	json_decref(r);
	r = t_managed("state-2", sub_id, &err);
	CHECK(r == NULL && err.code == COMMON_E_CONFLICT);
	json_decref(r);
	common_error_clear(&err);
	CHECK(lifecycle_ca_set_state(lc, sub_id, "bogus", WHO, &err) == -1 &&
	    err.code == COMMON_E_INVALID);
	CHECK(lifecycle_ca_set_state(lc, sub_id, "active", WHO, &err) == 0);
	CHECK(t_audited("ca.enable", sub_id, WHO));
	r = lifecycle_cert_renew(lc, jstr(m, "id"), WHO, &err);
	CHECK(r != NULL);
	json_decref(r);
	json_decref(m);
}

/*
 * Deletion of a subordinate: refused while a certificate is active,
 * scheduled once it is revoked, cancelled, scheduled again and executed
 * by lifecycle_ca_tick when its time came; its parent then goes at once.
 */
static void
test_delete(void)
{
	struct common_error err = { 0 };
	char r2[64] = "", s2[64] = "", want[160];
	json_t *m = NULL, *rec = NULL, *v;
	int keys;

	CHECK(t_ca("CN=Del Root", "root", NULL, r2, sizeof(r2)) == 0);
	CHECK(t_ca("CN=Del Sub", "subordinate", r2, s2, sizeof(s2)) == 0);
	m = t_managed("del-1", s2, &err);
	CHECK(m != NULL);
	if (m == NULL)
		goto out;
	snprintf(want, sizeof(want), "CA %s has 1 active certificate", s2);
	common_error_clear(&err);
	CHECK(lifecycle_ca_delete(lc, s2, false, WHO, &rec, &err) == -1 &&
	    err.code == COMMON_E_CONFLICT && rec == NULL &&
	    strncmp(err.msg, want, strlen(want)) == 0);
	snprintf(want, sizeof(want), "CA %s has 1 subordinate CA", r2);
	common_error_clear(&err);
	CHECK(lifecycle_ca_delete(lc, r2, true, WHO, &rec, &err) == -1 &&
	    err.code == COMMON_E_CONFLICT &&
	    strncmp(err.msg, want, strlen(want)) == 0);
	v = lifecycle_version_revoke(lc, jstr(m, "id"), 1,
	    CA_REASON_CESSATION_OF_OPERATION, WHO, &err);
	CHECK(v != NULL);
	json_decref(v);

	CHECK(lifecycle_ca_delete(lc, s2, false, WHO, &rec, &err) == 0);
	CHECK(rec != NULL);
	CHECK_STR(jstr(rec, "state"), "pending_deletion");
	CHECK(jint(json_object_get(rec, "deletion"), "execute_at_epoch") >=
	    common_now() + 7 * T_DAY - 5);
	json_decref(rec);
	rec = NULL;
	CHECK(t_audited("ca.delete_scheduled", s2, WHO));
	CHECK(lifecycle_ca_tick(lc) == 0);
	rec = lifecycle_ca_cancel_deletion(lc, s2, WHO, &err);
	CHECK(rec != NULL);
	CHECK_STR(jstr(rec, "state"), "active");
	json_decref(rec);
	rec = NULL;
	CHECK(t_audited("ca.delete_cancelled", s2, WHO));
	common_error_clear(&err);
	CHECK(lifecycle_ca_cancel_deletion(lc, s2, WHO, &err) == NULL &&
	    err.code == COMMON_E_CONFLICT);

	CHECK(lifecycle_ca_delete(lc, s2, false, WHO, &rec, &err) == 0);
	json_decref(rec);
	rec = NULL;
	keys = t_key_files();
	common_clock_set_offset(8 * T_DAY);
	CHECK(lifecycle_ca_tick(lc) == 1);
	common_clock_set_offset(0);
	CHECK(t_key_files() == keys - 1);
	CHECK(t_audited("ca.delete", s2, LIFECYCLE_WHO_SCHEDULER));
	common_error_clear(&err);
	rec = ca_get(ctx, NULL, s2, &err);
	CHECK(rec == NULL && err.code == COMMON_E_NOTFOUND);
	json_decref(rec);
	rec = NULL;
	CHECK(!t_public("ca", s2, "crt") && !t_public("crl", s2, "crl"));

	CHECK(lifecycle_ca_delete(lc, r2, true, WHO, &rec, &err) == 0 &&
	    rec == NULL);
	CHECK(t_audited("ca.delete", r2, WHO));
	common_error_clear(&err);
	rec = ca_get(ctx, NULL, r2, &err);
	CHECK(rec == NULL && err.code == COMMON_E_NOTFOUND);
out:
	common_clock_set_offset(0);
	json_decref(rec);
	json_decref(m);
}

static void
test_teardown(void)
{
	lifecycle_free(lc);
	ca_ctx_free(ctx);
	store_close(st);
}

const struct test_case test_cases[] = {
	TEST(test_setup),
	TEST(test_renew_and_reissue),
	TEST(test_disable_enable),
	TEST(test_delete),
	TEST(test_teardown),
	{ 0 },
};
