# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Metrics: what an operator watches, as one immutable snapshot (`Endpoint.metrics`).

Theory of operation
-------------------
Nothing here runs per datagram.  The driver's `_Counters` (surfaced by
`Endpoint.statistics`) already count datagrams, bytes and admission; this
module adds what happens once per connection, per message or per dial, as
plain integer attributes of a `Tally` the driver owns:

- connections opened (once established) and handshakes failed, by direction,
  and connections closed, by `DisconnectReason`, counted when they end;
- messages and their payload bytes: received ones when delivered to the
  receive queue (`Driver.deliver`), sent ones (messages, requests, replies)
  and received replies by each connection's `StreamIO`, folded into the
  tally when the connection ends; a snapshot adds the live connections';
- stream refusals by code, pool hits and misses, retries;
- two histograms (`Histogram`): how long each established connection's
  handshake took (its first datagram to established, so a listener that
  admits after a hook includes the hook), and its smoothed RTT at that moment
  (one sample per connection; `Connection.statistics` has the current one).

Gauges (buffered bytes, connections alive) are read from their owners when
the snapshot is taken, so nothing is counted twice and the hot path pays
nothing.  `snapshot` costs one pass over the live connections.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Final, final

import attrs

from ._events import DisconnectReason
from ._wire import StreamErrorCode

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._budget import ReceiveBudget
    from ._connection import Connection
    from ._endpointstats import EndpointStatistics

__all__ = ["HANDSHAKE_BUCKETS", "RTT_BUCKETS", "EndpointMetrics", "Histogram", "Tally", "snapshot"]

#: Upper bounds (seconds) of the handshake-duration histogram's buckets.
HANDSHAKE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Upper bounds (seconds) of the RTT histogram's buckets.
RTT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@final
@attrs.frozen
class Histogram:
    """Observations counted in buckets, as Prometheus histograms count them.

    Attributes:
        buckets: the buckets' upper bounds, ascending (a last, implicit one
            is +Inf).
        counts: per bound, the observations at or below it (cumulative).
        count: all observations (the +Inf bucket).
        sum: the sum of all observations.
    """

    buckets: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum: float


