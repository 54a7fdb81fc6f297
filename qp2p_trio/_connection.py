# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""One authenticated QUIC connection to a peer: the Trio side of a `Session`.

Theory of operation
-------------------
The protocol lives in a sans-IO `_session.Session` (streams, the control
stream, refusals, the receive budget).  A `Connection` adds what needs Trio:
waiting, the public message and raw-stream API, and the link to the driver,
which it knows only as the `_host.ConnectionHost` interface.

The driver feeds a connection (`_on_input` after a datagram, a timer or a
transmit) and transmits for it; everything that changes state is
synchronous.  After every change the connection forwards the session's
events to the host (`_sync`: routes, established, closed, messages) and
wakes ``_progress``, a parking lot every waiter parks on; waiters re-check
their own condition when woken.  User calls mutate the core and mark the
connection dirty (the driver's send task transmits it) or, for a lone
exchange, transmit from the calling task.  After a close is seen (ours or
the peer's) every waiter fails promptly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, final

import attrs
import trio

from . import _admission, _quic, _session, _wire
from ._errors import ConnectError, ConnectionClosed, MessageRefused, MessageTooLarge, StreamReset
from ._message import Message
from ._session import Phase, Session, StreamState
from ._streams import BidirectionalStream, ReceiveStream, SendStream, stream_error
from ._util import NoPublicConstructor

if TYPE_CHECKING:
    from ._host import ConnectionHost
    from ._identity import NodeId
    from ._quic import Address

__all__ = ["Connection", "ConnectionStatistics"]


K = _wire.StreamKind
E = _wire.StreamErrorCode


@final
@attrs.frozen
class ConnectionStatistics:
    """A snapshot of a connection's counters (`Connection.statistics`).

    Attributes:
        rtt: smoothed round-trip time in seconds (0 before the first sample).
        rtt_min: lowest RTT seen.
        congestion_window: bytes the congestion controller allows in flight.
        bytes_in_flight: bytes sent and not yet acknowledged or lost.
        datagrams_sent / datagrams_received: UDP datagrams.
        bytes_sent / bytes_received: UDP payload bytes.
        packets_lost: QUIC packets declared lost.
        open_streams: streams this connection still tracks.
    """

    rtt: float
    rtt_min: float
    congestion_window: int
    bytes_in_flight: int
    datagrams_sent: int
    datagrams_received: int
    bytes_sent: int
    bytes_received: int
    packets_lost: int
    open_streams: int


@final
class Connection(metaclass=NoPublicConstructor):
    """An authenticated QUIC connection to one peer.

    Get one from `Endpoint.connect` or `Endpoint.accept`; it has no public
    constructor.  Messages the peer sends arrive through the endpoint's
    `Endpoint.receive`, whichever connection carried them.
    """

    def __init__(
        self,
        host: ConnectionHost,
        core: _quic.QuicCore,
        peer_address: Address,
        *,
        expected_peer: NodeId | None,
    ) -> None:
        self._host = host
        self._config = host.config
        self._core = core
        self._wire_address = peer_address
        # The receive budget's peer: one share per address, not per connection.
        self._budget_key = _admission.address_key(str(peer_address[0]))
        self.session = Session(
            core,
            host.config,
            expected_peer=expected_peer,
            incarnation=host.incarnation,
            wall_clock=host.wall_clock,
            budget=host.budget,
            budget_key=self._budget_key,
            early_settings=not host.may_refuse,
        )
        self.established_event = trio.Event()
        self._closed = trio.Event()
        self.close_sent_event = trio.Event()
        self._progress = trio.lowlevel.ParkingLot()
        # Retirement of a duplicate connection (see _pool and _wire GOAWAY).
        self._replaced_by: Connection | None = None
        # Driver bookkeeping (the timer heap, keep-alive, counters).
        self.timer_at: float | None = None
        self.next_ping_at: float | None = None
        self.heap_at = math.inf  # deadline of our live entry in the driver's timer heap
        self.ping_uid = 0
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    # ------------------------------------------------------------ properties
    @property
    def peer_address(self) -> Address:
        """The peer's current socket address (it can change if the peer migrates)."""
        addr = self._core.peer_address() or self._wire_address
        return self._host.present_address(addr)

    @property
    def peer_id(self) -> NodeId:
        """The node id the peer proved during the handshake."""
        peer = self.session.peer_id
        if peer is None:  # pragma: no cover - connections are exposed verified
            raise RuntimeError("peer not verified yet")
        return peer

    @property
    def is_closed(self) -> bool:
        """Whether the connection has closed (either side, or idle timeout)."""
        return self.session.close_exc is not None

    @property
    def close_reason(self) -> ConnectionClosed | None:
        """How the connection ended, or ``None`` while it is open."""
        return self.session.close_exc

    def __repr__(self) -> str:
        peer = self.session.peer_id
        return (
            f"<qp2p_trio.Connection peer={peer.short() if peer else '?'} "
            f"address={self.peer_address!r} {self.session.phase.value}>"
        )

    def statistics(self) -> ConnectionStatistics:
        """Return an immutable snapshot of this connection's counters."""
        s = self._core.statistics()
        session = self.session
        return ConnectionStatistics(
            rtt=float(s["rtt"]),
            rtt_min=float(s["rtt_min"]),
            congestion_window=int(s["congestion_window"]),
            bytes_in_flight=int(s["bytes_in_flight"]),
            datagrams_sent=self.datagrams_sent,
            datagrams_received=self.datagrams_received,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            packets_lost=int(s["packets_lost"]),
            # The peer's control stream is plumbing, not an open stream.
            open_streams=len(session.streams) - (session.peer_ctrl_sid is not None),
        )

    @property
    def is_retired(self) -> bool:
        """Whether this is a duplicate being drained in favour of `replacement`.

        Happens after a simultaneous open (both peers dialled each other):
        both sides keep the same one of the two connections.  New messages
        and streams opened on a retired connection go to the kept one; what
        was in flight finishes here, then it closes (code 0).
        """
        return self.session.goaway_sent

    @property
    def replacement(self) -> Connection | None:
        """The connection kept instead of this retired one, or ``None``."""
        return self._replaced_by

    # --------------------------------------------------------- driver-facing
    @property
    def core(self) -> _quic.QuicCore:
        return self._core

    def after_transmit(self) -> None:
        self.session.after_transmit()
        if self.session.close_sent:
            self.close_sent_event.set()

    def on_input(self) -> None:
        """Process whatever the core produced after input, a timer or an API call.

        :meta private:
        """
        self.session.process(trio.current_time())
        self._sync()

    def contain(self, exc: Exception, *, core_broken: bool = False) -> None:
        """Close this connection alone after an unexpected error (see `Session.contain`).

        :meta private:
        """
        self.session.contain(exc, core_broken=core_broken)
        self._sync()

    def check_stalls(self, now: float) -> None:
        self.session.check_stalls(now)
        self._sync()

    def _sync(self) -> None:
        """Forward the session's events to the host, then wake every waiter."""
        session = self.session
        host = self._host
        events = session.events
        while events:
            batch, session.events = events, []
            for ev in batch:
                self._forward(ev)
            events = session.events
        if session.want_transmit:
            session.want_transmit = False
            host.mark_dirty(self)
        if session.close_sent:
            self.close_sent_event.set()
        self._progress.unpark_all()

    def _forward(self, ev: _session.SessionEvent) -> None:
        host = self._host
        if isinstance(ev, _session.RouteAdded):
            host.route_add(ev.cid, self)
        elif isinstance(ev, _session.RouteRemoved):
            host.route_remove(ev.cid, self)
        elif isinstance(ev, _session.MessageArrived):
            msg = Message._create(
                payload=ev.payload,
                sender=self.peer_id,
                connection=self,
                stream_id=ev.sid if ev.request else None,
            )
            delivered = host.deliver(msg, self._budget_key, ev.reserved)
            self.session.message_taken(ev.sid, delivered)
        elif isinstance(ev, _session.StreamRefused):
            host.count_refused(ev.code)
        elif isinstance(ev, _session.AdmissionNeeded):
            verdict = host.judge_peer(self)
            if verdict is not None:
                self.session.decide_admission(verdict, trio.current_time())
        elif isinstance(ev, _session.Established):
            self.established_event.set()
            host.connection_established(self)
        elif isinstance(ev, _session.PeerGoaway):
            host.peer_goaway(self)
        elif isinstance(ev, _session.Closed):
            self._closed.set()
            self.established_event.set()  # wake a connect() waiting on the handshake
            self.next_ping_at = None
            host.connection_closed(self)

    def _dirty(self) -> None:
        self._host.mark_dirty(self)

    def retire(self, winner: Connection | None) -> None:
        """Open no more streams here; close once both sides drained it.

        :meta private:
        """
        if winner is not None:
            self._replaced_by = winner
        if self.session.retire():
            self.next_ping_at = None  # let it idle out if the peer never agrees
        self._sync()

    def decide_admission(self, admitted: bool) -> None:
        """Open the connection to the verified peer, or refuse (close) it.

        :meta private:
        """
        self.session.decide_admission(admitted, trio.current_time())
        self._sync()

    def fail_handshake(self, error: ConnectError) -> None:
        """Give up on the handshake with ``error`` (the dialler's timeout).

        :meta private:
        """
        if self.session.handshake_error is None:
            self.session.handshake_error = error
        self.close_locally(_wire.CloseCode.NO_ERROR, "handshake timed out")

    # ------------------------------------------------------------ waiting
    def _check_usable(self) -> None:
        if self.session.closed_locally:
            raise trio.ClosedResourceError("this connection was closed")
        if self.session.close_exc is not None:
            raise self.session.close_exc

    async def wait_established(self) -> None:
        await self.established_event.wait()
        if self.session.handshake_error is not None:
            raise self.session.handshake_error
        if self.session.close_exc is not None and self.session.phase is not Phase.OPEN:
            raise ConnectError("connection closed during the handshake") from self.session.close_exc

    def _raise_if_send_broken(self, st: StreamState, what: str) -> None:
        if st.stop_code is not None:
            raise stream_error(st.stop_code, what)
        self._check_usable()

    async def _write(
        self, st: StreamState, data: bytes | bytearray | memoryview, *, end: bool, what: str
    ) -> None:
        """Queue ``data`` on a stream within the send-buffer limits."""
        view = memoryview(data).cast("B")
        total = len(view)
        offset = 0
        while True:
            self._raise_if_send_broken(st, what)
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
                        self._host.flush(self)
                    else:
                        # Concurrent streams: let the sender task pack them
                        # together once every writer has queued its data.
                        self._dirty()
                offset += n
                if last:
                    return
            await self._progress.park()

    async def _wait_receipt(self, st: StreamState, what: str) -> None:
        """Wait for the peer's RECEIPT of our message or reply on ``st``."""
        while True:
            code = st.receipt
            if code is not None:
                if code == 0:
                    return
                raise stream_error(code, what)
            self._raise_if_send_broken(st, what)
            p = self._core.send_progress(st.sid)
            if p.reset_code is not None:
                raise stream_error(st.stop_code or p.reset_code, what)
            await self._progress.park()

    async def _wait_reply_acked(self, st: StreamState) -> None:
        """Wait until the requester's QUIC stack acknowledged the whole reply."""
        while True:
            if st.receipt:  # the requester refused it (it only says so)
                raise stream_error(st.receipt, "reply")
            self._raise_if_send_broken(st, "reply")
            p = self._core.send_progress(st.sid)
            if p.reset_code is not None:
                raise stream_error(st.stop_code or p.reset_code, "reply")
            if p.finished:
                return
            await self._progress.park()

    def _abandon(self, st: StreamState) -> None:
        """Reset and stop a stream of ours (a cancelled or failed call)."""
        self.session.abandon(st, E.CANCELLED)
        self._sync()

    def reject_request(self, sid: int, code: int) -> None:
        """Turn down the request on ``sid`` (`Message.reject`).

        :meta private:
        """
        self.session.reject(sid, code)
        self._sync()

    # ----------------------------------------------------------- messages
    async def send(self, payload: bytes | bytearray | memoryview) -> None:
        """Send one message on a new unidirectional stream.

        Returns once the peer confirmed, with a RECEIPT on its control
        stream, that the whole message is in its receive queue (so the peer's
        `Endpoint.receive` will return it).  Blocks while the send buffers are
        full (backpressure) and while `Config.max_concurrent_streams` sends
        are already in progress.

        Raises:
            MessageTooLarge: the peer's `Config.max_message_size` is smaller
                (raised before sending anything once the peer's SETTINGS
                arrived, which is normally right after the handshake).
            MessageRefused: the peer refused it (its receive queue is full,
                ``error_code`` BUSY, or it is shutting down, CLOSED); nothing
                was delivered, so sending again later is safe.
            StreamReset: the peer reset the stream.
            ConnectionClosed: the connection is gone.
            trio.ClosedResourceError: we closed this connection.
            TypeError: ``payload`` is not bytes-like.

        Cancellation: the stream is reset and the peer discards the partial
        message.  If every byte had already been acknowledged, the peer may
        have received the message.  The connection stays usable.
        """
        await self.send_message(_payload_view(payload), _SendOutcome())

    async def send_message(self, view: memoryview, outcome: _SendOutcome) -> None:
        if self._replaced_by is not None:
            return await self._replaced_by.send_message(view, outcome)
        self._check_usable()
        self.session.check_peer_limit(len(view), "message")
        await self._take_slot(uni=True)
        try:
            st = self.session.open_stream(K.MESSAGE, slot=False)
            sid = st.sid
            try:
                self._core.send(sid, _wire.encode_message_head(K.MESSAGE, len(view)))
                await self._write(st, view, end=True, what="message")
                st.local_send_closed = True
                await self._wait_receipt(st, "message")
            except BaseException:
                # Whether the peer's QUIC stack had every byte: a retry must
                # not duplicate a message the peer may already have.
                outcome.acked = self._core.send_progress(sid).finished
                self._abandon(st)
                raise
            self.session.forget(st)
        finally:
            self.session.slots_free[True] += 1

    async def request(self, payload: bytes | bytearray | memoryview) -> bytes:
        """Send a request on a new bidirectional stream and return the reply.

        The peer receives a `Message` with ``expects_reply`` true and answers
        with `Message.reply`.  The reply is bounded by our own
        `Config.max_message_size`.

        Raises:
            MessageTooLarge: the request exceeds the peer's limit, or the
                reply exceeds ours.
            MessageRefused: the peer refused the request (busy) or rejected
                it without a reply (``error_code`` ``NO_REPLY``).
            StreamReset: the peer reset the stream.
            RemoteProtocolError: the reply was malformed.
            ConnectionClosed: the connection is gone.
            trio.ClosedResourceError: we closed this connection.

        Cancellation: the stream is reset in both directions; the peer's
        reply, if any, is discarded.  The connection stays usable.
        """
        view = _payload_view(payload)
        if self._replaced_by is not None:
            return await self._replaced_by.request(view)
        self._check_usable()
        self.session.check_peer_limit(len(view), "request")
        await self._take_slot(uni=False)
        try:
            st = self.session.open_stream(K.REQUEST, slot=False)
            sid = st.sid
            st.parser = _wire.StreamParser(
                allowed={K.REPLY}, max_message_size=self._config.max_message_size
            )
            try:
                self._core.send(sid, _wire.encode_message_head(K.REQUEST, len(view)))
                await self._write(st, view, end=True, what="request")
                st.local_send_closed = True
                while st.reply is None:
                    if st.error is not None:
                        raise st.error
                    if st.reset_code is not None:
                        raise stream_error(st.reset_code, "request")
                    self._raise_if_send_broken(st, "request")
                    await self._progress.park()
            except BaseException:
                self._abandon(st)
                raise
            self.session.forget(st)
            return st.reply
        finally:
            self.session.slots_free[False] += 1

    async def reply_to(
        self, sid: int, payload: bytes | bytearray | memoryview, *, wait_for_ack: bool
    ) -> bool:
        view = _payload_view(payload)
        await trio.lowlevel.checkpoint()
        st = self.session.streams.get(sid)
        problem = self._reply_problem(st, len(view))
        if problem is not None:
            self.reject_request(sid, problem.error_code if isinstance(problem, StreamReset) else 0)
            if wait_for_ack:
                raise problem
            return False
        assert st is not None
        # Queued whole, never waiting on the requester: a slow or hostile one
        # cannot stall the caller (a handler loop serving everyone).  Memory
        # stays bounded by _reply_problem's check of unacknowledged bytes.
        st.sending = True
        st.local_send_closed = True
        self._core.send(sid, _wire.encode_message_head(K.REPLY, len(view)))
        self._core.send(sid, view, end_stream=True)
        if len(self.session.streams) <= 2:
            self._host.flush(self)
        else:
            self._dirty()
        if wait_for_ack:
            try:
                await self._wait_reply_acked(st)
            except BaseException:
                self._abandon(st)
                raise
        self.session.forget(st)
        return True

    def _reply_problem(self, st: StreamState | None, size: int) -> Exception | None:
        """Why a reply of ``size`` bytes cannot be queued on ``st`` now, or None."""
        if self.session.closed_locally:
            return trio.ClosedResourceError("this connection was closed")
        if self.session.close_exc is not None:
            return self.session.close_exc
        if st is None or st.local_send_closed:
            return StreamReset("reply: the requester abandoned the request", error_code=E.CANCELLED)
        if st.stop_code is not None or not self._core.writable(st.sid):
            return stream_error(st.stop_code or E.CANCELLED, "reply")
        try:
            self.session.check_peer_limit(size, "reply")
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

    # --------------------------------------------------------- raw streams
    async def open_bi(self) -> BidirectionalStream:
        """Open a raw bidirectional stream; the peer gets it from `accept_bi`.

        Raises:
            ConnectionClosed: the connection is gone.
            trio.ClosedResourceError: we closed this connection.

        Blocks while `Config.max_concurrent_streams` streams of this
        direction are open (raw streams and messages in flight share them);
        a raw stream's slot is freed once both its directions are finished.

        Cancellation: nothing is opened.
        """
        return await self._open_raw(K.RAW_BIDI)  # type: ignore[return-value]

    async def open_uni(self) -> SendStream:
        """Open a raw unidirectional stream; the peer gets it from `accept_uni`.

        Raises:
            ConnectionClosed: the connection is gone.
            trio.ClosedResourceError: we closed this connection.

        Blocks while `Config.max_concurrent_streams` streams of this
        direction are open (raw streams and messages in flight share them);
        a raw stream's slot is freed once both its directions are finished.

        Cancellation: nothing is opened.
        """
        return await self._open_raw(K.RAW_UNI)  # type: ignore[return-value]

    async def _open_raw(self, kind: _wire.StreamKind) -> SendStream | BidirectionalStream:
        if self._replaced_by is not None:
            return await self._replaced_by._open_raw(kind)
        self._check_usable()
        uni = kind is K.RAW_UNI
        # Raw streams share Config.max_concurrent_streams with messages: an
        # opener waits for a free slot (the peer's stream credit) instead of
        # piling up streams QUIC cannot open yet.
        await self._take_slot(uni=uni)
        st = self.session.open_stream(kind, slot=True)
        sid = st.sid
        # The preamble makes the stream exist for the peer at once.
        self._core.send(sid, _wire.encode_raw_preamble(kind))
        self._dirty()
        handle: SendStream | BidirectionalStream = (
            SendStream._create(self, st) if uni else BidirectionalStream._create(self, st)
        )
        st.handle = handle
        return handle

    async def accept_bi(self) -> BidirectionalStream:
        """Wait for the next raw bidirectional stream the peer opened.

        At most `Config.stream_accept_queue_size` wait here; the peer's
        further streams are refused (``REFUSED``).

        Raises:
            ConnectionClosed: the connection is gone.
            trio.ClosedResourceError: we closed this connection.

        Cancellation: nothing is lost; the stream stays queued.
        """
        st = await self._accept(uni=False)
        handle = BidirectionalStream._create(self, st)
        st.handle = handle
        return handle

    async def accept_uni(self) -> ReceiveStream:
        """Wait for the next raw unidirectional stream the peer opened.

        Same limits, errors and cancellation as `accept_bi`.
        """
        st = await self._accept(uni=True)
        handle = ReceiveStream._create(self, st)
        st.handle = handle
        return handle

    async def _accept(self, *, uni: bool) -> StreamState:
        queue = self.session.accept_queue[uni]
        self._check_usable()
        if queue:
            await trio.lowlevel.checkpoint()
            return queue.popleft()
        while True:
            self._check_usable()
            if queue:
                return queue.popleft()
            await self._progress.park()

    async def _take_slot(self, *, uni: bool) -> None:
        """Wait for one of our stream slots (`Config.max_concurrent_streams`).

        Messages and raw streams share them: an opener waits for a free slot
        (the peer's stream credit) instead of piling up streams QUIC cannot
        open yet.
        """
        slots = self.session.slots_free
        await trio.lowlevel.checkpoint()
        while True:
            self._check_usable()
            if slots[uni] > 0:
                slots[uni] -= 1
                return
            await self._progress.park()

    async def raw_send(self, st: StreamState, data: bytes | bytearray | memoryview) -> None:
        if st.local_send_closed:
            raise trio.ClosedResourceError("this stream's sending side was closed")
        try:
            await self._write(st, data, end=False, what="stream")
        except ConnectionClosed as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def raw_wait_writable(self, st: StreamState) -> None:
        await trio.lowlevel.checkpoint()
        if st.local_send_closed:
            raise trio.ClosedResourceError("this stream's sending side was closed")
        while not st.local_send_closed and st.stop_code is None and self.session.close_exc is None:
            if self.session.closed_locally or self.session.send_room(st) > 0:
                return
            await self._progress.park()

    def raw_send_eof(self, st: StreamState) -> None:
        if st.local_send_closed:
            return
        if st.stop_code is not None:
            raise stream_error(st.stop_code, "stream")
        if self.session.close_exc is not None:
            raise trio.BrokenResourceError(str(self.session.close_exc)) from self.session.close_exc
        self.session.close_send(st)
        self._sync()

    def raw_close_send(self, st: StreamState) -> None:
        self.session.close_send(st)
        self._sync()

    def raw_close_receive(self, st: StreamState) -> None:
        self.session.close_receive(st)
        self._sync()

    async def raw_receive(self, st: StreamState, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        while True:
            if st.local_recv_closed:
                if st.overrun is not None:
                    raise trio.BrokenResourceError(st.overrun)
                raise trio.ClosedResourceError("this stream's receiving side was closed")
            if st.recv_buf:
                chunk = bytes(st.recv_buf[:max_bytes])
                del st.recv_buf[:max_bytes]
                self.session.release(st, len(chunk))
                if not st.recv_buf:
                    self.session.maybe_forget(st)
                return chunk
            if st.recv_fin:
                return b""
            if st.reset_code is not None:
                raise stream_error(st.reset_code, "stream")
            if self.session.close_exc is not None:
                raise trio.BrokenResourceError(
                    str(self.session.close_exc)
                ) from self.session.close_exc
            await self._progress.park()

    # -------------------------------------------------------------- closing
    async def aclose(self, code: int = 0, reason: str = "") -> None:
        """Close the connection gracefully: the peer sees an application close.

        Idempotent.  Receipts for messages we already received are given up
        to half of `Config.close_grace` to reach the peer first, so its
        ``send()`` calls succeed.  Afterwards calls on this connection raise
        `trio.ClosedResourceError`, and calls blocked in other tasks fail
        with it.  Returns once the CONNECTION_CLOSE was sent (bounded by
        `Config.close_grace`).

        Args:
            code: application error code the peer receives (0 = normal).
            reason: short human-readable reason the peer receives.

        Cancellation: the connection is closed anyway; only the wait for
        the close to be sent is cut short.
        """
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < 2**62:
            raise ValueError(f"code must be an int in [0, 2**62), got {code!r}")
        try:
            await self.flush_control(self._config.close_grace / 2)
        finally:
            self.close_locally(code, reason)
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(self._config.close_grace):
            await self.close_sent_event.wait()

    async def flush_control(self, limit: float) -> None:
        """Let the receipts already queued reach the peer before a close.

        A CONNECTION_CLOSE ends the connection at once: without this, a peer
        whose reply we just read would never learn that it arrived.

        :meta private:
        """
        sid = self.session.ctrl_sid
        if sid is None or self.session.close_exc is not None or self.session.closed_locally:
            await trio.lowlevel.checkpoint()
            return
        # Acknowledge what arrived first: a peer whose reply we just read must
        # not see its reply fail because our ACK was still delayed.
        self._core.ack_now(trio.current_time())
        self._dirty()
        with trio.move_on_after(limit):
            while self.session.close_exc is None and (
                self._core.send_progress(sid).unacked > 0 or self._core.ack_pending()
            ):
                await self._progress.park()

    def close_locally(self, code: int, reason: str) -> None:
        self.session.close_locally(code, reason, trio.current_time())
        self._sync()

    async def wait_closed(self) -> ConnectionClosed:
        """Wait until the connection has closed, and return how it ended.

        Cancellation: nothing changes.
        """
        await self._closed.wait()
        assert self.session.close_exc is not None
        return self.session.close_exc


@attrs.define
class _SendOutcome:
    """What a failed send left behind: did the peer acknowledge every byte?"""

    acked: bool = False


def _payload_view(payload: bytes | bytearray | memoryview) -> memoryview:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes-like, got {type(payload).__name__}")
    return memoryview(payload).cast("B")
