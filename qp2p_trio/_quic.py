# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The aioquic adapter: the only module that touches aioquic's connection.

Theory of operation
-------------------
`QuicCore` wraps one aioquic `QuicConnection` (sans-IO: every call takes
``now``; nothing here waits or reads a clock) and translates its events into
our own small frozen event classes, so the rest of the package never sees an
aioquic type.

aioquic 1.7 has no public API for a few things a P2P library needs.  Every
private access is here, listed below, and each has a test in
``tests/test_quic_adapter.py`` that fails loudly if aioquic changes:

1. ``QuicConnection._initialize`` is overridden to set
   ``tls._request_client_certificate = True`` on servers: mutual TLS (aioquic
   calls the flag "for test purposes only").
2. ``tls._peer_certificate`` / ``tls._peer_certificate_chain``: the peer's
   certificate, which carries its node id.
3. ``QuicConnection._close_event``: a CONNECTION_CLOSE from the peer is only
   reported as an event after 3 PTOs; we fail streams at once instead.
4. ``QuicConnection._streams[sid].sender`` (``_buffer_start``,
   ``_buffer_stop``, ``is_finished``, ``_reset_error_code``): how many bytes of
   a stream are not yet acknowledged.  aioquic buffers writes without limit and
   has no "drained" event, so this is our send backpressure.
5. ``QuicConnection._loss`` (``_rtt_*``, ``congestion_window``,
   ``bytes_in_flight``) and ``_loss._on_packets_lost`` (wrapped to count lost
   packets): connection statistics.
6. ``QuicConnection._state``: whether the connection ended.
7. ``QuicConnection._cryptos[ONE_RTT].send.is_valid()`` and
   ``_remote_max_streams_uni``: whether a server can already send 1-RTT
   ("0.5-RTT") stream data, so its SETTINGS travel with its handshake flight.
8. ``QuicStreamSender._buffer_fin``: whether a stream still takes data
   (`QuicCore.writable`), checked before every write a peer could have
   made impossible (STOP_SENDING resets our side inside aioquic).
9. ``QuicConnection._spaces[ONE_RTT].ack_at``: brought forward so that a
   graceful close first acknowledges what arrived (`QuicCore.ack_now`).
10. ``QuicConnection._state`` leaving ``FIRSTFLIGHT``: a packet of a new server
    connection decrypted, so its first datagram was a valid Initial (aioquic
    then insists on a CRYPTO frame in it), not junk; see `QuicCore.decrypted`.
    Nothing public tells it: a ClientHello spanning several datagrams yields
    no event, no keys and no answer until its last part arrives.
11. ``tls._supported_groups`` on clients, set to X25519 alone in
    ``_initialize`` (before the ClientHello is built): aioquic otherwise
    generates and sends four key shares (P-256, P-384, X25519, X448) and the
    server uses one.  Servers keep every group, so a peer that offers only
    another one still gets in.
12. ``QuicConnection._crypto_buffers``: once the handshake completed, the
    three 16 KiB scratch buffers aioquic's TLS writes its handshake messages
    into are swapped for small ones (`QuicCore.events`).  Nothing writes
    there after the handshake (we issue no session tickets, and QUIC has no
    TLS KeyUpdate), and they were half the memory of an idle connection.
13. ``QuicConnection.__frame_handlers`` (name-mangled): each connection
    builds its own table of 33 frame handlers (a bound method and a tuple
    each); it is swapped for a `_quicshare.FrameTable` that looks the frame type up in
    one table shared by every connection and binds the handler to the
    connection on each look-up, about 4.6 KiB and 66 tracked objects less
    per connection.  aioquic only reads it as ``table[frame_type]``.
14. ``QuicConnection._write_stream_limits`` is replaced (on the instance,
    from the first held window on: it runs for every stream in every
    packet), and
    ``QuicStream.max_stream_data_local`` / ``receiver.highest_offset`` read,
    for streams whose receive window we hold (`QuicCore.hold_window`):
    aioquic doubles a stream's window as bytes arrive, whether anybody read
    them or not; a held window only grows as the application consumes
    (`QuicCore.consumed`), so a streamed message is bounded in memory.
