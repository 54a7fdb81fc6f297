# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A message received from a peer."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import trio

from . import _streamed
from ._errors import LocalProtocolError
from ._util import NoPublicConstructor
from ._wire import StreamErrorCode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._connection import Connection
    from ._identity import NodeId
    from ._peer import PeerAddress
    from ._quic import Address
    from ._streamstate import StreamState

__all__ = ["Message"]


@final
class Message(metaclass=NoPublicConstructor):
    """One complete message from a peer, as `Endpoint.receive` returns it.

    It has no public constructor.  A message sent with `Connection.send`
    has ``expects_reply`` false; one sent with `Connection.request` has it
    true and must be answered with `reply` or turned down with `reject`
    (until then, the requester waits and the stream stays open).

    A message larger than `Config.max_message_size` and accepted under
    `Config.max_streamed_message_size` is *streamed*: it is returned as soon
    as its head arrived, ``payload`` is empty, and its `size` bytes are read
    with `receive_some` (or `chunks`) while they arrive, the sender held back
    by QUIC flow control to `Config.stream_receive_buffer` bytes ahead of
    the reader.  Read it to the end (the sender's call returns then) or
    `discard` it.

    Attributes:
        payload: the message bytes (possibly empty; empty when streamed).
        sender: the node id the peer proved during the handshake.
        connection: the connection that carried it.
    """

    __slots__ = (
        "_answered",
        "_ended",
        "_size",
        "_stream",
        "_stream_id",
        "connection",
        "payload",
        "sender",
    )

    def __init__(
        self,
        *,
        payload: bytes,
        sender: NodeId,
        connection: Connection,
        stream_id: int | None,
        stream: StreamState | None = None,
        size: int | None = None,
    ) -> None:
        self.payload = payload
        self.sender = sender
        self.connection = connection
        self._stream_id = stream_id
        self._answered = False
        self._stream = stream
        self._size = len(payload) if size is None else size
        self._ended = stream is None  # a streamed one: read to its end

    @property
    def streamed(self) -> bool:
        """Whether the payload is read with `receive_some` (it is not in ``payload``)."""
        return self._stream is not None

    @property
    def size(self) -> int:
        """The payload's length in bytes (for a streamed message, as its head declared)."""
        return self._size

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        """Read up to ``max_bytes`` more of a streamed message; ``b""`` at its end.

        Reaching the end of a streamed message (not a request) tells the
        sender it was delivered.

        Raises:
            LocalProtocolError: the message is not streamed.
            ValueError: ``max_bytes`` is below 1.
            StreamReset: the sender reset it (it gave up).
            MessageError: the sender broke the frame format.
            ConnectionClosed: the connection is gone.
            trio.ClosedResourceError: it was discarded.
        """
        if self._stream is None:
            await trio.lowlevel.checkpoint()
            raise LocalProtocolError("this message is not streamed: its bytes are in payload")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise TypeError(f"max_bytes must be an int, got {max_bytes!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        chunk = await _streamed.receive(self.connection.io, self._stream, max_bytes)
        if not chunk:
            self._ended = True
        return chunk

    async def chunks(self, max_bytes: int = 65536) -> AsyncIterator[bytes]:
        """Iterate over the rest of a streamed message (`receive_some` until its end)."""
        while chunk := await self.receive_some(max_bytes):
            yield chunk

    def discard(self) -> None:
        """Read no more of a streamed message; its sender gets `StreamReset` (``CLOSED``).

        Does nothing for a message that is not streamed or was read to its end.
        """
        if self._stream is not None:
            _streamed.stop(self.connection.io, self._stream)

    @property
    def remote_address(self) -> Address:
        """The sender's socket address (`Connection.remote_address`)."""
        return self.connection.remote_address

    @property
    def peer_address(self) -> Address:
        """Deprecated alias of `remote_address` (a socket address; see `peer`)."""
        return self.connection.remote_address

    @property
    def peer(self) -> PeerAddress:
        """The sender as `Endpoint.connect` takes it (`Connection.peer`)."""
        return self.connection.peer

    @property
    def answered(self) -> bool:
        """Whether `reply` or `reject` was called (a request is answered once)."""
        return self._answered

    @property
    def expects_reply(self) -> bool:
        """Whether the sender waits for a reply (it called `Connection.request`)."""
        return self._stream_id is not None

    def __repr__(self) -> str:
        kind = "request" if self.expects_reply else "message"
        how = ", streamed" if self._stream is not None else ""
        return f"<qp2p_trio.Message {kind} from {self.sender.short()} ({self._size} bytes{how})>"

    def _claim(self, *, reply: bool = False) -> int:
        if self._stream_id is None:
            raise LocalProtocolError("this message expects no reply (it was sent with send())")
        if reply and not self._ended:
            raise LocalProtocolError(
                "read a streamed request to its end (receive_some returns b'') before replying"
            )
        if self._answered:
            raise LocalProtocolError("this request was already answered")
        self._answered = True
        return self._stream_id

    async def reply(
        self, payload: bytes | bytearray | memoryview, *, wait_for_ack: bool = False
    ) -> bool:
        """Answer a request; return once the reply is handed to QUIC.

        It never waits for the requester, so one slow or hostile requester
        cannot stall a loop that answers everybody, and a peer cannot make
        it raise: if the reply cannot go, it is dropped (the requester's
        stream is reset with a refusal code where it still listens) and
        ``False`` is returned.  That happens when the requester gave up,
        the connection closed, the reply is over the requester's
        `Config.max_message_size`, or the connection already has
        `Config.connection_send_buffer` bytes unacknowledged (the requester
        is not taking what it asked for; it gets `MessageRefused` BUSY).

        Args:
            payload: the reply.
            wait_for_ack: also wait until the requester's QUIC stack
                acknowledged the whole reply, and raise instead of
                returning ``False``.

        Returns:
            Whether the reply was queued (with ``wait_for_ack``: acknowledged).

        Raises:
            LocalProtocolError: the message expects no reply, was already
                answered or rejected, or is a streamed request not read to
                its end (`discard` it and `reject` it instead).
            TypeError: ``payload`` is not bytes-like.
            StreamReset: with ``wait_for_ack`` only: the requester gave up.
            MessageTooLarge: with ``wait_for_ack`` only.
            MessageRefused: with ``wait_for_ack`` only (BUSY).
            ConnectionClosed: with ``wait_for_ack`` only.
            trio.ClosedResourceError: with ``wait_for_ack`` only: we closed
                the connection.

        Cancellation: before the reply is queued, nothing is sent; while
        waiting for the acknowledgement, the reply stream is reset and the
        requester gets `StreamReset`.
        """
        try:
            sid = self._claim(reply=True)
        except LocalProtocolError:
            await trio.lowlevel.checkpoint()
            raise
        return await self.connection.reply_to(sid, payload, wait_for_ack=wait_for_ack)

    def reject(self, error_code: int = StreamErrorCode.NO_REPLY) -> None:
        """Turn the request down without a reply.

        The requester's `Connection.request` raises `MessageRefused` (for
        the default code) or `StreamReset` carrying ``error_code``.  A
        streamed request not read to its end is discarded first.

        Raises:
            LocalProtocolError: the message expects no reply, or was already
                answered or rejected.
        """
        sid = self._claim()
        if self._stream is not None and not self._ended:
            _streamed.stop(self.connection.io, self._stream)  # stop reading it first
        self.connection.reject_request(sid, error_code)
