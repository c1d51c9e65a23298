/*
 * dump-mem.h - the memory contents of a process: pagemap-<pid>.img and
 * pages-<pid>.img. Returns 0 or -errno and logs failures once.
 */
#ifndef LZ_DUMP_MEM_H
#define LZ_DUMP_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "dump-img.h"
#include "dump-mm.h"
#include "dump-signals.h"

#define MEM_BLOCK_PAGES 16 /* pages per crc32c block of the pages file (64 KiB) */

struct mem_stats {
	uint64_t pages_scanned;	   /* pagemap entries looked at */
	uint64_t pages_written;	   /* data pages in the pages file */
	uint64_t pages_zero;	   /* present but all-zero: LZ_PE_ZERO runs */
	uint64_t pages_zero_pfn;   /* mapped to the kernel zero page: skipped */
	uint64_t pages_lazy;	   /* pages in LZ_PE_LAZY runs */
	uint64_t nr_runs;	   /* pagemap entries */
	uint64_t bytes_written;	   /* size of the pages file */
};

/*
 * Dump the private memory of MM's VMAs. SP[0..NR_SP) are the stack
 * pointers of the process's threads: their pages are never lazy. With
 * PROGRESS, a line per ~5% goes to stderr. SIG is polled before each
 * batch: -EINTR when a stop signal came.
 */
int mem_dump(const struct mm_dump *mm, const uint64_t *sp, size_t nr_sp, bool progress,
	     struct dump_imgs *imgs, struct mem_stats *st, struct dump_sig *sig);

#endif
