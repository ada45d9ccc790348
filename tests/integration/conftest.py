"""Fixtures shared by the root filesystem tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nsbox.rootfs import make_busybox_tree
from tests.conftest import HostState
from tests.rootfs_helpers import rootfs_temp_dirs


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox root filesystem, used read-only as a (bottom) lower layer."""
    return make_busybox_tree(tmp_path_factory.mktemp("rootfs") / "base")


@pytest.fixture
def clean(host_state: HostState) -> Iterator[None]:
    """No mount, fd, child or temporary directory of nsbox is left after the test."""
    before = rootfs_temp_dirs()
    yield
    assert rootfs_temp_dirs() == before, "temporary directories left behind"
