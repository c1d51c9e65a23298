/*
 * fd-fdinfo.c - parsing the fdinfo text of event fds (see fd-fdinfo.h).
 *
 * Each value is looked for by its key, never by position, so a field the
 * kernel adds later does not break a parser; a key it always prints but
 * that is missing is -ENOENT, a value that is not a number -EINVAL.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "fd-fdinfo.h"

/* Parse an unsigned number in BASE at *p, advance *p past it. */
static int num(const char **p, int base, uint64_t *v)
{
	char *end;

	while (**p == ' ' || **p == '\t')
		(*p)++;
	if (!**p || **p == '-' || **p == '\n')
		return -EINVAL;
	errno = 0;
	*v = strtoull(*p, &end, base);
	if (errno || end == *p)
		return -EINVAL;
	*p = end;
	return 0;
}

static int num32(const char **p, int base, uint32_t *v)
{
	uint64_t x;
	int ret = num(p, base, &x);

	if (!ret && x > UINT32_MAX)
		ret = -EINVAL;
	if (!ret)
		*v = (uint32_t)x;
	return ret;
}

/* The start of the line "KEY:" in TEXT, just past the colon; NULL if none. */
static const char *line_value(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, klen) && p[klen] == ':')
			return p + klen + 1;
	return NULL;
}

static int key_num(const char *text, const char *key, int base, uint64_t *v)
{
	const char *p = line_value(text, key);

	return p ? num(&p, base, v) : -ENOENT;
}

/* "KEY: (SEC, NSEC)" */
static int key_pair(const char *text, const char *key, uint64_t *a, uint64_t *b)
{
	const char *p = line_value(text, key);
	int ret;

	if (!p)
		return -ENOENT;
	while (*p == ' ')
		p++;
	if (*p++ != '(')
		return -EINVAL;
	ret = num(&p, 10, a);
	if (ret || *p++ != ',')
		return ret ? ret : -EINVAL;
	ret = num(&p, 10, b);
	if (ret || *p != ')')
		return ret ? ret : -EINVAL;
	return *b < 1000000000ULL ? 0 : -EINVAL;
}

int fdi_parse_eventfd(const char *text, struct fdi_eventfd *out)
{
	uint64_t sem;
	int ret;

	ret = key_num(text, "eventfd-count", 16, &out->count);
	if (!ret)
		ret = key_num(text, "eventfd-semaphore", 10, &sem);
	if (!ret && sem > 1)
		ret = -EINVAL;
	if (!ret)
		out->semaphore = sem;
	return ret;
}

int fdi_parse_timerfd(const char *text, struct fdi_timerfd *out)
{
	uint64_t clk, fl;
	int ret;

	ret = key_num(text, "clockid", 10, &clk);
	if (!ret)
		ret = key_num(text, "ticks", 10, &out->ticks);
	if (!ret)
		ret = key_num(text, "settime flags", 8, &fl);
	if (!ret)
		ret = key_pair(text, "it_value", &out->value_sec, &out->value_nsec);
	if (!ret)
		ret = key_pair(text, "it_interval", &out->interval_sec, &out->interval_nsec);
	if (!ret && (clk > INT32_MAX || fl > UINT32_MAX))
		ret = -EINVAL;
	if (!ret) {
		out->clockid = (int32_t)clk;
		out->settime_flags = (uint32_t)fl;
	}
	return ret;
}

int fdi_parse_signalfd(const char *text, uint64_t *sigmask)
{
	return key_num(text, "sigmask", 16, sigmask);
}

/* Advance *P past "KEY:" (KEY right at *p, after spaces); -EINVAL if it is not there. */
static int expect(const char **p, const char *key)
{
	size_t klen = strlen(key);

	while (**p == ' ' || **p == '\t')
		(*p)++;
	if (strncmp(*p, key, klen) || (*p)[klen] != ':')
		return -EINVAL;
	*p += klen + 1;
	return 0;
}

