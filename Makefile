# PyShyper: `make run` boots the hypervisor with the management VM (Debian Linux) under QEMU, `make test` runs the
# test suite. `make run GUEST=selftest` boots the bare-metal self-test guest instead.
# This file only bootstraps a fresh machine (host packages, .venv) and forwards to the justfile.
# Compatibility form: ARCH=riscv64 IRQ=aia AIA_GUESTS=3 make run  ==  pyshyper run --irq aia --aia-guests 3

SHELL := /bin/bash
.DEFAULT_GOAL := run
.SUFFIXES:

PYTHON ?= python3
VENV := .venv
JUST := $(VENV)/bin/just
HOST_STAMP := build/.stamps/host-setup
VENV_STAMP := $(VENV)/.pyshyper-installed

ifneq ($(ARCH),)
ifneq ($(ARCH),riscv64)
$(error ARCH=$(ARCH) is not supported: PyShyper is riscv64 only)
endif
endif

RUN_ARGS :=
ifneq ($(BOARD),)
RUN_ARGS += --board $(BOARD)
endif
ifneq ($(IRQ),)
RUN_ARGS += --irq $(IRQ)
endif
ifneq ($(AIA_GUESTS),)
RUN_ARGS += --aia-guests $(AIA_GUESTS)
endif
BUILD_ARGS := $(RUN_ARGS)
ifneq ($(SMP),)
RUN_ARGS += --smp $(SMP)
endif
ifneq ($(MEM),)
RUN_ARGS += --mem $(MEM)
endif
ifneq ($(GUEST),)
RUN_ARGS += --guest $(GUEST)
endif
ifneq ($(GDB),)
RUN_ARGS += --gdb
endif

.PHONY: run build test test-fast lint bench bench-compiler bench-boot images gdb setup

run: setup
	$(JUST) run $(RUN_ARGS)

build: setup
	$(JUST) build $(BUILD_ARGS)

test test-fast lint bench bench-compiler bench-boot images gdb: setup
	$(JUST) $@

setup: $(HOST_STAMP) $(VENV_STAMP)

# Debian packages (QEMU and OpenSBI from bookworm-backports, riscv64 binutils, ...); the script is idempotent.
$(HOST_STAMP): qemu/setup-host.sh
	bash qemu/setup-host.sh
	@mkdir -p $(@D) && touch $@

# The venv, re-installed when pyproject.toml changes.
$(VENV_STAMP): pyproject.toml $(HOST_STAMP)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV)/bin/pip install -q --no-input -e '.[test,dev]'
	touch $@
