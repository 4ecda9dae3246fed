/*
 * Unit tests for ca/: enum names, RFC 4514 subjects, SAN typing and
 * validation, key algorithms, sealing under the master key, the master
 * key file checks, root and subordinate CAs (extensions, path length,
 * validity clipping, chain verification), leaf issuance per profile, the
 * naming policy (at the CA and inherited), CSR parsing (tests/data/ca),
 * revocation, CRLs (canonical DER, reasons, the revocation index built
 * again at open), the subordinate-of-external flow and bundles; CA
 * versions (renewal with the same or a new key, per-key CRLs, bundles
 * over the overlap, migration of records without versions), disabled
 * CAs and CA deletion.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/common.h"
#include "store/store.h"
#include "tests/unit/test.h"

#define T_PATH_MAX	512
#define T_BASE_URL	"http://127.0.0.1:18080"
#define T_FILE_MAX	(1024 * 1024)
#define T_SLACK		5	/* seconds of tolerance on computed times */
#define T_DAY		86400
#define T_THREADS	4	/* concurrent issuers */
#define T_PER_THREAD	10	/* certificates each */

static struct store *st;
static struct ca_ctx *ctx;
static char datadir[T_PATH_MAX / 2];

/* ---- helpers ----------------------------------------------------------- */

static void
t_setup(void)
{
	struct ca_config cfg = { 0 };

	if (ctx != NULL)
		return;
	snprintf(datadir, sizeof(datadir), "%s/data", test_tmpdir());
	if (common_mkdirs(datadir, 0700) == -1 ||
	    (st = store_open(datadir)) == NULL) {
		fprintf(stderr, "cannot open the store in %s\n", datadir);
		exit(2);
	}
	cfg.data_dir = datadir;
	cfg.http_base_url = T_BASE_URL "/";
	if ((ctx = ca_ctx_new(st, &cfg)) == NULL) {
		fprintf(stderr, "ca_ctx_new failed\n");
		exit(2);
	}
}

/* ca_create in its own committed transaction; policy is JSON text. */
static json_t *
t_ca(const char *name, const char *type, const char *issuer,
    const char *subject, enum ca_key_alg alg, double days, int path_len,
    const char *policy, struct common_error *err)
{
	struct ca_create_req req;
	struct store_txn *txn;
	json_t *pol = NULL, *rec;

	t_setup();
	memset(&req, 0, sizeof(req));
	if (policy != NULL)
		pol = json_loads(policy, 0, NULL);
	req.name = name;
	req.type = type;
	req.issuer_ca_id = issuer;
	req.subject = subject;
	req.key_alg = alg;
	req.validity_days = days;
	req.path_len = path_len;
	req.policy = pol;
	txn = store_txn_begin(st);
	rec = ca_create(ctx, txn, &req, err);
	if (rec != NULL) {
		if (store_txn_commit(txn) != 0) {
			json_decref(rec);
			rec = NULL;
		}
	} else
		store_txn_abort(txn);
	json_decref(pol);
	return rec;
}

static const char *
t_id(const json_t *rec)
{
	return json_string_value(json_object_get(rec, "id"));
}

/*
 * x as its readers see it: decoded from its DER, the way lifecycle stores
 * and hands out certificates (ca_issue's own object carries no EVP_PKEY).
 * Frees x; NULL on failure.
 */
static X509 *
t_reread(X509 *x)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509 *y = NULL;

	if (x != NULL && common_x509_to_der(x, &der, &len) == 0) {
		p = der;
		y = d2i_X509(NULL, &p, (long)len);
	}
	free(der);
	X509_free(x);
	return y;
}

static X509 *
t_issue(const char *ca_id, EVP_PKEY *key, const char *subject,
    const char *const *sans, size_t nsans, enum ca_profile profile,
    double days, struct common_error *err)
{
	struct ca_issue_req req;
	struct store_txn *txn;
	X509 *x;

	memset(&req, 0, sizeof(req));
	req.pubkey = key;
	req.subject = subject;
	req.sans = sans;
	req.nsans = nsans;
	req.profile = profile;
	req.validity_days = days;
	req.origin = "mgmt";
	req.cert_id = "cert-test";
	req.version = 3;
	txn = store_txn_begin(st);
	x = ca_issue(ctx, txn, ca_id, &req, err);
	if (x != NULL) {
		if (store_txn_commit(txn) != 0) {
			X509_free(x);
			x = NULL;
		}
	} else
		store_txn_abort(txn);
	return t_reread(x);
}

static int
t_revoke(const char *serial, enum ca_reason reason, struct common_error *err)
{
	struct store_txn *txn = store_txn_begin(st);

	if (ca_revoke(ctx, txn, serial, reason, common_now(), err) == -1) {
		store_txn_abort(txn);
		return -1;
	}
	return store_txn_commit(txn);
}

static int
t_import(const char *id, const char *cert, const char *chain,
    struct common_error *err)
{
	struct store_txn *txn = store_txn_begin(st);

	if (ca_import_cert(ctx, txn, id, cert, chain, err) == -1) {
		store_txn_abort(txn);
		return -1;
	}
	return store_txn_commit(txn);
}

static X509 *
t_rec_cert(const json_t *rec)
{
	return ca_record_cert(rec);
}

static X509 *
t_ca_cert(const char *id)
{
	json_t *rec = ca_get(ctx, NULL, id, NULL);
	X509 *x = t_rec_cert(rec);

	json_decref(rec);
	return x;
}

static time_t
t_time(const ASN1_TIME *a)
{
	time_t t = 0;

	if (common_asn1_time(a, &t) == -1)
		return 0;
	return t;
}

static bool
t_near(time_t a, time_t b)
{
	return a >= b - T_SLACK && a <= b + T_SLACK;
}

static int
t_ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	if (i < 0)
		return -1;
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

/* pathlen of x's basicConstraints: -1 none, -2 not a CA, -3 missing. */
static long
t_pathlen(X509 *x)
{
	BASIC_CONSTRAINTS *bc;
	long v;

	if ((bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL)) ==
	    NULL)
		return -3;
	v = !bc->ca ? -2 : bc->pathlen == NULL ? -1 :
	    ASN1_INTEGER_get(bc->pathlen);
	BASIC_CONSTRAINTS_free(bc);
	return v;
}

static bool
t_aki_is_ski(X509 *x, X509 *issuer)
{
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);

	return aki != NULL && ski != NULL && ASN1_OCTET_STRING_cmp(aki, ski) == 0;
}

static char *
t_uri(const GENERAL_NAME *gen)
{
	int type;
	const ASN1_STRING *s = GENERAL_NAME_get0_value(gen, &type);

	if (type != GEN_URI)
		return NULL;
	return strndup((const char *)ASN1_STRING_get0_data(s),
	    (size_t)ASN1_STRING_length(s));
}

/* URI of the first CRL distribution point, to free(). */
static char *
t_cdp(X509 *x)
{
	CRL_DIST_POINTS *cdp = X509_get_ext_d2i(x, NID_crl_distribution_points,
	    NULL, NULL);
	DIST_POINT *dp;
	char *s = NULL;

	if (cdp != NULL && sk_DIST_POINT_num(cdp) == 1 &&
	    (dp = sk_DIST_POINT_value(cdp, 0))->distpoint != NULL &&
	    dp->distpoint->type == 0 &&
	    sk_GENERAL_NAME_num(dp->distpoint->name.fullname) == 1)
		s = t_uri(sk_GENERAL_NAME_value(dp->distpoint->name.fullname,
		    0));
	CRL_DIST_POINTS_free(cdp);
	return s;
}

/* URI of the AIA caIssuers entry, to free(). */
static char *
t_aia(X509 *x)
{
	AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access, NULL,
	    NULL);
	ACCESS_DESCRIPTION *ad;
	char *s = NULL;

	if (aia != NULL && sk_ACCESS_DESCRIPTION_num(aia) == 1 &&
	    OBJ_obj2nid((ad = sk_ACCESS_DESCRIPTION_value(aia, 0))->method) ==
	    NID_ad_ca_issuers)
		s = t_uri(ad->location);
	AUTHORITY_INFO_ACCESS_free(aia);
	return s;
}

static bool
t_url_is(char *got, const char *kind, const char *id, const char *ext)
{
	char want[T_PATH_MAX];
	bool ok;

	snprintf(want, sizeof(want), "%s/%s/%s.%s", T_BASE_URL, kind, id, ext);
	ok = got != NULL && strcmp(got, want) == 0;
	if (!ok)
		fprintf(stderr, "url %s != %s\n", got ? got : "(null)", want);
	free(got);
	return ok;
}

/* Verifies leaf up to anchor through the untrusted certificates. */
static bool
t_verify(X509 *leaf, X509 *anchor, X509 *u1, X509 *u2, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int ok;

	X509_STORE_add_cert(store, anchor);
	if (u1 != NULL)
		sk_X509_push(untrusted, u1);
	if (u2 != NULL)
		sk_X509_push(untrusted, u2);
	X509_STORE_CTX_init(sctx, store, leaf, untrusted);
	if (purpose > 0)
		X509_STORE_CTX_set_purpose(sctx, purpose);
	ok = X509_verify_cert(sctx);
	if (ok != 1)
		fprintf(stderr, "verify: %s\n", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(sctx)));
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	return ok == 1;
}

static char *
t_serial(X509 *x)
{
	char hex[64];

	if (common_x509_serial_hex(x, hex, sizeof(hex)) == -1)
		return NULL;
	return strdup(hex);
}

static bool
t_metric(const char *name, const char *ca_id)
{
	struct common_buf b;
	char want[T_PATH_MAX];
	bool found;

	snprintf(want, sizeof(want), "%s{ca=\"%s\"}", name, ca_id);
	common_buf_init(&b, T_FILE_MAX);
	found = common_metric_render(&b) == 0 && b.data != NULL &&
	    strstr((char *)b.data, want) != NULL;
	common_buf_free(&b);
	return found;
}

/* ---- names --------------------------------------------------------------- */

static void
test_enum_names(void)
{
	enum ca_key_alg alg;
	enum ca_profile p;
	enum ca_reason r;
	int i;

	for (i = 0; i < CA_KEY__MAX; i++) {
		CHECK(ca_key_alg_parse(ca_key_alg_name((enum ca_key_alg)i),
		    &alg) == 0 && (int)alg == i);
	}
	CHECK(ca_key_alg_parse("ecdsa_p384", &alg) == 0 &&
	    alg == CA_KEY_ECDSA_P384);
	CHECK(ca_key_alg_parse("DSA1024", &alg) == -1);
	CHECK(ca_key_alg_ca_allowed(CA_KEY_RSA4096));
	CHECK(ca_key_alg_ca_allowed(CA_KEY_ECDSA_P256));
	CHECK(!ca_key_alg_ca_allowed(CA_KEY_ED25519));
	for (i = 0; i < CA_PROFILE__MAX; i++) {
		CHECK(ca_profile_parse(ca_profile_name((enum ca_profile)i),
		    &p) == 0 && (int)p == i);
	}
	CHECK_STR(ca_profile_name(CA_PROFILE_TLS_SERVER), "tls_server");
	CHECK(ca_profile_parse("email", &p) == -1);
	CHECK(ca_reason_parse("keyCompromise", &r) == 0 &&
	    r == CA_REASON_KEY_COMPROMISE);
	CHECK(ca_reason_parse("key_compromise", &r) == 0 &&
	    r == CA_REASON_KEY_COMPROMISE);
	CHECK(ca_reason_parse("cACompromise", &r) == 0 &&
	    r == CA_REASON_CA_COMPROMISE);
	CHECK(ca_reason_parse("aa_compromise", &r) == 0 &&
	    r == CA_REASON_AA_COMPROMISE);
	CHECK(ca_reason_parse("compromised", &r) == -1);
	CHECK_STR(ca_reason_name(CA_REASON_PRIVILEGE_WITHDRAWN),
	    "privilegeWithdrawn");
	CHECK_STR(ca_reason_name((enum ca_reason)7), "unknown");
}

/* ---- subjects ------------------------------------------------------------ */

static void
t_subject_round(const char *in, const char *want)
{
	struct common_error err = { 0 };
	X509_NAME *n = ca_name_parse(in, &err);
	char *s = n != NULL ? ca_name_string(n) : NULL;

	if (n == NULL)
		fprintf(stderr, "parse %s: %s\n", in, err.msg);
	CHECK_STR(s, want);
	free(s);
	X509_NAME_free(n);
}

static void
t_subject_bad(const char *in, const char *needle)
{
	struct common_error err = { 0 };
	X509_NAME *n = ca_name_parse(in, &err);

	CHECK(n == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	if (strstr(err.msg, needle) == NULL) {
		fprintf(stderr, "subject %s: message \"%s\" lacks \"%s\"\n",
		    in, err.msg, needle);
		CHECK(strstr(err.msg, needle) != NULL);
	}
	X509_NAME_free(n);
}

static void
test_subject(void)
{
	struct common_error err = { 0 };
	X509_NAME *n;
	X509_NAME_ENTRY *e;

	t_subject_round("CN=a,O=b", "CN=a,O=b");
	t_subject_round(" CN = web , O=Acme Corp ", "CN=web,O=Acme Corp");
	t_subject_round("cn=x,ou=y,o=z,l=Berlin,st=BE,c=DE",
	    "CN=x,OU=y,O=z,L=Berlin,ST=BE,C=DE");
	t_subject_round("CN=a\\,b,O=x\\+y", "CN=a\\,b,O=x\\+y");
	t_subject_round("CN=back\\\\slash", "CN=back\\\\slash");
	t_subject_round("CN=Caf\\C3\\A9", "CN=Caf\xc3\xa9");
	t_subject_round("CN=Caf\xc3\xa9", "CN=Caf\xc3\xa9");
	t_subject_round("CN=a+OU=b,O=c", "CN=a+OU=b,O=c");
	t_subject_round("O=c,OU=b+CN=a", "O=c,OU=b+CN=a");
	t_subject_round("DC=example,DC=com", "DC=example,DC=com");
	t_subject_round("E=ops@example.com,CN=x",
	    "emailAddress=ops@example.com,CN=x");
	t_subject_round("serialNumber=1234,CN=dev", "serialNumber=1234,CN=dev");
	t_subject_round("", "");

	/* RFC 4514 order is the reverse of the DER order. */
	n = ca_name_parse("CN=leaf,O=Org,C=DE", &err);
	CHECK(n != NULL && X509_NAME_entry_count(n) == 3);
	if (n != NULL) {
		e = X509_NAME_get_entry(n, 0);
		CHECK(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)) ==
		    NID_countryName);
		e = X509_NAME_get_entry(n, 2);
		CHECK(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)) ==
		    NID_commonName);
	}
	X509_NAME_free(n);

	/* "CN=a+OU=b" is one RDN holding two values. */
	n = ca_name_parse("CN=a+OU=b,O=c", &err);
	CHECK(n != NULL && X509_NAME_entry_count(n) == 3);
	if (n != NULL && X509_NAME_entry_count(n) == 3) {
		CHECK(X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 1)) ==
		    X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 2)));
		CHECK(X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 0)) !=
		    X509_NAME_ENTRY_set(X509_NAME_get_entry(n, 1)));
	}
	X509_NAME_free(n);

	t_subject_bad("XX=a", "\"XX\" is not supported");
	t_subject_bad("CN=", "CN has an empty value");
	t_subject_bad("CN=a,O=  ", "O has an empty value");
	t_subject_bad("CN", "expected TYPE=value");
	t_subject_bad("CN=a,", "ends with a separator");
	t_subject_bad("C=USA", "C: value");
	t_subject_bad("CN=a;b", "must be escaped");
	t_subject_bad("CN=a\\q", "invalid escape");
	t_subject_bad("CN=a\\00", "NUL");
	t_subject_bad("CN=#0401", "hex-encoded");
	t_subject_bad("2.5.4.3=x", "not supported");
}

/* ---- SANs ---------------------------------------------------------------- */

static void
t_san_bad(const char *san, const char *needle)
{
	struct common_error err = { 0 };
	const char *sans[1] = { san };
	GENERAL_NAMES *g = ca_sans_parse(sans, 1, &err);

	CHECK(g == NULL);
	CHECK(err.code == COMMON_E_INVALID);
	if (strstr(err.msg, needle) == NULL) {
		fprintf(stderr, "SAN %s: message \"%s\" lacks \"%s\"\n", san,
		    err.msg, needle);
		CHECK(strstr(err.msg, needle) != NULL);
	}
	GENERAL_NAMES_free(g);
}

static void
test_sans(void)
{
	static const char *const sans[] = {
		"www.example.com", "10.0.0.1", "2001:db8::1", "ops@Example.COM",
		"https://example.com/a?b=c", "*.Example.com", "localhost",
		"xn--bcher-kva.example", "spiffe://trust/ns/x",
	};
	static const int types[] = {
		GEN_DNS, GEN_IPADD, GEN_IPADD, GEN_EMAIL, GEN_URI, GEN_DNS,
		GEN_DNS, GEN_DNS, GEN_URI,
	};
	static const char *const text[] = {
		"www.example.com", "10.0.0.1", "2001:db8::1", "ops@example.com",
		"https://example.com/a?b=c", "*.example.com", "localhost",
		"xn--bcher-kva.example", "spiffe://trust/ns/x",
	};
	const char *many[CA_MAX_SANS + 1], *dup[2] = { "a.example.com",
	    "A.example.com" }, *dupip[2] = { "::1", "0:0::1" };
	char names[CA_MAX_SANS + 1][32], label[80];
	struct common_error err = { 0 };
	GENERAL_NAMES *g;
	size_t i;
	int type;
	char *s;

	g = ca_sans_parse(sans, sizeof(sans) / sizeof(sans[0]), &err);
	CHECK(g != NULL);
	CHECK(sk_GENERAL_NAME_num(g) == (int)(sizeof(sans) / sizeof(sans[0])));
	for (i = 0; g != NULL && i < sizeof(sans) / sizeof(sans[0]); i++) {
		GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(g, (int)i), &type);
		CHECK(type == types[i]);
		s = ca_san_string(sk_GENERAL_NAME_value(g, (int)i));
		CHECK_STR(s, text[i]);
		free(s);
	}
	GENERAL_NAMES_free(g);

	t_san_bad("", "empty SAN");
	t_san_bad("a..example.com", "\"a..example.com\" is not a valid DNS "
	    "name (empty label)");
	t_san_bad("-a.example.com", "starts or ends with '-'");
	t_san_bad("a-.example.com", "starts or ends with '-'");
	t_san_bad("foo.example.com.", "trailing dot");
	t_san_bad("*.*.example.com", "wildcard");
	t_san_bad("a*.example.com", "wildcard");
	t_san_bad("foo.*.example.com", "wildcard");
	t_san_bad("a_b.example.com", "only letters");
	t_san_bad("a b.example.com", "spaces");
	t_san_bad("1.2.3", "all-numeric");
	t_san_bad("256.1.1.1", "all-numeric");
	t_san_bad("x@", "not a valid email address");
	t_san_bad("@example.com", "not a valid email address");
	t_san_bad("a@b@example.com", "not a valid email address");
	t_san_bad("a@*.example.com", "not a valid email address");
	t_san_bad("http://", "without anything after the scheme");
	t_san_bad("caf\xc3\xa9.example", "non-ASCII");
	memset(label, 'a', 64);
	memcpy(label + 64, ".com", 5);
	t_san_bad(label, "label longer than 63");

	common_error_clear(&err);
	g = ca_sans_parse(dup, 2, &err);
	CHECK(g == NULL && err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "\"A.example.com\" is given twice") != NULL);
	common_error_clear(&err);
	g = ca_sans_parse(dupip, 2, &err);
	CHECK(g == NULL && strstr(err.msg, "given twice") != NULL);

	for (i = 0; i <= CA_MAX_SANS; i++) {
		snprintf(names[i], sizeof(names[i]), "h%zu.example.com", i);
		many[i] = names[i];
	}
	common_error_clear(&err);
	g = ca_sans_parse(many, CA_MAX_SANS, &err);
	CHECK(g != NULL && sk_GENERAL_NAME_num(g) == CA_MAX_SANS);
	GENERAL_NAMES_free(g);
	g = ca_sans_parse(many, CA_MAX_SANS + 1, &err);
	CHECK(g == NULL && err.code == COMMON_E_INVALID);
}

/* ---- keys, sealing, master key ------------------------------------------ */

