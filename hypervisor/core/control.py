"""The hypervisor's end of the control protocol (mvm-tools/PROTOCOL.md, version 1): the `shyper` daemon in the
MVM writes request frames into the control port of the MVM's virtio-console, this server reassembles them from
the port's byte stream, checks every field, does what they ask (core/gvm.py) and queues the response frames,
and the events (EVENT_VM_STATE) of guest VMs that changed state by themselves.

The MVM's console device (core/virtio_console.py) calls `control_poll` after bytes arrive on the control port
(port 8), when the MVM hands it receive buffers (room for frames that did not fit) or it opens or closes, and
trap.py calls `control_idle` when an MVM vCPU is about to wait or is kicked (vm_wake_mvm): the server
reads the port (`control_input`), forgets a partial frame when the port opens or closes (`control_reset`: a new
daemon starts clean), queues events, writes what it queued into the port as far as it takes it, and once the
response to a SYSTEM_SHUTDOWN / SYSTEM_REBOOT is out, does it. `control_input` and `control_output` are the
server's byte-level interface (the host tests feed it directly).

Receiving (PROTOCOL.md, Framing): bytes before a valid magic are dropped one at a time; a header whose length is
above MAX_PAYLOAD or whose reserved field is not 0 gets EPROTO and is dropped (its payload is then read as
bytes before the next magic); any other header's payload is read whole, then a version other than 1 gets
EVERSION, a nonzero status EPROTO, an unknown type ETYPE, a payload of the wrong size for its type EPROTO, and a
field out of its range EINVAL (or the code PROTOCOL.md gives), with a message naming the field.

Sending: a response or event is queued whole or not at all (it is dropped and counted when the output ring has no
room for it: a daemon that does not read cannot make the hypervisor wait).

Which harts: the control port is served on whichever hart of the MVM traps on it; `control_poll` is entered by
one hart at a time (`control_busy`; a hart that finds it taken leaves the work to the one inside, which looks
again before it leaves) and `control_spin` guards the server's state. Guest VMs' harts never call in here: they
set their VM's `event` flag (core/vm.py) and kick the MVM's first vCPU, whose hart then reports it (control_idle).
"""

from compiler.prelude import (
    Array,
    Final,
    Ptr,
    addr_of,
    amoadd_w,
    amoswap_w,
    cstr,
    noinline,
    static,
    u8,
    u32,
    u64,
)
from hypervisor.arch.riscv.hart import hart_time
from hypervisor.arch.riscv.sbi_call import SBI_SRST_REASON_NONE, SBI_SRST_WARM_REBOOT
from hypervisor.board import (
    AIA_GUESTS,
    IRQ_MODE,
    IRQ_MODE_AIA,
    MAX_HARTS,
    TIMEBASE_FREQUENCY,
    VERSION_MAJOR,
    VERSION_MINOR,
    VERSION_PATCH,
)
from hypervisor.core.frame_alloc import frame_alloc_free_pages, frame_alloc_total_pages
from hypervisor.core.gvm import (
    EINVAL,
    ENOVM,
    EPROTO,
    ETYPE,
    EVERSION,
    OK,
    GvmConfig,
    fail,
    gvm_boot,
    gvm_create,
    gvm_created_id,
    gvm_end,
    gvm_find,
    gvm_load,
    gvm_msg,
    gvm_msg_length,
    gvm_remove,
    gvm_settled,
    gvm_stop,
    msg_clear,
    msg_dec,
    msg_hex,
    msg_str,
    popcount,
)
from hypervisor.core.machine import machine_power_off, machine_reset
from hypervisor.core.shmem import SHM_MAX, SHM_VMS, shm_get
from hypervisor.core.shmem_ctl import ShmConfig, shm_create, shm_remove
from hypervisor.core.spinlock import Spinlock, spin_lock, spin_unlock
from hypervisor.core.virtio_console import vcon_port_open, vcon_port_pending, vcon_port_read, vcon_port_write
from hypervisor.core.vm import (
    MEM_REGIONS,
    RQ,
    VCPU_STARTED,
    VM_CONFIG_MAX,
    VM_CRASHED,
    VM_CREATED,
    VM_MAX,
    VM_NAME,
    VM_REBOOTING,
    VM_RUNNING,
    VMS,
    Vcpu,
    Vm,
    hart_first_vcpu,
    vcpu_traps,
    vcpu_vm,
    vm_harts_present,
    vm_vcpu,
)

