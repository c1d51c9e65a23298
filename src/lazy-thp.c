/*
 * lazy-thp.c - huge pages back after a lazy restore.
 *
 * UFFDIO_COPY places 4 KiB pages only, so a process whose memory was
 * backed by transparent huge pages would run on small pages after a lazy
 * restore, and on this kind of VM every first access to a page installed by
 * someone else costs a few microseconds (make bench: read_after_copy), per
 * 4 KiB page instead of per 2 MiB. Eager restore keeps them: the blob sets
 * MADV_HUGEPAGE before it fills (plugin/blob/mem.c), so its
 * MADV_POPULATE_WRITE allocates huge pages.
 *
 * Once every page of a process is in place, the daemon collapses the
 * aligned 2 MiB ranges of each of its lazy VMAs that carry MADV_HUGEPAGE
 * ("hg" in VmFlags: the blob restored the dumped advice, so these are the
 * VMAs the original asked huge pages for) with process_madvise(MADV_COLLAPSE).
 * It first unregisters those VMAs from the userfaultfd: the kernel refuses
 * to collapse a range of a uffd-armed VMA that has an empty PTE (a page
 * never dumped), and nothing is outstanding there any more. Collapsing
 * copies each range once into a huge page; the process runs on meanwhile.
 * Best effort: a failure is logged, the memory stays right.
 */
#define LOG_PREFIX "lazy-pages: "

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lazy-int.h"
#include "log.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

#define HPAGE (2ULL << 20)
#define THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"

/* THP not "[never]": the kernel may back memory with huge pages. */
bool lz_thp_available(void)
{
	char buf[128] = "";
	FILE *f = fopen(THP_ENABLED, "re");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, sizeof(buf), f) && !strstr(buf, "[never]");
	fclose(f);
	return ok;
}

/* Does [start, end) hold a lazy run of p (a VMA the daemon served)? */
static bool lazy_vma(const struct lpi *p, uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < p->lay.nr; i++)
		if (p->lay.v[i].start < end && lr_end(&p->lay.v[i]) > start)
			return true;
	return false;
}

static void collapse_vma(struct lpi *p, uint64_t start, uint64_t end, uint64_t *huge)
{
	uint64_t lo = ALIGN_UP(start, HPAGE), hi = ALIGN_DOWN(end, HPAGE);
	struct iovec iov = { (void *)(uintptr_t)lo, hi - lo };
	long r;

	if (hi <= lo)
		return;
	/* Nothing is outstanding: the VMA needs the userfaultfd no more. */
	if (uffd_unregister(p->uffd, start, end - start))
		pr_debug("%s: UFFDIO_UNREGISTER 0x%" PRIx64 "-0x%" PRIx64 ": %s", p->name, start,
			 end, strerror(errno));
	r = syscall(SYS_process_madvise, p->pidfd, &iov, 1, MADV_COLLAPSE, 0);
	if (r < 0)
		pr_info("%s: MADV_COLLAPSE 0x%" PRIx64 "-0x%" PRIx64 ": %s; it stays on small pages",
			p->name, lo, hi, strerror(errno));
	else
		*huge += (uint64_t)r / HPAGE;
}

void lpi_thp_collapse(struct lpi *p)
{
	uint64_t start = 0, end = 0, huge = 0, t0 = lz_now_ns();
	bool anon = false;
	char path[64], line[512];
	FILE *f;

	if (p->pidfd < 0 || p->uffd < 0 || !p->d->thp)
		return;
	snprintf(path, sizeof(path), "/proc/%d/smaps", p->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e, ino;
		char perms[8];
		int n = 0;

		/* "start-end perms offset dev inode [path]" opens each VMA. */
		if (sscanf(line, "%llx-%llx %7s %*x %*x:%*x %llu %n", &s, &e, perms, &ino, &n) >= 4 &&
		    n > 0) {
			start = s;
			end = e;
			anon = ino == 0 && perms[3] == 'p';
			continue;
		}
		if (strncmp(line, "VmFlags:", 8) || !anon || !strstr(line, " hg") ||
		    !lazy_vma(p, start, end))
			continue;
		collapse_vma(p, start, end, &huge);
	}
	fclose(f);
	p->sh->st.thp_collapsed += huge;
	if (huge)
		pr_info("%s: %" PRIu64 " huge pages collapsed (MADV_HUGEPAGE memory) in %" PRIu64
			" ms", p->name, huge, (lz_now_ns() - t0) / 1000000);
}
