"""bench_thp.py - `make bench`, huge pages: the first pass over memory after a
restore, for memory that had transparent huge pages (lzwork --thp: its
memory MADV_HUGEPAGE) and for the same workload without them.

For each of --reps, in alternating order, thp and not: start lzwork, check
it (baseline first pass), dump; eager: restore -d, AnonHugePages, its
self-check (the first pass over its memory after restore), SIGTERM; lazy:
daemon, restore --lazy-pages -d, wait for the daemon to exit (every page in
place, and with THP the MADV_HUGEPAGE VMAs collapsed), AnonHugePages, the
self-check, SIGTERM. Every check must PASS and continue from the dumped state.

Called by bench.py (same run); figures under "thp" in the JSON.
"""
import json
import shutil


def anon_huge_mib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) / 1024
    return 0.0


def one(h, b, mib, thp, rep, raw):
    name = "thp" if thp else "small"
    w = h.Workload(b.base / f"thp-{name}-{rep}", mib, ["--thp"] if thp else [])
    b.pids.add(w.pid)
    raw[f"{name}_baseline_verify_ms"].append(h.ms(w.check("thp baseline")))
    raw[f"{name}_before_anon_huge_mib"].append(anon_huge_mib(w.pid))
    img = b.base / "img-thp"
    d = b.dump(w, img)
    # eager
    w.rewind(d["log_size"])
    b.pids.add(w.pid)
    raw[f"{name}_eager_restore_ms"].append(h.ms(b.lazarus("restore-eager-thp", "restore",
                                                           "-D", img, "-d")))
    raw[f"{name}_eager_anon_huge_mib"].append(anon_huge_mib(w.pid))
    raw[f"{name}_eager_verify_ms"].append(h.ms(w.check(f"{name} eager restore")))
    w.stop(f"{name} eager restore")
    # lazy, the daemon left to finish (and collapse)
    w.rewind(d["log_size"])
    work = b.base / "lazy-thp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    dm, box = b.start_daemon(img, work)
    t0 = h.now()
    ttr = b.lazarus("restore-lazy-thp", "restore", "-D", img, "--lazy-pages", "-W", work, "-d")
    box["thread"].join(h.CMD_TIMEOUT)
    if box["thread"].is_alive() or dm.returncode != 0:
        raise h.BenchError(f"{name} lazy restore: daemon {dm.pid} did not exit 0")
    st = [p for p in json.loads((work / "lazy-pages-stats.json").read_text())["processes"]
          if p["pid"] == w.pid]
    if len(st) != 1 or st[0]["state"] != "done":
        raise h.BenchError(f"{name} lazy restore: pid {w.pid} not done: {st}")
    raw[f"{name}_lazy_daemon_exit_after_restore_ms"].append(h.ms(box["exit_ns"] - t0 - ttr))
    raw[f"{name}_lazy_time_to_complete_ms"].append(h.ms(st[0]["time_to_complete_ns"]))
    raw[f"{name}_lazy_thp_collapsed"].append(st[0]["thp_collapsed"])
    raw[f"{name}_lazy_anon_huge_mib"].append(anon_huge_mib(w.pid))
    raw[f"{name}_lazy_verify_ms"].append(h.ms(w.check(f"{name} lazy restore")))
    w.stop(f"{name} lazy restore")
    h.reap_zombie_orphans(keep=set())
    shutil.rmtree(w.dir, ignore_errors=True)


FIGS = ("baseline_verify_ms", "before_anon_huge_mib", "eager_restore_ms", "eager_anon_huge_mib",
        "eager_verify_ms", "lazy_daemon_exit_after_restore_ms", "lazy_time_to_complete_ms",
        "lazy_thp_collapsed", "lazy_anon_huge_mib", "lazy_verify_ms")


def bench_thp(h, b, mib, reps):
    raw = {f"{n}_{k}": [] for n in ("thp", "small") for k in FIGS}
    for rep in range(reps):
        for thp in (True, False) if rep % 2 == 0 else (False, True):
            one(h, b, mib, thp, rep, raw)
        print(f"  thp {mib} MiB rep {rep + 1}/{reps}: first pass after eager restore "
              f"{raw['thp_eager_verify_ms'][-1]:.0f} ms with huge pages vs "
              f"{raw['small_eager_verify_ms'][-1]:.0f} ms without; after lazy "
              f"{raw['thp_lazy_verify_ms'][-1]:.0f} vs {raw['small_lazy_verify_ms'][-1]:.0f} ms;"
              f" all PASS", flush=True)
    out = {k: h.summary(v) for k, v in raw.items()}
    out["config"] = {"mib": mib, "reps": reps}
    return out


def print_thp(T):
    print(f"\n== huge pages: lzwork {T['config']['mib']} MiB with --thp (MADV_HUGEPAGE) and "
          f"without; median (min) ==")
    for k in FIGS:
        a, c = T[f"thp_{k}"], T[f"small_{k}"]
        print(f"  {k:36s} thp {a['median']:9.1f} ({a['min']:.1f})   without "
              f"{c['median']:9.1f} ({c['min']:.1f})")
    for m in ("eager", "lazy"):
        a, c = T[f"thp_{m}_verify_ms"]["median"], T[f"small_{m}_verify_ms"]["median"]
        print(f"  first pass after {m} restore: x{c / a:.2f} faster with huge pages")
