/*
 * bench/estload/conn.c — one epoll loop per thread driving connections
 * through non-blocking TCP and OpenSSL: connect, TLS 1.3 handshake
 * (server certificate verified), one HTTP/1.1 request, its answer
 * (Content-Length, chunked or until close), then a new connection or
 * the next request on the same one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/asn1.h>

#include "bench/estload/estload.h"

#define ESTLOAD_BACKOFF		0.010	/* seconds before reconnecting after
					   a failure, so a dead server is
					   not hammered in a tight loop */
#define ESTLOAD_CHUNK_LINE_MAX	32	/* "ffffffff;ext\r\n" */

enum estload_cstate {
	ESTLOAD_C_IDLE,		/* nothing in flight (stopped) */
	ESTLOAD_C_BACKOFF,	/* waiting to reconnect after a failure */
	ESTLOAD_C_CONNECT,
	ESTLOAD_C_HANDSHAKE,
	ESTLOAD_C_WRITE,
	ESTLOAD_C_READ,
	ESTLOAD_C_DONE		/* an answer is complete */
};

struct estload_conn {
	struct estload_thread	*t;
	int			 fd;
	SSL			*ssl;
	enum estload_cstate	 state;
	uint32_t		 events;	/* epoll interest; 0: none */
	char			 req[ESTLOAD_REQ_MAX];
	size_t			 reqlen;
	char			*buf;		/* the answer so far */
	size_t			 len;
	unsigned char		*scratch;	/* decoded body */
	size_t			 hdr_len;	/* 0 until headers parsed */
	long			 clen;		/* -1: no Content-Length */
	bool			 chunked;
	bool			 close_after;	/* server closes after it */
	bool			 to_eof;	/* body ends at close */
	int			 status;
	size_t			 body_off;	/* decoded body: buf or scratch */
	size_t			 body_len;
	bool			 body_in_scratch;
	double			 t0;		/* request start */
	double			 deadline;
	double			 retry_at;	/* BACKOFF until then */
	bool			 connected;	/* connect() finished at once */
};

static const char *const estload_err_names[ESTLOAD_E__MAX] = {
	[ESTLOAD_E_CONNECT] = "connect",
	[ESTLOAD_E_HANDSHAKE] = "tls_handshake",
	[ESTLOAD_E_IO] = "tls_io",
	[ESTLOAD_E_CLOSED] = "closed_early",
	[ESTLOAD_E_PARSE] = "http_parse",
	[ESTLOAD_E_BODY] = "bad_body",
	[ESTLOAD_E_TIMEOUT] = "timeout",
	[ESTLOAD_E_STATUS] = "http_status",
};

static const char *const estload_mode_names[ESTLOAD_MODE__MAX] = {
	[ESTLOAD_HANDSHAKE] = "handshake",
	[ESTLOAD_CACERTS] = "cacerts",
	[ESTLOAD_FRESH] = "fresh",
	[ESTLOAD_KEEPALIVE] = "keepalive",
};

const char *
estload_err_name(enum estload_err e)
{
	return (int)e >= 0 && e < ESTLOAD_E__MAX ? estload_err_names[e] : "?";
}

const char *
estload_mode_name(enum estload_mode m)
{
	return (int)m >= 0 && m < ESTLOAD_MODE__MAX ? estload_mode_names[m] :
	    "?";
}

double
estload_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool
estload_measuring(const struct estload *el)
{
	return atomic_load(&el->phase) == ESTLOAD_MEASURING;
}

/* Sets the epoll interest of c's socket to ev. 0 or -1. */
static int
estload_interest(struct estload_conn *c, uint32_t ev)
{
	struct epoll_event e;

	if (c->events == ev)
		return 0;
	memset(&e, 0, sizeof(e));
	e.events = ev;
	e.data.ptr = c;
	if (epoll_ctl(c->t->epfd, c->events == 0 ? EPOLL_CTL_ADD :
	    EPOLL_CTL_MOD, c->fd, &e) == -1)
		return -1;
	c->events = ev;
	return 0;
}

