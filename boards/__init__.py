"""Board data: one `boards/<name>/board.toml` per machine, loaded and checked here.

The TOML files are pure data (addresses, sizes, IRQ numbers). This module checks them, derives the values that
depend on the build configuration (IRQ mode, AIA guest files) and renders the generated sources the build feeds
to the hypervisor (`hypervisor.board`, typed-subset `Final` constants) and to assembly (`board.S`, `.equ` lines).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BOARDS_DIR = Path(__file__).resolve().parent
IRQ_MODES = ("plic", "aia")


class BoardError(ValueError):
    """A board that does not exist, a malformed board file, or a configuration the board cannot run."""


@dataclass(frozen=True)
class Region:
    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size

    def contains(self, start: int, size: int) -> bool:
        return self.base <= start and start + size <= self.end


@dataclass(frozen=True)
class VirtioSlot:
    base: int
    size: int
    irq: int


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    path: Path
    qemu_machine: str
    qemu_cpu: str
    timebase_frequency: int
    max_harts: int
    hart_stack_size: int
    default_smp: int
    default_mem: str
    ram_base: int
    hypervisor: Region
    guest_images: Region
    uart: Region
    uart_irq: int
    test_finisher: Region
    rtc: Region
    rtc_irq: int
    clint: Region
    plic: Region
    plic_num_sources: int
    aplic_m_base: int
    aplic_s_base: int
    aplic_size: int
    aplic_num_sources: int
    imsic_m_base: int
    imsic_s_base: int
    imsic_page_size: int
    imsic_max_guests: int
    imsic_default_guests: int
    virtio_mmio: tuple[VirtioSlot, ...] = field(default_factory=tuple)

    @property
    def load_address(self) -> int:
        return self.hypervisor.base


@dataclass(frozen=True)
class BuildConfig:
    """A board plus the choices `pyshyper build` takes: the IRQ mode and the number of AIA guest files."""

    board: Board
    irq: str = "plic"
    aia_guests: int = 0
    debug_faults: bool = False  # test builds only: a guest may ask the hypervisor to fault (tests/boot)
    mmio_decode: str = "htinst"  # "fetch": test builds decode every trapped access from the fetched instruction
    opt: int = 2  # LLVM optimization level of the hypervisor: 2, or 0 with `--debug` (every line and local in gdb)

    @property
    def aia(self) -> bool:
        return self.irq == "aia"

    @property
    def qemu_machine(self) -> str:
        """QEMU's -M for this build: the board's machine, with the AIA options in AIA mode."""
        if self.aia:
            return f"{self.board.qemu_machine},aia=aplic-imsic,aia-guests={self.aia_guests}"
        return self.board.qemu_machine

    @property
    def imsic_guest_index_bits(self) -> int:
        # QEMU virt: riscv,guest-index-bits = ceil(log2(aia-guests + 1)).
        return (self.aia_guests).bit_length() if self.aia else 0

    @property
    def imsic_hart_stride(self) -> int:
        """Bytes between two harts' S-level IMSIC files: the S file plus 2**bits - 1 guest files."""
        return self.board.imsic_page_size << self.imsic_guest_index_bits

    def key(self) -> dict[str, Any]:
        """What identifies the build output (stored next to the ELF so `run` rebuilds when it changes)."""
        return {
            "board": self.board.name,
            "irq": self.irq,
            "aia_guests": self.aia_guests,
            "debug_faults": self.debug_faults,
            "mmio_decode": self.mmio_decode,
            "opt": self.opt,
        }


def available_boards() -> list[str]:
    return sorted(p.parent.name for p in BOARDS_DIR.glob("*/board.toml"))


def _region(d: dict[str, Any], where: str) -> Region:
    try:
        return Region(int(d["base"]), int(d["size"]))
    except KeyError as e:
        raise BoardError(f"{where}: missing field {e.args[0]!r}") from None


