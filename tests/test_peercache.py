# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The peer cache on disk (`Config.peer_cache`): format, bounds, hostile files, restarts.

The sans-IO half (`_peercache`) is driven alone; the endpoint half runs on
the virtual network: an endpoint that restarts with its cache reconnects
to a peer by node id alone, directly or through the peer's relay, and a
cache that lies about an address cannot make it accept another node.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from typing import Any

import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, NodeId, PeerAddress, PeerCacheError, PeerIdentityError
from qp2p_trio._peercache import MAX_PEERS, VERSION, CachedPeer, PeerCache, loads
from qp2p_trio._peercache_io import PeerCacheStore, write_atomically
from qp2p_trio.testing import (
    LinkConfig,
    MemoryNetwork,
    NatBehaviour,
    NatConfig,
    open_endpoint_factory,
    seeded_identity,
    wait_until,
)


def node(n: int) -> NodeId:
    return seeded_identity(7, n).node_id


def relay_of(n: int) -> PeerAddress:
    return PeerAddress(node(1000 + n), ("198.51.100.1", 4433))


# ------------------------------------------------------------- sans-IO half


def test_round_trip():
    cache = PeerCache()
    cache.seen(node(1), 100.0, address=("192.0.2.7", 4433))
    cache.seen(node(2), 101.0, relay=relay_of(1))
    cache.seen(node(3), 102.0, address=("2001:db8::7", 9))
    cache.seen(node(3), 103.0, relay=relay_of(2))  # now relayed; the address stays
    cache.seen(node(1), 104.0, address=("192.0.2.8", 4433))  # moved: latest first
    text = cache.dumps()
    document = json.loads(text)
    assert document["format"] == "qp2p-trio peer cache"
    assert document["version"] == VERSION
    again, skipped = loads(text)
    assert skipped == 0
    assert list(again) == list(cache)
    assert [p.node_id for p in again] == [node(2), node(3), node(1)]  # by last seen
    one = again.get(node(1))
    assert one is not None
    assert one.addresses == (("192.0.2.8", 4433), ("192.0.2.7", 4433))
    assert one.direct
    assert one.peer_address() == PeerAddress(node(1), ("192.0.2.8", 4433))
    three = again.get(node(3))
    assert three is not None
    assert not three.direct
    both = PeerAddress(node(3), ("2001:db8::7", 9), relay=relay_of(2))
    assert three.peer_address() == both
    assert three.peer_address(one_path=True) == PeerAddress(node(3), relay=relay_of(2))
    assert not again.changed
    assert loads(again.dumps())[0].dumps() == text


def test_seen_without_a_path_only_updates_a_known_peer():
    cache = PeerCache()
    cache.seen(node(1), 5.0)
    assert len(cache) == 0
    cache.seen(node(1), 5.0, address=("192.0.2.1", 1))
    cache.seen(node(2), 6.0, address=("192.0.2.2", 1))
    cache.seen(node(1), 7.0)
    entry = cache.get(node(1))
    assert entry is not None
    assert entry.last_seen == 7.0
    assert [p.node_id for p in cache] == [node(2), node(1)]
    cache.forget(node(1))
    assert cache.get(node(1)) is None


def test_bounded_least_recently_seen_go_first():
    cache = PeerCache()
    for n in range(MAX_PEERS + 50):
        cache.seen(node(n), float(n), address=("192.0.2.1", 1 + n))
    assert len(cache) == MAX_PEERS
    assert cache.get(node(49)) is None
    assert cache.get(node(50)) is not None
    # An old peer seen again survives the next eviction; the oldest other goes.
    cache.seen(node(50), 10_000.0)
    cache.seen(node(5000), 10_001.0, address=("192.0.2.9", 9))
    assert cache.get(node(50)) is not None
    assert cache.get(node(51)) is None
    # Per peer: a few addresses and relays, the latest first.
    for port in range(1, 20):
        cache.seen(node(1), 20_000.0 + port, address=("192.0.2.1", port))
        cache.seen(node(1), 20_000.0 + port, relay=relay_of(port))
    entry = cache.get(node(1))
    assert entry is not None
    assert entry.addresses[0] == ("192.0.2.1", 19)
    assert len(entry.addresses) <= 4
    assert len(entry.relays) <= 2
    # A file with more peers than the limit keeps the most recent ones.
    small, _ = loads(cache.dumps(), limit=3)
    assert [p.node_id for p in small] == [p.node_id for p in list(cache)[-3:]]


