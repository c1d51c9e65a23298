"""harness.py - what every Lazarus scenario needs: start a workload, run
lazarus, wait for a pid to be free, ask a workload to check itself, reap.

pytest runs as a child subreaper (conftest.py), so a process restored with
-d, or a daemon that lazarus leaves behind, is reparented to pytest and
reaped here. Only specific pids are ever waited for while a Popen may still
be running (a waitpid(-1) would steal its exit status); the sweep of
leftovers runs at teardown.

Waits are bounded by generous timeouts so that a hang fails the test with a
message; nothing asserts on how long anything took.
"""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# LAZARUS_BUILD: the build directory to test (make O=...), relative to the
# tree or absolute; .ci/run points it at a sanitizer build.
BUILD = ROOT / os.environ.get("LAZARUS_BUILD", "build")
LAZARUS = BUILD / "lazarus"
WORKLOADS = BUILD / "test"
PYSTATE = ROOT / "test" / "workloads" / "pystate.py"
PYTHON = "/usr/bin/python3"

LAZARUS_TIMEOUT = 300  # one lazarus command
READY_TIMEOUT = 60  # a workload's set-up
CHECK_TIMEOUT = 120  # a self-check (64 MiB + FP recompute, maybe lazily served)
EXIT_TIMEOUT = 60  # a process to die after a signal

ERROR_PREFIX = "lazarus: Error: "


class HarnessError(AssertionError):
    pass


def wait_for(pred, timeout, what, diag=None):
    """Poll pred() until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            extra = f"\n{diag()}" if diag else ""
            raise HarnessError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def proc_state(pid):
    """State letter of /proc/PID/stat, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def proc_ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def alive(pid):
    """A process with this pid exists and is not a zombie."""
    st = proc_state(pid)
    return st is not None and st != "Z"


def my_children():
    """Pids whose parent is pytest: what we started, and orphans reparented to us."""
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and proc_ppid(int(d)) == me:
            out.append(int(d))
    return out


