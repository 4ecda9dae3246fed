/*
 * Unit tests for the ACME challenge validator (protocols/acme/validate.c):
 * http-01, dns-01 and tls-alpn-01 against real peers on 127.0.0.1 with
 * ports chosen at run time, all served from the test's own event_base:
 *
 *   - an HTTP responder (evhttp) with a good token, a redirect chain, a
 *     redirect loop, redirects to ftp, https and a DNS name, a wrong body,
 *     a binary body, a 404, an oversized body and a request that never
 *     gets an answer; the same handler over TLS (for https redirects) and
 *     on ::1 when IPv6 loopback works;
 *   - TLS responders (OpenSSL via bufferevent_openssl) with self-signed
 *     tls-alpn-01 certificates: good (IP and DNS SAN), wrong digest,
 *     non-critical extension, two SANs, no ALPN;
 *   - pebble-challtestsrv as the DNS server (A answers 127.0.0.1, TXT set
 *     through its management API) for dns-01, DNS names and SERVFAIL;
 *   - a tiny UDP DNS responder of our own for what challtestsrv cannot
 *     say: NXDOMAIN and TXT records made of several character-strings;
 *   - a refused port, a silent DNS server and a TCP peer that never
 *     speaks TLS, for failures and for freeing the validator mid-flight.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "protocols/acme/acme.h"
#include "tests/unit/test.h"

#define T_CHALLTESTSRV		"/usr/bin/pebble-challtestsrv"
#define T_KEYAUTH		"good-token.Zm9vYmFyYmF6dGh1bWJwcmludA"
#define T_OTHER_KEYAUTH		"other-token.dGh1bWJwcmludC1vdGhlcg"
#define T_WAIT_SECONDS		20	/* longest a single validation may take */
#define T_BIG_BODY		(100 * 1024)
#define T_TLS_CONNS_MAX		64	/* open TLS responder connections */
#define T_START_WAIT_MS		5000	/* challtestsrv start-up */
#define T_DNS_NAME		"www.example.test"
#define T_TLS_NAME		"tls.example.test"
#define T_REDIR_NAME		"redirected.example.test"

enum t_tls_variant {
	T_TLS_GOOD_IP,		/* SAN 127.0.0.1, critical, right digest */
	T_TLS_GOOD_DNS,		/* SAN tls.example.test */
	T_TLS_WRONG_DIGEST,
	T_TLS_NONCRITICAL,
	T_TLS_TWO_SANS,
	T_TLS_NO_ALPN,		/* server ignores ALPN */
	T_TLS__MAX
};

struct t_tls {
	SSL_CTX			*ctx;
	struct evconnlistener	*listener;
	int			 port;
	char			 sni[256];	/* last SNI received */
	unsigned char		 alpn[64];	/* last ALPN list offered */
	unsigned int		 alpnlen;
	int			 handshakes;
};

struct t_fixture {
	bool			 up;
	struct event_base	*base;
	EVP_PKEY		*key;
	struct evhttp		*http;		/* 127.0.0.1 */
	int			 http_port;
	struct evhttp		*http6;		/* ::1, when it works */
	int			 http6_port;
	struct evhttp		*https;		/* 127.0.0.1, TLS */
	int			 https_port;
	char			 last_host[256];
	char			 last_ua[128];
	char			 last_path[256];
	int			 requests;
	struct t_tls		 tls[T_TLS__MAX];
	struct bufferevent	*conns[T_TLS_CONNS_MAX];
	int			 refused_port;	/* bound, not listening */
	int			 refused_fd;
	int			 silent_port;	/* TCP listener that never talks */
	int			 silent_fd;
	int			 blackhole_port; /* UDP socket never read */
	int			 blackhole_fd;
	int			 minidns_port;
	int			 minidns_fd;
	struct event		*minidns_ev;
	int			 minidns_queries;
	pid_t			 challtest_pid;
	int			 dns_port;	/* challtestsrv DNS */
	int			 mgmt_port;	/* challtestsrv management */
	char			 expected_txt[64];
	char			 logpath[512];
};

static struct t_fixture F;

struct t_outcome {
	int				 calls;
	struct acme_validation_result	 res;
	struct acme_validator		*free_in_done;	/* done frees it */
};

/* ---- helpers ------------------------------------------------------------- */

/* Binds a socket of `type` to 127.0.0.1 (or ::1) on *port, or on a port
 * the kernel chooses when *port is 0; returns the fd and sets *port. */
