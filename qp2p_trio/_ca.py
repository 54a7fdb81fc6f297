# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A network's own certificate authority: node certificates and their check, sans-IO.

Theory of operation
-------------------
A node's TLS certificate stays what `_certs` makes: ephemeral, self-signed,
binding the node id by the libp2p extension.  A network that runs a CA
(`CertificateAuthority`, an Ed25519 key and a self-signed CA certificate)
signs each member a **node certificate**: its subject public key *is* the
member's Ed25519 identity key (its `NodeId`), its subject ``CN=<node id>``,
a random serial number and a lifetime.  A node presents it as the second
certificate of its TLS chain (`Config.node_certificate`).

An endpoint with `Config.trusted_cas` admits a peer only if `check_node`
finds no fault, evaluated after the TLS handshake proved the peer's node id
and before any of its data is read:

- the peer's chain is exactly its TLS certificate and a node certificate;
- the node certificate's key is the node id the TLS handshake proved: a CA
  vouches for a node id, it can never make one key pass as another (a
  node certificate for another key is refused; nor can anybody present a
  member's node certificate without the member's identity key);
- it is signed by one of the trusted roots (directly: there are no
  intermediate CAs), and both are valid at ``now``, the wall clock;
- neither its serial number nor its node id is revoked.

Nothing here reads a clock: ``now`` is passed in (Unix seconds).  The only
I/O is reading and writing a CA directory and certificate files (`save`,
`load`, `load_certificate`, `save_certificate`), as `Identity` does.
"""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING, Final, final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID

from ._identity import NodeId

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from ._config import Config

__all__ = [
    "CA_CERTIFICATE_FILE",
    "CA_KEY_FILE",
    "CertificateAuthority",
    "check_node",
    "check_own_certificate",
    "check_root",
    "load_certificate",
    "own_chain",
    "save_certificate",
]

#: File names inside a CA directory (`CertificateAuthority.save`).
CA_KEY_FILE: Final = "ca.key"
CA_CERTIFICATE_FILE: Final = "ca.crt"
_DAY: Final = 86400.0
_BACKDATE: Final = 3600.0  # certificates start an hour early: clocks differ


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def _check_days(days: float) -> None:
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= 36500:
        raise ValueError(f"a lifetime must be a number of days in (0, 36500], got {days!r}")


def _write_private(path: str, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never overwriting)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def save_certificate(certificate: x509.Certificate, path: str | os.PathLike[str]) -> None:
    """Write ``certificate`` to ``path`` as PEM (mode 0644; it holds no secret)."""
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    fd = os.open(os.fspath(path), os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Read one PEM certificate (the first, if the file holds several).

    Raises:
        OSError: if the file cannot be read.
        ValueError: if it holds no PEM certificate.
    """
    with open(path, "rb") as file:
        data = file.read(1 << 20)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)!r} holds no PEM certificate") from exc
    return certificates[0]


