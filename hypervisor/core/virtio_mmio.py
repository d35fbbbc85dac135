"""The virtio-mmio transport, version 2 (virtio 1.2 section 4.2.2), for the devices the hypervisor emulates.

A device embeds a `VirtioMmio` as its first field and gives it its callbacks (queue notify, config space,
reset); its emulated-MMIO handler (core/emul.py) finds the device, takes the device's lock and calls
`vmmio_access`. The register map is the spec's table 4.2.2; every register is 32 bits wide and accessed naturally
aligned, the device-specific configuration space at 0x100 by bytes, halves or words: any other access, a read of
a write-only register or a write of a read-only one is EMUL_FAULT (the guest gets an access fault). Features are
negotiated (3.1.1): FEATURES_OK is refused unless the driver took VIRTIO_F_VERSION_1 and nothing the device did
not offer. Writing 0 to Status resets the device (4.2.2.1). A driver that breaks the rules of a queue gets
DEVICE_NEEDS_RESET (2.1.2) and a configuration change notification; the device stops using its queues until the
driver resets it.

The interrupt is the level of InterruptStatus on a wired source of the VM's virtual interrupt controller
(`irqc_set_line`, any hart), raised for used buffers (bit 0) and configuration changes (bit 1), lowered when the
driver acknowledges the last bit (InterruptACK).
"""

from compiler.prelude import Array, Callable, Final, Ptr, addr_of, struct, u32, u64
from hypervisor.arch.riscv.irqc import irqc_set_line, irqc_wire_irq
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT
from hypervisor.core.spinlock import Spinlock
from hypervisor.core.virtqueue import VQ_MAX_SIZE, Virtq, vq_num_ok, vq_reset, vq_setup_ok
from hypervisor.core.vm import Vcpu, Vm, vm_get

# Table 4.2.2: register offsets
VIRTIO_MMIO_MAGIC_VALUE: Final = u64(0x000)
VIRTIO_MMIO_VERSION: Final = u64(0x004)
VIRTIO_MMIO_DEVICE_ID: Final = u64(0x008)
VIRTIO_MMIO_VENDOR_ID: Final = u64(0x00C)
VIRTIO_MMIO_DEVICE_FEATURES: Final = u64(0x010)
VIRTIO_MMIO_DEVICE_FEATURES_SEL: Final = u64(0x014)
VIRTIO_MMIO_DRIVER_FEATURES: Final = u64(0x020)
VIRTIO_MMIO_DRIVER_FEATURES_SEL: Final = u64(0x024)
VIRTIO_MMIO_QUEUE_SEL: Final = u64(0x030)
VIRTIO_MMIO_QUEUE_NUM_MAX: Final = u64(0x034)
VIRTIO_MMIO_QUEUE_NUM: Final = u64(0x038)
VIRTIO_MMIO_QUEUE_READY: Final = u64(0x044)
VIRTIO_MMIO_QUEUE_NOTIFY: Final = u64(0x050)
VIRTIO_MMIO_INTERRUPT_STATUS: Final = u64(0x060)
VIRTIO_MMIO_INTERRUPT_ACK: Final = u64(0x064)
VIRTIO_MMIO_STATUS: Final = u64(0x070)
VIRTIO_MMIO_QUEUE_DESC_LOW: Final = u64(0x080)
VIRTIO_MMIO_QUEUE_DESC_HIGH: Final = u64(0x084)
VIRTIO_MMIO_QUEUE_DRIVER_LOW: Final = u64(0x090)
VIRTIO_MMIO_QUEUE_DRIVER_HIGH: Final = u64(0x094)
VIRTIO_MMIO_QUEUE_DEVICE_LOW: Final = u64(0x0A0)
VIRTIO_MMIO_QUEUE_DEVICE_HIGH: Final = u64(0x0A4)
VIRTIO_MMIO_SHM_SEL: Final = u64(0x0AC)
VIRTIO_MMIO_SHM_LEN_LOW: Final = u64(0x0B0)
VIRTIO_MMIO_SHM_LEN_HIGH: Final = u64(0x0B4)
VIRTIO_MMIO_SHM_BASE_LOW: Final = u64(0x0B8)
VIRTIO_MMIO_SHM_BASE_HIGH: Final = u64(0x0BC)
VIRTIO_MMIO_QUEUE_RESET: Final = u64(0x0C0)
VIRTIO_MMIO_CONFIG_GENERATION: Final = u64(0x0FC)
VIRTIO_MMIO_CONFIG: Final = u64(0x100)
VIRTIO_MMIO_WINDOW: Final = u64(0x1000)

