/*
 * ca/ctx.c — the CA context: the master key that seals private keys at
 * rest, the configuration the other ca/ files read, the cache of loaded
 * CA private keys (so issuing does not decrypt a key per call), the
 * cache of what issuance and bundles read from CA records (so issuing
 * does not parse them per call) and the registration of the server's
 * trust bundle file.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>

#include "ca/ca.h"

#define MASTER_KEY_BYTES	32	/* AES-256 worth of secret */
#define MASTER_KEY_HEX		(2 * MASTER_KEY_BYTES)
#define MASTER_FILE_MAX		256	/* hex, a newline, some slack */
#define CACHE_ID_MAX		80	/* CA ids are "ca-" + 16 hex */
#define CACHE_BACKEND_MAX	32	/* key backend name */
#define CACHE_HANDLE_MAX	128	/* key handle within its backend */
#define CACHE_WRITERS_MAX	64	/* CA writes not yet known to be over */
#define CACHE_CAS_MAX		64	/* CAs whose issuer and bundle are kept */

/* One cached CA private key: a CA may have several (one per key its
 * certificate versions used). */
struct ctx_key {
	char		 ca_id[CACHE_ID_MAX];
	char		 backend[CACHE_BACKEND_MAX];
	char		 handle[CACHE_HANDLE_MAX];
	EVP_PKEY	*key;		/* owned */
	struct ctx_key	*next;
};

/*
 * A write of a CA record by txn that may not have committed yet. Only
 * txn itself can read that write (other transactions wait for txn's
 * lock), so only txn must not use or fill the record caches; the entry
 * is dropped once another transaction has read the record after it
 * (that read waited for txn to end).
 */
struct ctx_writer {
	const struct store_txn	*txn;	/* compared, never dereferenced */
	char			 ca_id[CACHE_ID_MAX];
	uint64_t		 gen;	/* ca_gen right after the write */
};

/* What one CA's issuance and bundle need, each valid while its gen is
 * the context's ca_gen. */
struct ctx_ca {
	char			 ca_id[CACHE_ID_MAX];	/* "": free slot */
	struct ca_issuer	*issuer;	/* one reference; NULL: none */
	uint64_t		 issuer_gen;
	char			*bundle;	/* ca_bundle_pem; NULL: none */
	uint64_t		 bundle_gen;
	time_t			 bundle_until;	/* an extra version expires */
	uint64_t		 used;		/* tick when last read */
};

struct ca_ctx {
	struct store	*st;		/* borrowed */
	char		*data_dir;
	char		*base_url;	/* without trailing '/' */
	/* The passphrase of every sealed key: the master key in hex. */
	char		 master[MASTER_KEY_HEX + 1];
	pthread_mutex_t	 lock;		/* guards keys and trust_* */
	struct ctx_key	*keys;
	char		 trust_id[CACHE_ID_MAX];	/* "": no trust bundle */
	char		 trust_path[PATH_MAX];
	/* The record caches: cache_lock guards everything below. */
	pthread_mutex_t	 cache_lock;
	uint64_t	 ca_gen;	/* bumped by every CA record write */
	struct ctx_writer writers[CACHE_WRITERS_MAX];
	size_t		 nwriters;
	/* More writers than slots: caches off until a standalone read
	 * of every record began after overflow_gen. */
	bool		 overflow;
	uint64_t	 overflow_gen;
	struct ctx_ca	 cas[CACHE_CAS_MAX];
	uint64_t	 tick;
};

