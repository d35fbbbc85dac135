"""A model of the hypervisor's end of the control port, for the host tests of the `shyper` daemon and CLI.

This is a TEST DOUBLE, not the hypervisor: it implements mvm-tools/PROTOCOL.md (frames, every message, the checks
the hypervisor makes on VM_CREATE / VM_LOAD / VM_BOOT, the frame pool's page accounting, VM states and
EVENT_VM_STATE) in plain Python over one end of a socketpair, so that the daemon can be driven through its whole
protocol without QEMU. The real end is hypervisor/core/control.py, tested by the boot tests.

Run queues follow hypervisor/core/sched.py's rules as SCHED_INFO shows them: each vCPU is placed on a hart for its
life (at most RQ_MAX share one, VCPU_MAX in all; in AIA mode each takes one of its hart's `aia_guests` guest
interrupt files, the MVM's included); a vCPU is runnable when it is started (a VM's master at VM_BOOT, the others
by `guest_hart_start`), its VM runs and it is not blocked in a WFI (`guest_wfi` / `guest_interrupt`: only on a
shared hart; a vCPU alone on its hart waits in place, still running); a hart runs its highest-priority runnable
vCPU, among equals the one it runs already, else the one that waited longest (`guest_slice_end` ends a
round-robin slice). A shared hart counts a switch to a vCPU whenever it takes another vCPU than the one it held
(none after it found nothing runnable); a hart with one vCPU counts none (the fast path: no scheduler).

Its frames are built with `struct` here, not with shyper.proto, so a mistake in the daemon's codec cannot cancel
out against the same mistake on this side.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

MAGIC = 0x59485350
HDR = struct.Struct("<IHHIIII")
MAX_PAYLOAD = 65536
PAGE = 4096
VM_MAX = 8
OK, EPROTO, EVERSION, ETYPE, EINVAL, ENOVM, ESTATE, ENOMEM, EBUSY, ELIMIT, EPERM = range(11)
CREATED, RUNNING, STOPPED, CRASHED, REBOOTING = 1, 2, 3, 4, 5
V_STOPPED, V_RUNNING, V_READY, V_WAITING = 0, 1, 2, 3  # the VCPU record's states
VCPU_MAX = 16  # vCPU slots of the hypervisor (core/vm.py)
RQ_MAX = 8  # vCPUs placed on one hart
SLICE_DEFAULT_MS = 10
SLICE_MAX_MS = 1000
EVENT_VM_STATE = 0x0100
PLIC = (0x0C00_0000, 0x60_0000)
APLIC = (0x0D00_0000, 0x8000)
IMSIC_BASE = 0x2800_0000


SHM_RECORD = 344  # name, ipa, size, doorbell_ipa, irq, vms, then 7 x (name, access, vm id)


@dataclass
class Shm:
    name: str
    ipa: int
    size: int
    doorbell: int
    irq: int
    vms: list[tuple[str, int]]  # (name, access 1 ro / 2 rw)
    users: dict[str, int] = field(default_factory=dict)  # name -> id of the VM that maps it

    def record(self) -> bytes:
        out = struct.pack("<32sQQQII", self.name.encode(), self.ipa, self.size, self.doorbell, self.irq, len(self.vms))
        for name, access in self.vms:
            out += struct.pack("<32sII", name.encode(), access, self.users.get(name, 0))
        return out + bytes(40 * (7 - len(self.vms)))


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Vcpu:
    vm_id: int
    index: int
    hart: int
    priority: int = 0
    slice_ms: int = SLICE_DEFAULT_MS
    started: bool = False
    blocked: bool = False  # in a trapped WFI, nothing pending
    switches: int = 0
    last_run: int = 0  # its hart's switch clock when it last entered
    exits: int = 0
    wfi_exits: int = 0


@dataclass
class Vm:
    id: int
    name: str
    vcpus: int
    master: int
    hart_mask: int
    entry: int
    dtb: int
    console: tuple[int, int]
    regions: list[tuple[int, int]]
    config: bytes
    state: int = CREATED
    boots: int = 0
    boot_time: int = 0
    reason: int = 0
    fault: tuple[int, int, int, int] = (0, 0, 0, 0)
    pages: dict[int, bytearray] = field(default_factory=dict)  # guest page number -> contents (sparse)
    cpus: list[Vcpu] = field(default_factory=list)  # vCPU i on the i-th hart of hart_mask

    @property
    def exits(self) -> int:
        return sum(c.exits for c in self.cpus)

    def read(self, ipa: int, n: int) -> bytes:
        out = bytearray()
        while n:
            page, off = divmod(ipa, PAGE)
            take = min(n, PAGE - off)
            out += self.pages.get(page, bytes(PAGE))[off : off + take]
            ipa += take
            n -= take
        return bytes(out)

    def write(self, ipa: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            page, off = divmod(ipa + pos, PAGE)
            take = min(len(data) - pos, PAGE - off)
            self.pages.setdefault(page, bytearray(PAGE))[off : off + take] = data[pos : pos + take]
            pos += take

    @property
    def memory(self) -> int:
        return sum(s for _, s in self.regions)


class HypervisorModel:
    """The hypervisor end over `sock` (`attach` another socket to model a restarted daemon's fresh open)."""

    def __init__(
        self, harts: int = 4, irq_mode: int = 0, aia_guests: int = 0, total_pages: int = 0x40000, mvm_harts=(0, 1)
    ) -> None:
        self.harts = harts
        self.irq_mode = irq_mode
        self.aia_guests = aia_guests
        self.total_pages = total_pages
        self.free_pages = total_pages
        self.time = 1_000_000
        self.timebase = 10_000_000
        mask = sum(1 << h for h in mvm_harts)
        self.rq: list[list[Vcpu]] = [[] for _ in range(16)]  # per hart, the vCPUs placed on it in order
        self.held: list[Vcpu | None] = [None] * 16  # per hart, the vCPU whose state it holds
        self.clock = [0] * 16  # per hart, its switches
        self.vms: dict[int, Vm] = {
            0: Vm(0, "mvm", len(mvm_harts), mvm_harts[0], mask, 0, 0, (0, 0), [(0x9000_0000, 0x2000_0000)], b"")
        }
        self.vms[0].state = RUNNING
        self.vms[0].boots = 1
        self.shm: list[Shm] = []
        self._place(self.vms[0], 0, SLICE_DEFAULT_MS)
        for c in self.vms[0].cpus:
            c.started = True
        self.schedule()
        self.requests: list[tuple[int, int]] = []
        self._pending_events: list[bytes] = []  # records of VMs a request changed: events before the response
        self.powered_off = False  # (type, status) of every request answered
        self._out: Callable[[bytes], None] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- transport --------------------------------------------------------------------------------------------------

    def attach(self, sock: socket.socket) -> None:
        """The port was opened (a daemon started): a partial frame is forgotten."""
        self._out = sock.sendall
        self._thread = threading.Thread(target=self._loop, args=(sock.recv,), daemon=True)
        self._thread.start()

    def attach_fd(self, fd: int) -> None:
        """The same over a file descriptor (a pty's master end, for the daemon run as a process)."""

        def write_all(data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        self._out = write_all
        self._thread = threading.Thread(target=self._loop, args=(lambda n: os.read(fd, n),), daemon=True)
        self._thread.start()

    def send(self, type_: int, rid: int, status: int, payload: bytes) -> None:
        self.send_raw(HDR.pack(MAGIC, 1, type_, rid, status, len(payload), 0) + payload)

    def send_raw(self, data: bytes) -> None:
        assert self._out is not None
        with self._lock:
            self._out(data)

    def _loop(self, recv: Callable[[int], bytes]) -> None:
        buf = b""
        skip = 0
        while True:
            try:
                data = recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            buf += data
            while True:
                if skip:
                    n = min(skip, len(buf))
                    buf, skip = buf[n:], skip - n
                    if skip:
                        break
                at = buf.find(struct.pack("<I", MAGIC))
                if at < 0:
                    buf = buf[-3:]
                    break
                buf = buf[at:]
                if len(buf) < HDR.size:
                    break
                _, version, type_, rid, status, length, reserved = HDR.unpack_from(buf)
                if length > MAX_PAYLOAD or reserved:
                    buf = buf[HDR.size :]
                    self.send(type_ | 0x8000, rid, EPROTO, b"header discarded")
                    continue
                if version != 1:
                    buf, skip = buf[HDR.size :], length
                    self.send(type_ | 0x8000, rid, EVERSION, b"version")
                    continue
                if len(buf) < HDR.size + length:
                    break
                payload, buf = buf[HDR.size : HDR.size + length], buf[HDR.size + length :]
                self._request(type_, rid, status, payload)

    def _request(self, type_: int, rid: int, status: int, payload: bytes) -> None:
        handler = self.HANDLERS.get(type_)
        try:
            if handler is None:
                raise Refused(ETYPE, f"unknown message type {type_:#x}")
            if status:
                raise Refused(EPROTO, "status must be 0 in a request")
            answer = handler(self, payload)
        except Refused as e:
            self.requests.append((type_, e.code))
            self.send(type_ | 0x8000, rid, e.code, str(e).encode()[:200])
            return
        self.requests.append((type_, OK))
        for record in self._pending_events:  # the state changed before the answer goes out
            self.send(EVENT_VM_STATE, 0, 0, record)
        self._pending_events = []
        self.send(type_ | 0x8000, rid, OK, answer)

    # -- run queues ---------------------------------------------------------------------------------------------------

    def _place(self, vm: Vm, priority: int, slice_ms: int) -> None:
        """vCPU i on the (i mod k)-th of the k harts of the mask (hypervisor/core/gvm.py gvm_vcpu_hart)."""
        harts = [h for h in range(16) if vm.hart_mask >> h & 1]
        for i in range(max(vm.vcpus, len(harts))):
            h = harts[i % len(harts)]
            c = Vcpu(vm.id, len(vm.cpus), h, priority, slice_ms)
            vm.cpus.append(c)
            self.rq[h].append(c)

    def runnable(self, c: Vcpu) -> bool:
        return c.started and not c.blocked and self.vms[c.vm_id].state == RUNNING

    def running(self, hart: int) -> Vcpu | None:
        """The vCPU the hart runs: its highest-priority runnable one; among equals the one it holds, else the one
        that waited longest (then the first placed)."""
        ready = [c for c in self.rq[hart] if self.runnable(c)]
        if not ready:
            return None
        top = max(c.priority for c in ready)
        held = self.held[hart]
        if held is not None and held in ready and held.priority == top:
            return held
        return min((c for c in ready if c.priority == top), key=lambda c: c.last_run)

    def shared(self, hart: int) -> bool:
        return len(self.rq[hart]) > 1

    def schedule(self) -> None:
        """Every hart takes the vCPU it should run now (on a shared hart a switch when it is another than it
        held: core/idle.py hart_wait, core/sched.py sched_switch_to)."""
        for h in range(16):
            pick = self.running(h)
            if pick is not None and pick is not self.held[h] and self.shared(h):
                self.clock[h] += 1
                pick.last_run = self.clock[h]
                pick.switches += 1
            self.held[h] = pick

    def vcpu_state(self, c: Vcpu) -> int:
        if not c.started or self.vms[c.vm_id].state != RUNNING:
            return V_STOPPED
        if self.running(c.hart) is c:
            return V_RUNNING
        return V_WAITING if c.blocked else V_READY

    # -- records ----------------------------------------------------------------------------------------------------

    def system_record(self) -> bytes:
        hart_vm = bytearray([0xFF] * 16)
        for h in range(16):
            if self.rq[h]:
                hart_vm[h] = self.rq[h][0].vm_id  # the first vCPU placed on it
        self.time += 12345
        return struct.pack(
            "<HBBBBBBQQQQ16sIIII",
            1,
            0,
            4,
            0,
            self.irq_mode,
            self.aia_guests,
            self.harts,
            self.total_pages,
            self.free_pages,
            self.timebase,
            self.time,
            bytes(hart_vm),
            len(self.vms),
            VM_MAX,
            PAGE,
            MAX_PAYLOAD,
        )

    def vm_record(self, vm: Vm) -> bytes:
        return struct.pack(
            "<II32sIIQQQQIIQQQQQ",
            vm.id,
            vm.state,
            vm.name.encode().ljust(32, b"\0"),
            vm.vcpus,
            vm.boots,
            vm.hart_mask,
            vm.memory,
            vm.boot_time,
            vm.exits,
            vm.reason,
            vm.id,
            *vm.fault,
            0,
        )

    def vcpu_record(self, c: Vcpu) -> bytes:
        return struct.pack(
            "<BBBBBBHQQQ",
            c.hart,
            c.vm_id,
            c.index,
            c.priority,
            self.vcpu_state(c),
            0,
            c.slice_ms,
            c.switches,
            c.exits,
            c.wfi_exits,
        )

    def event(self, vm_id: int) -> None:
        self.send(EVENT_VM_STATE, 0, 0, self.vm_record(self.vms[vm_id]))

    # -- guest-side happenings (what a GVM does to itself) ------------------------------------------------------------

    def guest_reboot(self, vm_id: int) -> None:
        """The GVM made an SRST reboot call."""
        self.vms[vm_id].state = REBOOTING
        self.schedule()
        self.event(vm_id)

    def guest_poweroff(self, vm_id: int) -> None:
        self.vms[vm_id].state = STOPPED
        self.schedule()
        self.event(vm_id)

    def guest_crash(self, vm_id: int, scause: int, stval: int, sepc: int, htval: int = 0, reason: int = 2) -> None:
        vm = self.vms[vm_id]
        vm.state, vm.reason, vm.fault = CRASHED, reason, (scause, stval, sepc, htval)
        self.schedule()
        self.event(vm_id)

    def guest_hart_start(self, vm_id: int, vcpu: int) -> None:
        """The VM's running vCPU started vCPU `vcpu` (SBI HSM hart_start)."""
        c = self.vms[vm_id].cpus[vcpu]
        c.started, c.blocked = True, False
        self.vms[vm_id].cpus[0].exits += 1
        self.schedule()

    def guest_wfi(self, vm_id: int, vcpu: int) -> None:
        """vCPU `vcpu` executed WFI with nothing pending: on a shared hart it waits and the hart takes another
        vCPU; alone on its hart it waits in place (still running)."""
        c = self.vms[vm_id].cpus[vcpu]
        c.blocked = self.shared(c.hart)
        c.exits += 1
        c.wfi_exits += 1
        self.schedule()

    def guest_interrupt(self, vm_id: int, vcpu: int) -> None:
        """An interrupt is pending for vCPU `vcpu`: it is runnable again (and preempts a lower priority)."""
        self.vms[vm_id].cpus[vcpu].blocked = False
        self.schedule()

    def guest_slice_end(self, hart: int) -> None:
        """The running vCPU's round-robin slice on `hart` is over: the longest-waiting one of its priority runs."""
        c = self.running(hart)
        if c is None:
            return
        ready = [o for o in self.rq[hart] if o is not c and self.runnable(o) and o.priority == c.priority]
        if ready:
            nxt = min(ready, key=lambda o: o.last_run)
            self.clock[hart] += 1
            nxt.last_run = self.clock[hart]
            nxt.switches += 1
            self.held[hart] = nxt

    # -- requests -----------------------------------------------------------------------------------------------------

    def _id(self, payload: bytes, allow_mvm: bool = True) -> Vm:
        if len(payload) != 8:
            raise Refused(EPROTO, f"payload of {len(payload)} bytes, not 8")
        vm_id, reserved = struct.unpack("<II", payload)
        if reserved:
            raise Refused(EPROTO, "nonzero reserved field")
        if vm_id not in self.vms:
            raise Refused(ENOVM, f"no VM with id {vm_id}")
        if vm_id == 0 and not allow_mvm:
            raise Refused(EPERM, "the MVM cannot be stopped, removed or loaded")
        return self.vms[vm_id]

    def h_hello(self, p: bytes) -> bytes:
        if len(p) != 8:
            raise Refused(EPROTO, "HELLO payload is 8 bytes")
        if struct.unpack("<II", p) != (1, 0):
            raise Refused(EVERSION, "protocol version 1 only")
        return self.system_record()

    def h_info(self, p: bytes) -> bytes:
        if p:
            raise Refused(EPROTO, "SYSTEM_INFO has no payload")
        return self.system_record()

    def h_power(self, p: bytes) -> bytes:
        if p:
            raise Refused(EPROTO, "no payload")
        self.powered_off = True
        return b""

    def h_create(self, p: bytes) -> bytes:
        if len(p) < 80 + 16 + 8:
            raise Refused(EPROTO, "CREATE record too short")
        name_raw, vcpus, master, mask, entry, dtb, con_ipa, con_irq, nreg = struct.unpack_from("<32sIIQQQQII", p)
        if not 1 <= nreg <= 4:
            raise Refused(EINVAL, f"regions: {nreg} is not 1 .. 4")
        regions = [struct.unpack_from("<QQ", p, 80 + 16 * i) for i in range(nreg)]
        off = 80 + 16 * nreg
        if len(p) < off + 8:
            raise Refused(EPROTO, "CREATE record too short")
        clen, slice_ms, priority, reserved = struct.unpack_from("<IHBB", p, off)
        if reserved:
            raise Refused(EPROTO, "reserved (after priority): not 0")
        if clen > 8192 or len(p) != off + 8 + clen:
            raise Refused(EPROTO, "config_len does not match")
        name = name_raw.split(b"\0")[0]
        if not 1 <= len(name) <= 31 or not all(0x21 <= b <= 0x7E for b in name) or name_raw[len(name) :].strip(b"\0"):
            raise Refused(EINVAL, "name: 1 .. 31 printable bytes")
        for v in self.vms.values():
            if v.name == name.decode():
                raise Refused(EINVAL, f"name: vm{v.id} is already called so")
        if vcpus < bin(mask).count("1") or not vcpus:
            raise Refused(EINVAL, "vcpus: fewer than the harts in hart_mask")
        if vcpus > VCPU_MAX:
            raise Refused(EINVAL, "vcpus: above 16")
        if not mask >> master & 1:
            raise Refused(EINVAL, f"master: hart {master} is not in hart_mask")
        for h in range(64):
            if mask >> h & 1 and h >= self.harts:
                raise Refused(EINVAL, f"hart_mask: hart {h} does not exist")
        devices = [(con_ipa, 0x1000)]
        devices += [PLIC] if self.irq_mode == 0 else [APLIC, (IMSIC_BASE, vcpus * PAGE)]
        for i, (ipa, size) in enumerate(regions):
            if ipa % PAGE or size % PAGE or not size or ipa + size > 1 << 41:
                raise Refused(EINVAL, f"memory.region[{i}]: not page-aligned, empty or above 2^41")
            for j, (ipa2, size2) in enumerate(regions[:i]):
                if ipa < ipa2 + size2 and ipa2 < ipa + size:
                    raise Refused(EINVAL, f"memory.region[{i}]: overlaps region {j}")
            for base, dsize in devices:
                if ipa < base + dsize and base < ipa + size:
                    raise Refused(EINVAL, f"memory.region[{i}]: overlaps a device at {base:#x}")
        for what, a in (("entry_ipa", entry), ("dtb_ipa", dtb)):
            if not any(ipa <= a < ipa + size for ipa, size in regions):
                raise Refused(EINVAL, f"{what}: not inside a region")
        if slice_ms > SLICE_MAX_MS:
            raise Refused(EINVAL, "time_slice_ms: above 1000")
        # run queues, vCPU slots, guest interrupt files: a hart may be shared
        placed = sum(len(q) for q in self.rq)
        if placed + vcpus > VCPU_MAX:
            raise Refused(
                ELIMIT, f"cpu.num: {vcpus} vCPUs asked, {VCPU_MAX - placed} vCPU slots free (the hypervisor has 16)"
            )
        harts = [h for h in range(64) if mask >> h & 1]
        for h in range(self.harts):
            if mask >> h & 1:
                mine = sum(1 for i in range(vcpus) if harts[i % len(harts)] == h)
                if len(self.rq[h]) + mine > RQ_MAX:
                    raise Refused(EBUSY, f"hart {h} is full: {RQ_MAX} vCPUs share it already")
                free = self.aia_guests - len(self.rq[h])
                if self.irq_mode == 1 and free < mine:
                    raise Refused(
                        EBUSY,
                        f"hart {h} has no free guest interrupt file: it has {self.aia_guests} (aia-guests), each "
                        "taken by a vCPU placed on it"
                        if free <= 0
                        else f"hart {h} has {free} free guest interrupt files of {self.aia_guests} (aia-guests), "
                        f"{mine} asked",
                    )
        shared = [r for r in self.shm if any(n == name.decode() for n, _ in r.vms)]
        for r in shared:
            for ipa, size in regions:
                if r.ipa < ipa + size and ipa < r.ipa + r.size:
                    raise Refused(EINVAL, f"shared memory {r.name}: the region overlaps the VM's memory")
            if r.irq == con_irq:
                raise Refused(EINVAL, f"shared memory {r.name}: the doorbell's irq is the console's")
        pages = sum(size for _, size in regions) // PAGE + sum(r.size // PAGE for r in shared if not r.users)
        if pages > self.free_pages:
            raise Refused(ENOMEM, f"{pages} pages asked, {self.free_pages} free")
        free_ids = [i for i in range(1, VM_MAX) if i not in self.vms]
        if not free_ids:
            raise Refused(ELIMIT, "no free VM slot")
        vm_id = free_ids[0]
        self.free_pages -= pages
        vm = Vm(vm_id, name.decode(), vcpus, master, mask, entry, dtb, (con_ipa, con_irq), regions, p[len(p) - clen :])
        self.vms[vm_id] = vm
        self._place(vm, priority, slice_ms or SLICE_DEFAULT_MS)
        for r in shared:
            r.users[name.decode()] = vm_id
        json.loads(vm.config)  # the daemon sends its JSON config
        return struct.pack("<II", vm_id, 0)

    def h_load(self, p: bytes) -> bytes:
        if len(p) <= 16:
            raise Refused(EPROTO, "VM_LOAD carries no data")
        vm = self._id(p[:8], allow_mvm=False)
        (ipa,) = struct.unpack_from("<Q", p, 8)
        data = p[16:]
        if vm.state == RUNNING:
            raise Refused(ESTATE, f"{vm.name} is running")
        if not any(r <= ipa and ipa + len(data) <= r + s for r, s in vm.regions):
            raise Refused(EINVAL, f"ipa {ipa:#x} + {len(data)} is not inside one region")
        vm.write(ipa, data)
        return b""

    def h_boot(self, p: bytes) -> bytes:
        vm = self._id(p, allow_mvm=False)
        if vm.state == RUNNING:
            raise Refused(ESTATE, f"{vm.name} is running")
        vm.state, vm.reason, vm.fault = RUNNING, 0, (0, 0, 0, 0)
        vm.boots += 1
        vm.boot_time = self.time
        master = bin(vm.hart_mask & ((1 << vm.master) - 1)).count("1")  # vCPU i is on the i-th hart of the mask
        for c in vm.cpus:
            c.started, c.blocked = c.index == master, False  # the others wait for an HSM start
        vm.cpus[master].exits += 100
        self.schedule()
        self._pending_events = [self.vm_record(vm)]
        return b""

    def h_stop(self, p: bytes) -> bytes:
        vm = self._id(p, allow_mvm=False)
        if vm.state != RUNNING:
            raise Refused(ESTATE, f"{vm.name} is not running")
        vm.state, vm.reason = STOPPED, 4
        self.schedule()
        self._pending_events = [self.vm_record(vm)]
        return b""

    def h_remove(self, p: bytes) -> bytes:
        vm = self._id(p, allow_mvm=False)
        del self.vms[vm.id]
        for c in vm.cpus:
            self.rq[c.hart].remove(c)
            if self.held[c.hart] is c:
                self.held[c.hart] = None
        self.free_pages += vm.memory // PAGE
        for r in self.shm:
            if r.users.pop(vm.name, None) is not None and not r.users:
                self.free_pages += r.size // PAGE
        self.schedule()
        return b""

    def h_shm_create(self, p: bytes) -> bytes:
        if len(p) != SHM_RECORD:
            raise Refused(EPROTO, f"SHM record of {len(p)} bytes")
        raw, ipa, size, door, irq, count = struct.unpack_from("<32sQQQII", p)
        name = raw.split(b"\0")[0].decode()
        if not name or any(r.name == name for r in self.shm):
            raise Refused(EINVAL, f"name: shared memory {name} exists" if name else "name: empty")
        if not size or size % PAGE or size > 1 << 30:
            raise Refused(EINVAL, "size: not a nonzero multiple of 4096 up to 1 GiB")
        if ipa % PAGE or door % PAGE or ipa < door + PAGE and door < ipa + size:
            raise Refused(EINVAL, "ipa / doorbell_ipa: not pages, or the doorbell inside the region")
        if not 1 <= irq < 96:
            raise Refused(EINVAL, "irq: not an interrupt source 1 .. 95")
        if not 1 <= count <= 7:
            raise Refused(EINVAL, "vms: not 1 .. 7 VMs")
        vms = []
        for j in range(7):
            vraw, access, vm_id = struct.unpack_from("<32sII", p, 64 + 40 * j)
            if j >= count:
                if vraw.strip(b"\0") or access or vm_id:
                    raise Refused(EPROTO, f"vms[{j}]: not zero beyond the vms count")
                continue
            if vm_id or access not in (1, 2):
                raise Refused(EINVAL, f"vms[{j}]: access not 1 or 2, or a VM id")
            vms.append((vraw.split(b"\0")[0].decode(), access))
        for vm_name, _ in vms:
            for v in self.vms.values():
                if v.name == vm_name:
                    raise Refused(
                        EBUSY, f"vms: {vm_name} exists (vm{v.id}): shared memory is defined before the VMs that map it"
                    )
        if len(self.shm) >= 4:
            raise Refused(ELIMIT, "no free shared-memory slot (the hypervisor holds 4)")
        self.shm.append(Shm(name, ipa, size, door, irq, vms))
        return b""

    def h_shm_remove(self, p: bytes) -> bytes:
        if len(p) != 32:
            raise Refused(EPROTO, "SHM_REMOVE takes a name")
        name = p.split(b"\0")[0].decode()
        for r in self.shm:
            if r.name == name:
                if r.users:
                    vms = " ".join(f"vm{i}" for i in r.users.values())
                    raise Refused(EBUSY, f"name: {name} is mapped by {vms} (remove them first)")
                self.shm.remove(r)
                return b""
        raise Refused(EINVAL, f"name: no shared memory called {name}")

    def h_shm_list(self, p: bytes) -> bytes:
        if p:
            raise Refused(EPROTO, "SHM_LIST has no payload")
        return struct.pack("<II", len(self.shm), 0) + b"".join(r.record() for r in self.shm)

    def h_vm_info(self, p: bytes) -> bytes:
        return self.vm_record(self._id(p))

    def h_list(self, p: bytes) -> bytes:
        if p:
            raise Refused(EPROTO, "VM_LIST has no payload")
        ids = sorted(self.vms)
        return struct.pack("<II", len(ids), 0) + b"".join(self.vm_record(self.vms[i]) for i in ids)

    def h_sched(self, p: bytes) -> bytes:
        if p:
            raise Refused(EPROTO, "SCHED_INFO has no payload")
        records = [self.vcpu_record(c) for h in range(16) for c in self.rq[h]]
        return struct.pack("<II", len(records), 0) + b"".join(records)

    def h_config_get(self, p: bytes) -> bytes:
        vm = self._id(p)
        if vm.id == 0:
            raise Refused(EPERM, "the MVM has no JSON config")
        return vm.config

    HANDLERS = {
        0x0001: h_hello,
        0x0002: h_info,
        0x0003: h_power,
        0x0004: h_power,
        0x0005: h_sched,
        0x0010: h_create,
        0x0011: h_load,
        0x0012: h_boot,
        0x0013: h_stop,
        0x0014: h_remove,
        0x0015: h_vm_info,
        0x0016: h_list,
        0x0017: h_config_get,
        0x0020: h_shm_create,
        0x0021: h_shm_remove,
        0x0022: h_shm_list,
    }