@attrs.define
class _Buckets:
    bounds: tuple[float, ...]
    hits: list[int] = attrs.field()  # per bucket, not cumulative; the last is +Inf
    total: float = 0.0

    @hits.default
    def _hits(self) -> list[int]:
        return [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.hits[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def freeze(self) -> Histogram:
        counts: list[int] = []
        running = 0
        for hits in self.hits[:-1]:
            running += hits
            counts.append(running)
        return Histogram(self.bounds, tuple(counts), sum(self.hits), self.total)


@attrs.define
class Tally:
    """The counters `EndpointStatistics` lacks (owned by the driver; see the module doc)."""

    opened_incoming: int = 0
    opened_outgoing: int = 0
    failed_incoming: int = 0
    failed_outgoing: int = 0
    pool_hits: int = 0
    pool_misses: int = 0
    retries: int = 0
    message_bytes_received: int = 0
    # Folded from ended connections (their StreamIO's counters).
    messages_sent: int = 0
    message_bytes_sent: int = 0
    replies_received: int = 0
    reply_bytes_received: int = 0
    closed: dict[DisconnectReason, int] = attrs.Factory(dict)
    stream_refusals: dict[int, int] = attrs.Factory(dict)
    handshake_seconds: _Buckets = attrs.Factory(lambda: _Buckets(HANDSHAKE_BUCKETS))
    rtt_seconds: _Buckets = attrs.Factory(lambda: _Buckets(RTT_BUCKETS))
    # When each connection's handshake began is the connection's own
    # (`Connection.handshake_began`): nothing per endpoint, gone with it.

    def handshake_started(self, conn: Connection, now: float) -> None:
        if conn.handshake_began is None:
            conn.handshake_began = now

    def established(self, conn: Connection, now: float) -> None:
        """Observe the handshake's duration and the connection's RTT now."""
        started = conn.handshake_began
        if started is not None:
            conn.handshake_began = None
            self.handshake_seconds.observe(now - started)
        rtt = conn.statistics().rtt
        if rtt > 0:
            self.rtt_seconds.observe(rtt)

    def connection_ended(self, conn: Connection, reason: DisconnectReason | None) -> None:
        """Fold an ended connection in; ``reason`` if it had been established."""
        io = conn.io
        self.messages_sent += io.messages_sent
        self.message_bytes_sent += io.message_bytes_sent
        self.replies_received += io.replies_received
        self.reply_bytes_received += io.reply_bytes_received
        if reason is not None:
            self.closed[reason] = self.closed.get(reason, 0) + 1

    def stream_refused(self, code: int) -> None:
        self.stream_refusals[code] = self.stream_refusals.get(code, 0) + 1


@final
@attrs.frozen
class EndpointMetrics:
    """A snapshot of what an operator watches on an endpoint (`Endpoint.metrics`).

    Counters only grow; gauges are the state at the time of the snapshot.
    `PrometheusCollector` exposes it in the Prometheus/OpenMetrics format.

    Attributes:
        statistics: the endpoint's low-level counters (datagrams, bytes,
            drops, admission), as `Endpoint.statistics` returns them.
        connections_opened_incoming / connections_opened_outgoing:
            connections established (verified, admitted, the peer's SETTINGS
            received): the handshakes that succeeded, by who dialled.
        handshakes_failed_incoming / handshakes_failed_outgoing: connection
            attempts that ended before being established: a TLS failure, a
            node id mismatch, a refusal (a limit, a trust policy) or no
            answer.  One we gave up ourselves (the caller was cancelled, a
            `Endpoint.connect_to_any` race was lost, the endpoint closed) is
            no failure.  Each is also a `HandshakeFailed` event.  Incoming
            Initials refused before any connection state existed are counted
            in `connection_refusals` only.
        connections_closed: established connections that ended, by
            `DisconnectReason` (every reason is present, maybe 0).
        connection_refusals: refused connection attempts by close code
            name: ``CONNECTION_REFUSED`` (a limit or `Config.admit_address`),
            ``INVALID_TOKEN``, ``HANDSHAKE_TIMEOUT`` (the set-up deadline) and
            ``ADMISSION_REFUSED`` (a trust policy), all refused by us.
        stream_refusals: incoming messages and streams we refused, by
            `StreamErrorCode` name (``BUSY``, ``TOO_LARGE``, ``STALLED``...).
        messages_sent / message_bytes_sent: messages, requests and replies
            sent in full (confirmed by the peer for messages and requests),
            and their payload bytes.
        messages_received / message_bytes_received: messages and requests
            delivered to the receive queue, and replies received, with their
            payload bytes.
        pool_hits / pool_misses: `Endpoint.connect` attempts (and those
            behind `Endpoint.send` and `Endpoint.request`) answered by a live
            pooled connection, or not (a new or shared handshake).
        retries: failed attempts retried under `Config.retry`.
        connections_alive / connections_closing: as in `EndpointStatistics`
            (``connections`` and ``connections_closing``).
        peers_connected: peers with a live pooled connection.
        receive_buffered_messages / receive_buffered_bytes: receive budget
            held: messages being received or waiting in the receive queue.
        send_unacked_bytes: bytes written on live connections and not yet
            acknowledged by their peers.
        handshake_seconds: a `Histogram` of how long established
            connections took to set up, from their first datagram to
            established (verified, admitted, SETTINGS received).
        rtt_seconds: a `Histogram` of the smoothed round-trip time of each
            established connection when it was established.
    """

    statistics: EndpointStatistics
    connections_opened_incoming: int
    connections_opened_outgoing: int
    handshakes_failed_incoming: int
    handshakes_failed_outgoing: int
    connections_closed: Mapping[DisconnectReason, int]
    connection_refusals: Mapping[str, int]
    stream_refusals: Mapping[str, int]
    messages_sent: int
    message_bytes_sent: int
    messages_received: int
    message_bytes_received: int
    pool_hits: int
    pool_misses: int
    retries: int
    connections_alive: int
    connections_closing: int
    peers_connected: int
    receive_buffered_messages: int
    receive_buffered_bytes: int
    send_unacked_bytes: int
    handshake_seconds: Histogram
    rtt_seconds: Histogram


def _code_name(code: int) -> str:
    try:
        return StreamErrorCode(code).name
    except ValueError:
        return f"0x{code:x}"


def snapshot(
    tally: Tally,
    statistics: EndpointStatistics,
    live: Iterable[Connection],
    budget: ReceiveBudget[str],
) -> EndpointMetrics:
    """Build the snapshot: the tally, plus what the live connections hold now."""
    sent = tally.messages_sent
    sent_bytes = tally.message_bytes_sent
    replies = tally.replies_received
    reply_bytes = tally.reply_bytes_received
    unacked = 0
    for conn in live:
        io = conn.io
        sent += io.messages_sent
        sent_bytes += io.message_bytes_sent
        replies += io.replies_received
        reply_bytes += io.reply_bytes_received
        if not conn.is_closed:
            unacked += conn.core.unacked_total()
    st = statistics
    return EndpointMetrics(
        statistics=st,
        connections_opened_incoming=tally.opened_incoming,
        connections_opened_outgoing=tally.opened_outgoing,
        handshakes_failed_incoming=tally.failed_incoming,
        handshakes_failed_outgoing=tally.failed_outgoing,
        connections_closed={reason: tally.closed.get(reason, 0) for reason in DisconnectReason},
        connection_refusals={
            "CONNECTION_REFUSED": st.connections_refused + st.addresses_refused,
            "INVALID_TOKEN": st.invalid_tokens,
            "HANDSHAKE_TIMEOUT": st.handshakes_timed_out,
            "ADMISSION_REFUSED": st.peers_refused,
        },
        stream_refusals={_code_name(c): n for c, n in sorted(tally.stream_refusals.items())},
        messages_sent=sent,
        message_bytes_sent=sent_bytes,
        messages_received=st.messages_received + replies,
        message_bytes_received=tally.message_bytes_received + reply_bytes,
        pool_hits=tally.pool_hits,
        pool_misses=tally.pool_misses,
        retries=tally.retries,
        connections_alive=st.connections,
        connections_closing=st.connections_closing,
        peers_connected=st.pooled,
        receive_buffered_messages=budget.total.messages,
        receive_buffered_bytes=budget.total.bytes,
        send_unacked_bytes=unacked,
        handshake_seconds=tally.handshake_seconds.freeze(),
        rtt_seconds=tally.rtt_seconds.freeze(),
    )
