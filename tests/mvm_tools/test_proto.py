"""The control protocol's codec (shyper.proto) both ways, checked against frames built by hand from PROTOCOL.md's
tables, and a seeded fuzz of 10^5 malformed frames into the daemon's decoder."""

from __future__ import annotations

import dataclasses
import random
import re
import struct

import pytest
from shyper import proto

HDR = struct.Struct("<IHHIIII")


def raw(type_: int, rid: int, payload: bytes = b"", status: int = 0, version: int = 1, reserved: int = 0) -> bytes:
    return HDR.pack(0x59485350, version, type_, rid, status, len(payload), reserved) + payload


def test_header_layout_matches_protocol_md() -> None:
    data = proto.encode_frame(proto.Frame(proto.VM_BOOT, 7, 0, b"\x01\0\0\0\0\0\0\0"))
    assert data[:4] == b"PSHY"
    assert data == raw(0x12, 7, struct.pack("<II", 1, 0))
    assert proto.HEADER_SIZE == 24


def test_decoder_splits_packs_and_resynchronises() -> None:
    stream = b"garbage" + raw(0x8002, 1, b"x" * 72) + b"\x00PSH" + raw(0x0100, 0, b"y" * 128)
    for cut in range(len(stream) + 1):  # every split point of the stream in two feeds
        dec = proto.FrameDecoder()
        got = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert [(f.type, f.id, len(f.payload)) for f in got if isinstance(f, proto.Frame)] == [
            (0x8002, 1, 72),
            (0x0100, 0, 128),
        ]
        assert dec.discarded == len(b"garbage") + 4
    dec = proto.FrameDecoder()
    assert [len(f.payload) for f in sum((dec.feed(bytes([b])) for b in stream), [])] == [72, 128]


@pytest.mark.parametrize(
    "frame, code",
    [
        (raw(0x0002, 5, b"abc", version=2), proto.EVERSION),
        (raw(0x0777, 5, b"abc"), proto.ETYPE),
        (raw(0x0002, 5, reserved=1), proto.EPROTO),
        (HDR.pack(0x59485350, 1, 2, 5, 0, proto.MAX_PAYLOAD + 1, 0), proto.EPROTO),
    ],
)
def test_decoder_refuses_bad_headers_and_keeps_going(frame: bytes, code: int) -> None:
    dec = proto.FrameDecoder()
    out = dec.feed(frame + raw(0x8002, 9, b"z" * 72))
    assert isinstance(out[0], proto.ProtocolError) and out[0].code == code
    assert out[0].frame is not None and out[0].frame.id == 5
    assert isinstance(out[-1], proto.Frame) and out[-1].id == 9 and out[-1].payload == b"z" * 72


def test_encoder_refuses_what_the_hypervisor_would_refuse() -> None:
    with pytest.raises(proto.ProtocolError):
        proto.encode_frame(proto.Frame(proto.VM_LOAD, 1, 0, bytes(proto.MAX_PAYLOAD + 1)))
    with pytest.raises(proto.ProtocolError):
        proto.encode_frame(proto.Frame(0x0777, 1))
    with pytest.raises(proto.ProtocolError):
        proto.encode_frame(proto.Frame(proto.VM_LIST, 1, status=3))
    with pytest.raises(proto.ProtocolError):
        proto.encode_load(1, 0x8000_0000, bytes(proto.MAX_LOAD_CHUNK + 1))
    with pytest.raises(proto.ProtocolError):
        proto.encode_id(8)
    with pytest.raises(proto.ProtocolError):
        proto.encode_name("has space")
    assert len(proto.encode_load(1, 0x8000_0000, bytes(proto.MAX_LOAD_CHUNK))) == proto.MAX_PAYLOAD


def sample_vm(**kw: object) -> proto.VmRecord:
    base = dict(
        id=1, state=proto.CRASHED, name="vm1", vcpus=1, boots=2, hart_mask=0b100, memory=128 << 20,
        boot_time=5, exits=77, reason=2, console_port=1, scause=21, stval=0x1234, sepc=0x8020_0010, htval=0x4000_0000,
    )  # fmt: skip
    base.update(kw)
    return proto.VmRecord(**base)  # type: ignore[arg-type]


def test_vm_record_layout() -> None:
    rec = sample_vm()
    data = proto.encode_vm(rec)
    assert len(data) == 128
    assert struct.unpack_from("<II", data) == (1, 4)
    assert data[8:11] == b"vm1" and data[11:40] == bytes(29)
    assert struct.unpack_from("<IIQQQQII", data, 40) == (1, 2, 0b100, 128 << 20, 5, 77, 2, 1)
    assert struct.unpack_from("<QQQQQ", data, 88) == (21, 0x1234, 0x8020_0010, 0x4000_0000, 0)
    assert proto.decode_vm(data) == rec


