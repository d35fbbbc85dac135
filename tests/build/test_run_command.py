"""The QEMU command line `pyshyper run` builds."""

from __future__ import annotations

from pathlib import Path

from boards import make_config
from qemu.cli import make_parser
from qemu.run import RunOptions, options_from_args, qemu_command


def opts(*argv: str) -> RunOptions:
    return options_from_args(make_parser().parse_args(["run", *argv]))


def test_default_command():
    cmd = qemu_command(opts("--out", "/tmp/x", "--guest", "none"))
    assert cmd == [
        "qemu-system-riscv64",
        "-M",
        "virt",
        "-cpu",
        "rv64",
        "-smp",
        "4",
        "-m",
        "1G",
        "-bios",
        "default",
        "-nographic",
        "-kernel",
        "/tmp/x/pyshyper.elf",
    ]


def test_aia_machine_options():
    cmd = qemu_command(opts("--irq", "aia", "--aia-guests", "3", "--smp", "2", "--mem", "2G"))
    assert cmd[cmd.index("-M") + 1] == "virt,aia=aplic-imsic,aia-guests=3"
    assert cmd[cmd.index("-smp") + 1] == "2"
    assert cmd[cmd.index("-m") + 1] == "2G"


def test_aia_default_guests():
    assert "virt,aia=aplic-imsic,aia-guests=3" in qemu_command(opts("--irq", "aia"))


def test_gdb_and_extra_arguments():
    cmd = qemu_command(opts("--gdb", "--", "-d", "guest_errors"))
    assert cmd[-4:] == ["-s", "-S", "-d", "guest_errors"]


def test_mvm_is_the_default():
    cmd = qemu_command(opts("--out", "/tmp/x", "--cache", "/tmp/c"))
    devices = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
    assert devices == [
        "loader,file=/tmp/c/Image,addr=0x90200000,force-raw=on",
        "loader,file=/tmp/c/mvm-initramfs.cpio,addr=0x94000000,force-raw=on",
        "loader,file=/tmp/x/mvm-plic.dtb,addr=0x9c000000,force-raw=on",
    ]
    assert "/tmp/x/guests/selftest.bin" not in " ".join(cmd)


def test_guest_image_loaded_at_board_address():
    cmd = qemu_command(opts("--guest", "selftest", "--out", "/tmp/x"))
    assert cmd[cmd.index("-device") + 1] == "loader,file=/tmp/x/guests/selftest.bin,addr=0x84000000,force-raw=on"


def test_options_dataclass_is_usable_directly():
    cfg = make_config("qemu-virt", "plic")
    cmd = qemu_command(RunOptions(cfg, Path("e.elf"), 1, "256M", "rv64"))
    assert "-kernel" in cmd and cmd[cmd.index("-kernel") + 1] == "e.elf"