def test_out_of_order_times_keep_the_order():
    cache = PeerCache()
    cache.add(CachedPeer(node(1), (("192.0.2.1", 1),), last_seen=5.0))
    cache.add(CachedPeer(node(2), (("192.0.2.1", 2),), last_seen=6.0))
    cache.add(CachedPeer(node(3), (("192.0.2.1", 3),), last_seen=1.0))
    assert [p.node_id for p in cache] == [node(3), node(1), node(2)]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not JSON"),
        ("{not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "not"),  # deep nesting
        ("[]", "not a peer cache"),
        ('{"format": "something else", "version": 1, "peers": []}', "not a peer cache"),
        ('{"format": "qp2p-trio peer cache", "version": 2, "peers": []}', "version 2"),
        ('{"format": "qp2p-trio peer cache", "version": "1", "peers": []}', "version '1'"),
        ('{"format": "qp2p-trio peer cache", "version": 1, "peers": {}}', "not a list"),
        ("x" * (4 * 1024 * 1024 + 1), "larger than"),
    ],
)
def test_not_a_peer_cache_is_a_typed_error(text: str | bytes, why: str):
    with pytest.raises(PeerCacheError, match=why):
        loads(text)


def test_hostile_entries_are_skipped():
    good = {"node_id": str(node(1)), "addresses": ["192.0.2.1:4433"], "last_seen": 3}
    bad: list[Any] = [
        "a string",
        {"node_id": "not a node id"},
        {"node_id": 42},
        {"node_id": str(node(2)), "addresses": ["nowhere"]},
        {"node_id": str(node(2)), "addresses": ["192.0.2.1:99999"]},
        {"node_id": str(node(2)), "addresses": "192.0.2.1:1"},
        {"node_id": str(node(2)), "addresses": [["192.0.2.1", 1]]},
        {"node_id": str(node(2)), "addresses": ["x" * 10_000]},
        {"node_id": str(node(2)), "relays": [str(PeerAddress(node(2), ("192.0.2.1", 1)))]},
        {"node_id": str(node(2)), "relays": [f"{node(3)}/via/{relay_of(1)}"]},
        {"node_id": str(node(2)), "relays": [7]},
        {"node_id": str(node(2)), "last_seen": "yesterday"},
        {"node_id": str(node(2)), "last_seen": True},
        {"node_id": str(node(2)), "last_seen": -1},
        {"node_id": str(node(2)), "direct": "yes"},
    ]
    text = json.dumps({"format": "qp2p-trio peer cache", "version": 1, "peers": [*bad, good]})
    cache, skipped = loads(text)
    assert skipped == len(bad)
    assert [p.node_id for p in cache] == [node(1)]
    # Non-finite times are refused too (Python's json reads NaN and Infinity).
    text = text.replace('"last_seen": 3', '"last_seen": NaN')
    cache, skipped = loads(text)
    assert skipped == len(bad) + 1
    assert len(cache) == 0


# ------------------------------------------------------------ the file


def test_write_atomically_leaves_a_private_file_and_no_temporary(tmp_path: Any):
    path = tmp_path / "peers.json"
    path.write_text("old")
    write_atomically(str(path), "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["peers.json"]
    with pytest.raises(OSError):
        write_atomically(str(tmp_path / "missing" / "peers.json"), "x")
    assert os.listdir(tmp_path) == ["peers.json"]


@pytest.mark.parametrize(
    "content", [b"{garbage", b'{"format": "qp2p-trio peer cache", "version": 9}']
)
async def test_an_unusable_file_is_left_untouched(tmp_path: Any, caplog: Any, content: bytes):
    path = tmp_path / "peers.json"
    path.write_bytes(content)
    net = MemoryNetwork(seed=1)
    with caplog.at_level(logging.WARNING, "qp2p_trio"), net.activate():
        async with open_endpoint_factory(net) as factory:
            a = await factory(config=Config(peer_cache=path))
            b = await factory()
            await a.connect(b.peer_address)
            await a.aclose()
    assert path.read_bytes() == content
    assert "unusable" in caplog.text


async def test_a_directory_or_fifo_is_no_cache(tmp_path: Any):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (tmp_path, fifo):
        store = PeerCacheStore(path, lambda: 0.0)
        assert not store.writable
        assert not await store.save()
        assert not store.save_now()


async def test_a_failing_write_is_logged_and_retried(tmp_path: Any, caplog: Any):
    store = PeerCacheStore(tmp_path / "gone" / "peers.json", lambda: 1.0)
    store.cache.seen(node(1), 1.0, address=("192.0.2.1", 1))
    with caplog.at_level(logging.WARNING, "qp2p_trio"):
        assert not await store.save()
    assert store.save_errors == 1
    assert "cannot write the peer cache" in caplog.text
    (tmp_path / "gone").mkdir()
    assert await store.save()
    assert loads((tmp_path / "gone" / "peers.json").read_text())[0].get(node(1)) is not None


# ------------------------------------------------------------ endpoints

RELAY_IP = "127.100.0.1"


async def test_restart_reconnects_by_node_id_directly(autojump_clock: Any, tmp_path: Any):
    path = tmp_path / "peers.json"
    net = MemoryNetwork(seed=3, default_link=LinkConfig(delay=0.01))
    identity = seeded_identity(103, 0)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net, seed=3) as factory:
            b = await factory()
            a = await factory(identity=identity, config=Config(peer_cache=path))
            await a.connect(b.peer_address)
            await wait_until(path.exists)  # the task saves a moment after a change
            first = json.loads(path.read_text())["peers"]
            assert [p["node_id"] for p in first] == [str(b.node_id)]
            assert first[0]["direct"] is True
            await a.aclose()
            # A new run of the same node: no address given, only b's node id.
            again = await factory(identity=identity, config=Config(peer_cache=path))
            stranger = await factory()  # no cache: a node id alone is not enough
            with pytest.raises(ValueError, match="no known address"):
                await stranger.connect(b.node_id)
            conn = await again.connect(b.node_id)
            assert conn.peer_id == b.node_id
            assert conn.path == "direct"
            await again.send(b.node_id, b"after the restart")
            assert (await b.receive()).payload == b"after the restart"


