# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Connection pool: reuse, shared dials, simultaneous open, restarts, limits."""

import hashlib
import types

import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, ConnectionClosed
from qp2p_trio.testing import LinkConfig, MemoryNetwork

ADDR = ("127.0.0.1", 0)
NO_RETRY = Config(retry=None)


async def test_pool_hit_costs_no_datagram(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=1).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            conn = await a.connect(b.local_address, node_id=b.node_id)
            peer = await b.accept()
            await trio.sleep(1)  # virtual: the handshake's last packets are out
            before = a.statistics().datagrams_sent
            assert await a.connect(b.local_address) is conn
            assert await a.connect(b.local_address, node_id=b.node_id) is conn
            assert await a.connect(b.node_id) is conn
            assert await a.connect(f"{b.node_id}@127.0.0.1:{b.local_address[1]}") is conn
            assert await a.connect(str(b.peer_address)) is conn
            assert b.peer_address.node_id == b.node_id
            assert a.statistics().datagrams_sent == before
            assert a.connections() == [conn]
            # The accepting side pooled it too: dialling back reuses it.
            assert await b.connect(a.local_address) is peer
            assert b.connections() == [peer]
            assert b.statistics().connections == 1


async def test_concurrent_connects_share_one_handshake(autojump_clock):
    net = MemoryNetwork(seed=2, default_link=LinkConfig(delay=0.05))
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            results = []

            async def dial():
                results.append(await a.connect(b.local_address, node_id=b.node_id))

            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(dial)
            assert len(results) == 100
            assert all(r is results[0] for r in results)
            assert a.statistics().connections == 1
            assert b.statistics().connections == 1


async def test_cancelled_waiter_does_not_cancel_the_shared_attempt(autojump_clock):
    net = MemoryNetwork(seed=3, default_link=LinkConfig(delay=0.2))
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            got = []

            async def patient():
                got.append(await a.connect(b.local_address))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(patient)
                with trio.move_on_after(0.1) as scope:
                    await a.connect(b.local_address)
                assert scope.cancelled_caught
            assert len(got) == 1
            assert not got[0].is_closed
            assert a.connections() == got


async def test_abandoned_handshake_is_closed_at_once(autojump_clock):
    net = MemoryNetwork(seed=4, default_link=LinkConfig(delay=0.2))
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            with trio.move_on_after(0.1):
                await a.connect(b.local_address)
            stats = a.statistics()
            assert stats.connections == 0
            assert stats.pooled == 0
            assert a.connections() == []
            # A later connect starts afresh and works.
            conn = await a.connect(b.local_address)
            await conn.send(b"fresh")
            assert (await b.receive()).payload == b"fresh"


async def test_failed_attempt_leaves_nothing(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=5).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            other = qp2p_trio.Identity.generate().node_id
            with pytest.raises(qp2p_trio.PeerIdentityError):
                await a.connect(b.local_address, node_id=other)
            assert a.statistics().connections == 0
            assert a.connections() == []
            conn = await a.connect(b.local_address, node_id=b.node_id)
            assert a.connections() == [conn]


async def test_closed_connection_leaves_pool_at_once(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=6).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            conn = await a.connect(b.local_address)
            await conn.aclose()
            assert a.connections() == []
            again = await a.connect(b.local_address)
            assert again is not conn
            # The peer's close removes it on the other side too.
            peer = await b.accept()
            peer2 = await b.accept()
            await peer2.aclose()
            await again.wait_closed()
            assert a.connections() == []
            assert peer.is_closed


async def test_idle_timed_out_connection_leaves_pool(autojump_clock):
    net = MemoryNetwork(seed=7)
    cfg = Config(idle_timeout=5, keep_alive_interval=None)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=cfg) as a,
            qp2p_trio.open_endpoint(ADDR, config=cfg) as b,
        ):
            conn = await a.connect(b.local_address)
            await conn.wait_closed()
            assert a.connections() == []
            assert b.connections() == []


