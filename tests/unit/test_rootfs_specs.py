"""Root filesystem specs, validated before the kernel is touched, and the plan they make."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import nsbox
from nsbox._native import mounts as native
from nsbox.rootfs import Bind, OverlayRootfs, PivotRoot, Tmpfs, as_pivot_root
from nsbox.rootfs._context import ChildContext, child_context
from nsbox.rootfs._kernel import OVERLAYFS_MAGIC, TMPFS_MAGIC, upper_refusal
from nsbox.rootfs._paths import container_path


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    """An empty lower layer directory."""
    path = tmp_path / "lower"
    path.mkdir()
    return path


@pytest.mark.parametrize(("given", "normal"), [("/a//b/./c/", "/a/b/c"), ("/dev/shm", "/dev/shm"),
                                               (Path("/srv/x"), "/srv/x")])
def test_container_paths_are_normalised(given: str, normal: str) -> None:
    """Destinations are made canonical: no doubled slashes, '.' or trailing slash."""
    assert container_path(given) == normal


@pytest.mark.parametrize("bad", ["etc", "", "/", "/a/../../etc", "/..", "/a/\0", 42, None])
def test_bad_destinations_are_config_errors(bad: object) -> None:
    """Relative, root, escaping ('..') or non-path destinations raise ConfigError."""
    with pytest.raises(nsbox.ConfigError):
        Tmpfs(bad)  # type: ignore[arg-type]


def test_bind_checks_source_and_destination(tmp_path: Path) -> None:
    """A Bind needs an existing source and an absolute, non-escaping destination; it
    defaults to the source's own path."""
    assert Bind(tmp_path).target == str(tmp_path)
    with pytest.raises(nsbox.ConfigError, match="does not exist"):
        Bind(tmp_path / "missing", "/data")
    with pytest.raises(nsbox.ConfigError, match="relative"):
        Bind(tmp_path, "data")
    with pytest.raises(nsbox.ConfigError, match=r"\.\."):
        Bind(tmp_path, "/data/../../etc")


@pytest.mark.parametrize("size", [0, -1, "64X", "", "101%", True, 1.5])
def test_bad_tmpfs_sizes(size: object) -> None:
    """Tmpfs sizes must be positive bytes, k/M/G strings or a percentage."""
    with pytest.raises(nsbox.ConfigError):
        Tmpfs("/t", size=size)  # type: ignore[arg-type]


def test_tmpfs_options_render_for_fsconfig() -> None:
    """A Tmpfs becomes fsconfig options with nsbox's source name, octal mode and size."""
    assert Tmpfs("/t", size="64M", mode=0o1777).options() == [
        (b"source", b"nsbox-tmpfs"), (b"mode", b"1777"), (b"size", b"64M")]
    with pytest.raises(nsbox.ConfigError):
        Tmpfs("/t", mode=0o17777)


def test_missing_or_odd_lower_layers_are_config_errors(tmp_path: Path, lower: Path) -> None:
    """A missing lower layer, a file, the same layer twice, none, or more than overlayfs
    stacks (500) raise ConfigError."""
    (tmp_path / "file").write_text("")
    for bad, match in (([tmp_path / "missing"], "does not exist"),
                       ([tmp_path / "file"], "not a directory"),
                       ([lower, lower], "twice"), ([], "at least one"),
                       ([lower] * 501, "500")):
        with pytest.raises(nsbox.ConfigError, match=match):
            OverlayRootfs(bad)


