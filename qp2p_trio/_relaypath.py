# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Relay clients: a `_path.Path` whose datagrams travel through a relay.

Theory of operation
-------------------
For each relay an endpoint uses (its home relay, `Config.home_relay`, and
the relays of peers it dials) the `RelayManager` keeps one `RelayPath`,
attached to the driver for the endpoint's life and named
``relay:<relay node id>``.  A supervisor task keeps a connection to the
relay and a ``qp2p/relay/1`` stream on it (`_relayframe`), which registers
this endpoint there; when either ends it reconnects, with exponential
backoff (0.5 s doubling to 30 s, with jitter).

A peer on the path has the path address ``(<its node id>, "relay:<id>")``.
`RelayPath.send` frames each datagram with the destination's node id and
queues it for the writer task; `RelayPath.receive_batch` hands the driver
the datagrams the reader task unframed, labelled with their source's node
id.  Both queues are bounded: what does not fit, or arrives while no
stream is up, is dropped and counted, as UDP would.  So a relayed
connection is an ordinary QUIC connection between the two peers (same TLS,
node-id check and API), and survives the relay stream being re-made.

Owns: the relay paths, their streams and queues, and the supervisors.
"""

from __future__ import annotations

import collections
import functools
from typing import TYPE_CHECKING, final

import trio

from . import _observe
from ._errors import QP2PError, RelayUnavailable
from ._identity import NodeId
from ._relayframe import RELAY_PROTOCOL, FrameParser, FrameType, encode_frame
from ._udp import BATCH, TransportClosed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._config import Config
    from ._connection import Connection
    from ._path import Path
    from ._peer import PeerAddress
    from ._quic import Address
    from ._retry import RandomSource
    from ._streams import BidirectionalStream

__all__ = ["RelayManager", "RelayPath"]

_log = _observe.get_logger("relay")

#: Bytes queued for the relay before `RelayPath.send` drops.
SEND_BUFFER = 256 * 1024
#: Datagrams received and not yet taken by the driver before more are dropped.
RECEIVE_QUEUE = 1024
#: Relays one endpoint keeps paths to.
MAX_RELAYS = 32
_BACKOFF = (0.5, 30.0)
_NAMES = 4096  # node id text <-> raw bytes cache entries


@final
class RelayPath:
    """The path through one relay (see the module docstring)."""

    def __init__(self, relay: PeerAddress, max_datagram: int) -> None:
        self._relay = relay
        self._name = f"relay:{relay.node_id}"
        self._max_datagram = max_datagram
        self._stream: BidirectionalStream | None = None
        self._out: collections.deque[bytes] = collections.deque()
        self._out_bytes = 0
        self._out_wake = trio.Event()
        self._writing = False
        self._idle = trio.Event()  # set (and replaced) whenever the writer waits
        self._in: collections.deque[tuple[bytes, Address]] = collections.deque()
        self._in_wake = trio.Event()
        self._raw: dict[str, bytes] = {}
        self._text: dict[bytes, str] = {}
        self._closed = False
        #: Set while a relay stream is up; replaced when it goes down.
        self.up = trio.Event()
        #: Outcome of the latest connection attempt: ``None`` or its error.
        self.error: Exception | None = None
        self.attempt_done = trio.Event()
        #: When the relay last said it has no such peer, by raw node id.
        self.unreachable: dict[bytes, float] = {}
        self.unreachable_changed = trio.Event()
        self.sent = 0
        self.received = 0
        self.dropped = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def relay(self) -> PeerAddress:
        """The relay this path goes through."""
        return self._relay

    def __repr__(self) -> str:
        state = "up" if self._stream is not None else "down"
        return f"<RelayPath via {self._relay} {state}>"

    def address_of(self, node_id: NodeId) -> Address:
        """The path address of ``node_id`` on this path."""
        return (str(node_id), self._name)

    # ------------------------------------------------------------- Path API
    def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> int:
        taken = 0
        for data, addr in datagrams:
            node = self._raw_of(addr)
            if (
                node is None
                or self._stream is None
                or len(data) > self._max_datagram
                or self._out_bytes + len(data) > SEND_BUFFER
            ):
                self.dropped += 1
                continue
            frame = encode_frame(FrameType.DATAGRAM, node, data)
            self._out.append(frame)
            self._out_bytes += len(frame)
            taken += 1
        if taken:
            self._out_wake.set()
        self.sent += taken
        return taken

    async def receive_batch(self, out: list[tuple[bytes, Address]]) -> None:
        while not self._in:
            if self._closed:
                raise TransportClosed
            await self._in_wake.wait()
            self._in_wake = trio.Event()
        queue = self._in
        while queue and len(out) < BATCH:
            out.append(queue.popleft())
        self.received += len(out)

    def close(self) -> None:
        """Stop for good: the driver's task for this path ends."""
        self._closed = True
        self._in_wake.set()

    # ---------------------------------------------------------- addresses
    def _raw_of(self, addr: Address) -> bytes | None:
        if len(addr) != 2 or addr[1] != self._name:
            return None
        text = addr[0]
        raw = self._raw.get(text)
        if raw is None:
            try:
                raw = NodeId.parse(text).raw
            except (ValueError, TypeError):
                return None
            if len(self._raw) >= _NAMES:
                self._raw.clear()
            self._raw[text] = raw
        return raw

    def _label(self, raw: bytes) -> str | None:
        text = self._text.get(raw)
        if text is None:
            try:
                text = str(NodeId(raw))
            except ValueError:
                return None
            if len(self._text) >= _NAMES:
                self._text.clear()
            self._text[raw] = text
        return text

    async def drain(self) -> None:
        """Wait until what `send` took is written and acknowledged by the relay."""
        while self._stream is not None and (self._out or self._writing):
            await self._idle.wait()
        stream = self._stream
        if stream is not None:
            await stream.wait_acknowledged()

    # -------------------------------------------------------------- stream
    async def run_stream(self, stream: BidirectionalStream) -> None:
        """Carry this path's datagrams on ``stream`` until it ends."""
        self._stream = stream
        self.up.set()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, stream)
                await self._read(stream)
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, QP2PError) as group:
            _log.info("relay stream to %s ended: %s", self._relay, group.exceptions[0])
        finally:
            self._stream = None
            self.up = trio.Event()
            self._out.clear()
            self._out_bytes = 0

    async def _read(self, stream: BidirectionalStream) -> None:
        parser = FrameParser(self._max_datagram)
        name = self._name
        async for chunk in stream:
            try:
                frames = parser.feed(bytes(chunk))
            except ValueError as exc:
                _log.warning("relay %s sent a bad frame (%s): stream reset", self._relay, exc)
                stream.reset()
                return
            for frame in frames:
                label = self._label(frame.node)
                if label is None:
                    continue
                if frame.type == FrameType.UNREACHABLE:
                    self.unreachable[frame.node] = trio.current_time()
                    self.unreachable_changed.set()
                    self.unreachable_changed = trio.Event()
                elif len(self._in) < RECEIVE_QUEUE:
                    self._in.append((frame.body, (label, name)))
                else:
                    self.dropped += 1
            if self._in:
                self._in_wake.set()

    async def _write(self, stream: BidirectionalStream) -> None:
        while True:
            if not self._out:
                self._idle.set()
                self._idle = trio.Event()
                await self._out_wake.wait()
                self._out_wake = trio.Event()
                continue
            data = b"".join(self._out)
            self._out.clear()
            self._out_bytes = 0
            self._writing = True
            try:
                await stream.send_all(data)
            finally:
                self._writing = False


