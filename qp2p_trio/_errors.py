# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The exception hierarchy: every error qp2p_trio raises on purpose.

Nothing else in the package defines exception classes.  Besides these, public
calls raise only Trio's resource errors (`trio.ClosedResourceError`,
`trio.BusyResourceError`, `trio.BrokenResourceError` on raw streams) and
`ValueError` / `TypeError` for bad arguments at the call site.
"""

from __future__ import annotations

__all__ = [
    "AdmissionRefused",
    "ConnectError",
    "ConnectionClosed",
    "EndpointError",
    "HandshakeError",
    "LocalProtocolError",
    "MessageError",
    "MessageRefused",
    "MessageTooLarge",
    "GatewayReplyError",
    "PeerIdentityError",
    "PeerCacheError",
    "PeerNotAtRelay",
    "PortMappingError",
    "PeerUnreachable",
    "ProtocolError",
    "QP2PError",
    "RelayUnavailable",
    "RemoteProtocolError",
    "StreamReset",
]


class QP2PError(Exception):
    """Base class of every error that qp2p_trio raises on purpose."""


class ConnectError(QP2PError):
    """A connection could not be established.

    When several candidates were raced (`Endpoint.connect_to_any`),
    ``__cause__`` is an `ExceptionGroup` holding each candidate's error.

    Attributes:
        addresses: the socket address(es) dialled, as ``(host, port)``
            (every candidate's for `Endpoint.connect_to_any`); empty if
            none was reached before the failure.
        attempts: how many attempts were made (retries included; the
            candidates for `Endpoint.connect_to_any`); 0 if unknown.
        elapsed: seconds from the first attempt to the failure.
    """

    addresses: tuple[tuple[object, ...], ...] = ()
    attempts: int = 0
    elapsed: float = 0.0


class ConnectRefused(ConnectError):
    """The peer refused the connection because one of its limits was reached.

    Transient: the peer is there and may accept later (retried under
    `Config.retry`).  ``error_code`` is the peer's close code: QUIC's
    CONNECTION_REFUSED (0x2), QUIC's INVALID_TOKEN (0xb: our Retry token had
    expired or the peer restarted), `CloseCode.LIMIT_EXCEEDED` or
    `CloseCode.HANDSHAKE_TIMEOUT` (the set-up took past the peer's deadline).
    """

    def __init__(self, message: str, *, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


class RelayUnavailable(ConnectError):
    """The relay a peer is to be reached through could not be reached.

    Raised by `Endpoint.connect` for a peer address with a relay (and no
    direct address that worked); ``__cause__`` is why the relay failed.
    The endpoint keeps trying to reach the relay in the background.
    """


class PeerNotAtRelay(ConnectError):
    """The relay answered that no peer with that node id is registered with it."""


class HandshakeError(ConnectError):
    """The QUIC/TLS handshake failed: TLS alert, wrong ALPN, or bad identity.

    Attributes:
        error_code: the QUIC close code that ended the handshake (sent or
            received), or ``None`` if none applies (for example a
            `PeerIdentityError` raised before the close).
        tls_alert: the TLS alert number if the close carried one (QUIC
            CRYPTO_ERROR, ``error_code == 0x100 + tls_alert``): 120
            (no_application_protocol) for a wrong ALPN, 40
            (handshake_failure) for no common signature algorithm.
    """

    def __init__(
        self, message: str, *, error_code: int | None = None, tls_alert: int | None = None
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.tls_alert = tls_alert


class PeerUnreachable(ConnectError):
    """The network reported the peer unreachable while we dialled it.

    An ICMP destination-unreachable (a closed port, no route) for a
    handshake that had not heard from its peer yet, reported by the
    platform (Linux ``IP_RECVERR``; elsewhere such dials time out as
    `ConnectError`).  Never retried.  Established connections, and
    handshakes that heard from their peer, ignore these reports: they are
    easy to forge.

    Attributes:
        address: the peer's socket address the report was about.
        errno: what the report means, as an `errno` code: ``ECONNREFUSED``
            (nothing listens on that port), ``EHOSTUNREACH``,
            ``ENETUNREACH``, ``EHOSTDOWN``, ``ENONET`` or ``EACCES``
            (administratively prohibited).
    """

    def __init__(self, message: str, *, address: tuple[object, ...], errno: int) -> None:
        super().__init__(message)
        self.address = address
        self.errno = errno
        self.addresses = (address,)


class PeerIdentityError(HandshakeError):
    """The peer's certificate did not prove the expected node id.

    Attributes:
        expected: the node id the caller asked for, or ``None``.
        actual: the node id the peer proved, or ``None`` if it proved none.
    """

    def __init__(self, message: str, *, expected: object = None, actual: object = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class AdmissionRefused(HandshakeError):
    """A trust policy refused the connection after the peer proved its node id.

    Either the peer's policy did not admit us (``by_peer`` true: it closed
    with `CloseCode.ADMISSION_REFUSED`), or ours did not admit the peer we
    dialled (``by_peer`` false): a deny-list, an allow-list or an admission
    hook (see `Trust`).  Never retried: asking again gets the same answer
    until somebody changes a policy.

    Attributes:
        by_peer: whether the peer refused us (else our own policy refused it).
        peer_id: the node id the peer proved, if we know it.
    """

    def __init__(self, message: str, *, by_peer: bool, peer_id: object = None) -> None:
        super().__init__(message, error_code=0x106)
        self.by_peer = by_peer
        self.peer_id = peer_id


class ConnectionClosed(QP2PError):
    """The connection is gone.

    Attributes:
        error_code: the QUIC (transport or application) error code.
        reason: the reason phrase sent with the close, if any.
        by_peer: ``True`` if the peer closed it, ``False`` if we did
            (including an idle timeout detected locally).
        idle_timeout: ``True`` if the connection ended because it was idle.
    """

    def __init__(
        self,
        message: str,
        *,
        error_code: int = 0,
        reason: str = "",
        by_peer: bool = False,
        idle_timeout: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.reason = reason
        self.by_peer = by_peer
        self.idle_timeout = idle_timeout


class MessageError(QP2PError):
    """One message (or stream) failed; the connection stays usable."""


class StreamReset(MessageError):
    """The peer reset or stopped the stream.

    On raw streams the error raised is a `RawStreamReset`, which is also a
    `trio.BrokenResourceError`, so code written against Trio's stream
    interfaces handles it.

    Attributes:
        error_code: the application error code the peer sent.
    """

    def __init__(self, message: str, *, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


class MessageRefused(StreamReset):
    """The peer refused the message (busy, unsupported kind or malformed).

    Refusal happens before the peer buffered the message, so nothing was
    delivered and sending it again later is safe.
    """


class MessageTooLarge(MessageRefused):
    """The message is larger than the receiver's `Config.max_message_size`.

    Raised on the sender's side when the peer refuses it, and on the
    requester's side when a reply exceeds the local limit.
    """


class ProtocolError(QP2PError):
    """Abstract base of protocol violations; raise a subclass."""

    def __init__(self, *args: object) -> None:
        if type(self) is ProtocolError:
            raise TypeError(
                "ProtocolError is abstract: raise LocalProtocolError or RemoteProtocolError"
            )
        super().__init__(*args)


class LocalProtocolError(ProtocolError):
    """We (or our caller) tried something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer violated the wire format.

    Attributes:
        error_code: the application error code we answer with.
    """

    def __init__(self, message: str, *, error_code: int = 0) -> None:
        super().__init__(message)
        self.error_code = error_code


class EndpointError(QP2PError):
    """The endpoint's background machinery failed (socket error or internal bug)."""


class PeerCacheError(QP2PError):
    """A peer cache file (`Config.peer_cache`) is not one this version can use:
    not JSON, another format or a newer version, or too large.  The endpoint
    logs it and runs with an empty cache, leaving the file untouched."""


class PortMappingError(QP2PError):
    """A port mapping gateway (NAT-PMP, PCP, UPnP-IGD) refused or failed a request.

    Attributes:
        protocol: ``"natpmp"``, ``"pcp"`` or ``"upnp"``.
        code: the gateway's result or error code, or ``None`` (no answer,
            or no code in it).
    """

    def __init__(self, message: str, *, protocol: str, code: int | None = None) -> None:
        super().__init__(message)
        self.protocol = protocol
        self.code = code


class GatewayReplyError(PortMappingError):
    """A gateway's reply did not parse: too short, the wrong version or opcode,
    an unexpected nonce, malformed HTTP, XML or SOAP.  The reply is ignored;
    the endpoint carries on."""
