# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Trust: which peers a connection may be made with, decided once they proved their key.

Theory of operation
-------------------
Every connection, incoming or outgoing, is judged after the TLS handshake
proved the peer's node id and before any of its stream data is read or the
connection is announced (the session holds it in ``Phase.ADMITTING``):

1. the lists of `Trust` (a deny-list, and an allow-list or none: any key),
   synchronously;
2. then, if configured, the application's async hook
   (`Config.admit_peer`), run by `Gatekeeper` in a task of the endpoint's
   nursery: bounded by `Config.admit_peer_timeout` and
   `Config.admit_peer_concurrency`, cancelled when the connection or the
   endpoint closes.  A hook that raises or times out refuses (logged).

A refused connection is closed with `CloseCode.ADMISSION_REFUSED`; the
peer's `connect` raises `AdmissionRefused`.  A listener whose policy may
refuse holds back its SETTINGS (which otherwise travel with its handshake
flight) until it admitted the dialler, so a refused dialler's `connect`
fails instead of returning a connection that closes a moment later.

Changing the lists applies at once: new connections are judged by the new
lists, and live connections to peers they no longer admit are closed.  A
hook's verdict is not revisited.

The cheap pre-handshake hook (`Config.admit_address`) is the driver's: it
runs before admission of an Initial does any work (see `_driver`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, final

import trio
from cryptography.hazmat.primitives.serialization import Encoding

from ._identity import NodeId
from ._util import NoPublicConstructor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._config import Config
    from ._connection import Connection

__all__ = ["Gatekeeper", "Trust"]

_log = logging.getLogger("qp2p_trio")


def _ids(node_ids: Iterable[NodeId]) -> set[NodeId]:
    ids = set(node_ids)
    for node_id in ids:
        if not isinstance(node_id, NodeId):
            raise TypeError(f"expected a NodeId, got {node_id!r}")
    return ids


@final
class Trust(metaclass=NoPublicConstructor):
    """The endpoint's allow-list and deny-list, changeable while it runs.

    Get it from `Endpoint.trust`; it starts from `Config.allowed_peers` and
    `Config.denied_peers`.  A peer is admitted when it is not denied and
    either no allow-list is in force (any authenticated key: qp2p's
    "encrypted only" mode) or it is on the allow-list.  The lists apply in
    both directions: to peers that connect to us and to peers we dial.

    Every change applies at once: to new connections, and live connections
    to peers no longer admitted are closed with
    `CloseCode.ADMISSION_REFUSED` (counted in
    `EndpointStatistics.peers_refused`).

    Example::

        ep.trust.deny(spammer)  # closes its connections now
        ep.trust.allow_only([alice, bob])  # an allow-list from now on
        ep.trust.allow(carol)  # one more on it
    """

    def __init__(self, allowed: Iterable[NodeId] | None, denied: Iterable[NodeId]) -> None:
        self._allowed = None if allowed is None else _ids(allowed)
        self._denied = _ids(denied)
        #: Called after every change (the driver closes what is no longer admitted).
        self.changed: Callable[[], None] = lambda: None

    @property
    def allowed(self) -> frozenset[NodeId] | None:
        """The allow-list, or ``None`` when any authenticated key is admitted."""
        return None if self._allowed is None else frozenset(self._allowed)

    @property
    def denied(self) -> frozenset[NodeId]:
        """The deny-list."""
        return frozenset(self._denied)

    def admits(self, node_id: NodeId) -> bool:
        """Whether the lists admit ``node_id`` (the admission hook may still refuse)."""
        return node_id not in self._denied and (self._allowed is None or node_id in self._allowed)

    def allow(self, *node_ids: NodeId) -> None:
        """Admit these peers: take them off the deny-list, onto the allow-list if one is in force."""
        ids = _ids(node_ids)
        self._denied -= ids
        if self._allowed is not None:
            self._allowed |= ids

    def deny(self, *node_ids: NodeId) -> None:
        """Refuse these peers from now on, and close their live connections."""
        ids = _ids(node_ids)
        self._denied |= ids
        if self._allowed is not None:
            self._allowed -= ids
        self.changed()

    def forget(self, *node_ids: NodeId) -> None:
        """Take these peers off both lists.

        With an allow-list in force they are no longer admitted (their live
        connections close); without one they are, like any other key.
        """
        ids = _ids(node_ids)
        self._denied -= ids
        if self._allowed is not None:
            self._allowed -= ids
            self.changed()

    def allow_only(self, node_ids: Iterable[NodeId] | None) -> None:
        """Replace the allow-list (``None``: admit any authenticated key again).

        Live connections to peers not on the new list close.
        """
        self._allowed = None if node_ids is None else _ids(node_ids)
        self.changed()

    def __repr__(self) -> str:
        allowed = "any" if self._allowed is None else len(self._allowed)
        return f"<qp2p_trio.Trust allowed={allowed} denied={len(self._denied)}>"


class Gatekeeper:
    """Judges verified peers: the `Trust` lists, then `Config.admit_peer` in a task.

    Owned by the driver, which gives it its nursery (`start`) and reports
    closes (`forget`) and its own shutdown (`close`).
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self.trust = Trust._create(config.allowed_peers, config.denied_peers)
        self._limiter = trio.CapacityLimiter(config.admit_peer_concurrency)
        self._nursery: trio.Nursery | None = None
        self._pending: dict[Connection, trio.CancelScope] = {}
        self.refused = 0  # connections refused, both directions
        self.hook_failures = 0  # hook calls that raised or timed out

    @property
    def may_refuse(self) -> bool:
        """Whether a new connection might be refused (a listener then holds its SETTINGS)."""
        trust = self.trust
        return bool(
            trust.allowed is not None or trust.denied or self._config.admit_peer is not None
        )

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def judge(self, conn: Connection) -> bool | None:
        """Admit (True), refuse (False) or ask the hook (None: `Connection.decide_admission` later)."""
        peer = conn.peer_id
        if not self.trust.admits(peer):
            _log.info("qp2p_trio: refusing %s (trust lists)", peer.short())
            self.refused += 1
            return False
        hook = self._config.admit_peer
        if hook is None:
            return True
        if self._nursery is None:
            return None  # the endpoint is closing: its shutdown closes the connection
        scope = trio.CancelScope()
        self._pending[conn] = scope
        self._nursery.start_soon(self._ask, conn, scope, name=f"admit_peer {peer.short()}")
        return None

    async def _ask(self, conn: Connection, scope: trio.CancelScope) -> None:
        hook = self._config.admit_peer
        assert hook is not None
        peer = conn.peer_id
        leaf = conn.core.peer_certificates()[0].public_bytes(Encoding.DER)
        admitted = False
        with scope:
            try:
                with trio.fail_after(self._config.admit_peer_timeout):
                    async with self._limiter:
                        admitted = bool(await hook(peer, conn.peer_address, leaf))
            except trio.TooSlowError:
                self.hook_failures += 1
                _log.info("qp2p_trio: Config.admit_peer timed out for %s: refused", peer.short())
            except Exception as exc:
                self.hook_failures += 1
                _log.warning(
                    "qp2p_trio: Config.admit_peer raised for %s: refused",
                    peer.short(),
                    exc_info=exc,
                )
        self._pending.pop(conn, None)
        if scope.cancelled_caught or conn.is_closed:
            return
        if not admitted:
            self.refused += 1
        conn.decide_admission(admitted)

    def forget(self, conn: Connection) -> None:
        """The connection closed: stop asking about it."""
        scope = self._pending.pop(conn, None)
        if scope is not None:
            scope.cancel()

    def close(self) -> None:
        """The endpoint is closing: cancel every hook call."""
        self._nursery = None
        for scope in self._pending.values():
            scope.cancel()
        self._pending.clear()