MAGIC: Final = u32(0x59485350)  # the bytes "PSHY"
VERSION: Final = u32(1)
HEADER: Final = u64(24)
MAX_PAYLOAD: Final = u64(65536)
RESPONSE_BIT: Final = u32(0x8000)

# Message types
T_HELLO: Final = u32(0x0001)
T_SYSTEM_INFO: Final = u32(0x0002)
T_SYSTEM_SHUTDOWN: Final = u32(0x0003)
T_SYSTEM_REBOOT: Final = u32(0x0004)
T_SCHED_INFO: Final = u32(0x0005)
T_VM_CREATE: Final = u32(0x0010)
T_VM_LOAD: Final = u32(0x0011)
T_VM_BOOT: Final = u32(0x0012)
T_VM_STOP: Final = u32(0x0013)
T_VM_REMOVE: Final = u32(0x0014)
T_VM_INFO: Final = u32(0x0015)
T_VM_LIST: Final = u32(0x0016)
T_VM_CONFIG_GET: Final = u32(0x0017)
T_SHM_CREATE: Final = u32(0x0020)
T_SHM_REMOVE: Final = u32(0x0021)
T_SHM_LIST: Final = u32(0x0022)
T_EVENT_VM_STATE: Final = u32(0x0100)

# VM states and records as PROTOCOL.md numbers and lays them out
S_CREATED: Final = u32(1)
S_RUNNING: Final = u32(2)
S_STOPPED: Final = u32(3)
S_CRASHED: Final = u32(4)
S_REBOOTING: Final = u32(5)
SYSTEM_RECORD: Final = u64(72)
VM_RECORD: Final = u64(128)
CREATE_FIXED: Final = u64(80)
SHM_RECORD: Final = u64(344)  # name, ipa, size, doorbell_ipa, irq, vms, then 7 x (name, access, vm id)
SHM_FIXED: Final = u64(64)
SHM_ENTRY: Final = u64(40)
VCPU_RECORD: Final = u64(32)
V_STOPPED: Final = u64(0)  # vCPU states of the VCPU record (PROTOCOL.md)
V_RUNNING: Final = u64(1)
V_READY: Final = u64(2)
V_WAITING: Final = u64(3)
HART_VM_SLOTS: Final = 16
PAGE_SIZE: Final = u32(4096)

OUT_RING: Final = 32768  # queued response and event frames not yet taken by the port
RESPONSE_MAX: Final = 8192 + 24 + 8  # the largest frame sent: VM_CONFIG_GET's (VM_LIST's is 24 + 8 + 8 * 128)

ACTION_NONE: Final = u32(0)
ACTION_SHUTDOWN: Final = u32(1)
ACTION_REBOOT: Final = u32(2)

control_spin = static(Spinlock)
rx_header = static(Array[u8, 24])
rx_header_len: u64 = 0
rx_payload = static(Array[u8, 65536])
rx_payload_len: u64 = 0
rx_in_payload: bool = False
rx_length: u64 = 0  # the payload length of the header being read

response = static(Array[u8, RESPONSE_MAX])
out_ring = static(Array[u8, OUT_RING])
out_head: u64 = 0  # free-running counts: bytes [out_tail, out_head) are queued
out_tail: u64 = 0
out_dropped: u64 = 0  # frames dropped for want of room
frames_in: u64 = 0  # complete frames received (with a valid header)
pending_action: u32 = 0  # SYSTEM_SHUTDOWN / SYSTEM_REBOOT: done once its response has been taken

config = static(GvmConfig)
shm_config = static(ShmConfig)
CONTROL_PORT: Final = u64(8)  # the MVM's console port of this protocol (PROTOCOL.md, "Ports")
CHUNK: Final = 256
control_busy = static(Array[u32, 1])  # 1 while a hart is inside control_poll (amoswap)
port_open: bool = False  # the control port's state at the last look


# --------------------------------------------------------------------------------------------------------------
# Little-endian fields


def get8(p: Ptr[u8], off: u64) -> u64:
    return u64(p[off])


def get16(p: Ptr[u8], off: u64) -> u64:
    return u64(p[off]) | (u64(p[off + 1]) << 8)


def get32(p: Ptr[u8], off: u64) -> u64:
    return get16(p, off) | (get16(p, off + 2) << 16)


