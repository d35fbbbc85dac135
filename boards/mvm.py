"""The management VM (VM 0): its description as board data (`boards/<board>/mvm.toml`).

`load_mvm(board)` reads and checks the TOML against the board (`board.toml`): every problem is one `MvmError`
naming the field (`cpu.harts[1]`, `passthrough[3].irq`, ...) and the reason. Its device tree is made by
`boards.mvm_fdt.mvm_device_tree`.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

from boards import Board, BoardError, Fields, load_board, mem_bytes, shown_path

MMU_TYPES = ("riscv,sv39", "riscv,sv48", "riscv,sv57")
# name -> the IRQ mode it belongs to ("any": both). "stats" is the hypervisor's read-only statistics page
# (per-vCPU exit counters), left out of the device tree so no driver claims it and /dev/mem can read it.
# "virtio_console" is the hypervisor's virtio-mmio console (core/virtio_console.py), in the device tree with its
# wired `irq` on the virtual interrupt controller.
EMULATED_KINDS = {"plic": "plic", "aplic": "aia", "imsic": "aia", "stats": "any", "virtio_console": "any"}
_DT_NODE_NAMES = {"uart": "serial"}  # generic device-tree node names where ours differ


class MvmError(BoardError):
    """A malformed or inconsistent MVM description, or a device tree that cannot be built from it."""


@dataclass(frozen=True)
class MemRegion:
    ipa: int
    host: int
    size: int

    @property
    def ipa_end(self) -> int:
        return self.ipa + self.size

    @property
    def host_end(self) -> int:
        return self.host + self.size


@dataclass(frozen=True)
class EmulatedDevice:
    name: str  # plic | aplic | imsic
    irq_mode: str  # plic | aia
    base: int
    size: int  # imsic: bytes per vCPU (one page)
    num_sources: int = 0  # plic, aplic
    num_ids: int = 0  # imsic
    irq: int = 0  # virtio_console: its wired source on the virtual interrupt controller


@dataclass(frozen=True)
class PassthroughDevice:
    name: str
    compatible: tuple[str, ...]
    base: int
    size: int
    irq: int  # 0: no wired interrupt
    clock_frequency: int = 0

    @property
    def node_name(self) -> str:
        return f"{_DT_NODE_NAMES.get(self.name, self.name)}@{self.base:x}"


@dataclass(frozen=True)
class MvmConfig:
    board: Board
    path: Path
    name: str
    vm_id: int
    description: str
    vcpus: int
    harts: tuple[int, ...]  # vCPU i runs on physical hart harts[i]
    mmu_type: str
    isa_remove: tuple[str, ...]
    isa_remove_plic: tuple[str, ...]
    memory: tuple[MemRegion, ...]
    kernel_load_ipa: int
    kernel_max_size: int
    initrd_load_ipa: int
    initrd_max_size: int
    dtb_load_ipa: int
    dtb_max_size: int
    cmdline: str
    stdout: str
    emulated: tuple[EmulatedDevice, ...]
    passthrough: tuple[PassthroughDevice, ...]

    def emulated_named(self, name: str) -> EmulatedDevice | None:
        return next((e for e in self.emulated if e.name == name), None)

    def emulated_for(self, irq: str) -> dict[str, EmulatedDevice]:
        """The virtual interrupt controllers of one IRQ mode, by name."""
        return {e.name: e for e in self.emulated if e.irq_mode == irq}

    def host_address(self, ipa: int) -> int:
        """The host-physical address behind an IPA of the MVM's RAM (where QEMU's loader puts an image)."""
        for m in self.memory:
            if m.ipa <= ipa < m.ipa_end:
                return m.host + (ipa - m.ipa)
        raise MvmError(f"{shown_path(self.path)}: IPA {ipa:#x} is not in the MVM's memory")

    @property
    def stdout_device(self) -> PassthroughDevice:
        return next(d for d in self.passthrough if d.name == self.stdout)

    @property
    def hart_mask(self) -> int:
        return sum(1 << h for h in self.harts)


# ---------------------------------------------------------------------------------------------------------------
# Loading and checking


class _Fields(Fields):
    """Fields of mvm.toml: every problem is an MvmError."""

    error_type = MvmError


def _overlap(a: int, a_size: int, b: int, b_size: int) -> bool:
    return a < b + b_size and b < a + a_size


Window = tuple[int, int]  # a load window: (IPA, maximum size)


def _cpu(top: Fields, board: Board) -> tuple[int, tuple[int, ...], str, tuple[str, ...], tuple[str, ...]]:
    """[cpu]: (vCPUs, the hart of each, mmu_type, isa.remove, isa.remove_plic)."""
    err = top.error
    cpu = top.sub("cpu")
    vcpus = cpu.uint("num", positive=True)
    if vcpus > board.max_harts:
        raise err("cpu.num", f"{vcpus} vCPUs but the board has at most {board.max_harts} harts")
    harts_raw = cpu.get("harts", list)
    if len(harts_raw) != vcpus:
        raise err("cpu.harts", f"lists {len(harts_raw)} harts for {vcpus} vCPUs (cpu.num): one hart per vCPU")
    for i, h in enumerate(harts_raw):
        if not isinstance(h, int) or isinstance(h, bool) or not 0 <= h < board.max_harts:
            raise err(f"cpu.harts[{i}]", f"{h!r} is not a hart number 0..{board.max_harts - 1}")
        if h in harts_raw[:i]:
            raise err(f"cpu.harts[{i}]", f"hart {h} is listed twice")
    mmu_type = cpu.get("mmu_type", str)
    if mmu_type not in MMU_TYPES:
        raise err("cpu.mmu_type", f"{mmu_type!r} is not one of {', '.join(MMU_TYPES)}")
    isa = cpu.sub("isa")
    isa_remove = tuple(p.lower() for p in isa.strings("remove"))
    isa_remove_plic = tuple(p.lower() for p in isa.strings("remove_plic", []))
    if not any(fnmatch.fnmatchcase("h", p) for p in isa_remove):
        raise err("cpu.isa.remove", "must remove 'h': the MVM is not given the H extension")
    isa.done()
    cpu.done()
    return vcpus, tuple(harts_raw), mmu_type, isa_remove, isa_remove_plic


def _memory(top: Fields, board: Board) -> list[MemRegion]:
    """[[memory]]: each region inside the board's RAM, clear of the hypervisor and of each other."""
    err = top.error
    memory: list[MemRegion] = []
    ram_end = board.ram_base + mem_bytes(board.default_mem)
    reserved = [("the hypervisor region", board.hypervisor), ("the guest-image window", board.guest_images)]
    for m in top.table_list("memory"):
        region = MemRegion(
            m.uint("ipa", align=0x1000), m.uint("host", align=0x1000), m.uint("size", positive=True, align=0x1000)
        )
        m.done()
        if not (board.ram_base <= region.host and region.host_end <= ram_end):
            raise err(
                f"{m.where}.host",
                f"[{region.host:#x}, {region.host_end:#x}) is not inside the board's RAM "
                f"[{board.ram_base:#x}, {ram_end:#x}) (default_mem {board.default_mem})",
            )
        for what, r in reserved:
            if _overlap(region.host, region.size, r.base, r.size):
                raise err(
                    f"{m.where}.host",
                    f"[{region.host:#x}, {region.host_end:#x}) overlaps {what} [{r.base:#x}, {r.end:#x})",
                )
        for prev in memory:
            if _overlap(region.ipa, region.size, prev.ipa, prev.size):
                raise err(f"{m.where}.ipa", "overlaps an earlier memory region")
            if _overlap(region.host, region.size, prev.host, prev.size):
                raise err(f"{m.where}.host", "overlaps an earlier memory region")
        memory.append(region)
    return memory


