/* Unit tests for common/: encodings, buffers, ids, errors, time, files,
 * PEM/DER, logging, metrics, password hashing and the libcurl-on-libevent
 * driver. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "tests/unit/test.h"

/* Decodes s and compares with the expected bytes (want NULL: must fail). */
static bool
b64_decodes_to(const char *s, bool url, const char *want, size_t wantlen)
{
	unsigned char *out = NULL;
	size_t outlen = 0;
	bool ok;

	if (common_b64_decode(s, strlen(s), url, &out, &outlen) == -1)
		return want == NULL && out == NULL;
	ok = want != NULL && outlen == wantlen &&
	    memcmp(out, want, wantlen) == 0 && out[outlen] == '\0';
	free(out);
	return ok;
}

static void
test_b64_vectors(void)
{
	/* RFC 4648 section 10. */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob",
	    "fooba", "foobar" };
	static const char *const std[] = { "", "Zg==", "Zm8=", "Zm9v",
	    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	static const char *const url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg",
	    "Zm9vYmE", "Zm9vYmFy" };
	const unsigned char hi[] = { 0xfb, 0xff };
	size_t i;
	char *s;

	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		s = common_b64_encode(plain[i], strlen(plain[i]), false, 0);
		CHECK_STR(s, std[i]);
		free(s);
		s = common_b64_encode(plain[i], strlen(plain[i]), true, 0);
		CHECK_STR(s, url[i]);
		free(s);
		CHECK(b64_decodes_to(std[i], false, plain[i],
		    strlen(plain[i])));
		CHECK(b64_decodes_to(url[i], true, plain[i],
		    strlen(plain[i])));
		/* Missing padding is accepted by the standard decoder. */
		CHECK(b64_decodes_to(url[i], false, plain[i],
		    strlen(plain[i])));
	}
	s = common_b64_encode(hi, sizeof(hi), false, 0);
	CHECK_STR(s, "+/8=");
	free(s);
	s = common_b64_encode(hi, sizeof(hi), true, 0);
	CHECK_STR(s, "-_8");
	free(s);
	CHECK(b64_decodes_to("+/8=", false, (const char *)hi, 2));
	CHECK(b64_decodes_to("-_8", true, (const char *)hi, 2));
}

static void
test_b64_roundtrip(void)
{
	unsigned char data[300];
	unsigned char *out;
	size_t n, outlen;
	int wraps[] = { 0, 4, 64, 76 };
	size_t w;
	int url;
	char *s;

	CHECK(RAND_bytes(data, sizeof(data)) == 1);
	for (n = 0; n <= sizeof(data); n += (n < 20 ? 1 : 37)) {
		for (url = 0; url <= 1; url++) {
			for (w = 0; w < sizeof(wraps) / sizeof(wraps[0]);
			    w++) {
				if (url && wraps[w] != 0)
					continue;
				s = common_b64_encode(data, n, url, wraps[w]);
				CHECK(s != NULL);
				if (s == NULL)
					continue;
				out = NULL;
				CHECK(common_b64_decode(s, strlen(s), url,
				    &out, &outlen) == 0);
				CHECK(out != NULL && outlen == n &&
				    memcmp(out, data, n) == 0);
				free(out);
				free(s);
			}
		}
	}
}

static void
test_b64_wrap(void)
{
	unsigned char data[100];
	char *s, *line, *nl;
	size_t lines = 0;

	memset(data, 0xa5, sizeof(data));
	/* 48 bytes are exactly 64 characters: one line, one newline. */
	s = common_b64_encode(data, 48, false, 64);
	CHECK(s != NULL && strlen(s) == 65 && s[64] == '\n' &&
	    strchr(s, '\n') == s + 64);
	free(s);

	s = common_b64_encode(data, sizeof(data), false, 64);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	/* 100 bytes: 136 characters -> 64 + 64 + 8, each line "\n"-ended. */
	CHECK(strlen(s) == 136 + 3);
	CHECK(s[strlen(s) - 1] == '\n');
	for (line = s; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		CHECK(nl != NULL);
		if (nl == NULL)
			break;
		CHECK(nl - line <= 64 && nl - line > 0);
		lines++;
	}
	CHECK(lines == 3);
	free(s);

	s = common_b64_encode("", 0, false, 64);
	CHECK_STR(s, "");
	free(s);
}

static void
test_b64_whitespace(void)
{
	/* "foobar" split by CRLF, LF, spaces and tabs, as EST peers send. */
	CHECK(b64_decodes_to("Zm9v\r\nYmFy\r\n", false, "foobar", 6));
	CHECK(b64_decodes_to(" Zm\t9vY\nmFy ", false, "foobar", 6));
	CHECK(b64_decodes_to("Zm9vYg=\r\n=\r\n", false, "foob", 4));
	CHECK(b64_decodes_to("\r\n", false, "", 0));
	/* base64url is strict. */
	CHECK(b64_decodes_to("Zm9v\nYmFy", true, NULL, 0));
	CHECK(b64_decodes_to("Zm9v YmFy", true, NULL, 0));
	CHECK(b64_decodes_to("Zm9vYmFy\n", true, NULL, 0));
}

