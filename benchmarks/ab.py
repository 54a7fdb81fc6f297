# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A/B: two (or more) qp2p_trio source trees on one workload, alternating, with CPU per operation.

Usage::

    git -C REPO archive BASE | tar -x -C /tmp/a     # a tree per variant
    python benchmarks/ab.py W2 6 a=/tmp/a b=/path/to/checkout
    AB_PARAMS='{"count": 5000}' python benchmarks/ab.py W4 4 a=/tmp/a b=/tmp/b

Each run starts ``impl_qp2p``'s server and then its client (as ``run.py``
does), each in its own process with ``PYTHONPATH`` set to the variant's
tree; pairs alternate the order (a b, b a, ...).  Per run it prints the
workload's rate and both processes' CPU microseconds per operation, counted
from the server's ready line and the client's first ``connect`` (so
imports and start-up are left out), and datagrams received per operation;
then the medians, and the median of the per-pair ratios against the first
variant.  On a loaded machine the CPU figures are the steadier ones.
Workloads W1-W5 (see ``run.py``; W5's operation is 1,200 bytes of payload); ``AB_PARAMS`` overrides parameters.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PARAMS: dict[str, dict[str, Any]] = {
    "W1": {"warmup": 3, "sequential": 300, "concurrent": 1},
    "W2": {"warmup": 50, "count": 2000, "size": 1024},
    "W3": {"warmup": 50, "count": 3000, "size": 1024, "inflight": 64},
    "W4": {"warmup": 20, "count": 5000, "size": 1024, "inflight": 100, "expect": 5000},
    "W5": {"size": 100 * 1024 * 1024, "expect": 1},
}


def _worker() -> None:
    """``ab.py --worker ROLE WORKLOAD PARAMS [PEER]``: impl_qp2p, with CPU counted from the start."""
    sys.path.insert(0, str(HERE))
    import impl_qp2p

    import qp2p_trio

    started: list[float] = []
    emit = impl_qp2p.emit

    def counting_emit(obj: dict[str, Any]) -> None:
        if "ready" in obj:
            started.append(time.process_time())
        if "result" in obj and started:
            obj["result"]["cpu_s"] -= started[0]
        emit(obj)

    connect = qp2p_trio.Endpoint.connect

    async def counting_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not started:
            started.append(time.process_time())
        return await connect(self, *args, **kwargs)

    impl_qp2p.emit = counting_emit
    qp2p_trio.Endpoint.connect = counting_connect  # type: ignore[method-assign]
    argv = sys.argv[2:]
    peer = json.loads(argv[3]) if len(argv) > 3 else None
    impl_qp2p.main(argv[0], argv[1], json.loads(argv[2]), peer)


def _run(workload: str, params: dict[str, Any], tree: str) -> tuple[dict[str, Any], dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=tree)
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    server = subprocess.Popen(
        [*me, "server", workload, json.dumps(params)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        ready = None
        for line in server.stdout:
            ready = json.loads(line).get("ready")
            if ready is not None:
                break
        if ready is None:
            raise RuntimeError("the server ended before it was ready")
        client = subprocess.run(
            [*me, "client", workload, json.dumps(params), json.dumps(ready)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
            timeout=params["timeout"],
        )
        lines = [json.loads(x) for x in client.stdout.splitlines() if x.strip()]
        client_result = next(x["result"] for x in lines if "result" in x)
        server.stdin.write("stop\n")
        server.stdin.flush()
        server_result = None
        for line in server.stdout:
            server_result = json.loads(line).get("result")
            if server_result is not None:
                break
        if server_result is None:
            raise RuntimeError("the server gave no result")
        return client_result, server_result
    finally:
        server.kill()
        server.wait()


def _measure(
    workload: str, params: dict[str, Any], c: dict[str, Any], s: dict[str, Any]
) -> dict[str, float]:
    if workload == "W1":
        ops = params["sequential"] + params["warmup"]
        m = {"conn/s": c["conns_per_s"]}
    elif workload == "W2":
        ops = params["count"] + params["warmup"]
        m = {"rt/s": c["rt_per_s"], "p50 ms": c["p50_ms"]}
    elif workload == "W3":
        ops = params["count"] + params["warmup"]
        m = {"req/s": c["msgs_per_s"]}
    elif workload == "W4":
        ops = params["count"] + params["warmup"]
        m = {"msg/s": params["count"] / (s["t_all"] - c["t0"])}
    else:
        ops = params["size"] // 1200  # per 1,200 bytes of payload
        m = {"MB/s": params["size"] / 1e6 / (s["t_all"] - c["t0"])}
        m["sender rx/receiver rx"] = c["datagrams_received"] / s["datagrams_received"]
    m["client cpu us/op"] = c["cpu_s"] * 1e6 / ops
    m["server cpu us/op"] = s["cpu_s"] * 1e6 / ops
    m["dgrams/op"] = (c["datagrams_received"] + s["datagrams_received"]) / ops
    if os.environ.get("AB_SPLIT"):  # who received them: the client, the server
        m["client rx/op"] = c["datagrams_received"] / ops
        m["server rx/op"] = s["datagrams_received"] / ops
    return m


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        _worker()
        return 0
    if len(argv) < 4 or argv[0] not in PARAMS:
        sys.exit(__doc__)
    workload, pairs = argv[0], int(argv[1])
    variants = [tuple(a.split("=", 1)) for a in argv[2:]]
    params = {**PARAMS[workload], **json.loads(os.environ.get("AB_PARAMS", "{}")), "timeout": 600}
    results: list[dict[str, dict[str, float]]] = []
    for i in range(pairs):
        order = variants if i % 2 == 0 else variants[::-1]
        row = {}
        for name, tree in order:
            m = _measure(workload, params, *_run(workload, params, tree))
            row[name] = m
            print(i, name, {k: round(v, 3) for k, v in m.items()}, flush=True)
        results.append(row)
    first = variants[0][0]
    print("medians (and the median of per-pair ratios to " + first + "):")
    for name, _ in variants:
        cells = []
        for key in results[0][name]:
            med = statistics.median(r[name][key] for r in results)
            ratio = statistics.median(r[name][key] / r[first][key] for r in results)
            cells.append(f"{key} {med:.4g} ({ratio:.3f})")
        print(f"  {name}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
