# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A gossip node: every rumour reaches every node, each node passes it on once.

Run ``python gossip.py`` to watch three nodes on loopback: they join through
`Endpoint.connect_to_any`, one broadcasts, another leaves, and the rumours
still spread among those that stay.
"""

from __future__ import annotations

import hashlib
import json

import trio

import qp2p_trio


class GossipNode:
    """One node: its peers, the rumours it has seen, and the loops that spread them."""

    def __init__(self, endpoint: qp2p_trio.Endpoint) -> None:
        self.endpoint = endpoint
        self.peers: dict[qp2p_trio.NodeId, qp2p_trio.Connection] = {}
        self.seen: set[str] = set()
        self.rumours: list[str] = []
        self.arrived = trio.Condition()  # notified for every new rumour
        self._sent = 0

    async def join(self, candidates: list[qp2p_trio.PeerAddress]) -> None:
        """Connect to the first candidate that answers, then to every other one that does."""
        first = await self.endpoint.connect_to_any(candidates)
        self.peers[first.peer_id] = first
        async with trio.open_nursery() as nursery:
            for peer in candidates:
                if peer.node_id != first.peer_id:
                    nursery.start_soon(self._try_connect, peer)

    async def _try_connect(self, peer: qp2p_trio.PeerAddress) -> None:
        try:
            conn = await self.endpoint.connect(peer)
        except qp2p_trio.ConnectError:
            return  # not there (any more): gossip goes through the others
        self.peers[conn.peer_id] = conn

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Take in peers and rumours until cancelled or the endpoint closes."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._accept)
            nursery.start_soon(self._forget_leavers)
            task_status.started()
            async for msg in self.endpoint.messages():
                rumour = json.loads(msg.payload)
                if rumour["id"] not in self.seen:
                    await self._learn(rumour, nursery, came_from=msg.sender)

    async def _accept(self) -> None:
        while True:
            try:
                conn = await self.endpoint.accept()
            except trio.ClosedResourceError:
                return  # this node left
            self.peers[conn.peer_id] = conn

    async def _forget_leavers(self) -> None:
        async with self.endpoint.events() as events:
            async for event in events:
                if isinstance(event, qp2p_trio.Disconnected):
                    self.peers.pop(event.peer, None)

    async def broadcast(self, text: str) -> None:
        """Start a rumour; it reaches every node that is connected to the gossip."""
        self._sent += 1
        origin = f"{self.endpoint.node_id}/{self._sent}"
        rumour = {"id": hashlib.sha256(origin.encode()).hexdigest(), "text": text}
        async with trio.open_nursery() as nursery:
            await self._learn(rumour, nursery, came_from=None)

    async def _learn(
        self, rumour: dict[str, str], nursery: trio.Nursery, came_from: qp2p_trio.NodeId | None
    ) -> None:
        self.seen.add(rumour["id"])
        self.rumours.append(rumour["text"])
        async with self.arrived:
            self.arrived.notify_all()
        payload = json.dumps(rumour).encode()
        for peer_id, conn in list(self.peers.items()):
            if peer_id != came_from:
                nursery.start_soon(self._pass_on, peer_id, conn, payload)

    async def _pass_on(
        self, peer_id: qp2p_trio.NodeId, conn: qp2p_trio.Connection, payload: bytes
    ) -> None:
        try:
            await conn.send(payload)
        except (qp2p_trio.ConnectionClosed, qp2p_trio.MessageError, trio.ClosedResourceError):
            # The peer left (or is leaving): gossip goes on without it.
            if self.peers.get(peer_id) is conn:
                del self.peers[peer_id]

    async def wait_for(self, text: str) -> None:
        """Wait until the rumour ``text`` arrived here."""
        async with self.arrived:
            while text not in self.rumours:
                await self.arrived.wait()


async def main() -> None:
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as ea,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as eb,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as ec,
        trio.open_nursery() as nursery,
    ):
        a, b, c = GossipNode(ea), GossipNode(eb), GossipNode(ec)
        for node in (a, b, c):
            await nursery.start(node.run)
        nobody = qp2p_trio.PeerAddress(qp2p_trio.Identity.generate().node_id, ("127.0.0.1", 9))
        await b.join([nobody, ea.peer_address])
        await c.join([eb.peer_address, ea.peer_address])
        await a.broadcast("hello from a")
        with trio.fail_after(10):
            await b.wait_for("hello from a")
            await c.wait_for("hello from a")
        print("b and c heard a")
        await eb.aclose()  # b leaves
        await c.broadcast("b has left")
        with trio.fail_after(10):
            await a.wait_for("b has left")
        print("a heard c without b")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