def task_status(pid):
    """{tid: {"State": ..., "TracerPid": ...}} for every thread of pid."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        fields = {}
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    fields[k] = v.strip()
        except (FileNotFoundError, ProcessLookupError):  # the thread just exited
            continue
        out[int(tid)] = fields
    return out


def assert_not_stopped(pid, who="process"):
    """No thread of pid is stopped or traced: a failed dump let go of it."""
    st = task_status(pid)
    assert st, f"{who} {pid} is gone"
    for tid, f in st.items():
        assert f.get("TracerPid") == "0", f"{who} {pid}: thread {tid} still traced: {f}"
        assert not f.get("State", "").startswith(("T", "t")), \
            f"{who} {pid}: thread {tid} left stopped: {f.get('State')}"


def reap(pid, timeout=EXIT_TIMEOUT):
    """Wait for pid to die and be reaped; return its wait status if we reaped it.

    pid may be our child, become our child later (reparenting after its
    parent exits), or be reaped by someone else (then None is returned)."""
    status = None

    def gone():
        nonlocal status
        try:
            r, st = os.waitpid(pid, os.WNOHANG)
            if r == pid:
                status = st
                return True
        except ChildProcessError:
            pass
        return proc_state(pid) is None

    wait_for(gone, timeout, f"process {pid} to exit and be reaped")
    return status


def kill_and_reap(pid, timeout=EXIT_TIMEOUT):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return reap(pid, timeout)


def tail(path, n=30):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path}: missing)"
    return "\n".join(lines[-n:])


def error_lines(text):
    return [line for line in text.splitlines() if line.startswith(ERROR_PREFIX)]


class Result:
    """The outcome of one lazarus command."""

    def __init__(self, argv, rc, out, err, log):
        self.argv, self.rc, self.out, self.err, self.log = argv, rc, out, err, log

    @property
    def errors(self):
        return error_lines(self.err)

    def describe(self):
        cmd = " ".join(str(a) for a in self.argv)
        log = f"\n--- log {self.log} (tail) ---\n{tail(self.log, 40)}" if self.log else ""
        return f"$ {cmd}\nexit {self.rc}\n--- stderr ---\n{self.err}{log}"


def parse_kv(line):
    """'PASS seq=1 pid=3 ctr=9 ...: details' -> {"verdict": "PASS", "seq": "1", ...}"""
    head, _, details = line.partition(": ")
    words = head.split()
    out = {"verdict": words[0] if words else "", "details": details.strip(), "line": line.strip()}
    for w in words[1:]:
        k, _, v = w.partition("=")
        out[k] = v
    return out


class Workload:
    """A process under test, started by us or restored by lazarus.

    `dir` is its --dir (ready, result, its own files), also its cwd."""

    kind = None

    def __init__(self, env, dir, pid, proc=None):
        self.env, self.dir, self.pid, self.proc = env, Path(dir), pid, proc

    # Subclasses: how to ask for and read a self-check.
    def parse_result(self, text):
        raise NotImplementedError

    def progress_file(self):
        raise NotImplementedError

    def diag(self):
        return f"--- {self.kind} {self.pid} output (tail) ---\n{tail(self.dir / 'out')}\n" \
               f"state: {proc_state(self.pid)}\n{self.env.diag()}"

    def identity(self):
        """What ps would show: (exe, cmdline, comm) from /proc."""
        base = f"/proc/{self.pid}"
        with open(f"{base}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")[:-1]
        with open(f"{base}/comm") as f:
            comm = f.read().strip()
        return os.path.realpath(f"{base}/exe"), cmdline, comm

    def wait_ready(self):
        ready = self.dir / "ready"

        def ok():
            if ready.exists():
                return True
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(f"{self.kind} exited with {self.proc.returncode} before ready\n"
                                   f"{self.diag()}")
            return False

        wait_for(ok, READY_TIMEOUT, f"{self.kind} to be ready", self.diag)
        self.ready = dict(w.partition("=")[::2] for w in ready.read_text().split())
        assert int(self.ready["pid"]) == self.pid
        return self.ready

    def check(self):
        """Ask the process to check itself (SIGUSR1); return its parsed verdict."""
        result = self.dir / "result"
        try:
            result.unlink()
        except FileNotFoundError:
            pass
        assert alive(self.pid), f"{self.kind} {self.pid} is not running\n{self.diag()}"
        os.kill(self.pid, signal.SIGUSR1)

        def answered():
            if result.exists():
                return True
            if not alive(self.pid):
                raise HarnessError(f"{self.kind} {self.pid} died before answering a check\n"
                                   f"{self.diag()}")
            return False

        wait_for(answered, CHECK_TIMEOUT, f"{self.kind} {self.pid} to check itself", self.diag)
        r = self.parse_result(result.read_text())
        assert int(r["pid"]) == self.pid, f"result written by pid {r['pid']}, want {self.pid}"
        return r

    def check_pass(self):
        r = self.check()
        assert r["verdict"] == "PASS", f"{self.kind} {self.pid} self-check failed: " \
                                       f"{r.get('line', r)}\n{self.diag()}"
        return r

    def progress(self):
        try:
            return (self.dir / self.progress_file()).stat().st_size
        except FileNotFoundError:
            return 0

    def wait_progress(self, since, restorer=None):
        """Wait until the process has visibly moved on (its own file grew).

        With restorer (a running `lazarus restore` Popen), the process may
        not exist yet: that is only an error once the restorer has exited."""
        def moved():
            if not alive(self.pid):
                if restorer is not None and restorer.poll() is None:
                    return False
                raise HarnessError(f"{self.kind} {self.pid} is not running\n{self.diag()}")
            return self.progress() > since

        wait_for(moved, CHECK_TIMEOUT, f"{self.kind} {self.pid} to make progress", self.diag)

    def signal_and_reap(self, sig):
        """Send sig and return the wait status (we must be its parent or subreaper)."""
        os.kill(self.pid, sig)
        if self.proc is not None:
            self.proc.wait(EXIT_TIMEOUT)
            return self.proc.returncode
        st = reap(self.pid)
        assert st is not None, f"{self.kind} {self.pid} was reaped by someone else"
        return -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)

    def stop(self):
        """SIGTERM: the workloads exit 0."""
        rc = self.signal_and_reap(signal.SIGTERM)
        assert rc == 0, f"{self.kind} {self.pid} exited with {rc} on SIGTERM\n{self.diag()}"

    def restored(self):
        """The same workload after a restore: same pid and dir, not our Popen."""
        w = type(self)(self.env, self.dir, self.pid)
        w.ready = getattr(self, "ready", None)
        return w


class LzWork(Workload):
    kind = "lzwork"

    def parse_result(self, text):
        return parse_kv(text.strip())

    def progress_file(self):
        return "log"

    def check_pass(self):
        r = super().check_pass()
        for k in ("seq", "ctr", "prev", "records", "log_off"):
            r[k] = int(r[k])
        return r


class PyState(Workload):
    kind = "pystate"

    def parse_result(self, text):
        return json.loads(text)

    def progress_file(self):
        return "pylog"

    def check_pass(self):
        r = self.check()
        assert r["verdict"] == "PASS", f"pystate {self.pid} self-check failed: {r['errors']}\n" \
                                       f"{self.diag()}"
        return r


class Server(Workload):
    """A server from Debian (redis, memcached, nginx) run by a test: its diag
    shows the tail of each file of LOGS (names in its directory)."""
    kind = "server"
    logs = ("out",)

    def diag(self):
        parts = [f"--- {self.kind} {name} (tail) ---\n{tail(self.dir / name)}"
                 for name in self.logs]
        return "\n".join(parts) + f"\nstate: {proc_state(self.pid)}\n{self.env.diag()}"


def free_port():
    """A TCP port of 127.0.0.1 that nobody listens on right now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LzRefuse(Workload):
    kind = "lzrefuse"

    def parse_result(self, text):
        return parse_kv(text.strip())

    def check_pass(self):
        r = super().check_pass()
        r["ctr"] = int(r["ctr"])
        return r


