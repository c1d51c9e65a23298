/*
 * dump-creds.h - the credentials of one thread (the creds_entry of its
 * core-<tid>.img): uids and gids (real, effective, saved, fs), supplementary
 * groups, the five capability sets and the securebits. Functions return 0 or
 * -errno; creds_collect*() log failures once, the parser does not log.
 */
#ifndef LZ_DUMP_CREDS_H
#define LZ_DUMP_CREDS_H

#include <stdint.h>
#include <sys/types.h>

#include "core.pb-c.h"
#include "ptrace.h"

enum { CREDS_REAL, CREDS_EFF, CREDS_SAVED, CREDS_FS, CREDS_NR_IDS };
enum { CREDS_INH, CREDS_PRM, CREDS_EFFC, CREDS_BND, CREDS_AMB, CREDS_NR_CAPS };

struct creds_dump {
	uint32_t uid[CREDS_NR_IDS]; /* as the Uid: line orders them */
	uint32_t gid[CREDS_NR_IDS];
	uint32_t *groups; /* malloc'd, sorted as the kernel keeps them */
	uint32_t nr_groups;
	uint64_t cap[CREDS_NR_CAPS]; /* CapInh, CapPrm, CapEff, CapBnd, CapAmb */
	uint32_t securebits;
};

/* Parse the Uid/Gid/Groups/Cap* lines of /proc/PID/status text (-EINVAL if bad). */
int creds_parse_status(const char *text, struct creds_dump *c);
/* Read /proc/PID/task/TID/status of a frozen thread. */
int creds_collect(struct creds_dump *c, pid_t tid);
/*
 * The raw result R of prctl(PR_GET_SECUREBITS) injected into thread TID
 * (only the thread itself can ask; dump-core.c batches it): kept, or the
 * error logged and returned.
 */
int creds_take_securebits(struct creds_dump *c, pid_t tid, int64_t r);
/* Point E's fields at C (E borrows C's group array). */
void creds_to_entry(const struct creds_dump *c, CredsEntry *e);
void creds_fini(struct creds_dump *c);

#endif
