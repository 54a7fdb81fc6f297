# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Foreign and hostile TLS handshakes (issue 10, rows 10 and 11), in memory.

A listener answers a ClientHello it refuses with its TLS alert at once, and
counts it as a handshake failure; junk that does not decrypt is still dropped
silently; a ClientHello spanning several Initial datagrams completes.  The
clients are aioquic connections built directly (`hostile_peer`) on a
`MemoryNetwork` with a 10 ms one-way delay, under the autojump clock.  The
same against independent QUIC stacks on real UDP is in ``test_interop.py``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio
from aioquic import tls
from aioquic.quic.crypto import CryptoError, CryptoPair
from aioquic.quic.packet import QuicProtocolVersion
from hostile_peer import HostilePeer

import qp2p_trio
from qp2p_trio import _wire
from qp2p_trio.testing import LinkConfig, MemoryNetwork, open_endpoint_factory

K = _wire.StreamKind
DELAY = 0.01  # one way
#: A listener's answer comes back within one round trip and a little processing.
PROMPT = 2 * DELAY + 0.005
#: ALPN entries that push aioquic's ClientHello past two Initial datagrams.
PADDING_ALPNS = [f"padding-{i}-" + "x" * 200 for i in range(8)]


def network() -> MemoryNetwork:
    return MemoryNetwork(seed=3, default_link=LinkConfig(delay=DELAY))


async def honest_round_trip(client: qp2p_trio.Endpoint, server: qp2p_trio.Endpoint) -> None:
    with trio.fail_after(1):
        conn = await client.connect(server.local_address, node_id=server.node_id)
        await conn.send(b"honest")
        msg = await server.receive()
    assert msg.payload == b"honest"


async def refused_with(code: int, **peer: Any) -> None:
    """A client offering ``peer`` gets CONNECTION_CLOSE ``code`` within one round trip."""
    net = network()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address, **peer) as evil:
                start = trio.current_time()
                await evil.start_handshake()
                await evil.wait_for(lambda: evil.close_code() is not None, limit=5)
                elapsed = trio.current_time() - start
                assert evil.close_code() == code
                assert not evil.handshake_completed()
            assert elapsed <= PROMPT, f"the alert took {elapsed * 1000:.1f} ms (virtual)"
            stats = server.statistics()
            assert stats.handshake_failures == 1
            assert stats.dropped_malformed == 0
            assert stats.connections == 0  # only the closing state is left
            await honest_round_trip(client, server)
            assert server.statistics().handshake_failures == 1


async def test_wrong_alpn_is_refused_with_no_application_protocol(autojump_clock: Any):
    """Row 10: a foreign ALPN gets alert 120 (0x178) in one round trip, not silence."""
    await refused_with(0x178, alpn=["h3", "hq-interop"])


def _no_ed25519(ctx: tls.Context) -> None:
    ctx._signature_algorithms = [
        tls.SignatureAlgorithm.ECDSA_SECP256R1_SHA256,
        tls.SignatureAlgorithm.RSA_PSS_RSAE_SHA256,
    ]


async def test_no_ed25519_signature_is_refused_with_handshake_failure(autojump_clock: Any):
    """Row 10: a client that cannot verify Ed25519 gets alert 40 (0x128) at once."""
    await refused_with(0x128, configure_tls=_no_ed25519)


def _initial_lookalike() -> bytes:
    """A 1,200-byte Initial with a plausible header whose payload will not decrypt."""
    dcid, scid = secrets.token_bytes(8), secrets.token_bytes(8)
    head = (
        bytes([0xC3])
        + int(QuicProtocolVersion.VERSION_1).to_bytes(4, "big")
        + bytes([8])
        + dcid
        + bytes([8])
        + scid
        + b"\x00"  # token length
    )
    rest = 1200 - len(head) - 2
    return head + (0x4000 | rest).to_bytes(2, "big") + secrets.token_bytes(rest)