def load_board(name: str) -> Board:
    path = BOARDS_DIR / name / "board.toml"
    if "/" in name or name.startswith(".") or not path.is_file():
        known = ", ".join(available_boards()) or "none"
        raise BoardError(f"unknown board {name!r} (known: {known})")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{path}: {e}") from None
    try:
        board = Board(
            name=d["name"],
            description=d.get("description", ""),
            path=path,
            qemu_machine=d["qemu_machine"],
            qemu_cpu=d["qemu_cpu"],
            timebase_frequency=d["timebase_frequency"],
            max_harts=d["max_harts"],
            hart_stack_size=d["hart_stack_size"],
            default_smp=d["default_smp"],
            default_mem=d["default_mem"],
            ram_base=d["ram"]["base"],
            hypervisor=Region(d["hypervisor"]["load_address"], d["hypervisor"]["region_size"]),
            guest_images=Region(d["guest_images"]["load_address"], d["guest_images"]["max_size"]),
            uart=_region(d["uart"], "uart"),
            uart_irq=d["uart"]["irq"],
            test_finisher=_region(d["test_finisher"], "test_finisher"),
            rtc=_region(d["rtc"], "rtc"),
            rtc_irq=d["rtc"]["irq"],
            clint=_region(d["clint"], "clint"),
            plic=_region(d["plic"], "plic"),
            plic_num_sources=d["plic"]["num_sources"],
            aplic_m_base=d["aplic"]["m_base"],
            aplic_s_base=d["aplic"]["s_base"],
            aplic_size=d["aplic"]["size"],
            aplic_num_sources=d["aplic"]["num_sources"],
            imsic_m_base=d["imsic"]["m_base"],
            imsic_s_base=d["imsic"]["s_base"],
            imsic_page_size=d["imsic"]["page_size"],
            imsic_max_guests=d["imsic"]["max_guests"],
            imsic_default_guests=d["imsic"]["default_guests"],
            virtio_mmio=tuple(VirtioSlot(v["base"], v["size"], v["irq"]) for v in d.get("virtio_mmio", [])),
        )
    except KeyError as e:
        raise BoardError(f"{path}: missing field {e.args[0]!r}") from None
    if board.name != name:
        raise BoardError(f"{path}: name {board.name!r} does not match its directory {name!r}")
    if board.hypervisor.base % 0x1000 or board.hypervisor.size % 0x1000:
        raise BoardError(f"{path}: the hypervisor region must be page-aligned")
    if board.hart_stack_size % 16 or board.hart_stack_size <= 0:
        raise BoardError(f"{path}: hart_stack_size must be a positive multiple of 16")
    return board


def make_config(board_name: str, irq: str = "plic", aia_guests: int | None = None) -> BuildConfig:
    """Check a build configuration; every problem is one BoardError with a one-line message."""
    if irq not in IRQ_MODES:
        raise BoardError(f"--irq must be one of {', '.join(IRQ_MODES)}, not {irq!r}")
    board = load_board(board_name)
    if aia_guests is not None:
        if not 1 <= aia_guests <= board.imsic_max_guests:
            raise BoardError(f"--aia-guests must be between 1 and {board.imsic_max_guests}, not {aia_guests}")
        if irq != "aia":
            raise BoardError("--aia-guests needs --irq aia")
    if irq == "aia":
        return BuildConfig(board, "aia", aia_guests if aia_guests is not None else board.imsic_default_guests)
    return BuildConfig(board, "plic", 0)