/* Closes c's connection (close_notify sent, not awaited, as clients
 * that are done do). */
static void
estload_conn_close(struct estload_conn *c)
{
	if (c->ssl != NULL) {
		if (c->state != ESTLOAD_C_CONNECT &&
		    c->state != ESTLOAD_C_HANDSHAKE)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);	/* also leaves the epoll set */
		c->fd = -1;
	}
	c->events = 0;
	ERR_clear_error();
}

/* Records a failure of kind (when measuring), with the first reason. */
static void
estload_record_err(struct estload_conn *c, enum estload_err kind,
    const char *detail)
{
	struct estload_stats *st = &c->t->st;

	if (!estload_measuring(c->t->el))
		return;
	st->err[kind]++;
	if (st->first_err[0] == '\0')
		snprintf(st->first_err, sizeof(st->first_err), "%s: %s",
		    estload_err_name(kind), detail);
}

/* A failed request: counted, the connection dropped, a new one after
 * ESTLOAD_BACKOFF. */
static void
estload_fail(struct estload_conn *c, enum estload_err kind,
    const char *detail)
{
	estload_record_err(c, kind, detail);
	estload_conn_close(c);
	c->state = ESTLOAD_C_BACKOFF;
	c->retry_at = estload_now() + ESTLOAD_BACKOFF;
}

/* The last OpenSSL error, with the verification result when the
 * handshake failed on the server's certificate. */
static void
estload_ssl_reason(struct estload_conn *c, int sslerr, char *out,
    size_t outlen)
{
	unsigned long e = ERR_peek_last_error();
	long v = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	char text[ESTLOAD_ERR_TEXT_MAX];

	/* "%.150s" below: room for the verification result. */
	if (e != 0)
		ERR_error_string_n(e, text, sizeof(text));
	else if (sslerr == SSL_ERROR_SYSCALL)
		snprintf(text, sizeof(text), "%s", errno != 0 ?
		    strerror(errno) : "connection closed");
	else
		snprintf(text, sizeof(text), "SSL error %d", sslerr);
	if (v != X509_V_OK)
		snprintf(out, outlen, "%.150s (certificate: %.80s)", text,
		    X509_verify_cert_error_string(v));
	else
		snprintf(out, outlen, "%s", text);
}

/* Builds the request of the running mode into c->req. 0 or -1. */
static int
estload_request(struct estload_conn *c)
{
	struct estload *el = c->t->el;
	const char *csr;
	int n;

	if (el->mode == ESTLOAD_HANDSHAKE) {
		n = snprintf(c->req, sizeof(c->req), "GET /healthz HTTP/1.1\r\n"
		    "Host: %s:%d\r\nUser-Agent: pkid-estload\r\n"
		    "Accept: */*\r\n\r\n", el->host, el->port);
	} else if (el->mode == ESTLOAD_CACERTS) {
		n = snprintf(c->req, sizeof(c->req), "GET /.well-known/est/%s"
		    "cacerts HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: "
		    "pkid-estload\r\nAccept: */*\r\n\r\n", el->label,
		    el->host, el->port);
	} else {
		csr = estload_csrs_take(&el->csrs);
		n = snprintf(c->req, sizeof(c->req), "POST /.well-known/est/"
		    "%ssimpleenroll HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: "
		    "pkid-estload\r\nAccept: */*\r\nAuthorization: %s\r\n"
		    "Content-Type: application/pkcs10\r\n"
		    "Content-Transfer-Encoding: base64\r\n"
		    "Content-Length: %zu\r\n\r\n%s", el->label, el->host,
		    el->port, el->auth, strlen(csr), csr);
	}
	if (n < 0 || (size_t)n >= sizeof(c->req))
		return -1;
	c->reqlen = (size_t)n;
	c->len = 0;
	c->hdr_len = 0;
	c->clen = -1;
	c->chunked = c->close_after = c->to_eof = false;
	c->status = 0;
	c->body_in_scratch = false;
	return 0;
}

