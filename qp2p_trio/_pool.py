# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The connection pool: one live connection per peer, reused.

Owned by the `Endpoint`; everything here is synchronous bookkeeping run from
the endpoint's tasks or from user calls, never a task of its own.

Theory of operation
-------------------
Every connection, dialled or accepted, enters the pool once it is *ready*
(verified, and the peer's SETTINGS arrived).  The pool maps node id to
connection and socket address to connection.  When a second connection to
a peer becomes ready:

- if the peer's *incarnation* (a random number in its SETTINGS, drawn when
  its endpoint opened) differs, the peer restarted: the new connection
  replaces the old one, which is closed (it is dead: its peer forgot it);
- otherwise both peers dialled each other at once (simultaneous open), or a
  hole was punched next to a relayed connection.  Both sides keep the same
  connection, by one rule that needs no messages: a direct one rather than
  a relayed one, then the one dialled by the smaller node id (ties, which need a buggy peer, are
  broken by the original destination connection id, which both sides
  know).  The other is *retired*: new messages on it go to the kept one,
  both sides announce GOAWAY with the number of streams they opened, and it
  closes once every one of those streams finished.  So no message sent
  during the race is lost or doubled.

A connection to an address that another node now answers from replaces the
stale entry likewise (that node's old connection is closed).

The pool never calls into a connection: `Pool.ready` and `Pool.peer_goaway`
return the actions to take (`Close`, `Retire`), and the driver carries them
out once the pool's own update is complete, so a close that comes back as
`Pool.closed` never finds the pool half-changed.

Pending dials are shared: concurrent `Endpoint.connect` calls for the same
(address, node id) wait on one handshake.  The handshake needs no task of
its own (the endpoint's socket tasks drive every connection), so a waiter
that is cancelled simply leaves; when the last one leaves before the
handshake completes, the half-open connection is closed at once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, final

import attrs

from ._classify import disconnect_reason
from ._errors import HandshakeError, PeerIdentityError
from ._events import Connected, Disconnected, EventHub, HandshakeFailed, PathChanged
from ._identity import NodeId

if TYPE_CHECKING:
    from ._connection import Connection
    from ._errors import ConnectError

__all__ = [
    "Attempt",
    "Close",
    "Pool",
    "PoolAction",
    "Retire",
    "handshake_failure",
]

Key = tuple[Any, ...]
_KNOWN_ADDRESSES = 4096


@final
@attrs.frozen
class Close:
    """Close ``conn`` (code 0): its peer restarted or another node took its address."""

    conn: Connection
    reason: str


@final
@attrs.frozen
class Retire:
    """Retire ``conn`` in favour of ``winner`` (a simultaneous open)."""

    conn: Connection
    winner: Connection


PoolAction = Close | Retire


class Attempt:
    """A dial in progress, shared by every `connect` call waiting on it."""

    __slots__ = ("conn", "deadline", "shared", "timed_out", "waiters")

    def __init__(self, conn: Connection, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.waiters = 0
        self.shared = False  # more than one caller waited on it
        self.timed_out = False


def handshake_failure(conn: Connection) -> ConnectError | None:
    """The error of a connection that ended before it was established, if it failed.

    ``None`` for an established connection, and for an attempt we gave up
    ourselves: closed by us with code 0 before anything went wrong (a
    cancelled connect, a lost race, the endpoint closing).
    """
    session = conn.session
    error = session.handshake_error
    if session.established or error is None:
        return None
    exc = session.close_exc
    abandoned = (
        type(error) is HandshakeError
        and exc is not None
        and not exc.by_peer
        and not exc.idle_timeout
        and exc.error_code == 0
    )
    return None if abandoned else error


def usable(conn: Connection) -> bool:
    return not conn.is_closed and not conn.session.closed_locally and not conn.is_retired


def _dialler(conn: Connection, local: NodeId) -> tuple[bool, bytes, bytes]:
    # A direct connection beats a relayed one (hole punching), on both sides.
    client = local if conn.core.is_client else conn.peer_id
    return (conn.path == "relayed", bytes(client), conn.core.original_destination_cid)


class Pool:
    """Live connections by peer and by address, pending dials, peer events."""

    def __init__(self, local: NodeId, hub: EventHub) -> None:
        self._local = local
        self._hub = hub
        self.by_peer: dict[NodeId, Connection] = {}
        self.by_addr: dict[Key, Connection] = {}
        self.pending: dict[tuple[Key, NodeId | None], Attempt] = {}
        self._known: OrderedDict[NodeId, Key] = OrderedDict()
        self._keys: dict[Connection, Key] = {}

    # -------------------------------------------------------------- lookups
    def lookup(self, key: Key, node_id: NodeId | None) -> Connection | None:
        """The live pooled connection for this address (and node id), if any."""
        if node_id is not None:
            conn = self.by_peer.get(node_id)
            if conn is not None and usable(conn):
                return conn
            conn = self.by_addr.get(key)
            if conn is not None and usable(conn) and conn.peer_id == node_id:
                return conn
            return None
        conn = self.by_addr.get(key)
        if conn is not None and usable(conn):
            return conn
        return None

    def peer(self, node_id: NodeId) -> Connection | None:
        conn = self.by_peer.get(node_id)
        return conn if conn is not None and usable(conn) else None

    def known_address(self, node_id: NodeId) -> Key | None:
        """The last address a peer was connected at (bounded memory)."""
        return self._known.get(node_id)

    def connections(self) -> list[Connection]:
        return [conn for conn in self.by_peer.values() if usable(conn)]

    # -------------------------------------------------------------- changes
    def ready(self, conn: Connection, key: Key) -> list[PoolAction]:
        """``conn`` is verified and has the peer's SETTINGS: pool it.

        Returns what the caller must do to other connections, in order.
        """
        peer = conn.peer_id
        self._remember(peer, key)
        actions: list[PoolAction] = []
        other = self.by_addr.get(key)
        if other is not None and other is not conn and other.peer_id != peer and usable(other):
            # Another node answers from that address now: the old one is gone.
            actions.append(Close(other, "another node answers at this address"))
        old = self.by_peer.get(peer)
        if old is None or old is conn or not usable(old):
            self._install(conn, key)
            if old is None or old.is_closed or old.session.closed_locally:
                self._hub.emit(
                    Connected(
                        peer=peer,
                        address=conn.peer_address,
                        connection=conn,
                        incoming=not conn.core.is_client,
                    )
                )
            return actions
        if old.session.control.peer_incarnation != conn.session.control.peer_incarnation:
            # The peer restarted: its old connection is dead.
            self._install(conn, key)
            actions.append(Close(old, "the peer restarted"))
            return actions
        # Simultaneous open: both sides keep the connection dialled by the
        # smaller node id.
        if _dialler(conn, self._local) < _dialler(old, self._local):
            winner, loser = conn, old
        else:
            winner, loser = old, conn
        self._install(winner, self._keys.get(winner, key))
        actions.append(Retire(loser, winner))
        if winner is conn and winner.path != loser.path:
            self._hub.emit(PathChanged(peer, winner.path, winner, loser))
        return actions

    def peer_goaway(self, conn: Connection) -> list[PoolAction]:
        """The peer retired ``conn``: follow once we hold the kept connection."""
        if conn.is_retired:
            return []
        kept = self.by_peer.get(conn.peer_id)
        if kept is not None and kept is not conn and usable(kept):
            return [Retire(conn, kept)]
        return []

    def closed(self, conn: Connection) -> None:
        """``conn`` ended: forget it at once; tell subscribers if it was the peer's."""
        key = self._keys.pop(conn, None)
        if key is not None and self.by_addr.get(key) is conn:
            del self.by_addr[key]
        peer = conn.session.peer_id
        if peer is not None and self.by_peer.get(peer) is conn:
            del self.by_peer[peer]
            self._hub.emit(
                Disconnected(
                    peer=peer,
                    address=conn.peer_address,
                    reason=disconnect_reason(conn.close_reason, conn.session.closed_locally),
                    error=conn.close_reason,
                )
            )
        error = handshake_failure(conn)
        if error is not None:
            if peer is None and isinstance(error, PeerIdentityError):
                peer = error.actual if isinstance(error.actual, NodeId) else None
            self._hub.emit(
                HandshakeFailed(
                    address=conn.peer_address,
                    incoming=not conn.core.is_client,
                    peer=peer,
                    error=error,
                )
            )

    def _install(self, conn: Connection, key: Key) -> None:
        self.by_peer[conn.peer_id] = conn
        self.by_addr[key] = conn
        self._keys[conn] = key

    def _remember(self, peer: NodeId, key: Key) -> None:
        self._known[peer] = key
        self._known.move_to_end(peer)
        while len(self._known) > _KNOWN_ADDRESSES:
            self._known.popitem(last=False)
