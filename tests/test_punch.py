# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Hole punching over a relayed connection, then the move to the direct path.

Two peers behind endpoint-independent-mapping NATs meet through a relay,
punch a hole (``qp2p/punch/1``: candidates, RTT-timed simultaneous dial)
and continue direct: the relayed connection retires with GOAWAY, and every
message sent during the switch arrives exactly once.  Behind symmetric NATs
the punch fails and the connection stays relayed.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import qp2p_trio
from qp2p_trio import Config, PeerAddress
from qp2p_trio._punch import ROUNDS, SESSIONS, decode_candidates, encode_candidates
from qp2p_trio.testing import (
    LinkConfig,
    MemoryNetwork,
    NatBehaviour,
    NatConfig,
    open_endpoint_factory,
    wait_until,
)

RELAY_IP = "127.100.0.1"
CONE = NatConfig()
SYMMETRIC = NatConfig(mapping=NatBehaviour.ADDRESS_AND_PORT_DEPENDENT)


def test_candidates_round_trip():
    addresses = [("192.0.2.7", 4433), ("2001:db8::1", 9), ("198.51.100.1", 1)]
    record = encode_candidates(addresses)
    assert record[0] == 0x01
    assert decode_candidates(record[3:]) == addresses
    assert decode_candidates(b"\x04\x00\x02xx" + record[3:]) == addresses  # junk skipped


async def setup(factory: Any, net: MemoryNetwork, nat: NatConfig) -> tuple[Any, Any, Any]:
    net.add_host("127.10.0.2", behind=net.add_nat("127.200.0.1", nat))
    net.add_host("127.10.1.2", behind=net.add_nat("127.200.0.2", nat))
    relay = await factory(config=Config(relay=True), local_address=(RELAY_IP, 4433))
    config = Config(home_relay=relay.peer_address)
    a = await factory(config=config, local_address=("127.10.0.2", 0))
    b = await factory(config=config, local_address=("127.10.1.2", 0))
    service = relay._relay_service
    with trio.fail_after(30):
        while len(service.clients) < 2:
            await service.changed.wait()
    return relay, a, b


async def collect(ep: qp2p_trio.Endpoint, out: list[bytes], n: int) -> None:
    while len(out) < n:
        out.append((await ep.receive()).payload)


@pytest.mark.parametrize("seed", range(20))
async def test_cone_nats_punch_through_and_continue_direct(autojump_clock: Any, seed: int):
    net = MemoryNetwork(seed=seed, default_link=LinkConfig(delay=0.02))
    net.add_host(RELAY_IP)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay, a, b = await setup(factory, net, CONE)
            events = a.events()
            start = trio.current_time()
            relayed = await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            assert relayed.path == "relayed"
            got: list[bytes] = []
            sent = [b"msg %d" % i for i in range(60)]
            switched_at = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, b, got, len(sent))
                for payload in sent:  # through the switch, one every 50 ms
                    await a.send(b.node_id, payload)
                    if switched_at is None and relayed.is_retired:
                        switched_at = trio.current_time()
                    await trio.sleep(0.05)
            assert sorted(got) == sorted(sent)  # exactly once each, across the switch
            assert switched_at is not None
            assert switched_at - start < 3.0  # direct within 3 virtual seconds
            direct = await a.connect(b.node_id)
            assert direct.path == "direct"
            assert relayed.is_retired
            assert relayed.replacement is not None
            assert relayed.replacement.path == "direct"
            assert a.statistics().punch_successes == 1
            assert {c.path for c in a.connections()} == {"direct"}
            assert {c.path for c in b.connections()} == {"direct"}
            await relayed.wait_closed()
            async with events:
                seen = []
                async for event in events:
                    seen.append(event)
                    if isinstance(event, qp2p_trio.PathChanged):
                        break
            changed = seen[-1]
            assert isinstance(changed, qp2p_trio.PathChanged)
            assert (changed.peer, changed.path, changed.previous) == (b.node_id, "direct", relayed)
            assert changed.connection.path == "direct"


async def test_symmetric_nats_stay_relayed(autojump_clock: Any):
    net = MemoryNetwork(seed=11, default_link=LinkConfig(delay=0.02))
    net.add_host(RELAY_IP)
    with trio.fail_after(300), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay, a, b = await setup(factory, net, SYMMETRIC)
            conn = await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            await wait_until(lambda: a.statistics().punch_failures == ROUNDS)  # one session
            assert conn.path == "relayed"
            assert not conn.is_retired
            stats = a.statistics()
            assert stats.punch_attempts == ROUNDS  # the next session waits SESSION_BACKOFF
            assert stats.punch_successes == 0
            await wait_until(lambda: a.statistics().punch_failures == ROUNDS * SESSIONS)
            assert a.statistics().punch_attempts == ROUNDS * SESSIONS
            assert conn.path == "relayed"
            await conn.send(b"still relayed")
            assert (await b.receive()).payload == b"still relayed"


async def test_punch_requests_are_bounded(autojump_clock: Any):
    """A peer cannot make us dial addresses of its choosing more than a few times."""
    from qp2p_trio._punch import PUNCH_PROTOCOL, SYNC

    net = MemoryNetwork(seed=12, default_link=LinkConfig(delay=0.02))
    net.add_host(RELAY_IP)
    victim = ("127.66.0.1", 9)  # nobody there
    request = encode_candidates([victim]) + bytes([SYNC, 0, 0])
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay, a, b = await setup(factory, net, SYMMETRIC)
            quiet = Config(home_relay=relay.peer_address, hole_punching=False)
            evil = await factory(config=quiet)
            service = relay._relay_service
            with trio.fail_after(30):
                while len(service.clients) < 3:
                    await service.changed.wait()
            conn = await evil.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            assert conn.path == "relayed"
            for _ in range(ROUNDS * SESSIONS + 3):
                stream = await conn.open_protocol(PUNCH_PROTOCOL)
                await stream.send_all(request)
            direct = await evil.connect(relay.peer_address)
            stream = await direct.open_protocol(PUNCH_PROTOCOL)
            await stream.send_all(request)
            # Every request has been answered or refused once every handler started.
            await wait_until(
                lambda: (
                    b.statistics().protocol_streams_handled == ROUNDS * SESSIONS + 3
                    and relay.statistics().punch_requests_refused == 1
                )  # not over a relay
            )
            await trio.testing.wait_all_tasks_blocked()
            assert b.statistics().punch_requests_refused == 3  # ROUNDS * SESSIONS answered
            assert a.statistics().punch_requests_refused == 0
