# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Issue 15: verified peer certificate chains are remembered (`_certs.verify_peer_chain`).

A chain seen before byte for byte skips the signature checks, and nothing
else changes: its validity period and the expected node id are checked
every time, rejected chains are never remembered, the cache is bounded,
and a peer presenting a remembered certificate without its key still
fails the handshake (the TLS CertificateVerify is checked every time).
"""

from __future__ import annotations

from typing import Any

import pytest
from aioquic import tls
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hostile_peer import HostilePeer, honest_round_trip

from qp2p_trio import _certs
from qp2p_trio._certs import VERIFIED_CACHE_SIZE, make_certificate, verify_peer_chain
from qp2p_trio._errors import PeerIdentityError
from qp2p_trio._identity import Identity
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

NOW = 1_800_000_000.0
IDENTITY = Identity.generate()
OTHER = Identity.generate()


@pytest.fixture(autouse=True)
def empty_cache() -> Any:
    saved = dict(_certs._verified)
    _certs._verified.clear()
    yield
    _certs._verified.clear()
    _certs._verified.update(saved)


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the full `verify_certificate_chain`."""
    calls: list[int] = []
    full = _certs.verify_certificate_chain

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return full(*args, **kwargs)

    monkeypatch.setattr(_certs, "verify_certificate_chain", counting)
    return calls


def reparsed(certificate: x509.Certificate) -> x509.Certificate:
    """The same bytes as a new object (as aioquic parses each handshake's)."""
    return x509.load_der_x509_certificate(certificate.public_bytes(Encoding.DER))


def test_a_chain_seen_before_skips_the_full_check(full_checks: list[int]) -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    assert verify_peer_chain([cert], now=NOW) == IDENTITY.node_id
    assert len(full_checks) == 1
    for i in range(3):
        got = verify_peer_chain([reparsed(cert)], now=NOW + i, expected=IDENTITY.node_id)
        assert got == IDENTITY.node_id
    assert len(full_checks) == 1
    # A longer chain with the same leaf is another chain.
    other_cert, _ = make_certificate(OTHER, now=NOW)
    with pytest.raises(PeerIdentityError):  # what follows the leaf is judged elsewhere
        verify_peer_chain([cert, other_cert], now=NOW, expected=OTHER.node_id)
    assert len(full_checks) == 2


def test_a_hit_still_checks_the_expected_node_id(full_checks: list[int]) -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    verify_peer_chain([cert], now=NOW)
    with pytest.raises(PeerIdentityError) as info:
        verify_peer_chain([cert], now=NOW, expected=OTHER.node_id)
    assert info.value.actual == IDENTITY.node_id
    assert info.value.expected == OTHER.node_id
    assert len(full_checks) == 1


def test_a_hit_still_checks_the_validity_period(full_checks: list[int]) -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    verify_peer_chain([cert], now=NOW)
    after = cert.not_valid_after_utc.timestamp() + 1
    with pytest.raises(PeerIdentityError, match="not valid at"):
        verify_peer_chain([cert], now=after)
    before = cert.not_valid_before_utc.timestamp() - 1
    with pytest.raises(PeerIdentityError, match="not valid at"):
        verify_peer_chain([cert], now=before)
    # Forgotten once rejected; checked in full again when valid.
    assert verify_peer_chain([cert], now=NOW) == IDENTITY.node_id
    assert len(full_checks) == 4


def test_rejected_chains_are_never_remembered(full_checks: list[int]) -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    der = bytearray(cert.public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # the self-signature no longer verifies
    tampered = x509.load_der_x509_certificate(bytes(der))
    for _ in range(3):
        with pytest.raises(PeerIdentityError, match="self-signature"):
            verify_peer_chain([tampered], now=NOW)
    assert len(full_checks) == 3
    assert not _certs._verified
    with pytest.raises(PeerIdentityError, match="expected 1 to"):
        verify_peer_chain([], now=NOW)
    assert not _certs._verified


def test_the_cache_is_bounded_least_recently_used_first(full_checks: list[int]) -> None:
    certs = [make_certificate(IDENTITY, now=NOW)[0] for _ in range(VERIFIED_CACHE_SIZE + 5)]
    first = certs[0]
    verify_peer_chain([first], now=NOW)
    for cert in certs[1:VERIFIED_CACHE_SIZE]:
        verify_peer_chain([cert], now=NOW)
    assert len(_certs._verified) == VERIFIED_CACHE_SIZE
    verify_peer_chain([first], now=NOW)  # used again: now the most recent
    for cert in certs[VERIFIED_CACHE_SIZE:]:
        verify_peer_chain([cert], now=NOW)
    assert len(_certs._verified) == VERIFIED_CACHE_SIZE
    assert (first,) in _certs._verified
    assert (certs[1],) not in _certs._verified  # the least recently used went first
    checks = len(full_checks)
    verify_peer_chain([first], now=NOW)
    assert len(full_checks) == checks


async def test_a_remembered_certificate_without_its_key_fails_the_handshake(
    autojump_clock: Any,
) -> None:
    """A hostile peer replays a certificate the server verified before, with its own key."""
    net = MemoryNetwork(seed=151)
    identity = Identity.generate()
    presented: list[Any] = []

    def remember(context: tls.Context) -> None:
        presented.append(context.certificate)

    def replay(context: tls.Context) -> None:
        # The certificate's bytes, but this peer's own (other) private key.
        context.certificate = presented[0]

    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            honest = await factory()
            async with HostilePeer.open(
                net, "127.0.2.1", server.local_address, identity=identity, configure_tls=remember
            ) as first:
                await first.handshake()
                await first.wait_for(lambda: len(_certs._verified) == 1)
            assert _certs._verified[(presented[0],)][0] == identity.node_id
            async with HostilePeer.open(
                net, "127.0.2.2", server.local_address, identity=identity, configure_tls=replay
            ) as thief:
                await thief.start_handshake()
                await thief.wait_for(lambda: thief.close_code() is not None)
                # (The client's side of TLS 1.3 completes before the server
                # checks its CertificateVerify.)  A TLS alert: CRYPTO_ERROR (0x100 + alert), here decrypt_error (51).
                assert thief.close_code() == 0x100 + tls.AlertDecryptError.description
            assert server.statistics().handshake_failures >= 1
            await honest_round_trip(honest, server)
