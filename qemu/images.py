"""Guest images for PyShyper: Debian trixie's riscv64 kernel and the MVM initramfs.

``pyshyper images`` (or ``python -m qemu.images``) fetches riscv64 packages from Debian trixie with
``apt-get download`` through a private apt configuration under the cache directory (the host's own apt
configuration is never touched), extracts them with ``dpkg-deb -x`` and builds:

- ``Image``: the kernel, a flat RISC-V Image (Debian ships it uncompressed with an EFI stub header), usable
  with QEMU ``-kernel`` and by the hypervisor's loader;
- ``mvm-initramfs.cpio``: an uncompressed ``newc`` cpio with busybox-static, the kernel modules the MVM needs
  (decompressed from ``.ko.xz``, loaded in dependency order by ``/init``), and python3.13 with its standard
  library;
- ``manifest.json``: package versions, sizes and sha256 of everything above.

The archive URI is derived from the machine's own Debian source entry; no host name is written here.
A second run with the same package versions and the same recipe does nothing and says so.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

SUITE = "trixie"
ARCH = "riscv64"
TRIPLET = "riscv64-linux-gnu"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_SOURCES = "/etc/apt/sources.list.d/debian.sources"
SOURCES_LIST = "/etc/apt/sources.list"
KERNEL_SERIES = "6.12"
PY = "python3.13"

# Roots of the python closure; their Depends/PreDepends are followed recursively, but only into shared
# libraries (names starting with "lib", plus zlib1g), which keeps data and tool packages out.
PYTHON_ROOTS = ("python3.13-minimal", "libpython3.13-minimal", "libpython3.13-stdlib")
LIBRARY_EXTRA = ("zlib1g",)
# Shared libraries python3.13 may pull in that the MVM does not need.
LIBRARY_SKIP = frozenset({"libdb5.3t64", "gcc-14-base"})

# Kernel modules the MVM loads at boot (their dependencies are added from .modinfo).
MVM_MODULES = (
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "vsock",
    "vmw_vsock_virtio_transport",
)

# Pruned from the python standard library to keep the initramfs small.
STDLIB_PRUNE = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "__pycache__"}
)

GUEST_DIR = Path(__file__).resolve().parent / "guest"
FIXED_MTIME = 0


def log(msg: str) -> None:
    print(f"images: {msg}", flush=True)


# ----------------------------------------------------------------------------------------------------------
# pure helpers


def derive_archive_uri(debian_sources: str | None, sources_list: str | None) -> str | None:
    """The Debian archive URI from deb822 ``debian.sources`` text (first ``URIs:`` line) or, failing that,
    from a one-line ``sources.list`` (first ``deb`` line that is not a security archive)."""
    if debian_sources:
        for line in debian_sources.splitlines():
            m = re.match(r"\s*URIs:\s*(\S+)", line)
            if m:
                return m.group(1).rstrip("/")
    if sources_list:
        for line in sources_list.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line.startswith("deb "):
                continue
            words = line.split()[1:]
            if words and words[0].startswith("["):  # options: [arch=... signed-by=...]
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = words[1:]
            if words and "security" not in words[0]:
                return words[0].rstrip("/")
    return None


def sources_line(uri: str, suite: str = SUITE, keyring: str = KEYRING) -> str:
    return f"deb [arch={ARCH} signed-by={keyring}] {uri} {suite} main\n"


def _version_key(name: str) -> tuple[int, ...]:
    m = re.match(r"linux-image-(\d+)\.(\d+)\.(\d+)", name)
    return tuple(int(x) for x in m.groups()) if m else ()


def newest_kernel(names: Iterable[str], series: str = KERNEL_SERIES) -> str | None:
    """Newest ``linux-image-<series>.N+debXX-riscv64`` package name (not -dbg, -unsigned)."""
    pat = re.compile(r"^linux-image-" + re.escape(series) + r"\.\d+[^ ]*-riscv64$")
    found = [n for n in names if pat.match(n)]
    return max(found, key=_version_key) if found else None


def parse_depends(text: str) -> dict[str, list[list[str]]]:
    """Parse ``apt-cache depends`` output: package -> list of Depends/PreDepends groups (alternatives)."""
    out: dict[str, list[list[str]]] = {}
    cur: list[list[str]] | None = None
    continuing = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            cur = out.setdefault(line.strip(), [])
            continuing = False
            continue
        m = re.match(r"^ ( |\|)(PreDepends|Depends): (\S+)", line)
        if m is None or cur is None:
            if not line.startswith("    "):  # a provider line does not end an alternatives group
                continuing = False
            continue
        alt, _, name = m.groups()
        if continuing and cur:
            cur[-1].append(name)
        else:
            cur.append([name])
        continuing = alt == "|"
    return out


def wanted_library(name: str) -> bool:
    return (name.startswith("lib") or name in LIBRARY_EXTRA) and name not in LIBRARY_SKIP


def pick_alternative(group: list[str]) -> str | None:
    for name in group:
        if not name.startswith("<"):
            return name
    return None


def parse_print_uris(text: str) -> list[dict]:
    """``apt-get download --print-uris`` lines -> [{url, filename, size, sha256}]."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^'([^']+)'\s+(\S+)\s+(\d+)\s+SHA256:([0-9a-f]{64})", line.strip())
        if m:
            out.append({"url": m.group(1), "filename": m.group(2), "size": int(m.group(3)), "sha256": m.group(4)})
    return out