static int
t_bind(int family, int type, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons((uint16_t)*port);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons((uint16_t)*port);
		len = sizeof(*s4);
	}
	if ((fd = socket(family, type | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		close(fd);
		return -1;
	}
	*port = ntohs(family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* A port free for both TCP and UDP on 127.0.0.1 right now. */
static int
t_free_port_both(void)
{
	int i, port, tfd, ufd;
	struct sockaddr_in sin;

	for (i = 0; i < 50; i++) {
		port = 0;
		if ((tfd = t_bind(AF_INET, SOCK_STREAM, &port)) == -1)
			return -1;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((uint16_t)port);
		ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (ufd != -1 && bind(ufd, (struct sockaddr *)&sin,
		    sizeof(sin)) == 0) {
			close(ufd);
			close(tfd);
			return port;
		}
		if (ufd != -1)
			close(ufd);
		close(tfd);
	}
	return -1;
}

static void
t_done(void *arg, const struct acme_validation_result *res)
{
	struct t_outcome *o = arg;

	o->calls++;
	o->res = *res;
	if (o->free_in_done != NULL) {
		acme_validator_free(o->free_in_done);
		o->free_in_done = NULL;
	}
}

/* Runs the loop until o->calls is set or T_WAIT_SECONDS pass. */
static void
t_loop_until(struct t_outcome *o)
{
	uint64_t end = common_mono_ms() + T_WAIT_SECONDS * 1000;

	while (o->calls == 0 && common_mono_ms() < end)
		event_base_loop(F.base, EVLOOP_ONCE);
}

/* Runs the loop for about ms milliseconds. */
static void
t_loop_for(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(F.base, &tv);
	event_base_dispatch(F.base);
}

/*
 * Runs one validation on a fresh validator with the given ports and
 * resolver, checks that done() comes exactly once and never from inside
 * start, and returns the result.
 */
static struct acme_validation_result
t_validate(enum acme_chall_type type, const char *itype, const char *ivalue,
    const char *token, const char *keyauth, int http_port, int tls_port,
    const char *resolver, int timeout)
{
	struct acme_validator_config cfg = { http_port, tls_port, resolver,
	    timeout };
	struct acme_validation_req req = { type, itype, ivalue, token,
	    keyauth };
	struct t_outcome o;
	struct acme_validator *v;

	memset(&o, 0, sizeof(o));
	snprintf(o.res.problem_type, sizeof(o.res.problem_type), "(none)");
	v = acme_validator_new(F.base, &cfg);
	CHECK(v != NULL);
	if (v == NULL)
		return o.res;
	CHECK(acme_validator_start(v, &req, t_done, &o) == 0);
	CHECK(o.calls == 0);		/* never from inside start */
	t_loop_until(&o);
	t_loop_for(20);			/* a second call would show now */
	CHECK(o.calls == 1);
	acme_validator_free(v);
	if (!o.res.valid)
		fprintf(stderr, "  -> %s: %s\n", o.res.problem_type,
		    o.res.detail);
	return o.res;
}

static bool
t_has(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

/* True when s holds only printable ASCII (details go into JSON). */
static bool
t_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

#define P_CONN	"urn:ietf:params:acme:error:connection"
#define P_DNS	"urn:ietf:params:acme:error:dns"
#define P_UNAUTH "urn:ietf:params:acme:error:unauthorized"
#define P_TLS	"urn:ietf:params:acme:error:tls"

/* ---- HTTP responder ------------------------------------------------------ */

static void
t_http_reply(struct evhttp_request *req, int code, const char *location,
    const void *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (location != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Location", location);
	if (body != NULL)
		evbuffer_add(b, body, len);
	evhttp_send_reply(req, code, code == 200 ? "OK" : "X", b);
	evbuffer_free(b);
}

static void
t_http_cb(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *path = evhttp_request_get_uri(req), *s;
	char loc[512];
	char *big;

	(void)arg;
	F.requests++;
	s = evhttp_find_header(h, "Host");
	snprintf(F.last_host, sizeof(F.last_host), "%s", s ? s : "");
	s = evhttp_find_header(h, "User-Agent");
	snprintf(F.last_ua, sizeof(F.last_ua), "%s", s ? s : "");
	snprintf(F.last_path, sizeof(F.last_path), "%s", path);

	if (strcmp(path, "/.well-known/acme-challenge/good") == 0)
		t_http_reply(req, 200, NULL, T_KEYAUTH " \r\n\n",
		    strlen(T_KEYAUTH) + 4);
	else if (strcmp(path, "/.well-known/acme-challenge/wrong") == 0)
		t_http_reply(req, 200, NULL, "something else", 14);
	else if (strcmp(path, "/.well-known/acme-challenge/binary") == 0)
		t_http_reply(req, 200, NULL, "\x01\xff\"\\\n\x7f" "abc", 9);
	else if (strcmp(path, "/.well-known/acme-challenge/big") == 0) {
		big = malloc(T_BIG_BODY);
		memset(big, 'a', T_BIG_BODY);
		/* chunked: no Content-Length announces the size upfront */
		evhttp_send_reply_start(req, 200, "OK");
		{
			struct evbuffer *b = evbuffer_new();

			evbuffer_add(b, big, T_BIG_BODY);
			evhttp_send_reply_chunk(req, b);
			evbuffer_free(b);
		}
		evhttp_send_reply_end(req);
		free(big);
	} else if (strcmp(path, "/.well-known/acme-challenge/redir") == 0)
		t_http_reply(req, 302, "/r/2", NULL, 0);
	else if (strcmp(path, "/r/2") == 0) {
		snprintf(loc, sizeof(loc), "http://127.0.0.1:%d/r/3",
		    F.http_port);
		t_http_reply(req, 301, loc, NULL, 0);
	} else if (strcmp(path, "/r/3") == 0)
		t_http_reply(req, 307, "/.well-known/acme-challenge/good",
		    NULL, 0);
	else if (strcmp(path, "/.well-known/acme-challenge/loop") == 0)
		t_http_reply(req, 302, "/.well-known/acme-challenge/loop",
		    NULL, 0);
	else if (strcmp(path, "/.well-known/acme-challenge/ftp") == 0)
		t_http_reply(req, 302, "ftp://127.0.0.1/x", NULL, 0);
	else if (strcmp(path, "/.well-known/acme-challenge/tohttps") == 0) {
		snprintf(loc, sizeof(loc), "https://127.0.0.1:%d/"
		    ".well-known/acme-challenge/good", F.https_port);
		t_http_reply(req, 302, loc, NULL, 0);
	} else if (strcmp(path, "/.well-known/acme-challenge/toname") == 0) {
		snprintf(loc, sizeof(loc), "http://" T_REDIR_NAME ":%d/"
		    ".well-known/acme-challenge/good", F.http_port);
		t_http_reply(req, 302, loc, NULL, 0);
	} else if (strcmp(path, "/.well-known/acme-challenge/slow") == 0)
		return;		/* never answered; freed with the server */
	else
		t_http_reply(req, 404, NULL, "not found", 9);
}

static struct bufferevent *
t_https_bevcb(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);
	struct bufferevent *bev;

	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* An evhttp on family's loopback, port chosen by the kernel. */
static struct evhttp *
t_http_start(int family, int *port, SSL_CTX *tls)
{
	struct evhttp *h;
	int fd;

	if ((fd = t_bind(family, SOCK_STREAM, port)) == -1)
		return NULL;
	if (listen(fd, 64) == -1 || evutil_make_socket_nonblocking(fd) == -1) {
		close(fd);
		return NULL;
	}
	h = evhttp_new(F.base);
	evhttp_set_gencb(h, t_http_cb, NULL);
	if (tls != NULL)
		evhttp_set_bevcb(h, t_https_bevcb, tls);
	if (evhttp_accept_socket(h, fd) == -1) {
		evhttp_free(h);
		close(fd);
		return NULL;
	}
	return h;
}

/* ---- TLS responders ---------------------------------------------------- */

/* A self-signed certificate for key with the given SAN config string
 * ("IP:127.0.0.1") and, when digest is set, an acmeIdentifier
 * extension holding it. */
static X509 *
t_cert(const char *san, const unsigned char *digest, int critical)
{
	X509 *x = X509_new();
	X509_EXTENSION *ext;
	ASN1_OCTET_STRING *inner, *wrap;
	ASN1_OBJECT *oid;
	X509V3_CTX ctx;
	unsigned char *der = NULL;
	int derlen;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"acme validation", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, F.key);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (digest != NULL) {
		inner = ASN1_OCTET_STRING_new();
		ASN1_OCTET_STRING_set(inner, digest, SHA256_DIGEST_LENGTH);
		derlen = i2d_ASN1_OCTET_STRING(inner, &der);
		wrap = ASN1_OCTET_STRING_new();
		ASN1_OCTET_STRING_set(wrap, der, derlen);
		oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
		ext = X509_EXTENSION_create_by_OBJ(NULL, oid, critical, wrap);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
		ASN1_OBJECT_free(oid);
		ASN1_OCTET_STRING_free(wrap);
		ASN1_OCTET_STRING_free(inner);
		OPENSSL_free(der);
	}
	X509_sign(x, F.key, EVP_sha256());
	return x;
}

static int
t_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	struct t_tls *t = arg;
	static const unsigned char want[] = "\x0a" "acme-tls/1";
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	snprintf(t->sni, sizeof(t->sni), "%s", sni != NULL ? sni : "");
	t->alpnlen = inlen < sizeof(t->alpn) ? inlen : sizeof(t->alpn);
	memcpy(t->alpn, in, t->alpnlen);
	if (SSL_select_next_proto((unsigned char **)out, outlen, want,
	    sizeof(want) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

static void
t_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct bufferevent **slot = arg;
	struct t_tls *t;

	if (what & BEV_EVENT_CONNECTED) {
		t = SSL_get_app_data(bufferevent_openssl_get_ssl(bev));
		if (t != NULL)
			t->handshakes++;
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		bufferevent_free(bev);
		*slot = NULL;
	}
}

static void
t_tls_read_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_drain(bufferevent_get_input(bev),
	    evbuffer_get_length(bufferevent_get_input(bev)));
}

static void
t_tls_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct t_tls *t = arg;
	struct bufferevent *bev;
	SSL *ssl;
	int i;

	(void)l;
	(void)sa;
	(void)salen;
	for (i = 0; i < T_TLS_CONNS_MAX && F.conns[i] != NULL; i++)
		;
	if (i == T_TLS_CONNS_MAX || (ssl = SSL_new(t->ctx)) == NULL) {
		close(fd);
		return;
	}
	SSL_set_app_data(ssl, t);
	bev = bufferevent_openssl_socket_new(F.base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	F.conns[i] = bev;
	bufferevent_setcb(bev, t_tls_read_cb, NULL, t_tls_event_cb,
	    &F.conns[i]);
	bufferevent_enable(bev, EV_READ);
}

static int
t_tls_start(enum t_tls_variant var)
{
	struct t_tls *t = &F.tls[var];
	unsigned char good[SHA256_DIGEST_LENGTH], bad[SHA256_DIGEST_LENGTH];
	const char *san = "IP:127.0.0.1";
	const unsigned char *digest = good;
	int critical = 1, fd;
	X509 *x;

	SHA256((const unsigned char *)T_KEYAUTH, strlen(T_KEYAUTH), good);
	SHA256((const unsigned char *)T_OTHER_KEYAUTH,
	    strlen(T_OTHER_KEYAUTH), bad);
	if (var == T_TLS_GOOD_DNS)
		san = "DNS:" T_TLS_NAME;
	else if (var == T_TLS_WRONG_DIGEST)
		digest = bad;
	else if (var == T_TLS_NONCRITICAL)
		critical = 0;
	else if (var == T_TLS_TWO_SANS)
		san = "IP:127.0.0.1,DNS:other.example.test";
	x = t_cert(san, digest, critical);
	t->ctx = SSL_CTX_new(TLS_server_method());
	if (t->ctx == NULL || SSL_CTX_use_certificate(t->ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(t->ctx, F.key) != 1) {
		X509_free(x);
		return -1;
	}
	X509_free(x);
	if (var != T_TLS_NO_ALPN)
		SSL_CTX_set_alpn_select_cb(t->ctx, t_alpn_select, t);
	if ((fd = t_bind(AF_INET, SOCK_STREAM, &t->port)) == -1)
		return -1;
	evutil_make_socket_nonblocking(fd);
	t->listener = evconnlistener_new(F.base, t_tls_accept_cb, t,
	    LEV_OPT_CLOSE_ON_FREE, 64, fd);
	if (t->listener == NULL) {
		close(fd);
		return -1;
	}
	return 0;
}

/* ---- a tiny UDP DNS responder ---------------------------------------------- */

/*
 * Answers one query: NXDOMAIN for anything under "nx.test"; for TXT
 * _acme-challenge.chunked.test one RR whose two character-strings join
 * into the expected value; for TXT _acme-challenge.split.test two RRs
 * holding one half each; NOERROR with no answer otherwise.
 */
static void
t_minidns_cb(evutil_socket_t fd, short what, void *arg)
{
	unsigned char q[512], r[1024];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	char name[256];
	size_t off = 12, nl = 0, o, half, elen, i;
	int qtype, rcode = 0, nans = 0;
	ssize_t n;
	const char *e = F.expected_txt;

	(void)what;
	(void)arg;
	n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
	if (n < 12)
		return;
	F.minidns_queries++;
	while (off < (size_t)n && q[off] != 0) {
		size_t l = q[off];

		if (l > 63 || off + 1 + l >= (size_t)n || nl + l + 2 >
		    sizeof(name))
			return;
		if (nl > 0)
			name[nl++] = '.';
		memcpy(name + nl, q + off + 1, l);
		nl += l;
		off += 1 + l;
	}
	name[nl] = '\0';
	off++;
	if (off + 4 > (size_t)n)
		return;
	qtype = q[off] << 8 | q[off + 1];
	off += 4;
	for (i = 0; i < nl; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			name[i] = (char)(name[i] - 'A' + 'a');
	memcpy(r, q, off);
	o = off;
	elen = strlen(e);
	half = elen / 2;
	if (nl >= 7 && strcmp(name + nl - 7, "nx.test") == 0)
		rcode = 3;
	else if (qtype == 16 &&
	    strcmp(name, "_acme-challenge.chunked.test") == 0) {
		/* one RR: two character-strings */
		memcpy(r + o, "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c", 10);
		o += 10;
		r[o++] = 0;
		r[o++] = (unsigned char)(elen + 2);
		r[o++] = (unsigned char)half;
		memcpy(r + o, e, half);
		o += half;
		r[o++] = (unsigned char)(elen - half);
		memcpy(r + o, e + half, elen - half);
		o += elen - half;
		nans = 1;
	} else if (qtype == 16 &&
	    strcmp(name, "_acme-challenge.split.test") == 0) {
		/* two RRs, one half each: two values, neither matches */
		for (i = 0; i < 2; i++) {
			const char *p = i == 0 ? e : e + half;
			size_t l = i == 0 ? half : elen - half;

			memcpy(r + o, "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c",
			    10);
			o += 10;
			r[o++] = 0;
			r[o++] = (unsigned char)(l + 1);
			r[o++] = (unsigned char)l;
			memcpy(r + o, p, l);
			o += l;
		}
		nans = 2;
	}
	r[2] = (unsigned char)(0x80 | (q[2] & 0x01));	/* QR, RD copied */
	r[3] = (unsigned char)(0x80 | rcode);		/* RA */
	r[4] = 0;
	r[5] = 1;
	r[6] = 0;
	r[7] = (unsigned char)nans;
	memset(r + 8, 0, 4);
	sendto(fd, r, o, 0, (struct sockaddr *)&from, flen);
}

/* ---- pebble-challtestsrv --------------------------------------------------- */

static bool
t_have_challtest(void)
{
	return F.challtest_pid > 0;
}

/* POSTs a JSON body to the challtestsrv management API; the status. */
static long
t_mgmt(const char *path, const char *json)
{
	char url[128];
	long status = 0;
	CURL *c;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", F.mgmt_port, path);
	if ((c = curl_easy_init()) == NULL)
		return 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

/* Starts challtestsrv with only its DNS and management listeners. */
static void
t_challtest_start(void)
{
	char dns[64], mgmt[64];
	uint64_t end;
	pid_t pid;
	int fd, port;

	if (access(T_CHALLTESTSRV, X_OK) != 0) {
		fprintf(stderr, "SKIP: %s is not installed (package pebble): "
		    "the challtestsrv DNS cases do not run\n", T_CHALLTESTSRV);
		return;
	}
	F.dns_port = t_free_port_both();
	port = 0;
	if ((fd = t_bind(AF_INET, SOCK_STREAM, &port)) == -1 ||
	    F.dns_port == -1)
		return;
	close(fd);
	F.mgmt_port = port;
	snprintf(dns, sizeof(dns), "127.0.0.1:%d", F.dns_port);
	snprintf(mgmt, sizeof(mgmt), "127.0.0.1:%d", F.mgmt_port);
	snprintf(F.logpath, sizeof(F.logpath), "%s/challtestsrv.log",
	    test_tmpdir());
	if ((pid = fork()) == -1)
		return;
	if (pid == 0) {
		int lfd = open(F.logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		/* gone with the test even if the test crashes */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (lfd != -1) {
			dup2(lfd, 1);
			dup2(lfd, 2);
		}
		execl(T_CHALLTESTSRV, T_CHALLTESTSRV, "-defaultIPv4",
		    "127.0.0.1", "-defaultIPv6", "", "-http01", "",
		    "-https01", "", "-tlsalpn01", "", "-dns01", dns,
		    "-management", mgmt, (char *)NULL);
		_exit(127);
	}
	F.challtest_pid = pid;
	end = common_mono_ms() + T_START_WAIT_MS;
	while (common_mono_ms() < end) {
		if (t_mgmt("/clear-txt", "{\"host\":\"ready.test.\"}") == 200)
			return;
		usleep(50 * 1000);
	}
	fprintf(stderr, "challtestsrv did not come up; see %s\n", F.logpath);
	kill(F.challtest_pid, SIGTERM);
	waitpid(F.challtest_pid, NULL, 0);
	F.challtest_pid = 0;
	CHECK(!"challtestsrv started");
}

/* ---- fixture ---------------------------------------------------------------- */

static void
t_teardown(void)
{
	int i;

	if (!F.up)
		return;
	if (F.challtest_pid > 0) {
		kill(F.challtest_pid, SIGTERM);
		waitpid(F.challtest_pid, NULL, 0);
		F.challtest_pid = 0;
	}
	for (i = 0; i < T_TLS_CONNS_MAX; i++)
		if (F.conns[i] != NULL)
			bufferevent_free(F.conns[i]);
	for (i = 0; i < T_TLS__MAX; i++) {
		if (F.tls[i].listener != NULL)
			evconnlistener_free(F.tls[i].listener);
		SSL_CTX_free(F.tls[i].ctx);
	}
	if (F.http != NULL)
		evhttp_free(F.http);
	if (F.http6 != NULL)
		evhttp_free(F.http6);
	if (F.https != NULL)
		evhttp_free(F.https);
	if (F.minidns_ev != NULL)
		event_free(F.minidns_ev);
	if (F.minidns_fd > 0)
		close(F.minidns_fd);
	if (F.refused_fd > 0)
		close(F.refused_fd);
	if (F.silent_fd > 0)
		close(F.silent_fd);
	if (F.blackhole_fd > 0)
		close(F.blackhole_fd);
	EVP_PKEY_free(F.key);
	event_base_free(F.base);
	curl_global_cleanup();
	memset(&F, 0, sizeof(F));
}

static void
t_setup(void)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char *b64;
	int i;

	if (F.up)
		return;
	F.up = true;
	atexit(t_teardown);
	signal(SIGPIPE, SIG_IGN);	/* as the server does */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	common_log_set_level(COMMON_LOG_DEBUG);
	F.base = event_base_new();
	F.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	CHECK(F.base != NULL && F.key != NULL);

	SHA256((const unsigned char *)T_KEYAUTH, strlen(T_KEYAUTH), digest);
	b64 = common_b64_encode(digest, sizeof(digest), true, 0);
	snprintf(F.expected_txt, sizeof(F.expected_txt), "%s", b64);
	free(b64);
	CHECK(strlen(F.expected_txt) == 43);	/* no padding */

	for (i = 0; i < T_TLS__MAX; i++)
		CHECK(t_tls_start(i) == 0);
	F.http = t_http_start(AF_INET, &F.http_port, NULL);
	F.https = t_http_start(AF_INET, &F.https_port, F.tls[T_TLS_NO_ALPN].ctx);
	CHECK(F.http != NULL && F.https != NULL);
	/* the same port on ::1 when possible: names with A and AAAA */
	F.http6_port = F.http_port;
	if ((F.http6 = t_http_start(AF_INET6, &F.http6_port, NULL)) == NULL) {
		F.http6_port = 0;
		F.http6 = t_http_start(AF_INET6, &F.http6_port, NULL);
	}

	F.refused_fd = t_bind(AF_INET, SOCK_STREAM, &F.refused_port);
	F.silent_fd = t_bind(AF_INET, SOCK_STREAM, &F.silent_port);
	CHECK(F.silent_fd != -1 && listen(F.silent_fd, 8) == 0);
	F.blackhole_fd = t_bind(AF_INET, SOCK_DGRAM, &F.blackhole_port);
	F.minidns_fd = t_bind(AF_INET, SOCK_DGRAM, &F.minidns_port);
	CHECK(F.refused_fd != -1 && F.blackhole_fd != -1 &&
	    F.minidns_fd != -1);
	evutil_make_socket_nonblocking(F.minidns_fd);
	F.minidns_ev = event_new(F.base, F.minidns_fd, EV_READ | EV_PERSIST,
	    t_minidns_cb, NULL);
	event_add(F.minidns_ev, NULL);

	t_challtest_start();
}

static const char *
t_resolver(int port, char *buf, size_t len)
{
	snprintf(buf, len, "127.0.0.1:%d", port);
	return buf;
}

/* ---- http-01 ------------------------------------------------------------------ */

static void
test_http01_ip_valid(void)
{
	struct acme_validation_result r;

	t_setup();
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "good",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(r.valid);
	CHECK_STR(r.problem_type, "");
	CHECK_STR(F.last_path, "/.well-known/acme-challenge/good");
	CHECK_STR(F.last_host, "127.0.0.1");	/* RFC 8738 §3 */
	CHECK_STR(F.last_ua, "pkid-validator");
}

static void
test_http01_wrong_body(void)
{
	struct acme_validation_result r;
	char url[128];

	t_setup();
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "wrong",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, "did not match this challenge"));
	CHECK(t_has(r.detail, "expected \"" T_KEYAUTH "\""));
	CHECK(t_has(r.detail, "got \"something else\""));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/.well-known/"
	    "acme-challenge/wrong", F.http_port);
	CHECK(t_has(r.detail, url));
}

static void
test_http01_binary_body(void)
{
	struct acme_validation_result r;

	t_setup();
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "binary",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_printable(r.detail));
	CHECK(t_has(r.detail, "got \"\\x01\\xff\\\"\\\\\\x0a\\x7fabc\""));
}

static void
test_http01_not_found(void)
{
	struct acme_validation_result r;

	t_setup();
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "missing",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, "HTTP 404"));
	CHECK(t_has(r.detail, "/.well-known/acme-challenge/missing"));
}

static void
test_http01_oversized(void)
{
	struct acme_validation_result r;

	t_setup();
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "big",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, "larger than 65536 bytes"));
}

