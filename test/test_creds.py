"""Credentials come back exactly as dumped, never with more privilege: uids
and gids (real, effective, saved, fs), supplementary groups, the five
capability sets, securebits, no_new_privs, and what the kernel resets when
ids change (dumpable, the parent-death signal).

lzcreds (test/workloads/lzcreds.c) is started through setpriv and may change
its credentials further itself; it records what /proc/self/status and prctl
say it holds, and on SIGUSR1 checks that it holds exactly that again. The
test also compares the status lines from outside, before the dump and after
the restore, and that the image holds what the kernel showed.
"""
import os
import pwd
import signal
import subprocess

import pytest

import harness

NOBODY = pwd.getpwnam("nobody").pw_uid
STATUS_KEYS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
               "NoNewPrivs")
EPERM = 1
CAP_SETGID, CAP_SETUID, CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW = 6, 7, 10, 12, 13
CAP_SYS_MODULE, CAP_SYS_ADMIN = 16, 21
SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS_LOCKED = 0x1, 0x4, 0x20
SECBIT_NO_CAP_AMBIENT_RAISE = 0x40

SETPRIV = "/usr/bin/setpriv"


class LzCreds(harness.Workload):
    kind = "lzcreds"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())


def spawn(env, name, setpriv=(), own=()):
    """lzcreds under `setpriv ARGS`, with its own credential changes OWN."""
    d = env.base / name
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(env.base, 0o711)  # mkdtemp's 0700 would shut out a non-root workload
    os.chmod(d, 0o777)
    argv = ([SETPRIV, *setpriv] if setpriv else []) + \
        [harness.WORKLOADS / "lzcreds", "--dir", d, *own]
    return env.spawn(LzCreds, argv, d)


def exe_of(pid):
    try:
        return os.path.realpath(f"/proc/{pid}/exe", strict=True)
    except OSError:
        return None


def creds_status(pid):
    st = harness.task_status(pid)[pid]
    return {k: st[k] for k in STATUS_KEYS}


def image_creds(img, pid):
    return harness.show(img / f"core-{pid}.img")["entries"][0]["creds"]


def caps(*bits):
    return sum(1 << b for b in bits)


def run_dump_restore(env, w, mode, detach=True):
    """Dump w, check the image against /proc, restore, check from outside
    and let the workload check itself. Returns the restored workload."""
    before = creds_status(w.pid)
    img = env.path("img")
    env.dump(w, img)
    c = image_creds(img, w.pid)
    ids = [int(x) for x in before["Uid"].split()]
    assert [c["uid"], c["euid"], c["suid"], c["fsuid"]] == ids, c
    gids = [int(x) for x in before["Gid"].split()]
    assert [c["gid"], c["egid"], c["sgid"], c["fsgid"]] == gids, c
    assert c.get("groups", []) == [int(x) for x in before["Groups"].split()], c
    for key, field in (("CapInh", "cap_inh"), ("CapPrm", "cap_prm"), ("CapEff", "cap_eff"),
                       ("CapBnd", "cap_bnd"), ("CapAmb", "cap_amb")):
        assert int(c[field]) == int(before[key], 16), (key, c)
    if detach:
        w = env.restore(img, mode, w)
    else:
        # SIGUSR1 must not reach the lazarus child before it blocks every
        # signal: wait for the blob's PR_SET_MM_MAP (a new /proc/PID/exe),
        # after which it stays pending until the target's own mask is back.
        p = env.restore_bg(img, mode, w)
        harness.wait_for(lambda: exe_of(w.pid) == str(harness.WORKLOADS / "lzcreds") or
                         p.poll() is not None, harness.CHECK_TIMEOUT,
                         f"restore to map lzcreds {w.pid}")
        w = w.restored()
        w.restorer = p
    r = w.check_pass()
    assert creds_status(w.pid) == before
    return w, r, c


def test_nobody_no_caps(env, mode):
    """The issue's case: nobody, no capabilities at all, no_new_privs.
    It came back as root with every capability."""
    w = spawn(env, "nobody", ["--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"])
    assert int(w.ready["setuid0"]) == EPERM
    w, r, c = run_dump_restore(env, w, mode)
    assert int(r["setuid0"]) == EPERM
    st = creds_status(w.pid)
    assert st["Uid"].split() == [str(NOBODY)] * 4 and st["CapPrm"] == "0" * 16
    assert st["CapBnd"] == "0" * 16 and st["NoNewPrivs"] == "1"
    w.stop()


def test_nobody_not_detached(env, mode):
    """Without -d the restore stays the parent: same credentials."""
    w = spawn(env, "nobody", ["--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"])
    w, r, _ = run_dump_restore(env, w, mode, detach=False)
    assert int(r["setuid0"]) == EPERM
    os.kill(w.pid, signal.SIGTERM)  # restore, its parent, reaps it and exits with its status
    assert w.restorer.wait(harness.EXIT_TIMEOUT) == 0
    w.restorer.stderr_file.seek(0)
    assert not harness.error_lines(w.restorer.stderr_file.read())


