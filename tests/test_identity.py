# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Tests of qp2p_trio._identity: node ids and identities."""

from __future__ import annotations

import base64
import os
import stat
from typing import TYPE_CHECKING

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from qp2p_trio._identity import Identity, NodeId

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

RAW = bytes(range(32))
RAW_BASE32 = base64.b32encode(RAW).decode().rstrip("=").lower()


def node_id(first: int) -> NodeId:
    return NodeId(bytes([first]) + bytes(31))


# --- NodeId construction --------------------------------------------------


def test_node_id_holds_raw_bytes() -> None:
    n = NodeId(RAW)
    assert n.raw == RAW
    assert type(n.raw) is bytes
    assert bytes(n) == RAW


def test_node_id_accepts_bytes_like_and_stores_bytes() -> None:
    assert NodeId(bytearray(RAW)).raw == RAW
    assert type(NodeId(bytearray(RAW)).raw) is bytes
    assert NodeId(memoryview(RAW)) == NodeId(RAW)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_node_id_rejects_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        NodeId(bytes(length))


@pytest.mark.parametrize("value", ["a" * 32, 5, None, [0] * 32])
def test_node_id_rejects_non_bytes(value: object) -> None:
    with pytest.raises(TypeError):
        NodeId(value)  # type: ignore[arg-type]


def test_node_id_is_frozen() -> None:
    n = NodeId(RAW)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        n.raw = bytes(32)  # type: ignore[misc]


# --- text forms -----------------------------------------------------------


def test_str_is_lowercase_unpadded_base32() -> None:
    text = str(NodeId(RAW))
    assert text == RAW_BASE32
    assert len(text) == 52
    assert text == text.lower()
    assert "=" not in text
    assert base64.b32decode(text.upper() + "====") == RAW


def test_repr_and_short() -> None:
    n = NodeId(RAW)
    assert repr(n) == f"NodeId('{RAW_BASE32}')"
    assert n.short() == RAW_BASE32[:10]
    assert len(n.short()) == 10


def test_parse_round_trip_random() -> None:
    for _ in range(20):
        n = Identity.generate().node_id
        assert NodeId.parse(str(n)) == n
        assert NodeId.parse(n.raw.hex()) == n


def test_parse_accepts_any_case_and_whitespace() -> None:
    n = NodeId(RAW)
    assert NodeId.parse(RAW_BASE32.upper()) == n
    assert NodeId.parse(RAW_BASE32[:20].upper() + RAW_BASE32[20:]) == n
    assert NodeId.parse(f"  \t{RAW_BASE32}\n ") == n


def test_parse_hex_any_case() -> None:
    n = NodeId(RAW)
    assert NodeId.parse(RAW.hex()) == n
    assert NodeId.parse(RAW.hex().upper()) == n
    assert NodeId.parse(" " + RAW.hex() + "\n") == n


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        RAW_BASE32[:-1],  # 51 characters
        RAW_BASE32 + "a",  # 53 characters
        RAW_BASE32 + "====",  # padded
        RAW_BASE32[:-1] + "1",  # '1' is not in the base32 alphabet
        RAW_BASE32[:-1] + "8",
        "0" + RAW_BASE32[1:],
        RAW_BASE32[:26] + " " + RAW_BASE32[26:],  # inner whitespace
        RAW.hex()[:-1],  # 63 hex digits
        RAW.hex() + "0",  # 65 hex digits
        RAW.hex()[:-1] + "g",
        "0x" + RAW.hex()[2:],
        RAW.hex()[:32] + " " + RAW.hex()[32:],  # bytes.fromhex would accept this
        "\u0661" * 64,  # Arabic-Indic digits are not hex digits
    ],
)
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match=r"52 base32 characters.*64 hexadecimal digits"):
        NodeId.parse(text)


def test_parse_rejects_non_canonical_base32() -> None:
    # The last of 52 characters carries 4 padding bits that must be zero;
    # RAW ends in 0x1f, so its last character encodes '1' + '0000'.
    assert RAW_BASE32[-1] == "q"
    for char in "rstuvwxyz":  # same high bit, non-zero padding bits
        with pytest.raises(ValueError, match="canonical"):
            NodeId.parse(RAW_BASE32[:-1] + char)


def test_parse_error_shows_input() -> None:
    with pytest.raises(ValueError, match="'not-a-node-id'"):
        NodeId.parse("not-a-node-id")


def test_parse_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        NodeId.parse(RAW)  # type: ignore[arg-type]


# --- ordering and hashing -------------------------------------------------


def test_ordering_follows_raw_bytes() -> None:
    ids = [Identity.generate().node_id for _ in range(30)]
    assert [n.raw for n in sorted(ids)] == sorted(n.raw for n in ids)
    a, b = node_id(1), node_id(2)
    assert a < b
    assert a <= b
    assert b > a
    assert b >= a
    assert not b < a
    assert a <= node_id(1)
    assert max(a, b) is b


def test_equality_and_hash() -> None:
    a, b = NodeId(RAW), NodeId(bytes(RAW))
    assert a == b
    assert hash(a) == hash(b)
    assert a != node_id(1)
    assert len({a, b, node_id(1)}) == 2
    assert {a: 1}[b] == 1
    others: list[object] = [RAW, str(a), RAW.hex()]
    for other in others:
        assert a != other


def test_ordering_with_other_types_fails() -> None:
    with pytest.raises(TypeError):
        _ = NodeId(RAW) < RAW  # type: ignore[operator]


