"""The control protocol of mvm-tools/PROTOCOL.md (version 1): frames, message types, records, error codes.

Pure functions and a stream decoder, no I/O: the daemon (shyper.daemon) and the host tests' model of the hypervisor
end both use them. Everything received is checked field by field; anything malformed raises (or, in the stream
decoder, yields) `ProtocolError`, never another exception. Everything sent is checked the same way before it is
encoded, so the daemon cannot put a frame on the port that the hypervisor would have to refuse as malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = 0x59485350  # the bytes "PSHY" little-endian
VERSION = 1
HEADER = struct.Struct("<IHHIIII")  # magic, version, type, id, status, length, reserved
HEADER_SIZE = HEADER.size  # 24
MAX_PAYLOAD = 65536
RESPONSE_BIT = 0x8000
MAX_ERROR_MESSAGE = 200

# Message types
HELLO = 0x0001
SYSTEM_INFO = 0x0002
SYSTEM_SHUTDOWN = 0x0003
SYSTEM_REBOOT = 0x0004
SCHED_INFO = 0x0005
VM_CREATE = 0x0010
VM_LOAD = 0x0011
VM_BOOT = 0x0012
VM_STOP = 0x0013
VM_REMOVE = 0x0014
VM_INFO = 0x0015
VM_LIST = 0x0016
VM_CONFIG_GET = 0x0017
SHM_CREATE = 0x0020
SHM_REMOVE = 0x0021
SHM_LIST = 0x0022
EVENT_VM_STATE = 0x0100

MESSAGE_NAMES = {
    HELLO: "HELLO",
    SYSTEM_INFO: "SYSTEM_INFO",
    SYSTEM_SHUTDOWN: "SYSTEM_SHUTDOWN",
    SYSTEM_REBOOT: "SYSTEM_REBOOT",
    SCHED_INFO: "SCHED_INFO",
    VM_CREATE: "VM_CREATE",
    VM_LOAD: "VM_LOAD",
    VM_BOOT: "VM_BOOT",
    VM_STOP: "VM_STOP",
    VM_REMOVE: "VM_REMOVE",
    VM_INFO: "VM_INFO",
    VM_LIST: "VM_LIST",
    VM_CONFIG_GET: "VM_CONFIG_GET",
    SHM_CREATE: "SHM_CREATE",
    SHM_REMOVE: "SHM_REMOVE",
    SHM_LIST: "SHM_LIST",
    EVENT_VM_STATE: "EVENT_VM_STATE",
}
REQUESTS = frozenset(MESSAGE_NAMES) - {EVENT_VM_STATE}

# Error codes
OK = 0
EPROTO = 1
EVERSION = 2
ETYPE = 3
EINVAL = 4
ENOVM = 5
ESTATE = 6
ENOMEM = 7
EBUSY = 8
ELIMIT = 9
EPERM = 10
ERROR_NAMES = {
    OK: "OK",
    EPROTO: "EPROTO",
    EVERSION: "EVERSION",
    ETYPE: "ETYPE",
    EINVAL: "EINVAL",
    ENOVM: "ENOVM",
    ESTATE: "ESTATE",
    ENOMEM: "ENOMEM",
    EBUSY: "EBUSY",
    ELIMIT: "ELIMIT",
    EPERM: "EPERM",
}

# VM states
CREATED = 1
RUNNING = 2
STOPPED = 3
CRASHED = 4
REBOOTING = 5
STATE_NAMES = {CREATED: "created", RUNNING: "running", STOPPED: "stopped", CRASHED: "crashed", REBOOTING: "rebooting"}

# VM record `reason`
REASON_NONE = 0
REASON_EXCEPTION = 1
REASON_NO_DEVICE = 2
REASON_FAILURE = 3
REASON_STOPPED = 4
REASON_NAMES = {
    REASON_NONE: "none",
    REASON_EXCEPTION: "an exception the hypervisor does not handle",
    REASON_NO_DEVICE: "a guest access no device answers",
    REASON_FAILURE: "it reported a failure (SRST)",
    REASON_STOPPED: "ended by VM_STOP",
}

# VCPU record `state` (SCHED_INFO)
VCPU_STOPPED = 0
VCPU_RUNNING = 1
VCPU_READY = 2
VCPU_WAITING = 3
VCPU_STATE_NAMES = {VCPU_STOPPED: "stopped", VCPU_RUNNING: "running", VCPU_READY: "ready", VCPU_WAITING: "waiting"}

VM_MAX = 8  # ids 0 (the MVM) .. 7
MAX_HARTS = 16
NAME_SIZE = 32
MAX_REGIONS = 4
MAX_CONFIG = 8192
LOAD_HEADER = struct.Struct("<IIQ")  # id, reserved, ipa
MAX_LOAD_CHUNK = MAX_PAYLOAD - LOAD_HEADER.size  # 65520
ID_PAYLOAD = struct.Struct("<II")  # id, reserved (also HELLO's version, reserved and VM_CREATE's response)
PAGE_SIZE = 4096

SYSTEM_RECORD = struct.Struct("<HBBBBBBQQQQ16sIIII")
SYSTEM_RECORD_SIZE = 72
VM_RECORD = struct.Struct("<II32sIIQQQQIIQQQQQ")
VM_RECORD_SIZE = 128
CREATE_FIXED = struct.Struct("<32sIIQQQQII")  # name, vcpus, master, hart_mask, entry, dtb, console_ipa, irq, regions
REGION = struct.Struct("<QQ")
CONFIG_HEADER = struct.Struct("<IHBB")  # config_len, time_slice_ms, priority, reserved
SHM_FIXED = struct.Struct("<32sQQQII")  # name, ipa, size, doorbell_ipa, irq, vms
SHM_ENTRY = struct.Struct("<32sII")  # a VM's name, access, the id of the VM that maps it now (0: none)
SHM_VMS = 7
SHM_RECORD_SIZE = SHM_FIXED.size + SHM_VMS * SHM_ENTRY.size  # 344
SHM_MAX = 4  # regions the hypervisor holds
SHM_RO, SHM_RW = 1, 2
ACCESS_NAMES = {SHM_RO: "ro", SHM_RW: "rw"}
PRIORITY_MAX = 255  # a higher number preempts a lower one
TIME_SLICE_MAX_MS = 1000  # 0 in a CREATE record: the hypervisor's default (10 ms)
VCPU_RECORD = struct.Struct("<BBBBBBHQQQ")  # hart, vm_id, vcpu, priority, state, reserved, slice, switches, exits, wfi
VCPU_RECORD_SIZE = 32
assert SYSTEM_RECORD.size == SYSTEM_RECORD_SIZE and VM_RECORD.size == VM_RECORD_SIZE and CREATE_FIXED.size == 80
assert CONFIG_HEADER.size == 8 and VCPU_RECORD.size == VCPU_RECORD_SIZE
assert SHM_RECORD_SIZE == 344


class ProtocolError(Exception):
    """A frame or payload that breaks PROTOCOL.md; `code` is the error code it deserves (EPROTO, EVERSION, ...)."""

    def __init__(self, message: str, code: int = EPROTO, frame: Frame | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.frame = frame  # the refused header's fields, when they were readable


@dataclass(frozen=True)
class Frame:
    type: int
    id: int
    status: int = 0
    payload: bytes = b""
    version: int = VERSION

    @property
    def is_response(self) -> bool:
        return bool(self.type & RESPONSE_BIT)

    @property
    def request_type(self) -> int:
        return self.type & ~RESPONSE_BIT

    def describe(self) -> str:
        kind = MESSAGE_NAMES.get(self.request_type, f"type {self.request_type:#x}")
        if self.is_response:
            kind += f" response {ERROR_NAMES.get(self.status, self.status)}"
        return f"{kind} id {self.id} ({len(self.payload)} bytes)"


def _u32(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
        raise ProtocolError(f"{what}: {value!r} is not a u32")
    return value


def _u64(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise ProtocolError(f"{what}: {value!r} is not a u64")
    return value


def encode_frame(frame: Frame) -> bytes:
    """The header and payload of `frame`, after checking every header field."""
    if frame.version != VERSION:
        raise ProtocolError(f"version {frame.version} is not {VERSION}", EVERSION)
    if not 0 <= frame.type < 1 << 16:
        raise ProtocolError(f"type {frame.type!r} is not a u16")
    if frame.request_type not in MESSAGE_NAMES:
        raise ProtocolError(f"type {frame.type:#x} is not a message type", ETYPE)
    _u32(frame.id, "id")
    _u32(frame.status, "status")
    if not frame.is_response and frame.status != 0:
        raise ProtocolError("status must be 0 outside responses")
    if frame.type == EVENT_VM_STATE and frame.id != 0:
        raise ProtocolError("an event has id 0")
    if len(frame.payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(frame.payload)} bytes is above MAX_PAYLOAD {MAX_PAYLOAD}")
    header = HEADER.pack(MAGIC, VERSION, frame.type, frame.id, frame.status, len(frame.payload), 0)
    return header + bytes(frame.payload)


class FrameDecoder:
    """Splits a byte stream into frames, resynchronising on the magic as PROTOCOL.md "Framing" says.

    `feed(data)` returns what the new bytes completed, in order: `Frame`s, and `ProtocolError`s for headers that were
    dropped (another version: its payload is skipped; a length above MAX_PAYLOAD or a nonzero reserved field: the
    header is discarded and the search for a magic goes on after it; an unknown type: its payload is skipped). A
    `ProtocolError` carries the frame's type and id in `.frame` when the header was readable, so a receiver can answer.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # payload bytes still to be dropped (of a frame refused for its version or type)
        self.discarded = 0  # bytes dropped while looking for a magic

    def reset(self) -> None:
        """Forget a partial frame (the port was closed or opened)."""
        self._buf.clear()
        self._skip = 0

    def feed(self, data: bytes) -> list[Frame | ProtocolError]:
        self._buf += data
        out: list[Frame | ProtocolError] = []
        magic = struct.pack("<I", MAGIC)
        while True:
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                if self._skip:
                    return out
            at = self._buf.find(magic)
            if at < 0:
                keep = min(len(self._buf), 3)  # a magic may be split across feeds
                drop = len(self._buf) - keep
                self.discarded += drop
                del self._buf[:drop]
                return out
            if at:
                self.discarded += at
                del self._buf[:at]
            if len(self._buf) < HEADER_SIZE:
                return out
            _, version, type_, id_, status, length, reserved = HEADER.unpack_from(self._buf)
            if length > MAX_PAYLOAD or reserved != 0:
                del self._buf[:HEADER_SIZE]
                why = f"length {length} above MAX_PAYLOAD" if length > MAX_PAYLOAD else "nonzero reserved field"
                out.append(ProtocolError(f"header discarded: {why}", EPROTO, Frame(type_, id_, status, b"", version)))
                continue
            if version != VERSION:
                del self._buf[:HEADER_SIZE]
                self._skip = length
                out.append(
                    ProtocolError(
                        f"version {version} is not supported", EVERSION, Frame(type_, id_, status, b"", version)
                    )
                )
                continue
            if (type_ & ~RESPONSE_BIT) not in MESSAGE_NAMES:
                del self._buf[:HEADER_SIZE]
                self._skip = length
                out.append(
                    ProtocolError(f"unknown message type {type_:#x}", ETYPE, Frame(type_, id_, status, b"", version))
                )
                continue
            if len(self._buf) < HEADER_SIZE + length:
                return out
            payload = bytes(self._buf[HEADER_SIZE : HEADER_SIZE + length])
            del self._buf[: HEADER_SIZE + length]
            out.append(Frame(type_, id_, status, payload, version))


