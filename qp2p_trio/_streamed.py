# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Streamed messages: sending one from chunks, reading one in chunks.

Theory of operation
-------------------
On the wire a streamed message is an ordinary MESSAGE or REQUEST: the head
declares the whole length, the payload follows.  Only the two ends differ:

- the sender (`send`) writes chunks as they come from a file or an
  iterator, each within the send-buffer limits (`StreamIO.write` blocks
  while `Config.stream_send_buffer` bytes are unacknowledged), and checks
  that they add up to the declared length;
- the receiver's parser streams a payload over `Config.max_message_size`
  and up to `Config.max_streamed_message_size` (`_wire.StreamParser`), the
  session delivers the message as soon as the head arrived
  (`_session.Session`, ``streamed``) and holds the stream's QUIC receive
  window (`_quic.QuicCore.hold_window`): the peer may send only
  `Config.stream_receive_buffer` bytes ahead of the reader.  `receive`
  hands out what arrived and lets the window grow by what was read.

A streamed MESSAGE's receipt is sent once the reader reached its end, so
the sender's call returns when the whole message was read; a streamed
REQUEST is answered as any request.  The size limit is checked from the
head, before any payload byte is buffered.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING

import trio

from . import _wire
from ._classify import stream_error
from ._errors import ConnectionClosed, MessageError
from ._streamio import payload_view

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from ._streamio import StreamIO
    from ._streamstate import StreamState

__all__ = ["Chunks", "file_chunks", "receive", "send", "stop"]

K = _wire.StreamKind
E = _wire.StreamErrorCode

#: What a streamed message is sent from: bytes-like chunks, sync or async.
Chunks = AsyncIterable[bytes | bytearray | memoryview] | Iterable[bytes | bytearray | memoryview]

#: Bytes read from a file per chunk.
FILE_CHUNK = 256 * 1024


async def _each(chunks: Chunks) -> AsyncGenerator[memoryview, None]:
    if isinstance(chunks, bytes | bytearray | memoryview | str):
        raise TypeError("chunks must be an iterable of bytes-like chunks, not one bytes object")
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield payload_view(chunk)
    elif isinstance(chunks, Iterable):
        for chunk in chunks:
            yield payload_view(chunk)
    else:
        raise TypeError(f"chunks must be an (async) iterable, got {type(chunks).__name__}")


@asynccontextmanager
async def file_chunks(
    path: str | os.PathLike[str],
) -> AsyncIterator[tuple[int, AsyncGenerator[bytes, None]]]:
    """Open ``path``: its size now, and its chunks (read in a worker thread); closed on exit."""
    async with await trio.open_file(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size

        async def chunks() -> AsyncGenerator[bytes, None]:
            while chunk := await file.read(FILE_CHUNK):
                yield chunk

        async with aclosing(chunks()) as each:
            yield size, each


async def send(
    io: StreamIO, chunks: Chunks, size: int, *, request: bool, priority: int = 0
) -> bytes | None:
    """Send a message (or request) of ``size`` bytes from ``chunks``; see `Connection.send_stream`."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {size!r}")
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    io.check_usable()
    session = io.session
    kind = K.REQUEST if request else K.MESSAGE
    what = "request" if request else "message"
    await io.take_slot(uni=not request)
    try:
        st = session.open_stream(kind, slot=False)
        if request:
            st.parser = _wire.StreamParser(
                allowed={K.REPLY}, max_message_size=session.config.max_message_size
            )
        try:
            session.core.send(st.sid, _wire.encode_message_head(kind, size))
            if priority:
                session.core.set_priority(st.sid, priority)
            sent = 0
            async with aclosing(_each(chunks)) as each:
                async for view in each:
                    if len(view) > size - sent:
                        raise ValueError(f"the chunks hold more than the {size} bytes announced")
                    await io.write(st, view, end=False, what=what)
                    sent += len(view)
            if sent != size:
                raise ValueError(f"the chunks held {sent} bytes, not the {size} announced")
            await io.write(st, b"", end=True, what=what)
            st.send.finish()
            if not request:
                await io.wait_receipt(st, what)
                reply = None
            else:
                reply = await _reply(io, st)
        except BaseException:
            io.abandon(st)
            raise
        session.table.forget(st)
        io.messages_sent += 1
        io.message_bytes_sent += size
        return reply
    finally:
        session.slots_free[not request] += 1


async def _reply(io: StreamIO, st: StreamState) -> bytes:
    while st.reply is None:
        if st.error is not None:
            raise st.error
        if st.recv.reset_code is not None:
            raise stream_error(st.recv.reset_code, "request")
        io.raise_if_send_broken(st, "request")
        await io.wait_change()
    io.replies_received += 1
    io.reply_bytes_received += len(st.reply)
    return st.reply


async def receive(io: StreamIO, st: StreamState, max_bytes: int) -> bytes:
    """Up to ``max_bytes`` of a streamed message; ``b""`` at its end."""
    session = io.session
    try:
        chunk = await io.raw_receive(st, max_bytes)
    except trio.BrokenResourceError as exc:
        if session.close_exc is not None:
            raise session.close_exc from None
        _forget_message(io, st)
        raise MessageError(f"streamed message stopped: {exc}") from None
    except trio.ClosedResourceError:
        raise trio.ClosedResourceError("this message was discarded") from None
    except MessageError:
        _forget_message(io, st)  # the peer reset it
        raise
    except ConnectionClosed:
        raise
    if chunk:
        session.core.consumed(st.sid, len(chunk))
        session.want_transmit = True  # the window may have grown
    elif st.kind is K.MESSAGE and st.sid in session.streams:
        session.send_receipt(st.sid, 0)  # read to the end: delivered
        session.table.forget(st)
    io.sync()
    return chunk


def stop(io: StreamIO, st: StreamState) -> None:
    """Read no more of a streamed message: the sender gets `StreamReset` (``CLOSED``).

    A refusal: STOP_SENDING (and a RECEIPT for a message; a request's reply
    side is reset).  The record stays as a tombstone until the peer's FIN
    or reset, so its late data is not taken for a new stream.
    """
    session = io.session
    if st.sid not in session.streams or st.recv.stopped:
        return
    session.refuse(st, E.CLOSED, None)
    st.handle = None
    if st.recv.peer_done:
        session.table.forget(st)
    io.sync()


def _forget_message(io: StreamIO, st: StreamState) -> None:
    if st.kind is K.MESSAGE:
        io.session.table.forget(st)
