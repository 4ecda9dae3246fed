/*
 * protocols/acme/validate.c — challenge validation on the jobs thread:
 * http-01 (RFC 8555 §8.3; RFC 8738 for IP identifiers), dns-01 (§8.4)
 * and tls-alpn-01 (RFC 8737).
 *
 * Nothing here blocks. Names resolve through one c-ares channel, HTTP
 * goes through one libcurl multi handle (common_curlev), TLS through an
 * OpenSSL state machine on a non-blocking socket, and all three are
 * driven by libevent events on the event_base the validator was created
 * with.
 *
 * A validation walks resolve -> connect/fetch (-> redirect -> resolve ...)
 * -> check. Whatever ends it (a check, an error, the overall timer) goes
 * through validate_complete(), which stops every piece of I/O and makes
 * the validation's finish event active; the finish event unlinks and
 * frees the validation and only then calls done(). So done() runs exactly
 * once, never inside acme_validator_start(), and acme_validator_free()
 * can drop a validation at any step without calling it.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ares.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "protocols/acme/acme.h"

#define VALIDATE_TIMEOUT_DEFAULT 10	/* seconds, when the config says 0 */
#define VALIDATE_TIMEOUT_MAX	300	/* seconds */
#define VALIDATE_NAME_MAX	253	/* DNS name, RFC 1035 §2.3.4 */
#define VALIDATE_LABEL_MAX	63
#define VALIDATE_TOKEN_MAX	128	/* ours are 43 characters */
#define VALIDATE_KEYAUTH_MAX	512	/* token "." base64url thumbprint */
#define VALIDATE_ADDRS_MAX	16	/* addresses tried per name */
#define VALIDATE_REDIRECTS_MAX	10	/* http-01 redirects followed */
#define VALIDATE_BODY_MAX	(64 * 1024) /* http-01 response body */
#define VALIDATE_URL_MAX	2048
#define VALIDATE_TXT_MAX	4096	/* one TXT value; longer never matches */
#define VALIDATE_SHOWN_MAX	64	/* bytes of a wrong answer quoted back */
#define VALIDATE_URL_SHOWN_MAX	200	/* bytes of a URL quoted in a detail */
#define VALIDATE_DNS_TRIES	3	/* c-ares tries per server */
#define VALIDATE_DNS_TRY_MIN_MS	250	/* first c-ares try, at least */
#define VALIDATE_DNS_TRY_MAX_MS	5000
#define VALIDATE_USER_AGENT	"pkid-validator"
#define VALIDATE_WELL_KNOWN	"/.well-known/acme-challenge/"
#define VALIDATE_DNS01_LABEL	"_acme-challenge."
#define VALIDATE_DNS_CLASS_IN	1	/* RFC 1035 §3.2.4 */
#define VALIDATE_DNS_TYPE_TXT	16	/* RFC 1035 §3.2.2 */
#define VALIDATE_ALPN		"acme-tls/1"	/* RFC 8737 §6.2 */
#define VALIDATE_ALPN_LEN	(sizeof(VALIDATE_ALPN) - 1)
#define VALIDATE_ACME_ID_OID	"1.3.6.1.5.5.7.1.31" /* RFC 8737 §6.1 */
#define VALIDATE_PROBLEM_PREFIX	"urn:ietf:params:acme:error:"

enum validate_phase {
	VALIDATE_PHASE_RESOLVE,		/* A/AAAA or TXT lookup in flight */
	VALIDATE_PHASE_CONNECT,		/* tls-alpn-01 TCP connect */
	VALIDATE_PHASE_HANDSHAKE,	/* tls-alpn-01 TLS handshake */
	VALIDATE_PHASE_FETCH,		/* http-01 request in flight */
	VALIDATE_PHASE_DONE
};

struct validate_addr {
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 text[INET6_ADDRSTRLEN];
};

struct validation;

/* One c-ares query in flight. c-ares owns it until its callback runs;
 * a validation that goes away first only clears val. */
struct validate_lookup {
	struct validation	*val;	/* NULL once the validation is gone */
};

struct validation {
	TAILQ_ENTRY(validation)	 entry;
	struct acme_validator	*v;
	enum acme_chall_type	 type;
	bool			 is_ip;
	char			 ident[VALIDATE_NAME_MAX + 1]; /* name without
						   trailing dot, or the IP */
	unsigned char		 ip[16];	/* is_ip: the address */
	size_t			 iplen;		/* 4 or 16 */
	char			*token;
	char			*keyauth;
	void			(*done)(void *,
				    const struct acme_validation_result *);
	void			*arg;
	struct acme_validation_result res;
	enum validate_phase	 phase;
	uint64_t		 deadline_ms;	/* common_mono_ms() */
	struct event		*timer;		/* the overall timeout */
	struct event		*finish;	/* runs done() */

	/* name resolution */
	struct validate_lookup	*lookup;
	char			 qname[VALIDATE_NAME_MAX + 1]; /* being resolved */
	void			(*resolved)(struct validation *);
	struct validate_addr	 addrs[VALIDATE_ADDRS_MAX];
	size_t			 naddrs;
	size_t			 next_addr;
	const struct validate_addr *addr;	/* the one being tried */
	int			 port;		/* where it connects */

	/* http-01 */
	CURL			*easy;
	struct curl_slist	*headers;
	struct curl_slist	*connect_to;
	char			 url[VALIDATE_URL_MAX + 1];
	char			 host[VALIDATE_NAME_MAX + 1]; /* of url, no [] */
	bool			 host_is_ip;
	int			 redirects;
	struct common_buf	 body;
	bool			 body_overflow;
	char			 curl_err[CURL_ERROR_SIZE];

	/* dns-01 */
	char			 expected[64];	/* base64url(SHA-256(keyauth)) */

	/* tls-alpn-01 */
	char			 sni[VALIDATE_NAME_MAX + 1];
	int			 fd;
	SSL			*ssl;
	struct event		*io;
};

/* A socket c-ares asked us to watch. */
struct validate_ares_sock {
	LIST_ENTRY(validate_ares_sock) entry;
	ares_socket_t		 fd;
	struct event		*ev;
};

struct acme_validator {
	struct event_base	*base;
	int			 http01_port;
	int			 tlsalpn01_port;
	int			 timeout_seconds;
	bool			 ares_lib;	/* ares_library_init done */
	ares_channel		 ares;
	struct event		*ares_timer;
	LIST_HEAD(validate_ares_socks, validate_ares_sock) ares_socks;
	struct common_curlev	*curl;		/* http-01 transfers */
	SSL_CTX			*tls;
	TAILQ_HEAD(validate_list, validation) live;
};

static void validate_resolve(struct validation *,
    void (*)(struct validation *));
static void validate_http01_fetch(struct validation *);
static void validate_tlsalpn01_connect(struct validation *);

/* ---- small helpers -------------------------------------------------------- */

static const char *
validate_type_name(enum acme_chall_type t)
{
	switch (t) {
	case ACME_CHALL_HTTP01:
		return "http-01";
	case ACME_CHALL_DNS01:
		return "dns-01";
	case ACME_CHALL_TLSALPN01:
		return "tls-alpn-01";
	default:
		return "unknown";
	}
}

/*
 * Writes at most `shown` bytes of p[0..n) into out as printable ASCII,
 * with '"' and '\' escaped and other bytes as \xNN, and "..." when cut,
 * so that the result can go into JSON and logs as it is. out is always
 * NUL-terminated.
 */