static void
test_b64_invalid(void)
{
	unsigned char *out = (unsigned char *)"x";
	size_t outlen = 7;

	CHECK(b64_decodes_to("Zm9v!", false, NULL, 0));
	CHECK(b64_decodes_to("Zm9v-_", false, NULL, 0));	/* url chars */
	CHECK(b64_decodes_to("Zm+v", true, NULL, 0));	/* std chars */
	CHECK(b64_decodes_to("Zm/v", true, NULL, 0));
	CHECK(b64_decodes_to("Zg==", true, NULL, 0));	/* url: no padding */
	CHECK(b64_decodes_to("Z", false, NULL, 0));	/* impossible length */
	CHECK(b64_decodes_to("Zm9vY", false, NULL, 0));
	CHECK(b64_decodes_to("Zm9vY", true, NULL, 0));
	CHECK(b64_decodes_to("Zg=", false, NULL, 0));	/* half padding */
	CHECK(b64_decodes_to("Zg===", false, NULL, 0));
	CHECK(b64_decodes_to("Zm9v=", false, NULL, 0));
	CHECK(b64_decodes_to("=", false, NULL, 0));
	CHECK(b64_decodes_to("Zg==Zg==", false, NULL, 0));	/* after pad */
	CHECK(b64_decodes_to("Zg==\nx", false, NULL, 0));
	CHECK(b64_decodes_to("Zh==", false, NULL, 0));	/* stray bits */
	CHECK(b64_decodes_to("Zm9=", false, NULL, 0));
	CHECK(common_b64_decode("Zm\0v", 4, false, &out, &outlen) == -1);
	CHECK(out == NULL && outlen == 0);
	CHECK(common_b64_decode("Zm9v\x80", 5, false, &out, &outlen) == -1);
}

static void
test_hex(void)
{
	const unsigned char b[] = { 0x00, 0x01, 0xab, 0xff };
	char out[9];

	common_hex(b, sizeof(b), out);
	CHECK_STR(out, "0001abff");
	common_hex(b, 0, out);
	CHECK_STR(out, "");
}

static void
test_buf_max(void)
{
	struct common_buf b;
	char *s;
	size_t len;

	common_buf_init(&b, 10);
	CHECK(common_buf_add(&b, "0123456789", 10) == 0);
	CHECK(b.len == 10 && b.data[10] == '\0');
	CHECK(common_buf_add(&b, "x", 1) == -1);
	CHECK(common_buf_addstr(&b, "y") == -1);
	CHECK(common_buf_addf(&b, "%d", 7) == -1);
	CHECK(b.len == 10 && memcmp(b.data, "0123456789", 11) == 0);
	CHECK(common_buf_add(&b, "", 0) == 0);
	common_buf_free(&b);
	CHECK(b.data == NULL && b.len == 0);

	common_buf_init(&b, 10);
	CHECK(common_buf_addf(&b, "%s", "abcdef") == 0);
	CHECK(common_buf_addf(&b, "%s", "ghijk") == -1);	/* 11 > 10 */
	CHECK(b.len == 6);
	CHECK_STR((char *)b.data, "abcdef");
	CHECK(common_buf_addf(&b, "%d", 1234) == 0);
	CHECK_STR((char *)b.data, "abcdef1234");
	s = common_buf_steal(&b, &len);
	CHECK_STR(s, "abcdef1234");
	CHECK(len == 10 && b.data == NULL && b.len == 0 && b.max == 10);
	free(s);

	/* An empty buffer steals as "". */
	s = common_buf_steal(&b, &len);
	CHECK_STR(s, "");
	CHECK(len == 0);
	free(s);
	common_buf_free(&b);
	common_buf_free(NULL);
}

static void
test_buf_grow(void)
{
	struct common_buf b;
	size_t i;
	bool ok = true;

	common_buf_init(&b, 1 << 20);
	for (i = 0; i < 10000; i++)
		if (common_buf_addf(&b, "%05zu,", i) == -1)
			ok = false;
	CHECK(ok);
	CHECK(b.len == 60000 && b.data[b.len] == '\0');
	CHECK(memcmp(b.data + 59994, "09999,", 6) == 0);
	CHECK(common_buf_add(&b, "\0bin\0", 5) == 0 && b.len == 60005);
	common_buf_free(&b);
}

static void
test_random_id(void)
{
	char a[64], b[64], small[10];
	size_t i;

	CHECK(common_random_id("ca-", a, sizeof(a)) == 0);
	CHECK(common_random_id("ca-", b, sizeof(b)) == 0);
	CHECK(strlen(a) == 3 + 16 && strncmp(a, "ca-", 3) == 0);
	for (i = 3; a[i] != '\0'; i++)
		CHECK((a[i] >= '0' && a[i] <= '9') ||
		    (a[i] >= 'a' && a[i] <= 'f'));
	CHECK(strcmp(a, b) != 0);
	CHECK(common_id_valid(a));
	CHECK(common_random_id("", a, 17) == 0 && strlen(a) == 16);
	CHECK(common_random_id("", a, 16) == -1);
	CHECK(common_random_id("prefix-", small, sizeof(small)) == -1);
	CHECK(small[0] == '\0');
}

static void
test_id_valid(void)
{
	char long64[65], long65[66];

	memset(long64, 'a', 64);
	long64[64] = '\0';
	memset(long65, 'a', 65);
	long65[65] = '\0';
	CHECK(common_id_valid("ca-0123abcd"));
	CHECK(common_id_valid("A.b_c-9"));
	CHECK(common_id_valid("x"));
	CHECK(common_id_valid(long64));
	CHECK(!common_id_valid(long65));
	CHECK(!common_id_valid(""));
	CHECK(!common_id_valid(NULL));
	CHECK(!common_id_valid("."));
	CHECK(!common_id_valid(".."));
	CHECK(!common_id_valid(".hidden"));
	CHECK(!common_id_valid("a/b"));
	CHECK(!common_id_valid("a b"));
	CHECK(!common_id_valid("a%2e"));
	CHECK(!common_id_valid("caf\xc3\xa9"));
}

