"""`just bench-boot`'s "where the wall time goes" table (qemu/pyshyper_host/bench/boot.py) and the timed serial log
it is read from (bench/console.py TimedLog), without QEMU: when a line arrived, the phases of each boot, their
medians and ratios against the baseline, a boot whose log lacks a line, a failed configuration."""

from __future__ import annotations

import pytest

from pyshyper_host.bench import boot
from pyshyper_host.bench.console import BOOT_MARKS, TimedLog


def test_time_of_is_when_the_text_was_complete(monkeypatch):
    clock = iter([1.0, 2.5, 4.0])
    monkeypatch.setattr("pyshyper_host.bench.console.time.monotonic", lambda: next(clock))
    log = TimedLog(t0=0.5)
    log.write("OpenSBI v1.5\r\n[vm0] [    0.000000] Linux ver")  # the line is split across two pieces
    log.write("sion 6.12\r\n[    1.6] Run /init as init process\r\n")
    log.write("mvm# ")
    assert log.getvalue().endswith("init process\r\nmvm# ")
    assert log.time_of("OpenSBI") == 0.5
    assert log.time_of(BOOT_MARKS["kernel"]) == 2.0  # complete only with the second piece
    assert log.time_of(BOOT_MARKS["init"]) == 2.0
    assert log.time_of("mvm# ") == 3.5
    assert log.time_of("not there") is None


def test_phase_table_gives_each_phase_and_its_ratio():
    native = boot.Measurement("native", walls=[5.0, 6.0, 7.0])
    native.marks = [
        {"kernel": 0.4, "init": 2.4, "shell": 5.0},
        {"kernel": 0.5, "init": 2.5, "shell": 6.0},
        {"kernel": 0.6, "init": 2.6, "shell": 7.0},
    ]
    hv = boot.Measurement("hypervisor, plic", walls=[6.0, 7.0])
    hv.marks = [{"kernel": 0.8, "init": 3.8, "shell": 6.0}, {"kernel": None, "init": 3.8, "shell": 7.0}]
    bad = boot.Measurement("hypervisor, aia", error="TIMEOUT")
    rows = [ln for ln in boot.phase_table([native, hv, bad]).splitlines() if ln.startswith("| ")]
    assert rows[1] == "| native | 0.50 | 1.00 | 2.00 | 1.00 | 3.50 | 1.00 |"
    # the boot without the kernel's line counts in the /init-to-shell phase only
    assert rows[2] == "| hypervisor, plic | 0.80 | 1.60 | 3.00 | 1.50 | 2.70 | 0.77 |"
    assert rows[3] == "| hypervisor, aia |  |  |  |  |  |  |"


