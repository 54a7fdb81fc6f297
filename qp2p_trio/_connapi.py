# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`ConnectionExtras`: the part of `Connection`'s API built on other modules.

Streamed messages (`_streamed`), unreliable datagrams (`_datagrams`),
protocol streams and the path (relays), and the deprecated ``peer_address`` alias:
their methods live here and `Connection` inherits them, so that the
connection module stays the waiting and the core message API.  They reach
the connection's state only through its public `StreamIO` (``io``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _datagrams, _streamed
from ._path import is_path_address

if TYPE_CHECKING:
    import os

    from ._connection import Connection
    from ._peer import PeerAddress
    from ._quic import Address
    from ._streamio import StreamIO
    from ._streams import BidirectionalStream

__all__ = ["ConnectionExtras", "check_priority"]


def check_priority(priority: int) -> int:
    """``priority`` if it is an int (a stream's send priority), else TypeError."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, got {priority!r}")
    return priority


class ConnectionExtras:
    """Streamed messages and datagrams of a `Connection` (which inherits them)."""

    io: StreamIO
    if TYPE_CHECKING:

        @property
        def remote_address(self) -> Address: ...
        @property
        def peer(self) -> PeerAddress: ...
        @property
        def replacement(self) -> Connection | None: ...

    @property
    def path(self) -> str:
        """``"direct"`` (the UDP socket) or ``"relayed"`` (through ``peer.relay``, :doc:`relays`).

        A connection keeps its path for life; hole punching replaces a relayed
        one with a direct one (`replacement`, and a `PathChanged` event).
        """
        addr = self.remote_address  # through a relay: ("<node id>", "relay:<relay id>")
        return "relayed" if is_path_address(addr) and addr[1].startswith("relay:") else "direct"

    async def open_protocol(self, name: str) -> BidirectionalStream:
        """Open a stream for protocol ``name``, for the peer's `Endpoint.handle_protocol` handler.

        No round trip: a peer without a handler resets the stream, so the
        first read or write raises `RawStreamReset` with ``UNKNOWN_PROTOCOL``
        (``BUSY`` past the peer's share of handlers).

        Raises:
            ValueError, TypeError: ``name`` is not 1 to 64 printable ASCII
                characters (no spaces).
            ConnectionClosed, trio.ClosedResourceError: as `open_bi`.
        """
        kept = self.replacement
        return await (kept.open_protocol(name) if kept else self.io.open_protocol(name))

    @property
    def peer_address(self) -> Address:
        """Deprecated alias of `remote_address` (a socket address).

        ``peer_address`` meant two things (`Endpoint.peer_address` is a
        `PeerAddress`); use `remote_address` for the socket address and
        `peer` for the `PeerAddress`.
        """
        return self.remote_address

    async def send_stream(self, chunks: _streamed.Chunks, size: int, *, priority: int = 0) -> None:
        """Send one message of ``size`` bytes from ``chunks``, never holding it whole.

        Like `send`, for a message larger than memory (or than the peer's
        `Config.max_message_size`, if its `Config.max_streamed_message_size`
        allows it: the peer then reads it with `Message.receive_some`).
        Each chunk is written as it comes, within the send-buffer limits.
        Returns once the peer read the whole message (a message the peer
        buffers, under its `Config.max_message_size`, once it is queued).

        Args:
            chunks: bytes-like chunks, an iterable or an async iterable.
            size: the message's length; the chunks must add up to it.
            priority: as for `send` (a bulk transfer may want a negative one).

        Raises:
            ValueError: the chunks add up to another size (the stream is
                reset; the peer discards the message).
            MessageTooLarge: over the peer's limits (refused from the head).
            Others: as `send`.

        Cancellation: as `send`.
        """
        await _streamed.send(
            self.io, chunks, size, request=False, priority=check_priority(priority)
        )

    async def request_stream(
        self, chunks: _streamed.Chunks, size: int, *, priority: int = 0
    ) -> bytes:
        """`request` with a payload of ``size`` bytes from ``chunks`` (see `send_stream`)."""
        reply = await _streamed.send(
            self.io, chunks, size, request=True, priority=check_priority(priority)
        )
        assert reply is not None
        return reply

    async def send_file(self, path: str | os.PathLike[str], *, priority: int = 0) -> None:
        """Send a file's content as one message with `send_stream`, in 256 KiB chunks.

        Raises:
            OSError: the file cannot be read.
            ValueError: the file changed size while it was sent.
            Others: as `send_stream`.
        """
        async with _streamed.file_chunks(path) as (size, chunks):
            await self.send_stream(chunks, size, priority=priority)

    @property
    def max_datagram_size(self) -> int:
        """The largest `send_datagram` payload: what the peer takes and a packet carries.

        0 until the connection is established, and when the peer takes no
        datagrams (its `Config.datagram_receive_queue` is 0).
        """
        return self.io.session.core.datagram_limit()

    async def send_datagram(self, data: bytes | bytearray | memoryview) -> bool:
        """Send one unreliable datagram (an RFC 9221 DATAGRAM frame).

        It is never retransmitted: it arrives once or not at all, in any
        order with other datagrams and streams.  Nothing waits: it is queued
        for the next packet and this returns.

        Returns:
            Whether it was queued; ``False`` when too many already wait to
            be sent (the congestion controller holds them): dropped, counted
            in `statistics` (``unreliable_dropped``).

        Raises:
            ValueError: ``data`` is over `max_datagram_size`.
            LocalProtocolError: the peer takes no datagrams.
            ConnectionClosed: the connection is gone.
            trio.ClosedResourceError: we closed this connection.
            TypeError: ``data`` is not bytes-like.
        """
        return await _datagrams.send(self.io, data)

    async def receive_datagram(self) -> bytes:
        """Wait for the next datagram the peer sent with `send_datagram`.

        They wait in a queue of `Config.datagram_receive_queue` per
        connection; past it the peer's new datagrams are dropped (counted in
        `statistics`), so a flood costs other connections nothing.

        Raises:
            ConnectionClosed: the connection is gone (queued ones are taken first).
            trio.ClosedResourceError: we closed this connection.

        Cancellation: nothing is lost.
        """
        return await _datagrams.receive(self.io)
