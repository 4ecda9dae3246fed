/*
 * Unit tests of lifecycle/: certificates in the three modes, versions,
 * renewal, revocation, inventory queries, resources, associations and
 * the audit trail, issuance inside a caller's transaction (commit, abort,
 * refusal, concurrent retries), revocation by serial and the registry
 * view of a serial, against a real store and a real CA hierarchy.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "lifecycle/lifecycle.h"
#include "tests/unit/test.h"

#define WHO	"token:test"
#define T_THREADS		2	/* concurrent issuers */
#define T_ISSUES_PER_THREAD	6
#define T_COUNTER		"test_issue_counter"	/* meta key */

static struct store *st;
static struct ca_ctx *ctx;
static struct lifecycle *lc;
static char root_id[64], sub_id[64];
static size_t audit_expected;	/* audit records every success added */

/* ---- helpers ---- */

static int
setup_cas(struct store_txn *txn, void *arg)
{
	struct ca_create_req req;
	struct common_error err;
	json_t *root = NULL, *sub = NULL;
	int rc = -1;

	(void)arg;
	common_error_clear(&err);
	memset(&req, 0, sizeof(req));
	req.name = "Test Root";
	req.type = "root";
	req.subject = "CN=Test Root,O=pkid tests";
	req.key_alg = CA_KEY_ECDSA_P256;
	req.validity_days = 3650;
	req.path_len = -1;
	if ((root = ca_create(ctx, txn, &req, &err)) == NULL) {
		fprintf(stderr, "root CA: %s\n", err.msg);
		goto out;
	}
	snprintf(root_id, sizeof(root_id), "%s",
	    json_string_value(json_object_get(root, "id")));
	req.name = "Test Issuing";
	req.type = "subordinate";
	req.issuer_ca_id = root_id;
	req.subject = "CN=Test Issuing,O=pkid tests";
	req.validity_days = 1825;
	req.path_len = 0;
	if ((sub = ca_create(ctx, txn, &req, &err)) == NULL) {
		fprintf(stderr, "issuing CA: %s\n", err.msg);
		goto out;
	}
	snprintf(sub_id, sizeof(sub_id), "%s",
	    json_string_value(json_object_get(sub, "id")));
	rc = 0;
out:
	json_decref(root);
	json_decref(sub);
	return rc;
}

static size_t
audit_count(void)
{
	json_t *a;
	size_t n;

	a = store_audit_list(st, NULL, 0, 1000);
	n = json_array_size(a);
	json_decref(a);
	return n;
}

/* The newest audit record (new reference). */
static json_t *
audit_last(void)
{
	json_t *a = store_audit_list(st, NULL, 0, 1000), *last;

	last = json_incref(json_array_get(a, json_array_size(a) - 1));
	json_decref(a);
	return last;
}

static bool
audit_last_is(const char *action, const char *object)
{
	json_t *a = audit_last();
	bool ok;

	ok = a != NULL &&
	    strcmp(json_string_value(json_object_get(a, "action")),
	    action) == 0 &&
	    strcmp(json_string_value(json_object_get(a, "object")),
	    object) == 0 &&
	    strcmp(json_string_value(json_object_get(a, "result")), "ok") ==
	    0 &&
	    strcmp(json_string_value(json_object_get(a, "who")), WHO) == 0 &&
	    json_is_string(json_object_get(a, "time")) &&
	    json_is_string(json_object_get(a, "detail"));
	if (!ok) {
		char *s = json_dumps(a, 0);

		fprintf(stderr, "last audit record: %s (want %s %s)\n",
		    s != NULL ? s : "(none)", action, object);
		free(s);
	}
	json_decref(a);
	return ok;
}

static size_t
cert_count(void)
{
	struct lifecycle_query q;
	struct common_error err;
	json_t *res;
	size_t n;

	memset(&q, 0, sizeof(q));
	q.renewal_due = -1;	/* any */
	q.expiring_within_days = -1;
	q.limit = LIFECYCLE_PAGE_MAX;
	common_error_clear(&err);
	res = lifecycle_cert_list(lc, &q, &err);
	n = json_array_size(json_object_get(res, "certificates"));
	json_decref(res);
	return n;
}

/* Serials the issuing CA has recorded as valid. */
static size_t
issued_count(void)
{
	json_t *a = store_issued_by_ca_status(st, NULL, sub_id, "valid");
	size_t n = json_array_size(a);

	json_decref(a);
	return n;
}

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

/* Creates a certificate from JSON text; NULL (err set) on refusal. */
static json_t *
create(const char *text, struct common_error *err)
{
	json_error_t jerr;
	json_t *req, *res;

	common_error_clear(err);
	if ((req = json_loads(text, 0, &jerr)) == NULL) {
		fprintf(stderr, "bad test JSON: %s: %s\n", jerr.text, text);
		return NULL;
	}
	res = lifecycle_cert_create(lc, req, WHO, err);
	json_decref(req);
	return res;
}

/* A managed certificate under the issuing CA, expected to succeed. */
static json_t *
create_managed(const char *name, const char *profile, const char *san,
    const char *extra)
{
	struct common_error err;
	char text[1024];
	json_t *res;

	snprintf(text, sizeof(text), "{\"name\": \"%s\", \"mode\": "
	    "\"managed\", \"ca_id\": \"%s\", \"profile\": \"%s\", \"sans\": "
	    "[\"%s\"]%s%s}", name, sub_id, profile, san,
	    extra != NULL ? ", " : "", extra != NULL ? extra : "");
	res = create(text, &err);
	if (res == NULL)
		fprintf(stderr, "create %s: %s\n", name, err.msg);
	else
		audit_expected++;
	return res;
}

/* Expects a refusal with code and a message containing want. */
static void
expect_refused(const char *text, enum common_errcode code, const char *want)
{
	struct common_error err;
	json_t *res;

	res = create(text, &err);
	CHECK(res == NULL);
	CHECK(err.code == code);
	if (want != NULL && strstr(err.msg, want) == NULL) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err.msg, want);
		CHECK(strstr(err.msg, want) != NULL);
	}
	json_decref(res);
}

static X509 *
pem_cert(const char *pem)
{
	return pem != NULL ? common_x509_from_pem(pem, strlen(pem)) : NULL;
}

/* Verifies leaf against the chain PEM with the last chain cert as anchor. */
static bool
chain_verifies(const char *leaf_pem, const char *chain_pem)
{
	STACK_OF(X509) *chain;
	X509_STORE *xs = X509_STORE_new();
	X509_STORE_CTX *xc = X509_STORE_CTX_new();
	X509 *leaf = pem_cert(leaf_pem);
	bool ok = false;
	int n;

	chain = common_x509s_from_pem(chain_pem, strlen(chain_pem),
	    CA_CHAIN_MAX);
	if (xs == NULL || xc == NULL || leaf == NULL || chain == NULL ||
	    (n = sk_X509_num(chain)) < 1)
		goto out;
	X509_STORE_add_cert(xs, sk_X509_value(chain, n - 1));
	if (X509_STORE_CTX_init(xc, xs, leaf, chain) != 1)
		goto out;
	X509_STORE_CTX_set_purpose(xc, X509_PURPOSE_ANY);
	ok = X509_verify_cert(xc) == 1;
	if (!ok)
		fprintf(stderr, "verify: %s\n", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(xc)));
out:
	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	X509_STORE_CTX_free(xc);
	X509_STORE_free(xs);
	return ok;
}

/* The private key of version n via the API; NULL when refused. */
static EVP_PKEY *
version_key(const char *id, unsigned n)
{
	struct common_error err;
	json_t *v;
	const char *pem;
	EVP_PKEY *k = NULL;

	common_error_clear(&err);
	if ((v = lifecycle_version_get(lc, id, n, true, &err)) == NULL)
		return NULL;
	if ((pem = jstr(v, "private_key")) != NULL)
		k = common_privkey_from_pem(pem, strlen(pem));
	json_decref(v);
	return k;
}

/* A PKCS#10 request for key with CN cn and SAN text ("DNS:a,IP:b");
 * break_sig flips a bit of the signature. PEM to free(). */
static char *
make_csr(EVP_PKEY *key, const char *cn, const char *san, bool break_sig)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext;
	const ASN1_BIT_STRING *sig;
	const X509_ALGOR *alg;
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *pem = NULL;
	long len;

	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	    (const unsigned char *)"pkid tests", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_REQ_set_subject_name(req, name);
	X509_REQ_set_pubkey(req, key);
	if (san != NULL) {
		ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
		    san);
		sk_X509_EXTENSION_push(exts, ext);
		X509_REQ_add_extensions(req, exts);
	}
	X509_REQ_sign(req, key, EVP_sha256());
	if (break_sig) {
		X509_REQ_get0_signature(req, &sig, &alg);
		((ASN1_BIT_STRING *)sig)->data[10] ^= 0x01;
	}
	PEM_write_bio_X509_REQ(b, req);
	len = BIO_get_mem_data(b, &data);
	pem = strndup(data, (size_t)len);
	BIO_free(b);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return pem;
}

/* A self-signed serverAuth certificate for key (an "outside" cert). */
static char *
make_selfsigned(EVP_PKEY *key, const char *cn, const char *san)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	char *pem;

	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_set_version(x, 2);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
	X509_set_pubkey(x, key);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage,
	    "serverAuth");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, key, EVP_sha256());
	pem = common_x509_to_pem(x);
	X509_free(x);
	return pem;
}

/* JSON string literal of a PEM (escapes newlines). To free(). */
static char *
jquote(const char *s)
{
	json_t *j = json_string(s);
	char *out = json_dumps(j, JSON_ENCODE_ANY);

	json_decref(j);
	return out;
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
	CHECK(store_txn_run(st, setup_cas, NULL) == 0);
	CHECK(root_id[0] != '\0' && sub_id[0] != '\0');
	CHECK((lc = lifecycle_new(ctx, &lcfg)) != NULL);
	if (lc == NULL || sub_id[0] == '\0')
		exit(1);
	audit_expected = audit_count();
	CHECK(audit_expected == 0);
	CHECK(cert_count() == 0);
}

static void
test_managed_profiles(void)
{
	static const struct {
		const char	*profile;
		uint32_t	 xku;
	} cases[] = {
		{ "tls_server_or_client", XKU_SSL_SERVER | XKU_SSL_CLIENT },
		{ "tls_server", XKU_SSL_SERVER },
		{ "tls_client", XKU_SSL_CLIENT },
		{ "code_signing", XKU_CODE_SIGN },
	};
	struct common_error err;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[64], san[64], extra[128];
		json_t *c, *cur, *v;
		X509 *x = NULL;
		EVP_PKEY *k = NULL;
		const char *id;

		snprintf(name, sizeof(name), "m-%s", cases[i].profile);
		snprintf(san, sizeof(san), "m%zu.example.com\", \"10.0.0.%zu",
		    i, i + 5);
		snprintf(extra, sizeof(extra), "\"subject\": \"CN=m%zu,O=Acme\","
		    " \"validity_days\": 60, \"renewal\": "
		    "{\"renew_before_days\": 20}", i);
		c = create_managed(name, cases[i].profile, san, extra);
		CHECK(c != NULL);
		if (c == NULL)
			continue;
		id = jstr(c, "id");
		CHECK(strncmp(id, "cert-", 5) == 0);
		CHECK_STR(jstr(c, "name"), name);
		CHECK_STR(jstr(c, "mode"), "managed");
		CHECK_STR(jstr(c, "origin"), "mgmt");
		CHECK_STR(jstr(c, "ca_id"), sub_id);
		CHECK_STR(jstr(c, "profile"), cases[i].profile);
		CHECK_STR(jstr(c, "key_algorithm"), "ECDSA_P256");
		CHECK_STR(jstr(c, "state"), "active");
		CHECK_STR(jstr(c, "stage"), "current");
		CHECK(jint(c, "validity_days") == 60);
		CHECK(jint(json_object_get(c, "renewal"),
		    "renew_before_days") == 20);
		CHECK(jint(c, "current_version") == 1);
		CHECK(jint(c, "latest_version") == 1);
		CHECK(json_array_size(json_object_get(c, "sans")) == 2);
		CHECK(jstr(c, "not_after") != NULL);
		CHECK(jstr(c, "created_at") != NULL);
		cur = json_object_get(c, "current");
		CHECK(jint(cur, "version") == 1);
		CHECK_STR(jstr(cur, "stage"), "current");
		CHECK(json_object_get(cur, "key_id") == NULL);
		CHECK(json_object_get(cur, "private_key") == NULL);
		CHECK_STR(jstr(cur, "not_after"), jstr(c, "not_after"));
		CHECK((x = pem_cert(jstr(cur, "certificate"))) != NULL);
		if (x != NULL) {
			char host[64], ip[32];

			snprintf(host, sizeof(host), "m%zu.example.com", i);
			snprintf(ip, sizeof(ip), "10.0.0.%zu", i + 5);
			CHECK(X509_check_host(x, host, 0, 0, NULL) == 1);
			CHECK(X509_check_host(x, "other.example.com", 0, 0,
			    NULL) != 1);
			CHECK(X509_check_ip_asc(x, ip, 0) == 1);
			CHECK((X509_get_extended_key_usage(x) &
			    (XKU_SSL_SERVER | XKU_SSL_CLIENT |
			    XKU_CODE_SIGN)) == cases[i].xku);
			CHECK(chain_verifies(jstr(cur, "certificate"),
			    jstr(cur, "chain")));
			k = version_key(id, 1);
			CHECK(k != NULL);
			CHECK(k != NULL && X509_check_private_key(x, k) == 1);
		}
		/* versions as a list carry no PEMs */
		common_error_clear(&err);
		v = lifecycle_versions(lc, id, &err);
		CHECK(json_array_size(json_object_get(v, "versions")) == 1);
		CHECK(json_object_get(json_array_get(json_object_get(v,
		    "versions"), 0), "certificate") == NULL);
		CHECK(audit_last_is("certificate.create", id));
		json_decref(v);
		EVP_PKEY_free(k);
		X509_free(x);
		json_decref(c);
	}
	CHECK(audit_count() == audit_expected);
}

static void
test_managed_key_algorithms(void)
{
	static const struct {
		const char	*alg;
		int		 type;
	} cases[] = {
		{ "RSA2048", EVP_PKEY_RSA },
		{ "ECDSA_P384", EVP_PKEY_EC },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[64], extra[64];
		json_t *c;
		EVP_PKEY *k;

		snprintf(name, sizeof(name), "alg-%s", cases[i].alg);
		snprintf(extra, sizeof(extra), "\"key_algorithm\": \"%s\"",
		    cases[i].alg);
		c = create_managed(name, "tls_server", "alg.example.com",
		    extra);
		CHECK(c != NULL);
		CHECK_STR(jstr(c, "key_algorithm"), cases[i].alg);
		/* defaults from the configuration */
		CHECK(jint(c, "validity_days") == 90);
		CHECK(jint(json_object_get(c, "renewal"),
		    "renew_before_days") == 30);
		k = version_key(jstr(c, "id"), 1);
		CHECK(k != NULL && EVP_PKEY_base_id(k) == cases[i].type);
		EVP_PKEY_free(k);
		json_decref(c);
	}
	CHECK(audit_count() == audit_expected);
}

static void
test_create_refused(void)
{
	size_t certs = cert_count(), audits = audit_count();
	size_t issued = issued_count();
	char text[1024], longname[LIFECYCLE_NAME_MAX + 2];
	json_t *arr;
	struct common_error err;

	/* duplicate name */
	snprintf(text, sizeof(text), "{\"name\": \"m-tls_server\", \"ca_id\":"
	    " \"%s\", \"profile\": \"tls_server\", \"sans\": [\"d.example\"]}",
	    sub_id);
	expect_refused(text, COMMON_E_CONFLICT,
	    "a certificate named \"m-tls_server\" exists");
	/* shape and types */
	expect_refused("[1, 2]", COMMON_E_INVALID, "JSON object");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"bogus\": 1}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "unknown field \"bogus\"");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": \"x.example\"}", sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"sans\" must be an array of strings");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"a.example\", 7]}",
	    sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"sans\" must be an array of strings");
	snprintf(text, sizeof(text), "{\"name\": 5, \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"]}", sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"name\" must be a string");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"validity_days\": \"90\"}", sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"validity_days\" must be a number");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"renewal\": 30}", sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"renewal\" must be an object");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"renewal\": {\"days\": 3}}", sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "unknown field \"renewal.days\"");
	/* missing fields per mode */
	snprintf(text, sizeof(text), "{\"ca_id\": \"%s\", \"profile\": "
	    "\"tls_server\", \"sans\": [\"x.example\"]}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "field \"name\" is required");
	expect_refused("{\"name\": \"x\", \"profile\": \"tls_server\", "
	    "\"sans\": [\"x.example\"]}", COMMON_E_INVALID,
	    "field \"ca_id\" is required");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"sans\": [\"x.example\"]}", sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"profile\" is required");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\"}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "\"sans\" or \"subject\"");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_server\"}",
	    sub_id);
	expect_refused(text, COMMON_E_INVALID, "field \"csr\" is required");
	expect_refused("{\"name\": \"x\", \"mode\": \"imported\", "
	    "\"certificate\": \"x\"}", COMMON_E_INVALID,
	    "field \"private_key\" is required");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"csr\": \"x\"}", sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"csr\" is not used in managed mode");
	/* values */
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"mode\": \"auto\", "
	    "\"ca_id\": \"%s\", \"profile\": \"tls_server\", \"sans\": "
	    "[\"x.example\"]}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "field \"mode\"");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"email\", \"sans\": [\"x.example\"]}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "field \"profile\"");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"key_algorithm\": \"DSA1024\"}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "field \"key_algorithm\"");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"validity_days\": 0}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "field \"validity_days\"");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"validity_days\": 40000}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "field \"validity_days\"");
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"], "
	    "\"validity_days\": 30, \"renewal\": {\"renew_before_days\": 30}}",
	    sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"renewal.renew_before_days\"");
	snprintf(text, sizeof(text), "{\"name\": \"bad\\u0007name\", "
	    "\"ca_id\": \"%s\", \"profile\": \"tls_server\", \"sans\": "
	    "[\"x.example\"]}", sub_id);
	expect_refused(text, COMMON_E_INVALID, "printable ASCII");
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	snprintf(text, sizeof(text), "{\"name\": \"%s\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"x.example\"]}",
	    longname, sub_id);
	expect_refused(text, COMMON_E_INVALID, "field \"name\"");
	expect_refused("{\"name\": \"\", \"ca_id\": \"ca-1\", \"profile\": "
	    "\"tls_server\", \"sans\": [\"x.example\"]}", COMMON_E_INVALID,
	    "field \"name\"");
	/* CA ids */
	expect_refused("{\"name\": \"x\", \"ca_id\": \"ca-0000000000000000\","
	    " \"profile\": \"tls_server\", \"sans\": [\"x.example\"]}",
	    COMMON_E_NOTFOUND, "ca-0000000000000000");
	expect_refused("{\"name\": \"x\", \"ca_id\": \"../etc\", \"profile\":"
	    " \"tls_server\", \"sans\": [\"x.example\"]}", COMMON_E_NOTFOUND,
	    "ca_id");
	/* a SAN the CA refuses: refused by ca_issue inside the txn */
	snprintf(text, sizeof(text), "{\"name\": \"x\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"bad..name\"]}", sub_id);
	expect_refused(text, COMMON_E_INVALID, NULL);
	/* an array of SANs over the limit */
	arr = json_array();
	for (size_t i = 0; i <= CA_MAX_SANS; i++)
		json_array_append_new(arr, json_string("many.example"));
	{
		json_t *req = json_pack("{s:s, s:s, s:s, s:O}", "name", "many",
		    "ca_id", sub_id, "profile", "tls_server", "sans", arr);

		common_error_clear(&err);
		CHECK(lifecycle_cert_create(lc, req, WHO, &err) == NULL);
		CHECK(err.code == COMMON_E_INVALID);
		CHECK(strstr(err.msg, "more than") != NULL);
		json_decref(req);
	}
	json_decref(arr);
	/* nothing stored, nothing audited, no serial recorded */
	CHECK(cert_count() == certs);
	CHECK(audit_count() == audits);
	CHECK(issued_count() == issued);
	CHECK(issued > 0);
}

