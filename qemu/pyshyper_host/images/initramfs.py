"""Guest images for PyShyper: Debian trixie's riscv64 kernel and the MVM initramfs.

``pyshyper images`` (or ``python -m pyshyper_host.images.initramfs``) fetches riscv64 packages from Debian trixie with
``apt-get download`` through a private apt configuration under the cache directory (the host's own apt
configuration is never touched), extracts them with ``dpkg-deb -x`` and builds:

- ``Image``: the kernel, a flat RISC-V Image (Debian ships it uncompressed with an EFI stub header), usable
  with QEMU ``-kernel`` and by the hypervisor's loader;
- ``mvm-initramfs.cpio``: an uncompressed ``newc`` cpio with busybox-static, the kernel modules the MVM needs
  (decompressed from ``.ko.xz``, loaded in dependency order by ``/init``), python3.13 with its standard
  library, and the repository's ``mvm-tools`` (the ``shyper`` command, with the pure-Python ``fdt`` package);
- ``gvm-initramfs.cpio``: a guest VM's initramfs, busybox-static and ``virtio_mmio.ko`` only, its shell on
  ``/dev/hvc0`` (gvm/);
- ``mvm-disk.img``: the MVM's images disk, ext4 labelled ``shyper-images`` (disk.py), holding ``Image`` and
  ``gvm-initramfs.cpio`` for the GVMs; ``pyshyper run`` attaches it to the MVM as a virtio-blk device;
- ``manifest.json``: package versions, sizes and sha256 of everything above.

The archive URI is derived from the machine's own Debian source entry; no host name is written here.
A second run with the same package versions and the same recipe does nothing and says so.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

from boards import load_board
from boards.mvm import load_mvm
from pyshyper_host.images.apt import (
    ARCH,
    KERNEL_SERIES,
    SUITE,
    Apt,
    extract,
    fetch,
    host_archive_uri,
    human,
    log,
    newest_kernel,
    package_of,
    resolve_python_closure,
    sha256_file,
)
from pyshyper_host.images.cpio import Entry, Tree
from pyshyper_host.images.disk import DISK_LABEL, make_ext4

TRIPLET = "riscv64-linux-gnu"
PY = "python3.13"
# Kernel modules the MVM loads at boot (their dependencies are added from .modinfo).
MVM_MODULES = (
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "vsock",
    "vmw_vsock_virtio_transport",
    "ext4",  # the images disk (its jbd2, mbcache and crc16 come from .modinfo depends=)
    "crc32c_generic",  # ext4's metadata checksums: a soft dependency (MODULE_SOFTDEP), not in depends=
)
# Kernel modules a guest VM loads at boot: its console is a virtio-console on virtio-mmio.
GVM_MODULES = ("virtio_mmio",)


# Pruned from the python standard library to keep the initramfs small.
STDLIB_PRUNE = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "__pycache__"}
)


GUEST_DIR = Path(__file__).resolve().parent / "guest"  # the MVM's /init, inittab, profile, shyper-service
GVM_DIR = Path(__file__).resolve().parent / "gvm"  # a guest VM's /init, inittab, profile
REPO = Path(__file__).resolve().parents[3]
MVM_TOOLS = REPO / "mvm-tools"  # the `shyper` package (mvm-tools/shyper/) and example configs (examples/*.json)
OUTPUTS = ("Image", "mvm-initramfs.cpio", "gvm-initramfs.cpio", "mvm-disk.img")


def mvm_tools_files(tools: Path = MVM_TOOLS) -> list[Path]:
    """What the MVM gets from mvm-tools/: the `shyper` package's files (no bytecode) and the example configs."""
    pkg = tools / "shyper"
    files = [p for p in sorted(pkg.rglob("*")) if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files + sorted((tools / "examples").glob("*.json"))


def fdt_package_dir() -> Path:
    """The pure-Python `fdt` package of the build's own environment (the venv's site-packages)."""
    import fdt

    return Path(fdt.__file__).resolve().parent


def recipe_files(tools: Path = MVM_TOOLS) -> list[Path]:
    """Every file whose change must rebuild the images: the builder's modules, the guest files of the MVM and of
    the GVMs, mvm-tools' package and examples, and the `fdt` package copied into the MVM."""
    here = Path(__file__).resolve().parent
    return [
        *here.glob("*.py"),
        *(p for d in (GUEST_DIR, GVM_DIR) for p in d.iterdir() if p.is_file()),
        *mvm_tools_files(tools),
        *(p for p in fdt_package_dir().glob("*.py")),
    ]


def recipe_digest(paths: Iterable[Path]) -> str:
    """A digest of the build recipe (the image builder's modules and the guest files): a change rebuilds the images."""
    h = hashlib.sha256()
    for p in sorted(paths):
        inside = p.is_relative_to(REPO) and ".venv" not in p.relative_to(REPO).parts
        name = str(p.relative_to(REPO)) if inside else f"{p.parent.name}/{p.name}"  # fdt/: the venv's path varies
        h.update(name.encode() + b"\0" + p.read_bytes() + b"\0")
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


def default_cache() -> Path:
    env = os.environ.get("PYSHYPER_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/pyshyper").expanduser()


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


def add_modules(t: Tree, kernel_root: Path, kver: str, wanted: Iterable[str]) -> list[str]:
    """Put the kernel modules `wanted` and their dependencies (from each module's .modinfo depends=),
    decompressed, under /usr/lib/modules/KVER with a modules.dep, and their load order in /etc/pyshyper/modules
    (what /init insmods). Returns the load order."""
    wanted = tuple(wanted)
    mod_base = next(
        p for p in (kernel_root / "usr/lib/modules" / kver, kernel_root / "lib/modules" / kver) if p.exists()
    )
    by_name: dict[str, Path] = {}
    for p in mod_base.rglob("*.ko*"):
        by_name[module_name(p.name)] = p
    blobs: dict[str, bytes] = {}
    deps: dict[str, list[str]] = {}
    todo = list(wanted)
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
    order = module_load_order(wanted, deps)
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
    t.file("etc/pyshyper/kernel-release", (kver + "\n").encode())
    return order


def base_tree(busybox_root: Path) -> Tree:
    """What every initramfs here has: the usr-merged directories, /dev/console and /dev/null, busybox-static (its
    applets are linked at boot by `busybox --install -s`; sh is needed for /init itself)."""
    t = Tree()
    for d in ("usr/bin", "usr/sbin", "usr/lib", "proc", "sys", "dev", "tmp", "run", "root", "etc", "var", "mnt"):
        t.dir(d)
    t.dir("tmp", 0o1777)
    for l, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")):
        t.link(l, target)
    t.add("dev/console", Entry("chr", 0o600, rdev=(5, 1)))
    t.add("dev/null", Entry("chr", 0o666, rdev=(1, 3)))
    bb = next(p for p in (busybox_root / "usr/bin/busybox", busybox_root / "bin/busybox") if p.exists())
    t.add("usr/bin/busybox", Entry("file", 0o755, src=bb))
    t.link("usr/bin/sh", "busybox")
    return t


def write_tree(t: Tree, out: Path) -> None:
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as cpio_file:
        t.write_cpio(cpio_file)
    tmp.replace(out)


SHYPER_WRAPPER = b"""#!/bin/sh
PYTHONPATH=/usr/lib/shyper exec python3 -m shyper "$@"
"""


def install_mvm_tools(t: Tree, tools: Path = MVM_TOOLS, fdt_dir: Path | None = None) -> list[str]:
    """mvm-tools into the MVM: the `shyper` package at /usr/lib/shyper/shyper/ with the `fdt` package beside it,
    /usr/bin/shyper, the example configs in /root/. Nothing when mvm-tools/shyper/ has no __main__.py (the
    command would not run); returns what was installed, for the build's log."""
    pkg = tools / "shyper"
    if not (pkg / "__main__.py").is_file():
        log(f"note: {pkg} has no __main__.py: the MVM gets no shyper command")
        return []
    fdt_dir = fdt_dir if fdt_dir is not None else fdt_package_dir()
    done = []
    for f in mvm_tools_files(tools):
        if f.is_relative_to(pkg):
            t.add(f"usr/lib/shyper/shyper/{f.relative_to(pkg)}", Entry("file", 0o644, src=f))
        else:
            t.add(f"root/{f.name}", Entry("file", 0o644, src=f))
            done.append(f"/root/{f.name}")
    for f in sorted(fdt_dir.glob("*.py")):
        t.add(f"usr/lib/shyper/fdt/{f.name}", Entry("file", 0o644, src=f))
    t.add("usr/bin/shyper", Entry("file", 0o755, data=SHYPER_WRAPPER))
    t.add("usr/lib/shyper/shyper-service", Entry("file", 0o755, src=GUEST_DIR / "shyper-service"))
    return ["/usr/bin/shyper", "/usr/lib/shyper/shyper", "/usr/lib/shyper/fdt", *done]


def build_gvm_initramfs(busybox_root: Path, kernel_root: Path, kver: str, out: Path) -> dict:
    """A guest VM's initramfs: busybox-static, virtio_mmio.ko, gvm/init, inittab and profile."""
    t = base_tree(busybox_root)
    order = add_modules(t, kernel_root, kver, GVM_MODULES)
    t.add("init", Entry("file", 0o755, src=GVM_DIR / "init"))
    t.add("etc/inittab", Entry("file", 0o644, src=GVM_DIR / "inittab"))
    t.add("etc/profile", Entry("file", 0o644, src=GVM_DIR / "profile"))
    t.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    t.file("etc/group", b"root:x:0:\n")
    # fpvcheck: the FP/vector checker a GVM runs while it shares its hart (gvm/fpvcheck.S)
    t.add("usr/bin/fpvcheck", Entry("file", 0o755, data=build_fpvcheck(out.parent / "fpvcheck-gvm")))
    write_tree(t, out)
    return {"modules": order, "entries": len(t.entries)}


def build_initramfs(roots: dict[str, Path], kernel_root: Path, kver: str, out: Path, tools: Path = MVM_TOOLS) -> dict:
    t = base_tree(roots["busybox-static"])

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

    order = add_modules(t, kernel_root, kver, MVM_MODULES)

    # rdtime: the `time` CSR, for boot-time measurements (pyshyper_host/bench/boot.py); optional
    rdtime = build_rdtime(out.parent / "rdtime")
    if rdtime is not None:
        t.add("usr/bin/rdtime", Entry("file", 0o755, data=rdtime))
    t.add("usr/bin/fpvcheck", Entry("file", 0o755, data=build_fpvcheck(out.parent / "fpvcheck-mvm")))

    # guest files: init, inittab, profile...
    t.add("init", Entry("file", 0o755, src=GUEST_DIR / "init"))
    t.add("etc/inittab", Entry("file", 0o644, src=GUEST_DIR / "inittab"))
    t.add("etc/profile", Entry("file", 0o644, src=GUEST_DIR / "profile"))
    t.file("etc/hostname", b"mvm\n")
    t.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    t.file("etc/group", b"root:x:0:\n")
    tools_installed = install_mvm_tools(t, tools)

    write_tree(t, out)
    return {"modules": order, "entries": len(t.entries), "tools": tools_installed}


def build_rdtime(work: Path) -> bytes | None:
    """Assemble guest/rdtime.S into a static riscv64 Linux program with GNU binutils (None, with a
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


# fpvcheck uses F, D and V: assembled for them whatever the hypervisor's own -march
FPVCHECK_MARCH = "rv64imafdcv_zicsr"


def build_fpvcheck(work: Path) -> bytes:
    """Assemble gvm/fpvcheck.S into a static riscv64 Linux program (no libc) with GNU binutils."""
    as_, ld = shutil.which("riscv64-unknown-elf-as"), shutil.which("riscv64-unknown-elf-ld")
    if as_ is None or ld is None:
        raise RuntimeError("riscv64-unknown-elf-as/ld not found (binutils-riscv64-unknown-elf): cannot make fpvcheck")
    work.mkdir(parents=True, exist_ok=True)
    obj, exe = work / "fpvcheck.o", work / "fpvcheck"
    src = GVM_DIR / "fpvcheck.S"
    subprocess.run([as_, f"-march={FPVCHECK_MARCH}", "-mabi=lp64d", "-o", str(obj), str(src)], check=True)
    link = [ld, "-static", "-nostdlib", "--no-relax", "-s", "-e", "_start", "-o", str(exe), str(obj)]
    subprocess.run(link, check=True)
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


class Output(TypedDict):
    """An image in the manifest: its size and sha256."""

    size: int
    sha256: str


def build(cache: Path, force: bool = False, update: bool = False) -> int:
    """Make or check the images in `cache`, holding the cache's lock file: a second `pyshyper images` on the same
    cache (another shell, another test worker) waits, then finds the images current."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another `pyshyper images` on {cache}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(cache, force, update)


def _build_locked(cache: Path, force: bool, update: bool) -> int:
    t0 = time.monotonic()
    manifest_path = cache / "manifest.json"
    manifest = None
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = None
    # The recipe: the image builder's modules, the guest files, mvm-tools and the fdt package the MVM gets.
    recipe = recipe_digest(recipe_files())

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
            log(f"up to date, nothing to do: kernel {kver}, {len(versions)} packages ({', '.join(OUTPUTS)} in {cache})")
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
    log("writing gvm-initramfs.cpio (a guest VM's: busybox, its shell on /dev/hvc0)")
    gvm = build_gvm_initramfs(roots["busybox-static"], kernel_root, kver, cache / "gvm-initramfs.cpio")
    log(f"  modules: {' '.join(gvm['modules'])}; {human((cache / 'gvm-initramfs.cpio').stat().st_size)}")
    log(f"writing mvm-disk.img (ext4 '{DISK_LABEL}': Image, gvm-initramfs.cpio)")
    make_ext4({n: cache / n for n in ("Image", "gvm-initramfs.cpio")}, cache / "mvm-disk.img")
    log("writing mvm-initramfs.cpio")
    info = build_initramfs(roots, kernel_root, kver, cache / "mvm-initramfs.cpio")
    log(f"  modules: {' '.join(info['modules'])}")
    if info["tools"]:
        log(f"  mvm-tools: {', '.join(info['tools'])}")

    shutil.rmtree(cache / "extract", ignore_errors=True)  # the .deb files stay; extracting again is quick
    outputs: dict[str, Output] = {}
    for name in OUTPUTS:
        p = cache / name
        outputs[name] = Output(size=p.stat().st_size, sha256=sha256_file(p))
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
        f"done in {time.monotonic() - t0:.1f} s: fetched {human(fetched)} "
        f"({len(records)} packages, {human(total_debs)} in all)"
    )
    for name, o in outputs.items():
        log(f"  {cache / name}: {human(o['size'])} sha256 {o['sha256'][:16]}")
    log(f"  {manifest_path}")
    return 0


