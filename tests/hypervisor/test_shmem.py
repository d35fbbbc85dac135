"""Shared memory between guest VMs (hypervisor/core/shmem.py, shmem_ctl.py): regions defined through the control
protocol (SHM_CREATE / SHM_REMOVE / SHM_LIST), mapped by VM_CREATE into the VMs they name and no other, read-only
where named so (a store is an access fault for that guest), their frames taken once and freed with the last VM,
and the doorbell page whose RING raises the line of every other VM that maps the region. Run on the host under
CPython (both IRQ modes) and compiled (AIA), the world of tests/hypervisor/control_world.py."""

from __future__ import annotations

import struct

import pytest

from compiler import prelude
from tests.hypervisor import fuzz
from tests.hypervisor.control_world import (
    EBUSY,
    EINVAL,
    ELIMIT,
    EPROTO,
    MODULES,
    OK,
    SHM_CREATE,
    SHM_LIST,
    SHM_REMOVE,
    VM_BOOT,
    VM_CREATE,
    VM_LOAD,
    VM_REMOVE,
    ControlWorld,
    create_record,
    id_payload,
    load_payload,
    prelude_csr,
    shm_record,
)

IPA, SIZE, DOOR, IRQ = 0xA000_0000, 0x2000, 0xA010_0000, 8
RING, COUNT, STATUS, ACK, SENT = 0x0C, 0x10, 0x14, 0x18, 0x1C
PERM_R, PERM_RW = 0b010, 0b110


@pytest.fixture(params=[("cpython", "plic"), ("cpython", "aia"), ("host", "aia")], ids="-".join)
def w(request):
    kind, irq = request.param
    be = fuzz.make_backend(kind, MODULES, irq)
    try:
        yield ControlWorld(be)
    finally:
        be.close()
        prelude.mock.reset()


def define(w, **kw) -> None:
    status, body = w.request(SHM_CREATE, shm_record(ipa=IPA, size=SIZE, doorbell=DOOR, irq=IRQ, **kw))
    assert status == OK, body


def make(w, name: bytes, hart: int) -> int:
    return w.create(name=name, hart_mask=1 << hart, config=b"{}")


def perms(w, slot: int, gpa: int = IPA) -> int:
    return w.be.call("stage2_perms", w.vm(slot).get("stage2_root"), gpa)


def door(w, hart: int, offset: int, value: int | None = None) -> int:
    """A 32-bit access by the vCPU on `hart` to region 0's doorbell page (what mmio_emulate hands the device)."""
    buf = w.be.alloc(8)
    w.be.write(buf, (value or 0).to_bytes(8, "little"))
    assert w.be.call("shm_door_emul0", w.vcpu(hart).addr, offset, 4, value is not None, buf) == 0  # EMUL_DONE
    return int.from_bytes(w.be.read(buf, 8), "little")


def line_high(w, slot: int) -> bool:
    """Source IRQ of the VM's virtual controller: pending in its vPLIC, or the line of its vAPLIC domain."""
    if w.aia:
        t = w.be.mods["hypervisor.core.vaplic"].Vaplic
        size = prelude.places._size(t)
        v = w.View(w.be, t, w.be.global_addr("hypervisor.core.vaplic.vaplic_gvm") + slot * size)
        return bool(v.words("line", 1)[0] >> IRQ & 1)
    vplic = w.be.call("virq_vplic_of", w.vm(slot).addr)
    return bool(w.be.call("vplic_read", vplic, 0x1000, 4) >> IRQ & 1)


def test_mapped_into_the_named_vms_only_frames_once(w):
    base = w.free_pages()
    define(w, vms=[(b"vm1", 2), (b"vm2", 1)])
    assert w.free_pages() == base  # no frames until a VM maps it
    vm1 = make(w, b"vm1", 2)
    taken = base - w.free_pages()
    other = make(w, b"other", 3)  # not named: nothing at the region's address, nor at its doorbell
    assert perms(w, vm1) == PERM_RW and perms(w, other) == 0
    assert w.be.call("emul_find", w.vm(other).addr, DOOR) == 0 and w.be.call("emul_find", w.vm(vm1).addr, DOOR) != 0
    assert w.request(VM_REMOVE, id_payload(other))[0] == OK
    before = w.free_pages()
    vm2 = make(w, b"vm2", 3)
    assert perms(w, vm2) == PERM_R
    # the same frames in both, taken once; never one of the VM's memory regions (VM_LOAD refuses it)
    assert before - w.free_pages() == taken - SIZE // 4096
    out = w.be.alloc(16)
    w.be.call("stage2_translate", w.vm(vm1).get("stage2_root"), IPA + 0x1008, out)
    w.be.call("stage2_translate", w.vm(vm2).get("stage2_root"), IPA + 0x1008, out + 8)
    a, b = struct.unpack("<QQ", w.be.read(out, 16))
    assert a == b != 0
    status, msg = w.request(VM_LOAD, load_payload(vm2, IPA, b"x"))
    assert status == EINVAL and b"is not inside one memory region" in msg
    status, body = w.request(SHM_LIST)
    assert status == OK and struct.unpack_from("<II", body) == (1, 0)
    entries = [struct.unpack_from("<32sII", body, 8 + 64 + 40 * j) for j in range(2)]
    assert [(n.rstrip(b"\0"), acc, vid) for n, acc, vid in entries] == [(b"vm1", 2, vm1), (b"vm2", 1, vm2)]
    status, msg = w.request(SHM_REMOVE, b"link0".ljust(32, b"\0"))
    assert status == EBUSY and msg == f"name: link0 is mapped by vm{vm1} vm{vm2} (remove them first)".encode()
    assert w.request(VM_REMOVE, id_payload(vm1))[0] == OK
    assert w.free_pages() < base  # vm2 still maps it
    assert w.request(VM_REMOVE, id_payload(vm2))[0] == OK
    assert w.free_pages() == base  # the last VM gave the frames back
    assert w.request(SHM_REMOVE, b"link0".ljust(32, b"\0"))[0] == OK
    assert w.request(SHM_LIST)[1] == struct.pack("<II", 0, 0)


