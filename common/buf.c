/*
 * common/buf.c — growable byte buffers with a hard maximum length.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define BUF_MIN_CAP	64	/* first allocation, avoids tiny reallocs */

void
common_buf_init(struct common_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

/*
 * Makes room for n more bytes plus the terminating NUL. -1 (buffer
 * unchanged) when len + n would pass max or on allocation failure.
 */
static int
buf_reserve(struct common_buf *b, size_t n)
{
	unsigned char *p;
	size_t need, cap;

	if (n > b->max || b->len > b->max - n)
		return -1;
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	/* Never allocate far beyond what max allows. */
	if (b->max < SIZE_MAX && cap > b->max + 1)
		cap = b->max + 1;
	if (cap < need)
		cap = need;
	if ((p = realloc(b->data, cap)) == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int
common_buf_add(struct common_buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
common_buf_addstr(struct common_buf *b, const char *s)
{
	return common_buf_add(b, s, strlen(s));
}

/*
 * Appends printf-style text. Formats once into the spare room, and again
 * after growing when it did not fit. -1 (buffer unchanged) past max.
 */
int
common_buf_addf(struct common_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = b->data != NULL ?
	    vsnprintf((char *)b->data + b->len, b->cap - b->len, fmt, ap) :
	    vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		goto fail;
	if (b->data != NULL && (size_t)n < b->cap - b->len) {
		if ((size_t)n > b->max - b->len)
			goto fail;
		b->len += (size_t)n;
		return 0;
	}
	if (buf_reserve(b, (size_t)n) == -1)
		goto fail;
	va_start(ap, fmt);
	n = vsnprintf((char *)b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		goto fail;
	b->len += (size_t)n;
	return 0;
fail:
	if (b->data != NULL)
		b->data[b->len] = '\0';
	return -1;
}

/*
 * Hands the data to the caller and resets b (max is kept). An empty
 * buffer still yields an allocated "" so callers need not special-case it.
 * NULL on allocation failure.
 */
char *
common_buf_steal(struct common_buf *b, size_t *len)
{
	char *p;

	if (b->data == NULL && buf_reserve(b, 0) == -1)
		return NULL;
	b->data[b->len] = '\0';
	p = (char *)b->data;	/* steal */
	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

void
common_buf_free(struct common_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}
