# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The Prometheus/OpenMetrics exposition of `Endpoint.metrics` (the ``metrics`` extra).

`PrometheusCollector` is a ``prometheus_client`` custom collector: it keeps
no counters of its own and takes an `Endpoint.metrics` snapshot at every
scrape.  ``prometheus_client`` scrapes from its HTTP server's threads, and the
endpoint belongs to its Trio thread, so a scrape from another thread takes
the snapshot on the Trio thread (`trio.from_thread.run_sync`).
`serve_metrics` runs that HTTP server for the lifetime of an ``async with``.

``prometheus_client`` is imported only when a collector is made, so the
package imports without it.
"""

from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping

    from ._endpoint import Endpoint
    from ._endpointstats import EndpointStatistics
    from ._metrics import EndpointMetrics

__all__ = ["PrometheusCollector", "serve_metrics"]

_MISSING = (
    "qp2p_trio's Prometheus metrics need the prometheus_client package: "
    "pip install 'qp2p_trio[metrics]'"
)


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(_MISSING) from exc


@final
class PrometheusCollector:
    """A ``prometheus_client`` collector of one endpoint's `Endpoint.metrics`.

    Register it with a ``prometheus_client.CollectorRegistry`` (or use
    `serve_metrics`).  Make it in the endpoint's Trio thread: scrapes from
    other threads (``prometheus_client``'s HTTP server) take the snapshot
    there.  Every metric is named ``<namespace>_...`` and labelled with the
    endpoint's ``node_id``.

    Example::

        registry = prometheus_client.CollectorRegistry()
        registry.register(qp2p_trio.PrometheusCollector(ep))

    Raises:
        ImportError: ``prometheus_client`` is not installed (install the
            ``qp2p_trio[metrics]`` extra).
    """

    def __init__(self, endpoint: Endpoint, *, namespace: str = "qp2p") -> None:
        self._core = _import("prometheus_client.core")
        self._endpoint = endpoint
        self._namespace = namespace
        self._node_id = str(endpoint.node_id)
        try:
            self._token: trio.lowlevel.TrioToken | None = trio.lowlevel.current_trio_token()
        except RuntimeError:
            self._token = None

    def _snapshot(self) -> EndpointMetrics:
        token = self._token
        if token is None:
            return self._endpoint.metrics()
        try:
            if trio.lowlevel.current_trio_token() is token:
                return self._endpoint.metrics()
        except RuntimeError:
            pass
        return trio.from_thread.run_sync(self._endpoint.metrics, trio_token=token)

    def describe(self) -> list[Any]:
        """No description up front: ``prometheus_client`` must not scrape at registration."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families, from a fresh snapshot."""
        m = self._snapshot()
        core = self._core
        for kinds, rows in (
            (core.CounterMetricFamily, _counters(m)),
            (core.GaugeMetricFamily, _gauges(m)),
        ):
            for name, doc, label, values in rows:
                labels = ["node_id"] if label is None else ["node_id", label]
                family = kinds(f"{self._namespace}_{name}", doc, labels=labels)
                for value_label, value in values.items():
                    extra = [] if label is None else [value_label]
                    family.add_metric([self._node_id, *extra], value)
                yield family
        for name, doc, histogram in (
            ("handshake_seconds", "Set-up time of established connections", m.handshake_seconds),
            ("rtt_seconds", "Smoothed RTT of connections when established", m.rtt_seconds),
        ):
            family = core.HistogramMetricFamily(
                f"{self._namespace}_{name}", doc, labels=["node_id"]
            )
            buckets = [
                (repr(float(bound)), count)
                for bound, count in zip(histogram.buckets, histogram.counts, strict=True)
            ]
            family.add_metric([self._node_id], [*buckets, ("+Inf", histogram.count)], histogram.sum)
            yield family


#: name, help, label (or None), {label value: value}
_Row = tuple[str, str, str | None, "Mapping[str, int]"]


def _counters(m: EndpointMetrics) -> list[_Row]:
    st = m.statistics
    return [
        (
            "connections_opened",
            "Connections established, by who dialled",
            "direction",
            {"incoming": m.connections_opened_incoming, "outgoing": m.connections_opened_outgoing},
        ),
        (
            "connections_closed",
            "Established connections that ended, by reason",
            "reason",
            {reason.name.lower(): n for reason, n in m.connections_closed.items()},
        ),
        (
            "handshakes_failed",
            "Connection attempts that failed before being established",
            "direction",
            {"incoming": m.handshakes_failed_incoming, "outgoing": m.handshakes_failed_outgoing},
        ),
        ("tls_handshake_failures", "Handshakes TLS refused", None, {"": st.handshake_failures}),
        ("connection_refusals", "Connection attempts we refused", "code", m.connection_refusals),
        ("stream_refusals", "Incoming streams we refused", "code", m.stream_refusals),
        (
            "messages",
            "Messages, requests and replies",
            "direction",
            {"in": m.messages_received, "out": m.messages_sent},
        ),
        (
            "message_bytes",
            "Message payload bytes",
            "direction",
            {"in": m.message_bytes_received, "out": m.message_bytes_sent},
        ),
        (
            "datagrams",
            "UDP datagrams",
            "direction",
            {"in": st.datagrams_received, "out": st.datagrams_sent},
        ),
        (
            "datagram_bytes",
            "UDP payload bytes",
            "direction",
            {"in": st.bytes_received, "out": st.bytes_sent},
        ),
        (
            "datagrams_dropped",
            "Datagrams dropped on receipt, by cause",
            "cause",
            {
                "malformed": st.dropped_malformed,
                "unknown_connection": st.dropped_unknown_connection,
                "unsupported_version": st.dropped_unsupported_version,
            },
        ),
        (
            "pool_lookups",
            "Connect attempts, by whether a pooled connection answered",
            "result",
            {"hit": m.pool_hits, "miss": m.pool_misses},
        ),
        ("connect_retries", "Failed attempts retried (Config.retry)", None, {"": m.retries}),
        *relay_counters(m),
        *_reach_counters(st),
    ]


def _reach_counters(st: EndpointStatistics) -> list[_Row]:
    return [
        (
            "reachability_verdicts",
            "Verdicts of our reachability checks (dial-backs), by verdict",
            "verdict",
            {
                "reachable": st.reach_verdicts_reachable,
                "unreachable": st.reach_verdicts_unreachable,
                "unknown": st.reach_verdicts_unknown,
            },
        ),
        (
            "reachability_checks_served",
            "Peers' reachability checks, by what we did",
            "result",
            {
                "served": st.reach_checks_served,
                "declined": st.reach_checks_declined,
                "helped": st.reach_dial_backs_helped,
            },
        ),
    ]


#: Hole punching counters exported under names of their own (above); any
#: other counter of `EndpointStatistics` with one of `_PATH_PREFIXES` (punch
#: and path fallback counters added later) is exported as it is named.
_PUNCH_KNOWN = frozenset(
    {"punch_attempts", "punch_successes", "punch_failures", "punch_requests_refused"}
)
_PATH_PREFIXES = ("punch_", "path_fallback")


def relay_counters(m: EndpointMetrics) -> list[_Row]:
    """Relay service, relay paths and hole punching (see docs/relays)."""
    st = m.statistics
    rows: list[_Row] = [
        (
            "relay_datagrams_forwarded",
            "Datagrams this relay forwarded between its peers",
            None,
            {"": st.relay_frames_forwarded},
        ),
        (
            "relay_bytes_forwarded",
            "Datagram bytes this relay forwarded between its peers",
            None,
            {"": st.relay_bytes_forwarded},
        ),
        (
            "relay_datagrams_dropped",
            "Datagrams this relay dropped, by reason",
            "reason",
            {
                "rate": st.relay_dropped_rate,
                "buffer": st.relay_dropped_buffer,
                "unknown_peer": st.relay_dropped_unknown_peer,
            },
        ),
        (
            "relay_clients_rejected",
            "Peers this relay refused (over relay_max_peers) or cut off (a bad frame)",
            "reason",
            {"busy": st.relay_clients_refused, "malformed": st.relay_clients_malformed},
        ),
        (
            "relay_path_datagrams_dropped",
            "Our datagrams dropped on the way to a relay",
            None,
            {"": st.relay_paths_dropped},
        ),
        (
            "punch_attempts",
            "Hole punching rounds for relayed connections we dialled",
            None,
            {"": st.punch_attempts},
        ),
        (
            "punch_outcomes",
            "Hole punching that ended, by outcome",
            "outcome",
            {"success": st.punch_successes, "failure": st.punch_failures},
        ),
        (
            "punch_requests_refused",
            "Peers' punch requests not answered (not relayed, or too many)",
            None,
            {"": st.punch_requests_refused},
        ),
    ]
    for field in attrs.fields(type(st)):
        if field.name.startswith(_PATH_PREFIXES) and field.name not in _PUNCH_KNOWN:
            value = getattr(st, field.name)
            if isinstance(value, int):
                rows.append((field.name, f"EndpointStatistics.{field.name}", None, {"": value}))
    return rows


def _gauges(m: EndpointMetrics) -> list[_Row]:
    return [
        (
            "connections",
            "Connections, by state",
            "state",
            {"alive": m.connections_alive, "closing": m.connections_closing},
        ),
        ("peers_connected", "Peers with a live pooled connection", None, {"": m.peers_connected}),
        (
            "receive_buffered_messages",
            "Messages holding receive budget",
            None,
            {"": m.receive_buffered_messages},
        ),
        (
            "receive_buffered_bytes",
            "Bytes of receive budget held",
            None,
            {"": m.receive_buffered_bytes},
        ),
        (
            "send_unacked_bytes",
            "Bytes sent on live connections, not yet acknowledged",
            None,
            {"": m.send_unacked_bytes},
        ),
        (
            "relay_clients",
            "Peers registered with this relay",
            None,
            {"": m.statistics.relay_clients},
        ),
        (
            "relay_paths",
            "Relays this endpoint uses, by whether their relay stream is up",
            "state",
            {
                "up": m.statistics.relay_paths_up,
                "down": m.statistics.relay_paths - m.statistics.relay_paths_up,
            },
        ),
        (
            "home_relay_up",
            "1 while the stream to the home relay (Config.home_relay) is up",
            None,
            {"": m.statistics.home_relay_up},
        ),
    ]


@asynccontextmanager
async def serve_metrics(
    endpoint: Endpoint, address: tuple[str, int] = ("127.0.0.1", 9464), *, namespace: str = "qp2p"
) -> AsyncIterator[tuple[str, int]]:
    """Serve ``endpoint``'s metrics over HTTP (Prometheus text format) inside ``async with``.

    ``prometheus_client``'s HTTP server runs in a thread; it is shut down
    (and the thread joined) when the block exits, by cancellation too.  Any
    path answers (``/metrics`` by convention).

    Example::

        async with qp2p_trio.serve_metrics(ep, ("127.0.0.1", 9464)) as (host, port):
            ...  # curl http://127.0.0.1:9464/metrics

    Args:
        endpoint: the endpoint to expose.
        address: numeric ``(host, port)`` to listen on; port 0 picks a free
            one.  Metrics reveal traffic patterns: keep it on loopback or a
            private network.
        namespace: the metric name prefix.

    Yields:
        The ``(host, port)`` the server listens on.

    Raises:
        ImportError: ``prometheus_client`` is not installed (the
            ``qp2p_trio[metrics]`` extra).
        OSError: the address cannot be bound.
    """
    client = _import("prometheus_client")
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(PrometheusCollector(endpoint, namespace=namespace))
    host, port = address
    server, thread = client.start_http_server(port, addr=host, registry=registry)
    try:
        bound = server.server_address
        yield (str(bound[0]), int(bound[1]))
    finally:
        with trio.CancelScope(shield=True):
            # Off the Trio thread: a scrape in flight may need it to finish.
            await trio.to_thread.run_sync(server.shutdown)
            server.server_close()
            await trio.to_thread.run_sync(thread.join)
