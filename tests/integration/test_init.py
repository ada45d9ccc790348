"""nsbox-init, the container's first process: as PID 1 of a container, and run directly."""

from __future__ import annotations

import array
import fcntl
import os
import platform
import signal
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest

import nsbox
from nsbox import _native

HANDLED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"),
                    reason="other architectures link the init against glibc")
def test_init_is_built_without_libc() -> None:
    """Where csrc/init_syscalls.h has raw syscalls, the init is a few KiB, not static glibc
    (~700 KiB): a failing compile there would otherwise fall back to glibc unnoticed."""
    assert os.path.getsize(_native.INIT_BINARY) < 32 * 1024


def wait_until_listening(pid: int, timeout: float = 30) -> None:
    """Wait until the init at ``pid`` blocks the signals it reads from its signalfd.

    Before that, a signal from outside its pid namespace finds the default disposition and is
    dropped; once they are blocked, one sent before the signalfd exists stays pending for it.
    """
    wanted = sum(1 << (sig - 1) for sig in HANDLED)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines())
        if int(fields["SigBlk"], 16) & wanted == wanted:
            return
        time.sleep(0.001)
    raise AssertionError(f"the init ({pid}) never blocked its signals")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_init_forwards_signals_to_the_container(container: nsbox.Container,
                                                sig: signal.Signals) -> None:
    """SIGTERM, SIGINT and SIGHUP sent to the init reach the container's other processes;
    the init itself stays."""
    sleeper = container.spawn(["sleep", "60"])
    wait_until_listening(container.init_pid)
    os.kill(container.init_pid, sig)
    assert sleeper.wait(timeout=30) == -sig
    assert container.run(["cat", "/proc/1/comm"], text=True).stdout == "nsbox-init\n"


def test_init_reaps_orphans(container: nsbox.Container) -> None:
    """A process whose parent exits comes to the init, which reaps it when it exits."""
    orphan = container.run(["sh", "-c", "sleep 0.1 >/dev/null & echo $!"], text=True).stdout
    deadline = time.monotonic() + 30
    while container.run(["test", "-e", f"/proc/{orphan.strip()}"]).returncode == 0:
        assert time.monotonic() < deadline, "the orphan was never reaped"
        time.sleep(0.05)


@pytest.fixture
def control() -> Iterator[int]:
    """The read end of a pipe that stands for the host side's control fd; the write end stays
    open until the test ends."""
    read_end, write_end = os.pipe()
    yield read_end
    os.close(read_end)
    os.close(write_end)


def start_init(script: str | None, control_fd: int, go_fd: int | None = None,
               *args: str) -> subprocess.Popen[bytes]:
    """Run the init binary directly (not PID 1) with ``control_fd`` as its fd 3.

    With ``script``, a shell first starts ``sh -c script`` in the background (with ``go_fd``
    as its fd 4) and then becomes the init, so that the init has a child.
    """
    fds = {3: control_fd} if go_fd is None else {3: control_fd, 4: go_fd}

    def place_fds() -> None:
        copies = {target: os.dup(fd) for target, fd in fds.items()}
        for target, fd in copies.items():
            os.dup2(fd, target)

    command = [_native.INIT_BINARY, *args]
    if script is not None:
        command = ["sh", "-c", 'sh -c "$1" & shift; exec "$@"', "sh", script, *command]
    return subprocess.Popen(command, preexec_fn=place_fds, pass_fds=tuple(fds))


def test_init_exits_0_when_the_control_fd_closes() -> None:
    """End of file on fd 3 (the host side is gone) makes the init exit with status 0."""
    read_end, write_end = os.pipe()
    try:
        init = start_init(None, read_end)
        wait_until_listening(init.pid)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert init.wait(timeout=30) == 0


def test_init_ignores_data_on_the_control_fd() -> None:
    """Bytes written to fd 3 are read and dropped; the init goes on (here until SIGTERM)."""
    read_end, write_end = os.pipe()
    try:
        init = start_init(None, read_end)
        os.close(read_end)
        wait_until_listening(init.pid)
        os.write(write_end, b"anything")
        unread = array.array("i", [1])
        deadline = time.monotonic() + 30
        while unread[0]:
            assert time.monotonic() < deadline, "the init never read its control fd"
            fcntl.ioctl(write_end, termios.FIONREAD, unread)
            time.sleep(0.001)
        init.send_signal(signal.SIGTERM)
        assert init.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        os.close(write_end)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_init_without_pid_namespace_exits_on_signal(control: int, sig: signal.Signals) -> None:
    """Not PID 1, the init has no one to forward a signal to: it exits with 128 + signal."""
    init = start_init(None, control)
    wait_until_listening(init.pid)
    init.send_signal(sig)
    assert init.wait(timeout=30) == 128 + sig


@pytest.mark.parametrize(("script", "status"), [
    ("exit 7", 7),
    ("kill -KILL $$", 128 + signal.SIGKILL),
    ("kill -TERM $$", 128 + signal.SIGTERM),
])
def test_init_exits_with_its_last_child(control: int, script: str, status: int) -> None:
    """With --exit-with-last-child the init exits when no child is left, with the last one's
    exit status, or 128 + the signal that killed it."""
    go_read, go_write = os.pipe()
    try:
        init = start_init(f"read go <&4; {script}", control, go_read,
                          "--exit-with-last-child")
        wait_until_listening(init.pid)
        os.write(go_write, b"go\n")
        assert init.wait(timeout=30) == status
    finally:
        os.close(go_read)
        os.close(go_write)
