# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The relay service: forwards QUIC datagrams between registered peers.

Theory of operation
-------------------
An endpoint with `Config.relay` registers the ``qp2p/relay/1`` protocol
(`_relayframe`).  A peer that opens a stream for it is *registered* under
the node id it proved in the TLS handshake of that connection: the trust
policy of the relay admitted it already (a relay serves only the peers it
admits), and nobody can register another's id.  A second stream from the
same peer replaces the first.

Each frame a client sends names a destination; the relay rewrites the node
id to the source's and queues the frame on the destination's stream.  The
relay never decrypts anything: the body is a QUIC datagram of a connection
between the two peers, encrypted end to end.  What does not fit is dropped
and counted, like a full UDP queue, and never blocks anyone else:

- a source over its rate (`Config.relay_peer_rate` bytes a second, a burst
  of one second) loses the frame;
- a destination with `Config.relay_peer_buffer` bytes queued (it reads
  slowly, or not at all) loses the frame: only its own traffic suffers;
- a frame for an id nobody registered is dropped and answered with one
  UNREACHABLE a second at most, so the source's dial fails fast;
- a frame declaring more than `Config.relay_max_datagram` bytes is a
  violation: that client's stream is reset (``MALFORMED``);
- past `Config.relay_max_peers` registered peers, new ones are reset with
  ``BUSY``.

Each client costs one protocol handler task (`_protocols`, within its
per-peer share) plus one writer task.

Owns: the registered clients and their queues; the relay counters.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, final

import attrs
import trio

from . import _observe
from ._relayframe import RELAY_PROTOCOL, FrameParser, FrameType, encode_frame
from ._wire import StreamErrorCode

if TYPE_CHECKING:
    from ._config import Config
    from ._connection import Connection
    from ._protocols import ProtocolRouter
    from ._streams import BidirectionalStream

__all__ = ["RelayCounters", "RelayService"]

_log = _observe.get_logger("relay")
E = StreamErrorCode
#: UNREACHABLE answers remembered per client (to send one a second per id).
_UNREACHABLE_MEMORY = 64


@attrs.define
class RelayCounters:
    """What a relay did (all zero on an endpoint that is not one)."""

    relay_clients: int = 0
    relay_frames_forwarded: int = 0
    relay_bytes_forwarded: int = 0
    relay_dropped_rate: int = 0
    relay_dropped_buffer: int = 0
    relay_dropped_unknown_peer: int = 0
    relay_clients_refused: int = 0
    relay_clients_malformed: int = 0


@final
class _Client:
    __slots__ = ("buffered", "node", "out", "stamp", "stream", "tokens", "unreachable", "wake")

    def __init__(self, node: bytes, stream: BidirectionalStream, tokens: float) -> None:
        self.node = node
        self.stream = stream
        self.out: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.wake = trio.Event()
        self.tokens = tokens
        self.stamp = trio.current_time()
        self.unreachable: dict[bytes, float] = {}

    def push(self, frame: bytes, limit: int) -> bool:
        if self.buffered + len(frame) > limit:
            return False
        self.out.append(frame)
        self.buffered += len(frame)
        self.wake.set()
        return True


@final
class RelayService:
    """Registered relay clients and the forwarding between them (see module doc)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self.clients: dict[bytes, _Client] = {}
        self.counters = RelayCounters()
        #: Set (and replaced) whenever a client registers or leaves.
        self.changed = trio.Event()

    def _changed(self) -> None:
        self.counters.relay_clients = len(self.clients)
        self.changed.set()
        self.changed = trio.Event()

    def install(self, router: ProtocolRouter) -> None:
        """Serve ``qp2p/relay/1`` streams from now on."""
        router.register(RELAY_PROTOCOL, self.handle, internal=True)

    async def handle(self, conn: Connection, stream: BidirectionalStream) -> None:
        """Serve one client's relay stream until it ends (a protocol handler)."""
        config = self._config
        node = bytes(conn.peer_id)
        counters = self.counters
        old = self.clients.get(node)
        if old is None and len(self.clients) >= config.relay_max_peers:
            counters.relay_clients_refused += 1
            stream.reset(E.BUSY)
            return
        if old is not None:
            old.stream.reset(E.CANCELLED)  # the newer stream wins
        client = _Client(node, stream, float(config.relay_peer_rate))
        self.clients[node] = client
        self._changed()
        _log.debug("relay client %s registered (%r)", conn.peer_id.short(), conn)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, client)
                await self._read(client)
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away or was replaced
        finally:
            if self.clients.get(node) is client:
                del self.clients[node]
            self._changed()

    async def _read(self, client: _Client) -> None:
        parser = FrameParser(self._config.relay_max_datagram)
        async for chunk in client.stream:
            try:
                frames = parser.feed(bytes(chunk))
            except ValueError as exc:
                self.counters.relay_clients_malformed += 1
                _log.info("relay client sent a bad frame (%s): stream reset", exc)
                client.stream.reset(E.MALFORMED)
                return
            for frame in frames:
                if frame.type == FrameType.DATAGRAM:
                    self._forward(client, frame.node, frame.body)

    def _forward(self, source: _Client, dest: bytes, body: bytes) -> None:
        counters = self.counters
        config = self._config
        now = trio.current_time()
        rate = config.relay_peer_rate
        source.tokens = min(float(rate), source.tokens + (now - source.stamp) * rate)
        source.stamp = now
        if source.tokens < len(body):
            counters.relay_dropped_rate += 1
            return
        source.tokens -= len(body)
        target = self.clients.get(dest)
        if target is None:
            counters.relay_dropped_unknown_peer += 1
            sent = source.unreachable.get(dest)
            if sent is None or now - sent >= 1.0:
                if len(source.unreachable) >= _UNREACHABLE_MEMORY:
                    source.unreachable.clear()
                source.unreachable[dest] = now
                source.push(encode_frame(FrameType.UNREACHABLE, dest), config.relay_peer_buffer)
            return
        if target.push(
            encode_frame(FrameType.DATAGRAM, source.node, body), config.relay_peer_buffer
        ):
            counters.relay_frames_forwarded += 1
            counters.relay_bytes_forwarded += len(body)
        else:
            counters.relay_dropped_buffer += 1

    @staticmethod
    async def _write(client: _Client) -> None:
        while True:
            if not client.out:
                await client.wake.wait()
                client.wake = trio.Event()
                continue
            data = b"".join(client.out)
            client.out.clear()
            client.buffered = 0
            await client.stream.send_all(data)
