# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Node identities: Ed25519 key pairs and the node ids derived from them.

A node's long-term identity is an Ed25519 key pair (`Identity`); its public
half, 32 raw bytes, is the node's `NodeId`.  Nothing here performs I/O except
`Identity.save` and `Identity.load`, and nothing reads a clock.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
from typing import Final, TypeAlias, final

import attrs
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = ["Identity", "NodeId"]

_BytesLike: TypeAlias = bytes | bytearray | memoryview

_KEY_SIZE: Final = 32
_BASE32_RE: Final = re.compile(r"[a-z2-7]{52}")
_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")
_PARSE_EXPECTED: Final = (
    "expected a node id as 52 base32 characters (RFC 4648 alphabet, no '=' padding) "
    "or as 64 hexadecimal digits"
)


def _node_id_raw(value: _BytesLike) -> bytes:
    """Convert and validate the raw bytes of a `NodeId` (an attrs converter)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"a node id is built from bytes, not {type(value).__name__}")
    raw = bytes(value)
    if len(raw) != _KEY_SIZE:
        raise ValueError(
            f"a node id is a {_KEY_SIZE}-byte Ed25519 public key, got {len(raw)} bytes"
        )
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a valid Ed25519 public key: {raw.hex()}") from exc
    return raw


@final
@attrs.frozen(order=True, repr=False)
class NodeId:
    """The identifier of a node: the 32-byte Ed25519 public key of its `Identity`.

    Node ids are immutable, hashable and totally ordered by their raw bytes.
    Their text form (`str`) is the RFC 4648 base32 encoding of the raw bytes,
    lowercase and without padding: 52 characters.

    Args:
        raw: the 32 raw bytes of the Ed25519 public key.

    Raises:
        TypeError: if ``raw`` is not a bytes-like object.
        ValueError: if ``raw`` is not a 32-byte Ed25519 public key.

    Attributes:
        raw: the 32 raw bytes of the Ed25519 public key.
    """

    raw: bytes = attrs.field(converter=_node_id_raw)

    @classmethod
    def parse(cls, text: str) -> NodeId:
        """Parse the text form of a node id.

        Accepts the base32 form that `str` produces, in any case, and 64
        hexadecimal digits (any case).  Surrounding whitespace is ignored.

        Args:
            text: the text to parse.

        Returns:
            The node id.

        Raises:
            TypeError: if ``text`` is not a `str`.
            ValueError: if ``text`` is neither form.
        """
        if not isinstance(text, str):
            raise TypeError(f"NodeId.parse() takes a str, not {type(text).__name__}")
        cleaned = text.strip().lower()
        if _HEX_RE.fullmatch(cleaned):
            return cls(bytes.fromhex(cleaned))
        if _BASE32_RE.fullmatch(cleaned):
            try:
                raw = base64.b32decode(cleaned.upper() + "====")
            except binascii.Error as exc:  # pragma: no cover - the regex guards this
                raise ValueError(f"{_PARSE_EXPECTED}, got {_shorten(text)}") from exc
            # 52 characters carry 260 bits; the last 4 must be zero, so that
            # every node id has exactly one text form.
            if _base32(raw) == cleaned:
                return cls(raw)
            raise ValueError(
                f"{_PARSE_EXPECTED}; {_shorten(text)} is not the canonical base32 form "
                "(its last character has non-zero padding bits)"
            )
        raise ValueError(f"{_PARSE_EXPECTED}, got {_shorten(text)}")

    def __bytes__(self) -> bytes:
        """Return the 32 raw bytes."""
        return self.raw

    def __str__(self) -> str:
        """Return the base32 text form (52 lowercase characters)."""
        return _base32(self.raw)

    def __repr__(self) -> str:
        """Return ``NodeId('<base32>')``."""
        return f"NodeId('{self}')"

    def short(self) -> str:
        """Return an abbreviation for logs: the first 10 characters of `str`.

        Returns:
            The abbreviated text form.
        """
        return str(self)[:10]

    def public_key(self) -> Ed25519PublicKey:
        """Return the node's public key as a cryptography object.

        Returns:
            The Ed25519 public key.
        """
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Check an Ed25519 signature made by this node's identity.

        Args:
            signature: the signature (64 bytes for a well-formed one).
            data: the signed data.

        Returns:
            ``True`` if ``signature`` is this node's valid signature over
            ``data``, ``False`` otherwise (including a malformed signature).
        """
        try:
            self.public_key().verify(signature, data)
        except InvalidSignature:
            return False
        return True


