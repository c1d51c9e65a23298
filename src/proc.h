/*
 * proc.h - reading and parsing /proc/PID files (the dump, and small reads
 * by restore and the lazy-pages daemon).
 *
 * The parsers take the file's text, so unit tests feed them fixed strings;
 * proc_read() and proc_readlink() fetch the text. All return 0 or -errno
 * (-EINVAL for text they cannot parse) and do not log.
 */
#ifndef LZ_PROC_H
#define LZ_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* VmFlags of /proc/PID/smaps that the dump looks at. */
#define PROC_VMF_GD 0x0001U /* growsdown */
#define PROC_VMF_HT 0x0002U /* hugetlb */
#define PROC_VMF_HG 0x0004U /* MADV_HUGEPAGE */
#define PROC_VMF_NH 0x0008U /* MADV_NOHUGEPAGE */
#define PROC_VMF_DD 0x0010U /* MADV_DONTDUMP */
#define PROC_VMF_DC 0x0020U /* MADV_DONTFORK */
#define PROC_VMF_WF 0x0040U /* MADV_WIPEONFORK */
#define PROC_VMF_LO 0x0080U /* mlock()ed */
#define PROC_VMF_MG 0x0100U /* MADV_MERGEABLE */
#define PROC_VMF_SR 0x0200U /* MADV_SEQUENTIAL */
#define PROC_VMF_RR 0x0400U /* MADV_RANDOM */
#define PROC_VMF_IO 0x0800U /* VM_IO: device memory */
#define PROC_VMF_PF 0x1000U /* VM_PFNMAP: raw PFNs, no struct page */
#define PROC_VMF_NR 0x2000U /* VM_NORESERVE: MAP_NORESERVE, no swap accounting */
#define PROC_VMF_MW 0x4000U /* VM_MAYWRITE: may become writable (shared: file open for writing) */

/* One line of /proc/PID/maps (plus VmFlags when parsed from smaps). */
struct proc_vma {
	uint64_t start, end;
	uint64_t pgoff;	    /* file offset in bytes */
	uint32_t prot;	    /* PROT_* from the perms column */
	bool shared;	    /* 's' in the perms column */
	uint32_t dev_major, dev_minor;
	uint64_t ino;
	uint32_t vmflags;   /* PROC_VMF_* (smaps only) */
	bool has_usage;	    /* anon_kb and swap_kb were in the text (smaps) */
	uint64_t anon_kb;   /* "Anonymous:": anonymous pages, also CoW copies of file pages */
	uint64_t swap_kb;   /* "Swap:" */
	char *path;	    /* text after the inode column ("" if none), malloc'd */
};

struct proc_vmas {
	struct proc_vma *v;
	size_t nr;
};

/* Parse /proc/PID/maps or /proc/PID/smaps text into address-ordered VMAs. */
/*
 * Read at most size - 1 bytes of a small file (a /proc status line, say)
 * into buf, NUL-terminated. Returns the length read or -errno.
 */
ssize_t proc_read_small(const char *path, char *buf, size_t size);

int proc_parse_maps(const char *text, struct proc_vmas *out);
void proc_vmas_free(struct proc_vmas *vmas);
/* The PROC_VMF_* bits of a "VmFlags:" value ("rd wr mr ..."). */
uint32_t proc_parse_vmflags(const char *s);

/* The fields of /proc/PID/stat the dump uses (numbers are the man page's). */
struct proc_stat {
	char state;		       /* 3 */
	int ppid, pgrp, session;       /* 4, 5, 6 */
	int tty_nr, tpgid;	       /* 7, 8: the controlling terminal (0: none), its
					  foreground group (-1: none) */
	long num_threads;	       /* 20 */
	uint64_t start_code, end_code; /* 26, 27 */
	uint64_t start_stack;	       /* 28 */
	uint64_t start_data, end_data; /* 45, 46 */
	uint64_t start_brk;	       /* 47 */
	uint64_t arg_start, arg_end;   /* 48, 49 */
	uint64_t env_start, env_end;   /* 50, 51 */
	int exit_code;		       /* 52: a zombie's wait status (0 if absent) */
};

int proc_parse_stat(const char *text, struct proc_stat *st);

/* Value of "KEY:\t<number>" in /proc/PID/status-like text, in BASE. */
int proc_parse_status_num(const char *text, const char *key, int base, uint64_t *val);
/* This process's peak resident set (VmHWM of /proc/self/status), KiB; 0 if unknown. */
uint64_t proc_self_hwm_kib(void);

/* pos and flags (octal in the file) of /proc/PID/fdinfo/N. */
int proc_parse_fdinfo(const char *text, uint64_t *pos, uint32_t *flags);

#define PROC_NR_RLIMITS 16 /* RLIM_NLIMITS of x86_64 */

struct proc_rlimit {
	uint64_t cur, max; /* RLIM_INFINITY is ~0 */
};

/* /proc/PID/limits text into lim[RLIMIT_*]; every resource must be found. */
int proc_parse_limits(const char *text, struct proc_rlimit lim[PROC_NR_RLIMITS]);

/*
 * Read /proc/PID/NAME (or /proc/NAME with pid 0) whole, NUL-terminated,
 * into *text (malloc'd); *len (if not NULL) gets the byte count.
 */
int proc_read(pid_t pid, const char *name, char **text, size_t *len);
/* readlink /proc/PID/NAME into buf (NUL-terminated); -ENAMETOOLONG if cut. */
int proc_readlink(pid_t pid, const char *name, char *buf, size_t size);

#endif