# Names -------------------------------------------------------------------------------------------------------------


def encode_name(name: str) -> bytes:
    raw = name.encode("ascii", "replace")
    if not 1 <= len(raw) <= NAME_SIZE - 1 or not all(0x21 <= b <= 0x7E for b in raw):
        raise ProtocolError(f"name {name!r}: must be 1 .. 31 printable ASCII bytes")
    return raw.ljust(NAME_SIZE, b"\0")


def decode_name(raw: bytes, what: str) -> str:
    text = raw.split(b"\0", 1)[0]
    if raw[len(text) :].strip(b"\0"):
        raise ProtocolError(f"{what}: bytes after the NUL terminator")
    if len(text) >= NAME_SIZE or not all(0x20 <= b <= 0x7E for b in text):
        raise ProtocolError(f"{what}: not printable ASCII with a NUL terminator")
    return text.decode("ascii")


def decode_error_message(payload: bytes) -> str:
    """The ASCII message of an error response (at most 200 bytes, no NUL)."""
    if len(payload) > MAX_ERROR_MESSAGE:
        raise ProtocolError(f"error message of {len(payload)} bytes is above {MAX_ERROR_MESSAGE}")
    if not all(0x20 <= b <= 0x7E or b in (0x09, 0x0A) for b in payload):
        raise ProtocolError("error message is not printable ASCII")
    return payload.decode("ascii")


