/*
 * lifecycle/ — certificate objects and their versions, resources and
 * associations. Every change to a certificate (issue, import, renew,
 * revoke, delete) goes through here: it calls ca/ to sign or revoke and
 * records the result in the same store transaction, so the inventory can
 * never miss a certificate.
 *
 * Tables owned here: `certificate`, `version`, `key`, `resource`,
 * `association`, `audit`.
 *
 * Certificate record (table `certificate`):
 *   {"id", "name", "mode": "managed"|"external"|"imported", "origin":
 *    "mgmt"|"acme"|"est", "ca_id" (null for imported from outside),
 *    "profile", "subject", "sans": [..], "key_algorithm",
 *    "validity_days", "renewal": {"renew_before_days"},
 *    "current_version", "latest_version", "created_at", "state": "active"}
 * Version record (table `version`):
 *   {"certificate_id", "version", "serial", "stage": "pending"|"current"|
 *    "previous"|"revoked"|"failed"|"expired", "not_before", "not_after",
 *    "certificate" (PEM), "chain" (PEM), "key_id" (managed only),
 *    "revoked_at", "revocation_reason", "created_at"}
 *
 * Every function returns new JSON references (caller decrefs) or NULL /
 * -1 with err set; "who" names the actor for the audit trail
 * ("token:<sub>", "acme:<account>", "est:<user>").
 */
#ifndef PKID_LIFECYCLE_H
#define PKID_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ca/ca.h"
#include "common/common.h"
#include "store/store.h"

#define LIFECYCLE_NAME_MAX	128
#define LIFECYCLE_PAGE_MAX	1000
#define LIFECYCLE_PAGE_DEFAULT	100

struct lifecycle;

struct lifecycle_config {
	double	default_validity_days;	/* when a request names none */
	double	default_renew_before_days;
};

/* Borrows ctx (and its store); NULL on allocation failure. */
struct lifecycle *lifecycle_new(struct ca_ctx *ctx,
    const struct lifecycle_config *cfg);
void lifecycle_free(struct lifecycle *lc);

/*
 * Creates a certificate from a management-API style request object:
 *   managed:  {"name", "mode": "managed", "ca_id", "profile", "subject",
 *              "sans", "key_algorithm", "validity_days", "renewal"}
 *   external: {"name", "mode": "external", "ca_id", "profile",
 *              "validity_days", "csr"} (subject and SANs come from the CSR
 *              unless given, and then must match it)
 *   imported: {"name", "mode": "imported", "certificate", "private_key",
 *              "chain"} (key must match the certificate)
 * Unknown fields, wrong types and bad values are COMMON_E_INVALID naming
 * the field. Version 1 is created "current". Returns the certificate
 * record with "current" (its current version, without private key).
 */
json_t *lifecycle_cert_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err);

/*
 * Issues a certificate for a protocol door (ACME finalize, EST enroll):
 * the public key, subject and SANs were validated by the caller. Creates
 * (or, when cert_id names an existing certificate, adds a version to) an
 * inventory entry with mode "external" and the given origin. Returns the
 * version record (with "certificate" and "chain" PEM).
 */
struct lifecycle_issue_req {
	const char		*ca_id;
	const char		*cert_id;	/* NULL: new inventory entry */
	const char		*name;		/* NULL: derived from first SAN */
	EVP_PKEY		*pubkey;
	const char		*subject;
	const char *const	*sans;
	size_t			 nsans;
	enum ca_profile		 profile;
	double			 validity_days;
	const char		*origin;	/* "acme" | "est" | "mgmt" */
};
json_t *lifecycle_issue(struct lifecycle *lc,
    const struct lifecycle_issue_req *req, const char *who,
    struct common_error *err);
/*
 * lifecycle_issue inside the caller's transaction (so ACME finalize marks
 * the order valid in the same transaction that records the certificate).
 * Same semantics; err is cleared first and each call starts afresh, so
 * the caller's store_txn_run may retry it as a whole. A refusal (any code
 * but COMMON_E_INTERNAL) has written nothing in txn: the caller may
 * record its own verdict (an invalid order) and commit. After
 * COMMON_E_INTERNAL the caller must abort.
 */
json_t *lifecycle_issue_txn(struct lifecycle *lc, struct store_txn *txn,
    const struct lifecycle_issue_req *req, const char *who,
    struct common_error *err);

