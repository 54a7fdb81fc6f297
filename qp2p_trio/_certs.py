# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""TLS certificates that bind a node id, as in the libp2p TLS handshake spec.

Each side of a connection presents exactly one self-signed X.509 certificate.
Its key is an ephemeral key, unrelated to the node's `Identity`; the binding
to the identity is an extension (OID ``1.3.6.1.4.1.53594.1.1``) holding the
DER encoding of::

    SignedKey ::= SEQUENCE {
        publicKey OCTET STRING,  -- protobuf PublicKey {Type = Ed25519, Data = key}
        signature OCTET STRING   -- identity signature over
                                 -- "libp2p-tls-handshake:" || certificate SPKI (DER)
    }

This module is sans-IO and reads no clock: the current time is always passed
in as ``now``, in Unix seconds.
"""

from __future__ import annotations

import datetime
import math
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from ._errors import PeerIdentityError
from ._identity import Identity, NodeId

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "LIBP2P_EXTENSION_OID",
    "MAX_CHAIN",
    "RENEWAL_MARGIN",
    "VERIFIED_CACHE_SIZE",
    "make_certificate",
    "renewal_window",
    "verify_certificate_chain",
    "verify_peer_chain",
]

LIBP2P_EXTENSION_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.1")
"""The OID of the libp2p Public Key Extension that carries the `SignedKey`."""

_SIGNATURE_PREFIX: Final = b"libp2p-tls-handshake:"
# Protobuf PublicKey header for an Ed25519 key: field 1 (Type, varint) = 1,
# field 2 (Data, bytes) of length 32.
_ED25519_PROTOBUF_PREFIX: Final = b"\x08\x01\x12\x20"
_ED25519_KEY_SIZE: Final = 32
_KEY_TYPE_NAMES: Final = {0: "RSA", 1: "Ed25519", 2: "Secp256k1", 3: "ECDSA"}

#: Certificates a peer may present: its own, then (with a network CA) its
#: node certificate; a little room for more, which `_ca` judges.
MAX_CHAIN: Final = 4

_BACKDATE_SECONDS: Final = 3600.0
_VALIDITY_SECONDS: Final = 365 * 86400.0
#: Seconds before its expiry at which we stop presenting a certificate of
#: ours to new connections and mint a new one (see `renewal_window`): a peer
#: whose clock runs up to this much ahead still accepts it.
RENEWAL_MARGIN: Final = 30 * 86400.0

_ALLOWED_CRITICAL: Final = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        LIBP2P_EXTENSION_OID,
    }
)
_ECDSA_HASHES: Final[dict[x509.ObjectIdentifier, type[hashes.HashAlgorithm]]] = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: hashes.SHA256,
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: hashes.SHA384,
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: hashes.SHA512,
}
_ECDSA_CURVES: Final = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

#: Peer certificate chains remembered as verified (`verify_peer_chain`), per process.
VERIFIED_CACHE_SIZE: Final = 256

_TAG_SEQUENCE: Final = 0x30
_TAG_OCTET_STRING: Final = 0x04
_TAG_CONTEXT_0: Final = 0xA0  # [0] EXPLICIT, constructed: the TBSCertificate version


# --- DER -----------------------------------------------------------------


class _DecodeError(Exception):
    """Malformed DER or protobuf; never escapes this module."""


class _UnsupportedKeyType(Exception):
    """A well-formed protobuf host key of a type other than Ed25519."""

    def __init__(self, key_type: int) -> None:
        super().__init__(key_type)
        self.key_type = key_type


def _der_element(tag: int, content: bytes) -> bytes:
    """Encode one DER element with a single-byte tag."""
    length = len(content)
    if length < 0x80:
        header = bytes([tag, length])
    else:
        length_bytes = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([tag, 0x80 | len(length_bytes)]) + length_bytes
    return header + content


def _encode_signed_key(public_key: bytes, signature: bytes) -> bytes:
    """Return the DER encoding of ``SignedKey``."""
    return _der_element(
        _TAG_SEQUENCE,
        _der_element(_TAG_OCTET_STRING, public_key) + _der_element(_TAG_OCTET_STRING, signature),
    )


def _read_element(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read the header of the DER element at ``data[pos:end]``, strictly.

    Returns:
        ``(tag, content_start, content_end)``.

    Raises:
        _DecodeError: on a truncated element, a multi-byte tag, an indefinite
            length or a length not in its minimal encoding.
    """
    if pos >= end:
        raise _DecodeError("truncated DER: expected a tag")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _DecodeError(f"unsupported multi-byte DER tag at offset {pos}")
    pos += 1
    if pos >= end:
        raise _DecodeError("truncated DER: expected a length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise _DecodeError("indefinite length, which DER forbids")
    else:
        count = first & 0x7F
        if count > 4:
            raise _DecodeError(f"length of {count} bytes is too large")
        if count > end - pos:
            raise _DecodeError("truncated DER: length bytes missing")
        length_bytes = data[pos : pos + count]
        pos += count
        if length_bytes[0] == 0:
            raise _DecodeError("length has leading zero bytes (not minimal DER)")
        length = int.from_bytes(length_bytes, "big")
        if length < 0x80:
            raise _DecodeError("long-form length below 128 (not minimal DER)")
    if length > end - pos:
        raise _DecodeError(f"truncated DER: element needs {length} bytes, {end - pos} remain")
    return tag, pos, pos + length


def _decode_signed_key(value: bytes) -> tuple[bytes, bytes]:
    """Decode ``SignedKey`` strictly.

    Returns:
        ``(public_key, signature)``, the contents of the two OCTET STRINGs.
    """
    tag, start, stop = _read_element(value, 0, len(value))
    if tag != _TAG_SEQUENCE:
        raise _DecodeError(f"expected a SEQUENCE (tag 0x30), got tag {tag:#04x}")
    if stop != len(value):
        raise _DecodeError(f"{len(value) - stop} trailing bytes after the SEQUENCE")
    fields: list[bytes] = []
    pos = start
    while pos < stop:
        if len(fields) == 2:
            raise _DecodeError("more than two elements in the SEQUENCE")
        tag, content_start, pos = _read_element(value, pos, stop)
        if tag != _TAG_OCTET_STRING:
            raise _DecodeError(f"expected an OCTET STRING (tag 0x04), got tag {tag:#04x}")
        fields.append(value[content_start:pos])
    if len(fields) != 2:
        raise _DecodeError(f"expected two OCTET STRINGs, got {len(fields)}")
    return fields[0], fields[1]


def _subject_public_key_info(tbs: bytes) -> bytes:
    """Return the raw DER ``SubjectPublicKeyInfo`` of a ``TBSCertificate``."""
    tag, pos, stop = _read_element(tbs, 0, len(tbs))
    if tag != _TAG_SEQUENCE or stop != len(tbs):
        raise _DecodeError("TBSCertificate is not a single SEQUENCE")
    tag, _, after = _read_element(tbs, pos, stop)
    if tag == _TAG_CONTEXT_0:  # optional version
        pos = after
    # serialNumber, signature, issuer, validity, subject
    for _ in range(5):
        _, _, pos = _read_element(tbs, pos, stop)
    tag, _, after = _read_element(tbs, pos, stop)
    if tag != _TAG_SEQUENCE:
        raise _DecodeError("subjectPublicKeyInfo is not a SEQUENCE")
    return tbs[pos:after]


# --- protobuf ------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a protobuf varint (at most 10 bytes); return ``(value, new_pos)``."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise _DecodeError("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise _DecodeError("protobuf varint longer than 10 bytes")


def _decode_ed25519_public_key(message: bytes) -> bytes:
    """Decode a libp2p protobuf ``PublicKey`` that must hold an Ed25519 key.

    Returns:
        The 32 raw key bytes.

    Raises:
        _DecodeError: if the message is malformed (or not in the canonical
            encoding).
        _UnsupportedKeyType: if it holds another key type.
    """
    if not message or message[0] != 0x08:
        raise _DecodeError("the host public key does not start with its Type field")
    key_type, _ = _read_varint(message, 1)
    if key_type != 1:
        raise _UnsupportedKeyType(key_type)
    if len(message) != len(_ED25519_PROTOBUF_PREFIX) + _ED25519_KEY_SIZE or not message.startswith(
        _ED25519_PROTOBUF_PREFIX
    ):
        raise _DecodeError(
            "the host public key is not the canonical protobuf encoding of a 32-byte Ed25519 key"
        )
    return message[len(_ED25519_PROTOBUF_PREFIX) :]


# --- public API ----------------------------------------------------------


def _timestamp_to_datetime(seconds: float) -> datetime.datetime:
    try:
        return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"time {seconds!r} is out of range") from exc


