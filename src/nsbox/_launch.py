"""Start one process from a ProcessSpec's worth of settings: the path every spawn goes through."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from . import _native
from ._stdio import Stdio
from .errors import ConfigError
from .process import Args, Process, StdioSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def argv_of(args: Args) -> list[bytes]:
    """The argument vector for the C child; ConfigError for what execve cannot take."""
    if isinstance(args, (str, bytes)):
        raise ConfigError("args must be a list like ['ls', '-l'], not a string "
                          "(use ['sh', '-c', command] for a shell command line)")
    if not isinstance(args, (list, tuple)):
        raise ConfigError(f"args must be a list of strings, not {type(args).__name__}")
    for arg in args:
        if not isinstance(arg, (str, bytes, os.PathLike)):
            raise ConfigError(f"args must be strings, bytes or paths, not {arg!r}")
    argv = [os.fsencode(a) for a in args]
    if not argv or not argv[0]:
        raise ConfigError("args must name a program to run")
    if any(b"\0" in a for a in argv):
        raise ConfigError("args must not contain NUL bytes")
    return argv


def check_env(env: Any) -> None:
    """ConfigError unless ``env`` maps names to values that execve can carry."""
    if not isinstance(env, Mapping):
        raise ConfigError(f"env must be a mapping of str to str, not {type(env).__name__}")
    for key, val in env.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise ConfigError(f"env must map str to str; got {key!r}: {val!r}")
        if not key or "=" in key or "\0" in key or "\0" in val:
            raise ConfigError(f"env name {key!r} must be non-empty without '=' or NUL, and its "
                              "value without NUL")


def env_block(env: Mapping[str, str]) -> list[bytes]:
    """``NAME=value`` entries for execve."""
    check_env(env)
    return [f"{k}={v}".encode() for k, v in env.items()]


def launch(args: Args, *, env: Mapping[str, str], stdin: StdioSpec = None,
           stdout: StdioSpec = None, stderr: StdioSpec = None,
           tty: bool | tuple[int, int] = False, cwd: str | None = None,
           oom_check: Callable[[], bool] | None = None, **fields: Any) -> Process:
    """Start ``args`` in a new session with the given stdio; ``fields`` go to the ProcessSpec."""
    argv = argv_of(args)
    envp = env_block(env)
    with Stdio(stdin, stdout, stderr, tty=tty) as stdio:
        spec = _native.ProcessSpec(
            argv=argv, path=argv[0], envp=envp,
            search_path=env.get("PATH", DEFAULT_PATH).encode(),
            new_session=True, controlling_tty=stdio.controlling_tty,
            cwd=None if cwd is None else os.fsencode(cwd), fds=stdio.child_fds, **fields)
        spawned = _native.spawn(spec)
        return Process(list(args), spawned.pid, spawned.pidfd, *stdio.parent_files(),
                       oom_check=oom_check, pty=stdio.pty)