/* Opens a new connection (state CONNECT). */
static void
estload_open(struct estload_conn *c)
{
	struct estload *el = c->t->el;
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	int one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, el->host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)el->port);
		sl = sizeof(*in4);
	} else {
		(void)inet_pton(AF_INET6, el->host, &in6->sin6_addr);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)el->port);
		sl = sizeof(*in6);
	}
	c->t0 = estload_now();
	c->deadline = c->t0 + el->timeout;
	if (estload_measuring(el))
		c->t->st.connects++;
	if ((c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		estload_fail(c, ESTLOAD_E_CONNECT, strerror(errno));
		return;
	}
	/* As curl and most HTTP clients: no Nagle delay on requests. */
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = ESTLOAD_C_CONNECT;
	c->connected = true;
	if (connect(c->fd, (struct sockaddr *)&ss, sl) == -1) {
		if (errno != EINPROGRESS) {
			estload_fail(c, ESTLOAD_E_CONNECT, strerror(errno));
			return;
		}
		c->connected = false;
	}
	if (estload_interest(c, EPOLLOUT) == -1)
		estload_fail(c, ESTLOAD_E_CONNECT, strerror(errno));
}

/* Starts the next request: on a new connection, or on this one when
 * the mode keeps connections and the server did not close it. */
static void
estload_begin(struct estload_conn *c)
{
	struct estload *el = c->t->el;

	if (atomic_load(&el->phase) == ESTLOAD_STOPPED) {
		estload_conn_close(c);
		c->state = ESTLOAD_C_IDLE;
		return;
	}
	if (c->fd != -1 && (el->mode != ESTLOAD_KEEPALIVE || c->close_after))
		estload_conn_close(c);
	if (estload_request(c) == -1) {
		estload_fail(c, ESTLOAD_E_PARSE, "request too large");
		return;
	}
	if (c->fd == -1) {
		estload_open(c);
		return;
	}
	c->t0 = estload_now();
	c->deadline = c->t0 + el->timeout;
	c->state = ESTLOAD_C_WRITE;
}

/* Parses the status line and headers once "\r\n\r\n" arrived.
 * 1 parsed, 0 incomplete, -1 malformed. */
static int
estload_headers(struct estload_conn *c)
{
	char *end, *line, *next, *colon, *v;
	int minor;

	c->buf[c->len] = '\0';
	if ((end = strstr(c->buf, "\r\n\r\n")) == NULL)
		return 0;
	c->hdr_len = (size_t)(end - c->buf) + 4;
	*end = '\0';
	if (sscanf(c->buf, "HTTP/1.%d %d", &minor, &c->status) != 2 ||
	    c->status < 100 || c->status >= ESTLOAD_STATUS_MAX)
		return -1;
	c->close_after = minor == 0;
	line = strstr(c->buf, "\r\n");
	for (; line != NULL; line = next) {
		line += 2;
		next = strstr(line, "\r\n");
		if (next != NULL)
			*next = '\0';
		if ((colon = strchr(line, ':')) == NULL)
			continue;
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (strcasecmp(line, "Content-Length") == 0) {
			char *e;

			errno = 0;
			c->clen = strtol(v, &e, 10);
			if (errno != 0 || e == v || c->clen < 0)
				return -1;
		} else if (strcasecmp(line, "Transfer-Encoding") == 0 &&
		    strcasestr(v, "chunked") != NULL)
			c->chunked = true;
		else if (strcasecmp(line, "Connection") == 0) {
			if (strcasestr(v, "close") != NULL)
				c->close_after = true;
			else if (strcasestr(v, "keep-alive") != NULL)
				c->close_after = false;
		}
		*colon = ':';
		if (next != NULL)
			*next = '\r';
	}
	*end = '\r';
	if (!c->chunked && c->clen < 0 && c->status >= 200 &&
	    c->status != 204 && c->status != 304)
		c->to_eof = c->close_after = true;
	return 1;
}

