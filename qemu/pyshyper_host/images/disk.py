"""The MVM's images disk: an ext4 file system image made by ``mke2fs -d`` from a directory (no root, no loop
device), labelled ``shyper-images``; the MVM's /init mounts it at /var/lib/shyper.

``pyshyper run`` attaches it with ``snapshot=on``: the MVM reads and writes it as it likes, but its writes go to a
temporary overlay that QEMU drops at exit, so the cached image never changes (its sha256 in the manifest stays
true, several runs may use it at once, and every run starts from the same disk).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

DISK_LABEL = "shyper-images"
# Room for the GVMs' files besides what the build puts there (a user copies a config or an image in at run time).
DISK_FREE = 64 << 20
# Fixed so that the same files make the same image (mke2fs would pick a random UUID and hash seed).
DISK_UUID = "5e7f3c2a-6d1b-4c8e-9a40-7b1f0d2e3c45"


def make_ext4(files: dict[str, Path], out: Path, label: str = DISK_LABEL, free: int = DISK_FREE) -> int:
    """An ext4 image at `out` holding `files` (name in the file system's root -> file on the host), owned by root,
    with `free` bytes to spare. Returns its size. Raises RuntimeError when mke2fs is missing or fails."""
    mke2fs = shutil.which("mke2fs") or next((p for p in ("/usr/sbin/mke2fs", "/sbin/mke2fs") if Path(p).exists()), None)
    if mke2fs is None:
        raise RuntimeError("mke2fs not found: install e2fsprogs (qemu/setup-host.sh does)")
    data = sum(p.stat().st_size for p in files.values())
    size_mib = (data + free + (1 << 20) - 1) >> 20
    size_mib += max(8, size_mib // 20)  # ext4's own metadata: journal, inode tables, bitmaps
    tmp = out.with_suffix(".tmp")
    with tempfile.TemporaryDirectory(prefix="pyshyper-disk-") as d:
        root = Path(d)
        for name, src in files.items():
            shutil.copyfile(src, root / name)
            (root / name).chmod(0o644)
        root.chmod(0o755)
        tmp.unlink(missing_ok=True)
        cmd = [
            mke2fs,
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            label,
            "-U",
            DISK_UUID,
            "-E",
            f"root_owner=0:0,hash_seed={DISK_UUID}",
            "-d",
            str(root),
            str(tmp),
            f"{size_mib}M",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mke2fs failed ({r.returncode}): {r.stderr.strip()}")
    tmp.replace(out)
    return out.stat().st_size
