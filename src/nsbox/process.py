"""A process started in a container: the ``subprocess.Popen`` of nsbox, built on a pidfd.

A pidfd names exactly one process for its whole life, so signalling or waiting on it can never
hit another process that reused the pid.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import subprocess
import time
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO, Any

from typing_extensions import Self

from ._interrupts import deferred
from .errors import CalledProcessError, TimeoutExpired

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

#: What ``stdin``/``stdout``/``stderr`` accept: None (inherit), PIPE, DEVNULL, STDOUT (stderr
#: only), an fd, or an object with ``fileno()``.
StdioSpec = None | int | IO[Any]
Args = Sequence[str | bytes | os.PathLike[str]]


#: Every Process not yet reaped, by pid: what is ours to reap and what is someone's.
_LIVE: weakref.WeakValueDictionary[int, Process] = weakref.WeakValueDictionary()


def reap_unowned_zombies() -> list[int]:
    """Reap our exited children that live in a child pid namespace and that no Process owns.

    A dying PID 1 waits in the kernel until every process of its namespace is reaped; a
    zombie that is ours (forked with CLONE_PARENT) but that no Process will ever wait for
    would keep it there for good. Children in our own pid namespace are never touched.
    """
    reaped = []
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children") as f:
            pids = [int(p) for p in f.read().split()]
        for pid in pids:
            if pid in _LIVE:
                continue
            try:
                with open(f"/proc/{pid}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            if status.get("State", "").split()[:1] == ["Z"] and \
                    len(status.get("NSpid", "").split()) > 1:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                    reaped.append(pid)
    return reaped


class CompletedProcess(subprocess.CompletedProcess[Any]):
    """The result of ``run``: ``subprocess.CompletedProcess`` plus ``oom_killed``.

    ``returncode`` is negative for a process killed by a signal, as in ``subprocess``.
    ``oom_killed`` is true when the cgroup's OOM killer ended it (not a plain SIGKILL).
    """

    def __init__(self, args: Any, returncode: int, stdout: Any = None, stderr: Any = None,
                 oom_killed: bool = False) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.oom_killed = oom_killed

    def check_returncode(self) -> None:
        """Raise :class:`CalledProcessError` if the process did not exit with 0."""
        if self.returncode:
            raise CalledProcessError(self.returncode, self.args, self.stdout, self.stderr,
                                     self.oom_killed)


def _decode(data: bytes | None) -> str | None:
    if data is None:
        return None
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


class Process:
    """A running (or finished) process of a container. Create it with ``Container.spawn``.

    Attributes:
        args: the command line.
        pid: the process id as the host sees it.
        stdin, stdout, stderr: binary file objects for the ends given as ``PIPE``, else None.
        pty: the master end of the process's pseudo-terminal (``spawn(tty=True)``), else None.
        returncode: None while running; the exit status, or ``-signal`` if killed.
    """

    def __init__(self, args: Any, pid: int, pidfd: int, stdin: IO[bytes] | None,
                 stdout: IO[bytes] | None, stderr: IO[bytes] | None,
                 oom_check: Callable[[], bool] | None = None,
                 pty: IO[bytes] | None = None) -> None:
        self.args = args
        self.pid = pid
        self._pidfd = pidfd
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.pty = pty
        self.returncode: int | None = None
        self._oom_check = oom_check
        self._oom_killed = False
        self._on_reaped: Callable[[Process], None] | None = None
        _LIVE[pid] = self

    def __repr__(self) -> str:
        return f"<nsbox.Process pid={self.pid} returncode={self.returncode}>"

    @property
    def pidfd(self) -> int:
        """The pidfd of the process; -1 once it has been reaped."""
        return self._pidfd

    @property
    def oom_killed(self) -> bool:
        """True when the process was killed by its cgroup's OOM killer."""
        return self._oom_killed

    def poll(self) -> int | None:
        """Reap the process if it has exited; return ``returncode`` (None while running)."""
        if self.returncode is None and self._pidfd >= 0:
            # Reaping and recording the status must not be split by Ctrl-C: a reaped process
            # whose status was lost could never be waited for again.
            with deferred():
                info = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
                if info is not None and info.si_pid != 0:
                    self._set_status(info)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit and return its returncode.

        Raises:
            TimeoutExpired: it was still running after ``timeout`` seconds (it keeps running).
        """
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        while self.poll() is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutExpired(self.args, timeout or 0.0)
            poller.poll(None if remaining is None else max(1, int(remaining * 1000 + 0.999)))
        assert self.returncode is not None
        return self.returncode

    def _set_status(self, info: Any) -> None:
        if info.si_code == os.CLD_EXITED:
            self.returncode = info.si_status
        else:
            self.returncode = -info.si_status
        os.close(self._pidfd)
        self._pidfd = -1
        _LIVE.pop(self.pid, None)
        if self.returncode == -signal.SIGKILL and self._oom_check is not None:
            self._oom_killed = self._oom_check()
        if self._on_reaped is not None:
            self._on_reaped(self)

    async def wait_async(self) -> int:
        """Wait for the exit from asyncio, polling the pidfd with the event loop."""
        from ._aio import wait

        return await wait(self)

    def kill_group(self) -> None:
        """SIGKILL the process and every process in its process group.

        Each process starts in a new session and so leads its own process group; its
        children stay in it unless they make their own. While the process is unreaped, its
        pid (and so the group id) cannot be reused.
        """
        if self.returncode is None and self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.kill()

    def resize(self, rows: int, columns: int) -> None:
        """Set the window size of the process's pseudo-terminal (it gets SIGWINCH)."""
        if self.pty is None:
            raise ValueError("resize needs a process started with tty=True")
        from ._stdio import set_window_size

        set_window_size(self.pty.fileno(), rows, columns)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process; does nothing once it has been reaped."""
        if self.returncode is None and self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
                signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        """Send SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Send SIGKILL."""
        self.send_signal(signal.SIGKILL)

    def communicate(self, input: bytes | None = None,
                    timeout: float | None = None) -> tuple[bytes | None, bytes | None]:
        """Send ``input`` to stdin, read stdout and stderr to the end, and wait for the exit.

        Like ``subprocess.Popen.communicate``: large outputs and inputs do not deadlock.

        Raises:
            TimeoutExpired: after ``timeout`` seconds; call again to go on collecting.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not hasattr(self, "_chunks"):
            self._chunks: dict[int, list[bytes]] = {}
            self._input = memoryview(input or b"")
            self._open: dict[int, IO[bytes]] = {}
            if self.stdin is not None:
                if input:
                    os.set_blocking(self.stdin.fileno(), False)
                    self._open[self.stdin.fileno()] = self.stdin
                else:
                    self.stdin.close()
            for stream in (self.stdout, self.stderr):
                if stream is not None:
                    self._chunks[stream.fileno()] = []
                    self._open[stream.fileno()] = stream
        self._pump(deadline, timeout)
        out = b"".join(self._chunks[self.stdout.fileno()]) if self.stdout else None
        err = b"".join(self._chunks[self.stderr.fileno()]) if self.stderr else None
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            self.wait(remaining)
        except TimeoutExpired:
            raise TimeoutExpired(self.args, timeout or 0.0, out, err) from None
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        return out, err

    def _pump(self, deadline: float | None, timeout: float | None) -> None:
        with selectors.DefaultSelector() as sel:
            for fd, stream in self._open.items():
                event = selectors.EVENT_WRITE if stream is self.stdin else selectors.EVENT_READ
                sel.register(fd, event)
            while sel.get_map():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutExpired(self.args, timeout or 0.0)
                for key, _ in sel.select(remaining):
                    fd = int(key.fd)
                    if fd in self._chunks:
                        data = os.read(fd, 65536)
                        if data:
                            self._chunks[fd].append(data)
                            continue
                    elif self._input:
                        try:
                            sent = os.write(fd, self._input[:65536])
                            self._input = self._input[sent:]
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            self._input = memoryview(b"")
                        if self._input:
                            continue
                    sel.unregister(fd)
                    if self._open.pop(fd) is self.stdin and self.stdin is not None:
                        self.stdin.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for stream in (self.stdin, self.stdout, self.stderr, self.pty):
            if stream is not None:
                stream.close()
        if exc_type is not None and self.returncode is None:
            self.kill()
        self.wait()

    def __del__(self) -> None:
        if getattr(self, "_pidfd", -1) >= 0:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)


