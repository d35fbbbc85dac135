"""Test-only: the control protocol's server (hypervisor/core/control.py) with the guest VMs it makes
(hypervisor/core/gvm.py), run on the host under CPython or compiled (tests/hypervisor/fuzz.py backends): a world
of four harts, the MVM on harts 0 and 1 (its memory not from the pool), a frame pool for guest VMs, and a mock
firmware whose IPIs do what the woken hart would (a vCPU of a VM that no longer runs parks: `running` clears).

`request(...)` writes one frame into the control port and gives back the frames the server answered with;
`send(bytes)` any bytes. Frames are built with `frame(...)`, CREATE records with `create_record(...)`.
"""

from __future__ import annotations

import struct

from compiler import prelude
from compiler.prelude import places as prelude_places

MAGIC = 0x59485350
HELLO, SYSTEM_INFO, SYSTEM_SHUTDOWN, SYSTEM_REBOOT = 0x1, 0x2, 0x3, 0x4
VM_CREATE, VM_LOAD, VM_BOOT, VM_STOP, VM_REMOVE, VM_INFO, VM_LIST, VM_CONFIG_GET = range(0x10, 0x18)
SHM_CREATE, SHM_REMOVE, SHM_LIST = 0x20, 0x21, 0x22
EVENT_VM_STATE = 0x100
REQUESTS = (HELLO, SYSTEM_INFO, SYSTEM_SHUTDOWN, SYSTEM_REBOOT, *range(0x10, 0x18), SHM_CREATE, SHM_REMOVE, SHM_LIST)
OK, EPROTO, EVERSION, ETYPE, EINVAL, ENOVM, ESTATE, ENOMEM, EBUSY, ELIMIT, EPERM = range(11)
CREATED, RUNNING, STOPPED, CRASHED, REBOOTING = 1, 2, 3, 4, 5

MODULES = "hypervisor.core.control+hypervisor.arch.riscv.trap"
HARTS = 4
MVM_GPA = 0x9000_0000
MVM_RAM = 0x1_0000
POOL_SIZE = 0x60_0000  # three 2 MiB blocks (stage-2 tables come first)
EID_IPI, EID_SRST, EID_DBCN = 0x735049, 0x53525354, 0x4442434E
U64 = (1 << 64) - 1


def frame(
    type_: int,
    payload: bytes = b"",
    id_: int = 1,
    version: int = 1,
    status: int = 0,
    reserved: int = 0,
    length: int | None = None,
    magic: int = MAGIC,
) -> bytes:
    n = len(payload) if length is None else length
    return struct.pack("<IHHIIII", magic, version, type_, id_, status, n, reserved) + payload


def create_record(
    name: bytes = b"vm1",
    hart_mask: int = 0b100,
    master: int | None = None,
    regions: list[tuple[int, int]] | None = None,
    entry: int = 0x8000_0000,
    dtb: int = 0x8000_8000,
    console: tuple[int, int] = (0x1000_1000, 1),
    config: bytes = b'{"name": "vm1"}',
    vcpus: int | None = None,
    nregions: int | None = None,
    priority: int = 0,
    slice_ms: int = 0,
    sched_reserved: int = 0,
) -> bytes:
    regions = [(0x8000_0000, 0x1_0000)] if regions is None else regions
    vcpus = bin(hart_mask).count("1") if vcpus is None else vcpus
    master = max(0, (hart_mask & -hart_mask).bit_length() - 1) if master is None else master
    rec = name.ljust(32, b"\0")[:32]
    rec += struct.pack("<IIQQQQII", vcpus, master, hart_mask, entry, dtb, console[0], console[1], len(regions))
    if nregions is not None:
        rec = rec[:76] + struct.pack("<I", nregions)
    for ipa, size in regions:
        rec += struct.pack("<QQ", ipa, size)
    return rec + struct.pack("<IHBB", len(config), slice_ms, priority, sched_reserved) + config


