"""Large stage-2 pages in a real boot, on harts with Svnapot (`-cpu rv64,svnapot=true`), PLIC mode, 4 harts, 2G:

the hypervisor's banner says it makes leaves up to 1 GiB and 64 KiB Svnapot leaves; the MVM's 1 GiB at
0xC000_0000 is one 1 GiB leaf; from the MVM's shell, the tiny guest (tests/guests/tiny, 1 MiB at 0x8000_0000)
gets 16 NAPOT leaves of 64 KiB and nothing else, and runs in them (its line on its console: its code, stack and
device tree are all behind NAPOT PTEs that QEMU's G-stage walk must honour); the same guest with 2 MiB + 192 KiB
gets one 2 MiB leaf and three 64 KiB ones; removing both gives every page back.

The leaf counts are the hypervisor's own report, a line per VM it makes (`pyshyper: vmN stage 2: ...`: the MVM's
on the serial console, a guest VM's on the MVM's /dev/hvc0; from
stage2_count_leaves). One boot (module fixture); the serial log of a failing test is saved as logs/<test>.log.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from pyshyper_host.bench import console
from tests.boot.test_gvm import TINY, Mvm, _put_file
from tests.conftest import require_tool

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"
TIMEOUT = 180.0
CPU = "rv64,svnapot=true"
LEAVES = r"pyshyper: vm{id} stage 2: (\d+) x 1G, (\d+) x 2M, (\d+) x 64K, (\d+) x 4K leaves, (\d+) table pages"


def leaves(log: str, vid: int) -> tuple[int, ...]:
    """The last leaf report for VM vid in the serial log: (1G, 2M, 64K, 4K leaves, table pages)."""
    found = re.findall(LEAVES.format(id=vid), log)
    assert found, f"no stage-2 report for vm{vid} in the serial log"
    return tuple(int(n) for n in found[-1])


@pytest.fixture(scope="module")
def mvm(tmp_path_factory, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    out = tmp_path_factory.mktemp("stage2-leaves")
    cmd = mvm_qemu_command(False, 4, "2G", mvm_image_cache, irq="plic", out=out, quiet=True, cpu=CPU)
    try:
        shell, wall, _ = console.start_shell(cmd, timeout=TIMEOUT)
        print(f"\nMVM shell after {wall:.2f} s")
    except console.BootError as e:
        LOG_DIR.mkdir(exist_ok=True)
        p = LOG_DIR / "test_stage2_leaves-boot.log"
        p.write_text(e.log)
        pytest.fail(f"the MVM does not reach a shell that answers on -cpu {CPU}; serial log: {p}\n{e}")
    m = Mvm("plic", shell, out)
    shell.run("(cat /dev/hvc0 > /tmp/hvc0.log &)", timeout=TIMEOUT)  # the hypervisor's lines about guest VMs
    end = time.monotonic() + 90
    while shell.run("shyper vm list >/dev/null 2>&1", timeout=TIMEOUT)[1] != 0:  # the daemon service starts
        assert time.monotonic() < end, f"the shyper daemon does not answer; serial log: {m.save_log('leaves')}"
        time.sleep(2)
    yield m
    shell.close()


@pytest.fixture(autouse=True)
def _log_on_failure(request, mvm):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"serial log: {mvm.save_log(request.node.name)}")


def test_banner_says_large_and_napot_leaves(mvm: Mvm):
    log = mvm.shell.log
    assert re.search(r"extensions: H=yes Sstc=\w+ Svnapot=yes", log), log[:3000]
    assert "leaves up to 1048576 KiB, 64 KiB Svnapot leaves: yes" in log, log[:3000]


def test_mvm_memory_is_one_1g_leaf(mvm: Mvm):
    g1, m2, k64, k4, tables = leaves(mvm.shell.log, 0)
    print(f"\nvm0 (MVM) stage 2: {g1} x 1G, {m2} x 2M, {k64} x 64K, {k4} x 4K, {tables} table pages")
    # 1 GiB at 0xC000_0000 (1 GiB aligned): one 1 GiB leaf; the passthrough devices and IMSIC pages are 4 KiB
    assert (g1, m2, k64) == (1, 0, 0)
    assert 0 < k4 < 32


def gvm_leaves(mvm: Mvm, vid: int) -> tuple[int, ...]:
    """A guest VM's leaf line: on the MVM's /dev/hvc0 (the hypervisor's log port; read into /tmp/hvc0.log since
    the shell came up), which the MVM reads a few bytes at a time: waited for."""
    end = time.monotonic() + 90
    while True:
        log = mvm.run(f"grep 'pyshyper: vm{vid} stage 2' /tmp/hvc0.log || true")
        if re.search(LEAVES.format(id=vid), log):
            return leaves(log, vid)
        assert time.monotonic() < end, f"no stage-2 line of vm{vid} on /dev/hvc0 after 90 s"
        time.sleep(2)


def _boot_tiny(mvm: Mvm, config: str) -> int:
    vid = int(mvm.run(f"shyper vm config {config}").strip())
    mvm.run(f"(cat /dev/hvc{vid} > /tmp/tiny{vid}.out & echo $! > /tmp/tiny{vid}.pid)")
    mvm.run(f"shyper vm boot {vid}")
    end = time.monotonic() + 30
    while "tiny: up on vCPU 0x0, device tree at 0x800f0000" not in mvm.run(f"cat /tmp/tiny{vid}.out"):
        assert time.monotonic() < end, mvm.run(f"cat /tmp/tiny{vid}.out")
        time.sleep(1)
    mvm.run(f"kill $(cat /tmp/tiny{vid}.pid)")
    return vid


def test_tiny_guest_runs_in_napot_leaves(mvm: Mvm):
    _put_file(mvm, (mvm.out / "guests" / "tiny.bin").read_bytes(), "/root/tiny.bin")
    _put_file(mvm, (TINY / "tiny.json").read_bytes(), "/root/tiny.json")
    mvm.free_start = mvm.system()["free_pages"]
    vid = _boot_tiny(mvm, "tiny.json")
    counts = gvm_leaves(mvm, vid)
    print(f"\nvm{vid} (tiny, 1 MiB) stage 2: {counts}")
    # 1 MiB at 0x8000_0000 in a 64 KiB aligned run: 16 NAPOT ranges; root (4), a level-1 and a level-0 table
    assert counts == (0, 0, 16, 0, 6)
    assert mvm.vms()[vid]["state"] == "running"


def test_2m_and_napot_leaves_together(mvm: Mvm):
    cfg = json.loads((TINY / "tiny.json").read_text())
    cfg["name"] = "tiny2"
    cfg["cpu"]["allocate_bitmap"] = "0b0100"
    cfg["cpu"]["master"] = 2
    cfg["memory"]["region"][0]["length"] = hex(2 * 1024 * 1024 + 3 * 65536)
    _put_file(mvm, json.dumps(cfg).encode(), "/root/tiny2.json")
    vid = _boot_tiny(mvm, "tiny2.json")
    counts = gvm_leaves(mvm, vid)
    print(f"\nvm{vid} (tiny2, 2 MiB + 192 KiB) stage 2: {counts}")
    assert counts == (0, 1, 3, 0, 6)


def test_remove_returns_every_page(mvm: Mvm):
    for vid in sorted(mvm.vms()):
        if vid != 0:
            mvm.run(f"shyper vm stop {vid} && shyper vm remove {vid}")
    assert sorted(mvm.vms()) == [0]
    assert mvm.system()["free_pages"] == mvm.free_start


def test_mvm_poweroff_exits_0(mvm: Mvm):
    assert mvm.shell.poweroff(timeout=TIMEOUT) == 0