def get64(p: Ptr[u8], off: u64) -> u64:
    return get32(p, off) | (get32(p, off + 4) << 32)


def put8(off: u64, v: u64) -> None:
    response[off] = u8(v & 0xFF)


def put16(off: u64, v: u64) -> None:
    put8(off, v)
    put8(off + 1, v >> 8)


def put32(off: u64, v: u64) -> None:
    put16(off, v)
    put16(off + 2, v >> 16)


def put64(off: u64, v: u64) -> None:
    put32(off, v)
    put32(off + 4, v >> 32)


# --------------------------------------------------------------------------------------------------------------
# Sending


def send(mtype: u32, id: u32, status: u32, length: u64) -> None:
    """Queue the frame whose payload (length bytes) is already at response[24..]: the header, then all of it
    into the output ring, or nothing when the ring has no room for it."""
    global out_head, out_dropped
    put32(u64(0), u64(MAGIC))
    put16(u64(4), u64(VERSION))
    put16(u64(6), u64(mtype))
    put32(u64(8), u64(id))
    put32(u64(12), u64(status))
    put32(u64(16), length)
    put32(u64(20), u64(0))
    total = HEADER + length
    if total > OUT_RING - (out_head - out_tail):
        out_dropped += 1
        return
    for k in range(total):
        out_ring[(out_head + k) % OUT_RING] = response[k]
    out_head += total


def send_error(mtype: u32, id: u32, status: u32) -> None:
    """An error response: its payload is gvm_msg (the message naming the field or resource)."""
    n = gvm_msg_length()
    for k in range(n):
        response[HEADER + k] = gvm_msg[k]
    send(mtype | RESPONSE_BIT, id, status, n)


# --------------------------------------------------------------------------------------------------------------
# Records


def system_record(off: u64) -> None:
    """The SYSTEM record at response[off..off + 72]."""
    present = vm_harts_present()
    put16(off, u64(VERSION))
    put8(off + 2, VERSION_MAJOR)
    put8(off + 3, VERSION_MINOR)
    put8(off + 4, VERSION_PATCH)
    put8(off + 5, u64(1) if IRQ_MODE == IRQ_MODE_AIA else u64(0))
    put8(off + 6, AIA_GUESTS)
    put8(off + 7, popcount(present))
    put64(off + 8, frame_alloc_total_pages())
    put64(off + 16, frame_alloc_free_pages())
    put64(off + 24, TIMEBASE_FREQUENCY)
    put64(off + 32, hart_time())
    for h in range(u64(HART_VM_SLOTS)):
        who = u64(0xFF)
        first = hart_first_vcpu(h)
        if first.addr() != 0:
            who = vcpu_vm(first).id
        put8(off + 40 + h, who)
    vms = u64(0)
    for i in range(u64(VM_MAX)):
        if VMS[i].used:
            vms += 1
    put32(off + 56, vms)
    put32(off + 60, u64(VM_MAX))
    put32(off + 64, u64(PAGE_SIZE))
    put32(off + 68, MAX_PAYLOAD)


def vm_state_code(vm: Ptr[Vm]) -> u32:
    """The VM's state as PROTOCOL.md numbers it."""
    if vm.state == VM_RUNNING:
        return S_RUNNING
    if vm.state == VM_CREATED:
        return S_CREATED
    if vm.state == VM_CRASHED:
        return S_CRASHED
    if vm.state == VM_REBOOTING:
        return S_REBOOTING
    return S_STOPPED


def vm_record(off: u64, vm: Ptr[Vm]) -> None:
    """The VM record of vm at response[off..off + 128]."""
    put32(off, vm.id)
    put32(off + 4, u64(vm_state_code(vm)))
    for k in range(u64(VM_NAME)):
        put8(off + 8 + k, u64(vm.name[k]))
    put32(off + 40, vm.vcpus)
    put32(off + 44, vm.boots)
    put64(off + 48, vm.hart_mask)
    memory = u64(0)
    for i in range(vm.regions):
        memory += vm.region[i].size
    put64(off + 56, memory)
    put64(off + 64, vm.boot_time)
    exits = u64(0)
    for i in range(vm.vcpus):
        exits += vcpu_traps(vm_vcpu(vm, u64(i)))
    put64(off + 72, exits)
    put32(off + 80, u64(vm.reason))
    put32(off + 84, vm.id)  # GVM N's console is the MVM's console port N (the MVM's own: port 0, the log)
    put64(off + 88, vm.fault_scause)
    put64(off + 96, vm.fault_stval)
    put64(off + 104, vm.fault_sepc)
    put64(off + 112, vm.fault_htval)
    put64(off + 120, u64(0))


