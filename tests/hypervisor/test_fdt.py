"""hypervisor/core/fdt.py: the boot-time DTB reader, under CPython (prelude memory) and compiled for the host.

DTBs: the QEMU virt trees committed in tests/hypervisor/data/ (regenerated and re-checked when qemu-system-riscv64
is installed) and synthetic trees built below (isa-only cpus, 2-cell hart ids, disabled harts, several memory
nodes, FDT_NOP tokens, version 16, broken headers).  Expected values for QEMU trees come from the `fdt` package.
"""

from __future__ import annotations

import ctypes
import struct
import subprocess
import sys
from pathlib import Path

import fdt as pyfdt
import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from compiler import prelude  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
FDT_PY = ROOT / "hypervisor" / "core" / "fdt.py"
FDT_BAD = 2**64 - 1
QEMU = "qemu-system-riscv64"
# committed file -> the -M value that made it (plus -cpu rv64 -smp 3 -m 512M)
QEMU_DTBS = {
    "qemu-virt.dtb": "virt",
    "qemu-virt-aia.dtb": "virt,aia=aplic-imsic,aia-guests=3",
    "qemu-virt-aclint.dtb": "virt,aclint=on",
}
# extension names asked about on every cpu besides those the tree lists (absent ones, prefixes, other case)
PROBES = [
    "h",
    "H",
    "v",
    "g",
    "zic",
    "zicbo",
    "zicbomx",
    "svnapot",
    "smaia",
    "ssaia",
    "rv64imafdch",
    "sstc",
    "SSTC",
    "Zicbom",
    "svadu",
    "e",
    "q",
    "imafdch",
]


# ----------------------------------------------------------------------------------------------------------------
# Backends: the same calls under CPython and on the host JIT


class CPython:
    """The module loaded through the prelude; the DTB and arguments live in the simulated memory."""

    DTB = 0x8220_0000
    STR = 0x8230_0000
    OUT = 0x8231_0000

    def __init__(self):
        prelude.reset()
        self.mod = prelude.load_module(str(FDT_PY), "hypervisor.core.fdt")

    def load(self, data: bytes) -> int:
        prelude.memory.write(self.DTB, data + bytes(16))
        return self.DTB

    def string(self, s: bytes):
        """A NUL-terminated string in one of 8 slots of 256 bytes, used in turn: a call may take two strings."""
        assert len(s) < 256
        self.slot = (getattr(self, "slot", -1) + 1) % 8
        addr = self.STR + 256 * self.slot
        prelude.memory.write(addr, s + b"\0")
        return prelude.Ptr[prelude.u8](prelude.u64(addr))

    def out(self):
        prelude.memory.write(self.OUT, bytes(16))
        return prelude.Ptr[prelude.u64](prelude.u64(self.OUT))

    def read_out(self) -> tuple[int, int]:
        return prelude.memory.load(self.OUT, 8), prelude.memory.load(self.OUT + 8, 8)

    def bytes_at(self, addr: int, n: int) -> bytes:
        """n bytes of the simulated memory: a tree the module changed, a buffer it filled."""
        return prelude.memory.read(addr, n)

    def buffer(self, data: bytes):
        """A buffer holding data (for the module to read from or write into), and its address."""
        addr = self.OUT + 0x100
        prelude.memory.write(addr, data)
        return prelude.Ptr[prelude.u8](prelude.u64(addr)), addr

    def call(self, name: str, *args):
        args = [prelude.u64(a) if isinstance(a, int) else a for a in args]
        r = getattr(self.mod, name)(*args)
        return r if isinstance(r, bool) else int(r)


class Host:
    """The module compiled for the host: arguments are real addresses of ctypes buffers."""

    prog = None

    def __init__(self):
        if Host.prog is None:
            from compiler.driver import compile_host

            Host.prog = compile_host([FDT_PY])
        self.keep: list = []
        self.outbuf = (ctypes.c_uint64 * 2)()

    def load(self, data: bytes) -> int:
        buf = ctypes.create_string_buffer(data, len(data) + 16)  # create_string_buffer is 16-byte aligned
        self.keep.append(buf)
        return ctypes.addressof(buf)

    def string(self, s: bytes) -> int:
        buf = ctypes.create_string_buffer(s)
        self.keep.append(buf)
        return ctypes.addressof(buf)

    def out(self) -> int:
        self.outbuf[0] = self.outbuf[1] = 0
        return ctypes.addressof(self.outbuf)

    def read_out(self) -> tuple[int, int]:
        return self.outbuf[0], self.outbuf[1]

    def bytes_at(self, addr: int, n: int) -> bytes:
        return ctypes.string_at(addr, n)

    def buffer(self, data: bytes):
        buf = ctypes.create_string_buffer(data, len(data))
        self.keep.append(buf)
        return ctypes.addressof(buf), ctypes.addressof(buf)

    def call(self, name: str, *args):
        return Host.prog.call(name, *args)


