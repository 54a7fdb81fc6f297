# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""W7, the swarm: many endpoints in one process on the virtual network.

Usage::

    python benchmarks/swarm.py                 # 100, 300 and 1,000 endpoints
    python benchmarks/swarm.py --sizes 50,100  # other sizes
    python benchmarks/swarm.py --one 1000      # one size in this process (JSON line)
    python benchmarks/swarm.py --freeze        # the application calls gc.freeze()

Each size runs in a fresh process (so its peak RSS is its own) under
``trio.testing.MockClock`` with ``autojump_threshold=0``: virtual time jumps
whenever every task waits, so the wall time is CPU work only.  N endpoints,
each on its own virtual host (``127.x.y.z``), seeded: every endpoint dials
``degree`` (8) distinct random others, then sends ``messages`` (10) one-way
messages of 256 bytes to each of them (each ``send`` waits for its receipt),
all endpoints at once.  Reported per size: wall seconds (total, and the
connect and message phases), messages per wall second, peak RSS (MiB), and
RSS per endpoint, CPU seconds (in the JSON), and the CPU seconds spent in
Python's cyclic garbage collector (its full collections scan the whole
heap, so their cost grows faster than the swarm); then how wall time and
RSS grow from the smallest size to the largest, against linear growth.

``--freeze``: the application calls `gc.freeze` once its endpoints are open
and again once they are connected, so the collector's full collections no
longer scan that long-lived state (an application's call, not the
library's: what is frozen is never collected, cycles included).

qp2p_trio only: the baselines cannot run on the virtual network.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_SIZES = (100, 300, 1000)
DEGREE = 8
MESSAGES = 10
SIZE = 256
SEED = 7


def _host_ip(i: int) -> str:
    """A distinct 127/8 address for endpoint ``i`` (up to about 16 million)."""
    n = i + 2
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


async def _swarm(n: int, degree: int, messages: int, freeze: bool = False) -> dict[str, Any]:
    import trio

    import qp2p_trio
    from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

    rng = random.Random(SEED)
    network = MemoryNetwork(seed=SEED)
    config = qp2p_trio.Config(idle_timeout=600.0)
    payload = b"\x01" * SIZE
    received = 0
    expected = n * degree * messages
    all_in = trio.Event()
    t0 = time.perf_counter()
    with network.activate():
        async with open_endpoint_factory(network, config=config) as factory:
            endpoints = [await factory(host=network.add_host(v4=_host_ip(i))) for i in range(n)]
            t_open = time.perf_counter()
            if freeze:
                gc.freeze()

            async def drain(ep: qp2p_trio.Endpoint) -> None:
                nonlocal received
                async for _msg in ep.messages():
                    received += 1
                    if received == expected:
                        all_in.set()

            async def dial(i: int, targets: list[int], out: list[Any]) -> None:
                ep = endpoints[i]
                for j in targets:
                    peer = endpoints[j]
                    out.append(await ep.connect(peer.local_address, node_id=peer.node_id))

            async def talk(conn: Any) -> None:
                for _ in range(messages):
                    await conn.send(payload)

            plan = [rng.sample([j for j in range(n) if j != i], degree) for i in range(n)]
            conns: list[list[Any]] = [[] for _ in range(n)]
            async with trio.open_nursery() as drains:
                for ep in endpoints:
                    drains.start_soon(drain, ep)
                async with trio.open_nursery() as nursery:
                    for i in range(n):
                        nursery.start_soon(dial, i, plan[i], conns[i])
                t_connected = time.perf_counter()
                if freeze:
                    gc.freeze()
                async with trio.open_nursery() as nursery:
                    for per_ep in conns:
                        for conn in per_ep:
                            nursery.start_soon(talk, conn)
                with trio.fail_after(600):
                    await all_in.wait()
                t_done = time.perf_counter()
                drains.cancel_scope.cancel()
            virtual = trio.current_time()
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "endpoints": n,
        "degree": degree,
        "messages": expected,
        "received": received,
        "open_s": t_open - t0,
        "connect_s": t_connected - t_open,
        "message_s": t_done - t_connected,
        "wall_s": t_done - t0,
        "msgs_per_wall_s": expected / (t_done - t_connected),
        "virtual_s": virtual,
        "peak_rss_mib": maxrss_mib,
        "rss_kib_per_endpoint": maxrss_mib * 1024 / n,
    }


