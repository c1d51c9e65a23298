"""bench_targets.py - `make bench`: issue 10's targets judged on this run's
figures, as `targets` in the JSON and a table at the end of the output.

One entry per target, whatever parts ran:

  {"target": what the issue asks, "limit": the bound, "better": "lower" or
   "higher", "value": the figure judged (a ratio), "ratio_of_medians": the
   same from the medians, "per_size" / "per_mode": the detail,
   "verdict": "met" | "missed by xN" | "not measured (why)",
   "figures": the figures behind the value, from this run}

The value is the median of the per-repetition ratios, each taken against
the yardstick measured in the same repetition (next to the figure it
judges: bench_size, bench_criu's interleaved pairs, bench_thp's and
bench_ws's alternated pairs); over several sizes, the worst size. "missed
by xN": the value is N times past the limit. No figure here is written in:
every value comes from the run's own JSON; the limits are the issue's.

The fault-service target comes from the `faults` part (bench_faults.py):
two bounds, median and p99 against the bare round trip, judged on the one
missed by more; without that part, "not measured".
"""

MEMORY_GROWTH_LIMIT = 0.01  # "bounded": under 1 % of the added memory (MiB per MiB)


def verdict(value, limit, better, strict=False):
    if value is None:
        return "not measured (no figure)"
    if better == "lower":
        ok = value < limit if strict else value <= limit
        n = value / limit if limit else float("inf")
    else:
        ok = value > limit if strict else value >= limit
        n = limit / value if value > 0 else float("inf")
    return "met" if ok else f"missed by x{n:.2f}"


def entry(target, limit, better, value=None, of_medians=None, strict=False, why=None,
          **detail):
    e = {"target": target, "limit": limit, "better": better, "value": value,
         "ratio_of_medians": of_medians}
    e.update(detail)
    e["verdict"] = f"not measured ({why})" if why else verdict(value, limit, better, strict)
    return e


def worst(per, better):
    """The size (key) whose median of per-repetition ratios is the worst."""
    have = {k: v for k, v in per.items() if v.get("median_of_reps") is not None}
    if not have:
        return None
    pick = max if better == "lower" else min
    return pick(have, key=lambda k: have[k]["median_of_reps"])


def judged(target, limit, better, per, figures, strict=False):
    """An entry judged at the worst of per {key: {median_of_reps,
    of_medians, ...}}; figures(key) says what stands behind it."""
    k = worst(per, better)
    if k is None:
        return entry(target, limit, better, why="no figure", per_size=per)
    return entry(target, limit, better, per[k]["median_of_reps"], per[k]["of_medians"],
                 strict, worst_at=k, per_size=per, figures=figures(k))


def med(d, *path):
    for p in path:
        d = d.get(p) if d else None
    return d["median"] if d else None


def phases(d, prefix, names):
    """'a 12.3, b 4.5 ms': the largest phases of d[prefix + name] (medians),
    without the totals (total, and frozen: the dump's phases from seize to
    release)."""
    got = [(n.replace("_ms", ""), med(d, prefix + n)) for n in names
           if n not in ("total_ms", "frozen_ms")]
    got = sorted([g for g in got if g[1] is not None], key=lambda g: -g[1])[:4]
    return ", ".join(f"{n} {v:.1f}" for n, v in got) + " ms"


# ------------------------------------------------------------ the sizes part

def size_target(h, res, key, target, limit, better, figures):
    R = res.get("ratios")
    if not R:
        return entry(target, limit, better, why="the sizes part did not run")
    per = {}
    for mib, r in R["per_size"].items():
        pr = r.get(key + "_per_rep")
        per[mib] = {"median_of_reps": pr and pr["median"], "of_medians": r.get(key),
                    "reps": pr and pr["samples"]}
    return judged(target, limit, better, per, figures)


