/*
 * dump-ns.h - the pid and mount namespace of a dumped tree.
 *
 * A tree is dumped either in the dumper's pid namespace (its pids are the
 * dumper's) or, when its root is pid 1 of a pid namespace of its own one
 * level below the dumper's (`unshare --pid --fork PROG`, a container's
 * init), with every pid as seen inside that namespace: the last NSpid,
 * NSpgid and NSsid of /proc/PID/status. Its mount namespace is the
 * dumper's, or a copy of it with a fresh proc of the tree's pid namespace
 * on /proc (`unshare --mount-proc`); anything else is refused by name.
 * Its IPC namespace is the dumper's or one of its own, the root's, shared
 * by every process of the tree (dump-checks.c refuses any other).
 * Functions return 0 or -errno and log once, naming the pid.
 */
#ifndef LZ_DUMP_NS_H
#define LZ_DUMP_NS_H

#include <stdbool.h>
#include <sys/types.h>

#define DUMP_NS_LINK_MAX 64

struct dump_ns {
	bool root_init;			/* the root is pid 1 of its own pid namespace */
	bool mnt_proc;			/* its mount ns: ours with its own proc on /proc */
	unsigned level;			/* NSpid fields of the root (1: our namespace) */
	char pid_link[DUMP_NS_LINK_MAX]; /* the root's ns/pid ("pid:[N]") when root_init */
	char mnt_link[DUMP_NS_LINK_MAX]; /* its ns/mnt when mnt_proc */
	bool ipc_own;			/* the root is in an IPC namespace not ours */
	char ipc_link[DUMP_NS_LINK_MAX]; /* the root's ns/ipc when ipc_own */
};

/* Pids of a process or thread inside the tree's pid namespace. */
struct dump_vids {
	pid_t pid, pgid, sid; /* 0: none there (a group or session led from outside) */
};

/*
 * Before the freeze: is ROOT pid 1 of a pid namespace of its own, is it
 * in an IPC namespace of its own (ipc_own)? Refuses
 * a root that is in a namespace below ours without being its init, or
 * deeper than one level.
 */
int dump_ns_probe(struct dump_ns *ns, pid_t root);
/*
 * After the freeze, root_init only: the root's mount namespace, ours or
 * ours with its own /proc (mnt_proc); any other is refused.
 */
int dump_ns_check_mnt(struct dump_ns *ns, pid_t root);
/*
 * The ids of PID (TID: one of its threads, or PID) inside the tree's pid
 * namespace; a process in another (nested) pid namespace is refused.
 */
int dump_ns_vids(const struct dump_ns *ns, pid_t pid, pid_t tid, struct dump_vids *v);

#endif
