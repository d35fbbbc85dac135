"""The QEMU command line `pyshyper run` builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boards import make_config
from pyshyper_host.cli import make_parser
from pyshyper_host.run.command import RunOptions, options_from_args, qemu_command


def opts(*argv: str) -> RunOptions:
    return options_from_args(make_parser().parse_args(["run", *argv]))


def test_default_command():
    cmd = qemu_command(opts("--out", "/tmp/x", "--guest", "none"))
    assert cmd == [
        "qemu-system-riscv64",
        "-M",
        "virt,aclint=on",  # PLIC mode: board.toml [sswi] qemu_option, the SSWI the hypervisor's IPIs use
        "-cpu",
        "rv64,v=true,svnapot=true",  # board.toml qemu_cpu: QEMU 10's rv64 plus V and Svnapot
        "-smp",
        "4",
        "-m",
        "2G",
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
    assert cmd[-5:] == ["-gdb", "tcp:127.0.0.1:1234", "-S", "-d", "guest_errors"]


def test_gdb_port_implies_gdb():
    cmd = qemu_command(opts("--gdb-port", "4321"))
    assert cmd[-3:] == ["-gdb", "tcp:127.0.0.1:4321", "-S"]
    assert "-S" not in qemu_command(opts())


def test_gdb_command_attaches_to_the_stub(capsys):
    from pyshyper_host.cli import main

    assert main(["gdb", "--out", "/tmp/x", "--port", "4321", "--print-command", "--", "-batch", "-ex", "bt"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == (
        "gdb-multiarch -q -ex 'set pagination off' -ex 'target remote 127.0.0.1:4321' -batch -ex bt /tmp/x/pyshyper.elf"
    )


def test_gdb_rejects_a_bad_port(capsys):
    from pyshyper_host.cli import main

    with pytest.raises(SystemExit) as e:
        main(["gdb", "--port", "70000"])
    assert e.value.code == 2
    assert "a TCP port is 1..65535" in capsys.readouterr().err


def test_mvm_is_the_default():
    cmd = qemu_command(opts("--out", "/tmp/x", "--cache", "/tmp/c"))
    devices = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
    assert devices == [
        "loader,file=/tmp/c/Image,addr=0xc0200000,force-raw=on",
        "loader,file=/tmp/c/mvm-initramfs.cpio,addr=0xc4000000,force-raw=on",
        "loader,file=/tmp/x/mvm-plic.dtb,addr=0xcc000000,force-raw=on",
        "virtio-blk-device,drive=shyper-images",  # the images disk: QEMU puts it on virtio-mmio slot 0x1000_8000
    ]
    assert cmd[cmd.index("-drive") + 1] == "file=/tmp/c/mvm-disk.img,if=none,format=raw,id=shyper-images,snapshot=on"
    assert "/tmp/x/guests/selftest.bin" not in " ".join(cmd)


def test_guest_image_loaded_at_board_address():
    cmd = qemu_command(opts("--guest", "selftest", "--out", "/tmp/x"))
    assert cmd[cmd.index("-device") + 1] == "loader,file=/tmp/x/guests/selftest.bin,addr=0x84000000,force-raw=on"


def test_options_dataclass_is_usable_directly():
    cfg = make_config("qemu-virt", "plic")
    cmd = qemu_command(RunOptions(cfg, Path("e.elf"), 1, "256M", "rv64"))
    assert "-kernel" in cmd and cmd[cmd.index("-kernel") + 1] == "e.elf"


def test_boot_hart_adds_qemus_tree_with_opensbis_choice(tmp_path):
    """`--boot-hart N`: QEMU's own device tree for the same machine, plus /chosen/opensbi-config naming cpu@N by its
    phandle as the only cold-boot hart, given with -dtb (and written before the command is printed)."""
    import fdt

    from pyshyper_host.run.command import write_boot_hart_dtb
    from tests.conftest import require_tool

    require_tool("qemu-system-riscv64")
    o = opts("--out", str(tmp_path), "--guest", "none", "--irq", "aia", "--smp", "3", "--boot-hart", "2")
    cmd = qemu_command(o)
    assert cmd[cmd.index("-dtb") + 1] == str(tmp_path / "qemu-boot-hart2.dtb")
    tree = fdt.parse_dtb(write_boot_hart_dtb(o, o.dtb).read_bytes())
    config = tree.get_node("/chosen/opensbi-config")
    assert config.get_property("compatible").value == "opensbi,config"
    phandle = config.get_property("cold-boot-harts").data
    assert phandle == tree.get_node("/cpus/cpu@2").get_property("phandle").data
    assert len([n for n in tree.get_node("/cpus").nodes if n.name.startswith("cpu@")]) == 3
    compatibles = {str(v) for n in tree.get_node("/soc").nodes if (c := n.get_property("compatible")) for v in c}
    assert "riscv,aplic" in compatibles and "riscv,plic0" not in compatibles  # the same machine: AIA's controllers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qemu-boot-hart2.dtb"]  # QEMU's dump is removed


def test_boot_hart_must_be_a_hart_of_the_machine(capsys):
    from pyshyper_host.cli import main

    assert main(["run", "--guest", "none", "--smp", "2", "--boot-hart", "2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "pyshyper run: error: --boot-hart must be a hart of the machine, 0..1, not 2"
    assert main(["run", "--guest", "none", "--boot-hart", "-1"]) == 2
    assert "0..3, not -1" in capsys.readouterr().err


def test_debug_is_an_unoptimized_build_configuration(tmp_path):
    from pyshyper_host.build.pipeline import config_from_args, stale_reason

    assert opts("--debug").config.opt == 0 and opts().config.opt == 2
    built = config_from_args(make_parser().parse_args(["build", "--debug"]))
    assert built.opt == 0 and built.key()["opt"] == 0
    # An image built one way is stale for the other: `pyshyper run` rebuilds rather than boot the wrong one.
    (tmp_path / "pyshyper.elf").write_bytes(b"")
    (tmp_path / "build.json").write_text(json.dumps({**built.key(), "elf": "pyshyper.elf"}))
    assert stale_reason(opts().config, tmp_path) is not None
    assert not (stale_reason(built, tmp_path) or "").startswith("configuration changed")


def test_stage2_leaf_is_a_build_configuration(tmp_path, capsys):
    """`--stage2-leaf 4k|2m|max` (build and run) reaches the hypervisor as STAGE2_LEAF_MAX, the largest leaf in bytes
    (stage2_leaves_set), and an image built with one is stale for another."""
    from boards.constants import render_hypervisor_module
    from pyshyper_host.build.pipeline import config_from_args, stale_reason

    assert opts().config.stage2_leaf == "max"
    for leaf, size in (("4k", 0x1000), ("2m", 0x20_0000), ("max", 0x4000_0000)):
        built = config_from_args(make_parser().parse_args(["build", "--stage2-leaf", leaf]))
        assert opts("--stage2-leaf", leaf).config == built
        assert built.stage2_leaf_max == size and built.key()["stage2_leaf"] == leaf
        assert f"STAGE2_LEAF_MAX: Final = u64({size:#x})" in render_hypervisor_module(built)
    small = config_from_args(make_parser().parse_args(["build", "--stage2-leaf", "4k"]))
    (tmp_path / "pyshyper.elf").write_bytes(b"")
    (tmp_path / "build.json").write_text(json.dumps({**small.key(), "elf": "pyshyper.elf"}))
    assert (stale_reason(opts().config, tmp_path) or "").startswith("configuration changed")
    from pyshyper_host.cli import main

    with pytest.raises(SystemExit) as e:
        main(["build", "--stage2-leaf", "1g"])
    assert e.value.code == 2
    assert "argument --stage2-leaf: invalid choice: '1g'" in capsys.readouterr().err