def package_of(filename: str) -> tuple[str, str]:
    """``name_version_arch.deb`` -> (name, version) with ``%3a`` decoded."""
    name, version, _ = filename[: -len(".deb")].split("_")
    return name, version.replace("%3a", ":")


def recipe_digest(paths: Iterable[Path]) -> str:
    """A digest of the build recipe (this module and the guest files): a change rebuilds the images."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_up_to_date(
    manifest: dict | None, packages: dict[str, str], recipe: str, out_dir: Path, verify: bool = True
) -> str | None:
    """None when the outputs in ``out_dir`` match ``manifest`` for these package versions and recipe,
    otherwise the reason to rebuild."""
    if not manifest:
        return "no manifest"
    if manifest.get("recipe") != recipe:
        return "build recipe changed"
    have = {k: v["version"] for k, v in manifest.get("packages", {}).items()}
    if have != packages:
        changed = sorted(set(have.items()) ^ set(packages.items()))
        return "package versions changed: " + ", ".join(f"{n} {v}" for n, v in changed[:6])
    for name, info in manifest.get("outputs", {}).items():
        p = out_dir / name
        if not p.is_file() or p.stat().st_size != info["size"]:
            return f"{name} missing or changed"
        if verify and sha256_file(p) != info["sha256"]:
            return f"{name} checksum differs"
    if not manifest.get("outputs"):
        return "no outputs recorded"
    return None


def module_name(path: str) -> str:
    base = os.path.basename(path)
    for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base.replace("-", "_")


def modinfo_depends(ko: bytes) -> list[str]:
    """The ``depends=`` field of a module's ``.modinfo`` section."""
    try:
        from elftools.elf.elffile import ELFFile

        sec = ELFFile(io.BytesIO(ko)).get_section_by_name(".modinfo")
        data = sec.data() if sec is not None else ko
    except Exception:  # pyelftools missing or an odd file: scan the bytes
        data = ko
    for field_ in data.split(b"\0"):
        if field_.startswith(b"depends="):
            value = field_[len(b"depends=") :].decode()
            return [d.replace("-", "_") for d in value.split(",") if d]
    return []


