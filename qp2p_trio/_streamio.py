# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The waiting half of a connection's streams: Trio on top of a `Session`.

Theory of operation
-------------------
`StreamIO` does what needs waiting: writing within the send-buffer limits,
waiting for a RECEIPT, a reply or an acknowledgement, taking a stream slot,
accepting the peer's raw streams, reading them.  Everything it changes is
the session's and the core's, synchronously; then it asks its connection to
transmit (``transmit(lone)``: from this task for a lone exchange, else by the
driver's send task) or to forward the session's events (``sync``).  A
message waiting for its receipt and a raw read waiting for data park on
their stream (`wait_stream`), woken by its events (receipt, data, reset,
STOP_SENDING); a request waiting for its reply, and whoever waits for
acknowledgements, a stream slot or an accept queue, park on the
connection's lot (`wait_change`), woken after every change.  Either
re-checks its own condition when woken; a close wakes both.

`Connection` keeps the public API and delegates here; the raw stream handles
of `_streams` call the ``raw_*`` methods directly.
"""

from __future__ import annotations

import functools
import types
import weakref
from typing import TYPE_CHECKING

import attrs
import trio

from . import _classify, _wire
from ._errors import ConnectionClosed, MessageRefused, MessageTooLarge, StreamReset
from ._protoname import name_field
from ._streams import BidirectionalStream, RawStreamReset, ReceiveStream, SendStream
from ._streamstate import RecvState
from ._wakeups import StreamWaiters

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._connection import Connection
    from ._host import ConnectionHost
    from ._session import Session
    from ._streamstate import StreamState

__all__ = ["SendOutcome", "StreamIO", "payload_view"]

K = _wire.StreamKind
E = _wire.StreamErrorCode
#: What a reset code becomes for a caller (a raw stream's: a `RawStreamReset`).
stream_error = functools.partial(_classify.stream_error, raw=RawStreamReset)


@attrs.define
class SendOutcome:
    """What a failed send left behind: did the peer acknowledge every byte?"""

    acked: bool = False


def payload_view(payload: bytes | bytearray | memoryview) -> memoryview:
    """``payload`` as a flat byte view; TypeError if it is not bytes-like."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes-like, got {type(payload).__name__}")
    return memoryview(payload).cast("B")


