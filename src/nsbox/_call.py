"""``Container.call``: run a Python callable in the container and bring back its result.

Two ways in. By default a fresh interpreter (the caller's own ``sys.executable``) starts inside
the container, reads ``(sys.path, __main__'s file, pickled call)`` from stdin and writes the
pickled outcome (``_call_remote``) to what was its stdout; the callable's prints go to stderr.
With cloudpickle installed (the ``nsbox[call]`` extra) closures and lambdas travel by value;
without it, by reference.

``fork=True`` forks the caller instead: the fork joins the container's cgroup and namespaces
(C, ``nsbox_fork_join``), forks again to be inside its pid namespace, becomes the container's
process (``nsbox_fork_enter``: credentials, capabilities, seccomp, no host fd left but stdio)
and calls the function it already holds. Only the result travels. Forking is only sound while
the caller has a single thread: another thread may hold a lock forever in the copy.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from . import _call_remote, _native
from ._interrupts import deferred
from .errors import CallError, RemoteTraceback, TimeoutExpired, UnsupportedError
from .process import PIPE, Process

if TYPE_CHECKING:
    from .container import Container

try:  # the optional extra: functions by value
    import cloudpickle as _cloudpickle  # type: ignore[import-untyped]

    _dumps: Callable[[Any], bytes] = _cloudpickle.dumps
except ImportError:  # pragma: no cover - depends on the environment
    _dumps = pickle.dumps


def _main_file() -> str | None:
    if _dumps is not pickle.dumps:
        return None  # cloudpickle sends __main__'s functions by value
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if isinstance(path, str) and path.endswith(".py") else None


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", fn))


def call(container: Container, fn: Callable[..., Any], args: tuple[Any, ...],
         kwargs: dict[str, Any], timeout: float | None, fork: bool) -> Any:
    """Run ``fn(*args, **kwargs)`` in ``container``; return its value or raise its exception."""
    if fork:
        reply, returncode, oom_killed = _call_in_fork(container, fn, args, kwargs, timeout)
    else:
        reply, returncode, oom_killed = _call_in_interpreter(container, fn, args, kwargs,
                                                             timeout)
    if not reply:
        reason = "killed by the cgroup's OOM killer" if oom_killed else \
            f"exited with {returncode}"
        where = "fork" if fork else "interpreter"
        raise CallError(f"the {where} in the container {reason} before replying",
                        returncode, oom_killed)
    ok, value = pickle.loads(reply)
    if ok:
        return value
    if ok is None:
        what, type_name, error, text = value
        raise CallError(f"the call's {what} ({type_name}) could not be pickled: {error}"
                        + (f"\n{text}" if text else ""), returncode)
    remote_exc, text = value
    raise remote_exc from RemoteTraceback(text)


# -- a fresh interpreter ---------------------------------------------------------------------


def _call_in_interpreter(container: Container, fn: Callable[..., Any], args: tuple[Any, ...],
                         kwargs: dict[str, Any], timeout: float | None,
                         ) -> tuple[bytes, int, bool]:
    try:
        payload = pickle.dumps((list(sys.path), _main_file(), _dumps((fn, args, kwargs))))
    except Exception as exc:
        raise TypeError(f"cannot send {fn!r} and its arguments into the container: {exc} "
                        "(install nsbox[call] for closures and lambdas)") from exc
    # -I: neither this file's directory nor the environment's PYTHON* variables change the
    # interpreter; the caller's sys.path comes with the payload.
    with container._lent_python() as attach:
        process = container._spawn([sys.executable, "-I", _call_remote.__file__], stdin=PIPE,
                                   stdout=PIPE, attach=attach)
    with process:
        try:
            reply, _ = process.communicate(payload, timeout)
        except TimeoutExpired:
            process.kill_group()
            process.wait()
            raise TimeoutExpired(f"call {_name(fn)!r}", timeout or 0.0) from None
        except BaseException:
            process.kill_group()
            raise
    returncode = process.wait()
    return reply or b"", returncode, process.oom_killed


# -- a fork of the caller --------------------------------------------------------------------


def _refuse_threads() -> None:
    # /proc counts the threads Python does not know about too (a BLAS pool, a C library's).
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        raise UnsupportedError(
            f"call_with(fork=True) needs a single-threaded caller, and this process has "
            f"{threads} threads: a fork would keep every lock another thread holds forever. "
            "Call without fork=True (a fresh interpreter), or before starting threads")


def _call_in_fork(container: Container, fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any], timeout: float | None) -> tuple[bytes, int, bool]:
    _refuse_threads()
    opts = container.options
    gid = opts.group if opts.group is not None else opts.user
    entry = _native.ForkEntry(container._process_spec(
        argv=[b"(call)"], path=b"", cwd=opts.cwd.encode(), uid=opts.user, gid=gid))
    environment = opts.environment(None)
    deadline = None if timeout is None else time.monotonic() + timeout
    pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
    (report_r, report_w), (pid_r, pid_w), (reply_r, reply_w) = pipes
    try:
        with deferred():
            first = os.fork()
            if first == 0:
                for fd in (report_r, pid_r, reply_r):
                    os.close(fd)
                _first_fork(entry, lambda: _run_inside(environment, fn, args, kwargs),
                            report_w, pid_w, reply_w)
            for fd in (report_w, pid_w, reply_w):
                os.close(fd)
            process = Process([f"(call {_name(fn)})"], first, os.pidfd_open(first), None, None,
                              None, oom_check=container._oom_check())
            container._adopt(process)
        second = 0  # the second fork's pid, once the first has told it
        with process:
            try:
                error = _native.report_error(_read_to_eof(report_r, deadline))
                second = int.from_bytes(_read_to_eof(pid_r, deadline) or bytes(4), "little")
                if error is not None:
                    raise error
                reply = _read_to_eof(reply_r, deadline)
            except TimeoutExpired:
                _kill_fork(process, second)
                raise TimeoutExpired(f"call {_name(fn)!r}", timeout or 0.0) from None
            except BaseException:
                _kill_fork(process, second)
                raise
            returncode = process.wait()
    finally:
        for fd in (report_r, pid_r, reply_r):
            os.close(fd)
    return reply, returncode, process.oom_killed


def _run_inside(environment: dict[str, str], fn: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> bytes:
    # The container's environment, as every process of it gets, not the caller's.
    os.environ.clear()
    os.environ.update(environment)
    return _call_remote.outcome(fn, args, kwargs, _dumps)


def _read_to_eof(fd: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutExpired("read", 0.0)
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _kill_fork(process: Process, second: int) -> None:
    # The second fork dies with the first (PR_SET_PDEATHSIG); its own children are in its
    # session, whose id is its pid: kill them too, while the first fork, which reaps the
    # second, still holds that pid (it cannot be reused before).
    if second > 0 and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(second, signal.SIGKILL)
    process.kill()
    process.wait()


def _first_fork(entry: _native.ForkEntry, run: Callable[[], bytes], report_w: int, pid_w: int,
                reply_w: int) -> NoReturn:
    # A copy of the caller that must never return into the caller's code.
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to act on
        entry.join(report_w)
        second = os.fork()
        if second == 0:
            _second_fork(entry, run, report_w, reply_w)
        os.close(report_w)
        os.close(reply_w)
        os.write(pid_w, second.to_bytes(4, "little"))
        os.close(pid_w)
        code = os.waitstatus_to_exitcode(os.waitpid(second, 0)[1])
        if code < 0:  # die the same way, so the caller sees the signal (an OOM kill: SIGKILL)
            if -code != signal.SIGKILL:
                signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code)
    finally:
        os._exit(127)


def _second_fork(entry: _native.ForkEntry, run: Callable[[], bytes], report_w: int,
                 reply_w: int) -> NoReturn:
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        entry.enter(report_w, reply_w, os.getppid())
        os.close(report_w)  # EOF: every step succeeded
        data = run()
        view = memoryview(data)
        while view:
            view = view[os.write(reply_w, view):]
        os.close(reply_w)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a broken stream loses its tail only
                stream.flush()
        os._exit(0)
    finally:
        os._exit(127)
