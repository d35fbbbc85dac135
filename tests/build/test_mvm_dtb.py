"""The MVM's board data (boards/qemu-virt/mvm.toml) and the device tree generated from it (boards/mvm.py).

The generated DTBs are decompiled by `dtc` (an independent reader) and checked from its output: vCPU count, the
ISA the guest is told about, phandles and every reference to one, memory, initramfs range and the interrupt
controllers of each IRQ mode.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from boards import BoardError, load_board
from boards.mvm import MvmError, check_images, load_mvm, mvm_constants
from boards.mvm_fdt import QEMU_RV64_ISA, guest_isa, mvm_device_tree, parse_isa
from pyshyper_host.build.qemu_machine import host_cpu_from_qemu
from tests.conftest import require_tool

BOARD = "qemu-virt"
MVM_TOML = Path(__file__).resolve().parents[2] / "boards" / BOARD / "mvm.toml"
INITRD_SIZE = 0x0218_0000


# ---------------------------------------------------------------------------------------------------------------
# A small reader for dtc's DTS output


@dataclass
class Node:
    path: str
    props: dict[str, object] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)

    def cells(self, name: str) -> list[int]:
        value = self.props[name]
        assert isinstance(value, list), f"{self.path}: {name} is not a cell list: {value!r}"
        return value

    def strings(self, name: str) -> list[str]:
        value = self.props[name]
        assert isinstance(value, str), f"{self.path}: {name} is not a string: {value!r}"
        return value.split("\\0")


def _value(text: str) -> object:
    text = text.strip()
    if text.startswith("<"):
        cells: list[int] = []
        for group in re.findall(r"<([^>]*)>", text):
            cells += [int(c, 0) for c in group.split()]
        return cells
    if text.startswith('"'):
        return ",".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text))
    return text


def parse_dts(dts: str) -> dict[str, Node]:
    """Every node of dtc's output by path."""
    nodes: dict[str, Node] = {}
    stack: list[Node] = []
    for raw in dts.splitlines():
        line = raw.strip()
        if not line or line.startswith("/dts-v1/") or line.startswith("/memreserve/"):
            continue
        if line.endswith("{"):
            name = line[:-1].strip()
            path = "/" if name == "/" else ("" if stack[-1].path == "/" else stack[-1].path) + "/" + name
            node = Node(path)
            if stack:
                stack[-1].children.append(node)
            stack.append(node)
            nodes[path] = node
        elif line == "};":
            stack.pop()
        else:
            assert line.endswith(";"), raw
            name, _, value = line[:-1].partition("=")
            stack[-1].props[name.strip()] = _value(value) if value else True
    assert not stack
    return nodes


def decompile(blob: bytes, tmp_path: Path) -> tuple[dict[str, Node], str]:
    require_tool("dtc", hint="device-tree-compiler")
    dtb = tmp_path / "mvm.dtb"
    dtb.write_bytes(blob)
    r = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True, text=True, check=True)
    return parse_dts(r.stdout), r.stderr


def by_compatible(nodes: dict[str, Node], compatible: str) -> list[Node]:
    return [n for n in nodes.values() if "compatible" in n.props and compatible in n.strings("compatible")]


# ---------------------------------------------------------------------------------------------------------------
# Loading and checking the TOML