15. ``QuicConnection._datagrams_pending`` (DATAGRAM frames queued, RFC 9221)
    and ``_remote_max_datagram_frame_size``: aioquic queues datagrams without
    limit; we drop past `DATAGRAMS_PENDING` (unreliable anyway) and never
    queue one larger than a packet (aioquic would then send none, ever).
16. ``QuicConnection._streams_queue`` (the order streams get packet space,
    rebuilt round-robin after every packet) is a property on our subclass
    that sorts it, stably, as aioquic reads it, by `QuicCore.set_priority`:
    higher priorities first, round-robin among equals.  With no priority
    set it costs one truthiness check.
17. ``aioquic.quic.connection.EPOCHS`` (a module function) is memoised when
    this module is imported: each new connection called it 34 times to build
    its frame handler table, a frozenset each time, about a third of
    building a `QuicConnection`.  It maps a string to a frozenset, so sharing
    the results changes nothing.
18. ``QuicConnection._max_datagram_size``, ``_loss._pacer._max_datagram_size``
    and the congestion controller's ``_max_datagram_size`` /
    ``additive_increase_factor``: the datagram size, raised by path MTU
    discovery (`_quicpmtu`); aioquic caches it in all three.
19. ``QuicPacketBuilder`` with ``_cryptos``, ``_packet_number``, ``_peer_cid``,
    ``_version``, ``_spin_bit``, ``_spaces``, ``_loss.on_packet_sent`` and
    ``_loss._time_of_last_sent_ack_eliciting_packet``: `_quicpmtu` builds
    its PING + PADDING probes itself, not in flight (a lost probe is no
    congestion signal) and arming the PTO from when they left.
20. ``_loss._cc.on_packet_acked`` and ``_loss._on_packets_lost`` are
    wrapped (once a path MTU above the base was found) to see large packets
    acknowledged and lost: black hole detection.
28. ``QuicConnection._quic_logger`` and ``CryptoContext._setup_cb`` /
    ``_teardown_cb``: without a qlog, aioquic's key-update callbacks log
    nothing, so the 12 ``partial`` objects bound to each connection are
    swapped for aioquic's ``NoCallback`` in ``_initialize`` (3 KiB per
    connection); with a qlog they stay.
29. ``QuicConnection._discard_epoch`` is extended: once the Initial or the
    Handshake epoch is discarded (its keys torn down, so none of its
    packets decrypts or leaves any more), its ``_crypto_streams`` and
    ``_crypto_buffers`` entries are dropped (``_spaces[epoch].discarded``
    tells), and its ``_cryptos`` / ``_cryptos_initial`` pairs are replaced
    by one shared pair that never had keys, about 4 KiB per connection.
    aioquic reads the streams only for packets of that epoch and while the
    handshake is unconfirmed, and checks ``is_valid()`` before using keys.
