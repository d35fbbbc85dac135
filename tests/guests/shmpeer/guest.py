"""The shared-memory peer: two guest VMs of this image (tests/guests/shmpeer/shmpeer.json, named peer-a and peer-b)
share the region link2 (link2.json: 4 KiB at 0x9000_0000, doorbell page 0x9000_1000, source 8) and play ping-pong
through it, every step an interrupt (tests/boot/test_gvm.py drives them from the MVM's shell).

Each takes its doorbell's interrupt through its virtual interrupt controller, whichever the device tree shows: the
PLIC (priority, its vCPU's S-mode context's enable and threshold, claim and complete), or the APLIC in MSI mode
(domaincfg, sourcecfg level-high, target = vCPU 0 with EIID = the source, setienum) forwarding into its IMSIC
guest interrupt file (eidelivery, eithreshold, eie through siselect/sireg, claims through stopei).

The doorbell's INDEX register gives the role. Index 1, the ponger, writes READY into the region's word 1 once its
interrupt is on; on each interrupt it acknowledges, copies word 0 into word 2 and rings. Index 0, the pinger, waits
for READY, then for each round writes the round into word 0 and rings; on each interrupt it acknowledges, checks
that word 2 echoes the round, and rings the next round. Each says on its console how many interrupts it took
(`shmpeer: index 0: 50 interrupts, 50 round trips`) and waits in WFI until the VM is stopped. A trap it did not
ask for, or a doorbell that is not there, ends the VM (SRST shutdown, reason 1) after a line naming it.
"""

from compiler.prelude import (
    SIE,
    SIREG,
    SISELECT,
    SSTATUS,
    STOPEI,
    Array,
    Final,
    Mmio,
    Ptr,
    csr_read,
    csr_set,
    csr_write,
    cstr,
    export,
    fence,
    static,
    u8,
    u32,
    u64,
    wfi,
)
from hypervisor.arch.riscv.encoding import IRQ_S_EXT, MIP_SEIP, SCAUSE_INTERRUPT, SSTATUS_SIE
from tests.guests.common.gio import flush, put_dec, put_hex, puts, shutdown

SHM: Final = u64(0x9000_0000)
DOOR: Final = u64(0x9000_1000)
IRQ: Final = u64(8)
ROUNDS: Final = u64(50)
READY: Final = u64(0x5245_4459)

# The doorbell's registers (hypervisor/core/shmem.py)
DOOR_MAGIC: Final = u64(0x00)
DOOR_INDEX: Final = u64(0x08)
DOOR_RING: Final = u64(0x0C)
DOOR_COUNT: Final = u64(0x10)
DOOR_ACK: Final = u64(0x18)
MAGIC: Final = u64(0x4D48_5350)

# The guest's view of the board (QEMU virt's layout, which the GVM's device tree gives; a guest is built without
# the board module, so the register maps are written out here)
PLIC_BASE: Final = u64(0x0C00_0000)
PLIC_S_CONTEXT_OF_VCPU0: Final = u64(1)  # context 2i + 1: vCPU i's S-mode context
PLIC_ENABLE: Final = u64(0x2000)  # PLIC spec chapter 3: 1 bit per source, per context
PLIC_ENABLE_STRIDE: Final = u64(0x80)
PLIC_CONTEXT: Final = u64(0x20_0000)  # threshold at +0, claim/complete at +4, per context
PLIC_CONTEXT_STRIDE: Final = u64(0x1000)
PLIC_CLAIM: Final = u64(4)
APLIC_BASE: Final = u64(0x0D00_0000)
APLIC_DOMAINCFG: Final = u64(0x0000)  # AIA 4.5.1
APLIC_SOURCECFG: Final = u64(0x0004)  # 4.5.2: sourcecfg[i] at 0x0004 + 4 * (i - 1)
APLIC_SETIENUM: Final = u64(0x1EDC)  # 4.5.10
APLIC_TARGET: Final = u64(0x3004)  # 4.5.16: target[i] at 0x3004 + 4 * (i - 1)
DOMAINCFG_IE: Final = u64(1) << 8
DOMAINCFG_DM: Final = u64(1) << 2  # MSI delivery mode
SM_LEVEL1: Final = u64(6)
IMSIC_EIDELIVERY: Final = u64(0x70)  # AIA 3.8: the interrupt file's registers through siselect
IMSIC_EITHRESHOLD: Final = u64(0x72)
IMSIC_EIE0: Final = u64(0xC0)

state = static(Array[u64, 8])  # 0 aia, 1 index, 2 interrupts, 3 round, 4 done, 5 bad echoes


def rd(addr: u64) -> u64:
    return u64(Mmio[u32](addr).read())


def wr(addr: u64, v: u64) -> None:
    Mmio[u32](addr).write(u32(v))


def dtb_says_aplic(dtb: u64) -> bool:
    """The device tree names an APLIC (AIA mode): its bytes hold "aplic" (the controller's compatible)."""
    p = Ptr[u8](dtb)
    size = (u64(p[4]) << 24) | (u64(p[5]) << 16) | (u64(p[6]) << 8) | u64(p[7])
    if size > 0x1_0000:
        return False
    for k in range(size - 5):
        if p[k] == 97 and p[k + 1] == 112 and p[k + 2] == 108 and p[k + 3] == 105 and p[k + 4] == 99:
            return True
    return False


