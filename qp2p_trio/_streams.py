# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Raw QUIC streams as Trio streams.

A bidirectional stream is a `trio.abc.HalfCloseableStream`; a
unidirectional one is a `trio.abc.SendStream` or `trio.abc.ReceiveStream`.
They pass Trio's own conformance checks (``tests/test_streams.py``).

Theory of operation: the per-stream state (`StreamState`) is owned by the
connection's `Session`, which updates it synchronously as QUIC events
arrive; the connection wakes waiters through its progress lot.  These
classes only check that state and wait; the bytes move through the
connection's `_streamio.StreamIO`.

Semantics mapped onto QUIC:

- ``send_eof()`` sends the FIN; ``aclose()`` of a send side also sends the
  FIN (graceful, like TCP).
- ``aclose()`` of a receive side that has not seen the end sends
  STOP_SENDING (code ``CLOSED``); the peer's next writes fail with
  `trio.BrokenResourceError`.
- A peer's RESET_STREAM or STOP_SENDING, or the connection closing, make
  calls fail with `trio.BrokenResourceError` (a `RawStreamReset`, which is
  also a `StreamReset`, when the peer reset or stopped the stream).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import trio

from ._errors import StreamReset
from ._util import ConflictDetector, NoPublicConstructor

if TYPE_CHECKING:
    from ._streamio import StreamIO
    from ._streamstate import StreamState

__all__ = ["BidirectionalStream", "RawStreamReset", "ReceiveStream", "SendStream"]


class RawStreamReset(StreamReset, trio.BrokenResourceError):
    """The peer reset or stopped a raw stream.

    Both a `StreamReset` (with the peer's ``error_code``) and a
    `trio.BrokenResourceError`, so code written against Trio's stream
    interfaces handles it.
    """


DEFAULT_RECEIVE_SIZE = 65536


def _check_max_bytes(max_bytes: int | None) -> None:
    if max_bytes is None:
        return
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise TypeError(f"max_bytes must be an int or None, got {max_bytes!r}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")


class _SendHalf:
    def __init__(self, conn: StreamIO, state: StreamState) -> None:
        self._conn = conn
        self._state = state
        self._send_conflict = ConflictDetector("another task is already sending on this stream")

    @property
    def stream_id(self) -> int:
        """The QUIC stream id."""
        return self._state.sid

    def set_priority(self, priority: int) -> None:
        """Order this stream's data among the connection's streams (default 0).

        Higher priorities get packet space first; equal ones take turns.
        Messages take a ``priority`` too (`Connection.send`).

        Raises:
            TypeError: ``priority`` is not an int.
        """
        self._conn.set_priority(self._state, priority)

    async def _send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_conflict:
            await trio.lowlevel.checkpoint()
            await self._conn.raw_send(self._state, data)

    async def _wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            await self._conn.raw_wait_writable(self._state)

    async def _send_eof(self) -> None:
        with self._send_conflict:
            await trio.lowlevel.checkpoint()
            self._conn.raw_send_eof(self._state)


class _ReceiveHalf:
    def __init__(self, conn: StreamIO, state: StreamState) -> None:
        self._conn = conn
        self._state = state
        self._receive_conflict = ConflictDetector(
            "another task is already receiving on this stream"
        )

    async def _receive_some(self, max_bytes: int | None) -> bytes:
        _check_max_bytes(max_bytes)
        with self._receive_conflict:
            return await self._conn.raw_receive(
                self._state, max_bytes if max_bytes is not None else DEFAULT_RECEIVE_SIZE
            )


@final
class SendStream(_SendHalf, trio.abc.SendStream, metaclass=NoPublicConstructor):
    """The sending side of a unidirectional QUIC stream.

    Get one from `Connection.open_uni`; it has no public constructor.
    """

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; return once it is queued within the send buffer.

        Blocks while more than `Config.stream_send_buffer` bytes of this
        stream, or `Config.connection_send_buffer` bytes of the connection,
        are unacknowledged.

        Raises:
            trio.ClosedResourceError: this stream was closed, or its EOF sent.
            trio.BrokenResourceError: the peer stopped the stream
                (`StreamReset`) or the connection closed.
            trio.BusyResourceError: another task is sending on it.

        Cancellation: the bytes queued before the cancel stay queued and will
        be delivered; the rest are not sent.
        """
        await self._send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until `send_all` would not block (or would fail at once)."""
        await self._wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Finish the stream (FIN) if still open; idempotent, always a checkpoint."""
        self._conn.raw_close_send(self._state)
        await trio.lowlevel.checkpoint()


@final
class ReceiveStream(_ReceiveHalf, trio.abc.ReceiveStream, metaclass=NoPublicConstructor):
    """The receiving side of a unidirectional QUIC stream.

    Get one from `Connection.accept_uni`; it has no public constructor.
    """

    @property
    def stream_id(self) -> int:
        """The QUIC stream id."""
        return self._state.sid

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return the next bytes (at most ``max_bytes``), or ``b""`` at the end.

        Raises:
            trio.ClosedResourceError: this stream was closed locally.
            trio.BrokenResourceError: the peer reset the stream
                (`StreamReset`) or the connection closed before the end.
            trio.BusyResourceError: another task is receiving on it.

        Cancellation: nothing is lost; unread bytes stay buffered.
        """
        return await self._receive_some(max_bytes)

    async def aclose(self) -> None:
        """Stop receiving (STOP_SENDING if the end was not reached); idempotent."""
        self._conn.raw_close_receive(self._state)
        await trio.lowlevel.checkpoint()


@final
class BidirectionalStream(
    _SendHalf, _ReceiveHalf, trio.abc.HalfCloseableStream, metaclass=NoPublicConstructor
):
    """A bidirectional QUIC stream as a `trio.abc.HalfCloseableStream`.

    Get one from `Connection.open_bi` or `Connection.accept_bi`; it has no
    public constructor.  ``send_eof()`` sends the FIN and leaves the
    receiving direction open.
    """

    def __init__(self, conn: StreamIO, state: StreamState) -> None:
        _SendHalf.__init__(self, conn, state)
        _ReceiveHalf.__init__(self, conn, state)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; see `SendStream.send_all` for blocking and errors."""
        await self._send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until `send_all` would not block (or would fail at once)."""
        await self._wait_send_all_might_not_block()

    async def wait_acknowledged(self) -> None:
        """Wait until the peer's QUIC stack acknowledged every byte sent so far.

        That the bytes arrived, not that the peer's application read them;
        returns at once if the stream or the connection is over.
        """
        await self._conn.raw_wait_acked(self._state)

    async def send_eof(self) -> None:
        """Send the FIN; later `send_all` raises `trio.ClosedResourceError`. Idempotent.

        Raises:
            trio.BusyResourceError: another task is sending on this stream.
        """
        await self._send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return the next bytes, or ``b""`` at the end; see `ReceiveStream.receive_some`."""
        return await self._receive_some(max_bytes)

    def reset(self, error_code: int = 1) -> None:
        """Abort both directions now: RESET_STREAM and STOP_SENDING with ``error_code``
        (default 1, ``StreamErrorCode.CANCELLED``).

        The peer's calls on the stream fail with a `RawStreamReset` carrying
        the code; ours raise `trio.ClosedResourceError`.  Idempotent.
        """
        self._conn.raw_reset(self._state, error_code)

    async def aclose(self) -> None:
        """Close both directions: FIN on ours, STOP_SENDING on theirs if unfinished.

        Idempotent and always a checkpoint; never blocks on the network.
        """
        self._conn.raw_close_send(self._state)
        self._conn.raw_close_receive(self._state)
        await trio.lowlevel.checkpoint()
