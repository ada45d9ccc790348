"""``Container``: composes the steps in the right order and runs processes inside.

Entering a container starts its init (a tiny C program, PID 1 of its pid namespace) which holds
the namespaces; every ``run``/``spawn`` joins them from the C child, so the Python process never
changes namespaces. Leaving kills and reaps everything and releases what was acquired, in
reverse order, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

import attrs
from typing_extensions import Self

from . import _native
from . import errors as nsbox_errors
from ._interrupts import deferred
from ._launch import DEFAULT_PATH, argv_of, check_env, env_block
from ._stdio import Stdio
from .errors import ConfigError, LifecycleError
from .namespaces import CLONE_FLAGS, PROC_NS_FILE, Namespaces
from .process import (
    PIPE,
    Args,
    CompletedProcess,
    Process,
    StdioSpec,
    collect,
    collect_async,
    reap_unowned_zombies,
)
from .rootfs import OverlayRootfs, PivotRoot, as_pivot_root
from .rootfs._kernel import fs_type
from .security import SeccompProfile
from .security import _policy as security

if TYPE_CHECKING:
    from .cgroup import CGroup, CGroupStats

T = TypeVar("T")
_INIT_TIMEOUT = 5.0
_PLAIN_FILESYSTEMS = frozenset({"tmpfs", "ext4", "xfs", "btrfs"})
_NEEDS_OWN_PROC = CLONE_FLAGS["mount"] | CLONE_FLAGS["pid"]

RlimitValue = int | tuple[int, int]
_RLIMITS = {name[len("RLIMIT_"):].lower(): getattr(resource, name)
            for name in dir(resource) if name.startswith("RLIMIT_")}


def _check_hostname(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or len(value.encode()) > 64 or "\0" in value:
        raise ConfigError(f"{attribute.name} must be 1 to 64 bytes without NUL, not {value!r}")


def _check_env(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        check_env(value)


def _check_cwd(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise ConfigError(f"cwd must be an absolute path inside the container, not {value!r}")


def _check_id(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32 - 1:
        raise ConfigError(f"{attribute.name} must be a numeric id in 0..{2**32 - 2}, "
                          f"not {value!r}")


def _id_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"groups must be a list of numeric gids, not {value!r}")
    return tuple(value)


def _check_groups(instance: Any, attribute: Any, value: Any) -> None:
    for gid in value:
        _check_id(instance, attribute, gid)


def _check_rlimits(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError("rlimits must be a mapping like {'nofile': 1024}")
    for name, limit in value.items():
        if name not in _RLIMITS:
            raise ConfigError(f"unknown rlimit {name!r}; known: {', '.join(sorted(_RLIMITS))}")
        pair = limit if isinstance(limit, tuple) else (limit, limit)
        if len(pair) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair
        ) or pair[0] > pair[1]:
            raise ConfigError(f"rlimit {name!r} must be an int >= 0 or (soft, hard) with "
                              f"soft <= hard, not {limit!r}")


@attrs.frozen(kw_only=True)
class ContainerOptions:
    """What a container sets up beside its namespaces; validated on construction."""

    hostname: str | None = attrs.field(default="nsbox", validator=_check_hostname)
    domainname: str | None = attrs.field(default=None, validator=_check_hostname)
    env: Mapping[str, str] | None = attrs.field(default=None, validator=_check_env)
    cwd: str = attrs.field(default="/", validator=_check_cwd)
    user: int = attrs.field(default=0, validator=_check_id)
    group: int | None = attrs.field(default=None, validator=_check_id)
    groups: Sequence[int] = attrs.field(default=(), converter=_id_tuple, validator=_check_groups)
    rlimits: Mapping[str, RlimitValue] = attrs.field(factory=dict, validator=_check_rlimits)
    cap_add: Sequence[str] = attrs.field(default=(), converter=security.to_capabilities)
    cap_drop: Sequence[str] = attrs.field(default=(), converter=security.to_capabilities)
    seccomp: SeccompProfile | None = attrs.field(factory=SeccompProfile.default,
                                                 converter=security.to_seccomp)
    no_new_privs: bool = attrs.field(default=True, validator=security.check_bool)
    oom_score_adj: int | None = attrs.field(default=None,
                                            validator=security.check_oom_score_adj)
    protect_system_paths: bool = attrs.field(default=True, validator=security.check_bool)

    def environment(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        """The environment of a process: a clean default, the container's, then ``extra``."""
        env = {"PATH": DEFAULT_PATH, "HOME": "/root" if self.user == 0 else "/",
               "container": "nsbox"}
        if self.hostname:
            env["HOSTNAME"] = self.hostname
        env.update(self.env or {})
        env.update(extra or {})
        return env

    def rlimit_triples(self) -> list[tuple[int, int, int]]:
        """(resource, soft, hard) for the C child."""
        out = []
        for name, limit in self.rlimits.items():
            soft, hard = limit if isinstance(limit, tuple) else (limit, limit)
            out.append((_RLIMITS[name], soft, hard))
        return out


