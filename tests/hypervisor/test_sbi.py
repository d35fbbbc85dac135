"""SBI emulation for guests (hypervisor/arch/riscv/vsbi.py) run on the host under CPython: a VS ecall's
registers in, the guest-visible results out, and the side effects (CSRs, firmware calls, VM state)."""

from __future__ import annotations

import importlib

import pytest

from compiler import prelude
from compiler.csrs import CSRS
from tests.hypervisor.hyp_env import load_board

EID_BASE, EID_TIME, EID_SRST, EID_DBCN, EID_HSM = 0x10, 0x54494D45, 0x53525354, 0x4442434E, 0x48534D
A0, A1, A6, A7 = 10, 11, 16, 17
POOL = 0x9000_0000
U64 = (1 << 64) - 1


@pytest.fixture
def hyp(tmp_path):
    load_board(tmp_path, "plic")
    mods = {
        n: importlib.import_module(f"hypervisor.{n}")
        for n in ("core.frame_alloc", "arch.riscv.stage2", "core.vm", "core.hart", "arch.riscv.vsbi")
    }
    console: list[bytes] = []
    fw_calls: list[tuple] = []

    def firmware(eid, fid, a0, a1, a2, a3, a4, a5):
        fw_calls.append((eid, fid, a0))
        if eid == EID_DBCN and fid == 0:
            console.append(prelude.memory.read(a1, a0))
            return 0, a0
        return 0, 0

    prelude.mock.sbi_handler = firmware
    mods["arch.riscv.vsbi"].vsbi_init()  # the boot hart's (trap_init_tables)
    prelude.memory.fill(POOL, 8 << 20)
    assert mods["core.frame_alloc"].frame_alloc_init(prelude.u64(POOL), prelude.u64(8 << 20))
    image = 0x8400_0000
    prelude.memory.write(image, b"\x6f\x00\x00\x00" + bytes(60))
    vm = mods["core.vm"].vm_create(
        prelude.u64(image),
        prelude.u64(64),
        prelude.u64(0x8000_0000),
        prelude.u64(0x200000),
        prelude.u64(0),
        prelude.u64(0),
    )
    assert vm.addr() != 0
    v = mods["core.vm"].hart_first_vcpu(prelude.u64(0))

    class H:
        pass

    h = H()
    h.mods, h.vm, h.v, h.console, h.fw = mods, vm, v, console, fw_calls

    def ecall(eid, fid, *args):
        for i in range(6):
            v.regs[A0 + i] = prelude.u64(args[i] if i < len(args) else 0)
        v.regs[A6] = prelude.u64(fid)
        v.regs[A7] = prelude.u64(eid)
        pc = int(v.sepc)
        mods["arch.riscv.vsbi"].sbi_handle_ecall(v)
        assert int(v.sepc) == pc + 4
        return int(v.regs[A0]), int(v.regs[A1])

    h.ecall = ecall
    return h


def test_base_version_probe_and_unknown(hyp):
    assert hyp.ecall(EID_BASE, 0) == (0, 2 << 24)
    for eid in (EID_TIME, 0x735049, 0x52464E43, EID_HSM, EID_SRST, EID_DBCN, 0x01):
        assert hyp.ecall(EID_BASE, 3, eid) == (0, 1), hex(eid)
    assert hyp.ecall(EID_BASE, 3, 0x12345678) == (0, 0)
    assert hyp.ecall(0x12345678, 0) == (-2 & U64, 0)
    assert hyp.ecall(0x504D55, 0)[0] == -2 & U64  # PMU: honestly not available


def test_time_with_sstc_programs_vstimecmp(hyp):
    hyp.mods["core.hart"].hart_features_set(True, False, False)
    assert hyp.ecall(EID_TIME, 0, 123456) == (0, 0)
    assert prelude.mock.csr[CSRS["VSTIMECMP"]] == 123456


def test_time_without_sstc_arms_firmware_timer_and_injects(hyp):
    hyp.mods["core.hart"].hart_features_set(False, False, False)
    prelude.mock.csr[CSRS["HVIP"]] = 1 << 6
    assert hyp.ecall(EID_TIME, 0, 5000) == (0, 0)
    assert prelude.mock.csr[CSRS["HVIP"]] & (1 << 6) == 0
    assert (EID_TIME, 0, 5000) in hyp.fw
    sbi = hyp.mods["arch.riscv.vsbi"]
    sbi.sbi_timer_fired(hyp.v, prelude.u64(4999))  # early: re-armed, nothing injected
    assert prelude.mock.csr[CSRS["HVIP"]] & (1 << 6) == 0
    sbi.sbi_timer_fired(hyp.v, prelude.u64(5000))
    assert prelude.mock.csr[CSRS["HVIP"]] & (1 << 6) != 0


