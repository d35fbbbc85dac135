"""Board data: one `boards/<name>/board.toml` per machine, loaded and checked here.

The TOML files are pure data (addresses, sizes, IRQ numbers). This module checks them and derives the values that
depend on the build configuration (IRQ mode, AIA guest files); `boards.constants` renders the generated sources
the build feeds to the hypervisor and to assembly, `boards.mvm` reads the management VM's `mvm.toml`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BOARDS_DIR = Path(__file__).resolve().parent
IRQ_MODES = ("plic", "aia")


class BoardError(ValueError):
    """A board that does not exist, a malformed board file, or a configuration the board cannot run. The message
    is one line; for a bad field it is `<file>: <field>: <reason>`. `pyshyper` prints it and exits 2."""


def shown_path(path: Path) -> str:
    """A board file as a message names it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class Fields:
    """Typed access to one TOML table that reports `<file>: <field path>: <reason>` and rejects unknown keys."""

    error_type: type[BoardError] = BoardError

    def __init__(self, fname: str, table: Any, where: str) -> None:
        self.fname = fname
        self.where = where
        if not isinstance(table, dict):
            raise self.error(where, f"must be a table, not {type(table).__name__}")
        self.table = table
        self.used: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, field: str, reason: str) -> BoardError:
        return self.error_type(f"{self.fname}: {field}: {reason}")

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self.error(self.path(key), "missing")
            return default
        value = self.table[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise self.error(self.path(key), f"must be {kind.__name__}, not {type(value).__name__} ({value!r})")
        return value

    def uint(self, key: str, default: Any = ..., *, positive: bool = False, align: int = 1) -> int:
        value = self.get(key, int, default)
        if value < 0 or (positive and value == 0):
            raise self.error(self.path(key), f"must be {'positive' if positive else 'non-negative'}, not {value}")
        if value % align:
            raise self.error(self.path(key), f"{value:#x} is not {align:#x}-aligned")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        for i, s in enumerate(value):
            if not isinstance(s, str) or not s:
                raise self.error(f"{self.path(key)}[{i}]", f"must be a non-empty string, not {s!r}")
        return tuple(value)

    def table_list(self, key: str, default: Any = ...) -> list[Fields]:
        value = self.get(key, list, default)
        if not value and default is ...:
            raise self.error(self.path(key), "must have at least one entry")
        return [type(self)(self.fname, t, f"{self.path(key)}[{i}]") for i, t in enumerate(value)]

    def sub(self, key: str) -> Fields:
        self.used.add(key)
        if key not in self.table:
            raise self.error(self.path(key), "missing")
        return type(self)(self.fname, self.table[key], self.path(key))

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(self.path(unknown[0]), "unknown field")


_SIZE_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def mem_bytes(text: str) -> int:
    """QEMU's `-m` syntax as used in board.toml (`1G`, `512M`, a plain number of MiB)."""
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if not m:
        raise BoardError(f"cannot read memory size {text!r}")
    return int(m.group(1)) * _SIZE_SUFFIXES.get(m.group(2) or "M", 1 << 20)


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
    sswi: Region | None  # [sswi], optional: the ACLINT SSWI the hypervisor's IPIs use where the machine has it
    sswi_qemu_option: str  # the -M option that gives QEMU's machine the SSWI ("" if it needs none)
    plic: Region
    plic_num_sources: int
    plic_contexts_per_hart: int
    plic_s_context: int
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
    stage2_leaf: str = "max"  # the largest stage-2 leaf: "max" (1 GiB), "2m", or "4k" (no large pages, for comparison)
    opt: int = 2  # LLVM optimization level of the hypervisor: 2, or 0 with `--debug` (every line and local in gdb)

    @property
    def aia(self) -> bool:
        return self.irq == "aia"

    @property
    def stage2_leaf_max(self) -> int:
        """The largest stage-2 leaf in bytes (hypervisor.board STAGE2_LEAF_MAX)."""
        return STAGE2_LEAF_SIZES[self.stage2_leaf]

    @property
    def qemu_machine(self) -> str:
        """QEMU's -M for this build: the board's machine, with the AIA options in AIA mode, with the option that
        adds the SSWI in PLIC mode (board.toml [sswi] qemu_option; QEMU's AIA machine has no SSWI)."""
        if self.aia:
            return f"{self.board.qemu_machine},aia=aplic-imsic,aia-guests={self.aia_guests}"
        if self.board.sswi is not None and self.board.sswi_qemu_option:
            return f"{self.board.qemu_machine},{self.board.sswi_qemu_option}"
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
            "board_dir": str(self.board.path.parent),
            "irq": self.irq,
            "aia_guests": self.aia_guests,
            "debug_faults": self.debug_faults,
            "mmio_decode": self.mmio_decode,
            "stage2_leaf": self.stage2_leaf,
            "opt": self.opt,
        }


