/*
 * layout.c - where things go: this process's mappings, the hole for the
 * bootstrap area, and whether the dumped vdso and xsave layout fit this
 * kernel and CPU.
 */
#include <cpuid.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler.h"
#include "plugin.h"

#define HOLE_ALIGN (2UL << 20)
#define HOLE_LOW (16UL << 20) /* stay clear of low, mmap_min_addr-ish space */

int plg_self_maps(struct plg_range **out, size_t *nr)
{
	struct plg_range *r = NULL;
	size_t n = 0, cap = 0;
	char line[512];
	FILE *f;

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		uint64_t s, e;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &s, &e) != 2 || s >= LZ_BLOB_TASK_SIZE)
			continue;
		if (n == cap) {
			struct plg_range *nr_ = realloc(r, (cap = cap ? cap * 2 : 64) * sizeof(*r));

			if (!nr_) {
				free(r);
				fclose(f);
				return -ENOMEM;
			}
			r = nr_;
		}
		r[n++] = (struct plg_range){ s, e };
	}
	fclose(f);
	*out = r;
	*nr = n;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct plg_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * The middle of the largest gap between what is mapped now and what the
 * target maps: far from both, so the area blocks neither brk() nor stack
 * growth of the target while it exists (until the lazarus parent unmaps it,
 * right after rt_sigreturn).
 */
int plg_find_hole(const MmEntry *mm, uint64_t size, uint64_t *addr, char *why, size_t len)
{
	struct plg_range *r;
	size_t n, total;
	uint64_t best = 0, best_len = 0, prev = HOLE_LOW;
	int ret = plg_self_maps(&r, &n);

	if (ret) {
		snprintf(why, len, "read /proc/self/maps: %s", strerror(-ret));
		return ret;
	}
	total = n + mm->n_vmas + 1;
	struct plg_range *all = realloc(r, total * sizeof(*r));
	if (!all) {
		free(r);
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < mm->n_vmas; i++)
		if (mm->vmas[i]->start < LZ_BLOB_TASK_SIZE) /* not [vsyscall] */
			all[n++] = (struct plg_range){ mm->vmas[i]->start, mm->vmas[i]->end };
	all[n++] = (struct plg_range){ LZ_BLOB_TASK_SIZE, LZ_BLOB_TASK_SIZE };
	qsort(all, n, sizeof(*all), range_cmp);
	for (size_t i = 0; i < n; i++) {
		if (all[i].start > prev && all[i].start - prev > best_len) {
			best = prev;
			best_len = all[i].start - prev;
		}
		prev = MAX(prev, all[i].end);
	}
	free(all);
	if (best_len < size + 2 * HOLE_ALIGN) {
		snprintf(why, len, "no hole of %" PRIu64 " KiB for the restorer", size >> 10);
		return -ENOMEM;
	}
	*addr = ALIGN_DOWN(best + (best_len - size) / 2, HOLE_ALIGN);
	return 0;
}

struct vdso_sizes {
	uint64_t vvar, vclock, vdso;
};

static int runtime_vdso(struct vdso_sizes *s)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");

	memset(s, 0, sizeof(*s));
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		uint64_t a, b;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &a, &b) != 2)
			continue;
		if (strstr(line, "[vvar]"))
			s->vvar = b - a;
		else if (strstr(line, "[vvar_vclock]"))
			s->vclock = b - a;
		else if (strstr(line, "[vdso]"))
			s->vdso = b - a;
	}
	fclose(f);
	return 0;
}

/* Dumped vdso pieces; *contiguous tells whether they follow each other in order. */
static void dumped_vdso(const MmEntry *mm, struct vdso_sizes *s, uint64_t *start, bool *contiguous)
{
	uint64_t next = 0;

	memset(s, 0, sizeof(*s));
	*start = 0;
	*contiguous = true;
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];
		uint64_t *slot = v->kind == VMA_KIND__VMA_VVAR	       ? &s->vvar
				 : v->kind == VMA_KIND__VMA_VVAR_VCLOCK ? &s->vclock
				 : v->kind == VMA_KIND__VMA_VDSO	       ? &s->vdso
									       : NULL;

		if (!slot)
			continue;
		if (!*start)
			*start = v->start;
		else if (v->start != next)
			*contiguous = false;
		if (*slot)
			*contiguous = false; /* the same piece twice */
		*slot += v->end - v->start;
		next = v->end;
	}
}

void plg_vdso_range(const MmEntry *mm, uint64_t *start, uint64_t *len)
{
	struct vdso_sizes d;
	bool contiguous;

	dumped_vdso(mm, &d, start, &contiguous);
	*len = d.vvar + d.vclock + d.vdso;
}

/*
 * The blob asks the kernel for a fresh vdso at the dumped [vvar] address
 * (ARCH_MAP_VDSO_64), which lays out vvar, vvar_vclock and vdso back to back.
 * That is only right if the dump had the same pieces, in that order, of the
 * same sizes; the code inside is assumed to be this kernel's (glibc caches
 * vdso function addresses).
 */
int plg_check_vdso(const MmEntry *mm, char *why, size_t len)
{
	struct vdso_sizes d, rt;
	uint64_t start;
	bool contiguous;
	int ret;

	dumped_vdso(mm, &d, &start, &contiguous);
	if (!d.vvar && !d.vclock && !d.vdso)
		return 0;
	ret = runtime_vdso(&rt);
	if (ret) {
		snprintf(why, len, "read /proc/self/maps: %s", strerror(-ret));
		return ret;
	}
	if (!contiguous || !d.vvar || !d.vdso || (d.vvar & 0xfff)) {
		snprintf(why, len, "vdso at %#" PRIx64 " is not [vvar][vvar_vclock][vdso] back to back",
			 start);
		return -EINVAL;
	}
	if (d.vvar != rt.vvar || d.vclock != rt.vclock || d.vdso != rt.vdso) {
		snprintf(why, len,
			 "dumped vdso (vvar %" PRIu64 "K, vvar_vclock %" PRIu64 "K, vdso %" PRIu64
			 "K) differs from this kernel's (%" PRIu64 "K, %" PRIu64 "K, %" PRIu64 "K)",
			 d.vvar >> 10, d.vclock >> 10, d.vdso >> 10, rt.vvar >> 10, rt.vclock >> 10,
			 rt.vdso >> 10);
		return -EINVAL;
	}
	return 0;
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/*
 * The xsave image is in the standard (non-compacted) format whose offsets
 * CPUID defines. Restoring it needs the same enabled features and the same
 * size as on the dumping host.
 */
int plg_check_cpu(uint32_t xsave_size, uint64_t xfeatures, char *why, size_t len)
{
	unsigned int eax, ebx, ecx, edx;
	uint64_t xcr0;

	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) {
		snprintf(why, len, "this CPU has no XSAVE");
		return -EOPNOTSUPP;
	}
	__cpuid_count(0xd, 0, eax, ebx, ecx, edx);
	xcr0 = xgetbv0();
	if (xfeatures & ~xcr0) {
		snprintf(why, len, "dumped xfeatures %#" PRIx64 " not enabled on this CPU (%#" PRIx64 ")",
			 xfeatures, xcr0);
		return -EOPNOTSUPP;
	}
	if (xsave_size != ebx) {
		snprintf(why, len, "dumped xsave size %u differs from this CPU's %u", xsave_size, ebx);
		return -EOPNOTSUPP;
	}
	return 0;
}