/* Decodes a chunked body into scratch. 1 complete, 0 incomplete, -1
 * malformed. */
static int
estload_chunked(struct estload_conn *c)
{
	size_t pos = c->hdr_len, out = 0, size;
	char line[ESTLOAD_CHUNK_LINE_MAX + 1], *crlf, *e;

	for (;;) {
		if ((crlf = memmem(c->buf + pos, c->len - pos, "\r\n", 2)) ==
		    NULL)
			return c->len - pos > ESTLOAD_CHUNK_LINE_MAX ? -1 : 0;
		if ((size_t)(crlf - (c->buf + pos)) > ESTLOAD_CHUNK_LINE_MAX)
			return -1;
		memcpy(line, c->buf + pos, (size_t)(crlf - (c->buf + pos)));
		line[crlf - (c->buf + pos)] = '\0';
		errno = 0;
		size = strtoul(line, &e, 16);
		if (errno != 0 || e == line || size > ESTLOAD_RESP_MAX)
			return -1;
		pos = (size_t)(crlf - c->buf) + 2;
		if (size == 0)	/* no trailers expected: the final CRLF */
			return c->len - pos >= 2 ? 1 : 0;
		if (c->len - pos < size + 2)
			return 0;
		memcpy(c->scratch + out, c->buf + pos, size);
		out += size;
		pos += size + 2;
		c->body_len = out;
		c->body_in_scratch = true;
	}
}

/* 1 when the answer in buf is complete, 0 when more is needed, -1 on a
 * malformed one. */
static int
estload_complete(struct estload_conn *c)
{
	int rc;

	if (c->hdr_len == 0 && (rc = estload_headers(c)) != 1)
		return rc;
	if (c->chunked) {
		c->body_len = 0;
		return estload_chunked(c);
	}
	c->body_off = c->hdr_len;
	c->body_len = c->len - c->hdr_len;
	if (c->to_eof)
		return 0;
	if (c->clen < 0)
		return 1;	/* 1xx, 204, 304 */
	if (c->body_len > (size_t)c->clen)
		return -1;	/* nothing was pipelined */
	return c->body_len == (size_t)c->clen ? 1 : 0;
}

/* OID 1.2.840.113549.1.7.2 (id-signedData), DER with tag and length. */
static const unsigned char estload_oid_signed[] = {
	0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
};

/*
 * Reads one DER header at *p (at most *left bytes) that must be of tag
 * and class (constructed or not as cons says): on success *p points at
 * its content, *clen is the content's length and *left what follows the
 * whole element. false on anything else.
 */
static bool
estload_der(const unsigned char **p, long *left, int tag, int cls, bool cons,
    long *clen)
{
	const unsigned char *start = *p;
	int t, c, r;

	r = ASN1_get_object(p, clen, &t, &c, *left);
	if ((r & 0x80) != 0 || t != tag || c != cls ||
	    ((r & V_ASN1_CONSTRUCTED) != 0) != cons ||
	    *clen > *left - (long)(*p - start))
		return false;
	*left -= (long)(*p - start) + *clen;
	return true;
}

/*
 * True when the body is base64 of a CMS/PKCS#7 ContentInfo of type
 * signed-data whose certificates hold at least one certificate, as EST
 * answers are (RFC 7030 §4.1.3, §4.2.3; RFC 8951). The structure is
 * walked down to the first certificate rather than decoded with
 * d2i_PKCS7, which on OpenSSL 3 costs the client more than the server's
 * whole enrollment work (a decoder per certificate key) and would take
 * CPU from the server on a shared machine.
 */
