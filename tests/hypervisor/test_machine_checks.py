"""Boot-time checks of the machine against the build (hypervisor/core/machine.py, hypervisor/main.py), the hgatp
probe (arch/riscv/stage2.py) and the console's DBCN loop (core/console.py), under CPython with the firmware, the
harts' WARL CSRs and QEMU's device trees mocked.

Device trees: QEMU virt's own (tests/hypervisor/data, -m 512M), edited with the `fdt` package where a case needs
another machine (1 GiB of RAM, no S-level IMSIC, other guest-index bits).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import fdt as pyfdt
import pytest

from compiler import prelude
from compiler.csrs import CSRS
from tests.hypervisor.hyp_env import load_board

DATA = Path(__file__).resolve().parent / "data"
EID_BASE, EID_DBCN, EID_HSM, EID_SRST = 0x10, 0x4442434E, 0x48534D, 0x53525354
DTB_ADDR = 0x8F00_0000
HGATP, HGEIE, TIME = CSRS["HGATP"], CSRS["HGEIE"], CSRS["TIME"]
IMSIC_S = "/soc/interrupt-controller@28000000"
IMSIC_M = "/soc/interrupt-controller@24000000"
GUEST_MAGIC = b"PYSHGUST"


class StopBoot(Exception):
    """Where the boot hart's start-up ends: hart_wait, or SBI SRST (the machine powered off)."""


def dtb(name: str, mem: int = 0x8000_0000, drop: tuple[str, ...] = (), **props: tuple[str, object]) -> bytes:
    """A committed QEMU tree with `mem` bytes of RAM, the nodes in `drop` removed, and properties set:
    props maps a label to (node path, (property name, value))."""
    tree = pyfdt.parse_dtb((DATA / name).read_bytes())
    tree.get_node("/memory@80000000").set_property("reg", [0, 0x8000_0000, mem >> 32, mem & 0xFFFF_FFFF])
    for path in drop:
        parent, _, node = path.rpartition("/")
        tree.remove_node(node, parent)
    for path, (prop, value) in props.values():
        tree.get_node(path).set_property(prop, value)
    return tree.to_dtb(version=17)


PLIC_2G = ("qemu-virt.dtb", {})
AIA_2G = ("qemu-virt-aia.dtb", {})


@dataclass
class Machine:
    """The boot hart's view of a machine: hyp_main's module, what the firmware printed and was asked."""

    main: object
    board: object
    geilen: int = 3
    vmidlen: int = 14
    sv39x4: bool = True
    console: list[bytes] = field(default_factory=list)
    sbi: list[tuple] = field(default_factory=list)

    def text(self) -> str:
        return b"".join(self.console).decode()

    def lines(self, start: str = "pyshyper: ") -> list[str]:
        return [line for line in self.text().splitlines() if line.startswith(start)]

    def boot(self, blob: bytes, mvm_kernel: bool = True) -> None:
        """hyp_main on hart 0 with this device tree (and the MVM's kernel loaded unless told otherwise)."""
        prelude.memory.write(DTB_ADDR, blob)
        b = self.board
        if mvm_kernel:
            mem_host, mem_ipa = int(b.MVM_MEM_HOST), int(b.MVM_MEM_IPA)
            prelude.memory.write(mem_host + int(b.MVM_KERNEL_IPA) - mem_ipa + 0x38, b"RSC\x05")
            prelude.memory.write(mem_host + int(b.MVM_DTB_IPA) - mem_ipa, (DATA / "qemu-virt.dtb").read_bytes())
        try:
            self.main.hyp_main(prelude.u64(0), prelude.u64(DTB_ADDR))
        except StopBoot:
            pass

    def srst(self) -> list[tuple]:
        return [c for c in self.sbi if c[0] == EID_SRST]

    def finisher_writes(self) -> list[int]:
        base = int(self.board.TEST_FINISHER_BASE)
        return [e[3] for e in prelude.mock.mmio_log if e[0] == "w" and e[1] == base]

    def plic_writes(self) -> list:
        base, size = int(self.board.PLIC_BASE), int(self.board.PLIC_SIZE)
        return [e for e in prelude.mock.mmio_log if e[0] == "w" and base <= e[1] < base + size]


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """make(irq) -> a Machine for a build in that IRQ mode (AIA: 3 guest files)."""

    def make(irq: str = "plic") -> Machine:
        board = load_board(tmp_path, irq)
        main = importlib.import_module("hypervisor.main")
        m = Machine(main, board)

        def firmware(eid, fid, a0, a1, a2, *rest):
            m.sbi.append((int(eid), int(fid), int(a0), int(a1)))
            if eid == EID_BASE and fid == 3:
                return 0, 1
            if eid == EID_DBCN and fid == 0:
                m.console.append(prelude.memory.read(a1, a0))
                return 0, a0
            if eid == EID_HSM and fid == 0:
                main.hart_up[int(a2)] = prelude.u32(1)
            if eid == EID_SRST:
                raise StopBoot()  # the machine is off
            return 0, 0

        def csr_write(num, value):
            """The harts' WARL fields: hgatp's MODE and VMID (Priv 9.2.10), hgeie's GEILEN bits (9.2.4)."""
            if num == HGATP:
                mode = value >> 60 if m.sv39x4 or value >> 60 != 8 else 0
                vmid = (value >> 44) & ((1 << m.vmidlen) - 1)
                prelude.mock.csr[num] = (mode << 60) | (vmid << 44) | (value & ((1 << 44) - 1))
            elif num == HGEIE:
                prelude.mock.csr[num] = value & (((1 << m.geilen) - 1) << 1)

        clock = [0]

        def csr_read(num):
            if num == TIME:  # a clock that runs, for the boot hart's waits
                clock[0] += 1_000_000
                return clock[0]
            return None

        prelude.mock.sbi_handler = firmware
        prelude.mock.csr_write_hook = csr_write
        prelude.mock.csr_read_hook = csr_read

        def stop(hartid):
            raise StopBoot()

        monkeypatch.setattr(main, "hart_wait", stop)
        return m

    return make