def send_event(vm: Ptr[Vm]) -> None:
    vm_record(HEADER, vm)
    send(T_EVENT_VM_STATE, u32(0), OK, VM_RECORD)


# --------------------------------------------------------------------------------------------------------------
# Requests


def bad_length(mtype: u32, id: u32, n: u64, want: u64) -> None:
    msg_clear()
    msg_str(cstr(b"payload: "))
    msg_dec(n)
    msg_str(cstr(b" bytes, this type takes "))
    msg_dec(want)
    send_error(mtype, id, EPROTO)


def id_request(mtype: u32, id: u32, p: Ptr[u8], n: u64) -> bool:
    """The `u32 id, u32 reserved` payload of VM_BOOT .. VM_CONFIG_GET: false (and the error sent) when wrong."""
    if n != 8:
        bad_length(mtype, id, n, u64(8))
        return False
    if get32(p, u64(4)) != 0:
        fail(EPROTO, cstr(b"reserved: not 0"))
        send_error(mtype, id, EPROTO)
        return False
    return True


def reply(mtype: u32, id: u32, code: u32, length: u64) -> None:
    """OK with length bytes of payload, or the error with gvm_msg."""
    if code == OK:
        send(mtype | RESPONSE_BIT, id, OK, length)
    else:
        send_error(mtype, id, code)


def do_create(id: u32, p: Ptr[u8], n: u64) -> None:
    if n < CREATE_FIXED:
        bad_length(T_VM_CREATE, id, n, CREATE_FIXED)
        return
    regions = get32(p, u64(76))
    if regions == 0 or regions > MEM_REGIONS:
        fail(EINVAL, cstr(b"regions: not 1 .. 4"))
        send_error(T_VM_CREATE, id, EINVAL)
        return
    tail = CREATE_FIXED + 16 * regions
    if n < tail + 8:
        bad_length(T_VM_CREATE, id, n, tail + 8)
        return
    config_len = get32(p, tail)
    if get8(p, tail + 7) != 0:
        fail(EPROTO, cstr(b"reserved (after priority): not 0"))
        send_error(T_VM_CREATE, id, EPROTO)
        return
    if config_len > VM_CONFIG_MAX:
        fail(EINVAL, cstr(b"config_len: above 8192"))
        send_error(T_VM_CREATE, id, EINVAL)
        return
    if n != tail + 8 + config_len:
        bad_length(T_VM_CREATE, id, n, tail + 8 + config_len)
        return
    c = addr_of(config)
    for k in range(u64(VM_NAME)):
        c.name[k] = p[k]
    c.vcpus = get32(p, u64(32))
    c.master = get32(p, u64(36))
    c.hart_mask = get64(p, u64(40))
    c.entry = get64(p, u64(48))
    c.dtb = get64(p, u64(56))
    c.console_ipa = get64(p, u64(64))
    c.console_irq = get32(p, u64(72))
    c.regions = regions
    for i in range(u64(MEM_REGIONS)):
        c.ipa[i] = 0
        c.size[i] = 0
    for i in range(regions):
        c.ipa[i] = get64(p, CREATE_FIXED + 16 * i)
        c.size[i] = get64(p, CREATE_FIXED + 16 * i + 8)
    c.config = p.addr() + tail + 8
    c.config_len = config_len
    c.slice_ms = get16(p, tail + 4)
    c.priority = get8(p, tail + 6)
    code = gvm_create(c)
    if code == OK:
        put32(HEADER, gvm_created_id())
        put32(HEADER + 4, u64(0))
    reply(T_VM_CREATE, id, code, u64(8))


def do_load(id: u32, p: Ptr[u8], n: u64) -> None:
    if n < 16:
        bad_length(T_VM_LOAD, id, n, u64(16))
        return
    if get32(p, u64(4)) != 0:
        fail(EPROTO, cstr(b"reserved: not 0"))
        send_error(T_VM_LOAD, id, EPROTO)
        return
    reply(T_VM_LOAD, id, gvm_load(get32(p, u64(0)), get64(p, u64(8)), Ptr[u8](p.addr() + 16), n - 16), u64(0))


