"""A vCPU's floating-point and vector state when vCPUs share a hart: saved lazily, restored only when the hart's
registers are not already the vCPU's.

The registers (F/D: f0..f31 and fcsr; V: v0..v31, vstart, vl, vtype, vcsr) live in the hart while a vCPU runs; a
vCPU's save area is FPU_STATE[slot], its slot in VCPUS (so `Vcpu` stays small), sized for VLEN up to
FPU_VLEN_MAX bits. The dirty bits say what to save (Priv 3.1.6.6, 9.2.10): while V=1 a guest write to its FP or
vector state sets both vsstatus.FS/VS and the HS-level sstatus.FS/VS to Dirty, so on leaving, sstatus tells
whether the hart's registers differ from the area; fpu_enter leaves them Clean again. Each hart remembers whose
registers it holds (FPU_OWNER), and each area the hart it was last saved from or restored to: entering a vCPU
whose registers are still in the hart costs nothing.

The scheduler calls fpu_leave when a vCPU is switched out and fpu_enter when one is switched in, on that hart with
V=0 (the hypervisor's own code has no FP or vector instructions: only runtime/fpu.S, with sstatus.FS/VS made
non-Off around it). vcpu_run calls fpu_enter too, so a vCPU that starts (or starts again after a reset) never sees
a former vCPU's registers; on a partitioned hart (one vCPU) that is the whole cost. fpu_reset, called with every
vcpu_reset but vcpu_add's (HSM start, SRST reboot, a guest VM's boot; the areas of the VMs made at boot are zero, never
entered), gives a vCPU zeroed registers at its next entry; fpu_forget makes every hart drop it as the owner of its
registers. (core/vm.py cannot call fpu_reset itself: this module needs Vcpu and VCPU_MAX from it first.)
"""

from compiler.prelude import (
    SSTATUS,
    Array,
    Final,
    Ptr,
    addr_of,
    csr_read,
    csr_write,
    cstr,
    extern,
    lr_d,
    sc_d,
    sizeof,
    static,
    struct,
    u64,
)
from hypervisor.arch.riscv.encoding import (
    SSTATUS_FS,
    SSTATUS_FS_CLEAN,
    SSTATUS_FS_DIRTY,
    SSTATUS_FS_INITIAL,
    SSTATUS_VS,
    SSTATUS_VS_CLEAN,
    SSTATUS_VS_DIRTY,
    SSTATUS_VS_INITIAL,
    VTYPE_VILL,
)
from hypervisor.board import MAX_HARTS
from hypervisor.core.log import LOG_ERROR, log2
from hypervisor.core.vm import VCPU_MAX, VCPUS, Vcpu

FPU_VLEN_MAX: Final = 1024  # bits of one vector register the save areas hold
FPU_VLENB_MAX: Final = FPU_VLEN_MAX // 8
FPU_VREGS: Final = 32


