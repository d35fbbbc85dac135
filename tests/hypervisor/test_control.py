"""The control protocol's server (hypervisor/core/control.py) and the guest VMs it makes (core/gvm.py), driven
the way the MVM's daemon drives them: frames into the control port, responses and events out, checked against
mvm-tools/PROTOCOL.md; run under CPython and compiled for the host, in PLIC and AIA builds."""

from __future__ import annotations

import struct

import pytest

from compiler import prelude
from compiler.prelude import places as prelude_places
from tests.hypervisor import fuzz
from tests.hypervisor.control_world import (
    CRASHED,
    CREATED,
    EBUSY,
    EINVAL,
    ELIMIT,
    ENOMEM,
    ENOVM,
    EPERM,
    EPROTO,
    ESTATE,
    ETYPE,
    EVENT_VM_STATE,
    EVERSION,
    HELLO,
    MODULES,
    OK,
    REBOOTING,
    RUNNING,
    STOPPED,
    SYSTEM_INFO,
    SYSTEM_REBOOT,
    SYSTEM_SHUTDOWN,
    VM_BOOT,
    VM_CONFIG_GET,
    VM_CREATE,
    VM_INFO,
    VM_LIST,
    VM_LOAD,
    VM_REMOVE,
    VM_STOP,
    ControlWorld,
    MachineOff,
    create_record,
    frame,
    id_payload,
    load_payload,
    parse_frames,
    prelude_csr,
    system_record,
    vm_record,
)


@pytest.fixture(params=[("cpython", "plic"), ("host", "plic"), ("cpython", "aia"), ("host", "aia")], ids="-".join)
def w(request):
    kind, irq = request.param
    be = fuzz.make_backend(kind, MODULES, irq)
    try:
        yield ControlWorld(be)
    finally:
        be.close()
        prelude.mock.reset()


def test_hello_and_system_info(w):
    status, body = w.request(HELLO, struct.pack("<II", 1, 0))
    assert status == OK
    s = system_record(body)
    assert s["proto"] == 1 and s["harts"] == 4 and s["irq"] == (1 if w.aia else 0)
    assert s["aia_guests"] == (3 if w.aia else 0)
    assert s["total"] == 0x60_0000 // 4096 and s["free"] == w.free_pages() < s["total"]
    assert s["hart_vm"] == [0, 0] + [0xFF] * 14
    assert (s["vms"], s["max_vms"], s["page"], s["max_payload"]) == (1, 8, 4096, 65536)
    assert s["timebase"] == 10_000_000 and s["time"] == 1000
    assert w.request(SYSTEM_INFO)[0] == OK
    status, msg = w.request(HELLO, struct.pack("<II", 2, 0))
    assert status == EVERSION and b"version: 2" in msg
    assert w.request(HELLO, struct.pack("<II", 1, 5)) == (EPROTO, b"reserved: not 0")
    status, msg = w.request(HELLO, b"\1\0\0\0")
    assert status == EPROTO and msg.startswith(b"payload: 4 bytes")
    assert w.request(SYSTEM_INFO, b"x")[0] == EPROTO


def test_framing_resync_split_and_packed(w):
    hello = frame(HELLO, struct.pack("<II", 1, 0), id_=3)
    # garbage before the magic (with a false start "PSH" and a lone "P"), then two frames in one write
    out = w.send(b"\x00PSHxP\xffPS" + hello + frame(VM_LIST, id_=4))
    assert [(t, i, s) for t, i, s, _, _ in out] == [(HELLO | 0x8000, 3, OK), (VM_LIST | 0x8000, 4, OK)]
    # a frame a byte at a time: nothing until its last byte
    for b in hello[:-1]:
        assert w.send(bytes([b])) == []
    assert [(t, i, s) for t, i, s, _, _ in w.send(hello[-1:])] == [(HELLO | 0x8000, 3, OK)]