def _check_now(now: float) -> None:
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise TypeError(f"now must be a float of Unix seconds, not {type(now).__name__}")
    if not math.isfinite(now):
        raise ValueError(f"now must be finite, got {now!r}")


def make_certificate(
    identity: Identity, *, now: float
) -> tuple[x509.Certificate, Ed25519PrivateKey]:
    """Create a self-signed TLS certificate that proves ``identity``.

    Each call generates a fresh ephemeral Ed25519 certificate key (never the
    identity key).  The certificate carries the libp2p extension (not
    critical) binding the certificate key to ``identity``, has a random serial
    number, subject and issuer ``CN=<node id>``, and is valid from an hour
    before ``now`` until 365 days after it.

    Args:
        identity: the node's long-term identity.
        now: the current time in Unix seconds.

    Returns:
        ``(certificate, certificate_private_key)``, ready for the TLS layer.

    Raises:
        TypeError: if ``identity`` is not an `Identity` or ``now`` not a number.
        ValueError: if ``now`` is not finite or out of range for a certificate.
    """
    if not isinstance(identity, Identity):
        raise TypeError(f"identity must be an Identity, not {type(identity).__name__}")
    _check_now(now)
    not_before = _timestamp_to_datetime(now - _BACKDATE_SECONDS)
    not_after = _timestamp_to_datetime(now + _VALIDITY_SECONDS)

    certificate_key = Ed25519PrivateKey.generate()
    spki = certificate_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    node_id = identity.node_id
    signed_key = _encode_signed_key(
        _ED25519_PROTOBUF_PREFIX + node_id.raw,
        identity.sign(_SIGNATURE_PREFIX + spki),
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(node_id))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(certificate_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.UnrecognizedExtension(LIBP2P_EXTENSION_OID, signed_key), critical=False)
        .sign(certificate_key, algorithm=None)
    )
    return certificate, certificate_key


