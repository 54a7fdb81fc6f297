# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A hostile QUIC peer built on aioquic directly, for the hostile-peer tests.

`HostilePeer` is a client that speaks just enough of our protocol to get in
(a real identity and certificate, our ALPN, optionally a CONTROL stream
with SETTINGS) and then does whatever a test tells it to with the raw
aioquic `QuicConnection`: STOP_SENDING on a control stream, half-sent
messages, streams it never reads, no flow-control credit, a foreign ALPN
list or a doctored TLS context (``configure_tls``).  It runs on a
`MemoryNetwork` (pass the network) or on real loopback UDP (pass ``None``).

Usage::

    async with HostilePeer.open(network, "127.0.0.66", server.local_address) as evil:
        await evil.handshake()
        evil.open_control()
        sid = evil.quic.get_next_available_stream_id(is_unidirectional=True)
        evil.quic.send_stream_data(sid, _wire.encode_message_head(K.MESSAGE, 100))
        await evil.flush()
"""

from __future__ import annotations

import math
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
from aioquic.quic import events as qe
from aioquic.quic.connection import QuicConnection

import qp2p_trio
from qp2p_trio import _quic, _wire
from qp2p_trio._certs import make_certificate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from aioquic import tls

    from qp2p_trio.testing import MemoryNetwork

K = _wire.StreamKind


class _Connection(QuicConnection):
    """aioquic's client connection, with a hook on its TLS context before the ClientHello."""

    def __init__(self, *, configure_tls: Callable[[tls.Context], None] | None, **kw: Any) -> None:
        super().__init__(**kw)
        self._configure_tls = configure_tls

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if self._configure_tls is not None:
            self._configure_tls(self.tls)


