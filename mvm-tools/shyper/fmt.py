"""Human-readable forms shared by the daemon's log and the CLI: crash reasons, sizes, durations."""

from __future__ import annotations

from typing import Any

# scause exception codes (RISC-V privileged spec, table "Supervisor cause register values"; H extension codes)
EXCEPTIONS = {
    0: "instruction address misaligned",
    1: "instruction access fault",
    2: "illegal instruction",
    3: "breakpoint",
    4: "load address misaligned",
    5: "load access fault",
    6: "store/AMO address misaligned",
    7: "store/AMO access fault",
    8: "environment call from U-mode",
    9: "environment call from HS-mode",
    10: "environment call from VS-mode",
    11: "environment call from M-mode",
    12: "instruction page fault",
    13: "load page fault",
    15: "store/AMO page fault",
    18: "software check",
    19: "hardware error",
    20: "instruction guest-page fault",
    21: "load guest-page fault",
    22: "virtual instruction",
    23: "store/AMO guest-page fault",
}
GUEST_PAGE_FAULTS = (20, 21, 23)
INTERRUPT_BIT = 1 << 63


def exception_name(scause: int) -> str:
    if scause & INTERRUPT_BIT:
        return f"interrupt {scause & ~INTERRUPT_BIT}"
    return EXCEPTIONS.get(scause, f"exception {scause}")


def crash_reason(vm: dict[str, Any]) -> str:
    """Why a VM record says `crashed` (or `stopped`), from its reason, scause, stval, sepc and htval."""
    reason, scause, stval, sepc, htval = (vm.get(k, 0) for k in ("reason", "scause", "stval", "sepc", "htval"))
    where = f"sepc {sepc:#x}"
    if reason == 1:
        return f"{exception_name(scause)} (scause {scause:#x}, stval {stval:#x}, {where})"
    if reason == 2:
        gpa = (htval << 2) | (stval & 3) if scause in GUEST_PAGE_FAULTS else stval
        return f"{exception_name(scause)}: no device at guest address {gpa:#x} ({where})"
    if reason == 3:
        return "it reported a system failure (SRST)"
    if reason == 4:
        return "stopped by shyper vm stop"
    return ""


def state_text(vm: dict[str, Any]) -> str:
    state = str(vm.get("state"))
    if state == "crashed":
        return f"crashed: {crash_reason(vm)}"
    return state


def size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            v = n / (1 << shift)
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def console_device(vm: dict[str, Any]) -> str:
    return "ttyS0" if vm.get("id") == 0 else f"/dev/hvc{vm.get('console_port', vm.get('id'))}"
