/* Unit tests for conf/: defaults, the shipped conf/pkid.json, a full
 * valid file (EST labels included), the EST label limits, host:port
 * splitting and every hostile file under tests/data/conf/ (each
 * NAME.json next to NAME.expect, the substring its error must contain).
 * Run from the repository root. */
#include <dirent.h>
#include <stdlib.h>

#include "common/common.h"
#include "conf/conf.h"
#include "tests/unit/test.h"

#define HOSTILE_DIR	"tests/data/conf"
#define HOSTILE_MIN	30	/* fewer files means the directory was missed */

/* Writes text to a file in the test directory; returns its static path. */
static const char *
write_conf(const char *name, const char *text)
{
	static char path[512];

	if (common_path(path, sizeof(path), "%s/%s", test_tmpdir(),
	    name) == -1 ||
	    common_file_write(path, text, strlen(text), 0600) == -1)
		return NULL;
	return path;
}

static bool
strs_same(char **a, size_t na, char **b, size_t nb)
{
	size_t i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* True when the acme sections hold the same values. */
static bool
acme_same(const struct conf *a, const struct conf *b)
{
	const struct conf_acme_profile *pa, *pb;
	size_t i;

	if (a->acme.nprofiles != b->acme.nprofiles)
		return false;
	for (i = 0; i < a->acme.nprofiles; i++) {
		pa = &a->acme.profiles[i];
		pb = &b->acme.profiles[i];
		if (strcmp(pa->name, pb->name) != 0 ||
		    strcmp(pa->pkid_profile, pb->pkid_profile) != 0 ||
		    pa->validity_days != pb->validity_days ||
		    pa->allow_dns != pb->allow_dns ||
		    pa->allow_ip != pb->allow_ip ||
		    strcmp(pa->description, pb->description) != 0)
			return false;
	}
	return strcmp(a->acme.ca_id, b->acme.ca_id) == 0 &&
	    strcmp(a->acme.terms_of_service, b->acme.terms_of_service) == 0 &&
	    strcmp(a->acme.website, b->acme.website) == 0 &&
	    a->acme.eab_required == b->acme.eab_required &&
	    strcmp(a->acme.default_profile, b->acme.default_profile) == 0 &&
	    strs_same(a->acme.dns_suffixes, a->acme.nsuffixes,
	    b->acme.dns_suffixes, b->acme.nsuffixes) &&
	    strs_same(a->acme.ip_ranges, a->acme.nranges,
	    b->acme.ip_ranges, b->acme.nranges) &&
	    a->acme.authz_lifetime_days == b->acme.authz_lifetime_days &&
	    a->acme.authz_reuse == b->acme.authz_reuse &&
	    a->acme.order_lifetime_hours == b->acme.order_lifetime_hours &&
	    a->acme.validation_timeout_seconds ==
	    b->acme.validation_timeout_seconds &&
	    a->acme.retry_after_seconds == b->acme.retry_after_seconds &&
	    a->acme.max_identifiers == b->acme.max_identifiers;
}

static bool
est_label_same(const struct conf_est_label *a, const struct conf_est_label *b)
{
	return strcmp(a->name, b->name) == 0 &&
	    strcmp(a->ca_id, b->ca_id) == 0 &&
	    strcmp(a->profile, b->profile) == 0 &&
	    a->validity_days == b->validity_days &&
	    strcmp(a->auth, b->auth) == 0 &&
	    strcmp(a->trust_bundle, b->trust_bundle) == 0 &&
	    a->allow_new_key == b->allow_new_key &&
	    a->pop_required == b->pop_required &&
	    a->manual_approval == b->manual_approval &&
	    a->serverkeygen == b->serverkeygen &&
	    strcmp(a->key_algorithm, b->key_algorithm) == 0;
}

/* True when the est sections hold the same values. */
static bool
est_same(const struct conf *a, const struct conf *b)
{
	size_t i;

	if (a->est.nlabels != b->est.nlabels)
		return false;
	for (i = 0; i < a->est.nlabels; i++)
		if (!est_label_same(&a->est.labels[i], &b->est.labels[i]))
			return false;
	return a->est.enabled == b->est.enabled &&
	    est_label_same(&a->est.default_label, &b->est.default_label) &&
	    strcmp(a->est.realm, b->est.realm) == 0 &&
	    a->est.retry_after_seconds == b->est.retry_after_seconds;
}

/* True when the lifecycle, crl and notifications sections hold the same
 * values. */
static bool
lifecycle_same(const struct conf *a, const struct conf *b)
{
	const struct conf_lifecycle_profile *pa, *pb;
	const struct conf_webhook *wa, *wb;
	size_t i;

	if (a->lifecycle.nprofiles != b->lifecycle.nprofiles ||
	    a->notifications.nwebhooks != b->notifications.nwebhooks)
		return false;
	for (i = 0; i < a->lifecycle.nprofiles; i++) {
		pa = &a->lifecycle.profiles[i];
		pb = &b->lifecycle.profiles[i];
		if (strcmp(pa->profile, pb->profile) != 0 ||
		    pa->validity_days != pb->validity_days ||
		    pa->renew_before_days != pb->renew_before_days ||
		    pa->renew_at_fraction != pb->renew_at_fraction)
			return false;
	}
	for (i = 0; i < a->notifications.nwebhooks; i++) {
		wa = &a->notifications.webhooks[i];
		wb = &b->notifications.webhooks[i];
		if (strcmp(wa->url, wb->url) != 0 ||
		    strcmp(wa->secret, wb->secret) != 0 ||
		    !strs_same(wa->events, wa->nevents, wb->events,
		    wb->nevents) || strcmp(wa->ca_file, wb->ca_file) != 0 ||
		    wa->timeout_seconds != wb->timeout_seconds)
			return false;
	}
	return a->lifecycle.scan_interval_seconds ==
	    b->lifecycle.scan_interval_seconds &&
	    a->lifecycle.history_limit == b->lifecycle.history_limit &&
	    a->lifecycle.deletion_pending_days ==
	    b->lifecycle.deletion_pending_days &&
	    a->lifecycle.renewal_jitter_seconds ==
	    b->lifecycle.renewal_jitter_seconds &&
	    a->lifecycle.retry_min_seconds == b->lifecycle.retry_min_seconds &&
	    a->lifecycle.retry_max_seconds == b->lifecycle.retry_max_seconds &&
	    a->lifecycle.expiry_warning_days ==
	    b->lifecycle.expiry_warning_days &&
	    a->crl.interval_hours == b->crl.interval_hours &&
	    a->crl.debounce_seconds == b->crl.debounce_seconds &&
	    a->notifications.retry_max == b->notifications.retry_max;
}

/* True when both configurations hold the same values (path aside). */
static bool
conf_same(const struct conf *a, const struct conf *b)
{
	size_t i;

	if (a->ca.nserver_names != b->ca.nserver_names || !acme_same(a, b) ||
	    !est_same(a, b) || !lifecycle_same(a, b))
		return false;
	for (i = 0; i < a->ca.nserver_names; i++)
		if (strcmp(a->ca.server_names[i], b->ca.server_names[i]) != 0)
			return false;
	return strcmp(a->data_dir, b->data_dir) == 0 &&
	    a->workers == b->workers &&
	    strcmp(a->log_level, b->log_level) == 0 &&
	    a->access_log == b->access_log &&
	    strcmp(a->listen.https, b->listen.https) == 0 &&
	    strcmp(a->listen.http, b->listen.http) == 0 &&
	    strcmp(a->listen.mgmt, b->listen.mgmt) == 0 &&
	    strcmp(a->public_url.https, b->public_url.https) == 0 &&
	    strcmp(a->public_url.http, b->public_url.http) == 0 &&
	    strcmp(a->public_url.mgmt, b->public_url.mgmt) == 0 &&
	    a->server.max_header_bytes == b->server.max_header_bytes &&
	    a->server.max_body_bytes == b->server.max_body_bytes &&
	    a->server.timeout_seconds == b->server.timeout_seconds &&
	    a->server.drain_seconds == b->server.drain_seconds &&
	    strcmp(a->ca.master_key_file, b->ca.master_key_file) == 0 &&
	    strcmp(a->ca.root_subject, b->ca.root_subject) == 0 &&
	    strcmp(a->ca.issuing_subject, b->ca.issuing_subject) == 0 &&
	    strcmp(a->ca.key_algorithm, b->ca.key_algorithm) == 0 &&
	    a->ca.root_validity_days == b->ca.root_validity_days &&
	    a->ca.issuing_validity_days == b->ca.issuing_validity_days &&
	    a->certificates.default_validity_days ==
	    b->certificates.default_validity_days &&
	    a->certificates.default_renew_before_days ==
	    b->certificates.default_renew_before_days &&
	    a->tokens.default_ttl_days == b->tokens.default_ttl_days &&
	    a->acme.http01_port == b->acme.http01_port &&
	    a->acme.tlsalpn01_port == b->acme.tlsalpn01_port &&
	    strcmp(a->acme.dns_resolver, b->acme.dns_resolver) == 0;
}

static void
test_defaults(void)
{
	struct conf *c = conf_defaults();

	CHECK(c != NULL);
	if (c == NULL)
		return;
	CHECK(c->path == NULL);
	CHECK_STR(c->data_dir, "var");
	CHECK(c->workers == 0);
	CHECK_STR(c->log_level, "info");
	CHECK(c->access_log);
	CHECK_STR(c->listen.https, "127.0.0.1:8443");
	CHECK_STR(c->listen.http, "127.0.0.1:8080");
	CHECK_STR(c->listen.mgmt, "127.0.0.1:9443");
	CHECK_STR(c->public_url.https, "");
	CHECK_STR(c->public_url.http, "");
	CHECK_STR(c->public_url.mgmt, "");
	CHECK(c->server.max_header_bytes == 16384);
	CHECK(c->server.max_body_bytes == 1048576);
	CHECK(c->server.timeout_seconds == 30);
	CHECK(c->server.drain_seconds == 10);
	CHECK_STR(c->ca.master_key_file, "");
	CHECK_STR(c->ca.root_subject, "CN=pkid Root CA");
	CHECK_STR(c->ca.issuing_subject, "CN=pkid Issuing CA");
	CHECK_STR(c->ca.key_algorithm, "ECDSA_P256");
	CHECK(c->ca.root_validity_days == 3650);
	CHECK(c->ca.issuing_validity_days == 1825);
	CHECK(c->ca.nserver_names == 2);
	CHECK_STR(c->ca.server_names[0], "localhost");
	CHECK_STR(c->ca.server_names[1], "127.0.0.1");
	/* Derived for server/main.c until it reads crl.* itself. */
	CHECK(c->lifecycle.scan_interval_seconds == 60);
	CHECK(c->lifecycle.history_limit == 10);
	CHECK(c->lifecycle.deletion_pending_days == 7);
	CHECK(c->lifecycle.renewal_jitter_seconds == 300);
	CHECK(c->lifecycle.retry_min_seconds == 60);
	CHECK(c->lifecycle.retry_max_seconds == 3600);
	CHECK(c->lifecycle.expiry_warning_days == 14);
	CHECK(c->lifecycle.nprofiles == 0);
	CHECK(conf_lifecycle_profile_find(c, "tls_server") == NULL);
	CHECK(c->crl.interval_hours == 24);
	CHECK(c->crl.debounce_seconds == 2);
	CHECK(c->notifications.nwebhooks == 0);
	CHECK(c->notifications.retry_max == 5);
	CHECK(c->certificates.default_validity_days == 90);
	CHECK(c->certificates.default_renew_before_days == 30);
	CHECK(c->tokens.default_ttl_days == 30);
	CHECK(c->acme.http01_port == 80);
	CHECK(c->acme.tlsalpn01_port == 443);
	CHECK_STR(c->acme.dns_resolver, "");
	CHECK_STR(c->acme.ca_id, "");
	CHECK_STR(c->acme.terms_of_service, "");
	CHECK_STR(c->acme.website, "");
	CHECK(!c->acme.eab_required);
	CHECK_STR(c->acme.default_profile, "tls_server");
	CHECK(c->acme.nprofiles == 3);
	if (c->acme.nprofiles == 3) {
		CHECK_STR(c->acme.profiles[0].name, "tls_server");
		CHECK_STR(c->acme.profiles[0].pkid_profile, "tls_server");
		CHECK(c->acme.profiles[0].validity_days == 90);
		CHECK(c->acme.profiles[0].allow_dns &&
		    c->acme.profiles[0].allow_ip);
		CHECK_STR(c->acme.profiles[0].description,
		    "TLS server certificate, 90 days");
		CHECK_STR(c->acme.profiles[1].name, "tls_server_or_client");
		CHECK_STR(c->acme.profiles[1].pkid_profile,
		    "tls_server_or_client");
		CHECK(c->acme.profiles[1].validity_days == 90);
		CHECK_STR(c->acme.profiles[2].name, "shortlived");
		CHECK_STR(c->acme.profiles[2].pkid_profile, "tls_server");
		CHECK(c->acme.profiles[2].validity_days == 7);
		CHECK(c->acme.profiles[2].allow_dns &&
		    c->acme.profiles[2].allow_ip);
	}
	CHECK(conf_acme_profile_find(c, "shortlived") ==
	    &c->acme.profiles[2]);
	CHECK(conf_acme_profile_find(c, "nope") == NULL);
	CHECK(conf_acme_profile_find(c, NULL) == NULL);
	CHECK(c->acme.nsuffixes == 0);
	CHECK(c->acme.nranges == 0);
	CHECK(c->acme.authz_lifetime_days == 30);
	CHECK(c->acme.authz_reuse);
	CHECK(c->acme.order_lifetime_hours == 24);
	CHECK(c->acme.validation_timeout_seconds == 10);
	CHECK(c->acme.retry_after_seconds == 1);
	CHECK(c->acme.max_identifiers == 100);
	CHECK(c->est.enabled);
	CHECK_STR(c->est.default_label.name, "");
	CHECK_STR(c->est.default_label.ca_id, "");
	CHECK_STR(c->est.default_label.profile, "tls_client");
	CHECK(c->est.default_label.validity_days == 365);
	CHECK_STR(c->est.default_label.auth, "basic_or_cert");
	CHECK_STR(c->est.default_label.trust_bundle, "");
	CHECK(c->est.default_label.allow_new_key);
	CHECK(!c->est.default_label.pop_required);
	CHECK(!c->est.default_label.manual_approval);
	CHECK(c->est.default_label.serverkeygen);
	CHECK_STR(c->est.default_label.key_algorithm, "ECDSA_P256");
	CHECK(c->est.nlabels == 0);
	CHECK_STR(c->est.realm, "pkid EST");
	CHECK(c->est.retry_after_seconds == 60);
	CHECK(conf_est_label_find(c, NULL) == &c->est.default_label);
	CHECK(conf_est_label_find(c, "") == &c->est.default_label);
	CHECK(conf_est_label_find(c, "iot") == NULL);
	CHECK(conf_est_label_find(NULL, "") == NULL);
	conf_free(c);
	conf_free(NULL);
}

/* The shipped file documents the defaults: it must load and equal them. */
static void
test_shipped_file(void)
{
	struct conf *d = conf_defaults(), *c;
	char err[512];

	c = conf_load("conf/pkid.json", err, sizeof(err));
	if (c == NULL)
		fprintf(stderr, "conf/pkid.json: %s\n", err);
	CHECK(c != NULL && d != NULL);
	if (c != NULL && d != NULL) {
		CHECK(conf_same(c, d));
		CHECK_STR(c->path, "conf/pkid.json");
	}
	conf_free(c);
	conf_free(d);
}

static void
test_full_file(void)
{
	static const char text[] =
	    "{\n"
	    "  \"_comment\": [\"comments may hold any value\", 1, null],\n"
	    "  \"data_dir\": \"/srv/pkid\",\n"
	    "  \"workers\": 4,\n"
	    "  \"log_level\": \"debug\",\n"
	    "  \"access_log\": false,\n"
	    "  \"listen\": { \"_why\": {\"nested\": true},\n"
	    "    \"https\": \"[::1]:0\", \"http\": \"localhost:0\",\n"
	    "    \"mgmt\": \"\" },\n"
	    "  \"public_url\": { \"https\": \"https://ca.example:8443\",\n"
	    "    \"http\": \"http://ca.example\", \"mgmt\": \"\" },\n"
	    "  \"server\": { \"max_header_bytes\": 1024,\n"
	    "    \"max_body_bytes\": 67108864, \"timeout_seconds\": 3600,\n"
	    "    \"drain_seconds\": 1 },\n"
	    "  \"ca\": { \"master_key_file\": \"/etc/pkid/master.key\",\n"
	    "    \"root_subject\": \"CN=Test Root,O=Example\",\n"
	    "    \"issuing_subject\": \"CN=Test Issuing,O=Example\",\n"
	    "    \"key_algorithm\": \"RSA3072\",\n"
	    "    \"root_validity_days\": 36500,\n"
	    "    \"issuing_validity_days\": 365.25,\n"
	    "    \"server_names\": [\"ca.example\", \"::1\", \"10.0.0.1\"] "
	    "},\n"
	    "  \"certificates\": { \"default_validity_days\": 0.5,\n"
	    "    \"default_renew_before_days\": 0.25 },\n"
	    "  \"tokens\": { \"default_ttl_days\": 1 },\n"
	    "  \"acme\": { \"http01_port\": 5002, \"tlsalpn01_port\": 5001,\n"
	    "    \"dns_resolver\": \"127.0.0.1:8053\",\n"
	    "    \"ca_id\": \"ca-0123456789abcdef\",\n"
	    "    \"terms_of_service\": \"https://ca.example/tos.pdf\",\n"
	    "    \"website\": \"https://ca.example/\",\n"
	    "    \"eab_required\": true,\n"
	    "    \"default_profile\": \"internal-ip\",\n"
	    "    \"profiles\": { \"_note\": \"two only\",\n"
	    "      \"internal-ip\": { \"pkid_profile\": \"tls_client\",\n"
	    "        \"validity_days\": 0.5, \"identifier_types\": [\"ip\"],\n"
	    "        \"_why\": 1, \"description\": \"12 hours, IP only\" },\n"
	    "      \"web.v2\": { \"pkid_profile\": \"tls_server_or_client\",\n"
	    "        \"identifier_types\": [\"dns\"] } },\n"
	    "    \"dns_suffixes\": [\".Example.COM\", \"corp.internal\"],\n"
	    "    \"ip_ranges\": [\"10.0.0.0/8\", \"FD00:0:0:0::/8\",\n"
	    "      \"192.0.2.7/32\"],\n"
	    "    \"authz_lifetime_days\": 0.25, \"authz_reuse\": false,\n"
	    "    \"order_lifetime_hours\": 1.5,\n"
	    "    \"validation_timeout_seconds\": 300,\n"
	    "    \"retry_after_seconds\": 3, \"max_identifiers\": 1 },\n"
	    "  \"est\": { \"enabled\": false, \"_c\": 1,\n"
	    "    \"default_label\": { \"auth\": \"basic\",\n"
	    "      \"validity_days\": 0.5, \"_why\": \"short\" },\n"
	    "    \"labels\": { \"_note\": {},\n"
	    "      \"iot\": { \"ca_id\": \"ca-0123456789abcdef\",\n"
	    "        \"profile\": \"tls_server_or_client\",\n"
	    "        \"validity_days\": 36500, \"auth\": \"basic_and_cert\",\n"
	    "        \"trust_bundle\": \"/etc/pkid/idevid.pem\",\n"
	    "        \"allow_new_key\": false, \"pop_required\": true,\n"
	    "        \"manual_approval\": true, \"serverkeygen\": false,\n"
	    "        \"key_algorithm\": \"ED25519\" },\n"
	    "      \"A.b_c-9\": {} },\n"
	    "    \"realm\": \"Example EST (devices)\",\n"
	    "    \"retry_after_seconds\": 3600 },\n"
	    "  \"lifecycle\": { \"scan_interval_seconds\": 86400,\n"
	    "    \"history_limit\": 1, \"deletion_pending_days\": 0,\n"
	    "    \"renewal_jitter_seconds\": 0, \"retry_min_seconds\": 5,\n"
	    "    \"retry_max_seconds\": 5, \"expiry_warning_days\": 0.5,\n"
	    "    \"profiles\": { \"_c\": 1,\n"
	    "      \"tls_server\": { \"validity_days\": 1,\n"
	    "        \"renew_before_days\": 0.5 },\n"
	    "      \"code_signing\": { \"renew_at_fraction\": 0.67 },\n"
	    "      \"tls_client\": { \"_note\": \"all defaults\" } } },\n"
	    "  \"crl\": { \"interval_hours\": 0.01, \"debounce_seconds\": 0 },\n"
	    "  \"notifications\": { \"retry_max\": 100, \"webhooks\": [\n"
	    "    { \"url\": \"https://hooks.example/pkid?t=1\",\n"
	    "      \"secret\": \"0123456789abcdef\",\n"
	    "      \"events\": [\"revoked\", \"renewal_failed\"],\n"
	    "      \"ca_file\": \"conf/pkid.json\", \"timeout_seconds\": 300,\n"
	    "      \"_why\": 1 },\n"
	    "    { \"url\": \"http://127.0.0.1:9/\",\n"
	    "      \"secret\": \"a much longer secret of many bytes\",\n"
	    "      \"events\": [] } ] }\n"
	    "}\n";
	const char *path = write_conf("full.json", text);
	struct conf *c;
	char err[512];

	CHECK(path != NULL);
	if (path == NULL)
		return;
	c = conf_load(path, err, sizeof(err));
	if (c == NULL)
		fprintf(stderr, "full.json: %s\n", err);
	CHECK(c != NULL);
	if (c == NULL)
		return;
	CHECK_STR(c->path, path);
	CHECK_STR(c->data_dir, "/srv/pkid");
	CHECK(c->workers == 4);
	CHECK_STR(c->log_level, "debug");
	CHECK(!c->access_log);
	CHECK_STR(c->listen.https, "[::1]:0");
	CHECK_STR(c->listen.http, "localhost:0");
	CHECK_STR(c->listen.mgmt, "");
	CHECK_STR(c->public_url.https, "https://ca.example:8443");
	CHECK_STR(c->public_url.http, "http://ca.example");
	CHECK_STR(c->public_url.mgmt, "");
	CHECK(c->server.max_header_bytes == 1024);
	CHECK(c->server.max_body_bytes == 67108864);
	CHECK(c->server.timeout_seconds == 3600);
	CHECK(c->server.drain_seconds == 1);
	CHECK_STR(c->ca.master_key_file, "/etc/pkid/master.key");
	CHECK_STR(c->ca.root_subject, "CN=Test Root,O=Example");
	CHECK_STR(c->ca.issuing_subject, "CN=Test Issuing,O=Example");
	CHECK_STR(c->ca.key_algorithm, "RSA3072");
	CHECK(c->ca.root_validity_days == 36500);
	CHECK(c->ca.issuing_validity_days == 365.25);
	CHECK(c->ca.nserver_names == 3);
	if (c->ca.nserver_names == 3) {
		CHECK_STR(c->ca.server_names[0], "ca.example");
		CHECK_STR(c->ca.server_names[1], "::1");
		CHECK_STR(c->ca.server_names[2], "10.0.0.1");
	}
	CHECK(c->lifecycle.scan_interval_seconds == 86400);
	CHECK(c->lifecycle.history_limit == 1);
	CHECK(c->lifecycle.deletion_pending_days == 0);
	CHECK(c->lifecycle.renewal_jitter_seconds == 0);
	CHECK(c->lifecycle.retry_min_seconds == 5);
	CHECK(c->lifecycle.retry_max_seconds == 5);
	CHECK(c->lifecycle.expiry_warning_days == 0.5);
	CHECK(c->lifecycle.nprofiles == 3);
	if (c->lifecycle.nprofiles == 3) {
		const struct conf_lifecycle_profile *a, *b, *t;

		a = conf_lifecycle_profile_find(c, "tls_server");
		b = conf_lifecycle_profile_find(c, "code_signing");
		t = conf_lifecycle_profile_find(c, "tls_client");
		CHECK(a == &c->lifecycle.profiles[0]);
		CHECK(a != NULL && a->validity_days == 1 &&
		    a->renew_before_days == 0.5 && a->renew_at_fraction == 0);
		CHECK(b != NULL && b->validity_days == 0 &&
		    b->renew_before_days == 0 && b->renew_at_fraction == 0.67);
		CHECK(t != NULL && t->validity_days == 0 &&
		    t->renew_before_days == 0 && t->renew_at_fraction == 0);
		CHECK(conf_lifecycle_profile_find(c,
		    "tls_server_or_client") == NULL);
	}
	CHECK(c->crl.interval_hours == 0.01);
	CHECK(c->crl.debounce_seconds == 0);
	CHECK(c->notifications.retry_max == 100);
	CHECK(c->notifications.nwebhooks == 2);
	if (c->notifications.nwebhooks == 2) {
		const struct conf_webhook *a = &c->notifications.webhooks[0];
		const struct conf_webhook *b = &c->notifications.webhooks[1];

		CHECK_STR(a->url, "https://hooks.example/pkid?t=1");
		CHECK_STR(a->secret, "0123456789abcdef");
		CHECK(a->nevents == 2);
		if (a->nevents == 2) {
			CHECK_STR(a->events[0], "revoked");
			CHECK_STR(a->events[1], "renewal_failed");
		}
		CHECK_STR(a->ca_file, "conf/pkid.json");
		CHECK(a->timeout_seconds == 300);
		CHECK_STR(b->url, "http://127.0.0.1:9/");
		CHECK_STR(b->secret, "a much longer secret of many bytes");
		CHECK(b->nevents == 0);
		CHECK_STR(b->ca_file, "");
		CHECK(b->timeout_seconds == 10);
	}
	CHECK(c->certificates.default_validity_days == 0.5);
	CHECK(c->certificates.default_renew_before_days == 0.25);
	CHECK(c->tokens.default_ttl_days == 1);
	CHECK(c->acme.http01_port == 5002);
	CHECK(c->acme.tlsalpn01_port == 5001);
	CHECK_STR(c->acme.dns_resolver, "127.0.0.1:8053");
	CHECK_STR(c->acme.ca_id, "ca-0123456789abcdef");
	CHECK_STR(c->acme.terms_of_service, "https://ca.example/tos.pdf");
	CHECK_STR(c->acme.website, "https://ca.example/");
	CHECK(c->acme.eab_required);
	CHECK_STR(c->acme.default_profile, "internal-ip");
	/* The file's profiles replace the built-in ones, in file order. */
	CHECK(c->acme.nprofiles == 2);
	if (c->acme.nprofiles == 2) {
		const struct conf_acme_profile *a = &c->acme.profiles[0];
		const struct conf_acme_profile *b = &c->acme.profiles[1];

		CHECK_STR(a->name, "internal-ip");
		CHECK_STR(a->pkid_profile, "tls_client");
		CHECK(a->validity_days == 0.5);
		CHECK(!a->allow_dns && a->allow_ip);
		CHECK_STR(a->description, "12 hours, IP only");
		CHECK_STR(b->name, "web.v2");
		CHECK_STR(b->pkid_profile, "tls_server_or_client");
		CHECK(b->validity_days == 90);	/* default */
		CHECK(b->allow_dns && !b->allow_ip);
		CHECK_STR(b->description, "");
	}
	CHECK(conf_acme_profile_find(c, "tls_server") == NULL);
	/* Stored normalised: suffixes lower-case without the dot, ranges
	 * in canonical text. */
	CHECK(c->acme.nsuffixes == 2);
	if (c->acme.nsuffixes == 2) {
		CHECK_STR(c->acme.dns_suffixes[0], "example.com");
		CHECK_STR(c->acme.dns_suffixes[1], "corp.internal");
	}
	CHECK(c->acme.nranges == 3);
	if (c->acme.nranges == 3) {
		CHECK_STR(c->acme.ip_ranges[0], "10.0.0.0/8");
		CHECK_STR(c->acme.ip_ranges[1], "fd00::/8");
		CHECK_STR(c->acme.ip_ranges[2], "192.0.2.7/32");
	}
	CHECK(c->acme.authz_lifetime_days == 0.25);
	CHECK(!c->acme.authz_reuse);
	CHECK(c->acme.order_lifetime_hours == 1.5);
	CHECK(c->acme.validation_timeout_seconds == 300);
	CHECK(c->acme.retry_after_seconds == 3);
	CHECK(c->acme.max_identifiers == 1);
	CHECK(!c->est.enabled);
	CHECK_STR(c->est.realm, "Example EST (devices)");
	CHECK(c->est.retry_after_seconds == 3600);
	/* The default label: set fields replaced, the rest built in. */
	CHECK_STR(c->est.default_label.name, "");
	CHECK_STR(c->est.default_label.auth, "basic");
	CHECK(c->est.default_label.validity_days == 0.5);
	CHECK_STR(c->est.default_label.profile, "tls_client");
	CHECK(c->est.default_label.serverkeygen);
	CHECK(c->est.nlabels == 2);
	if (c->est.nlabels == 2) {
		const struct conf_est_label *a = &c->est.labels[0];
		const struct conf_est_label *b = &c->est.labels[1];

		CHECK_STR(a->name, "iot");
		CHECK_STR(a->ca_id, "ca-0123456789abcdef");
		CHECK_STR(a->profile, "tls_server_or_client");
		CHECK(a->validity_days == 36500);
		CHECK_STR(a->auth, "basic_and_cert");
		CHECK_STR(a->trust_bundle, "/etc/pkid/idevid.pem");
		CHECK(!a->allow_new_key && a->pop_required &&
		    a->manual_approval && !a->serverkeygen);
		CHECK_STR(a->key_algorithm, "ED25519");
		CHECK(conf_est_label_find(c, "iot") == a);
		/* An empty label takes the built-in values, not those of
		 * est.default_label. */
		CHECK_STR(b->name, "A.b_c-9");
		CHECK_STR(b->ca_id, "");
		CHECK_STR(b->profile, "tls_client");
		CHECK(b->validity_days == 365);
		CHECK_STR(b->auth, "basic_or_cert");
		CHECK_STR(b->trust_bundle, "");
		CHECK(b->allow_new_key && !b->pop_required &&
		    !b->manual_approval && b->serverkeygen);
		CHECK_STR(b->key_algorithm, "ECDSA_P256");
		CHECK(conf_est_label_find(c, "A.b_c-9") == b);
	}
	CHECK(conf_est_label_find(c, "a.b_c-9") == NULL);
	CHECK(conf_est_label_find(c, "") == &c->est.default_label);
	conf_free(c);
}

/* 64 labels are accepted, the longest name too; a later est.labels in
 * another file replaces the whole set. */
static void
test_est_labels_max(void)
{
	struct common_buf b;
	struct conf *c = NULL;
	const char *path;
	char err[512], name[65];
	int i;

	common_buf_init(&b, 1 << 20);
	CHECK(common_buf_addstr(&b, "{ \"est\": { \"labels\": {") == 0);
	for (i = 0; i < CONF_EST_LABELS_MAX; i++)
		CHECK(common_buf_addf(&b, "%s\"l%02d\": { \"validity_days\": "
		    "%d }", i > 0 ? ", " : "", i, i + 1) == 0);
	memset(name, 'x', 64);
	name[64] = '\0';
	CHECK(common_buf_addstr(&b, "} } }") == 0);
	path = write_conf("est-64.json", (const char *)b.data);
	c = path != NULL ? conf_load(path, err, sizeof(err)) : NULL;
	if (c == NULL)
		fprintf(stderr, "est-64.json: %s\n", err);
	CHECK(c != NULL && c->est.nlabels == CONF_EST_LABELS_MAX);
	if (c != NULL && c->est.nlabels == CONF_EST_LABELS_MAX) {
		CHECK_STR(c->est.labels[63].name, "l63");
		CHECK(c->est.labels[63].validity_days == 64);
		CHECK(conf_est_label_find(c, "l07")->validity_days == 8);
	}
	conf_free(c);
	common_buf_free(&b);

	common_buf_init(&b, 4096);
	CHECK(common_buf_addf(&b, "{ \"est\": { \"labels\": { \"%s\": {} } } }",
	    name) == 0);
	path = write_conf("est-long-name.json", (const char *)b.data);
	c = path != NULL ? conf_load(path, err, sizeof(err)) : NULL;
	CHECK(c != NULL && c->est.nlabels == 1 &&
	    conf_est_label_find(c, name) != NULL);
	conf_free(c);
	common_buf_free(&b);
}

/* Keys left out keep their defaults; an empty object is all defaults. */
static void
test_partial_file(void)
{
	struct conf *d = conf_defaults(), *c;
	const char *path;
	char err[512];

	path = write_conf("partial.json",
	    "{ \"listen\": { \"http\": \"127.0.0.1:0\" },"
	    " \"acme\": { \"http01_port\": 5002 } }");
	c = path != NULL ? conf_load(path, err, sizeof(err)) : NULL;
	CHECK(c != NULL && d != NULL);
	if (c != NULL && d != NULL) {
		CHECK_STR(c->listen.http, "127.0.0.1:0");
		CHECK(c->acme.http01_port == 5002);
		CHECK_STR(c->listen.https, d->listen.https);
		CHECK(c->acme.tlsalpn01_port == 443);
		c->acme.http01_port = 80;
		free(c->listen.http);
		c->listen.http = strdup(d->listen.http);
		CHECK(c->listen.http != NULL && conf_same(c, d));
	}
	conf_free(c);

	path = write_conf("empty-object.json", "{}");
	c = path != NULL ? conf_load(path, err, sizeof(err)) : NULL;
	CHECK(c != NULL && d != NULL && conf_same(c, d));
	conf_free(c);
	conf_free(d);
}

/* Loads path expecting failure with an error holding "path: " and want. */
static bool
refused_with(const char *path, const char *want)
{
	char err[1024], prefix[600];
	struct conf *c;

	c = conf_load(path, err, sizeof(err));
	if (c != NULL) {
		fprintf(stderr, "%s: accepted, expected \"%s\"\n", path, want);
		conf_free(c);
		return false;
	}
	snprintf(prefix, sizeof(prefix), "%s: ", path);
	if (strncmp(err, prefix, strlen(prefix)) != 0 ||
	    strstr(err, want) == NULL) {
		fprintf(stderr, "%s: error \"%s\" lacks \"%s\"\n", path, err,
		    want);
		return false;
	}
	return true;
}

static void
test_hostile_files(void)
{
	char path[512], expect[512], *want;
	struct dirent *de;
	size_t len, n;
	int files = 0;
	DIR *d;

	d = opendir(HOSTILE_DIR);
	CHECK(d != NULL);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		files++;
		CHECK(common_path(path, sizeof(path), "%s/%s", HOSTILE_DIR,
		    de->d_name) == 0);
		CHECK(common_path(expect, sizeof(expect), "%s/%.*s.expect",
		    HOSTILE_DIR, (int)(n - 5), de->d_name) == 0);
		want = NULL;
		CHECK(common_file_read(expect, 4096, &want, &len) == 0);
		if (want == NULL) {
			fprintf(stderr, "%s: missing\n", expect);
			continue;
		}
		while (len > 0 && (want[len - 1] == '\n' ||
		    want[len - 1] == '\r'))
			want[--len] = '\0';
		CHECK(len > 0);
		CHECK(refused_with(path, want));
		free(want);
	}
	closedir(d);
	CHECK(files >= HOSTILE_MIN);
}

