/*
 * protocols/est/auth.c — who is asking (RFC 7030 §3.2.3, §3.3.2):
 *
 *   basic           HTTP Basic against the est_client table: PBKDF2-SHA256
 *                   hashes compared in constant time; a client bound to
 *                   labels may use only those ("" is the default label).
 *   cert            a TLS client certificate that chains to the label's
 *                   trust bundle (or, without one, to pkid's active CAs:
 *                   every still-valid version of their certificates, so
 *                   certificates issued before a CA renewal with a new
 *                   key keep working),
 *                   is valid now and, when a pkid CA issued it, is the
 *                   registry's unrevoked certificate of that serial.
 *   basic_or_cert   either; basic_and_cert: both.
 *
 * Missing or wrong credentials get 401 with WWW-Authenticate: Basic
 * realm="<est.realm>"; a client whose credentials are right but who is
 * not bound to the label gets 403.
 *
 * Verified-credential cache: checking a password costs 100 000 PBKDF2
 * iterations, which is the point for a wrong one but a waste for an
 * enrolment client that polls. A password that verified is remembered for
 * EST_CRED_TTL_MS as HMAC-SHA256(per-process random key, stored hash ||
 * 0 || user || 0 || password): the password itself is never kept, the
 * tag is useless outside this process, and it stops matching as soon as
 * the stored hash changes (new password) or the client is deleted (the
 * store is read on every request). Failures are never cached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "protocols/est/est.h"

#define EST_CA_CERTS_MAX	1024	/* pkid CAs considered per check */
#define EST_TIME_TEXT_MAX	32	/* an RFC 3339 time + NUL */

enum est_basic_verdict {
	EST_BASIC_NONE,		/* no Authorization header */
	EST_BASIC_OK,
	EST_BASIC_BAD,		/* malformed, unknown user, wrong password */
	EST_BASIC_LABEL		/* right password, label not allowed */
};

/* ---- verified-credential cache ------------------------------------------- */

/* The cache tag of (stored hash, user, password). 0 or -1. */
static int
est_cred_tag(const struct est *e, const char *hash, const char *user,
    const char *pass, unsigned char tag[32])
{
	size_t hl = strlen(hash), ul = strlen(user), pl = strlen(pass);
	size_t n = hl + 1 + ul + 1 + pl;
	unsigned char *buf;
	unsigned int tlen = 0;
	int rc = -1;

	if ((buf = malloc(n)) == NULL)
		return -1;
	memcpy(buf, hash, hl);
	buf[hl] = '\0';
	memcpy(buf + hl + 1, user, ul);
	buf[hl + 1 + ul] = '\0';
	memcpy(buf + hl + 1 + ul + 1, pass, pl);
	if (HMAC(EVP_sha256(), e->cred_key, sizeof(e->cred_key), buf, n, tag,
	    &tlen) != NULL && tlen == 32)
		rc = 0;
	OPENSSL_cleanse(buf, n);
	free(buf);
	return rc;
}

