# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Tests of qp2p_trio._certs: the libp2p TLS certificate binding."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, TypeAlias

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings, strategies as st

from qp2p_trio._certs import (
    LIBP2P_EXTENSION_OID,
    _decode_signed_key,
    _DecodeError,
    _encode_signed_key,
    make_certificate,
    verify_certificate_chain,
)
from qp2p_trio._errors import PeerIdentityError
from qp2p_trio._identity import Identity, NodeId

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

CertKey: TypeAlias = (
    Ed25519PrivateKey | ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey | rsa.RSAPrivateKey
)

NOW = 1_800_000_000.0
PREFIX = b"libp2p-tls-handshake:"
PROTO_ED25519 = b"\x08\x01\x12\x20"
IDENTITY = Identity.generate()
OTHER = Identity.generate()
FUZZ_KEY = Ed25519PrivateKey.generate()

# --- helpers (an encoder independent of the module's own) -----------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def spki_of(key: CertKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signed_key(
    spki: bytes,
    *,
    identity: Identity = IDENTITY,
    proto: bytes | None = None,
    signature: bytes | None = None,
) -> bytes:
    if proto is None:
        proto = PROTO_ED25519 + identity.node_id.raw
    if signature is None:
        signature = identity.sign(PREFIX + spki)
    return tlv(0x30, tlv(0x04, proto) + tlv(0x04, signature))


def build(
    value: bytes | Callable[[bytes], bytes] | None = signed_key,
    *,
    key: CertKey | None = None,
    signing_key: CertKey | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
    critical: bool = False,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    not_before: float = NOW - 60,
    not_after: float = NOW + 60,
) -> x509.Certificate:
    """Build a self-signed certificate, well-formed unless told otherwise."""
    if key is None:
        key = Ed25519PrivateKey.generate()
    if signing_key is None:
        signing_key = key
    if algorithm is None and isinstance(
        signing_key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
    ):
        algorithm = hashes.SHA256()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(not_before, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(not_after, datetime.UTC))
    )
    if value is not None:
        raw = value(spki_of(key)) if callable(value) else value
        builder = builder.add_extension(
            x509.UnrecognizedExtension(LIBP2P_EXTENSION_OID, raw), critical=critical
        )
    for extension, is_critical in extensions:
        builder = builder.add_extension(extension, critical=is_critical)
    return builder.sign(signing_key, algorithm)  # type: ignore[arg-type]


def rejects(
    chain: Sequence[x509.Certificate],
    match: str,
    *,
    now: float = NOW,
    expected: NodeId | None = None,
) -> PeerIdentityError:
    with pytest.raises(PeerIdentityError, match=match) as info:
        verify_certificate_chain(chain, now=now, expected=expected)
    return info.value


# --- make_certificate -----------------------------------------------------


def test_round_trip() -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    assert verify_certificate_chain([cert], now=NOW) == IDENTITY.node_id
    assert verify_certificate_chain((cert,), now=NOW, expected=IDENTITY.node_id) == IDENTITY.node_id


def test_certificate_key_is_fresh_and_not_the_identity_key() -> None:
    cert, key = make_certificate(IDENTITY, now=NOW)
    cert2, key2 = make_certificate(IDENTITY, now=NOW)
    assert isinstance(key, Ed25519PrivateKey)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw != IDENTITY.node_id.raw
    assert (
        key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        != IDENTITY.private_bytes()
    )
    assert spki_of(key) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki_of(key) != spki_of(key2)
    assert cert.serial_number != cert2.serial_number


def test_certificate_fields() -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW + 0.75)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == [str(IDENTITY.node_id)]
    assert cert.issuer == cert.subject
    assert cert.not_valid_before_utc.timestamp() == NOW - 3600
    assert cert.not_valid_after_utc.timestamp() == NOW + 365 * 86400
    assert cert.signature_hash_algorithm is None  # Ed25519
    assert cert.serial_number > 0
    extension = cert.extensions.get_extension_for_oid(LIBP2P_EXTENSION_OID)
    assert extension.critical is False
    assert len(cert.extensions) == 1
    cert.verify_directly_issued_by(cert)  # a valid self-signature


def test_extension_value_is_the_der_signed_key() -> None:
    cert, key = make_certificate(IDENTITY, now=NOW)
    value = cert.extensions.get_extension_for_oid(LIBP2P_EXTENSION_OID).value
    assert isinstance(value, x509.UnrecognizedExtension)
    proto = PROTO_ED25519 + IDENTITY.node_id.raw
    assert value.value[:40] == b"\x30\x68\x04\x24" + proto
    assert value.value[40:42] == b"\x04\x40"
    assert len(value.value) == 2 + 0x68
    assert IDENTITY.node_id.verify(value.value[42:], PREFIX + spki_of(key))


