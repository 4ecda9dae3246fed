/*
 * tests/unit/est_test.c — the EST server in process: store, CA hierarchy,
 * lifecycle, the server on 127.0.0.1:0 and est_new() with a configuration
 * holding one label per mode, driven with libcurl (Basic and client
 * certificates) and, for tls-unique, with a raw OpenSSL client that reads
 * the Finished messages itself.
 *
 * Covered: routing (404/405), cacerts (PKCS#7 certs-only, chain per
 * label), csrattrs (DER per label), simpleenroll with wrapped/unwrapped
 * base64, CRLF/LF, with/without Content-Transfer-Encoding; every refusal
 * (415, bad base64, bad DER, trailing bytes, bad signature, policy, 413,
 * empty body) with nothing stored; the auth matrix (Basic, wrong and
 * unknown users, label bindings, client certificates: pkid, untrusted,
 * revoked, expired, IDevID bundle, basic_and_cert); the credential cache;
 * simplereenroll (next version of the same entry, name/SAN/key rules,
 * revoked and foreign certificates); serverkeygen (multipart, key matches
 * certificate); manual approval (202, approve, idempotent re-post,
 * reject); tls-unique on TLS 1.2 (full and resumed handshakes), replay on
 * another connection and TLS 1.3 refused; each response is one TLS
 * record, and requests on a kept-alive connection show no Nagle stall;
 * client certificates issued before a new-key renewal of their CA still
 * re-enroll.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "common/common.h"
#include "conf/conf.h"
#include "lifecycle/lifecycle.h"
#include "protocols/est/est.h"
#include "server/server.h"
#include "store/store.h"
#include "tests/unit/test.h"

#define T_PATH_MAX	512
#define T_URL_MAX	1024
#define T_HDRS_MAX	16384
#define T_BODY_MAX	(1024 * 1024)
#define T_BIND_TRIES	200	/* x 50 ms waiting for the listener */
#define T_PASSWORD	"correct-horse-9"
#define T_REALM		"pkid EST test"
#define T_RETRY_AFTER	7
#define T_ITER_FAST	1000	/* PBKDF2 count of most test users */
#define T_ITER_SLOW	1000000	/* for the credential cache check */
#define T_EST		"/.well-known/est/"
#define T_LATENCY_RUNS	20	/* requests on one connection */
#define T_LATENCY_MAX	0.035	/* seconds; a Nagle stall is >= 0.04 */

struct t_env {
	char		 dir[T_PATH_MAX];
	char		 cafile[T_PATH_MAX];	/* trusts the server cert */
	char		 base[T_URL_MAX];	/* https://127.0.0.1:PORT */
	char		 host[64];
	int		 port;
	char		 root_id[64], issuing_id[64], restricted_id[64];
	char		 mfr_bundle[T_PATH_MAX];	/* IDevID anchors */
	EVP_PKEY	*mfr_key;
	X509		*mfr_root;
	struct conf	*cf;
	struct store	*st;
	struct ca_ctx	*ca;
	struct lifecycle *lc;
	struct server	*srv;
	struct est	*est;
	pthread_t	 thr;
	bool		 running;
	bool		 started;	/* t_env() tried already */
	bool		 ok;
};

static struct t_env t_e;

struct t_req {
	const char	*method;	/* "GET" when NULL */
	const char	*path;
	const char	*ctype;		/* Content-Type or NULL */
	const char	*cte;		/* Content-Transfer-Encoding or NULL */
	const char	*body;
	size_t		 blen;
	const char	*userpwd;	/* "user:password" or NULL */
	const char	*cert;		/* client certificate PEM file */
	const char	*key;
	bool		 head;
	bool		 no_agent;	/* send no User-Agent (strongSwan) */
};

struct t_resp {
	long	 status;
	char	*body;
	size_t	 len;
	char	 hdrs[T_HDRS_MAX];
	size_t	 hlen;
	double	 seconds;
};

/* ---- small helpers ---- */

static const char *
t_path(const char *name, char *buf, size_t len)
{
	if (common_path(buf, len, "%s/%s", t_e.dir, name) == -1)
		buf[0] = '\0';
	return buf;
}

static size_t
t_body_cb(char *p, size_t size, size_t n, void *arg)
{
	struct t_resp *r = arg;
	size_t add = size * n;
	char *nb;

	if (r->len + add > T_BODY_MAX ||
	    (nb = realloc(r->body, r->len + add + 1)) == NULL)
		return 0;
	memcpy(nb + r->len, p, add);
	r->body = nb;
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t
t_hdr_cb(char *p, size_t size, size_t n, void *arg)
{
	struct t_resp *r = arg;
	size_t add = size * n;

	if (r->hlen + add < sizeof(r->hdrs)) {
		memcpy(r->hdrs + r->hlen, p, add);
		r->hlen += add;
		r->hdrs[r->hlen] = '\0';
	}
	return add;
}

static void
t_resp_free(struct t_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* The value of response header name (last one, trimmed) into out; "" when
 * absent. */
static const char *
t_hdr(const struct t_resp *r, const char *name, char *out, size_t outlen)
{
	const char *p = r->hdrs, *eol, *v;
	size_t n = strlen(name), vl;

	out[0] = '\0';
	while (*p != '\0') {
		eol = strstr(p, "\r\n");
		if (eol == NULL)
			eol = p + strlen(p);
		if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 &&
		    p[n] == ':') {
			v = p + n + 1;
			while (*v == ' ')
				v++;
			vl = (size_t)(eol - v);
			snprintf(out, outlen, "%.*s", (int)vl, v);
		}
		p = *eol != '\0' ? eol + 2 : eol;
	}
	return out;
}

/* One request to the https listener. The status, or -1 when the transfer
 * failed before any status. */
static long
t_do(const struct t_req *q, struct t_resp *r)
{
	char url[T_URL_MAX], h1[256], h2[256];
	struct curl_slist *h = NULL;
	CURLcode cc;
	CURL *cu;
	uint64_t t0;

	memset(r, 0, sizeof(*r));
	if ((cu = curl_easy_init()) == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s%s", t_e.base, q->path);
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_CAINFO, t_e.cafile);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, t_body_cb);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, t_hdr_cb);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, r);
	if (!q->no_agent)
		curl_easy_setopt(cu, CURLOPT_USERAGENT, "est_test/1");
	if (q->head)
		curl_easy_setopt(cu, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST,
		    q->method != NULL ? q->method : "GET");
	if (q->ctype != NULL) {
		snprintf(h1, sizeof(h1), "Content-Type: %s", q->ctype);
		h = curl_slist_append(h, h1);
	} else {
		h = curl_slist_append(h, "Content-Type:");
	}
	if (q->cte != NULL) {
		snprintf(h2, sizeof(h2), "Content-Transfer-Encoding: %s",
		    q->cte);
		h = curl_slist_append(h, h2);
	}
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	if (q->body != NULL) {
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, q->body);
		curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)q->blen);
	}
	if (q->userpwd != NULL) {
		curl_easy_setopt(cu, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(cu, CURLOPT_USERPWD, q->userpwd);
	}
	if (q->cert != NULL) {
		curl_easy_setopt(cu, CURLOPT_SSLCERT, q->cert);
		curl_easy_setopt(cu, CURLOPT_SSLKEY, q->key);
	}
	t0 = common_mono_ms();
	cc = curl_easy_perform(cu);
	r->seconds = (double)(common_mono_ms() - t0) / 1000.0;
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(cu);
	curl_slist_free_all(h);
	if (cc != CURLE_OK && r->status == 0) {
		fprintf(stderr, "curl %s: %s\n", q->path,
		    curl_easy_strerror(cc));
		return -1;
	}
	if (getenv("EST_TEST_VERBOSE") != NULL)
		fprintf(stderr, "%s %s -> %ld %.200s\n", q->method != NULL ?
		    q->method : "GET", q->path, r->status,
		    r->body != NULL ? r->body : "");
	return r->status;
}

static long
t_get(const char *path, struct t_resp *r)
{
	struct t_req q = { .path = path };

	return t_do(&q, r);
}

/* Base64 of p wrapped every `wrap` columns with eol (0: one line). */
static char *
t_b64(const void *p, size_t n, int wrap, const char *eol)
{
	char *flat = common_b64_encode(p, n, false, 0), *out;
	size_t fl, i, o = 0, el = strlen(eol);

	if (flat == NULL)
		return NULL;
	if (wrap <= 0)
		return flat;
	fl = strlen(flat);
	if ((out = malloc(fl + (fl / (size_t)wrap + 2) * el + 1)) == NULL) {
		free(flat);
		return NULL;
	}
	for (i = 0; i < fl; i++) {
		out[o++] = flat[i];
		if ((i + 1) % (size_t)wrap == 0 || i + 1 == fl) {
			memcpy(out + o, eol, el);
			o += el;
		}
	}
	out[o] = '\0';
	free(flat);
	return out;
}

/* ---- X.509 builders ---- */

/*
 * A certificate for pub with subject CN=cn, signed by issuer/ikey
 * (self-signed when issuer is NULL), valid from now-1h for `days`, with
 * extensions in openssl.cnf "name:value" form.
 */
static X509 *
t_make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *ikey,
    long serial, long days, const char *const *exts)
{
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	X509 *x;
	char name[64];
	const char *val;
	size_t i;

	if ((x = X509_new()) == NULL)
		return NULL;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ?
	    issuer : x));
	X509_set_pubkey(x, pub);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	for (i = 0; exts != NULL && exts[i] != NULL; i++) {
		val = strchr(exts[i], ':');
		snprintf(name, sizeof(name), "%.*s", (int)(val - exts[i]),
		    exts[i]);
		ext = X509V3_EXT_nconf(NULL, &v3, name, val + 1);
		if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
			X509_EXTENSION_free(ext);
			X509_free(x);
			return NULL;
		}
		X509_EXTENSION_free(ext);
	}
	if (X509_sign(x, ikey, EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/*
 * A DER PKCS#10 request signed by k: subject CN=cn (none when NULL), SANs
 * in openssl.cnf form ("DNS:a,IP:1.2.3.4", none when NULL) and a
 * challengePassword when challenge is set. *len set; to free().
 */
static unsigned char *
t_csr(EVP_PKEY *k, const char *cn, const char *sans, const char *challenge,
    size_t *len)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext;
	X509_REQ *req = NULL;
	unsigned char *der = NULL, *ret = NULL;
	int n;

	*len = 0;
	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, 0) != 1 ||
	    X509_REQ_set_pubkey(req, k) != 1)
		goto out;
	if (cn != NULL && X509_NAME_add_entry_by_txt(
	    X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1)
		goto out;
	if (sans != NULL) {
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL ||
		    (ext = X509V3_EXT_conf_nid(NULL, NULL,
		    NID_subject_alt_name, sans)) == NULL)
			goto out;
		if (sk_X509_EXTENSION_push(exts, ext) == 0) {
			X509_EXTENSION_free(ext);
			goto out;
		}
		if (X509_REQ_add_extensions(req, exts) != 1)
			goto out;
	}
	if (challenge != NULL && X509_REQ_add1_attr_by_NID(req,
	    NID_pkcs9_challengePassword, MBSTRING_ASC,
	    (const unsigned char *)challenge, -1) != 1)
		goto out;
	if (X509_REQ_sign(req, k, EVP_PKEY_id(k) == EVP_PKEY_ED25519 ? NULL :
	    EVP_sha256()) <= 0)
		goto out;
	if ((n = i2d_X509_REQ(req, &der)) <= 0)
		goto out;
	if ((ret = malloc((size_t)n)) != NULL) {
		memcpy(ret, der, (size_t)n);
		*len = (size_t)n;
	}
