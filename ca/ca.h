/*
 * ca/ — the CA core: key algorithms and key backends, the CA hierarchy,
 * profiles, naming policy, issuance, the serial registry, revocation, CRLs
 * and chain bundles. Knows nothing about HTTP, ACME or EST.
 *
 * Tables owned here: `ca` and `issued`. Every function that changes state
 * takes the caller's transaction so that lifecycle/ records the
 * certificate and its inventory entry atomically.
 *
 * CA record (JSON, table `ca`):
 *   {"id", "name", "type": "root"|"subordinate"|"subordinate-of-external",
 *    "parent_id" (null for roots and external parents),
 *    "state": "active"|"pending"|"disabled",
 *    "key": {"backend": "file", "handle": "...", "algorithm": "ECDSA_P256"},
 *    "subject", "path_len" (-1: none), "crl_number",
 *    "certificate" (PEM, absent while pending), "csr" (PEM, pending only),
 *    "chain" (PEM of external parents, subordinate-of-external only),
 *    "not_before", "not_after" (RFC 3339),
 *    "policy": {"dns_suffixes": [..], "ip_ranges": [..]},
 *    "created_at",
 *    "versions": [{"version", "serial", "not_before", "not_after",
 *                  "certificate", "key": {..}, "created_at"}, ..],
 *    "current_version" (0 while pending),
 *    "state_before_deletion", "deletion": {"scheduled_at", "execute_at",
 *                  "execute_at_epoch"} (state "pending_deletion" only)}
 *   The top-level "certificate", "serial", "not_before", "not_after" and
 *   "key" always mirror the current version. Records written before CA
 *   versions existed (no "versions") read as one version 1.
 *
 * Issued record (table `issued`, key = upper-case hex serial):
 *   {"serial", "ca_id", "origin": "mgmt"|"acme"|"est", "cert_id",
 *    "version", "not_after" (int), "status": "valid"|"revoked",
 *    "revoked_at" (int), "reason" (RFC 5280 name), "der" (base64),
 *    "ca_version" (the CA version that signed it; absent: 1)}
 */
#ifndef PKID_CA_H
#define PKID_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "store/store.h"

#define CA_MAX_SANS		100	/* SANs per certificate */
#define CA_MAX_VALIDITY_DAYS	36500.0
#define CA_CHAIN_MAX		16	/* certificates in a chain */

struct ca_ctx;

enum ca_key_alg {
	CA_KEY_RSA2048,
	CA_KEY_RSA3072,
	CA_KEY_RSA4096,
	CA_KEY_ECDSA_P256,
	CA_KEY_ECDSA_P384,
	CA_KEY_ED25519,		/* leaf keys only */
	CA_KEY__MAX
};

enum ca_profile {
	CA_PROFILE_TLS_SERVER_OR_CLIENT,
	CA_PROFILE_TLS_SERVER,
	CA_PROFILE_TLS_CLIENT,
	CA_PROFILE_CODE_SIGNING,
	CA_PROFILE__MAX
};

/* RFC 5280 §5.3.1 reason codes (value = code; 7 is unused). */
enum ca_reason {
	CA_REASON_UNSPECIFIED = 0,
	CA_REASON_KEY_COMPROMISE = 1,
	CA_REASON_CA_COMPROMISE = 2,
	CA_REASON_AFFILIATION_CHANGED = 3,
	CA_REASON_SUPERSEDED = 4,
	CA_REASON_CESSATION_OF_OPERATION = 5,
	CA_REASON_CERTIFICATE_HOLD = 6,
	CA_REASON_REMOVE_FROM_CRL = 8,
	CA_REASON_PRIVILEGE_WITHDRAWN = 9,
	CA_REASON_AA_COMPROMISE = 10
};

/* ---- names of enums ("RSA2048", "tls_server", "keyCompromise") ---- */
int ca_key_alg_parse(const char *s, enum ca_key_alg *out);
const char *ca_key_alg_name(enum ca_key_alg alg);
bool ca_key_alg_ca_allowed(enum ca_key_alg alg);	/* FIPS CA set */
int ca_profile_parse(const char *s, enum ca_profile *out);
const char *ca_profile_name(enum ca_profile p);
/* Accepts the RFC 5280 ASN.1 names (keyCompromise, ...) and their
 * snake_case forms (key_compromise); -1 for anything else. */