VIRTIO_MMIO_MAGIC: Final = u32(0x74726976)  # "virt"
VIRTIO_MMIO_VERSION_2: Final = u32(2)
VIRTIO_VENDOR_ID: Final = u32(0x48535950)  # "PYSH"

# 2.1: device status bits
VIRTIO_STATUS_ACKNOWLEDGE: Final = u32(1)
VIRTIO_STATUS_DRIVER: Final = u32(2)
VIRTIO_STATUS_DRIVER_OK: Final = u32(4)
VIRTIO_STATUS_FEATURES_OK: Final = u32(8)
VIRTIO_STATUS_DEVICE_NEEDS_RESET: Final = u32(64)
VIRTIO_STATUS_FAILED: Final = u32(128)

VIRTIO_F_VERSION_1: Final = u64(1) << 32  # 6: feature bit 32

# 4.2.2: InterruptStatus bits
VIRTIO_MMIO_INT_VRING: Final = u32(1)
VIRTIO_MMIO_INT_CONFIG: Final = u32(2)

VIRTIO_QUEUES_MAX: Final = 20  # the multiport console's: two per port (9) and two control queues


@struct
class VirtioMmio:
    vm: u64  # its VM's index (core/vm.py VMS)
    irq: u64  # its wired source on the VM's virtual interrupt controller
    device_id: u32
    status: u32
    device_features: u64
    driver_features: u64
    device_features_sel: u32
    driver_features_sel: u32
    queue_sel: u32
    queues: u32  # queues the device has (0 .. queues-1)
    interrupt_status: u32
    config_generation: u32
    config_size: u64  # bytes of configuration space at VIRTIO_MMIO_CONFIG
    # The device's side, each called with the device's lock held and given the transport's address:
    notify: Callable[[Ptr[Vcpu], u64, u64], None]  # (current vCPU, transport, queue): buffers made available
    config_read: Callable[[u64, u64, u64], u64]  # (transport, offset, width): a config space read
    reset: Callable[[u64], None]  # (transport): the device's own state back to its initial one
    lock: Spinlock  # the device's: taken by whichever hart touches it, never with another device's lock
    vq: Array[Virtq, VIRTIO_QUEUES_MAX]


def vmmio_vm(t: Ptr[VirtioMmio]) -> Ptr[Vm]:
    return vm_get(t.vm)


def vmmio_init(
    t: Ptr[VirtioMmio],
    vm: Ptr[Vm],
    irq: u64,
    device_id: u32,
    features: u64,
    queues: u32,
    config_size: u64,
    notify: Callable[[Ptr[Vcpu], u64, u64], None],
    config_read: Callable[[u64, u64, u64], u64],
    reset: Callable[[u64], None],
) -> None:
    """A device of vm, with its wired source, its virtio device ID (5), the features it offers (VERSION_1 is
    always among them) and its queues; reset."""
    t.vm = vm.index
    t.irq = irq
    t.device_id = device_id
    t.device_features = features | VIRTIO_F_VERSION_1
    t.queues = queues if queues <= VIRTIO_QUEUES_MAX else u32(VIRTIO_QUEUES_MAX)
    t.config_size = config_size
    t.notify = notify
    t.config_read = config_read
    t.reset = reset
    t.config_generation = 0
    t.lock.next = 0
    t.lock.owner = 0
    irqc_wire_irq(vm, irq)
    vmmio_reset(t, False)


