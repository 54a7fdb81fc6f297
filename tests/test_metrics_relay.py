# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Relays and hole punching in the Prometheus exposition (`PrometheusCollector`).

On the virtual network: a relay and two peers behind cone NATs that meet
through it and punch a hole.  The relay's counters (forwarded, dropped by
reason), each peer's relay path state (home relay up, paths up and down)
and punch outcomes are scraped and checked against what happened.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from qp2p_trio import Config, EndpointStatistics, PeerAddress, PeerNotAtRelay
from qp2p_trio._prometheus import relay_counters
from qp2p_trio.testing import (
    LinkConfig,
    MemoryNetwork,
    NatConfig,
    open_endpoint_factory,
    seeded_identity,
    wait_until,
)

pytest.importorskip("prometheus_client")

from test_metrics import scrape, value  # after the skip

RELAY_IP = "127.100.0.1"


async def test_relay_path_and_punch_metrics(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=21, default_link=LinkConfig(delay=0.02))
    net.add_host(RELAY_IP)
    net.add_host("127.10.0.2", behind=net.add_nat("127.200.0.1", NatConfig()))
    net.add_host("127.10.1.2", behind=net.add_nat("127.200.0.2", NatConfig()))
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net, seed=21) as factory:
            relay = await factory(config=Config(relay=True), local_address=(RELAY_IP, 4433))
            fr = scrape(relay)
            assert value(fr, "qp2p_relay_clients") == 0
            assert value(fr, "qp2p_home_relay_up") == 0
            assert value(fr, "qp2p_relay_paths", state="up") == 0
            config = Config(home_relay=relay.peer_address)
            a = await factory(config=config, local_address=("127.10.0.2", 0))
            b = await factory(config=config, local_address=("127.10.1.2", 0))
            await wait_until(lambda: relay.statistics().relay_clients == 2)
            await wait_until(lambda: a.statistics().home_relay_up and b.statistics().home_relay_up)
            conn = await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            assert conn.path == "relayed"
            await wait_until(lambda: a.statistics().punch_successes == 1)

            stranger = seeded_identity(99, 0).node_id
            with pytest.raises(PeerNotAtRelay):
                await a.connect(PeerAddress(stranger, relay=relay.peer_address))

            fr, fa = scrape(relay), scrape(a)
            assert fr["qp2p_relay_clients"].type == "gauge"
            assert value(fr, "qp2p_relay_clients") == 2
            forwarded = value(fr, "qp2p_relay_datagrams_forwarded")
            assert forwarded == relay.statistics().relay_frames_forwarded > 0
            assert value(fr, "qp2p_relay_bytes_forwarded") > forwarded * 20
            assert fr["qp2p_relay_datagrams_forwarded"].type == "counter"
            assert value(fr, "qp2p_relay_datagrams_dropped", reason="unknown_peer") >= 1
            assert value(fr, "qp2p_relay_datagrams_dropped", reason="rate") == 0
            assert value(fr, "qp2p_relay_datagrams_dropped", reason="buffer") == 0
            assert value(fr, "qp2p_relay_clients_rejected", reason="busy") == 0
            assert value(fa, "qp2p_home_relay_up") == 1
            assert value(fa, "qp2p_relay_paths", state="up") == 1
            assert value(fa, "qp2p_relay_paths", state="down") == 0
            assert value(fa, "qp2p_punch_attempts") == 1
            assert value(fa, "qp2p_punch_outcomes", outcome="success") == 1
            assert value(fa, "qp2p_punch_outcomes", outcome="failure") == 0
            assert value(fa, "qp2p_punch_requests_refused") == 0
            assert value(fa, "qp2p_relay_path_datagrams_dropped") >= 0

            await relay.aclose()  # the home relay goes away: the path is down
            await wait_until(lambda: not a.statistics().home_relay_up)
            fa = scrape(a)
            assert value(fa, "qp2p_home_relay_up") == 0
            assert value(fa, "qp2p_relay_paths", state="down") == 1


def test_later_punch_and_fallback_counters_are_exported() -> None:
    """A ``punch_*`` or ``path_fallback*`` counter added to `EndpointStatistics`
    is exported as it is named, without a change to the collector."""

    @attrs.frozen
    class Later:
        statistics: Any

    base = {f.name: 0 for f in attrs.fields(EndpointStatistics)}
    stats = EndpointStatistics(**base)
    names = {row[0] for row in relay_counters(Later(stats))}
    assert {"punch_attempts", "punch_outcomes", "relay_datagrams_dropped"} <= names
    extended = attrs.make_class(
        "Extended",
        {"punch_sessions": attrs.field(default=7), "path_fallbacks": attrs.field(default=2)},
        bases=(EndpointStatistics,),
    )
    rows = {row[0]: row[3] for row in relay_counters(Later(extended(**base)))}
    assert rows["punch_sessions"] == {"": 7}
    assert rows["path_fallbacks"] == {"": 2}
