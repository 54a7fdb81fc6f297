# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Dialling: resolving peers, shared handshakes, the race, and retries.

Theory of operation
-------------------
`Dialer.target` turns whatever names a peer (an address, a `PeerAddress`, its
text form, a known `NodeId`) into a pool key, a socket-form address and the
node id the peer must prove.  `Dialer.connect_once` makes one attempt: a
pooled connection if there is one, else a handshake shared by every
concurrent caller for the same peer (`_pool.Attempt`), bounded by
`Config.handshake_timeout`.  `Dialer.retrying` retries transient failures
under `Config.retry`; `Dialer.connect_to_any` races candidates in one
nursery and cancels the losers.

Owns nothing but the retry jitter's random generator; the pool owns the
shared attempts and the driver creates the connections.
"""

from __future__ import annotations

import ipaddress
import math
import socket as _stdlib_socket
from typing import TYPE_CHECKING, TypeVar

import trio

from ._classify import transient
from ._errors import (
    ConnectError,
    PeerNotAtRelay,
    QP2PError,
)
from ._identity import NodeId
from ._observe import get_logger
from ._path import is_path_address
from ._peer import PeerAddress
from ._pool import Attempt
from ._quic import Address
from ._wire import CloseCode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from ._config import Config
    from ._connection import Connection
    from ._driver import Driver
    from ._pool import Pool
    from ._relaypath import RelayManager
    from ._retry import RandomSource

__all__ = ["Dialer", "NoRetry", "Peer"]

#: Who to talk to: a socket address, a node id the endpoint has met, a
#: `PeerAddress`, or the text form of one (``"<node-id>@host:port"``).
Peer = Address | NodeId | PeerAddress | str

_T = TypeVar("_T")

_log = get_logger("dial")


class Dialer:
    """Opens connections for an endpoint (see the module docstring)."""

    def __init__(self, driver: Driver, pool: Pool, config: Config, rng: RandomSource) -> None:
        self._driver = driver
        self._pool = pool
        self._config = config
        self._family = driver.family
        self._rng = rng
        #: Relay paths, for peers reached through a relay (set by the endpoint).
        self.relays: RelayManager | None = None
        #: The relay a peer (by node id) falls back to (set by the endpoint).
        self.relay_for: Callable[[NodeId], PeerAddress | None] = lambda _peer: None

    def _check_open(self) -> None:
        if self._driver.closing:
            raise trio.ClosedResourceError("the endpoint is closed")

    async def resolve(self, address: Address) -> Address:
        if not isinstance(address, tuple) or len(address) not in (2, 4):
            raise TypeError(f"address must be a (host, port) tuple, got {address!r}")
        if is_path_address(address):
            # ``(peer, path)`` on an attached path: nothing to resolve.
            await trio.lowlevel.checkpoint()
            return tuple(address)
        host, port = address[0], address[1]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"invalid port in {address!r}")
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {host!r}")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            family = self._family if self._family == _stdlib_socket.AF_INET else 0
            try:
                infos = await trio.socket.getaddrinfo(
                    host, port, family=family, type=_stdlib_socket.SOCK_DGRAM
                )
            except OSError as exc:
                raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
            if not infos:
                raise ValueError(f"cannot resolve {host!r}") from None
            ip = ipaddress.ip_address(infos[0][4][0])
        else:
            await trio.lowlevel.checkpoint()
        if self._family == _stdlib_socket.AF_INET:
            if ip.version != 4:
                raise ValueError(f"{host} is IPv6 but this endpoint's socket is IPv4")
            return (str(ip), port)
        if ip.version == 4:
            return (f"::ffff:{ip}", port, 0, 0)
        rest = tuple(address[2:4]) if len(address) == 4 else (0, 0)
        return (ip.compressed, port, *rest)

    async def connect_to_any(self, candidates: Iterable[Peer]) -> Connection:
        """Race ``candidates``; see `Endpoint.connect_to_any`."""
        self._check_open()
        targets = [await self.target(c, None) for c in candidates]
        if not targets:
            raise ValueError("connect_to_any needs at least one candidate")
        for key, _wire_addr, node_id in targets:
            pooled = self._pool.lookup(key, node_id)
            if pooled is not None:
                return pooled
        errors: list[BaseException | None] = [None] * len(targets)
        won: list[Connection] = []
        start = trio.current_time()
        stagger = self._config.race_stagger

        async with trio.open_nursery() as nursery:

            async def attempt(i: int, failed: trio.Event) -> None:
                try:
                    conn, fresh = await self.connect_once(*targets[i])
                except Exception as exc:
                    exc.add_note(f"qp2p_trio: candidate {i + 1}: {_describe(*targets[i][::2])}")
                    errors[i] = exc
                    failed.set()
                    return
                if won:
                    # Finished in the same instant as the winner: not needed.
                    if fresh:
                        conn.close_locally(CloseCode.NO_ERROR, "lost the connect_to_any race")
                    return
                won.append(conn)
                nursery.cancel_scope.cancel("connect_to_any: another candidate won")

            for i in range(len(targets)):
                failed = trio.Event()
                nursery.start_soon(attempt, i, failed)
                if stagger and i + 1 < len(targets):
                    with trio.move_on_after(stagger):
                        await failed.wait()
        if won:
            return won[0]
        group = ExceptionGroup(
            "every connect_to_any attempt failed", [e for e in errors if isinstance(e, Exception)]
        )
        names = ", ".join(_describe(key, node_id) for key, _wire, node_id in targets)
        error = ConnectError(f"none of the {len(targets)} candidates could be reached: {names}")
        error.addresses = tuple(key for key, _wire, _node in targets)
        error.attempts = len(targets)
        error.elapsed = trio.current_time() - start
        raise error from group

    async def race_paths(self, peer: PeerAddress, node_id: NodeId | None) -> Connection:
        """Dial ``peer``'s address and its relay at once; keep the first connection.

        Each side retries under `Config.retry`; the loser is cancelled (a
        handshake nobody waits for is closed).  If both fail, `ConnectError`
        from an `ExceptionGroup` of both errors.
        """
        if node_id is not None and node_id != peer.node_id:
            raise ValueError("node_id contradicts the PeerAddress's node id")
        candidates = [
            PeerAddress(peer.node_id, peer.address),
            PeerAddress(peer.node_id, relay=peer.relay),
        ]
        errors: list[Exception] = []
        won: list[Connection] = []
        async with trio.open_nursery() as nursery:

            async def attempt(candidate: PeerAddress) -> None:
                try:
                    target = await self.target(candidate, None)
                    conn, fresh = await self.retrying(lambda: self.connect_target(*target))
                except Exception as exc:
                    exc.add_note(f"qp2p_trio: {'relayed' if candidate.relay else 'direct'}")
                    errors.append(exc)
                    return
                if won:
                    if fresh and conn is not won[0]:
                        conn.close_locally(CloseCode.NO_ERROR, "the other path won")
                    return
                won.append(conn)
                nursery.cancel_scope.cancel("race_paths: a path won")

            for candidate in candidates:
                nursery.start_soon(attempt, candidate)
        if won:
            return won[0]
        group = ExceptionGroup("both paths failed", errors)
        raise ConnectError(f"{peer} could be reached neither directly nor relayed") from group

    async def target(
        self, peer: Peer, node_id: NodeId | None
    ) -> tuple[Address, Address, NodeId | None]:
        """Resolve a `Peer` to (pool key, wire address, expected node id)."""
        if node_id is not None and not isinstance(node_id, NodeId):
            raise TypeError(f"node_id must be a NodeId, got {type(node_id).__name__}")
        if isinstance(peer, str):
            peer = PeerAddress.parse(peer)
        if isinstance(peer, PeerAddress):
            if node_id is not None and node_id != peer.node_id:
                raise ValueError("node_id contradicts the PeerAddress's node id")
            node_id = peer.node_id
            if peer.address is None:
                assert peer.relay is not None  # a PeerAddress has one or the other
                if self.relays is None:  # pragma: no cover - the endpoint sets it
                    raise ValueError("this endpoint cannot use relays")
                path = await self.relays.path_for(peer.relay)
                wire = path.address_of(node_id)
                return wire, wire, node_id
            address: Address = peer.address
        elif isinstance(peer, NodeId):
            if node_id is not None and node_id != peer:
                raise ValueError("node_id contradicts the peer's node id")
            node_id = peer
            pooled = self._pool.peer(peer)
            relay = self.relay_for(peer) if pooled is None else None
            if relay is not None:  # its direct path died (`_pathkeeper`)
                return await self.target(PeerAddress(peer, relay=relay), None)
            known = pooled.peer_address if pooled is not None else self._pool.known_address(peer)
            if known is None:
                raise ValueError(f"no known address for peer {peer.short()}")
            address = known
        else:
            address = peer
        wire = await self.resolve(address)
        key = self._driver.present_address(wire)[:2]
        return key, wire, node_id

    async def connect_target(
        self, key: Address, wire: Address, node_id: NodeId | None
    ) -> tuple[Connection, bool]:
        """`connect_once`; through a relay, fail fast if the relay does not know the peer.

        Raises:
            PeerNotAtRelay: the relay answered that it has no such peer (not
                retried: `NoRetry`).
        """
        path = self.relays.path_named(str(wire[1])) if self.relays and len(wire) == 2 else None
        if path is None or node_id is None:
            return await self.connect_once(key, wire, node_id)
        raw, since = node_id.raw, trio.current_time()
        result: list[tuple[Connection, bool]] = []
        async with trio.open_nursery() as nursery:

            async def dial() -> None:
                result.append(await self.connect_once(key, wire, node_id))
                nursery.cancel_scope.cancel()

            nursery.start_soon(dial)
            while path.unreachable.get(raw, -math.inf) < since:
                await path.unreachable_changed.wait()
            nursery.cancel_scope.cancel()
        if result:
            return result[0]
        raise NoRetry(PeerNotAtRelay(f"the relay {path.relay} has no peer {node_id} registered"))

    async def dial_beside(self, address: Address, node_id: NodeId) -> Connection | None:
        """One direct handshake to ``address``, even if the pool holds a connection
        to ``node_id`` (hole punching); the connection, or None if it failed."""
        try:
            wire = await self.resolve(address)
            conn = self._driver.dial(wire, node_id)
        except (ValueError, TypeError, RuntimeError):
            return None
        try:
            with trio.move_on_after(self._config.handshake_timeout):
                await conn.wait_established()
            if conn.established_event.is_set() and not conn.is_closed:
                return conn
        except QP2PError:
            pass
        finally:
            if not conn.established_event.is_set():
                conn.close_locally(CloseCode.NO_ERROR, "hole punching gave up")
        return None

    async def connect_once(
        self, key: Address, wire: Address, node_id: NodeId | None
    ) -> tuple[Connection, bool]:
        """One attempt: a pool hit, a shared pending dial, or a new one.

        Returns the connection and whether this call alone dialled it.
        """
        self._check_open()
        pooled = self._pool.lookup(key, node_id)
        tally = self._driver.tally
        if pooled is not None:
            tally.pool_hits += 1
            await trio.lowlevel.checkpoint()
            return pooled, False
        tally.pool_misses += 1
        pending_key = (key, node_id)
        attempt = self._pool.pending.get(pending_key)
        if attempt is None:
            conn = self._driver.dial(wire, node_id)
            attempt = Attempt(conn, trio.current_time() + self._config.handshake_timeout)
            self._pool.pending[pending_key] = attempt
        else:
            attempt.shared = True
        conn = attempt.conn
        attempt.waiters += 1
        try:
            with trio.move_on_at(attempt.deadline):
                await _addressed(conn.wait_established(), key)
            if not conn.established_event.is_set() and not attempt.timed_out:
                attempt.timed_out = True
                conn.fail_handshake(
                    ConnectError(
                        f"no answer from {_describe(key, node_id)} within "
                        f"{self._config.handshake_timeout} s (Config.handshake_timeout)"
                    )
                )
            await _addressed(conn.wait_established(), key)
        finally:
            attempt.waiters -= 1
            if self._pool.pending.get(pending_key) is attempt and (
                attempt.waiters == 0 or conn.established_event.is_set()
            ):
                del self._pool.pending[pending_key]
            if attempt.waiters == 0 and not conn.established_event.is_set():
                conn.close_locally(CloseCode.NO_ERROR, "connect abandoned")
        kept = conn.replacement or conn
        return kept, kept is conn and not attempt.shared

    async def retrying(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``fn``; retry its transient failures under `Config.retry`."""
        policy = self._config.retry
        start = trio.current_time()
        if policy is None:
            try:
                return await _final(fn)
            except ConnectError as exc:
                _count(exc, 1, trio.current_time() - start)
                raise
        delays = policy.delays(self._rng)
        tries = 0
        while True:
            tries += 1
            try:
                return await fn()
            except NoRetry as wrapped:
                if isinstance(wrapped.error, ConnectError):
                    _count(wrapped.error, tries, trio.current_time() - start)
                raise wrapped.error from None
            except Exception as exc:
                elapsed = trio.current_time() - start
                if isinstance(exc, ConnectError):
                    _count(exc, tries, elapsed)
                if not transient(exc):
                    raise
                delay = next(delays)
                if elapsed + delay > policy.max_elapsed:
                    exc.add_note(
                        f"qp2p_trio: gave up after {tries} attempts over {elapsed:.1f} s "
                        "(Config.retry)"
                    )
                    raise
                _log.info("attempt %d failed (%s); retrying in %.2f s", tries, exc, delay)
                self._driver.tally.retries += 1
            await trio.sleep(delay)


class NoRetry(Exception):
    """Carries an error that must not be retried out of `Endpoint._retrying`."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _final(fn: Callable[[], Awaitable[_T]]) -> _T:
    try:
        return await fn()
    except NoRetry as wrapped:
        raise wrapped.error from None


def _count(exc: ConnectError, attempts: int, elapsed: float) -> None:
    """Record on ``exc`` how many attempts it ended and how long they took."""
    exc.attempts = attempts
    exc.elapsed = elapsed


async def _addressed(wait: Awaitable[None], key: Address) -> None:
    """Await ``wait``; a `ConnectError` it raises names ``key`` if it named no address."""
    try:
        await wait
    except ConnectError as exc:
        if not exc.addresses:
            exc.addresses = (key,)
        raise


def _describe(key: Address, node_id: NodeId | None) -> str:
    """A peer as an error message names it: ``<node id>@host:port`` or ``host:port``."""
    host = f"[{key[0]}]" if ":" in str(key[0]) else str(key[0])
    where = f"{host}:{key[1]}" if len(key) > 1 else str(key)
    return f"{node_id}@{where}" if node_id is not None else where
