"""hypervisor/core/log.py under CPython: one formatted line per call, through the firmware's console."""

from __future__ import annotations

import importlib

import pytest

from compiler import prelude
from tests.hypervisor.hyp_env import load_board

EID_DBCN = 0x4442434E


@pytest.fixture
def log(tmp_path):
    load_board(tmp_path, "plic")
    out: list[bytes] = []

    def firmware(eid, fid, a0, a1, a2, a3, a4, a5):
        if eid == EID_DBCN and fid == 0:
            out.append(prelude.memory.read(a1, a0))
            return 0, a0
        return 0, 0

    prelude.mock.sbi_handler = firmware
    mod = importlib.import_module("hypervisor.core.log")
    return mod, out


def test_conversions(log):
    mod, out = log
    u64 = prelude.u64
    name = prelude.cstr(b"vm7")
    mod.log4(mod.LOG_INFO, prelude.cstr(b"a %d b %x c %s d %c %%\n"), u64(42), u64(0xBEEF), name.addr(), u64(65))
    assert b"".join(out) == b"a 42 b 0xbeef c vm7 d A %\n"


def test_missing_arguments_print_zero_and_unknown_conversions_stand(log):
    mod, out = log
    mod.log1(mod.LOG_INFO, prelude.cstr(b"%d %d %q end %"), prelude.u64(5))
    assert b"".join(out) == b"5 0 %q end %"


def test_levels(log):
    mod, out = log
    mod.log0(mod.LOG_DEBUG, prelude.cstr(b"hidden\n"))
    mod.log0(mod.LOG_ERROR, prelude.cstr(b"shown\n"))
    assert b"".join(out) == b"shown\n"


def test_a_guest_vms_lines_go_to_the_log_ring_only(log):
    """log_vm: a line about a guest VM made through the control protocol reaches the MVM's log port (the log ring,
    its /dev/hvc0) and not the firmware's console; a line about any other VM reaches both, and so does the next
    plain line."""
    mod, out = log
    ring = importlib.import_module("hypervisor.core.cons_ring")
    u64 = prelude.u64

    def ring_text() -> bytes:
        r = ring.log_ring_get()
        buf = prelude.Array[prelude.u8, 256]()
        n = ring.ring_get(r, prelude.addr_of(buf[0]).addr(), u64(256))
        return bytes(buf[i] for i in range(int(n)))

    ring_text()  # what earlier tests left
    fmt = prelude.cstr(b"pyshyper: vm%d boots at %x\n")
    mod.log_vm(mod.LOG_INFO, True, fmt, u64(1), u64(0x80000000), u64(0), u64(0))
    assert b"".join(out) == b""
    assert ring_text() == b"pyshyper: vm1 boots at 0x80000000\n"
    mod.log_vm(mod.LOG_INFO, False, fmt, u64(0), u64(0x90200000), u64(0), u64(0))
    mod.log0(mod.LOG_INFO, prelude.cstr(b"pyshyper: plain\n"))
    assert b"".join(out) == b"pyshyper: vm0 boots at 0x90200000\npyshyper: plain\n"
    assert ring_text() == b"pyshyper: vm0 boots at 0x90200000\npyshyper: plain\n"


EID_IPI = 0x735049


def test_a_line_wakes_the_armed_log_reader_once(log):
    """log_tee: once the log's reader has armed (core/cons_ring.py log_arm, before it looks at the ring), the next
    line sets its mailbox word and sends its hart one IPI; the lines after it send none until it arms again, and
    nothing is sent while nobody is armed."""
    mod, out = log
    ring = importlib.import_module("hypervisor.core.cons_ring")
    u32, u64 = prelude.u32, prelude.u64
    ipis: list[tuple[int, int]] = []
    plain = prelude.mock.sbi_handler

    def firmware(eid, fid, a0, a1, a2, a3, a4, a5):
        if eid == EID_IPI:
            ipis.append((int(a0), int(a1)))
            return 0, 0
        return plain(eid, fid, a0, a1, a2, a3, a4, a5)

    prelude.mock.sbi_handler = firmware
    word = prelude.Array[u32, 1]()
    ring.log_armed[0] = u32(0)
    mod.log0(mod.LOG_INFO, prelude.cstr(b"before anyone reads\n"))
    assert ipis == [] and int(word[0]) == 0
    ring.log_arm(prelude.addr_of(word[0]).addr(), u64(3))
    mod.log0(mod.LOG_INFO, prelude.cstr(b"first\n"))
    assert ipis == [(1, 3)] and int(word[0]) == 1
    mod.log0(mod.LOG_INFO, prelude.cstr(b"second\n"))
    assert ipis == [(1, 3)]
    ring.log_arm(prelude.addr_of(word[0]).addr(), u64(3))
    mod.log0(mod.LOG_INFO, prelude.cstr(b"third\n"))
    assert ipis == [(1, 3), (1, 3)]
