/*
 * sigframe.c - the signal frame the blob's rt_sigreturn consumes: the
 * dumped registers, blocked mask, sigaltstack and xsave state, laid out as
 * the x86_64 kernel reads them (struct rt_sigframe without siginfo).
 *
 * rt_sigreturn takes the frame at rsp - 8 (the return address slot), so
 * the rsp we hand over points at the ucontext. The xsave area must be
 * 64-byte aligned (XRSTOR faults otherwise), carry the software-reserved
 * bytes (struct _fpx_sw_bytes) with FP_XSTATE_MAGIC1, and have
 * FP_XSTATE_MAGIC2 right after xstate_size bytes; if either magic is off the
 * kernel silently restores only the legacy FXSAVE part and AVX state is lost.
 */
#include <signal.h>
#include <string.h>

#include "compiler.h"
#include "plugin.h"

#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#define FP_XSTATE_MAGIC1 0x46505853U
#define FP_XSTATE_MAGIC2 0x46505845U
#define FPX_SW_OFFSET 464
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* linux/signal.h; glibc 2.36 lacks it */
#endif
#define XSAVE_MIN 576 /* legacy area + xsave header */

struct k_sigcontext64 {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t di, si, bp, bx, dx, ax, cx, sp, ip, flags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate; /* address of the xsave area */
	uint64_t reserved1[8];
};
_Static_assert(sizeof(struct k_sigcontext64) == 256, "sigcontext_64 is 256 bytes");

struct k_stack {
	uint64_t ss_sp;
	int32_t ss_flags;
	int32_t pad;
	uint64_t ss_size;
};

struct k_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	struct k_stack uc_stack;
	struct k_sigcontext64 uc_mcontext;
	uint64_t uc_sigmask; /* the kernel's sigset_t: 64 signals */
};
_Static_assert(offsetof(struct k_ucontext, uc_mcontext) == 40, "uc_mcontext at 40");
_Static_assert(sizeof(struct k_ucontext) == 304, "ucontext is 304 bytes");

struct k_fpx_sw_bytes {
	uint32_t magic1;
	uint32_t extended_size; /* xstate_size + 4 (MAGIC2) */
	uint64_t xfeatures;
	uint32_t xstate_size;
	uint32_t padding[7];
};
_Static_assert(sizeof(struct k_fpx_sw_bytes) == 48, "_fpx_sw_bytes is 48 bytes");

/* [return address slot][ucontext] ... 64-aligned [xsave][MAGIC2] */
size_t plg_sigframe_size(const CoreEntry *core)
{
	return 8 + sizeof(struct k_ucontext) + 64 + core->xsave.len + sizeof(uint32_t);
}

static void fill_mcontext(struct k_sigcontext64 *sc, const X8664Regs *r)
{
	*sc = (struct k_sigcontext64){
		.r8 = r->r8, .r9 = r->r9, .r10 = r->r10, .r11 = r->r11,
		.r12 = r->r12, .r13 = r->r13, .r14 = r->r14, .r15 = r->r15,
		.di = r->di, .si = r->si, .bp = r->bp, .bx = r->bx,
		.dx = r->dx, .ax = r->ax, .cx = r->cx, .sp = r->sp,
		.ip = r->ip, .flags = r->flags,
		.cs = (uint16_t)r->cs, .ss = (uint16_t)r->ss,
	};
}

/* The kernel wrote these at dump time; write them again for this frame. */
static void fill_xsave(uint8_t *x, const CoreEntry *c, uint64_t xfeatures)
{
	struct k_fpx_sw_bytes sw = {
		.magic1 = FP_XSTATE_MAGIC1,
		.extended_size = (uint32_t)c->xsave.len + sizeof(uint32_t),
		.xfeatures = xfeatures,
		.xstate_size = (uint32_t)c->xsave.len,
	};
	uint32_t magic2 = FP_XSTATE_MAGIC2;

	memcpy(x, c->xsave.data, c->xsave.len);
	memcpy(x + FPX_SW_OFFSET, &sw, sizeof(sw));
	memcpy(x + c->xsave.len, &magic2, sizeof(magic2));
}

uint64_t plg_build_sigframe(uint8_t *at, const CoreEntry *c, uint64_t xfeatures)
{
	struct k_ucontext *uc = (struct k_ucontext *)(at + 8);
	uint8_t *xsave = (uint8_t *)ALIGN_UP((uintptr_t)(uc + 1), 64);

	memset(at, 0, plg_sigframe_size(c));
	uc->uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	uc->uc_stack.ss_sp = c->sas->ss_sp;
	uc->uc_stack.ss_size = c->sas->ss_size;
	uc->uc_stack.ss_flags = (int32_t)(c->sas->ss_flags & (SS_DISABLE | SS_AUTODISARM));
	fill_mcontext(&uc->uc_mcontext, c->regs);
	uc->uc_sigmask = c->blocked_sigset;
	if (c->xsave.len >= XSAVE_MIN) {
		fill_xsave(xsave, c, xfeatures);
		uc->uc_flags |= UC_FP_XSTATE;
		uc->uc_mcontext.fpstate = (uint64_t)(uintptr_t)xsave;
	}
	return (uint64_t)(uintptr_t)uc;
}
