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
2. with trusted CAs (`Config.trusted_cas`), the peer's node certificate
   (`_ca.check_node`: signed by a trusted CA, for the node id it proved,
   valid at the wall clock, not revoked), synchronously;
3. then, if configured, the application's async hook
   (`Config.admit_peer`), run by `Gatekeeper` in a task of the endpoint's
   nursery: bounded by `Config.admit_peer_timeout` and
   `Config.admit_peer_concurrency`, cancelled when the connection or the
   endpoint closes.  A hook that raises or times out refuses (logged).

A refused connection is closed with `CloseCode.ADMISSION_REFUSED`; the
peer's `connect` raises `AdmissionRefused`.  A listener whose policy may
refuse holds back its SETTINGS (which otherwise travel with its handshake
flight) until it admitted the dialler, so a refused dialler's `connect`
fails instead of returning a connection that closes a moment later.

Changing the lists, the trusted CAs or the revocation list applies at
once: new connections are judged by the new policy, and live connections to
peers it no longer admits are closed (so revoking a certificate cuts its
connections, as libp2p and iroh users expect).  A node certificate that
merely expires while its connection is open does not close it; the next
connection is refused.  A hook's verdict is not revisited.

The cheap pre-handshake hook (`Config.admit_address`) is the driver's: it
runs before admission of an Initial does any work (see `_driver`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import trio
from cryptography.hazmat.primitives.serialization import Encoding

from ._ca import check_node, check_root
from ._identity import NodeId
from ._util import NoPublicConstructor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from cryptography import x509

    from ._config import Config
    from ._connection import Connection

__all__ = ["Gatekeeper", "Trust"]

_log = logging.getLogger("qp2p_trio")

T = TypeVar("T")
#: The deny-list and revocations of most endpoints: empty, shared, never changed.
_NONE: Final[frozenset[Any]] = frozenset()


def _own(found: set[T] | frozenset[T]) -> set[T] | frozenset[T]:
    """``found``, or the shared empty set when it is empty (a set is 216 bytes)."""
    return found if found else _NONE


def _add(found: set[T] | frozenset[T], more: set[T]) -> set[T]:
    """``found`` with ``more`` added: in place, unless ``found`` is the shared empty set."""
    if isinstance(found, set):
        found |= more
        return found
    return set(found) | more


def _ids(node_ids: Iterable[NodeId]) -> set[NodeId]:
    ids = set(node_ids)
    for node_id in ids:
        if not isinstance(node_id, NodeId):
            raise TypeError(f"expected a NodeId, got {node_id!r}")
    return ids


def _revocations(entries: Iterable[NodeId | int]) -> set[NodeId | int]:
    found = set(entries)
    for entry in found:
        if isinstance(entry, bool) or not isinstance(entry, (NodeId, int)):
            raise TypeError(f"revoke a NodeId or a certificate serial number (int), not {entry!r}")
        if isinstance(entry, int) and entry < 0:
            raise ValueError(f"a certificate serial number is not negative, got {entry}")
    return found


def _roots(certificates: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    roots = tuple(certificates)
    for root in roots:
        check_root(root)
    return roots


@final
class Trust(metaclass=NoPublicConstructor):
    """The endpoint's trust policy: lists, trusted CAs, revocations; changeable while it runs.

    Get it from `Endpoint.trust`; it starts from `Config.allowed_peers` and
    `Config.denied_peers`.  A peer is admitted when it is not denied and
    either no allow-list is in force (any authenticated key: qp2p's
    "encrypted only" mode) or it is on the allow-list.  The lists apply in
    both directions: to peers that connect to us and to peers we dial.

    With trusted CAs (`Config.trusted_cas`, `trust_cas`) a peer must also
    present a node certificate that one of them signed for the node id it
    proved, valid now and not revoked (`revoke`): see
    `CertificateAuthority`.  The lists still apply on top.

    Every change applies at once: to new connections, and live connections
    to peers no longer admitted are closed with
    `CloseCode.ADMISSION_REFUSED` (counted in
    `EndpointStatistics.peers_refused`).

    Example::

        ep.trust.deny(spammer)  # closes its connections now
        ep.trust.allow_only([alice, bob])  # an allow-list from now on
        ep.trust.allow(carol)  # one more on it
        ep.trust.revoke(mallory)  # every node certificate of hers, from now on
        ep.trust.revoke(0x5EED)  # one node certificate, by serial number
    """

    def __init__(
        self,
        allowed: Iterable[NodeId] | None,
        denied: Iterable[NodeId],
        roots: Iterable[x509.Certificate] = (),
        revoked: Iterable[NodeId | int] = (),
    ) -> None:
        self._allowed = None if allowed is None else _ids(allowed)
        self._denied: set[NodeId] | frozenset[NodeId] = _own(_ids(denied))
        self._roots = _roots(roots)
        self._revoked: set[NodeId | int] | frozenset[NodeId | int] = _own(_revocations(revoked))
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

    @property
    def trusted_cas(self) -> tuple[x509.Certificate, ...]:
        """The trusted CA certificates; empty: no node certificate is required."""
        return self._roots

    @property
    def revoked(self) -> frozenset[NodeId | int]:
        """Revoked node ids and node certificate serial numbers."""
        return frozenset(self._revoked)

    def trust_cas(self, certificates: Iterable[x509.Certificate]) -> None:
        """Replace the trusted CAs (empty: require no node certificate any more).

        Live connections to peers the new CAs do not admit close.

        Raises:
            TypeError, ValueError: if one is not a CA certificate.
        """
        self._roots = _roots(certificates)
        self.changed()

    def revoke(self, *entries: NodeId | int) -> None:
        """Refuse node certificates from now on: all of a `NodeId`, or one by serial number.

        Live connections whose peer's node certificate is revoked close.
        Only matters with trusted CAs (a node id to refuse whatever its
        certificate is better put on the deny-list).
        """
        self._revoked = _add(self._revoked, _revocations(entries))
        self.changed()

    def unrevoke(self, *entries: NodeId | int) -> None:
        """Take entries off the revocation list."""
        self._revoked -= _revocations(entries)

    def refusal(self, node_id: NodeId, chain: list[x509.Certificate], now: float) -> str | None:
        """Why the policy refuses a peer with this TLS chain, or ``None`` (the hook may still).

        ``now`` is the wall clock (Unix seconds), for certificate lifetimes.
        """
        if node_id in self._denied:
            return "its node id is on the deny-list"
        if self._allowed is not None and node_id not in self._allowed:
            return "its node id is not on the allow-list"
        if self._roots:
            return check_node(chain, node_id, roots=self._roots, revoked=self._revoked, now=now)
        return None

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
        self._denied = _add(self._denied, ids)
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
        return (
            f"<qp2p_trio.Trust allowed={allowed} denied={len(self._denied)} "
            f"cas={len(self._roots)} revoked={len(self._revoked)}>"
        )


class Gatekeeper:
    """Judges verified peers: the `Trust` lists, then `Config.admit_peer` in a task.

    Owned by the driver, which gives it its nursery (`start`) and reports
    closes (`forget`) and its own shutdown (`close`).
    """

    def __init__(self, config: Config, wall_clock: Callable[[], float]) -> None:
        self._config = config
        self._wall_clock = wall_clock
        self.trust = Trust._create(
            config.allowed_peers,
            config.denied_peers,
            config.trusted_cas,
            config.revoked_certificates,
        )
        self._limiter: trio.CapacityLimiter | None = None  # made for the first hook call
        self._nursery: trio.Nursery | None = None
        self._pending: dict[Connection, trio.CancelScope] = {}
        self.refused = 0  # connections refused, both directions
        self.hook_failures = 0  # hook calls that raised or timed out

    @property
    def may_refuse(self) -> bool:
        """Whether a new connection might be refused (a listener then holds its SETTINGS)."""
        trust = self.trust
        return bool(
            trust.allowed is not None
            or trust.denied
            or trust.trusted_cas
            or self._config.admit_peer is not None
        )

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def judge(self, conn: Connection) -> bool | None:
        """Admit (True), refuse (False) or ask the hook (None: `Connection.decide_admission` later)."""
        peer = conn.peer_id
        reason = self.trust.refusal(peer, conn.core.peer_certificates(), self._wall_clock())
        if reason is not None:
            _log.info("qp2p_trio: refusing %s: %s", peer.short(), reason)
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
        limiter = self._limiter
        if limiter is None:
            limiter = self._limiter = trio.CapacityLimiter(self._config.admit_peer_concurrency)
        with scope:
            try:
                with trio.fail_after(self._config.admit_peer_timeout):
                    async with limiter:
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

    def no_longer_admitted(self, connections: Iterable[Connection]) -> list[Connection]:
        """The live connections whose peer the changed policy refuses (counted as refused)."""
        now = self._wall_clock()
        found = []
        for conn in connections:
            session = conn.session
            peer = session.peer_id
            if peer is None or session.close_exc is not None or session.closed_locally:
                continue
            reason = self.trust.refusal(peer, conn.core.peer_certificates(), now)
            if reason is not None:
                _log.info("qp2p_trio: closing the connection to %s: %s", peer.short(), reason)
                self.refused += 1
                found.append(conn)
        return found

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
