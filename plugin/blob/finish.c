/*
 * finish.c - the blob's last instructions: point rsp at the signal frame
 * and rt_sigreturn into the target. Nothing here touches the stack.
 *
 * The bootstrap area (this code, the frame, the blob stack) is still
 * mapped when rt_sigreturn returns into the target. The lazarus parent
 * traces the process at that point and unmaps the area from outside
 * (src/restore-finish.c): the one thing this code cannot do for itself.
 *
 * lz_blob_finish(frame): rdi.
 */
__asm__(".pushsection .text, \"ax\", @progbits\n"
	".globl lz_blob_finish\n"
	".hidden lz_blob_finish\n"
	".type lz_blob_finish, @function\n"
	"lz_blob_finish:\n"
	"	mov %rdi, %rsp\n"	/* the kernel reads the frame at rsp - 8 */
	"	mov $15, %eax\n"	/* rt_sigreturn */
	"	syscall\n"
	"	ud2\n"
	".size lz_blob_finish, . - lz_blob_finish\n"
	".popsection\n");
