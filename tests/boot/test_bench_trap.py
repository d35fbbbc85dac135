"""The trap microbenchmark (`just bench-trap`): its guest runs under the hypervisor and natively, and prints the
figures the table is made of. Nothing here asserts a time or a count of instructions: only that every operation
was measured, the table has its shape, and the second hart took the IPIs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from boards import make_config
from boards.mvm import load_mvm
from pyshyper_host.bench import trap
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
GUEST = (ROOT / "tests/guests/bench/guest.py").read_text()

SAMPLE = """bench: irq plic hart 0 other 1
bench: registers kept
bench: nop n 1000 instret 7000 time 30
bench: sbi_null n 1000 instret 157000 time 630
bench: mmio_load n 1000 instret 307000 time 800
bench: mmio_store n 1000 instret 308000 time 810
bench: set_timer n 1000 instret 407000 time 1000
bench: ipi n 1000 instret 907000 time 3000
bench: ipis received 12
bench: done
"""


def test_guest_addresses_are_the_boards():
    """The guest's register addresses are mvm.toml's emulated PLIC and APLIC bases plus the spec's offsets."""
    mvm = load_mvm(make_config("qemu-virt", "plic", None).board)
    bases = {e.name: e.base for e in mvm.emulated}
    for name, const in (("plic", "PLIC_BASE"), ("aplic", "APLIC_BASE")):
        m = re.search(rf"^{const}: Final = u64\((0x[0-9A-Fa-f_]+)\)", GUEST, re.M)
        assert m is not None and int(m.group(1), 16) == bases[name], name


def test_parse_and_table():
    c = trap.parse(SAMPLE)
    assert (c.n, c.irq, c.ipis_received) == (1000, "plic", 12)
    assert c.instructions("sbi_null") == 150 and c.ns("sbi_null") == 60
    r = trap.Result("hypervisor, plic, htinst", icount=c, walls=[c])
    rows = trap.table([r, trap.Result("native (OpenSBI)", error="boom")]).splitlines()
    assert rows[0].startswith("| configuration | SBI null call: instr | ns |")
    assert rows[2] == "| hypervisor, plic, htinst | 150 | 60 | 300 | 77 | 301 | 78 | 400 | 97 | 900 | 297 |"
    assert rows[3].startswith("| native (OpenSBI) | failed: boom |")


def test_parse_reports_a_missing_operation():
    with pytest.raises(trap.BenchError, match="no figures for ipi"):
        trap.parse(re.sub(r"bench: ipi n .*\n", "", SAMPLE))
    with pytest.raises(trap.BenchError, match="did not finish"):
        trap.parse(SAMPLE.replace("bench: done", ""))
    with pytest.raises(trap.BenchError, match="did not check its registers"):
        trap.parse(SAMPLE.replace("bench: registers kept\n", ""))
    # the guest's check of the registers the hypervisor saves only when needed (start.S bench_regs_check)
    bad = "bench: FAILED: registers not kept across a trap (bit n: xn) 0x200\n"
    with pytest.raises(trap.BenchError, match=r"registers not kept across a trap \(bit n: xn\) 0x200"):
        trap.parse(SAMPLE.replace("bench: registers kept\n", bad))


@pytest.mark.qemu
@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_bench_guest_runs(irq, tmp_path):
    """One -icount run under the hypervisor (fetch decoding: the path without htinst) and one native: every
    operation measured, the other vCPU took the IPIs, and the table has a row of figures for each."""
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    hv = trap.hypervisor_config(irq, "fetch", out=tmp_path / "out")
    cfgs = [trap.native_config(tmp_path / "out"), hv] if irq == "plic" else [hv]
    results = [trap.measure(c, 0, True, 120) for c in cfgs]
    for r in results:
        assert r.error is None, r.error
        assert r.icount is not None and r.icount.n == 100000
        assert r.icount.ipis_received > 0
    assert results[-1].icount.irq == irq
    rows = trap.table(results).splitlines()
    assert len(rows) == 2 + len(cfgs)
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 1 + 2 * len(trap.OPS) and all(re.fullmatch(r"-?\d+", c) for c in cells[1::2]), row
