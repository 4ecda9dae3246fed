/*
 * Unit tests for store/: every table, paging, secondary indexes, the
 * unique name index, transactions (rollback, deadlock retry), the schema
 * version check, the process lock, corrupt records, the ACME tables
 * (accounts with their unique key thumbprint, orders paged by account,
 * authorisations by account and identifier, EAB keys), the EST tables
 * (clients by username, approval requests keyed by SHA-256), opening a data
 * directory written before those tables existed, the revocation index
 * (walk order and filtering per CA, its key fields following every
 * change), the serial-terminated (ca_id, status) keys and the upgrade of
 * a schema-1 directory, index entries that follow puts which change
 * indexed fields (the put's record is not parsed again), and durability
 * across SIGKILL (a child commits in a loop, is killed, the parent recovers and
 * checks every acknowledged record, then verifies every database file).
 *
 * This test includes <db.h> (as store/ does) only to plant a corrupt
 * record and to run DB->verify on the closed files.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <db.h>

#include "common/common.h"
#include "store/store.h"
#include "tests/unit/test.h"

#define T_PATH_MAX		512
#define T_JOIN_MAX		4096
#define T_DEADLOCK_ROUNDS	25
#define T_DUR_CYCLES		4	/* odd cycles defer durability */
#define T_DUR_BATCH		8	/* deferred commits per flush wait */
#define T_DUR_MIN_RECORDS	5	/* acked before the kill, at least */
#define T_DUR_KILL_MIN_MS	150
#define T_DUR_KILL_SPAN_MS	250
#define T_DUR_HARD_MS		10000	/* give up waiting for the child */
#define T_DUR_BASE		1000000	/* record numbers per cycle */
#define T_DUR_NOT_AFTER		1000000000
#define T_ABSENT		(-1)	/* t_cert_full: no such field */

/* ---- helpers ----------------------------------------------------------- */

static struct store *
t_open(const char *name, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s/%s", test_tmpdir(), name);
	return store_open(path);
}

static json_t *
t_cert(const char *id, const char *name, const char *ca_id)
{
	json_t *j = json_pack("{s:s, s:s}", "id", id, "ca_id", ca_id);

	if (name != NULL)
		json_object_set_new(j, "name", json_string(name));
	return j;
}

static json_t *
t_issued(const char *serial, const char *ca_id, const char *status,
    json_int_t not_after)
{
	return json_pack("{s:s, s:s, s:s, s:I}", "serial", serial, "ca_id",
	    ca_id, "status", status, "not_after", not_after);
}

/* Comma-joined values of field in each element of arr (static buffer);
 * "<null>" when arr is NULL. */
static const char *
t_join(const json_t *arr, const char *field)
{
	static char buf[T_JOIN_MAX];
	const json_t *v;
	size_t i, off = 0;

	buf[0] = '\0';
	if (arr == NULL)
		return "<null>";
	json_array_foreach(arr, i, v) {
		const json_t *f = json_object_get(v, field);
		char one[64];

		if (json_is_integer(f))
			snprintf(one, sizeof(one), "%lld",
			    (long long)json_integer_value(f));
		else
			snprintf(one, sizeof(one), "%s", json_is_string(f) ?
			    json_string_value(f) : "?");
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
		    i > 0 ? "," : "", one);
		if (off >= sizeof(buf))
			break;
	}
	return buf;
}

/* Checks the store in dir, closes it and opens it again (NULL when
 * that fails, checked). */
static struct store *
t_reopen(struct store *st, const char *dir)
{
	CHECK(store_check(st) == 0);
	store_close(st);
	st = store_open(dir);
	CHECK(st != NULL);
	return st;
}

/* The serials store_issued_by_ca_status gives, joined (t_join). */
static const char *
t_by_status(struct store *st, const char *ca_id, const char *status)
{
	json_t *j = store_issued_by_ca_status(st, NULL, ca_id, status);
	const char *serials = t_join(j, "serial");

	json_decref(j);
	return serials;
}

static bool
t_filter_ca(const json_t *rec, void *arg)
{
	const char *ca = json_string_value(json_object_get(rec, "ca_id"));

	return ca != NULL && strcmp(ca, arg) == 0;
}

/* Opens the environment of the closed store in dir with plain BDB. */
static DB_ENV *
t_env_open(const char *dir)
{
	char envdir[T_PATH_MAX + 8];
	DB_ENV *env = NULL;

	snprintf(envdir, sizeof(envdir), "%s/db", dir);
	CHECK(common_mkdirs(envdir, 0700) == 0);
	CHECK(db_env_create(&env, 0) == 0);
	CHECK(env->open(env, envdir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK |
	    DB_INIT_LOG | DB_INIT_MPOOL | DB_RECOVER, 0600) == 0);
	return env;
}

/* Runs DB->verify on every *.db file under dir/db (store closed). */
static void
t_verify_files(const char *dir)
{
	char path[T_PATH_MAX + 8], file[T_PATH_MAX * 2];
	struct dirent *de;
	DIR *d;
	DB *db;
	int n = 0, rc;

	snprintf(path, sizeof(path), "%s/db", dir);
	CHECK((d = opendir(path)) != NULL);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 3, ".db") != 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		CHECK(db_create(&db, NULL, 0) == 0);
		rc = db->verify(db, file, NULL, NULL, 0);	/* frees db */
		if (rc != 0)
			fprintf(stderr, "verify %s: %s\n", file,
			    db_strerror(rc));
		CHECK(rc == 0);
		n++;
	}
	closedir(d);
	CHECK(n == 30);		/* 15 tables + 15 indexes */
}

/* ---- tables -------------------------------------------------------------- */

static void
test_meta_ca(void)
{
	char dir[T_PATH_MAX], *v;
	struct store *st = t_open("meta_ca", dir, sizeof(dir));
	struct store_txn *txn;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	v = store_meta_get(st, NULL, "schema_version");
	CHECK_STR(v, STORE_SCHEMA_VERSION);
	free(v);
	CHECK(store_meta_get(st, NULL, "absent") == NULL);

	txn = store_txn_begin(st);
	CHECK(store_meta_put(txn, "k1", "value one") == 0);
	j = json_pack("{s:s, s:s}", "id", "ca-b", "name", "Beta");
	CHECK(store_ca_put(txn, "ca-b", j) == 0);
	json_decref(j);
	j = json_pack("{s:s, s:s}", "id", "ca-a", "name", "Alpha");
	CHECK(store_ca_put(txn, "ca-a", j) == 0);
	json_decref(j);
	/* Reads inside the txn see its writes. */
	j = store_ca_get(st, txn, "ca-a");
	CHECK_STR(json_string_value(json_object_get(j, "name")), "Alpha");
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	v = store_meta_get(st, NULL, "k1");
	CHECK_STR(v, "value one");
	free(v);
	j = store_ca_list(st, NULL);
	CHECK_STR(t_join(j, "id"), "ca-a,ca-b");
	json_decref(j);
	CHECK(store_ca_get(st, NULL, "ca-c") == NULL);
	CHECK(store_ca_get(st, NULL, "") == NULL);
	CHECK(store_ca_get(st, NULL, NULL) == NULL);

	/* Overwrite, then delete (deleting an absent id is not an error). */
	txn = store_txn_begin(st);
	j = json_pack("{s:s, s:s}", "id", "ca-a", "name", "Alpha2");
	CHECK(store_ca_put(txn, "ca-a", j) == 0);
	json_decref(j);
	CHECK(store_ca_del(txn, "ca-b") == 0);
	CHECK(store_ca_del(txn, "ca-zz") == 0);
	CHECK(!store_txn_failed(txn));
	CHECK(store_txn_commit(txn) == 0);
	j = store_ca_list(st, NULL);
	CHECK_STR(t_join(j, "name"), "Alpha2");
	json_decref(j);

	/* Writes need a txn and a sane key and record. */
	CHECK(store_ca_put(NULL, "x", NULL) == -1);
	txn = store_txn_begin(st);
	j = json_array();
	CHECK(store_ca_put(txn, "ca-arr", j) == -1);
	json_decref(j);
	CHECK(store_txn_failed(txn));
	CHECK(store_txn_commit(txn) == -1);
	CHECK(store_ca_get(st, NULL, "ca-arr") == NULL);

	CHECK(store_check(st) == 0);
	store_close(st);
	store_close(NULL);
}

static void
test_cert_paging(void)
{
	char dir[T_PATH_MAX], id[32], *next = NULL;
	struct store *st = t_open("paging", dir, sizeof(dir));
	struct store_page page = { 0 };
	struct store_txn *txn;
	json_t *j;
	int i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	for (i = 0; i < 25; i++) {
		snprintf(id, sizeof(id), "c-%02d", i);
		j = t_cert(id, NULL, i % 2 == 0 ? "ca-a" : "ca-b");
		CHECK(store_cert_put(txn, id, j) == 0);
		json_decref(j);
	}
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-a") == 13);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-b") == 12);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-c") == 0);

	/* Unfiltered, 10 per page. */
	page.limit = 10;
	j = store_cert_list(st, NULL, &page, &next);
	CHECK(json_array_size(j) == 10);
	CHECK_STR(next, "c-09");
	json_decref(j);
	page.after = next;
	j = store_cert_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "c-10,c-11,c-12,c-13,c-14,c-15,c-16,c-17,"
	    "c-18,c-19");
	CHECK_STR(next, "c-19");
	free((char *)page.after);
	json_decref(j);
	page.after = next;
	j = store_cert_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "c-20,c-21,c-22,c-23,c-24");
	CHECK(next == NULL);
	free((char *)page.after);
	json_decref(j);

	/* Filtered by CA, 5 per page: 5 + 5 + 3. */
	page.after = NULL;
	page.limit = 5;
	page.filter = t_filter_ca;
	page.arg = "ca-a";
	j = store_cert_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "c-00,c-02,c-04,c-06,c-08");
	CHECK_STR(next, "c-08");
	json_decref(j);
	page.after = next;
	j = store_cert_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "c-10,c-12,c-14,c-16,c-18");
	CHECK_STR(next, "c-18");
	free((char *)page.after);
	json_decref(j);
	page.after = next;
	j = store_cert_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "c-20,c-22,c-24");
	CHECK(next == NULL);
	free((char *)page.after);
	json_decref(j);

	/* A token that is not a key starts after it; limits are clamped. */
	page.filter = NULL;
	page.after = "c-095";
	page.limit = 2;
	j = store_cert_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "c-10,c-11");
	CHECK_STR(next, "c-11");
	free(next);
	json_decref(j);
	page.after = NULL;
	page.limit = 0;
	j = store_cert_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "c-00");
	CHECK_STR(next, "c-00");
	free(next);
	json_decref(j);
	page.limit = 5000;
	j = store_cert_list(st, NULL, &page, &next);
	CHECK(json_array_size(j) == 25);
	CHECK(next == NULL);
	json_decref(j);
	/* NULL page: the first STORE page of everything. */
	j = store_cert_list(st, NULL, NULL, NULL);
	CHECK(json_array_size(j) == 25);
	json_decref(j);
	page.after = "c-24";
	j = store_cert_list(st, NULL, &page, &next);
	CHECK(j != NULL && json_array_size(j) == 0);
	CHECK(next == NULL);
	json_decref(j);

	/* Delete updates the ca_id index. */
	txn = store_txn_begin(st);
	CHECK(store_cert_del(txn, "c-00") == 0);
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_cert_get(st, NULL, "c-00") == NULL);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-a") == 12);

	CHECK(store_check(st) == 0);
	store_close(st);
}

static void
test_cert_unique_name(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("unique", dir, sizeof(dir));
	struct store_txn *txn;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	j = t_cert("cert-a", "www", "ca-1");
	CHECK(store_cert_put(txn, "cert-a", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	/* Another certificate with the same name: txn fails, nothing
	 * stored, even what came before in the same txn. */
	txn = store_txn_begin(st);
	j = t_cert("cert-z", "other", "ca-1");
	CHECK(store_cert_put(txn, "cert-z", j) == 0);
	json_decref(j);
	j = t_cert("cert-b", "www", "ca-1");
	CHECK(store_cert_put(txn, "cert-b", j) == -1);
	json_decref(j);
	CHECK(store_txn_failed(txn));
	CHECK(store_txn_commit(txn) == -1);
	CHECK(store_cert_get(st, NULL, "cert-b") == NULL);
	CHECK(store_cert_get(st, NULL, "cert-z") == NULL);
	CHECK(store_cert_by_name(st, NULL, "other") == NULL);
	j = store_cert_by_name(st, NULL, "www");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "cert-a");
	json_decref(j);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-1") == 1);

	/* Rewriting a certificate under its own name is fine; renaming
	 * frees the old name. */
	txn = store_txn_begin(st);
	j = t_cert("cert-a", "www", "ca-2");
	CHECK(store_cert_put(txn, "cert-a", j) == 0);
	json_decref(j);
	j = t_cert("cert-a", "www2", "ca-2");
	CHECK(store_cert_put(txn, "cert-a", j) == 0);
	json_decref(j);
	j = t_cert("cert-b", "www", "ca-1");
	CHECK(store_cert_put(txn, "cert-b", j) == 0);
	json_decref(j);
	/* A certificate without a name is not indexed by name. */
	j = t_cert("cert-c", NULL, "ca-1");
	CHECK(store_cert_put(txn, "cert-c", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	j = store_cert_by_name(st, NULL, "www");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "cert-b");
	json_decref(j);
	j = store_cert_by_name(st, NULL, "www2");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "cert-a");
	json_decref(j);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-1") == 2);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-2") == 1);
	CHECK(store_check(st) == 0);
	store_close(st);
}