static void
test_key_algorithms(void)
{
	enum ca_key_alg alg;
	EVP_PKEY *k;
	int i;

	for (i = 0; i < CA_KEY__MAX; i++) {
		k = ca_key_generate((enum ca_key_alg)i);
		CHECK(k != NULL);
		CHECK(ca_key_alg_of(k, &alg) == 0 && (int)alg == i);
		EVP_PKEY_free(k);
	}
	k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	CHECK(k != NULL && ca_key_alg_of(k, &alg) == -1);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	CHECK(k != NULL && ca_key_alg_of(k, &alg) == -1);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	CHECK(k != NULL && ca_key_alg_of(k, &alg) == -1);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
	CHECK(k != NULL && ca_key_alg_of(k, &alg) == -1);
	EVP_PKEY_free(k);
	CHECK(ca_key_alg_of(NULL, &alg) == -1);
}

static void
test_seal(void)
{
	struct ca_config cfg = { 0 };
	struct ca_ctx *other;
	char dir[T_PATH_MAX], mk[T_PATH_MAX];
	EVP_PKEY *k, *back;
	char *sealed, *plain;

	t_setup();
	k = ca_key_generate(CA_KEY_ECDSA_P256);
	sealed = ca_key_seal(ctx, k);
	CHECK(sealed != NULL);
	CHECK(sealed != NULL && strncmp(sealed,
	    "-----BEGIN ENCRYPTED PRIVATE KEY-----", 37) == 0);
	back = sealed != NULL ? ca_key_unseal(ctx, sealed, strlen(sealed)) :
	    NULL;
	CHECK(back != NULL && EVP_PKEY_eq(k, back) == 1);
	EVP_PKEY_free(back);

	/* Another installation (another master key) cannot open it. */
	snprintf(dir, sizeof(dir), "%s/other", test_tmpdir());
	snprintf(mk, sizeof(mk), "%s/other-master.key", test_tmpdir());
	cfg.data_dir = dir;
	cfg.master_key_file = mk;
	other = ca_ctx_new(st, &cfg);
	CHECK(other != NULL);
	if (other != NULL && sealed != NULL)
		CHECK(ca_key_unseal(other, sealed, strlen(sealed)) == NULL);
	ca_ctx_free(other);

	/* A plain key is not a sealed key; neither is garbage. */
	plain = common_privkey_to_pem(k);
	CHECK(plain != NULL && ca_key_unseal(ctx, plain, strlen(plain)) == NULL);
	CHECK(ca_key_unseal(ctx, "garbage", 7) == NULL);
	free(plain);
	free(sealed);
	EVP_PKEY_free(k);
}

static void
test_master_key_file(void)
{
	struct ca_config cfg = { 0 };
	struct ca_ctx *c;
	struct stat sb;
	char dir[T_PATH_MAX], mk[T_PATH_MAX], *data = NULL;
	size_t len = 0, i;
	bool hex = true;
	static const char key64[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

	t_setup();
	/* Created on first use: 0600, 64 hex digits. */
	snprintf(mk, sizeof(mk), "%s/master.key", datadir);
	CHECK(stat(mk, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	CHECK(common_file_read(mk, 1024, &data, &len) == 0 && len == 65);
	for (i = 0; data != NULL && i < 64; i++)
		if (strchr("0123456789abcdef", data[i]) == NULL)
			hex = false;
	CHECK(hex);
	free(data);
	snprintf(dir, sizeof(dir), "%s/keys", datadir);
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);

	snprintf(dir, sizeof(dir), "%s/mk", test_tmpdir());
	snprintf(mk, sizeof(mk), "%s/mk-master.key", test_tmpdir());
	cfg.data_dir = dir;
	cfg.master_key_file = mk;
	/* Readable by others: refused. */
	CHECK(common_file_write(mk, key64, strlen(key64), 0644) == 0);
	c = ca_ctx_new(st, &cfg);
	CHECK(c == NULL);
	ca_ctx_free(c);
	/* Group-readable: refused. */
	CHECK(chmod(mk, 0640) == 0);
	CHECK((c = ca_ctx_new(st, &cfg)) == NULL);
	ca_ctx_free(c);
	/* 0600: accepted. */
	CHECK(chmod(mk, 0600) == 0);
	CHECK((c = ca_ctx_new(st, &cfg)) != NULL);
	ca_ctx_free(c);
	/* Malformed: refused. */
	CHECK(common_file_write(mk, "abc\n", 4, 0600) == 0);
	CHECK((c = ca_ctx_new(st, &cfg)) == NULL);
	ca_ctx_free(c);
	CHECK(common_file_write(mk, key64, 60, 0600) == 0);
	CHECK((c = ca_ctx_new(st, &cfg)) == NULL);
	ca_ctx_free(c);
}

/* ---- CAs ----------------------------------------------------------------- */

/* Checks the common shape of a CA certificate. */
static void
t_check_ca_cert(X509 *x, X509 *issuer, long pathlen, int sig_nid)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);

	CHECK(X509_get_version(x) == X509_VERSION_3);
	CHECK(t_pathlen(x) == pathlen);
	CHECK(t_ext_critical(x, NID_basic_constraints) == 1);
	CHECK(t_ext_critical(x, NID_key_usage) == 1);
	CHECK(X509_get_key_usage(x) ==
	    (KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE));
	CHECK(X509_get0_subject_key_id(x) != NULL);
	CHECK(t_aki_is_ski(x, issuer != NULL ? issuer : x));
	CHECK(X509_get_signature_nid(x) == sig_nid);
	CHECK(X509_verify(x, X509_get0_pubkey(issuer != NULL ? issuer : x)) ==
	    1);
	CHECK(bn != NULL && BN_num_bits(bn) <= 128 && !BN_is_zero(bn));
	BN_free(bn);
}