def completed(process: Process, out: bytes | None, err: bytes | None, text: bool,
              check: bool) -> CompletedProcess:
    """The CompletedProcess of a reaped process, raising for ``check``."""
    result = CompletedProcess(process.args, process.wait(),
                              _decode(out) if text else out, _decode(err) if text else err,
                              process.oom_killed)
    if check:
        result.check_returncode()
    return result


async def collect_async(process: Process, input: bytes | None, timeout: float | None,
                        text: bool, check: bool) -> CompletedProcess:
    """``collect`` for asyncio: cancelling (or a timeout) kills the process and reaps it."""
    import asyncio

    from ._aio import communicate

    try:
        out, err = await asyncio.wait_for(communicate(process, input), timeout)
    except BaseException as exc:
        process.kill_group()
        process.wait()  # SIGKILL makes this immediate; nothing may be left behind
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        if isinstance(exc, asyncio.TimeoutError):
            raise TimeoutExpired(process.args, timeout or 0.0) from exc
        raise
    return completed(process, out, err, text, check)


def collect(process: Process, input: bytes | None, timeout: float | None, text: bool,
            check: bool) -> CompletedProcess:
    """Run ``process`` to completion as ``subprocess.run`` does (the body of ``run``)."""
    with process:
        try:
            out, err = process.communicate(input, timeout)
        except TimeoutExpired as exc:
            process.kill_group()
            out, err = process.communicate()
            raise TimeoutExpired(process.args, timeout or 0.0,
                                 _decode(out) if text else out,
                                 _decode(err) if text else err) from exc
        except BaseException:
            process.kill_group()
            raise
    return completed(process, out, err, text, check)
