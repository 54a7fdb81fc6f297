# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio bench [PEER]``: request latency and bulk throughput, remote or in-process."""

from __future__ import annotations

import math
import statistics
import sys
from typing import TYPE_CHECKING, Any

import trio

from qp2p_trio import MessageTooLarge, open_endpoint

from .client import config_for, open_client, parse_peer, too_large, with_progress
from .errors import CliError, ExitCode
from .options import client_options, count, positive, progress_option, size
from .output import MiB, Progress, format_duration, format_rate, format_size, print_json
from .protocol import BULK_TAG, PROBE_TAG, SEQ
from .service import Service

if TYPE_CHECKING:
    import argparse

    from qp2p_trio import Connection

    from .options import Commands

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    """Add the ``bench`` subcommand."""
    parser = commands.add(
        "bench",
        "measure latency and throughput, against PEER or in-process",
        "Measure request latency (sequential small requests) and throughput (bulk messages, "
        "several in flight) against a listener at PEER, or between two endpoints in this "
        "process when no PEER is given.",
        run,
    )
    parser.add_argument("peer", nargs="?", metavar="PEER", help="peer address (default: local)")
    parser.add_argument(
        "--rounds",
        type=count,
        default=100,
        metavar="N",
        help="latency requests (default: 100)",
    )
    parser.add_argument(
        "--size",
        type=size,
        default=16 * MiB,
        metavar="SIZE",
        help="bytes to send for throughput (default: 16MiB)",
    )
    parser.add_argument(
        "--message-size",
        type=size,
        default=1 * MiB,
        metavar="SIZE",
        help="size of each bulk message (default: 1MiB)",
    )
    parser.add_argument(
        "--parallel",
        type=positive,
        default=4,
        metavar="N",
        help="bulk messages in flight at once (default: 4)",
    )
    progress_option(parser)
    client_options(parser)


async def run(args: argparse.Namespace) -> int:
    """``qp2p-trio bench [PEER]``: latency and throughput, remote or local."""
    if args.message_size <= len(BULK_TAG):
        raise CliError(ExitCode.USAGE, f"--message-size must exceed {len(BULK_TAG)} bytes")
    if args.peer is not None:
        peer = parse_peer(args.peer, args)
        async with open_client(args, peer) as (_ep, conn, handshake):
            result = await _bench(args, conn)
        result.update(mode="remote", peer=str(peer), handshake_ms=handshake * 1e3)
    else:
        result = await _bench_local(args)
    if args.json:
        print_json(result)
    else:
        _print_bench(result)
    return ExitCode.OK


async def _bench_local(args: argparse.Namespace) -> dict[str, Any]:
    limit = max(args.max_message_size, args.message_size + 1024)
    config = config_for(limit, args)
    async with (
        open_endpoint(("127.0.0.1", 0), config=config) as server,
        open_endpoint(("127.0.0.1", 0), config=config) as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(Service(server, quiet=True).run)
        start = trio.current_time()
        conn = await client.connect(server.local_address, node_id=server.node_id)
        handshake = trio.current_time() - start
        result = await _bench(args, conn)
        nursery.cancel_scope.cancel()
    result.update(mode="local", peer=None, handshake_ms=handshake * 1e3)
    return result


async def _bench(args: argparse.Namespace, conn: Connection) -> dict[str, Any]:
    return {"latency": await _latency(args, conn), "throughput": await _throughput(args, conn)}


async def _latency(args: argparse.Namespace, conn: Connection) -> dict[str, Any]:
    """Sequential probes, each a full request/response."""
    rtts: list[float] = []
    for seq in range(args.rounds):
        probe = PROBE_TAG + SEQ.pack(seq)
        sent_at = trio.current_time()
        with trio.fail_after(args.timeout):
            reply = await conn.request(probe)
        rtts.append((trio.current_time() - sent_at) * 1e3)
        if reply != probe:
            raise CliError(ExitCode.MISMATCH, f"probe {seq}: the echo differs")
    latency: dict[str, Any] = {"rounds": len(rtts), "request_bytes": len(PROBE_TAG) + SEQ.size}
    if rtts:
        ordered = sorted(rtts)
        latency.update(
            min_ms=ordered[0],
            median_ms=statistics.median(ordered),
            mean_ms=statistics.fmean(ordered),
            p90_ms=_percentile(ordered, 0.90),
            p99_ms=_percentile(ordered, 0.99),
            max_ms=ordered[-1],
        )
    return latency


async def _throughput(args: argparse.Namespace, conn: Connection) -> dict[str, Any]:
    """Bulk messages, several in flight."""
    message = BULK_TAG + bytes(args.message_size - len(BULK_TAG))
    messages = max(1, math.ceil(args.size / args.message_size))
    total = messages * len(message)
    parallel = max(1, min(args.parallel, messages))
    remaining = messages
    mode = Progress.choose(sys.stderr, args.progress, fallback="off")

    async def sender() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await conn.send(message)

    async def send_all() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(parallel):
                nursery.start_soon(sender)

    start = trio.current_time()
    try:
        await with_progress(conn, total, mode, sys.stderr, send_all)
    except MessageTooLarge as exc:
        raise too_large(exc, len(message)) from None
    elapsed = trio.current_time() - start
    return {
        "bytes": total,
        "messages": messages,
        "message_bytes": len(message),
        "parallel": parallel,
        "seconds": elapsed,
        "bytes_per_second": total / elapsed if elapsed > 0 else None,
        "mbit_per_second": total * 8 / elapsed / 1e6 if elapsed > 0 else None,
    }


def _percentile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _print_bench(result: dict[str, Any]) -> None:
    if result["mode"] == "local":
        print("bench: two endpoints on 127.0.0.1 in this process (no PEER given)")
    else:
        print(f"bench: against {result['peer']}")
    print(f"handshake:   {result['handshake_ms']:.2f} ms")
    lat = result["latency"]
    if lat["rounds"]:
        print(
            f"latency:     {lat['rounds']} requests of {lat['request_bytes']} bytes: "
            f"min {lat['min_ms']:.3f} ms, median {lat['median_ms']:.3f} ms, "
            f"p90 {lat['p90_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms, max {lat['max_ms']:.3f} ms"
        )
    thr = result["throughput"]
    print(
        f"throughput:  {format_size(thr['bytes'])} in {thr['messages']} message(s) of "
        f"{format_size(thr['message_bytes'])}, {thr['parallel']} in flight: "
        f"{format_duration(thr['seconds'])}, {format_rate(thr['bytes'], thr['seconds'])}"
    )
