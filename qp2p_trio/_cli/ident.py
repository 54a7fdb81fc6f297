# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio id [--new [--force]] FILE``: create an identity file, or show its node id."""

from __future__ import annotations

import os
import stat
import sys
from typing import TYPE_CHECKING

from qp2p_trio import Identity

from .client import load_identity
from .errors import CliError, ExitCode
from .options import json_option
from .output import print_json

if TYPE_CHECKING:
    import argparse

    from .options import Commands

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    """Add the ``id`` subcommand."""
    parser = commands.add(
        "id",
        "create an identity file, or show the node id of one",
        "Show the node id of the identity in FILE, or create FILE with --new. An identity is "
        "an Ed25519 private key (PKCS#8 PEM, file mode 0600); a node that keeps its file keeps "
        "its node id across runs.",
        run,
    )
    parser.add_argument("file", metavar="FILE", help="the identity file")
    parser.add_argument("--new", action="store_true", help="create FILE with a fresh identity")
    parser.add_argument("--force", action="store_true", help="with --new: replace an existing FILE")
    json_option(parser)


def run(args: argparse.Namespace) -> int:
    """``qp2p-trio id [--new [--force]] FILE``."""
    path: str = args.file
    if args.new:
        identity = Identity.generate()
        try:
            identity.save(path, overwrite=args.force)
        except FileExistsError:
            raise CliError(
                ExitCode.FILE,
                f"{path!r} already exists; keep it (it is a node's identity) or pass --force",
            ) from None
        except OSError as exc:
            raise CliError(ExitCode.FILE, f"cannot write {path!r}: {exc.strerror}") from None
    else:
        identity = load_identity(path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if args.json:
        print_json(
            {
                "node_id": str(identity.node_id),
                "node_id_hex": identity.node_id.raw.hex(),
                "file": os.path.abspath(path),
                "created": bool(args.new),
                "mode": f"{mode:04o}",
            }
        )
    else:
        if args.new:
            print(
                f"created {path} (mode {mode:04o}): keep it secret, it is this node's key",
                file=sys.stderr,
            )
        print(identity.node_id)
    if mode & 0o077:
        print(
            f"qp2p-trio: warning: {path} is readable by others (mode {mode:04o}); "
            f"run: chmod 600 {path}",
            file=sys.stderr,
        )
    return ExitCode.OK
