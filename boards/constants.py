"""The generated sources the build feeds to the hypervisor (`hypervisor.board`, typed-subset `Final` constants and
slot tables) and to assembly (`board.S`, `.equ` lines), from a build configuration: the board (`board.toml`), the
management VM (`mvm.toml`) and the test-guest image's header, each value declared once."""

from __future__ import annotations

from boards import (
    BOARDS_DIR,
    GUEST_GPA,
    GUEST_HDR_INSTANCES,
    GUEST_HDR_MAGIC,
    GUEST_HDR_SIZE,
    GUEST_INSTANCES_MAX,
    GUEST_MAGIC,
    GUEST_MEM_SIZE,
    Board,
    BoardError,
    BuildConfig,
)
from boards.mvm import load_mvm, mvm_constants


def project_version() -> tuple[int, int, int]:
    """pyproject.toml's version, the one the hypervisor's banner prints."""
    import tomllib

    text = (BOARDS_DIR.parent / "pyproject.toml").read_text()
    major, minor, patch = (int(x) for x in tomllib.loads(text)["project"]["version"].split(".")[:3])
    return major, minor, patch


def _constants(cfg: BuildConfig) -> list[tuple[str, int, str]]:
    """(NAME, value, comment) for every scalar constant shared by the hypervisor and assembly."""
    b = cfg.board
    major, minor, patch = project_version()
    return [
        ("VERSION_MAJOR", major, "pyproject.toml"),
        ("VERSION_MINOR", minor, ""),
        ("VERSION_PATCH", patch, ""),
        ("GUEST_MAGIC", GUEST_MAGIC, 'a test-guest image header: b"PYSHGUST" at GUEST_HDR_MAGIC'),
        ("GUEST_HDR_MAGIC", GUEST_HDR_MAGIC, ""),
        ("GUEST_HDR_SIZE", GUEST_HDR_SIZE, "the image's size in bytes"),
        ("GUEST_HDR_INSTANCES", GUEST_HDR_INSTANCES, "how many VMs to start from it"),
        ("GUEST_GPA", GUEST_GPA, "a test-guest VM's memory, guest-physical"),
        ("GUEST_MEM_SIZE", GUEST_MEM_SIZE, ""),
        ("GUEST_INSTANCES_MAX", GUEST_INSTANCES_MAX, ""),
        ("DEBUG_FAULTS", int(cfg.debug_faults), "1: the PyShyper test SBI extension may fault the hypervisor"),
        ("MMIO_DECODE_FETCH", int(cfg.mmio_decode == "fetch"), "1: MMIO traps ignore htinst, decode the fetched insn"),
        ("STAGE2_LEAF_MAX", cfg.stage2_leaf_max, "the largest stage-2 leaf in bytes (pyshyper build --stage2-leaf)"),
        ("RAM_BASE", b.ram_base, "start of DRAM"),
        ("HYP_LOAD_ADDRESS", b.hypervisor.base, "entry point and start of the hypervisor image"),
        ("HYP_REGION_SIZE", b.hypervisor.size, "bytes the hypervisor image, stacks and data may use"),
        ("HYP_REGION_END", b.hypervisor.end, ""),
        ("GUEST_IMAGE_ADDRESS", b.guest_images.base, "where `pyshyper run --guest` loads a guest image"),
        ("GUEST_IMAGE_MAX_SIZE", b.guest_images.size, ""),
        ("MAX_HARTS", b.max_harts, "harts with a stack and per-hart data"),
        ("HART_STACK_SIZE", b.hart_stack_size, ""),
        ("HART_STACK_PAINT", 0x5059_5348_5354_4B21, "runtime/boot.S fills each hart's stack with it ('PYSHSTK!')"),
        ("HART_STACK_GUARD", 256, "bytes at each stack's bottom that must keep the paint (core/stack.py)"),
        ("TIMEBASE_FREQUENCY", b.timebase_frequency, "Hz of the time CSR"),
        ("UART_BASE", b.uart.base, "ns16550a"),
        ("UART_SIZE", b.uart.size, ""),
        ("UART_IRQ", b.uart_irq, ""),
        ("TEST_FINISHER_BASE", b.test_finisher.base, "sifive,test0 power-off/reset"),
        ("RTC_BASE", b.rtc.base, ""),
        ("RTC_IRQ", b.rtc_irq, ""),
        ("CLINT_BASE", b.clint.base, ""),
        ("CLINT_SIZE", b.clint.size, ""),
        (
            "SSWI_BASE",
            b.sswi.base if b.sswi else 0,
            "ACLINT SSWI, 0 if none (arch/riscv/ipi.py)",
        ),
        ("SSWI_SIZE", b.sswi.size if b.sswi else 0, ""),
        ("PLIC_BASE", b.plic.base, ""),
        ("PLIC_SIZE", b.plic.size, ""),
        ("PLIC_NUM_SOURCES", b.plic_num_sources, ""),
        ("PLIC_CONTEXTS_PER_HART", b.plic_contexts_per_hart, "hart h's first context is h * this"),
        ("PLIC_S_CONTEXT", b.plic_s_context, "the S-mode context within a hart's"),
        ("APLIC_M_BASE", b.aplic_m_base, ""),
        ("APLIC_S_BASE", b.aplic_s_base, ""),
        ("APLIC_SIZE", b.aplic_size, ""),
        ("APLIC_NUM_SOURCES", b.aplic_num_sources, ""),
        ("IMSIC_M_BASE", b.imsic_m_base, ""),
        ("IMSIC_S_BASE", b.imsic_s_base, ""),
        ("IMSIC_PAGE_SIZE", b.imsic_page_size, ""),
        ("IRQ_MODE_PLIC", 0, ""),
        ("IRQ_MODE_AIA", 1, ""),
        ("IRQ_MODE", 1 if cfg.aia else 0, f"this build: {cfg.irq}"),
        ("AIA_GUESTS", cfg.aia_guests, "guest interrupt files per hart (0 with the PLIC)"),
        ("IMSIC_GUEST_INDEX_BITS", cfg.imsic_guest_index_bits, "ceil(log2(AIA_GUESTS + 1))"),
        ("IMSIC_HART_STRIDE", cfg.imsic_hart_stride, "bytes between two harts' S-level IMSIC files"),
        ("VIRTIO_MMIO_COUNT", len(b.virtio_mmio), ""),
    ]


