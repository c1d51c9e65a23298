"""bench_redis.py - `make bench`, a real server: redis-server holding about
--redis-mib MiB (default 1024) of data, checkpointed, then restored lazily
and eagerly, next to a redis that was never checkpointed; with --criu the
same with CRIU in the same run.

Set-up: redis-server (Debian's) in a directory of the bench's tmpfs on a free
port of 127.0.0.1, no persistence, loaded with `DEBUG POPULATE N key 1000`
until `used_memory` reaches the size (keys key:0..key:N-1, values of 1000
bytes: "value:<i>" then NUL bytes, so every value is known). One such redis
per tool is dumped (its clients gone first: every connection QUIT and
closed by redis); a third one is kept running as the reference that was
never checkpointed. The same --redis-gets (default 10,000) keys, drawn once
with a fixed seed, are asked in every run.

One run, on any redis: from t0, connect a NEW TCP connection (retrying while
the port refuses), GET a known key (the first reply), then the N GETs one at
a time on that connection (a raw RESP client, no pipelining), every reply
compared byte for byte with the expected value: a wrong or missing value
fails the bench, it is never a figure. t0 is the start of `restore` for a
restored redis (lazy: its daemon was started and ready before, and that is
timed apart), the connect for the reference.

Each repetition runs, alternating: the reference, then per tool (the tools'
order swapped every repetition) a lazy restore (daemon started, restore
--lazy-pages -d; the first reply and the N replies; then the daemon's exit
waited for, DBSIZE checked, redis SIGKILLed and reaped) and an eager
restore (restore -d; the same). Figures under "redis" in the JSON.

The issue's targets, reported met/missed: the first reply within 10 ms of
restore's start; the N replies (from restore's start) within 1.1x of the
reference's N replies (from its connect).
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import bench_tools

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
VALUE_SIZE = 1000  # sds of 1000 + 4 bytes: jemalloc's 1024 class, little slack
SEED = 20261202
KNOWN_KEY = 4242
FIRST_REPLY_TARGET_MS = 10.0
REPLIES_TARGET_RATIO = 1.1
CONNECT_RETRY_S = 0.0002


def expected_value(i):
    v = b"value:%d" % i
    return v + b"\0" * (VALUE_SIZE - len(v))


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def get_request(i):
    """(request bytes, the exact reply expected) for GET key:i."""
    v = expected_value(i)
    return resp("GET", b"key:%d" % i), b"$%d\r\n%s\r\n" % (len(v), v)


class Conn:
    """One TCP connection, one request at a time."""

    def __init__(self, h, sock):
        self.h, self.s, self.buf = h, sock, b""
        self.s.settimeout(h.CHECK_TIMEOUT)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exact(self, req, want, what):
        """Send req; the reply must be exactly want."""
        self.s.sendall(req)
        buf = b""
        while len(buf) < len(want):
            data = self.s.recv(len(want) - len(buf))
            if not data:
                raise self.h.BenchError(f"{what}: redis closed the connection after "
                                        f"{len(buf)} bytes of a reply")
            buf += data
            if not want.startswith(buf):
                raise self.h.BenchError(f"{what}: WRONG reply to {req[:60]!r}: "
                                        f"{buf[:80]!r}, want {want[:40]!r}...")
        return buf

    def line(self, req, what):
        """Send req; one RESP line (+OK, :42, $n header...) back."""
        self.s.sendall(req)
        while b"\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise self.h.BenchError(f"{what}: redis closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        if line.startswith(b"-"):
            raise self.h.BenchError(f"{what}: redis error: {line.decode()}")
        return line

    def bulk(self, req, what):
        n = int(self.line(req, what)[1:])
        while len(self.buf) < n + 2:
            data = self.s.recv(65536)
            if not data:
                raise self.h.BenchError(f"{what}: redis closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out

    def quit(self):
        """QUIT, then wait for redis to close its end (a half-closed socket
        at dump time would be dumped, or refused)."""
        self.line(resp("QUIT"), "QUIT")
        while self.s.recv(65536):
            pass
        self.s.close()

    def close(self):
        self.s.close()


def connect(h, port, what, t_deadline, run=None):
    """A new connection, retried while the port refuses (a restore that is
    not there yet); fails if run (the restore) exited non-zero meanwhile."""
    while True:
        try:
            return Conn(h, socket.create_connection(("127.0.0.1", port), timeout=h.CHECK_TIMEOUT))
        except ConnectionRefusedError:
            if run is not None and run.done() and run.p.returncode != 0:
                raise h.BenchError(f"{what}: restore exited {run.p.returncode} (log in "
                                   f"{h.BUILD / 'bench' / 'failed'} if the bench stops here)")
            if time.monotonic() > t_deadline:
                raise h.BenchError(f"{what}: redis on port {port} refused connections for "
                                   f"{h.CMD_TIMEOUT} s")
            time.sleep(CONNECT_RETRY_S)


class Redis:
    def __init__(self, h, b, name):
        self.h, self.name = h, name
        self.dir = b.base / f"redis-{name}"
        self.dir.mkdir()
        self.port = h.free_port()
        argv = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "no", "--logfile", str(self.dir / "redis.log"),
                "--enable-debug-command", "local"]
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, close_fds=True)
        self.pid = self.proc.pid
        b.pids.add(self.pid)

        def up():
            if self.proc.poll() is not None:
                raise h.BenchError(f"redis-server exited {self.proc.returncode}: "
                                   f"{h.read_first(self.dir / 'redis.log')[-800:]}")
            try:
                c = Conn(h, socket.create_connection(("127.0.0.1", self.port), timeout=2))
            except OSError:
                return False
            ok = c.line(resp("PING"), "PING") == b"+PONG"
            c.quit()
            return ok

        h.wait_for(up, h.READY_TIMEOUT, f"redis-server {name} to answer PING")

    def info(self, c, key):
        for ln in c.bulk(resp("INFO", "memory"), "INFO").decode().splitlines():
            if ln.startswith(key + ":"):
                return int(ln.split(":", 1)[1])
        raise self.h.BenchError(f"redis INFO has no {key}")

    def populate(self, mib, n=None):
        """DEBUG POPULATE until used_memory >= mib MiB, or exactly N keys (the
        count the first redis of the run reached: the same data in every
        copy); returns (keys, used_memory)."""
        h = self.h
        c = Conn(h, socket.create_connection(("127.0.0.1", self.port), timeout=h.CHECK_TIMEOUT))
        c.s.settimeout(h.CMD_TIMEOUT)
        target = mib << 20
        fixed = n is not None
        n = n if fixed else max(1000, target // (VALUE_SIZE + 200))
        for _ in range(1 if fixed else 4):
            if c.line(resp("DEBUG", "POPULATE", n, "key", VALUE_SIZE), "DEBUG POPULATE") != b"+OK":
                raise h.BenchError("DEBUG POPULATE failed")
            used = self.info(c, "used_memory")
            if used >= target * 0.99:
                break
            per_key = used / n
            n = int(target / per_key) + 1
        keys = int(c.line(resp("DBSIZE"), "DBSIZE")[1:])
        if keys != n:
            raise h.BenchError(f"redis {self.name}: DBSIZE {keys}, want {n}")
        c.exact(*get_request(KNOWN_KEY), f"redis {self.name} after populate")
        c.quit()
        return n, used


def one_run(h, port, keyreqs, what, t0, run=None):
    """From t0: new connection, the known key, then every request of keyreqs.
    Returns (first reply ns, all replies ns, GETs-only ns, the connection)."""
    c = connect(h, port, what, time.monotonic() + h.CMD_TIMEOUT, run)
    c.exact(*get_request(KNOWN_KEY), f"{what}: first reply")
    t_first = h.now()
    for req, want in keyreqs:
        c.exact(req, want, what)
    t_all = h.now()
    return t_first - t0, t_all - t0, t_all - t_first, c


def restored_run(h, b, tool, img, work, pid, port, keyreqs, nkeys, lazy):
    """One restore of a dumped redis with tool; the figures of the run."""
    mode = "lazy" if lazy else "eager"
    what = f"redis {tool.name} {mode} restore"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    f = {}
    if lazy:
        d, f["daemon_ready_ms"] = tool.start_daemon(img, work)
    b.pids.add(pid)
    t0 = h.now()
    started = tool.restore_start(img, work, lazy)
    first, all_, gets, c = one_run(h, port, keyreqs, what, t0, started[0])
    r = tool.restore_finish(started, f"{mode} restore")
    f.update({"time_to_running_ms": h.ms(r.wall_ns()), "first_reply_ms": h.ms(first),
              "replies_ms": h.ms(all_), "gets_ms": h.ms(gets),
              "restore_maxrss_mib": r.maxrss_kib / 1024})
    if lazy:
        tool.finish_daemon(d, f"{mode} restore")
        f["daemon_exit_ms"] = h.ms(d.t1 - t0)
        f["daemon_maxrss_mib"] = d.maxrss_kib / 1024
    # All memory in place now (lazy: the daemon is done): the whole dataset is there.
    keys = int(c.line(resp("DBSIZE"), f"{what}: DBSIZE")[1:])
    if keys != nkeys:
        raise h.BenchError(f"{what}: DBSIZE {keys} after restore, want {nkeys}")
    c.exact(*get_request(nkeys - 1), f"{what}: the last key")
    c.close()
    if isinstance(tool, bench_tools.Lazarus):
        rs = tool.restore_stats(img, work, lazy)
        f["restore_vm_hwm_mib"] = rs["vm_hwm_kib"] / 1024
        if lazy:
            ds = tool.daemon_stats(work)
            procs = [p for p in ds["processes"] if p["pid"] == pid]
            if len(procs) != 1 or procs[0]["state"] != "done":
                raise h.BenchError(f"{what}: the daemon's stats do not show pid {pid} done: "
                                   f"{ds['processes']}")
            f["daemon_vm_hwm_mib"] = ds["vm_hwm_kib"] / 1024
            for k in ("pages_fault", "pages_fill", "faults"):
                f[k] = procs[0][k]
            f["time_to_complete_ms"] = h.ms(procs[0]["time_to_complete_ns"])
    os.kill(pid, signal.SIGKILL)
    h.reap(pid)
    h.reap_zombie_orphans(keep=set())
    return f


def bench_redis(h, b, mib, ngets, reps, criu_path=None):
    tools = [bench_tools.Lazarus(h, b)]
    if criu_path:
        tools.insert(0, bench_tools.Criu(h, b, criu_path))
    rng = random.Random(SEED)
    dumped = {}
    nkeys = None
    out = {"config": {"mib": mib, "gets": ngets, "reps": reps, "value_size": VALUE_SIZE,
                      "seed": SEED, "redis": REDIS,
                      "tools": [t.name for t in tools]}}
    for tool in tools:
        t = h.now()
        srv = Redis(h, b, tool.name)
        nkeys, used = srv.populate(mib, nkeys)
        rss = int(next(ln.split()[1] for ln in
                       Path(f"/proc/{srv.pid}/status").read_text().splitlines()
                       if ln.startswith("VmRSS:")))
        img = b.base / f"img-redis-{tool.name}"
        img.mkdir()
        r = tool.run_ok("dump-redis", tool.dump_args(srv.pid, img))
        try:
            srv.proc.wait(h.EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise h.BenchError(f"{tool.name} dump: redis {srv.pid} still runs after the dump")
        h.wait_for(lambda: h.proc_stat(srv.pid) is None, h.EXIT_TIMEOUT,
                   f"pid {srv.pid} to be free")
        dumped[tool.name] = (srv, img, nkeys)
        out[tool.name] = {"keys": nkeys, "used_memory_mib": used / (1 << 20),
                          "rss_mib": rss / 1024, "dump_ms": h.ms(r.wall_ns()),
                          "dump_maxrss_mib": r.maxrss_kib / 1024,
                          "image_mib": sum(p.stat().st_size for p in img.iterdir()
                                           if p.is_file()) / (1 << 20)}
        print(f"  redis for {tool.name}: {nkeys} keys, used_memory {used / (1 << 20):.0f} MiB, "
              f"RSS {rss / 1024:.0f} MiB, dumped in {h.ms(r.wall_ns()):.0f} ms "
              f"({h.ms(h.now() - t) / 1000:.1f} s)", flush=True)
    ref = Redis(h, b, "reference")
    nkeys, used = ref.populate(mib, nkeys)
    if any(n != nkeys for _, _, n in dumped.values()):
        raise h.BenchError(f"redis: the reference has {nkeys} keys, the dumped ones "
                           f"{[n for _, _, n in dumped.values()]}")
    out["reference"] = {"keys": nkeys, "used_memory_mib": used / (1 << 20)}
    keyreqs = [get_request(rng.randrange(nkeys)) for _ in range(ngets)]

    raw = {"reference": {k: [] for k in ("first_reply_ms", "replies_ms", "gets_ms")}}
    for rep in range(reps):
        t = h.now()
        t0 = h.now()
        first, all_, gets, c = one_run(h, ref.port, keyreqs, "redis reference", t0)
        c.close()
        for k, v in (("first_reply_ms", first), ("replies_ms", all_), ("gets_ms", gets)):
            raw["reference"][k].append(h.ms(v))
        line = [f"reference {h.ms(all_):.0f}"]
        for tool in (tools if rep % 2 == 0 else tools[::-1]):
            srv, img, n = dumped[tool.name]
            for lazy in (True, False):
                mode = "lazy" if lazy else "eager"
                f = restored_run(h, b, tool, img, b.base / f"work-redis-{tool.name}", srv.pid,
                                 srv.port, keyreqs, n, lazy)
                for k, v in f.items():
                    raw.setdefault(f"{tool.name}_{mode}", {}).setdefault(k, []).append(v)
                line.append(f"{tool.name} {mode} first {f['first_reply_ms']:.1f} / all "
                            f"{f['replies_ms']:.0f}")
        print(f"  redis {mib} MiB, {ngets} GETs, rep {rep + 1}/{reps} (ms): "
              f"{', '.join(line)}; every value right ({h.ms(h.now() - t) / 1000:.1f} s)",
              flush=True)
    os.kill(ref.pid, signal.SIGKILL)
    h.reap(ref.pid)
    for _, img, _ in dumped.values():
        shutil.rmtree(img, ignore_errors=True)
    for name, figs in raw.items():
        out.setdefault(name, {}).update({k: h.summary(v) for k, v in figs.items()})
    ref_all = h.med(out["reference"], "replies_ms")
    z = out.get("lazarus_lazy")
    first = h.med(z, "first_reply_ms")
    rr = h.ratio(h.med(z, "replies_ms"), ref_all)
    out["targets"] = {
        "first_reply_ms": first, "first_reply_target_ms": FIRST_REPLY_TARGET_MS,
        "first_reply_met": first is not None and first <= FIRST_REPLY_TARGET_MS,
        "replies_vs_reference": rr, "replies_target_ratio": REPLIES_TARGET_RATIO,
        "replies_met": rr is not None and rr <= REPLIES_TARGET_RATIO,
        "gets_only_vs_reference": h.ratio(h.med(z, "gets_ms"),
                                          h.med(out["reference"], "gets_ms")),
        "eager_first_reply_ms": h.med(out.get("lazarus_eager"), "first_reply_ms"),
    }
    if criu_path:
        cmp = {}
        for mode in ("lazy", "eager"):
            c, zz = out["criu_" + mode], out["lazarus_" + mode]
            cmp[mode] = {k: h.ratio(h.med(c, k), h.med(zz, k)) for k in zz if k in c}
        cmp["dump_ms"] = h.ratio(out["criu"]["dump_ms"], out["lazarus"]["dump_ms"])
        out["criu_vs_lazarus"] = cmp
    return out


REDIS_ROWS = (("daemon_ready_ms", "daemon start to ready"),
              ("time_to_running_ms", "restore: time to running"),
              ("first_reply_ms", "first reply (new connection)"),
              ("replies_ms", "all GETs answered"),
              ("gets_ms", "the GETs alone"),
              ("daemon_exit_ms", "daemon done (every page in)"),
              ("restore_maxrss_mib", "peak RSS MiB: restore"),
              ("daemon_maxrss_mib", "peak RSS MiB: lazy-pages daemon"))


def print_redis(R):
    h_fmt = (lambda d, spec=".1f": "-" if not d else
             f"{format(d['median'], spec)} ({format(d['min'], spec)})")
    c = R["config"]
    print(f"\n== redis-server, {c['mib']} MiB of data ({R['reference']['keys']} keys of "
          f"{c['value_size']} bytes), {c['gets']} sequential GETs on a new connection, every "
          f"value checked; median (min), ms from restore start ==")
    ref = R["reference"]
    print(f"  never checkpointed: first reply {h_fmt(ref['first_reply_ms'], '.2f')}, "
          f"{c['gets']} GETs answered {h_fmt(ref['replies_ms'])}")
    for name in c["tools"]:
        d = R[name]
        print(f"  {name}: dump {d['dump_ms']:.0f} ms, image {d['image_mib']:.0f} MiB, "
              f"used_memory {d['used_memory_mib']:.0f} MiB, RSS {d['rss_mib']:.0f} MiB, "
              f"dump peak RSS {d['dump_maxrss_mib']:.1f} MiB")
    cols = [f"{n}_{m}" for n in c["tools"] for m in ("lazy", "eager")]
    print("  " + f"{'':34s}" + "".join(f"{x:>20s}" for x in cols))
    for k, label in REDIS_ROWS:
        spec = ".2f" if k.endswith("mib") or k == "first_reply_ms" else ".1f"
        print(f"  {label:34s}" + "".join(f"{h_fmt(R[x].get(k), spec):>20s}" for x in cols))
    z = R.get("lazarus_lazy", {})
    if "restore_vm_hwm_mib" in z:
        print(f"  lazarus's own VmHWM: lazy restore {z['restore_vm_hwm_mib']['max']:.2f} MiB, "
              f"daemon {z['daemon_vm_hwm_mib']['max']:.2f} MiB, eager restore "
              f"{R['lazarus_eager']['restore_vm_hwm_mib']['max']:.2f} MiB (max over runs); "
              f"lazy: {z['faults']['median']:.0f} faults, {z['pages_fault']['median']:.0f} "
              f"pages on fault")
    if "criu_vs_lazarus" in R:
        x = R["criu_vs_lazarus"]
        print("  CRIU / Lazarus (medians): " + ", ".join(
            f"{m} {k} {x[m][k]:.2f}" for m in ("lazy", "eager")
            for k in ("time_to_running_ms", "first_reply_ms", "replies_ms")
            if x[m].get(k) is not None) + f", dump {x['dump_ms']:.2f}")
    T = R["targets"]
    print(f"  target: first reply within {T['first_reply_target_ms']:.0f} ms of restore start: "
          f"{'MET' if T['first_reply_met'] else 'MISSED'} ({T['first_reply_ms']:.1f} ms)")
    print(f"  target: {c['gets']} replies within x{T['replies_target_ratio']} of the never "
          f"checkpointed redis: {'MET' if T['replies_met'] else 'MISSED'} "
          f"(x{T['replies_vs_reference']:.2f}; the GETs alone x{T['gets_only_vs_reference']:.2f})")