/* True when s is exactly MASTER_KEY_HEX hex digits. */
static bool
ctx_master_valid(const char *s, size_t len)
{
	size_t i;

	if (len != MASTER_KEY_HEX)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

/* Creates a master key file at path (mode 0600) with fresh random bytes. */
static int
ctx_master_create(const char *path)
{
	unsigned char raw[MASTER_KEY_BYTES];
	char hex[MASTER_KEY_HEX + 2];
	int rc = -1;

	if (RAND_priv_bytes(raw, sizeof(raw)) != 1) {
		log_err("master key %s: RAND_priv_bytes: %s", path,
		    common_ssl_error());
		goto out;
	}
	common_hex(raw, sizeof(raw), hex);
	hex[MASTER_KEY_HEX] = '\n';
	hex[MASTER_KEY_HEX + 1] = '\0';
	if (common_file_write(path, hex, MASTER_KEY_HEX + 1, 0600) == -1) {
		log_err("master key %s: create: %s", path, strerror(errno));
		goto out;
	}
	log_info("master key %s: created", path);
	rc = 0;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(hex, sizeof(hex));
	return rc;
}

/*
 * Loads the master key from path into ctx->master, creating the file on
 * first use. Refuses a file that group or others may access, and one
 * that is not exactly 64 hex digits (a trailing newline is allowed).
 */
static int
ctx_master_load(struct ca_ctx *ctx, const char *path)
{
	struct stat sb;
	char *buf = NULL;
	size_t len = 0;
	int rc = -1;

	if (stat(path, &sb) == -1) {
		if (errno != ENOENT) {
			log_err("master key %s: stat: %s", path,
			    strerror(errno));
			goto out;
		}
		if (ctx_master_create(path) == -1)
			goto out;
		if (stat(path, &sb) == -1) {
			log_err("master key %s: stat: %s", path,
			    strerror(errno));
			goto out;
		}
	}
	if (!S_ISREG(sb.st_mode)) {
		log_err("master key %s: not a regular file", path);
		goto out;
	}
	if ((sb.st_mode & 077) != 0) {
		log_err("master key %s: mode %04o lets group or others read "
		    "it; refusing to start (chmod 600 it)", path,
		    (unsigned)(sb.st_mode & 07777));
		goto out;
	}
	if (common_file_read(path, MASTER_FILE_MAX, &buf, &len) == -1) {
		log_err("master key %s: read: %s", path, strerror(errno));
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (!ctx_master_valid(buf, len)) {
		log_err("master key %s: malformed (expected %d hex digits)",
		    path, MASTER_KEY_HEX);
		goto out;
	}
	memcpy(ctx->master, buf, MASTER_KEY_HEX);
	ctx->master[MASTER_KEY_HEX] = '\0';
	rc = 0;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	return rc;
}

/*
 * Prepares a context: data directory (0700 when created), DATA/keys
 * (0700), the master key (created on first use). The store is borrowed.
 * NULL on failure (logged).
 */
struct ca_ctx *
ca_ctx_new(struct store *st, const struct ca_config *cfg)
{
	struct ca_ctx *ctx = NULL, *result = NULL;
	char path[PATH_MAX], keys[PATH_MAX];
	const char *url;
	size_t n;

	if (st == NULL || cfg == NULL || cfg->data_dir == NULL ||
	    cfg->data_dir[0] == '\0') {
		log_err("ca: context: no store or data directory");
		goto out;
	}
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		goto out;
	if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
		free(ctx);
		ctx = NULL;
		goto out;
	}
	if (pthread_mutex_init(&ctx->cache_lock, NULL) != 0) {
		pthread_mutex_destroy(&ctx->lock);
		free(ctx);
		ctx = NULL;
		goto out;
	}
	ctx->st = st;
	url = cfg->http_base_url;
	if (url == NULL || url[0] == '\0')
		url = CA_DEFAULT_BASE_URL;
	if ((ctx->data_dir = strdup(cfg->data_dir)) == NULL ||
	    (ctx->base_url = strdup(url)) == NULL)
		goto out;
	n = strlen(ctx->base_url);
	while (n > 0 && ctx->base_url[n - 1] == '/')
		ctx->base_url[--n] = '\0';
	if (strncmp(ctx->base_url, "http://", 7) != 0 &&
	    strncmp(ctx->base_url, "https://", 8) != 0) {
		log_err("ca: http_base_url %s: not an http(s) URL",
		    ctx->base_url);
		goto out;
	}
	if (common_mkdirs(ctx->data_dir, 0700) == -1) {
		log_err("ca: data directory %s: %s", ctx->data_dir,
		    strerror(errno));
		goto out;
	}
	if (common_path(keys, sizeof(keys), "%s/keys", ctx->data_dir) == -1 ||
	    common_mkdirs(keys, 0700) == -1) {
		log_err("ca: key directory %s/keys: %s", ctx->data_dir,
		    strerror(errno));
		goto out;
	}
	if ((cfg->master_key_file != NULL && cfg->master_key_file[0] != '\0' ?
	    common_path(path, sizeof(path), "%s", cfg->master_key_file) :
	    common_path(path, sizeof(path), "%s/master.key", ctx->data_dir)) ==
	    -1) {
		log_err("ca: master key path too long");
		goto out;
	}
	if (ctx_master_load(ctx, path) == -1)
		goto out;
	result = ctx;	/* steal */
	ctx = NULL;
out:
	ca_ctx_free(ctx);
	return result;
}

/* Drops one reference to is, freeing it with the last (cache_lock held,
 * or the context being freed). Accepts NULL. */
static void
ctx_issuer_drop(struct ca_issuer *is)
{
	if (is != NULL && --is->refs == 0)
		ca_issuer_free(is);
}

/* Empties a record cache slot. */
static void
ctx_ca_clear(struct ctx_ca *c)
{
	ctx_issuer_drop(c->issuer);
	free(c->bundle);
	memset(c, 0, sizeof(*c));
}

void
ca_ctx_free(struct ca_ctx *ctx)
{
	struct ctx_key *k, *next;
	size_t i;

	if (ctx == NULL)
		return;
	for (k = ctx->keys; k != NULL; k = next) {
		next = k->next;
		EVP_PKEY_free(k->key);
		free(k);
	}
	for (i = 0; i < CACHE_CAS_MAX; i++)
		ctx_ca_clear(&ctx->cas[i]);
	pthread_mutex_destroy(&ctx->lock);
	pthread_mutex_destroy(&ctx->cache_lock);
	ca_cert_cache_flush();
	OPENSSL_cleanse(ctx->master, sizeof(ctx->master));
	free(ctx->data_dir);
	free(ctx->base_url);
	free(ctx);
}

struct store *
ca_ctx_store(struct ca_ctx *ctx)
{
	return ctx->st;
}

const char *
ca_ctx_data_dir(const struct ca_ctx *ctx)
{
	return ctx->data_dir;
}

const char *
ca_ctx_base_url(const struct ca_ctx *ctx)
{
	return ctx->base_url;
}

/* ---- sealing ---- */

/*
 * Encrypted PKCS#8 PEM of key under the master key: OpenSSL 3 writes
 * PBES2 (PBKDF2 with HMAC-SHA256, AES-256-CBC). Returns a string to
 * free(), NULL on failure.
 */
char *
ca_key_seal(const struct ca_ctx *ctx, EVP_PKEY *key)
{
	BIO *bio = NULL;
	char *data, *s = NULL;
	long n;

	if (ctx == NULL || key == NULL)
		goto out;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	if (PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_256_cbc(),
	    ctx->master, MASTER_KEY_HEX, NULL, NULL) != 1) {
		log_err("key seal: %s", common_ssl_error());
		goto out;
	}
	if ((n = BIO_get_mem_data(bio, &data)) <= 0)
		goto out;
	if ((s = malloc((size_t)n + 1)) == NULL)
		goto out;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
out:
	BIO_free(bio);
	return s;
}

