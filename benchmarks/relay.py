# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Relayed against direct: latency, goodput and CPU through a relay, as a ratio to direct.

Usage::

    python benchmarks/relay.py            # 2,000 round trips, a 50 MiB message
    python benchmarks/relay.py --smoke    # tiny counts
    python benchmarks/relay.py --json -   # one JSON object on stdout
    python benchmarks/relay.py --pairs 3  # 3 runs, each in a fresh process, alternating
                                          # which path goes first; medians and ratios

``benchmarks/run.py`` runs it as workload W8 (``run_pairs``).

Three endpoints in one process on 127.0.0.1 (real UDP): a relay
(``Config(relay=True)``) and two peers registered with it.  The same
workloads run over a direct connection and over a relayed one (dialled
as ``<node-id>/via/<relay>``, hole punching off): request/response of
1 KiB, sequential (p50 and p99 latency, and CPU seconds of the whole
process per round trip), and one large message (goodput, MB/s = 10^6
bytes/s, from the send until the receipt, and CPU seconds per MB).  The
relay carries every datagram of the relayed connection on its streams, so
it adds a hop, framing and the relay's own QUIC streams; all three
endpoints share one CPU here, so the ratio is an upper bound on the cost,
and CPU per operation (which counts the relay's work too) is the figure
to trust on a loaded machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
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
    cpu = time.process_time()
    for _ in range(count):
        start = time.monotonic()
        await conn.request(payload)
        latencies.append(time.monotonic() - start)
    rt_cpu = time.process_time() - cpu
    latencies.sort()
    big = bytes(size)
    cpu = time.process_time()
    start = time.monotonic()
    await conn.send(big)
    elapsed = time.monotonic() - start
    return {
        "path": conn.path,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3,
        "cpu_ms_per_rt": rt_cpu / count * 1e3,
        "goodput_mb_s": size / elapsed / 1e6,
        "cpu_s_per_mb": (time.process_time() - cpu) / (size / 1e6),
    }


async def run(count: int, size: int, *, relayed_first: bool = False) -> dict[str, Any]:
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
            results: dict[str, Any] = {}
            for kind in ("relayed", "direct") if relayed_first else ("direct", "relayed"):
                if kind == "direct":
                    conn = await a.connect(b.local_address, node_id=b.node_id)
                else:
                    conn = await _connect_relayed(
                        a, PeerAddress(b.node_id, relay=relay.peer_address)
                    )
                results[kind] = await _measure(conn, count, size)
                await conn.aclose()
            nursery.cancel_scope.cancel()
    results["ratio"] = ratios(results["direct"], results["relayed"])
    results["workload"] = {"round_trips": count, "message_bytes": size}
    results["relayed_first"] = relayed_first
    return results


async def _connect_relayed(a: qp2p_trio.Endpoint, via: PeerAddress) -> qp2p_trio.Connection:
    with trio.fail_after(30):
        while True:  # B registers with the relay in the background
            try:
                return await a.connect(via)
            except qp2p_trio.PeerNotAtRelay:
                await trio.sleep(0.05)


#: metric -> (label, unit, name of its ratio relayed / direct).
METRICS = {
    "p50_ms": ("latency p50", "ms", "p50"),
    "p99_ms": ("latency p99", "ms", "p99"),
    "cpu_ms_per_rt": ("CPU per round trip", "ms", "cpu_per_rt"),
    "goodput_mb_s": ("goodput", "MB/s", "goodput"),
    "cpu_s_per_mb": ("CPU per MB", "s", "cpu_per_mb"),
}


def ratios(direct: dict[str, Any], relayed: dict[str, Any]) -> dict[str, float]:
    """relayed / direct for every metric, by ratio name (``p50``, ``goodput``...)."""
    return {name: relayed[key] / direct[key] for key, (_l, _u, name) in METRICS.items()}


def run_pairs(pairs: int, count: int, size: int, timeout: float = 600) -> dict[str, Any]:
    """``pairs`` runs, each in a fresh process, alternating which path goes first.

    Returns per path the median of each metric, the per-run ratios and their
    medians (``ratio``), and the runs.
    """
    runs = []
    for n in range(pairs):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "-"]
        cmd += ["--count", str(count), "--size", str(size)]
        if n % 2:
            cmd.append("--relayed-first")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"relay benchmark run {n + 1} failed:\n{proc.stderr[-4000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {"pairs": pairs, "workload": runs[0]["workload"], "runs": runs}
    for kind in ("direct", "relayed"):
        out[kind] = {key: statistics.median(r[kind][key] for r in runs) for key in METRICS}
    out["ratio"] = {
        name: statistics.median(r["ratio"][name] for r in runs) for name in runs[0]["ratio"]
    }
    return out


def table(result: dict[str, Any]) -> str:
    """The medians of both paths and the median ratio, one metric a line."""
    lines = [
        f"  {'metric':20} {'unit':5} {'direct':>9} {'relayed':>9} {'relayed/direct':>15}",
    ]
    for key, (label, unit, name) in METRICS.items():
        d, r = result["direct"][key], result["relayed"][key]
        lines.append(f"  {label:20} {unit:5} {d:9.3f} {r:9.3f} {result['ratio'][name]:14.2f}x")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts")
    parser.add_argument("--count", type=int, help="round trips (default 2000, smoke 50)")
    parser.add_argument("--size", type=int, help="the large message's bytes (default 50 MiB)")
    parser.add_argument("--pairs", type=int, default=1, help="runs, each in a fresh process")
    parser.add_argument("--relayed-first", action="store_true", help="measure relayed first")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    args = parser.parse_args()
    count, size = (50, 1 * MiB) if args.smoke else (2000, 50 * MiB)
    count = args.count or count
    size = args.size or size
    if args.pairs > 1:
        results = run_pairs(args.pairs, count, size)
    else:
        results = trio.run(functools.partial(run, count, size, relayed_first=args.relayed_first))
    out = sys.stderr if args.json == "-" else sys.stdout
    print(
        f"relayed vs direct ({count} round trips of 1 KiB, one {size / MiB:g} MiB message, "
        f"{args.pairs} run(s))",
        file=out,
    )
    print(table(results), file=out, end="")
    if args.json == "-":
        print(json.dumps(results))
    elif args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