def render_hypervisor_module(cfg: BuildConfig) -> str:
    """The generated `hypervisor.board` module: `Final` constants and slot tables in the typed subset."""
    lines = [
        f'"""Board constants for {cfg.board.name} ({cfg.irq}'
        + (f", {cfg.aia_guests} AIA guests" if cfg.aia else "")
        + ").",
        "",
        f"Generated by `pyshyper build` from {_board_source(cfg.board)}; do not edit.",
        '"""',
        "",
        "from compiler.prelude import Array, Final, static, u64",
        "",
    ]
    for name, value, comment in _constants(cfg):
        tail = f"  # {comment}" if comment else ""
        lines.append(f"{name}: Final = u64({value:#x}){tail}")
    n = len(cfg.board.virtio_mmio)
    if n:
        bases = ", ".join(f"{v.base:#x}" for v in cfg.board.virtio_mmio)
        sizes = ", ".join(f"{v.size:#x}" for v in cfg.board.virtio_mmio)
        irqs = ", ".join(str(v.irq) for v in cfg.board.virtio_mmio)
        lines += [
            "",
            "# virtio-mmio transport slots: base, size and wired IRQ of slot i.",
            f"VIRTIO_MMIO_BASES = static(Array[u64, {n}], init=({bases}))",
            f"VIRTIO_MMIO_SIZES = static(Array[u64, {n}], init=({sizes}))",
            f"VIRTIO_MMIO_IRQS = static(Array[u64, {n}], init=({irqs}))",
        ]
    lines += _render_mvm(cfg)
    return "\n".join(lines) + "\n"


PAGE_SIZE = 0x1000


def _board_source(board: Board) -> str:
    """board.toml as the generated files name it: relative to the project for the boards/ tree."""
    try:
        return str(board.path.relative_to(BOARDS_DIR.parent))
    except ValueError:
        return str(board.path)


