"""The virtio console device (virtio 1.2 section 5.3) the hypervisor emulates, on the virtio-mmio transport
(core/virtio_mmio.py).

The management VM's has VIRTIO_CONSOLE_F_MULTIPORT and VCON_PORTS ports (mvm-tools/PROTOCOL.md): port 0 is a
console carrying the hypervisor's log (core/cons_ring.py; its input is discarded), ports 1 .. 7 are consoles
carrying GVM N's console on port N, port 8 is the generic port `org.pyshyper.control` of the control protocol
(core/control.py). Ports are announced (DEVICE_ADD) in order once the driver says DEVICE_READY, so Linux numbers
the consoles /dev/hvc0 .. /dev/hvc7 in port order; each console port gets CONSOLE_PORT, the control port its
PORT_NAME, and every port PORT_OPEN (the hypervisor's end is always connected) when the driver says PORT_READY.

A guest VM's has one port and no MULTIPORT (its /dev/hvc0); its bytes pass to and from the MVM's port N through
a bounded ring per direction: a GVM never waits for the MVM (the oldest bytes are dropped, and counted, when a
ring is full).

Transmit buffers are consumed in the notify trap itself (Linux's hvc `put_chars` busy-waits until its buffer is
used); receive buffers are filled when there are bytes: at a notify (a console's emptied buffer coming back
brings the next bytes), after the other end wrote, when the port opens, and when a vCPU of the VM waits in a
trapped WFI or is kicked (trap.py vcpu_idle_work). The log's lines are printed under whatever lock their printer
holds, so they only wake the MVM's first vCPU (core/cons_ring.py log_tee), which feeds them on its own hart.
A port's receiveq and the control receiveq ask the driver not to notify them of new buffers while they have
nothing to send (2.7.10, vcon_rx_quiet): Linux notifies for each receive buffer it adds, 256 per queue. Work
on another device (the other end of a port) is done after this device's lock is released: no hart holds two
device locks.
"""

from compiler.prelude import Array, Callable, Final, Ptr, addr_of, cstr, null, static, struct, u8, u16, u32, u64
from hypervisor.core.cons_ring import (
    ByteRing,
    log_arm,
    log_ring_get,
    ring_clear,
    ring_get,
    ring_len,
    ring_put,
    ring_setup,
)
from hypervisor.core.control import control_poll
from hypervisor.core.emul import emul_add
from hypervisor.core.spinlock import spin_lock, spin_unlock
from hypervisor.core.virtio_mmio import (
    VIRTIO_MMIO_WINDOW,
    VirtioMmio,
    vmmio_access,
    vmmio_config_changed,
    vmmio_fail,
    vmmio_init,
    vmmio_queue,
    vmmio_reset,
    vmmio_running,
    vmmio_used,
    vmmio_vm,
)
from hypervisor.core.virtqueue import (
    VQ_BAD,
    VQ_EMPTY,
    VqChain,
    vq_copy,
    vq_pop,
    vq_push,
    vq_set_notify,
    vq_wants_interrupt,
)
from hypervisor.core.vm import MSG_KICK, VM_MAX, Vcpu, Vm, vcpu_vm, vm_vcpu

VIRTIO_ID_CONSOLE: Final = u32(3)  # 5: device ID
VIRTIO_CONSOLE_F_SIZE: Final = u64(1) << 0  # 5.3.3
VIRTIO_CONSOLE_F_MULTIPORT: Final = u64(1) << 1
VCON_CONFIG_SIZE: Final = u64(12)  # 5.3.4: le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr

# 5.3.6.2: control messages (struct virtio_console_control: le32 id, le16 event, le16 value)
VIRTIO_CONSOLE_DEVICE_READY: Final = u16(0)
VIRTIO_CONSOLE_DEVICE_ADD: Final = u16(1)
VIRTIO_CONSOLE_DEVICE_REMOVE: Final = u16(2)
VIRTIO_CONSOLE_PORT_READY: Final = u16(3)
VIRTIO_CONSOLE_CONSOLE_PORT: Final = u16(4)
VIRTIO_CONSOLE_RESIZE: Final = u16(5)
VIRTIO_CONSOLE_PORT_OPEN: Final = u16(6)
VIRTIO_CONSOLE_PORT_NAME: Final = u16(7)
VCON_CONTROL_SIZE: Final = u64(8)