def test_bad_headers(w):
    out = w.send(frame(VM_LIST, id_=9, length=65537))
    assert [(t, i, s) for t, i, s, _, _ in out] == [(VM_LIST | 0x8000, 9, EPROTO)]
    assert out[0][4] == b"length: 65537 is above 65536"
    out = w.send(frame(VM_LIST, id_=9, reserved=1))
    assert out[0][2] == EPROTO and out[0][4] == b"reserved: not 0"
    # another version: its payload (which holds a frame's bytes) is skipped whole
    inner = frame(VM_LIST, id_=1)
    out = w.send(frame(HELLO, inner, id_=10, version=2))
    assert [(t, i, s) for t, i, s, _, _ in out] == [(HELLO | 0x8000, 10, EVERSION)]
    assert w.request(0x55, id_=11) == (ETYPE, b"type: 0x55 is not a request of protocol 1")
    assert w.request(VM_LIST | 0x8000)[0] == ETYPE  # a response is not a request
    assert w.request(VM_LIST, status=3) == (EPROTO, b"status: not 0 in a request")
    assert w.request(VM_LIST)[0] == OK  # the stream is in step after all of that


def test_create_list_info_config_and_remove_give_every_page_back(w):
    free0 = w.free_pages()
    config = b'{"name": "vm1", "memory": 1}'
    vm_id = w.create(regions=[(0x8000_0000, 0x1_0000), (0x9000_0000, 0x2000)], config=config)
    assert vm_id == 1
    assert free0 - w.free_pages() >= 18  # its 18 pages of memory and its stage-2 tables
    recs = w.list()
    assert [(r["id"], r["name"], r["state"]) for r in recs] == [(0, b"mvm", RUNNING), (1, b"vm1", CREATED)]
    r = recs[1]
    assert (r["vcpus"], r["hart_mask"], r["memory"], r["boots"], r["port"]) == (1, 0b100, 0x1_2000, 0, 1)
    status, body = w.request(VM_INFO, id_payload(1))
    assert status == OK and vm_record(body) == r
    assert w.request(VM_CONFIG_GET, id_payload(1)) == (OK, config)
    assert w.request(VM_INFO, id_payload(5)) == (ENOVM, b"id: no VM 5")
    assert w.request(VM_INFO, id_payload(1, 1))[0] == EPROTO
    s = system_record(w.request(SYSTEM_INFO)[1])
    assert s["hart_vm"][:4] == [0, 0, 1, 0xFF] and s["vms"] == 2
    # regions are zeroed frames of the pool, mapped at their IPAs
    regions = w.regions_of(1)
    assert [(g, n) for g, _, n in regions] == [(0x8000_0000, 0x1_0000), (0x9000_0000, 0x2000)]
    for _, hpa, size in regions:
        assert w.pool <= hpa < w.pool + 0x60_0000 and w.be.read(hpa, size) == bytes(size)
    vm = w.vm(1)
    # its devices (core/emul.py windows): its own virtual PLIC or APLIC domain at the board's address, then its
    # console at the config's IPA, the device attached as the MVM's port 1
    stride = prelude_places._size(w.be.struct("hypervisor.core.vm", "EmulMem"))
    bases = [int.from_bytes(w.be.read(vm.off("emul")[0] + stride * k, 8), "little") for k in range(vm.get("emuls"))]
    assert bases == [0x0D00_0000 if w.aia else 0x0C00_0000, 0x1000_1000]
    assert w.request(VM_REMOVE, id_payload(1)) == (OK, b"")
    assert w.free_pages() == free0
    assert [r["id"] for r in w.list()] == [0]
    assert w.vcpu_on_hart(2) is None
    assert w.request(VM_REMOVE, id_payload(1))[0] == ENOVM


def test_ids_are_the_lowest_free_and_a_2mib_region_gets_a_2mib_block(w):
    assert w.create(name=b"a", hart_mask=0b100, regions=[(0x8000_0000, 0x20_0000)]) == 1
    _, hpa, _ = w.regions_of(1)[0]
    assert hpa % 0x20_0000 == 0
    assert w.create(name=b"b", hart_mask=0b1000) == 2
    assert w.request(VM_REMOVE, id_payload(1))[0] == OK
    assert w.create(name=b"c", hart_mask=0b100) == 1
    assert [(r["id"], r["name"]) for r in w.list()] == [(0, b"mvm"), (1, b"c"), (2, b"b")]


