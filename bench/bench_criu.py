"""bench_criu.py - `make bench CRIU=/path/to/criu`: CRIU and Lazarus on the
same workload in the same run, interleaved.

For each --mib size, --reps times, each tool in turn (the order swapped
every repetition, so neither always runs first): start lzwork, let it check
itself (baseline), dump it with the tool, then restore its images with the
same tool, eagerly (`restore -d`, self-check, SIGTERM) and lazily (the
tool's lazy-pages daemon started and ready, `restore --lazy-pages -d`, the
process left alone until the daemon exits, i.e. every page is in place,
then the self-check). Every self-check must PASS and continue from the
dumped state (bench.py's Workload.check), whichever tool restored it.

All figures are wall clock around the commands, measured the same way for
both tools (bench_tools.Run), so they compare; Lazarus's own stats are in
the "sizes" part. Images on the bench's tmpfs. Figures under "criu" in the
JSON: per size, per tool {median, min, max, samples}, and criu/lazarus
ratios of the medians (> 1: Lazarus is faster or smaller).
"""
import shutil

import bench_tools

MIB = 1 << 20

FIGURES = (
    # key, label, "lower is better" (False: higher is better)
    ("dump_ms", "dump", True),
    ("eager_restore_ms", "eager restore (restore -d)", True),
    ("eager_verify_ms", "self-check after eager", True),
    ("lazy_daemon_ready_ms", "lazy: daemon start to ready", True),
    ("lazy_time_to_running_ms", "lazy: time to running", True),
    ("lazy_daemon_exit_after_restore_ms", "lazy: fill done after restore returned", True),
    ("lazy_daemon_exit_ms", "lazy: fill done from restore start", True),
    ("lazy_fill_gbps", "lazy: fill GB/s (size / fill done)", False),
    ("lazy_verify_ms", "self-check after lazy, fill done", True),
    ("dump_maxrss_mib", "peak RSS MiB: dump", True),
    ("eager_restore_maxrss_mib", "peak RSS MiB: eager restore", True),
    ("lazy_restore_maxrss_mib", "peak RSS MiB: lazy restore", True),
    ("lazy_daemon_maxrss_mib", "peak RSS MiB: lazy-pages daemon", True),
    ("image_mib", "image MiB", True),
)


def one(h, b, tool, mib, rep):
    """One repetition of one tool at one size: {figure: value}."""
    f = {}
    w = h.Workload(b.base / f"cmp-{tool.name}-{mib}-{rep}", mib)
    b.pids.add(w.pid)
    w.check(f"{tool.name} baseline")
    img = b.base / f"img-cmp-{tool.name}"
    shutil.rmtree(img, ignore_errors=True)
    img.mkdir()
    r = tool.run_ok("dump", tool.dump_args(w.pid, img))
    try:
        w.proc.wait(h.EXIT_TIMEOUT)
    except h.subprocess.TimeoutExpired:
        raise h.BenchError(f"{tool.name} dump: lzwork {w.pid} still runs after the dump")
    h.wait_for(lambda: h.proc_stat(w.pid) is None, h.EXIT_TIMEOUT, f"pid {w.pid} to be free")
    log_size = (w.dir / "log").stat().st_size
    # CRIU checks the size of every regular file it reopens: lzwork's stdout
    # (DIR/out) too, which a restored lzwork appends to.
    out_size = (w.dir / "out").stat().st_size
    f["dump_ms"] = h.ms(r.wall_ns())
    f["dump_maxrss_mib"] = r.maxrss_kib / 1024
    f["image_mib"] = sum(p.stat().st_size for p in img.iterdir() if p.is_file()) / MIB

    # eager
    work = b.base / f"work-cmp-{tool.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    w.rewind(log_size)
    h.os.truncate(w.dir / "out", out_size)
    b.pids.add(w.pid)
    r = tool.restore_finish(tool.restore_start(img, work, lazy=False), "eager restore")
    f["eager_restore_ms"] = h.ms(r.wall_ns())
    f["eager_restore_maxrss_mib"] = r.maxrss_kib / 1024
    f["eager_verify_ms"] = h.ms(w.check(f"{tool.name} eager restore"))
    w.stop(f"{tool.name} eager restore")

    # lazy, the process left alone until the daemon has placed everything
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    w.rewind(log_size)
    h.os.truncate(w.dir / "out", out_size)
    d, f["lazy_daemon_ready_ms"] = tool.start_daemon(img, work)
    r = tool.restore_finish(tool.restore_start(img, work, lazy=True), "lazy restore")
    tool.finish_daemon(d, "lazy restore")
    f["lazy_time_to_running_ms"] = h.ms(r.wall_ns())
    f["lazy_restore_maxrss_mib"] = r.maxrss_kib / 1024
    f["lazy_daemon_maxrss_mib"] = d.maxrss_kib / 1024
    f["lazy_daemon_exit_after_restore_ms"] = h.ms(d.t1 - r.t1)
    f["lazy_daemon_exit_ms"] = h.ms(d.t1 - r.t0)
    f["lazy_fill_gbps"] = mib * MIB / (d.t1 - r.t0)
    f["lazy_verify_ms"] = h.ms(w.check(f"{tool.name} lazy restore"))
    w.stop(f"{tool.name} lazy restore")
    h.reap_zombie_orphans(keep=set())
    shutil.rmtree(w.dir, ignore_errors=True)
    shutil.rmtree(img, ignore_errors=True)
    return f


