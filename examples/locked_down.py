"""What a container may not do, and how to open one lock at a time (docs/security.md).

Run: .venv/bin/python examples/locked_down.py  (as root, or as any user where the kernel
allows unprivileged user namespaces). Needs libseccomp (`apt install libseccomp2`).
"""

import json
import os

import nsbox

# What the process inside sees of its own privileges, and a few things it tries.
PROBE = r"""
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
mount -t tmpfs none /mnt 2>/dev/null && echo "mount: allowed" || echo "mount: refused"
unshare -U true 2>/dev/null && echo "user namespace: allowed" || echo "user namespace: refused"
echo 1 > /proc/sys/kernel/printk_ratelimit 2>/dev/null \
    && echo "sysctl write: allowed" || echo "sysctl write: refused"
"""


def show(title: str, container: nsbox.Container) -> None:
    print(f"== {title}")
    print(container.run(["sh", "-c", PROBE], text=True).stdout, end="")


# The defaults: Docker's capabilities, no_new_privs, Docker's seccomp profile, kernel files
# masked or read-only.
with nsbox.Container() as box:
    show("default", box)
    # A non-root user inside has no capabilities at all (rootless, only uid 0 exists inside).
    if os.geteuid() == 0:
        status = box.run(["grep", "CapEff", "/proc/self/status"], user=1000, text=True)
        print("as uid 1000:", status.stdout.strip())

# One more capability: the default profile then also allows what it gates on it (mount).
with nsbox.Container(cap_add=["SYS_ADMIN"]) as box:
    show('cap_add=["SYS_ADMIN"]', box)

# Exactly one capability, and a profile of our own: Docker's, minus uname(2).
strict = nsbox.SeccompProfile.default().deny("uname")
with nsbox.Container(cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"], seccomp=strict) as box:
    show('cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"], default().deny("uname")', box)
    print("uname:", box.run(["uname", "-r"], text=True).stderr.strip())

# An OCI (runtime spec linux.seccomp) profile, as JSON: allow everything but keyctl.
oci = {"defaultAction": "SCMP_ACT_ALLOW",
       "syscalls": [{"names": ["keyctl", "add_key"], "action": "SCMP_ACT_ERRNO",
                     "errnoRet": 1}]}
profile = nsbox.SeccompProfile.from_json(json.dumps(oci))
with nsbox.Container(seccomp=profile, oom_score_adj=500, rlimits={"nofile": 256}) as box:
    print("== OCI profile, oom_score_adj=500, nofile=256")
    print(box.run(["sh", "-c", "cat /proc/self/oom_score_adj; ulimit -n"], text=True).stdout,
          end="")

print(f"compiled filters cached in this process: {len(nsbox.security.BPF_CACHE)}")