@pytest.mark.parametrize(
    "kw, code, message",
    [
        (dict(name=b""), EINVAL, b"name: empty"),
        (dict(name=b"a b"), EINVAL, b"name: not printable ASCII without spaces"),
        (dict(name=b"mvm"), EINVAL, b"name: vm0 is already called so"),
        (dict(slice_ms=1001), EINVAL, b"time_slice_ms: above 1000"),
        (dict(hart_mask=0b10000), EINVAL, b"hart_mask: hart 4 does not exist"),
        (dict(hart_mask=0), EINVAL, b"hart_mask: no hart"),
        (dict(hart_mask=0b1100, vcpus=1), EINVAL, b"vcpus: fewer than the harts in hart_mask"),
        (dict(hart_mask=0b100, vcpus=17), EINVAL, b"vcpus: above 16"),
        (dict(hart_mask=0b100, master=3), EINVAL, b"master: not a hart of hart_mask"),
        (dict(regions=[(0x8000_0100, 0x1000)]), EINVAL, b"region[0]: ipa not a multiple of 4096"),
        (dict(regions=[(0x8000_0000, 0x1800)]), EINVAL, b"region[0]: size not a multiple of 4096"),
        (dict(regions=[(0x8000_0000, 0)]), EINVAL, b"region[0]: size is 0"),
        (
            dict(regions=[(0x8000_0000, 0x2000), (0x8000_1000, 0x1000)]),
            EINVAL,
            b"region[1]: overlaps region 0",
        ),
        (dict(regions=[(1 << 41, 0x1000)], entry=1 << 41, dtb=1 << 41), EINVAL, b"region[0]: beyond the 2^41"),
        (
            dict(regions=[(0x1000_0000, 0x2000)], entry=0x1000_0000, dtb=0x1000_0000),
            EINVAL,
            b"region[0]: overlaps its console",
        ),
        (dict(entry=0x7FFF_F000), EINVAL, b"entry_ipa: not inside a memory region"),
        (dict(dtb=0x8001_0000), EINVAL, b"dtb_ipa: not inside a memory region"),
        (dict(nregions=5), EINVAL, b"regions: not 1 .. 4"),
        (dict(console=(0x1000_1000, 0)), EINVAL, b"console_irq: not an interrupt source 1 .. 1023"),
        (dict(config=b"x" * 8193), EINVAL, b"config_len: above 8192"),
        (dict(regions=[(0x8000_0000, 0x1000_0000)]), ENOMEM, b"memory: 65536 pages asked, "),
    ],
)
def test_create_refusals_name_the_field_and_change_nothing(w, kw, code, message):
    free0 = w.free_pages()
    status, msg = w.request(VM_CREATE, create_record(**kw))
    assert (status, msg[: len(message)]) == (code, message), msg
    assert w.free_pages() == free0 and [r["id"] for r in w.list()] == [0]


def test_create_refusals_of_the_board(w):
    """Regions over the VM's interrupt controller; and no VM slot left after seven."""
    ctl = (0x0D00_0000, 0x8000) if w.aia else (0x0C00_0000, 0x1000)
    status, msg = w.request(VM_CREATE, create_record(regions=[ctl], entry=ctl[0], dtb=ctl[0]))
    assert status == EINVAL and msg == (b"region[0]: overlaps its APLIC" if w.aia else b"region[0]: overlaps its PLIC")
    status, msg = w.request(VM_CREATE, create_record(regions=[(0x8000_0000, 0x1000)], dtb=0x8000_0000) + b"x")
    assert status == EPROTO and msg.startswith(b"payload: ")
    status, msg = w.request(VM_CREATE, create_record(sched_reserved=1))
    assert (status, msg) == (EPROTO, b"reserved (after priority): not 0")


