/*
 * finish.c - the blob's last instructions. They unmap the bootstrap area
 * except the page(s) holding this code and the signal frame, then
 * rt_sigreturn into the target. Nothing here may touch the stack: it lives
 * in the part being unmapped. The linker script puts .blob_finish on its own
 * page right before the frame, so only that remains of the restorer.
 *
 * lz_blob_finish(lo, lo_len, hi, hi_len, frame): rdi, rsi, rdx, rcx, r8.
 */
__asm__(".pushsection .blob_finish, \"ax\", @progbits\n"
	".globl lz_blob_finish\n"
	".hidden lz_blob_finish\n"
	".type lz_blob_finish, @function\n"
	"lz_blob_finish:\n"
	"	mov %rdx, %r12\n"	/* syscall clobbers rcx and r11 */
	"	mov %rcx, %r13\n"
	"	mov %r8, %r14\n"
	"	test %rsi, %rsi\n"
	"	jz 1f\n"
	"	mov $11, %eax\n"	/* munmap(lo, lo_len) */
	"	syscall\n"
	"1:	test %r13, %r13\n"
	"	jz 2f\n"
	"	mov %r12, %rdi\n"
	"	mov %r13, %rsi\n"
	"	mov $11, %eax\n"	/* munmap(hi, hi_len) */
	"	syscall\n"
	"2:	mov %r14, %rsp\n"	/* the kernel reads the frame at rsp - 8 */
	"	mov $15, %eax\n"	/* rt_sigreturn */
	"	syscall\n"
	"	ud2\n"
	".size lz_blob_finish, . - lz_blob_finish\n"
	".popsection\n");
