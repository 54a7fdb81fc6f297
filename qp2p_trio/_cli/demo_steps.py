# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The demo's network (`Demo`, `DemoNode`) and its steps (see `demo`).

Each step is an async function taking the shared `Demo` state: four nodes
(endpoints) on 127.0.0.1 with fresh identities, the connections made so
far, and output helpers.  Each node runs a tiny service: requests are
answered with the payload upper-cased, plain messages go to the node's inbox
for the steps to check.  A step raises `DemoFailed` (or any error) to fail
the demo.
"""

from __future__ import annotations

import socket as _socket
from typing import TYPE_CHECKING, Final, TextIO, final

import attrs
import trio

from qp2p_trio import Identity, PeerAddress, PeerIdentityError

from .output import (
    Progress,
    acknowledged_payload,
    format_address,
    format_duration,
    format_rate,
    format_size,
)
from .protocol import sha256

if TYPE_CHECKING:
    from qp2p_trio import Connection, Endpoint, Message

    from .output import ProgressMode

__all__ = [
    "Demo",
    "DemoFailed",
    "DemoNode",
    "step_connect",
    "step_messages",
    "step_nodes",
    "step_pool",
    "step_race",
    "step_requests",
    "step_simultaneous_open",
    "step_statistics",
    "step_transfer",
    "step_wrong_identity",
]

#: How long a raw stream opened on one side of a connection may take to arrive.
STREAM_ARRIVAL_WAIT: Final = 5.0


@final
@attrs.define(eq=False)
class DemoNode:
    """One node of the demo network: a name, its endpoint and its inbox of plain messages."""

    name: str
    endpoint: Endpoint
    inbox_send: trio.MemorySendChannel[Message]
    inbox: trio.MemoryReceiveChannel[Message]
    requests_answered: int = 0

    @property
    def peer_address(self) -> PeerAddress:
        """The node's ``<node-id>@127.0.0.1:<port>``."""
        return PeerAddress(self.endpoint.node_id, self.endpoint.local_address)

    @property
    def label(self) -> str:
        """``name (short-id)``."""
        return f"{self.name} ({self.endpoint.node_id.short()})"

    async def serve(self) -> None:
        """Answer requests (upper-cased payload) and queue plain messages, until cancelled."""
        async with trio.open_nursery() as nursery:
            async for msg in self.endpoint.messages():
                if msg.expects_reply:
                    nursery.start_soon(self._answer, msg)
                else:
                    await self.inbox_send.send(msg)

    async def _answer(self, msg: Message) -> None:
        await msg.reply(msg.payload.upper())
        self.requests_answered += 1


@final
class Demo:
    """State shared by the demo's steps.

    Attributes:
        nodes: the nodes by name, in the order they were made.
        connections: connections the steps opened, by (from, to) names.
        transfer_size: bytes of the large message.
        out: where the narration goes.
        progress_mode: how the transfer's progress bar is drawn.
    """

    def __init__(self, *, transfer_size: int, out: TextIO, progress_mode: ProgressMode) -> None:
        self.nodes: dict[str, DemoNode] = {}
        self.connections: dict[tuple[str, str], Connection] = {}
        self.transfer_size = transfer_size
        self.out = out
        self.progress_mode: ProgressMode = progress_mode

    def say(self, text: str = "") -> None:
        """Print one line of narration, now."""
        print(text, file=self.out, flush=True)

    def node(self, name: str) -> DemoNode:
        """The node called ``name``."""
        return self.nodes[name]

    async def connect(self, src: str, dst: str) -> tuple[Connection, float]:
        """Connect ``src`` to ``dst`` (verifying dst's node id); return it and the handshake time."""
        a, b = self.node(src), self.node(dst)
        start = trio.current_time()
        conn = await a.endpoint.connect(b.endpoint.local_address, node_id=b.endpoint.node_id)
        elapsed = trio.current_time() - start
        self.connections[src, dst] = conn
        return conn, elapsed

    async def next_message(self, name: str) -> Message:
        """Wait for the next plain message in ``name``'s inbox."""
        return await self.node(name).inbox.receive()


class DemoFailed(Exception):
    """A step found something wrong (the demo exits non-zero with this reason)."""


# ---------------------------------------------------------------- the steps


async def step_nodes(demo: Demo) -> None:
    """Show each node's identity and peer address."""
    await trio.lowlevel.checkpoint()
    demo.say("  Each node has a fresh Ed25519 identity; its node id is the public key.")
    demo.say("  A peer address says where a node listens and which key it must prove:")
    for node in demo.nodes.values():
        demo.say(f"    {node.name:<6} {node.peer_address}")


