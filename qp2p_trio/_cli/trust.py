# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The trust options of the subcommands: ``--ca``, ``--cert``, ``--allow``, ``--deny``.

`trust_options` adds them; `trust_settings` turns them into `Config` fields,
reading the certificate files (a failure is a `CliError` with
`ExitCode.FILE`).  A node certificate is presented when ``--cert FILE``
names it, or when a file with the identity file's name and the suffix
``.crt`` lies next to it (where ``ca sign`` writes it).
"""

from __future__ import annotations

import argparse
import math
import os
from typing import TYPE_CHECKING, Any

from qp2p_trio import CertificateAuthority, NodeId, load_certificate

from .errors import CliError, ExitCode

if TYPE_CHECKING:
    from cryptography import x509

    from qp2p_trio import Identity

__all__ = [
    "certificate_beside",
    "days",
    "load_ca",
    "node_id",
    "trust_options",
    "trust_settings",
]


def days(text: str) -> float:
    """A lifetime in days, above 0 and at most 36500."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= 36500:
        raise argparse.ArgumentTypeError(f"must be a number of days in (0, 36500]: {text!r}")
    return value


def node_id(text: str) -> NodeId:
    """A node id (52 base32 characters or 64 hexadecimal digits)."""
    try:
        return NodeId.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def certificate_beside(identity_path: str) -> str:
    """Where ``ca sign`` puts an identity's node certificate: ``node.key`` -> ``node.crt``."""
    return os.path.splitext(identity_path)[0] + ".crt"


def load_ca(directory: str) -> CertificateAuthority:
    """The CA in ``directory`` (`ca new`), or a `CliError` (`ExitCode.FILE`)."""
    try:
        return CertificateAuthority.load(directory)
    except FileNotFoundError as exc:
        raise CliError(
            ExitCode.FILE,
            f"no CA in {directory!r} ({exc.filename} is missing; create one with: "
            f"qp2p-trio ca new {directory})",
        ) from None
    except OSError as exc:
        raise CliError(ExitCode.FILE, f"cannot read the CA in {directory!r}: {exc}") from None
    except ValueError as exc:
        raise CliError(ExitCode.FILE, f"not a CA directory: {exc}") from None


def _certificate(path: str, what: str) -> x509.Certificate:
    if os.path.isdir(path):
        path = os.path.join(path, "ca.crt")
    try:
        return load_certificate(path)
    except OSError as exc:
        raise CliError(ExitCode.FILE, f"cannot read {what} {path!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(ExitCode.FILE, f"not a certificate ({what}): {exc}") from None


def trust_options(parser: argparse.ArgumentParser, *, lists: bool = False) -> None:
    """``--ca ROOT``, ``--cert FILE`` and, with ``lists``, ``--allow``/``--deny NODE-ID``."""
    group = parser.add_argument_group("trust")
    group.add_argument(
        "--ca",
        action="append",
        default=[],
        metavar="ROOT",
        dest="trusted_ca",
        help="admit only peers presenting a node certificate of this network CA (its ca.crt, "
        "or its directory); repeatable",
    )
    group.add_argument(
        "--cert",
        metavar="FILE",
        help="present this node certificate (`ca sign`); default: the .crt file next to "
        "the --identity file, if there is one",
    )
    if lists:
        group.add_argument(
            "--allow",
            action="append",
            default=None,
            type=node_id,
            metavar="NODE-ID",
            help="admit only these peers (repeatable)",
        )
        group.add_argument(
            "--deny",
            action="append",
            default=[],
            type=node_id,
            metavar="NODE-ID",
            help="never admit this peer (repeatable)",
        )


def trust_settings(args: argparse.Namespace, identity: Identity) -> dict[str, Any]:
    """The `Config` fields the trust options ask for."""
    settings: dict[str, Any] = {
        "trusted_cas": [_certificate(p, "CA certificate") for p in getattr(args, "trusted_ca", [])]
    }
    cert_path = getattr(args, "cert", None)
    identity_path = getattr(args, "identity", None)
    if cert_path is None and identity_path is not None:
        beside = certificate_beside(identity_path)
        cert_path = beside if os.path.isfile(beside) and beside != identity_path else None
    if cert_path is not None:
        certificate = _certificate(cert_path, "node certificate")
        subject = certificate.public_key()
        if subject != identity.node_id.public_key():
            raise CliError(
                ExitCode.FILE,
                f"the node certificate {cert_path!r} is not for this identity "
                f"({identity.node_id.short()}): sign it with `qp2p-trio ca sign`",
            )
        settings["node_certificate"] = certificate
    if getattr(args, "allow", None) is not None:
        settings["allowed_peers"] = args.allow
    if getattr(args, "deny", None):
        settings["denied_peers"] = args.deny
    return settings
