"""The `shyper` command: Rust-Shyper's verbs (system, vm) in front of the daemon's socket.

Exit status: 0 done; 1 refused or failed (by the hypervisor, or no daemon); 2 usage or config error.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import termios
import time
import tty
from collections.abc import Sequence
from typing import Any

from shyper import __version__, fmt
from shyper.schema import ConfigErrors, load_config_file
from shyper.shm import load_shm_file

SOCKET_PATH = "/run/shyper/shyper.sock"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DETACH = 0x1D  # Ctrl-]


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def ask(socket_path: str, req: dict[str, Any]) -> dict[str, Any]:
    """One request to the daemon; its answer when ok, else CliError with the daemon's code."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            s.connect(socket_path)
        except OSError as e:
            raise CliError(
                f"cannot reach the shyper daemon at {socket_path}: {e.strerror} (is `shyper system daemon` running?)"
            ) from e
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                raise CliError("the shyper daemon closed the connection without an answer")
            buf += chunk
    finally:
        s.close()
    try:
        answer = json.loads(buf)
    except ValueError as e:
        raise CliError(f"the shyper daemon's answer is not JSON: {e}") from e
    if not isinstance(answer, dict):
        raise CliError("the shyper daemon's answer is not an object")
    if not answer.get("ok"):
        code = answer.get("code")
        raise CliError(str(answer.get("error", "refused")), code if code in (EXIT_FAILED, EXIT_USAGE) else EXIT_FAILED)
    return answer