/*
 * Revokes the certificate with this serial (hex, any case; the registry
 * keeps upper-case) in one transaction: the registry row, the inventory
 * version holding it (stage "revoked", and the certificate's stage when
 * it was current) and an audit record. Returns {"serial", "ca_id",
 * "cert_id", "version"} (cert_id/version null when no inventory version
 * holds the serial any more) or NULL with err: NOTFOUND for an unknown
 * or malformed serial, CONFLICT when already revoked. The caller
 * publishes the CRL.
 */
json_t *lifecycle_revoke_serial(struct lifecycle *lc, const char *serial,
    enum ca_reason reason, const char *who, struct common_error *err);
/*
 * The registry record of a serial, for ARI and revocation authorisation:
 * {"serial", "ca_id", "cert_id", "version", "origin", "not_before" (int;
 * derived from the DER on rows that lack it), "not_after" (int),
 * "status": "valid"|"revoked", "der" (base64), "revoked_at", "reason"}.
 * NULL with NOTFOUND for an unknown or malformed serial.
 */
json_t *lifecycle_issued_get(struct lifecycle *lc, const char *serial,
    struct common_error *err);

/* One certificate with "current" (its current version record, no key). */
json_t *lifecycle_cert_get(struct lifecycle *lc, const char *id,
    struct common_error *err);

/* Inventory page. Filters (NULL = any): ca_id, stage (of the current
 * version), name (substring of name or any SAN), expiring_within_days
 * (< 0 = any). Returns {"certificates": [...], "next_page_token": ..}. */
struct lifecycle_query {
	const char	*ca_id;
	const char	*stage;
	const char	*name;
	double		 expiring_within_days;
	const char	*page_token;
	size_t		 limit;
};
json_t *lifecycle_cert_list(struct lifecycle *lc,
    const struct lifecycle_query *q, struct common_error *err);

/* Every version of a certificate, without PEMs or keys. */
json_t *lifecycle_versions(struct lifecycle *lc, const char *id,
    struct common_error *err);
/* One version: {"version", "stage", ..., "certificate", "chain"} plus
 * "private_key" (unencrypted PKCS#8 PEM) when with_key is true and the
 * certificate is managed. */
json_t *lifecycle_version_get(struct lifecycle *lc, const char *id,
    unsigned n, bool with_key, struct common_error *err);
/* New version of a managed certificate (new key) or, for external ones,
 * re-signs the last CSR key; it becomes current at once (no deployment
 * yet) and the old current becomes previous. Returns the version. */
json_t *lifecycle_cert_renew(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);
/* Revokes version n (reason per RFC 5280) and queues no CRL: the caller
 * publishes. Returns the version record with stage "revoked" and
 * "ca_id" of the issuer. */
json_t *lifecycle_version_revoke(struct lifecycle *lc, const char *id,
    unsigned n, enum ca_reason reason, const char *who,
    struct common_error *err);
/* Deletes a certificate with all its versions and keys. A certificate
 * that has associations is a conflict whose message names them. */
int lifecycle_cert_delete(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);

/* ---- resources and associations ---- */

/* {"name", "type": "nginx"|"haproxy"|"webhook"|"other", "config": {..}} */
json_t *lifecycle_resource_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err);
json_t *lifecycle_resource_get(struct lifecycle *lc, const char *id,
    struct common_error *err);
json_t *lifecycle_resource_list(struct lifecycle *lc, const char *page_token,
    size_t limit, struct common_error *err);
/* A resource with associations is a conflict naming them. */
int lifecycle_resource_delete(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);

/* {"certificate_id", "resource_id"}: both must exist; a duplicate pair is
 * a conflict. */
json_t *lifecycle_assoc_create(struct lifecycle *lc, const json_t *req,
    const char *who, struct common_error *err);
json_t *lifecycle_assoc_list(struct lifecycle *lc, const char *cert_id,
    const char *page_token, size_t limit, struct common_error *err);
int lifecycle_assoc_delete(struct lifecycle *lc, const char *id,
    const char *who, struct common_error *err);

/* The borrowed CA context and its store: protocols read their own tables
 * (accounts, orders, EST clients) and CA certificates through them. */
struct ca_ctx *lifecycle_ca(struct lifecycle *lc);
struct store *lifecycle_store(struct lifecycle *lc);