@pytest.mark.parametrize(
    "offset, value, what",
    [(0, 8, "id"), (4, 6, "state"), (40, 2, "vcpus"), (80, 9, "reason"), (84, 3, "console_port"), (120, 1, "reserved")],
)
def test_vm_record_fields_are_checked(offset: int, value: int, what: str) -> None:
    data = bytearray(proto.encode_vm(sample_vm()))
    struct.pack_into("<I", data, offset, value)
    with pytest.raises(proto.ProtocolError):
        proto.decode_vm(bytes(data))


def sample_system() -> proto.SystemRecord:
    hart_vm = (0, 0, 1, 0xFF) + (0xFF,) * 12
    return proto.SystemRecord(1, (0, 4, 0), 1, 3, 4, 0x40000, 0x30000, 10_000_000, 99, hart_vm, 2, 8)


def test_system_record_layout() -> None:
    data = proto.encode_system(sample_system())
    assert len(data) == 72
    assert data[:8] == struct.pack("<HBBBBBB", 1, 0, 4, 0, 1, 3, 4)
    assert struct.unpack_from("<QQQQ", data, 8) == (0x40000, 0x30000, 10_000_000, 99)
    assert data[40:56] == bytes([0, 0, 1] + [0xFF] * 13)
    assert struct.unpack_from("<IIII", data, 56) == (2, 8, 4096, 65536)
    assert proto.decode_system(data) == sample_system()
    bad = bytearray(data)
    bad[5] = 2  # irq_mode
    with pytest.raises(proto.ProtocolError):
        proto.decode_system(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<Q", bad, 16, 0x50000)  # free above total
    with pytest.raises(proto.ProtocolError):
        proto.decode_system(bytes(bad))


def test_create_record_layout() -> None:
    c = proto.CreateRecord(
        "vm1", 1, 2, 0b100, 0x8020_0000, 0x87E0_0000, 0x1000_1000, 1, ((0x8000_0000, 1 << 27),), b"{}"
    )
    data = proto.encode_create(c)
    assert data[:32] == b"vm1".ljust(32, b"\0")
    assert struct.unpack_from("<IIQQQQII", data, 32) == (1, 2, 0b100, 0x8020_0000, 0x87E0_0000, 0x1000_1000, 1, 1)
    assert struct.unpack_from("<QQIHBB", data, 80) == (0x8000_0000, 1 << 27, 2, 0, 0, 0)
    assert data[104:] == b"{}"
    assert proto.decode_create(data) == c
    # u16 time_slice_ms (0: the default), u8 priority, u8 reserved after config_len
    c = dataclasses.replace(c, time_slice_ms=1000, priority=200)
    data = proto.encode_create(c)
    assert struct.unpack_from("<IHBB", data, 96) == (2, 1000, 200, 0)
    assert proto.decode_create(data) == c
    bad = bytearray(data)
    bad[103] = 1
    with pytest.raises(proto.ProtocolError, match="nonzero reserved field"):
        proto.decode_create(bytes(bad))
    for kw in (dict(priority=256), dict(priority=-1), dict(time_slice_ms=1001), dict(priority=True)):
        with pytest.raises(proto.ProtocolError):
            proto.encode_create(dataclasses.replace(c, **kw))  # type: ignore[arg-type]
    with pytest.raises(proto.ProtocolError):
        proto.encode_create(proto.CreateRecord("vm1", 2, 2, 0b100, 0, 0, 0, 1, ((0, 4096),)))  # vcpus != popcount
    with pytest.raises(proto.ProtocolError):
        proto.encode_create(proto.CreateRecord("vm1", 1, 3, 0b100, 0, 0, 0, 1, ((0, 4096),)))  # master not in mask
    with pytest.raises(proto.ProtocolError):
        proto.encode_create(proto.CreateRecord("vm1", 1, 2, 0b100, 0, 0, 0, 1, ((0, 4096),) * 5))


def sample_vcpus() -> list[proto.VcpuRecord]:
    return [
        proto.VcpuRecord(0, 0, 0, 0, proto.VCPU_RUNNING, 10, 1, 5000, 4000),
        proto.VcpuRecord(2, 1, 0, 10, proto.VCPU_READY, 10, 3, 120, 7),
        proto.VcpuRecord(2, 2, 0, 200, proto.VCPU_RUNNING, 1000, 4, 90, 2),
        proto.VcpuRecord(3, 2, 1, 200, proto.VCPU_WAITING, 1000, 0, 1, 1),
        proto.VcpuRecord(3, 3, 0, 0, proto.VCPU_STOPPED, 1, 0, 0, 0),
    ]


def test_sched_info_layout() -> None:
    """SCHED_INFO's response: u32 count, u32 reserved, then 32-byte VCPU records (PROTOCOL.md)."""
    data = proto.encode_sched_info(sample_vcpus())
    assert len(data) == 8 + 5 * 32 and struct.unpack_from("<II", data) == (5, 0)
    assert data[8 + 32 : 8 + 64] == struct.pack("<BBBBBBHQQQ", 2, 1, 0, 10, 2, 0, 10, 3, 120, 7)
    assert proto.decode_sched_info(data) == sample_vcpus()
    assert proto.decode_sched_info(struct.pack("<II", 0, 0)) == []
    assert [v.state_name for v in sample_vcpus()] == ["running", "ready", "running", "waiting", "stopped"]
    assert sample_vcpus()[1].to_json() == {
        "vcpu": 0, "hart": 2, "priority": 10, "state": "ready", "time_slice_ms": 10, "switches": 3, "exits": 120,
        "wfi_exits": 7,
    }  # fmt: skip
    ok = proto.Frame(proto.SCHED_INFO | proto.RESPONSE_BIT, 3, 0, data)
    assert proto.check_response(proto.SCHED_INFO, ok) == data
    assert proto.MESSAGE_NAMES[0x0005] == "SCHED_INFO"


@pytest.mark.parametrize(
    "offset, fmt_, value, what",
    [
        (8 + 32 + 4, "<B", 4, "state 4 is not 0 .. 3"),
        (8 + 32 + 5, "<B", 1, "nonzero reserved field"),
        (8 + 32 + 6, "<H", 0, "time_slice_ms 0 is not 1 .. 1000"),
        (8 + 32 + 6, "<H", 1001, "time_slice_ms 1001 is not 1 .. 1000"),
        (8 + 32 + 0, "<B", 16, "hart 16 is not 0 .. 15"),
        (8 + 32 + 1, "<B", 8, "VM id 8 is not 0 .. 7"),
        (8 + 32 + 2, "<B", 16, "vcpu 16 is not 0 .. 15"),
        (8 + 32 + 0, "<B", 0, None),  # hart 0 after hart 0: still in order
        (8 + 64 + 0, "<B", 1, "not by hart"),
        (8 + 96 + 2, "<B", 0, "vm 2 vcpu 0 listed twice"),
        (4, "<I", 1, "SCHED_INFO: nonzero reserved field"),
        (0, "<I", 6, "count 6 does not match"),
        (0, "<I", 4, "count 4 does not match"),
    ],
)
def test_sched_info_fields_are_checked(offset: int, fmt_: str, value: int, what: str | None) -> None:
    data = bytearray(proto.encode_sched_info(sample_vcpus()))
    struct.pack_into(fmt_, data, offset, value)
    if what is None:
        assert len(proto.decode_sched_info(bytes(data))) == 5
        return
    with pytest.raises(proto.ProtocolError, match=re.escape(what)):
        proto.decode_sched_info(bytes(data))


def test_sched_info_two_vcpus_of_a_vm_on_a_hart_and_a_cut_payload() -> None:
    two = [proto.VcpuRecord(2, 1, 0, 0, 1, 10, 0, 0, 0), proto.VcpuRecord(2, 1, 1, 0, 2, 10, 0, 0, 0)]
    assert proto.decode_sched_info(proto.encode_sched_info(two)) == two  # cpu.num above its harts: allowed
    with pytest.raises(proto.ProtocolError, match="vcpu 0 listed twice"):
        proto.decode_sched_info(proto.encode_sched_info([two[0], two[0]]))
    with pytest.raises(proto.ProtocolError, match="has no count"):
        proto.decode_sched_info(b"\0" * 4)
    with pytest.raises(proto.ProtocolError, match="does not answer"):
        proto.check_response(proto.SCHED_INFO, proto.Frame(proto.SYSTEM_INFO | proto.RESPONSE_BIT, 1))
    with pytest.raises(proto.ProtocolError):
        data = proto.encode_sched_info(sample_vcpus())[:-1]
        proto.check_response(proto.SCHED_INFO, proto.Frame(proto.SCHED_INFO | proto.RESPONSE_BIT, 1, 0, data))


def test_responses_are_checked_against_their_request() -> None:
    ok = proto.Frame(proto.VM_BOOT | proto.RESPONSE_BIT, 3)
    assert proto.check_response(proto.VM_BOOT, ok) == b""
    with pytest.raises(proto.ProtocolError):
        proto.check_response(proto.VM_STOP, ok)  # answers another type
    with pytest.raises(proto.ProtocolError):
        proto.check_response(proto.VM_BOOT, proto.Frame(proto.VM_BOOT | proto.RESPONSE_BIT, 3, 0, b"x"))
    with pytest.raises(proto.ResponseError) as e:
        proto.check_response(
            proto.VM_BOOT, proto.Frame(proto.VM_BOOT | proto.RESPONSE_BIT, 3, 8, b"hart 2 is taken by vm1")
        )
    assert e.value.code == proto.EBUSY and "hart 2 is taken by vm1" in str(e.value)
    with pytest.raises(proto.ProtocolError):  # not ASCII
        proto.check_response(proto.VM_BOOT, proto.Frame(proto.VM_BOOT | proto.RESPONSE_BIT, 3, 8, b"\xff\0"))
    listing = proto.encode_vm_list([sample_vm(id=0, console_port=0, hart_mask=3, vcpus=2), sample_vm()])
    assert [r.id for r in proto.decode_vm_list(listing)] == [0, 1]
    with pytest.raises(proto.ProtocolError):  # the MVM is not first
        proto.decode_vm_list(proto.encode_vm_list([sample_vm()]))
    with pytest.raises(proto.ProtocolError):
        proto.decode_vm_list(listing[:-1])


def mutate(rng: random.Random, good: list[bytes]) -> bytes:
    """A malformed or random frame: a good one with bytes flipped, cut, padded, its header fields set to edge values."""
    frame = bytearray(rng.choice(good))
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randrange(1, 8)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
    elif kind == 1:
        frame = frame[: rng.randrange(len(frame) + 1)]
    elif kind == 2:
        field_offset = rng.choice((4, 6, 8, 12, 16, 20))
        width = 2 if field_offset in (4, 6) else 4
        value = rng.choice((0, 1, 0x8000, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << (8 * width))))
        frame[field_offset : field_offset + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    elif kind == 3:
        payload = rng.randbytes(rng.choice((0, 8, 72, 128, 136, rng.randrange(300))))
        frame = bytearray(HDR.pack(0x59485350, 1, rng.choice(list(proto.MESSAGE_NAMES)) | rng.choice((0, 0x8000)),
                                   rng.randrange(4), rng.randrange(12), len(payload), 0) + payload)  # fmt: skip
    elif kind == 4:
        frame = bytearray(rng.randbytes(rng.randrange(64)))
    else:
        frame += rng.randbytes(rng.randrange(16))
    return bytes(frame)


@pytest.mark.fuzz
def test_fuzz_decoder_with_malformed_frames() -> None:
    """10^5 seeded malformed frames from the hypervisor's side: the decoder and the daemon's checks raise nothing but
    ProtocolError / ResponseError, and a good frame after all of them still comes through."""
    rng = random.Random(20261202)
    good = [
        raw(0x8001, 1, proto.encode_system(sample_system())),
        raw(0x8015, 2, proto.encode_vm(sample_vm())),
        raw(0x8016, 3, proto.encode_vm_list([sample_vm(id=0, console_port=0, hart_mask=3, vcpus=2), sample_vm()])),
        raw(0x0100, 0, proto.encode_vm(sample_vm(state=proto.REBOOTING))),
        raw(0x8012, 4, b"hart 2 is taken", status=proto.EBUSY),
        raw(0x8010, 5, struct.pack("<II", 1, 0)),
        raw(0x8005, 6, proto.encode_sched_info(sample_vcpus())),
    ]
    dec = proto.FrameDecoder()  # all of them as one stream
    frames = errors = 0
    for _ in range(100_000):
        bad = mutate(rng, good)
        for items in (proto.FrameDecoder().feed(bad), dec.feed(bad)):  # alone, and after everything before it
            for item in items:
                if isinstance(item, proto.ProtocolError):
                    errors += 1
                    continue
                frames += 1
                try:
                    proto.check_incoming(item)
                    if item.type != proto.EVENT_VM_STATE:
                        proto.check_response(item.request_type, item)
                except (proto.ProtocolError, proto.ResponseError):
                    errors += 1
    assert frames > 50_000 and errors > 30_000
    dec.feed(bytes(proto.HEADER_SIZE + proto.MAX_PAYLOAD))  # completes whatever partial frame is left
    tail = dec.feed(raw(0x8013, 77))
    assert any(isinstance(f, proto.Frame) and f.id == 77 for f in tail)