VCON_PORTS: Final = 9  # the MVM's: max_nr_ports
VCON_LOG_PORT: Final = u64(0)
VCON_CONTROL_PORT: Final = u64(8)
VCON_CONSOLE_RING: Final = u64(0x1000)  # bytes per direction per console port
VCON_CONTROL_RING: Final = u64(0x10000)  # the control port's, per direction (a Linux port write is <= 32 KiB)
VCON_CTRL_MAX: Final = 32  # control messages waiting for a buffer of the driver's
VCON_CHUNK: Final = 256  # bytes copied at a time between guest buffers and rings
# Linux's hvc reads a console's input N_INBUF (16) bytes per poll and polls again only when kicked: by the port's
# receive interrupt. So a console port's receive buffer gets at most this many bytes, one buffer at a time: the
# driver empties it in one poll and gives it back (a notify), which brings the next one and its interrupt.
VCON_HVC_INBUF: Final = u64(16)

# 5.3.2: queue numbers (port 0: 0, 1; control: 2, 3; port p >= 1: 2p + 2, 2p + 3)
VCON_CONTROL_RX: Final = u64(2)
VCON_CONTROL_TX: Final = u64(3)

# Work a notify leaves for after the device's lock (Vcon.work bits)
WORK_CONTROL: Final = u32(1) << 31  # the control port got bytes or opened or closed: control_poll
WORK_TO_MVM: Final = u32(1) << 30  # a GVM wrote: feed the MVM's port of that GVM


@struct
class Vcon:
    t: VirtioMmio  # first: the transport's address is the device's
    attached: u32
    multiport: u32
    ports: u32  # max_nr_ports
    port_id: u32  # a single-port device: its VM's port on the MVM's console (its VM id)
    ctrl_head: u32  # control messages to send (driver-bound), a ring of VCON_CTRL_MAX
    ctrl_tail: u32
    ctrl: Array[u64, VCON_CTRL_MAX]  # id | event << 32 | value << 48
    guest_open: Array[u8, VCON_PORTS]  # the driver's PORT_OPEN value per port
    rx_out: Array[u32, VCON_PORTS]  # console ports: receive buffers used and not given back yet (about)
    work: u32  # WORK_* and, bits 0 .. 7, GVM ports whose GVM must be fed (after the lock)


VCON = static(Array[Vcon, VM_MAX])  # by VM index (core/vm.py VMS)
# Port p's rings: toward the MVM (a GVM's output; port 0's is the log ring) and from the MVM (its input to GVM p)
VCON_TO_MVM = static(Array[ByteRing, VCON_PORTS])
VCON_FROM_MVM = static(Array[ByteRing, VCON_PORTS])
vcon_to_mvm_data = static(Array[u8, (VCON_PORTS - 1) * VCON_CONSOLE_RING])
vcon_from_mvm_data = static(Array[u8, (VCON_PORTS - 1) * VCON_CONSOLE_RING])
vcon_control_in = static(Array[u8, VCON_CONTROL_RING])
vcon_control_out = static(Array[u8, VCON_CONTROL_RING])
vcon_mvm_index: u64 = 0xFF  # the index of the VM that has the multiport console (none yet)


def vcon_ring_to_mvm(port: u64) -> Ptr[ByteRing]:
    """The bytes the MVM reads on `port` (port < VCON_PORTS)."""
    if port == VCON_LOG_PORT:
        return log_ring_get()
    r = addr_of(VCON_TO_MVM[port])
    if port == VCON_CONTROL_PORT:
        ring_setup(r, addr_of(vcon_control_out[0]).addr(), VCON_CONTROL_RING)
    else:
        ring_setup(r, addr_of(vcon_to_mvm_data[(port - 1) * VCON_CONSOLE_RING]).addr(), VCON_CONSOLE_RING)
    return r