static void
test_error_first_wins(void)
{
	struct common_error e;

	common_error_clear(&e);
	CHECK(e.code == COMMON_E_NONE && e.msg[0] == '\0');
	common_error_set(&e, COMMON_E_NOTFOUND, "ca %s not found", "ca-1");
	common_error_set(&e, COMMON_E_INTERNAL, "later failure");
	CHECK(e.code == COMMON_E_NOTFOUND);
	CHECK_STR(e.msg, "ca ca-1 not found");
	common_error_clear(&e);
	common_error_set(&e, COMMON_E_CONFLICT, "%s", "second");
	CHECK(e.code == COMMON_E_CONFLICT);
	CHECK_STR(e.msg, "second");
	common_error_set(NULL, COMMON_E_INVALID, "ignored");
	common_error_clear(NULL);
	CHECK_STR(common_error_name(COMMON_E_INVALID), "invalid");
	CHECK_STR(common_error_name(COMMON_E_NOTFOUND), "not_found");
	CHECK_STR(common_error_name(COMMON_E_INTERNAL), "internal");
	CHECK_STR(common_error_name(COMMON_E__MAX), "unknown");
}

static void
test_time(void)
{
	ASN1_TIME *a;
	char ts[32];
	time_t t, before;
	uint64_t m1, m2;

	common_time_rfc3339(0, ts, sizeof(ts));
	CHECK_STR(ts, "1970-01-01T00:00:00Z");
	common_time_rfc3339(1795790921, ts, sizeof(ts));
	CHECK_STR(ts, "2026-11-27T14:48:41Z");
	common_time_rfc3339(0, ts, 5);
	CHECK_STR(ts, "");

	before = time(NULL);
	common_clock_set_offset(86400);
	t = common_now();
	CHECK(t >= before + 86400 && t <= time(NULL) + 86400);
	common_clock_set_offset(0);
	CHECK(common_now() - time(NULL) <= 1);

	m1 = common_mono_ms();
	usleep(20000);
	m2 = common_mono_ms();
	CHECK(m2 >= m1 + 19);

	a = ASN1_TIME_set(NULL, 1795790921);	/* UTCTime */
	CHECK(a != NULL && common_asn1_time(a, &t) == 0 && t == 1795790921);
	ASN1_TIME_free(a);
	a = ASN1_TIME_set(NULL, (time_t)2600000000LL);	/* GeneralizedTime */
	CHECK(a != NULL && common_asn1_time(a, &t) == 0 &&
	    t == (time_t)2600000000LL);
	ASN1_TIME_free(a);
	CHECK(common_asn1_time(NULL, &t) == -1);
}

/* Number of directory entries other than "." and "..". */
static int
dir_count(const char *path)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_files(void)
{
	char dir[512], path[512], *data = NULL;
	struct stat st;
	size_t len = 0;

	CHECK(common_path(dir, sizeof(dir), "%s/a/b//c", test_tmpdir()) == 0);
	CHECK(common_mkdirs(dir, 0700) == 0);
	CHECK(common_mkdirs(dir, 0700) == 0);	/* idempotent */
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(common_path(path, sizeof(path), "%s/key.pem", dir) == 0);

	CHECK(common_file_write(path, "secret-1\n", 9, 0600) == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600);
	CHECK(common_file_read(path, 100, &data, &len) == 0);
	CHECK(len == 9 && data != NULL && strcmp(data, "secret-1\n") == 0);
	free(data);

	/* Overwrite: new content and mode, and no temporary file left. */
	CHECK(common_file_write(path, "public", 6, 0644) == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644);
	CHECK(common_file_read(path, 6, &data, &len) == 0);
	CHECK(len == 6 && data != NULL && strcmp(data, "public") == 0);
	free(data);
	CHECK(dir_count(dir) == 1);

	/* Limits and failures. */
	data = (char *)"untouched";
	CHECK(common_file_read(path, 5, &data, &len) == -1 && errno == EFBIG);
	CHECK(data == NULL);
	CHECK(common_file_read(dir, 100, &data, &len) == -1);
	CHECK(common_path(path, sizeof(path), "%s/missing", dir) == 0);
	CHECK(common_file_read(path, 100, &data, &len) == -1 &&
	    errno == ENOENT);
	CHECK(common_path(path, sizeof(path), "%s/nodir/x", dir) == 0);
	CHECK(common_file_write(path, "x", 1, 0600) == -1 && errno == ENOENT);
	CHECK(dir_count(dir) == 1);

	/* mkdirs over a regular file fails with ENOTDIR. */
	CHECK(common_path(path, sizeof(path), "%s/key.pem/sub", dir) == 0);
	CHECK(common_mkdirs(path, 0700) == -1);
	CHECK(common_path(path, sizeof(path), "%s/key.pem", dir) == 0);
	CHECK(common_mkdirs(path, 0700) == -1 && errno == ENOTDIR);

	/* Empty file. */
	CHECK(common_path(path, sizeof(path), "%s/empty", dir) == 0);
	CHECK(common_file_write(path, "", 0, 0600) == 0);
	CHECK(common_file_read(path, 0, &data, &len) == 0 && len == 0 &&
	    data != NULL && data[0] == '\0');
	free(data);
}

static void
test_path(void)
{
	char out[8];

	CHECK(common_path(out, sizeof(out), "%s/%d", "ab", 1234) == 0);
	CHECK_STR(out, "ab/1234");
	CHECK(common_path(out, sizeof(out), "%s/%d", "ab", 12345) == -1);
}

/* ---- PEM helpers ---------------------------------------------------- */

static EVP_PKEY *
test_key(void)
{
	return EVP_EC_gen("P-256");
}

