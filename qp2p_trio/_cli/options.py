# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Pieces of the argument parser that subcommands share.

`Commands` adds one subcommand's parser; the value types (`size`,
`seconds`, ...) turn bad values into one-line usage errors; the option
groups (`client_options`, ...) are the options several subcommands take.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol, final

from .errors import ExitCode
from .output import MiB, format_size, parse_size
from .trust import trust_options

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Commands",
    "Parser",
    "Subcommand",
    "client_options",
    "count",
    "debug_options",
    "interval",
    "json_option",
    "positive",
    "relay_options",
    "progress_option",
    "seconds",
    "size",
]

#: Message size limit of the command's endpoints unless --max-message-size says otherwise.
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * MiB


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Subcommand(Protocol):
    """A subcommand module: it adds its parser, which names its handler."""

    def add_parser(self, commands: Commands) -> None:
        """Add the subcommand's parser to ``commands`` (`Commands.add`)."""


@final
class Commands:
    """Where subcommands add their parsers (the ``COMMAND`` of ``qp2p-trio COMMAND``)."""

    def __init__(self, parser: argparse.ArgumentParser, epilog: str) -> None:
        self._sub = parser.add_subparsers(title="commands", metavar="COMMAND")
        self._epilog = epilog

    def add(
        self,
        name: str,
        help_text: str,
        description: str,
        handler: Callable[[argparse.Namespace], Any],
    ) -> argparse.ArgumentParser:
        """Add the parser of subcommand ``name``; parsing it sets ``command`` and ``handler``.

        ``handler`` takes the parsed arguments and returns the exit code; an
        async one runs under one `trio.run`.
        """
        parser = self._sub.add_parser(
            name,
            help=help_text,
            description=description,
            epilog=self._epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(command=name, handler=handler)
        return parser


# ------------------------------------------------------------ value types


def size(text: str) -> int:
    """A byte count above 0 (`parse_size`)."""
    try:
        value = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 bytes: {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    return value


def ipv4(text: str) -> str:
    """A numeric IPv4 address (a gateway's)."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an IPv4 address: {text!r}") from None


def seconds(text: str) -> float:
    """A finite number of seconds above 0."""
    value = _float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0: {text!r}")
    return value


def interval(text: str) -> float:
    """A finite number of seconds, 0 or more."""
    value = _float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more: {text!r}")
    return value


def count(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def positive(text: str) -> int:
    """A whole number, 1 or more."""
    value = count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


# ---------------------------------------------------------- option groups


def json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: print the result as one JSON object."""
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def progress_option(parser: argparse.ArgumentParser) -> None:
    """``--progress``/``--no-progress``: a progress bar on stderr."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )


def debug_options(parser: argparse.ArgumentParser) -> None:
    """``-v``/``-vv``, ``--keylog FILE``, ``--qlog DIR``: seeing inside the endpoint."""
    group = parser.add_argument_group("debugging")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log the library's events on stderr: -v connections (INFO), -vv everything "
        "(DEBUG, and aioquic's INFO)",
    )
    group.add_argument(
        "--keylog",
        metavar="FILE",
        help="append the TLS secrets to FILE (NSS key log format, for Wireshark); "
        "default: $SSLKEYLOGFILE if set",
    )
    group.add_argument(
        "--qlog", metavar="DIR", help="write one qlog file per connection into DIR (for qvis)"
    )


def relay_options(parser: argparse.ArgumentParser, *, serve: bool = False) -> None:
    """``--home-relay PEER``, ``--peer-cache FILE`` (and, for ``listen``, ``--relay``,
    ``--serve-reachability``): relays, known peers, reachability (see docs/relays)."""
    group = parser.add_argument_group("relays")
    group.add_argument(
        "--home-relay",
        metavar="PEER",
        help="register with the relay at PEER (<node-id>@host:port), so peers reach this node "
        "through it; a relayed peer address looks like <node-id>/via/<relay>",
    )
    group.add_argument(
        "--peer-cache",
        metavar="FILE",
        help="remember the peers met in FILE (JSON, rewritten atomically) and find a peer "
        "given by node id alone there",
    )
    if serve:
        group.add_argument(
            "--relay",
            action="store_true",
            help="also serve as a relay for the peers this node admits",
        )
        group.add_argument(
            "--serve-reachability",
            action="store_true",
            help="answer peers' reachability checks (dial them back, see netcheck)",
        )


def client_options(parser: argparse.ArgumentParser) -> None:
    """The options of the subcommands that connect to a peer (`client.open_client`)."""
    parser.add_argument(
        "--identity",
        metavar="FILE",
        help="identity file to connect with (default: a fresh identity for this run)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting (and waiting for a reply) after this long (default: 10)",
    )
    parser.add_argument(
        "--max-message-size",
        type=size,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="SIZE",
        help=f"largest reply accepted (default: {format_size(DEFAULT_MAX_MESSAGE_SIZE)})",
    )
    json_option(parser)
    trust_options(parser)
    relay_options(parser)
    debug_options(parser)