out:
	OPENSSL_free(der);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return ret;
}

/* The certificates of a base64 PKCS#7 certs-only body; NULL when the body
 * is not one (signers present, wrong type, bad encoding). */
static STACK_OF(X509) *
t_p7_certs(const char *b64, size_t len)
{
	STACK_OF(X509) *out = NULL, *in;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t dlen = 0;
	PKCS7 *p7 = NULL;
	int i;

	if (b64 == NULL ||
	    common_b64_decode(b64, len, false, &der, &dlen) == -1)
		return NULL;
	p = der;
	if ((p7 = d2i_PKCS7(NULL, &p, (long)dlen)) == NULL ||
	    p != der + dlen || !PKCS7_type_is_signed(p7) ||
	    sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info) != 0 ||
	    (in = p7->d.sign->cert) == NULL)
		goto out;
	if ((out = sk_X509_new_null()) == NULL)
		goto out;
	for (i = 0; i < sk_X509_num(in); i++) {
		X509_up_ref(sk_X509_value(in, i));
		sk_X509_push(out, sk_X509_value(in, i));
	}
out:
	PKCS7_free(p7);
	free(der);
	return out;
}

/* The one certificate of a PKCS#7 body (new reference) or NULL. */
static X509 *
t_p7_one(const struct t_resp *r)
{
	STACK_OF(X509) *certs = t_p7_certs(r->body, r->len);
	X509 *x = NULL;

	if (certs != NULL && sk_X509_num(certs) == 1) {
		x = sk_X509_value(certs, 0);
		X509_up_ref(x);
	}
	sk_X509_pop_free(certs, X509_free);
	return x;
}

/* True when every body line is at most 64 columns and ends in "\n". */
static bool
t_wrapped64(const struct t_resp *r)
{
	size_t i, col = 0;

	if (r->len == 0 || r->body[r->len - 1] != '\n')
		return false;
	for (i = 0; i < r->len; i++) {
		if (r->body[i] == '\n') {
			col = 0;
			continue;
		}
		if (r->body[i] == '\r' || ++col > 64)
			return false;
	}
	return true;
}

static void
t_serial(X509 *x, char *out, size_t outlen)
{
	if (x == NULL || common_x509_serial_hex(x, out, outlen) == -1)
		snprintf(out, outlen, "none");
}

/* Writes x and k as PEM files NAME.crt and NAME.key; paths into crt/key. */
static void
t_write_pair(const char *name, X509 *x, EVP_PKEY *k, char *crt, char *key,
    size_t len)
{
	char file[128], *pem;

	snprintf(file, sizeof(file), "%s.crt", name);
	t_path(file, crt, len);
	pem = common_x509_to_pem(x);
	CHECK(pem != NULL && common_file_write(crt, pem, strlen(pem),
	    0600) == 0);
	free(pem);
	snprintf(file, sizeof(file), "%s.key", name);
	t_path(file, key, len);
	pem = common_privkey_to_pem(k);
	CHECK(pem != NULL && common_file_write(key, pem, strlen(pem),
	    0600) == 0);
	free(pem);
}

/* ---- store views ---- */

static size_t
t_count_certs(void)
{
	struct store_page pg = { NULL, 1000, NULL, NULL };
	json_t *a = store_cert_list(t_e.st, NULL, &pg, NULL);
	size_t n = json_array_size(a);

	json_decref(a);
	return n;
}

static size_t
t_count_requests(void)
{
	struct store_page pg = { NULL, 1000, NULL, NULL };
	json_t *a = store_est_request_list(t_e.st, NULL, &pg, NULL);
	size_t n = json_array_size(a);

	json_decref(a);
	return n;
}

struct t_client {
	const char	*user;
	const char	*labels[4];
	unsigned	 iterations;
};

static int
t_put_client(struct store_txn *txn, void *arg)
{
	const struct t_client *c = arg;
	json_t *rec, *labels;
	char *hash;
	size_t i;
	int rc = -1;

	if ((hash = common_password_hash(T_PASSWORD, c->iterations)) == NULL)
		return -1;
	labels = json_array();
	for (i = 0; i < 4 && c->labels[i] != NULL; i++)
		json_array_append_new(labels, json_string(c->labels[i]));
	rec = json_pack("{s:s, s:s, s:o, s:s, s:s}", "username", c->user,
	    "password_hash", hash, "labels", labels, "created_at",
	    "2026-01-01T00:00:00Z", "created_by", "test");
	if (rec != NULL)
		rc = store_est_client_put(txn, c->user, rec);
	json_decref(rec);
	free(hash);
	return rc;
}

struct t_decide {
	const char	*id;
	const char	*status;
	const char	*reason;
};

static int
t_decide_txn(struct store_txn *txn, void *arg)
{
	const struct t_decide *d = arg;
	json_t *rec;
	int rc = -1;

	if ((rec = store_est_request_get(store_txn_store(txn), txn,
	    d->id)) == NULL)
		return -1;
	json_object_set_new(rec, "status", json_string(d->status));
	json_object_set_new(rec, "decided_by", json_string("token:admin"));
	json_object_set_new(rec, "decided_at",
	    json_string("2026-01-01T00:00:00Z"));
	if (d->reason != NULL)
		json_object_set_new(rec, "reason", json_string(d->reason));
	rc = store_est_request_put(txn, d->id, rec);
	json_decref(rec);
	return rc;
}

/* The approval id of (label, CSR DER): hex SHA-256 of label "\0" DER. */
static void
t_request_id(const char *label, const unsigned char *der, size_t len,
    char out[65])
{
	unsigned char md[32];
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, label, strlen(label) + 1);
	EVP_DigestUpdate(c, der, len);
	EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	common_hex(md, sizeof(md), out);
}

/* ---- environment ---- */

struct t_cas {
	struct ca_ctx	*ca;
	char		*root, *issuing, *restricted;
	size_t		 idlen;
};

static int
t_make_cas(struct store_txn *txn, void *arg)
{
	struct t_cas *c = arg;
	struct ca_create_req req;
	struct common_error err;
	json_t *root = NULL, *sub = NULL, *res = NULL, *policy = NULL;
	int rc = -1;

	common_error_clear(&err);
	memset(&req, 0, sizeof(req));
	req.name = "EST Test Root";
	req.type = "root";
	req.subject = "CN=EST Test Root,O=pkid tests";
	req.key_alg = CA_KEY_ECDSA_P256;
	req.validity_days = 3650;
	req.path_len = -1;
	if ((root = ca_create(c->ca, txn, &req, &err)) == NULL)
		goto out;
	snprintf(c->root, c->idlen, "%s",
	    json_string_value(json_object_get(root, "id")));
	req.name = "EST Test Issuing";
	req.type = "subordinate";
	req.issuer_ca_id = c->root;
	req.subject = "CN=EST Test Issuing,O=pkid tests";
	req.validity_days = 1825;
	req.path_len = 0;
	if ((sub = ca_create(c->ca, txn, &req, &err)) == NULL)
		goto out;
	snprintf(c->issuing, c->idlen, "%s",
	    json_string_value(json_object_get(sub, "id")));
	policy = json_pack("{s:[s], s:[]}", "dns_suffixes", "example.com",
	    "ip_ranges");
	req.name = "EST Test Restricted";
	req.subject = "CN=EST Test Restricted,O=pkid tests";
	req.policy = policy;
	if ((res = ca_create(c->ca, txn, &req, &err)) == NULL)
		goto out;
	snprintf(c->restricted, c->idlen, "%s",
	    json_string_value(json_object_get(res, "id")));
	rc = 0;
out:
	if (rc == -1)
		fprintf(stderr, "est_test: CA setup: %s\n", err.msg);
	json_decref(policy);
	json_decref(root);
	json_decref(sub);
	json_decref(res);
	return rc;
}

