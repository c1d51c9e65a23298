"""bench_shmmodes.py - `make bench`, the shmmodes part: lazy shared memory
served in MISSING mode (UFFDIO_COPY, what src/lazy-shmem.c does) against
MINOR mode (pwrite into the page cache + UFFDIO_CONTINUE), measured bare by
build/bench/shmbench in one process, the modes alternated in every
repetition (shmbench.c says what each figure is; every pass there checks
every page of the object with memcmp and stops on a wrong one).

Called by bench.py (same run); figures under "shmmodes" in the JSON, each as
{unit, median, min, max, samples, params}.
"""

FAULTS = ("4k_seq", "4k_rand", "64k_seq", "64k_rand")


def bench_shmmodes(h, binary, mib, reps):
    raw = h.run_micro([binary, "--mib", mib, "--reps", reps], "shmbench")
    out = {}
    for name, t in raw.items():
        s = h.summary(t.pop("samples"))
        out[name] = dict(unit=t.pop("unit"), **s, params=t)
    out["config"] = {"mib": mib, "reps": reps, "shmem_enabled": shmem_thp()}
    return out


def shmem_thp():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            return f.read().strip()
    except OSError:
        return None


def _m(S, name):
    return S[name]["median"]


def print_shmmodes(S):
    c = S["config"]
    print(f"\n== shared memory served lazily, MISSING (UFFDIO_COPY) vs MINOR (pwrite + "
          f"UFFDIO_CONTINUE): a {c['mib']} MiB memfd, {c['reps']} alternated repetitions, "
          f"median (min) ==")
    print(f"  {'fault round trip, ns':28s} {'missing':>18s} {'minor':>18s} {'minor/missing':>14s}")
    for f in FAULTS:
        for suffix, label in (("", "median"), ("_p99", "p99"), ("_per_page", "whole pass/page")):
            a, b = S[f"missing_fault_{f}{suffix}"], S[f"minor_fault_{f}{suffix}"]
            print(f"  {f + ' ' + label:28s} {a['median']:9.0f} ({a['min']:6.0f}) "
                  f"{b['median']:9.0f} ({b['min']:6.0f}) {b['median'] / a['median']:14.2f}")
    print(f"  {'fill in 2 MiB pieces':28s} {'GB/s':>9s} {'1st read ns/pg (faults)':>24s} "
          f"{'2nd mapping: read ns/pg (faults), traps':>40s}")
    for m, label in (("missing", "UFFDIO_COPY (missing)"), ("minor", "pwrite+CONTINUE (minor)"),
                     ("pwrite", "pwrite alone (missing)")):
        f = f"{m}_fill_2m"
        print(f"  {label:28s} {_m(S, f):9.2f} {_m(S, f + '_read'):15.0f} "
              f"({_m(S, f + '_read_kfaults'):6.0f}) {_m(S, f + '_second_read'):22.0f} "
              f"({_m(S, f + '_second_kfaults'):6.0f}) {_m(S, f + '_second_faults'):8.0f}")
    print(f"  minor, 2nd mapping CONTINUEd whole first: {_m(S, 'minor_continue_2m'):.2f} GB/s, "
          f"then 1st read {_m(S, 'minor_continue_2m_read'):.0f} ns/page")
    zero = _m(S, "minor_only_hole_zero") == 1
    print(f"  MINOR alone, read of a page not in the page cache: "
          f"{_m(S, 'minor_only_hole_faults'):.0f} faults, "
          f"{'read zeros (no fault: MINOR alone cannot serve an empty object)' if zero else 'data'}")
