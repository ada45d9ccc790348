"""``Container.call``: run a Python callable in the container and bring back its result.

A fresh interpreter (the caller's own ``sys.executable``) starts inside the container. It reads
``(sys.path, pickled call)`` from stdin, runs the call, and writes the pickled outcome to what
was its stdout; the callable's own prints go to stderr. With cloudpickle installed (the
``nsbox[call]`` extra) closures and lambdas travel by value; without it, by reference.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import CallError, RemoteTraceback, TimeoutExpired
from .process import PIPE

if TYPE_CHECKING:
    from .container import Container

try:  # the optional extra: functions by value
    import cloudpickle as _cloudpickle  # type: ignore[import-untyped]

    _dumps: Callable[[Any], bytes] = _cloudpickle.dumps
except ImportError:  # pragma: no cover - depends on the environment
    _dumps = pickle.dumps

# Runs inside the container. Kept in one piece so it needs nothing but the standard library
# until the caller's sys.path is in place.
_BOOTSTRAP = r"""
import os, pickle, sys, traceback
reply = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
path, main_file, payload = pickle.loads(sys.stdin.buffer.read())
sys.path[:0] = [p for p in path if p not in sys.path]
if main_file:
    # Functions of the caller's __main__ travel by name: load its script under another
    # name, as multiprocessing's spawn does, so its `if __name__ == "__main__"` block stays.
    import runpy, types
    main = types.ModuleType("__mp_main__")
    main.__dict__.update(runpy.run_path(main_file, run_name="__mp_main__"))
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main
try:
    import cloudpickle
    dumps = cloudpickle.dumps
except ImportError:
    dumps = pickle.dumps
try:
    fn, args, kwargs = pickle.loads(payload)
    outcome = (True, fn(*args, **kwargs))
except BaseException as exc:
    outcome = (False, (exc, traceback.format_exc()))
try:
    data = dumps(outcome)
except BaseException as exc:
    what = "result" if outcome[0] else "exception"
    text = outcome[1][1] if not outcome[0] else ""
    data = pickle.dumps((None, (what, type(outcome[1]).__qualname__, repr(exc), text)))
reply.write(data)
reply.close()
"""


def _main_file() -> str | None:
    if _dumps is not pickle.dumps:
        return None  # cloudpickle sends __main__'s functions by value
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if isinstance(path, str) and path.endswith(".py") else None


def call(container: Container, fn: Callable[..., Any], args: tuple[Any, ...],
         kwargs: dict[str, Any], timeout: float | None) -> Any:
    """Run ``fn(*args, **kwargs)`` in ``container``; return its value or raise its exception."""
    try:
        payload = pickle.dumps((list(sys.path), _main_file(), _dumps((fn, args, kwargs))))
    except Exception as exc:
        raise TypeError(f"cannot send {fn!r} and its arguments into the container: {exc} "
                        "(install nsbox[call] for closures and lambdas)") from exc
    process = container.spawn([sys.executable, "-s", "-c", _BOOTSTRAP], stdin=PIPE,
                              stdout=PIPE)
    with process:
        try:
            reply, _ = process.communicate(payload, timeout)
        except TimeoutExpired:
            process.kill_group()
            process.wait()
            raise TimeoutExpired(f"call {getattr(fn, '__qualname__', fn)!r}",
                                 timeout or 0.0) from None
        except BaseException:
            process.kill_group()
            raise
    returncode = process.wait()
    if not reply:
        reason = "killed by the cgroup's OOM killer" if process.oom_killed else \
            f"exited with {returncode}"
        raise CallError(f"the interpreter in the container {reason} before replying",
                        returncode, process.oom_killed)
    ok, value = pickle.loads(reply)
    if ok:
        return value
    if ok is None:
        what, type_name, error, text = value
        raise CallError(f"the call's {what} ({type_name}) could not be pickled: {error}"
                        + (f"\n{text}" if text else ""), returncode)
    remote_exc, text = value
    raise remote_exc from RemoteTraceback(text)
