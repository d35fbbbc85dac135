"""`just bench-gvm`'s report (qemu/pyshyper_host/bench/gvm.py) from measurements, without QEMU: the boot ratio
against the native baseline, the load throughput, the GVM's boot less the load, the round trip, a failed mode."""

from __future__ import annotations

from pyshyper_host.bench import gvm


def test_report_gives_ratio_throughput_and_round_trip():
    ok = gvm.HvResult("plic", walls=[30.0, 20.0, 25.0], loads=[(31.5, 3.0), (31.5, 5.0), (31.5, 4.5)])
    ok.ping_median_us, ok.ping_min_us = 850.0, 600.0
    bad = gvm.HvResult("aia", error="TIMEOUT: no prompt\nmore")
    text = gvm.report([9.0, 10.0, 11.0], [ok, bad], 3, 200)
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[1] == "| native QEMU (1 hart, 128M) | 10.00 | 1.00 | - | 10.00 | - |"
    assert rows[2] == (
        "| hypervisor, plic (`shyper vm boot` + console) | 25.00 | 2.50 | 31.5 MiB in 4.50 s = 7.0 MiB/s | 20.50 | "
        "850 us (min 600) (200) |"
    )
    assert rows[3].startswith("| hypervisor, aia | failed: TIMEOUT: no prompt |")


def test_booted_line_is_parsed():
    m = gvm.BOOTED.search("vm 1: booted (31.5 MiB loaded in 2.10 s)")
    assert m and (float(m.group(1)) * gvm.UNIT[m.group(2)], float(m.group(3))) == (31.5, 2.10)
    p = gvm.PING.search("... 200 requests, median 812 us, min 640 us, max 3120 us")
    assert p and p.groups() == ("812", "640", "3120")
