"""`shyper system daemon`: owns the hypervisor's control port and serves the `shyper` command.

- The control port is the MVM virtio-console port named `org.pyshyper.control` (PROTOCOL.md): found through
  /sys/class/virtio-ports/*/name and opened as /dev/vportNpM. `Channel` frames requests with ids, matches the
  responses, checks every field both ways (shyper.proto) and hands EVENT_VM_STATE records to the daemon.
- On start the daemon says HELLO and reads every VM back (VM_LIST, then VM_CONFIG_GET for each GVM): the hypervisor
  is the source of truth, so a killed and restarted daemon loses no VM.
- The `shyper` command talks to it over the Unix socket /run/shyper/shyper.sock, one JSON object per line each way
  (PROTOCOL.md, last section).
- Booting a VM loads its kernel, ramdisk and device tree (generated, or the config's with a fresh rng-seed) with
  VM_LOAD in chunks, then VM_BOOT. A VM that asks for a reboot (state `rebooting`) is reloaded and booted.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import queue
import socket
import socketserver
import stat
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

from shyper import __version__, devtree, fmt, proto, shm
from shyper.schema import ConfigErrors, VmConfig, load_config

CONTROL_PORT_NAME = "org.pyshyper.control"
VIRTIO_PORTS = "/sys/class/virtio-ports"
SOCKET_PATH = "/run/shyper/shyper.sock"
REQUEST_TIMEOUT = 30.0
PING_MAX = 10000  # round trips one `shyper system ping` may ask for
MAX_REQUEST_LINE = 1 << 20
MEDIATED_NOTE = "mediated virtio-blk disks are not served yet: the entries are checked and logged only"

log = logging.getLogger("shyper")


class Failure(Exception):
    """A request the daemon could not do: `code` is the exit status the command returns (1 refused/failed, 2 config
    or usage error)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class ChannelClosed(Exception):
    pass


def find_control_port(sysfs: str = VIRTIO_PORTS, dev: str = "/dev") -> str | None:
    """/dev/vportNpM of the virtio port named org.pyshyper.control, or None."""
    for name_file in sorted(glob.glob(os.path.join(sysfs, "*", "name"))):
        try:
            with open(name_file) as f:
                name = f.read().strip()
        except OSError:
            continue
        if name == CONTROL_PORT_NAME:
            return os.path.join(dev, os.path.basename(os.path.dirname(name_file)))
    return None


def load_mediated(path: str) -> list[str]:
    """Rust-Shyper's mediated-cfg.json: {"mediated": ["/path/to/disk.img", ...]}. Raises Failure(code 2)."""
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read(1 << 20))
    except OSError as e:
        raise Failure(f"{path}: {e.strerror}", 2) from e
    except ValueError as e:
        raise Failure(f"{path} is not JSON: {e}", 2) from e
    if not isinstance(obj, dict):
        raise Failure(f"{path}: not an object", 2)
    for key in obj:
        if key != "mediated":
            raise Failure(f"{path}: {key}: unknown field (known: mediated)", 2)
    entries = obj.get("mediated")
    if not isinstance(entries, list):
        raise Failure(f"{path}: mediated: missing or not a list", 2)
    for i, entry in enumerate(entries):
        if not isinstance(entry, str) or not entry:
            raise Failure(f"{path}: mediated[{i}]: not a file name", 2)
    return entries