def test_make_certificate_argument_checks() -> None:
    with pytest.raises(TypeError):
        make_certificate(IDENTITY.private_key, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        make_certificate(IDENTITY, now="now")  # type: ignore[arg-type]
    for bad in (float("nan"), float("inf"), 1e300):
        with pytest.raises(ValueError):
            make_certificate(IDENTITY, now=bad)


def test_encoder_uses_long_form_lengths() -> None:
    encoded = _encode_signed_key(b"a" * 200, b"b" * 3)
    assert encoded == tlv(0x30, tlv(0x04, b"a" * 200) + tlv(0x04, b"b" * 3))
    assert encoded[:6] == b"\x30\x81\xd0\x04\x81\xc8"
    assert _decode_signed_key(encoded) == (b"a" * 200, b"b" * 3)
    big = _encode_signed_key(b"x" * 70000, b"")
    assert big[:2] == b"\x30\x83"
    assert _decode_signed_key(big) == (b"x" * 70000, b"")


# --- verify_certificate_chain: chain and validity --------------------------


def test_expected_match_and_mismatch() -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    assert verify_certificate_chain([cert], now=NOW, expected=IDENTITY.node_id) == IDENTITY.node_id
    error = rejects([cert], "expected", expected=OTHER.node_id)
    assert error.expected == OTHER.node_id
    assert error.actual == IDENTITY.node_id
    assert str(IDENTITY.node_id) in str(error)


def test_other_failures_carry_expected_but_no_actual() -> None:
    error = rejects([build(None)], "missing", expected=OTHER.node_id)
    assert error.expected == OTHER.node_id
    assert error.actual is None
    error = rejects([build(None)], "missing")
    assert error.expected is None
    assert error.actual is None


@pytest.mark.parametrize("count", [0, 5, 40])
def test_one_to_four_certificates(count: int) -> None:
    chain = [make_certificate(IDENTITY, now=NOW)[0] for _ in range(min(count, 5))] * (
        count // 5 or 1
    )
    rejects(chain[:count], f"expected 1 to 4 certificates, got {count}")


def test_certificates_after_the_first_are_left_to_the_ca_check() -> None:
    """A node certificate (or anything) may follow; the first alone proves the node id."""
    cert, _ = make_certificate(IDENTITY, now=NOW)
    other, _ = make_certificate(OTHER, now=NOW)
    assert verify_certificate_chain([cert, other], now=NOW) == IDENTITY.node_id


def test_argument_checks() -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    with pytest.raises(TypeError):
        verify_certificate_chain([cert.public_bytes(serialization.Encoding.DER)], now=NOW)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        verify_certificate_chain([cert], now=NOW, expected=str(IDENTITY.node_id))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify_certificate_chain([cert], now=float("nan"))


def test_validity_window() -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    start = NOW - 3600
    end = NOW + 365 * 86400
    assert verify_certificate_chain([cert], now=start) == IDENTITY.node_id
    assert verify_certificate_chain([cert], now=end) == IDENTITY.node_id
    rejects([cert], "not valid at", now=start - 1)  # not yet valid
    rejects([cert], "not valid at", now=end + 1)  # expired
    rejects([cert], "not valid at", now=NOW + 400 * 86400)


def test_expired_and_not_yet_valid_built_certificates() -> None:
    expired = build(not_before=NOW - 7200, not_after=NOW - 3600)
    rejects([expired], "not valid at")
    future = build(not_before=NOW + 3600, not_after=NOW + 7200)
    rejects([future], "not valid at")
    assert verify_certificate_chain([build()], now=NOW) == IDENTITY.node_id


# --- self-signature and certificate key types ------------------------------


def test_invalid_self_signature() -> None:
    cert = build(key=Ed25519PrivateKey.generate(), signing_key=Ed25519PrivateKey.generate())
    rejects([cert], "self-signature is invalid")


def test_invalid_ecdsa_self_signature() -> None:
    cert = build(
        key=ec.generate_private_key(ec.SECP256R1()),
        signing_key=ec.generate_private_key(ec.SECP256R1()),
    )
    rejects([cert], "self-signature is invalid")


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [
        (ec.SECP256R1(), hashes.SHA256()),
        (ec.SECP384R1(), hashes.SHA384()),
        (ec.SECP256R1(), hashes.SHA512()),
    ],
)
def test_ecdsa_certificate_keys_are_supported(
    curve: ec.EllipticCurve, algorithm: hashes.HashAlgorithm
) -> None:
    cert = build(key=ec.generate_private_key(curve), algorithm=algorithm)
    assert verify_certificate_chain([cert], now=NOW) == IDENTITY.node_id