def _page_up(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def mvm_module_constants(cfg: BuildConfig) -> tuple[list[tuple[str, int, str]], dict[str, tuple[str, list[int]]]]:
    """The management VM's part of `hypervisor.board`: (NAME, value, comment) scalars and NAME -> (length
    expression, values) tables, from `boards/<board>/mvm.toml`. Every name is emitted in both IRQ modes."""
    mvm = load_mvm(cfg.board)
    plic = mvm.emulated_for("plic")["plic"]
    aia = mvm.emulated_for("aia")
    aplic, imsic = aia["aplic"], aia["imsic"]
    stats = mvm.emulated_named("stats")
    vcon = mvm.emulated_named("virtio_console")
    if vcon is None:
        raise BoardError(f"{mvm.path.name}: emulated: no 'virtio_console' entry (the control channel)")
    if stats is None:
        raise BoardError(f"{mvm.path.name}: emulated: no 'stats' entry (the hypervisor's statistics page)")
    pt = mvm.passthrough
    scalars = [
        *mvm_constants(mvm),
        ("MVM_PT_COUNT", len(pt), "passthrough devices: MMIO mapped at the same IPA, wired IRQ routed to the MVM"),
        ("MVM_PLIC_BASE", plic.base, "the vPLIC window the MVM sees (the physical PLIC's range)"),
        ("MVM_PLIC_SIZE", plic.size, ""),
        ("MVM_PLIC_NDEV", plic.num_sources - 1, "riscv,ndev: sources 1..MVM_PLIC_NDEV"),
        ("MVM_APLIC_BASE", aplic.base, "AIA mode: the emulated S-level APLIC"),
        ("MVM_APLIC_SIZE", aplic.size, ""),
        ("MVM_APLIC_NUM_SOURCES", aplic.num_sources, ""),
        ("MVM_IMSIC_BASE", imsic.base, "AIA mode: vCPU i's IMSIC page at MVM_IMSIC_BASE + i * IMSIC_PAGE_SIZE"),
        ("MVM_IMSIC_NUM_IDS", imsic.num_ids, ""),
        ("MVM_STATS_BASE", stats.base, "the hypervisor's read-only statistics page (not in the device tree)"),
        ("MVM_STATS_SIZE", stats.size, ""),
        ("MVM_VCON_BASE", vcon.base, "the MVM's virtio-console (virtio-mmio v2): control port and consoles"),
        ("MVM_VCON_IRQ", vcon.irq, "its wired source on the MVM's virtual PLIC / APLIC"),
    ]
    tables = {
        "MVM_HARTS": ("MVM_NUM_VCPUS", list(mvm.harts)),
        "MVM_PT_BASES": ("MVM_PT_COUNT", [d.base for d in pt]),
        "MVM_PT_SIZES": ("MVM_PT_COUNT", [_page_up(d.size) for d in pt]),
        "MVM_PT_IRQS": ("MVM_PT_COUNT", [d.irq for d in pt]),
    }
    return scalars, tables


def _render_mvm(cfg: BuildConfig) -> list[str]:
    scalars, tables = mvm_module_constants(cfg)
    lines = ["", "# The management VM (VM 0), from mvm.toml."]
    for name, value, comment in scalars:
        tail = f"  # {comment}" if comment else ""
        lines.append(f"{name}: Final = u64({value:#x}){tail}")
    comments = {
        "MVM_HARTS": "the physical hart that runs vCPU i",
        "MVM_PT_BASES": "passthrough device i: base (IPA == host physical address)",
        "MVM_PT_SIZES": "size rounded up to 4 KiB pages",
        "MVM_PT_IRQS": "wired IRQ (0: none)",
    }
    for name, (length, values) in tables.items():
        decimal = name in ("MVM_HARTS", "MVM_PT_IRQS")
        init = ", ".join(str(v) if decimal else f"{v:#x}" for v in values) + ("," if len(values) == 1 else "")
        lines.append(f"{name} = static(Array[u64, {length}], init=({init}))  # {comments[name]}")
    return lines


def render_asm_include(cfg: BuildConfig) -> str:
    """The generated `board.S`: the same constants as `.equ BOARD_<NAME>` lines for runtime/*.S."""
    lines = [f"/* Board constants for {cfg.board.name}; generated by pyshyper build, do not edit. */"]
    for name, value, _ in _constants(cfg):
        lines.append(f".equ BOARD_{name}, {value:#x}")
    return "\n".join(lines) + "\n"
