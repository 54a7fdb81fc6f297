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
wakes the waiters it may concern (`StreamIO.wake`: those parked on a
stream the change touched, those on the connection's lot; all after a
close); waiters re-check their own condition when woken.  User calls mutate the core and mark the
connection dirty (the driver's send task transmits it) or, for a lone
exchange, transmit from the calling task.  After a close is seen (ours or
the peer's) every waiter fails promptly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, final

import trio

from . import _admission, _quic, _sessionevents, _wire
from ._connapi import ConnectionExtras, check_priority
from ._connstats import ConnectionStatistics
from ._errors import ConnectError, ConnectionClosed
from ._message import Message
from ._observed import AddressObserved
from ._peer import PeerAddress
from ._session import Phase, Session
from ._streamio import SendOutcome, StreamIO, payload_view
from ._util import NoPublicConstructor

if TYPE_CHECKING:
    from ._host import ConnectionHost
    from ._identity import NodeId
    from ._quic import Address
    from ._streams import BidirectionalStream, ReceiveStream, SendStream

__all__ = ["Connection", "ConnectionStatistics"]

_UNRELIABLE = ("unreliable_sent", "unreliable_received", "unreliable_dropped")


@final
class Connection(ConnectionExtras, metaclass=NoPublicConstructor):
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
        self.io = StreamIO(self.session, transmit=self._transmit, sync=self._sync)
        # Retirement of a duplicate connection (see _pool and _wire GOAWAY).
        self._replaced_by: Connection | None = None
        # Driver bookkeeping (the timer heap, keep-alive, counters).
        self.timer_at: float | None = None
        self.next_ping_at: float | None = None
        self.heap_at = math.inf  # deadline of our live entry in the driver's timer heap
        self.ping_uid = 0
        #: When the handshake began, until it is established (`_metrics.Tally`).
        self.handshake_began: float | None = None
        self.wrote = False  # stream data queued since the last transmit (ACKs ride along)
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    # ------------------------------------------------------------ properties
    @property
    def remote_address(self) -> Address:
        """The peer's current socket address (it can change if the peer migrates; see `peer`)."""
        addr = self._core.peer_address() or self._wire_address
        return self._host.present_address(addr)

    @property
    def peer(self) -> PeerAddress:
        """The peer as `Endpoint.connect` takes it (`str` gives the text form): ``<node id>@
        <address>`` (the current `remote_address`), or ``<node id>/via/<relay>`` if relayed."""
        relay = self._host.path_info(self)[1]
        return PeerAddress(self.peer_id, None if relay else self.remote_address, relay=relay)

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
            **{key: int(s[key]) for key in ("packets_lost", "path_mtu")},
            # The peer's control stream is plumbing, not an open stream.
            open_streams=len(session.streams) - (session.control.peer_sid is not None),
            path=self.path,
            **dict(zip(_UNRELIABLE, self._core.datagram_counts, strict=True)),
        )

    @property
    def is_retired(self) -> bool:
        """Whether this is a duplicate being drained in favour of `replacement`.

        Happens after a simultaneous open (both peers dialled each other):
        both sides keep the same one of the two connections.  New messages
        and streams opened on a retired connection go to the kept one; what
        was in flight finishes here, then it closes (code 0).
        """
        return self.session.control.goaway_sent

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
        """Forward the session's events to the host, then wake whom they concern."""
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
        self.io.wake()

    def _forward(self, ev: _sessionevents.SessionEvent) -> None:
        host = self._host
        if isinstance(ev, _sessionevents.RouteAdded):
            host.route_add(ev.cid, self)
        elif isinstance(ev, _sessionevents.RouteRemoved):
            host.route_remove(ev.cid, self)
        elif isinstance(ev, _sessionevents.MessageArrived):
            msg = Message._create(
                payload=ev.payload,
                sender=self.peer_id,
                connection=self,
                stream_id=ev.sid if ev.request else None,
                stream=None if ev.streamed is None else self.session.streams[ev.sid],
                size=ev.streamed,
            )
            delivered = host.deliver(msg, self._budget_key, ev.reserved)
            self.session.message_taken(ev.sid, delivered)
        elif isinstance(ev, _sessionevents.ProtocolOpened):
            self.io.route_protocol(ev.sid, ev.name, self, host)
        elif isinstance(ev, _sessionevents.StreamRefused):
            host.count_refused(ev.code)
        elif isinstance(ev, _sessionevents.AdmissionNeeded):
            verdict = host.judge_peer(self)
            if verdict is not None:
                self.session.decide_admission(verdict, trio.current_time())
        elif isinstance(ev, _sessionevents.Established):
            self.established_event.set()
            host.connection_established(self)
        elif isinstance(ev, _sessionevents.PeerGoaway):
            host.peer_goaway(self)
        elif isinstance(ev, AddressObserved):
            host.address_observed(self, ev.address)
        elif isinstance(ev, _sessionevents.Closed):
            self._closed.set()
            self.established_event.set()  # wake a connect() waiting on the handshake
            self.next_ping_at = None
            host.connection_closed(self)

    def _transmit(self, lone: bool) -> None:
        """Queued data goes out: from this task for a lone exchange (no wake-up
        of the send task on the latency path), else packed by the send task."""
        self.wrote = True
        if lone:
            self._host.flush(self)
        else:
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

    def fail_handshake(self, error: ConnectError, reason: str = "handshake timed out") -> None:
        """Give up on the handshake with ``error`` (the dialler's timeout, an ICMP report).

        :meta private:
        """
        if self.session.handshake_error is None:
            self.session.handshake_error = error
        self.close_locally(_wire.CloseCode.NO_ERROR, reason)

    # ------------------------------------------------------------ waiting
    async def wait_established(self) -> None:
        await self.established_event.wait()
        if self.session.handshake_error is not None:
            raise self.session.handshake_error
        if self.session.close_exc is not None and self.session.phase is not Phase.OPEN:
            raise ConnectError("connection closed during the handshake") from self.session.close_exc

    # ----------------------------------------------------------- messages
    async def send(self, payload: bytes | bytearray | memoryview, *, priority: int = 0) -> None:
        """Send one message on a new unidirectional stream.

        Returns once the peer confirmed, with a RECEIPT on its control
        stream, that the whole message is in its receive queue (so the peer's
        `Endpoint.receive` will return it).  Blocks while the send buffers are
        full (backpressure) and while `Config.max_concurrent_streams` sends
        are already in progress.

        Ordering: each message has its own stream, so messages sent
        concurrently (from several tasks) may be received in any order.  A
        ``send`` awaited before the next one starts is in the peer's queue
        before the next is sent, so one task's messages arrive in order.

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
        have received the message.  The connection stays usable.  A higher
        ``priority`` overtakes lower ones (see `SendStream.set_priority`).
        """
        await self.send_message(payload_view(payload), SendOutcome(), priority=priority)

    async def send_message(
        self, view: memoryview, outcome: SendOutcome, *, priority: int = 0
    ) -> None:
        """`send`, with what a failure left behind in ``outcome`` (`Endpoint.send`).

        :meta private:
        """
        if self._replaced_by is not None:
            return await self._replaced_by.send_message(view, outcome, priority=priority)
        await self.io.send_message(view, outcome, check_priority(priority))

    async def request(self, payload: bytes | bytearray | memoryview, *, priority: int = 0) -> bytes:
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
        reply, if any, is discarded.  The connection stays usable.  The
        ``priority`` is as for `send`.
        """
        view = payload_view(payload)
        if self._replaced_by is not None:
            return await self._replaced_by.request(view, priority=priority)
        return await self.io.request(view, check_priority(priority))

    async def reply_to(
        self, sid: int, payload: bytes | bytearray | memoryview, *, wait_for_ack: bool
    ) -> bool:
        """`Message.reply`.

        :meta private:
        """
        return await self.io.reply_to(sid, payload, wait_for_ack=wait_for_ack)

    def reject_request(self, sid: int, code: int) -> None:
        """`Message.reject`.

        :meta private:
        """
        self.io.reject_request(sid, code)

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
        if self._replaced_by is not None:
            return await self._replaced_by.open_bi()
        return await self.io.open_bi()

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
        if self._replaced_by is not None:
            return await self._replaced_by.open_uni()
        return await self.io.open_uni()

    async def accept_bi(self) -> BidirectionalStream:
        """Wait for the next raw bidirectional stream the peer opened.

        At most `Config.stream_accept_queue_size` wait here; the peer's
        further streams are refused (``REFUSED``).

        Raises:
            ConnectionClosed: the connection is gone.
            trio.ClosedResourceError: we closed this connection.

        Cancellation: nothing is lost; the stream stays queued.
        """
        return await self.io.accept_bi()

    async def accept_uni(self) -> ReceiveStream:
        """Wait for the next raw unidirectional stream the peer opened.

        Same limits, errors and cancellation as `accept_bi`.
        """
        return await self.io.accept_uni()

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
        """`StreamIO.flush_control`: receipts reach the peer before a close.

        :meta private:
        """
        await self.io.flush_control(limit)

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