def encode_error_message(message: str) -> bytes:
    raw = message.encode("ascii", "replace")[:MAX_ERROR_MESSAGE]
    return bytes(b if 0x20 <= b <= 0x7E else 0x3F for b in raw)


# Small payloads ----------------------------------------------------------------------------------------------------


def encode_id(vm_id: int) -> bytes:
    if not isinstance(vm_id, int) or not 0 <= vm_id < VM_MAX:
        raise ProtocolError(f"VM id {vm_id!r} is not 0 .. {VM_MAX - 1}")
    return ID_PAYLOAD.pack(vm_id, 0)


def decode_id(payload: bytes, what: str = "id") -> int:
    if len(payload) != ID_PAYLOAD.size:
        raise ProtocolError(f"{what}: payload of {len(payload)} bytes, not {ID_PAYLOAD.size}")
    vm_id, reserved = ID_PAYLOAD.unpack(payload)
    if reserved:
        raise ProtocolError(f"{what}: nonzero reserved field")
    if vm_id >= VM_MAX:
        raise ProtocolError(f"{what}: VM id {vm_id} is not 0 .. {VM_MAX - 1}")
    return vm_id


def encode_hello() -> bytes:
    return ID_PAYLOAD.pack(VERSION, 0)


def encode_load(vm_id: int, ipa: int, data: bytes) -> bytes:
    encode_id(vm_id)
    _u64(ipa, "ipa")
    if not 1 <= len(data) <= MAX_LOAD_CHUNK:
        raise ProtocolError(f"VM_LOAD carries 1 .. {MAX_LOAD_CHUNK} bytes, not {len(data)}")
    if ipa + len(data) > 1 << 64:
        raise ProtocolError("ipa + length overflows")
    return LOAD_HEADER.pack(vm_id, 0, ipa) + bytes(data)


