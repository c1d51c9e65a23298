/*
 * restore-task.h - per-process state the restored process sets up while it
 * is still a copy of lazarus: session, signal handlers, prctl bits, fs.
 * Each call returns 0 or -errno and describes a failure in `why`.
 */
#ifndef LZ_RESTORE_TASK_H
#define LZ_RESTORE_TASK_H

#include <stddef.h>

#include "restore-images.h"

/* setsid() if the process led its session, setpgid(0, 0) if its group. */
int rst_task_session(const struct rst_task *rt, char *why, size_t len);
/*
 * Once its children exist: join the group of another process of the tree
 * (retried while its leader has not made it yet, bounded). See restore-task.c.
 */
int rst_task_join_group(const struct rst_images *im, const struct rst_task *rt, char *why,
			size_t len);
/*
 * A session leader, right after setsid and before its children: one helper
 * child per group of its session whose leader is gone (im->groups), with
 * the group's id as pid; it leads the group until every member is in it,
 * then exits. Their pids into helpers (RST_MAX_TASKS), their number *nr.
 */
int rst_task_group_helpers(const struct rst_images *im, const struct rst_task *rt,
			   pid_t *helpers, size_t *nr, char *why, size_t len);
/* Before the jump: reap them; one that found a member missing fails. */
int rst_task_group_helpers_wait(const pid_t *helpers, size_t nr, char *why, size_t len);
/* Every dumped handler, with its own restorer, through raw rt_sigaction. */
int rst_task_sigactions(const struct rst_task *rt, char *why, size_t len);
/* personality, comm, and the prctl switches of task-<pid>.img. */
int rst_task_misc(const struct rst_task *rt, char *why, size_t len);
/* (PR_SET_PDEATHSIG is set by the blob, once the final parent is known.) */
/*
 * cgroups, oom_score_adj, loginuid, membarrier registrations, exactly as
 * dumped or fail (through /proc/self: before rst_task_fs).
 */
int rst_task_state(const struct rst_task *rt, char *why, size_t len);
/* CPU affinity, nice, scheduling policy and priority, timer slack of the thread. */
int rst_task_sched(const struct rst_task *rt, char *why, size_t len);
/* cwd, root and umask: last, since they change how paths resolve. */
int rst_task_fs(const struct rst_task *rt, char *why, size_t len);

#endif