def vm_id(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a VM id") from None
    if not 0 <= value <= 7:
        raise argparse.ArgumentTypeError(f"VM id {value} is not 0 .. 7")
    return value


# Commands -----------------------------------------------------------------------------------------------------------


def cmd_daemon(args: argparse.Namespace) -> int:
    from shyper import daemon

    return daemon.run(args.mediated_cfg, args.log, args.socket, args.port)


def cmd_system_info(args: argparse.Namespace) -> int:
    answer = ask(args.socket, {"cmd": "system.info"})
    if args.json:
        out = {"system": answer["system"], "run_queues": answer.get("run_queues"), "daemon": answer["daemon"]}
        print(json.dumps(out, indent=2))
        return EXIT_OK
    s = answer["system"]
    page = s["page_size"]
    queues = answer.get("run_queues")
    harts = ", ".join(f"{h}: {hart_vms(h, v, queues)}" for h, v in enumerate(s["hart_vm"]))
    irq = f"AIA (APLIC + IMSIC, {s['aia_guests']} guest interrupt files per hart)" if s["irq_mode"] == "aia" else "PLIC"
    rows = [
        ("hypervisor", f"PyShyper {s['version']} (control protocol {s['proto_version']})"),
        ("daemon", f"shyper {answer['daemon']['version']}"),
        ("harts", f"{s['harts']} ({harts})"),
        ("irq mode", irq),
        (
            "memory",
            f"{fmt.size(s['free_pages'] * page)} free of {fmt.size(s['total_pages'] * page)} "
            f"({s['free_pages']} of {s['total_pages']} pages)",
        ),
        ("timebase", f"{s['timebase_frequency']} Hz"),
        ("vms", f"{s['vms']} of {s['max_vms']} (the MVM included)"),
    ]
    if answer["daemon"].get("mediated"):
        rows.append(("mediated", ", ".join(answer["daemon"]["mediated"]) + " (not served yet)"))
    if queues is None:
        rows.append(("run queues", "not reported by this hypervisor (it does not know SCHED_INFO)"))
    for k, v in rows:
        print(f"{k:<11} {v}")
    if queues is not None:
        print()
        print(format_run_queues(queues))
    return EXIT_OK


def hart_vms(hart: int, first: int | None, queues: list[list[dict[str, Any]]] | None) -> str:
    """The VMs with a vCPU on `hart` (`vm1+vm3` when they share it), `-` for none; SYSTEM's hart_vm (the first
    one's) without run queues."""
    if queues is None or hart >= len(queues):
        return "-" if first is None else f"vm{first}"
    ids = list(dict.fromkeys(v["vm"] for v in queues[hart]))
    return "+".join(f"vm{i}" for i in ids) or "-"


def aligned(rows: Sequence[Sequence[str]], right: tuple[int, ...], indent: str = "") -> list[str]:
    """Rows of cells in columns as wide as their widest cell (columns `right` right-aligned), two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def format_run_queues(queues: list[list[dict[str, Any]]]) -> str:
    """Each hart's run queue in order, a row per vCPU (a hart with none: one row, VM `-`)."""
    head = ("HART", "VM", "NAME", "VCPU", "PRIO", "STATE", "SLICE", "SWITCHES")
    rows = [head]
    for h, queue in enumerate(queues):
        if not queue:
            rows.append((str(h), "-", "", "", "", "", "", ""))
        for v in queue:
            rows.append(
                (
                    str(h),
                    str(v["vm"]),
                    v.get("vm_name") or "?",
                    str(v["vcpu"]),
                    str(v["priority"]),
                    v["state"],
                    f"{v['time_slice_ms']} ms",
                    str(v["switches"]),
                )
            )
    return "\n".join(aligned(rows, (0, 1, 3, 4, 6, 7)))


def cmd_system_ping(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    answer = ask(args.socket, {"cmd": "system.ping", "n": args.n})
    total = time.perf_counter() - t0
    us = sorted(t * 1e6 for t in answer["seconds"])
    median = us[len(us) // 2] if len(us) % 2 else (us[len(us) // 2 - 1] + us[len(us) // 2]) / 2
    print(
        f"control round trip (daemon <-> hypervisor, SYSTEM_INFO): {len(us)} requests, "
        f"median {median:.0f} us, min {us[0]:.0f} us, max {us[-1]:.0f} us"
    )
    print(f"shyper -> daemon -> hypervisor and back: {total * 1e3:.1f} ms for the whole command")
    return EXIT_OK


def cmd_system_power(args: argparse.Namespace) -> int:
    ask(args.socket, {"cmd": f"system.{args.action}"})
    print(f"system {args.action}: asked")
    return EXIT_OK


def cmd_vm_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config_file(args.file)  # locally first: a bad config never reaches the daemon
    except ConfigErrors as e:
        for err in e.errors:
            print(f"shyper: {args.file}: {err}", file=sys.stderr)
        return EXIT_USAGE
    with open(args.file, "rb") as f:
        obj = json.loads(f.read())
    try:
        answer = ask(
            args.socket,
            {"cmd": "vm.config", "config": obj, "base_dir": os.path.dirname(os.path.abspath(args.file))},
        )
    except CliError as e:
        if e.code == EXIT_USAGE:
            for line in str(e).splitlines():
                print(f"shyper: {args.file}: {line}", file=sys.stderr)
            return EXIT_USAGE
        raise
    for note in answer.get("notes", cfg.notes):
        print(f"shyper: note: {note}", file=sys.stderr)
    print(answer["id"])
    return EXIT_OK


def cmd_vm_action(args: argparse.Namespace) -> int:
    answer = ask(args.socket, {"cmd": f"vm.{args.action}", "id": args.id})
    if args.action in ("boot", "reboot"):
        print(f"vm {args.id}: {args.action}ed ({fmt.size(answer['loaded'])} loaded in {answer['seconds']:.2f} s)")
    else:
        print(f"vm {args.id}: {args.action}{'ped' if args.action == 'stop' else 'd'}")
    return EXIT_OK


VCPU_LABELS = ("vcpu", "hart", "priority", "", "slice", "switches", "exits")


def vcpu_rows(vms: list[dict[str, Any]], indent: str) -> dict[int, list[str]]:
    """Per VM id, a line per vCPU: `vcpu 0  hart 2  priority 10  running  slice 10 ms  switches 3  exits 5120`,
    the labels and values in columns across every VM's vCPUs."""
    cells: list[tuple[int, tuple[str, ...]]] = []
    for vm in vms:
        for c in vm.get("vcpus_detail") or []:
            values = (c["vcpu"], c["hart"], c["priority"], c["state"], c["time_slice_ms"], c["switches"], c["exits"])
            cells.append((vm["id"], tuple(str(x) for x in values)))
    if not cells:
        return {}
    widths = [max(len(vals[i]) for _, vals in cells) for i in range(len(VCPU_LABELS))]
    out: dict[int, list[str]] = {}
    for vid, vals in cells:
        parts = []
        for label, value, w in zip(VCPU_LABELS, vals, widths, strict=True):
            if not label:  # the state: a word
                parts.append(value.ljust(w))
            elif label == "slice":
                parts.append(f"slice {value.rjust(w)} ms")
            else:
                parts.append(f"{label} {value.rjust(w)}")
        out.setdefault(vid, []).append((indent + "  ".join(parts)).rstrip())
    return out


def format_table(vms: list[dict[str, Any]]) -> str:
    """A row per VM, and under it a line per vCPU (its hart, priority, state, time slice, switches, exits),
    indented to the NAME column."""
    head = ("ID", "NAME", "STATE", "VCPUS", "HARTS", "MEMORY", "UPTIME", "CONSOLE", "EXITS")
    rows = [head]
    for v in vms:
        rows.append(
            (
                str(v["id"]),
                v["name"],
                fmt.state_text(v),
                str(v["vcpus"]),
                ",".join(str(h) for h in v["harts"]),
                fmt.size(v["memory"]),
                "-" if v.get("uptime") is None else fmt.duration(v["uptime"]),
                v.get("console") or fmt.console_device(v),
                str(v["exits"]),
            )
        )
    lines = aligned(rows, (0, 3, 8))
    indent = " " * (max(len(r[0]) for r in rows) + 2)
    sub = vcpu_rows(vms, indent)
    out = [lines[0]]
    for vm, line in zip(vms, lines[1:], strict=True):
        out.append(line)
        out += sub.get(vm["id"], [])
    return "\n".join(out)


def cmd_vm_list(args: argparse.Namespace) -> int:
    answer = ask(args.socket, {"cmd": "vm.list"})
    if args.json:
        print(json.dumps(answer["vms"], indent=2))
    else:
        print(format_table(answer["vms"]))
    return EXIT_OK


def cmd_shm_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_shm_file(args.file)  # locally first: a bad config never reaches the daemon
    except ConfigErrors as e:
        for err in e.errors:
            print(f"shyper: {args.file}: {err}", file=sys.stderr)
        return EXIT_USAGE
    with open(args.file, "rb") as f:
        obj = json.loads(f.read())
    try:
        ask(args.socket, {"cmd": "shm.config", "config": obj})
    except CliError as e:
        if e.code == EXIT_USAGE:
            for line in str(e).splitlines():
                print(f"shyper: {args.file}: {line}", file=sys.stderr)
            return EXIT_USAGE
        raise
    print(f"shared memory {cfg.name}: defined ({fmt.size(cfg.size)} at {cfg.ipa:#x}, doorbell {cfg.doorbell_ipa:#x})")
    return EXIT_OK


def format_shm_table(regions: list[dict[str, Any]]) -> str:
    head = ("NAME", "SIZE", "IPA", "DOORBELL", "IRQ", "VMS")
    rows = [head]
    for r in regions:
        vms = ", ".join(f"{v['name']} {v['access']}" + (f" (vm{v['id']})" if v.get("id") else "") for v in r["vms"])
        rows.append((r["name"], fmt.size(r["size"]), f"{r['ipa']:#x}", f"{r['doorbell_ipa']:#x}", str(r["irq"]), vms))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for row in rows:
        lines.append(
            "  ".join(
                c.rjust(w) if i == 4 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    return "\n".join(lines)


def cmd_shm_list(args: argparse.Namespace) -> int:
    answer = ask(args.socket, {"cmd": "shm.list"})
    if args.json:
        print(json.dumps(answer["shm"], indent=2))
    else:
        print(format_shm_table(answer["shm"]))
    return EXIT_OK


def cmd_shm_remove(args: argparse.Namespace) -> int:
    ask(args.socket, {"cmd": "shm.remove", "name": args.name})
    print(f"shared memory {args.name}: removed")
    return EXIT_OK


def cmd_vm_console(args: argparse.Namespace) -> int:
    if args.id == 0:
        raise CliError("vm 0 is the MVM: its console is ttyS0, the one this shell runs on")
    vm = ask(args.socket, {"cmd": "vm.info", "id": args.id})["vm"]
    device = args.device or f"/dev/hvc{vm['console_port']}"
    return attach(device, vm["name"], args.id)


def attach(device: str, name: str, vid: int, stdin: int = 0, stdout: int = 1) -> int:
    """Copy bytes between the terminal and `device` until Ctrl-] is typed (or the device ends)."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_NOCTTY)
    except OSError as e:
        raise CliError(f"cannot open {device}: {e.strerror}") from e
    saved: list[Any] | None = None
    try:
        if os.isatty(fd):
            # The MVM's side of the line passes every byte through, no echo. TCSANOW, not setraw's TCSAFLUSH: a
            # flush empties a console whose input is throttled (the daemon holds it, nobody read it yet) without
            # unthrottling it, and Linux's hvc then never reads that port again.
            tty.setraw(fd, termios.TCSANOW)
        if os.isatty(stdin):
            saved = termios.tcgetattr(stdin)
            tty.setraw(stdin)
        os.write(stdout, f"[attached to vm {vid} ({name}) on {device}; Ctrl-] detaches]\r\n".encode())
        while True:
            ready, _, _ = select.select([stdin, fd], [], [])
            if fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    os.write(stdout, f"\r\n[{device} closed]\r\n".encode())
                    return EXIT_FAILED
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 4096)
                if not data:
                    break
                cut = data.find(bytes([DETACH]))
                if cut >= 0:
                    if cut:
                        os.write(fd, data[:cut])
                    break
                os.write(fd, data)
        os.write(stdout, b"\r\n[detached]\r\n")
        return EXIT_OK
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        os.close(fd)


# The parser ---------------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shyper",
        description="Manage PyShyper's guest VMs from the management VM (talks to the shyper daemon).",
        epilog="Exit status: 0 done, 1 refused or failed, 2 usage or config error.",
    )
    p.add_argument("--version", action="version", version=f"shyper {__version__}")
    p.add_argument(
        "--socket",
        default=os.environ.get("SHYPER_SOCKET", SOCKET_PATH),
        help="the daemon's socket (default %(default)s)",
    )
    top = p.add_subparsers(dest="group", metavar="{system,vm,shm}", required=True)

    system = top.add_parser(
        "system", help="the hypervisor and the daemon", description="The hypervisor and the daemon."
    )
    ss = system.add_subparsers(dest="command", required=True)
    d = ss.add_parser(
        "daemon",
        help="run the daemon in the foreground",
        description="Run the daemon in the foreground: owns the control port, serves this command on --socket. "
        "Mediated virtio-blk disks (Rust-Shyper's mediated-cfg.json) are checked and logged, not served yet.",
    )
    d.add_argument("mediated_cfg", nargs="?", metavar="mediated-cfg.json", help='{"mediated": ["/path/disk.img", ...]}')
    d.add_argument("--log", metavar="FILE", help="log to FILE instead of stderr")
    d.add_argument(
        "--port", metavar="DEV", help="the control port device (default: the virtio port named org.pyshyper.control)"
    )
    d.set_defaults(func=cmd_daemon)
    i = ss.add_parser(
        "info",
        help="hypervisor version, harts and their run queues, IRQ mode, memory, VMs",
        description="Show the hypervisor's state, and each hart's run queue (its vCPUs in order, with their VM, "
        "priority, state, time slice and switches).",
    )
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_system_info)
    pg = ss.add_parser(
        "ping",
        help="time control round trips to the hypervisor",
        description="Time N control round trips between the daemon and the hypervisor (SYSTEM_INFO requests on "
        "the control port): median, min and max.",
    )
    pg.add_argument("-n", type=int, default=10, metavar="N", help="round trips (default %(default)s)")
    pg.set_defaults(func=cmd_system_ping)
    for action, text in (
        ("reboot", "reset the machine (every VM ends)"),
        ("shutdown", "power the machine off (every VM ends)"),
    ):
        a = ss.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        a.set_defaults(func=cmd_system_power, action=action)

    vm = top.add_parser("vm", help="guest VMs", description="Guest VMs (ids 1 .. 7; vm 0 is this MVM).")
    vs = vm.add_subparsers(dest="command", required=True)
    c = vs.add_parser(
        "config",
        help="check a VM config and create the VM; prints its id",
        description="Check FILE.json (errors name the field, exit 2, nothing changes), then create the VM through "
        "the daemon and print its id.",
    )
    c.add_argument("file", metavar="FILE.json")
    c.set_defaults(func=cmd_vm_config)
    for action, text in (
        ("boot", "load the VM's images (fresh device tree) and start it"),
        ("stop", "stop the VM at once (its memory is kept)"),
        ("reboot", "stop the VM if running, reload its images and start it"),
        ("remove", "stop the VM if running and free it (every page back to the pool)"),
    ):
        a = vs.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        a.add_argument("id", type=vm_id, metavar="ID")
        a.set_defaults(func=cmd_vm_action, action=action)
    lst = vs.add_parser(
        "list",
        help="the VMs as a table",
        description="List the VMs (the MVM first), each with a line per vCPU: its hart, priority and state "
        "(running, ready: waiting for its hart, waiting: in WFI, stopped), time slice, switches and exits.",
    )
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=cmd_vm_list)
    con = vs.add_parser(
        "console",
        help="attach to a VM's console (Ctrl-] detaches)",
        description="Attach this terminal to VM ID's console /dev/hvcID (raw mode). Ctrl-] detaches.",
    )
    con.add_argument("id", type=vm_id, metavar="ID")
    con.add_argument("--device", help="the console device (default /dev/hvcID)")
    con.set_defaults(func=cmd_vm_console)

    shm = top.add_parser(
        "shm",
        help="shared memory between guest VMs",
        description="Shared memory regions between guest VMs: each is defined (config) before the VMs it names "
        "are configured; each of those VMs maps it (rw or ro) at its ipa and gets a doorbell page whose RING "
        "register interrupts the others. A VM it does not name cannot reach it.",
    )
    hs = shm.add_subparsers(dest="command", required=True)
    sc = hs.add_parser(
        "config",
        help="check a shared memory config and define the region",
        description='Check FILE.json ({"name": "link0", "ipa": "0x90000000", "size": "2M", "doorbell_ipa": '
        '"0x90200000", "irq": 8, "vms": {"vm1": "rw", "vm2": "ro"}}; doorbell_ipa defaults to the page after the '
        "region; errors name the field, exit 2, nothing changes), then define the region through the daemon. "
        "Define it before `shyper vm config` of the VMs it names.",
    )
    sc.add_argument("file", metavar="FILE.json")
    sc.set_defaults(func=cmd_shm_config)
    sl = hs.add_parser("list", help="the shared memory regions as a table", description="List the regions.")
    sl.add_argument("--json", action="store_true", help="print JSON")
    sl.set_defaults(func=cmd_shm_list)
    sr = hs.add_parser(
        "remove",
        help="remove a region no VM maps",
        description="Remove the region NAME (refused while a VM maps it: remove those VMs first).",
    )
    sr.add_argument("name", metavar="NAME")
    sr.set_defaults(func=cmd_shm_remove)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as e:
        for line in str(e).splitlines():
            print(f"shyper: {line}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return EXIT_FAILED
