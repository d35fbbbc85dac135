"""The management VM's device tree: `mvm_device_tree(cfg, irq, ...)` builds the flattened device tree the MVM's
Linux boots with, with the `fdt` package: only what the MVM owns (its vCPUs, its RAM, its passthrough devices and its
virtual interrupt controllers), phandles from a counter, and a `riscv,isa` that is the host hart's minus what the
hypervisor does not give the guest (`cpu.isa.remove` in mvm.toml).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

import fdt

from boards import IRQ_MODES
from boards.mvm import EmulatedDevice, MvmConfig, MvmError

# What QEMU 10 puts in every cpu node for `-M virt,aia=aplic-imsic -cpu rv64,v=true,svnapot=true` (board.toml's
# qemu_cpu; read from its `dumpdtb=`; without `aia=` QEMU leaves out smaia/ssaia, which PLIC mode removes anyway).
# A build for another CPU model passes its own string (`pyshyper_host.build.qemu_machine.host_cpu_from_qemu` reads
# it from QEMU).
QEMU_RV64_ISA = (
    "rv64imafdcvh_zic64b_zicbom_zicbop_zicboz_ziccamoa_ziccif_zicclsm_ziccrse_zicntr_zicsr_zifencei_zihintntl"
    "_zihintpause_zihpm_zmmul_za64rs_zaamo_zalrsc_zawrs_zfa_zca_zcd_zba_zbb_zbc_zbs_zve32f_zve32x_zve64f_zve64d"
    "_zve64x_shcounterenw_shgatpa_shtvala_shvsatpa_shvstvala_shvstvecd_smaia_ssaia_ssccptr_sscounterenw_sstc"
    "_sstvala_sstvecd_ssu64xl_svadu_svnapot_svvptc"
)


QEMU_CBO_BLOCK_SIZE = 64  # riscv,cbo{m,p,z}-block-size of QEMU's rv64 (with or without V and Svnapot)


IRQ_S_EXT = 9  # scause interrupt codes, the cells of a cpu-intc specifier


IRQ_M_EXT = 11


IRQ_TYPE_LEVEL_HIGH = 4  # second cell of an APLIC interrupt specifier


UART_CLOCK_DEFAULT = 0x38_4000


# /chosen/rng-seed's placeholder: the hypervisor fills it with fresh bytes from the firmware's own tree before the
# MVM starts, shortened to what the firmware gave (QEMU: 32 bytes), or removes it when the firmware gave none
# (hypervisor/core/mvm.py mvm_rng_seed_give). As many bytes as the hypervisor keeps (MVM_RNG_SEED_MAX).
RNG_SEED_PLACEHOLDER = 64


@dataclass(frozen=True)
class GuestIsa:
    base: str  # "rv64"
    extensions: tuple[str, ...]  # single letters first (i, m, a, ...), then multi-letter ones in the host's order

    @property
    def isa_string(self) -> str:
        """`riscv,isa`: rv64 + single letters, then `_`-separated multi-letter extensions."""
        single = "".join(e for e in self.extensions if len(e) == 1)
        multi = [e for e in self.extensions if len(e) > 1]
        return "_".join([self.base + single, *multi])

    @property
    def isa_base(self) -> str:
        return self.base + "i"


def parse_isa(isa: str) -> GuestIsa:
    """Split an ISA string (`rv64imafdch_zicsr_...`) into its base and extension names, lower-case."""
    isa = isa.strip().lower()
    m = re.fullmatch(r"(rv32|rv64)([a-z]*)((?:_[a-z][a-z0-9]*)*)", isa)
    if not m or not m.group(2):
        raise MvmError(f"cannot read ISA string {isa!r}")
    single = m.group(2)
    if single.startswith("g"):
        single = "imafd" + single[1:]  # G = IMAFD (Zicsr and Zifencei are listed by QEMU explicitly)
    if single[0] not in "ie":
        raise MvmError(f"ISA string {isa!r} does not start with the i or e base")
    multi = [x for x in m.group(3).split("_") if x]
    return GuestIsa(m.group(1), tuple(dict.fromkeys([*single, *multi])))


def guest_isa(cfg: MvmConfig, irq: str, host_isa: str = QEMU_RV64_ISA) -> GuestIsa:
    """The host hart's ISA minus what the MVM does not get (`cpu.isa.remove`, and `remove_plic` with the PLIC)."""
    host = parse_isa(host_isa)
    patterns = cfg.isa_remove + (cfg.isa_remove_plic if irq == "plic" else ())
    kept = tuple(e for e in host.extensions if not any(fnmatch.fnmatchcase(e, p) for p in patterns))
    if "i" not in kept:
        raise MvmError("cpu.isa.remove removes the base integer ISA 'i'")
    return GuestIsa(host.base, kept)


