# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The ``qp2p-trio`` command (console script, and ``python -m qp2p_trio``).

`main` parses the command line, runs one subcommand and returns its exit
status.  Failures are reported as one line on stderr with a distinct exit
code per class (`ExitCode`, listed in ``--help``), never as a traceback,
unless ``QP2P_TRIO_DEBUG=1`` is set in the environment.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from ._cli_commands import (
    DEFAULT_MAX_MESSAGE_SIZE,
    run_bench,
    run_id,
    run_listen,
    run_ping,
    run_request,
    run_send,
)
from ._cli_demo import DEMO_TRANSFER_SIZE, run_demo
from ._cli_util import EXIT_CODE_HELP, ExitCode, MiB, describe_error, format_size, parse_size
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ["build_parser", "main"]

PROG = "qp2p-trio"

_EPILOG = (
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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _size(text: str) -> int:
    try:
        value = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 bytes: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0: {text!r}")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``qp2p-trio``."""
    parser = _Parser(
        prog=PROG,
        description=(
            "Trio-native peer-to-peer networking over QUIC: run the demo, make an identity, "
            "run a node, and reach, test and measure other nodes."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(command=None, transfer_size=DEMO_TRANSFER_SIZE, progress=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=description,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(command=name)
        return p

    def json_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def progress_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="show a progress bar on stderr (default: when stderr is a terminal)",
        )

    def client_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--identity",
            metavar="FILE",
            help="identity file to connect with (default: a fresh identity for this run)",
        )
        p.add_argument(
            "--timeout",
            type=_seconds,
            default=10.0,
            metavar="SECONDS",
            help="give up connecting (and waiting for a reply) after this long (default: 10)",
        )
        p.add_argument(
            "--max-message-size",
            type=_size,
            default=DEFAULT_MAX_MESSAGE_SIZE,
            metavar="SIZE",
            help=f"largest reply accepted (default: {format_size(DEFAULT_MAX_MESSAGE_SIZE)})",
        )
        json_option(p)

    demo = command(
        "demo",
        "run the demo (the default command)",
        "Start four nodes on 127.0.0.1 and narrate: identities, verified connections, "
        "messages, request/response, a refused wrong identity, a large transfer, statistics. "
        "Exits 0 when every step worked.",
    )
    demo.add_argument(
        "--transfer-size",
        type=_size,
        default=DEMO_TRANSFER_SIZE,
        metavar="SIZE",
        help=f"size of the large message (default: {format_size(DEMO_TRANSFER_SIZE)})",
    )
    demo.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="redraw the progress bar in place (default: when stdout is a terminal)",
    )

    ident = command(
        "id",
        "create an identity file, or show the node id of one",
        "Show the node id of the identity in FILE, or create FILE with --new. An identity is "
        "an Ed25519 private key (PKCS#8 PEM, file mode 0600); a node that keeps its file keeps "
        "its node id across runs.",
    )
    ident.add_argument("file", metavar="FILE", help="the identity file")
    ident.add_argument("--new", action="store_true", help="create FILE with a fresh identity")
    ident.add_argument("--force", action="store_true", help="with --new: replace an existing FILE")
    json_option(ident)

    listen = command(
        "listen",
        "run a node: print its peer address, the peers and messages arriving",
        "Run a node on ADDRESS and print its peer address, peers connecting and leaving, "
        "and messages and requests arriving. Requests are answered (echo by default), files "
        "sent with `send --file` are acknowledged with their SHA-256. Ctrl-C (SIGINT) or "
        "SIGTERM stops it, closing every connection gracefully.",
    )
    listen.add_argument(
        "address",
        nargs="?",
        default="127.0.0.1:0",
        metavar="ADDRESS",
        help="numeric HOST:PORT to bind, [::]:PORT for IPv6 (default: 127.0.0.1:0, any free port)",
    )
    listen.add_argument(
        "--identity",
        metavar="FILE",
        help="identity file (see `id`); default: a fresh identity for this run",
    )
    listen.add_argument(
        "--reply",
        choices=("echo", "upper", "reject"),
        default="echo",
        help="how to answer requests (default: echo)",
    )
    listen.add_argument(
        "--save-dir", metavar="DIR", help="save files sent with `send --file` in DIR"
    )
    listen.add_argument(
        "--max-message-size",
        type=_size,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="SIZE",
        help=f"largest message accepted (default: {format_size(DEFAULT_MAX_MESSAGE_SIZE)})",
    )
    listen.add_argument("--json", action="store_true", help="print one JSON object per event")

    send = command(
        "send",
        "send a message or a file to a peer",
        "Send TEXT (- reads stdin) as one message, or a file with --file: the file travels as "
        "one request, the listener answers with the SHA-256 of what arrived, and it is checked.",
    )
    send.add_argument("peer", metavar="PEER", help="peer address")
    send.add_argument("text", nargs="?", metavar="TEXT", help="the message (- reads stdin)")
    send.add_argument("--file", metavar="PATH", help="send this file (- reads stdin)")
    progress_option(send)
    client_options(send)

    request = command(
        "request",
        "send a request and print the reply",
        "Send TEXT (- reads stdin) as a request and print the reply.",
    )
    request.add_argument("peer", metavar="PEER", help="peer address")
    request.add_argument("text", metavar="TEXT", help="the request (- reads stdin)")
    client_options(request)

    ping = command(
        "ping",
        "handshake time, then round-trip times of small requests",
        "Connect (printing the handshake time), then send a small request every INTERVAL and "
        "print each round-trip time, then a summary. Exits 8 if no reply came at all.",
    )
    ping.add_argument("peer", metavar="PEER", help="peer address")
    ping.add_argument(
        "-c",
        "--count",
        type=_count,
        default=4,
        metavar="COUNT",
        help="rounds (default: 4; 0: until Ctrl-C)",
    )
    ping.add_argument(
        "-i",
        "--interval",
        type=_interval,
        default=1.0,
        metavar="SECONDS",
        help="time between rounds (default: 1)",
    )
    ping.add_argument(
        "-W",
        "--wait",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="time to wait for each reply before counting it lost (default: 2)",
    )
    ping.add_argument(
        "-s",
        "--size",
        type=_size,
        default=32,
        metavar="SIZE",
        help="probe size in bytes (default and minimum: 32)",
    )
    client_options(ping)

    bench = command(
        "bench",
        "measure latency and throughput, against PEER or in-process",
        "Measure request latency (sequential small requests) and throughput (bulk messages, "
        "several in flight) against a listener at PEER, or between two endpoints in this "
        "process when no PEER is given.",
    )
    bench.add_argument("peer", nargs="?", metavar="PEER", help="peer address (default: local)")
    bench.add_argument(
        "--rounds",
        type=_count,
        default=100,
        metavar="N",
        help="latency requests (default: 100)",
    )
    bench.add_argument(
        "--size",
        type=_size,
        default=16 * MiB,
        metavar="SIZE",
        help="bytes to send for throughput (default: 16MiB)",
    )
    bench.add_argument(
        "--message-size",
        type=_size,
        default=1 * MiB,
        metavar="SIZE",
        help="size of each bulk message (default: 1MiB)",
    )
    bench.add_argument(
        "--parallel",
        type=_positive,
        default=4,
        metavar="N",
        help="bulk messages in flight at once (default: 4)",
    )
    progress_option(bench)
    client_options(bench)
    return parser


def _run_demo(args: argparse.Namespace) -> Awaitable[None]:
    return run_demo(transfer_size=args.transfer_size, progress=args.progress)


_ASYNC_COMMANDS: dict[str, Callable[[argparse.Namespace], Awaitable[Any]]] = {
    "demo": _run_demo,
    "listen": run_listen,
    "send": run_send,
    "request": run_request,
    "ping": run_ping,
    "bench": run_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``qp2p-trio`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    args = build_parser().parse_args(argv)
    command: str = args.command or "demo"
    try:
        if command == "id":
            return int(run_id(args))
        result = trio.run(_ASYNC_COMMANDS[command], args)
        return int(result) if isinstance(result, int) else int(ExitCode.OK)
    except (Exception, KeyboardInterrupt) as exc:
        return _report(exc)


def _report(exc: BaseException) -> int:
    code, message = describe_error(exc)
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