async def step_connect(demo: Demo) -> None:
    """Connect a few pairs; both sides prove their node ids during the TLS handshake."""
    for src, dst in (("alice", "bob"), ("carol", "bob"), ("alice", "dave"), ("dave", "carol")):
        conn, elapsed = await demo.connect(src, dst)
        accepted = await demo.node(dst).endpoint.accept()
        if accepted.peer_id != demo.node(src).endpoint.node_id:
            raise DemoFailed(f"{dst} saw {accepted.peer_id}, not {src}")
        if conn.peer_id != demo.node(dst).endpoint.node_id:
            raise DemoFailed(f"{src} reached {conn.peer_id}, not {dst}")
        demo.say(
            f"  {src:>5} -> {dst:<5} handshake {format_duration(elapsed):>7}, node ids verified "
            f"both ways: {dst} is {conn.peer_id.short()}, {src} is {accepted.peer_id.short()}"
        )


async def step_messages(demo: Demo) -> None:
    """One message each way on a connection; the receiver learns the sender's verified id."""
    for src, dst, text in (
        ("alice", "bob", b"hello, bob"),
        ("dave", "carol", b"hi carol, dave here"),
    ):
        conn = demo.connections[src, dst]
        await conn.send(text)
        msg = await demo.next_message(dst)
        if msg.payload != text or msg.sender != demo.node(src).endpoint.node_id:
            raise DemoFailed(f"{dst} got {msg.payload!r} from {msg.sender}")
        demo.say(
            f"  {dst} received {msg.payload.decode()!r} from {msg.sender.short()} "
            f"= {src}, at {format_address(msg.remote_address)}"
        )


async def step_requests(demo: Demo) -> None:
    """Concurrent requests; every node answers with the payload upper-cased."""
    asks = (
        ("alice", "bob", b"ping"),
        ("carol", "bob", b"what time is it?"),
        ("alice", "dave", b"are you there?"),
        ("dave", "carol", b"request/response works"),
    )
    results: dict[int, tuple[bytes, float]] = {}

    async def ask(index: int, conn: Connection, payload: bytes) -> None:
        start = trio.current_time()
        reply = await conn.request(payload)
        results[index] = (reply, trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for index, (src, dst, payload) in enumerate(asks):
            nursery.start_soon(ask, index, demo.connections[src, dst], payload)
    for index, (src, dst, payload) in enumerate(asks):
        reply, elapsed = results[index]
        if reply != payload.upper():
            raise DemoFailed(f"{dst} answered {reply!r} to {payload!r}")
        demo.say(
            f"  {src:>5} asked {dst:<5} {payload.decode()!r}, got {reply.decode()!r} "
            f"in {format_duration(elapsed)}"
        )


async def step_wrong_identity(demo: Demo) -> None:
    """Asking for one node id at another node's address fails: identities are checked."""
    bob, carol, dave = demo.node("bob"), demo.node("carol"), demo.node("dave")
    try:
        await bob.endpoint.connect(carol.endpoint.local_address, node_id=dave.endpoint.node_id)
    except PeerIdentityError:
        demo.say(
            f"  bob dialled carol's address {format_address(carol.endpoint.local_address)} "
            "asking for dave's node id:"
        )
        demo.say("    the node there proved carol's key instead: refused (PeerIdentityError)")
    else:
        raise DemoFailed("a connection to the wrong node id was accepted")
    # A key nobody holds is refused just the same.
    stranger = Identity.generate().node_id
    try:
        await bob.endpoint.connect(carol.endpoint.local_address, node_id=stranger)
    except PeerIdentityError:
        demo.say(f"  the same with a node id nobody holds ({stranger.short()}): refused")
    else:
        raise DemoFailed("a connection to an unknown node id was accepted")


async def step_pool(demo: Demo) -> None:
    """Connect again: the pool hands back the live connection, no packet sent."""
    alice, bob = demo.node("alice").endpoint, demo.node("bob").endpoint
    conn = demo.connections["alice", "bob"]
    before = alice.statistics().datagrams_sent
    again = await alice.connect(bob.node_id)
    sent = alice.statistics().datagrams_sent - before
    if again is not conn:
        raise DemoFailed("connecting again did not return the pooled connection")
    demo.say(
        f"  alice connects to bob again by node id: the pooled connection comes back "
        f"({sent} datagrams sent, no handshake)"
    )
    await alice.send(bob.node_id, b"sent through the pool")
    msg = await demo.next_message("bob")
    demo.say(f"  alice.send(bob's node id, ...) used it: bob received {msg.payload.decode()!r}")


async def step_race(demo: Demo) -> None:
    """connect_to_any over a dead, a black-holed and a live peer: the live one wins."""
    alice, carol = demo.node("alice").endpoint, demo.node("carol").endpoint
    with (
        trio.socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as hole,
        trio.socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as dead,
    ):
        await hole.bind(("127.0.0.1", 0))  # takes datagrams, never answers
        await dead.bind(("127.0.0.1", 0))
        dead_address = dead.getsockname()
        dead.close()  # nobody listens there any more
        candidates = [
            PeerAddress(Identity.generate().node_id, dead_address),
            PeerAddress(Identity.generate().node_id, hole.getsockname()),
            PeerAddress(carol.node_id, carol.local_address),
        ]
        demo.say("  alice races three candidates at once:")
        demo.say(f"    dead        {format_address(dead_address)} (nobody listens)")
        demo.say(f"    black hole  {format_address(hole.getsockname())} (never answers)")
        demo.say(f"    live        {format_address(carol.local_address)} (carol)")
        live_before = alice.statistics().connections
        start = trio.current_time()
        conn = await alice.connect_to_any(candidates)
        elapsed = trio.current_time() - start
    if conn.peer_id != carol.node_id:
        raise DemoFailed("the race was not won by the live peer")
    leftover = alice.statistics().connections - live_before - 1
    demo.say(
        f"  carol won in {format_duration(elapsed)}; the other two attempts were cancelled "
        f"and closed ({leftover} left behind)"
    )
    if leftover:
        raise DemoFailed(f"{leftover} losing attempts were left behind")
    demo.connections["alice", "carol"] = conn


async def step_simultaneous_open(demo: Demo) -> None:
    """bob and dave dial each other at the same moment and still end with one connection."""
    bob, dave = demo.node("bob").endpoint, demo.node("dave").endpoint
    kept: dict[str, Connection] = {}

    async def dial(name: str, ep: Endpoint, other: Endpoint) -> None:
        conn = await ep.connect(other.local_address, node_id=other.node_id)
        await conn.send(f"hello from {name}, sent during the race".encode())
        kept[name] = await ep.connect(other.node_id)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dial, "bob", bob, dave)
        nursery.start_soon(dial, "dave", dave, bob)
    for name in ("bob", "dave"):
        msg = await demo.next_message(name)
        demo.say(f"  {name} received {msg.payload.decode()!r}")
    if not await _one_connection(kept["bob"], kept["dave"]):
        raise DemoFailed("bob and dave kept different connections")
    # Both sides keep the connection dialled by the smaller node id (docs/wire.rst).
    dialler = min(("bob", "dave"), key=lambda name: demo.node(name).endpoint.node_id.raw)
    demo.say(
        f"  both dialled at once; both now use the same single connection (the one "
        f"{dialler} dialled: the smaller node id's), the duplicate drains and closes"
    )