static X509 *
test_cert(EVP_PKEY *k, long serial, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *n;

	if (x == NULL)
		return NULL;
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, k);
	if (X509_sign(x, k, EVP_sha256()) <= 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* PEM text of a fresh CSR signed by k, to free(). */
static char *
test_csr_pem(EVP_PKEY *k)
{
	X509_REQ *r = X509_REQ_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long n;

	if (r == NULL || bio == NULL)
		goto out;
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN",
	    MBSTRING_ASC, (const unsigned char *)"req.example", -1, -1, 0);
	X509_REQ_set_pubkey(r, k);
	/* Ed25519 signs without a separate digest */
	if (X509_REQ_sign(r, k, EVP_PKEY_is_a(k, "ED25519") ? NULL :
	    EVP_sha256()) <= 0)
		goto out;
	if (PEM_write_bio_X509_REQ(bio, r) != 1)
		goto out;
	n = BIO_get_mem_data(bio, &data);
	if ((s = malloc((size_t)n + 1)) == NULL)
		goto out;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
out:
	BIO_free(bio);
	X509_REQ_free(r);
	return s;
}

/* Parses a+b as a CSR; true when the outcome is `want`. */
static bool
csr_parses(const char *a, const char *b, bool want)
{
	char text[8192];
	X509_REQ *r;

	if (common_path(text, sizeof(text), "%s%s", a, b) == -1)
		return false;
	r = common_csr_from_pem(text, strlen(text));
	X509_REQ_free(r);
	ERR_clear_error();
	return (r != NULL) == want;
}

static void
test_pem_x509(void)
{
	EVP_PKEY *k = test_key();
	X509 *x1 = test_cert(k, 0xabcdef, "one"), *x2 = test_cert(k, 2, "two");
	X509 *y = NULL;
	STACK_OF(X509) *sk;
	char *p1, *p2, two[8192], serial[41];
	unsigned char *der = NULL;
	const unsigned char *dp;
	size_t derlen = 0;

	CHECK(k != NULL && x1 != NULL && x2 != NULL);
	if (k == NULL || x1 == NULL || x2 == NULL)
		goto out;
	p1 = common_x509_to_pem(x1);
	p2 = common_x509_to_pem(x2);
	CHECK(p1 != NULL && strncmp(p1, "-----BEGIN CERTIFICATE-----\n",
	    28) == 0);
	y = common_x509_from_pem(p1, strlen(p1));
	CHECK(y != NULL && X509_cmp(x1, y) == 0);
	X509_free(y);

	/* Exactly one: a second certificate or garbage is refused. */
	snprintf(two, sizeof(two), "%s%s", p1, p2);
	CHECK(common_x509_from_pem(two, strlen(two)) == NULL);
	snprintf(two, sizeof(two), "%sjunk\n", p1);
	CHECK(common_x509_from_pem(two, strlen(two)) == NULL);
	snprintf(two, sizeof(two), "subject=CN=one\n%s\n\n", p1);
	y = common_x509_from_pem(two, strlen(two));
	CHECK(y != NULL);
	X509_free(y);
	CHECK(common_x509_from_pem("", 0) == NULL);
	CHECK(common_x509_from_pem(p1, strlen(p1) - 30) == NULL);

	/* Stacks. */
	snprintf(two, sizeof(two), "%s\n%s", p1, p2);
	sk = common_x509s_from_pem(two, strlen(two), 5);
	CHECK(sk != NULL && sk_X509_num(sk) == 2 &&
	    X509_cmp(sk_X509_value(sk, 0), x1) == 0 &&
	    X509_cmp(sk_X509_value(sk, 1), x2) == 0);
	sk_X509_pop_free(sk, X509_free);
	CHECK(common_x509s_from_pem(two, strlen(two), 1) == NULL);
	sk = common_x509s_from_pem(" \n", 2, 5);
	CHECK(sk != NULL && sk_X509_num(sk) == 0);
	sk_X509_pop_free(sk, X509_free);
	snprintf(two, sizeof(two), "%s-----BEGIN CERT", p1);
	CHECK(common_x509s_from_pem(two, strlen(two), 5) == NULL);

	/* DER and serial. */
	CHECK(common_x509_to_der(x1, &der, &derlen) == 0);
	dp = der;
	y = d2i_X509(NULL, &dp, (long)derlen);
	CHECK(y != NULL && X509_cmp(x1, y) == 0 && dp == der + derlen);
	X509_free(y);
	free(der);
	CHECK(common_x509_serial_hex(x1, serial, sizeof(serial)) == 0);
	CHECK_STR(serial, "ABCDEF");
	CHECK(common_x509_serial_hex(x1, serial, 4) == -1);

	free(p1);
	free(p2);
out:
	X509_free(x1);
	X509_free(x2);
	EVP_PKEY_free(k);
	ERR_clear_error();
}

static void
test_pem_keys(void)
{
	EVP_PKEY *k = test_key(), *k2;
	char *priv, *pub, *data;
	BIO *bio;
	long n;

	CHECK(k != NULL);
	if (k == NULL)
		return;
	priv = common_privkey_to_pem(k);
	pub = common_pubkey_to_pem(k);
	CHECK(priv != NULL && strstr(priv, "-----BEGIN PRIVATE KEY-----") ==
	    priv);
	CHECK(pub != NULL && strstr(pub, "-----BEGIN PUBLIC KEY-----") ==
	    pub);
	k2 = common_privkey_from_pem(priv, strlen(priv));
	CHECK(k2 != NULL && EVP_PKEY_eq(k, k2) == 1);
	EVP_PKEY_free(k2);
	/* A public key is not a private key. */
	CHECK(common_privkey_from_pem(pub, strlen(pub)) == NULL);
	CHECK(common_privkey_from_pem("garbage", 7) == NULL);
	/* Encrypted keys are refused, never prompted for. */
	bio = BIO_new(BIO_s_mem());
	CHECK(bio != NULL && PEM_write_bio_PKCS8PrivateKey(bio, k,
	    EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"passw0rd") == 1);
	if (bio != NULL) {
		n = BIO_get_mem_data(bio, &data);
		CHECK(n > 0 && strstr(data, "ENCRYPTED PRIVATE KEY") != NULL);
		CHECK(common_privkey_from_pem(data, (size_t)n) == NULL);
		BIO_free(bio);
	}
	free(priv);
	free(pub);
	EVP_PKEY_free(k);
	ERR_clear_error();
}