/*
 * Opens an "ENCRYPTED PRIVATE KEY" PEM sealed by ca_key_seal. Plain
 * (unencrypted) keys are refused: a sealed file swapped for a plain key
 * must not load. NULL on failure; nothing about the key is logged.
 */
EVP_PKEY *
ca_key_unseal(const struct ca_ctx *ctx, const char *pem, size_t len)
{
	BIO *bio = NULL;
	X509_SIG *p8 = NULL;
	PKCS8_PRIV_KEY_INFO *info = NULL;
	EVP_PKEY *key = NULL;

	if (ctx == NULL || pem == NULL || len == 0 || len > INT_MAX)
		goto out;
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		goto out;
	if ((p8 = PEM_read_bio_PKCS8(bio, NULL, NULL, NULL)) == NULL)
		goto out;
	if ((info = PKCS8_decrypt(p8, ctx->master, MASTER_KEY_HEX)) == NULL)
		goto out;
	key = EVP_PKCS82PKEY(info);
out:
	if (key == NULL)
		ERR_clear_error();
	PKCS8_PRIV_KEY_INFO_free(info);
	X509_SIG_free(p8);
	BIO_free(bio);
	return key;
}

/* ---- the CA key cache ---- */

/* True when entry k holds the key named by (ca_id, backend, handle). */
static bool
ctx_key_is(const struct ctx_key *k, const char *ca_id, const char *backend,
    const char *handle)
{
	return strcmp(k->ca_id, ca_id) == 0 &&
	    strcmp(k->backend, backend) == 0 &&
	    strcmp(k->handle, handle) == 0;
}