def vmmio_reset(t: Ptr[VirtioMmio], device: bool) -> None:
    """4.2.2.1 (Status written 0): every queue, the negotiated features, the status and InterruptStatus back to
    their initial values (the line low), and the device's own state when `device`."""
    t.status = 0
    t.driver_features = 0
    t.device_features_sel = 0
    t.driver_features_sel = 0
    t.queue_sel = 0
    t.interrupt_status = 0
    for i in range(VIRTIO_QUEUES_MAX):
        vq_reset(addr_of(t.vq[i]))
    if device:
        t.reset(t.addr())


def vmmio_running(t: Ptr[VirtioMmio]) -> bool:
    """The driver is done setting up (DRIVER_OK) and the device is not broken."""
    return t.status & VIRTIO_STATUS_DRIVER_OK != 0 and t.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET == 0


def vmmio_queue(t: Ptr[VirtioMmio], index: u64) -> Ptr[Virtq]:
    return addr_of(t.vq[index])


def vmmio_line(t: Ptr[VirtioMmio], current: Ptr[Vcpu]) -> None:
    irqc_set_line(vmmio_vm(t), t.irq, t.interrupt_status != 0, current)


def vmmio_interrupt(t: Ptr[VirtioMmio], bits: u32, current: Ptr[Vcpu]) -> None:
    """Raise InterruptStatus bits; the line rises with the first (`current`: the vCPU this hart runs, of any VM,
    or null). A bit already set needs no new edge: the driver acknowledges only the bits it read, so it reads
    this one again."""
    was = t.interrupt_status != 0
    t.interrupt_status = t.interrupt_status | bits
    if not was:
        vmmio_line(t, current)


def vmmio_used(t: Ptr[VirtioMmio], current: Ptr[Vcpu]) -> None:
    vmmio_interrupt(t, VIRTIO_MMIO_INT_VRING, current)


def vmmio_config_changed(t: Ptr[VirtioMmio], current: Ptr[Vcpu]) -> None:
    """The configuration space changed (4.2.2: ConfigGeneration moves, bit 1 of InterruptStatus)."""
    t.config_generation = t.config_generation + 1
    if t.status & VIRTIO_STATUS_DRIVER_OK != 0:
        vmmio_interrupt(t, VIRTIO_MMIO_INT_CONFIG, current)


def vmmio_fail(t: Ptr[VirtioMmio], current: Ptr[Vcpu]) -> None:
    """The driver broke a rule of the device or its queues: DEVICE_NEEDS_RESET (2.1.2), and a configuration
    change notification when the driver is up. Nothing is used again until the driver resets the device."""
    if t.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET != 0:
        return
    t.status = t.status | VIRTIO_STATUS_DEVICE_NEEDS_RESET
    if t.status & VIRTIO_STATUS_DRIVER_OK != 0:
        vmmio_interrupt(t, VIRTIO_MMIO_INT_CONFIG, current)


def vmmio_features_ok(t: Ptr[VirtioMmio]) -> bool:
    """3.1.1 step 5: the driver's features are a subset of the device's, VIRTIO_F_VERSION_1 among them."""
    return t.driver_features & ~t.device_features == 0 and t.driver_features & VIRTIO_F_VERSION_1 != 0