static void
test_pem_csr(void)
{
	EVP_PKEY *k = test_key();
	char *csr = test_csr_pem(k), *cert = NULL, *old = NULL, *p;
	X509 *x = test_cert(k, 1, "c");

	CHECK(csr != NULL && x != NULL);
	if (csr == NULL || x == NULL)
		goto out;
	cert = common_x509_to_pem(x);
	CHECK(csr_parses(csr, "", true));
	CHECK(csr_parses(csr, "\r\n  \n", true));
	CHECK(csr_parses("leading explanatory text\n", csr, true));
	CHECK(csr_parses(csr, "garbage", false));
	CHECK(csr_parses(csr, "\n-----END CERTIFICATE REQUEST-----\n", false));
	CHECK(csr_parses(csr, csr, false));		/* two requests */
	CHECK(csr_parses(csr, cert, false));		/* request + cert */
	CHECK(csr_parses(cert, "", false));		/* a certificate */
	CHECK(csr_parses("", "", false));
	CHECK(common_csr_from_pem(csr, strlen(csr) - 40) == NULL);

	/* The older "NEW CERTIFICATE REQUEST" label is accepted. */
	old = malloc(strlen(csr) + 16);
	CHECK(old != NULL);
	if (old != NULL) {
		p = strstr(csr, "\n") + 1;
		snprintf(old, strlen(csr) + 16,
		    "-----BEGIN NEW CERTIFICATE REQUEST-----\n%.*s"
		    "-----END NEW CERTIFICATE REQUEST-----\n",
		    (int)(strstr(csr, "-----END") - p), p);
		CHECK(csr_parses(old, "", true));
	}
out:
	free(old);
	free(cert);
	free(csr);
	X509_free(x);
	EVP_PKEY_free(k);
	ERR_clear_error();
}

/*
 * The PUBLIC KEY PEM of a received CSR's SubjectPublicKeyInfo is the
 * text the key's own encoder writes, for every key type pkid takes.
 */
static void
test_pem_spki(void)
{
	static const char *const types[] = { "P-256", "RSA", "ED25519" };
	EVP_PKEY *k;
	X509_REQ *r;
	char *csr, *a, *b;
	size_t i;

	CHECK(common_spki_to_pem(NULL) == NULL);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (i == 0)
			k = EVP_EC_gen(types[i]);
		else if (i == 1)
			k = EVP_RSA_gen(2048);
		else
			k = EVP_PKEY_Q_keygen(NULL, NULL, types[i]);
		CHECK(k != NULL);
		csr = test_csr_pem(k);
		CHECK(csr != NULL);
		r = csr != NULL ? common_csr_from_pem(csr, strlen(csr)) : NULL;
		CHECK(r != NULL);
		a = r != NULL ? common_spki_to_pem(
		    X509_REQ_get_X509_PUBKEY(r)) : NULL;
		b = r != NULL ? common_pubkey_to_pem(
		    X509_REQ_get0_pubkey(r)) : NULL;
		CHECK(a != NULL && b != NULL && strcmp(a, b) == 0);
		free(a);
		free(b);
		X509_REQ_free(r);
		free(csr);
		EVP_PKEY_free(k);
	}
	ERR_clear_error();
}

static void
test_ssl_error(void)
{
	const char *s;

	ERR_clear_error();
	ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
	s = common_ssl_error();
	CHECK(s != NULL && strstr(s, "no start line") != NULL);
	CHECK(ERR_peek_error() == 0);
	s = common_ssl_error();
	CHECK(s != NULL && s[0] != '\0');
}

/* ---- logging ------------------------------------------------------- */

/* Runs fn with stderr redirected to a file and returns what it wrote. */
static char *
capture_stderr(void (*fn)(void))
{
	char path[512], *out = NULL;
	size_t len;
	int fd, saved;

	if (common_path(path, sizeof(path), "%s/stderr.txt",
	    test_tmpdir()) == -1)
		return NULL;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return NULL;
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	if (common_file_read(path, 65536, &out, &len) == -1)
		return NULL;
	return out;
}

static void
log_some(void)
{
	common_log_set_level(COMMON_LOG_INFO);
	log_debug("hidden %d", 1);
	log_info("hello %s", "world");
	log_err("two\nlines");
	common_log_set_level(COMMON_LOG_ERR);
	log_warn("hidden too");
	common_log_set_level(COMMON_LOG_INFO);
}

static void
test_log(void)
{
	enum common_log_level l;
	char *out;

	CHECK(common_log_level_parse("debug", &l) == 0 &&
	    l == COMMON_LOG_DEBUG);
	CHECK(common_log_level_parse("error", &l) == 0 && l == COMMON_LOG_ERR);
	CHECK(common_log_level_parse("warn", &l) == 0 && l == COMMON_LOG_WARN);
	CHECK(common_log_level_parse("info", &l) == 0 && l == COMMON_LOG_INFO);
	CHECK(common_log_level_parse("INFO", &l) == -1);
	CHECK(common_log_level_parse("verbose", &l) == -1);

	out = capture_stderr(log_some);
	CHECK(out != NULL);
	if (out == NULL)
		return;
	/* "2026-11-27T14:28:41Z INFO hello world\n...ERROR two?lines\n" */
	CHECK(strlen(out) == 38 + 37);
	CHECK(out[4] == '-' && out[10] == 'T' && out[19] == 'Z');
	CHECK(strncmp(out + 20, " INFO hello world\n", 18) == 0);
	CHECK(strncmp(out + 58, " ERROR two?lines\n", 17) == 0);
	CHECK(strstr(out, "hidden") == NULL);
	free(out);
}

