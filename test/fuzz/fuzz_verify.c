/*
 * fuzz_verify.c - libFuzzer target for restore's semantic checks of a dump
 * (src/restore-verify.c): the core against the inventory, the VMA list, the
 * pagemap against the VMAs, the fd table against files.img, and then the
 * whole rst_verify() (the task's POSIX timers too) with a pages file (a
 * memfd) written from the input. Unix sockets that each passed their
 * kind's verify are also checked together (unix_verify_set: peers,
 * listeners, backlogs), as restore does before it creates the first one.
 *
 * The input is a list of records (records.h), one protobuf message each,
 * built into a struct rst_images with one struct rst_task (one process,
 * one thread) as restore-images.c would load it. Whatever
 * the checks accept must hold up to the restore that trusts them: the
 * oracle below re-checks, with overflow-checked arithmetic, that every
 * accepted pagemap run lies inside one VMA and inside the pages file, and
 * that no fd is listed twice.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "records.h"
#include "fd-unix.h"
#include "restore-verify.h"

#define MAX_ITEMS 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(LOG_MSG, -1); /* the checks log every refusal: keep quiet */
	return 0;
}

#define UNPACK(type, fn, p, len) ((type *)fn##__unpack(NULL, len, p))

static void *grow(void *arr, size_t *nr, void *item)
{
	void **a = arr;

	if (!item)
		return a;
	if (*nr >= MAX_ITEMS) {
		protobuf_c_message_free_unpacked(item, NULL);
		return a;
	}
	a = realloc(a, (*nr + 1) * sizeof(void *));
	if (!a)
		abort();
	a[(*nr)++] = item;
	return a;
}

static void replace(void **slot, void *m)
{
	if (!m)
		return;
	if (*slot)
		protobuf_c_message_free_unpacked(*slot, NULL);
	*slot = m;
}

/* What restore relies on once rst_verify_mm() said yes. */
static void oracle_mm(const struct rst_task *im)
{
	const MmEntry *mm = im->mm;
	size_t j = 0;

	for (size_t i = 0; i < mm->n_vmas; i++) {
		if (mm->vmas[i]->start >= mm->vmas[i]->end)
			abort();
		if (i && mm->vmas[i]->start < mm->vmas[i - 1]->end)
			abort();
	}
	for (size_t i = 0; i < im->nr_pm; i++) {
		const PagemapEntry *e = im->pm[i];
		uint64_t len, end;

		if (__builtin_mul_overflow(e->nr_pages, (uint64_t)LZ_PAGE_SIZE, &len) ||
		    __builtin_add_overflow(e->vaddr, len, &end))
			abort(); /* accepted a run whose end wraps */
		while (j < mm->n_vmas && mm->vmas[j]->end <= e->vaddr)
			j++;
		if (j == mm->n_vmas || e->vaddr < mm->vmas[j]->start || end > mm->vmas[j]->end)
			abort(); /* accepted a run outside its VMA */
		if (i && e->vaddr < im->pm[i - 1]->vaddr + im->pm[i - 1]->nr_pages * LZ_PAGE_SIZE)
			abort();
		if ((e->flags & LZ_PE_PRESENT) &&
		    (__builtin_add_overflow(e->data_page, e->nr_pages, &end) ||
		     end > im->pm_head->nr_data_pages))
			abort(); /* accepted data beyond the pages file */
	}
}

static void oracle_fds(const struct rst_images *im, const struct rst_task *t)
{
	for (size_t i = 0; i < t->nr_fdinfo; i++) {
		if (!rst_file_by_id(im, t->fdinfo[i]->file_id))
			abort();
		for (size_t k = 0; k < i; k++)
			if (t->fdinfo[k]->fd == t->fdinfo[i]->fd)
				abort();
	}
}

