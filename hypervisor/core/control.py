"""The control protocol's hypervisor end (mvm-tools/PROTOCOL.md) on the management VM's control port (port 8
of its virtio console, core/virtio_console.py): the framing. Bytes before a valid magic are skipped one at a
time; a header with a `length` above MAX_PAYLOAD or a nonzero `reserved` gets EPROTO (the header discarded), one
with another version EVERSION, and any other ETYPE (no message type is served by this part yet), each payload
skipped. A partial frame is forgotten when the port opens or closes.

`control_poll` is called by the console device after bytes arrive on the port or the port opens or closes, on
whichever hart that happened; one hart at a time serves.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, amoswap_w, cstr, static, u8, u16, u32, u64
from hypervisor.core.virtio_console import vcon_port_open, vcon_port_pending, vcon_port_read, vcon_port_write

CTL_MAGIC: Final = u32(0x59485350)  # the bytes "PSHY"
CTL_VERSION: Final = u16(1)
CTL_HEADER: Final = 24
CTL_MAX_PAYLOAD: Final = u32(65536)
CTL_RESPONSE: Final = u16(0x8000)  # a response's type: the request's with bit 15 set
EPROTO: Final = u32(1)
EVERSION: Final = u32(2)
ETYPE: Final = u32(3)
CONTROL_PORT: Final = u64(8)
CTL_CHUNK: Final = 64

ctl_hdr = static(Array[u8, CTL_HEADER])
ctl_have: u64 = 0  # bytes of ctl_hdr received
ctl_skip: u64 = 0  # payload bytes still to discard
ctl_open: bool = False  # the port's state at the last poll
ctl_busy = static(Array[u32, 1])  # 1 while a hart serves (amoswap)


def ctl_u16(off: u64) -> u16:
    return u16(ctl_hdr[off]) | (u16(ctl_hdr[off + 1]) << 8)


def ctl_u32(off: u64) -> u32:
    return u32(ctl_u16(off)) | (u32(ctl_u16(off + 2)) << 16)


def ctl_forget() -> None:
    global ctl_have, ctl_skip
    ctl_have = 0
    ctl_skip = 0


def ctl_magic_prefix_ok() -> bool:
    for i in range(ctl_have if ctl_have < 4 else u64(4)):
        if u32(ctl_hdr[i]) != (CTL_MAGIC >> u32(i * 8)) & 0xFF:
            return False
    return True


def ctl_respond(kind: u16, rid: u32, status: u32, msg: Ptr[u8]) -> None:
    """A response frame: the header, then `msg` (ASCII, no NUL) as the payload."""
    out = Array[u8, 120]()
    n = u64(0)
    while msg[n] != 0 and n < 96:
        out[CTL_HEADER + n] = msg[n]
        n += 1
    h = Ptr[u32](addr_of(out[0]).addr())
    h[0] = CTL_MAGIC
    h[1] = u32(CTL_VERSION) | (u32(kind | CTL_RESPONSE) << 16)
    h[2] = rid
    h[3] = status
    h[4] = u32(n)
    h[5] = 0
    vcon_port_write(CONTROL_PORT, addr_of(out[0]).addr(), CTL_HEADER + n)


def ctl_header() -> None:
    """A whole header: answer it, and skip its payload unless it is refused as malformed."""
    global ctl_skip
    kind = ctl_u16(u64(6))
    rid = ctl_u32(u64(8))
    length = ctl_u32(u64(16))
    if length > CTL_MAX_PAYLOAD or ctl_u32(u64(20)) != 0:
        ctl_respond(kind, rid, EPROTO, cstr(b"header: length above 65536 or reserved not 0"))
        return
    ctl_skip = u64(length)
    if ctl_u16(u64(4)) != CTL_VERSION:
        ctl_respond(kind, rid, EVERSION, cstr(b"version: only version 1 is spoken"))
        return
    ctl_respond(kind, rid, ETYPE, cstr(b"type: unknown message type"))


def ctl_byte(b: u8) -> None:
    global ctl_have, ctl_skip
    if ctl_skip > 0:
        ctl_skip -= 1
        return
    ctl_hdr[ctl_have] = b
    ctl_have += 1
    while ctl_have > 0 and not ctl_magic_prefix_ok():  # resynchronise: drop one byte, look again
        for i in range(ctl_have - 1):
            ctl_hdr[i] = ctl_hdr[i + 1]
        ctl_have -= 1
    if ctl_have == CTL_HEADER:
        ctl_have = 0
        ctl_header()


def control_serve() -> None:
    global ctl_open
    now = vcon_port_open(CONTROL_PORT)
    if now != ctl_open:
        ctl_open = now
        ctl_forget()
    buf = Array[u8, CTL_CHUNK]()
    while True:
        n = vcon_port_read(CONTROL_PORT, addr_of(buf[0]).addr(), u64(CTL_CHUNK))
        if n == 0:
            return
        for i in range(n):
            ctl_byte(buf[i])


def control_poll() -> None:
    """Serve what the control port has: bytes that arrived, an open or a close. A hart that finds another one
    serving leaves it to that one, which looks once more after it is done."""
    while True:
        if amoswap_w(addr_of(ctl_busy[0]), u32(1)) != 0:
            return
        control_serve()
        amoswap_w(addr_of(ctl_busy[0]), u32(0))
        if not ctl_pending():
            return


def ctl_pending() -> bool:
    """Bytes or a change of the port's state that arrived while this hart was finishing."""
    return vcon_port_open(CONTROL_PORT) != ctl_open or vcon_port_pending(CONTROL_PORT)
