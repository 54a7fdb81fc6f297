# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Where the memory of an endpoint and of a connection goes (issue 15, W6).

Usage::

    python benchmarks/memory.py client [-n 200] [--top 30] [--trace]
    python benchmarks/memory.py server [-n 200] [--top 30] [--trace]

``client``: this process opens ``n`` endpoints on loopback, each dialling one
server in a child process (W6's client side: an endpoint per connection).
``server``: this process is the server; a child process opens the ``n``
dialling endpoints (W6's server side).  After one warm-up endpoint, it
prints per added endpoint or connection the RSS growth (KiB), the objects
the cyclic collector tracks (what a full collection walks) and the
ones added by type; with ``--trace``, also the bytes `tracemalloc` counts
(its own overhead inflates the RSS then), by file and by file:line.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import linecache
import os
import subprocess
import sys
import tracemalloc
from typing import Any

import trio

import qp2p_trio

_HERE = os.path.abspath(__file__)


def _config() -> qp2p_trio.Config:
    return qp2p_trio.Config(idle_timeout=60.0, keep_alive_interval=5.0, max_connections=100_000)


def _rss_kib() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class _Snapshot:
    def __init__(self, trace: bool) -> None:
        gc.collect()
        self.rss = _rss_kib()
        self.trace = tracemalloc.take_snapshot() if trace else None
        self.types = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
        )
        self.tracked = sum(self.types.values())


def _short(filename: str) -> str:
    for anchor in ("site-packages/", "qp2p_trio/"):
        if anchor in filename:
            return filename.split(anchor)[-1]
    return filename


def _report(side: str, n: int, a: _Snapshot, b: _Snapshot, top: int) -> None:
    print(
        f"{side}: {n} added; per added: RSS {(b.rss - a.rss) / n:.1f} KiB, "
        f"tracked objects {(b.tracked - a.tracked) / n:.1f}"
    )
    if a.trace is not None and b.trace is not None:
        skip = [tracemalloc.Filter(False, tracemalloc.__file__)]
        old, new = a.trace.filter_traces(skip), b.trace.filter_traces(skip)
        by_file = new.compare_to(old, "filename")
        print(f"tracemalloc: {sum(s.size_diff for s in by_file) / n:.0f} B per added; by file:")
        for stat in by_file[:top]:
            print(f"  {stat.size_diff / n:8.0f} B  {_short(stat.traceback[0].filename)}")
        print("by line:")
        for stat in new.compare_to(old, "lineno")[:top]:
            frame = stat.traceback[0]
            code = linecache.getline(frame.filename, frame.lineno).strip()[:60]
            print(f"  {stat.size_diff / n:8.0f} B  {_short(frame.filename)}:{frame.lineno}  {code}")
    print("tracked objects by type:")
    for name, count in (b.types - a.types).most_common(top):
        print(f"  {count / n:8.2f}  {name}")


async def _hold(done: trio.Event, *, task_status: trio.TaskStatus[qp2p_trio.Endpoint]) -> None:
    async with qp2p_trio.open_endpoint(("127.0.0.1", 0), config=_config()) as ep:
        task_status.started(ep)
        await done.wait()


async def _line(proc: trio.Process) -> str:
    assert proc.stdout is not None
    data = b""
    while not data.endswith(b"\n"):
        chunk = await proc.stdout.receive_some(4096)
        if not chunk:
            raise RuntimeError("the child process ended")
        data += chunk
    return data.decode()


async def _measure(side: str, n: int, trace: bool, top: int) -> None:
    done = trio.Event()
    me = [sys.executable, _HERE]
    async with trio.open_nursery() as nursery:
        if side == "client":
            proc = await trio.lowlevel.open_process(
                [*me, "_serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            peer = json.loads(await _line(proc))["peer"]

            async def add() -> None:
                ep = await nursery.start(_hold, done)
                await ep.connect(peer)

        else:
            server: qp2p_trio.Endpoint = await nursery.start(_hold, done)
            proc = await trio.lowlevel.open_process(
                [*me, "_dial", str(server.peer_address)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )

            async def add() -> None:
                assert proc.stdin is not None
                await proc.stdin.send_all(b"1\n")
                await _line(proc)

        await add()
        await trio.sleep(0.5)
        before = _Snapshot(trace)
        for _ in range(n):
            await add()
        await trio.sleep(1.0)
        after = _Snapshot(trace)
        _report(side, n, before, after, top)
        assert proc.stdin is not None
        await proc.stdin.send_all(b"0\n")
        await proc.wait()
        done.set()


async def _child(role: str, peer: str | None) -> None:
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        if role == "_serve":
            ep = await nursery.start(_hold, done)
            print(json.dumps({"peer": str(ep.peer_address)}), flush=True)
            await trio.to_thread.run_sync(sys.stdin.readline)
        else:
            assert peer is not None
            while (await trio.to_thread.run_sync(sys.stdin.readline)).strip() == "1":
                ep = await nursery.start(_hold, done)
                await ep.connect(peer)
                print("ok", flush=True)
        done.set()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("_serve", "_dial"):
        trio.run(_child, args[0], args[1] if len(args) > 1 else None)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["client", "server"])
    parser.add_argument("-n", type=int, default=200, help="endpoints or connections added")
    parser.add_argument("--top", type=int, default=30, help="lines per listing")
    parser.add_argument("--trace", action="store_true", help="tracemalloc by file and line")
    opts: Any = parser.parse_args(args)
    if opts.trace:
        tracemalloc.start(1)
    trio.run(_measure, opts.side, opts.n, opts.trace, opts.top)


if __name__ == "__main__":
    main()
