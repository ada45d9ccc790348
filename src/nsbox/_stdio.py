"""The stdio of a new process: pipes, /dev/null, the caller's fds, or a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import termios
from types import TracebackType
from typing import IO

from typing_extensions import Self

from .errors import ConfigError
from .process import DEVNULL, PIPE, STDOUT, StdioSpec


def terminal_size() -> tuple[int, int]:
    """(rows, columns) of the caller's terminal, or 24x80 when there is none."""
    for stream in (sys.stdin, sys.stdout):
        try:
            size = os.get_terminal_size(stream.fileno())
            return size.lines, size.columns
        except (OSError, ValueError, AttributeError):
            continue
    return 24, 80


def set_window_size(fd: int, rows: int, columns: int) -> None:
    """Set the window size of a terminal (the process group on it gets SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


_TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int)
_TIOCGPTPEER = 0x5441  # Linux 4.13


def _open_pty_pair(ptmx: str) -> tuple[int, int]:
    """A pty from the devpts instance of ``ptmx``: the slave opened through the master
    (TIOCGPTPEER), never by a path that the container could have replaced."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, int(slave)


class Stdio:
    """The three stdio ends of a new process: pipes made here, closed on the parent's side.

    With ``tty``, a pseudo-terminal: its slave end is every stdio the caller left as None, and
    the master end (``pty``) stays with the parent.
    """

    def __init__(self, stdin: StdioSpec, stdout: StdioSpec, stderr: StdioSpec,
                 tty: bool | tuple[int, int] = False, ptmx: str | None = None) -> None:
        self._to_close: list[int] = []
        self._parent: list[IO[bytes] | None] = [None, None, None]
        self.child_fds: list[tuple[int, int]] = []
        self.pty: IO[bytes] | None = None
        try:
            if tty:
                slave = self._open_pty(tty if isinstance(tty, tuple) else terminal_size(), ptmx)
                stdin, stdout, stderr = (slave if s is None else s for s in (stdin, stdout, stderr))
            for target, spec in enumerate((stdin, stdout, stderr)):
                self.child_fds.append((self._child_end(target, spec), target))
        except BaseException:
            self._close_all()
            if self.pty is not None:
                self.pty.close()
            raise

    @property
    def controlling_tty(self) -> bool:
        """Whether stdin is the pty's slave, to become the process's controlling terminal."""
        return self.pty is not None and os.isatty(self.child_fds[0][0])

    def _open_pty(self, size: tuple[int, int], ptmx: str | None) -> int:
        rows, columns = size
        if not (0 < rows < 65536 and 0 < columns < 65536):
            raise ConfigError(f"tty size must be (rows, columns) in 1..65535, not {size!r}")
        master, slave = os.openpty() if ptmx is None else _open_pty_pair(ptmx)
        self._to_close.append(slave)
        self.pty = open(master, "r+b", buffering=0)  # noqa: SIM115 - the Process owns it
        set_window_size(master, rows, columns)
        return slave

    def _child_end(self, target: int, spec: StdioSpec) -> int:
        if spec is None:
            return target
        if spec == PIPE:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            mine, theirs = (write_end, read_end) if target == 0 else (read_end, write_end)
            self._parent[target] = open(  # noqa: SIM115 - the Process owns and closes it
                mine, "wb" if target == 0 else "rb", buffering=0)
            self._to_close.append(theirs)
            return theirs
        if spec == DEVNULL:
            fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            self._to_close.append(fd)
            return fd
        if spec == STDOUT:
            if target != 2:
                raise ConfigError("STDOUT is only valid for stderr")
            return self.child_fds[1][0]
        if isinstance(spec, int) and not isinstance(spec, bool):
            if spec < 0:
                raise ConfigError(f"invalid stdio value {spec}")
            return spec
        if hasattr(spec, "fileno"):
            return int(spec.fileno())
        raise ConfigError(f"stdio must be None, PIPE, DEVNULL, STDOUT, an fd or a file, "
                          f"not {spec!r}")

    def parent_files(self) -> tuple[IO[bytes] | None, IO[bytes] | None, IO[bytes] | None]:
        stdin, stdout, stderr = self._parent
        return stdin, stdout, stderr

    def _close_all(self) -> None:
        for fd in self._to_close:
            os.close(fd)
        self._to_close.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close_all()  # the child has its copies now
        if exc_type is not None:
            for f in (*self._parent, self.pty):
                if f is not None:
                    f.close()
