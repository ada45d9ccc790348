"""Container.run and Container.spawn behave like subprocess, inside the container."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import nsbox


def test_run_returns_output_and_status(container: nsbox.Container) -> None:
    """run captures stdout and stderr and reports the exit status."""
    result = container.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert result.args == ["sh", "-c", "echo out; echo err >&2; exit 3"]


def test_signal_gives_negative_returncode(container: nsbox.Container) -> None:
    """A process killed by a signal has returncode -signal, as in subprocess."""
    assert container.run(["sh", "-c", "kill -TERM $$"]).returncode == -signal.SIGTERM


def test_input_and_text(container: nsbox.Container) -> None:
    """input is written to stdin; text=True decodes the output."""
    assert container.run(["tr", "a-z", "A-Z"], input="hello", text=True).stdout == "HELLO"


def test_timeout_kills_and_reaps(container: nsbox.Container) -> None:
    """timeout raises TimeoutExpired (a subprocess.TimeoutExpired) after killing the process."""
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        container.run(["sh", "-c", "echo started; exec sleep 30"], timeout=0.5)
    assert time.monotonic() - start < 10
    assert isinstance(info.value, nsbox.TimeoutExpired)
    assert info.value.stdout == b"started\n"
    assert container.run(["sh", "-c", "pgrep -x sleep || echo none"], text=True).stdout == "none\n"


def test_check_raises_called_process_error(container: nsbox.Container) -> None:
    """check=True raises a subprocess.CalledProcessError-compatible error."""
    with pytest.raises(subprocess.CalledProcessError) as info:
        container.run(["sh", "-c", "echo oops >&2; exit 7"], check=True)
    assert info.value.returncode == 7
    assert info.value.stderr == b"oops\n"


def test_environment_is_clean_by_default(container: nsbox.Container) -> None:
    """Processes get a clean environment with a PATH, not the caller's."""
    os.environ["NSBOX_LEAK_CHECK"] = "1"
    try:
        env = container.run(["env"], text=True).stdout.splitlines()
    finally:
        del os.environ["NSBOX_LEAK_CHECK"]
    names = {line.split("=", 1)[0] for line in env}
    assert "PATH" in names and "NSBOX_LEAK_CHECK" not in names
    assert container.run(["sh", "-c", "echo $A"], env={"A": "b"}, text=True).stdout == "b\n"


def test_cwd_user_and_group() -> None:
    """cwd, user and group apply to the process, with no supplementary groups left over."""
    with nsbox.Container(cwd="/tmp", user=1000, group=1001) as c:
        assert c.run(["pwd"], text=True).stdout == "/tmp\n"
        assert c.run(["id", "-u"], text=True).stdout == "1000\n"
        assert c.run(["id", "-G"], text=True).stdout == "1001\n"
        assert c.run(["id", "-u"], user=0, cwd="/", text=True).stdout == "0\n"


def test_rlimits_apply() -> None:
    """rlimits by name are set in the process."""
    with nsbox.Container(rlimits={"nofile": (64, 128)}) as c:
        assert c.run(["sh", "-c", "ulimit -n; ulimit -Hn"], text=True).stdout == "64\n128\n"


def test_spawn_gives_a_process(container: nsbox.Container) -> None:
    """spawn returns a Process with pid, pidfd, poll, wait, send_signal and communicate."""
    p = container.spawn(["cat"], stdin=nsbox.PIPE, stdout=nsbox.PIPE)
    assert p.pid > 0 and p.pidfd >= 0 and p.poll() is None
    out, err = p.communicate(b"ping")
    assert (out, err, p.returncode) == (b"ping", None, 0)
    q = container.spawn(["sleep", "30"])
    with pytest.raises(subprocess.TimeoutExpired):
        q.wait(0.1)
    q.terminate()
    assert q.wait(5) == -signal.SIGTERM


def test_output_to_a_file(container: nsbox.Container, tmp_path: os.PathLike[str]) -> None:
    """stdout can be any file object."""
    path = os.path.join(tmp_path, "out.txt")
    with open(path, "wb") as f:
        container.run(["echo", "to file"], stdout=f, capture_output=False)
    with open(path, "rb") as f:
        assert f.read() == b"to file\n"