def vcon_ring_from_mvm(port: u64) -> Ptr[ByteRing]:
    """The bytes the MVM wrote on `port` (port 0's are discarded, so never stored)."""
    r = addr_of(VCON_FROM_MVM[port])
    if port == VCON_CONTROL_PORT:
        ring_setup(r, addr_of(vcon_control_in[0]).addr(), VCON_CONTROL_RING)
    elif port != VCON_LOG_PORT:
        ring_setup(r, addr_of(vcon_from_mvm_data[(port - 1) * VCON_CONSOLE_RING]).addr(), VCON_CONSOLE_RING)
    return r


def vcon_of(vm: Ptr[Vm]) -> Ptr[Vcon]:
    return addr_of(VCON[vm.index])


def vcon_mvm() -> Ptr[Vcon]:
    """The multiport console, or null before it is attached."""
    if vcon_mvm_index >= VM_MAX:
        return null(Vcon)
    d = addr_of(VCON[vcon_mvm_index])
    return d if d.attached != 0 else null(Vcon)


def vcon_of_port(port: u64) -> Ptr[Vcon]:
    """The single-port console of the GVM whose id is `port`, or null."""
    for i in range(VM_MAX):
        d = addr_of(VCON[i])
        if d.attached != 0 and d.multiport == 0 and u64(d.port_id) == port:
            return d
    return null(Vcon)


def vcon_lock(d: Ptr[Vcon]) -> None:
    spin_lock(addr_of(d.t.lock))


def vcon_unlock(d: Ptr[Vcon]) -> None:
    spin_unlock(addr_of(d.t.lock))


def vcon_rx_queue(port: u64) -> u64:
    return u64(0) if port == 0 else port * 2 + 2


def vcon_tx_queue(port: u64) -> u64:
    return u64(1) if port == 0 else port * 2 + 3


def vcon_ctrl_send(d: Ptr[Vcon], port: u64, event: u16, value: u16) -> None:
    """Queue a control message for the driver (sent when it has a buffer in the control receiveq)."""
    if d.ctrl_tail - d.ctrl_head >= u32(VCON_CTRL_MAX):
        return  # the driver does not take them: it has far more buffers than this in practice
    d.ctrl[d.ctrl_tail % VCON_CTRL_MAX] = port | (u64(event) << 32) | (u64(value) << 48)
    d.ctrl_tail += 1


def vcon_fail(d: Ptr[Vcon], v: Ptr[Vcpu]) -> None:
    vmmio_fail(addr_of(d.t), v)


def vcon_ctrl_flush(d: Ptr[Vcon], v: Ptr[Vcpu]) -> None:
    """Send the queued control messages into the driver's control receiveq buffers."""
    t = addr_of(d.t)
    vm = vmmio_vm(t)
    q = vmmio_queue(t, VCON_CONTROL_RX)
    if d.ctrl_head != d.ctrl_tail and q.ready != 0:
        vq_set_notify(vm, q, True)  # messages to send: a buffer the driver adds after the look is notified
    c = VqChain()
    buf = Array[u8, 40]()
    used = False
    while d.ctrl_head != d.ctrl_tail:
        r = vq_pop(vm, q, addr_of(c))
        if r == VQ_EMPTY:
            break
        if r == VQ_BAD:
            vcon_fail(d, v)
            return
        m = d.ctrl[d.ctrl_head % VCON_CTRL_MAX]
        d.ctrl_head += 1
        p = Ptr[u32](addr_of(buf[0]).addr())
        p[0] = u32(m & 0xFFFF_FFFF)
        p[1] = u32(m >> 32)  # event, value
        n = VCON_CONTROL_SIZE
        if u16(m >> 32) == VIRTIO_CONSOLE_PORT_NAME:
            name = cstr(b"org.pyshyper.control")
            i = u64(0)
            while name[i] != 0:
                buf[n + i] = name[i]
                i += 1
            n += i
        if c.writable < n or vq_copy(vm, q, addr_of(c), True, u64(0), addr_of(buf[0]).addr(), n) != n:
            vcon_fail(d, v)
            return
        vq_push(vm, q, u64(c.head), n)
        used = True
    if d.ctrl_head == d.ctrl_tail and q.ready != 0:
        vq_set_notify(vm, q, False)  # nothing to send: the driver's new buffers need no notification (2.7.10)
    if used and vq_wants_interrupt(vm, q):
        vmmio_used(t, v)


