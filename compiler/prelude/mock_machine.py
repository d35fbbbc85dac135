"""The mock machine: the hart and devices that CSR, MMIO, privileged-instruction and SBI intrinsics talk to."""

from compiler.prelude.panics import _U64_MASK
from compiler.prelude.sim_memory import Memory


class Mock:
    """The hart and devices that CSR/MMIO/SBI/H intrinsics talk to under CPython (and, through callbacks, on the
    host target).  Program it in tests; `reset()` restores a clean state.

    * `csr: dict[int, int]` CSR number -> value (missing: 0).  `csr_read_hook(num) -> int | None` overrides reads
      (None: use the dict); `csr_write_hook(num, new_value)` is called after every write/set/clear/swap.
    * MMIO: `map_mmio(base, length, read=fn(offset, width) -> int, write=fn(offset, width, value))` for device
      models; unmapped addresses behave as plain registers kept in `mmio: dict[int, int]` (addr -> last value).
      `mmio_log`: ("r"|"w", addr, width, value) for every access.
    * `sbi_handler(eid, fid, a0, a1, a2, a3, a4, a5) -> (error, value)`; default returns (-2, 0)
      (SBI_ERR_NOT_SUPPORTED).  `sbi_calls`: the argument tuples of every call.
    * Guest memory for hlv/hlvx/hsv: `guest` (a Memory with no null page) or `guest_read_hook(addr, width, exec)
      -> int` / `guest_write_hook(addr, width, value)`.
    * `log`: every privileged operation as a tuple, e.g. ("csrw", HSTATUS, v), ("csrr", SCAUSE), ("wfi",),
      ("hfence_gvma_vmid", 3), ("sbi", eid, fid, ...).  `ops(name)` filters it.
    * lr/sc: `reservation` is the address reserved by the last lr (None after sc).  `sc_fail_next` makes the
      next sc fail once.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.csr: dict[int, int] = {}
        self.csr_read_hook = None
        self.csr_write_hook = None
        self.mmio: dict[int, int] = {}
        self.mmio_regions: list = []
        self.mmio_log: list = []
        self.sbi_handler = None
        self.sbi_calls: list = []
        self.guest = Memory(null_page_faults=False)
        self.guest_read_hook = None
        self.guest_write_hook = None
        self.log: list = []
        self.reservation = None
        self.sc_fail_next = False
        self.externs: dict = {}

    def ops(self, name: str) -> list:
        return [e for e in self.log if e[0] == name]

    # CSRs (values are plain ints here; the intrinsics convert to u64)
    def csr_read(self, num: int) -> int:
        self.log.append(("csrr", num))
        if self.csr_read_hook is not None:
            v = self.csr_read_hook(num)
            if v is not None:
                return int(v) & _U64_MASK
        return self.csr.get(num, 0)

    def _csr_put(self, num: int, value: int) -> None:
        self.csr[num] = value & _U64_MASK
        if self.csr_write_hook is not None:
            self.csr_write_hook(num, value & _U64_MASK)

    def _csr_old(self, num: int) -> int:
        if self.csr_read_hook is not None:
            v = self.csr_read_hook(num)
            if v is not None:
                return int(v) & _U64_MASK
        return self.csr.get(num, 0)

    def csr_write(self, num: int, value: int) -> None:
        self.log.append(("csrw", num, value))
        self._csr_put(num, value)

    def csr_set(self, num: int, value: int) -> None:
        self.log.append(("csrs", num, value))
        self._csr_put(num, self._csr_old(num) | value)

    def csr_clear(self, num: int, value: int) -> None:
        self.log.append(("csrc", num, value))
        self._csr_put(num, self._csr_old(num) & ~value)

    def csr_swap(self, num: int, value: int) -> int:
        self.log.append(("csrrw", num, value))
        old = self._csr_old(num)
        self._csr_put(num, value)
        return old

    # MMIO
    def map_mmio(self, base: int, length: int, read=None, write=None) -> None:
        self.mmio_regions.append((int(base), int(length), read, write))

    def _region(self, addr: int):
        for base, length, r, w in self.mmio_regions:
            if base <= addr < base + length:
                return base, r, w
        return None

    def mmio_read(self, addr: int, width: int) -> int:
        reg = self._region(addr)
        if reg is not None and reg[1] is not None:
            v = int(reg[1](addr - reg[0], width))
        else:
            v = self.mmio.get(addr, 0)
        v &= (1 << (8 * width)) - 1
        self.mmio_log.append(("r", addr, width, v))
        return v

    def mmio_write(self, addr: int, width: int, value: int) -> None:
        value &= (1 << (8 * width)) - 1
        self.mmio_log.append(("w", addr, width, value))
        reg = self._region(addr)
        if reg is not None and reg[2] is not None:
            reg[2](addr - reg[0], width, value)
        else:
            self.mmio[addr] = value

    # instructions without data (fence, fence_i, fence_io, wfi, sfence_vma, hfence_*)
    def instr(self, name: str, *args: int) -> None:
        self.log.append((name, *args))

    # hypervisor loads/stores
    def hlv(self, addr: int, width: int, exec_: bool = False) -> int:
        self.log.append(("hlvx" if exec_ else "hlv", addr, width))
        if self.guest_read_hook is not None:
            return int(self.guest_read_hook(addr, width, exec_)) & ((1 << (8 * width)) - 1)
        return self.guest.load(addr, width)

    def hsv(self, addr: int, width: int, value: int) -> None:
        self.log.append(("hsv", addr, width, value))
        value &= (1 << (8 * width)) - 1
        if self.guest_write_hook is not None:
            self.guest_write_hook(addr, width, value)
        else:
            self.guest.store(addr, width, value)

    def sbi_call(self, eid: int, fid: int, args) -> tuple[int, int]:
        """The host target's entry: args = [a0 .. a5]."""
        return self.sbi(eid, fid, *args)

    def sbi(self, eid, fid, a0, a1, a2, a3, a4, a5) -> tuple[int, int]:
        args = (eid, fid, a0, a1, a2, a3, a4, a5)
        self.log.append(("sbi", *args))
        self.sbi_calls.append(args)
        if self.sbi_handler is None:
            return (-2, 0)
        err, val = self.sbi_handler(*args)
        return int(err), int(val)


mock = Mock()