@pytest.fixture(params=["cpython", "host"])
def reader(request):
    return CPython() if request.param == "cpython" else Host()


# ----------------------------------------------------------------------------------------------------------------
# Expected values


def expected(data: bytes) -> dict:
    """What the reader should find, from the `fdt` package's parse of the same blob."""
    dt = pyfdt.parse_dtb(data)
    cpus_node = dt.get_node("/cpus")
    ac = cpus_node.get_property("#address-cells").value
    cpus = [
        n
        for n in cpus_node.nodes
        if n.get_property("device_type")
        and n.get_property("device_type").value == "cpu"
        and (not n.get_property("status") or n.get_property("status").value in ("okay", "ok"))
    ]
    hartids = []
    exts = []
    for n in cpus:
        words = list(n.get_property("reg").data)
        hartids.append(words[0] if ac == 1 else (words[0] << 32) | words[1])
        names = set(n.get_property("riscv,isa-extensions").data) if n.get_property("riscv,isa-extensions") else set()
        isa = n.get_property("riscv,isa").value
        base, *multi = isa[4:].split("_")
        names |= set(base) | set(multi)
        exts.append({x.lower() for x in names})
    root = dt.get_node("/")
    rac = root.get_property("#address-cells").value
    rsc = root.get_property("#size-cells").value
    mem = []
    for n in root.nodes:
        dtp = n.get_property("device_type")
        if dtp and dtp.value == "memory":
            w = list(n.get_property("reg").data)
            step = rac + rsc
            for i in range(0, len(w), step):
                cells = w[i : i + step]
                mem.append(
                    (
                        int.from_bytes(b"".join(c.to_bytes(4, "big") for c in cells[:rac]), "big"),
                        int.from_bytes(b"".join(c.to_bytes(4, "big") for c in cells[rac:]), "big"),
                    )
                )
    return {
        "size": struct.unpack(">I", data[4:8])[0],
        "hartids": hartids,
        "exts": exts,
        "memory": mem,
        "timebase": cpus_node.get_property("timebase-frequency").value,
    }


def check_all(r, data: bytes, want: dict, cpus_to_probe=None) -> None:
    """Every public function of the reader against `want` (keys as `expected` gives)."""
    dtb = r.load(data)
    assert r.call("fdt_valid", dtb) is True
    assert r.call("fdt_total_size", dtb) == want["size"]
    n = len(want["hartids"])
    assert r.call("fdt_cpu_count", dtb) == n
    assert [r.call("fdt_cpu_hartid", dtb, i) for i in range(n + 1)] == want["hartids"] + [FDT_BAD]
    assert r.call("fdt_timebase", dtb) == want["timebase"]
    regions = []
    for i in range(len(want["memory"]) + 1):
        out = r.out()
        if not r.call("fdt_memory", dtb, i, out):
            break
        regions.append(r.read_out())
    assert regions == want["memory"]
    for i in range(n) if cpus_to_probe is None else cpus_to_probe:
        names = sorted(want["exts"][i]) + [p for p in PROBES if p.lower() not in want["exts"][i]]
        got = {name for name in names if r.call("fdt_cpu_has_extension", dtb, i, r.string(name.encode()))}
        assert {g.lower() for g in got} == {x for x in want["exts"][i] if x} | {
            p.lower() for p in PROBES if p.lower() in want["exts"][i]
        }, f"cpu {i}"
    assert r.call("fdt_cpu_has_extension", dtb, n, r.string(b"i")) is False


# ----------------------------------------------------------------------------------------------------------------
# QEMU virt trees


