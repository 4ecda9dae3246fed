/*
 * conf/ — the configuration file: JSON read once at start with jansson.
 * Every key has a default (conf/pkid.json lists them all); unknown keys,
 * wrong types and out-of-range values are refused with the file, the key
 * path and the reason. Keys whose name starts with "_" are comments.
 */
#ifndef PKID_CONF_H
#define PKID_CONF_H

#include <stdbool.h>
#include <stddef.h>

#define CONF_FILE_MAX	(1024 * 1024)
#define CONF_ACME_PROFILES_MAX	16	/* acme.profiles entries */
#define CONF_EST_LABELS_MAX	64	/* est.labels entries */
#define CONF_EST_LABEL_NAME_MAX	64	/* bytes of an EST label name */
#define CONF_WEBHOOKS_MAX	16	/* notifications.webhooks entries */
#define CONF_WEBHOOK_SECRET_MIN	16	/* bytes of an HMAC key, at least */
#define CONF_LIFECYCLE_PROFILES_MAX 4	/* lifecycle.profiles: one per
					   certificate profile */

/* One ACME profile (draft-ietf-acme-profiles) offered in the directory. */
struct conf_acme_profile {
	char	*name;			/* key in acme.profiles */
	char	*pkid_profile;		/* tls_server_or_client | tls_server |
					   tls_client | code_signing */
	double	 validity_days;		/* > 0, <= 36500 */
	bool	 allow_dns;		/* identifier_types holds "dns" */
	bool	 allow_ip;		/* identifier_types holds "ip" */
	char	*description;		/* "" when none */
};

/* One EST label (RFC 7030 section 3.2.2): est.default_label (name "") or
 * a member of est.labels. Every field is set (defaults filled in). */
struct conf_est_label {
	char	*name;			/* "" for the default label */
	char	*ca_id;			/* "": the issuing CA of init */
	char	*profile;		/* tls_server_or_client | tls_server |
					   tls_client | code_signing */
	double	 validity_days;		/* > 0, <= 36500 */
	char	*auth;			/* basic | cert | basic_or_cert |
					   basic_and_cert */
	char	*trust_bundle;		/* PEM file of client-certificate
					   anchors; "": pkid's own CAs */
	bool	 allow_new_key;		/* simplereenroll may change the key */
	bool	 pop_required;		/* tls-unique challengePassword
					   required (TLS 1.3 refused) */
	bool	 manual_approval;	/* enrollments wait for an admin */
	bool	 serverkeygen;		/* /serverkeygen allowed */
	char	*key_algorithm;		/* serverkeygen and csrattrs:
					   ECDSA_P256 | ECDSA_P384 | RSA2048 |
					   RSA3072 | RSA4096 | ED25519 */
};

/* Renewal defaults of one certificate profile (lifecycle.profiles);
 * a field at 0 is unset (certificates.default_* apply). */
struct conf_lifecycle_profile {
	char	*profile;		/* tls_server_or_client | tls_server |
					   tls_client | code_signing */
	double	 validity_days;		/* 0 or (0, 36500] */
	double	 renew_before_days;	/* 0 or (0, 36500]; exclusive with */
	double	 renew_at_fraction;	/* 0 or (0, 1) */
};

/* One webhook receiver of lifecycle notifications. */
struct conf_webhook {
	char	*url;			/* http:// or https:// */
	char	*secret;		/* HMAC-SHA256 key, >= 16 bytes */
	char   **events;		/* event names; none: every event */
	size_t	 nevents;
	char	*ca_file;		/* PEM trust anchors; "": system */
	int	 timeout_seconds;	/* 10: one attempt, connect to end */
};

struct conf {
	char	*path;			/* file read, or NULL for defaults */
	char	*data_dir;		/* "var" */
	int	 workers;		/* 0: number of cores */
	char	*log_level;		/* "info" */
	bool	 access_log;		/* true */

	struct {
		char	*https;		/* "127.0.0.1:8443" ("" disables) */
		char	*http;		/* "127.0.0.1:8080" */
		char	*mgmt;		/* "127.0.0.1:9443" */
	} listen;

	struct {			/* base URLs clients are told about; */
		char	*https;		/* "" derives them from listen.* */
		char	*http;
		char	*mgmt;
	} public_url;

	struct {
		size_t	 max_header_bytes;	/* 16384 */
		size_t	 max_body_bytes;	/* 1048576 */
		int	 timeout_seconds;	/* 30 */
		int	 drain_seconds;		/* 10 */
	} server;