def test_upper_may_not_overlap_a_lower_layer(tmp_path: Path, lower: Path) -> None:
    """An upper layer inside a lower one, or containing one, is a ConfigError."""
    with pytest.raises(nsbox.ConfigError, match="inside the lower"):
        OverlayRootfs([lower], upper=lower / "up")
    with pytest.raises(nsbox.ConfigError, match="contains the lower"):
        OverlayRootfs([lower], upper=tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(nsbox.ConfigError, match="not a directory"):
        OverlayRootfs([lower], upper=tmp_path / "f")


def test_upper_filesystem_rules() -> None:
    """Overlay cannot be an upper layer; tmpfs can, rootless only from Linux 6.6."""
    assert "overlay" in (upper_refusal(OVERLAYFS_MAGIC, userxattr=False, kernel=(6, 18)) or "")
    assert upper_refusal(TMPFS_MAGIC, userxattr=False, kernel=(5, 15)) is None
    assert "6.6" in (upper_refusal(TMPFS_MAGIC, userxattr=True, kernel=(6, 5)) or "")
    assert upper_refusal(TMPFS_MAGIC, userxattr=True, kernel=(6, 6)) is None
    assert upper_refusal(0xEF53, userxattr=True, kernel=(5, 11)) is None  # ext4


def test_pivot_root_refuses_mounts_over_proc_and_the_managed_dirs(lower: Path) -> None:
    """Mounts on /proc (but runc's replaceable files) and on a /dev or /sys the plan makes
    are ConfigErrors; with dev=False /dev is yours."""
    with pytest.raises(nsbox.ConfigError, match="CVE-2019-16884"):
        PivotRoot(lower, mounts=[Tmpfs("/proc/sys")])
    PivotRoot(lower, mounts=[Bind(lower, "/proc/meminfo")])
    with pytest.raises(nsbox.ConfigError, match="already"):
        PivotRoot(lower, mounts=[Tmpfs("/dev")])
    PivotRoot(lower, dev=False, mounts=[Tmpfs("/dev")])
    with pytest.raises(nsbox.ConfigError):
        PivotRoot(lower, mounts=["/data"])
    with pytest.raises(nsbox.ConfigError):
        PivotRoot(lower, masked_paths=["proc/kcore"])
    with pytest.raises(nsbox.ConfigError):
        PivotRoot(lower, proc="yes")  # type: ignore[arg-type]
    with pytest.raises(nsbox.ConfigError, match="not a directory"):
        PivotRoot(lower / "missing")


def test_container_accepts_rootfs_positionally_or_by_keyword(lower: Path) -> None:
    """Container takes a PivotRoot or OverlayRootfs as a part or rootfs=, a directory as
    rootfs=, and refuses two of them or the host's mount namespace."""
    fs = OverlayRootfs([lower])
    assert nsbox.Container(fs).rootfs is not None
    assert isinstance(nsbox.Container(rootfs=str(lower)).rootfs, PivotRoot)
    root = PivotRoot(fs)
    assert nsbox.Container(root).rootfs is root and as_pivot_root(None) is None
    with pytest.raises(nsbox.ConfigError, match="two root"):
        nsbox.Container(root, rootfs=fs)
    with pytest.raises(nsbox.ConfigError, match="mount namespace"):
        nsbox.Container(nsbox.Namespaces(mount=False), fs)
    with pytest.raises(nsbox.ConfigError):
        nsbox.Container(rootfs=42)  # type: ignore[arg-type]


def test_the_plan_in_order_and_as_c_structs(lower: Path) -> None:
    """The plan runs proc, dev, sys, the user's mounts, then masks and read-only paths; the
    C struct carries every step with its strings and flattened options."""
    root = PivotRoot(str(lower), mounts=[Tmpfs("/scratch", size="1M"),
                                         Bind(lower, "/data", readonly=True)])
    steps = root._steps()
    dests = [s.dest.decode() for s in steps]
    assert dests[0] == "/proc" and dests[1] == "/dev"
    assert dests.index("/sys") < dests.index("/scratch") < dests.index("/data") \
        < dests.index("/proc/kcore") < dests.index("/proc/sys")
    keep: list[object] = []
    spec = native.RootfsSpec(root=os.fsencode(lower), bind_source=os.fsencode(lower),
                             mounts=steps)
    c = native.rootfs_to_c(keep, spec)
    assert c.n_mounts == len(steps)
    scratch = c.mounts[dests.index("/scratch")]
    assert native._ffi.string(scratch.fstype) == b"tmpfs"
    assert [native._ffi.string(scratch.options[i]) for i in (0, 1, 4, 5)] == [
        b"source", b"nsbox-tmpfs", b"size", b"1M"]
    assert c.mounts[dests.index("/data")].flags == native.RDONLY


def test_an_equal_plan_reuses_its_conversion_and_another_does_not(lower: Path) -> None:
    """Converted plans are cached by value: two PivotRoots with the same plan share one C
    array; a different user mount gets its own, with its own strings."""
    def convert(target: str) -> tuple[object, list[str]]:
        steps = PivotRoot(str(lower), mounts=[Bind(lower, target)])._steps()
        spec = native.RootfsSpec(root=os.fsencode(lower), mounts=steps)
        c = native.rootfs_to_c([], spec)
        return c.mounts, [native._ffi.string(c.mounts[i].dest).decode()
                          for i in range(c.n_mounts)]

    first, first_dests = convert("/data")
    again, again_dests = convert("/data")
    other, other_dests = convert("/elsewhere")
    assert again == first and again_dests == first_dests
    assert other != first and "/elsewhere" in other_dests and "/data" not in other_dests


def test_overlay_layers_go_by_path_or_by_short_name(tmp_path: Path, lower: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With "lowerdir+" each layer goes by its own path, top first, without symlinks. For the
    mount(2) page: absolute paths if they fit, else paths relative to the layers' common
    directory, else a short symlink per layer; ',' and ':' are escaped."""
    odd = tmp_path / "a,b:c"
    odd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(odd))
    near = [lower] + [Path(tempfile.mkdtemp(dir=tmp_path)) for _ in range(299)]
    far = [Path(tempfile.mkdtemp(dir=tmp_path, prefix="x" * 30)) / ("y" * 60) for _ in range(300)]
    for path in far:
        path.mkdir()
    for layers, legacy_first, legacy_dir in ((near, str(near[-1].name), str(tmp_path)),
                                             (far, "l/299", None)):
        fs = OverlayRootfs(layers)
        with fs._for_containers():
            assert fs._dir is not None
            modern = fs._spec(relative=True, userxattr=True)
            assert modern.lowers[0] == os.fsencode(layers[-1]) and modern.legacy_data == b""
            assert modern.upper == b"upper" and (b"userxattr", None) in modern.options
            assert not os.path.exists(os.path.join(fs._dir, "l"))
            legacy = fs._spec(relative=True, userxattr=True, legacy_only=True)
            assert legacy.lowers[0] == os.fsencode(legacy_first)
            assert legacy.layers_dir == os.fsencode(legacy_dir or fs._dir)
            assert legacy.lower_names[0] == os.fsencode(layers[-1])
            assert len(legacy.legacy_data) < 4096 and legacy.legacy_data.endswith(b",userxattr")
            assert os.path.exists(os.path.join(fs._dir, "l")) == (legacy_dir is None)
    small = OverlayRootfs([lower])
    with small._for_containers():
        data = small._spec(relative=False, userxattr=False, legacy_only=True).legacy_data
    assert data.startswith(b"lowerdir=" + os.fsencode(lower) + b",upperdir=")
    escaped = os.fsencode(odd).replace(b",", b"\\,").replace(b":", b"\\:")
    assert b"upperdir=" + escaped + b"/nsbox-overlay-" in data
    assert data.endswith(b",redirect_dir=off,metacopy=off")
    assert not os.listdir(odd)


def test_a_containers_own_upper_layer_is_in_memory_where_it_can_be(
        tmp_path: Path, lower: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entered by a container for itself, a throwaway upper layer is a tmpfs of the child's,
    with the layers by their own paths and nothing in TMPDIR; it stays on disk when upper= is
    given, when the layers need the state directory's short names, or when a rootless
    overlay's tmpfs would lack user xattrs (before Linux 6.6)."""
    from nsbox.rootfs import _overlay

    os.chmod(lower, 0o2751)
    root, rootless = ChildContext(userns=False), ChildContext(userns=True)
    fs = OverlayRootfs([lower])
    with fs._for_containers(root):
        spec = fs._child_spec(root)
        assert fs._child_root() == "merged" and not os.listdir(tempfile.gettempdir())
    assert (spec.lowers, spec.upper, spec.work, spec.layers_dir) == (
        [os.fsencode(lower)], b"upper", b"work", None)
    tmpfs = spec.upper_tmpfs
    assert tmpfs is not None and (b"source", b"nsbox-upper") in tmpfs.options
    assert (tmpfs.upper_mode, tmpfs.upper_uid) == (0o2751, os.stat(lower).st_uid)
    rootless_spec = OverlayRootfs([lower])
    with rootless_spec._for_containers(rootless):
        tmpfs = rootless_spec._child_spec(rootless).upper_tmpfs
        assert tmpfs is not None and (tmpfs.upper_uid, tmpfs.upper_gid) == (-1, -1)

    far = [tmp_path / ("x" * 100) / f"{i:0100}" for i in range(40)]  # > a page for mount(2)
    for path in far:
        path.mkdir(parents=True)
    on_disk = [(OverlayRootfs([lower], upper=tmp_path / "upper"), root, False),
               (OverlayRootfs(far), root, True)]
    for fs, ctx, legacy_only in on_disk:
        with fs._for_containers(ctx, legacy_only=legacy_only):
            assert fs._dir is not None and fs._child_spec(ctx).upper_tmpfs is None
    monkeypatch.setattr(_overlay, "kernel_version", lambda: (6, 5))
    for ctx, in_memory in ((rootless, False), (root, True)):
        fs = OverlayRootfs([lower])
        with fs._for_containers(ctx):
            assert (fs._dir is None) == in_memory


def test_child_context_knows_the_user_namespace_and_its_root() -> None:
    """A new user namespace means userxattr; root mapped elsewhere gets the directories."""
    ns = nsbox.Namespaces(user=True)
    ctx = child_context(ns, ns.new_flags(), b"0 100000 65536\n", b"0 200000 65536\n")
    assert ctx.userns and ctx.root_ids == (100000, 200000)
    plain = nsbox.Namespaces(user=False)
    assert child_context(plain, plain.new_flags(), None, None) == \
        ChildContext(userns=False, root_ids=None)