def module_load_order(wanted: Iterable[str], deps: dict[str, list[str]]) -> list[str]:
    """Dependencies first (a depth-first post-order), each module once."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(m: str, stack: tuple[str, ...]) -> None:
        if m in seen:
            return
        if m in stack:
            raise ValueError(f"module dependency cycle: {' -> '.join(stack + (m,))}")
        for d in deps.get(m, []):
            visit(d, stack + (m,))
        seen.add(m)
        order.append(m)

    for m in wanted:
        visit(m, ())
    return order


# ----------------------------------------------------------------------------------------------------------
# cpio (newc) writer


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


# ----------------------------------------------------------------------------------------------------------
# private apt


class Apt:
    """apt-get/apt-cache with their state, cache and sources under ``root``: the host's apt is untouched."""

    def __init__(self, root: Path, uri: str):
        self.root = root
        self.uri = uri
        self.state = root / "state"
        self.cache = root / "cache"
        self.sources = root / "sources.list"
        for d in (self.state / "lists" / "partial", self.cache / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        (self.state / "status").touch()
        line = sources_line(uri)
        if not self.sources.exists() or self.sources.read_text() != line:
            self.sources.write_text(line)
            for f in (self.state / "lists").glob("*_Packages*"):
                f.unlink()

    def opts(self) -> list[str]:
        o = {
            "Dir::State": self.state,
            "Dir::State::status": self.state / "status",
            "Dir::Cache": self.cache,
            "Dir::Etc::SourceList": self.sources,
            "Dir::Etc::SourceParts": "/nonexistent",
            "Dir::Etc::Preferences": "/nonexistent",
            "Dir::Etc::PreferencesParts": "/nonexistent",
            "APT::Architecture": ARCH,
            "APT::Architectures": ARCH,
            "APT::Sandbox::User": "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody"),
            "Debug::NoLocking": "1",
            "Acquire::Retries": "3",  # a registry's passing hiccup is retried, not a failed image build
        }
        out = []
        for k, v in o.items():
            out += ["-o", f"{k}={v}"]
        return out

    def run(self, tool: str, *args: str, cwd: Path | None = None, quiet: bool = True) -> str:
        cmd = [tool, *self.opts(), *args]
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if r.returncode != 0:
            err = "\n".join(l for l in r.stderr.splitlines() if "/nonexistent" not in l)
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({r.returncode}):\n{err}")
        return r.stdout

    def has_lists(self) -> bool:
        return any((self.state / "lists").glob("*_Packages*"))

    def update(self) -> None:
        self.run("apt-get", "-q", "update")

    def pkgnames(self, prefix: str) -> list[str]:
        return self.run("apt-cache", "pkgnames", prefix).split()

    def depends(self, names: list[str]) -> dict[str, list[list[str]]]:
        return parse_depends(self.run("apt-cache", "depends", *names))

    def print_uris(self, names: list[str]) -> list[dict]:
        return parse_print_uris(self.run("apt-get", "download", "--print-uris", *names))

    def download(self, names: list[str], dest: Path) -> None:
        self.run("apt-get", "-q", "download", *names, cwd=dest)


def host_archive_uri() -> str:
    def read(p: str) -> str | None:
        try:
            return Path(p).read_text()
        except OSError:
            return None

    uri = derive_archive_uri(read(DEBIAN_SOURCES), read(SOURCES_LIST))
    if not uri:
        raise RuntimeError(f"cannot find the Debian archive URI in {DEBIAN_SOURCES} or {SOURCES_LIST}")
    return uri


def resolve_python_closure(apt: Apt) -> list[str]:
    want: list[str] = list(PYTHON_ROOTS)
    seen = set(want)
    frontier = list(want)
    while frontier:
        deps = apt.depends(frontier)
        frontier = []
        for pkg in sorted(deps):
            for group in deps[pkg]:
                name = pick_alternative(group)
                if name and name not in seen and wanted_library(name):
                    seen.add(name)
                    want.append(name)
                    frontier.append(name)
    return want


# ----------------------------------------------------------------------------------------------------------
# the build


def default_cache() -> Path:
    env = os.environ.get("PYSHYPER_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/pyshyper").expanduser()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def fetch(apt: Apt, names: list[str], debs: Path) -> tuple[list[dict], int]:
    """Download what is missing from ``debs`` (checked by sha256); returns the package records and the
    number of bytes fetched."""
    records = apt.print_uris(names)
    if len(records) != len(names):
        got = {package_of(r["filename"])[0] for r in records}
        raise RuntimeError(f"apt could not resolve: {', '.join(sorted(set(names) - got))}")
    missing = []
    for r in records:
        p = debs / r["filename"]
        if not (p.is_file() and p.stat().st_size == r["size"] and sha256_file(p) == r["sha256"]):
            missing.append(r)
    fetched = 0
    if missing:
        total = sum(r["size"] for r in missing)
        log(f"fetching {len(missing)} package(s), {_human(total)}:")
        for r in missing:
            name, version = package_of(r["filename"])
            log(f"  {name} {version} ({_human(r['size'])})")
        apt.download([package_of(r["filename"])[0] + "=" + package_of(r["filename"])[1] for r in missing], debs)
        for r in missing:
            p = debs / r["filename"]
            if not p.is_file() or sha256_file(p) != r["sha256"]:
                raise RuntimeError(f"download of {r['filename']} failed its checksum")
        fetched = total
    else:
        log(f"all {len(records)} packages already downloaded")
    return records, fetched