def renewal_window(certificate: x509.Certificate) -> tuple[float, float]:
    """Return when a certificate of ours may be presented to new connections.

    From the start of its validity until `RENEWAL_MARGIN` before its end, in
    Unix seconds.  Outside that window (also when the wall clock went back
    before the certificate's start) a long-running endpoint mints a fresh
    one with `make_certificate`; connections already made keep theirs.
    """
    return (
        certificate.not_valid_before_utc.timestamp(),
        certificate.not_valid_after_utc.timestamp() - RENEWAL_MARGIN,
    )


def verify_certificate_chain(
    chain: Sequence[x509.Certificate], *, now: float, expected: NodeId | None = None
) -> NodeId:
    """Check a peer's certificate chain and return the node id it proves.

    The chain's first certificate must be self-signed, valid at ``now``,
    with no unknown critical extension, and its libp2p extension must carry a
    valid signature by an Ed25519 host key over the certificate's public key.
    Up to `MAX_CHAIN` - 1 further certificates (a node certificate signed by
    a network CA) may follow: they are not judged here (see `_ca`).
    Supported certificate keys are Ed25519 and ECDSA on P-256, P-384 and
    P-521.

    Args:
        chain: the peer's certificates, leaf first.
        now: the current time in Unix seconds.
        expected: the node id the peer must prove, or ``None`` to accept any.

    Returns:
        The peer's node id.

    Raises:
        PeerIdentityError: if the chain does not prove a node id, or proves
            one other than ``expected``.  Nothing else is raised for any
            certificate content.
        TypeError: if the arguments have the wrong types.
        ValueError: if ``now`` is not finite.
    """
    _check_now(now)
    if expected is not None and not isinstance(expected, NodeId):
        raise TypeError(f"expected must be a NodeId or None, not {type(expected).__name__}")
    certificates = list(chain)
    for certificate in certificates:
        if not isinstance(certificate, x509.Certificate):
            raise TypeError(f"chain holds a {type(certificate).__name__}, not x509.Certificate")

    def fail(message: str) -> PeerIdentityError:
        return PeerIdentityError(f"peer certificate rejected: {message}", expected=expected)

    if not 1 <= len(certificates) <= MAX_CHAIN:
        raise fail(f"expected 1 to {MAX_CHAIN} certificates, got {len(certificates)}")
    certificate = certificates[0]

    _check_validity(certificate, now, fail)
    _check_self_signature(certificate, fail)
    actual = _proven_node_id(certificate, fail)

    if expected is not None and actual != expected:
        raise PeerIdentityError(
            f"peer proved node id {actual}, expected {expected}",
            expected=expected,
            actual=actual,
        )
    return actual