@struct
class FpuState:
    """One vCPU's FP and vector registers while it is off its hart (runtime/fpu.S reads and writes them)."""

    f: Array[u64, 32]  # f0..f31, as 64-bit patterns (D: NaN-boxed singles stay boxed)
    fcsr: u64
    vstart: u64
    vl: u64
    vtype: u64
    vcsr: u64
    hart: u64  # the hart whose registers were last made equal to this area (saved from or restored to)
    valid: u64  # 0: the vCPU was never entered since its reset; its first entry gives zeroed registers
    v: Array[u64, FPU_VREGS * FPU_VLENB_MAX // 8]  # v0..v31, vlenb bytes each, in order


FPU_STATE = static(Array[FpuState, VCPU_MAX], align=64)
# FPU_OWNER[hart]: 1 + the slot of the vCPU whose registers the hart holds, 0 none (fpu_forget clears it).
FPU_OWNER = static(Array[u64, MAX_HARTS])
# What the harts have (fpu_init, on the boot hart before any vCPU runs).
fpu_has_v: bool = False
fpu_vlenb: u64 = 0
# Work done, for the tests of laziness: areas saved and restored (FP, vector), per hart (index hart * 4 + kind:
# each hart counts its own, so a test switch on one hart never sees another hart's work).
fpu_counts = static(Array[u64, MAX_HARTS * 4])
FPU_SAVED_FP: Final = 0
FPU_SAVED_V: Final = 1
FPU_LOADED_FP: Final = 2
FPU_LOADED_V: Final = 3


@extern("hyp_fpu_save_fp")
def fpu_save_fp(st: Ptr[FpuState]) -> None:
    """runtime/fpu.S: f0..f31 and fcsr into st (sstatus.FS non-Off)."""
    ...


@extern("hyp_fpu_load_fp")
def fpu_load_fp(st: Ptr[FpuState]) -> None:
    """runtime/fpu.S: f0..f31 and fcsr from st (sstatus.FS non-Off)."""
    ...


@extern("hyp_fpu_save_v")
def fpu_save_v(st: Ptr[FpuState]) -> None:
    """runtime/fpu.S: vstart, vl, vtype, vcsr and v0..v31 into st (sstatus.VS non-Off)."""
    ...


@extern("hyp_fpu_load_v")
def fpu_load_v(st: Ptr[FpuState]) -> None:
    """runtime/fpu.S: v0..v31, vl and vtype (vsetvl), vcsr, vstart from st (sstatus.VS non-Off)."""
    ...


@extern("hyp_fpu_vlenb")
def fpu_read_vlenb() -> u64:
    """runtime/fpu.S: the vlenb CSR (sstatus.VS non-Off)."""
    ...


@extern("hyp_fpu_clobber")
def fpu_clobber(pattern: u64, has_v: u64) -> None:
    """runtime/fpu.S: every FP (and, with has_v, vector) register and CSR set from pattern (tests only)."""
    ...


def fpu_init(has_v: bool) -> bool:
    """Once, on the boot hart, before any vCPU runs: whether the harts have V (the device tree's riscv,isa) and
    their VLEN. False, after saying why, when a vector register is larger than the save areas hold."""
    global fpu_has_v, fpu_vlenb
    fpu_has_v = has_v
    fpu_vlenb = u64(0)
    if not has_v:
        return True
    s = fpu_status_on()
    fpu_vlenb = fpu_read_vlenb()
    csr_write(SSTATUS, s)
    if fpu_vlenb > FPU_VLENB_MAX:
        fmt = cstr(b"pyshyper: the harts' VLEN is %d bits, more than the %d of the vCPUs' vector save areas\n")
        log2(LOG_ERROR, fmt, fpu_vlenb * 8, u64(FPU_VLEN_MAX))
        return False
    return True


def fpu_slot(v: Ptr[Vcpu]) -> u64:
    """v's slot in VCPUS (its save area's index)."""
    return (v.addr() - addr_of(VCPUS[0]).addr()) // sizeof(Vcpu)


def fpu_state(v: Ptr[Vcpu]) -> Ptr[FpuState]:
    return addr_of(FPU_STATE[fpu_slot(v)])


def fpu_status_on() -> u64:
    """Make sstatus.FS (and .VS on a hart with V) non-Off for the hypervisor's own FP and vector instructions;
    gives sstatus as it was. A field already on is left as it is (Initial stays Initial, Dirty stays Dirty)."""
    s = csr_read(SSTATUS)
    on = s
    if s & SSTATUS_FS == 0:
        on |= SSTATUS_FS_INITIAL
    if fpu_has_v and s & SSTATUS_VS == 0:
        on |= SSTATUS_VS_INITIAL
    if on != s:
        csr_write(SSTATUS, on)
    return s


def fpu_status_clean() -> None:
    """sstatus.FS and .VS Clean: the hart's registers are what the owner's save area holds (Priv 3.1.6.6)."""
    s = csr_read(SSTATUS) & ~(SSTATUS_FS | SSTATUS_VS)
    s |= SSTATUS_FS_CLEAN
    if fpu_has_v:
        s |= SSTATUS_VS_CLEAN
    csr_write(SSTATUS, s)


def fpu_leave(v: Ptr[Vcpu]) -> None:
    """v is switched out of its hart (V=0, on that hart): save what it changed since its registers last matched
    its area (sstatus.FS / VS Dirty), mark them Clean, and keep the hart's registers as v's."""
    st = fpu_state(v)
    s = csr_read(SSTATUS)
    saved = False
    if s & SSTATUS_FS == SSTATUS_FS_DIRTY:
        fpu_save_fp(st)
        fpu_counts[v.hart * 4 + FPU_SAVED_FP] += 1
        saved = True
    if fpu_has_v and s & SSTATUS_VS == SSTATUS_VS_DIRTY:
        fpu_save_v(st)
        fpu_counts[v.hart * 4 + FPU_SAVED_V] += 1
        saved = True
    if saved:
        st.valid = 1
        st.hart = v.hart
        fpu_status_clean()
    FPU_OWNER[v.hart] = fpu_slot(v) + 1


def fpu_fresh(st: Ptr[FpuState]) -> None:
    """A vCPU's registers as after a reset: all zero, fcsr 0, vl 0 and vtype with vill (V 1.0 section 3.11
    recommends vill at reset)."""
    for i in range(32):
        st.f[i] = 0
    st.fcsr = 0
    st.vstart = 0
    st.vl = 0
    st.vtype = VTYPE_VILL
    st.vcsr = 0
    for w in range(FPU_VREGS * fpu_vlenb // 8):
        st.v[w] = 0
    st.valid = 1


def fpu_enter(v: Ptr[Vcpu]) -> None:
    """v is switched in on its hart (V=0, on that hart): restore its registers unless the hart holds them
    already (it owns them and was last saved from or restored to this hart); a vCPU never entered since its
    reset gets zeroed ones. sstatus.FS / VS are Clean afterwards, so fpu_leave saves only what v changes."""
    st = fpu_state(v)
    slot = fpu_slot(v)
    if st.valid == 0:
        fpu_fresh(st)
    elif FPU_OWNER[v.hart] == slot + 1 and st.hart == v.hart:
        fpu_status_clean()
        return
    fpu_status_on()
    fpu_load_fp(st)
    fpu_counts[v.hart * 4 + FPU_LOADED_FP] += 1
    if fpu_has_v:
        fpu_load_v(st)
        fpu_counts[v.hart * 4 + FPU_LOADED_V] += 1
    st.hart = v.hart
    FPU_OWNER[v.hart] = slot + 1
    fpu_status_clean()


def fpu_forget(v: Ptr[Vcpu]) -> None:
    """No hart holds v's registers any more (its VM was removed, or it is reset): its next fpu_enter restores
    from its area, on whatever hart. Any hart may call it; a hart's owner changes only from v's slot to none."""
    mine = fpu_slot(v) + 1
    for h in range(MAX_HARTS):
        p = addr_of(FPU_OWNER[h])
        while lr_d(p) == mine:
            if sc_d(p, u64(0)) == 0:
                break


def fpu_reset(v: Ptr[Vcpu]) -> None:
    """v starts afresh (with its vcpu_reset): its next fpu_enter gives it zeroed FP and vector registers."""
    fpu_forget(v)
    fpu_state(v).valid = 0


FPU_TEST_SAVED_FP: Final = u64(1)  # fpu_test_switch's answer: bits of the work fpu_leave and fpu_enter did
FPU_TEST_SAVED_V: Final = u64(2)
FPU_TEST_LOADED_FP: Final = u64(4)
FPU_TEST_LOADED_V: Final = u64(8)


def fpu_test_switch(v: Ptr[Vcpu], pattern: u64, clobber: bool) -> u64:
    """The PyShyper test extension's switch without a scheduler (arch/riscv/vsbi.py), on v's hart: fpu_leave(v);
    with `clobber`, every FP and vector register and CSR overwritten from `pattern` as another vCPU would leave
    them and no hart the owner of v's (fpu_forget); then fpu_enter(v). Gives which saves and loads it took."""
    before = Array[u64, 4]()
    for i in range(4):
        before[i] = fpu_counts[v.hart * 4 + u64(i)]
    fpu_leave(v)
    if clobber:
        fpu_status_on()
        fpu_clobber(pattern, u64(1) if fpu_has_v else u64(0))
        fpu_forget(v)
    fpu_enter(v)
    done = u64(0)
    if fpu_counts[v.hart * 4 + FPU_SAVED_FP] != before[FPU_SAVED_FP]:
        done |= FPU_TEST_SAVED_FP
    if fpu_counts[v.hart * 4 + FPU_SAVED_V] != before[FPU_SAVED_V]:
        done |= FPU_TEST_SAVED_V
    if fpu_counts[v.hart * 4 + FPU_LOADED_FP] != before[FPU_LOADED_FP]:
        done |= FPU_TEST_LOADED_FP
    if fpu_counts[v.hart * 4 + FPU_LOADED_V] != before[FPU_LOADED_V]:
        done |= FPU_TEST_LOADED_V
    return done