def vcon_ctrl_message(d: Ptr[Vcon], v: Ptr[Vcpu], port: u64, event: u16, value: u16) -> None:
    """A control message from the driver (5.3.6.2)."""
    if event == VIRTIO_CONSOLE_DEVICE_READY:
        if value == 1:
            for p in range(d.ports):
                vcon_ctrl_send(d, u64(p), VIRTIO_CONSOLE_DEVICE_ADD, u16(1))
        return
    if port >= u64(d.ports):
        return
    if event == VIRTIO_CONSOLE_PORT_READY:
        if value != 1:
            return
        if port != VCON_CONTROL_PORT:
            vcon_ctrl_send(d, port, VIRTIO_CONSOLE_CONSOLE_PORT, u16(1))
        else:
            vcon_ctrl_send(d, port, VIRTIO_CONSOLE_PORT_NAME, u16(1))
        vcon_ctrl_send(d, port, VIRTIO_CONSOLE_PORT_OPEN, u16(1))
    elif event == VIRTIO_CONSOLE_PORT_OPEN:
        d.guest_open[port] = u8(1) if value != 0 else u8(0)
        if port == VCON_CONTROL_PORT:
            d.work = d.work | WORK_CONTROL
        if value != 0:
            vcon_rx(d, v, port)  # what waited for it


def vcon_ctrl_receive(d: Ptr[Vcon], v: Ptr[Vcpu]) -> None:
    """The driver's control transmitq: each buffer one control message, consumed now."""
    t = addr_of(d.t)
    vm = vmmio_vm(t)
    q = vmmio_queue(t, VCON_CONTROL_TX)
    c = VqChain()
    msg = Array[u32, 2]()
    used = False
    while True:
        r = vq_pop(vm, q, addr_of(c))
        if r == VQ_EMPTY:
            break
        if r == VQ_BAD:
            vcon_fail(d, v)
            return
        n = vq_copy(vm, q, addr_of(c), False, u64(0), addr_of(msg[0]).addr(), VCON_CONTROL_SIZE)
        vq_push(vm, q, u64(c.head), u64(0))
        used = True
        if n == VCON_CONTROL_SIZE:
            vcon_ctrl_message(d, v, u64(msg[0]), u16(msg[1] & 0xFFFF), u16(msg[1] >> 16))
    if used and vq_wants_interrupt(vm, q):
        vmmio_used(t, v)
    vcon_ctrl_flush(d, v)


def vcon_port_of(d: Ptr[Vcon], port: u64) -> u64:
    """The MVM-side port a queue's bytes belong to: the port itself (multiport), or the GVM's port."""
    if d.multiport != 0:
        return port
    return u64(d.port_id)