/* ---- metrics ------------------------------------------------------- */

static void
test_metrics(void)
{
	struct common_buf b;
	int i;

	/* No series yet: an empty but valid string. */
	common_buf_init(&b, 4096);
	CHECK(common_metric_render(&b) == 0);
	CHECK(b.data != NULL && b.len == 0 && b.data[0] == '\0');
	common_buf_free(&b);

	common_metric_inc("t_requests_total", "door=\"mgmt\"");
	common_metric_inc("t_requests_total", "door=\"acme\"");
	common_metric_inc("t_requests_total", "door=\"mgmt\"");
	common_metric_inc("t_issued_total", "");
	common_metric_inc("t_issued_total", NULL);
	for (i = 0; i < 3; i++)
		common_metric_inc("t_issued_total", "ca=\"ca-1\"");
	/* Invalid names and labels are dropped. */
	common_metric_inc("1bad", "");
	common_metric_inc("bad name", "");
	common_metric_inc("t_nl_total", "a=\"x\ny\"");

	common_buf_init(&b, 4096);
	CHECK(common_metric_render(&b) == 0);
	CHECK_STR((char *)b.data,
	    "# TYPE t_issued_total counter\n"
	    "t_issued_total 2\n"
	    "t_issued_total{ca=\"ca-1\"} 3\n"
	    "# TYPE t_requests_total counter\n"
	    "t_requests_total{door=\"acme\"} 1\n"
	    "t_requests_total{door=\"mgmt\"} 2\n");
	common_buf_free(&b);

	/* A buffer too small fails instead of truncating silently. */
	common_buf_init(&b, 40);
	CHECK(common_metric_render(&b) == -1);
	common_buf_free(&b);
}

#define THREADS		4
#define THREAD_INCS	20000

static void *
inc_many(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < THREAD_INCS; i++)
		common_metric_inc("t_threads_total", "");
	return NULL;
}

/* Concurrent increments are not lost. */
static void
test_metrics_threads(void)
{
	pthread_t t[THREADS];
	struct common_buf b;
	char want[64];
	int i, started = 0;

	for (i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, inc_many, NULL) == 0)
			started++;
	CHECK(started == THREADS);
	for (i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	snprintf(want, sizeof(want), "\nt_threads_total %d\n",
	    started * THREAD_INCS);
	common_buf_init(&b, 4096);
	CHECK(common_metric_render(&b) == 0);
	CHECK(b.data != NULL && strstr((char *)b.data, want) != NULL);
	common_buf_free(&b);
}

static void
count_series(void)
{
	char labels[32];
	int i;

	for (i = 0; i < 5000; i++) {
		snprintf(labels, sizeof(labels), "n=\"%d\"", i);
		common_metric_inc("t_bound_total", labels);
	}
}

static void
test_metrics_bound(void)
{
	struct common_buf b;
	const char *p;
	size_t series = 0;
	char *logged;

	logged = capture_stderr(count_series);
	/* Logged once, not once per dropped series. */
	CHECK(logged != NULL && strstr(logged, "dropping") != NULL &&
	    strstr(strstr(logged, "dropping") + 1, "dropping") == NULL);
	free(logged);
	common_buf_init(&b, 1 << 20);
	CHECK(common_metric_render(&b) == 0);
	for (p = (char *)b.data; p != NULL && *p != '\0';
	    p = strchr(p, '\n') + 1)
		if (*p != '#')
			series++;
	CHECK(series == 4096);	/* METRIC_SERIES_MAX */
	common_buf_free(&b);
}

/* A hash made elsewhere (Python hashlib.pbkdf2_hmac, salt 00..0f, 1000
 * iterations): pins the algorithm and the stored layout. */
#define PW_VECTOR "pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==$" \
	"yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ="

static void
test_password_roundtrip(void)
{
	char *h1, *h2;

	h1 = common_password_hash("s3cret-pass", COMMON_PASSWORD_ITER_MIN);
	h2 = common_password_hash("s3cret-pass", COMMON_PASSWORD_ITER_MIN);
	CHECK(h1 != NULL && h2 != NULL);
	if (h1 == NULL || h2 == NULL)
		goto out;
	CHECK(strncmp(h1, "pbkdf2-sha256$1000$", 19) == 0);
	CHECK(strchr(h1, '\n') == NULL);
	CHECK(strcmp(h1, h2) != 0);	/* fresh salt each time */
	CHECK(common_password_verify(h1, "s3cret-pass"));
	CHECK(common_password_verify(h2, "s3cret-pass"));
	CHECK(!common_password_verify(h1, "s3cret-pasS"));
	CHECK(!common_password_verify(h1, "s3cret-pas"));
	CHECK(!common_password_verify(h1, "s3cret-pass "));
	CHECK(!common_password_verify(h1, ""));
	CHECK(!common_password_verify(h1, NULL));
	CHECK(!common_password_verify(NULL, "s3cret-pass"));
	CHECK(common_password_verify(PW_VECTOR, "correct horse"));
	CHECK(!common_password_verify(PW_VECTOR, "correct horsE"));
out:
	free(h1);
	free(h2);
}

static void
test_password_default_iterations(void)
{
	char *h, want[32];

	h = common_password_hash("", COMMON_PASSWORD_ITERATIONS);
	snprintf(want, sizeof(want), "pbkdf2-sha256$%u$",
	    (unsigned)COMMON_PASSWORD_ITERATIONS);
	CHECK(h != NULL && strncmp(h, want, strlen(want)) == 0);
	CHECK(common_password_verify(h, ""));
	CHECK(!common_password_verify(h, "x"));
	free(h);
}

