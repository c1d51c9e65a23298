"""Files dump and restore write, and what a failed re-dump leaves (issue 9, items 4 and 6).

As an attacker would: symlinks planted at every name the dump writes, files
pre-created by another user, images directories others can write to or that
are symlinks. As an unlucky operator would: a second dump into a full
tmpfs. The victim files stay untouched, the refusals are one line, the
target keeps running, the first checkpoint still restores and verifies
(eager and lazy), nothing temporary is left, and every file dump and
restore write has mode 0600.
"""
import hashlib
import os
import stat
import subprocess

import pytest

import harness
from harness import alive, assert_not_stopped

NOBODY = 65534
STAGE_PREFIX = ".lazarus-new."
# Every image file of a one-process dump; {pid} is the dumped pid.
IMAGE_FILES = ["inventory.img", "pstree.img", "core-{pid}.img", "task-{pid}.img",
               "sigacts-{pid}.img", "mm-{pid}.img", "pagemap-{pid}.img", "pages-{pid}.img",
               "fs-{pid}.img", "files.img", "fdinfo-{pid}.img"]
VICTIM_TEXT = "precious, not lazarus's\n"


def image_names(pid):
    return [n.format(pid=pid) for n in IMAGE_FILES]


def snapshot(d):
    """{name: (mode, uid, sha256)} of every entry in directory d (symlinks not followed)."""
    out = {}
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            digest = "-> " + os.readlink(p)
        else:
            digest = stat.filemode(st.st_mode)
        out[n] = (stat.S_IMODE(st.st_mode), st.st_uid, digest)
    return out


def assert_private(d, names=None, skip=()):
    """Every regular file in d (or those named) is ours and mode 0600."""
    for n in names if names is not None else os.listdir(d):
        if n in skip:
            continue
        st = os.lstat(os.path.join(d, n))
        assert stat.S_ISREG(st.st_mode), f"{d}/{n} is not a regular file: {stat.filemode(st.st_mode)}"
        assert stat.S_IMODE(st.st_mode) == 0o600, \
            f"{d}/{n} has mode {stat.S_IMODE(st.st_mode):04o}, want 0600"
        assert st.st_uid == os.geteuid(), f"{d}/{n} is owned by uid {st.st_uid}"


def assert_no_temporaries(d):
    left = [n for n in os.listdir(d) if n.startswith(".")]
    assert not left, f"temporaries left in {d}: {left}"


def assert_refused(r, w, c0, want):
    """One error line containing want; w still running, untraced, working."""
    assert r.rc == 1, f"not refused\n{r.describe()}"
    assert len(r.errors) == 1, f"want exactly one error line\n{r.describe()}"
    assert want in r.errors[0], f"error line does not say {want!r}\n{r.describe()}"
    assert_not_stopped(w.pid)
    assert w.check_pass()["ctr"] > c0


def victim(env):
    v = env.base / "victim"
    v.write_text(VICTIM_TEXT)
    v.chmod(0o644)
    return v


# ------------------------------------------------------------ planted symlinks


def test_planted_symlinks_are_replaced_not_followed(env, mode):
    """Symlinks to a victim file outside at every image name, at the stats
    file, at the temporary names earlier versions used and at a staging
    directory name: the dump writes its own files, replacing the links,
    the victim is untouched, and the dump restores."""
    w = env.lzwork(mib=2)
    before = w.check_pass()
    img = env.path("img")
    v = victim(env)
    vdir = env.path("victim-dir")
    (vdir / "keep").write_text(VICTIM_TEXT)
    names = image_names(w.pid) + ["stats-dump.json"]
    planted = names + [f".{n}.tmp" for n in names]
    for n in planted:
        (img / n).symlink_to(v)
    (img / (STAGE_PREFIX + "0" * 32)).symlink_to(vdir)
    env.dump(w, img)
    assert v.read_text() == VICTIM_TEXT, "the dump wrote through a planted symlink"
    assert stat.S_IMODE(v.stat().st_mode) == 0o644
    assert (vdir / "keep").read_text() == VICTIM_TEXT
    assert_private(img, names)
    w = env.restore(img, mode, w)
    after = w.check_pass()
    assert after["seq"] == before["seq"] + 1 and after["prev"] == before["ctr"]
    w.stop()