def bench_criu(h, b, criu_path, sizes, reps):
    tools = [bench_tools.Criu(h, b, criu_path), bench_tools.Lazarus(h, b)]
    out = {"config": {"mib": sizes, "reps": reps, "criu": str(criu_path),
                      "criu_version": bench_tools.criu_version(criu_path),
                      "order": "criu first in even repetitions, lazarus first in odd ones"},
           "per_size": {}}
    for mib in sizes:
        raw = {t.name: {k: [] for k, _, _ in FIGURES} for t in tools}
        for rep in range(reps):
            t = h.now()
            for tool in (tools if rep % 2 == 0 else tools[::-1]):
                for k, v in one(h, b, tool, mib, rep).items():
                    raw[tool.name][k].append(v)
            c, z = raw["criu"], raw["lazarus"]
            print(f"  criu vs lazarus {mib} MiB rep {rep + 1}/{reps}: dump "
                  f"{c['dump_ms'][-1]:.0f} / {z['dump_ms'][-1]:.0f} ms, eager "
                  f"{c['eager_restore_ms'][-1]:.0f} / {z['eager_restore_ms'][-1]:.0f} ms, lazy "
                  f"running {c['lazy_time_to_running_ms'][-1]:.1f} / "
                  f"{z['lazy_time_to_running_ms'][-1]:.1f} ms, fill done "
                  f"{c['lazy_daemon_exit_ms'][-1]:.0f} / {z['lazy_daemon_exit_ms'][-1]:.0f} ms; "
                  f"all PASS ({h.ms(h.now() - t) / 1000:.1f} s)", flush=True)
        s = {name: {k: h.summary(v) for k, v in figs.items()} for name, figs in raw.items()}
        s["criu_vs_lazarus"] = {k: h.ratio(h.med(s["criu"], k), h.med(s["lazarus"], k))
                                for k, _, _ in FIGURES}
        out["per_size"][str(mib)] = s
    return out


def print_table(rows, head):
    """rows: (label, criu summary, lazarus summary, ratio, spec)."""
    print(f"  {head:40s} {'CRIU':>16s} {'Lazarus':>16s} {'CRIU/Lazarus':>13s}")
    for label, c, z, r, spec in rows:
        cell = (lambda d: "-" if not d else f"{format(d['median'], spec)} ({format(d['min'], spec)})")
        print(f"  {label:40s} {cell(c):>16s} {cell(z):>16s} "
              f"{'-' if r is None else format(r, '.2f'):>13s}")


def print_criu(C):
    print(f"\n== CRIU ({C['config']['criu_version']}) and Lazarus, lzwork, same run, "
          f"interleaved; median (min); times in ms ==")
    for mib, s in C["per_size"].items():
        print(f" {mib} MiB:")
        print_table([(label, s["criu"][k], s["lazarus"][k], s["criu_vs_lazarus"][k],
                      ".2f" if k.endswith("gbps") or k.endswith("mib") else ".1f")
                     for k, label, _ in FIGURES], "")
    print("  (ratio = CRIU median / Lazarus median: above 1, Lazarus is faster or smaller, "
          "except for GB/s, where above 1 CRIU fills faster)")