static void
validate_quote(const void *p, size_t n, size_t shown, char *out,
    size_t outlen)
{
	const unsigned char *s = p;
	size_t i, o = 0;
	char esc[5];
	const char *piece;
	size_t plen;

	if (outlen == 0)
		return;
	for (i = 0; i < n && i < shown; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)s[i];
			esc[2] = '\0';
			piece = esc;
		} else if (s[i] >= 0x20 && s[i] < 0x7f) {
			esc[0] = (char)s[i];
			esc[1] = '\0';
			piece = esc;
		} else {
			snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
			piece = esc;
		}
		plen = strlen(piece);
		if (o + plen + 4 > outlen)	/* room for "..." and NUL */
			break;
		memcpy(out + o, piece, plen);
		o += plen;
	}
	if (i < n && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* The current URL, quoted and shortened for a problem detail. */
static const char *
validate_url_shown(const struct validation *val, char *out, size_t outlen)
{
	validate_quote(val->url, strlen(val->url), VALIDATE_URL_SHOWN_MAX,
	    out, outlen);
	return out;
}

/*
 * True when s is a DNS name we are willing to look up: 1..253 bytes of
 * LDH labels (underscores tolerated, as in _acme-challenge), no empty
 * label, no trailing dot (callers strip it).
 */
static bool
validate_name_ok(const char *s)
{
	size_t len = strlen(s), label = 0, i;

	if (len == 0 || len > VALIDATE_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > VALIDATE_LABEL_MAX)
			return false;
	}
	return label > 0;
}

/* True when s is 1..VALIDATE_TOKEN_MAX base64url characters (RFC 8555
 * §8.1: the token goes into a URL path as it is). */
static bool
validate_token_ok(const char *s)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > VALIDATE_TOKEN_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* True when s is 1..VALIDATE_KEYAUTH_MAX visible ASCII characters. */
static bool
validate_keyauth_ok(const char *s)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > VALIDATE_KEYAUTH_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return false;
	return true;
}

/* Milliseconds left before the overall deadline, at least 1. */
static long
validate_remaining_ms(const struct validation *val)
{
	uint64_t now = common_mono_ms();

	if (now >= val->deadline_ms)
		return 1;
	return (long)(val->deadline_ms - now);
}

/* ---- ending a validation ---------------------------------------------------- */

/*
 * Stops every piece of I/O the validation has in flight: detaches its
 * c-ares query, removes its curl transfer, closes its TLS connection and
 * stops its timer. Safe to call more than once.
 */
static void
validate_stop_io(struct validation *val)
{
	if (val->lookup != NULL) {
		val->lookup->val = NULL;	/* c-ares frees it */
		val->lookup = NULL;
	}
	if (val->easy != NULL) {
		common_curlev_remove(val->v->curl, val->easy);
		curl_easy_cleanup(val->easy);
		val->easy = NULL;
	}
	curl_slist_free_all(val->headers);
	val->headers = NULL;
	curl_slist_free_all(val->connect_to);
	val->connect_to = NULL;
	if (val->io != NULL) {
		event_free(val->io);
		val->io = NULL;
	}
	if (val->ssl != NULL) {
		SSL_free(val->ssl);
		val->ssl = NULL;
	}
	if (val->fd != -1) {
		close(val->fd);
		val->fd = -1;
	}
	if (val->timer != NULL)
		event_del(val->timer);
	common_buf_free(&val->body);
}

/* Frees a validation that is already unlinked and stopped. */
static void
validate_free(struct validation *val)
{
	if (val == NULL)
		return;
	validate_stop_io(val);
	if (val->timer != NULL)
		event_free(val->timer);
	if (val->finish != NULL)
		event_free(val->finish);
	free(val->token);
	free(val->keyauth);
	free(val);
}

/*
 * Ends a validation with the result in val->res: stops its I/O, logs the
 * outcome and schedules done() through the finish event. Later calls do
 * nothing (the first outcome wins).
 */
static void
validate_complete(struct validation *val)
{
	char labels[96];

	if (val->phase == VALIDATE_PHASE_DONE)
		return;
	val->phase = VALIDATE_PHASE_DONE;
	validate_stop_io(val);
	if (val->res.valid)
		log_info("acme: %s validation of %s %s: valid",
		    validate_type_name(val->type), val->is_ip ? "ip" : "dns",
		    val->ident);
	else
		log_info("acme: %s validation of %s %s: invalid: %s: %s",
		    validate_type_name(val->type), val->is_ip ? "ip" : "dns",
		    val->ident, val->res.problem_type, val->res.detail);
	snprintf(labels, sizeof(labels), "type=\"%s\",result=\"%s\"",
	    validate_type_name(val->type), val->res.valid ? "valid" :
	    "invalid");
	common_metric_inc("pkid_acme_validations_total", labels);
	event_active(val->finish, EV_TIMEOUT, 0);
}

/* Ends the validation as valid. */
static void
validate_succeed(struct validation *val)
{
	val->res.valid = true;
	val->res.problem_type[0] = '\0';
	val->res.detail[0] = '\0';
	validate_complete(val);
}

/* Ends the validation as invalid with the RFC 8555 §6.7 problem `type`
 * ("connection", "dns", ...) and a printf-style detail. */
static void validate_fail(struct validation *val, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
validate_fail(struct validation *val, const char *type, const char *fmt, ...)
{
	va_list ap;

	if (val->phase == VALIDATE_PHASE_DONE)
		return;
	val->res.valid = false;
	snprintf(val->res.problem_type, sizeof(val->res.problem_type),
	    "%s%s", VALIDATE_PROBLEM_PREFIX, type);
	va_start(ap, fmt);
	vsnprintf(val->res.detail, sizeof(val->res.detail), fmt, ap);
	va_end(ap);
	validate_complete(val);
}

/*
 * The finish event: unlinks and frees the validation, then hands a copy
 * of the result to done(). Nothing touches the validator after done()
 * returns, so done() may start validations or even free the validator.
 */
static void
validate_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct validation *val = arg;
	struct acme_validation_result res = val->res;
	void (*done)(void *, const struct acme_validation_result *) =
	    val->done;
	void *darg = val->arg;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&val->v->live, val, entry);
	validate_free(val);
	done(darg, &res);
}

/* The overall timeout: says what was still going on. */
static void
validate_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct validation *val = arg;
	struct acme_validator *v = val->v;
	char url[VALIDATE_URL_SHOWN_MAX + 8];

	(void)fd;
	(void)what;
	switch (val->phase) {
	case VALIDATE_PHASE_RESOLVE:
		validate_fail(val, "dns", "DNS problem: query timed out "
		    "looking up %s for %s",
		    val->type == ACME_CHALL_DNS01 ? "TXT" : "A/AAAA",
		    val->qname);
		break;
	case VALIDATE_PHASE_FETCH:
		validate_fail(val, "connection", "Fetching %s: timeout "
		    "after %d seconds", validate_url_shown(val, url,
		    sizeof(url)), v->timeout_seconds);
		break;
	case VALIDATE_PHASE_CONNECT:
	case VALIDATE_PHASE_HANDSHAKE:
		validate_fail(val, "connection", "Timeout after %d seconds "
		    "%s %s port %d for the tls-alpn-01 challenge",
		    v->timeout_seconds, val->phase == VALIDATE_PHASE_CONNECT ?
		    "connecting to" : "during the TLS handshake with",
		    val->addr != NULL ? val->addr->text : val->ident,
		    val->port);
		break;
	case VALIDATE_PHASE_DONE:
		break;
	}
}

/* ---- c-ares on libevent ----------------------------------------------------- */

/* Re-arms the c-ares timer from ares_timeout(); stops it when idle. */
static void
validate_ares_rearm(struct acme_validator *v)
{
	struct timeval tv, *tvp;

	tvp = ares_timeout(v->ares, NULL, &tv);
	if (tvp == NULL)
		event_del(v->ares_timer);
	else
		event_add(v->ares_timer, tvp);
}

