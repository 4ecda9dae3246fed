/*
 * common/file.c — directories, atomic file writes, bounded reads and
 * path formatting.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

#define FILE_TMP_SUFFIX	".tmp.XXXXXX"	/* mkstemp template suffix */

/*
 * Creates path and its missing parents, each with mode (like mkdir -p).
 * An existing directory is success; an existing non-directory is ENOTDIR.
 */
int
common_mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	struct stat st;
	size_t len, i;
	int rc = -1;

	if (path == NULL || path[0] == '\0') {
		errno = EINVAL;
		goto out;
	}
	len = strlen(path);
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		goto out;
	}
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i - 1] == '/')
			continue;	/* "a//b" */
		buf[i] = '\0';
		if (mkdir(buf, mode) == -1) {
			if (errno != EEXIST)
				goto out;
			if (stat(buf, &st) == -1)
				goto out;
			if (!S_ISDIR(st.st_mode)) {
				errno = ENOTDIR;
				goto out;
			}
		}
		if (i < len)
			buf[i] = '/';
	}
	rc = 0;
out:
	return rc;
}

/* Writes all n bytes, retrying short writes and EINTR. */
static int
file_write_all(int fd, const void *data, size_t n)
{
	const unsigned char *p = data;
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Replaces path with data so that readers see the old content or the new,
 * never a mix, and a crash leaves one of the two on disk: temporary file
 * in the same directory, fsync, chmod, rename over path, fsync of the
 * directory so the rename itself is durable. errno is kept on failure.
 */
int
common_file_write(const char *path, const void *data, size_t len,
    mode_t mode)
{
	char tmp[PATH_MAX], dirbuf[PATH_MAX];
	int fd = -1, dfd = -1, rc = -1, saved;
	bool created = false;

	if (common_path(tmp, sizeof(tmp), "%s" FILE_TMP_SUFFIX, path) == -1 ||
	    common_path(dirbuf, sizeof(dirbuf), "%s", path) == -1) {
		errno = ENAMETOOLONG;
		goto out;
	}
	if ((fd = mkstemp(tmp)) == -1)
		goto out;
	created = true;
	if (file_write_all(fd, data, len) == -1 || fchmod(fd, mode) == -1 ||
	    fsync(fd) == -1)
		goto out;
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto out;
	created = false;
	/* dirname() may modify its argument: dirbuf is a private copy. */
	if ((dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY)) == -1)
		goto out;
	if (fsync(dfd) == -1 && errno != EINVAL)
		goto out;
	rc = 0;
out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	if (created)
		unlink(tmp);
	if (rc == -1)
		log_warn("file %s: atomic write: %s", path, strerror(saved));
	errno = saved;
	return rc;
}

/*
 * Reads a regular file of at most max bytes into a NUL-terminated buffer
 * to free(). -1 when missing, unreadable, not a regular file or larger
 * than max (errno EFBIG). The size from fstat is only a hint: the file
 * may change while it is read, so the limit is enforced on the bytes read.
 */
int
common_file_read(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL, *p;
	size_t off = 0, cap;
	ssize_t r;
	int fd = -1, rc = -1, saved;

	*out = NULL;
	if (len != NULL)
		*len = 0;
	if (max >= SIZE_MAX / 2) {
		errno = EINVAL;
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		goto out;
	if (fstat(fd, &st) == -1)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto out;
	}
	if ((uintmax_t)st.st_size > max) {
		errno = EFBIG;
		goto out;
	}
	/* Room for one byte past max, so a file that grew is noticed. */
	cap = (size_t)st.st_size + 2;
	if ((buf = malloc(cap)) == NULL)
		goto out;
	for (;;) {
		if (off + 1 >= cap) {
			cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
			if ((p = realloc(buf, cap)) == NULL)
				goto out;
			buf = p;
		}
		r = read(fd, buf + off, cap - 1 - off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto out;
		if (r == 0)
			break;
		off += (size_t)r;
		if (off > max) {
			errno = EFBIG;
			goto out;
		}
	}
	buf[off] = '\0';
	*out = buf;	/* steal */
	buf = NULL;
	if (len != NULL)
		*len = off;
	rc = 0;
out:
	saved = errno;
	free(buf);
	if (fd != -1)
		close(fd);
	errno = saved;
	return rc;
}

int
common_path(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 0;
}