def test_log_symlink_refused(env):
    """-o naming a planted symlink: refused with one line before anything
    is touched; the victim is untouched."""
    w = env.lzwork(mib=1)
    c0 = w.check_pass()["ctr"]
    img = env.path("img")
    v = victim(env)
    (img / "dump.log").symlink_to(v)
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-o", "dump.log", "-v4")
    assert_refused(r, w, c0, "log file dump.log: is a symbolic link")
    assert v.read_text() == VICTIM_TEXT
    assert not (img / "inventory.img").exists()
    w.stop()


# ------------------------------------------------------------ pre-created files, modes


def test_precreated_files_not_used_and_all_0600(env, mode):
    """Another user's world-readable files at the temporary names earlier
    versions used are neither written nor read; a log of our own with mode
    0644 becomes 0600; every file dump and restore write in DIR, WORKDIR
    and the -o logs is ours with mode 0600."""
    w = env.lzwork(mib=2)
    before = w.check_pass()
    img, work = env.path("img"), env.path("work")
    pre = {}
    for n in image_names(w.pid) + ["stats-dump.json"]:
        p = img / f".{n}.tmp"
        p.write_text("another user's file\n")
        p.chmod(0o666)
        os.chown(p, NOBODY, NOBODY)
        pre[p.name] = None
    (img / "dump.log").write_text("an old log of ours\n")
    (img / "dump.log").chmod(0o644)
    snap = snapshot(img)
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-o", "dump.log", "-v4")
    assert r.rc == 0 and not r.errors, r.describe()
    harness.reap(w.pid) if w.proc is None else w.proc.wait(harness.EXIT_TIMEOUT)
    now = snapshot(img)
    for n in pre:
        assert now[n] == snap[n], f"{n}, pre-created by another user, was changed"
    ours = image_names(w.pid) + ["stats-dump.json", "dump.log"]
    assert_private(img, ours)
    assert "an old log of ours" in (img / "dump.log").read_text()

    args = env.restore_args(img, mode, True) + ["-W", work, "-o", work / "restore.log", "-v4"]
    r = env.lazarus(*args)
    env.pids.add(w.pid)
    assert r.rc == 0 and not r.errors, r.describe()
    w = w.restored()
    after = w.check_pass()
    assert after["seq"] == before["seq"] + 1
    # The lazy-pages daemon's own files (socket, lock, log, stats) are its part.
    assert_private(work, ["stats-restore.json", "restore.log"])
    assert_private(img, ours)
    w.stop()


def test_log_of_another_user_refused(env):
    """-o naming a file another user owns: refused, the file untouched."""
    w = env.lzwork(mib=1)
    c0 = w.check_pass()["ctr"]
    img = env.path("img")
    log = img / "dump.log"
    log.write_text("nobody's\n")
    os.chown(log, NOBODY, NOBODY)
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-o", "dump.log")
    assert_refused(r, w, c0, f"log file dump.log: owned by another user (uid {NOBODY})")
    assert log.read_text() == "nobody's\n"
    w.stop()


def test_log_dir_writable_by_others_refused(env):
    """-o into a directory anyone can write to (not sticky): refused."""
    w = env.lzwork(mib=1)
    c0 = w.check_pass()["ctr"]
    pub = env.path("pub")
    pub.chmod(0o777)
    log = pub / "dump.log"
    r = env.lazarus("dump", "-t", w.pid, "-D", env.path("img"), "-o", log)
    assert_refused(r, w, c0, f"log file {log}: its directory: writable by others (mode 0777)")
    assert not log.exists()
    w.stop()


# ------------------------------------------------------------ the images directory


def make_dir(env, how):
    """An images directory that others could write to, and the reason dump gives."""
    if how == "tmp":
        return "/tmp", "writable by others (mode 1777)"
    d = env.path("img")
    if how == "world-writable":
        d.chmod(0o777)
        return d, "writable by others (mode 0777)"
    if how == "sticky":
        d.chmod(0o1777)
        return d, "writable by others (mode 1777)"
    if how == "group-writable":
        d.chmod(0o770)
        return d, "writable by its group (mode 0770)"
    if how == "other-owner":
        os.chown(d, NOBODY, NOBODY)
        return d, f"owned by another user (uid {NOBODY})"
    if how in ("symlink", "symlink-slash"):
        link = env.base / "img-link"
        link.symlink_to(d)
        return (f"{link}/" if how == "symlink-slash" else link), "is a symbolic link"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["world-writable", "sticky", "tmp", "group-writable",
                                 "other-owner", "symlink", "symlink-slash"])