async def test_junk_initial_is_dropped_silently_and_counted_malformed(autojump_clock: Any):
    """Row 10's other side: an Initial that does not decrypt gets no answer and keeps nothing."""
    net = network()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            host = net.add_host("127.0.0.77")
            with net.use_host(host):
                raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with raw:
                await raw.bind(("127.0.0.77", 0))
                for _ in range(3):
                    await raw.sendto(_initial_lookalike(), server.local_address)
                with trio.move_on_after(1):
                    answer = await raw.recvfrom(65536)
                    pytest.fail(f"junk was answered: {answer!r}")
            stats = server.statistics()
            assert stats.dropped_malformed == 3
            assert stats.handshake_failures == 0
            assert stats.datagrams_sent == 0
            assert stats.connections == stats.connections_closing == 0


async def test_client_hello_spanning_several_datagrams_completes(autojump_clock: Any):
    """Row 11: the first part of a long ClientHello is kept, not thrown away as junk."""
    net = network()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            alpns = [*PADDING_ALPNS, qp2p_trio.ALPN]
            async with HostilePeer.open(
                net, "127.0.0.66", server.local_address, alpn=alpns
            ) as peer:
                first_flight = await peer.start_handshake()
                assert first_flight >= 2, "the ClientHello should need several datagrams"
                await peer.wait_for(peer.handshake_completed, limit=2)
                peer.open_control()
                peer.send_message(K.MESSAGE, b"long hello")
                await peer.flush()
                with trio.fail_after(1):
                    msg = await server.receive()
                assert msg.payload == b"long hello"
            stats = server.statistics()
            assert stats.dropped_malformed == 0
            assert stats.handshake_failures == 0


async def test_client_hello_parts_arriving_in_reverse_order_complete(autojump_clock: Any):
    """Row 11: a later part of a ClientHello arriving first is kept too."""
    held: list[Any] = []

    def reverse_first_flight(dgram: Any) -> list[Any]:
        if dgram.src[0] != "127.0.0.66" or len(held) >= 2:
            return [dgram]
        held.append(dgram)
        return list(reversed(held)) if len(held) == 2 else []

    net = network()
    net.route_hook = reverse_first_flight
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            alpns = [*PADDING_ALPNS[:4], qp2p_trio.ALPN]  # two datagrams
            async with HostilePeer.open(
                net, "127.0.0.66", server.local_address, alpn=alpns
            ) as peer:
                assert await peer.start_handshake() == 2
                await peer.wait_for(peer.handshake_completed, limit=2)
            assert server.statistics().dropped_malformed == 0


async def test_dialer_gets_handshake_error_carrying_the_alert(autojump_clock: Any):
    """A listener speaking another ALPN: connect() fails at once with the peer's alert."""
    net = network()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory()
            server._driver._server_conf.alpn_protocols = ["another/1"]
            start = trio.current_time()
            with pytest.raises(qp2p_trio.HandshakeError) as info:
                await client.connect(server.local_address)
            assert trio.current_time() - start <= PROMPT
            err = info.value
            assert (err.error_code, err.tls_alert) == (0x178, 120)
            assert "0x178" in str(err)
            assert client.statistics().handshake_failures == 1
            assert server.statistics().handshake_failures == 1


async def test_wrong_identity_counts_as_handshake_failure(autojump_clock: Any):
    """A certificate that does not prove the expected node id is a handshake failure too."""
    net = network()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory()
            with pytest.raises(qp2p_trio.PeerIdentityError):
                await client.connect(server.local_address, node_id=client.node_id)
            assert client.statistics().handshake_failures == 1
            assert client.statistics().dropped_malformed == 0


def test_crypto_pair_is_what_the_lookalike_needs() -> None:
    """The junk above really does not decrypt with the Initial keys its DCID derives."""
    data = _initial_lookalike()
    pair = CryptoPair()
    pair.setup_initial(data[6:14], is_client=False, version=QuicProtocolVersion.VERSION_1)
    with pytest.raises(CryptoError):
        pair.decrypt_packet(data, 6 + 8 + 1 + 8 + 1 + 2, 0)
