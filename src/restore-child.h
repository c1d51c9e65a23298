/*
 * restore-child.h - the restored process's own work while it is still a
 * copy of lazarus: fds, session, signal handlers, fs, then the jump into
 * the restorer blob.
 */
#ifndef LZ_RESTORE_CHILD_H
#define LZ_RESTORE_CHILD_H

#include <sys/types.h>

#include "restore-images.h"

/*
 * Never returns: it becomes the target (rt_sigreturn in the blob) or
 * reports a failure on status_fd and exits. helper: with -d, the pid of
 * the helper that cloned us, which we wait to see gone; 0 otherwise.
 */
__attribute__((noreturn)) void rst_child_main(const struct rst_images *im, int status_fd,
					      pid_t helper);

#endif
