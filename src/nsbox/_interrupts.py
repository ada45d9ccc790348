"""Hold back KeyboardInterrupt while nsbox acquires or releases a host resource.

A Python signal handler runs between any two bytecodes of the main thread, so Ctrl-C could
strike after a cgroup directory, an fd or a child process exists but before it is stored
where cleanup finds it. In those short sections SIGINT's handler is swapped for one that only
notes the signal; the original runs (raising KeyboardInterrupt) as soon as the section ends.
Only the main thread runs Python signal handlers, so elsewhere this does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Run the block with SIGINT held back; deliver it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    original = signal.getsignal(signal.SIGINT)
    if not callable(original):  # SIG_IGN / SIG_DFL: nothing Python would raise
        yield
        return
    caught: list[tuple[int, FrameType | None]] = []

    def note(signum: int, frame: FrameType | None) -> None:
        caught.append((signum, frame))

    signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, original)
        if caught:
            handler: Any = original
            handler(*caught[0])