/* ---- shared by the files of lifecycle/ only (not an API) ---- */

#define LIFECYCLE_ID_MAX	64	/* "assoc-" + 16 hex + NUL, with room */
#define LIFECYCLE_TIME_MAX	32	/* RFC 3339 timestamp + NUL */

/* The configuration. */
const struct lifecycle_config *lifecycle_cfg(struct lifecycle *lc);

/* Runs fn(txn, arg, err) in one store transaction (retried on deadlock;
 * err is cleared before each try, so fn sets it freshly). A store failure
 * inside fn is reported as COMMON_E_INTERNAL whatever fn said. 0 when
 * committed, -1 with err set otherwise. */
int lifecycle_txn_run(struct lifecycle *lc,
    int (*fn)(struct store_txn *txn, void *arg, struct common_error *err),
    void *arg, struct common_error *err);
/* Appends {"time", "who", "action", "object", "result": "ok", "detail"}
 * to the audit table inside txn. 0 or -1. */
int lifecycle_audit(struct store_txn *txn, const char *who,
    const char *action, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

enum lifecycle_field_type {
	LIFECYCLE_F_STRING,
	LIFECYCLE_F_NUMBER,
	LIFECYCLE_F_OBJECT,
	LIFECYCLE_F_STRINGS,	/* array of strings */
	LIFECYCLE_F__MAX
};

struct lifecycle_field {
	const char			*name;
	enum lifecycle_field_type	 type;
};

/* Checks that req is a JSON object whose every key is in fields (a table
 * ending with a NULL name) with the right type; a JSON null counts as
 * absent. prefix ("" or "renewal.") qualifies names in messages. 0, or
 * -1 with COMMON_E_INVALID naming the field. */
int lifecycle_req_check(const json_t *req, const char *prefix,
    const struct lifecycle_field *fields, struct common_error *err);
/* The string value of req[name], NULL when absent or null. */
const char *lifecycle_req_str(const json_t *req, const char *name);
/* 1..LIFECYCLE_NAME_MAX printable ASCII characters; else -1 with
 * COMMON_E_INVALID naming field. */
int lifecycle_name_check(const char *field, const char *s,
    struct common_error *err);
/* Validates a page token (NULL/"" = start) and a limit (0 = default,
 * else 1..LIFECYCLE_PAGE_MAX) into *limit_out. 0 or -1 with err. */
int lifecycle_page_check(const char *page_token, size_t limit,
    size_t *limit_out, struct common_error *err);
/* {key: items, "next_page_token": next or null}; steals items (also on
 * failure). NULL on allocation failure. */
json_t *lifecycle_page_result(const char *key, json_t *items,
    const char *next);
/* Sets COMMON_E_CONFLICT "OWNER has N association(s): assoc-1 (resource
 * res-1 "name"), ..." for the associations in assocs (of a certificate
 * when of_cert, else of a resource), looking the other side's names up
 * in txn. Always returns -1. */
int lifecycle_assoc_conflict(struct lifecycle *lc, struct store_txn *txn,
    const char *owner, const json_t *assocs, bool of_cert,
    struct common_error *err);

/* ---- x509.c ---- */

/* SAN strings of x (DNS, e-mail, URI as written; IPs in inet_ntop form)
 * as a JSON array; NULL on allocation failure. */
json_t *lifecycle_x509_sans(X509 *x);
/* RFC 4514 text of name, to free(); NULL on failure. */
char *lifecycle_name_text(const X509_NAME *name);
/* Profile name matching x's extended key usage, or NULL. */
const char *lifecycle_x509_profile(X509 *x);
/* PEM text of csr, to free(); NULL on failure. */
char *lifecycle_csr_to_pem(X509_REQ *csr);
/* SubjectPublicKeyInfo PEM to a key; NULL on failure. */
EVP_PKEY *lifecycle_pubkey_from_pem(const char *pem);
/* 0 when the SAN sets want and csr are equal (IPs by value, names without
 * regard to case); else -1 with COMMON_E_INVALID listing the differences. */
int lifecycle_sans_match(const json_t *want, const json_t *csr,
    struct common_error *err);
/* True when the RFC 4514 text want names the same attributes as csr, in
 * any order. */
bool lifecycle_subject_match(const char *want, const X509_NAME *csr);

#endif