/* The backend and handle of a key reference, or -1 when it lacks them or
 * they do not fit a cache entry. */
static int
ctx_keyref(const json_t *keyref, const char **backend, const char **handle)
{
	*backend = json_string_value(json_object_get(keyref, "backend"));
	*handle = json_string_value(json_object_get(keyref, "handle"));
	if (*backend == NULL || *handle == NULL ||
	    strlen(*backend) >= CACHE_BACKEND_MAX ||
	    strlen(*handle) >= CACHE_HANDLE_MAX)
		return -1;
	return 0;
}

/*
 * Caches key (up-referenced) as the key that keyref names for CA ca_id,
 * replacing an entry for the same key. Entries are per key, not per CA:
 * a CA renewed with a new key keeps its old key cached next to the new
 * one (its CRL for the old key's certificates is signed with it).
 */
int
ca_ctx_cache_put(struct ca_ctx *ctx, const char *ca_id, const json_t *keyref,
    EVP_PKEY *key)
{
	const char *backend, *handle;
	struct ctx_key *k;
	int rc = -1;

	if (ca_id == NULL || key == NULL || strlen(ca_id) >= CACHE_ID_MAX ||
	    ctx_keyref(keyref, &backend, &handle) == -1)
		return -1;
	pthread_mutex_lock(&ctx->lock);
	for (k = ctx->keys; k != NULL; k = k->next) {
		if (ctx_key_is(k, ca_id, backend, handle)) {
			if (EVP_PKEY_up_ref(key) != 1)
				goto out;
			EVP_PKEY_free(k->key);
			k->key = key;
			rc = 0;
			goto out;
		}
	}
	if ((k = calloc(1, sizeof(*k))) == NULL)
		goto out;
	if (EVP_PKEY_up_ref(key) != 1) {
		free(k);
		goto out;
	}
	memcpy(k->ca_id, ca_id, strlen(ca_id) + 1);
	memcpy(k->backend, backend, strlen(backend) + 1);
	memcpy(k->handle, handle, strlen(handle) + 1);
	k->key = key;
	k->next = ctx->keys;
	ctx->keys = k;
	rc = 0;
out:
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

/*
 * Caches key as the key of CA ca_id's current version, as the committed
 * record names it (read outside any transaction: do not call it from a
 * transaction that wrote the CA). -1 when the CA is unknown or its record
 * names no key.
 */
int
ca_ctx_cache_key(struct ca_ctx *ctx, const char *ca_id, EVP_PKEY *key)
{
	json_t *rec;
	int rc;

	if (ca_id == NULL || !common_id_valid(ca_id) ||
	    (rec = store_ca_get(ctx->st, NULL, ca_id)) == NULL)
		return -1;
	rc = ca_ctx_cache_put(ctx, ca_id, json_object_get(rec, "key"), key);
	json_decref(rec);
	return rc;
}

/* Drops the cached keys of ca_id: the one keyref names, or every one
 * when keyref is NULL. */
void
ca_ctx_forget(struct ca_ctx *ctx, const char *ca_id, const json_t *keyref)
{
	struct ctx_key **pp, *k;
	const char *backend = NULL, *handle = NULL;

	if (ca_id == NULL ||
	    (keyref != NULL && ctx_keyref(keyref, &backend, &handle) == -1))
		return;
	pthread_mutex_lock(&ctx->lock);
	for (pp = &ctx->keys; (k = *pp) != NULL;) {
		if (strcmp(k->ca_id, ca_id) == 0 && (keyref == NULL ||
		    ctx_key_is(k, ca_id, backend, handle))) {
			*pp = k->next;
			EVP_PKEY_free(k->key);
			free(k);
		} else
			pp = &k->next;
	}
	pthread_mutex_unlock(&ctx->lock);
}

/* The cached key named by (ca_id, backend, handle), up-referenced, or
 * NULL. */
static EVP_PKEY *
ctx_cache_get(struct ca_ctx *ctx, const char *ca_id, const char *backend,
    const char *handle)
{
	struct ctx_key *k;
	EVP_PKEY *key = NULL;

	pthread_mutex_lock(&ctx->lock);
	for (k = ctx->keys; k != NULL; k = k->next) {
		if (ctx_key_is(k, ca_id, backend, handle)) {
			if (EVP_PKEY_up_ref(k->key) == 1)
				key = k->key;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	return key;
}

/*
 * The private key keyref ({"backend", "handle"}) names for CA ca_id: from
 * the cache, else loaded through its backend (outside the lock:
 * unsealing takes a while) and then cached. New reference, or NULL with
 * err (COMMON_E_INTERNAL: a CA whose key cannot be loaded is broken
 * infrastructure).
 */
EVP_PKEY *
ca_ctx_key_load(struct ca_ctx *ctx, const char *ca_id, const json_t *keyref,
    struct common_error *err)
{
	const struct ca_keystore_type *ks;
	const char *backend, *handle;
	EVP_PKEY *key;

	if (ca_id == NULL || ctx_keyref(keyref, &backend, &handle) == -1) {
		log_err("ca %s: record has no key reference",
		    ca_id != NULL ? ca_id : "(no id)");
		common_error_set(err, COMMON_E_INTERNAL,
		    "CA record is corrupt");
		return NULL;
	}
	if ((key = ctx_cache_get(ctx, ca_id, backend, handle)) != NULL)
		return key;
	if ((ks = ca_keystore_find(backend)) == NULL) {
		log_err("ca %s: key backend %s is not available", ca_id,
		    backend);
		common_error_set(err, COMMON_E_INTERNAL,
		    "key backend %s of CA %s is not available", backend, ca_id);
		return NULL;
	}
	if ((key = ks->load(ctx, handle)) == NULL) {
		log_err("ca %s: cannot load its private key %s (%s backend)",
		    ca_id, handle, backend);
		common_error_set(err, COMMON_E_INTERNAL,
		    "the private key of CA %s cannot be loaded", ca_id);
		return NULL;
	}
	if (ca_ctx_cache_put(ctx, ca_id, keyref, key) == -1)
		log_warn("ca %s: key not cached (out of memory)", ca_id);
	return key;
}

/* The key of the CA record's current version (its top-level "key"). */
EVP_PKEY *
ca_ctx_ca_key(struct ca_ctx *ctx, const json_t *ca_rec,
    struct common_error *err)
{
	return ca_ctx_key_load(ctx, json_string_value(json_object_get(ca_rec,
	    "id")), json_object_get(ca_rec, "key"), err);
}

/* ---- the server's trust bundle ---- */

/*
 * Registers the file ca_publish_certs keeps equal to ca_bundle_pem(ca_id)
 * (DATA/ca-bundle.pem: what clients of pkid's own TLS certificate trust),
 * so that a renewed CA reaches it. 0, or -1 on a bad id or path.
 */
int
ca_ctx_trust_bundle(struct ca_ctx *ctx, const char *ca_id, const char *path)
{
	int rc = -1;

	if (ca_id == NULL || !common_id_valid(ca_id) || path == NULL ||
	    path[0] == '\0')
		return -1;
	pthread_mutex_lock(&ctx->lock);
	if (common_path(ctx->trust_id, sizeof(ctx->trust_id), "%s", ca_id) ==
	    0 && common_path(ctx->trust_path, sizeof(ctx->trust_path), "%s",
	    path) == 0)
		rc = 0;
	else
		ctx->trust_id[0] = ctx->trust_path[0] = '\0';
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

/* Copies the registered trust bundle's CA id and path; -1 when none. */
int
ca_ctx_trust_bundle_get(struct ca_ctx *ctx, char *ca_id, size_t idlen,
    char *path, size_t pathlen)
{
	int rc = -1;

	pthread_mutex_lock(&ctx->lock);
	if (ctx->trust_id[0] != '\0' &&
	    common_path(ca_id, idlen, "%s", ctx->trust_id) == 0 &&
	    common_path(path, pathlen, "%s", ctx->trust_path) == 0)
		rc = 0;
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

/* ---- the record caches (issuer and bundle of each CA) ---- */

/*
 * Correctness rests on three rules. (1) Every write of a CA record goes
 * through ca_record_store, which bumps ca_gen after the store write: an entry built from reads that began before a write is
 * refused or dropped, and reads that begin after it wait for the
 * writer's lock, so they see the committed outcome. (2) The writing
 * transaction itself sees its own uncommitted write, which an abort
 * would undo: it neither uses nor fills the caches while it is listed
 * in writers. (3) A writer is delisted once another transaction (or a
 * standalone read) read that record after the write, which proves the
 * writer ended.
 */

/* True when txn is listed as a writer (lock held). */
static bool
ctx_is_writer(const struct ca_ctx *ctx, const struct store_txn *txn)
{
	size_t i;

	if (txn == NULL)
		return false;
	for (i = 0; i < ctx->nwriters; i++)
		if (ctx->writers[i].txn == txn)
			return true;
	return false;
}

/* True when txn may use and fill the caches (lock held). */
static bool
ctx_cache_usable(const struct ca_ctx *ctx, const struct store_txn *txn)
{
	return !ctx->overflow && !ctx_is_writer(ctx, txn);
}

/*
 * Records that txn wrote (or removed) the record of ca_id: every cached
 * issuer and bundle is stale from now on, and txn is listed as a writer.
 * Called right after the store write, whatever its result.
 */
void
ca_ctx_ca_written(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id)
{
	struct ctx_writer *w;
	size_t i;

	pthread_mutex_lock(&ctx->cache_lock);
	ctx->ca_gen++;
	for (i = 0; i < CACHE_CAS_MAX; i++)
		if (ctx->cas[i].ca_id[0] != '\0')
			ctx_ca_clear(&ctx->cas[i]);
	for (i = 0; i < ctx->nwriters; i++) {
		w = &ctx->writers[i];
		if (w->txn == txn && strcmp(w->ca_id, ca_id) == 0) {
			w->gen = ctx->ca_gen;
			goto out;
		}
	}
	if (txn == NULL || ca_id == NULL || strlen(ca_id) >= CACHE_ID_MAX ||
	    ctx->nwriters == CACHE_WRITERS_MAX) {
		/* not tracked: off until a standalone full read */
		if (!ctx->overflow)
			log_warn("ca: record caches off until the next full "
			    "read of the CAs (%zu writes in flight)",
			    ctx->nwriters);
		ctx->overflow = true;
		ctx->overflow_gen = ctx->ca_gen;
		goto out;
	}
	w = &ctx->writers[ctx->nwriters++];
	w->txn = txn;
	memcpy(w->ca_id, ca_id, strlen(ca_id) + 1);
	w->gen = ctx->ca_gen;
out:
	pthread_mutex_unlock(&ctx->cache_lock);
}

/* The generation a read that starts now must see unchanged to fill a
 * cache. */
uint64_t
ca_ctx_ca_gen(struct ca_ctx *ctx)
{
	uint64_t gen;

	pthread_mutex_lock(&ctx->cache_lock);
	gen = ctx->ca_gen;
	pthread_mutex_unlock(&ctx->cache_lock);
	return gen;
}

/*
 * txn (NULL: a standalone read) read the record of ca_id (NULL: every
 * record) in a read that began at generation gen: writers of it listed
 * by then, other than txn, have ended (that read waited for them).
 */
void
ca_ctx_ca_settle(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id, uint64_t gen)
{
	struct ctx_writer *w;
	size_t i;

	pthread_mutex_lock(&ctx->cache_lock);
	for (i = 0; i < ctx->nwriters;) {
		w = &ctx->writers[i];
		if (w->txn != txn && w->gen <= gen && (ca_id == NULL ||
		    strcmp(w->ca_id, ca_id) == 0))
			*w = ctx->writers[--ctx->nwriters];
		else
			i++;
	}
	if (ctx->overflow && txn == NULL && ca_id == NULL &&
	    ctx->overflow_gen <= gen) {
		ctx->overflow = false;
		log_info("ca: record caches on again");
	}
	pthread_mutex_unlock(&ctx->cache_lock);
}

/* The slot of ca_id (lock held); with make, a free or the least
 * recently used slot (emptied) when it has none. NULL otherwise. */
static struct ctx_ca *
ctx_ca_slot(struct ca_ctx *ctx, const char *ca_id, bool make)
{
	struct ctx_ca *c = NULL;
	size_t i;

	if (ca_id == NULL || strlen(ca_id) >= CACHE_ID_MAX)
		return NULL;
	for (i = 0; i < CACHE_CAS_MAX; i++)
		if (strcmp(ctx->cas[i].ca_id, ca_id) == 0)
			return &ctx->cas[i];
	if (!make)
		return NULL;
	for (i = 0; i < CACHE_CAS_MAX; i++) {
		if (ctx->cas[i].ca_id[0] == '\0') {
			c = &ctx->cas[i];
			break;
		}
		if (c == NULL || ctx->cas[i].used < c->used)
			c = &ctx->cas[i];
	}
	ctx_ca_clear(c);
	memcpy(c->ca_id, ca_id, strlen(ca_id) + 1);
	return c;
}

/* The cached issuer of ca_id for a reader in txn, with a reference of
 * its own (ca_issuer_free); NULL when there is none to use. */
struct ca_issuer *
ca_ctx_issuer_get(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id)
{
	struct ca_issuer *is = NULL;
	struct ctx_ca *c;

	pthread_mutex_lock(&ctx->cache_lock);
	if (ctx_cache_usable(ctx, txn) &&
	    (c = ctx_ca_slot(ctx, ca_id, false)) != NULL &&
	    c->issuer != NULL && c->issuer_gen == ctx->ca_gen) {
		is = c->issuer;
		is->refs++;
		c->used = ++ctx->tick;
	}
	pthread_mutex_unlock(&ctx->cache_lock);
	return is;
}

/* Caches is (a reference is taken) as the issuer of ca_id, built by txn
 * from reads that began at gen, unless a CA was written since or txn may
 * not fill the caches. */
void
ca_ctx_issuer_put(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id, struct ca_issuer *is, uint64_t gen)
{
	struct ctx_ca *c;

	pthread_mutex_lock(&ctx->cache_lock);
	if (gen == ctx->ca_gen && ctx_cache_usable(ctx, txn) &&
	    (c = ctx_ca_slot(ctx, ca_id, true)) != NULL) {
		ctx_issuer_drop(c->issuer);
		is->refs++;
		c->issuer = is;
		c->issuer_gen = gen;
		c->used = ++ctx->tick;
	}
	pthread_mutex_unlock(&ctx->cache_lock);
}

/* Drops a reference to is (ca_issuer_get's or ca_ctx_issuer_get's),
 * freeing it with the last. Accepts NULL. */
void
ca_ctx_issuer_release(struct ca_ctx *ctx, struct ca_issuer *is)
{
	if (is == NULL)
		return;
	pthread_mutex_lock(&ctx->cache_lock);
	ctx_issuer_drop(is);
	pthread_mutex_unlock(&ctx->cache_lock);
}

/* A copy (to free()) of the cached bundle of ca_id for a reader in txn
 * at now; NULL when there is none to use. */
char *
ca_ctx_bundle_get(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id, time_t now)
{
	struct ctx_ca *c;
	char *pem = NULL;

	pthread_mutex_lock(&ctx->cache_lock);
	if (ctx_cache_usable(ctx, txn) &&
	    (c = ctx_ca_slot(ctx, ca_id, false)) != NULL &&
	    c->bundle != NULL && c->bundle_gen == ctx->ca_gen &&
	    now < c->bundle_until) {
		pem = strdup(c->bundle);
		c->used = ++ctx->tick;
	}
	pthread_mutex_unlock(&ctx->cache_lock);
	return pem;
}

/* Caches a copy of pem as the bundle of ca_id until until (when one of
 * its versions expires), built by txn from reads that began at gen,
 * under the same conditions as ca_ctx_issuer_put. */
void
ca_ctx_bundle_put(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id, const char *pem, time_t until, uint64_t gen)
{
	struct ctx_ca *c;
	char *copy;

	if ((copy = strdup(pem)) == NULL)
		return;
	pthread_mutex_lock(&ctx->cache_lock);
	if (gen == ctx->ca_gen && ctx_cache_usable(ctx, txn) &&
	    (c = ctx_ca_slot(ctx, ca_id, true)) != NULL) {
		free(c->bundle);
		c->bundle = copy;	/* steal */
		copy = NULL;
		c->bundle_gen = gen;
		c->bundle_until = until;
		c->used = ++ctx->tick;
	}
	pthread_mutex_unlock(&ctx->cache_lock);
	free(copy);
}
