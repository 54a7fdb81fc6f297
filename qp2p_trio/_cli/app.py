# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`main`: parse the command line, run one subcommand, report failures.

Failures are reported as one line on stderr with a distinct exit code per
class (`ExitCode`, listed in ``--help``), never as a traceback, unless
``QP2P_TRIO_DEBUG=1`` is set in the environment.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Final

import trio

from qp2p_trio import __version__

from . import bench, demo, ident, listen, netcheck, ping, request, send
from .errors import EXIT_CODE_HELP, ExitCode, describe_error
from .options import Commands, Parser, Subcommand
from .output import print_json

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["PROG", "SUBCOMMANDS", "build_parser", "main"]

PROG: Final = "qp2p-trio"

#: The subcommand modules, in ``--help`` order.  Each has ``add_parser``
#: (adding its parser, which names its handler) and ``run`` (the handler).
SUBCOMMANDS: Final[tuple[Subcommand, ...]] = (
    demo,
    ident,
    listen,
    send,
    request,
    ping,
    bench,
    netcheck,
)

_EPILOG: Final = (
    "PEER is a peer address, <node-id>@<host>:<port> (IPv6 hosts in brackets:\n"
    "<node-id>@[::1]:4433), as `listen` prints it.\n"
    "\n"
    "examples:\n"
    "  qp2p-trio                                  run the demo (same as: qp2p-trio demo)\n"
    "  qp2p-trio id --new node.key                create an identity (a private key, mode 0600)\n"
    "  qp2p-trio listen 0.0.0.0:4433 --identity node.key\n"
    "  qp2p-trio ping PEER -c 5\n"
    "  qp2p-trio request PEER 'hello'\n"
    "  qp2p-trio send PEER --file backup.tar\n"
    "  qp2p-trio bench                            throughput and latency, in-process\n"
    "\n"
    "exit codes:\n" + "\n".join(f"  {int(code):<4} {text}" for code, text in EXIT_CODE_HELP.items())
)


#: Each subcommand's ``--help`` ends with this, not the whole epilog.
_SUBCOMMAND_EPILOG: Final = (
    "PEER is a peer address, <node-id>@<host>:<port> (IPv6 hosts in brackets), as `listen`\n"
    "prints it.  `qp2p-trio --help` lists the exit codes."
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``qp2p-trio``."""
    parser = Parser(
        prog=PROG,
        description=(
            "Trio-native peer-to-peer networking over QUIC: run the demo, make an identity, "
            "run a node, and reach, test and measure other nodes."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    demo.set_as_default(parser)
    commands = Commands(parser, _SUBCOMMAND_EPILOG)
    for module in SUBCOMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``qp2p-trio`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(getattr(args, "verbose", 0))
    try:
        if inspect.iscoroutinefunction(args.handler):
            result = trio.run(args.handler, args)
        else:
            result = args.handler(args)
        return int(result)
    except (Exception, KeyboardInterrupt) as exc:
        return _report(exc, json=bool(getattr(args, "json", False)))


def _configure_logging(verbose: int) -> None:
    """``-v``: the library's INFO records on stderr; ``-vv``: its DEBUG ones and aioquic's INFO."""
    if not verbose:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    for name, level in (
        ("qp2p_trio", logging.INFO if verbose == 1 else logging.DEBUG),
        ("quic", logging.WARNING if verbose == 1 else logging.INFO),
    ):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)
        logger.propagate = False


def _report(exc: BaseException, *, json: bool = False) -> int:
    code, message = describe_error(exc)
    if json and not isinstance(exc, BrokenPipeError):
        # --json: the failure as a JSON object on stdout too, for scripts.
        try:
            print_json({"error": message, "exit_code": int(code), "kind": code.name.lower()})
        except (OSError, ValueError):
            pass
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    if isinstance(exc, BrokenPipeError) or (
        code == ExitCode.INTERNAL and "BrokenPipeError" in message
    ):
        # stdout was closed early (for example piped into `head`): not an error.
        _silence_stdout()
        return int(ExitCode.OK)
    if code == ExitCode.INTERRUPTED:
        print(f"{PROG}: interrupted", file=sys.stderr)
    else:
        print(f"{PROG}: error: {message}", file=sys.stderr)
    if code == ExitCode.INTERNAL:
        if os.environ.get("QP2P_TRIO_DEBUG"):
            traceback.print_exception(exc)
        else:
            print(f"{PROG}: set QP2P_TRIO_DEBUG=1 to see the traceback", file=sys.stderr)
    return int(code)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
