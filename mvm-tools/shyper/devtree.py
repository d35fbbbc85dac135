"""A GVM's device tree, generated with `fdt` from its config (when the config names no device tree file), and the
fresh `/chosen/rng-seed` every boot gets, generated or given.

The tree mirrors what boards/mvm_fdt.py writes for the MVM on the host (QEMU virt's layout): the GVM's vCPUs with
the MVM's own ISA strings and timebase (read from /proc/device-tree in the MVM, so a GVM gets exactly what the
hypervisor lets a guest have, in the same IRQ mode), its memory regions, its interrupt controller as the hypervisor
emulates it in this IRQ mode (PLIC, or APLIC in MSI mode + one IMSIC page per vCPU), its virtio-mmio console, and
/chosen, and the shared memory regions that name the VM (core/shmem.py): each a `/reserved-memory` child with
`no-map`, outside every memory node (Linux's /dev/mem refuses a no-map range inside a memory node: riscv's
init_resources makes it a "Reserved" IORESOURCE_BUSY resource, and Debian's IO_STRICT_DEVMEM refuses busy ranges;
a no-map range outside memory is only marked, no resource claims it, so `devmem` reaches it), and a
`pyshyper,shm-doorbell` node in /soc with the doorbell page as `reg`, its wired source as `interrupts`,
`memory-region` pointing at the region, `pyshyper,name` and `pyshyper,access` ("rw" or "ro").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import fdt

from shyper import board, proto
from shyper.schema import VmConfig

IRQ_S_EXT = 9  # scause interrupt codes, the cells of a cpu-intc specifier
IRQ_M_EXT = 11
IRQ_TYPE_LEVEL_HIGH = 4  # second cell of an APLIC interrupt specifier
RNG_SEED_SIZE = 64
PROC_DEVICE_TREE = "/proc/device-tree"


@dataclass(frozen=True)
class HostCpu:
    """What the GVM's cpu nodes copy from the MVM's cpu@0 (the hypervisor's view of a guest hart)."""

    isa: str
    isa_base: str
    extensions: tuple[str, ...]
    mmu_type: str
    timebase_frequency: int
    block_sizes: tuple[tuple[str, int], ...] = ()  # ("riscv,cbop-block-size", 64), ...


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _strings(raw: bytes) -> list[str]:
    return [s.decode("ascii", "replace") for s in raw.rstrip(b"\0").split(b"\0")] if raw else []


def _cells(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def host_cpu(root: str = PROC_DEVICE_TREE) -> HostCpu:
    """The MVM's own cpu@0 and timebase from its device tree (`root`: /proc/device-tree, a directory per node)."""
    cpu = os.path.join(root, "cpus", "cpu@0")
    isa = _read(os.path.join(cpu, "riscv,isa"))
    tb = _read(os.path.join(root, "cpus", "timebase-frequency"))
    if isa is None or tb is None:
        raise OSError(f"no {cpu}/riscv,isa or {root}/cpus/timebase-frequency: not in the MVM?")
    isa_s = _strings(isa)[0]
    base = _read(os.path.join(cpu, "riscv,isa-base"))
    exts = _read(os.path.join(cpu, "riscv,isa-extensions"))
    mmu = _read(os.path.join(cpu, "mmu-type"))
    sizes = []
    for prop in ("riscv,cbom-block-size", "riscv,cbop-block-size", "riscv,cboz-block-size"):
        raw = _read(os.path.join(cpu, prop))
        if raw is not None:
            sizes.append((prop, _cells(raw)))
    return HostCpu(
        isa=isa_s,
        isa_base=_strings(base)[0] if base else isa_s[:4] + "i",
        extensions=tuple(_strings(exts)) if exts else (),
        mmu_type=_strings(mmu)[0] if mmu else "riscv,sv39",
        timebase_frequency=_cells(tb),
        block_sizes=tuple(sizes),
    )


def _node(name: str, *props: fdt.Property) -> fdt.Node:
    n = fdt.Node(name)
    for p in props:
        n.append(p)
    return n


def _cells64(*values: int) -> list[int]:
    out: list[int] = []
    for v in values:
        out += [(v >> 32) & 0xFFFF_FFFF, v & 0xFFFF_FFFF]
    return out


class _Phandles:
    def __init__(self) -> None:
        self.next = 1

    def take(self, node: fdt.Node) -> int:
        value = self.next
        self.next += 1
        node.append(fdt.PropWords("phandle", value))
        return value


def fresh_seed() -> bytes:
    """64 bytes from the MVM's getrandom(2): never the same twice."""
    return os.getrandom(RNG_SEED_SIZE)


def gvm_device_tree(
    cfg: VmConfig,
    irq_mode: str,
    cpu: HostCpu,
    initrd_size: int = 0,
    seed: bytes | None = None,
    shared: list[tuple[proto.ShmRecord, int]] | None = None,
) -> bytes:
    """The DTB (version 17) of `cfg` for the hypervisor's `irq_mode` ("plic" or "aia"), with a fresh rng-seed;
    `shared`: the shared memory regions that name the VM, with its access (shm.regions_of)."""
    if irq_mode not in ("plic", "aia"):
        raise ValueError(f"irq mode {irq_mode!r}")
    ph = _Phandles()
    tree = fdt.FDT()
    root = tree.root
    for p in (
        fdt.PropWords("#address-cells", 2),
        fdt.PropWords("#size-cells", 2),
        fdt.PropStrings("compatible", "riscv-virtio"),
        fdt.PropStrings("model", f"pyshyper,{cfg.name}"),
    ):
        root.append(p)

    console_node = f"virtio_mmio@{cfg.console.base:x}"
    stdout_path = f"/soc/{console_node}"
    bootargs = " ".join(x for x in (cfg.cmdline.strip(), f"hostname={cfg.name}") if x)
    chosen = _node(
        "chosen",
        fdt.PropStrings("bootargs", bootargs),
        fdt.PropStrings("stdout-path", stdout_path),
        fdt.PropBytes("rng-seed", data=seed if seed is not None else fresh_seed()),
    )
    if cfg.ramdisk and initrd_size:
        chosen.append(fdt.PropWords("linux,initrd-start", *_cells64(cfg.ramdisk_ipa)))
        chosen.append(fdt.PropWords("linux,initrd-end", *_cells64(cfg.ramdisk_ipa + initrd_size)))
    root.append(chosen)
    root.append(_node("aliases", fdt.PropStrings("serial0", stdout_path)))

    for r in cfg.regions:
        root.append(
            _node(
                f"memory@{r.ipa:x}",
                fdt.PropStrings("device_type", "memory"),
                fdt.PropWords("reg", *_cells64(r.ipa, r.size)),
            )
        )

    shm_ph: list[int] = []
    if shared:
        rsv = _node(
            "reserved-memory",
            fdt.PropWords("#address-cells", 2),
            fdt.PropWords("#size-cells", 2),
            fdt.Property("ranges"),
        )
        for rec, _ in shared:
            region = _node(
                f"shm@{rec.ipa:x}",
                fdt.PropStrings("compatible", "pyshyper,shm"),
                fdt.PropWords("reg", *_cells64(rec.ipa, rec.size)),
                fdt.Property("no-map"),
            )
            shm_ph.append(ph.take(region))
            rsv.append(region)
        root.append(rsv)

    # /cpus: vCPU i is cpu@i (the hart id the guest sees)
    cpus = _node(
        "cpus",
        fdt.PropWords("#address-cells", 1),
        fdt.PropWords("#size-cells", 0),
        fdt.PropWords("timebase-frequency", cpu.timebase_frequency),
    )
    cpu_ph: list[int] = []
    intc: list[int] = []
    for i in range(cfg.vcpus):
        node = fdt.Node(f"cpu@{i:x}")
        cpu_ph.append(ph.take(node))
        for p in (
            fdt.PropStrings("device_type", "cpu"),
            fdt.PropWords("reg", i),
            fdt.PropStrings("status", "okay"),
            fdt.PropStrings("compatible", "riscv"),
            fdt.PropStrings("riscv,isa", cpu.isa),
            fdt.PropStrings("riscv,isa-base", cpu.isa_base),
        ):
            node.append(p)
        if cpu.extensions:
            node.append(fdt.PropStrings("riscv,isa-extensions", *cpu.extensions))
        node.append(fdt.PropStrings("mmu-type", cpu.mmu_type))
        for prop, size in cpu.block_sizes:
            node.append(fdt.PropWords(prop, size))
        ic = _node(
            "interrupt-controller",
            fdt.PropWords("#interrupt-cells", 1),
            fdt.Property("interrupt-controller"),
            fdt.PropStrings("compatible", "riscv,cpu-intc"),
        )
        intc.append(ph.take(ic))
        node.append(ic)
        cpus.append(node)
    cluster = fdt.Node("cluster0")
    for i, p in enumerate(cpu_ph):
        cluster.append(_node(f"core{i}", fdt.PropWords("cpu", p)))
    cpus.append(_node("cpu-map", cluster))
    root.append(cpus)

    soc = _node(
        "soc",
        fdt.PropWords("#address-cells", 2),
        fdt.PropWords("#size-cells", 2),
        fdt.PropStrings("compatible", "simple-bus"),
        fdt.Property("ranges"),
    )
    if irq_mode == "plic":
        plic = fdt.Node(f"interrupt-controller@{board.PLIC_BASE:x}")
        irq_parent = ph.take(plic)
        ext: list[int] = []
        for p in intc:  # context 2i: vCPU i's M-level context, 2i+1: its S-level one (QEMU's layout)
            ext += [p, IRQ_M_EXT, p, IRQ_S_EXT]
        for prop in (
            fdt.PropWords("#address-cells", 0),
            fdt.PropWords("#interrupt-cells", 1),
            fdt.Property("interrupt-controller"),
            fdt.PropStrings("compatible", "sifive,plic-1.0.0", "riscv,plic0"),
            fdt.PropWords("reg", *_cells64(board.PLIC_BASE, board.PLIC_SIZE)),
            fdt.PropWords("interrupts-extended", *ext),
            fdt.PropWords("riscv,ndev", board.PLIC_NUM_SOURCES - 1),
        ):
            plic.append(prop)
        soc.append(plic)
        irq_cells = [cfg.console.irq]
    else:
        imsic = fdt.Node(f"interrupt-controller@{board.IMSIC_BASE:x}")
        imsic_ph = ph.take(imsic)
        ext = []
        for p in intc:
            ext += [p, IRQ_S_EXT]
        for prop in (
            fdt.PropWords("#interrupt-cells", 0),
            fdt.Property("interrupt-controller"),
            fdt.Property("msi-controller"),
            fdt.PropStrings("compatible", "qemu,imsics", "riscv,imsics"),
            fdt.PropWords("reg", *_cells64(board.IMSIC_BASE, board.IMSIC_PAGE * cfg.vcpus)),
            fdt.PropWords("interrupts-extended", *ext),
            fdt.PropWords("riscv,num-ids", board.IMSIC_NUM_IDS),
        ):
            imsic.append(prop)
        aplic = fdt.Node(f"interrupt-controller@{board.APLIC_BASE:x}")
        irq_parent = ph.take(aplic)
        for prop in (
            fdt.PropWords("#address-cells", 0),
            fdt.PropWords("#interrupt-cells", 2),
            fdt.Property("interrupt-controller"),
            fdt.PropStrings("compatible", "qemu,aplic", "riscv,aplic"),
            fdt.PropWords("reg", *_cells64(board.APLIC_BASE, board.APLIC_SIZE)),
            fdt.PropWords("msi-parent", imsic_ph),
            fdt.PropWords("riscv,num-sources", board.APLIC_NUM_SOURCES),
        ):
            aplic.append(prop)
        soc.append(imsic)
        soc.append(aplic)
        irq_cells = [cfg.console.irq, IRQ_TYPE_LEVEL_HIGH]
    for (rec, access), region_ph in zip(shared or [], shm_ph, strict=True):
        soc.append(
            _node(
                f"shm-doorbell@{rec.doorbell_ipa:x}",
                fdt.PropStrings("compatible", "pyshyper,shm-doorbell"),
                fdt.PropWords("reg", *_cells64(rec.doorbell_ipa, board.PAGE_SIZE)),
                fdt.PropWords("interrupt-parent", irq_parent),
                fdt.PropWords("interrupts", *([rec.irq] if irq_mode == "plic" else [rec.irq, IRQ_TYPE_LEVEL_HIGH])),
                fdt.PropWords("memory-region", region_ph),
                fdt.PropStrings("pyshyper,name", rec.name),
                fdt.PropStrings("pyshyper,access", proto.ACCESS_NAMES[access]),
            )
        )
    soc.append(
        _node(
            console_node,
            fdt.PropStrings("compatible", "virtio,mmio"),
            fdt.PropWords("reg", *_cells64(cfg.console.base, board.VIRTIO_MMIO_SIZE)),
            fdt.PropWords("interrupt-parent", irq_parent),
            fdt.PropWords("interrupts", *irq_cells),
        )
    )
    root.append(soc)
    return tree.to_dtb(version=17, boot_cpuid_phys=0)


def with_rng_seed(dtb: bytes, seed: bytes | None = None) -> bytes:
    """A given device tree with `/chosen/rng-seed` set to fresh bytes (replacing any it had; /chosen made if none)."""
    try:
        tree = fdt.parse_dtb(dtb)
    except Exception as e:  # fdt raises bare Exceptions for malformed input
        raise ValueError(f"not a flattened device tree: {e}") from e
    if not tree.exist_node("chosen"):
        tree.add_item(fdt.Node("chosen"))
    chosen = tree.get_node("chosen")
    if chosen.exist_property("rng-seed"):
        chosen.remove_property("rng-seed")
    chosen.append(fdt.PropBytes("rng-seed", data=seed if seed is not None else fresh_seed()))
    return tree.to_dtb(version=tree.header.version or 17)