def test_create_shares_harts_until_a_run_queue_is_full(w):
    """Several guest VMs place vCPUs on one hart (core/sched.py), each with its priority and slice, as many as
    there are VM slots (AIA: as the hart has guest interrupt files, and the refusal names the hart)."""
    per_hart = 3 if w.aia else 7  # hart 2's run queue is empty: 8 places; AIA: 3 guest interrupt files
    for i in range(per_hart):
        w.create(name=b"g%d" % i, hart_mask=0b100, priority=10 * i, slice_ms=5 + i)
    on2 = w.vcpus_on_hart(2)
    assert len(on2) == per_hart
    assert [w.vcpu(k).get("priority") for k in on2] == [10 * i for i in range(per_hart)]
    ticks_ms = int(w.be.board.TIMEBASE_FREQUENCY) // 1000
    assert [w.vcpu(k).get("slice") for k in on2] == [(5 + i) * ticks_ms for i in range(per_hart)]
    status, msg = w.request(VM_CREATE, create_record(name=b"gx", hart_mask=0b100))
    if w.aia:
        assert (status, msg) == (
            EBUSY,
            b"hart 2 has no free guest interrupt file: it has 3 (aia-guests), each taken by a vCPU placed on it",
        )
    else:  # seven guest VMs on one hart: every VM slot is taken first
        assert (status, msg) == (ELIMIT, b"no free VM slot (ids 1 .. 7)")
    # removing one frees its place in the run queue, in order
    assert w.request(VM_REMOVE, id_payload(1))[0] == OK
    assert len(w.vcpus_on_hart(2)) == per_hart - 1
    assert all(w.vcpu(k).get("vm") != 1 for k in w.vcpus_on_hart(2))


def test_create_refusal_no_free_slot(w):
    """Seven guest VMs exist (made directly in the slot table to need no harts): the eighth gets ELIMIT."""
    for i in range(1, 8):
        w.vm(i).set("used", 1)
        w.vm(i).set("id", i)
    status, msg = w.request(VM_CREATE, create_record())
    assert (status, msg) == (ELIMIT, b"no free VM slot (ids 1 .. 7)")


@pytest.fixture(params=["cpython", "host"])
def w_aia(request):
    be = fuzz.make_backend(request.param, MODULES, "aia")
    try:
        yield ControlWorld(be)
    finally:
        be.close()
        prelude.mock.reset()


def test_aia_guest_interrupt_files(w_aia):
    w = w_aia
    files = w.be.global_addr("hypervisor.arch.riscv.irqc.irqc_files")
    w.create(name=b"g1", hart_mask=0b100)
    v = w.vcpu(2)
    assert v.get("vgein") == 1 and w.be.read(files + 8 * 2, 8) == (0b10).to_bytes(8, "little")
    w.be.write(files + 8 * 3, (0b1110).to_bytes(8, "little"))  # hart 3's three files taken
    status, msg = w.request(VM_CREATE, create_record(name=b"g2", hart_mask=0b1000))
    assert (status, msg) == (
        EBUSY,
        b"hart 3 has no free guest interrupt file: it has 3 (aia-guests), each taken by a vCPU placed on it",
    )
    assert w.request(VM_REMOVE, id_payload(1))[0] == OK
    assert w.be.read(files + 8 * 2, 8) == bytes(8)


