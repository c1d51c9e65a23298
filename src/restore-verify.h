/* restore-verify.h - semantic checks of a loaded dump (restore-verify.c). */
#ifndef LZ_RESTORE_VERIFY_H
#define LZ_RESTORE_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "restore-images.h"

/* Logs one line and returns -errno on the first problem. */
int rst_verify(const struct rst_images *im);

/*
 * The parts of rst_verify() that read no file, for one process T, in the
 * order it runs them (test/fuzz/fuzz_verify.c calls them alone): each
 * thread's core against the inventory, the VMA list and the vdso, the
 * pagemap against the VMAs; and the fd table against files.img.
 */
int rst_verify_mm(const struct rst_images *im, const struct rst_task *t);
int rst_verify_fds(const struct rst_images *im, const struct rst_task *t);

/*
 * The open files of every process against this machine, through each
 * kind's check() (fd-kind.h): after the pids are known to be free, before
 * any file is opened. Logs one line naming the fd; -errno.
 */
int rst_verify_files(const struct rst_images *im);

/* Warn (once per call) when PATH was replaced or changed size since the dump. */
void rst_warn_changed(const char *path, const struct stat *st, bool has_ino, uint64_t ino,
		      bool has_size, uint64_t size);

#endif
