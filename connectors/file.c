/*
 * connectors/file.c — the "file" connector (resource types nginx and
 * haproxy): writes the version's files atomically, runs the reload
 * command and checks what landed on disk.
 *
 * Config: {"cert_path" (required), "key_path", "chain_path",
 * "fullchain_path", "mode" (octal string for the key, default "0600"),
 * "reload_command" (argv array, no shell; [] for none)}. Without
 * key_path, cert_path receives the combined PEM nginx and HAProxy both
 * read: certificate, chain, then the private key, with the key's mode.
 * Paths are absolute. Certificates and chains are written 0644.
 *
 * The reload command is started with posix_spawnp (stdin, stdout and
 * stderr on /dev/null) and waited for by a timer that polls waitpid, so
 * the jobs loop never blocks; past CONNECTOR_RELOAD_TIMEOUT_SECONDS it is
 * killed and the deployment fails. Exit status 0 is success.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "connectors/connectors.h"

#define FILE_MODE_DEFAULT	0600	/* key files */
#define FILE_MODE_PUBLIC	0644	/* certificates and chains */
#define FILE_POLL_MS		50	/* between two looks at the child */
#define FILE_SERIAL_MAX		72	/* hex serial + NUL, with room */

extern char **environ;

static const char *const file_fields[] = {
	"cert_path", "key_path", "chain_path", "fullchain_path", "mode",
	"reload_command", NULL
};
static const char *const file_path_fields[] = {
	"cert_path", "key_path", "chain_path", "fullchain_path", NULL
};
static const char *const file_nginx_reload[] = {
	"nginx", "-s", "reload", NULL
};

/* A reload command in flight. */
struct file_child {
	pid_t		 pid;
	struct event	*timer;
	uint64_t	 deadline_ms;	/* common_mono_ms() */
	char		 name[CONNECTOR_ARG_MAX];	/* argv[0], for logs */
};

static const char *
file_str(const json_t *config, const char *key)
{
	return json_string_value(json_object_get(config, key));
}

/* Parses an octal mode string ("0600", "640"); -1 when malformed. */
static int
file_mode_parse(const char *s, mode_t *out)
{
	unsigned long m;
	char *end;

	if (s == NULL || *s == '\0' || strlen(s) > 4 ||
	    strspn(s, "01234567") != strlen(s))
		return -1;
	m = strtoul(s, &end, 8);
	if (*end != '\0' || m > 0777)
		return -1;
	*out = (mode_t)m;
	return 0;
}

static int
file_validate(const json_t *config, struct common_error *err)
{
	const json_t *v, *a;
	const char *key, *s;
	mode_t mode;
	size_t i, j;

	if (config == NULL || !json_is_object(config)) {
		common_error_set(err, COMMON_E_INVALID, "field \"config\" "
		    "must be an object with \"cert_path\"");
		return -1;
	}
	json_object_foreach((json_t *)config, key, v) {
		for (i = 0; file_fields[i] != NULL; i++)
			if (strcmp(file_fields[i], key) == 0)
				break;
		if (file_fields[i] == NULL) {
			common_error_set(err, COMMON_E_INVALID, "unknown field "
			    "\"config.%.64s\"", key);
			return -1;
		}
	}
	for (i = 0; file_path_fields[i] != NULL; i++) {
		v = json_object_get(config, file_path_fields[i]);
		if (v == NULL || json_is_null(v)) {
			if (i == 0) {
				common_error_set(err, COMMON_E_INVALID,
				    "field \"config.cert_path\" is required");
				return -1;
			}
			continue;
		}
		s = json_string_value(v);
		if (s == NULL || s[0] != '/' || strlen(s) >=
		    CONNECTOR_PATH_MAX || s[strlen(s) - 1] == '/') {
			common_error_set(err, COMMON_E_INVALID, "field "
			    "\"config.%s\" must be an absolute file path of "
			    "at most %d bytes", file_path_fields[i],
			    CONNECTOR_PATH_MAX - 1);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (file_str(config, file_path_fields[j]) != NULL &&
			    strcmp(file_str(config, file_path_fields[j]),
			    s) == 0) {
				common_error_set(err, COMMON_E_INVALID,
				    "fields \"config.%s\" and \"config.%s\" "
				    "name the same file", file_path_fields[j],
				    file_path_fields[i]);
				return -1;
			}
	}
	v = json_object_get(config, "mode");
	if (v != NULL && !json_is_null(v)) {
		if (file_mode_parse(json_string_value(v), &mode) == -1) {
			common_error_set(err, COMMON_E_INVALID, "field "
			    "\"config.mode\" must be an octal string such as "
			    "\"0600\"");
			return -1;
		}
		/* the key must never become readable by every user */
		if ((mode & 0007) != 0 || (mode & 0600) != 0600) {
			common_error_set(err, COMMON_E_INVALID, "field "
			    "\"config.mode\" must give the owner read and "
			    "write and others nothing (e.g. \"0600\", "
			    "\"0640\")");
			return -1;
		}
	}
	v = json_object_get(config, "reload_command");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_array(v) || json_array_size(v) >
		    CONNECTOR_ARGV_MAX) {
			common_error_set(err, COMMON_E_INVALID, "field "
			    "\"config.reload_command\" must be an array of at "
			    "most %d strings (argv, no shell)",
			    CONNECTOR_ARGV_MAX);
			return -1;
		}
		json_array_foreach(v, i, a) {
			s = json_string_value(a);
			if (s == NULL || strlen(s) >= CONNECTOR_ARG_MAX ||
			    (i == 0 && *s == '\0')) {
				common_error_set(err, COMMON_E_INVALID,
				    "field \"config.reload_command[%zu]\" must "
				    "be a%s string of at most %d bytes", i,
				    i == 0 ? " non-empty" : "",
				    CONNECTOR_ARG_MAX - 1);
				return -1;
			}
		}
	}
	return 0;
}

