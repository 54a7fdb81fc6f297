# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio ca new DIR`` and ``qp2p-trio ca sign IDENTITY-FILE --ca DIR``: a network's CA."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from qp2p_trio import CertificateAuthority, NodeId, save_certificate

from .client import load_identity
from .errors import CliError, ExitCode
from .options import json_option
from .output import print_json
from .trust import certificate_beside, days, load_ca

if TYPE_CHECKING:
    import argparse

    from .options import Commands

__all__ = ["add_parser"]


def add_parser(commands: Commands) -> None:
    """Add the ``ca`` subcommand and its ``new`` and ``sign`` actions."""
    parser = commands.add(
        "ca",
        "run a network's own certificate authority: create it, sign node certificates",
        "A network CA vouches for its members' node ids. `ca new DIR` creates one (DIR/ca.key, "
        "mode 0600: keep it offline; DIR/ca.crt: give it to every member). `ca sign "
        "IDENTITY-FILE --ca DIR` writes that identity's node certificate. Nodes started with "
        "--ca DIR/ca.crt admit only peers presenting a node certificate of that CA.",
        _usage,
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    new = actions.add_parser("new", help="create a CA in DIR (ca.key, ca.crt)")
    new.add_argument("dir", metavar="DIR", help="directory to create the CA in")
    new.add_argument("--name", default="qp2p_trio network CA", help="the CA's name")
    new.add_argument("--days", type=days, default=3650, help="lifetime in days (default: 3650)")
    json_option(new)
    new.set_defaults(handler=run_new)
    sign = actions.add_parser("sign", help="write the node certificate of an identity")
    sign.add_argument(
        "identity",
        metavar="IDENTITY-FILE",
        help="the node's identity file, or just its node id (then -o names the output; "
        "default: NODE-ID.crt)",
    )
    sign.add_argument("--ca", required=True, metavar="DIR", help="the CA directory (`ca new`)")
    sign.add_argument("--days", type=days, default=365, help="lifetime in days (default: 365)")
    sign.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write it (default: next to IDENTITY-FILE, with the suffix .crt)",
    )
    json_option(sign)
    sign.set_defaults(handler=run_sign)


def _usage(args: argparse.Namespace) -> int:
    raise CliError(
        ExitCode.USAGE, "ca needs an action: ca new DIR, or ca sign IDENTITY-FILE --ca DIR"
    )


def run_new(args: argparse.Namespace) -> int:
    """``qp2p-trio ca new DIR``."""
    ca = CertificateAuthority.generate(args.name, now=time.time(), days=args.days)
    try:
        ca.save(args.dir)
    except FileExistsError:
        raise CliError(
            ExitCode.FILE, f"{args.dir!r} already holds a CA key; keep it or choose another DIR"
        ) from None
    except OSError as exc:
        raise CliError(ExitCode.FILE, f"cannot write the CA into {args.dir!r}: {exc}") from None
    root = os.path.join(args.dir, "ca.crt")
    if args.json:
        print_json({"dir": os.path.abspath(args.dir), "certificate": os.path.abspath(root)})
    else:
        print(root)
        print(
            f"created the CA in {args.dir}: keep ca.key secret; give {root} to every member (--ca)",
            file=sys.stderr,
        )
    return ExitCode.OK


def _node_id_of(text: str) -> NodeId:
    """The node id of an identity file, or ``text`` itself when it is a node id and no file."""
    if not os.path.exists(text):
        try:
            return NodeId.parse(text)
        except ValueError:
            pass
    return load_identity(text).node_id


def run_sign(args: argparse.Namespace) -> int:
    """``qp2p-trio ca sign IDENTITY-FILE --ca DIR [--days N] [-o FILE]``."""
    node_id = _node_id_of(args.identity)
    ca = load_ca(args.ca)
    certificate = ca.sign(node_id, now=time.time(), days=args.days)
    output = args.output or certificate_beside(args.identity)
    if os.path.abspath(output) == os.path.abspath(args.identity):
        raise CliError(ExitCode.USAGE, f"-o {output!r} would overwrite the identity file")
    try:
        save_certificate(certificate, output)
    except OSError as exc:
        raise CliError(ExitCode.FILE, f"cannot write {output!r}: {exc.strerror}") from None
    expires = certificate.not_valid_after_utc.isoformat()
    if args.json:
        print_json(
            {
                "node_id": str(node_id),
                "certificate": os.path.abspath(output),
                "serial": f"{certificate.serial_number:x}",
                "expires": expires,
            }
        )
    else:
        print(output)
        print(
            f"signed {node_id.short()} until {expires} (serial {certificate.serial_number:x})",
            file=sys.stderr,
        )
    return ExitCode.OK