def shm_record(
    name: bytes = b"link0",
    ipa: int = 0xA000_0000,
    size: int = 0x2000,
    doorbell: int = 0xA010_0000,
    irq: int = 8,
    vms: list[tuple[bytes, int]] | None = None,
    count: int | None = None,
    vm_ids: tuple[int, ...] = (),
) -> bytes:
    """An SHM record (SHM_CREATE's payload): `vms` (name, access 1 ro / 2 rw); `count` overrides their number."""
    vms = [(b"vm1", 2), (b"vm2", 1)] if vms is None else vms
    rec = name.ljust(32, b"\0")[:32] + struct.pack(
        "<QQQII", ipa, size, doorbell, irq, len(vms) if count is None else count
    )
    for j, (vm_name, access) in enumerate(vms[:7]):
        rec += vm_name.ljust(32, b"\0")[:32] + struct.pack("<II", access, vm_ids[j] if j < len(vm_ids) else 0)
    return rec + bytes(40 * (7 - len(vms[:7])))


def id_payload(vm_id: int, reserved: int = 0) -> bytes:
    return struct.pack("<II", vm_id, reserved)


def load_payload(vm_id: int, ipa: int, data: bytes) -> bytes:
    return struct.pack("<IIQ", vm_id, 0, ipa) + data


def parse_frames(raw: bytes) -> list[tuple[int, int, int, int, bytes]]:
    """(type, id, status, version, payload) of each frame in raw; the stream must be whole frames."""
    out = []
    k = 0
    while k < len(raw):
        magic, version, type_, id_, status, n, reserved = struct.unpack_from("<IHHIIII", raw, k)
        assert magic == MAGIC and reserved == 0, f"bad frame from the hypervisor at {k}: {raw[k : k + 24].hex()}"
        out.append((type_, id_, status, version, raw[k + 24 : k + 24 + n]))
        assert len(raw) >= k + 24 + n, "a frame cut short"
        k += 24 + n
    return out


def vm_record(raw: bytes) -> dict:
    f = struct.unpack("<II32sIIQQQQII4QQ", raw)
    keys = ("id", "state", "name", "vcpus", "boots", "hart_mask", "memory", "boot_time", "exits", "reason", "port")
    rec = dict(zip(keys, f[:11], strict=True))
    rec["name"] = rec["name"].rstrip(b"\0")
    rec["scause"], rec["stval"], rec["sepc"], rec["htval"] = f[11:15]
    return rec


def system_record(raw: bytes) -> dict:
    proto, major, minor, patch, irq, guests, harts = struct.unpack_from("<HBBBBBB", raw)
    total, free, tb, time = struct.unpack_from("<QQQQ", raw, 8)
    hart_vm = list(raw[40:56])
    vms, max_vms, page, max_payload = struct.unpack_from("<IIII", raw, 56)
    return dict(
        proto=proto,
        version=(major, minor, patch),
        irq=irq,
        aia_guests=guests,
        harts=harts,
        total=total,
        free=free,
        timebase=tb,
        time=time,
        hart_vm=hart_vm,
        vms=vms,
        max_vms=max_vms,
        page=page,
        max_payload=max_payload,
    )


class MachineOff(BaseException):
    """The firmware's system reset under CPython: it does not return."""


def machine_reset_parks(be, harts: int) -> None:
    """What `harts` harts do with an IPI while a hart resets the machine (core/machine.py machine_reset): each
    parks (machine_park), counted in harts_parked, which machine_reset waits for."""
    if "hypervisor.core.machine.resetting" not in be.statics:
        return  # a program without machine_reset
    if int.from_bytes(be.read(be.global_addr("hypervisor.core.machine.resetting"), 4), "little") != 0:
        a = be.global_addr("hypervisor.core.machine.harts_parked")
        n = int.from_bytes(be.read(a, 4), "little")
        be.write(a, (n + harts).to_bytes(4, "little"))


def machine_reset_done(be) -> None:
    """The firmware's reset: the machine starts again, no hart resetting or parked."""
    for name in ("resetting", "harts_parked"):
        if f"hypervisor.core.machine.{name}" in be.statics:
            be.write(be.global_addr(f"hypervisor.core.machine.{name}"), bytes(4))