class _Phandles:
    """Phandles handed out in order as nodes are created: never a hard-coded number."""

    def __init__(self) -> None:
        self.next = 1

    def take(self, node: fdt.Node) -> int:
        value = self.next
        self.next += 1
        node.append(fdt.PropWords("phandle", value))
        return value


def _node(name: str, *props: fdt.Property) -> fdt.Node:
    n = fdt.Node(name)
    for p in props:
        n.append(p)
    return n


def _cells64(*values: int) -> list[int]:
    """64-bit values as pairs of 32-bit cells (#address-cells = #size-cells = 2)."""
    out: list[int] = []
    for v in values:
        out += [(v >> 32) & 0xFFFF_FFFF, v & 0xFFFF_FFFF]
    return out


def _cpus(cfg: MvmConfig, isa: GuestIsa, ph: _Phandles, cbo_block_size: int) -> tuple[fdt.Node, list[int]]:
    """/cpus: one cpu node per vCPU with its ISA and its riscv,cpu-intc; also the phandles of those controllers."""
    cpus = _node(
        "cpus",
        fdt.PropWords("#address-cells", 1),
        fdt.PropWords("#size-cells", 0),
        fdt.PropWords("timebase-frequency", cfg.board.timebase_frequency),
    )
    cpu_phandles: list[int] = []
    intc: list[int] = []
    for i in range(cfg.vcpus):
        cpu = fdt.Node(f"cpu@{i:x}")
        cpu_phandles.append(ph.take(cpu))
        for p in (
            fdt.PropStrings("device_type", "cpu"),
            fdt.PropWords("reg", i),
            fdt.PropStrings("status", "okay"),
            fdt.PropStrings("compatible", "riscv"),
            fdt.PropStrings("riscv,isa", isa.isa_string),
            fdt.PropStrings("riscv,isa-base", isa.isa_base),
            fdt.PropStrings("riscv,isa-extensions", *isa.extensions),
            fdt.PropStrings("mmu-type", cfg.mmu_type),
        ):
            cpu.append(p)
        for cbo in ("zicbom", "zicbop", "zicboz"):
            if cbo in isa.extensions:
                cpu.append(fdt.PropWords(f"riscv,{cbo[2:]}-block-size", cbo_block_size))
        ic = _node(
            "interrupt-controller",
            fdt.PropWords("#interrupt-cells", 1),
            fdt.Property("interrupt-controller"),
            fdt.PropStrings("compatible", "riscv,cpu-intc"),
        )
        intc.append(ph.take(ic))
        cpu.append(ic)
        cpus.append(cpu)
    cluster = fdt.Node("cluster0")
    for i, p in enumerate(cpu_phandles):
        cluster.append(_node(f"core{i}", fdt.PropWords("cpu", p)))
    cpus.append(_node("cpu-map", cluster))
    return cpus, intc