static void
validate_ares_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_validator *v = arg;

	ares_process_fd(v->ares,
	    (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	validate_ares_rearm(v);
}

static void
validate_ares_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_validator *v = arg;

	(void)fd;
	(void)what;
	ares_process_fd(v->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	validate_ares_rearm(v);
}

/*
 * ARES_OPT_SOCK_STATE_CB: c-ares says which of its sockets it wants to
 * read or write; (0, 0) means the socket is closing.
 */
static void
validate_ares_sock_cb(void *data, ares_socket_t fd, int readable,
    int writable)
{
	struct acme_validator *v = data;
	struct validate_ares_sock *s;
	short flags = EV_PERSIST;

	LIST_FOREACH(s, &v->ares_socks, entry)
		if (s->fd == fd)
			break;
	if (!readable && !writable) {
		if (s != NULL) {
			LIST_REMOVE(s, entry);
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			log_err("acme: validator: watching a resolver socket: "
			    "out of memory");
			return;
		}
		s->fd = fd;
		LIST_INSERT_HEAD(&v->ares_socks, s, entry);
	} else {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (readable)
		flags |= EV_READ;
	if (writable)
		flags |= EV_WRITE;
	if ((s->ev = event_new(v->base, fd, flags, validate_ares_io_cb, v)) ==
	    NULL || event_add(s->ev, NULL) == -1)
		log_err("acme: validator: watching resolver socket %d failed",
		    (int)fd);
	/* without the event the query ends through c-ares' own timeout */
}

/*
 * Creates the c-ares channel: DNS only (no hosts file), no search list,
 * per-try timeouts that fit in the overall timeout, and the configured
 * resolver when there is one. 0 or -1.
 */
static int
validate_ares_init(struct acme_validator *v, const char *resolver)
{
	struct ares_options opts;
	int optmask, rc, try_ms;
	char lookups[] = "b";

	memset(&opts, 0, sizeof(opts));
	try_ms = v->timeout_seconds * 1000 / 8;	/* 3 tries: 1+2+4 = 7/8 */
	if (try_ms < VALIDATE_DNS_TRY_MIN_MS)
		try_ms = VALIDATE_DNS_TRY_MIN_MS;
	if (try_ms > VALIDATE_DNS_TRY_MAX_MS)
		try_ms = VALIDATE_DNS_TRY_MAX_MS;
	opts.timeout = try_ms;
	opts.tries = VALIDATE_DNS_TRIES;
	opts.ndomains = 0;
	opts.domains = NULL;
	opts.lookups = lookups;
	opts.sock_state_cb = validate_ares_sock_cb;
	opts.sock_state_cb_data = v;
	/* Hand SERVFAIL and REFUSED answers to the callback as they are:
	 * otherwise c-ares 1.18 retries and ends with ARES_ECONNREFUSED,
	 * and the problem detail could not say what the resolver said. */
	opts.flags = ARES_FLAG_NOCHECKRESP;
	optmask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
	if ((rc = ares_init_options(&v->ares, &opts, optmask)) !=
	    ARES_SUCCESS) {
		log_err("acme: validator: c-ares init: %s", ares_strerror(rc));
		v->ares = NULL;
		return -1;
	}
	if (resolver != NULL && resolver[0] != '\0' &&
	    (rc = ares_set_servers_ports_csv(v->ares, resolver)) !=
	    ARES_SUCCESS) {
		log_err("acme: validator: dns_resolver \"%s\": %s (want "
		    "IPv4:port or [IPv6]:port)", resolver, ares_strerror(rc));
		return -1;
	}
	return 0;
}

/* Short text for a c-ares failure, in the words DNS operators use. */
static const char *
validate_ares_reason(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
		return "NXDOMAIN";
	case ARES_ENODATA:
		return "no records";
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ETIMEOUT:
		return "query timed out";
	case ARES_ECONNREFUSED:
		return "resolver refused the connection";
	default:
		return ares_strerror(status);
	}
}

/* Detaches the validation's lookup from c-ares' callback argument and
 * returns the validation it served, or NULL if that one is gone. */
static struct validation *
validate_lookup_end(struct validate_lookup *lk, int status)
{
	struct validation *val = lk->val;

	free(lk);
	if (val == NULL)
		return NULL;
	val->lookup = NULL;
	if (status == ARES_EDESTRUCTION)
		return NULL;
	return val;
}

/* Appends one resolved address unless it is there already. */
static void
validate_addr_add(struct validation *val, const struct sockaddr *sa,
    socklen_t len)
{
	struct validate_addr *a;
	const void *raw;
	size_t i;

	if (val->naddrs >= VALIDATE_ADDRS_MAX || len > sizeof(a->ss))
		return;
	if (sa->sa_family == AF_INET)
		raw = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		raw = &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr;
	else
		return;
	a = &val->addrs[val->naddrs];
	memset(a, 0, sizeof(*a));
	memcpy(&a->ss, sa, len);
	a->len = len;
	if (inet_ntop(sa->sa_family, raw, a->text, sizeof(a->text)) == NULL)
		return;
	for (i = 0; i < val->naddrs; i++)
		if (strcmp(val->addrs[i].text, a->text) == 0)
			return;
	val->naddrs++;
}

/* ares_getaddrinfo callback: IPv4 addresses first (DESIGN: loopback
 * peers often listen on 127.0.0.1 only), then IPv6. */
static void
validate_addrinfo_cb(void *arg, int status, int timeouts,
    struct ares_addrinfo *ai)
{
	struct validation *val = validate_lookup_end(arg, status);
	struct ares_addrinfo_node *n;
	int pass, family;

	(void)timeouts;
	if (val == NULL)
		goto out;
	if (status != ARES_SUCCESS) {
		if (status == ARES_ENODATA)
			validate_fail(val, "dns", "No valid IP addresses found "
			    "for %s", val->qname);
		else
			validate_fail(val, "dns", "DNS problem: %s looking up "
			    "A/AAAA for %s", validate_ares_reason(status),
			    val->qname);
		goto out;
	}
	val->naddrs = 0;
	val->next_addr = 0;
	for (pass = 0; pass < 2; pass++) {
		family = pass == 0 ? AF_INET : AF_INET6;
		for (n = ai != NULL ? ai->nodes : NULL; n != NULL;
		    n = n->ai_next)
			if (n->ai_family == family && n->ai_addr != NULL)
				validate_addr_add(val, n->ai_addr,
				    (socklen_t)n->ai_addrlen);
	}
	if (val->naddrs == 0) {
		validate_fail(val, "dns", "No valid IP addresses found for %s",
		    val->qname);
		goto out;
	}
	val->resolved(val);
out:
	if (ai != NULL)
		ares_freeaddrinfo(ai);
}

/*
 * Fills val->addrs with the literal address `ip` (text) and calls next
 * at once, or looks `name` up with c-ares and calls next from the
 * callback. Failures end the validation.
 */
static void
validate_resolve(struct validation *val, void (*next)(struct validation *))
{
	struct acme_validator *v = val->v;
	struct ares_addrinfo_hints hints;
	struct validate_lookup *lk;

	val->phase = VALIDATE_PHASE_RESOLVE;
	val->resolved = next;
	if ((lk = calloc(1, sizeof(*lk))) == NULL) {
		validate_fail(val, "serverInternal", "out of memory");
		return;
	}
	lk->val = val;
	val->lookup = lk;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ARES_AI_NOSORT;
	/* may call back at once; nothing below touches val */
	ares_getaddrinfo(v->ares, val->qname, NULL, &hints,
	    validate_addrinfo_cb, lk);
	validate_ares_rearm(v);
}

/* Makes the single address of an IP literal (text form, no brackets). */
static int
validate_addr_literal(struct validation *val, const char *text)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	val->naddrs = 0;
	val->next_addr = 0;
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, text, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		validate_addr_add(val, (struct sockaddr *)&sin, sizeof(sin));
	} else if (inet_pton(AF_INET6, text, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		validate_addr_add(val, (struct sockaddr *)&sin6,
		    sizeof(sin6));
	}
	return val->naddrs == 1 ? 0 : -1;
}

/* ---- http-01 --------------------------------------------------------------------- */

static size_t
validate_http01_write(char *p, size_t size, size_t n, void *arg)
{
	struct validation *val = arg;

	if (common_buf_add(&val->body, p, size * n) == -1) {
		val->body_overflow = true;
		return 0;	/* aborts the transfer: CURLE_WRITE_ERROR */
	}
	return size * n;
}