def vcon_tx(d: Ptr[Vcon], v: Ptr[Vcpu], port: u64) -> None:
    """The driver's transmitq of `port`: every buffer consumed now, its bytes into the port's ring (the MVM's
    port 0 input is discarded; the control port takes a buffer only when it fits whole, the others drop the
    oldest bytes)."""
    t = addr_of(d.t)
    vm = vmmio_vm(t)
    q = vmmio_queue(t, vcon_tx_queue(port))
    mp = vcon_port_of(d, port)
    ring = vcon_ring_from_mvm(port) if d.multiport != 0 else vcon_ring_to_mvm(mp)
    control = d.multiport != 0 and port == VCON_CONTROL_PORT
    c = VqChain()
    buf = Array[u8, VCON_CHUNK]()
    used = False
    while True:
        if control and ring.size - ring_len(ring) < VCON_CONTROL_RING // 2:
            d.work = d.work | WORK_CONTROL  # the server reads, then the rest is taken (vcon_port_read)
            break
        r = vq_pop(vm, q, addr_of(c))
        if r == VQ_EMPTY:
            break
        if r == VQ_BAD:
            vcon_fail(d, v)
            return
        if c.readable > VCON_CONTROL_RING // 2 and control:
            vcon_fail(d, v)  # a port write is at most 32 KiB (Linux)
            return
        off = u64(0)
        while off < c.readable:
            want = c.readable - off
            if want > VCON_CHUNK:
                want = u64(VCON_CHUNK)
            n = vq_copy(vm, q, addr_of(c), False, off, addr_of(buf[0]).addr(), want)
            if d.multiport == 0 or port != VCON_LOG_PORT:
                ring_put(ring, addr_of(buf[0]).addr(), n, not control)
            if n != want:
                vcon_fail(d, v)
                return
            off += n
        vq_push(vm, q, u64(c.head), u64(0))
        used = True
        if d.multiport == 0:
            d.work = d.work | WORK_TO_MVM
        elif control:
            d.work = d.work | WORK_CONTROL
        elif port != VCON_LOG_PORT:
            d.work = d.work | (u32(1) << u32(port))
    if used and vq_wants_interrupt(vm, q):
        vmmio_used(t, v)


def vcon_is_hvc(d: Ptr[Vcon], port: u64) -> bool:
    """A console port (Linux: an hvc): every port but the multiport device's control port."""
    return d.multiport == 0 or port != VCON_CONTROL_PORT


def vcon_rx(d: Ptr[Vcon], v: Ptr[Vcpu], port: u64) -> bool:
    """Fill the driver's receiveq buffers of `port` from its ring (lock held): a console port one buffer of at
    most VCON_HVC_INBUF bytes, the control port as many as there are bytes. Whether a buffer was used."""
    t = addr_of(d.t)
    if not vmmio_running(t) or d.attached == 0:
        return False
    # A multiport driver drops what arrives on a port it has not opened (Linux: a console port opens once it is
    # a console), so the bytes wait in the ring until then.
    if d.multiport != 0 and d.guest_open[port] == 0:
        return False
    vm = vmmio_vm(t)
    q = vmmio_queue(t, vcon_rx_queue(port))
    if q.ready == 0:
        return False
    hvc = vcon_is_hvc(d, port)
    if d.multiport != 0 and port == VCON_LOG_PORT:
        # The log's next line wakes the MVM's first vCPU (its KICK), whose hart then calls here again.
        k = vm_vcpu(vm, u64(0))
        log_arm(addr_of(k.mailbox[MSG_KICK]).addr(), k.hart)
    ring = vcon_ring_to_mvm(port) if d.multiport != 0 else vcon_ring_from_mvm(u64(d.port_id))
    if ring_len(ring) != 0:
        vq_set_notify(vm, q, True)  # before the look for a buffer: one the driver adds after it is notified
    c = VqChain()
    buf = Array[u8, VCON_CHUNK]()
    used = False
    while ring_len(ring) != 0:
        r = vq_pop(vm, q, addr_of(c))
        if r == VQ_EMPTY:
            break
        if r == VQ_BAD:
            vcon_fail(d, v)
            return False
        room = c.writable
        if hvc and room > VCON_HVC_INBUF:
            room = VCON_HVC_INBUF
        off = u64(0)
        while off < room:
            want = room - off
            if want > VCON_CHUNK:
                want = u64(VCON_CHUNK)
            n = ring_get(ring, addr_of(buf[0]).addr(), want)
            if n == 0:
                break
            if vq_copy(vm, q, addr_of(c), True, off, addr_of(buf[0]).addr(), n) != n:
                vcon_fail(d, v)
                return False
            off += n
        vq_push(vm, q, u64(c.head), off)
        used = True
        if hvc:
            d.rx_out[port] = d.rx_out[port] + 1
            break
    if used and vq_wants_interrupt(vm, q):
        vmmio_used(t, v)
    return used