def test_ecdsa_with_short_hash_is_refused() -> None:
    cert = build(key=ec.generate_private_key(ec.SECP256R1()), algorithm=hashes.SHA224())
    rejects([cert], "signature algorithm")


def test_unsupported_curve_is_refused() -> None:
    cert = build(key=ec.generate_private_key(ec.SECP256K1()))
    rejects([cert], "unsupported elliptic curve")


@pytest.mark.parametrize("kind", ["ed448", "rsa"])
def test_other_certificate_key_types_are_refused(kind: str) -> None:
    key: CertKey
    if kind == "ed448":
        key = ed448.Ed448PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rejects([build(key=key)], "unsupported certificate key type")


# --- extensions ------------------------------------------------------------


def test_missing_extension() -> None:
    rejects([build(None)], r"libp2p extension \(1\.3\.6\.1\.4\.1\.53594\.1\.1\) is missing")


def test_unknown_critical_extension_is_refused() -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    rejects([build(extensions=[(unknown, True)])], r"unknown critical extension 1\.2\.3\.4\.5")


def test_unknown_critical_known_type_extension_is_refused() -> None:
    # Known to cryptography but not on our list of understood critical extensions.
    ski = x509.SubjectKeyIdentifier(b"\x01" * 20)
    rejects([build(extensions=[(ski, True)])], "unknown critical extension")


def test_unknown_non_critical_extension_is_ignored() -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    cert = build(extensions=[(unknown, False)])
    assert verify_certificate_chain([cert], now=NOW) == IDENTITY.node_id


def test_allowed_critical_extensions() -> None:
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        ),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), True),
        (x509.SubjectAlternativeName([x509.DNSName("libp2p")]), True),
    ]
    cert = build(extensions=extensions, critical=True)
    assert verify_certificate_chain([cert], now=NOW) == IDENTITY.node_id


def patch_and_resign(
    cert: x509.Certificate, key: Ed25519PrivateKey, old: bytes, new: bytes, count: int = -1
) -> x509.Certificate:
    """Replace ``old`` by ``new`` (same length) in a certificate and re-sign it.

    Replaces ``count`` occurrences in the TBSCertificate and all of them in
    the outer signatureAlgorithm.
    """
    assert len(old) == len(new)
    tbs = cert.tbs_certificate_bytes
    new_tbs = tbs.replace(old, new, count)
    assert new_tbs != tbs
    der = cert.public_bytes(serialization.Encoding.DER)
    assert len(cert.signature) == 64
    assert der.endswith(cert.signature)
    start = der.index(tbs)
    head, trailer = der[:start], der[start + len(tbs) : -64]
    return x509.load_der_x509_certificate(
        head + new_tbs + trailer.replace(old, new) + key.sign(new_tbs)
    )


def test_duplicate_extension_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    value = signed_key(spki_of(key))
    twin = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.2"), value)
    cert = build(value, key=key, extensions=[(twin, False)])
    # Rename the twin's OID to ours, giving two libp2p extensions.
    # 1.3.6.1.4.1.53594.1.x: 53594 is 0x83 0xa2 0x5a in base 128.
    tail = b"\x2b\x06\x01\x04\x01\x83\xa2\x5a\x01"
    patched = patch_and_resign(cert, key, tail + b"\x02", tail + b"\x01")
    rejects([patched], r"malformed extensions \(Duplicate 1\.3\.6\.1\.4\.1\.53594\.1\.1")


def test_ed25519_key_with_another_signature_algorithm_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    cert = build(key=key)
    # The Ed25519 OID also names the key in subjectPublicKeyInfo, which comes
    # after the TBSCertificate's signature field: patch only the first.
    ed25519_oid, ed448_oid = b"\x06\x03\x2b\x65\x70", b"\x06\x03\x2b\x65\x71"
    patched = patch_and_resign(cert, key, ed25519_oid, ed448_oid, count=1)
    assert isinstance(patched.public_key(), Ed25519PublicKey)
    assert patched.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ED448
    rejects([patched], r"Ed25519 key with signature algorithm 1\.3\.101\.113")


# --- the SignedKey binding -------------------------------------------------


def test_signature_by_another_identity() -> None:
    def value(spki: bytes) -> bytes:
        return signed_key(spki, signature=OTHER.sign(PREFIX + spki))

    rejects([build(value)], "signature")


def test_signature_over_another_spki() -> None:
    def value(spki: bytes) -> bytes:
        return signed_key(
            spki, signature=IDENTITY.sign(PREFIX + spki_of(Ed25519PrivateKey.generate()))
        )

    rejects([build(value)], "signature")


