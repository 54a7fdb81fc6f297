# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The demo's step across NATs: a relay, a punched hole, then direct (see `demo`).

It runs on the virtual network (`qp2p_trio.testing.MemoryNetwork`) under a
virtual clock (`trio.testing.MockClock`), in a Trio run of its own in a
worker thread: no real NAT is needed, it takes a fraction of a second of
real time, and its numbers (in virtual time) do not depend on the machine's
speed or load (they vary by a few milliseconds between runs: Trio shuffles
the order of tasks that are ready at once).

The story: alice and bob each sit behind a NAT that maps endpoint-
independently (most home routers); a relay on a public address is 40 ms
from each of them, and they are 10 ms from each other.  alice dials bob by
node id through the relay, requests go through it, hole punching runs over
the relayed connection, and the connection moves to the direct path while
alice keeps sending: every message arrives exactly once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs
import trio
import trio.testing

from qp2p_trio import Config, PathChanged, PeerAddress
from qp2p_trio.testing import (
    LinkConfig,
    MemoryNetwork,
    NatConfig,
    open_endpoint_factory,
    wait_until,
)

from .demo_steps import DemoFailed
from .output import format_duration, format_size

if TYPE_CHECKING:
    from qp2p_trio import Connection, Endpoint, PeerEvents

    from .demo_steps import Demo

__all__ = ["NatStory", "run_story", "step_across_nats"]

#: The virtual network's seed (its NAT ports, any jitter).
SEED: Final = 14
#: Messages alice sends across the switch, one every `MESSAGE_GAP` seconds.
MESSAGES: Final = 50
MESSAGE_GAP: Final = 0.02
#: One-way delays (seconds): each NAT to the relay, and NAT to NAT.
RELAY_DELAY: Final = 0.04
DIRECT_DELAY: Final = 0.01
#: Virtual seconds the story may take before it fails.
STORY_LIMIT: Final = 60.0
RELAY_IP: Final = "127.100.0.1"


@attrs.frozen
class NatStory:
    """What happened, in virtual seconds and counts (see `run_story`)."""

    connect_time: float
    relayed_rtt: float
    time_to_direct: float
    direct_rtt: float
    punch_rounds: int
    sent_relayed: int
    sent_direct: int
    arrived: int
    arrived_once: bool
    relay_datagrams: int
    relay_bytes: int


async def _request_time(conn: Connection) -> float:
    start = trio.current_time()
    reply = await conn.request(b"are you there?")
    if reply != b"ARE YOU THERE?":
        raise DemoFailed(f"bob answered {reply!r}")
    return trio.current_time() - start


async def _send_across(
    alice: Endpoint, bob: Endpoint, relayed: Connection, counts: list[int]
) -> None:
    """alice sends `MESSAGES` to bob, one every `MESSAGE_GAP`, counting the
    relayed and the direct ones."""
    async with trio.open_nursery() as nursery:
        for n in range(MESSAGES):  # each in its own task: none waits for another's receipt
            counts[relayed.is_retired] += 1
            nursery.start_soon(alice.send, bob.node_id, b"message %d" % n)
            await trio.sleep(MESSAGE_GAP)


