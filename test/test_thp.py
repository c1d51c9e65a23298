"""test_thp.py - memory backed by transparent huge pages comes back on huge pages.

lzwork --thp asks MADV_HUGEPAGE for its memory (about 7/8 of it touched,
patterned, with holes and zeroed pages). After an eager restore (the blob
sets MADV_HUGEPAGE before it fills) and after a lazy restore once the daemon
has placed every page (it collapses the MADV_HUGEPAGE VMAs it served with
process_madvise(MADV_COLLAPSE)), the process has AnonHugePages again and its
self-check passes. Without --thp nothing is collapsed. Skipped only when the
kernel's THP is disabled (transparent_hugepage/enabled says [never]).
"""
from pathlib import Path

import pytest

import harness
from harness import LzWork
from test_lazy import Daemon, slot_of, stats

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
pytestmark = pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(),
                                reason="transparent huge pages disabled in this kernel "
                                       "(transparent_hugepage/enabled: never)")
MIB = 64


def anon_huge_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/smaps_rollup: no AnonHugePages")


def lzwork(env, thp):
    d = env.base / "work"
    w = env.spawn(LzWork, [harness.WORKLOADS / "lzwork", "--dir", d, "--mib", MIB] +
                  (["--thp"] if thp else []), d)
    w.check_pass()
    return w


@pytest.mark.parametrize("thp", [True, False], ids=["thp", "no-thp"])
def test_huge_pages_back(env, mode, thp):
    w = lzwork(env, thp)
    before = anon_huge_kib(w.pid)
    if thp:
        assert before > 0, f"lzwork --thp got no huge pages before the dump ({before} kB)"
    img = env.path("img")
    env.dump(w, img)
    if mode == "eager":
        rw = env.restore(img, "eager", w)
    else:
        d = Daemon(env, img)
        rw = env.restore(img, "lazy", w)
        assert d.wait() == 0, d.describe()
        st = slot_of(stats(img), w.pid)
        assert st["state"] == "done", st
        if thp:
            assert st["thp_collapsed"] > 0, f"{st}\n{d.describe()}"
        else:
            assert st["thp_collapsed"] == 0, st
    after = anon_huge_kib(rw.pid)
    if thp:
        assert after > 0, f"{mode} restore: AnonHugePages {after} kB (was {before} kB)"
    elif "[madvise]" in THP.read_text():
        # THP on request only: none without MADV_HUGEPAGE, before or after.
        assert before == after == 0, f"{mode} restore: AnonHugePages {before} -> {after} kB"
    r = rw.check_pass()
    assert r["seq"] >= 2, r
    rw.stop()