static void
test_external(void)
{
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256), *k2;
	char *csr = make_csr(key, "dev1.example.com",
	    "DNS:dev1.example.com,IP:10.1.2.3", false);
	char *bad = make_csr(key, "dev1.example.com", "DNS:dev1.example.com",
	    true);
	char *qcsr = jquote(csr), *qbad = jquote(bad);
	size_t certs = cert_count(), audits = audit_count();
	struct common_error err;
	char text[8192];
	json_t *c = NULL, *cur, *v = NULL, *r = NULL;
	X509 *x = NULL;
	const char *id;

	/* broken signature: nothing stored */
	snprintf(text, sizeof(text), "{\"name\": \"dev-bad\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_client\", "
	    "\"csr\": %s}", sub_id, qbad);
	expect_refused(text, COMMON_E_INVALID, "signature");
	snprintf(text, sizeof(text), "{\"name\": \"dev-bad\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_client\", "
	    "\"csr\": \"-----BEGIN CERTIFICATE REQUEST-----\\nAAAA\\n"
	    "-----END CERTIFICATE REQUEST-----\\n\"}", sub_id);
	expect_refused(text, COMMON_E_INVALID,
	    "csr is not a PEM certificate request");
	/* subject / SANs that the CSR does not carry */
	snprintf(text, sizeof(text), "{\"name\": \"dev-x\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_client\", "
	    "\"sans\": [\"dev1.example.com\", \"dev2.example.com\"], "
	    "\"csr\": %s}", sub_id, qcsr);
	expect_refused(text, COMMON_E_INVALID, "not in csr: dev2.example.com");
	snprintf(text, sizeof(text), "{\"name\": \"dev-x\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_client\", "
	    "\"sans\": [\"dev1.example.com\"], \"csr\": %s}", sub_id, qcsr);
	expect_refused(text, COMMON_E_INVALID, "only in csr: 10.1.2.3");
	snprintf(text, sizeof(text), "{\"name\": \"dev-x\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_client\", "
	    "\"subject\": \"CN=other.example.com\", \"csr\": %s}", sub_id,
	    qcsr);
	expect_refused(text, COMMON_E_INVALID, "does not match the csr");
	snprintf(text, sizeof(text), "{\"name\": \"dev-x\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_client\", "
	    "\"key_algorithm\": \"RSA2048\", \"csr\": %s}", sub_id, qcsr);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"key_algorithm\" is not used in external mode");
	CHECK(cert_count() == certs);
	CHECK(audit_count() == audits);

	/* names from the CSR */
	snprintf(text, sizeof(text), "{\"name\": \"dev1\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_client\", "
	    "\"validity_days\": 30, \"csr\": %s}", sub_id, qcsr);
	c = create(text, &err);
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "external: %s\n", err.msg);
		goto out;
	}
	audit_expected++;
	id = jstr(c, "id");
	CHECK_STR(jstr(c, "mode"), "external");
	CHECK_STR(jstr(c, "key_algorithm"), "ECDSA_P256");
	CHECK(strstr(jstr(c, "subject"), "CN=dev1.example.com") != NULL);
	CHECK(json_array_size(json_object_get(c, "sans")) == 2);
	/* renew_before defaulted (30) does not fit 30 days: a third */
	CHECK(json_number_value(json_object_get(json_object_get(c, "renewal"),
	    "renew_before_days")) == 10);
	cur = json_object_get(c, "current");
	CHECK(json_object_get(cur, "csr") == NULL);
	CHECK((x = pem_cert(jstr(cur, "certificate"))) != NULL);
	CHECK(x != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1);
	CHECK(x != NULL && X509_check_ip_asc(x, "10.1.2.3", 0) == 1);
	CHECK(audit_last_is("certificate.create", id));
	/* no key to hand out */
	common_error_clear(&err);
	v = lifecycle_version_get(lc, id, 1, true, &err);
	CHECK(v == NULL);
	CHECK(err.code == COMMON_E_FORBIDDEN);
	CHECK(strstr(err.msg, "mode external") != NULL);
	json_decref(v);
	common_error_clear(&err);
	v = lifecycle_version_get(lc, id, 1, false, &err);
	CHECK(v != NULL && jstr(v, "certificate") != NULL &&
	    json_object_get(v, "private_key") == NULL);
	/* renewal re-signs the CSR's key */
	common_error_clear(&err);
	r = lifecycle_cert_renew(lc, id, WHO, &err);
	CHECK(r != NULL);
	if (r != NULL) {
		audit_expected++;
		X509_free(x);
		CHECK(jint(r, "version") == 2);
		CHECK((x = pem_cert(jstr(r, "certificate"))) != NULL);
		CHECK(x != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1);
		CHECK(audit_last_is("certificate.renew", id));
	}

	/* given subject and SANs that match (other order, other case) */
	k2 = ca_key_generate(CA_KEY_ECDSA_P256);
	free(qcsr);
	free(csr);
	csr = make_csr(k2, "dev3.example.com",
	    "DNS:dev3.example.com,IP:10.1.2.4", false);
	qcsr = jquote(csr);
	snprintf(text, sizeof(text), "{\"name\": \"dev3\", \"mode\": "
	    "\"external\", \"ca_id\": \"%s\", \"profile\": \"tls_server\", "
	    "\"subject\": \"CN=dev3.example.com, O=pkid tests\", \"sans\": "
	    "[\"10.1.2.4\", \"DEV3.example.com\"], \"csr\": %s}", sub_id,
	    qcsr);
	json_decref(c);
	c = create(text, &err);
	CHECK(c != NULL);
	if (c == NULL)
		fprintf(stderr, "external with names: %s\n", err.msg);
	else
		audit_expected++;
	EVP_PKEY_free(k2);
out:
	CHECK(audit_count() == audit_expected);
	json_decref(r);
	json_decref(v);
	json_decref(c);
	X509_free(x);
	free(qcsr);
	free(qbad);
	free(csr);
	free(bad);
	EVP_PKEY_free(key);
}

static void
test_imported(void)
{
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256);
	EVP_PKEY *other = ca_key_generate(CA_KEY_ECDSA_P256), *k = NULL;
	char *cert = make_selfsigned(key, "legacy.example.com",
	    "DNS:legacy.example.com,DNS:old.example.com");
	char *kpem = common_privkey_to_pem(key);
	char *opem = common_privkey_to_pem(other);
	char *qc = jquote(cert), *qk = jquote(kpem), *qo = jquote(opem);
	char *two = NULL, *q2 = NULL, *qmc = NULL, *qmk = NULL;
	size_t certs = cert_count(), audits = audit_count();
	struct common_error err;
	char text[16384];
	json_t *c = NULL, *m = NULL, *mv = NULL, *r;
	X509 *x;
	const char *id;

	/* key that does not match: nothing stored */
	snprintf(text, sizeof(text), "{\"name\": \"legacy\", \"mode\": "
	    "\"imported\", \"certificate\": %s, \"private_key\": %s}", qc, qo);
	expect_refused(text, COMMON_E_INVALID,
	    "private_key does not match certificate");
	/* two certificates where one is expected */
	two = malloc(strlen(cert) * 2 + 1);
	snprintf(two, strlen(cert) * 2 + 1, "%s%s", cert, cert);
	q2 = jquote(two);
	snprintf(text, sizeof(text), "{\"name\": \"legacy\", \"mode\": "
	    "\"imported\", \"certificate\": %s, \"private_key\": %s}", q2, qk);
	expect_refused(text, COMMON_E_INVALID, "exactly one");
	snprintf(text, sizeof(text), "{\"name\": \"legacy\", \"mode\": "
	    "\"imported\", \"certificate\": %s, \"private_key\": %s, "
	    "\"profile\": \"tls_server\"}", qc, qk);
	expect_refused(text, COMMON_E_INVALID,
	    "field \"profile\" is not used in imported mode");
	CHECK(cert_count() == certs);
	CHECK(audit_count() == audits);

	/* a certificate from outside, with a chain */
	snprintf(text, sizeof(text), "{\"name\": \"legacy\", \"mode\": "
	    "\"imported\", \"certificate\": %s, \"private_key\": %s, "
	    "\"chain\": %s}", qc, qk, qc);
	c = create(text, &err);
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "import: %s\n", err.msg);
		goto out;
	}
	audit_expected++;
	id = jstr(c, "id");
	CHECK_STR(jstr(c, "mode"), "imported");
	CHECK_STR(jstr(c, "origin"), "mgmt");
	CHECK(json_is_null(json_object_get(c, "ca_id")));
	CHECK_STR(jstr(c, "subject"), "CN=legacy.example.com");
	CHECK_STR(jstr(c, "profile"), "tls_server");
	CHECK(json_array_size(json_object_get(c, "sans")) == 2);
	CHECK_STR(jstr(json_object_get(c, "current"), "serial"), "1092");
	CHECK(json_number_value(json_object_get(c, "validity_days")) == 30);
	CHECK(strstr(jstr(json_object_get(c, "current"), "chain"),
	    "BEGIN CERTIFICATE") != NULL);
	CHECK(audit_last_is("certificate.create", id));
	k = version_key(id, 1);
	CHECK(k != NULL && EVP_PKEY_eq(k, key) == 1);
	/* pkid neither renews nor revokes what it did not issue */
	common_error_clear(&err);
	r = lifecycle_cert_renew(lc, id, WHO, &err);
	CHECK(r == NULL && err.code == COMMON_E_CONFLICT);
	CHECK(strstr(err.msg, "renewed by their issuer") != NULL);
	json_decref(r);
	common_error_clear(&err);
	r = lifecycle_version_revoke(lc, id, 1, CA_REASON_SUPERSEDED, WHO,
	    &err);
	CHECK(r == NULL && err.code == COMMON_E_CONFLICT);
	CHECK(strstr(err.msg, "did not issue") != NULL);
	json_decref(r);

	/* a certificate pkid issued, imported back: its CA is found */
	m = create_managed("to-import", "tls_server", "back.example.com",
	    NULL);
	CHECK(m != NULL);
	if (m != NULL) {
		EVP_PKEY *mk = version_key(jstr(m, "id"), 1);
		char *mkp = mk != NULL ? common_privkey_to_pem(mk) : NULL;

		qmc = jquote(jstr(json_object_get(m, "current"),
		    "certificate"));
		qmk = mkp != NULL ? jquote(mkp) : NULL;
		snprintf(text, sizeof(text), "{\"name\": \"imported-back\", "
		    "\"mode\": \"imported\", \"certificate\": %s, "
		    "\"private_key\": %s}", qmc, qmk != NULL ? qmk : "null");
		mv = create(text, &err);
		CHECK(mv != NULL);
		if (mv != NULL) {
			audit_expected++;
			CHECK_STR(jstr(mv, "ca_id"), sub_id);
			CHECK(chain_verifies(jstr(json_object_get(mv,
			    "current"), "certificate"), jstr(json_object_get(
			    mv, "current"), "chain")));
		} else
			fprintf(stderr, "import back: %s\n", err.msg);
		x = pem_cert(jstr(json_object_get(m, "current"),
		    "certificate"));
		CHECK(x != NULL);
		X509_free(x);
		free(mkp);
		EVP_PKEY_free(mk);
	}
out:
	CHECK(audit_count() == audit_expected);
	EVP_PKEY_free(k);
	json_decref(mv);
	json_decref(m);
	json_decref(c);
	free(qmc);
	free(qmk);
	free(q2);
	free(two);
	free(qc);
	free(qk);
	free(qo);
	free(cert);
	free(kpem);
	free(opem);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

/* Pages through the inventory with q; returns the total seen and checks
 * that no id repeats and ids ascend across pages. */
static size_t
list_all(struct lifecycle_query *q, size_t *pages)
{
	struct common_error err;
	char last[64] = "", token[64] = "";
	json_t *res, *e;
	size_t total = 0, i;

	*pages = 0;
	for (;;) {
		common_error_clear(&err);
		q->page_token = token[0] != '\0' ? token : NULL;
		res = lifecycle_cert_list(lc, q, &err);
		CHECK(res != NULL);
		if (res == NULL)
			break;
		(*pages)++;
		CHECK(json_array_size(json_object_get(res, "certificates")) <=
		    (q->limit != 0 ? q->limit : LIFECYCLE_PAGE_DEFAULT));
		json_array_foreach(json_object_get(res, "certificates"), i,
		    e) {
			CHECK(strcmp(jstr(e, "id"), last) > 0);
			CHECK(json_object_get(e, "current") == NULL);
			snprintf(last, sizeof(last), "%s", jstr(e, "id"));
			total++;
		}
		e = json_object_get(res, "next_page_token");
		if (json_is_null(e)) {
			json_decref(res);
			break;
		}
		CHECK(json_is_string(e));
		CHECK_STR(json_string_value(e), last);
		snprintf(token, sizeof(token), "%s", json_string_value(e));
		json_decref(res);
		if (*pages > 100)
			break;
	}
	return total;
}

static void
test_list(void)
{
	struct lifecycle_query q;
	struct common_error err;
	json_t *c, *res;
	size_t i, pages, n;

	for (i = 0; i < 25; i++) {
		char name[32], san[64];

		snprintf(name, sizeof(name), "page-%02zu", i);
		snprintf(san, sizeof(san), "p%02zu.paging.example", i);
		c = create_managed(name, "tls_server", san, NULL);
		CHECK(c != NULL);
		json_decref(c);
	}
	c = create_managed("short-lived", "tls_client", "special.sans.example",
	    "\"validity_days\": 5, \"renewal\": {\"renew_before_days\": 2}");
	CHECK(c != NULL);
	json_decref(c);

	memset(&q, 0, sizeof(q));
	q.renewal_due = -1;	/* any */
	q.expiring_within_days = -1;
	q.name = "page-";
	q.limit = 10;
	CHECK(list_all(&q, &pages) == 25);
	CHECK(pages >= 3);
	/* first page full, with a token */
	q.page_token = NULL;
	common_error_clear(&err);
	res = lifecycle_cert_list(lc, &q, &err);
	CHECK(json_array_size(json_object_get(res, "certificates")) == 10);
	CHECK(json_is_string(json_object_get(res, "next_page_token")));
	json_decref(res);

	/* name matches SANs too, case-insensitively */
	memset(&q, 0, sizeof(q));
	q.renewal_due = -1;	/* any */
	q.expiring_within_days = -1;
	q.name = "SPECIAL.sans";
	n = list_all(&q, &pages);
	CHECK(n == 1);
	q.name = "paging.example";
	CHECK(list_all(&q, &pages) == 25);

	/* ca_id */
	q.name = NULL;
	q.ca_id = sub_id;
	n = list_all(&q, &pages);
	CHECK(n == cert_count() - 1);	/* all but the outside import */
	q.ca_id = root_id;
	CHECK(list_all(&q, &pages) == 0);

	/* expiring within: only the 5-day certificate */
	q.ca_id = NULL;
	q.expiring_within_days = 10;
	common_error_clear(&err);
	res = lifecycle_cert_list(lc, &q, &err);
	CHECK(json_array_size(json_object_get(res, "certificates")) == 1);
	CHECK_STR(jstr(json_array_get(json_object_get(res, "certificates"),
	    0), "name"), "short-lived");
	json_decref(res);
	q.expiring_within_days = 60;	/* 5 days, 30-day import, 60 days */
	q.sort = LIFECYCLE_SORT_ID;	/* list_all checks id order */
	n = list_all(&q, &pages);
	CHECK(n >= 2);
	q.expiring_within_days = 0;
	CHECK(list_all(&q, &pages) == 0);

	/* stage */
	q.expiring_within_days = -1;
	q.stage = "current";
	CHECK(list_all(&q, &pages) == cert_count());
	q.stage = "revoked";
	CHECK(list_all(&q, &pages) == 0);

	/* limits */
	memset(&q, 0, sizeof(q));
	q.renewal_due = -1;	/* any */
	q.expiring_within_days = -1;
	q.limit = LIFECYCLE_PAGE_MAX + 1;
	common_error_clear(&err);
	res = lifecycle_cert_list(lc, &q, &err);
	CHECK(res == NULL && err.code == COMMON_E_INVALID);
	q.limit = 0;
	common_error_clear(&err);
	res = lifecycle_cert_list(lc, &q, &err);
	CHECK(json_array_size(json_object_get(res, "certificates")) ==
	    cert_count());
	json_decref(res);
	CHECK(audit_count() == audit_expected);
}

