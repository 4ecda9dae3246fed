/*
 * tests/tools/est_tlsunique.c — a small EST client for the tls-unique
 * proof-of-possession of RFC 7030 section 3.5, used by
 * tests/integration/est_test.
 *
 * It opens one TLS connection (TLS 1.2 only, or TLS 1.3 only with
 * --tls13), reads the connection's tls-unique value (RFC 5929 section 3:
 * the first Finished message of the handshake, i.e. the client's own
 * Finished for a full handshake), builds a PKCS#10 request for a new
 * P-256 key whose challengePassword is base64(tls-unique), and POSTs it to
 * /.well-known/est[/<label>]/<operation> over that same connection with a
 * hand-written HTTP/1.1 request. --save-csr keeps the request body so that
 * a second run can send it with --replay-from over a NEW connection, where
 * the binding no longer holds and the server must refuse it.
 *
 * Plain OpenSSL (libssl, libcrypto) and libc; nothing of pkid is linked.
 *
 * Output (stdout): "tls_version: ...", "tls_unique: <base64>",
 * "csr: new|replayed", then "response:" and the HTTP response exactly as
 * received. Exit status: 0 when an HTTP response was read (whatever its
 * status), 1 for a usage error, 2 when no response could be obtained
 * (connection, TLS, crypto or file failure; the reason is on stderr).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLSU_FINISHED_MAX	64		/* bytes of a Finished message we accept */
#define TLSU_BODY_MAX		(64 * 1024)	/* request body (base64 CSR) */
#define TLSU_RESPONSE_MAX	(256 * 1024)	/* response we are willing to read */
#define TLSU_HEAD_MAX		4096		/* request line and headers */
#define TLSU_SUBJECT_MAX	1024		/* --subject */
#define TLSU_SAN_MAX		16		/* --san options */
#define TLSU_SAN_TEXT_MAX	2048		/* "DNS:a,DNS:b" built from them */
#define TLSU_CRED_MAX		512		/* "user:password" in --basic-file */
#define TLSU_LABEL_MAX		64		/* label name, as pkid's config */
#define TLSU_IO_TIMEOUT_SEC	30		/* per socket read or write */
#define TLSU_READ_CHUNK		4096

#define TLSU_EXIT_OK		0
#define TLSU_EXIT_USAGE		1
#define TLSU_EXIT_FAIL		2

struct tlsu_opts {
	const char	*host;
	const char	*port;
	const char	*cafile;
	const char	*label;
	const char	*operation;
	const char	*cert;
	const char	*key;
	const char	*basic_file;
	const char	*subject;
	const char	*sans[TLSU_SAN_MAX];
	size_t		 nsans;
	const char	*save_csr;
	const char	*replay_from;
	const char	*key_out;
	bool		 tls13;
};

/* A growable byte buffer with a hard maximum. */
struct tlsu_buf {
	unsigned char	*data;
	size_t		 len;
	size_t		 cap;
	size_t		 max;
};

static void
tlsu_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("est_tlsunique: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Reports fmt and the OpenSSL error queue (then cleared). */
static void
tlsu_warn_ssl(const char *what)
{
	unsigned long e;
	char buf[256];

	tlsu_warn("%s", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "  %s\n", buf);
	}
}

static void
tlsu_usage(void)
{
	fputs(
"usage: est_tlsunique --port PORT --cafile FILE [--host HOST] [--label L]\n"
"         [--operation simpleenroll|simplereenroll]\n"
"         [--cert FILE --key FILE] [--basic-file FILE]\n"
"         [--subject \"CN=..,O=..\"] [--san DNSNAME]... [--tls13]\n"
"         [--save-csr FILE] [--replay-from FILE] [--key-out FILE]\n"
"  --basic-file holds \"user:password\" (HTTP Basic credentials);\n"
"  --save-csr writes the request body (base64 DER CSR) that was sent;\n"
"  --replay-from sends such a saved body instead of building a new CSR.\n",
	    stderr);
}

