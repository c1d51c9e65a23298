/*
 * restore.c - `lazarus restore`: verify the images, create the process with
 * its pid, let it restore itself, wait for its "OK", write stats.
 *
 * The pieces: restore-images.c/restore-verify.c (everything is checked
 * before anything is created), restore-proc.c (clone3 with the pid, the
 * status pipe), restore-child.c (fds, session, handlers, fs in the new
 * process), plugin/ (bootstrap area, blob arguments, signal frame) and
 * plugin/blob/ (memory, thread state, rt_sigreturn).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "lazarus/lazarus.h"
#include "log.h"
#include "restore-images.h"
#include "restore-proc.h"

struct restore_ctx {
	const struct lz_restore_opts *opts;
	struct rst_images im;
	struct rst_proc proc;
	uint64_t t_start;  /* lz_restore entered */
	uint64_t t_loaded; /* images verified */
	uint64_t t_ready;  /* OK received */
};

static double ms(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e6 : 0.0;
}

static uint64_t data_pages(const struct rst_images *im)
{
	return im->pm_head ? im->pm_head->nr_data_pages : 0;
}

/* stats-restore.json in the work dir: times per phase and pages restored. */
static void write_stats(const struct restore_ctx *c)
{
	const char *dir = c->opts->work_dir ? c->opts->work_dir : c->opts->images_dir;
	const uint64_t *t = c->proc.ok.t_ns; /* child start, blob entry, memory done, done */
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/stats-restore.json", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f) {
		pr_warn("cannot write %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f,
		"{\n  \"pid\": %u,\n  \"detached\": %s,\n  \"lazy\": false,\n"
		"  \"verify_ms\": %.3f,\n  \"create_ms\": %.3f,\n  \"prepare_ms\": %.3f,\n"
		"  \"memory_ms\": %.3f,\n  \"finish_ms\": %.3f,\n  \"total_ms\": %.3f,\n"
		"  \"vmas\": %zu,\n  \"pages_restored\": %" PRIu64 ",\n"
		"  \"bytes_restored\": %" PRIu64 ",\n  \"image_data_pages\": %" PRIu64 ",\n"
		"  \"warnings\": %u\n}\n",
		c->im.pid, c->opts->detach ? "true" : "false", ms(c->t_start, c->t_loaded),
		ms(c->proc.t_clone, t[0]), ms(t[0], t[1]), ms(t[1], t[2]), ms(t[2], t[3]),
		ms(c->t_start, c->t_ready), c->im.mm->n_vmas, c->proc.ok.nr_pages,
		c->proc.ok.nr_pages * 4096, data_pages(&c->im), c->proc.nr_warnings);
	if (fclose(f) || rename(tmp, path)) {
		pr_warn("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
	}
}

static int restore_run(struct restore_ctx *c, int *wait_status, int *root_pid)
{
	int ret;

	pr_info("verifying images in %s", c->opts->images_dir);
	ret = rst_images_load(&c->im, c->opts->images_dir);
	if (ret)
		return ret;
	c->t_loaded = rst_now_ns();
	pr_info("images of pid %u verified: %zu VMAs, %zu page runs, %" PRIu64 " data pages, %zu fds",
		c->im.pid, c->im.mm->n_vmas, c->im.nr_pm, data_pages(&c->im), c->im.nr_fdinfo);

	ret = rst_proc_create(&c->proc, &c->im, c->opts->detach);
	if (ret)
		return ret;
	ret = rst_proc_wait_ready(&c->proc);
	if (ret)
		return ret;
	c->t_ready = rst_now_ns();
	pr_info("process %d restored in %.1f ms (%" PRIu64 " pages read); resuming it", c->proc.pid,
		ms(c->t_start, c->t_ready), c->proc.ok.nr_pages);
	write_stats(c);
	if (root_pid)
		*root_pid = c->proc.pid;
	if (c->opts->detach) {
		if (wait_status)
			*wait_status = 0;
		return 0;
	}
	return rst_proc_wait_exit(&c->proc, wait_status ? wait_status : &(int){ 0 });
}

int lz_restore(const struct lz_restore_opts *opts, int *wait_status, int *root_pid)
{
	struct restore_ctx c = { .opts = opts, .t_start = rst_now_ns() };
	int ret;

	c.im.dirfd = -1;
	if (opts->lazy_pages) {
		pr_err("--lazy-pages is not implemented yet");
		return -EOPNOTSUPP;
	}
	ret = restore_run(&c, wait_status, root_pid);
	rst_images_free(&c.im);
	return ret;
}