def test_default_mvm() -> None:
    cfg = load_mvm(BOARD)
    board = load_board(BOARD)
    assert cfg.vcpus == 2 and cfg.harts == (0, 1)
    [mem] = cfg.memory
    assert mem.ipa == mem.host == 0xC000_0000 and mem.size == 1 << 30  # identity map, see mvm.toml
    assert mem.host % (1 << 30) == 0  # one 1 GiB stage-2 leaf
    assert mem.host >= board.hypervisor.end and mem.host >= board.guest_images.end
    assert mem.host_end <= 0x1_0000_0000  # within the default -m 2G; the RAM below is the frame pool's
    assert cfg.kernel_load_ipa % 0x20_0000 == 0 and cfg.kernel_load_ipa >= mem.ipa
    assert cfg.kernel_load_ipa + cfg.kernel_max_size <= cfg.initrd_load_ipa
    assert cfg.initrd_load_ipa + cfg.initrd_max_size <= cfg.dtb_load_ipa
    assert cfg.dtb_load_ipa % 8 == 0 and cfg.dtb_load_ipa + cfg.dtb_max_size <= min(mem.ipa_end, 1 << 32)
    assert cfg.host_address(cfg.kernel_load_ipa) == cfg.kernel_load_ipa
    by_name = {(d.name, d.base): d.irq for d in cfg.passthrough}
    assert by_name[("uart", 0x1000_0000)] == 10 and by_name[("rtc", 0x10_1000)] == 11
    assert sorted(irq for (n, _), irq in by_name.items() if n == "virtio_mmio") == list(range(1, 9))
    assert not any(d.base == board.test_finisher.base for d in cfg.passthrough)  # power-off is SBI SRST
    assert set(cfg.emulated_for("plic")) == {"plic"} and set(cfg.emulated_for("aia")) == {"aplic", "imsic"}
    vcon = cfg.emulated_named("virtio_console")
    assert vcon is not None and (vcon.base, vcon.size, vcon.irq) == (0x0F00_1000, 0x1000, 16)
    assert "console=ttyS0" in cfg.cmdline and cfg.stdout == "uart"
    consts = {n: v for n, v, _ in mvm_constants(cfg)}
    assert consts["MVM_NUM_VCPUS"] == 2 and consts["MVM_HART_MASK"] == 0b11
    assert consts["MVM_DTB_IPA"] == cfg.dtb_load_ipa


def test_debian_images_fit(mvm_image_cache: Path) -> None:
    """The Debian kernel (header image_size, bss included) and initramfs that `pyshyper images` makes fit their
    windows. The images come from the `mvm_image_cache` fixture (once per test run), which makes them on a fresh
    machine: this test may run before any boot test has."""
    kernel, initrd = mvm_image_cache / "Image", mvm_image_cache / "mvm-initramfs.cpio"
    assert kernel.is_file() and initrd.is_file(), f"`pyshyper images` did not make {kernel} and {initrd}"
    header = kernel.read_bytes()[:64]
    assert header[48:56] == b"RISCV\0\0\0"
    image_size = int.from_bytes(header[16:24], "little")
    cfg = load_mvm(BOARD)
    check_images(cfg, image_size, initrd.stat().st_size)
    with pytest.raises(MvmError, match="initrd_max_size"):
        check_images(cfg, image_size, cfg.initrd_max_size + 1)


def _edited(tmp_path: Path, pattern: str, replacement: str, source: Path = MVM_TOML) -> Path:
    text = source.read_text()
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
    assert n == 1, f"pattern {pattern!r} not found in mvm.toml"
    path = tmp_path / "mvm.toml"
    path.write_text(new)
    return path