def irq_on(aia: bool) -> None:
    if aia:
        csr_write(SISELECT, IMSIC_EIDELIVERY)
        csr_write(SIREG, u64(1))
        csr_write(SISELECT, IMSIC_EITHRESHOLD)
        csr_write(SIREG, u64(0))
        csr_write(SISELECT, IMSIC_EIE0)
        csr_write(SIREG, u64(1) << IRQ)
        wr(APLIC_BASE + APLIC_SOURCECFG + 4 * (IRQ - 1), SM_LEVEL1)
        wr(APLIC_BASE + APLIC_TARGET + 4 * (IRQ - 1), IRQ)  # hart 0 (this vCPU), guest index 0, EIID = IRQ
        wr(APLIC_BASE + APLIC_DOMAINCFG, DOMAINCFG_IE | DOMAINCFG_DM)
        wr(APLIC_BASE + APLIC_SETIENUM, IRQ)
    else:
        wr(PLIC_BASE + 4 * IRQ, u64(1))
        ctx = PLIC_S_CONTEXT_OF_VCPU0
        en = PLIC_BASE + PLIC_ENABLE + ctx * PLIC_ENABLE_STRIDE + 4 * (IRQ // 32)
        wr(en, rd(en) | (u64(1) << (IRQ % 32)))
        wr(PLIC_BASE + PLIC_CONTEXT + ctx * PLIC_CONTEXT_STRIDE, u64(0))
    csr_set(SIE, MIP_SEIP)


def ring() -> None:
    fence()
    wr(DOOR + DOOR_RING, u64(1))


def word(i: u64) -> u64:
    return rd(SHM + 4 * i)


def set_word(i: u64, v: u64) -> None:
    wr(SHM + 4 * i, v)


def doorbell() -> None:
    """The doorbell's interrupt: acknowledge, then the next step of the game."""
    state[2] += 1
    wr(DOOR + DOOR_ACK, u64(1))
    if state[1] == 1:
        set_word(u64(2), word(u64(0)))
        ring()
        return
    if word(u64(2)) != state[3]:
        state[5] += 1
    if state[3] >= ROUNDS:
        state[4] = 1
        return
    state[3] += 1
    set_word(u64(0), state[3])
    ring()


def external() -> None:
    if state[0] != 0:
        while True:
            top = csr_read(STOPEI)
            if top == 0:
                break
            csr_write(STOPEI, u64(0))  # claims it (AIA 3.9)
            if top >> 16 == IRQ:
                doorbell()
    else:
        claim = PLIC_BASE + PLIC_CONTEXT + PLIC_S_CONTEXT_OF_VCPU0 * PLIC_CONTEXT_STRIDE + PLIC_CLAIM
        while True:
            src = rd(claim)
            if src == 0:
                break
            if src == IRQ:
                doorbell()
            wr(claim, src)


@export("guest_main")
def guest_main(hartid: u64, dtb: u64, instance: u64) -> None:
    if rd(DOOR + DOOR_MAGIC) != MAGIC:
        puts(cstr(b"shmpeer: no doorbell at "))
        put_hex(DOOR)
        puts(cstr(b"\n"))
        shutdown(u64(1))
    aia = dtb_says_aplic(dtb)
    state[0] = u64(1) if aia else u64(0)
    state[1] = rd(DOOR + DOOR_INDEX)
    irq_on(aia)
    csr_set(SSTATUS, SSTATUS_SIE)
    puts(cstr(b"shmpeer: index "))
    put_dec(state[1])
    puts(cstr(b" up, irq mode "))
    puts(cstr(b"aia\n") if aia else cstr(b"plic\n"))
    if state[1] == 1:
        set_word(u64(1), READY)
        fence()
        while state[2] < ROUNDS:
            wfi()
    else:
        while word(u64(1)) != READY:
            pass
        state[3] = 1
        set_word(u64(0), u64(1))
        ring()
        while state[4] == 0:
            wfi()
    puts(cstr(b"shmpeer: index "))
    put_dec(state[1])
    puts(cstr(b": "))
    put_dec(state[2])
    puts(cstr(b" interrupts, doorbell count "))
    put_dec(rd(DOOR + DOOR_COUNT))
    puts(cstr(b", "))
    put_dec(state[5])
    puts(cstr(b" bad echoes\n"))
    while True:
        wfi()


@export("guest_trap")
def guest_trap(scause: u64, sepc: u64, stval: u64) -> None:
    if scause == SCAUSE_INTERRUPT | IRQ_S_EXT:
        external()
        return
    flush()
    puts(cstr(b"shmpeer: unexpected trap, scause "))
    put_hex(scause)
    puts(cstr(b" sepc "))
    put_hex(sepc)
    puts(cstr(b" stval "))
    put_hex(stval)
    puts(cstr(b"\n"))
    shutdown(u64(1))


@export("pyshyper_panic")
def guest_panic(kind: u64, a: u64, b: u64) -> None:
    flush()
    puts(cstr(b"shmpeer: PANIC kind "))
    put_hex(kind)
    puts(cstr(b"\n"))
    shutdown(u64(1))