@pytest.mark.parametrize("name", sorted(QEMU_DTBS))
def test_qemu_dtb(reader, name):
    data = (DATA / name).read_bytes()
    want = expected(data)
    assert len(want["hartids"]) == 3 and want["memory"] == [(0x8000_0000, 512 << 20)]
    assert {"h", "sstc", "svadu"} <= want["exts"][0]
    check_all(reader, data, want)


COMPATIBLES = [
    "riscv,imsics",
    "riscv,aplic",
    "riscv,plic0",
    "sifive,plic-1.0.0",
    "riscv,aclint-sswi",
    "virtio,mmio",
    "ns16550a",
    "no,such",
]


def compatible_nodes(data: bytes, compat: str) -> list[list[int]]:
    """The reg cells of every node listing compat, in tree order (the `fdt` package's parse)."""
    found = []

    def visit(node) -> None:
        prop = node.get_property("compatible")
        if prop is not None and compat in list(prop.data):
            found.append(list(node.get_property("reg").data))
        for child in node.nodes:
            visit(child)

    visit(pyfdt.parse_dtb(data).root)
    return found


@pytest.mark.parametrize("name", sorted(QEMU_DTBS))
def test_compatible_and_cells(reader, name):
    """fdt_compatible walks the whole tree in order; fdt_prop_cell reads one cell; fdt_prop_has_string one string
    of a list (the interrupt controllers the boot-time machine checks look for)."""
    data = (DATA / name).read_bytes()
    dtb = reader.load(data)
    for compat in COMPATIBLES:
        want = compatible_nodes(data, compat)
        got = []
        while True:
            node = reader.call("fdt_compatible", dtb, reader.string(compat.encode()), len(got))
            if node == 0:
                break
            name_ptr, value_ptr = reader.string(b"compatible"), reader.string(compat.encode())
            assert reader.call("fdt_prop_has_string", dtb, node, name_ptr, value_ptr)
            reg = reader.string(b"reg")
            got.append([reader.call("fdt_prop_cell", dtb, node, reg, i, FDT_BAD) for i in range(len(want[len(got)]))])
            assert reader.call("fdt_prop_cell", dtb, node, reg, len(want[len(got) - 1]), 7) == 7  # past the end
        assert got == want, compat
    assert ("aia" in name) == bool(compatible_nodes(data, "riscv,imsics"))
    assert ("aclint" in name) == bool(compatible_nodes(data, "riscv,aclint-sswi"))


def irq_entries(data: bytes, compat: str) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """(reg cells, [(hart id, local interrupt) per interrupts-extended entry]) of every node listing compat, from
    the `fdt` package's parse: each entry's phandle resolved to the hart whose cpu-intc it is."""
    dt = pyfdt.parse_dtb(data)
    hart_of = {}
    for cpu in dt.get_node("/cpus").nodes:
        if cpu.get_property("device_type") and cpu.get_property("device_type").value == "cpu":
            intc = next(n for n in cpu.nodes if n.name == "interrupt-controller")
            hart_of[intc.get_property("phandle").value] = list(cpu.get_property("reg").data)[-1]
    found = []

    def visit(node) -> None:
        prop = node.get_property("compatible")
        if prop is not None and compat in list(prop.data):
            cells = list(node.get_property("interrupts-extended").data)
            pairs = [(hart_of[cells[i]], cells[i + 1]) for i in range(0, len(cells), 2)]
            found.append((list(node.get_property("reg").data), pairs))
        for child in node.nodes:
            visit(child)

    visit(dt.root)
    return found


