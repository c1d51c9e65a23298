/*
 * dump-seccomp.h - a thread's seccomp mode and filter chain.
 */
#ifndef LZ_DUMP_SECCOMP_H
#define LZ_DUMP_SECCOMP_H

#include <stdint.h>

#include "core.pb-c.h"
#include "ptrace.h"

#define SECCOMP_MAX_FILTERS 64

struct seccomp_dump {
	uint32_t mode;		       /* 0 none, 1 strict, 2 filter */
	uint32_t nr;		       /* filters, oldest first */
	uint8_t *prog[SECCOMP_MAX_FILTERS]; /* struct sock_filter[len[i]] */
	uint32_t len[SECCOMP_MAX_FILTERS];
	uint32_t flags[SECCOMP_MAX_FILTERS];
};

/* Mode and filters of the frozen thread T; refuses (one line) what cannot be dumped. */
int seccomp_collect(struct seccomp_dump *s, struct tracee *t);
/* Fill E (storage in the three arrays, SECCOMP_MAX_FILTERS each); E absent for mode 0. */
void seccomp_to_core(const struct seccomp_dump *s, CoreEntry *core, SeccompEntry *e,
		     SeccompFilterEntry *f, SeccompFilterEntry **fp);
void seccomp_fini(struct seccomp_dump *s);

#endif
