# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio request PEER TEXT``: send a request and print the reply."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import trio

from qp2p_trio import MessageTooLarge

from .client import open_client, parse_peer, text_payload, too_large
from .errors import CliError, ExitCode
from .options import client_options
from .output import print_json

if TYPE_CHECKING:
    import argparse

    from .options import Commands

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    """Add the ``request`` subcommand."""
    parser = commands.add(
        "request",
        "send a request and print the reply",
        "Send TEXT (- reads stdin) as a request and print the reply.",
        run,
    )
    parser.add_argument("peer", metavar="PEER", help="peer address")
    parser.add_argument("text", metavar="TEXT", help="the request (- reads stdin)")
    client_options(parser)


async def run(args: argparse.Namespace) -> int:
    """``qp2p-trio request PEER TEXT``: print the reply."""
    peer = parse_peer(args.peer, args)
    payload = text_payload(args.text)
    async with open_client(args, peer) as (_ep, conn, handshake):
        start = trio.current_time()
        try:
            with trio.fail_after(args.timeout):
                reply = await conn.request(payload)
        except trio.TooSlowError:
            raise CliError(
                ExitCode.PEER_FAILED, f"no reply within {args.timeout:g} s (--timeout)"
            ) from None
        except MessageTooLarge as exc:
            raise too_large(exc, len(payload)) from None
        elapsed = trio.current_time() - start
    if args.json:
        print_json(
            {
                "peer": str(peer),
                "reply": reply.decode("utf-8", "replace"),
                "reply_hex": reply.hex() if len(reply) <= 4096 else None,
                "bytes": len(reply),
                "handshake_ms": handshake * 1e3,
                "rtt_ms": elapsed * 1e3,
            }
        )
    else:
        out = sys.stdout.buffer
        out.write(reply)
        if not reply.endswith(b"\n"):
            out.write(b"\n")
        out.flush()
    return ExitCode.OK