class LzLazyOps(Workload):
    """lzlazyops: after a lazy restore, runs its memory operations once DIR/go
    exists and writes their verdict to DIR/result (see lzlazyops.c)."""

    kind = "lzlazyops"

    def parse_result(self, text):
        return parse_kv(text.strip())

    def progress_file(self):
        return "result"

    def go(self):
        """Let the operations run (now, or as soon as it is restored)."""
        (self.dir / "go").write_text("go\n")

    def forget_result(self):
        try:
            (self.dir / "result").unlink()
        except FileNotFoundError:
            pass

    def read_result(self):
        try:
            return self.parse_result((self.dir / "result").read_text())
        except FileNotFoundError:
            return None

    def wait_ops(self, restorer=None):
        """Wait for the verdict of the operations (a result with ops=1); with
        restorer (a running `lazarus restore` Popen) the process may not exist
        yet. The process must live until it has answered."""
        def answered():
            r = self.read_result()
            if r is not None and r.get("ops") == "1":
                return r
            if not alive(self.pid) and (restorer is None or restorer.poll() is not None):
                raise HarnessError(f"{self.kind} {self.pid} is not running and wrote no "
                                   f"verdict of its operations\n{self.diag()}")
            return None

        r = wait_for(answered, CHECK_TIMEOUT, f"{self.kind} {self.pid} to run its operations",
                     self.diag)
        assert int(r["pid"]) == self.pid, f"result written by pid {r['pid']}, want {self.pid}"
        return r

    def touch(self, addrs, wait=True):
        """Make it read one word at each address (SIGUSR2); with wait, until
        it says it has."""
        done = self.dir / "touched"
        try:
            done.unlink()
        except FileNotFoundError:
            pass
        tmp = self.dir / "touch.tmp"
        tmp.write_text("".join(f"{a:#x}\n" for a in addrs))
        tmp.rename(self.dir / "touch")
        os.kill(self.pid, signal.SIGUSR2)
        if not wait:
            return

        def answered():
            if done.exists():
                return True
            if not alive(self.pid):
                raise HarnessError(f"{self.kind} {self.pid} died touching {addrs}\n{self.diag()}")
            return False

        wait_for(answered, CHECK_TIMEOUT, f"{self.kind} {self.pid} to touch {len(addrs)} pages",
                 self.diag)

    def ops_pass(self, restorer=None):
        r = self.wait_ops(restorer)
        assert r["verdict"] == "PASS", f"{self.kind} {self.pid}: operations failed: " \
                                       f"{r['line']}\n{self.diag()}"
        return r