"""

from __future__ import annotations

import functools
import ssl
from collections import deque
from typing import TYPE_CHECKING, Any, Final, TextIO, final

import attrs

# First: checks the aioquic version before any aioquic module is imported.
from ._quicheader import CID_LENGTH

# isort: split
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic import connection as _aioquic_connection, events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.crypto import CryptoPair, NoCallback
from aioquic.quic.logger import QLOG_VERSION, QuicLogger, QuicLoggerTrace
from aioquic.tls import Epoch, Group

from ._config import ALPN, Config
from ._quicpmtu import PmtuProbes
from ._quicshare import share_frame_table

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "CID_LENGTH",
    "Address",
    "CidIssued",
    "CidRetired",
    "CoreEvent",
    "QLOG_VERSION",
    "HandshakeDone",
    "QlogSink",
    "QuicCore",
    "StopSending",
    "StreamData",
    "StreamReset",
    "Terminated",
    "build_configuration",
]

#: DATAGRAM frames we accept (RFC 9221 max_datagram_frame_size): any that fits a packet.
DATAGRAM_FRAME_MAX: Final = 65535
#: DATAGRAM frames queued to send at most; more are dropped (counted).
DATAGRAMS_PENDING: Final = 64
# A 1-RTT packet's bytes around a DATAGRAM frame: the first byte, a peer CID
# (at most 20), the packet number (at most 4), the AEAD tag (16); and the
# frame's own type byte and length (at most 2 bytes below 16384).
_DATAGRAM_OVERHEAD: Final = 1 + 20 + 4 + 16 + 1 + 2

#: QUIC's CRYPTO_ERROR range: a TLS alert travels as 0x100 + its number.
CRYPTO_ERROR: Final = 0x100

#: A socket address as Python's socket module gives it: ``(host, port)`` or,
#: for IPv6, ``(host, port, flowinfo, scope_id)``.  The one address type of
#: the package.
Address = tuple[Any, ...]


# --------------------------------------------------------------------- events
@final
@attrs.frozen
class HandshakeDone:
    alpn: str | None


@final
@attrs.frozen
class StreamData:
    stream_id: int
    data: bytes
    fin: bool


@final
@attrs.frozen
class StreamReset:
    """The peer reset its sending side of a stream (RESET_STREAM)."""

    stream_id: int
    error_code: int


@final
@attrs.frozen
class StopSending:
    """The peer asked us to stop sending (STOP_SENDING); aioquic has already reset our side."""

    stream_id: int
    error_code: int


@final
@attrs.frozen
class Terminated:
    error_code: int
    reason: str
    by_peer: bool
    idle_timeout: bool
    is_application: bool

    @property
    def tls_alert(self) -> int | None:
        """The TLS alert this close carries (RFC 9001 4.8: CRYPTO_ERROR 0x100 + alert), or None.

        For example 120 (no_application_protocol, code 0x178) for a wrong
        ALPN, or 40 (handshake_failure, 0x128) for no common signature
        algorithm.
        """
        if self.is_application or not CRYPTO_ERROR <= self.error_code <= CRYPTO_ERROR + 0xFF:
            return None
        return self.error_code - CRYPTO_ERROR


@final
@attrs.frozen
class CidIssued:
    cid: bytes


@final
@attrs.frozen
class CidRetired:
    cid: bytes


CoreEvent = (
    HandshakeDone | StreamData | StreamReset | StopSending | Terminated | CidIssued | CidRetired
)


# -------------------------------------------------------------- configuration
def build_configuration(
    config: Config,
    *,
    is_client: bool,
    certificate: x509.Certificate,
    private_key: Ed25519PrivateKey,
    keylog: TextIO | None = None,
    qlog: QlogSink | None = None,
    chain: Sequence[x509.Certificate] = (),
) -> QuicConfiguration:
    """Build the aioquic configuration for one side of a connection.

    Peer certificates are not verified by aioquic (``CERT_NONE``): we verify
    the node id binding ourselves right after the handshake.  No SNI is sent,
    and no session ticket is stored or offered, so resumption and 0-RTT, which
    would skip the certificate, never happen.  ``keylog``: a text file aioquic
    writes every TLS secret to (NSS key log format); ``qlog``: where each
    connection's qlog trace goes.  ``chain``: certificates sent after ours
    (our node certificate, `Config.node_certificate`).
    """
    qc = QuicConfiguration(
        alpn_protocols=[ALPN],
        is_client=is_client,
        idle_timeout=config.idle_timeout,
        max_datagram_size=config.max_datagram_size,
        congestion_control_algorithm=config.congestion_control,
        initial_rtt=config.initial_rtt,
        max_data=config.initial_connection_window,
        max_stream_data=config.initial_stream_window,
        connection_id_length=CID_LENGTH,
        max_datagram_frame_size=DATAGRAM_FRAME_MAX if config.datagram_receive_queue else None,
        verify_mode=ssl.CERT_NONE,
        server_name=None,
    )
    qc.certificate = certificate
    qc.certificate_chain = list(chain)
    qc.private_key = private_key
    qc.secrets_log_file = keylog
    qc.quic_logger = qlog
    return qc


class QlogSink(QuicLogger):
    """aioquic's qlog collector, handing each finished trace to ``write``.

    ``write(odcid, is_client, trace)`` gets the connection's original
    destination connection id, its role and the trace as a JSON-ready dict;
    it is called when aioquic ends the connection (after its closing
    period), or by `end_all` for traces still open.
    """

    def __init__(self, write: Callable[[bytes, bool, dict[str, Any]], None]) -> None:
        super().__init__()
        self._write = write
        self._open: dict[QuicLoggerTrace, tuple[bytes, bool]] = {}

    def start_trace(self, is_client: bool, odcid: bytes) -> QuicLoggerTrace:
        trace = QuicLoggerTrace(is_client=is_client, odcid=odcid)
        self._open[trace] = (bytes(odcid), is_client)
        return trace

    def end_trace(self, trace: QuicLoggerTrace) -> None:
        key = self._open.pop(trace, None)
        if key is not None:
            self._write(key[0], key[1], trace.to_dict())

    def end_all(self) -> None:
        """End every trace still open (the endpoint is closing)."""
        for trace in list(self._open):
            self.end_trace(trace)


# ----------------------------------------------------------------- connection
_X25519: Final = Group.X25519
#: The epochs whose CRYPTO streams are dropped once discarded (access 29).
_SPENT_EPOCHS: Final = frozenset({Epoch.INITIAL, Epoch.HANDSHAKE})
#: Stands in for a discarded epoch's keys: no key was ever set up in it, so it
#: neither encrypts nor decrypts (``is_valid()`` is False), as torn-down keys.
_NO_KEYS: Final = CryptoPair()
#: Capacity of each TLS output buffer once the handshake is over (private
#: access 12): aioquic's are 16 KiB each, for the handshake's flights.
SPENT_CRYPTO_BUFFER: Final = 256


def _memoise_epochs() -> None:
    """Make aioquic's ``EPOCHS(shortcut)`` return one shared frozenset per shortcut (access 17)."""
    epochs = getattr(_aioquic_connection, "EPOCHS", None)
    if callable(epochs) and not hasattr(epochs, "cache_info"):
        _aioquic_connection.EPOCHS = functools.cache(epochs)