def _images(top: Fields, memory: list[MemRegion]) -> tuple[Window, Window, Window, str, str]:
    """[image]: the kernel, initrd and dtb windows (in that order, each inside one memory region), cmdline, stdout."""
    err = top.error
    img = top.sub("image")
    kernel = (img.uint("kernel_load_ipa", align=0x20_0000), img.uint("kernel_max_size", positive=True))
    initrd = (img.uint("initrd_load_ipa", align=0x1000), img.uint("initrd_max_size", positive=True))
    dtb = (img.uint("dtb_load_ipa", align=8), img.uint("dtb_max_size", positive=True))
    cmdline = img.get("cmdline", str)
    stdout = img.get("stdout", str)
    img.done()
    windows = [("kernel", kernel), ("initrd", initrd), ("dtb", dtb)]
    for what, (ipa, size) in windows:
        if not any(m.ipa <= ipa and ipa + size <= m.ipa_end for m in memory):
            raise err(
                f"image.{what}_load_ipa",
                f"[{ipa:#x}, {ipa + size:#x}) ({what}_load_ipa + {what}_max_size) is not inside one memory region",
            )
    for (wa, (a, a_size)), (wb, (b, _)) in zip(windows, windows[1:], strict=False):
        if a + a_size > b:
            raise err(
                f"image.{wb}_load_ipa",
                f"{b:#x} is inside the {wa} window [{a:#x}, {a + a_size:#x}): "
                "the kernel, initrd and dtb windows must follow each other",
            )
    if dtb[0] + dtb[1] > 1 << 32:
        raise err("image.dtb_load_ipa", "the device tree must lie below 4 GiB")
    if not cmdline.strip():
        raise err("image.cmdline", "is empty")
    return kernel, initrd, dtb, cmdline, stdout


