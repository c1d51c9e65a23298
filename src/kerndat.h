/*
 * kerndat.h - what this kernel and this process may do, probed once.
 *
 * Probes are cheap and side-effect free: no process is created that runs,
 * no file is written. The result is passed around, never kept globally.
 */
#ifndef LZ_KERNDAT_H
#define LZ_KERNDAT_H

#include <stdbool.h>
#include <stdint.h>

struct lz_kerndat {
	bool ptrace_seize;	   /* PTRACE_SEIZE + PTRACE_INTERRUPT on a child */
	bool ptrace_rseq_conf;	   /* PTRACE_GET_RSEQ_CONFIGURATION (5.13+) */
	bool clone3_set_tid;	   /* clone3 with set_tid (5.5+, CAP_CHECKPOINT_RESTORE) */
	bool pr_set_mm_map;	   /* prctl(PR_SET_MM, PR_SET_MM_MAP) */
	bool kcmp;		   /* kcmp(KCMP_FILE) to find shared open files */
	bool pagemap_pfn;	   /* /proc/PID/pagemap shows PFNs (zero-page detection) */
	bool process_vm_readv;	   /* bulk memory reads */
	bool cap_checkpoint_restore; /* CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN */
	bool cap_sys_resource;	   /* raising hard rlimits; absent on these machines */
	uint32_t xsave_size;	   /* NT_X86_XSTATE size (CPUID 0xd) */
	uint64_t xfeatures;	   /* XCR0 */
	uint64_t vdso_size;	   /* [vdso] bytes */
	uint64_t vvar_size;	   /* [vvar] + [vvar_vclock] bytes */
	bool vvar_vclock;	   /* kernel splits [vvar_vclock] out (6.13+) */
	bool timer_restore_ids;	   /* prctl(PR_TIMER_CREATE_RESTORE_IDS) (6.16+) */
	bool time_ns;		   /* time namespaces (5.6+, CONFIG_TIME_NS) */
};

/* Fill kd. Never fails: what cannot be probed reads as missing. */
void kerndat_probe(struct lz_kerndat *kd);

#endif