int ca_reason_parse(const char *s, enum ca_reason *out);
const char *ca_reason_name(enum ca_reason r);

/* ---- keys ---- */

/* New private key of alg; NULL on failure. */
EVP_PKEY *ca_key_generate(enum ca_key_alg alg);
/* Classifies a (public) key; -1 for types/sizes outside the set. */
int ca_key_alg_of(const EVP_PKEY *key, enum ca_key_alg *out);

/*
 * A key backend keeps CA private keys. `file` is built in: sealed
 * (encrypted) PKCS#8 files under DIR/keys/, mode 0600. A PKCS#11 backend
 * registers the same vtable.
 */
struct ca_keystore_type {
	const char *name;
	/* Creates and persists a key; *handle (to free()) names it. */
	int (*generate)(struct ca_ctx *ctx, enum ca_key_alg alg, char **handle,
	    EVP_PKEY **key);
	/* Loads the private key named by handle; NULL on failure. */
	EVP_PKEY *(*load)(struct ca_ctx *ctx, const char *handle);
	/* Destroys the key; 0 or -1. */
	int (*remove)(struct ca_ctx *ctx, const char *handle);
};

/* Seals a private key under the master key: encrypted PKCS#8 PEM
 * (AES-256-CBC, PBKDF2). Returns a string to free(). */
char *ca_key_seal(const struct ca_ctx *ctx, EVP_PKEY *key);
/* Opens what ca_key_seal produced; NULL on failure. */
EVP_PKEY *ca_key_unseal(const struct ca_ctx *ctx, const char *pem, size_t len);

/* ---- context ---- */

struct ca_config {
	const char	*data_dir;	/* keys/, public/, master.key live here */
	const char	*master_key_file; /* NULL or "": DIR/master.key */
	const char	*http_base_url;	/* "http://127.0.0.1:8080": CDP/AIA */
};

/* Loads (creating on first use, mode 0600) the master key and prepares
 * the key backends. The store is borrowed. NULL on failure (logged). */
struct ca_ctx *ca_ctx_new(struct store *st, const struct ca_config *cfg);
void ca_ctx_free(struct ca_ctx *ctx);
struct store *ca_ctx_store(struct ca_ctx *ctx);

/* ---- hierarchy ---- */

struct ca_create_req {
	const char	*name;
	const char	*type;		/* "root" | "subordinate" |
					   "subordinate-of-external" */
	const char	*issuer_ca_id;	/* subordinate only */
	const char	*subject;	/* RFC 4514, e.g. "CN=Root,O=Acme" */
	enum ca_key_alg	 key_alg;
	const char	*key_backend;	/* "file" (NULL = "file") */
	double		 validity_days;
	int		 path_len;	/* -1: no pathLenConstraint */
	const json_t	*policy;	/* NULL or {"dns_suffixes", "ip_ranges"} */
};

/* Creates a CA inside txn: generates its key, then self-signs (root),
 * signs with the issuer (subordinate; validity clipped to the issuer's,
 * path_len checked against the issuer's), or builds a CSR and leaves the
 * CA "pending" (subordinate-of-external). Returns the new CA record (new
 * reference) or NULL with err set. */
json_t *ca_create(struct ca_ctx *ctx, struct store_txn *txn,
    const struct ca_create_req *req, struct common_error *err);
/* Activates a pending subordinate-of-external CA with the certificate its
 * external parent signed (must match the CA's key and be a CA certificate)
 * and that parent's chain (PEM, may be NULL). 0 or -1 with err. */
int ca_import_cert(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, const char *cert_pem, const char *chain_pem,
    struct common_error *err);
/* The CA record (new reference) or NULL (err: not_found). */
json_t *ca_get(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    struct common_error *err);
/* True when CA ca_id exists in txn, in any state: ca_get without the
 * record (an active CA is answered from the issuer cache). */
