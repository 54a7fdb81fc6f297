# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio send PEER TEXT`` or ``send PEER --file PATH``: a message or a checked file."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import TYPE_CHECKING, Any

import trio

from qp2p_trio import MessageTooLarge

from .client import (
    open_client,
    parse_peer,
    read_input,
    text_payload,
    too_large,
    with_progress,
)
from .errors import CliError, ExitCode
from .options import client_options, progress_option
from .output import Progress, format_duration, format_rate, format_size, preview, print_json
from .protocol import encode_file_head

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from qp2p_trio import PeerAddress

    from .options import Commands

__all__ = ["add_parser", "run"]

#: Bytes read from the file per chunk.
_CHUNK = 256 * 1024


def add_parser(commands: Commands) -> None:
    """Add the ``send`` subcommand."""
    parser = commands.add(
        "send",
        "send a message or a file to a peer",
        "Send TEXT (- reads stdin) as one message, or a file with --file: the file travels as "
        "one request, streamed from the disk (any size the listener accepts, in bounded "
        "memory), the listener answers with the SHA-256 of what arrived, and it is checked.",
        run,
    )
    parser.add_argument("peer", metavar="PEER", help="peer address")
    parser.add_argument("text", nargs="?", metavar="TEXT", help="the message (- reads stdin)")
    parser.add_argument("--file", metavar="PATH", help="send this file (- reads stdin)")
    progress_option(parser)
    client_options(parser)


async def _file_chunks(
    file: trio.abc.AsyncResource, head: bytes, hasher: Any
) -> AsyncIterator[bytes]:
    """The file request's head, then the file in chunks, hashed on the way."""
    async with file:
        yield head
        while chunk := await file.read(_CHUNK):  # type: ignore[attr-defined]
            hasher.update(chunk)
            yield chunk


async def run(args: argparse.Namespace) -> int:
    """``qp2p-trio send PEER TEXT`` or ``send PEER --file PATH``."""
    peer = parse_peer(args.peer, args)
    if (args.text is None) == (args.file is None):
        raise CliError(ExitCode.USAGE, "send needs exactly one of TEXT or --file PATH")
    if args.file is not None:
        return await _send_file(args, peer)
    payload = text_payload(args.text)
    async with open_client(args, peer) as (_ep, conn, handshake):
        start = trio.current_time()
        try:
            await conn.send(payload)
        except MessageTooLarge as exc:
            raise too_large(exc, len(payload)) from None
        elapsed = trio.current_time() - start
    if args.json:
        print_json(
            {
                "peer": str(peer),
                "bytes": len(payload),
                "handshake_ms": handshake * 1e3,
                "send_ms": elapsed * 1e3,
            }
        )
    else:
        print(
            f"sent {len(payload)} bytes to {peer.node_id.short()} in {format_duration(elapsed)} "
            f"(the peer confirmed delivery; handshake {format_duration(handshake)})"
        )
    return ExitCode.OK


async def _send_file(args: argparse.Namespace, peer: PeerAddress) -> int:
    if args.file == "-":
        name = "stdin"
        content = await trio.to_thread.run_sync(read_input, args.file)
        size = len(content)
        hasher = hashlib.sha256(content)
        chunks: list[bytes] | AsyncIterator[bytes] = [encode_file_head(name), content]
        del content
    else:
        # Streamed from the file in chunks: never held in memory whole.
        name = os.path.basename(args.file)
        try:
            file = await trio.open_file(args.file, "rb")
            size = os.fstat(file.fileno()).st_size
        except OSError as exc:
            raise CliError(ExitCode.FILE, f"cannot read {args.file!r}: {exc.strerror}") from None
        hasher = hashlib.sha256()
        chunks = _file_chunks(file, encode_file_head(name), hasher)
    head_size = len(encode_file_head(name))
    mode = Progress.choose(sys.stderr, args.progress, fallback="off")
    async with open_client(args, peer) as (_ep, conn, handshake):
        start = trio.current_time()

        async def transfer() -> bytes:
            try:
                return await conn.request_stream(chunks, head_size + size)
            except MessageTooLarge as exc:
                raise too_large(exc, size) from None
            except ValueError as exc:  # the file changed size while it was read
                raise CliError(ExitCode.FILE, f"cannot send {args.file!r}: {exc}") from None

        reply = await with_progress(conn, head_size + size, mode, sys.stderr, transfer)
        elapsed = trio.current_time() - start
    digest = hasher.digest()
    content_size = size
    verified = reply == digest
    if args.json:
        print_json(
            {
                "peer": str(peer),
                "file": args.file,
                "bytes": content_size,
                "sha256": digest.hex(),
                "peer_sha256": reply.hex() if len(reply) == 32 else None,
                "verified": verified,
                "handshake_ms": handshake * 1e3,
                "seconds": elapsed,
                "bytes_per_second": content_size / elapsed if elapsed > 0 else None,
            }
        )
    elif verified:
        print(
            f"sent {name!r} ({format_size(content_size)}) to {peer.node_id.short()} in "
            f"{format_duration(elapsed)}, {format_rate(content_size, elapsed)}; "
            f"the peer confirmed sha256 {digest.hex()}"
        )
    if not verified:
        if len(reply) != 32:
            raise CliError(
                ExitCode.MISMATCH,
                f"the peer answered {preview(reply)} instead of a SHA-256 "
                "(is it a qp2p-trio listener?)",
            )
        raise CliError(
            ExitCode.MISMATCH,
            f"checksum mismatch: sent sha256 {digest.hex()}, the peer received {reply.hex()}",
        )
    return ExitCode.OK