def test_dbcn_write_goes_through_stage2_with_vm_prefix(hyp):
    gpa = 0x8000_1000
    hpa = int(hyp.vm.mem_hpa) + 0x1000
    prelude.memory.write(hpa, b"hello\nrest")
    assert hyp.ecall(EID_DBCN, 0, 10, gpa, 0) == (0, 10)
    out = b"".join(hyp.console)
    assert b"[vm1] hello\n" in out
    assert hyp.ecall(EID_DBCN, 0, 4, 0x4000_0000, 0)[0] == -3 & U64  # outside the VM: INVALID_PARAM (12.1)
    assert hyp.ecall(EID_DBCN, 0, 4, gpa, 1)[0] == -3 & U64  # base_addr_hi beyond any RAM


def test_hsm_status_and_srst_ends_only_the_vm(hyp):
    assert hyp.ecall(EID_HSM, 2, 0) == (0, 0)
    assert hyp.ecall(EID_HSM, 2, 5)[0] == -3 & U64
    vm_mod = hyp.mods["core.vm"]
    fa = hyp.mods["core.frame_alloc"]
    used = int(fa.frame_alloc_used_pages())
    hyp.ecall(EID_SRST, 0, 0, 0)
    assert int(hyp.vm.state) == vm_mod.VM_ENDED
    assert int(fa.frame_alloc_used_pages()) < used  # memory and tables returned
    assert int(fa.frame_alloc_used_pages()) == 0


@pytest.fixture
def two_vcpus(hyp):
    """A second VM (the management VM's shape: fixed memory, two vCPUs on harts 2 and 3, the second stopped)."""
    vm_mod = hyp.mods["core.vm"]
    u64 = prelude.u64
    prelude.memory.fill(0xA000_0000, 0x20_0000)
    vm = vm_mod.vm_setup(u64(0), u64(0xA000_0000), u64(0xA000_0000), u64(0x20_0000), False)
    v0 = vm_mod.vcpu_add(vm, u64(2), True)
    v1 = vm_mod.vcpu_add(vm, u64(3), False)
    hyp.v = v0
    return vm, v0, v1


def _ecall_on(hyp, v, eid, fid, *args):
    saved = hyp.v
    hyp.v = v
    try:
        for i in range(6):
            v.regs[A0 + i] = prelude.u64(args[i] if i < len(args) else 0)
        v.regs[A6] = prelude.u64(fid)
        v.regs[A7] = prelude.u64(eid)
        hyp.mods["arch.riscv.vsbi"].sbi_handle_ecall(v)
        return int(v.regs[A0]), int(v.regs[A1])
    finally:
        hyp.v = saved


def test_hsm_start_wakes_the_second_vcpu_on_its_hart(hyp, two_vcpus):
    vm, v0, v1 = two_vcpus
    assert _ecall_on(hyp, v0, EID_HSM, 2, 1) == (0, 1)  # stopped
    assert _ecall_on(hyp, v0, EID_HSM, 0, 1, 0xA000_1000, 0x55) == (0, 0)
    assert int(v1.state) == hyp.mods["core.vm"].VCPU_STARTED
    assert int(v1.sepc) == 0xA000_1000 and int(v1.regs[A0]) == 1 and int(v1.regs[A1]) == 0x55
    assert (0x735049, 0, 1) in hyp.fw  # an IPI (mask 1, base = hart 3) wakes the target hart
    assert _ecall_on(hyp, v0, EID_HSM, 2, 1) == (0, 0)  # started
    assert _ecall_on(hyp, v0, EID_HSM, 0, 1, 0, 0)[0] == -6 & U64  # already available
    assert _ecall_on(hyp, v0, EID_HSM, 0, 7, 0, 0)[0] == -3 & U64  # no such vCPU


