"""The overlay layer format read by diff() and written by commit(), on hand-made layers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nsbox.rootfs import Change
from nsbox.rootfs._commit import commit, make_whiteout
from nsbox.rootfs._diff import diff
from nsbox.rootfs._layers import LayerStack, is_whiteout
from tests.rootfs_helpers import make_layer


def _dirs_0755(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)


def _opaque(path: Path) -> None:
    os.setxattr(path, "user.overlay.opaque", b"y")


def _view(stack: LayerStack, rel: str = "") -> dict[str, str]:
    """Every path of a merged view with its content (or '/' for a directory)."""
    out: dict[str, str] = {}
    for name in sorted(stack.names(rel)):
        path = f"{rel}/{name}" if rel else name
        st = stack.lookup(path)
        assert st is not None
        if stat.S_ISDIR(st.st_mode):
            out[path] = "/"
            out.update(_view(stack, path))
        else:
            for layer in stack.layers:
                try:
                    out[path] = Path(layer, path).read_text()
                    break
                except (FileNotFoundError, NotADirectoryError):
                    continue
    return out


def test_whiteouts_and_opaque_directories_hide_lower_entries(tmp_path: Path) -> None:
    """In a stack, a whiteout deletes a name below it, an opaque directory hides the one
    below, a directory hides a file and a file hides a directory."""
    bottom = make_layer(tmp_path / "bottom", {"a": "a", "d/x": "x", "d/y": "y", "o/z": "z",
                                              "f": "file", "g/in": "in"})
    top = make_layer(tmp_path / "top", {"o/new": "new", "f/sub": "sub", "g": "now a file"})
    make_whiteout(os.path.join(top, "a"))
    make_layer(top, {"d": None})
    make_whiteout(os.path.join(top, "d", "x"))
    _opaque(Path(top, "o"))
    assert is_whiteout(os.path.join(top, "a"), os.lstat(os.path.join(top, "a")))
    stack = LayerStack([top, bottom])
    assert _view(stack) == {"d": "/", "d/y": "y", "o": "/", "o/new": "new", "f": "/",
                            "f/sub": "sub", "g": "now a file"}
    assert stack.lookup("a") is None and stack.lookup("g/in") is None


def test_diff_over_hand_made_layers(tmp_path: Path) -> None:
    """diff() compares with the merged lower view: an opaque directory deletes what it hid
    (also in subdirectories it keeps), a file turned directory is modified with new children,
    and a whiteout over nothing is no change."""
    lower = make_layer(tmp_path / "lower", {"p/c/x": "x", "p/c/y": "y", "p/q": "q",
                                            "file": "f", "keep": "k"})
    upper = make_layer(tmp_path / "upper", {"p/c/x": "x2", "file/inside": "i", "new": "n"})
    _dirs_0755(tmp_path)
    _opaque(Path(upper, "p"))
    make_whiteout(os.path.join(upper, "never-existed"))
    assert [str(c) for c in diff(upper, [lower])] == [
        "C /file", "A /file/inside", "A /new", "C /p/c/x", "D /p/c/y", "D /p/q"]
    assert Change("/new", "added") in diff(upper, [lower])


def test_commit_turns_opaque_directories_into_whiteouts(tmp_path: Path) -> None:
    """A committed layer needs no overlay xattr: what an opaque directory hid becomes
    whiteouts, so the new stack shows exactly what the overlay showed."""
    lower = make_layer(tmp_path / "lower", {"p/c/x": "x", "p/c/y": "y", "p/q": "q", "gone": "g",
                                            "keep": "k"})
    upper = make_layer(tmp_path / "upper", {"p/c/x": "x2", "added": "a"})
    _opaque(Path(upper, "p"))
    make_whiteout(os.path.join(upper, "gone"))
    os.link(os.path.join(upper, "added"), os.path.join(upper, "hardlink"))
    merged_before = _view(LayerStack([upper, lower]))
    layer = tmp_path / "layer"
    layer.mkdir()
    commit(upper, [lower], str(layer))
    assert _view(LayerStack([str(layer), lower])) == merged_before == {
        "added": "a", "hardlink": "a", "keep": "k", "p": "/", "p/c": "/", "p/c/x": "x2"}
    assert not [name for name in os.listxattr(layer / "p") if "overlay" in name]
    assert os.stat(layer / "added").st_ino == os.stat(layer / "hardlink").st_ino
    assert is_whiteout(str(layer / "p" / "q"), os.lstat(layer / "p" / "q"))
