"""GVM configs: Rust-Shyper's JSON fields, checked against the schema tables below, then across fields.

`load_config(obj, base_dir)` returns a `VmConfig` or raises `ConfigErrors`, whose entries each name the field path
and the reason (`memory.region[0].length: not a multiple of 4096`). Nothing is changed by a refused config.

Numbers are JSON integers or strings as Rust-Shyper writes them: "0x8000_0000"-less hex ("0x80000000"), binary
("0b0100") or decimal. The device lists are accepted flat (`emulated_device_list`) and in Rust-Shyper's nesting
(`emulated_device.emulated_device_list`). Relative file names resolve against the config file's directory;
`VmConfig.stored_json()` is the config with those names made absolute (what the hypervisor keeps for
VM_CONFIG_GET, so that a restarted daemon finds the files again).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from shyper import board

MiB = 1 << 20
DTB_MAX_SIZE = 0x1_0000  # room kept for the device tree at image.device_tree_load_ipa (generated or given)
CMDLINE_MAX = 1024  # Linux riscv COMMAND_LINE_SIZE
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}")  # also the GVM's hostname
NUMBER_RE = re.compile(r"0x[0-9a-fA-F]+|0b[01]+|[0-9]+")
MAX_REGIONS = 4
MAX_CONFIG_BYTES = 8192
PRIORITY_MAX = 255  # cpu.priority: a higher number preempts a lower one on a shared hart
TIME_SLICE_DEFAULT_MS = 10  # cpu.time_slice_ms: the hypervisor's round-robin slice among equal priorities
TIME_SLICE_MAX_MS = 1000

VM_TYPES = ("VM_T_LINUX", "VM_T_BARE_METAL")
EMU_PLIC = "EMU_DEVICE_T_PLIC"
EMU_APLIC = "EMU_DEVICE_T_APLIC"
EMU_CONSOLE = "EMU_DEVICE_T_VIRTIO_CONSOLE"
EMU_SUPPORTED = (EMU_PLIC, EMU_APLIC, EMU_CONSOLE)
# Rust-Shyper's other device types: known, refused with the reason
EMU_NOT_SUPPORTED = {
    "EMU_DEVICE_T_CONSOLE": "use EMU_DEVICE_T_VIRTIO_CONSOLE (the GVM's console is virtio)",
    "EMU_DEVICE_T_GICD": "an Arm GIC distributor: this is RISC-V (EMU_DEVICE_T_PLIC or EMU_DEVICE_T_APLIC)",
    "EMU_DEVICE_T_GICR": "an Arm GIC redistributor: this is RISC-V",
    "EMU_DEVICE_T_GPPT": "an Arm GIC partial passthrough: this is RISC-V",
    "EMU_DEVICE_T_SGIR": "an Arm GIC register: this is RISC-V",
    "EMU_DEVICE_T_SRE": "an Arm GIC register: this is RISC-V",
    "EMU_DEVICE_T_VIRTIO_BLK": "virtio-blk is not served to GVMs yet",
    "EMU_DEVICE_T_VIRTIO_BLK_MEDIATED": "mediated virtio-blk disks are not served yet",
    "EMU_DEVICE_T_VIRTIO_NET": "virtio-net is not served to GVMs yet",
    "EMU_DEVICE_T_SHYPER": "Rust-Shyper's kernel-module device: PyShyper uses the control port instead",
    "EMU_DEVICE_T_IOMMU": "there is no IOMMU on this board",
    "EMU_DEVICE_T_META": "not supported",
}


class ConfigError(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


class ConfigErrors(Exception):
    """Every problem found in a config, each a `ConfigError` naming its field."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


# The schema tables --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    min: int = 0
    max: int = (1 << 64) - 1
    align: int = 1


@dataclass(frozen=True)
class Text:
    max_len: int = 4096
    pattern: re.Pattern[str] | None = None
    pattern_doc: str = ""


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]


@dataclass(frozen=True)
class Items:
    item: Spec
    min: int = 0
    max: int = 64


@dataclass(frozen=True)
class Obj:
    fields: dict[str, Spec]
    required: frozenset[str] = frozenset()
    refused: dict[str, str] = field(default_factory=dict)  # known fields we do not take, with the reason


