"""test_lazy_daemon.py - the lazy-pages daemon on its own, no dump or restore.

Each scenario of build/test/lzlazyharness (test/workloads/lzlazyharness.c) is
one case: the harness writes an image set, starts `lazarus lazy-pages`, hands
a workload's userfaultfd over through the client API and checks every byte
the workload reads (faults from several threads, fork, mremap, munmap,
MADV_DONTNEED, a daemon killed with or without --resume, damaged images,
garbage peers, a second daemon, a daemon started by the client).
"""
import subprocess

import pytest

from harness import BUILD

HARNESS = BUILD / "test" / "lzlazyharness"
LAZARUS = BUILD / "lazarus"

SCENARIOS = [
    "basic",
    "faults-only",
    "fill-only",
    "fork",
    "mremap",
    "munmap",
    "dontneed",
    "kill-resume",
    "kill-noresume",
    "kill-at-fork",
    "truncated",
    "corrupt",
    "garbage",
    "second-daemon",
    "spawn",
    "blocking-uffd",
]


def test_scenario_list_is_complete():
    """Every scenario the harness knows is run here."""
    out = subprocess.run([str(HARNESS), "--list"], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    assert sorted(out) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_lazy_daemon(name):
    r = subprocess.run([str(HARNESS), "--lazarus", str(LAZARUS), name], capture_output=True,
                       text=True, timeout=240)
    assert f"PASS {name}:" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr


def test_lazy_pages_needs_dir():
    r = subprocess.run([str(LAZARUS), "lazy-pages"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "lazy-pages needs the images directory: -D DIR" in r.stderr


def test_resume_without_guardian(tmp_path):
    """--resume with nobody to resume from: one clear line, non-zero exit."""
    r = subprocess.run([str(LAZARUS), "lazy-pages", "-D", str(tmp_path), "--resume"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "resume: nothing to resume in" in r.stderr
