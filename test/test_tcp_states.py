"""Half-closed and closing TCP connections (lazarus(8) SOCKETS, "Half-closed
and closing connections") through dump/restore --tcp-established, eager and
lazy: CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, LAST_ACK and CLOSING.

lzhalf (test/workloads/lzhalf.c) holds one end, A; the other end, B, is
this test on the same host (the peer outside the tree) or a second socket
of lzhalf (both ends inside). The states that need a lost ACK are made with
an nftables table of the test's own that drops, at input, packets from one
port; it is deleted once the dump has locked the connection. A counting
table (output hook, before the network lock's chains) counts every RST of
the connection's two ports: it must stay at 0 from connect to the end.
After the restore lzhalf reads its queued data, then EOF; this test (or
B inside) reads what A sent, then EOF; and `ss` shows A in the state it was
dumped in (or one the FINs lead to from there).
"""
import re
import socket
import subprocess
import uuid

import pytest

import harness

ERR = harness.ERROR_PREFIX

TCP_STATES = {"close_wait": 8, "fin_wait1": 4, "fin_wait2": 5, "last_ack": 9, "closing": 11}
SS_NAMES = {"close_wait": "CLOSE-WAIT", "fin_wait1": "FIN-WAIT-1", "fin_wait2": "FIN-WAIT-2",
            "last_ack": "LAST-ACK", "closing": "CLOSING"}
# Where A may be by the time ss looks after the restore (the lock is gone:
# a FIN sent again may be acked at once).
AFTER = {"close_wait": {"CLOSE-WAIT"}, "fin_wait2": {"FIN-WAIT-2"},
         "fin_wait1": {"FIN-WAIT-1", "FIN-WAIT-2"}, "last_ack": {"LAST-ACK", "UNCONN", ""},
         "closing": {"CLOSING", "TIME-WAIT", "UNCONN", ""}}


class LzHalf(harness.Workload):
    kind = "lzhalf"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def progress_file(self):
        return "result"

    def wait_ready(self):
        """First (from spawn): connected, DIR/conn. Then (wait_state): ready."""
        if not hasattr(self, "conn"):
            conn = self.dir / "conn"
            harness.wait_for(conn.exists, harness.READY_TIMEOUT, "lzhalf to connect", self.diag)
            self.conn = dict(w.partition("=")[::2] for w in conn.read_text().split())
            return self.conn
        return super().wait_ready()

    def go(self):
        (self.dir / "go").write_text("go\n")

    def wait_acted(self):
        harness.wait_for((self.dir / "acted").exists, harness.READY_TIMEOUT,
                         "lzhalf to shut down", self.diag)