Spec = Num | Text | OneOf | Items | Obj

ANY_NUMBER = Num()
U32 = Num(max=(1 << 32) - 1)

REGION = Obj(
    {"ipa_start": Num(max=board.IPA_LIMIT - 1, align=board.PAGE_SIZE), "length": Num(min=1, align=board.PAGE_SIZE)},
    frozenset({"ipa_start", "length"}),
)

EMULATED_DEVICE = Obj(
    {
        "name": Text(max_len=64),
        "type": Text(max_len=64),
        "base_ipa": Num(max=board.IPA_LIMIT - 1, align=board.PAGE_SIZE),
        "length": Num(min=1, align=board.PAGE_SIZE),
        "irq_id": Num(max=1023),
        "cfg_num": Num(max=64),
        "cfg_list": Items(ANY_NUMBER, max=64),
    },
    frozenset({"type", "base_ipa", "length"}),
)

PASSTHROUGH_DEVICE = Obj(
    {
        "name": Text(max_len=64),
        "base_pa": ANY_NUMBER,
        "base_ipa": ANY_NUMBER,
        "length": ANY_NUMBER,
        "irq_num": Num(max=1024),
        "irq_list": Items(Num(max=1023), max=1024),
        "dev_property": Num(max=1),
    },
    frozenset({"base_pa", "length"}),
)

CONFIG = Obj(
    {
        "name": Text(max_len=31, pattern=NAME_RE, pattern_doc="1 .. 31 of A-Z a-z 0-9 . _ - (not starting with . _ -)"),
        "type": OneOf(VM_TYPES),
        "cmdline": Text(max_len=CMDLINE_MAX - 64),
        "image": Obj(
            {
                "kernel_filename": Text(max_len=1024),
                "kernel_load_ipa": Num(max=board.IPA_LIMIT - 1, align=board.PAGE_SIZE),
                "kernel_entry_point": Num(max=board.IPA_LIMIT - 1, align=2),
                "device_tree_filename": Text(max_len=1024),
                "device_tree_load_ipa": Num(max=board.IPA_LIMIT - 1, align=8),
                "ramdisk_filename": Text(max_len=1024),
                "ramdisk_load_ipa": Num(max=board.IPA_LIMIT - 1, align=board.PAGE_SIZE),
            },
            frozenset({"kernel_filename", "kernel_load_ipa", "kernel_entry_point", "device_tree_load_ipa"}),
        ),
        "memory": Obj({"region": Items(REGION, min=1, max=MAX_REGIONS)}, frozenset({"region"})),
        "cpu": Obj(
            {
                "num": Num(min=1, max=16),  # vCPU i on the (i mod k)-th of the k harts of allocate_bitmap
                "allocate_bitmap": Num(min=1, max=(1 << board.MAX_HARTS) - 1),
                "master": Num(max=board.MAX_HARTS - 1),
                "priority": Num(max=PRIORITY_MAX),
                "time_slice_ms": Num(min=1, max=TIME_SLICE_MAX_MS),
            },
            frozenset({"num", "allocate_bitmap", "master"}),
        ),
        "emulated_device_list": Items(EMULATED_DEVICE, max=8),
        "emulated_device": Obj(
            {"emulated_device_list": Items(EMULATED_DEVICE, max=8)}, frozenset({"emulated_device_list"})
        ),
        "passthrough_device_list": Items(PASSTHROUGH_DEVICE, max=16),
        "passthrough_device": Obj(
            {"passthrough_device_list": Items(PASSTHROUGH_DEVICE, max=16)}, frozenset({"passthrough_device_list"})
        ),
    },
    frozenset({"name", "image", "memory", "cpu"}),
    refused={
        "dtb_device": "not supported: the device tree is generated from this config, or given whole by "
        "image.device_tree_filename",
    },
)