BAD_FIELDS = [
    # (pattern, replacement, field named in the error, a word of the reason)
    (r"^num = 2", "num = 3", "cpu.harts", "3 vCPUs"),
    (r"^harts = \[0, 1\]", "harts = [0, 0]", "cpu.harts[1]", "twice"),
    (r"^harts = \[0, 1\]", "harts = [0, 99]", "cpu.harts[1]", "hart number"),
    (r"^num = 2", "num = 0", "cpu.num", "positive"),
    (r'^mmu_type = "riscv,sv57"', 'mmu_type = "riscv,sv32"', "cpu.mmu_type", "not one of"),
    (r"^num = 2", "num = 2\nnmu = 1", "cpu.nmu", "unknown field"),
    (r'"h",\s', "", "cpu.isa.remove", "'h'"),
    (r"^host = 0xC000_0000", "host = 0x8000_0000", "memory[0].host", "hypervisor region"),
    (r"^host = 0xC000_0000", "host = 0xE000_0000", "memory[0].host", "board's RAM"),
    (r"^size = 0x4000_0000", 'size = "1G"', "memory[0].size", "must be int"),
    (r"^size = 0x4000_0000", "size = 0x2000_0800", "memory[0].size", "aligned"),
    (r"^kernel_load_ipa = 0xC020_0000", "kernel_load_ipa = 0xC010_0000", "image.kernel_load_ipa", "aligned"),
    (r"^dtb_load_ipa = 0xCC00_0000", "dtb_load_ipa = 0xC500_0000", "image.dtb_load_ipa", "initrd window"),
    (r"^dtb_load_ipa = 0xCC00_0000", "dtb_load_ipa = 0xFFFF_FFF8", "image.dtb_load_ipa", "one memory region"),
    (r'^cmdline = ".*"', 'cmdline = " "', "image.cmdline", "empty"),
    (r'^stdout = "uart"', 'stdout = "hvc0"', "image.stdout", "not a passthrough device"),
    (r'^name = "plic"', 'name = "gic"', "emulated[0].name", "not one of"),
    (r'^irq_mode = "plic"', 'irq_mode = "aia"', "emulated[0].irq_mode", "belongs to"),
    (r"^num_ids = 255", "num_ids = 100", "emulated[2].num_ids", "64*k - 1"),
    (r"^irq = 10", "irq = 9", "passthrough[0].irq", "has irq 10"),
    (r"^base = 0x10_1000", "base = 0x10_0000", "passthrough[1].base", "not the board's rtc"),
    (r'^name = "rtc"', 'name = "flash"', "passthrough[1].name", "not a device"),
    (
        r"^base = 0x1000_8000\nsize = 0x1000\nirq = 8",
        "base = 0x1000_7000\nsize = 0x1000\nirq = 7",
        "passthrough[9].base",
        "twice",
    ),
    (r"^irq = 16 ", "irq = 0 ", "emulated[3].irq", "not a source"),
    (r"^size = 0x1000( +# control)", r"size = 0x2000\1", "emulated[3].size", "0x1000 bytes"),
    (r"^irq = 16 ", "irq = 10 ", "passthrough[0].irq", "emulated virtio_console's"),
    (r"^base = 0x0F00_1000", "base = 0x0F00_0000", "emulated", "overlaps the stats"),
    (r'^irq_mode = "any"( +# WFI)', r'irq_mode = "any"\nirq = 3\1', "emulated[4].irq", "only a virtio_console"),
    (r"^vm_id = 0", "vm_id = 1", "vm_id", "VM 0"),
    (r"^\[image\]", "[imgae]", "image", "missing"),
]


@pytest.mark.parametrize(
    ("pattern", "replacement", "field_name", "reason"),
    BAD_FIELDS,
    ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD_FIELDS)],
)
def test_bad_field_is_named(tmp_path: Path, pattern: str, replacement: str, field_name: str, reason: str) -> None:
    path = _edited(tmp_path, pattern, replacement)
    with pytest.raises(MvmError) as e:
        load_mvm(BOARD, path)
    message = str(e.value)
    assert message.startswith(f"{path}: {field_name}: "), message  # the file as given, the field, the reason
    assert reason in message, message
    assert isinstance(e.value, BoardError)  # the CLI reports board errors as one line


def test_unknown_board_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match="unknown board"):
        load_mvm("no-such-board")
    with pytest.raises(MvmError, match="no MVM description"):
        load_mvm(BOARD, tmp_path / "absent.toml")


# ---------------------------------------------------------------------------------------------------------------
# The guest's ISA