static void
test_renew_revoke(void)
{
	struct common_error err;
	json_t *c, *r = NULL, *vs = NULL, *v1, *v2, *rv = NULL, *g = NULL;
	json_t *iss = NULL;
	EVP_PKEY *k1 = NULL, *k2 = NULL;
	struct lifecycle_query q;
	size_t pages, audits;
	const char *id;
	X509 *x = NULL;

	c = create_managed("renewme", "tls_server", "renew.example.com",
	    "\"key_algorithm\": \"ECDSA_P384\"");
	CHECK(c != NULL);
	if (c == NULL)
		return;
	id = jstr(c, "id");
	common_error_clear(&err);
	r = lifecycle_cert_renew(lc, id, WHO, &err);
	CHECK(r != NULL);
	if (r == NULL) {
		fprintf(stderr, "renew: %s\n", err.msg);
		goto out;
	}
	audit_expected++;
	CHECK(audit_last_is("certificate.renew", id));
	CHECK(jint(r, "version") == 2);
	CHECK_STR(jstr(r, "stage"), "current");
	CHECK(jstr(r, "certificate") != NULL);
	CHECK(json_object_get(r, "key_id") == NULL);
	CHECK((x = pem_cert(jstr(r, "certificate"))) != NULL);
	CHECK(x != NULL && X509_check_host(x, "renew.example.com", 0, 0,
	    NULL) == 1);
	k1 = version_key(id, 1);
	k2 = version_key(id, 2);
	CHECK(k1 != NULL && k2 != NULL);
	CHECK(k1 != NULL && k2 != NULL && EVP_PKEY_eq(k1, k2) != 1);
	CHECK(k2 != NULL && EVP_PKEY_bits(k2) == 384);
	CHECK(x != NULL && k2 != NULL && X509_check_private_key(x, k2) == 1);

	common_error_clear(&err);
	vs = lifecycle_versions(lc, id, &err);
	CHECK(json_array_size(json_object_get(vs, "versions")) == 2);
	v1 = json_array_get(json_object_get(vs, "versions"), 0);
	v2 = json_array_get(json_object_get(vs, "versions"), 1);
	CHECK(jint(v1, "version") == 1);
	CHECK_STR(jstr(v1, "stage"), "previous");
	CHECK(jint(v2, "version") == 2);
	CHECK_STR(jstr(v2, "stage"), "current");
	CHECK(json_object_get(v2, "certificate") == NULL);
	CHECK(json_object_get(v2, "chain") == NULL);
	CHECK(json_object_get(v2, "key_id") == NULL);
	CHECK(strcmp(jstr(v1, "serial"), jstr(v2, "serial")) != 0);

	common_error_clear(&err);
	g = lifecycle_cert_get(lc, id, &err);
	CHECK(jint(g, "current_version") == 2);
	CHECK(jint(g, "latest_version") == 2);
	CHECK(jint(json_object_get(g, "current"), "version") == 2);
	CHECK(jstr(json_object_get(g, "current"), "certificate") != NULL);
	CHECK(json_object_get(json_object_get(g, "current"),
	    "private_key") == NULL);
	json_decref(g);

	/* revoke the current version */
	common_error_clear(&err);
	rv = lifecycle_version_revoke(lc, id, 2, CA_REASON_KEY_COMPROMISE, WHO,
	    &err);
	CHECK(rv != NULL);
	if (rv == NULL)
		fprintf(stderr, "revoke: %s\n", err.msg);
	else
		audit_expected++;
	CHECK(audit_last_is("version.revoke", id));
	CHECK_STR(jstr(rv, "stage"), "revoked");
	CHECK_STR(jstr(rv, "revocation_reason"), "keyCompromise");
	CHECK(jstr(rv, "revoked_at") != NULL);
	CHECK_STR(jstr(rv, "ca_id"), sub_id);
	iss = store_issued_get(st, NULL, jstr(v2, "serial"));
	CHECK_STR(jstr(iss, "status"), "revoked");
	CHECK_STR(jstr(iss, "cert_id"), id);
	json_decref(iss);
	common_error_clear(&err);
	g = lifecycle_cert_get(lc, id, &err);
	CHECK_STR(jstr(g, "stage"), "revoked");
	CHECK_STR(jstr(json_object_get(g, "current"), "stage"), "revoked");
	json_decref(g);

	/* refusals store nothing */
	audits = audit_count();
	common_error_clear(&err);
	g = lifecycle_version_revoke(lc, id, 2, CA_REASON_SUPERSEDED, WHO,
	    &err);
	CHECK(g == NULL && err.code == COMMON_E_CONFLICT);
	json_decref(g);
	common_error_clear(&err);
	g = lifecycle_version_revoke(lc, id, 9, CA_REASON_SUPERSEDED, WHO,
	    &err);
	CHECK(g == NULL && err.code == COMMON_E_NOTFOUND);
	json_decref(g);
	common_error_clear(&err);
	g = lifecycle_version_revoke(lc, "cert-0000000000000000", 1,
	    CA_REASON_SUPERSEDED, WHO, &err);
	CHECK(g == NULL && err.code == COMMON_E_NOTFOUND);
	json_decref(g);
	common_error_clear(&err);
	g = lifecycle_version_get(lc, id, 7, false, &err);
	CHECK(g == NULL && err.code == COMMON_E_NOTFOUND);
	json_decref(g);
	common_error_clear(&err);
	g = lifecycle_version_revoke(lc, id, 1, (enum ca_reason)7, WHO, &err);
	CHECK(g == NULL && err.code == COMMON_E_INVALID);
	json_decref(g);
	CHECK(audit_count() == audits);

	/* the previous version can be revoked too; the certificate stays
	 * revoked and its current version is unchanged */
	json_decref(rv);
	common_error_clear(&err);
	rv = lifecycle_version_revoke(lc, id, 1, CA_REASON_SUPERSEDED, WHO,
	    &err);
	CHECK(rv != NULL);
	if (rv != NULL)
		audit_expected++;
	iss = store_issued_get(st, NULL, jstr(v1, "serial"));
	CHECK_STR(jstr(iss, "status"), "revoked");
	json_decref(iss);
	memset(&q, 0, sizeof(q));
	q.renewal_due = -1;	/* any */
	q.expiring_within_days = -1;
	q.stage = "revoked";
	CHECK(list_all(&q, &pages) == 1);
out:
	CHECK(audit_count() == audit_expected);
	X509_free(x);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	json_decref(rv);
	json_decref(vs);
	json_decref(r);
	json_decref(c);
}