def sizes_targets(h, res):
    laz = res.get("lazarus") or {}
    out = {}

    def ttr_fig(m):
        s = laz[m]
        g = (res.get("ratios") or {}).get("growth", {})
        return (f"{m} MiB: lazy time to running {med(s, 'lazy_idle', 'time_to_running_ms'):.1f} "
                f"ms vs fork+exec /bin/true {med(s, 'fork_exec_true_ms'):.1f} ms (medians); "
                f"restore's largest phases: "
                f"{phases(s['lazy_idle'], 'restore_', h.RESTORE_PHASES)}; growth with size: "
                f"{h.fmt(g.get('lazy_ttr_ms_per_gib'), '.1f')} ms/GiB")

    out["lazy_time_to_running"] = size_target(
        h, res, "target_ttr_vs_fork_exec_true",
        "lazy time to running <= 2x fork+exec of /bin/true, at every size (flat)", 2.0,
        "lower", ttr_fig)

    def fill_fig(m):
        s = laz[m]
        return (f"{m} MiB: daemon fill {med(s, 'lazy_idle', 'fill_gbps'):.2f} GB/s vs "
                f"fill_2m_pread {med(s, 'fill_2m_pread_gbps'):.2f} GB/s (medians); "
                f"handover to last page {med(s, 'lazy_idle', 'time_to_complete_ms'):.0f} ms, "
                f"{med(s, 'lazy_idle', 'pages_fill'):.0f} pages by fill, "
                f"{med(s, 'lazy_idle', 'pages_fault'):.0f} on fault")

    out["fill"] = size_target(h, res, "target_fill_vs_fill_2m_pread",
                              "background fill >= 0.9x fill_2m_pread", 0.9, "higher", fill_fig)

    def dump_fig(m):
        s = laz[m]
        return (f"{m} MiB: dump {med(s, 'dump_gbps'):.2f} GB/s ({med(s, 'dump_ms'):.0f} ms) vs "
                f"images fs write {med(s, 'images_fs_write_gbps'):.2f} GB/s (medians); "
                f"largest phases: {phases(s, 'dump_', h.DUMP_PHASES)}")

    out["dump_vs_fs_write"] = size_target(h, res, "target_dump_vs_images_fs_write",
                                          "dump >= 0.7x the images filesystem's write rate",
                                          0.7, "higher", dump_fig)

    def eager_fig(m):
        s = laz[m]
        return (f"{m} MiB: eager restore {med(s, 'eager_restore_ms'):.0f} ms vs floor "
                f"{med(s, 'eager_floor_ms'):.0f} ms (medians); restore's largest phases: "
                f"{phases(s, 'eager_restore_', h.RESTORE_PHASES)}")

    out["eager_vs_floor"] = size_target(h, res, "target_eager_restore_vs_floor",
                                        "eager restore <= 1.2x the machine floor", 1.2,
                                        "lower", eager_fig)
    out["tool_memory"] = tool_memory(res)
    return out


TOOL_MEMORY = (("eager restore", ("eager_restore_vm_hwm_mib",)),
               ("lazy restore", ("lazy_idle", "restore_vm_hwm_mib")),
               ("lazy-pages daemon", ("lazy_idle", "daemon_vm_hwm_mib")))


def tool_memory(res):
    target = ("tool memory bounded: peak RSS of restore and of the daemon grows by under "
              f"{MEMORY_GROWTH_LIMIT:.0%} of the added memory, smallest to largest size")
    laz, sizes = res.get("lazarus") or {}, res["config"]["mib"]
    if not laz:
        return entry(target, MEMORY_GROWTH_LIMIT, "lower", why="the sizes part did not run")
    if len(sizes) < 2:
        return entry(target, MEMORY_GROWTH_LIMIT, "lower",
                     why="one size only: growth needs two (--mib)")
    lo, hi = str(sizes[0]), str(sizes[-1])
    per, figs = {}, []
    for name, path in TOOL_MEMORY:
        a, b = med(laz[lo], *path), med(laz[hi], *path)
        if a is None or b is None:
            continue
        per[name] = {"median_of_reps": (b - a) / (sizes[-1] - sizes[0]), "of_medians": None,
                     "peak_rss_mib": {lo: a, hi: b}}
        figs.append(f"{name} {a:.1f} -> {b:.1f} MiB")
    k = worst(per, "lower")
    if k is None:
        return entry(target, MEMORY_GROWTH_LIMIT, "lower", why="no peak RSS in the stats")
    return entry(target, MEMORY_GROWTH_LIMIT, "lower", per[k]["median_of_reps"], None,
                 worst_at=k, per_tool=per,
                 figures=f"peak RSS (VmHWM, medians) at {lo} -> {hi} MiB: " + ", ".join(figs)
                 + " (value: MiB of peak RSS per MiB of memory added)")


# ------------------------------------------------------------ CRIU

CRIU_TARGETS = (
    # key, CRIU/Lazarus figure (time: CRIU over Lazarus = Lazarus's speed-up), target, limit,
    # strict
    ("fill_vs_criu", "lazy_daemon_exit_ms",
     "background fill done sooner than CRIU's (CRIU / Lazarus time, restore start to the "
     "daemon's exit)", 1.0, True),
    ("dump_vs_criu", "dump_ms", "dump >= 1.5x CRIU's speed (CRIU / Lazarus dump time)", 1.5,
     False),
    ("eager_vs_criu", "eager_restore_ms",
     "eager restore >= 2x CRIU's speed (CRIU / Lazarus restore -d time)", 2.0, False),
)


def criu_targets(h, res):
    C = res.get("criu")
    out = {}
    for key, fig, target, limit, strict in CRIU_TARGETS:
        if not C:
            out[key] = entry(target, limit, "higher", why="no --criu: make bench CRIU=/path/to/criu")
            continue
        per = {}
        for mib, s in C["per_size"].items():
            pr = h.per_rep(s["criu"][fig], s["lazarus"][fig])
            per[mib] = {"median_of_reps": pr and pr["median"],
                        "of_medians": s["criu_vs_lazarus"][fig], "reps": pr and pr["samples"]}

        def figures(m, fig=fig):
            s = C["per_size"][m]
            return (f"{m} MiB: CRIU {s['criu'][fig]['median']:.1f} ms, Lazarus "
                    f"{s['lazarus'][fig]['median']:.1f} ms ({fig}, medians; pairs run "
                    f"interleaved)")

        out[key] = judged(target, limit, "higher", per, figures, strict)
    return out


