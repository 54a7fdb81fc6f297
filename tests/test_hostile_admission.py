# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Issue 10, rows 2, 3 and 6: no peer can take every handshake slot.

The endpoint tests drive attackers built on aioquic directly on a
`MemoryNetwork` under a virtual clock, and check both that the attacker is
cut off and that an honest endpoint on another virtual host connects and
gets a message through with bounded (virtual) latency.  The rest tests the
sans-IO admission module directly.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from aioquic import tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from hostile_peer import HostilePeer, honest_round_trip

import qp2p_trio
from qp2p_trio import Config, _admission, _wire
from qp2p_trio._admission import Admission, Admit, Answer, Expiry, RetryTokens, address_key
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

C = _wire.CloseCode


def client_initial(target: tuple[Any, ...] = ("127.0.0.1", 4433), token: bytes = b"") -> bytes:
    conf = QuicConfiguration(is_client=True, alpn_protocols=[qp2p_trio.ALPN])
    conf.token = token
    quic = QuicConnection(configuration=conf)
    quic.connect(target, now=0.0)
    return quic.datagrams_to_send(now=0.0)[0][0]


# --------------------------------------------------------------- row 3 (endpoint)


async def test_single_initials_from_many_addresses_do_not_lock_honest_peers_out(
    autojump_clock: Any,
):
    """Row 3: 100 Initials from 10 addresses, never answered.

    Past half the pending limit, Initials get a Retry and keep no state, so
    the attacker holds at most half the slots; an honest dialler answers its
    Retry and gets in at once.  Under pressure, the attacker's handshakes
    (no address proof) are dropped after `unvalidated_handshake_timeout`.
    """
    net = MemoryNetwork(seed=31)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            honest = await factory()
            socks = []
            for i in range(10):
                with net.use_host(net.add_host(f"127.0.1.{i + 1}")):
                    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
                await sock.bind((f"127.0.1.{i + 1}", 0))
                socks.append(sock)
            for n in range(100):
                await socks[n % 10].sendto(client_initial(), server.local_address)
            await trio.sleep(0.01)
            stats = server.statistics()
            limit = server.config.max_pending_handshakes
            assert stats.connections == limit // 2  # the other half got a Retry
            assert stats.retries_sent == 100 - limit // 2
            assert stats.connections_refused == 0

            took = await honest_round_trip(honest, server, limit=60)
            assert took < 0.1  # one extra round trip on a zero-delay network
            assert server.statistics().retries_sent == 100 - limit // 2 + 1

            await trio.sleep(server.config.unvalidated_handshake_timeout)
            stats = server.statistics()
            assert stats.handshakes_unvalidated_expired == limit // 2
            assert stats.connections == 1  # the honest one
            for sock in socks:
                sock.close()
            await honest_round_trip(honest, server, limit=60)


async def test_unvalidated_handshakes_survive_without_pressure(autojump_clock: Any):
    """A few silent clients are left alone until the set-up deadline."""
    net = MemoryNetwork(seed=32)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            with net.use_host(net.add_host("127.0.1.1")):
                sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await sock.bind(("127.0.1.1", 0))
            with sock:
                await sock.sendto(client_initial(), server.local_address)
                await trio.sleep(server.config.unvalidated_handshake_timeout * 2)
                assert server.statistics().connections == 1
                deadline = _admission.setup_deadline(server.config)
                await trio.sleep(deadline)
            stats = server.statistics()
            assert stats.handshakes_unvalidated_expired == 0
            assert stats.handshakes_timed_out == 1
            assert stats.connections == 0


async def test_a_forged_token_is_refused_with_invalid_token(autojump_clock: Any):
    """An Initial with a token that is not ours is closed at once, statelessly."""
    net = MemoryNetwork(seed=33)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            honest = await factory()
            forged = b"\x01" + bytes(40)
            async with HostilePeer.open(
                net, "127.0.1.1", server.local_address, token=forged
            ) as evil:
                evil.quic.connect(evil.target, now=trio.current_time())
                await evil.flush()
                await evil.wait_for(lambda: evil.close_code() is not None, limit=1.0)
                assert evil.close_code() == _admission.INVALID_TOKEN
            stats = server.statistics()
            assert stats.invalid_tokens >= 1
            assert stats.connections == 0
            await honest_round_trip(honest, server, limit=60)