static void
test_versions(void)
{
	static const uint32_t ns[] = { 3, 1, 256, 2, 10 };
	char dir[T_PATH_MAX];
	struct store *st = t_open("versions", dir, sizeof(dir));
	struct store_txn *txn;
	json_t *j;
	size_t i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		j = json_pack("{s:i, s:s}", "n", (int)ns[i], "stage",
		    "previous");
		CHECK(store_version_put(txn, "x", ns[i], j) == 0);
		json_decref(j);
	}
	/* Neighbours sharing a prefix must not leak into the scan. */
	j = json_pack("{s:i}", "n", 7);
	CHECK(store_version_put(txn, "x2", 1, j) == 0);
	CHECK(store_version_put(txn, "w", 9, j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	j = store_version_list(st, NULL, "x");
	CHECK_STR(t_join(j, "n"), "1,2,3,10,256");
	json_decref(j);
	j = store_version_list(st, NULL, "nope");
	CHECK(j != NULL && json_array_size(j) == 0);
	json_decref(j);
	j = store_version_get(st, NULL, "x", 256);
	CHECK(json_integer_value(json_object_get(j, "n")) == 256);
	json_decref(j);
	CHECK(store_version_get(st, NULL, "x", 4) == NULL);

	txn = store_txn_begin(st);
	CHECK(store_version_del(txn, "x", 2) == 0);
	CHECK(store_txn_commit(txn) == 0);
	j = store_version_list(st, NULL, "x");
	CHECK_STR(t_join(j, "n"), "1,3,10,256");
	json_decref(j);
	j = store_version_list(st, NULL, "x2");
	CHECK_STR(t_join(j, "n"), "7");
	json_decref(j);
	CHECK(store_check(st) == 0);
	store_close(st);
}

static void
test_issued_indexes(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("issued", dir, sizeof(dir));
	struct store_txn *txn;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	j = t_issued("0A", "ca-1", "valid", 5000);
	CHECK(store_issued_put(txn, "0A", j) == 0);
	json_decref(j);
	j = t_issued("0B", "ca-1", "valid", 3000);
	CHECK(store_issued_put(txn, "0B", j) == 0);
	json_decref(j);
	j = t_issued("0C", "ca-2", "valid", 4000);
	CHECK(store_issued_put(txn, "0C", j) == 0);
	json_decref(j);
	j = t_issued("0D", "ca-1", "valid", 1000);
	CHECK(store_issued_put(txn, "0D", j) == 0);
	json_decref(j);
	j = t_issued("0E", "ca-1", "valid", 3000);	/* same not_after */
	CHECK(store_issued_put(txn, "0E", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	CHECK_STR(t_by_status(st, "ca-1", "valid"), "0A,0B,0D,0E");
	CHECK_STR(t_by_status(st, "ca-1", "revoked"), "");

	/* Revoke 0B: the (ca, status) index follows the update. */
	txn = store_txn_begin(st);
	j = store_issued_get(st, txn, "0B");
	CHECK(j != NULL);
	json_object_set_new(j, "status", json_string("revoked"));
	CHECK(store_issued_put(txn, "0B", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	CHECK_STR(t_by_status(st, "ca-1", "valid"), "0A,0D,0E");
	CHECK_STR(t_by_status(st, "ca-1", "revoked"), "0B");
	CHECK_STR(t_by_status(st, "ca-2", "valid"), "0C");

	/* Expiring before, ascending by not_after (ties by serial). */
	j = store_issued_expiring_before(st, NULL, 4001, 100);
	CHECK_STR(t_join(j, "serial"), "0D,0B,0E,0C");
	json_decref(j);
	j = store_issued_expiring_before(st, NULL, 4000, 2);
	CHECK_STR(t_join(j, "serial"), "0D,0B");
	json_decref(j);
	j = store_issued_expiring_before(st, NULL, 1000, 10);
	CHECK(j != NULL && json_array_size(j) == 0);
	json_decref(j);

	/* The index fields are required. */
	txn = store_txn_begin(st);
	j = json_pack("{s:s, s:s}", "ca_id", "ca-1", "status", "valid");
	CHECK(store_issued_put(txn, "0F", j) == -1);
	json_decref(j);
	CHECK(store_txn_failed(txn));
	store_txn_abort(txn);

	txn = store_txn_begin(st);
	j = t_issued("0A", "ca-1", "valid", 6000);
	CHECK(store_issued_put(txn, "0A", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	j = store_issued_expiring_before(st, NULL, 10000, 10);
	CHECK_STR(t_join(j, "serial"), "0D,0B,0E,0C,0A");
	json_decref(j);
	CHECK(store_check(st) == 0);
	store_close(st);
}

static void
test_key_resource_assoc(void)
{
	static const unsigned char blob[] = { 0, 1, 2, 0xff, 0, 7 };
	char dir[T_PATH_MAX], id[32], *next = NULL;
	struct store *st = t_open("kra", dir, sizeof(dir));
	struct store_page page = { .limit = 5 };
	struct store_txn *txn;
	unsigned char *got = NULL;
	size_t len = 0;
	json_t *j;
	int i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	CHECK(store_key_put(txn, "key-1", blob, sizeof(blob)) == 0);
	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "res-%d", i);
		j = json_pack("{s:s, s:s}", "id", id, "type", "file");
		CHECK(store_resource_put(txn, id, j) == 0);
		json_decref(j);
	}
	j = json_pack("{s:s, s:s, s:s}", "id", "as-1", "certificate_id", "c-1",
	    "resource_id", "res-1");
	CHECK(store_assoc_put(txn, "as-1", j) == 0);
	json_decref(j);
	j = json_pack("{s:s, s:s, s:s}", "id", "as-2", "certificate_id", "c-1",
	    "resource_id", "res-2");
	CHECK(store_assoc_put(txn, "as-2", j) == 0);
	json_decref(j);
	j = json_pack("{s:s, s:s, s:s}", "id", "as-3", "certificate_id", "c-2",
	    "resource_id", "res-1");
	CHECK(store_assoc_put(txn, "as-3", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	CHECK(store_key_get(st, NULL, "key-1", &got, &len) == 0);
	CHECK(len == sizeof(blob) && got != NULL &&
	    memcmp(got, blob, len) == 0);
	free(got);
	CHECK(store_key_get(st, NULL, "key-2", &got, &len) == -1);

	/* Exactly two full pages: the second ends the listing. */
	j = store_resource_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "res-0,res-1,res-2,res-3,res-4");
	CHECK_STR(next, "res-4");
	json_decref(j);
	page.after = next;
	j = store_resource_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "res-5,res-6,res-7,res-8,res-9");
	CHECK(next == NULL);
	free((char *)page.after);
	json_decref(j);
	j = store_resource_get(st, NULL, "res-3");
	CHECK_STR(json_string_value(json_object_get(j, "type")), "file");
	json_decref(j);

	j = store_assoc_by_cert(st, NULL, "c-1");
	CHECK_STR(t_join(j, "id"), "as-1,as-2");
	json_decref(j);
	j = store_assoc_by_resource(st, NULL, "res-1");
	CHECK_STR(t_join(j, "id"), "as-1,as-3");
	json_decref(j);
	j = store_assoc_by_cert(st, NULL, "c-9");
	CHECK(j != NULL && json_array_size(j) == 0);
	json_decref(j);
	page.after = NULL;
	page.limit = 2;
	j = store_assoc_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "id"), "as-1,as-2");
	CHECK_STR(next, "as-2");
	free(next);
	json_decref(j);
	j = store_assoc_get(st, NULL, "as-3");
	CHECK_STR(json_string_value(json_object_get(j, "certificate_id")),
	    "c-2");
	json_decref(j);

	txn = store_txn_begin(st);
	CHECK(store_assoc_del(txn, "as-1") == 0);
	CHECK(store_key_del(txn, "key-1") == 0);
	CHECK(store_resource_del(txn, "res-9") == 0);
	CHECK(store_txn_commit(txn) == 0);
	j = store_assoc_by_resource(st, NULL, "res-1");
	CHECK_STR(t_join(j, "id"), "as-3");
	json_decref(j);
	CHECK(store_key_get(st, NULL, "key-1", &got, &len) == -1);
	CHECK(store_resource_get(st, NULL, "res-9") == NULL);
	CHECK(store_check(st) == 0);
	store_close(st);
}

static void
test_audit(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("audit", dir, sizeof(dir));
	struct store_txn *txn;
	uint64_t seq = 0;
	json_t *j, *rec;
	int i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	j = store_audit_list(st, NULL, 0, 10);
	CHECK(j != NULL && json_array_size(j) == 0);
	json_decref(j);
	for (i = 1; i <= 3; i++) {
		txn = store_txn_begin(st);
		rec = json_pack("{s:s, s:i}", "event", "test", "i", i);
		CHECK(store_audit_append(txn, rec, &seq) == 0);
		CHECK(seq == (uint64_t)i);
		CHECK(json_object_get(rec, "seq") == NULL);	/* not ours */
		json_decref(rec);
		CHECK(store_txn_commit(txn) == 0);
	}
	/* An aborted append leaves the sequence where it was. */
	txn = store_txn_begin(st);
	rec = json_pack("{s:s}", "event", "aborted");
	CHECK(store_audit_append(txn, rec, &seq) == 0);
	CHECK(seq == 4);
	json_decref(rec);
	store_txn_abort(txn);
	txn = store_txn_begin(st);
	rec = json_pack("{s:s, s:i}", "event", "test", "i", 4);
	CHECK(store_audit_append(txn, rec, NULL) == 0);
	json_decref(rec);
	CHECK(store_txn_commit(txn) == 0);

	j = store_audit_list(st, NULL, 0, 100);
	CHECK_STR(t_join(j, "seq"), "1,2,3,4");
	CHECK_STR(t_join(j, "i"), "1,2,3,4");
	json_decref(j);
	j = store_audit_list(st, NULL, 1, 2);
	CHECK_STR(t_join(j, "seq"), "2,3");
	json_decref(j);
	j = store_audit_list(st, NULL, 4, 10);
	CHECK(j != NULL && json_array_size(j) == 0);
	json_decref(j);
	CHECK(store_check(st) == 0);
	store_close(st);

	/* The sequence survives a reopen. */
	st = store_open(dir);
	CHECK(st != NULL);
	txn = store_txn_begin(st);
	rec = json_pack("{s:s}", "event", "after reopen");
	CHECK(store_audit_append(txn, rec, &seq) == 0);
	CHECK(seq == 5);
	json_decref(rec);
	CHECK(store_txn_commit(txn) == 0);
	store_close(st);
}

/* ---- certificate orders: not_after, origin, due, ca_id, id ------------- */

/* A certificate record with the fields the indexes read; na or due
 * T_ABSENT: the field is left out. */
static json_t *
t_cert_full(const char *id, const char *ca_id, const char *origin,
    json_int_t na, json_int_t due)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "name", id,
	    "ca_id", ca_id, "origin", origin);

	if (na != T_ABSENT)
		json_object_set_new(j, "not_after_epoch", json_integer(na));
	if (due != T_ABSENT)
		json_object_set_new(j, "due_at_epoch", json_integer(due));
	return j;
}

static void
t_put_full(struct store *st, const char *id, const char *ca_id,
    const char *origin, json_int_t na, json_int_t due)
{
	struct store_txn *txn = store_txn_begin(st);
	json_t *j = t_cert_full(id, ca_id, origin, na, due);

	CHECK(store_cert_put(txn, id, j) == 0);
	CHECK(store_txn_commit(txn) == 0);
	json_decref(j);
}

/* One page of range after token; the ids joined; *next (to free). */
static const char *
t_scan(struct store *st, const struct store_range *r, const char *after,
    size_t limit, char **next)
{
	struct store_page page = { .after = after, .limit = limit };
	json_t *j = store_cert_scan(st, NULL, r, &page, next);
	const char *ids = t_join(j, "id");

	json_decref(j);
	return ids;
}

/* Follows tokens through the whole range, page by page; the ids joined
 * with '|' between pages. */
static const char *
t_scan_all(struct store *st, const struct store_range *r, size_t limit)
{
	static char all[T_JOIN_MAX];
	char *tok = NULL, *next = NULL;
	size_t off = 0;
	int pages = 0;

	all[0] = '\0';
	do {
		const char *ids = t_scan(st, r, tok, limit, &next);

		off += (size_t)snprintf(all + off, sizeof(all) - off, "%s%s",
		    pages++ > 0 ? "|" : "", ids);
		free(tok);
		tok = next;
		next = NULL;
	} while (tok != NULL && pages < 50 && off < sizeof(all));
	free(tok);
	return all;
}

static int t_prefilter_calls;

/* Prefilter: the text must hold "keep". */
static bool
t_prefilter(const void *text, size_t len, void *arg)
{
	(void)arg;
	t_prefilter_calls++;
	return memmem(text, len, "keep", 4) != NULL;
}

static void
test_cert_orders(void)
{
	char dir[T_PATH_MAX], *next = NULL;
	struct store *st = t_open("orders", dir, sizeof(dir));
	struct store_range r = { .index = STORE_CERT_BY_NOT_AFTER };
	unsigned char bound[STORE_TIME_KEY_LEN], lo[STORE_TIME_KEY_LEN];
	struct store_page page = { .limit = 100 };
	struct store_txn *txn;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	/* id      ca    origin  not_after  due */
	t_put_full(st, "c-e", "ca-1", "acme", 300, 200);
	t_put_full(st, "c-a", "ca-2", "mgmt", 100, 50);
	t_put_full(st, "c-d", "ca-1", "mgmt", 100, -1);
	t_put_full(st, "c-b", "ca-1", "est", -1, -1);	/* no current */
	t_put_full(st, "c-c", "ca-2", "acme", 200, 150);
	t_put_full(st, "c-f", "ca-1", "acme", 50, 10);
	t_put_full(st, "c-g", "ca-3", "mgmt", -5, -1);	/* before 1970 */

	/* not_after order: ties by id, no not_after last, < 1970 first */
	CHECK_STR(t_scan(st, &r, NULL, 100, &next), "c-g,c-f,c-a,c-d,c-c,"
	    "c-e,c-b");
	CHECK(next == NULL);
	/* paged two by two, tokens carry key and id */
	CHECK_STR(t_scan(st, &r, NULL, 2, &next), "c-g,c-f");
	CHECK_STR(next, "0000000000000032:c-f");
	free(next);
	CHECK_STR(t_scan_all(st, &r, 2), "c-g,c-f|c-a,c-d|c-c,c-e|c-b");
	CHECK_STR(t_scan_all(st, &r, 1), "c-g|c-f|c-a|c-d|c-c|c-e|c-b");
	/* a range that stops at the bound (exclusive), and from lo */
	store_time_key(200, bound);
	r.hi = bound;
	r.hi_len = sizeof(bound);
	CHECK_STR(t_scan_all(st, &r, 2), "c-g,c-f|c-a,c-d");
	r.hi_inclusive = true;
	CHECK_STR(t_scan_all(st, &r, 2), "c-g,c-f|c-a,c-d|c-c");
	store_time_key(100, lo);
	r.lo = lo;
	r.lo_len = sizeof(lo);
	CHECK_STR(t_scan_all(st, &r, 10), "c-a,c-d,c-c");
	/* a token before lo starts at lo */
	CHECK_STR(t_scan(st, &r, "0000000000000000:c-a", 10, NULL),
	    "c-a,c-d,c-c");
	/* the last page of a bounded range has no token */
	CHECK_STR(t_scan(st, &r, NULL, 3, &next), "c-a,c-d,c-c");
	CHECK(next == NULL);
	r.lo = NULL;
	r.hi = NULL;
	r.hi_inclusive = false;

	/* a position whose record moved or went away still resumes */
	CHECK_STR(t_scan(st, &r, NULL, 3, &next), "c-g,c-f,c-a");
	CHECK_STR(next, "0000000000000064:c-a");
	txn = store_txn_begin(st);
	CHECK(store_cert_del(txn, "c-a") == 0);
	CHECK(store_txn_commit(txn) == 0);
	CHECK_STR(t_scan(st, &r, next, 10, NULL), "c-d,c-c,c-e,c-b");
	free(next);
	CHECK_STR(t_scan(st, &r, "0000000000000064:c-z", 10, NULL),
	    "c-c,c-e,c-b");
	CHECK_STR(t_scan(st, &r, "0000000000000063:c-z", 10, NULL),
	    "c-d,c-c,c-e,c-b");
	t_put_full(st, "c-a", "ca-2", "mgmt", 250, 50);	/* back, later */
	CHECK_STR(t_scan(st, &r, NULL, 100, NULL), "c-g,c-f,c-d,c-c,c-a,"
	    "c-e,c-b");

	/* exact keys: ca_id and origin, in id order, tokens are ids */
	r.index = STORE_CERT_BY_CA;
	r.lo = r.hi = "ca-1";
	r.lo_len = r.hi_len = 4;
	r.hi_inclusive = true;
	CHECK_STR(t_scan_all(st, &r, 2), "c-b,c-d|c-e,c-f");
	CHECK_STR(t_scan(st, &r, NULL, 2, &next), "c-b,c-d");
	CHECK_STR(next, "c-d");
	free(next);
	CHECK_STR(t_scan(st, &r, "c-c", 10, NULL), "c-d,c-e,c-f");
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_CA, "ca-1", 4) ==
	    4);
	r.index = STORE_CERT_BY_ORIGIN;
	r.lo = r.hi = "acme";
	CHECK_STR(t_scan_all(st, &r, 2), "c-c,c-e|c-f");
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_ORIGIN, "mgmt",
	    4) == 3);
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_ORIGIN, "ftp",
	    3) == 0);
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_ID, "c-a", 3) ==
	    -1);
	/* a range over several string keys: tokens carry the key in hex */
	r.lo = "ca-1";
	r.hi = "ca-2";
	r.index = STORE_CERT_BY_CA;
	CHECK_STR(t_scan(st, &r, NULL, 5, &next), "c-b,c-d,c-e,c-f,c-a");
	CHECK_STR(next, "63612d32:c-a");
	CHECK_STR(t_scan(st, &r, next, 5, NULL), "c-c");
	free(next);

	/* due_at: only records with one */
	memset(&r, 0, sizeof(r));
	r.index = STORE_CERT_BY_DUE;
	store_time_key(150, bound);
	r.hi = bound;
	r.hi_len = sizeof(bound);
	CHECK_STR(t_scan(st, &r, NULL, 10, NULL), "c-f,c-a");
	r.hi = NULL;
	CHECK_STR(t_scan(st, &r, NULL, 10, NULL), "c-f,c-a,c-c,c-e");

	/* the table itself, with an id range */
	memset(&r, 0, sizeof(r));
	r.index = STORE_CERT_BY_ID;
	CHECK_STR(t_scan_all(st, &r, 3), "c-a,c-b,c-c|c-d,c-e,c-f|c-g");
	r.lo = "c-b";
	r.lo_len = 3;
	r.hi = "c-d";
	r.hi_len = 3;
	CHECK_STR(t_scan(st, &r, NULL, 10, NULL), "c-b,c-c");
	r.hi_inclusive = true;
	CHECK_STR(t_scan(st, &r, "c-b", 10, NULL), "c-c,c-d");

	/* filter and prefilter */
	memset(&r, 0, sizeof(r));
	r.index = STORE_CERT_BY_NOT_AFTER;
	page.filter = t_filter_ca;
	page.arg = "ca-1";
	j = store_cert_scan(st, NULL, &r, &page, NULL);
	CHECK_STR(t_join(j, "id"), "c-f,c-d,c-e,c-b");
	json_decref(j);
	t_put_full(st, "keep-1", "ca-1", "mgmt", 400, -1);
	r.prefilter = t_prefilter;
	t_prefilter_calls = 0;
	j = store_cert_scan(st, NULL, &r, &page, NULL);
	CHECK_STR(t_join(j, "id"), "keep-1");
	CHECK(t_prefilter_calls == 8);
	json_decref(j);
	r.prefilter = NULL;

	/* tokens that are not positions of the range */
	memset(&r, 0, sizeof(r));
	r.index = STORE_CERT_BY_NOT_AFTER;
	CHECK(store_cert_token_valid(&r, "0000000000000064:c-a"));
	CHECK(!store_cert_token_valid(&r, "c-a"));
	CHECK(!store_cert_token_valid(&r, "64:c-a"));
	CHECK(!store_cert_token_valid(&r, "000000000000006g:c-a"));
	CHECK(!store_cert_token_valid(&r, "000000000000006A:c-a"));
	CHECK(!store_cert_token_valid(&r, "0000000000000064:"));
	page.after = "c-a";
	page.filter = NULL;
	CHECK(store_cert_scan(st, NULL, &r, &page, NULL) == NULL);
	r.index = STORE_CERT_BY_CA;
	r.lo = r.hi = "ca-1";
	r.lo_len = r.hi_len = 4;
	r.hi_inclusive = true;
	CHECK(store_cert_token_valid(&r, "c-a"));
	r.index = STORE_CERT_BY__MAX;
	CHECK(!store_cert_token_valid(&r, "c-a"));
	CHECK(store_cert_scan(st, NULL, &r, NULL, NULL) == NULL);

	/* inside a caller's transaction, writes are seen */
	memset(&r, 0, sizeof(r));
	r.index = STORE_CERT_BY_ORIGIN;
	r.lo = r.hi = "est";
	r.lo_len = r.hi_len = 3;
	r.hi_inclusive = true;
	txn = store_txn_begin(st);
	j = t_cert_full("c-h", "ca-1", "est", 10, -1);
	CHECK(store_cert_put(txn, "c-h", j) == 0);
	json_decref(j);
	j = store_cert_scan(st, txn, &r, NULL, NULL);
	CHECK_STR(t_join(j, "id"), "c-b,c-h");
	json_decref(j);
	store_txn_abort(txn);
	CHECK_STR(t_scan(st, &r, NULL, 10, NULL), "c-b");

	CHECK(store_check(st) == 0);
	/* store_check refuses an indexed field of the wrong type */
	txn = store_txn_begin(st);
	j = t_cert_full("c-x", "ca-1", "mgmt", -1, -1);
	json_object_set_new(j, "not_after_epoch", json_string("soon"));
	CHECK(store_cert_put(txn, "c-x", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_check(st) == -1);
	txn = store_txn_begin(st);
	CHECK(store_cert_del(txn, "c-x") == 0);
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_check(st) == 0);
	store_close(st);

	/* bulk-load mode opens the same store; unknown flags are refused */
	CHECK(store_open_flags(dir, 0x80) == NULL);
	st = store_open_flags(dir, STORE_F_NOSYNC);
	CHECK(st != NULL);
	t_put_full(st, "c-z", "ca-9", "est", 1, 1);
	store_close(st);
	st = store_open(dir);
	CHECK(st != NULL);
	j = store_cert_get(st, NULL, "c-z");
	CHECK(j != NULL);
	json_decref(j);
	CHECK(store_check(st) == 0);
	store_close(st);
}

