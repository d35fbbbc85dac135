"""virtio in the hypervisor under CPython: guest memory translation (core/guest_mem.py), split virtqueues with
good and every kind of bad descriptor chain (core/virtqueue.py), the virtio-mmio register protocol
(core/virtio_mmio.py) and the MVM's multiport console driven like Linux's virtio_console driver does it
(core/virtio_console.py), down to a control-port frame answered with ETYPE (core/control.py)."""

from __future__ import annotations

import struct

import pytest

from compiler import prelude
from tests.hypervisor import fuzz

GPA = 0x8000_0000
MEM = 0x20_0000

# virtio-mmio registers (virtio 1.2 table 4.2.2)
MAGIC, VERSION, DEVICE_ID, DEV_FEAT, DEV_FEAT_SEL = 0x0, 0x4, 0x8, 0x10, 0x14
DRV_FEAT, DRV_FEAT_SEL, QUEUE_SEL, QUEUE_NUM_MAX, QUEUE_NUM = 0x20, 0x24, 0x30, 0x34, 0x38
QUEUE_READY, QUEUE_NOTIFY, INT_STATUS, INT_ACK, STATUS = 0x44, 0x50, 0x60, 0x64, 0x70
DESC_LO, DESC_HI, DRIVER_LO, DRIVER_HI, DEVICE_LO, DEVICE_HI = 0x80, 0x84, 0x90, 0x94, 0xA0, 0xA4
ACK, DRIVER, DRIVER_OK, FEATURES_OK, NEEDS_RESET = 1, 2, 4, 8, 64
NEXT, WRITE, INDIRECT = 1, 2, 4
EMUL_DONE, EMUL_FAULT = 0, 2  # hypervisor/core/emul.py


MODULES = "hypervisor.core.virtio_console+hypervisor.core.mvm"
_WORLDS: dict = {}


class World:
    """The management VM (PLIC build, one vCPU) with RAM at GPA, in one backend (CPython, or compiled for the
    host), built once per backend and restored to its first state for each test."""

    def __init__(self, kind: str) -> None:
        be = fuzz.make_backend(kind, MODULES, "plic")
        self.be = be
        self.m = be.mods
        prelude.mock.sbi_handler = lambda *a: (0, 0)
        pool = be.alloc(1 << 20, 0x4000)
        assert be.call("frame_alloc_init", pool, 1 << 20)
        self.ram = be.alloc(MEM)
        self.vm = be.call("vm_setup", 0, GPA, self.ram, MEM, False)
        self.v0 = be.call("vcpu_add", self.vm, 0, True)
        assert be.call("irqc_vm_init", self.vm, int(be.board.MVM_PLIC_BASE))
        self.scratch = be.alloc(0x1000)
        self.gvm = Guest(self, 1)  # a guest VM (id 1) on hart 1, with its own RAM at the same GPA
        self.regions = [fuzz.Region(n, a, z) for n, (a, z) in be.statics.items()]
        self.regions += [fuzz.Region("ram", self.ram, MEM), fuzz.Region("pool", pool, 1 << 20)]
        self.regions += [fuzz.Region("gvm ram", self.gvm.ram, MEM)]
        self.initial = fuzz.snapshot(be, self.regions, all_=True)

    def reset(self) -> None:
        fuzz.restore_regions(self.be, self.regions, self.initial)
        self.be.set_scalars({k: v for k, v in self.initial.items() if not isinstance(v, bytes)})
        self.be.write(self.scratch, bytes(0x1000))
        self.brk = GPA + 0x10_0000  # driver allocations
        self.gvm.brk = GPA + 0x10_0000

    def call(self, name: str, *args) -> int:
        return int(self.be.call(name, *args))

    def alloc(self, n: int, align: int = 16) -> int:
        self.brk = (self.brk + align - 1) & ~(align - 1)
        a = self.brk
        self.brk += n
        return a

    def host(self, gpa: int) -> int:
        return self.ram + (gpa - GPA)

    def mem_write(self, gpa: int, data: bytes) -> None:
        self.be.write(self.host(gpa), data)

    def mem_read(self, gpa: int, n: int) -> bytes:
        return self.be.read(self.host(gpa), n)

    def w(self, gpa: int, fmt: str, *v) -> None:
        self.mem_write(gpa, struct.pack("<" + fmt, *v))

    def r(self, gpa: int, fmt: str):
        return struct.unpack("<" + fmt, self.mem_read(gpa, struct.calcsize("<" + fmt)))

    def view(self, modname: str, typename: str, addr: int) -> fuzz.View:
        return fuzz.View(self.be, getattr(self.m[modname], typename), addr)