# ----------------------------------------------------------------------------------------------------------------
# The interrupt controller: the device tree's against the build's


AIA_ON_PLIC_BUILD = (
    "pyshyper: this machine has an AIA (APLIC+IMSIC, 3 guest files per hart); this image was built for --irq plic:"
    " rebuild with pyshyper build --irq aia --aia-guests 3"
)
PLIC_ON_AIA_BUILD = (
    "pyshyper: this machine has a PLIC; this image was built for --irq aia --aia-guests 3:"
    " rebuild with pyshyper build --irq plic"
)
NO_IMSIC = (
    "pyshyper: this machine has an APLIC without an IMSIC; this image was built for --irq aia --aia-guests 3:"
    " PyShyper needs a PLIC or an APLIC with IMSICs"
)

IRQ_CASES = {
    "plic-on-plic": ("plic", "qemu-virt.dtb", {}, 0, None),
    "aia-on-aia": ("aia", "qemu-virt-aia.dtb", {}, 3, None),
    "plic-build-on-aia": ("plic", "qemu-virt-aia.dtb", {}, 3, AIA_ON_PLIC_BUILD),
    "aia-build-on-plic": ("aia", "qemu-virt.dtb", {}, 0, PLIC_ON_AIA_BUILD),
    "other-aia-guests": (
        "aia",
        "qemu-virt-aia.dtb",
        {},
        2,
        "pyshyper: this machine has an AIA (APLIC+IMSIC, 2 guest files per hart); this image was built for"
        " --irq aia --aia-guests 3: rebuild with pyshyper build --irq aia --aia-guests 2",
    ),
    "other-guest-index-bits": (
        "aia",
        "qemu-virt-aia.dtb",
        {"bits": (IMSIC_S, ("riscv,guest-index-bits", 3))},
        3,
        "pyshyper: this machine has an AIA (APLIC+IMSIC, 3 guest files per hart in 3 guest-index bits, not 2);"
        " this image was built for --irq aia --aia-guests 3: this board's IMSIC layout does not fit the machine's",
    ),
    # Only the M-level IMSIC (its interrupts-extended targets cause 11): not an AIA the hypervisor can use.
    "m-level-imsic-only": ("aia", "qemu-virt-aia.dtb", {"drop": (IMSIC_S,)}, 3, NO_IMSIC),
    "s-level-imsic-disabled": ("aia", "qemu-virt-aia.dtb", {"off": (IMSIC_S, ("status", "disabled"))}, 3, NO_IMSIC),
    "no-interrupt-controller": (
        "plic",
        "qemu-virt.dtb",
        {"drop": ("/soc/plic@c000000",)},
        0,
        "pyshyper: this machine has neither a PLIC nor an AIA; this image was built for --irq plic:"
        " PyShyper needs a PLIC or an APLIC with IMSICs",
    ),
}


@pytest.mark.parametrize("case", IRQ_CASES)
def test_irq_check(machine, case):
    irq, name, edits, geilen, line = IRQ_CASES[case]
    m = machine(irq)
    checks = importlib.import_module("hypervisor.core.machine")
    edits = dict(edits)
    blob = dtb(name, drop=edits.pop("drop", ()), **edits)
    prelude.memory.write(DTB_ADDR, blob)
    ok = checks.machine_irq_check(prelude.u64(DTB_ADDR), prelude.u64(geilen))
    assert ok == (line is None)
    assert m.lines() == ([] if line is None else [line])