class Env:
    """One test's processes and files, under a fresh directory in /tmp."""

    def __init__(self, base):
        self.base = Path(base)
        self.logs = self.base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs = []  # Popen objects we started
        self.pids = set()  # every pid that may need killing at teardown
        self.nlog = 0
        self.finalizers = []  # called after every process is gone (at_cleanup)

    def path(self, name):
        p = self.base / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def diag(self):
        out = []
        for log in sorted(self.logs.glob("*.log"))[-3:]:
            out.append(f"--- {log.name} (tail) ---\n{tail(log, 20)}")
        return "\n".join(out)

    # --- workloads ---

    def spawn(self, cls, argv, dir):
        dir = Path(dir)
        dir.mkdir(parents=True, exist_ok=True)
        with open(dir / "out", "wb") as out:
            # stdout and stderr share one open file description, the common case.
            proc = subprocess.Popen([str(a) for a in argv], cwd=dir, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True)
        self.procs.append(proc)
        self.pids.add(proc.pid)
        w = cls(self, dir, proc.pid, proc)
        w.wait_ready()
        return w

    def lzwork(self, name="work", mib=64):
        d = self.base / name
        return self.spawn(LzWork, [WORKLOADS / "lzwork", "--dir", d, "--mib", mib], d)

    def pystate(self, name="py"):
        d = self.base / name
        return self.spawn(PyState, [PYTHON, PYSTATE, "--dir", d], d)

    def lzlazyops(self, name="ops", mib=64, side_mib=8, threads=4, tail_offset=0):
        d = self.base / name
        return self.spawn(LzLazyOps, [WORKLOADS / "lzlazyops", "--dir", d, "--mib", mib,
                                      "--side-mib", side_mib, "--threads", threads,
                                      "--tail-offset", tail_offset], d)

    def lzrefuse(self, mode, name="refuse"):
        d = self.base / name
        return self.spawn(LzRefuse, [WORKLOADS / "lzrefuse", "--dir", d, "--mode", mode], d)

    # --- lazarus ---

    def log_path(self, what):
        self.nlog += 1
        return self.logs / f"{self.nlog:02d}-{what}.log"

    def lazarus(self, *args, log=None, timeout=LAZARUS_TIMEOUT):
        argv = [str(LAZARUS)] + [str(a) for a in args]
        if log:
            argv += ["-o", str(log), "-v4"]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise HarnessError(f"$ {' '.join(argv)}: no answer in {timeout}s\n"
                               f"{e.stderr or ''}\n{tail(log) if log else ''}")
        return Result(argv, p.returncode, p.stdout, p.stderr, log)

    def dump(self, w, imgdir, leave_running=False):
        """Dump workload w into imgdir and check the outcome: exit 0, no error,
        the target killed and reaped (its pid free), or left running and untraced."""
        imgdir = Path(imgdir)
        imgdir.mkdir(parents=True, exist_ok=True)
        args = ["dump", "-t", w.pid, "-D", imgdir] + (["-R"] if leave_running else [])
        r = self.lazarus(*args, log=self.log_path("dump"))
        assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
        if leave_running:
            assert alive(w.pid), f"dump -R: {w.kind} {w.pid} did not survive\n{r.describe()}"
            assert_not_stopped(w.pid, w.kind)
        else:
            if w.proc is not None:
                try:
                    w.proc.wait(EXIT_TIMEOUT)
                except subprocess.TimeoutExpired:
                    raise HarnessError(f"dump did not kill {w.kind} {w.pid}\n{r.describe()}")
            else:
                reap(w.pid)
            assert proc_state(w.pid) is None, f"pid {w.pid} is still taken after the dump"
        return r

    def restore_args(self, imgdir, mode, detach):
        args = ["restore", "-D", imgdir]
        if mode == "lazy":
            args.append("--lazy-pages")
        if detach:
            args.append("-d")
        return args

    def restore(self, imgdir, mode, w=None, expect_ok=True):
        """restore -d. With expect_ok, check it worked and return the restored
        workload (same pid as w); else return the Result."""
        r = self.lazarus(*self.restore_args(imgdir, mode, True), log=self.log_path("restore"))
        if w is not None:
            self.pids.add(w.pid)
        if not expect_ok:
            return r
        assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}"
        assert alive(w.pid), f"restore -d returned but pid {w.pid} is not running\n{r.describe()}"
        assert_not_stopped(w.pid, f"restored {w.kind}")
        return w.restored()

    def restore_bg(self, imgdir, mode, w):
        """restore without -d: lazarus stays the parent and waits."""
        log = self.log_path("restore")
        argv = [str(LAZARUS)] + [str(a) for a in self.restore_args(imgdir, mode, False)] + \
            ["-o", str(log), "-v4"]
        err = open(self.logs / f"{log.stem}.stderr", "w+")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                             close_fds=True)
        self.procs.append(p)
        self.pids.add(p.pid)
        self.pids.add(w.pid)
        p.stderr_file, p.log = err, log
        return p

    # --- teardown ---

    def at_cleanup(self, fn):
        """Call fn() at cleanup, once every process is killed and reaped: for
        what a server killed mid-flight leaves behind outside its directory
        (a SysV segment, a file under /dev/shm)."""
        self.finalizers.append(fn)

    def cleanup(self):
        """Kill whatever the test left behind: our Popens, restored pids and
        anything reparented to us; then reap everything; then run the
        finalizers (at_cleanup)."""
        for pid in set(self.pids) | set(my_children()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        for pid in list(self.pids):
            try:
                if alive(pid) or proc_state(pid) == "Z":
                    reap(pid)
            except HarnessError:
                pass
        # A lazy-pages daemon that restore started, and its guardian, reach
        # us (a subreaper) only when their parents exit, possibly after the
        # first sweep: sweep until no child is left for a while, so nothing
        # of this test is counted as a leftover of the next one.
        quiet, deadline = 0, time.monotonic() + 2 * EXIT_TIMEOUT
        while quiet < 3 and time.monotonic() < deadline:
            kids = my_children()
            quiet = 0 if kids else quiet + 1
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    reap(pid)
                except (ProcessLookupError, HarnessError):
                    pass
            time.sleep(0.02)
        for fn in self.finalizers:
            fn()


# --- images ---

def show(path):
    """`lazarus show FILE` parsed as JSON."""
    p = subprocess.run([str(LAZARUS), "show", str(path)], capture_output=True, text=True,
                       timeout=LAZARUS_TIMEOUT)
    assert p.returncode == 0, f"lazarus show {path}: exit {p.returncode}\n{p.stderr}"
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"lazarus show {path}: not JSON ({e}):\n{p.stdout[:2000]}")