async def _story() -> NatStory:
    net = MemoryNetwork(seed=SEED, default_link=LinkConfig(delay=DIRECT_DELAY))
    relay_host = net.add_host(RELAY_IP)
    alice_host = net.add_host("127.10.0.2", behind=net.add_nat("127.200.0.1", NatConfig()))
    bob_host = net.add_host("127.10.1.2", behind=net.add_nat("127.200.0.2", NatConfig()))
    for host in (alice_host, bob_host):
        net.set_link_both(host, relay_host, LinkConfig(delay=RELAY_DELAY))
    with trio.fail_after(STORY_LIMIT), net.activate():
        async with open_endpoint_factory(net, seed=SEED) as factory:
            relay = await factory(config=Config(relay=True), local_address=(RELAY_IP, 4433))
            config = Config(home_relay=relay.peer_address)
            alice = await factory(config=config, local_address=(alice_host.v4, 0))
            bob = await factory(config=config, local_address=(bob_host.v4, 0))
            await wait_until(lambda: relay.statistics().relay_clients == 2)
            got: list[bytes] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_serve, bob, got)
                events = alice.events()
                start = trio.current_time()
                relayed = await alice.connect(PeerAddress(bob.node_id, relay=relay.peer_address))
                connected = trio.current_time()
                if relayed.path != "relayed":
                    raise DemoFailed(f"the first connection went {relayed.path}")
                sent: list[int] = [0, 0]  # relayed, direct
                changed: list[float] = []
                nursery.start_soon(_send_across, alice, bob, relayed, sent)
                nursery.start_soon(_path_changed, events, changed)
                relayed_rtt = await _request_time(relayed)
                await wait_until(lambda: len(got) >= MESSAGES and changed)
                direct = await alice.connect(bob.node_id)
                direct_rtt = await _request_time(direct)
                nursery.cancel_scope.cancel()
            stats = relay.statistics()
            return NatStory(
                connect_time=connected - start,
                relayed_rtt=relayed_rtt,
                time_to_direct=changed[0] - connected,
                direct_rtt=direct_rtt,
                punch_rounds=alice.statistics().punch_attempts,
                sent_relayed=sent[0],
                sent_direct=sent[1],
                arrived=len(got),
                arrived_once=sorted(got) == sorted(b"message %d" % n for n in range(MESSAGES)),
                relay_datagrams=stats.relay_frames_forwarded,
                relay_bytes=stats.relay_bytes_forwarded,
            )


async def _path_changed(events: PeerEvents, at: list[float]) -> None:
    async with events:
        async for event in events:
            if isinstance(event, PathChanged):
                at.append(trio.current_time())
                return


async def _serve(ep: Endpoint, out: list[bytes]) -> None:
    """bob: answer requests (upper-cased), keep plain messages in ``out``."""
    async for msg in ep.messages():
        if msg.expects_reply:
            await msg.reply(msg.payload.upper())
        else:
            out.append(msg.payload)


def run_story() -> NatStory:
    """Run the story in a Trio run of its own under a virtual clock (blocking)."""
    return trio.run(_story, clock=trio.testing.MockClock(autojump_threshold=0))


async def step_across_nats(demo: Demo) -> None:
    """Two nodes behind NATs meet through a relay, punch a hole and continue direct."""
    demo.say(
        "  On the virtual network, in virtual time (whatever this machine's speed): alice and "
        "bob each behind a NAT,"
    )
    demo.say(
        f"  a relay {format_duration(RELAY_DELAY)} from each of them, "
        f"alice and bob {format_duration(DIRECT_DELAY)} apart."
    )
    story = await trio.to_thread.run_sync(run_story)
    s = story
    demo.say(
        f"  alice dials bob by node id through the relay: connected in "
        f"{format_duration(s.connect_time)}, path relayed, request round trip "
        f"{format_duration(s.relayed_rtt)}"
    )
    demo.say(
        f"  hole punching over the relayed connection ({s.punch_rounds} round): direct after "
        f"{format_duration(s.time_to_direct)}, request round trip now "
        f"{format_duration(s.direct_rtt)}"
    )
    if not s.arrived_once or s.sent_relayed == 0 or s.sent_direct == 0:
        raise DemoFailed(
            f"{s.arrived} of {MESSAGES} messages arrived across the switch "
            f"({s.sent_relayed} relayed, {s.sent_direct} direct)"
        )
    demo.say(
        f"  {MESSAGES} messages sent one every {format_duration(MESSAGE_GAP)} across the switch "
        f"({s.sent_relayed} relayed, {s.sent_direct} direct): all arrived, exactly once"
    )
    demo.say(
        f"  the relay forwarded {s.relay_datagrams} datagrams ({format_size(s.relay_bytes)}) "
        "of ciphertext: it sees node ids and sizes, never the messages"
    )
