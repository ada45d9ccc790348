"""What nsbox holds on the host, written down before it is taken, so ``gc`` can give it back.

Every host resource nsbox creates — a cgroup directory, a mount in the host's mount namespace,
a temporary directory — is recorded in the state directory *before* it is created and the
record is removed after it is released. Records live in one directory per owning process,
named by its pid and start time (a pid alone can be reused), so after a crash, a SIGKILL or a
power cut of the owner, :func:`gc` finds everything whose owner is gone and releases it, and
never touches what belongs to a live process or what nsbox did not create.

Layout: ``<state dir>/owners/<pid>-<start time>/<kind>-<digest>``, each file holding the path
of one resource. The state directory is ``/run/nsbox`` as root and
``$XDG_RUNTIME_DIR/nsbox`` (else ``/tmp/nsbox-<uid>``) without root.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import hashlib
import os
import shutil
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import attrs

from .errors import UnsupportedError

Kind = Literal["cgroup", "mount", "dir"]
KINDS: tuple[Kind, ...] = ("mount", "cgroup", "dir")  # the order gc releases them in


def state_dir() -> Path:
    """Where records live: /run/nsbox as root, the user's runtime directory without root."""
    return Path(_state_dir_name())


def _state_dir_name() -> str:
    # A str, not a Path: record and forget use it on every call, and pathlib costs more than
    # the rest of them.
    override = os.environ.get("NSBOX_STATE_DIR")
    if override:
        return override
    if os.geteuid() == 0:
        return "/run/nsbox"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return f"{runtime}/nsbox" if runtime else f"/tmp/nsbox-{os.geteuid()}"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


# This process's owner directory in each state directory it used: (pid, state dir) -> path.
# Reading /proc/self/stat for the start time cost more than the rest of a record, and neither
# the pid nor the start time changes while the process lives. A forked child has another pid,
# so the parent's entries never answer for it: it makes a directory of its own.
_owner_dirs: dict[tuple[int, str], str] = {}
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # Another thread of the parent may have held the lock when it forked; in the child that
    # thread is gone and the lock would stay held forever.
    global _lock
    _lock = threading.Lock()
    _owner_dirs.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _my_dir() -> str:
    pid = os.getpid()
    top = _state_dir_name()
    owner = _owner_dirs.get((pid, top))
    if owner is not None:
        return owner
    with _lock:
        owner = _owner_dirs.get((pid, top))
        if owner is None:
            _make_private(Path(top))
            owner = f"{top}/owners/{pid}-{_start_time(pid)}"
            os.makedirs(owner, mode=0o700, exist_ok=True)
            atexit.register(_remove_if_empty, owner, pid)
            _owner_dirs[(pid, top)] = owner
    return owner


def _make_private(top: Path) -> None:
    # Without root the state may fall back to a directory in a shared /tmp, where another
    # user could have made it first (or put a symlink there): it must be ours, a real
    # directory, and writable by nobody else.
    top.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(top)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise UnsupportedError(
            f"the state directory {top} is not a directory of yours that only you can write "
            "to; set XDG_RUNTIME_DIR (or NSBOX_STATE_DIR) to a private directory")


def _remove_if_empty(path: str, owner_pid: int) -> None:
    # A child forked after this was registered inherits it, and must not remove its parent's
    # directory (the parent still counts on it existing).
    if os.getpid() != owner_pid:
        return
    with contextlib.suppress(OSError):  # not empty: leftovers for gc to find
        os.rmdir(path)


def _record_name(kind: Kind, path: str) -> str:
    return f"{kind}-{hashlib.sha256(path.encode()).hexdigest()[:16]}"


def record(kind: Kind, path: str | os.PathLike[str]) -> None:
    """Write down that we are about to create ``path``.

    One ``write(2)`` of a short path into a new file: a reader sees the whole path or, if we
    died between the create and the write, an empty record, which names nothing made yet.
    """
    text = os.fspath(path)
    fd = os.open(f"{_my_dir()}/{_record_name(kind, text)}",
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, os.fsencode(text))
    finally:
        os.close(fd)


def forget(kind: Kind, path: str | os.PathLike[str]) -> None:
    """Remove the record of ``path`` once it has been released."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{_my_dir()}/{_record_name(kind, os.fspath(path))}")


@contextlib.contextmanager
def held(kind: Kind, path: str | os.PathLike[str]) -> Iterator[None]:
    """Record ``path`` for the duration of the block (create it inside, release it before)."""
    record(kind, path)
    try:
        yield
    finally:
        forget(kind, path)


# -- garbage collection ------------------------------------------------------------------------

@attrs.frozen
class Leftover:
    """One resource whose owner is dead."""

    kind: Kind
    path: str
    owner: str


def _owner_alive(name: str) -> bool:
    pid_text, _, start = name.partition("-")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return _start_time(pid) == start


def leftovers() -> list[Leftover]:
    """Every recorded resource whose owning process is gone."""
    owners = state_dir() / "owners"
    found: list[Leftover] = []
    if not owners.is_dir():
        return found
    for owner in sorted(owners.iterdir()):
        if _owner_alive(owner.name):
            continue
        for entry in sorted(owner.iterdir()):
            # ".kind-digest.tid": earlier nsbox builds wrote a record there, then renamed it; its
            # owner may have died in between, and the path in it is complete.
            kind = entry.name.lstrip(".").split("-", 1)[0]
            if kind in KINDS:
                path = entry.read_text()
                if path:  # empty: the owner died before writing it, and so before making it
                    found.append(Leftover(kind, path, owner.name))
    return sorted(found, key=lambda item: KINDS.index(item.kind))


def _is_nsbox_path(path: str) -> bool:
    # Everything nsbox creates is named nsbox-...: never release anything else, whatever a
    # (possibly tampered) record says.
    return Path(path).name.startswith("nsbox-")


def _mounted_at(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


_MNT_DETACH = 2


def _release_mount(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    while _mounted_at(path):  # mounts may be stacked on the same point
        if libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                return
            raise OSError(err, os.strerror(err), path)


def _release_cgroup(path: str) -> None:
    directory = Path(path)
    deadline = time.monotonic() + 5
    while directory.exists():
        for child in sorted((p for p in directory.rglob("*") if p.is_dir()), reverse=True):
            _empty_and_remove(child, deadline)
        _empty_and_remove(directory, deadline)


def _empty_and_remove(directory: Path, deadline: float) -> None:
    procs = directory / "cgroup.procs"
    with contextlib.suppress(FileNotFoundError):
        for pid in procs.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    try:
        directory.rmdir()
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY or time.monotonic() > deadline:
            raise
        time.sleep(0.01)


def _release_dir(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)


_RELEASE: dict[Kind, Callable[[str], None]] = {
    "mount": _release_mount,
    "cgroup": _release_cgroup,
    "dir": _release_dir,
}


def gc(dry_run: bool = False) -> list[Leftover]:
    """Release everything whose owner is dead; return what was (or, dry, would be) released.

    Mounts go first (a directory under a mount cannot be removed), then cgroups, then
    directories. Anything not named ``nsbox-...`` is skipped, whatever its record says.
    """
    found = [item for item in leftovers() if _is_nsbox_path(item.path)]
    if dry_run:
        return found
    for item in found:
        _RELEASE[item.kind](item.path)
    owners = state_dir() / "owners"
    if owners.is_dir():
        for owner in owners.iterdir():
            if not _owner_alive(owner.name):
                shutil.rmtree(owner, ignore_errors=True)
    return found
