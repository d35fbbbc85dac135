"""Post-link checks of the hypervisor ELF, and its size report (pyelftools)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import P_FLAGS, SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from boards import Region


@dataclass(frozen=True)
class SizeReport:
    text: int
    rodata: int
    data: int
    bss: int
    stacks: int
    image: int  # bytes from the load address to the end of the last segment in memory
    file: int  # bytes of the flat binary (text + rodata + data and padding)

    def lines(self, region: Region) -> list[str]:
        k = kib
        return [
            f"text {k(self.text)}  rodata {k(self.rodata)}  data {k(self.data)}  bss {k(self.bss)}"
            f"  stacks {k(self.stacks)}",
            f"total {k(self.image)} in memory ({100 * self.image / region.size:.1f}% of the {k(region.size)} "
            f"hypervisor region), {k(self.file)} loaded from the image",
        ]


def kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def check_elf(path: Path, entry: int, region: Region) -> list[str]:
    """Every problem found, as one line each; an empty list means the image is fit to boot."""
    errors: list[str] = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if elf["e_machine"] != "EM_RISCV" or elf.elfclass != 64:
            errors.append(f"not a 64-bit RISC-V ELF (machine {elf['e_machine']}, class {elf.elfclass})")
        if elf["e_entry"] != entry:
            errors.append(f"entry point {elf['e_entry']:#x} is not the board load address {entry:#x}")
        symtab = elf.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            undefined = sorted({s.name for s in symtab.iter_symbols() if s["st_shndx"] == "SHN_UNDEF" and s.name})
            if undefined:
                errors.append(f"undefined symbols: {', '.join(undefined)}")
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        rx = rw = 0
        for seg in loads:
            flags = seg["p_flags"]
            r, w, x = (bool(flags & P_FLAGS.PF_R), bool(flags & P_FLAGS.PF_W), bool(flags & P_FLAGS.PF_X))
            where = f"PT_LOAD at {seg['p_vaddr']:#x} (memsz {seg['p_memsz']:#x})"
            if w and x:
                errors.append(f"{where} is writable and executable (RWX)")
            elif r and x:
                rx += 1
            elif r and w:
                rw += 1
            if seg["p_memsz"] == 0:
                errors.append(f"{where} is empty")
                continue
            for kind in ("p_vaddr", "p_paddr"):
                if not region.contains(seg[kind], seg["p_memsz"]):
                    errors.append(
                        f"{where}: {kind[2:]} range [{seg[kind]:#x}, {seg[kind] + seg['p_memsz']:#x}) is outside "
                        f"the hypervisor region [{region.base:#x}, {region.end:#x})"
                    )
        if rx == 0:
            errors.append("no read-execute PT_LOAD segment")
        if rw == 0:
            errors.append("no read-write PT_LOAD segment")
    return errors


def size_report(path: Path) -> SizeReport:
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "stacks": 0}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            flags = sec["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC or sec["sh_size"] == 0:
                continue
            if sec.name == ".stacks":
                kind = "stacks"
            elif sec["sh_type"] == "SHT_NOBITS":
                kind = "bss"
            elif flags & SH_FLAGS.SHF_EXECINSTR:
                kind = "text"
            elif flags & SH_FLAGS.SHF_WRITE:
                kind = "data"
            else:
                kind = "rodata"
            sizes[kind] += sec["sh_size"]
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD" and seg["p_memsz"]]
        start = min((s["p_vaddr"] for s in loads), default=0)
        image = max((s["p_vaddr"] + s["p_memsz"] for s in loads), default=0) - start
        file_end = max((s["p_vaddr"] + s["p_filesz"] for s in loads if s["p_filesz"]), default=start)
    return SizeReport(image=image, file=file_end - start, **sizes)
