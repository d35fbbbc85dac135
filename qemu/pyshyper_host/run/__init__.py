"""`pyshyper run` and `pyshyper gdb`: preparing a run and its QEMU command (command.py), QEMU's monitor and where the
harts are (monitor.py), gdb-multiarch on the image (gdb.py)."""