def decode_load(payload: bytes) -> tuple[int, int, bytes]:
    if len(payload) <= LOAD_HEADER.size:
        raise ProtocolError(f"VM_LOAD payload of {len(payload)} bytes carries no data")
    vm_id, reserved, ipa = LOAD_HEADER.unpack_from(payload)
    if reserved:
        raise ProtocolError("VM_LOAD: nonzero reserved field")
    if vm_id >= VM_MAX:
        raise ProtocolError(f"VM_LOAD: VM id {vm_id} is not 0 .. {VM_MAX - 1}")
    return vm_id, ipa, payload[LOAD_HEADER.size :]


# Records -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemRecord:
    proto_version: int
    version: tuple[int, int, int]
    irq_mode: int  # 0 PLIC, 1 AIA
    aia_guests: int
    harts: int
    total_pages: int
    free_pages: int
    timebase_frequency: int
    time: int
    hart_vm: tuple[int, ...]  # 16 entries, 0xff for none
    vms: int
    max_vms: int
    page_size: int = PAGE_SIZE
    max_payload: int = MAX_PAYLOAD

    @property
    def irq_mode_name(self) -> str:
        return "aia" if self.irq_mode == 1 else "plic"

    def to_json(self) -> dict[str, object]:
        return {
            "proto_version": self.proto_version,
            "version": ".".join(str(v) for v in self.version),
            "irq_mode": self.irq_mode_name,
            "aia_guests": self.aia_guests,
            "harts": self.harts,
            "total_pages": self.total_pages,
            "free_pages": self.free_pages,
            "page_size": self.page_size,
            "timebase_frequency": self.timebase_frequency,
            "time": self.time,
            "hart_vm": [None if v == 0xFF else v for v in self.hart_vm[: self.harts]],
            "vms": self.vms,
            "max_vms": self.max_vms,
            "max_payload": self.max_payload,
        }


def encode_system(s: SystemRecord) -> bytes:
    if len(s.hart_vm) != MAX_HARTS:
        raise ProtocolError("hart_vm has 16 entries")
    return SYSTEM_RECORD.pack(
        s.proto_version,
        *s.version,
        s.irq_mode,
        s.aia_guests,
        s.harts,
        s.total_pages,
        s.free_pages,
        s.timebase_frequency,
        s.time,
        bytes(s.hart_vm),
        s.vms,
        s.max_vms,
        s.page_size,
        s.max_payload,
    )


def decode_system(payload: bytes) -> SystemRecord:
    if len(payload) != SYSTEM_RECORD_SIZE:
        raise ProtocolError(f"SYSTEM record of {len(payload)} bytes, not {SYSTEM_RECORD_SIZE}")
    (pv, vmaj, vmin, vpat, irq, guests, harts, total, free, tb, time, hart_vm, vms, max_vms, page, maxp) = (
        SYSTEM_RECORD.unpack(payload)
    )
    if pv != VERSION:
        raise ProtocolError(f"SYSTEM.proto_version {pv} is not {VERSION}", EVERSION)
    if irq not in (0, 1):
        raise ProtocolError(f"SYSTEM.irq_mode {irq} is not 0 (PLIC) or 1 (AIA)")
    if guests > 7:
        raise ProtocolError(f"SYSTEM.aia_guests {guests} is above 7")
    if not 1 <= harts <= MAX_HARTS:
        raise ProtocolError(f"SYSTEM.harts {harts} is not 1 .. {MAX_HARTS}")
    if free > total:
        raise ProtocolError(f"SYSTEM.free_pages {free} is above total_pages {total}")
    if tb == 0:
        raise ProtocolError("SYSTEM.timebase_frequency is 0")
    if max_vms != VM_MAX or not 1 <= vms <= max_vms:
        raise ProtocolError(f"SYSTEM.vms {vms} / max_vms {max_vms}: not 1 .. {VM_MAX}")
    for h, v in enumerate(hart_vm):
        if v != 0xFF and (v >= max_vms or h >= harts):
            raise ProtocolError(f"SYSTEM.hart_vm[{h}] = {v}: no such VM or hart")
    if page != PAGE_SIZE or maxp != MAX_PAYLOAD:
        raise ProtocolError(f"SYSTEM.page_size {page} / max_payload {maxp}: not {PAGE_SIZE} / {MAX_PAYLOAD}")
    return SystemRecord(pv, (vmaj, vmin, vpat), irq, guests, harts, total, free, tb, time, tuple(hart_vm), vms, max_vms)