def do_info(id: u32, vm_id: u64) -> None:
    vm = gvm_find(vm_id)
    if vm.addr() == 0:
        msg_clear()
        msg_str(cstr(b"id: no VM "))
        msg_dec(vm_id)
        send_error(T_VM_INFO, id, ENOVM)
        return
    vm_record(HEADER, vm)
    send(T_VM_INFO | RESPONSE_BIT, id, OK, VM_RECORD)


def do_list(id: u32) -> None:
    count = u64(0)
    for i in range(u64(VM_MAX)):
        vm = addr_of(VMS[i])
        if vm.used:
            vm_record(HEADER + 8 + count * VM_RECORD, vm)
            count += 1
    put32(HEADER, count)
    put32(HEADER + 4, u64(0))
    send(T_VM_LIST | RESPONSE_BIT, id, OK, 8 + count * VM_RECORD)


def vcpu_state_code(v: Ptr[Vcpu]) -> u64:
    """A vCPU's state as PROTOCOL.md numbers it (a snapshot: its hart changes it meanwhile)."""
    vm = vcpu_vm(v)
    if v.state != VCPU_STARTED or vm.state != VM_RUNNING:
        return V_STOPPED
    if amoadd_w(addr_of(v.running), u32(0)) != 0:
        return V_RUNNING
    if v.blocked != 0:
        return V_WAITING
    return V_READY