def _losers(ep, other):
    """``ep``'s connections to ``other`` that the pool's rule does not keep.

    Both sides keep the connection dialled by the smaller node id, so the
    losers are those dialled by the larger one.
    """
    larger_dials_here = ep.node_id > other.node_id
    return [c for c in ep._driver.connections if c.core.is_client == larger_dials_here]


async def _duplicates_closed(a, b):
    """Wait until every duplicate of a simultaneous open has closed, on both sides."""
    for ep, other in ((a, b), (b, a)):
        for conn in _losers(ep, other):
            await conn.wait_closed()


def _digest(i: int, side: str) -> bytes:
    return hashlib.sha256(f"{side}{i}".encode()).digest()


async def _simultaneous_open(seed: int) -> None:
    net = MemoryNetwork(seed=seed, default_link=LinkConfig(delay=0.02, jitter=0.03))
    with trio.fail_after(120), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            n = 12
            received = {a: [], b: []}

            async def collect(ep):
                for _ in range(n):
                    received[ep].append((await ep.receive()).payload)

            async def dial_and_send(ep, other, side, lag):
                await trio.sleep(lag)
                conn = await ep.connect(other.local_address, node_id=other.node_id)
                # Send through the returned connection and through the pool,
                # while the other side's dial may still be racing.
                async with trio.open_nursery() as nursery:
                    for i in range(n):
                        if i % 2:
                            nursery.start_soon(conn.send, _digest(i, side))
                        else:
                            nursery.start_soon(ep.send, other.node_id, _digest(i, side))
                        await trio.sleep(0.005)

            lag = (seed % 7) * 0.004
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, a)
                nursery.start_soon(collect, b)
                nursery.start_soon(dial_and_send, a, b, "a", 0.0)
                nursery.start_soon(dial_and_send, b, a, "b", lag)
            # Every message arrived exactly once and intact.
            assert sorted(received[b]) == sorted(_digest(i, "a") for i in range(n))
            assert sorted(received[a]) == sorted(_digest(i, "b") for i in range(n))
            # The duplicate (if the dials crossed) drains and closes by itself,
            # and both sides kept the same single connection.
            await _duplicates_closed(a, b)
            assert a.statistics().connections == 1
            assert b.statistics().connections == 1
            [ka] = a.connections()
            [kb] = b.connections()
            assert ka.core.original_destination_cid == kb.core.original_destination_cid


@pytest.mark.parametrize("seed", range(20))
async def test_simultaneous_open(autojump_clock, seed):
    await _simultaneous_open(seed)


async def test_simultaneous_open_really_races(autojump_clock):
    # Guard against a vacuous race: with these timings both dials cross, so
    # each side saw two connections and retired one.
    net = MemoryNetwork(seed=99, default_link=LinkConfig(delay=0.05))
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.connect, b.local_address)
                nursery.start_soon(b.connect, a.local_address)
            assert a.statistics().connections + a.statistics().connections_closing == 2
            assert len(_losers(a, b)) == 1
            await _duplicates_closed(a, b)
            assert a.statistics().connections == 1
            assert b.statistics().connections == 1
            [ka] = a.connections()
            [kb] = b.connections()
            assert ka.core.original_destination_cid == kb.core.original_destination_cid
            # The one kept is the one dialled by the smaller node id.
            dialler = a if a.node_id < b.node_id else b
            kept = ka if dialler is a else kb
            assert kept.core.is_client


async def test_peer_restart_same_key_new_port_replaces_entry(autojump_clock):
    with trio.fail_after(60), MemoryNetwork(seed=8).activate():
        identity = qp2p_trio.Identity.generate()
        async with qp2p_trio.open_endpoint(ADDR) as a:
            async with qp2p_trio.open_endpoint(ADDR, identity=identity) as b1:
                old = await b1.connect(a.local_address)
                first = await a.accept()
                await old.send(b"from the first life")
                assert (await a.receive()).payload == b"from the first life"
                # b1 dies without closing: its socket just goes away.
                b1._bg_scope.cancel()
                b1._closed = True
                b1._driver.closing = True
            async with qp2p_trio.open_endpoint(ADDR, identity=identity) as b2:
                await b2.connect(a.local_address)
                second = await a.accept()
                assert second is not first
                # The stale entry is gone at once: sending by node id reaches b2.
                assert a.connections() == [second]
                assert first.is_closed
                await a.send(identity.node_id, b"to the second life")
                assert (await b2.receive()).payload == b"to the second life"


