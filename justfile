# PyShyper tasks. `make <task>` bootstraps a fresh machine first, then calls these.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

export PATH := justfile_directory() / ".venv/bin" + ":" + env_var("PATH")

# Boot the hypervisor with the management VM (Debian Linux) under QEMU (building it and the images if needed)
default: run

# Build build/pyshyper.elf and .bin: just build --irq aia --aia-guests 3
build *ARGS:
    pyshyper build "$@"

# Boot under QEMU, the MVM by default: just run --irq aia --aia-guests 3 --smp 4 (--guest selftest: the self-test)
run *ARGS:
    pyshyper run "$@"

# gdb-multiarch on build/pyshyper.elf, attached to `just run --gdb` (another shell): just gdb --port 1234
gdb *ARGS:
    pyshyper gdb "$@"

# Boot with the self-test guest instead of the MVM: just selftest --irq aia --aia-guests 3
selftest *ARGS:
    pyshyper run --guest selftest "$@"

# The whole test suite, QEMU boot tests included: pytest-xdist workers, one per core (at least 2), the QEMU boot
# tests all on one of them in file order (tests/conftest.py), the host tests shared by the others; the 25 slowest
# tests are listed at the end
test *ARGS:
    pytest -n "$(python -c 'import os; print(max(2, os.cpu_count() or 2))')" --dist loadgroup --durations=25 "$@"

# The fast suite: no QEMU boots, nothing slow
test-fast *ARGS:
    pytest -m "not qemu and not slow" "$@"

# All benchmarks: compiler speed, one report of the MVM boot against native, the trap round trips, 4 KiB against
# large stage-2 pages and the timer latency, then guest VMs
bench: bench-compiler
    python -m pyshyper_host.bench.boot --trap --stage2 --latency
    python -m pyshyper_host.bench.gvm

# Compiler speed: lines per second and time per stage
bench-compiler *ARGS: bench-deps
    python -m pyshyper_host.bench.compiler "$@"

# Boot to shell (MVM), under the hypervisor (PLIC, AIA) and native, plus idle traps/s: build/bench/boot.md
bench-boot *ARGS: bench-deps
    python -m pyshyper_host.bench.boot "$@"

# Trap round trips (tests/guests/bench: SBI null call, IRQC register load/store, set_timer, IPI), PLIC and AIA,
# htinst and fetch decoding, instructions under -icount and wall ns, against native OpenSBI: build/bench/trap.md
bench-trap *ARGS: bench-deps
    python -m pyshyper_host.bench.trap "$@"

# The MVM's boot with 4 KiB stage-2 leaves only against the largest leaves (and native), -cpu rv64,svnapot=true:
# build/bench/leaves.md
bench-leaves *ARGS:
    python -m pyshyper_host.bench.leaves "$@"

# A guest VM booted from the MVM's shell against the same kernel and initramfs natively, image-load throughput and
# the control round trip (shyper system ping): build/bench/gvm.md
bench-gvm *ARGS:
    python -m pyshyper_host.bench.gvm "$@"

# Timer-interrupt latency of a small high-priority guest VM alone on hart 2 and sharing it with a CPU-bound Linux GVM
# (median, p99, max; histogram), and the context switch between two VMs on one hart in instructions under -icount:
# build/bench/latency.md
bench-latency *ARGS: bench-deps
    python -m pyshyper_host.bench.latency "$@"

# matplotlib for the benchmarks' PNG charts (the `bench` extra), installed once
bench-deps:
    python -c "import matplotlib" 2>/dev/null || python -m pip install -q 'matplotlib==3.*'


# Fuzz SBI, vPLIC, vAPLIC, MMIO decoding and emulation, the virtio console and the control server on the host (CPython, JIT), 10^5 cases each: just fuzz --seed 7
fuzz *ARGS:
    python -m tests.hypervisor.fuzz "$@"

# Long runs: 500 CPU-hotplug cycles in the MVM (PLIC and AIA; the default suite runs 100), the stress guest, and
# 100 config/boot/stop/remove cycles of a guest VM from the MVM's shell with no page lost (the default suite runs 3)
soak *ARGS:
    PYSHYPER_HOTPLUG_CYCLES=500 pytest tests/boot/test_mvm_lifecycle.py tests/boot/test_selftest_boot.py -k "hotplug or stress" "$@"
    PYSHYPER_GVM_CYCLES=100 pytest tests/boot/test_gvm.py -k "soak" "$@"

# Guest kernel and MVM initramfs
images *ARGS:
    pyshyper images "$@"

# Lint, format check, and mypy over the host side, boards/, linker/ and mvm-tools/ (pyproject.toml [tool.mypy])
lint: bench-deps
    python -c "import ruff" 2>/dev/null || python -m pip install -q 'ruff==0.17.*'
    python -c "import mypy" 2>/dev/null || python -m pip install -q 'mypy==1.*'
    ruff check compiler hypervisor qemu boards linker mvm-tools tests
    ruff format --check --exclude '*.md' compiler hypervisor qemu boards linker mvm-tools tests/build tests/mvm_tools
    mypy
