/*
 * dump-mm.c - the VMAs of a process and the mm fields around them.
 *
 * Each VMA of /proc/PID/smaps becomes a vma_entry of one kind (anonymous
 * private, private or shared regular file, shared memory object,
 * vdso/vvar/vvar_vclock/vsyscall). Shared memory (MAP_SHARED|MAP_ANONYMOUS,
 * memfd, SysV shm) is only recognised here, by its maps name; dump-shmem.c
 * gathers the objects of the whole tree. Anything else is refused with one
 * line naming the mapping, before any image is written: named shared
 * anonymous memory, hugetlb, device mappings, unknown special mappings, a
 * deleted file that still has a name elsewhere (a hard link). Files are
 * identified through /proc/PID/map_files, which names the mapped inode even
 * if its path has changed. A mapping of a deleted file (no link left) is
 * marked so: dump-delmap.c saves its content once in files.img's terms.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "as-owner.h"
#include "dump-mm.h"
#include "mm.pb-c.h"
#include "shmem.pb-c.h"

#define AT_NULL_TYPE 0

static const struct {
	uint32_t vmf;
	uint32_t madv;
} madv_map[] = {
	{ PROC_VMF_HG, LZ_MADV_HUGEPAGE },   { PROC_VMF_NH, LZ_MADV_NOHUGEPAGE },
	{ PROC_VMF_DD, LZ_MADV_DONTDUMP },   { PROC_VMF_DC, LZ_MADV_DONTFORK },
	{ PROC_VMF_WF, LZ_MADV_WIPEONFORK }, { PROC_VMF_LO, LZ_MADV_LOCKED },
	{ PROC_VMF_MG, LZ_MADV_MERGEABLE },  { PROC_VMF_SR, LZ_MADV_SEQUENTIAL },
	{ PROC_VMF_RR, LZ_MADV_RANDOM },
};

static const struct {
	const char *name;
	int kind;
} special_vmas[] = {
	{ "[vdso]", VMA_KIND__VMA_VDSO },
	{ "[vvar]", VMA_KIND__VMA_VVAR },
	{ "[vvar_vclock]", VMA_KIND__VMA_VVAR_VCLOCK },
	{ "[vsyscall]", VMA_KIND__VMA_VSYSCALL },
};

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* The one refusal message for a mapping: "<what> at <start>-<end>: not supported yet". */
static __printf(3, 4) int refuse(pid_t pid, const struct proc_vma *v, const char *fmt, ...)
{
	char what[PATH_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pr_err("process %d: %s at %" PRIx64 "-%" PRIx64 ": not supported yet", pid, what,
	       v->start, v->end);
	return -EOPNOTSUPP;
}

/* [name] mappings: the vdso family, or anonymous memory with a name. */
static int classify_bracketed(pid_t pid, const struct proc_vma *v, struct dump_vma *d)
{
	for (size_t i = 0; i < ARRAY_SIZE(special_vmas); i++) {
		if (!strcmp(v->path, special_vmas[i].name)) {
			d->kind = special_vmas[i].kind;
			break;
		}
	}
	if (!d->kind) {
		bool anon = !strcmp(v->path, "[heap]") || !strcmp(v->path, "[stack]") ||
			    starts_with(v->path, "[anon:");

		if (starts_with(v->path, "[anon_shmem:") || (anon && v->shared))
			return refuse(pid, v, "shared memory (%s)", v->path);
		if (!anon)
			return refuse(pid, v, "unknown mapping %s", v->path);
		d->kind = VMA_KIND__VMA_ANON;
		d->flags |= MAP_ANONYMOUS;
	}
	d->name = strdup(v->path);
	return d->name ? 0 : -ENOMEM;
}

/*
 * Shared memory objects by their maps name: 0 if not one. MAP_SHARED of
 * /dev/zero is MAP_SHARED|MAP_ANONYMOUS to the kernel (shmem_zero_setup),
 * so both read "/dev/zero (deleted)". A memfd may also be mapped private.
 */
static int shmem_kind_of(const struct proc_vma *v)
{
	const char *p = v->path;

	if (starts_with(p, "/memfd:") && ends_with(p, " (deleted)"))
		return SHMEM_KIND__SHMEM_MEMFD;
	if (!v->shared)
		return 0;
	if (starts_with(p, "/SYSV") && ends_with(p, " (deleted)"))
		return SHMEM_KIND__SHMEM_SYSV;
	if (!strcmp(p, "/dev/zero (deleted)"))
		return SHMEM_KIND__SHMEM_ANON;
	return 0;
}

/* Refusals that the maps text alone decides, for file-backed mappings. */
static int check_file_name(pid_t pid, const struct proc_vma *v)
{
	const char *p = v->path;

	if (starts_with(p, "/memfd:"))
		return refuse(pid, v, "memfd mapping (%s)", p); /* not "(deleted)": odd */
	if (v->vmflags & (PROC_VMF_IO | PROC_VMF_PF))
		return refuse(pid, v, "device mapping %s", p);
	return 0;
}

static int classify_file(pid_t pid, const struct proc_vma *v, struct dump_vma *d)
{
	char link[96], path[PATH_MAX];
	struct stat st;
	ssize_t n;
	int ret;

	d->shm_kind = shmem_kind_of(v);
	ret = d->shm_kind ? 0 : check_file_name(pid, v);
	if (ret)
		return ret;
	snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start,
		 v->end);
	if (stat(link, &st) < 0) {
		pr_perror("process %d: stat %s (%s)", pid, link, v->path);
		return -errno;
	}
	if (S_ISCHR(st.st_mode) && !v->shared && major(st.st_rdev) == 1 && minor(st.st_rdev) == 5) {
		/* MAP_PRIVATE of /dev/zero is plain anonymous memory to the kernel. */
		d->kind = VMA_KIND__VMA_ANON;
		d->flags |= MAP_ANONYMOUS;
		d->pgoff = 0;
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return refuse(pid, v, "mapping of non-regular file %s", v->path);
	if (d->shm_kind) {
		/* The object is found again by dev/ino in dump-shmem.c. */
		d->kind = VMA_KIND__VMA_SHMEM;
		d->dev = st.st_dev;
		d->ino = st.st_ino;
		d->name = strdup(v->path);
		return d->name ? 0 : -ENOMEM;
	}
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0) {
		pr_perror("process %d: readlink %s", pid, link);
		return -errno;
	}
	path[n] = '\0';
	if (ends_with(path, " (deleted)") && ends_with(v->path, " (deleted)")) {
		/* Unlinked; with another link left there is no name to reopen it by. */
		if (st.st_nlink)
			return refuse(pid, v, "mapping of deleted file %s (it has %ju other links)",
				      v->path, (uintmax_t)st.st_nlink);
		path[n - strlen(" (deleted)")] = '\0';
		d->deleted = true;
		d->size = (uint64_t)st.st_size;
	}
	d->kind = v->shared ? VMA_KIND__VMA_FILE_SHARED : VMA_KIND__VMA_FILE_PRIVATE;
	d->path = strdup(path);
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	d->has_btime = as_owner_btime(AT_FDCWD, link, &d->btime_ns);
	return d->path ? 0 : -ENOMEM;
}