def _plic(plic: EmulatedDevice, intc: list[int], ph: _Phandles) -> tuple[fdt.Node, int]:
    """The virtual PLIC's node (sifive,plic-1.0.0) and its phandle."""
    node = fdt.Node(f"interrupt-controller@{plic.base:x}")
    irq_parent = ph.take(node)
    ext: list[int] = []
    for p in intc:  # context 2*i: vCPU i's M-level context, 2*i+1: its S-level one (QEMU's layout)
        ext += [p, IRQ_M_EXT, p, IRQ_S_EXT]
    for p in (
        fdt.PropWords("#address-cells", 0),
        fdt.PropWords("#interrupt-cells", 1),
        fdt.Property("interrupt-controller"),
        fdt.PropStrings("compatible", "sifive,plic-1.0.0", "riscv,plic0"),
        fdt.PropWords("reg", *_cells64(plic.base, plic.size)),
        fdt.PropWords("interrupts-extended", *ext),
        fdt.PropWords("riscv,ndev", plic.num_sources - 1),
    ):  # sources 1..n-1, as QEMU says
        node.append(p)
    return node, irq_parent


def _aia(
    cfg: MvmConfig, imsic: EmulatedDevice, aplic: EmulatedDevice, intc: list[int], ph: _Phandles
) -> tuple[fdt.Node, fdt.Node, int]:
    """The virtual IMSIC's node (one page per vCPU), the virtual APLIC's (delivering as MSIs to it) and the APLIC's
    phandle."""
    inode = fdt.Node(f"interrupt-controller@{imsic.base:x}")
    imsic_ph = ph.take(inode)
    ext: list[int] = []
    for p in intc:
        ext += [p, IRQ_S_EXT]
    for p in (
        fdt.PropWords("#interrupt-cells", 0),
        fdt.Property("interrupt-controller"),
        fdt.Property("msi-controller"),
        fdt.PropStrings("compatible", "qemu,imsics", "riscv,imsics"),
        fdt.PropWords("reg", *_cells64(imsic.base, imsic.size * cfg.vcpus)),
        fdt.PropWords("interrupts-extended", *ext),
        fdt.PropWords("riscv,num-ids", imsic.num_ids),
    ):
        inode.append(p)
    anode = fdt.Node(f"interrupt-controller@{aplic.base:x}")
    irq_parent = ph.take(anode)
    for p in (
        fdt.PropWords("#address-cells", 0),
        fdt.PropWords("#interrupt-cells", 2),
        fdt.Property("interrupt-controller"),
        fdt.PropStrings("compatible", "qemu,aplic", "riscv,aplic"),
        fdt.PropWords("reg", *_cells64(aplic.base, aplic.size)),
        fdt.PropWords("msi-parent", imsic_ph),
        fdt.PropWords("riscv,num-sources", aplic.num_sources),
    ):
        anode.append(p)
    return inode, anode, irq_parent


