"""The GVM device tree the daemon generates (shyper.devtree), parsed back with `fdt`; the fresh rng-seed of every
generation; and shyper.board against the board files it mirrors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import fdt
import pytest
from shyper import board, devtree
from shyper.schema import load_config

from boards.mvm import load_mvm
from boards.mvm_fdt import QEMU_RV64_ISA, guest_isa, mvm_device_tree
from tests.mvm_tools.conftest import HOST_CPU, example

ROOT = Path(__file__).resolve().parents[2]


def words(node: fdt.Node, name: str) -> list[int]:
    return list(node.get_property(name).data)


def raw(node: fdt.Node, name: str) -> bytes:
    """A property's bytes, however `fdt` chose to read it back (words, bytes or strings)."""
    p = node.get_property(name)
    if isinstance(p, fdt.PropWords):
        return b"".join(w.to_bytes(4, "big") for w in p.data)
    if isinstance(p, fdt.PropStrings):
        return b"".join(x.encode() + b"\0" for x in p.data)
    return bytes(p.data)


def generate(images: Path, irq: str, cpus: int = 1, initrd: int = 150_003) -> fdt.FDT:
    c = example("vm1", images)
    if cpus == 2:
        c["cpu"] = {"num": 2, "allocate_bitmap": "0b1100", "master": 2}
    cfg = load_config(c, str(images), irq, 4)
    return fdt.parse_dtb(devtree.gvm_device_tree(cfg, irq, HOST_CPU, initrd))


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_gvm_tree(images: Path, irq: str) -> None:
    tree = generate(images, irq, cpus=2)
    root = tree.root
    assert root.get_property("model").value == "pyshyper,vm1"
    assert root.get_property("compatible").value == "riscv-virtio"
    chosen = tree.get_node("chosen")
    assert chosen.get_property("bootargs").value == "console=hvc0 earlycon=sbi rdinit=/init hostname=vm1"
    assert words(chosen, "linux,initrd-start") == [0, 0x8400_0000]
    assert words(chosen, "linux,initrd-end") == [0, 0x8400_0000 + 150_003]
    assert chosen.get_property("stdout-path").value == "/soc/virtio_mmio@10001000"
    assert len(raw(chosen, "rng-seed")) == 64
    mem = tree.get_node("memory@80000000")
    assert mem.get_property("device_type").value == "memory"
    assert words(mem, "reg") == [0, 0x8000_0000, 0, 0x800_0000]

    cpus = tree.get_node("cpus")
    assert cpus.get_property("timebase-frequency").value == 10_000_000
    cpu_nodes = [n for n in cpus.nodes if n.name.startswith("cpu@")]
    assert [n.name for n in cpu_nodes] == ["cpu@0", "cpu@1"]
    for i, n in enumerate(cpu_nodes):
        assert n.get_property("reg").value == i
        assert n.get_property("riscv,isa").value == HOST_CPU.isa
        assert list(n.get_property("riscv,isa-extensions").data) == list(HOST_CPU.extensions)
        assert n.get_property("mmu-type").value == "riscv,sv57"
        assert n.get_property("riscv,cbop-block-size").value == 64
    intc = [n.get_subnode("interrupt-controller").get_property("phandle").value for n in cpu_nodes]

    soc = tree.get_node("soc")
    console = soc.get_subnode("virtio_mmio@10001000")
    assert console.get_property("compatible").value == "virtio,mmio"
    assert words(console, "reg") == [0, 0x1000_1000, 0, 0x1000]
    if irq == "plic":
        plic = soc.get_subnode("interrupt-controller@c000000")
        assert words(plic, "interrupts-extended") == [intc[0], 11, intc[0], 9, intc[1], 11, intc[1], 9]
        assert plic.get_property("riscv,ndev").value == 95
        assert words(plic, "reg") == [0, 0xC00_0000, 0, 0x60_0000]
        assert console.get_property("interrupt-parent").value == plic.get_property("phandle").value
        assert words(console, "interrupts") == [1]
        assert not soc.exist_subnode("interrupt-controller@d000000")
    else:
        imsic = soc.get_subnode("interrupt-controller@28000000")
        aplic = soc.get_subnode("interrupt-controller@d000000")
        assert words(imsic, "reg") == [0, 0x2800_0000, 0, 0x2000]  # one page per vCPU
        assert words(imsic, "interrupts-extended") == [intc[0], 9, intc[1], 9]
        assert aplic.get_property("msi-parent").value == imsic.get_property("phandle").value
        assert console.get_property("interrupt-parent").value == aplic.get_property("phandle").value
        assert words(console, "interrupts") == [1, 4]
        assert not soc.exist_subnode("interrupt-controller@c000000")


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_interrupt_controllers_mirror_the_mvm_tree(images: Path, irq: str) -> None:
    """The GVM's controller nodes carry the same properties, values and compatibles as the MVM's (boards/mvm_fdt.py),
    but for the phandle cells that point at each tree's own cpu nodes."""
    mvm = fdt.parse_dtb(mvm_device_tree(load_mvm(), irq, 3 if irq == "aia" else 0)).get_node("soc")
    gvm = generate(images, irq, cpus=2).get_node("soc")
    names = ["interrupt-controller@c000000"] if irq == "plic" else [
        "interrupt-controller@28000000", "interrupt-controller@d000000"
    ]  # fmt: skip
    for name in names:
        ours, theirs = gvm.get_subnode(name), mvm.get_subnode(name)
        assert {p.name for p in ours.props} == {p.name for p in theirs.props}
        for p in theirs.props:
            if p.name not in ("phandle", "interrupts-extended", "msi-parent"):
                assert ours.get_property(p.name) == p, p.name


