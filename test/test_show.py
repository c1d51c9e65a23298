"""`lazarus show` on every image of a real dump, and `lazarus check`.

Beyond "it is JSON", each image must say plausible things about the lzwork
process that was dumped: what lzwork reported about itself in DIR/ready
(its memory area, alternate stack, log fd) must be found in the images.
"""
import json
import os
import subprocess

import pytest

import harness
from harness import show

PAGE = 4096
SA_ONSTACK = 0x08000000
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
O_ACCMODE, O_RDWR = 3, 2
RLIMIT_NOFILE, ITIMER_VIRTUAL = 7, 1


@pytest.fixture(scope="module")
def dump(small_dump):
    img, w = small_dump["img"], small_dump["work"]
    pid = w.pid
    shown = {name: show(img / name) for name in harness.image_files(img)}
    ready = {k: int(v, 0) for k, v in w.ready.items() if k != "simd"}
    return {"img": img, "pid": pid, "w": w, "ready": ready, "show": shown,
            "one": lambda base: shown[f"{base}-{pid}.img"]["entries"]}


def vmas(d):
    return d["one"]("mm")[0]["vmas"]


def vma_of(d, addr):
    for v in vmas(d):
        if v["start"] <= addr < v["end"]:
            return v
    return None


def pagemap(d):
    entries = d["one"]("pagemap")
    return entries[0], entries[1:]


def test_every_image_is_json(small_dump):
    img = small_dump["img"]
    ids = set()
    for name in harness.image_files(img):
        j = show(img / name)
        assert j["file"].endswith(name)
        assert j["version"] == 3
        assert len(j["dump_id"]) == 32 and int(j["dump_id"], 16), j["dump_id"]
        ids.add(j["dump_id"])
        if name.startswith("pages-"):
            assert j["kind"] == "pages"
        else:
            assert isinstance(j["entries"], list) and j["entries"], name
    assert len(ids) == 1, f"files of one dump carry different dump ids: {ids}"
    stats = img / "stats-dump.json"
    assert stats.exists(), "stats-dump.json missing"
    json.loads(stats.read_text())


def test_inventory(dump):
    inv = dump["show"]["inventory.img"]
    assert inv["kind"] == "inventory"
    e = inv["entries"][0]
    assert e["format_version"] == 3 and e["root_pid"] == dump["pid"]
    # Every other file is listed with its size and checksum.
    for f in e["files"]:
        assert (dump["img"] / f["name"]).stat().st_size == f["size"], f
        assert "crc" in f
    assert e["arch"] == "x86_64" and e["page_size"] == PAGE
    assert e["kernel_release"] == os.uname().release
    assert e["xsave_size"] >= 576


def test_pstree(dump):
    (e,) = dump["show"]["pstree.img"]["entries"]
    pid = dump["pid"]
    assert e["pid"] == pid and e["threads"] == [pid]
    assert e["pgid"] == pid and e["sid"] == pid  # started with setsid


def test_core(dump):
    (c,) = dump["one"]("core")
    r, pid = c["regs"], dump["pid"]
    assert c["tid"] == pid and c["comm"] == "lzwork"
    assert r["ip"] != 0
    code = vma_of(dump, r["ip"])
    assert code and code["prot"] & PROT_EXEC, f"ip {r['ip']:#x} outside executable memory"
    sp = vma_of(dump, r["sp"])
    assert sp and sp["prot"] & PROT_WRITE, f"sp {r['sp']:#x} outside writable memory"
    assert r["fs_base"] and vma_of(dump, r["fs_base"]), "fs_base (TLS) not in a vma"
    assert len(c["xsave"]) // 2 >= 576, "xsave area shorter than legacy + header"
    assert c["blocked_sigset"] & (1 << (12 - 1)), "SIGUSR2 is blocked in lzwork"
    assert not c["blocked_sigset"] & (1 << (10 - 1)), "SIGUSR1 is not blocked"
    # glibc registers rseq and a clear-child-tid address in every thread.
    assert c.get("rseq") and vma_of(dump, c["rseq"]["abi_pointer"]), "no rseq area"
    assert c["clear_child_tid"] and vma_of(dump, c["clear_child_tid"])
    ready = dump["ready"]
    assert c["sas"]["ss_sp"] == ready["altstack"]
    assert c["sas"]["ss_size"] == ready["altstack_len"]


def test_task(dump):
    (t,) = dump["one"]("task")
    assert t["pid"] == dump["pid"] and t["comm"] == "lzwork"
    nofile = [r for r in t["rlimits"] if r["resource"] == RLIMIT_NOFILE]
    assert nofile and nofile[0]["cur"] == 777
    virt = [i for i in t["itimers"] if i["which"] == ITIMER_VIRTUAL]
    assert virt and virt[0]["interval_sec"] == 100000


def test_sigacts(dump):
    acts = {a["signo"]: a for a in dump["one"]("sigacts")}
    assert sorted(acts) == [s for s in range(1, 65) if s not in (9, 19)]
    assert acts[10]["handler"] > 1 and acts[10]["flags"] & SA_ONSTACK  # SIGUSR1
    assert acts[15]["handler"] > 1 and acts[2]["handler"] > 1  # SIGTERM, SIGINT
    assert acts[12]["handler"] == 0  # SIGUSR2: default
    assert vma_of(dump, acts[10]["handler"])["prot"] & PROT_EXEC