def test_load_boot_stop_boot_remove(w):
    vm_id = w.create(regions=[(0x8000_0000, 0x1_0000), (0x8800_0000, 0x1000)], hart_mask=0b1100, master=3)
    image = bytes(range(256)) * 16
    assert w.request(VM_LOAD, load_payload(vm_id, 0x8000_0100, image)) == (OK, b"")
    _, hpa, _ = w.regions_of(1)[0]
    assert w.be.read(hpa + 0x100, len(image)) == image
    assert w.request(VM_LOAD, load_payload(vm_id, 0x8800_0FF0, b"1234567890abcdefX")) == (
        EINVAL,
        b"ipa: 0x88000ff0 + 17 is not inside one memory region of vm1",
    )
    assert w.request(VM_LOAD, load_payload(vm_id, 0x8000_FFF0, b"x" * 32))[0] == EINVAL  # across the end
    assert w.request(VM_LOAD, load_payload(0, 0x9000_0000, b"x")) == (EPERM, b"id: mvm is the management VM")
    assert w.request(VM_LOAD, load_payload(6, 0x8000_0000, b"x"))[0] == ENOVM
    free_created = w.free_pages()
    w.ipis.clear()
    assert w.request(VM_BOOT, id_payload(vm_id)) == (OK, b"")
    assert w.ipis == [3]  # the master's hart is woken
    v2, v3 = w.vcpu(2), w.vcpu(3)
    assert (v3.get("state"), v3.get("sepc"), v3.get("regs", 10), v3.get("regs", 11)) == (1, 0x8000_0000, 1, 0x8000_8000)
    assert v2.get("state") == 0  # waits for SBI HSM
    w.enter(1)
    rec = vm_record(w.request(VM_INFO, id_payload(vm_id))[1])
    assert (rec["state"], rec["boots"], rec["boot_time"]) == (RUNNING, 1, 1000)
    assert w.request(VM_BOOT, id_payload(vm_id)) == (ESTATE, b"vm1 is running")
    assert w.request(VM_LOAD, load_payload(vm_id, 0x8000_0000, b"x")) == (ESTATE, b"vm1 runs: it cannot be loaded")
    assert w.request(VM_STOP, id_payload(0)) == (EPERM, b"id: mvm is the management VM")
    assert w.request(VM_REMOVE, id_payload(0))[0] == EPERM
    assert w.request(VM_STOP, id_payload(vm_id)) == (OK, b"")
    assert v3.get("running") == 0  # called off its hart
    rec = vm_record(w.request(VM_INFO, id_payload(vm_id))[1])
    assert (rec["state"], rec["reason"]) == (STOPPED, 4)
    assert w.free_pages() == free_created  # memory kept
    assert w.request(VM_STOP, id_payload(vm_id)) == (ESTATE, b"vm1 is not running")
    assert w.be.read(hpa + 0x100, len(image)) == image
    assert w.request(VM_BOOT, id_payload(vm_id))[0] == OK
    w.enter(1)
    rec = vm_record(w.request(VM_INFO, id_payload(vm_id))[1])
    assert (rec["state"], rec["boots"], rec["reason"]) == (RUNNING, 2, 0)
    free0 = free_created + sum(n for _, _, n in w.regions_of(1)) // 4096
    assert w.request(VM_REMOVE, id_payload(vm_id)) == (OK, b"")  # stops it first
    assert v3.get("running") == 0 and w.vcpu_on_hart(3) is None and w.vcpu_on_hart(2) is None
    assert w.free_pages() > free0  # the tables too
    assert w.free_pages() == w.be.call("frame_alloc_total_pages") - w.baseline_used


def _guest_ecall(w, hart, eid, fid, *args):
    v = w.vcpu(w.vcpu_on_hart(hart))
    for i, a in enumerate(args):
        v.set("regs", a, 10 + i)
    v.set("regs", fid, 16)
    v.set("regs", eid, 17)
    w.be.call("sbi_handle_ecall", v.addr)
    w.trap_return(hart)


def _booted(w):
    vm_id = w.create()
    assert w.request(VM_BOOT, id_payload(vm_id))[0] == OK
    w.enter(vm_id)
    return vm_id


def _event(frames):
    events = [f for f in frames if f[0] == EVENT_VM_STATE]
    assert len(events) == 1 and events[0][1] == 0 and events[0][2] == 0, frames
    return vm_record(events[0][4])


def test_guest_shutdown_reboot_and_crash_are_events(w):
    vm_id = _booted(w)
    free = w.free_pages()
    _guest_ecall(w, 2, 0x53525354, 0, 0, 0)  # SRST shutdown, no reason
    assert not w.off  # the machine runs on
    w.be.call("control_events")
    rec = _event(w.take())
    assert (rec["id"], rec["state"], rec["reason"]) == (vm_id, STOPPED, 0)
    assert w.free_pages() == free and w.vcpu(2).get("running") == 0
    w.be.call("control_events")
    assert w.take() == []  # once
    # reboot: rebooting, for the daemon to reload and boot
    assert w.request(VM_BOOT, id_payload(vm_id))[0] == OK
    w.enter(vm_id)
    _guest_ecall(w, 2, 0x53525354, 0, 1, 0)
    rec = _event(w.send(frame(VM_LIST)))  # events follow the responses of a request
    assert rec["state"] == REBOOTING
    assert w.request(VM_LOAD, load_payload(vm_id, 0x8000_0000, b"again"))[0] == OK
    assert w.request(VM_BOOT, id_payload(vm_id))[0] == OK
    w.enter(vm_id)
    # a fault: a load guest-page fault with no address given (trap.py), reason and registers in the record
    csr = prelude.mock.csr
    csr[prelude_csr("SCAUSE")], csr[prelude_csr("STVAL")], csr[prelude_csr("HTVAL")] = 21, 0x1234, 0
    w.vcpu(2).set("sepc", 0x8000_0040)
    w.be.call("trap_guest_page_fault", w.vcpu(2).addr)
    w.trap_return(2)
    w.be.call("control_events")
    rec = _event(w.take())
    assert (rec["state"], rec["reason"], rec["scause"], rec["stval"], rec["sepc"], rec["htval"]) == (
        CRASHED,
        2,
        21,
        0x1234,
        0x8000_0040,
        0,
    )
    assert w.vm(0).get("state") == 1  # the MVM runs on
    assert w.request(VM_BOOT, id_payload(vm_id))[0] == OK  # afresh
    assert vm_record(w.request(VM_INFO, id_payload(vm_id))[1])["reason"] == 0


