"""What a process sees from inside a container's namespaces, on the real kernel (as root)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

import nsbox
from tests.conftest import HostState


def test_init_is_pid_1_and_host_processes_are_invisible(container: nsbox.Container) -> None:
    """PID 1 is the container's init, and only the container's processes are listed."""
    result = container.run(["sh", "-c", "echo $$; cat /proc/1/comm; ls /proc | grep -E '^[0-9]+$'"],
                           text=True)
    own_pid, init_name, *pids = result.stdout.split()
    assert init_name == "nsbox-init"
    assert int(own_pid) < 10
    assert str(os.getpid()) not in pids or os.getpid() < 10
    assert len(pids) <= 4  # init, sh, ls (and maybe grep): no host process


def test_hostname_is_the_containers(host_state: HostState) -> None:
    """The uts namespace carries the container's hostname; the host's is unchanged."""
    before = os.uname().nodename
    with nsbox.Container(hostname="box-1") as c:
        assert c.run(["hostname"], text=True).stdout.strip() == "box-1"
    assert os.uname().nodename == before


def test_only_loopback_exists_and_is_up(container: nsbox.Container) -> None:
    """A new network namespace has only lo, and it is up."""
    links = container.run(["ip", "-o", "link"], text=True, check=True).stdout.splitlines()
    assert len(links) == 1
    assert ": lo:" in links[0] and "UP" in links[0].split("<")[1]
    connect = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
               "socket.create_connection(s.getsockname(), timeout=5); print('connected')")
    assert container.run(["python3", "-c", connect], text=True).stdout == "connected\n"


def test_ipc_objects_made_inside_are_invisible_outside(container: nsbox.Container) -> None:
    """A System V message queue created inside is not listed on the host."""
    made = container.run(["ipcmk", "-Q"], text=True, check=True).stdout
    key_id = made.split(":")[-1].strip()
    inside = container.run(["ipcs", "-q"], text=True, check=True).stdout
    outside = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True).stdout
    assert key_id in inside
    assert key_id not in outside or inside.count("\n") > outside.count("\n")


def test_mount_made_inside_is_invisible_on_host(host_state: HostState) -> None:
    """A tmpfs mounted inside does not appear in the host's mount table."""
    with nsbox.Container(cap_add=["SYS_ADMIN"]) as c:  # mounting needs SYS_ADMIN
        c.run(["mount", "-t", "tmpfs", "nsbox-test", "/mnt"], check=True)
        inside = c.run(["cat", "/proc/self/mountinfo"], text=True).stdout
        assert "nsbox-test" in inside
    with open("/proc/self/mountinfo") as f:
        assert "nsbox-test" not in f.read()


def test_uid_0_inside_maps_to_configured_uid_outside() -> None:
    """With IdMap.range(100000), root inside is uid 100000 on the host."""
    ns = nsbox.Namespaces(user=True, uid_map=[nsbox.IdMap.range(100000)],
                          gid_map=[nsbox.IdMap.range(100000)])
    with nsbox.Container(ns) as c:
        p = c.spawn(["sleep", "30"])
        try:
            with open(f"/proc/{p.pid}/status") as f:
                status = dict(line.split(":", 1) for line in f)
            assert status["Uid"].split()[0] == "100000"
            assert status["Gid"].split()[0] == "100000"
            assert c.run(["id", "-u"], text=True).stdout.strip() == "0"
        finally:
            p.kill()
            p.wait()


def test_time_namespace_offsets_the_monotonic_clock() -> None:
    """A new time namespace with a monotonic offset shows a shifted uptime-like clock."""
    ns = nsbox.Namespaces(time=True, monotonic_offset=86400 * 10, boottime_offset=86400 * 10)
    with nsbox.Container(ns) as c:
        inside = float(c.run(["cat", "/proc/uptime"], text=True).stdout.split()[0])
    assert inside > 86400 * 10 - 1
    assert inside - time.clock_gettime(time.CLOCK_BOOTTIME) == pytest.approx(864000, abs=60)


def test_joining_another_containers_network_namespace() -> None:
    """Join(pid) enters the namespace of a running container; other namespaces stay new."""
    with nsbox.Container(cap_add=["NET_ADMIN"]) as first:
        first.run(["ip", "link", "add", "nsbox-a0", "type", "veth", "peer", "name", "nsbox-a1"],
                  check=True)
        ns = nsbox.Namespaces(net=nsbox.Join(first.init_pid))
        with nsbox.Container(ns, hostname="second") as second:
            links = second.run(["ip", "-o", "link"], text=True, check=True).stdout
            assert "nsbox-a0" in links
            assert second.run(["hostname"], text=True).stdout.strip() == "second"


def test_joining_a_network_namespace_by_path() -> None:
    """Join(path) accepts a namespace file such as /proc/PID/ns/net."""
    with nsbox.Container(cap_add=["NET_ADMIN"]) as first:
        first.run(["ip", "link", "add", "nsbox-b0", "type", "veth", "peer", "name", "nsbox-b1"],
                  check=True)
        ns = nsbox.Namespaces(net=nsbox.Join(f"/proc/{first.init_pid}/ns/net"))
        links = nsbox.run(["ip", "-o", "link"], namespaces=ns, text=True).stdout
        assert "nsbox-b0" in links


def test_namespaces_alone_hold_a_live_set() -> None:
    """Entered alone, Namespaces runs commands in one shared set of namespaces."""
    with nsbox.Namespaces(net=True, uts=True) as ns:
        ns.run(["hostname", "alone"], check=True)
        assert ns.run(["hostname"], text=True).stdout.strip() == "alone"
        with nsbox.Container(ns) as c:  # a container inside joins the live namespaces
            assert c.run(["hostname"], text=True).stdout.strip() == "alone"


def test_host_namespaces_can_be_kept() -> None:
    """False keeps the host's namespace: the host's hostname and network are visible."""
    ns = nsbox.Namespaces(uts=False, net=False)
    result = nsbox.run(["hostname"], namespaces=ns, text=True)
    assert result.stdout.strip() == os.uname().nodename