static int
tlsu_buf_add(struct tlsu_buf *b, const void *p, size_t n)
{
	unsigned char *d;
	size_t cap;

	if (n > b->max - b->len) {
		tlsu_warn("buffer limit of %zu bytes reached", b->max);
		return -1;
	}
	if (b->len + n > b->cap) {
		cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n)
			cap *= 2;
		if (cap > b->max)
			cap = b->max;
		if ((d = realloc(b->data, cap)) == NULL) {
			tlsu_warn("out of memory");
			return -1;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static void
tlsu_buf_free(struct tlsu_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Reads a whole file of at most max bytes into b (b->max is set). */
static int
tlsu_file_read(const char *path, size_t max, struct tlsu_buf *b)
{
	unsigned char chunk[TLSU_READ_CHUNK];
	ssize_t n;
	int fd, rc = -1;

	b->max = max;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		tlsu_warn("%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			tlsu_warn("%s: read: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (tlsu_buf_add(b, chunk, (size_t)n) == -1) {
			tlsu_warn("%s: larger than %zu bytes", path, max);
			goto out;
		}
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/*
 * Writes len bytes to path atomically: a temporary file in the same
 * directory (mode 0600), fsync, rename.
 */
static int
tlsu_file_write(const char *path, const void *data, size_t len)
{
	char tmp[PATH_MAX];
	const unsigned char *p = data;
	ssize_t n;
	int fd = -1, rc = -1, w;

	w = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (w < 0 || (size_t)w >= sizeof(tmp)) {
		tlsu_warn("%s: path too long", path);
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		tlsu_warn("%s: %s", tmp, strerror(errno));
		return -1;
	}
	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			tlsu_warn("%s: write: %s", tmp, strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1) {
		tlsu_warn("%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		tlsu_warn("%s: close: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		tlsu_warn("%s: rename: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	if (rc == -1)
		unlink(tmp);
	return rc;
}

/*
 * Base64 of len bytes without line breaks, NUL-terminated (to free()),
 * or NULL.
 */
static char *
tlsu_b64(const unsigned char *p, size_t len)
{
	char *out;
	size_t cap;

	if (len > INT_MAX / 2)
		return NULL;
	cap = 4 * ((len + 2) / 3) + 1;
	if ((out = malloc(cap)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, p, (int)len);
	return out;
}

static bool
tlsu_is_ip(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
}

/* A connected TCP socket to host:port (TCP_NODELAY, I/O timeouts), or -1. */
static int
tlsu_connect(const char *host, const char *port)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct timeval tv;
	int fd = -1, on = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		tlsu_warn("%s:%s: %s", host, port, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	if (fd == -1) {
		tlsu_warn("connect %s:%s: %s", host, port, strerror(errno));
		goto out;
	}
	tv.tv_sec = TLSU_IO_TIMEOUT_SEC;
	tv.tv_usec = 0;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1) {
		tlsu_warn("setsockopt: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
out:
	freeaddrinfo(res);
	return fd;
}

/*
 * The client context: one protocol version (TLS 1.2, or 1.3 with tls13),
 * the server verified against cafile, optional client certificate.
 */
static SSL_CTX *
tlsu_ctx_new(const struct tlsu_opts *o)
{
	SSL_CTX *ctx, *ret = NULL;
	int version = o->tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tlsu_warn_ssl("SSL_CTX_new failed");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, version) != 1) {
		tlsu_warn_ssl("cannot pin the TLS version");
		goto out;
	}
	/* Every run must be a full handshake: tls-unique is then the
	 * client's Finished (RFC 5929 section 3.1). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != 1) {
		tlsu_warn_ssl("cannot load --cafile");
		goto out;
	}
	if (o->cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx,
	    o->cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, o->key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)) {
		tlsu_warn_ssl("cannot load --cert/--key");
		goto out;
	}
	ret = ctx;	/* steal */
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	return ret;
}

/*
 * Runs the handshake on fd (host name or IP checked against the server
 * certificate). Returns the connection or NULL.
 */
static SSL *
tlsu_handshake(SSL_CTX *ctx, int fd, const char *host)
{
	X509_VERIFY_PARAM *vp;
	SSL *ssl, *ret = NULL;

	if ((ssl = SSL_new(ctx)) == NULL) {
		tlsu_warn_ssl("SSL_new failed");
		return NULL;
	}
	vp = SSL_get0_param(ssl);
	if (tlsu_is_ip(host)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
			tlsu_warn_ssl("bad --host address");
			goto out;
		}
	} else if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_set1_host(ssl, host) != 1) {
		tlsu_warn_ssl("bad --host name");
		goto out;
	}
	if (SSL_set_fd(ssl, fd) != 1) {
		tlsu_warn_ssl("SSL_set_fd failed");
		goto out;
	}
	if (SSL_connect(ssl) != 1) {
		tlsu_warn_ssl("TLS handshake failed");
		if (SSL_get_verify_result(ssl) != X509_V_OK)
			tlsu_warn("server certificate: %s",
			    X509_verify_cert_error_string(
			    SSL_get_verify_result(ssl)));
		goto out;
	}
	ret = ssl;	/* steal */
	ssl = NULL;
out:
	SSL_free(ssl);
	return ret;
}

/*
 * The connection's tls-unique (RFC 5929 section 3.1): the first Finished
 * message of the latest handshake, which is the client's own for a full
 * handshake and the server's for an abbreviated one. Base64 (to free())
 * or NULL.
 */
static char *
tlsu_unique(SSL *ssl)
{
	unsigned char fin[TLSU_FINISHED_MAX];
	size_t n;

	if (SSL_session_reused(ssl))
		n = SSL_get_peer_finished(ssl, fin, sizeof(fin));
	else
		n = SSL_get_finished(ssl, fin, sizeof(fin));
	if (n == 0 || n > sizeof(fin)) {
		tlsu_warn("no Finished message available (%zu bytes)", n);
		return NULL;
	}
	return tlsu_b64(fin, n);
}

/*
 * Adds the RDNs of "CN=a,O=b" (attribute names OpenSSL knows, values
 * without commas; no escapes) to name.
 */
static int
tlsu_subject_parse(X509_NAME *name, const char *subject)
{
	char buf[TLSU_SUBJECT_MAX], *p, *next, *eq;
	int w;

	w = snprintf(buf, sizeof(buf), "%s", subject);
	if (w < 0 || (size_t)w >= sizeof(buf)) {
		tlsu_warn("--subject longer than %d bytes", TLSU_SUBJECT_MAX - 1);
		return -1;
	}
	for (p = buf; p != NULL && *p != '\0'; p = next) {
		if ((next = strchr(p, ',')) != NULL)
			*next++ = '\0';
		while (*p == ' ')
			p++;
		if ((eq = strchr(p, '=')) == NULL || eq == p || eq[1] == '\0') {
			tlsu_warn("--subject: \"%s\" is not NAME=VALUE", p);
			return -1;
		}
		*eq = '\0';
		if (X509_NAME_add_entry_by_txt(name, p, MBSTRING_UTF8,
		    (const unsigned char *)(eq + 1), -1, -1, 0) != 1) {
			tlsu_warn_ssl("--subject: bad attribute");
			return -1;
		}
	}
	return 0;
}

/* Adds an extensionRequest with the DNS subjectAltNames to req. */
static int
tlsu_csr_sans(X509_REQ *req, const struct tlsu_opts *o)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	char text[TLSU_SAN_TEXT_MAX];
	size_t i, off = 0;
	int w, rc = -1;

	if (o->nsans == 0)
		return 0;
	for (i = 0; i < o->nsans; i++) {
		w = snprintf(text + off, sizeof(text) - off, "%sDNS:%s",
		    i ? "," : "", o->sans[i]);
		if (w < 0 || (size_t)w >= sizeof(text) - off) {
			tlsu_warn("--san values longer than %d bytes",
			    TLSU_SAN_TEXT_MAX - 1);
			return -1;
		}
		off += (size_t)w;
	}
	if ((ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name,
	    text)) == NULL || (exts = sk_X509_EXTENSION_new_null()) == NULL ||
	    !sk_X509_EXTENSION_push(exts, ext)) {
		tlsu_warn_ssl("cannot build subjectAltName");
		goto out;
	}
	ext = NULL;	/* steal: owned by exts */
	if (X509_REQ_add_extensions(req, exts) != 1) {
		tlsu_warn_ssl("cannot add the extension request");
		goto out;
	}
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return rc;
}

/*
 * Builds the request body: base64 of a DER PKCS#10 request for a new
 * P-256 key, subject and SANs from o, challengePassword = challenge
 * (PrintableString: base64 only uses its characters), signed with
 * SHA-256. The key goes to --key-out when given. Returns the body (to
 * free()) or NULL.
 */
static char *
tlsu_csr_build(const struct tlsu_opts *o, const char *challenge)
{
	EVP_PKEY *pkey = NULL;
	X509_REQ *req = NULL;
	X509_NAME *name;
	BIO *mem = NULL;
	BUF_MEM *bm;
	unsigned char *der = NULL;
	char *body = NULL, *ret = NULL;
	int len;

	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_pubkey(req, pkey) != 1) {
		tlsu_warn_ssl("cannot create the key or the request");
		goto out;
	}
	name = X509_REQ_get_subject_name(req);
	if (tlsu_subject_parse(name, o->subject) == -1 ||
	    tlsu_csr_sans(req, o) == -1)
		goto out;
	if (X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
	    MBSTRING_ASC, (const unsigned char *)challenge, -1) != 1) {
		tlsu_warn_ssl("cannot add challengePassword");
		goto out;
	}
	if (X509_REQ_sign(req, pkey, EVP_sha256()) <= 0) {
		tlsu_warn_ssl("cannot sign the request");
		goto out;
	}
	if ((len = i2d_X509_REQ(req, &der)) <= 0) {
		tlsu_warn_ssl("cannot encode the request");
		goto out;
	}
	if ((body = tlsu_b64(der, (size_t)len)) == NULL) {
		tlsu_warn("out of memory");
		goto out;
	}
	if (o->key_out != NULL) {
		if ((mem = BIO_new(BIO_s_mem())) == NULL ||
		    PEM_write_bio_PrivateKey(mem, pkey, NULL, NULL, 0, NULL,
		    NULL) != 1) {
			tlsu_warn_ssl("cannot encode the key");
			goto out;
		}
		BIO_get_mem_ptr(mem, &bm);
		if (tlsu_file_write(o->key_out, bm->data, bm->length) == -1)
			goto out;
	}
	ret = body;	/* steal */
	body = NULL;
out:
	free(body);
	BIO_free(mem);
	OPENSSL_free(der);
	X509_REQ_free(req);
	EVP_PKEY_free(pkey);
	return ret;
}

/* The body of a --replay-from file, trailing white space removed. */
static char *
tlsu_replay_load(const char *path)
{
	struct tlsu_buf b = { NULL, 0, 0, 0 };
	char *body = NULL;
	size_t n;

	if (tlsu_file_read(path, TLSU_BODY_MAX, &b) == -1)
		goto out;
	n = b.len;
	while (n > 0 && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' ||
	    b.data[n - 1] == ' '))
		n--;
	if (n == 0) {
		tlsu_warn("%s: empty", path);
		goto out;
	}
	if ((body = malloc(n + 1)) == NULL) {
		tlsu_warn("out of memory");
		goto out;
	}
	memcpy(body, b.data, n);
	body[n] = '\0';
out:
	tlsu_buf_free(&b);
	return body;
}

/*
 * "Authorization: Basic ...\r\n" from a --basic-file ("user:password",
 * one line), or an empty string without one. Written into out.
 */
static int
tlsu_auth_header(const char *path, char *out, size_t outlen)
{
	struct tlsu_buf b = { NULL, 0, 0, 0 };
	char *b64 = NULL;
	size_t n;
	int w, rc = -1;

	out[0] = '\0';
	if (path == NULL)
		return 0;
	if (tlsu_file_read(path, TLSU_CRED_MAX, &b) == -1)
		goto out;
	n = b.len;
	while (n > 0 && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r'))
		n--;
	if (n == 0 || memchr(b.data, ':', n) == NULL) {
		tlsu_warn("%s: expected \"user:password\"", path);
		goto out;
	}
	if ((b64 = tlsu_b64(b.data, n)) == NULL) {
		tlsu_warn("out of memory");
		goto out;
	}
	w = snprintf(out, outlen, "Authorization: Basic %s\r\n", b64);
	if (w < 0 || (size_t)w >= outlen) {
		tlsu_warn("%s: credentials too long", path);
		out[0] = '\0';
		goto out;
	}
	rc = 0;
out:
	if (b.data != NULL)
		OPENSSL_cleanse(b.data, b.len);
	tlsu_buf_free(&b);
	free(b64);
	return rc;
}

/* Writes all of p over ssl. */
static int
tlsu_ssl_write_all(SSL *ssl, const char *p, size_t len)
{
	size_t done;

	while (len > 0) {
		if (SSL_write_ex(ssl, p, len, &done) != 1) {
			tlsu_warn_ssl("TLS write failed");
			return -1;
		}
		p += done;
		len -= done;
	}
	return 0;
}

/*
 * Content-Length of the response in r once its header block is complete:
 * sets *body_off and *clen (-1 when absent). Returns true when the header
 * block is complete.
 */
static bool
tlsu_response_head(const struct tlsu_buf *r, size_t *body_off, long *clen)
{
	const char *p = (const char *)r->data, *end, *line, *nl;
	size_t i;

	*clen = -1;
	for (i = 0; i + 3 < r->len; i++)
		if (memcmp(p + i, "\r\n\r\n", 4) == 0)
			break;
	if (i + 3 >= r->len)
		return false;
	end = p + i + 2;
	*body_off = i + 4;
	for (line = p; line < end; line = nl + 2) {
		nl = line;
		while (nl + 1 < end && !(nl[0] == '\r' && nl[1] == '\n'))
			nl++;
		if ((size_t)(nl - line) > 15 &&
		    strncasecmp(line, "Content-Length:", 15) == 0)
			*clen = strtol(line + 15, NULL, 10);
		if (nl + 1 >= end)
			break;
	}
	return true;
}

/*
 * Reads the response into r until the Content-Length body is complete or
 * the server closes the connection.
 */
static int
tlsu_response_read(SSL *ssl, struct tlsu_buf *r)
{
	char chunk[TLSU_READ_CHUNK];
	size_t n, off;
	long clen;
	int err;

	r->max = TLSU_RESPONSE_MAX;
	for (;;) {
		if (tlsu_response_head(r, &off, &clen) && clen >= 0 &&
		    r->len - off >= (size_t)clen)
			return 0;
		if (SSL_read_ex(ssl, chunk, sizeof(chunk), &n) == 1) {
			if (tlsu_buf_add(r, chunk, n) == -1)
				return -1;
			continue;
		}
		err = SSL_get_error(ssl, 0);
		/* A server that answers and closes without close_notify, or
		 * resets after answering, still answered. */
		if ((err == SSL_ERROR_ZERO_RETURN ||
		    err == SSL_ERROR_SYSCALL) && r->len > 0) {
			ERR_clear_error();
			return 0;
		}
		tlsu_warn_ssl(r->len > 0 ? "TLS read failed mid-response" :
		    "TLS read failed before any response byte");
		return -1;
	}
}

static int
tlsu_opts_parse(int argc, char **argv, struct tlsu_opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->label = "";
	o->operation = "simpleenroll";
	o->subject = "CN=est-tlsunique";
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;

		if (strcmp(a, "--tls13") == 0) {
			o->tls13 = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return -1;
		if (i + 1 >= argc) {
			tlsu_warn("%s: missing value", a);
			return -1;
		}
		if (strcmp(a, "--host") == 0)
			dst = &o->host;
		else if (strcmp(a, "--port") == 0)
			dst = &o->port;
		else if (strcmp(a, "--cafile") == 0)
			dst = &o->cafile;
		else if (strcmp(a, "--label") == 0)
			dst = &o->label;
		else if (strcmp(a, "--operation") == 0)
			dst = &o->operation;
		else if (strcmp(a, "--cert") == 0)
			dst = &o->cert;
		else if (strcmp(a, "--key") == 0)
			dst = &o->key;
		else if (strcmp(a, "--basic-file") == 0)
			dst = &o->basic_file;
		else if (strcmp(a, "--subject") == 0)
			dst = &o->subject;
		else if (strcmp(a, "--save-csr") == 0)
			dst = &o->save_csr;
		else if (strcmp(a, "--replay-from") == 0)
			dst = &o->replay_from;
		else if (strcmp(a, "--key-out") == 0)
			dst = &o->key_out;
		else if (strcmp(a, "--san") == 0) {
			if (o->nsans >= TLSU_SAN_MAX) {
				tlsu_warn("at most %d --san", TLSU_SAN_MAX);
				return -1;
			}
			o->sans[o->nsans++] = argv[++i];
			continue;
		} else {
			tlsu_warn("unknown option %s", a);
			return -1;
		}
		*dst = argv[++i];
	}
	if (o->port == NULL || o->cafile == NULL) {
		tlsu_warn("--port and --cafile are required");
		return -1;
	}
	if ((o->cert == NULL) != (o->key == NULL)) {
		tlsu_warn("--cert and --key go together");
		return -1;
	}
	if (strlen(o->label) > TLSU_LABEL_MAX ||
	    strcspn(o->label, "/?#% \r\n") != strlen(o->label) ||
	    strcspn(o->operation, "/?#% \r\n") != strlen(o->operation)) {
		tlsu_warn("bad --label or --operation");
		return -1;
	}
	if (o->replay_from != NULL && (o->save_csr != NULL ||
	    o->key_out != NULL)) {
		tlsu_warn("--replay-from sends a saved CSR: no --save-csr or "
		    "--key-out with it");
		return -1;
	}
	return 0;
}

/*
 * One exchange: connect, handshake, tls-unique, CSR (new or replayed),
 * POST over the same connection, print the response.
 */
static int
tlsu_run(const struct tlsu_opts *o)
{
	struct tlsu_buf resp = { NULL, 0, 0, 0 };
	char auth[TLSU_CRED_MAX * 2], head[TLSU_HEAD_MAX];
	char path[TLSU_LABEL_MAX + 128];
	char *unique = NULL, *body = NULL, *msg = NULL;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	size_t blen = 0, hlen = 0;
	int fd = -1, w, rc = TLSU_EXIT_FAIL;

	if (tlsu_auth_header(o->basic_file, auth, sizeof(auth)) == -1)
		goto out;
	if (o->label[0] != '\0')
		w = snprintf(path, sizeof(path), "/.well-known/est/%s/%s",
		    o->label, o->operation);
	else
		w = snprintf(path, sizeof(path), "/.well-known/est/%s",
		    o->operation);
	if (w < 0 || (size_t)w >= sizeof(path)) {
		tlsu_warn("request path too long");
		goto out;
	}
	if ((ctx = tlsu_ctx_new(o)) == NULL ||
	    (fd = tlsu_connect(o->host, o->port)) == -1 ||
	    (ssl = tlsu_handshake(ctx, fd, o->host)) == NULL ||
	    (unique = tlsu_unique(ssl)) == NULL)
		goto out;
	printf("tls_version: %s\n", SSL_get_version(ssl));
	printf("tls_unique: %s\n", unique);
	if (o->replay_from != NULL)
		body = tlsu_replay_load(o->replay_from);
	else
		body = tlsu_csr_build(o, unique);
	if (body == NULL)
		goto out;
	printf("csr: %s\n", o->replay_from != NULL ? "replayed" : "new");
	blen = strlen(body);
	if (o->save_csr != NULL &&
	    tlsu_file_write(o->save_csr, body, blen) == -1)
		goto out;

	w = snprintf(head, sizeof(head),
	    "POST %s HTTP/1.1\r\n"
	    "Host: %s%s%s:%s\r\n"
	    "User-Agent: pkid-est-tlsunique\r\n"
	    "Content-Type: application/pkcs10\r\n"
	    "Content-Length: %zu\r\n"
	    "%s"
	    "Connection: close\r\n"
	    "\r\n",
	    path, strchr(o->host, ':') ? "[" : "", o->host,
	    strchr(o->host, ':') ? "]" : "", o->port, blen, auth);
	if (w < 0 || (size_t)w >= sizeof(head)) {
		tlsu_warn("request header too long");
		goto out;
	}
	hlen = (size_t)w;
	/* Header and body in one write, as a well-behaved client does. */
	if ((msg = malloc(hlen + blen)) == NULL) {
		tlsu_warn("out of memory");
		goto out;
	}
	memcpy(msg, head, hlen);
	memcpy(msg + hlen, body, blen);
	if (tlsu_ssl_write_all(ssl, msg, hlen + blen) == -1 ||
	    tlsu_response_read(ssl, &resp) == -1)
		goto out;
	fputs("response:\n", stdout);
	fwrite(resp.data, 1, resp.len, stdout);
	if (resp.len > 0 && resp.data[resp.len - 1] != '\n')
		fputc('\n', stdout);
	if (fflush(stdout) != 0) {
		tlsu_warn("stdout: %s", strerror(errno));
		goto out;
	}
	SSL_shutdown(ssl);
	rc = TLSU_EXIT_OK;
out:
	OPENSSL_cleanse(auth, sizeof(auth));
	OPENSSL_cleanse(head, sizeof(head));
	if (msg != NULL)
		OPENSSL_cleanse(msg, hlen + blen);
	free(msg);
	tlsu_buf_free(&resp);
	free(body);
	free(unique);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd != -1)
		close(fd);
	return rc;
}

int
main(int argc, char **argv)
{
	struct tlsu_opts o;

	if (tlsu_opts_parse(argc, argv, &o) == -1) {
		tlsu_usage();
		return TLSU_EXIT_USAGE;
	}
	return tlsu_run(&o);
}