/* A self-signed P-256 certificate for 127.0.0.1: chain and key PEM. */
static int
t_server_cert(char **cert_pem, char **key_pem)
{
	static const char *const exts[] = {
		"subjectAltName:IP:127.0.0.1,DNS:localhost", NULL
	};
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int rc = -1;

	*cert_pem = *key_pem = NULL;
	if ((k = EVP_EC_gen("P-256")) == NULL ||
	    (x = t_make_cert("localhost", k, NULL, k, 1, 3 * 365,
	    exts)) == NULL)
		goto out;
	*cert_pem = common_x509_to_pem(x);
	*key_pem = common_privkey_to_pem(k);
	rc = *cert_pem != NULL && *key_pem != NULL ? 0 : -1;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

/* The manufacturer's root (IDevID anchor) into mfr_bundle. */
static int
t_manufacturer(void)
{
	static const char *const exts[] = {
		"basicConstraints:critical,CA:TRUE",
		"keyUsage:critical,keyCertSign,cRLSign",
		"subjectKeyIdentifier:hash", NULL
	};
	char *pem;
	int rc;

	if ((t_e.mfr_key = EVP_EC_gen("P-256")) == NULL ||
	    (t_e.mfr_root = t_make_cert("Device Maker Root", t_e.mfr_key,
	    NULL, t_e.mfr_key, 77, 3650, exts)) == NULL ||
	    (pem = common_x509_to_pem(t_e.mfr_root)) == NULL)
		return -1;
	t_path("idevid-ca.pem", t_e.mfr_bundle, sizeof(t_e.mfr_bundle));
	rc = common_file_write(t_e.mfr_bundle, pem, strlen(pem), 0644);
	free(pem);
	return rc;
}

static void *
t_server_thread(void *arg)
{
	(void)arg;
	if (server_run(t_e.srv) != 0)
		fprintf(stderr, "server_run failed\n");
	return NULL;
}

/* The configuration: one label per mode. */
static char *
t_conf_text(void)
{
	char *s = NULL;

	if (asprintf(&s,
	    "{ \"data_dir\": \"%s\", \"workers\": 2,\n"
	    "  \"listen\": { \"https\": \"127.0.0.1:0\", "
	    "\"http\": \"127.0.0.1:0\", \"mgmt\": \"127.0.0.1:0\" },\n"
	    "  \"est\": { \"realm\": \"" T_REALM "\", "
	    "\"retry_after_seconds\": %d,\n"
	    "    \"labels\": {\n"
	    "      \"basic\": { \"auth\": \"basic\" },\n"
	    "      \"cert\": { \"auth\": \"cert\" },\n"
	    "      \"both\": { \"auth\": \"basic_and_cert\" },\n"
	    "      \"idevid\": { \"auth\": \"cert\", \"trust_bundle\": \"%s\","
	    " \"validity_days\": 30 },\n"
	    "      \"pop\": { \"auth\": \"basic\", \"pop_required\": true },\n"
	    "      \"manual\": { \"auth\": \"basic_or_cert\", "
	    "\"manual_approval\": true },\n"
	    "      \"restricted\": { \"auth\": \"basic\", \"ca_id\": \"%s\", "
	    "\"profile\": \"tls_server\" },\n"
	    "      \"rsa\": { \"auth\": \"basic\", \"key_algorithm\": "
	    "\"RSA2048\" },\n"
	    "      \"p384\": { \"auth\": \"basic\", \"key_algorithm\": "
	    "\"ECDSA_P384\", \"serverkeygen\": false },\n"
	    "      \"ed\": { \"auth\": \"basic\", \"key_algorithm\": "
	    "\"ED25519\" },\n"
	    "      \"samekey\": { \"auth\": \"basic_or_cert\", "
	    "\"allow_new_key\": false },\n"
	    "      \"bound\": { \"auth\": \"basic\" }\n"
	    "    } } }\n", t_e.dir, T_RETRY_AFTER, t_e.mfr_bundle,
	    t_e.restricted_id) == -1)
		return NULL;
	return s;
}

/* Builds the whole stack and starts the server once. */
static bool
t_env(void)
{
	struct ca_config cacfg;
	struct lifecycle_config lccfg = { 90, 30, NULL };
	struct t_cas cas;
	struct t_client alice = { "alice", { NULL }, T_ITER_FAST };
	struct t_client carol = { "carol", { "bound", NULL }, T_ITER_FAST };
	struct t_client dave = { "dave", { "", "basic", NULL }, T_ITER_FAST };
	char *cert = NULL, *key = NULL, *text = NULL, file[T_PATH_MAX];
	char err[512];
	SSL_CTX *tls = NULL;
	const char *bound = NULL, *colon;
	int i;

	if (t_e.started)
		return t_e.ok;
	t_e.started = true;
	snprintf(t_e.dir, sizeof(t_e.dir), "%s/est", test_tmpdir());
	common_mkdirs(t_e.dir, 0700);
	t_path("tls-ca.pem", t_e.cafile, sizeof(t_e.cafile));
	if (t_server_cert(&cert, &key) == -1 ||
	    common_file_write(t_e.cafile, cert, strlen(cert), 0644) == -1 ||
	    (tls = server_tls_ctx(cert, key)) == NULL ||
	    t_manufacturer() == -1) {
		fprintf(stderr, "est_test: TLS setup failed\n");
		goto out;
	}
	if ((t_e.st = store_open(t_e.dir)) == NULL)
		goto out;
	memset(&cacfg, 0, sizeof(cacfg));
	cacfg.data_dir = t_e.dir;
	cacfg.http_base_url = "http://127.0.0.1:8080";
	if ((t_e.ca = ca_ctx_new(t_e.st, &cacfg)) == NULL ||
	    (t_e.lc = lifecycle_new(t_e.ca, &lccfg)) == NULL)
		goto out;
	cas.ca = t_e.ca;
	cas.root = t_e.root_id;
	cas.issuing = t_e.issuing_id;
	cas.restricted = t_e.restricted_id;
	cas.idlen = sizeof(t_e.root_id);
	if (store_txn_run(t_e.st, t_make_cas, &cas) != 0 ||
	    store_txn_run(t_e.st, t_put_client, &alice) != 0 ||
	    store_txn_run(t_e.st, t_put_client, &carol) != 0 ||
	    store_txn_run(t_e.st, t_put_client, &dave) != 0)
		goto out;
	if ((text = t_conf_text()) == NULL ||
	    common_file_write(t_path("pkid.json", file, sizeof(file)), text,
	    strlen(text), 0600) == -1)
		goto out;
	if ((t_e.cf = conf_load(file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "est_test: config: %s\n", err);
		goto out;
	}
	if ((t_e.srv = server_new(t_e.cf, tls)) == NULL ||
	    (t_e.est = est_new(t_e.srv, t_e.lc, t_e.cf,
	    t_e.issuing_id)) == NULL) {
		fprintf(stderr, "est_test: server/est setup failed\n");
		goto out;
	}
	if (pthread_create(&t_e.thr, NULL, t_server_thread, NULL) != 0)
		goto out;
	t_e.running = true;
	for (i = 0; i < T_BIND_TRIES; i++) {
		if ((bound = server_bound(t_e.srv, SERVER_HTTPS)) != NULL &&
		    (colon = strrchr(bound, ':')) != NULL &&
		    strcmp(colon, ":0") != 0)
			break;
		bound = NULL;
		usleep(50 * 1000);
	}
	if (bound == NULL) {
		fprintf(stderr, "est_test: https listener never bound\n");
		goto out;
	}
	snprintf(t_e.base, sizeof(t_e.base), "https://%s", bound);
	colon = strrchr(bound, ':');
	snprintf(t_e.host, sizeof(t_e.host), "%.*s", (int)(colon - bound),
	    bound);
	t_e.port = atoi(colon + 1);
	t_e.ok = true;
out:
	SSL_CTX_free(tls);
	free(cert);
	free(key);
	free(text);
	return t_e.ok;
}

static void
t_env_stop(void)
{
	if (t_e.running) {
		server_stop(t_e.srv);
		pthread_join(t_e.thr, NULL);
		t_e.running = false;
	}
	est_free(t_e.est);
	server_free(t_e.srv);
	lifecycle_free(t_e.lc);
	ca_ctx_free(t_e.ca);
	if (t_e.st != NULL)
		CHECK(store_check(t_e.st) == 0);
	store_close(t_e.st);
	conf_free(t_e.cf);
	X509_free(t_e.mfr_root);
	EVP_PKEY_free(t_e.mfr_key);
	memset(&t_e, 0, sizeof(t_e));
	t_e.started = true;
}

/* ---- enrolment helpers ---- */

/*
 * POSTs der to label's op (label "" = default) as base64 (wrap columns,
 * eol), with the given credentials. Status; r holds the answer.
 */
static long
t_post(const char *label, const char *op, const unsigned char *der,
    size_t len, int wrap, const char *eol, const char *userpwd,
    const char *cert, const char *key, struct t_resp *r)
{
	struct t_req q;
	char path[256], *b64;
	long st;

	snprintf(path, sizeof(path), T_EST "%s%s%s", label,
	    label[0] != '\0' ? "/" : "", op);
	if ((b64 = t_b64(der, len, wrap, eol)) == NULL)
		return -1;
	memset(&q, 0, sizeof(q));
	q.method = "POST";
	q.path = path;
	q.ctype = "application/pkcs10";
	q.body = b64;
	q.blen = strlen(b64);
	q.userpwd = userpwd;
	q.cert = cert;
	q.key = key;
	st = t_do(&q, r);
	free(b64);
	return st;
}

/* Enrolls a new P-256 key for CN=cn / sans on label with Basic alice;
 * the key into *k and the certificate returned (NULL on failure). */
static X509 *
t_enroll(const char *label, const char *cn, const char *sans,
    EVP_PKEY **k)
{
	struct t_resp r;
	unsigned char *der;
	size_t len;
	X509 *x = NULL;

	*k = EVP_EC_gen("P-256");
	if (*k == NULL || (der = t_csr(*k, cn, sans, NULL, &len)) == NULL)
		return NULL;
	if (t_post(label, "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 200)
		x = t_p7_one(&r);
	else
		fprintf(stderr, "enroll %s: %ld %s\n", cn, r.status,
		    r.body != NULL ? r.body : "");
	t_resp_free(&r);
	free(der);
	return x;
}

/* ---- tests: routing, cacerts, csrattrs ---- */

static void
test_routing(void)
{
	struct t_resp r;
	struct t_req q;
	char v[256];

	if (!t_env()) {
		CHECK(!"environment");
		return;
	}
	CHECK(t_get(T_EST "nosuchlabel/cacerts", &r) == 404);
	CHECK(r.body != NULL && strstr(r.body, "nosuchlabel") != NULL);
	CHECK_STR(t_hdr(&r, "Content-Type", v, sizeof(v)),
	    "text/plain; charset=utf-8");
	t_resp_free(&r);
	CHECK(t_get(T_EST "fullcmc", &r) == 404);
	t_resp_free(&r);
	CHECK(t_get(T_EST "basic/nosuchop", &r) == 404);
	t_resp_free(&r);
	CHECK(t_get(T_EST "basic/cacerts/extra", &r) == 404);
	t_resp_free(&r);
	CHECK(t_get(T_EST "simpleenroll", &r) == 405);
	CHECK_STR(t_hdr(&r, "Allow", v, sizeof(v)), "POST");
	t_resp_free(&r);
	memset(&q, 0, sizeof(q));
	q.method = "POST";
	q.path = T_EST "cacerts";
	q.body = "x";
	q.blen = 1;
	CHECK(t_do(&q, &r) == 405);
	CHECK_STR(t_hdr(&r, "Allow", v, sizeof(v)), "GET, HEAD");
	t_resp_free(&r);
	/* serverkeygen disabled on p384 */
	q.path = T_EST "p384/serverkeygen";
	CHECK(t_do(&q, &r) == 404);
	t_resp_free(&r);
}

static void
test_cacerts(void)
{
	STACK_OF(X509) *certs;
	struct t_resp r;
	struct t_req q;
	char v[256], *subj;

	if (!t_env())
		return;
	CHECK(t_get(T_EST "cacerts", &r) == 200);
	CHECK_STR(t_hdr(&r, "Content-Type", v, sizeof(v)),
	    "application/pkcs7-mime");
	CHECK_STR(t_hdr(&r, "Content-Transfer-Encoding", v, sizeof(v)),
	    "base64");
	CHECK(atol(t_hdr(&r, "Content-Length", v, sizeof(v))) ==
	    (long)r.len);
	CHECK(t_wrapped64(&r));
	certs = t_p7_certs(r.body, r.len);
	CHECK(certs != NULL && sk_X509_num(certs) == 2);
	if (certs != NULL && sk_X509_num(certs) == 2) {
		subj = ca_name_string(X509_get_subject_name(
		    sk_X509_value(certs, 0)));
		CHECK(subj != NULL && strstr(subj, "EST Test Issuing"));
		free(subj);
		CHECK(X509_check_issued(sk_X509_value(certs, 1),
		    sk_X509_value(certs, 0)) == X509_V_OK);
	}
	sk_X509_pop_free(certs, X509_free);
	t_resp_free(&r);

	/* the label's own CA */
	CHECK(t_get(T_EST "restricted/cacerts", &r) == 200);
	certs = t_p7_certs(r.body, r.len);
	CHECK(certs != NULL && sk_X509_num(certs) == 2);
	if (certs != NULL && sk_X509_num(certs) > 0) {
		subj = ca_name_string(X509_get_subject_name(
		    sk_X509_value(certs, 0)));
		CHECK(subj != NULL && strstr(subj, "EST Test Restricted"));
		free(subj);
	}
	sk_X509_pop_free(certs, X509_free);
	t_resp_free(&r);

	/* no User-Agent (strongSwan's pki): one line, which its decoder
	 * needs */
	memset(&q, 0, sizeof(q));
	q.path = T_EST "cacerts";
	q.no_agent = true;
	CHECK(t_do(&q, &r) == 200);
	CHECK(r.len > 64 && strchr(r.body, '\n') == r.body + r.len - 1);
	certs = t_p7_certs(r.body, r.len);
	CHECK(certs != NULL && sk_X509_num(certs) == 2);
	sk_X509_pop_free(certs, X509_free);
	t_resp_free(&r);

	memset(&q, 0, sizeof(q));
	q.path = T_EST "cacerts";
	q.head = true;
	CHECK(t_do(&q, &r) == 200);
	CHECK(r.len == 0);
	t_resp_free(&r);
}

/* The CsrAttrs of label as a DER SEQUENCE OF ANY; NULL on failure. */
static STACK_OF(ASN1_TYPE) *
t_csrattrs(const char *label, long *status)
{
	STACK_OF(ASN1_TYPE) *seq = NULL;
	struct t_resp r;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	char path[128], v[128];

	snprintf(path, sizeof(path), T_EST "%s%scsrattrs", label,
	    label[0] != '\0' ? "/" : "");
	*status = t_get(path, &r);
	if (*status == 200 &&
	    strcmp(t_hdr(&r, "Content-Type", v, sizeof(v)),
	    "application/csrattrs") == 0 && t_wrapped64(&r) &&
	    common_b64_decode(r.body, r.len, false, &der, &len) == 0) {
		p = der;
		seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len);
		if (p != der + len) {
			sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
			seq = NULL;
		}
	}
	free(der);
	t_resp_free(&r);
	return seq;
}

static int
t_type_oid(const ASN1_TYPE *t)
{
	return t->type == V_ASN1_OBJECT ? OBJ_obj2nid(t->value.object) :
	    NID_undef;
}

/* For an Attribute element: its type NID and the first value into *val
 * (new reference). */
static int
t_type_attr(const ASN1_TYPE *t, ASN1_TYPE **val)
{
	const unsigned char *p;
	X509_ATTRIBUTE *a;
	ASN1_TYPE *v0;
	int nid = NID_undef;

	*val = NULL;
	if (t->type != V_ASN1_SEQUENCE)
		return NID_undef;
	p = t->value.sequence->data;
	if ((a = d2i_X509_ATTRIBUTE(NULL, &p,
	    t->value.sequence->length)) == NULL)
		return NID_undef;
	nid = OBJ_obj2nid(X509_ATTRIBUTE_get0_object(a));
	if (X509_ATTRIBUTE_count(a) == 1 && (v0 = X509_ATTRIBUTE_get0_type(a,
	    0)) != NULL && (*val = ASN1_TYPE_new()) != NULL)
		ASN1_TYPE_set1(*val, v0->type, v0->type == V_ASN1_OBJECT ?
		    (void *)v0->value.object : (void *)v0->value.asn1_string);
	X509_ATTRIBUTE_free(a);
	return nid;
}

static void
test_csrattrs(void)
{
	STACK_OF(ASN1_TYPE) *seq;
	ASN1_TYPE *val;
	long st;

	if (!t_env())
		return;
	/* default: P-256 */
	seq = t_csrattrs("", &st);
	CHECK(st == 200 && seq != NULL && sk_ASN1_TYPE_num(seq) == 2);
	if (seq != NULL && sk_ASN1_TYPE_num(seq) == 2) {
		CHECK(t_type_attr(sk_ASN1_TYPE_value(seq, 0), &val) ==
		    NID_X9_62_id_ecPublicKey);
		CHECK(val != NULL && t_type_oid(val) == NID_X9_62_prime256v1);
		ASN1_TYPE_free(val);
		CHECK(t_type_oid(sk_ASN1_TYPE_value(seq, 1)) ==
		    NID_ecdsa_with_SHA256);
	}
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);

	/* pop: challengePassword first */
	seq = t_csrattrs("pop", &st);
	CHECK(st == 200 && seq != NULL && sk_ASN1_TYPE_num(seq) == 3);
	if (seq != NULL && sk_ASN1_TYPE_num(seq) == 3)
		CHECK(t_type_oid(sk_ASN1_TYPE_value(seq, 0)) ==
		    NID_pkcs9_challengePassword);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);

	/* RSA 2048 */
	seq = t_csrattrs("rsa", &st);
	CHECK(st == 200 && seq != NULL && sk_ASN1_TYPE_num(seq) == 2);
	if (seq != NULL && sk_ASN1_TYPE_num(seq) == 2) {
		CHECK(t_type_attr(sk_ASN1_TYPE_value(seq, 0), &val) ==
		    NID_rsaEncryption);
		CHECK(val != NULL && val->type == V_ASN1_INTEGER &&
		    ASN1_INTEGER_get(val->value.integer) == 2048);
		ASN1_TYPE_free(val);
		CHECK(t_type_oid(sk_ASN1_TYPE_value(seq, 1)) ==
		    NID_sha256WithRSAEncryption);
	}
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);

	/* P-384 */
	seq = t_csrattrs("p384", &st);
	CHECK(st == 200 && seq != NULL && sk_ASN1_TYPE_num(seq) == 2);
	if (seq != NULL && sk_ASN1_TYPE_num(seq) == 2) {
		CHECK(t_type_attr(sk_ASN1_TYPE_value(seq, 0), &val) ==
		    NID_X9_62_id_ecPublicKey);
		CHECK(val != NULL && t_type_oid(val) == NID_secp384r1);
		ASN1_TYPE_free(val);
		CHECK(t_type_oid(sk_ASN1_TYPE_value(seq, 1)) ==
		    NID_ecdsa_with_SHA384);
	}
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);

	/* Ed25519: the key type only */
	seq = t_csrattrs("ed", &st);
	CHECK(st == 200 && seq != NULL && sk_ASN1_TYPE_num(seq) == 1);
	if (seq != NULL && sk_ASN1_TYPE_num(seq) == 1)
		CHECK(t_type_oid(sk_ASN1_TYPE_value(seq, 0)) == NID_ED25519);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}