static void
test_http01_redirects(void)
{
	struct acme_validation_result r;

	t_setup();
	/* relative 302, absolute 301, relative 307 */
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "redir",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(r.valid);
	CHECK_STR(F.last_path, "/.well-known/acme-challenge/good");
	/* redirected requests carry the new host with its port */
	CHECK(t_has(F.last_host, "127.0.0.1:"));

	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "loop",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_CONN);
	CHECK(t_has(r.detail, "Too many redirects"));

	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "ftp",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_CONN);
	CHECK(t_has(r.detail, "ftp://127.0.0.1/x"));
}

static void
test_http01_redirect_https(void)
{
	struct acme_validation_result r;
	int before;

	t_setup();
	before = F.requests;
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "tohttps",
	    T_KEYAUTH, F.http_port, 1, NULL, 5);
	CHECK(r.valid);		/* self-signed: not verified, §8.3 */
	CHECK(F.requests == before + 2);
	CHECK_STR(F.last_path, "/.well-known/acme-challenge/good");
}

static void
test_http01_refused(void)
{
	struct acme_validation_result r;

	t_setup();
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "good",
	    T_KEYAUTH, F.refused_port, 1, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_CONN);
	CHECK(t_has(r.detail, "/.well-known/acme-challenge/good"));
}

static void
test_http01_timeout(void)
{
	struct acme_validation_result r;
	uint64_t t0 = common_mono_ms(), ms;

	t_setup();
	r = t_validate(ACME_CHALL_HTTP01, "ip", "127.0.0.1", "slow",
	    T_KEYAUTH, F.http_port, 1, NULL, 1);
	ms = common_mono_ms() - t0;
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_CONN);
	CHECK(t_has(r.detail, "imeout") || t_has(r.detail, "timed out"));
	CHECK(ms >= 900 && ms < 3000);
}