#: Chains that passed `verify_certificate_chain` (every certificate, compared
#: by its DER bytes) -> the node id they prove and the leaf's validity period.
#: Insertion order is recency order: a hit moves its entry to the end.
_verified: dict[tuple[x509.Certificate, ...], tuple[NodeId, float, float]] = {}


def verify_peer_chain(
    chain: Sequence[x509.Certificate], *, now: float, expected: NodeId | None = None
) -> NodeId:
    """`verify_certificate_chain`, remembering the chains that passed.

    The verdict on a chain depends only on its bytes and on ``now``: a chain
    seen before (byte for byte) is only checked again against ``now`` (its
    leaf's validity period) and ``expected``, which skips two signature
    checks and the parsing of the extensions.  Possession is not cached: the
    TLS CertificateVerify, which proves the peer holds the certificate's key,
    is checked by every handshake.  Rejected chains are never remembered, and
    at most `VERIFIED_CACHE_SIZE` chains are (least recently used ones go
    first), so a peer can make others' checks slower, never different.

    Args, returns and raises as `verify_certificate_chain`.
    """
    key = tuple(chain)
    verified = _verified
    hit = verified.pop(key, None)
    if hit is None or not hit[1] <= now <= hit[2]:
        # New, or outside its validity period: the full check says why.
        actual = verify_certificate_chain(key, now=now, expected=None)
        leaf = key[0]
        hit = (
            actual,
            leaf.not_valid_before_utc.timestamp(),
            leaf.not_valid_after_utc.timestamp(),
        )
        if len(verified) >= VERIFIED_CACHE_SIZE:
            del verified[next(iter(verified))]
    verified[key] = hit
    actual = hit[0]
    if expected is not None and actual != expected:
        if not isinstance(expected, NodeId):
            raise TypeError(f"expected must be a NodeId or None, not {type(expected).__name__}")
        raise PeerIdentityError(
            f"peer proved node id {actual}, expected {expected}",
            expected=expected,
            actual=actual,
        )
    return actual


def _check_validity(
    certificate: x509.Certificate, now: float, fail: Callable[[str], PeerIdentityError]
) -> None:
    """The certificate must be valid at ``now``."""
    try:
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
        valid = not_before.timestamp() <= now <= not_after.timestamp()
    except Exception as exc:
        raise fail(f"unreadable validity period ({exc})") from exc
    if not valid:
        raise fail(
            f"not valid at {_describe_time(now)} "
            f"(valid from {not_before.isoformat()} to {not_after.isoformat()})"
        )


