"""The ``control`` fuzz target (tests/hypervisor/fuzz.py): the control protocol's server (hypervisor/core/control.py)
fed malformed and well-formed frames, split and packed any way, with garbage between them, mixed with what the
guest VMs it made do on their own harts (enter their vCPUs, SRST shutdown or reboot, a fault).

Checked after every case:
* the frames back parse; each frame the server was sent (as a reference reassembler written from PROTOCOL.md's
  framing rules finds them) gets exactly one response, in order, with its id and type, a known status, and an
  error's message of 1 .. 200 printable bytes; events are VM records with id 0;
* memory: the MVM's RAM and slots (VMS[0], its vCPUs) never change; pool pages that were free before and after
  never change; a changed page of the pool is newly allocated or in a guest VM's memory, and every guest VM's
  memory holds exactly what the VM_LOADs that were answered OK wrote into it (zero elsewhere);
* state: each guest VM's harts point at its own vCPUs, no hart has two VMs, a VM_LIST answers the slot table,
  and with no guest VM left the pool is back to where it started (no frame leaked);
* shared memory (SHM_CREATE / SHM_REMOVE / SHM_LIST among the requests): each region's users are exactly the
  VMs that exist under a name it lists, it has frames (marked used in the pool) iff it has users, and each VM's
  stage 2 maps its address iff the region names the VM, read-only (R) or read-write (RW) as named, never X.
"""

from __future__ import annotations

import random
import struct

from tests.hypervisor.control_world import (
    EVENT_VM_STATE,
    MAGIC,
    POOL_SIZE,
    REQUESTS,
    SHM_CREATE,
    SHM_LIST,
    SHM_REMOVE,
    SYSTEM_REBOOT,
    SYSTEM_SHUTDOWN,
    VM_CREATE,
    VM_LIST,
    VM_LOAD,
    ControlWorld,
    create_record,
    frame,
    id_payload,
    load_payload,
    prelude_csr,
    shm_record,
    vm_record,
)

NAMES = (b"vm1", b"vm2", b"a", b"mvm", b"", b"x" * 31, b"x" * 32, b"sp ace", b"\xffhi")
IPAS = (0x8000_0000, 0x8001_0000, 0x8000_8000, 0x8800_0000, 0x0C00_0000, 0x0D00_0000, 0x1000_1000, 0x2800_0000)
SIZES = (0x1000, 0x2000, 0x1_0000, 0x20_0000, 0, 0x1800, 0x1000_0000, 1 << 63)
WEIGHTED = (VM_CREATE,) * 3 + (VM_LOAD,) * 4 + (0x12,) * 3 + (0x13,) * 2 + (0x14,) * 2 + (0x15, VM_LIST, 0x17)
WEIGHTED += (SHM_CREATE, SHM_REMOVE, SHM_REMOVE, SHM_LIST)
SHM_NAMES = (b"link0", b"link1", b"", b"x" * 32, b"sp ace")
# (none where the VM_CREATE cases put memory: a region there would refuse most of them, tests/hypervisor/test_shmem.py
# has that refusal)
SHM_IPAS = (0xA000_0000, 0xA001_0000, 0xA100_0000, 0x0C00_0000, 0x0D00_0000, 0x1000_1000, 0x2800_0000, 0xA000_0800)
MASKS = (0b100, 0b1000, 0b1100, 0b1, 0b11, 0b10000, 0, 0b110)


