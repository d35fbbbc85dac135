"""Host side of PyShyper: the `pyshyper` command, the build pipeline, and QEMU runs."""