static void
test_http01_ipv6(void)
{
	struct acme_validation_result r;
	char url[128];

	t_setup();
	if (F.http6 == NULL) {
		fprintf(stderr, "SKIP: ::1 is not usable here\n");
		return;
	}
	r = t_validate(ACME_CHALL_HTTP01, "ip", "::1", "good", T_KEYAUTH,
	    F.http6_port, 1, NULL, 5);
	CHECK(r.valid);
	CHECK_STR(F.last_host, "[::1]");
	r = t_validate(ACME_CHALL_HTTP01, "ip", "0:0::1", "wrong", T_KEYAUTH,
	    F.http6_port, 1, NULL, 5);
	CHECK(!r.valid);
	snprintf(url, sizeof(url), "http://[::1]:%d/.well-known/"
	    "acme-challenge/wrong", F.http6_port);
	CHECK(t_has(r.detail, url));
}

static void
test_http01_dns_name(void)
{
	struct acme_validation_result r;
	char res[64];

	t_setup();
	if (!t_have_challtest())
		return;
	t_resolver(F.dns_port, res, sizeof(res));
	r = t_validate(ACME_CHALL_HTTP01, "dns", T_DNS_NAME, "good",
	    T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(r.valid);
	CHECK_STR(F.last_host, T_DNS_NAME);
	/* a trailing dot names the same host */
	r = t_validate(ACME_CHALL_HTTP01, "dns", T_DNS_NAME ".", "good",
	    T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(r.valid);

	/* a redirect to another name is resolved again */
	r = t_validate(ACME_CHALL_HTTP01, "dns", T_DNS_NAME, "toname",
	    T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(r.valid);
	CHECK(t_has(F.last_host, T_REDIR_NAME ":"));

	/* SERVFAIL for the name */
	CHECK(t_mgmt("/set-servfail", "{\"host\":\"broken.example.test.\"}") ==
	    200);
	r = t_validate(ACME_CHALL_HTTP01, "dns", "broken.example.test",
	    "good", T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	CHECK(t_has(r.detail, "SERVFAIL"));
	CHECK(t_has(r.detail, "broken.example.test"));
}

/* Several addresses: IPv4 first, the next one after a refused connect. */
static void
test_http01_addresses(void)
{
	struct acme_validation_result r;
	char res[64];

	t_setup();
	if (!t_have_challtest())
		return;
	t_resolver(F.dns_port, res, sizeof(res));
	/* nothing listens on 127.0.0.2: refused, then 127.0.0.1 */
	CHECK(t_mgmt("/add-a", "{\"host\":\"multi.example.test.\","
	    "\"addresses\":[\"127.0.0.2\",\"127.0.0.1\"]}") == 200);
	r = t_validate(ACME_CHALL_HTTP01, "dns", "multi.example.test", "good",
	    T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(r.valid);
	r = t_validate(ACME_CHALL_TLSALPN01, "dns", "multi.example.test",
	    "tok", T_KEYAUTH, 1, F.tls[T_TLS_GOOD_DNS].port, res, 5);
	CHECK(!r.valid);	/* reached the server: the SAN is another */
	CHECK_STR(r.problem_type, P_UNAUTH);

	/* only a refused address */
	CHECK(t_mgmt("/add-a", "{\"host\":\"dead.example.test.\","
	    "\"addresses\":[\"127.0.0.2\"]}") == 200);
	r = t_validate(ACME_CHALL_HTTP01, "dns", "dead.example.test", "good",
	    T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_CONN);
	CHECK(t_has(r.detail, "127.0.0.2"));

	if (F.http6 == NULL || F.http6_port != F.http_port) {
		fprintf(stderr, "SKIP: ::1 not usable on port %d: no "
		    "IPv4-to-IPv6 fallback case\n", F.http_port);
		return;
	}
	/* A refused, AAAA answers: IPv4 is tried first, then ::1 */
	CHECK(t_mgmt("/add-a", "{\"host\":\"dual.example.test.\","
	    "\"addresses\":[\"127.0.0.2\"]}") == 200);
	CHECK(t_mgmt("/add-aaaa", "{\"host\":\"dual.example.test.\","
	    "\"addresses\":[\"::1\"]}") == 200);
	r = t_validate(ACME_CHALL_HTTP01, "dns", "dual.example.test", "good",
	    T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(r.valid);
	CHECK_STR(F.last_host, "dual.example.test");
}

static void
test_http01_nxdomain(void)
{
	struct acme_validation_result r;
	char res[64];

	t_setup();
	t_resolver(F.minidns_port, res, sizeof(res));
	r = t_validate(ACME_CHALL_HTTP01, "dns", "host.nx.test", "good",
	    T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	CHECK(t_has(r.detail, "NXDOMAIN"));
	CHECK(t_has(r.detail, "host.nx.test"));

	/* NOERROR without addresses */
	r = t_validate(ACME_CHALL_HTTP01, "dns", "empty.test", "good",
	    T_KEYAUTH, F.http_port, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	CHECK(t_has(r.detail, "empty.test"));
}

static void
test_dns_resolver_down(void)
{
	struct acme_validation_result r;
	char res[64];

	t_setup();
	/* nothing listens there: ICMP port unreachable */
	t_resolver(F.refused_port, res, sizeof(res));
	r = t_validate(ACME_CHALL_HTTP01, "dns", T_DNS_NAME, "good",
	    T_KEYAUTH, F.http_port, 1, res, 1);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	CHECK(t_has(r.detail, T_DNS_NAME));
}

/* ---- dns-01 ---------------------------------------------------------------------- */

static void
test_dns01_challtestsrv(void)
{
	struct acme_validation_result r;
	char res[64], body[256];

	t_setup();
	if (!t_have_challtest())
		return;
	t_resolver(F.dns_port, res, sizeof(res));

	snprintf(body, sizeof(body), "{\"host\":\"_acme-challenge.ok.example."
	    "test.\",\"value\":\"%s\"}", F.expected_txt);
	CHECK(t_mgmt("/set-txt", body) == 200);
	r = t_validate(ACME_CHALL_DNS01, "dns", "ok.example.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(r.valid);

	/* the wrong value only */
	CHECK(t_mgmt("/set-txt", "{\"host\":\"_acme-challenge.bad.example."
	    "test.\",\"value\":\"not-the-digest\"}") == 200);
	r = t_validate(ACME_CHALL_DNS01, "dns", "bad.example.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, "Incorrect TXT record \"not-the-digest\" found "
	    "at _acme-challenge.bad.example.test"));

	/* a wrong one next to the right one is fine */
	snprintf(body, sizeof(body), "{\"host\":\"_acme-challenge.bad.example."
	    "test.\",\"value\":\"%s\"}", F.expected_txt);
	CHECK(t_mgmt("/set-txt", body) == 200);
	r = t_validate(ACME_CHALL_DNS01, "dns", "bad.example.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(r.valid);

	/* another key authorization: the same record is now wrong */
	r = t_validate(ACME_CHALL_DNS01, "dns", "ok.example.test", "tok",
	    T_OTHER_KEYAUTH, 1, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);

	/* no record */
	r = t_validate(ACME_CHALL_DNS01, "dns", "none.example.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	CHECK(t_has(r.detail, "No TXT record found at "
	    "_acme-challenge.none.example.test"));

	/* cleared again */
	CHECK(t_mgmt("/clear-txt", "{\"host\":\"_acme-challenge.ok.example."
	    "test.\"}") == 200);
	r = t_validate(ACME_CHALL_DNS01, "dns", "ok.example.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);

	/* SERVFAIL */
	CHECK(t_mgmt("/set-servfail", "{\"host\":\"_acme-challenge.sf."
	    "example.test.\"}") == 200);
	r = t_validate(ACME_CHALL_DNS01, "dns", "sf.example.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	CHECK(t_has(r.detail, "SERVFAIL"));
}

static void
test_dns01_txt_strings(void)
{
	struct acme_validation_result r;
	char res[64];
	int before;

	t_setup();
	t_resolver(F.minidns_port, res, sizeof(res));
	before = F.minidns_queries;
	/* one RR of two character-strings is one value (RFC 8555 §8.4) */
	r = t_validate(ACME_CHALL_DNS01, "dns", "chunked.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(r.valid);
	CHECK(F.minidns_queries > before);
	/* two RRs are two values, never joined */
	r = t_validate(ACME_CHALL_DNS01, "dns", "split.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, "(and 1 more)"));
	/* NXDOMAIN and NOERROR/NODATA */
	r = t_validate(ACME_CHALL_DNS01, "dns", "x.nx.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	CHECK(t_has(r.detail, "No TXT record found at _acme-challenge."
	    "x.nx.test"));
	r = t_validate(ACME_CHALL_DNS01, "dns", "nothing.test", "tok",
	    T_KEYAUTH, 1, 1, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	/* a resolver that never answers: the overall timeout */
	t_resolver(F.blackhole_port, res, sizeof(res));
	r = t_validate(ACME_CHALL_DNS01, "dns", "chunked.test", "tok",
	    T_KEYAUTH, 1, 1, res, 1);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_DNS);
	CHECK(t_has(r.detail, "timed out"));
}

/* ---- tls-alpn-01 ------------------------------------------------------------------- */

static void
test_tlsalpn01_ip(void)
{
	struct acme_validation_result r;
	struct t_tls *t = &F.tls[T_TLS_GOOD_IP];

	t_setup();
	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, t->port, NULL, 5);
	CHECK(r.valid);
	CHECK_STR(t->sni, "1.0.0.127.in-addr.arpa");	/* RFC 8738 §6 */
	CHECK(t->alpnlen == 11 && memcmp(t->alpn, "\x0a" "acme-tls/1",
	    11) == 0);				/* only acme-tls/1 offered */
	CHECK(t->handshakes >= 1);

	/* another key authorization: the digest does not match */
	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_OTHER_KEYAUTH, 1, t->port, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	/* another identifier: the SAN does not match */
	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.2", "tok",
	    T_KEYAUTH, 1, t->port, NULL, 5);
	CHECK(!r.valid);
	if (!r.valid && strcmp(r.problem_type, P_CONN) != 0) {
		/* 127.0.0.2 reaches loopback on Linux */
		CHECK_STR(r.problem_type, P_UNAUTH);
		CHECK(t_has(r.detail, "127.0.0.1"));
	}
}

static void
test_tlsalpn01_bad_certs(void)
{
	struct acme_validation_result r;

	t_setup();
	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, F.tls[T_TLS_WRONG_DIGEST].port, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, "SHA-256"));

	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, F.tls[T_TLS_NONCRITICAL].port, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, "not critical"));

	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, F.tls[T_TLS_TWO_SANS].port, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, "127.0.0.1, other.example.test"));

	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, F.tls[T_TLS_NO_ALPN].port, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_TLS);
	CHECK(t_has(r.detail, "acme-tls/1"));

	/* a DNS SAN for an IP identifier */
	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, F.tls[T_TLS_GOOD_DNS].port, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);

	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, F.refused_port, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_CONN);

	/* a peer that accepts TCP and never speaks TLS */
	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, F.silent_port, NULL, 1);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_CONN);
	CHECK(t_has(r.detail, "TLS handshake"));

	/* a plain HTTP server answers the ClientHello with garbage */
	r = t_validate(ACME_CHALL_TLSALPN01, "ip", "127.0.0.1", "tok",
	    T_KEYAUTH, 1, F.http_port, NULL, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_TLS);
}