@pytest.mark.parametrize("name", sorted(QEMU_DTBS))
def test_reg_and_hart_irq_index(reader, name):
    """fdt_reg reads a device's first (base, size); fdt_hart_irq_index finds which interrupts-extended entry is a
    hart's local interrupt (an SSWI's S-mode software interrupt, a PLIC's or IMSIC's S-mode external one), the
    order in which per-hart devices number their harts' registers; FDT_BAD for a hart or interrupt it lacks."""
    data = (DATA / name).read_bytes()
    dtb = reader.load(data)
    seen = 0
    for compat in ("riscv,aclint-sswi", "riscv,imsics", "riscv,plic0"):
        for k, (reg, pairs) in enumerate(irq_entries(data, compat)):
            node = reader.call("fdt_compatible", dtb, reader.string(compat.encode()), k)
            out = reader.out()
            assert reader.call("fdt_reg", dtb, node, out)
            assert reader.read_out() == ((reg[0] << 32) | reg[1], (reg[2] << 32) | reg[3])
            for hart in range(4):  # hart 3 is not in the tree
                for irq in (1, 3, 9, 11):
                    want = pairs.index((hart, irq)) if (hart, irq) in pairs else FDT_BAD
                    assert reader.call("fdt_hart_irq_index", dtb, node, hart, irq) == want, (compat, hart, irq)
                    seen += want != FDT_BAD
    assert seen >= 3  # every tree has a per-hart device with an entry for each of its 3 harts
    assert reader.call("fdt_reg", dtb, 0, reader.out()) is False
    assert reader.call("fdt_hart_irq_index", dtb, 0, 0, 1) == FDT_BAD