/* An index file that is removed, or whose build was interrupted (the
 * meta marker is left, with stale entries in the file), is rebuilt from
 * the table at the next open. */
static void
test_index_rebuild(void)
{
	char dir[T_PATH_MAX], envdir[T_PATH_MAX + 8], id[32];
	struct store *st = t_open("rebuild", dir, sizeof(dir));
	struct store_range r = { .index = STORE_CERT_BY_ORIGIN, .lo = "est",
	    .lo_len = 3, .hi = "est", .hi_len = 3, .hi_inclusive = true };
	struct store_txn *txn;
	DB_ENV *env = NULL;
	DB *db = NULL;
	DBT k, d;
	json_t *j;
	char *v;
	int i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	/* more than one build batch */
	for (i = 0; i < 2500; i += 500) {
		int n;

		txn = store_txn_begin(st);
		for (n = i; n < i + 500; n++) {
			snprintf(id, sizeof(id), "r-%05d", n);
			j = t_cert_full(id, "ca-1", n % 5 == 0 ? "est" : "mgmt",
			    n, -1);
			CHECK(store_cert_put(txn, id, j) == 0);
			json_decref(j);
		}
		CHECK(store_txn_commit(txn) == 0);
	}
	store_close(st);

	snprintf(envdir, sizeof(envdir), "%s/db", dir);
	CHECK(db_env_create(&env, 0) == 0);
	CHECK(env->open(env, envdir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK |
	    DB_INIT_LOG | DB_INIT_MPOOL | DB_RECOVER, 0600) == 0);
	CHECK(env->dbremove(env, NULL, "certificate-not-after.db", NULL,
	    DB_AUTO_COMMIT) == 0);
	/* an interrupted build of the origin index: marker + junk */
	CHECK(db_create(&db, env, 0) == 0);
	CHECK(db->open(db, NULL, "meta.db", NULL, DB_BTREE, DB_AUTO_COMMIT,
	    0) == 0);
	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	k.data = "index_build:certificate-origin.db";
	k.size = (u_int32_t)strlen(k.data);
	d.data = "1";
	d.size = 1;
	CHECK(db->put(db, NULL, &k, &d, DB_AUTO_COMMIT) == 0);
	CHECK(db->close(db, 0) == 0);
	CHECK(db_create(&db, env, 0) == 0);
	CHECK(db->set_flags(db, DB_DUP | DB_DUPSORT) == 0);
	CHECK(db->open(db, NULL, "certificate-origin.db", NULL, DB_BTREE,
	    DB_AUTO_COMMIT, 0) == 0);
	k.data = "est";
	k.size = 3;
	d.data = "r-gone";
	d.size = 6;
	CHECK(db->put(db, NULL, &k, &d, DB_AUTO_COMMIT) == 0);
	CHECK(db->close(db, 0) == 0);
	CHECK(env->txn_checkpoint(env, 0, 0, 0) == 0);
	CHECK(env->close(env, 0) == 0);

	st = store_open(dir);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	v = store_meta_get(st, NULL, "index_build:certificate-origin.db");
	CHECK(v == NULL);	/* the build finished */
	free(v);
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_ORIGIN, "est",
	    3) == 500);
	CHECK_STR(t_scan(st, &r, NULL, 3, NULL), "r-00000,r-00005,r-00010");
	r.index = STORE_CERT_BY_NOT_AFTER;
	r.lo = r.hi = NULL;
	r.hi_inclusive = false;
	CHECK_STR(t_scan(st, &r, "00000000000009c3:r-02499", 3, NULL), "");
	CHECK_STR(t_scan(st, &r, "00000000000009c2:r-02498", 3, NULL),
	    "r-02499");
	CHECK(store_check(st) == 0);
	store_close(st);
	t_verify_files(dir);
}

