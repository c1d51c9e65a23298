/*
 * lazy.c - lazy mode: hand the LZ_BVMA_LAZY VMAs to the userfaultfd.
 *
 * Runs after blob_fill(), so the pages restored eagerly inside a lazy VMA
 * (the page under the stack pointer) are already present and never fault;
 * everything else there is missing and will be served by the lazy-pages
 * daemon. MISSING mode works on private anonymous memory only, which is all
 * the dump marks lazy. The ioctls the kernel returns for the range must
 * include COPY, ZEROPAGE and WAKE, or the daemon could not serve it: then
 * the restore fails rather than leave memory nobody can fill.
 */
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>

#include "blob.h"
#include "sys.h"

#define LAZY_IOCTLS                                                                     \
	((1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE) | (1ULL << _UFFDIO_WAKE))

void blob_register_lazy(struct blob *b)
{
	struct lz_blob_args *a = b->a;

	if (a->uffd < 0)
		return;
	for (uint32_t i = 0; i < a->nr_vmas; i++) {
		struct lz_blob_vma *v = &b->vmas[i];
		struct uffdio_register reg = {
			.range = { .start = v->start, .len = v->end - v->start },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		long r;

		if (!(v->vflags & LZ_BVMA_LAZY))
			continue;
		r = sys_ioctl(a->uffd, UFFDIO_REGISTER, &reg);
		if (r)
			blob_fail(b, LZ_STEP_UFFD, r, i, v->start);
		if ((reg.ioctls & LAZY_IOCTLS) != LAZY_IOCTLS)
			blob_fail(b, LZ_STEP_UFFD, -95 /* EOPNOTSUPP */, i, v->start);
	}
}