static int classify(pid_t pid, const struct proc_vma *v, struct dump_vma *d)
{
	memset(d, 0, sizeof(*d));
	d->start = v->start;
	d->end = v->end;
	d->pgoff = v->pgoff;
	d->prot = v->prot;
	d->vmflags = v->vmflags;
	d->no_anon = v->has_usage && !v->anon_kb && !v->swap_kb;
	d->flags = v->shared ? MAP_SHARED : MAP_PRIVATE;
	if (v->vmflags & PROC_VMF_GD)
		d->flags |= MAP_GROWSDOWN;
	if (v->vmflags & PROC_VMF_NR)
		d->flags |= MAP_NORESERVE; /* else restore would charge it to the commit limit */
	for (size_t i = 0; i < ARRAY_SIZE(madv_map); i++)
		if (v->vmflags & madv_map[i].vmf)
			d->madv |= madv_map[i].madv;

	if (v->vmflags & PROC_VMF_HT)
		return refuse(pid, v, "hugetlb mapping %s", v->path[0] ? v->path : "(anonymous)");
	if (v->path[0] == '[')
		return classify_bracketed(pid, v, d);
	if (v->path[0] == '\0') {
		if (v->shared)
			return refuse(pid, v, "shared memory (anonymous shared mapping)");
		d->kind = VMA_KIND__VMA_ANON;
		d->flags |= MAP_ANONYMOUS;
		d->pgoff = 0;
		return 0;
	}
	if (v->path[0] != '/')
		return refuse(pid, v, "unknown mapping %s", v->path);
	return classify_file(pid, v, d);
}