def test_ipi_to_self_and_to_the_other_vcpu(hyp, two_vcpus):
    vm, v0, v1 = two_vcpus
    v1.state = hyp.mods["core.vm"].VCPU_STARTED
    prelude.mock.csr[CSRS["HVIP"]] = 0
    assert _ecall_on(hyp, v0, 0x735049, 0, 0b01, 0) == (0, 0)
    assert prelude.mock.csr[CSRS["HVIP"]] & (1 << 2)  # VSSIP on this hart
    prelude.mock.csr[CSRS["HVIP"]] = 0
    assert _ecall_on(hyp, v0, 0x735049, 0, 0b10, 0) == (0, 0)
    assert not prelude.mock.csr[CSRS["HVIP"]] & (1 << 2)  # not here: the other hart's
    assert int(v1.mailbox[hyp.mods["core.vm"].MSG_VSSIP]) == 1
    hyp.mods["arch.riscv.vsbi"].vcpu_handle_messages(v1)  # on hart 3, after the IPI
    assert prelude.mock.csr[CSRS["HVIP"]] & (1 << 2) and int(v1.mailbox[0]) == 0
    assert _ecall_on(hyp, v0, 0x735049, 0, 1, 5)[0] == -3 & U64  # base beyond the VM's vCPUs


def _started_running(hyp, v):
    v.state = hyp.mods["core.vm"].VCPU_STARTED
    v.running = prelude.u32(1)


def test_rfence_waits_until_the_other_hart_has_fenced(hyp, two_vcpus):
    """SBI remote fences are synchronous: the call returns only once the target hart served the request (here
    the firmware's IPI stands for that hart, which answers by reading its vCPU's requests)."""
    vm, v0, v1 = two_vcpus
    _started_running(hyp, v1)
    sbi = hyp.mods["arch.riscv.vsbi"]
    served = []

    def firmware(eid, fid, a0, a1, *rest):
        if eid == 0x735049:  # the IPI to hart 3: that hart takes it and reads its messages
            served.append(int(v1.fence_req))
            sbi.vcpu_handle_messages(v1)
        return 0, 0

    prelude.mock.sbi_handler = firmware
    prelude.mock.log.clear()
    assert _ecall_on(hyp, v0, 0x52464E43, 0, ~0 & U64, ~0 & U64) == (0, 0)  # remote_fence_i, all harts
    assert served == [1] and int(v1.fence_done) == 1 == int(v1.fence_req)
    assert len(prelude.mock.ops("hfence_vvma")) == 2 and len(prelude.mock.ops("fence_i")) == 2
    prelude.mock.log.clear()
    assert _ecall_on(hyp, v0, 0x52464E43, 1, 0b01, 0, 0, 0) == (0, 0)  # only vCPU 0: no request to hart 3
    assert served == [1] and len(prelude.mock.ops("hfence_vvma")) == 1
    assert _ecall_on(hyp, v0, 0x52464E43, 1, 1, 7, 0, 0)[0] == -3 & U64  # base beyond the VM's vCPUs


def test_rfence_keeps_waiting_and_serves_its_own_requests_meanwhile(hyp, two_vcpus, monkeypatch):
    """The requester polls until the target's count reaches its ticket; a request made of the requester
    meanwhile (the other hart fencing it at the same moment) is served inside that wait, so neither hart
    waits for the other forever."""
    vm, v0, v1 = two_vcpus
    _started_running(hyp, v1)
    _started_running(hyp, v0)
    sbi = hyp.mods["arch.riscv.vsbi"]
    real = sbi.amoadd_d
    polls = []

    def amoadd_d(p, v):
        if int(p.addr()) == int(prelude.addr_of(v1.fence_done).addr()):
            polls.append(1)
            if len(polls) == 3:  # hart 3 asks hart 2 for a fence while hart 2 waits for it
                real(prelude.addr_of(v0.fence_req), prelude.u64(1))
            if len(polls) == 6:  # and serves hart 2's request only then
                sbi.vcpu_handle_messages(v1)
        return real(p, v)

    monkeypatch.setattr(sbi, "amoadd_d", amoadd_d)
    prelude.mock.sbi_handler = lambda *a: (0, 0)
    assert _ecall_on(hyp, v0, 0x52464E43, 1, 0b10, 0, 0, 0) == (0, 0)  # remote_sfence_vma on vCPU 1 only
    assert len(polls) >= 6 and int(v1.fence_done) == 1
    assert int(v0.fence_done) == 1 == int(v0.fence_req)  # served while waiting


