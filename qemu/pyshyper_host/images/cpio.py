"""An uncompressed ``newc`` cpio writer (the MVM initramfs, every mtime fixed so that the archive is reproducible)
and a reader for checking one."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FIXED_MTIME = 0


@dataclass
class Entry:
    kind: str  # "dir", "file", "link", "chr"
    mode: int = 0o755
    data: bytes = b""
    src: Path | None = None
    target: str = ""
    rdev: tuple[int, int] = (0, 0)


@dataclass
class Tree:
    entries: dict[str, Entry] = field(default_factory=dict)

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p and p not in self.entries:
                self.entries[p] = Entry("dir", 0o755)

    def add(self, path: str, entry: Entry) -> None:
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = entry

    def dir(self, path: str, mode: int = 0o755) -> None:
        self.add(path, Entry("dir", mode))

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.add(path, Entry("file", mode, data=data))

    def link(self, path: str, target: str) -> None:
        self.add(path, Entry("link", 0o777, target=target))

    def add_tree(self, root: Path, prefix: str = "", keep: Callable[[str], bool] = lambda p: True) -> None:
        """Copy a directory tree (as extracted by dpkg-deb) into the image under ``prefix``."""
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames.sort()
            for name in list(dirnames) + sorted(filenames):
                rel = os.path.join(rel_dir, name)
                dest = os.path.join(prefix, rel).strip("/")
                if not keep(dest):
                    if name in dirnames:
                        dirnames.remove(name)
                    continue
                full = Path(dirpath) / name
                st = full.lstat()
                if stat.S_ISLNK(st.st_mode):
                    self.add(dest, Entry("link", 0o777, target=os.readlink(full)))
                    if name in dirnames:
                        dirnames.remove(name)  # do not follow
                elif stat.S_ISDIR(st.st_mode):
                    self.add(dest, Entry("dir", stat.S_IMODE(st.st_mode)))
                elif stat.S_ISREG(st.st_mode):
                    self.add(dest, Entry("file", stat.S_IMODE(st.st_mode), src=full))

    def write_cpio(self, out: io.BufferedIOBase) -> int:
        total = 0
        ino = 1
        for path in sorted(self.entries):
            e = self.entries[path]
            if e.kind == "dir":
                mode, data, nlink = stat.S_IFDIR | e.mode, b"", 2
            elif e.kind == "file":
                data = e.src.read_bytes() if e.src is not None else e.data
                mode, nlink = stat.S_IFREG | e.mode, 1
            elif e.kind == "link":
                mode, data, nlink = stat.S_IFLNK | 0o777, e.target.encode(), 1
            elif e.kind == "chr":
                mode, data, nlink = stat.S_IFCHR | e.mode, b"", 1
            else:
                raise ValueError(e.kind)
            total += _cpio_record(out, path, mode, data, nlink, ino, e.rdev)
            ino += 1
        total += _cpio_record(out, "TRAILER!!!", 0, b"", 1, 0, (0, 0))
        pad = (-total) % 512
        out.write(b"\0" * pad)
        return total + pad


def _cpio_record(
    out: io.BufferedIOBase, name: str, mode: int, data: bytes, nlink: int, ino: int, rdev: tuple[int, int]
) -> int:
    nameb = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, nlink, FIXED_MTIME, len(data), 0, 0, rdev[0], rdev[1], len(nameb), 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    rec = hdr + nameb
    rec += b"\0" * ((-len(rec)) % 4)
    rec += data
    rec += b"\0" * ((-len(rec)) % 4)
    out.write(rec)
    return len(rec)


def read_cpio(data: bytes) -> dict[str, tuple[int, bytes]]:
    """Parse a newc cpio: name -> (mode, data). For tests and inspection."""
    out = {}
    pos = 0
    while pos + 110 <= len(data):
        hdr = data[pos : pos + 110]
        if hdr[:6] != b"070701":
            raise ValueError(f"bad cpio magic at {pos}")
        f = [int(hdr[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        pos = name_start + namesize
        pos += (-pos) % 4
        body = data[pos : pos + size]
        pos += size
        pos += (-pos) % 4
        if name == "TRAILER!!!":
            break
        out[name] = (mode, body)
    return out