int mm_collect_vmas(struct mm_dump *mm, pid_t pid)
{
	struct proc_vmas vmas;
	char *text;
	int ret;

	memset(mm, 0, sizeof(*mm));
	mm->pid = pid;
	ret = proc_read(pid, "smaps", &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/smaps: %s", pid, pid, strerror(-ret));
		return ret;
	}
	ret = proc_parse_maps(text, &vmas);
	free(text);
	if (ret) {
		pr_err("process %d: cannot parse /proc/%d/smaps", pid, pid);
		return ret;
	}
	mm->vmas = calloc(vmas.nr ? vmas.nr : 1, sizeof(*mm->vmas));
	if (!mm->vmas) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < vmas.nr; i++) {
		ret = classify(pid, &vmas.v[i], &mm->vmas[i]);
		mm->nr_vmas = i + 1; /* so mm_fini frees a half-built entry */
		if (ret)
			break;
	}
out_free:
	proc_vmas_free(&vmas);
	return ret;
}

int mm_collect_brk(struct mm_dump *mm, struct tracee *t)
{
	uint64_t args[6] = { 0 };
	int64_t r;
	int ret;

	/* brk(0) cannot move the break; it returns the current one. */
	ret = tracee_syscall(t, SYS_brk, args, &r);
	if (ret)
		return ret;
	mm->brk = (uint64_t)r;
	return 0;
}

static int read_auxv(struct mm_dump *mm)
{
	char *data;
	size_t len;
	int ret;

	ret = proc_read(mm->pid, "auxv", &data, &len);
	if (ret) {
		pr_err("process %d: reading /proc/%d/auxv: %s", mm->pid, mm->pid, strerror(-ret));
		return ret;
	}
	mm->auxv = malloc(len + 2 * sizeof(uint64_t));
	if (!mm->auxv) {
		free(data);
		return -ENOMEM;
	}
	for (size_t off = 0; off + 16 <= len; off += 16) {
		memcpy(&mm->auxv[mm->nr_auxv], data + off, 16);
		mm->nr_auxv += 2;
		if (mm->auxv[mm->nr_auxv - 2] == AT_NULL_TYPE)
			break;
	}
	free(data);
	if (!mm->nr_auxv || mm->auxv[mm->nr_auxv - 2] != AT_NULL_TYPE) {
		pr_err("process %d: /proc/%d/auxv has no AT_NULL end", mm->pid, mm->pid);
		return -EINVAL;
	}
	return 0;
}

int mm_collect_proc(struct mm_dump *mm)
{
	char *text, exe[64];
	struct stat st;
	int ret;

	ret = proc_read(mm->pid, "stat", &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/stat: %s", mm->pid, mm->pid, strerror(-ret));
		return ret;
	}
	ret = proc_parse_stat(text, &mm->stat);
	free(text);
	if (ret) {
		pr_err("process %d: cannot parse /proc/%d/stat", mm->pid, mm->pid);
		return ret;
	}
	ret = read_auxv(mm);
	if (ret)
		return ret;
	ret = proc_readlink(mm->pid, "exe", mm->exe, sizeof(mm->exe));
	if (ret) {
		pr_err("process %d: readlink /proc/%d/exe: %s", mm->pid, mm->pid, strerror(-ret));
		return ret;
	}
	snprintf(exe, sizeof(exe), "/proc/%d/exe", mm->pid);
	if (stat(exe, &st)) {
		pr_perror("process %d: stat %s", mm->pid, exe);
		return -errno;
	}
	mm->exe_dev = (uint64_t)st.st_dev;
	mm->exe_ino = (uint64_t)st.st_ino;
	mm->has_exe_btime = as_owner_btime(AT_FDCWD, exe, &mm->exe_btime_ns);
	return 0;
}

