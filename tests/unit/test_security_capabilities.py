"""Capability names and sets, and the container options around them: pure Python logic."""

from __future__ import annotations

import pytest

import nsbox
from nsbox.security import CAPABILITIES, DEFAULT_CAPABILITIES, resolve_capabilities
from nsbox.security._capabilities import capability_names, mask
from nsbox.security._policy import Policy


def test_default_set_is_dockers() -> None:
    """Without cap_add/cap_drop root keeps Docker's fourteen capabilities."""
    assert resolve_capabilities((), ()) == DEFAULT_CAPABILITIES
    docker = {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
              "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
              "AUDIT_WRITE"}
    assert docker == DEFAULT_CAPABILITIES


def test_names_in_any_spelling() -> None:
    """Names are accepted in any case, with or without CAP_, and come out normalised."""
    assert capability_names(["cap_net_admin", "Sys_Admin", "all"], "cap_add") == (
        "NET_ADMIN", "SYS_ADMIN", "ALL")


def test_add_and_drop() -> None:
    """cap_add adds to the default set and cap_drop takes away from it."""
    caps = resolve_capabilities(("NET_ADMIN",), ("CHOWN",))
    assert caps == (DEFAULT_CAPABILITIES | {"NET_ADMIN"}) - {"CHOWN"}


def test_all_in_drop_keeps_only_the_added() -> None:
    """cap_drop=["ALL"] starts from nothing, so only cap_add remains."""
    assert resolve_capabilities(("NET_BIND_SERVICE",), ("ALL",)) == {"NET_BIND_SERVICE"}


def test_all_in_add_gives_all_but_the_dropped() -> None:
    """cap_add=["ALL"] starts from every capability, minus cap_drop."""
    assert resolve_capabilities(("ALL",), ("SYS_ADMIN",)) == set(CAPABILITIES) - {"SYS_ADMIN"}


@pytest.mark.parametrize(("add", "drop", "message"), [
    (("ALL",), ("ALL",), "'ALL' cannot be both added and dropped"),
    (("NET_ADMIN",), ("NET_ADMIN",), "both added and dropped: NET_ADMIN"),
])
def test_contradictions_are_refused(add: tuple[str, ...], drop: tuple[str, ...],
                                    message: str) -> None:
    """Adding and dropping the same thing is a ConfigError, not a silent choice."""
    with pytest.raises(nsbox.ConfigError, match=message):
        resolve_capabilities(add, drop)


def test_unknown_name_lists_what_is_accepted() -> None:
    """A misspelt capability is a ConfigError naming the accepted forms and the known names."""
    with pytest.raises(nsbox.ConfigError) as info:
        nsbox.Container(cap_add=["NET_ADMINN"])
    message = str(info.value)
    assert "'NET_ADMINN'" in message and "'ALL'" in message and "NET_ADMIN," in message


def test_a_string_is_not_a_list() -> None:
    """cap_drop="ALL" (a string, not a list) is refused rather than read letter by letter."""
    with pytest.raises(nsbox.ConfigError, match="list of capability names"):
        nsbox.Container(cap_drop="ALL")


def test_masks_follow_capability_numbers() -> None:
    """Masks put capability n in bit n, as the kernel's sets do."""
    assert mask(["CHOWN", "SYS_ADMIN"]) == 1 | 1 << 21
    assert mask(DEFAULT_CAPABILITIES) == 0xA80425FB


def test_non_root_processes_get_no_capabilities() -> None:
    """For a non-root uid the policy keeps the bounding set but asks for no capability."""
    policy = Policy(cap_add=("NET_ADMIN",), cap_drop=(), seccomp=None, no_new_privs=True,
                    oom_score_adj=None, protect_system_paths=True)
    root, user = policy.process_fields(0), policy.process_fields(1000)
    assert root["cap_effective"] == root["cap_bounding"] == user["cap_bounding"]
    assert root["cap_required"] == 1 << CAPABILITIES["NET_ADMIN"]
    assert (user["cap_permitted"], user["cap_effective"], user["cap_required"]) == (0, 0, 0)
    assert root["protect_system_paths"] is False  # only where the mount namespace is set up
    assert policy.process_fields(-1, new_mount_namespace=True)["protect_system_paths"] is True


@pytest.mark.parametrize(("options", "message"), [
    ({"oom_score_adj": 1001}, "oom_score_adj must be an int in -1000..1000"),
    ({"oom_score_adj": True}, "oom_score_adj must be an int"),
    ({"no_new_privs": "yes"}, "no_new_privs must be True or False"),
    ({"protect_system_paths": 1}, "protect_system_paths must be True or False"),
    ({"seccomp": "unconfined"}, "seccomp must be 'default', an nsbox.SeccompProfile"),
])
def test_invalid_security_options(options: dict[str, object], message: str) -> None:
    """Bad security options are ConfigErrors on construction, saying what is accepted."""
    with pytest.raises(nsbox.ConfigError, match=message):
        nsbox.Container(**options)  # type: ignore[arg-type]