bool ca_exists(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id);
/* Every CA record. */
json_t *ca_list(struct ca_ctx *ctx, struct store_txn *txn);
/* PEM text: the CA's certificate, then each parent up to the root (and the
 * external chain for subordinate-of-external). To free(); NULL with err. */
char *ca_bundle_pem(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, struct common_error *err);

/* ---- issuance ---- */

struct ca_issue_req {
	EVP_PKEY		*pubkey;	/* subject key (borrowed) */
	const char		*subject;	/* RFC 4514 or NULL/"" */
	const char *const	*sans;		/* typed by form, see DESIGN.md */
	size_t			 nsans;
	enum ca_profile		 profile;
	double			 validity_days;
	const char		*origin;	/* "mgmt" | "acme" | "est" */
	const char		*cert_id;	/* inventory id, recorded */
	unsigned		 version;	/* inventory version, recorded */
};

/* Issues a certificate from a validated request under ca_id inside txn:
 * checks key type, SAN syntax, CA state and the policy of the CA and its
 * ancestors (refusals name the SAN and the rule), 128-bit random serial,
 * AKI/SKI, KU/EKU of the profile, CDP and AIA caIssuers URLs, notAfter
 * clipped to the issuer's. Records the serial in `issued`. Returns the
 * certificate (caller frees) or NULL with err. */
X509 *ca_issue(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    const struct ca_issue_req *req, struct common_error *err);
/* Verifies a PKCS#10 request's self-signature and extracts its subject
 * (RFC 4514 into *subject, to free(); "" when empty) and SAN strings
 * (*sans, a JSON array). 0 or -1 with err. */
int ca_csr_parse(X509_REQ *csr, char **subject, json_t **sans,
    struct common_error *err);

/* ---- revocation and CRLs ---- */

/* Marks serial revoked (reason, at time t) inside txn. Revoking twice is
 * a conflict. 0 or -1 with err. */
int ca_revoke(struct ca_ctx *ctx, struct store_txn *txn, const char *serial,
    enum ca_reason reason, time_t t, struct common_error *err);
/* Builds the CA's next CRL (number incremented in its own transaction;
 * thisUpdate now, nextUpdate now + next_update_seconds; every revoked,
 * unexpired serial with its reason), writes it to
 * DIR/public/crl/<ca-id>.crl atomically, and returns its DER (to free())
 * when der is not NULL. 0 or -1 with err. */
int ca_crl_publish(struct ca_ctx *ctx, const char *ca_id,
    long next_update_seconds, unsigned char **der, size_t *derlen,
    struct common_error *err);
/* Writes DIR/public/ca/<ca-id>.crt (DER) for every active CA. */
int ca_publish_certs(struct ca_ctx *ctx);

/* ---- additions: limits, names, SANs and policy (usable by callers) ---- */

#define CA_NAME_MAX		128	/* CA name, bytes */
#define CA_SUBJECT_MAX		1024	/* RFC 4514 subject string, bytes */
#define CA_SAN_LEN_MAX		1024	/* one SAN string, bytes */
#define CA_PATH_LEN_MAX		32	/* largest pathLenConstraint */
#define CA_POLICY_ENTRIES_MAX	256	/* dns_suffixes / ip_ranges entries */
#define CA_ROOT_VALIDITY_DEFAULT 3650.0	/* days, when a request gives 0 */
#define CA_SUB_VALIDITY_DEFAULT	1825.0	/* days, when a request gives 0 */
#define CA_BACKDATE_SECONDS	300	/* notBefore = now - this (clock skew) */
#define CA_DEFAULT_BASE_URL	"http://127.0.0.1:8080"	/* http_base_url NULL/"" */

/* The key backend called name; NULL when it is not available. */
const struct ca_keystore_type *ca_keystore_find(const char *name);

/* Parses an RFC 4514 subject ("CN=a,O=b"; escapes \, \+ \\ and hex
 * pairs; types CN O OU C ST L DC emailAddress/E serialNumber) into a new
 * X509_NAME (caller frees; "" gives an empty name). NULL with err
 * (COMMON_E_INVALID naming the problem). */
