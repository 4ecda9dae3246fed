/*
 * protocols/acme/nonce.c — anti-replay nonces (RFC 8555 §6.5) without a
 * database write, in the manner of Boulder's nonce service.
 *
 * A nonce is base64url(counter || MAC): an 8-byte big-endian counter
 * taken from an atomic sequence and the first 16 bytes of
 * HMAC-SHA256(process key, counter). Redeeming checks the MAC in
 * constant time, that the counter is one of the last ACME_NONCE_WINDOW
 * issued, and that its bit in the used-bitmap is clear (then sets it).
 * The key is random per process: a restart invalidates older nonces,
 * which clients recover from through badNonce.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "protocols/acme/acme.h"

#define NONCE_KEY_BYTES		32
#define NONCE_CTR_BYTES		8
#define NONCE_MAC_BYTES		16
#define NONCE_RAW_BYTES		(NONCE_CTR_BYTES + NONCE_MAC_BYTES)
#define NONCE_TEXT_LEN		32	/* base64url of 24 bytes */
#define NONCE_WORD_BITS		64

struct acme_nonces {
	unsigned char		 key[NONCE_KEY_BYTES];
	_Atomic uint64_t	 counter;	/* last issued */
	pthread_mutex_t		 lock;		/* guards used */
	uint64_t		*used;		/* ACME_NONCE_WINDOW bits, slot
						   = counter % window */
};

struct acme_nonces *
acme_nonces_new(void)
{
	struct acme_nonces *n = NULL, *ret = NULL;

	if ((n = calloc(1, sizeof(*n))) == NULL ||
	    (n->used = calloc(ACME_NONCE_WINDOW / NONCE_WORD_BITS,
	    sizeof(uint64_t))) == NULL) {
		log_err("acme: nonces: out of memory");
		goto out;
	}
	if (RAND_bytes(n->key, sizeof(n->key)) != 1) {
		log_err("acme: nonces: no random key: %s", common_ssl_error());
		goto out;
	}
	atomic_init(&n->counter, 0);
	pthread_mutex_init(&n->lock, NULL);
	ret = n;	/* steal */
	n = NULL;
out:
	if (n != NULL)
		free(n->used);
	free(n);
	return ret;
}

void
acme_nonces_free(struct acme_nonces *n)
{
	if (n == NULL)
		return;
	OPENSSL_cleanse(n->key, sizeof(n->key));
	pthread_mutex_destroy(&n->lock);
	free(n->used);
	free(n);
}

/* counter || MAC(counter) into raw. */
static int
nonce_seal(const struct acme_nonces *n, uint64_t ctr,
    unsigned char raw[NONCE_RAW_BYTES])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int i;

	for (i = 0; i < NONCE_CTR_BYTES; i++)
		raw[i] = (unsigned char)(ctr >>
		    (8 * (NONCE_CTR_BYTES - 1 - i)));
	if (HMAC(EVP_sha256(), n->key, sizeof(n->key), raw, NONCE_CTR_BYTES,
	    mac, &maclen) == NULL || maclen < NONCE_MAC_BYTES)
		return -1;
	memcpy(raw + NONCE_CTR_BYTES, mac, NONCE_MAC_BYTES);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

/*
 * Issues the next nonce. The slot of the new counter is cleared under
 * the lock after the counter moved, so the stale bit of the counter one
 * window back (already outside the window) cannot refuse the new one.
 */
int
acme_nonce_issue(struct acme_nonces *n, char *out, size_t outlen)
{
	unsigned char raw[NONCE_RAW_BYTES];
	uint64_t ctr, slot;
	char *txt;

	if (outlen < ACME_NONCE_MAX)
		return -1;
	ctr = atomic_fetch_add(&n->counter, 1) + 1;
	slot = ctr % ACME_NONCE_WINDOW;
	pthread_mutex_lock(&n->lock);
	n->used[slot / NONCE_WORD_BITS] &= ~((uint64_t)1 <<
	    (slot % NONCE_WORD_BITS));
	pthread_mutex_unlock(&n->lock);
	if (nonce_seal(n, ctr, raw) == -1) {
		log_err("acme: nonce: HMAC failed: %s", common_ssl_error());
		return -1;
	}
	if ((txt = common_b64_encode(raw, sizeof(raw), true, 0)) == NULL) {
		log_err("acme: nonce: out of memory");
		return -1;
	}
	snprintf(out, outlen, "%s", txt);
	free(txt);
	return 0;
}

bool
acme_nonce_redeem(struct acme_nonces *n, const char *s)
{
	unsigned char want[NONCE_RAW_BYTES], *raw = NULL;
	uint64_t ctr = 0, cur, slot, bit;
	size_t len = 0;
	bool ok = false;
	int i;

	if (s == NULL || strlen(s) != NONCE_TEXT_LEN ||
	    common_b64_decode(s, NONCE_TEXT_LEN, true, &raw, &len) == -1 ||
	    len != NONCE_RAW_BYTES)
		goto out;
	for (i = 0; i < NONCE_CTR_BYTES; i++)
		ctr = (ctr << 8) | raw[i];
	if (nonce_seal(n, ctr, want) == -1 ||
	    CRYPTO_memcmp(want + NONCE_CTR_BYTES, raw + NONCE_CTR_BYTES,
	    NONCE_MAC_BYTES) != 0)
		goto out;
	slot = ctr % ACME_NONCE_WINDOW;
	bit = (uint64_t)1 << (slot % NONCE_WORD_BITS);
	pthread_mutex_lock(&n->lock);
	cur = atomic_load(&n->counter);
	if (ctr != 0 && ctr <= cur && cur - ctr < ACME_NONCE_WINDOW &&
	    (n->used[slot / NONCE_WORD_BITS] & bit) == 0) {
		n->used[slot / NONCE_WORD_BITS] |= bit;
		ok = true;
	}
	pthread_mutex_unlock(&n->lock);
out:
	free(raw);
	return ok;
}