@pytest.mark.parametrize(
    ("irq", "name", "line"),
    [("plic", "qemu-virt-aia.dtb", AIA_ON_PLIC_BUILD), ("aia", "qemu-virt.dtb", PLIC_ON_AIA_BUILD)],
)
def test_wrong_irq_stops_the_boot_before_any_vm(machine, irq, name, line):
    """The line, then a failed power-off (test finisher FAIL with code 1, SRST "system failure" after it), with
    nothing done to the interrupt controller and no VM made (today's trap was in mvm_create)."""
    m = machine(irq)
    m.boot(dtb(name))
    assert m.lines() == [line]
    assert m.finisher_writes() == [0x0001_3333]
    assert [(c[2], c[3]) for c in m.srst()] == [(0, 1)]  # shutdown, reason "system failure"
    assert not m.plic_writes()
    assert "vm0" not in m.text()
    assert not [c for c in m.sbi if c[0] == EID_HSM]  # no other hart started


def test_geilen_is_read_from_hgeie(machine):
    """GEILEN comes from the hart (hgeie's writable bits), not from the build: a 2-file hart is named so."""
    m = machine("aia")
    m.geilen = 2
    m.boot(dtb("qemu-virt-aia.dtb"))
    assert "2 guest files per hart" in m.lines()[0]
    assert prelude.mock.csr[HGEIE] == 0  # left cleared


# ----------------------------------------------------------------------------------------------------------------
# The MVM's memory inside the firmware's


def test_mvm_memory_outside_ram_is_refused_with_both_ranges(machine):
    m = machine("plic")
    m.boot(dtb("qemu-virt.dtb", mem=0x2000_0000))
    assert (
        "pyshyper: the management VM's memory 0xc0000000..0x100000000 (mvm.toml) is not inside the firmware's"
        " memory 0x80000000..0xa0000000: no management VM"
    ) in m.lines()
    assert "vm0" not in m.text()


@pytest.mark.parametrize(
    ("mem", "frames"),
    [
        # 2G: the MVM's GiB ends RAM; the pool is the 896 MiB between the test-guest images and it
        (0x8000_0000, "229376 pages of 4 KiB from 0x88000000"),
        # 3G: the GiB above the MVM's is the larger side
        (0xC000_0000, "262144 pages of 4 KiB from 0x100000000"),
        # 2.5G: the 896 MiB below it beat the 512 MiB above
        (0xA000_0000, "229376 pages of 4 KiB from 0x88000000"),
    ],
)
def test_frame_pool_is_the_larger_side_of_the_mvm_memory(machine, mem, frames):
    m = machine("plic")
    m.boot(dtb("qemu-virt.dtb", mem=mem))
    assert f"  frames:     {frames}\n" in m.text(), m.text()
    assert "vm0 (management VM)" in m.text()


def test_mvm_memory_inside_ram_makes_the_mvm(machine):
    m = machine("plic")
    m.boot(dtb("qemu-virt.dtb"))
    assert "vm0 (management VM)" in m.text()
    assert "not inside" not in m.text()


# ----------------------------------------------------------------------------------------------------------------
# hgatp: Sv39x4 and VMIDLEN read back


@pytest.mark.parametrize("vmidlen", [14, 7, 1, 0])
def test_stage2_probe_finds_vmidlen_and_leaves_hgatp_bare(machine, vmidlen):
    m = machine("plic")
    m.vmidlen = vmidlen
    stage2 = importlib.import_module("hypervisor.arch.riscv.stage2")
    assert int(stage2.stage2_probe()) == vmidlen
    assert int(stage2.stage2_vmids()) == 1 << vmidlen
    writes = [e for e in prelude.mock.log if e[0] == "csrw" and e[1] == HGATP]
    assert writes[0][2] >> 60 == 8 and (writes[0][2] >> 44) & 0x3FFF == 0x3FFF
    assert writes[-1][2] == 0 and prelude.mock.csr[HGATP] == 0


def test_no_sv39x4_is_refused(machine):
    m = machine("plic")
    m.sv39x4 = False
    m.boot(dtb("qemu-virt.dtb"))
    assert m.lines() == [
        "pyshyper: cannot boot: the harts' hgatp does not take MODE Sv39x4 (Priv 9.2.10): PyShyper's G-stage is Sv39x4"
    ]
    assert [(c[2], c[3]) for c in m.srst()] == [(0, 1)]
    assert "vm0" not in m.text()


def guest_image(instances: int, size: int = 0x1000) -> bytes:
    """A test-guest image header (README "Test guests"): j over it, magic, size, instances."""
    return (
        (0x0200006F).to_bytes(8, "little") + GUEST_MAGIC + size.to_bytes(8, "little") + instances.to_bytes(8, "little")
    )


