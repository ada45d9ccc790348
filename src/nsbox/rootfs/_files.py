"""Host-side directories of nsbox: made with an ``nsbox-`` name and recorded in the state
directory first (so ``nsbox gc`` removes them if their owner dies), removed without crossing
mounts."""

from __future__ import annotations

import os
import stat
import tempfile

from .. import state


def make_temp_dir(kind: str, parent: str | None = None) -> str:
    """A new private directory ``nsbox-KIND-XXXXXXXX`` in ``parent`` (default: the temp dir),
    recorded before it is made; :func:`release_temp_dir` removes both."""
    base = parent if parent is not None else tempfile.gettempdir()
    for _ in range(100):
        path = os.path.join(base, f"nsbox-{kind}-{os.urandom(4).hex()}")
        state.record("dir", path)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            state.forget("dir", path)
            continue
        except BaseException:
            state.forget("dir", path)
            raise
        return path
    raise FileExistsError(f"no free nsbox-{kind}-* name in {base}")


def release_temp_dir(path: str) -> None:
    """Remove a directory of :func:`make_temp_dir` and its record."""
    remove_tree(path)
    state.forget("dir", path)


def remove_tree(top: str) -> None:
    """Remove ``top`` and everything below it, as shutil.rmtree would, with two differences.

    Directories nsbox cannot enter (overlayfs leaves its ``work/work`` at mode 000) are opened
    up first. And a directory on another filesystem than ``top`` (something mounted below it)
    is never entered: removing through a mount would delete the mounted content, so that is
    an error instead.

    Raises:
        OSError: something could not be removed (a mount below ``top``: EBUSY).
    """
    try:
        top_st = os.lstat(top)
    except FileNotFoundError:
        return

    def remove(path: str, st: os.stat_result) -> None:
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            return
        if st.st_dev != top_st.st_dev:
            raise OSError(16, "a filesystem is still mounted here; not removing through it", path)
        if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
            os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
        with os.scandir(path) as entries:
            children = [(e.path, e.stat(follow_symlinks=False)) for e in entries]
        for child, child_st in children:
            remove(child, child_st)
        os.rmdir(path)

    remove(top, top_st)
