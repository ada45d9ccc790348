"""asyncio: run_async and wait_async poll pidfds and pipes on the event loop."""

from __future__ import annotations

import asyncio

import pytest

import nsbox
from tests.conftest import HostState


def test_fifty_concurrent_runs(host_state: HostState) -> None:
    """50 concurrent run_async calls in one event loop all complete with their own output."""

    async def main() -> list[str]:
        with nsbox.Container() as c:
            results = await asyncio.gather(*[
                c.run_async(["sh", "-c", f"sleep 0.2; echo {i}"], text=True) for i in range(50)])
        return [r.stdout for r in results]

    assert asyncio.run(main()) == [f"{i}\n" for i in range(50)]


def test_cancelled_run_leaves_no_process(host_state: HostState) -> None:
    """Cancelling a run_async task kills and reaps its process and the process's children."""

    async def main() -> str:
        with nsbox.Container() as c:
            task = asyncio.ensure_future(c.run_async(["sh", "-c", "sleep 60 & sleep 60"]))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return c.run(["sh", "-c", "pgrep -x sleep || echo none"], text=True).stdout

    assert asyncio.run(main()) == "none\n"


def test_async_timeout_and_wait(host_state: HostState) -> None:
    """run_async's timeout raises TimeoutExpired; Process.wait_async returns the status."""

    async def main() -> int:
        with nsbox.Container() as c:
            with pytest.raises(nsbox.TimeoutExpired):
                await c.run_async(["sleep", "60"], timeout=0.3)
            p = c.spawn(["sh", "-c", "exit 9"])
            return await p.wait_async()

    assert asyncio.run(main()) == 9
