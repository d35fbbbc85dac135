"""Exported wrappers of hypervisor/core/fdt.py, so a riscv64 object of the two keeps every function's code
(unexported functions of a program are internal and dropped when nothing calls them)."""

from compiler.prelude import Ptr, export, u8, u64
from hypervisor.core.fdt import (
    fdt_cpu_count,
    fdt_cpu_hartid,
    fdt_cpu_has_extension,
    fdt_memory,
    fdt_rng_seed_fill,
    fdt_rng_seed_take,
    fdt_timebase,
    fdt_total_size,
    fdt_valid,
)


@export("test_fdt_valid")
def test_fdt_valid(dtb: u64) -> bool:
    return fdt_valid(dtb)


@export("test_fdt_total_size")
def test_fdt_total_size(dtb: u64) -> u64:
    return fdt_total_size(dtb)


@export("test_fdt_cpu_count")
def test_fdt_cpu_count(dtb: u64) -> u64:
    return fdt_cpu_count(dtb)


@export("test_fdt_cpu_hartid")
def test_fdt_cpu_hartid(dtb: u64, index: u64) -> u64:
    return fdt_cpu_hartid(dtb, index)


@export("test_fdt_cpu_has_extension")
def test_fdt_cpu_has_extension(dtb: u64, index: u64, ext: Ptr[u8]) -> bool:
    return fdt_cpu_has_extension(dtb, index, ext)


@export("test_fdt_memory")
def test_fdt_memory(dtb: u64, index: u64, out: Ptr[u64]) -> bool:
    return fdt_memory(dtb, index, out)


@export("test_fdt_timebase")
def test_fdt_timebase(dtb: u64) -> u64:
    return fdt_timebase(dtb)


@export("test_fdt_rng_seed_take")
def test_fdt_rng_seed_take(dtb: u64, buf: Ptr[u8], max_len: u64) -> u64:
    return fdt_rng_seed_take(dtb, buf, max_len)


@export("test_fdt_rng_seed_fill")
def test_fdt_rng_seed_fill(dtb: u64, seed: Ptr[u8], n: u64) -> u64:
    return fdt_rng_seed_fill(dtb, seed, n)
