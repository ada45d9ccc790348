"""Pseudo-terminals: spawn(tty=True), and `nsbox run -it` attaching a terminal."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import nsbox
from nsbox._stdio import set_window_size


def _read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in data and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_tty_process_sees_a_terminal_and_gets_sigint(container: nsbox.Container) -> None:
    """With tty=True the process sees isatty() true, the given size, and ^C becomes SIGINT."""
    script = ("import signal, sys, os; print(sys.stdin.isatty(), os.get_terminal_size(0)); "
              "signal.signal(signal.SIGINT, lambda *a: (os.write(1, b'SIGINT'), os._exit(42))); "
              "print('ready', flush=True); signal.pause()")
    with container.spawn(["python3", "-c", script], tty=(30, 100)) as p:
        assert p.pty is not None
        seen = _read_until(p.pty.fileno(), b"ready")
        assert b"True os.terminal_size(columns=100, lines=30)" in seen
        seen = b""
        for _ in range(5):  # on a loaded machine, give the keystroke a few chances
            p.pty.write(b"\x03")
            seen += _read_until(p.pty.fileno(), b"SIGINT", timeout=4)
            if b"SIGINT" in seen:
                break
        assert b"SIGINT" in seen
        assert p.wait(10) == 42


def test_resize_delivers_sigwinch(container: nsbox.Container) -> None:
    """Process.resize changes the window size and the process receives SIGWINCH."""
    script = ("import signal, os; signal.signal(signal.SIGWINCH, lambda *a: "
              "os.write(1, b'size %d\\n' % os.get_terminal_size(0).lines)); "
              "print('ready', flush=True); signal.pause()")
    with container.spawn(["python3", "-c", script], tty=(10, 10)) as p:
        assert p.pty is not None
        _read_until(p.pty.fileno(), b"ready")
        p.resize(50, 132)
        assert b"size 50" in _read_until(p.pty.fileno(), b"size 50")
        p.kill()


def test_cli_run_it_attaches_a_terminal() -> None:
    """`nsbox run -it` gives the command a terminal of the caller's size, passes keystrokes,
    and exits with the command's status."""
    master, slave = os.openpty()
    set_window_size(slave, 40, 120)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsbox", "run", "-it", "--", "sh", "-c",
         "stty size; echo ready; read line; echo got:$line; exit 5"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        seen = _read_until(master, b"ready")
        assert b"40 120" in seen
        os.write(master, b"hello\r")
        assert b"got:hello" in _read_until(master, b"got:hello")
        assert proc.wait(20) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_pty_comes_from_the_containers_devpts() -> None:
    """With a root filesystem, the process's terminal is in the container's own devpts."""
    with nsbox.Container(rootfs=nsbox.OverlayRootfs.host()) as c, \
            c.spawn(["sh", "-c", "tty; ls /dev/pts; echo done"], tty=(20, 70)) as p:
        assert p.pty is not None
        out = _read_until(p.pty.fileno(), b"done")
        assert p.wait(10) == 0
    assert out.split()[:3] == [b"/dev/pts/0", b"0", b"ptmx"]