class Guest(World):
    """A guest VM of the world: its own RAM, VM and vCPU; the world's backend."""

    def __init__(self, world: World, vm_id: int) -> None:
        self.be, self.m = world.be, world.m
        self.ram = self.be.alloc(MEM)
        self.vm = self.be.call("vm_setup", vm_id, GPA, self.ram, MEM, False)
        self.v0 = self.be.call("vcpu_add", self.vm, vm_id, True)
        self.scratch = self.be.alloc(0x1000)
        self.brk = GPA + 0x10_0000


class Queue:
    """A driver's split virtqueue in guest memory."""

    def __init__(self, w: World, num: int) -> None:
        self.w, self.num = w, num
        self.desc = w.alloc(16 * num)
        self.avail = w.alloc(6 + 2 * num, 2)
        self.used = w.alloc(6 + 8 * num, 4)
        self.avail_idx = 0
        self.used_seen = 0

    def set_desc(self, i: int, addr: int, length: int, flags: int = 0, nxt: int = 0) -> None:
        self.w.w(self.desc + 16 * i, "QIHH", addr & (2**64 - 1), length, flags, nxt)

    def offer(self, head: int) -> None:
        self.w.w(self.avail + 4 + 2 * (self.avail_idx % self.num), "H", head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.w.w(self.avail + 2, "H", self.avail_idx)

    def used_entries(self) -> list[tuple[int, int]]:
        (idx,) = self.w.r(self.used + 2, "H")
        out = []
        while self.used_seen != idx:
            out.append(self.w.r(self.used + 4 + 8 * (self.used_seen % self.num), "II"))
            self.used_seen = (self.used_seen + 1) & 0xFFFF
        return out

    def vq(self) -> int:
        """The device's view: a Virtq set up as the transport would, at a scratch address."""
        addr = self.w.scratch + 0x800
        q = self.w.view("hypervisor.core.virtqueue", "Virtq", addr)
        self.w.call("vq_reset", addr)
        q.set("num", self.num)
        q.set("desc", self.desc)
        q.set("driver", self.avail)
        q.set("device", self.used)
        q.set("ready", 1)
        return addr


@pytest.fixture(params=fuzz.BACKENDS)
def world(request):
    kind = request.param
    if kind not in _WORLDS:
        _WORLDS[kind] = World(kind)
    w = _WORLDS[kind]
    w.reset()
    return w


# --- guest_mem ------------------------------------------------------------------------------------------------


def test_gmem_translate_inside_one_region_only(world):
    def t(gpa: int, n: int) -> int:
        return world.call("gmem_translate", world.vm, gpa, n)

    assert t(GPA, MEM) == world.ram
    assert t(GPA + 0x1000, 0x10) == world.ram + 0x1000
    assert t(GPA + MEM - 1, 1) == world.ram + MEM - 1
    assert t(GPA + MEM - 1, 2) == 0  # runs past the end
    assert t(GPA + MEM, 0) == 0
    assert t(GPA - 1, 2) == 0  # starts before
    assert t(GPA + 8, 2**64 - 4) == 0  # gpa + length wraps around
    assert t(2**64 - 8, 16) == 0


# --- virtqueue ------------------------------------------------------------------------------------------------


VQ_EMPTY, VQ_OK, VQ_BAD = 0, 1, 2


def pop(world, q: int) -> tuple[int, fuzz.View]:
    c = world.scratch + 0x900
    return world.call("vq_pop", world.vm, q, c), world.view("hypervisor.core.virtqueue", "VqChain", c)


def test_good_chain_is_read_written_and_used(world):
    dq = Queue(world, 8)
    out_buf, in_buf = world.alloc(5), world.alloc(16)
    world.w(out_buf, "5s", b"hello")
    dq.set_desc(3, out_buf, 5, NEXT, 6)
    dq.set_desc(6, in_buf, 16, WRITE)
    dq.offer(3)
    q = dq.vq()
    assert world.call("vq_has_avail", world.vm, q)
    r, c = pop(world, q)
    assert r == VQ_OK
    assert (c.get("head"), c.get("descs"), c.get("readable"), c.get("writable")) == (3, 2, 5, 16)
    host = world.scratch + 0x100
    assert world.call("vq_copy", world.vm, q, c.addr, False, 1, host, 10) == 4
    assert world.be.read(host, 4) == b"ello"
    world.be.write(host, b"world!")
    assert world.call("vq_copy", world.vm, q, c.addr, True, 2, host, 6) == 6
    assert world.mem_read(in_buf, 8) == b"\0\0world!"
    assert world.call("vq_push", world.vm, q, 3, 8)
    assert dq.used_entries() == [(3, 8)]
    assert pop(world, q)[0] == VQ_EMPTY


@pytest.mark.parametrize(
    "case",
    [
        "outside",
        "straddles",
        "wraps",
        "next_out_of_range",
        "loop",
        "indirect",
        "readable_after_writable",
        "head_out_of_range",
        "too_many_available",
    ],
)
def test_bad_chain_is_refused_without_touching_anything(world, case):
    dq = Queue(world, 4)
    buf = world.alloc(64)
    head = 0
    if case == "outside":
        dq.set_desc(0, 0x4000_0000, 16)
    elif case == "straddles":
        dq.set_desc(0, GPA + MEM - 8, 16)
    elif case == "wraps":
        dq.set_desc(0, 2**64 - 8, 16)
    elif case == "next_out_of_range":
        dq.set_desc(0, buf, 8, NEXT, 4)
    elif case == "loop":
        dq.set_desc(0, buf, 8, NEXT, 1)
        dq.set_desc(1, buf, 8, NEXT, 0)
    elif case == "indirect":
        dq.set_desc(0, buf, 32, INDIRECT)
    elif case == "readable_after_writable":
        dq.set_desc(0, buf, 8, WRITE | NEXT, 1)
        dq.set_desc(1, buf, 8, 0)
    elif case == "head_out_of_range":
        dq.set_desc(0, buf, 8)
        head = 9
    dq.offer(head)
    if case == "too_many_available":
        dq.set_desc(0, buf, 8)
        world.w(dq.avail + 2, "H", 5)  # 5 new entries in a queue of 4
    q = dq.vq()
    r, _ = pop(world, q)
    assert r == VQ_BAD
    assert world.view("hypervisor.core.virtqueue", "Virtq", q).get("last_avail") == 0  # not consumed
    assert dq.used_entries() == []


def test_queue_setup_checked(world):
    dq = Queue(world, 8)
    q = dq.vq()
    v = world.view("hypervisor.core.virtqueue", "Virtq", q)
    assert world.call("vq_setup_ok", world.vm, q)
    v.set("num", 6)  # not a power of 2
    assert not world.call("vq_setup_ok", world.vm, q)
    v.set("num", 512)  # above QueueNumMax
    assert not world.call("vq_setup_ok", world.vm, q)
    v.set("num", 8)
    v.set("device", GPA + MEM - 16)  # the used ring runs past the VM's memory
    assert not world.call("vq_setup_ok", world.vm, q)
    v.set("device", dq.used + 2)  # misaligned
    assert not world.call("vq_setup_ok", world.vm, q)


# --- the transport and the console ------------------------------------------------------------------------------


class Dev:
    """The guest side of the MVM's virtio-console: register accesses through the emulated-MMIO handler."""

    def __init__(self, world: World, attach: bool = True) -> None:
        self.w = world
        b = world.be.board
        if attach:
            assert world.call("vcon_attach_mvm", world.vm, int(b.MVM_VCON_BASE), int(b.MVM_VCON_IRQ))
        self.val = world.scratch

    def access(self, off: int, width: int, store: bool, value: int = 0) -> tuple[int, int]:
        self.w.be.write(self.val, value.to_bytes(8, "little"))
        r = self.w.call("vcon_emul", self.w.v0, off, width, store, self.val)
        return r, int.from_bytes(self.w.be.read(self.val, 8), "little")

    def rd(self, off: int, width: int = 4) -> int:
        r, v = self.access(off, width, False)
        assert r == EMUL_DONE, hex(off)
        return v

    def wr(self, off: int, value: int, width: int = 4) -> None:
        r, _ = self.access(off, width, True, value)
        assert r == EMUL_DONE, hex(off)

    def negotiate(self, features: int = (1 << 32) | 2) -> int:
        self.wr(STATUS, 0)
        self.wr(STATUS, ACK | DRIVER)
        for sel in (0, 1):
            self.wr(DRV_FEAT_SEL, sel)
            self.wr(DRV_FEAT, (features >> (32 * sel)) & 0xFFFF_FFFF)
        self.wr(STATUS, ACK | DRIVER | FEATURES_OK)
        return self.rd(STATUS)

    def setup_queue(self, index: int, num: int = 8) -> Queue:
        q = Queue(self.w, num)
        self.wr(QUEUE_SEL, index)
        assert self.rd(QUEUE_NUM_MAX) == 256
        self.wr(QUEUE_NUM, num)
        for lo, hi, a in ((DESC_LO, DESC_HI, q.desc), (DRIVER_LO, DRIVER_HI, q.avail), (DEVICE_LO, DEVICE_HI, q.used)):
            self.wr(lo, a & 0xFFFF_FFFF)
            self.wr(hi, a >> 32)
        self.wr(QUEUE_READY, 1)
        assert self.rd(QUEUE_READY) == 1
        return q


@pytest.fixture
def dev(world):
    return Dev(world)


def test_transport_identity_and_access_rules(dev):
    assert dev.rd(MAGIC) == 0x74726976 and dev.rd(VERSION) == 2 and dev.rd(DEVICE_ID) == 3
    dev.wr(DEV_FEAT_SEL, 1)
    assert dev.rd(DEV_FEAT) & 1 == 1  # VIRTIO_F_VERSION_1 (bit 32)
    dev.wr(DEV_FEAT_SEL, 0)
    assert dev.rd(DEV_FEAT) & 2 == 2  # VIRTIO_CONSOLE_F_MULTIPORT
    assert dev.rd(0x104) == 9  # config: max_nr_ports
    assert dev.rd(0x104, 2) == 9 and dev.rd(0x106, 2) == 0
    fault = EMUL_FAULT
    assert dev.access(MAGIC, 2, False)[0] == fault  # 16-bit access to a register
    assert dev.access(MAGIC, 8, False)[0] == fault
    assert dev.access(0x2, 4, False)[0] == fault  # misaligned
    assert dev.access(MAGIC, 4, True, 1)[0] == fault  # a read-only register written
    assert dev.access(QUEUE_NOTIFY, 4, False)[0] == fault  # a write-only register read
    assert dev.access(0x0C8, 4, False)[0] == fault  # no register there
    assert dev.access(0x10C, 4, False)[0] == fault  # past the config space
    assert dev.access(0x1000, 4, False)[0] == fault


def test_features_ok_needs_version_1_and_only_offered_bits(dev):
    assert dev.negotiate(2) & FEATURES_OK == 0  # no VIRTIO_F_VERSION_1: refused
    assert dev.negotiate((1 << 32) | (1 << 5)) & FEATURES_OK == 0  # a bit not offered
    assert dev.negotiate() & FEATURES_OK == FEATURES_OK
    dev.wr(STATUS, 0)  # reset
    assert dev.rd(STATUS) == 0


def test_bad_queue_setup_marks_the_device_broken(dev):
    dev.negotiate()
    dev.wr(QUEUE_SEL, 0)
    dev.wr(QUEUE_NUM, 8)
    dev.wr(DESC_LO, 0x4000_0000)  # not the VM's memory
    dev.wr(QUEUE_READY, 1)
    assert dev.rd(QUEUE_READY) == 0
    assert dev.rd(STATUS) & NEEDS_RESET
    dev.wr(STATUS, 0)
    assert dev.rd(STATUS) == 0


def control_msgs(dev: Dev, dq: Queue, bufs: dict[int, int]) -> list[tuple[int, int, int, bytes]]:
    out = []
    for head, n in dq.used_entries():
        data = dev.w.mem_read(bufs[head], n)
        pid, ev, val = struct.unpack_from("<IHH", data)
        out.append((pid, ev, val, data[8:]))
    return out


def post_rx(dev: Dev, dq: Queue, count: int, size: int = 256) -> dict[int, int]:
    bufs = {}
    for i in range(count):
        b = dev.w.alloc(size)
        dq.set_desc(i, b, size, WRITE)
        dq.offer(i)
        bufs[i] = b
    return bufs


def send(dev: Dev, dq: Queue, queue: int, data: bytes, slot: int = 0) -> None:
    b = dev.w.alloc(len(data))
    dev.w.mem_write(b, data)
    dq.set_desc(slot, b, len(data))
    dq.offer(slot)
    dev.wr(QUEUE_NOTIFY, queue)


def test_console_control_messages_and_control_port(dev):
    assert dev.negotiate() & FEATURES_OK
    c_ivq = dev.setup_queue(2, 64)
    c_ovq = dev.setup_queue(3, 8)
    rx8 = dev.setup_queue(2 * 8 + 2, 8)
    tx8 = dev.setup_queue(2 * 8 + 3, 8)
    dev.wr(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    bufs = post_rx(dev, c_ivq, 40)
    dev.wr(QUEUE_NOTIFY, 2)
    send(dev, c_ovq, 3, struct.pack("<IHH", 0, 0, 1))  # DEVICE_READY
    msgs = control_msgs(dev, c_ivq, bufs)
    assert [(p, e, v) for p, e, v, _ in msgs] == [(p, 1, 1) for p in range(9)]  # DEVICE_ADD 0..8 in order
    assert dev.rd(INT_STATUS) & 1
    dev.wr(INT_ACK, 1)
    assert dev.rd(INT_STATUS) == 0
    send(dev, c_ovq, 3, struct.pack("<IHH", 0, 3, 1), slot=1)  # PORT_READY 0
    send(dev, c_ovq, 3, struct.pack("<IHH", 8, 3, 1), slot=2)  # PORT_READY 8
    msgs = control_msgs(dev, c_ivq, bufs)
    assert [(p, e, v) for p, e, v, _ in msgs] == [(0, 4, 1), (0, 6, 1), (8, 7, 1), (8, 6, 1)]
    assert msgs[2][3] == b"org.pyshyper.control"  # PORT_NAME
    assert [u for u in c_ovq.used_entries()] == [(0, 0), (1, 0), (2, 0)]  # every control buffer used at once
    # The daemon opens the control port and sends a frame of an unknown type, split across two buffers
    rxb = post_rx(dev, rx8, 4)
    dev.wr(QUEUE_NOTIFY, 2 * 8 + 2)
    send(dev, c_ovq, 3, struct.pack("<IHH", 8, 6, 1), slot=3)  # PORT_OPEN 8
    assert dev.w.call("vcon_port_open", 8)
    frame = struct.pack("<IHHIIII", 0x59485350, 1, 0x4242, 7, 0, 0, 0)
    send(dev, tx8, 2 * 8 + 3, b"xx" + frame[:10], slot=0)
    send(dev, tx8, 2 * 8 + 3, frame[10:], slot=1)
    assert tx8.used_entries() == [(0, 0), (1, 0)]
    (head, n), *rest = rx8.used_entries()
    assert rest == []
    resp = dev.w.mem_read(rxb[head], n)
    magic, ver, kind, rid, status, length, res = struct.unpack_from("<IHHIIII", resp)
    assert (magic, ver, kind, rid, status, res) == (0x59485350, 1, 0xC242, 7, 3, 0)  # ETYPE
    assert length == n - 24 and resp[24:].startswith(b"type")


def test_console_bad_tx_chain_needs_reset_not_a_crash(dev):
    dev.negotiate()
    dev.setup_queue(0, 8)
    tx0 = dev.setup_queue(1, 8)
    dev.wr(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    tx0.set_desc(0, 0x4000_0000, 64)  # outside the VM
    tx0.offer(0)
    dev.wr(QUEUE_NOTIFY, 1)
    assert dev.rd(STATUS) & NEEDS_RESET
    assert dev.rd(INT_STATUS) & 2  # configuration change notification
    assert tx0.used_entries() == []
    dev.wr(STATUS, 0)
    assert dev.rd(STATUS) == 0 and dev.rd(INT_STATUS) == 0


def test_log_reaches_port_0_sixteen_bytes_per_buffer(dev):
    """What the hypervisor prints reaches port 0 once the driver opened it, in buffers of at most 16 bytes (Linux's
    hvc reads 16 per receive interrupt): each buffer the driver gives back brings the next one."""
    line = b"pyshyper: a log line that is longer than sixteen bytes\n"
    dev.w.be.write(dev.w.scratch + 0x200, line)
    dev.w.call("console_write", dev.w.scratch + 0x200, len(line))  # what the hypervisor prints is kept
    dev.negotiate()
    c_ivq = dev.setup_queue(2, 16)
    c_ovq = dev.setup_queue(3, 8)
    rx0 = dev.setup_queue(0, 8)
    dev.wr(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    post_rx(dev, c_ivq, 16)
    rxb = post_rx(dev, rx0, 4, 4096)
    dev.wr(QUEUE_NOTIFY, 0)
    assert rx0.used_entries() == []  # not before the port is open
    send(dev, c_ovq, 3, struct.pack("<IHH", 0, 6, 1))  # PORT_OPEN 0 (Linux, once it is a console)
    got = b""
    for _ in range(64):
        used = rx0.used_entries()
        if not used:
            break
        assert len(used) == 1  # one buffer at a time
        head, n = used[0]
        assert 0 < n <= 16
        got += dev.w.mem_read(rxb[head], n)
        assert dev.rd(INT_STATUS) & 1
        dev.wr(INT_ACK, 1)
        rx0.offer(head)  # read: given back
        dev.wr(QUEUE_NOTIFY, 0)
    assert line in got


def read_hvc(dev: Dev, q: Queue, bufs: dict[int, int], queue: int) -> bytes:
    """What a console port's receive buffers bring, read as Linux's hvc does (one buffer per interrupt, given
    back once read)."""
    got = b""
    for _ in range(1024):
        used = q.used_entries()
        if not used:
            return got
        for head, n in used:
            got += dev.w.mem_read(bufs[head], n)
            dev.wr(INT_ACK, dev.rd(INT_STATUS))
            q.offer(head)
            dev.wr(QUEUE_NOTIFY, queue)
    return got


def test_gvm_console_is_mvm_port_n_both_ways(dev):
    """A guest VM's single-port console (no MULTIPORT) is the MVM's port 1 (/dev/hvc1): its output reaches the
    MVM's port, the MVM's input reaches it; its transmit buffers are used at once whoever reads."""
    w = dev.w
    assert not w.call("vcon_gvm_attach", w.vm, 0x1000_1000, 1)  # the MVM has no GVM port
    assert w.call("vcon_gvm_attach", w.gvm.vm, 0x1000_1000, 1)
    g = Dev(w.gvm, attach=False)
    assert g.rd(DEVICE_ID) == 3 and g.rd(DEV_FEAT) & 2 == 0  # a console without MULTIPORT
    assert g.negotiate() & FEATURES_OK == 0  # MULTIPORT asked for: refused
    assert g.negotiate(1 << 32) & FEATURES_OK
    g_rx, g_tx = g.setup_queue(0, 8), g.setup_queue(1, 8)
    g.wr(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    g_rxb = post_rx(g, g_rx, 4, 256)
    g.wr(QUEUE_NOTIFY, 0)
    # The MVM: port 1 set up and opened (as Linux does once it is a console)
    dev.negotiate()
    c_ivq, c_ovq = dev.setup_queue(2, 16), dev.setup_queue(3, 8)
    rx1, tx1 = dev.setup_queue(4, 8), dev.setup_queue(5, 8)
    dev.wr(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    post_rx(dev, c_ivq, 16)
    rxb = post_rx(dev, rx1, 4, 4096)
    dev.wr(QUEUE_NOTIFY, 4)
    send(dev, c_ovq, 3, struct.pack("<IHH", 1, 6, 1))
    out = b"vm1:/# hello from the guest\n"
    send(g, g_tx, 1, out)
    assert g_tx.used_entries() == [(0, 0)]
    assert read_hvc(dev, rx1, rxb, 4) == out
    send(dev, tx1, 5, b"uname -a\n")
    assert tx1.used_entries() == [(0, 0)]
    assert read_hvc(g, g_rx, g_rxb, 0) == b"uname -a\n"


def read_hvc_as_linux(dev: Dev, q: Queue, bufs: dict[int, int], queue: int) -> tuple[bytes, int]:
    """read_hvc, with a driver that honours VIRTQ_USED_F_NO_NOTIFY as Linux does (virtqueue_kick_prepare):
    a buffer given back is notified only while the device asks for notifications. (bytes, notifications)."""
    got, kicks = b"", 0
    for _ in range(1024):
        used = q.used_entries()
        if not used:
            return got, kicks
        for head, n in used:
            got += dev.w.mem_read(bufs[head], n)
            dev.wr(INT_ACK, dev.rd(INT_STATUS))
            q.offer(head)
            if dev.w.r(q.used, "H")[0] & 1 == 0:
                kicks += 1
                dev.wr(QUEUE_NOTIFY, queue)
    return got, kicks


def test_receiveqs_ask_for_no_notification_while_nothing_waits(dev):
    """virtio 1.2 2.7.10: a console port's receiveq and the control receiveq set VIRTQ_USED_F_NO_NOTIFY while
    the device has nothing to put in them (Linux notifies for each receive buffer it adds: 256 exits per queue
    otherwise), and clear it while bytes wait or a used buffer has not come back, so that nothing stalls."""
    w = dev.w
    assert w.call("vcon_gvm_attach", w.gvm.vm, 0x1000_1000, 1)
    g = Dev(w.gvm, attach=False)
    assert g.negotiate(1 << 32) & FEATURES_OK
    g.setup_queue(0, 8)  # its receiveq, unused here
    g_tx = g.setup_queue(1, 8)
    g.wr(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    dev.negotiate()
    c_ivq, c_ovq = dev.setup_queue(2, 16), dev.setup_queue(3, 8)
    rx1 = dev.setup_queue(4, 8)
    dev.wr(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    post_rx(dev, c_ivq, 16)
    dev.wr(QUEUE_NOTIFY, 2)  # the first buffer's notification; nothing to send yet
    assert w.r(c_ivq.used, "H")[0] == 1
    rxb = post_rx(dev, rx1, 8, 4096)
    dev.wr(QUEUE_NOTIFY, 4)
    assert w.r(rx1.used, "H")[0] == 1  # port 1 has nothing to send
    send(dev, c_ovq, 3, struct.pack("<IHH", 1, 6, 1))  # PORT_OPEN 1
    assert w.r(c_ivq.used, "H")[0] == 1  # no control message waits
    out = b"vm1: a line of the guest's console, longer than one 16-byte buffer of the MVM's hvc\n"
    send(g, g_tx, 1, out)  # the guest writes: the MVM's buffers fill with no notification of the MVM's
    assert w.r(rx1.used, "H")[0] == 0  # bytes wait and a used buffer is out: every buffer back is wanted
    got, kicks = read_hvc_as_linux(dev, rx1, rxb, 4)
    assert got == out
    assert kicks == -(-len(out) // 16)  # one per buffer: each brought the next, the last found nothing
    assert w.r(rx1.used, "H")[0] == 1  # all sent and back: quiet again


def test_gvm_output_never_waits_oldest_dropped_and_counted(dev):
    """With nobody reading the MVM's port, a GVM's output fills its ring and then drops the oldest bytes, counted;
    its transmit buffers are used at once all the same."""
    w = dev.w
    assert w.call("vcon_gvm_attach", w.gvm.vm, 0x1000_1000, 1)
    g = Dev(w.gvm, attach=False)
    assert g.negotiate(1 << 32) & FEATURES_OK
    g.setup_queue(0, 8)
    g_tx = g.setup_queue(1, 8)
    g.wr(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
    before = w.call("vcon_port_dropped", 1)
    for i in range(5):
        send(g, g_tx, 1, bytes([65 + i]) * 1000, slot=i)
    assert len(g_tx.used_entries()) == 5
    assert w.call("vcon_port_dropped", 1) - before == 5000 - 4096