class ControlWorld:
    def __init__(self, be) -> None:
        from tests.hypervisor.fuzz import View

        self.be, self.View = be, View
        vm_mod = be.mods["hypervisor.core.vm"]
        self.Vm, self.Vcpu = vm_mod.Vm, vm_mod.Vcpu
        self.vm_size, self.vcpu_size = prelude_places._size(self.Vm), prelude_places._size(self.Vcpu)
        self.vms_addr = be.global_addr("hypervisor.core.vm.VMS")
        self.vcpus_addr = be.global_addr("hypervisor.core.vm.VCPUS")
        self.RunQueue = vm_mod.RunQueue
        self.rq_addr = be.global_addr("hypervisor.core.vm.RQ")
        self.rq_size = prelude_places._size(self.RunQueue)
        self.aia = int(be.board.IRQ_MODE) == int(be.board.IRQ_MODE_AIA)
        self.fw: list[tuple] = []
        self.ipis: list[int] = []
        self.off = False
        prelude.mock.sbi_handler = self.firmware
        prelude.mock.csr[prelude_csr("TIME")] = 1000
        be.call("hart_features_set", False, False, False)
        be.call("vsbi_init")
        be.call("stage2_probe")
        self.pool = be.alloc(POOL_SIZE, 0x20_0000)
        assert be.call("frame_alloc_init", self.pool, POOL_SIZE)
        be.call("vm_harts_present_set", (1 << HARTS) - 1)
        be.call("vm_mark_mvm")
        self.mvm_ram = be.alloc(MVM_RAM)
        mvm = be.call("vm_setup", 0, MVM_GPA, self.mvm_ram, MVM_RAM, False)
        assert mvm and be.call("vcpu_add", mvm, 0, True) and be.call("vcpu_add", mvm, 1, True)
        m = self.vm(0)
        be.write(m.off("name")[0], b"mvm")
        m.set("hart_mask", 0b11)
        if self.aia:
            for i in range(2):
                assert be.call("irqc_vcpu_init", mvm, i, i, 0x2800_0000 + i * 0x1000)
        # its console device (core/virtio_console.py), whose ports carry the control protocol and the GVMs' consoles
        assert be.call("vcon_attach_mvm", mvm, int(be.board.MVM_VCON_BASE), int(be.board.MVM_VCON_IRQ))
        be.call("vm_mark_created")
        self.inbuf = be.alloc(0x2_0000)
        self.outbuf = be.alloc(0x1_0000)
        self.baseline_used = be.call("frame_alloc_used_pages")

    # ---- the world's state
    def vm(self, i: int):
        return self.View(self.be, self.Vm, self.vms_addr + i * self.vm_size)

    def vcpu(self, i: int):
        return self.View(self.be, self.Vcpu, self.vcpus_addr + i * self.vcpu_size)

    def vcpus_on_hart(self, hart: int) -> list[int]:
        """The VCPUS slots of the vCPUs placed on `hart` (its run queue, core/vm.py RQ), in queue order."""
        rq = self.View(self.be, self.RunQueue, self.rq_addr + hart * self.rq_size)
        return [(rq.get("vcpu", k) - self.vcpus_addr) // self.vcpu_size for k in range(rq.get("count"))]

    def vcpu_on_hart(self, hart: int) -> int | None:
        """The first vCPU placed on `hart` (the only one on a partitioned hart), None when none is."""
        on = self.vcpus_on_hart(hart)
        return on[0] if on else None

    def regions_of(self, i: int) -> list[tuple[int, int, int]]:
        """(gpa, hpa, size) of each memory region of VM slot i."""
        vm = self.vm(i)
        out = []
        roff, _ = vm.lay["region"]
        for r in range(vm.get("regions")):
            base = vm.addr + roff + 24 * r
            out.append(tuple(int.from_bytes(self.be.read(base + 8 * k, 8), "little") for k in range(3)))
        return out

    def shm(self, i: int):
        """Shared memory region slot i (core/shmem.py)."""
        t = self.be.mods["hypervisor.core.shmem"].Shm
        return self.View(self.be, t, self.be.global_addr("hypervisor.core.shmem.shm") + i * prelude_places._size(t))

    def shm_peers(self, i: int) -> list[tuple[bytes, int, int]]:
        """(name, access, VM index that maps it) of each VM region slot i names."""
        s = self.shm(i)
        peer_t = self.be.mods["hypervisor.core.shmem"].ShmPeer
        base, _ = s.off("peer")
        size = prelude_places._size(peer_t)
        out = []
        for j in range(s.get("peers")):
            raw = self.be.read(base + j * size, size)
            out.append(
                (raw[:32].rstrip(b"\0"), int.from_bytes(raw[32:40], "little"), int.from_bytes(raw[40:48], "little"))
            )
        return out

    def name_of(self, slot: int) -> bytes:
        a, _ = self.vm(slot).off("name")
        return self.be.read(a, 32).rstrip(b"\0")

    def free_pages(self) -> int:
        return self.be.call("frame_alloc_free_pages")

    # ---- the firmware, and what the other harts do
    def firmware(self, eid, fid, a0, a1, a2, a3, a4, a5):
        self.fw.append((eid, fid, a0, a1))
        if eid == EID_IPI and fid == 0:
            harts = [a1 + i for i in range(64) if a0 >> i & 1]
            machine_reset_parks(self.be, len(harts))
            for h in harts:
                self.ipis.append(h)
                if h < HARTS and (i := self.vcpu_on_hart(h)) is not None:
                    t = self.vcpu(i)
                    if self.vm(t.get("vm")).get("state") != 1 or t.get("state") != 1:  # VM_RUNNING, VCPU_STARTED
                        t.set("running", 0)  # the hart traps and parks (trap.py, vcpu.py vcpu_leave)
                    elif t.get("vm") != 0:
                        t.set("running", 1)  # an idle hart enters its started vCPU (idle.py, vcpu_run)
            return 0, 0
        if eid == EID_SRST:
            machine_reset_done(self.be)
            self.off = True
            if self.be.kind == "cpython":
                raise MachineOff
        return 0, 0

    def enter(self, vm_slot: int) -> None:
        """The harts of a booted VM's started vCPUs enter them (idle.py, vcpu_run publishes `running`)."""
        vm = self.vm(vm_slot)
        for k in range(vm.get("vcpus")):
            t = self.vcpu(vm.get("vcpu_slot", k))
            if t.get("state") == 1 and vm.get("state") == 1:
                t.set("running", 1)

    def trap_return(self, hart: int, slot: int | None = None) -> None:
        """The end of a trap of the vCPU on `hart` (trap.py trap_resume): it leaves its hart when its VM no
        longer runs, it is stopped or it is parking (then vcpu_leave clears `running`)."""
        t = self.vcpu(self.vcpu_on_hart(hart) if slot is None else slot)
        if self.vm(t.get("vm")).get("state") != 1 or t.get("state") != 1 or t.get("parking") != 0:
            t.set("parking", 0)
            t.set("running", 0)

    # ---- the control port
    def send(self, data: bytes) -> list[tuple[int, int, int, int, bytes]]:
        """Bytes into the control port; the frames that came back (responses and events)."""
        self.be.write(self.inbuf, data)
        self.be.call("control_input", self.inbuf, len(data))
        return self.take()

    def take(self) -> list[tuple[int, int, int, int, bytes]]:
        raw = b""
        while True:
            n = self.be.call("control_output", self.outbuf, 0x1_0000)
            if n == 0:
                break
            raw += self.be.read(self.outbuf, n)
        return parse_frames(raw)

    def request(self, type_: int, payload: bytes = b"", id_: int = 7, **kw) -> tuple[int, bytes]:
        """One request; (status, payload) of its response (which must be the only frame back but events)."""
        frames = [f for f in self.send(frame(type_, payload, id_, **kw)) if f[0] != EVENT_VM_STATE]
        assert len(frames) == 1, frames
        t, i, status, version, body = frames[0]
        assert t == type_ | 0x8000 and i == id_ and version == 1, frames[0]
        if status != OK:
            assert 0 < len(body) <= 200 and b"\0" not in body and body.isascii(), body
        return status, body

    def create(self, **kw) -> int:
        status, body = self.request(VM_CREATE, create_record(**kw))
        assert status == OK, body
        return struct.unpack("<II", body)[0]

    def list(self) -> list[dict]:
        status, body = self.request(VM_LIST)
        assert status == OK
        count, reserved = struct.unpack_from("<II", body)
        assert reserved == 0 and len(body) == 8 + 128 * count
        return [vm_record(body[8 + 128 * k : 8 + 128 * (k + 1)]) for k in range(count)]


def prelude_csr(name: str) -> int:
    from compiler.csrs import CSRS

    return CSRS[name]
