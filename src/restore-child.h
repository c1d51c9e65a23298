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
 * -d: the process is cloned by a helper that waits on release_fd. Once the
 * blob is past every step that can fail, it writes a byte there; the helper
 * exits and the process is orphaned. Until then a failing process is the
 * helper's child, reaped by it, not a stray zombie.
 */
struct rst_detach {
	pid_t helper;
	int release_fd;
};

/*
 * Never returns: it becomes the target (rt_sigreturn in the blob) or
 * reports a failure on status_fd and exits. detach is NULL without -d.
 */
__attribute__((noreturn)) void rst_child_main(const struct rst_images *im, int status_fd,
					      const struct rst_detach *detach);

#endif