class StreamIO:
    """The waiting half of one connection's streams (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        *,
        transmit: Callable[[bool], None],
        sync: Callable[[], None],
    ) -> None:
        self.session = session
        self._core = session.core
        self._config = session.config
        #: Waiters on conditions no stream event reports (ACKs, slots, accepts).
        self._progress = trio.lowlevel.ParkingLot()
        #: Waiters on one stream's events (receipt, raw data, reset).
        self._waiters = StreamWaiters()
        self._transmit = transmit
        self._sync = sync
        # Counted once per message (see `_metrics`): sent in full, and replies received.
        self.messages_sent = 0
        self.message_bytes_sent = 0
        self.replies_received = 0
        self.reply_bytes_received = 0

    def wake(self) -> None:
        """Wake the waiters of the streams the session touched, and the lot's (all on a close)."""
        session = self.session
        touched = session.touched
        if session.close_exc is not None or session.closed_locally:
            self._waiters.wake_all()
            touched.clear()
        elif touched:
            wake = self._waiters.wake
            for sid in touched:
                wake(sid)
            touched.clear()
        self._progress.unpark_all()

    def release(self) -> None:
        """The driver forgot the connection: call back into it weakly from now on.

        Without the cycle (connection -> StreamIO -> the connection's bound
        methods) our side of a closed connection is freed by reference
        counting, not left to the cyclic collector.  Calls behave as before
        while anything holds the connection.  Idempotent.
        """
        if not isinstance(self._sync, types.MethodType):
            return
        sync = weakref.WeakMethod(self._sync)
        transmit = weakref.WeakMethod(self._transmit)

        def weak_sync() -> None:
            method = sync()
            if method is not None:
                method()

        def weak_transmit(lone: bool) -> None:
            method = transmit()
            if method is not None:
                method(lone)

        self._sync, self._transmit = weak_sync, weak_transmit

    async def wait_change(self) -> None:
        """Park until the connection's state changes (then re-check)."""
        await self._progress.park()

    async def wait_stream(self, st: StreamState) -> None:
        """Park until an event touches ``st`` or the connection closes (then re-check)."""
        await self._waiters.wait(st.sid)

    def sync(self) -> None:
        """Forward the session's events and transmit what it queued."""
        self._sync()

    def check_usable(self) -> None:
        if self.session.closed_locally:
            raise trio.ClosedResourceError("this connection was closed")
        if self.session.close_exc is not None:
            raise self.session.close_exc

    def raise_if_send_broken(self, st: StreamState, what: str) -> None:
        if st.send.stop_code is not None:
            raise stream_error(st.send.stop_code, what)
        self.check_usable()

    async def write(
        self, st: StreamState, data: bytes | bytearray | memoryview, *, end: bool, what: str
    ) -> None:
        """Queue ``data`` on a stream within the send-buffer limits."""
        view = memoryview(data).cast("B")
        total = len(view)
        offset = 0
        while True:
            self.raise_if_send_broken(st, what)
            room = self.session.send_room(st)
            if room > 0 or (offset == total):
                n = min(max(room, 0), total - offset)
                last = offset + n == total
                if n or (last and end):
                    self._core.send(st.sid, view[offset : offset + n], end_stream=last and end)
                    if len(self.session.streams) <= 2:
                        # A lone exchange (this stream and the peer's control
                        # stream): transmit from this task, no wake-up of the
                        # sender task on the latency path.
                        self._transmit(True)
                    else:
                        # Concurrent streams: let the sender task pack them
                        # together once every writer has queued its data.
                        self._transmit(False)
                offset += n
                if last:
                    return
            await self._progress.park()

    async def wait_receipt(self, st: StreamState, what: str) -> None:
        """Wait for the peer's RECEIPT of our message or reply on ``st``."""
        while True:
            code = st.receipt
            if code is not None:
                if code == 0:
                    return
                raise stream_error(code, what)
            self.raise_if_send_broken(st, what)
            p = self._core.send_progress(st.sid)
            if p.reset_code is not None:
                raise stream_error(st.send.stop_code or p.reset_code, what)
            await self._waiters.wait(st.sid)

    async def wait_reply_acked(self, st: StreamState) -> None:
        """Wait until the requester's QUIC stack acknowledged the whole reply."""
        while True:
            if st.receipt:  # the requester refused it (it only says so)
                raise stream_error(st.receipt, "reply")
            p = self._core.send_progress(st.sid)
            if p.finished:  # acknowledged: even if a close came right behind the ACK
                return
            self.raise_if_send_broken(st, "reply")
            if p.reset_code is not None:
                raise stream_error(st.send.stop_code or p.reset_code, "reply")
            await self._progress.park()

    def abandon(self, st: StreamState) -> None:
        """Reset and stop a stream of ours (a cancelled or failed call)."""
        self.session.abandon(st, E.CANCELLED)
        self._sync()

    def reject_request(self, sid: int, code: int) -> None:
        """Turn down the request on ``sid`` (`Message.reject`)."""
        self.session.reject(sid, code)
        self._sync()

    async def send_message(self, view: memoryview, outcome: SendOutcome, priority: int = 0) -> None:
        """Send a message and wait for its receipt (see `Connection.send`)."""
        self.check_usable()
        self.check_peer_limit(len(view), "message")
        await self.take_slot(uni=True, parks_later=True)
        try:
            st = self.session.open_stream(K.MESSAGE, slot=False)
            sid = st.sid
            try:
                self._core.send(sid, _wire.encode_message_head(K.MESSAGE, len(view)))
                if priority:
                    self._core.set_priority(sid, priority)
                await self.write(st, view, end=True, what="message")
                st.send.finish()
                await self.wait_receipt(st, "message")
            except BaseException:
                # Whether the peer's QUIC stack had every byte: a retry must
                # not duplicate a message the peer may already have.
                outcome.acked = self._core.send_progress(sid).finished
                self.abandon(st)
                raise
            self.session.table.forget(st)
            self.messages_sent += 1
            self.message_bytes_sent += len(view)
        finally:
            self.session.slots_free[True] += 1

    async def request(self, view: memoryview, priority: int = 0) -> bytes:
        """Send a request and wait for its reply (see `Connection.request`)."""
        self.check_usable()
        self.check_peer_limit(len(view), "request")
        await self.take_slot(uni=False, parks_later=True)
        try:
            st = self.session.open_stream(K.REQUEST, slot=False)
            sid = st.sid
            st.parser = _wire.StreamParser(
                allowed={K.REPLY}, max_message_size=self._config.max_message_size
            )
            try:
                self._core.send(sid, _wire.encode_message_head(K.REQUEST, len(view)))
                if priority:
                    self._core.set_priority(sid, priority)
                await self.write(st, view, end=True, what="request")
                st.send.finish()
                while st.reply is None:
                    if st.error is not None:
                        raise st.error
                    if st.recv.reset_code is not None:
                        raise stream_error(st.recv.reset_code, "request")
                    self.raise_if_send_broken(st, "request")
                    # On the connection's lot, not the stream: woken with
                    # every change, the requesters of W3 queue their next
                    # requests together (measured: per stream, 2.3 times
                    # the datagrams reached the server on a quiet machine).
                    await self._progress.park()
            except BaseException:
                self.abandon(st)
                raise
            self.session.table.forget(st)
            self.messages_sent += 1
            self.message_bytes_sent += len(view)
            self.replies_received += 1
            self.reply_bytes_received += len(st.reply)
            return st.reply
        finally:
            self.session.slots_free[False] += 1

    async def reply_to(
        self, sid: int, payload: bytes | bytearray | memoryview, *, wait_for_ack: bool
    ) -> bool:
        view = payload_view(payload)
        # Cancellation is checked first; the schedule point comes after the
        # reply is queued (and, for a lone exchange, sent): one scheduler
        # pass less between a request's arrival and its answer.
        await trio.lowlevel.checkpoint_if_cancelled()
        st = self.session.streams.get(sid)
        problem = self._reply_problem(st, len(view))
        if problem is not None:
            self.reject_request(sid, problem.error_code if isinstance(problem, StreamReset) else 0)
            await trio.lowlevel.cancel_shielded_checkpoint()
            if wait_for_ack:
                raise problem
            return False
        assert st is not None
        # Queued whole, never waiting on the requester: a slow or hostile one
        # cannot stall the caller (a handler loop serving everyone).  Memory
        # stays bounded by _reply_problem's check of unacknowledged bytes.
        st.send.open()
        st.send.finish()
        self._core.send(sid, _wire.encode_message_head(K.REPLY, len(view)))
        self._core.send(sid, view, end_stream=True)
        if len(self.session.streams) <= 2:
            self._transmit(True)
        else:
            self._transmit(False)
        if wait_for_ack:
            try:
                await self.wait_reply_acked(st)
            except BaseException:
                self.abandon(st)
                raise
        self.session.table.forget(st)
        self.messages_sent += 1
        self.message_bytes_sent += len(view)
        if not wait_for_ack:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return True

    def _reply_problem(self, st: StreamState | None, size: int) -> Exception | None:
        """Why a reply of ``size`` bytes cannot be queued on ``st`` now, or None."""
        if self.session.closed_locally:
            return trio.ClosedResourceError("this connection was closed")
        if self.session.close_exc is not None:
            return self.session.close_exc
        if st is None or st.send.closed:
            return StreamReset("reply: the requester abandoned the request", error_code=E.CANCELLED)
        if st.send.stop_code is not None or not self._core.writable(st.sid):
            return stream_error(st.send.stop_code or E.CANCELLED, "reply")
        try:
            self.check_peer_limit(size, "reply")
        except MessageTooLarge as exc:
            return exc
        unacked = self._core.unacked_total()
        budget = self._config.connection_send_buffer
        if unacked and unacked + size > budget:
            return MessageRefused(
                f"reply: not sent, the requester has {unacked} bytes unacknowledged on this "
                f"connection and {size} more would pass Config.connection_send_buffer ({budget})",
                error_code=E.BUSY,
            )
        return None

    async def open_bi(self) -> BidirectionalStream:
        """`Connection.open_bi`."""
        st = await self._open_raw(K.RAW_BIDI)
        st.handle = handle = BidirectionalStream._create(self, st)
        return handle

    async def open_uni(self) -> SendStream:
        """`Connection.open_uni`."""
        st = await self._open_raw(K.RAW_UNI)
        st.handle = handle = SendStream._create(self, st)
        return handle

    async def accept_bi(self) -> BidirectionalStream:
        """`Connection.accept_bi`."""
        st = await self._accept(uni=False)
        st.handle = handle = BidirectionalStream._create(self, st)
        return handle

    async def accept_uni(self) -> ReceiveStream:
        """`Connection.accept_uni`."""
        st = await self._accept(uni=True)
        st.handle = handle = ReceiveStream._create(self, st)
        return handle

    def route_protocol(self, sid: int, name: str, conn: Connection, host: ConnectionHost) -> None:
        """Hand the peer's PROTOCOL stream ``sid`` to the host's handler, or reset it."""
        st = self.session.streams.get(sid)
        if st is None:
            return  # reset by the peer already
        st.handle = stream = BidirectionalStream._create(self, st)
        if code := host.protocols.offer(conn, name, stream):
            stream.reset(code)
            host.count_refused(code)

    async def open_protocol(self, name: str) -> BidirectionalStream:
        """`Connection.open_protocol`: a PROTOCOL stream (preamble, then the name)."""
        head = _wire.encode_raw_preamble(K.PROTOCOL) + name_field(name)
        st = await self._open_raw(K.RAW_BIDI, head)
        st.handle = handle = BidirectionalStream._create(self, st)
        return handle

    async def _open_raw(self, kind: _wire.StreamKind, head: bytes = b"") -> StreamState:
        self.check_usable()
        uni = kind is K.RAW_UNI
        # Raw streams share Config.max_concurrent_streams with messages: an
        # opener waits for a free slot (the peer's stream credit) instead of
        # piling up streams QUIC cannot open yet.
        await self.take_slot(uni=uni)
        st = self.session.open_stream(kind, slot=True)
        # The preamble makes the stream exist for the peer at once.
        self._core.send(st.sid, head or _wire.encode_raw_preamble(kind))
        self._transmit(False)
        return st

    async def _accept(self, *, uni: bool) -> StreamState:
        queue = self.session.accept_queue[uni]
        self.check_usable()
        if queue:
            await trio.lowlevel.checkpoint()
            return queue.popleft()
        while True:
            self.check_usable()
            if queue:
                return queue.popleft()
            await self._progress.park()

    async def flush_control(self, limit: float) -> None:
        """Let the receipts already queued reach the peer before a close.

        A CONNECTION_CLOSE ends the connection at once: without this, a peer
        whose reply we just read would never learn that it arrived.  A
        handshake still finishing is waited for too: a close sent before it
        can only be a transport APPLICATION_ERROR, not a graceful close.
        Records that need not arrive (SETTINGS, OBSERVED_ADDRESS) are not
        waited for.
        """
        session = self.session
        sid = session.control.sid
        if sid is None or session.close_exc is not None or session.closed_locally:
            await trio.lowlevel.checkpoint()
            return
        # Acknowledge what arrived first: a peer whose reply we just read must
        # not see its reply fail because our ACK was still delayed.
        self._core.ack_now(trio.current_time())
        session.want_transmit = True
        self._sync()
        with trio.move_on_after(limit):
            while session.close_exc is None and (
                not session.established
                or session.control.undelivered(self._core.send_progress(sid).unacked)
                or self._core.ack_pending()
            ):
                await self._progress.park()

    async def take_slot(self, *, uni: bool, parks_later: bool = False) -> None:
        """Wait for one of our stream slots (`Config.max_concurrent_streams`).

        Messages and raw streams share them: an opener waits for a free slot
        (the peer's stream credit) instead of piling up streams QUIC cannot
        open yet.  ``parks_later``: the caller parks anyway (for a receipt or
        a reply), so a free slot is taken without a schedule point and the
        data is queued in the same scheduler pass as the call: the sender
        task then packs every caller woken by one input together.
        """
        slots = self.session.slots_free
        if parks_later and slots[uni] > 0:
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            await trio.lowlevel.checkpoint()
        while True:
            self.check_usable()
            if slots[uni] > 0:
                slots[uni] -= 1
                return
            await self._progress.park()

    def set_priority(self, st: StreamState, priority: int) -> None:
        """`SendStream.set_priority`."""
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, got {priority!r}")
        if st.send.started and not st.send.closed:
            self._core.set_priority(st.sid, priority)

    async def raw_send(self, st: StreamState, data: bytes | bytearray | memoryview) -> None:
        if st.send.closed:
            raise trio.ClosedResourceError("this stream's sending side was closed")
        try:
            await self.write(st, data, end=False, what="stream")
        except ConnectionClosed as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def raw_wait_acked(self, st: StreamState) -> None:
        """Wait until every byte written on ``st`` is acknowledged (or cannot be)."""
        await trio.lowlevel.checkpoint()
        while self.session.close_exc is None and not self.session.closed_locally:
            p = self._core.send_progress(st.sid)
            if p.finished or p.unacked == 0 or p.reset_code is not None:
                return
            await self._progress.park()

    async def raw_wait_writable(self, st: StreamState) -> None:
        await trio.lowlevel.checkpoint()
        send = st.send
        if send.closed:
            raise trio.ClosedResourceError("this stream's sending side was closed")
        while not send.closed and send.stop_code is None and self.session.close_exc is None:
            if self.session.closed_locally or self.session.send_room(st) > 0:
                return
            await self._progress.park()

    def raw_send_eof(self, st: StreamState) -> None:
        if st.send.closed:
            return
        if st.send.stop_code is not None:
            raise stream_error(st.send.stop_code, "stream")
        if self.session.close_exc is not None:
            raise trio.BrokenResourceError(str(self.session.close_exc)) from self.session.close_exc
        self.session.close_send(st)
        self._sync()

    def raw_reset(self, st: StreamState, code: int) -> None:
        """Abort both directions of a raw stream with ``code`` (RESET_STREAM, STOP_SENDING)."""
        session = self.session
        send, recv = st.send, st.recv
        if session.close_exc is None:
            if send.started and not send.closed and send.stop_code is None:
                self._core.reset(st.sid, code)
            if recv.state is RecvState.RECV:
                self._core.stop(st.sid, code)
            session.want_transmit = True
        if send.started and not send.closed:
            send.reset()
        if not recv.stopped and recv.state is not RecvState.NONE:
            recv.stop()
        session.touched.append(st.sid)
        session.table.release(st)
        session.table.maybe_forget(st)
        self._sync()

    def raw_close_send(self, st: StreamState) -> None:
        self.session.close_send(st)
        self._sync()

    def raw_close_receive(self, st: StreamState) -> None:
        self.session.close_receive(st)
        self._sync()

    async def raw_receive(self, st: StreamState, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        recv = st.recv
        while True:
            if recv.stopped:
                if st.overrun is not None:
                    raise trio.BrokenResourceError(st.overrun)
                raise trio.ClosedResourceError("this stream's receiving side was closed")
            if recv.buf:
                chunk = bytes(recv.buf[:max_bytes])
                del recv.buf[:max_bytes]
                self.session.table.release(st, len(chunk))
                if not recv.buf:
                    self.session.table.maybe_forget(st)
                return chunk
            if recv.state is RecvState.FIN:
                return b""
            if recv.reset_code is not None:
                raise stream_error(recv.reset_code, "stream")
            if self.session.close_exc is not None:
                raise trio.BrokenResourceError(
                    str(self.session.close_exc)
                ) from self.session.close_exc
            await self._waiters.wait(st.sid)

    def check_peer_limit(self, size: int, what: str) -> None:
        limit = self.session.control.peer_max_message_size
        if limit is not None and size > limit:
            raise MessageTooLarge(
                f"{what} of {size} bytes is over the peer's limit of {limit} bytes",
                error_code=E.TOO_LARGE,
            )
