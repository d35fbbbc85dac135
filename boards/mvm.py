"""The management VM (VM 0): its description as board data (`boards/<board>/mvm.toml`) and its device tree.

`load_mvm(board)` reads and checks the TOML against the board (`board.toml`): every problem is one `MvmError`
naming the field (`cpu.harts[1]`, `passthrough[3].irq`, ...) and the reason. `mvm_device_tree(cfg, irq, ...)`
builds the flattened device tree the MVM's Linux boots with, with the `fdt` package: only what the MVM owns
(its vCPUs, its RAM, its passthrough devices and its virtual interrupt controllers), phandles from a counter, and
a `riscv,isa` that is the host hart's minus what the hypervisor does not give the guest.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import fdt

from boards import IRQ_MODES, Board, BoardError, Fields, load_board, mem_bytes, shown_path

# What QEMU 10 puts in every cpu node for `-M virt,aia=aplic-imsic -cpu rv64` (read from its `dumpdtb=`; without
# `aia=` QEMU leaves out smaia/ssaia, which PLIC mode removes anyway). A build for another CPU model passes its own
# string (see `host_cpu_from_qemu`).
QEMU_RV64_ISA = (
    "rv64imafdch_zic64b_zicbom_zicbop_zicboz_ziccamoa_ziccif_zicclsm_ziccrse_zicntr_zicsr_zifencei_zihintntl"
    "_zihintpause_zihpm_zmmul_za64rs_zaamo_zalrsc_zawrs_zfa_zca_zcd_zba_zbb_zbc_zbs_shcounterenw_shgatpa_shtvala"
    "_shvsatpa_shvstvala_shvstvecd_smaia_ssaia_ssccptr_sscounterenw_sstc_sstvala_sstvecd_ssu64xl_svadu_svvptc"
)
QEMU_CBO_BLOCK_SIZE = 64  # riscv,cbo{m,p,z}-block-size of QEMU's rv64

MMU_TYPES = ("riscv,sv39", "riscv,sv48", "riscv,sv57")
# name -> the IRQ mode it belongs to ("any": both). "stats" is the hypervisor's read-only statistics page
# (per-vCPU exit counters), left out of the device tree so no driver claims it and /dev/mem can read it.
EMULATED_KINDS = {"plic": "plic", "aplic": "aia", "imsic": "aia", "stats": "any"}
IRQ_S_EXT = 9  # scause interrupt codes, the cells of a cpu-intc specifier
IRQ_M_EXT = 11
IRQ_TYPE_LEVEL_HIGH = 4  # second cell of an APLIC interrupt specifier
UART_CLOCK_DEFAULT = 0x38_4000
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

    # vCPUs and harts
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

    # memory
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

    # images
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

    # emulated interrupt controllers
    emulated: list[EmulatedDevice] = []
    for e in top.table_list("emulated"):
        ename = e.get("name", str)
        if ename not in EMULATED_KINDS:
            raise err(f"{e.where}.name", f"{ename!r} is not one of {', '.join(EMULATED_KINDS)}")
        mode = e.get("irq_mode", str)
        if mode != EMULATED_KINDS[ename]:
            raise err(f"{e.where}.irq_mode", f"{ename} belongs to irq mode {EMULATED_KINDS[ename]!r}, not {mode!r}")
        dev = EmulatedDevice(
            ename,
            mode,
            e.uint("base", align=0x1000),
            e.uint("size", positive=True),
            e.uint("num_sources", 0),
            e.uint("num_ids", 0),
        )
        e.done()
        limit = {"plic": board.plic_num_sources, "aplic": board.aplic_num_sources}.get(ename)
        if limit is not None and not 2 <= dev.num_sources <= limit:
            raise err(f"{e.where}.num_sources", f"must be 2..{limit} (the board's {ename}), not {dev.num_sources}")
        if ename == "imsic":
            if dev.size != board.imsic_page_size:
                raise err(f"{e.where}.size", f"one IMSIC page per vCPU: {board.imsic_page_size:#x}, not {dev.size:#x}")
            if not 63 <= dev.num_ids <= 2047 or dev.num_ids % 64 != 63:
                raise err(f"{e.where}.num_ids", f"must be 63, 127, ..., 2047 (64*k - 1), not {dev.num_ids}")
        elif dev.num_ids:
            raise err(f"{e.where}.num_ids", f"only an imsic has interrupt identities, not a {ename}")
        if any(d.name == ename for d in emulated):
            raise err(f"{e.where}.name", f"a second {ename}")
        emulated.append(dev)
    for mode, needed in (("plic", ("plic",)), ("aia", ("aplic", "imsic"))):
        for n in needed:
            if not any(d.name == n for d in emulated):
                raise err("emulated", f"no {n!r} entry: irq mode {mode!r} needs one")

    # passthrough devices, each checked against the board's own device
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
        dev = PassthroughDevice(
            pname,
            p.strings("compatible"),
            p.uint("base", align=4),
            p.uint("size", positive=True),
            p.uint("irq", 0),
            p.uint("clock_frequency", 0),
        )
        p.done()
        if not dev.compatible:
            raise err(f"{p.where}.compatible", "must name at least one compatible string")
        match = [d for d in board_devices[pname] if d[0] == dev.base]
        if not match:
            known = ", ".join(f"{b:#x}" for b, _, _ in board_devices[pname])
            raise err(f"{p.where}.base", f"{dev.base:#x} is not the board's {pname} (at {known})")
        _, bsize, birq = match[0]
        if dev.size != bsize:
            raise err(f"{p.where}.size", f"{dev.size:#x} but the board's {pname} at {dev.base:#x} is {bsize:#x}")
        if dev.irq != birq:
            raise err(f"{p.where}.irq", f"{dev.irq} but the board's {pname} at {dev.base:#x} has irq {birq}")
        for prev in passthrough:
            if prev.base == dev.base:
                raise err(f"{p.where}.base", f"{dev.base:#x} is passed through twice")
            if dev.irq and prev.irq == dev.irq:
                raise err(f"{p.where}.irq", f"irq {dev.irq} is already {prev.name}@{prev.base:#x}'s")
        for ctl in emulated:
            if dev.irq >= ctl.num_sources > 0:
                raise err(f"{p.where}.irq", f"{dev.irq} is beyond the {ctl.name}'s {ctl.num_sources} sources")
        for m in memory:
            if _overlap(dev.base, dev.size, m.ipa, m.size):
                raise err(f"{p.where}.base", "overlaps the MVM's memory")
        passthrough.append(dev)
    if not any(d.name == stdout for d in passthrough):
        raise err("image.stdout", f"{stdout!r} is not a passthrough device")
    top.done()

    # the guest's interrupt controllers must not sit on its RAM or a device
    for ctl in emulated:
        span = ctl.size * vcpus if ctl.name == "imsic" else ctl.size
        for m in memory:
            if _overlap(ctl.base, span, m.ipa, m.size):
                raise err("emulated", f"the {ctl.name} at {ctl.base:#x} overlaps the MVM's memory")
        for d in passthrough:
            if _overlap(ctl.base, span, d.base, d.size):
                raise err("emulated", f"the {ctl.name} at {ctl.base:#x} overlaps passthrough {d.name}@{d.base:#x}")

    return MvmConfig(
        board=board,
        path=path,
        name=name,
        vm_id=vm_id,
        description=description,
        vcpus=vcpus,
        harts=tuple(harts_raw),
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


# ---------------------------------------------------------------------------------------------------------------
# The guest's ISA


@dataclass(frozen=True)
class GuestIsa:
    base: str  # "rv64"
    extensions: tuple[str, ...]  # single letters first (i, m, a, ...), then multi-letter ones in the host's order

    @property
    def isa_string(self) -> str:
        """`riscv,isa`: rv64 + single letters, then `_`-separated multi-letter extensions."""
        single = "".join(e for e in self.extensions if len(e) == 1)
        multi = [e for e in self.extensions if len(e) > 1]
        return "_".join([self.base + single, *multi])

    @property
    def isa_base(self) -> str:
        return self.base + "i"


def parse_isa(isa: str) -> GuestIsa:
    """Split an ISA string (`rv64imafdch_zicsr_...`) into its base and extension names, lower-case."""
    isa = isa.strip().lower()
    m = re.fullmatch(r"(rv32|rv64)([a-z]*)((?:_[a-z][a-z0-9]*)*)", isa)
    if not m or not m.group(2):
        raise MvmError(f"cannot read ISA string {isa!r}")
    single = m.group(2)
    if single.startswith("g"):
        single = "imafd" + single[1:]  # G = IMAFD (Zicsr and Zifencei are listed by QEMU explicitly)
    if single[0] not in "ie":
        raise MvmError(f"ISA string {isa!r} does not start with the i or e base")
    multi = [x for x in m.group(3).split("_") if x]
    return GuestIsa(m.group(1), tuple(dict.fromkeys([*single, *multi])))


def guest_isa(cfg: MvmConfig, irq: str, host_isa: str = QEMU_RV64_ISA) -> GuestIsa:
    """The host hart's ISA minus what the MVM does not get (`cpu.isa.remove`, and `remove_plic` with the PLIC)."""
    host = parse_isa(host_isa)
    patterns = cfg.isa_remove + (cfg.isa_remove_plic if irq == "plic" else ())
    kept = tuple(e for e in host.extensions if not any(fnmatch.fnmatchcase(e, p) for p in patterns))
    if "i" not in kept:
        raise MvmError("cpu.isa.remove removes the base integer ISA 'i'")
    return GuestIsa(host.base, kept)