def test_unsafe_images_dir_refused(env, how):
    """Refused with one line naming the directory and why, before the target
    is touched; nothing is written there."""
    w = env.lzwork(mib=1)
    c0 = w.check_pass()["ctr"]
    d, why = make_dir(env, how)
    before = set(os.listdir(d))
    r = env.lazarus("dump", "-t", w.pid, "-D", d)
    assert_refused(r, w, c0, f"dump: images directory {d}: {why}")
    if how != "tmp":  # others write to /tmp while we look
        assert set(os.listdir(d)) == before, "a refused dump wrote into the directory"
    w.stop()


# ------------------------------------------------------------ re-dumps


def test_second_dump_replaces_first(env, mode):
    """A second dump of the same process into the same directory replaces
    the first completely: the restore comes back in the newer state, and
    nothing of the first or of the staging is left."""
    w = env.lzwork(mib=2)
    img = env.path("img")
    first = w.check_pass()
    env.dump(w, img, leave_running=True)
    old = snapshot(img)
    second = w.check_pass()
    assert second["ctr"] > first["ctr"]
    env.dump(w, img)
    new = snapshot(img)
    assert set(new) == set(old), "the second dump left other files than the first"
    assert all(new[n] != old[n] for n in image_names(w.pid)), "an image was not replaced"
    assert_no_temporaries(img)
    assert_private(img)
    w = env.restore(img, mode, w)
    after = w.check_pass()
    assert after["seq"] == second["seq"] + 1 and after["prev"] == second["ctr"], \
        f"restored the older state: {after}"
    w.stop()


def test_redump_of_another_process_removes_old_files(env):
    """Dumping another process into a directory that holds a dump removes
    the files of the old dump the new one does not list (other pid)."""
    a = env.lzwork(name="a", mib=1)
    b = env.lzwork(name="b", mib=1)
    img = env.path("img")
    env.dump(a, img, leave_running=True)
    bstate = b.check_pass()
    env.dump(b, img)
    assert sorted(os.listdir(img)) == sorted(image_names(b.pid) + ["stats-dump.json"])
    b = env.restore(img, "eager", b)
    assert b.check_pass()["seq"] == bstate["seq"] + 1
    assert alive(a.pid)
    a.check_pass()
    a.stop()
    b.stop()


@pytest.fixture
def small_tmpfs(env):
    """An 8 MiB tmpfs under the test's directory, unmounted at teardown."""
    mnt = env.path("tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "lzt-tmpfs", str(mnt)],
                   check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_failed_redump_keeps_first_checkpoint(env, mode, small_tmpfs):
    """A second dump into a full tmpfs fails with one line naming the file
    and the problem; the target keeps running; the first checkpoint is
    untouched, no temporary is left, and it restores and verifies."""
    w = env.lzwork(mib=2)
    img = small_tmpfs / "img"
    img.mkdir(mode=0o700)
    first = w.check_pass()
    env.dump(w, img, leave_running=True)
    snap = snapshot(img)
    # Leave too little room for a second copy of the 2 MiB of pages.
    st = os.statvfs(small_tmpfs)
    free = st.f_bavail * st.f_frsize
    filler = small_tmpfs / "filler"
    with open(filler, "wb") as f:
        f.write(b"\xa5" * max(free - (1 << 20), 0))
    c0 = w.check_pass()["ctr"]
    r = env.lazarus("dump", "-t", w.pid, "-D", img)
    assert_refused(r, w, c0, f"pages-{w.pid}.img: No space left on device")
    assert snapshot(img) == snap, "the failed dump changed the first checkpoint"
    assert_no_temporaries(img)
    # Room for restore's own files again; then the first checkpoint, not the running process.
    filler.unlink()
    harness.kill_and_reap(w.pid)
    w.proc = None
    harness.rewind_files(img, env.base)  # its log grew after the -R dump
    w = env.restore(img, mode, w)
    after = w.check_pass()
    assert after["seq"] == first["seq"] + 1 and after["prev"] == first["ctr"], \
        f"not the state of the first checkpoint: {after}"
    w.stop()


def redump_env(env, w, img, var, n):
    """dump -t w -D img with the commit test hook var=n; returns the Result."""
    argv = [str(harness.LAZARUS), "dump", "-t", str(w.pid), "-D", str(img)]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=harness.LAZARUS_TIMEOUT, env=dict(os.environ, **{var: str(n)}))
    return harness.Result(argv, p.returncode, p.stdout, p.stderr, None)


def restore_first(env, w, img, mode, first):
    """Kill the running w, restore the checkpoint in img, check it is first's state."""
    harness.kill_and_reap(w.pid)
    w.proc = None
    harness.rewind_files(img, env.base)
    w = env.restore(img, mode, w)
    after = w.check_pass()
    assert after["seq"] == first["seq"] + 1 and after["prev"] == first["ctr"], \
        f"not the state of the first checkpoint: {after}"
    w.stop()