/* Writes one file of the deployment; logs and records the failure. */
static int
file_put(struct connector_op *op, const char *what, const char *path,
    const char *data, mode_t mode)
{
	const struct connector_job *job = connector_op_job(op);

	if (common_file_write(path, data, strlen(data), mode) == -1) {
		log_err("connectors: resource %s: writing the %s of "
		    "certificate %s version %u to %s: %s", job->resource_id,
		    what, job->certificate_id, job->version, path,
		    strerror(errno));
		connector_op_fail(op, "writing the %s to %s failed: %s", what,
		    path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The text of a + b (either may be empty), to free(); NULL on failure. */
static char *
file_concat(const char *a, const char *b, const char *c)
{
	struct common_buf buf;

	common_buf_init(&buf, 4 * CONNECTOR_FILE_MAX);
	if (common_buf_addstr(&buf, a) == -1 ||
	    common_buf_addstr(&buf, b) == -1 ||
	    common_buf_addstr(&buf, c != NULL ? c : "") == -1) {
		common_buf_free(&buf);
		return NULL;
	}
	return common_buf_steal(&buf, NULL);
}

/* The key file mode of config (validated). */
static mode_t
file_key_mode(const json_t *config)
{
	mode_t mode = FILE_MODE_DEFAULT;

	if (file_str(config, "mode") != NULL)
		(void)file_mode_parse(file_str(config, "mode"), &mode);
	return mode;
}

/* Writes every configured file. 0 or -1 (reason recorded). */
static int
file_write_all(struct connector_op *op)
{
	const struct connector_job *job = connector_op_job(op);
	const json_t *cfg = job->config;
	const char *key_path = file_str(cfg, "key_path"), *p;
	mode_t kmode = file_key_mode(cfg);
	char *text = NULL;
	int rc = -1;

	if (job->private_key == NULL && key_path != NULL) {
		connector_op_fail(op, "pkid holds no private key of "
		    "certificate %s (its key stays with its owner): "
		    "config.key_path cannot be written", job->certificate_id);
		goto out;
	}
	if ((p = file_str(cfg, "chain_path")) != NULL &&
	    file_put(op, "chain", p, job->chain, FILE_MODE_PUBLIC) == -1)
		goto out;
	if ((p = file_str(cfg, "fullchain_path")) != NULL) {
		if ((text = file_concat(job->certificate, job->chain,
		    NULL)) == NULL) {
			connector_op_fail(op, "out of memory");
			goto out;
		}
		if (file_put(op, "full chain", p, text, FILE_MODE_PUBLIC) ==
		    -1)
			goto out;
		free(text);
		text = NULL;
	}
	/* the key before the certificate: a reload never pairs a new
	 * certificate with the old key */
	if (key_path != NULL) {
		if (file_put(op, "private key", key_path, job->private_key,
		    kmode) == -1)
			goto out;
		if (file_put(op, "certificate", file_str(cfg, "cert_path"),
		    job->certificate, FILE_MODE_PUBLIC) == -1)
			goto out;
	} else {
		if ((text = file_concat(job->certificate, job->chain,
		    job->private_key)) == NULL) {
			connector_op_fail(op, "out of memory");
			goto out;
		}
		if (file_put(op, job->private_key != NULL ?
		    "certificate, chain and key" : "certificate and chain",
		    file_str(cfg, "cert_path"), text, job->private_key !=
		    NULL ? kmode : FILE_MODE_PUBLIC) == -1)
			goto out;
	}
	connector_op_note(op, "files written");
	rc = 0;
out:
	if (text != NULL) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	return rc;
}

static void
file_child_free(struct file_child *ch)
{
	if (ch == NULL)
		return;
	if (ch->timer != NULL)
		event_free(ch->timer);
	free(ch);
}

/* Polls the reload command: its exit ends the deploy step. */
static void
file_child_cb(evutil_socket_t fd, short what, void *arg)
{
	struct connector_op *op = arg;
	struct file_child *ch = connector_op_state(op);
	const struct connector_job *job = connector_op_job(op);
	struct timeval tv = { 0, FILE_POLL_MS * 1000 };
	int status;
	pid_t r;
	bool ok = false;

	(void)fd;
	(void)what;
	r = waitpid(ch->pid, &status, WNOHANG);
	if (r == 0) {
		if (common_mono_ms() < ch->deadline_ms) {
			evtimer_add(ch->timer, &tv);
			return;
		}
		(void)kill(ch->pid, SIGKILL);
		(void)waitpid(ch->pid, &status, 0);
		log_err("connectors: resource %s: reload command %s did not "
		    "end within %d s; killed", job->resource_id, ch->name,
		    CONNECTOR_RELOAD_TIMEOUT_SECONDS);
		connector_op_fail(op, "reload command %s did not end within "
		    "%d s", ch->name, CONNECTOR_RELOAD_TIMEOUT_SECONDS);
	} else if (r == -1) {
		log_err("connectors: resource %s: waiting for reload command "
		    "%s: %s", job->resource_id, ch->name, strerror(errno));
		connector_op_fail(op, "waiting for reload command %s: %s",
		    ch->name, strerror(errno));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		connector_op_note(op, "reload command %s succeeded",
		    ch->name);
		ok = true;
	} else {
		if (WIFEXITED(status))
			connector_op_fail(op, "reload command %s exited with "
			    "status %d", ch->name, WEXITSTATUS(status));
		else
			connector_op_fail(op, "reload command %s was killed "
			    "by signal %d", ch->name, WIFSIGNALED(status) ?
			    WTERMSIG(status) : 0);
		log_err("connectors: resource %s: certificate %s version %u: "
		    "reload command %s failed (status 0x%x)",
		    job->resource_id, job->certificate_id, job->version,
		    ch->name, (unsigned)status);
	}
	file_child_free(ch);
	connector_op_done(op, ok);
}

/* Starts the reload command of argv (NULL-terminated). 0 when it runs,
 * -1 (reason recorded) when it could not be started. */
static int
file_spawn(struct connector_op *op, char *const argv[])
{
	const struct connector_job *job = connector_op_job(op);
	struct timeval tv = { 0, FILE_POLL_MS * 1000 };
	posix_spawn_file_actions_t fa;
	struct file_child *ch = NULL;
	bool fa_init = false;
	int rc = -1, e;

	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		connector_op_fail(op, "out of memory");
		goto out;
	}
	snprintf(ch->name, sizeof(ch->name), "%s", argv[0]);
	if ((ch->timer = evtimer_new(connector_op_base(op), file_child_cb,
	    op)) == NULL) {
		connector_op_fail(op, "cannot create the reload timer");
		goto out;
	}
	if ((e = posix_spawn_file_actions_init(&fa)) != 0)
		goto spawn_fail;
	fa_init = true;
	if ((e = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO,
	    "/dev/null", O_RDONLY, 0)) != 0 ||
	    (e = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO,
	    "/dev/null", O_WRONLY, 0)) != 0 ||
	    (e = posix_spawn_file_actions_addopen(&fa, STDERR_FILENO,
	    "/dev/null", O_WRONLY, 0)) != 0)
		goto spawn_fail;
	if ((e = posix_spawnp(&ch->pid, argv[0], &fa, NULL, argv,
	    environ)) != 0)
		goto spawn_fail;
	ch->deadline_ms = common_mono_ms() +
	    (uint64_t)CONNECTOR_RELOAD_TIMEOUT_SECONDS * 1000;
	evtimer_add(ch->timer, &tv);
	connector_op_set_state(op, ch);
	ch = NULL;	/* steal */
	rc = 0;
	goto out;
spawn_fail:
	log_err("connectors: resource %s: starting reload command %s: %s",
	    job->resource_id, argv[0], strerror(e));
	connector_op_fail(op, "reload command %s could not be started: %s",
	    argv[0], strerror(e));
out:
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	file_child_free(ch);
	return rc;
}

