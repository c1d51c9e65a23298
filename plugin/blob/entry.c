/* entry.c - placeholder restorer blob entry until the restorer lands. */
__attribute__((section(".text.entry"), used, visibility("default"))) void lz_blob_entry(void *arg)
{
	(void)arg;
	for (;;)
		__asm__ volatile("ud2");
}
