# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`_classify`, the one sans-IO module that maps codes to errors (no Trio)."""

from __future__ import annotations

import pytest

from qp2p_trio import (
    AdmissionRefused,
    ConnectionClosed,
    ConnectRefused,
    DisconnectReason,
    HandshakeError,
    MessageRefused,
    MessageTooLarge,
    StreamReset,
)
from qp2p_trio._classify import (
    connection_closed,
    disconnect_reason,
    handshake_error,
    refused_by_tls,
    stream_error,
    transient,
)
from qp2p_trio._quic import Terminated
from qp2p_trio._wire import CloseCode, StreamErrorCode

E = StreamErrorCode


class Raw(StreamReset):
    """Stands in for the Trio edge's RawStreamReset."""


@pytest.mark.parametrize(
    ("code", "what", "kind", "text"),
    [
        (E.TOO_LARGE, "message", MessageTooLarge, "message: the peer refused it as too large"),
        (E.BUSY, "request", MessageRefused, "request: the peer refused it (BUSY)"),
        (E.NO_REPLY, "request", MessageRefused, "request: the peer refused it (NO_REPLY)"),
        (E.CANCELLED, "reply", StreamReset, "reply: the peer reset the stream (CANCELLED)"),
        (0x1234, "message", StreamReset, "message: the peer reset the stream (0x1234)"),
        (E.BUSY, "stream", Raw, "stream: the peer reset the stream (BUSY)"),
    ],
)
def test_stream_error(code: int, what: str, kind: type[StreamReset], text: str) -> None:
    exc = stream_error(code, what, raw=Raw)
    assert type(exc) is kind
    assert str(exc) == text
    assert exc.error_code == code


def test_a_raw_stream_error_without_a_raw_class_is_a_stream_reset() -> None:
    assert type(stream_error(E.CLOSED, "stream")) is StreamReset


def closed(code: int, *, by_peer: bool = False, idle: bool = False) -> ConnectionClosed:
    return connection_closed(Terminated(code, "why", by_peer, idle, True))


def test_connection_closed_says_who_and_why() -> None:
    assert str(closed(0, idle=True)) == "connection closed: idle timeout: why"
    assert str(closed(5, by_peer=True)) == "connection closed by the peer (code 0x5): why"
    exc = closed(7)
    assert (str(exc), exc.error_code, exc.reason, exc.by_peer) == (
        "connection closed (code 0x7): why",
        7,
        "why",
        False,
    )


@pytest.mark.parametrize(
    ("exc", "closed_locally", "reason"),
    [
        (None, True, DisconnectReason.CLOSED_LOCALLY),
        (closed(0, idle=True), False, DisconnectReason.IDLE_TIMEOUT),
        (closed(CloseCode.ADMISSION_REFUSED), False, DisconnectReason.REFUSED),
        (closed(0, by_peer=True), False, DisconnectReason.CLOSED_BY_PEER),
        (closed(3, by_peer=True), False, DisconnectReason.ERROR),
        (closed(CloseCode.PROTOCOL_VIOLATION), True, DisconnectReason.CLOSED_LOCALLY),
        (closed(CloseCode.PROTOCOL_VIOLATION), False, DisconnectReason.ERROR),
        (closed(0), False, DisconnectReason.CLOSED_LOCALLY),
    ],
)
def test_disconnect_reason(
    exc: ConnectionClosed | None, closed_locally: bool, reason: DisconnectReason
) -> None:
    assert disconnect_reason(exc, closed_locally) is reason


def test_handshake_error_and_transient_agree() -> None:
    refused = handshake_error(Terminated(0x2, "", True, False, False), "x")
    assert isinstance(refused, ConnectRefused)
    assert transient(refused)
    denied = handshake_error(Terminated(CloseCode.ADMISSION_REFUSED, "", True, False, True), "x")
    assert isinstance(denied, AdmissionRefused)
    assert not transient(denied)
    tls = handshake_error(Terminated(0x178, "", True, False, False), "x")
    assert type(tls) is HandshakeError
    assert tls.tls_alert == 120
    assert not transient(tls)
    assert refused_by_tls(tls)
    assert not refused_by_tls(refused)
    assert not refused_by_tls(None)
    assert transient(stream_error(E.BUSY, "message"))
    assert not transient(stream_error(E.TOO_LARGE, "message"))
