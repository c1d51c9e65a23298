/*
 * lazy-sock.c - sending and receiving lazy-pages protocol messages, with
 * SCM_RIGHTS file descriptors, on SOCK_SEQPACKET sockets.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "lazy-sock.h"

int lz_sock_addr(const char *work_dir, int dirfd, struct sockaddr_un *sa, socklen_t *len)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/*
	 * Through the open directory when there is one: the socket is then
	 * the one in the directory that was checked, whatever happens to the
	 * path's components meanwhile.
	 */
	if (dirfd >= 0)
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd,
			     LZ_LAZY_SOCK_NAME);
	else
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", work_dir,
			     LZ_LAZY_SOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

int lz_sock_timeouts(int sock, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

int lz_sock_connect(int sock, const struct sockaddr_un *sa, socklen_t len)
{
	/* A unix socket's connect waits for room in the listener's backlog
	 * at most SO_SNDTIMEO, then fails with EAGAIN. */
	for (;;) {
		if (!connect(sock, (const struct sockaddr *)sa, len))
			return 0;
		if (errno != EINTR)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
	}
}

bool lz_uid_trusted(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

int lz_peer_cred(int sock, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, cr, &len))
		return -errno;
	return len == sizeof(*cr) ? 0 : -EPROTO;
}

int lz_msg_sendv(int sock, uint16_t type, uint32_t seq, const struct iovec *iov, int niov,
		 const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * LZ_LAZY_MAX_FDS)];
	} cbuf;
	struct lz_lazy_hdr h = { .magic = LZ_LAZY_MAGIC, .version = LZ_LAZY_VERSION, .type = type,
				 .seq = seq };
	struct iovec v[4];
	struct msghdr mh = { .msg_iov = v, .msg_iovlen = 1 };
	size_t len = 0;

	if (niov > 3 || nfds > LZ_LAZY_MAX_FDS)
		return -EINVAL;
	for (int i = 0; i < niov; i++) {
		v[1 + i] = iov[i];
		len += iov[i].iov_len;
	}
	if (len > LZ_LAZY_MAX_MSG - sizeof(h))
		return -EMSGSIZE;
	h.len = (uint32_t)len;
	v[0] = (struct iovec){ &h, sizeof(h) };
	mh.msg_iovlen = (size_t)niov + 1;
	if (nfds) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);

		if (n >= 0)
			return (size_t)n == sizeof(h) + len ? 0 : -EMSGSIZE;
		if (errno != EINTR)
			return -errno;
	}
}

int lz_msg_send(int sock, uint16_t type, uint32_t seq, const void *payload, size_t len,
		const int *fds, int nfds)
{
	struct iovec v = { (void *)payload, len };

	return lz_msg_sendv(sock, type, seq, &v, len ? 1 : 0, fds, nfds);
}

int lz_reply(int sock, uint32_t seq, int status, const char *fmt, ...)
{
	struct lz_lazy_reply r = { .status = status, .version = LZ_LAZY_VERSION,
				   .pid = (uint32_t)getpid() };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.msg, sizeof(r.msg), fmt, ap);
	va_end(ap);
	return lz_msg_send(sock, LZ_LAZY_REPLY, seq, &r, sizeof(r), NULL, 0);
}

void lz_msg_close_fds(struct lz_msg *m)
{
	for (int i = 0; i < m->nfds; i++)
		close(m->fds[i]);
	m->nfds = 0;
}

/* Take the fds out of the control data; all of them, even when too many. */
static int take_fds(struct msghdr *mh, struct lz_msg *m)
{
	int extra = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->nfds < LZ_LAZY_MAX_FDS) {
				m->fds[m->nfds++] = fd;
			} else {
				close(fd);
				extra++;
			}
		}
	}
	return extra;
}

int lz_msg_recv(int sock, struct lz_msg *m, const char **why)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * (LZ_LAZY_MAX_FDS + 8))];
	} cbuf;
	struct iovec v = { m, sizeof(m->hdr) + sizeof(m->payload) };
	struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = cbuf.buf,
			     .msg_controllen = sizeof(cbuf.buf) };
	ssize_t n;

	m->nfds = 0;
	*why = NULL;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (take_fds(&mh, m) || (mh.msg_flags & MSG_CTRUNC)) {
		*why = "too many file descriptors on one message";
		goto bad;
	}
	if (n == 0 && !m->nfds)
		return -ENODATA;
	if (mh.msg_flags & MSG_TRUNC) {
		*why = "message longer than the protocol allows";
		goto bad;
	}
	if ((size_t)n < sizeof(m->hdr)) {
		*why = "message shorter than the header";
		goto bad;
	}
	if (m->hdr.magic != LZ_LAZY_MAGIC) {
		*why = "bad magic (not the lazarus lazy-pages protocol)";
		goto bad;
	}
	if (m->hdr.version != LZ_LAZY_VERSION) {
		*why = "unsupported protocol version";
		goto bad;
	}
	if (m->hdr.len != (size_t)n - sizeof(m->hdr)) {
		*why = "length field does not match the message";
		goto bad;
	}
	return 0;
bad:
	lz_msg_close_fds(m);
	return -EPROTO;
}

void lz_close_fds_except(const int *keep, int nkeep)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		int fd = atoi(de->d_name);
		bool kept = de->d_name[0] == '.' || fd <= STDERR_FILENO || fd == dirfd(dir);

		for (int i = 0; i < nkeep && !kept; i++)
			kept = fd == keep[i];
		if (!kept)
			close(fd);
	}
	closedir(dir);
}