def _constants(cfg: BuildConfig) -> list[tuple[str, int, str]]:
    """(NAME, value, comment) for every scalar constant shared by the hypervisor and assembly."""
    b = cfg.board
    return [
        ("DEBUG_FAULTS", int(cfg.debug_faults), "1: the PyShyper test SBI extension may fault the hypervisor"),
        ("MMIO_DECODE_FETCH", int(cfg.mmio_decode == "fetch"), "1: MMIO traps ignore htinst, decode the fetched insn"),
        ("RAM_BASE", b.ram_base, "start of DRAM"),
        ("HYP_LOAD_ADDRESS", b.hypervisor.base, "entry point and start of the hypervisor image"),
        ("HYP_REGION_SIZE", b.hypervisor.size, "bytes the hypervisor image, stacks and data may use"),
        ("HYP_REGION_END", b.hypervisor.end, ""),
        ("GUEST_IMAGE_ADDRESS", b.guest_images.base, "where `pyshyper run --guest` loads a guest image"),
        ("GUEST_IMAGE_MAX_SIZE", b.guest_images.size, ""),
        ("MAX_HARTS", b.max_harts, "harts with a stack and per-hart data"),
        ("HART_STACK_SIZE", b.hart_stack_size, ""),
        ("TIMEBASE_FREQUENCY", b.timebase_frequency, "Hz of the time CSR"),
        ("UART_BASE", b.uart.base, "ns16550a"),
        ("UART_SIZE", b.uart.size, ""),
        ("UART_IRQ", b.uart_irq, ""),
        ("TEST_FINISHER_BASE", b.test_finisher.base, "sifive,test0 power-off/reset"),
        ("RTC_BASE", b.rtc.base, ""),
        ("RTC_IRQ", b.rtc_irq, ""),
        ("CLINT_BASE", b.clint.base, ""),
        ("CLINT_SIZE", b.clint.size, ""),
        ("PLIC_BASE", b.plic.base, ""),
        ("PLIC_SIZE", b.plic.size, ""),
        ("PLIC_NUM_SOURCES", b.plic_num_sources, ""),
        ("APLIC_M_BASE", b.aplic_m_base, ""),
        ("APLIC_S_BASE", b.aplic_s_base, ""),
        ("APLIC_SIZE", b.aplic_size, ""),
        ("APLIC_NUM_SOURCES", b.aplic_num_sources, ""),
        ("IMSIC_M_BASE", b.imsic_m_base, ""),
        ("IMSIC_S_BASE", b.imsic_s_base, ""),
        ("IMSIC_PAGE_SIZE", b.imsic_page_size, ""),
        ("IRQ_MODE_PLIC", 0, ""),
        ("IRQ_MODE_AIA", 1, ""),
        ("IRQ_MODE", 1 if cfg.aia else 0, f"this build: {cfg.irq}"),
        ("AIA_GUESTS", cfg.aia_guests, "guest interrupt files per hart (0 with the PLIC)"),
        ("IMSIC_GUEST_INDEX_BITS", cfg.imsic_guest_index_bits, "ceil(log2(AIA_GUESTS + 1))"),
        ("IMSIC_HART_STRIDE", cfg.imsic_hart_stride, "bytes between two harts' S-level IMSIC files"),
        ("VIRTIO_MMIO_COUNT", len(b.virtio_mmio), ""),
    ]


def render_hypervisor_module(cfg: BuildConfig) -> str:
    """The generated `hypervisor.board` module: `Final` constants and slot tables in the typed subset."""
    lines = [
        f'"""Board constants for {cfg.board.name} ({cfg.irq}'
        + (f", {cfg.aia_guests} AIA guests" if cfg.aia else "")
        + ").",
        "",
        f"Generated by `pyshyper build` from {cfg.board.path.relative_to(BOARDS_DIR.parent)}; do not edit.",
        '"""',
        "",
        "from compiler.prelude import Array, Final, static, u64",
        "",
    ]
    for name, value, comment in _constants(cfg):
        tail = f"  # {comment}" if comment else ""
        lines.append(f"{name}: Final = u64({value:#x}){tail}")
    n = len(cfg.board.virtio_mmio)
    if n:
        bases = ", ".join(f"{v.base:#x}" for v in cfg.board.virtio_mmio)
        sizes = ", ".join(f"{v.size:#x}" for v in cfg.board.virtio_mmio)
        irqs = ", ".join(str(v.irq) for v in cfg.board.virtio_mmio)
        lines += [
            "",
            "# virtio-mmio transport slots: base, size and wired IRQ of slot i.",
            f"VIRTIO_MMIO_BASES = static(Array[u64, {n}], init=({bases}))",
            f"VIRTIO_MMIO_SIZES = static(Array[u64, {n}], init=({sizes}))",
            f"VIRTIO_MMIO_IRQS = static(Array[u64, {n}], init=({irqs}))",
        ]
    lines += _render_mvm(cfg)
    return "\n".join(lines) + "\n"


PAGE_SIZE = 0x1000