/* pages-<pid>.img from the input in a memfd, extended with zeros on request. */
static int pages_memfd(const struct rst_task *im, const uint8_t *p, size_t len, bool pad)
{
	uint64_t nr = im->pm_head->nr_data_pages;
	int fd = memfd_create("pages", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	if (len && write(fd, p, len) != (ssize_t)len)
		abort();
	if (pad && nr <= 1024 && LZ_PAGES_HDR_SIZE + nr * LZ_PAGE_SIZE > len &&
	    ftruncate(fd, (off_t)(LZ_PAGES_HDR_SIZE + nr * LZ_PAGE_SIZE)))
		abort();
	return fd;
}

static int cmp_file_id(const void *a, const void *b)
{
	uint32_t x = (*(const FileEntry *const *)a)->id, y = (*(const FileEntry *const *)b)->id;

	return x < y ? -1 : x > y;
}

/* files.img indexed by id as restore-images.c does; false for a repeated id (refused there). */
static bool index_files(struct rst_images *im)
{
	im->files_by_id = malloc((im->nr_files + 1) * sizeof(*im->files_by_id));
	if (!im->files_by_id)
		abort();
	if (im->nr_files)
		memcpy(im->files_by_id, im->files, im->nr_files * sizeof(*im->files));
	qsort(im->files_by_id, im->nr_files, sizeof(*im->files_by_id), cmp_file_id);
	for (size_t i = 1; i < im->nr_files; i++)
		if (im->files_by_id[i]->id == im->files_by_id[i - 1]->id)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CoreEntry core0 = CORE_ENTRY__INIT, *core = NULL, *cores[1];
	InventoryEntry inv0 = INVENTORY_ENTRY__INIT;
	MmEntry mm0 = MM_ENTRY__INIT;
	TaskEntry task0 = TASK_ENTRY__INIT;
	PagemapHead head0 = PAGEMAP_HEAD__INIT;
	PstreeEntry pst = PSTREE_ENTRY__INIT;
	struct rst_images im = { .dirfd = -1 };
	struct rst_task t = { .parent = -1, .pages_fd = -1 };
	struct fz_v_params prm = { 0 };
	const uint8_t *pages = NULL, *p;
	size_t pages_len = 0, len;
	uint32_t tid;
	uint8_t tag;

	while (fz_next(&data, &size, &tag, &p, &len)) {
		switch (tag) {
		case FZ_V_PARAMS:
			memcpy(&prm, p, MIN(len, sizeof(prm)));
			break;
		case FZ_V_CORE:
			replace((void **)&core, UNPACK(CoreEntry, core_entry, p, len));
			break;
		case FZ_V_INV:
			replace((void **)&im.inv, UNPACK(InventoryEntry, inventory_entry, p, len));
			break;
		case FZ_V_MM:
			replace((void **)&t.mm, UNPACK(MmEntry, mm_entry, p, len));
			break;
		case FZ_V_TASK:
			replace((void **)&t.task, UNPACK(TaskEntry, task_entry, p, len));
			break;
		case FZ_V_PM_HEAD:
			replace((void **)&t.pm_head, UNPACK(PagemapHead, pagemap_head, p, len));
			break;
		case FZ_V_PM:
			t.pm = grow(t.pm, &t.nr_pm, pagemap_entry__unpack(NULL, len, p));
			break;
		case FZ_V_FILE:
			im.files = grow(im.files, &im.nr_files, file_entry__unpack(NULL, len, p));
			break;
		case FZ_V_FDINFO:
			t.fdinfo = grow(t.fdinfo, &t.nr_fdinfo, fdinfo_entry__unpack(NULL, len, p));
			break;
		case FZ_V_PAGES:
			pages = p;
			pages_len = len;
			break;
		}
	}

	struct rst_images use = im;
	struct rst_task ut = t;

	ut.pid = prm.pid;
	use.lazy = prm.lazy & 1;
	memcpy(use.id.b, prm.id, sizeof(use.id.b));
	snprintf(ut.pages_name, sizeof(ut.pages_name), "pages-%u.img", ut.pid);
	cores[0] = core ? core : &core0;
	if (!core)
		core0.tid = ut.pid;
	tid = ut.pid;
	pst.pid = ut.pid;
	pst.n_threads = 1;
	pst.threads = &tid;
	ut.pstree = &pst;
	ut.cores = cores;
	ut.nr_cores = 1;
	use.inv = im.inv ? im.inv : &inv0;
	ut.mm = t.mm ? t.mm : &mm0;
	ut.task = t.task ? t.task : &task0;
	ut.pm_head = t.pm_head ? t.pm_head : &head0;
	use.tasks = &ut;
	use.nr_tasks = 1;

	if (!index_files(&use))
		goto out;

	int mm_ok = rst_verify_mm(&use, &ut) == 0;
	int fds_ok = rst_verify_fds(&use, &ut) == 0;

	if (mm_ok)
		oracle_mm(&ut);
	if (fds_ok) {
		const FileEntry *sks[MAX_ITEMS];
		struct unix_rst_set set = { .files = sks };
		char why[256];

		oracle_fds(&use, &ut);
		for (size_t i = 0; i < use.nr_files && set.nr < MAX_ITEMS; i++)
			if (use.files[i]->kind == FILE_KIND__FD_UNIX_SK)
				sks[set.nr++] = use.files[i];
		unix_verify_set(&set, why, sizeof(why));
	}
	/* rst_images_load() opens the pages file only when inventory.img lists it. */
	if (mm_ok && fds_ok && rst_inv_file(&use, ut.pages_name)) {
		ut.pages_fd = pages_memfd(&ut, pages, pages_len, prm.pad_pages & 1);
		if (rst_verify(&use) == 0 && !pages)
			abort(); /* accepted a dump without its pages file */
		close(ut.pages_fd);
	}
out:
	free(use.files_by_id);

	if (core)
		core_entry__free_unpacked(core, NULL);
	if (im.inv)
		inventory_entry__free_unpacked(im.inv, NULL);
	if (t.mm)
		mm_entry__free_unpacked(t.mm, NULL);
	if (t.task)
		task_entry__free_unpacked(t.task, NULL);
	if (t.pm_head)
		pagemap_head__free_unpacked(t.pm_head, NULL);
	for (size_t i = 0; i < t.nr_pm; i++)
		pagemap_entry__free_unpacked(t.pm[i], NULL);
	for (size_t i = 0; i < im.nr_files; i++)
		file_entry__free_unpacked(im.files[i], NULL);
	for (size_t i = 0; i < t.nr_fdinfo; i++)
		fdinfo_entry__free_unpacked(t.fdinfo[i], NULL);
	free(t.pm);
	free(im.files);
	free(t.fdinfo);
	return 0;
}
