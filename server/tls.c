/*
 * server/tls.c — the TLS context shared by the https and mgmt listeners.
 *
 * TLS 1.2 and 1.3 only; TLS 1.2 is limited to ECDHE key exchange with AEAD
 * ciphers (forward secrecy, no CBC), the server's cipher order wins,
 * renegotiation is off and ALPN, when the client offers it, must include
 * "http/1.1" (the only protocol evhttp speaks). Clients may present a
 * certificate (EST authenticates with it); none is required.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "server/server.h"

#define SERVER_TLS_CHAIN_MAX	10	/* leaf + intermediates in chain_pem */

/* TLS 1.2 suites: ECDHE only, AEAD only, strongest-first per key type. */
#define SERVER_TLS12_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/*
 * TLS 1.3 session tickets sent after each full handshake (OpenSSL's
 * default is 2). pkid's clients rarely resume: an EST device connects
 * once per enrolment and ACME clients (certbot, lego, acme.sh) start a
 * new process, hence a new session cache, for each run. Those that do
 * resume (curl and openssl s_client reconnecting, pkictl's libcurl
 * within one run) reconnect one connection at a time, and a resumed
 * handshake brings a fresh ticket, so one is enough; the second only
 * served parallel resumptions and cost every handshake a session
 * encoding and an encryption.
 */
#define SERVER_TLS13_TICKETS	1

/* Session IDs are only reused within this context (needed as soon as a
 * listener asks for client certificates, e.g. EST). */
#define SERVER_TLS_SID_CTX	"pkid"

/*
 * Client certificates are requested but never judged here: which anchors
 * count depends on the EST label of a request that has not been read yet
 * (a trust bundle of manufacturer CAs, or pkid's own CAs), so
 * protocols/est verifies the chain itself (X509_verify_cert with the
 * peer chain, validity, revocation). Accepting every chain in the
 * handshake keeps clients without a certificate working and lets
 * sessions resume (the session id context above makes that legal with
 * SSL_VERIFY_PEER).
 */
static int
server_tls_verify_any(int preverify_ok, X509_STORE_CTX *ctx)
{
	(void)preverify_ok;
	(void)ctx;
	return 1;
}

/* ALPN wire format: length-prefixed protocol names. */
static const unsigned char server_alpn[] = "\x08http/1.1";

/*
 * ALPN selection (RFC 7301): picks "http/1.1" from the client's list.
 * A client that offers ALPN without it gets a no_application_protocol
 * alert (section 3.2), as nginx does; clients that send no ALPN at all
 * never reach this callback and are served normally.
 */
static int
server_tls_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel = NULL;
	unsigned char sellen = 0;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, &sellen, server_alpn,
	    sizeof(server_alpn) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	*outlen = sellen;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Builds the server TLS context from chain_pem (leaf first, then its
 * intermediates; a self-signed root at the end is not sent) and key_pem
 * (unencrypted). The caller owns the result
 * (SSL_CTX_free). NULL on failure, logged with the step and the reason.
 */
SSL_CTX *
server_tls_ctx(const char *chain_pem, const char *key_pem)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	SSL_CTX *ctx = NULL, *ret = NULL;
	int i, n;

	if (chain_pem == NULL || key_pem == NULL) {
		log_err("tls: certificate chain or key missing");
		goto out;
	}
	chain = common_x509s_from_pem(chain_pem, strlen(chain_pem),
	    SERVER_TLS_CHAIN_MAX);
	if (chain == NULL || sk_X509_num(chain) == 0) {
		log_err("tls: certificate chain: no certificate, malformed "
		    "PEM or more than %d certificates", SERVER_TLS_CHAIN_MAX);
		goto out;
	}
	if ((key = common_privkey_from_pem(key_pem, strlen(key_pem))) == NULL) {
		log_err("tls: private key: malformed PEM");
		goto out;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		log_err("tls: SSL_CTX_new: %s", common_ssl_error());
		goto out;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		log_err("tls: protocol versions: %s", common_ssl_error());
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, SERVER_TLS12_CIPHERS) != 1) {
		log_err("tls: TLS 1.2 cipher list: %s", common_ssl_error());
		goto out;
	}
	if (SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)SERVER_TLS_SID_CTX,
	    sizeof(SERVER_TLS_SID_CTX) - 1) != 1) {
		log_err("tls: session id context: %s", common_ssl_error());
		goto out;
	}
	if (SSL_CTX_set_num_tickets(ctx, SERVER_TLS13_TICKETS) != 1) {
		log_err("tls: session tickets: %s", common_ssl_error());
		goto out;
	}
	SSL_CTX_set_alpn_select_cb(ctx, server_tls_alpn, NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, server_tls_verify_any);

	if (SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) != 1) {
		log_err("tls: leaf certificate: %s", common_ssl_error());
		goto out;
	}
	/* RFC 8446 4.4.2: a trust anchor may be left out of the chain, and
	 * every client must hold it already to verify anything; not sending
	 * the self-signed root saves each new connection its bytes and the
	 * client the parsing of one more certificate. */
	n = sk_X509_num(chain);
	while (n > 1 && X509_check_issued(sk_X509_value(chain, n - 1),
	    sk_X509_value(chain, n - 1)) == X509_V_OK)
		n--;
	for (i = 1; i < n; i++) {
		if (SSL_CTX_add1_chain_cert(ctx,
		    sk_X509_value(chain, i)) != 1) {
			log_err("tls: chain certificate %d: %s", i,
			    common_ssl_error());
			goto out;
		}
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1) {
		log_err("tls: private key: %s", common_ssl_error());
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_err("tls: private key does not match the leaf "
		    "certificate: %s", common_ssl_error());
		goto out;
	}
	ret = ctx;	/* steal */
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	return ret;
}
