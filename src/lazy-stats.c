/*
 * lazy-stats.c - the lazy-pages daemon's numbers: fault latency and
 * per-thread counts as faults are served, and WORKDIR/lazy-pages-stats.json
 * at exit. The counters live in the shared state, so a resumed daemon's
 * report covers the whole run. Documentation/lazy-pages.md, "Statistics",
 * describes the file.
 */
#define LOG_PREFIX "lazy-pages: "

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lazy-int.h"
#include "log.h"
#include "proc.h"
#include "safe-file.h"

void stats_fault(struct lz_shm_stats *st, uint32_t tid, uint64_t ns)
{
	unsigned b = ns ? 63 - (unsigned)__builtin_clzll(ns) : 0;

	st->lat_log2[MIN(b, LZ_SHM_LAT_BUCKETS - 1)]++;
	if (!tid)
		return;
	for (uint32_t i = 0; i < st->nr_tids; i++)
		if (st->tids[i].tid == (int32_t)tid) {
			st->tids[i].faults++;
			return;
		}
	if (st->nr_tids < LZ_SHM_TIDS) {
		st->tids[st->nr_tids].tid = (int32_t)tid;
		st->tids[st->nr_tids++].faults = 1;
		return;
	}
	st->faults_other_tids++;
}

static const char *state_name(uint32_t s)
{
	switch (s) {
	case LZ_SLOT_ACTIVE:
		return "active";
	case LZ_SLOT_DONE:
		return "done";
	case LZ_SLOT_GONE:
		return "gone";
	case LZ_SLOT_KILLED:
		return "killed";
	}
	return "unknown";
}

static void stats_slot(FILE *f, const struct lz_shm_hdr *h, unsigned i, bool first)
{
	const struct lz_shm_slot *sl = &h->slots[i];
	const struct lz_shm_stats *st = &sl->st;
	bool any = false;

	fprintf(f, "%s\n    {\"slot\": %u, \"pid\": %d, \"img_id\": %u, \"parent_pid\": ",
		first ? "" : ",", i, sl->pid, sl->img_id);
	if (sl->parent < LZ_SHM_MAX_SLOTS)
		fprintf(f, "%d", h->slots[sl->parent].pid);
	else
		fprintf(f, "null");
	fprintf(f, ", \"state\": \"%s\",\n     \"pages_total\": %" PRIu64 ", \"pages_fault\": %" PRIu64
		", \"pages_fill\": %" PRIu64 ", \"pages_zero\": %" PRIu64 ", \"pages_dropped\": %" PRIu64
		", \"pages_exist\": %" PRIu64 ",\n     \"faults\": %" PRIu64 ", \"faults_dup\": %" PRIu64
		", \"time_to_complete_ns\": ",
		state_name(sl->state), st->pages_total, st->pages_fault, st->pages_fill,
		st->pages_zero, st->pages_dropped, st->pages_exist, st->faults, st->faults_dup);
	if (st->t_done_ns)
		fprintf(f, "%" PRIu64, st->t_done_ns - st->t_start_ns);
	else
		fprintf(f, "null");
	fprintf(f, ",\n     \"fault_latency_ns_log2\": {");
	for (unsigned b = 0; b < LZ_SHM_LAT_BUCKETS; b++) {
		if (!st->lat_log2[b])
			continue;
		fprintf(f, "%s\"%u\": %" PRIu64, any ? ", " : "", b, st->lat_log2[b]);
		any = true;
	}
	fprintf(f, "},\n     \"faults_per_thread\": {");
	for (uint32_t t = 0; t < st->nr_tids && t < LZ_SHM_TIDS; t++)
		fprintf(f, "%s\"%d\": %u", t ? ", " : "", st->tids[t].tid, st->tids[t].faults);
	fprintf(f, "}, \"faults_other_threads\": %" PRIu64 ",\n     \"pages_prefetch\": %" PRIu64
		", \"ws_recorded_pages\": %" PRIu64 ", \"thp_collapsed\": %" PRIu64
		", \"time_to_prefetch_done_ns\": ",
		st->faults_other_tids, st->pages_prefetch, st->ws_pages, st->thp_collapsed);
	if (st->t_prefetch_done_ns)
		fprintf(f, "%" PRIu64 "}", st->t_prefetch_done_ns - st->t_start_ns);
	else
		fprintf(f, "null}");
}

int stats_write(struct lazy_daemon *d)
{
	const struct lz_shm_hdr *h = d->shm.hdr;
	bool first = true;
	struct sf_tmp t;
	FILE *f;
	int fd, ret;

	if (!h)
		return 0;
	/* Addresses and pids are in it: 0600, and never through a planted file
	 * or symlink (an O_EXCL temporary renamed over the name). */
	sf_remove_stale_tmps(d->workfd, LZ_LAZY_STATS_NAME);
	ret = sf_create_tmp(d->workfd, LZ_LAZY_STATS_NAME, &t);
	if (ret) {
		pr_err("%s/%s: %s", d->work_dir, LZ_LAZY_STATS_NAME, strerror(-ret));
		return ret;
	}
	fd = dup(t.fd);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		pr_perror("%s/%s", d->work_dir, t.tmp);
		if (fd >= 0)
			close(fd);
		sf_abort(d->workfd, &t);
		return -ENOMEM;
	}
	fprintf(f, "{\n  \"version\": 1,\n  \"daemon_pid\": %d,\n  \"resumes\": %u,\n"
		"  \"fault_around_kib\": %" PRIu64 ",\n  \"fill_chunk_kib\": %" PRIu64 ",\n"
		"  \"elapsed_ns\": %" PRIu64 ",\n  \"vm_hwm_kib\": %" PRIu64 ",\n  \"processes\": [",
		getpid(), h->generation, d->fa_pages * 4, d->fill_pages * 4,
		lz_now_ns() - h->t_start_ns, proc_self_hwm_kib());
	/* Never-used slots are never-touched memfd pages: do not fault them in. */
	for (unsigned i = 0; i < h->nr_used && i < LZ_SHM_MAX_SLOTS; i++) {
		if (h->slots[i].state == LZ_SLOT_FREE)
			continue;
		stats_slot(f, h, i, first);
		first = false;
	}
	fprintf(f, "\n  ],\n  \"shmem_objects\": [");
	lshm_stats(d, f);
	fprintf(f, "\n  ]\n}\n");
	if (fclose(f)) {
		pr_perror("%s/%s", d->work_dir, t.tmp);
		sf_abort(d->workfd, &t);
		return -EIO;
	}
	ret = sf_commit(d->workfd, &t);
	if (ret)
		pr_err("%s/%s: %s", d->work_dir, LZ_LAZY_STATS_NAME, strerror(-ret));
	return ret;
}