/* Fills host[] and url[] for the first request: the identifier on
 * cfg->http01_port. 0 or -1. */
static int
validate_http01_first_url(struct validation *val)
{
	struct acme_validator *v = val->v;
	char port[16] = "";
	bool v6 = val->is_ip && val->iplen == 16;
	int n;

	if (val->is_ip) {
		if (inet_ntop(v6 ? AF_INET6 : AF_INET, val->ip, val->host,
		    sizeof(val->host)) == NULL)
			return -1;
	} else
		snprintf(val->host, sizeof(val->host), "%s", val->ident);
	val->host_is_ip = val->is_ip;
	val->port = v->http01_port;
	if (val->port != 80)
		snprintf(port, sizeof(port), ":%d", val->port);
	n = snprintf(val->url, sizeof(val->url), "http://%s%s%s%s"
	    VALIDATE_WELL_KNOWN "%s", v6 ? "[" : "", val->host, v6 ? "]" : "",
	    port, val->token);
	return n > 0 && (size_t)n < sizeof(val->url) ? 0 : -1;
}

/* Starts the http-01 chain: resolve the name (not for IPs) and fetch. */
static void
validate_http01_begin(struct validation *val)
{
	if (validate_http01_first_url(val) == -1) {
		validate_fail(val, "malformed", "cannot build the http-01 URL "
		    "for %s", val->ident);
		return;
	}
	snprintf(val->qname, sizeof(val->qname), "%s", val->host);
	if (val->host_is_ip) {
		if (validate_addr_literal(val, val->host) == -1) {
			validate_fail(val, "malformed", "%s is not an IP "
			    "address", val->host);
			return;
		}
		validate_http01_fetch(val);
		return;
	}
	validate_resolve(val, validate_http01_fetch);
}

/*
 * Sends the GET for val->url to the next untried address of val->addrs:
 * the name is pinned to that address with CURLOPT_CONNECT_TO, so curl
 * never resolves anything itself. No proxy, no automatic redirects, no
 * certificate checks (RFC 8555 §8.3 lets validation servers skip them),
 * body capped at VALIDATE_BODY_MAX.
 */
static void
validate_http01_fetch(struct validation *val)
{
	struct acme_validator *v = val->v;
	struct curl_slist *l;
	char line[VALIDATE_NAME_MAX + 2 * INET6_ADDRSTRLEN + 64];
	long remaining, connect_ms;
	size_t left;
	bool v6;

	if (val->next_addr >= val->naddrs) {
		validate_fail(val, "connection", "no address left to try "
		    "for %s", val->host);
		return;
	}
	val->addr = &val->addrs[val->next_addr++];
	val->phase = VALIDATE_PHASE_FETCH;
	common_buf_free(&val->body);
	common_buf_init(&val->body, VALIDATE_BODY_MAX);
	val->body_overflow = false;
	val->curl_err[0] = '\0';
	if ((val->easy = curl_easy_init()) == NULL)
		goto internal;

	if (val->redirects == 0) {
		/* RFC 8555 §8.3: the Host header carries the identifier */
		v6 = val->is_ip && val->iplen == 16;
		snprintf(line, sizeof(line), "Host: %s%s%s", v6 ? "[" : "",
		    val->host, v6 ? "]" : "");
		if ((l = curl_slist_append(NULL, line)) == NULL)
			goto internal;
		val->headers = l;
	}
	if (!val->host_is_ip) {
		v6 = val->addr->ss.ss_family == AF_INET6;
		snprintf(line, sizeof(line), "%s:%d:%s%s%s:%d", val->host,
		    val->port, v6 ? "[" : "", val->addr->text, v6 ? "]" : "",
		    val->port);
		if ((l = curl_slist_append(NULL, line)) == NULL)
			goto internal;
		val->connect_to = l;
	}
	remaining = validate_remaining_ms(val);
	left = val->naddrs - val->next_addr + 1;
	connect_ms = remaining / (long)left;
	if (connect_ms < 1)
		connect_ms = 1;

	if (curl_easy_setopt(val->easy, CURLOPT_URL, val->url) != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_PRIVATE, val) != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_ERRORBUFFER, val->curl_err) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_NOPROXY, "*") != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_FOLLOWLOCATION, 0L) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_1_1) != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_USERAGENT,
	    VALIDATE_USER_AGENT) != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_HTTPHEADER, val->headers) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_CONNECT_TO, val->connect_to) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_FRESH_CONNECT, 1L) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_FORBID_REUSE, 1L) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_SSL_VERIFYPEER, 0L) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_SSL_VERIFYHOST, 0L) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_TIMEOUT_MS, remaining) !=
	    CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    connect_ms) != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)VALIDATE_BODY_MAX) != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_WRITEFUNCTION,
	    validate_http01_write) != CURLE_OK ||
	    curl_easy_setopt(val->easy, CURLOPT_WRITEDATA, val) != CURLE_OK)
		goto internal;
	if (common_curlev_add(v->curl, val->easy) == -1) {
		curl_easy_cleanup(val->easy);
		val->easy = NULL;
		validate_fail(val, "serverInternal", "cannot start the "
		    "http-01 request");
	}
	return;
internal:
	log_err("acme: validator: setting up the request for %s failed",
	    val->url);
	validate_fail(val, "serverInternal", "cannot start the http-01 "
	    "request");
}

/*
 * Follows one redirect (RFC 8555 §8.3 allows it; we do it ourselves so
 * the new host goes through our resolver): http or https only, at most
 * VALIDATE_REDIRECTS_MAX, then resolve and fetch again.
 */
static void
validate_http01_redirect(struct validation *val, const char *location)
{
	char shown[VALIDATE_URL_SHOWN_MAX + 8];
	char *scheme = NULL, *host = NULL, *port = NULL, *url = NULL;
	char *zone = NULL;
	CURLU *u = NULL;
	size_t hlen;
	long p;

	validate_quote(location, strlen(location), VALIDATE_URL_SHOWN_MAX,
	    shown, sizeof(shown));
	if (++val->redirects > VALIDATE_REDIRECTS_MAX) {
		validate_fail(val, "connection", "Too many redirects (more "
		    "than %d), the last to \"%s\"", VALIDATE_REDIRECTS_MAX,
		    shown);
		goto out;
	}
	if ((u = curl_url()) == NULL) {
		validate_fail(val, "serverInternal", "out of memory");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
		validate_fail(val, "connection", "Invalid redirect target "
		    "\"%s\"", shown);
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0 &&
	    strcasecmp(scheme, "https") != 0) {
		validate_fail(val, "connection", "Redirect to \"%s\": only "
		    "http and https are followed", shown);
		goto out;
	}
	p = strtol(port, NULL, 10);
	if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK ||
	    p < 1 || p > 65535 || strlen(url) > VALIDATE_URL_MAX) {
		validate_fail(val, "connection", "Invalid redirect target "
		    "\"%s\"", shown);
		goto out;
	}
	/* IPv6 literals come back bracketed */
	hlen = strlen(host);
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host[hlen - 1] = '\0';
		memmove(host, host + 1, hlen - 1);
	}
	if (strlen(host) > VALIDATE_NAME_MAX) {
		validate_fail(val, "connection", "Invalid redirect target "
		    "\"%s\"", shown);
		goto out;
	}
	snprintf(val->url, sizeof(val->url), "%s", url);
	snprintf(val->host, sizeof(val->host), "%s", host);
	snprintf(val->qname, sizeof(val->qname), "%s", host);
	val->port = (int)p;
	if (validate_addr_literal(val, host) == 0) {
		val->host_is_ip = true;
		validate_http01_fetch(val);
		goto out;
	}
	val->host_is_ip = false;
	hlen = strlen(val->qname);
	if (hlen > 0 && val->qname[hlen - 1] == '.')
		val->qname[hlen - 1] = '\0';
	if (!validate_name_ok(val->qname)) {
		validate_fail(val, "connection", "Invalid host in redirect "
		    "target \"%s\"", shown);
		goto out;
	}
	validate_resolve(val, validate_http01_fetch);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(url);
	curl_free(zone);
	curl_url_cleanup(u);
}