def do_sched_info(id: u32) -> None:
    """SCHED_INFO: every hart's run queue, a VCPU record per vCPU placed on it (by hart, in queue order)."""
    count = u64(0)
    for h in range(u64(0), MAX_HARTS):
        rq = addr_of(RQ[h])
        spin_lock(addr_of(rq.spin))
        for k in range(rq.count):
            v = rq.vcpu[k]
            off = HEADER + 8 + count * VCPU_RECORD
            put8(off, h)
            put8(off + 1, vcpu_vm(v).id)
            put8(off + 2, v.vcpu_id)
            put8(off + 3, v.priority)
            put8(off + 4, vcpu_state_code(v))
            put8(off + 5, u64(0))
            put16(off + 6, v.slice // (TIMEBASE_FREQUENCY // 1000))
            put64(off + 8, v.switches)
            put64(off + 16, vcpu_traps(v))
            put64(off + 24, v.wfi_exits)
            count += 1
        spin_unlock(addr_of(rq.spin))
    put32(HEADER, count)
    put32(HEADER + 4, u64(0))
    send(T_SCHED_INFO | RESPONSE_BIT, id, OK, 8 + count * VCPU_RECORD)


def do_config_get(id: u32, vm_id: u64) -> None:
    vm = gvm_find(vm_id)
    if vm.addr() == 0:
        msg_clear()
        msg_str(cstr(b"id: no VM "))
        msg_dec(vm_id)
        send_error(T_VM_CONFIG_GET, id, ENOVM)
        return
    for k in range(vm.config_len):
        response[HEADER + k] = vm.config[k]
    send(T_VM_CONFIG_GET | RESPONSE_BIT, id, OK, vm.config_len)


def shm_record(off: u64, i: u64) -> None:
    """The SHM record of shared region slot i at response[off..off + 344]."""
    s = shm_get(i)
    for k in range(u64(VM_NAME)):
        put8(off + k, u64(s.name[k]))
    put64(off + 32, s.ipa)
    put64(off + 40, s.size)
    put64(off + 48, s.doorbell)
    put32(off + 56, s.irq)
    put32(off + 60, s.peers)
    for j in range(u64(SHM_VMS)):
        e = off + SHM_FIXED + j * SHM_ENTRY
        for k in range(u64(VM_NAME)):
            put8(e + k, u64(s.peer[j].name[k]))
        put32(e + 32, s.peer[j].access)
        put32(e + 36, s.peer[j].vm)


def do_shm_create(id: u32, p: Ptr[u8], n: u64) -> None:
    if n != SHM_RECORD:
        bad_length(T_SHM_CREATE, id, n, SHM_RECORD)
        return
    c = addr_of(shm_config)
    for k in range(u64(VM_NAME)):
        c.name[k] = p[k]
    c.ipa = get64(p, u64(32))
    c.size = get64(p, u64(40))
    c.doorbell = get64(p, u64(48))
    c.irq = get32(p, u64(56))
    c.peers = get32(p, u64(60))
    for j in range(u64(SHM_VMS)):
        e = SHM_FIXED + j * SHM_ENTRY
        if j >= c.peers:
            for k in range(SHM_ENTRY):
                if p[e + k] != 0:
                    msg_clear()
                    msg_str(cstr(b"vms["))
                    msg_dec(j)
                    msg_str(cstr(b"]: not zero beyond the vms count"))
                    send_error(T_SHM_CREATE, id, EPROTO)
                    return
        elif get32(p, e + 36) != 0:
            msg_clear()
            msg_str(cstr(b"vms["))
            msg_dec(j)
            msg_str(cstr(b"].vm: not 0 in a request"))
            send_error(T_SHM_CREATE, id, EPROTO)
            return
        for k in range(u64(VM_NAME)):
            c.peer_name[j * VM_NAME + k] = p[e + k]
        c.access[j] = get32(p, e + 32)
    reply(T_SHM_CREATE, id, shm_create(c), u64(0))


def do_shm_remove(id: u32, p: Ptr[u8], n: u64) -> None:
    if n != VM_NAME:
        bad_length(T_SHM_REMOVE, id, n, u64(VM_NAME))
        return
    reply(T_SHM_REMOVE, id, shm_remove(p), u64(0))


def do_shm_list(id: u32) -> None:
    count = u64(0)
    for i in range(u64(SHM_MAX)):
        if shm_get(i).used:
            shm_record(HEADER + 8 + count * SHM_RECORD, i)
            count += 1
    put32(HEADER, count)
    put32(HEADER + 4, u64(0))
    send(T_SHM_LIST | RESPONSE_BIT, id, OK, 8 + count * SHM_RECORD)


# Not inlined into frame_done: inlined there, the -g build's code of frame_done came out 4 bytes longer than the
# plain build's (tests/build/test_dwarf.py test_debug_info_changes_no_loaded_byte), a compiler matter not yet found.
@noinline
def dispatch(version: u64, mtype: u32, id: u32, status: u64, p: Ptr[u8], n: u64) -> None:
    """One whole frame: its header's fields, then its payload's, then what it asks."""
    global pending_action
    if version != u64(VERSION):
        msg_clear()
        msg_str(cstr(b"version: "))
        msg_dec(version)
        msg_str(cstr(b" not supported (this hypervisor speaks 1)"))
        send_error(mtype, id, EVERSION)
        return
    if status != 0:
        fail(EPROTO, cstr(b"status: not 0 in a request"))
        send_error(mtype, id, EPROTO)
        return
    if mtype == T_HELLO:
        if n != 8:
            bad_length(mtype, id, n, u64(8))
            return
        if get32(p, u64(0)) != u64(VERSION):
            msg_clear()
            msg_str(cstr(b"version: "))
            msg_dec(get32(p, u64(0)))
            msg_str(cstr(b" not supported (this hypervisor speaks 1)"))
            send_error(mtype, id, EVERSION)
            return
        if get32(p, u64(4)) != 0:
            fail(EPROTO, cstr(b"reserved: not 0"))
            send_error(mtype, id, EPROTO)
            return
        system_record(HEADER)
        send(mtype | RESPONSE_BIT, id, OK, SYSTEM_RECORD)
    elif (
        mtype == T_SYSTEM_INFO
        or mtype == T_VM_LIST
        or mtype == T_SHM_LIST
        or mtype == T_SYSTEM_SHUTDOWN
        or mtype == T_SYSTEM_REBOOT
        or mtype == T_SCHED_INFO
    ):
        if n != 0:
            bad_length(mtype, id, n, u64(0))
            return
        if mtype == T_SHM_LIST:
            do_shm_list(id)
        elif mtype == T_SCHED_INFO:
            do_sched_info(id)
        elif mtype == T_SYSTEM_INFO:
            system_record(HEADER)
            send(mtype | RESPONSE_BIT, id, OK, SYSTEM_RECORD)
        elif mtype == T_VM_LIST:
            do_list(id)
        else:
            send(mtype | RESPONSE_BIT, id, OK, u64(0))
            pending_action = ACTION_SHUTDOWN if mtype == T_SYSTEM_SHUTDOWN else ACTION_REBOOT
    elif mtype == T_VM_CREATE:
        do_create(id, p, n)
    elif mtype == T_VM_LOAD:
        do_load(id, p, n)
    elif mtype == T_SHM_CREATE:
        do_shm_create(id, p, n)
    elif mtype == T_SHM_REMOVE:
        do_shm_remove(id, p, n)
    elif (
        mtype == T_VM_BOOT
        or mtype == T_VM_STOP
        or mtype == T_VM_REMOVE
        or mtype == T_VM_INFO
        or mtype == T_VM_CONFIG_GET
    ):
        if not id_request(mtype, id, p, n):
            return
        vm_id = get32(p, u64(0))
        if mtype == T_VM_BOOT:
            reply(mtype, id, gvm_boot(vm_id), u64(0))
        elif mtype == T_VM_STOP:
            reply(mtype, id, gvm_stop(vm_id), u64(0))
        elif mtype == T_VM_REMOVE:
            reply(mtype, id, gvm_remove(vm_id), u64(0))
        elif mtype == T_VM_INFO:
            do_info(id, vm_id)
        else:
            do_config_get(id, vm_id)
    else:
        msg_clear()
        msg_str(cstr(b"type: "))
        msg_hex(u64(mtype))
        msg_str(cstr(b" is not a request of protocol 1"))
        send_error(mtype, id, ETYPE)


# --------------------------------------------------------------------------------------------------------------
# Reassembly


def magic_byte(i: u64) -> u8:
    return u8((MAGIC >> u32(8 * i)) & 0xFF)


def header_done() -> None:
    """rx_header holds a whole header with a valid magic: refuse it, or start reading its payload."""
    global rx_header_len, rx_in_payload, rx_length, rx_payload_len
    h = addr_of(rx_header[0])
    rx_header_len = 0
    length = get32(h, u64(16))
    if length > MAX_PAYLOAD or get32(h, u64(20)) != 0:
        if length > MAX_PAYLOAD:
            msg_clear()
            msg_str(cstr(b"length: "))
            msg_dec(length)
            msg_str(cstr(b" is above 65536"))
        else:
            fail(EPROTO, cstr(b"reserved: not 0"))
        send_error(u32(get16(h, u64(6))), u32(get32(h, u64(8))), EPROTO)
        return
    rx_length = length
    rx_payload_len = 0
    rx_in_payload = True
    if length == 0:
        frame_done()


def frame_done() -> None:
    global rx_in_payload, frames_in
    rx_in_payload = False
    frames_in += 1
    h = addr_of(rx_header[0])
    version = get16(h, u64(4))
    mtype = u32(get16(h, u64(6)))
    rid = u32(get32(h, u64(8)))
    status = get32(h, u64(12))
    dispatch(version, mtype, rid, status, addr_of(rx_payload[0]), rx_length)


def control_input_locked(src: Ptr[u8], n: u64) -> None:
    global rx_header_len, rx_payload_len
    k = u64(0)
    while k < n:
        if rx_in_payload:
            take = rx_length - rx_payload_len
            if take > n - k:
                take = n - k
            for j in range(take):
                rx_payload[rx_payload_len + j] = src[k + j]
            rx_payload_len += take
            k += take
            if rx_payload_len == rx_length:
                frame_done()
            continue
        b = src[k]
        k += 1
        if rx_header_len < 4 and b != magic_byte(rx_header_len):
            # resynchronise: the magic's four bytes differ, so only this byte itself may start a new one
            rx_header_len = 0
            if b != magic_byte(u64(0)):
                continue
        rx_header[rx_header_len] = b
        rx_header_len += 1
        if rx_header_len == HEADER:
            header_done()


def control_input(src: Ptr[u8], n: u64) -> None:
    """Bytes the MVM wrote to the control port (src: host memory, n bytes): frames are completed, done and
    answered as they arrive; events are queued after them."""
    spin_lock(addr_of(control_spin))
    control_input_locked(src, n)
    events_locked()
    spin_unlock(addr_of(control_spin))


def control_output(dst: Ptr[u8], room: u64) -> u64:
    """Move up to `room` queued bytes (responses, events; in order) to dst; how many."""
    global out_tail
    spin_lock(addr_of(control_spin))
    n = u64(0)
    while n < room and out_tail != out_head:
        dst[n] = out_ring[out_tail % OUT_RING]
        out_tail += 1
        n += 1
    spin_unlock(addr_of(control_spin))
    return n


def control_pending() -> u64:
    """Bytes queued for the MVM."""
    return out_head - out_tail


def control_reset() -> None:
    """The port was opened or closed: forget a partial frame and whatever was not taken."""
    global rx_header_len, rx_in_payload, out_tail
    spin_lock(addr_of(control_spin))
    rx_header_len = 0
    rx_in_payload = False
    out_tail = out_head
    spin_unlock(addr_of(control_spin))


def events_locked() -> None:
    """EVENT_VM_STATE for each guest VM that changed state by itself (SRST, a fault) since the last look."""
    for i in range(u64(1), u64(VM_MAX)):
        vm = addr_of(VMS[i])
        if vm.used and vm.dynamic and amoadd_w(addr_of(vm.event), u32(0)) != 0 and gvm_settled(vm):
            amoswap_w(addr_of(vm.event), u32(0))
            send_event(vm)


def control_act() -> None:
    """Once the response to a SYSTEM_SHUTDOWN or SYSTEM_REBOOT has been taken: every guest VM ends, then the
    machine powers off or resets."""
    global pending_action
    spin_lock(addr_of(control_spin))
    action = pending_action
    if action != ACTION_NONE and out_head != out_tail:
        action = ACTION_NONE  # its response is still on its way
    if action != ACTION_NONE:
        pending_action = ACTION_NONE
        for i in range(u64(1), u64(VM_MAX)):
            vm = addr_of(VMS[i])
            if vm.used and vm.dynamic and vm.state == VM_RUNNING:
                gvm_end(vm)
    spin_unlock(addr_of(control_spin))
    if action == ACTION_SHUTDOWN:
        machine_power_off(False)
    elif action == ACTION_REBOOT:
        machine_reset(SBI_SRST_WARM_REBOOT, SBI_SRST_REASON_NONE, vm_harts_present())


def control_events() -> None:
    """Queue the events of guest VMs that changed state by themselves."""
    spin_lock(addr_of(control_spin))
    events_locked()
    spin_unlock(addr_of(control_spin))


def control_flush() -> None:
    """Queued frames into the control port, as far as it takes them (the rest waits for the next poll)."""
    global out_tail
    buf = Array[u8, CHUNK]()
    spin_lock(addr_of(control_spin))
    while out_tail != out_head:
        n = out_head - out_tail
        if n > CHUNK:
            n = CHUNK
        for k in range(n):
            buf[k] = out_ring[(out_tail + k) % OUT_RING]
        took = vcon_port_write(CONTROL_PORT, addr_of(buf[0]).addr(), n)
        out_tail += took
        if took < n:
            break
    spin_unlock(addr_of(control_spin))


def control_serve() -> None:
    global port_open
    now = vcon_port_open(CONTROL_PORT)
    if now != port_open:
        port_open = now
        control_reset()
    buf = Array[u8, CHUNK]()
    while True:
        n = vcon_port_read(CONTROL_PORT, addr_of(buf[0]).addr(), CHUNK)
        if n == 0:
            break
        control_input(addr_of(buf[0]), n)
    control_events()
    control_flush()


def control_work() -> bool:
    """Something for the server: bytes or an open/close on the port, queued frames, a guest VM's event, an
    action whose response is out."""
    if vcon_port_open(CONTROL_PORT) != port_open or vcon_port_pending(CONTROL_PORT) or out_head != out_tail:
        return True
    if pending_action != ACTION_NONE:
        return True
    for i in range(u64(1), u64(VM_MAX)):
        if VMS[i].used and amoadd_w(addr_of(VMS[i].event), u32(0)) != 0:
            return True
    return False


def control_poll() -> None:
    """Serve the control port (any hart of the MVM). A hart that finds another one inside leaves the work to
    it, which looks once more before it leaves."""
    while True:
        if amoswap_w(addr_of(control_busy[0]), u32(1)) != 0:
            return
        control_serve()
        amoswap_w(addr_of(control_busy[0]), u32(0))
        if not control_work() or pending_action != ACTION_NONE:
            break
    control_act()


def control_idle() -> None:
    """An MVM vCPU is about to wait: serve what is there (a guest VM's event, frames the port could not take)."""
    if control_work():
        control_poll()
