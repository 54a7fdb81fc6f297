# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""One authenticated QUIC connection to a peer.

Theory of operation
-------------------
A `Connection` owns its `QuicCore` and the per-stream `StreamState` records.
The endpoint's tasks feed it (`_on_input`) and transmit for it; everything
that changes state here is synchronous.  Calls made by users mutate the core,
mark the connection *dirty* (the endpoint's sender task transmits it) and
wait on ``_progress``, a parking lot that is woken after every change: new
input (acknowledgements, data, resets), a close, or a transmit.  Waiters
re-check their own condition when woken.

Invariants:

- No stream data is handled before the peer proved its node id: events
  that arrive earlier are held in ``_held`` and replayed once verified.
- Every incoming message reserves its declared size in the endpoint's
  receive budget at its head, before any payload byte is buffered, and
  releases it when refused, reset, or taken from the queue by the user.
- After a close is seen (ours or the peer's) every waiter fails promptly.
"""

from __future__ import annotations

import enum
import logging
import math
from typing import TYPE_CHECKING, Protocol, TypeVar, final

import attrs
import trio

from . import _admission, _quic, _wire
from ._certs import verify_certificate_chain
from ._errors import (
    ConnectError,
    ConnectionClosed,
    ConnectRefused,
    HandshakeError,
    MessageRefused,
    MessageTooLarge,
    PeerIdentityError,
    RemoteProtocolError,
    StreamReset,
)
from ._message import Message
from ._streams import BidirectionalStream, RawStreamReset, ReceiveStream, SendStream
from ._util import NoPublicConstructor

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._config import Config
    from ._identity import NodeId
    from ._quic import Address

__all__ = ["Connection", "ConnectionHost", "ConnectionStatistics"]


class ConnectionHost(Protocol):
    """What a connection needs from whoever drives it (the `_driver.Driver`).

    The whole interface between a connection and the endpoint side: a
    connection imports nothing from there.
    """

    config: Config
    #: Our endpoint's run number, sent in SETTINGS.
    incarnation: int
    #: Unix time, for certificate validity.
    wall_clock: Callable[[], float]

    def present_address(self, addr: Address) -> Address:
        """A socket address in the form users see."""

    def mark_dirty(self, conn: Connection) -> None:
        """The connection has something to transmit: the send task will."""

    def flush(self, conn: Connection) -> None:
        """Transmit the connection now from the calling task, if possible."""

    def route_add(self, cid: bytes, conn: Connection) -> None:
        """Route datagrams for a new local connection id here."""

    def route_remove(self, cid: bytes, conn: Connection) -> None:
        """Stop routing a retired local connection id here."""

    def connection_established(self, conn: Connection) -> None:
        """The peer is verified and its SETTINGS arrived."""

    def connection_closed(self, conn: Connection) -> None:
        """The connection ended (either side, or a timeout)."""

    def peer_goaway(self, conn: Connection) -> None:
        """The peer retired the connection (GOAWAY)."""

    def budget_reserve(self, peer: str, messages: int, nbytes: int) -> bool:
        """Reserve receive budget for a peer address key; False if it does not fit."""

    def budget_release(self, peer: str, messages: int, nbytes: int) -> None:
        """Give back what `budget_reserve` granted."""

    def deliver(self, msg: Message, peer: str, reserved: int) -> bool:
        """Queue a complete message for the application; False if nobody takes it."""

    def count_refused(self, code: int) -> None:
        """An incoming stream was refused with ``code``."""


_log = logging.getLogger("qp2p_trio")

_T = TypeVar("_T")
K = _wire.StreamKind
E = _wire.StreamErrorCode
# QUIC's CONNECTION_REFUSED and INVALID_TOKEN (a stale Retry token: a fresh
# attempt gets a new one) transport errors, and our own limit close codes.
_REFUSED_CLOSE_CODES = frozenset(
    {0x2, 0xB, _wire.CloseCode.LIMIT_EXCEEDED, _wire.CloseCode.HANDSHAKE_TIMEOUT}
)
_REFUSAL_CODES = frozenset({E.BUSY, E.UNSUPPORTED, E.MALFORMED, E.REFUSED, E.NO_REPLY})


def _is_uni(sid: int) -> bool:
    return bool(sid & 2)


def stream_error(code: int, what: str) -> StreamReset:
    """The exception a local caller gets when the peer reset or stopped a stream."""
    try:
        name = E(code).name
    except ValueError:
        name = f"0x{code:x}"
    if what == "stream":  # a raw stream: also a trio.BrokenResourceError
        return RawStreamReset(f"stream: the peer reset the stream ({name})", error_code=code)
    if code == E.TOO_LARGE:
        return MessageTooLarge(f"{what}: the peer refused it as too large", error_code=code)
    if code in _REFUSAL_CODES:
        return MessageRefused(f"{what}: the peer refused it ({name})", error_code=code)
    return StreamReset(f"{what}: the peer reset the stream ({name})", error_code=code)


class _Phase(enum.Enum):
    HANDSHAKING = "handshaking"
    OPEN = "open"
    CLOSED = "closed"


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


class StreamState:
    """Bookkeeping of one stream, owned by its `Connection` (see module doc)."""

    __slots__ = (
        "checked",
        "error",
        "handle",
        "holds_message",
        "kind",
        "local_recv_closed",
        "local_send_closed",
        "parser",
        "receipt",
        "received",
        "recv_buf",
        "recv_fin",
        "reply",
        "reserved",
        "reset_code",
        "sending",
        "sid",
        "slot",
        "stop_code",
    )

    def __init__(self, sid: int, kind: _wire.StreamKind | None) -> None:
        self.sid = sid
        self.kind = kind
        self.parser: _wire.StreamParser | None = None
        self.sending = False  # we write on it
        self.local_send_closed = False  # FIN queued or reset by us
        self.stop_code: int | None = None  # the peer's STOP_SENDING
        self.recv_buf = bytearray()
        self.recv_fin = False
        self.reset_code: int | None = None  # the peer's RESET_STREAM
        self.local_recv_closed = False  # we stopped reading
        self.reserved = 0  # receive budget held: bytes, and maybe one message
        self.holds_message = False  # one message slot of the budget (even for 0 bytes)
        self.received = 0  # bytes the peer sent on it, and at the last stall check
        self.checked = 0
        self.reply: bytes | None = None
        self.receipt: int | None = None  # the peer's RECEIPT code for our message/reply
        self.error: BaseException | None = None
        self.handle: object = None
        self.slot: trio.Semaphore | None = None  # a raw stream's open-stream slot


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
        self._expected_peer = expected_peer
        self._peer_id: NodeId | None = None
        self._phase = _Phase.HANDSHAKING
        self._handshake_error: BaseException | None = None
        self._established = trio.Event()
        self._close_exc: ConnectionClosed | None = None
        self._closed_locally = False
        self._closed = trio.Event()
        self._close_sent = trio.Event()
        self._progress = trio.lowlevel.ParkingLot()
        self._streams: dict[int, StreamState] = {}
        self._held: list[_quic.CoreEvent] = []
        # Control streams (see _wire): ours carries SETTINGS and RECEIPTs.
        self._ctrl_sid: int | None = None
        self._peer_ctrl_sid: int | None = None
        self._ctrl_parser = _wire.ControlParser()
        self._peer_max_message_size: int | None = None
        self._peer_incarnation: int | None = None
        # Retirement of a duplicate connection (see _pool and _wire GOAWAY).
        self._replaced_by: Connection | None = None
        self._goaway_sent = False
        self._peer_goaway: _wire.GoAway | None = None
        self._incoming_uni = 0  # distinct streams the peer opened, by type
        self._incoming_bidi = 0
        self._uni_slots = trio.Semaphore(self._config.max_concurrent_streams)
        self._bi_slots = trio.Semaphore(self._config.max_concurrent_streams)
        q = self._config.stream_accept_queue_size
        self._accept_bi_send, self._accept_bi_recv = trio.open_memory_channel[BidirectionalStream](
            q
        )
        self._accept_uni_send, self._accept_uni_recv = trio.open_memory_channel[ReceiveStream](q)
        self._cids: set[bytes] = set()
        # The receive budget's peer: one share per address, not per connection.
        self._budget_key = _admission.address_key(str(peer_address[0]))
        self.stall_at: float | None = None  # next check for stalled messages
        self.broken = False  # aioquic raised: forget without a close (see _contain)
        self.timer_at: float | None = None
        self.next_ping_at: float | None = None
        self.heap_at = math.inf  # deadline of our live entry in the endpoint's timer heap
        self._ping_uid = 0
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
        if self._peer_id is None:  # pragma: no cover - connections are exposed verified
            raise RuntimeError("peer not verified yet")
        return self._peer_id

    @property
    def is_closed(self) -> bool:
        """Whether the connection has closed (either side, or idle timeout)."""
        return self._close_exc is not None

    @property
    def close_reason(self) -> ConnectionClosed | None:
        """How the connection ended, or ``None`` while it is open."""
        return self._close_exc

    def __repr__(self) -> str:
        peer = self._peer_id.short() if self._peer_id else "?"
        return (
            f"<qp2p_trio.Connection peer={peer} address={self.peer_address!r} {self._phase.value}>"
        )

    def statistics(self) -> ConnectionStatistics:
        """Return an immutable snapshot of this connection's counters."""
        s = self._core.statistics()
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
            open_streams=len(self._streams) - (self._peer_ctrl_sid is not None),
        )

    # ------------------------------------------------------ endpoint-facing
    @property
    def core(self) -> _quic.QuicCore:
        return self._core

    def _wake(self) -> None:
        self._progress.unpark_all()

    def _dirty(self) -> None:
        self._host.mark_dirty(self)

    def _on_input(self) -> None:
        """Process whatever the core produced after input, a timer or an API call.

        Whatever goes wrong in here closes this connection alone (`_contain`):
        a peer's input must never reach the endpoint's tasks as an exception.
        """
        try:
            self._process()
        except Exception as exc:
            self._contain(exc)

    def _contain(self, exc: Exception, *, core_broken: bool = False) -> None:
        """Close this connection after an unexpected error in handling it (logged).

        ``core_broken``: aioquic itself raised, so its state is not to be
        trusted; the endpoint forgets the connection without a close packet.
        """
        peer = self._peer_id.short() if self._peer_id else "?"
        _log.warning(
            "qp2p_trio: closing the connection to %s at %r after an internal error",
            peer,
            self._wire_address,
            exc_info=exc,
        )
        self.broken = self.broken or core_broken
        reason = f"internal error: {type(exc).__name__}"
        if self._close_exc is None and not core_broken:
            try:
                self._core.close(_wire.CloseCode.INTERNAL_ERROR, reason)
            except Exception:  # pragma: no cover - aioquic refusing to close
                self.broken = True
            self._dirty()
        if self._close_exc is None:
            term = None if self.broken else self._core.close_seen()
            self._handle_terminated(
                term or _quic.Terminated(_wire.CloseCode.INTERNAL_ERROR, reason, False, False, True)
            )
        self._wake()

    def _process(self) -> None:
        if (
            self._ctrl_sid is None
            and self._phase is _Phase.HANDSHAKING
            and not self._core.is_client
            and self._core.can_send_early
        ):
            # A server's SETTINGS go out with its handshake flight (0.5-RTT
            # data; nothing secret), so the client is ready as soon as it
            # verified us: connect() takes one round trip, not two.
            self._open_control_stream()
        for ev in self._core.events():
            self._handle_event(ev)
        term = self._core.close_seen()
        if term is not None:
            self._handle_terminated(term)
        if self._goaway_sent and self._drained():
            self._close_locally(_wire.CloseCode.NO_ERROR, "duplicate connection drained")
            return
        self._wake()

    def _handle_event(self, ev: _quic.CoreEvent) -> None:
        if isinstance(ev, _quic.CidIssued):
            self._cids.add(ev.cid)
            self._host.route_add(ev.cid, self)
        elif isinstance(ev, _quic.CidRetired):
            self._cids.discard(ev.cid)
            self._host.route_remove(ev.cid, self)
        elif isinstance(ev, _quic.HandshakeDone):
            self._handshake_done()
        elif isinstance(ev, _quic.Terminated):
            self._handle_terminated(ev)
        elif isinstance(ev, _quic.PingAck):
            pass
        elif self._phase is _Phase.HANDSHAKING:
            # Stream events before the peer is verified wait for verification.
            self._held.append(ev)
        elif self._phase is _Phase.OPEN:
            self._handle_stream_event(ev)

    def _handshake_done(self) -> None:
        try:
            self._peer_id = verify_certificate_chain(
                self._core.peer_certificates(),
                now=self._host.wall_clock(),
                expected=self._expected_peer,
            )
        except PeerIdentityError as exc:
            self._handshake_error = exc
            self._core.close(_wire.CloseCode.PEER_IDENTITY, str(exc)[:200])
            self._dirty()
            return
        self._phase = _Phase.OPEN
        if self._ctrl_sid is None:
            self._open_control_stream()
        # The connection is announced once the peer's SETTINGS arrive (see
        # _on_control_data), so its limits are known from the start.
        held, self._held = self._held, []
        for ev in held:
            self._handle_stream_event(ev)

    # -------------------------------------------------------- control stream
    def _open_control_stream(self) -> None:
        sid = self._core.next_stream_id(unidirectional=True)
        self._ctrl_sid = sid
        self._core.send(
            sid,
            _wire.encode_control_preamble()
            + _wire.encode_settings(
                max_message_size=self._config.max_message_size,
                incarnation=self._host.incarnation,
            ),
        )
        self._dirty()

    def _control_writable(self) -> bool:
        sid = self._ctrl_sid
        return (
            sid is not None
            and self._close_exc is None
            and not self._closed_locally
            and self._core.writable(sid)
        )

    def _send_receipt(self, sid: int, code: int) -> None:
        """Tell the peer what became of its message (or reply) on stream ``sid``."""
        if not self._control_writable():
            return
        assert self._ctrl_sid is not None
        self._core.send(self._ctrl_sid, _wire.encode_receipt(sid, code))
        self._dirty()

    def _violation(self, reason: str) -> None:
        """The peer broke the protocol: close the connection (never the endpoint)."""
        if self._close_exc is not None or self._closed_locally:
            return
        self._core.close(_wire.CloseCode.PROTOCOL_VIOLATION, reason[:200])
        self._dirty()
        term = self._core.close_seen()
        if term is not None:
            self._handle_terminated(term)

    def _on_control_head(self, st: StreamState) -> bool:
        if self._peer_ctrl_sid is not None:
            self._violation("a second control stream")
            return False
        self._peer_ctrl_sid = st.sid
        return True

    def _on_control_data(self, data: bytes, fin: bool) -> None:
        try:
            records = self._ctrl_parser.feed(data)
        except RemoteProtocolError as exc:
            self._violation(f"control stream: {exc}")
            return
        for rec in records:
            if isinstance(rec, _wire.Settings):
                self._peer_max_message_size = rec.max_message_size
                self._peer_incarnation = rec.incarnation
                self._established.set()
                self._host.connection_established(self)
            elif isinstance(rec, _wire.GoAway):
                if self._peer_goaway is None:
                    self._peer_goaway = rec
                    self._host.peer_goaway(self)
            else:
                st = self._streams.get(rec.stream_id)
                if (
                    st is not None
                    and st.sending
                    and st.receipt is None
                    and st.kind in (K.MESSAGE, K.REQUEST)
                ):
                    st.receipt = rec.code
        if fin:
            self._violation("the control stream ended")

    # ------------------------------------------------------ retirement
    @property
    def is_retired(self) -> bool:
        """Whether this is a duplicate being drained in favour of `replacement`.

        Happens after a simultaneous open (both peers dialled each other):
        both sides keep the same one of the two connections.  New messages
        and streams opened on a retired connection go to the kept one; what
        was in flight finishes here, then it closes (code 0).
        """
        return self._goaway_sent

    @property
    def replacement(self) -> Connection | None:
        """The connection kept instead of this retired one, or ``None``."""
        return self._replaced_by

    def _retire(self, winner: Connection | None) -> None:
        """Open no more streams here; close once both sides drained it."""
        if winner is not None:
            self._replaced_by = winner
        if self._goaway_sent or not self._control_writable():
            return
        assert self._ctrl_sid is not None
        self._goaway_sent = True
        self.next_ping_at = None  # let it idle out if the peer never agrees
        base_uni = 2 if self._core.is_client else 3
        base_bidi = 0 if self._core.is_client else 1
        uni = (self._core.next_stream_id(unidirectional=True) - base_uni) // 4
        bidi = (self._core.next_stream_id(unidirectional=False) - base_bidi) // 4
        self._core.send(self._ctrl_sid, _wire.encode_goaway(uni_opened=uni, bidi_opened=bidi))
        self._dirty()
        self._wake()

    def _drained(self) -> bool:
        goaway = self._peer_goaway
        if not self._goaway_sent or goaway is None or self._close_exc is not None:
            return False
        if self._incoming_uni < goaway.uni_opened or self._incoming_bidi < goaway.bidi_opened:
            return False  # a stream the peer opened has not arrived yet
        for sid in self._streams:
            if sid != self._peer_ctrl_sid:
                return False
        # Our receipts must have reached the peer before we close.
        assert self._ctrl_sid is not None
        return self._core.send_progress(self._ctrl_sid).unacked == 0

    @property
    def _handshake_failed(self) -> bool:
        """Whether TLS refused the handshake: a TLS alert (either way) or a bad identity."""
        err = self._handshake_error
        return isinstance(err, PeerIdentityError) or (
            isinstance(err, HandshakeError) and err.tls_alert is not None
        )

    def _check_peer_limit(self, size: int, what: str) -> None:
        limit = self._peer_max_message_size
        if limit is not None and size > limit:
            raise MessageTooLarge(
                f"{what} of {size} bytes is over the peer's limit of {limit} bytes",
                error_code=E.TOO_LARGE,
            )

    def _handle_terminated(self, term: _quic.Terminated) -> None:
        if self._close_exc is not None:
            return
        if term.idle_timeout:
            message = "connection closed: idle timeout"
        elif term.by_peer:
            message = f"connection closed by the peer (code 0x{term.error_code:x})"
        else:
            message = f"connection closed (code 0x{term.error_code:x})"
        if term.reason:
            message += f": {term.reason}"
        self._close_exc = ConnectionClosed(
            message,
            error_code=term.error_code,
            reason=term.reason,
            by_peer=term.by_peer,
            idle_timeout=term.idle_timeout,
        )
        if not self._established.is_set() and self._handshake_error is None:
            if term.idle_timeout:
                self._handshake_error = ConnectError(
                    "no answer from the peer: the handshake timed out"
                )
            elif term.by_peer and term.error_code in _REFUSED_CLOSE_CODES:
                self._handshake_error = ConnectRefused(
                    f"the peer refused the connection: {message}", error_code=term.error_code
                )
            else:
                self._handshake_error = HandshakeError(
                    f"handshake failed: {message}",
                    error_code=term.error_code,
                    tls_alert=term.tls_alert,
                )
            self._handshake_error.__cause__ = self._close_exc
        self._phase = _Phase.CLOSED
        for st in self._streams.values():
            self._release(st)
            if st.slot is not None:  # wake openers waiting for a slot: they fail
                st.slot.release()
                st.slot = None
        self._held.clear()
        self._closed.set()
        self._established.set()  # wake a connect() waiting on the handshake
        self._host.connection_closed(self)
        self._wake()

    def discard_when_sent(self) -> bool:
        """Whether to forget this connection now, without QUIC's closing period.

        A connection that closed before the peer's SETTINGS arrived (a failed
        or refused set-up) was never used: once its CONNECTION_CLOSE left,
        nothing is kept, so a flood of failed handshakes holds no memory.
        """
        return (
            self._close_sent.is_set()
            and self._peer_max_message_size is None
            and self._close_exc is not None
        )

    def _after_transmit(self) -> None:
        if self._close_exc is not None or self._closed_locally:
            self._close_sent.set()

    # --------------------------------------------------------- stream events
    def _handle_stream_event(self, ev: _quic.CoreEvent) -> None:
        if isinstance(ev, _quic.StreamData):
            self._on_stream_data(ev.stream_id, ev.data, ev.fin)
        elif isinstance(ev, _quic.StreamReset):
            if ev.stream_id == self._peer_ctrl_sid:
                self._violation("the control stream was reset")
                return
            st = self._streams.get(ev.stream_id)
            if st is not None:
                st.reset_code = ev.error_code
                self._release(st)
                st.recv_buf = bytearray()  # a reset stream's unread bytes go too
                if (st.kind in (K.MESSAGE, K.REQUEST) and st.handle is None) or (
                    st.local_recv_closed and st.handle is None and not st.sending
                ):
                    # An incoming message abandoned half-way: forget it.
                    self._forget(st)
                self._maybe_forget(st)
        elif isinstance(ev, _quic.StopSending):
            if ev.stream_id == self._ctrl_sid:
                self._violation("the peer stopped our control stream")
                return
            st = self._streams.get(ev.stream_id)
            if st is not None:
                st.stop_code = ev.error_code
                self._maybe_forget(st)

    def _new_incoming(self, sid: int) -> StreamState | None:
        if (sid & 1) == (0 if self._core.is_client else 1):
            return None  # one of ours that we already forgot
        st = StreamState(sid, None)
        if _is_uni(sid):
            self._incoming_uni += 1
        else:
            self._incoming_bidi += 1
        allowed = {K.MESSAGE, K.RAW_UNI, K.CONTROL} if _is_uni(sid) else {K.REQUEST, K.RAW_BIDI}
        st.parser = _wire.StreamParser(
            allowed=allowed, max_message_size=self._config.max_message_size
        )
        self._streams[sid] = st
        return st

    def _on_stream_data(self, sid: int, data: bytes, fin: bool) -> None:
        st = self._streams.get(sid)
        if st is None:
            st = self._new_incoming(sid)
            if st is None:
                return
        st.received += len(data) + fin
        if st.local_recv_closed:
            # Refused or no longer read: drop what is still in flight, and
            # forget a refused stream once the peer finished it.
            if fin and st.handle is None and not st.sending:
                self._forget(st)
            elif fin:
                st.recv_fin = True
                self._maybe_forget(st)
            return
        if st.parser is None:
            if st.kind is K.RAW_BIDI:
                # Our own raw stream: the peer's direction carries no preamble.
                self._on_raw_data(st, data, fin)
            return
        try:
            events = st.parser.feed(data, fin)
        except RemoteProtocolError as exc:
            self._refuse(st, exc.error_code, exc)
            self._forget_refused(st, fin)
            return
        for pev in events:
            if isinstance(pev, _wire.Head):
                if not self._on_head(st, pev):
                    self._forget_refused(st, fin)
                    return
            elif isinstance(pev, _wire.MessageComplete):
                self._on_message(st, pev)
            elif st.kind is K.CONTROL:
                self._on_control_data(pev.data, pev.fin)
            else:
                self._on_raw_data(st, pev.data, pev.fin)

    def _forget_refused(self, st: StreamState, fin: bool) -> None:
        if fin and st.local_recv_closed and st.handle is None and not st.sending:
            self._forget(st)

    def _on_head(self, st: StreamState, head: _wire.Head) -> bool:
        if st.kind is None:
            st.kind = head.kind
        if head.kind in (K.MESSAGE, K.REQUEST):
            assert head.length is not None
            if not self._host.budget_reserve(self._budget_key, 1, head.length):
                self._refuse(st, E.BUSY, None)
                return False
            st.reserved = head.length
            st.holds_message = True
            if self.stall_at is None:
                self.stall_at = trio.current_time() + self._config.message_stall_timeout
            return True
        if head.kind is K.REPLY:
            return True
        if head.kind is K.CONTROL:
            return self._on_control_head(st)
        # A raw stream opened by the peer.
        if head.kind is K.RAW_BIDI:
            st.sending = True  # our direction of the peer's bidi stream
            bidi = BidirectionalStream._create(self, st)
            st.handle = bidi
            ok = self._try_send(self._accept_bi_send, bidi)
        else:
            uni = ReceiveStream._create(self, st)
            st.handle = uni
            ok = self._try_send(self._accept_uni_send, uni)
        if not ok:
            # Nobody will ever hold this handle: let the record go at FIN.
            st.handle = None
            st.sending = False
            self._refuse(st, E.REFUSED, None)
            return False
        return True

    @staticmethod
    def _try_send(channel: trio.MemorySendChannel[_T], item: _T) -> bool:
        try:
            channel.send_nowait(item)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    def _refuse(self, st: StreamState, code: int, exc: BaseException | None) -> None:
        """Stop reading a stream with ``code``; reset our side of a bidi one."""
        self._host.count_refused(code)
        if (_is_uni(st.sid) and st.kind is not K.RAW_UNI) or (st.sending and st.kind is K.REQUEST):
            # A message (or our request's reply) refused: its sender waits for this.
            self._send_receipt(st.sid, code)
        self._release(st)
        self._core.stop(st.sid, code)
        st.local_recv_closed = True
        st.parser = None
        if not _is_uni(st.sid) and not st.local_send_closed:
            self._core.reset(st.sid, code)
            st.local_send_closed = True
        if st.sending and st.kind is K.REQUEST:
            # Our own request: the reply was too large or malformed.
            if code == E.TOO_LARGE:
                st.error = MessageTooLarge(
                    "the reply is larger than Config.max_message_size", error_code=code
                )
            else:
                st.error = RemoteProtocolError(f"malformed reply: {exc}", error_code=code)
        # An incoming stream's record stays as a tombstone until the peer's FIN or
        # RESET_STREAM, so late data is not mistaken for a new stream.
        self._dirty()

    def _on_message(self, st: StreamState, done: _wire.MessageComplete) -> None:
        if done.kind is K.REPLY:
            # No receipt for an accepted reply: its QUIC acknowledgement
            # suffices (the responder checked our SETTINGS limit, and a
            # refusal still gets a receipt), and one packet per round trip
            # is saved.
            st.reply = done.payload
            return
        msg = Message._create(
            payload=done.payload,
            sender=self.peer_id,
            connection=self,
            stream_id=None if done.kind is K.MESSAGE else st.sid,
        )
        st_reserved, st.reserved = st.reserved, 0  # the queue holds it now
        st.holds_message = False
        if done.kind is K.MESSAGE:
            self._forget(st)
        else:
            st.handle = msg
            st.parser = None
        delivered = self._host.deliver(msg, self._budget_key, st_reserved)
        if done.kind is K.MESSAGE:
            self._send_receipt(st.sid, 0 if delivered else E.CLOSED)

    def _on_raw_data(self, st: StreamState, data: bytes, fin: bool) -> None:
        if data:
            n = len(data)
            if len(st.recv_buf) + n > self._config.stream_receive_buffer:
                self._overrun(st, E.CLOSED, "Config.stream_receive_buffer bytes on this stream")
                return
            if not self._host.budget_reserve(self._budget_key, 0, n):
                self._overrun(st, E.BUSY, "its share of the receive budget (Config.receive_share)")
                return
            st.recv_buf += data
            st.reserved += n
        if fin:
            st.recv_fin = True
            self._maybe_forget(st)

    def _overrun(self, st: StreamState, code: int, what: str) -> None:
        """The peer sent more raw bytes than it may have unread: stop the stream."""
        st.error = trio.BrokenResourceError(f"the peer sent more than {what} ahead of the reader")
        self._core.stop(st.sid, code)
        st.local_recv_closed = True
        self._release(st)
        st.recv_buf = bytearray()
        self._dirty()
        self._maybe_forget(st)

    def _release(self, st: StreamState, nbytes: int | None = None) -> None:
        """Give back ``st``'s receive budget: all of it, or ``nbytes`` of a raw stream's."""
        if not st.reserved and not st.holds_message:
            return
        n = st.reserved if nbytes is None else min(nbytes, st.reserved)
        st.reserved -= n
        messages = 1 if st.holds_message and nbytes is None else 0
        if messages:
            st.holds_message = False
        self._host.budget_release(self._budget_key, messages, n)

    def _check_stalls(self, now: float) -> None:
        """Reset messages that hold budget and got no byte since the last check."""
        waiting = False
        for st in list(self._streams.values()):
            if not st.holds_message:
                continue
            if st.received == st.checked:
                self._refuse(st, E.STALLED, None)
            else:
                st.checked = st.received
                waiting = True
        timeout = self._config.message_stall_timeout
        self.stall_at = now + timeout if waiting and self._close_exc is None else None

    def _forget(self, st: StreamState) -> None:
        self._release(st)
        self._streams.pop(st.sid, None)
        slot = st.slot
        if slot is not None:
            st.slot = None
            slot.release()

    def _maybe_forget(self, st: StreamState) -> None:
        """Drop a raw stream's record once both directions are over."""
        if st.kind not in (K.RAW_BIDI, K.RAW_UNI):
            return
        uni = _is_uni(st.sid)
        send_done = (uni and not st.sending) or st.local_send_closed or st.stop_code is not None
        # A stream the peer opened stays (a tombstone) until its FIN or reset:
        # data still in flight must not look like a new stream.
        peer_done = st.recv_fin or st.reset_code is not None
        recv_done = (
            (uni and st.sending)
            or (peer_done and (st.local_recv_closed or not st.recv_buf))
            or (st.local_recv_closed and (st.sid & 1) == (0 if self._core.is_client else 1))
        )
        if send_done and recv_done:
            self._forget(st)

    # ------------------------------------------------------------ waiting
    def _check_usable(self) -> None:
        if self._closed_locally:
            raise trio.ClosedResourceError("this connection was closed")
        if self._close_exc is not None:
            raise self._close_exc

    async def _wait_established(self) -> None:
        await self._established.wait()
        if self._handshake_error is not None:
            raise self._handshake_error
        if self._close_exc is not None and self._phase is not _Phase.OPEN:
            raise ConnectError("connection closed during the handshake") from self._close_exc

    def _send_room(self, st: StreamState) -> int:
        cfg = self._config
        p = self._core.send_progress(st.sid)
        return min(
            cfg.stream_send_buffer - p.unacked,
            cfg.connection_send_buffer - self._core.unacked_total(),
        )

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
            room = self._send_room(st)
            if room > 0 or (offset == total):
                n = min(max(room, 0), total - offset)
                last = offset + n == total
                if n or (last and end):
                    self._core.send(st.sid, view[offset : offset + n], end_stream=last and end)
                    if len(self._streams) <= 2:
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

    def _abandon(self, st: StreamState, code: int) -> None:
        """Reset and stop a stream of ours (a cancelled or failed call)."""
        if self._close_exc is None:
            if not st.local_send_closed or not self._core.send_progress(st.sid).finished:
                self._core.reset(st.sid, code)
            if not _is_uni(st.sid) and not st.local_recv_closed:
                self._core.stop(st.sid, code)
            self._dirty()
        self._forget(st)

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
        await self._send(_payload_view(payload), _SendOutcome())

    async def _send(self, view: memoryview, outcome: _SendOutcome) -> None:
        if self._replaced_by is not None:
            return await self._replaced_by._send(view, outcome)
        self._check_usable()
        self._check_peer_limit(len(view), "message")
        async with self._uni_slots:
            sid = self._core.next_stream_id(unidirectional=True)
            st = StreamState(sid, K.MESSAGE)
            st.sending = True
            self._streams[sid] = st
            try:
                self._core.send(sid, _wire.encode_message_head(K.MESSAGE, len(view)))
                await self._write(st, view, end=True, what="message")
                st.local_send_closed = True
                await self._wait_receipt(st, "message")
            except BaseException:
                # Whether the peer's QUIC stack had every byte: a retry must
                # not duplicate a message the peer may already have.
                outcome.acked = self._core.send_progress(sid).finished
                self._abandon(st, E.CANCELLED)
                raise
            self._forget(st)

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
        self._check_peer_limit(len(view), "request")
        async with self._bi_slots:
            sid = self._core.next_stream_id(unidirectional=False)
            st = StreamState(sid, K.REQUEST)
            st.sending = True
            st.parser = _wire.StreamParser(
                allowed={K.REPLY}, max_message_size=self._config.max_message_size
            )
            self._streams[sid] = st
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
                self._abandon(st, E.CANCELLED)
                raise
            self._forget(st)
            return st.reply

    async def _reply(
        self, sid: int, payload: bytes | bytearray | memoryview, *, wait_for_ack: bool
    ) -> bool:
        view = _payload_view(payload)
        await trio.lowlevel.checkpoint()
        st = self._streams.get(sid)
        problem = self._reply_problem(st, len(view))
        if problem is not None:
            self._reject(sid, problem.error_code if isinstance(problem, StreamReset) else 0)
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
        if len(self._streams) <= 2:
            self._host.flush(self)
        else:
            self._dirty()
        if wait_for_ack:
            try:
                await self._wait_reply_acked(st)
            except BaseException:
                self._abandon(st, E.CANCELLED)
                raise
        self._forget(st)
        return True

    def _reply_problem(self, st: StreamState | None, size: int) -> Exception | None:
        """Why a reply of ``size`` bytes cannot be queued on ``st`` now, or None."""
        if self._closed_locally:
            return trio.ClosedResourceError("this connection was closed")
        if self._close_exc is not None:
            return self._close_exc
        if st is None or st.local_send_closed:
            return StreamReset("reply: the requester abandoned the request", error_code=E.CANCELLED)
        if st.stop_code is not None or not self._core.writable(st.sid):
            return stream_error(st.stop_code or E.CANCELLED, "reply")
        try:
            self._check_peer_limit(size, "reply")
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

    def _reject(self, sid: int, code: int) -> None:
        st = self._streams.get(sid)
        if st is None or st.local_send_closed:
            return
        st.local_send_closed = True
        if self._close_exc is None and self._core.writable(sid):
            self._core.reset(sid, code or E.NO_REPLY)
            self._dirty()
        self._forget(st)

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
        slot = self._uni_slots if uni else self._bi_slots
        await slot.acquire()
        try:
            self._check_usable()
        except BaseException:
            slot.release()
            raise
        sid = self._core.next_stream_id(unidirectional=uni)
        st = StreamState(sid, kind)
        st.slot = slot
        st.sending = True
        self._streams[sid] = st
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
        return await self._accept(self._accept_bi_recv)

    async def accept_uni(self) -> ReceiveStream:
        """Wait for the next raw unidirectional stream the peer opened.

        Same limits, errors and cancellation as `accept_bi`.
        """
        return await self._accept(self._accept_uni_recv)

    async def _accept(self, channel: trio.MemoryReceiveChannel[_T]) -> _T:
        self._check_usable()
        try:
            item = channel.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.checkpoint()
            return item
        while True:
            self._check_usable()
            try:
                return channel.receive_nowait()
            except trio.WouldBlock:
                await self._progress.park()

    async def _raw_send(self, st: StreamState, data: bytes | bytearray | memoryview) -> None:
        if st.local_send_closed:
            raise trio.ClosedResourceError("this stream's sending side was closed")
        try:
            await self._write(st, data, end=False, what="stream")
        except ConnectionClosed as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def _raw_wait_writable(self, st: StreamState) -> None:
        await trio.lowlevel.checkpoint()
        if st.local_send_closed:
            raise trio.ClosedResourceError("this stream's sending side was closed")
        while not st.local_send_closed and st.stop_code is None and self._close_exc is None:
            if self._closed_locally or self._send_room(st) > 0:
                return
            await self._progress.park()

    def _raw_send_eof(self, st: StreamState) -> None:
        if st.local_send_closed:
            return
        if st.stop_code is not None:
            raise stream_error(st.stop_code, "stream")
        if self._close_exc is not None:
            raise trio.BrokenResourceError(str(self._close_exc)) from self._close_exc
        st.local_send_closed = True
        self._core.send(st.sid, b"", end_stream=True)
        self._dirty()
        self._maybe_forget(st)

    def _raw_close_send(self, st: StreamState) -> None:
        if st.local_send_closed or not st.sending:
            st.local_send_closed = True
            self._maybe_forget(st)
            return
        st.local_send_closed = True
        if self._close_exc is None and st.stop_code is None:
            self._core.send(st.sid, b"", end_stream=True)
            self._dirty()
        self._maybe_forget(st)
        self._wake()

    def _raw_close_receive(self, st: StreamState) -> None:
        if st.local_recv_closed:
            return
        st.local_recv_closed = True
        if self._close_exc is None and not st.recv_fin and st.reset_code is None:
            self._core.stop(st.sid, E.CLOSED)
            self._dirty()
        self._release(st)
        st.recv_buf = bytearray()
        self._maybe_forget(st)
        self._wake()

    async def _raw_receive(self, st: StreamState, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        while True:
            if st.local_recv_closed:
                if st.error is not None:
                    raise st.error
                raise trio.ClosedResourceError("this stream's receiving side was closed")
            if st.recv_buf:
                chunk = bytes(st.recv_buf[:max_bytes])
                del st.recv_buf[:max_bytes]
                self._release(st, len(chunk))
                if not st.recv_buf:
                    self._maybe_forget(st)
                return chunk
            if st.recv_fin:
                return b""
            if st.reset_code is not None:
                raise stream_error(st.reset_code, "stream")
            if self._close_exc is not None:
                raise trio.BrokenResourceError(str(self._close_exc)) from self._close_exc
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
            await self._flush_control(self._config.close_grace / 2)
        finally:
            self._close_locally(code, reason)
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(self._config.close_grace):
            await self._close_sent.wait()

    async def _flush_control(self, limit: float) -> None:
        """Let the receipts already queued reach the peer before a close.

        A CONNECTION_CLOSE ends the connection at once: without this, a peer
        whose reply we just read would never learn that it arrived.
        """
        sid = self._ctrl_sid
        if sid is None or self._close_exc is not None or self._closed_locally:
            await trio.lowlevel.checkpoint()
            return
        # Acknowledge what arrived first: a peer whose reply we just read must
        # not see its reply fail because our ACK was still delayed.
        self._core.ack_now(trio.current_time())
        self._dirty()
        with trio.move_on_after(limit):
            while self._close_exc is None and (
                self._core.send_progress(sid).unacked > 0 or self._core.ack_pending()
            ):
                await self._progress.park()

    def _close_locally(self, code: int, reason: str) -> None:
        if self._closed_locally:
            return
        self._closed_locally = True
        if self._close_exc is None:
            self._core.close(code, reason)
            self._dirty()
            self._on_input()
        else:
            self._close_sent.set()
        self._wake()

    async def wait_closed(self) -> ConnectionClosed:
        """Wait until the connection has closed, and return how it ended.

        Cancellation: nothing changes.
        """
        await self._closed.wait()
        assert self._close_exc is not None
        return self._close_exc


@attrs.define
class _SendOutcome:
    """What a failed send left behind: did the peer acknowledge every byte?"""

    acked: bool = False


def _payload_view(payload: bytes | bytearray | memoryview) -> memoryview:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes-like, got {type(payload).__name__}")
    return memoryview(payload).cast("B")
