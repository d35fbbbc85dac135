"""Where each hart is when a boot stalls: QEMU's human monitor on a Unix socket, read by the boot tests.

A test that times out waiting for the console asks the monitor for every CPU's registers (`info registers -a`)
a few times, a moment apart, and says for each hart whether it runs the guest (V=1) or the hypervisor, which
hypervisor function (from the ELF's symbol table) or OpenSBI, and whether it moved between the samples. That
turns "the console went silent" into "hart 1 spins in sbi_remote_fence, hart 0 is in the guest's idle loop".
"""

from __future__ import annotations

import bisect
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

CPU_HEADER = re.compile(r"^CPU#(\d+)", re.M)
FIELD = re.compile(r"^ (V|pc|sepc|scause|vsepc|vscause|mip|hstatus)\s+=?\s*([0-9a-fA-F]+)", re.M)
FIRMWARE_END = 0x8020_0000  # OpenSBI fw_dynamic below the hypervisor's entry on QEMU virt


def monitor_args(sock: Path) -> list[str]:
    """QEMU options for a human monitor on `sock`, which the serial console on stdio does not need."""
    return ["-monitor", f"unix:{sock},server=on,wait=off"]


@dataclass
class HartState:
    cpu: int
    virt: bool  # V: the hart runs a guest (VS or VU mode)
    pc: int
    sepc: int
    scause: int
    mip: int