def parse_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and NUMBER_RE.fullmatch(value.strip()):
        return int(value.strip(), 0) if value.strip()[:2] in ("0x", "0b") else int(value.strip(), 10)
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check(spec: Spec, value: Any, path: str, errors: list[ConfigError]) -> Any:
    """`value` checked against `spec`: numbers parsed, objects as dicts of checked values (absent optional fields
    left out). Problems are appended to `errors`; the result is None where the value was refused."""
    if isinstance(spec, Num):
        n = parse_number(value)
        if n is None:
            errors.append(ConfigError(path, f'{value!r} is not a number (an integer, or a "0x..", "0b.." string)'))
            return None
        if not spec.min <= n <= spec.max:
            errors.append(ConfigError(path, f"{_fmt(n)} is out of range {_fmt(spec.min)} .. {_fmt(spec.max)}"))
            return None
        if n % spec.align:
            errors.append(ConfigError(path, f"{_fmt(n)} is not a multiple of {spec.align}"))
            return None
        return n
    if isinstance(spec, Text):
        if not isinstance(value, str):
            errors.append(ConfigError(path, f"{value!r} is not a string"))
            return None
        if len(value) > spec.max_len or "\0" in value:
            errors.append(ConfigError(path, f"longer than {spec.max_len} characters or has a NUL"))
            return None
        if spec.pattern is not None and not spec.pattern.fullmatch(value):
            errors.append(ConfigError(path, f"{value!r} is not {spec.pattern_doc}"))
            return None
        return value
    if isinstance(spec, OneOf):
        if value not in spec.values:
            errors.append(ConfigError(path, f"{value!r} is not one of {', '.join(spec.values)}"))
            return None
        return value
    if isinstance(spec, Items):
        if not isinstance(value, list):
            errors.append(ConfigError(path, "not a list"))
            return None
        if not spec.min <= len(value) <= spec.max:
            errors.append(ConfigError(path, f"has {len(value)} entries, not {spec.min} .. {spec.max}"))
            return None
        return [check(spec.item, v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        errors.append(ConfigError(path, "not an object"))
        return None
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key in spec.refused:
            errors.append(ConfigError(_join(path, key), spec.refused[key]))
        elif key not in spec.fields:
            errors.append(ConfigError(_join(path, key), f"unknown field (known: {', '.join(spec.fields)})"))
        else:
            out[key] = check(spec.fields[key], v, _join(path, key), errors)
    for key in sorted(spec.required - value.keys()):
        errors.append(ConfigError(_join(path, key), "missing"))
    return out


def _fmt(n: int) -> str:
    return f"{n:#x}" if n >= 4096 else str(n)


# The checked config -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    ipa: int
    size: int

    @property
    def end(self) -> int:
        return self.ipa + self.size


@dataclass(frozen=True)
class Console:
    base: int
    irq: int


@dataclass
class VmConfig:
    name: str
    type: str
    cmdline: str
    kernel: str  # absolute file names
    kernel_ipa: int
    entry_ipa: int
    dtb_file: str | None  # None: generated
    dtb_ipa: int
    ramdisk: str | None
    ramdisk_ipa: int
    regions: list[Region]
    vcpus: int
    hart_mask: int
    master: int
    priority: int  # of each of its vCPUs (cpu.priority, 0 when not given)
    time_slice_ms: int | None  # cpu.time_slice_ms; None: the hypervisor's default (TIME_SLICE_DEFAULT_MS)
    console: Console
    irqc: str | None  # "plic" or "aia" when the config names its interrupt controller
    notes: list[str]
    stored: dict[str, Any]  # the config as given, file names made absolute

    @property
    def harts(self) -> list[int]:
        return [h for h in range(board.MAX_HARTS) if self.hart_mask >> h & 1]

    @property
    def memory(self) -> int:
        return sum(r.size for r in self.regions)

    def stored_json(self) -> bytes:
        raw = json.dumps(self.stored, separators=(",", ":")).encode()
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigErrors([ConfigError("", f"the config is {len(raw)} bytes as JSON, above {MAX_CONFIG_BYTES}")])
        return raw

    def region_of(self, ipa: int, size: int = 1) -> Region | None:
        for r in self.regions:
            if r.ipa <= ipa and ipa + size <= r.end:
                return r
        return None


def irqc_ranges(mode: str | None, vcpus: int) -> list[tuple[str, int, int]]:
    """The interrupt controllers the hypervisor puts in a GVM in `mode` (both modes' when None): name, base, size."""
    out = []
    if mode in (None, "plic"):
        out.append(("the PLIC", board.PLIC_BASE, board.PLIC_SIZE))
    if mode in (None, "aia"):
        out.append(("the APLIC", board.APLIC_BASE, board.APLIC_SIZE))
        out.append(("the IMSIC pages", board.IMSIC_BASE, vcpus * board.IMSIC_PAGE))
    return out


def load_config_file(path: str, irq_mode: str | None = None, harts: int | None = None) -> VmConfig:
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except OSError as e:
        raise ConfigErrors([ConfigError("", f"cannot read {path}: {e.strerror}")]) from e
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigErrors([ConfigError("", f"{path} is not JSON: {e}")]) from e
    return load_config(obj, os.path.dirname(os.path.abspath(path)), irq_mode, harts)


def load_config(obj: Any, base_dir: str, irq_mode: str | None = None, harts: int | None = None) -> VmConfig:
    """Check a parsed JSON config. `irq_mode` ("plic"/"aia") and `harts` are the hypervisor's, when known."""
    errors: list[ConfigError] = []
    c = check(CONFIG, obj, "", errors)
    if c is None:
        raise ConfigErrors(errors)

    def bad(path: str, reason: str) -> None:
        errors.append(ConfigError(path, reason))

    # device lists, flat or nested
    emulated, emu_path = _device_list(c, "emulated_device", bad)
    passthrough, pt_path = _device_list(c, "passthrough_device", bad)

    # files
    image = c.get("image") or {}
    stored = json.loads(json.dumps(obj))
    sizes: dict[str, int] = {}
    for key, required in (("kernel_filename", True), ("device_tree_filename", False), ("ramdisk_filename", False)):
        name = image.get(key)
        if not name:
            if required and name is not None:
                bad(f"image.{key}", "empty: a kernel is needed")
            continue
        full = os.path.normpath(os.path.join(base_dir, name))
        stored["image"][key] = full
        try:
            st = os.stat(full)
        except OSError as e:
            bad(f"image.{key}", f"{full}: {e.strerror}")
            continue
        if not os.path.isfile(full):
            bad(f"image.{key}", f"{full} is not a regular file")
        elif not os.access(full, os.R_OK):
            bad(f"image.{key}", f"{full} is not readable")
        elif st.st_size == 0:
            bad(f"image.{key}", f"{full} is empty")
        else:
            sizes[key] = st.st_size
    if image.get("ramdisk_filename") and "ramdisk_load_ipa" not in image:
        bad("image.ramdisk_load_ipa", "missing (image.ramdisk_filename is given)")
    if sizes.get("device_tree_filename", 0) > DTB_MAX_SIZE:
        bad("image.device_tree_filename", f"{sizes['device_tree_filename']} bytes, above {DTB_MAX_SIZE}")

    # memory
    regions: list[Region] = []
    for i, r in enumerate((c.get("memory") or {}).get("region") or []):
        if not r or r.get("ipa_start") is None or r.get("length") is None:
            continue
        reg = Region(r["ipa_start"], r["length"])
        if reg.end > board.IPA_LIMIT:
            bad(f"memory.region[{i}]", f"ends at {reg.end:#x}, above the guest-physical limit {board.IPA_LIMIT:#x}")
            continue
        for j, other in enumerate(regions):
            if reg.ipa < other.end and other.ipa < reg.end:
                bad(f"memory.region[{i}]", f"overlaps region {j}")
                break
        else:
            regions.append(reg)

    # cpu
    cpu = c.get("cpu") or {}
    num, bitmap, master = cpu.get("num"), cpu.get("allocate_bitmap"), cpu.get("master")
    if num is not None and bitmap is not None and bin(bitmap).count("1") > num:
        bad("cpu.allocate_bitmap", f"{bitmap:#b} has {bin(bitmap).count('1')} harts, more than cpu.num {num}")
    if bitmap is not None and master is not None and not bitmap >> master & 1:
        bad("cpu.master", f"hart {master} is not in cpu.allocate_bitmap {bitmap:#b}")
    if bitmap is not None and harts is not None and bitmap >> harts:
        bad("cpu.allocate_bitmap", f"{bitmap:#b} names a hart above {harts - 1} (the machine has {harts} harts)")
    vcpus = num or 1

    # emulated devices
    console: Console | None = None
    irqc: str | None = None
    notes: list[str] = []
    device_ranges: list[tuple[str, int, int]] = []
    for i, d in enumerate(emulated):
        p = f"{emu_path}[{i}]"
        if not d or d.get("type") is None:
            continue
        t = d["type"]
        if d.get("cfg_num") is not None and d.get("cfg_list") is not None and d["cfg_num"] != len(d["cfg_list"]):
            bad(f"{p}.cfg_num", f"{d['cfg_num']} but cfg_list has {len(d['cfg_list'])} entries")
        if t in EMU_NOT_SUPPORTED:
            bad(f"{p}.type", f"{t}: {EMU_NOT_SUPPORTED[t]}")
            continue
        if t not in EMU_SUPPORTED:
            bad(f"{p}.type", f"unknown device type {t!r} (known: {', '.join(EMU_SUPPORTED)})")
            continue
        base, length = d.get("base_ipa"), d.get("length")
        if base is None or length is None:
            continue
        if t in (EMU_PLIC, EMU_APLIC):
            mode = "plic" if t == EMU_PLIC else "aia"
            want = (board.PLIC_BASE, board.PLIC_SIZE) if mode == "plic" else (board.APLIC_BASE, board.APLIC_SIZE)
            if irqc is not None:
                bad(f"{p}.type", "a second interrupt controller (a GVM has one)")
            irqc = mode
            if (base, length) != want:
                bad(
                    p,
                    f"{t} must be at the board's base_ipa {want[0]:#x} with length {want[1]:#x} (the hypervisor "
                    f"emulates it there), not {base:#x} / {length:#x}",
                )
            if irq_mode is not None and mode != irq_mode:
                bad(
                    f"{p}.type",
                    f"{t} but the hypervisor runs in {irq_mode.upper()} mode "
                    f"(use {EMU_PLIC if irq_mode == 'plic' else EMU_APLIC}, or leave the interrupt controller out)",
                )
        else:
            if console is not None:
                bad(f"{p}.type", "a second EMU_DEVICE_T_VIRTIO_CONSOLE (a GVM has one console)")
                continue
            if length != board.VIRTIO_MMIO_SIZE:
                bad(f"{p}.length", f"{length:#x}: a virtio-mmio device is {board.VIRTIO_MMIO_SIZE:#x} bytes")
            irq = d.get("irq_id")
            if irq is None:
                if "irq_id" not in d:
                    bad(f"{p}.irq_id", "missing (the console's wired interrupt source)")
                continue
            if not 1 <= irq < board.PLIC_NUM_SOURCES:
                bad(f"{p}.irq_id", f"{irq} is not an interrupt source 1 .. {board.PLIC_NUM_SOURCES - 1}")
                continue
            console = Console(base, irq)
            device_ranges.append((f"{emu_path}[{i}] (the console)", base, board.VIRTIO_MMIO_SIZE))
    if console is None and not any(e.path.startswith(emu_path) for e in errors):
        bad(emu_path, f"no {EMU_CONSOLE}: a GVM needs its console")
    device_ranges += irqc_ranges(irq_mode or irqc, vcpus)
    for name, base, size in device_ranges:
        for i, r in enumerate(regions):
            if base < r.end and r.ipa < base + size:
                bad(f"memory.region[{i}]", f"overlaps {name} at {base:#x} .. {base + size:#x}")
    for k, (n1, b1, s1) in enumerate(device_ranges):
        for n2, b2, s2 in device_ranges[k + 1 :]:
            if b1 < b2 + s2 and b2 < b1 + s1:
                bad(emu_path, f"{n1} overlaps {n2}")

    # passthrough devices: only the IMSIC guest interrupt files, which the hypervisor maps itself
    for i, d in enumerate(passthrough):
        p = f"{pt_path}[{i}]"
        if not d or d.get("base_pa") is None or d.get("length") is None:
            continue
        base, length = d["base_pa"], d["length"]
        if board.IMSIC_BASE <= base and base + length <= board.IMSIC_BASE + board.IMSIC_REGION_SIZE:
            notes.append(
                f"{p} ({d.get('name') or 'IMSIC'}): an IMSIC guest interrupt file, ignored: the hypervisor maps "
                "each vCPU's IMSIC page onto a free guest file of its hart itself"
            )
        else:
            bad(
                p,
                f"passthrough of {base:#x} .. {base + length:#x} to a GVM is not supported: the MVM owns every "
                "device (only IMSIC guest interrupt files are accepted, and mapped by the hypervisor)",
            )

    # images inside memory, not overlapping each other
    loads: list[tuple[str, int, int]] = []
    kip, entry = image.get("kernel_load_ipa"), image.get("kernel_entry_point")
    if kip is not None:
        if c.get("type", "VM_T_LINUX") == "VM_T_LINUX" and kip % (2 * MiB):
            bad("image.kernel_load_ipa", f"{kip:#x} is not 2 MiB-aligned (the riscv64 Linux boot protocol)")
        if "kernel_filename" in sizes:
            loads.append(("image.kernel_load_ipa", kip, sizes["kernel_filename"]))
            if entry is not None and not kip <= entry < kip + sizes["kernel_filename"]:
                bad(
                    "image.kernel_entry_point",
                    f"{entry:#x} is outside the kernel image {kip:#x} .. {kip + sizes['kernel_filename']:#x}",
                )
    dtb_ipa = image.get("device_tree_load_ipa")
    if dtb_ipa is not None:
        loads.append(("image.device_tree_load_ipa", dtb_ipa, sizes.get("device_tree_filename", DTB_MAX_SIZE)))
    rip = image.get("ramdisk_load_ipa")
    if rip is not None and "ramdisk_filename" in sizes:
        loads.append(("image.ramdisk_load_ipa", rip, sizes["ramdisk_filename"]))
    if regions and len(regions) == len((c.get("memory") or {}).get("region") or []):
        for path, ipa, size in loads:
            if not any(r.ipa <= ipa and ipa + size <= r.end for r in regions):
                bad(path, f"{ipa:#x} .. {ipa + size:#x} is not inside one memory region")
        for k, (p1, a1, s1) in enumerate(loads):
            for p2, a2, s2 in loads[k + 1 :]:
                if a1 < a2 + s2 and a2 < a1 + s1:
                    bad(p2, f"{a2:#x} .. {a2 + s2:#x} overlaps {p1} {a1:#x} .. {a1 + s1:#x}")
        if entry is not None and not any(r.ipa <= entry < r.end for r in regions):
            bad("image.kernel_entry_point", f"{entry:#x} is not inside a memory region")

    if errors:
        raise ConfigErrors(errors)
    assert console is not None and num is not None and bitmap is not None and master is not None
    assert kip is not None and entry is not None and dtb_ipa is not None
    cfg = VmConfig(
        name=c["name"],
        type=c.get("type", "VM_T_LINUX"),
        cmdline=c.get("cmdline", ""),
        kernel=stored["image"]["kernel_filename"],
        kernel_ipa=kip,
        entry_ipa=entry,
        dtb_file=stored["image"].get("device_tree_filename") or None,
        dtb_ipa=dtb_ipa,
        ramdisk=stored["image"].get("ramdisk_filename") or None,
        ramdisk_ipa=rip or 0,
        regions=regions,
        vcpus=num,
        hart_mask=bitmap,
        master=master,
        priority=cpu.get("priority", 0),
        time_slice_ms=cpu.get("time_slice_ms"),
        console=console,
        irqc=irqc,
        notes=notes,
        stored=stored,
    )
    cfg.stored_json()  # within the hypervisor's limit
    return cfg


def _device_list(c: dict[str, Any], key: str, bad: Any) -> tuple[list[Any], str]:
    flat, nested = c.get(f"{key}_list"), c.get(key)
    if flat is not None and nested is not None:
        bad(key, f"given twice: as {key}_list and as {key}.{key}_list")
        return [], f"{key}_list"
    if nested is not None:
        return nested.get(f"{key}_list") or [], f"{key}.{key}_list"
    return flat or [], f"{key}_list"
