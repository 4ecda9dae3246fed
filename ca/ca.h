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
 *    "created_at"}
 *
 * Issued record (table `issued`, key = upper-case hex serial):
 *   {"serial", "ca_id", "origin": "mgmt"|"acme"|"est", "cert_id",
 *    "version", "not_after" (int), "status": "valid"|"revoked",
 *    "revoked_at" (int), "reason" (RFC 5280 name), "der" (base64)}
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
/* Looks the CA up and checks it is active and holds a certificate; with
 * *cert and *key (when not NULL) set to new references. NULL with err. */
json_t *ca_active_get(struct ca_ctx *ctx, struct store_txn *txn,
    const char *ca_id, X509 **cert, EVP_PKEY **key,
    struct common_error *err);

#endif