/* The audit trail by object, after a seq, filtered. */
static bool
t_filter_action(const json_t *rec, void *arg)
{
	const char *a = json_string_value(json_object_get(rec, "action"));

	return a != NULL && strcmp(a, arg) == 0;
}

static void
test_audit_scan(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("audit_scan", dir, sizeof(dir));
	struct store_txn *txn;
	uint64_t next = 99;
	json_t *j, *rec;
	int i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	for (i = 1; i <= 12; i++) {
		txn = store_txn_begin(st);
		rec = json_pack("{s:s, s:s, s:i}", "object",
		    i % 3 == 0 ? "cert-a" : "cert-b", "action",
		    i % 2 == 0 ? "certificate.renew" : "certificate.create",
		    "i", i);
		CHECK(store_audit_append(txn, rec, NULL) == 0);
		json_decref(rec);
		CHECK(store_txn_commit(txn) == 0);
	}
	j = store_audit_scan(st, NULL, 0, NULL, 5, NULL, NULL, &next);
	CHECK_STR(t_join(j, "seq"), "1,2,3,4,5");
	CHECK(next == 5);
	json_decref(j);
	j = store_audit_scan(st, NULL, 10, NULL, 5, NULL, NULL, &next);
	CHECK_STR(t_join(j, "seq"), "11,12");
	CHECK(next == 0);
	json_decref(j);
	j = store_audit_scan(st, NULL, 0, "cert-a", 2, NULL, NULL, &next);
	CHECK_STR(t_join(j, "seq"), "3,6");
	CHECK(next == 6);
	json_decref(j);
	j = store_audit_scan(st, NULL, 6, "cert-a", 2, NULL, NULL, &next);
	CHECK_STR(t_join(j, "seq"), "9,12");
	CHECK(next == 0);
	json_decref(j);
	j = store_audit_scan(st, NULL, 4, "cert-a", 10, NULL, NULL, &next);
	CHECK_STR(t_join(j, "seq"), "6,9,12");
	json_decref(j);
	j = store_audit_scan(st, NULL, 0, "cert-a", 10, t_filter_action,
	    "certificate.renew", &next);
	CHECK_STR(t_join(j, "seq"), "6,12");
	json_decref(j);
	j = store_audit_scan(st, NULL, 0, NULL, 3, t_filter_action,
	    "certificate.renew", &next);
	CHECK_STR(t_join(j, "seq"), "2,4,6");
	CHECK(next == 6);
	json_decref(j);
	j = store_audit_scan(st, NULL, 0, "cert-none", 10, NULL, NULL, &next);
	CHECK(j != NULL && json_array_size(j) == 0 && next == 0);
	json_decref(j);
	CHECK(store_check(st) == 0);
	store_close(st);
}

/* ---- ACME tables ---------------------------------------------------------- */

static json_t *
t_account(const char *id, const char *thumbprint, const char *status)
{
	json_t *j = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:[s]}", "id", id,
	    "status", status, "jwk", "kty", "EC", "crv", "P-256", "x", id,
	    "contact", "mailto:ops@example.com");

	if (thumbprint != NULL)
		json_object_set_new(j, "thumbprint", json_string(thumbprint));
	return j;
}

static void
test_acme_account(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("acme_account", dir, sizeof(dir));
	struct store_txn *txn;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	j = t_account("acct-1", "tp-one", "valid");
	CHECK(store_acme_account_put(txn, "acct-1", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	j = store_acme_account_get(st, NULL, "acct-1");
	CHECK_STR(json_string_value(json_object_get(j, "status")), "valid");
	CHECK_STR(json_string_value(json_object_get(json_object_get(j, "jwk"),
	    "crv")), "P-256");
	json_decref(j);
	j = store_acme_account_by_thumbprint(st, NULL, "tp-one");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "acct-1");
	json_decref(j);
	CHECK(store_acme_account_by_thumbprint(st, NULL, "tp-two") == NULL);
	CHECK(store_acme_account_by_thumbprint(st, NULL, "") == NULL);
	CHECK(store_acme_account_by_thumbprint(st, NULL, NULL) == NULL);
	CHECK(store_acme_account_get(st, NULL, "acct-2") == NULL);

	/* A second account with the same key is refused, and the txn keeps
	 * nothing of what came before it. */
	txn = store_txn_begin(st);
	j = t_account("acct-3", "tp-three", "valid");
	CHECK(store_acme_account_put(txn, "acct-3", j) == 0);
	json_decref(j);
	j = t_account("acct-2", "tp-one", "valid");
	CHECK(store_acme_account_put(txn, "acct-2", j) == -1);
	json_decref(j);
	CHECK(store_txn_failed(txn));
	CHECK(store_txn_commit(txn) == -1);
	CHECK(store_acme_account_get(st, NULL, "acct-2") == NULL);
	CHECK(store_acme_account_get(st, NULL, "acct-3") == NULL);
	CHECK(store_acme_account_by_thumbprint(st, NULL, "tp-three") == NULL);

	/* Rewriting an account under its own key is fine; a key change
	 * frees the old thumbprint for another account. */
	txn = store_txn_begin(st);
	j = t_account("acct-1", "tp-one", "valid");
	json_object_set_new(j, "orders_seq", json_integer(3));
	CHECK(store_acme_account_put(txn, "acct-1", j) == 0);
	json_decref(j);
	j = t_account("acct-1", "tp-rolled", "valid");
	CHECK(store_acme_account_put(txn, "acct-1", j) == 0);
	json_decref(j);
	j = t_account("acct-2", "tp-one", "valid");
	CHECK(store_acme_account_put(txn, "acct-2", j) == 0);
	json_decref(j);
	/* No thumbprint: stored, not indexed. */
	j = t_account("acct-4", NULL, "deactivated");
	CHECK(store_acme_account_put(txn, "acct-4", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	j = store_acme_account_by_thumbprint(st, NULL, "tp-one");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "acct-2");
	json_decref(j);
	j = store_acme_account_by_thumbprint(st, NULL, "tp-rolled");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "acct-1");
	json_decref(j);
	j = store_acme_account_get(st, NULL, "acct-4");
	CHECK_STR(json_string_value(json_object_get(j, "status")),
	    "deactivated");
	json_decref(j);

	/* Writes need a txn and a key. */
	j = t_account("acct-5", "tp-five", "valid");
	CHECK(store_acme_account_put(NULL, "acct-5", j) == -1);
	txn = store_txn_begin(st);
	CHECK(store_acme_account_put(txn, "", j) == -1);
	CHECK(store_txn_failed(txn));
	store_txn_abort(txn);
	json_decref(j);

	CHECK(store_check(st) == 0);
	store_close(st);
}

static json_t *
t_order(const char *id, const char *account_id, const char *status)
{
	return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}], s:[]}", "id", id,
	    "account_id", account_id, "status", status, "identifiers", "type",
	    "dns", "value", "www.example.com", "authorizations");
}

