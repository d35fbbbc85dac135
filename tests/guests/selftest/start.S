/* tests/guests/selftest/start.S: instance 0 runs the self-test, instance 1 is the fault probe (guest.py). */
    .equ GUEST_INSTANCES, 2
    .include "guest_entry.S"