static void
test_tlsalpn01_dns_name(void)
{
	struct acme_validation_result r;
	struct t_tls *t = &F.tls[T_TLS_GOOD_DNS];
	char res[64];

	t_setup();
	if (!t_have_challtest())
		return;
	t_resolver(F.dns_port, res, sizeof(res));
	r = t_validate(ACME_CHALL_TLSALPN01, "dns", T_TLS_NAME, "tok",
	    T_KEYAUTH, 1, t->port, res, 5);
	CHECK(r.valid);
	CHECK_STR(t->sni, T_TLS_NAME);
	/* case does not matter in a DNS SAN */
	r = t_validate(ACME_CHALL_TLSALPN01, "dns", "TLS.Example.TEST", "tok",
	    T_KEYAUTH, 1, t->port, res, 5);
	CHECK(r.valid);
	r = t_validate(ACME_CHALL_TLSALPN01, "dns", "other.example.test",
	    "tok", T_KEYAUTH, 1, t->port, res, 5);
	CHECK(!r.valid);
	CHECK_STR(r.problem_type, P_UNAUTH);
	CHECK(t_has(r.detail, T_TLS_NAME));
}

/* ---- contract ---------------------------------------------------------------------- */

static void
t_never(void *arg, const struct acme_validation_result *res)
{
	int *calls = arg;

	(void)res;
	(*calls)++;
}