async def test_restart_reconnects_through_the_remembered_relay(autojump_clock: Any, tmp_path: Any):
    path = tmp_path / "peers.json"
    net = MemoryNetwork(seed=4, default_link=LinkConfig(delay=0.01))
    net.add_host(RELAY_IP)
    symmetric = NatConfig(mapping=NatBehaviour.ADDRESS_AND_PORT_DEPENDENT)
    net.add_host("127.10.0.2", behind=net.add_nat("127.200.0.1", symmetric))
    net.add_host("127.10.1.2", behind=net.add_nat("127.200.0.2", symmetric))
    identity = seeded_identity(104, 0)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net, seed=4) as factory:
            relay = await factory(config=Config(relay=True), local_address=(RELAY_IP, 4433))
            b = await factory(
                config=Config(home_relay=relay.peer_address), local_address=("127.10.1.2", 0)
            )
            cached = Config(peer_cache=path)  # no home relay configured
            a = await factory(identity=identity, config=cached, local_address=("127.10.0.2", 0))
            await wait_until(lambda: relay.statistics().relay_clients == 1)  # b registered
            conn = await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            assert conn.path == "relayed"
            await a.aclose()
            entry = loads(path.read_text())[0].get(b.node_id)
            assert entry is not None
            assert entry.relays == (relay.peer_address,)
            assert not entry.direct
            again = await factory(identity=identity, config=cached, local_address=("127.10.0.2", 0))
            conn = await again.connect(b.node_id)
            assert conn.peer_id == b.node_id
            assert conn.path == "relayed"
            await again.send(b.node_id, b"through the relay again")
            assert (await b.receive()).payload == b"through the relay again"


async def test_a_lying_cache_cannot_change_who_answers(autojump_clock: Any, tmp_path: Any):
    path = tmp_path / "peers.json"
    net = MemoryNetwork(seed=5)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net, seed=5) as factory:
            b = await factory()
            mallory = await factory()
            lie = PeerCache()
            lie.seen(b.node_id, 1.0, address=mallory.local_address[:2])
            path.write_text(lie.dumps())
            a = await factory(config=Config(peer_cache=path, retry=None))
            with pytest.raises(PeerIdentityError):
                await a.connect(b.node_id)
            assert not a.connections()


async def test_peers_that_dial_us_cannot_flood_the_cache(autojump_clock: Any, tmp_path: Any):
    """Only peers we dialled get an entry; one that dials us updates its own only."""
    path = tmp_path / "peers.json"
    net = MemoryNetwork(seed=6)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net, seed=6) as factory:
            a = await factory(config=Config(peer_cache=path))
            friend_identity = seeded_identity(106, 0)
            friend = await factory(identity=friend_identity)
            await a.connect(friend.peer_address)
            hostile = net.add_host("127.0.5.1")  # one host, identities made up at will
            for n in range(20):
                sybil = await factory(identity=seeded_identity(60, n), host=hostile)
                await sybil.connect(a.peer_address)
            await friend.aclose()
            moved = await factory(identity=friend_identity)  # the friend, elsewhere now
            await moved.connect(a.peer_address)
            await wait_until(lambda: len(a.connections()) == 21)
            await a.aclose()
    cache, _ = loads(path.read_text())
    assert [p.node_id for p in cache] == [friend_identity.node_id]
    entry = cache.get(friend_identity.node_id)
    assert entry is not None
    assert entry.addresses == (moved.local_address[:2], friend.local_address[:2])


def test_read_peer_cache(tmp_path: Any):
    path = tmp_path / "peers.json"
    assert qp2p_trio.read_peer_cache(path) == {}
    cache = PeerCache()
    cache.seen(node(1), 1.0, address=("192.0.2.1", 1))
    cache.seen(node(2), 2.0, relay=relay_of(1))
    path.write_text(cache.dumps())
    assert qp2p_trio.read_peer_cache(path) == {
        node(1): PeerAddress(node(1), ("192.0.2.1", 1)),
        node(2): PeerAddress(node(2), relay=relay_of(1)),
    }
    path.write_text('{"format": "qp2p-trio peer cache", "version": 99}')
    with pytest.raises(PeerCacheError, match="version 99"):
        qp2p_trio.read_peer_cache(path)
