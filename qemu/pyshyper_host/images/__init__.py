"""`pyshyper images`: Debian's riscv64 kernel and the MVM initramfs in the image cache (initramfs.py), from packages
fetched by a private apt (apt.py), written as a newc cpio (cpio.py); guest/ holds the MVM's /init and profile."""
