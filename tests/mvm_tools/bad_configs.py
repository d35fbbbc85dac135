"""Bad GVM configs as edits of the shipped vm1.json, with a piece of the error each must give: used by
test_cli.py on the host and meant for the MVM boot test, which makes them in the MVM's shell with `sed_line` from
/root/vm1.json and expects `shyper vm config` to exit 2 with the message.

Each edit replaces one exact piece of vm1.json's text (it occurs once), so it reads as a `sed` command.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BadConfig:
    name: str
    old: str
    new: str
    message: str  # in `shyper vm config`'s stderr (after "shyper: FILE: ")

    def apply(self, text: str) -> str:
        assert text.count(self.old) == 1, self.old
        return text.replace(self.old, self.new)

    def sed_line(self, src: str = "vm1.json", dst: str | None = None) -> str:
        """The MVM shell command that writes this bad config as `dst` (default bad-NAME.json)."""
        for ch in "|\\&'":
            assert ch not in self.old + self.new
        return f"sed 's|{self.old}|{self.new}|' {src} > {dst or f'bad-{self.name}.json'}"


BAD_CONFIGS = (
    BadConfig(
        "length",
        '"length": "0x8000000"',
        '"length": "0x8000100"',
        "memory.region[0].length: 0x8000100 is not a multiple of 4096",
    ),
    BadConfig(
        "bitmap",
        '"allocate_bitmap": "0b0100"',
        '"allocate_bitmap": "0b1100"',
        "cpu.allocate_bitmap: 0b1100 has 2 harts, more than cpu.num 1",
    ),
    BadConfig("master", '"master": 2', '"master": 1', "cpu.master: hart 1 is not in cpu.allocate_bitmap 0b100"),
    BadConfig(
        "kernel",
        "/var/lib/shyper/Image",
        "/var/lib/shyper/NoImage",
        "image.kernel_filename: /var/lib/shyper/NoImage: No such file or directory",
    ),
    BadConfig("field", '"cmdline"', '"cmd_line"', "cmd_line: unknown field"),
    BadConfig(
        "device",
        "EMU_DEVICE_T_VIRTIO_CONSOLE",
        "EMU_DEVICE_T_VIRTIO_NET",
        "emulated_device.emulated_device_list[0].type: EMU_DEVICE_T_VIRTIO_NET: virtio-net is not served to GVMs yet",
    ),
    BadConfig(
        "ramdisk",
        '"ramdisk_load_ipa": "0x84000000"',
        '"ramdisk_load_ipa": "0x88000000"',
        "image.ramdisk_load_ipa: 0x88000000 .. ",
    ),
)
