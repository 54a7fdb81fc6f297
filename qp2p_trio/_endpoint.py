# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The endpoint: the public facade over one UDP socket and its connections.

Theory of operation
-------------------
`open_endpoint` binds a UDP socket and runs the `_driver.Driver` (a receive
task and a send task) in the endpoint's nursery.  The `Endpoint` is the
public API and little more: dialling is `_dial.Dialer`'s (resolving peers,
shared handshakes, the race, retries), the pool of connections by node id
and address is `_pool.Pool`'s, peer events are `_events.EventHub`'s, and
everything that touches the socket, the timers, admission and the receive
budget is the driver's.  The endpoint owns the lifecycle: the background
tasks' shielded cancel scope and the graceful shutdown that closes every
connection, also when the code around `open_endpoint` is cancelled.
"""

from __future__ import annotations

import ipaddress
import socket as _stdlib_socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, final

import attrs
import trio

from ._config import Config
from ._dial import Dialer, NoRetry, Peer
from ._driver import Driver
from ._endpointnat import EndpointNat, new_port_mapper
from ._endpointstats import EndpointStatistics
from ._errors import (
    ConnectionClosed,
    EndpointError,
)
from ._events import EventHub, PeerEvents
from ._identity import Identity, NodeId
from ._lazy import LazyRandom
from ._metrics import EndpointMetrics, snapshot
from ._observe import get_logger
from ._pathkeeper import PathKeeper
from ._peer import PeerAddress
from ._peercache_io import PeerCacheStore
from ._pool import Pool
from ._punch import Puncher
from ._quic import Address
from ._reach import ReachService, candidates
from ._reachcore import check_address
from ._relay import RelayService
from ._relaypath import RelayManager
from ._serve import serve_messages
from ._streamio import SendOutcome, payload_view
from ._util import NoPublicConstructor, unwrap_group
from ._wire import CloseCode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

    from ._connection import Connection
    from ._message import Message
    from ._portmap_io import PortMapper
    from ._reachcore import ReachabilityResult
    from ._streams import BidirectionalStream
    from ._trust import Trust


__all__ = ["Address", "Endpoint", "EndpointStatistics", "Peer", "open_endpoint"]

_log = get_logger("endpoint")


_SOCKET_BUFFER = 4 * 1024 * 1024
_TIMER_SLACK = 1e-6
#: At most this many datagrams are sent straight from a user call (`_flush`).
_DIRECT_MAX = 4


@final
class Endpoint(EndpointNat, metaclass=NoPublicConstructor):
    """A QUIC endpoint: one UDP socket serving many connections, as client and server.

    Get one from `open_endpoint`; it has no public constructor.
    """

    def __init__(self, sock: trio.socket.SocketType, config: Config, identity: Identity) -> None:
        self._sock = sock
        self._config = config
        self._identity = identity
        self._hub = EventHub()
        self._pool = Pool(identity.node_id, self._hub)
        self._driver = Driver(sock, config, identity, self._pool)
        self._local_address: Address = self._driver.present_address(sock.getsockname())
        # Jitter of retries: reproducible per identity.
        rng = LazyRandom(bytes(identity.node_id))  # seeded once a dial retries
        self._dialer = Dialer(self._driver, self._pool, config, rng)
        self._relays = RelayManager(
            config, self._connect_relay, self._driver.attach_path, self._driver.protocols.spawn, rng
        )
        self._dialer.relays = self._relays
        self._relay_service: RelayService | None = None
        self._reach = ReachService(config, self._driver, self._local_address)
        self._puncher = Puncher(
            lambda: self._reach.offered(self.external_addresses(), self.connections()),
            self._dialer.dial_beside,
            self._driver.protocols.spawn,
        )
        if config.hole_punching:
            self._puncher.install(self._driver.protocols)
        self._keeper = PathKeeper(self._hub, self._puncher, self.connect, config.hole_punching)
        self._dialer.relay_for = self._keeper.relay_for
        if config.relay:
            self._relay_service = RelayService(config)
            self._relay_service.install(self._driver.protocols)
        # Shielded: when the code around `open_endpoint` is cancelled, the
        # tasks still carry `_shutdown`'s closes to the peers; it cancels them.
        self._bg_scope = trio.CancelScope(shield=True)
        self._portmapper: PortMapper | None = None  # set by open_endpoint (Config.port_mapping)
        self._peer_cache = PeerCacheStore(config.peer_cache, self._driver.wall_clock)

    # ------------------------------------------------------------ properties
    @property
    def local_address(self) -> Address:
        """The socket address this endpoint is bound to."""
        return self._local_address

    @property
    def peer_address(self) -> PeerAddress:
        """This endpoint as peers name it: ``<node-id>@host:port``.

        The host is the bound one; for a wildcard bind (``0.0.0.0``, ``::``)
        peers need a concrete address of this machine instead.  With a home
        relay (`Config.home_relay`) the address names it too
        (``<node-id>@host:port/via/<relay>``): peers that cannot reach the
        address come through the relay.  (Names: ``peer``/``peer_address``
        mean a `PeerAddress`, ``*_address`` alone a socket address:
        `local_address` here, `Connection.remote_address`.)
        """
        return PeerAddress(self.node_id, self._local_address[:2], relay=self._config.home_relay)

    @property
    def node_id(self) -> NodeId:
        """This endpoint's node id (the public key of its identity)."""
        return self._identity.node_id

    @property
    def identity(self) -> Identity:
        """This endpoint's identity (its key pair)."""
        return self._identity

    @property
    def trust(self) -> Trust:
        """Which peers this endpoint admits: its allow-list and deny-list (see `Trust`).

        Changes apply at once, to new connections and to live ones.
        """
        return self._driver.gate.trust

    @property
    def config(self) -> Config:
        """The configuration this endpoint runs with."""
        return self._config

    def __repr__(self) -> str:
        return f"<qp2p_trio.Endpoint {self.node_id.short()} at {self._local_address!r}>"

    def statistics(self) -> EndpointStatistics:
        """Return an immutable snapshot of this endpoint's counters."""
        driver = self._driver
        counts = attrs.asdict(driver.counters) | attrs.asdict(driver.admission.counters)
        counts |= attrs.asdict(driver.protocols.counters)
        if self._relay_service is not None:
            counts |= attrs.asdict(self._relay_service.counters)
        counts |= self._relays.gauges()  # relay_paths_dropped, _up...
        counts |= attrs.asdict(self._puncher.counters) | attrs.asdict(self._reach.counters)
        counts["reach_probes_received"] = driver.probes.received
        counts |= attrs.asdict(self._keeper.counters)
        counts["send_errors"] += driver.transport.send_errors
        counts["receive_errors"] += driver.transport.receive_errors
        return EndpointStatistics(
            connections=len(driver.live),
            connections_closing=len(driver.connections) - len(driver.live),
            pooled=len(self._pool.connections()),
            peers_refused=driver.gate.refused,
            admission_hook_failures=driver.gate.hook_failures,
            **counts,
        )

    # ---------------------------------------------------------- reachability
    async def check_reachability(
        self, address: Address | None = None, *, peers: Iterable[Peer] | None = None
    ) -> list[ReachabilityResult]:
        """Ask peers to dial back this endpoint's addresses: can strangers reach them?

        For each address (``address``, else those of `external_addresses` at
        an IP peers see us at, at most 8), up to three peers in turn are asked over
        ``qp2p/reach/1`` to send a dial-back probe carrying a random nonce;
        only peers with `Config.serve_reachability_checks` answer.  The
        verdict rests on what arrives, never on a peer's word: REACHABLE
        needs our nonce from an IP we have not sent to lately (so an
        address-dependent filtering NAT never yields it), UNREACHABLE that
        the peer says it sent and nothing came; anything else is UNKNOWN.
        Verdicts are kept for ten minutes and shown by `external_addresses`.
        Takes up to about 7 s per peer asked.

        Args:
            address: the ``(ip, port)`` to check; a peer dials back only the
                IP it sees us at.  ``None``: all our external addresses.
            peers: the peers to ask (connected first, as `connect` does);
                ``None``: the peers we have direct connections to.

        Returns:
            One `ReachabilityResult` per address, in order.

        Raises:
            ConnectError: a peer of ``peers`` could not be connected.
            trio.ClosedResourceError: the endpoint is closed.
            ValueError, TypeError: a malformed ``address``.

        Cancellation: stops at once; nothing is left waiting.
        """
        self._check_open()
        if address is not None:
            address = check_address(address)
        servers = [await self.connect(p) for p in peers] if peers is not None else []
        if peers is None:
            servers = [c for c in self.connections() if c.path == "direct"]
        if address is not None:
            return await self._reach.check_all([address], servers)
        return await self._reach.check_all(candidates(self.external_addresses()), servers)

    def metrics(self) -> EndpointMetrics:
        """Return an immutable snapshot of what an operator watches (see `EndpointMetrics`).

        `statistics` and more: connections opened and closed, handshakes
        failed, messages and bytes, refusals by code, pool hits, retries, and
        gauges of what is buffered.  Costs a pass over the live connections.
        """
        driver = self._driver
        return snapshot(driver.tally, self.statistics(), driver.live, driver.budget)

    # ---------------------------------------------------------- connections
    async def connect(self, peer: Peer, *, node_id: NodeId | None = None) -> Connection:
        """Return a verified connection to ``peer``, pooled: opened only if needed.

        If the pool holds a live connection to that peer (by node id, or by
        address), it is returned at once and nothing is sent.  Otherwise a
        handshake starts; concurrent calls for the same peer share it (a
        cancelled caller leaves; the others keep waiting).  Both sides prove
        their node id during the TLS 1.3 handshake; with a node id given, a
        peer holding another key is refused and nothing is kept.

        Transient failures (no answer within `Config.handshake_timeout`, the
        peer refusing for a limit) are retried under `Config.retry`.

        Args:
            peer: ``(host, port)`` (IPv6: also a 4-tuple), a `PeerAddress`
                or its text ``"<node-id>@host:port"``, or a `NodeId` met before
                or held by `Config.peer_cache` (its address and relay raced).
            node_id: the node id the peer must prove (implied by a
                `PeerAddress`), or ``None`` to accept any.

        Returns:
            The established connection (after a simultaneous open, the one
            both peers keep).

        Raises:
            PeerIdentityError: the peer proved another node id (a `HandshakeError`).
            HandshakeError: TLS failed (for example the peer speaks another ALPN).
            ConnectRefused: the peer refused the connection for a limit, every time.
            ConnectError: no answer, every time, until `Config.retry` gave up.
            trio.ClosedResourceError: the endpoint is closed.
            ValueError, TypeError: a malformed address or node id, or a
                `NodeId` whose address is unknown.

        Cancellation: stops at once.  A handshake nobody waits for any more
        is closed (the peer gets a CONNECTION_CLOSE) and forgotten.
        """
        self._check_open()
        dialer = self._dialer
        if isinstance(peer, str):
            peer = PeerAddress.parse(peer)
        peer = self._peer_cache.dial(peer, self._pool, one_path=False)
        if isinstance(peer, PeerAddress) and peer.relay is not None and peer.address is not None:
            conn = await dialer.race_paths(peer, node_id)
        else:
            target = await dialer.target(peer, node_id)
            conn, _fresh = await dialer.retrying(lambda: dialer.connect_target(*target))
        return conn  # a relayed one we dialled punches (`_pathkeeper`)

    async def _connect_relay(self, relay: PeerAddress) -> Connection:
        return await self.connect(relay)

    async def connect_to_any(self, candidates: Iterable[Peer]) -> Connection:
        """Dial every candidate at once and return the first verified connection.

        The attempts run in one nursery; as soon as one handshake completes
        and its peer is verified, the others are cancelled: their half-open
        QUIC connections are closed and forgotten before this returns, and no
        task is left behind.  A candidate that never answers cannot delay the
        result once another one won.  With `Config.race_stagger` > 0 the
        attempts start that many seconds apart (happy-eyeballs style), the
        next one at once when the previous fails.  A candidate already
        connected in the pool wins without any packet.  No retries: the race
        is the fault tolerance.

        Args:
            candidates: peers as `connect` takes them (a `PeerAddress` or its
                text form verifies the node id, a bare address accepts any).

        Raises:
            ConnectError: every attempt failed; ``__cause__`` is an
                `ExceptionGroup` with each attempt's error, in candidate order.
            ValueError: no candidates, or a malformed one.
            trio.ClosedResourceError: the endpoint is closed.

        Cancellation: every attempt is cancelled and cleaned up as above.
        """
        self._check_open()
        return await self._dialer.connect_to_any(candidates)

    def connections(self) -> list[Connection]:
        """The live pooled connections, one per connected peer."""
        return self._pool.connections()

    def events(self) -> PeerEvents:
        """Subscribe to peer events: `Connected` and `Disconnected`.

        The subscription sees every event from now on, per peer (a second
        connection to a connected peer is no event).  Iterate it with
        ``async for``; close it with ``async with`` or `PeerEvents.aclose`.
        Each subscriber buffers `Config.event_queue_size` events; past it,
        events are dropped for that subscriber (`PeerEvents.dropped`).

        Example::

            async with ep.events() as events:
                async for event in events:
                    print(event)
        """
        self._check_open()
        return PeerEvents(self._hub, self._config.event_queue_size)

    async def send(
        self, peer: Peer, payload: bytes | bytearray | memoryview, *, priority: int = 0
    ) -> None:
        """Send a message to ``peer`` on its pooled connection (opened if needed).

        Like `Connection.send`, and retried under `Config.retry` when the
        connection fails or the peer is busy, on a fresh connection if need
        be.  A message the peer's QUIC stack acknowledged in full is never
        sent again (the peer may have it): that failure is raised instead.

        Args:
            peer: as for `connect`.
            payload: the message.
            priority: as for `Connection.send`.

        Raises:
            MessageTooLarge: over the peer's `Config.max_message_size` (never retried).
            MessageRefused: the peer kept refusing it (busy) until retries ran out.
            ConnectionClosed: the connection died after the peer acknowledged
                every byte, or until retries ran out.
            ConnectError: (or a subclass) as for `connect`.
            trio.ClosedResourceError: the endpoint is closed.

        Cancellation: as for `Connection.send`; retrying stops at once.
        """
        view = payload_view(payload)
        self._check_open()
        dialer = self._dialer
        target = await dialer.target(self._peer_cache.dial(peer, self._pool, one_path=True), None)

        async def once() -> None:
            conn, _ = await dialer.connect_once(*target)
            outcome = SendOutcome()
            try:
                await conn.send_message(view, outcome, priority=priority)
            except ConnectionClosed as exc:
                if outcome.acked:
                    exc.add_note(
                        "qp2p_trio: the peer acknowledged every byte before the connection "
                        "closed, so it may have the message; not sent again"
                    )
                    raise NoRetry(exc) from None
                raise

        await dialer.retrying(once)

    async def request(
        self, peer: Peer, payload: bytes | bytearray | memoryview, *, priority: int = 0
    ) -> bytes:
        """Send a request to ``peer`` on its pooled connection and return the reply.

        Like `Connection.request`, retried under `Config.retry` when the
        connection could not be made or the peer was busy.  A request whose
        connection died is not sent again (the peer may have acted on it).
        ``priority`` is as for `Connection.send`.

        Raises:
            QP2PError: the errors of `Endpoint.send`, and those of
                `Connection.request`.
        """
        view = payload_view(payload)
        self._check_open()
        dialer = self._dialer
        target = await dialer.target(self._peer_cache.dial(peer, self._pool, one_path=True), None)

        async def once() -> bytes:
            conn, _ = await dialer.connect_once(*target)
            try:
                return await conn.request(view, priority=priority)
            except ConnectionClosed as exc:
                raise NoRetry(exc) from None

        return await dialer.retrying(once)

    async def accept(self) -> Connection:
        """Wait for the next connection a peer opened to us (already verified).

        Every incoming connection is served whether or not anybody calls
        `accept`: its messages reach `receive`.  At most
        `Config.accept_queue_size` wait here; later ones are not announced
        (counted in `EndpointStatistics.connections_unannounced`).

        Raises:
            trio.ClosedResourceError: the endpoint is closed.

        Cancellation: nothing is lost.
        """
        try:
            return await self._driver.accepted.recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("the endpoint is closed") from None

    async def receive(self) -> Message:
        """Wait for the next message from any connection.

        Messages wait in a bounded queue (`Config.receive_queue_messages`,
        `Config.receive_queue_bytes`); while it is full, new messages are
        refused at their first bytes and their senders get `MessageRefused`.

        Raises:
            trio.ClosedResourceError: the endpoint is closed.

        Cancellation: nothing is lost; the message stays queued.
        """
        try:
            msg, peer, reserved = await self._driver.inbox.recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("the endpoint is closed") from None
        self._driver.budget_release(peer, 1, reserved)
        return msg

    def messages(self) -> _MessageIterator:
        """Iterate over incoming messages until the endpoint closes.

        Example::

            async for msg in ep.messages():
                if msg.expects_reply:
                    await msg.reply(msg.payload)
        """
        return _MessageIterator(self)

    async def serve(
        self,
        handler: Callable[[Message], Awaitable[bytes | bytearray | memoryview | None]],
        *,
        limit: int = 64,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer every incoming message with ``await handler(msg)``, each in its own task.

        In the style of `trio.serve_tcp`: runs until the endpoint closes (or
        you cancel it), so a slow handler delays nobody else.  For a request,
        the bytes the handler returns are the reply (`Message.reply`); ``None``
        rejects it, unless the handler answered it itself.  A request left
        unanswered because the handler raised or was cancelled is rejected.
        At most ``limit`` handlers run at once; past it no more messages are
        taken, so the receive queue fills and peers are refused with ``BUSY``.

        Example::

            async def echo(msg):
                return msg.payload

            async with trio.open_nursery() as nursery:
                await nursery.start(ep.serve, echo)

        Args:
            handler: an async function of one `Message`.
            limit: handlers running at once, at most.
            task_status: for `trio.Nursery.start`: started once serving.

        Raises:
            ValueError: ``limit`` is not an int >= 1.
            Exception: whatever a handler raises (the other handlers are
                cancelled), as `trio.serve_tcp` does.
        """
        await serve_messages(self.messages(), handler, limit=limit, task_status=task_status)

    def handle_protocol(
        self,
        name: str,
        handler: Callable[[Connection, BidirectionalStream], Awaitable[object]] | None,
    ) -> None:
        """Run ``await handler(connection, stream)`` for every stream peers open for ``name``.

        Peers open them with `Connection.open_protocol`; each handler runs in
        its own task.  When it returns the stream is closed (FIN); if it
        raises, the error is logged and the stream reset (``HANDLER_FAILED``).
        A name without a handler is refused with ``UNKNOWN_PROTOCOL``, a peer
        past `Config.protocol_handlers_per_peer` (or all past
        `Config.protocol_handlers`) with ``BUSY``.  ``handler=None`` stops
        handling ``name``.  Example::

            async def echo(conn, stream):
                async for chunk in stream:
                    await stream.send_all(chunk)

            ep.handle_protocol("example/echo/1", echo)

        Args:
            name: 1 to 64 printable ASCII characters, no spaces (by convention
                ``"<app>/<protocol>/<version>"``; ``qp2p/...`` is reserved).
            handler: an async function of a `Connection` and a
                `BidirectionalStream`, or ``None``.

        Raises:
            ValueError: a malformed or reserved name, or one with a handler.
            TypeError: ``name`` is not a str, or ``handler`` not callable.
        """
        self._driver.protocols.register(name, handler)

    async def open_protocol(self, peer: Peer, name: str) -> BidirectionalStream:
        """Connect to ``peer`` (as `connect` does) and open a stream for protocol ``name``.

        See `Connection.open_protocol` for the stream and its errors.
        """
        conn = await self.connect(peer)
        return await conn.open_protocol(name)

    async def aclose(self) -> None:
        """Close every connection gracefully and stop the endpoint.

        The peers see an application close (code 0).  Bounded by
        `Config.close_grace`.  Idempotent.  Afterwards calls raise
        `trio.ClosedResourceError`; `open_endpoint` does this on exit.

        Cancellation: the endpoint is closed all the same (peers are told).
        """
        with trio.CancelScope(shield=True):
            await self._shutdown()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._driver.closing:
            raise trio.ClosedResourceError("the endpoint is closed")

    async def _shutdown(self) -> None:
        driver = self._driver
        if driver.closed:
            await trio.lowlevel.checkpoint()
            return
        grace = self._config.close_grace
        self._peer_cache.close(self._pool.connections())  # live peers seen now; the last write
        with trio.move_on_after(grace / 2):  # while their relays still carry them
            await self._relays.close_relayed(list(driver.connections), grace / 2)
        driver.closing = driver.protocols.closing = True
        if self._portmapper is not None:  # delete the mapping while the peers still hear us
            await self._portmapper.aclose(min(grace, 2.0))
        conns = list(driver.connections)
        # Receipts already queued first (bounded), then the closes.
        with trio.move_on_after(grace / 2):
            for conn in conns:
                await conn.flush_control(grace / 2)
        for conn in conns:
            conn.close_locally(CloseCode.NO_ERROR, "endpoint closed")
        with trio.move_on_after(grace):
            for conn in conns:
                await conn.close_sent_event.wait()
        driver.closed = True
        self._bg_scope.cancel()
        driver.inbox.close()
        driver.accepted.close()
        self._hub.close()


@final
class _MessageIterator:
    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint

    def __aiter__(self) -> _MessageIterator:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self._endpoint.receive()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None


async def _bind(local_address: Address) -> trio.socket.SocketType:
    if not isinstance(local_address, tuple) or len(local_address) not in (2, 4):
        raise TypeError(f"local_address must be a (host, port) tuple, got {local_address!r}")
    host, port = local_address[0], local_address[1]
    try:
        ip = ipaddress.ip_address(host)
    except (ValueError, TypeError):
        raise ValueError(f"local_address host must be a numeric IP address, got {host!r}") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"invalid port in local_address {local_address!r}")
    family = _stdlib_socket.AF_INET6 if ip.version == 6 else _stdlib_socket.AF_INET
    sock = trio.socket.socket(family, _stdlib_socket.SOCK_DGRAM)
    try:
        if family == _stdlib_socket.AF_INET6:
            # Dual stack when bound to "::", so IPv4 peers reach us too.
            sock.setsockopt(
                _stdlib_socket.IPPROTO_IPV6,
                _stdlib_socket.IPV6_V6ONLY,
                0 if ip.is_unspecified else 1,
            )
        for opt in (_stdlib_socket.SO_RCVBUF, _stdlib_socket.SO_SNDBUF):
            try:
                sock.setsockopt(_stdlib_socket.SOL_SOCKET, opt, _SOCKET_BUFFER)
            except OSError:  # pragma: no cover - a kernel refusing a buffer size
                pass
        await sock.bind(
            (str(ip), port) if family == _stdlib_socket.AF_INET else (str(ip), port, 0, 0)
        )
    except OSError as exc:
        sock.close()
        raise EndpointError(f"cannot bind a UDP socket to {local_address!r}: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


@asynccontextmanager
async def open_endpoint(
    local_address: Address = ("0.0.0.0", 0),
    *,
    identity: Identity | None = None,
    config: Config | None = None,
) -> AsyncIterator[Endpoint]:
    """Open a QUIC endpoint: bind a UDP socket and serve connections on it.

    The socket is bound and the endpoint's tasks are running when the body
    starts.  On exit, also by cancellation, every open connection is closed
    gracefully (peers see an application close with code 0), bounded by
    `Config.close_grace`, and then the endpoint's tasks are cancelled.

    Example::

        async with qp2p_trio.open_endpoint(("127.0.0.1", 0)) as ep:
            conn = await ep.connect(peer_address, node_id=peer_id)
            await conn.send(b"hello")

    Args:
        local_address: numeric ``(host, port)`` to bind; port 0 picks a free
            port.  ``"::"`` binds a dual-stack IPv6 socket.
        identity: the node's key pair; a fresh one by default.
        config: endpoint settings; `Config()` by default.

    Raises:
        EndpointError: the socket cannot be bound, or the endpoint's
            machinery failed.
        ValueError, TypeError: a malformed argument.
    """
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        raise TypeError(f"config must be a qp2p_trio.Config, got {type(config).__name__}")
    if identity is None:
        identity = Identity.generate()
    elif not isinstance(identity, Identity):
        raise TypeError(f"identity must be a qp2p_trio.Identity, got {type(identity).__name__}")
    sock = await _bind(local_address)
    endpoint: Endpoint | None = None
    try:
        endpoint = Endpoint._create(sock, config, identity)
        try:
            async with trio.open_nursery(strict_exception_groups=True) as nursery:
                try:
                    await nursery.start(endpoint._driver.run, endpoint._bg_scope)
                    endpoint._relays.start()
                    nursery.start_soon(endpoint._peer_cache.run, endpoint.events)
                    if config.port_mapping:
                        endpoint._portmapper = new_port_mapper(config, endpoint.local_address)
                        nursery.start_soon(endpoint._portmapper.run)
                    _log.info("endpoint %s open on %r", identity.node_id, endpoint.local_address)
                    yield endpoint
                finally:
                    with trio.CancelScope(shield=True):  # cancelled too: see _bg_scope
                        try:
                            await endpoint._shutdown()
                        finally:
                            endpoint._bg_scope.cancel()
                            _log.info("endpoint %s closed", identity.node_id)
        except BaseExceptionGroup as group:
            unwrap_group(group)
    finally:
        if endpoint is not None:
            endpoint._driver.transport.close()
            endpoint._driver.observe.close()
        sock.close()