static void
test_acme_orders(void)
{
	/* Inserted out of order: pages come back in id order. */
	static const int seq[] = { 7, 2, 11, 0, 5, 9, 1, 13, 3, 8, 12, 4, 10,
	    6 };
	char dir[T_PATH_MAX], id[32], *next = NULL, *token;
	struct store *st = t_open("acme_orders", dir, sizeof(dir));
	struct store_txn *txn;
	json_t *j;
	size_t i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		snprintf(id, sizeof(id), "order-%02d", seq[i]);
		/* Odd orders belong to a second account. */
		j = t_order(id, seq[i] % 2 == 0 ? "acct-a" : "acct-b",
		    "pending");
		CHECK(store_acme_order_put(txn, id, j) == 0);
		json_decref(j);
	}
	/* A neighbour whose account id extends ours must not leak in. */
	j = t_order("order-00x", "acct-aa", "pending");
	CHECK(store_acme_order_put(txn, "order-00x", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	j = store_acme_orders_by_account(st, NULL, "acct-a", NULL, 3, &next);
	CHECK_STR(t_join(j, "id"), "order-00,order-02,order-04");
	CHECK_STR(next, "order-04");
	json_decref(j);
	token = next;
	j = store_acme_orders_by_account(st, NULL, "acct-a", token, 3, &next);
	CHECK_STR(t_join(j, "id"), "order-06,order-08,order-10");
	CHECK_STR(next, "order-10");
	free(token);
	json_decref(j);
	token = next;
	/* The last page exactly fills the limit: no further token. */
	j = store_acme_orders_by_account(st, NULL, "acct-a", token, 1, &next);
	CHECK_STR(t_join(j, "id"), "order-12");
	CHECK(next == NULL);
	free(token);
	json_decref(j);
	j = store_acme_orders_by_account(st, NULL, "acct-a", "order-12", 3,
	    &next);
	CHECK(j != NULL && json_array_size(j) == 0);
	CHECK(next == NULL);
	json_decref(j);
	/* A token that is no order id starts after it. */
	j = store_acme_orders_by_account(st, NULL, "acct-b", "order-06", 100,
	    &next);
	CHECK_STR(t_join(j, "id"), "order-07,order-09,order-11,order-13");
	CHECK(next == NULL);
	json_decref(j);
	j = store_acme_orders_by_account(st, NULL, "acct-b", "", 0, NULL);
	CHECK_STR(t_join(j, "id"), "order-01");
	json_decref(j);
	j = store_acme_orders_by_account(st, NULL, "acct-aa", NULL, 10, &next);
	CHECK_STR(t_join(j, "id"), "order-00x");
	CHECK(next == NULL);
	json_decref(j);
	j = store_acme_orders_by_account(st, NULL, "acct-none", NULL, 10,
	    &next);
	CHECK(j != NULL && json_array_size(j) == 0);
	CHECK(next == NULL);
	json_decref(j);

	/* Status updates rewrite the record and keep the index exact. */
	txn = store_txn_begin(st);
	j = t_order("order-04", "acct-a", "valid");
	json_object_set_new(j, "certificate_serial", json_string("0A1B"));
	CHECK(store_acme_order_put(txn, "order-04", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	j = store_acme_order_get(st, NULL, "order-04");
	CHECK_STR(json_string_value(json_object_get(j, "status")), "valid");
	CHECK_STR(json_string_value(json_object_get(j,
	    "certificate_serial")), "0A1B");
	json_decref(j);
	j = store_acme_orders_by_account(st, NULL, "acct-a", NULL, 100, NULL);
	CHECK_STR(t_join(j, "status"), "pending,pending,valid,pending,"
	    "pending,pending,pending");
	json_decref(j);
	/* The serial index finds the order holding a certificate, follows
	 * rewrites and ignores orders without one. */
	j = store_acme_order_by_serial(st, NULL, "0A1B");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "order-04");
	json_decref(j);
	CHECK(store_acme_order_by_serial(st, NULL, "0a1b") == NULL);
	CHECK(store_acme_order_by_serial(st, NULL, "0A1") == NULL);
	CHECK(store_acme_order_by_serial(st, NULL, "") == NULL);
	CHECK(store_acme_order_by_serial(st, NULL, NULL) == NULL);
	txn = store_txn_begin(st);
	j = t_order("order-07", "acct-b", "valid");
	json_object_set_new(j, "certificate_serial", json_string("FF01"));
	CHECK(store_acme_order_put(txn, "order-07", j) == 0);
	json_decref(j);
	j = t_order("order-04", "acct-a", "valid");
	json_object_set_new(j, "certificate_serial", json_string("0A1C"));
	CHECK(store_acme_order_put(txn, "order-04", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_acme_order_by_serial(st, NULL, "0A1B") == NULL);
	j = store_acme_order_by_serial(st, NULL, "0A1C");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "order-04");
	json_decref(j);
	j = store_acme_order_by_serial(st, NULL, "FF01");
	CHECK_STR(json_string_value(json_object_get(j, "account_id")),
	    "acct-b");
	json_decref(j);
	CHECK(store_acme_order_get(st, NULL, "order-99") == NULL);
	CHECK(store_check(st) == 0);
	store_close(st);
}

static json_t *
t_authz(const char *id, const char *account_id, const char *type,
    const char *value, const char *status)
{
	return json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:b, s:[{s:s, s:s, "
	    "s:s}]}", "id", id, "account_id", account_id, "status", status,
	    "identifier", "type", type, "value", value, "wildcard", 0,
	    "challenges", "type", "http-01", "token", "tok", "status", status);
}

static void
test_acme_authz(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("acme_authz", dir, sizeof(dir));
	struct store_txn *txn;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	j = t_authz("authz-3", "acct-a", "dns", "a.example", "pending");
	CHECK(store_acme_authz_put(txn, "authz-3", j) == 0);
	json_decref(j);
	j = t_authz("authz-1", "acct-a", "dns", "b.example", "pending");
	CHECK(store_acme_authz_put(txn, "authz-1", j) == 0);
	json_decref(j);
	/* Same value, other account / other type / longer name. */
	j = t_authz("authz-2", "acct-b", "dns", "a.example", "valid");
	CHECK(store_acme_authz_put(txn, "authz-2", j) == 0);
	json_decref(j);
	j = t_authz("authz-4", "acct-a", "ip", "a.example", "pending");
	CHECK(store_acme_authz_put(txn, "authz-4", j) == 0);
	json_decref(j);
	j = t_authz("authz-5", "acct-a", "dns", "a.example.net", "valid");
	CHECK(store_acme_authz_put(txn, "authz-5", j) == 0);
	json_decref(j);
	/* Without an identifier: stored, not indexed. */
	j = json_pack("{s:s, s:s}", "id", "authz-6", "account_id", "acct-a");
	CHECK(store_acme_authz_put(txn, "authz-6", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	j = store_acme_authz_by_account_ident(st, NULL, "acct-a", "dns",
	    "a.example");
	CHECK_STR(t_join(j, "id"), "authz-3");
	json_decref(j);
	j = store_acme_authz_by_account_ident(st, NULL, "acct-b", "dns",
	    "a.example");
	CHECK_STR(t_join(j, "id"), "authz-2");
	json_decref(j);
	j = store_acme_authz_by_account_ident(st, NULL, "acct-a", "ip",
	    "a.example");
	CHECK_STR(t_join(j, "id"), "authz-4");
	json_decref(j);
	j = store_acme_authz_by_account_ident(st, NULL, "acct-c", "dns",
	    "a.example");
	CHECK(j != NULL && json_array_size(j) == 0);
	json_decref(j);
	j = store_acme_authz_by_account_ident(st, NULL, "acct-a", "dns", "");
	CHECK(j != NULL && json_array_size(j) == 0);
	json_decref(j);

	/* The pending authorisation turns valid and a second one for the
	 * same name appears: both come back, in id order, with their
	 * current status. */
	txn = store_txn_begin(st);
	j = t_authz("authz-3", "acct-a", "dns", "a.example", "valid");
	CHECK(store_acme_authz_put(txn, "authz-3", j) == 0);
	json_decref(j);
	j = t_authz("authz-0", "acct-a", "dns", "a.example", "pending");
	CHECK(store_acme_authz_put(txn, "authz-0", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	j = store_acme_authz_by_account_ident(st, NULL, "acct-a", "dns",
	    "a.example");
	CHECK_STR(t_join(j, "id"), "authz-0,authz-3");
	CHECK_STR(t_join(j, "status"), "pending,valid");
	json_decref(j);
	j = store_acme_authz_get(st, NULL, "authz-3");
	CHECK_STR(json_string_value(json_object_get(json_array_get(
	    json_object_get(j, "challenges"), 0), "status")), "valid");
	json_decref(j);

	/* Inside a txn, the lookup sees the txn's own writes. */
	txn = store_txn_begin(st);
	j = t_authz("authz-7", "acct-a", "dns", "a.example", "pending");
	CHECK(store_acme_authz_put(txn, "authz-7", j) == 0);
	json_decref(j);
	j = store_acme_authz_by_account_ident(st, txn, "acct-a", "dns",
	    "a.example");
	CHECK_STR(t_join(j, "id"), "authz-0,authz-3,authz-7");
	json_decref(j);
	store_txn_abort(txn);
	j = store_acme_authz_by_account_ident(st, NULL, "acct-a", "dns",
	    "a.example");
	CHECK_STR(t_join(j, "id"), "authz-0,authz-3");
	json_decref(j);
	CHECK(store_check(st) == 0);
	store_close(st);
}

static void
test_eab(void)
{
	char dir[T_PATH_MAX], kid[32], *next = NULL;
	struct store *st = t_open("eab", dir, sizeof(dir));
	struct store_page page = { .limit = 2 };
	struct store_txn *txn;
	json_t *j;
	int i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	for (i = 3; i >= 1; i--) {
		snprintf(kid, sizeof(kid), "eab-%d", i);
		j = json_pack("{s:s, s:s, s:s, s:b, s:n, s:s, s:n, s:s}", "kid",
		    kid, "hmac_key", "c2VjcmV0", "alg", "HS256", "one_time", 1,
		    "used_by", "created_at", "2025-01-01T00:00:00Z",
		    "expires_at", "note", "test");
		CHECK(store_eab_put(txn, kid, j) == 0);
		json_decref(j);
	}
	CHECK(store_txn_commit(txn) == 0);

	j = store_eab_get(st, NULL, "eab-2");
	CHECK_STR(json_string_value(json_object_get(j, "alg")), "HS256");
	CHECK(json_is_null(json_object_get(j, "used_by")));
	json_decref(j);
	CHECK(store_eab_get(st, NULL, "eab-9") == NULL);

	j = store_eab_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "kid"), "eab-1,eab-2");
	CHECK_STR(next, "eab-2");
	json_decref(j);
	page.after = next;
	j = store_eab_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "kid"), "eab-3");
	CHECK(next == NULL);
	free((char *)page.after);
	json_decref(j);

	/* Mark one used, delete another. */
	txn = store_txn_begin(st);
	j = store_eab_get(st, txn, "eab-1");
	json_object_set_new(j, "used_by", json_string("acct-1"));
	CHECK(store_eab_put(txn, "eab-1", j) == 0);
	json_decref(j);
	CHECK(store_eab_del(txn, "eab-2") == 0);
	CHECK(store_eab_del(txn, "eab-absent") == 0);
	CHECK(store_txn_commit(txn) == 0);
	j = store_eab_get(st, NULL, "eab-1");
	CHECK_STR(json_string_value(json_object_get(j, "used_by")), "acct-1");
	json_decref(j);
	CHECK(store_eab_get(st, NULL, "eab-2") == NULL);
	j = store_eab_list(st, NULL, NULL, NULL);
	CHECK_STR(t_join(j, "kid"), "eab-1,eab-3");
	json_decref(j);
	CHECK(store_eab_del(NULL, "eab-1") == -1);
	CHECK(store_check(st) == 0);
	store_close(st);
}

static json_t *
t_est_client(const char *username, const char *label)
{
	json_t *j = json_pack("{s:s, s:s, s:[], s:s, s:s}", "username",
	    username, "password_hash", "pbkdf2-sha256$1000$x$y", "labels",
	    "created_at", "2025-01-01T00:00:00Z", "created_by", "admin");

	if (label != NULL)
		json_array_append_new(json_object_get(j, "labels"),
		    json_string(label));
	return j;
}

static void
test_est_client(void)
{
	char dir[T_PATH_MAX], *next = NULL;
	struct store *st = t_open("est_client", dir, sizeof(dir));
	struct store_page page = { .limit = 2 };
	static const char *users[] = { "dev-3", "alice@example.com",
	    "dev-1", "dev-2" };
	struct store_txn *txn;
	json_t *j;
	size_t i;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	for (i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		j = t_est_client(users[i], i == 0 ? "iot" : NULL);
		CHECK(store_est_client_put(txn, users[i], j) == 0);
		json_decref(j);
	}
	CHECK(store_txn_commit(txn) == 0);

	j = store_est_client_get(st, NULL, "dev-3");
	CHECK_STR(json_string_value(json_array_get(json_object_get(j,
	    "labels"), 0)), "iot");
	CHECK_STR(json_string_value(json_object_get(j, "password_hash")),
	    "pbkdf2-sha256$1000$x$y");
	json_decref(j);
	CHECK(store_est_client_get(st, NULL, "nobody") == NULL);
	CHECK(store_est_client_get(st, NULL, "") == NULL);

	/* Ordered by username, paged. */
	j = store_est_client_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "username"), "alice@example.com,dev-1");
	CHECK_STR(next, "dev-1");
	json_decref(j);
	page.after = next;
	j = store_est_client_list(st, NULL, &page, &next);
	CHECK_STR(t_join(j, "username"), "dev-2,dev-3");
	CHECK(next == NULL);
	free((char *)page.after);
	json_decref(j);

	txn = store_txn_begin(st);
	CHECK(store_est_client_del(txn, "dev-2") == 0);
	CHECK(store_est_client_del(txn, "absent") == 0);
	CHECK(store_txn_commit(txn) == 0);
	j = store_est_client_list(st, NULL, NULL, NULL);
	CHECK_STR(t_join(j, "username"), "alice@example.com,dev-1,dev-3");
	json_decref(j);
	CHECK(store_est_client_put(NULL, "x", NULL) == -1);
	CHECK(store_est_client_del(NULL, "dev-1") == -1);
	txn = store_txn_begin(st);
	j = t_est_client("", NULL);
	CHECK(store_est_client_put(txn, "", j) == -1);
	json_decref(j);
	CHECK(store_txn_failed(txn));
	store_txn_abort(txn);
	CHECK(store_check(st) == 0);

	/* A record filed under another username fails the check. */
	txn = store_txn_begin(st);
	j = t_est_client("mallory", NULL);
	CHECK(store_est_client_put(txn, "dev-1", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_check(st) == -1);
	store_close(st);
}

/* 64 lower-case hex digits built from one character. */
static const char *
t_req_id(char c)
{
	static char id[65];

	memset(id, c, 64);
	id[64] = '\0';
	return id;
}

static json_t *
t_est_request(const char *id, const char *status)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:s, s:s, s:s}",
	    "id", id, "label", "", "status", status, "csr", "MIIB", "subject",
	    "CN=dev", "sans", "dev.example", "requested_by", "est:dev-1",
	    "operation", "simpleenroll", "created_at",
	    "2025-01-01T00:00:00Z");
}

static bool
t_status_is(const json_t *rec, void *arg)
{
	return strcmp(json_string_value(json_object_get(rec, "status")),
	    (const char *)arg) == 0;
}

static void
test_est_request(void)
{
	char dir[T_PATH_MAX], *next = NULL, bad[80];
	struct store *st = t_open("est_request", dir, sizeof(dir));
	struct store_page page = { .limit = 2 };
	struct store_txn *txn;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	j = t_est_request(t_req_id('c'), "pending");
	CHECK(store_est_request_put(txn, t_req_id('c'), j) == 0);
	json_decref(j);
	j = t_est_request(t_req_id('a'), "pending");
	CHECK(store_est_request_put(txn, t_req_id('a'), j) == 0);
	json_decref(j);
	j = t_est_request(t_req_id('b'), "rejected");
	CHECK(store_est_request_put(txn, t_req_id('b'), j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);

	j = store_est_request_get(st, NULL, t_req_id('b'));
	CHECK_STR(json_string_value(json_object_get(j, "status")),
	    "rejected");
	json_decref(j);
	CHECK(store_est_request_get(st, NULL, t_req_id('d')) == NULL);

	j = store_est_request_list(st, NULL, &page, &next);
	CHECK(json_array_size(j) == 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0),
	    "id")), t_req_id('a'));
	CHECK(next != NULL);
	json_decref(j);
	page.after = next;
	j = store_est_request_list(st, NULL, &page, &next);
	CHECK(json_array_size(j) == 1);
	CHECK(next == NULL);
	free((char *)page.after);
	json_decref(j);

	/* Filtered by status, as the management API lists pending ones. */
	page.after = NULL;
	page.limit = 10;
	page.filter = t_status_is;
	page.arg = "pending";
	j = store_est_request_list(st, NULL, &page, NULL);
	CHECK(json_array_size(j) == 2);
	json_decref(j);

	/* Decide one: the put replaces the record. */
	txn = store_txn_begin(st);
	j = store_est_request_get(st, txn, t_req_id('a'));
	json_object_set_new(j, "status", json_string("approved"));
	json_object_set_new(j, "decided_by", json_string("admin"));
	CHECK(store_est_request_put(txn, t_req_id('a'), j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	j = store_est_request_list(st, NULL, &page, NULL);
	CHECK(json_array_size(j) == 1);
	json_decref(j);
	CHECK(store_check(st) == 0);

	/* Keys that are not a lower-case hex SHA-256 are refused. */
	snprintf(bad, sizeof(bad), "%s", t_req_id('A'));
	txn = store_txn_begin(st);
	j = t_est_request(bad, "pending");
	CHECK(store_est_request_put(txn, bad, j) == -1);
	CHECK(store_txn_failed(txn));
	store_txn_abort(txn);
	bad[63] = '\0';
	txn = store_txn_begin(st);
	CHECK(store_est_request_put(txn, bad, j) == -1);
	store_txn_abort(txn);
	snprintf(bad, sizeof(bad), "%sa", t_req_id('0'));
	txn = store_txn_begin(st);
	CHECK(store_est_request_put(txn, bad, j) == -1);
	store_txn_abort(txn);
	json_decref(j);
	CHECK(store_est_request_get(st, NULL, "g") == NULL);

	/* A record whose "id" differs from its key fails the check. */
	txn = store_txn_begin(st);
	j = t_est_request(t_req_id('e'), "pending");
	CHECK(store_est_request_put(txn, t_req_id('f'), j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_check(st) == -1);
	store_close(st);
}

/* A data directory written before the ACME tables existed (built here
 * with plain BDB: meta with the schema version, one certificate) opens,
 * gains the new tables and indexes, and checks clean. */
static void
test_old_layout(void)
{
	char dir[T_PATH_MAX], envdir[T_PATH_MAX + 8];
	const char *cert = "{\"ca_id\":\"ca-1\",\"id\":\"old\",\"name\":"
	    "\"old\",\"not_after_epoch\":1000,\"origin\":\"est\"}";
	struct store_range r = { .index = STORE_CERT_BY_NOT_AFTER };
	struct store *st;
	struct store_txn *txn;
	DB_ENV *env = NULL;
	DB *db = NULL;
	DBT k, d;
	json_t *j;

	snprintf(dir, sizeof(dir), "%s/old_layout", test_tmpdir());
	snprintf(envdir, sizeof(envdir), "%s/db", dir);
	CHECK(common_mkdirs(envdir, 0700) == 0);
	CHECK(db_env_create(&env, 0) == 0);
	CHECK(env->open(env, envdir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK |
	    DB_INIT_LOG | DB_INIT_MPOOL | DB_RECOVER, 0600) == 0);
	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	CHECK(db_create(&db, env, 0) == 0);
	CHECK(db->open(db, NULL, "meta.db", NULL, DB_BTREE,
	    DB_AUTO_COMMIT | DB_CREATE, 0600) == 0);
	k.data = "schema_version";
	k.size = (u_int32_t)strlen(k.data);
	d.data = STORE_SCHEMA_VERSION;
	d.size = (u_int32_t)strlen(d.data);
	CHECK(db->put(db, NULL, &k, &d, DB_AUTO_COMMIT) == 0);
	CHECK(db->close(db, 0) == 0);
	CHECK(db_create(&db, env, 0) == 0);
	CHECK(db->open(db, NULL, "certificate.db", NULL, DB_BTREE,
	    DB_AUTO_COMMIT | DB_CREATE, 0600) == 0);
	k.data = "old";
	k.size = 3;
	d.data = (void *)(uintptr_t)cert;
	d.size = (u_int32_t)strlen(cert);
	CHECK(db->put(db, NULL, &k, &d, DB_AUTO_COMMIT) == 0);
	CHECK(db->close(db, 0) == 0);
	CHECK(env->txn_checkpoint(env, 0, 0, 0) == 0);
	CHECK(env->close(env, 0) == 0);

	st = store_open(dir);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	j = store_cert_by_name(st, NULL, "old");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "old");
	json_decref(j);
	/* the indexes added since were built from the table */
	j = store_cert_scan(st, NULL, &r, NULL, NULL);
	CHECK_STR(t_join(j, "id"), "old");
	json_decref(j);
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_ORIGIN, "est",
	    3) == 1);
	txn = store_txn_begin(st);
	j = t_account("acct-1", "tp-one", "valid");
	CHECK(store_acme_account_put(txn, "acct-1", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	j = store_acme_account_by_thumbprint(st, NULL, "tp-one");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "acct-1");
	json_decref(j);
	CHECK(store_check(st) == 0);
	store_close(st);
	t_verify_files(dir);
}