def _emulated(top: Fields, board: Board) -> list[EmulatedDevice]:
    """[[emulated]]: the virtual interrupt controllers (and the statistics page) of both IRQ modes."""
    err = top.error
    emulated: list[EmulatedDevice] = []
    for entry in top.table_list("emulated"):
        ename = entry.get("name", str)
        if ename not in EMULATED_KINDS:
            raise err(f"{entry.where}.name", f"{ename!r} is not one of {', '.join(EMULATED_KINDS)}")
        mode = entry.get("irq_mode", str)
        if mode != EMULATED_KINDS[ename]:
            raise err(f"{entry.where}.irq_mode", f"{ename} belongs to irq mode {EMULATED_KINDS[ename]!r}, not {mode!r}")
        emu = EmulatedDevice(
            ename,
            mode,
            entry.uint("base", align=0x1000),
            entry.uint("size", positive=True),
            entry.uint("num_sources", 0),
            entry.uint("num_ids", 0),
            entry.uint("irq", 0),
        )
        entry.done()
        if ename == "virtio_console":
            if emu.size != 0x1000:
                raise err(f"{entry.where}.size", f"a virtio-mmio window is 0x1000 bytes, not {emu.size:#x}")
            if not 1 <= emu.irq < min(board.plic_num_sources, board.aplic_num_sources):
                raise err(f"{entry.where}.irq", f"{emu.irq} is not a source of the virtual interrupt controller")
        elif emu.irq:
            raise err(f"{entry.where}.irq", f"only a virtio_console has a wired interrupt, not a {ename}")
        limit = {"plic": board.plic_num_sources, "aplic": board.aplic_num_sources}.get(ename)
        if limit is not None and not 2 <= emu.num_sources <= limit:
            raise err(f"{entry.where}.num_sources", f"must be 2..{limit} (the board's {ename}), not {emu.num_sources}")
        if ename == "imsic":
            if emu.size != board.imsic_page_size:
                why = f"one IMSIC page per vCPU: {board.imsic_page_size:#x}, not {emu.size:#x}"
                raise err(f"{entry.where}.size", why)
            if not 63 <= emu.num_ids <= 2047 or emu.num_ids % 64 != 63:
                raise err(f"{entry.where}.num_ids", f"must be 63, 127, ..., 2047 (64*k - 1), not {emu.num_ids}")
        elif emu.num_ids:
            raise err(f"{entry.where}.num_ids", f"only an imsic has interrupt identities, not a {ename}")
        if any(d.name == ename for d in emulated):
            raise err(f"{entry.where}.name", f"a second {ename}")
        emulated.append(emu)
    for mode, needed in (("plic", ("plic",)), ("aia", ("aplic", "imsic"))):
        for n in needed:
            if not any(d.name == n for d in emulated):
                raise err("emulated", f"no {n!r} entry: irq mode {mode!r} needs one")
    return emulated