def _page_up(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def mvm_module_constants(cfg: BuildConfig) -> tuple[list[tuple[str, int, str]], dict[str, tuple[str, list[int]]]]:
    """The management VM's part of `hypervisor.board`: (NAME, value, comment) scalars and NAME -> (length
    expression, values) tables, from `boards/<board>/mvm.toml`. Every name is emitted in both IRQ modes."""
    from boards.mvm import load_mvm, mvm_constants  # boards.mvm imports this module

    mvm = load_mvm(cfg.board.name)
    plic = mvm.emulated_for("plic")["plic"]
    aia = mvm.emulated_for("aia")
    aplic, imsic = aia["aplic"], aia["imsic"]
    stats = mvm.emulated_named("stats")
    if stats is None:
        raise BoardError(f"{mvm.path.name}: emulated: no 'stats' entry (the hypervisor's statistics page)")
    pt = mvm.passthrough
    scalars = [
        *mvm_constants(mvm),
        ("MVM_PT_COUNT", len(pt), "passthrough devices: MMIO mapped at the same IPA, wired IRQ routed to the MVM"),
        ("MVM_PLIC_BASE", plic.base, "the vPLIC window the MVM sees (the physical PLIC's range)"),
        ("MVM_PLIC_SIZE", plic.size, ""),
        ("MVM_PLIC_NDEV", plic.num_sources - 1, "riscv,ndev: sources 1..MVM_PLIC_NDEV"),
        ("MVM_APLIC_BASE", aplic.base, "AIA mode: the emulated S-level APLIC"),
        ("MVM_APLIC_SIZE", aplic.size, ""),
        ("MVM_APLIC_NUM_SOURCES", aplic.num_sources, ""),
        ("MVM_IMSIC_BASE", imsic.base, "AIA mode: vCPU i's IMSIC page at MVM_IMSIC_BASE + i * IMSIC_PAGE_SIZE"),
        ("MVM_IMSIC_NUM_IDS", imsic.num_ids, ""),
        ("MVM_STATS_BASE", stats.base, "the hypervisor's read-only statistics page (not in the device tree)"),
        ("MVM_STATS_SIZE", stats.size, ""),
    ]
    tables = {
        "MVM_HARTS": ("MVM_NUM_VCPUS", list(mvm.harts)),
        "MVM_PT_BASES": ("MVM_PT_COUNT", [d.base for d in pt]),
        "MVM_PT_SIZES": ("MVM_PT_COUNT", [_page_up(d.size) for d in pt]),
        "MVM_PT_IRQS": ("MVM_PT_COUNT", [d.irq for d in pt]),
    }
    return scalars, tables


def _render_mvm(cfg: BuildConfig) -> list[str]:
    scalars, tables = mvm_module_constants(cfg)
    lines = ["", "# The management VM (VM 0), from mvm.toml."]
    for name, value, comment in scalars:
        tail = f"  # {comment}" if comment else ""
        lines.append(f"{name}: Final = u64({value:#x}){tail}")
    comments = {
        "MVM_HARTS": "the physical hart that runs vCPU i",
        "MVM_PT_BASES": "passthrough device i: base (IPA == host physical address)",
        "MVM_PT_SIZES": "size rounded up to 4 KiB pages",
        "MVM_PT_IRQS": "wired IRQ (0: none)",
    }
    for name, (length, values) in tables.items():
        decimal = name in ("MVM_HARTS", "MVM_PT_IRQS")
        init = ", ".join(str(v) if decimal else f"{v:#x}" for v in values) + ("," if len(values) == 1 else "")
        lines.append(f"{name} = static(Array[u64, {length}], init=({init}))  # {comments[name]}")
    return lines


def render_asm_include(cfg: BuildConfig) -> str:
    """The generated `board.S`: the same constants as `.equ BOARD_<NAME>` lines for runtime/*.S."""
    lines = [f"/* Board constants for {cfg.board.name}; generated by pyshyper build, do not edit. */"]
    for name, value, _ in _constants(cfg):
        lines.append(f".equ BOARD_{name}, {value:#x}")
    return "\n".join(lines) + "\n"
