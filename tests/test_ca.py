# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Issue 12, a network CA: node certificates, lifetimes, revocation.

The check itself (`_ca.check_node`) is tested sans-IO with explicit times;
the policy end to end on a `MemoryNetwork` under the virtual clock, with a
hostile aioquic peer for the chains an honest endpoint would never present.
"""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hostile_peer import HostilePeer

import qp2p_trio._driver
from qp2p_trio import (
    AdmissionRefused,
    CertificateAuthority,
    CloseCode,
    Config,
    Identity,
    load_certificate,
    save_certificate,
)
from qp2p_trio._ca import check_node
from qp2p_trio._certs import make_certificate
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

if TYPE_CHECKING:
    from pathlib import Path

    from aioquic import tls

DAY = 86400.0
NOW = float(int(time.time()))  # the CAs are used by live endpoints too
NO_RETRY = Config(retry=None)
CA = CertificateAuthority.generate("test network", now=NOW)
OTHER_CA = CertificateAuthority.generate("other network", now=NOW)
ALICE, BOB = Identity.generate(), Identity.generate()


def chain_of(identity: Identity, *extra: x509.Certificate) -> list[x509.Certificate]:
    return [make_certificate(identity, now=NOW)[0], *extra]


def check(chain: list[x509.Certificate], **kw: Any) -> str | None:
    args: dict[str, Any] = {"roots": [CA.certificate], "revoked": frozenset(), "now": NOW}
    args.update(kw)
    return check_node(chain, ALICE.node_id, **args)


# ------------------------------------------------------------ sans-IO check
def test_a_node_certificate_of_the_ca_admits() -> None:
    cert = CA.sign(ALICE.node_id, now=NOW, days=30)
    assert check(chain_of(ALICE, cert)) is None
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == str(ALICE.node_id)
    # Several roots: any one that signed it.
    assert check(chain_of(ALICE, cert), roots=[OTHER_CA.certificate, CA.certificate]) is None


@pytest.mark.parametrize(
    ("chain", "kw", "reason"),
    [
        (lambda: chain_of(ALICE), {}, "no node certificate"),
        (lambda: chain_of(ALICE, OTHER_CA.sign(ALICE.node_id, now=NOW)), {}, "not signed"),
        (lambda: chain_of(ALICE, CA.sign(BOB.node_id, now=NOW)), {}, "not for the node id"),
        (lambda: chain_of(ALICE, CA.certificate), {}, "not for the node id"),
        (
            lambda: chain_of(ALICE, CA.sign(ALICE.node_id, now=NOW, days=1)),
            {"now": NOW + 2 * DAY},
            "expired",
        ),
        (lambda: chain_of(ALICE, CA.sign(ALICE.node_id, now=NOW + DAY)), {}, "not valid yet"),
        (
            lambda: chain_of(ALICE, CA.sign(ALICE.node_id, now=NOW)),
            {"revoked": {ALICE.node_id}},
            "node id is revoked",
        ),
        (lambda: chain_of(ALICE, *[CA.sign(ALICE.node_id, now=NOW)] * 2), {}, "2 certificates"),
    ],
    ids=[
        "none",
        "other-ca",
        "other-node",
        "the-ca-itself",
        "expired",
        "not-yet",
        "revoked-id",
        "two",
    ],
)
def test_faults_are_named(chain: Any, kw: dict[str, Any], reason: str) -> None:
    fault = check(chain(), **kw)
    assert fault is not None
    assert reason in fault


def test_revoked_by_serial_and_the_ca_s_own_lifetime() -> None:
    cert = CA.sign(ALICE.node_id, now=NOW)
    fault = check(chain_of(ALICE, cert), revoked={cert.serial_number})
    assert fault is not None
    assert f"serial {cert.serial_number:#x}" in fault
    assert check(chain_of(ALICE, cert), revoked={cert.serial_number + 1}) is None
    # The node certificate is capped at the CA's end; past the CA's end nothing passes.
    short_ca = CertificateAuthority.generate(now=NOW, days=10)
    capped = short_ca.sign(ALICE.node_id, now=NOW, days=365)
    assert capped.not_valid_after_utc == short_ca.certificate.not_valid_after_utc
    assert check(chain_of(ALICE, capped), roots=[short_ca.certificate], now=NOW + 11 * DAY)


def test_forged_ca_signature_is_refused() -> None:
    """Same issuer name, another key: the signature does not verify."""
    impostor = CertificateAuthority.generate("test network", now=NOW)
    assert impostor.certificate.subject == CA.certificate.subject
    fault = check(chain_of(ALICE, impostor.sign(ALICE.node_id, now=NOW)))
    assert fault is not None
    assert "not signed by a trusted CA" in fault


def test_hostile_node_certificates_give_reasons_not_exceptions() -> None:
    """An ECDSA 'node certificate', a garbage signature: refusals, never a crash."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    ecdsa = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(CA.certificate.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(CA.certificate.not_valid_before_utc)
        .not_valid_after(CA.certificate.not_valid_after_utc)
        .sign(key, algorithm=hashes.SHA256())
    )
    assert check(chain_of(ALICE, ecdsa)) is not None