def test_vm_creation_stops_when_vmids_run_out(machine):
    """VMIDLEN 1: VMID 1 is the only one a VM gets, so of two test-guest instances one VM is made."""
    m = machine("plic")
    m.vmidlen = 1
    prelude.memory.write(int(m.board.GUEST_IMAGE_ADDRESS), guest_image(2))
    m.boot(dtb("qemu-virt.dtb"), mvm_kernel=False)
    assert "stage 2:    Sv39x4, 2 VMIDs (VMIDLEN 1)" in m.text()
    made = [line for line in m.lines() if ": guest image " in line]
    assert len(made) == 1 and made[0].startswith("pyshyper: vm1: guest image "), made
    assert (
        "pyshyper: no VMID left for another VM: the harts have 2 (hgatp VMIDLEN 1) and VMs take VMIDs from 1"
        in m.lines()
    )


def test_no_vmid_no_mvm(machine):
    m = machine("plic")
    m.vmidlen = 0
    m.boot(dtb("qemu-virt.dtb"))
    assert "pyshyper: no VMID left for another VM: the harts have 1 (hgatp VMIDLEN 0)" in m.text()
    assert "vm0" not in m.text()


# ----------------------------------------------------------------------------------------------------------------
# The console: DBCN console_write returns (error, bytes written)


def test_console_write_goes_on_after_a_partial_write(machine):
    m = machine("plic")
    console = importlib.import_module("hypervisor.core.console")
    calls = []

    def firmware(eid, fid, a0, a1, a2, *rest):  # SBI 2.0 12.1: may write fewer bytes than asked
        calls.append(int(a0))
        n = min(int(a0), 5)
        m.console.append(prelude.memory.read(a1, n))
        return 0, n

    prelude.mock.sbi_handler = firmware
    text = b"partial writes are written out in full\n"
    console.console_puts(prelude.cstr(text))
    assert b"".join(m.console) == text
    assert calls[:3] == [len(text), len(text) - 5, len(text) - 10]


def test_console_write_stops_on_an_error(machine):
    m = machine("plic")
    console = importlib.import_module("hypervisor.core.console")
    calls = []

    def firmware(eid, fid, a0, a1, a2, *rest):
        calls.append(int(a0))
        return -1, 0  # SBI_ERR_FAILED

    prelude.mock.sbi_handler = firmware
    console.console_puts(prelude.cstr(b"lost\n"))
    assert calls == [5] and not m.console


# ----------------------------------------------------------------------------------------------------------------
# Stage-2 leaves: Svnapot from the device tree, the build's largest leaf, each VM's leaves reported


@pytest.mark.parametrize("svnapot", [False, True])
def test_stage2_leaves_follow_the_harts_svnapot(machine, svnapot):
    """The MVM's 1 GiB at 0xC000_0000 is one 1 GiB leaf; 64 KiB Svnapot leaves are on only when the device tree's
    harts have Svnapot."""
    m = machine("plic")
    tree = pyfdt.parse_dtb(dtb("qemu-virt.dtb"))
    if svnapot:
        exts = tree.get_node("/cpus/cpu@0").get_property("riscv,isa-extensions")
        tree.get_node("/cpus/cpu@0").set_property("riscv,isa-extensions", [*exts.data, "svnapot"])
    m.boot(tree.to_dtb(version=17))
    yes = "yes" if svnapot else "no"
    assert f"Svnapot={yes}" in m.text()
    assert f"stage 2:    Sv39x4, 16384 VMIDs (VMIDLEN 14), leaves up to 1048576 KiB, 64 KiB Svnapot leaves: {yes}" in (
        m.text()
    )
    stage2 = importlib.import_module("hypervisor.arch.riscv.stage2")
    assert bool(stage2.stage2_leaf_napot()) is svnapot
    reports = {line.split()[1]: line for line in m.lines() if " stage 2: " in line}
    assert reports["vm0"].startswith("pyshyper: vm0 stage 2: 1 x 1G, 0 x 2M, 0 x 64K, "), reports
    # the benchmark (just bench-leaves) reads the same line
    from pyshyper_host.bench.leaves import leaf_counts

    assert leaf_counts(m.text())[:3] == (1, 0, 0)


def test_test_guest_memory_gets_2m_leaves(machine):
    """A test guest's 4 MiB at 0x8000_0000 from the frame pool, 2 MiB aligned by vm_mem_alloc: two 2 MiB leaves."""
    m = machine("plic")
    prelude.memory.write(int(m.board.GUEST_IMAGE_ADDRESS), guest_image(1))
    m.boot(dtb("qemu-virt.dtb"), mvm_kernel=False)
    assert "pyshyper: vm1 stage 2: 0 x 1G, 2 x 2M, 0 x 64K, 0 x 4K leaves, 5 table pages" in m.lines(), m.lines()