def _proven_node_id(
    certificate: x509.Certificate, fail: Callable[[str], PeerIdentityError]
) -> NodeId:
    """The node id whose key signed this certificate's key (the libp2p extension)."""
    try:
        extensions = list(certificate.extensions)
    except Exception as exc:
        raise fail(f"malformed extensions ({exc})") from exc
    for extension in extensions:
        if extension.critical and extension.oid not in _ALLOWED_CRITICAL:
            raise fail(f"unknown critical extension {extension.oid.dotted_string}")
    ours = [extension for extension in extensions if extension.oid == LIBP2P_EXTENSION_OID]
    if not ours:
        raise fail(f"the libp2p extension ({LIBP2P_EXTENSION_OID.dotted_string}) is missing")
    if len(ours) > 1:  # pragma: no cover - cryptography refuses duplicates already
        raise fail("the libp2p extension appears more than once")
    value = ours[0].value
    if not isinstance(value, x509.UnrecognizedExtension):  # pragma: no cover - defensive
        raise fail("the libp2p extension could not be read")

    try:
        public_key_message, signature = _decode_signed_key(value.value)
    except _DecodeError as exc:
        raise fail(f"malformed libp2p extension: {exc}") from exc
    try:
        raw_host_key = _decode_ed25519_public_key(public_key_message)
    except _UnsupportedKeyType as exc:
        name = _KEY_TYPE_NAMES.get(exc.key_type, f"unknown key type {exc.key_type}")
        raise fail(f"only Ed25519 host keys are supported, got {name}") from None
    except _DecodeError as exc:
        raise fail(f"malformed libp2p extension: {exc}") from exc
    try:
        actual = NodeId(raw_host_key)
    except ValueError as exc:
        raise fail(f"invalid Ed25519 host key ({exc})") from exc

    try:
        spki = _subject_public_key_info(certificate.tbs_certificate_bytes)
    except _DecodeError as exc:  # pragma: no cover - cryptography parsed it already
        raise fail(f"unreadable subjectPublicKeyInfo ({exc})") from exc
    if not actual.verify(signature, _SIGNATURE_PREFIX + spki):
        raise fail(
            f"the libp2p extension's signature by {actual.short()} does not "
            "cover this certificate's key"
        )
    return actual


def _check_self_signature(
    certificate: x509.Certificate,
    fail: Callable[[str], PeerIdentityError],
) -> None:
    try:
        public_key = certificate.public_key()
        algorithm = certificate.signature_algorithm_oid
        signature = certificate.signature
        tbs = certificate.tbs_certificate_bytes
    except Exception as exc:
        raise fail(f"unsupported or malformed certificate key ({exc})") from exc
    try:
        if isinstance(public_key, Ed25519PublicKey):
            if algorithm != SignatureAlgorithmOID.ED25519:
                raise fail(f"an Ed25519 key with signature algorithm {algorithm.dotted_string}")
            public_key.verify(signature, tbs)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(public_key.curve, _ECDSA_CURVES):
                raise fail(f"unsupported elliptic curve {public_key.curve.name}")
            hash_type = _ECDSA_HASHES.get(algorithm)
            if hash_type is None:
                raise fail(f"an ECDSA key with signature algorithm {algorithm.dotted_string}")
            public_key.verify(signature, tbs, ec.ECDSA(hash_type()))
        else:
            raise fail(
                f"unsupported certificate key type {type(public_key).__name__} "
                "(supported: Ed25519, ECDSA P-256/P-384/P-521)"
            )
    except InvalidSignature:
        raise fail("the certificate's self-signature is invalid") from None


def _describe_time(now: float) -> str:
    try:
        return _timestamp_to_datetime(now).isoformat()
    except ValueError:
        return f"{now} Unix seconds"