# --------------------------------------------------------------- row 2 (endpoint)


async def test_pinging_half_open_handshakes_are_closed_at_the_setup_deadline(
    autojump_clock: Any,
):
    """Row 2: full handshakes with throw-away identities, no SETTINGS, PINGs.

    They take every pending slot (5 addresses x 2); PINGs do not extend the
    set-up deadline; at it each is closed with HANDSHAKE_TIMEOUT, and the
    honest dialler, refused meanwhile, gets in by its retries.
    """
    config = Config(
        max_pending_handshakes=10,
        max_pending_handshakes_per_address=2,
        handshake_timeout=2.0,
        idle_timeout=30.0,
    )
    deadline = _admission.setup_deadline(config)
    assert deadline == pytest.approx(2 * 2.0 + 4 * 0.3)
    net = MemoryNetwork(seed=34)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(config=config)
            honest = await factory()
            closed_at: list[float] = []
            started = trio.current_time()

            async def attacker(ip: str) -> None:
                async with HostilePeer.open(net, ip, server.local_address) as evil:
                    await evil.handshake()
                    for uid in range(60):  # bounded: one PING a second
                        if evil.close_code() is not None:
                            break
                        evil.quic.send_ping(uid)
                        await evil.flush()
                        with trio.move_on_after(1.0):
                            await evil.wait_for(lambda: evil.close_code() is not None)
                    assert evil.close_code() == C.HANDSHAKE_TIMEOUT
                    closed_at.append(trio.current_time() - started)

            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(attacker, f"127.0.1.{i // 2 + 1}")
                await trio.sleep(0.5)
                stats = server.statistics()
                assert stats.connections == 10
                # Every slot is taken: the honest dialler is refused for now,
                # and gets in by its retries once the deadline freed them.
                took = await honest_round_trip(honest, server, limit=60)
                assert deadline - 0.5 <= took <= deadline + 5.0
            assert len(closed_at) == 10
            assert all(deadline <= t <= deadline + 0.5 for t in closed_at)
            stats = server.statistics()
            assert stats.handshakes_timed_out == 10
            assert stats.connections_refused >= 1


# ------------------------------------------------------------ row 6 (refusals)


def test_refusal_runs_no_tls(monkeypatch: pytest.MonkeyPatch):
    """Row 6: a refused Initial is answered from the Initial keys alone.

    TLS is made to explode: a refusal that ran the server's TLS flight (as
    refusals did) would fail.  The answer is a CONNECTION_CLOSE the client
    reads as CONNECTION_REFUSED.
    """

    def no_tls(*_args: Any, **_kw: Any) -> None:
        raise AssertionError("TLS ran for a refusal")

    data = client_initial()
    monkeypatch.setattr(tls.Context, "handle_message", no_tls)
    admission: Admission[object] = Admission(Config(max_connections=1))
    verdict = admission.screen(data, ("127.0.0.9", 5000), 0.0, connections=1)
    monkeypatch.undo()
    assert isinstance(verdict, Answer)
    assert verdict.datagram is not None
    assert len(verdict.datagram) < 200  # no amplification: far below the 1200-byte Initial
    assert admission.counters.connections_refused == 1

    client = QuicConnection(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=[qp2p_trio.ALPN])
    )
    client.connect(("127.0.0.1", 4433), now=0.0)
    initial = client.datagrams_to_send(now=0.0)[0][0]
    answer = admission.screen(initial, ("127.0.0.1", 5000), 0.0, connections=1)
    assert isinstance(answer, Answer)
    assert answer.datagram is not None
    client.receive_datagram(answer.datagram, ("127.0.0.1", 4433), now=0.01)
    assert client._close_event is not None
    assert client._close_event.error_code == _admission.CONNECTION_REFUSED