class Channel:
    """Requests and responses on the control port (any file descriptor that reads and writes the byte stream)."""

    def __init__(self, fd: int, timeout: float = REQUEST_TIMEOUT, eof_is_close: bool = True) -> None:
        self.fd = fd
        self.timeout = timeout
        self.eof_is_close = eof_is_close  # a socket's EOF is the end; a virtio port reads 0 while the host is closed
        self.decoder = proto.FrameDecoder()
        self.events: queue.Queue[proto.VmRecord | None] = queue.Queue()
        self._lock = threading.Lock()  # one request in flight at a time
        self._next_id = 1
        self._pending: dict[int, tuple[int, threading.Event, list[proto.Frame]]] = {}
        self._pending_lock = threading.Lock()
        self.closed = False
        self.round_trips = 0
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self._reader = threading.Thread(target=self._read_loop, name="control-reader", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self.closed = True
        self.events.put(None)
        with self._pending_lock:
            for _, ev, _ in self._pending.values():
                ev.set()

    def _read_loop(self) -> None:
        warned = False
        while not self.closed:
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                log.error("control port: read failed: %s", e)
                break
            if not data:
                if self.eof_is_close:
                    break
                if not warned:
                    log.warning("control port: the hypervisor's end is not open; waiting")
                    warned = True
                time.sleep(0.2)
                continue
            warned = False
            for item in self.decoder.feed(data):
                if isinstance(item, proto.ProtocolError):
                    log.warning("control port: dropped a frame from the hypervisor: %s", item)
                    continue
                self._dispatch(item)
        if not self.closed:
            log.error("control port closed")
        self.close()

    def _dispatch(self, frame: proto.Frame) -> None:
        try:
            proto.check_incoming(frame)
        except proto.ProtocolError as e:
            log.warning("control port: dropped %s: %s", frame.describe(), e)
            return
        if frame.type == proto.EVENT_VM_STATE:
            self.events.put(proto.decode_vm(frame.payload))
            return
        with self._pending_lock:
            slot = self._pending.get(frame.id)
            if slot is None or slot[0] | proto.RESPONSE_BIT != frame.type:
                log.warning("control port: dropped %s: no such request is waiting", frame.describe())
                return
            slot[2].append(frame)
            slot[1].set()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError as e:
                raise ChannelClosed(f"control port: write failed: {e}") from e
            view = view[n:]

    def request(self, type_: int, payload: bytes = b"") -> bytes:
        """Send one request, wait for its response; the OK payload (layout checked) or ResponseError /
        ProtocolError / ChannelClosed / TimeoutError."""
        with self._lock:
            if self.closed:
                raise ChannelClosed("the control port is closed")
            rid = self._next_id
            self._next_id = self._next_id % 0xFFFF_FFFF + 1  # ids 1 .. 2^32-1, 0 is for events
            ev = threading.Event()
            got: list[proto.Frame] = []
            with self._pending_lock:
                self._pending[rid] = (type_, ev, got)
            try:
                self._write(proto.encode_frame(proto.Frame(type_, rid, 0, payload)))
                if not ev.wait(self.timeout):
                    raise TimeoutError(
                        f"no answer from the hypervisor to {proto.MESSAGE_NAMES[type_]} in {self.timeout:.0f} s"
                    )
            finally:
                with self._pending_lock:
                    self._pending.pop(rid, None)
            if not got:
                raise ChannelClosed("the control port closed while waiting for an answer")
            self.round_trips += 1
            return proto.check_response(type_, got[0])


class Daemon:
    def __init__(
        self,
        channel: Channel,
        socket_path: str = SOCKET_PATH,
        cpu: devtree.HostCpu | Callable[[], devtree.HostCpu] = devtree.host_cpu,
        mediated: list[str] | None = None,
        load_chunk: int = proto.MAX_LOAD_CHUNK,
        console_dir: str = "/dev",
    ) -> None:
        self.ch = channel
        self.socket_path = socket_path
        self._cpu = cpu
        self.mediated = mediated or []
        self.load_chunk = load_chunk
        self.system: proto.SystemRecord | None = None
        self.vms: dict[int, proto.VmRecord] = {}
        self._seen: dict[int, int] = {}  # VM id -> the state the log last showed
        self.configs: dict[int, VmConfig] = {}
        self.config_errors: dict[int, str] = {}
        self._vm_locks: dict[int, threading.RLock] = {}
        self._state_lock = threading.Lock()
        self.server: socketserver.ThreadingUnixStreamServer | None = None
        self._event_thread: threading.Thread | None = None
        self.consoles: dict[int, int] = {}  # VM id -> the daemon's descriptor of its console device (hold_console)
        self.console_dir = console_dir

    # -- start ------------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """HELLO, read every VM back, start handling events and serving the socket."""
        self.ch.start()
        self.system = proto.decode_system(self.ch.request(proto.HELLO, proto.encode_hello()))
        s = self.system
        log.info(
            "hypervisor %s, protocol %d, %d harts, IRQ mode %s%s, %s of %s free",
            ".".join(map(str, s.version)),
            s.proto_version,
            s.harts,
            s.irq_mode_name.upper(),
            f" ({s.aia_guests} guest files per hart)" if s.irq_mode else "",
            fmt.size(s.free_pages * s.page_size),
            fmt.size(s.total_pages * s.page_size),
        )
        for path in self.mediated:
            log.info("mediated disk %s%s", path, "" if os.path.exists(path) else " (does not exist)")
        if self.mediated:
            log.info(MEDIATED_NOTE)
        self.resync()
        self._event_thread = threading.Thread(target=self._event_loop, name="events", daemon=True)
        self._event_thread.start()
        for vm in list(self.vms.values()):
            if vm.state == proto.REBOOTING:
                self.ch.events.put(vm)  # asked for a reboot while no daemon ran
        self._listen()

    def resync(self) -> None:
        records = proto.decode_vm_list(self.ch.request(proto.VM_LIST))
        with self._state_lock:
            self.vms = {r.id: r for r in records}
            self._seen = {r.id: r.state for r in records}
        for r in records:
            log.info("vm %d %s: %s", r.id, r.name, fmt.state_text(r.to_json()))
            if r.id == 0:
                continue
            raw = self.ch.request(proto.VM_CONFIG_GET, proto.encode_id(r.id))
            self._remember_config(r.id, raw)
            self.hold_console(r)

    def hold_console(self, rec: proto.VmRecord) -> None:
        """Keep the GVM's console device (/dev/hvcN) open in raw mode for as long as the VM exists. Linux's hvc
        driver resets a console's termios when its last holder closes it (TTY_DRIVER_RESET_TERMIOS), and a
        console opened with the default termios echoes the guest's output back into the guest's input (its shell
        then runs its own boot log). Held here, `cat /dev/hvcN`, `echo > /dev/hvcN` and `shyper vm console` all
        find it raw. The daemon never reads it: the bytes wait for whoever does."""
        if rec.id == 0 or rec.id in self.consoles:
            return
        dev = os.path.join(self.console_dir, f"hvc{rec.console_port}")
        try:
            fd = os.open(dev, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            log.warning("vm %d: cannot hold its console %s: %s", rec.id, dev, e.strerror)
            return
        try:
            if os.isatty(fd):
                tty.setraw(fd, termios.TCSANOW)  # no flush: see cli.attach
        except OSError as e:
            log.warning("vm %d: cannot make its console %s raw: %s", rec.id, dev, e.strerror)
        self.consoles[rec.id] = fd

    def release_console(self, vm_id: int) -> None:
        fd = self.consoles.pop(vm_id, None)
        if fd is not None:
            os.close(fd)

    def _remember_config(self, vm_id: int, raw: bytes) -> None:
        try:
            cfg = load_config(json.loads(raw), "/", self._irq_mode(), self.system.harts if self.system else None)
        except (ValueError, UnicodeDecodeError, ConfigErrors) as e:
            self.config_errors[vm_id] = str(e).replace("\n", "; ")
            log.error("vm %d: its stored config does not load (booting it will fail): %s", vm_id, e)
            self.configs.pop(vm_id, None)
            return
        self.configs[vm_id] = cfg
        self.config_errors.pop(vm_id, None)

    def _irq_mode(self) -> str | None:
        return self.system.irq_mode_name if self.system else None

    def host_cpu(self) -> devtree.HostCpu:
        if callable(self._cpu):
            self._cpu = self._cpu()
        return self._cpu

    def _vm_lock(self, vm_id: int) -> threading.RLock:
        with self._state_lock:
            return self._vm_locks.setdefault(vm_id, threading.RLock())

    # -- events -----------------------------------------------------------------------------------------------------

    def _event_loop(self) -> None:
        while True:
            rec = self.ch.events.get()
            if rec is None:
                return
            try:
                self.on_state(rec)
            except Exception:  # a failed reboot must not end event handling
                log.exception("vm %d: handling its state change failed", rec.id)

    def on_state(self, rec: proto.VmRecord) -> None:
        with self._state_lock:
            old = self._seen.get(rec.id)  # the state last logged (self.vms also follows the requests' answers)
            self._seen[rec.id] = rec.state
            self.vms[rec.id] = rec
        was = proto.STATE_NAMES[old] if old else "none"
        log.info("vm %d %s: %s -> %s", rec.id, rec.name, was, fmt.state_text(rec.to_json()))
        if rec.state == proto.REBOOTING and rec.id != 0:
            log.info("vm %d %s: asked for a reboot: reloading its images", rec.id, rec.name)
            try:
                self.boot(rec.id)
            except Failure as e:
                log.error("vm %d %s: reboot failed: %s", rec.id, rec.name, e)

    # -- operations -------------------------------------------------------------------------------------------------

    def call(self, type_: int, payload: bytes = b"", config_error: bool = False) -> bytes:
        """A request whose refusal becomes a Failure (EINVAL is a config error, code 2, when `config_error`)."""
        try:
            return self.ch.request(type_, payload)
        except proto.ResponseError as e:
            raise Failure(str(e), 2 if config_error and e.code == proto.EINVAL else 1) from e
        except proto.ProtocolError as e:
            raise Failure(f"malformed answer from the hypervisor to {proto.MESSAGE_NAMES[type_]}: {e}") from e
        except (ChannelClosed, TimeoutError) as e:
            raise Failure(str(e)) from e

    def system_info(self) -> proto.SystemRecord:
        self.system = proto.decode_system(self.call(proto.SYSTEM_INFO))
        return self.system

    def ping(self, n: int) -> list[float]:
        """n control round trips (SYSTEM_INFO, the lightest request: the hypervisor reads its state and answers),
        each one's seconds from the frame written to the answer read."""
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.call(proto.SYSTEM_INFO)
            times.append(time.perf_counter() - t0)
        return times

    def vm_list(self) -> list[proto.VmRecord]:
        records = proto.decode_vm_list(self.call(proto.VM_LIST))
        with self._state_lock:
            self.vms = {r.id: r for r in records}
        return records

    def sched_info(self) -> list[proto.VcpuRecord] | None:
        """Every vCPU with its hart, priority and state (SCHED_INFO); None from a hypervisor that does not know the
        request (ETYPE: it predates the scheduler), so that listings still work there."""
        try:
            return proto.decode_sched_info(self.call(proto.SCHED_INFO))
        except Failure as e:
            cause = e.__cause__
            if not isinstance(cause, proto.ResponseError) or cause.code != proto.ETYPE:
                raise
            log.warning("SCHED_INFO: %s: the hypervisor reports no run queues", cause)
            return None

    def run_queues(self, vcpus: list[proto.VcpuRecord] | None, harts: int) -> list[list[dict[str, Any]]] | None:
        """Per present hart, its run queue in order: each vCPU with its VM's id and name."""
        if vcpus is None:
            return None
        with self._state_lock:
            names = {i: r.name for i, r in self.vms.items()}
        queues: list[list[dict[str, Any]]] = [[] for _ in range(harts)]
        for v in vcpus:
            if v.hart < harts:
                entry = {"vm": v.vm_id, "vm_name": names.get(v.vm_id), **v.to_json()}
                del entry["hart"]
                queues[v.hart].append(entry)
        return queues

    def vm_info(self, vm_id: int) -> proto.VmRecord:
        rec = proto.decode_vm(self.call(proto.VM_INFO, proto.encode_id(vm_id)))
        with self._state_lock:
            self.vms[vm_id] = rec
        return rec

    def configure(self, obj: Any, base_dir: str) -> tuple[int, VmConfig]:
        sys_rec = self.system_info()
        try:
            cfg = load_config(obj, base_dir, sys_rec.irq_mode_name, sys_rec.harts)
        except ConfigErrors as e:
            raise Failure(str(e), 2) from e
        create = proto.CreateRecord(
            name=cfg.name,
            vcpus=cfg.vcpus,
            master=cfg.master,
            hart_mask=cfg.hart_mask,
            entry_ipa=cfg.entry_ipa,
            dtb_ipa=cfg.dtb_ipa,
            console_ipa=cfg.console.base,
            console_irq=cfg.console.irq,
            regions=tuple((r.ipa, r.size) for r in cfg.regions),
            config=cfg.stored_json(),
            time_slice_ms=cfg.time_slice_ms or 0,  # 0: the hypervisor's default
            priority=cfg.priority,
        )
        vm_id = proto.decode_id(self.call(proto.VM_CREATE, proto.encode_create(create), config_error=True))
        self.configs[vm_id] = cfg
        self.config_errors.pop(vm_id, None)
        for note in cfg.notes:
            log.info("vm %d %s: %s", vm_id, cfg.name, note)
        log.info(
            "vm %d %s: created (%s, harts %s, priority %d, time slice %s)",
            vm_id,
            cfg.name,
            fmt.size(cfg.memory),
            cfg.harts,
            cfg.priority,
            "default" if cfg.time_slice_ms is None else f"{cfg.time_slice_ms} ms",
        )
        try:
            self.hold_console(self.vm_info(vm_id))
        except Failure as e:
            log.warning("vm %d: VM_INFO after VM_CREATE failed: %s", vm_id, e)
        return vm_id, cfg

    def shm_list(self) -> list[proto.ShmRecord]:
        return proto.decode_shm_list(self.call(proto.SHM_LIST))

    def shm_config(self, obj: Any) -> shm.ShmConfig:
        try:
            cfg = shm.load_shm(obj, self._irq_mode())
        except ConfigErrors as e:
            raise Failure(str(e), 2) from e
        self.call(proto.SHM_CREATE, proto.encode_shm(cfg.record()), config_error=True)
        log.info(
            "shared memory %s: defined (%s at %#x, doorbell %#x irq %d; %s)",
            cfg.name,
            fmt.size(cfg.size),
            cfg.ipa,
            cfg.doorbell_ipa,
            cfg.irq,
            ", ".join(f"{n} {a}" for n, a in cfg.vms.items()),
        )
        return cfg

    def shm_remove(self, name: str) -> None:
        try:
            raw = proto.encode_name(name)
        except proto.ProtocolError as e:
            raise Failure(f"name: {e}", 2) from e
        self.call(proto.SHM_REMOVE, raw)
        log.info("shared memory %s: removed", name)

    def _config(self, vm_id: int) -> VmConfig:
        if vm_id == 0:
            raise Failure("vm 0 is the MVM: the hypervisor boots it, the daemon cannot")
        cfg = self.configs.get(vm_id)
        if cfg is None:
            raw = self.call(proto.VM_CONFIG_GET, proto.encode_id(vm_id))  # ENOVM: no such VM
            self._remember_config(vm_id, raw)
            cfg = self.configs.get(vm_id)
        if cfg is None:
            raise Failure(f"vm {vm_id}: its config does not load: {self.config_errors.get(vm_id)}")
        return cfg

    def load(self, vm_id: int, ipa: int, data: bytes, what: str) -> None:
        total = len(data)
        step = max(total // 10, 1)
        next_report = step
        t0 = time.monotonic()
        for off in range(0, total, self.load_chunk):
            chunk = data[off : off + self.load_chunk]
            self.call(proto.VM_LOAD, proto.encode_load(vm_id, ipa + off, chunk))
            done = off + len(chunk)
            if done >= next_report and done < total:
                log.info("vm %d: loading %s: %s of %s", vm_id, what, fmt.size(done), fmt.size(total))
                next_report += step
        dt = max(time.monotonic() - t0, 1e-9)
        log.info(
            "vm %d: loaded %s (%s at %#x) in %.2f s, %.1f MiB/s",
            vm_id,
            what,
            fmt.size(total),
            ipa,
            dt,
            total / dt / 2**20,
        )

    def _read_file(self, path: str, what: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise Failure(f"{what} {path}: {e.strerror}") from e

    def device_tree(self, cfg: VmConfig, initrd_size: int) -> bytes:
        if cfg.dtb_file:
            try:
                return devtree.with_rng_seed(self._read_file(cfg.dtb_file, "device tree"))
            except ValueError as e:
                raise Failure(f"{cfg.dtb_file}: {e}") from e
        mode = self._irq_mode() or "plic"
        try:
            cpu = self.host_cpu()
        except OSError as e:
            raise Failure(f"cannot read the MVM's cpu description for the GVM's device tree: {e}") from e
        shared = shm.regions_of(self.shm_list(), cfg.name)
        blob = devtree.gvm_device_tree(cfg, mode, cpu, initrd_size, shared=shared)
        if cfg.region_of(cfg.dtb_ipa, len(blob)) is None:
            raise Failure(f"image.device_tree_load_ipa: the {len(blob)}-byte device tree does not fit its region")
        return blob

    def boot(self, vm_id: int) -> dict[str, Any]:
        """Load the VM's images (fresh device tree) and run it."""
        with self._vm_lock(vm_id):
            cfg = self._config(vm_id)
            t0 = time.monotonic()
            kernel = self._read_file(cfg.kernel, "kernel")
            ramdisk = self._read_file(cfg.ramdisk, "ramdisk") if cfg.ramdisk else b""
            for what, ipa, data in (("kernel", cfg.kernel_ipa, kernel), ("ramdisk", cfg.ramdisk_ipa, ramdisk)):
                if data and cfg.region_of(ipa, len(data)) is None:
                    raise Failure(f"{what} of {len(data)} bytes at {ipa:#x} is not inside one memory region")
            dtb = self.device_tree(cfg, len(ramdisk))
            self.load(vm_id, cfg.kernel_ipa, kernel, f"kernel {cfg.kernel}")
            if ramdisk:
                self.load(vm_id, cfg.ramdisk_ipa, ramdisk, f"ramdisk {cfg.ramdisk}")
            self.load(vm_id, cfg.dtb_ipa, dtb, "device tree")
            self.call(proto.VM_BOOT, proto.encode_id(vm_id))
            dt = time.monotonic() - t0
            loaded = len(kernel) + len(ramdisk) + len(dtb)
            log.info("vm %d %s: booted (%s loaded in %.2f s)", vm_id, cfg.name, fmt.size(loaded), dt)
            return {"id": vm_id, "loaded": loaded, "seconds": round(dt, 3)}

    def stop(self, vm_id: int) -> None:
        if vm_id == 0:
            raise Failure("vm 0 is the MVM: it cannot be stopped (shyper system shutdown ends everything)")
        with self._vm_lock(vm_id):
            self.call(proto.VM_STOP, proto.encode_id(vm_id))
            log.info("vm %d: stopped", vm_id)

    def reboot(self, vm_id: int) -> dict[str, Any]:
        if vm_id == 0:
            raise Failure("vm 0 is the MVM: reboot it from its shell (or shyper system reboot)")
        with self._vm_lock(vm_id):
            if self.vm_info(vm_id).state == proto.RUNNING:
                self.call(proto.VM_STOP, proto.encode_id(vm_id))
            return self.boot(vm_id)

    def remove(self, vm_id: int) -> None:
        if vm_id == 0:
            raise Failure("vm 0 is the MVM: it cannot be removed")
        with self._vm_lock(vm_id):
            self.call(proto.VM_REMOVE, proto.encode_id(vm_id))
            self.release_console(vm_id)
            self.configs.pop(vm_id, None)
            with self._state_lock:
                self.vms.pop(vm_id, None)
                self._seen.pop(vm_id, None)
            log.info("vm %d: removed", vm_id)

    # -- the CLI socket ---------------------------------------------------------------------------------------------

    def handle(self, req: Any) -> dict[str, Any]:
        """One request from the `shyper` command; the answer PROTOCOL.md's last section describes."""
        try:
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                raise Failure('a request is a JSON object with a "cmd"', 2)
            return {"ok": True, **self._handle(req["cmd"], req)}
        except Failure as e:
            return {"ok": False, "code": e.code, "error": str(e)}

    def _id(self, req: dict[str, Any]) -> int:
        v = req.get("id")
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < proto.VM_MAX:
            raise Failure(f"VM id {v!r} is not 0 .. {proto.VM_MAX - 1}", 2)
        return v

    def _vm_json(self, rec: proto.VmRecord, vcpus: list[proto.VcpuRecord] | None) -> dict[str, Any]:
        out = rec.to_json()
        # its vCPUs by index (None: the hypervisor reports no run queues)
        out["vcpus_detail"] = (
            None if vcpus is None else [v.to_json() for v in sorted(vcpus, key=lambda v: v.vcpu) if v.vm_id == rec.id]
        )
        out["console"] = fmt.console_device(out)
        if rec.state in (proto.CRASHED, proto.STOPPED) and rec.reason:
            out["reason_text"] = fmt.crash_reason(out)
        s = self.system
        out["uptime"] = (
            (s.time - rec.boot_time) / s.timebase_frequency
            if s and rec.state == proto.RUNNING and rec.boot_time and s.time >= rec.boot_time
            else None
        )
        return out

    def _handle(self, cmd: str, req: dict[str, Any]) -> dict[str, Any]:
        if cmd == "system.info":
            s = self.system_info()
            self.vm_list()  # the VMs' names for the run queues
            return {
                "system": s.to_json(),
                "run_queues": self.run_queues(self.sched_info(), s.harts),
                "daemon": {"version": __version__, "mediated": self.mediated},
            }
        if cmd == "system.ping":
            n = req.get("n", 10)
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= PING_MAX:
                raise Failure(f"n: {n!r} is not 1 .. {PING_MAX}", 2)
            return {"n": n, "seconds": self.ping(n)}
        if cmd in ("system.shutdown", "system.reboot"):
            log.info("%s asked", cmd)
            self.call(proto.SYSTEM_SHUTDOWN if cmd == "system.shutdown" else proto.SYSTEM_REBOOT)
            return {}
        if cmd == "vm.config":
            base_dir = req.get("base_dir", "/")
            if not isinstance(base_dir, str) or not os.path.isabs(base_dir):
                raise Failure("base_dir must be an absolute directory", 2)
            vm_id, cfg = self.configure(req.get("config"), base_dir)
            return {"id": vm_id, "name": cfg.name, "notes": cfg.notes}
        if cmd == "vm.list":
            self.system_info()
            records = self.vm_list()
            vcpus = self.sched_info()
            return {
                "system": self.system.to_json() if self.system else {},
                "vms": [self._vm_json(r, vcpus) for r in records],
            }
        if cmd == "vm.info":
            self.system_info()
            rec = self.vm_info(self._id(req))
            return {"vm": self._vm_json(rec, self.sched_info())}
        if cmd == "vm.boot":
            return self.boot(self._id(req))
        if cmd == "vm.reboot":
            return self.reboot(self._id(req))
        if cmd == "vm.stop":
            self.stop(self._id(req))
            return {}
        if cmd == "vm.remove":
            self.remove(self._id(req))
            return {}
        if cmd == "shm.config":
            return {"name": self.shm_config(req.get("config")).name}
        if cmd == "shm.list":
            return {"shm": [r.to_json() for r in self.shm_list()]}
        if cmd == "shm.remove":
            name = req.get("name")
            if not isinstance(name, str):
                raise Failure("name: not a string", 2)
            self.shm_remove(name)
            return {}
        raise Failure(f"unknown command {cmd!r}", 2)

    def _listen(self) -> None:
        path = self.socket_path
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise Failure(f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # left by a daemon that was killed
            else:
                raise Failure(f"another daemon answers on {path}")
            finally:
                probe.close()
        daemon = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    line = self.rfile.readline(MAX_REQUEST_LINE)
                    if not line:
                        return
                    try:
                        req = json.loads(line)
                    except ValueError:
                        answer: dict[str, Any] = {"ok": False, "code": 2, "error": "the request is not JSON"}
                    else:
                        answer = daemon.handle(req)
                    self.wfile.write(json.dumps(answer).encode() + b"\n")
                    self.wfile.flush()

        class Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True

        old = os.umask(0o077)  # the socket is root's: it can stop every VM
        try:
            self.server = Server(path, Handler)
        finally:
            os.umask(old)
        log.info("serving the shyper command on %s", path)

    def serve_forever(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving (from another thread than serve_forever's), then close everything."""
        if self.server is not None:
            self.server.shutdown()
        self.close()

    def close(self) -> None:
        """Remove the socket and let go of the control port (the VMs keep running)."""
        if self.server is not None:
            self.server.server_close()
            self.server = None
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass
        self.ch.close()


def run(mediated_cfg: str | None, log_file: str | None, socket_path: str = SOCKET_PATH, port: str | None = None) -> int:
    """`shyper system daemon`: runs in the foreground until SIGTERM/SIGINT. Returns the exit status."""
    import signal

    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s shyper[%(process)d]: %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("shyper daemon %s starting", __version__)
    mediated: list[str] = []
    if mediated_cfg:
        try:
            mediated = load_mediated(mediated_cfg)
        except Failure as e:
            log.error("%s", e)
            return e.code
        log.info("%s: %d mediated disk(s); %s", mediated_cfg, len(mediated), MEDIATED_NOTE)
    if port is None:
        for _ in range(100):  # virtio_mmio.ko may still be probing at boot
            port = find_control_port()
            if port:
                break
            time.sleep(0.1)
        else:
            log.error("no virtio port named %s in %s (is virtio_mmio loaded?)", CONTROL_PORT_NAME, VIRTIO_PORTS)
            return 1
    try:
        fd = os.open(port, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        why = "another daemon owns it" if e.errno == errno.EBUSY else e.strerror
        log.error("cannot open the control port %s: %s", port, why)
        return 1
    log.info("control port %s", port)
    is_socket = stat.S_ISSOCK(os.fstat(fd).st_mode)
    d = Daemon(Channel(fd, eof_is_close=is_socket), socket_path, mediated=mediated)
    try:
        d.start()
    except (Failure, proto.ProtocolError, proto.ResponseError, ChannelClosed, TimeoutError) as e:
        log.error("start failed: %s", e)
        return 1

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping (the VMs keep running)", signum)
        server = d.server
        if server is not None:
            threading.Thread(target=server.shutdown, daemon=True).start()  # serve_forever returns

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    d.serve_forever()
    d.close()
    os.close(fd)
    log.info("stopped")
    return 0