X509_NAME *ca_name_parse(const char *s, struct common_error *err);
/* RFC 4514 text of name (to free()); NULL on allocation failure. */
char *ca_name_string(const X509_NAME *name);

/* Types and validates SAN strings per DESIGN.md (IP literal, user@domain,
 * scheme://..., else a DNS name, lower-cased), refusing duplicates and
 * more than CA_MAX_SANS. Returns new GENERAL_NAMES (GENERAL_NAMES_free)
 * or NULL with err (COMMON_E_INVALID naming the SAN). */
GENERAL_NAMES *ca_sans_parse(const char *const *sans, size_t n,
    struct common_error *err);
/* One SAN as text: DNS/email/URI as is, IP formatted (inet_ntop). To
 * free(); NULL for other types or malformed values. */
char *ca_san_string(const GENERAL_NAME *gen);

/* Validates a CA policy ({"dns_suffixes": [..], "ip_ranges": [CIDR..]},
 * NULL = unrestricted) and returns its normalised form (new reference,
 * both keys present) or NULL with err (COMMON_E_INVALID naming the entry). */
json_t *ca_policy_normalize(const json_t *policy, struct common_error *err);
/* Checks every SAN against the policy of the CA record ca_rec. 0, or -1
 * with err COMMON_E_POLICY naming the SAN, the rule and the CA. */
int ca_policy_check(const json_t *ca_rec, const GENERAL_NAMES *sans,
    struct common_error *err);

/* ---- internal to ca/ (shared between its files) ---- */

const char *ca_ctx_data_dir(const struct ca_ctx *ctx);
const char *ca_ctx_base_url(const struct ca_ctx *ctx);
/* The private key of the CA record ca_rec, from the cache or its backend
 * (then cached). New reference (EVP_PKEY_free); NULL with err. */
EVP_PKEY *ca_ctx_ca_key(struct ca_ctx *ctx, const json_t *ca_rec,
    struct common_error *err);
/* Caches key (up-referenced) as the key of CA ca_id; 0 or -1. */
int ca_ctx_cache_key(struct ca_ctx *ctx, const char *ca_id, EVP_PKEY *key);

/* Signature digest of a CA key: SHA-256 (RSA, P-256), SHA-384 (P-384);
 * NULL for keys that cannot sign certificates here. */
const EVP_MD *ca_sign_md(const EVP_PKEY *key);
/* Sets a fresh 128-bit random serial on x that is not yet in `issued`;
 * its upper-case hex goes to hex (>= 41 bytes). 0 or -1 with err. */
int ca_cert_serial(struct store *st, struct store_txn *txn, X509 *x,
    char *hex, size_t hexlen, struct common_error *err);
/* notBefore = now - CA_BACKDATE_SECONDS, notAfter = now + days clipped to
 * issuer's notAfter (issuer NULL: not clipped). -1 with err when the
 * issuer has expired. */
int ca_cert_validity(X509 *x, double days, const X509 *issuer,
    struct common_error *err);
/* Sets x's SubjectPublicKeyInfo to key (of class alg) with the bytes
 * X509_set_pubkey writes, without OpenSSL 3's encoder/decoder round trip
 * for the usual keys; x then holds no EVP_PKEY (X509_get0_pubkey(x) is
 * NULL). 0 or -1. */
int ca_cert_set_spki(X509 *x, EVP_PKEY *key, enum ca_key_alg alg);
/* Adds SKI (SHA-1 of the key bits) and AKI keyid (issuer's SKI; issuer
 * NULL: x's own). 0 or -1. */
int ca_cert_add_key_ids(X509 *x, X509 *issuer);
/* Adds the CRL distribution point and AIA caIssuers URLs of the CA
 * issuer_id. 0 or -1. */
