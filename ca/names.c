/*
 * ca/names.c — the names of the CA enums as they appear in the API and
 * in records: key algorithms, profiles and RFC 5280 revocation reasons.
 */
#include <string.h>
#include <strings.h>

#include "ca/ca.h"

static const char *const key_alg_names[CA_KEY__MAX] = {
	[CA_KEY_RSA2048] = "RSA2048",
	[CA_KEY_RSA3072] = "RSA3072",
	[CA_KEY_RSA4096] = "RSA4096",
	[CA_KEY_ECDSA_P256] = "ECDSA_P256",
	[CA_KEY_ECDSA_P384] = "ECDSA_P384",
	[CA_KEY_ED25519] = "ED25519",
};

static const char *const profile_names[CA_PROFILE__MAX] = {
	[CA_PROFILE_TLS_SERVER_OR_CLIENT] = "tls_server_or_client",
	[CA_PROFILE_TLS_SERVER] = "tls_server",
	[CA_PROFILE_TLS_CLIENT] = "tls_client",
	[CA_PROFILE_CODE_SIGNING] = "code_signing",
};

/* RFC 5280 section 5.3.1 ASN.1 names and their snake_case forms. */
static const struct {
	enum ca_reason	 reason;
	const char	*name;
	const char	*snake;
} reason_names[] = {
	{ CA_REASON_UNSPECIFIED, "unspecified", "unspecified" },
	{ CA_REASON_KEY_COMPROMISE, "keyCompromise", "key_compromise" },
	{ CA_REASON_CA_COMPROMISE, "cACompromise", "ca_compromise" },
	{ CA_REASON_AFFILIATION_CHANGED, "affiliationChanged",
	    "affiliation_changed" },
	{ CA_REASON_SUPERSEDED, "superseded", "superseded" },
	{ CA_REASON_CESSATION_OF_OPERATION, "cessationOfOperation",
	    "cessation_of_operation" },
	{ CA_REASON_CERTIFICATE_HOLD, "certificateHold", "certificate_hold" },
	{ CA_REASON_REMOVE_FROM_CRL, "removeFromCRL", "remove_from_crl" },
	{ CA_REASON_PRIVILEGE_WITHDRAWN, "privilegeWithdrawn",
	    "privilege_withdrawn" },
	{ CA_REASON_AA_COMPROMISE, "aACompromise", "aa_compromise" },
};

#define REASON_COUNT	(sizeof(reason_names) / sizeof(reason_names[0]))

/* Key algorithm names are matched case-insensitively ("ecdsa_p256"). */
int
ca_key_alg_parse(const char *s, enum ca_key_alg *out)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = 0; i < CA_KEY__MAX; i++) {
		if (strcasecmp(s, key_alg_names[i]) == 0) {
			*out = (enum ca_key_alg)i;
			return 0;
		}
	}
	return -1;
}

const char *
ca_key_alg_name(enum ca_key_alg alg)
{
	if ((int)alg < 0 || alg >= CA_KEY__MAX)
		return "unknown";
	return key_alg_names[alg];
}

bool
ca_key_alg_ca_allowed(enum ca_key_alg alg)
{
	switch (alg) {
	case CA_KEY_RSA2048:
	case CA_KEY_RSA3072:
	case CA_KEY_RSA4096:
	case CA_KEY_ECDSA_P256:
	case CA_KEY_ECDSA_P384:
		return true;
	default:
		return false;
	}
}

int
ca_profile_parse(const char *s, enum ca_profile *out)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = 0; i < CA_PROFILE__MAX; i++) {
		if (strcmp(s, profile_names[i]) == 0) {
			*out = (enum ca_profile)i;
			return 0;
		}
	}
	return -1;
}

const char *
ca_profile_name(enum ca_profile p)
{
	if ((int)p < 0 || p >= CA_PROFILE__MAX)
		return "unknown";
	return profile_names[p];
}

int
ca_reason_parse(const char *s, enum ca_reason *out)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < REASON_COUNT; i++) {
		if (strcmp(s, reason_names[i].name) == 0 ||
		    strcmp(s, reason_names[i].snake) == 0) {
			*out = reason_names[i].reason;
			return 0;
		}
	}
	return -1;
}

const char *
ca_reason_name(enum ca_reason r)
{
	size_t i;

	for (i = 0; i < REASON_COUNT; i++)
		if (reason_names[i].reason == r)
			return reason_names[i].name;
	return "unknown";
}