def test_rfence_sleeps_until_the_target_has_fenced_and_woken_it(hyp, two_vcpus, monkeypatch):
    """The requester does not spin: it names the vCPU it waits for and sleeps in WFI; the target's hart serves
    the request, sees the waiter and sends its hart an IPI (here the target's part runs inside the WFI)."""
    vm, v0, v1 = two_vcpus
    _started_running(hyp, v0)
    _started_running(hyp, v1)
    sbi = hyp.mods["arch.riscv.vsbi"]
    ipis = []

    def firmware(eid, fid, a0, a1, *rest):
        if eid == 0x735049:
            ipis.append(int(a1))  # hart_mask 1 at hart_mask_base: the hart
        return 0, 0

    sleeps = []

    def wfi():
        sleeps.append(int(v0.fence_wait))
        sbi.vcpu_handle_messages(v1)  # hart 3 takes its IPI meanwhile

    prelude.mock.sbi_handler = firmware
    monkeypatch.setattr(sbi, "wfi", wfi)
    assert _ecall_on(hyp, v0, 0x52464E43, 1, 0b10, 0, 0, 0) == (0, 0)  # remote_sfence_vma on vCPU 1
    assert sleeps == [int(v1.addr())]
    assert ipis == [3, 2]  # the request to hart 3, then hart 3 wakes hart 2
    assert int(v1.fence_done) == 1 == int(v1.fence_req) and int(v0.fence_wait) == 0
    assert (int(v0.fences_sent), int(v0.fences_waited), int(v1.fences_served)) == (1, 1, 1)


def test_rfence_does_not_wait_for_a_vcpu_off_its_hart(hyp, two_vcpus):
    """A started vCPU whose hart has not entered it yet (or parked it) fences in full when it is entered: the
    request is left for then, and the caller does not wait; neither does it for a VM that has ended."""
    vm, v0, v1 = two_vcpus
    v1.state = hyp.mods["core.vm"].VCPU_STARTED
    prelude.mock.sbi_handler = lambda *a: (0, 0)
    prelude.mock.sbi_calls.clear()
    assert _ecall_on(hyp, v0, 0x52464E43, 1, ~0 & U64, ~0 & U64, 0, 0) == (0, 0)
    assert int(v1.fence_req) == 1 and int(v1.fence_done) == 0
    assert prelude.mock.sbi_calls == [] and int(v0.fences_deferred) == 1  # no IPI: vcpu_run fences it
    hyp.mods["arch.riscv.vsbi"].vcpu_handle_messages(v1)
    assert int(v1.fence_done) == 1
    v1.running = prelude.u32(1)
    vm.state = hyp.mods["core.vm"].VM_CRASHED  # killed by another hart meanwhile
    assert _ecall_on(hyp, v0, 0x52464E43, 1, ~0 & U64, ~0 & U64, 0, 0) == (0, 0)
    assert int(v1.fence_req) == 2 and int(v1.fence_done) == 1


def test_dbcn_never_reads_a_device_the_vm_has_mapped(hyp):
    """A VM's passthrough windows are in its stage-2 table, but not its RAM: DBCN refuses to read them (a byte
    load from a device register could fault the hypervisor or eat a received character)."""
    stage2 = hyp.mods["arch.riscv.stage2"]
    assert stage2.stage2_map(
        hyp.vm.stage2_root, prelude.u64(0x1000_0000), prelude.u64(0x1000_0000), prelude.u64(0x1000), stage2.S2_PERM_RW
    )
    prelude.mock.map_mmio(
        0x1000_0000, 0x1000, lambda off, w: pytest.fail("the device was read"), lambda off, w, v: None
    )
    assert hyp.ecall(EID_DBCN, 0, 4, 0x1000_0000, 0)[0] == -3 & U64


def test_srst_reserved_and_vendor_values(hyp):
    """SBI 2.0 section 10.1: reserved types and reasons are INVALID_PARAM, vendor types NOT_SUPPORTED; the VM
    runs on after each."""
    vm_mod = hyp.mods["core.vm"]
    assert hyp.ecall(EID_SRST, 0, 3, 0)[0] == -3 & U64  # reserved type
    assert hyp.ecall(EID_SRST, 0, 1 << 32, 0)[0] == -3 & U64  # types are 32-bit
    assert hyp.ecall(EID_SRST, 0, 0, 2)[0] == -3 & U64  # reserved reason
    assert hyp.ecall(EID_SRST, 0, 0, 0xDFFF_FFFF)[0] == -3 & U64
    assert hyp.ecall(EID_SRST, 0, 0xF000_0000, 0)[0] == -2 & U64  # vendor type
    assert hyp.ecall(EID_SRST, 1, 0, 0)[0] == -2 & U64  # no such function
    assert int(hyp.vm.state) == vm_mod.VM_RUNNING


