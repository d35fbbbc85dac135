"""The simulated memory: sparse 4 KiB pages, the bump allocator of statics and constructed aggregates, and the ids
of functions stored into memory."""

from typing import Final

from compiler.prelude.panics import MemoryFault


class Memory:
    """Sparse byte-addressed memory of 4 KiB pages; unwritten bytes read as 0.  Page 0 faults."""

    PAGE = 4096

    def __init__(self, null_page_faults: bool = True):
        self.pages: dict[int, bytearray] = {}
        self.null_page_faults = null_page_faults

    def _check(self, addr: int, n: int):
        if addr < 0 or addr + n > (1 << 64) or (self.null_page_faults and addr < self.PAGE):
            raise MemoryFault(f"access of {n} bytes at {addr:#x}")

    def read(self, addr: int, n: int) -> bytes:
        addr = int(addr)
        self._check(addr, n)
        out = bytearray()
        while n > 0:
            pno, off = divmod(addr, self.PAGE)
            k = min(n, self.PAGE - off)
            page = self.pages.get(pno)
            out += page[off : off + k] if page is not None else bytes(k)
            addr += k
            n -= k
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        addr = int(addr)
        self._check(addr, len(data))
        i = 0
        n = len(data)
        while i < n:
            pno, off = divmod(addr + i, self.PAGE)
            k = min(n - i, self.PAGE - off)
            page = self.pages.get(pno)
            if page is None:
                page = self.pages[pno] = bytearray(self.PAGE)
            page[off : off + k] = data[i : i + k]
            i += k

    def load(self, addr: int, size: int, signed: bool = False) -> int:
        return int.from_bytes(self.read(addr, size), "little", signed=signed)

    def store(self, addr: int, size: int, value: int) -> None:
        self.write(addr, (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def fill(self, addr: int, n: int, byte: int = 0) -> None:
        self.write(addr, bytes([byte]) * n)


memory = Memory()

HEAP_BASE: Final = 0x7F00_0000_0000  # statics and constructed aggregates are bump-allocated from here
_heap = [HEAP_BASE]
_statics: list = []  # (address, type, section) of every static(), for introspection


def _alloc(size: int, align: int) -> int:
    a = (_heap[0] + align - 1) & -align
    _heap[0] = a + max(size, 1)
    return a


# function pointers: id <-> Python callable
FN_BASE: Final = 0x0F00_0000_0000
_fn_by_id: dict[int, object] = {}
_fn_ids: dict[object, int] = {}


def fn_id(f) -> int:
    """The non-zero id a function gets when stored into memory (0 for None)."""
    if f is None:
        return 0
    i = _fn_ids.get(f)
    if i is None:
        i = FN_BASE + 16 * (len(_fn_ids) + 1)
        _fn_ids[f] = i
        _fn_by_id[i] = f
    return i


def _fn_from_id(i: int):
    if i == 0:
        return None
    f = _fn_by_id.get(i)
    if f is None:
        raise MemoryFault(f"call through {i:#x}, which is not a stored function")
    return f
