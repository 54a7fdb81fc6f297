# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Exit codes of ``qp2p-trio`` and the mapping of failures to them.

Every failure is reported as one line on stderr with a distinct exit code
per class (`ExitCode`, listed in ``--help`` and in docs/cli.rst).
"""

from __future__ import annotations

import enum
from typing import Final

import trio

from qp2p_trio import (
    AdmissionRefused,
    ConnectError,
    ConnectionClosed,
    EndpointError,
    MessageError,
    MessageTooLarge,
    PeerIdentityError,
    ProtocolError,
)

__all__ = ["EXIT_CODE_HELP", "CliError", "ExitCode", "describe_error"]


class ExitCode(enum.IntEnum):
    """The exit status of ``qp2p-trio``: one code per class of failure."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    BAD_PEER = 3
    FILE = 4
    PEER_IDENTITY = 5
    UNREACHABLE = 6
    TOO_LARGE = 7
    PEER_FAILED = 8
    MISMATCH = 9
    ENDPOINT = 10
    REFUSED = 11
    INTERRUPTED = 130


EXIT_CODE_HELP: Final = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "unexpected internal error (please report it)",
    ExitCode.USAGE: "bad command line",
    ExitCode.BAD_PEER: "malformed or unresolvable peer address",
    ExitCode.FILE: "a file is missing, unreadable or unwritable, or not an identity file",
    ExitCode.PEER_IDENTITY: "the peer proved another node id than the peer address names",
    ExitCode.UNREACHABLE: "peer unreachable: no handshake within --timeout, or the handshake failed",
    ExitCode.TOO_LARGE: "the message is larger than the peer accepts",
    ExitCode.PEER_FAILED: (
        "the peer failed mid-exchange: it closed the connection, refused or reset the "
        "message, or sent no reply within --timeout"
    ),
    ExitCode.MISMATCH: "the data arrived changed (checksum or echo mismatch)",
    ExitCode.ENDPOINT: (
        "cannot open the local endpoint: address in use or not available, or a "
        "configuration it cannot use (an unwritable --keylog file or --qlog directory)"
    ),
    ExitCode.REFUSED: (
        "refused by a trust policy: the peer does not admit this node (not a member of its "
        "CA network, denied), or this node does not admit the peer (--ca)"
    ),
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); listen stops cleanly with 0 instead",
}


class CliError(Exception):
    """A failure the command reports as one line on stderr, exiting with ``code``."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def describe_error(exc: BaseException) -> tuple[ExitCode, str]:
    """Map an exception (or a group of them) to an exit code and a one-line message."""
    leaves = [e for e in _leaves(exc) if not isinstance(e, trio.Cancelled)] or [exc]
    # Prefer what the command diagnosed itself, then interrupts, then library errors.
    leaves.sort(
        key=lambda e: 0 if isinstance(e, CliError) else 1 if isinstance(e, KeyboardInterrupt) else 2
    )
    first = leaves[0]
    code, message = _describe_one(first)
    return code, " ".join(message.split())


def _describe_one(exc: BaseException) -> tuple[ExitCode, str]:
    if isinstance(exc, CliError):
        return exc.code, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED, "interrupted"
    if isinstance(exc, AdmissionRefused):
        return ExitCode.REFUSED, f"refused by a trust policy: {exc}"
    if isinstance(exc, PeerIdentityError):
        return ExitCode.PEER_IDENTITY, f"wrong peer identity: {exc}"
    if isinstance(exc, ConnectError):
        return ExitCode.UNREACHABLE, f"cannot connect: {exc}"
    if isinstance(exc, MessageTooLarge):
        return ExitCode.TOO_LARGE, f"message too large: {exc}"
    if isinstance(exc, ConnectionClosed):
        who = "the peer" if exc.by_peer else "we"
        if exc.idle_timeout:
            return ExitCode.PEER_FAILED, "the connection timed out: the peer went silent"
        return ExitCode.PEER_FAILED, f"the connection closed ({who} closed it): {exc}"
    if isinstance(exc, (MessageError, ProtocolError)):
        return ExitCode.PEER_FAILED, f"the peer failed the exchange: {exc}"
    if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
        return ExitCode.PEER_FAILED, f"the connection broke: {exc}"
    if isinstance(exc, EndpointError):
        return ExitCode.ENDPOINT, str(exc)
    return ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
