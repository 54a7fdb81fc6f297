# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The path keeper's bookkeeping, fed events by hand (no network).

What it remembers is bounded; only an idle timeout of a punched direct
connection falls back; only the dialler of the relayed connection re-dials;
a peer closing forgets it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from qp2p_trio import Connected, Disconnected, DisconnectReason, PathChanged, PeerAddress
from qp2p_trio._events import EventHub
from qp2p_trio._pathkeeper import MAX_REMEMBERED, PathKeeper
from qp2p_trio.testing import seeded_identity

RELAY = PeerAddress(seeded_identity(1, 0).node_id, ("192.0.2.1", 4433))


def conn(path: str, *, client: bool = True, closed: bool = False) -> Any:
    return SimpleNamespace(
        path=path,
        peer=SimpleNamespace(relay=RELAY if path == "relayed" else None),
        core=SimpleNamespace(is_client=client),
        is_closed=closed,
    )


class Recorder:
    def __init__(self) -> None:
        self.spawned: list[str] = []
        self.punched: list[Any] = []
        self.hub = EventHub()
        puncher: Any = SimpleNamespace(start=self.punched.append, spawn=self.spawn)
        self.keeper = PathKeeper(self.hub, puncher, self.connect, punching=True)

    async def connect(self, peer: PeerAddress) -> Any:  # pragma: no cover - never awaited here
        raise AssertionError

    def spawn(self, fn: Any, name: str) -> None:
        self.spawned.append(name)  # not run: the bookkeeping is what is tested


def punched(rec: Recorder, peer: Any, *, dialled: bool = True) -> Any:
    direct = conn("direct")
    rec.hub.emit(PathChanged(peer, "direct", direct, conn("relayed", client=dialled)))
    return direct


def died(rec: Recorder, peer: Any, direct: Any, reason: DisconnectReason) -> None:
    direct.is_closed = True
    rec.hub.emit(Disconnected(peer=peer, address=("192.0.2.9", 1), reason=reason, error=None))


def test_idle_timeout_falls_back_once_and_the_dialler_redials():
    rec = Recorder()
    peer = seeded_identity(1, 1).node_id
    direct = punched(rec, peer)
    assert rec.keeper.relay_for(peer) is None  # direct: nothing to fall back to
    died(rec, peer, direct, DisconnectReason.IDLE_TIMEOUT)
    assert rec.keeper.relay_for(peer) == RELAY
    assert rec.spawned == ["relay fallback"]
    died(rec, peer, direct, DisconnectReason.IDLE_TIMEOUT)  # once per death
    assert rec.keeper.counters.path_fallbacks == 1
    assert rec.spawned == ["relay fallback"]


def test_the_other_side_waits_and_a_closed_peer_is_forgotten():
    rec = Recorder()
    waiting, closing = seeded_identity(1, 2).node_id, seeded_identity(1, 3).node_id
    died(rec, waiting, punched(rec, waiting, dialled=False), DisconnectReason.IDLE_TIMEOUT)
    assert rec.keeper.relay_for(waiting) == RELAY  # it sends through the relay...
    assert rec.spawned == []  # ...but does not dial it unasked
    died(rec, closing, punched(rec, closing), DisconnectReason.CLOSED_BY_PEER)
    assert rec.keeper.relay_for(closing) is None
    assert rec.keeper.counters.path_fallbacks == 1


def test_memory_is_bounded():
    rec = Recorder()
    peers = [seeded_identity(2, i).node_id for i in range(MAX_REMEMBERED + 1)]
    first = punched(rec, peers[0])
    for peer in peers[1:]:
        punched(rec, peer)
    died(rec, peers[0], first, DisconnectReason.IDLE_TIMEOUT)
    assert rec.keeper.counters.path_fallbacks == 0  # forgotten: the least recent


def test_only_relayed_connections_we_dialled_punch():
    rec = Recorder()
    peer = seeded_identity(1, 4).node_id
    mine, theirs, direct = conn("relayed"), conn("relayed", client=False), conn("direct")
    for connection, incoming in ((mine, False), (theirs, True), (direct, False)):
        rec.hub.emit(
            Connected(peer=peer, address=("x", 1), connection=connection, incoming=incoming)
        )
    assert rec.punched == [mine]