def image_files(imgdir):
    """inventory.img plus every file the inventory lists."""
    inv = show(Path(imgdir) / "inventory.img")
    return ["inventory.img"] + [f["name"] for f in inv["entries"][0]["files"]]


def flat_file(e):
    """A files.img entry with its kind's sub-message ("reg", "chr", ...)
    merged in: {"id", "kind", "flags", "path", "pos", ...}."""
    out = {k: v for k, v in e.items() if not isinstance(v, dict)}
    for k, v in e.items():
        if isinstance(v, dict) and k != "fown":
            out.update(v)
    return out


def file_entries(imgdir):
    """files.img's entries, each flattened (flat_file)."""
    return [flat_file(e) for e in show(Path(imgdir) / "files.img")["entries"]]


def rewind_files(imgdir, under):
    """Put regular files under `under` back to their size at dump time.

    The images hold no file contents: a restore expects the file system as
    the dump left it. A process that ran after the dump (dump -R, an earlier
    restore of the same images) appended to its files; its writes past the
    dumped size are cut off here. The workloads write deterministic records,
    so what remains is exactly what the dumped process wrote."""
    under = str(Path(under).resolve())
    for f in file_entries(imgdir):
        if f.get("kind") != "FD_REG" or "size" not in f:
            continue
        path = f["path"]
        if not path.startswith(under + "/") or not os.path.isfile(path):
            continue
        if os.path.getsize(path) > int(f["size"]):
            os.truncate(path, int(f["size"]))


def tree_digest(imgdir):
    """{name: (size, sha256)} of every image file of a dump (*.img and the
    dump's stats), not of what a restore may write next to them (its log,
    stats-restore.json)."""
    import hashlib
    out = {}
    for p in sorted(Path(imgdir).iterdir()):
        if p.is_file() and (p.suffix == ".img" or p.name == "stats-dump.json"):
            out[p.name] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def pattern(i):
    """lzwork's fill pattern of 64-bit word i (see pattern() in lzwork.c)."""
    m = (1 << 64) - 1
    x = ((i + 1) * 0x9E3779B97F4A7C15) & m
    x ^= x >> 29
    x = (x * 0xBF58476D1CE4E5B9) & m
    x ^= x >> 32
    return x or 1


def lzwork_page_kind(p):
    """'untouched', 'zeroed' or 'pattern' for page p of lzwork's area."""
    if p % 251 == 7:
        return "untouched"
    if p % 251 == 100:
        return "zeroed"
    return "pattern"


def lazy_supported():
    """The one switch for lazy-mode scenarios: LAZARUS_TEST_LAZY=1/0 forces it,
    else `lazarus --help` must mention --lazy-pages."""
    env = os.environ.get("LAZARUS_TEST_LAZY")
    if env in ("0", "1"):
        return env == "1"
    try:
        p = subprocess.run([str(LAZARUS), "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"--lazy-pages\b", p.stdout + p.stderr) is not None