def _is_cgroup(value: object) -> TypeGuard[CGroup]:
    # Imported here: a program whose containers have no cgroup never loads nsbox.cgroup.
    from .cgroup import CGroup

    return isinstance(value, CGroup)


_argv = argv_of
_env_block = env_block


class Container:
    """A container: namespaces (and later a cgroup and a root filesystem) with processes in them.

    Parts can be passed positionally in any order (``Container(ns, cgroup)``) or by keyword.
    Entering starts the container; leaving kills and reaps everything in it.

    Args:
        namespaces: a :class:`Namespaces` spec (default: new pid, net, uts, ipc, mount and
            cgroup namespaces, and a user namespace when not root). If it is entered already,
            the container joins its namespaces.
        cgroup: a :class:`CGroup`: every process of the container is inside it before it
            executes anything. Given unentered, the container enters it and removes it on
            teardown; entered by you, it stays yours.
        hostname: the hostname in a new uts namespace (default ``"nsbox"``).
        env: environment variables added to the clean default (``PATH``, ``HOME``, ...).
        cwd: the working directory of processes (default ``/``).
        user, group, groups: the uid, gid and supplementary groups of processes inside.
        rlimits: resource limits by name (``{"nofile": 1024, "core": (0, 0)}``).
        cap_add, cap_drop: capabilities of root in the container, by name, from Docker's
            default set (``"ALL"`` allowed); a non-root user has none. See docs/security.md.
        seccomp: ``"default"`` (Docker's profile), a :class:`SeccompProfile`, an OCI
            ``linux.seccomp`` mapping, or None for no filter.
        no_new_privs: no program executed inside gains privileges (setuid bits, file
            capabilities); on by default.
        oom_score_adj: -1000..1000 for every process of the container (lowering it needs
            CAP_SYS_RESOURCE).
        protect_system_paths: mask ``/proc/kcore`` and the like, make ``/proc/sys``,
            ``/proc/sysrq-trigger`` and ``/sys`` read-only inside (as runc does).
        rootfs: the container's own root filesystem: a :class:`PivotRoot`, an
            :class:`OverlayRootfs` or a directory (both with PivotRoot's default plan); also
            accepted positionally. Given unentered, the container enters it and leaves it on
            teardown. ``"host"`` (default): as root, ``OverlayRootfs.host()`` — the host's
            ``/`` read-only under a throwaway upper layer in the container's memory (nothing
            is made on the host for it), with its own /proc, /sys, /dev,
            /run and /tmp; without root, or with a joined or shared mount namespace, the
            host's filesystem in the private mount namespace (also with a new user namespace,
            where the kernel refuses an overlay of /, and when / is itself an overlay or
            another filesystem an overlay may not stack on). None: always the latter.

    Raises:
        ConfigError: on construction, for anything invalid.

    .. versionadded:: 0.1
    """

    def __init__(self, *parts: object, namespaces: Namespaces | None = None,
                 cgroup: CGroup | None = None,
                 hostname: str | None = "nsbox", domainname: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: str = "/", user: int = 0,
                 group: int | None = None, groups: Sequence[int] = (),
                 rlimits: Mapping[str, RlimitValue] | None = None,
                 cap_add: Sequence[str] = (), cap_drop: Sequence[str] = (),
                 seccomp: SeccompProfile | str | Mapping[str, Any] | None = "default",
                 no_new_privs: bool = True, oom_score_adj: int | None = None,
                 protect_system_paths: bool = True,
                 rootfs: PivotRoot | OverlayRootfs | str | os.PathLike[str] | None = "host",
                 ) -> None:
        for part in parts:
            if isinstance(part, Namespaces):
                if namespaces is not None:
                    raise ConfigError("Container got two Namespaces")
                namespaces = part
            elif isinstance(part, (PivotRoot, OverlayRootfs)):
                if rootfs not in (None, "host"):
                    raise ConfigError("Container got two root filesystems")
                rootfs = part
            elif _is_cgroup(part):
                if cgroup is not None:
                    raise ConfigError("Container got two CGroups")
                cgroup = part
            else:
                raise ConfigError(f"Container parts are Namespaces, CGroup, OverlayRootfs or "
                                  f"PivotRoot, not {type(part).__name__}")
        if cgroup is not None and not _is_cgroup(cgroup):
            raise ConfigError(f"cgroup must be an nsbox.CGroup, not {type(cgroup).__name__}")
        self.namespaces = namespaces if namespaces is not None else Namespaces()
        self.cgroup = cgroup
        self.rootfs = as_pivot_root(self._host_rootfs() if rootfs == "host" else rootfs)
        if self.rootfs is not None and self.namespaces.mount is not True:
            raise ConfigError("a root filesystem needs a new mount namespace "
                              "(Namespaces(mount=True))")
        self.options = ContainerOptions(hostname=hostname, domainname=domainname, env=env,
                                        cwd=cwd, user=user, group=group, groups=groups,
                                        rlimits=rlimits or {}, cap_add=cap_add,
                                        cap_drop=cap_drop, seccomp=seccomp,
                                        no_new_privs=no_new_privs, oom_score_adj=oom_score_adj,
                                        protect_system_paths=protect_system_paths)
        self._security = security.Policy.of(self.options)
        self._state = "new"
        self._stack = ExitStack()
        self._init: Process | None = None
        self._init_slot = _native.Slot()
        self._slots: set[_native.Slot] = set()
        self._control = -1
        self._join_flags = 0
        self._setgroups_denied = False
        self._cgroup_made = False  # entered (and so to be removed) by this container
        self._processes: set[Process] = set()
        self._python_missing: list[str] | None = None

    def _host_rootfs(self) -> OverlayRootfs | None:
        # The default: the host's / under a throwaway copy-on-write layer, so host programs
        # run and nothing they write reaches the host. Where that cannot be, the host's
        # filesystem in the container's private mount namespace: joined or shared mount
        # namespaces, and without root, where the kernel refuses an overlay of / (its lower
        # layer has mounts locked below it).
        ns = self.namespaces
        if ns.mount is not True or ns._live is not None or ns.wants_user_namespace:
            return None
        # / (the lower layer) must be a plain filesystem: inside many containers, and on live
        # systems, it is itself an overlay, which the kernel may refuse to stack another one
        # on. The throwaway upper layer is a tmpfs in the container (the container enters
        # this OverlayRootfs itself), so the temporary directory plays no part.
        if fs_type("/")[1] not in _PLAIN_FILESYSTEMS:
            return None
        return OverlayRootfs.host()

    def __repr__(self) -> str:
        pid = self._init.pid if self._init else None
        return f"<nsbox.Container {self._state} init_pid={pid}>"

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        if self._state != "new":
            raise LifecycleError(f"a Container can be entered once; this one is {self._state}")
        self._state = "starting"
        try:
            with deferred():
                self._start_init()
        except BaseException:
            self._teardown()
            raise
        self._state = "running"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._teardown()

    def _enter_cgroup(self) -> None:
        # A CGroup the caller entered stays theirs; one given unentered is ours to enter and,
        # on teardown, to kill and remove.
        cgroup = self.cgroup
        if cgroup is None:
            return
        try:
            cgroup.placement()
        except LifecycleError:
            self._stack.enter_context(cgroup)
            self._cgroup_made = True

    def _placement(self) -> dict[str, Any]:
        if self.cgroup is None:
            return {}
        placement = self.cgroup.placement()
        fd = placement.clone_into_fd
        return {"cgroup_fd": -1 if fd is None else fd, "cgroup_procs_fds": placement.procs_fds}

    def _start_init(self) -> None:
        control_read, self._control = os.pipe2(os.O_CLOEXEC)
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self._start_first_process(
                uid=-1, argv=[b"nsbox-init"], path=b"nsbox-init",
                exec_fd=_native.init_program_fd(),
                fds=[(devnull, 0), (devnull, 1), (devnull, 2), (control_read, 3)])
        finally:
            os.close(control_read)
            os.close(devnull)
        self._init = self._claim_init()

    def _start_first_process(self, *, uid: int, **fields: Any) -> None:
        # The process that creates the container's namespaces (or joins those of a live
        # Namespaces), sets up its root and becomes its PID 1: nsbox's init, or for a
        # one-shot run the command itself. uid -1: root in the container, as the init.
        self._enter_cgroup()
        ns = self.namespaces
        live = ns._live
        join_fds: list[int] = []
        if live is not None:
            join_pidfd, join_flags, new_ns = live._init_pidfd(), live._join_flags, 0
            uid_map = gid_map = None
            deny_setgroups = False
            self._setgroups_denied = live._setgroups_denied
        else:
            join_pidfd, join_flags, new_ns = -1, 0, ns.new_flags()
            uid_map, gid_map, deny_setgroups = ns.id_maps()
            self._setgroups_denied = deny_setgroups
            for name, join in ns.joins():
                fd = os.open(join.path(name), os.O_RDONLY | os.O_CLOEXEC)
                self._stack.callback(os.close, fd)
                join_fds.append(fd)
        rootfs = None if self.rootfs is None else self.rootfs._for_container(
            self._stack, ns, new_ns, uid_map, gid_map)
        if uid >= 0:
            fields["groups"] = self._groups()
        spec = _native.ProcessSpec(
            new_ns=new_ns, join_pidfd=join_pidfd, join_pidfd_flags=join_flags,
            join_fds=join_fds, uid_map=uid_map, gid_map=gid_map,
            deny_setgroups=deny_setgroups, timens_offsets=ns.timens_offsets(),
            make_mounts_private=bool(new_ns & CLONE_FLAGS["mount"]),
            mount_proc=new_ns & _NEEDS_OWN_PROC == _NEEDS_OWN_PROC and rootfs is None,
            rootfs=rootfs,
            hostname=self._uts_name(new_ns, self.options.hostname),
            domainname=self._uts_name(new_ns, self.options.domainname),
            loopback_up=bool(new_ns & CLONE_FLAGS["net"]),
            new_session=True, uid=uid,
            **fields,
            **self._placement(),
            # A PivotRoot's plan masks its own /proc and /sys; without one, the security
            # step protects those of the host seen in the container's mount namespace.
            **self._security.process_fields(
                uid, new_mount_namespace=bool(new_ns & CLONE_FLAGS["mount"])
                and rootfs is None),
        )
        spawned = _native.spawn(spec, self._init_slot)
        # New namespaces differ from ours by construction; only joined ones need a look.
        joined = join_flags if live is not None else sum(
            CLONE_FLAGS[name] for name, _ in ns.joins())
        self._join_flags = new_ns | self._namespaces_to_join(spawned.pid, joined)

    def _groups(self) -> Sequence[int] | None:
        # Clear inherited supplementary groups, except where the user namespace forbids
        # setgroups (rootless), where the only group is our own anyway.
        opts = self.options
        return None if self._setgroups_denied and not opts.groups else opts.groups

    def _run_as_first_process(self, args: Args, input: bytes | str | None,
                              capture_output: bool, text: bool, timeout: float | None,
                              check: bool) -> CompletedProcess:
        # nsbox.run: the command is the container's first process, PID 1 of its pid
        # namespace as with `docker run` (no --init), and no init beside it: one process to
        # start instead of two. When it exits the kernel kills whatever it left inside.
        if self._state != "new":
            raise LifecycleError(f"a Container can be entered once; this one is {self._state}")
        argv = _argv(args)
        opts = self.options
        environment = opts.environment(None)
        uid = opts.user
        gid = opts.group if opts.group is not None else uid
        if isinstance(input, str):
            input = input.encode()
        stdin = PIPE if input is not None else None
        output = PIPE if capture_output else None
        self._state = "starting"
        try:
            with deferred(), Stdio(stdin, output, output) as stdio:
                self._start_first_process(
                    uid=uid, gid=gid, argv=argv, path=argv[0], envp=_env_block(environment),
                    search_path=environment.get("PATH", DEFAULT_PATH).encode(),
                    cwd=opts.cwd.encode(), rlimits=opts.rlimit_triples(),
                    fds=stdio.child_fds)
                spawned = self._init_slot.claim()
                assert spawned is not None
                process = Process(list(args), spawned.pid, spawned.pidfd,
                                  *stdio.parent_files(), oom_check=self._oom_check(first=True))
                self._init = process
            self._state = "running"
            return collect(process, input, timeout, text, check)
        finally:
            self._teardown()

    def _claim_init(self) -> Process | None:
        # Also called by teardown: an interrupt may have struck between the spawn and its use.
        spawned = self._init_slot.claim()
        if spawned is None:
            return self._init
        return Process(["nsbox-init"], spawned.pid, spawned.pidfd, None, None, None)

    @staticmethod
    def _uts_name(new_ns: int, name: str | None) -> bytes | None:
        return name.encode() if name and new_ns & CLONE_FLAGS["uts"] else None

    @staticmethod
    def _namespaces_to_join(pid: int, candidates: int) -> int:
        # Of the joined namespaces, join those where the init differs from us: setns into
        # one's own user namespace is an error, and the others would be wasted work.
        flags = 0
        for name, flag in CLONE_FLAGS.items():
            if not candidates & flag:
                continue
            ns_file = PROC_NS_FILE[name]
            try:
                theirs = os.stat(f"/proc/{pid}/ns/{ns_file}").st_ino
                ours = os.stat(f"/proc/self/ns/{ns_file}").st_ino
            except FileNotFoundError:
                continue  # a kernel without that namespace type
            if theirs != ours:
                flags |= flag
        return flags

    def _init_pidfd(self) -> int:
        if self._state not in ("running", "starting") or self._init is None:
            raise LifecycleError(f"the container is {self._state}, not running")
        return self._init.pidfd

    def _teardown(self) -> None:
        if self._state == "closed":
            return
        self._state = "stopping"
        with deferred():
            self._run_teardown_steps()

    def _run_teardown_steps(self) -> None:
        steps = (self._adopt_strays, self._thaw_for_teardown, self._kill_processes,
                 self._close_control, self._reap_processes, self._reap_init, self._stack.close)
        first: BaseException | None = None
        for step in steps:
            # Every step runs whatever happened before it: an exception (KeyboardInterrupt
            # included) is kept for the end, and the interrupted step is tried once more.
            for _attempt in range(2):
                try:
                    step()
                    break
                except BaseException as exc:
                    first = first or exc
        self._processes.clear()
        self._state = "closed"
        if first is not None:
            raise first

    def _adopt_strays(self) -> None:
        self._init = self._claim_init()
        for slot in list(self._slots):
            spawned = slot.claim()
            if spawned is not None:
                self._processes.add(Process(["(interrupted spawn)"], spawned.pid,
                                            spawned.pidfd, None, None, None))
            self._slots.discard(slot)

    def _kill_processes(self) -> None:
        for process in list(self._processes):
            process.kill()

    def _close_control(self) -> None:
        if self._control >= 0:
            control, self._control = self._control, -1
            os.close(control)  # the init exits on EOF; its pid namespace dies with it

    def _reap_processes(self) -> None:
        # Our own children in the container first: a dying PID 1 waits in the kernel until
        # every process of its namespace is reaped, and these are ours to reap.
        for process in list(self._processes):
            process.kill()
            process.wait()

    def _reap_init(self) -> None:
        if self._init is None:
            return
        try:
            self._init.wait(_INIT_TIMEOUT)
        except nsbox_errors.TimeoutExpired:
            self._init.kill()
            # Last resort, what a dying PID 1 may be waiting for. Only here: a process another
            # thread has just spawned is a zombie owned by no Process for an instant.
            reap_unowned_zombies()
            try:
                self._init.wait(_INIT_TIMEOUT)
            except nsbox_errors.TimeoutExpired:
                # A dying PID 1 waits until every process of its namespace is reaped; one that
                # is our child and unknown to this container keeps it there. Say so rather
                # than hang.
                raise nsbox_errors.NsboxError(
                    f"the init of the container (pid {self._init.pid}) did not exit: a process "
                    "of its pid namespace is still unreaped (see /proc/self/task/*/children)"
                ) from None

    def _thaw_for_teardown(self) -> None:
        # A frozen process does not act on SIGKILL under the v1 freezer, and a frozen init
        # never sees its control pipe close.
        if self.cgroup is not None:
            with contextlib.suppress(LifecycleError):
                if self.cgroup.frozen:
                    self.cgroup.thaw()

    # -- processes -----------------------------------------------------------------------------

    @property
    def init_pid(self) -> int:
        """The host pid of the container's init (``Join(c.init_pid)`` joins its namespaces)."""
        if self._init is None:
            raise LifecycleError("the container has not been started")
        return self._init.pid

    def spawn(self, args: Args, *, stdin: StdioSpec = None, stdout: StdioSpec = None,
              stderr: StdioSpec = None, env: Mapping[str, str] | None = None,
              cwd: str | None = None, user: int | None = None,
              group: int | None = None, tty: bool | tuple[int, int] = False) -> Process:
        """Start a process in the container and return at once.

        Args:
            args: the program and its arguments; a name without ``/`` is looked up in the
                container's ``PATH``.
            stdin, stdout, stderr: None (inherit), ``PIPE``, ``DEVNULL``, ``STDOUT`` (stderr
                only), an fd, or a file object.
            env: variables added to the container's environment for this process.
            cwd, user, group: override the container's for this process.
            tty: give the process a pseudo-terminal (``True``: the caller's terminal size,
                or ``(rows, columns)``): every stdio left None is its slave end, it becomes
                the controlling terminal of the process's new session, and the master end is
                ``process.pty``.

        Raises:
            ConfigError: invalid arguments (nothing was started).
            FileNotFoundError, PermissionError: the program could not be executed (both
                :class:`SpawnError`).
            SpawnError: another setup step failed; ``.step`` names it.
            LifecycleError: the container is not running.
        """
        return self._spawn(args, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd,
                           user=user, group=group, tty=tty)

    def _spawn(self, args: Args, *, stdin: StdioSpec = None, stdout: StdioSpec = None,
               stderr: StdioSpec = None, env: Mapping[str, str] | None = None,
               cwd: str | None = None, user: int | None = None, group: int | None = None,
               tty: bool | tuple[int, int] = False,
               attach: Sequence[tuple[int, bytes]] = ()) -> Process:
        # attach: detached trees the process gets in a mount namespace of its own.
        argv = _argv(args)
        opts = self.options
        _check_cwd(None, None, cwd)
        _check_id(None, attrs.fields(ContainerOptions).user, user)
        _check_id(None, attrs.fields(ContainerOptions).group, group)
        _check_env(None, None, env)
        environment = opts.environment(env)
        envp = _env_block(environment)
        uid = opts.user if user is None else user
        gid = group if group is not None else (opts.group if opts.group is not None else uid)
        self._init_pidfd()
        if self._state != "running":
            raise LifecycleError(f"the container is {self._state}, not running")

        # Pipes, the process and its record are made as one: Ctrl-C waits for the end.
        ptmx = self._container_ptmx() if tty else None
        with deferred(), Stdio(stdin, stdout, stderr, tty=tty, ptmx=ptmx) as stdio:
            spec = self._process_spec(
                argv=argv, path=argv[0], envp=envp,
                search_path=environment.get("PATH", DEFAULT_PATH).encode(),
                controlling_tty=stdio.controlling_tty,
                cwd=(cwd or opts.cwd).encode(), uid=uid, gid=gid, fds=stdio.child_fds,
                attach=attach, new_ns=CLONE_FLAGS["mount"] if attach else 0,
                make_mounts_private=bool(attach),
            )
            oom_check = self._oom_check()
            slot = _native.Slot()
            self._slots.add(slot)  # teardown reaps a process a signal handler left in it
            spawned = _native.spawn(spec, slot)
            process = Process(list(args), spawned.pid, spawned.pidfd,
                              *stdio.parent_files(), oom_check=oom_check, pty=stdio.pty)
            self._adopt(process)
            slot.claim()
            self._slots.discard(slot)
        return process

    def _process_spec(self, *, uid: int, gid: int, **fields: Any) -> _native.ProcessSpec:
        # What every process of the container shares: its namespaces, limits, session, groups,
        # cgroup and security settings.
        opts = self.options
        return _native.ProcessSpec(
            join_pidfd=self._init_pidfd(), join_pidfd_flags=self._join_flags,
            rlimits=opts.rlimit_triples(), new_session=True, uid=uid, gid=gid,
            groups=self._groups(),
            **fields,
            **self._placement(),
            **self._security.process_fields(uid),
        )

    def _python_lacking(self) -> list[str]:
        # What a fresh interpreter of ours needs and the container's root lacks (found once).
        if self._python_missing is None:
            from . import _python_view

            missing = [] if self.rootfs is None or self._init is None else \
                _python_view.missing_in(f"/proc/{self._init.pid}/root")
            if missing and os.geteuid() != 0:
                raise nsbox_errors.UnsupportedError(
                    f"the container's root filesystem lacks this Python ({missing[0]} and "
                    f"{len(missing) - 1} more paths), and lending the host's needs root: use "
                    "call_with(..., fork=True), or a rootfs with the same Python")
            self._python_missing = missing
        return self._python_missing

    @contextlib.contextmanager
    def _lent_python(self) -> Iterator[list[tuple[int, bytes]]]:
        # Read-only detached copies of those host paths, for one process: a copy is attached
        # once, so every process gets its own.
        with ExitStack() as fds:
            mounts = []
            for path in self._python_lacking():
                fd = _native.clone_readonly(path)
                fds.callback(os.close, fd)
                mounts.append((fd, os.fsencode(path)))
            yield mounts

    def _adopt(self, process: Process) -> None:
        # Teardown kills and reaps it with the others.
        process._on_reaped = self._processes.discard
        self._processes.add(process)

    def _container_ptmx(self) -> str | None:
        # With a root filesystem the container has its own devpts: its terminals come from
        # there (reached through the init's root), so a process inside sees its tty in its
        # own /dev/pts. Without one it shares the host's /dev/pts.
        if self.rootfs is None or self._init is None:
            return None
        return f"/proc/{self._init.pid}/root/dev/pts/ptmx"

    def _oom_check(self, *, first: bool = False) -> Callable[[], bool] | None:
        # The first process of a cgroup the container made itself: no OOM kill can have
        # been counted there before it, so there is nothing to read.
        if self.cgroup is None:
            return None
        if first and self._cgroup_made:
            return self.cgroup._oom_check_since(0)
        return self.cgroup.oom_check()

    # -- the cgroup ----------------------------------------------------------------------------

    def _cgroup(self, what: str) -> CGroup:
        if self.cgroup is None:
            raise LifecycleError(f"{what} needs a cgroup: Container(cgroup=nsbox.CGroup(...))")
        return self.cgroup

    def freeze(self, timeout: float = 10.0) -> None:
        """Freeze every process of the container; returns once all are frozen."""
        self._cgroup("freeze").freeze(timeout)

    def thaw(self) -> None:
        """Resume a frozen container."""
        self._cgroup("thaw").thaw()

    @property
    def frozen(self) -> bool:
        """Whether the container is frozen."""
        return self._cgroup("frozen").frozen

    def stats(self) -> CGroupStats:
        """The container's resource usage (memory, CPU, pids, OOM events), from its cgroup."""
        return self._cgroup("stats").stats()

    def shell(self, args: Args = ("/bin/sh",), **options: Any) -> int:
        """Run an interactive program attached to your terminal; return its returncode.

        The program gets a pseudo-terminal of your terminal's size, which follows yours
        (SIGWINCH); your terminal is in raw mode until it exits, and restored afterwards.
        ``options`` are those of :meth:`spawn`.
        """
        from ._terminal import attach

        with self.spawn(args, tty=True, **options) as process:
            return attach(process)

    exec = spawn
    """``exec`` is :meth:`spawn`: every process joins the running container the same way."""

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the container and return its result.

        A fresh interpreter (this one's ``sys.executable``, with this ``sys.path``) runs the
        call inside: in the container's namespaces and cgroup, as its user. An exception
        raised inside is raised here, with the remote traceback as its ``__cause__``.
        Without cloudpickle (``pip install nsbox[call]``) ``fn`` must be importable by name.

        Raises:
            CallError: the interpreter died without replying (``.oom_killed`` says whether
                the cgroup's OOM killer ended it), or the result could not be pickled.
            TypeError: ``fn`` or its arguments cannot be pickled.
        """
        return self.call_with(fn, args, kwargs)

    def call_with(self, fn: Callable[..., T], args: Sequence[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, *,
                  timeout: float | None = None, fork: bool = False) -> T:
        """:meth:`call` with its options.

        Args:
            timeout: seconds; then the call (and every process it started) is killed and
                :class:`TimeoutExpired` raised.
            fork: instead of a fresh interpreter, fork this process into the container (as
                its user, with its capabilities and seccomp filter, holding no host fd but
                stdio): several times faster, ``fn`` and its arguments need not be picklable,
                only the result. This process must be single-threaded.

        Raises:
            UnsupportedError: ``fork=True`` while this process has more than one thread.
            and what :meth:`call` raises; with ``fork=True``, a :class:`SpawnError` when
            entering the container failed.
        """
        from ._call import call

        result: T = call(self, fn, tuple(args), dict(kwargs or {}), timeout, fork)
        return result

    async def run_async(self, args: Args, *, input: bytes | str | None = None,
                        capture_output: bool = True, text: bool = False,
                        timeout: float | None = None, check: bool = False,
                        **options: Any) -> CompletedProcess:
        """:meth:`run` for asyncio: the event loop waits on the pidfd and the pipes.

        Cancelling the task kills the process (and its process group) and reaps it.
        ``options`` are those of :meth:`spawn`.
        """
        if isinstance(input, str):
            input = input.encode()
        if input is not None:
            options["stdin"] = PIPE
        if capture_output:
            options["stdout"] = options["stderr"] = PIPE
        process = self.spawn(args, **options)
        return await collect_async(process, input, timeout, text, check)

    def run(self, args: Args, *, input: bytes | str | None = None, capture_output: bool = True,
            text: bool = False, timeout: float | None = None, check: bool = False,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            user: int | None = None, group: int | None = None,
            stdin: StdioSpec = None, stdout: StdioSpec = None,
            stderr: StdioSpec = None) -> CompletedProcess:
        """Run a command in the container and wait for it, like ``subprocess.run``.

        Output is captured by default. ``returncode`` is negative for a signal.

        Raises:
            TimeoutExpired: after ``timeout`` seconds; the process has been killed and reaped.
            CalledProcessError: with ``check=True`` and a non-zero returncode.
            and what :meth:`spawn` raises.
        """
        if isinstance(input, str):
            input = input.encode()
        if input is not None:
            stdin = PIPE
        if capture_output:
            stdout = PIPE if stdout is None else stdout
            stderr = PIPE if stderr is None else stderr
        process = self.spawn(args, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd,
                             user=user, group=group)
        return collect(process, input, timeout, text, check)


def run(args: Args, *, input: bytes | str | None = None, capture_output: bool = True,
        text: bool = False, timeout: float | None = None, check: bool = False,
        **container_options: Any) -> CompletedProcess:
    """Run one command in a fresh container and tear it down.

    ``container_options`` are those of :class:`Container`. The command is the container's
    first process: PID 1 of its pid namespace, as with ``docker run`` (without ``--init``),
    and no nsbox-init runs beside it. When it exits, the kernel kills whatever it left
    behind. A container that joins a live :class:`Namespaces`, or has no pid namespace of
    its own, runs it as ``Container(**options).run(args)`` does, beside its init.

    .. versionadded:: 0.1
    """
    container = Container(**container_options)
    ns = container.namespaces
    if ns._live is None and ns.new_flags() & CLONE_FLAGS["pid"]:
        return container._run_as_first_process(args, input, capture_output, text, timeout,
                                               check)
    with container:
        return container.run(args, input=input, capture_output=capture_output, text=text,
                             timeout=timeout, check=check)