NATIVE_BOARD = "qemu-virt"  # the board the native baselines run on (its QEMU machine and CPU)
READY_LINE = "PyShyper MVM ready"
PROMPT = "mvm# "


def _native_machine(smp: int, mem: str, cpu: str | None = None) -> list[str]:
    """The QEMU machine of the native baselines: the virt board with the board's own CPU (board.toml qemu_cpu, the
    one `pyshyper run` gives the hypervisor, so native and hypervisor runs compare the same harts) unless `cpu`
    names another, OpenSBI, no hypervisor."""
    b = load_board(NATIVE_BOARD)
    cpus = ["-cpu", cpu if cpu is not None else b.qemu_cpu]
    return ["qemu-system-riscv64", "-M", b.qemu_machine, *cpus, "-smp", str(smp), "-m", mem, "-bios", "default"]


def format_size(size: int) -> str:
    """A byte count as QEMU's -m takes it: whole GiB as "2G", else MiB ("768M")."""
    return f"{size >> 30}G" if size % (1 << 30) == 0 else f"{size >> 20}M"


def mvm_mem() -> str:
    """The MVM's memory (mvm.toml [[memory]]) as QEMU's -m value: what a native baseline boot gets."""
    return format_size(sum(m.size for m in load_mvm(NATIVE_BOARD).memory))