def test_doorbell_rings_the_others(w):
    define(w, vms=[(b"vm1", 2), (b"vm2", 1)])
    vm1, vm2 = make(w, b"vm1", 2), make(w, b"vm2", 3)
    for vid in (vm1, vm2):
        assert w.request(VM_BOOT, id_payload(vid))[0] == OK
        w.enter(vid)
    assert door(w, 2, 0x00) == 0x4D48_5350 and door(w, 3, 0x00) == 0x4D48_5350  # MAGIC
    assert (door(w, 2, 0x04), door(w, 2, 0x08), door(w, 3, 0x04), door(w, 3, 0x08)) == (2, 0, 1, 1)  # ACCESS, INDEX
    assert (door(w, 3, 0x20), door(w, 3, 0x24)) == (SIZE, 0)
    assert not line_high(w, vm2)
    door(w, 2, RING, 1)
    assert (door(w, 3, COUNT), door(w, 3, STATUS), door(w, 2, SENT), door(w, 2, COUNT)) == (1, 1, 1, 0)
    assert line_high(w, vm2) and not line_high(w, vm1)
    door(w, 3, ACK, 1)
    assert door(w, 3, STATUS) == 0 and door(w, 3, COUNT) == 1 and not line_high(w, vm2)
    door(w, 3, RING, 1)  # the read-only VM may ring
    door(w, 3, RING, 1)
    assert (door(w, 2, COUNT), door(w, 2, STATUS)) == (2, 1) and line_high(w, vm1)
    door(w, 3, COUNT, 99)  # read-only registers ignore stores
    assert door(w, 3, COUNT) == 1
    buf = w.be.alloc(8)
    assert w.be.call("shm_door_emul0", w.vcpu(3).addr, 0x02, 4, False, buf) == 2  # misaligned: EMUL_FAULT
    assert w.be.call("shm_door_emul0", w.vcpu(3).addr, 0x10, 8, False, buf) == 2  # 64-bit: EMUL_FAULT
    # a boot starts the doorbell afresh
    assert w.request(VM_BOOT, id_payload(vm2))[0] == 6  # ESTATE: running
    w.vm(vm1).set("state", 7)  # as VM_STOP leaves it (its harts parked: none runs in this world)
    w.vm(vm1).set("released", 1)
    for k in range(w.vm(vm1).get("vcpus")):
        w.vcpu(w.vm(vm1).get("vcpu_slot", k)).set("running", 0)
    assert w.request(VM_BOOT, id_payload(vm1))[0] == OK
    assert (door(w, 2, COUNT), door(w, 2, STATUS), door(w, 2, SENT)) == (0, 0, 0)


def test_read_only_store_is_an_access_fault_an_unnamed_access_ends_the_vm(w):
    define(w, vms=[(b"vm2", 1)])
    vm2, vm3 = make(w, b"vm2", 2), make(w, b"vm3", 3)
    for vid in (vm2, vm3):
        assert w.request(VM_BOOT, id_payload(vid))[0] == OK
        w.enter(vid)
    csr = prelude.mock.csr
    csr[prelude_csr("VSTVEC")] = 0x8000_0100
    for hart in (2, 3):
        csr[prelude_csr("SCAUSE")], csr[prelude_csr("STVAL")] = 23, 0xFFFF_FFC0_0000_1010  # store guest-page fault
        csr[prelude_csr("HTVAL")] = (IPA + 0x10) >> 2
        w.vcpu(hart).set("sepc", 0x8000_0040)
        w.be.call("trap_guest_page_fault", w.vcpu(hart).addr)
        w.trap_return(hart)
    # vm2 (ro): its own handler gets a store/AMO access fault at its own address, and it runs on
    assert (csr[prelude_csr("VSCAUSE")], csr[prelude_csr("VSTVAL")]) == (7, 0xFFFF_FFC0_0000_1010)
    assert w.vcpu(2).get("sepc") == 0x8000_0100 and w.vm(vm2).get("state") == 1
    # vm3 (not named): outside its memory, it ends crashed with the reason the MVM's list shows
    assert w.vm(vm3).get("state") == 3 and w.vm(vm3).get("reason") == 2


