"""hypervisor/arch/riscv/ipi.py: the hypervisor's IPIs go through the ACLINT SSWI when the machine's device tree
shows one at the board's SSWI_BASE serving every hart (QEMU virt with aclint=on), each hart to the SETSSIP word
its interrupts-extended entry gives; otherwise through the firmware's SBI IPI. Under CPython, on QEMU's own trees
(tests/hypervisor/data) and edits of them made with the `fdt` package."""

from __future__ import annotations

import importlib
import struct
from pathlib import Path

import fdt as pyfdt
import pytest

from compiler import prelude
from tests.hypervisor.hyp_env import load_board

DATA = Path(__file__).resolve().parent / "data"
EID_IPI = 0x735049
SSWI = 0x2F0_0000
DTB_AT = 0x8220_0000
HARTIDS_AT = 0x8230_0000


class World:
    def __init__(self, tmp_path, irq: str = "plic") -> None:
        self.board = load_board(tmp_path, irq)
        self.ipi = importlib.import_module("hypervisor.arch.riscv.ipi")
        self.sbi_ipis: list[tuple[int, int]] = []
        prelude.mock.sbi_handler = self.firmware

    def firmware(self, eid, fid, a0, a1, *rest):
        if eid == EID_IPI:
            self.sbi_ipis.append((int(a0), int(a1)))
        return 0, 0

    def init(self, dtb: bytes, hartids=(0, 1, 2)) -> bool:
        prelude.memory.write(DTB_AT, dtb + bytes(16))
        prelude.memory.write(HARTIDS_AT, b"".join(struct.pack("<Q", h) for h in hartids))
        ptr = prelude.Ptr[prelude.u64](prelude.u64(HARTIDS_AT))
        return bool(self.ipi.ipi_init(prelude.u64(DTB_AT), ptr, prelude.u64(len(hartids))))

    def send(self, hart: int) -> tuple[list, list]:
        """What hart_ipi(hart) did: (MMIO writes, SBI IPI calls)."""
        prelude.mock.mmio_log.clear()
        self.sbi_ipis.clear()
        self.ipi.hart_ipi(prelude.u64(hart))
        return [(a, w, v) for (kind, a, w, v) in prelude.mock.mmio_log if kind == "w"], list(self.sbi_ipis)


def edited(name: str, **props) -> bytes:
    """QEMU's tree `name` with properties of its SSWI node replaced: name=list of cells."""
    dt = pyfdt.parse_dtb((DATA / name).read_bytes())
    node = dt.get_node("/soc/sswi@2f00000")
    for key, cells in props.items():
        key = key.replace("_", "-")
        node.remove_property(key)
        node.append(pyfdt.PropWords(key, *cells))
    return dt.to_dtb(version=17)


def sswi_cells(name: str, prop: str) -> list[int]:
    return list(pyfdt.parse_dtb((DATA / name).read_bytes()).get_node("/soc/sswi@2f00000").get_property(prop).data)


def test_with_an_sswi_each_hart_is_sent_its_setssip_word(tmp_path):
    w = World(tmp_path)
    assert w.init((DATA / "qemu-virt-aclint.dtb").read_bytes())
    for hart in (0, 1, 2):
        assert w.send(hart) == ([(SSWI + 4 * hart, 4, 1)], [])


def test_the_word_is_the_harts_place_in_interrupts_extended(tmp_path):
    """QEMU lists harts in order; a tree that lists them backwards has hart 0 own the last word."""
    cells = sswi_cells("qemu-virt-aclint.dtb", "interrupts-extended")
    pairs = [cells[i : i + 2] for i in range(0, len(cells), 2)]
    backwards = [c for pair in reversed(pairs) for c in pair]
    w = World(tmp_path)
    assert w.init(edited("qemu-virt-aclint.dtb", interrupts_extended=backwards))
    assert [w.send(h)[0] for h in (0, 1, 2)] == [[(SSWI + 8, 4, 1)], [(SSWI + 4, 4, 1)], [(SSWI, 4, 1)]]


@pytest.mark.parametrize("name", ["qemu-virt.dtb", "qemu-virt-aia.dtb"])
def test_without_an_sswi_the_firmware_sends_them(tmp_path, name):
    w = World(tmp_path, "aia" if "aia" in name else "plic")
    assert not w.init((DATA / name).read_bytes())
    for hart in (0, 2):
        assert w.send(hart) == ([], [(1, hart)])  # hart_mask 1, hart_mask_base hart


@pytest.mark.parametrize(
    "why, props, hartids",
    [
        ("elsewhere than the board says", {"reg": [0, 0x2E0_0000, 0, 0x4000]}, (0, 1, 2)),
        ("larger than the board's", {"reg": [0, SSWI, 0, 0x8000]}, (0, 1, 2)),
        ("without a word for hart 2", {"reg": [0, SSWI, 0, 8]}, (0, 1, 2)),
        ("serving harts 0 and 1 only", {"interrupts_extended": "first two"}, (0, 1, 2)),
        ("with hart 2 an M-mode entry", {"interrupts_extended": "irq 3 for the last"}, (0, 1, 2)),
        ("for a hart the tree lacks", {}, (0, 1, 5)),
        ("for a hart beyond MAX_HARTS", {}, (0, 1, 1 << 40)),
    ],
)
def test_an_sswi_that_does_not_serve_every_hart_is_not_used(tmp_path, why, props, hartids):
    cells = sswi_cells("qemu-virt-aclint.dtb", "interrupts-extended")
    if props.get("interrupts_extended") == "first two":
        props = {"interrupts_extended": cells[:4]}
    elif props.get("interrupts_extended") == "irq 3 for the last":
        props = {"interrupts_extended": cells[:4] + [cells[4], 3]}
    w = World(tmp_path)
    assert not w.init(edited("qemu-virt-aclint.dtb", **props), hartids), why
    assert w.send(1) == ([], [(1, 1)])


def test_a_later_tree_without_an_sswi_turns_it_off(tmp_path):
    """ipi_init decides afresh: nothing of an earlier SSWI is kept."""
    w = World(tmp_path)
    assert w.init((DATA / "qemu-virt-aclint.dtb").read_bytes())
    assert not w.init((DATA / "qemu-virt.dtb").read_bytes())
    assert w.send(0) == ([], [(1, 0)])