/*
 * The size limit. The oversized file is made here rather than checked in:
 * a megabyte of padding in the repository would test nothing more.
 */
static void
test_file_size_limit(void)
{
	char *text, err[512];
	const char *path;
	struct conf *c;

	text = malloc(CONF_FILE_MAX + 2);
	CHECK(text != NULL);
	if (text == NULL)
		return;
	/* Exactly CONF_FILE_MAX bytes of valid JSON loads. */
	memset(text, ' ', CONF_FILE_MAX);
	text[0] = '{';
	text[CONF_FILE_MAX - 1] = '}';
	text[CONF_FILE_MAX] = '\0';
	path = write_conf("max.json", text);
	c = path != NULL ? conf_load(path, err, sizeof(err)) : NULL;
	CHECK(c != NULL);
	conf_free(c);

	/* One more byte is refused before any parsing. */
	text[CONF_FILE_MAX - 1] = ' ';
	text[CONF_FILE_MAX] = '}';
	text[CONF_FILE_MAX + 1] = '\0';
	path = write_conf("oversized.json", text);
	CHECK(path != NULL && refused_with(path, "file larger than 1048576 "
	    "bytes"));
	free(text);
}

static void
test_unreadable(void)
{
	char path[512], small[24];
	struct conf *c;

	CHECK(common_path(path, sizeof(path), "%s/missing.json",
	    test_tmpdir()) == 0);
	CHECK(refused_with(path, "cannot read: No such file"));
	CHECK(refused_with(test_tmpdir(), "cannot read"));	/* directory */
	CHECK(conf_load(NULL, small, sizeof(small)) == NULL);
	CHECK(small[0] != '\0');

	/* A short error buffer is truncated, never overrun. */
	memset(small, 'x', sizeof(small));
	c = conf_load(HOSTILE_DIR "/bad-listen.json", small, sizeof(small));
	CHECK(c == NULL && memchr(small, '\0', sizeof(small)) != NULL);
	CHECK(strncmp(small, HOSTILE_DIR "/bad-listen.json: ",
	    strlen(small)) == 0 && strlen(small) == sizeof(small) - 1);
	CHECK(conf_load(HOSTILE_DIR "/bad-listen.json", NULL, 0) == NULL);
}

