"""`pyshyper build`: the pipeline (pipeline.py: generated board module, compiler, GNU as and ld, the MVM's device
tree), what QEMU's machine and -cpu model offer (qemu_machine.py: QEMU's own device tree), the binutils wrappers
(toolchain.py), the ELF checks (elfcheck.py) and the symbol and line tables linked into the image (symtab.py)."""