/* ---- revocation index ---------------------------------------------------- */

#define T_WALK_MAX		4096

/* What t_walk_one collects: "serial:reason:revoked_at:not_after:ver"
 * per entry, '-' for a time the index says is absent. */
struct t_walk {
	char	 buf[T_WALK_MAX];
	size_t	 off;
	int	 stop_after;	/* stop the walk after this many (0: never) */
	int	 seen;
};

static int
t_walk_one(const struct store_revoked *e, void *arg)
{
	struct t_walk *w = arg;
	char at[24], na[24];

	if (e->has_revoked_at)
		snprintf(at, sizeof(at), "%lld", (long long)e->revoked_at);
	else
		snprintf(at, sizeof(at), "-");
	if (e->has_not_after)
		snprintf(na, sizeof(na), "%lld", (long long)e->not_after);
	else
		snprintf(na, sizeof(na), "-");
	if (w->off < sizeof(w->buf))
		w->off += (size_t)snprintf(w->buf + w->off,
		    sizeof(w->buf) - w->off, "%s%s:%s:%s:%s:%u",
		    w->seen > 0 ? "," : "", e->serial, e->reason, at, na,
		    (unsigned)e->ca_version);
	w->seen++;
	return w->stop_after > 0 && w->seen >= w->stop_after ? -1 : 0;
}

/* The walk of ca_id's revocation index in a txn of its own, joined
 * (static buffer; "<fail>" when the walk failed). */
static const char *
t_walk(struct store *st, const char *ca_id)
{
	static struct t_walk w;
	struct store_txn *txn = store_txn_begin(st);
	int rc;

	memset(&w, 0, sizeof(w));
	rc = store_revoked_walk(txn, ca_id, t_walk_one, &w);
	store_txn_abort(txn);
	return rc == 0 ? w.buf : "<fail>";
}

/* A revoked `issued` record with the fields a CRL reads. */
static json_t *
t_revoked(const char *serial, const char *ca_id, json_int_t not_after,
    json_int_t revoked_at, const char *reason, json_int_t ca_version)
{
	json_t *j = t_issued(serial, ca_id, "revoked", not_after);

	json_object_set_new(j, "revoked_at", json_integer(revoked_at));
	if (reason != NULL)
		json_object_set_new(j, "reason", json_string(reason));
	if (ca_version != T_ABSENT)
		json_object_set_new(j, "ca_version",
		    json_integer(ca_version));
	json_object_set_new(j, "der", json_string("MIIB...not-read"));
	return j;
}

static void
t_issued_put(struct store *st, const char *serial, json_t *j)
{
	struct store_txn *txn = store_txn_begin(st);

	CHECK(store_issued_put(txn, serial, j) == 0);
	CHECK(store_txn_commit(txn) == 0);
	json_decref(j);
}

/* The revocation index: only revoked records, per CA, in serial order,
 * with the fields a CRL entry needs; it follows every change of the
 * record (revocation, new reason, un-revocation, another CA). */
static void
test_revoked_walk(void)
{
	char dir[T_PATH_MAX], longreason[80];
	struct store *st = t_open("revoked", dir, sizeof(dir));
	struct store_txn *txn;
	struct t_walk w;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK_STR(t_walk(st, "ca-1"), "");
	t_issued_put(st, "0C", t_revoked("0C", "ca-1", 9000, 100,
	    "keyCompromise", 2));
	t_issued_put(st, "0A", t_revoked("0A", "ca-1", 8000, 200, NULL,
	    T_ABSENT));
	t_issued_put(st, "0B", t_issued("0B", "ca-1", "valid", 7000));
	/* another CA whose id extends ca-1's: not in ca-1's walk */
	t_issued_put(st, "01", t_revoked("01", "ca-10", 6000, 300,
	    "superseded", 1));
	t_issued_put(st, "02", t_revoked("02", "ca-", 6000, 300,
	    "superseded", 1));
	memset(longreason, 'x', sizeof(longreason) - 1);
	longreason[sizeof(longreason) - 1] = '\0';
	t_issued_put(st, "0D", t_revoked("0D", "ca-1", -5, -7, longreason,
	    5000000000LL));
	CHECK_STR(t_walk(st, "ca-1"), "0A::200:8000:0,"
	    "0C:keyCompromise:100:9000:2,0D::-7:-5:0");
	CHECK_STR(t_walk(st, "ca-10"), "01:superseded:300:6000:1");
	CHECK_STR(t_walk(st, "ca-"), "02:superseded:300:6000:1");
	CHECK_STR(t_walk(st, "ca-2"), "");
	CHECK_STR(t_walk(st, ""), "");

	/* 0B revoked now; 0C gets another reason and time (the stale key
	 * must go); 0A is valid again; 0D moves to ca-2. */
	j = t_revoked("0B", "ca-1", 7000, 400, "cessationOfOperation", 1);
	t_issued_put(st, "0B", j);
	t_issued_put(st, "0C", t_revoked("0C", "ca-1", 9000, 150,
	    "affiliationChanged", 2));
	t_issued_put(st, "0A", t_issued("0A", "ca-1", "valid", 8000));
	j = t_revoked("0D", "ca-2", 10, 20, "keyCompromise", 1);
	json_object_del(j, "revoked_at");
	t_issued_put(st, "0D", j);
	CHECK_STR(t_walk(st, "ca-1"), "0B:cessationOfOperation:400:7000:1,"
	    "0C:affiliationChanged:150:9000:2");
	CHECK_STR(t_walk(st, "ca-2"), "0D:keyCompromise:-:10:1");

	/* The callback stops the walk: -1, the txn itself still fine. */
	memset(&w, 0, sizeof(w));
	w.stop_after = 1;
	txn = store_txn_begin(st);
	CHECK(store_revoked_walk(txn, "ca-1", t_walk_one, &w) == -1);
	CHECK(w.seen == 1 && !store_txn_failed(txn));
	store_txn_abort(txn);
	CHECK(store_revoked_walk(NULL, "ca-1", t_walk_one, &w) == -1);

	/* A write rolled back leaves the index as it was. */
	txn = store_txn_begin(st);
	j = t_revoked("0E", "ca-1", 7000, 1, NULL, 1);
	CHECK(store_issued_put(txn, "0E", j) == 0);
	json_decref(j);
	store_txn_abort(txn);
	CHECK_STR(t_walk(st, "ca-1"), "0B:cessationOfOperation:400:7000:1,"
	    "0C:affiliationChanged:150:9000:2");
	/* reopened: the same */
	if ((st = t_reopen(st, dir)) == NULL)
		return;
	CHECK_STR(t_walk(st, "ca-2"), "0D:keyCompromise:-:10:1");
	store_close(st);
}

/* The (ca_id, status) index keys end with the serial (format 2, noted
 * in meta), so the records of one CA do not share one key; the lookup
 * is a range of that prefix only. */
static void
test_issued_key_format(void)
{
	char dir[T_PATH_MAX], *v;
	struct store *st = t_open("issued_format", dir, sizeof(dir));
	DB_ENV *env;
	DB *db = NULL;
	DBC *c = NULL;
	DBT k, d;
	int n = 0;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	t_issued_put(st, "0B", t_issued("0B", "ca-1", "valid", 1));
	t_issued_put(st, "0A", t_issued("0A", "ca-1", "valid", 2));
	t_issued_put(st, "0C", t_issued("0C", "ca-1", "valid2", 3));
	t_issued_put(st, "0D", t_issued("0D", "ca-10", "valid", 4));
	t_issued_put(st, "0E", t_issued("0E", "ca-1", "", 5));
	CHECK_STR(t_by_status(st, "ca-1", "valid"), "0A,0B");
	CHECK_STR(t_by_status(st, "ca-1", "valid2"), "0C");
	CHECK_STR(t_by_status(st, "ca-1", ""), "0E");
	CHECK_STR(t_by_status(st, "ca-1", "revoked"), "");
	v = store_meta_get(st, NULL, "index_format:issued-ca-status.db");
	CHECK_STR(v, "2");
	free(v);
	store_close(st);

	/* On disk: one key per record, prefix + serial, no duplicates. */
	env = t_env_open(dir);
	CHECK(db_create(&db, env, 0) == 0);
	CHECK(db->open(db, NULL, "issued-ca-status.db", NULL, DB_BTREE,
	    DB_AUTO_COMMIT, 0) == 0);
	CHECK(db->cursor(db, NULL, &c, 0) == 0);
	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	while (c->get(c, &k, &d, DB_NEXT) == 0) {
		if (n == 0)
			CHECK(k.size == 8 && memcmp(k.data,
			    "ca-1\0\0" "0E", 8) == 0 && d.size == 2 &&
			    memcmp(d.data, "0E", 2) == 0);
		if (n == 1)
			CHECK(k.size == 13 && memcmp(k.data,
			    "ca-1\0valid\0" "0A", 13) == 0);
		n++;
	}
	CHECK(n == 5);
	CHECK(c->close(c) == 0);
	CHECK(db->close(db, 0) == 0);
	CHECK(env->close(env, 0) == 0);
}

/* Writes one key/data pair into file (created with dbflags) of env. */
static void
t_bdb_put(DB_ENV *env, const char *file, u_int32_t dbflags, const void *key,
    size_t klen, const void *data, size_t dlen)
{
	DB *db = NULL;
	DBT k, d;

	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	CHECK(db_create(&db, env, 0) == 0);
	if (dbflags != 0)
		CHECK(db->set_flags(db, dbflags) == 0);
	CHECK(db->open(db, NULL, file, NULL, DB_BTREE,
	    DB_AUTO_COMMIT | DB_CREATE, 0600) == 0);
	k.data = (void *)(uintptr_t)key;
	k.size = (u_int32_t)klen;
	d.data = (void *)(uintptr_t)data;
	d.size = (u_int32_t)dlen;
	CHECK(db->put(db, NULL, &k, &d, DB_AUTO_COMMIT) == 0);
	CHECK(db->close(db, 0) == 0);
}

/* A data directory of schema version 1 (built here with plain BDB as
 * that version wrote it: `issued` records, the (ca_id, status) index
 * keyed without the serial under duplicates, no revocation index)
 * opens: version 2, both indexes built from the table, the revocations
 * listed by the walk a CRL makes. */
static void
test_old_issued_layout(void)
{
	static const char *const recs[][2] = {
		{ "0A", "{\"ca_id\":\"ca-1\",\"not_after\":9000,"
		    "\"reason\":\"keyCompromise\",\"revoked_at\":100,"
		    "\"serial\":\"0A\",\"status\":\"revoked\"}" },
		{ "0B", "{\"ca_id\":\"ca-1\",\"not_after\":9000,"
		    "\"serial\":\"0B\",\"status\":\"valid\"}" },
		{ "0C", "{\"ca_id\":\"ca-1\",\"ca_version\":2,"
		    "\"not_after\":9500,\"reason\":\"superseded\","
		    "\"revoked_at\":200,\"serial\":\"0C\","
		    "\"status\":\"revoked\"}" },
	};
	char dir[T_PATH_MAX], key[32], *v;
	struct store *st;
	DB_ENV *env;
	size_t i, klen;

	snprintf(dir, sizeof(dir), "%s/old_issued", test_tmpdir());
	env = t_env_open(dir);
	t_bdb_put(env, "meta.db", 0, "schema_version", 14, "1", 1);
	for (i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		const char *status = strstr(recs[i][1], "\"revoked\"") !=
		    NULL ? "revoked" : "valid";

		t_bdb_put(env, "issued.db", 0, recs[i][0], 2, recs[i][1],
		    strlen(recs[i][1]));
		klen = (size_t)snprintf(key, sizeof(key), "ca-1%c%s", 0,
		    status);
		t_bdb_put(env, "issued-ca-status.db", DB_DUP | DB_DUPSORT,
		    key, klen, recs[i][0], 2);
	}
	CHECK(env->txn_checkpoint(env, 0, 0, 0) == 0);
	CHECK(env->close(env, 0) == 0);

	st = store_open(dir);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	v = store_meta_get(st, NULL, "schema_version");
	CHECK_STR(v, STORE_SCHEMA_VERSION);
	free(v);
	v = store_meta_get(st, NULL, "index_format:issued-ca-status.db");
	CHECK_STR(v, "2");
	free(v);
	CHECK_STR(t_walk(st, "ca-1"), "0A:keyCompromise:100:9000:0,"
	    "0C:superseded:200:9500:2");
	CHECK_STR(t_by_status(st, "ca-1", "revoked"), "0A,0C");
	CHECK_STR(t_by_status(st, "ca-1", "valid"), "0B");
	/* Opened again: nothing left to build, still consistent. */
	if ((st = t_reopen(st, dir)) == NULL)
		return;
	CHECK_STR(t_walk(st, "ca-1"), "0A:keyCompromise:100:9000:0,"
	    "0C:superseded:200:9500:2");
	CHECK(store_check(st) == 0);
	store_close(st);
	t_verify_files(dir);
}