def _base32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def _shorten(text: str) -> str:
    if len(text) > 80:
        return repr(text[:80]) + "..."
    return repr(text)


@final
class Identity:
    """A node's long-term identity: an Ed25519 key pair.

    Its public key is the node's `NodeId`.  Two identities are equal when
    their node ids are equal.  The private key is never shown by `repr`.

    Args:
        private_key: the Ed25519 private key.  Usually one calls
            `Identity.generate`, `Identity.from_private_bytes` or
            `Identity.load` instead.

    Raises:
        TypeError: if ``private_key`` is not an Ed25519 private key.
    """

    __slots__ = ("_node_id", "_private_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError(
                f"an Identity needs an Ed25519PrivateKey, not {type(private_key).__name__}"
            )
        self._private_key: Final = private_key
        raw_public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._node_id: Final = NodeId(raw_public)

    @classmethod
    def generate(cls) -> Identity:
        """Create a new random identity.

        Returns:
            The new identity.
        """
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: _BytesLike) -> Identity:
        """Rebuild an identity from the 32 raw bytes of its private key.

        Args:
            raw: the raw private key, as returned by `private_bytes`.

        Returns:
            The identity.

        Raises:
            TypeError: if ``raw`` is not bytes-like.
            ValueError: if ``raw`` is not 32 bytes long.
        """
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, not {type(raw).__name__}")
        raw_bytes = bytes(raw)
        if len(raw_bytes) != _KEY_SIZE:
            raise ValueError(
                f"an Ed25519 private key is {_KEY_SIZE} raw bytes, got {len(raw_bytes)} bytes"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(raw_bytes))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Read an identity from an unencrypted PKCS#8 PEM file.

        Args:
            path: the file written by `save`.

        Returns:
            The identity.

        Raises:
            OSError: if the file cannot be read.
            ValueError: if the file is not an unencrypted PEM private key, or
                the key is not an Ed25519 key.
        """
        with open(path, "rb") as file:
            data = file.read()
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(
                f"{os.fspath(path)!r} does not hold an unencrypted PEM private key"
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(
                f"{os.fspath(path)!r} holds a {type(key).__name__}, not an Ed25519 private key"
            )
        return cls(key)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the private key to a file as an unencrypted PKCS#8 PEM.

        The file is created with mode ``0o600`` (readable and writable by its
        owner only) from the start.  With ``overwrite=True`` the key is
        written to a temporary file in the same directory that then
        atomically replaces ``path``.

        Args:
            path: where to write the key.
            overwrite: replace an existing file instead of failing.

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is false.
            OSError: if the file cannot be written.
        """
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        target = os.fspath(path)
        if not overwrite:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
            try:
                _write_all(fd, pem)
            except BaseException:
                os.unlink(target)
                raise
            return
        directory, name = os.path.split(target)
        # mkstemp creates the file with O_EXCL and mode 0o600.
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
        try:
            _write_all(fd, pem)
            os.replace(temp, target)
        except BaseException:
            os.unlink(temp)
            raise

    def private_bytes(self) -> bytes:
        """Return the 32 raw bytes of the private key.

        Returns:
            The raw private key; keep it secret.
        """
        return self._private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The private key as a cryptography object."""
        return self._private_key

    @property
    def node_id(self) -> NodeId:
        """The node id: this identity's public key."""
        return self._node_id

    def sign(self, data: bytes) -> bytes:
        """Sign data with the private key.

        Args:
            data: the data to sign.

        Returns:
            The 64-byte Ed25519 signature, verifiable with `NodeId.verify`.
        """
        return self._private_key.sign(data)

    def __repr__(self) -> str:
        """Return a representation naming the node id only."""
        return f"Identity(node_id={self._node_id!r})"

    def __eq__(self, other: object) -> bool:
        """Compare by node id."""
        if isinstance(other, Identity):
            return self._node_id == other._node_id
        return NotImplemented

    def __hash__(self) -> int:
        """Hash by node id."""
        return hash(self._node_id)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, flush it to disk and close ``fd``."""
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
