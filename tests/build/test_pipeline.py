"""The whole pipeline on a hand-written stand-in for the compiled hypervisor (tests/build/fixtures/fake_hyp.S)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from boards import make_config, render_asm_include, render_hypervisor_module
from qemu.build import PrebuiltObject, build, stale_reason
from qemu.run import RunOptions, qemu_command
from qemu.symtab import FunctionSymbol, function_symbols, render_symtab_asm
from tests.conftest import require_tool

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROOT_RUNTIME = ["boot.S"]


@pytest.fixture
def built(tmp_path, fake_hyp_object):
    from qemu.build import RUNTIME_DIR

    cfg = make_config("qemu-virt", "plic")
    return build(
        cfg,
        tmp_path / "out",
        prebuilt=PrebuiltObject(fake_hyp_object),
        runtime=[RUNTIME_DIR / n for n in ROOT_RUNTIME],
        quiet=True,
    )


def symbol(elf, name):
    with open(elf, "rb") as f:
        for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if sym.name == name:
                return sym["st_value"]
    raise KeyError(name)


def test_outputs(built):
    assert built.elf.is_file() and built.bin.is_file()
    assert built.bin.stat().st_size == built.size.file
    assert built.size.stacks == built.config.board.max_harts * built.config.board.hart_stack_size
    stamp = json.loads((built.elf.parent / "build.json").read_text())
    assert stamp["irq"] == "plic" and stamp["board"] == "qemu-virt"


def test_entry_and_runtime_symbols(built):
    assert symbol(built.elf, "_start") == 0x8020_0000
    for name in ("_secondary_start", "__bss_start", "__bss_end", "__stack_top", "_end", "pyshyper_symtab"):
        symbol(built.elf, name)
    assert symbol(built.elf, "__stack_top") - symbol(built.elf, "__stacks_start") == 8 * 0x4000


def test_symbol_table_embedded(built):
    names = {s.name for s in function_symbols(built.elf)}
    assert {"hyp_main", "hyp_secondary_main", "_start", "pyshyper_symtab_lookup"} <= names
    data = built.bin.read_bytes()
    assert b"hyp_main\0" in data and b"hyp_secondary_main\0" in data


def test_stale_reason(built, tmp_path):
    out = built.elf.parent
    assert stale_reason(built.config, out) is None
    assert "configuration changed" in stale_reason(make_config("qemu-virt", "aia", 3), out)
    assert "missing" in stale_reason(built.config, tmp_path / "elsewhere")


def test_generated_sources():
    cfg = make_config("qemu-virt", "aia", 3)
    py = render_hypervisor_module(cfg)
    assert "from compiler.prelude import" in py
    assert "IRQ_MODE: Final = u64(0x1)" in py
    assert "AIA_GUESTS: Final = u64(0x3)" in py
    assert "IMSIC_HART_STRIDE: Final = u64(0x4000)" in py
    assert "VIRTIO_MMIO_IRQS = static(Array[u64, 8], init=(1, 2, 3, 4, 5, 6, 7, 8))" in py
    compile(py, "board.py", "exec")  # valid Python
    asm = render_asm_include(cfg)
    assert ".equ BOARD_MAX_HARTS, 0x8" in asm and ".equ BOARD_HYP_LOAD_ADDRESS, 0x80200000" in asm


@pytest.mark.parametrize(("guests", "bits", "stride"), [(1, 1, 0x2000), (3, 2, 0x4000), (4, 3, 0x8000), (7, 3, 0x8000)])
def test_imsic_geometry(guests, bits, stride):
    cfg = make_config("qemu-virt", "aia", guests)
    assert (cfg.imsic_guest_index_bits, cfg.imsic_hart_stride) == (bits, stride)


def test_symtab_rendering_escapes_names():
    text = render_symtab_asm([FunctionSymbol(0x8020_0000, 4, 'a"b\\c')])
    assert '.asciz "a\\042b\\134c"' in text
    assert ".quad 0x80200000, 0x4, .Lsymtab_name0" in text


@pytest.mark.qemu
@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_boots_under_qemu(built, irq, tmp_path):
    require_tool("qemu-system-riscv64")
    """boot.S brings up the fake hypervisor: symbol lookup, a secondary hart via HSM, SRST power-off -> exit 0."""
    cfg = make_config("qemu-virt", irq)
    cmd = qemu_command(RunOptions(cfg, built.elf, 2, "256M", "rv64"))
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    log = tmp_path / "serial.log"
    log.write_text(proc.stdout + proc.stderr)
    assert "fake-hyp: hyp_main is hyp_main" in proc.stdout, log.read_text()
    assert "fake-hyp: secondary hart up" in proc.stdout, log.read_text()
    assert "fake-hyp: power off" in proc.stdout
    assert proc.returncode == 0


@pytest.mark.qemu
@pytest.mark.parametrize(("irq", "mode"), [("plic", "0"), ("aia", "1")])
def test_compiled_minimal_hypervisor_boots(tmp_path, binutils, irq, mode):
    """The real compiler, the generated hypervisor.board module, boot.S and the linker script, end to end."""
    require_tool("qemu-system-riscv64")
    import compiler.driver  # noqa: F401  (a compiler that cannot be imported fails this test)
    from qemu.build import RUNTIME_DIR

    cfg = make_config("qemu-virt", irq)
    built = build(
        cfg, tmp_path / "out", sources=[FIXTURES / "mini_hyp.py"], runtime=[RUNTIME_DIR / "boot.S"], quiet=True
    )
    proc = subprocess.run(
        qemu_command(RunOptions(cfg, built.elf, 1, "256M", "rv64")),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert f"OK{cfg.board.max_harts}{mode}" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0
