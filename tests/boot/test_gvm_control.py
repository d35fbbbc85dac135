"""Guest VMs made, booted, stopped and removed through the control protocol (mvm-tools/PROTOCOL.md) from the
management VM's shell, once per interrupt mode (`--irq plic`, `--irq aia --aia-guests 3`; three harts: the MVM
on harts 0 and 1, the guest VM on hart 2): a python3 script in the MVM writes the frames to the control port by
hand, as the `shyper` daemon will, and reads the guest's console on /dev/hvc1.

The guest is a tiny program assembled here: it prints a line through SBI DBCN, then does what the byte at
guest-physical 0x8000_1000 says: 0 wait forever, 1 power off (SBI SRST), 2 load from outside its memory (a fault).
The script checks: VM_CREATE gives id 1 and takes pages; VM_LOAD + VM_BOOT run it on hart 2 (its line on
/dev/hvc1, `running` in VM_LIST, hart 2 in SYSTEM_INFO's hart table); VM_STOP stops it at once (reason 4) and a
new VM_BOOT runs it again; its own power-off is an EVENT_VM_STATE `stopped`, its fault one of `crashed` with the
fault's scause and htval; the MVM refuses to be stopped (EPERM); VM_REMOVE gives every page back; the MVM runs on
throughout and powers off cleanly at the end.
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest

from pyshyper_host.bench import console
from tests.conftest import require_tool

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"
TIMEOUT = 120.0
MODES = ("plic", "aia")

GUEST_ASM = r"""
    .option norvc
    .globl _start
_start:
    lla     s0, msg
1:  lbu     a0, 0(s0)
    beqz    a0, 2f
    li      a7, 0x4442434E      # SBI DBCN
    li      a6, 2               # console_write_byte
    ecall
    addi    s0, s0, 1
    j       1b
2:  li      t0, 0x80001000
    lbu     t1, 0(t0)
    li      t2, 1
    beq     t1, t2, 3f
    li      t2, 2
    beq     t1, t2, 4f
5:  wfi
    j       5b
3:  li      a7, 0x53525354      # SBI SRST: shutdown, no reason
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
    j       5b
4:  li      t0, 0x40000000      # outside its memory: a load guest-page fault
    ld      t1, 0(t0)
    j       5b
msg:
    .asciz  "hello from the guest\n"
"""

# Run in the MVM (argv[1]: the guest program's bytes, base64): the whole sequence; one line per finding.
CONTROL_SCRIPT = r"""
import base64, glob, os, select, struct, sys, time, tty
guest = base64.b64decode(sys.argv[1])
def named(d):
    return os.path.exists(d + '/name') and open(d + '/name').read().strip() == 'org.pyshyper.control'