@dataclass(frozen=True)
class VmRecord:
    id: int
    state: int
    name: str
    vcpus: int
    boots: int
    hart_mask: int
    memory: int
    boot_time: int
    exits: int
    reason: int
    console_port: int
    scause: int = 0
    stval: int = 0
    sepc: int = 0
    htval: int = 0

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    @property
    def harts(self) -> list[int]:
        return [h for h in range(64) if self.hart_mask >> h & 1]

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "state": self.state_name,
            "name": self.name,
            "vcpus": self.vcpus,
            "harts": self.harts,
            "boots": self.boots,
            "memory": self.memory,
            "boot_time": self.boot_time,
            "exits": self.exits,
            "reason": self.reason,
            "console_port": self.console_port,
            "scause": self.scause,
            "stval": self.stval,
            "sepc": self.sepc,
            "htval": self.htval,
        }


def encode_vm(v: VmRecord) -> bytes:
    return VM_RECORD.pack(
        v.id,
        v.state,
        encode_name(v.name),
        v.vcpus,
        v.boots,
        v.hart_mask,
        v.memory,
        v.boot_time,
        v.exits,
        v.reason,
        v.console_port,
        v.scause,
        v.stval,
        v.sepc,
        v.htval,
        0,
    )


def decode_vm(payload: bytes) -> VmRecord:
    if len(payload) != VM_RECORD_SIZE:
        raise ProtocolError(f"VM record of {len(payload)} bytes, not {VM_RECORD_SIZE}")
    (vid, state, raw_name, vcpus, boots, mask, memory, boot_time, exits, reason, port, sc, st, se, ht, res) = (
        VM_RECORD.unpack(payload)
    )
    if vid >= VM_MAX:
        raise ProtocolError(f"VM.id {vid} is not 0 .. {VM_MAX - 1}")
    if state not in STATE_NAMES:
        raise ProtocolError(f"VM {vid}: state {state} is not 1 .. 5")
    name = decode_name(raw_name, f"VM {vid}: name")
    if not name:
        raise ProtocolError(f"VM {vid}: empty name")
    if mask >> MAX_HARTS:
        raise ProtocolError(f"VM {vid}: hart_mask {mask:#x} names harts above {MAX_HARTS - 1}")
    if vcpus != bin(mask).count("1") or vcpus == 0:
        raise ProtocolError(f"VM {vid}: vcpus {vcpus} is not the {bin(mask).count('1')} harts of hart_mask")
    if reason not in REASON_NAMES:
        raise ProtocolError(f"VM {vid}: reason {reason} is not 0 .. 4")
    if port >= VM_MAX or (vid and port != vid):
        raise ProtocolError(f"VM {vid}: console_port {port} is not its id")
    if memory % PAGE_SIZE:
        raise ProtocolError(f"VM {vid}: memory {memory:#x} is not whole pages")
    if res:
        raise ProtocolError(f"VM {vid}: nonzero reserved field")
    return VmRecord(vid, state, name, vcpus, boots, mask, memory, boot_time, exits, reason, port, sc, st, se, ht)


def decode_vm_list(payload: bytes) -> list[VmRecord]:
    if len(payload) < ID_PAYLOAD.size:
        raise ProtocolError(f"VM_LIST payload of {len(payload)} bytes has no count")
    count, reserved = ID_PAYLOAD.unpack_from(payload)
    if reserved:
        raise ProtocolError("VM_LIST: nonzero reserved field")
    if count > VM_MAX or len(payload) != ID_PAYLOAD.size + count * VM_RECORD_SIZE:
        raise ProtocolError(f"VM_LIST: count {count} does not match {len(payload)} payload bytes")
    records = [
        decode_vm(payload[ID_PAYLOAD.size + i * VM_RECORD_SIZE : ID_PAYLOAD.size + (i + 1) * VM_RECORD_SIZE])
        for i in range(count)
    ]
    ids = [r.id for r in records]
    if ids[:1] != [0] or ids != sorted(set(ids)):
        raise ProtocolError(f"VM_LIST: ids {ids} are not the MVM first, then by id, each once")
    return records


def encode_vm_list(records: list[VmRecord]) -> bytes:
    return ID_PAYLOAD.pack(len(records), 0) + b"".join(encode_vm(r) for r in records)


@dataclass(frozen=True)
class CreateRecord:
    name: str
    vcpus: int
    master: int
    hart_mask: int
    entry_ipa: int
    dtb_ipa: int
    console_ipa: int
    console_irq: int
    regions: tuple[tuple[int, int], ...]
    config: bytes = field(default=b"")
    time_slice_ms: int = 0  # 0: the hypervisor's default
    priority: int = 0


