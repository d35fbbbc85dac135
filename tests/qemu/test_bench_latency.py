"""`just bench-latency` (qemu/pyshyper_host/bench/latency.py) without QEMU: the latency guest's console output
parsed (and refused when a line is lost), median / nearest-rank p99 / max, the histogram's bins, the merge of two
VMs' run intervals into switch costs, the report's rows, and a config `shyper vm config` refuses being a failure
(its row, the exit status) with nothing retried differently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyshyper_host.bench import latency


def guest_output(samples: list[int], per_line: int = 4, timebase: int = 10_000_000) -> str:
    lines = [f"latency: up timebase {timebase} timer sstc mode timer n {len(samples)} min 2000 max 6000 seed 1"]
    for i in range(0, len(samples), per_line):
        lines.append(f"latency: s {i} " + " ".join(f"{v:x}" for v in samples[i : i + per_line]))
    lines.append(f"latency: done n {len(samples)} sum {sum(samples)} min {min(samples)} max {max(samples)} early 0")
    return "\n".join(lines) + "\n"


SAMPLES = [30, 31, 29, 250, 33, 30, 28, 1200, 31, 32]


def test_parse_timer_run():
    run = latency.parse_timer(guest_output(SAMPLES))
    assert (run.timebase, run.timer, run.samples) == (10_000_000, "sstc", SAMPLES)


def test_parse_takes_out_hypervisor_lines_and_carriage_returns():
    text = guest_output(SAMPLES).replace("latency: s 4 ", "latency: s 4 pyshyper: vm3 created (x)\n")
    assert "pyshyper:" in text
    assert latency.parse_timer(text.replace("\n", "\r\n")).samples == SAMPLES


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: re.sub(r"latency: s 4 .*\n", "", t), "a line is missing or cut: index 8 after 4"),
        (lambda t: t.replace(" 1f ", " 1e "), "samples lost or garbled"),
        (lambda t: re.sub(r"latency: done.*\n", "", t), "did not finish"),
        (lambda t: t.replace("early 0", "early 2"), "2 interrupt\\(s\\) came before their deadline"),
        (lambda t: t + "latency: unexpected trap, scause 0x2 sepc 0x80000100 stval 0x0\n", "the guest failed"),
        (lambda t: t.replace("mode timer", "mode switch"), "no `latency: up"),
    ],
)
def test_parse_refuses_a_broken_run(change, message):
    with pytest.raises(latency.LatencyError, match=message):
        latency.parse_timer(change(guest_output(SAMPLES)))


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert latency.percentile(values, 99) == 99
    assert latency.percentile(values, 50) == 50
    assert latency.percentile(values, 100) == 100
    assert latency.percentile([7], 99) == 7
    assert latency.percentile(list(range(1, 1001)), 99) == 990
    assert latency.percentile([5, 1, 9, 3], 99) == 9  # unsorted input
    with pytest.raises(ValueError):
        latency.percentile([], 99)


def test_summary():
    s = latency.summarize(SAMPLES)
    assert (s.n, s.median, s.p99, s.max, s.min) == (10, 31, 1200, 1200, 28)
    s = latency.summarize([4, 1, 3])
    assert (s.median, s.p99, s.max, s.min) == (3, 4, 4, 1)


def test_log_edges_span_the_values_geometrically():
    e = latency.log_edges(10, 10000, 3)
    assert e == pytest.approx([10, 100, 1000, 10000])
    assert latency.log_edges(0, 0, 2)[0] == 1 and latency.log_edges(0, 0, 2)[-1] == 2  # a floor of 1, a width


def test_histogram_bins():
    edges = [10.0, 100.0, 1000.0]
    # [10, 100) and [100, 1000] (the last bin closed); values outside fall in the first or last bin
    assert latency.histogram([10, 99, 100, 999, 1000, 5, 5000], edges) == [3, 4]
    counts = latency.histogram(SAMPLES, latency.log_edges(min(SAMPLES), max(SAMPLES), 8))
    assert sum(counts) == len(SAMPLES) and counts[0] > 0 and counts[-1] == 1


def switch_output(intervals: list[tuple[int, int]]) -> str:
    values = [v for pair in intervals for v in pair]
    lines = ["latency: up timebase 10000000 timer sstc mode switch slices 64 gap 64 until 2000"]
    for i in range(0, len(values), 8):
        lines.append(f"latency: i {i} " + " ".join(f"{v:x}" for v in values[i : i + 8]))
    lines.append(f"latency: done intervals {len(intervals)}")
    return "\n".join(lines) + "\n"


def test_parse_switch():
    pairs = [(100, 200), (900, 1500), (2100, 2600), (3000, 3100), (4000, 4100)]
    assert latency.parse_switch(switch_output(pairs)) == pairs
    with pytest.raises(latency.LatencyError, match="out of order"):
        latency.parse_switch(switch_output([(100, 200), (150, 300)]))
    with pytest.raises(latency.LatencyError, match="did not finish"):
        latency.parse_switch(switch_output(pairs).replace("done intervals", "done"))


def test_switch_costs_merge_two_vms():
    # A runs [0,1000], B [1300,2000], A [2250,3000] with a break of its own to [3040,4000], B [4300,5000],
    # A [5200,6000]. Only gaps inside [1300, 5000] count: before B's first read B may have run unrecorded (its
    # start), after its last read too (its output), so 1000..1300 and 5000..5200 are out.
    a = [(0, 1000), (2250, 3000), (3040, 4000), (5200, 6000)]
    b = [(1300, 2000), (4300, 5000)]
    c = latency.switch_costs(a, b)
    assert c.switches == [250, 300]  # B->A, A->B (after A's own break)
    assert c.same_vm == [40]
    assert latency.switch_costs(a, []) == latency.SwitchCosts([], [])
    assert latency.own_breaks(a) == [1250, 40, 1200]


def test_switch_costs_ignore_the_stretch_before_both_record():
    a = [(0, 100), (200, 300), (400, 500), (1000, 1100)]  # A alone until B starts at 600
    b = [(600, 900), (1200, 1300)]
    c = latency.switch_costs(a, b)
    assert c.switches == [100]  # 900 -> 1000; 500 -> 600 starts before B's record, 1100 -> 1200 ends after A's
    assert c.same_vm == []  # A's breaks before B records may hide B's start


def test_report_rows():
    run = latency.parse_timer(guest_output(SAMPLES))
    ok = latency.ModeResult(
        "plic",
        [
            latency.Case("alone", run=run),
            latency.Case("shared", error="`shyper vm config` refused latency (exit status 1): EBUSY: hart 2"),
        ],
    )
    bad = latency.ModeResult("aia", [latency.Case("alone", error="no 'done' in 120 s\nmore")])
    rows = latency.table([ok, bad]).splitlines()
    assert rows[2] == ("| plic | alone | sstc | 10 | 31 (3.1 us) | 1200 (120.0 us) | 1200 (120.0 us) | 10 MHz |")
    assert rows[3].startswith("| plic | shared: failed: `shyper vm config` refused latency (exit status 1): EBUSY")
    assert rows[4].startswith("| aia | alone: failed: no 'done' in 120 s |")
    assert latency.failures([ok, bad], None) == [
        "plic: shared: `shyper vm config` refused latency (exit status 1): EBUSY: hart 2",
        "aia: alone: no 'done' in 120 s\nmore",
    ]
    sw = latency.SwitchResult("plic", error="`shyper vm config` refused switch-b", costs=latency.SwitchCosts([], []))
    srows = latency.switch_table(sw).splitlines()
    assert srows[2].startswith("| context switch: failed: `shyper vm config` refused switch-b |")
    assert latency.failures([], sw) == ["switch: `shyper vm config` refused switch-b"]
    sw = latency.SwitchResult("plic", costs=latency.SwitchCosts([], [40, 50, 45]))
    srows = latency.switch_table(sw).splitlines()
    assert srows[2] == "| a VM's own break, no switch (instructions) | 3 | 40 | 45 | 50 | 50 |"
    section = "\n".join(latency.report_section([ok], sw, 10, None))
    assert section.startswith("## Timer-interrupt latency and context switch")


def test_guest_config_places_the_guest():
    cfg = latency.guest_config("latency", 2, 10, latency.timer_cmdline(200, 200, 600, 1))
    assert cfg["cpu"] == {"num": 1, "allocate_bitmap": "0b0100", "master": 2, "priority": 10}
    assert cfg["cmdline"] == "mode=timer n=200 min_us=200 max_us=600 seed=1"
    assert cfg["type"] == "VM_T_BARE_METAL" and cfg["image"]["kernel_filename"] == "latency.bin"
    linux = latency.linux_config(2, 0)
    assert linux["cpu"]["allocate_bitmap"] == "0b0100" and linux["cpu"]["priority"] == 0


def test_switch_table_has_the_hypervisors_own_count():
    """The statistics page's count for the switch hart (switches, their instructions in all) is its own row, the
    mean per switch; with no switch counted there is no such row."""
    res = latency.SwitchResult("plic", hv_switches=(4, 4 * 8306 + 2), hv_fences=(2, 0))
    table = latency.switch_table(res)
    assert "| the hypervisor's own count on hart 3" in table and "| 4 | | 8306 (mean) |" in table, table
    assert "| vCPU entries on hart 3 that fenced the TLB: all of the VMID's / the VS stage only" in table, table
    assert "| 2 / 0 |" in table, table
    assert "hypervisor's own count" not in latency.switch_table(latency.SwitchResult("plic", hv_switches=(0, 0)))


class RefusingShell:
    """The MVM's shell as latency.Mvm drives it, with `shyper vm config` refusing every config that has
    `cpu.priority` (as a shyper without the scheduler's field did); every other command succeeds."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.files: dict[str, str] = {}

    def run(self, command: str, timeout: float | None = None) -> tuple[str, int]:
        self.commands.append(command)
        if m := re.match(r"echo '(.*)' >> (\S+)\.b64$", command):
            self.files[m.group(2)] = self.files.get(m.group(2), "") + m.group(1)
        if m := re.match(r"shyper vm config (\S+)$", command):
            import base64
            import json

            cfg = json.loads(base64.b64decode(self.files.pop(m.group(1))))
            if "priority" in cfg["cpu"]:
                return "shyper: cpu.priority: unknown field\n", 2
            return "1\n", 0
        return "", 0

    def poweroff(self, timeout: float = 60.0) -> int:
        return 0

    def save_failure(self, path: Path) -> str:
        return ""

    def close(self) -> None:
        pass


def test_a_refused_config_is_a_failure(tmp_path, monkeypatch, capsys):
    """A config refused by `shyper vm config` (here `cpu.priority`) is not given again without the field, nor
    shown as "not possible": each case it stops is a failed row, and main() exits 1 naming them."""
    from pyshyper_host.images import initramfs as images
    from pyshyper_host.run import command

    shells: list[RefusingShell] = []

    def start_shell(cmd, timeout):
        shells.append(RefusingShell())
        return shells[-1], 0.0, None

    for irq in ("plic", "switch"):
        (tmp_path / "build" / "bench" / f"latency-{irq}" / "guests").mkdir(parents=True)
        (tmp_path / "build" / "bench" / f"latency-{irq}" / "guests" / "latency.bin").write_bytes(b"\x13\0\0\0")
    monkeypatch.setattr(latency, "ROOT", tmp_path)
    monkeypatch.setattr(latency, "start_shell", start_shell)
    monkeypatch.setattr(command, "mvm_qemu_command", lambda *a, **k: ["qemu"])
    monkeypatch.setattr(images, "main", lambda argv: 0)
    report = tmp_path / "latency.md"
    rc = latency.main(["--irq", "plic", "--report", str(report), "--cache", str(tmp_path)])
    assert rc == 1
    configs = [c for sh in shells for c in sh.commands if c.startswith("shyper vm config")]
    assert configs == [
        "shyper vm config /root/latency.json",  # alone
        "shyper vm config /root/latency-linux.json",  # shared: the Linux GVM, and no latency guest after it
        "shyper vm config /root/switch-a.json",  # the switch: its first recorder, and no boot
    ], configs
    assert not any(c.startswith("shyper vm boot") for sh in shells for c in sh.commands)
    text = report.read_text()
    assert "| plic | alone: failed: `shyper vm config` refused latency (exit status 2): shyper: cpu.priority" in text
    assert "| plic | shared: failed: the Linux GVM: `shyper vm config` refused " in text
    assert "| context switch: failed: `shyper vm config` refused switch-a (exit status 2)" in text
    assert "not possible" not in text
    err = capsys.readouterr().err
    assert err.count("bench-latency: failed:") == 3, err