static int epoll_line(const char *p, struct fdi_epoll_item *it)
{
	uint64_t pos = 0;
	int ret;

	ret = expect(&p, "tfd") ?: num32(&p, 10, &it->tfd);
	ret = ret ?: expect(&p, "events") ?: num32(&p, 16, &it->events);
	ret = ret ?: expect(&p, "data") ?: num(&p, 16, &it->data);
	/* pos is the target's f_pos, printed signed (%lli): a negative one is no concern of ours */
	ret = ret ?: expect(&p, "pos");
	if (!ret && *p == '-')
		p++;
	ret = ret ?: num(&p, 10, &pos);
	ret = ret ?: expect(&p, "ino") ?: num(&p, 16, &it->ino);
	ret = ret ?: expect(&p, "sdev") ?: num32(&p, 16, &it->sdev);
	it->pos = pos;
	return ret;
}

/* Append a zeroed element of SIZE to *ARR (of *NR); NULL when out of memory. */
static void *push(void **arr, size_t *nr, size_t size)
{
	char *n = realloc(*arr, (*nr + 1) * size);

	if (!n)
		return NULL;
	*arr = n;
	memset(n + *nr * size, 0, size);
	return n + (*nr)++ * size;
}

int fdi_parse_epoll(const char *text, struct fdi_epoll_item **items, size_t *nr)
{
	int ret = 0;

	*items = NULL;
	*nr = 0;
	for (const char *p = text; !ret && p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		struct fdi_epoll_item *it;

		if (strncmp(p, "tfd:", 4))
			continue;
		it = push((void **)items, nr, sizeof(*it));
		ret = it ? epoll_line(p, it) : -ENOMEM;
	}
	if (ret) {
		free(*items);
		*items = NULL;
		*nr = 0;
	}
	return ret;
}

static int hex_bytes(const char **p, uint8_t *out, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		char b[3] = { (*p)[0], (*p)[0] ? (*p)[1] : 0, 0 };
		char *end;

		out[i] = (uint8_t)strtoul(b, &end, 16);
		if (end != b + 2)
			return -EINVAL;
		*p += 2;
	}
	return 0;
}

static int inotify_line(const char *p, struct fdi_inotify_wd *w)
{
	uint64_t type = 0;
	int ret;

	ret = expect(&p, "inotify wd") ?: num32(&p, 16, &w->wd);
	ret = ret ?: expect(&p, "ino") ?: num(&p, 16, &w->ino);
	ret = ret ?: expect(&p, "sdev") ?: num32(&p, 16, &w->sdev);
	ret = ret ?: expect(&p, "mask") ?: num32(&p, 16, &w->mask);
	ret = ret ?: expect(&p, "ignored_mask") ?: num32(&p, 16, &w->ignored_mask);
	/* No file handle (a filesystem that cannot export one): -ENOENT, for the caller to name. */
	if (!ret && expect(&p, "fhandle-bytes"))
		return -ENOENT;
	ret = ret ?: num32(&p, 16, &w->handle_bytes);
	if (!ret && (w->handle_bytes == 0 || w->handle_bytes > FDI_HANDLE_MAX))
		ret = -EINVAL;
	ret = ret ?: expect(&p, "fhandle-type") ?: num(&p, 16, &type);
	if (!ret && type > INT32_MAX)
		ret = -EINVAL;
	w->handle_type = (int32_t)type;
	ret = ret ?: expect(&p, "f_handle") ?: hex_bytes(&p, w->handle, w->handle_bytes);
	return ret;
}

int fdi_parse_inotify(const char *text, struct fdi_inotify_wd **wds, size_t *nr)
{
	int ret = 0;

	*wds = NULL;
	*nr = 0;
	for (const char *p = text; !ret && p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		struct fdi_inotify_wd *w;

		if (strncmp(p, "inotify wd:", 11))
			continue;
		w = push((void **)wds, nr, sizeof(*w));
		ret = w ? inotify_line(p, w) : -ENOMEM;
	}
	if (ret) {
		free(*wds);
		*wds = NULL;
		*nr = 0;
	}
	return ret;
}

uint64_t fdi_sdev_to_dev(uint32_t sdev)
{
	return makedev(sdev >> 20, sdev & 0xfffff);
}
