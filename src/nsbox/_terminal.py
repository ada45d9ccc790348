"""Attach the caller's terminal to a process's pseudo-terminal, as ``docker run -it`` does."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import Any

from ._stdio import terminal_size
from .process import Process


@contextlib.contextmanager
def _raw_mode(fd: int) -> Iterator[None]:
    # Raw: keystrokes such as ^C go to the container's terminal, which turns them into
    # signals for its own foreground process; ours must not see them.
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _forward_window_changes(process: Process) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def resize(*_: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            process.resize(*terminal_size())

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


def _copy(source: int, target: int) -> bool:
    """Copy what is available; False at end of input."""
    try:
        data = os.read(source, 65536)
    except OSError as exc:
        if exc.errno == errno.EIO:  # the pty's last slave was closed
            return False
        raise
    if not data:
        return False
    view = memoryview(data)
    while view:
        view = view[os.write(target, view):]
    return True


def attach(process: Process) -> int:
    """Connect stdin/stdout to ``process.pty`` until the process exits; return its returncode."""
    if process.pty is None:
        raise ValueError("attach needs a process started with tty=True")
    master = process.pty.fileno()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    poller = select.poll()
    poller.register(master, select.POLLIN)
    poller.register(stdin, select.POLLIN)
    poller.register(process.pidfd, select.POLLIN)
    with _raw_mode(stdin), _forward_window_changes(process):
        open_fds = {master, stdin, process.pidfd}
        while master in open_fds:
            for fd, _ in poller.poll():
                if fd == process.pidfd:
                    # Exited: drain what it wrote, then stop.
                    while select.select([master], [], [], 0)[0] and _copy(master, stdout):
                        pass
                    open_fds.discard(master)
                    break
                source, target = (master, stdout) if fd == master else (stdin, master)
                if not _copy(source, target):
                    poller.unregister(fd)
                    open_fds.discard(fd)
    return process.wait()