def test_guest_console_goes_to_its_ring_not_the_uart(w):
    vm_id = _booted(w)
    _, hpa, _ = w.regions_of(vm_id)[0]
    w.be.write(hpa + 0x200, b"hello\n")
    w.fw.clear()
    _guest_ecall(w, 2, 0x4442434E, 0, 6, 0x8000_0200, 0)  # DBCN console_write
    _guest_ecall(w, 2, 0x4442434E, 2, ord("!"))  # console_write_byte
    _guest_ecall(w, 2, 0x01, 0, ord("?"))  # legacy putchar
    assert not any(f[0] == 0x4442434E for f in w.fw)  # nothing to the firmware's console
    ring = w.be.call("vcon_ring_to_mvm", vm_id)  # toward the MVM's port vm_id (core/virtio_console.py)
    buf = w.be.alloc(64)
    n = w.be.call("ring_get", ring, buf, 64)
    assert w.be.read(buf, n) == b"hello\n!?"


def test_stop_of_a_vm_ending_by_itself_waits_for_that_end(w):
    """VM_STOP while the guest's own end holds the claim: OK once that end has settled, the guest's state kept."""
    vm_id = _booted(w)
    w.vm(vm_id).set("ending", 1)  # another hart claimed the end and is calling the vCPUs off...
    w.vm(vm_id).set("state", 3)  # ... as crashed
    w.vm(vm_id).set("released", 1)  # ... and is done
    w.vcpu(2).set("running", 0)  # its hart has parked the vCPU
    assert w.request(VM_STOP, id_payload(vm_id)) == (ESTATE, b"vm1 is not running")
    assert vm_record(w.request(VM_INFO, id_payload(vm_id))[1])["state"] == CRASHED


def test_system_shutdown_and_reboot_after_their_response(w):
    vm_id = _booted(w)
    status, body = w.request(SYSTEM_REBOOT)
    assert (status, body) == (OK, b"")
    if w.be.kind == "cpython":
        with pytest.raises(MachineOff):
            w.be.call("control_act")
    else:
        w.be.call("control_act")  # the mock firmware returns from the reset (compiled code cannot unwind)
    assert (0x53525354, 0, 2, 0) in w.fw  # SRST system_reset: warm reboot, no reason
    assert vm_record(w.request(VM_INFO, id_payload(vm_id))[1])["state"] == STOPPED  # every GVM ended first
    if w.be.kind != "cpython":
        return  # a machine power-off does not return: only under CPython, where the firmware mock raises
    assert w.request(VM_BOOT, id_payload(vm_id))[0] == OK
    out = w.send(frame(SYSTEM_SHUTDOWN))
    assert [(t, s) for t, _, s, _, _ in out] == [(SYSTEM_SHUTDOWN | 0x8000, OK)]
    with pytest.raises(MachineOff):
        w.be.call("control_act")
    assert (0x53525354, 0, 0, 0) in w.fw


def test_port_reset_forgets_a_partial_frame(w):
    hello = frame(HELLO, struct.pack("<II", 1, 0))
    assert w.send(hello[:30]) == []
    w.be.call("control_reset")
    assert [s for _, _, s, _, _ in w.send(frame(VM_LIST))] == [OK]
    assert w.take() == []