# --- keys and signatures --------------------------------------------------


def test_public_key() -> None:
    identity = Identity.generate()
    key = identity.node_id.public_key()
    assert isinstance(key, Ed25519PublicKey)
    assert key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == (
        identity.node_id.raw
    )


def test_sign_and_verify() -> None:
    identity = Identity.generate()
    signature = identity.sign(b"hello")
    assert len(signature) == 64
    assert identity.node_id.verify(signature, b"hello")
    assert not identity.node_id.verify(signature, b"hellO")
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    assert not identity.node_id.verify(tampered, b"hello")
    assert not Identity.generate().node_id.verify(signature, b"hello")


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 64, b"\xff" * 65])
def test_verify_returns_false_on_malformed_signature(signature: bytes) -> None:
    assert Identity.generate().node_id.verify(signature, b"data") is False


# --- Identity -------------------------------------------------------------


def test_generate_gives_distinct_identities() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.node_id != b.node_id
    assert a != b


def test_private_bytes_round_trip() -> None:
    identity = Identity.generate()
    raw = identity.private_bytes()
    assert len(raw) == 32
    again = Identity.from_private_bytes(raw)
    assert again.node_id == identity.node_id
    assert again == identity
    assert hash(again) == hash(identity)
    assert Identity.from_private_bytes(bytearray(raw)) == identity


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_from_private_bytes_rejects_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="32 raw bytes"):
        Identity.from_private_bytes(bytes(length))


def test_from_private_bytes_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        Identity.from_private_bytes("x" * 32)  # type: ignore[arg-type]


def test_private_key_property_matches_node_id() -> None:
    identity = Identity.generate()
    key = identity.private_key
    assert isinstance(key, Ed25519PrivateKey)
    raw_public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert NodeId(raw_public) == identity.node_id


def test_constructor_takes_an_ed25519_key() -> None:
    key = Ed25519PrivateKey.generate()
    assert Identity(key).private_key is key
    with pytest.raises(TypeError):
        Identity(ec.generate_private_key(ec.SECP256R1()))  # type: ignore[arg-type]


def test_repr_shows_only_node_id() -> None:
    identity = Identity.generate()
    text = repr(identity)
    assert text == f"Identity(node_id={identity.node_id!r})"
    raw = identity.private_bytes()
    for secret in (raw.hex(), raw.hex().upper(), base64.b32encode(raw).decode().lower()[:20]):
        assert secret not in text
    assert "PRIVATE" not in text


def test_identity_equality_is_by_node_id() -> None:
    identity = Identity.generate()
    same = Identity(Ed25519PrivateKey.from_private_bytes(identity.private_bytes()))
    assert identity == same
    assert len({identity, same, Identity.generate()}) == 2
    assert identity != identity.node_id
    assert identity != "identity"


# --- save / load ----------------------------------------------------------


@pytest.fixture
def zero_umask() -> Iterator[None]:
    """Run with umask 0, so that only an explicit creation mode keeps a file private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_save_load_round_trip(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = tmp_path / "key.pem"
    identity.save(path)
    loaded = Identity.load(path)
    assert loaded == identity
    assert loaded.private_bytes() == identity.private_bytes()
    assert Identity.load(str(path)) == identity


def test_save_writes_unencrypted_pkcs8_pem(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = tmp_path / "key.pem"
    identity.save(path)
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(data, password=None)
    assert isinstance(key, Ed25519PrivateKey)


@pytest.mark.usefixtures("zero_umask")
def test_save_creates_file_with_mode_0o600(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    Identity.generate().save(path)
    assert mode_of(path) == 0o600


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        Identity.generate().save(path)
    assert path.read_bytes() == b"precious"
    first = Identity.generate()
    other = tmp_path / "other.pem"
    first.save(other)
    with pytest.raises(FileExistsError):
        Identity.generate().save(other)
    assert Identity.load(other) == first


@pytest.mark.usefixtures("zero_umask")
def test_save_overwrite_replaces_with_mode_0o600(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"old contents")
    path.chmod(0o644)
    identity = Identity.generate()
    identity.save(path, overwrite=True)
    assert Identity.load(path) == identity
    assert mode_of(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]  # no temp file left


def test_save_overwrite_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new.pem"
    identity = Identity.generate()
    identity.save(path, overwrite=True)
    assert Identity.load(path) == identity
    assert mode_of(path) == 0o600


def test_save_overwrite_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    (target / "inside").write_bytes(b"")
    with pytest.raises(OSError):
        Identity.generate().save(target, overwrite=True)  # cannot replace a non-empty directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Identity.load(tmp_path / "missing.pem")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\x00\x01\x02" * 100,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_load_garbage_raises_value_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"bad\.pem") as info:
        Identity.load(path)
    assert type(info.value) is ValueError


def test_load_der_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.der"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match=r"key\.der"):
        Identity.load(path)


def test_load_encrypted_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "enc.pem"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ValueError, match=r"enc\.pem"):
        Identity.load(path)


def test_load_public_key_pem_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pub.pem"
    path.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match=r"pub\.pem"):
        Identity.load(path)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_load_non_ed25519_key_is_refused(tmp_path: Path, kind: str) -> None:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / f"{kind}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match=rf"{kind}\.pem.*not an Ed25519 private key") as info:
        Identity.load(path)
    assert type(info.value) is ValueError