def test_signature_without_the_prefix() -> None:
    def value(spki: bytes) -> bytes:
        return signed_key(spki, signature=IDENTITY.sign(spki))

    rejects([build(value)], "signature")


def test_extension_copied_from_another_certificate() -> None:
    original, _ = make_certificate(IDENTITY, now=NOW)
    stolen = original.extensions.get_extension_for_oid(LIBP2P_EXTENSION_OID).value
    assert isinstance(stolen, x509.UnrecognizedExtension)
    rejects([build(stolen.value)], "signature", expected=IDENTITY.node_id)


def test_truncated_signature() -> None:
    def value(spki: bytes) -> bytes:
        return signed_key(spki, signature=IDENTITY.sign(PREFIX + spki)[:63])

    rejects([build(value)], "signature")


def test_critical_libp2p_extension_is_accepted() -> None:
    assert verify_certificate_chain([build(critical=True)], now=NOW) == IDENTITY.node_id


def _good(spki: bytes) -> tuple[bytes, bytes]:
    proto = PROTO_ED25519 + IDENTITY.node_id.raw
    return tlv(0x04, proto), tlv(0x04, IDENTITY.sign(PREFIX + spki))


def _seq_long_form(spki: bytes) -> bytes:
    a, b = _good(spki)
    return b"\x30\x81" + bytes([len(a + b)]) + a + b  # content < 128: long form not minimal


def _seq_leading_zero(spki: bytes) -> bytes:
    a, b = _good(spki)
    return b"\x30\x82\x00" + bytes([len(a + b)]) + a + b


def _octet_long_form(spki: bytes) -> bytes:
    a, b = _good(spki)
    a = b"\x04\x81" + a[1:]  # the 36-byte OCTET STRING with a long-form length
    return tlv(0x30, a + b)


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "trailing byte": lambda spki: tlv(0x30, b"".join(_good(spki))) + b"\x00",
    "trailing sequence": lambda spki: tlv(0x30, b"".join(_good(spki))) * 2,
    "SET instead of SEQUENCE": lambda spki: tlv(0x31, b"".join(_good(spki))),
    "BIT STRING instead of OCTET STRING": lambda spki: tlv(
        0x30, tlv(0x03, b"\x00" + PROTO_ED25519 + IDENTITY.node_id.raw) + _good(spki)[1]
    ),
    "constructed OCTET STRING": lambda spki: tlv(
        0x30, b"\x24" + _good(spki)[0][1:] + _good(spki)[1]
    ),
    "non-minimal long-form length": _seq_long_form,
    "length with leading zero": _seq_leading_zero,
    "non-minimal inner length": _octet_long_form,
    "indefinite length": lambda spki: b"\x30\x80" + b"".join(_good(spki)) + b"\x00\x00",
    "reserved length byte": lambda spki: b"\x30\xff" + b"".join(_good(spki)),
    "truncated": lambda spki: tlv(0x30, b"".join(_good(spki)))[:-1],
    "length too long": lambda spki: b"\x30\x84\x7f\xff\xff\xff" + b"".join(_good(spki)),
    "one element": lambda spki: tlv(0x30, _good(spki)[0]),
    "three elements": lambda spki: tlv(0x30, b"".join(_good(spki)) + tlv(0x04, b"")),
    "integer element": lambda spki: tlv(0x30, _good(spki)[0] + b"\x02\x01\x00"),
    "high tag number": lambda spki: b"\x1f\x81\x00" + b"".join(_good(spki)),
    "empty": lambda spki: b"",
    "only a tag": lambda spki: b"\x30",
    "empty sequence": lambda spki: b"\x30\x00",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_signed_key_der(case: str) -> None:
    rejects([build(MALFORMED[case])], "malformed libp2p extension")


@pytest.mark.parametrize(
    ("key_type", "name"), [(0, "RSA"), (2, "Secp256k1"), (3, "ECDSA"), (9, "unknown key type 9")]
)
def test_non_ed25519_host_key_is_refused(key_type: int, name: str) -> None:
    def value(spki: bytes) -> bytes:
        proto = bytes([0x08, key_type, 0x12, 0x21]) + b"\x02" + bytes(32)
        return signed_key(spki, proto=proto, signature=b"\x00" * 64)

    error = rejects([build(value)], f"only Ed25519 host keys are supported, got {name}")
    assert error.actual is None


