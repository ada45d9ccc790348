"""The namespace suite as an unprivileged user: what the kernel allows without root works."""

from __future__ import annotations

from tests.conftest import UNPRIVILEGED_UID, run_rootless


def test_rootless_container_sees_its_own_world(rootless_python: list[str]) -> None:
    """Unprivileged: PID 1 is the init, the hostname is the container's, only lo is up, and
    root inside is the caller outside."""
    result = run_rootless(rootless_python, """
        import json, os, nsbox
        with nsbox.Container(hostname="rootless") as c:
            inside = c.run(["sh", "-c", "echo $$; cat /proc/1/comm; hostname; id -u; "
                            "ls /proc | grep -cE '^[0-9]+$'; ip -o link | wc -l; "
                            "cat /proc/self/uid_map"], text=True, check=True).stdout.split()
            sleeper = c.spawn(["sleep", "30"])
            with open(f"/proc/{sleeper.pid}/status") as f:
                host_uid = [l.split()[1] for l in f if l.startswith("Uid:")][0]
            sleeper.kill(); sleeper.wait()
        print(json.dumps({"inside": inside, "host_uid": host_uid, "me": os.getuid()}))
    """)
    pid, init, hostname, uid, nprocs, nlinks, *uid_map = result["inside"]
    assert init == "nsbox-init" and hostname == "rootless" and uid == "0"
    assert int(pid) < 10 and int(nprocs) <= 4 and nlinks == "1"
    assert uid_map == ["0", str(UNPRIVILEGED_UID), "1"]
    assert result["host_uid"] == str(result["me"]) == str(UNPRIVILEGED_UID)


def test_rootless_mounts_and_ipc_stay_inside(rootless_python: list[str]) -> None:
    """Unprivileged: a tmpfs mounted and an IPC queue made inside are invisible outside."""
    result = run_rootless(rootless_python, """
        import json, subprocess, nsbox
        with nsbox.Container(cap_add=["SYS_ADMIN"]) as c:  # mounting needs SYS_ADMIN
            c.run(["mount", "-t", "tmpfs", "nsbox-rootless", "/mnt"], check=True)
            c.run(["ipcmk", "-Q"], check=True)
            inside_q = c.run(["ipcs", "-q"], text=True).stdout.count("0x")
            outside_q = subprocess.run(["ipcs", "-q"], capture_output=True, text=True).stdout
            with open("/proc/self/mountinfo") as f:
                host_mounts = f.read()
        print(json.dumps({"mounted_outside": "nsbox-rootless" in host_mounts,
                          "inside_q": inside_q, "outside_q": outside_q.count("0x")}))
    """)
    assert result["mounted_outside"] is False
    assert result["inside_q"] == 1


def test_rootless_errors_and_threads(rootless_python: list[str]) -> None:
    """Unprivileged: a missing program is FileNotFoundError; spawning with busy threads works;
    a wide uid map is refused with ConfigError."""
    result = run_rootless(rootless_python, """
        import json, threading, nsbox
        stop = threading.Event()
        def spin():
            while not stop.is_set():
                pass
        threads = [threading.Thread(target=spin) for _ in range(8)]
        for t in threads: t.start()
        try:
            outs = [nsbox.run(["echo", str(i)], text=True).stdout for i in range(10)]
        finally:
            stop.set()
            for t in threads: t.join()
        try:
            nsbox.run(["no-such-program-nsbox"])
            missing = None
        except FileNotFoundError as exc:
            missing = exc.filename
        try:
            nsbox.Namespaces(uid_map=[nsbox.IdMap(0, 100000, 65536)])
            wide = "accepted"
        except nsbox.ConfigError as exc:
            wide = str(exc)
        print(json.dumps({"outs": outs, "missing": missing, "wide": wide}))
    """)
    assert result["outs"] == [f"{i}\n" for i in range(10)]
    assert result["missing"] == "no-such-program-nsbox"
    assert "own id" in result["wide"]
