/*
 * sys.h - raw x86_64 syscalls for the restorer blob. No libc here: every
 * stub returns the kernel's value, i.e. -errno on failure.
 */
#ifndef LZ_BLOB_SYS_H
#define LZ_BLOB_SYS_H

#include <stdint.h>
#include <asm/unistd.h>

static inline long sys6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys0(nr) sys6(nr, 0, 0, 0, 0, 0, 0)
#define sys1(nr, a) sys6(nr, (long)(a), 0, 0, 0, 0, 0)
#define sys2(nr, a, b) sys6(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(nr, a, b, c, d) sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(nr, a, b, c, d, e) \
	sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

static inline long sys_write(int fd, const void *buf, unsigned long len)
{
	return sys3(__NR_write, fd, buf, len);
}

static inline long sys_read(int fd, void *buf, unsigned long len)
{
	return sys3(__NR_read, fd, buf, len);
}

static inline long sys_close(int fd)
{
	return sys1(__NR_close, fd);
}

static inline long sys_fcntl(int fd, int cmd, void *arg)
{
	return sys3(__NR_fcntl, fd, cmd, arg);
}

static inline long sys_pread64(int fd, void *buf, unsigned long len, uint64_t off)
{
	return sys4(__NR_pread64, fd, buf, len, off);
}

static inline long sys_mmap(uint64_t addr, uint64_t len, int prot, int flags, int fd,
			    uint64_t off)
{
	return sys6(__NR_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
}

static inline long sys_shmat(int shmid, uint64_t addr, int flags)
{
	return sys3(__NR_shmat, shmid, addr, flags);
}

static inline long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, int flags,
			      uint64_t new_addr)
{
	return sys5(__NR_mremap, old, old_len, new_len, flags, new_addr);
}

static inline long sys_munmap(uint64_t addr, uint64_t len)
{
	return sys2(__NR_munmap, addr, len);
}

static inline long sys_mprotect(uint64_t addr, uint64_t len, int prot)
{
	return sys3(__NR_mprotect, addr, len, prot);
}

static inline long sys_madvise(uint64_t addr, uint64_t len, int advice)
{
	return sys3(__NR_madvise, addr, len, advice);
}

static inline long sys_mlock(uint64_t addr, uint64_t len)
{
	return sys2(__NR_mlock, addr, len);
}

static inline long sys_mincore(uint64_t addr, uint64_t len, unsigned char *vec)
{
	return sys3(__NR_mincore, addr, len, vec);
}

static inline long sys_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
			     unsigned long a5)
{
	return sys5(__NR_prctl, option, a2, a3, a4, a5);
}

static inline long sys_arch_prctl(int code, unsigned long addr)
{
	return sys2(__NR_arch_prctl, code, addr);
}

static inline long sys_set_tid_address(uint64_t tidptr)
{
	return sys1(__NR_set_tid_address, tidptr);
}

static inline long sys_set_robust_list(uint64_t head, uint64_t len)
{
	return sys2(__NR_set_robust_list, head, len);
}

static inline long sys_rseq(uint64_t rseq, uint32_t len, int flags, uint32_t sig)
{
	return sys4(__NR_rseq, rseq, len, flags, sig);
}

static inline long sys_setitimer(int which, const void *new_value)
{
	return sys3(__NR_setitimer, which, new_value, 0);
}

static inline long sys_prlimit64(int resource, const void *new_lim, void *old_lim)
{
	return sys4(__NR_prlimit64, 0, resource, new_lim, old_lim);
}

static inline long sys_clock_gettime(int clk, void *ts)
{
	return sys2(__NR_clock_gettime, clk, ts);
}

static inline long sys_ioctl(int fd, unsigned long req, void *arg)
{
	return sys3(__NR_ioctl, fd, req, arg);
}

static inline long sys_getppid(void)
{
	return sys0(__NR_getppid);
}

static inline long sys_nanosleep(const void *req)
{
	return sys2(__NR_nanosleep, req, 0);
}

static inline long sys_getpid(void)
{
	return sys0(__NR_getpid);
}

struct sys_iovec {
	uint64_t base;
	uint64_t len;
};

static inline long sys_process_vm_writev(int pid, const struct sys_iovec *local,
					 const struct sys_iovec *remote)
{
	return sys6(__NR_process_vm_writev, pid, (long)local, 1, (long)remote, 1, 0);
}

static inline long sys_gettid(void)
{
	return sys0(__NR_gettid);
}

static inline long sys_rt_sigqueueinfo(int pid, int sig, const void *info)
{
	return sys3(__NR_rt_sigqueueinfo, pid, sig, info);
}

static inline long sys_rt_tgsigqueueinfo(int tgid, int tid, int sig, const void *info)
{
	return sys4(__NR_rt_tgsigqueueinfo, tgid, tid, sig, info);
}

static inline long sys_capget(void *hdr, void *data)
{
	return sys2(__NR_capget, hdr, data);
}

static inline long sys_capset(void *hdr, const void *data)
{
	return sys2(__NR_capset, hdr, data);
}

static inline long sys_setgroups(uint32_t n, const uint32_t *groups)
{
	return sys2(__NR_setgroups, n, groups);
}

static inline long sys_getgroups(uint32_t n, uint32_t *groups)
{
	return sys2(__NR_getgroups, n, groups);
}

static inline long sys_setresuid(uint32_t r, uint32_t e, uint32_t s)
{
	return sys3(__NR_setresuid, r, e, s);
}

static inline long sys_setresgid(uint32_t r, uint32_t e, uint32_t s)
{
	return sys3(__NR_setresgid, r, e, s);
}

static inline long sys_getresuid(uint32_t *r, uint32_t *e, uint32_t *s)
{
	return sys3(__NR_getresuid, r, e, s);
}

static inline long sys_getresgid(uint32_t *r, uint32_t *e, uint32_t *s)
{
	return sys3(__NR_getresgid, r, e, s);
}

/* Both return the previous id, never an error: check with a second call. */
static inline long sys_setfsuid(uint32_t id)
{
	return sys1(__NR_setfsuid, id);
}

static inline long sys_setfsgid(uint32_t id)
{
	return sys1(__NR_setfsgid, id);
}

/* FUTEX_WAIT/WAKE, private: the threads share the mm. */
static inline long sys_futex(uint32_t *uaddr, int op, uint32_t val, const void *timeout)
{
	return sys4(__NR_futex, uaddr, op | 128 /* FUTEX_PRIVATE_FLAG */, val, timeout);
}

static inline long sys_setpriority(int which, int who, int prio)
{
	return sys3(__NR_setpriority, which, who, prio);
}

static inline long sys_sched_setscheduler(int pid, int policy, const int *prio)
{
	return sys3(__NR_sched_setscheduler, pid, policy, prio);
}

static inline long sys_sched_setaffinity(int pid, unsigned long len, const void *mask)
{
	return sys3(__NR_sched_setaffinity, pid, len, mask);
}

static inline long sys_sched_getaffinity(int pid, unsigned long len, void *mask)
{
	return sys3(__NR_sched_getaffinity, pid, len, mask);
}

static inline __attribute__((noreturn)) void sys_exit_group(int code)
{
	sys1(__NR_exit_group, code);
	for (;;)
		__asm__ volatile("ud2");
}

#endif