def parse_registers(text: str) -> list[HartState]:
    """The harts of an `info registers -a` answer (QEMU's RISC-V register dump)."""
    out = []
    heads = list(CPU_HEADER.finditer(text))
    for i, h in enumerate(heads):
        body = text[h.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        f = {m.group(1): int(m.group(2), 16) for m in FIELD.finditer(body)}
        if "pc" in f:
            out.append(
                HartState(
                    int(h.group(1)), f.get("V", 0) == 1, f["pc"], f.get("sepc", 0), f.get("scause", 0), f.get("mip", 0)
                )
            )
    return out


def query(sock: Path, command: str, timeout: float = 3.0) -> str:
    """One monitor command's answer: what it prints until the monitor's next prompt. The greeting and first prompt
    are read first (up to the whole timeout: a busy QEMU may be slow to send them), so they are never taken for
    the answer; the answer is complete once the command's echo has been followed by a prompt."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.settimeout(0.1)
        greeting = b""
        while b"(qemu)" not in greeting and time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except TimeoutError:
                continue
            if not d:
                return ""  # QEMU closed the monitor
            greeting += d
        s.sendall(command.encode() + b"\n")
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except TimeoutError:
                continue
            if not d:
                break
            out += d
            # the echo of the command line, then its answer, then the next prompt
            echoed = out.find(command.encode())
            if echoed >= 0 and b"\n" in out[echoed:] and out.rstrip().endswith(b"(qemu)"):
                break
    return out.decode(errors="replace")


class Symbols:
    """Function symbols and the DWARF line table of the hypervisor's ELF, for naming a pc."""

    def __init__(self, elf: Path | None) -> None:
        self.funcs: list[tuple[int, int, str]] = []
        self.objects: list[tuple[str, int]] = []
        self.lines: list[tuple[int, str, int]] = []
        if elf is None or not elf.exists():
            return
        from qemu.symtab import line_rows

        self.lines = [(r.addr, r.file, r.line) for r in line_rows(elf)]
        from elftools.elf.elffile import ELFFile

        with elf.open("rb") as f:
            tab = ELFFile(f).get_section_by_name(".symtab")
            for sym in tab.iter_symbols() if tab else []:
                if sym["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE") and sym["st_value"] and sym.name:
                    self.funcs.append((sym["st_value"], sym["st_size"], sym.name))
                elif sym["st_info"]["type"] == "STT_OBJECT" and sym["st_value"] and sym.name:
                    self.objects.append((sym.name, sym["st_value"]))
        self.funcs.sort()

    def name(self, pc: int) -> str | None:
        """`function+offset` of the closest symbol at or below pc, or None."""
        i = bisect.bisect_right(self.funcs, (pc, float("inf"), "")) - 1
        if i < 0:
            return None
        addr, _, name = self.funcs[i]
        return f"{name}+{pc - addr:#x}"

    def line(self, pc: int) -> str | None:
        """`file:line` of the source pc was compiled from (a Python line, or runtime/*.S), or None."""
        i = bisect.bisect_right(self.lines, (pc, "\U0010ffff", 0)) - 1
        if i < 0 or not self.lines[i][1]:
            return None
        return f"{self.lines[i][1]}:{self.lines[i][2]}"


def where(h: HartState, syms: Symbols) -> str:
    if h.virt:
        return f"guest, pc {h.pc:#x} ({'kernel' if h.pc >= 1 << 63 else 'user'})"
    if h.pc < FIRMWARE_END:
        return f"OpenSBI (M-mode), pc {h.pc:#x}"
    name, line = syms.name(h.pc), syms.line(h.pc)
    return f"hypervisor, pc {h.pc:#x}" + (f" in {name}" if name else "") + (f" at {line}" if line else "")


XP_LINE = re.compile(r"^([0-9a-fA-F]+):((?:\s+0x[0-9a-fA-F]+)+)", re.M)
PLIC_BASE = 0x0C00_0000  # QEMU virt (boards/qemu-virt/board.toml); only side-effect-free registers are read


def read_words(sock: Path, addr: int, count: int) -> list[int]:
    """`count` 32-bit words of guest-physical memory (the monitor's `xp`)."""
    out = query(sock, f"xp /{count}wx {addr:#x}")
    words = [int(w, 16) for m in XP_LINE.finditer(out) for w in m.group(2).split()]
    if len(words) < count:
        raise OSError(f"xp at {addr:#x} gave {len(words)} of {count} words")
    return words[:count]


def read_offsets(elf: Path) -> dict[str, int]:
    """The struct offsets the build generated for assembly (gen/offsets.S next to the ELF)."""
    out: dict[str, int] = {}
    path = elf.parent / "gen" / "offsets.S"
    for m in re.finditer(r"^\.equ (\w+), (-?\d+)$", path.read_text() if path.exists() else "", re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def interrupt_state(sock: Path, syms: Symbols, off: dict[str, int], vcpus: int = 2) -> list[str]:
    """The interrupt path's state, for a stall in PLIC mode: the physical PLIC's pending bits and hart 0's S
    context enables, the virtual PLIC's bitmaps, and each vCPU's line, mailbox and exits. Everything is read
    through the monitor, with no side effects (never a claim register)."""
    objs = dict(syms.objects)
    lines = []
    pend = read_words(sock, PLIC_BASE + 0x1000, 3)
    en = read_words(sock, PLIC_BASE + 0x2000 + 0x80 * 1, 3)
    lines.append(
        f"  physical PLIC: pending {' '.join(f'{w:08x}' for w in pend)}, hart 0 S enable "
        f"{' '.join(f'{w:08x}' for w in en)}"
    )
    vp = objs.get("hypervisor.core.virq.vplic_main")
    if vp is not None and "VPLIC_PENDING" in off:

        def bitmap(name: str, extra: int = 0) -> str:
            return " ".join(f"{w:08x}" for w in read_words(sock, vp + off[name] + extra, 3))

        lines.append(
            f"  virtual PLIC: pending {bitmap('VPLIC_PENDING')}, deferred {bitmap('VPLIC_DEFERRED')}, "
            f"in service {bitmap('VPLIC_IN_SERVICE')}, vCPU0 S enable {bitmap('VPLIC_ENABLE', 12)}, "
            f"vCPU1 S enable {bitmap('VPLIC_ENABLE', 36)}"
        )
    vc = objs.get("hypervisor.core.vm.VCPUS")
    if vc is not None and "VCPU_SIZE" in off:
        for i in range(vcpus):
            base = vc + i * off["VCPU_SIZE"]
            w = read_words(sock, base + off["VCPU_VSEIP"], 4)
            st = read_words(sock, base + off["VCPU_STATE"], 1)[0]
            tr = read_words(sock, base + off["VCPU_TRAPS"], 2)
            wf = read_words(sock, base + off["VCPU_WFI_EXITS"], 2)
            lines.append(
                f"  vCPU{i}: state {st}, vseip {w[0]}, running {w[1]}, parking {w[2]}, "
                f"mailbox {' '.join(str(x) for x in read_words(sock, base + off['VCPU_MAILBOX'], 2))}, "
                f"traps {tr[0] | tr[1] << 32}, wfi exits {wf[0] | wf[1] << 32}"
            )
    return lines


def diagnose(sock: Path, elf: Path | None, samples: int = 3, interval: float = 0.5) -> str:
    """A few samples of every hart, as lines of text; says so when the monitor cannot be reached. With the
    hypervisor's ELF, then the interrupt path's state (interrupt_state)."""
    syms = Symbols(elf)
    lines = [f"where the harts are ({samples} samples {interval} s apart, QEMU monitor):"]
    for n in range(samples):
        if n:
            time.sleep(interval)
        try:
            harts = parse_registers(query(sock, "info registers -a"))
        except OSError as e:
            lines.append(f"  sample {n + 1}: the monitor does not answer ({e})")
            continue
        for h in harts:
            lines.append(
                f"  sample {n + 1} hart {h.cpu}: {where(h, syms)}; sepc {h.sepc:#x} scause {h.scause:#x} mip {h.mip:#x}"
            )
    if elf is not None:
        offsets = read_offsets(elf)
        for n in range(2):  # twice, a second apart: do the vCPUs still exit (wake up) at all?
            if n:
                time.sleep(1.0)
            try:
                lines += interrupt_state(sock, syms, offsets)
            except (OSError, ValueError) as e:
                lines.append(f"  interrupt state: cannot be read ({e})")
    return "\n".join(lines)