class HostilePeer:
    """One aioquic client connection, pumped by a background task (see module doc)."""

    def __init__(
        self,
        sock: Any,
        target: tuple[Any, ...],
        *,
        identity: qp2p_trio.Identity | None,
        alpn: str | Sequence[str],
        config: qp2p_trio.Config,
        configure_tls: Callable[[tls.Context], None] | None = None,
        token: bytes = b"",
    ) -> None:
        self.sock = sock
        self.target = target
        self.identity = identity or qp2p_trio.Identity.generate()
        cert, key = make_certificate(self.identity, now=time.time())
        conf = _quic.build_configuration(config, is_client=True, certificate=cert, private_key=key)
        conf.alpn_protocols = [alpn] if isinstance(alpn, str) else list(alpn)
        conf.token = token  # an address-validation token to present, if any
        self.quic: QuicConnection = _Connection(configuration=conf, configure_tls=configure_tls)
        self.events: list[qe.QuicEvent] = []
        self.stream_data: dict[int, bytearray] = {}
        self.stream_fin: set[int] = set()
        self.datagrams_received = 0
        #: When False the pump stops reading: the peer goes silent (no ACKs).
        self.reading = True
        self._changed = trio.Event()
        self._send_lock = trio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        network: MemoryNetwork | None,
        host_ip: str,
        target: tuple[Any, ...],
        *,
        identity: qp2p_trio.Identity | None = None,
        alpn: str | Sequence[str] = qp2p_trio.ALPN,
        config: qp2p_trio.Config | None = None,
        configure_tls: Callable[[tls.Context], None] | None = None,
        token: bytes = b"",
    ) -> AsyncIterator[HostilePeer]:
        """Bind a socket on ``host_ip`` and pump one client connection to ``target``.

        ``alpn``: the protocol (or list) offered.  ``configure_tls`` is called
        with aioquic's TLS context once it exists, before the ClientHello is
        built (for example to change its signature algorithms).
        """
        if network is not None:
            # Several peers may share a host (an address with many sockets).
            known = [h for h in network.hosts if h.v4 == host_ip]
            host = known[0] if known else network.add_host(host_ip)
            with network.use_host(host):
                sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        else:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind((host_ip, 0))
            peer = cls(
                sock,
                tuple(target),
                identity=identity,
                alpn=alpn,
                config=config or qp2p_trio.Config(),
                configure_tls=configure_tls,
                token=token,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peer._pump)
                try:
                    yield peer
                finally:
                    nursery.cancel_scope.cancel()

    # ------------------------------------------------------------- driving
    async def flush(self) -> None:
        """Send whatever aioquic has queued, now."""
        async with self._send_lock:
            for data, addr in self.quic.datagrams_to_send(now=trio.current_time()):
                await self.sock.sendto(data, addr)
        self._drain_events()

    def _drain_events(self, changed: bool = False) -> None:
        """Record aioquic's events; wake `wait_for` if any (or if ``changed``)."""
        while (ev := self.quic.next_event()) is not None:
            changed = True
            self.events.append(ev)
            if isinstance(ev, qe.StreamDataReceived):
                self.stream_data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                if ev.end_stream:
                    self.stream_fin.add(ev.stream_id)
        if changed:
            self._changed.set()
            self._changed = trio.Event()

    async def _pump(self) -> None:
        while True:
            timer = self.quic.get_timer()
            deadline = timer if timer is not None else math.inf
            received = False
            with trio.move_on_at(deadline):
                data, addr = await self.sock.recvfrom(65536)
                if self.reading:
                    self.datagrams_received += 1
                    self.quic.receive_datagram(data, addr, now=trio.current_time())
                    received = True
            timer = self.quic.get_timer()
            if timer is not None and timer <= trio.current_time():
                self.quic.handle_timer(now=max(timer, trio.current_time()) + 1e-6)
            # Input can change state without an event (a CONNECTION_CLOSE is
            # only reported after 3 PTOs): let waiters look again.
            self._drain_events(changed=received)
            await self.flush()

    async def wait_for(self, predicate: Callable[[], bool], limit: float = 30.0) -> None:
        """Wait (bounded, virtual seconds under MockClock) until ``predicate()`` holds."""
        with trio.fail_after(limit):
            while not predicate():
                await self._changed.wait()

    # ------------------------------------------------------------ protocol
    async def handshake(self) -> None:
        """Connect and wait for TLS to complete (the server verifies us after)."""
        await self.start_handshake()
        await self.wait_for(self.handshake_completed)

    async def start_handshake(self) -> int:
        """Connect: send the first flight; returns how many datagrams it took."""
        self.quic.connect(self.target, now=trio.current_time())
        async with self._send_lock:
            out = self.quic.datagrams_to_send(now=trio.current_time())
            for data, addr in out:
                await self.sock.sendto(data, addr)
        self._drain_events()
        return len(out)

    def handshake_completed(self) -> bool:
        return any(isinstance(e, qe.HandshakeCompleted) for e in self.events)

    def terminated(self) -> qe.ConnectionTerminated | None:
        for e in self.events:
            if isinstance(e, qe.ConnectionTerminated):
                return e
        return None

    def close_code(self) -> int | None:
        """The error code of the CONNECTION_CLOSE we received (before 3 PTOs pass)."""
        ev = self.quic._close_event
        return None if ev is None else ev.error_code

    def open_control(self, *, max_message_size: int = 16 * 1024 * 1024) -> int:
        """Open our CONTROL stream with SETTINGS, as an honest peer does."""
        sid = self.quic.get_next_available_stream_id(is_unidirectional=True)
        self.quic.send_stream_data(
            sid,
            _wire.encode_control_preamble()
            + _wire.encode_settings(max_message_size=max_message_size, incarnation=1),
        )
        return sid

    def peer_control_sid(self) -> int | None:
        """The server's CONTROL stream id, once its preamble arrived."""
        head = _wire.encode_control_preamble()
        for sid, data in self.stream_data.items():
            if sid & 2 and bytes(data[: len(head)]) == head:
                return sid
        return None

    def grant_no_credit(self) -> None:
        """Never raise a flow-control limit again (still acknowledging packets)."""
        self.quic._write_stream_limits = lambda *args, **kwargs: None  # type: ignore[method-assign]
        self.quic._write_connection_limits = lambda *args, **kwargs: None  # type: ignore[method-assign]

    async def close(self, error_code: int = 0, reason: str = "") -> None:
        """Send our CONNECTION_CLOSE (an application close) now."""
        self.quic.close(error_code=error_code, reason_phrase=reason)
        await self.flush()

    def start_message(self, kind: _wire.StreamKind, length: int, body: bytes = b"") -> int:
        """Open a stream with a MESSAGE or REQUEST head and some of its payload (no FIN)."""
        sid = self.quic.get_next_available_stream_id(is_unidirectional=kind is K.MESSAGE)
        self.quic.send_stream_data(sid, _wire.encode_message_head(kind, length) + body)
        return sid

    def send_message(self, kind: _wire.StreamKind, payload: bytes) -> int:
        """A whole MESSAGE or REQUEST, FIN included."""
        sid = self.quic.get_next_available_stream_id(is_unidirectional=kind is K.MESSAGE)
        self.quic.send_stream_data(
            sid, _wire.encode_message_head(kind, len(payload)) + payload, end_stream=True
        )
        return sid


async def honest_round_trip(
    client: qp2p_trio.Endpoint, server: qp2p_trio.Endpoint, *, limit: float = 5.0
) -> float:
    """An honest peer connects and gets a message through; returns the virtual time taken.

    Fails if it takes more than ``limit`` (virtual) seconds.
    """
    start = trio.current_time()
    with trio.fail_after(limit):
        conn = await client.connect(server.local_address, node_id=server.node_id)
        await conn.send(b"honest")
        msg = await server.receive()
    assert msg.payload == b"honest"
    return trio.current_time() - start
