# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Relayed against direct: latency and goodput through a relay, as a ratio to direct.

Usage::

    python benchmarks/relay.py            # 2,000 round trips, a 50 MiB message
    python benchmarks/relay.py --smoke    # tiny counts
    python benchmarks/relay.py --json -   # one JSON object on stdout

Three endpoints in one process on 127.0.0.1 (real UDP): a relay
(``Config(relay=True)``) and two peers registered with it.  The same
workloads run over a direct connection and over a relayed one (dialled
as ``<node-id>/via/<relay>``, hole punching off): request/response of
1 KiB, sequential (p50 and p99 latency), and one large message (goodput,
MB/s = 10^6 bytes/s, from the send until the receipt).  The relay carries
every datagram of the relayed connection on its streams, so it adds a hop,
framing and the relay's own QUIC streams; all three endpoints share one
CPU here, so the ratio is an upper bound on the cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import trio

import qp2p_trio
from qp2p_trio import Config, PeerAddress

MiB = 1024 * 1024


async def _echo(ep: qp2p_trio.Endpoint) -> None:
    async for msg in ep.messages():
        if msg.expects_reply:
            await msg.reply(msg.payload)


async def _measure(conn: qp2p_trio.Connection, count: int, size: int) -> dict[str, Any]:
    payload = bytes(1024)
    for _ in range(20):  # warm-up
        await conn.request(payload)
    latencies = []
    for _ in range(count):
        start = time.monotonic()
        await conn.request(payload)
        latencies.append(time.monotonic() - start)
    latencies.sort()
    big = bytes(size)
    start = time.monotonic()
    await conn.send(big)
    elapsed = time.monotonic() - start
    return {
        "path": conn.path,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3,
        "goodput_mb_s": size / elapsed / 1e6,
    }


async def run(count: int, size: int) -> dict[str, Any]:
    limits = {"max_message_size": size, "receive_queue_bytes": 2 * size}
    local = ("127.0.0.1", 0)
    async with qp2p_trio.open_endpoint(
        local, config=Config(relay=True, relay_peer_rate=1 << 40, relay_peer_buffer=8 * MiB)
    ) as relay:
        peer = Config(home_relay=relay.peer_address, hole_punching=False, **limits)
        async with (
            qp2p_trio.open_endpoint(local, config=peer) as a,
            qp2p_trio.open_endpoint(local, config=peer) as b,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(_echo, b)
            direct = await a.connect(b.local_address, node_id=b.node_id)
            results = {"direct": await _measure(direct, count, size)}
            await direct.aclose()
            via = PeerAddress(b.node_id, relay=relay.peer_address)
            with trio.fail_after(30):
                while True:  # B registers with the relay in the background
                    try:
                        relayed = await a.connect(via)
                        break
                    except qp2p_trio.PeerNotAtRelay:
                        await trio.sleep(0.05)
            results["relayed"] = await _measure(relayed, count, size)
            nursery.cancel_scope.cancel()
    d, r = results["direct"], results["relayed"]
    results["ratio"] = {
        "p50": r["p50_ms"] / d["p50_ms"],
        "p99": r["p99_ms"] / d["p99_ms"],
        "goodput": r["goodput_mb_s"] / d["goodput_mb_s"],
    }
    results["workload"] = {"round_trips": count, "message_bytes": size}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    args = parser.parse_args()
    count, size = (50, 1 * MiB) if args.smoke else (2000, 50 * MiB)
    results = trio.run(run, count, size)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(
        f"relayed vs direct ({count} round trips of 1 KiB, one {size // MiB} MiB message)", file=out
    )
    for kind in ("direct", "relayed"):
        r = results[kind]
        print(
            f"  {kind:8} p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms  "
            f"goodput {r['goodput_mb_s']:7.1f} MB/s",
            file=out,
        )
    ratio = results["ratio"]
    print(
        f"  ratio    p50 {ratio['p50']:.2f}x  p99 {ratio['p99']:.2f}x  "
        f"goodput {ratio['goodput']:.2f}x",
        file=out,
    )
    if args.json == "-":
        print(json.dumps(results))
    elif args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
