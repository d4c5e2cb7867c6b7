"""Fork until the process budget refuses, each child holding its place for a while, then print how
many forks succeeded: a program's whole process budget, read from inside.

Arguments: how long each child holds (seconds), then how long the parent waits before printing
(to overlap with another job's forks).
"""

import os
import sys
import time

hold_s, wait_s = (float(word) for word in sys.argv[1:3])
started = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(hold_s)
            os._exit(0)
        started += 1
except OSError:
    pass
time.sleep(wait_s)
print(started)