def _passthrough(
    top: Fields, board: Board, memory: list[MemRegion], emulated: list[EmulatedDevice]
) -> list[PassthroughDevice]:
    """[[passthrough]]: devices of the board given to the MVM, each checked against the board's own device."""
    err = top.error
    board_devices: dict[str, list[tuple[int, int, int]]] = {
        "uart": [(board.uart.base, board.uart.size, board.uart_irq)],
        "rtc": [(board.rtc.base, board.rtc.size, board.rtc_irq)],
        "virtio_mmio": [(v.base, v.size, v.irq) for v in board.virtio_mmio],
    }
    passthrough: list[PassthroughDevice] = []
    for p in top.table_list("passthrough"):
        pname = p.get("name", str)
        if pname not in board_devices:
            raise err(
                f"{p.where}.name", f"{pname!r} is not a device of board {board.name!r} ({', '.join(board_devices)})"
            )
        pt = PassthroughDevice(
            pname,
            p.strings("compatible"),
            p.uint("base", align=4),
            p.uint("size", positive=True),
            p.uint("irq", 0),
            p.uint("clock_frequency", 0),
        )
        p.done()
        if not pt.compatible:
            raise err(f"{p.where}.compatible", "must name at least one compatible string")
        match = [d for d in board_devices[pname] if d[0] == pt.base]
        if not match:
            known = ", ".join(f"{b:#x}" for b, _, _ in board_devices[pname])
            raise err(f"{p.where}.base", f"{pt.base:#x} is not the board's {pname} (at {known})")
        _, bsize, birq = match[0]
        if pt.size != bsize:
            raise err(f"{p.where}.size", f"{pt.size:#x} but the board's {pname} at {pt.base:#x} is {bsize:#x}")
        if pt.irq != birq:
            raise err(f"{p.where}.irq", f"{pt.irq} but the board's {pname} at {pt.base:#x} has irq {birq}")
        for other in passthrough:
            if other.base == pt.base:
                raise err(f"{p.where}.base", f"{pt.base:#x} is passed through twice")
            if pt.irq and other.irq == pt.irq:
                raise err(f"{p.where}.irq", f"irq {pt.irq} is already {other.name}@{other.base:#x}'s")
        for ctl in emulated:
            if pt.irq and ctl.irq == pt.irq:
                raise err(f"{p.where}.irq", f"irq {pt.irq} is the emulated {ctl.name}'s")
            if pt.irq >= ctl.num_sources > 0:
                raise err(f"{p.where}.irq", f"{pt.irq} is beyond the {ctl.name}'s {ctl.num_sources} sources")
        for region in memory:
            if _overlap(pt.base, pt.size, region.ipa, region.size):
                raise err(f"{p.where}.base", "overlaps the MVM's memory")
        passthrough.append(pt)
    return passthrough


def _check_controllers(
    top: Fields,
    emulated: list[EmulatedDevice],
    memory: list[MemRegion],
    passthrough: list[PassthroughDevice],
    vcpus: int,
) -> None:
    """The guest's interrupt controllers and emulated devices must not sit on its RAM, a device or each other."""
    err = top.error
    for ctl in emulated:
        span = ctl.size * vcpus if ctl.name == "imsic" else ctl.size
        for region in memory:
            if _overlap(ctl.base, span, region.ipa, region.size):
                raise err("emulated", f"the {ctl.name} at {ctl.base:#x} overlaps the MVM's memory")
        for d in passthrough:
            if _overlap(ctl.base, span, d.base, d.size):
                raise err("emulated", f"the {ctl.name} at {ctl.base:#x} overlaps passthrough {d.name}@{d.base:#x}")
        for other in emulated:
            ospan = other.size * vcpus if other.name == "imsic" else other.size
            if (
                other is not ctl
                and other.irq_mode in (ctl.irq_mode, "any")
                and _overlap(ctl.base, span, other.base, ospan)
            ):
                raise err("emulated", f"the {ctl.name} at {ctl.base:#x} overlaps the {other.name} at {other.base:#x}")