def encode_create(c: CreateRecord) -> bytes:
    name = encode_name(c.name)
    _u32(c.vcpus, "vcpus")
    _u32(c.master, "master")
    _u64(c.hart_mask, "hart_mask")
    if c.vcpus != bin(c.hart_mask).count("1") or not c.vcpus:
        raise ProtocolError(f"vcpus {c.vcpus} is not the number of harts in hart_mask {c.hart_mask:#x}")
    if not c.hart_mask >> c.master & 1:
        raise ProtocolError(f"master {c.master} is not in hart_mask {c.hart_mask:#x}")
    for what, v in (("entry_ipa", c.entry_ipa), ("dtb_ipa", c.dtb_ipa), ("console_ipa", c.console_ipa)):
        _u64(v, what)
    _u32(c.console_irq, "console_irq")
    if not 1 <= len(c.regions) <= MAX_REGIONS:
        raise ProtocolError(f"{len(c.regions)} memory regions: must be 1 .. {MAX_REGIONS}")
    if len(c.config) > MAX_CONFIG:
        raise ProtocolError(f"config of {len(c.config)} bytes is above {MAX_CONFIG}")
    if not isinstance(c.priority, int) or isinstance(c.priority, bool) or not 0 <= c.priority <= PRIORITY_MAX:
        raise ProtocolError(f"priority {c.priority!r} is not 0 .. {PRIORITY_MAX}")
    if (
        not isinstance(c.time_slice_ms, int)
        or isinstance(c.time_slice_ms, bool)
        or not 0 <= c.time_slice_ms <= TIME_SLICE_MAX_MS
    ):
        raise ProtocolError(f"time_slice_ms {c.time_slice_ms!r} is not 0 (the default) .. {TIME_SLICE_MAX_MS}")
    out = CREATE_FIXED.pack(
        name, c.vcpus, c.master, c.hart_mask, c.entry_ipa, c.dtb_ipa, c.console_ipa, c.console_irq, len(c.regions)
    )
    for i, (ipa, size) in enumerate(c.regions):
        out += REGION.pack(_u64(ipa, f"regions[{i}].ipa"), _u64(size, f"regions[{i}].size"))
    return out + CONFIG_HEADER.pack(len(c.config), c.time_slice_ms, c.priority, 0) + bytes(c.config)


def decode_create(payload: bytes) -> CreateRecord:
    """The CREATE record's layout (the hypervisor end checks the values themselves against its VMs and harts)."""
    if len(payload) < CREATE_FIXED.size + REGION.size + CONFIG_HEADER.size:
        raise ProtocolError(f"CREATE record of {len(payload)} bytes is too short")
    raw_name, vcpus, master, mask, entry, dtb, con_ipa, con_irq, nreg = CREATE_FIXED.unpack_from(payload)
    if not 1 <= nreg <= MAX_REGIONS:
        raise ProtocolError(f"regions: {nreg} is not 1 .. {MAX_REGIONS}")
    off = CREATE_FIXED.size + nreg * REGION.size
    if len(payload) < off + CONFIG_HEADER.size:
        raise ProtocolError("CREATE record ends inside its regions")
    regions = tuple(REGION.unpack_from(payload, CREATE_FIXED.size + i * REGION.size) for i in range(nreg))
    config_len, time_slice_ms, priority, reserved = CONFIG_HEADER.unpack_from(payload, off)
    if reserved:
        raise ProtocolError("CREATE: nonzero reserved field (after priority)")
    if config_len > MAX_CONFIG or len(payload) != off + CONFIG_HEADER.size + config_len:
        raise ProtocolError(f"CREATE: config_len {config_len} does not match the payload")
    name = decode_name(raw_name, "name")
    config = payload[-config_len:] if config_len else b""
    return CreateRecord(
        name, vcpus, master, mask, entry, dtb, con_ipa, con_irq, regions, config, time_slice_ms, priority
    )


@dataclass(frozen=True)
class ShmRecord:
    """A shared memory region (SHM record): `vms` is ((name, access, mapping VM id or 0), ...) in its order."""

    name: str
    ipa: int
    size: int
    doorbell_ipa: int
    irq: int
    vms: tuple[tuple[str, int, int], ...]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ipa": self.ipa,
            "size": self.size,
            "doorbell_ipa": self.doorbell_ipa,
            "irq": self.irq,
            "vms": [{"name": n, "access": ACCESS_NAMES[a], "id": i or None} for n, a, i in self.vms],
            "mapped": any(i for _, _, i in self.vms),
        }

    def access_of(self, vm_name: str) -> int | None:
        for n, a, _ in self.vms:
            if n == vm_name:
                return a
        return None


def encode_shm(r: ShmRecord, request: bool = True) -> bytes:
    """An SHM record; in a request (SHM_CREATE) the VM ids are 0."""
    if not 1 <= len(r.vms) <= SHM_VMS:
        raise ProtocolError(f"shared memory {r.name!r}: {len(r.vms)} VMs, not 1 .. {SHM_VMS}")
    for what, v in (("ipa", r.ipa), ("size", r.size), ("doorbell_ipa", r.doorbell_ipa)):
        _u64(v, what)
    _u32(r.irq, "irq")
    out = SHM_FIXED.pack(encode_name(r.name), r.ipa, r.size, r.doorbell_ipa, r.irq, len(r.vms))
    for i, (name, access, vm_id) in enumerate(r.vms):
        if access not in ACCESS_NAMES:
            raise ProtocolError(f"vms[{i}].access {access!r} is not 1 (ro) or 2 (rw)")
        if request and vm_id:
            raise ProtocolError(f"vms[{i}]: a VM id in a request")
        out += SHM_ENTRY.pack(encode_name(name), access, vm_id)
    return out + bytes(SHM_ENTRY.size * (SHM_VMS - len(r.vms)))