def test_poll_serves_the_control_port(w):
    """control_poll, as the MVM's console device calls it: requests from the control port's ring (what the MVM
    wrote on port 8), responses and events into the ring toward the MVM."""
    to_hyp, to_mvm = w.be.call("vcon_ring_from_mvm", 8), w.be.call("vcon_ring_to_mvm", 8)
    req = frame(HELLO, struct.pack("<II", 1, 0), id_=5) + frame(VM_CREATE, create_record(), id_=6)
    w.be.write(w.inbuf, req)
    assert w.be.call("ring_put", to_hyp, w.inbuf, len(req), False) == len(req)
    w.be.call("control_poll")
    n = w.be.call("ring_get", to_mvm, w.outbuf, 4096)
    out = [(t, i, s) for t, i, s, _, _ in parse_frames(w.be.read(w.outbuf, n))]
    assert out == [(HELLO | 0x8000, 5, OK), (VM_CREATE | 0x8000, 6, OK)]
    assert w.request(VM_BOOT, id_payload(1))[0] == OK
    _guest_ecall(w, 2, 0x53525354, 0, 0, 0)  # the guest powers off: the MVM's first hart is woken ...
    assert 0 in w.ipis
    w.be.call("control_idle")  # ... and its next wait reports the event
    n = w.be.call("ring_get", to_mvm, w.outbuf, 4096)
    (event,) = parse_frames(w.be.read(w.outbuf, n))
    assert event[0] == EVENT_VM_STATE and vm_record(event[4])["state"] == STOPPED


def test_a_guest_vms_interrupt_lines_are_its_own(w):
    """Its console's line raises a source of its own controller, never the MVM's (PLIC: its own virtual PLIC;
    AIA: its own APLIC domain)."""
    vm_id = w.create()
    main, main_size = w.be.statics["hypervisor.core.virq.vplic_main"]
    aplic, aplic_size = w.be.statics["hypervisor.core.vaplic.vaplic_main"]
    before = (w.be.read(main, main_size), w.be.read(aplic, aplic_size))
    w.be.call("irqc_set_line", w.vm(vm_id).addr, 1, True, 0)
    assert (w.be.read(main, main_size), w.be.read(aplic, aplic_size)) == before
    if not w.aia:
        assert w.vm(vm_id).get("irqc") == 1
        mine = w.be.call("virq_vplic_of", w.vm(vm_id).addr)
        assert mine != main
        pending = w.View(w.be, w.be.struct("hypervisor.core.vplic", "Vplic"), mine).get("pending", 0)
        assert pending == 0b10  # source 1
    else:
        assert w.vm(vm_id).get("irqc") == 1
        mine = w.be.call("vaplic_of", w.vm(vm_id).addr)
        assert mine != aplic
        dom = w.View(w.be, w.be.struct("hypervisor.core.vaplic", "Vaplic"), mine)
        # source 1 is wired there and its line is high (pending once the guest makes the source active, 4.7)
        assert dom.get("line", 0) == 0b10 and dom.get("wired", 0) == 0b10 and dom.get("vm") == vm_id


def test_several_vcpus_of_one_vm_on_one_hart(w):
    """cpu.num above the harts of the mask: vCPU i on the (i mod k)-th hart; the master hart's first vCPU starts
    (AIA: each vCPU has a guest interrupt file of its own, mapped as its own IMSIC page)."""
    vm_id = w.create(name=b"pair", hart_mask=0b1100, vcpus=3, master=3)
    on2, on3 = w.vcpus_on_hart(2), w.vcpus_on_hart(3)
    assert [w.vcpu(k).get("vcpu_id") for k in on2] == [0, 2] and [w.vcpu(k).get("vcpu_id") for k in on3] == [1]
    assert w.vm(vm_id).get("master") == 1
    if w.aia:
        assert sorted(w.vcpu(k).get("vgein") for k in on2) == [1, 2]
    status, msg = w.request(VM_CREATE, create_record(name=b"few", hart_mask=0b1100, vcpus=1, master=2))
    assert (status, msg) == (EINVAL, b"vcpus: fewer than the harts in hart_mask")
    if w.aia:  # hart 2 has one free file left of 3: two more vCPUs there are refused, naming both counts
        status, msg = w.request(VM_CREATE, create_record(name=b"two", hart_mask=0b100, vcpus=2))
        assert (status, msg) == (EBUSY, b"hart 2 has 1 free guest interrupt files of 3 (aia-guests), 2 asked")
    assert w.request(VM_REMOVE, id_payload(vm_id))[0] == OK
    assert w.vcpus_on_hart(2) == [] and w.vcpus_on_hart(3) == []