def native_qemu_command(
    cache: Path | None = None,
    smp: int = 2,
    mem: str | None = None,
    cmdline: str | None = None,
    extra: Iterable[str] = (),
    cpu: str | None = None,
) -> list[str]:
    """QEMU command booting the MVM kernel and initramfs natively (no hypervisor): the baseline (on the board's CPU
    unless `cpu` names another), with the MVM's own kernel command line (mvm.toml image.cmdline) unless `cmdline`
    gives another, and with the MVM's memory unless `mem` gives another, so that the baseline boots the same kernel
    the same way with the same RAM."""
    cache = cache or default_cache()
    if mem is None:
        mem = mvm_mem()
    if cmdline is None:
        cmdline = load_mvm(NATIVE_BOARD).cmdline
    return [
        *_native_machine(smp, mem, cpu),
        "-nographic",
        "-kernel",
        str(cache / "Image"),
        "-initrd",
        str(cache / "mvm-initramfs.cpio"),
        "-append",
        cmdline,
        # the images disk, as `pyshyper run` attaches it (run/command.py MvmImages.disk_args)
        "-drive",
        f"file={cache / 'mvm-disk.img'},if=none,format=raw,id=shyper-images,snapshot=on",
        "-device",
        "virtio-blk-device,drive=shyper-images",
        *extra,
    ]


