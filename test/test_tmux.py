"""A real tmux server (Debian's) dumped and restored, eager and lazy
(issue 7, item 9): the tmux/screen shape of controlling terminals.

The server is started detached with its own socket and an empty config,
in a fixed environment (only PATH, TERM, HOME, SHELL, LC_ALL; PS1 set), so
that what the panes show is deterministic. Window 0 runs an interactive
`bash --norc` that has printed known lines; window 1 a bash whose
foreground job (its own process group, the terminal's foreground group) is
a python3 that answers each line typed. The tree dumped is the server's
(`display -p '#{pid}'`): the server holds every pty master, each shell
leads a session whose controlling terminal is its pane's slave. Only
one-shot tmux commands talk to it: no client is part of the tree.

After restore: `capture-pane -p` of each window reads back the same
content and `list-windows` is the same; every process has the same pid,
group, session and terminal foreground group; a command typed with
`send-keys` runs in the restored shell and its output appears, and a line
typed in window 1 reaches the python3 job (a background reader would be
stopped by SIGTTIN instead).
"""
import os
import shutil
import subprocess

import harness

# bash takes PS1 from its environment, which tmux builds: set it here.
SHELL = "exec env PS1='lz$ ' bash --norc --noprofile"
ANSWER = "import sys\nfor l in sys.stdin: print('got', l.strip().upper(), flush=True)\n"


class Tmux:
    def __init__(self, env):
        self.dir = env.path("tmux")
        self.sock = self.dir / "sock"
        self.env = {"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "HOME": str(self.dir),
                    "SHELL": "/bin/bash", "LC_ALL": "C"}

    def run(self, *args, check=True):
        p = subprocess.run(["tmux", "-S", str(self.sock), *args], env=self.env, cwd=self.dir,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=harness.LAZARUS_TIMEOUT, close_fds=True)
        if check:
            assert p.returncode == 0, f"tmux {' '.join(args)}: exit {p.returncode}\n{p.stderr}"
        return p.stdout

    def pane(self, target):
        return self.run("capture-pane", "-p", "-t", target)

    def wait_pane(self, target, text):
        harness.wait_for(lambda: text in self.pane(target), harness.CHECK_TIMEOUT,
                         f"{text!r} in tmux pane {target}", lambda: self.pane(target))

    def send(self, target, line):
        self.run("send-keys", "-t", target, "-l", line)
        self.run("send-keys", "-t", target, "Enter")


class TmuxServer(harness.Workload):
    kind = "tmux"

    def wait_ready(self):
        self.ready = {"pid": str(self.pid)}
        return self.ready


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for t in os.listdir(f"/proc/{p}/task"):
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except FileNotFoundError:
                pass
    return sorted(out)


def ids(pid):
    """pid, group, session, terminal?, foreground group of its terminal."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return pid, int(fields[2]), int(fields[3]), int(fields[4]) != 0, int(fields[5])


def start(env):
    assert shutil.which("tmux"), "tmux is not installed (tools/install-deps.sh)"
    t = Tmux(env)
    t.run("-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "-s", "main", SHELL)
    t.run("new-window", "-d", "-t", "main:1", SHELL)
    t.wait_pane("main:0", "lz$")
    t.send("main:0", "echo first-$((6*7)); echo second line")
    t.wait_pane("main:0", "second line\nlz$")
    t.wait_pane("main:1", "lz$")
    t.send("main:1", f"python3 -c \"{ANSWER}\"")
    t.send("main:1", "hello")
    t.wait_pane("main:1", "got HELLO")
    # tmux names a window after its pane's foreground process, when it next looks
    harness.wait_for(lambda: "1: python3" in t.run("list-windows", "-t", "main"),
                     harness.CHECK_TIMEOUT, "window 1 named after its job",
                     lambda: t.run("list-windows", "-t", "main"))
    server = int(t.run("display", "-p", "#{pid}").strip())
    env.pids.add(server)
    return t, server


def test_tmux_server(env, mode):
    t, server = start(env)
    w = TmuxServer(env, t.dir, server)
    tree = descendants(server)
    assert len(tree) == 4, f"server, two shells and a job: {tree}"
    before = [ids(p) for p in tree]
    panes = {k: t.pane(k) for k in ("main:0", "main:1")}
    windows = t.run("list-windows", "-t", "main")
    img = env.path("img")
    env.dump(w, img)
    for p in tree[1:]:
        harness.reap(p)
    masters = [f for f in harness.file_entries(img) if f["kind"] == "FD_PTY" and f["master"]]
    assert sorted(f["ctty_of"] for f in masters) == sorted(p[0] for p in before if p[3] and
                                                          p[0] == p[2]), masters
    env.restore(img, mode, w)
    assert descendants(server) == tree
    assert [ids(p) for p in tree] == before
    assert {k: t.pane(k) for k in panes} == panes
    assert t.run("list-windows", "-t", "main") == windows
    t.send("main:0", "echo after-$((7*8)) $(tty)")
    t.wait_pane("main:0", "after-56 /dev/pts/")
    t.send("main:1", "again")
    t.wait_pane("main:1", "got AGAIN")
    t.run("kill-server")
    harness.reap(server)
