"""Living with a container: several processes, streaming output, asyncio and Python calls."""

import asyncio
import math

import nsbox


def facts() -> dict[str, object]:
    """Runs inside the container: what does it see?"""
    import os

    return {"pid": os.getpid(), "hostname": os.uname().nodename, "factorial": math.factorial(10)}


async def many(c: nsbox.Container) -> list[str]:
    jobs = [c.run_async(["sh", "-c", f"sleep 0.1; echo job {i}"], text=True) for i in range(5)]
    return [r.stdout.strip() for r in await asyncio.gather(*jobs)]


if __name__ == "__main__":
    with nsbox.Container(hostname="worker") as c:
        # Stream a process's output line by line while it runs.
        ticker = c.spawn(["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.1; done"],
                         stdout=nsbox.PIPE)
        assert ticker.stdout is not None
        for line in ticker.stdout:
            print("streamed:", line.decode().strip())
        ticker.wait()

        # exec joins the same container: it sees what the first process left in /tmp.
        c.run(["sh", "-c", "echo hello > /tmp/note"], check=True)
        print("exec sees:", c.exec(["cat", "/tmp/note"], stdout=nsbox.PIPE).communicate()[0])

        print("call:", c.call(facts))
        # The fork mode: no interpreter start, nothing pickled but the result (this process
        # must be single-threaded, so it comes before asyncio's helper threads).
        print("call (fork):", c.call_with(lambda: facts()["pid"], fork=True))
        print("async:", asyncio.run(many(c)))
        try:
            c.call(int, "not a number")
        except ValueError as exc:
            print("exception came back:", exc)
