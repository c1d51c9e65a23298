/*
 * fd-event.h - the event fd kinds: eventfd, timerfd, signalfd (fd-event.c),
 * epoll (fd-epoll.c) and inotify (fd-inotify.c).
 */
#ifndef LZ_FD_EVENT_H
#define LZ_FD_EVENT_H

#include "fd-kind.h"

extern const struct fd_kind fd_kind_eventfd, fd_kind_timerfd, fd_kind_signalfd;
extern const struct fd_kind fd_kind_epoll, fd_kind_inotify;

#endif
