"""A private apt for riscv64 Debian packages: state, cache and sources under the image cache (the host's own apt
configuration is never touched), the archive URI from the machine's own Debian source entry, the python closure, and
download (checked by sha256) and extraction (``dpkg-deb -x``) of ``.deb`` files."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

SUITE = "trixie"
ARCH = "riscv64"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_SOURCES = "/etc/apt/sources.list.d/debian.sources"
SOURCES_LIST = "/etc/apt/sources.list"
KERNEL_SERIES = "6.12"
# Roots of the python closure; their Depends/PreDepends are followed recursively, but only into shared
# libraries (names starting with "lib", plus zlib1g), which keeps data and tool packages out.
PYTHON_ROOTS = ("python3.13-minimal", "libpython3.13-minimal", "libpython3.13-stdlib")
LIBRARY_EXTRA = ("zlib1g",)
# Shared libraries python3.13 may pull in that the MVM does not need.
LIBRARY_SKIP = frozenset({"libdb5.3t64", "gcc-14-base"})


def log(msg: str) -> None:
    print(f"images: {msg}", flush=True)


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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def human(n: float) -> str:
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
        log(f"fetching {len(missing)} package(s), {human(total)}:")
        for r in missing:
            name, version = package_of(r["filename"])
            log(f"  {name} {version} ({human(r['size'])})")
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