@dataclass(frozen=True)
class HostCpu:
    isa: str
    mmu_type: str
    cbo_block_size: int


def qemu_device_tree(
    qemu: str = "qemu-system-riscv64", machine: str = "virt", cpu: str = "rv64", smp: int = 1, mem: str = "128M"
) -> bytes:
    """QEMU's own device tree (`-M <machine>,dumpdtb=`) for that machine, -cpu, -smp and -m. Raises what
    subprocess.run raises (OSError, CalledProcessError with QEMU's stderr, TimeoutExpired)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "qemu.dtb"
        subprocess.run(
            [qemu, "-M", f"{machine},dumpdtb={out}", "-cpu", cpu, "-smp", str(smp), "-m", mem, "-nographic"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return out.read_bytes()


def host_cpu_from_qemu(qemu: str = "qemu-system-riscv64", machine: str = "virt", cpu: str = "rv64") -> HostCpu:
    """What QEMU puts in cpu@0 of its own device tree for `-M <machine> -cpu <cpu>` (e.g. `rv64,svnapot=true`)."""
    tree = fdt.parse_dtb(qemu_device_tree(qemu, machine, cpu))
    node = tree.get_node("/cpus/cpu@0")
    size = node.get_property("riscv,cbom-block-size")
    return HostCpu(
        node.get_property("riscv,isa").value,
        node.get_property("mmu-type").value,
        size.value if size is not None else QEMU_CBO_BLOCK_SIZE,
    )


# ---------------------------------------------------------------------------------------------------------------
# The device tree


class _Phandles:
    """Phandles handed out in order as nodes are created: never a hard-coded number."""

    def __init__(self) -> None:
        self.next = 1

    def take(self, node: fdt.Node) -> int:
        value = self.next
        self.next += 1
        node.append(fdt.PropWords("phandle", value))
        return value


def _node(name: str, *props: fdt.Property) -> fdt.Node:
    n = fdt.Node(name)
    for p in props:
        n.append(p)
    return n


def _cells64(*values: int) -> list[int]:
    """64-bit values as pairs of 32-bit cells (#address-cells = #size-cells = 2)."""
    out: list[int] = []
    for v in values:
        out += [(v >> 32) & 0xFFFF_FFFF, v & 0xFFFF_FFFF]
    return out


def mvm_device_tree(
    cfg: MvmConfig,
    irq: str,
    aia_guests: int = 0,
    host_isa: str = QEMU_RV64_ISA,
    *,
    initrd_size: int = 0,
    cbo_block_size: int = QEMU_CBO_BLOCK_SIZE,
    model: str = "riscv-virtio,pyshyper-mvm",
) -> bytes:
    """The MVM's flattened device tree (DTB, version 17) for one IRQ mode.

    `aia_guests` is the build's number of guest interrupt files per hart (AIA mode needs one for the MVM; the
    guest itself sees one IMSIC page per vCPU and no guest-index bits). `initrd_size` is the size of the
    initramfs loaded at `image.initrd_load_ipa` (0: no `linux,initrd-*` properties).
    """
    if irq not in IRQ_MODES:
        raise MvmError(f"irq mode must be one of {', '.join(IRQ_MODES)}, not {irq!r}")
    if irq == "aia" and not 1 <= aia_guests <= cfg.board.imsic_max_guests:
        raise MvmError(
            f"AIA mode needs 1..{cfg.board.imsic_max_guests} guest interrupt files per hart for the "
            f"MVM's IMSIC pages, not {aia_guests}"
        )
    if not 0 <= initrd_size <= cfg.initrd_max_size:
        raise MvmError(f"initrd_size {initrd_size:#x} does not fit image.initrd_max_size {cfg.initrd_max_size:#x}")
    isa = guest_isa(cfg, irq, host_isa)
    ctl = cfg.emulated_for(irq)
    ph = _Phandles()
    tree = fdt.FDT()
    root = tree.root
    for p in (
        fdt.PropWords("#address-cells", 2),
        fdt.PropWords("#size-cells", 2),
        fdt.PropStrings("compatible", "riscv-virtio"),
        fdt.PropStrings("model", model),
    ):
        root.append(p)

    # /chosen, /aliases
    stdout_path = f"/soc/{cfg.stdout_device.node_name}"
    chosen = _node("chosen", fdt.PropStrings("bootargs", cfg.cmdline), fdt.PropStrings("stdout-path", stdout_path))
    if initrd_size:
        chosen.append(fdt.PropWords("linux,initrd-start", *_cells64(cfg.initrd_load_ipa)))
        chosen.append(fdt.PropWords("linux,initrd-end", *_cells64(cfg.initrd_load_ipa + initrd_size)))
    root.append(chosen)
    root.append(_node("aliases", fdt.PropStrings("serial0", stdout_path)))

    # /memory@...
    for m in cfg.memory:
        root.append(
            _node(
                f"memory@{m.ipa:x}",
                fdt.PropStrings("device_type", "memory"),
                fdt.PropWords("reg", *_cells64(m.ipa, m.size)),
            )
        )

    # /cpus
    cpus = _node(
        "cpus",
        fdt.PropWords("#address-cells", 1),
        fdt.PropWords("#size-cells", 0),
        fdt.PropWords("timebase-frequency", cfg.board.timebase_frequency),
    )
    cpu_phandles: list[int] = []
    intc: list[int] = []
    for i in range(cfg.vcpus):
        cpu = fdt.Node(f"cpu@{i:x}")
        cpu_phandles.append(ph.take(cpu))
        for p in (
            fdt.PropStrings("device_type", "cpu"),
            fdt.PropWords("reg", i),
            fdt.PropStrings("status", "okay"),
            fdt.PropStrings("compatible", "riscv"),
            fdt.PropStrings("riscv,isa", isa.isa_string),
            fdt.PropStrings("riscv,isa-base", isa.isa_base),
            fdt.PropStrings("riscv,isa-extensions", *isa.extensions),
            fdt.PropStrings("mmu-type", cfg.mmu_type),
        ):
            cpu.append(p)
        for ext in ("zicbom", "zicbop", "zicboz"):
            if ext in isa.extensions:
                cpu.append(fdt.PropWords(f"riscv,{ext[2:]}-block-size", cbo_block_size))
        ic = _node(
            "interrupt-controller",
            fdt.PropWords("#interrupt-cells", 1),
            fdt.Property("interrupt-controller"),
            fdt.PropStrings("compatible", "riscv,cpu-intc"),
        )
        intc.append(ph.take(ic))
        cpu.append(ic)
        cpus.append(cpu)
    cluster = fdt.Node("cluster0")
    for i, p in enumerate(cpu_phandles):
        cluster.append(_node(f"core{i}", fdt.PropWords("cpu", p)))
    cpus.append(_node("cpu-map", cluster))
    root.append(cpus)

    # /soc: the virtual interrupt controller(s), then the passthrough devices
    soc = _node(
        "soc",
        fdt.PropWords("#address-cells", 2),
        fdt.PropWords("#size-cells", 2),
        fdt.PropStrings("compatible", "simple-bus"),
        fdt.Property("ranges"),
    )
    if irq == "plic":
        plic = ctl["plic"]
        node = fdt.Node(f"interrupt-controller@{plic.base:x}")
        irq_parent = ph.take(node)
        ext: list[int] = []
        for p in intc:  # context 2*i: vCPU i's M-level context, 2*i+1: its S-level one (QEMU's layout)
            ext += [p, IRQ_M_EXT, p, IRQ_S_EXT]
        for p in (
            fdt.PropWords("#address-cells", 0),
            fdt.PropWords("#interrupt-cells", 1),
            fdt.Property("interrupt-controller"),
            fdt.PropStrings("compatible", "sifive,plic-1.0.0", "riscv,plic0"),
            fdt.PropWords("reg", *_cells64(plic.base, plic.size)),
            fdt.PropWords("interrupts-extended", *ext),
            fdt.PropWords("riscv,ndev", plic.num_sources - 1),
        ):  # sources 1..n-1, as QEMU says
            node.append(p)
        soc.append(node)
    else:
        imsic, aplic = ctl["imsic"], ctl["aplic"]
        inode = fdt.Node(f"interrupt-controller@{imsic.base:x}")
        imsic_ph = ph.take(inode)
        ext = []
        for p in intc:
            ext += [p, IRQ_S_EXT]
        for p in (
            fdt.PropWords("#interrupt-cells", 0),
            fdt.Property("interrupt-controller"),
            fdt.Property("msi-controller"),
            fdt.PropStrings("compatible", "qemu,imsics", "riscv,imsics"),
            fdt.PropWords("reg", *_cells64(imsic.base, imsic.size * cfg.vcpus)),
            fdt.PropWords("interrupts-extended", *ext),
            fdt.PropWords("riscv,num-ids", imsic.num_ids),
        ):
            inode.append(p)
        soc.append(inode)
        anode = fdt.Node(f"interrupt-controller@{aplic.base:x}")
        irq_parent = ph.take(anode)
        for p in (
            fdt.PropWords("#address-cells", 0),
            fdt.PropWords("#interrupt-cells", 2),
            fdt.Property("interrupt-controller"),
            fdt.PropStrings("compatible", "qemu,aplic", "riscv,aplic"),
            fdt.PropWords("reg", *_cells64(aplic.base, aplic.size)),
            fdt.PropWords("msi-parent", imsic_ph),
            fdt.PropWords("riscv,num-sources", aplic.num_sources),
        ):
            anode.append(p)
        soc.append(anode)

    for d in cfg.passthrough:
        node = _node(
            d.node_name, fdt.PropStrings("compatible", *d.compatible), fdt.PropWords("reg", *_cells64(d.base, d.size))
        )
        if d.name == "uart":
            node.append(fdt.PropWords("clock-frequency", d.clock_frequency or UART_CLOCK_DEFAULT))
        elif d.clock_frequency:
            node.append(fdt.PropWords("clock-frequency", d.clock_frequency))
        if d.irq:
            node.append(fdt.PropWords("interrupt-parent", irq_parent))
            cells = [d.irq] if irq == "plic" else [d.irq, IRQ_TYPE_LEVEL_HIGH]
            node.append(fdt.PropWords("interrupts", *cells))
        soc.append(node)
    root.append(soc)

    blob = tree.to_dtb(version=17, boot_cpuid_phys=0)
    if len(blob) > cfg.dtb_max_size:
        raise MvmError(f"the MVM device tree is {len(blob)} bytes but image.dtb_max_size is {cfg.dtb_max_size}")
    return blob