def vcon_notify(v: Ptr[Vcpu], taddr: u64, queue: u64) -> None:
    """QueueNotify (the device's lock held)."""
    d = Ptr[Vcon](taddr)
    if d.multiport != 0 and queue == VCON_CONTROL_RX:
        vcon_ctrl_flush(d, v)
        return
    if d.multiport != 0 and queue == VCON_CONTROL_TX:
        vcon_ctrl_receive(d, v)
        return
    port = u64(0) if queue < 2 else (queue - 2) // 2
    if port >= u64(d.ports):
        return
    if queue & 1 != 0:
        vcon_tx(d, v, port)
        return
    if not vcon_is_hvc(d, port):
        vcon_rx(d, v, port)
        # Room in the port's ring now: the server's frames that did not fit go in (core/control.py control_flush)
        d.work = d.work | WORK_CONTROL
        vcon_rx_quiet(d, port)  # an empty ring: the server's frames all fitted, none waits for room
        return
    # A console's receive buffer came back (emptied): the next bytes, or, with none, an interrupt for a used
    # buffer the driver has not read yet (it reads one per interrupt).
    if d.rx_out[port] > 0:
        d.rx_out[port] = d.rx_out[port] - 1
    if not vcon_rx(d, v, port) and d.rx_out[port] > 0:
        vmmio_used(addr_of(d.t), v)
    vcon_rx_quiet(d, port)


def vcon_rx_quiet(d: Ptr[Vcon], port: u64) -> None:
    """A port's receiveq needs no notification while the port has no bytes to send and every buffer it used
    has come back (2.7.10): Linux's virtio console notifies for each receive buffer it adds, 256 per port when
    the port appears, each an exit. vcon_rx asks for notifications again when bytes come."""
    t = addr_of(d.t)
    q = vmmio_queue(t, vcon_rx_queue(port))
    ring = vcon_ring_to_mvm(port) if d.multiport != 0 else vcon_ring_from_mvm(u64(d.port_id))
    if vmmio_running(t) and q.ready != 0 and ring_len(ring) == 0 and d.rx_out[port] == 0:
        vq_set_notify(vmmio_vm(t), q, False)


def vcon_config_read(taddr: u64, offset: u64, width: u64) -> u64:
    """5.3.4: cols and rows 0 (no VIRTIO_CONSOLE_F_SIZE), max_nr_ports, emerg_wr (write-only: reads 0)."""
    d = Ptr[Vcon](taddr)
    cfg = Array[u8, 16]()
    Ptr[u32](addr_of(cfg[4]).addr())[0] = d.ports
    value = u64(0)
    for i in range(width):
        value = value | (u64(cfg[offset + u64(i)]) << (u64(i) * 8))
    return value


def vcon_reset(taddr: u64) -> None:
    """The device's own state at a reset (Status 0): no control message pending, no port open."""
    d = Ptr[Vcon](taddr)
    d.ctrl_head = 0
    d.ctrl_tail = 0
    for p in range(VCON_PORTS):
        d.guest_open[p] = 0
        d.rx_out[p] = 0
    if d.multiport != 0:
        d.work = d.work | WORK_CONTROL  # the control port closed


# The console's MMIO handler as guest VMs' consoles get it (vcon_gvm_attach, called by the control server):
# taken from this pointer, which vcon_attach_mvm sets, not named there, since naming it counts as a call
# (LANGUAGE.md 7) and vcon_emul's work calls the control server: that would be a cycle of calls.
vcon_handler = static(Array[Callable[[Ptr[Vcpu], u64, u64, bool, Ptr[u64]], u64], 1])
vcon_handler_set: bool = False


def vcon_after(d: Ptr[Vcon], work: u32, v: Ptr[Vcpu]) -> None:
    """The work a notify left for after the device's lock: the other end of a port, the control server."""
    if work & WORK_TO_MVM != 0:
        vcon_feed_mvm(u64(d.port_id), v)
    for p in range(1, VCON_PORTS - 1):
        if (work >> u32(p)) & 1 != 0:
            vcon_feed_gvm(u64(p), v)
    if work & WORK_CONTROL != 0:
        control_poll()


