"""The benchmarks: compiler speed (compiler.py), MVM boot and idle traps (boot.py) with the MVM's serial console
(console.py) and the hypervisor's per-vCPU statistics (stats.py), PNG charts (plot.py)."""