MALFORMED_PROTO: dict[str, bytes] = {
    "empty": b"",
    "data first": b"\x12\x20" + bytes(32) + b"\x08\x01",
    "short key": b"\x08\x01\x12\x1f" + bytes(31),
    "long key": b"\x08\x01\x12\x21" + bytes(33),
    "length mismatch": b"\x08\x01\x12\x20" + bytes(31),
    "trailing field": PROTO_ED25519 + bytes(32) + b"\x18\x00",
    "no data": b"\x08\x01",
    "non-minimal type varint": b"\x08\x81\x00\x12\x20" + bytes(32),
    "truncated varint": b"\x08\x81",
    "overlong varint": b"\x08" + b"\xff" * 11,
    "wrong wire type": b"\x09\x01\x12\x20" + bytes(32),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_PROTO))
def test_malformed_host_key_protobuf(case: str) -> None:
    proto = MALFORMED_PROTO[case]

    def value(spki: bytes) -> bytes:
        return signed_key(spki, proto=proto)

    rejects([build(value)], "malformed libp2p extension")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (tlv(0x30, tlv(0x04, b"") + tlv(0x04, b"")) + b"\x00", "1 trailing bytes"),
        (tlv(0x30, tlv(0x04, b"") * 3), "more than two elements"),
        (b"\x30\x85" + b"\x01" * 5, "length of 5 bytes is too large"),
        (b"\x3f\x81\x00\x00", "multi-byte DER tag"),
        (b"\x30\x02\x04", "truncated"),
        (b"\x30\x82\x01", "length bytes missing"),
    ],
)
def test_decoder_messages(data: bytes, message: str) -> None:
    with pytest.raises(_DecodeError, match=message):
        _decode_signed_key(data)


def test_decoder_accepts_empty_fields() -> None:
    assert _decode_signed_key(tlv(0x30, tlv(0x04, b"") + tlv(0x04, b""))) == (b"", b"")


def test_decoder_non_minimal_lengths_of_long_content() -> None:
    key, sig = b"k" * 150, b"s" * 64
    content = tlv(0x04, key) + tlv(0x04, sig)
    assert content[:3] == b"\x04\x81\x96"  # the first field needs a long-form length
    assert len(content) == 0xDB
    assert _decode_signed_key(b"\x30\x81\xdb" + content) == (key, sig)
    with pytest.raises(_DecodeError, match="leading zero"):
        _decode_signed_key(b"\x30\x82\x00\xdb" + content)
    inner = b"\x04\x82\x00\x96" + key + tlv(0x04, sig)
    with pytest.raises(_DecodeError, match="leading zero"):
        _decode_signed_key(b"\x30\x81" + bytes([len(inner)]) + inner)
    inner = tlv(0x04, key) + b"\x04\x81\x40" + sig
    with pytest.raises(_DecodeError, match="below 128"):
        _decode_signed_key(b"\x30\x81" + bytes([len(inner)]) + inner)


# --- robustness ------------------------------------------------------------


FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _check_only_peer_identity_error(cert: x509.Certificate) -> None:
    try:
        result = verify_certificate_chain([cert], now=NOW)
    except PeerIdentityError:
        return
    assert result == IDENTITY.node_id


@FUZZ_SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_extension_value_only_raises_peer_identity_error(value: bytes) -> None:
    _check_only_peer_identity_error(build(value, key=FUZZ_KEY))


@FUZZ_SETTINGS
@given(proto=st.binary(max_size=60), signature=st.binary(max_size=80))
def test_arbitrary_signed_key_fields_only_raise_peer_identity_error(
    proto: bytes, signature: bytes
) -> None:
    cert = build(tlv(0x30, tlv(0x04, proto) + tlv(0x04, signature)), key=FUZZ_KEY)
    with pytest.raises(PeerIdentityError):
        verify_certificate_chain([cert], now=NOW)


_VALID_DER = make_certificate(IDENTITY, now=NOW)[0].public_bytes(serialization.Encoding.DER)


@FUZZ_SETTINGS
@given(st.integers(0, len(_VALID_DER) - 1), st.integers(1, 255))
def test_corrupted_certificate_only_raises_peer_identity_error(position: int, flip: int) -> None:
    der = bytearray(_VALID_DER)
    der[position] ^= flip
    try:
        cert = x509.load_der_x509_certificate(bytes(der))
    except Exception:  # ValueError, x509.InvalidVersion, or a warning made an error
        return  # the certificate never reaches us
    # Success is possible only where cryptography ignores the change (e.g. the
    # unused-bits octet of the signature BIT STRING); then the id is unchanged.
    _check_only_peer_identity_error(cert)


def test_result_is_a_node_id() -> None:
    cert, _ = make_certificate(IDENTITY, now=NOW)
    result = verify_certificate_chain([cert], now=NOW)
    assert type(result) is NodeId
