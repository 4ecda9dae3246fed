/*
 * bench/estload/csr.c — the pool of certificate requests, made before
 * the timed part so that key generation is the devices' cost, not the
 * measurement's: a fresh P-256 key per CSR, as devices have.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "bench/estload/estload.h"
#include "common/common.h"

#define ESTLOAD_CN_MAX	64

struct estload_csr_job {
	struct estload_csrs	*c;
	size_t			 from;
	size_t			 to;
	int			 rc;
	pthread_t		 tid;
};

/* One CSR with a new key from kctx (a P-256 key generation context):
 * base64 of its DER (to free()), or NULL. */
static char *
estload_csr_one(EVP_PKEY_CTX *kctx, size_t i)
{
	char cn[ESTLOAD_CN_MAX];
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	X509_NAME *name;
	unsigned char *der = NULL;
	char *b64 = NULL;
	int len;

	snprintf(cn, sizeof(cn), "device-%06zu", i);
	if (EVP_PKEY_generate(kctx, &key) != 1 ||
	    (req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    (name = X509_REQ_get_subject_name(req)) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"pkid bench", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
	    (len = i2d_X509_REQ(req, &der)) <= 0)
		goto out;
	b64 = common_b64_encode(der, (size_t)len, false, 0);
out:
	if (b64 == NULL)
		fprintf(stderr, "estload: CSR %zu: %s\n", i,
		    common_ssl_error());
	OPENSSL_free(der);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return b64;
}

static void *
estload_csr_worker(void *arg)
{
	struct estload_csr_job *j = arg;
	EVP_PKEY_CTX *kctx;
	size_t i;

	if ((kctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_keygen_init(kctx) != 1 ||
	    EVP_PKEY_CTX_set_group_name(kctx, "P-256") != 1) {
		fprintf(stderr, "estload: P-256 key generation: %s\n",
		    common_ssl_error());
		j->rc = -1;
		goto out;
	}
	for (i = j->from; i < j->to; i++)
		if ((j->c->b64[i] = estload_csr_one(kctx, i)) == NULL) {
			j->rc = -1;
			break;
		}
out:
	EVP_PKEY_CTX_free(kctx);
	return NULL;
}

int
estload_csrs_make(struct estload_csrs *c, size_t n, int threads)
{
	struct estload_csr_job *jobs = NULL;
	size_t per;
	int i, started = 0, rc = -1;

	memset(c, 0, sizeof(*c));
	if (n == 0 || threads < 1 ||
	    (c->b64 = calloc(n, sizeof(*c->b64))) == NULL ||
	    (jobs = calloc((size_t)threads, sizeof(*jobs))) == NULL)
		goto out;
	c->n = n;
	per = (n + (size_t)threads - 1) / (size_t)threads;
	for (i = 0; i < threads; i++) {
		jobs[i].c = c;
		jobs[i].from = (size_t)i * per < n ? (size_t)i * per : n;
		jobs[i].to = jobs[i].from + per < n ? jobs[i].from + per : n;
		if (pthread_create(&jobs[i].tid, NULL, estload_csr_worker,
		    &jobs[i]) != 0)
			break;
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(jobs[i].tid, NULL);
	if (started != threads)
		goto out;
	for (i = 0; i < threads; i++)
		if (jobs[i].rc != 0)
			goto out;
	rc = 0;
out:
	free(jobs);
	if (rc != 0)
		estload_csrs_free(c);
	return rc;
}

void
estload_csrs_free(struct estload_csrs *c)
{
	size_t i;

	if (c == NULL || c->b64 == NULL)
		return;
	for (i = 0; i < c->n; i++)
		free(c->b64[i]);
	free(c->b64);
	c->b64 = NULL;
	c->n = 0;
}

const char *
estload_csrs_take(struct estload_csrs *c)
{
	uint64_t i = atomic_fetch_add(&c->next, 1);

	return c->b64[i % c->n];
}

uint64_t
estload_csrs_used(const struct estload_csrs *c)
{
	return atomic_load(&c->next);
}