static bool
estload_body_ok(struct estload_conn *c)
{
	EVP_ENCODE_CTX *ctx = NULL;
	const unsigned char *p, *src, *sd;
	unsigned char *dst;
	long left, len, sdleft, sdlen, l;
	int n = 0, m = 0;
	bool ok = false;

	src = c->body_in_scratch ? c->scratch :
	    (const unsigned char *)c->buf + c->body_off;
	if (c->body_len == 0 || c->body_len > ESTLOAD_RESP_MAX / 2)
		return false;
	/* The decoded bytes go to the upper half of scratch, apart from a
	 * chunked body in its lower half. */
	dst = c->scratch + ESTLOAD_RESP_MAX / 2;
	if ((ctx = EVP_ENCODE_CTX_new()) == NULL)
		goto out;
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, dst, &n, src, (int)c->body_len) < 0 ||
	    EVP_DecodeFinal(ctx, dst + n, &m) != 1)
		goto out;
	p = dst;
	left = n + m;
	/* ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } */
	if (!estload_der(&p, &left, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true,
	    &len) || left != 0)
		goto out;
	left = len;
	if (left < (long)sizeof(estload_oid_signed) ||
	    memcmp(p, estload_oid_signed, sizeof(estload_oid_signed)) != 0)
		goto out;
	p += sizeof(estload_oid_signed);
	left -= (long)sizeof(estload_oid_signed);
	if (!estload_der(&p, &left, 0, V_ASN1_CONTEXT_SPECIFIC, true, &len))
		goto out;
	left = len;
	/* SignedData ::= SEQUENCE { version, digestAlgorithms,
	 * encapContentInfo, certificates [0] IMPLICIT, ... } */
	if (!estload_der(&p, &left, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, true,
	    &sdlen))
		goto out;
	sd = p;
	sdleft = sdlen;
	if (!estload_der(&sd, &sdleft, V_ASN1_INTEGER, V_ASN1_UNIVERSAL,
	    false, &l))
		goto out;
	sd += l;
	if (!estload_der(&sd, &sdleft, V_ASN1_SET, V_ASN1_UNIVERSAL, true,
	    &l))
		goto out;
	sd += l;
	if (!estload_der(&sd, &sdleft, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL,
	    true, &l))
		goto out;
	sd += l;
	if (!estload_der(&sd, &sdleft, 0, V_ASN1_CONTEXT_SPECIFIC, true, &l))
		goto out;
	/* The first certificate: SEQUENCE { tbsCertificate SEQUENCE, ..} */
	sdleft = l;
	if (!estload_der(&sd, &sdleft, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL,
	    true, &l) || l == 0)
		goto out;
	sdleft = l;
	ok = estload_der(&sd, &sdleft, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL,
	    true, &l) && l > 0;
out:
	EVP_ENCODE_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* A complete answer: counted, then the next request. */
static void
estload_done(struct estload_conn *c)
{
	struct estload_thread *t = c->t;
	struct estload *el = t->el;
	char detail[ESTLOAD_ERR_TEXT_MAX];
	double now = estload_now();

	if (c->status != 200) {
		if (estload_measuring(el))
			t->st.status[c->status]++;
		snprintf(detail, sizeof(detail), "HTTP %d: %.*s", c->status,
		    (int)(c->body_len < 120 ? c->body_len : 120),
		    c->body_in_scratch ? (const char *)c->scratch :
		    c->buf + c->body_off);
		estload_record_err(c, ESTLOAD_E_STATUS, detail);
	} else if (el->check_body && el->mode != ESTLOAD_HANDSHAKE &&
	    !estload_body_ok(c)) {
		estload_record_err(c, ESTLOAD_E_BODY, "200 without a base64 "
		    "PKCS#7 holding a certificate");
	} else if (estload_measuring(el)) {
		t->st.ok++;
		t->st.bytes_in += c->len;
		if (t->nlat < ESTLOAD_LAT_MAX)
			t->lat[t->nlat++] = (uint32_t)((now - c->t0) * 1e6);
	}
	estload_begin(c);
}

/*
 * Advances c as far as it goes without blocking: each state either
 * moves on or sets the epoll interest it waits for and returns. revents
 * are the epoll events that woke c (0: none); a pending connect only
 * moves on with them.
 */
