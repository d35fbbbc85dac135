/* tests/guests/tiny/start.S: one instance, the soak's small guest VM (guest.py). */
    .equ GUEST_INSTANCES, 1
    .include "guest_entry.S"