def test_config_and_trust_validate_their_inputs() -> None:
    leaf = CA.sign(ALICE.node_id, now=NOW)
    with pytest.raises(ValueError, match=r"trusted_cas.*not a CA certificate"):
        Config(trusted_cas=[leaf])
    with pytest.raises(TypeError, match="trusted_cas"):
        Config(trusted_cas=CA.certificate)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="revoked_certificates"):
        Config(revoked_certificates=["abc"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="node_certificate"):
        Config(node_certificate=b"pem")  # type: ignore[arg-type]
    config = Config(trusted_cas=[CA.certificate], revoked_certificates=[ALICE.node_id, 7])
    assert config.trusted_cas == (CA.certificate,)
    assert config.revoked_certificates == {ALICE.node_id, 7}


def test_ca_directory_round_trip(tmp_path: Path) -> None:
    CA.save(tmp_path / "ca")
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "ca").st_mode) == 0o700
    loaded = CertificateAuthority.load(tmp_path / "ca")
    assert loaded.certificate == CA.certificate
    with pytest.raises(FileExistsError):
        CA.save(tmp_path / "ca")  # never overwrites a CA key
    save_certificate(CA.sign(ALICE.node_id, now=NOW), tmp_path / "node.crt")
    assert load_certificate(tmp_path / "node.crt").issuer == CA.certificate.subject
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match="no PEM certificate"):
        load_certificate(tmp_path / "junk.crt")


# ------------------------------------------------------------ end to end
def member(identity: Identity, ca: CertificateAuthority = CA, **kw: Any) -> Config:
    now = time.time()
    return attrs.evolve(
        NO_RETRY,
        trusted_cas=[CA.certificate],
        node_certificate=ca.sign(identity.node_id, now=now + kw.pop("offset", 0.0), **kw),
    )


async def round_trip(client: Any, server: Any) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send, server.peer_address, b"hello")
        assert (await server.receive()).payload == b"hello"


async def test_members_connect_both_ways(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=21)
    a, b = Identity.generate(), Identity.generate()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(identity=a, config=member(a))
            client = await factory(identity=b, config=member(b))
            await round_trip(client, server)
            await round_trip(server, client)
            assert server.statistics().peers_refused == 0


def test_a_node_certificate_for_another_identity_is_a_config_error() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=22)
        with net.activate():
            async with open_endpoint_factory(net) as factory:
                await factory(identity=ALICE, config=member(BOB))

    with pytest.raises(ValueError, match="not for this endpoint's node id"):
        trio.run(main)


@pytest.mark.parametrize(
    "outsider",
    [
        lambda i: NO_RETRY,  # no node certificate (self-signed only)
        lambda i: member(i, OTHER_CA),  # another network's CA
        lambda i: member(i, days=1, offset=-2 * DAY),  # expired
        lambda i: member(i, offset=DAY),  # not valid yet
    ],
    ids=["self-signed", "other-ca", "expired", "not-yet-valid"],
)
async def test_outsiders_are_refused_and_not_retried(autojump_clock: Any, outsider: Any) -> None:
    net = MemoryNetwork(seed=23)
    a, x = Identity.generate(), Identity.generate()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(identity=a, config=member(a))
            # Retries on: a refusal must not be retried.
            client = await factory(
                identity=x, config=attrs.evolve(outsider(x), retry=Config().retry)
            )
            start = trio.current_time()
            with pytest.raises(AdmissionRefused) as info:
                await client.connect(server.peer_address)
            assert trio.current_time() - start < 1.0
            assert info.value.by_peer
            assert info.value.error_code == CloseCode.ADMISSION_REFUSED
            assert server.statistics().peers_refused == 1
            assert server.metrics().connection_refusals["ADMISSION_REFUSED"] == 1
            assert server.connections() == []


async def test_a_dialler_checks_the_listener_s_certificate(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=24)
    a, b = Identity.generate(), Identity.generate()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(identity=a)  # not a member, admits anybody
            client = await factory(identity=b, config=member(b))
            with pytest.raises(AdmissionRefused) as info:
                await client.connect(server.peer_address)
            assert not info.value.by_peer
            assert info.value.peer_id == a.node_id
            assert client.statistics().peers_refused == 1