def load_mvm(board: str | Board = "qemu-virt", path: Path | None = None) -> MvmConfig:
    """Read and check the board's `mvm.toml` (next to its board.toml; or `path`) against the board it runs on.
    `board` is a Board, or what `load_board` takes (a name under boards/ or a board directory)."""
    if not isinstance(board, Board):
        board = load_board(board)
    path = Path(path) if path is not None else board.path.parent / "mvm.toml"
    if not path.is_file():
        raise MvmError(f"board {board.name!r} has no MVM description ({shown_path(path)} is missing)")
    fname = shown_path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise MvmError(f"{fname}: {e}") from None
    top = _Fields(fname, doc, "")
    err = top.error

    name = top.get("name", str)
    vm_id = top.uint("vm_id")
    if vm_id != 0:
        raise err("vm_id", f"the MVM is VM 0, not {vm_id}")
    description = top.get("description", str, "")

    vcpus, harts, mmu_type, isa_remove, isa_remove_plic = _cpu(top, board)
    memory = _memory(top, board)
    kernel, initrd, dtb, cmdline, stdout = _images(top, memory)
    emulated = _emulated(top, board)
    passthrough = _passthrough(top, board, memory, emulated)
    if not any(d.name == stdout for d in passthrough):
        raise err("image.stdout", f"{stdout!r} is not a passthrough device")
    top.done()
    _check_controllers(top, emulated, memory, passthrough, vcpus)
    return MvmConfig(
        board=board,
        path=path,
        name=name,
        vm_id=vm_id,
        description=description,
        vcpus=vcpus,
        harts=harts,
        mmu_type=mmu_type,
        isa_remove=isa_remove,
        isa_remove_plic=isa_remove_plic,
        memory=tuple(memory),
        kernel_load_ipa=kernel[0],
        kernel_max_size=kernel[1],
        initrd_load_ipa=initrd[0],
        initrd_max_size=initrd[1],
        dtb_load_ipa=dtb[0],
        dtb_max_size=dtb[1],
        cmdline=cmdline,
        stdout=stdout,
        emulated=tuple(emulated),
        passthrough=tuple(passthrough),
    )


def check_images(cfg: MvmConfig, kernel_size: int, initrd_size: int) -> None:
    """Check that a kernel (its header's image_size, bss included) and an initramfs fit their load windows."""
    if kernel_size > cfg.kernel_max_size:
        raise MvmError(f"the kernel needs {kernel_size:#x} bytes but image.kernel_max_size is {cfg.kernel_max_size:#x}")
    if initrd_size > cfg.initrd_max_size:
        raise MvmError(f"the initramfs is {initrd_size:#x} bytes but image.initrd_max_size is {cfg.initrd_max_size:#x}")


def mvm_constants(cfg: MvmConfig) -> list[tuple[str, int, str]]:
    """(NAME, value, comment) for the generated board constants the hypervisor needs to build VM 0."""
    mem = cfg.memory[0]
    return [
        ("MVM_NUM_VCPUS", cfg.vcpus, ""),
        ("MVM_HART_MASK", cfg.hart_mask, "physical harts running the MVM's vCPUs (vCPU i on the i-th set bit)"),
        ("MVM_MEM_IPA", mem.ipa, ""),
        ("MVM_MEM_HOST", mem.host, ""),
        ("MVM_MEM_SIZE", mem.size, ""),
        ("MVM_KERNEL_IPA", cfg.kernel_load_ipa, "entry point: a0 = vCPU id, a1 = MVM_DTB_IPA"),
        ("MVM_INITRD_IPA", cfg.initrd_load_ipa, ""),
        ("MVM_DTB_IPA", cfg.dtb_load_ipa, ""),
    ]
