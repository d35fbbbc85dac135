"""A small program of the typed subset: three tiny accumulator VMs run a shared opcode program through a dispatch
table of function pointers. Exercises @struct (nested array field, self pointer), Ptr (field access, indexing, a
ring walked through `next`), Array globals with and without init, loops, a scalar global with `global`, and
Callable values in an array. `pyshyper cc run` and `pyshyper cc run --cpython` must both print main()'s value
(tests/compiler/test_cli.py works it out by hand)."""
from compiler.prelude import Array, Callable, Final, Ptr, addr_of, static, struct, u8, u32, u64

NVMS: Final = 3
NOPS: Final = 4


@struct
class Vm:
    id: u32
    acc: u64
    hist: Array[u8, 8]
    nsteps: u32
    next: Ptr["Vm"]


vms = static(Array[Vm, NVMS])
program = static(Array[u32, 6], init=(0, 1, 2, 3, 1, 0))
args = static(Array[u64, 6], init=(5, 3, 7, 2, 10, 1))
HANDLERS = static(Array[Callable[[Ptr[Vm], u64], None], NOPS])
total_steps: u32 = 0


def op_add(vm: Ptr[Vm], a: u64) -> None:
    vm.acc = vm.acc + a


def op_mul(vm: Ptr[Vm], a: u64) -> None:
    vm.acc = vm.acc * a


def op_xor(vm: Ptr[Vm], a: u64) -> None:
    vm.acc = vm.acc ^ (a << 4)


def op_sub(vm: Ptr[Vm], a: u64) -> None:
    vm.acc = vm.acc - a


def step(vm: Ptr[Vm], code: u32, a: u64) -> None:
    global total_steps
    HANDLERS[code](vm, a)
    vm.hist[vm.nsteps % 8] = u8(code)
    vm.nsteps += 1
    total_steps += 1


def run_vm(vm: Ptr[Vm]) -> None:
    for i in range(u64(len(program))):
        step(vm, program[(i + u64(vm.id)) % 6], args[i])


def weighted_history(vm: Ptr[Vm]) -> u32:
    p: Ptr[u8] = addr_of(vm.hist[0])
    w: u32 = 0
    for j in range(u32(0), vm.nsteps):
        w += (j + 1) * u32(p[j])
    return w


def main() -> u64:
    HANDLERS[0] = op_add
    HANDLERS[1] = op_mul
    HANDLERS[2] = op_xor
    HANDLERS[3] = op_sub
    for k in range(u32(0), u32(NVMS)):
        vms[k].id = k
        vms[k].acc = u64(k) + 1
        vms[k].next = addr_of(vms[(k + 1) % NVMS])
    for k in range(u32(0), u32(NVMS)):
        run_vm(addr_of(vms[k]))
    checksum: u64 = 0
    weighted: u32 = 0
    p: Ptr[Vm] = addr_of(vms[0])
    for _ in range(NVMS):
        checksum = checksum * 1000 + p.acc
        weighted += weighted_history(p)
        p = p.next
    return (checksum << 16) ^ (u64(weighted) << 8) ^ u64(total_steps)


#: main() == 62987539069970