class Nft:
    """The test's own tables: lossy (drop at input from some ports) and a RST counter."""

    def __init__(self):
        tag = uuid.uuid4().hex[:10]
        self.lossy, self.rst = f"lzt_loss_{tag}", f"lzt_rst_{tag}"

    def run(self, script):
        p = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, f"nft: {p.stderr}\n{script}"

    def count_rsts(self, ports):
        ps = ", ".join(str(p) for p in ports)
        self.run(f"add table inet {self.rst}\n"
                 f"add chain inet {self.rst} o {{ type filter hook output priority -400; }}\n"
                 f"add rule inet {self.rst} o tcp sport {{ {ps} }} tcp flags & rst != 0 counter\n")

    def rsts(self):
        p = subprocess.run(["nft", "list", "table", "inet", self.rst], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        m = re.search(r"counter packets (\d+)", p.stdout)
        assert m, p.stdout
        return int(m.group(1))

    def lose_from(self, *ports):
        """From now on, packets from these ports are lost (only these: atomically)."""
        ps = ", ".join(str(p) for p in ports)
        self.run(f"add table inet {self.lossy}\n"
                 f"add chain inet {self.lossy} i {{ type filter hook input priority 0; }}\n"
                 f"flush chain inet {self.lossy} i\n"
                 f"add rule inet {self.lossy} i tcp sport {{ {ps} }} drop\n")

    def no_loss(self):
        subprocess.run(["nft", "delete", "table", "inet", self.lossy], capture_output=True,
                       timeout=30)

    def cleanup(self):
        for t in (self.lossy, self.rst):
            subprocess.run(["nft", "delete", "table", "inet", t], capture_output=True, timeout=30)


@pytest.fixture
def nft():
    n = Nft()
    yield n
    n.cleanup()


def ss_state(a, b):
    """The state ss shows for the socket on 127.0.0.1:a connected to :b ('' if none)."""
    p = subprocess.run(["ss", "-tanH", "state", "all", f"( sport = :{a} and dport = :{b} )"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = [line.split() for line in p.stdout.splitlines() if line.strip()]
    return lines[0][0] if lines else ""


def read_to_eof(sk):
    got = b""
    while True:
        data = sk.recv(4096)  # ConnectionResetError here is a RST: the test fails
        if not data:
            return got
        got += data


def dump(env, w):
    img = env.base / "img"
    img.mkdir()
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "--tcp-established",
                    log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)
    return img


def restore(env, img, mode, w, *extra):
    r = env.lazarus(*env.restore_args(img, mode, True), "--tcp-established", *extra,
                    log=env.log_path("restore"))
    env.pids.add(w.pid)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}"
    assert harness.alive(w.pid), f"restored lzhalf {w.pid} is not running\n{r.describe()}"
    return w.restored()


@pytest.mark.parametrize("state", list(TCP_STATES))
def test_peer_outside(env, mode, nft, state):
    """A in STATE, this test the peer: queued data and EOF both ways, no RST."""
    lsk = socket.create_server(("127.0.0.1", 0))
    port = lsk.getsockname()[1]
    d = env.base / "half"
    w = env.spawn(LzHalf, [harness.WORKLOADS / "lzhalf", "--dir", d, "--state", state,
                           "--peer", port], d)
    p, _ = lsk.accept()
    p.settimeout(30)
    lsk.close()
    a_port, p_port = int(w.conn["a"]), port
    nft.count_rsts((a_port, p_port))
    p.sendall(b"p-data")
    if state == "fin_wait1":
        nft.lose_from(p_port)  # our ACK of A's FIN
    elif state in ("close_wait", "last_ack"):
        p.shutdown(socket.SHUT_WR)
        harness.wait_for(lambda: ss_state(a_port, p_port) == "CLOSE-WAIT", 30, "CLOSE-WAIT")
        if state == "last_ack":
            nft.lose_from(p_port)  # our ACK of A's FIN
    elif state == "closing":
        nft.lose_from(a_port, p_port)
    w.go()
    if state == "closing":
        # Both FINs lost; then ours gets through (sent again), A's ACK of it does not.
        w.wait_acted()
        p.shutdown(socket.SHUT_WR)
        nft.lose_from(a_port)
    w.wait_ready()
    assert int(w.ready["state"]) == TCP_STATES[state]
    before = ss_state(a_port, p_port)
    assert before == SS_NAMES[state], before
    img = dump(env, w)
    nft.no_loss()  # the network lock holds the connection now
    expect = b"p-data"
    if state in ("fin_wait1", "fin_wait2"):
        p.sendall(b"p-late")  # dropped by the lock, sent again after the restore
        expect += b"p-late"
    (d / "expect").write_bytes(expect)
    r = restore(env, img, mode, w)
    after = ss_state(a_port, p_port)
    assert after in AFTER[state], f"A was {before}, is {after} after the restore"
    if state in ("fin_wait1", "fin_wait2"):
        p.shutdown(socket.SHUT_WR)
    r.check_pass()
    got = read_to_eof(p)
    assert got == (b"w-dataw-answer" if state == "close_wait" else b"w-data"), got
    assert nft.rsts() == 0, "a RST went out on the connection"
    p.close()
    r.stop()


@pytest.mark.parametrize("state", ["close_wait", "closing"])
def test_both_inside(env, mode, nft, state):
    """Both ends in the tree: CLOSE_WAIT with FIN_WAIT2 at the other end, or
    CLOSING with FIN_WAIT1 there; each end reads the other's data, then EOF."""
    d = env.base / "half"
    w = env.spawn(LzHalf, [harness.WORKLOADS / "lzhalf", "--dir", d, "--state", state,
                           "--inside"], d)
    a_port, b_port = int(w.conn["a"]), int(w.conn["b"])
    nft.count_rsts((a_port, b_port))
    if state == "closing":
        nft.lose_from(a_port, b_port)
    w.go()
    if state == "closing":
        w.wait_acted()
        nft.lose_from(a_port)  # B's FIN gets through (sent again), A's ACK of it does not
    w.wait_ready()
    want = ("CLOSE-WAIT", "FIN-WAIT-2") if state == "close_wait" else ("CLOSING", "FIN-WAIT-1")
    assert (ss_state(a_port, b_port), ss_state(b_port, a_port)) == want, w.diag()
    img = dump(env, w)
    nft.no_loss()
    r = restore(env, img, mode, w)
    r.check_pass()
    assert nft.rsts() == 0, "a RST went out on the connection"
    r.stop()


def test_refused_without_flag(env):
    """Without --tcp-established a half-closed connection is refused by name."""
    lsk = socket.create_server(("127.0.0.1", 0))
    port = lsk.getsockname()[1]
    d = env.base / "half"
    w = env.spawn(LzHalf, [harness.WORKLOADS / "lzhalf", "--dir", d, "--state", "close_wait",
                           "--peer", port], d)
    p, _ = lsk.accept()
    p.sendall(b"p-data")
    p.shutdown(socket.SHUT_WR)
    w.go()
    w.wait_ready()
    img = env.base / "img"
    img.mkdir()
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"process {w.pid} fd " in r.errors[0], r.errors[0]
    assert (f"TCP connection 127.0.0.1:{w.conn['a']} -> 127.0.0.1:{port} is half-closed by its "
            "peer (CLOSE_WAIT): dump with --tcp-established") in r.errors[0], r.errors[0]
    assert harness.alive(w.pid)
    harness.assert_not_stopped(w.pid, w.kind)
    r = w.check_pass()
    assert read_to_eof(p) == b"w-dataw-answer"
    p.close()


@pytest.fixture
def netns_veth():
    """A network namespace of the test's own with a veth pair, fe80::1 on lzv0."""
    name = f"lzt-{uuid.uuid4().hex[:10]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    for cmd in (["link", "set", "lo", "up"],
                ["link", "add", "lzv0", "type", "veth", "peer", "name", "lzv1"],
                ["link", "set", "lzv0", "up"], ["link", "set", "lzv1", "up"],
                ["addr", "add", "fe80::1/64", "dev", "lzv0", "nodad"]):
        subprocess.run(["ip", "-n", name] + cmd, check=True, timeout=30)
    yield name
    subprocess.run(["ip", "netns", "del", name], timeout=30)


