"""Rewrite the sandbox's pid 1 so that it outlives its parent: an attack on the cleanup, not a test.

bwrap's pid 1 runs as the program's uid and is dumpable, so the program may write its memory
through /proc/1/mem. Where pid 1 is blocked in wait(), the code it returns to becomes:
prctl(PR_SET_PDEATHSIG, 0), then pause() for ever. When the worker dies, the monitor dies with
it, but pid 1 (and with it the whole pid namespace) lives on unless something else kills it.
"""

import os
import sys
import time

PRCTL_CLEAR_PDEATHSIG_THEN_PAUSE = bytes.fromhex(
    "b89d000000"  # mov eax, 157 (prctl)
    "bf01000000"  # mov edi, 1 (PR_SET_PDEATHSIG)
    "31f6"  # xor esi, esi (no signal)
    "0f05"  # syscall
    "b822000000"  # loop: mov eax, 34 (pause)
    "0f05"  # syscall
    "ebf7"  # jmp loop
)

with open("/proc/1/syscall") as syscall:
    program_counter = int(syscall.read().split()[-1], 16)
with open("/proc/1/mem", "r+b", buffering=0) as memory:
    memory.seek(program_counter)
    memory.write(PRCTL_CLEAR_PDEATHSIG_THEN_PAUSE)
# Wake pid 1 from its wait(): an orphan of ours, reparented to it, exits.
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(0.1)
        os._exit(0)
    os._exit(0)
os.wait()
print("rewritten", sys.argv[1:], flush=True)
time.sleep(120)