_memoise_epochs()


def _release_crypto_buffers(quic: QuicConnection) -> None:
    """Swap the handshake's TLS output buffers (already drained) for small ones."""
    buffers = quic._crypto_buffers
    for epoch in buffers:
        buffers[epoch] = Buffer(capacity=SPENT_CRYPTO_BUFFER)


class _QuicConnection(QuicConnection):
    """aioquic's connection with mutual TLS and a lost-packet counter."""

    # Our attributes live in slots: aioquic's own 84 fill the instance dict
    # to just below a resize, and three more would double it (1.7 KiB).
    __slots__ = ("_qp2p_queue", "qp2p_held", "qp2p_packets_lost", "qp2p_priority")

    def __init__(self, **kwargs: Any) -> None:
        #: Stream priorities (higher first; 0 for streams not in it).
        self.qp2p_priority: dict[int, int] = {}
        super().__init__(**kwargs)
        share_frame_table(self)
        self.qp2p_packets_lost = 0
        lost = self._loss._on_packets_lost

        def counting(*, packets: Iterable[Any], **kw: Any) -> None:
            packets = list(packets)
            self.qp2p_packets_lost += len(packets)
            lost(packets=packets, **kw)

        self._loss._on_packets_lost = counting  # type: ignore[method-assign]
        #: Streams whose receive window we hold: id -> [bytes consumed, window].
        self.qp2p_held: dict[int, list[int]] = {}

    @property
    def _streams_queue(self) -> list[Any]:
        # Sorted as aioquic reads it (it appends served streams after it
        # assigned a new order): stable, so equals keep their round-robin.
        streams = self._qp2p_queue
        priority = self.qp2p_priority
        if priority:
            streams.sort(key=lambda stream: -priority.get(stream.stream_id, 0))
        return streams

    @_streams_queue.setter
    def _streams_queue(self, streams: list[Any]) -> None:
        self._qp2p_queue = streams

    def qp2p_held_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        """``_write_stream_limits`` while a window is held (set on the instance then:
        aioquic calls it for every stream in every packet, so the usual case
        pays no extra Python frame)."""
        held = self.qp2p_held.get(stream.stream_id)
        if held is None:
            super()._write_stream_limits(builder, space, stream)
            return
        consumed, window = held
        limit = consumed + window
        # Grant in half-window steps, not a frame per read.
        if limit - stream.max_stream_data_local >= window // 2:
            stream.max_stream_data_local = limit
        # aioquic would double the window because bytes arrived: hide them
        # for the call (it only compares them), so only the frame is written.
        receiver = stream.receiver
        highest = receiver.highest_offset
        receiver.highest_offset = 0
        try:
            super()._write_stream_limits(builder, space, stream)
        finally:
            receiver.highest_offset = highest

    def _discard_epoch(self, epoch: Any) -> None:
        super()._discard_epoch(epoch)
        # The epoch's keys are gone (no packet of it decrypts or leaves any
        # more): its CRYPTO stream and TLS buffer go too (access 29).
        if epoch in _SPENT_EPOCHS and self._spaces[epoch].discarded:
            self._crypto_streams.pop(epoch, None)
            self._crypto_buffers.pop(epoch, None)
            # Torn-down keys: one shared pair that never had any stands in.
            self._cryptos[epoch] = _NO_KEYS
            if epoch == Epoch.INITIAL:
                self._cryptos_initial = dict.fromkeys(self._cryptos_initial, _NO_KEYS)

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if not self._is_client:
            # Mutual TLS: ask the client for its certificate (RFC 8446 4.3.2).
            self.tls._request_client_certificate = True
        else:
            # One key share, the one every QUIC stack accepts: generating the
            # other three cost about a tenth of a client handshake's CPU.
            self.tls._supported_groups = [_X25519]
        if self._quic_logger is None:
            # Without a qlog the key-update callbacks log nothing: drop the
            # 12 partials bound to this connection (access 28).
            for pair in self._cryptos.values():
                for context in (pair.recv, pair.send):
                    context._setup_cb = context._teardown_cb = NoCallback


