"""bench_tools.py - `make bench`: Lazarus and CRIU driven the same way, for
the parts that put them side by side (bench_criu.py, bench_redis.py).

A Tool dumps a process into an image directory, restores it eagerly or
lazily (`restore -d`, with a lazy-pages daemon started first and waited
for on its --status-fd ready byte) and reports for every command its wall
time and its peak RSS. Peak RSS is ru_maxrss from wait4() of the command
itself (through build/bench/maxrss), measured the same way for both tools (Lazarus also writes its own
VmHWM into its stats, reported next to it where the parts read them).
CRIU is only ever run when bench.py was given --criu PATH.

Lazarus: build/lazarus; any `lazarus: Error:` line or non-zero exit fails
the bench. CRIU: exit status only (every CRIU run here logs a harmless
"Can't setup RLIMIT_NOFILE" error line: root lacks CAP_SYS_RESOURCE).
"""
import json
import os
import select
import subprocess
import threading
from pathlib import Path


class Run:
    """A command started now under build/bench/maxrss (which forks it, reaps
    it and writes its ru_maxrss: see maxrss.c for why not wait4 from here);
    wait() gives its exit code; then wall_ns() (our spawn to our reap of
    maxrss: one fork+exec more than the command's own) and maxrss_kib."""

    def __init__(self, h, argv, log_out, pass_fds=()):
        self.h, self.argv = h, [str(a) for a in argv]
        self.rss_file = Path(str(log_out) + ".maxrss")
        self.out = open(log_out, "w")
        self.t0 = h.now()
        try:
            self.p = subprocess.Popen([str(h.MAXRSS), str(self.rss_file)] + self.argv,
                                      stdin=subprocess.DEVNULL, stdout=self.out,
                                      stderr=subprocess.STDOUT, close_fds=True,
                                      pass_fds=pass_fds)
        finally:
            self.out.close()
        self.pid = self.p.pid
        self.t1 = self.status = self.maxrss_kib = None
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self):
        _, st = os.waitpid(self.pid, 0)
        self.t1 = self.h.now()
        self.status = st
        try:
            kv = dict(w.partition("=")[::2] for w in self.rss_file.read_text().split())
            self.maxrss_kib = int(kv["maxrss_kib"])
        except (OSError, KeyError, ValueError):
            self.maxrss_kib = None
        self.p.returncode = os.waitstatus_to_exitcode(st)

    def done(self):
        return self.t1 is not None

    def wait(self, timeout):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise self.h.BenchError(f"no exit in {timeout} s: {' '.join(self.argv)}")
        return self.p.returncode

    def wall_ns(self):
        return self.t1 - self.t0


class Tool:
    name = "?"

    def __init__(self, h, b):
        self.h, self.b = h, b

    def _check(self, r, what, log):
        rc = r.wait(self.h.CMD_TIMEOUT)
        if rc != 0 or self.errors(log) or r.maxrss_kib is None:
            text = self.h.read_first(log)[-1500:]
            raise self.h.BenchError(f"{self.name} {what}: {' '.join(r.argv)}: exit {rc}: "
                                    f"{text} (log: {log})")
        return r

    def errors(self, log):
        return False

    def run(self, what, args, pass_fds=()):
        """Start a command of this tool; returns (Run, its stdout+stderr log)."""
        out = self.b.log(f"{self.name}-{what}-out")
        return Run(self.h, self.argv(what, args), out, pass_fds), out

    def run_ok(self, what, args):
        r, out = self.run(what, args)
        return self._check(r, what, out)

    def restore_start(self, img, work, lazy):
        """restore -d (lazy: against the daemon of work) started, not waited."""
        return self.run("restore-lazy" if lazy else "restore-eager",
                        self.restore_args(img, work, lazy))

    def restore_finish(self, started, what):
        r, out = started
        return self._check(r, what, out)

    def start_daemon(self, img, work):
        """The lazy-pages daemon, started and ready (--status-fd); returns
        (Run, ms from its start to its ready byte)."""
        rfd, wfd = os.pipe()
        try:
            r, out = self.run("lazy-pages", self.daemon_args(img, work, wfd), pass_fds=(wfd,))
        finally:
            os.close(wfd)
        self.b.pids.add(r.pid)
        try:
            ready, _, _ = select.select([rfd], [], [], self.h.READY_TIMEOUT)
            if not ready or len(os.read(rfd, 1)) != 1:
                raise self.h.BenchError(f"{self.name} lazy-pages daemon {r.pid} never said it "
                                        f"was ready: {self.h.read_first(out)[-1000:]}")
        finally:
            os.close(rfd)
        r.ready_ns = self.h.now()
        r.log_out = out
        return r, self.h.ms(r.ready_ns - r.t0)

    def finish_daemon(self, d, what):
        """Wait for the daemon's exit (every page placed); exit 0 required."""
        rc = d.wait(self.h.CMD_TIMEOUT)
        if rc != 0 or d.maxrss_kib is None:
            raise self.h.BenchError(f"{self.name} {what}: lazy-pages daemon exited {rc}: "
                                    f"{self.h.read_first(d.log_out)[-1500:]}")
        return d


class Lazarus(Tool):
    name = "lazarus"

    def argv(self, what, args):
        return [self.h.LAZARUS] + list(args) + ["-o", self.b.log(f"lazarus-{what}")]

    def errors(self, log):
        return any(ln.startswith(self.h.ERROR_PREFIX)
                   for ln in self.h.read_first(log).splitlines())

    def dump_args(self, pid, img):
        return ["dump", "-t", pid, "-D", img]

    def restore_args(self, img, work, lazy):
        return ["restore", "-D", img, "-d"] + (["--lazy-pages", "-W", work] if lazy else [])

    def daemon_args(self, img, work, wfd):
        return ["lazy-pages", "-D", img, "-W", work, "--status-fd", wfd]

    def restore_stats(self, img, work, lazy):
        return json.loads(((work if lazy else img) / "stats-restore.json").read_text())

    def daemon_stats(self, work):
        return json.loads((work / "lazy-pages-stats.json").read_text())


class Criu(Tool):
    name = "criu"

    def __init__(self, h, b, path):
        super().__init__(h, b)
        self.path = path

    def argv(self, what, args):
        return [self.path] + list(args) + ["-o", self.b.log(f"criu-{what}")]

    def dump_args(self, pid, img):
        return ["dump", "-t", pid, "-D", img]

    def restore_args(self, img, work, lazy):
        # The daemon's socket is in the work directory (-W, default -D).
        return ["restore", "-D", img, "-W", work, "-d"] + (["--lazy-pages"] if lazy else [])

    def daemon_args(self, img, work, wfd):
        return ["lazy-pages", "-D", img, "-W", work, "--status-fd", wfd]


def criu_version(path):
    p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    return p.stdout.strip().replace("\n", " ")


def criu_preflight(h, path):
    """`criu check` must pass and uffd must be there, or CRIU cannot be compared."""
    if not os.access(path, os.X_OK):
        raise h.BenchError(f"CRIU={path}: not an executable")
    for args in (["check"], ["check", "--feature", "uffd-noncoop"]):
        p = subprocess.run([path] + args, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise h.BenchError(f"CRIU={path}: `criu {' '.join(args)}` failed (exit "
                               f"{p.returncode}): {(p.stdout + p.stderr).strip()[-800:]}")
    return criu_version(path)