async def test_refused_dialler_gets_connect_refused_per_address(autojump_clock: Any):
    """Past the per-address limit the dialler gets ConnectRefused (cheap refusal)."""
    net = MemoryNetwork(seed=35)
    config = Config(max_pending_handshakes_per_address=1, address_validation_threshold=1.0)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(config=config)
            honest = await factory(config=Config(retry=None))
            async with HostilePeer.open(net, "127.0.1.1", server.local_address) as evil:
                evil.quic.connect(evil.target, now=trio.current_time())
                await evil.flush()
                await trio.sleep(0.01)
                async with HostilePeer.open(net, "127.0.1.1", server.local_address) as evil2:
                    evil2.quic.connect(evil2.target, now=trio.current_time())
                    await evil2.flush()
                    await evil2.wait_for(lambda: evil2.close_code() is not None, limit=1.0)
                    assert evil2.close_code() == _admission.CONNECTION_REFUSED
                # An endpoint on the attacker's address is refused too.
                [shared] = [h for h in net.hosts if h.v4 == "127.0.1.1"]
                blocked = await factory(config=Config(retry=None), host=shared)
                with pytest.raises(qp2p_trio.ConnectRefused) as info:
                    await blocked.connect(server.local_address)
                assert info.value.error_code == _admission.CONNECTION_REFUSED
                await honest_round_trip(honest, server, limit=60)


# ------------------------------------------------------------------ sans-IO


def test_address_key_ipv4_and_ipv6_64():
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff:1:2:3")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("not-an-ip") == "not-an-ip"


def test_per_address_limit_covers_an_ipv6_64_and_mapped_ipv4():
    admission: Admission[int] = Admission(
        Config(max_pending_handshakes_per_address=2, address_validation_threshold=1.0)
    )
    data = client_initial()
    for n, host in enumerate(["2001:db8::1", "2001:db8::2"]):
        verdict = admission.screen(data, (host, 1000), 0.0, connections=0)
        assert isinstance(verdict, Admit)
        admission.add(n, (host, 1000), b"x", 0.0, validated=False)
    # A third address of the same /64 is refused; another /64 is not.
    assert isinstance(admission.screen(data, ("2001:db8::ffff", 1), 0.0, connections=0), Answer)
    assert isinstance(admission.screen(data, ("2001:db8:0:1::1", 1), 0.0, connections=0), Admit)
    # A mapped IPv4 address counts as the IPv4 address.
    admission.add(10, ("::ffff:127.0.0.5", 1), b"x", 0.0, validated=False)
    admission.add(11, ("127.0.0.5", 2), b"x", 0.0, validated=False)
    assert isinstance(admission.screen(data, ("127.0.0.5", 3), 0.0, connections=0), Answer)
    assert admission.counters.connections_refused == 2
    admission.remove(11)
    admission.remove(11)  # idempotent
    assert admission.pending_for("127.0.0.5") == 1


def test_retry_tokens_bind_address_connection_id_time_and_key():
    tokens = RetryTokens(lifetime=10.0)
    addr = ("127.0.0.5", 4000)
    token = tokens.issue(addr, b"odcid-12", b"retry-01", now=100.0)
    assert tokens.validate(token, addr, b"retry-01", now=105.0) == b"odcid-12"
    assert tokens.validate(token, ("127.0.0.5", 4001), b"retry-01", now=105.0) is None
    assert tokens.validate(token, ("127.0.0.6", 4000), b"retry-01", now=105.0) is None
    assert tokens.validate(token, addr, b"retry-02", now=105.0) is None
    assert tokens.validate(token, addr, b"retry-01", now=110.5) is None  # expired
    assert tokens.validate(token, addr, b"retry-01", now=99.0) is None  # from the future
    tampered = bytearray(token)
    tampered[12] ^= 1
    assert tokens.validate(bytes(tampered), addr, b"retry-01", now=105.0) is None
    assert tokens.validate(token[:-1], addr, b"retry-01", now=105.0) is None
    assert tokens.validate(b"", addr, b"retry-01", now=105.0) is None
    # Another endpoint run draws another key.
    assert RetryTokens(lifetime=10.0).validate(token, addr, b"retry-01", now=105.0) is None