/* True for the curl errors that come from TLS (https redirects). */
static bool
validate_curl_tls_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return true;
	default:
		return false;
	}
}

/* Compares the body, trailing whitespace trimmed, with the key
 * authorization and ends the validation. */
static void
validate_http01_compare(struct validation *val)
{
	char shown[VALIDATE_URL_SHOWN_MAX + 8];
	char got[VALIDATE_SHOWN_MAX * 4 + 8];
	char want[VALIDATE_SHOWN_MAX * 2 + 8];
	const unsigned char *b = val->body.data;
	size_t n = val->body.len, klen = strlen(val->keyauth);

	while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t' ||
	    b[n - 1] == '\r' || b[n - 1] == '\n'))
		n--;
	if (n == klen && CRYPTO_memcmp(b, val->keyauth, klen) == 0) {
		validate_succeed(val);
		return;
	}
	validate_quote(b != NULL ? b : (const unsigned char *)"", n,
	    VALIDATE_SHOWN_MAX, got, sizeof(got));
	validate_quote(val->keyauth, klen, VALIDATE_SHOWN_MAX, want,
	    sizeof(want));
	validate_fail(val, "unauthorized", "%s: The key authorization file "
	    "from the server did not match this challenge: expected \"%s\" "
	    "got \"%s\"", validate_url_shown(val, shown, sizeof(shown)), want,
	    got);
}

/*
 * A finished transfer (out of the multi handle already): another address
 * after a failed connect, a redirect, or the verdict on the answer.
 */
static void
validate_http01_done(struct validation *val, CURLcode rc)
{
	char shown[VALIDATE_URL_SHOWN_MAX + 8];
	char location[VALIDATE_URL_MAX + 1] = "";
	char *redir = NULL;
	long status = 0;
	curl_off_t connect_us = 0;

	curl_easy_getinfo(val->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(val->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
	if (curl_easy_getinfo(val->easy, CURLINFO_REDIRECT_URL, &redir) ==
	    CURLE_OK && redir != NULL) {
		if (strlen(redir) > VALIDATE_URL_MAX)
			snprintf(location, sizeof(location), "%s",
			    "(redirect URL too long)");
		else
			snprintf(location, sizeof(location), "%s", redir);
	}
	curl_easy_cleanup(val->easy);
	val->easy = NULL;
	curl_slist_free_all(val->headers);
	val->headers = NULL;
	curl_slist_free_all(val->connect_to);
	val->connect_to = NULL;
	validate_url_shown(val, shown, sizeof(shown));

	if ((rc == CURLE_WRITE_ERROR && val->body_overflow) ||
	    rc == CURLE_FILESIZE_EXCEEDED) {
		validate_fail(val, "unauthorized", "Fetching %s: the response "
		    "is larger than %d bytes", shown, VALIDATE_BODY_MAX);
		return;
	}
	if (rc != CURLE_OK) {
		if ((rc == CURLE_COULDNT_CONNECT ||
		    (rc == CURLE_OPERATION_TIMEDOUT && connect_us == 0)) &&
		    val->next_addr < val->naddrs) {
			log_debug("acme: validator: %s via %s: %s; trying the "
			    "next address", shown, val->addr->text,
			    val->curl_err);
			validate_http01_fetch(val);
			return;
		}
		validate_fail(val, validate_curl_tls_error(rc) ? "tls" :
		    "connection", "Fetching %s (%s port %d): %s", shown,
		    val->addr->text, val->port, val->curl_err[0] != '\0' ?
		    val->curl_err : curl_easy_strerror(rc));
		return;
	}
	if ((status == 301 || status == 302 || status == 303 ||
	    status == 307 || status == 308) && location[0] != '\0') {
		validate_http01_redirect(val, location);
		return;
	}
	if (status != 200) {
		validate_fail(val, "unauthorized", "Invalid response from %s "
		    "(%s port %d): HTTP %ld", shown, val->addr->text, val->port,
		    status);
		return;
	}
	validate_http01_compare(val);
}

/* common_curlev's done callback: hands a finished transfer to the
 * validation it belongs to. */
static void
validate_curl_done(CURL *easy, CURLcode rc, void *arg)
{
	struct validation *val;
	char *priv = NULL;

	(void)arg;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
	val = (struct validation *)(void *)priv;
	if (val != NULL && val->easy == easy)
		validate_http01_done(val, rc);
}

/* ---- dns-01 --------------------------------------------------------------------- */

struct validate_txt_scan {
	size_t	 records;	/* TXT RRs seen */
	bool	 matched;
	bool	 wrong;		/* first_wrong is set */
	char	 first_wrong[VALIDATE_SHOWN_MAX * 4 + 8];
};

/* One complete TXT value (its character-strings joined). */
static void
validate_dns01_record(struct validation *val, struct validate_txt_scan *st,
    const unsigned char *p, size_t n, bool cut)
{
	size_t elen = strlen(val->expected);

	st->records++;
	if (!cut && n == elen && CRYPTO_memcmp(p, val->expected, elen) == 0) {
		st->matched = true;
		return;
	}
	if (!st->wrong) {
		validate_quote(p, n, VALIDATE_SHOWN_MAX, st->first_wrong,
		    sizeof(st->first_wrong));
		st->wrong = true;
	}
}

/*
 * ares_query callback for the TXT lookup: valid when any TXT RR equals
 * base64url(SHA-256(key authorization)) (RFC 8555 §8.4). An RR made of
 * several character-strings is one value, its chunks joined.
 */
static void
validate_dns01_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct validation *val = validate_lookup_end(arg, status);
	struct validate_txt_scan st;
	struct ares_txt_ext *txt = NULL, *t;
	unsigned char *rec = NULL;
	size_t len = 0;
	bool have = false, cut = false;
	int rc;

	(void)timeouts;
	if (val == NULL)
		return;
	if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
		validate_fail(val, "dns", "No TXT record found at %s",
		    val->qname);
		return;
	}
	if (status != ARES_SUCCESS) {
		validate_fail(val, "dns", "DNS problem: %s looking up TXT for "
		    "%s", validate_ares_reason(status), val->qname);
		return;
	}
	rc = ares_parse_txt_reply_ext(abuf, alen, &txt);
	if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && txt == NULL)) {
		validate_fail(val, "dns", "No TXT record found at %s",
		    val->qname);
		goto out;
	}
	if (rc != ARES_SUCCESS) {
		validate_fail(val, "dns", "DNS problem: malformed TXT answer "
		    "for %s: %s", val->qname, ares_strerror(rc));
		goto out;
	}
	if ((rec = malloc(VALIDATE_TXT_MAX)) == NULL) {
		validate_fail(val, "serverInternal", "out of memory");
		goto out;
	}
	memset(&st, 0, sizeof(st));
	for (t = txt; t != NULL; t = t->next) {
		if (t->record_start && have) {
			validate_dns01_record(val, &st, rec, len, cut);
			len = 0;
			cut = false;
		}
		have = true;
		if (t->length > VALIDATE_TXT_MAX - len) {
			cut = true;
			continue;
		}
		if (t->length > 0)
			memcpy(rec + len, t->txt, t->length);
		len += t->length;
	}
	if (have)
		validate_dns01_record(val, &st, rec, len, cut);
	if (st.matched)
		validate_succeed(val);
	else if (st.records == 0)
		validate_fail(val, "dns", "No TXT record found at %s",
		    val->qname);
	else if (st.records == 1)
		validate_fail(val, "unauthorized", "Incorrect TXT record "
		    "\"%s\" found at %s", st.first_wrong, val->qname);
	else
		validate_fail(val, "unauthorized", "Incorrect TXT record "
		    "\"%s\" (and %zu more) found at %s", st.first_wrong,
		    st.records - 1, val->qname);
