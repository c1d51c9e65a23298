"""bench_ws.py - `make bench`, working set first (lazy-pages --record-ws and
--prefetch-ws): time to the first N answers of a process with random access
over a large heap, restored lazily with and without its recorded working set.

The workload is test/workloads/pyws.py: a python3 dict of --ws-mib MiB
queried by a fixed set of N keys on each SIGUSR1; it checks every value and
writes each key with the crc32 of its value, which is checked here again.
It is started, asked once (the baseline: everything resident), dumped, then
restored lazily once under `lazy-pages --record-ws=0` (asked, then killed:
the daemon writes ws-<pid>.img), then --reps times each, alternating, under
a plain daemon and under `--prefetch-ws`: daemon started and ready, then
`restore --lazy-pages -d` timed from its start, SIGUSR1 the moment it
returns, and the time to the Nth answer taken from the workload's own
CLOCK_MONOTONIC stamp. The daemon's start (to its ready byte) is measured
too: with --prefetch-ws it reads the working sets then.

Called by bench.py (same run, same tmpfs); figures under "ws" in the JSON.
"""
import json
import os
import shutil
import signal
import subprocess
import zlib
from pathlib import Path

PYWS_REL = Path("test") / "workloads" / "pyws.py"


def value(i):
    return (b"%016x" % ((i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)) * 6


class PyWs:
    def __init__(self, h, dir, mib, keys):
        self.h, self.dir, self.keys = h, Path(dir), keys
        self.dir.mkdir(parents=True)
        with open(self.dir / "out", "wb") as out:
            self.proc = subprocess.Popen(
                ["/usr/bin/python3", str(h.ROOT / PYWS_REL), "--dir", str(self.dir), "--mib",
                 str(mib), "--keys", str(keys)], cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        self.pid = self.proc.pid

        def ready():
            if (self.dir / "ready").exists():
                return True
            if self.proc.poll() is not None:
                raise h.BenchError(f"pyws exited {self.proc.returncode} before it was ready")
            return False

        h.wait_for(ready, h.READY_TIMEOUT, f"pyws {mib} MiB to be ready")

    def ask(self, what):
        """One round; returns its head {t_signal, t_first, t_done, round}, every
        answer checked."""
        h, path = self.h, self.dir / "answers"
        path.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)

        def answered():
            if path.exists():
                return True
            if not h.alive(self.pid):
                raise h.BenchError(f"{what}: pyws {self.pid} died before answering")
            return False

        h.wait_for(answered, h.CHECK_TIMEOUT, f"{what}: pyws {self.pid} to answer")
        head, *lines = path.read_text().splitlines()
        kv = dict(w.partition("=")[::2] for w in head.split()[1:])
        if not head.startswith("PASS ") or int(kv["pid"]) != self.pid or \
                len(lines) != self.keys:
            raise h.BenchError(f"{what}: pyws FAILED: {head}")
        for line in lines:
            name, crc = line.split()
            if int(crc) != zlib.crc32(value(int(name[1:]))):
                raise h.BenchError(f"{what}: pyws answered a wrong value: {line}")
        return {k: int(kv[k]) for k in ("round", "t_signal", "t_first", "t_done")}

    def stop(self, what):
        os.kill(self.pid, signal.SIGTERM)
        st = self.h.reap(self.pid)
        if st is not None and not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
            raise self.h.BenchError(f"{what}: pyws {self.pid} ended with wait status {st:#x}")


def one_restore(h, b, w, img, name, extra):
    """A daemon (extra options), restore --lazy-pages -d, ask at once."""
    work = b.base / f"ws-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    t_d = h.now()
    d, box = b.start_daemon(img, work, extra)
    t0 = h.now()
    b.pids.add(w.pid)
    ttr = b.lazarus(f"restore-ws-{name}", "restore", "-D", img, "--lazy-pages", "-W", work, "-d")
    a = w.ask(f"ws {name} restore")
    return work, d, box, {"daemon_ready_ms": h.ms(t0 - t_d), "time_to_running_ms": h.ms(ttr),
                          "answers_ms": h.ms(a["t_done"] - t0),
                          "first_answer_ms": h.ms(a["t_first"] - t0),
                          "query_ms": h.ms(a["t_done"] - a["t_signal"])}


def finish(h, b, w, d, box, work, what):
    box["thread"].join(h.CMD_TIMEOUT)
    if box["thread"].is_alive() or d.returncode != 0:
        raise h.BenchError(f"{what}: lazy-pages daemon {d.pid} did not exit 0 "
                           f"(exit {d.returncode})")
    stats = json.loads((work / "lazy-pages-stats.json").read_text())
    procs = [p for p in stats["processes"] if p["pid"] == w.pid]
    if len(procs) != 1:
        raise h.BenchError(f"{what}: no stats for pid {w.pid}")
    return procs[0]


def bench_ws(h, b, mib, keys, reps):
    """h: the bench module (its helpers); b: its Bench."""
    raw = {f"{m}_{k}": [] for m in ("plain", "prefetch")
           for k in ("daemon_ready_ms", "time_to_running_ms", "first_answer_ms", "answers_ms",
                     "query_ms", "pages_fault", "faults")}
    raw.update({k: [] for k in ("prefetch_pages", "prefetch_done_ms", "answers_plain_vs_prefetch")})
    img = b.base / "img-ws"
    shutil.rmtree(img, ignore_errors=True)
    img.mkdir()
    w = PyWs(h, b.base / "pyws", mib, keys)
    b.pids.add(w.pid)
    base = w.ask("ws baseline")
    b.lazarus("dump-ws", "dump", "-t", w.pid, "-D", img)
    w.proc.wait(h.EXIT_TIMEOUT)
    h.wait_for(lambda: h.proc_stat(w.pid) is None, h.EXIT_TIMEOUT, f"pid {w.pid} to be free")

    work, d, box, rec = one_restore(h, b, w, img, "record", ["--record-ws=0"])
    # SIGKILL, not SIGTERM: python3 tearing its dict down at exit would touch
    # (and record) every page of it.
    os.kill(w.pid, signal.SIGKILL)
    h.reap(w.pid)
    st = finish(h, b, w, d, box, work, "ws record restore")
    if not (img / f"ws-{w.pid}.img").exists() or not st["ws_recorded_pages"]:
        raise h.BenchError(f"ws record restore: no working set written: {st}")
    record = {"ws_pages": st["ws_recorded_pages"], "query_ms": rec["query_ms"],
              "answers_ms": rec["answers_ms"],
              "ws_file_bytes": (img / f"ws-{w.pid}.img").stat().st_size}
    for rep in range(reps):
        row = {}
        for name, extra in (("plain", []), ("prefetch", ["--prefetch-ws"]))[::1 if rep % 2 == 0
                                                                             else -1]:
            work, d, box, f = one_restore(h, b, w, img, name, extra)
            st = finish(h, b, w, d, box, work, f"ws {name} restore")
            if st["state"] != "done":
                raise h.BenchError(f"ws {name} restore: pid {w.pid} not done: {st}")
            w.stop(f"ws {name} restore")
            h.reap_zombie_orphans(keep=set())
            f.update({"pages_fault": st["pages_fault"], "faults": st["faults"]})
            for k, v in f.items():
                raw[f"{name}_{k}"].append(v)
            if name == "prefetch":
                if not st["pages_prefetch"] or st["time_to_prefetch_done_ns"] is None:
                    raise h.BenchError(f"ws prefetch restore: nothing prefetched: {st}")
                raw["prefetch_pages"].append(st["pages_prefetch"])
                raw["prefetch_done_ms"].append(h.ms(st["time_to_prefetch_done_ns"]))
            row[name] = f["answers_ms"]
        raw["answers_plain_vs_prefetch"].append(row["plain"] / row["prefetch"])
        print(f"  ws {mib} MiB, {keys} keys, rep {rep + 1}/{reps}: {keys} answers after "
              f"{row['plain']:.0f} ms plain lazy, {row['prefetch']:.0f} ms with the working set "
              f"(x{row['plain'] / row['prefetch']:.2f}); all answers right", flush=True)
    shutil.rmtree(img, ignore_errors=True)
    out = {k: h.summary(v) for k, v in raw.items()}
    out["config"] = {"mib": mib, "keys": keys, "reps": reps}
    out["baseline_query_ms"] = h.ms(base["t_done"] - base["t_signal"])
    out["record"] = record
    out["answers_plain_vs_prefetch_of_medians"] = \
        out["plain_answers_ms"]["median"] / out["prefetch_answers_ms"]["median"]
    return out


def print_ws(W):
    c = W["config"]
    print(f"\n== working set first: pyws {c['mib']} MiB, {c['keys']} keys; median (min), ms ==")
    print(f"  baseline query (all resident)       {W['baseline_query_ms']:9.1f}")
    r = W["record"]
    print(f"  recording restore: {r['ws_pages']} pages recorded, query {r['query_ms']:.1f} ms "
          f"(one fault per page), ws file {r['ws_file_bytes']} bytes")
    for k in ("daemon_ready_ms", "time_to_running_ms", "first_answer_ms", "answers_ms",
              "query_ms", "faults"):
        p, q = W[f"plain_{k}"], W[f"prefetch_{k}"]
        print(f"  {k:34s} plain {p['median']:9.1f} ({p['min']:.1f})   prefetch "
              f"{q['median']:9.1f} ({q['min']:.1f})")
    print(f"  prefetch: {W['prefetch_pages']['median']:.0f} pages, set in place after "
          f"{W['prefetch_done_ms']['median']:.1f} ms from handover")
    print(f"  {c['keys']} answers, plain lazy / with working set: "
          f"x{W['answers_plain_vs_prefetch_of_medians']:.2f} (medians; per pair median "
          f"x{W['answers_plain_vs_prefetch']['median']:.2f}, target >= 3)")