static void
estload_run(struct estload_conn *c, uint32_t revents)
{
	struct estload *el = c->t->el;
	char reason[ESTLOAD_ERR_TEXT_MAX];
	socklen_t sl;
	int r, e, soerr;

	for (;;) {
		switch (c->state) {
		case ESTLOAD_C_IDLE:
		case ESTLOAD_C_BACKOFF:
			return;
		case ESTLOAD_C_CONNECT:
			if (!c->connected && (revents & (EPOLLOUT | EPOLLERR |
			    EPOLLHUP)) == 0)
				return;
			soerr = 0;
			sl = sizeof(soerr);
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr,
			    &sl) == -1)
				soerr = errno;
			if (soerr == EINPROGRESS || soerr == EALREADY)
				return;
			if (soerr != 0) {
				estload_fail(c, ESTLOAD_E_CONNECT,
				    strerror(soerr));
				return;
			}
			if ((c->ssl = SSL_new(el->tls)) == NULL ||
			    SSL_set_fd(c->ssl, c->fd) != 1) {
				estload_fail(c, ESTLOAD_E_HANDSHAKE,
				    "SSL_new failed");
				return;
			}
			SSL_set_connect_state(c->ssl);
			c->state = ESTLOAD_C_HANDSHAKE;
			break;
		case ESTLOAD_C_HANDSHAKE:
			ERR_clear_error();
			errno = 0;
			if ((r = SSL_connect(c->ssl)) == 1) {
				if (SSL_version(c->ssl) != TLS1_3_VERSION) {
					estload_fail(c, ESTLOAD_E_HANDSHAKE,
					    "not TLS 1.3");
					return;
				}
				c->state = ESTLOAD_C_WRITE;
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e ==
			    SSL_ERROR_WANT_WRITE) {
				if (estload_interest(c, e ==
				    SSL_ERROR_WANT_READ ? EPOLLIN :
				    EPOLLOUT) == -1)
					estload_fail(c, ESTLOAD_E_HANDSHAKE,
					    strerror(errno));
				return;
			}
			estload_ssl_reason(c, e, reason, sizeof(reason));
			estload_fail(c, ESTLOAD_E_HANDSHAKE, reason);
			return;
		case ESTLOAD_C_WRITE:
			ERR_clear_error();
			errno = 0;
			if ((r = SSL_write(c->ssl, c->req, (int)c->reqlen)) >
			    0) {
				c->state = ESTLOAD_C_READ;
				if (estload_interest(c, EPOLLIN) == -1) {
					estload_fail(c, ESTLOAD_E_IO,
					    strerror(errno));
					return;
				}
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e ==
			    SSL_ERROR_WANT_WRITE) {
				if (estload_interest(c, e ==
				    SSL_ERROR_WANT_READ ? EPOLLIN :
				    EPOLLOUT) == -1)
					estload_fail(c, ESTLOAD_E_IO,
					    strerror(errno));
				return;
			}
			estload_ssl_reason(c, e, reason, sizeof(reason));
			/* A kept connection the server closed meanwhile:
			 * as a client would, retry on a new one. */
			estload_fail(c, ESTLOAD_E_IO, reason);
			return;
		case ESTLOAD_C_READ:
			if (c->len >= ESTLOAD_RESP_MAX - 1) {
				estload_fail(c, ESTLOAD_E_PARSE, "answer "
				    "larger than ESTLOAD_RESP_MAX");
				return;
			}
			ERR_clear_error();
			errno = 0;
			r = SSL_read(c->ssl, c->buf + c->len,
			    (int)(ESTLOAD_RESP_MAX - 1 - c->len));
			if (r > 0) {
				c->len += (size_t)r;
				if ((r = estload_complete(c)) == -1) {
					estload_fail(c, ESTLOAD_E_PARSE,
					    "malformed HTTP answer");
					return;
				}
				if (r == 1)
					c->state = ESTLOAD_C_DONE;
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e ==
			    SSL_ERROR_WANT_WRITE) {
				if (estload_interest(c, e ==
				    SSL_ERROR_WANT_READ ? EPOLLIN :
				    EPOLLOUT) == -1)
					estload_fail(c, ESTLOAD_E_IO,
					    strerror(errno));
				return;
			}
			if ((e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && errno == 0)) &&
			    c->hdr_len != 0 && c->to_eof) {
				c->close_after = true;
				c->state = ESTLOAD_C_DONE;
				break;
			}
			if (e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && errno == 0)) {
				estload_fail(c, ESTLOAD_E_CLOSED,
				    c->len == 0 ? "closed before answering" :
				    "closed in the middle of the answer");
				return;
			}
			estload_ssl_reason(c, e, reason, sizeof(reason));
			estload_fail(c, ESTLOAD_E_IO, reason);
			return;
		case ESTLOAD_C_DONE:
			estload_done(c);
			revents = 0;	/* they were the old socket's */
			break;
		}
	}
}