def extract(deb: Path, dest: Path) -> Path:
    if not (dest / ".done").exists():
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        (dest / ".done").touch()
    return dest


def _stdlib_keep(path: str) -> bool:
    parts = path.split("/")
    if len(parts) >= 4 and parts[:3] == ["usr", "lib", PY]:
        rest = parts[3:]
        if any(p in STDLIB_PRUNE for p in rest):
            return False
        if rest[0].startswith("config-"):
            return False
        if rest[-1].endswith((".pyc", ".exe")):
            return False
    return True


def _keep_payload(path: str) -> bool:
    """From library and python packages keep binaries, libraries and the stdlib; drop docs and the rest."""
    if path.startswith(("usr/share", "etc", "usr/lib/debug", "usr/lib/valgrind")):
        return False
    if path.startswith(f"usr/lib/{TRIPLET}/gconv"):  # iconv modules: python does not use them
        return False
    if path.startswith("usr/bin") or path in ("usr",):
        return True
    if path.startswith(("usr/lib", "lib")):
        return _stdlib_keep(path)
    return path in ("usr", "usr/lib")


def build_initramfs(roots: dict[str, Path], kernel_root: Path, kver: str, out: Path) -> dict:
    t = Tree()
    # usr-merged layout, as trixie
    for d in ("usr/bin", "usr/sbin", "usr/lib", "proc", "sys", "dev", "tmp", "run", "root", "etc", "var", "mnt"):
        t.dir(d)
    t.dir("tmp", 0o1777)
    for l, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")):
        t.link(l, target)
    t.add("dev/console", Entry("chr", 0o600, rdev=(5, 1)))
    t.add("dev/null", Entry("chr", 0o666, rdev=(1, 3)))

    # busybox: applets are linked at boot by `busybox --install -s`; sh is needed for /init itself.
    bb_root = roots["busybox-static"]
    bb = next(p for p in (bb_root / "usr/bin/busybox", bb_root / "bin/busybox") if p.exists())
    t.add("usr/bin/busybox", Entry("file", 0o755, src=bb))
    t.link("usr/bin/sh", "busybox")

    # libraries and python
    for name, root in sorted(roots.items()):
        if name in ("busybox-static",):
            continue
        t.add_tree(root, keep=_keep_payload)
    t.link("usr/bin/python3", PY)
    if ("usr/bin/" + PY) not in t.entries:
        raise RuntimeError(f"{PY} binary not found in the extracted packages")
    # the dynamic loader must be reachable at /lib/ld-linux-riscv64-lp64d.so.1
    ld = "usr/lib/ld-linux-riscv64-lp64d.so.1"
    if ld not in t.entries:
        cand = f"usr/lib/{TRIPLET}/ld-linux-riscv64-lp64d.so.1"
        if cand not in t.entries:
            raise RuntimeError("ld-linux-riscv64-lp64d.so.1 not found in libc6")
        t.link(ld, f"{TRIPLET}/ld-linux-riscv64-lp64d.so.1")

    # kernel modules
    mod_base = next(
        p for p in (kernel_root / "usr/lib/modules" / kver, kernel_root / "lib/modules" / kver) if p.exists()
    )
    by_name: dict[str, Path] = {}
    for p in mod_base.rglob("*.ko*"):
        by_name[module_name(p.name)] = p
    blobs: dict[str, bytes] = {}
    deps: dict[str, list[str]] = {}
    todo = list(MVM_MODULES)
    while todo:
        m = todo.pop()
        if m in blobs:
            continue
        if m not in by_name:
            raise RuntimeError(f"kernel module {m} not found under {mod_base}")
        raw = by_name[m].read_bytes()
        blobs[m] = lzma.decompress(raw) if by_name[m].name.endswith(".xz") else raw
        deps[m] = modinfo_depends(blobs[m])
        todo.extend(deps[m])
    order = module_load_order(MVM_MODULES, deps)
    mod_dir = f"usr/lib/modules/{kver}"
    rel = {m: str(by_name[m].relative_to(mod_base)).replace(".ko.xz", ".ko") for m in order}
    for m in order:
        t.file(f"{mod_dir}/{rel[m]}", blobs[m])
    dep_lines = [
        f"{rel[m]}: {' '.join(rel[d] for d in module_load_order([m], deps)[:-1][::-1])}".rstrip() for m in order
    ]
    t.file(f"{mod_dir}/modules.dep", ("\n".join(dep_lines) + "\n").encode())
    t.file("etc/pyshyper/modules", ("\n".join(f"{kver}/{rel[m]}" for m in order) + "\n").encode())
    for f in ("modules.builtin", "modules.order"):
        if (mod_base / f).exists():
            t.add(f"{mod_dir}/{f}", Entry("file", 0o644, src=mod_base / f))

    # rdtime: the `time` CSR, for boot-time measurements (qemu/bench_boot.py); optional
    rdtime = build_rdtime(out.parent / "rdtime")
    if rdtime is not None:
        t.add("usr/bin/rdtime", Entry("file", 0o755, data=rdtime))

    # guest files: init, inittab, profile...
    t.add("init", Entry("file", 0o755, src=GUEST_DIR / "init"))
    t.add("etc/inittab", Entry("file", 0o644, src=GUEST_DIR / "inittab"))
    t.add("etc/profile", Entry("file", 0o644, src=GUEST_DIR / "profile"))
    t.file("etc/hostname", b"mvm\n")
    t.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    t.file("etc/group", b"root:x:0:\n")
    t.file("etc/pyshyper/kernel-release", (kver + "\n").encode())

    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        t.write_cpio(f)
    tmp.replace(out)
    return {"modules": order, "entries": len(t.entries)}


