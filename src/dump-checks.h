/*
 * dump-checks.h - refusals of the checks phase for state that Lazarus can
 * neither restore nor leave out: file locks and leases, a
 * controlling terminal, namespaces other than lazarus's own, an auxv larger
 * than the restorer can take. Documentation/state.md lists every item.
 */
#ifndef LZ_DUMP_CHECKS_H
#define LZ_DUMP_CHECKS_H

#include <stdbool.h>
#include <sys/types.h>

#include "dump-ns.h"
#include "ptrace.h"

/*
 * Runs on the frozen process, before anything is injected or written.
 * Returns 0, or -EOPNOTSUPP after one error line naming the pid and what is
 * not supported (another -errno if /proc could not be read).
 * SESSION_IN_TREE: the process's session is led by a process of the dumped
 * tree (else it must lead its own). NS: the tree's pid and mount namespace
 * (dump-ns.h), expected instead of lazarus's own; NULL: lazarus's.
 */
int dump_check_state(pid_t pid, bool session_in_tree, const struct dump_ns *ns);

/*
 * NUMA memory policies, refused like the above but asked by get_mempolicy
 * injected into T (the leader, with its scratch page): its task policy and
 * that of each of the N VMAs starting at ADDRS. Cheaper than numa_maps,
 * which walks every page table entry; that is read only if an answer is
 * not the default, for the refusal's message.
 */
int dump_check_numa_injected(struct tracee *t, const uint64_t *addrs, size_t n);

#endif
