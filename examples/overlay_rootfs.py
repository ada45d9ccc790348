"""A container trapped in its own root filesystem: copy-on-write layers, a diff, a new layer.

A busybox tree is the read-only bottom layer; the container writes to a throwaway upper layer;
diff() shows what it changed and commit() turns that into a layer the next container starts
from. Nothing is written to the bottom layer, and the host's files are out of reach.

Run: .venv/bin/python examples/overlay_rootfs.py  (as root, or as a user where the kernel allows
unprivileged user namespaces: the overlay is then mounted inside the container's own). Needs a
static busybox (Debian: apt-get install busybox-static).
"""

import os
import shutil
import tempfile

import nsbox
from nsbox.rootfs import make_busybox_tree

work = tempfile.mkdtemp(prefix="overlay-example-")
try:
    base = make_busybox_tree(os.path.join(work, "base"))

    # The layers, the plan of the new root, the container: three context managers. Entering
    # the PivotRoot ourselves keeps the throwaway upper layer (in TMPDIR) until we leave it,
    # for diff(); a container that enters it itself keeps it in its own memory, out of reach.
    fs = nsbox.OverlayRootfs(lower=[base])
    plan = nsbox.PivotRoot(fs, mounts=[nsbox.Tmpfs("/tmp", size="16M", mode=0o1777)])
    with plan, nsbox.Container(plan, hostname="layered") as box:
        print(box.run(["sh", "-c", """
            echo "inside $(hostname): / holds: $(ls / | tr '\\n' ' ')"
            echo "the host's $0 is out of reach: $(cat "$0" 2>&1 | sed 's/.*: //')"
            echo hello > /greeting
            echo 'nobody:x:65534:' >> /etc/group
            rm /etc/passwd
            mount | sed -n '1p'
        """, os.path.abspath(__file__)], text=True, check=True).stdout, end="")

        print("\nwhat the container changed:")
        for change in fs.diff():
            print(f"  {change}")  # A /greeting, C /etc/group, D /etc/passwd
        layer = fs.commit(os.path.join(work, "layer1"))

    print("\nthe bottom layer is untouched:", sorted(os.listdir(os.path.join(base, "etc"))))

    # The committed layer on top of the base: a new container starts from those changes.
    with nsbox.Container(rootfs=nsbox.OverlayRootfs([base, layer])) as box:
        print("next container:", box.run(["sh", "-c", "cat /greeting; ls /etc"],
                                         text=True).stdout.split())
        # Python in a root without Python: as root, the call's interpreter is lent the host's
        # files, read-only, in its own mount namespace; fork=True needs none (and no root).
        if os.geteuid() == 0:
            print("a call inside:", box.call(os.listdir, "/"))
        print("a forked call inside:", box.call_with(os.uname, fork=True).nodename)
finally:
    shutil.rmtree(work)