static void
test_refused_requests(void)
{
	struct acme_validator_config cfg = { 80, 443, NULL, 0 };
	struct acme_validation_req req;
	struct acme_validator *v;
	int calls = 0;

	t_setup();
	CHECK(acme_validator_new(F.base, NULL) == NULL);
	cfg.http01_port = 0;
	CHECK(acme_validator_new(F.base, &cfg) == NULL);
	cfg.http01_port = 80;
	cfg.dns_resolver = "not-an-address";
	CHECK(acme_validator_new(F.base, &cfg) == NULL);
	cfg.dns_resolver = "";
	v = acme_validator_new(F.base, &cfg);	/* timeout 0: the default */
	CHECK(v != NULL);

	req = (struct acme_validation_req){ ACME_CHALL_DNS01, "ip",
	    "127.0.0.1", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == -1);
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "dns",
	    "*.example.com", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == -1);
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "dns",
	    "a..example.com", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == -1);
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "dns",
	    "example.com", "../../etc", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == -1);
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "dns",
	    "example.com", "tok", "key auth\r\n" };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == -1);
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "email",
	    "a@example.com", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == -1);
	req = (struct acme_validation_req){ ACME_CHALL_TLSALPN01, "ip",
	    "300.1.2.3", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == -1);
	req = (struct acme_validation_req){ ACME_CHALL__MAX, "dns",
	    "example.com", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == -1);
	t_loop_for(50);
	CHECK(calls == 0);
	acme_validator_free(v);
	acme_validator_free(NULL);
}