/* The key named in errors is sanitized, whatever bytes the file holds. */
static void
test_hostile_key_names(void)
{
	char err[512];
	const char *path;

	path = write_conf("ctl-key.json", "{ \"server\": { \"a\\u0001b\": 1 } }");
	CHECK(path != NULL && refused_with(path, "server.a?b: unknown key"));
	path = write_conf("utf8-key.json", "{ \"d\\u00e9j\\u00e0\": 1 }");
	CHECK(path != NULL && refused_with(path, "d??j??: unknown key"));
	path = write_conf("deep.json",
	    "{ \"listen\": { \"https\": { \"x\": 1 } } }");
	CHECK(path != NULL && refused_with(path,
	    "listen.https: expected string, got object"));
	path = write_conf("long-value.json", "{ \"log_level\": "
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" }");
	CHECK(path != NULL && refused_with(path, "aaaa...\""));
	CHECK(conf_load(path, err, sizeof(err)) == NULL && strlen(err) < 200);
}

/* 16 webhooks are accepted; a webhook secret never shows in an error. */
static void
test_webhooks(void)
{
	struct common_buf b;
	struct conf *c;
	const char *path;
	char err[1024];
	int i;

	common_buf_init(&b, 1 << 16);
	CHECK(common_buf_addstr(&b, "{ \"notifications\": { \"webhooks\": [")
	    == 0);
	for (i = 0; i < CONF_WEBHOOKS_MAX; i++)
		CHECK(common_buf_addf(&b, "%s{ \"url\": \"https://h%d.example/\", "
		    "\"secret\": \"secret-number-%04d\" }", i > 0 ? ", " : "",
		    i, i) == 0);
	CHECK(common_buf_addstr(&b, "] } }") == 0);
	path = write_conf("webhooks-16.json", (const char *)b.data);
	c = path != NULL ? conf_load(path, err, sizeof(err)) : NULL;
	if (c == NULL)
		fprintf(stderr, "webhooks-16.json: %s\n", err);
	CHECK(c != NULL && c->notifications.nwebhooks == CONF_WEBHOOKS_MAX);
	if (c != NULL && c->notifications.nwebhooks == CONF_WEBHOOKS_MAX) {
		CHECK_STR(c->notifications.webhooks[15].url,
		    "https://h15.example/");
		CHECK_STR(c->notifications.webhooks[15].secret,
		    "secret-number-0015");
	}
	conf_free(c);
	common_buf_free(&b);

	path = write_conf("secret-ctl.json", "{ \"notifications\": { "
	    "\"webhooks\": [ { \"url\": \"https://h.example/\", "
	    "\"secret\": \"hunter2-hunter2-\\u0007\" } ] } }");
	CHECK(path != NULL && conf_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "control character") != NULL);
	CHECK(strstr(err, "hunter2") == NULL);
	path = write_conf("secret-short.json", "{ \"notifications\": { "
	    "\"webhooks\": [ { \"url\": \"https://h.example/\", "
	    "\"secret\": \"hunter2\" } ] } }");
	CHECK(path != NULL && conf_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "got 7") != NULL && strstr(err, "hunter2") == NULL);
}