# `pyshyper build --stage2-leaf`: the largest leaf the hypervisor's stage-2 tables may use (64 KiB Svnapot leaves
# come with "2m" and "max" when the harts have Svnapot)
STAGE2_LEAF_SIZES = {"max": 1 << 30, "2m": 1 << 21, "4k": 1 << 12}


def available_boards() -> list[str]:
    return sorted(p.parent.name for p in BOARDS_DIR.glob("*/board.toml"))


def board_dir(name: str) -> Path:
    """Where a board's files are: `boards/<name>/`, or, for a name with a path separator, that directory
    (`--board ./my-board`: a board of one's own, or a copy of one)."""
    if "/" in name:
        return Path(name).expanduser()
    return BOARDS_DIR / name


def load_board(name: str) -> Board:
    """Read and check `board.toml` of the board `name` (see board_dir): every problem is a BoardError naming the
    file, the field and the reason."""
    path = board_dir(name) / "board.toml"
    if (name.startswith(".") and "/" not in name) or not path.is_file():
        if "/" in name:
            raise BoardError(f"unknown board {name!r}: no {shown_path(path)}")
        known = ", ".join(available_boards()) or "none"
        raise BoardError(f"unknown board {name!r} (known: {known})")
    fname = shown_path(path)
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{fname}: {e}") from None
    top = Fields(fname, d, "")
    err = top.error

    def device(key: str, irq: bool = False) -> tuple[Region, int]:
        t = top.sub(key)
        region = Region(t.uint("base", align=4), t.uint("size", positive=True))
        number = t.uint("irq", positive=True) if irq else 0
        t.get("compatible", str, "")
        t.done()
        return region, number

    board_name = top.get("name", str)
    description = top.get("description", str, "")
    qemu_machine = top.get("qemu_machine", str)
    qemu_cpu = top.get("qemu_cpu", str)
    timebase = top.uint("timebase_frequency", positive=True)
    max_harts = top.uint("max_harts", positive=True)
    stack = top.uint("hart_stack_size", positive=True, align=16)
    default_smp = top.uint("default_smp", positive=True)
    if default_smp > max_harts:
        raise err("default_smp", f"{default_smp} is more than max_harts ({max_harts})")
    default_mem = top.get("default_mem", str)
    try:
        ram_size = mem_bytes(default_mem)
    except BoardError as e:
        raise err("default_mem", str(e)) from None
    ram_t = top.sub("ram")
    ram = Region(ram_t.uint("base", align=0x1000), ram_size)
    ram_t.done()
    hyp_t = top.sub("hypervisor")
    hypervisor = Region(
        hyp_t.uint("load_address", align=0x1000), hyp_t.uint("region_size", positive=True, align=0x1000)
    )
    hyp_t.done()
    images_t = top.sub("guest_images")
    guest_images = Region(images_t.uint("load_address", align=0x1000), images_t.uint("max_size", positive=True))
    images_t.done()
    for field_name, region in (("hypervisor", hypervisor), ("guest_images", guest_images)):
        if not ram.contains(region.base, region.size):
            raise err(
                field_name,
                f"[{region.base:#x}, {region.end:#x}) is not inside the board's RAM [{ram.base:#x}, {ram.end:#x})"
                f" (ram.base, default_mem {default_mem})",
            )
    if hypervisor.base < guest_images.end and guest_images.base < hypervisor.end:
        raise err("guest_images", "overlaps the hypervisor region")
    uart, uart_irq = device("uart", irq=True)
    test_finisher, _ = device("test_finisher")
    rtc, rtc_irq = device("rtc", irq=True)
    clint, _ = device("clint")
    sswi, sswi_option = None, ""
    if "sswi" in top.table:
        sswi_t = top.sub("sswi")
        sswi = Region(sswi_t.uint("base", align=0x1000), sswi_t.uint("size", positive=True, align=4))
        sswi_option = sswi_t.get("qemu_option", str, "")
        sswi_t.done()
        if sswi.size < 4 * max_harts:
            raise sswi_t.error(sswi_t.path("size"), f"{sswi.size:#x} holds no SETSSIP word for each of max_harts")
    plic_t = top.sub("plic")
    plic = Region(plic_t.uint("base", align=0x1000), plic_t.uint("size", positive=True))
    plic_sources = plic_t.uint("num_sources", positive=True)
    plic_contexts = plic_t.uint("contexts_per_hart", positive=True)
    plic_s_context = plic_t.uint("s_context")
    if plic_s_context >= plic_contexts:
        raise plic_t.error(plic_t.path("s_context"), f"must be below contexts_per_hart ({plic_contexts})")
    plic_t.done()
    aplic_t = top.sub("aplic")
    aplic_m_base = aplic_t.uint("m_base", align=0x1000)
    aplic_s_base = aplic_t.uint("s_base", align=0x1000)
    aplic_size = aplic_t.uint("size", positive=True, align=0x1000)
    aplic_sources = aplic_t.uint("num_sources", positive=True)
    aplic_t.done()
    for t, n in ((plic_t, plic_sources), (aplic_t, aplic_sources)):
        if not 2 <= n <= 1024:
            raise t.error(t.path("num_sources"), f"must be 2..1024 (source 0 is none), not {n}")
    imsic_t = top.sub("imsic")
    page_size = imsic_t.uint("page_size", positive=True, align=0x1000)
    imsic_m_base = imsic_t.uint("m_base", align=page_size)
    imsic_s_base = imsic_t.uint("s_base", align=page_size)
    max_guests = imsic_t.uint("max_guests", positive=True)
    if max_guests > 63:
        raise imsic_t.error(imsic_t.path("max_guests"), f"must be 1..63 (hgeie GEILEN), not {max_guests}")
    default_guests = imsic_t.uint("default_guests", positive=True)
    if default_guests > max_guests:
        raise imsic_t.error(imsic_t.path("default_guests"), f"{default_guests} is more than max_guests ({max_guests})")
    imsic_t.done()
    virtio = []
    for v in top.table_list("virtio_mmio", []):
        virtio.append(
            VirtioSlot(v.uint("base", align=0x1000), v.uint("size", positive=True), v.uint("irq", positive=True))
        )
        v.done()
    top.done()
    if board_name != path.parent.name:
        raise err("name", f"{board_name!r} does not match its directory {path.parent.name!r}")
    irqs = [("uart.irq", uart_irq), ("rtc.irq", rtc_irq)] + [
        (f"virtio_mmio[{i}].irq", v.irq) for i, v in enumerate(virtio)
    ]
    for what, n in irqs:
        if n >= min(plic_sources, aplic_sources):
            raise err(what, f"{n} is beyond the interrupt controllers' sources (plic and aplic num_sources)")
    return Board(
        name=board_name,
        description=description,
        path=path,
        qemu_machine=qemu_machine,
        qemu_cpu=qemu_cpu,
        timebase_frequency=timebase,
        max_harts=max_harts,
        hart_stack_size=stack,
        default_smp=default_smp,
        default_mem=default_mem,
        ram_base=ram.base,
        hypervisor=hypervisor,
        guest_images=guest_images,
        uart=uart,
        uart_irq=uart_irq,
        test_finisher=test_finisher,
        rtc=rtc,
        rtc_irq=rtc_irq,
        clint=clint,
        sswi=sswi,
        sswi_qemu_option=sswi_option,
        plic=plic,
        plic_num_sources=plic_sources,
        plic_contexts_per_hart=plic_contexts,
        plic_s_context=plic_s_context,
        aplic_m_base=aplic_m_base,
        aplic_s_base=aplic_s_base,
        aplic_size=aplic_size,
        aplic_num_sources=aplic_sources,
        imsic_m_base=imsic_m_base,
        imsic_s_base=imsic_s_base,
        imsic_page_size=page_size,
        imsic_max_guests=max_guests,
        imsic_default_guests=default_guests,
        virtio_mmio=tuple(virtio),
    )


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


# The test-guest image (README "Test guests"): the hypervisor loads it (hypervisor.board), each guest's assembly
# writes its header (board.S) and the host build checks it (pyshyper_host/build/pipeline.py).
GUEST_MAGIC = 0x5453554748535950  # b"PYSHGUST" little-endian
GUEST_HDR_MAGIC, GUEST_HDR_SIZE, GUEST_HDR_INSTANCES = 8, 16, 24  # header offsets: magic, image bytes, VMs
GUEST_GPA = 0x8000_0000  # where each test-guest VM's memory (and the image) starts, guest-physical
GUEST_MEM_SIZE = 0x40_0000  # 4 MiB of memory per test-guest VM
GUEST_INSTANCES_MAX = 4