static void
test_resources_associations(void)
{
	struct common_error err;
	json_t *c, *req, *res = NULL, *a = NULL, *l, *vs;
	char msg[512], key_id[64] = "";
	unsigned char *blob = NULL;
	size_t audits, bloblen;
	const char *cid, *rid = NULL, *aid = NULL;
	json_t *v1;
	char *serial = NULL;

	c = create_managed("web1", "tls_server", "web1.example.com", NULL);
	CHECK(c != NULL);
	if (c == NULL)
		return;
	cid = jstr(c, "id");

	/* resource refusals */
	audits = audit_count();
	req = json_pack("{s:s, s:s}", "name", "nginx-a", "type", "apache");
	common_error_clear(&err);
	CHECK(lifecycle_resource_create(lc, req, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID && strstr(err.msg, "type"));
	json_decref(req);
	req = json_pack("{s:s, s:i}", "name", "nginx-a", "port", 1);
	common_error_clear(&err);
	CHECK(lifecycle_resource_create(lc, req, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "unknown field \"port\""));
	json_decref(req);
	req = json_pack("{s:s}", "type", "nginx");
	common_error_clear(&err);
	CHECK(lifecycle_resource_create(lc, req, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	json_decref(req);
	req = json_pack("{s:s, s:i}", "name", "x", "config", 3);
	common_error_clear(&err);
	CHECK(lifecycle_resource_create(lc, req, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "field \"config\" must be an object"));
	json_decref(req);
	CHECK(audit_count() == audits);

	req = json_pack("{s:s, s:s, s:{s:s}}", "name", "web1", "type", "nginx",
	    "config", "cert_path", "/etc/nginx/web1.pem");
	common_error_clear(&err);
	res = lifecycle_resource_create(lc, req, WHO, &err);
	json_decref(req);
	CHECK(res != NULL);
	if (res == NULL)
		goto out;
	audit_expected++;
	rid = jstr(res, "id");
	CHECK(strncmp(rid, "res-", 4) == 0);
	CHECK_STR(jstr(res, "type"), "nginx");
	CHECK_STR(jstr(json_object_get(res, "config"), "cert_path"),
	    "/etc/nginx/web1.pem");
	CHECK(jstr(res, "created_at") != NULL);
	CHECK(audit_last_is("resource.create", rid));
	common_error_clear(&err);
	l = lifecycle_resource_get(lc, rid, &err);
	CHECK_STR(jstr(l, "name"), "web1");
	json_decref(l);
	common_error_clear(&err);
	l = lifecycle_resource_list(lc, NULL, 0, &err);
	CHECK(json_array_size(json_object_get(l, "resources")) == 1);
	CHECK(json_is_null(json_object_get(l, "next_page_token")));
	json_decref(l);
	{	/* default type */
		json_t *r2;

		req = json_pack("{s:s}", "name", "hook");
		common_error_clear(&err);
		r2 = lifecycle_resource_create(lc, req, WHO, &err);
		CHECK_STR(jstr(r2, "type"), "other");
		CHECK(json_is_object(json_object_get(r2, "config")));
		if (r2 != NULL)
			audit_expected++;
		common_error_clear(&err);
		CHECK(lifecycle_resource_delete(lc, jstr(r2, "id"), WHO,
		    &err) == 0);
		if (err.code == COMMON_E_NONE)
			audit_expected++;
		CHECK(audit_last_is("resource.delete", jstr(r2, "id")));
		json_decref(r2);
		json_decref(req);
	}

	/* association refusals */
	audits = audit_count();
	req = json_pack("{s:s, s:s}", "certificate_id",
	    "cert-0000000000000000", "resource_id", rid);
	common_error_clear(&err);
	CHECK(lifecycle_assoc_create(lc, req, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_NOTFOUND &&
	    strstr(err.msg, "certificate_id"));
	json_decref(req);
	req = json_pack("{s:s, s:s}", "certificate_id", cid, "resource_id",
	    "res-0000000000000000");
	common_error_clear(&err);
	CHECK(lifecycle_assoc_create(lc, req, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_NOTFOUND &&
	    strstr(err.msg, "resource_id"));
	json_decref(req);
	req = json_pack("{s:s}", "certificate_id", cid);
	common_error_clear(&err);
	CHECK(lifecycle_assoc_create(lc, req, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	json_decref(req);
	CHECK(audit_count() == audits);

	req = json_pack("{s:s, s:s}", "certificate_id", cid, "resource_id",
	    rid);
	common_error_clear(&err);
	a = lifecycle_assoc_create(lc, req, WHO, &err);
	CHECK(a != NULL);
	if (a == NULL) {
		json_decref(req);
		goto out;
	}
	audit_expected++;
	aid = jstr(a, "id");
	CHECK(strncmp(aid, "assoc-", 6) == 0);
	CHECK_STR(jstr(a, "certificate_id"), cid);
	CHECK_STR(jstr(a, "resource_id"), rid);
	CHECK(audit_last_is("association.create", aid));
	/* the same pair again */
	common_error_clear(&err);
	CHECK(lifecycle_assoc_create(lc, req, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_CONFLICT);
	json_decref(req);

	common_error_clear(&err);
	l = lifecycle_assoc_list(lc, cid, NULL, 0, &err);
	CHECK(json_array_size(json_object_get(l, "associations")) == 1);
	json_decref(l);
	common_error_clear(&err);
	l = lifecycle_assoc_list(lc, NULL, NULL, 0, &err);
	CHECK(json_array_size(json_object_get(l, "associations")) == 1);
	json_decref(l);
	common_error_clear(&err);
	l = lifecycle_assoc_list(lc, "cert-0000000000000000", NULL, 0, &err);
	CHECK(json_array_size(json_object_get(l, "associations")) == 0);
	json_decref(l);

	/* both ends are pinned while associated */
	audits = audit_count();
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete_now(lc, cid, WHO, &err) == -1);
	CHECK(err.code == COMMON_E_CONFLICT);
	snprintf(msg, sizeof(msg), "certificate %s has 1 association: %s "
	    "(resource %s \"web1\")", cid, aid, rid);
	CHECK_STR(err.msg, msg);
	common_error_clear(&err);
	CHECK(lifecycle_resource_delete(lc, rid, WHO, &err) == -1);
	CHECK(err.code == COMMON_E_CONFLICT);
	snprintf(msg, sizeof(msg), "resource %s \"web1\" has 1 association: "
	    "%s (certificate %s \"web1\")", rid, aid, cid);
	CHECK_STR(err.msg, msg);
	CHECK(audit_count() == audits);
	common_error_clear(&err);
	l = lifecycle_cert_get(lc, cid, &err);
	CHECK(l != NULL);
	json_decref(l);

	/* unpin, then delete */
	common_error_clear(&err);
	CHECK(lifecycle_assoc_delete(lc, aid, WHO, &err) == 0);
	audit_expected++;
	CHECK(audit_last_is("association.delete", aid));
	common_error_clear(&err);
	CHECK(lifecycle_assoc_delete(lc, aid, WHO, &err) == -1);
	CHECK(err.code == COMMON_E_NOTFOUND);

	v1 = store_version_get(st, NULL, cid, 1);
	snprintf(key_id, sizeof(key_id), "%s", jstr(v1, "key_id") != NULL ?
	    jstr(v1, "key_id") : "");
	serial = jstr(v1, "serial") != NULL ? strdup(jstr(v1, "serial")) :
	    NULL;
	json_decref(v1);
	CHECK(key_id[0] != '\0');
	CHECK(store_key_get(st, NULL, key_id, &blob, &bloblen) == 0);
	free(blob);
	blob = NULL;
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete_now(lc, cid, WHO, &err) == 0);
	audit_expected++;
	CHECK(audit_last_is("certificate.delete", cid));
	common_error_clear(&err);
	l = lifecycle_cert_get(lc, cid, &err);
	CHECK(l == NULL);
	json_decref(l);
	CHECK(err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	vs = lifecycle_versions(lc, cid, &err);
	CHECK(vs == NULL && err.code == COMMON_E_NOTFOUND);
	json_decref(vs);
	vs = store_version_list(st, NULL, cid);
	CHECK(vs != NULL && json_array_size(vs) == 0);
	json_decref(vs);
	CHECK(store_key_get(st, NULL, key_id, &blob, &bloblen) == -1);
	free(blob);
	/* the issued row stays for CRLs */
	if (serial != NULL) {
		json_t *iss = store_issued_get(st, NULL, serial);

		CHECK(iss != NULL);
		json_decref(iss);
	}
	common_error_clear(&err);
	CHECK(lifecycle_resource_delete(lc, rid, WHO, &err) == 0);
	audit_expected++;
	CHECK(audit_last_is("resource.delete", rid));
	common_error_clear(&err);
	CHECK(lifecycle_resource_get(lc, rid, &err) == NULL);
	CHECK(err.code == COMMON_E_NOTFOUND);
out:
	CHECK(audit_count() == audit_expected);
	free(serial);
	json_decref(a);
	json_decref(res);
	json_decref(c);
}

static void
test_issue(void)
{
	struct lifecycle_issue_req req;
	struct common_error err;
	const char *sans[] = { "acme1.example.com", "www.acme1.example.com" };
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256);
	EVP_PKEY *key2 = ca_key_generate(CA_KEY_ECDSA_P256);
	json_t *v = NULL, *v2 = NULL, *v3 = NULL, *c = NULL, *m = NULL, *r;
	json_t *vs = NULL;
	char id[64] = "";
	X509 *x = NULL;

	memset(&req, 0, sizeof(req));
	req.ca_id = sub_id;
	req.pubkey = key;
	req.sans = sans;
	req.nsans = 2;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 30;
	req.origin = "acme";
	common_error_clear(&err);
	v = lifecycle_issue(lc, &req, "acme:acct-1", &err);
	CHECK(v != NULL);
	if (v == NULL) {
		fprintf(stderr, "issue: %s\n", err.msg);
		goto out;
	}
	audit_expected++;
	snprintf(id, sizeof(id), "%s", jstr(v, "certificate_id"));
	CHECK(jint(v, "version") == 1);
	CHECK_STR(jstr(v, "stage"), "current");
	CHECK(chain_verifies(jstr(v, "certificate"), jstr(v, "chain")));
	CHECK((x = pem_cert(jstr(v, "certificate"))) != NULL);
	CHECK(x != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1);
	CHECK(x != NULL && X509_check_host(x, "www.acme1.example.com", 0, 0,
	    NULL) == 1);
	common_error_clear(&err);
	c = lifecycle_cert_get(lc, id, &err);
	CHECK_STR(jstr(c, "mode"), "external");
	CHECK_STR(jstr(c, "origin"), "acme");
	CHECK_STR(jstr(c, "name"), "acme1.example.com");
	CHECK_STR(jstr(c, "profile"), "tls_server");
	{
		json_t *iss = store_issued_get(st, NULL, jstr(v, "serial"));

		CHECK_STR(jstr(iss, "origin"), "acme");
		CHECK_STR(jstr(iss, "cert_id"), id);
		json_decref(iss);
	}

	/* the same names again: a second entry, its name made unique */
	req.pubkey = key2;
	common_error_clear(&err);
	v2 = lifecycle_issue(lc, &req, "acme:acct-1", &err);
	CHECK(v2 != NULL);
	if (v2 != NULL) {
		json_t *c2;
		char want[128];

		audit_expected++;
		CHECK(strcmp(jstr(v2, "certificate_id"), id) != 0);
		common_error_clear(&err);
		c2 = lifecycle_cert_get(lc, jstr(v2, "certificate_id"), &err);
		snprintf(want, sizeof(want), "acme1.example.com (%s)",
		    jstr(v2, "certificate_id"));
		CHECK_STR(jstr(c2, "name"), want);
		json_decref(c2);
	}
	/* an explicit name that is taken is a conflict */
	req.name = "acme1.example.com";
	common_error_clear(&err);
	r = lifecycle_issue(lc, &req, "acme:acct-1", &err);
	CHECK(r == NULL && err.code == COMMON_E_CONFLICT);
	json_decref(r);
	/* ... unless the caller marks it a hint (EST's "<cn> (est label)") */
	req.name_is_hint = true;
	common_error_clear(&err);
	r = lifecycle_issue(lc, &req, "acme:acct-1", &err);
	CHECK(r != NULL);
	if (r != NULL) {
		json_t *c3;
		char want[128];

		audit_expected++;
		common_error_clear(&err);
		c3 = lifecycle_cert_get(lc, jstr(r, "certificate_id"), &err);
		snprintf(want, sizeof(want), "acme1.example.com (%s)",
		    jstr(r, "certificate_id"));
		CHECK_STR(jstr(c3, "name"), want);
		json_decref(c3);
	}
	json_decref(r);
	req.name_is_hint = false;
	req.name = NULL;

	/* into the existing entry: version 2, the first becomes previous */
	req.cert_id = id;
	common_error_clear(&err);
	v3 = lifecycle_issue(lc, &req, "acme:acct-1", &err);
	CHECK(v3 != NULL);
	if (v3 != NULL)
		audit_expected++;
	CHECK(jint(v3, "version") == 2);
	CHECK_STR(jstr(v3, "certificate_id"), id);
	common_error_clear(&err);
	vs = lifecycle_versions(lc, id, &err);
	CHECK_STR(jstr(json_array_get(json_object_get(vs, "versions"), 0),
	    "stage"), "previous");
	CHECK_STR(jstr(json_array_get(json_object_get(vs, "versions"), 1),
	    "stage"), "current");

	/* a renewal through the API re-signs the last key given */
	common_error_clear(&err);
	r = lifecycle_cert_renew(lc, id, WHO, &err);
	CHECK(r != NULL);
	if (r != NULL) {
		X509 *rx = pem_cert(jstr(r, "certificate"));

		audit_expected++;
		CHECK(jint(r, "version") == 3);
		CHECK(rx != NULL && EVP_PKEY_eq(X509_get0_pubkey(rx),
		    key2) == 1);
		X509_free(rx);
	}
	json_decref(r);

	/* managed entries do not take outside keys */
	m = create_managed("managed-no-outside", "tls_server",
	    "mno.example.com", NULL);
	req.cert_id = jstr(m, "id");
	common_error_clear(&err);
	r = lifecycle_issue(lc, &req, "acme:acct-1", &err);
	CHECK(r == NULL && err.code == COMMON_E_CONFLICT);
	json_decref(r);
	req.cert_id = "cert-0000000000000000";
	common_error_clear(&err);
	r = lifecycle_issue(lc, &req, "acme:acct-1", &err);
	CHECK(r == NULL && err.code == COMMON_E_NOTFOUND);
	json_decref(r);
	req.cert_id = NULL;
	req.ca_id = "ca-0000000000000000";
	common_error_clear(&err);
	r = lifecycle_issue(lc, &req, "acme:acct-1", &err);
	CHECK(r == NULL && err.code == COMMON_E_NOTFOUND);
	json_decref(r);
out:
	CHECK(audit_count() == audit_expected);
	X509_free(x);
	json_decref(vs);
	json_decref(m);
	json_decref(c);
	json_decref(v);
	json_decref(v2);
	json_decref(v3);
	EVP_PKEY_free(key);
	EVP_PKEY_free(key2);
}

/* A CSR for key as a door receives it: signed, encoded, parsed back. */
static X509_REQ *
t_received_csr(EVP_PKEY *key)
{
	X509_REQ *r = X509_REQ_new(), *back = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	int len;

	if (r != NULL && X509_REQ_set_pubkey(r, key) == 1 &&
	    X509_REQ_sign(r, key, EVP_sha256()) > 0 &&
	    (len = i2d_X509_REQ(r, &der)) > 0) {
		p = der;
		back = d2i_X509_REQ(NULL, &p, len);
	}
	OPENSSL_free(der);
	X509_REQ_free(r);
	return back;
}

/* True when x encodes to the certificate PEM text pem holds. */
static bool
t_same_cert(X509 *x, const char *pem)
{
	X509 *y = pem_cert(pem);
	bool same = x != NULL && y != NULL && X509_cmp(x, y) == 0;

	X509_free(y);
	return same;
}

/* True when x's SubjectPublicKeyInfo encodes key. */
static bool
t_same_spki(X509 *x, EVP_PKEY *key)
{
	unsigned char *a = NULL, *b = NULL;
	int alen, blen;
	bool same;

	alen = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &a);
	blen = i2d_PUBKEY(key, &b);
	same = alen > 0 && alen == blen && memcmp(a, b, (size_t)alen) == 0;
	OPENSSL_free(a);
	OPENSSL_free(b);
	return same;
}

/*
 * A door that hands its CSR's SubjectPublicKeyInfo and asks for the
 * certificate back: the version's public_key is the key's PEM, the
 * certificate handed back is the one recorded, a certificate left from
 * an earlier try is replaced (new entry, next version) or dropped (a
 * refusal), and a missing CA is still "ca_id: no CA".
 */
static void
test_issue_handback(void)
{
	struct lifecycle_issue_req req;
	struct common_error err;
	const char *sans[] = { "handback.example.com" };
	const char *bad_sans[] = { "bad..example.com" };
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256);
	X509_REQ *csr = key != NULL ? t_received_csr(key) : NULL;
	X509 *x = NULL, *first = NULL;
	json_t *v = NULL, *v2 = NULL, *rec = NULL, *r;
	char *pub = NULL;

	CHECK(csr != NULL);
	if (csr == NULL)
		goto out;
	memset(&req, 0, sizeof(req));
	req.ca_id = sub_id;
	req.pubkey = X509_REQ_get0_pubkey(csr);
	req.spki = X509_REQ_get_X509_PUBKEY(csr);
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 30;
	req.origin = "est";
	req.issued = &x;
	common_error_clear(&err);
	v = lifecycle_issue(lc, &req, "est:dev", &err);
	CHECK(v != NULL && x != NULL);
	if (v == NULL || x == NULL)
		goto out;
	audit_expected++;
	CHECK(t_same_cert(x, jstr(v, "certificate")));
	/* ca_issue writes the SPKI without attaching an EVP_PKEY to the
	 * certificate it returns: compare the encodings */
	CHECK(t_same_spki(x, key));
	rec = store_version_get(st, NULL, jstr(v, "certificate_id"), 1);
	pub = common_pubkey_to_pem(key);
	CHECK(pub != NULL && jstr(rec, "public_key") != NULL &&
	    strcmp(jstr(rec, "public_key"), pub) == 0);

	/* the next version of the same entry: the certificate held from
	 * the first call is replaced by the new one */
	first = X509_dup(x);
	req.cert_id = jstr(v, "certificate_id");
	common_error_clear(&err);
	v2 = lifecycle_issue(lc, &req, "est:dev", &err);
	CHECK(v2 != NULL && x != NULL);
	if (v2 != NULL)
		audit_expected++;
	CHECK(v2 != NULL && jint(v2, "version") == 2);
	CHECK(v2 != NULL && t_same_cert(x, jstr(v2, "certificate")));
	CHECK(x != NULL && first != NULL && X509_cmp(x, first) != 0);

	/* refused: what the earlier try left is freed, nothing handed back */
	req.cert_id = NULL;
	req.sans = bad_sans;
	common_error_clear(&err);
	r = lifecycle_issue(lc, &req, "est:dev", &err);
	CHECK(r == NULL && err.code == COMMON_E_INVALID && x == NULL);
	json_decref(r);

	/* a CA that does not exist: NOTFOUND worded as before */
	req.sans = sans;
	req.ca_id = "ca-0000000000000000";
	common_error_clear(&err);
	r = lifecycle_issue(lc, &req, "est:dev", &err);
	CHECK(r == NULL && err.code == COMMON_E_NOTFOUND && x == NULL);
	CHECK_STR(err.msg, "ca_id: no CA ca-0000000000000000");
	json_decref(r);
	/* the same into an existing entry */
	req.cert_id = jstr(v, "certificate_id");
	common_error_clear(&err);
	r = lifecycle_issue(lc, &req, "est:dev", &err);
	CHECK(r == NULL && err.code == COMMON_E_NOTFOUND && x == NULL);
	CHECK_STR(err.msg, "ca_id: no CA ca-0000000000000000");
	json_decref(r);
out:
	free(pub);
	json_decref(rec);
	json_decref(v);
	json_decref(v2);
	X509_free(first);
	X509_free(x);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
}

/* ---- issuance in the caller's transaction ---- */

struct t_issue_txn {
	const struct lifecycle_issue_req	*req;
	const char				*verdict;	/* meta value */
	json_t					*out;
	struct common_error			 err;
	int					 tries;
};

/* What ACME finalize does: issue, then record the order's verdict in the
 * same transaction (here a meta key), whether issuance worked or not. */
static int
t_issue_then_mark(struct store_txn *txn, void *arg)
{
	struct t_issue_txn *t = arg;

	t->tries++;
	json_decref(t->out);
	t->out = lifecycle_issue_txn(lc, txn, t->req, "acme:acct-t", &t->err);
	if (t->out == NULL && t->err.code == COMMON_E_INTERNAL)
		return -1;
	return store_meta_put(txn, "test_order_verdict", t->out != NULL ?
	    jstr(t->out, "serial") : t->verdict);
}

/* Issues and bumps a shared counter read without a write lock, so two
 * threads doing it deadlock now and then and store_txn_run reruns the
 * whole callback. */
static int
t_issue_and_count(struct store_txn *txn, void *arg)
{
	struct t_issue_txn *t = arg;
	char *v, text[32];
	long n;

	t->tries++;
	json_decref(t->out);
	if ((t->out = lifecycle_issue_txn(lc, txn, t->req, "acme:acct-c",
	    &t->err)) == NULL)
		return -1;
	v = store_meta_get(st, txn, T_COUNTER);
	n = v != NULL ? strtol(v, NULL, 10) : 0;
	free(v);
	snprintf(text, sizeof(text), "%ld", n + 1);
	return store_meta_put(txn, T_COUNTER, text);
}

static void *
t_issuer_thread(void *arg)
{
	struct lifecycle_issue_req *req = arg;
	struct t_issue_txn t;
	int i, *res = calloc(2, sizeof(int));	/* failures, tries */

	for (i = 0; i < T_ISSUES_PER_THREAD && res != NULL; i++) {
		memset(&t, 0, sizeof(t));
		t.req = req;
		if (store_txn_run(st, t_issue_and_count, &t) != 0)
			res[0]++;
		res[1] += t.tries;
		json_decref(t.out);
	}
	return res;
}

static void
test_issue_txn(void)
{
	const char *sans[] = { "txn.example.com" };
	const char *bad_sans[] = { "bad..example.com" };
	struct lifecycle_issue_req req, creq[T_THREADS];
	struct t_issue_txn t;
	struct store_txn *txn;
	struct common_error err;
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256);
	EVP_PKEY *ckey[T_THREADS];
	pthread_t th[T_THREADS];
	size_t certs, issued, i;
	json_t *v, *iss, *c;
	char *verdict, *counter;
	void *fails;
	int tries = 0;

	memset(&req, 0, sizeof(req));
	req.ca_id = sub_id;
	req.pubkey = key;
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 7;
	req.origin = "acme";

	/* Aborted by the caller: nothing of it remains, and err was
	 * cleared at the start. */
	certs = cert_count();
	issued = issued_count();
	txn = store_txn_begin(st);
	common_error_set(&err, COMMON_E_POLICY, "left over");
	v = lifecycle_issue_txn(lc, txn, &req, "acme:acct-t", &err);
	CHECK(v != NULL && err.code == COMMON_E_NONE);
	/* inside the txn the inventory already holds it */
	c = store_cert_get(st, txn, jstr(v, "certificate_id"));
	CHECK(c != NULL);
	json_decref(c);
	store_txn_abort(txn);
	CHECK(cert_count() == certs);
	CHECK(issued_count() == issued);
	CHECK(audit_count() == audit_expected);
	CHECK(store_issued_get(st, NULL, jstr(v, "serial")) == NULL);
	json_decref(v);

	/* Committed with the caller's own write. */
	memset(&t, 0, sizeof(t));
	t.req = &req;
	CHECK(store_txn_run(st, t_issue_then_mark, &t) == 0);
	CHECK(t.out != NULL);
	if (t.out != NULL)
		audit_expected++;
	CHECK(cert_count() == certs + 1);
	CHECK(issued_count() == issued + 1);
	iss = audit_last();
	CHECK_STR(jstr(iss, "action"), "certificate.create");
	CHECK_STR(jstr(iss, "object"), jstr(t.out, "certificate_id"));
	CHECK_STR(jstr(iss, "who"), "acme:acct-t");
	json_decref(iss);
	verdict = store_meta_get(st, NULL, "test_order_verdict");
	CHECK_STR(verdict, jstr(t.out, "serial"));
	free(verdict);
	iss = store_issued_get(st, NULL, jstr(t.out, "serial"));
	CHECK_STR(jstr(iss, "origin"), "acme");
	CHECK_STR(jstr(iss, "cert_id"), jstr(t.out, "certificate_id"));
	json_decref(iss);
	CHECK(chain_verifies(jstr(t.out, "certificate"), jstr(t.out,
	    "chain")));
	json_decref(t.out);

	/* Refused (a bad SAN; an unknown CA): nothing written, so the
	 * caller's verdict commits alone. */
	req.sans = bad_sans;
	memset(&t, 0, sizeof(t));
	t.req = &req;
	t.verdict = "invalid: bad SAN";
	CHECK(store_txn_run(st, t_issue_then_mark, &t) == 0);
	CHECK(t.out == NULL && t.err.code == COMMON_E_INVALID);
	verdict = store_meta_get(st, NULL, "test_order_verdict");
	CHECK_STR(verdict, "invalid: bad SAN");
	free(verdict);
	req.sans = sans;
	req.ca_id = "ca-0000000000000000";
	memset(&t, 0, sizeof(t));
	t.req = &req;
	t.verdict = "invalid: no CA";
	CHECK(store_txn_run(st, t_issue_then_mark, &t) == 0);
	CHECK(t.out == NULL && t.err.code == COMMON_E_NOTFOUND);
	req.ca_id = sub_id;
	/* into an entry that is not external: a conflict, nothing written */
	c = create_managed("txn-managed", "tls_server", "txnm.example.com",
	    NULL);
	req.cert_id = jstr(c, "id");
	memset(&t, 0, sizeof(t));
	t.req = &req;
	t.verdict = "invalid: managed";
	CHECK(store_txn_run(st, t_issue_then_mark, &t) == 0);
	CHECK(t.out == NULL && t.err.code == COMMON_E_CONFLICT);
	req.cert_id = NULL;
	json_decref(c);
	CHECK(cert_count() == certs + 2);
	CHECK(issued_count() == issued + 2);
	CHECK(audit_count() == audit_expected);
	/* no transaction at all */
	common_error_clear(&err);
	CHECK(lifecycle_issue_txn(lc, NULL, &req, "acme:acct-t", &err) ==
	    NULL);
	CHECK(err.code == COMMON_E_INTERNAL);

	/* Concurrent issuers bumping one counter: deadlocked tries are
	 * rerun whole, and every committed run counts exactly once. */
	for (i = 0; i < T_THREADS; i++) {
		ckey[i] = ca_key_generate(CA_KEY_ECDSA_P256);
		creq[i] = req;
		creq[i].pubkey = ckey[i];
		CHECK(pthread_create(&th[i], NULL, t_issuer_thread,
		    &creq[i]) == 0);
	}
	for (i = 0; i < T_THREADS; i++) {
		fails = NULL;
		CHECK(pthread_join(th[i], &fails) == 0);
		CHECK(fails != NULL && ((int *)fails)[0] == 0);
		if (fails != NULL)
			tries += ((int *)fails)[1];
		free(fails);
		EVP_PKEY_free(ckey[i]);
	}
	fprintf(stderr, "concurrent issuance: %d tries for %d commits\n",
	    tries, T_THREADS * T_ISSUES_PER_THREAD);
	audit_expected += T_THREADS * T_ISSUES_PER_THREAD;
	counter = store_meta_get(st, NULL, T_COUNTER);
	CHECK(counter != NULL && strtol(counter, NULL, 10) ==
	    T_THREADS * T_ISSUES_PER_THREAD);
	free(counter);
	CHECK(cert_count() == certs + 2 + T_THREADS * T_ISSUES_PER_THREAD);
	CHECK(issued_count() == issued + 2 + T_THREADS * T_ISSUES_PER_THREAD);
	CHECK(audit_count() == audit_expected);
	CHECK(store_check(st) == 0);
	EVP_PKEY_free(key);
}

/* ---- revocation by serial, the registry view ---- */

/* Lower-case copy of s with leading zeros, as a client might send it. */
static void
t_serial_variant(const char *s, char *out, size_t outlen)
{
	size_t i;

	snprintf(out, outlen, "00%s", s);
	for (i = 0; out[i] != '\0'; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
}

static void
test_revoke_serial(void)
{
	const char *sans[] = { "serial.example.com" };
	struct lifecycle_issue_req req;
	struct common_error err;
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256);
	json_t *v1 = NULL, *v2 = NULL, *v3 = NULL, *r, *rec, *vs, *c;
	char id[64] = "", variant[64], *s1 = NULL;
	X509 *x;
	time_t nb;

	memset(&req, 0, sizeof(req));
	req.ca_id = sub_id;
	req.pubkey = key;
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 30;
	req.origin = "acme";
	common_error_clear(&err);
	CHECK((v1 = lifecycle_issue(lc, &req, WHO, &err)) != NULL);
	if (v1 == NULL)
		goto out;
	audit_expected++;
	snprintf(id, sizeof(id), "%s", jstr(v1, "certificate_id"));
	req.cert_id = id;
	common_error_clear(&err);
	CHECK((v2 = lifecycle_issue(lc, &req, WHO, &err)) != NULL);
	if (v2 == NULL)
		goto out;
	audit_expected++;
	req.cert_id = NULL;

	/* The registry view, by any spelling of the serial. */
	t_serial_variant(jstr(v1, "serial"), variant, sizeof(variant));
	common_error_clear(&err);
	rec = lifecycle_issued_get(lc, variant, &err);
	CHECK(rec != NULL);
	CHECK_STR(jstr(rec, "serial"), jstr(v1, "serial"));
	CHECK_STR(jstr(rec, "ca_id"), sub_id);
	CHECK_STR(jstr(rec, "cert_id"), id);
	CHECK(jint(rec, "version") == 1);
	CHECK_STR(jstr(rec, "origin"), "acme");
	CHECK_STR(jstr(rec, "status"), "valid");
	CHECK(jstr(rec, "der") != NULL);
	x = pem_cert(jstr(v1, "certificate"));
	CHECK(x != NULL && common_asn1_time(X509_get0_notBefore(x),
	    &nb) == 0);
	CHECK(json_is_integer(json_object_get(rec, "not_before")) &&
	    jint(rec, "not_before") == (json_int_t)nb);
	CHECK(jint(rec, "not_after") > jint(rec, "not_before"));
	X509_free(x);
	json_decref(rec);
	common_error_clear(&err);
	CHECK(lifecycle_issued_get(lc, "0BADC0DE", &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(lifecycle_issued_get(lc, "not-hex", &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(lifecycle_issued_get(lc, NULL, &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);

	/* Revoking the previous version: its stage follows, the
	 * certificate stays current. */
	common_error_clear(&err);
	r = lifecycle_revoke_serial(lc, variant, CA_REASON_KEY_COMPROMISE,
	    WHO, &err);
	CHECK(r != NULL);
	if (r != NULL)
		audit_expected++;
	CHECK_STR(jstr(r, "serial"), jstr(v1, "serial"));
	CHECK_STR(jstr(r, "ca_id"), sub_id);
	CHECK_STR(jstr(r, "cert_id"), id);
	CHECK(jint(r, "version") == 1);
	json_decref(r);
	CHECK(audit_last_is("version.revoke", id));
	common_error_clear(&err);
	vs = lifecycle_versions(lc, id, &err);
	CHECK_STR(jstr(json_array_get(json_object_get(vs, "versions"), 0),
	    "stage"), "revoked");
	CHECK_STR(jstr(json_array_get(json_object_get(vs, "versions"), 0),
	    "revocation_reason"), "keyCompromise");
	CHECK_STR(jstr(json_array_get(json_object_get(vs, "versions"), 1),
	    "stage"), "current");
	json_decref(vs);
	common_error_clear(&err);
	c = lifecycle_cert_get(lc, id, &err);
	CHECK_STR(jstr(c, "stage"), "current");
	json_decref(c);
	rec = lifecycle_issued_get(lc, jstr(v1, "serial"), &err);
	CHECK_STR(jstr(rec, "status"), "revoked");
	CHECK_STR(jstr(rec, "reason"), "keyCompromise");
	json_decref(rec);
	/* twice: a conflict, nothing more recorded */
	common_error_clear(&err);
	CHECK(lifecycle_revoke_serial(lc, jstr(v1, "serial"),
	    CA_REASON_UNSPECIFIED, WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_CONFLICT);

	/* Revoking the current version revokes the certificate. */
	common_error_clear(&err);
	r = lifecycle_revoke_serial(lc, jstr(v2, "serial"),
	    CA_REASON_SUPERSEDED, WHO, &err);
	CHECK(r != NULL && jint(r, "version") == 2);
	if (r != NULL)
		audit_expected++;
	json_decref(r);
	common_error_clear(&err);
	c = lifecycle_cert_get(lc, id, &err);
	CHECK_STR(jstr(c, "stage"), "revoked");
	json_decref(c);

	/* Unknown, malformed, or an unusable reason. */
	common_error_clear(&err);
	CHECK(lifecycle_revoke_serial(lc, "0BADC0DE", CA_REASON_UNSPECIFIED,
	    WHO, &err) == NULL && err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(lifecycle_revoke_serial(lc, "", CA_REASON_UNSPECIFIED, WHO,
	    &err) == NULL && err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(lifecycle_revoke_serial(lc, "12 34", CA_REASON_UNSPECIFIED, WHO,
	    &err) == NULL && err.code == COMMON_E_NOTFOUND);

	/* A deleted inventory entry keeps its registry row: revocation by
	 * serial still works, on the registry alone. */
	req.pubkey = key;
	common_error_clear(&err);
	CHECK((v3 = lifecycle_issue(lc, &req, WHO, &err)) != NULL);
	if (v3 == NULL)
		goto out;
	audit_expected++;
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete_now(lc, jstr(v3, "certificate_id"), WHO,
	    &err) == 0);
	audit_expected++;
	s1 = strdup(jstr(v3, "serial"));
	common_error_clear(&err);
	r = lifecycle_revoke_serial(lc, s1, CA_REASON_CESSATION_OF_OPERATION,
	    WHO, &err);
	CHECK(r != NULL);
	if (r != NULL)
		audit_expected++;
	CHECK(json_is_null(json_object_get(r, "cert_id")));
	CHECK(json_is_null(json_object_get(r, "version")));
	CHECK_STR(jstr(r, "ca_id"), sub_id);
	json_decref(r);
	CHECK(audit_last_is("serial.revoke", s1));
	rec = lifecycle_issued_get(lc, s1, &err);
	CHECK_STR(jstr(rec, "status"), "revoked");
	json_decref(rec);
	CHECK(audit_count() == audit_expected);
	CHECK(store_check(st) == 0);
out:
	free(s1);
	json_decref(v1);
	json_decref(v2);
	json_decref(v3);
	EVP_PKEY_free(key);
}

/* A registry row that already carries not_before keeps it; one that
 * carries neither it nor a readable certificate is damaged. */
static int
t_put_rows(struct store_txn *txn, void *arg)
{
	json_t *a, *b;
	int rc;

	(void)arg;
	a = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "serial", "0ABC01",
	    "ca_id", sub_id, "origin", "est", "not_before", (json_int_t)12345,
	    "not_after", (json_int_t)99999, "status", "valid", "der", "AA==");
	b = json_pack("{s:s, s:s, s:s, s:I, s:s}", "serial", "0ABC02",
	    "ca_id", sub_id, "origin", "est", "not_after", (json_int_t)99999,
	    "status", "valid");
	rc = store_issued_put(txn, "0ABC01", a) == 0 &&
	    store_issued_put(txn, "0ABC02", b) == 0 ? 0 : -1;
	json_decref(a);
	json_decref(b);
	return rc;
}

static void
test_issued_rows(void)
{
	struct common_error err;
	json_t *rec;

	CHECK(store_txn_run(st, t_put_rows, NULL) == 0);
	common_error_clear(&err);
	rec = lifecycle_issued_get(lc, "abc01", &err);
	CHECK(rec != NULL && jint(rec, "not_before") == 12345);
	json_decref(rec);
	common_error_clear(&err);
	CHECK(lifecycle_issued_get(lc, "0ABC02", &err) == NULL);
	CHECK(err.code == COMMON_E_INTERNAL);
}

static void
test_audit_trail(void)
{
	json_t *a = store_audit_list(st, NULL, 0, 1000), *e;
	size_t i, creates = 0;

	CHECK(json_array_size(a) == audit_expected);
	json_array_foreach(a, i, e) {
		const char *t = jstr(e, "time");

		CHECK(t != NULL && strlen(t) == 20 && t[10] == 'T' &&
		    t[19] == 'Z');
		CHECK_STR(jstr(e, "result"), "ok");
		if (strcmp(jstr(e, "action"), "certificate.create") == 0)
			creates++;
	}
	CHECK(creates > 30);
	json_decref(a);
}

static void
test_teardown(void)
{
	lifecycle_free(lc);
	ca_ctx_free(ctx);
	store_close(st);
	lc = NULL;
	ctx = NULL;
	st = NULL;
}

/* The request's subject text and a CSR's name compare through ca/'s
 * parser: keywords it accepts (E=) and escaped spaces must match. */
static void
test_subject_match_forms(void)
{
	X509_NAME *n = X509_NAME_new();

	CHECK(n != NULL);
	if (n == NULL)
		return;
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)" a", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "emailAddress", MBSTRING_UTF8,
	    (const unsigned char *)"a@b.c", -1, -1, 0);
	CHECK(lifecycle_subject_match("CN=\\ a,E=a@b.c", n));
	CHECK(lifecycle_subject_match("emailAddress=A@B.C,CN=\\ a", n));
	CHECK(!lifecycle_subject_match("CN=a,E=a@b.c", n));
	CHECK(!lifecycle_subject_match("CN=\\ a", n));
	CHECK(!lifecycle_subject_match("XX=1", n));
	X509_NAME_free(n);
}

/* ---- the scheduler, version stages and deletion ---- */

/*
 * These run in a store of their own (DIR/sched) with a configuration of
 * their own, so that moving the clock ahead only wakes certificates made
 * here; each test removes what it made. Notifications are counted
 * through the delivery queue: event kind k is wanted by S_EV_BASE^k
 * webhooks, so the growth of lifecycle_notify_pending() spells how many
 * events of each kind were sent, in base S_EV_BASE (at most 3 of a kind
 * per step).
 */
#define S_WHO		"token:sched"
#define S_JITTER	600	/* lifecycle.renewal_jitter_seconds */
#define S_RETRY_MIN	60	/* lifecycle.retry_min_seconds */
#define S_RETRY_MAX	240	/* lifecycle.retry_max_seconds */
#define S_HISTORY	3	/* lifecycle.history_limit */
#define S_WARN_DAYS	14.0	/* lifecycle.expiry_warning_days */
#define S_DELETE_DAYS	1.0	/* lifecycle.deletion_pending_days */
#define S_DAY		86400
#define S_EV_BASE	4
#define S_EV_KINDS	5
#define S_HOOKS_MAX	(1 + 4 + 16 + 64 + 256)
#define S_SLACK		3	/* seconds a check may lag the tick */
#define S_TEXT_MAX	8192

static struct store *s_st;
static struct ca_ctx *s_ctx;
static struct lifecycle *s_lc;
static struct conf s_conf;
static struct conf_lifecycle_profile s_profiles[1];
static struct conf_webhook s_hooks[S_HOOKS_MAX];
static char *s_hook_events[S_EV_KINDS][1];
static char s_root[64], s_sub[64], s_flaky[64];
static time_t s_offset;
static size_t s_pending;	/* deliveries queued when last counted */
static uint64_t s_audit_seq;	/* audit records before the current step */

static const enum lifecycle_event s_kinds[S_EV_KINDS] = {
	LIFECYCLE_EV_RENEWAL_WINDOW, LIFECYCLE_EV_RENEWED,
	LIFECYCLE_EV_RENEWAL_FAILED, LIFECYCLE_EV_EXPIRING,
	LIFECYCLE_EV_REVOKED,
};

/* Creates a CA (type, issuer) under s_ctx; its id into out. */
static int
s_make_ca(struct store_txn *txn, const char *name, const char *type,
    const char *issuer, char *out, size_t outlen)
{
	struct ca_create_req req;
	struct common_error err;
	json_t *ca;

	common_error_clear(&err);
	memset(&req, 0, sizeof(req));
	req.name = name;
	req.type = type;
	req.issuer_ca_id = issuer;
	req.subject = strcmp(type, "root") == 0 ?
	    "CN=Sched Root,O=pkid tests" : strcmp(name, "Flaky") == 0 ?
	    "CN=Sched Flaky,O=pkid tests" : "CN=Sched Issuing,O=pkid tests";
	req.key_alg = CA_KEY_ECDSA_P256;
	req.validity_days = strcmp(type, "root") == 0 ? 3650 : 1825;
	req.path_len = strcmp(type, "root") == 0 ? -1 : 0;
	if ((ca = ca_create(s_ctx, txn, &req, &err)) == NULL) {
		fprintf(stderr, "CA %s: %s\n", name, err.msg);
		return -1;
	}
	snprintf(out, outlen, "%s", jstr(ca, "id"));
	json_decref(ca);
	return 0;
}

static int
s_setup_cas(struct store_txn *txn, void *arg)
{
	(void)arg;
	if (s_make_ca(txn, "Sched Root", "root", NULL, s_root,
	    sizeof(s_root)) == -1 ||
	    s_make_ca(txn, "Sched Issuing", "subordinate", s_root, s_sub,
	    sizeof(s_sub)) == -1 ||
	    s_make_ca(txn, "Flaky", "subordinate", s_root, s_flaky,
	    sizeof(s_flaky)) == -1)
		return -1;
	return 0;
}

struct s_state_arg {
	const char	*ca_id;
	const char	*state;
};

static int
s_ca_state_txn(struct store_txn *txn, void *arg)
{
	struct s_state_arg *a = arg;
	struct common_error err;

	common_error_clear(&err);
	if (ca_set_state(s_ctx, txn, a->ca_id, a->state, &err) == -1) {
		fprintf(stderr, "CA %s -> %s: %s\n", a->ca_id, a->state,
		    err.msg);
		return -1;
	}
	return 0;
}

static void
s_ca_state(const char *ca_id, const char *state)
{
	struct s_state_arg a = { ca_id, state };

	CHECK(store_txn_run(s_st, s_ca_state_txn, &a) == 0);
}

/* The clock: common_now() = wall clock + s_offset. */
static void
s_clock_reset(void)
{
	s_offset = 0;
	common_clock_set_offset(0);
}

static void
s_advance(time_t seconds)
{
	s_offset += seconds;
	common_clock_set_offset(s_offset);
}

/* Moves the clock to t (epoch seconds, as common_now() counts). */
static void
s_clock_to(time_t t)
{
	s_advance(t - common_now());
}

static void
s_tick(void)
{
	CHECK(lifecycle_tick(s_lc) == 0);
}

/*
 * True when exactly these notifications were queued since the last call
 * (renewal_window, renewed, renewal_failed, expiring, revoked).
 */
static bool
s_events(unsigned window, unsigned renewed, unsigned failed,
    unsigned expiring, unsigned revoked)
{
	const unsigned want[S_EV_KINDS] = { window, renewed, failed,
	    expiring, revoked };
	size_t now = lifecycle_notify_pending(s_lc), delta, expect = 0, w = 1;
	size_t k, d;

	delta = now - s_pending;
	s_pending = now;
	for (k = 0; k < S_EV_KINDS; w *= S_EV_BASE, k++)
		expect += want[k] * w;
	if (delta == expect)
		return true;
	fprintf(stderr, "events: got");
	for (k = 0, d = delta; k < S_EV_KINDS; k++, d /= S_EV_BASE)
		fprintf(stderr, " %s=%zu", lifecycle_event_name(s_kinds[k]),
		    d % S_EV_BASE);
	fprintf(stderr, ", want %u/%u/%u/%u/%u\n", window, renewed, failed,
	    expiring, revoked);
	return false;
}

/* Audit records from here on are the current step's. */
static void
s_audit_mark(void)
{
	json_t *a;
	size_t n;

	for (;;) {
		a = store_audit_list(s_st, NULL, s_audit_seq,
		    LIFECYCLE_PAGE_MAX);
		n = json_array_size(a);
		if (n > 0)
			s_audit_seq = (uint64_t)jint(json_array_get(a, n - 1),
			    "seq");
		json_decref(a);
		if (n < LIFECYCLE_PAGE_MAX)
			break;
	}
}

/* True when a record since s_audit_mark matches (who NULL: any). */
static bool
s_audit_has(const char *action, const char *object, const char *result,
    const char *who)
{
	json_t *a = store_audit_list(s_st, NULL, s_audit_seq,
	    LIFECYCLE_PAGE_MAX), *e;
	bool found = false;
	size_t i;

	json_array_foreach(a, i, e) {
		if (strcmp(jstr(e, "action"), action) == 0 &&
		    strcmp(jstr(e, "object"), object) == 0 &&
		    strcmp(jstr(e, "result"), result) == 0 &&
		    (who == NULL || strcmp(jstr(e, "who"), who) == 0))
			found = true;
	}
	if (!found)
		fprintf(stderr, "no audit record %s %s %s %s in %zu new ones\n",
		    action, object, result, who != NULL ? who : "(any)",
		    json_array_size(a));
	json_decref(a);
	return found;
}

/* Creates a certificate in the scheduler's store from printf-formatted
 * JSON; NULL (err set, message printed when loud) on refusal. */
static json_t *
s_vcreate(bool loud, struct common_error *err, const char *fmt, va_list ap)
{
	char text[S_TEXT_MAX];
	json_error_t jerr;
	json_t *req, *res;

	vsnprintf(text, sizeof(text), fmt, ap);
	common_error_clear(err);
	if ((req = json_loads(text, 0, &jerr)) == NULL) {
		fprintf(stderr, "bad test JSON: %s: %s\n", jerr.text, text);
		return NULL;
	}
	res = lifecycle_cert_create(s_lc, req, S_WHO, err);
	json_decref(req);
	if (res == NULL && loud)
		fprintf(stderr, "create: %s\n", err->msg);
	return res;
}

static json_t *
s_create(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *
s_create(const char *fmt, ...)
{
	struct common_error err;
	va_list ap;
	json_t *res;

	va_start(ap, fmt);
	res = s_vcreate(true, &err, fmt, ap);
	va_end(ap);
	CHECK(res != NULL);
	return res;
}

static void
s_refused(enum common_errcode code, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
s_refused(enum common_errcode code, const char *want, const char *fmt, ...)
{
	struct common_error err;
	va_list ap;
	json_t *res;

	va_start(ap, fmt);
	res = s_vcreate(false, &err, fmt, ap);
	va_end(ap);
	CHECK(res == NULL && err.code == code);
	if (strstr(err.msg, want) == NULL) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err.msg, want);
		CHECK(strstr(err.msg, want) != NULL);
	}
	json_decref(res);
}

/* A managed certificate of validity days renewed renew_before days
 * ahead, under s_sub (or ca). */
static json_t *
s_managed(const char *name, const char *ca, double days, double before)
{
	return s_create("{\"name\": \"%s\", \"ca_id\": \"%s\", \"profile\": "
	    "\"tls_server\", \"sans\": [\"%s.sched.test\"], "
	    "\"validity_days\": %g, \"renewal\": {\"renew_before_days\": %g}}",
	    name, ca != NULL ? ca : s_sub, name, days, before);
}

/* The certificate record as lifecycle_cert_get answers it. */
static json_t *
s_get(const char *id)
{
	struct common_error err;
	json_t *c;

	common_error_clear(&err);
	if ((c = lifecycle_cert_get(s_lc, id, &err)) == NULL)
		fprintf(stderr, "get %s: %s\n", id, err.msg);
	return c;
}

/* The stored version record (with key_id). */
static json_t *
s_version(const char *id, unsigned n)
{
	return store_version_get(s_st, NULL, id, n);
}

/* Stage of version n ("" when there is none). */
static const char *
s_stage(const char *id, unsigned n)
{
	static char stage[32];
	json_t *v = s_version(id, n);

	snprintf(stage, sizeof(stage), "%s", v != NULL && jstr(v, "stage") ?
	    jstr(v, "stage") : "");
	json_decref(v);
	return stage;
}

static size_t
s_nversions(const char *id)
{
	json_t *vs = store_version_list(s_st, NULL, id);
	size_t n = json_array_size(vs);

	json_decref(vs);
	return n;
}

/* renewal_state.field of a record, as a time. */
static time_t
s_state_time(const json_t *c, const char *field)
{
	time_t t = 0;

	CHECK(lifecycle_time_parse(jstr(json_object_get(c, "renewal_state"),
	    field), &t) == 0);
	return t;
}

/* Deletes a certificate at once (test cleanup). */
static void
s_remove(const char *id)
{
	struct common_error err;

	common_error_clear(&err);
	CHECK(lifecycle_cert_delete_now(s_lc, id, S_WHO, &err) == 0);
	if (err.code != COMMON_E_NONE)
		fprintf(stderr, "remove %s: %s\n", id, err.msg);
}

static void
test_sched_setup(void)
{
	struct ca_config cfg;
	struct lifecycle_config lcfg;
	static char dir[512];
	size_t k, c, n = 0, copies;

	snprintf(dir, sizeof(dir), "%s/sched", test_tmpdir());
	CHECK(common_mkdirs(dir, 0700) == 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.data_dir = dir;
	cfg.http_base_url = "http://127.0.0.1:8080";
	memset(&s_conf, 0, sizeof(s_conf));
	s_conf.lifecycle.scan_interval_seconds = 60;
	s_conf.lifecycle.history_limit = S_HISTORY;
	s_conf.lifecycle.deletion_pending_days = S_DELETE_DAYS;
	s_conf.lifecycle.renewal_jitter_seconds = S_JITTER;
	s_conf.lifecycle.retry_min_seconds = S_RETRY_MIN;
	s_conf.lifecycle.retry_max_seconds = S_RETRY_MAX;
	s_conf.lifecycle.expiry_warning_days = S_WARN_DAYS;
	s_profiles[0].profile = "code_signing";
	s_profiles[0].validity_days = 4;
	s_profiles[0].renew_at_fraction = 0.5;
	s_conf.lifecycle.profiles = s_profiles;
	s_conf.lifecycle.nprofiles = 1;
	for (k = 0, copies = 1; k < S_EV_KINDS; k++, copies *= S_EV_BASE) {
		s_hook_events[k][0] = (char *)lifecycle_event_name(s_kinds[k]);
		for (c = 0; c < copies && n < S_HOOKS_MAX; c++, n++) {
			s_hooks[n].url = "http://127.0.0.1:9/hook";
			s_hooks[n].secret = "0123456789abcdef0123456789";
			s_hooks[n].events = s_hook_events[k];
			s_hooks[n].nevents = 1;
			s_hooks[n].ca_file = "";
			s_hooks[n].timeout_seconds = 1;
		}
	}
	CHECK(n == S_HOOKS_MAX);
	s_conf.notifications.webhooks = s_hooks;
	s_conf.notifications.nwebhooks = n;
	s_conf.notifications.retry_max = 1;
	memset(&lcfg, 0, sizeof(lcfg));
	lcfg.default_validity_days = 90;
	lcfg.default_renew_before_days = 30;
	lcfg.conf = &s_conf;
	CHECK((s_st = store_open(dir)) != NULL);
	CHECK(s_st != NULL && (s_ctx = ca_ctx_new(s_st, &cfg)) != NULL);
	if (s_st == NULL || s_ctx == NULL)
		exit(1);
	CHECK(store_txn_run(s_st, s_setup_cas, NULL) == 0);
	CHECK((s_lc = lifecycle_new(s_ctx, &lcfg)) != NULL);
	if (s_lc == NULL || s_flaky[0] == '\0')
		exit(1);
	s_pending = lifecycle_notify_pending(s_lc);
	CHECK(s_pending == 0);
	s_clock_reset();
}

/*
 * The issue's first case: a certificate valid one day, renewed twelve
 * hours ahead, is renewed by the scheduler once the clock passes the
 * window (plus the jitter): version 2 current, version 1 previous, the
 * attempt audited, renewal_window and renewed sent.
 */
static void
test_sched_renew_before(void)
{
	json_t *c, *g = NULL, *v1 = NULL, *v2 = NULL, *vs = NULL;
	json_int_t due, na;
	const char *id;

	s_clock_reset();
	if ((c = s_managed("s-renew", NULL, 1, 0.5)) == NULL)
		return;
	id = jstr(c, "id");
	due = jint(c, "due_at_epoch");
	na = jint(c, "not_after_epoch");
	CHECK(due == na - S_DAY / 2);
	CHECK(jstr(c, "due_at") != NULL);
	CHECK(json_is_false(json_object_get(c, "renewal_due")));
	CHECK(json_object_get(c, "renewal_state") == NULL);
	CHECK(json_number_value(json_object_get(json_object_get(c, "renewal"),
	    "renew_before_days")) == 0.5);
	CHECK(json_is_false(json_object_get(json_object_get(c, "renewal"),
	    "reuse_key")));
	CHECK_STR(jstr(c, "state"), "active");
	CHECK(json_is_null(json_object_get(c, "deletion")));
	CHECK(s_events(0, 0, 0, 0, 0));

	/* before the window nothing happens */
	s_tick();
	s_clock_to((time_t)due - 60);
	s_tick();
	CHECK(s_events(0, 0, 0, 0, 0));
	CHECK(s_nversions(id) == 1);

	/* past the window and the largest jitter */
	s_clock_to((time_t)due + S_JITTER + 1);
	s_audit_mark();
	s_tick();
	CHECK(s_events(1, 1, 0, 0, 0));
	g = s_get(id);
	CHECK(jint(g, "current_version") == 2);
	CHECK(jint(g, "latest_version") == 2);
	CHECK_STR(jstr(g, "stage"), "current");
	CHECK(json_object_get(g, "renewal_state") == NULL);
	CHECK(jint(g, "due_at_epoch") == jint(g, "not_after_epoch") -
	    S_DAY / 2);
	CHECK(jint(g, "due_at_epoch") > due);
	CHECK(jint(json_object_get(g, "notified"), "renewal_window") == 1);
	vs = store_version_list(s_st, NULL, id);
	CHECK(json_array_size(vs) == 2);
	v1 = json_array_get(vs, 0);
	v2 = json_array_get(vs, 1);
	CHECK_STR(jstr(v1, "stage"), "previous");
	CHECK_STR(jstr(v2, "stage"), "current");
	CHECK(strcmp(jstr(v1, "serial"), jstr(v2, "serial")) != 0);
	CHECK(strcmp(jstr(v1, "key_id"), jstr(v2, "key_id")) != 0);
	CHECK(s_audit_has("certificate.renew", id, "ok",
	    LIFECYCLE_WHO_SCHEDULER));

	/* done: later ticks leave it alone */
	s_tick();
	CHECK(s_events(0, 0, 0, 0, 0));
	CHECK(s_nversions(id) == 2);
	s_remove(id);
	json_decref(vs);
	json_decref(g);
	json_decref(c);
	s_clock_reset();
}

/* Renewal rules: renew_at_fraction, profile and global defaults, and the
 * refusals of malformed rules. */
static void
test_sched_rules(void)
{
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256);
	char *csr = make_csr(key, "ext.sched.test", "DNS:ext.sched.test",
	    false), *qcsr = jquote(csr);
	json_t *f = NULL, *p = NULL, *d = NULL, *v = NULL, *r;
	json_int_t nb, na, due_f, due_p;

	s_clock_reset();
	s_refused(COMMON_E_INVALID, "not both", "{\"name\": \"r1\", \"ca_id\": "
	    "\"%s\", \"profile\": \"tls_server\", \"sans\": [\"r1.test\"], "
	    "\"renewal\": {\"renew_before_days\": 1, \"renew_at_fraction\": "
	    "0.5}}", s_sub);
	s_refused(COMMON_E_INVALID, "renewal.renew_at_fraction", "{\"name\": "
	    "\"r1\", \"ca_id\": \"%s\", \"profile\": \"tls_server\", \"sans\": "
	    "[\"r1.test\"], \"renewal\": {\"renew_at_fraction\": 1}}", s_sub);
	s_refused(COMMON_E_INVALID, "renewal.renew_at_fraction", "{\"name\": "
	    "\"r1\", \"ca_id\": \"%s\", \"profile\": \"tls_server\", \"sans\": "
	    "[\"r1.test\"], \"renewal\": {\"renew_at_fraction\": 0}}", s_sub);
	s_refused(COMMON_E_INVALID, "renewal.reuse_key", "{\"name\": \"r1\", "
	    "\"ca_id\": \"%s\", \"profile\": \"tls_server\", \"sans\": "
	    "[\"r1.test\"], \"renewal\": {\"reuse_key\": \"yes\"}}", s_sub);
	s_refused(COMMON_E_INVALID, "unknown field \"renewal.renew_after\"",
	    "{\"name\": \"r1\", \"ca_id\": \"%s\", \"profile\": "
	    "\"tls_server\", \"sans\": [\"r1.test\"], \"renewal\": "
	    "{\"renew_after\": 1}}", s_sub);
	s_refused(COMMON_E_INVALID, "only used in managed mode", "{\"name\": "
	    "\"r1\", \"mode\": \"external\", \"ca_id\": \"%s\", \"profile\": "
	    "\"tls_server\", \"csr\": %s, \"renewal\": {\"reuse_key\": "
	    "true}}", s_sub, qcsr);
	s_refused(COMMON_E_INVALID, "must be an object", "{\"name\": \"r1\", "
	    "\"ca_id\": \"%s\", \"profile\": \"tls_server\", \"sans\": "
	    "[\"r1.test\"], \"renewal\": 3}", s_sub);
	CHECK(s_events(0, 0, 0, 0, 0));

	/* renewal at a quarter of a ten-day lifetime */
	f = s_create("{\"name\": \"s-fraction\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\", \"sans\": [\"frac.sched.test\"], "
	    "\"validity_days\": 10, \"renewal\": {\"renew_at_fraction\": "
	    "0.25}}", s_sub);
	/* code_signing takes lifecycle.profiles: 4 days, renewed halfway */
	p = s_create("{\"name\": \"s-profile\", \"ca_id\": \"%s\", "
	    "\"profile\": \"code_signing\", \"subject\": \"CN=Signer\"}",
	    s_sub);
	/* other profiles take certificates.default_* (90, 30) */
	d = s_create("{\"name\": \"s-default\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_client\", \"sans\": [\"dflt.sched.test\"]}",
	    s_sub);
	if (f == NULL || p == NULL || d == NULL)
		goto out;
	r = json_object_get(f, "renewal");
	CHECK(json_number_value(json_object_get(r, "renew_at_fraction")) ==
	    0.25);
	CHECK(json_object_get(r, "renew_before_days") == NULL);
	v = s_version(jstr(f, "id"), 1);
	nb = jint(v, "not_before_epoch");
	na = jint(v, "not_after_epoch");
	CHECK(nb > 0 && na - nb == 10 * S_DAY + CA_BACKDATE_SECONDS);
	due_f = jint(f, "due_at_epoch");
	CHECK(due_f == nb + (json_int_t)(0.25 * (double)(na - nb)));
	json_decref(v);

	CHECK(jint(p, "validity_days") == 4);
	r = json_object_get(p, "renewal");
	CHECK(json_number_value(json_object_get(r, "renew_at_fraction")) ==
	    0.5);
	v = s_version(jstr(p, "id"), 1);
	nb = jint(v, "not_before_epoch");
	na = jint(v, "not_after_epoch");
	due_p = jint(p, "due_at_epoch");
	CHECK(due_p == nb + (na - nb) / 2);
	json_decref(v);
	v = NULL;

	CHECK(jint(d, "validity_days") == 90);
	CHECK(jint(json_object_get(d, "renewal"), "renew_before_days") == 30);
	CHECK(jint(d, "due_at_epoch") == jint(d, "not_after_epoch") -
	    30 * S_DAY);

	/* both renewed once past their windows; the 90-day one is not due */
	s_clock_to((time_t)(due_f > due_p ? due_f : due_p) + S_JITTER + 1);
	s_tick();
	CHECK(s_events(2, 2, 0, 0, 0));
	CHECK(s_nversions(jstr(f, "id")) == 2);
	CHECK(s_nversions(jstr(p, "id")) == 2);
	CHECK(s_nversions(jstr(d, "id")) == 1);
out:
	if (f != NULL)
		s_remove(jstr(f, "id"));
	if (p != NULL)
		s_remove(jstr(p, "id"));
	if (d != NULL)
		s_remove(jstr(d, "id"));
	json_decref(v);
	json_decref(f);
	json_decref(p);
	json_decref(d);
	free(qcsr);
	free(csr);
	EVP_PKEY_free(key);
	s_clock_reset();
}

/* The first attempt waits due + a random delay of at most the jitter,
 * drawn per certificate. */
static void
test_sched_jitter(void)
{
	enum { N = 3 };
	json_t *c[N] = { NULL }, *g;
	json_int_t due[N], maxdue = 0;
	time_t next[N];
	size_t i, now_renewed = 0, distinct = 1;
	char name[32];

	s_clock_reset();
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "s-jitter-%zu", i);
		if ((c[i] = s_managed(name, NULL, 1, 0.5)) == NULL)
			goto out;
		due[i] = jint(c[i], "due_at_epoch");
		if (due[i] > maxdue)
			maxdue = due[i];
	}
	s_clock_to((time_t)maxdue + 1);
	s_tick();
	for (i = 0; i < N; i++) {
		g = s_get(jstr(c[i], "id"));
		if (jint(g, "current_version") == 2) {
			/* the draw was (almost) zero */
			now_renewed++;
			next[i] = (time_t)due[i];
		} else {
			next[i] = s_state_time(g, "next_attempt_at");
			CHECK(next[i] >= (time_t)due[i]);
			CHECK(next[i] <= (time_t)due[i] + S_JITTER);
			CHECK(jint(json_object_get(g, "renewal_state"),
			    "failures") == 0);
		}
		if (i > 0 && next[i] - (time_t)due[i] != next[0] -
		    (time_t)due[0])
			distinct++;
		json_decref(g);
	}
	CHECK(distinct > 1);
	CHECK(s_events(N, (unsigned)now_renewed, 0, 0, 0));
	s_clock_to((time_t)maxdue + S_JITTER + 1);
	s_tick();
	CHECK(s_events(0, (unsigned)(N - now_renewed), 0, 0, 0));
	for (i = 0; i < N; i++)
		CHECK(s_nversions(jstr(c[i], "id")) == 2);
out:
	for (i = 0; i < N; i++) {
		if (c[i] != NULL)
			s_remove(jstr(c[i], "id"));
		json_decref(c[i]);
	}
	s_clock_reset();
}

/*
 * A CA that refuses issuance (disabled): each attempt fails, is audited
 * and notified, and the next one waits retry_min x 2^(n-1) up to
 * retry_max; nothing else of the certificate changes. Once the renewal
 * keeps failing within expiry_warning_days, "expiring" is sent (once).
 * Re-enabled, the next attempt succeeds.
 */
static void
test_sched_failure(void)
{
	static const long delays[] = { S_RETRY_MIN, 2 * S_RETRY_MIN,
	    S_RETRY_MAX, S_RETRY_MAX };
	struct common_error err;
	json_t *c, *g = NULL, *vs0 = NULL, *vs = NULL, *rs;
	const char *id;
	time_t t;
	size_t i;

	s_clock_reset();
	if ((c = s_managed("s-flaky", s_flaky, 1, 0.5)) == NULL)
		return;
	id = jstr(c, "id");
	common_error_clear(&err);
	vs0 = lifecycle_versions(s_lc, id, &err);
	s_ca_state(s_flaky, "disabled");
	s_clock_to((time_t)jint(c, "due_at_epoch") + S_JITTER + 1);
	for (i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		s_audit_mark();
		t = common_now();
		s_tick();
		CHECK(s_events(i == 0 ? 1 : 0, 0, 1, 0, 0));
		json_decref(g);
		g = s_get(id);
		rs = json_object_get(g, "renewal_state");
		CHECK(jint(rs, "failures") == (json_int_t)i + 1);
		CHECK(jstr(rs, "last_error") != NULL &&
		    strstr(jstr(rs, "last_error"), "disabled") != NULL);
		CHECK(s_state_time(g, "last_attempt_at") >= t);
		CHECK(s_state_time(g, "next_attempt_at") >= t + delays[i]);
		CHECK(s_state_time(g, "next_attempt_at") <= t + delays[i] +
		    S_SLACK);
		CHECK(s_audit_has("certificate.renew", id, "failed",
		    LIFECYCLE_WHO_SCHEDULER));
		/* nothing else changed */
		CHECK(jint(g, "current_version") == 1);
		CHECK(jint(g, "latest_version") == 1);
		CHECK_STR(jstr(g, "serial"), jstr(c, "serial"));
		CHECK_STR(jstr(g, "stage"), "current");
		CHECK(jint(g, "due_at_epoch") == jint(c, "due_at_epoch"));
		common_error_clear(&err);
		json_decref(vs);
		vs = lifecycle_versions(s_lc, id, &err);
		CHECK(vs != NULL && json_equal(vs, vs0));
		/* not before the backoff ends; once renewal has failed
		 * within expiry_warning_days, "expiring" goes out (once) */
		s_tick();
		CHECK(s_events(0, 0, 0, i == 0 ? 1 : 0, 0));
		CHECK(s_nversions(id) == 1);
		s_clock_to(s_state_time(g, "next_attempt_at"));
	}
	s_ca_state(s_flaky, "active");
	s_audit_mark();
	s_tick();
	CHECK(s_events(0, 1, 0, 0, 0));
	json_decref(g);
	g = s_get(id);
	CHECK(jint(g, "current_version") == 2);
	CHECK(json_object_get(g, "renewal_state") == NULL);
	CHECK(s_audit_has("certificate.renew", id, "ok",
	    LIFECYCLE_WHO_SCHEDULER));
	s_remove(id);
	json_decref(vs);
	json_decref(vs0);
	json_decref(g);
	json_decref(c);
	s_clock_reset();
}

/*
 * pkid cannot renew external-CSR and imported certificates: past the due
 * date they are flagged renewal_due and notified once; within
 * expiry_warning_days "expiring" is sent once; past notAfter the
 * version is marked expired.
 */
static void
test_sched_external(void)
{
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256);
	EVP_PKEY *ikey = ca_key_generate(CA_KEY_ECDSA_P256);
	char *csr = make_csr(key, "ext.sched.test", "DNS:ext.sched.test",
	    false), *qcsr = jquote(csr);
	char *cert = make_selfsigned(ikey, "imp.sched.test", "DNS:imp.sched.test");
	char *kpem = common_privkey_to_pem(ikey);
	char *qcert = jquote(cert), *qkey = jquote(kpem);
	json_t *e, *im = NULL, *g = NULL;
	const char *eid, *iid = NULL;

	s_clock_reset();
	e = s_create("{\"name\": \"s-external\", \"mode\": \"external\", "
	    "\"ca_id\": \"%s\", \"profile\": \"tls_server\", "
	    "\"validity_days\": 1, \"renewal\": {\"renew_before_days\": 0.5}, "
	    "\"csr\": %s}", s_sub, qcsr);
	im = s_create("{\"name\": \"s-imported\", \"mode\": \"imported\", "
	    "\"certificate\": %s, \"private_key\": %s, \"renewal\": "
	    "{\"renew_before_days\": 20}}", qcert, qkey);
	if (e == NULL || im == NULL)
		goto out;
	eid = jstr(e, "id");
	iid = jstr(im, "id");
	CHECK(jint(im, "due_at_epoch") == jint(im, "not_after_epoch") -
	    20 * S_DAY);

	/* a one-day certificate pkid cannot renew is expiring at once */
	s_audit_mark();
	s_tick();
	CHECK(s_events(0, 0, 0, 1, 0));
	s_tick();
	CHECK(s_events(0, 0, 0, 0, 0));

	/* past its due date: flagged and notified, not renewed */
	s_clock_to((time_t)jint(e, "due_at_epoch") + 1);
	s_tick();
	CHECK(s_events(1, 0, 0, 0, 0));
	g = s_get(eid);
	CHECK(json_is_true(json_object_get(g, "renewal_due")));
	/* done with what fell due: out of the due index, due_at kept */
	CHECK(json_is_null(json_object_get(g, "due_at_epoch")));
	CHECK_STR(jstr(g, "due_at"), jstr(e, "due_at"));
	CHECK(jint(g, "current_version") == 1);
	CHECK(s_nversions(eid) == 1);
	CHECK(s_audit_has("certificate.renewal_due", eid, "ok",
	    LIFECYCLE_WHO_SCHEDULER));
	s_tick();
	CHECK(s_events(0, 0, 0, 0, 0));

	/* the imported one at its due date; the external one has expired */
	s_audit_mark();
	s_clock_to((time_t)jint(im, "due_at_epoch") + 1);
	s_tick();
	CHECK(s_events(1, 0, 0, 0, 0));
	json_decref(g);
	g = s_get(iid);
	CHECK(json_is_true(json_object_get(g, "renewal_due")));
	json_decref(g);
	g = s_get(eid);
	CHECK_STR(jstr(g, "stage"), "expired");
	CHECK_STR(s_stage(eid, 1), "expired");
	CHECK(json_is_null(json_object_get(g, "expiry_check_epoch")));
	CHECK(s_audit_has("version.expire", eid, "ok",
	    LIFECYCLE_WHO_SCHEDULER));

	/* the imported one within expiry_warning_days */
	s_clock_to((time_t)jint(im, "not_after_epoch") -
	    (time_t)(S_WARN_DAYS * S_DAY) + 1);
	s_tick();
	CHECK(s_events(0, 0, 0, 1, 0));
	CHECK_STR(s_stage(iid, 1), "current");
out:
	if (e != NULL)
		s_remove(jstr(e, "id"));
	if (iid != NULL)
		s_remove(iid);
	json_decref(g);
	json_decref(e);
	json_decref(im);
	free(qcert);
	free(qkey);
	free(kpem);
	free(cert);
	free(qcsr);
	free(csr);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ikey);
	s_clock_reset();
}

/* ACME certificates: no renewal rule, due at the ARI window start
 * (notAfter - lifetime / 3); the scheduler only flags them. */
static void
test_sched_acme(void)
{
	struct lifecycle_issue_req req;
	struct common_error err;
	const char *sans[] = { "acme.sched.test" };
	EVP_PKEY *key = ca_key_generate(CA_KEY_ECDSA_P256);
	json_t *v, *g = NULL, *raw = NULL;
	json_int_t nb, na;
	const char *id;

	s_clock_reset();
	memset(&req, 0, sizeof(req));
	req.ca_id = s_sub;
	req.pubkey = key;
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 6;
	req.origin = "acme";
	common_error_clear(&err);
	v = lifecycle_issue(s_lc, &req, "acme:acct-s", &err);
	CHECK(v != NULL);
	if (v == NULL)
		goto out;
	id = jstr(v, "certificate_id");
	g = s_get(id);
	raw = s_version(id, 1);
	nb = jint(raw, "not_before_epoch");
	na = jint(raw, "not_after_epoch");
	CHECK(json_is_null(json_object_get(g, "renewal")));
	CHECK(jint(g, "due_at_epoch") == na - (na - nb) / 3);
	s_tick();
	CHECK(s_events(0, 0, 0, 1, 0));	/* six days < the warning */
	s_clock_to((time_t)jint(g, "due_at_epoch") + 1);
	s_tick();
	CHECK(s_events(1, 0, 0, 0, 0));
	json_decref(g);
	g = s_get(id);
	CHECK(json_is_true(json_object_get(g, "renewal_due")));
	CHECK(s_nversions(id) == 1);
	s_remove(id);
out:
	json_decref(raw);
	json_decref(g);
	json_decref(v);
	EVP_PKEY_free(key);
	s_clock_reset();
}

/* A resource and an association for certificate id; the association id
 * into aid (resource id into rid). 0 or -1. */
static int
s_associate(const char *id, const char *name, char *rid, char *aid,
    size_t len)
{
	struct common_error err;
	json_t *req, *res, *a;

	common_error_clear(&err);
	req = json_pack("{s:s, s:s}", "name", name, "type", "other");
	res = lifecycle_resource_create(s_lc, req, S_WHO, &err);
	json_decref(req);
	if (res == NULL)
		return -1;
	snprintf(rid, len, "%s", jstr(res, "id"));
	json_decref(res);
	req = json_pack("{s:s, s:s}", "certificate_id", id, "resource_id",
	    rid);
	a = lifecycle_assoc_create(s_lc, req, S_WHO, &err);
	json_decref(req);
	if (a == NULL)
		return -1;
	snprintf(aid, len, "%s", jstr(a, "id"));
	json_decref(a);
	return 0;
}

static void
s_unassociate(const char *rid, const char *aid)
{
	struct common_error err;

	common_error_clear(&err);
	CHECK(lifecycle_assoc_delete(s_lc, aid, S_WHO, &err) == 0);
	CHECK(lifecycle_resource_delete(s_lc, rid, S_WHO, &err) == 0);
}

static json_t *
s_promote(const char *id, unsigned n, enum common_errcode want)
{
	struct common_error err;
	json_t *v;

	common_error_clear(&err);
	v = lifecycle_version_promote(s_lc, id, n, S_WHO, &err);
	CHECK(want == COMMON_E_NONE ? v != NULL : v == NULL &&
	    err.code == want);
	if (want == COMMON_E_NONE && v == NULL)
		fprintf(stderr, "promote %u: %s\n", n, err.msg);
	return v;
}

/*
 * With an association a renewal stays pending (the scheduler does not
 * renew again meanwhile); promote rolls forward and back; revoked and
 * unknown versions cannot be promoted.
 */
static void
test_sched_promote(void)
{
	struct common_error err;
	char rid[64] = "", aid[64] = "";
	json_t *c, *r = NULL, *g = NULL, *v;
	const char *id;

	s_clock_reset();
	if ((c = s_managed("s-promote", NULL, 1, 0.5)) == NULL)
		return;
	id = jstr(c, "id");
	CHECK(s_associate(id, "s-web", rid, aid, sizeof(rid)) == 0);
	common_error_clear(&err);
	r = lifecycle_cert_renew(s_lc, id, S_WHO, &err);
	CHECK(r != NULL && jint(r, "version") == 2);
	CHECK_STR(jstr(r, "stage"), "pending");
	CHECK(s_events(0, 1, 0, 0, 0));
	g = s_get(id);
	CHECK(jint(g, "current_version") == 1);
	CHECK(jint(g, "latest_version") == 2);
	CHECK_STR(s_stage(id, 1), "current");

	/* due, but a renewal waits for its deployment */
	s_clock_to((time_t)jint(c, "due_at_epoch") + S_JITTER + 1);
	s_tick();
	CHECK(s_events(0, 0, 0, 0, 0));
	CHECK(s_nversions(id) == 2);

	/* a second renewal supersedes the pending one */
	json_decref(r);
	r = lifecycle_cert_renew(s_lc, id, S_WHO, &err);
	CHECK(r != NULL && jint(r, "version") == 3);
	CHECK(s_events(0, 1, 0, 0, 0));
	CHECK_STR(s_stage(id, 2), "previous");
	CHECK_STR(s_stage(id, 3), "pending");

	s_audit_mark();
	v = s_promote(id, 3, COMMON_E_NONE);
	CHECK_STR(jstr(v, "stage"), "current");
	json_decref(v);
	CHECK(s_audit_has("version.promote", id, "ok", S_WHO));
	CHECK_STR(s_stage(id, 1), "previous");
	CHECK_STR(s_stage(id, 3), "current");
	json_decref(g);
	g = s_get(id);
	CHECK(jint(g, "current_version") == 3);
	CHECK(jint(g, "due_at_epoch") > jint(c, "due_at_epoch"));
	CHECK_STR(jstr(json_object_get(g, "current"), "serial"),
	    jstr(r, "serial"));

	/* roll back, then forward again; promoting the current is a no-op */
	json_decref(s_promote(id, 1, COMMON_E_NONE));
	CHECK_STR(s_stage(id, 1), "current");
	CHECK_STR(s_stage(id, 3), "previous");
	json_decref(g);
	g = s_get(id);
	CHECK(jint(g, "current_version") == 1);
	CHECK_STR(jstr(g, "serial"), jstr(c, "serial"));
	json_decref(s_promote(id, 1, COMMON_E_NONE));
	json_decref(s_promote(id, 3, COMMON_E_NONE));
	CHECK_STR(s_stage(id, 3), "current");

	/* revoked and unknown versions */
	json_decref(lifecycle_version_revoke(s_lc, id, 1,
	    CA_REASON_SUPERSEDED, S_WHO, &err));
	CHECK(s_events(0, 0, 0, 0, 1));
	CHECK(s_promote(id, 1, COMMON_E_CONFLICT) == NULL);
	CHECK(s_promote(id, 9, COMMON_E_NOTFOUND) == NULL);
	CHECK(s_promote("cert-0000000000000000", 1, COMMON_E_NOTFOUND) ==
	    NULL);
	CHECK_STR(s_stage(id, 3), "current");

	s_unassociate(rid, aid);
	s_remove(id);
	json_decref(g);
	json_decref(r);
	json_decref(c);
	s_clock_reset();
}

/* The private key of version n (NULL when refused). */
static EVP_PKEY *
s_version_key(const char *id, unsigned n)
{
	struct common_error err;
	const char *pem;
	EVP_PKEY *k = NULL;
	json_t *v;

	common_error_clear(&err);
	if ((v = lifecycle_version_get(s_lc, id, n, true, &err)) == NULL)
		return NULL;
	if ((pem = jstr(v, "private_key")) != NULL)
		k = common_privkey_from_pem(pem, strlen(pem));
	json_decref(v);
	return k;
}

static bool
s_key_exists(const char *key_id)
{
	unsigned char *blob = NULL;
	size_t len = 0;
	bool ok = store_key_get(s_st, NULL, key_id, &blob, &len) == 0;

	free(blob);
	return ok;
}

/*
 * lifecycle.history_limit (3): previous versions older than the newest
 * three lose their PEM and key but keep their row; a key that a kept
 * version shares (reuse_key) stays.
 */
static void
test_sched_history(void)
{
	struct common_error err;
	char keys[7][64];
	json_t *c, *s = NULL, *r, *v;
	EVP_PKEY *k1 = NULL, *k5 = NULL;
	const char *id, *sid;
	unsigned n;

	s_clock_reset();
	memset(keys, 0, sizeof(keys));
	if ((c = s_managed("s-history", NULL, 5, 1)) == NULL)
		return;
	id = jstr(c, "id");
	s_audit_mark();
	for (n = 2; n <= 6; n++) {
		common_error_clear(&err);
		r = lifecycle_cert_renew(s_lc, id, S_WHO, &err);
		CHECK(r != NULL && jint(r, "version") == (json_int_t)n);
		json_decref(r);
	}
	CHECK(s_events(0, 5, 0, 0, 0));
	for (n = 1; n <= 6; n++) {
		v = s_version(id, n);
		CHECK(v != NULL);
		if (n <= 3) {
			CHECK(json_is_true(json_object_get(v, "pruned")));
			CHECK(json_object_get(v, "certificate") == NULL);
			CHECK(json_object_get(v, "key_id") == NULL);
			CHECK_STR(jstr(v, "stage"), "previous");
			CHECK(jstr(v, "serial") != NULL);
		} else {
			CHECK(json_object_get(v, "pruned") == NULL);
			CHECK(jstr(v, "certificate") != NULL);
			snprintf(keys[n], sizeof(keys[n]), "%s",
			    jstr(v, "key_id") != NULL ? jstr(v, "key_id") : "");
			CHECK(s_key_exists(keys[n]));
		}
		json_decref(v);
	}
	CHECK(s_audit_has("version.prune", id, "ok", S_WHO));
	common_error_clear(&err);
	v = lifecycle_version_get(s_lc, id, 2, false, &err);
	CHECK(v != NULL && json_object_get(v, "certificate") == NULL &&
	    json_is_true(json_object_get(v, "pruned")));
	json_decref(v);
	common_error_clear(&err);
	CHECK(lifecycle_version_get(s_lc, id, 2, true, &err) == NULL);
	CHECK(err.code == COMMON_E_CONFLICT && strstr(err.msg, "pruned"));
	CHECK(s_promote(id, 2, COMMON_E_CONFLICT) == NULL);
	json_decref(s_promote(id, 4, COMMON_E_NONE));
	json_decref(s_promote(id, 6, COMMON_E_NONE));

	/* reuse_key: every version holds the same key, which stays while a
	 * kept version uses it and goes with the certificate */
	s = s_create("{\"name\": \"s-reuse\", \"ca_id\": \"%s\", \"profile\": "
	    "\"tls_server\", \"sans\": [\"reuse.sched.test\"], "
	    "\"validity_days\": 5, \"renewal\": {\"renew_before_days\": 1, "
	    "\"reuse_key\": true}}", s_sub);
	if (s == NULL)
		goto out;
	sid = jstr(s, "id");
	k1 = s_version_key(sid, 1);
	v = s_version(sid, 1);
	snprintf(keys[0], sizeof(keys[0]), "%s", jstr(v, "key_id"));
	json_decref(v);
	for (n = 2; n <= 5; n++) {
		common_error_clear(&err);
		json_decref(lifecycle_cert_renew(s_lc, sid, S_WHO, &err));
	}
	CHECK(s_events(0, 4, 0, 0, 0));
	for (n = 1; n <= 2; n++) {
		v = s_version(sid, n);
		CHECK(json_is_true(json_object_get(v, "pruned")));
		json_decref(v);
	}
	v = s_version(sid, 5);
	CHECK_STR(jstr(v, "key_id"), keys[0]);
	json_decref(v);
	CHECK(s_key_exists(keys[0]));
	k5 = s_version_key(sid, 5);
	CHECK(k1 != NULL && k5 != NULL && EVP_PKEY_eq(k1, k5) == 1);
	s_remove(sid);
	CHECK(!s_key_exists(keys[0]));
out:
	s_remove(id);
	CHECK(!s_key_exists(keys[6]));
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k5);
	json_decref(s);
	json_decref(c);
	s_clock_reset();
}

/*
 * Deletion like OCI: blocked by associations (409 naming them),
 * scheduled deletion_pending_days ahead (idempotent), no renewal
 * meanwhile, cancelled, executed by the scheduler once due; an
 * association made meanwhile drops the schedule; delete_now at once.
 */
static void
test_sched_deletion(void)
{
	struct common_error err;
	char rid[64] = "", aid[64] = "";
	json_t *c, *b = NULL, *d, *d2, *g;
	const char *id, *bid = NULL;
	time_t at;

	s_clock_reset();
	if ((c = s_managed("s-delete", NULL, 1, 0.5)) == NULL)
		return;
	id = jstr(c, "id");
	CHECK(s_associate(id, "s-del-web", rid, aid, sizeof(rid)) == 0);
	s_audit_mark();
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete_schedule(s_lc, id, S_WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_CONFLICT && strstr(err.msg, aid) != NULL);
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete(s_lc, id, S_WHO, &err) == -1);
	CHECK(err.code == COMMON_E_CONFLICT);
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete_now(s_lc, id, S_WHO, &err) == -1);
	CHECK(err.code == COMMON_E_CONFLICT);
	s_unassociate(rid, aid);

	/* scheduled: listed as pending_deletion, execute_at one day ahead */
	common_error_clear(&err);
	d = lifecycle_cert_delete_schedule(s_lc, id, S_WHO, &err);
	CHECK(d != NULL);
	if (d == NULL)
		goto out;
	CHECK_STR(jstr(d, "state"), "pending_deletion");
	CHECK(lifecycle_time_parse(jstr(json_object_get(d, "deletion"),
	    "execute_at"), &at) == 0);
	CHECK(at >= common_now() + (time_t)(S_DELETE_DAYS * S_DAY) -
	    S_SLACK && at <= common_now() + (time_t)(S_DELETE_DAYS * S_DAY));
	CHECK_STR(jstr(json_object_get(d, "deletion"), "scheduled_by"),
	    S_WHO);
	CHECK(s_audit_has("certificate.delete_scheduled", id, "ok", S_WHO));
	common_error_clear(&err);
	d2 = lifecycle_cert_delete_schedule(s_lc, id, S_WHO, &err);
	CHECK(d2 != NULL && json_equal(json_object_get(d, "deletion"),
	    json_object_get(d2, "deletion")));
	json_decref(d2);
	json_decref(d);
	common_error_clear(&err);
	CHECK(lifecycle_cert_renew(s_lc, id, S_WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_CONFLICT &&
	    strstr(err.msg, "scheduled for deletion") != NULL);

	/* due for renewal while scheduled: left alone */
	s_clock_to((time_t)jint(c, "due_at_epoch") + S_JITTER + 1);
	s_tick();
	CHECK(s_events(0, 0, 0, 0, 0));
	CHECK(s_nversions(id) == 1);

	/* cancelled, and not twice */
	common_error_clear(&err);
	g = lifecycle_cert_cancel_deletion(s_lc, id, S_WHO, &err);
	CHECK(g != NULL && strcmp(jstr(g, "state"), "active") == 0 &&
	    json_is_null(json_object_get(g, "deletion")) &&
	    json_is_object(json_object_get(g, "current")));
	json_decref(g);
	CHECK(s_audit_has("certificate.delete_cancelled", id, "ok", S_WHO));
	common_error_clear(&err);
	CHECK(lifecycle_cert_cancel_deletion(s_lc, id, S_WHO, &err) == NULL);
	CHECK(err.code == COMMON_E_CONFLICT);

	/* scheduled again and executed by the scheduler once due */
	s_clock_reset();
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete(s_lc, id, S_WHO, &err) == 0);
	b = s_managed("s-delete-b", NULL, 30, 10);
	bid = b != NULL ? jstr(b, "id") : NULL;
	common_error_clear(&err);
	d = bid != NULL ? lifecycle_cert_delete_schedule(s_lc, bid, S_WHO,
	    &err) : NULL;
	CHECK(d != NULL);
	json_decref(d);
	/* an association made meanwhile keeps b */
	CHECK(bid != NULL && s_associate(bid, "s-del-b", rid, aid,
	    sizeof(rid)) == 0);
	s_tick();
	g = s_get(id);
	CHECK(g != NULL);
	json_decref(g);
	s_audit_mark();
	s_advance((time_t)(S_DELETE_DAYS * S_DAY) + 1);
	s_tick();
	common_error_clear(&err);
	CHECK(lifecycle_cert_get(s_lc, id, &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);
	CHECK(s_nversions(id) == 0);
	CHECK(s_audit_has("certificate.delete", id, "ok",
	    LIFECYCLE_WHO_SCHEDULER));
	CHECK(s_audit_has("certificate.delete", bid, "failed",
	    LIFECYCLE_WHO_SCHEDULER));
	g = s_get(bid);
	CHECK(g != NULL && strcmp(jstr(g, "state"), "active") == 0 &&
	    json_is_null(json_object_get(g, "deletion")));
	json_decref(g);
	s_unassociate(rid, aid);
	CHECK(s_events(0, 0, 0, 0, 0));

	/* at once, even while scheduled */
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete(s_lc, bid, S_WHO, &err) == 0);
	CHECK(lifecycle_cert_delete_now(s_lc, bid, S_WHO, &err) == 0);
	common_error_clear(&err);
	CHECK(lifecycle_cert_get(s_lc, bid, &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);
	bid = NULL;
	common_error_clear(&err);
	CHECK(lifecycle_cert_delete_now(s_lc, "cert-0000000000000000", S_WHO,
	    &err) == -1 && err.code == COMMON_E_NOTFOUND);
out:
	if (bid != NULL)
		s_remove(bid);
	json_decref(b);
	json_decref(c);
	s_clock_reset();
}

/* Revocations notify "revoked"; a revoked certificate gets no renewal
 * notices. */
static void
test_sched_revoked(void)
{
	struct common_error err;
	json_t *c, *r;
	const char *id;

	s_clock_reset();
	if ((c = s_managed("s-revoked", NULL, 1, 0.5)) == NULL)
		return;
	id = jstr(c, "id");
	common_error_clear(&err);
	r = lifecycle_revoke_serial(s_lc, jstr(c, "serial"),
	    CA_REASON_KEY_COMPROMISE, S_WHO, &err);
	CHECK(r != NULL && strcmp(jstr(r, "cert_id"), id) == 0);
	json_decref(r);
	CHECK(s_events(0, 0, 0, 0, 1));
	s_clock_to((time_t)jint(c, "due_at_epoch") + S_JITTER + 1);
	s_tick();
	CHECK(s_events(0, 0, 0, 0, 0));
	CHECK(s_nversions(id) == 1);
	s_remove(id);
	json_decref(c);
	s_clock_reset();
}

#define S_QUIET_ROWS	5000	/* not-due rows ahead of a due certificate */
#define S_QUIET_BATCH	1000	/* rows per transaction */

/* A batch of quiet rows to put or delete. */
struct s_quiet {
	bool	put;
	int	from;
	time_t	now;
};

static void
s_quiet_id(int i, char *id, size_t len)
{
	snprintf(id, len, "cert-%016x", (unsigned)i);
}

/* Quiet row i: an imported certificate as lifecycle keeps it, due in
 * thirty days, expiring in sixty, with an id that sorts before any
 * random certificate id. */
static json_t *
s_quiet_rec(int i, time_t now)
{
	char id[64], name[64], due[LIFECYCLE_TIME_MAX], na[LIFECYCLE_TIME_MAX];
	time_t tdue = now + 30 * S_DAY, tna = now + 60 * S_DAY;

	s_quiet_id(i, id, sizeof(id));
	snprintf(name, sizeof(name), "s-quiet-%d", i);
	common_time_rfc3339(tdue, due, sizeof(due));
	common_time_rfc3339(tna, na, sizeof(na));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s,"
	    " s:s, s:I, s:s, s:I, s:I, s:b, s:n}", "id", id, "name", name,
	    "mode", "imported", "origin", "mgmt", "state", "active",
	    "stage", "current", "current_version", 1, "latest_version", 1,
	    "serial", "0A", "due_at", due, "due_at_epoch", (json_int_t)tdue,
	    "not_after", na, "not_after_epoch", (json_int_t)tna,
	    "expiry_check_epoch", (json_int_t)tna, "renewal_due", 0,
	    "deletion");
}

