"""Seccomp comes back per thread: strict mode, and filter chains with what
they deny and what they kill for.

lzseccomp (test/workloads/lzseccomp.c) has three threads: one in strict
mode, the main thread under filter A (getppid -> EPERM, ioctl MAGIC ->
kill the process) and a second thread under A and its own filter B (uname
-> EPERM). On SIGUSR1 it checks from inside each thread that exactly its
filters apply (and /proc/self/task/*/status: Seccomp, Seccomp_filters);
on SIGUSR2 the main thread makes the killing call. The dump injects
syscalls (mmap, munmap, prctl...) into these threads: it must neither be
denied nor killed (PTRACE_O_SUSPEND_SECCOMP), and the restore installs
the filters last, while the threads are traced with them suspended.
"""
import os
import signal

import harness

SIGSYS = signal.SIGSYS


class LzSeccomp(harness.Workload):
    kind = "lzseccomp"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())


def spawn(env, name, *args):
    d = env.base / name
    w = env.spawn(LzSeccomp, [harness.WORKLOADS / "lzseccomp", "--dir", d, *args], d)
    return w


def seccomp_status(w):
    st = harness.task_status(w.pid)
    return {tid: (s["Seccomp"], s["Seccomp_filters"]) for tid, s in st.items()}


def test_filters_and_strict(env, mode):
    """Every thread keeps its own mode and chain; the chain still kills."""
    w = spawn(env, "w")
    w.check_pass()
    before = seccomp_status(w)
    tids = {int(w.ready["strict"]): ("1", "0"), int(w.ready["second"]): ("2", "2"),
            w.pid: ("2", "1")}
    assert before == {t: v for t, v in tids.items()}, before
    img = env.path("img")
    env.dump(w, img)
    cores = {t: harness.show(img / f"core-{t}.img")["entries"][0] for t in tids}
    assert cores[int(w.ready["strict"])]["seccomp"]["mode"] == 1
    assert len(cores[w.pid]["seccomp"]["filters"]) == 1
    assert len(cores[int(w.ready["second"])]["seccomp"]["filters"]) == 2
    # The inherited filter A comes first (oldest) in the second thread's chain.
    assert cores[int(w.ready["second"])]["seccomp"]["filters"][0] == \
        cores[w.pid]["seccomp"]["filters"][0]
    w = env.restore(img, mode, w)
    assert seccomp_status(w) == before
    w.check_pass()
    w.check_pass()  # the strict thread keeps answering
    assert w.signal_and_reap(signal.SIGUSR2) == -SIGSYS


def test_filter_without_nnp(env, mode):
    """Installed with CAP_SYS_ADMIN instead of no_new_privs: root keeps it."""
    w = spawn(env, "w", "--no-nnp")
    assert harness.task_status(w.pid)[w.pid]["NoNewPrivs"] == "0"
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    assert harness.task_status(w.pid)[w.pid]["NoNewPrivs"] == "0"
    w.check_pass()
    w.stop()


def test_refused_without_nnp_or_sys_admin(env):
    """Neither no_new_privs nor CAP_SYS_ADMIN any more: the kernel would not
    let the restored process install its filters; refused at dump, and the
    process runs on unharmed under its filters."""
    w = spawn(env, "w", "--no-nnp", "--drop-admin")
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img)
    assert r.rc != 0 and r.errors == [
        f"lazarus: Error: dump: thread {w.pid}: seccomp filters "
        "without no_new_privs or CAP_SYS_ADMIN cannot be installed again"], r.describe()
    harness.assert_not_stopped(w.pid)
    w.check_pass()
    assert w.signal_and_reap(signal.SIGUSR2) == -SIGSYS
