# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio ping PEER``: handshake time, then round-trip times of small requests."""

from __future__ import annotations

import math
import signal
import statistics
import sys
from typing import TYPE_CHECKING, Any

import trio

from qp2p_trio import ConnectionClosed

from .client import open_client, parse_peer
from .errors import CliError, ExitCode
from .metrics import metrics_address, metrics_option, serving_metrics
from .options import client_options, count, interval, seconds, size
from .output import format_duration, print_json
from .protocol import PROBE_TAG, SEQ

if TYPE_CHECKING:
    import argparse

    from qp2p_trio import Connection, Endpoint, PeerAddress

    from .options import Commands

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    """Add the ``ping`` subcommand."""
    parser = commands.add(
        "ping",
        "handshake time, then round-trip times of small requests",
        "Connect (printing the handshake time), then send a small request every INTERVAL and "
        "print each round-trip time, then a summary. Exits 8 if no reply came at all.",
        run,
    )
    parser.add_argument("peer", metavar="PEER", help="peer address")
    parser.add_argument(
        "-c",
        "--count",
        type=count,
        default=4,
        metavar="COUNT",
        help="rounds (default: 4; 0: until Ctrl-C)",
    )
    parser.add_argument(
        "-i",
        "--interval",
        type=interval,
        default=1.0,
        metavar="SECONDS",
        help="time between rounds (default: 1)",
    )
    parser.add_argument(
        "-W",
        "--wait",
        type=seconds,
        default=2.0,
        metavar="SECONDS",
        help="time to wait for each reply before counting it lost (default: 2)",
    )
    parser.add_argument(
        "-s",
        "--size",
        type=size,
        default=32,
        metavar="SIZE",
        help="probe size in bytes (default and minimum: 32)",
    )
    client_options(parser)
    metrics_option(parser)


def _announce_metrics(url: str) -> None:
    print(f"metrics: {url}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> int:
    """``qp2p-trio ping PEER``: handshake time, then one probe request per round."""
    peer = parse_peer(args.peer, args)
    metrics = metrics_address(args.metrics)
    probe_size = max(args.size, len(PROBE_TAG) + SEQ.size)
    human = not args.json
    rounds: list[dict[str, Any]] = []
    handshake: float | None = None
    total_time = 0.0
    path = "direct"
    # Ctrl-C ends the pinging (and prints the summary, like ping), at any
    # point: while connecting too.
    interrupted = False
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                nonlocal interrupted
                async for _ in signals:
                    interrupted = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            async with (
                open_client(args, peer) as (ep, conn, handshake),
                serving_metrics(ep, metrics, _announce_metrics),
            ):
                path = _path(conn)
                if human:
                    print(
                        f"PING {peer}: {probe_size}-byte probes over a verified QUIC connection\n"
                        f"handshake: {format_duration(handshake)} (node id verified), "
                        f"path: {_path(conn)}",
                        flush=True,
                    )
                start = trio.current_time()
                try:
                    await _ping_rounds(ep, args, conn, peer, probe_size, rounds, human)
                finally:
                    total_time = trio.current_time() - start
            nursery.cancel_scope.cancel()
    if handshake is None:
        raise KeyboardInterrupt
    code = _summary(args, peer, handshake, rounds, total_time, path)
    # Stopped by Ctrl-C (the way to end ``-c 0``): the summary, then 130.
    return ExitCode.INTERRUPTED if interrupted else code


def _path(conn: Connection) -> str:
    """``direct``, or ``relayed via <relay>``: of the connection that now carries requests."""
    while conn.replacement is not None:  # retired for a direct one (hole punching)
        conn = conn.replacement
    relay = conn.peer.relay
    return f"relayed via {relay}" if relay is not None else conn.path


def _summary(
    args: argparse.Namespace,
    peer: PeerAddress,
    handshake: float,
    rounds: list[dict[str, Any]],
    total_time: float,
    path: str = "direct",
) -> int:
    """Print the statistics of every round; the exit code says whether any reply came."""
    rtts = [r["rtt_ms"] for r in rounds if r.get("rtt_ms") is not None]
    sent = len(rounds)
    lost = sent - len(rtts)
    summary: dict[str, Any] = {
        "peer": str(peer),
        "handshake_ms": handshake * 1e3,
        "path": path,
        "sent": sent,
        "received": len(rtts),
        "loss_percent": 100.0 * lost / sent if sent else 0.0,
        "rounds": rounds,
    }
    if rtts:
        mean = statistics.fmean(rtts)
        summary.update(
            min_ms=min(rtts),
            avg_ms=mean,
            max_ms=max(rtts),
            mdev_ms=math.sqrt(statistics.fmean([(r - mean) ** 2 for r in rtts])),
        )
    if args.json:
        print_json(summary)
    else:
        print(f"--- {peer.node_id.short()} ping statistics ---")
        print(
            f"{sent} probes sent, {len(rtts)} replies, {summary['loss_percent']:.0f}% lost, "
            f"time {format_duration(total_time)}"
        )
        if rtts:
            print(
                "rtt min/avg/max/mdev = "
                f"{summary['min_ms']:.3f}/{summary['avg_ms']:.3f}/"
                f"{summary['max_ms']:.3f}/{summary['mdev_ms']:.3f} ms"
            )
    if sent and not rtts:
        return ExitCode.PEER_FAILED
    return ExitCode.OK


async def _ping_rounds(
    ep: Endpoint,
    args: argparse.Namespace,
    conn: Connection,
    peer: PeerAddress,
    probe_size: int,
    rounds: list[dict[str, Any]],
    human: bool,
) -> None:
    start = trio.current_time()
    seq = 0
    path = _path(conn)
    while args.count == 0 or seq < args.count:
        seq += 1
        await trio.sleep_until(start + (seq - 1) * args.interval)
        probe = PROBE_TAG + SEQ.pack(seq)
        probe += bytes(probe_size - len(probe))
        sent_at = trio.current_time()
        reply: bytes | None = None
        with trio.move_on_after(args.wait):
            try:
                reply = await conn.request(probe)
            except ConnectionClosed as exc:
                if not exc.idle_timeout:
                    raise
                # The path went silent (a punched direct path that stopped
                # working): carry on over what the endpoint reaches the peer
                # by now, the relay it fell back to.
                conn = await ep.connect(peer)
                reply = await conn.request(probe)
        rtt = trio.current_time() - sent_at
        if reply is None:
            rounds.append({"seq": seq, "rtt_ms": None})
            if human:
                print(f"no reply from {peer.node_id.short()}: seq={seq} within {args.wait:g} s")
            continue
        if reply != probe:
            raise CliError(
                ExitCode.MISMATCH, f"seq={seq}: the reply differs from the probe it echoes"
            )
        rounds.append({"seq": seq, "rtt_ms": rtt * 1e3, "path": _path(conn)})
        if rounds[-1]["path"] != path:  # hole punching moved the connection
            path = rounds[-1]["path"]
            if human:
                print(f"path changed: {path}", flush=True)
        if human:
            print(
                f"{len(reply)} bytes from {peer.node_id.short()}: seq={seq} time={rtt * 1e3:.3f} ms",
                flush=True,
            )
