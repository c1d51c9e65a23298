/*
 * dump-tree.h - the processes and threads of one dump: freezing a process
 * tree thread by thread, letting it go again, and pstree.img.
 *
 * The tree is an array of processes in pstree order (the root first, every
 * parent before its children); each process holds its threads, the leader
 * first, each with its tracee and its per-thread state (core-<tid>.img),
 * and the per-process state (task, mm, files, memory statistics).
 * Functions return 0 or -errno and log a failure once, naming the pid.
 */
#ifndef LZ_DUMP_TREE_H
#define LZ_DUMP_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dump-core.h"
#include "dump-files.h"
#include "dump-img.h"
#include "dump-mem.h"
#include "dump-mm.h"
#include "dump-ns.h"
#include "dump-task.h"
#include "proc.h"
#include "ptrace.h"

struct dump_thread {
	struct tracee t;
	pid_t vtid;		 /* its tid in the images (tree_map_pids) */
	struct core_dump core;
};

struct dump_proc {
	pid_t pid;
	struct dump_vids v;	 /* pid, group, session in the images (tree_map_pids) */
	pid_t vppid;		 /* the parent's pid in the images; 0: outside the namespace */
	struct proc_stat stat;	 /* /proc/PID/stat once its threads were frozen */
	bool zombie;		 /* exited, not reaped: no thread, no mm, no files */
	bool stopped;		 /* in a group stop (state T) when frozen */
	int stop_sig;		 /* the signal that stopped it */
	struct dump_thread *th;	 /* leader first; none for a zombie */
	size_t nr_th, cap_th;
	struct task_dump task;
	struct mm_dump mm;
	struct files_dump files;
	struct mem_stats mem;
};

struct dump_tree {
	struct dump_proc **procs; /* pstree order, the root first */
	size_t nr, cap;
	bool descend;		  /* take the root's descendants too */
	unsigned freeze_timeout_ms;
	struct tracee_hooks hooks; /* for every tracee */
	struct {
		bool job;	  /* --shell-job: the root's session is led from outside */
		uint64_t tty;	  /* its controlling terminal's device (0: none) */
		uint32_t fg_pgrp; /* that terminal's foreground group, a group of the tree; 0: not */
	} shell;		  /* dump-tty.c */
};

/*
 * Freeze ROOT (which must be alive), every thread of it and, with
 * tr->descend, every descendant: each process's threads are seized until
 * /proc/PID/task shows no new one, then its children (of every thread) are
 * read and frozen in turn, so nothing created meanwhile escapes. A
 * descendant that exits meanwhile is taken as the zombie it became, or left
 * out once reaped; a thread that exits before it is seized is left out.
 */
int tree_freeze(struct dump_tree *tr, pid_t root);
/*
 * Once frozen: every pid, group, session and tid as the images hold them,
 * the ones inside the tree's pid namespace (NS's root_init) or ours.
 * Refuses a process or thread in a deeper namespace, a group or a session
 * whose leader is outside the namespace, and the sessions and groups
 * restore cannot build (a group whose leader has exited, say).
 */
int tree_map_pids(struct dump_tree *tr, const struct dump_ns *ns);
/*
 * Name every image of P by its pid in the images, and turn the tids it
 * holds into those of the images: once, before writing them.
 */
void tree_name_images(struct dump_proc *p);
/* Let every thread run on as frozen (a stopped process stays stopped). */
int tree_detach(struct dump_tree *tr);
/* SIGKILL every process of the tree and reap the ptrace links. */
int tree_kill(struct dump_tree *tr);
/* Is PID a process of the tree? */
bool tree_has(const struct dump_tree *tr, pid_t pid);
/* Threads of all processes. */
size_t tree_nr_threads(const struct dump_tree *tr);
int tree_write_pstree(const struct dump_tree *tr, struct dump_imgs *imgs);
void tree_fini(struct dump_tree *tr);

#endif