async def test_new_node_at_same_address_replaces_entry(autojump_clock):
    with trio.fail_after(60), MemoryNetwork(seed=9).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a:
            async with qp2p_trio.open_endpoint(ADDR) as b1:
                port = b1.local_address[1]
                await b1.connect(a.local_address)
                first = await a.accept()
                b1._bg_scope.cancel()
                b1._closed = True
                b1._driver.closing = True
            async with qp2p_trio.open_endpoint(("127.0.0.1", port)) as b2:
                await b2.connect(a.local_address)
                second = await a.accept()
                assert second.peer_id == b2.node_id
                assert first.is_closed
                assert a.connections() == [second]
                assert await a.connect(("127.0.0.1", port)) is second


async def test_connection_limit_refuses_with_clear_code(autojump_clock):
    with trio.fail_after(60), MemoryNetwork(seed=10).activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=Config(max_connections=2)) as server,
            qp2p_trio.open_endpoint(ADDR, config=NO_RETRY) as c1,
            qp2p_trio.open_endpoint(ADDR, config=NO_RETRY) as c2,
            qp2p_trio.open_endpoint(ADDR, config=NO_RETRY) as c3,
        ):
            conn1 = await c1.connect(server.local_address)
            await c2.connect(server.local_address)
            with pytest.raises(qp2p_trio.ConnectRefused) as info:
                await c3.connect(server.local_address)
            assert info.value.error_code == 0x2
            assert isinstance(info.value, qp2p_trio.ConnectError)
            assert server.statistics().connections_refused == 1
            assert server.statistics().connections == 2
            # The others keep working, and a freed slot is usable again.
            await conn1.send(b"fine")
            assert (await server.receive()).payload == b"fine"
            [at_server] = [c for c in server.connections() if c.peer_id == c1.node_id]
            await conn1.aclose()
            await at_server.wait_closed()
            await c3.connect(server.local_address)


async def test_pending_handshake_limit(autojump_clock):
    net = MemoryNetwork(seed=11, default_link=LinkConfig(delay=0.1))
    with trio.fail_after(60), net.activate():
        # No Retry round trip (address_validation_threshold=1): all eight
        # Initials meet the limit at once.
        config = Config(max_pending_handshakes=3, address_validation_threshold=1.0)
        async with qp2p_trio.open_endpoint(ADDR, config=config) as server:
            outcomes = []

            async def client():
                async with qp2p_trio.open_endpoint(ADDR, config=NO_RETRY) as c:
                    try:
                        await c.connect(server.local_address)
                    except qp2p_trio.ConnectRefused:
                        outcomes.append("refused")
                    else:
                        outcomes.append("ok")

            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(client)
            assert outcomes.count("ok") == 3
            assert outcomes.count("refused") == 5
            # Counted per refused Initial: a client may retransmit its Initial
            # before the refusal reaches it.
            assert server.statistics().connections_refused >= 5


async def test_endpoint_send_and_request_by_peer(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=12).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            text = f"{b.node_id}@127.0.0.1:{b.local_address[1]}"
            await a.send(text, b"by text")
            await a.send(b.node_id, b"by node id")
            await a.send(b.local_address, b"by address")
            got = [(await b.receive()).payload for _ in range(3)]
            assert got == [b"by text", b"by node id", b"by address"]
            assert a.statistics().connections == 1

            async def answer():
                req = await b.receive()
                await req.reply(req.payload[::-1])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer)
                assert await a.request(b.node_id, b"abc") == b"cba"
            stranger = qp2p_trio.Identity.generate().node_id
            with pytest.raises(ValueError, match="no known address"):
                await a.send(stranger, b"?")