def test_rng_seed_is_fresh_every_time(images: Path) -> None:
    a = raw(generate(images, "plic").get_node("chosen"), "rng-seed")
    b = raw(generate(images, "plic").get_node("chosen"), "rng-seed")
    assert len(a) == len(b) == 64 and a != b


def test_given_tree_gets_a_fresh_seed(images: Path) -> None:
    given = fdt.FDT()
    given.root.append(fdt.PropStrings("model", "mine"))
    blob = given.to_dtb(version=17)
    out1, out2 = fdt.parse_dtb(devtree.with_rng_seed(blob)), fdt.parse_dtb(devtree.with_rng_seed(blob))
    assert out1.root.get_property("model").value == "mine"
    s1, s2 = raw(out1.get_node("chosen"), "rng-seed"), raw(out2.get_node("chosen"), "rng-seed")
    assert len(s1) == 64 and s1 != s2
    # a tree that has a seed gets a new one in its place
    again = fdt.parse_dtb(devtree.with_rng_seed(devtree.with_rng_seed(blob), seed=bytes(range(64))))
    assert raw(again.get_node("chosen"), "rng-seed") == bytes(range(64))
    with pytest.raises(ValueError, match="not a flattened device tree"):
        devtree.with_rng_seed(b"not a dtb at all")


def test_mirrored_cpu_is_the_mvms() -> None:
    """The MVM cpu@0 these tests give the daemon is what boards/mvm_fdt.py writes for the board's CPU in AIA mode:
    V and Svnapot included (board.toml qemu_cpu), so a GVM gets them too."""
    isa = guest_isa(load_mvm(), "aia", QEMU_RV64_ISA)
    assert HOST_CPU.isa == isa.isa_string and HOST_CPU.extensions == isa.extensions
    assert {"v", "zve64d", "svnapot"} <= set(HOST_CPU.extensions)


def test_host_cpu_from_proc_device_tree(tmp_path: Path) -> None:
    """The MVM's /proc/device-tree layout: one file per property, strings NUL-terminated, cells big-endian."""
    isa = guest_isa(load_mvm(), "plic", QEMU_RV64_ISA)
    cpu = tmp_path / "cpus" / "cpu@0"
    cpu.mkdir(parents=True)
    (tmp_path / "cpus" / "timebase-frequency").write_bytes((10_000_000).to_bytes(4, "big"))
    (cpu / "riscv,isa").write_bytes(isa.isa_string.encode() + b"\0")
    (cpu / "riscv,isa-base").write_bytes(b"rv64i\0")
    (cpu / "riscv,isa-extensions").write_bytes(b"\0".join(e.encode() for e in isa.extensions) + b"\0")
    (cpu / "mmu-type").write_bytes(b"riscv,sv57\0")
    (cpu / "riscv,cbop-block-size").write_bytes((64).to_bytes(4, "big"))
    got = devtree.host_cpu(str(tmp_path))
    assert got.isa == isa.isa_string and got.extensions == isa.extensions
    assert got.timebase_frequency == 10_000_000 and got.mmu_type == "riscv,sv57"
    assert got.block_sizes == (("riscv,cbop-block-size", 64),)
    assert "ssaia" not in got.extensions  # PLIC mode: what the hypervisor withholds, the GVM does not get either
    with pytest.raises(OSError):
        devtree.host_cpu(str(tmp_path / "absent"))


def test_board_mirror_matches_the_board_files() -> None:
    b = tomllib.loads((ROOT / "boards/qemu-virt/board.toml").read_text())
    emulated = {e["name"]: e for e in tomllib.loads((ROOT / "boards/qemu-virt/mvm.toml").read_text())["emulated"]}
    assert (board.PLIC_BASE, board.PLIC_SIZE, board.PLIC_NUM_SOURCES) == (
        b["plic"]["base"], b["plic"]["size"], b["plic"]["num_sources"]
    )  # fmt: skip
    assert (board.APLIC_BASE, board.APLIC_SIZE, board.APLIC_NUM_SOURCES) == (
        b["aplic"]["s_base"], b["aplic"]["size"], b["aplic"]["num_sources"]
    )  # fmt: skip
    assert (board.IMSIC_BASE, board.IMSIC_PAGE) == (b["imsic"]["s_base"], b["imsic"]["page_size"])
    assert board.IMSIC_NUM_IDS == emulated["imsic"]["num_ids"]
    assert board.IMSIC_REGION_SIZE >= b["max_harts"] * (b["imsic"]["max_guests"] + 1) * b["imsic"]["page_size"]
    assert board.TIMEBASE_FREQUENCY == b["timebase_frequency"]