out:
	free(rec);
	if (txt != NULL)
		ares_free_data(txt);
}

/* Computes the expected TXT value and queries _acme-challenge.NAME. */
static void
validate_dns01_begin(struct validation *val)
{
	struct acme_validator *v = val->v;
	struct validate_lookup *lk;
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char *b64;
	int n;

	SHA256((const unsigned char *)val->keyauth, strlen(val->keyauth),
	    digest);
	if ((b64 = common_b64_encode(digest, sizeof(digest), true, 0)) ==
	    NULL) {
		validate_fail(val, "serverInternal", "out of memory");
		return;
	}
	snprintf(val->expected, sizeof(val->expected), "%s", b64);
	free(b64);
	n = snprintf(val->qname, sizeof(val->qname), VALIDATE_DNS01_LABEL "%s",
	    val->ident);
	if (n < 0 || (size_t)n >= sizeof(val->qname)) {
		validate_fail(val, "malformed", "%s" VALIDATE_DNS01_LABEL
		    " is longer than a DNS name may be", val->ident);
		return;
	}
	val->phase = VALIDATE_PHASE_RESOLVE;
	if ((lk = calloc(1, sizeof(*lk))) == NULL) {
		validate_fail(val, "serverInternal", "out of memory");
		return;
	}
	lk->val = val;
	val->lookup = lk;
	/* may call back at once; nothing below touches val */
	ares_query(v->ares, val->qname, VALIDATE_DNS_CLASS_IN,
	    VALIDATE_DNS_TYPE_TXT, validate_dns01_cb, lk);
	validate_ares_rearm(v);
}

/* ---- tls-alpn-01 ------------------------------------------------------------------ */

/*
 * The SNI for the handshake: the name, or for an IP identifier its
 * reverse-mapping name (RFC 8738 §6: in-addr.arpa / ip6.arpa).
 */
static int
validate_tlsalpn01_sni(struct validation *val)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int i, n;

	if (!val->is_ip) {
		snprintf(val->sni, sizeof(val->sni), "%s", val->ident);
		return 0;
	}
	if (val->iplen == 4) {
		n = snprintf(val->sni, sizeof(val->sni),
		    "%u.%u.%u.%u.in-addr.arpa", val->ip[3], val->ip[2],
		    val->ip[1], val->ip[0]);
		return n > 0 && (size_t)n < sizeof(val->sni) ? 0 : -1;
	}
	for (i = 15; i >= 0; i--) {
		val->sni[o++] = hex[val->ip[i] & 0x0f];
		val->sni[o++] = '.';
		val->sni[o++] = hex[val->ip[i] >> 4];
		val->sni[o++] = '.';
	}
	n = snprintf(val->sni + o, sizeof(val->sni) - o, "ip6.arpa");
	return n > 0 && (size_t)n < sizeof(val->sni) - o ? 0 : -1;
}

static void
validate_tlsalpn01_begin(struct validation *val)
{
	if (validate_tlsalpn01_sni(val) == -1) {
		validate_fail(val, "malformed", "cannot build the SNI for %s",
		    val->ident);
		return;
	}
	val->port = val->v->tlsalpn01_port;
	snprintf(val->qname, sizeof(val->qname), "%s", val->ident);
	if (val->is_ip) {
		if (validate_addr_literal(val, val->ident) == -1) {
			validate_fail(val, "malformed", "%s is not an IP "
			    "address", val->ident);
			return;
		}
		validate_tlsalpn01_connect(val);
		return;
	}
	validate_resolve(val, validate_tlsalpn01_connect);
}

static void validate_tlsalpn01_io_cb(evutil_socket_t, short, void *);

/* Waits for the socket to become readable or writable. 0 or -1. */
static int
validate_tlsalpn01_wait(struct validation *val, short what)
{
	if (val->io != NULL)
		event_free(val->io);
	if ((val->io = event_new(val->v->base, val->fd, what,
	    validate_tlsalpn01_io_cb, val)) == NULL ||
	    event_add(val->io, NULL) == -1) {
		log_err("acme: validator: waiting on the tls-alpn-01 socket "
		    "for %s failed", val->ident);
		validate_fail(val, "serverInternal", "cannot wait for the "
		    "tls-alpn-01 connection");
		return -1;
	}
	return 0;
}

/* Closes the socket of a failed connect, then tries the next address
 * or ends the validation with the error. */
static void
validate_tlsalpn01_connect_failed(struct validation *val, int err)
{
	if (val->io != NULL) {
		event_free(val->io);
		val->io = NULL;
	}
	close(val->fd);
	val->fd = -1;
	if (val->next_addr < val->naddrs) {
		log_debug("acme: validator: tls-alpn-01 %s port %d: %s; "
		    "trying the next address", val->addr->text, val->port,
		    strerror(err));
		validate_tlsalpn01_connect(val);
		return;
	}
	validate_fail(val, "connection", "Connecting to %s port %d for the "
	    "tls-alpn-01 challenge: %s", val->addr->text, val->port,
	    strerror(err));
}

/* Starts a non-blocking TCP connect to the next untried address. */
static void
validate_tlsalpn01_connect(struct validation *val)
{
	struct sockaddr_storage ss;
	int err;

	if (val->next_addr >= val->naddrs) {
		validate_fail(val, "connection", "no address left to try "
		    "for %s", val->ident);
		return;
	}
	val->addr = &val->addrs[val->next_addr++];
	val->phase = VALIDATE_PHASE_CONNECT;
	memcpy(&ss, &val->addr->ss, sizeof(ss));
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)(void *)&ss)->sin_port =
		    htons((uint16_t)val->port);
	else
		((struct sockaddr_in6 *)(void *)&ss)->sin6_port =
		    htons((uint16_t)val->port);
	if ((val->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_err("acme: validator: socket for %s: %s", val->addr->text,
		    strerror(errno));
		validate_fail(val, "serverInternal", "cannot create a socket");
		return;
	}
	if (connect(val->fd, (struct sockaddr *)&ss, val->addr->len) == 0 ||
	    errno == EINPROGRESS) {
		validate_tlsalpn01_wait(val, EV_WRITE);
		return;
	}
	err = errno;
	validate_tlsalpn01_connect_failed(val, err);
}

/* Formats the subjectAltNames of cert, quoted, for a detail. */
static void
validate_tlsalpn01_sans(const GENERAL_NAMES *gens, char *out, size_t outlen)
{
	char one[VALIDATE_SHOWN_MAX * 4 + 8], ip[INET6_ADDRSTRLEN];
	const GENERAL_NAME *g;
	const ASN1_STRING *s;
	size_t o = 0;
	int i, n;

	out[0] = '\0';
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_DNS) {
			s = g->d.dNSName;
			validate_quote(ASN1_STRING_get0_data(s),
			    (size_t)ASN1_STRING_length(s), VALIDATE_SHOWN_MAX,
			    one, sizeof(one));
		} else if (g->type == GEN_IPADD &&
		    (ASN1_STRING_length(g->d.iPAddress) == 4 ||
		    ASN1_STRING_length(g->d.iPAddress) == 16)) {
			inet_ntop(ASN1_STRING_length(g->d.iPAddress) == 4 ?
			    AF_INET : AF_INET6,
			    ASN1_STRING_get0_data(g->d.iPAddress), ip,
			    sizeof(ip));
			snprintf(one, sizeof(one), "%s", ip);
		} else
			snprintf(one, sizeof(one), "(name of type %d)", g->type);
		n = snprintf(out + o, outlen - o, "%s%s", i > 0 ? ", " : "",
		    one);
		if (n < 0 || (size_t)n >= outlen - o)
			break;
		o += (size_t)n;
	}
}

/* True when the single SAN names the identifier (dNSName compared
 * case-insensitively, iPAddress byte for byte). */