def lazarus_in(env, ns, *args, what):
    """lazarus run inside network namespace NS (dump refuses a tree in another one)."""
    log = env.log_path(what)
    argv = ["nsenter", f"--net=/run/netns/{ns}", str(harness.LAZARUS)] + \
        [str(a) for a in args] + ["-o", str(log), "-v4"]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=harness.LAZARUS_TIMEOUT)
    return harness.Result(argv, p.returncode, p.stdout, p.stderr, log)


def test_ipv6_scope_id(env, mode, netns_veth):
    """Both ends inside, over fe80::1%lzv0 in a namespace of the test's, one end
    in CLOSE_WAIT; lazarus run in that namespace: restored with the same scope
    id, data then EOF. The same image after lzv0 was renamed: refused, naming
    both names."""
    ns = netns_veth
    d = env.base / "half"
    w = env.spawn(LzHalf, ["nsenter", f"--net=/run/netns/{ns}", harness.WORKLOADS / "lzhalf",
                           "--dir", d, "--state", "close_wait", "--inside", "--addr6", "fe80::1",
                           "--ifname", "lzv0"], d)
    w.go()
    w.wait_ready()
    img = env.base / "img"
    img.mkdir()
    r = lazarus_in(env, ns, "dump", "-t", w.pid, "-D", img, "--tcp-established", what="dump")
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)
    r = lazarus_in(env, ns, *env.restore_args(img, mode, True), "--tcp-established",
                   what="restore")
    env.pids.add(w.pid)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}"
    r = w.restored()
    r.check_pass()
    r.stop()
    subprocess.run(["ip", "-n", ns, "link", "set", "lzv0", "down"], check=True, timeout=30)
    subprocess.run(["ip", "-n", ns, "link", "set", "lzv0", "name", "lzv9"], check=True, timeout=30)
    r = lazarus_in(env, ns, *env.restore_args(img, mode, True), "--tcp-established",
                   what="restore")
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "IPv6 address [fe80::1%" in r.errors[0] and \
        "was lzv0 at dump, is lzv9 here" in r.errors[0], r.errors[0]
