"""A container with its own pid, mount, uts, ipc and net namespaces, and what it sees.

Run: .venv/bin/python examples/quickstart.py  (as root, or as any user where the kernel allows
unprivileged user namespaces: nsbox then maps you to root inside).
"""

import os

import nsbox

namespaces = nsbox.Namespaces.of("pid", "mount", "uts", "ipc", "net")

with nsbox.Container(namespaces, hostname="quickstart") as box:
    print(f"host: pid {os.getpid()}, hostname {os.uname().nodename}, uid {os.getuid()}")
    report = box.run(
        ["sh", "-c", """
            echo "inside: pid $$, hostname $(hostname), uid $(id -u)"
            echo "processes:"; ps -eo pid,comm | sed 's/^/  /'
            echo "network:";   ip -br link | sed 's/^/  /'
            echo "root filesystem: $(findmnt -no FSTYPE,SOURCE /)"
        """],
        text=True,
        check=True,
    )
    print(report.stdout, end="")

    # Several commands share one container: a process started by one is seen by the next.
    sleeper = box.spawn(["sleep", "30"])
    print("a second command sees:", box.run(["pgrep", "-l", "sleep"], text=True).stdout.strip())
    sleeper.kill()
    sleeper.wait()

print("host hostname unchanged:", os.uname().nodename)