def decode_shm(payload: bytes) -> ShmRecord:
    if len(payload) != SHM_RECORD_SIZE:
        raise ProtocolError(f"SHM record of {len(payload)} bytes, not {SHM_RECORD_SIZE}")
    raw_name, ipa, size, door, irq, count = SHM_FIXED.unpack_from(payload)
    name = decode_name(raw_name, "SHM.name")
    if not name:
        raise ProtocolError("SHM: empty name")
    if not 1 <= count <= SHM_VMS:
        raise ProtocolError(f"SHM {name}: vms {count} is not 1 .. {SHM_VMS}")
    if size == 0 or size % PAGE_SIZE or ipa % PAGE_SIZE or door % PAGE_SIZE:
        raise ProtocolError(f"SHM {name}: ipa, size or doorbell_ipa not whole pages")
    vms = []
    for i in range(SHM_VMS):
        raw, access, vm_id = SHM_ENTRY.unpack_from(payload, SHM_FIXED.size + i * SHM_ENTRY.size)
        if i >= count:
            if raw.strip(b"\0") or access or vm_id:
                raise ProtocolError(f"SHM {name}: vms[{i}] set beyond its count")
            continue
        vm_name = decode_name(raw, f"SHM {name}: vms[{i}].name")
        if not vm_name or access not in ACCESS_NAMES or vm_id >= VM_MAX:
            raise ProtocolError(f"SHM {name}: vms[{i}] is not a name, an access (1, 2) and a VM id")
        vms.append((vm_name, access, vm_id))
    return ShmRecord(name, ipa, size, door, irq, tuple(vms))


def decode_shm_list(payload: bytes) -> list[ShmRecord]:
    if len(payload) < ID_PAYLOAD.size:
        raise ProtocolError(f"SHM_LIST payload of {len(payload)} bytes has no count")
    count, reserved = ID_PAYLOAD.unpack_from(payload)
    if reserved:
        raise ProtocolError("SHM_LIST: nonzero reserved field")
    if count > SHM_MAX or len(payload) != ID_PAYLOAD.size + count * SHM_RECORD_SIZE:
        raise ProtocolError(f"SHM_LIST: count {count} does not match {len(payload)} payload bytes")
    base = ID_PAYLOAD.size
    return [decode_shm(payload[base + i * SHM_RECORD_SIZE : base + (i + 1) * SHM_RECORD_SIZE]) for i in range(count)]


def encode_shm_list(records: list[ShmRecord]) -> bytes:
    return ID_PAYLOAD.pack(len(records), 0) + b"".join(encode_shm(r, request=False) for r in records)


@dataclass(frozen=True)
class VcpuRecord:
    """One vCPU of a hart's run queue (SCHED_INFO)."""

    hart: int
    vm_id: int
    vcpu: int  # its index in its VM
    priority: int
    state: int  # VCPU_STOPPED .. VCPU_WAITING
    time_slice_ms: int
    switches: int  # times its hart switched to it
    exits: int  # traps to the hypervisor
    wfi_exits: int

    @property
    def state_name(self) -> str:
        return VCPU_STATE_NAMES[self.state]

    def to_json(self) -> dict[str, object]:
        return {
            "vcpu": self.vcpu,
            "hart": self.hart,
            "priority": self.priority,
            "state": self.state_name,
            "time_slice_ms": self.time_slice_ms,
            "switches": self.switches,
            "exits": self.exits,
            "wfi_exits": self.wfi_exits,
        }


def encode_vcpu(v: VcpuRecord) -> bytes:
    return VCPU_RECORD.pack(
        v.hart, v.vm_id, v.vcpu, v.priority, v.state, 0, v.time_slice_ms, v.switches, v.exits, v.wfi_exits
    )