static int
file_deploy(struct connector_op *op)
{
	const struct connector_job *job = connector_op_job(op);
	const json_t *cmd = json_object_get(job->config, "reload_command");
	char *argv[CONNECTOR_ARGV_MAX + 1];
	size_t i, n = 0;

	if (file_write_all(op) == -1)
		return -1;
	if (cmd != NULL && json_is_array(cmd)) {
		for (i = 0; i < json_array_size(cmd) && i <
		    CONNECTOR_ARGV_MAX; i++)
			argv[n++] = (char *)json_string_value(
			    json_array_get(cmd, i));
	} else if (strcmp(job->resource_type, "nginx") == 0) {
		for (i = 0; file_nginx_reload[i] != NULL; i++)
			argv[n++] = (char *)file_nginx_reload[i];
	}
	argv[n] = NULL;
	if (n == 0) {
		connector_op_done(op, true);
		return 0;
	}
	return file_spawn(op, argv);
}

/* The first certificate and the first private key of a PEM file. */
static int
file_read_pem(const char *path, X509 **cert, EVP_PKEY **key)
{
	char *text = NULL;
	size_t len = 0;
	BIO *b = NULL;
	int rc = -1;

	if (common_file_read(path, CONNECTOR_FILE_MAX, &text, &len) == -1)
		goto out;
	if (cert != NULL) {
		if ((b = BIO_new_mem_buf(text, (int)len)) == NULL ||
		    (*cert = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL)
			goto out;
		BIO_free(b);
		b = NULL;
	}
	if (key != NULL) {
		if ((b = BIO_new_mem_buf(text, (int)len)) == NULL ||
		    (*key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) ==
		    NULL)
			goto out;
	}
	rc = 0;
out:
	BIO_free(b);
	if (text != NULL) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	return rc;
}

static int
file_verify(struct connector_op *op)
{
	const struct connector_job *job = connector_op_job(op);
	const char *cert_path = file_str(job->config, "cert_path");
	const char *key_path = file_str(job->config, "key_path");
	char serial[FILE_SERIAL_MAX];
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int rc = -1;

	serial[0] = '\0';
	if (file_read_pem(cert_path, &cert, NULL) == -1) {
		connector_op_fail(op, "verify: %s holds no readable "
		    "certificate", cert_path);
		goto out;
	}
	if (common_x509_serial_hex(cert, serial, sizeof(serial)) == -1 ||
	    strcasecmp(serial, job->serial) != 0) {
		connector_op_fail(op, "verify: %s holds serial %s, not %s",
		    cert_path, serial, job->serial);
		goto out;
	}
	if (job->private_key != NULL) {
		if (key_path == NULL)
			key_path = cert_path;
		if (file_read_pem(key_path, NULL, &key) == -1) {
			connector_op_fail(op, "verify: %s holds no readable "
			    "private key", key_path);
			goto out;
		}
		if (X509_check_private_key(cert, key) != 1) {
			connector_op_fail(op, "verify: the key in %s does not "
			    "match the certificate in %s", key_path,
			    cert_path);
			goto out;
		}
	}
	connector_op_note(op, "verified serial %s", serial);
	connector_op_done(op, true);
	rc = 0;
out:
	if (rc == -1)
		log_err("connectors: resource %s: certificate %s version %u: "
		    "verification failed", job->resource_id,
		    job->certificate_id, job->version);
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

/* Abandons a reload command in flight: killed and reaped. */
static void
file_cancel(struct connector_op *op)
{
	struct file_child *ch = connector_op_state(op);
	int status;

	if (ch == NULL)
		return;
	(void)kill(ch->pid, SIGKILL);
	(void)waitpid(ch->pid, &status, 0);
	file_child_free(ch);
	connector_op_set_state(op, NULL);
}

const struct connector_type connector_file = {
	.name = "file",
	.validate = file_validate,
	.deploy = file_deploy,
	.verify = file_verify,
	.cancel = file_cancel,
};
