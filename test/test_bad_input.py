"""Bad input: corrupted images, missing or refused dump targets.

A corrupted image set must be refused with exactly one "lazarus: Error:"
line naming the bad file, a non-zero exit, and nothing left running: no
process with the dumped pid, no stray helper. A dump that cannot be done
must fail cleanly and leave its target running, untraced, and working.
"""
import os
import shutil
import signal
import struct
import subprocess

import pytest

import harness

# Every image file of a one-process dump; {pid} is the dumped pid (its only tid).
IMAGE_FILES = ["inventory.img", "pstree.img", "core-{pid}.img", "task-{pid}.img",
               "sigacts-{pid}.img", "mm-{pid}.img", "pagemap-{pid}.img", "pages-{pid}.img",
               "fs-{pid}.img", "files.img", "fdinfo-{pid}.img"]


def truncate_half(p):
    os.truncate(p, p.stat().st_size // 2)


def truncate_tail(p):
    os.truncate(p, p.stat().st_size - 1)


def flip_middle(p):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def delete(p):
    p.unlink()


def bump_version(p):
    """Both framings keep a u16 format version at byte offset 4."""
    data = bytearray(p.read_bytes())
    (v,) = struct.unpack_from("<H", data, 4)
    assert v == 3, f"{p.name}: version field is {v}, want 3 (LZ_IMG_FORMAT_VERSION)"
    struct.pack_into("<H", data, 4, v + 1)
    p.write_bytes(bytes(data))


CORRUPTIONS = {"truncate-half": truncate_half, "truncate-1": truncate_tail,
               "flip-byte": flip_middle, "delete": delete, "bump-version": bump_version}


def test_inventory_lists_every_image(small_dump):
    """The corruption table below covers every file a dump writes."""
    img, pid = small_dump["img"], small_dump["work"].pid
    listed = harness.image_files(img)
    want = [f.format(pid=pid) for f in IMAGE_FILES]
    assert sorted(listed) == sorted(want)
    on_disk = sorted(p.name for p in img.iterdir() if p.name.endswith(".img"))
    assert on_disk == sorted(want)


def test_pristine_copy_restores(small_dump, env, mode):
    """Control for the cases below: an untouched copy restores and verifies."""
    img = env.base / "img"
    shutil.copytree(small_dump["img"], img)
    w = env.restore(img, mode, small_dump["work"])
    r = w.check_pass()
    assert r["prev"] == small_dump["dump_ctr"] and r["ctr"] > r["prev"]
    harness.kill_and_reap(w.pid)
    harness.rewind_files(img, small_dump["env"].base)


@pytest.mark.parametrize("how", CORRUPTIONS)
@pytest.mark.parametrize("name", IMAGE_FILES, ids=[n.replace("{pid}", "PID") for n in IMAGE_FILES])
def test_bad_image(small_dump, env, mode, name, how):
    pid = small_dump["work"].pid
    img = env.base / "img"
    shutil.copytree(small_dump["img"], img)
    bad = img / name.format(pid=pid)
    CORRUPTIONS[how](bad)
    assert harness.proc_state(pid) is None, f"pid {pid} is taken before the restore"

    r = env.restore(img, mode, small_dump["work"], expect_ok=False)
    if mode == "lazy" and r.rc == 0 and name == "pages-{pid}.img" and how == "flip-byte":
        lazy_damage_caught(img, bad, pid, r)
        return
    leftovers = harness.my_children()
    state = harness.proc_state(pid)
    assert r.rc != 0, f"restore accepted {bad.name} after {how}\n{r.describe()}"
    assert len(r.errors) == 1, f"want exactly one error line\n{r.describe()}"
    assert bad.name in r.errors[0], f"error does not name {bad.name}\n{r.describe()}"
    assert state is None, f"restore left pid {pid} behind (state {state})\n{r.describe()}"
    assert not leftovers, f"restore left processes behind: {leftovers}\n{r.describe()}"


@pytest.mark.parametrize("name", IMAGE_FILES, ids=[n.replace("{pid}", "PID") for n in IMAGE_FILES])
def test_image_from_another_dump(two_dumps, env, mode, name):
    """Any one file of dump B dropped among dump A's is refused before anything
    runs, by name, as belonging to another dump (an inventory from B vouches
    for none of A's files: the first file it checks is named)."""
    pid = two_dumps["work"].pid
    img = env.base / "img"
    shutil.copytree(two_dumps["a"], img)
    swapped = name.format(pid=pid)
    shutil.copy(two_dumps["b"] / swapped, img / swapped)
    assert harness.proc_state(pid) is None, f"pid {pid} is taken before the restore"

    r = env.restore(img, mode, two_dumps["work"], expect_ok=False)
    assert r.rc != 0, f"restore accepted {swapped} of another dump\n{r.describe()}"
    assert len(r.errors) == 1, f"want exactly one error line\n{r.describe()}"
    if name != "inventory.img":
        assert swapped in r.errors[0], f"error does not name {swapped}\n{r.describe()}"
    assert "another dump" in r.errors[0] or "inventory.img lists" in r.errors[0], r.describe()
    assert harness.proc_state(pid) is None, f"restore left pid {pid} behind\n{r.describe()}"
    assert not harness.my_children(), r.describe()


def lazy_damage_caught(img, bad, pid, r):
    """A lazy restore checks up front only the page data it reads itself (the
    size of the pages file included); the lazy-pages daemon checks every other
    block before its first copy out of it. So a flipped byte in lazily served
    data lets the restore start, and then the daemon must kill the process
    before it runs on that block: it dies by SIGKILL without ever answering,
    and the daemon's log names the file."""
    status = harness.reap(pid)
    assert status is None or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9), \
        f"restored process ended with status {status}, not by the daemon's SIGKILL"
    log = (img / "lazy-pages.log").read_text()
    assert bad.name in log and "checksum" in log, f"daemon log does not name {bad.name}:\n{log}"
    for child in harness.my_children():  # the daemon and its guardian exit by themselves
        harness.reap(child)