def test_large_output_with_input_does_not_deadlock(container: nsbox.Container) -> None:
    """100 MiB of input and output through pipes at once, and interleaved stderr, do not hang."""
    data = os.urandom(1 << 20) * 100
    result = container.run(["sh", "-c", "cat; echo done >&2"], input=data, timeout=60)
    assert result.stdout == data and result.stderr == b"done\n"


def test_processes_share_the_container(host_state: object) -> None:
    """Several runs in one container see each other's files, processes and hostname changes."""
    with nsbox.Container(cap_add=["SYS_ADMIN"]) as container:  # sethostname needs SYS_ADMIN
        container.run(["hostname", "changed"], check=True)
        sleeper = container.spawn(["sleep", "30"])
        try:
            assert container.run(["hostname"], text=True).stdout == "changed\n"
            assert container.run(["pgrep", "-x", "sleep"], check=False).returncode == 0
        finally:
            sleeper.kill()
            sleeper.wait()


def test_exit_kills_what_is_still_running() -> None:
    """Leaving the container kills and reaps its processes, including orphans of the init."""
    with nsbox.Container() as c:
        p = c.spawn(["sh", "-c", "sleep 60 & sleep 60"])
        init_pid = c.init_pid
    assert p.returncode == -signal.SIGKILL
    assert not os.path.exists(f"/proc/{init_pid}")


def test_one_shot_run() -> None:
    """nsbox.run starts a container, runs one command and tears it down."""
    result = nsbox.run(["hostname"], hostname="once", text=True)
    assert result.stdout == "once\n"


def test_one_shot_command_is_pid_1_and_takes_its_leftovers_along(host_state: object) -> None:
    """nsbox.run starts the command as the container's first process (no init beside it,
    the container's user, limits and locks all the same); what it leaves running dies with
    it, and a timeout kills it."""
    out = nsbox.run(["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'; id -u; ulimit -n; "
                     "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t\n'; "
                     "sleep 600 & echo"], user=1000, rlimits={"nofile": 64}, text=True,
                    timeout=30).stdout.split()
    # sh is 1; ls and grep are the other two processes: no init. The background sleep holds
    # stdout open: that run returned at all is because it died with sh.
    assert out == ["1", "3", "1000", "64", "NoNewPrivs:1Seccomp:2"]
    start = time.monotonic()
    with pytest.raises(nsbox.TimeoutExpired):
        nsbox.run(["sleep", "600"], timeout=0.5)
    assert time.monotonic() - start < 10
    # Joining a live Namespaces keeps the init: the command is one more process there.
    with nsbox.Namespaces(user=False) as ns:
        assert nsbox.run(["sh", "-c", "echo $$"], namespaces=ns, text=True).stdout != "1\n"


def test_exception_in_body_still_tears_down() -> None:
    """An exception inside the with block propagates and the container is gone afterwards."""
    with pytest.raises(KeyError), nsbox.Container() as c:
        init_pid = c.init_pid
        raise KeyError("boom")
    assert not os.path.exists(f"/proc/{init_pid}")


def test_default_root_keeps_writes_inside() -> None:
    """As root, Container() runs host programs on a copy-on-write view of the host's / with
    its own /tmp: what it writes never reaches the host."""
    marker = f"/var/tmp/nsbox-default-root-{os.getpid()}"
    with nsbox.Container() as c:
        assert c.run(["sh", "-c", f"echo hi > {marker}; echo hi > /tmp/nsbox-x; cat {marker}"],
                     text=True).stdout == "hi\n"
        root = c.run(["sh", "-c", "grep ' / / ' /proc/self/mountinfo"], text=True).stdout
        tmp = c.run(["ls", "/tmp"], text=True).stdout.split()
    assert " - overlay " in root
    assert tmp == ["nsbox-x"]
    assert not os.path.exists(marker) and not os.path.exists("/tmp/nsbox-x")


def test_large_uids_reach_the_process(container: nsbox.Container) -> None:
    """uids and gids above 2^31 (valid up to 2^32-2) are set, not rejected or truncated."""
    assert container.run(["id", "-u"], user=2**31 + 5, text=True).stdout == f"{2**31 + 5}\n"
    assert container.run(["id", "-g"], user=7, group=2**32 - 2,
                         text=True).stdout == f"{2**32 - 2}\n"