def test_table_pairs_each_round_with_the_baselines():
    """The paired ratio: each alternated round's wall time over native's in that round, median and quartiles; a
    slow round (the host busy for everyone) moves the medians' ratio but hardly the paired one."""
    native = boot.Measurement("native", walls=[4.0, 4.0, 8.0, 4.0, 4.0], guest="2 cpu(s), 1000 MiB usable")
    hv = boot.Measurement("hypervisor, plic", walls=[4.4, 4.8, 8.8, 4.6, 4.4])
    few = boot.Measurement("hypervisor, aia", walls=[4.0, 6.0])
    bad = boot.Measurement("hypervisor, aia 2", error="TIMEOUT")
    assert boot.paired_ratios(hv, native) == [4.4 / 4.0, 4.8 / 4.0, 8.8 / 8.0, 4.6 / 4.0, 4.4 / 4.0]
    rows = [ln for ln in boot.table([native, hv, few, bad]).splitlines() if ln.startswith("| ")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert cells[0][5] == "paired ratio (quartiles)"
    assert cells[1][4:6] == ["1.00", "1.00 (1.00-1.00)"]
    assert cells[2][4:6] == ["1.15", "1.10 (1.10-1.15)"]
    assert cells[3][4:6] == ["1.25", "1.25"]  # fewer than 4 rounds: the median alone
    assert cells[4][3] == "failed" and len(cells[4]) == len(cells[0])


def test_table_gives_the_icount_figures_and_their_ratios():
    """The -icount columns: the shell's and /init's virtual times, each with its ratio to the baseline's."""
    native = boot.Measurement("native", walls=[4.0], icount_shell_ms=8000.0, icount_init_ms=1250.5)
    hv = boot.Measurement("hypervisor, plic", walls=[4.4], icount_shell_ms=4000.0, icount_init_ms=1313.025)
    rows = [ln for ln in boot.table([native, hv]).splitlines() if ln.startswith("| ")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert cells[0][6:] == ["boot to shell, icount (ms)", "ratio", "/init started, icount (ms)", "ratio"]
    assert cells[1][6:] == ["8000.0", "1.00", "1250.500", "1.000"]
    assert cells[2][6:] == ["4000.0", "0.50", "1313.025", "1.050"]


def test_icount_boot_k_pads_the_native_command_line_by_k_characters(tmp_path):
    """`-icount` boot k of a native command appends ` pyshyper_pad=` and k characters to `-append`; boot 0 is the
    command itself; the given list is not changed."""
    cmd = ["qemu-system-riscv64", "-append", "console=ttyS0 rdinit=/init", "-icount", "shift=0"]
    assert boot.icount_perturbed(cmd, 0, tmp_path) == cmd
    got = boot.icount_perturbed(cmd, 3, tmp_path)
    assert got[2] == "console=ttyS0 rdinit=/init pyshyper_pad=xxx" and got[:2] + got[3:] == cmd[:2] + cmd[3:]
    assert cmd[2] == "console=ttyS0 rdinit=/init" and list(tmp_path.iterdir()) == []


def test_icount_boot_k_pads_the_mvms_device_tree_bootargs(tmp_path):
    """Under the hypervisor the MVM's command line is /chosen/bootargs of the device tree QEMU's loader places:
    boot k gets a copy with the same padding (in the work directory), the original is left as it was, and a
    command with no command line at all is refused."""
    import fdt

    tree = fdt.FDT()
    tree.set_property("bootargs", "console=ttyS0 no4lvl", path="/chosen")
    tree.set_property("rng-seed", [0] * 16, path="/chosen")  # the hypervisor fills it (core/mvm.py)
    tree.set_property("reg", [0, 0xC000_0000, 0, 0x4000_0000], path="/memory@c0000000")
    src = tmp_path / "mvm-plic.dtb"
    src.write_bytes(tree.to_dtb(version=17))
    work = tmp_path / "work"
    work.mkdir()
    cmd = ["qemu", "-device", f"loader,file={src},addr=0xcc000000,force-raw=on", "-kernel", "pyshyper.elf"]
    got = boot.icount_perturbed(cmd, 2, work)
    dst = work / "mvm-plic-pad2.dtb"
    assert got == ["qemu", "-device", f"loader,file={dst},addr=0xcc000000,force-raw=on", "-kernel", "pyshyper.elf"]
    padded = fdt.parse_dtb(dst.read_bytes())
    assert padded.get_property("bootargs", "/chosen").value == "console=ttyS0 no4lvl pyshyper_pad=xx"

    def rest(t):
        return [line for line in t.to_dts().splitlines() if "bootargs" not in line]

    assert rest(padded) == rest(tree)  # everything else as it was
    assert fdt.parse_dtb(src.read_bytes()).get_property("bootargs", "/chosen").value == "console=ttyS0 no4lvl"
    with pytest.raises(ValueError, match="no kernel command line"):
        boot.icount_perturbed(["qemu", "-kernel", "Image"], 1, work)


def test_each_mode_is_compared_with_native_on_its_own_machine():
    """AIA mode runs on QEMU's AIA machine, so its ratios are against native Linux on that machine (its
    Measurement.base), PLIC mode's against native on the PLIC machine; the phase table alike. Native on the AIA
    machine is itself compared with the first row (what the machine costs), and so is a row whose base did not
    run."""
    marks = {"kernel": 0.5, "init": 2.0}
    native = boot.Measurement("native", walls=[4.0, 4.0], icount_init_ms=1000.0, marks=[{**marks, "shell": 4.0}] * 2)
    native_aia = boot.Measurement(
        "native, aia", walls=[5.0, 5.0], icount_init_ms=1250.0, marks=[{**marks, "shell": 5.0}] * 2
    )
    plic = boot.Measurement("hypervisor, plic", "native", walls=[4.4, 4.4], icount_init_ms=1100.0)
    aia = boot.Measurement("hypervisor, aia", "native, aia", walls=[5.5, 5.5], icount_init_ms=1300.0)
    aia.marks = [{**marks, "shell": 5.5}] * 2
    lost = boot.Measurement("hypervisor, aia 2", "native, aia 2", walls=[6.0, 6.0])
    ms = [native, native_aia, plic, aia, lost]
    assert [boot.baseline_of(m, ms).config for m in ms] == ["native", "native", "native", "native, aia", "native"]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in boot.table(ms).splitlines()[2:]]
    assert [(r[0], r[4], r[5], r[9]) for r in rows] == [
        ("native", "1.00", "1.00", "1.000"),
        ("native, aia", "1.25", "1.25", "1.250"),  # the AIA machine itself, against the PLIC machine
        ("hypervisor, plic", "1.10", "1.10", "1.100"),
        ("hypervisor, aia", "1.10", "1.10", "1.040"),
        ("hypervisor, aia 2", "1.50", "1.50", ""),
    ]
    phases = [[c.strip() for c in ln.strip("|").split("|")] for ln in boot.phase_table(ms).splitlines()[2:]]
    assert phases[3][0] == "hypervisor, aia" and phases[3][5:7] == ["3.50", "1.17"]  # /init to shell: 3.5 / 3.0


def test_native_on_the_aia_machine_is_the_aia_builds_machine(tmp_path):
    """`native, aia` boots on the -M an AIA build runs on (boards BuildConfig.qemu_machine), and the hypervisor's
    AIA configuration names it as its baseline; PLIC mode's baseline is plain `native`, on the PLIC build's
    machine (`virt,aclint=on`: the SSWI its IPIs use)."""
    from boards import make_config

    native_aia = boot.native_config(tmp_path, "1G", 3)
    cmd = native_aia.command(False, 2)
    assert cmd[cmd.index("-M") + 1] == make_config("qemu-virt", "aia", 3).qemu_machine
    plain = boot.native_config(tmp_path, "1G").command(False, 2)
    assert plain[plain.index("-M") + 1] == make_config("qemu-virt", "plic").qemu_machine == "virt,aclint=on"
    assert boot.hypervisor_config(tmp_path, irq="aia", aia_guests=3).base == native_aia.name
    assert boot.hypervisor_config(tmp_path, irq="plic").base == "native"