# ------------------------------------------------------------ other parts

def ws_target(res):
    target = "working set first: the N answers >= 3x sooner with --prefetch-ws than plain lazy"
    W = res.get("ws")
    if not W:
        return entry(target, 3.0, "higher", why="the ws part did not run")
    return entry(target, 3.0, "higher", W["answers_plain_vs_prefetch"]["median"],
                 W["answers_plain_vs_prefetch_of_medians"],
                 figures=f"{W['config']['keys']} answers: plain lazy "
                 f"{W['plain_answers_ms']['median']:.0f} ms, with the working set "
                 f"{W['prefetch_answers_ms']['median']:.0f} ms (medians, alternated pairs)")


def thp_target(h, res):
    target = ("huge pages: the first pass over memory after restore faster with THP than "
              "without (time without / with)")
    T = res.get("thp")
    if not T:
        return entry(target, 1.0, "higher", why="the thp part did not run")
    per, figs = {}, []
    for m in ("eager", "lazy"):
        a, b = T[f"small_{m}_verify_ms"], T[f"thp_{m}_verify_ms"]
        pr = h.per_rep(a, b)
        per[m] = {"median_of_reps": pr and pr["median"],
                  "of_medians": h.ratio(a["median"], b["median"]), "reps": pr and pr["samples"]}
        figs.append(f"after {m} restore {b['median']:.0f} ms with huge pages, "
                    f"{a['median']:.0f} ms without")
    k = worst(per, "higher")
    if k is None:
        return entry(target, 1.0, "higher", why="no pairs", per_mode=per)
    return entry(target, 1.0, "higher", per[k]["median_of_reps"], per[k]["of_medians"],
                 strict=True, worst_at=k, per_mode=per,
                 figures=f"lzwork {T['config']['mib']} MiB, first pass (medians): "
                 + "; ".join(figs))


def fault_target(res):
    target = ("fault service during the fill: median <= 1.3x, p99 <= 3x the bare fault "
              "round trip")
    F = res.get("faults")
    if isinstance(F, dict) and isinstance(F.get("target"), dict):
        return F["target"]
    if not isinstance(F, dict) or F.get("median_vs_bare") is None:
        return entry(target, None, "lower", why="no fault-service part in this run")
    # Two bounds: judged on the one missed by more (each ratio over its
    # limit); the value is that ratio. bench_faults alternates the runs, and
    # its ratios are of the medians over the repetitions.
    med, p99 = F["median_vs_bare"], F["p99_vs_bare"]
    which = "median" if med / 1.3 >= p99 / 3.0 else "p99"
    value, limit = (med, 1.3) if which == "median" else (p99, 3.0)
    lz, bare = F["lazarus"], F["bare"]
    return entry(target, limit, "lower", value, value, judged_on=which,
                 median_vs_bare=med, p99_vs_bare=p99,
                 figures=f"lzfaults {F['config']['mib']} MiB, {F['config']['threads']} threads: "
                 f"fault median {lz['median_us']['median']:.0f} us vs bare "
                 f"{bare['median_us']['median']:.0f} us (x{med:.2f}, limit 1.3), p99 "
                 f"{lz['p99_us']['median']:.0f} vs {bare['p99_us']['median']:.0f} us "
                 f"(x{p99:.2f}, limit 3); judged on the {which}")


ORDER = ("lazy_time_to_running", "fill", "fill_vs_criu", "dump_vs_criu", "dump_vs_fs_write",
         "eager_vs_criu", "eager_vs_floor", "fault_service", "working_set_first",
         "thp_first_pass", "tool_memory")


def targets(h, res):
    """h: the bench module; res: the whole result so far."""
    t = sizes_targets(h, res)
    t.update(criu_targets(h, res))
    t["fault_service"] = fault_target(res)
    t["working_set_first"] = ws_target(res)
    t["thp_first_pass"] = thp_target(h, res)
    return {k: t[k] for k in ORDER}


def print_targets(T):
    print("\n== issue 10's targets, this run (value: median of the per-repetition ratios; "
          "worst size) ==")
    print(f"  {'target':24s} {'value':>9s} {'limit':>8s} {'of medians':>11s}  verdict")
    for k, e in T.items():
        lim = "-" if e.get("limit") is None else \
            f"{ {'lower': '<= ', 'higher': '>= '}.get(e.get('better'), '')}{e['limit']:g}"
        v, om = e.get("value"), e.get("ratio_of_medians")
        where = ""
        if e.get("worst_at") and e.get("verdict") != "met":
            where = f" (at {e['worst_at']}{' MiB' if 'per_size' in e else ''})"
        print(f"  {k:24s} {'-' if v is None else format(v, '.3g'):>9s} {lim:>8s} "
              f"{'-' if om is None else format(om, '.3g'):>11s}  {e.get('verdict', '?')}{where}")
    for k, e in T.items():
        if e.get("verdict", "").startswith("missed") and e.get("figures"):
            print(f"  {k}: {e['figures']}")