@pytest.mark.parametrize("step", [0, 3, 10])
def test_commit_failure_puts_old_files_back(env, step):
    """A commit failing after some of the new files were exchanged into the
    images directory (LAZARUS_TEST_COMMIT_FAIL=N: after N moves; 10 is just
    before inventory.img) exchanges them back: the directory holds the first
    dump exactly, nothing temporary is left, the target runs on."""
    w = env.lzwork(mib=1)
    img = env.path("img")
    first = w.check_pass()
    env.dump(w, img, leave_running=True)
    snap = snapshot(img)
    c0 = w.check_pass()["ctr"]
    r = redump_env(env, w, img, "LAZARUS_TEST_COMMIT_FAIL", step)
    assert_refused(r, w, c0, "committing the dump: Input/output error (injected by "
                             "LAZARUS_TEST_COMMIT_FAIL)")
    assert snapshot(img) == snap, "the failed commit did not put the first dump back"
    assert_no_temporaries(img)
    restore_first(env, w, img, "eager", first)


def test_commit_crash_rolled_back_by_next_dump(env, mode):
    """lazarus killed in the middle of a commit (LAZARUS_TEST_COMMIT_CRASH=4)
    leaves the old inventory with four new files, which restore refuses by
    name; the next dump into the directory, even one that fails at once,
    first puts the previous dump's files back from the staging directory:
    the first checkpoint then restores and verifies."""
    w = env.lzwork(mib=1)
    img = env.path("img")
    first = w.check_pass()
    env.dump(w, img, leave_running=True)
    snap = snapshot(img)
    c0 = w.check_pass()["ctr"]
    r = redump_env(env, w, img, "LAZARUS_TEST_COMMIT_CRASH", 4)
    assert r.rc == -9, r.describe()

    def let_go():  # the kernel detaches a dead tracer's tracees; the wake-up may lag
        st = harness.task_status(w.pid)
        return st and all(f.get("TracerPid") == "0" and not f.get("State", "").startswith(
            ("T", "t")) for f in st.values())

    harness.wait_for(let_go, harness.EXIT_TIMEOUT, f"lzwork {w.pid} to run untraced")
    assert_not_stopped(w.pid)
    assert w.check_pass()["ctr"] > c0
    stages = [n for n in os.listdir(img) if n.startswith(STAGE_PREFIX)]
    assert len(stages) == 1, os.listdir(img)
    changed = [n for n in snap if snapshot(img).get(n) != snap[n]]
    assert len(changed) == 4, f"want 4 files exchanged before the crash: {changed}"
    # A dump that fails right away (no such process) still cleans up first.
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    gone = p.pid  # reaped: no such process
    r = env.lazarus("dump", "-t", gone, "-D", img)
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert "interrupted while committing: 4 files of the previous dump put back" in r.err, \
        r.describe()
    assert snapshot(img) == snap
    assert_no_temporaries(img)
    restore_first(env, w, img, mode, first)


def test_stale_temporaries_of_ours_removed(env):
    """What crashed dumps left (a staging directory, a stats temporary, the
    large per-image temporary of older versions) is removed by the next
    dump; files of those patterns that are not ours, and other names, stay."""
    w = env.lzwork(mib=1)
    img = env.path("img")
    ours = [f".pages-{w.pid}.img.tmp", ".stats-dump.json.0123456789abcdef.tmp",
            ".inventory.img.tmp"]
    for n in ours:
        (img / n).write_bytes(b"\0" * 65536)
    stage = img / (STAGE_PREFIX + "ab" * 16)
    stage.mkdir(mode=0o700)
    (stage / f"core-{w.pid}.img").write_text("half a dump\n")
    kept = [".notes.tmp", ".core-1.img", "core-1.img.tmp", ".stats-dump.json.tmp"]
    for n in kept:
        (img / n).write_text("not a leftover of lazarus\n")
    theirs = img / ".core-1.img.tmp"
    theirs.write_text("nobody's\n")
    os.chown(theirs, NOBODY, NOBODY)
    kept.append(theirs.name)
    env.dump(w, img)
    left = set(os.listdir(img))
    assert not left & set(ours), f"stale temporaries of ours left: {left & set(ours)}"
    assert not stage.exists(), "a stale staging directory was left"
    assert set(kept) <= left, f"removed what was not ours: {set(kept) - left}"
