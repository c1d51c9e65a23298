/* restore-verify.h - semantic checks of a loaded dump (restore-verify.c). */
#ifndef LZ_RESTORE_VERIFY_H
#define LZ_RESTORE_VERIFY_H

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

#endif
