/*
 * uapi/linux/prctl.h - prctl options that the 6.1 system headers lack.
 * Include this instead of <linux/prctl.h>.
 *
 * Origin: the Linux kernel's userspace ABI (include/uapi/linux/prctl.h,
 * GPL-2.0 WITH Linux-syscall-note): PR_TIMER_CREATE_RESTORE_IDS of Linux
 * 6.16 ("posix-timers: Provide a mechanism to allocate a given timer ID").
 * While it is on, timer_create() reads the id it must give the new timer
 * from its timer_t pointer (EBUSY: taken); it is per process and off by
 * default. The values were typed from the documented ABI and checked on
 * the 6.18 kernel of these machines. Each addition is guarded so a newer
 * header wins.
 */
#ifndef LZ_UAPI_LINUX_PRCTL_H
#define LZ_UAPI_LINUX_PRCTL_H

#include <linux/prctl.h>

#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#define PR_TIMER_CREATE_RESTORE_IDS_GET 2
#endif

#endif