int ca_cert_add_urls(X509 *x, const struct ca_ctx *ctx, const char *issuer_id);
/* Adds an extension given in openssl.cnf syntax ("critical,CA:TRUE"). */
int ca_cert_add_ext(X509 *x, int nid, const char *value);
/* The certificate of a CA record; NULL when absent or malformed. */
X509 *ca_record_cert(const json_t *ca_rec);
/* The certificate of PEM text pem, decoded once per distinct text (a
 * bounded cache shared by all threads; entries are keyed by the whole
 * text, so a changed record never reads a stale certificate). New
 * reference, to be read only (X509_free); with canon, also its PEM as
 * common_x509_to_pem() writes it (to free()). NULL when pem is NULL or
 * malformed, or on allocation failure. ca_record_cert() goes through it. */
X509 *ca_cert_cached(const char *pem, char **canon);
/* Empties that cache (ca_ctx_free). */
void ca_cert_cache_flush(void);
/* Looks the CA up and checks it is active and holds a certificate; with
 * *cert and *key (when not NULL) set to new references. NULL with err. */
json_t *ca_active_get(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, X509 **cert, EVP_PKEY **key,
    struct common_error *err);


/* ---- CA lifecycle: versions, renewal, state, deletion ---- */

#define CA_VERSIONS_MAX		64	/* certificate versions of one CA */
#define CA_FILE_NAME_MAX	80	/* "<ca-id>-v<n>": public file stem */

/*
 * Public file names. A CA's CRLs are per key: the certificates signed
 * under versions that share a key are listed in one CRL signed by that
 * key, at DATA/public/crl/<stem>.crl where the stem is the CA id for the
 * CA's first key and "<ca-id>-v<n>" for a key first used by version n
 * (so every certificate's CRL distribution point stays right after a
 * renewal with a new key). Every version's certificate is published at
 * DATA/public/ca/<ca-id>-v<n>.crt, the current one also at <ca-id>.crt.
 * Certificates signed under version 1 carry the AIA URL <ca-id>.crt,
 * later ones <ca-id>-v<n>.crt (the certificate that signed them).
 */
/* The stem of the CRL that lists certificates signed under version n of
 * the CA record rec (n = 0: the current version). 0 or -1. */
int ca_crl_stem(const json_t *rec, unsigned n, char *out, size_t outlen);
/* The stem of the AIA caIssuers file of version n (0: current). */
int ca_cert_stem(const json_t *rec, unsigned n, char *out, size_t outlen);

/* Adds the versions of a record written before CA versions existed (one
 * version 1 from its top-level fields; none while pending). Changes rec
 * in place; 0, or -1 on allocation failure. Readers in ca/ call it. */
int ca_record_migrate(json_t *rec);
/* Version n (1..) of a (migrated) CA record, borrowed; NULL if none. */
const json_t *ca_record_version(const json_t *rec, unsigned n);
/* The first version that used the key of version n (its "key
 * generation"); 0 when there is no version n. */
unsigned ca_record_key_gen(const json_t *rec, unsigned n);

struct ca_renew_req {
	bool		 new_key;	/* false: same key, new certificate */
	double		 validity_days;	/* 0: as long as the current version */
	const json_t	*key;		/* NULL, or the key ca_key_create made
					   for this renewal (new_key only) */
};

/*
 * Renews CA ca_id inside txn: a new certificate version for the same
 * subject, with the same key or a new key from the same backend and
 * algorithm, self-signed (root) or signed by the parent's current version
 * (subordinate; validity clipped to it, the parent must be active). It
 * becomes the current version; older versions stay in "versions" (and in
 * bundles while valid) and their keys stay in the backend for the CRLs of
 * the certificates they signed. Active and disabled CAs can be renewed;
 * pending, pending_deletion and subordinate-of-external CAs are a
 * CONFLICT (their certificate comes from outside). A new key made here
 * (req->key NULL) is removed again when this call fails; the caller's
 * commit failing afterwards orphans it, hence ca_key_create. Returns the
 * CA record (as ca_get shows it; new reference) or NULL with err.
 */
json_t *ca_renew(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    const struct ca_renew_req *req, struct common_error *err);
/* Creates (outside any transaction) a key for renewing CA ca_id with the
 * backend and algorithm of its current key, and caches it. Returns its
 * reference {"backend", "handle", "algorithm"} (new reference) or NULL
 * with err. */