static void fill_vma(VmaEntry *e, const struct dump_vma *v)
{
	vma_entry__init(e);
	e->start = v->start;
	e->end = v->end;
	e->pgoff = v->pgoff;
	e->prot = v->prot;
	e->flags = v->flags;
	e->kind = (VmaKind)v->kind;
	e->madv = v->madv;
	e->name = v->name;
	if (v->kind == VMA_KIND__VMA_SHMEM) {
		e->has_shmem_id = true;
		e->shmem_id = v->shmem_id;
		e->name = NULL; /* the object has the name */
	}
	if (v->kind == VMA_KIND__VMA_FILE_SHARED ||
	    (v->kind == VMA_KIND__VMA_SHMEM && (v->flags & MAP_SHARED))) {
		e->has_may_write = true;
		e->may_write = !!(v->vmflags & PROC_VMF_MW);
	}
	if (v->path) {
		e->path = v->path;
		e->has_dev = e->has_ino = true;
		e->dev = v->dev;
		e->ino = v->ino;
		e->has_btime_ns = v->has_btime;
		e->btime_ns = v->btime_ns;
	}
	if (v->deleted) {
		e->has_deleted_file_id = true;
		e->deleted_file_id = v->file_id;
	}
}

int mm_write(const struct mm_dump *mm, struct dump_imgs *imgs)
{
	const struct proc_stat *st = &mm->stat;
	MmEntry e = MM_ENTRY__INIT;
	char name[DUMP_IMG_NAME_MAX];
	VmaEntry *vmas, **vmap;
	int ret = -ENOMEM;

	vmas = calloc(mm->nr_vmas + 1, sizeof(*vmas));
	vmap = calloc(mm->nr_vmas + 1, sizeof(*vmap));
	if (!vmas || !vmap)
		goto out_free;
	for (size_t i = 0; i < mm->nr_vmas; i++) {
		fill_vma(&vmas[i], &mm->vmas[i]);
		vmap[i] = &vmas[i];
	}
	e.start_code = st->start_code;
	e.end_code = st->end_code;
	e.start_data = st->start_data;
	e.end_data = st->end_data;
	e.start_brk = st->start_brk;
	e.brk = mm->brk;
	e.start_stack = st->start_stack;
	e.arg_start = st->arg_start;
	e.arg_end = st->arg_end;
	e.env_start = st->env_start;
	e.env_end = st->env_end;
	e.n_auxv = mm->nr_auxv;
	e.auxv = mm->auxv;
	e.exe_path = (char *)mm->exe;
	e.has_exe_dev = e.has_exe_ino = true;
	e.exe_dev = mm->exe_dev;
	e.exe_ino = mm->exe_ino;
	e.has_exe_btime_ns = mm->has_exe_btime;
	e.exe_btime_ns = mm->exe_btime_ns;
	e.n_vmas = mm->nr_vmas;
	e.vmas = vmap;
	snprintf(name, sizeof(name), "mm-%d.img", mm->img_pid);
	ret = dump_img_write_one(imgs, name, LZ_IMG_MM, &e.base);
out_free:
	free(vmap);
	free(vmas);
	return ret;
}

void mm_fini(struct mm_dump *mm)
{
	for (size_t i = 0; i < mm->nr_vmas; i++) {
		free(mm->vmas[i].path);
		free(mm->vmas[i].name);
	}
	free(mm->vmas);
	free(mm->auxv);
	mm->vmas = NULL;
	mm->auxv = NULL;
	mm->nr_vmas = mm->nr_auxv = 0;
}