async def _one_connection(a: Connection, b: Connection) -> bool:
    """Whether ``a`` and ``b`` are the two ends of one connection.

    They are if a raw stream opened on ``a`` arrives on ``b``.
    """
    sent = await a.open_uni()
    try:
        with trio.move_on_after(STREAM_ARRIVAL_WAIT):
            arrived = await b.accept_uni()
            await arrived.aclose()
            return True
        return False
    finally:
        await sent.aclose()


async def step_transfer(demo: Demo) -> None:
    """One large message from alice to dave, with a progress bar and its throughput."""
    size = demo.transfer_size
    pattern = bytes(range(256))
    payload = pattern * (size // len(pattern)) + pattern[: size % len(pattern)]
    digest = sha256(payload)
    conn = demo.connections["alice", "dave"]
    demo.say(f"  alice sends dave one {format_size(size)} message (sha256 {digest.hex()[:16]}...)")
    progress = Progress(size, stream=demo.out, mode=demo.progress_mode, indent="  ")
    baseline = conn.statistics()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress.follow, acknowledged_payload(conn, baseline))
        nursery.start_soon(conn.send, payload)
        msg = await demo.next_message("dave")
        nursery.cancel_scope.cancel()
    elapsed = trio.current_time() - start
    progress.finish()
    if len(msg.payload) != size or sha256(msg.payload) != digest:
        raise DemoFailed("the large message arrived corrupted")
    demo.say(
        f"  dave received all {format_size(size)} intact (sha256 matches) in "
        f"{format_duration(elapsed)}: {format_rate(size, elapsed)}"
    )


async def step_statistics(demo: Demo) -> None:
    """A table of every endpoint's counters (`Endpoint.statistics`)."""
    await trio.lowlevel.checkpoint()
    header = (
        f"  {'node':<6} {'conns':>5} {'dgrams out':>10} {'dgrams in':>10} "
        f"{'bytes out':>10} {'bytes in':>10} {'msgs in':>7} {'refused':>7} {'dropped':>7}"
    )
    demo.say(header)
    demo.say("  " + "-" * (len(header) - 2))
    for node in demo.nodes.values():
        s = node.endpoint.statistics()
        dropped = s.dropped_malformed + s.dropped_unknown_connection + s.dropped_unsupported_version
        demo.say(
            f"  {node.name:<6} {s.connections:>5} {s.datagrams_sent:>10} "
            f"{s.datagrams_received:>10} {format_size(s.bytes_sent):>10} "
            f"{format_size(s.bytes_received):>10} {s.messages_received:>7} "
            f"{s.streams_refused:>7} {dropped:>7}"
        )
    conn = demo.connections["alice", "dave"]
    c = conn.statistics()
    demo.say(
        f"  alice -> dave connection: rtt {format_duration(c.rtt)} "
        f"(min {format_duration(c.rtt_min)}), congestion window {format_size(c.congestion_window)}, "
        f"{c.packets_lost} packet(s) lost"
    )
