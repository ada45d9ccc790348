"""The command line: ``nsbox check`` and ``nsbox run``; a thin layer over the public API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import NsboxError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nsbox", description="Linux containers from scratch.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="report what this kernel and these privileges allow")
    gc = commands.add_parser("gc", help="release what containers of dead processes left behind")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be released")
    run = commands.add_parser("run", help="run a command in a fresh container")
    run.add_argument("--hostname", default="nsbox")
    run.add_argument("--share", action="append", default=[], metavar="NAMESPACE",
                     help="keep the host's namespace of this kind (net, ipc, ...); repeatable")
    run.add_argument("--env", "-e", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--cwd", default="/")
    run.add_argument("-t", "--tty", action="store_true",
                     help="give the command a pseudo-terminal attached to yours")
    run.add_argument("-i", "--interactive", action="store_true",
                     help="keep stdin open (always the case; accepted for docker-style -it)")
    run.add_argument("command", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nsbox`` and ``python -m nsbox``."""
    args = _parser().parse_args(argv)
    if args.command == "check":
        from .check import main as check_main

        return check_main()
    if args.command == "gc":
        from .state import gc

        for item in gc(dry_run=args.dry_run):
            print(f"{'would release' if args.dry_run else 'released'} {item.kind} {item.path} "
                  f"(owner {item.owner})")
        return 0
    from .container import Container
    from .namespaces import NAMES, Namespaces

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("nsbox run: give a command, e.g. nsbox run -- sh", file=sys.stderr)
        return 2
    try:
        env = dict(item.split("=", 1) for item in args.env)
        namespaces = Namespaces.of(*[n for n in NAMES if n not in args.share and n != "user"])
        with Container(namespaces, hostname=args.hostname, env=env, cwd=args.cwd) as container:
            return_code = (container.shell(command) if args.tty
                           else container.spawn(command).wait())
    except (NsboxError, OSError, ValueError) as exc:
        print(f"nsbox: {exc}", file=sys.stderr)
        return 125
    return return_code if return_code >= 0 else 128 - return_code


if __name__ == "__main__":
    sys.exit(main())