def vmmio_access_ok(t: Ptr[VirtioMmio], offset: u64, width: u64, store: bool) -> bool:
    """Whether the access is one the register map allows: a 32-bit register of the right direction, or the
    configuration space by an aligned byte, half or word inside it."""
    if offset >= VIRTIO_MMIO_CONFIG:
        if width != 1 and width != 2 and width != 4:
            return False
        rel = offset - VIRTIO_MMIO_CONFIG
        return offset & (width - 1) == 0 and rel < t.config_size and width <= t.config_size - rel
    if width != 4 or offset & 3 != 0:
        return False
    if offset <= VIRTIO_MMIO_DEVICE_FEATURES or offset == VIRTIO_MMIO_QUEUE_NUM_MAX:
        return not store
    if offset == VIRTIO_MMIO_INTERRUPT_STATUS or offset == VIRTIO_MMIO_CONFIG_GENERATION:
        return not store
    if offset == VIRTIO_MMIO_SHM_LEN_LOW or offset == VIRTIO_MMIO_SHM_LEN_HIGH:
        return not store
    if offset == VIRTIO_MMIO_SHM_BASE_LOW or offset == VIRTIO_MMIO_SHM_BASE_HIGH:
        return not store
    if offset == VIRTIO_MMIO_QUEUE_READY or offset == VIRTIO_MMIO_STATUS or offset == VIRTIO_MMIO_QUEUE_RESET:
        return True
    if (
        offset == VIRTIO_MMIO_DEVICE_FEATURES_SEL
        or offset == VIRTIO_MMIO_DRIVER_FEATURES
        or offset == VIRTIO_MMIO_DRIVER_FEATURES_SEL
        or offset == VIRTIO_MMIO_QUEUE_SEL
        or offset == VIRTIO_MMIO_QUEUE_NUM
        or offset == VIRTIO_MMIO_QUEUE_NOTIFY
        or offset == VIRTIO_MMIO_INTERRUPT_ACK
        or offset == VIRTIO_MMIO_SHM_SEL
    ):
        return store
    if offset >= VIRTIO_MMIO_QUEUE_DESC_LOW and offset <= VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        return store and (offset & 0xF) <= 4
    return False


def vmmio_read(t: Ptr[VirtioMmio], offset: u64, width: u64) -> u64:
    """A read vmmio_access_ok allowed."""
    if offset >= VIRTIO_MMIO_CONFIG:
        return t.config_read(t.addr(), offset - VIRTIO_MMIO_CONFIG, width)
    if offset == VIRTIO_MMIO_MAGIC_VALUE:
        return u64(VIRTIO_MMIO_MAGIC)
    if offset == VIRTIO_MMIO_VERSION:
        return u64(VIRTIO_MMIO_VERSION_2)
    if offset == VIRTIO_MMIO_DEVICE_ID:
        return u64(t.device_id)
    if offset == VIRTIO_MMIO_VENDOR_ID:
        return u64(VIRTIO_VENDOR_ID)
    if offset == VIRTIO_MMIO_DEVICE_FEATURES:
        if t.device_features_sel > 1:
            return u64(0)
        return (t.device_features >> (u64(t.device_features_sel) * 32)) & 0xFFFF_FFFF
    if offset == VIRTIO_MMIO_QUEUE_NUM_MAX:
        return u64(VQ_MAX_SIZE) if t.queue_sel < t.queues else u64(0)
    if offset == VIRTIO_MMIO_QUEUE_READY:
        return u64(t.vq[t.queue_sel].ready) if t.queue_sel < t.queues else u64(0)
    if offset == VIRTIO_MMIO_INTERRUPT_STATUS:
        return u64(t.interrupt_status)
    if offset == VIRTIO_MMIO_STATUS:
        return u64(t.status)
    if offset == VIRTIO_MMIO_CONFIG_GENERATION:
        return u64(t.config_generation)
    if offset == VIRTIO_MMIO_SHM_LEN_LOW or offset == VIRTIO_MMIO_SHM_LEN_HIGH:
        return u64(0xFFFF_FFFF)  # 4.2.2: no shared memory region with the selected id: length -1
    return u64(0)  # SHMBase, QueueReset: no shared memory, no queue reset in progress


