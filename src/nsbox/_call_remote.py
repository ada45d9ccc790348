"""The inside of ``Container.call``: run the call, write its pickled outcome.

Standard library only. The fresh interpreter in the container runs this file by path (``python
-I``, so its directory is not on ``sys.path`` and ``import nsbox`` is never paid for); the fork
mode imports :func:`outcome` from it.

The outcome is ``(True, value)``, ``(False, (exception, traceback text))``, or, when that cannot
be pickled, ``(None, (what, type name, error, traceback text))``.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from collections.abc import Callable
from typing import Any


def outcome(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
            dumps: Callable[[Any], bytes]) -> bytes:
    """Call ``fn`` and pickle what came of it."""
    result: tuple[Any, Any]
    try:
        result = (True, fn(*args, **kwargs))
    except BaseException as exc:
        result = (False, (exc, traceback.format_exc()))
    try:
        return dumps(result)
    except BaseException as exc:
        what = "result" if result[0] else "exception"
        text = "" if result[0] else result[1][1]
        value = result[1] if result[0] else result[1][0]
        return pickle.dumps((None, (what, type(value).__qualname__, repr(exc), text)))


def _main() -> None:
    import os

    reply = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the call's own prints go to stderr
    path, main_file, payload = pickle.loads(sys.stdin.buffer.read())
    sys.path[:0] = [p for p in path if p not in sys.path]
    if main_file:
        # Functions of the caller's __main__ travel by name: load its script under another
        # name, as multiprocessing's spawn does, so its `if __name__ == "__main__"` block stays.
        import runpy
        import types

        main = types.ModuleType("__mp_main__")
        main.__dict__.update(runpy.run_path(main_file, run_name="__mp_main__"))
        sys.modules["__main__"] = sys.modules["__mp_main__"] = main
    try:
        fn, args, kwargs = pickle.loads(payload)
    except BaseException as exc:
        reply.write(pickle.dumps((False, (exc, traceback.format_exc()))))
        return
    reply.write(outcome(fn, args, kwargs, _dumps))
    reply.close()


def _dumps(value: Any) -> bytes:
    # cloudpickle only for what pickle cannot do: importing it costs more than most calls.
    try:
        return pickle.dumps(value)
    except Exception:
        import cloudpickle  # type: ignore[import-untyped]

        return bytes(cloudpickle.dumps(value))


if __name__ == "__main__":
    _main()