def test_test_guest_reboot_reloads_the_image_and_reenters_through_vcpu_run(hyp):
    """A single-vCPU test guest's reboot: its image is copied in again, the vCPU starts over at the entry, and
    the trap returns through hart_wait/vcpu_run (parking), which fences and resets the VS-level state."""
    v, vm = hyp.v, hyp.vm
    hpa = int(vm.mem_hpa)
    prelude.memory.write(hpa, b"\xff" * 8)  # the guest overwrote its own code
    v.regs[5] = prelude.u64(0x1234)
    for i in range(6):
        v.regs[A0 + i] = prelude.u64(0)
    v.regs[A0] = prelude.u64(1)  # cold reboot
    v.regs[A6] = prelude.u64(0)
    v.regs[A7] = prelude.u64(EID_SRST)
    hyp.mods["arch.riscv.vsbi"].sbi_handle_ecall(v)
    assert prelude.memory.read(hpa, 4) == b"\x6f\x00\x00\x00"  # the pristine image again
    assert int(v.sepc) == int(vm.entry) and int(v.regs[5]) == 0
    assert int(v.parking) == 1 and int(vm.state) == hyp.mods["core.vm"].VM_RUNNING
    assert b"vm1 reboots, reason 0x0" in b"".join(hyp.console)


def test_ipi_and_rfence_refuse_harts_the_vm_does_not_have(hyp, two_vcpus):
    """SBI 2.0 section 3.3: a mask naming a hart the VM lacks is INVALID_PARAM, and nothing is sent at all; the
    HFENCE functions of RFENCE are NOT_SUPPORTED (no guest has the H extension)."""
    vm, v0, v1 = two_vcpus
    _started_running(hyp, v1)
    prelude.mock.sbi_handler = lambda *a: pytest.fail("an IPI was sent")
    assert _ecall_on(hyp, v0, 0x735049, 0, 0b110, 0)[0] == -3 & U64  # vCPU 2 does not exist
    assert _ecall_on(hyp, v0, 0x735049, 0, 0b11, 1)[0] == -3 & U64  # base 1: vCPUs 1 and 2
    assert _ecall_on(hyp, v0, 0x52464E43, 1, 0b100, 0, 0, 0)[0] == -3 & U64
    assert int(v1.mailbox[0]) == 0 and int(v1.fence_req) == 0
    for fid in (3, 4, 5, 6):
        assert _ecall_on(hyp, v0, 0x52464E43, fid, 0b11, 0, 0, 0)[0] == -2 & U64


def test_guest_page_fault_without_htval_ends_the_vm_and_says_so(hyp):
    """Priv 9.4.4: a hart may write htval = 0 instead of the guest-physical address. The hypervisor cannot emulate
    an access it cannot place: it reports the guest's own address and ends only that VM (never treats the access
    as one at guest-physical 0)."""
    trap = importlib.import_module("hypervisor.arch.riscv.trap")
    vm_mod = hyp.mods["core.vm"]
    prelude.mock.csr[CSRS["SCAUSE"]] = 21  # load guest-page fault
    prelude.mock.csr[CSRS["HTVAL"]] = 0
    prelude.mock.csr[CSRS["STVAL"]] = 0xFFFF_FFC0_0000_1234
    trap.trap_guest_page_fault(hyp.v)
    text = b"".join(hyp.console).decode()
    assert "vm1 guest-page fault, guest-physical address not given (htval 0), guest address 0xffffffc000001234" in text
    assert "guest-physical 0x" not in text
    assert "vm1 killed: access outside its memory" in text
    assert int(hyp.vm.state) == vm_mod.VM_CRASHED


# ---------------------------------------------------------------------------------------------------------------
# A guest's mistakes go to the guest; a VM ends once (hypervisor/arch/riscv/trap.py, mmio.py, core/vm.py)


def test_hsm_start_outside_the_vms_ram_is_invalid_address(hyp, two_vcpus):
    """SBI 2.0 section 9.1: a start_addr that is not in the VM's RAM is SBI_ERR_INVALID_ADDRESS; the target stays
    stopped and no hart is woken."""
    vm, v0, v1 = two_vcpus
    hyp.fw.clear()
    for addr in (0, 0x1000_0000, 0x9FFF_FFFC, 0xA000_0000 + 0x20_0000, U64):
        assert _ecall_on(hyp, v0, EID_HSM, 0, 1, addr, 0)[0] == -5 & U64, hex(addr)
    assert int(v1.state) == hyp.mods["core.vm"].VCPU_STOPPED
    assert not [c for c in hyp.fw if c[0] == 0x735049]
    assert _ecall_on(hyp, v0, EID_HSM, 0, 1, 0xA000_0000 + 0x20_0000 - 4, 0) == (0, 0)  # its last word: fine