def test_mm(dump):
    (mm,) = dump["one"]("mm")
    vs = mm["vmas"]
    assert [v["start"] for v in vs] == sorted(v["start"] for v in vs)
    for a, b in zip(vs, vs[1:]):
        assert a["end"] <= b["start"], "overlapping vmas"
    assert any(v.get("name") == "[stack]" for v in vs), "no [stack] vma"
    assert any(v["kind"] == "VMA_VDSO" for v in vs), "no vdso vma"
    assert os.path.realpath(mm["exe_path"]) == str(harness.WORKLOADS / "lzwork")
    assert mm["start_brk"] <= mm["brk"]
    assert mm["start_code"] < mm["end_code"] and mm["arg_start"] < mm["arg_end"]
    assert mm["auxv"] and len(mm["auxv"]) % 2 == 0
    # lzwork's pattern area: private anonymous, its tail read-only.
    ready = dump["ready"]
    mem, length, ro = ready["mem"], ready["mib"] << 20, ready["ro_off"]
    head, tail = vma_of(dump, mem), vma_of(dump, mem + ro)
    assert head and head["kind"] == "VMA_ANON" and head["prot"] == PROT_READ | PROT_WRITE
    assert tail and tail["kind"] == "VMA_ANON" and tail["prot"] == PROT_READ
    assert tail["end"] >= mem + length


def test_pagemap_and_pages(dump):
    head, entries = pagemap(dump)
    pid = dump["pid"]
    assert head["pid"] == pid
    data_pages = 0
    present = {}
    for e in entries:
        start, end = e["vaddr"], e["vaddr"] + e["nr_pages"] * PAGE
        v = vma_of(dump, start)
        assert v and end <= v["end"], f"pagemap run {start:#x}-{end:#x} not inside one vma"
        if e["flags"] & 1:  # LZ_PE_PRESENT
            for k in range(e["nr_pages"]):
                present[start + k * PAGE] = e["data_page"] + k
            data_pages += e["nr_pages"]
    assert data_pages == head["nr_data_pages"]
    pages = dump["show"][f"pages-{pid}.img"]
    assert pages["nr_pages"] == data_pages and pages["pid"] == pid and pages["complete"]

    # Every page lzwork wrote its pattern to is in the pages file, with the
    # pattern; pages it never touched are not.
    ready = dump["ready"]
    mem, npages = ready["mem"], (ready["mib"] << 20) // PAGE
    with open(dump["img"] / f"pages-{pid}.img", "rb") as f:
        for p in range(npages):
            addr, kind = mem + p * PAGE, harness.lzwork_page_kind(p)
            if kind == "untouched":
                assert addr not in present, f"never-touched page {p} was dumped with data"
                continue
            if kind == "zeroed":
                continue
            assert addr in present, f"pattern page {p} ({addr:#x}) not dumped"
            if p % 97 and p != npages - 1:
                continue  # read back a sample
            f.seek(PAGE + present[addr] * PAGE)
            data = f.read(PAGE)
            words = [int.from_bytes(data[i:i + 8], "little") for i in range(0, PAGE, 8)]
            want = [harness.pattern(p * (PAGE // 8) + k) for k in range(PAGE // 8)]
            assert words == want, f"page {p} data in pages-{pid}.img differs from the pattern"


def test_fs(dump):
    (fs,) = dump["one"]("fs")
    assert fs["cwd"] == str(dump["w"].dir.resolve())
    assert fs["root"] == "/"
    assert fs["umask"] == 0o027


def test_files(dump):
    raw = {f["id"]: f for f in dump["show"]["files.img"]["entries"]}
    files = {i: harness.flat_file(f) for i, f in raw.items()}
    fds = {e["fd"]: e for e in dump["one"]("fdinfo")}
    logfd = dump["ready"]["logfd"]
    assert {0, 1, 2, logfd} <= set(fds), f"fds {sorted(fds)}"
    assert fds[1]["file_id"] == fds[2]["file_id"], "stdout and stderr share one open file"
    null = files[fds[0]["file_id"]]
    assert null["kind"] == "FD_CHR" and null["path"] == "/dev/null"
    assert raw[fds[0]["file_id"]]["chr"]["rdev"] == os.makedev(1, 3), "the sub-message is shown"
    log = files[fds[logfd]["file_id"]]
    assert log["kind"] == "FD_REG" and log["path"] == str((dump["w"].dir / "log").resolve())
    assert log["flags"] & O_ACCMODE == O_RDWR
    assert log["pos"] % 64 == 0 and log["pos"] == log["size"]
    out = files[fds[1]["file_id"]]
    assert out["path"] == str((dump["w"].dir / "out").resolve())
    assert all(e["file_id"] in files for e in fds.values()), "fd without a file entry"


def test_show_rejects_garbage(env):
    junk = env.base / "junk.img"
    junk.write_bytes(b"not an image at all, just some bytes\n" * 4)
    p = subprocess.run([str(harness.LAZARUS), "show", str(junk)], capture_output=True, text=True)
    assert p.returncode != 0
    errs = harness.error_lines(p.stderr)
    assert len(errs) == 1 and "junk.img" in errs[0], p.stderr


def test_check():
    p = subprocess.run([str(harness.LAZARUS), "check"], capture_output=True, text=True,
                       timeout=harness.LAZARUS_TIMEOUT)
    assert p.returncode == 0, f"lazarus check: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert p.stdout.strip(), "lazarus check printed nothing"
