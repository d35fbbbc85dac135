"""Shared memory configs (`shyper shm config FILE.json`): one region between guest VMs, checked field by field.

    {"name": "link0", "ipa": "0x9000_0000", "size": "2M", "doorbell_ipa": "0x9020_0000", "irq": 8,
     "vms": {"vm1": "rw", "vm2": "ro"}}

Numbers are JSON integers or strings as in VM configs ("0x90000000", "0b..", decimal), `_` allowed between digits;
`size` also takes a K, M or G suffix (KiB, MiB, GiB). `doorbell_ipa` may be left out: the page right after the
region. Errors are `ConfigError`s naming the field (`size: 0x1800 is not a multiple of 4096`), all of a file's
listed at once; the hypervisor checks the same rules again (and those that need its state: the name unique, the
VMs not made yet, other regions of the same VMs apart).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from shyper import board, proto
from shyper.schema import NAME_RE, ConfigError, ConfigErrors, irqc_ranges

SIZE_MAX = 1 << 30  # the hypervisor's limit for one region
DOORBELL_SIZE = 0x1000
FIELDS = ("name", "ipa", "size", "doorbell_ipa", "irq", "vms")
REQUIRED = ("name", "ipa", "size", "irq", "vms")
ACCESS = {"rw": proto.SHM_RW, "ro": proto.SHM_RO}
NUMBER_RE = re.compile(r"0x[0-9a-fA-F](_?[0-9a-fA-F])*|0b[01](_?[01])*|[0-9](_?[0-9])*")
SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass(frozen=True)
class ShmConfig:
    name: str
    ipa: int
    size: int
    doorbell_ipa: int
    irq: int
    vms: dict[str, str]  # VM name -> "rw" / "ro", in the file's order

    def record(self) -> proto.ShmRecord:
        return proto.ShmRecord(
            self.name,
            self.ipa,
            self.size,
            self.doorbell_ipa,
            self.irq,
            tuple((n, ACCESS[a], 0) for n, a in self.vms.items()),
        )


def parse_number(value: Any, suffix: bool = False) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    scale = 1
    if suffix and text[-1:].upper() in SUFFIX:
        scale = SUFFIX[text[-1].upper()]
        text = text[:-1]
    if not NUMBER_RE.fullmatch(text):
        return None
    return int(text, 0 if text[:2] in ("0x", "0b") else 10) * scale


def _irq_limit(irq_mode: str | None) -> int:
    return (board.APLIC_NUM_SOURCES if irq_mode == "aia" else board.PLIC_NUM_SOURCES) - 1


def load_shm(obj: Any, irq_mode: str | None = None) -> ShmConfig:
    """Check a parsed shared-memory config; `irq_mode` ("plic"/"aia") is the hypervisor's, when known."""
    errors: list[ConfigError] = []

    def bad(path: str, reason: str) -> None:
        errors.append(ConfigError(path, reason))

    if not isinstance(obj, dict):
        raise ConfigErrors([ConfigError("", "a shared memory config is a JSON object")])
    for key in obj:
        if key not in FIELDS:
            bad(key, f"unknown field (known: {', '.join(FIELDS)})")
    for key in REQUIRED:
        if key not in obj:
            bad(key, "missing")
    name = obj.get("name")
    if "name" in obj and (not isinstance(name, str) or not NAME_RE.fullmatch(name)):
        bad("name", f"{name!r} is not 1 .. 31 of A-Z a-z 0-9 . _ - (not starting with . _ -)")

    def number(key: str, suffix: bool = False) -> int | None:
        if key not in obj:
            return None
        n = parse_number(obj[key], suffix)
        if n is None:
            more = ', "2M"' if suffix else ""
            bad(key, f'{obj[key]!r} is not a number (an integer, or a "0x..", "0b..", decimal{more} string)')
        return n

    ipa, size, door, irq = number("ipa"), number("size", True), number("doorbell_ipa"), number("irq")
    if size is not None:
        if size == 0 or size % board.PAGE_SIZE:
            bad("size", f"{size:#x} is not a nonzero multiple of {board.PAGE_SIZE}")
            size = None
        elif size > SIZE_MAX:
            bad("size", f"{size:#x} is above {SIZE_MAX:#x} (1 GiB)")
            size = None
    if ipa is not None:
        if ipa % board.PAGE_SIZE:
            bad("ipa", f"{ipa:#x} is not a multiple of {board.PAGE_SIZE}")
            ipa = None
        elif size is not None and ipa + size > board.IPA_LIMIT:
            bad("ipa", f"the region ends at {ipa + size:#x}, above the guest-physical limit {board.IPA_LIMIT:#x}")
            ipa = None
    if door is None and "doorbell_ipa" not in obj and ipa is not None and size is not None:
        door = ipa + size
    if door is not None:
        if door % board.PAGE_SIZE or door + DOORBELL_SIZE > board.IPA_LIMIT:
            bad("doorbell_ipa", f"{door:#x} is not a page below {board.IPA_LIMIT:#x}")
            door = None
        elif ipa is not None and size is not None and ipa < door + DOORBELL_SIZE and door < ipa + size:
            bad("doorbell_ipa", f"{door:#x} is inside the region {ipa:#x} .. {ipa + size:#x}")
            door = None
    for what, base, length in (("ipa", ipa, size), ("doorbell_ipa", door, DOORBELL_SIZE)):
        if base is None or length is None:
            continue
        for dev, dbase, dsize in irqc_ranges(irq_mode, board.MAX_HARTS):
            if base < dbase + dsize and dbase < base + length:
                bad(what, f"{base:#x} .. {base + length:#x} overlaps {dev} at {dbase:#x} .. {dbase + dsize:#x}")
    if irq is not None and not 1 <= irq <= _irq_limit(irq_mode):
        bad("irq", f"{irq} is not an interrupt source 1 .. {_irq_limit(irq_mode)}")
        irq = None
    vms: dict[str, str] = {}
    raw_vms = obj.get("vms")
    if "vms" in obj:
        if not isinstance(raw_vms, dict) or not 1 <= len(raw_vms) <= proto.SHM_VMS:
            bad("vms", f'not an object of 1 .. {proto.SHM_VMS} VMs by name ({{"vm1": "rw", "vm2": "ro"}})')
        else:
            for vm_name, access in raw_vms.items():
                if not NAME_RE.fullmatch(vm_name):
                    bad(f"vms.{vm_name}", "not a VM name (1 .. 31 of A-Z a-z 0-9 . _ -)")
                elif access not in ACCESS:
                    bad(f"vms.{vm_name}", f'{access!r} is not "rw" or "ro"')
                else:
                    vms[vm_name] = access
    if errors:
        raise ConfigErrors(errors)
    assert isinstance(name, str) and ipa is not None and size is not None and door is not None and irq is not None
    return ShmConfig(name, ipa, size, door, irq, vms)


def load_shm_file(path: str, irq_mode: str | None = None) -> ShmConfig:
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except OSError as e:
        raise ConfigErrors([ConfigError("", f"cannot read {path}: {e.strerror}")]) from e
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigErrors([ConfigError("", f"{path} is not JSON: {e}")]) from e
    return load_shm(obj, irq_mode)


def regions_of(records: list[proto.ShmRecord], vm_name: str) -> list[tuple[proto.ShmRecord, int]]:
    """The regions that name the VM called vm_name, with its access (what its device tree shows)."""
    out = []
    for r in records:
        access = r.access_of(vm_name)
        if access is not None:
            out.append((r, access))
    return out
