# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Peer events: `Connected`, `Disconnected`, `HandshakeFailed` and `PathChanged`, from the pool.

`Endpoint.events` returns a `PeerEvents` subscription: it receives every
event that happens after it was created, in order, until it is closed.  Each
subscription has its own bounded buffer (`Config.event_queue_size`); a
subscriber that falls behind loses the newest events, and the loss is
counted in `PeerEvents.dropped` rather than growing memory without bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from ._classify import DisconnectReason

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._connection import Connection
    from ._errors import ConnectError, ConnectionClosed
    from ._identity import NodeId

__all__ = [
    "Connected",
    "DisconnectReason",
    "Disconnected",
    "HandshakeFailed",
    "PathChanged",
    "PeerEvent",
    "PeerEvents",
]


@final
@attrs.frozen
class Connected:
    """A peer is now connected (its first pooled connection is established).

    Attributes:
        peer: the peer's verified node id.
        address: the peer's socket address.
        connection: the pooled connection.
        incoming: ``True`` if the peer dialled us.
    """

    peer: NodeId
    address: tuple[Any, ...]
    connection: Connection = attrs.field(repr=False)
    incoming: bool


@final
@attrs.frozen
class Disconnected:
    """A peer's last pooled connection ended.

    Attributes:
        peer: the peer's node id.
        address: the peer's last socket address.
        reason: why, in one of four words (`DisconnectReason`).
        error: how the connection ended (code, reason, who closed it).
    """

    peer: NodeId
    address: tuple[Any, ...]
    reason: DisconnectReason
    error: ConnectionClosed | None


@final
@attrs.frozen
class HandshakeFailed:
    """A connection attempt, incoming or outgoing, ended before it was established.

    Emitted for TLS failures (a foreign ALPN, no common signature
    algorithm), a node id mismatch, a refusal by either side (a limit, a
    trust policy), and a handshake that got no answer in time.  Not for an
    attempt we gave up ourselves (a cancelled `Endpoint.connect`, a lost
    `Endpoint.connect_to_any` race, the endpoint closing), nor for incoming
    Initials refused before any connection state existed (counted in
    `EndpointMetrics.connection_refusals`).

    Attributes:
        address: the peer's socket address.
        incoming: ``True`` if the peer dialled us.
        peer: the node id the peer proved, if it proved one.
        error: what went wrong, as `Endpoint.connect` raises it
            (`HandshakeError` and its subclasses carry the close code and
            TLS alert; a plain `ConnectError` means no answer).
    """

    address: tuple[Any, ...]
    incoming: bool
    peer: NodeId | None
    error: ConnectError


@final
@attrs.frozen
class PathChanged:
    """A peer's pooled connection moved to another path: relayed to direct, or back.

    Relayed to direct: hole punching succeeded (:doc:`relays`): the new
    connection carries new messages; the old one drains and closes (no
    message is lost or doubled).  Direct to relayed: the direct connection
    that had replaced a relayed one died (idle timeout: its path or NAT
    mapping is gone) and a new connection through the relay took its place
    (after the `Disconnected` and `Connected` events of the two).

    Attributes:
        peer: the peer's node id.
        path: the new connection's path (``"direct"`` or ``"relayed"``;
            `Connection.path`).
        connection: the connection now pooled for the peer.
        previous: the retired one (direct to relayed: the dead one).
    """

    peer: NodeId
    path: str
    connection: Connection = attrs.field(repr=False)
    previous: Connection = attrs.field(repr=False)


PeerEvent = Connected | Disconnected | HandshakeFailed | PathChanged


@final
class PeerEvents:
    """A subscription to peer events; iterate it with ``async for``.

    Close it (``async with`` or `aclose`) to unsubscribe.  Iteration ends
    when the endpoint closes.
    """

    def __init__(self, hub: EventHub, size: int) -> None:
        self._hub = hub
        self._send, self._recv = trio.open_memory_channel[PeerEvent](size)
        self.dropped = 0
        hub._subscribers[self] = None

    def _offer(self, event: PeerEvent) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
        except trio.ClosedResourceError:
            pass

    def __aiter__(self) -> PeerEvents:
        return self

    async def __anext__(self) -> PeerEvent:
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def receive(self) -> PeerEvent:
        """Wait for the next event.

        Raises:
            trio.EndOfChannel: the endpoint closed.
            trio.ClosedResourceError: this subscription was closed.
        """
        return await self._recv.receive()

    def close(self) -> None:
        """Unsubscribe; pending events are discarded."""
        self._hub._subscribers.pop(self, None)
        self._send.close()
        self._recv.close()

    async def aclose(self) -> None:
        """Unsubscribe (async form, for ``async with``)."""
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> PeerEvents:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class EventHub:
    """Fans events out to every live subscription (owned by the endpoint)."""

    def __init__(self) -> None:
        # A dict as a set: 64 bytes while empty (a set is 216), as in most endpoints.
        self._subscribers: dict[PeerEvents, None] = {}
        self._listeners: list[Callable[[PeerEvent], None]] = []

    def listen(self, listener: Callable[[PeerEvent], None]) -> None:
        """Call ``listener`` synchronously with every event, before the subscriptions
        get it (the library's own bookkeeping: it must not raise nor wait)."""
        self._listeners.append(listener)

    def emit(self, event: PeerEvent) -> None:
        for listener in self._listeners:
            listener(event)
        for sub in list(self._subscribers):
            sub._offer(event)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub._send.close()
        self._subscribers.clear()