json_t *ca_key_create(struct ca_ctx *ctx, const char *ca_id,
    struct common_error *err);
/* Removes a key ca_key_create made that no committed record uses
 * (the renewal failed). Accepts NULL. */
void ca_key_discard(struct ca_ctx *ctx, const char *ca_id,
    const json_t *key);

/* Sets the state of CA ca_id to "active" or "disabled" inside txn. A
 * disabled CA refuses issuance and new subordinates (COMMON_E_CONFLICT
 * "CA <id> is disabled") but keeps publishing CRLs. Only active and
 * disabled CAs change state (else CONFLICT); setting the state a CA has
 * already is not an error. 0 or -1 with err. */
int ca_set_state(struct ca_ctx *ctx, struct store_txn *txn, const char *ca_id,
    const char *state, struct common_error *err);

/*
 * Checks that CA ca_id may be deleted: no certificate it issued that is
 * neither revoked nor expired at now, and no subordinate CA left in the
 * store (in any state). CONFLICT "CA ca-x has 3 active certificates and
 * 1 subordinate CA" otherwise. 0 or -1 with err.
 */
int ca_delete_check(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, time_t now, struct common_error *err);
/* Schedules the deletion of CA ca_id at execute_at inside txn (after
 * ca_delete_check): state "pending_deletion" (no issuance; CRLs go on),
 * "deletion": {"scheduled_at", "execute_at", "execute_at_epoch"}, the
 * former state kept for cancellation. Scheduling again answers the
 * existing schedule. Returns the CA record (as ca_get) or NULL with err. */
json_t *ca_delete_schedule(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, time_t execute_at, struct common_error *err);
/* Cancels a scheduled deletion inside txn, restoring the former state
 * (CONFLICT when none is scheduled). 0 or -1 with err. */
int ca_delete_cancel(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, struct common_error *err);
/* Removes the record of CA ca_id inside txn (after ca_delete_check).
 * The `issued` rows stay (the serial registry is history). Returns the
 * removed record (new reference), to be handed to ca_purge once txn
 * committed, or NULL with err. */
json_t *ca_delete(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, struct common_error *err);
/* After the deletion of rec committed: removes every key its versions
 * used from the backend, its public certificate and CRL files, and its
 * cached keys. Failures are logged. */
void ca_purge(struct ca_ctx *ctx, const json_t *rec);

/* PEM text of the certification path only: the CA's current certificate,
 * then for each parent the version that signed the one before (and an
 * external chain). ca_bundle_pem adds the still-valid certificates of
 * other versions after it. To free(); NULL with err. */
char *ca_chain_pem(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, struct common_error *err);

/* Registers the file (DATA/ca-bundle.pem) that ca_publish_certs keeps
 * equal to ca_bundle_pem(ca_id), so a CA renewal reaches the clients of
 * pkid's own TLS certificate. 0, or -1 on a bad id or path. */
int ca_ctx_trust_bundle(struct ca_ctx *ctx, const char *ca_id,
    const char *path);

/* ---- internal to ca/: versions and keys ---- */

/* Copies the registered trust bundle; -1 when none is registered. */
int ca_ctx_trust_bundle_get(struct ca_ctx *ctx, char *ca_id, size_t idlen,
    char *path, size_t pathlen);
/* The CA record of ca_id read in txn and migrated (ca_record_migrate);
 * NULL when absent. */
json_t *ca_record_load(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id);
/* The private key keyref ({"backend", "handle"}) names for CA ca_id,
 * from the cache or its backend (then cached). New reference; NULL with
 * err. */
EVP_PKEY *ca_ctx_key_load(struct ca_ctx *ctx, const char *ca_id,
    const json_t *keyref, struct common_error *err);
/* Caches key (up-referenced) under (ca_id, keyref); 0 or -1. */
int ca_ctx_cache_put(struct ca_ctx *ctx, const char *ca_id,
    const json_t *keyref, EVP_PKEY *key);