@final
class CertificateAuthority:
    """A network's CA: an Ed25519 key and its self-signed CA certificate.

    Make one with `generate`, keep it with `save` (a directory holding
    ``ca.key``, mode 0600, and ``ca.crt``), and sign each member's node id
    with `sign`.  Endpoints trust it with ``Config(trusted_cas=[ca.certificate])``.

    Example::

        ca = CertificateAuthority.generate("my network", now=time.time())
        config = Config(
            trusted_cas=[ca.certificate],
            node_certificate=ca.sign(identity.node_id, now=time.time()),
        )
    """

    __slots__ = ("_certificate", "_key")

    def __init__(self, key: Ed25519PrivateKey, certificate: x509.Certificate) -> None:
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"a CA key must be an Ed25519PrivateKey, not {type(key).__name__}")
        if certificate.public_key() != key.public_key():
            raise ValueError("the CA certificate is not for this key")
        check_root(certificate)
        self._key: Final = key
        self._certificate: Final = certificate

    @classmethod
    def generate(
        cls, name: str = "qp2p_trio network CA", *, now: float, days: float = 3650
    ) -> CertificateAuthority:
        """Make a new CA valid for ``days`` from ``now`` (Unix seconds)."""
        _check_days(days)
        key = Ed25519PrivateKey.generate()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now - _BACKDATE))
            .not_valid_after(_utc(now + days * _DAY))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_USAGE, critical=True)
            .sign(key, algorithm=None)
        )
        return cls(key, certificate)

    @property
    def certificate(self) -> x509.Certificate:
        """The CA (root) certificate, to give to every member."""
        return self._certificate

    def sign(self, node_id: NodeId, *, now: float, days: float = 365) -> x509.Certificate:
        """A node certificate for ``node_id``, valid for ``days`` from ``now``.

        Not beyond the CA's own validity (the end is capped there).
        """
        if not isinstance(node_id, NodeId):
            raise TypeError(f"node_id must be a NodeId, not {type(node_id).__name__}")
        _check_days(days)
        end = min(_utc(now + days * _DAY), self._certificate.not_valid_after_utc)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(node_id))]))
            .issuer_name(self._certificate.subject)
            .public_key(node_id.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now - _BACKDATE))
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, algorithm=None)
        )

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``ca.key`` (mode 0600) and ``ca.crt`` into ``directory`` (created, mode 0700).

        Raises:
            FileExistsError: if the directory already holds a CA key.
            OSError: if the files cannot be written.
        """
        path = os.fspath(directory)
        os.makedirs(path, mode=0o700, exist_ok=True)
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(os.path.join(path, CA_KEY_FILE), pem)
        save_certificate(self._certificate, os.path.join(path, CA_CERTIFICATE_FILE))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CertificateAuthority:
        """Read a CA directory written by `save`.

        Raises:
            OSError: if a file cannot be read.
            ValueError: if the files are not a CA key and its certificate.
        """
        path = os.fspath(directory)
        key_path = os.path.join(path, CA_KEY_FILE)
        with open(key_path, "rb") as file:
            data = file.read(1 << 16)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"{key_path!r} holds no unencrypted PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{key_path!r} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key, load_certificate(os.path.join(path, CA_CERTIFICATE_FILE)))

    def __repr__(self) -> str:
        return f"<qp2p_trio.CertificateAuthority {self._certificate.subject.rfc4514_string()}>"


_CA_USAGE: Final = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def check_root(certificate: x509.Certificate) -> None:
    """A certificate we may trust as a root must be a CA certificate.

    Raises:
        TypeError: if it is not an `x509.Certificate`.
        ValueError: if it lacks ``BasicConstraints(ca=True)``.
    """
    if not isinstance(certificate, x509.Certificate):
        raise TypeError(
            f"a trusted CA must be an x509.Certificate, not {type(certificate).__name__}"
        )
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.value.ca:
        raise ValueError(
            f"{certificate.subject.rfc4514_string()!r} is not a CA certificate "
            "(no BasicConstraints ca=True)"
        )


def check_own_certificate(certificate: x509.Certificate, node_id: NodeId) -> None:
    """Our `Config.node_certificate` must be for our own node id.

    Raises:
        ValueError: if its key is not ``node_id``'s.
    """
    if _subject_node_id(certificate) != node_id:
        raise ValueError(
            f"Config.node_certificate is for {certificate.subject.rfc4514_string()}, "
            f"not for this endpoint's node id {node_id}"
        )


def own_chain(config: Config, node_id: NodeId) -> tuple[x509.Certificate, ...]:
    """The certificates we send after our TLS certificate: our node certificate, if any.

    Raises:
        ValueError: if `Config.node_certificate` is not for ``node_id``.
    """
    certificate = config.node_certificate
    if certificate is None:
        return ()
    check_own_certificate(certificate, node_id)
    return (certificate,)


def _subject_node_id(certificate: x509.Certificate) -> NodeId | None:
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, Ed25519PublicKey):
        return None
    return NodeId(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def _validity_fault(certificate: x509.Certificate, now: float, what: str) -> str | None:
    start = certificate.not_valid_before_utc.timestamp()
    end = certificate.not_valid_after_utc.timestamp()
    if now < start:
        return f"{what} is not valid yet (from {_utc(start).isoformat()})"
    if now > end:
        return f"{what} expired at {_utc(end).isoformat()}"
    return None


def _issued_by(certificate: x509.Certificate, root: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def check_node(
    chain: Sequence[x509.Certificate],
    node_id: NodeId,
    *,
    roots: Sequence[x509.Certificate],
    revoked: Collection[NodeId | int],
    now: float,
) -> str | None:
    """Why a peer's chain does not make it a member, or ``None`` if it does.

    Args:
        chain: the peer's TLS certificates, its own (already checked by
            `_certs.verify_certificate_chain`) first.
        node_id: the node id its TLS certificate proved.
        roots: the trusted CA certificates.
        revoked: revoked node ids and certificate serial numbers.
        now: the wall clock, Unix seconds.

    Returns:
        A short reason for the refusal (for logs), or ``None``.  Any content
        of the peer's certificates gives a reason, never an exception.
    """
    if len(chain) < 2:
        return "it presented no node certificate"
    if len(chain) > 2:
        return f"it presented {len(chain) - 1} certificates after its own, expected 1"
    certificate = chain[1]
    try:
        subject = _subject_node_id(certificate)
        if subject != node_id:
            return "its node certificate is not for the node id it proved"
        issuers = [root for root in roots if _issued_by(certificate, root)]
        if not issuers:
            return "its node certificate is not signed by a trusted CA"
        fault = _validity_fault(certificate, now, "its node certificate")
        if fault is None and all(_validity_fault(root, now, "") for root in issuers):
            fault = "the CA that signed its node certificate is not valid now"
        if fault is not None:
            return fault
        if node_id in revoked:
            return "its node id is revoked"
        if certificate.serial_number in revoked:
            return f"its node certificate (serial {certificate.serial_number:#x}) is revoked"
    except Exception as exc:  # a malformed certificate: refused, never a crash
        return f"its node certificate is malformed ({type(exc).__name__})"
    return None
