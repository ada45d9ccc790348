"""asyncio support: waiting on a pidfd and pumping pipes with the event loop, no threads."""

from __future__ import annotations

import asyncio
import os
from typing import IO

from .process import Process


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, _resolve, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_writer(fd, _resolve, ready)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def wait(process: Process) -> int:
    """Wait for the process to exit without blocking the event loop (the pidfd is pollable)."""
    while process.poll() is None:
        await _readable(process.pidfd)
    assert process.returncode is not None
    return process.returncode


async def _read_all(stream: IO[bytes]) -> bytes:
    fd = stream.fileno()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            await _readable(fd)
            continue
        if not data:
            return b"".join(chunks)
        chunks.append(data)


async def _write_all(stream: IO[bytes], data: bytes) -> None:
    fd = stream.fileno()
    os.set_blocking(fd, False)
    view = memoryview(data)
    try:
        while view:
            try:
                view = view[os.write(fd, view[:65536]):]
            except BlockingIOError:
                await _writable(fd)
    except BrokenPipeError:
        pass  # the process stopped reading; what it did read is all it gets
    finally:
        stream.close()


async def communicate(process: Process,
                      input: bytes | None) -> tuple[bytes | None, bytes | None]:
    """Write ``input``, read stdout and stderr to the end, wait for the exit."""
    writer = None
    if process.stdin is not None:
        writer = asyncio.ensure_future(_write_all(process.stdin, input or b""))
    readers = [asyncio.ensure_future(_read_all(s)) if s is not None else None
               for s in (process.stdout, process.stderr)]
    try:
        if writer is not None:
            await writer
        out, err = [await r if r is not None else None for r in readers]
        await wait(process)
    finally:
        for task in (writer, *readers):
            if task is not None and not task.done():
                task.cancel()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    return out, err