def test_a_vm_ends_once_and_gives_every_page_back(hyp):
    """Two vCPUs of one VM fault at once: the first to claim the VM's end reports it and frees its memory and
    tables; the second changes nothing (no second report, no double free) and leaves its hart."""
    vm_mod, fa = hyp.mods["core.vm"], hyp.mods["core.frame_alloc"]
    trap = importlib.import_module("hypervisor.arch.riscv.trap")
    v2 = vm_mod.vcpu_add(hyp.vm, prelude.u64(1), True)
    free = int(fa.frame_alloc_free_pages())
    total = int(fa.frame_alloc_total_pages())
    for v in (hyp.v, v2):
        prelude.mock.csr[CSRS["SCAUSE"]] = 21
        prelude.mock.csr[CSRS["HTVAL"]] = 0x4000_0000 >> 2
        prelude.mock.csr[CSRS["STVAL"]] = 0x4000_0000
        trap.trap_guest_page_fault(v)
        assert int(v.parking) == 1
    text = b"".join(hyp.console).decode()
    assert text.count("vm1 killed") == 1 and text.count("guest-page fault at guest-physical 0x40000000") == 1
    assert text.count("vm1 released") == 1
    assert int(hyp.vm.state) == vm_mod.VM_CRASHED
    assert int(fa.frame_alloc_free_pages()) == total > free  # every page the VM took, and only once
    assert not vm_mod.vm_end(hyp.vm, vm_mod.VM_FAILED, hyp.v)  # a later end (a power-off racing) changes nothing
    vm_mod.vm_mark_created()
    assert int(hyp.vm.state) == vm_mod.VM_CRASHED and vm_mod.vm_all_ended()


def test_vcpu_run_does_not_enter_a_vm_being_ended(hyp):
    """A hart that publishes `running` after another hart claimed the VM's end backs out (never enters it)."""
    vm_mod = hyp.mods["core.vm"]
    vcpu = importlib.import_module("hypervisor.arch.riscv.vcpu")
    assert vm_mod.vm_claim_end(hyp.vm)
    prelude.mock.csr[CSRS["HGATP"]] = 0
    vcpu.vcpu_run(hyp.v, False)
    assert int(hyp.v.running) == 0 and prelude.mock.csr[CSRS["HGATP"]] == 0  # backed out before hgatp


def test_access_fault_goes_to_the_guests_handler(hyp):
    """scause 5 from the guest (its access passed stage 2 and failed below): delivered to its own trap vector
    with the same cause and address, the VM runs on (Priv 9.6)."""
    trap = importlib.import_module("hypervisor.arch.riscv.trap")
    prelude.mock.csr[CSRS["VSTVEC"]] = 0x8000_0100
    prelude.mock.csr[CSRS["SCAUSE"]] = 5
    prelude.mock.csr[CSRS["STVAL"]] = 0x1000_0ABC
    hyp.v.sepc = prelude.u64(0x8000_2000)
    trap.trap_init_tables()
    trap.EXCEPTION_HANDLERS[5](hyp.v)
    assert prelude.mock.csr[CSRS["VSCAUSE"]] == 5 and prelude.mock.csr[CSRS["VSTVAL"]] == 0x1000_0ABC
    assert prelude.mock.csr[CSRS["VSEPC"]] == 0x8000_2000 and int(hyp.v.sepc) == 0x8000_0100
    assert int(hyp.vm.state) == hyp.mods["core.vm"].VM_RUNNING


LW_A0 = 0x0000_2503  # lw a0, 0(x0) as htinst transforms it (Priv 9.6.3: rs1 and the offset zeroed)
AMOADD_W_A0 = 0x0000_252F  # amoadd.w a0, x0, (x0), transformed


@pytest.mark.parametrize(
    ("cause", "htinst", "offset", "injected"),
    [(21, LW_A0, 1, 5), (21, LW_A0, 0xFFE, 5), (23, AMOADD_W_A0, 0x800, 7)],
    ids=["misaligned-load", "misaligned-at-end", "amo"],
)
def test_emulated_access_the_device_cannot_do_is_an_access_fault(hyp, cause, htinst, offset, injected):
    """An access to an emulated device (the statistics page) that it cannot do: the guest gets a load or
    store/AMO access fault at its own address, the VM runs on (it used to end)."""
    trap = importlib.import_module("hypervisor.arch.riscv.trap")
    board = importlib.import_module("hypervisor.board")
    assert importlib.import_module("hypervisor.core.stats").stats_attach(hyp.vm)
    gpa = board.MVM_STATS_BASE + offset
    prelude.mock.csr[CSRS["VSTVEC"]] = 0x8000_0100
    prelude.mock.csr[CSRS["SCAUSE"]] = cause
    prelude.mock.csr[CSRS["HTVAL"]] = gpa >> 2
    prelude.mock.csr[CSRS["STVAL"]] = gpa
    prelude.mock.csr[CSRS["HTINST"]] = htinst
    trap.trap_guest_page_fault(hyp.v)
    assert prelude.mock.csr[CSRS["VSCAUSE"]] == injected and prelude.mock.csr[CSRS["VSTVAL"]] == gpa
    assert int(hyp.v.sepc) == 0x8000_0100
    assert int(hyp.vm.state) == hyp.mods["core.vm"].VM_RUNNING and "killed" not in b"".join(hyp.console).decode()