def build_rdtime(work: Path) -> bytes | None:
    """Assemble qemu/guest/rdtime.S into a static riscv64 Linux program with GNU binutils (None, with a
    note, when binutils-riscv64-unknown-elf is missing: the MVM then has no rdtime and boot benchmarks
    fall back to /proc/uptime)."""
    as_, ld = shutil.which("riscv64-unknown-elf-as"), shutil.which("riscv64-unknown-elf-ld")
    if as_ is None or ld is None:
        log("note: riscv64-unknown-elf binutils missing, the MVM gets no rdtime tool")
        return None
    work.mkdir(parents=True, exist_ok=True)
    obj, exe = work / "rdtime.o", work / "rdtime"
    subprocess.run([as_, "-march=rv64ima_zicsr", "-mabi=lp64", "-o", str(obj), str(GUEST_DIR / "rdtime.S")], check=True)
    subprocess.run([ld, "-static", "-nostdlib", "-s", "-e", "_start", "-o", str(exe), str(obj)], check=True)
    data = exe.read_bytes()
    shutil.rmtree(work, ignore_errors=True)
    return data


def kernel_image(kernel_root: Path, kver: str, out: Path) -> None:
    """Debian's riscv64 ``/boot/vmlinux-*`` is a flat Image with an EFI stub (``MZ`` + ``RISCV`` magic);
    older packages shipped a gzip'd ``vmlinuz``. Either way, write an uncompressed Image."""
    boot = kernel_root / "boot"
    cands = [boot / f"vmlinux-{kver}", boot / f"vmlinuz-{kver}"]
    src = next((p for p in cands if p.exists()), None)
    if src is None:
        raise RuntimeError(f"no kernel image in {boot}")
    data = src.read_bytes()
    if data[:2] == b"\x1f\x8b":
        import gzip

        data = gzip.decompress(data)
    check_image_header(data)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)


def check_image_header(data: bytes) -> dict:
    """Check the RISC-V Linux Image header (Documentation/arch/riscv/boot-image-header.rst)."""
    if len(data) < 64 or data[48:56] != b"RISCV\0\0\0" or data[56:60] != b"RSC\x05":
        raise RuntimeError("not a RISC-V Linux Image (magic missing)")
    return {
        "text_offset": int.from_bytes(data[8:16], "little"),
        "image_size": int.from_bytes(data[16:24], "little"),
    }