/* Frees the validator while an HTTP request, a DNS query and a TLS
 * handshake are all in flight: no callback, no leak (ASan). */
static void
test_free_in_flight(void)
{
	struct acme_validator_config cfg = { 0, 0, NULL, 5 };
	struct acme_validation_req req;
	struct acme_validator *v;
	char res[64];
	int calls = 0;

	t_setup();
	cfg.http01_port = F.http_port;
	cfg.tlsalpn01_port = F.silent_port;
	cfg.dns_resolver = t_resolver(F.blackhole_port, res, sizeof(res));
	v = acme_validator_new(F.base, &cfg);
	CHECK(v != NULL);
	if (v == NULL)
		return;
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "ip",
	    "127.0.0.1", "slow", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == 0);
	req = (struct acme_validation_req){ ACME_CHALL_DNS01, "dns",
	    "example.test", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == 0);
	req = (struct acme_validation_req){ ACME_CHALL_TLSALPN01, "ip",
	    "127.0.0.1", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == 0);
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "dns",
	    "resolving.test", "tok", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == 0);
	t_loop_for(300);
	CHECK(calls == 0);
	acme_validator_free(v);
	t_loop_for(100);
	CHECK(calls == 0);

	/* freed right after start, before the loop ran at all */
	v = acme_validator_new(F.base, &cfg);
	CHECK(v != NULL);
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "ip",
	    "127.0.0.1", "good", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_never, &calls) == 0);
	acme_validator_free(v);
	t_loop_for(100);
	CHECK(calls == 0);
}

