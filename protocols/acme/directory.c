/*
 * protocols/acme/directory.c — the directory (RFC 8555 §7.1.1, with
 * RFC 9773 renewalInfo and draft-ietf-acme-profiles meta.profiles) and
 * the newNonce resource (§7.2).
 */
#include <string.h>

#include "protocols/acme/acme.h"

/* Sets obj[key] = base + "/acme/" + rest; -1 on failure. */
static int
directory_url(const struct acme_req *r, json_t *obj, const char *key,
    const char *rest)
{
	char url[ACME_URL_MAX];

	if (acme_url(r, url, sizeof(url), "%s", rest) == -1)
		return -1;
	return json_object_set_new(obj, key, json_string(url));
}

/* The meta object: termsOfService, website, externalAccountRequired and
 * the profiles {name: description}. New reference or NULL. */
static json_t *
directory_meta(const struct conf *cf)
{
	json_t *meta, *profiles;
	size_t i;

	if ((meta = json_pack("{s:b}", "externalAccountRequired",
	    cf->acme.eab_required)) == NULL)
		return NULL;
	if ((cf->acme.terms_of_service != NULL &&
	    *cf->acme.terms_of_service != '\0' &&
	    json_object_set_new(meta, "termsOfService",
	    json_string(cf->acme.terms_of_service)) == -1) ||
	    (cf->acme.website != NULL && *cf->acme.website != '\0' &&
	    json_object_set_new(meta, "website",
	    json_string(cf->acme.website)) == -1) ||
	    json_object_set_new(meta, "profiles", json_object()) == -1) {
		json_decref(meta);
		return NULL;
	}
	profiles = json_object_get(meta, "profiles");
	for (i = 0; i < cf->acme.nprofiles; i++) {
		const struct conf_acme_profile *pr = &cf->acme.profiles[i];

		if (json_object_set_new(profiles, pr->name,
		    json_string(pr->description != NULL ? pr->description :
		    "")) == -1) {
			json_decref(meta);
			return NULL;
		}
	}
	return meta;
}

/* GET /acme/directory */
void
acme_directory(struct acme_req *r)
{
	json_t *dir;

	if ((dir = json_object()) == NULL ||
	    directory_url(r, dir, "newNonce", "new-nonce") == -1 ||
	    directory_url(r, dir, "newAccount", "new-account") == -1 ||
	    directory_url(r, dir, "newOrder", "new-order") == -1 ||
	    directory_url(r, dir, "revokeCert", "revoke-cert") == -1 ||
	    directory_url(r, dir, "keyChange", "key-change") == -1 ||
	    directory_url(r, dir, "renewalInfo", "renewal-info") == -1 ||
	    json_object_set_new(dir, "meta", directory_meta(r->a->cf)) == -1) {
		json_decref(dir);
		acme_problem(r, 500, "serverInternal",
		    "cannot build the directory");
		return;
	}
	acme_reply_json(r, 200, dir, NULL);
}

/* HEAD /acme/new-nonce: 200; GET: 204 (RFC 8555 §7.2). Never cached. */
void
acme_new_nonce(struct acme_req *r)
{
	acme_header(r, "Cache-Control", "no-store");
	acme_reply(r, evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD ?
	    200 : 204, NULL, NULL, 0);
}