static void
test_password_bad_args(void)
{
	char *big, *h;

	CHECK(common_password_hash(NULL, COMMON_PASSWORD_ITERATIONS) == NULL);
	CHECK(common_password_hash("pw", COMMON_PASSWORD_ITER_MIN - 1) == NULL);
	CHECK(common_password_hash("pw", COMMON_PASSWORD_ITER_MAX + 1) == NULL);
	CHECK(common_password_hash("pw", 0) == NULL);
	big = malloc(COMMON_PASSWORD_MAX + 2);
	CHECK(big != NULL);
	if (big == NULL)
		return;
	memset(big, 'a', COMMON_PASSWORD_MAX);
	big[COMMON_PASSWORD_MAX] = '\0';
	h = common_password_hash(big, COMMON_PASSWORD_ITER_MIN);
	CHECK(h != NULL && common_password_verify(h, big));
	big[COMMON_PASSWORD_MAX] = 'a';
	big[COMMON_PASSWORD_MAX + 1] = '\0';
	CHECK(common_password_hash(big, COMMON_PASSWORD_ITER_MIN) == NULL);
	CHECK(!common_password_verify(h, big));
	free(h);
	free(big);
}

/* Flips one character of the stored form at each position in turn: every
 * variant must be refused (a changed count, salt or hash no longer
 * matches; a broken layout does not parse). */
static void
test_password_tampered(void)
{
	char s[] = PW_VECTOR;
	size_t i, n = strlen(s);
	int accepted = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];

		s[i] = (char)(c == 'A' ? 'B' : c == '$' ? '%' :
		    c == '=' ? 'A' : 'A');
		if (common_password_verify(s, "correct horse"))
			accepted++;
		s[i] = c;
	}
	CHECK(accepted == 0);
	CHECK(common_password_verify(s, "correct horse"));
}

static void
test_password_malformed(void)
{
	static const char *bad[] = {
		"",
		"pbkdf2-sha256",
		"pbkdf2-sha256$",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==$",
		"pbkdf2-sha1$1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"PBKDF2-SHA256$1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		/* count: leading zero, sign, space, empty, out of range */
		"pbkdf2-sha256$01000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$+1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$ 1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$999$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$10000001$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$99999999999999999999$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		/* salt: short, long, unpadded, whitespace, bad character */
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0O$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODxA=$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0OD\nw=$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0OD!==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=",
		/* hash: short, trailing data, extra field, url alphabet */
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumG==",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ= ",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=$",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKumGQ=\n",
		"pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==$"
		    "yRTMTwbMbo9G0VfjobWqerzuuxe7BETNTErBbKKu-GQ=",
		NULL
	};
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		if (common_password_verify(bad[i], "correct horse")) {
			fprintf(stderr, "accepted malformed hash %zu\n", i);
			CHECK(!"malformed hash accepted");
		}
	}
}

/* ---- common_curlev ---------------------------------------------------- */

#define CURLEV_TEST_WAIT_MS	10000	/* a phase that should end sooner */
#define CURLEV_TEST_SETTLE_MS	200	/* looking for calls that must not come */
#define CURLEV_TEST_BODY_MAX	4096

/* The test's event loop, its HTTP server and what done() saw. */
struct curlev_test {
	struct event_base	*base;
	int			 ndone;		/* done() calls, all transfers */
	int			 stop_at;	/* loopbreak at this many */
	bool			 held;		/* the server got /hold */
};

/* One transfer the test makes. */
struct curlev_test_xfer {
	CURL			*easy;
	int			 calls;		/* done() calls for it */
	CURLcode		 rc;
	long			 status;
	struct common_buf	 body;
};

/* The server: "/hold" is never answered, anything else gets 200 with
 * "answer to PATH". */
static void
curlev_test_serve(struct evhttp_request *req, void *arg)
{
	struct curlev_test *t = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *b;

	if (strcmp(uri, "/hold") == 0) {
		t->held = true;
		event_base_loopbreak(t->base);
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add_printf(b, "answer to %s", uri);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static size_t
curlev_test_write(char *p, size_t size, size_t n, void *arg)
{
	struct curlev_test_xfer *x = arg;

	return common_buf_add(&x->body, p, size * n) == 0 ? size * n : 0;
}

static void
curlev_test_done(CURL *easy, CURLcode rc, void *arg)
{
	struct curlev_test *t = arg;
	struct curlev_test_xfer *x;
	char *priv = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
	x = (struct curlev_test_xfer *)(void *)priv;
	CHECK(x != NULL && x->easy == easy);
	if (x == NULL)
		return;
	x->calls++;
	x->rc = rc;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (++t->ndone >= t->stop_at)
		event_base_loopbreak(t->base);
}

/* Points x's easy handle (made on first use) at path on the server. */
static bool
curlev_test_setup(struct curlev_test_xfer *x, int port, const char *path)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	if (x->easy == NULL && (x->easy = curl_easy_init()) == NULL)
		return false;
	common_buf_free(&x->body);
	common_buf_init(&x->body, CURLEV_TEST_BODY_MAX);
	x->rc = CURLE_OK;
	x->status = 0;
	return curl_easy_setopt(x->easy, CURLOPT_URL, url) == CURLE_OK &&
	    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x) == CURLE_OK &&
	    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION,
	    curlev_test_write) == CURLE_OK &&
	    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x) == CURLE_OK &&
	    curl_easy_setopt(x->easy, CURLOPT_PROXY, "") == CURLE_OK &&
	    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS,
	    (long)CURLEV_TEST_WAIT_MS) == CURLE_OK;
}

static void
curlev_test_xfer_free(struct curlev_test_xfer *x)
{
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	x->easy = NULL;
	common_buf_free(&x->body);
}