def vcon_emul(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    """The console's window (core/emul.py handler): the transport under the device's lock, then its work."""
    d = vcon_of(vcpu_vm(v))
    vcon_lock(d)
    r = vmmio_access(addr_of(d.t), v, offset, width, store, value)
    work = d.work
    d.work = 0
    vcon_unlock(d)
    vcon_after(d, work, v)
    return r


def vcon_setup(vm: Ptr[Vm], irq: u64, multiport: bool, port_id: u64) -> Ptr[Vcon]:
    d = vcon_of(vm)
    d.attached = 0
    d.multiport = u32(1) if multiport else u32(0)
    d.ports = u32(VCON_PORTS) if multiport else u32(1)
    d.port_id = u32(port_id)
    d.work = 0
    features = VIRTIO_CONSOLE_F_MULTIPORT if multiport else u64(0)
    queues = u32(VCON_PORTS * 2 + 2) if multiport else u32(2)
    vmmio_init(
        addr_of(d.t),
        vm,
        irq,
        VIRTIO_ID_CONSOLE,
        features,
        queues,
        VCON_CONFIG_SIZE,
        vcon_notify,
        vcon_config_read,
        vcon_reset,
    )
    vcon_reset(d.addr())
    d.work = 0
    return d


def vcon_attach_mvm(vm: Ptr[Vm], base: u64, irq: u64) -> bool:
    """The management VM's multiport console at guest-physical `base`, on wired source `irq`."""
    global vcon_mvm_index, vcon_handler_set
    vcon_handler[0] = vcon_emul
    vcon_handler_set = True
    d = vcon_setup(vm, irq, True, u64(0))
    if not emul_add(vm, base, VIRTIO_MMIO_WINDOW, vcon_emul):
        return False
    d.attached = 1
    vcon_mvm_index = vm.index
    return True


def vcon_gvm_attach(vm: Ptr[Vm], ipa: u64, irq: u64) -> bool:
    """A guest VM's single-port console at `ipa` on wired source `irq` of its virtual interrupt controller; its
    bytes are the MVM's port `vm.id` (1 .. 7). False if the id has no port, the MVM's console is not there or the
    window cannot be added."""
    if vm.id == 0 or vm.id >= VCON_CONTROL_PORT or not vcon_handler_set:
        return False
    d = vcon_setup(vm, irq, False, vm.id)
    if not emul_add(vm, ipa, VIRTIO_MMIO_WINDOW, vcon_handler[0]):
        return False
    ring_clear(vcon_ring_to_mvm(vm.id))
    ring_clear(vcon_ring_from_mvm(vm.id))
    d.attached = 1
    return True


def vcon_gvm_reset(vm: Ptr[Vm]) -> None:
    """The GVM restarts: its console as after power-on (its driver sets it up again); the rings keep their bytes."""
    d = vcon_of(vm)
    if d.attached == 0:
        return
    vcon_lock(d)
    vmmio_reset(addr_of(d.t), True)
    d.work = 0
    vcon_unlock(d)


def vcon_gvm_detach(vm: Ptr[Vm]) -> None:
    """The GVM is removed: its console stops answering (the caller removes its emulated window with the VM)."""
    d = vcon_of(vm)
    vcon_lock(d)
    d.attached = 0
    vmmio_reset(addr_of(d.t), False)
    vcon_unlock(d)


def vcon_feed_mvm(port: u64, v: Ptr[Vcpu]) -> None:
    """Bytes waiting for the MVM on `port` go into its receive buffers (any hart; `v` the vCPU it runs)."""
    d = vcon_mvm()
    if d.addr() == 0:
        return
    vcon_lock(d)
    vcon_rx(d, v, port)
    vcon_unlock(d)


def vcon_feed_gvm(port: u64, v: Ptr[Vcpu]) -> None:
    """Bytes the MVM wrote to `port` go into GVM `port`'s receive buffers (any hart)."""
    d = vcon_of_port(port)
    if d.addr() == 0:
        return
    vcon_lock(d)
    vcon_rx(d, v, u64(0))
    vcon_unlock(d)


def vcon_console_write(vm: Ptr[Vm], src: u64, n: u64, v: Ptr[Vcpu]) -> None:
    """A GVM's console output that does not come through its virtio queues (SBI DBCN, legacy putchar): into
    the same stream, toward the MVM's port `vm.id`."""
    if vm.id == 0 or vm.id >= VCON_CONTROL_PORT:
        return
    ring_put(vcon_ring_to_mvm(vm.id), src, n, True)
    vcon_feed_mvm(vm.id, v)


def vcon_port_read(port: u64, dst: u64, n: u64) -> u64:
    """Up to n bytes the MVM wrote on `port` (the control port, or a console port whose GVM is not attached)
    into dst; how many. Transmit buffers of the control port waiting for room are taken meanwhile."""
    if port >= u64(VCON_PORTS) or port == VCON_LOG_PORT:
        return u64(0)
    got = ring_get(vcon_ring_from_mvm(port), dst, n)
    d = vcon_mvm()
    if d.addr() != 0 and port == VCON_CONTROL_PORT:
        vcon_lock(d)
        if vmmio_running(addr_of(d.t)) and vmmio_queue(addr_of(d.t), vcon_tx_queue(port)).ready != 0:
            vcon_tx(d, null(Vcpu), port)
        d.work = 0
        vcon_unlock(d)
    return got


def vcon_port_write(port: u64, src: u64, n: u64) -> u64:
    """Bytes for the MVM on `port`, fed to its receive buffers now; how many were taken (the control port
    takes what fits, a console port all of them, the oldest dropped when its ring is full)."""
    if port >= u64(VCON_PORTS):
        return u64(0)
    took = ring_put(vcon_ring_to_mvm(port), src, n, port != VCON_CONTROL_PORT)
    vcon_feed_mvm(port, null(Vcpu))
    return took


def vcon_port_pending(port: u64) -> bool:
    """The MVM wrote bytes on `port` not read yet."""
    if port >= u64(VCON_PORTS) or port == VCON_LOG_PORT:
        return False
    return ring_len(vcon_ring_from_mvm(port)) != 0


def vcon_port_open(port: u64) -> bool:
    """Whether the MVM has `port` open (PORT_OPEN from its driver)."""
    d = vcon_mvm()
    if d.addr() == 0 or port >= u64(VCON_PORTS):
        return False
    return d.guest_open[port] != 0 and vmmio_running(addr_of(d.t))


def vcon_port_dropped(port: u64) -> u64:
    """Bytes toward the MVM's `port` lost to a full ring."""
    if port >= u64(VCON_PORTS):
        return u64(0)
    return vcon_ring_to_mvm(port).dropped


def vcon_idle(v: Ptr[Vcpu]) -> None:
    """A vCPU is about to wait (WFI): what its VM's console has to read goes into its buffers first (the log,
    bytes of GVMs that arrived while the MVM's receive buffers were full)."""
    vm = vcpu_vm(v)
    d = vcon_of(vm)
    if d.attached == 0:
        return
    if d.multiport == 0:
        if ring_len(vcon_ring_from_mvm(u64(d.port_id))) != 0:
            vcon_lock(d)
            vcon_rx(d, v, u64(0))
            vcon_unlock(d)
        return
    for p in range(VCON_PORTS):
        if ring_len(vcon_ring_to_mvm(u64(p))) != 0:
            vcon_lock(d)
            vcon_rx(d, v, u64(p))
            vcon_unlock(d)


def vcon_config_notify(vm: Ptr[Vm], v: Ptr[Vcpu]) -> None:
    d = vcon_of(vm)
    vcon_lock(d)
    vmmio_config_changed(addr_of(d.t), v)
    vcon_unlock(d)