def build(cache: Path, force: bool = False, update: bool = False) -> int:
    t0 = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    manifest_path = cache / "manifest.json"
    manifest = None
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = None
    recipe = recipe_digest([Path(__file__).resolve(), *sorted(p for p in GUEST_DIR.iterdir() if p.is_file())])

    uri = host_archive_uri()
    apt = Apt(cache / "apt", uri)
    if update or force or not apt.has_lists():
        log(f"updating the package lists for {SUITE}/{ARCH} from {uri} (private apt state in {apt.root})")
        apt.update()

    kernel_pkg = newest_kernel(apt.pkgnames(f"linux-image-{KERNEL_SERIES}"))
    if kernel_pkg is None:
        log(f"no linux-image-{KERNEL_SERIES}.*-riscv64 in {SUITE}")
        return 1
    kver = kernel_pkg[len("linux-image-") :]
    names = [kernel_pkg, "busybox-static", *resolve_python_closure(apt)]
    records = apt.print_uris(names)
    versions = {package_of(r["filename"])[0]: package_of(r["filename"])[1] for r in records}

    if not force:
        why = manifest_up_to_date(manifest, versions, recipe, cache)
        if why is None:
            log(
                f"up to date, nothing to do: kernel {kver}, {len(versions)} packages "
                f"({cache / 'Image'}, {cache / 'mvm-initramfs.cpio'})"
            )
            return 0
        log(f"building: {why}")

    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    records, fetched = fetch(apt, names, debs)
    roots: dict[str, Path] = {}
    for r in records:
        name, version = package_of(r["filename"])
        log(f"extracting {name} {version}")
        roots[name] = extract(debs / r["filename"], cache / "extract" / r["filename"][:-4])
    kernel_root = roots.pop(kernel_pkg)

    log("writing Image")
    kernel_image(kernel_root, kver, cache / "Image")
    log("writing mvm-initramfs.cpio")
    info = build_initramfs(roots, kernel_root, kver, cache / "mvm-initramfs.cpio")
    log(f"  modules: {' '.join(info['modules'])}")

    shutil.rmtree(cache / "extract", ignore_errors=True)  # the .deb files stay; extracting again is quick
    outputs = {}
    for name in ("Image", "mvm-initramfs.cpio"):
        p = cache / name
        outputs[name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    new_manifest = {
        "suite": SUITE,
        "arch": ARCH,
        "kernel_release": kver,
        "recipe": recipe,
        "packages": {
            package_of(r["filename"])[0]: {
                "version": package_of(r["filename"])[1],
                "filename": r["filename"],
                "size": r["size"],
                "sha256": r["sha256"],
            }
            for r in records
        },
        "modules": info["modules"],
        "outputs": outputs,
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(new_manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(manifest_path)
    total_debs = sum(r["size"] for r in records)
    log(
        f"done in {time.monotonic() - t0:.1f} s: fetched {_human(fetched)} "
        f"({len(records)} packages, {_human(total_debs)} in all)"
    )
    for name, o in outputs.items():
        log(f"  {cache / name}: {_human(o['size'])} sha256 {o['sha256'][:16]}")
    log(f"  {manifest_path}")
    return 0


MVM_CMDLINE = "console=ttyS0 earlycon=sbi"
READY_LINE = "PyShyper MVM ready"
PROMPT = "mvm# "


def native_qemu_command(
    cache: Path | None = None, smp: int = 2, mem: str = "512M", cmdline: str = MVM_CMDLINE, extra: Iterable[str] = ()
) -> list[str]:
    """QEMU command booting the MVM kernel and initramfs natively (no hypervisor): the baseline."""
    cache = cache or default_cache()
    return [
        "qemu-system-riscv64",
        "-M",
        "virt",
        "-cpu",
        "rv64",
        "-smp",
        str(smp),
        "-m",
        mem,
        "-bios",
        "default",
        "-nographic",
        "-kernel",
        str(cache / "Image"),
        "-initrd",
        str(cache / "mvm-initramfs.cpio"),
        "-append",
        cmdline,
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="pyshyper images",
        description="Fetch Debian trixie riscv64 packages and build the guest kernel Image and the MVM "
        "initramfs (cached; a second run does nothing).",
    )
    ap.add_argument(
        "--cache", type=Path, default=None, help="cache directory (default: $PYSHYPER_CACHE or ~/.cache/pyshyper)"
    )
    ap.add_argument("--force", action="store_true", help="refresh the package lists and rebuild everything")
    ap.add_argument(
        "--update", action="store_true", help="refresh the package lists (newer versions rebuild the images)"
    )
    args = ap.parse_args(argv)
    cache = (args.cache.expanduser() if args.cache else default_cache()).resolve()
    try:
        return build(cache, force=args.force, update=args.update)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print(f"images: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
