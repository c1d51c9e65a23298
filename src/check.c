/*
 * check.c - `lazarus check`: the kernel features Lazarus uses, one line
 * each; exits non-zero when a required one is missing.
 */
#include <inttypes.h>
#include <stdio.h>

#include <string.h>

#include "cli.h"
#include "kerndat.h"
#include "log.h"
#include "uffd.h"

struct feature {
	const char *name;
	bool ok;
	bool required;
	const char *why; /* what breaks without it */
};

int cli_check(void)
{
	struct lz_kerndat kd;
	struct uffd_kinfo ki;
	char feat[512];
	int missing = 0;

	kerndat_probe(&kd);
	uffd_probe(&ki);
	const struct feature f[] = {
		{ "ptrace-seize", kd.ptrace_seize, true, "cannot freeze a process" },
		{ "ptrace-rseq-config", kd.ptrace_rseq_conf, true, "cannot dump rseq registrations" },
		{ "clone3-set-tid", kd.clone3_set_tid, true, "cannot restore a process with its pid" },
		{ "prctl-set-mm-map", kd.pr_set_mm_map, true, "cannot restore mm fields (brk, auxv, exe)" },
		{ "kcmp", kd.kcmp, true, "cannot tell which fds share an open file" },
		{ "pagemap-pfn", kd.pagemap_pfn, false, "zero pages are dumped as data" },
		{ "process-vm-readv", kd.process_vm_readv, false, "memory is read through /proc/PID/mem" },
		{ "cap-checkpoint-restore", kd.cap_checkpoint_restore, true, "set_tid and PR_SET_MM_MAP refused" },
		{ "cap-sys-resource", kd.cap_sys_resource, false, "hard rlimits above ours cannot be restored" },
		{ "vdso", kd.vdso_size > 0, true, "no vdso to put back" },
		{ "timer-restore-ids", kd.timer_restore_ids, false,
		  "POSIX timer ids restored through placeholder timers (at most 65536 gaps)" },
		{ "time-namespace", kd.time_ns, false,
		  "restore --pidns leaves CLOCK_MONOTONIC/BOOTTIME at this machine's" },
		{ "userfaultfd", ki.usable, false, "no lazy restore (--lazy-pages)" },
		{ "uffd-lazy-events", ki.usable && (ki.features & UFFD_LAZY_REQUIRED) == UFFD_LAZY_REQUIRED,
		  false, "no lazy restore: fork/remap/remove/unmap events missing" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		printf("%-24s %-8s%s%s\n", f[i].name, f[i].ok ? "yes" : "no",
		       f[i].ok ? "" : (f[i].required ? "REQUIRED: " : "optional: "),
		       f[i].ok ? "" : f[i].why);
		if (!f[i].ok && f[i].required)
			missing++;
	}
	printf("%-24s %" PRIu32 " bytes, xcr0 0x%" PRIx64 "\n", "xsave", kd.xsave_size, kd.xfeatures);
	if (ki.usable) {
		uffd_features_str(ki.features, feat, sizeof(feat));
		printf("%-24s %s%s\n", "uffd-features", feat, ki.via_dev ? " (via /dev/userfaultfd)" : "");
	} else {
		printf("%-24s unusable: %s\n", "uffd-features", strerror(-ki.err));
	}
	printf("%-24s vdso %" PRIu64 " KiB, vvar %" PRIu64 " KiB%s\n", "vdso-layout",
	       kd.vdso_size >> 10, kd.vvar_size >> 10, kd.vvar_vclock ? " (with vvar_vclock)" : "");
	if (missing) {
		printf("%d required feature%s missing\n", missing, missing > 1 ? "s" : "");
		return -1;
	}
	printf("Looks good.\n");
	return 0;
}
