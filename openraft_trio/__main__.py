"""Command line: ``python -m openraft_trio <command> [options]``.

Commands:
    demo    start a 3-node cluster as three processes on loopback and narrate writes, a
            leader kill, the election, the restart and catch-up (:mod:`openraft_trio._demo`).
    serve   run one node of the replicated KV service (:mod:`openraft_trio._cli`).
    init, put, get, delete, cas, watch, add-learner, change-membership, remove-learner,
    transfer-leader, status, snapshot save|restore:
            client and admin commands against a running cluster.

Each command is one subparser with a ``handler(args) -> exit status``; add new ones in
:func:`build_parser`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ._cli import EXIT_INTERRUPTED, Commands, add_commands, int_arg, stdout_gone
from ._version import __version__


def _positive_int(text: str) -> int:
    return int_arg(text, 1, "the value")


def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import DemoOptions, run_demo

    run_demo(DemoOptions(writes=args.writes, clients=args.clients))
    return 0


def _add_demo(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="a 3-node cluster as 3 processes: writes, leader kill, election, catch-up",
        description=(
            "Start 3 node processes on loopback with durable storage in a temporary "
            "directory, write keys, kill the leader with SIGKILL, time the new election, "
            "restart the killed node and time its catch-up, check every acknowledged write "
            "on every node, print the status table, and stop everything. Exits 1 if any "
            "check fails."
        ),
    )
    demo.add_argument(
        "--writes", type=_positive_int, default=1000, help="keys written before the kill (1000)"
    )
    demo.add_argument(
        "--clients", type=_positive_int, default=32, help="concurrent writer tasks (32)"
    )
    demo.set_defaults(handler=_run_demo)


MODULE_PROG = "python -m openraft_trio"
SCRIPT_PROG = "openraft-trio"  # the console script (pyproject's [project.scripts])


def invoked_as(argv0: str) -> str:
    """The name usage and error lines show: the console script's when that is how the
    command was started, else ``python -m openraft_trio``."""
    return SCRIPT_PROG if os.path.basename(argv0) == SCRIPT_PROG else MODULE_PROG


def build_parser(prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    """The command line: one subcommand per command (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="openraft_trio: a Raft consensus engine on Trio.",
    )
    parser.add_argument("--version", action="version", version=f"openraft_trio {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_demo(commands)
    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status. A closed stdout (``--help | head -0``)
    exits 141 and Ctrl-C exits 130 with one ``error:`` line, never a traceback, wherever
    they happen (the commands handle both themselves; this catches the rest, e.g. while
    argparse prints the help)."""
    try:
        parser = build_parser(invoked_as(sys.argv[0]))
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            sys.stdout.flush()
            return 0
        status: int = handler(args)
        return status
    except BrokenPipeError:
        return stdout_gone()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