def decode_vcpu(data: bytes) -> VcpuRecord:
    if len(data) != VCPU_RECORD_SIZE:
        raise ProtocolError(f"VCPU record of {len(data)} bytes, not {VCPU_RECORD_SIZE}")
    hart, vm_id, vcpu, prio, state, reserved, slice_ms, switches, exits, wfi = VCPU_RECORD.unpack(data)
    what = f"VCPU record (hart {hart}, vm {vm_id}, vcpu {vcpu})"
    if hart >= MAX_HARTS:
        raise ProtocolError(f"{what}: hart {hart} is not 0 .. {MAX_HARTS - 1}")
    if vm_id >= VM_MAX:
        raise ProtocolError(f"{what}: VM id {vm_id} is not 0 .. {VM_MAX - 1}")
    if vcpu >= MAX_HARTS:
        raise ProtocolError(f"{what}: vcpu {vcpu} is not 0 .. {MAX_HARTS - 1} (a VM has a vCPU per hart at most)")
    if state not in VCPU_STATE_NAMES:
        raise ProtocolError(f"{what}: state {state} is not 0 .. 3")
    if reserved:
        raise ProtocolError(f"{what}: nonzero reserved field")
    if not 1 <= slice_ms <= TIME_SLICE_MAX_MS:
        raise ProtocolError(f"{what}: time_slice_ms {slice_ms} is not 1 .. {TIME_SLICE_MAX_MS}")
    return VcpuRecord(hart, vm_id, vcpu, prio, state, slice_ms, switches, exits, wfi)


def encode_sched_info(records: list[VcpuRecord]) -> bytes:
    return ID_PAYLOAD.pack(len(records), 0) + b"".join(encode_vcpu(r) for r in records)


def decode_sched_info(payload: bytes) -> list[VcpuRecord]:
    """SCHED_INFO's response: every vCPU, by hart, each hart's in run-queue order."""
    if len(payload) < ID_PAYLOAD.size:
        raise ProtocolError(f"SCHED_INFO payload of {len(payload)} bytes has no count")
    count, reserved = ID_PAYLOAD.unpack_from(payload)
    if reserved:
        raise ProtocolError("SCHED_INFO: nonzero reserved field")
    if len(payload) != ID_PAYLOAD.size + count * VCPU_RECORD_SIZE:
        raise ProtocolError(f"SCHED_INFO: count {count} does not match {len(payload)} payload bytes")
    records = [
        decode_vcpu(payload[ID_PAYLOAD.size + i * VCPU_RECORD_SIZE : ID_PAYLOAD.size + (i + 1) * VCPU_RECORD_SIZE])
        for i in range(count)
    ]
    vcpus: set[tuple[int, int]] = set()
    for i, r in enumerate(records):
        if i and r.hart < records[i - 1].hart:
            raise ProtocolError(f"SCHED_INFO: record {i} (hart {r.hart}) after hart {records[i - 1].hart}: not by hart")
        if (r.vm_id, r.vcpu) in vcpus:
            raise ProtocolError(f"SCHED_INFO: vm {r.vm_id} vcpu {r.vcpu} listed twice")
        vcpus.add((r.vm_id, r.vcpu))
    return records


def check_response(request_type: int, frame: Frame) -> bytes:
    """The payload of an OK response to `request_type`, its layout checked; raises `ResponseError` for an error status
    (with the hypervisor's message) and `ProtocolError` for a malformed response."""
    if frame.type != request_type | RESPONSE_BIT:
        raise ProtocolError(f"{frame.describe()} does not answer {MESSAGE_NAMES.get(request_type, request_type)}")
    if frame.status != OK:
        if frame.status not in ERROR_NAMES:
            raise ProtocolError(f"status {frame.status} is not an error code")
        raise ResponseError(frame.status, decode_error_message(frame.payload))
    p = frame.payload
    if request_type in (HELLO, SYSTEM_INFO):
        decode_system(p)
    elif request_type == VM_CREATE:
        if decode_id(p, "VM_CREATE response") == 0:
            raise ProtocolError("VM_CREATE response: id 0 is the MVM")
    elif request_type == VM_INFO:
        decode_vm(p)
    elif request_type == VM_LIST:
        decode_vm_list(p)
    elif request_type == SHM_LIST:
        decode_shm_list(p)
    elif request_type == SCHED_INFO:
        decode_sched_info(p)
    elif request_type == VM_CONFIG_GET:
        if len(p) > MAX_CONFIG:
            raise ProtocolError(f"VM_CONFIG_GET response of {len(p)} bytes is above {MAX_CONFIG}")
    elif p:
        raise ProtocolError(f"{frame.describe()}: an empty payload was expected")
    return p


class ResponseError(Exception):
    """The hypervisor refused a request: `code` (EINVAL, EBUSY, ...) and its message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} ({ERROR_NAMES.get(self.code, self.code)})"


def check_incoming(frame: Frame) -> None:
    """What the daemon accepts from the hypervisor: a response (bit 15) or an EVENT_VM_STATE with id 0, status 0 and
    a valid VM record. Raises ProtocolError otherwise."""
    if frame.type == EVENT_VM_STATE:
        if frame.id != 0 or frame.status != 0:
            raise ProtocolError("EVENT_VM_STATE with a nonzero id or status")
        decode_vm(frame.payload)
        return
    if not frame.is_response or frame.request_type not in REQUESTS:
        raise ProtocolError(f"{frame.describe()}: the hypervisor sends only responses and events")
    if frame.status not in ERROR_NAMES:
        raise ProtocolError(f"{frame.describe()}: status {frame.status} is not an error code")
    if frame.status != OK:
        decode_error_message(frame.payload)