/* done() may free the validator; many validations at once each get
 * exactly one answer. */
static void
test_done_frees_and_concurrency(void)
{
	struct acme_validator_config cfg = { 0, 0, NULL, 5 };
	struct acme_validation_req req;
	struct acme_validator *v;
	struct t_outcome o[8];
	int i, valid = 0, total = 0;

	t_setup();
	cfg.http01_port = F.http_port;
	cfg.tlsalpn01_port = F.tls[T_TLS_GOOD_IP].port;
	v = acme_validator_new(F.base, &cfg);
	CHECK(v != NULL);
	if (v == NULL)
		return;
	memset(o, 0, sizeof(o));
	for (i = 0; i < 8; i++) {
		req = (struct acme_validation_req){ i % 2 == 0 ?
		    ACME_CHALL_HTTP01 : ACME_CHALL_TLSALPN01, "ip",
		    "127.0.0.1", i % 4 == 0 ? "good" : i % 4 == 2 ? "wrong" :
		    "tok", T_KEYAUTH };
		CHECK(acme_validator_start(v, &req, t_done, &o[i]) == 0);
	}
	for (i = 0; i < 8; i++)
		t_loop_until(&o[i]);
	t_loop_for(20);
	for (i = 0; i < 8; i++) {
		CHECK(o[i].calls == 1);
		total += o[i].calls;
		valid += o[i].res.valid;
	}
	CHECK(total == 8);
	CHECK(valid == 6);	/* the two "wrong" bodies fail */

	/* the last callback frees the validator */
	memset(o, 0, sizeof(o));
	o[0].free_in_done = v;
	req = (struct acme_validation_req){ ACME_CHALL_HTTP01, "ip",
	    "127.0.0.1", "missing", T_KEYAUTH };
	CHECK(acme_validator_start(v, &req, t_done, &o[0]) == 0);
	t_loop_until(&o[0]);
	CHECK(o[0].calls == 1);
	CHECK(o[0].free_in_done == NULL);
	t_loop_for(20);
}

const struct test_case test_cases[] = {
	TEST(test_http01_ip_valid),
	TEST(test_http01_wrong_body),
	TEST(test_http01_binary_body),
	TEST(test_http01_not_found),
	TEST(test_http01_oversized),
	TEST(test_http01_redirects),
	TEST(test_http01_redirect_https),
	TEST(test_http01_refused),
	TEST(test_http01_timeout),
	TEST(test_http01_ipv6),
	TEST(test_http01_dns_name),
	TEST(test_http01_addresses),
	TEST(test_http01_nxdomain),
	TEST(test_dns_resolver_down),
	TEST(test_dns01_challtestsrv),
	TEST(test_dns01_txt_strings),
	TEST(test_tlsalpn01_ip),
	TEST(test_tlsalpn01_bad_certs),
	TEST(test_tlsalpn01_dns_name),
	TEST(test_refused_requests),
	TEST(test_free_in_flight),
	TEST(test_done_frees_and_concurrency),
	{ 0 }
};