static void
test_roots(void)
{
	static const struct {
		enum ca_key_alg	alg;
		int		sig;
	} algs[] = {
		{ CA_KEY_RSA2048, NID_sha256WithRSAEncryption },
		{ CA_KEY_ECDSA_P256, NID_ecdsa_with_SHA256 },
		{ CA_KEY_ECDSA_P384, NID_ecdsa_with_SHA384 },
	};
	struct common_error err = { 0 };
	char path[T_PATH_MAX], *der = NULL, *pem;
	unsigned char *want = NULL;
	size_t len = 0, wlen = 0, i;
	json_t *rec;
	X509 *x;
	time_t now;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		now = common_now();
		rec = t_ca("Root", "root", NULL, "CN=Test Root,O=pkid",
		    algs[i].alg, 100, i == 0 ? -1 : 2, NULL, &err);
		CHECK(rec != NULL);
		if (rec == NULL) {
			fprintf(stderr, "create root: %s\n", err.msg);
			continue;
		}
		CHECK(strncmp(t_id(rec), "ca-", 3) == 0);
		CHECK_STR(json_string_value(json_object_get(rec, "state")),
		    "active");
		CHECK_STR(json_string_value(json_object_get(rec, "type")),
		    "root");
		CHECK(json_is_null(json_object_get(rec, "parent_id")));
		CHECK_STR(json_string_value(json_object_get(rec, "subject")),
		    "CN=Test Root,O=pkid");
		CHECK(json_integer_value(json_object_get(rec, "path_len")) ==
		    (i == 0 ? -1 : 2));
		CHECK(json_integer_value(json_object_get(rec, "crl_number")) ==
		    0);
		CHECK_STR(json_string_value(json_object_get(json_object_get(rec,
		    "key"), "algorithm")), ca_key_alg_name(algs[i].alg));
		CHECK_STR(json_string_value(json_object_get(json_object_get(rec,
		    "key"), "backend")), "file");
		CHECK(json_object_get(rec, "csr") == NULL);
		x = t_rec_cert(rec);
		CHECK(x != NULL);
		if (x == NULL) {
			json_decref(rec);
			continue;
		}
		t_check_ca_cert(x, NULL, i == 0 ? -1 : 2, algs[i].sig);
		CHECK(X509_NAME_cmp(X509_get_subject_name(x),
		    X509_get_issuer_name(x)) == 0);
		CHECK(t_near(t_time(X509_get0_notBefore(x)), now - 300));
		CHECK(t_near(t_time(X509_get0_notAfter(x)), now + 100 * T_DAY));
		pem = t_serial(x);
		CHECK_STR(json_string_value(json_object_get(rec, "serial")),
		    pem);
		free(pem);
		CHECK(X509_get_ext_by_NID(x, NID_crl_distribution_points, -1) <
		    0);
		/* The public certificate file. */
		snprintf(path, sizeof(path), "%s/public/ca/%s.crt", datadir,
		    t_id(rec));
		CHECK(common_file_read(path, T_FILE_MAX, &der, &len) == 0);
		CHECK(common_x509_to_der(x, &want, &wlen) == 0);
		CHECK(der != NULL && want != NULL && len == wlen &&
		    memcmp(der, want, len) == 0);
		free(der);
		free(want);
		der = NULL;
		want = NULL;
		X509_free(x);
		json_decref(rec);
	}

	/* Refusals. */
	common_error_clear(&err);
	CHECK(t_ca("Bad", "root", NULL, "CN=Ed", CA_KEY_ED25519, 10, -1, NULL,
	    &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	{
		struct ca_create_req req = { .name = "HSM", .type = "root",
		    .subject = "CN=HSM", .key_alg = CA_KEY_ECDSA_P256,
		    .key_backend = "pkcs11", .validity_days = 10,
		    .path_len = -1 };
		struct store_txn *txn = store_txn_begin(st);

		CHECK(ca_create(ctx, txn, &req, &err) == NULL);
		store_txn_abort(txn);
		CHECK(err.code == COMMON_E_INVALID);
		CHECK_STR(err.msg, "key backend pkcs11 is not available");
	}
	common_error_clear(&err);
	CHECK(t_ca("Bad", "root", NULL, "", CA_KEY_ECDSA_P256, 10, -1, NULL,
	    &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_ca("Bad", "root", NULL, "CN=x", CA_KEY_ECDSA_P256, -1, -1,
	    NULL, &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_ca("Bad", "root", NULL, "CN=x", CA_KEY_ECDSA_P256,
	    CA_MAX_VALIDITY_DAYS + 1, -1, NULL, &err) == NULL &&
	    err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_ca("Bad", "intermediate", NULL, "CN=x", CA_KEY_ECDSA_P256, 10,
	    -1, NULL, &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_ca("Bad", "subordinate", NULL, "CN=x", CA_KEY_ECDSA_P256, 10,
	    -1, NULL, &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_ca("Bad", "root", NULL, "XX=x", CA_KEY_ECDSA_P256, 10, -1,
	    NULL, &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_ca("", "root", NULL, "CN=x", CA_KEY_ECDSA_P256, 10, -1, NULL,
	    &err) == NULL && err.code == COMMON_E_INVALID);
	/* Default validity for 0. */
	common_error_clear(&err);
	now = common_now();
	rec = t_ca("Default", "root", NULL, "CN=Default", CA_KEY_ECDSA_P256, 0,
	    -1, NULL, &err);
	x = t_rec_cert(rec);
	CHECK(x != NULL && t_near(t_time(X509_get0_notAfter(x)),
	    now + (time_t)CA_ROOT_VALIDITY_DEFAULT * T_DAY));
	X509_free(x);
	json_decref(rec);
}

static void
test_subordinates(void)
{
	struct common_error err = { 0 };
	json_t *root, *sub, *sub2, *rec, *p1;
	X509 *rx = NULL, *sx = NULL, *s2x = NULL;
	time_t now = common_now();

	root = t_ca("RSA Root", "root", NULL, "CN=RSA Root", CA_KEY_RSA2048,
	    30, 2, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	rx = t_rec_cert(root);
	/* Longer than the root: clipped; no path_len: 2 - 1. */
	sub = t_ca("P256 Sub", "subordinate", t_id(root), "CN=P256 Sub",
	    CA_KEY_ECDSA_P256, 365, -1, NULL, &err);
	CHECK(sub != NULL);
	if (sub == NULL) {
		fprintf(stderr, "sub: %s\n", err.msg);
		goto out;
	}
	sx = t_rec_cert(sub);
	CHECK_STR(json_string_value(json_object_get(sub, "parent_id")),
	    t_id(root));
	CHECK_STR(json_string_value(json_object_get(sub, "type")),
	    "subordinate");
	CHECK(json_integer_value(json_object_get(sub, "path_len")) == 1);
	t_check_ca_cert(sx, rx, 1, NID_sha256WithRSAEncryption);
	CHECK(X509_NAME_cmp(X509_get_issuer_name(sx),
	    X509_get_subject_name(rx)) == 0);
	CHECK(t_time(X509_get0_notAfter(sx)) == t_time(X509_get0_notAfter(rx)));
	CHECK(t_near(t_time(X509_get0_notAfter(rx)), now + 30 * T_DAY));
	CHECK(t_url_is(t_cdp(sx), "crl", t_id(root), "crl"));
	CHECK(t_url_is(t_aia(sx), "ca", t_id(root), "crt"));
	CHECK(t_verify(sx, rx, NULL, NULL, 0));

	/* A P-384 sub of the sub: path_len 0 inherited, signed SHA-256. */
	sub2 = t_ca("P384 Sub", "subordinate", t_id(sub), "CN=P384 Sub",
	    CA_KEY_ECDSA_P384, 10, -1, NULL, &err);
	CHECK(sub2 != NULL);
	s2x = t_rec_cert(sub2);
	CHECK(s2x != NULL);
	if (s2x != NULL) {
		t_check_ca_cert(s2x, sx, 0, NID_ecdsa_with_SHA256);
		CHECK(t_near(t_time(X509_get0_notAfter(s2x)), now + 10 * T_DAY));
		CHECK(t_verify(s2x, rx, sx, NULL, 0));
	}
	/* Under path_len 0: refused. */
	common_error_clear(&err);
	rec = t_ca("Too deep", "subordinate", t_id(sub2), "CN=Deep",
	    CA_KEY_ECDSA_P256, 10, -1, NULL, &err);
	CHECK(rec == NULL && err.code == COMMON_E_POLICY &&
	    strstr(err.msg, "path_len 0") != NULL);
	json_decref(rec);
	/* path_len not below the issuer's: refused. */
	common_error_clear(&err);
	rec = t_ca("Wide", "subordinate", t_id(root), "CN=Wide",
	    CA_KEY_ECDSA_P256, 10, 2, NULL, &err);
	CHECK(rec == NULL && err.code == COMMON_E_POLICY &&
	    strstr(err.msg, "path_len 2 must be less than the path_len 2") !=
	    NULL);
	json_decref(rec);
	/* Explicit smaller path_len: accepted. */
	common_error_clear(&err);
	p1 = t_ca("Narrow", "subordinate", t_id(root), "CN=Narrow",
	    CA_KEY_ECDSA_P256, 10, 0, NULL, &err);
	CHECK(p1 != NULL &&
	    json_integer_value(json_object_get(p1, "path_len")) == 0);
	json_decref(p1);
	/* Unknown issuer. */
	common_error_clear(&err);
	rec = t_ca("Orphan", "subordinate", "ca-0000000000000000", "CN=O",
	    CA_KEY_ECDSA_P256, 10, -1, NULL, &err);
	CHECK(rec == NULL && err.code == COMMON_E_NOTFOUND);
	json_decref(rec);
	/* issuer_ca_id on a root. */
	common_error_clear(&err);
	rec = t_ca("Root2", "root", t_id(root), "CN=R2", CA_KEY_ECDSA_P256, 10,
	    -1, NULL, &err);
	CHECK(rec == NULL && err.code == COMMON_E_INVALID);
	json_decref(rec);
	json_decref(sub2);
	X509_free(s2x);
out:
	X509_free(rx);
	X509_free(sx);
	json_decref(root);
	json_decref(sub);
}

static void
test_pending_issuer_refused(void)
{
	struct common_error err = { 0 };
	json_t *ext, *rec;

	ext = t_ca("Pending", "subordinate-of-external", NULL, "CN=Pending",
	    CA_KEY_ECDSA_P256, 10, -1, NULL, &err);
	CHECK(ext != NULL);
	if (ext == NULL)
		return;
	rec = t_ca("Under pending", "subordinate", t_id(ext), "CN=U",
	    CA_KEY_ECDSA_P256, 10, -1, NULL, &err);
	CHECK(rec == NULL && err.code == COMMON_E_CONFLICT &&
	    strstr(err.msg, "pending") != NULL);
	json_decref(rec);
	json_decref(ext);
}

/* ---- issuance ------------------------------------------------------------ */

static void
t_check_sans(X509 *x, int crit_want)
{
	static const char *const want[] = {
		"www.example.com", "10.0.0.1", "::1", "ops@example.com",
		"https://example.com/p",
	};
	static const int types[] = {
		GEN_DNS, GEN_IPADD, GEN_IPADD, GEN_EMAIL, GEN_URI,
	};
	GENERAL_NAMES *g;
	int crit = -1, i, type;
	char *s;

	g = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	CHECK(g != NULL && sk_GENERAL_NAME_num(g) == 5);
	CHECK(crit == crit_want);
	for (i = 0; g != NULL && i < sk_GENERAL_NAME_num(g) && i < 5; i++) {
		GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(g, i), &type);
		CHECK(type == types[i]);
		s = ca_san_string(sk_GENERAL_NAME_value(g, i));
		CHECK_STR(s, want[i]);
		free(s);
	}
	GENERAL_NAMES_free(g);
}

static void
test_issue_profiles(void)
{
	static const char *const sans[] = {
		"www.example.com", "10.0.0.1", "::1", "ops@example.com",
		"https://example.com/p",
	};
	static const struct {
		uint32_t	xku;
		int		neku;
		bool		kenc;
		int		purpose;
	} prof[CA_PROFILE__MAX] = {
		[CA_PROFILE_TLS_SERVER_OR_CLIENT] = { XKU_SSL_SERVER |
		    XKU_SSL_CLIENT, 2, true, X509_PURPOSE_SSL_SERVER },
		[CA_PROFILE_TLS_SERVER] = { XKU_SSL_SERVER, 1, true,
		    X509_PURPOSE_SSL_SERVER },
		[CA_PROFILE_TLS_CLIENT] = { XKU_SSL_CLIENT, 1, false,
		    X509_PURPOSE_SSL_CLIENT },
		[CA_PROFILE_CODE_SIGNING] = { XKU_CODE_SIGN, 1, false, 0 },
	};
	struct common_error err = { 0 };
	char *serials[2 * CA_PROFILE__MAX] = { 0 };
	json_t *root, *sub, *issued;
	X509 *rx, *sx, *x;
	EVP_PKEY *keys[2];
	EXTENDED_KEY_USAGE *eku;
	BIGNUM *bn;
	unsigned char *der = NULL, *rder = NULL;
	size_t dlen = 0, rlen = 0;
	uint32_t ku;
	time_t now = common_now();
	int p, k, n = 0, i, j;

	root = t_ca("Issue Root", "root", NULL, "CN=Issue Root",
	    CA_KEY_ECDSA_P384, 3650, -1, NULL, &err);
	sub = t_ca("Issue Sub", "subordinate", root ? t_id(root) : "",
	    "CN=Issue Sub", CA_KEY_ECDSA_P256, 20, 0, NULL, &err);
	CHECK(root != NULL && sub != NULL);
	if (root == NULL || sub == NULL) {
		fprintf(stderr, "setup: %s\n", err.msg);
		json_decref(root);
		return;
	}
	rx = t_rec_cert(root);
	sx = t_rec_cert(sub);
	keys[0] = ca_key_generate(CA_KEY_RSA2048);
	keys[1] = ca_key_generate(CA_KEY_ECDSA_P256);
	for (p = 0; p < CA_PROFILE__MAX; p++) {
		for (k = 0; k < 2; k++) {
			common_error_clear(&err);
			x = t_issue(t_id(sub), keys[k], "CN=www.example.com",
			    sans, 5, (enum ca_profile)p, 10, &err);
			CHECK(x != NULL);
			if (x == NULL) {
				fprintf(stderr, "issue: %s\n", err.msg);
				continue;
			}
			CHECK(X509_get_version(x) == X509_VERSION_3);
			CHECK(t_pathlen(x) == -2);
			CHECK(t_ext_critical(x, NID_basic_constraints) == 1);
			CHECK(t_ext_critical(x, NID_key_usage) == 1);
			ku = X509_get_key_usage(x);
			CHECK(ku == (KU_DIGITAL_SIGNATURE |
			    (k == 0 && prof[p].kenc ? KU_KEY_ENCIPHERMENT : 0)));
			CHECK(X509_get_extended_key_usage(x) == prof[p].xku);
			eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
			CHECK(eku != NULL &&
			    sk_ASN1_OBJECT_num(eku) == prof[p].neku);
			EXTENDED_KEY_USAGE_free(eku);
			t_check_sans(x, 0);
			CHECK(X509_get0_subject_key_id(x) != NULL);
			CHECK(t_aki_is_ski(x, sx));
			CHECK(t_url_is(t_cdp(x), "crl", t_id(sub), "crl"));
			CHECK(t_url_is(t_aia(x), "ca", t_id(sub), "crt"));
			CHECK(X509_get_signature_nid(x) ==
			    NID_ecdsa_with_SHA256);
			CHECK(t_near(t_time(X509_get0_notBefore(x)), now - 300));
			CHECK(t_near(t_time(X509_get0_notAfter(x)),
			    now + 10 * T_DAY));
			CHECK(t_verify(x, rx, sx, NULL, prof[p].purpose));
			bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
			CHECK(bn != NULL && BN_num_bits(bn) <= 128 &&
			    BN_num_bits(bn) > 64 && !BN_is_negative(bn));
			BN_free(bn);
			serials[n] = t_serial(x);
			/* The issued record. */
			issued = store_issued_get(st, NULL, serials[n]);
			CHECK(issued != NULL);
			CHECK_STR(json_string_value(json_object_get(issued,
			    "ca_id")), t_id(sub));
			CHECK_STR(json_string_value(json_object_get(issued,
			    "status")), "valid");
			CHECK_STR(json_string_value(json_object_get(issued,
			    "origin")), "mgmt");
			CHECK_STR(json_string_value(json_object_get(issued,
			    "cert_id")), "cert-test");
			CHECK_STR(json_string_value(json_object_get(issued,
			    "serial")), serials[n]);
			CHECK(json_integer_value(json_object_get(issued,
			    "version")) == 3);
			CHECK(json_integer_value(json_object_get(issued,
			    "not_after")) == t_time(X509_get0_notAfter(x)));
			CHECK(json_is_integer(json_object_get(issued,
			    "not_before")) && json_integer_value(
			    json_object_get(issued, "not_before")) ==
			    t_time(X509_get0_notBefore(x)));
			CHECK(common_b64_decode(json_string_value(
			    json_object_get(issued, "der")) ? json_string_value(
			    json_object_get(issued, "der")) : "", json_string_length(
			    json_object_get(issued, "der")), false, &rder,
			    &rlen) == 0);
			CHECK(common_x509_to_der(x, &der, &dlen) == 0);
			CHECK(rder != NULL && der != NULL && rlen == dlen &&
			    memcmp(rder, der, dlen) == 0);
			free(rder);
			free(der);
			rder = der = NULL;
			json_decref(issued);
			n++;
			X509_free(x);
		}
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			CHECK(serials[i] && serials[j] &&
			    strcmp(serials[i], serials[j]) != 0);
	for (i = 0; i < n; i++)
		free(serials[i]);
	CHECK(t_metric("pkid_certificates_issued_total", t_id(sub)));

	/* Empty subject: the SAN extension is critical. */
	x = t_issue(t_id(sub), keys[1], "", sans, 5, CA_PROFILE_TLS_SERVER,
	    1, &err);
	CHECK(x != NULL && X509_NAME_entry_count(X509_get_subject_name(x)) ==
	    0);
	if (x != NULL)
		t_check_sans(x, 1);
	X509_free(x);
	/* Subject only, no SANs: no SAN extension. */
	x = t_issue(t_id(sub), keys[1], "CN=client 1", NULL, 0,
	    CA_PROFILE_TLS_CLIENT, 1, &err);
	CHECK(x != NULL &&
	    X509_get_ext_by_NID(x, NID_subject_alt_name, -1) < 0);
	X509_free(x);
	/* Longer than the CA: clipped to its notAfter. */
	x = t_issue(t_id(sub), keys[1], "CN=long", NULL, 0,
	    CA_PROFILE_TLS_CLIENT, CA_MAX_VALIDITY_DAYS, &err);
	CHECK(x != NULL && t_time(X509_get0_notAfter(x)) ==
	    t_time(X509_get0_notAfter(sx)));
	X509_free(x);
	/* Fractions of days: 0.5 is twelve hours. */
	now = common_now();
	x = t_issue(t_id(sub), keys[1], "CN=half", NULL, 0,
	    CA_PROFILE_TLS_CLIENT, 0.5, &err);
	CHECK(x != NULL &&
	    t_near(t_time(X509_get0_notAfter(x)), now + T_DAY / 2));
	X509_free(x);

	EVP_PKEY_free(keys[0]);
	EVP_PKEY_free(keys[1]);
	X509_free(rx);
	X509_free(sx);
	json_decref(root);
	json_decref(sub);
}

static void
test_issue_refusals(void)
{
	static const char *const one[] = { "ok.example.com" };
	static const char *const bad[] = { "ok.example.com", "bad..name" };
	struct common_error err = { 0 };
	struct ca_issue_req req;
	struct store_txn *txn;
	json_t *root, *ext;
	EVP_PKEY *k, *weak;
	X509 *x;

	root = t_ca("Refusal Root", "root", NULL, "CN=Refusal Root",
	    CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	ext = t_ca("Refusal Pending", "subordinate-of-external", NULL,
	    "CN=Refusal Pending", CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	CHECK(root != NULL && ext != NULL);
	if (root == NULL || ext == NULL)
		goto out0;
	k = ca_key_generate(CA_KEY_ECDSA_P256);
	weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);

	common_error_clear(&err);
	CHECK(t_issue(t_id(root), k, "", NULL, 0, CA_PROFILE_TLS_SERVER, 1,
	    &err) == NULL && err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "subject or at least one SAN") != NULL);
	common_error_clear(&err);
	CHECK(t_issue(t_id(root), weak, "CN=x", one, 1, CA_PROFILE_TLS_SERVER,
	    1, &err) == NULL && err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "public key") != NULL);
	common_error_clear(&err);
	CHECK(t_issue(t_id(root), k, "CN=x", bad, 2, CA_PROFILE_TLS_SERVER, 1,
	    &err) == NULL && err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "\"bad..name\"") != NULL);
	common_error_clear(&err);
	CHECK(t_issue(t_id(root), k, "CN=x", one, 1, CA_PROFILE_TLS_SERVER, 0,
	    &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_issue(t_id(root), k, "CN=x", one, 1, CA_PROFILE_TLS_SERVER,
	    CA_MAX_VALIDITY_DAYS + 1, &err) == NULL &&
	    err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_issue(t_id(root), k, "CN=x", one, 1, CA_PROFILE__MAX, 1,
	    &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_issue(t_id(ext), k, "CN=x", one, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err) == NULL && err.code == COMMON_E_CONFLICT);
	common_error_clear(&err);
	CHECK(t_issue("ca-ffffffffffffffff", k, "CN=x", one, 1,
	    CA_PROFILE_TLS_SERVER, 1, &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(t_issue("../etc", k, "CN=x", one, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err) == NULL && err.code == COMMON_E_NOTFOUND);
	/* Unknown origin. */
	memset(&req, 0, sizeof(req));
	req.pubkey = k;
	req.subject = "CN=x";
	req.profile = CA_PROFILE_TLS_CLIENT;
	req.validity_days = 1;
	req.origin = "smtp";
	common_error_clear(&err);
	txn = store_txn_begin(st);
	x = ca_issue(ctx, txn, t_id(root), &req, &err);
	store_txn_abort(txn);
	CHECK(x == NULL && err.code == COMMON_E_INVALID);
	X509_free(x);
	EVP_PKEY_free(k);
	EVP_PKEY_free(weak);
out0:
	json_decref(root);
	json_decref(ext);
}

static void
test_ed25519_leaf(void)
{
	static const char *const sans[] = { "ed.example.com" };
	struct common_error err = { 0 };
	json_t *root;
	X509 *rx, *x;
	EVP_PKEY *k;
	enum ca_key_alg alg;

	root = t_ca("EC Root", "root", NULL, "CN=EC Root", CA_KEY_ECDSA_P256,
	    30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	rx = t_rec_cert(root);
	k = ca_key_generate(CA_KEY_ED25519);
	x = t_issue(t_id(root), k, "CN=ed", sans, 1, CA_PROFILE_TLS_SERVER, 5,
	    &err);
	CHECK(x != NULL);
	if (x != NULL) {
		CHECK(ca_key_alg_of(X509_get0_pubkey(x), &alg) == 0 &&
		    alg == CA_KEY_ED25519);
		CHECK(X509_get_key_usage(x) == KU_DIGITAL_SIGNATURE);
		CHECK(X509_verify(x, X509_get0_pubkey(rx)) == 1);
		CHECK(t_verify(x, rx, NULL, NULL, X509_PURPOSE_SSL_SERVER));
	}
	X509_free(x);
	X509_free(rx);
	EVP_PKEY_free(k);
	json_decref(root);
}

/* ---- policy -------------------------------------------------------------- */

static void
t_policy_refused(const char *ca_id, EVP_PKEY *k, const char *san,
    const char *want)
{
	struct common_error err = { 0 };
	const char *sans[1] = { san };
	X509 *x;

	x = t_issue(ca_id, k, "CN=p", sans, 1, CA_PROFILE_TLS_SERVER, 1, &err);
	CHECK(x == NULL);
	CHECK(err.code == COMMON_E_POLICY);
	if (strcmp(err.msg, want) != 0) {
		fprintf(stderr, "policy message:\n  got  %s\n  want %s\n",
		    err.msg, want);
		CHECK(strcmp(err.msg, want) == 0);
	}
	X509_free(x);
}

static void
t_policy_ok(const char *ca_id, EVP_PKEY *k, const char *san)
{
	struct common_error err = { 0 };
	const char *sans[1] = { san };
	X509 *x;

	x = t_issue(ca_id, k, "CN=p", sans, 1, CA_PROFILE_TLS_SERVER, 1, &err);
	if (x == NULL)
		fprintf(stderr, "SAN %s refused: %s\n", san, err.msg);
	CHECK(x != NULL);
	X509_free(x);
}

static void
test_policy(void)
{
	struct common_error err = { 0 };
	char want[1024];
	json_t *root, *sub, *rec;
	EVP_PKEY *k;

	root = t_ca("Policy Root", "root", NULL, "CN=Policy Root",
	    CA_KEY_ECDSA_P256, 30, -1, "{\"dns_suffixes\": [\"Example.com\"], "
	    "\"ip_ranges\": [\"10.0.0.0/8\", \"fd00::/8\"]}", &err);
	CHECK(root != NULL);
	if (root == NULL) {
		fprintf(stderr, "policy root: %s\n", err.msg);
		return;
	}
	CHECK_STR(json_string_value(json_array_get(json_object_get(
	    json_object_get(root, "policy"), "dns_suffixes"), 0)),
	    "example.com");
	/* The sub allows more than its root: the root still decides. */
	sub = t_ca("Policy Sub", "subordinate", t_id(root), "CN=Policy Sub",
	    CA_KEY_ECDSA_P256, 30, -1, "{\"dns_suffixes\": [\"example.com\", "
	    "\"example.net\"], \"ip_ranges\": []}", &err);
	CHECK(sub != NULL);
	if (sub == NULL) {
		json_decref(root);
		return;
	}
	k = ca_key_generate(CA_KEY_ECDSA_P256);

	t_policy_ok(t_id(sub), k, "www.example.com");
	t_policy_ok(t_id(sub), k, "example.com");
	t_policy_ok(t_id(sub), k, "*.dev.example.com");
	t_policy_ok(t_id(sub), k, "10.1.2.3");
	t_policy_ok(t_id(sub), k, "fd12::1");
	t_policy_ok(t_id(sub), k, "ops@mail.example.com");
	t_policy_ok(t_id(sub), k, "https://anything.org/x");

	snprintf(want, sizeof(want), "SAN \"evil.org\" is outside the "
	    "dns_suffixes [example.com, example.net] of CA %s \"Policy Sub\"",
	    t_id(sub));
	t_policy_refused(t_id(sub), k, "evil.org", want);
	snprintf(want, sizeof(want), "SAN \"badexample.com\" is outside the "
	    "dns_suffixes [example.com, example.net] of CA %s \"Policy Sub\"",
	    t_id(sub));
	t_policy_refused(t_id(sub), k, "badexample.com", want);
	/* Allowed by the sub, refused by the root. */
	snprintf(want, sizeof(want), "SAN \"www.example.net\" is outside the "
	    "dns_suffixes [example.com] of CA %s \"Policy Root\"", t_id(root));
	t_policy_refused(t_id(sub), k, "www.example.net", want);
	snprintf(want, sizeof(want), "SAN \"ops@example.net\" is outside the "
	    "dns_suffixes [example.com] of CA %s \"Policy Root\"", t_id(root));
	t_policy_refused(t_id(sub), k, "ops@example.net", want);
	/* IP ranges only at the root. */
	snprintf(want, sizeof(want), "SAN \"192.168.1.1\" is outside the "
	    "ip_ranges [10.0.0.0/8, fd00::/8] of CA %s \"Policy Root\"",
	    t_id(root));
	t_policy_refused(t_id(sub), k, "192.168.1.1", want);
	snprintf(want, sizeof(want), "SAN \"2001:db8::1\" is outside the "
	    "ip_ranges [10.0.0.0/8, fd00::/8] of CA %s \"Policy Root\"",
	    t_id(root));
	t_policy_refused(t_id(sub), k, "2001:db8::1", want);
	snprintf(want, sizeof(want), "SAN \"11.0.0.1\" is outside the "
	    "ip_ranges [10.0.0.0/8, fd00::/8] of CA %s \"Policy Root\"",
	    t_id(root));
	t_policy_refused(t_id(root), k, "11.0.0.1", want);

	/* Policy syntax is checked at creation. */
	common_error_clear(&err);
	rec = t_ca("Bad policy", "root", NULL, "CN=B", CA_KEY_ECDSA_P256, 10,
	    -1, "{\"ip_ranges\": [\"10.0.0.0/33\"]}", &err);
	CHECK(rec == NULL && err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "\"10.0.0.0/33\"") != NULL);
	json_decref(rec);
	common_error_clear(&err);
	rec = t_ca("Bad policy", "root", NULL, "CN=B", CA_KEY_ECDSA_P256, 10,
	    -1, "{\"ip_ranges\": [\"10.0.0.1/8\"]}", &err);
	CHECK(rec == NULL && err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "host bits") != NULL);
	json_decref(rec);
	common_error_clear(&err);
	rec = t_ca("Bad policy", "root", NULL, "CN=B", CA_KEY_ECDSA_P256, 10,
	    -1, "{\"ip_ranges\": [\"example.com/8\"]}", &err);
	CHECK(rec == NULL && err.code == COMMON_E_INVALID);
	json_decref(rec);
	common_error_clear(&err);
	rec = t_ca("Bad policy", "root", NULL, "CN=B", CA_KEY_ECDSA_P256, 10,
	    -1, "{\"dns_suffixes\": [\"bad..suffix\"]}", &err);
	CHECK(rec == NULL && err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "\"bad..suffix\"") != NULL);
	json_decref(rec);
	common_error_clear(&err);
	rec = t_ca("Bad policy", "root", NULL, "CN=B", CA_KEY_ECDSA_P256, 10,
	    -1, "{\"dns_suffix\": [\"example.com\"]}", &err);
	CHECK(rec == NULL && err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "dns_suffix") != NULL);
	json_decref(rec);
	common_error_clear(&err);
	rec = t_ca("Bad policy", "root", NULL, "CN=B", CA_KEY_ECDSA_P256, 10,
	    -1, "{\"dns_suffixes\": \"example.com\"}", &err);
	CHECK(rec == NULL && err.code == COMMON_E_INVALID);
	json_decref(rec);

	EVP_PKEY_free(k);
	json_decref(root);
	json_decref(sub);
}

/* ---- CSRs ---------------------------------------------------------------- */

static X509_REQ *
t_csr_file(const char *name)
{
	char path[T_PATH_MAX], *pem = NULL;
	size_t len = 0;
	X509_REQ *r;

	snprintf(path, sizeof(path), "tests/data/ca/%s", name);
	if (common_file_read(path, T_FILE_MAX, &pem, &len) == -1) {
		fprintf(stderr, "cannot read %s (run from the repository "
		    "root)\n", path);
		return NULL;
	}
	r = common_csr_from_pem(pem, len);
	free(pem);
	return r;
}

static void
test_csr_parse(void)
{
	static const char *const want[] = {
		"good.example.com", "10.0.0.5", "::1", "ops@example.com",
		"https://example.com/x",
	};
	struct common_error err = { 0 };
	X509_REQ *r;
	char *subject = NULL;
	json_t *sans = NULL;
	size_t i;

	r = t_csr_file("csr-good.pem");
	CHECK(r != NULL);
	CHECK(ca_csr_parse(r, &subject, &sans, &err) == 0);
	CHECK_STR(subject, "CN=good.example.com,O=Test");
	CHECK(json_array_size(sans) == 5);
	for (i = 0; i < 5 && i < json_array_size(sans); i++)
		CHECK_STR(json_string_value(json_array_get(sans, i)), want[i]);
	free(subject);
	json_decref(sans);
	X509_REQ_free(r);

	r = t_csr_file("csr-bad-signature.pem");
	CHECK(r != NULL);
	subject = NULL;
	sans = NULL;
	CHECK(ca_csr_parse(r, &subject, &sans, &err) == -1);
	CHECK(err.code == COMMON_E_INVALID);
	CHECK_STR(err.msg, "CSR signature does not verify");
	CHECK(subject == NULL && sans == NULL);
	X509_REQ_free(r);

	r = t_csr_file("csr-dirname-san.pem");
	CHECK(r != NULL);
	common_error_clear(&err);
	CHECK(ca_csr_parse(r, &subject, &sans, &err) == -1);
	CHECK(err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "directoryName") != NULL);
	X509_REQ_free(r);

	/* A CSR without extensions: subject only, no SANs. */
	{
		EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
		X509_REQ *q = X509_REQ_new();
		X509_NAME *n = ca_name_parse("CN=plain", NULL);

		X509_REQ_set_subject_name(q, n);
		X509_REQ_set_pubkey(q, k);
		X509_REQ_sign(q, k, EVP_sha256());
		common_error_clear(&err);
		CHECK(ca_csr_parse(q, &subject, &sans, &err) == 0);
		CHECK_STR(subject, "CN=plain");
		CHECK(json_is_array(sans) && json_array_size(sans) == 0);
		free(subject);
		json_decref(sans);
		X509_NAME_free(n);
		X509_REQ_free(q);
		EVP_PKEY_free(k);
	}
}

/* ---- revocation and CRLs ------------------------------------------------- */

static const X509_REVOKED *
t_crl_find(X509_CRL *crl, const char *serial)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	const X509_REVOKED *r;
	BIGNUM *bn;
	char *hex;
	int i;
	bool match;

	for (i = 0; i < sk_X509_REVOKED_num(revs); i++) {
		r = sk_X509_REVOKED_value(revs, i);
		bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
		hex = BN_bn2hex(bn);
		match = hex != NULL && strcmp(hex, serial) == 0;
		OPENSSL_free(hex);
		BN_free(bn);
		if (match)
			return r;
	}
	return NULL;
}

/* reasonCode of a CRL entry; -1 when absent. */
static long
t_crl_reason(const X509_REVOKED *r)
{
	ASN1_ENUMERATED *e;
	long v;

	if (r == NULL)
		return -2;
	e = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
	if (e == NULL)
		return -1;
	v = ASN1_ENUMERATED_get(e);
	ASN1_ENUMERATED_free(e);
	return v;
}

static X509_CRL *
t_crl_publish(const char *ca_id, long next, struct common_error *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0, flen = 0;
	char path[T_PATH_MAX], *file = NULL;
	struct stat sb;
	X509_CRL *crl = NULL;

	if (ca_crl_publish(ctx, ca_id, next, &der, &len, err) == -1)
		return NULL;
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	CHECK(crl != NULL && p == der + len);
	snprintf(path, sizeof(path), "%s/public/crl/%s.crl", datadir, ca_id);
	CHECK(common_file_read(path, T_FILE_MAX, &file, &flen) == 0);
	CHECK(file != NULL && flen == len && memcmp(file, der, len) == 0);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644);
	free(file);
	free(der);
	return crl;
}

static void
test_revoke_and_crl(void)
{
	static const char *const sans[] = { "crl.example.com" };
	struct common_error err = { 0 };
	json_t *root, *issued;
	X509 *rx, *a, *b, *c, *d;
	EVP_PKEY *k;
	X509_CRL *crl;
	STACK_OF(X509_REVOKED) *revs;
	AUTHORITY_KEYID *akid;
	ASN1_INTEGER *num;
	char *sa, *sb, *sc, *sd, lower[64];
	int i;

	root = t_ca("CRL Root", "root", NULL, "CN=CRL Root", CA_KEY_ECDSA_P384,
	    30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	rx = t_rec_cert(root);
	k = ca_key_generate(CA_KEY_ECDSA_P256);
	a = t_issue(t_id(root), k, "CN=a", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	b = t_issue(t_id(root), k, "CN=b", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	c = t_issue(t_id(root), k, "CN=c", sans, 1, CA_PROFILE_TLS_SERVER, 0.5,
	    &err);
	d = t_issue(t_id(root), k, "CN=d", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	CHECK(a != NULL && b != NULL && c != NULL && d != NULL);
	if (a == NULL || b == NULL || c == NULL || d == NULL)
		goto out0;
	sa = t_serial(a);
	sb = t_serial(b);
	sc = t_serial(c);
	sd = t_serial(d);

	/* An empty CRL first: number 1, no entries. */
	crl = t_crl_publish(t_id(root), 3600, &err);
	CHECK(crl != NULL);
	if (crl != NULL) {
		num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
		CHECK(num != NULL && ASN1_INTEGER_get(num) == 1);
		ASN1_INTEGER_free(num);
		CHECK(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) <= 0);
	}
	X509_CRL_free(crl);

	/* Revoke: a keyCompromise (lower-case serial), b unspecified, c
	 * superseded; d stays valid. */
	for (i = 0; sa[i] != '\0'; i++)
		lower[i] = (char)(sa[i] >= 'A' && sa[i] <= 'F' ? sa[i] + 32 :
		    sa[i]);
	lower[i] = '\0';
	CHECK(t_revoke(lower, CA_REASON_KEY_COMPROMISE, &err) == 0);
	CHECK(t_revoke(sb, CA_REASON_UNSPECIFIED, &err) == 0);
	CHECK(t_revoke(sc, CA_REASON_SUPERSEDED, &err) == 0);
	common_error_clear(&err);
	CHECK(t_revoke(sa, CA_REASON_CA_COMPROMISE, &err) == -1 &&
	    err.code == COMMON_E_CONFLICT &&
	    strstr(err.msg, "already revoked") != NULL);
	common_error_clear(&err);
	CHECK(t_revoke("ABCDEF0123", CA_REASON_KEY_COMPROMISE, &err) == -1 &&
	    err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(t_revoke("XYZ", CA_REASON_KEY_COMPROMISE, &err) == -1 &&
	    err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_revoke(sd, CA_REASON_REMOVE_FROM_CRL, &err) == -1 &&
	    err.code == COMMON_E_INVALID);
	issued = store_issued_get(st, NULL, sa);
	CHECK_STR(json_string_value(json_object_get(issued, "status")),
	    "revoked");
	CHECK_STR(json_string_value(json_object_get(issued, "reason")),
	    "keyCompromise");
	CHECK(t_near((time_t)json_integer_value(json_object_get(issued,
	    "revoked_at")), common_now()));
	json_decref(issued);
	CHECK(t_metric("pkid_certificates_revoked_total", t_id(root)));

	crl = t_crl_publish(t_id(root), 7200, &err);
	CHECK(crl != NULL);
	if (crl != NULL) {
		CHECK(X509_CRL_get_version(crl) == X509_CRL_VERSION_2);
		CHECK(X509_NAME_cmp(X509_CRL_get_issuer(crl),
		    X509_get_subject_name(rx)) == 0);
		CHECK(X509_CRL_verify(crl, X509_get0_pubkey(rx)) == 1);
		CHECK(X509_CRL_get_signature_nid(crl) == NID_ecdsa_with_SHA384);
		num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
		CHECK(num != NULL && ASN1_INTEGER_get(num) == 2);
		ASN1_INTEGER_free(num);
		akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier,
		    NULL, NULL);
		CHECK(akid != NULL && akid->keyid != NULL &&
		    ASN1_OCTET_STRING_cmp(akid->keyid,
		    X509_get0_subject_key_id(rx)) == 0);
		AUTHORITY_KEYID_free(akid);
		CHECK(t_near(t_time(X509_CRL_get0_lastUpdate(crl)),
		    common_now()));
		CHECK(t_time(X509_CRL_get0_nextUpdate(crl)) -
		    t_time(X509_CRL_get0_lastUpdate(crl)) == 7200);
		revs = X509_CRL_get_REVOKED(crl);
		CHECK(sk_X509_REVOKED_num(revs) == 3);
		CHECK(t_crl_reason(t_crl_find(crl, sa)) == 1);
		CHECK(t_crl_reason(t_crl_find(crl, sb)) == -1);
		CHECK(t_crl_reason(t_crl_find(crl, sc)) == 4);
		CHECK(t_crl_find(crl, sd) == NULL);
		for (i = 1; i < sk_X509_REVOKED_num(revs); i++)
			CHECK(ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(
			    sk_X509_REVOKED_value(revs, i - 1)),
			    X509_REVOKED_get0_serialNumber(
			    sk_X509_REVOKED_value(revs, i))) < 0);
		CHECK(t_near(t_time(X509_REVOKED_get0_revocationDate(
		    t_crl_find(crl, sa))), common_now()));
	}
	X509_CRL_free(crl);

	/* A day later c (half a day) has expired and drops off. */
	common_clock_set_offset(T_DAY);
	crl = t_crl_publish(t_id(root), 3600, &err);
	common_clock_set_offset(0);
	CHECK(crl != NULL);
	if (crl != NULL) {
		num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
		CHECK(num != NULL && ASN1_INTEGER_get(num) == 3);
		ASN1_INTEGER_free(num);
		CHECK(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 2);
		CHECK(t_crl_find(crl, sa) != NULL);
		CHECK(t_crl_find(crl, sb) != NULL);
		CHECK(t_crl_find(crl, sc) == NULL);
		CHECK(X509_CRL_verify(crl, X509_get0_pubkey(rx)) == 1);
	}
	X509_CRL_free(crl);
	issued = ca_get(ctx, NULL, t_id(root), NULL);
	CHECK(json_integer_value(json_object_get(issued, "crl_number")) == 3);
	json_decref(issued);

	common_error_clear(&err);
	CHECK(ca_crl_publish(ctx, "ca-ffffffffffffffff", 3600, NULL, NULL,
	    &err) == -1 && err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(ca_crl_publish(ctx, t_id(root), 0, NULL, NULL, &err) == -1 &&
	    err.code == COMMON_E_INVALID);
	free(sa);
	free(sb);
	free(sc);
	free(sd);
out0:
	X509_free(a);
	X509_free(b);
	X509_free(c);
	X509_free(d);
	X509_free(rx);
	EVP_PKEY_free(k);
	json_decref(root);
}

/* ---- subordinate of an external parent ----------------------------------- */

/* A certificate made with plain OpenSSL: issuer NULL = self-signed. */
static X509 *
t_plain_cert(X509_NAME *subj, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *ikey,
    bool ca)
{
	static long serial = 1000;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	X509 *x = X509_new();
	struct {
		int		 nid;
		const char	*value;
	} exts[] = {
		{ NID_basic_constraints, ca ? "critical,CA:TRUE" :
		    "critical,CA:FALSE" },
		{ NID_key_usage, ca ? "critical,keyCertSign,cRLSign" :
		    "critical,digitalSignature" },
		{ NID_subject_key_identifier, "hash" },
		{ NID_authority_key_identifier, "keyid:always" },
	};
	size_t i;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_set_subject_name(x, subj);
	X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : subj);
	X509_set_pubkey(x, pub);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 400L * T_DAY);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid,
		    exts[i].value);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(x, ikey, EVP_sha384());
	return x;
}

static char *
t_pem(X509 *x)
{
	return common_x509_to_pem(x);
}

/* True when the TBSCertList inside der (a CRL) is the canonical DER of
 * crl's contents: OpenSSL's own re-encoding gives the same bytes. */
static bool
t_crl_tbs_canonical(const unsigned char *der, size_t len, X509_CRL *crl)
{
	const unsigned char *p = der, *tbs;
	unsigned char *re = NULL;
	long olen, tlen;
	int tag, xclass, relen;
	bool ok;

	if ((ASN1_get_object(&p, &olen, &tag, &xclass, (long)len) & 0x80) !=
	    0 || tag != V_ASN1_SEQUENCE)
		return false;
	tbs = p;
	if ((ASN1_get_object(&p, &tlen, &tag, &xclass, olen) & 0x80) != 0 ||
	    tag != V_ASN1_SEQUENCE)
		return false;
	tlen += p - tbs;
	relen = i2d_re_X509_CRL_tbs(crl, &re);
	ok = relen == tlen && memcmp(re, tbs, (size_t)tlen) == 0;
	OPENSSL_free(re);
	return ok;
}

/*
 * CRLs come from the revocation index, one walk per publication: an
 * RSA CA's CRL verifies and is canonical DER (the TBS is encoded once
 * and the signature wrapped by hand), entries sharing a reason each
 * carry it, a certificate revoked after a publication is in the next.
 * After the index is built again from `issued` at open (as for a data
 * directory written before it existed) the CRL lists the same entries.
 */
static void
test_crl_from_index(void)
{
	static const char *const sans[] = { "idx.example.com" };
	static const enum ca_reason reasons[] = { CA_REASON_KEY_COMPROMISE,
	    CA_REASON_SUPERSEDED, CA_REASON_KEY_COMPROMISE,
	    CA_REASON_UNSPECIFIED, CA_REASON_SUPERSEDED };
	static const long codes[] = { 1, 4, 1, -1, 4 };
	enum { T_N = 5 };
	struct ca_config cfg = { 0 };
	struct common_error err = { 0 };
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	char *serials[T_N + 1] = { NULL };
	struct store_txn *txn;
	json_t *root;
	X509 *rx = NULL, *x;
	X509_CRL *crl = NULL;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	int i, round;

	root = t_ca("Index Root", "root", NULL, "CN=Index Root",
	    CA_KEY_RSA2048, 30, -1, NULL, &err);
	CHECK(root != NULL && k != NULL);
	if (root == NULL || k == NULL)
		goto out;
	rx = t_rec_cert(root);
	for (i = 0; i <= T_N; i++) {
		x = t_issue(t_id(root), k, "CN=idx", sans, 1,
		    CA_PROFILE_TLS_SERVER, 10, &err);
		CHECK(x != NULL);
		if (x == NULL)
			goto out;
		serials[i] = t_serial(x);
		X509_free(x);
	}
	for (i = 0; i < T_N - 1; i++)
		CHECK(t_revoke(serials[i], reasons[i], &err) == 0);
	crl = t_crl_publish(t_id(root), 3600, &err);
	CHECK(crl != NULL &&
	    sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == T_N - 1);
	X509_CRL_free(crl);
	CHECK(t_revoke(serials[T_N - 1], reasons[T_N - 1], &err) == 0);

	for (round = 0; round < 2; round++) {
		if (ca_crl_publish(ctx, t_id(root), 3600, &der, &len,
		    &err) == -1) {
			CHECK(!"publish");
			goto out;
		}
		p = der;
		crl = d2i_X509_CRL(NULL, &p, (long)len);
		CHECK(crl != NULL && p == der + len);
		if (crl == NULL)
			goto out;
		CHECK(X509_CRL_verify(crl, X509_get0_pubkey(rx)) == 1);
		CHECK(X509_CRL_get_signature_nid(crl) ==
		    NID_sha256WithRSAEncryption);
		CHECK(t_crl_tbs_canonical(der, len, crl));
		CHECK(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == T_N);
		for (i = 0; i < T_N; i++)
			CHECK(t_crl_reason(t_crl_find(crl, serials[i])) ==
			    codes[i]);
		CHECK(t_crl_find(crl, serials[T_N]) == NULL);
		X509_CRL_free(crl);
		crl = NULL;
		free(der);
		der = NULL;
		if (round == 1)
			break;
		/* An interrupted build of the index: the next open empties
		 * it and builds it again from the table. */
		txn = store_txn_begin(st);
		CHECK(store_meta_put(txn, "index_build:issued-revoked.db",
		    "1") == 0);
		CHECK(store_txn_commit(txn) == 0);
		ca_ctx_free(ctx);
		store_close(st);
		cfg.data_dir = datadir;
		cfg.http_base_url = T_BASE_URL "/";
		if ((st = store_open(datadir)) == NULL ||
		    (ctx = ca_ctx_new(st, &cfg)) == NULL) {
			fprintf(stderr, "cannot reopen %s\n", datadir);
			exit(2);
		}
		CHECK(store_meta_get(st, NULL,
		    "index_build:issued-revoked.db") == NULL);
	}
out:
	for (i = 0; i <= T_N; i++)
		free(serials[i]);
	free(der);
	X509_CRL_free(crl);
	X509_free(rx);
	EVP_PKEY_free(k);
	json_decref(root);
}

static void
test_external(void)
{
	static const char *const sans[] = { "ext.example.com" };
	struct common_error err = { 0 };
	json_t *ext, *rec, *sub2 = NULL;
	X509_REQ *csr = NULL;
	EVP_PKEY *rootkey, *otherkey, *leafkey;
	X509_NAME *rootname, *othername;
	X509 *root, *other, *good = NULL, *wrongkey, *notca, *wrongsubj;
	X509 *leaf = NULL, *ex = NULL, *s2x = NULL;
	STACK_OF(X509) *bundle = NULL;
	char *pem, *chain, *b;
	const char *csr_pem;
	int crit = -1;
	BASIC_CONSTRAINTS *bc;
	STACK_OF(X509_EXTENSION) *exts;

	ext = t_ca("Ext Sub", "subordinate-of-external", NULL,
	    "CN=Ext Sub,O=pkid", CA_KEY_ECDSA_P256, 365, -1, NULL, &err);
	CHECK(ext != NULL);
	if (ext == NULL)
		return;
	CHECK_STR(json_string_value(json_object_get(ext, "state")), "pending");
	CHECK(json_object_get(ext, "certificate") == NULL);
	CHECK(json_is_null(json_object_get(ext, "parent_id")));
	csr_pem = json_string_value(json_object_get(ext, "csr"));
	CHECK(csr_pem != NULL);
	if (csr_pem != NULL)
		csr = common_csr_from_pem(csr_pem, strlen(csr_pem));
	CHECK(csr != NULL);
	if (csr == NULL)
		goto out;
	CHECK(X509_REQ_verify(csr, X509_REQ_get0_pubkey(csr)) == 1);
	pem = ca_name_string(X509_REQ_get_subject_name(csr));
	CHECK_STR(pem, "CN=Ext Sub,O=pkid");
	free(pem);
	exts = X509_REQ_get_extensions(csr);
	bc = X509V3_get_d2i(exts, NID_basic_constraints, &crit, NULL);
	CHECK(bc != NULL && bc->ca && crit == 1);
	BASIC_CONSTRAINTS_free(bc);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	common_error_clear(&err);
	CHECK(ca_bundle_pem(ctx, NULL, t_id(ext), &err) == NULL &&
	    err.code == COMMON_E_CONFLICT);

	/* The external parent, made with plain OpenSSL. */
	rootkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	otherkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	rootname = ca_name_parse("CN=External Root,O=Elsewhere", NULL);
	othername = ca_name_parse("CN=Another Root", NULL);
	root = t_plain_cert(rootname, rootkey, NULL, rootkey, true);
	other = t_plain_cert(othername, otherkey, NULL, otherkey, true);
	good = t_plain_cert(X509_REQ_get_subject_name(csr),
	    X509_REQ_get0_pubkey(csr), root, rootkey, true);
	wrongkey = t_plain_cert(X509_REQ_get_subject_name(csr), otherkey, root,
	    rootkey, true);
	notca = t_plain_cert(X509_REQ_get_subject_name(csr),
	    X509_REQ_get0_pubkey(csr), root, rootkey, false);
	wrongsubj = t_plain_cert(othername, X509_REQ_get0_pubkey(csr), root,
	    rootkey, true);
	chain = t_pem(root);

	pem = t_pem(wrongkey);
	common_error_clear(&err);
	CHECK(t_import(t_id(ext), pem, chain, &err) == -1 &&
	    err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "does not match the key") != NULL);
	free(pem);
	pem = t_pem(notca);
	common_error_clear(&err);
	CHECK(t_import(t_id(ext), pem, chain, &err) == -1 &&
	    err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "not a CA certificate") != NULL);
	free(pem);
	pem = t_pem(wrongsubj);
	common_error_clear(&err);
	CHECK(t_import(t_id(ext), pem, chain, &err) == -1 &&
	    err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "differs from the CSR subject") != NULL);
	free(pem);
	/* The right certificate with somebody else's root. */
	pem = t_pem(good);
	b = t_pem(other);
	common_error_clear(&err);
	CHECK(t_import(t_id(ext), pem, b, &err) == -1 &&
	    err.code == COMMON_E_INVALID &&
	    strstr(err.msg, "does not verify") != NULL);
	free(b);
	common_error_clear(&err);
	CHECK(t_import(t_id(ext), "not pem", chain, &err) == -1 &&
	    err.code == COMMON_E_INVALID);
	rec = ca_get(ctx, NULL, t_id(ext), NULL);
	CHECK_STR(json_string_value(json_object_get(rec, "state")), "pending");
	json_decref(rec);

	/* The right one. */
	common_error_clear(&err);
	CHECK(t_import(t_id(ext), pem, chain, &err) == 0);
	if (err.code != COMMON_E_NONE)
		fprintf(stderr, "import: %s\n", err.msg);
	common_error_clear(&err);
	CHECK(t_import(t_id(ext), pem, chain, &err) == -1 &&
	    err.code == COMMON_E_CONFLICT);
	free(pem);
	rec = ca_get(ctx, NULL, t_id(ext), NULL);
	CHECK_STR(json_string_value(json_object_get(rec, "state")), "active");
	CHECK(json_object_get(rec, "csr") == NULL);
	CHECK(json_string_value(json_object_get(rec, "not_after")) != NULL);
	CHECK(json_string_value(json_object_get(rec, "serial")) != NULL);
	CHECK_STR(json_string_value(json_object_get(rec, "chain")), chain);
	ex = t_rec_cert(rec);
	CHECK(ex != NULL && X509_cmp(ex, good) == 0);
	json_decref(rec);

	/* Issue under it; the full chain verifies to the external root. */
	leafkey = ca_key_generate(CA_KEY_RSA2048);
	common_error_clear(&err);
	leaf = t_issue(t_id(ext), leafkey, "CN=ext.example.com", sans, 1,
	    CA_PROFILE_TLS_SERVER, 30, &err);
	CHECK(leaf != NULL);
	if (leaf != NULL) {
		CHECK(t_aki_is_ski(leaf, good));
		CHECK(t_verify(leaf, root, good, NULL,
		    X509_PURPOSE_SSL_SERVER));
	}

	/* A pkid subordinate under it; its bundle climbs to the root. */
	sub2 = t_ca("Under Ext", "subordinate", t_id(ext), "CN=Under Ext",
	    CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	CHECK(sub2 != NULL);
	if (sub2 != NULL) {
		s2x = t_rec_cert(sub2);
		CHECK(t_verify(s2x, root, good, NULL, 0));
		b = ca_bundle_pem(ctx, NULL, t_id(sub2), &err);
		CHECK(b != NULL);
		if (b != NULL)
			bundle = common_x509s_from_pem(b, strlen(b),
			    CA_CHAIN_MAX);
		CHECK(bundle != NULL && sk_X509_num(bundle) == 3);
		if (bundle != NULL && sk_X509_num(bundle) == 3) {
			CHECK(X509_cmp(sk_X509_value(bundle, 0), s2x) == 0);
			CHECK(X509_cmp(sk_X509_value(bundle, 1), good) == 0);
			CHECK(X509_cmp(sk_X509_value(bundle, 2), root) == 0);
		}
		sk_X509_pop_free(bundle, X509_free);
		free(b);
	}

	EVP_PKEY_free(leafkey);
	free(chain);
	X509_free(root);
	X509_free(other);
	X509_free(wrongkey);
	X509_free(notca);
	X509_free(wrongsubj);
	X509_NAME_free(rootname);
	X509_NAME_free(othername);
	EVP_PKEY_free(rootkey);
	EVP_PKEY_free(otherkey);
out:
	X509_free(good);
	X509_free(leaf);
	X509_free(ex);
	X509_free(s2x);
	X509_REQ_free(csr);
	json_decref(sub2);
	json_decref(ext);
}

/* An external parent chain given as intermediate + root: imported, and
 * the bundle carries both. */
static void
test_external_two_level_chain(void)
{
	struct common_error err = { 0 };
	json_t *ext;
	X509_REQ *csr;
	EVP_PKEY *rk, *ik;
	X509_NAME *rn, *in;
	X509 *root, *inter, *cert;
	STACK_OF(X509) *bundle = NULL;
	char *pem, *chain, *b;
	const char *csr_pem;
	size_t n;

	ext = t_ca("Ext2", "subordinate-of-external", NULL, "CN=Ext2",
	    CA_KEY_ECDSA_P384, 100, 0, NULL, &err);
	CHECK(ext != NULL);
	if (ext == NULL)
		return;
	csr_pem = json_string_value(json_object_get(ext, "csr"));
	csr = common_csr_from_pem(csr_pem, strlen(csr_pem));
	rk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	ik = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	rn = ca_name_parse("CN=Outer Root", NULL);
	in = ca_name_parse("CN=Outer Intermediate", NULL);
	root = t_plain_cert(rn, rk, NULL, rk, true);
	inter = t_plain_cert(in, ik, root, rk, true);
	cert = t_plain_cert(X509_REQ_get_subject_name(csr),
	    X509_REQ_get0_pubkey(csr), inter, ik, true);
	pem = t_pem(cert);
	b = t_pem(inter);
	chain = t_pem(root);
	n = strlen(b) + strlen(chain) + strlen(pem) + 1;
	/* Full chain pasted, including the certificate itself. */
	{
		char *full = malloc(n);

		snprintf(full, n, "%s%s%s", pem, b, chain);
		CHECK(t_import(t_id(ext), pem, full, &err) == 0);
		if (err.code != COMMON_E_NONE)
			fprintf(stderr, "import: %s\n", err.msg);
		free(full);
	}
	free(b);
	b = ca_bundle_pem(ctx, NULL, t_id(ext), &err);
	CHECK(b != NULL);
	if (b != NULL)
		bundle = common_x509s_from_pem(b, strlen(b), CA_CHAIN_MAX);
	CHECK(bundle != NULL && sk_X509_num(bundle) == 3);
	if (bundle != NULL && sk_X509_num(bundle) == 3) {
		CHECK(X509_cmp(sk_X509_value(bundle, 0), cert) == 0);
		CHECK(X509_cmp(sk_X509_value(bundle, 1), inter) == 0);
		CHECK(X509_cmp(sk_X509_value(bundle, 2), root) == 0);
	}
	sk_X509_pop_free(bundle, X509_free);
	free(b);
	free(pem);
	free(chain);
	X509_free(root);
	X509_free(inter);
	X509_free(cert);
	X509_NAME_free(rn);
	X509_NAME_free(in);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
	X509_REQ_free(csr);
	json_decref(ext);
}

/* ---- bundles, listing, publishing, reload -------------------------------- */

static void
test_bundle_and_list(void)
{
	struct common_error err = { 0 };
	json_t *root, *sub, *leafca, *list, *rec, *one;
	X509 *rx, *sx, *lx;
	STACK_OF(X509) *bundle = NULL;
	char *b, path[T_PATH_MAX];
	size_t i;
	bool found = false;

	root = t_ca("B Root", "root", NULL, "CN=B Root", CA_KEY_ECDSA_P256, 30,
	    -1, NULL, &err);
	sub = t_ca("B Sub", "subordinate", root ? t_id(root) : "",
	    "CN=B Sub", CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	leafca = t_ca("B Sub2", "subordinate", sub ? t_id(sub) : "",
	    "CN=B Sub2", CA_KEY_RSA2048, 30, -1, NULL, &err);
	CHECK(root != NULL && sub != NULL && leafca != NULL);
	if (root == NULL || sub == NULL || leafca == NULL)
		goto out;
	rx = t_rec_cert(root);
	sx = t_rec_cert(sub);
	lx = t_rec_cert(leafca);
	b = ca_bundle_pem(ctx, NULL, t_id(leafca), &err);
	CHECK(b != NULL);
	if (b != NULL)
		bundle = common_x509s_from_pem(b, strlen(b), CA_CHAIN_MAX);
	CHECK(bundle != NULL && sk_X509_num(bundle) == 3);
	if (bundle != NULL && sk_X509_num(bundle) == 3) {
		CHECK(X509_cmp(sk_X509_value(bundle, 0), lx) == 0);
		CHECK(X509_cmp(sk_X509_value(bundle, 1), sx) == 0);
		CHECK(X509_cmp(sk_X509_value(bundle, 2), rx) == 0);
	}
	sk_X509_pop_free(bundle, X509_free);
	free(b);
	b = ca_bundle_pem(ctx, NULL, t_id(root), &err);
	CHECK(b != NULL && strstr(b, "BEGIN CERTIFICATE") != NULL &&
	    strstr(strstr(b, "BEGIN CERTIFICATE") + 1, "BEGIN CERTIFICATE") ==
	    NULL);
	free(b);
	common_error_clear(&err);
	CHECK(ca_bundle_pem(ctx, NULL, "ca-0000000000000001", &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);

	/* get and list */
	common_error_clear(&err);
	one = ca_get(ctx, NULL, t_id(sub), &err);
	CHECK(one != NULL);
	CHECK(t_url_is(one != NULL ? strdup(json_string_value(
	    json_object_get(one, "crl_url"))) : NULL, "crl", t_id(sub), "crl"));
	CHECK(t_url_is(one != NULL ? strdup(json_string_value(
	    json_object_get(one, "ca_cert_url"))) : NULL, "ca", t_id(sub),
	    "crt"));
	CHECK_STR(json_string_value(json_object_get(one, "key_algorithm")),
	    "ECDSA_P256");
	json_decref(one);
	common_error_clear(&err);
	CHECK(ca_get(ctx, NULL, "ca-0000000000000001", &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);
	list = ca_list(ctx, NULL);
	CHECK(json_is_array(list) && json_array_size(list) >= 3);
	json_array_foreach(list, i, rec) {
		if (strcmp(t_id(rec), t_id(leafca)) == 0)
			found = json_string_value(json_object_get(rec,
			    "crl_url")) != NULL;
	}
	CHECK(found);
	json_decref(list);

	/* ca_publish_certs rewrites the public files. */
	snprintf(path, sizeof(path), "%s/public/ca/%s.crt", datadir,
	    t_id(sub));
	CHECK(unlink(path) == 0);
	CHECK(ca_publish_certs(ctx) == 0);
	CHECK(access(path, F_OK) == 0);

	X509_free(rx);
	X509_free(sx);
	X509_free(lx);
out:
	json_decref(root);
	json_decref(sub);
	json_decref(leafca);
}

/* A new context (as after a restart) loads CA keys from their files. */
static void
test_reload(void)
{
	static const char *const sans[] = { "reload.example.com" };
	struct ca_config cfg = { 0 };
	struct common_error err = { 0 };
	char path[T_PATH_MAX], *data = NULL;
	const char *handle;
	json_t *root;
	struct stat sb;
	EVP_PKEY *k;
	X509 *x, *rx;
	size_t len = 0;

	root = t_ca("Reload Root", "root", NULL, "CN=Reload", CA_KEY_RSA2048,
	    30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	handle = json_string_value(json_object_get(json_object_get(root,
	    "key"), "handle"));
	CHECK(handle != NULL && strncmp(handle, "key-", 4) == 0);
	snprintf(path, sizeof(path), "%s/keys/%s.pem", datadir, handle);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	CHECK(common_file_read(path, T_FILE_MAX, &data, &len) == 0 &&
	    strncmp(data, "-----BEGIN ENCRYPTED PRIVATE KEY-----", 37) == 0);
	free(data);

	ca_ctx_free(ctx);
	cfg.data_dir = datadir;
	cfg.http_base_url = T_BASE_URL;
	ctx = ca_ctx_new(st, &cfg);
	CHECK(ctx != NULL);
	if (ctx == NULL)
		exit(2);
	k = ca_key_generate(CA_KEY_ECDSA_P256);
	x = t_issue(t_id(root), k, "CN=r", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x != NULL);
	rx = t_ca_cert(t_id(root));
	CHECK(x != NULL && rx != NULL &&
	    X509_verify(x, X509_get0_pubkey(rx)) == 1);
	CHECK(x != NULL &&
	    X509_get_signature_nid(x) == NID_sha256WithRSAEncryption);
	X509_free(x);
	X509_free(rx);
	EVP_PKEY_free(k);
	json_decref(root);
}

/* ---- concurrency ---------------------------------------------------------- */

struct t_worker {
	const char	*ca_id;
	EVP_PKEY	*key;
	X509		*cert;		/* result of the last try */
	char		*serials[T_PER_THREAD];
	int		 ok;
};

static int
t_worker_txn(struct store_txn *txn, void *arg)
{
	static const char *const sans[] = { "thread.example.com" };
	struct t_worker *w = arg;
	struct ca_issue_req req;
	struct common_error err = { 0 };

	memset(&req, 0, sizeof(req));
	req.pubkey = w->key;
	req.subject = "CN=thread";
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 1;
	req.origin = "acme";
	X509_free(w->cert);
	/* A deadlock fails this try; store_txn_run reruns it. */
	w->cert = ca_issue(ctx, txn, w->ca_id, &req, &err);
	return w->cert != NULL ? 0 : -1;
}

static void *
t_worker_run(void *arg)
{
	struct t_worker *w = arg;
	int i;

	for (i = 0; i < T_PER_THREAD; i++) {
		if (store_txn_run(st, t_worker_txn, w) == 0 && w->cert != NULL) {
			w->serials[i] = t_serial(w->cert);
			w->ok++;
		}
		X509_free(w->cert);
		w->cert = NULL;
	}
	return NULL;
}

/* Threads issue under one CA from a fresh context (so they race to
 * load and cache its key); every certificate succeeds with its own
 * serial. */
static void
test_concurrent_issue(void)
{
	struct ca_config cfg = { 0 };
	struct common_error err = { 0 };
	struct t_worker w[T_THREADS];
	pthread_t th[T_THREADS];
	json_t *root;
	int i, j, a, b;

	root = t_ca("Busy Root", "root", NULL, "CN=Busy", CA_KEY_ECDSA_P256,
	    30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	ca_ctx_free(ctx);
	cfg.data_dir = datadir;
	cfg.http_base_url = T_BASE_URL;
	if ((ctx = ca_ctx_new(st, &cfg)) == NULL)
		exit(2);
	memset(w, 0, sizeof(w));
	for (i = 0; i < T_THREADS; i++) {
		w[i].ca_id = t_id(root);
		w[i].key = ca_key_generate(CA_KEY_ECDSA_P256);
		CHECK(pthread_create(&th[i], NULL, t_worker_run, &w[i]) == 0);
	}
	for (i = 0; i < T_THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < T_THREADS; i++)
		CHECK(w[i].ok == T_PER_THREAD);
	for (a = 0; a < T_THREADS * T_PER_THREAD; a++)
		for (b = a + 1; b < T_THREADS * T_PER_THREAD; b++) {
			const char *x = w[a / T_PER_THREAD].serials[a % T_PER_THREAD];
			const char *y = w[b / T_PER_THREAD].serials[b % T_PER_THREAD];

			CHECK(x != NULL && y != NULL && strcmp(x, y) != 0);
		}
	for (i = 0; i < T_THREADS; i++) {
		for (j = 0; j < T_PER_THREAD; j++)
			free(w[i].serials[j]);
		EVP_PKEY_free(w[i].key);
	}
	json_decref(root);
}

static void
test_teardown(void)
{
	ca_ctx_free(ctx);
	ctx = NULL;
	store_close(st);
	st = NULL;
	ERR_clear_error();
}

/* Subjects that OpenSSL prints ambiguously must still round-trip
 * (tests/fuzz/corpus/subject/regress-hash-value). */
static void
test_subject_hash_roundtrip(void)
{
	static const char *const in[] = { "CN=\\#", "CN=\\23",
	    "CN=a,O=\\#", "CN=\\#x", "CN=a\\#" };
	struct common_error err;
	X509_NAME *n, *back;
	char *text;
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		common_error_clear(&err);
		n = ca_name_parse(in[i], &err);
		CHECK(n != NULL);
		if (n == NULL)
			continue;
		text = ca_name_string(n);
		CHECK(text != NULL);
		back = text != NULL ? ca_name_parse(text, &err) : NULL;
		CHECK(back != NULL);
		CHECK(back != NULL && X509_NAME_cmp(n, back) == 0);
		X509_NAME_free(back);
		X509_NAME_free(n);
		free(text);
	}
}

/* ---- CA lifecycle: versions, renewal, state, deletion ------------------- */

/* ca_renew in its own committed transaction. */
static json_t *
t_renew(const char *id, bool new_key, double days, const json_t *key,
    struct common_error *err)
{
	struct ca_renew_req req;
	struct store_txn *txn;
	json_t *rec;

	memset(&req, 0, sizeof(req));
	req.new_key = new_key;
	req.validity_days = days;
	req.key = key;
	txn = store_txn_begin(st);
	rec = ca_renew(ctx, txn, id, &req, err);
	if (rec != NULL) {
		if (store_txn_commit(txn) != 0) {
			json_decref(rec);
			rec = NULL;
		}
	} else
		store_txn_abort(txn);
	return rec;
}

static int
t_set_state(const char *id, const char *state, struct common_error *err)
{
	struct store_txn *txn = store_txn_begin(st);

	if (ca_set_state(ctx, txn, id, state, err) == -1) {
		store_txn_abort(txn);
		return -1;
	}
	return store_txn_commit(txn);
}

/* Certificate of version n of CA id (0: current), read afresh. */
static X509 *
t_ver_cert(const char *id, unsigned n)
{
	json_t *rec = ca_get(ctx, NULL, id, NULL);
	X509 *x = ca_record_version_cert(rec, n);

	json_decref(rec);
	return x;
}

/* The key handle of version n of CA id. */
static char *
t_ver_handle(const char *id, unsigned n)
{
	json_t *rec = ca_get(ctx, NULL, id, NULL);
	const char *h = json_string_value(json_object_get(json_object_get(
	    ca_record_version(rec, n), "key"), "handle"));
	char *s = h != NULL ? strdup(h) : NULL;

	json_decref(rec);
	return s;
}

static bool
t_key_file(const char *handle)
{
	char path[T_PATH_MAX];

	snprintf(path, sizeof(path), "%s/keys/%s.pem", datadir, handle);
	return access(path, F_OK) == 0;
}

static bool
t_public_file(const char *dir, const char *stem, const char *ext)
{
	char path[T_PATH_MAX];

	snprintf(path, sizeof(path), "%s/public/%s/%s.%s", datadir, dir, stem,
	    ext);
	return access(path, F_OK) == 0;
}

/* The bundle of CA id as certificates. */
static STACK_OF(X509) *
t_bundle(const char *id, bool extras)
{
	struct common_error err = { 0 };
	STACK_OF(X509) *sk = NULL;
	char *b;

	b = extras ? ca_bundle_pem(ctx, NULL, id, &err) :
	    ca_chain_pem(ctx, NULL, id, &err);
	if (b != NULL)
		sk = common_x509s_from_pem(b, strlen(b), CA_CHAIN_MAX);
	free(b);
	return sk;
}

/* DATA/public/<dir>/<stem>.<ext> as a CRL. */
static X509_CRL *
t_crl_file(const char *stem)
{
	char path[T_PATH_MAX], *data = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509_CRL *crl = NULL;

	snprintf(path, sizeof(path), "%s/public/crl/%s.crl", datadir, stem);
	if (common_file_read(path, T_FILE_MAX, &data, &len) == 0) {
		p = (const unsigned char *)data;
		crl = d2i_X509_CRL(NULL, &p, (long)len);
	}
	free(data);
	return crl;
}

/*
 * Verifies leaf the way a relying party holding the trust bundle does:
 * the self-signed certificates of certs are anchors, the others
 * untrusted; with crls, every certificate of the path is CRL-checked.
 * Returns the X509_V_* result.
 */
static int
t_verify_with(X509 *leaf, STACK_OF(X509) *certs, X509_CRL *crl1,
    X509_CRL *crl2, X509_CRL *crl3)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509 *c;
	int i, rc;

	for (i = 0; i < sk_X509_num(certs); i++) {
		c = sk_X509_value(certs, i);
		if (X509_self_signed(c, 0) == 1)
			X509_STORE_add_cert(store, c);
		else
			sk_X509_push(untrusted, c);
	}
	if (crl1 != NULL) {
		X509_STORE_add_crl(store, crl1);
		if (crl2 != NULL)
			X509_STORE_add_crl(store, crl2);
		if (crl3 != NULL)
			X509_STORE_add_crl(store, crl3);
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK |
		    X509_V_FLAG_CRL_CHECK_ALL);
	}
	X509_STORE_CTX_init(sctx, store, leaf, untrusted);
	rc = X509_verify_cert(sctx) == 1 ? X509_V_OK :
	    X509_STORE_CTX_get_error(sctx);
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return rc;
}

/* The "ca_version" of the issued record of x. */
static long long
t_issued_ca_version(X509 *x)
{
	char hex[64];
	json_t *rec;
	long long v = -1;

	if (common_x509_serial_hex(x, hex, sizeof(hex)) == -1 ||
	    (rec = store_issued_get(st, NULL, hex)) == NULL)
		return -1;
	if (json_is_integer(json_object_get(rec, "ca_version")))
		v = json_integer_value(json_object_get(rec, "ca_version"));
	json_decref(rec);
	return v;
}

/* Same key: a new certificate, the same SKI, old leaves still verify
 * with the new certificate alone; versioned public files and AIA. */
static void
test_renew_same_key(void)
{
	static const char *const sans[] = { "same.example.com" };
	struct common_error err = { 0 };
	json_t *root, *r2 = NULL;
	X509 *v1 = NULL, *v2 = NULL, *l1 = NULL, *l2 = NULL;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	STACK_OF(X509) *b = NULL;
	char stem[CA_FILE_NAME_MAX], *h1 = NULL, *h2 = NULL;
	time_t na;

	root = t_ca("Same Root", "root", NULL, "CN=Same Root,O=T",
	    CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		goto out;
	CHECK(json_integer_value(json_object_get(root, "current_version")) ==
	    1);
	CHECK(json_array_size(json_object_get(root, "versions")) == 1);
	l1 = t_issue(t_id(root), k, "CN=l1", sans, 1, CA_PROFILE_TLS_SERVER,
	    10, &err);
	CHECK(l1 != NULL && t_issued_ca_version(l1) == 1);
	v1 = t_ver_cert(t_id(root), 1);

	r2 = t_renew(t_id(root), false, 60, NULL, &err);
	CHECK(r2 != NULL);
	if (r2 == NULL) {
		fprintf(stderr, "renew: %s\n", err.msg);
		goto out;
	}
	CHECK(json_integer_value(json_object_get(r2, "current_version")) == 2);
	CHECK(json_array_size(json_object_get(r2, "versions")) == 2);
	v2 = t_ver_cert(t_id(root), 0);
	CHECK(v1 != NULL && v2 != NULL);
	if (v1 == NULL || v2 == NULL)
		goto out;
	CHECK(X509_cmp(v1, v2) != 0);
	CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(v1),
	    X509_get0_serialNumber(v2)) != 0);
	CHECK(X509_NAME_cmp(X509_get_subject_name(v1),
	    X509_get_subject_name(v2)) == 0);
	CHECK(EVP_PKEY_eq(X509_get0_pubkey(v1), X509_get0_pubkey(v2)) == 1);
	CHECK(t_aki_is_ski(v2, v2) && t_aki_is_ski(v2, v1));
	CHECK(X509_self_signed(v2, 1) == 1);
	CHECK(t_near(t_time(X509_get0_notAfter(v2)), common_now() +
	    60 * T_DAY));
	h1 = t_ver_handle(t_id(root), 1);
	h2 = t_ver_handle(t_id(root), 2);
	CHECK(h1 != NULL && h2 != NULL && strcmp(h1, h2) == 0);
	/* The top level mirrors the current version. */
	CHECK_STR(json_string_value(json_object_get(r2, "certificate")),
	    json_string_value(json_object_get(ca_record_version(r2, 2),
	    "certificate")));
	CHECK(common_asn1_time(X509_get0_notAfter(v2), &na) == 0);

	/* New leaves: signed under version 2, same key generation. */
	l2 = t_issue(t_id(root), k, "CN=l2", sans, 1, CA_PROFILE_TLS_SERVER,
	    10, &err);
	CHECK(l2 != NULL);
	if (l2 == NULL)
		goto out;
	CHECK(t_issued_ca_version(l2) == 2);
	CHECK(t_aki_is_ski(l2, v2));
	CHECK(t_verify(l2, v2, NULL, NULL, 0));
	CHECK(t_verify(l1, v2, NULL, NULL, 0));	/* same key */
	CHECK(t_url_is(t_cdp(l2), "crl", t_id(root), "crl"));
	snprintf(stem, sizeof(stem), "%s-v2", t_id(root));
	CHECK(t_url_is(t_aia(l2), "ca", stem, "crt"));
	CHECK(t_url_is(t_aia(l1), "ca", t_id(root), "crt"));
	CHECK(ca_crl_stem(r2, 0, stem, sizeof(stem)) == 0 &&
	    strcmp(stem, t_id(root)) == 0);

	/* Bundle: the current certificate, then version 1 (still valid). */
	b = t_bundle(t_id(root), true);
	CHECK(b != NULL && sk_X509_num(b) == 2);
	if (b != NULL && sk_X509_num(b) == 2) {
		CHECK(X509_cmp(sk_X509_value(b, 0), v2) == 0);
		CHECK(X509_cmp(sk_X509_value(b, 1), v1) == 0);
	}
	sk_X509_pop_free(b, X509_free);
	b = t_bundle(t_id(root), false);
	CHECK(b != NULL && sk_X509_num(b) == 1);
	sk_X509_pop_free(b, X509_free);

	/* Public files: every version, and the current one unversioned. */
	CHECK(ca_publish_certs(ctx) == 0);
	snprintf(stem, sizeof(stem), "%s-v1", t_id(root));
	CHECK(t_public_file("ca", stem, "crt"));
	snprintf(stem, sizeof(stem), "%s-v2", t_id(root));
	CHECK(t_public_file("ca", stem, "crt"));
	{
		char path[T_PATH_MAX], *data = NULL;
		const unsigned char *p;
		size_t len = 0;
		X509 *pub = NULL;

		snprintf(path, sizeof(path), "%s/public/ca/%s.crt", datadir,
		    t_id(root));
		if (common_file_read(path, T_FILE_MAX, &data, &len) == 0) {
			p = (const unsigned char *)data;
			pub = d2i_X509(NULL, &p, (long)len);
		}
		CHECK(pub != NULL && X509_cmp(pub, v2) == 0);
		X509_free(pub);
		free(data);
	}
out:
	free(h1);
	free(h2);
	X509_free(v1);
	X509_free(v2);
	X509_free(l1);
	X509_free(l2);
	EVP_PKEY_free(k);
	json_decref(root);
	json_decref(r2);
}

/*
 * New key on a subordinate: new leaves carry the new key id and its CRL
 * URL; leaves signed under the old key still verify with the bundle, and
 * each key's CRL lists exactly its own revoked certificates, so a relying
 * party checking CRLs accepts and refuses the right leaves of both keys.
 */
/* The parsed-certificate cache: one decode per distinct PEM text, the
 * canonical PEM alongside, refusals, eviction past its size, and no stale
 * CA certificate after a renewal (issuance and bundles use the new one). */
static void
test_cert_cache(void)
{
	static const char *const sans[] = { "cache.example.com" };
	static const char broken[] = "-----BEGIN CERTIFICATE-----\nAAAA\n"
	    "-----END CERTIFICATE-----\n";
	struct common_error err = { 0 };
	json_t *root = NULL, *sub = NULL, *s2 = NULL;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	X509 *a = NULL, *b = NULL, *leaf, *s1x = NULL, *s2x = NULL, *l2 = NULL;
	X509 *again;
	STACK_OF(X509) *bundle = NULL;
	char *canon = NULL, *pem, *direct, subj[32];
	const char *subpem;
	int i;

	root = t_ca("Cache Root", "root", NULL, "CN=Cache Root",
	    CA_KEY_ECDSA_P256, 90, -1, NULL, &err);
	sub = t_ca("Cache Sub", "subordinate", root ? t_id(root) : "",
	    "CN=Cache Sub", CA_KEY_ECDSA_P256, 60, 0, NULL, &err);
	CHECK(root != NULL && sub != NULL && k != NULL);
	if (root == NULL || sub == NULL || k == NULL)
		goto out;
	subpem = json_string_value(json_object_get(sub, "certificate"));
	a = ca_cert_cached(subpem, &canon);
	b = ca_cert_cached(subpem, NULL);
	CHECK(a != NULL && a == b);	/* decoded once, shared */
	direct = a != NULL ? common_x509_to_pem(a) : NULL;
	CHECK(canon != NULL && direct != NULL && strcmp(canon, direct) == 0);
	free(direct);
	CHECK(ca_cert_cached(NULL, NULL) == NULL);
	CHECK(ca_cert_cached("not a certificate", NULL) == NULL);
	CHECK(ca_cert_cached(broken, NULL) == NULL);

	/* more distinct texts than the cache holds: each reads back right */
	for (i = 0; i < 80; i++) {
		snprintf(subj, sizeof(subj), "CN=cache%d", i);
		leaf = t_issue(t_id(sub), k, subj, sans, 1,
		    CA_PROFILE_TLS_SERVER, 1, &err);
		pem = leaf != NULL ? common_x509_to_pem(leaf) : NULL;
		again = pem != NULL ? ca_cert_cached(pem, NULL) : NULL;
		CHECK(again != NULL && X509_cmp(again, leaf) == 0);
		X509_free(again);
		X509_free(leaf);
		free(pem);
	}
	again = ca_cert_cached(subpem, NULL);	/* evicted or not: right */
	CHECK(again != NULL && X509_cmp(again, a) == 0);
	X509_free(again);

	/* renewal with a new key: the next leaf and bundle use version 2 */
	s1x = t_ver_cert(t_id(sub), 1);
	bundle = t_bundle(t_id(sub), false);
	CHECK(bundle != NULL && sk_X509_num(bundle) == 2 &&
	    X509_cmp(sk_X509_value(bundle, 0), s1x) == 0);
	sk_X509_pop_free(bundle, X509_free);
	s2 = t_renew(t_id(sub), true, 0, NULL, &err);
	CHECK(s2 != NULL);
	if (s2 == NULL)
		goto out;
	s2x = t_ver_cert(t_id(sub), 0);
	l2 = t_issue(t_id(sub), k, "CN=after", sans, 1, CA_PROFILE_TLS_SERVER,
	    1, &err);
	CHECK(l2 != NULL && s2x != NULL && s1x != NULL);
	if (l2 == NULL || s2x == NULL || s1x == NULL)
		goto out;
	CHECK(t_aki_is_ski(l2, s2x) && !t_aki_is_ski(l2, s1x));
	CHECK(X509_verify(l2, X509_get0_pubkey(s2x)) == 1);
	bundle = t_bundle(t_id(sub), false);
	CHECK(bundle != NULL && sk_X509_num(bundle) == 2 &&
	    X509_cmp(sk_X509_value(bundle, 0), s2x) == 0);
	sk_X509_pop_free(bundle, X509_free);
out:
	X509_free(a);
	X509_free(b);
	X509_free(s1x);
	X509_free(s2x);
	X509_free(l2);
	free(canon);
	EVP_PKEY_free(k);
	json_decref(root);
	json_decref(sub);
	json_decref(s2);
}

static void
test_renew_new_key(void)
{
	static const char *const sans[] = { "newkey.example.com" };
	struct common_error err = { 0 };
	json_t *root, *sub, *s2 = NULL;
	X509 *rx = NULL, *s1x = NULL, *s2x = NULL;
	X509 *l0 = NULL, *l1 = NULL, *l2 = NULL, *l3 = NULL;
	X509_CRL *c1 = NULL, *c2 = NULL, *cr = NULL;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	STACK_OF(X509) *b = NULL;
	char stem[CA_FILE_NAME_MAX], *h1 = NULL, *h2 = NULL, *ser;
	unsigned char *der = NULL;
	size_t derlen = 0;
	const unsigned char *p;
	X509_CRL *ret = NULL;
	AUTHORITY_KEYID *akid;

	root = t_ca("NK Root", "root", NULL, "CN=NK Root", CA_KEY_ECDSA_P384,
	    90, -1, NULL, &err);
	sub = t_ca("NK Sub", "subordinate", root ? t_id(root) : "",
	    "CN=NK Sub", CA_KEY_ECDSA_P256, 60, 0, NULL, &err);
	CHECK(root != NULL && sub != NULL);
	if (root == NULL || sub == NULL)
		goto out;
	l0 = t_issue(t_id(sub), k, "CN=l0", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	l1 = t_issue(t_id(sub), k, "CN=l1", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	CHECK(l0 != NULL && l1 != NULL);
	s1x = t_ver_cert(t_id(sub), 1);
	rx = t_ver_cert(t_id(root), 1);

	s2 = t_renew(t_id(sub), true, 0, NULL, &err);
	CHECK(s2 != NULL);
	if (s2 == NULL || l0 == NULL || l1 == NULL) {
		fprintf(stderr, "renew: %s\n", err.msg);
		goto out;
	}
	s2x = t_ver_cert(t_id(sub), 0);
	h1 = t_ver_handle(t_id(sub), 1);
	h2 = t_ver_handle(t_id(sub), 2);
	CHECK(h1 != NULL && h2 != NULL && strcmp(h1, h2) != 0);
	CHECK(h2 != NULL && t_key_file(h2) && t_key_file(h1));
	CHECK_STR(json_string_value(json_object_get(json_object_get(s2,
	    "key"), "handle")), h2);
	CHECK_STR(json_string_value(json_object_get(json_object_get(s2,
	    "key"), "algorithm")), "ECDSA_P256");
	CHECK(s2x != NULL && s1x != NULL && rx != NULL);
	if (s2x == NULL || s1x == NULL || rx == NULL)
		goto out;
	CHECK(EVP_PKEY_eq(X509_get0_pubkey(s1x), X509_get0_pubkey(s2x)) != 1);
	CHECK(X509_NAME_cmp(X509_get_subject_name(s1x),
	    X509_get_subject_name(s2x)) == 0);
	CHECK(t_aki_is_ski(s2x, rx));
	CHECK(t_pathlen(s2x) == 0);
	/* Validity 0: as long as version 1 (60 days). */
	CHECK(t_near(t_time(X509_get0_notAfter(s2x)), common_now() +
	    60 * T_DAY));
	CHECK(t_verify(s2x, rx, NULL, NULL, 0));

	l2 = t_issue(t_id(sub), k, "CN=l2", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	l3 = t_issue(t_id(sub), k, "CN=l3", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	CHECK(l2 != NULL && l3 != NULL);
	if (l2 == NULL || l3 == NULL)
		goto out;
	CHECK(t_aki_is_ski(l2, s2x) && !t_aki_is_ski(l2, s1x));
	CHECK(X509_verify(l2, X509_get0_pubkey(s2x)) == 1);
	CHECK(t_verify(l2, rx, s2x, NULL, 0));
	CHECK(!t_verify(l1, rx, s2x, NULL, 0));	/* the old key signed it */
	CHECK(t_verify(l1, rx, s1x, NULL, 0));
	snprintf(stem, sizeof(stem), "%s-v2", t_id(sub));
	CHECK(t_url_is(t_cdp(l2), "crl", stem, "crl"));
	CHECK(t_url_is(t_aia(l2), "ca", stem, "crt"));
	CHECK(t_url_is(t_cdp(l1), "crl", t_id(sub), "crl"));
	CHECK(t_url_is(strdup(json_string_value(json_object_get(s2,
	    "crl_url"))), "crl", stem, "crl"));

	/* The bundle: path first, then the old version. */
	b = t_bundle(t_id(sub), true);
	CHECK(b != NULL && sk_X509_num(b) == 3);
	if (b != NULL && sk_X509_num(b) == 3) {
		CHECK(X509_cmp(sk_X509_value(b, 0), s2x) == 0);
		CHECK(X509_cmp(sk_X509_value(b, 1), rx) == 0);
		CHECK(X509_cmp(sk_X509_value(b, 2), s1x) == 0);
		CHECK(t_verify_with(l0, b, NULL, NULL, NULL) == X509_V_OK);
		CHECK(t_verify_with(l2, b, NULL, NULL, NULL) == X509_V_OK);
	}

	/* Revoke one leaf of each key; each key's CRL lists its own. */
	ser = t_serial(l1);
	CHECK(t_revoke(ser, CA_REASON_KEY_COMPROMISE, &err) == 0);
	free(ser);
	ser = t_serial(l2);
	CHECK(t_revoke(ser, CA_REASON_SUPERSEDED, &err) == 0);
	free(ser);
	CHECK(ca_crl_publish(ctx, t_id(sub), 3600, &der, &derlen, &err) == 0);
	CHECK(ca_crl_publish(ctx, t_id(root), 3600, NULL, NULL, &err) == 0);
	c1 = t_crl_file(t_id(sub));
	c2 = t_crl_file(stem);
	cr = t_crl_file(t_id(root));
	CHECK(c1 != NULL && c2 != NULL && cr != NULL);
	if (c1 == NULL || c2 == NULL || cr == NULL || b == NULL)
		goto out;
	p = der;
	ret = der != NULL ? d2i_X509_CRL(NULL, &p, (long)derlen) : NULL;
	CHECK(ret != NULL && X509_CRL_cmp(ret, c2) == 0 &&
	    X509_CRL_match(ret, c2) == 0);
	CHECK(X509_CRL_verify(c1, X509_get0_pubkey(s1x)) == 1);
	CHECK(X509_CRL_verify(c2, X509_get0_pubkey(s2x)) == 1);
	ser = t_serial(l1);
	CHECK(t_crl_find(c1, ser) != NULL && t_crl_find(c2, ser) == NULL);
	free(ser);
	ser = t_serial(l2);
	CHECK(t_crl_find(c2, ser) != NULL && t_crl_find(c1, ser) == NULL);
	free(ser);
	akid = X509_CRL_get_ext_d2i(c2, NID_authority_key_identifier, NULL,
	    NULL);
	CHECK(akid != NULL && akid->keyid != NULL &&
	    ASN1_OCTET_STRING_cmp(akid->keyid,
	    X509_get0_subject_key_id(s2x)) == 0);
	AUTHORITY_KEYID_free(akid);
	akid = X509_CRL_get_ext_d2i(c1, NID_authority_key_identifier, NULL,
	    NULL);
	CHECK(akid != NULL && akid->keyid != NULL &&
	    ASN1_OCTET_STRING_cmp(akid->keyid,
	    X509_get0_subject_key_id(s1x)) == 0);
	AUTHORITY_KEYID_free(akid);
	/* Distinct numbers, the current key's the highest. */
	{
		ASN1_INTEGER *n1 = X509_CRL_get_ext_d2i(c1, NID_crl_number,
		    NULL, NULL);
		ASN1_INTEGER *n2 = X509_CRL_get_ext_d2i(c2, NID_crl_number,
		    NULL, NULL);

		CHECK(n1 != NULL && n2 != NULL && ASN1_INTEGER_cmp(n1, n2) < 0);
		ASN1_INTEGER_free(n1);
		ASN1_INTEGER_free(n2);
	}
	/* A relying party with the bundle and the CRLs at each leaf's CDP. */
	CHECK(t_verify_with(l0, b, c1, cr, NULL) == X509_V_OK);
	CHECK(t_verify_with(l1, b, c1, cr, NULL) == X509_V_ERR_CERT_REVOKED);
	CHECK(t_verify_with(l3, b, c2, cr, NULL) == X509_V_OK);
	CHECK(t_verify_with(l2, b, c2, cr, NULL) == X509_V_ERR_CERT_REVOKED);
	/* Both CRLs at hand: each leaf is matched with its key's CRL. */
	CHECK(t_verify_with(l0, b, c1, c2, cr) == X509_V_OK);
	CHECK(t_verify_with(l3, b, c1, c2, cr) == X509_V_OK);
	CHECK(t_verify_with(l1, b, c1, c2, cr) == X509_V_ERR_CERT_REVOKED);
	CHECK(t_verify_with(l2, b, c1, c2, cr) == X509_V_ERR_CERT_REVOKED);
out:
	sk_X509_pop_free(b, X509_free);
	X509_CRL_free(c1);
	X509_CRL_free(c2);
	X509_CRL_free(cr);
	X509_CRL_free(ret);
	free(der);
	free(h1);
	free(h2);
	X509_free(rx);
	X509_free(s1x);
	X509_free(s2x);
	X509_free(l0);
	X509_free(l1);
	X509_free(l2);
	X509_free(l3);
	EVP_PKEY_free(k);
	json_decref(root);
	json_decref(sub);
	json_decref(s2);
}

/*
 * The root renews with a new key first: its subordinate still chains to
 * the old root certificate; renewed afterwards, the subordinate is signed
 * by the new root key (AKI, URLs) and clipped to the new root's validity.
 */
static void
test_renew_sub_after_root(void)
{
	static const char *const sans[] = { "chain.example.com" };
	struct common_error err = { 0 };
	json_t *root, *sub, *r2 = NULL, *s2 = NULL;
	X509 *r1x = NULL, *r2x = NULL, *s1x = NULL, *s2x = NULL, *l = NULL;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	STACK_OF(X509) *b = NULL;
	char stem[CA_FILE_NAME_MAX];

	root = t_ca("SR Root", "root", NULL, "CN=SR Root", CA_KEY_ECDSA_P256,
	    30, -1, NULL, &err);
	sub = t_ca("SR Sub", "subordinate", root ? t_id(root) : "",
	    "CN=SR Sub", CA_KEY_ECDSA_P256, 25, -1, NULL, &err);
	CHECK(root != NULL && sub != NULL);
	if (root == NULL || sub == NULL)
		goto out;
	r1x = t_ver_cert(t_id(root), 1);
	s1x = t_ver_cert(t_id(sub), 1);
	r2 = t_renew(t_id(root), true, 20, NULL, &err);
	CHECK(r2 != NULL);
	r2x = t_ver_cert(t_id(root), 2);
	CHECK(r1x != NULL && r2x != NULL && s1x != NULL);
	if (r2 == NULL || r1x == NULL || r2x == NULL || s1x == NULL)
		goto out;
	CHECK(X509_self_signed(r2x, 1) == 1);
	CHECK(!t_aki_is_ski(r2x, r1x));
	/* The subordinate's bundle: its path runs through root version 1
	 * (which signed it); root version 2 follows as an extra. */
	b = t_bundle(t_id(sub), true);
	CHECK(b != NULL && sk_X509_num(b) == 3);
	if (b != NULL && sk_X509_num(b) == 3) {
		CHECK(X509_cmp(sk_X509_value(b, 0), s1x) == 0);
		CHECK(X509_cmp(sk_X509_value(b, 1), r1x) == 0);
		CHECK(X509_cmp(sk_X509_value(b, 2), r2x) == 0);
	}
	sk_X509_pop_free(b, X509_free);
	b = NULL;

	s2 = t_renew(t_id(sub), false, 25, NULL, &err);
	CHECK(s2 != NULL);
	s2x = t_ver_cert(t_id(sub), 2);
	CHECK(s2x != NULL);
	if (s2 == NULL || s2x == NULL)
		goto out;
	CHECK(t_aki_is_ski(s2x, r2x) && !t_aki_is_ski(s2x, r1x));
	CHECK(X509_verify(s2x, X509_get0_pubkey(r2x)) == 1);
	CHECK(EVP_PKEY_eq(X509_get0_pubkey(s1x), X509_get0_pubkey(s2x)) == 1);
	/* 25 days asked, clipped to the new root's 20. */
	CHECK(ASN1_TIME_compare(X509_get0_notAfter(s2x),
	    X509_get0_notAfter(r2x)) == 0);
	snprintf(stem, sizeof(stem), "%s-v2", t_id(root));
	CHECK(t_url_is(t_cdp(s2x), "crl", stem, "crl"));
	CHECK(t_url_is(t_aia(s2x), "ca", stem, "crt"));
	CHECK(t_verify(s2x, r2x, NULL, NULL, 0));

	l = t_issue(t_id(sub), k, "CN=l", sans, 1, CA_PROFILE_TLS_SERVER, 5,
	    &err);
	CHECK(l != NULL && t_verify(l, r2x, s2x, NULL, 0));
	b = t_bundle(t_id(sub), true);
	CHECK(b != NULL && sk_X509_num(b) == 4);
	if (b != NULL && sk_X509_num(b) == 4) {
		CHECK(X509_cmp(sk_X509_value(b, 0), s2x) == 0);
		CHECK(X509_cmp(sk_X509_value(b, 1), r2x) == 0);
		CHECK(X509_cmp(sk_X509_value(b, 2), s1x) == 0);
		CHECK(X509_cmp(sk_X509_value(b, 3), r1x) == 0);
	}
	sk_X509_pop_free(b, X509_free);
	b = t_bundle(t_id(sub), false);
	CHECK(b != NULL && sk_X509_num(b) == 2);
out:
	sk_X509_pop_free(b, X509_free);
	X509_free(r1x);
	X509_free(r2x);
	X509_free(s1x);
	X509_free(s2x);
	X509_free(l);
	EVP_PKEY_free(k);
	json_decref(root);
	json_decref(sub);
	json_decref(r2);
	json_decref(s2);
}

/* A key made before the transaction (ca_key_create) is used by the
 * renewal; one left unused is discarded; refusals. */
static void
test_renew_key_and_refusals(void)
{
	struct common_error err = { 0 };
	json_t *root, *ext, *key = NULL, *spare = NULL, *r = NULL, *bad;
	char *h = NULL;
	const char *spare_handle = NULL;

	root = t_ca("RK Root", "root", NULL, "CN=RK Root", CA_KEY_RSA2048, 30,
	    -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	key = ca_key_create(ctx, t_id(root), &err);
	CHECK(key != NULL);
	CHECK_STR(json_string_value(json_object_get(key, "algorithm")),
	    "RSA2048");
	r = t_renew(t_id(root), true, 10, key, &err);
	CHECK(r != NULL);
	h = t_ver_handle(t_id(root), 2);
	CHECK(h != NULL && strcmp(h, json_string_value(json_object_get(key,
	    "handle"))) == 0);
	json_decref(r);
	/* The same key again is not fresh. */
	common_error_clear(&err);
	CHECK(t_renew(t_id(root), true, 10, key, &err) == NULL &&
	    err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_renew(t_id(root), false, 10, key, &err) == NULL &&
	    err.code == COMMON_E_INVALID);
	spare = ca_key_create(ctx, t_id(root), &err);
	CHECK(spare != NULL);
	spare_handle = json_string_value(json_object_get(spare, "handle"));
	CHECK(spare_handle != NULL && t_key_file(spare_handle));
	ca_key_discard(ctx, t_id(root), spare);
	CHECK(spare_handle != NULL && !t_key_file(spare_handle));
	/* A key of another algorithm is refused. */
	bad = json_pack("{s:s, s:s, s:s}", "backend", "file", "handle",
	    "key-0000000000000001", "algorithm", "ECDSA_P256");
	common_error_clear(&err);
	CHECK(t_renew(t_id(root), true, 10, bad, &err) == NULL &&
	    err.code == COMMON_E_INVALID);
	json_decref(bad);

	common_error_clear(&err);
	CHECK(t_renew(t_id(root), false, -1, NULL, &err) == NULL &&
	    err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_renew(t_id(root), false, CA_MAX_VALIDITY_DAYS + 1, NULL,
	    &err) == NULL && err.code == COMMON_E_INVALID);
	common_error_clear(&err);
	CHECK(t_renew("ca-0000000000000001", false, 0, NULL, &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);
	ext = t_ca("RK Ext", "subordinate-of-external", NULL, "CN=RK Ext",
	    CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	CHECK(ext != NULL);
	common_error_clear(&err);
	CHECK(ext != NULL && t_renew(t_id(ext), false, 0, NULL, &err) ==
	    NULL && err.code == COMMON_E_CONFLICT &&
	    strstr(err.msg, "external") != NULL);
	/* A pending CA has no versions yet. */
	CHECK(ext != NULL && json_array_size(json_object_get(ext,
	    "versions")) == 0 && json_integer_value(json_object_get(ext,
	    "current_version")) == 0);
	/* The refused renewals left the record at two versions. */
	r = ca_get(ctx, NULL, t_id(root), &err);
	CHECK(r != NULL && json_array_size(json_object_get(r,
	    "versions")) == 2);
	json_decref(r);
	free(h);
	json_decref(key);
	json_decref(spare);
	json_decref(ext);
	json_decref(root);
}

/* A disabled CA refuses issuance and children, still publishes CRLs and
 * can be renewed; enabled again it issues. */
static void
test_disable_enable(void)
{
	static const char *const sans[] = { "dis.example.com" };
	struct common_error err = { 0 };
	json_t *root, *sub, *r;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	X509 *x;
	char want[T_PATH_MAX];

	root = t_ca("Dis Root", "root", NULL, "CN=Dis Root", CA_KEY_ECDSA_P256,
	    30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		goto out;
	CHECK(t_set_state(t_id(root), "disabled", &err) == 0);
	r = ca_get(ctx, NULL, t_id(root), &err);
	CHECK_STR(json_string_value(json_object_get(r, "state")), "disabled");
	json_decref(r);
	snprintf(want, sizeof(want), "CA %s is disabled", t_id(root));
	common_error_clear(&err);
	x = t_issue(t_id(root), k, "CN=d", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x == NULL && err.code == COMMON_E_CONFLICT);
	CHECK_STR(err.msg, want);
	X509_free(x);
	common_error_clear(&err);
	sub = t_ca("Dis Sub", "subordinate", t_id(root), "CN=Dis Sub",
	    CA_KEY_ECDSA_P256, 10, -1, NULL, &err);
	CHECK(sub == NULL && err.code == COMMON_E_CONFLICT);
	CHECK_STR(err.msg, want);
	json_decref(sub);
	common_error_clear(&err);
	CHECK(ca_crl_publish(ctx, t_id(root), 3600, NULL, NULL, &err) == 0);
	r = t_renew(t_id(root), false, 10, NULL, &err);
	CHECK(r != NULL);
	CHECK_STR(json_string_value(json_object_get(r, "state")), "disabled");
	json_decref(r);
	CHECK(t_set_state(t_id(root), "disabled", &err) == 0);	/* no-op */
	common_error_clear(&err);
	CHECK(t_set_state(t_id(root), "pending", &err) == -1 &&
	    err.code == COMMON_E_INVALID);
	CHECK(t_set_state(t_id(root), "active", &err) == 0);
	x = t_issue(t_id(root), k, "CN=d", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x != NULL && t_issued_ca_version(x) == 2);
	X509_free(x);
	sub = t_ca("Dis Sub", "subordinate", t_id(root), "CN=Dis Sub",
	    CA_KEY_ECDSA_P256, 10, -1, NULL, &err);
	CHECK(sub != NULL);
	json_decref(sub);
	common_error_clear(&err);
	CHECK(t_set_state("ca-0000000000000001", "disabled", &err) == -1 &&
	    err.code == COMMON_E_NOTFOUND);
	sub = t_ca("Dis Ext", "subordinate-of-external", NULL, "CN=Dis Ext",
	    CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	common_error_clear(&err);
	CHECK(sub != NULL && t_set_state(t_id(sub), "disabled", &err) == -1 &&
	    err.code == COMMON_E_CONFLICT);
	json_decref(sub);
out:
	EVP_PKEY_free(k);
	json_decref(root);
}

static json_t *
t_delete_schedule(const char *id, time_t at, struct common_error *err)
{
	struct store_txn *txn = store_txn_begin(st);
	json_t *rec;

	if ((rec = ca_delete_schedule(ctx, txn, id, at, err)) == NULL) {
		store_txn_abort(txn);
		return NULL;
	}
	if (store_txn_commit(txn) != 0) {
		json_decref(rec);
		return NULL;
	}
	return rec;
}

static int
t_delete_cancel(const char *id, struct common_error *err)
{
	struct store_txn *txn = store_txn_begin(st);

	if (ca_delete_cancel(ctx, txn, id, err) == -1) {
		store_txn_abort(txn);
		return -1;
	}
	return store_txn_commit(txn);
}

/* ca_delete, then ca_purge after the commit. */
static int
t_delete(const char *id, struct common_error *err)
{
	struct store_txn *txn = store_txn_begin(st);
	json_t *rec;

	if ((rec = ca_delete(ctx, txn, id, err)) == NULL) {
		store_txn_abort(txn);
		return -1;
	}
	if (store_txn_commit(txn) != 0) {
		json_decref(rec);
		return -1;
	}
	ca_purge(ctx, rec);
	json_decref(rec);
	return 0;
}

/*
 * Deletion: refused with the counts while certificates are active or a
 * subordinate exists; revoked and expired certificates do not count;
 * scheduled (no issuance, CRLs go on), cancelled, rescheduled, executed;
 * the record, keys and public files are gone afterwards.
 */
static void
test_delete(void)
{
	static const char *const sans[] = { "del.example.com" };
	struct common_error err = { 0 };
	json_t *root, *sub = NULL, *r = NULL;
	X509 *a = NULL, *b = NULL, *c = NULL;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	char want[T_PATH_MAX], stem[CA_FILE_NAME_MAX], *h1 = NULL, *h2 = NULL;
	char *ser, *hs = NULL;
	time_t at;

	root = t_ca("Del Root", "root", NULL, "CN=Del Root", CA_KEY_ECDSA_P256,
	    30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		goto out;
	sub = t_ca("Del Sub", "subordinate", t_id(root), "CN=Del Sub",
	    CA_KEY_ECDSA_P256, 10, -1, NULL, &err);
	a = t_issue(t_id(root), k, "CN=a", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	b = t_issue(t_id(root), k, "CN=b", sans, 1, CA_PROFILE_TLS_SERVER, 10,
	    &err);
	c = t_issue(t_id(root), k, "CN=c", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(sub != NULL && a != NULL && b != NULL && c != NULL);
	if (sub == NULL || a == NULL || b == NULL || c == NULL)
		goto out;
	snprintf(want, sizeof(want), "CA %s has 3 active certificates and 1 "
	    "subordinate CA", t_id(root));
	common_error_clear(&err);
	CHECK(t_delete(t_id(root), &err) == -1 &&
	    err.code == COMMON_E_CONFLICT);
	CHECK_STR(err.msg, want);
	common_error_clear(&err);
	CHECK(t_delete_schedule(t_id(root), common_now() + 60, &err) == NULL &&
	    err.code == COMMON_E_CONFLICT);
	CHECK_STR(err.msg, want);

	/* Revoked and expired certificates do not count. */
	ser = t_serial(a);
	CHECK(t_revoke(ser, CA_REASON_CESSATION_OF_OPERATION, &err) == 0);
	free(ser);
	common_clock_set_offset(2 * T_DAY);
	common_error_clear(&err);
	CHECK(t_delete(t_id(root), &err) == -1 &&
	    err.code == COMMON_E_CONFLICT &&
	    strstr(err.msg, "has 1 active certificate and 1 subordinate "
	    "CA") != NULL);
	common_clock_set_offset(0);

	/* The subordinate goes at once: record, key file, public files. */
	CHECK(ca_crl_publish(ctx, t_id(sub), 3600, NULL, NULL, &err) == 0);
	hs = t_ver_handle(t_id(sub), 1);
	CHECK(hs != NULL && t_key_file(hs));
	CHECK(t_public_file("crl", t_id(sub), "crl") &&
	    t_public_file("ca", t_id(sub), "crt"));
	CHECK(t_delete(t_id(sub), &err) == 0);
	CHECK(hs != NULL && !t_key_file(hs));
	CHECK(!t_public_file("crl", t_id(sub), "crl") &&
	    !t_public_file("ca", t_id(sub), "crt"));
	snprintf(stem, sizeof(stem), "%s-v1", t_id(sub));
	CHECK(!t_public_file("ca", stem, "crt"));
	common_error_clear(&err);
	CHECK(ca_get(ctx, NULL, t_id(sub), &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);

	ser = t_serial(b);
	CHECK(t_revoke(ser, CA_REASON_SUPERSEDED, &err) == 0);
	free(ser);
	/* Still c (unexpired, valid). */
	common_error_clear(&err);
	CHECK(t_delete_schedule(t_id(root), common_now() + 60, &err) == NULL &&
	    err.code == COMMON_E_CONFLICT && strstr(err.msg,
	    "has 1 active certificate") != NULL);
	common_clock_set_offset(2 * T_DAY);

	/* A renewal with a new key: both keys go with the CA. */
	r = t_renew(t_id(root), true, 0, NULL, &err);
	CHECK(r != NULL);
	json_decref(r);
	h1 = t_ver_handle(t_id(root), 1);
	h2 = t_ver_handle(t_id(root), 2);
	CHECK(h1 != NULL && h2 != NULL && t_key_file(h1) && t_key_file(h2));

	at = common_now() + 7 * T_DAY;
	r = t_delete_schedule(t_id(root), at, &err);
	CHECK(r != NULL);
	CHECK_STR(json_string_value(json_object_get(r, "state")),
	    "pending_deletion");
	CHECK(json_integer_value(json_object_get(json_object_get(r,
	    "deletion"), "execute_at_epoch")) == (json_int_t)at);
	CHECK(json_string_value(json_object_get(json_object_get(r,
	    "deletion"), "scheduled_at")) != NULL);
	json_decref(r);
	/* Scheduling again answers the existing schedule. */
	r = t_delete_schedule(t_id(root), at + 100, &err);
	CHECK(r != NULL && json_integer_value(json_object_get(json_object_get(
	    r, "deletion"), "execute_at_epoch")) == (json_int_t)at);
	json_decref(r);
	snprintf(want, sizeof(want), "CA %s is scheduled for deletion",
	    t_id(root));
	common_error_clear(&err);
	a = (X509_free(a), t_issue(t_id(root), k, "CN=x", sans, 1,
	    CA_PROFILE_TLS_SERVER, 1, &err));
	CHECK(a == NULL && err.code == COMMON_E_CONFLICT);
	CHECK_STR(err.msg, want);
	common_error_clear(&err);
	CHECK(t_set_state(t_id(root), "disabled", &err) == -1 &&
	    err.code == COMMON_E_CONFLICT);
	CHECK(ca_crl_publish(ctx, t_id(root), 3600, NULL, NULL, &err) == 0);
	CHECK(ca_publish_certs(ctx) == 0);

	CHECK(t_delete_cancel(t_id(root), &err) == 0);
	r = ca_get(ctx, NULL, t_id(root), &err);
	CHECK_STR(json_string_value(json_object_get(r, "state")), "active");
	CHECK(json_object_get(r, "deletion") == NULL &&
	    json_object_get(r, "state_before_deletion") == NULL);
	json_decref(r);
	common_error_clear(&err);
	CHECK(t_delete_cancel(t_id(root), &err) == -1 &&
	    err.code == COMMON_E_CONFLICT);

	/* Disabled, scheduled, cancelled: disabled again. */
	CHECK(t_set_state(t_id(root), "disabled", &err) == 0);
	r = t_delete_schedule(t_id(root), at, &err);
	CHECK(r != NULL);
	json_decref(r);
	CHECK(t_delete_cancel(t_id(root), &err) == 0);
	r = ca_get(ctx, NULL, t_id(root), &err);
	CHECK_STR(json_string_value(json_object_get(r, "state")), "disabled");
	json_decref(r);

	r = t_delete_schedule(t_id(root), at, &err);
	CHECK(r != NULL);
	json_decref(r);
	CHECK(t_public_file("crl", t_id(root), "crl"));
	CHECK(t_delete(t_id(root), &err) == 0);
	CHECK(h1 != NULL && !t_key_file(h1));
	CHECK(h2 != NULL && !t_key_file(h2));
	snprintf(stem, sizeof(stem), "%s-v2", t_id(root));
	CHECK(!t_public_file("crl", t_id(root), "crl") &&
	    !t_public_file("crl", stem, "crl") &&
	    !t_public_file("ca", stem, "crt") &&
	    !t_public_file("ca", t_id(root), "crt"));
	common_error_clear(&err);
	CHECK(ca_get(ctx, NULL, t_id(root), &err) == NULL &&
	    err.code == COMMON_E_NOTFOUND);
	common_error_clear(&err);
	CHECK(t_delete(t_id(root), &err) == -1 &&
	    err.code == COMMON_E_NOTFOUND);
	/* The serial registry keeps its rows. */
	ser = t_serial(c);
	r = store_issued_get(st, NULL, ser);
	CHECK(r != NULL);
	json_decref(r);
	free(ser);
out:
	common_clock_set_offset(0);
	free(h1);
	free(h2);
	free(hs);
	X509_free(a);
	X509_free(b);
	X509_free(c);
	EVP_PKEY_free(k);
	json_decref(root);
	json_decref(sub);
}

/*
 * A record written before CA versions existed (no "versions") reads as
 * version 1, issues, publishes its CRL (an `issued` row without
 * "ca_version" belongs to version 1) and renews; the renewal stores the
 * versions.
 */
static void
test_migrate_old_record(void)
{
	static const char *const sans[] = { "old.example.com" };
	struct common_error err = { 0 };
	json_t *root, *ext, *rec, *r, *irec;
	struct store_txn *txn;
	X509 *cert = NULL, *old = NULL, *x = NULL;
	X509_CRL *c1 = NULL;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	char *ser = NULL, stem[CA_FILE_NAME_MAX];

	root = t_ca("Old Root", "root", NULL, "CN=Old Root", CA_KEY_ECDSA_P256,
	    30, -1, NULL, &err);
	ext = t_ca("Old Ext", "subordinate-of-external", NULL, "CN=Old Ext",
	    CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	CHECK(root != NULL && ext != NULL);
	if (root == NULL || ext == NULL)
		goto out;
	old = t_issue(t_id(root), k, "CN=old", sans, 1, CA_PROFILE_TLS_SERVER,
	    5, &err);
	CHECK(old != NULL);
	if (old == NULL)
		goto out;
	ser = t_serial(old);
	/* Rewrite both records (and the issued row) the old way. */
	txn = store_txn_begin(st);
	rec = store_ca_get(st, txn, t_id(root));
	json_object_del(rec, "versions");
	json_object_del(rec, "current_version");
	json_object_del(rec, "serial");
	CHECK(store_ca_put(txn, t_id(root), rec) == 0);
	json_decref(rec);
	rec = store_ca_get(st, txn, t_id(ext));
	json_object_del(rec, "versions");
	json_object_del(rec, "current_version");
	CHECK(store_ca_put(txn, t_id(ext), rec) == 0);
	json_decref(rec);
	irec = store_issued_get(st, txn, ser);
	json_object_del(irec, "ca_version");
	CHECK(store_issued_put(txn, ser, irec) == 0);
	json_decref(irec);
	CHECK(store_txn_commit(txn) == 0);
	ca_ctx_forget(ctx, t_id(root), NULL);

	rec = store_ca_get(st, NULL, t_id(root));
	CHECK(rec != NULL && json_object_get(rec, "versions") == NULL);
	json_decref(rec);
	r = ca_get(ctx, NULL, t_id(root), &err);
	CHECK(r != NULL && json_array_size(json_object_get(r, "versions")) ==
	    1 && json_integer_value(json_object_get(r, "current_version")) ==
	    1);
	cert = ca_record_cert(r);
	CHECK(cert != NULL);
	CHECK_STR(json_string_value(json_object_get(ca_record_version(r, 1),
	    "certificate")), json_string_value(json_object_get(r,
	    "certificate")));
	CHECK(json_string_value(json_object_get(ca_record_version(r, 1),
	    "serial")) != NULL);
	CHECK(json_equal(json_object_get(ca_record_version(r, 1), "key"),
	    json_object_get(r, "key")));
	json_decref(r);
	r = ca_get(ctx, NULL, t_id(ext), &err);
	CHECK(r != NULL && json_array_size(json_object_get(r, "versions")) ==
	    0 && json_integer_value(json_object_get(r, "current_version")) ==
	    0);
	json_decref(r);
	r = ca_list(ctx, NULL);
	CHECK(r != NULL);
	{
		size_t i;
		json_t *one;
		bool seen = false;

		json_array_foreach(r, i, one) {
			if (strcmp(t_id(one), t_id(root)) == 0)
				seen = json_array_size(json_object_get(one,
				    "versions")) == 1;
		}
		CHECK(seen);
	}
	json_decref(r);

	x = t_issue(t_id(root), k, "CN=new", sans, 1, CA_PROFILE_TLS_SERVER, 5,
	    &err);
	CHECK(x != NULL && t_issued_ca_version(x) == 1);
	X509_free(x);

	r = t_renew(t_id(root), true, 0, NULL, &err);
	CHECK(r != NULL);
	json_decref(r);
	rec = store_ca_get(st, NULL, t_id(root));
	CHECK(rec != NULL && json_array_size(json_object_get(rec,
	    "versions")) == 2);
	json_decref(rec);
	CHECK(t_revoke(ser, CA_REASON_KEY_COMPROMISE, &err) == 0);
	CHECK(ca_crl_publish(ctx, t_id(root), 3600, NULL, NULL, &err) == 0);
	c1 = t_crl_file(t_id(root));
	CHECK(c1 != NULL && t_crl_find(c1, ser) != NULL &&
	    cert != NULL && X509_CRL_verify(c1, X509_get0_pubkey(cert)) == 1);
	X509_CRL_free(c1);
	snprintf(stem, sizeof(stem), "%s-v2", t_id(root));
	c1 = t_crl_file(stem);
	CHECK(c1 != NULL && t_crl_find(c1, ser) == NULL);
out:
	X509_CRL_free(c1);
	X509_free(cert);
	X509_free(old);
	free(ser);
	EVP_PKEY_free(k);
	json_decref(root);
	json_decref(ext);
}

/* The registered trust bundle follows renewals through
 * ca_publish_certs. */
static void
test_trust_bundle(void)
{
	struct common_error err = { 0 };
	json_t *root, *sub, *r;
	char path[T_PATH_MAX], *data = NULL;
	size_t len = 0;
	STACK_OF(X509) *sk = NULL;

	root = t_ca("TB Root", "root", NULL, "CN=TB Root", CA_KEY_ECDSA_P256,
	    30, -1, NULL, &err);
	sub = t_ca("TB Sub", "subordinate", root ? t_id(root) : "",
	    "CN=TB Sub", CA_KEY_ECDSA_P256, 20, -1, NULL, &err);
	CHECK(root != NULL && sub != NULL);
	if (root == NULL || sub == NULL)
		goto out;
	snprintf(path, sizeof(path), "%s/ca-bundle.pem", datadir);
	CHECK(ca_ctx_trust_bundle(ctx, "bad/id", path) == -1);
	CHECK(ca_ctx_trust_bundle(ctx, t_id(sub), path) == 0);
	CHECK(ca_publish_certs(ctx) == 0);
	CHECK(common_file_read(path, T_FILE_MAX, &data, &len) == 0);
	sk = data != NULL ? common_x509s_from_pem(data, len, CA_CHAIN_MAX) :
	    NULL;
	CHECK(sk != NULL && sk_X509_num(sk) == 2);
	sk_X509_pop_free(sk, X509_free);
	free(data);
	data = NULL;
	r = t_renew(t_id(root), true, 0, NULL, &err);
	CHECK(r != NULL);
	json_decref(r);
	CHECK(ca_publish_certs(ctx) == 0);
	CHECK(common_file_read(path, T_FILE_MAX, &data, &len) == 0);
	sk = data != NULL ? common_x509s_from_pem(data, len, CA_CHAIN_MAX) :
	    NULL;
	CHECK(sk != NULL && sk_X509_num(sk) == 3);
	sk_X509_pop_free(sk, X509_free);
	free(data);
out:
	json_decref(root);
	json_decref(sub);
}

static unsigned char *t_spki_der(X509 *x, int *len);

/* The extensions ca_issue wrote before they were prebuilt, on a fresh
 * certificate with key: the reference test_issue_ext_bytes compares
 * against. NULL on failure. */
static X509 *
t_old_exts(EVP_PKEY *key, enum ca_key_alg alg, enum ca_profile p,
    const char *const *sans, X509 *issuer, const json_t *rec)
{
	static const char *const eku[CA_PROFILE__MAX] = {
		[CA_PROFILE_TLS_SERVER_OR_CLIENT] = "serverAuth,clientAuth",
		[CA_PROFILE_TLS_SERVER] = "serverAuth",
		[CA_PROFILE_TLS_CLIENT] = "clientAuth",
		[CA_PROFILE_CODE_SIGNING] = "codeSigning",
	};
	char crl[CA_FILE_NAME_MAX], crt[CA_FILE_NAME_MAX];
	struct common_error err = { 0 };
	GENERAL_NAMES *gens = ca_sans_parse(sans, 1, &err);
	bool kenc = (alg == CA_KEY_RSA2048 || alg == CA_KEY_RSA3072 ||
	    alg == CA_KEY_RSA4096) && (p == CA_PROFILE_TLS_SERVER_OR_CLIENT ||
	    p == CA_PROFILE_TLS_SERVER);
	X509 *x = X509_new();
	bool ok;

	ok = x != NULL && gens != NULL && X509_set_pubkey(x, key) == 1 &&
	    ca_cert_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ==
	    0 && ca_cert_add_ext(x, NID_key_usage, kenc ?
	    "critical,digitalSignature,keyEncipherment" :
	    "critical,digitalSignature") == 0 &&
	    ca_cert_add_ext(x, NID_ext_key_usage, eku[p]) == 0 &&
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
	    X509V3_ADD_REPLACE) == 1 &&
	    ca_cert_add_key_ids(x, issuer) == 0 &&
	    ca_crl_stem(rec, 0, crl, sizeof(crl)) == 0 &&
	    ca_cert_stem(rec, 0, crt, sizeof(crt)) == 0 &&
	    ca_cert_add_urls_stem(x, ctx, crl, crt) == 0;
	GENERAL_NAMES_free(gens);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* True when a and b carry the same extensions in the same order, with
 * the same criticality and bytes. */
static bool
t_exts_equal(X509 *a, X509 *b)
{
	X509_EXTENSION *ea, *eb;
	int i, n = X509_get_ext_count(a);

	if (n != X509_get_ext_count(b) || n == 0)
		return false;
	for (i = 0; i < n; i++) {
		ea = X509_get_ext(a, i);
		eb = X509_get_ext(b, i);
		if (OBJ_cmp(X509_EXTENSION_get_object(ea),
		    X509_EXTENSION_get_object(eb)) != 0 ||
		    X509_EXTENSION_get_critical(ea) !=
		    X509_EXTENSION_get_critical(eb) ||
		    ASN1_STRING_cmp(X509_EXTENSION_get_data(ea),
		    X509_EXTENSION_get_data(eb)) != 0)
			return false;
	}
	return true;
}

/*
 * Leaves from prebuilt extensions and the cached issuer carry, for every
 * subject key class and profile, the extensions (order, criticality,
 * bytes) and SubjectPublicKeyInfo the per-certificate path wrote.
 */
static void
test_issue_ext_bytes(void)
{
	static const enum ca_key_alg algs[] = {
		CA_KEY_ECDSA_P256, CA_KEY_ECDSA_P384, CA_KEY_RSA2048,
		CA_KEY_ED25519,
	};
	static const char *const sans[] = { "ext.example.com" };
	struct common_error err = { 0 };
	json_t *root, *rec = NULL;
	EVP_PKEY *k;
	X509 *rx = NULL, *x, *old;
	unsigned char *a, *b;
	int alen, blen, p;
	size_t i;

	root = t_ca("Ext Root", "root", NULL, "CN=Ext Root", CA_KEY_ECDSA_P256,
	    30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	rx = t_ver_cert(t_id(root), 0);
	rec = ca_get(ctx, NULL, t_id(root), &err);
	CHECK(rx != NULL && rec != NULL);
	for (i = 0; rx != NULL && rec != NULL &&
	    i < sizeof(algs) / sizeof(algs[0]); i++) {
		k = ca_key_generate(algs[i]);
		CHECK(k != NULL);
		for (p = 0; k != NULL && p < CA_PROFILE__MAX; p++) {
			x = t_issue(t_id(root), k, "CN=ext", sans, 1,
			    (enum ca_profile)p, 1, &err);
			old = t_old_exts(k, algs[i], (enum ca_profile)p, sans,
			    rx, rec);
			CHECK(x != NULL && old != NULL && t_exts_equal(x, old));
			a = x != NULL ? t_spki_der(x, &alen) : NULL;
			b = old != NULL ? t_spki_der(old, &blen) : NULL;
			CHECK(a != NULL && b != NULL && alen == blen &&
			    memcmp(a, b, (size_t)alen) == 0);
			free(a);
			free(b);
			X509_free(x);
			X509_free(old);
		}
		EVP_PKEY_free(k);
	}
	X509_free(rx);
	json_decref(rec);
	json_decref(root);
}

/* Number of certificates in PEM text. */
static int
t_pem_count(const char *pem)
{
	STACK_OF(X509) *sk;
	int n;

	if (pem == NULL || (sk = common_x509s_from_pem(pem, strlen(pem),
	    CA_CHAIN_MAX)) == NULL)
		return -1;
	n = sk_X509_num(sk);
	sk_X509_pop_free(sk, X509_free);
	return n;
}

/* True when x was signed by the key of version n of CA id. */
static bool
t_signed_by(X509 *x, const char *id, unsigned n)
{
	X509 *ca = t_ver_cert(id, n);
	bool ok;

	ok = x != NULL && ca != NULL &&
	    X509_verify(x, X509_get0_pubkey(ca)) == 1;
	ERR_clear_error();
	X509_free(ca);
	return ok;
}

/*
 * The issuer and bundle caches never serve a stale CA: after a renewal
 * with a new key (of the CA, then of its parent), a disable and enable,
 * and a renewal that issued in its own transaction and was rolled back,
 * each issuance and bundle reflects the committed records.
 */
static void
test_issuer_cache_stale(void)
{
	static const char *const sans[] = { "cache.example.com" };
	struct common_error err = { 0 };
	struct ca_renew_req rr;
	struct ca_issue_req req;
	struct store_txn *txn;
	json_t *root, *sub = NULL, *r;
	EVP_PKEY *k = ca_key_generate(CA_KEY_ECDSA_P256);
	char *b1 = NULL, *b2 = NULL, *b3 = NULL;
	X509 *x, *rv2;
	char want[T_PATH_MAX];

	root = t_ca("Cache Root", "root", NULL, "CN=Cache Root",
	    CA_KEY_ECDSA_P256, 30, -1, NULL, &err);
	CHECK(root != NULL);
	if (root != NULL)
		sub = t_ca("Cache Sub", "subordinate", t_id(root),
		    "CN=Cache Sub", CA_KEY_ECDSA_P256, 20, -1, NULL, &err);
	CHECK(sub != NULL && k != NULL);
	if (sub == NULL || k == NULL)
		goto out;
	/* filled, then served from the caches */
	x = t_issue(t_id(sub), k, "CN=c1", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x != NULL && t_signed_by(x, t_id(sub), 1) &&
	    t_issued_ca_version(x) == 1);
	X509_free(x);
	x = t_issue(t_id(sub), k, "CN=c2", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x != NULL && t_signed_by(x, t_id(sub), 1));
	X509_free(x);
	b1 = ca_bundle_pem(ctx, NULL, t_id(sub), &err);
	CHECK(t_pem_count(b1) == 2);
	free(ca_bundle_pem(ctx, NULL, t_id(sub), &err));
	CHECK(ca_exists(ctx, NULL, t_id(sub)));
	CHECK(!ca_exists(ctx, NULL, "ca-ffffffffffffffff"));
	CHECK(!ca_exists(ctx, NULL, "../etc"));

	/* renewal of the CA with a new key */
	r = t_renew(t_id(sub), true, 0, NULL, &err);
	CHECK(r != NULL);
	json_decref(r);
	x = t_issue(t_id(sub), k, "CN=c3", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x != NULL && t_signed_by(x, t_id(sub), 2) &&
	    !t_signed_by(x, t_id(sub), 1) && t_issued_ca_version(x) == 2);
	X509_free(x);
	b2 = ca_bundle_pem(ctx, NULL, t_id(sub), &err);
	CHECK(t_pem_count(b2) == 3 && b1 != NULL && b2 != NULL &&
	    strcmp(b1, b2) != 0);

	/* renewal of the parent: the child's bundle gains its new version */
	r = t_renew(t_id(root), true, 0, NULL, &err);
	CHECK(r != NULL);
	json_decref(r);
	b3 = ca_bundle_pem(ctx, NULL, t_id(sub), &err);
	rv2 = t_ver_cert(t_id(root), 2);
	CHECK(t_pem_count(b3) == 4 && rv2 != NULL);
	X509_free(rv2);

	/* disabled, then enabled again */
	CHECK(t_set_state(t_id(sub), "disabled", &err) == 0);
	snprintf(want, sizeof(want), "CA %s is disabled", t_id(sub));
	common_error_clear(&err);
	x = t_issue(t_id(sub), k, "CN=c4", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x == NULL && err.code == COMMON_E_CONFLICT);
	CHECK_STR(err.msg, want);
	X509_free(x);
	CHECK(ca_exists(ctx, NULL, t_id(sub)));
	CHECK(t_set_state(t_id(sub), "active", &err) == 0);
	x = t_issue(t_id(sub), k, "CN=c5", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x != NULL && t_signed_by(x, t_id(sub), 2));
	X509_free(x);

	/* a renewal that issues in its own transaction and aborts: the
	 * transaction sees its new key, later ones the committed one */
	memset(&rr, 0, sizeof(rr));
	rr.new_key = true;
	memset(&req, 0, sizeof(req));
	req.pubkey = k;
	req.subject = "CN=c7";
	req.sans = sans;
	req.nsans = 1;
	req.profile = CA_PROFILE_TLS_SERVER;
	req.validity_days = 1;
	req.origin = "mgmt";
	txn = store_txn_begin(st);
	r = ca_renew(ctx, txn, t_id(sub), &rr, &err);
	CHECK(r != NULL && json_integer_value(json_object_get(r,
	    "current_version")) == 3);
	json_decref(r);
	x = t_reread(ca_issue(ctx, txn, t_id(sub), &req, &err));
	CHECK(x != NULL);
	/* twice: the second would come from the cache if the first had
	 * filled it */
	X509_free(t_reread(ca_issue(ctx, txn, t_id(sub), &req, &err)));
	free(ca_bundle_pem(ctx, txn, t_id(sub), &err));
	store_txn_abort(txn);
	CHECK(x != NULL && !t_signed_by(x, t_id(sub), 2));
	X509_free(x);
	x = t_issue(t_id(sub), k, "CN=c8", sans, 1, CA_PROFILE_TLS_SERVER, 1,
	    &err);
	CHECK(x != NULL && t_signed_by(x, t_id(sub), 2) &&
	    t_issued_ca_version(x) == 2);
	X509_free(x);
	free(b1);
	b1 = ca_bundle_pem(ctx, NULL, t_id(sub), &err);
	CHECK(b1 != NULL && b3 != NULL && strcmp(b1, b3) == 0);
out:
	free(b1);
	free(b2);
	free(b3);
	EVP_PKEY_free(k);
	json_decref(root);
	json_decref(sub);
}

/* DER of x's SubjectPublicKeyInfo, to free(); NULL on failure. */
static unsigned char *
t_spki_der(X509 *x, int *len)
{
	unsigned char *der = NULL, *p;

	*len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), NULL);
	if (*len <= 0 || (der = malloc((size_t)*len)) == NULL)
		return NULL;
	p = der;
	if (i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &p) != *len) {
		free(der);
		return NULL;
	}
	return der;
}

/* True when a and b both carry extension nid with the same bytes. */
static bool
t_ext_same(X509 *a, X509 *b, int nid)
{
	const ASN1_OCTET_STRING *da, *db;
	X509_EXTENSION *ea, *eb;

	ea = X509_get_ext(a, X509_get_ext_by_NID(a, nid, -1));
	eb = X509_get_ext(b, X509_get_ext_by_NID(b, nid, -1));
	if (ea == NULL || eb == NULL)
		return false;
	da = X509_EXTENSION_get_data(ea);
	db = X509_EXTENSION_get_data(eb);
	return X509_EXTENSION_get_critical(ea) ==
	    X509_EXTENSION_get_critical(eb) &&
	    ASN1_STRING_cmp(da, db) == 0;
}

/* The key of an SPKI DER as a CSR carries it (decoded, not generated). */
static EVP_PKEY *
t_key_from_spki(EVP_PKEY *key, int form)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *out = NULL;
	int len;

	if (form != 0 && EVP_PKEY_set_utf8_string_param(key,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
	    OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED) != 1)
		return NULL;
	if ((len = i2d_PUBKEY(key, &der)) <= 0)
		return NULL;
	p = der;
	out = d2i_PUBKEY(NULL, &p, len);
	OPENSSL_free(der);
	return out;
}

/*
 * ca_cert_set_spki writes the SubjectPublicKeyInfo X509_set_pubkey
 * writes, byte for byte, for every leaf key class, generated or decoded
 * (as from a CSR), and falls back for a compressed EC point; and the SKI
 * ca_issue derives from it is the one of the old path.
 */
static void
test_spki_direct(void)
{
	static const enum ca_key_alg algs[] = {
		CA_KEY_ECDSA_P256, CA_KEY_ECDSA_P384, CA_KEY_RSA2048,
		CA_KEY_RSA3072, CA_KEY_ED25519,
	};
	unsigned char *a, *b;
	int alen, blen, form;
	size_t i;
	EVP_PKEY *gen, *k;
	X509 *xa, *xb;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		gen = ca_key_generate(algs[i]);
		CHECK(gen != NULL);
		if (gen == NULL)
			continue;
		for (form = 0; form < 3; form++) {
			/* 0: generated; 1: decoded; 2: compressed EC point */
			if (form == 2 && algs[i] != CA_KEY_ECDSA_P256 &&
			    algs[i] != CA_KEY_ECDSA_P384)
				break;
			k = form == 0 ? gen : t_key_from_spki(gen, form - 1);
			CHECK(k != NULL);
			if (k == NULL)
				continue;
			xa = X509_new();
			xb = X509_new();
			CHECK(xa != NULL && xb != NULL);
			CHECK(X509_set_pubkey(xa, k) == 1);
			CHECK(ca_cert_set_spki(xb, k, algs[i]) == 0);
			a = t_spki_der(xa, &alen);
			b = t_spki_der(xb, &blen);
			CHECK(a != NULL && b != NULL && alen == blen &&
			    memcmp(a, b, (size_t)alen) == 0);
			/* the direct path leaves no key behind, the
			 * fallback keeps OpenSSL's */
			CHECK((X509_get0_pubkey(xb) == NULL) == (form != 2));
			CHECK(ca_cert_add_key_ids(xa, NULL) == 0 &&
			    ca_cert_add_key_ids(xb, NULL) == 0);
			CHECK(t_ext_same(xa, xb, NID_subject_key_identifier));
			free(a);
			free(b);
			X509_free(xa);
			X509_free(xb);
			if (k != gen)
				EVP_PKEY_free(k);
		}
		EVP_PKEY_free(gen);
	}
}

const struct test_case test_cases[] = {
	TEST(test_enum_names),
	TEST(test_subject),
	TEST(test_subject_hash_roundtrip),
	TEST(test_sans),
	TEST(test_key_algorithms),
	TEST(test_seal),
	TEST(test_master_key_file),
	TEST(test_roots),
	TEST(test_subordinates),
	TEST(test_pending_issuer_refused),
	TEST(test_issue_profiles),
	TEST(test_issue_refusals),
	TEST(test_ed25519_leaf),
	TEST(test_policy),
	TEST(test_csr_parse),
	TEST(test_revoke_and_crl),
	TEST(test_crl_from_index),
	TEST(test_external),
	TEST(test_external_two_level_chain),
	TEST(test_bundle_and_list),
	TEST(test_reload),
	TEST(test_concurrent_issue),
	TEST(test_renew_same_key),
	TEST(test_renew_new_key),
	TEST(test_cert_cache),
	TEST(test_renew_sub_after_root),
	TEST(test_renew_key_and_refusals),
	TEST(test_disable_enable),
	TEST(test_delete),
	TEST(test_migrate_old_record),
	TEST(test_trust_bundle),
	TEST(test_spki_direct),
	TEST(test_issuer_cache_stale),
	TEST(test_issue_ext_bytes),
	TEST(test_teardown),
	{ 0 },
};