def vmmio_queue_write(t: Ptr[VirtioMmio], offset: u64, v: u32, current: Ptr[Vcpu]) -> None:
    """A write to one of the selected queue's setup registers; ignored for a queue the device does not have or
    one already ready (4.2.3.2: the driver sets a queue up before it writes QueueReady)."""
    if t.queue_sel >= t.queues:
        return
    q = addr_of(t.vq[t.queue_sel])
    if offset == VIRTIO_MMIO_QUEUE_READY:
        if v == 0:
            q.ready = 0
        elif q.ready == 0:
            if vq_setup_ok(vmmio_vm(t), q):
                q.ready = 1
            else:
                vmmio_fail(t, current)
        return
    if q.ready != 0:
        return
    if offset == VIRTIO_MMIO_QUEUE_NUM:
        q.num = v if vq_num_ok(v) else u32(0)  # a size that is not a power of 2 leaves the queue unusable
    elif offset == VIRTIO_MMIO_QUEUE_DESC_LOW:
        q.desc = (q.desc & ~u64(0xFFFF_FFFF)) | u64(v)
    elif offset == VIRTIO_MMIO_QUEUE_DESC_HIGH:
        q.desc = (q.desc & 0xFFFF_FFFF) | (u64(v) << 32)
    elif offset == VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        q.driver = (q.driver & ~u64(0xFFFF_FFFF)) | u64(v)
    elif offset == VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        q.driver = (q.driver & 0xFFFF_FFFF) | (u64(v) << 32)
    elif offset == VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        q.device = (q.device & ~u64(0xFFFF_FFFF)) | u64(v)
    elif offset == VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        q.device = (q.device & 0xFFFF_FFFF) | (u64(v) << 32)


def vmmio_status_write(t: Ptr[VirtioMmio], v: u32, current: Ptr[Vcpu]) -> None:
    if v == 0:
        was = t.interrupt_status != 0
        vmmio_reset(t, True)
        if was:
            vmmio_line(t, current)
        return
    keep = t.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET  # the device's bit, not the driver's to clear
    if v & VIRTIO_STATUS_FEATURES_OK != 0 and t.status & VIRTIO_STATUS_FEATURES_OK == 0:
        if not vmmio_features_ok(t):
            v = v & ~VIRTIO_STATUS_FEATURES_OK  # refused: the driver reads it back and gives up (3.1.1 step 6)
    t.status = (v & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) | keep


def vmmio_write(t: Ptr[VirtioMmio], v: Ptr[Vcpu], offset: u64, value: u64) -> None:
    """A write vmmio_access_ok allowed (configuration space writes are ignored: our devices' are read-only)."""
    w = u32(value)
    if offset >= VIRTIO_MMIO_CONFIG:
        return
    if offset == VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        t.device_features_sel = w
    elif offset == VIRTIO_MMIO_DRIVER_FEATURES:
        if t.status & VIRTIO_STATUS_FEATURES_OK == 0 and t.driver_features_sel <= 1:
            shift = u64(t.driver_features_sel) * 32
            t.driver_features = (t.driver_features & ~(u64(0xFFFF_FFFF) << shift)) | (u64(w) << shift)
    elif offset == VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        t.driver_features_sel = w
    elif offset == VIRTIO_MMIO_QUEUE_SEL:
        t.queue_sel = w
    elif offset == VIRTIO_MMIO_QUEUE_NOTIFY:
        if u64(w) < u64(t.queues) and vmmio_running(t) and t.vq[w].ready != 0:
            t.notify(v, t.addr(), u64(w))
    elif offset == VIRTIO_MMIO_INTERRUPT_ACK:
        was = t.interrupt_status != 0
        t.interrupt_status = t.interrupt_status & ~w
        if was and t.interrupt_status == 0:
            vmmio_line(t, v)
    elif offset == VIRTIO_MMIO_STATUS:
        vmmio_status_write(t, w, v)
    elif offset == VIRTIO_MMIO_SHM_SEL or offset == VIRTIO_MMIO_QUEUE_RESET:
        pass
    else:
        vmmio_queue_write(t, offset, w, v)


def vmmio_access(t: Ptr[VirtioMmio], v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    """One guest access to the transport's window (the device's lock held): EMUL_DONE or EMUL_FAULT."""
    if offset >= VIRTIO_MMIO_WINDOW or not vmmio_access_ok(t, offset, width, store):
        return EMUL_FAULT
    if offset == VIRTIO_MMIO_QUEUE_NOTIFY:
        v.virtio_notifies += 1
    elif offset == VIRTIO_MMIO_INTERRUPT_STATUS or offset == VIRTIO_MMIO_INTERRUPT_ACK:
        v.virtio_irq_regs += 1
    if store:
        vmmio_write(t, v, offset, value[0])
    else:
        value[0] = vmmio_read(t, offset, width)
    return EMUL_DONE