static bool
validate_tlsalpn01_san_matches(const struct validation *val,
    const GENERAL_NAME *g)
{
	const ASN1_STRING *s;
	size_t n;

	if (val->is_ip) {
		if (g->type != GEN_IPADD)
			return false;
		s = g->d.iPAddress;
		return (size_t)ASN1_STRING_length(s) == val->iplen &&
		    memcmp(ASN1_STRING_get0_data(s), val->ip, val->iplen) == 0;
	}
	if (g->type != GEN_DNS)
		return false;
	s = g->d.dNSName;
	n = strlen(val->ident);
	return (size_t)ASN1_STRING_length(s) == n &&
	    strncasecmp((const char *)ASN1_STRING_get0_data(s), val->ident,
	    n) == 0;
}

/*
 * The handshake is done: checks RFC 8737 §3 — ALPN "acme-tls/1", exactly
 * one subjectAltName equal to the identifier, and a critical
 * acmeIdentifier extension holding SHA-256(key authorization).
 */
static void
validate_tlsalpn01_check(struct validation *val)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char sans[VALIDATE_SHOWN_MAX * 8];
	const unsigned char *alpn = NULL, *p, *end;
	const ASN1_OCTET_STRING *data;
	ASN1_OCTET_STRING *inner = NULL;
	GENERAL_NAMES *gens = NULL;
	ASN1_OBJECT *oid = NULL;
	X509_EXTENSION *ext;
	X509 *cert;
	unsigned int alpnlen = 0;
	int crit = -1, idx;

	SSL_get0_alpn_selected(val->ssl, &alpn, &alpnlen);
	if (alpnlen != VALIDATE_ALPN_LEN ||
	    memcmp(alpn, VALIDATE_ALPN, VALIDATE_ALPN_LEN) != 0) {
		validate_fail(val, "tls", "Cannot negotiate ALPN protocol \""
		    VALIDATE_ALPN "\" with %s port %d for the tls-alpn-01 "
		    "challenge", val->addr->text, val->port);
		goto out;
	}
	if ((cert = SSL_get0_peer_certificate(val->ssl)) == NULL) {
		validate_fail(val, "tls", "%s port %d sent no certificate",
		    val->addr->text, val->port);
		goto out;
	}
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL || sk_GENERAL_NAME_num(gens) != 1 ||
	    !validate_tlsalpn01_san_matches(val,
	    sk_GENERAL_NAME_value(gens, 0))) {
		validate_tlsalpn01_sans(gens, sans, sizeof(sans));
		validate_fail(val, "unauthorized", "Incorrect validation "
		    "certificate for tls-alpn-01 challenge. Requested %s from "
		    "%s port %d. Received certificate containing '%s'%s",
		    val->ident, val->addr->text, val->port, sans,
		    crit == -2 ? " in several subjectAltName extensions" :
		    " (RFC 8737 §3 wants exactly that one name)");
		goto out;
	}
	if ((oid = OBJ_txt2obj(VALIDATE_ACME_ID_OID, 1)) == NULL) {
		validate_fail(val, "serverInternal", "out of memory");
		goto out;
	}
	if ((idx = X509_get_ext_by_OBJ(cert, oid, -1)) < 0) {
		validate_fail(val, "unauthorized", "Incorrect validation "
		    "certificate for tls-alpn-01 challenge from %s port %d: no "
		    "acmeIdentifier extension", val->addr->text, val->port);
		goto out;
	}
	if (X509_get_ext_by_OBJ(cert, oid, idx) >= 0) {
		validate_fail(val, "unauthorized", "Incorrect validation "
		    "certificate for tls-alpn-01 challenge from %s port %d: "
		    "more than one acmeIdentifier extension", val->addr->text,
		    val->port);
		goto out;
	}
	ext = X509_get_ext(cert, idx);
	if (X509_EXTENSION_get_critical(ext) != 1) {
		validate_fail(val, "unauthorized", "Incorrect validation "
		    "certificate for tls-alpn-01 challenge from %s port %d: the "
		    "acmeIdentifier extension is not critical (RFC 8737 §3)",
		    val->addr->text, val->port);
		goto out;
	}
	data = X509_EXTENSION_get_data(ext);
	p = ASN1_STRING_get0_data(data);
	end = p + ASN1_STRING_length(data);
	inner = d2i_ASN1_OCTET_STRING(NULL, &p, ASN1_STRING_length(data));
	SHA256((const unsigned char *)val->keyauth, strlen(val->keyauth),
	    digest);
	if (inner == NULL || p != end ||
	    ASN1_STRING_length(inner) != SHA256_DIGEST_LENGTH ||
	    CRYPTO_memcmp(ASN1_STRING_get0_data(inner), digest,
	    sizeof(digest)) != 0) {
		validate_fail(val, "unauthorized", "Incorrect validation "
		    "certificate for tls-alpn-01 challenge from %s port %d: the "
		    "acmeIdentifier extension does not hold the SHA-256 digest "
		    "of the key authorization", val->addr->text, val->port);
		goto out;
	}
	validate_succeed(val);
out:
	ASN1_OCTET_STRING_free(inner);
	ASN1_OBJECT_free(oid);
	GENERAL_NAMES_free(gens);
}

/* Sets up the TLS client: SNI, ALPN exactly "acme-tls/1", no
 * certificate checks (the checks are ours). 0 or -1. */
static int
validate_tlsalpn01_ssl(struct validation *val)
{
	static const unsigned char alpn[] = "\x0a" VALIDATE_ALPN;

	if ((val->ssl = SSL_new(val->v->tls)) == NULL ||
	    SSL_set_fd(val->ssl, val->fd) != 1 ||
	    SSL_set_tlsext_host_name(val->ssl, val->sni) != 1 ||
	    SSL_set_alpn_protos(val->ssl, alpn, sizeof(alpn) - 1) != 0) {
		log_err("acme: validator: TLS client for %s: %s", val->ident,
		    common_ssl_error());
		validate_fail(val, "serverInternal", "cannot set up the TLS "
		    "client");
		return -1;
	}
	SSL_set_connect_state(val->ssl);
	return 0;
}

/* Moves the handshake on; waits, checks or fails. */
static void
validate_tlsalpn01_step(struct validation *val)
{
	unsigned long e;
	char reason[256];
	int r, err;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(val->ssl);
	if (r == 1) {
		/* close_notify now, best effort: the socket closes next */
		SSL_shutdown(val->ssl);
		ERR_clear_error();
		validate_tlsalpn01_check(val);
		return;
	}
	err = SSL_get_error(val->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		validate_tlsalpn01_wait(val, EV_READ);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		validate_tlsalpn01_wait(val, EV_WRITE);
		return;
	}
	if ((e = ERR_peek_error()) != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	else if (err == SSL_ERROR_SYSCALL && errno != 0)
		snprintf(reason, sizeof(reason), "%s", strerror(errno));
	else
		snprintf(reason, sizeof(reason), "connection closed by the "
		    "peer");
	validate_fail(val, "tls", "TLS handshake with %s port %d for the "
	    "tls-alpn-01 challenge failed: %s", val->addr->text, val->port,
	    reason);
}

static void
validate_tlsalpn01_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct validation *val = arg;
	socklen_t len = sizeof(int);
	int soerr = 0;

	(void)what;
	if (val->phase == VALIDATE_PHASE_CONNECT) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
			soerr = errno;
		if (soerr != 0) {
			validate_tlsalpn01_connect_failed(val, soerr);
			return;
		}
		val->phase = VALIDATE_PHASE_HANDSHAKE;
		if (validate_tlsalpn01_ssl(val) == -1)
			return;
	}
	if (val->phase == VALIDATE_PHASE_HANDSHAKE)
		validate_tlsalpn01_step(val);
}

/* ---- the validator -------------------------------------------------------------- */

/*
 * Creates the validator on base: the c-ares channel (cfg->dns_resolver or
 * the system's), the curl multi handle and the TLS client context, all
 * driven by events on base. Borrows base; copies cfg. NULL on failure.
 */