async def test_an_expired_node_certificate_under_the_injected_wall_clock(
    autojump_clock: Any,
) -> None:
    """`Config.wall_clock` decides; a connection made in time is not cut at expiry."""
    epoch = time.time()

    def wall() -> float:
        return epoch + trio.current_time()

    net = MemoryNetwork(seed=25)
    a, b = Identity.generate(), Identity.generate()
    server_config = attrs.evolve(
        member(a), wall_clock=wall, keep_alive_interval=None, idle_timeout=30 * DAY
    )
    client_config = attrs.evolve(
        member(b, days=1),
        keep_alive_interval=None,
        idle_timeout=30 * DAY,
        wall_clock=wall,
        trusted_cas=(),
    )
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(identity=a, config=server_config)
            client = await factory(identity=b, config=client_config)
            conn = await client.connect(server.peer_address)
            await trio.sleep(2 * DAY)
            assert not conn.is_closed
            again = await factory(identity=b, config=client_config)  # a new connection
            with pytest.raises(AdmissionRefused):
                await again.connect(server.peer_address)
            assert server.statistics().peers_refused == 1


@pytest.mark.parametrize("case", ["other-node", "ca-itself", "many"])
async def test_hostile_chains_are_refused(autojump_clock: Any, case: str) -> None:
    """A CA-signed certificate of another node id, the CA's own, a long chain."""
    net = MemoryNetwork(seed=26)
    a, victim = Identity.generate(), Identity.generate()
    stolen = CA.sign(victim.node_id, now=time.time())
    extra = {"other-node": [stolen], "ca-itself": [CA.certificate], "many": [stolen] * 3}[case]
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(identity=a, config=member(a))

            def configure(context: tls.Context) -> None:
                context.certificate_chain = list(extra)

            async with HostilePeer.open(
                net, "127.0.5.5", server.local_address, configure_tls=configure
            ) as evil:
                await evil.handshake()
                await evil.wait_for(lambda: evil.close_code() is not None)
                assert evil.close_code() == CloseCode.ADMISSION_REFUSED
            assert server.statistics().peers_refused == 1
            # The endpoint goes on serving members.
            b = Identity.generate()
            await round_trip(await factory(identity=b, config=member(b)), server)


@pytest.mark.parametrize("by", ["node-id", "serial", "ca"])
async def test_revocation_cuts_live_connections(autojump_clock: Any, by: str) -> None:
    net = MemoryNetwork(seed=27)
    a, b, c = Identity.generate(), Identity.generate(), Identity.generate()
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(identity=a, config=member(a))
            client_config = member(b)
            client = await factory(identity=b, config=client_config)
            other = await factory(identity=c, config=member(c))
            conn = await client.connect(server.peer_address)
            await round_trip(other, server)
            if by == "node-id":
                server.trust.revoke(b.node_id)
            elif by == "serial":
                assert client_config.node_certificate is not None
                server.trust.revoke(client_config.node_certificate.serial_number)
            else:
                server.trust.trust_cas([OTHER_CA.certificate])
            closed = await conn.wait_closed()
            assert closed.by_peer
            assert closed.error_code == CloseCode.ADMISSION_REFUSED
            assert server.statistics().peers_refused == 1 + (by == "ca")
            with pytest.raises(AdmissionRefused):
                await client.connect(server.peer_address)
            if by != "ca":
                await round_trip(other, server)  # others stay
                server.trust.unrevoke(*server.trust.revoked)
                await round_trip(client, server)


async def test_trust_api_checks_and_reports(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=28)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            ep = await factory(config=Config(revoked_certificates=[5]))
            trust = ep.trust
            assert trust.trusted_cas == ()
            assert trust.revoked == {5}
            with pytest.raises(TypeError):
                trust.revoke(True)
            with pytest.raises(TypeError):
                trust.revoke("abc")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="not negative"):
                trust.revoke(-1)
            with pytest.raises(ValueError, match="not a CA certificate"):
                trust.trust_cas([CA.sign(ALICE.node_id, now=NOW)])
            trust.trust_cas([CA.certificate])
            trust.revoke(ALICE.node_id, 9)
            assert trust.trusted_cas == (CA.certificate,)
            assert trust.revoked == {5, 9, ALICE.node_id}
            trust.unrevoke(5, 9)
            assert trust.revoked == {ALICE.node_id}
            assert "cas=1 revoked=1" in repr(trust)
            trust.trust_cas([])
            assert trust.trusted_cas == ()


async def test_a_dialler_presenting_another_node_s_certificate_gets_admission_refused(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A qp2p_trio endpoint made to present a member's node certificate (not its own key)."""
    net = MemoryNetwork(seed=29)
    a, member_id, thief = Identity.generate(), Identity.generate(), Identity.generate()
    stolen = CA.sign(member_id.node_id, now=time.time())
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(identity=a, config=member(a))
            monkeypatch.setattr(qp2p_trio._driver, "own_chain", lambda config, node_id: (stolen,))
            client = await factory(
                identity=thief,
                config=attrs.evolve(NO_RETRY, retry=Config().retry, trusted_cas=[CA.certificate]),
            )
            start = trio.current_time()
            with pytest.raises(AdmissionRefused) as info:
                await client.connect(server.peer_address)
            assert info.value.by_peer
            assert trio.current_time() - start < 1.0  # not retried
            assert server.statistics().peers_refused == 1