def free_pid():
    """A pid that was just used and reaped: free unless the kernel wraps around."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_dump_missing_pid(env):
    pid = free_pid()
    img = env.path("img")
    r = env.lazarus("dump", "-t", pid, "-D", img)
    assert r.rc == 1, r.describe()
    assert len(r.errors) == 1 and str(pid) in r.errors[0], r.describe()
    assert not (img / "inventory.img").exists()


def test_dump_into_missing_dir(env):
    w = env.lzwork(mib=1)
    c0 = w.check_pass()["ctr"]
    missing = env.base / "no-such-dir"
    r = env.lazarus("dump", "-t", w.pid, "-D", missing)
    assert r.rc == 1, r.describe()
    assert len(r.errors) == 1 and str(missing) in r.errors[0], r.describe()
    harness.assert_not_stopped(w.pid)
    assert w.check_pass()["ctr"] > c0
    w.stop()


@pytest.mark.parametrize("what", ["socket"])  # threads: test_threads.py; pipes: test_pipes.py
def test_dump_refused(env, what):
    """A feature not supported yet: refused by name, target unharmed."""
    w = env.lzrefuse(what)
    c0 = w.check_pass()["ctr"]
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1, f"dump of a process with a {what} did not fail\n{r.describe()}"
    assert len(r.errors) == 1, f"want exactly one error line\n{r.describe()}"
    assert what in r.errors[0].lower(), f"error does not name the {what}\n{r.describe()}"
    harness.assert_not_stopped(w.pid)
    after = w.check_pass()
    assert after["ctr"] > c0
    assert w.check_pass()["ctr"] > after["ctr"]
    w.stop()


def test_restore_pid_taken(env, mode):
    """Restoring while the dumped pid is still in use (dump -R) fails with a
    clear error naming the pid, and the running original is not disturbed."""
    w = env.lzwork(mib=4)
    c0 = w.check_pass()["ctr"]
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    r = env.restore(img, mode, expect_ok=False)
    assert r.rc != 0, f"restore over a live pid succeeded\n{r.describe()}"
    assert len(r.errors) == 1 and str(w.pid) in r.errors[0], r.describe()
    assert not [p for p in harness.my_children() if p != w.pid], "restore left processes behind"
    harness.assert_not_stopped(w.pid)
    assert w.check_pass()["ctr"] > c0
    w.stop()


class LzVfork(harness.Workload):
    kind = "lzvfork"


def test_dump_gives_up_on_unstoppable_process(env):
    """A vfork parent waits for its child in uninterruptible sleep, where no
    ptrace interrupt reaches it: the dump gives up after --freeze-timeout with
    one line saying so, writes no image, and leaves the process untraced; it
    carries on once its child is gone."""
    d = env.base / "vfork"
    w = env.spawn(LzVfork, [harness.WORKLOADS / "lzvfork", "--dir", d], d)
    assert harness.proc_state(w.pid) == "D", "the vfork parent is not in uninterruptible sleep"
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "--freeze-timeout", 1,
                    log=env.log_path("dump"))
    assert r.rc == 1, r.describe()
    assert len(r.errors) == 1 and "did not stop within 1000 ms" in r.errors[0], r.describe()
    assert not (img / "inventory.img").exists()
    harness.assert_not_stopped(w.pid)
    os.kill(int(w.ready["child"]), signal.SIGKILL)
    assert w.proc.wait(harness.EXIT_TIMEOUT) == 0
    assert (d / "resumed").exists()