def test_statistics_page_is_every_vms_and_reports_free_pages(hyp):
    """Any VM may have the statistics page (an emulated region of its own, core/stats.py); one it was not given
    is outside its memory."""
    trap = importlib.import_module("hypervisor.arch.riscv.trap")
    board = importlib.import_module("hypervisor.board")
    mmio = importlib.import_module("hypervisor.arch.riscv.mmio")
    emul = importlib.import_module("hypervisor.core.emul")
    prelude.mock.csr[CSRS["HTVAL"]] = board.MVM_STATS_BASE >> 2
    prelude.mock.csr[CSRS["STVAL"]] = board.MVM_STATS_BASE
    assert mmio.mmio_emulate(hyp.v) == emul.EMUL_NONE
    stats = importlib.import_module("hypervisor.core.stats")
    assert stats.stats_attach(hyp.vm) and not stats.stats_attach(hyp.vm)  # once: regions never overlap
    fa = hyp.mods["core.frame_alloc"]
    prelude.mock.csr[CSRS["SCAUSE"]] = 21
    prelude.mock.csr[CSRS["HTVAL"]] = (board.MVM_STATS_BASE + 0x800) >> 2
    prelude.mock.csr[CSRS["STVAL"]] = board.MVM_STATS_BASE + 0x800
    prelude.mock.csr[CSRS["HTINST"]] = LW_A0
    pc = int(hyp.v.sepc)
    trap.trap_guest_page_fault(hyp.v)
    assert int(hyp.v.sepc) == pc + 4 and int(hyp.v.regs[A0]) == int(fa.frame_alloc_free_pages())


LW_S1 = 0x0000_2483  # lw s1, 0(x0), transformed: s1 (x9) is a kept register (runtime/trap.S saves it when needed)
SW_S2 = 0x0120_2023  # sw s2, 0(x0), transformed


def test_access_naming_a_kept_register(hyp):
    """runtime/trap.S saves gp, tp and s1..s11 only when needed. An emulated load into s1 is performed at once, its
    value left in mmio_value for trap.S to write over s1 once it has saved them (REGS_LOAD_KEPT). A store from s2
    is not performed until they are saved (EMUL_KEPT: nothing counted, REGS_SAVE_KEPT asks trap.S to save them and
    call hyp_guest_mmio again); taken again, it reads the saved value."""
    trap = importlib.import_module("hypervisor.arch.riscv.trap")
    board = importlib.import_module("hypervisor.board")
    vm_mod = hyp.mods["core.vm"]
    fa = hyp.mods["core.frame_alloc"]
    assert importlib.import_module("hypervisor.core.stats").stats_attach(hyp.vm)
    gpa = board.MVM_STATS_BASE + 0x800
    prelude.mock.csr[CSRS["SCAUSE"]] = 21
    prelude.mock.csr[CSRS["HTVAL"]] = gpa >> 2
    prelude.mock.csr[CSRS["STVAL"]] = gpa
    prelude.mock.csr[CSRS["HTINST"]] = LW_S1
    v = hyp.v
    pc, traps, exits = int(v.sepc), int(vm_mod.vcpu_traps(v)), int(v.mmio_exits)
    v.regs[9] = prelude.u64(0x5A5A)
    v.kept_saved = prelude.u32(0)
    assert trap.hyp_guest_mmio(v).addr() == v.addr()
    assert int(v.regs_written) == vm_mod.REGS_LOAD_KEPT and int(v.regs[9]) == 0x5A5A
    assert int(v.mmio_value) == int(fa.frame_alloc_free_pages()) and int(v.sepc) == pc + 4
    assert (int(vm_mod.vcpu_traps(v)), int(v.mmio_exits)) == (traps + 1, exits + 1)
    # a store from a kept register waits for the save; the statistics page ignores the value
    prelude.mock.csr[CSRS["SCAUSE"]] = 23
    prelude.mock.csr[CSRS["HTINST"]] = SW_S2
    v.regs_written = prelude.u32(0)
    assert trap.hyp_guest_mmio(v).addr() == v.addr() and int(v.regs_written) == vm_mod.REGS_SAVE_KEPT
    assert (int(v.sepc), int(vm_mod.vcpu_traps(v)), int(v.mmio_exits)) == (pc + 4, traps + 1, exits + 1)
    # trap.S: SAVE_KEPT, kept_saved = 1, regs_written = 0, the same entry again
    v.kept_saved = prelude.u32(1)
    v.regs_written = prelude.u32(0)
    assert trap.hyp_guest_mmio(v).addr() == v.addr()
    assert int(v.sepc) == pc + 8 and int(v.regs_written) == vm_mod.REGS_RELOAD_CALLER
    assert (int(vm_mod.vcpu_traps(v)), int(v.mmio_exits)) == (traps + 2, exits + 2)