@final
@attrs.frozen
class SendProgress:
    """How far a stream's sending side got.

    ``unacked``: bytes written but not yet acknowledged; ``finished``: every
    byte and the FIN were acknowledged; ``reset_code``: the side was reset
    (by us, or by aioquic answering the peer's STOP_SENDING).
    """

    unacked: int
    finished: bool
    reset_code: int | None


_DONE = SendProgress(0, True, None)


@final
class QuicCore:
    """One QUIC connection, sans-IO.  See the module docstring."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        *,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
        datagram_queue: int = 0,
        pmtu_ceiling: int | None = None,
    ) -> None:
        self._quic = _QuicConnection(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
        )
        self.is_client: bool = configuration.is_client
        self._pending_close_reported = False
        #: `unacked_total` until the next input, timer, reset or close (None: unknown).
        self._unacked: int | None = None
        self._datagrams_in: deque[bytes] | None = None  # see datagrams_in
        self._datagram_queue = datagram_queue
        self._packet_size = configuration.max_datagram_size
        #: DATAGRAM frames sent, received, and dropped (a full queue either way).
        self.datagram_counts = [0, 0, 0]
        #: Path MTU discovery up to ``pmtu_ceiling`` (None: never above the configured size).
        self.pmtu: PmtuProbes | None = None
        if pmtu_ceiling is not None and pmtu_ceiling > self._packet_size:
            self.pmtu = PmtuProbes(self._quic, self._packet_size, pmtu_ceiling)

    # -- identity and addressing
    @property
    def host_cid(self) -> bytes:
        return bytes(self._quic.host_cid)

    @property
    def original_destination_cid(self) -> bytes:
        return bytes(self._quic.original_destination_connection_id)

    def peer_address(self) -> Address | None:
        addr = self._quic.get_peer_address()
        return tuple(addr) if addr is not None else None

    def peer_certificates(self) -> list[x509.Certificate]:
        """The peer's leaf certificate then the rest of its chain (empty if none)."""
        tls = getattr(self._quic, "tls", None)
        leaf = getattr(tls, "_peer_certificate", None)
        if leaf is None:
            return []
        return [leaf, *getattr(tls, "_peer_certificate_chain", [])]

    # -- driving
    def connect(self, addr: Address, now: float) -> None:
        self._quic.connect(addr, now=now)

    def receive(self, data: bytes, addr: Address, now: float) -> None:
        self._unacked = None  # acknowledgements, STOP_SENDING
        self._quic.receive_datagram(data, addr, now=now)

    def datagrams(self, now: float) -> list[tuple[bytes, Address]]:
        out = self._quic.datagrams_to_send(now=now)
        if self.pmtu is not None:
            self.pmtu.transmit(now, out)
        return out

    def timer(self) -> float | None:
        return self._quic.get_timer()

    def on_timer(self, now: float) -> None:
        self._unacked = None
        self._quic.handle_timer(now=now)

    def events(self) -> list[CoreEvent]:
        """Drain aioquic's event queue, translated."""
        out: list[CoreEvent] = []
        quic = self._quic
        while (ev := quic.next_event()) is not None:
            if isinstance(ev, qe.StreamDataReceived):
                out.append(StreamData(ev.stream_id, ev.data, ev.end_stream))
            elif isinstance(ev, qe.StreamReset):
                out.append(StreamReset(ev.stream_id, ev.error_code))
            elif isinstance(ev, qe.StopSendingReceived):
                out.append(StopSending(ev.stream_id, ev.error_code))
            elif isinstance(ev, qe.HandshakeCompleted):
                _release_crypto_buffers(quic)
                if self.pmtu is not None:
                    self.pmtu.start()
                out.append(HandshakeDone(ev.alpn_protocol))
            elif isinstance(ev, qe.ConnectionIdIssued):
                out.append(CidIssued(bytes(ev.connection_id)))
            elif isinstance(ev, qe.ConnectionIdRetired):
                out.append(CidRetired(bytes(ev.connection_id)))
            elif isinstance(ev, qe.ConnectionTerminated) and not self._pending_close_reported:
                self._pending_close_reported = True
                out.append(self._terminated(ev))
            elif isinstance(ev, qe.DatagramFrameReceived):
                self._datagram_received(ev.data)
            # ProtocolNegotiated: not used.
        return out

    # -- datagrams (RFC 9221)
    @property
    def datagrams_in(self) -> deque[bytes]:
        """DATAGRAM frames received and not yet taken, at most ``datagram_queue``.

        Made on first use: most connections never carry a datagram.
        """
        queue = self._datagrams_in
        if queue is None:
            queue = self._datagrams_in = deque()
        return queue

    def _datagram_received(self, data: bytes) -> None:
        counts = self.datagram_counts
        if len(self.datagrams_in) < self._datagram_queue:
            self.datagrams_in.append(data)
            counts[1] += 1
        else:
            counts[2] += 1  # the application is not taking them: dropped

    def datagram_limit(self) -> int:
        """The largest datagram payload the peer takes and a packet carries (0: none)."""
        remote = self._quic._remote_max_datagram_frame_size
        if not remote:
            return 0
        # The peer refuses a frame whose length field and data reach its maximum.
        return max(0, min(remote - 3, self._packet_size - _DATAGRAM_OVERHEAD))

    def send_datagram(self, data: bytes) -> bool:
        """Queue one DATAGRAM frame (never retransmitted); False if dropped (queue full)."""
        pending = self._quic._datagrams_pending
        if len(pending) >= DATAGRAMS_PENDING:
            self.datagram_counts[2] += 1
            return False
        self._quic.send_datagram_frame(data)
        self.datagram_counts[0] += 1
        return True

    def close_seen(self) -> Terminated | None:
        """Report a close at once, before aioquic's 3-PTO draining period ends.

        Returns the close (ours or the peer's) the first time it is seen,
        None otherwise; `events` will not report it a second time.
        """
        ev = self._quic._close_event
        if ev is None or self._pending_close_reported:
            return None
        self._pending_close_reported = True
        return self._terminated(ev)

    def _terminated(self, ev: Any) -> Terminated:
        reason = ev.reason_phrase or ""
        idle = reason == "Idle timeout" and ev.frame_type == 0
        # aioquic records a close it received with the peer's frame type;
        # our own close() keeps the frame_type we passed (None).
        by_peer = not idle and self._quic._state.name == "DRAINING"
        return Terminated(
            error_code=int(ev.error_code),
            reason=reason,
            by_peer=by_peer,
            idle_timeout=idle,
            is_application=ev.frame_type is None,
        )

    @property
    def decrypted(self) -> bool:
        """True once any packet of this connection decrypted.

        For a new server connection it tells a client's Initial (valid, with
        CRYPTO data: aioquic closes the connection otherwise) from junk with
        a plausible header: keep the former even when it produced nothing
        yet, as the first part of a ClientHello spanning several datagrams
        does.  aioquic leaves FIRSTFLIGHT when a packet decrypts, before its
        frames are handled.
        """
        return self._quic._state.name != "FIRSTFLIGHT"

    @property
    def is_ended(self) -> bool:
        """True once the connection reached the terminated state."""
        return self._quic._state.name == "TERMINATED"

    @property
    def can_send_early(self) -> bool:
        """True once 1-RTT keys exist and the peer allows a unidirectional stream.

        A server reaches it while processing the ClientHello, before the
        handshake completes: data queued then leaves with its first flight.
        """
        from aioquic import tls

        crypto = self._quic._cryptos.get(tls.Epoch.ONE_RTT)
        return (
            crypto is not None and crypto.send.is_valid() and self._quic._remote_max_streams_uni > 0
        )

    # -- streams
    def next_stream_id(self, *, unidirectional: bool) -> int:
        return self._quic.get_next_available_stream_id(is_unidirectional=unidirectional)

    def send(
        self, stream_id: int, data: bytes | bytearray | memoryview, end_stream: bool = False
    ) -> None:
        self._quic.send_stream_data(stream_id, data, end_stream=end_stream)  # type: ignore[arg-type]  # bytearray += memoryview works
        if self._unacked is not None:
            self._unacked += len(data)  # as aioquic counts it (callers pass bytes)

    def hold_window(self, stream_id: int, window: int, *, consumed: int) -> None:
        """Let the peer send at most ``window`` bytes past what was consumed.

        ``consumed``: the stream's bytes the application has already taken
        (say, a head); `consumed` adds the rest as it reads.  From now on
        the stream's receive window grows only as the application reads
        (it never shrinks below what was already granted).
        """
        quic = self._quic
        held = quic.qp2p_held
        streams = quic._streams
        for gone in [sid for sid in held if sid not in streams]:
            del held[gone]  # ended (aioquic discarded it): forget its window too
        held[stream_id] = [consumed, window]
        if "_write_stream_limits" not in vars(quic):
            quic._write_stream_limits = quic.qp2p_held_stream_limits  # type: ignore[method-assign]

    def consumed(self, stream_id: int, nbytes: int) -> None:
        """The application took ``nbytes`` more of a held stream: the window may grow."""
        held = self._quic.qp2p_held.get(stream_id)
        if held is not None:
            held[0] += nbytes

    def set_priority(self, stream_id: int, priority: int) -> None:
        """Give a stream of ours packet space before those of lower priority (default 0)."""
        quic = self._quic
        table = quic.qp2p_priority
        for gone in [sid for sid in table if sid not in quic._streams]:
            del table[gone]  # ended: forget it
        if priority:
            table[stream_id] = priority
        else:
            table.pop(stream_id, None)

    def reset(self, stream_id: int, error_code: int) -> None:
        self._unacked = None
        if stream_id in self._quic._streams:
            self._quic.reset_stream(stream_id, error_code)

    def stop(self, stream_id: int, error_code: int) -> None:
        if stream_id in self._quic._streams:
            self._quic.stop_stream(stream_id, error_code)

    def writable(self, stream_id: int) -> bool:
        """Whether an existing stream still takes data (no FIN, not reset, not discarded)."""
        stream = self._quic._streams.get(stream_id)
        if stream is None:
            return False
        sender = stream.sender
        return sender._buffer_fin is None and sender._reset_error_code is None

    def unacked_total(self) -> int:
        """Bytes written on any stream and not yet acknowledged (or not yet sent).

        Summed over every stream once, then kept up to date by `send` until
        something else may change it: input (acknowledgements, the peer's
        STOP_SENDING), a timer, a reset or a close.  Building packets does
        not (it only discards streams whose every byte was acknowledged).
        """
        total = self._unacked
        if total is None:
            total = 0
            for stream in self._quic._streams.values():
                sender = stream.sender
                if sender._reset_error_code is None:
                    total += sender._buffer_stop - sender._buffer_start
            self._unacked = total
        return total

    def ack_pending(self) -> bool:
        """Whether an acknowledgement of received packets is still to be sent."""
        from aioquic import tls

        space = self._quic._spaces.get(tls.Epoch.ONE_RTT)
        return space is not None and space.ack_at is not None

    def ack_now(self, now: float) -> None:
        """Make the next transmit carry an ACK of everything received (before a close)."""
        from aioquic import tls

        space = self._quic._spaces.get(tls.Epoch.ONE_RTT)
        if space is not None and space.ack_at is not None and space.ack_at >= now:
            # Strictly before ``now``: aioquic paces a packet whose ACK is due
            # exactly at ``now``, and the timer would then fire without end.
            space.ack_at = now - 1e-6

    def send_progress(self, stream_id: int) -> SendProgress:
        stream = self._quic._streams.get(stream_id)
        if stream is None:
            # Discarded: both directions finished.  A reset is reported by the
            # caller's own bookkeeping (we reset it, or the peer stopped it).
            return _DONE
        sender = stream.sender
        if sender._reset_error_code is not None:
            return SendProgress(0, False, int(sender._reset_error_code))
        if sender.is_finished:
            return _DONE
        return SendProgress(sender._buffer_stop - sender._buffer_start, False, None)

    def ping(self, uid: int) -> None:
        self._quic.send_ping(uid)

    def close(self, error_code: int, reason: str) -> None:
        self._unacked = None
        self._quic.close(error_code=error_code, reason_phrase=reason)

    # -- statistics
    def statistics(self) -> dict[str, float | int]:
        loss = self._quic._loss
        return {
            "rtt": float(loss._rtt_smoothed),
            "rtt_min": float(loss._rtt_min) if loss._rtt_min != float("inf") else 0.0,
            "rtt_latest": float(loss._rtt_latest),
            "congestion_window": int(loss.congestion_window),
            "bytes_in_flight": int(loss.bytes_in_flight),
            "packets_lost": int(self._quic.qp2p_packets_lost),
            "path_mtu": int(self._quic._max_datagram_size),
        }
