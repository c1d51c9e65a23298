/*
 * fd-event.h - the event fd kinds: eventfd, timerfd, signalfd (fd-event.c),
 * epoll (fd-epoll.c) and inotify (fd-inotify.c).
 */
#ifndef LZ_FD_EVENT_H
#define LZ_FD_EVENT_H

#include "fd-kind.h"

extern const struct fd_kind fd_kind_eventfd, fd_kind_timerfd, fd_kind_signalfd;
extern const struct fd_kind fd_kind_epoll, fd_kind_inotify;

struct files_table;
struct files_dump;

/*
 * Dump, with the whole tree in TAB and FS[0..N): every process holding an
 * epoll fd (a set inherited through fork is dumped once, from its first
 * holder) has each item's file at the item's fd number, or the restored
 * item would watch another file there: refused (-EOPNOTSUPP, one line
 * naming pid, epoll fd and item fd) otherwise.
 */
int fd_epoll_dump_check(const struct files_table *tab, struct files_dump *const *fs, size_t n);

#endif
