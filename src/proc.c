/*
 * proc.c - parsers for the /proc/PID files the dump reads.
 *
 * Formats are the kernel's (fs/proc/task_mmu.c, array.c, fd.c, base.c):
 * maps lines are "start-end perms offset major:minor inode   path", smaps
 * adds "Key: value" lines after each, stat fields follow the last ')' of
 * the comm, fdinfo flags are octal, limits is a fixed-width table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proc.h"

/* ------------------------------------------------------------ reading */

ssize_t proc_read_small(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	if (!size)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = -errno;
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

int proc_read(pid_t pid, const char *name, char **text, size_t *len)
{
	size_t cap = 8192, got = 0;
	char path[64], *buf;
	int fd, ret = 0;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	else
		snprintf(path, sizeof(path), "/proc/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		goto out_close;
	}
	for (;;) {
		ssize_t n;

		if (cap - got < 4096) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				ret = -ENOMEM;
				goto out_free;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + got, cap - got - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*text = buf;
	if (len)
		*len = got;
	close(fd);
	return 0;

out_free:
	free(buf);
out_close:
	close(fd);
	return ret;
}

int proc_readlink(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	n = readlink(path, buf, size);
	if (n < 0)
		return -errno;
	if ((size_t)n >= size)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------ helpers */

/* Parse an unsigned number in BASE at *p, advance *p past it. */
static int parse_u64(const char **p, int base, uint64_t *v)
{
	char *end;

	if (!**p || **p == '-' || **p == ' ' || **p == '\n')
		return -EINVAL;
	errno = 0;
	*v = strtoull(*p, &end, base);
	if (errno || end == *p)
		return -EINVAL;
	*p = end;
	return 0;
}

static void skip_spaces(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* ------------------------------------------------------------ maps */

static const struct {
	char name[3];
	uint32_t bit;
} vmflag_names[] = {
	{ "gd", PROC_VMF_GD }, { "ht", PROC_VMF_HT }, { "hg", PROC_VMF_HG },
	{ "nh", PROC_VMF_NH }, { "dd", PROC_VMF_DD }, { "dc", PROC_VMF_DC },
	{ "wf", PROC_VMF_WF }, { "lo", PROC_VMF_LO }, { "mg", PROC_VMF_MG },
	{ "sr", PROC_VMF_SR }, { "rr", PROC_VMF_RR }, { "io", PROC_VMF_IO },
	{ "pf", PROC_VMF_PF }, { "nr", PROC_VMF_NR }, { "mw", PROC_VMF_MW },
};

uint32_t proc_parse_vmflags(const char *s)
{
	uint32_t bits = 0;

	/* Two-letter mnemonics separated by single spaces, up to the line end. */
	while (*s && *s != '\n') {
		if (*s == ' ') {
			s++;
			continue;
		}
		if (s[1] && s[1] != ' ' && s[1] != '\n' && (s[2] == ' ' || s[2] == '\n' || !s[2])) {
			for (size_t i = 0; i < sizeof(vmflag_names) / sizeof(vmflag_names[0]); i++)
				if (s[0] == vmflag_names[i].name[0] && s[1] == vmflag_names[i].name[1])
					bits |= vmflag_names[i].bit;
		}
		while (*s && *s != ' ' && *s != '\n')
			s++;
	}
	return bits;
}

static int parse_perms(const char **p, struct proc_vma *v)
{
	const char *s = *p;

	if (strlen(s) < 5 || s[4] != ' ')
		return -EINVAL;
	v->prot = (s[0] == 'r' ? PROT_READ : 0) | (s[1] == 'w' ? PROT_WRITE : 0) |
		  (s[2] == 'x' ? PROT_EXEC : 0);
	if (s[3] != 's' && s[3] != 'p')
		return -EINVAL;
	v->shared = s[3] == 's';
	*p = s + 5;
	return 0;
}

/* One maps header line at p (up to '\n' or NUL). */
static int parse_maps_line(const char *p, struct proc_vma *v)
{
	uint64_t maj, min;
	const char *eol;
	size_t n;

	memset(v, 0, sizeof(*v));
	if (parse_u64(&p, 16, &v->start) || *p++ != '-' || parse_u64(&p, 16, &v->end) ||
	    *p++ != ' ' || v->end <= v->start)
		return -EINVAL;
	if (parse_perms(&p, v) || parse_u64(&p, 16, &v->pgoff) || *p++ != ' ')
		return -EINVAL;
	if (parse_u64(&p, 16, &maj) || *p++ != ':' || parse_u64(&p, 16, &min) || *p++ != ' ')
		return -EINVAL;
	v->dev_major = (uint32_t)maj;
	v->dev_minor = (uint32_t)min;
	if (parse_u64(&p, 10, &v->ino))
		return -EINVAL;
	skip_spaces(&p);
	eol = strchr(p, '\n');
	n = eol ? (size_t)(eol - p) : strlen(p);
	v->path = strndup(p, n);
	return v->path ? 0 : -ENOMEM;
}

/* A "Key: value" line of smaps, for the VMA before it. */
static int parse_smaps_line(const char *p, struct proc_vma *v)
{
	if (!strncmp(p, "VmFlags:", 8)) {
		v->vmflags = proc_parse_vmflags(p + 8);
		return 0;
	}
	if (!strncmp(p, "Anonymous:", 10)) {
		p += 10;
		skip_spaces(&p);
		v->has_usage = true;
		return parse_u64(&p, 10, &v->anon_kb);
	}
	if (!strncmp(p, "Swap:", 5)) {
		p += 5;
		skip_spaces(&p);
		return parse_u64(&p, 10, &v->swap_kb);
	}
	return 0;
}

static bool is_header_line(const char *p)
{
	/* smaps key lines start with a capital letter; headers with a hex digit. */
	return (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
}

static int vmas_push(struct proc_vmas *out, size_t *cap, const struct proc_vma *v)
{
	if (out->nr == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct proc_vma *nv = realloc(out->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		out->v = nv;
		*cap = nc;
	}
	out->v[out->nr++] = *v;
	return 0;
}

int proc_parse_maps(const char *text, struct proc_vmas *out)
{
	const char *p = text;
	size_t cap = 0;
	int ret = 0;

	out->v = NULL;
	out->nr = 0;
	while (*p) {
		const char *eol = strchr(p, '\n');

		if (is_header_line(p)) {
			struct proc_vma v;

			ret = parse_maps_line(p, &v);
			if (!ret && out->nr && v.start < out->v[out->nr - 1].end)
				ret = -EINVAL; /* not address-ordered */
			if (!ret)
				ret = vmas_push(out, &cap, &v);
			if (ret) {
				free(v.path);
				break;
			}
		} else if (!out->nr) {
			ret = -EINVAL; /* smaps lines before any VMA */
			break;
		} else {
			ret = parse_smaps_line(p, &out->v[out->nr - 1]);
			if (ret)
				break;
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	if (ret)
		proc_vmas_free(out);
	return ret;
}

void proc_vmas_free(struct proc_vmas *vmas)
{
	for (size_t i = 0; i < vmas->nr; i++)
		free(vmas->v[i].path);
	free(vmas->v);
	vmas->v = NULL;
	vmas->nr = 0;
}

/* ------------------------------------------------------------ stat */

/* Field number (1-based, as in proc(5)) -> destination, for fields after comm. */
static int stat_store(struct proc_stat *st, int field, const char *tok)
{
	uint64_t v;
	const char *p = tok;

	if (field == 3) {
		st->state = tok[0];
		return 0;
	}
	if (*p == '-')
		p++; /* a few fields (nice, ...) may be negative; we only keep positive ones */
	if (parse_u64(&p, 10, &v))
		return -EINVAL;
	switch (field) {
	case 4: st->ppid = (int)v; break;
	case 5: st->pgrp = (int)v; break;
	case 6: st->session = (int)v; break;
	case 7: st->tty_nr = (int)v; break;
	case 8: st->tpgid = tok[0] == '-' ? -1 : (int)v; break;
	case 20: st->num_threads = (long)v; break;
	case 26: st->start_code = v; break;
	case 27: st->end_code = v; break;
	case 28: st->start_stack = v; break;
	case 45: st->start_data = v; break;
	case 46: st->end_data = v; break;
	case 47: st->start_brk = v; break;
	case 48: st->arg_start = v; break;
	case 49: st->arg_end = v; break;
	case 50: st->env_start = v; break;
	case 51: st->env_end = v; break;
	case 52: st->exit_code = (int)v; break;
	}
	return 0;
}

int proc_parse_stat(const char *text, struct proc_stat *st)
{
	/* comm may hold spaces and ')': the fields resume after the last ')'. */
	const char *p = strrchr(text, ')');
	int field = 3;

	memset(st, 0, sizeof(*st));
	if (!p || p[1] != ' ')
		return -EINVAL;
	p += 2;
	while (*p && *p != '\n' && field <= 52) {
		char tok[32];
		size_t n = strcspn(p, " \n");

		if (n == 0 || n >= sizeof(tok))
			return -EINVAL;
		memcpy(tok, p, n);
		tok[n] = '\0';
		if (stat_store(st, field, tok))
			return -EINVAL;
		field++;
		p += n;
		if (*p == ' ')
			p++;
	}
	return field > 51 ? 0 : -EINVAL;
}

/* ------------------------------------------------------------ status, fdinfo */

int proc_parse_status_num(const char *text, const char *key, int base, uint64_t *val)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == ':') {
			p += klen + 1;
			skip_spaces(&p);
			return parse_u64(&p, base, val);
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENOENT;
}

uint64_t proc_self_hwm_kib(void)
{
	char buf[4096];
	uint64_t v = 0;

	if (proc_read_small("/proc/self/status", buf, sizeof(buf)) > 0)
		proc_parse_status_num(buf, "VmHWM", 10, &v);
	return v;
}

int proc_parse_fdinfo(const char *text, uint64_t *pos, uint32_t *flags)
{
	uint64_t f;
	int ret;

	ret = proc_parse_status_num(text, "pos", 10, pos);
	if (ret)
		return ret == -ENOENT ? -EINVAL : ret;
	ret = proc_parse_status_num(text, "flags", 8, &f);
	if (ret)
		return ret == -ENOENT ? -EINVAL : ret;
	*flags = (uint32_t)f;
	return 0;
}

/* ------------------------------------------------------------ limits */

/* Row names of /proc/PID/limits, in RLIMIT_* order (fs/proc/base.c lnames). */
static const char *const limit_names[PROC_NR_RLIMITS] = {
	"Max cpu time",		"Max file size",	"Max data size",
	"Max stack size",	"Max core file size",	"Max resident set",
	"Max processes",	"Max open files",	"Max locked memory",
	"Max address space",	"Max file locks",	"Max pending signals",
	"Max msgqueue size",	"Max nice priority",	"Max realtime priority",
	"Max realtime timeout",
};

static int parse_limit_value(const char **p, uint64_t *v)
{
	skip_spaces(p);
	if (!strncmp(*p, "unlimited", 9)) {
		*v = ~0ULL;
		*p += 9;
		return 0;
	}
	return parse_u64(p, 10, v);
}

int proc_parse_limits(const char *text, struct proc_rlimit lim[PROC_NR_RLIMITS])
{
	unsigned found = 0;
	const char *p = text;

	while (p && *p) {
		for (int r = 0; r < PROC_NR_RLIMITS; r++) {
			size_t n = strlen(limit_names[r]);
			const char *q = p + n;

			/* Names are padded to 25 columns; "Max file size" vs "Max file locks". */
			if (strncmp(p, limit_names[r], n) || q[0] != ' ' || q[1] != ' ')
				continue;
			if (parse_limit_value(&q, &lim[r].cur) || parse_limit_value(&q, &lim[r].max))
				return -EINVAL;
			found |= 1U << r;
			break;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return found == (1U << PROC_NR_RLIMITS) - 1 ? 0 : -EINVAL;
}
