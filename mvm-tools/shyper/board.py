"""The QEMU virt board as a GVM sees it: data only, mirroring boards/qemu-virt/board.toml and mvm.toml (the MVM has
no copy of boards/; tests/mvm_tools/test_devtree.py checks that these values equal the board files').

The hypervisor gives every VM its interrupt controller at the physical controller's addresses, so a GVM's memory
and console must stay clear of them.
"""

PAGE_SIZE = 0x1000

MAX_HARTS = 16  # the SYSTEM record's hart_vm[16]
VM_MAX = 8  # VM ids 0 (the MVM) .. 7
GVM_IDS = range(1, VM_MAX)

# Sv39x4: guest-physical addresses below 2^41
IPA_LIMIT = 1 << 41

PLIC_BASE = 0x0C00_0000
PLIC_SIZE = 0x60_0000
PLIC_NUM_SOURCES = 96  # sources 0..95 (0 is "no interrupt"): riscv,ndev = 95

APLIC_BASE = 0x0D00_0000  # the S-level APLIC domain
APLIC_SIZE = 0x8000
APLIC_NUM_SOURCES = 96

IMSIC_BASE = 0x2800_0000  # S-level IMSIC: vCPU i's page at IMSIC_BASE + i * IMSIC_PAGE
IMSIC_PAGE = 0x1000
IMSIC_NUM_IDS = 255
# The host's S-level IMSIC region with its guest interrupt files: at most 8 harts x 8 pages (QEMU virt: aia-guests
# 0..7). Passthrough entries inside it name guest interrupt files, which the hypervisor maps itself.
IMSIC_REGION_SIZE = 8 * 8 * IMSIC_PAGE

VIRTIO_MMIO_SIZE = 0x1000

TIMEBASE_FREQUENCY = 10_000_000  # used when the MVM's device tree cannot be read (host tests)