def test_retry_then_token_admits_validated_with_both_connection_ids():
    config = Config(max_pending_handshakes=2, address_validation_threshold=0.5)
    admission: Admission[int] = Admission(config)
    admission.add(1, ("127.0.0.9", 1), b"x", 0.0, validated=False)  # at the threshold now
    client = QuicConnection(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=[qp2p_trio.ALPN])
    )
    client.connect(("127.0.0.1", 4433), now=0.0)
    first = client.datagrams_to_send(now=0.0)[0][0]
    addr = ("127.0.0.7", 5000)
    retry = admission.screen(first, addr, 0.0, connections=1)
    assert isinstance(retry, Answer)
    assert retry.datagram is not None
    assert admission.counters.retries_sent == 1
    client.receive_datagram(retry.datagram, ("127.0.0.1", 4433), now=0.01)
    again = client.datagrams_to_send(now=0.01)[0][0]
    verdict = admission.screen(again, addr, 0.02, connections=1)
    assert isinstance(verdict, Admit)
    assert verdict.validated
    assert verdict.original_destination_cid == client.original_destination_connection_id
    assert verdict.retry_source_cid == bytes(client._peer_cid.cid)
    # The same token from another address is refused (INVALID_TOKEN).
    stolen = admission.screen(again, ("127.0.0.8", 5000), 0.02, connections=1)
    assert isinstance(stolen, Answer)
    assert admission.counters.invalid_tokens == 1


def test_deadlines_setup_is_independent_of_activity_unvalidated_needs_pressure():
    config = Config(max_pending_handshakes=4, address_validation_threshold=0.75)
    setup = _admission.setup_deadline(config)
    fast = config.unvalidated_handshake_timeout
    admission: Admission[str] = Admission(config)
    admission.add("quiet", ("127.0.0.1", 1), b"first", 0.0, validated=False)
    admission.add("retransmits", ("127.0.0.2", 1), b"first", 0.0, validated=False)
    admission.add("answered", ("127.0.0.3", 1), b"first", 0.0, validated=False)
    admission.observe("retransmits", b"first")  # its Initial again: no proof
    admission.observe("answered", b"ours")  # to our connection id: proof
    assert admission.is_validated("answered")
    assert not admission.is_validated("retransmits")
    # Under pressure (3 pending >= 3): the unproven ones go after `fast`.
    assert admission.expired(fast - 0.01) == []
    gone = admission.expired(fast)
    assert sorted(gone) == [("quiet", Expiry.UNVALIDATED), ("retransmits", Expiry.UNVALIDATED)]
    # No pressure any more: a new quiet one stays until the set-up deadline.
    admission.add("lonely", ("127.0.0.4", 1), b"first", fast, validated=False)
    for _ in range(10):
        admission.observe("answered", b"ours")  # activity extends nothing
    assert admission.expired(fast + 3 * fast) == []
    assert admission.expired(setup) == [("answered", Expiry.SETUP)]
    assert admission.expired(fast + setup) == [("lonely", Expiry.SETUP)]
    assert admission.pending == 0
    assert admission.expired(1e9) == []
    assert admission.counters.handshakes_unvalidated_expired == 2
    assert admission.counters.handshakes_timed_out == 2


def test_config_validates_the_new_fields():
    with pytest.raises(ValueError, match="address_validation_threshold"):
        Config(address_validation_threshold=1.5)
    with pytest.raises(ValueError, match="address_validation_threshold"):
        Config(address_validation_threshold=float("nan"))
    with pytest.raises(TypeError, match="address_validation_threshold"):
        Config(address_validation_threshold=True)
    with pytest.raises(ValueError, match="unvalidated_handshake_timeout"):
        Config(unvalidated_handshake_timeout=0)


def test_stateless_answers_are_rate_limited():
    """Row 6: a flood of refused Initials costs what junk costs past 1,000 answers/s."""
    config = Config(max_pending_handshakes=1)
    admission: Admission[int] = Admission(config)
    admission.add(1, ("127.0.0.9", 1), b"x", 0.0, validated=True)  # the table is full
    first = client_initial()
    burst = int(_admission.ANSWER_BURST)
    answers = [admission.screen(first, ("127.0.0.7", 5000), 1.0, connections=1) for _ in range(300)]
    assert all(isinstance(a, Answer) for a in answers)
    sent = [a for a in answers if isinstance(a, Answer) and a.datagram is not None]
    assert len(sent) == burst
    assert admission.counters.answers_suppressed == 300 - burst
    assert admission.counters.connections_refused == 300
    # The bucket refills at ANSWERS_PER_SECOND.
    later = [admission.screen(first, ("127.0.0.7", 5000), 1.05, connections=1) for _ in range(100)]
    refilled = int(0.05 * _admission.ANSWERS_PER_SECOND)
    assert sum(isinstance(a, Answer) and a.datagram is not None for a in later) == refilled
