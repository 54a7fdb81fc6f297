# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Falling back to the relay when a punched direct path dies, and punching again.

Two peers behind cone NATs meet through a relay and go direct.  Then UDP
between them is cut (the relay still reaches both): the direct connection
idles out, the peer that dialled re-dials through the relay at once
(`PathChanged` to ``"relayed"``), messages sent meanwhile and after arrive
exactly once, and the other peer reaches the first through the relay too.
When the path opens again, a later punch session (after its backoff) moves
the connection direct again.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, PeerAddress
from qp2p_trio._punch import ROUNDS
from qp2p_trio.testing import (
    LinkConfig,
    MemoryNetwork,
    NatConfig,
    open_endpoint_factory,
    wait_until,
)

RELAY_IP = "127.100.0.1"
A_IP, B_IP = "127.10.0.2", "127.10.1.2"


async def next_path_change(events: qp2p_trio.PeerEvents, path: str) -> qp2p_trio.PathChanged:
    seen = []
    async for event in events:
        seen.append(event)
        if isinstance(event, qp2p_trio.PathChanged) and event.path == path:
            return event
    raise AssertionError(f"no PathChanged to {path}: {seen}")  # pragma: no cover


async def collect(ep: qp2p_trio.Endpoint, got: list[tuple[bytes, float]], n: int) -> None:
    while len(got) < n:
        got.append(((await ep.receive()).payload, trio.current_time()))


@pytest.mark.parametrize("seed", range(3))
async def test_direct_path_dies_then_relay_then_direct_again(autojump_clock: Any, seed: int):
    net = MemoryNetwork(seed=seed, default_link=LinkConfig(delay=0.02, jitter=0.005))
    net.add_host(RELAY_IP)
    host_a = net.add_host(A_IP, behind=net.add_nat("127.200.0.1", NatConfig()))
    host_b = net.add_host(B_IP, behind=net.add_nat("127.200.0.2", NatConfig()))
    with trio.fail_after(300), net.activate():
        async with open_endpoint_factory(net, seed=seed) as factory:
            relay = await factory(config=Config(relay=True), local_address=(RELAY_IP, 4433))
            config = Config(
                home_relay=relay.peer_address, idle_timeout=3.0, keep_alive_interval=1.0
            )
            a = await factory(config=config, local_address=(A_IP, 0))
            b = await factory(config=config, local_address=(B_IP, 0))
            service = relay._relay_service
            assert service is not None
            with trio.fail_after(30):
                while len(service.clients) < 2:
                    await service.changed.wait()
            events = a.events()
            relayed = await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            assert relayed.path == "relayed"
            direct = (await next_path_change(events, "direct")).connection
            await a.send(b.node_id, b"direct")
            assert (await b.receive()).payload == b"direct"

            # The path between the peers dies; the relay still reaches both.
            net.partition([host_a], [host_b])
            cut = trio.current_time()
            sent = [b"after the cut %d" % i for i in range(40)]
            got: list[tuple[bytes, float]] = []
            fell_back: list[tuple[qp2p_trio.PathChanged, float]] = []

            async def watch() -> None:
                fell_back.append((await next_path_change(events, "relayed"), trio.current_time()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, b, got, len(sent))
                nursery.start_soon(watch)
                for payload in sent:  # one every 100 ms, each on its own
                    nursery.start_soon(a.send, b.node_id, payload)
                    await trio.sleep(0.1)
            ((changed, detected),) = fell_back
            assert [p for p, _ in got].count(b"after the cut 0") == 1
            assert sorted(p for p, _ in got) == sorted(sent)  # each exactly once
            assert b.metrics().messages_received == len(sent) + 1
            assert direct.is_closed
            assert direct.close_reason is not None
            assert direct.close_reason.idle_timeout
            assert (changed.previous, changed.connection.path) == (direct, "relayed")
            assert changed.connection.peer_id == b.node_id
            assert 3.0 <= detected - cut < 5.0  # the idle timeout, then a relayed handshake
            assert a.statistics().path_fallbacks == 1
            # B's direct connection idles out too (its timer restarted at its own last send).
            await wait_until(lambda: b.statistics().path_fallbacks == 1)
            assert a.statistics().path_fallback_failures == 0
            # Sent before the fallback: on the relayed connection soon after it
            # (a retry); sent after: through the relay at once.
            sent_at = {payload: cut + 0.1 * i for i, payload in enumerate(sent)}
            before = [at - detected for p, at in got if sent_at[p] < detected]
            after = [at - sent_at[p] for p, at in got if sent_at[p] >= detected]
            assert before
            assert max(before) < 2.0
            assert after
            assert max(after) < 0.5

            # The other side reaches the first through the relay too.
            await b.send(a.node_id, b"from b")
            assert (await a.receive()).payload == b"from b"
            assert {c.path for c in a.connections() if c.peer_id == b.node_id} == {"relayed"}

            # While the path is cut, punching fails; once it opens again, a
            # later session (after its backoff) goes direct.
            failures = a.statistics().punch_failures
            await wait_until(lambda: a.statistics().punch_failures >= failures + ROUNDS)
            net.heal()
            again = await next_path_change(events, "direct")
            assert again.previous is changed.connection
            await a.send(b.node_id, b"direct again")
            assert (await b.receive()).payload == b"direct again"
            assert {c.path for c in a.connections() if c.peer_id == b.node_id} == {"direct"}
            await events.aclose()


async def test_a_peer_that_closes_is_not_fallen_back_to(autojump_clock: Any):
    """Only a silent path is a dead one: a peer closing its end is not re-dialled."""
    net = MemoryNetwork(seed=5, default_link=LinkConfig(delay=0.02))
    net.add_host(RELAY_IP)
    net.add_host(A_IP, behind=net.add_nat("127.200.0.1", NatConfig()))
    net.add_host(B_IP, behind=net.add_nat("127.200.0.2", NatConfig()))
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net, seed=5) as factory:
            relay = await factory(config=Config(relay=True), local_address=(RELAY_IP, 4433))
            config = Config(home_relay=relay.peer_address)
            a = await factory(config=config, local_address=(A_IP, 0))
            b = await factory(config=config, local_address=(B_IP, 0))
            service = relay._relay_service
            assert service is not None
            while len(service.clients) < 2:
                await service.changed.wait()
            events = a.events()
            await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            direct = (await next_path_change(events, "direct")).connection
            # B's pool switches when A's SETTINGS arrive on the direct connection.
            await wait_until(
                lambda: {c.path for c in b.connections() if c.peer_id == a.node_id} == {"direct"}
            )
            peer_side = await b.connect(a.node_id)
            assert peer_side.path == "direct"
            await peer_side.aclose()
            await direct.wait_closed()
            await trio.testing.wait_all_tasks_blocked()
            assert a.statistics().path_fallbacks == 0
            assert not [c for c in a.connections() if c.peer_id == b.node_id]
            await events.aclose()