static void
curlev_test_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Runs the loop until something breaks it or ms pass. */
static void
curlev_test_loop(struct curlev_test *t, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *limit;

	if ((limit = evtimer_new(t->base, curlev_test_timeout, t->base)) ==
	    NULL || evtimer_add(limit, &tv) == -1) {
		CHECK(!"cannot arm the loop's time limit");
		if (limit != NULL)
			event_free(limit);
		return;
	}
	event_base_dispatch(t->base);
	event_free(limit);
}

/* The port the server's socket is bound to; -1 on failure. */
static int
curlev_test_port(struct evhttp_bound_socket *bound)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (bound == NULL || getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&sin, &len) == -1)
		return -1;
	return ntohs(sin.sin_port);
}

/*
 * A local libevent HTTP server and the driver share one loop: two
 * transfers finish and each reaches done() exactly once, with its answer;
 * a transfer removed before it ran never does; an easy handle handed back
 * by done() can be added again; freeing the driver with a transfer in
 * flight calls nothing and leaves the easy handle to its owner.
 */
static void
test_curlev(void)
{
	struct curlev_test t;
	struct curlev_test_xfer a, b, gone, hold;
	struct common_curlev *c = NULL;
	struct evhttp *http = NULL;
	int port;

	memset(&t, 0, sizeof(t));
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&gone, 0, sizeof(gone));
	memset(&hold, 0, sizeof(hold));
	/* The test owns easy handles beyond the driver's life. */
	CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
	CHECK((t.base = event_base_new()) != NULL);
	if (t.base == NULL)
		goto out;
	CHECK((http = evhttp_new(t.base)) != NULL);
	if (http == NULL)
		goto out;
	evhttp_set_gencb(http, curlev_test_serve, &t);
	port = curlev_test_port(evhttp_bind_socket_with_handle(http,
	    "127.0.0.1", 0));
	CHECK(port > 0);
	CHECK(common_curlev_new(NULL, "test", curlev_test_done, &t) == NULL);
	CHECK(common_curlev_new(t.base, "test", NULL, &t) == NULL);
	CHECK((c = common_curlev_new(t.base, "test", curlev_test_done, &t)) !=
	    NULL);
	if (port <= 0 || c == NULL)
		goto out;

	CHECK(curlev_test_setup(&a, port, "/one"));
	CHECK(curlev_test_setup(&b, port, "/two"));
	CHECK(curlev_test_setup(&gone, port, "/gone"));
	CHECK(common_curlev_add(c, a.easy) == 0);
	CHECK(common_curlev_add(c, b.easy) == 0);
	CHECK(common_curlev_add(c, gone.easy) == 0);
	common_curlev_remove(c, gone.easy);
	common_curlev_remove(c, gone.easy);	/* not held: no-op */
	common_curlev_remove(c, NULL);
	t.stop_at = 2;
	curlev_test_loop(&t, CURLEV_TEST_WAIT_MS);
	CHECK(a.calls == 1 && a.rc == CURLE_OK && a.status == 200);
	CHECK(b.calls == 1 && b.rc == CURLE_OK && b.status == 200);
	CHECK_STR((const char *)a.body.data, "answer to /one");
	CHECK_STR((const char *)b.body.data, "answer to /two");
	/* Nothing more comes: not a second call, not the removed one. */
	t.stop_at = 100;
	curlev_test_loop(&t, CURLEV_TEST_SETTLE_MS);
	CHECK(t.ndone == 2 && a.calls == 1 && b.calls == 1 &&
	    gone.calls == 0);
	common_curlev_remove(c, a.easy);	/* finished: no-op */

	/* done() handed a back: it can go again. */
	CHECK(curlev_test_setup(&a, port, "/again"));
	CHECK(common_curlev_add(c, a.easy) == 0);
	t.stop_at = 3;
	curlev_test_loop(&t, CURLEV_TEST_WAIT_MS);
	CHECK(a.calls == 2 && a.rc == CURLE_OK && a.status == 200);
	CHECK_STR((const char *)a.body.data, "answer to /again");

	/* Freed while /hold waits for an answer that never comes. */
	CHECK(curlev_test_setup(&hold, port, "/hold"));
	CHECK(common_curlev_add(c, hold.easy) == 0);
	curlev_test_loop(&t, CURLEV_TEST_WAIT_MS);
	CHECK(t.held);
	common_curlev_free(c);
	c = NULL;
	curlev_test_loop(&t, CURLEV_TEST_SETTLE_MS);
	CHECK(hold.calls == 0 && t.ndone == 3);
	common_curlev_free(NULL);
out:
	common_curlev_free(c);
	curlev_test_xfer_free(&a);
	curlev_test_xfer_free(&b);
	curlev_test_xfer_free(&gone);
	curlev_test_xfer_free(&hold);
	if (http != NULL)
		evhttp_free(http);
	if (t.base != NULL)
		event_base_free(t.base);
	curl_global_cleanup();
}

const struct test_case test_cases[] = {
	TEST(test_b64_vectors),
	TEST(test_b64_roundtrip),
	TEST(test_b64_wrap),
	TEST(test_b64_whitespace),
	TEST(test_b64_invalid),
	TEST(test_hex),
	TEST(test_buf_max),
	TEST(test_buf_grow),
	TEST(test_random_id),
	TEST(test_id_valid),
	TEST(test_error_first_wins),
	TEST(test_time),
	TEST(test_files),
	TEST(test_path),
	TEST(test_pem_x509),
	TEST(test_pem_keys),
	TEST(test_pem_csr),
	TEST(test_pem_spki),
	TEST(test_ssl_error),
	TEST(test_log),
	TEST(test_metrics),
	TEST(test_metrics_threads),
	TEST(test_metrics_bound),
	TEST(test_password_roundtrip),
	TEST(test_password_default_iterations),
	TEST(test_password_bad_args),
	TEST(test_password_tampered),
	TEST(test_password_malformed),
	TEST(test_curlev),
	{ 0 },
};