/* Index callbacks read the record a put hands in instead of parsing
 * it: a put that changes every indexed field, twice in one txn, moves
 * every index entry; an unchanged put, a delete and an audit append
 * keep them exact. */
static void
test_put_indexes_follow(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("parse_once", dir, sizeof(dir));
	struct store_range r = { .index = STORE_CERT_BY_NOT_AFTER };
	struct store_txn *txn;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	t_put_full(st, "p-1", "ca-a", "est", 100, 50);
	t_put_full(st, "p-2", "ca-a", "est", 200, T_ABSENT);
	txn = store_txn_begin(st);
	j = t_cert_full("p-1", "ca-b", "acme", 300, 60);
	json_object_set_new(j, "name", json_string("renamed"));
	CHECK(store_cert_put(txn, "p-1", j) == 0);
	json_decref(j);
	/* the same record again (old == new), then changed once more */
	j = t_cert_full("p-1", "ca-b", "acme", 300, 60);
	json_object_set_new(j, "name", json_string("renamed"));
	CHECK(store_cert_put(txn, "p-1", j) == 0);
	CHECK(store_cert_put(txn, "p-1", j) == 0);
	json_object_set_new(j, "not_after_epoch", json_integer(150));
	CHECK(store_cert_put(txn, "p-1", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_cert_by_name(st, NULL, "p-1") == NULL);
	j = store_cert_by_name(st, NULL, "renamed");
	CHECK_STR(json_string_value(json_object_get(j, "id")), "p-1");
	json_decref(j);
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_CA, "ca-a",
	    4) == 1);
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_CA, "ca-b",
	    4) == 1);
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_ORIGIN, "acme",
	    4) == 1);
	CHECK_STR(t_scan(st, &r, NULL, 10, NULL), "p-1,p-2");
	r.index = STORE_CERT_BY_DUE;
	CHECK_STR(t_scan(st, &r, NULL, 10, NULL), "p-1");
	/* a failed put (the name is taken) changes nothing */
	txn = store_txn_begin(st);
	j = t_cert_full("p-2", "ca-c", "mgmt", 1, 1);
	json_object_set_new(j, "name", json_string("renamed"));
	CHECK(store_cert_put(txn, "p-2", j) == -1);
	json_decref(j);
	store_txn_abort(txn);
	txn = store_txn_begin(st);
	CHECK(store_cert_del(txn, "p-1") == 0);
	j = json_pack("{s:s, s:s}", "action", "test", "object", "p-2");
	CHECK(store_audit_append(txn, j, NULL) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	CHECK(store_cert_count_key(st, NULL, STORE_CERT_BY_CA, "ca-b",
	    4) == 0);
	j = store_audit_scan(st, NULL, 0, "p-2", 10, NULL, NULL, NULL);
	CHECK(j != NULL && json_array_size(j) == 1);
	json_decref(j);
	CHECK(store_check(st) == 0);
	store_close(st);
}

/* ---- transactions -------------------------------------------------------- */

static int
t_put_then(struct store_txn *txn, void *arg)
{
	int ret = *(int *)arg;
	json_t *j;

	j = t_cert("rb-1", "rollback", "ca-rb");
	store_cert_put(txn, "rb-1", j);
	json_decref(j);
	j = t_issued("AB", "ca-rb", "valid", 10);
	store_issued_put(txn, "AB", j);
	json_decref(j);
	j = json_pack("{s:s}", "event", "rb");
	store_audit_append(txn, j, NULL);
	json_decref(j);
	store_meta_put(txn, "rb", "1");
	if (ret == 100) {
		/* An operation fails; the callback still says 0. */
		j = json_pack("{s:s}", "ca_id", "ca-rb");
		store_issued_put(txn, "AC", j);
		json_decref(j);
		return 0;
	}
	return ret;
}

static void
t_check_nothing(struct store *st)
{
	json_t *j;
	char *v;

	CHECK(store_cert_get(st, NULL, "rb-1") == NULL);
	CHECK(store_cert_by_name(st, NULL, "rollback") == NULL);
	CHECK(store_issued_get(st, NULL, "AB") == NULL);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-rb") == 0);
	CHECK_STR(t_by_status(st, "ca-rb", "valid"), "");
	j = store_audit_list(st, NULL, 0, 10);
	CHECK(j != NULL && json_array_size(j) == 0);
	json_decref(j);
	CHECK((v = store_meta_get(st, NULL, "rb")) == NULL);
	free(v);
}

static void
test_rollback(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("rollback", dir, sizeof(dir));
	int ret;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	ret = -1;
	CHECK(store_txn_run(st, t_put_then, &ret) == -1);
	t_check_nothing(st);
	ret = 7;
	CHECK(store_txn_run(st, t_put_then, &ret) == 7);
	t_check_nothing(st);
	ret = 100;
	CHECK(store_txn_run(st, t_put_then, &ret) == -1);
	t_check_nothing(st);
	ret = 0;
	CHECK(store_txn_run(st, t_put_then, &ret) == 0);
	CHECK(store_cert_count_by_ca(st, NULL, "ca-rb") == 1);
	CHECK(store_check(st) == 0);
	store_close(st);
}

struct t_dl {
	struct store		*st;
	bool			 meta_first;	/* meta row, then ca row */
	atomic_int		*calls;
	pthread_barrier_t	*crossed;	/* first try: both hold one */
	int			 tries;
	int			 failures;
};

/* Adds one to the counter in the meta row or in the ca row "ca-cnt":
 * two tables, so two different pages and locks. */
static int
t_incr(struct store_txn *txn, bool meta)
{
	char buf[32], *v = NULL;
	json_t *rec = NULL;
	long n;
	int rc;

	if (meta) {
		v = store_meta_get(NULL, txn, "cnt");
		n = v != NULL ? strtol(v, NULL, 10) : 0;
		free(v);
		snprintf(buf, sizeof(buf), "%ld", n + 1);
		return store_meta_put(txn, "cnt", buf);
	}
	rec = store_ca_get(NULL, txn, "ca-cnt");
	n = rec != NULL ? (long)json_integer_value(json_object_get(rec,
	    "n")) : 0;
	json_decref(rec);
	rec = json_pack("{s:I}", "n", (json_int_t)(n + 1));
	rc = store_ca_put(txn, "ca-cnt", rec);
	json_decref(rec);
	return rc;
}

/* Takes the two locks in this thread's order; on the very first try
 * both threads meet at the barrier holding their first lock, so the
 * second locks cross and one side must deadlock and be rerun. */
static int
t_dl_txn(struct store_txn *txn, void *arg)
{
	struct t_dl *d = arg;

	atomic_fetch_add(d->calls, 1);
	if (t_incr(txn, d->meta_first) == -1)
		return -1;
	if (d->tries++ == 0)
		pthread_barrier_wait(d->crossed);
	return t_incr(txn, !d->meta_first);
}

static void *
t_dl_thread(void *arg)
{
	struct t_dl *d = arg;
	int i;

	for (i = 0; i < T_DEADLOCK_ROUNDS; i++)
		if (store_txn_run(d->st, t_dl_txn, d) != 0)
			d->failures++;
	return NULL;
}

