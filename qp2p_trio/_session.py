# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The message protocol of one connection, sans-IO.

Theory of operation
-------------------
A `Session` sits on one `QuicCore` and owns everything the qp2p_trio
protocol keeps per connection: the phase, the peer's verified node id,
admission, the close, and the message protocol on the streams (heads,
messages, requests and replies, refusals and receipts, stalls, raw-stream
data).  It delegates the records: the CONTROL streams' state and records
to `_control.ControlStreams`, the stream records (each a `StreamState`
with its two direction machines), the receive budget they hold, our stream
slots and the accept queues to `_streamtable.StreamTable`.  Its events are
`_sessionevents`'; what a close or reset means to a caller is `_classify`'s.

It waits for nothing and reads no clock: `process` takes ``now`` (Trio's
time, for stalled-message checks) and the wall clock is an injected function
(certificate validity).  After every input it leaves `SessionEvent` objects
in `events` for whoever drives it (the Trio `Connection`), which forwards
them to the endpoint's driver; `want_transmit` says the core has something
to send.  Any exception while processing closes this connection alone
(`contain`).

Invariants:

- No stream data is handled before the peer proved its node id and was
  admitted (`_trust`): earlier stream events are held, then replayed.
- Every incoming message reserves its declared size (and one message slot)
  in the receive budget at its head, before any payload byte is buffered,
  and gives it back when refused, reset, or handed over (`MessageArrived`
  carries it on to the receive queue).
- A stream the peer opened keeps its record (a tombstone) until its FIN or
  reset, so data still in flight is never taken for a new stream.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, final

from . import _quic, _wire
from ._certs import verify_peer_chain
from ._classify import connection_closed, handshake_error
from ._control import ControlStreams, Violation
from ._errors import (
    AdmissionRefused,
    ConnectError,
    ConnectionClosed,
    MessageTooLarge,
    PeerIdentityError,
    RemoteProtocolError,
)
from ._sessionevents import (
    AdmissionNeeded,
    Closed,
    Established,
    MessageArrived,
    ProtocolOpened,
    RouteAdded,
    RouteRemoved,
    SessionEvent,
    StreamRefused,
)
from ._streamstate import DELIVERED, QUEUED, RecvState, StreamState, is_uni
from ._streamtable import StreamTable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._budget import ReceiveBudget
    from ._config import Config
    from ._identity import NodeId

__all__ = ["Phase", "Session", "StreamState"]

_log = logging.getLogger("qp2p_trio")

K = _wire.StreamKind
E = _wire.StreamErrorCode


class Phase(enum.Enum):
    HANDSHAKING = "handshaking"
    ADMITTING = "admitting"  # the peer proved its id; its data waits for admission
    OPEN = "open"
    CLOSED = "closed"