async def test_retired_duplicate_forwards_new_messages(autojump_clock):
    net = MemoryNetwork(seed=13, default_link=LinkConfig(delay=0.05))
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            ours = []
            async with trio.open_nursery() as nursery:

                async def dial():
                    ours.append(await a.connect(b.local_address))

                nursery.start_soon(dial)
                nursery.start_soon(b.connect, a.local_address)
            # Whichever connection a user holds, sending on it works.
            [kept] = a.connections()
            for conn in {ours[0], kept}:
                await conn.send(b"via " + str(id(conn)).encode())
                assert (await b.receive()).payload.startswith(b"via ")
            retired = [
                c for c in a._driver.connections if c is not kept and c.replacement is not None
            ]
            for conn in retired:
                assert conn.is_retired
                assert conn.replacement is kept


async def test_connection_closed_is_transient_only_when_peer_closed(autojump_clock):
    from qp2p_trio._classify import transient as _transient
    from qp2p_trio._wire import CloseCode

    def closed(**kw):
        return ConnectionClosed("x", **kw)

    assert _transient(closed(error_code=0, reason="", by_peer=True, idle_timeout=False))
    assert _transient(closed(error_code=0, reason="", by_peer=False, idle_timeout=True))
    assert not _transient(
        closed(error_code=CloseCode.PROTOCOL_VIOLATION, reason="", by_peer=True, idle_timeout=False)
    )
    assert not _transient(closed(error_code=0, reason="", by_peer=False, idle_timeout=False))
    await trio.lowlevel.checkpoint()


async def test_connect_takes_one_round_trip(autojump_clock):
    # The server's SETTINGS travel with its handshake flight (0.5-RTT data),
    # so the client is ready as soon as it verified the server.
    net = MemoryNetwork(seed=14, default_link=LinkConfig(delay=0.05))
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            start = trio.current_time()
            conn = await a.connect(b.local_address, node_id=b.node_id)
            assert trio.current_time() - start == pytest.approx(0.1, abs=0.01)
            assert conn.session.control.peer_max_message_size == b.config.max_message_size


class _Stub(types.SimpleNamespace):
    __hash__ = object.__hash__  # the pool keys connections by identity
    __eq__ = object.__eq__


def _stub_connection(peer, *, incarnation=1, is_client=True, odcid=b"x"):
    """What the pool reads of a connection, and nothing it could call into."""
    from types import SimpleNamespace

    return _Stub(
        peer_id=peer,
        peer_address=("10.0.0.9", 9),
        is_closed=False,
        is_retired=False,
        close_reason=None,
        path="direct",
        session=SimpleNamespace(
            closed_locally=False,
            control=SimpleNamespace(peer_incarnation=incarnation),
            peer_id=peer,
        ),
        core=SimpleNamespace(is_client=is_client, original_destination_cid=odcid),
    )


def test_pool_returns_actions_and_calls_into_no_connection():
    """The pool decides; the driver acts (no re-entrant close while it updates)."""
    from qp2p_trio._events import EventHub
    from qp2p_trio._pool import Close, Pool, Retire

    local = qp2p_trio.Identity.generate().node_id
    peer = qp2p_trio.Identity.generate().node_id
    pool = Pool(local, EventHub())
    key = ("10.0.0.9", 9)
    first = _stub_connection(peer, is_client=True)
    assert pool.ready(first, key) == []
    # A second connection from the same run of the peer: a simultaneous open.
    second = _stub_connection(peer, is_client=False, odcid=b"y")
    (action,) = pool.ready(second, key)
    assert isinstance(action, Retire)
    assert {action.conn, action.winner} == {first, second}
    assert pool.peer(peer) is action.winner
    # A restart of the peer (another incarnation): the old one is to be closed.
    third = _stub_connection(peer, incarnation=2)
    (close,) = pool.ready(third, key)
    assert close == Close(action.winner, "the peer restarted")
    assert pool.peer(peer) is third
    # The peer's GOAWAY on a connection we do not keep: follow it.
    assert pool.peer_goaway(first if action.winner is second else second) != []