port = [d for d in glob.glob('/sys/class/virtio-ports/*') if named(d)][0]
fd = os.open('/dev/' + os.path.basename(port), os.O_RDWR)
con = os.open('/dev/hvc1', os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
tty.setraw(con)
rid = 100
events = []
buf = b''
def frame():
    global buf
    while True:
        if len(buf) >= 24:
            n = struct.unpack_from('<I', buf, 16)[0]
            if len(buf) >= 24 + n:
                f, buf = buf[:24 + n], buf[24 + n:]
                return f
        r, _, _ = select.select([fd], [], [], 20)
        if not r:
            print('TIMEOUT'); sys.exit(1)
        buf += os.read(fd, 65536)
def request(kind, payload=b''):
    global rid
    rid += 1
    os.write(fd, struct.pack('<IHHIIII', 0x59485350, 1, kind, rid, 0, len(payload), 0) + payload)
    while True:
        f = frame()
        magic, ver, t, i, status, n, res = struct.unpack_from('<IHHIIII', f)
        if t == 0x100:
            events.append(f[24:])
            continue
        assert t == kind | 0x8000 and i == rid, (t, i)
        return status, f[24:]
def ok(kind, payload=b''):
    status, body = request(kind, payload)
    if status:
        print('FAILED', hex(kind), status, body.decode()); sys.exit(1)
    return body
def record(b):
    f = struct.unpack('<II32sIIQQQQII4QQ', b)
    return dict(id=f[0], state=f[1], name=f[2].rstrip(b'\0').decode(), vcpus=f[3], boots=f[4], mask=f[5],
                memory=f[6], exits=f[8], reason=f[9], port=f[10], scause=f[11], htval=f[14])
def free_pages():
    return struct.unpack_from('<Q', ok(2), 16)[0]
def console_text(seconds):
    out = b''
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([con], [], [], 0.2)
        if r:
            out += os.read(con, 4096)
        if b'guest' in out and out.endswith(b'\n'):
            break
    return out.decode(errors='replace').replace('\r', '')
def event(seconds):
    end = time.time() + seconds
    while not events and time.time() < end:
        request(0x16)  # a VM_LIST: events come between frames
        time.sleep(0.2)
    return record(events.pop(0)) if events else None
ids = lambda n: struct.pack('<II', n, 0)
free0 = free_pages()
system = ok(1, struct.pack('<II', 1, 0))
print('SYSTEM harts=%d irq=%d aia_guests=%d free=%d' % (system[7], system[5], system[6], free0))
name = b'vm1'.ljust(32, b'\0')
create = name + struct.pack('<IIQQQQII', 1, 2, 0b100, 0x80000000, 0x80000000, 0x10001000, 1, 1)
create += struct.pack('<QQ', 0x80000000, 0x200000) + struct.pack('<II', 2, 0) + b'{}'
vm = struct.unpack_from('<I', ok(0x10, create))[0]
print('CREATED id=%d pages=%d' % (vm, free0 - free_pages()))
ok(0x11, ids(vm) + struct.pack('<Q', 0x80000000) + guest)
ok(0x12, ids(vm))
print('CONSOLE1 %r' % console_text(10))
recs = [record(ok(0x16)[8 + 128 * k:136 + 128 * k]) for k in range(struct.unpack_from('<I', ok(0x16))[0])]
print('LIST ' + ' '.join('%(id)d:%(name)s:%(state)d:%(mask)d:%(port)d' % r for r in recs))
print('HARTVM ' + ' '.join(str(b) for b in ok(2)[40:44]))
print('STOP_MVM %d %s' % request(0x13, ids(0)))
ok(0x13, ids(vm))
r = record(ok(0x15, ids(vm)))
print('STOPPED state=%d reason=%d boots=%d' % (r['state'], r['reason'], r['boots']))
ok(0x11, ids(vm) + struct.pack('<Q', 0x80001000) + b'\x01')
ok(0x12, ids(vm))
print('CONSOLE2 %r' % console_text(10))
r = event(20)
print('EVENT_OFF state=%d reason=%d boots=%d' % (r['state'], r['reason'], r['boots']) if r else 'NO_EVENT')
ok(0x11, ids(vm) + struct.pack('<Q', 0x80001000) + b'\x02')
ok(0x12, ids(vm))
r = event(20)
print('EVENT_FAULT state=%d reason=%d scause=%d htval=%#x' % (r['state'], r['reason'], r['scause'], r['htval'])
      if r else 'NO_EVENT')
ok(0x14, ids(vm))
print('REMOVED free=%d back=%s' % (free_pages(), free_pages() == free0))
print('LISTAFTER %d' % struct.unpack_from('<I', ok(0x16))[0])
"""


def guest_program(tmp: Path) -> bytes:
    src, obj, elf, out = tmp / "guest.S", tmp / "guest.o", tmp / "guest.elf", tmp / "guest.bin"
    src.write_text(GUEST_ASM)
    subprocess.run(["riscv64-unknown-elf-as", "-march=rv64gc", "-o", str(obj), str(src)], check=True)
    # linked at its load address: the assembler leaves PC-relative addresses (lla) to the linker
    subprocess.run(["riscv64-unknown-elf-ld", "-Ttext=0x80000000", "-o", str(elf), str(obj)], check=True)
    subprocess.run(["riscv64-unknown-elf-objcopy", "-O", "binary", str(elf), str(out)], check=True)
    return out.read_bytes()


@pytest.fixture(scope="module", params=MODES)
def session(request, tmp_path_factory, boot_out, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld", "riscv64-unknown-elf-as")
    from pyshyper_host.run.command import mvm_qemu_command

    mode = request.param
    out = boot_out(mode)
    guest = guest_program(tmp_path_factory.mktemp(f"guest-{mode}"))
    cmd = mvm_qemu_command(False, 3, "1G", mvm_image_cache, irq=mode, aia_guests=3, out=out, quiet=True)
    try:
        shell, _, _ = console.start_shell(cmd, timeout=TIMEOUT)
    except console.BootError as e:
        LOG_DIR.mkdir(exist_ok=True)
        p = LOG_DIR / f"test_gvm_control-{mode}-boot.log"
        p.write_text(e.log)
        pytest.fail(f"[{mode}] the MVM does not reach a shell; serial log: {p}\n{e}")

    def run(command: str, timeout: float = 60.0) -> str:
        text, status = shell.run(command, timeout=timeout)
        assert status == 0, f"[{mode}] `{command}` exited {status}:\n{text}"
        return text

    script = base64.b64encode(CONTROL_SCRIPT.encode()).decode()
    run("rm -f /tmp/ctl.b64")
    for i in range(0, len(script), 200):  # short lines: a long one does not survive the serial console's input
        run(f"echo -n {script[i : i + 200]} >> /tmp/ctl.b64")
    run("base64 -d /tmp/ctl.b64 > /tmp/ctl.py")
    try:
        # The script's lines go to a file, read once it has ended. (The hypervisor's lines about the guest VM are
        # on the MVM's /dev/hvc0, not on this serial console, where they used to cut the script's output.)
        run(f"python3 /tmp/ctl.py {base64.b64encode(guest).decode()} > /tmp/ctl.out 2>&1", timeout=240)
        text = run("cat /tmp/ctl.out")
        assert "pyshyper: vm1" not in shell.log, shell.log[-3000:]
        yield mode, text
    except BaseException:
        shell.save_failure(LOG_DIR / f"test_gvm_control-{mode}.log")
        raise
    finally:
        try:
            assert shell.poweroff() == 0  # the MVM's own poweroff still ends the machine cleanly
        finally:
            shell.close()


def field(text: str, key: str) -> str:
    m = re.search(rf"^{key} (.*)$", text, re.M)
    assert m, f"no {key} line in:\n{text}"
    return m.group(1).strip()


def test_create_load_boot_runs_the_guest_on_its_hart(session):
    mode, text = session
    aia = mode == "aia"
    assert re.fullmatch(rf"harts=3 irq={int(aia)} aia_guests={3 * int(aia)} free=\d+", field(text, "SYSTEM")), text
    created = re.fullmatch(r"id=(\d+) pages=(\d+)", field(text, "CREATED"))
    assert created and created.group(1) == "1" and int(created.group(2)) >= 512, text
    assert "hello from the guest" in field(text, "CONSOLE1"), text
    assert field(text, "LIST") == "0:mvm:2:3:0 1:vm1:2:4:1", text  # id:name:state:hart_mask:console port
    assert field(text, "HARTVM") == "0 0 1 255", text


def test_stop_and_boot_again(session):
    _, text = session
    assert field(text, "STOP_MVM").startswith("10 "), text  # EPERM: the MVM is not stopped
    assert field(text, "STOPPED") == "state=3 reason=4 boots=1", text
    assert "hello from the guest" in field(text, "CONSOLE2"), text


def test_the_guests_own_poweroff_and_fault_are_events(session):
    _, text = session
    assert field(text, "EVENT_OFF") == "state=3 reason=0 boots=2", text
    assert field(text, "EVENT_FAULT") == "state=4 reason=2 scause=21 htval=0x10000000", text


def test_remove_gives_every_page_back(session):
    _, text = session
    assert re.fullmatch(r"free=\d+ back=True", field(text, "REMOVED")), text
    assert field(text, "LISTAFTER") == "1", text
