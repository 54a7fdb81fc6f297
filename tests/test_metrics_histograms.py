# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Histograms in `Endpoint.metrics` and their Prometheus exposition: handshake time, RTT."""

from __future__ import annotations

import signal
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_cli import WAIT, Listener, Process

import qp2p_trio
from qp2p_trio._metrics import RTT_BUCKETS, _Buckets
from qp2p_trio.testing import LinkConfig, MemoryNetwork

if TYPE_CHECKING:
    from pathlib import Path

ADDR = ("127.0.0.1", 0)


def test_buckets_are_cumulative_and_inclusive() -> None:
    buckets = _Buckets((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        buckets.observe(value)
    histogram = buckets.freeze()
    assert histogram.buckets == (0.1, 1.0)
    assert histogram.counts == (2, 4)  # <= 0.1: 0.05 and 0.1; <= 1: and 0.5, 1.0
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(8.65)


async def test_handshake_and_rtt_histograms(autojump_clock: Any) -> None:
    """On a link with 25 ms each way: RTT ~50 ms, the handshake one to two round trips."""
    net = MemoryNetwork(seed=31)
    net.default_link = LinkConfig(delay=0.025)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR) as a,
            qp2p_trio.open_endpoint(ADDR) as b,
        ):
            empty = a.metrics()
            assert empty.handshake_seconds.count == empty.rtt_seconds.count == 0
            assert empty.rtt_seconds.buckets == RTT_BUCKETS
            await a.connect(b.local_address)
            await b.accept()
            for ep in (a, b):
                m = ep.metrics()
                assert m.handshake_seconds.count == 1
                assert 0.05 <= m.handshake_seconds.sum <= 0.2
                assert m.rtt_seconds.count == 1
                assert 0.045 <= m.rtt_seconds.sum <= 0.06
                at_50ms = m.rtt_seconds.counts[m.rtt_seconds.buckets.index(0.05)]
                at_100ms = m.rtt_seconds.counts[m.rtt_seconds.buckets.index(0.1)]
                assert (at_50ms, at_100ms) in ((0, 1), (1, 1))

            registry = CollectorRegistry(auto_describe=False)
            registry.register(qp2p_trio.PrometheusCollector(a))
            text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("qp2p_handshake_seconds", "qp2p_rtt_seconds"):
        family = families[name]
        assert family.type == "histogram"
        samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
        assert samples[(f"{name}_count", None)] == 1
        assert samples[(f"{name}_bucket", "+Inf")] == 1
        assert samples[(f"{name}_bucket", "0.005")] == 0
    assert samples[("qp2p_rtt_seconds_bucket", "0.1")] == 1


def test_cli_ping_serves_metrics(tmp_path: Path) -> None:
    """``ping --metrics``: the pinger's own metrics, RTT histogram included, while it runs."""
    node = Listener(tmp_path)
    pinger = Process(
        tmp_path, "ping", "-c", "0", "-i", "0.2", "--metrics", "127.0.0.1:0", node.peer
    )
    try:
        pinger.wait_for(lambda line: "bytes from" in line)
        (url,) = [
            line.split("metrics: ", 1)[1]
            for line in pinger.stderr().splitlines()
            if line.startswith("metrics: ")
        ]
        assert url.startswith("http://127.0.0.1:")
        body = urllib.request.urlopen(url, timeout=WAIT).read().decode()
        families = {f.name: f for f in text_string_to_metric_families(body)}
        samples = {
            (s.name, s.labels.get("le")): s.value for s in families["qp2p_rtt_seconds"].samples
        }
        assert samples[("qp2p_rtt_seconds_count", None)] == 1
        assert families["qp2p_handshake_seconds"].type == "histogram"
        pinger.proc.send_signal(signal.SIGINT)
        assert pinger.finish() == 130  # Ctrl-C ends `-c 0`: the summary, then 130
    finally:
        pinger.close()
        node.close()
