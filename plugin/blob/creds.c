/*
 * creds.c - the thread's credentials, restored last: after this the process
 * holds exactly what it held when dumped, never more, or it does not run.
 *
 * We start as the lazarus child: root with restore's capabilities. The
 * order is forced by the kernel (kernel/sys.c, kernel/capability.c,
 * security/commoncap.c):
 *
 *  1. capset: effective = permitted = all we have, inheritable = dumped.
 *     Every later step needs a capability in the effective set, and an
 *     ambient capability can only be raised while it is permitted and
 *     inheritable.
 *  2. ambient: clear all, raise each dumped one.
 *  3. bounding set: drop what was not in it (PR_CAPBSET_DROP needs
 *     CAP_SETPCAP). A dumped one we lack cannot be raised: that fails.
 *  4. securebits = SECBIT_NO_SETUID_FIXUP for the switch: without it the
 *     setresuid from 0 to non-zero ids clears permitted, effective and
 *     ambient (cap_emulate_setxuid), and step 6 needs CAP_SETPCAP.
 *  5. setgroups, setresgid, setresuid, setfsgid, setfsuid (CAP_SETGID,
 *     CAP_SETUID). setfs*id return the old id, never an error: checked in 8.
 *  6. securebits = dumped (needs CAP_SETPCAP, still effective).
 *  7. capset(dumped effective, permitted, inheritable): only drops. The
 *     ambient set keeps what stays permitted and inheritable.
 *  8. read everything back and compare: the image could ask for what the
 *     kernel silently adjusts; a difference fails the restore.
 *  9. PR_SET_DUMPABLE: a change of euid, egid, fsuid or fsgid reset it (and
 *     the parent-death signal, which blob_release() sets afterwards).
 * 10. PR_SET_NO_NEW_PRIVS, last.
 *
 * The raw syscalls change the calling thread only: each thread restores its
 * own credentials.
 */
#include <asm/errno.h>
#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/securebits.h>

#include "blob.h"
#include "sys.h"

#define NO_ID 0xffffffffU

struct cap_data {
	uint32_t eff, prm, inh;
};

static void creds_fail(struct blob *b, enum lz_creds_op op, long err, uint64_t detail)
{
	blob_fail(b, LZ_STEP_CREDS, err, (uint32_t)op, detail);
}

static long caps_get(struct cap_data d[2])
{
	struct {
		uint32_t version;
		int32_t pid;
	} hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };

	return sys_capget(&hdr, d);
}

static long caps_set(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct {
		uint32_t version;
		int32_t pid;
	} hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct cap_data d[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};

	return sys_capset(&hdr, d);
}

static uint64_t caps_word(const struct cap_data d[2], int which)
{
	uint32_t lo = which == 0 ? d[0].eff : which == 1 ? d[0].prm : d[0].inh;
	uint32_t hi = which == 0 ? d[1].eff : which == 1 ? d[1].prm : d[1].inh;

	return (uint64_t)hi << 32 | lo;
}

/* Steps 1 and 2. */
static void creds_caps_open(struct blob *b, const struct lz_blob_creds *c)
{
	struct cap_data d[2];
	uint64_t prm;
	long r = caps_get(d);

	if (r)
		creds_fail(b, LZ_CREDS_CAPGET, r, 0);
	prm = caps_word(d, 1);
	r = caps_set(prm, prm, c->cap_inh);
	if (r)
		creds_fail(b, LZ_CREDS_CAPSET_KEEP, r, 0);
	r = sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (r)
		creds_fail(b, LZ_CREDS_AMBIENT, r, 64);
	for (unsigned cap = 0; cap < 64; cap++) {
		if (!(c->cap_amb & (1ULL << cap)))
			continue;
		r = sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
		if (r)
			creds_fail(b, LZ_CREDS_AMBIENT, r, cap);
	}
}

/* Step 3. Capabilities past the kernel's last one read as EINVAL. */
static void creds_bounding(struct blob *b, const struct lz_blob_creds *c)
{
	for (unsigned cap = 0; cap < 64; cap++) {
		int want = !!(c->cap_bnd & (1ULL << cap));
		long r = sys_prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r == -EINVAL) {
			if (c->cap_bnd >> cap)
				creds_fail(b, LZ_CREDS_BOUNDING, -EINVAL, cap);
			return;
		}
		if (r < 0)
			creds_fail(b, LZ_CREDS_BOUNDING, r, cap);
		if (r == want)
			continue;
		if (want) /* we do not have it: it cannot be given */
			creds_fail(b, LZ_CREDS_BOUNDING, -EPERM, cap);
		r = sys_prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
		if (r)
			creds_fail(b, LZ_CREDS_BOUNDING, r, cap);
	}
}