@pytest.mark.parametrize("name", sorted(QEMU_DTBS))
def test_qemu_regenerated(tmp_path, name):
    """The installed QEMU still makes trees the reader handles, with what the committed copy says about the
    machine (bytes differ: /chosen/rng-seed is random; extension lists follow the QEMU version)."""
    require_tool(QEMU)
    out = tmp_path / name
    subprocess.run(
        [QEMU, "-M", f"{QEMU_DTBS[name]},dumpdtb={out}", "-cpu", "rv64", "-smp", "3", "-m", "512M", "-nographic"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = out.read_bytes()
    want = expected(data)
    committed = expected((DATA / name).read_bytes())
    for key in ("hartids", "memory", "timebase"):
        assert want[key] == committed[key], key
    check_all(Host(), data, want)
    check_all(CPython(), data, want, cpus_to_probe=[0])


# ----------------------------------------------------------------------------------------------------------------
# Synthetic trees


def be32(*words: int) -> bytes:
    return b"".join(struct.pack(">I", w) for w in words)


def strs(*items: str) -> bytes:
    return b"".join(s.encode() + b"\0" for s in items)


def build_dtb(root, version: int = 17, nops: bool = False) -> bytes:
    """A DTB (spec 5) of root = (name, [(prop, bytes)], [children]); nops puts FDT_NOP before every node/prop."""
    strings = bytearray()
    offsets: dict[str, int] = {}
    body = bytearray()

    def pad():
        body.extend(bytes(-len(body) % 4))

    def emit(node):
        name, props, children = node
        if nops:
            body.extend(be32(4))
        body.extend(be32(1) + name.encode() + b"\0")
        pad()
        for pname, value in props:
            if pname not in offsets:
                offsets[pname] = len(strings)
                strings.extend(pname.encode() + b"\0")
            if nops:
                body.extend(be32(4))
            body.extend(be32(3, len(value), offsets[pname]) + value)
            pad()
        for c in children:
            emit(c)
        if nops:
            body.extend(be32(4))
        body.extend(be32(2))

    emit(root)
    body.extend(be32(9))
    rsvmap = bytes(16)  # 5.3: just the terminating {0, 0} entry
    off_rsv = 40
    off_struct = off_rsv + len(rsvmap)
    off_strings = off_struct + len(body)
    total = off_strings + len(strings)
    header = be32(0xD00DFEED, total, off_struct, off_strings, off_rsv, version, 16, 0, len(strings), len(body))
    blob = header + rsvmap + bytes(body) + bytes(strings)
    assert len(blob) == total
    return blob


def cpu(
    name: str, reg: bytes, isa: str | None = None, exts: list[str] | None = None, status: str | None = None, extra=()
):
    props = [("device_type", strs("cpu")), ("reg", reg)]
    if status is not None:
        props.append(("status", strs(status)))
    if exts is not None:
        props.append(("riscv,isa-extensions", strs(*exts)))
    if isa is not None:
        props.append(("riscv,isa", strs(isa)))
    props.extend(extra)
    return (name, props, [("interrupt-controller", [("compatible", strs("riscv,cpu-intc"))], [])])


def synthetic(version: int = 17, nops: bool = False) -> tuple[bytes, dict]:
    """2-cell hart ids, an isa-only cpu, a disabled one, timebase on the cpu node, root cells 1/1, two memory
    nodes (the first with two regions), a memory node that is disabled and a node named memory without
    device_type that is not one."""
    cpus = (
        "cpus",
        [("#address-cells", be32(2)), ("#size-cells", be32(0))],
        [
            cpu("cpu@100000002", be32(1, 2), isa="rv64gc_svnapot_Zicbom", extra=[("timebase-frequency", be32(1000))]),
            cpu("cpu@3", be32(0, 3), isa="rv64imac", status="disabled"),
            cpu("cpu@7", be32(0, 7), isa="RV64IMAFDCH_SSTC", exts=["i", "m", "zba"], status="okay"),
            ("cpu-map", [], [("cluster0", [], [("core0", [("cpu", be32(1))], [])])]),
            cpu("cpu@8", be32(0, 8), isa="rv32ih2p0_xfoo", status="ok"),
        ],
    )
    root = (
        "",
        [("#address-cells", be32(1)), ("#size-cells", be32(1)), ("model", strs("synthetic"))],
        [
            ("memory@1000", [("reg", be32(0x1000, 0x2000, 0x8000, 0x100)), ("device_type", strs("memory"))], []),
            ("soc", [], [("memory@0", [("device_type", strs("memory")), ("reg", be32(0x99, 0x1))], [])]),
            (
                "memory@4000",
                [("device_type", strs("memory")), ("reg", be32(0x4000, 0x10)), ("status", strs("disabled"))],
                [],
            ),
            ("memory-controller", [("reg", be32(0x5000, 0x10))], []),
            cpus,
            ("memory@90000000", [("device_type", strs("memory")), ("reg", be32(0x9000_0000, 0x1000_0000))], []),
        ],
    )
    want = {
        "hartids": [0x1_0000_0002, 7, 8],
        "timebase": 1000,
        "memory": [(0x1000, 0x2000), (0x8000, 0x100), (0x9000_0000, 0x1000_0000)],
    }
    data = build_dtb(root, version, nops)
    want["size"] = len(data)
    return data, want


# (cpu index, extension, present)
SYNTHETIC_EXTS = [
    (0, "i", True),
    (0, "m", True),
    (0, "a", True),
    (0, "f", True),
    (0, "d", True),
    (0, "c", True),
    (0, "g", True),
    (0, "h", False),
    (0, "v", False),
    (0, "svnapot", True),
    (0, "SVNAPOT", True),
    (0, "zicbom", True),
    (0, "svnapo", False),
    (0, "svnapott", False),
    (0, "gc", False),
    (0, "rv64gc", False),
    (0, "", False),
    (1, "h", True),
    (1, "sstc", True),
    (1, "zba", True),
    (1, "d", True),
    (1, "Zba", True),
    (1, "svadu", False),
    (1, "v", False),
    (1, "zb", False),
    (2, "h", True),
    (2, "i", True),
    (2, "xfoo", True),
    (2, "x", False),
    (2, "m", False),
    (2, "p", False),
    (2, "2", False),
    (2, "0", False),
]


@pytest.mark.parametrize("version,nops", [(17, False), (17, True), (16, False)])
def test_synthetic(reader, version, nops):
    data, want = synthetic(version, nops)
    dtb = reader.load(data)
    assert reader.call("fdt_valid", dtb) is True
    assert reader.call("fdt_total_size", dtb) == want["size"]
    assert reader.call("fdt_cpu_count", dtb) == 3
    assert [reader.call("fdt_cpu_hartid", dtb, i) for i in range(4)] == want["hartids"] + [FDT_BAD]
    assert reader.call("fdt_timebase", dtb) == 1000
    regions = []
    for i in range(5):
        out = reader.out()
        if not reader.call("fdt_memory", dtb, i, out):
            break
        regions.append(reader.read_out())
    assert regions == want["memory"]
    got = [
        (i, e, reader.call("fdt_cpu_has_extension", dtb, i, reader.string(e.encode()))) for i, e, _ in SYNTHETIC_EXTS
    ]
    assert got == SYNTHETIC_EXTS


def test_defaults_and_absent(reader):
    """No /cpus, no memory node: counts are 0, lookups fail; root without #address-cells uses 2 and 1 (2.3.5)."""
    data = build_dtb(("", [], [("memory@0", [("device_type", strs("memory")), ("reg", be32(0, 0x100, 0x40))], [])]))
    dtb = reader.load(data)
    assert reader.call("fdt_valid", dtb) is True
    assert reader.call("fdt_cpu_count", dtb) == 0
    assert reader.call("fdt_cpu_hartid", dtb, 0) == FDT_BAD
    assert reader.call("fdt_timebase", dtb) == 0
    assert reader.call("fdt_cpu_has_extension", dtb, 0, reader.string(b"h")) is False
    out = reader.out()
    assert reader.call("fdt_memory", dtb, 0, out) is True
    assert reader.read_out() == (0x100, 0x40)
    assert reader.call("fdt_memory", dtb, 1, reader.out()) is False


def broken(kind: str) -> bytes:
    data = bytearray((DATA / "qemu-virt.dtb").read_bytes())
    if kind == "magic":
        data[0] ^= 1
    elif kind == "last_comp_version":
        data[24:28] = be32(18)
    elif kind == "struct_offset":
        data[8:12] = be32(len(data) + 4)
    elif kind == "struct_size":
        data[36:40] = be32(len(data))
    elif kind == "zeros":
        data = bytearray(len(data))
    return bytes(data)


@pytest.mark.parametrize("kind", ["magic", "last_comp_version", "struct_offset", "struct_size", "zeros"])
def test_invalid(reader, kind):
    dtb = reader.load(broken(kind))
    assert reader.call("fdt_valid", dtb) is False
    assert reader.call("fdt_total_size", dtb) == 0
    assert reader.call("fdt_cpu_count", dtb) == 0
    assert reader.call("fdt_cpu_hartid", dtb, 0) == FDT_BAD
    assert reader.call("fdt_timebase", dtb) == 0
    assert reader.call("fdt_memory", dtb, 0, reader.out()) is False
    assert reader.call("fdt_cpu_has_extension", dtb, 0, reader.string(b"h")) is False


def test_truncated_struct(reader):
    """A structure block cut short (no FDT_END_NODE/FDT_END before size_dt_struct runs out) ends every walk."""
    data, _ = synthetic()
    off_struct = struct.unpack(">I", data[8:12])[0]
    cut = bytearray(data)
    cut[36:40] = be32(120)  # size_dt_struct: only the root's first properties
    dtb = reader.load(bytes(cut))
    assert reader.call("fdt_valid", dtb) is True
    assert off_struct + 120 < len(data)
    assert reader.call("fdt_cpu_count", dtb) == 0
    assert reader.call("fdt_memory", dtb, 0, reader.out()) is False


def test_null_and_misaligned(reader):
    assert reader.call("fdt_valid", 0) is False
    dtb = reader.load(b"\0\0" + (DATA / "qemu-virt.dtb").read_bytes())
    assert reader.call("fdt_valid", dtb + 2) is False


def test_riscv64_object(tmp_path):
    """The module compiles for riscv64 (the CLI the build uses), alone and with exported wrappers that keep all of
    its code; the object needs no outside symbol (LLVM turns an unbounded NUL search into a strlen call)."""
    require_tool("riscv64-unknown-elf-as", hint="binutils-riscv64-unknown-elf")
    from elftools.elf.elffile import ELFFile

    for files in ([FDT_PY], [DATA / "fdt_exports.py", FDT_PY]):
        obj = tmp_path / "fdt.o"
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "compiler.cli",
                "emit",
                *map(str, files),
                "--target",
                "riscv64",
                "--emit",
                "obj",
                "-o",
                str(obj),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        with obj.open("rb") as f:
            elf = ELFFile(f)
            assert elf["e_machine"] == "EM_RISCV"
            syms = list(elf.get_section_by_name(".symtab").iter_symbols())
            undefined = {s.name for s in syms if s["st_shndx"] == "SHN_UNDEF" and s.name}
            defined = {s.name for s in syms if s["st_shndx"] != "SHN_UNDEF"}
        assert undefined == set()
    for name in ("valid", "total_size", "cpu_count", "cpu_hartid", "cpu_has_extension", "memory", "timebase",
                 "rng_seed_take", "rng_seed_fill"):
        assert f"test_fdt_{name}" in defined


# ----------------------------------------------------------------------------------------------------------------
# /chosen/rng-seed: taken from the firmware's tree (and wiped there), given to the MVM's placeholder


def seed_tree(seed: bytes | None, before=(("bootargs", b"console=ttyS0\0"),), after=(("stdout-path", b"/soc/u\0"),),
              version: int = 17) -> bytes:
    """A tree whose /chosen has properties before and after rng-seed (none when seed is None) and a node after
    /chosen: what must come through a change of rng-seed untouched."""
    props = list(before) + ([("rng-seed", seed)] if seed is not None else []) + list(after)
    root = ("", [("#address-cells", be32(2)), ("#size-cells", be32(2)), ("model", strs("seed"))], [
        ("chosen", props, []),
        ("memory@80000000", [("device_type", strs("memory")), ("reg", be32(0, 0x8000_0000, 0, 0x100_0000))], []),
    ])
    return build_dtb(root, version)


def without_nops(blob: bytes) -> bytes:
    """The same tree with its FDT_NOP tokens dropped (5.4.1: readers ignore them; the `fdt` package cannot), the
    structure block walked token by token here, independently of the module under test."""
    off_struct, off_strings = struct.unpack(">II", blob[8:16])
    version = struct.unpack(">I", blob[20:24])[0]
    size_struct = struct.unpack(">I", blob[36:40])[0] if version >= 17 else off_strings - off_struct
    block, i, out = blob[off_struct:off_struct + size_struct], 0, bytearray()
    while i < len(block):
        tag = struct.unpack(">I", block[i:i + 4])[0]
        if tag == 1:
            end = block.index(b"\0", i + 4) + 1
            n = (end - i + 3) & ~3
        elif tag == 3:
            n = 12 + ((struct.unpack(">I", block[i + 4:i + 8])[0] + 3) & ~3)
        elif tag in (2, 4):
            n = 4
        elif tag == 9:
            out += block[i:i + 4]
            break
        else:
            raise AssertionError(f"bad token {tag} at {i}")
        if tag != 4:
            out += block[i:i + n]
        i += n
    strings = blob[off_strings:]
    header = bytearray(blob[:off_struct])
    total = off_struct + len(out) + len(strings)
    header[4:8] = be32(total)
    header[12:16] = be32(off_struct + len(out))
    if version >= 17:
        header[36:40] = be32(len(out))
    return bytes(header) + bytes(out) + strings


def parsed(r, dtb: int, size: int) -> pyfdt.FDT:
    """The tree as it now is in memory, read by the `fdt` package (an independent reader) once its FDT_NOP tokens
    are dropped."""
    return pyfdt.parse_dtb(without_nops(r.bytes_at(dtb, size)))


def prop_bytes(prop) -> bytes:
    """A property's value as bytes, however the `fdt` package chose to read it (cells or bytes)."""
    if isinstance(prop, pyfdt.PropWords):
        return b"".join(w.to_bytes(4, "big") for w in prop.data)
    assert isinstance(prop, pyfdt.PropBytes), type(prop)
    return bytes(prop.data)


def check_rest(tree: pyfdt.FDT) -> None:
    chosen = tree.get_node("/chosen")
    assert chosen.get_property("bootargs").value == "console=ttyS0"
    assert chosen.get_property("stdout-path").value == "/soc/u"
    assert tree.get_node("/memory@80000000").get_property("reg").data == [0, 0x8000_0000, 0, 0x100_0000]


@pytest.mark.parametrize("version", [17, 16])
def test_rng_seed_take_wipes_the_source(reader, version):
    seed = bytes(range(0xA0, 0xC0))  # 32 bytes, as QEMU gives
    data = seed_tree(seed, version=version)
    dtb = reader.load(data)
    buf, addr = reader.buffer(bytes(64))
    assert reader.call("fdt_rng_seed_take", dtb, buf, 64) == 32
    assert reader.bytes_at(addr, 64) == seed + bytes(32)
    after = reader.bytes_at(dtb, len(data))
    assert seed not in after and seed[:8] not in after  # the bytes are gone from the tree, not only hidden
    tree = parsed(reader, dtb, len(data))
    assert tree.get_node("/chosen").get_property("rng-seed") is None
    check_rest(tree)
    assert reader.call("fdt_valid", dtb) is True
    # taken once: the tree has no seed left to give
    assert reader.call("fdt_rng_seed_take", dtb, buf, 64) == 0


def test_rng_seed_take_at_most_max_len(reader):
    seed = bytes(range(1, 41))
    data = seed_tree(seed)
    dtb = reader.load(data)
    buf, addr = reader.buffer(bytes(48))
    assert reader.call("fdt_rng_seed_take", dtb, buf, 16) == 16
    assert reader.bytes_at(addr, 48) == seed[:16] + bytes(32)
    assert seed[16:] not in reader.bytes_at(dtb, len(data))  # the rest is wiped too
    check_rest(parsed(reader, dtb, len(data)))


def test_rng_seed_take_absent(reader):
    for data in (seed_tree(None), build_dtb(("", [], [("memory@0", [("device_type", strs("memory"))], [])]))):
        dtb = reader.load(data)
        buf, addr = reader.buffer(bytes(8))
        assert reader.call("fdt_rng_seed_take", dtb, buf, 8) == 0
        assert reader.bytes_at(addr, 8) == bytes(8)
        assert reader.bytes_at(dtb, len(data)) == data
    buf, _ = reader.buffer(bytes(8))
    assert reader.call("fdt_rng_seed_take", 0, buf, 8) == 0


@pytest.mark.parametrize(
    "given,length",
    [(64, 64), (32, 32), (80, 64), (7, 4), (3, 0), (0, 0)],
    ids=["exact", "shorter", "longer", "odd", "under-a-word", "none"],
)
def test_rng_seed_fill(reader, given, length):
    """The placeholder gets as many fresh bytes as there are, in whole words; the rest of it becomes FDT_NOP; with
    none it is removed, never left holding the placeholder's bytes."""
    placeholder = b"\xee" * 64
    data = seed_tree(placeholder)
    dtb = reader.load(data)
    seed = bytes((0x11 * i + 5) & 0xFF for i in range(1, given + 1))
    buf, _ = reader.buffer(seed + bytes(8))
    assert reader.call("fdt_rng_seed_fill", dtb, buf, given) == length
    tree = parsed(reader, dtb, len(data))
    prop = tree.get_node("/chosen").get_property("rng-seed")
    if length == 0:
        assert prop is None
    else:
        assert prop_bytes(prop) == seed[:length]
    assert b"\xee" not in reader.bytes_at(dtb, len(data))
    check_rest(tree)
    assert reader.call("fdt_valid", dtb) is True


def test_rng_seed_fill_without_placeholder(reader):
    data = seed_tree(None)
    dtb = reader.load(data)
    buf, _ = reader.buffer(bytes(range(32)))
    assert reader.call("fdt_rng_seed_fill", dtb, buf, 32) == 0
    assert reader.bytes_at(dtb, len(data)) == data


def test_rng_seed_mvm_device_tree(reader):
    """The MVM's generated tree (boards/mvm_fdt.py) carries the placeholder, and the firmware's seed goes into it:
    QEMU's own tree's 32 bytes, from the committed dump (its rng-seed is what `dumpdtb` wrote)."""
    from boards.mvm import load_mvm
    from boards.mvm_fdt import RNG_SEED_PLACEHOLDER, mvm_device_tree

    cfg = load_mvm("qemu-virt")
    mvm = mvm_device_tree(cfg, "plic")
    placeholder = pyfdt.parse_dtb(mvm).get_node("/chosen").get_property("rng-seed")
    assert prop_bytes(placeholder) == bytes(RNG_SEED_PLACEHOLDER)
    firmware = (DATA / "qemu-virt.dtb").read_bytes()
    fw_seed = prop_bytes(pyfdt.parse_dtb(firmware).get_node("/chosen").get_property("rng-seed"))
    assert len(fw_seed) == 32
    fw = reader.load(firmware)
    buf, addr = reader.buffer(bytes(64))
    assert reader.call("fdt_rng_seed_take", fw, buf, 64) == 32
    dtb = reader.load(mvm)
    assert reader.call("fdt_rng_seed_fill", dtb, buf, 32) == 32
    tree = parsed(reader, dtb, len(mvm))
    assert prop_bytes(tree.get_node("/chosen").get_property("rng-seed")) == fw_seed
    # the rest of /chosen is untouched: the command line mvm.toml gives
    assert tree.get_node("/chosen").get_property("bootargs").value == cfg.cmdline
    assert cfg.cmdline.startswith("console=ttyS0 ")