/* Puts (or deletes) rows [from, from + S_QUIET_BATCH). */
static int
s_quiet_txn(struct store_txn *txn, void *arg)
{
	const struct s_quiet *q = arg;
	char id[64];
	json_t *rec;
	int i, rc = 0;

	for (i = q->from; i < q->from + S_QUIET_BATCH && rc == 0; i++) {
		s_quiet_id(i, id, sizeof(id));
		if (!q->put) {
			rc = store_cert_del(txn, id);
			continue;
		}
		rec = s_quiet_rec(i, q->now);
		rc = rec != NULL ? store_cert_put(txn, id, rec) : -1;
		json_decref(rec);
	}
	return rc;
}

static void
s_quiet_rows(bool put, time_t now)
{
	struct s_quiet q = { .put = put, .now = now };

	for (q.from = 0; q.from < S_QUIET_ROWS; q.from += S_QUIET_BATCH)
		CHECK(store_txn_run(s_st, s_quiet_txn, &q) == 0);
}

/*
 * The scheduler finds due certificates through the index by due date:
 * one far down the id order, behind thousands that are not due, is
 * renewed by the first tick, and the quiet rows are not touched.
 */
static void
test_sched_due_index(void)
{
	char qid[64];
	json_t *c, *q = NULL, *want = NULL;
	struct timespec t0, t1;
	time_t put_at;
	const char *id;

	s_clock_reset();
	put_at = common_now();
	s_quiet_rows(true, put_at);
	if ((c = s_managed("s-due-index", NULL, 1, 0.5)) == NULL)
		goto out;
	id = jstr(c, "id");
	s_quiet_id(S_QUIET_ROWS - 1, qid, sizeof(qid));
	CHECK(strcmp(id, qid) > 0);
	s_clock_to((time_t)jint(c, "due_at_epoch") + S_JITTER + 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	s_tick();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "first tick over %d quiet rows and a due one: "
	    "%.1f ms\n", S_QUIET_ROWS, (double)(t1.tv_sec - t0.tv_sec) *
	    1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	CHECK(s_events(1, 1, 0, 0, 0));
	CHECK(s_nversions(id) == 2);
	s_tick();
	CHECK(s_events(0, 0, 0, 0, 0));
	/* version 1 (now previous) expires before version 2 is due: no
	 * index leads there, the sweep does */
	s_clock_to((time_t)jint(c, "not_after_epoch") + 1);
	s_tick();
	CHECK_STR(s_stage(id, 1), "expired");
	CHECK_STR(s_stage(id, 2), "current");
	CHECK(s_events(0, 0, 0, 0, 0));
	/* the quiet rows were neither renewed nor rewritten */
	s_quiet_id(0, qid, sizeof(qid));
	q = store_cert_get(s_st, NULL, qid);
	want = s_quiet_rec(0, put_at);
	CHECK(q != NULL && want != NULL && json_equal(q, want));
	CHECK(s_nversions(qid) == 0);
	s_remove(id);
out:
	s_quiet_rows(false, put_at);
	json_decref(want);
	json_decref(q);
	json_decref(c);
	s_clock_reset();
}

/* Rows [0, n) scheduled for deletion at execute_at (deleted when put is
 * false). */
struct s_doomed {
	bool	put;
	int	n;
	time_t	execute_at;
};

static int
s_doomed_txn(struct store_txn *txn, void *arg)
{
	const struct s_doomed *d = arg;
	char id[64], at[LIFECYCLE_TIME_MAX];
	json_t *rec;
	int i, rc = 0;

	common_time_rfc3339(d->execute_at, at, sizeof(at));
	for (i = 0; i < d->n && rc == 0; i++) {
		s_quiet_id(i, id, sizeof(id));
		if (!d->put) {
			if (store_cert_del(txn, id) == -1 &&
			    store_txn_failed(txn))
				rc = -1;
			continue;
		}
		if ((rec = s_quiet_rec(i, d->execute_at)) == NULL ||
		    json_object_set_new(rec, "state",
		    json_string("pending_deletion")) == -1 ||
		    json_object_set_new(rec, "deletion", json_pack("{s:s, s:s,"
		    " s:s}", "scheduled_at", at, "execute_at", at,
		    "scheduled_by", S_WHO)) == -1)
			rc = -1;
		else
			rc = store_cert_put(txn, id, rec);
		json_decref(rec);
	}
	return rc;
}

/* Certificates whose ids start with the quiet rows' prefix. */
static size_t
s_doomed_left(void)
{
	struct store_page page;
	json_t *list;
	size_t n, i;
	const char *id;

	memset(&page, 0, sizeof(page));
	page.limit = LIFECYCLE_PAGE_MAX;
	if ((list = store_cert_list(s_st, NULL, &page, NULL)) == NULL)
		return SIZE_MAX;
	for (i = n = 0; i < json_array_size(list); i++) {
		id = jstr(json_array_get(list, i), "id");
		n += id != NULL && strncmp(id, "cert-0000000", 12) == 0;
	}
	json_decref(list);
	return n;
}

/*
 * A tick handles at most LIFECYCLE_TICK_SCAN_MAX certificates: with more
 * deletions due than that, the sweep stops there and the next tick goes
 * on where it stopped (before a new sweep would be due).
 */
static void
test_sched_sweep_budget(void)
{
	struct s_doomed d = { .put = true, .n = LIFECYCLE_TICK_SCAN_MAX + 200 };
	char *cursor;

	s_clock_reset();
	d.execute_at = common_now() - 1;
	CHECK(store_txn_run(s_st, s_doomed_txn, &d) == 0);
	/* a new sweep is due (or the clock was set back since the last) */
	s_advance(LIFECYCLE_TICK_SWEEP_SECONDS);
	s_tick();
	CHECK(s_doomed_left() == 200);
	cursor = store_meta_get(s_st, NULL, "lifecycle_scan_after");
	CHECK(cursor != NULL && cursor[0] != '\0');
	free(cursor);
	s_tick();
	CHECK(s_doomed_left() == 0);
	cursor = store_meta_get(s_st, NULL, "lifecycle_scan_after");
	CHECK(cursor != NULL && cursor[0] == '\0');
	free(cursor);
	CHECK(s_events(0, 0, 0, 0, 0));
	d.put = false;
	CHECK(store_txn_run(s_st, s_doomed_txn, &d) == 0);
	s_clock_reset();
}

static void
test_sched_teardown(void)
{
	s_clock_reset();
	lifecycle_free(s_lc);
	ca_ctx_free(s_ctx);
	store_close(s_st);
	s_lc = NULL;
	s_ctx = NULL;
	s_st = NULL;
}

const struct test_case test_cases[] = {
	TEST(test_setup),
	TEST(test_subject_match_forms),
	TEST(test_managed_profiles),
	TEST(test_managed_key_algorithms),
	TEST(test_create_refused),
	TEST(test_external),
	TEST(test_imported),
	TEST(test_list),
	TEST(test_renew_revoke),
	TEST(test_resources_associations),
	TEST(test_issue),
	TEST(test_issue_handback),
	TEST(test_issue_txn),
	TEST(test_revoke_serial),
	TEST(test_issued_rows),
	TEST(test_audit_trail),
	TEST(test_teardown),
	TEST(test_sched_setup),
	TEST(test_sched_renew_before),
	TEST(test_sched_rules),
	TEST(test_sched_jitter),
	TEST(test_sched_failure),
	TEST(test_sched_external),
	TEST(test_sched_acme),
	TEST(test_sched_promote),
	TEST(test_sched_history),
	TEST(test_sched_deletion),
	TEST(test_sched_revoked),
	TEST(test_sched_due_index),
	TEST(test_sched_sweep_budget),
	TEST(test_sched_teardown),
	{ NULL, NULL }
};
