"""Dump and restore of real workloads; each restored process checks itself.

Every scenario runs for each restore `mode` (eager, lazy). The verdicts come
from the workloads: lzwork verifies its memory pattern, counters in heap,
stack, .data, .bss and TLS, FP state and rounding mode, its log file offset
and contents, signal handling on the alternate stack, vdso clock, umask,
cwd, rlimit, itimer and that stdout/stderr still share one file; pystate
verifies its dict, generator and file. The restored lzwork's /proc/PID/maps
must equal the original's: nothing of the restorer is left behind.
"""
import signal

import pytest

import harness
from harness import file_entries, rewind_files, tree_digest


def dumped_records(imgdir, w):
    """Records lzwork had written at dump time: its log's offset in files.img."""
    log = str((w.dir / "log").resolve())
    pos = [int(f["pos"]) for f in file_entries(imgdir) if f.get("path") == log]
    assert len(pos) == 1, f"files.img has {len(pos)} entries for {log}"
    return pos[0] // 64


def maps(pid):
    """/proc/PID/maps as (start-end, perms, offset, path) per line."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            out.append((fields[0], fields[1], fields[2],
                        fields[5].strip() if len(fields) > 5 else ""))
    return out


def assert_same_maps(now, dumped, pid):
    """No VMA more or less than the original had: nothing of the restorer is
    left (its bootstrap area is unmapped after rt_sigreturn), nothing lost."""
    extra = [m for m in now if m not in dumped]
    missing = [m for m in dumped if m not in now]
    assert now == dumped, f"restored process {pid}: maps differ from the original's\n" \
                          f"extra: {extra}\nmissing: {missing}"


def test_lzwork(env, mode):
    """Dump (the original is killed), restore -d, verify, keep running, SIGTERM."""
    w = env.lzwork(mib=64)
    before = w.check_pass()
    ident = w.identity()
    orig_maps = maps(w.pid)
    img = env.path("img")
    env.dump(w, img)
    recs = dumped_records(img, w)
    assert recs >= before["records"]

    w = env.restore(img, mode, w)
    assert_same_maps(maps(w.pid), orig_maps, w.pid)
    # exe, arguments and name as before (PR_SET_MM_MAP, arg_start..arg_end, comm).
    assert w.identity() == ident
    after = w.check_pass()
    # Carried on from where it was dumped, not from scratch or from the check.
    assert after["ctr"] > before["ctr"]
    assert after["prev"] == before["ctr"]
    assert after["seq"] == before["seq"] + 1
    assert after["records"] >= recs and after["ctr"] >= recs * 16
    # ...and keeps running correctly.
    again = w.check_pass()
    assert again["ctr"] > after["ctr"]
    w.stop()


def test_fill_without_process_vm_writev(env, monkeypatch):
    """The blob places pages with process_vm_writev from a buffer; where the
    kernel refuses that it preads straight into the mapping
    (LAZARUS_TEST_FILL_PREAD=1 takes that way): the same memory comes back."""
    w = env.lzwork(mib=16)
    before = w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    monkeypatch.setenv("LAZARUS_TEST_FILL_PREAD", "1")
    w = env.restore(img, "eager", w)
    after = w.check_pass()
    assert after["prev"] == before["ctr"] and after["seq"] == before["seq"] + 1
    w.stop()


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 0), (signal.SIGINT, 42),
                                        (signal.SIGKILL, 128 + 9)],
                         ids=["SIGTERM-exit0", "SIGINT-exit42", "SIGKILL-137"])
def test_restore_waits_for_exit_status(env, mode, sig, status):
    """restore without -d waits for the restored process and exits with its status."""
    w = env.lzwork(mib=8)
    before = w.check_pass()
    orig_maps = maps(w.pid)
    img = env.path("img")
    env.dump(w, img)
    since = (w.dir / "log").stat().st_size

    p = env.restore_bg(img, mode, w)
    w = w.restored()
    # No "restored" signal without -d: the log growing is the process running.
    w.wait_progress(since, restorer=p)
    assert p.poll() is None, "restore exited while its process runs"
    # Our parent traced it out of the restorer and let go of it.
    harness.assert_not_stopped(w.pid, "restored lzwork")
    assert_same_maps(maps(w.pid), orig_maps, w.pid)
    after = w.check_pass()
    assert after["ctr"] > before["ctr"]
    harness.os.kill(w.pid, sig)
    try:
        rc = p.wait(harness.EXIT_TIMEOUT)
    except harness.subprocess.TimeoutExpired:
        raise AssertionError(f"restore did not exit after its process got {sig!r}")
    p.stderr_file.seek(0)
    err = p.stderr_file.read()
    assert rc == status, f"restore exited {rc}, want {status}\nstderr:\n{err}\n" \
                         f"log:\n{harness.tail(p.log)}"
    assert not harness.error_lines(err), err
    assert harness.proc_state(w.pid) is None


def test_restorer_removal_fails(env, mode, monkeypatch):
    """If taking the restorer out of the process fails (LAZARUS_FAULT_BLOB=finish
    makes the injected munmap fail), restore -d exits non-zero with one error
    line and the process is killed, not left running or traced."""
    w = env.lzwork(mib=8)
    w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    monkeypatch.setenv("LAZARUS_FAULT_BLOB", "finish")
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "restorer area" in r.errors[0] and "LAZARUS_FAULT_BLOB" in r.errors[0], r.describe()
    harness.reap(w.pid)  # killed; reparented to us (the subreaper) and reaped


def test_dump_leave_running(env, mode):
    """dump -R: the original runs on correctly; the images restore afterwards."""
    w = env.lzwork(mib=64)
    before = w.check_pass()
    img = env.path("img")
    env.dump(w, img, leave_running=True)

    r1 = w.check_pass()
    assert r1["ctr"] > before["ctr"]
    r2 = w.check_pass()
    assert r2["ctr"] > r1["ctr"]

    harness.kill_and_reap(w.pid)
    rewind_files(img, env.base)
    w = env.restore(img, mode, w)
    after = w.check_pass()
    assert after["prev"] == before["ctr"] and after["ctr"] > before["ctr"]
    w.stop()


def test_dump_leave_running_repeatedly(env):
    """Ten dumps with -R at whatever point the loop happens to be: the process
    verifies after each one (the dump put back every register and patched byte)."""
    w = env.lzwork(mib=4)
    last = w.check_pass()["ctr"]
    for i in range(10):
        env.dump(w, env.path(f"img{i}"), leave_running=True)
        ctr = w.check_pass()["ctr"]
        assert ctr > last
        last = ctr
    w.stop()


def test_two_rounds(env, mode):
    """A restored process is dumped and restored again, and still verifies."""
    w = env.lzwork(mib=64)
    c0 = w.check_pass()["ctr"]
    img1, img2 = env.path("img1"), env.path("img2")
    env.dump(w, img1)
    w = env.restore(img1, mode, w)
    c1 = w.check_pass()["ctr"]
    assert c1 > c0

    env.dump(w, img2)
    w = env.restore(img2, mode, w)
    r2 = w.check_pass()
    assert r2["ctr"] > c1 and r2["prev"] == c1
    w.stop()


def test_restore_twice(env, mode):
    """The same image set restores twice: images are not consumed or changed."""
    w = env.lzwork(mib=64)
    c0 = w.check_pass()["ctr"]
    img = env.path("img")
    env.dump(w, img)
    digest = tree_digest(img)  # the image files: restore may add its own stats

    w = env.restore(img, mode, w)
    assert w.check_pass()["ctr"] > c0
    harness.kill_and_reap(w.pid)
    assert tree_digest(img) == digest, "the first restore changed the images"

    rewind_files(img, env.base)
    w = env.restore(img, mode, w)
    r = w.check_pass()
    assert r["ctr"] > c0 and r["prev"] == c0
    w.stop()
    assert tree_digest(img) == digest, "the second restore changed the images"


def walker(n):
    """pystate's generator, replayed: its first n (i, acc) values."""
    mod, acc = (1 << 61) - 1, 7
    for i in range(n):
        acc = (acc * 1000003 + i) % mod
        yield i, acc


def check_pystate(w, r):
    """Our own replay of pystate's state, next to its verdict."""
    n = r["n"]
    vals = list(walker(n + 1))
    assert tuple(r["last"]) == vals[n - 1], "generator did not continue where it was"
    assert tuple(r["next"]) == vals[n]
    slots = {}
    for i, acc in vals[:n]:
        slots[str(i % 1000)] = [i, acc]
    assert r["slots"] == slots, "dict contents differ"
    assert r["offset"] == n * r["line_len"]
    lines = (w.dir / "pylog").read_text().splitlines()
    assert len(lines) >= n
    for k in (0, n // 2, n - 1):
        i, acc = vals[k]
        assert lines[k] == f"{i:08d} {acc:016x}", f"pylog line {k}"


def test_python(env, mode):
    """The real /usr/bin/python3 with a dict, a generator mid-iteration and an
    open file carries on with its state intact."""
    w = env.pystate()
    before = w.check_pass()
    check_pystate(w, before)
    img = env.path("img")
    env.dump(w, img)

    w = env.restore(img, mode, w)
    after = w.check_pass()
    check_pystate(w, after)
    assert after["seq"] == before["seq"] + 1
    assert after["prev_n"] == before["n"] + 1 and after["n"] > before["n"]
    w.stop()
