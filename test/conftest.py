"""conftest.py - fixtures shared by every Lazarus scenario.

- pytest becomes a child subreaper, so restored (-d) processes and anything
  lazarus leaves behind are reparented to it and reaped here, not by a slow
  PID 1 (a zombie keeps its pid, and restoring that pid would fail).
- `env`: a fresh directory under /tmp and a harness.Env that starts
  workloads and runs lazarus; everything it started is killed and reaped at
  teardown. The directory is removed when the test passed and kept (its
  path printed) when it failed.
- `mode`: every restore scenario runs "eager" and "lazy". Lazy params are
  skipped through ONE switch, harness.lazy_supported() (LAZARUS_TEST_LAZY or
  `lazarus --help` mentioning --lazy-pages).
"""
import ctypes
import os
import shutil
import tempfile

import pytest

import harness

PR_SET_CHILD_SUBREAPER = 36

LAZY = harness.lazy_supported()
LAZY_MARKS = () if LAZY else (pytest.mark.skip(reason="lazy restore: issue 3"),)
MODES = [pytest.param("eager", id="eager"), pytest.param("lazy", id="lazy", marks=LAZY_MARKS)]


def pytest_configure(config):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    config.addinivalue_line("markers", "lazy: needs lazy restore")


def pytest_sessionstart(session):
    missing = [p for p in (harness.LAZARUS, harness.WORKLOADS / "lzwork",
                           harness.WORKLOADS / "lzrefuse") if not p.exists()]
    if missing:
        raise pytest.UsageError(f"not built: {', '.join(map(str, missing))} (run make)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item.lz_failed = True


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def _new_env(prefix):
    return harness.Env(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def _finish_env(env, failed, report):
    env.cleanup()
    if failed:
        report(f"kept {env.base} for inspection")
    else:
        shutil.rmtree(env.base, ignore_errors=True)


@pytest.fixture
def env(request):
    e = _new_env("lzt-")
    yield e
    failed = getattr(request.node, "lz_failed", False)
    _finish_env(e, failed, lambda msg: print(f"\n{request.node.nodeid}: {msg}"))


@pytest.fixture(scope="session")
def small_dump():
    """One lzwork (4 MiB) dumped once, for the read-only image tests (show)
    and the bad-input tests, which copy it before corrupting anything.
    Returns a dict: env, img (images dir), work (the workload object; its
    pid is free again), dump_ctr (its counter at a check before the dump)."""
    e = _new_env("lzt-session-")
    failed = True
    try:
        w = e.lzwork(name="work", mib=4)
        before = w.check_pass()
        img = e.path("img")
        e.dump(w, img)
        failed = False
        yield {"env": e, "img": img, "work": w, "dump_ctr": before["ctr"]}
    finally:
        _finish_env(e, failed, print)


@pytest.fixture(scope="session")
def two_dumps():
    """One lzwork dumped twice into two directories (-R first, then for
    good): same pid, same file names and layout, two different dumps.
    Returns a dict: a, b (the images dirs), work (its pid is free again)."""
    e = _new_env("lzt-twice-")
    failed = True
    try:
        w = e.lzwork(name="twice", mib=2)
        w.check_pass()
        a, b = e.path("dump-a"), e.path("dump-b")
        e.dump(w, a, leave_running=True)
        w.check_pass()
        e.dump(w, b)
        failed = False
        yield {"a": a, "b": b, "work": w}
    finally:
        _finish_env(e, failed, print)


def pytest_report_header(config):
    return [f"lazarus: {harness.LAZARUS}; lazy restore tests: {'on' if LAZY else 'skipped'}"]


def pytest_sessionfinish(session, exitstatus):
    # Anything still reparented to us was missed by a teardown: kill it.
    for pid in harness.my_children():
        try:
            os.kill(pid, 9)
            harness.reap(pid, 10)
        except (ProcessLookupError, harness.HarnessError):
            pass