GVM_READY_LINE = "PyShyper GVM ready"
GVM_CMDLINE = "console=hvc0 rdinit=/init"


def gvm_prompt(name: str) -> str:
    """A guest VM's shell prompt (gvm/profile): its name and the working directory, `vm1:/# `."""
    return f"{name}:/# "


def native_gvm_command(
    cache: Path | None = None,
    name: str = "vm1",
    smp: int = 1,
    mem: str = "128M",
    cmdline: str = GVM_CMDLINE,
    extra: Iterable[str] = (),
) -> list[str]:
    """QEMU command booting a guest VM's kernel and initramfs (Image, gvm-initramfs.cpio) natively, without the
    hypervisor: the baseline a GVM's boot under the hypervisor is measured against. Its console is a
    virtio-console on QEMU's stdio (`/dev/hvc0`, as the hypervisor gives a GVM), the UART is not connected, and
    the VM is named by `hostname=NAME` on the command line (memory 128M: the shipped GVMs')."""
    cache = cache or default_cache()
    return [
        *_native_machine(smp, mem),
        "-display",
        "none",
        "-serial",
        "none",
        "-chardev",
        "stdio,id=hvc0",
        "-device",
        "virtio-serial-device",
        "-device",
        "virtconsole,chardev=hvc0",
        "-kernel",
        str(cache / "Image"),
        "-initrd",
        str(cache / "gvm-initramfs.cpio"),
        "-append",
        f"{cmdline} hostname={name}" if name else cmdline,
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