static void
test_split_hostport(void)
{
	char *host = NULL;
	int port = -1;

	CHECK(conf_split_hostport("127.0.0.1:8443", &host, &port) == 0);
	CHECK_STR(host, "127.0.0.1");
	CHECK(port == 8443);
	free(host);
	CHECK(conf_split_hostport("[::1]:0", &host, &port) == 0);
	CHECK_STR(host, "::1");
	CHECK(port == 0);
	free(host);
	CHECK(conf_split_hostport("[fe80::1:2]:65535", &host, &port) == 0);
	CHECK_STR(host, "fe80::1:2");
	CHECK(port == 65535);
	free(host);
	CHECK(conf_split_hostport("ca.example-1.test:53", &host, &port) == 0);
	CHECK_STR(host, "ca.example-1.test");
	free(host);

	CHECK(conf_split_hostport("127.0.0.1:65536", &host, &port) == -1);
	CHECK(host == NULL);
	CHECK(conf_split_hostport("127.0.0.1", &host, &port) == -1);
	CHECK(conf_split_hostport("127.0.0.1:", &host, &port) == -1);
	CHECK(conf_split_hostport(":80", &host, &port) == -1);
	CHECK(conf_split_hostport("::1:80", &host, &port) == -1);
	CHECK(conf_split_hostport("[::1]80", &host, &port) == -1);
	CHECK(conf_split_hostport("[::1:80", &host, &port) == -1);
	CHECK(conf_split_hostport("[]:80", &host, &port) == -1);
	CHECK(conf_split_hostport("[example.com]:80", &host, &port) == -1);
	CHECK(conf_split_hostport("host:80x", &host, &port) == -1);
	CHECK(conf_split_hostport("host:+80", &host, &port) == -1);
	CHECK(conf_split_hostport("host:000080", &host, &port) == -1);
	CHECK(conf_split_hostport("ho st:80", &host, &port) == -1);
	CHECK(conf_split_hostport("host/x:80", &host, &port) == -1);
	CHECK(conf_split_hostport("", &host, &port) == -1);
	CHECK(conf_split_hostport(NULL, &host, &port) == -1);
	CHECK(host == NULL);
}

const struct test_case test_cases[] = {
	TEST(test_defaults),
	TEST(test_shipped_file),
	TEST(test_full_file),
	TEST(test_est_labels_max),
	TEST(test_partial_file),
	TEST(test_hostile_files),
	TEST(test_file_size_limit),
	TEST(test_unreadable),
	TEST(test_hostile_key_names),
	TEST(test_webhooks),
	TEST(test_split_hostport),
	{ 0 },
};