def test_user_groups_ambient(env, mode):
    """A non-root user with supplementary groups that keeps net_bind_service
    in its inheritable and ambient sets (hence permitted and effective) and
    a small bounding set."""
    w = spawn(env, "amb", ["--reuid=1000", "--regid=1000", "--groups=4,24,27,1234",
                           "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service",
                           "--bounding-set=-all,+net_bind_service,+net_raw"])
    before = creds_status(w.pid)
    want = f"{caps(CAP_NET_BIND_SERVICE):016x}"
    assert before["CapAmb"] == want and before["CapEff"] == want, before
    assert before["Groups"].split() == ["4", "24", "27", "1234"], before
    w, r, c = run_dump_restore(env, w, mode)
    assert int(r["setuid0"]) == EPERM
    assert c["groups"] == [4, 24, 27, 1234]
    w.stop()


def test_distinct_ids_kept_caps(env, mode):
    """Real, effective, saved and fs ids all different, a few capabilities
    kept in permitted only, in effective, in inheritable and ambient; the
    process is not dumpable (the id change made it so) and has a
    parent-death signal, which the id change on restore would clear."""
    eff = caps(CAP_NET_BIND_SERVICE)
    prm = caps(CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SETUID)
    inh = caps(CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN)
    w = spawn(env, "ids", own=["--groups", "5,7,100", "--resgid", "2001,2002,2003",
                               "--fsgid", "2004", "--resuid", "1001,1002,1003",
                               "--fsuid", "1004", "--caps", f"{eff:#x},{prm:#x},{inh:#x}",
                               "--ambient", str(CAP_NET_BIND_SERVICE),
                               "--pdeathsig", "28"])
    before = creds_status(w.pid)
    assert before["Uid"].split() == ["1001", "1002", "1003", "1004"], before
    assert before["Gid"].split() == ["2001", "2002", "2003", "2004"], before
    assert (dict(x.split(":\t") for x in (w.dir / "before").read_text().splitlines())
            ["dumpable"]) == "0"
    w, r, c = run_dump_restore(env, w, mode)
    # CAP_SETUID is permitted, not effective: setuid(0) is still refused.
    assert int(r["setuid0"]) == EPERM
    assert int(c["cap_prm"]) == prm and int(c["cap_eff"]) == eff and int(c["cap_inh"]) == inh
    w.stop()


def test_root_bounding_securebits(env, mode):
    """Root with a smaller bounding set, fewer effective capabilities and
    securebits set (with a lock): root may setuid(0), and still may."""
    bits = SECBIT_NO_SETUID_FIXUP | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE
    st = harness.task_status(os.getpid())[os.getpid()]
    full = int(st["CapPrm"], 16)
    prm = full & ~caps(CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_NET_ADMIN)
    eff = prm & ~caps(CAP_NET_RAW)
    w = spawn(env, "root", ["--bounding-set=-sys_admin,-sys_module"],
              own=["--caps", f"{eff:#x},{prm:#x},0", "--securebits", str(bits)])
    w, r, c = run_dump_restore(env, w, mode)
    assert int(r["setuid0"]) == 0
    assert c["securebits"] == bits and c["uid"] == 0
    assert not int(c["cap_bnd"]) & caps(CAP_SYS_ADMIN)
    w.stop()


def test_creds_step_fails(env, mode, monkeypatch):
    """A failing credentials step fails the restore with one line and
    leaves no process behind (it never runs as restore's root)."""
    w = spawn(env, "nobody", ["--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"])
    img = env.path("img")
    env.dump(w, img)
    monkeypatch.setenv("LAZARUS_FAULT_BLOB", "creds")
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc != 0 and r.errors == [
        "lazarus: Error: restore: restorer: restore credentials: "
        "Input/output error (injected by LAZARUS_FAULT_BLOB)"], r.describe()
    harness.wait_for(lambda: harness.proc_state(w.pid) is None, harness.EXIT_TIMEOUT,
                     f"pid {w.pid} to be gone")


def test_restore_lacks_capability(env, mode):
    """A restore that cannot give back a capability the process had (here
    restore itself runs without CAP_NET_RAW in its bounding set) fails with
    one line naming the step and the capability, and leaves no process."""
    w = spawn(env, "root")
    assert int(creds_status(w.pid)["CapBnd"], 16) & caps(CAP_NET_RAW)
    img = env.path("img")
    env.dump(w, img)
    argv = [SETPRIV, "--bounding-set=-net_raw", harness.LAZARUS] + \
        env.restore_args(img, mode, True) + ["-o", env.log_path("restore"), "-v4"]
    env.pids.add(w.pid)
    p = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=harness.LAZARUS_TIMEOUT)
    errors = harness.error_lines(p.stderr)
    assert p.returncode != 0 and errors == [
        "lazarus: Error: restore: restorer: restore credentials: bounding set, capability 13: "
        "Operation not permitted"], p.stderr
    harness.wait_for(lambda: harness.proc_state(w.pid) is None, harness.EXIT_TIMEOUT,
                     f"pid {w.pid} to be gone")