/* Steps 4 and 5. */
static void creds_ids(struct blob *b, const struct lz_blob_creds *c)
{
	long r = sys_prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0);

	if (r)
		creds_fail(b, LZ_CREDS_FIXUP, r, SECBIT_NO_SETUID_FIXUP);
	r = sys_setgroups(c->nr_groups, (const uint32_t *)(uintptr_t)c->groups);
	if (r)
		creds_fail(b, LZ_CREDS_SETGROUPS, r, c->nr_groups);
	r = sys_setresgid(c->gid, c->egid, c->sgid);
	if (r)
		creds_fail(b, LZ_CREDS_SETRESGID, r, c->gid);
	r = sys_setresuid(c->uid, c->euid, c->suid);
	if (r)
		creds_fail(b, LZ_CREDS_SETRESUID, r, c->uid);
	sys_setfsgid(c->fsgid);
	sys_setfsuid(c->fsuid);
}

/* Steps 6 and 7. */
static void creds_caps_close(struct blob *b, const struct lz_blob_creds *c)
{
	long r = sys_prctl(PR_SET_SECUREBITS, c->securebits, 0, 0, 0);

	if (r)
		creds_fail(b, LZ_CREDS_SECUREBITS, r, c->securebits);
	r = caps_set(c->cap_eff, c->cap_prm, c->cap_inh);
	if (r)
		creds_fail(b, LZ_CREDS_CAPSET, r, 0);
}

/* 1 or 0: is CAP in the ambient set (ambient), in the bounding set (!ambient). */
static long creds_has(int ambient, unsigned cap)
{
	return ambient ? sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0)
		       : sys_prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
}

/* The ambient or bounding set is exactly WANT (EINVAL: past the last capability). */
static int creds_same_bits(uint64_t want, int ambient)
{
	for (unsigned cap = 0; cap < 64; cap++) {
		long r = creds_has(ambient, cap);

		if (r == -EINVAL)
			return !(want >> cap);
		if (r < 0 || r != !!(want & (1ULL << cap)))
			return 0;
	}
	return 1;
}

/* Step 8: what the kernel holds now, against the dump. */
static void creds_check(struct blob *b, const struct lz_blob_creds *c)
{
	uint32_t r_, e_, s_;
	struct cap_data d[2];

	if (sys_getresuid(&r_, &e_, &s_) || r_ != c->uid || e_ != c->euid || s_ != c->suid ||
	    (uint32_t)sys_setfsuid(NO_ID) != c->fsuid)
		creds_fail(b, LZ_CREDS_CHECK, -EPERM, LZ_CREDS_CHECK_UIDS);
	if (sys_getresgid(&r_, &e_, &s_) || r_ != c->gid || e_ != c->egid || s_ != c->sgid ||
	    (uint32_t)sys_setfsgid(NO_ID) != c->fsgid)
		creds_fail(b, LZ_CREDS_CHECK, -EPERM, LZ_CREDS_CHECK_GIDS);
	if (sys_getgroups(0, 0) != (long)c->nr_groups)
		creds_fail(b, LZ_CREDS_CHECK, -EPERM, LZ_CREDS_CHECK_GROUPS);
	if (caps_get(d) || caps_word(d, 0) != c->cap_eff || caps_word(d, 1) != c->cap_prm ||
	    caps_word(d, 2) != c->cap_inh)
		creds_fail(b, LZ_CREDS_CHECK, -EPERM, LZ_CREDS_CHECK_CAPS);
	if (!creds_same_bits(c->cap_amb, 1))
		creds_fail(b, LZ_CREDS_CHECK, -EPERM, LZ_CREDS_CHECK_AMBIENT);
	if (!creds_same_bits(c->cap_bnd, 0))
		creds_fail(b, LZ_CREDS_CHECK, -EPERM, LZ_CREDS_CHECK_BOUNDING);
	if (sys_prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) != (long)c->securebits)
		creds_fail(b, LZ_CREDS_CHECK, -EPERM, LZ_CREDS_CHECK_SECUREBITS);
}

void blob_restore_creds(struct blob *b)
{
	const struct lz_blob_creds *c = &b->t->creds;
	long r;

	creds_caps_open(b, c);
	creds_bounding(b, c);
	creds_ids(b, c);
	creds_caps_close(b, c);
	creds_check(b, c);
	if (c->no_new_privs) {
		r = sys_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		if (r)
			creds_fail(b, LZ_CREDS_NO_NEW_PRIVS, r, 0);
	}
}

/*
 * Step 9, once for the process (the flag is the mm's) and after every
 * thread changed its ids: each change resets it.
 */
void blob_restore_dumpable(struct blob *b)
{
	int32_t d = b->a->dumpable;
	long r;

	if (d != 0 && d != 1)
		return;
	r = sys_prctl(PR_SET_DUMPABLE, (unsigned long)d, 0, 0, 0);
	if (r)
		creds_fail(b, LZ_CREDS_DUMPABLE, r, (uint64_t)d);
}
