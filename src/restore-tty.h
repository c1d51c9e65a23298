/*
 * restore-tty.h - controlling terminals and shell jobs at restore
 * (restore-tty.c; dump side: dump-tty.c).
 */
#ifndef LZ_RESTORE_TTY_H
#define LZ_RESTORE_TTY_H

#include <stdbool.h>
#include <stddef.h>

#include "restore-images.h"

/*
 * In lazarus, images verified, nothing created: the terminals of
 * files.img and pstree.img make sense together (a master's session leader
 * and foreground group are in the tree), and a shell job is restored only
 * with SHELL_JOB, from a terminal (stdin, the controlling terminal of
 * lazarus's session). Logs one line; -errno.
 */
int rst_tty_check(const struct rst_images *im, bool shell_job);

/*
 * In the restored process, right after its session is made and before it
 * creates any child (they inherit the terminal): a session leader whose
 * terminal is a pty of the dump takes it (TIOCSCTTY).
 */
int rst_tty_session(const struct rst_images *im, const struct rst_task *rt, char *why,
		    size_t len);

/*
 * In the restored process, once its children exist and it is in its group:
 * the session leader (or, for a shell job, the root) makes the dumped
 * foreground group the terminal's (TIOCSPGRP), waiting a bounded time for
 * that group to be made by its leader.
 */
int rst_tty_foreground(const struct rst_images *im, const struct rst_task *rt, char *why,
		       size_t len);

/* The shell job's terminal: slaves of this device are the caller's terminal (fd-pty.c). */
bool rst_tty_is_shell_tty(const struct rst_images *im, uint64_t rdev);

#endif