/* Fails requests past their deadline and restarts backed-off ones. */
static void
estload_sweep(struct estload_thread *t, double now)
{
	struct estload_conn *c;
	int i;

	for (i = 0; i < t->nconns; i++) {
		c = &t->conns[i];
		if (c->state == ESTLOAD_C_BACKOFF && now >= c->retry_at) {
			estload_begin(c);
			estload_run(c, 0);
		} else if (c->state != ESTLOAD_C_IDLE &&
		    c->state != ESTLOAD_C_BACKOFF && now > c->deadline) {
			estload_fail(c, ESTLOAD_E_TIMEOUT, "no answer in time");
		}
	}
}

void *
estload_thread_main(void *arg)
{
	struct estload_thread *t = arg;
	struct epoll_event evs[ESTLOAD_EVENTS_MAX];
	double now, last = 0;
	int i, n;

	for (i = 0; i < t->nconns; i++) {
		estload_begin(&t->conns[i]);
		estload_run(&t->conns[i], 0);
	}
	while (atomic_load(&t->el->phase) != ESTLOAD_STOPPED) {
		n = epoll_wait(t->epfd, evs, ESTLOAD_EVENTS_MAX,
		    ESTLOAD_TICK_MS);
		for (i = 0; i < n; i++)
			estload_run(evs[i].data.ptr, evs[i].events);
		now = estload_now();
		if (now - last >= ESTLOAD_TICK_MS / 1000.0) {
			estload_sweep(t, now);
			last = now;
		}
	}
	for (i = 0; i < t->nconns; i++) {
		estload_conn_close(&t->conns[i]);
		t->conns[i].state = ESTLOAD_C_IDLE;
	}
	return NULL;
}

int
estload_thread_init(struct estload_thread *t)
{
	int i;

	if ((t->conns = calloc((size_t)t->nconns, sizeof(*t->conns))) ==
	    NULL)
		return -1;
	/* Every slot valid before anything can fail: the free closes fds. */
	for (i = 0; i < t->nconns; i++) {
		t->conns[i].t = t;
		t->conns[i].fd = -1;
		t->conns[i].state = ESTLOAD_C_IDLE;
	}
	if ((t->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (t->lat = malloc(ESTLOAD_LAT_MAX * sizeof(*t->lat))) == NULL)
		return -1;
	for (i = 0; i < t->nconns; i++)
		if ((t->conns[i].buf = malloc(ESTLOAD_RESP_MAX)) == NULL ||
		    (t->conns[i].scratch = malloc(ESTLOAD_RESP_MAX)) == NULL)
			return -1;
	return 0;
}

void
estload_thread_free(struct estload_thread *t)
{
	int i;

	if (t->conns != NULL)
		for (i = 0; i < t->nconns; i++) {
			estload_conn_close(&t->conns[i]);
			free(t->conns[i].buf);
			free(t->conns[i].scratch);
		}
	free(t->conns);
	free(t->lat);
	if (t->epfd >= 0)
		close(t->epfd);
	t->conns = NULL;
	t->lat = NULL;
	t->epfd = -1;
}