static bool
est_cred_cached(struct est *e, const unsigned char tag[32])
{
	uint64_t now = common_mono_ms();
	bool hit = false;
	size_t i;

	pthread_mutex_lock(&e->cred_lock);
	for (i = 0; i < EST_CRED_CACHE_MAX; i++) {
		if (e->creds[i].expires_ms > now &&
		    CRYPTO_memcmp(e->creds[i].tag, tag, 32) == 0) {
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&e->cred_lock);
	return hit;
}

/* Remembers tag, in a free or expired slot, else over the one closest
 * to expiry. */
static void
est_cred_remember(struct est *e, const unsigned char tag[32])
{
	uint64_t now = common_mono_ms();
	size_t i, pick = 0;

	pthread_mutex_lock(&e->cred_lock);
	for (i = 0; i < EST_CRED_CACHE_MAX; i++) {
		if (e->creds[i].expires_ms <= now) {
			pick = i;
			break;
		}
		if (e->creds[i].expires_ms < e->creds[pick].expires_ms)
			pick = i;
	}
	memcpy(e->creds[pick].tag, tag, 32);
	e->creds[pick].expires_ms = now + EST_CRED_TTL_MS;
	pthread_mutex_unlock(&e->cred_lock);
}

/* ---- HTTP Basic ---------------------------------------------------------- */

/* True when the client record allows label (no "labels" or an empty list:
 * every label). */
static bool
est_client_label_ok(const json_t *rec, const char *label)
{
	const json_t *labels = json_object_get(rec, "labels"), *v;
	const char *s;
	size_t i;

	if (!json_is_array(labels) || json_array_size(labels) == 0)
		return true;
	json_array_foreach(labels, i, v) {
		if ((s = json_string_value(v)) != NULL && strcmp(s, label) == 0)
			return true;
	}
	return false;
}

/*
 * Checks the Authorization: Basic header of r against the store. Fills
 * r->user when the header names one. The password is wiped before
 * returning.
 */
/*
 * Parses an HTTP Basic Authorization header value h (RFC 7617). 0 with
 * the user name in user (1..EST_USERNAME_MAX bytes) and the password in
 * *password (to cleanse and free(): est_basic_forget); -1 with the
 * client's reason in why and nothing kept. A name or password over its
 * limit gets the same answer as a wrong one.
 */
int
est_basic_parse(const char *h, char *user, size_t userlen, char **password,
    char *why, size_t whylen)
{
	unsigned char *raw = NULL;
	size_t rawlen = 0, ulen;
	char *colon;
	int rc = -1;

	*password = NULL;
	if (strlen(h) > EST_AUTH_HEADER_MAX || strncasecmp(h, "Basic", 5) !=
	    0 || (h[5] != ' ' && h[5] != '\t')) {
		snprintf(why, whylen, "the Authorization header is not HTTP "
		    "Basic");
		goto out;
	}
	if (common_b64_decode(h + 6, strlen(h + 6), false, &raw, &rawlen) ==
	    -1 || memchr(raw, '\0', rawlen) != NULL ||
	    (colon = strchr((char *)raw, ':')) == NULL) {
		snprintf(why, whylen, "the Basic credentials are malformed");
		goto out;
	}
	*colon = '\0';
	ulen = strlen((char *)raw);
	if (ulen == 0 || ulen > EST_USERNAME_MAX || ulen >= userlen ||
	    strlen(colon + 1) > COMMON_PASSWORD_MAX) {
		snprintf(why, whylen, "wrong user name or password");
		goto out;
	}
	if ((*password = strdup(colon + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	memcpy(user, raw, ulen + 1);
	rc = 0;
out:
	if (raw != NULL) {
		OPENSSL_cleanse(raw, rawlen);
		free(raw);
	}
	return rc;
}

void
est_basic_forget(char *password)
{
	if (password != NULL)
		OPENSSL_clear_free(password, strlen(password));
}

static enum est_basic_verdict
est_basic(struct est_req *r, char *why, size_t whylen)
{
	struct est *e = r->e;
	const char *h, *hash;
	unsigned char tag[32];
	char *pass = NULL;
	json_t *rec = NULL;
	bool ok;
	enum est_basic_verdict v = EST_BASIC_BAD;

	h = evhttp_find_header(evhttp_request_get_input_headers(r->req),
	    "Authorization");
	if (h == NULL)
		return EST_BASIC_NONE;
	if (est_basic_parse(h, r->user, sizeof(r->user), &pass, why,
	    whylen) == -1)
		goto out;
	rec = store_est_client_get(e->st, NULL, r->user);
	hash = json_string_value(json_object_get(rec, "password_hash"));
	if (rec != NULL && hash != NULL && est_cred_tag(e, hash, r->user,
	    pass, tag) == 0 && est_cred_cached(e, tag)) {
		ok = true;
	} else {
		/* an unknown user costs the same time as a known one */
		ok = common_password_verify(hash != NULL ? hash :
		    e->dummy_hash, pass) && rec != NULL && hash != NULL;
		if (ok && est_cred_tag(e, hash, r->user, pass, tag) == 0)
			est_cred_remember(e, tag);
	}
	if (!ok) {
		snprintf(why, whylen, "wrong user name or password");
		goto out;
	}
	if (!est_client_label_ok(rec, r->label->name)) {
		snprintf(why, whylen, "EST client \"%s\" may not use label %s",
		    r->user, est_label_show(r->label));
		v = EST_BASIC_LABEL;
		goto out;
	}
	v = EST_BASIC_OK;
out:
	est_basic_forget(pass);
	OPENSSL_cleanse(tag, sizeof(tag));
	json_decref(rec);
	return v;
}

/* ---- client certificates ------------------------------------------------- */

X509_STORE *
est_trust_load(const char *path)
{
	STACK_OF(X509) *certs = NULL;
	X509_STORE *st = NULL, *ret = NULL;
	char *pem = NULL;
	size_t len = 0;
	int i;

	if (common_file_read(path, EST_TRUST_FILE_MAX, &pem, &len) == -1) {
		log_err("est: trust bundle %s: missing, unreadable or larger "
		    "than %d bytes", path, EST_TRUST_FILE_MAX);
		goto out;
	}
	certs = common_x509s_from_pem(pem, len, EST_TRUST_CERTS_MAX);
	if (certs == NULL || sk_X509_num(certs) == 0) {
		log_err("est: trust bundle %s: no certificate, malformed PEM "
		    "or more than %d certificates", path, EST_TRUST_CERTS_MAX);
		goto out;
	}
	if ((st = X509_STORE_new()) == NULL)
		goto out;
	for (i = 0; i < sk_X509_num(certs); i++) {
		if (X509_STORE_add_cert(st, sk_X509_value(certs, i)) != 1) {
			log_err("est: trust bundle %s: certificate %d: %s",
			    path, i + 1, common_ssl_error());
			goto out;
		}
	}
	ret = st;	/* steal */
	st = NULL;
out:
	X509_STORE_free(st);
	sk_X509_pop_free(certs, X509_free);
	free(pem);
	return ret;
}

/*
 * pkid's CA certificates as trust anchors, shared by every request: the
 * store of the still-valid certificate versions of the active CAs (so a
 * client certificate issued before a CA renewal with a new key still
 * authenticates while the old version is valid) and every version of
 * every CA (to tell that a pkid CA issued a certificate). Building them
 * parses every certificate, so it is done only when a digest of the CA
 * list (ids, states, version serials and whether each version is still
 * valid) differs from the one they were built from; each check reads the
 * CA list, as the inventory is the truth. One cache per process (the
 * est context has no slot for it) behind est_trust_lock; each user holds
 * a reference, so a rebuild never frees anchors in use.
 */
struct est_trust {
	unsigned char	 digest[SHA256_DIGEST_LENGTH];
	X509_STORE	*anchors;	/* valid versions of active CAs */
	STACK_OF(X509)	*all;		/* every version of every CA */
	unsigned int	 refs;		/* the cache's and the users' */
};

static pthread_mutex_t est_trust_lock = PTHREAD_MUTEX_INITIALIZER;
static struct est_trust *est_trust_cur;	/* guarded by est_trust_lock */

static const char *
est_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* True when version v is still valid at now_text (RFC 3339, as the CA
 * records write notAfter; the fixed-width text orders like time). A
 * record without a readable date counts as valid: verification checks
 * the validity itself. */
static bool
est_version_valid(const json_t *v, const char *now_text)
{
	const char *na = est_str(v, "not_after");

	return na == NULL || strlen(na) != strlen(now_text) ||
	    strcmp(na, now_text) > 0;
}

/* True when CA record rec is active: its valid versions are anchors. */
static bool
est_ca_active(const json_t *rec)
{
	const char *state = est_str(rec, "state");

	return state != NULL && strcmp(state, "active") == 0;
}

/* Adds s and its terminating NUL to the digest (NULL as ""). 0 or -1. */
static int
est_digest_str(EVP_MD_CTX *md, const char *s)
{
	if (s == NULL)
		s = "";
	return EVP_DigestUpdate(md, s, strlen(s) + 1) == 1 ? 0 : -1;
}

/* The digest of what the trust anchors are built from in list. 0 or
 * -1. */
static int
est_trust_digest(const json_t *list, const char *now_text,
    unsigned char out[SHA256_DIGEST_LENGTH])
{
	const json_t *rec, *v;
	EVP_MD_CTX *md;
	size_t i, j;
	int rc = -1;

	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	json_array_foreach(list, i, rec) {
		if (i >= EST_CA_CERTS_MAX)
			break;
		if (est_digest_str(md, est_str(rec, "id")) == -1 ||
		    est_digest_str(md, est_ca_active(rec) ? "a" : "-") == -1)
			goto out;
		json_array_foreach(json_object_get(rec, "versions"), j, v) {
			if (est_digest_str(md, est_str(v, "serial")) == -1 ||
			    est_digest_str(md, est_version_valid(v,
			    now_text) ? "v" : "x") == -1)
				goto out;
		}
		if (est_digest_str(md, "") == -1)	/* end of a CA */
			goto out;
	}
	if (EVP_DigestFinal_ex(md, out, NULL) != 1)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

/* Drops one reference (under est_trust_lock); frees t with the last. */
static void
est_trust_unref_locked(struct est_trust *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	X509_STORE_free(t->anchors);
	sk_X509_pop_free(t->all, X509_free);
	free(t);
}

/* Builds the anchors of list (with one reference); NULL on failure. */
static struct est_trust *
est_trust_build(const json_t *list, const char *now_text,
    const unsigned char digest[SHA256_DIGEST_LENGTH])
{
	struct est_trust *t, *ret = NULL;
	const json_t *rec, *v;
	const char *pem;
	X509 *x;
	size_t i, j;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->refs = 1;
	memcpy(t->digest, digest, sizeof(t->digest));
	if ((t->anchors = X509_STORE_new()) == NULL ||
	    (t->all = sk_X509_new_null()) == NULL)
		goto out;
	json_array_foreach(list, i, rec) {
		if (i >= EST_CA_CERTS_MAX)
			break;
		json_array_foreach(json_object_get(rec, "versions"), j, v) {
			if ((pem = est_str(v, "certificate")) == NULL ||
			    (x = common_x509_from_pem(pem,
			    strlen(pem))) == NULL)
				continue;
			/* the store takes its own reference */
			if (est_ca_active(rec) && est_version_valid(v,
			    now_text) && X509_STORE_add_cert(t->anchors,
			    x) != 1) {
				X509_free(x);
				goto out;
			}
			if (sk_X509_push(t->all, x) == 0) {
				X509_free(x);
				goto out;
			}
		}
	}
	ret = t;	/* steal */
	t = NULL;
out:
	est_trust_unref_locked(t);
	return ret;
}

/*
 * The current trust anchors of pkid's CAs, rebuilt first when the CA
 * list changed since they were built. The caller holds a reference and
 * gives it back with est_trust_put. NULL on failure (logged).
 */
static struct est_trust *
est_trust_get(struct est *e)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char now_text[EST_TIME_TEXT_MAX];
	struct est_trust *t = NULL, *fresh;
	json_t *list;

	common_time_rfc3339(common_now(), now_text, sizeof(now_text));
	if ((list = ca_list(e->ca, NULL)) == NULL ||
	    est_trust_digest(list, now_text, digest) == -1) {
		log_err("est: reading pkid's CA certificates failed");
		goto out;
	}
	pthread_mutex_lock(&est_trust_lock);
	if (est_trust_cur == NULL || memcmp(est_trust_cur->digest, digest,
	    sizeof(digest)) != 0) {
		if ((fresh = est_trust_build(list, now_text,
		    digest)) == NULL) {
			pthread_mutex_unlock(&est_trust_lock);
			log_err("est: loading pkid's CA certificates failed");
			goto out;
		}
		est_trust_unref_locked(est_trust_cur);
		est_trust_cur = fresh;	/* steal */
	}
	t = est_trust_cur;
	t->refs++;
	pthread_mutex_unlock(&est_trust_lock);
out:
	json_decref(list);
	return t;
}

/* Gives back a reference of est_trust_get; accepts NULL. */
static void
est_trust_put(struct est_trust *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&est_trust_lock);
	est_trust_unref_locked(t);
	pthread_mutex_unlock(&est_trust_lock);
}

/* True when x's DER is the DER the registry record holds. */
static bool
est_issued_same(const json_t *issued, X509 *x)
{
	const char *b64 = json_string_value(json_object_get(issued, "der"));
	unsigned char *want = NULL, *have = NULL;
	size_t wlen = 0, hlen = 0;
	bool same = false;

	if (b64 != NULL &&
	    common_b64_decode(b64, strlen(b64), false, &want, &wlen) == 0 &&
	    common_x509_to_der(x, &have, &hlen) == 0)
		same = wlen == hlen && memcmp(want, have, wlen) == 0;
	free(want);
	free(have);
	return same;
}

/*
 * The registry view of a certificate a pkid CA signed: it must be the
 * record's own DER and not revoked. true when acceptable.
 */
static bool
est_registry_ok(struct est *e, X509 *x, char *reason, size_t reasonlen)
{
	struct common_error err;
	char serial[EST_SERIAL_MAX];
	const char *status;
	json_t *issued;
	bool ok = false;

	common_error_clear(&err);
	if (common_x509_serial_hex(x, serial, sizeof(serial)) == -1 ||
	    (issued = lifecycle_issued_get(e->lc, serial, &err)) == NULL) {
		snprintf(reason, reasonlen, "the client certificate names a "
		    "pkid CA as issuer but pkid never issued it");
		return false;
	}
	status = json_string_value(json_object_get(issued, "status"));
	if (!est_issued_same(issued, x))
		snprintf(reason, reasonlen, "the client certificate names a "
		    "pkid CA as issuer but pkid never issued it");
	else if (status == NULL || strcmp(status, "valid") != 0)
		snprintf(reason, reasonlen, "the client certificate (serial "
		    "%s) is revoked", serial);
	else
		ok = true;
	json_decref(issued);
	return ok;
}

bool
est_cert_verify(struct est *e, const struct est_label *l, SSL *ssl,
    X509 *peer, char *reason, size_t reasonlen)
{
	struct est_trust *pk = NULL;
	STACK_OF(X509) *chain;
	X509_STORE_CTX *ctx = NULL;
	X509 *issuer;
	bool ok = false, ours = false;
	int i;

	if (peer == NULL) {
		snprintf(reason, reasonlen, "no TLS client certificate");
		return false;
	}
	if ((pk = est_trust_get(e)) == NULL) {
		snprintf(reason, reasonlen, "the client certificate cannot be "
		    "checked now");
		goto out;
	}
	/* The peer's chain (without the leaf on the server side) serves as
	 * untrusted intermediates; an intermediate in the trust bundle is
	 * an anchor of its own (PARTIAL_CHAIN), as for an IDevID issuer. */
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, l->trust != NULL ? l->trust :
	    pk->anchors, peer, ssl != NULL ? SSL_get_peer_cert_chain(ssl) :
	    NULL) != 1) {
		snprintf(reason, reasonlen, "the client certificate cannot be "
		    "checked now");
		goto out;
	}
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx),
	    common_now());
	if (X509_verify_cert(ctx) != 1) {
		snprintf(reason, reasonlen, "the client certificate is not "
		    "accepted: %s", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	/* issued by pkid: the certificate after the leaf is a pkid CA */
	chain = X509_STORE_CTX_get0_chain(ctx);
	if (sk_X509_num(chain) >= 2) {
		issuer = sk_X509_value(chain, 1);
		for (i = 0; i < sk_X509_num(pk->all) && !ours; i++)
			ours = X509_cmp(sk_X509_value(pk->all, i),
			    issuer) == 0;
	}
	if (ours && !est_registry_ok(e, peer, reason, reasonlen))
		goto out;
	ok = true;
out:
	X509_STORE_CTX_free(ctx);
	est_trust_put(pk);
	return ok;
}

/* ---- the label's mode ---------------------------------------------------- */

/* What the mode asks for, for the 401 text. */
static const char *
est_auth_wants(enum est_auth_mode m)
{
	switch (m) {
	case EST_AUTH_BASIC:
		return "HTTP Basic credentials";
	case EST_AUTH_CERT:
		return "a TLS client certificate";
	case EST_AUTH_BASIC_AND_CERT:
		return "HTTP Basic credentials and a TLS client certificate";
	default:
		return "HTTP Basic credentials or a TLS client certificate";
	}
}

/* 401 with the challenge; realm quotes are dropped from the config. */
static void
est_unauthorized(struct est_req *r, const char *why)
{
	const char *realm = r->e->cf->est.realm != NULL ?
	    r->e->cf->est.realm : "";
	char hdr[256];
	size_t i, o = 0;

	o = (size_t)snprintf(hdr, sizeof(hdr), "Basic realm=\"");
	for (i = 0; realm[i] != '\0' && o + 2 < sizeof(hdr); i++)
		if (realm[i] != '"' && realm[i] != '\\' &&
		    (unsigned char)realm[i] >= 0x20)
			hdr[o++] = realm[i];
	hdr[o++] = '"';
	hdr[o] = '\0';
	est_header(r, "WWW-Authenticate", hdr);
	est_error(r, 401, "authentication required (%s): %s",
	    est_auth_wants(r->label->auth), why);
}

int
est_auth(struct est_req *r)
{
	enum est_auth_mode m = r->label->auth;
	enum est_basic_verdict bv = EST_BASIC_NONE;
	char bwhy[EST_REASON_MAX] = "", cwhy[EST_REASON_MAX] = "";
	bool basic_ok, use_cert = m != EST_AUTH_BASIC, use_basic =
	    m != EST_AUTH_CERT;

	if (use_cert) {
		r->cert_ok = est_cert_verify(r->e, r->label, r->ssl, r->peer,
		    cwhy, sizeof(cwhy));
		if (r->peer != NULL)
			common_x509_serial_hex(r->peer, r->peer_serial,
			    sizeof(r->peer_serial));
	}
	/* basic_or_cert with a good certificate needs no password check */
	if (use_basic && !(m == EST_AUTH_BASIC_OR_CERT && r->cert_ok))
		bv = est_basic(r, bwhy, sizeof(bwhy));
	if (bv == EST_BASIC_NONE)
		snprintf(bwhy, sizeof(bwhy), "%s", use_cert && r->peer == NULL ?
		    "no credentials were sent" : "no HTTP Basic credentials");
	basic_ok = bv == EST_BASIC_OK;
	if (bv == EST_BASIC_OK)
		snprintf(r->who, sizeof(r->who), "est:%s", r->user);
	else if (r->cert_ok)
		snprintf(r->who, sizeof(r->who), "cert:%s", r->peer_serial);

	switch (m) {
	case EST_AUTH_BASIC:
		if (basic_ok)
			return 0;
		break;
	case EST_AUTH_CERT:
		if (r->cert_ok)
			return 0;
		est_unauthorized(r, cwhy);
		return -1;
	case EST_AUTH_BASIC_OR_CERT:
		if (basic_ok || r->cert_ok)
			return 0;
		if (bv == EST_BASIC_NONE && r->peer != NULL) {
			est_unauthorized(r, cwhy);
			return -1;
		}
		break;
	default:	/* basic_and_cert */
		if (basic_ok && r->cert_ok)
			return 0;
		if (bv == EST_BASIC_OK || bv == EST_BASIC_LABEL) {
			if (!r->cert_ok) {
				est_unauthorized(r, cwhy);
				return -1;
			}
		}
		break;
	}
	if (bv == EST_BASIC_LABEL) {
		est_error(r, 403, "%s", bwhy);
		return -1;
	}
	est_unauthorized(r, bwhy);
	return -1;
}

json_t *
est_auth_reenroll(struct est_req *r)
{
	struct common_error err;
	char serial[EST_SERIAL_MAX];
	const char *status;
	json_t *issued = NULL, *ret = NULL;
	json_int_t not_after;

	if (r->peer == NULL) {
		est_error(r, 403, "simplereenroll needs the TLS client "
		    "certificate being renewed (RFC 7030 §4.2.2)");
		goto out;
	}
	common_error_clear(&err);
	if (common_x509_serial_hex(r->peer, serial, sizeof(serial)) == -1 ||
	    (issued = lifecycle_issued_get(r->e->lc, serial, &err)) == NULL) {
		if (err.code == COMMON_E_INTERNAL)
			est_error(r, 500, "the certificate registry cannot be "
			    "read now");
		else
			est_error(r, 403, "the TLS client certificate was not "
			    "issued by pkid: only pkid certificates can be "
			    "re-enrolled");
		goto out;
	}
	status = json_string_value(json_object_get(issued, "status"));
	not_after = json_integer_value(json_object_get(issued, "not_after"));
	if (!est_issued_same(issued, r->peer)) {
		est_error(r, 403, "the TLS client certificate was not issued "
		    "by pkid: only pkid certificates can be re-enrolled");
		goto out;
	}
	if (status == NULL || strcmp(status, "valid") != 0) {
		est_error(r, 403, "the TLS client certificate (serial %s) is "
		    "revoked", serial);
		goto out;
	}
	if (not_after <= (json_int_t)common_now()) {
		est_error(r, 403, "the TLS client certificate (serial %s) has "
		    "expired", serial);
		goto out;
	}
	ret = issued;	/* steal */
	issued = NULL;
out:
	json_decref(issued);
	return ret;
}