#: Which path carries a connection: ``(kind, relay)`` (`describe_path`).
PathInfo = tuple[str, "PeerAddress | None"]


def describe_path(path: Path | None) -> PathInfo:
    """``("direct", None)`` (the socket), ``("relayed", <the relay>)``, else ``(<name>, None)``."""
    if path is None:
        return "direct", None
    if isinstance(path, RelayPath):
        return "relayed", path.relay
    return path.name, None


@final
class RelayManager:
    """An endpoint's relay paths and their supervisors (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        connect: Callable[[PeerAddress], Awaitable[Connection]],
        attach: Callable[[Path], None],
        spawn: Callable[[Callable[[], Awaitable[None]], str], None],
        rng: RandomSource,
    ) -> None:
        self._config = config
        self._connect = connect
        self._attach = attach
        self._spawn = spawn
        self._rng = rng
        self.paths: dict[NodeId, RelayPath] = {}
        self._started = False

    def start(self) -> None:
        """The endpoint runs: keep the home relay (`Config.home_relay`) from now on."""
        self._started = True
        home = self._config.home_relay
        if home is not None:
            self._path(home)

    async def close_relayed(self, conns: list[Connection], limit: float) -> None:
        """Close the relayed ones of ``conns`` (receipts first, `Connection.flush_control`)
        and wait until their relays carried the closes, so their peers learn at once."""
        relayed = [c for c in conns if c.path == "relayed"]
        for conn in relayed:
            await conn.flush_control(limit)
        for conn in relayed:
            conn.close_locally(0, "endpoint closed")
        for conn in relayed:
            await conn.close_sent_event.wait()
        for path in self.paths.values():
            await path.drain()

    @property
    def dropped(self) -> int:
        """Datagrams the relay paths dropped (no stream up, queue full, too large)."""
        return sum(path.dropped for path in self.paths.values())

    def gauges(self) -> dict[str, int]:
        """For the statistics: datagrams dropped, relay paths in use and up, and
        whether the home relay's is up (0 or 1)."""
        home = self._config.home_relay
        path = None if home is None else self.paths.get(home.node_id)
        return {
            "relay_paths_dropped": self.dropped,
            "relay_paths": len(self.paths),
            "relay_paths_up": sum(p.up.is_set() for p in self.paths.values()),
            "home_relay_up": int(path is not None and path.up.is_set()),
        }

    def path_named(self, name: str) -> RelayPath | None:
        for path in self.paths.values():
            if path.name == name:
                return path
        return None

    def _path(self, relay: PeerAddress) -> RelayPath:
        path = self.paths.get(relay.node_id)
        if path is not None:
            return path
        if not self._started:
            raise trio.ClosedResourceError("the endpoint is not running")
        if len(self.paths) >= MAX_RELAYS:
            raise RelayUnavailable(f"this endpoint uses {MAX_RELAYS} relays already: {relay}")
        path = RelayPath(relay, self._config.relay_max_datagram)
        self._attach(path)
        self.paths[relay.node_id] = path
        self._spawn(functools.partial(self._supervise, path), f"relay {relay.node_id.short()}")
        return path

    async def path_for(self, relay: PeerAddress) -> RelayPath:
        """The path through ``relay``, once its stream is up.

        Raises:
            RelayUnavailable: the relay could not be reached (or refused
                this endpoint); the supervisor keeps trying.
        """
        path = self._path(relay)
        while not path.up.is_set():
            done = path.attempt_done
            async with trio.open_nursery() as nursery:

                async def came_up(up: trio.Event = path.up) -> None:
                    await up.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(came_up)
                await done.wait()
                nursery.cancel_scope.cancel()
            if not path.up.is_set() and path.error is not None:
                error = path.error
                raise RelayUnavailable(f"the relay {relay} is unreachable: {error}") from error
        await trio.lowlevel.checkpoint()
        return path

    async def _supervise(self, path: RelayPath) -> None:
        delay = _BACKOFF[0]
        while True:
            try:
                conn = await self._connect(path.relay)
                stream = await conn.open_protocol(RELAY_PROTOCOL)
            except (QP2PError, OSError, ValueError, trio.BrokenResourceError) as exc:
                path.error = exc
                _log.info("relay %s unreachable (%s); again in %.1f s", path.relay, exc, delay)
            except trio.ClosedResourceError as exc:
                # Our connection to it was closed (or the endpoint is closing:
                # then the sleep below is cancelled).
                path.error = exc
            else:
                path.error = None
                started = trio.current_time()
                path.attempt_done.set()
                path.attempt_done = trio.Event()
                await path.run_stream(stream)
                if trio.current_time() - started > 10.0:
                    delay = _BACKOFF[0]  # it worked for a while: start over
            path.attempt_done.set()
            path.attempt_done = trio.Event()
            await trio.sleep(delay * (0.75 + self._rng.random() / 2))
            delay = min(delay * 2, _BACKOFF[1])