def test_isa_parse_and_filter() -> None:
    host = parse_isa(QEMU_RV64_ISA)
    assert host.base == "rv64" and host.isa_string == QEMU_RV64_ISA and "h" in host.extensions
    cfg = load_mvm(BOARD)
    for irq in ("plic", "aia"):
        g = guest_isa(cfg, irq)
        assert "h" not in g.extensions and not any(e.startswith(("sh", "sm")) for e in g.extensions)
        assert {"i", "m", "a", "f", "d", "c", "sstc", "zicsr", "zifencei"} <= set(g.extensions)
        assert ("ssaia" in g.extensions) == (irq == "aia")
        assert not {"svadu", "svpbmt", "zicbom", "zicboz", "zihpm", "zawrs"} & set(g.extensions)  # see mvm.toml
        assert parse_isa(g.isa_string) == g  # riscv,isa and riscv,isa-extensions say the same
    with_pbmt = parse_isa("rv64gch_svnapot_svpbmt_sstc").isa_string
    assert with_pbmt == "rv64imafdch_svnapot_svpbmt_sstc"
    assert guest_isa(cfg, "plic", with_pbmt).isa_string == "rv64imafdc_svnapot_sstc"
    with pytest.raises(MvmError, match="cannot read ISA"):
        parse_isa("x86_64")


def test_default_isa_is_qemus() -> None:
    """QEMU_RV64_ISA and mvm.toml's mmu-type are what this machine's QEMU says for board.toml's `-cpu`
    (`rv64,v=true,svnapot=true`).

    QEMU lists smaia/ssaia only with `aia=aplic-imsic`: QEMU_RV64_ISA is that string, and the PLIC-mode guest
    ISA (which drops ssaia) is the same whichever of the two host strings it starts from.
    """
    require_tool("qemu-system-riscv64")
    cfg = load_mvm(BOARD)
    cpu = load_board(BOARD).qemu_cpu
    aia = host_cpu_from_qemu(machine="virt,aia=aplic-imsic,aia-guests=3", cpu=cpu)
    assert aia.isa == QEMU_RV64_ISA
    assert {"v", "svnapot"} <= set(parse_isa(aia.isa).extensions)
    assert aia.mmu_type == cfg.mmu_type and aia.cbo_block_size == 64
    plic = host_cpu_from_qemu(cpu=cpu)
    assert guest_isa(cfg, "plic", plic.isa) == guest_isa(cfg, "plic", QEMU_RV64_ISA)


# ---------------------------------------------------------------------------------------------------------------
# The device tree


def _isa_base_letters(isa: str) -> str:
    m = re.fullmatch(r"rv64([a-z]+)(_.*)?", isa)
    assert m, isa
    return m.group(1)