@final
class Session:
    """One connection's protocol state (see the module docstring)."""

    def __init__(
        self,
        core: _quic.QuicCore,
        config: Config,
        *,
        expected_peer: NodeId | None,
        incarnation: int,
        wall_clock: Callable[[], float],
        budget: ReceiveBudget[str],
        budget_key: str,
        early_settings: bool = True,
    ) -> None:
        self.core = core
        self._early_settings = early_settings  # False while a policy may refuse the peer
        self.config = config
        self._expected_peer = expected_peer
        self._wall_clock = wall_clock
        self.phase = Phase.HANDSHAKING
        self.peer_id: NodeId | None = None
        self.handshake_error: ConnectError | None = None
        self.established = False
        self.close_exc: ConnectionClosed | None = None
        self.closed_locally = False
        self.close_sent = False
        self._close_in_flight = False  # a close went into the datagrams being sent
        self.broken = False  # aioquic raised: forget without a close (see contain)
        # Every stream's record, the budget they hold, our slots, the accept queues.
        self.table = StreamTable(
            config, budget=budget, budget_key=budget_key, is_client=core.is_client
        )
        self.streams = self.table.streams
        self.slots_free = self.table.slots_free
        self.accept_queue = self.table.accept_queue
        self._held: list[_quic.CoreEvent] = []
        self._held_bytes = 0
        # Both CONTROL streams: SETTINGS, RECEIPT, GOAWAY (retirement of a
        # duplicate, see _pool), OBSERVED_ADDRESS.
        self.control = ControlStreams(
            max_message_size=config.max_message_size, incarnation=incarnation
        )
        self.cids: set[bytes] = set()
        self.stall_at: float | None = None  # next check for stalled messages
        self.events: list[SessionEvent] = []
        #: Streams whose state a waiter reads (data, FIN, reset, STOP_SENDING,
        #: receipt, refusal, local close) changed since the driver last looked.
        self.touched: list[int] = []
        self.want_transmit = False

    # ------------------------------------------------------------ processing
    def process(self, now: float) -> None:
        """Handle whatever the core produced after input, a timer or an API call.

        Whatever goes wrong in here closes this connection alone (`contain`).
        """
        try:
            self._process(now)
        except Exception as exc:
            self.contain(exc)

    def contain(self, exc: Exception, *, core_broken: bool = False) -> None:
        """Close this connection after an unexpected error in handling it (logged).

        ``core_broken``: aioquic itself raised, so its state is not to be
        trusted; the endpoint forgets the connection without a close packet.
        """
        peer = self.peer_id.short() if self.peer_id else "?"
        _log.warning(
            "qp2p_trio: closing the connection to %s after an internal error", peer, exc_info=exc
        )
        self.broken = self.broken or core_broken
        reason = f"internal error: {type(exc).__name__}"
        if self.close_exc is None and not core_broken:
            try:
                self.core.close(_wire.CloseCode.INTERNAL_ERROR, reason)
            except Exception:  # pragma: no cover - aioquic refusing to close
                self.broken = True
            self.want_transmit = True
        if self.close_exc is None:
            term = None if self.broken else self.core.close_seen()
            self._terminated(
                term or _quic.Terminated(_wire.CloseCode.INTERNAL_ERROR, reason, False, False, True)
            )

    def _process(self, now: float) -> None:
        core = self.core
        if self.control.sid is None and (
            self.phase is Phase.OPEN
            or (
                self.phase is Phase.HANDSHAKING
                and not core.is_client
                and core.can_send_early
                and self._early_settings
            )
        ):
            # A server's SETTINGS go out with its handshake flight (0.5-RTT
            # data; nothing secret), so the client is ready as soon as it
            # verified us: connect() takes one round trip, not two.
            self._open_control_stream()
        events = core.events()
        if self._held and self.phase is Phase.OPEN:  # just admitted: replay what waited
            events, self._held = [*self._held, *events], []
        for ev in events:
            self._on_core_event(ev, now)
        if self.established and (rec := self.control.observed_address(core.peer_address())):
            self.send_control(rec)
        term = core.close_seen()
        if term is not None:
            self._terminated(term)
        if self.control.goaway_sent and self._drained():
            self.close_locally(_wire.CloseCode.NO_ERROR, "duplicate connection drained", now)

    def _on_core_event(self, ev: _quic.CoreEvent, now: float) -> None:
        if isinstance(ev, _quic.CidIssued):
            self.cids.add(ev.cid)
            self.events.append(RouteAdded(ev.cid))
        elif isinstance(ev, _quic.CidRetired):
            self.cids.discard(ev.cid)
            self.events.append(RouteRemoved(ev.cid))
        elif isinstance(ev, _quic.HandshakeDone):
            self._handshake_done(now)
        elif isinstance(ev, _quic.Terminated):
            self._terminated(ev)
        elif self.phase in (Phase.HANDSHAKING, Phase.ADMITTING):
            # Stream events before the peer is admitted wait for admission,
            # bounded: a peer may not make us hold more than its first window.
            self._held.append(ev)
            self._held_bytes += len(ev.data) if isinstance(ev, _quic.StreamData) else 64
            if self._held_bytes > 2 * self.config.initial_connection_window:
                self._violation("sent too much before it was admitted")
        elif self.phase is Phase.OPEN:
            self._on_stream_event(ev, now)

    def _handshake_done(self, now: float) -> None:
        try:
            self.peer_id = verify_peer_chain(
                self.core.peer_certificates(), now=self._wall_clock(), expected=self._expected_peer
            )
        except PeerIdentityError as exc:
            self.handshake_error = exc
            self.core.close(_wire.CloseCode.PEER_IDENTITY, str(exc)[:200])
            self.want_transmit = True
            return
        self.phase = Phase.ADMITTING
        self.events.append(AdmissionNeeded())

    def decide_admission(self, admitted: bool, now: float) -> None:
        """Open the verified connection, or refuse the peer (`CloseCode.ADMISSION_REFUSED`)."""
        if not admitted and not self.established and self.handshake_error is None:
            self.handshake_error = AdmissionRefused(
                "our trust policy refused the peer", by_peer=False, peer_id=self.peer_id
            )
        if not admitted:
            self.close_locally(_wire.CloseCode.ADMISSION_REFUSED, "not admitted", now)
        elif self.phase is Phase.ADMITTING and self.close_exc is None:
            self.phase = Phase.OPEN  # `process` opens our control stream, replays the held
            self.process(now)  # events; the peer's SETTINGS announce the connection

    # -------------------------------------------------------- control stream
    def _open_control_stream(self) -> None:
        sid = self.core.next_stream_id(unidirectional=True)
        head = self.control.open(sid)
        self.core.send(sid, head)
        self.control.wrote(len(head), must_arrive=False)
        self.want_transmit = True

    def control_writable(self) -> bool:
        sid = self.control.sid
        return (
            sid is not None
            and self.close_exc is None
            and not self.closed_locally
            and self.core.writable(sid)
        )

    def send_receipt(self, sid: int, code: int) -> None:
        """Tell the peer what became of its message (or reply) on stream ``sid``."""
        self.send_control(self.control.receipt(sid, code), must_arrive=True)

    def send_control(self, record: bytes, *, must_arrive: bool = False) -> None:
        """Write a record on our control stream; ``must_arrive``: a close waits for it."""
        if self.control_writable() and self.control.sid is not None:
            self.core.send(self.control.sid, record)
            self.control.wrote(len(record), must_arrive=must_arrive)
            self.want_transmit = True

    def _violation(self, reason: str) -> None:
        """The peer broke the protocol: close the connection (never the endpoint)."""
        if self.close_exc is not None or self.closed_locally:
            return
        self.core.close(_wire.CloseCode.PROTOCOL_VIOLATION, reason[:200])
        self.want_transmit = True
        term = self.core.close_seen()
        if term is not None:
            self._terminated(term)

    def _on_control_data(self, data: bytes, fin: bool) -> None:
        for ev in self.control.receive(data, fin):
            if isinstance(ev, Violation):
                self._violation(ev.reason)
                return
            if isinstance(ev, _wire.Receipt):
                st = self.streams.get(ev.stream_id)
                if (
                    st is not None
                    and st.send.started
                    and st.receipt is None
                    and st.kind in (K.MESSAGE, K.REQUEST)
                ):
                    st.receipt = ev.code
                    self.touched.append(ev.stream_id)
                continue
            if isinstance(ev, Established):
                self.established = True
            self.events.append(ev)

    # ------------------------------------------------------------ retirement
    def retire(self) -> bool:
        """Send GOAWAY: open no more streams here.  False if it cannot be sent."""
        if self.control.goaway_sent or not self.control_writable():
            return False
        core = self.core
        base_uni = 2 if core.is_client else 3
        base_bidi = 0 if core.is_client else 1
        record = self.control.goaway(
            uni_opened=(core.next_stream_id(unidirectional=True) - base_uni) // 4,
            bidi_opened=(core.next_stream_id(unidirectional=False) - base_bidi) // 4,
        )
        if record is not None:
            self.send_control(record, must_arrive=True)
        return True

    def _drained(self) -> bool:
        control = self.control
        if not control.goaway_sent or self.close_exc is not None:
            return False
        if not control.peer_streams_arrived(self.table.incoming):
            return False  # no GOAWAY yet, or a stream the peer opened has not arrived
        if any(sid != control.peer_sid for sid in self.streams):
            return False
        # Our receipts (and GOAWAY) must have reached the peer before we close.
        assert control.sid is not None
        return not control.undelivered(self.core.send_progress(control.sid).unacked)

    # ---------------------------------------------------------------- closing
    def close_locally(self, code: int, reason: str, now: float) -> None:
        """Close the connection ourselves (idempotent)."""
        if self.closed_locally:
            return
        self.closed_locally = True
        if self.close_exc is None:
            self.core.close(code, reason)
            self.want_transmit = True
            self.process(now)
        else:
            self.close_sent = True

    def _terminated(self, term: _quic.Terminated) -> None:
        if self.close_exc is not None:
            return
        self.close_exc = connection_closed(term)
        if not self.established and self.handshake_error is None:
            self.handshake_error = handshake_error(term, str(self.close_exc))
            self.handshake_error.__cause__ = self.close_exc
        self.phase = Phase.CLOSED
        for st in self.streams.values():
            self.table.release(st)
        self._held.clear()
        self.events.append(Closed())

    def discard_when_sent(self) -> bool:
        """Whether to forget this connection now, without QUIC's closing period.

        A connection that closed before the peer's SETTINGS arrived (a failed
        or refused set-up) was never used: once its CONNECTION_CLOSE left,
        nothing is kept, so a flood of failed handshakes holds no memory.
        """
        return (
            self.close_sent
            and self.control.peer_max_message_size is None
            and self.close_exc is not None
        )

    def before_transmit(self) -> None:
        """The core is about to build datagrams: a close queued by now goes with them."""
        self._close_in_flight = self.close_exc is not None or self.closed_locally

    def after_transmit(self) -> None:
        """Those datagrams left (a close queued meanwhile goes with the next ones)."""
        if self._close_in_flight:
            self.close_sent = True

    # --------------------------------------------------------- stream events
    def _on_stream_event(self, ev: _quic.CoreEvent, now: float) -> None:
        if isinstance(ev, _quic.StreamData):
            self.touched.append(ev.stream_id)
            self._on_stream_data(ev.stream_id, ev.data, ev.fin, now)
        elif isinstance(ev, _quic.StreamReset):
            self.touched.append(ev.stream_id)
            if ev.stream_id == self.control.peer_sid:
                self._violation("the control stream was reset")
                return
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.recv.peer_reset(ev.error_code)  # its unread bytes go too
                self.table.release(st)
                if (st.kind in (K.MESSAGE, K.REQUEST) and st.handle is None) or (
                    st.recv.stopped and st.handle is None and not st.ours
                ):
                    # An incoming message abandoned half-way: forget it.
                    self.table.forget(st)
                self.table.maybe_forget(st)
        elif isinstance(ev, _quic.StopSending):
            self.touched.append(ev.stream_id)
            if ev.stream_id == self.control.sid:
                self._violation("the peer stopped our control stream")
                return
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.send.peer_stop(ev.error_code)
                self.table.maybe_forget(st)

    def _on_stream_data(self, sid: int, data: bytes, fin: bool, now: float) -> None:
        st = self.streams.get(sid)
        if st is None:
            st = self.table.add_incoming(sid)
            if st is None:
                return
        st.received += len(data) + fin
        if st.recv.stopped:
            # Refused or no longer read: drop what is still in flight, and
            # forget a refused stream once the peer finished it.
            if fin and st.handle is None and not st.ours:
                self.table.forget(st)
            elif fin:
                st.recv.peer_fin()
                self.table.maybe_forget(st)
            return
        if st.parser is None:
            if st.kind is K.RAW_BIDI:
                # Our own raw stream: the peer's direction carries no preamble.
                self._on_raw_data(st, data, fin)
            return
        try:
            events = st.parser.feed(data, fin)
        except RemoteProtocolError as exc:
            self.refuse(st, exc.error_code, exc)
            self._forget_refused(st, fin)
            return
        for pev in events:
            if isinstance(pev, _wire.Head):
                if not self._on_head(st, pev, now):
                    self._forget_refused(st, fin)
                    return
            elif isinstance(pev, _wire.MessageComplete):
                self._on_message(st, pev)
            elif st.kind is K.CONTROL:
                self._on_control_data(pev.data, pev.fin)
            else:
                self._on_raw_data(st, pev.data, pev.fin)

    def _forget_refused(self, st: StreamState, fin: bool) -> None:
        if fin and st.recv.stopped and st.handle is None and not st.ours:
            self.table.forget(st)

    def _on_head(self, st: StreamState, head: _wire.Head, now: float) -> bool:
        if st.kind is None:
            st.kind = head.kind
        if head.kind in (K.MESSAGE, K.REQUEST):
            assert head.length is not None
            if head.length > self.config.max_message_size:
                return self._on_streamed_head(st, head)
            if not self.table.reserve_message(st, head.length):
                self.refuse(st, E.BUSY, None)
                return False
            if self.stall_at is None:
                self.stall_at = now + self.config.message_stall_timeout
            return True
        if head.kind is K.REPLY:
            return True
        if head.kind is K.CONTROL:
            violation = self.control.peer_stream(st.sid)
            if violation is not None:
                self._violation(violation.reason)
            return violation is None
        if head.kind is K.PROTOCOL:  # a named protocol's raw stream: the host routes it
            st.kind, st.handle = K.RAW_BIDI, QUEUED
            st.send.open()  # our direction of the peer's bidi stream
            self.events.append(ProtocolOpened(st.sid, head.protocol or ""))
            return True
        # A raw stream opened by the peer: queued for accept_uni / accept_bi.
        if not self.table.queue_for_accept(st, uni=head.kind is K.RAW_UNI):
            self.refuse(st, E.REFUSED, None)
            return False
        return True

    def _on_streamed_head(self, st: StreamState, head: _wire.Head) -> bool:
        # Over max_message_size: delivered now, read in chunks (see `_streamed`).
        if not self.table.reserve_streamed(st):
            self.refuse(st, E.BUSY, None)
            return False
        st.streamed, st.handle = True, DELIVERED
        window = self.config.stream_receive_buffer
        self.core.hold_window(st.sid, window, consumed=_wire.MESSAGE_HEAD_SIZE)
        self.events.append(MessageArrived(st.sid, b"", head.kind is K.REQUEST, 0, head.length))
        return True

    def refuse(self, st: StreamState, code: int, exc: BaseException | None) -> None:
        """Stop reading a stream with ``code``; reset our side of a bidi one."""
        self.events.append(StreamRefused(code))
        self.touched.append(st.sid)
        core = self.core
        our_request = st.ours and st.kind is K.REQUEST
        if (is_uni(st.sid) and st.kind is not K.RAW_UNI) or our_request:
            # A message (or our request's reply) refused: its sender waits for this.
            self.send_receipt(st.sid, code)
        self.table.release(st)
        core.stop(st.sid, code)
        if not st.recv.stopped:
            st.recv.stop()
        st.parser = None
        if not is_uni(st.sid) and not st.send.closed:
            core.reset(st.sid, code)
            st.send.reset()
        if our_request:
            # Our own request: the reply was too large or malformed.
            if code == E.TOO_LARGE:
                st.error = MessageTooLarge(
                    "the reply is larger than Config.max_message_size", error_code=code
                )
            else:
                st.error = RemoteProtocolError(f"malformed reply: {exc}", error_code=code)
        # An incoming stream's record stays as a tombstone until the peer's FIN or
        # RESET_STREAM, so late data is not mistaken for a new stream.
        self.want_transmit = True

    def _on_message(self, st: StreamState, done: _wire.MessageComplete) -> None:
        if done.kind is K.REPLY:
            # No receipt for an accepted reply: its QUIC acknowledgement
            # suffices (the responder checked our SETTINGS limit, and a
            # refusal still gets a receipt), and one packet per round trip
            # is saved.
            st.reply = done.payload
            return
        reserved = self.table.hand_over(st)  # the receive queue holds it now
        st.handle = DELIVERED
        st.parser = None
        self.events.append(MessageArrived(st.sid, done.payload, done.kind is K.REQUEST, reserved))

    def message_taken(self, sid: int, delivered: bool) -> None:
        """The driver took (or could not take) the `MessageArrived` on ``sid``.

        A message gets its RECEIPT now and is forgotten; a request waits for
        its reply; a streamed one gets its receipt once read (`_streamed`),
        or is refused now if nobody takes it.
        """
        st = self.streams.get(sid)
        if st is not None and st.streamed:
            if not delivered:
                self.refuse(st, E.CLOSED, None)
                st.handle = None  # a tombstone until the peer's FIN or reset
        elif st is not None and st.kind is K.MESSAGE:
            self.send_receipt(sid, 0 if delivered else E.CLOSED)
            self.table.forget(st)

    def _on_raw_data(self, st: StreamState, data: bytes, fin: bool) -> None:
        if data and (overrun := self.table.buffer_raw(st, data)) is not None:
            self._overrun(st, *overrun)
            return
        if fin:
            st.recv.peer_fin()
            self.table.maybe_forget(st)

    def _overrun(self, st: StreamState, code: int, what: str) -> None:
        """The peer sent more raw bytes than it may have unread: stop the stream."""
        st.overrun = f"the peer sent more than {what} ahead of the reader"
        self.core.stop(st.sid, code)
        st.recv.stop()  # its unread bytes go too
        self.table.release(st)
        self.want_transmit = True
        self.table.maybe_forget(st)

    # ------------------------------------------------------------ bookkeeping
    def check_stalls(self, now: float) -> None:
        """Reset messages that hold budget and got no byte since the last check."""
        stalled, waiting = self.table.stalled()
        for st in stalled:
            self.refuse(st, E.STALLED, None)
        timeout = self.config.message_stall_timeout
        self.stall_at = now + timeout if waiting and self.close_exc is None else None

    def open_stream(self, kind: _wire.StreamKind, *, slot: bool) -> StreamState:
        """A new stream of ours; ``slot``: it keeps a stream slot until forgotten."""
        sid = self.core.next_stream_id(unidirectional=kind in (K.MESSAGE, K.RAW_UNI))
        return self.table.add_ours(sid, kind, slot=slot)

    def close_send(self, st: StreamState) -> None:
        """Finish our sending side of a raw stream (FIN), once."""
        self.touched.append(st.sid)
        if st.send.closed or not st.send.started:
            self.table.maybe_forget(st)
            return
        st.send.finish()
        if self.close_exc is None and st.send.stop_code is None:
            self.core.send(st.sid, b"", end_stream=True)
            self.want_transmit = True
        self.table.maybe_forget(st)

    def close_receive(self, st: StreamState) -> None:
        """Stop reading a raw stream: STOP_SENDING unless it already ended."""
        self.touched.append(st.sid)
        recv = st.recv
        if recv.stopped:
            return
        if self.close_exc is None and recv.state is RecvState.RECV:
            self.core.stop(st.sid, E.CLOSED)
            self.want_transmit = True
        recv.stop()  # its unread bytes go too
        self.table.release(st)
        self.table.maybe_forget(st)

    def send_room(self, st: StreamState) -> int:
        """Bytes a writer may queue on ``st`` now (the send-buffer limits)."""
        cfg = self.config
        core = self.core
        return min(
            cfg.stream_send_buffer - core.send_progress(st.sid).unacked,
            cfg.connection_send_buffer - core.unacked_total(),
        )

    def abandon(self, st: StreamState, code: int) -> None:
        """Reset and stop a stream of ours (a cancelled or failed call), and forget it."""
        self.touched.append(st.sid)
        core = self.core
        if self.close_exc is None:
            if not st.send.closed or not core.send_progress(st.sid).finished:
                core.reset(st.sid, code)
            if not is_uni(st.sid) and not st.recv.stopped:
                core.stop(st.sid, code)
            self.want_transmit = True
        self.table.forget(st)

    def reject(self, sid: int, code: int) -> None:
        """Reset the reply side of the peer's request ``sid`` (no reply) and forget it."""
        st = self.streams.get(sid)
        if st is None or st.send.closed:
            return
        self.touched.append(sid)
        st.send.reset()
        if self.close_exc is None and self.core.writable(sid):
            self.core.reset(sid, code or E.NO_REPLY)
            self.want_transmit = True
        self.table.forget(st)
