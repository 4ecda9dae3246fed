/*
 * ca/key.c — key algorithms (generation and classification) and the key
 * backends. The built-in `file` backend keeps each CA key sealed under
 * the master key in DATA/keys/<handle>.pem (mode 0600, directory 0700).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "ca/ca.h"

#define KEY_HANDLE_MAX		64	/* "key-" + 16 hex and the NUL */
#define KEY_FILE_MAX		(64 * 1024)	/* a sealed RSA-4096 is ~3.5 KiB */
#define KEY_HANDLE_TRIES	8	/* fresh handles tried on a name clash */
#define KEY_GROUP_NAME_MAX	64

/*
 * New private key of alg: RSA with e = 65537 (OpenSSL's default), EC on a
 * named curve, or Ed25519. NULL on failure (logged).
 */
EVP_PKEY *
ca_key_generate(enum ca_key_alg alg)
{
	EVP_PKEY *key = NULL;

	switch (alg) {
	case CA_KEY_RSA2048:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case CA_KEY_RSA3072:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	case CA_KEY_RSA4096:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
		break;
	case CA_KEY_ECDSA_P256:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case CA_KEY_ECDSA_P384:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case CA_KEY_ED25519:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	default:
		log_err("key generation: unknown algorithm %d", (int)alg);
		return NULL;
	}
	if (key == NULL)
		log_err("key generation %s: %s", ca_key_alg_name(alg),
		    common_ssl_error());
	return key;
}

/*
 * Classifies a key into the supported set: RSA of exactly 2048, 3072 or
 * 4096 bits, EC on P-256 or P-384 (named curves only), Ed25519. -1 for
 * anything else (RSA-PSS keys, other sizes and curves, explicit
 * parameters, Ed448, DSA ...).
 */
int
ca_key_alg_of(const EVP_PKEY *key, enum ca_key_alg *out)
{
	char group[KEY_GROUP_NAME_MAX];
	size_t glen = 0;
	int nid;

	if (key == NULL)
		return -1;
	if (EVP_PKEY_is_a(key, "RSA")) {
		switch (EVP_PKEY_get_bits(key)) {
		case 2048:
			*out = CA_KEY_RSA2048;
			return 0;
		case 3072:
			*out = CA_KEY_RSA3072;
			return 0;
		case 4096:
			*out = CA_KEY_RSA4096;
			return 0;
		default:
			return -1;
		}
	}
	if (EVP_PKEY_is_a(key, "EC")) {
		if (EVP_PKEY_get_group_name(key, group, sizeof(group),
		    &glen) != 1)
			return -1;	/* explicit parameters */
		nid = OBJ_txt2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid == NID_X9_62_prime256v1) {
			*out = CA_KEY_ECDSA_P256;
			return 0;
		}
		if (nid == NID_secp384r1) {
			*out = CA_KEY_ECDSA_P384;
			return 0;
		}
		return -1;
	}
	if (EVP_PKEY_is_a(key, "ED25519")) {
		*out = CA_KEY_ED25519;
		return 0;
	}
	return -1;
}

/* ---- the file backend ---- */

/* DATA/keys/<handle>.pem into out; -1 when the handle is not a safe
 * identifier or the path does not fit. */
static int
file_key_path(const struct ca_ctx *ctx, const char *handle, char *out,
    size_t outlen)
{
	if (handle == NULL || !common_id_valid(handle))
		return -1;
	return common_path(out, outlen, "%s/keys/%s.pem",
	    ca_ctx_data_dir(ctx), handle);
}

/*
 * Generates a key of alg, seals it and writes it to a new file. On
 * success *handle (to free()) names it and *key holds the private key
 * (caller frees).
 */
static int
file_generate(struct ca_ctx *ctx, enum ca_key_alg alg, char **handle,
    EVP_PKEY **key)
{
	char id[KEY_HANDLE_MAX], dir[PATH_MAX], path[PATH_MAX];
	EVP_PKEY *k = NULL;
	char *sealed = NULL;
	int rc = -1, tries;

	*handle = NULL;
	*key = NULL;
	if (common_path(dir, sizeof(dir), "%s/keys", ca_ctx_data_dir(ctx)) ==
	    -1 || common_mkdirs(dir, 0700) == -1) {
		log_err("key store %s/keys: create: %s", ca_ctx_data_dir(ctx),
		    strerror(errno));
		goto out;
	}
	if ((k = ca_key_generate(alg)) == NULL)
		goto out;
	if ((sealed = ca_key_seal(ctx, k)) == NULL)
		goto out;
	for (tries = 0; tries < KEY_HANDLE_TRIES; tries++) {
		if (common_random_id("key-", id, sizeof(id)) == -1 ||
		    file_key_path(ctx, id, path, sizeof(path)) == -1)
			goto out;
		if (access(path, F_OK) == -1 && errno == ENOENT)
			break;
	}
	if (tries == KEY_HANDLE_TRIES) {
		log_err("key store %s: no free key handle", dir);
		goto out;
	}
	if (common_file_write(path, sealed, strlen(sealed), 0600) == -1) {
		log_err("key store: write %s: %s", path, strerror(errno));
		goto out;
	}
	if ((*handle = strdup(id)) == NULL) {
		unlink(path);
		goto out;
	}
	*key = k;	/* steal */
	k = NULL;
	rc = 0;
out:
	EVP_PKEY_free(k);
	free(sealed);
	return rc;
}

/* Reads and unseals the key file named by handle; NULL on failure. */
static EVP_PKEY *
file_load(struct ca_ctx *ctx, const char *handle)
{
	char path[PATH_MAX];
	char *pem = NULL;
	size_t len = 0;
	EVP_PKEY *k = NULL;

	if (file_key_path(ctx, handle, path, sizeof(path)) == -1) {
		log_err("key store: invalid key handle");
		goto out;
	}
	if (common_file_read(path, KEY_FILE_MAX, &pem, &len) == -1) {
		log_err("key store: read %s: %s", path, strerror(errno));
		goto out;
	}
	if ((k = ca_key_unseal(ctx, pem, len)) == NULL)
		log_err("key store: %s: cannot unseal (wrong master key or "
		    "damaged file)", path);
out:
	free(pem);
	return k;
}

/* Deletes the key file; a missing file counts as removed. */
static int
file_remove(struct ca_ctx *ctx, const char *handle)
{
	char path[PATH_MAX];

	if (file_key_path(ctx, handle, path, sizeof(path)) == -1)
		return -1;
	if (unlink(path) == -1 && errno != ENOENT) {
		log_err("key store: remove %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static const struct ca_keystore_type keystore_file = {
	.name = "file",
	.generate = file_generate,
	.load = file_load,
	.remove = file_remove,
};

/* Built-in key backends. A PKCS#11 backend adds its vtable here. */
static const struct ca_keystore_type *const keystores[] = {
	&keystore_file,
};

const struct ca_keystore_type *
ca_keystore_find(const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < sizeof(keystores) / sizeof(keystores[0]); i++)
		if (strcmp(keystores[i]->name, name) == 0)
			return keystores[i];
	return NULL;
}