def _check_tree(nodes: dict[str, Node], cfg, irq: str, vcpus: int, initrd_size: int) -> None:
    root = nodes["/"]
    assert root.cells("#address-cells") == [2] and root.cells("#size-cells") == [2]
    assert root.strings("compatible") == ["riscv-virtio"] and "model" in root.props

    # vCPUs and their ISA
    cpus = sorted((n for p, n in nodes.items() if re.fullmatch(r"/cpus/cpu@[0-9a-f]+", p)), key=lambda n: n.path)
    assert len(cpus) == vcpus
    assert nodes["/cpus"].cells("timebase-frequency") == [10_000_000]
    for i, cpu in enumerate(cpus):
        assert cpu.cells("reg") == [i]
        assert cpu.strings("device_type") == ["cpu"] and cpu.strings("status") == ["okay"]
        assert cpu.strings("compatible") == ["riscv"] and cpu.strings("mmu-type") == [cfg.mmu_type]
        [isa] = cpu.strings("riscv,isa")
        exts = cpu.strings("riscv,isa-extensions")
        assert "h" not in _isa_base_letters(isa) and "h" not in exts
        assert not [e for e in exts if e.startswith("sh")]
        assert "sstc" in exts and "_sstc" in isa
        assert ("ssaia" in exts) == ("_ssaia" in isa) == (irq == "aia")
        assert "smaia" not in exts and "smaia" not in isa
        letters = _isa_base_letters(isa)
        assert [e for e in exts if len(e) == 1] == list("i" + letters.lstrip("i"))
        assert [e for e in exts if len(e) > 1] == isa.split("_")[1:]
        assert cpu.strings("riscv,isa-base") == ["rv64i"]
        [intc] = cpu.children
        assert intc.strings("compatible") == ["riscv,cpu-intc"] and intc.props["interrupt-controller"] is True
        assert intc.cells("#interrupt-cells") == [1]

    # phandles: unique, every reference resolves
    phandles: dict[int, Node] = {}
    for n in nodes.values():
        if "phandle" in n.props:
            [p] = n.cells("phandle")
            assert p not in phandles, f"phandle {p} on {n.path} and {phandles[p].path}"
            phandles[p] = n
    assert len(phandles) >= 2 * vcpus + 1
    intc_phandles = [
        p for p, n in phandles.items() if n.path.startswith("/cpus/cpu@") and n.path.endswith("/interrupt-controller")
    ]
    assert len(intc_phandles) == vcpus
    for n in nodes.values():
        if "interrupt-parent" in n.props:
            [p] = n.cells("interrupt-parent")
            parent = phandles[p]  # KeyError: dangling reference
            assert parent.props.get("interrupt-controller") is True
            assert len(n.cells("interrupts")) == parent.cells("#interrupt-cells")[0], n.path
        if "msi-parent" in n.props:
            assert phandles[n.cells("msi-parent")[0]].props.get("msi-controller") is True
        if "interrupts-extended" in n.props:
            cells = n.cells("interrupts-extended")
            while cells:
                parent = phandles[cells[0]]
                k = parent.cells("#interrupt-cells")[0]
                cells = cells[1 + k :]
        if n.path.startswith("/cpus/cpu-map/") and "cpu" in n.props:
            assert phandles[n.cells("cpu")[0]] in cpus

    # memory and the initramfs
    mems = [n for p, n in nodes.items() if p.startswith("/memory@")]
    assert [(n.strings("device_type"), n.cells("reg")) for n in mems] == [
        (["memory"], [m.ipa >> 32, m.ipa & 0xFFFF_FFFF, m.size >> 32, m.size & 0xFFFF_FFFF]) for m in cfg.memory
    ]
    chosen = nodes["/chosen"]
    assert chosen.strings("bootargs") == [cfg.cmdline]
    [stdout] = chosen.strings("stdout-path")
    assert stdout in nodes and nodes[stdout].strings("compatible") == ["ns16550a"]
    if initrd_size:
        start, end = chosen.cells("linux,initrd-start"), chosen.cells("linux,initrd-end")
        assert (start[0] << 32 | start[1]) == cfg.initrd_load_ipa
        assert (end[0] << 32 | end[1]) == cfg.initrd_load_ipa + initrd_size
    else:
        assert "linux,initrd-start" not in chosen.props

    # interrupt controllers per mode
    plics = by_compatible(nodes, "riscv,plic0")
    aplics = by_compatible(nodes, "riscv,aplic")
    imsics = by_compatible(nodes, "riscv,imsics")
    assert not by_compatible(nodes, "sifive,clint0")  # the guest's timer is SBI / Sstc
    assert not by_compatible(nodes, "sifive,test0")  # power-off is SBI SRST
    if irq == "plic":
        assert len(plics) == 1 and not aplics and not imsics
        [plic] = plics
        assert plic.path == "/soc/interrupt-controller@c000000"
        assert plic.strings("compatible") == ["sifive,plic-1.0.0", "riscv,plic0"]
        assert plic.cells("riscv,ndev") == [95] and plic.cells("reg") == [0, 0xC00_0000, 0, 0x60_0000]
        expected: list[int] = []
        for p in intc_phandles:
            expected += [p, 11, p, 9]  # context 2*i = M, 2*i+1 = S
        assert plic.cells("interrupts-extended") == expected
        parent = plic
    else:
        assert not plics and len(aplics) == 1 and len(imsics) == 1
        [aplic], [imsic] = aplics, imsics
        assert imsic.path == "/soc/interrupt-controller@28000000"
        assert imsic.props["msi-controller"] is True and imsic.cells("riscv,num-ids") == [255]
        assert imsic.cells("reg") == [0, 0x2800_0000, 0, 0x1000 * vcpus]  # one S-file page per vCPU
        assert "riscv,guest-index-bits" not in imsic.props
        assert imsic.cells("interrupts-extended") == [c for p in intc_phandles for c in (p, 9)]
        assert aplic.path == "/soc/interrupt-controller@d000000"
        assert phandles[aplic.cells("msi-parent")[0]] is imsic
        assert aplic.cells("riscv,num-sources") == [96] and aplic.cells("#interrupt-cells") == [2]
        parent = aplic
    [parent_ph] = parent.cells("phandle")

    # passthrough devices
    for d in cfg.passthrough:
        node = nodes[f"/soc/{d.node_name}"]
        assert node.cells("reg") == [0, d.base, 0, d.size]
        assert node.cells("interrupt-parent") == [parent_ph]
        assert node.cells("interrupts") == ([d.irq] if irq == "plic" else [d.irq, 4])
    # eight passthrough slots and the hypervisor's virtio console (mvm.toml `virtio_console`)
    assert len(by_compatible(nodes, "virtio,mmio")) == 9
    vcon = cfg.emulated_named("virtio_console")
    node = nodes[f"/soc/virtio_mmio@{vcon.base:x}"]
    assert node.strings("compatible") == ["virtio,mmio"] and node.cells("reg") == [0, vcon.base, 0, 0x1000]
    assert node.cells("interrupt-parent") == [parent_ph]
    assert node.cells("interrupts") == ([16] if irq == "plic" else [16, 4])


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_device_tree(tmp_path: Path, irq: str) -> None:
    cfg = load_mvm(BOARD)
    blob = mvm_device_tree(cfg, irq, 3 if irq == "aia" else 0, initrd_size=INITRD_SIZE)
    assert blob[:4] == b"\xd0\x0d\xfe\xed" and len(blob) <= cfg.dtb_max_size
    nodes, warnings = decompile(blob, tmp_path)
    # dtc's only remarks are the ones it also makes about QEMU's own tree (cpu-intc / IMSIC without #address-cells)
    for line in warnings.splitlines():
        assert "interrupt_provider" in line and "Missing #address-cells" in line, line
    _check_tree(nodes, cfg, irq, cfg.vcpus, INITRD_SIZE)


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_device_tree_three_vcpus_no_initrd(tmp_path: Path, irq: str) -> None:
    path = _edited(tmp_path, r"^num = 2 ", "num = 3 ")
    path = _edited(tmp_path, r"^harts = \[0, 1\]", "harts = [3, 1, 2]", source=path)
    cfg = load_mvm(BOARD, path)
    assert cfg.harts == (3, 1, 2) and cfg.hart_mask == 0b1110
    nodes, _ = decompile(mvm_device_tree(cfg, irq, 1 if irq == "aia" else 0), tmp_path)
    _check_tree(nodes, cfg, irq, 3, 0)


def test_device_tree_errors() -> None:
    cfg = load_mvm(BOARD)
    with pytest.raises(MvmError, match="irq mode"):
        mvm_device_tree(cfg, "gic")
    with pytest.raises(MvmError, match="guest interrupt files"):
        mvm_device_tree(cfg, "aia", 0)
    with pytest.raises(MvmError, match="initrd_max_size"):
        mvm_device_tree(cfg, "plic", initrd_size=cfg.initrd_max_size + 1)


def test_device_tree_is_deterministic() -> None:
    cfg = load_mvm(BOARD)
    assert mvm_device_tree(cfg, "aia", 3) == mvm_device_tree(cfg, "aia", 3)
    assert mvm_device_tree(cfg, "plic") != mvm_device_tree(cfg, "aia", 3)
