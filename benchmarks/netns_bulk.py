# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""W5 (one bulk message) between two network namespaces joined by a veth pair (root only).

Usage::

    sudo python benchmarks/netns_bulk.py [--mib 100] [--pairs 3] [--mtu 1500] [--json]
    python benchmarks/netns_bulk.py --loopback [--mib 100] [--pairs 3] [--json]

Creates two namespaces (``qpb<pid>a`` and ``qpb<pid>b``) joined by a veth
pair of the given MTU (10.77.0.1 and 10.77.0.2), runs a receiver endpoint
in one and a sender in the other (separate processes, real UDP through the
kernel's IP stack), and times one message of ``--mib`` MiB, alternately with
path MTU discovery on and off (``--pairs`` of each).  Reports goodput
(MB/s, first byte sent to last byte delivered, measured by the sender once
its message is acknowledged), the path MTU discovery reached, and packets
lost.  The namespaces and processes are removed on exit, also on failure
or Ctrl-C.  ``tests/test_netns.py`` runs it small.  ``--loopback`` runs
the same pair on 127.0.0.1 without namespaces (no root needed).  Each side
also reports the CPU seconds it spent on the measured message, the figure
to compare on a loaded machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.abspath(__file__)
MiB = 1024 * 1024
SUBNET = "10.77.0"


def _config(pmtu: bool, size: int) -> Any:
    import qp2p_trio

    limit = size + MiB
    return qp2p_trio.Config(
        max_message_size=limit,
        receive_queue_bytes=max(limit, 64 * MiB),
        receive_share=1.0,
        pmtu_discovery=pmtu,
    )


def _receiver(ip: str, pmtu: bool, size: int) -> None:
    import trio

    import qp2p_trio

    async def main() -> None:
        async with qp2p_trio.open_endpoint((ip, 0), config=_config(pmtu, size)) as ep:
            print(json.dumps({"port": ep.local_address[1], "node_id": str(ep.node_id)}), flush=True)
            await ep.receive()  # the warm-up
            cpu = time.process_time()
            msg = await ep.receive()
            cpu = time.process_time() - cpu
            if len(msg.payload) != size:
                raise SystemExit(f"received {len(msg.payload)} of {size} bytes")
            print(json.dumps({"received": len(msg.payload), "receiver_cpu_s": cpu}), flush=True)
            await trio.sleep(1)  # let the last ACKs leave

    trio.run(main)


def _sender(ip: str, target: str, port: int, node_id: str, pmtu: bool, size: int) -> None:
    import trio

    import qp2p_trio

    async def main() -> None:
        async with qp2p_trio.open_endpoint((ip, 0), config=_config(pmtu, size)) as ep:
            nid = qp2p_trio.NodeId.parse(node_id)
            conn = await ep.connect((target, port), node_id=nid)
            await conn.send(b"\0" * MiB)  # warm-up: the handshake and path MTU discovery
            payload = b"\1" * size
            cpu, t0 = time.process_time(), time.monotonic()
            await conn.send(payload)  # returns once the peer acknowledged all of it
            wall = time.monotonic() - t0
            stats = conn.statistics()
            print(
                json.dumps(
                    {
                        "mb_per_s": size / wall / 1e6,
                        "sender_cpu_s": time.process_time() - cpu,
                        "path_mtu": stats.path_mtu,
                        "packets_lost": stats.packets_lost,
                    }
                ),
                flush=True,
            )

    trio.run(main)


def _run(*argv: str) -> None:
    subprocess.run(["timeout", "20", *argv], check=True, capture_output=True)


@contextlib.contextmanager
def namespace_pair(mtu: int) -> Any:
    """Two namespaces and a veth pair of ``mtu``: yields their names; always removed."""
    prefix = f"qpb{os.getpid() % 100000}"
    names = (f"{prefix}a", f"{prefix}b")
    made: list[str] = []
    try:
        for ns in names:
            _run("ip", "netns", "add", ns)
            made.append(ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run(
            "ip", "-n", names[0], "link", "add", "veth0", "mtu", str(mtu), "type", "veth",
            "peer", "name", "veth0", "mtu", str(mtu), "netns", names[1],
        )  # fmt: skip
        for i, ns in enumerate(names):
            _run("ip", "-n", ns, "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", "veth0")
            _run("ip", "-n", ns, "link", "set", "veth0", "up")
        yield names
    finally:
        for ns in made:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, check=False)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _spawn(ns: str | None, *args: str, limit: int) -> subprocess.Popen[str]:
    where = ["ip", "netns", "exec", ns] if ns else []
    return subprocess.Popen(
        [*where, "timeout", str(limit), sys.executable, HERE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_run(
    names: tuple[str, str] | None, *, pmtu: bool, size: int, limit: int = 300
) -> dict[str, Any]:
    """One receiver in ``names[1]``, one sender in ``names[0]`` (None: loopback): their report."""
    flag = "on" if pmtu else "off"
    rx_ip, tx_ip = (f"{SUBNET}.2", f"{SUBNET}.1") if names else ("127.0.0.1", "127.0.0.1")
    rx = _spawn(
        names[1] if names else None, "--role", "receiver", "--pmtu", flag, "--bytes", str(size),
        "--ip", rx_ip, limit=limit,
    )  # fmt: skip
    tx = None
    try:
        assert rx.stdout is not None
        hello = json.loads(rx.stdout.readline() or "{}")
        if "port" not in hello:
            raise RuntimeError(f"the receiver did not start: {rx.communicate(timeout=5)[1]}")
        tx = _spawn(
            names[0] if names else None, "--role", "sender", "--pmtu", flag, "--bytes", str(size),
            "--ip", tx_ip, "--target", rx_ip, "--port", str(hello["port"]),
            "--node-id", hello["node_id"], limit=limit,
        )  # fmt: skip
        out, err = tx.communicate(timeout=limit + 5)
        if tx.returncode != 0:
            raise RuntimeError(f"the sender failed ({tx.returncode}): {err[-2000:]}")
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        rx_out, rx_err = rx.communicate(timeout=15)
        if '"received"' not in rx_out:
            raise RuntimeError(f"the receiver did not get the message: {rx_err[-2000:]}")
        report["receiver_cpu_s"] = json.loads(rx_out.strip().splitlines()[-1])["receiver_cpu_s"]
        return report
    finally:
        for proc in (tx, rx):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=100, help="message size in MiB (default 100)")
    parser.add_argument("--pairs", type=int, default=3, help="runs with PMTU on, and off, each")
    parser.add_argument("--mtu", type=int, default=1500, help="veth MTU (default 1500)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--loopback", action="store_true", help="no namespaces: 127.0.0.1")
    parser.add_argument("--ip", help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("receiver", "sender"), help=argparse.SUPPRESS)
    parser.add_argument("--pmtu", choices=("on", "off"), default="on", help=argparse.SUPPRESS)
    parser.add_argument("--bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--node-id", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "receiver":
        _receiver(args.ip, args.pmtu == "on", args.bytes)
        return 0
    if args.role == "sender":
        _sender(args.ip, args.target, args.port, args.node_id, args.pmtu == "on", args.bytes)
        return 0
    if os.geteuid() != 0 and not args.loopback:
        parser.error("needs root (network namespaces), or --loopback")
    size = args.mib * MiB
    results: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    pair = contextlib.nullcontext(None) if args.loopback else namespace_pair(args.mtu)
    with pair as names:
        for _ in range(args.pairs):
            for flag in ("on", "off"):
                report = one_run(names, pmtu=flag == "on", size=size)
                results[flag].append(report)
                if not args.json:
                    print(f"pmtu {flag:3}  {json.dumps(report)}", flush=True)
    summary = {
        flag: {
            "mb_per_s_median": statistics.median(r["mb_per_s"] for r in runs),
            "path_mtu": sorted({r["path_mtu"] for r in runs}),
            "cpu_s_median": {
                side: statistics.median(r[f"{side}_cpu_s"] for r in runs)
                for side in ("sender", "receiver")
            },
            "runs": runs,
        }
        for flag, runs in results.items()
    }
    ratios = [on["mb_per_s"] / off["mb_per_s"] for on, off in zip(*results.values(), strict=True)]
    summary["ratio_on_off"] = {"median": statistics.median(ratios), "pairs": ratios}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        on, off = summary["on"], summary["off"]
        where = "loopback" if args.loopback else f"veth MTU {args.mtu}"
        cpu_on = "/".join(f"{v:.2f}" for v in on["cpu_s_median"].values())
        cpu_off = "/".join(f"{v:.2f}" for v in off["cpu_s_median"].values())
        print(
            f"{where}, {args.mib} MiB: PMTU on {on['mb_per_s_median']:.1f} MB/s "
            f"(path MTU {on['path_mtu']}, CPU s sender/receiver {cpu_on}), "
            f"off {off['mb_per_s_median']:.1f} MB/s (CPU s {cpu_off}); "
            f"ratio on/off median {summary['ratio_on_off']['median']:.2f} "
            f"({', '.join(f'{r:.2f}' for r in ratios)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