	struct {
		char	*master_key_file;	/* "": DATA/master.key */
		char	*root_subject;		/* "CN=pkid Root CA" */
		char	*issuing_subject;	/* "CN=pkid Issuing CA" */
		char	*key_algorithm;		/* "ECDSA_P256" */
		double	 root_validity_days;	/* 3650 */
		double	 issuing_validity_days;	/* 1825 */
		char   **server_names;		/* {"localhost", "127.0.0.1"} */
		size_t	 nserver_names;
	} ca;

	struct {
		int	 scan_interval_seconds;	/* 60 (1..86400) */
		int	 history_limit;		/* 10 (1..1000) versions keep
						   their PEM */
		double	 deletion_pending_days;	/* 7 (0..365) */
		int	 renewal_jitter_seconds;	/* 300 (0..86400) */
		int	 retry_min_seconds;	/* 60: backoff after a failed */
		int	 retry_max_seconds;	/* 3600: renewal attempt */
		double	 expiry_warning_days;	/* 14 */
		struct conf_lifecycle_profile *profiles;	/* 0..4 */
		size_t	 nprofiles;
	} lifecycle;

	struct {
		double	 interval_hours;	/* 24 (0.01..8760); nextUpdate
						   is twice this */
		double	 debounce_seconds;	/* 2 (0..300) */
	} crl;

	struct {
		struct conf_webhook *webhooks;	/* 0..16, in file order */
		size_t	 nwebhooks;
		int	 retry_max;		/* 5 attempts per delivery */
	} notifications;

	struct {
		double	 default_validity_days;		/* 90 */
		double	 default_renew_before_days;	/* 30 */
	} certificates;

	struct {
		double	 default_ttl_days;	/* 30 */
	} tokens;

	struct {
		int	 http01_port;		/* 80 */
		int	 tlsalpn01_port;	/* 443 */
		char	*dns_resolver;		/* "" = system resolver */
		char	*ca_id;			/* "": the issuing CA of init */
		char	*terms_of_service;	/* "" or URL */
		char	*website;		/* "" or URL */
		bool	 eab_required;		/* false */
		char	*default_profile;	/* "tls_server" */
		struct conf_acme_profile *profiles;	/* 1..16, in file order */
		size_t	 nprofiles;
		char   **dns_suffixes;		/* lower-case, no leading dot;
						   none: any name */
		size_t	 nsuffixes;
		char   **ip_ranges;		/* canonical "addr/prefix";
						   none: any address */
		size_t	 nranges;
		double	 authz_lifetime_days;	/* 30: valid authz reuse */
		bool	 authz_reuse;		/* true */
		double	 order_lifetime_hours;	/* 24: pending orders/authzs */
		int	 validation_timeout_seconds;	/* 10 */
		int	 retry_after_seconds;	/* 1 */
		int	 max_identifiers;	/* 100: per order */
	} acme;

	struct {
		bool	 enabled;		/* true */
		struct conf_est_label default_label;	/* the unlabelled
							   endpoint */
		struct conf_est_label *labels;	/* 0..64, in file order */
		size_t	 nlabels;
		char	*realm;			/* "pkid EST" */
		int	 retry_after_seconds;	/* 60: manual approval 202 */
	} est;
};

/* Returns the defaults. NULL on allocation failure. */
struct conf *conf_defaults(void);
/* Reads path over the defaults. On failure returns NULL and writes
 * "FILE: KEY: REASON" into err. */
struct conf *conf_load(const char *path, char *err, size_t errlen);
void conf_free(struct conf *c);
/* Splits "host:port" or "[v6]:port" into host (to free()) and port;
 * 0 or -1. */
int conf_split_hostport(const char *s, char **host, int *port);
/* The ACME profile called name, or NULL. */
const struct conf_acme_profile *conf_acme_profile_find(const struct conf *c,
    const char *name);
/* The EST label called name; NULL or "" gives the default label. NULL
 * when no label has that name. */
const struct conf_est_label *conf_est_label_find(const struct conf *c,
    const char *name);
/* The renewal defaults of certificate profile name (lifecycle.profiles),
 * or NULL when the file sets none for it. */
const struct conf_lifecycle_profile *conf_lifecycle_profile_find(
    const struct conf *c, const char *name);

#endif