class _GcTimer:
    """Counts the cyclic garbage collector's full collections and the time all collections take."""

    def __init__(self) -> None:
        self.full = 0
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.full += info["generation"] == 2


def run_one(
    n: int, degree: int = DEGREE, messages: int = MESSAGES, freeze: bool = False
) -> dict[str, Any]:
    """Run one swarm of ``n`` endpoints in this process."""
    import trio
    import trio.testing

    timer = _GcTimer()
    gc.callbacks.append(timer)
    cpu = time.process_time()
    try:
        result: dict[str, Any] = trio.run(
            _swarm,
            n,
            degree,
            messages,
            freeze,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
    finally:
        gc.callbacks.remove(timer)
        gc.unfreeze()
    cpu = time.process_time() - cpu
    return {**result, "cpu_s": cpu, "gc_s": timer.seconds, "gc_full_collections": timer.full}


def run_sizes(
    sizes: list[int],
    degree: int = DEGREE,
    messages: int = MESSAGES,
    timeout: float = 1800,
    freeze: bool = False,
) -> dict[str, Any]:
    """Run each size in a fresh process; return the results and the growth."""
    results = []
    for n in sizes:
        proc = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--one",
                str(n),
                "--degree",
                str(degree),
                "--messages",
                str(messages),
                *(["--freeze"] if freeze else []),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"swarm of {n} failed:\n{proc.stderr[-4000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, last = results[0], results[-1]
    scale = last["endpoints"] / first["endpoints"]
    growth = {
        "endpoints_x": scale,
        "wall_x": last["wall_s"] / first["wall_s"],
        "rss_x": last["peak_rss_mib"] / first["peak_rss_mib"],
        "rss_per_endpoint_x": last["rss_kib_per_endpoint"] / first["rss_kib_per_endpoint"],
    }
    return {"sizes": results, "growth": growth}


def table(result: dict[str, Any]) -> str:
    head = (
        "endpoints",
        "messages",
        "wall s",
        "connect s",
        "msgs s",
        "msg/s",
        "peak RSS MiB",
        "KiB/endpoint",
        "GC s",
    )
    rows = [head] + [
        (
            f"{r['endpoints']:,}",
            f"{r['messages']:,}",
            f"{r['wall_s']:.1f}",
            f"{r['connect_s']:.1f}",
            f"{r['message_s']:.1f}",
            f"{r['msgs_per_wall_s']:,.0f}",
            f"{r['peak_rss_mib']:.0f}",
            f"{r['rss_kib_per_endpoint']:.0f}",
            f"{r['gc_s']:.1f}",
        )
        for r in result["sizes"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(widths[i]) for i, c in enumerate(row)) for row in rows]
    g = result["growth"]
    lines.append(
        f"{g['endpoints_x']:g}x the endpoints: {g['wall_x']:.1f}x the wall time, "
        f"{g['rss_x']:.1f}x the peak RSS ({g['rss_per_endpoint_x']:.2f}x per endpoint)"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="W7: a swarm on the virtual network.")
    parser.add_argument("--sizes", help="comma-separated endpoint counts (default 100,300,1000)")
    parser.add_argument("--one", type=int, help="run one size here and print its JSON line")
    parser.add_argument("--degree", type=int, default=DEGREE, help="peers each endpoint dials")
    parser.add_argument("--messages", type=int, default=MESSAGES, help="messages per neighbour")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--freeze", action="store_true", help="gc.freeze() after opening and after connecting"
    )
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.degree, args.messages, args.freeze)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(DEFAULT_SIZES)
    if len(sizes) < 2 or any(s <= args.degree for s in sizes):
        parser.error(f"give two or more sizes, each above the degree ({args.degree})")
    result = run_sizes(sizes, args.degree, args.messages, freeze=args.freeze)
    print(table(result), end="")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