/* ---- tests: simpleenroll ---- */

/* Checks a 200 enrollment answer for key k and returns its certificate. */
static X509 *
t_check_issued(struct t_resp *r, EVP_PKEY *k)
{
	char v[256];
	X509 *x;

	CHECK_STR(t_hdr(r, "Content-Type", v, sizeof(v)),
	    "application/pkcs7-mime; smime-type=certs-only");
	CHECK_STR(t_hdr(r, "Content-Transfer-Encoding", v, sizeof(v)),
	    "base64");
	CHECK(atol(t_hdr(r, "Content-Length", v, sizeof(v))) ==
	    (long)r->len);
	CHECK(t_wrapped64(r));
	x = t_p7_one(r);
	CHECK(x != NULL);
	if (x != NULL && k != NULL)
		CHECK(EVP_PKEY_eq(X509_get0_pubkey(x), k) == 1);
	return x;
}

static void
test_simpleenroll(void)
{
	struct common_error err;
	struct t_resp r;
	struct t_req q;
	EVP_PKEY *k;
	unsigned char *der;
	size_t len;
	char serial[64], *b64;
	const char *cert_id;
	json_t *iss, *crec;
	X509 *x;
	static const struct {
		int		 wrap;
		const char	*eol;
		const char	*cte;
	} forms[] = {
		{ 64, "\n", "base64" },
		{ 0, "", "base64" },
		{ 76, "\r\n", NULL },
		{ 64, "\r\n", "base64" },
		{ 0, "", NULL },
	};
	size_t i;

	if (!t_env())
		return;
	k = EVP_EC_gen("P-256");
	der = t_csr(k, "device-1", "DNS:device-1.example.com", NULL, &len);
	CHECK(der != NULL);
	for (i = 0; der != NULL && i < sizeof(forms) / sizeof(forms[0]);
	    i++) {
		b64 = t_b64(der, len, forms[i].wrap, forms[i].eol);
		memset(&q, 0, sizeof(q));
		q.method = "POST";
		q.path = T_EST "simpleenroll";
		q.ctype = "application/pkcs10";
		q.cte = forms[i].cte;
		q.body = b64;
		q.blen = strlen(b64);
		q.userpwd = "alice:" T_PASSWORD;
		CHECK(t_do(&q, &r) == 200);
		x = t_check_issued(&r, k);
		t_serial(x, serial, sizeof(serial));
		common_error_clear(&err);
		iss = lifecycle_issued_get(t_e.lc, serial, &err);
		CHECK(iss != NULL);
		CHECK_STR(json_string_value(json_object_get(iss, "origin")),
		    "est");
		CHECK_STR(json_string_value(json_object_get(iss, "ca_id")),
		    t_e.issuing_id);
		cert_id = json_string_value(json_object_get(iss, "cert_id"));
		crec = cert_id != NULL ? lifecycle_cert_get(t_e.lc, cert_id,
		    &err) : NULL;
		CHECK(crec != NULL);
		CHECK_STR(json_string_value(json_object_get(crec, "origin")),
		    "est");
		CHECK_STR(json_string_value(json_object_get(crec, "profile")),
		    "tls_client");
		CHECK(strstr(json_string_value(json_object_get(crec,
		    "name")) != NULL ? json_string_value(json_object_get(
		    crec, "name")) : "", "device-1 (est)") != NULL);
		json_decref(crec);
		json_decref(iss);
		X509_free(x);
		t_resp_free(&r);
		free(b64);
	}
	free(der);
	EVP_PKEY_free(k);

	/* a labelled enrollment with the label's CA and profile */
	k = EVP_EC_gen("P-256");
	der = t_csr(k, "web", "DNS:web.example.com", NULL, &len);
	CHECK(t_post("restricted", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 200);
	x = t_check_issued(&r, k);
	t_serial(x, serial, sizeof(serial));
	iss = lifecycle_issued_get(t_e.lc, serial, &err);
	CHECK_STR(json_string_value(json_object_get(iss, "ca_id")),
	    t_e.restricted_id);
	cert_id = json_string_value(json_object_get(iss, "cert_id"));
	crec = cert_id != NULL ? lifecycle_cert_get(t_e.lc, cert_id, &err) :
	    NULL;
	CHECK_STR(json_string_value(json_object_get(crec, "profile")),
	    "tls_server");
	CHECK(crec != NULL && strstr(json_string_value(json_object_get(crec,
	    "name")), "(est restricted)") != NULL);
	json_decref(crec);
	json_decref(iss);
	X509_free(x);
	t_resp_free(&r);
	free(der);
	EVP_PKEY_free(k);
}

/* Each hostile request gets its status and a one-line reason, and leaves
 * the store as it was. */
static void
test_refusals(void)
{
	struct t_resp r;
	struct t_req q;
	EVP_PKEY *k;
	unsigned char *der, *bad;
	size_t len, certs, reqs, i;
	char v[128], *b64, *big;

	if (!t_env())
		return;
	certs = t_count_certs();
	reqs = t_count_requests();
	k = EVP_EC_gen("P-256");
	der = t_csr(k, "hostile", "DNS:hostile.example.com", NULL, &len);
	b64 = t_b64(der, len, 64, "\n");

	memset(&q, 0, sizeof(q));
	q.method = "POST";
	q.path = T_EST "simpleenroll";
	q.userpwd = "alice:" T_PASSWORD;
	q.body = b64;
	q.blen = strlen(b64);

	/* wrong and missing content type */
	q.ctype = "application/json";
	CHECK(t_do(&q, &r) == 415);
	CHECK(r.body != NULL && strstr(r.body, "application/pkcs10"));
	CHECK(r.len > 0 && strchr(r.body, '\n') == r.body + r.len - 1);
	CHECK_STR(t_hdr(&r, "Content-Type", v, sizeof(v)),
	    "text/plain; charset=utf-8");
	t_resp_free(&r);
	q.ctype = NULL;
	CHECK(t_do(&q, &r) == 415);
	t_resp_free(&r);
	/* parameters and case are fine */
	q.ctype = "Application/PKCS10; charset=us-ascii";
	CHECK(t_do(&q, &r) == 200);
	t_resp_free(&r);
	certs++;

	/* bad base64 */
	q.ctype = "application/pkcs10";
	q.body = "MIIB!!!notbase64@@@";
	q.blen = strlen(q.body);
	CHECK(t_do(&q, &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "base64") != NULL);
	t_resp_free(&r);
	/* empty */
	q.body = "\r\n";
	q.blen = 2;
	CHECK(t_do(&q, &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "empty") != NULL);
	t_resp_free(&r);
	/* bad DER */
	q.body = "aGVsbG8gd29ybGQsIHRoaXMgaXMgbm90IERFUg==";
	q.blen = strlen(q.body);
	CHECK(t_do(&q, &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "PKCS#10") != NULL);
	t_resp_free(&r);

	/* trailing bytes after the request */
	bad = malloc(len + 3);
	memcpy(bad, der, len);
	memcpy(bad + len, "\x05\x00\x00", 3);
	CHECK(t_post("", "simpleenroll", bad, len + 3, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "trailing") != NULL);
	t_resp_free(&r);

	/* bad signature: the last byte of the signature flipped */
	memcpy(bad, der, len);
	bad[len - 1] ^= 0x01;
	CHECK(t_post("", "simpleenroll", bad, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "signature") != NULL);
	t_resp_free(&r);
	free(bad);

	/* outside the CA's policy (restricted CA: example.com only) */
	free(der);
	der = t_csr(k, "evil", "DNS:evil.test", NULL, &len);
	CHECK(t_post("restricted", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "evil.test") != NULL);
	t_resp_free(&r);

	/* oversized body */
	big = malloc(EST_BODY_MAX + 1024);
	for (i = 0; i < EST_BODY_MAX + 1024; i++)
		big[i] = 'A';
	q.body = big;
	q.blen = EST_BODY_MAX + 1024;
	CHECK(t_do(&q, &r) == 413);
	CHECK_STR(t_hdr(&r, "Content-Type", v, sizeof(v)),
	    "text/plain; charset=utf-8");
	t_resp_free(&r);
	free(big);

	CHECK(t_count_certs() == certs);
	CHECK(t_count_requests() == reqs);
	free(b64);
	free(der);
	EVP_PKEY_free(k);
}

/* ---- tests: authentication ---- */

static void
test_auth_basic(void)
{
	struct t_resp r;
	EVP_PKEY *k;
	unsigned char *der;
	size_t len, certs;
	char v[256];
	double slow;

	if (!t_env())
		return;
	certs = t_count_certs();
	k = EVP_EC_gen("P-256");
	der = t_csr(k, "auth", "DNS:auth.example.com", NULL, &len);

	/* nothing, wrong password, unknown user */
	CHECK(t_post("basic", "simpleenroll", der, len, 64, "\n", NULL, NULL,
	    NULL, &r) == 401);
	CHECK_STR(t_hdr(&r, "WWW-Authenticate", v, sizeof(v)),
	    "Basic realm=\"" T_REALM "\"");
	t_resp_free(&r);
	CHECK(t_post("basic", "simpleenroll", der, len, 64, "\n",
	    "alice:wrong-password", NULL, NULL, &r) == 401);
	CHECK(r.body != NULL && strstr(r.body, "wrong user name or password"));
	CHECK_STR(t_hdr(&r, "WWW-Authenticate", v, sizeof(v)),
	    "Basic realm=\"" T_REALM "\"");
	t_resp_free(&r);
	CHECK(t_post("basic", "simpleenroll", der, len, 64, "\n",
	    "mallory:" T_PASSWORD, NULL, NULL, &r) == 401);
	t_resp_free(&r);
	/* csrattrs and cacerts need nothing */
	CHECK(t_get(T_EST "basic/csrattrs", &r) == 200);
	t_resp_free(&r);

	/* bindings: carol only on "bound"; dave on "" and "basic" */
	CHECK(t_post("basic", "simpleenroll", der, len, 64, "\n",
	    "carol:" T_PASSWORD, NULL, NULL, &r) == 403);
	CHECK(r.body != NULL && strstr(r.body, "carol") != NULL);
	t_resp_free(&r);
	CHECK(t_post("", "simpleenroll", der, len, 64, "\n",
	    "carol:" T_PASSWORD, NULL, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_post("bound", "simpleenroll", der, len, 64, "\n",
	    "dave:" T_PASSWORD, NULL, NULL, &r) == 403);
	t_resp_free(&r);
	CHECK(t_count_certs() == certs);
	CHECK(t_post("bound", "simpleenroll", der, len, 64, "\n",
	    "carol:" T_PASSWORD, NULL, NULL, &r) == 200);
	t_resp_free(&r);
	CHECK(t_post("", "simpleenroll", der, len, 64, "\n",
	    "dave:" T_PASSWORD, NULL, NULL, &r) == 200);
	t_resp_free(&r);
	CHECK(t_post("basic", "simpleenroll", der, len, 64, "\n",
	    "dave:" T_PASSWORD, NULL, NULL, &r) == 200);
	t_resp_free(&r);
	CHECK(t_count_certs() == certs + 3);

	/* the verified-credential cache: a slow hash is paid once */
	{
		struct t_client erin = { "erin", { NULL }, T_ITER_SLOW };

		CHECK(store_txn_run(t_e.st, t_put_client, &erin) == 0);
	}
	CHECK(t_post("basic", "simpleenroll", der, len, 64, "\n",
	    "erin:" T_PASSWORD, NULL, NULL, &r) == 200);
	slow = r.seconds;
	t_resp_free(&r);
	CHECK(t_post("basic", "simpleenroll", der, len, 64, "\n",
	    "erin:" T_PASSWORD, NULL, NULL, &r) == 200);
	if (!(r.seconds < slow / 2))
		fprintf(stderr, "cache: first %.3fs, second %.3fs\n", slow,
		    r.seconds);
	CHECK(r.seconds < slow / 2);
	t_resp_free(&r);
	/* a cached good password does not let a wrong one in */
	CHECK(t_post("basic", "simpleenroll", der, len, 64, "\n",
	    "erin:" T_PASSWORD "x", NULL, NULL, &r) == 401);
	t_resp_free(&r);
	free(der);
	EVP_PKEY_free(k);
}

static void
test_auth_cert(void)
{
	static const char *const leaf_exts[] = {
		"basicConstraints:critical,CA:FALSE",
		"keyUsage:critical,digitalSignature",
		"extendedKeyUsage:clientAuth", NULL
	};
	struct common_error err;
	struct t_resp r;
	EVP_PKEY *k, *ka, *kb, *kself, *kdev;
	X509 *a, *b, *self, *dev;
	unsigned char *der;
	size_t len, certs;
	char acrt[T_PATH_MAX], akey[T_PATH_MAX], bcrt[T_PATH_MAX],
	    bkey[T_PATH_MAX], scrt[T_PATH_MAX], skey[T_PATH_MAX],
	    dcrt[T_PATH_MAX], dkey[T_PATH_MAX], serial[64];
	json_t *res;

	if (!t_env())
		return;
	a = t_enroll("", "client-a", "DNS:client-a.example.com", &ka);
	b = t_enroll("", "client-b", "DNS:client-b.example.com", &kb);
	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		goto out0;
	t_write_pair("client-a", a, ka, acrt, akey, sizeof(acrt));
	t_write_pair("client-b", b, kb, bcrt, bkey, sizeof(bcrt));
	kself = EVP_EC_gen("P-256");
	self = t_make_cert("self", kself, NULL, kself, 5, 30, leaf_exts);
	t_write_pair("self", self, kself, scrt, skey, sizeof(scrt));
	kdev = EVP_EC_gen("P-256");
	dev = t_make_cert("device-42", kdev, t_e.mfr_root, t_e.mfr_key, 42,
	    365, leaf_exts);
	t_write_pair("idevid", dev, kdev, dcrt, dkey, sizeof(dcrt));

	k = EVP_EC_gen("P-256");
	der = t_csr(k, "cert-auth", "DNS:cert-auth.example.com", NULL, &len);
	certs = t_count_certs();

	/* cert label: pkid certificate yes; none, self-signed, IDevID no */
	CHECK(t_post("cert", "simpleenroll", der, len, 64, "\n", NULL, acrt,
	    akey, &r) == 200);
	t_resp_free(&r);
	CHECK(t_post("cert", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 401);
	CHECK(r.body != NULL && strstr(r.body, "client certificate"));
	t_resp_free(&r);
	CHECK(t_post("cert", "simpleenroll", der, len, 64, "\n", NULL, scrt,
	    skey, &r) == 401);
	t_resp_free(&r);
	CHECK(t_post("cert", "simpleenroll", der, len, 64, "\n", NULL, dcrt,
	    dkey, &r) == 401);
	t_resp_free(&r);
	/* idevid label: the manufacturer's device yes, pkid's no */
	CHECK(t_post("idevid", "simpleenroll", der, len, 64, "\n", NULL, dcrt,
	    dkey, &r) == 200);
	t_resp_free(&r);
	CHECK(t_post("idevid", "simpleenroll", der, len, 64, "\n", NULL, acrt,
	    akey, &r) == 401);
	t_resp_free(&r);
	/* basic_or_cert (default): either */
	CHECK(t_post("", "simpleenroll", der, len, 64, "\n", NULL, acrt, akey,
	    &r) == 200);
	t_resp_free(&r);
	CHECK(t_post("", "simpleenroll", der, len, 64, "\n", NULL, scrt, skey,
	    &r) == 401);
	t_resp_free(&r);
	/* basic_and_cert: both */
	CHECK(t_post("both", "simpleenroll", der, len, 64, "\n", NULL, acrt,
	    akey, &r) == 401);
	t_resp_free(&r);
	CHECK(t_post("both", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 401);
	t_resp_free(&r);
	CHECK(t_post("both", "simpleenroll", der, len, 64, "\n",
	    "alice:wrong-password", acrt, akey, &r) == 401);
	t_resp_free(&r);
	CHECK(t_post("both", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, acrt, akey, &r) == 200);
	t_resp_free(&r);
	CHECK(t_count_certs() == certs + 4);

	/* revoked */
	t_serial(b, serial, sizeof(serial));
	common_error_clear(&err);
	res = lifecycle_revoke_serial(t_e.lc, serial, CA_REASON_KEY_COMPROMISE,
	    "test", &err);
	CHECK(res != NULL);
	json_decref(res);
	CHECK(t_post("cert", "simpleenroll", der, len, 64, "\n", NULL, bcrt,
	    bkey, &r) == 401);
	CHECK(r.body != NULL && strstr(r.body, "revoked") != NULL);
	t_resp_free(&r);

	/* expired: a's 365 days are over in 400 days */
	common_clock_set_offset(400L * 86400);
	CHECK(t_post("cert", "simpleenroll", der, len, 64, "\n", NULL, acrt,
	    akey, &r) == 401);
	CHECK(r.body != NULL && strstr(r.body, "expired") != NULL);
	t_resp_free(&r);
	common_clock_set_offset(0);
	CHECK(t_count_certs() == certs + 4);

	free(der);
	EVP_PKEY_free(k);
	X509_free(self);
	EVP_PKEY_free(kself);
	X509_free(dev);
	EVP_PKEY_free(kdev);
out0:
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(ka);
	EVP_PKEY_free(kb);
}

/* ---- tests: simplereenroll ---- */

static void
test_reenroll(void)
{
	struct common_error err;
	struct t_resp r;
	EVP_PKEY *k, *k2, *kdev;
	X509 *a, *x, *dev;
	unsigned char *der;
	size_t len, certs;
	char crt[T_PATH_MAX], key[T_PATH_MAX], dcrt[T_PATH_MAX],
	    dkey[T_PATH_MAX], serial[64], subj_a[256], subj_x[256];
	json_t *old, *new, *res;

	if (!t_env())
		return;
	a = t_enroll("", "renew-me", "DNS:renew-me.example.com,IP:10.0.0.7",
	    &k);
	CHECK(a != NULL);
	if (a == NULL) {
		EVP_PKEY_free(k);
		return;
	}
	t_write_pair("renew-me", a, k, crt, key, sizeof(crt));
	t_serial(a, serial, sizeof(serial));
	common_error_clear(&err);
	old = lifecycle_issued_get(t_e.lc, serial, &err);
	certs = t_count_certs();

	/* same key, same names, over mTLS: the next version */
	der = t_csr(k, "renew-me", "DNS:renew-me.example.com,IP:10.0.0.7",
	    NULL, &len);
	CHECK(t_post("", "simplereenroll", der, len, 64, "\n", NULL, crt, key,
	    &r) == 200);
	x = t_check_issued(&r, k);
	t_resp_free(&r);
	t_serial(x, serial, sizeof(serial));
	new = lifecycle_issued_get(t_e.lc, serial, &err);
	CHECK(new != NULL && old != NULL);
	CHECK_STR(json_string_value(json_object_get(new, "cert_id")),
	    json_string_value(json_object_get(old, "cert_id")));
	CHECK(json_integer_value(json_object_get(new, "version")) == 2);
	X509_NAME_oneline(X509_get_subject_name(a), subj_a, sizeof(subj_a));
	X509_NAME_oneline(X509_get_subject_name(x), subj_x, sizeof(subj_x));
	CHECK_STR(subj_a, subj_x);
	CHECK(t_count_certs() == certs);
	json_decref(new);
	X509_free(x);
	free(der);

	/* Basic alone cannot re-enroll */
	der = t_csr(k, "renew-me", "DNS:renew-me.example.com,IP:10.0.0.7",
	    NULL, &len);
	CHECK(t_post("", "simplereenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 403);
	t_resp_free(&r);
	free(der);

	/* a new key: fine here, refused where allow_new_key is false */
	k2 = EVP_EC_gen("P-256");
	der = t_csr(k2, "renew-me", "DNS:renew-me.example.com,IP:10.0.0.7",
	    NULL, &len);
	CHECK(t_post("samekey", "simplereenroll", der, len, 64, "\n", NULL,
	    crt, key, &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "new key") != NULL);
	t_resp_free(&r);
	CHECK(t_post("", "simplereenroll", der, len, 64, "\n", NULL, crt, key,
	    &r) == 200);
	x = t_check_issued(&r, k2);
	X509_free(x);
	t_resp_free(&r);
	free(der);

	/* other names */
	der = t_csr(k, "someone-else", "DNS:renew-me.example.com,IP:10.0.0.7",
	    NULL, &len);
	CHECK(t_post("", "simplereenroll", der, len, 64, "\n", NULL, crt, key,
	    &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "subject") != NULL);
	t_resp_free(&r);
	free(der);
	der = t_csr(k, "renew-me", "DNS:renew-me.example.com", NULL, &len);
	CHECK(t_post("", "simplereenroll", der, len, 64, "\n", NULL, crt, key,
	    &r) == 400);
	CHECK(r.body != NULL && strstr(r.body, "subjectAltName") != NULL);
	t_resp_free(&r);
	free(der);
	/* an upper-case DNS name is the same name once normalised */
	der = t_csr(k, "renew-me", "DNS:Renew-Me.example.com,IP:10.0.0.7",
	    NULL, &len);
	CHECK(t_post("", "simplereenroll", der, len, 64, "\n", NULL, crt, key,
	    &r) == 200);
	t_resp_free(&r);
	CHECK(t_count_certs() == certs);

	/* a certificate pkid did not issue */
	kdev = EVP_EC_gen("P-256");
	dev = t_make_cert("device-43", kdev, t_e.mfr_root, t_e.mfr_key, 43,
	    365, NULL);
	t_write_pair("idevid-43", dev, kdev, dcrt, dkey, sizeof(dcrt));
	CHECK(t_post("idevid", "simplereenroll", der, len, 64, "\n", NULL,
	    dcrt, dkey, &r) == 403);
	CHECK(r.body != NULL && strstr(r.body, "not issued by pkid"));
	t_resp_free(&r);

	/* revoked: Basic lets the request in, the certificate is refused */
	t_serial(a, serial, sizeof(serial));
	res = lifecycle_revoke_serial(t_e.lc, serial,
	    CA_REASON_SUPERSEDED, "test", &err);
	json_decref(res);
	CHECK(t_post("", "simplereenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, crt, key, &r) == 403);
	CHECK(r.body != NULL && strstr(r.body, "revoked") != NULL);
	t_resp_free(&r);
	CHECK(t_count_certs() == certs);
	free(der);

	json_decref(old);
	X509_free(dev);
	EVP_PKEY_free(kdev);
	EVP_PKEY_free(k2);
	X509_free(a);
	EVP_PKEY_free(k);
}

/* ---- tests: serverkeygen ---- */

/* The body of the part whose Content-Type is ctype in a multipart body;
 * decoded base64 into der. 0 or -1. */
static int
t_part(const struct t_resp *r, const char *boundary, const char *ctype,
    unsigned char **der, size_t *len)
{
	char delim[128], hdr[160];
	const char *p, *start, *end;

	*der = NULL;
	snprintf(delim, sizeof(delim), "--%s", boundary);
	snprintf(hdr, sizeof(hdr), "Content-Type: %s\r\n", ctype);
	for (p = r->body; (p = strstr(p, delim)) != NULL; p += strlen(delim)) {
		start = p + strlen(delim) + 2;
		if (strncmp(p + strlen(delim), "\r\n", 2) != 0)
			continue;
		if (strncmp(start, hdr, strlen(hdr)) != 0)
			continue;
		if ((start = strstr(start, "\r\n\r\n")) == NULL)
			return -1;
		start += 4;
		if ((end = strstr(start, delim)) == NULL)
			return -1;
		return common_b64_decode(start, (size_t)(end - start), false,
		    der, len);
	}
	return -1;
}

static void
test_serverkeygen(void)
{
	struct t_resp r;
	PKCS8_PRIV_KEY_INFO *p8;
	EVP_PKEY *k, *gen;
	X509 *x;
	STACK_OF(X509) *certs;
	unsigned char *kder, *cder, *der;
	const unsigned char *p;
	size_t klen, clen, len, ncerts;
	char v[256], *b;
	static const struct {
		const char	*label;
		int		 type;
	} cases[] = {
		{ "", EVP_PKEY_EC },
		{ "rsa", EVP_PKEY_RSA },
		{ "ed", EVP_PKEY_ED25519 },
	};
	size_t i;

	if (!t_env())
		return;
	ncerts = t_count_certs();
	k = EVP_EC_gen("P-256");
	der = t_csr(k, "keygen", "DNS:keygen.example.com", NULL, &len);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK(t_post(cases[i].label, "serverkeygen", der, len, 0, "",
		    "alice:" T_PASSWORD, NULL, NULL, &r) == 200);
		t_hdr(&r, "Content-Type", v, sizeof(v));
		CHECK(strncmp(v, "multipart/mixed; boundary=", 26) == 0);
		b = strstr(v, "boundary=");
		kder = cder = NULL;
		CHECK(b != NULL && t_part(&r, b + 9, "application/pkcs8",
		    &kder, &klen) == 0);
		CHECK(b != NULL && t_part(&r, b + 9, "application/pkcs7-mime;"
		    " smime-type=certs-only", &cder, &clen) == 0);
		gen = NULL;
		x = NULL;
		if (kder != NULL) {
			p = kder;
			p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)klen);
			CHECK(p8 != NULL && p == kder + klen);
			gen = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;
			PKCS8_PRIV_KEY_INFO_free(p8);
		}
		if (cder != NULL) {
			b = common_b64_encode(cder, clen, false, 0);
			certs = t_p7_certs(b, strlen(b));
			CHECK(certs != NULL && sk_X509_num(certs) == 1);
			if (certs != NULL && sk_X509_num(certs) == 1) {
				x = sk_X509_value(certs, 0);
				X509_up_ref(x);
			}
			sk_X509_pop_free(certs, X509_free);
			free(b);
		}
		CHECK(gen != NULL && x != NULL);
		if (gen != NULL && x != NULL) {
			CHECK(EVP_PKEY_base_id(gen) == cases[i].type);
			CHECK(X509_check_private_key(x, gen) == 1);
			CHECK(EVP_PKEY_eq(X509_get0_pubkey(x), k) != 1);
		}
		EVP_PKEY_free(gen);
		X509_free(x);
		free(kder);
		free(cder);
		t_resp_free(&r);
	}
	CHECK(t_count_certs() == ncerts + 3);
	/* auth like simpleenroll */
	CHECK(t_post("", "serverkeygen", der, len, 0, "", NULL, NULL, NULL,
	    &r) == 401);
	t_resp_free(&r);
	free(der);
	EVP_PKEY_free(k);
}

/* ---- tests: manual approval ---- */

static void
test_manual(void)
{
	struct t_resp r, r2;
	struct t_decide d;
	EVP_PKEY *k;
	X509 *x, *y;
	unsigned char *der;
	size_t len, certs;
	char id[65], v[128], sx[64], sy[64];
	json_t *rec;

	if (!t_env())
		return;
	certs = t_count_certs();
	k = EVP_EC_gen("P-256");
	der = t_csr(k, "slow-device", "DNS:slow.example.com", NULL, &len);
	t_request_id("manual", der, len, id);

	CHECK(t_post("manual", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 202);
	CHECK(atoi(t_hdr(&r, "Retry-After", v, sizeof(v))) == T_RETRY_AFTER);
	CHECK(r.body != NULL && strstr(r.body, id) != NULL);
	t_resp_free(&r);
	rec = store_est_request_get(t_e.st, NULL, id);
	CHECK(rec != NULL);
	CHECK_STR(json_string_value(json_object_get(rec, "status")),
	    "pending");
	CHECK_STR(json_string_value(json_object_get(rec, "label")), "manual");
	CHECK_STR(json_string_value(json_object_get(rec, "operation")),
	    "simpleenroll");
	CHECK_STR(json_string_value(json_object_get(rec, "requested_by")),
	    "est:alice");
	CHECK_STR(json_string_value(json_object_get(rec, "subject")),
	    "CN=slow-device");
	json_decref(rec);
	/* re-post while pending */
	CHECK(t_post("manual", "simpleenroll", der, len, 0, "",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 202);
	t_resp_free(&r);
	CHECK(t_count_certs() == certs);

	/* approved: issued on the next post, then the same again */
	d.id = id;
	d.status = "approved";
	d.reason = NULL;
	CHECK(store_txn_run(t_e.st, t_decide_txn, &d) == 0);
	CHECK(t_post("manual", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 200);
	x = t_check_issued(&r, k);
	t_serial(x, sx, sizeof(sx));
	rec = store_est_request_get(t_e.st, NULL, id);
	CHECK_STR(json_string_value(json_object_get(rec, "status")),
	    "issued");
	CHECK_STR(json_string_value(json_object_get(rec, "serial")), sx);
	CHECK(json_string_value(json_object_get(rec, "cert_id")) != NULL);
	json_decref(rec);
	CHECK(t_post("manual", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r2) == 200);
	y = t_check_issued(&r2, k);
	t_serial(y, sy, sizeof(sy));
	CHECK_STR(sx, sy);
	CHECK(t_count_certs() == certs + 1);
	X509_free(x);
	X509_free(y);
	t_resp_free(&r);
	t_resp_free(&r2);
	free(der);

	/* rejected */
	der = t_csr(k, "bad-device", "DNS:bad.example.com", NULL, &len);
	t_request_id("manual", der, len, id);
	CHECK(t_post("manual", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 202);
	t_resp_free(&r);
	d.id = id;
	d.status = "rejected";
	d.reason = "not on the inventory list";
	CHECK(store_txn_run(t_e.st, t_decide_txn, &d) == 0);
	CHECK(t_post("manual", "simpleenroll", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 403);
	CHECK(r.body != NULL && strstr(r.body, "not on the inventory list"));
	t_resp_free(&r);
	/* serverkeygen waits too; its key is delivered once */
	free(der);
	der = t_csr(k, "keygen-device", "DNS:keygen.example.com", NULL, &len);
	t_request_id("manual", der, len, id);
	CHECK(t_post("manual", "serverkeygen", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 202);
	t_resp_free(&r);
	rec = store_est_request_get(t_e.st, NULL, id);
	CHECK_STR(json_string_value(json_object_get(rec, "operation")),
	    "serverkeygen");
	json_decref(rec);
	d.id = id;
	d.status = "approved";
	d.reason = NULL;
	CHECK(store_txn_run(t_e.st, t_decide_txn, &d) == 0);
	CHECK(t_post("manual", "serverkeygen", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 200);
	CHECK(strncmp(t_hdr(&r, "Content-Type", v, sizeof(v)),
	    "multipart/mixed", 15) == 0);
	t_resp_free(&r);
	CHECK(t_post("manual", "serverkeygen", der, len, 64, "\n",
	    "alice:" T_PASSWORD, NULL, NULL, &r) == 403);
	CHECK(r.body != NULL && strstr(r.body, "delivered once") != NULL);
	t_resp_free(&r);
	CHECK(t_count_certs() == certs + 2);

	/* unauthenticated posts store nothing */
	free(der);
	der = t_csr(k, "anon-device", "DNS:anon.example.com", NULL, &len);
	t_request_id("manual", der, len, id);
	CHECK(t_post("manual", "simpleenroll", der, len, 64, "\n", NULL,
	    NULL, NULL, &r) == 401);
	t_resp_free(&r);
	rec = store_est_request_get(t_e.st, NULL, id);
	CHECK(rec == NULL);
	json_decref(rec);
	CHECK(t_count_certs() == certs + 2);
	free(der);
	EVP_PKEY_free(k);
}

/* ---- tests: tls-unique ---- */

/* A TLS connection to the server with versions [minv, maxv], resuming
 * sess when given. NULL on failure. */
static SSL *
t_tls_open(SSL_CTX *ctx, SSL_SESSION *sess, int *fdp)
{
	struct sockaddr_in sin;
	SSL *ssl = NULL;
	int fd;

	*fdp = -1;
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return NULL;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)t_e.port);
	inet_pton(AF_INET, t_e.host, &sin.sin_addr);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    (sess != NULL && SSL_set_session(ssl, sess) != 1) ||
	    SSL_connect(ssl) != 1) {
		fprintf(stderr, "tls connect: %s\n",
		    ERR_error_string(ERR_get_error(), NULL));
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	*fdp = fd;
	return ssl;
}

/*
 * POSTs a base64 CSR with Basic alice over ssl; the status, the response
 * into out. Reads exactly one response (by Content-Length) and closes
 * with close_notify, so that the session stays resumable.
 */
static long
t_tls_post(SSL *ssl, const char *path, const unsigned char *der, size_t len,
    char *out, size_t outlen)
{
	char *b64, *req = NULL, *auth, *eoh, *cl;
	size_t got = 0, want = 0;
	long status = -1;
	int n;

	b64 = t_b64(der, len, 0, "");
	auth = common_b64_encode("alice:" T_PASSWORD,
	    strlen("alice:" T_PASSWORD), false, 0);
	if (b64 == NULL || auth == NULL || asprintf(&req,
	    "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n"
	    "Content-Type: application/pkcs10\r\nContent-Length: %zu\r\n"
	    "\r\n%s", path, t_e.host, auth, strlen(b64), b64) == -1)
		goto out;
	if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
		goto out;
	out[0] = '\0';
	while (got + 1 < outlen) {
		if ((eoh = strstr(out, "\r\n\r\n")) != NULL) {
			cl = strcasestr(out, "\r\nContent-Length:");
			want = (size_t)(eoh + 4 - out) + (cl != NULL &&
			    cl < eoh ? (size_t)atol(cl + 17) : 0);
			if (got >= want)
				break;
		}
		if ((n = SSL_read(ssl, out + got, (int)(outlen - got - 1))) <=
		    0)
			break;
		got += (size_t)n;
		out[got] = '\0';
	}
	if (strncmp(out, "HTTP/1.1 ", 9) == 0)
		status = atol(out + 9);
	SSL_shutdown(ssl);
out:
	free(req);
	free(b64);
	free(auth);
	return status;
}

static void
test_tls_unique(void)
{
	SSL_CTX *c12 = NULL, *c13 = NULL;
	SSL_SESSION *sess = NULL;
	SSL *ssl;
	EVP_PKEY *k;
	unsigned char fin[64], *der = NULL, *der2 = NULL;
	char *cp, out[16384];
	size_t n, len = 0, len2 = 0, certs;
	int fd;

	if (!t_env())
		return;
	certs = t_count_certs();
	k = EVP_EC_gen("P-256");
	c12 = SSL_CTX_new(TLS_client_method());
	c13 = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_max_proto_version(c12, TLS1_2_VERSION);
	SSL_CTX_set_min_proto_version(c13, TLS1_3_VERSION);
	SSL_CTX_load_verify_locations(c12, t_e.cafile, NULL);
	SSL_CTX_load_verify_locations(c13, t_e.cafile, NULL);
	SSL_CTX_set_verify(c12, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_verify(c13, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(c12, SSL_SESS_CACHE_CLIENT);

	/* full handshake: tls-unique is the client's Finished */
	ssl = t_tls_open(c12, NULL, &fd);
	CHECK(ssl != NULL);
	if (ssl != NULL) {
		n = SSL_get_finished(ssl, fin, sizeof(fin));
		CHECK(n == 12);
		cp = common_b64_encode(fin, n, false, 0);
		der = t_csr(k, "pop-device", "DNS:pop.example.com", cp, &len);
		free(cp);
		CHECK(t_tls_post(ssl, T_EST "pop/simpleenroll", der, len, out,
		    sizeof(out)) == 200);
		sess = SSL_get1_session(ssl);
		SSL_free(ssl);
		close(fd);
	}
	CHECK(t_count_certs() == certs + 1);

	/* the same CSR on another connection: refused */
	ssl = t_tls_open(c12, NULL, &fd);
	if (ssl != NULL && der != NULL) {
		CHECK(t_tls_post(ssl, T_EST "pop/simpleenroll", der, len, out,
		    sizeof(out)) == 400);
		CHECK(strstr(out, "tls-unique proof of possession failed") !=
		    NULL);
		SSL_free(ssl);
		close(fd);
	}

	/* resumed: tls-unique is the server's Finished */
	ssl = sess != NULL ? t_tls_open(c12, sess, &fd) : NULL;
	CHECK(ssl != NULL);
	if (ssl != NULL) {
		CHECK(SSL_session_reused(ssl) == 1);
		n = SSL_get_peer_finished(ssl, fin, sizeof(fin));
		cp = common_b64_encode(fin, n, false, 0);
		der2 = t_csr(k, "pop-device", "DNS:pop.example.com", cp,
		    &len2);
		free(cp);
		CHECK(t_tls_post(ssl, T_EST "pop/simpleenroll", der2, len2,
		    out, sizeof(out)) == 200);
		SSL_free(ssl);
		close(fd);
	}
	free(der2);
	der2 = NULL;

	/* no challengePassword */
	ssl = t_tls_open(c12, NULL, &fd);
	if (ssl != NULL) {
		der2 = t_csr(k, "pop-device", "DNS:pop.example.com", NULL,
		    &len2);
		CHECK(t_tls_post(ssl, T_EST "pop/simpleenroll", der2, len2,
		    out, sizeof(out)) == 400);
		CHECK(strstr(out, "challengePassword") != NULL);
		SSL_free(ssl);
		close(fd);
	}

	/* TLS 1.3 */
	ssl = t_tls_open(c13, NULL, &fd);
	CHECK(ssl != NULL);
	if (ssl != NULL && der != NULL) {
		CHECK(t_tls_post(ssl, T_EST "pop/simpleenroll", der, len, out,
		    sizeof(out)) == 400);
		CHECK(strstr(out, "needs TLS 1.2") != NULL);
		SSL_free(ssl);
		close(fd);
	}
	/* a label without pop_required ignores the attribute */
	ssl = t_tls_open(c13, NULL, &fd);
	if (ssl != NULL && der != NULL) {
		CHECK(t_tls_post(ssl, T_EST "basic/simpleenroll", der, len,
		    out, sizeof(out)) == 200);
		SSL_free(ssl);
		close(fd);
	}
	CHECK(t_count_certs() == certs + 3);
	free(der);
	free(der2);
	SSL_SESSION_free(sess);
	SSL_CTX_free(c12);
	SSL_CTX_free(c13);
	EVP_PKEY_free(k);
}

/* Application-data records the client received (msg callback). */
static int t_app_records;

static void
t_msg_cb(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	(void)version;
	(void)ssl;
	(void)arg;
	if (!write_p && content_type == SSL3_RT_HEADER && len >= 1 &&
	    ((const unsigned char *)buf)[0] == SSL3_RT_APPLICATION_DATA)
		t_app_records++;
}

/*
 * A response is one TLS record (status line, headers and body written
 * together), for a GET and for an error.
 */
static void
test_single_write(void)
{
	static const char *const paths[] = {
		T_EST "cacerts", T_EST "nosuchlabel/cacerts"
	};
	char req[512], out[16384], *eoh, *cl;
	SSL_CTX *c12;
	SSL *ssl;
	size_t i, got, want;
	int fd, n;

	if (!t_env())
		return;
	c12 = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_max_proto_version(c12, TLS1_2_VERSION);
	SSL_CTX_load_verify_locations(c12, t_e.cafile, NULL);
	SSL_CTX_set_verify(c12, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_msg_callback(c12, t_msg_cb);
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if ((ssl = t_tls_open(c12, NULL, &fd)) == NULL) {
			CHECK(!"connect");
			continue;
		}
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
		    "\r\n", paths[i], t_e.host);
		t_app_records = 0;
		CHECK(SSL_write(ssl, req, (int)strlen(req)) > 0);
		got = 0;
		out[0] = '\0';
		for (;;) {
			if ((eoh = strstr(out, "\r\n\r\n")) != NULL &&
			    (cl = strcasestr(out, "\r\nContent-Length:")) !=
			    NULL && cl < eoh) {
				want = (size_t)(eoh + 4 - out) +
				    (size_t)atol(cl + 17);
				if (got >= want)
					break;
			}
			if (got + 1 >= sizeof(out) || (n = SSL_read(ssl,
			    out + got, (int)(sizeof(out) - got - 1))) <= 0)
				break;
			got += (size_t)n;
			out[got] = '\0';
		}
		CHECK(strncmp(out, "HTTP/1.1 ", 9) == 0);
		CHECK(t_app_records == 1);
		if (t_app_records != 1)
			fprintf(stderr, "%s: %d records\n", paths[i],
			    t_app_records);
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	SSL_CTX_free(c12);
}

/* qsort comparator for doubles. */
static int
t_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Headers and body leave together, without the 40 ms Nagle/delayed-ACK
 * stall that servers writing them separately show: requests on one
 * kept-alive connection take far less than 40 ms each (median).
 */
static void
test_latency(void)
{
	double t[T_LATENCY_RUNS], total;
	struct t_resp r;
	char url[T_URL_MAX + 64];
	CURL *cu;
	long status;
	size_t i, ok = 0;

	if (!t_env())
		return;
	if ((cu = curl_easy_init()) == NULL) {
		CHECK(!"curl");
		return;
	}
	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "%s" T_EST "cacerts", t_e.base);
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_CAINFO, t_e.cafile);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, t_body_cb);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &r);
	for (i = 0; i < T_LATENCY_RUNS; i++) {
		free(r.body);
		r.body = NULL;
		r.len = 0;
		status = 0;
		total = 1.0;
		if (curl_easy_perform(cu) == CURLE_OK &&
		    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status) ==
		    CURLE_OK && status == 200 && curl_easy_getinfo(cu,
		    CURLINFO_TOTAL_TIME, &total) == CURLE_OK)
			ok++;
		t[i] = total;
	}
	CHECK(ok == T_LATENCY_RUNS);
	qsort(t, T_LATENCY_RUNS, sizeof(t[0]), t_cmp_double);
	if (t[T_LATENCY_RUNS / 2] >= T_LATENCY_MAX)
		fprintf(stderr, "latency: median %.1f ms\n",
		    t[T_LATENCY_RUNS / 2] * 1000);
	CHECK(t[T_LATENCY_RUNS / 2] < T_LATENCY_MAX);
	free(r.body);
	curl_easy_cleanup(cu);
}

/* The certificate of version n of CA ca_id (NULL when none). */
static X509 *
t_ca_version_cert(const char *ca_id, unsigned n)
{
	struct common_error err;
	const json_t *v;
	const char *pem;
	json_t *rec;
	X509 *x = NULL;
	size_t i;

	common_error_clear(&err);
	if ((rec = ca_get(t_e.ca, NULL, ca_id, &err)) == NULL)
		return NULL;
	json_array_foreach(json_object_get(rec, "versions"), i, v) {
		if (json_integer_value(json_object_get(v, "version")) !=
		    (json_int_t)n)
			continue;
		pem = json_string_value(json_object_get(v, "certificate"));
		if (pem != NULL)
			x = common_x509_from_pem(pem, strlen(pem));
	}
	json_decref(rec);
	return x;
}

/* Re-enrolls the holder of crt/key (same key k, same names) over mTLS
 * alone; the new certificate or NULL. */
static X509 *
t_reenroll_cert(const char *cn, const char *sans, EVP_PKEY *k,
    const char *crt, const char *key)
{
	struct t_resp r;
	unsigned char *der;
	size_t len;
	X509 *x = NULL;

	if ((der = t_csr(k, cn, sans, NULL, &len)) == NULL)
		return NULL;
	if (t_post("", "simplereenroll", der, len, 64, "\n", NULL, crt, key,
	    &r) == 200)
		x = t_check_issued(&r, k);
	else
		fprintf(stderr, "reenroll %s: %ld %s\n", cn, r.status,
		    r.body != NULL ? r.body : "");
	t_resp_free(&r);
	free(der);
	return x;
}

/*
 * After the issuing CA is renewed with a new key, a client certificate
 * issued under the old key still authenticates (the old version is a
 * trust anchor while valid) and re-enrolls; the new certificate is
 * signed by the new version, and it authenticates in turn (the anchors
 * were refreshed).
 */
/* The certificates of the default label's cacerts answer; NULL when it
 * is not a 200 with a certs-only PKCS#7. */
static STACK_OF(X509) *
t_cacerts(void)
{
	STACK_OF(X509) *certs = NULL;
	struct t_resp r;

	if (t_get(T_EST "cacerts", &r) == 200)
		certs = t_p7_certs(r.body, r.len);
	t_resp_free(&r);
	return certs;
}

/* True when certs holds a certificate equal to x. */
static bool
t_certs_have(STACK_OF(X509) *certs, X509 *x)
{
	int i;

	for (i = 0; i < sk_X509_num(certs); i++)
		if (X509_cmp(sk_X509_value(certs, i), x) == 0)
			return true;
	return false;
}

static void
test_ca_renewal(void)
{
	static const char *cn = "ca-renewal";
	static const char *sans = "DNS:ca-renewal.example.com";
	struct common_error err;
	char crt[T_PATH_MAX], key[T_PATH_MAX];
	EVP_PKEY *k = NULL;
	X509 *a = NULL, *b = NULL, *c = NULL, *v1 = NULL, *v2 = NULL;
	STACK_OF(X509) *before = NULL, *again = NULL, *after = NULL;
	json_t *rec;

	if (!t_env())
		return;
	/* cacerts twice (the second answer is the one kept) */
	before = t_cacerts();
	again = t_cacerts();
	CHECK(before != NULL && sk_X509_num(before) == 2);
	CHECK(again != NULL && sk_X509_num(again) == 2 &&
	    X509_cmp(sk_X509_value(again, 0), sk_X509_value(before, 0)) == 0);
	a = t_enroll("", cn, sans, &k);
	CHECK(a != NULL);
	if (a == NULL)
		goto out;
	/* authenticates once (the anchors are built before the renewal) */
	t_write_pair("ca-renewal-a", a, k, crt, key, sizeof(crt));
	b = t_reenroll_cert(cn, sans, k, crt, key);
	CHECK(b != NULL);
	if (b == NULL)
		goto out;

	common_error_clear(&err);
	rec = lifecycle_ca_renew(t_e.lc, t_e.issuing_id, true, 0, "test",
	    &err);
	CHECK(rec != NULL && json_integer_value(json_object_get(rec,
	    "current_version")) == 2);
	if (rec == NULL)
		fprintf(stderr, "CA renewal: %s\n", err.msg);
	json_decref(rec);
	v1 = t_ca_version_cert(t_e.issuing_id, 1);
	v2 = t_ca_version_cert(t_e.issuing_id, 2);
	CHECK(v1 != NULL && v2 != NULL);
	if (v1 == NULL || v2 == NULL)
		goto out;
	CHECK(EVP_PKEY_eq(X509_get0_pubkey(v1), X509_get0_pubkey(v2)) != 1);
	CHECK(X509_verify(b, X509_get0_pubkey(v1)) == 1);
	/* cacerts follows the renewal: the new version first, the old one
	 * still listed while valid (never the answer kept from before) */
	after = t_cacerts();
	CHECK(after != NULL && sk_X509_num(after) == 3);
	CHECK(after != NULL && X509_cmp(sk_X509_value(after, 0), v2) == 0);
	CHECK(t_certs_have(after, v1));

	/* the certificate issued under the old key re-enrolls ... */
	t_write_pair("ca-renewal-b", b, k, crt, key, sizeof(crt));
	c = t_reenroll_cert(cn, sans, k, crt, key);
	CHECK(c != NULL);
	if (c == NULL)
		goto out;
	/* ... and its successor chains to the new version */
	CHECK(X509_verify(c, X509_get0_pubkey(v2)) == 1);
	CHECK(X509_verify(c, X509_get0_pubkey(v1)) != 1);
	CHECK(X509_check_issued(v2, c) == X509_V_OK);
	X509_free(b);
	t_write_pair("ca-renewal-c", c, k, crt, key, sizeof(crt));
	b = t_reenroll_cert(cn, sans, k, crt, key);
	CHECK(b != NULL);
	CHECK(b != NULL && X509_verify(b, X509_get0_pubkey(v2)) == 1);
out:
	sk_X509_pop_free(before, X509_free);
	sk_X509_pop_free(again, X509_free);
	sk_X509_pop_free(after, X509_free);
	X509_free(v2);
	X509_free(v1);
	X509_free(c);
	X509_free(b);
	X509_free(a);
	EVP_PKEY_free(k);
}

/* Last: stops the server and checks the store. */
static void
test_shutdown(void)
{
	if (!t_e.started)
		return;
	t_env_stop();
	curl_global_cleanup();
}

static void
test_start(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CHECK(t_env());
}

/* est_basic_parse on its own (RFC 7617): what it accepts, what it
 * refuses and with which reason. */
static void
test_basic_parse(void)
{
	static const struct {
		const char	*h;
		const char	*user;		/* NULL: refused */
		const char	*pass_or_why;
	} cases[] = {
		{ "Basic ZGV2aWNlOnNlY3JldA==", "device", "secret" },
		{ "basic\tZGV2aWNlOnNlY3JldA==", "device", "secret" },
		{ "Basic Ym9iOg==", "bob", "" },			/* bob: */
		{ "Basic Y2Fyb2w6YTpiOmM=", "carol", "a:b:c" },
		{ "Bearer abc", NULL, "not HTTP Basic" },
		{ "BasicZGV2aWNlOnNlY3JldA==", NULL, "not HTTP Basic" },
		{ "Basic !!!", NULL, "malformed" },
		{ "Basic bm9jb2xvbg==", NULL, "malformed" },	/* nocolon */
		{ "Basic OnB3", NULL, "wrong user name" },		/* :pw */
	};
	char user[EST_USERNAME_MAX + 1], why[256], *pass, longh[256];
	char longu[EST_USERNAME_MAX + 4], *b64;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = '\0';
		rc = est_basic_parse(cases[i].h, user, sizeof(user), &pass,
		    why, sizeof(why));
		if (cases[i].user != NULL) {
			CHECK(rc == 0);
			CHECK(rc == 0 && strcmp(user, cases[i].user) == 0 &&
			    strcmp(pass, cases[i].pass_or_why) == 0);
		} else {
			CHECK(rc == -1 && pass == NULL);
			CHECK(strstr(why, cases[i].pass_or_why) != NULL);
		}
		est_basic_forget(pass);
	}
	/* a user name one byte over the limit: the answer of a wrong one */
	memset(longu, 'u', EST_USERNAME_MAX + 1);
	memcpy(longu + EST_USERNAME_MAX + 1, ":x", 3);
	b64 = common_b64_encode(longu, strlen(longu), false, 0);
	CHECK(b64 != NULL);
	snprintf(longh, sizeof(longh), "Basic %s", b64 != NULL ? b64 : "");
	free(b64);
	CHECK(est_basic_parse(longh, user, sizeof(user), &pass, why,
	    sizeof(why)) == -1 && pass == NULL &&
	    strstr(why, "wrong user name") != NULL);
}

const struct test_case test_cases[] = {
	TEST(test_start),
	TEST(test_routing),
	TEST(test_cacerts),
	TEST(test_csrattrs),
	TEST(test_simpleenroll),
	TEST(test_refusals),
	TEST(test_auth_basic),
	TEST(test_basic_parse),
	TEST(test_auth_cert),
	TEST(test_reenroll),
	TEST(test_serverkeygen),
	TEST(test_manual),
	TEST(test_tls_unique),
	TEST(test_latency),
	TEST(test_single_write),
	TEST(test_ca_renewal),
	TEST(test_shutdown),
	{ 0 }
};