def test_test_extension_reports_pages_stack_and_boots(hyp):
    fa = hyp.mods["core.frame_alloc"]
    assert hyp.ecall(0x0A505354, 1) == (0, int(fa.frame_alloc_free_pages()))
    assert hyp.ecall(0x0A505354, 3) == (0, 1)
    assert hyp.ecall(0x0A505354, 0)[0] == -2 & U64  # the fault probe: only in --debug-faults builds
    assert hyp.ecall(0x0A505354, 9)[0] == -2 & U64


def test_spinlock_is_a_ticket_lock(hyp):
    spin = importlib.import_module("hypervisor.core.spinlock")
    lock = prelude.static(spin.Spinlock)
    p = prelude.addr_of(lock)
    assert not spin.spin_held(p)
    spin.spin_lock(p)
    assert spin.spin_held(p) and int(lock.next) == 1 and int(lock.owner) == 0
    spin.spin_unlock(p)
    assert not spin.spin_held(p) and int(lock.owner) == 1


def test_stack_guard_and_high_water(hyp):
    """The guard is the paint at the stack's bottom; the high-water mark is how far down the paint is worn."""
    stack = importlib.import_module("hypervisor.core.stack")
    board = importlib.import_module("hypervisor.board")
    top = int(stack.stack_top(prelude.u64(2)))
    size, paint = board.HART_STACK_SIZE, board.HART_STACK_PAINT
    prelude.memory.fill(top - size, size)
    for a in range(top - size, top, 8):
        prelude.memory.write(a, paint.to_bytes(8, "little"))
    assert stack.stack_guard_ok(prelude.u64(top)) and int(stack.stack_high_water(prelude.u64(top))) == 0
    prelude.memory.write(top - 600, bytes(8))
    assert int(stack.stack_high_water(prelude.u64(top))) == 600
    assert stack.stack_guard_ok(prelude.u64(top))
    prelude.memory.write(top - size + board.HART_STACK_GUARD - 8, bytes(8))  # the guard's highest word
    assert not stack.stack_guard_ok(prelude.u64(top))
    assert int(stack.stack_top(prelude.u64(board.MAX_HARTS))) == 0


def test_rfence_stops_waiting_once_the_target_waits_in_the_hypervisor(hyp, two_vcpus, monkeypatch):
    """A target that went to wait in the hypervisor (`idle`, its trapped WFI) after the request was sent
    fences before its guest runs again (trap.py vcpu_idle_leave), so the requester stops waiting. While it
    waits, its guest's interrupts (hie) do not end its WFI; hie is restored afterwards."""
    vm, v0, v1 = two_vcpus
    _started_running(hyp, v0)
    _started_running(hyp, v1)
    sbi = hyp.mods["arch.riscv.vsbi"]
    hie = CSRS["HIE"]
    prelude.mock.csr[hie] = 0x444
    sleeps = []

    def wfi():
        sleeps.append(prelude.mock.csr[hie])
        v1.idle = prelude.u32(1)

    prelude.mock.sbi_handler = lambda *a: (0, 0)
    monkeypatch.setattr(sbi, "wfi", wfi)
    assert _ecall_on(hyp, v0, 0x52464E43, 1, 0b10, 0, 0, 0) == (0, 0)  # remote_sfence_vma on vCPU 1
    assert sleeps == [0] and prelude.mock.csr[hie] == 0x444
    assert int(v1.fence_req) == 1 and int(v1.fence_done) == 0 and int(v0.fence_wait) == 0
    sbi.vcpu_idle_leave(v1)
    assert int(v1.fence_done) == 1 and int(v1.idle) == 0
