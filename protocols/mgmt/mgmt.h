/*
 * protocols/mgmt/ — the management API v1 (JSON over HTTPS on the mgmt
 * listener) and its bearer-token authentication.
 *
 * Tokens are JWTs (libjwt, ES256) signed by the installation's key in
 * DATA/token.key (mode 0600, created on first use) with claims iss
 * "pkid", sub, role ("admin" | "operator" | "auditor"), iat, exp, jti.
 */
#ifndef PKID_MGMT_H
#define PKID_MGMT_H

#include <stdbool.h>

#include "ca/ca.h"
#include "lifecycle/lifecycle.h"
#include "server/server.h"

#define MGMT_BODY_MAX	(256 * 1024)

enum mgmt_role {
	MGMT_ROLE_AUDITOR,
	MGMT_ROLE_OPERATOR,
	MGMT_ROLE_ADMIN,
	MGMT_ROLE__MAX
};

struct mgmt;

struct mgmt_config {
	const char	*data_dir;
	long		 crl_next_update_seconds;
};

/* Loads (or creates) the token key and registers the /api/v1/ routes on
 * the mgmt listener. Borrows ca and lc. NULL on failure. */
struct mgmt *mgmt_new(struct server *srv, struct ca_ctx *ca,
    struct lifecycle *lc, const struct mgmt_config *cfg);
void mgmt_free(struct mgmt *m);

/* Parses "admin"|"operator"|"auditor". */
int mgmt_role_parse(const char *s, enum mgmt_role *out);
/* Mints a token for role valid ttl_seconds, signed by DATA/token.key
 * (created when missing). Returns the token (to free()) or NULL. */
char *mgmt_token_mint(const char *data_dir, const char *subject,
    enum mgmt_role role, long ttl_seconds);

#endif