def test_create_refusals_name_the_field(w):
    def refused(rec: bytes) -> tuple[int, bytes]:
        return w.request(SHM_CREATE, rec)

    ok = dict(ipa=IPA, size=SIZE, doorbell=DOOR, irq=IRQ, vms=[(b"vm1", 2)])
    for change, code, text in (
        (dict(size=0x1800), EINVAL, b"size: not a nonzero multiple of 4096"),
        (dict(size=1 << 31), EINVAL, b"size: above 1 GiB"),
        (dict(ipa=IPA + 0x800), EINVAL, b"ipa: not a multiple of 4096"),
        (dict(ipa=(1 << 41) - 0x1000), EINVAL, b"ipa: the region goes beyond the 2^41"),
        (dict(doorbell=IPA + 0x1000), EINVAL, b"doorbell_ipa: inside the region"),
        (
            dict(ipa=0x0C00_0000 if not w.aia else 0x0D00_0000),
            EINVAL,
            b"ipa: the region overlaps the VMs' interrupt controller",
        ),
        (dict(irq=0), EINVAL, b"irq: not an interrupt source 1 .. 95"),
        (dict(irq=96), EINVAL, b"irq: not an interrupt source 1 .. 95"),
        (dict(vms=[]), EINVAL, b"vms: not 1 .. 7 VMs"),
        (dict(vms=[(b"vm1", 3)]), EINVAL, b"vms[0]: access: not 1 (ro) or 2 (rw)"),
        (dict(vms=[(b"vm1", 2), (b"vm1", 1)]), EINVAL, b"vms[1]: named twice"),
        (dict(vms=[(b"sp ace", 2)]), EINVAL, b"vms[0]: name: not 1 .. 31 printable bytes"),
        (dict(vm_ids=(3,)), EPROTO, b"vms[0].vm: not 0 in a request"),
        (dict(count=1, vms=[(b"vm1", 2), (b"vm2", 2)]), EPROTO, b"vms[1]: not zero beyond the vms count"),
    ):
        status, msg = refused(shm_record(**{**ok, **change}))
        assert (status, msg[: len(text)]) == (code, text), (change, status, msg)
    status, msg = w.request(SHM_CREATE, shm_record(**ok)[:-1])
    assert status == EPROTO and msg == b"payload: 343 bytes, this type takes 344"
    assert refused(shm_record(**ok))[0] == OK
    status, msg = refused(shm_record(**ok))
    assert (status, msg) == (EINVAL, b"name: shared memory link0 exists")
    status, msg = refused(shm_record(**{**ok, "name": b"link1", "doorbell": DOOR + 0x1000}))
    assert (status, msg) == (EINVAL, b"ipa: the region overlaps shared memory link0 in vm1")
    status, msg = refused(shm_record(**{**ok, "name": b"link1", "ipa": 0xB000_0000, "doorbell": 0xB010_0000}))
    assert (status, msg) == (EINVAL, b"irq: the doorbell source of shared memory link0 in vm1")
    for k, name in enumerate((b"l2", b"l3", b"l4")):  # other VMs: the same addresses are theirs to use
        assert refused(shm_record(**{**ok, "name": name, "vms": [(b"vm%d" % (k + 5), 2)]}))[0] == OK
    status, msg = refused(shm_record(**{**ok, "name": b"l5", "vms": [(b"vm9", 2)]}))
    assert (status, msg) == (ELIMIT, b"no free shared-memory slot (the hypervisor holds 4)")
    vm1 = make(w, b"vm5", 2)
    assert w.request(SHM_REMOVE, b"l4".ljust(32, b"\0"))[0] == OK
    status, msg = refused(
        shm_record(
            **{**ok, "name": b"late", "ipa": 0xC000_0000, "doorbell": 0xC010_0000, "irq": 9, "vms": [(b"vm5", 2)]}
        )
    )
    assert (
        status == EBUSY
        and msg == f"vms: vm5 exists (vm{vm1}): shared memory is defined before the VMs that map it".encode()
    )
    status, msg = w.request(SHM_REMOVE, b"nope".ljust(32, b"\0"))
    assert (status, msg) == (EINVAL, b"name: no shared memory called nope")


def test_vm_create_checks_its_regions_against_its_own_layout(w):
    define(w, vms=[(b"vm1", 2)])
    status, msg = w.request(
        VM_CREATE, create_record(name=b"vm1", regions=[(IPA - 0x1000, 0x2000)], entry=IPA - 0x1000, dtb=IPA - 0x800)
    )
    assert (status, msg) == (EINVAL, b"shared memory link0: the region overlaps the VM's memory")
    status, msg = w.request(VM_CREATE, create_record(name=b"vm1", console=(0x1000_1000, IRQ)))
    assert (status, msg) == (EINVAL, b"shared memory link0: the doorbell's irq is the console's")
    assert not any(w.vm(i).get("used") for i in range(1, 8))
