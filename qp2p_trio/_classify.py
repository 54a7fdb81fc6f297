# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Classifying failures, sans-IO: what a close means to a caller.

`handshake_error` turns the close of a connection that never got established
into what `Endpoint.connect` raises; `transient` says whether a failure may
go away by itself, so `Config.retry` retries it.  (The exception a stream's
reset code becomes is `_streams.stream_error`; the reason a `Disconnected`
event carries is `_pool.disconnect_reason`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._errors import (
    AdmissionRefused,
    ConnectError,
    ConnectionClosed,
    ConnectRefused,
    HandshakeError,
    MessageRefused,
    MessageTooLarge,
    PeerUnreachable,
)
from ._wire import CloseCode, StreamErrorCode

if TYPE_CHECKING:
    from ._quic import Terminated

__all__ = ["handshake_error", "transient"]

# QUIC's CONNECTION_REFUSED and INVALID_TOKEN (a stale Retry token: a fresh
# attempt gets a new one) transport errors, and our own limit close codes.
_REFUSED_CLOSE_CODES: Final = frozenset(
    {0x2, 0xB, CloseCode.LIMIT_EXCEEDED, CloseCode.HANDSHAKE_TIMEOUT}
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