struct acme_validator *
acme_validator_new(struct event_base *base,
    const struct acme_validator_config *cfg)
{
	struct acme_validator *v = NULL;
	int rc;

	if (base == NULL || cfg == NULL || cfg->http01_port < 1 ||
	    cfg->http01_port > 65535 || cfg->tlsalpn01_port < 1 ||
	    cfg->tlsalpn01_port > 65535 || cfg->timeout_seconds < 0) {
		log_err("acme: validator: invalid configuration (ports %d/%d, "
		    "timeout %d)", cfg != NULL ? cfg->http01_port : 0,
		    cfg != NULL ? cfg->tlsalpn01_port : 0,
		    cfg != NULL ? cfg->timeout_seconds : 0);
		return NULL;
	}
	if ((v = calloc(1, sizeof(*v))) == NULL) {
		log_err("acme: validator: out of memory");
		return NULL;
	}
	v->base = base;
	v->http01_port = cfg->http01_port;
	v->tlsalpn01_port = cfg->tlsalpn01_port;
	v->timeout_seconds = cfg->timeout_seconds == 0 ?
	    VALIDATE_TIMEOUT_DEFAULT : cfg->timeout_seconds;
	if (v->timeout_seconds > VALIDATE_TIMEOUT_MAX)
		v->timeout_seconds = VALIDATE_TIMEOUT_MAX;
	LIST_INIT(&v->ares_socks);
	TAILQ_INIT(&v->live);

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		log_err("acme: validator: c-ares library init: %s",
		    ares_strerror(rc));
		goto fail;
	}
	v->ares_lib = true;
	if ((v->ares_timer = evtimer_new(base, validate_ares_timer_cb, v)) ==
	    NULL) {
		log_err("acme: validator: creating timers failed");
		goto fail;
	}
	if (validate_ares_init(v, cfg->dns_resolver) == -1)
		goto fail;
	if ((v->curl = common_curlev_new(base, "acme: validator",
	    validate_curl_done, v)) == NULL)
		goto fail;
	if ((v->tls = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(v->tls, TLS1_2_VERSION) != 1) {
		log_err("acme: validator: TLS client context: %s",
		    common_ssl_error());
		goto fail;
	}
	/* RFC 8737 §3: the validation certificate is self-signed */
	SSL_CTX_set_verify(v->tls, SSL_VERIFY_NONE, NULL);
	return v;
fail:
	acme_validator_free(v);
	return NULL;
}

/*
 * Drops every validation in flight without calling done(), then the
 * c-ares channel (its pending callbacks free their lookups), the curl
 * multi handle and the rest.
 */
void
acme_validator_free(struct acme_validator *v)
{
	struct validation *val;
	struct validate_ares_sock *as;

	if (v == NULL)
		return;
	while ((val = TAILQ_FIRST(&v->live)) != NULL) {
		TAILQ_REMOVE(&v->live, val, entry);
		validate_free(val);
	}
	if (v->ares != NULL)
		ares_destroy(v->ares);
	while ((as = LIST_FIRST(&v->ares_socks)) != NULL) {
		LIST_REMOVE(as, entry);
		event_free(as->ev);
		free(as);
	}
	common_curlev_free(v->curl);
	if (v->ares_timer != NULL)
		event_free(v->ares_timer);
	SSL_CTX_free(v->tls);
	if (v->ares_lib)
		ares_library_cleanup();
	free(v);
}

/*
 * Checks and copies a request into a new validation: identifier type and
 * syntax, a challenge type that fits it (no dns-01 for IPs, RFC 8738
 * §7), token and key authorization syntax. NULL (logged) when refused.
 */
static struct validation *
validate_new(struct acme_validator *v, const struct acme_validation_req *req)
{
	struct validation *val = NULL;
	const char *what = NULL;
	size_t n;

	if ((int)req->type < 0 || (int)req->type >= ACME_CHALL__MAX)
		what = "unknown challenge type";
	else if (req->ident_type == NULL || req->ident_value == NULL ||
	    req->token == NULL || req->key_authorization == NULL)
		what = "missing field";
	else if (!validate_token_ok(req->token))
		what = "token is not 1..128 base64url characters";
	else if (!validate_keyauth_ok(req->key_authorization))
		what = "key authorization is not visible ASCII";
	if (what != NULL)
		goto refuse;
	if ((val = calloc(1, sizeof(*val))) == NULL) {
		what = "out of memory";
		goto refuse;
	}
	val->v = v;
	val->fd = -1;
	val->type = req->type;
	common_buf_init(&val->body, VALIDATE_BODY_MAX);
	if (strcmp(req->ident_type, "ip") == 0) {
		val->is_ip = true;
		if (inet_pton(AF_INET, req->ident_value, val->ip) == 1)
			val->iplen = 4;
		else if (inet_pton(AF_INET6, req->ident_value, val->ip) == 1)
			val->iplen = 16;
		else
			what = "ip identifier is not an IP address";
		if (req->type == ACME_CHALL_DNS01)
			what = "dns-01 cannot validate an ip identifier";
	} else if (strcmp(req->ident_type, "dns") == 0) {
		n = strlen(req->ident_value);
		if (n > 0 && n <= VALIDATE_NAME_MAX + 1 &&
		    req->ident_value[n - 1] == '.')
			n--;	/* a fully qualified name is the same name */
		if (n > VALIDATE_NAME_MAX)
			what = "dns identifier too long";
		else {
			memcpy(val->ident, req->ident_value, n);
			val->ident[n] = '\0';
			if (!validate_name_ok(val->ident))
				what = "dns identifier is not a host name";
		}
	} else
		what = "unknown identifier type";
	if (what != NULL)
		goto refuse;
	if (val->is_ip)
		snprintf(val->ident, sizeof(val->ident), "%s",
		    req->ident_value);
	if ((val->token = strdup(req->token)) == NULL ||
	    (val->keyauth = strdup(req->key_authorization)) == NULL ||
	    (val->timer = evtimer_new(v->base, validate_timeout_cb, val)) ==
	    NULL ||
	    (val->finish = event_new(v->base, -1, 0, validate_finish_cb,
	    val)) == NULL) {
		what = "out of memory";
		goto refuse;
	}
	return val;
refuse:
	log_warn("acme: validator: refusing %s validation of %s %s: %s",
	    (int)req->type >= 0 && (int)req->type < ACME_CHALL__MAX ?
	    validate_type_name(req->type) : "?",
	    req->ident_type != NULL ? req->ident_type : "?",
	    req->ident_value != NULL ? req->ident_value : "?", what);
	validate_free(val);
	return NULL;
}

/*
 * Starts one validation (see acme.h). Copies what it needs from req; the
 * result comes through done(arg, result) exactly once, later, from the
 * event loop. -1 when the request is refused (done is then not called).
 */
int
acme_validator_start(struct acme_validator *v,
    const struct acme_validation_req *req,
    void (*done)(void *arg, const struct acme_validation_result *res),
    void *arg)
{
	struct validation *val;
	struct timeval tv;

	if (v == NULL || req == NULL || done == NULL)
		return -1;
	if ((val = validate_new(v, req)) == NULL)
		return -1;
	val->done = done;
	val->arg = arg;
	tv.tv_sec = v->timeout_seconds;
	tv.tv_usec = 0;
	if (event_add(val->timer, &tv) == -1) {
		log_err("acme: validator: arming the timeout for %s failed",
		    val->ident);
		validate_free(val);
		return -1;
	}
	val->deadline_ms = common_mono_ms() + (uint64_t)v->timeout_seconds *
	    1000;
	TAILQ_INSERT_TAIL(&v->live, val, entry);
	switch (val->type) {
	case ACME_CHALL_HTTP01:
		validate_http01_begin(val);
		break;
	case ACME_CHALL_DNS01:
		validate_dns01_begin(val);
		break;
	case ACME_CHALL_TLSALPN01:
	default:
		validate_tlsalpn01_begin(val);
		break;
	}
	return 0;
}