static void
test_deadlock_retry(void)
{
	char dir[T_PATH_MAX], *a;
	struct store *st = t_open("deadlock", dir, sizeof(dir));
	pthread_barrier_t crossed;
	atomic_int calls = 0;
	struct t_dl d1 = { st, true, &calls, &crossed, 0, 0 };
	struct t_dl d2 = { st, false, &calls, &crossed, 0, 0 };
	json_t *b;
	pthread_t t1, t2;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK(pthread_barrier_init(&crossed, NULL, 2) == 0);
	CHECK(pthread_create(&t1, NULL, t_dl_thread, &d1) == 0);
	CHECK(pthread_create(&t2, NULL, t_dl_thread, &d2) == 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	pthread_barrier_destroy(&crossed);
	CHECK(d1.failures == 0);
	CHECK(d2.failures == 0);
	a = store_meta_get(st, NULL, "cnt");
	b = store_ca_get(st, NULL, "ca-cnt");
	CHECK(a != NULL && atoi(a) == 2 * T_DEADLOCK_ROUNDS);
	CHECK(json_integer_value(json_object_get(b, "n")) ==
	    2 * T_DEADLOCK_ROUNDS);
	free(a);
	json_decref(b);
	/* The first tries crossed their locks: one was rerun. */
	fprintf(stderr, "deadlock test: %d runs for %d commits\n",
	    atomic_load(&calls), 2 * T_DEADLOCK_ROUNDS);
	CHECK(atomic_load(&calls) > 2 * T_DEADLOCK_ROUNDS);
	store_close(st);
}

/* ---- open-time checks -------------------------------------------------- */

static void
test_schema_version(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("schema", dir, sizeof(dir));
	struct store_txn *txn;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	store_close(st);
	st = store_open(dir);	/* same version: fine */
	CHECK(st != NULL);
	txn = store_txn_begin(st);
	CHECK(store_meta_put(txn, "schema_version", "999") == 0);
	CHECK(store_txn_commit(txn) == 0);
	store_close(st);
	CHECK(store_open(dir) == NULL);
	/* The failed open released the lock and the environment. */
	CHECK(store_open(dir) == NULL);
}

static void
test_lock(void)
{
	char dir[T_PATH_MAX], path[T_PATH_MAX + 16], *text = NULL;
	char pid[32];
	struct store *st = t_open("lock", dir, sizeof(dir)), *st2;
	size_t len;
	pid_t child;
	int status;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	snprintf(path, sizeof(path), "%s/pkid.lock", dir);
	CHECK(common_file_read(path, 64, &text, &len) == 0);
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	CHECK_STR(text, pid);
	free(text);
	/* A second opener, in this process or another, is refused. */
	CHECK(store_open(dir) == NULL);
	child = fork();
	if (child == 0)
		_exit(store_open(dir) == NULL ? 0 : 1);
	CHECK(child > 0 && waitpid(child, &status, 0) == child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	store_close(st);
	st2 = store_open(dir);
	CHECK(st2 != NULL);
	store_close(st2);
}

/* Plants an unparseable record in certificate.db through a second,
 * plain BDB handle (store closed), then checks the store refuses it. */
static void
test_corrupt_record(void)
{
	char dir[T_PATH_MAX], envdir[T_PATH_MAX + 8];
	struct store *st = t_open("corrupt", dir, sizeof(dir));
	struct store_txn *txn;
	DB_ENV *env = NULL;
	DB *db = NULL;
	DBT k, d;
	json_t *j;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	txn = store_txn_begin(st);
	j = t_cert("good", "good", "ca-1");
	CHECK(store_cert_put(txn, "good", j) == 0);
	json_decref(j);
	CHECK(store_txn_commit(txn) == 0);
	store_close(st);

	snprintf(envdir, sizeof(envdir), "%s/db", dir);
	CHECK(db_env_create(&env, 0) == 0);
	CHECK(env->open(env, envdir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK |
	    DB_INIT_LOG | DB_INIT_MPOOL | DB_RECOVER, 0600) == 0);
	CHECK(db_create(&db, env, 0) == 0);
	CHECK(db->open(db, NULL, "certificate.db", NULL, DB_BTREE,
	    DB_AUTO_COMMIT, 0) == 0);
	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	k.data = "bad";
	k.size = 3;
	d.data = "{\"id\": \"bad\", trunc";
	d.size = (u_int32_t)strlen(d.data);
	CHECK(db->put(db, NULL, &k, &d, DB_AUTO_COMMIT) == 0);
	CHECK(db->close(db, 0) == 0);
	CHECK(env->close(env, 0) == 0);

	st = store_open(dir);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK(store_cert_get(st, NULL, "bad") == NULL);
	txn = store_txn_begin(st);
	CHECK(store_cert_get(st, txn, "bad") == NULL);
	CHECK(store_txn_failed(txn));
	/* A failed txn refuses everything after. */
	j = store_cert_get(st, txn, "good");
	CHECK(j == NULL);
	CHECK(store_txn_commit(txn) == -1);
	j = store_cert_get(st, NULL, "good");
	CHECK(j != NULL);
	json_decref(j);
	/* A list that meets it fails as a whole. */
	CHECK(store_cert_list(st, NULL, NULL, NULL) == NULL);
	CHECK(store_check(st) == -1);
	store_close(st);
}

/* ---- durability across SIGKILL ------------------------------------------ */

static int
t_dur_txn(struct store_txn *txn, void *arg)
{
	uint32_t n = *(uint32_t *)arg;
	char id[32], name[32], serial[32], num[16];
	json_t *j;
	int rc = 0;

	snprintf(id, sizeof(id), "d-%08u", n);
	snprintf(name, sizeof(name), "dur-%08u", n);
	snprintf(serial, sizeof(serial), "%016X", n);
	snprintf(num, sizeof(num), "%u", n);
	j = json_pack("{s:s, s:s, s:s, s:i, s:s}", "id", id, "name", name,
	    "ca_id", "ca-dur", "n", (int)n, "pad",
	    "................................................................"
	    "................................................................");
	rc |= store_cert_put(txn, id, j);
	json_decref(j);
	j = json_pack("{s:i, s:s}", "n", (int)n, "stage", "current");
	rc |= store_version_put(txn, id, 1, j);
	json_decref(j);
	j = t_issued(serial, "ca-dur", "valid", T_DUR_NOT_AFTER + n);
	json_object_set_new(j, "n", json_integer(n));
	rc |= store_issued_put(txn, serial, j);
	json_decref(j);
	j = json_pack("{s:s, s:i}", "event", "dur", "n", (int)n);
	rc |= store_audit_append(txn, j, NULL);
	json_decref(j);
	rc |= store_meta_put(txn, "dur_last", num);
	return rc;
}

/*
 * The child: commits records base, base+1, ... and reports each number
 * on fd only once it is durable: after store_txn_run() returned 0, or,
 * deferring (as the server's workers do), after T_DUR_BATCH deferred
 * commits once store_flush_wait() said the last one's ticket is durable.
 * Never returns.
 */
static void
t_dur_child(const char *dir, uint32_t base, int fd, bool defer)
{
	struct store *st = store_open(dir);
	uint32_t n, first = base;
	uint64_t ticket;

	if (st == NULL || (defer && store_defer(st) != 0))
		_exit(3);
	for (n = base; ; n++) {
		if (store_txn_run(st, t_dur_txn, &n) != 0)
			_exit(4);
		if (defer) {
			/* 0: its flush (asked for at the commit) already
			 * ran */
			ticket = store_defer_pending(st);
			if (n - first + 1 < T_DUR_BATCH)
				continue;
			if (store_flush_wait(st, ticket) != 0)
				_exit(7);
		}
		for (; first <= n; first++)
			if (write(fd, &first, sizeof(first)) !=
			    sizeof(first))
				_exit(5);
	}
}

/* Reads what is available on fd into the acked array (4-byte numbers). */
static int
t_dur_read(int fd, uint32_t **acked, size_t *nacked, size_t *cap,
    unsigned char *part, size_t *partlen)
{
	unsigned char buf[4096];
	ssize_t r;
	size_t i;

	r = read(fd, buf, sizeof(buf));
	if (r <= 0)
		return (int)r;
	for (i = 0; i < (size_t)r; i++) {
		part[(*partlen)++] = buf[i];
		if (*partlen < sizeof(uint32_t))
			continue;
		if (*nacked == *cap) {
			*cap = *cap ? *cap * 2 : 1024;
			*acked = realloc(*acked, *cap * sizeof(**acked));
			if (*acked == NULL)
				abort();
		}
		memcpy(&(*acked)[(*nacked)++], part, sizeof(uint32_t));
		*partlen = 0;
	}
	return 1;
}

/* Checks that record n, acknowledged by the child, is present and
 * intact in every table it touched. */
static bool
t_dur_present(struct store *st, uint32_t n)
{
	char id[32], name[32], serial[32];
	json_t *c, *byname, *v, *iss;
	bool ok;

	snprintf(id, sizeof(id), "d-%08u", n);
	snprintf(name, sizeof(name), "dur-%08u", n);
	snprintf(serial, sizeof(serial), "%016X", n);
	c = store_cert_get(st, NULL, id);
	byname = store_cert_by_name(st, NULL, name);
	v = store_version_get(st, NULL, id, 1);
	iss = store_issued_get(st, NULL, serial);
	ok = c != NULL && byname != NULL && v != NULL && iss != NULL &&
	    json_integer_value(json_object_get(c, "n")) == n &&
	    json_string_length(json_object_get(c, "pad")) == 128 &&
	    json_equal(c, byname) &&
	    json_integer_value(json_object_get(v, "n")) == n &&
	    json_integer_value(json_object_get(iss, "not_after")) ==
	    T_DUR_NOT_AFTER + n;
	json_decref(c);
	json_decref(byname);
	json_decref(v);
	json_decref(iss);
	return ok;
}

static atomic_int t_flush_calls;

static void
t_flush_cb(void *arg)
{
	(void)arg;
	atomic_fetch_add(&t_flush_calls, 1);
}

static void *
t_defer_other(void *arg)
{
	struct store *st = arg;
	uint32_t n = 7000001;

	/* a thread that did not defer: durable commits, nothing pending */
	if (store_txn_run(st, t_dur_txn, &n) != 0 ||
	    store_defer_pending(st) != 0)
		return (void *)1;
	return NULL;
}

/*
 * Deferred durability: a deferring thread's commit returns with a ticket
 * that is not durable until a flush it asked for ran; subscribers hear
 * of every flush until they unsubscribe; tickets only grow; other
 * threads and NOSYNC stores are unaffected; close flushes.
 */
static void
test_defer(void)
{
	char dir[T_PATH_MAX];
	struct store *st = t_open("defer", dir, sizeof(dir));
	uint64_t t1, t2;
	uint32_t n = 7000000;
	pthread_t th;
	void *res = (void *)1;
	int waited, calls;

	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK(store_defer_pending(st) == 0);		/* not deferring */
	CHECK(store_flush_subscribe(st, t_flush_cb, NULL) == 0);
	CHECK(store_defer(st) == 0);
	CHECK(store_defer_pending(st) == 0);		/* nothing yet */
	calls = atomic_load(&t_flush_calls);
	CHECK(store_txn_run(st, t_dur_txn, &n) == 0);
	/* the commit asked for its flush: it comes without a wait */
	for (waited = 0; waited < 5000 && atomic_load(&t_flush_calls) ==
	    calls; waited += 2)
		(void)poll(NULL, 0, 2);
	CHECK(atomic_load(&t_flush_calls) > calls);
	t1 = 1;				/* the first deferred commit */
	CHECK(store_flush_state(st, t1) == 1);
	CHECK(store_defer_pending(st) == 0);		/* durable now */
	CHECK(store_flush_state(st, 0) == 1);

	/* tickets grow; store_flush_wait returns once it is durable */
	n++;
	CHECK(store_txn_run(st, t_dur_txn, &n) == 0);
	t2 = store_defer_pending(st);
	CHECK(t2 == 0 || t2 > t1);
	if (t2 == 0)
		t2 = 2;			/* the second deferred commit */
	CHECK(store_flush_wait(st, t2) == 0);
	CHECK(store_flush_state(st, t2) == 1);
	CHECK(store_defer_pending(st) == 0);

	CHECK(pthread_create(&th, NULL, t_defer_other, st) == 0);
	pthread_join(th, &res);
	CHECK(res == NULL);

	/* unsubscribed: flushes no longer call back */
	store_flush_unsubscribe(st, t_flush_cb, NULL);
	calls = atomic_load(&t_flush_calls);
	n++;
	CHECK(store_txn_run(st, t_dur_txn, &n) == 0);
	CHECK(store_flush_wait(st, store_defer_pending(st)) == 0);
	CHECK(atomic_load(&t_flush_calls) == calls);

	/* closed right after a commit: durable on the way out */
	n++;
	CHECK(store_txn_run(st, t_dur_txn, &n) == 0);
	st = t_reopen(st, dir);
	CHECK(st != NULL);
	if (st != NULL) {
		CHECK(t_dur_present(st, n));
		CHECK(t_dur_present(st, 7000001));
	}
	store_close(st);

	/* NOSYNC: nothing to defer */
	snprintf(dir, sizeof(dir), "%s/defer-nosync", test_tmpdir());
	st = store_open_flags(dir, STORE_F_NOSYNC);
	CHECK(st != NULL);
	if (st == NULL)
		return;
	CHECK(store_defer(st) == 0);
	n++;
	CHECK(store_txn_run(st, t_dur_txn, &n) == 0);
	CHECK(store_defer_pending(st) == 0);
	CHECK(store_flush_subscribe(st, t_flush_cb, NULL) == 0);
	store_close(st);
}

static void
test_durability(void)
{
	char dir[T_PATH_MAX], *last;
	struct store *st;
	uint32_t *acked = NULL;
	unsigned char *seen = NULL;
	size_t nacked = 0, cap = 0, partlen, i, missing, total = 0;
	unsigned char part[4];
	uint64_t start, deadline, after;
	json_t *page, *rec;
	pid_t child;
	int cycle, fds[2], status, r;

	snprintf(dir, sizeof(dir), "%s/durability", test_tmpdir());
	srandom((unsigned int)getpid());
	for (cycle = 0; cycle < T_DUR_CYCLES; cycle++) {
		uint32_t base = (uint32_t)(cycle + 1) * T_DUR_BASE;
		struct pollfd pfd;

		CHECK(pipe(fds) == 0);
		child = fork();
		CHECK(child >= 0);
		if (child == 0) {
			close(fds[0]);
			t_dur_child(dir, base, fds[1], cycle % 2 == 1);
		}
		close(fds[1]);
		nacked = 0;
		partlen = 0;
		start = common_mono_ms();
		deadline = start + T_DUR_KILL_MIN_MS +
		    (uint64_t)(random() % T_DUR_KILL_SPAN_MS);
		for (;;) {
			uint64_t now = common_mono_ms();

			if (now >= deadline && nacked >= T_DUR_MIN_RECORDS)
				break;
			if (now >= start + T_DUR_HARD_MS)
				break;
			pfd.fd = fds[0];
			pfd.events = POLLIN;
			if (poll(&pfd, 1, 10) == 1 && t_dur_read(fds[0],
			    &acked, &nacked, &cap, part, &partlen) <= 0)
				break;	/* child died on its own */
		}
		CHECK(kill(child, SIGKILL) == 0);
		/* Whatever the child wrote before dying was committed. */
		while ((r = t_dur_read(fds[0], &acked, &nacked, &cap, part,
		    &partlen)) > 0 || (r == -1 && errno == EINTR))
			;
		close(fds[0]);
		CHECK(waitpid(child, &status, 0) == child);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		CHECK(nacked >= T_DUR_MIN_RECORDS);
		fprintf(stderr, "durability cycle %d (%s): %zu records acked "
		    "before SIGKILL\n", cycle, cycle % 2 == 1 ? "deferred" :
		    "synchronous", nacked);
		total += nacked;

		/* Recovery runs on open. */
		st = store_open(dir);
		CHECK(st != NULL);
		if (st == NULL)
			break;
		missing = 0;
		for (i = 0; i < nacked; i++) {
			CHECK(acked[i] == base + i);	/* in order, no gaps */
			if (!t_dur_present(st, acked[i]))
				missing++;
		}
		CHECK(missing == 0);
		last = store_meta_get(st, NULL, "dur_last");
		CHECK(last != NULL && nacked > 0 &&
		    strtoul(last, NULL, 10) >= acked[nacked - 1]);
		free(last);
		CHECK(store_cert_count_by_ca(st, NULL, "ca-dur") >=
		    (long)total);

		/* Every acked number has its audit record, seq in order. */
		free(seen);
		seen = calloc(nacked > 0 ? nacked : 1, 1);
		after = 0;
		for (;;) {
			page = store_audit_list(st, NULL, after, 1000);
			CHECK(page != NULL);
			if (page == NULL || json_array_size(page) == 0) {
				json_decref(page);
				break;
			}
			json_array_foreach(page, i, rec) {
				json_int_t s = json_integer_value(
				    json_object_get(rec, "seq"));
				json_int_t n = json_integer_value(
				    json_object_get(rec, "n"));

				CHECK((uint64_t)s == after + 1);
				after = (uint64_t)s;
				if (n >= base && n < base + (json_int_t)nacked)
					seen[n - base] = 1;
			}
			json_decref(page);
		}
		for (i = 0; i < nacked; i++)
			if (!seen[i])
				missing++;
		CHECK(missing == 0);
		CHECK(after >= total);

		/* Consistency: every record parses, indexes match. */
		CHECK(store_check(st) == 0);
		store_close(st);
		t_verify_files(dir);
	}
	free(seen);
	free(acked);
}

const struct test_case test_cases[] = {
	TEST(test_meta_ca),
	TEST(test_cert_paging),
	TEST(test_cert_unique_name),
	TEST(test_versions),
	TEST(test_issued_indexes),
	TEST(test_key_resource_assoc),
	TEST(test_audit),
	TEST(test_cert_orders),
	TEST(test_index_rebuild),
	TEST(test_audit_scan),
	TEST(test_acme_account),
	TEST(test_acme_orders),
	TEST(test_acme_authz),
	TEST(test_eab),
	TEST(test_est_client),
	TEST(test_est_request),
	TEST(test_old_layout),
	TEST(test_revoked_walk),
	TEST(test_issued_key_format),
	TEST(test_old_issued_layout),
	TEST(test_put_indexes_follow),
	TEST(test_rollback),
	TEST(test_deadlock_retry),
	TEST(test_schema_version),
	TEST(test_lock),
	TEST(test_corrupt_record),
	TEST(test_durability),
	TEST(test_defer),
	{ 0 }
};
