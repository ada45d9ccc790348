"""Hold back KeyboardInterrupt while nsbox acquires or releases a host resource.

A Python signal handler runs between any two bytecodes of the main thread, so Ctrl-C could
strike after a cgroup directory, an fd or a child process exists but before it is stored
where cleanup finds it. In those short sections SIGINT's handler is swapped for one that only
notes the signal; the original runs (raising KeyboardInterrupt) as soon as the section ends.
Only the main thread runs Python signal handlers, so elsewhere this does nothing.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

# Sections nest (a container's start enters its cgroup): only the outermost swaps the handler,
# and what it noted is delivered when that one ends.
_depth = 0
_caught: list[tuple[int, FrameType | None]] = []
_original: Any = None


def _note(signum: int, frame: FrameType | None) -> None:
    _caught.append((signum, frame))


class deferred:  # lower case: it reads as a phrase in `with deferred():`
    """Run the block with SIGINT held back; deliver it afterwards."""

    __slots__ = ("_counted",)

    def __enter__(self) -> None:
        global _depth, _original
        self._counted = False
        if threading.current_thread() is not threading.main_thread():
            return
        if _depth == 0:
            original = signal.getsignal(signal.SIGINT)
            if not callable(original):  # SIG_IGN / SIG_DFL: nothing Python would raise
                return
            _original = original
            signal.signal(signal.SIGINT, _note)
        _depth += 1
        self._counted = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _depth, _original
        if not self._counted:
            return
        _depth -= 1
        if _depth:
            return
        original, _original = _original, None
        signal.signal(signal.SIGINT, original)
        if _caught:
            first = _caught[0]
            _caught.clear()
            original(*first)
