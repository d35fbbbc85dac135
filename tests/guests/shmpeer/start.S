/* tests/guests/shmpeer/start.S: one instance, a guest VM of the shared-memory ping-pong (guest.py). */
    .equ GUEST_INSTANCES, 1
    .include "guest_entry.S"
