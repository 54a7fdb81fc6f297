# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio ping`` keeps pinging when a punched direct path dies and the relay takes over.

The rounds of ``ping`` run in-process on the virtual network: two peers
behind cone NATs meet through a relay and go direct, then UDP between them
is cut.  Rounds sent before the dead direct connection idles out get no
reply; the next round finds the connection closed and carries on over what
the endpoint reaches the peer by now (the relay), instead of failing.
"""

from __future__ import annotations

import argparse
from typing import Any

import trio

import qp2p_trio
from qp2p_trio import Config, PeerAddress
from qp2p_trio._cli.ping import _ping_rounds
from qp2p_trio.testing import (
    LinkConfig,
    MemoryNetwork,
    NatConfig,
    open_endpoint_factory,
    wait_until,
)

RELAY_IP = "127.100.0.1"
A_IP, B_IP = "127.10.0.2", "127.10.1.2"


async def echo(ep: qp2p_trio.Endpoint) -> None:
    async for msg in ep.messages():
        if msg.expects_reply:
            await msg.reply(msg.payload)


async def test_ping_carries_on_through_the_relay_after_the_direct_path_dies(autojump_clock: Any):
    net = MemoryNetwork(seed=3, default_link=LinkConfig(delay=0.02))
    net.add_host(RELAY_IP)
    host_a = net.add_host(A_IP, behind=net.add_nat("127.200.0.1", NatConfig()))
    host_b = net.add_host(B_IP, behind=net.add_nat("127.200.0.2", NatConfig()))
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net, seed=3) as factory:
            relay = await factory(config=Config(relay=True), local_address=(RELAY_IP, 4433))
            config = Config(
                home_relay=relay.peer_address, idle_timeout=3.0, keep_alive_interval=1.0
            )
            a = await factory(config=config, local_address=(A_IP, 0))
            b = await factory(config=config, local_address=(B_IP, 0))
            service = relay._relay_service
            assert service is not None
            while len(service.clients) < 2:
                await service.changed.wait()
            peer = PeerAddress(b.node_id, relay=relay.peer_address)
            rounds: list[dict[str, Any]] = []
            args = argparse.Namespace(count=14, interval=1.0, wait=2.0)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo, b)
                conn = await a.connect(peer)
                assert conn.path == "relayed"

                async def cut_when_direct() -> None:
                    await wait_until(lambda: bool(rounds) and rounds[-1].get("path") == "direct")
                    net.partition([host_a], [host_b])

                nursery.start_soon(cut_when_direct)
                await _ping_rounds(a, args, conn, peer, 32, rounds, False)
                nursery.cancel_scope.cancel()
    paths = [r.get("path") for r in rounds]
    assert "direct" in paths
    lost = [r["seq"] for r in rounds if r["rtt_ms"] is None]
    assert lost  # the rounds while the dead direct connection had not idled out yet
    last_lost = max(lost)
    after = rounds[last_lost:]
    assert after  # rounds went on after the fallback ...
    assert all(r["rtt_ms"] is not None for r in after)
    assert {r["path"] for r in after} == {f"relayed via {relay.peer_address}"}  # ... over the relay
    assert len(rounds) == args.count
