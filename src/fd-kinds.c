/*
 * fd-kinds.c - the table of fd kinds (fd-kind.h). Order matters twice:
 * dump asks match() in this order (the first yes wins, so a narrow kind
 * comes before a broad one), and restore opens kinds in this order (a kind
 * that needs other descriptions in the store, epoll, comes after them).
 * A new kind adds one extern and one line here.
 */
#include "fd-event.h"
#include "fd-kind.h"
#include "fd-pipe.h"
#include "fd-pty.h"

extern const struct fd_kind fd_kind_reg;
extern const struct fd_kind fd_kind_chr;
extern const struct fd_kind fd_kind_memfd;
extern const struct fd_kind fd_kind_unix;
extern const struct fd_kind fd_kind_inet;
extern const struct fd_kind fd_kind_netlink;
extern const struct fd_kind fd_kind_sk_other;

const struct fd_kind *const fd_kinds[] = {
	&fd_kind_memfd,
	&fd_kind_reg,
	&fd_kind_pty, /* before chr: a slave of a master in the dump is not reopened by path */
	&fd_kind_chr,
	&fd_kind_pipe,
	&fd_kind_fifo,
	&fd_kind_eventfd,
	&fd_kind_timerfd,
	&fd_kind_signalfd,
	&fd_kind_inotify,
	&fd_kind_unix,
	&fd_kind_inet,
	&fd_kind_netlink,
	&fd_kind_sk_other, /* last of the sockets: refuses what no kind above took */
	&fd_kind_epoll, /* restore fills its interest lists per process (post) */
};

const size_t nr_fd_kinds = sizeof(fd_kinds) / sizeof(fd_kinds[0]);

const struct fd_kind *fd_kind_of(FileKind kind)
{
	for (size_t i = 0; i < nr_fd_kinds; i++)
		if (fd_kinds[i]->kind == kind)
			return fd_kinds[i];
	return NULL;
}