def _pick_ipa(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.8:
        return rng.choice(IPAS) + rng.choice((0, 0, 0x100, 0xFFF0, 0x1_0000 - 8, 0x2000))
    if r < 0.9:
        return rng.randrange(1 << 64)
    return (1 << 41) - rng.choice((0x1000, 8))


def _create(rng: random.Random) -> bytes:
    if rng.random() < 0.6:  # one that should be made (unless its name or harts are taken, or the pool is short)
        regions = [(0x8000_0000, 0x20_0000 if rng.random() < 0.05 else rng.choice((0x1000, 0x1_0000)))]
        if rng.random() < 0.4:
            regions.append((0x9000_0000, 0x2000))
        return create_record(
            name=rng.choice((b"vm1", b"vm2", b"vm3")),
            hart_mask=rng.choice((0b100, 0b1000, 0b1100)),
            regions=regions,
            entry=0x8000_0000,
            dtb=0x8000_0000 + rng.choice((0, 0x800)),
            config=rng.randbytes(rng.choice((0, 16, 200))),
        )
    n = rng.choice((1, 1, 2, 3, 4))
    regions = [(rng.choice(IPAS), rng.choice(SIZES[:3]) if rng.random() < 0.8 else rng.choice(SIZES)) for _ in range(n)]
    mask = rng.choice(MASKS) if rng.random() < 0.9 else rng.randrange(1 << 64)
    rec = create_record(
        name=rng.choice(NAMES),
        hart_mask=mask,
        master=None if rng.random() < 0.9 else rng.randrange(70),
        regions=regions,
        entry=regions[0][0] if rng.random() < 0.8 else _pick_ipa(rng),
        dtb=regions[0][0] + 0x100 if rng.random() < 0.8 else _pick_ipa(rng),
        console=(rng.choice((0x1000_1000, 0, 0x1000_1800, 0x0C00_0000)), rng.choice((1, 0, 16, 5000))),
        config=rng.randbytes(rng.choice((0, 16, 200))),
        vcpus=None if rng.random() < 0.9 else rng.randrange(8),
        nregions=None if rng.random() < 0.95 else rng.randrange(8),
    )
    return rec


def _shm_create(rng: random.Random) -> bytes:
    vm_names = (b"vm1", b"vm2", b"vm3")
    if rng.random() < 0.6:  # one that should be defined (unless its name is taken or a VM it names exists)
        k = rng.randrange(2)
        picked = rng.sample(vm_names, rng.choice((1, 2, 2, 3)))
        return shm_record(
            name=(b"link0", b"link1")[k],
            ipa=(0xA000_0000, 0xA100_0000)[k],
            size=rng.choice((0x1000, 0x2000, 0x1_0000)),
            doorbell=(0xA080_0000, 0xA180_0000)[k],
            irq=(8, 9)[k],
            vms=[(n, rng.choice((1, 2))) for n in picked],
        )
    n = rng.choice((0, 1, 2, 7, 8))
    vms = [(rng.choice((*vm_names, *NAMES)), rng.choice((1, 2, 0, 3))) for _ in range(min(n, 7))]
    return shm_record(
        name=rng.choice(SHM_NAMES),
        ipa=rng.choice(SHM_IPAS) if rng.random() < 0.9 else rng.randrange(1 << 64),
        size=rng.choice(SIZES),
        doorbell=rng.choice((*SHM_IPAS, 0xA000_1000, (1 << 41) - 0x1000)),
        irq=rng.choice((8, 1, 0, 95, 96, 1 << 31)),
        vms=vms,
        count=None if rng.random() < 0.9 else rng.randrange(9),
        vm_ids=() if rng.random() < 0.95 else (1,),
    )


def _payload(rng: random.Random, type_: int) -> bytes:
    vm_id = rng.choice((1, 1, 1, 2, 2, 3, 0, 7, 8, 0xFFFF_FFFF))
    if type_ == VM_CREATE:
        return _create(rng)
    if type_ == SHM_CREATE:
        return _shm_create(rng)
    if type_ == SHM_REMOVE:  # mostly a region that may exist (harts are shared, so its VMs often still do)
        name = rng.choice((b"link0", b"link1")) if rng.random() < 0.6 else rng.choice(SHM_NAMES)
        return name.ljust(32, b"\0")[: rng.choice((32, 32, 32, 31, 33))]
    if type_ == VM_LOAD:
        r = rng.random()
        if r < 0.4:
            ipa = 0x8000_0000 + rng.randrange(0x1_0000)
        elif r < 0.7:  # just before the end of a region (or of a shorter one)
            ipa = 0x8000_0000 + rng.choice((0x1000, 0x1_0000, 0x20_0000)) - rng.choice((1, 8, 16, 100))
        else:
            ipa = _pick_ipa(rng)
        return load_payload(vm_id, ipa, rng.randbytes(rng.choice((0, 1, 16, 300))))
    if 0x12 <= type_ <= 0x17 and type_ != VM_LIST:
        return id_payload(vm_id, 0 if rng.random() < 0.95 else 1)
    if type_ == 0x1:
        return struct.pack("<II", 1 if rng.random() < 0.9 else 2, 0)
    return b""


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    kind = rng.randrange(7)
    if kind == 0 and b:
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b = b[: rng.randrange(len(b) + 1)]
    elif kind == 2:
        b += rng.randbytes(rng.randrange(1, 40))
    elif kind == 3:
        struct.pack_into("<I", b, 16, rng.choice((65536, 65537, 0xFFFF_FFFF, len(b) - 23, 0)))
    elif kind == 4:
        struct.pack_into("<H", b, 4, rng.choice((0, 2, 0xFFFF)))
    elif kind == 5:
        struct.pack_into("<I", b, 20, rng.randrange(1, 1 << 32))
    else:
        struct.pack_into("<I", b, 12, rng.randrange(1, 1 << 32))
    return bytes(b)


def control_op(rng: random.Random) -> tuple:
    """One case: ("bytes", chunks) into the port; ("guest", slot, action) on a guest VM's hart; ("poll",)."""
    r = rng.random()
    if r < 0.2:
        return (
            "guest",
            rng.choice((1, 1, 2, 3)),
            rng.choice(("enter", "enter", "shutdown", "reboot", "fail", "fault")),
        )
    if r < 0.24:
        return ("poll",)
    type_ = rng.choice(WEIGHTED) if rng.random() < 0.93 else 0
    if type_ == 0:
        type_ = rng.choice((0x1, 0x2, rng.randrange(1 << 16), 0x8010, 0x100))
    raw = frame(type_, _payload(rng, type_), id_=rng.randrange(1 << 32))
    if rng.random() < 0.25:
        raw = _mutate(rng, raw)
    if rng.random() < 0.15:
        raw = rng.choice((b"PSH", b"P", rng.randbytes(rng.randrange(1, 30)), struct.pack("<I", MAGIC))) + raw
    if rng.random() < 0.05:
        raw = rng.randbytes(rng.randrange(1, 80))
    chunks = []
    while raw:
        k = len(raw) if rng.random() < 0.7 else rng.randrange(1, len(raw) + 1)
        chunks.append(raw[:k])
        raw = raw[k:]
    return ("bytes", tuple(chunks))


class Reassembler:
    """PROTOCOL.md's framing, written again: which frames (header, payload) the server must answer."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes | None]]:
        """(header, payload) of each frame completed; payload None: the header was refused (EPROTO)."""
        self.buf += data
        out = []
        magic = struct.pack("<I", MAGIC)
        while True:
            k = 0
            while k < len(self.buf) and not magic.startswith(self.buf[k : k + 4]):
                k += 1
            self.buf = self.buf[k:]
            if len(self.buf) < 24:
                return out
            if self.buf[:4] != magic:  # a proper prefix of the magic at the end: wait for more
                self.buf = self.buf[1:]
                continue
            header = self.buf[:24]
            length, reserved = struct.unpack_from("<II", header, 16)
            if length > 65536 or reserved != 0:
                out.append((header, None))
                self.buf = self.buf[24:]
                continue
            if len(self.buf) < 24 + length:
                return out
            out.append((header, self.buf[24 : 24 + length]))
            self.buf = self.buf[24 + length :]


class ControlFuzzWorld(ControlWorld):
    """ControlWorld as a fuzz world: restored from a snapshot at each episode, checked after each case."""

    def __init__(self, be) -> None:
        from tests.hypervisor.fuzz import Region, snapshot

        super().__init__(be)
        self.Region = Region
        self.mvm_vcpu_bytes = {h: be.read(self.vcpu(h).addr, self.vcpu_size) for h in (0, 1)}
        regions = []
        for name, (addr, size) in be.statics.items():
            elem = {"hypervisor.core.vm.VMS": self.vm_size, "hypervisor.core.vm.VCPUS": self.vcpu_size}.get(name, 0)
            regions.append(Region(name, addr, size, elem))
        regions.append(Region("mvm_ram", self.mvm_ram, 0x1_0000))
        regions.append(Region("pool", self.pool, POOL_SIZE, 4096))
        self.regions = regions
        if be.kind == "cpython":
            be.known = [(r.addr, r.size) for r in regions] + [(self.inbuf, 0x2_0000), (self.outbuf, 0x1_0000)]
        self.initial = snapshot(be, regions, all_=True)
        self.initial_csr = dict(__import__("compiler").prelude.mock.csr)
        self.stats: dict[str, int] = {}

    # ---- the episode
    def restore(self, rng_seed: int = 0) -> None:
        from compiler import prelude
        from tests.hypervisor.fuzz import restore_regions

        restore_regions(self.be, self.regions, self.initial)
        self.be.set_scalars({k: v for k, v in self.initial.items() if not isinstance(v, bytes)})
        prelude.mock.csr.clear()
        prelude.mock.csr.update(self.initial_csr)
        prelude.mock.sbi_handler = self.firmware
        self.fw.clear()
        self.off = False
        self.reasm = Reassembler()
        self.shadow: dict[int, dict[int, bytearray]] = {}  # slot -> region index -> its expected bytes
        self.obs = None

    def alive(self) -> bool:
        return not self.off

    def end_episode(self) -> None:
        pass

    def count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def used_pages(self) -> set[int]:
        raw = self.be.read(self.be.global_addr("hypervisor.core.frame_alloc.frame_bitmap"), POOL_SIZE // 4096 // 8)
        x = int.from_bytes(raw, "little")
        return {k for k in range(POOL_SIZE // 4096) if x >> k & 1}

    def slots(self) -> list[int]:
        return [i for i in range(1, 8) if self.vm(i).get("used")]

    def pending_action(self) -> int:
        name = "hypervisor.core.control.pending_action"
        if self.be.kind == "cpython":
            return self.be.scalars()[name]
        a, n = self.be.statics[name]
        return int.from_bytes(self.be.read(a, n), "little")

    # ---- a case
    def run(self, op: tuple) -> None:
        from tests.hypervisor.fuzz import FuzzFailure, MachineOff, fail

        used_before = self.used_pages()
        slots_before = set(self.slots())
        self.be.begin_case(self.regions)
        expected: list[tuple[bytes, bytes | None]] = []
        out = []
        try:
            if op[0] == "bytes":
                for chunk in op[1]:
                    expected += self.reasm.feed(chunk)
                    out += self.send(chunk)
            elif op[0] == "poll":
                if self.pending_action():
                    self.off = True  # the machine powers off or resets: the end of the episode
                    self.obs = ("machine off",)
                    self.count("system shutdown or reboot")
                    return
                self.be.call("control_events")
                out = self.take()
            else:
                self.guest(op[1], op[2])
                out = []
        except FuzzFailure:
            raise
        except MachineOff:
            fail("exception", "the machine was reset by a case that must not reset it")
        except AssertionError as e:
            fail("frames", f"what came back does not parse: {e}")
        except BaseException as e:  # noqa: BLE001 - any exception out of the hypervisor's code is a finding
            fail("exception", f"{type(e).__name__}: {e}")
        finally:
            changed = self.be.end_case(self.regions)
        self.check_frames(expected, out)
        self.check_memory(changed, used_before, slots_before)
        self.check_state()
        self.obs = [(t, i, s, len(p)) for t, i, s, _, p in out]

    def guest(self, slot: int, action: str) -> None:
        """What a guest VM does on its own harts (only a running one, on a vCPU its hart runs)."""
        vm = self.vm(slot)
        if not vm.get("used") or vm.get("state") != 1:
            return
        k = vm.get("vcpu_slot", vm.get("master"))  # its master vCPU's slot in VCPUS (its hart may be shared)
        if action == "enter":
            self.enter(slot)
            self.count("guest: entered")
            return
        v = self.vcpu(k)
        if v.get("running") != 1:
            return
        from compiler import prelude

        if action == "fault":
            csr = prelude.mock.csr
            csr[prelude_csr("SCAUSE")], csr[prelude_csr("STVAL")], csr[prelude_csr("HTVAL")] = 23, 0x40, 0
            self.be.call("trap_guest_page_fault", v.addr)
        else:
            kind, reason = {"shutdown": (0, 0), "reboot": (1, 0), "fail": (0, 1)}[action]
            for i, a in enumerate((kind, reason)):
                v.set("regs", a, 10 + i)
            v.set("regs", 0, 16)
            v.set("regs", 0x53525354, 17)
            self.be.call("sbi_handle_ecall", v.addr)
        self.trap_return(v.get("hart"), k)
        self.count(f"guest: {action}")

    # ---- the checks
    def check_frames(self, expected: list, out: list) -> None:
        from tests.hypervisor.fuzz import fail

        responses = [f for f in out if f[0] != EVENT_VM_STATE]
        for f in out:
            if f[0] == EVENT_VM_STATE:
                if f[1] != 0 or f[2] != 0 or len(f[4]) != 128:
                    fail("frames", f"a malformed event {f[:3]}")
                self.count("event")
        if len(responses) != len(expected):
            fail("frames", f"{len(expected)} frames sent, {len(responses)} responses")
        for (header, payload), (t, i, status, version, body) in zip(expected, responses, strict=True):
            _, _, type_, id_ = struct.unpack_from("<IHHI", header)
            if t != type_ | 0x8000 or i != id_ or version != 1:
                fail("frames", f"response {t:#x}/{i} to request {type_:#x}/{id_}")
            if status > 10:
                fail("frames", f"status {status}")
            if payload is None and status != 1:
                fail("frames", f"a refused header got status {status}, not EPROTO")
            if status != 0 and not (0 < len(body) <= 200 and body.isascii() and b"\0" not in body):
                fail("frames", f"error message {body!r}")
            if status != 0 and not all(0x20 <= c < 0x7F for c in body):
                fail("frames", f"error message not printable {body!r}")
            self.count(f"{type_:#x}: status {status}" if type_ in REQUESTS else f"other: status {status}")
            if status == 0 and payload is not None and type_ == VM_LOAD:
                vm_id, _, ipa = struct.unpack_from("<IIQ", payload)
                self.apply_load(vm_id, ipa, payload[16:])
            if status == 0 and type_ == VM_CREATE:
                new = struct.unpack_from("<I", body)[0]
                self.shadow[new] = {r: bytearray(n) for r, (_, _, n) in enumerate(self.regions_of(new))}
            if status == 0 and type_ == 0x14:
                self.shadow.pop(struct.unpack_from("<I", payload)[0], None)
            if status == 0 and type_ == VM_LIST:
                ids = [vm_record(body[8 + 128 * k : 136 + 128 * k])["id"] for k in range(len(body) // 128)]
                if ids != [0, *self.slots()]:
                    fail("state", f"VM_LIST gives {ids}, the slots hold {[0, *self.slots()]}")
            if status == 0 and type_ in (SYSTEM_SHUTDOWN, SYSTEM_REBOOT):
                self.count("system shutdown/reboot asked")

    def apply_load(self, vm_id: int, ipa: int, data: bytes) -> None:
        from tests.hypervisor.fuzz import fail

        for r, (gpa, _, n) in enumerate(self.regions_of(vm_id)):
            if gpa <= ipa and ipa + len(data) <= gpa + n:
                self.shadow[vm_id][r][ipa - gpa : ipa - gpa + len(data)] = data
                return
        fail("model", f"VM_LOAD of {len(data)} bytes at {ipa:#x} into vm{vm_id} answered OK outside its regions")

    def check_memory(self, changed: set[str], used_before: set[int], slots_before: set[int]) -> None:
        from tests.hypervisor.fuzz import fail

        if "hypervisor.core.vm.VMS[0]" in changed:
            fail("memory", "hypervisor.core.vm.VMS[0] (the MVM's) changed")
        for h in (0, 1):
            # Its vCPUs change only by a kick (core/vm.py vm_wake_mvm: MSG_KICK in the mailbox, so that a vCPU
            # waiting off a shared hart runs and serves the control port)
            v = self.vcpu(h)
            kick, n = v.off("mailbox", 2)
            k = kick - v.addr
            now = bytearray(self.be.read(v.addr, self.vcpu_size))
            was = bytearray(self.mvm_vcpu_bytes[h])
            now[k : k + n] = was[k : k + n] = bytes(n)
            if now != was:
                fail("memory", f"hypervisor.core.vm.VCPUS[{h}] (the MVM's) changed")
        if "mvm_ram" in changed:
            fail("memory", "the MVM's RAM changed")
        if self.be.kind == "cpython" and self.be.stray:
            fail("memory", f"writes outside every known region: {[(hex(a), n) for a, n in self.be.stray[:4]]}")
        used_after = self.used_pages()
        region_pages = set()
        for slot in self.slots():
            for _, hpa, n in self.regions_of(slot):
                first = (hpa - self.pool) // 4096
                region_pages |= set(range(first, first + n // 4096))
        for name in changed:
            if name.startswith("pool["):
                k = int(name[5:-1])
                if (
                    k not in used_before
                    and k not in used_after
                    and self.be.read(self.pool + 4096 * k, 4096) != bytes(4096)
                ):
                    # (taken and given back within the case, a refused VM_CREATE: zeroed by the allocator, no more)
                    fail("memory", f"free frame {k} of the pool changed")
                if k in used_before and k in used_after and k not in region_pages:
                    fail("memory", f"frame {k} (a stage-2 table of a VM that existed before) changed")
        for slot, regions in self.shadow.items():
            for r, (gpa, hpa, n) in enumerate(self.regions_of(slot)):
                if self.be.read(hpa, n) != bytes(regions[r]):
                    fail("memory", f"vm{slot} region {r} ({gpa:#x}) does not hold what was loaded into it")

    def check_state(self) -> None:
        from tests.hypervisor.fuzz import fail

        owner: dict[int, list[int]] = {}
        for slot in self.slots():
            vm = self.vm(slot)
            if vm.get("id") != slot or not vm.get("dynamic"):
                fail("state", f"slot {slot} holds vm{vm.get('id')}")
            mask = vm.get("hart_mask")
            if vm.get("vcpus") != bin(mask).count("1") or not 1 <= vm.get("regions") <= 4:
                fail("state", f"vm{slot}: {vm.get('vcpus')} vCPUs for mask {mask:#x}, {vm.get('regions')} regions")
            for h in range(64):
                if mask >> h & 1:
                    owner.setdefault(h, []).append(slot)
                    if not any(self.vcpu(i).get("vm") == slot for i in self.vcpus_on_hart(h)):
                        fail("state", f"hart {h} of vm{slot} has no vCPU of it in its run queue")
            spans = sorted((g, g + n) for g, _, n in self.regions_of(slot))
            if any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
                fail("state", f"vm{slot}: overlapping regions {spans}")
        for h in range(4):
            mvm = [i for i in self.vcpus_on_hart(h) if self.vcpu(i).get("vm") == 0]
            if len(self.vcpus_on_hart(h)) != len(owner.get(h, [])) + len(mvm):
                fail("state", f"hart {h}: run queue {self.vcpus_on_hart(h)}, VMs placed there {owner.get(h)}")
        if not self.slots() and self.be.call("frame_alloc_used_pages") != self.baseline_used:
            fail("state", "no guest VM, but the pool has not all its frames back")
        self.check_shared()

    def check_shared(self) -> None:
        from tests.hypervisor.fuzz import fail

        names = {self.name_of(slot): slot for slot in self.slots()}
        used = self.used_pages()
        for i in range(4):
            s = self.shm(i)
            if not s.get("used"):
                continue
            self.count("shm: defined")
            peers = self.shm_peers(i)
            users = {n: k for n, _, k in peers if k}
            want = {n: names[n] for n, _, _ in peers if n in names}
            if users != want or s.get("users") != len(want):
                fail("state", f"shm {i}: users {users} ({s.get('users')}), the VMs it names that exist {want}")
            hpa, size = s.get("hpa"), s.get("size")
            if (hpa != 0) != bool(want):
                fail("state", f"shm {i}: frames at {hpa:#x} with {len(want)} users")
            if hpa:
                first = (hpa - self.pool) // 4096
                if not set(range(first, first + size // 4096)) <= used:
                    fail("state", f"shm {i}: its frames are free in the pool")
            for slot in self.slots():
                root = self.vm(slot).get("stage2_root")
                access = next((a for n, a, _ in peers if n == self.name_of(slot)), 0)
                perms = self.be.call("stage2_perms", root, s.get("ipa"))
                if perms != {0: 0, 1: 0b010, 2: 0b110}[access]:
                    fail("state", f"vm{slot}: shm {i} mapped with {perms:#b}, its access is {access}")
                if access:
                    self.count("shm: mapped")