def mvm_device_tree(
    cfg: MvmConfig,
    irq: str,
    aia_guests: int = 0,
    host_isa: str = QEMU_RV64_ISA,
    *,
    initrd_size: int = 0,
    cbo_block_size: int = QEMU_CBO_BLOCK_SIZE,
    model: str = "riscv-virtio,pyshyper-mvm",
) -> bytes:
    """The MVM's flattened device tree (DTB, version 17) for one IRQ mode.

    `aia_guests` is the build's number of guest interrupt files per hart (AIA mode needs one for the MVM; the
    guest itself sees one IMSIC page per vCPU and no guest-index bits). `initrd_size` is the size of the
    initramfs loaded at `image.initrd_load_ipa` (0: no `linux,initrd-*` properties).
    """
    if irq not in IRQ_MODES:
        raise MvmError(f"irq mode must be one of {', '.join(IRQ_MODES)}, not {irq!r}")
    if irq == "aia" and not 1 <= aia_guests <= cfg.board.imsic_max_guests:
        raise MvmError(
            f"AIA mode needs 1..{cfg.board.imsic_max_guests} guest interrupt files per hart for the "
            f"MVM's IMSIC pages, not {aia_guests}"
        )
    if not 0 <= initrd_size <= cfg.initrd_max_size:
        raise MvmError(f"initrd_size {initrd_size:#x} does not fit image.initrd_max_size {cfg.initrd_max_size:#x}")
    isa = guest_isa(cfg, irq, host_isa)
    ctl = cfg.emulated_for(irq)
    ph = _Phandles()
    tree = fdt.FDT()
    root = tree.root
    for p in (
        fdt.PropWords("#address-cells", 2),
        fdt.PropWords("#size-cells", 2),
        fdt.PropStrings("compatible", "riscv-virtio"),
        fdt.PropStrings("model", model),
    ):
        root.append(p)

    # /chosen, /aliases
    stdout_path = f"/soc/{cfg.stdout_device.node_name}"
    chosen = _node(
        "chosen",
        fdt.PropStrings("bootargs", cfg.cmdline),
        fdt.PropStrings("stdout-path", stdout_path),
        fdt.PropBytes("rng-seed", data=bytes(RNG_SEED_PLACEHOLDER)),
    )
    if initrd_size:
        chosen.append(fdt.PropWords("linux,initrd-start", *_cells64(cfg.initrd_load_ipa)))
        chosen.append(fdt.PropWords("linux,initrd-end", *_cells64(cfg.initrd_load_ipa + initrd_size)))
    root.append(chosen)
    root.append(_node("aliases", fdt.PropStrings("serial0", stdout_path)))

    # /memory@...
    for m in cfg.memory:
        root.append(
            _node(
                f"memory@{m.ipa:x}",
                fdt.PropStrings("device_type", "memory"),
                fdt.PropWords("reg", *_cells64(m.ipa, m.size)),
            )
        )

    # /cpus
    cpus, intc = _cpus(cfg, isa, ph, cbo_block_size)
    root.append(cpus)

    # /soc: the virtual interrupt controller(s), then the passthrough devices
    soc = _node(
        "soc",
        fdt.PropWords("#address-cells", 2),
        fdt.PropWords("#size-cells", 2),
        fdt.PropStrings("compatible", "simple-bus"),
        fdt.Property("ranges"),
    )
    if irq == "plic":
        node, irq_parent = _plic(ctl["plic"], intc, ph)
        soc.append(node)
    else:
        imsic, aplic, irq_parent = _aia(cfg, ctl["imsic"], ctl["aplic"], intc, ph)
        soc.append(imsic)
        soc.append(aplic)

    for d in cfg.passthrough:
        node = _node(
            d.node_name, fdt.PropStrings("compatible", *d.compatible), fdt.PropWords("reg", *_cells64(d.base, d.size))
        )
        if d.name == "uart":
            node.append(fdt.PropWords("clock-frequency", d.clock_frequency or UART_CLOCK_DEFAULT))
        elif d.clock_frequency:
            node.append(fdt.PropWords("clock-frequency", d.clock_frequency))
        if d.irq:
            node.append(fdt.PropWords("interrupt-parent", irq_parent))
            cells = [d.irq] if irq == "plic" else [d.irq, IRQ_TYPE_LEVEL_HIGH]
            node.append(fdt.PropWords("interrupts", *cells))
        soc.append(node)
    vcon = cfg.emulated_named("virtio_console")
    if vcon is not None:  # the hypervisor's console device: the control channel, /dev/hvc0 .. /dev/hvc7
        node = _node(
            f"virtio_mmio@{vcon.base:x}",
            fdt.PropStrings("compatible", "virtio,mmio"),
            fdt.PropWords("reg", *_cells64(vcon.base, vcon.size)),
            fdt.PropWords("interrupt-parent", irq_parent),
            fdt.PropWords("interrupts", *([vcon.irq] if irq == "plic" else [vcon.irq, IRQ_TYPE_LEVEL_HIGH])),
        )
        soc.append(node)
    root.append(soc)

    blob = tree.to_dtb(version=17, boot_cpuid_phys=0)
    if len(blob) > cfg.dtb_max_size:
        raise MvmError(f"the MVM device tree is {len(blob)} bytes but image.dtb_max_size is {cfg.dtb_max_size}")
    return blob
