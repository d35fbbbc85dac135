"""`shyper`: the PyShyper management VM's tools (the daemon that owns the hypervisor's control port, and the CLI).

Runs on the MVM's Debian python3 with the standard library and the pure-Python `fdt` package only.
"""

__version__ = "1.0.0"
