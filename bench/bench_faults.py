"""bench_faults.py - `make bench`, fault service: what a fault costs the
faulting thread while the background fill runs, next to a bare userfaultfd
server with the same CPU placement (nothing pinned, the server a separate
process, the same 2 vCPUs), measured in the same run, alternated.

The workload is test/workloads/lzfaults.c: --threads threads each touch one
random page in each of --touches distinct 64 KiB windows (the daemon's
fault-around) of a --mib MiB anonymous heap (fixed seed), timing each first
access with CLOCK_MONOTONIC and checking the whole page holds what was
written before the dump. It is started, dumped once, then for each of
--reps, in rotating order:

  lazarus    daemon started and ready, `restore --lazy-pages -d`, SIGUSR1
             the moment it returns: the touches run while the fill does;
  bare       `lzfaults --bare`: the same touches against a forked server
             answering each fault with one 4 KiB UFFDIO_COPY from a buffer;
             no fill: the machine's fault round trip, the yardstick of the
             target (the daemon, too, wakes a thread after its own 4 KiB);
  bare_64k   the same, each fault answered with its 64 KiB window;
  bare_fill  `bare` plus a server thread copying the heap in 2 MiB chunks
             in address order (a naive background fill, for reference).

Only touches of pages that were not resident just before (mincore) count as
faults. Per run: median, p99 and max of the fault latencies (exact, from
every sample); per kind the median over runs. Targets (Lazarus issue 10):
median <= 1.3x bare, p99 <= 3x bare. Figures under "faults" in the JSON:
median_vs_bare and p99_vs_bare are the ratios of those medians.

Called by bench.py (same run); also standalone, to compare lazarus builds:
  bench_faults.py [--reps N] [--mib M] [--lazarus BIN ...]
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path



def lzfaults(h):
    return h.BUILD / "test" / "lzfaults"


def parse_result(h, path, what):
    head, *lines = Path(path).read_text().splitlines()
    if not head.startswith("PASS "):
        raise h.BenchError(f"{what}: lzfaults FAILED: {head}")
    lat = sorted(int(ln.split()[1]) for ln in lines if ln.split()[2] == "0")
    if not lat:
        raise h.BenchError(f"{what}: no touch was a fault (all {len(lines)} resident)")
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {"faults": len(lat), "resident": len(lines) - len(lat),
            "median_us": pct(0.5) / 1000, "p99_us": pct(0.99) / 1000,
            "max_us": lat[-1] / 1000}


class Faults:
    """lzfaults, started and dumped once; restored lazily on demand."""

    def __init__(self, h, b, mib, args):
        self.h, self.b, self.args = h, b, args
        if not os.access(lzfaults(h), os.X_OK):
            raise h.BenchError(f"{lzfaults(h)} is missing: build first (make all)")
        self.dir = b.base / "faults-w"
        self.img = b.base / "img-faults"
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.img, ignore_errors=True)
        self.dir.mkdir()
        self.img.mkdir()
        with open(self.dir / "out", "wb") as out:
            p = subprocess.Popen([str(lzfaults(h)), "--dir", str(self.dir)] + args,
                                 cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 close_fds=True)
        self.pid = p.pid
        b.pids.add(p.pid)

        def ready():
            if (self.dir / "ready").exists():
                return True
            if p.poll() is not None:
                raise h.BenchError(f"lzfaults exited {p.returncode} before it was ready")
            return False

        h.wait_for(ready, h.READY_TIMEOUT, f"lzfaults {mib} MiB to be ready")
        b.lazarus("dump-faults", "dump", "-t", p.pid, "-D", self.img)
        p.wait(h.EXIT_TIMEOUT)
        h.wait_for(lambda: h.proc_stat(p.pid) is None, h.EXIT_TIMEOUT, f"pid {p.pid} to be free")

    def lazy(self, rep):
        h, b = self.h, self.b
        work = b.base / "lazy-faults"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        result = self.dir / "result"
        result.unlink(missing_ok=True)
        d, box = b.start_daemon(self.img, work)
        b.pids.add(self.pid)
        b.lazarus("restore-faults", "restore", "-D", self.img, "--lazy-pages", "-W", work, "-d")
        os.kill(self.pid, signal.SIGUSR1)

        def answered():
            if result.exists():
                return True
            if not h.alive(self.pid):
                raise h.BenchError(f"faults lazy restore: lzfaults {self.pid} died")
            return False

        h.wait_for(answered, h.CHECK_TIMEOUT, f"lzfaults {self.pid} to touch its pages")
        r = parse_result(h, result, "faults lazy restore")
        box["thread"].join(h.CMD_TIMEOUT)  # every page in place
        if box["thread"].is_alive() or d.returncode != 0:
            raise h.BenchError(f"faults lazy restore: daemon {d.pid} did not exit 0")
        stats = json.loads((work / "lazy-pages-stats.json").read_text())
        p = [x for x in stats["processes"] if x["pid"] == self.pid]
        if len(p) != 1 or p[0]["state"] != "done":
            raise h.BenchError(f"faults lazy restore: pid {self.pid} not done: {p}")
        os.kill(self.pid, signal.SIGTERM)
        st = h.reap(self.pid)
        if st is not None and not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
            raise h.BenchError(f"faults lazy restore: lzfaults ended with status {st:#x}")
        r["daemon_faults"] = p[0]["faults"]
        r["daemon_time_to_complete_ms"] = p[0]["time_to_complete_ns"] / 1e6
        self.last_stats = p[0]
        self.daemon_pid = stats["daemon_pid"]
        h.reap_zombie_orphans(keep=set())
        return r

    def bare(self, kind):
        h = self.h
        dir = self.b.base / "faults-bare"
        shutil.rmtree(dir, ignore_errors=True)
        dir.mkdir()
        argv = [str(lzfaults(h)), "--bare-fill" if kind == "bare_fill" else "--bare",
                "--serve-kib", "64" if kind == "bare_64k" else "4", "--dir", str(dir)] + self.args
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=h.CMD_TIMEOUT, close_fds=True)
        if p.returncode:
            raise h.BenchError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
        return parse_result(h, dir / "result", f"faults {kind}")


def bench_faults(h, b, mib, reps, threads=4, touches=400, binaries=None):
    """h: the bench module; b: its Bench. binaries: lazarus builds to
    alternate (standalone comparisons); default h.LAZARUS alone."""
    binaries = binaries or [h.LAZARUS]
    args = ["--mib", str(mib), "--threads", str(threads), "--touches", str(touches)]
    w = Faults(h, b, mib, args)
    kinds = [f"lazarus{i if i else ''}" for i in range(len(binaries))] + \
        ["bare", "bare_64k", "bare_fill"]
    raw = {k: [] for k in kinds}
    for rep in range(reps):
        order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
        for k in order:
            if k.startswith("lazarus"):
                h.LAZARUS = binaries[int(k[7:] or 0)]
                raw[k].append(w.lazy(rep))
            else:
                raw[k].append(w.bare(k))
        h.LAZARUS = binaries[0]
        print(f"  faults {mib} MiB, {threads}x{touches} touches, rep {rep + 1}/{reps}: median/p99 "
              + ", ".join(f"{k} {raw[k][-1]['median_us']:.0f}/{raw[k][-1]['p99_us']:.0f} us"
                          for k in kinds) + "; every page right", flush=True)
    shutil.rmtree(w.img, ignore_errors=True)
    out = {"config": {"mib": mib, "reps": reps, "threads": threads, "touches": touches,
                      "window_kib": 64, "binaries": [str(x) for x in binaries]}}
    for k in kinds:
        out[k] = {f: h.summary([r[f] for r in raw[k]]) for f in raw[k][0]}
    bare = out["bare"]
    for k in kinds:
        if k.startswith("lazarus"):
            sfx = k[7:]
            out[f"median_vs_bare{sfx}"] = out[k]["median_us"]["median"] / \
                bare["median_us"]["median"]
            out[f"p99_vs_bare{sfx}"] = out[k]["p99_us"]["median"] / bare["p99_us"]["median"]
    for y in ("bare_64k", "bare_fill"):
        out[f"median_vs_{y}"] = out["lazarus"]["median_us"]["median"] / \
            out[y]["median_us"]["median"]
        out[f"p99_vs_{y}"] = out["lazarus"]["p99_us"]["median"] / out[y]["p99_us"]["median"]
    return out


def print_faults(F):
    c = F["config"]
    print(f"\n== fault service: lzfaults {c['mib']} MiB, {c['threads']} threads x {c['touches']} "
          f"random touches (distinct 64 KiB windows), fill running; median over "
          f"{c['reps']} runs (min) ==")
    for k in [k for k in F if isinstance(F[k], dict) and "median_us" in F[k]]:
        r = F[k]
        print(f"  {k:10s} fault median {r['median_us']['median']:8.1f} ({r['median_us']['min']:.1f})"
              f" us  p99 {r['p99_us']['median']:8.1f} ({r['p99_us']['min']:.1f}) us  max "
              f"{r['max_us']['median']:8.1f} us  faults {r['faults']['median']:.0f}")
    print(f"  lazarus / bare: median x{F['median_vs_bare']:.2f} (target <= 1.3), p99 "
          f"x{F['p99_vs_bare']:.2f} (target <= 3); / bare_64k: median "
          f"x{F['median_vs_bare_64k']:.2f}, p99 x{F['p99_vs_bare_64k']:.2f}; / bare_fill: median "
          f"x{F['median_vs_bare_fill']:.2f}, p99 x{F['p99_vs_bare_fill']:.2f}")


def main():
    import argparse
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench as h
    ap = argparse.ArgumentParser(description="fault service figure (standalone)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--touches", type=int, default=400)
    ap.add_argument("--lazarus", nargs="*", default=None, help="lazarus binaries to alternate")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    h.become_subreaper()
    base, mounted, _ = h.setup_storage(a.mib)
    (base / "logs").mkdir()
    b = h.Bench(base, base / "logs")
    ok = False
    try:
        F = bench_faults(h, b, a.mib, a.reps, a.threads, a.touches,
                         [Path(x).resolve() for x in a.lazarus] if a.lazarus else None)
        ok = True
    finally:
        h.kill_leftovers(b.pids)
        if not ok:
            print(f"logs: {h.save_failure_logs(base, base / 'logs')}", file=sys.stderr)
        h.teardown_storage(base, mounted)
    if a.out:
        Path(a.out).write_text(json.dumps(F, indent=1) + "\n")
    print_faults(F)
    for k in F:
        if k.startswith("median_vs_bare") or k.startswith("p99_vs_bare"):
            print(f"  {k} {F[k]:.2f}")


if __name__ == "__main__":
    main()
