# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Classifying failures, sans-IO: what a close or a reset means to a caller.

The one place that maps codes to errors:

- `connection_closed`: the `ConnectionClosed` a connection's close becomes;
- `handshake_error`: what `Endpoint.connect` raises for a connection that
  closed before it was established, and `refused_by_tls` whether TLS
  refused it;
- `stream_error`: what a stream's reset or STOP_SENDING code, or a refusal
  in a RECEIPT, becomes for the caller waiting on that stream;
- `disconnect_reason`: the `DisconnectReason` a `Disconnected` event carries;
- `transient`: whether a failure may go away by itself, so `Config.retry`
  retries it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

from ._errors import (
    AdmissionRefused,
    ConnectError,
    ConnectionClosed,
    ConnectRefused,
    HandshakeError,
    MessageRefused,
    MessageTooLarge,
    PeerIdentityError,
    PeerUnreachable,
    StreamReset,
)
from ._wire import CloseCode, StreamErrorCode

if TYPE_CHECKING:
    from ._quic import Terminated

__all__ = [
    "DisconnectReason",
    "connection_closed",
    "disconnect_reason",
    "handshake_error",
    "refused_by_tls",
    "stream_error",
    "transient",
]


class DisconnectReason(enum.Enum):
    """Why the last connection to a peer ended."""

    #: The peer closed it gracefully (application close code 0).
    CLOSED_BY_PEER = "closed by peer"
    #: We closed it (`Connection.aclose`, or the endpoint closing).
    CLOSED_LOCALLY = "closed locally"
    #: Nothing was heard from the peer for `Config.idle_timeout`.
    IDLE_TIMEOUT = "idle timeout"
    #: A trust policy refused the peer (`CloseCode.ADMISSION_REFUSED`):
    #: the peer's (it denied us later) or ours (`Trust` lists changed).
    REFUSED = "refused"
    #: Anything else: the peer closed with an error code, we closed it for
    #: its protocol violation or after an internal error
    #: (`CloseCode.INTERNAL_ERROR`), or QUIC failed; `Disconnected.error`
    #: has the code and reason.
    ERROR = "error"


# QUIC's CONNECTION_REFUSED and INVALID_TOKEN (a stale Retry token: a fresh
# attempt gets a new one) transport errors, and our own limit close codes.
_REFUSED_CLOSE_CODES: Final = frozenset(
    {0x2, 0xB, CloseCode.LIMIT_EXCEEDED, CloseCode.HANDSHAKE_TIMEOUT}
)


def connection_closed(term: Terminated) -> ConnectionClosed:
    """What calls on a connection raise once it ended as ``term`` says."""
    if term.idle_timeout:
        message = "connection closed: idle timeout"
    elif term.by_peer:
        message = f"connection closed by the peer (code 0x{term.error_code:x})"
    else:
        message = f"connection closed (code 0x{term.error_code:x})"
    if term.reason:
        message += f": {term.reason}"
    return ConnectionClosed(
        message,
        error_code=term.error_code,
        reason=term.reason,
        by_peer=term.by_peer,
        idle_timeout=term.idle_timeout,
    )


def handshake_error(term: Terminated, message: str) -> ConnectError:
    """What `connect` raises for a connection that closed before it was established."""
    if term.idle_timeout:
        return ConnectError("no answer from the peer: the handshake timed out")
    if term.by_peer and term.error_code == CloseCode.ADMISSION_REFUSED:
        return AdmissionRefused(f"the peer did not admit us: {message}", by_peer=True)
    if term.by_peer and term.error_code in _REFUSED_CLOSE_CODES:
        return ConnectRefused(
            f"the peer refused the connection: {message}", error_code=term.error_code
        )
    return HandshakeError(
        f"handshake failed: {message}", error_code=term.error_code, tls_alert=term.tls_alert
    )


def refused_by_tls(error: ConnectError | None) -> bool:
    """Whether TLS refused a handshake: a TLS alert (either way) or a bad identity."""
    return isinstance(error, PeerIdentityError) or (
        isinstance(error, HandshakeError) and error.tls_alert is not None
    )


def transient(exc: BaseException) -> bool:
    """Whether a failure may go away by itself (worth retrying)."""
    if isinstance(exc, ConnectRefused):
        return True
    if isinstance(exc, HandshakeError | PeerUnreachable):
        return False  # identity, TLS, ALPN, or the network said nobody is there
    if isinstance(exc, ConnectError):
        return True  # no answer
    if isinstance(exc, MessageTooLarge):
        return False
    if isinstance(exc, MessageRefused):
        return exc.error_code == StreamErrorCode.BUSY
    if isinstance(exc, ConnectionClosed):
        if exc.idle_timeout:
            return True
        return exc.by_peer and exc.error_code not in (
            CloseCode.PEER_IDENTITY,
            CloseCode.PROTOCOL_VIOLATION,
            CloseCode.ADMISSION_REFUSED,  # denied: asking again changes nothing
        )
    return False


E = StreamErrorCode
_REFUSAL_CODES: Final = frozenset({E.BUSY, E.UNSUPPORTED, E.MALFORMED, E.REFUSED, E.NO_REPLY})


def stream_error(code: int, what: str, *, raw: type[StreamReset] = StreamReset) -> StreamReset:
    """The exception a local caller gets when the peer reset, stopped or refused a stream.

    ``what``: the caller's word for the stream (``"message"``, ``"request"``,
    ``"reply"``), or ``"stream"`` for a raw stream, whose error is of class
    ``raw`` (the Trio edge passes `_streams.RawStreamReset`, also a
    `trio.BrokenResourceError`).
    """
    try:
        name = E(code).name
    except ValueError:
        name = f"0x{code:x}"
    if what == "stream":
        return raw(f"stream: the peer reset the stream ({name})", error_code=code)
    if code == E.TOO_LARGE:
        return MessageTooLarge(f"{what}: the peer refused it as too large", error_code=code)
    if code in _REFUSAL_CODES:
        return MessageRefused(f"{what}: the peer refused it ({name})", error_code=code)
    return StreamReset(f"{what}: the peer reset the stream ({name})", error_code=code)


def disconnect_reason(exc: ConnectionClosed | None, closed_locally: bool) -> DisconnectReason:
    """Why a connection ended, from how it ended and whether we closed it on purpose.

    ``closed_locally``: an application or endpoint close (`Connection.aclose`,
    the pool, the shutdown, a trust refusal), as opposed to one QUIC or the
    session chose (a protocol violation, an internal error).
    """
    if exc is None:
        return DisconnectReason.CLOSED_LOCALLY
    if exc.idle_timeout:
        return DisconnectReason.IDLE_TIMEOUT
    if exc.error_code == CloseCode.ADMISSION_REFUSED:
        return DisconnectReason.REFUSED
    if exc.by_peer:
        return DisconnectReason.CLOSED_BY_PEER if exc.error_code == 0 else DisconnectReason.ERROR
    if closed_locally or exc.error_code == 0:
        return DisconnectReason.CLOSED_LOCALLY
    return DisconnectReason.ERROR