/* Drops the cached key keyref names, or every key of ca_id (NULL). */
void ca_ctx_forget(struct ca_ctx *ctx, const char *ca_id,
    const json_t *keyref);
/* CDP BASE/crl/<crl_stem>.crl and AIA caIssuers BASE/ca/<cert_stem>.crt.
 * 0 or -1. */
int ca_cert_add_urls_stem(X509 *x, const struct ca_ctx *ctx,
    const char *crl_stem, const char *cert_stem);
/* The certificate of version n of rec (n = 0: current); NULL if none. */
X509 *ca_record_version_cert(const json_t *rec, unsigned n);
/* A new version entry for x signed with keyref ({"backend", "handle",
 * "algorithm"}), number n. New reference or NULL. */
json_t *ca_version_entry(X509 *x, unsigned n, const json_t *keyref);
/* Appends version v (from ca_version_entry) to rec and makes it current:
 * mirrors its certificate, serial, validity and key at the top level.
 * 0, or -1 (too many versions, allocation failure). */
int ca_record_add_version(json_t *rec, const json_t *v);

/* ---- internal to ca/: the record caches ---- */

/*
 * What issuing under one active CA reads from its record and its
 * ancestors' records, decoded once per change of any CA record and
 * shared (read-only) by every thread that issues under it.
 */
struct ca_issuer {
	unsigned	 refs;		/* guarded by the context's cache lock */
	json_t		*path;		/* the CA's record, then each ancestor's
					   (policy checks), owned */
	X509		*cert;		/* the current certificate */
	EVP_PKEY	*key;		/* its private key */
	const EVP_MD	*md;		/* the signature digest of key */
	json_int_t	 version;	/* current_version */
	char		 crl_stem[CA_FILE_NAME_MAX];
	char		 cert_stem[CA_FILE_NAME_MAX];
	X509_EXTENSION	*cdp;		/* CRL distribution point of leaves */
	X509_EXTENSION	*aia;		/* their caIssuers URL */
};

/* The issuer of CA ca_id for txn: from the context's cache, else built
 * (ca_active_get and the ancestors' records, the same refusals) and
 * cached when txn may. Release with ca_ctx_issuer_release; NULL with
 * err. */
struct ca_issuer *ca_issuer_get(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, struct common_error *err);
/* Frees is and what it holds, whatever its references. Accepts NULL. */
void ca_issuer_free(struct ca_issuer *is);

/* Stores rec as the record of ca_id in txn (rec NULL: deletes it) and
 * marks every cached issuer and bundle stale. Every write of the `ca`
 * table in ca/ goes through it. 0 or -1 (store failure). */
int ca_record_store(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, const json_t *rec);
/* The store write of ca_id's record by txn happened (see ctx.c). */
void ca_ctx_ca_written(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id);
/* The generation of the CA records a read starting now sees. */
uint64_t ca_ctx_ca_gen(struct ca_ctx *ctx);
/* txn (NULL: standalone) read the record of ca_id (NULL: every record)
 * in a read that began at gen. */
void ca_ctx_ca_settle(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id, uint64_t gen);
/* The cached issuer of ca_id (a new reference) or NULL. */
struct ca_issuer *ca_ctx_issuer_get(struct ca_ctx *ctx,
    const struct store_txn *txn, const char *ca_id);
/* Caches is (takes a reference) if nothing changed since gen. */
void ca_ctx_issuer_put(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id, struct ca_issuer *is, uint64_t gen);
/* Drops a reference to is. Accepts NULL. */
void ca_ctx_issuer_release(struct ca_ctx *ctx, struct ca_issuer *is);
/* A copy (to free()) of the cached bundle of ca_id valid at now, or
 * NULL. */
char *ca_ctx_bundle_get(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id, time_t now);
/* Caches a copy of pem as ca_id's bundle until until, if nothing
 * changed since gen. */
void ca_ctx_bundle_put(struct ca_ctx *ctx, const struct store_txn *txn,
    const char *ca_id, const char *pem, time_t until, uint64_t gen);

#endif
