# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Benchmark qp2p_trio against a baseline (aioquic's own asyncio layer, or iroh), and raw UDP.

Usage::

    python benchmarks/run.py                  # the full suite (about 10-15 minutes)
    python benchmarks/run.py --smoke          # tiny counts, well under a minute
    python benchmarks/run.py --json out.json  # also write the results as JSON
    python benchmarks/run.py --json -         # JSON on stdout, the table on stderr
    python benchmarks/run.py -w W2,W5 --pairs 5 --profile prof/

(or ``python3 -m nox -s bench -- --smoke``).  Run it as a script, not with
``-m``: it imports the *installed* qp2p_trio (in a source checkout without
an install, set ``PYTHONPATH`` to the checkout).

Every run starts a server process and then a client process (``worker.py``),
both on 127.0.0.1, for one implementation; runs alternate qp2p_trio, aioquic,
qp2p_trio, aioquic... for ``--pairs`` pairs, and the table gives each
implementation's median and min-max and the median over pairs of the ratio
qp2p_trio / aioquic.  ``--baseline iroh`` compares with iroh's Python
bindings instead (PyPI ``iroh``, relays off, direct loopback path; W1-W6
only; see ``impl_iroh.py``).  Workloads:

W1   sequential connect + handshake + close (connections/s); then 100
     concurrent setups (wall time).
W2   request/response, 1 KiB each way, sequential on one connection:
     round trips/s and p50/p99 latency.
W3   request/response, 1 KiB, 64 in flight: requests/s.
W4   10,000 one-way messages of 1 KiB, one stream each, up to 100 in flight,
     each sender waiting for its receipt: messages/s from the first send
     until the receiver has them all.
W5   one 100 MiB message: goodput (MB/s = 10^6 bytes/s, first byte sent to
     the receiver having it all) and peak RSS (ru_maxrss) of both processes.
W6   1,000 connections to one endpoint, keep-alive every 5 s: server memory
     per connection (RSS growth), CPU seconds per second while idle (10 s),
     then W2 latency on one of the connections.
W7   a swarm on the virtual network under MockClock, qp2p_trio only: N
     endpoints in one process, each dialling 8 random others and sending 10
     messages to each; wall time and peak RSS for N = 100 and 1,000, and how
     they grow (``swarm.py``, one process per size).
W8   relayed against direct, qp2p_trio only (``relay.py``): a relay and two
     peers in one process; 1 KiB request/response (p50, p99, CPU per round
     trip) and one large message (goodput, CPU per MB) over a direct and
     over a relayed connection, the ratio relayed / direct per run, ``--pairs``
     runs (each a fresh process; odd ones measure the relayed path first).
UDP  raw UDP ceiling: 200,000 datagrams of 1,200 bytes, blocking sockets.

W2-W4 also count the datagrams both sides received per operation, and W5
the ratio of datagrams the sender received (ACKs) to those the receiver
received (qp2p_trio: ``Endpoint.statistics()``; the baseline counts in its
protocol's ``datagram_received``).

``--profile DIR`` runs the chosen implementations' workers under
``py-spy record --format raw --function`` and prints the top of each profile
(``profile_top.py`` summarises the files again later).

Each worker measures with ``time.monotonic`` (one clock for all processes on
Linux), ``time.process_time`` and ``resource.getrusage``.  A run that fails
is retried once; every process is killed at the run's deadline.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import relay
import swarm

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
#: The implementations compared: ours, then the baseline (``--baseline``).
IMPLS: tuple[str, str] = ("qp2p_trio", "aioquic")
#: ``qp2p_trio-1200``: qp2p_trio itself with path MTU discovery off (1,200-byte
#: datagrams), to show what discovery brings (W5).
BASELINES = ("aioquic", "iroh", "qp2p_trio-1200")
MiB = 1024 * 1024

FULL: dict[str, dict[str, Any]] = {
    "W1": {"warmup": 3, "sequential": 200, "concurrent": 100},
    "W2": {"warmup": 50, "count": 2000, "size": 1024},
    "W3": {"warmup": 50, "count": 5000, "size": 1024, "inflight": 64},
    "W4": {"warmup": 20, "count": 10_000, "size": 1024, "inflight": 100, "expect": 10_000},
    "W5": {"size": 100 * MiB, "expect": 1},
    "W6": {
        "conns": 1000,
        "setup_concurrency": 50,
        "settle": 2.0,
        "idle": 10.0,
        "keep_alive": 5.0,
        "warmup": 20,
        "count": 500,
        "size": 1024,
    },
    "W7": {"sizes": [100, 1000], "degree": 8, "messages": 10},
    "W8": {"round_trips": 2000, "size": 50 * MiB},
    "UDP": {"count": 200_000, "size": 1200},
}

SMOKE: dict[str, dict[str, Any]] = {
    "W1": {"warmup": 1, "sequential": 10, "concurrent": 10},
    "W2": {"warmup": 5, "count": 100, "size": 1024},
    "W3": {"warmup": 5, "count": 200, "size": 1024, "inflight": 64},
    "W4": {"warmup": 5, "count": 200, "size": 1024, "inflight": 100, "expect": 200},
    "W5": {"size": 2 * MiB, "expect": 1},
    "W6": {
        "conns": 20,
        "setup_concurrency": 20,
        "settle": 0.3,
        "idle": 1.0,
        "keep_alive": 0.5,
        "warmup": 5,
        "count": 50,
        "size": 1024,
    },
    "W7": {"sizes": [10, 20], "degree": 4, "messages": 2},
    "W8": {"round_trips": 50, "size": 1 * MiB},
    "UDP": {"count": 20_000, "size": 1200},
}

TITLES = {
    "W1": "handshakes",
    "W2": "req/resp 1 KiB sequential",
    "W3": "req/resp 1 KiB, 64 in flight",
    "W4": "one-way 1 KiB messages",
    "W5": "bulk message",
    "W6": "idle connections + 1 active",
    "W7": "swarm on the virtual network",
    "W8": "relayed vs direct",
    "UDP": "raw UDP ceiling",
}

# workload -> [(metric, label, unit, higher_is_better, must_be_positive)]
METRICS: dict[str, list[tuple[str, str, str, bool, bool]]] = {
    "W1": [
        ("conns_per_s", "sequential setups", "conn/s", True, True),
        ("concurrent_wall_s", "concurrent setups, wall", "s", False, True),
    ],
    "W2": [
        ("rt_per_s", "round trips", "rt/s", True, True),
        ("p50_ms", "latency p50", "ms", False, True),
        ("p99_ms", "latency p99", "ms", False, True),
        ("dgrams_per_op", "datagrams per round trip", "dgram", False, True),
    ],
    "W3": [
        ("msgs_per_s", "requests", "req/s", True, True),
        ("dgrams_per_op", "datagrams per request", "dgram", False, True),
    ],
    "W4": [
        ("msgs_per_s", "until receiver has all", "msg/s", True, True),
        ("sender_msgs_per_s", "until sender has receipts", "msg/s", True, True),
        ("dgrams_per_op", "datagrams per message", "dgram", False, True),
    ],
    "W5": [
        ("mb_per_s", "goodput", "MB/s", True, True),
        ("sender_rss_mib", "sender peak RSS", "MiB", False, True),
        ("receiver_rss_mib", "receiver peak RSS", "MiB", False, True),
        ("acks_per_dgram", "sender rx / receiver rx dgrams", "ratio", False, True),
    ],
    "W6": [
        ("server_kib_per_conn", "server memory per conn", "KiB", False, False),
        ("client_kib_per_conn", "client memory per conn", "KiB", False, False),
        ("server_idle_cpu", "server CPU while idle", "s/s", False, False),
        ("client_idle_cpu", "client CPU while idle", "s/s", False, False),
        ("active_p50_ms", "active conn latency p50", "ms", False, True),
        ("active_p99_ms", "active conn latency p99", "ms", False, True),
    ],
    "UDP": [
        ("datagrams_per_s", "received", "dgram/s", True, True),
        ("mb_per_s", "received", "MB/s", True, True),
        ("sent_per_s", "sent", "dgram/s", True, True),
        ("loss_pct", "lost on loopback", "%", False, False),
    ],
}


class BenchError(Exception):
    pass


# ------------------------------------------------------------------ processes
class Worker:
    """One worker process: JSON lines out, commands in, killed at the end whatever happens."""

    def __init__(self, cmd: list[str], name: str) -> None:
        self.name = name
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by kill()
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # its own process group: a profiler and its child die together
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue  # not ours (for example a profiler's chatter)
            if isinstance(obj, dict):
                self._lines.put(obj)
        self._lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise BenchError(
                f"{self.name}: cannot write to it: {exc}\n{self.stderr_tail()}"
            ) from exc

    def next(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        try:
            obj = self._lines.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            raise BenchError(f"{self.name}: timed out\n{self.stderr_tail()}") from None
        if obj is None:
            self._lines.put(None)
            code = self.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            raise BenchError(f"{self.name}: exited (status {code}) early\n{self.stderr_tail()}")
        return obj

    def expect(self, key: str, deadline: float) -> Any:
        while True:
            obj = self.next(deadline)
            if key in obj:
                return obj[key] if key != "mark" else obj

    def wait(self, deadline: float) -> None:
        try:
            code = self.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name}: did not exit in time\n{self.stderr_tail()}") from None
        if code != 0:
            raise BenchError(f"{self.name}: exit status {code}\n{self.stderr_tail()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass
        for f in (self.proc.stdin, self.proc.stdout, self._stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""
        return (
            "  | " + "\n  | ".join(text[-limit:].splitlines())
            if text.strip()
            else "  | (no stderr)"
        )


def _command(
    impl: str, role: str, workload: str, params: dict[str, Any], peer: Any, prof: str | None
) -> list[str]:
    cmd = [sys.executable, str(WORKER), impl, role, workload, json.dumps(params)]
    if peer is not None:
        cmd.append(json.dumps(peer))
    if prof is not None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        cmd = [
            py_spy,
            "record",
            "--format",
            "raw",
            "--function",
            "--nonblocking",
            "--rate",
            "250",
            "-o",
            prof,
            "--",
            *cmd,
        ]
    return cmd


def run_once(
    impl: str, workload: str, params: dict[str, Any], timeout: float, profile_stem: str | None
) -> dict[str, Any]:
    """One run: a server, then a client; returns the raw results of both and the marks."""
    params = {**params, "timeout": timeout}
    deadline = time.monotonic() + timeout + 15.0
    workers: list[Worker] = []
    try:
        prof = f"{profile_stem}-server.txt" if profile_stem else None
        server = Worker(
            _command(impl, "server", workload, params, None, prof), f"{impl} {workload} server"
        )
        workers.append(server)
        peer = server.expect("ready", deadline)
        prof = f"{profile_stem}-client.txt" if profile_stem else None
        client = Worker(
            _command(impl, "client", workload, params, peer, prof), f"{impl} {workload} client"
        )
        workers.append(client)
        marks: dict[str, dict[str, Any]] = {}
        while True:
            msg = client.next(deadline)
            if "mark" in msg:
                name = msg["mark"]
                server.send(f"mark {name}")
                marks[name] = {"client": msg, "server": server.expect("mark", deadline)}
                client.send("ok")
            elif "result" in msg:
                client_result = msg["result"]
                break
        client.wait(deadline)
        server.send("stop")
        server_result = server.expect("result", deadline)
        server.wait(deadline)
    finally:
        for w in workers:
            w.kill()
    return {"client": client_result, "server": server_result, "marks": marks}


# -------------------------------------------------------------------- metrics
def derive(workload: str, params: dict[str, Any], raw: dict[str, Any]) -> dict[str, float]:
    c, s, marks = raw["client"], raw["server"], raw["marks"]
    if workload == "W1":
        return {m[0]: float(c[m[0]]) for m in METRICS[workload]}
    dgrams: dict[str, float] = {}
    if workload in ("W2", "W3", "W4"):
        # Datagrams both sides received, per operation (handshake and warm-up included).
        ops = params["count"] + params["warmup"]
        dgrams["dgrams_per_op"] = (c["datagrams_received"] + s["datagrams_received"]) / ops
    if workload in ("W2", "W3"):
        return {**{m[0]: float(c[m[0]]) for m in METRICS[workload][:-1]}, **dgrams}
    if workload == "W4":
        if s["received"] != params["count"] or s["t_all"] is None:
            raise BenchError(f"W4: the receiver got {s['received']} of {params['count']} messages")
        return {
            "msgs_per_s": params["count"] / (s["t_all"] - c["t0"]),
            "sender_msgs_per_s": params["count"] / (c["t_sent"] - c["t0"]),
            **dgrams,
        }
    if workload == "W5":
        if s["received_bytes"] != params["size"] or s["t_all"] is None:
            raise BenchError(
                f"W5: the receiver got {s['received_bytes']} of {params['size']} bytes"
            )
        return {
            "mb_per_s": params["size"] / 1e6 / (s["t_all"] - c["t0"]),
            "sender_rss_mib": c["maxrss_kib"] / 1024,
            "receiver_rss_mib": s["maxrss_kib"] / 1024,
            "acks_per_dgram": c["datagrams_received"] / max(s["datagrams_received"], 1),
        }
    if workload == "W6":
        n = params["conns"]

        def cpu(side: str) -> float:
            a, b = marks["idle_start"][side], marks["idle_end"][side]
            return (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"])

        return {
            "server_kib_per_conn": (
                marks["connected"]["server"]["rss_kib"] - marks["start"]["server"]["rss_kib"]
            )
            / n,
            "client_kib_per_conn": (
                marks["connected"]["client"]["rss_kib"] - marks["start"]["client"]["rss_kib"]
            )
            / n,
            "server_idle_cpu": cpu("server"),
            "client_idle_cpu": cpu("client"),
            "active_p50_ms": float(c["p50_ms"]),
            "active_p99_ms": float(c["p99_ms"]),
        }
    if workload == "UDP":
        received = s["received"]
        if not received or s["t_all"] is None:
            raise BenchError("UDP: nothing received")
        span = s["t_all"] - c["t0"]
        return {
            "datagrams_per_s": received / span,
            "mb_per_s": s["received_bytes"] / 1e6 / span,
            "sent_per_s": c["sent"] / (c["t_sent"] - c["t0"]),
            "loss_pct": 100.0 * (1 - received / params["count"]),
        }
    raise BenchError(f"unknown workload {workload}")


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "values": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def summarize(runs: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for workload, by_impl in runs.items():
        metrics: dict[str, Any] = {}
        for key, label, unit, higher, positive in METRICS[workload]:
            entry: dict[str, Any] = {
                "label": label,
                "unit": unit,
                "higher_is_better": higher,
                "must_be_positive": positive,
            }
            for impl, results in by_impl.items():
                entry[impl] = _stats([r[key] for r in results])
            if all(impl in by_impl for impl in IMPLS):
                q, a = by_impl[IMPLS[0]], by_impl[IMPLS[1]]
                ratios = [
                    x[key] / y[key] if y[key] else math.nan for x, y in zip(q, a, strict=True)
                ]
                entry["pair_ratios"] = ratios
                entry["ratio"] = statistics.median(ratios)
                med_a = entry[IMPLS[1]]["median"]
                entry["ratio_of_medians"] = entry[IMPLS[0]]["median"] / med_a if med_a else math.nan
            metrics[key] = entry
        out[workload] = {"title": TITLES[workload], "metrics": metrics}
    return out


def _num(x: float) -> str:
    if math.isnan(x):
        return "nan"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _cell(st: dict[str, Any] | None) -> str:
    if st is None:
        return "-"
    return f"{_num(st['median'])} [{_num(st['min'])}-{_num(st['max'])}]"


def table(summary: dict[str, Any]) -> str:
    rows = [
        (
            "workload",
            "metric",
            "unit",
            "better",
            "qp2p_trio median [min-max]",
            f"{IMPLS[1]} median [min-max]",
            "ratio q/a",
        )
    ]
    for workload, w in summary.items():
        for key, m in w["metrics"].items():
            impl_a = m.get(IMPLS[0]) or m.get("udp")
            ratio = "-"
            if "ratio" in m:
                per_pair = ", ".join(_num(r) for r in m["pair_ratios"])
                ratio = (
                    f"{_num(m['ratio'])} ({per_pair})"
                    if len(m["pair_ratios"]) > 1
                    else _num(m["ratio"])
                )
            rows.append(
                (
                    f"{workload} {w['title']}" if key == next(iter(w["metrics"])) else "",
                    m["label"],
                    m["unit"],
                    "higher" if m["higher_is_better"] else "lower",
                    _cell(impl_a) if "udp" not in m else f"udp: {_cell(impl_a)}",
                    _cell(m.get(IMPLS[1])),
                    ratio,
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib import metadata

    for dist in ("qp2p_trio", "aioquic", "trio", "cryptography", "iroh"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    if info["qp2p_trio"] is None:  # a source checkout on PYTHONPATH
        try:
            import qp2p_trio

            info["qp2p_trio"] = f"{qp2p_trio.__version__} (not installed)"
        except ImportError:
            pass
    return info


# ----------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark qp2p_trio against a baseline (see the module docstring).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny counts, 1 pair: a quick check that everything runs",
    )
    parser.add_argument(
        "--pairs", type=int, help="qp2p_trio/aioquic pairs per workload (default 3, smoke 1)"
    )
    parser.add_argument(
        "--baseline",
        choices=BASELINES,
        default="aioquic",
        help="what qp2p_trio is compared with (default aioquic; iroh needs PyPI iroh, W1-W6)",
    )
    parser.add_argument("-w", "--workloads", help=f"comma-separated subset of {','.join(FULL)}")
    parser.add_argument("--w5-mib", type=int, help="W5 message size in MiB (default 100, smoke 2)")
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="write the results as JSON to PATH ('-': stdout, and the table to stderr)",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds allowed per run (default 300, smoke 30)"
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="run the workers under py-spy, writing raw profiles to DIR"
    )
    parser.add_argument(
        "--profile-impls",
        default="qp2p_trio",
        help="implementations to profile (default qp2p_trio)",
    )
    args = parser.parse_args(argv)
    global IMPLS
    IMPLS = ("qp2p_trio", args.baseline)

    base = SMOKE if args.smoke else FULL
    params = copy.deepcopy(base)
    if args.w5_mib is not None:
        params["W5"]["size"] = args.w5_mib * MiB
    workloads = (
        list(base) if not args.workloads else [w.strip().upper() for w in args.workloads.split(",")]
    )
    unknown = [w for w in workloads if w not in base]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {list(base)}")
    if args.baseline == "iroh":
        if not args.workloads:
            workloads = ["W1", "W2", "W3", "W4", "W5", "W6"]
        unwritten = [
            w for w in workloads if w not in ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8")
        ]
        if unwritten:
            parser.error(f"the iroh baseline has no {unwritten}; choose from W1-W6")
    pairs = args.pairs or (1 if args.smoke else 3)
    timeout = args.timeout or (30.0 if args.smoke else 300.0)
    profile_impls = {s.strip() for s in args.profile_impls.split(",")}
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    table_out = sys.stderr if args.json == "-" else sys.stdout

    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    swarm_result: dict[str, Any] | None = None
    relay_result: dict[str, Any] | None = None
    started = time.monotonic()
    for workload in workloads:
        if workload == "W7":
            w7 = params["W7"]
            t = time.monotonic()
            swarm_result = swarm.run_sizes(
                w7["sizes"], w7["degree"], w7["messages"], max(timeout, 1800.0)
            )
            print(f"W7 swarm {time.monotonic() - t:5.1f}s", file=sys.stderr, flush=True)
            continue
        if workload == "W8":
            w8, t = params["W8"], time.monotonic()
            try:
                relay_result = relay.run_pairs(pairs, w8["round_trips"], w8["size"], timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"W8: {exc}", file=sys.stderr)
                return 1
            print(f"W8 relayed vs direct {time.monotonic() - t:5.1f}s", file=sys.stderr, flush=True)
            continue
        impls = ("udp",) if workload == "UDP" else IMPLS
        runs[workload] = {impl: [] for impl in impls}
        for pair in range(pairs):
            for impl in impls:
                stem = None
                if args.profile and impl in profile_impls:
                    stem = str(Path(args.profile) / f"{workload}-{impl}-{pair + 1}")
                t = time.monotonic()
                for attempt in (1, 2):
                    try:
                        metrics = derive(
                            workload,
                            params[workload],
                            run_once(impl, workload, params[workload], timeout, stem),
                        )
                        break
                    except BenchError as exc:
                        print(
                            f"{workload} pair {pair + 1} {impl}: attempt {attempt} failed: {exc}",
                            file=sys.stderr,
                        )
                        if attempt == 2:
                            return 1
                runs[workload][impl].append(metrics)
                shown = ", ".join(f"{k}={_num(v)}" for k, v in metrics.items())
                print(
                    f"{workload} pair {pair + 1}/{pairs} {impl:9} {time.monotonic() - t:5.1f}s  {shown}",
                    file=sys.stderr,
                    flush=True,
                )

    summary = summarize(runs)
    elapsed = time.monotonic() - started
    command = " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    result = {
        "command": command,
        "machine": machine(),
        "pairs": pairs,
        "baseline": IMPLS[1],
        "smoke": args.smoke,
        "elapsed_s": elapsed,
        "params": {w: params[w] for w in workloads},
        "workloads": summary,
    }
    if swarm_result is not None:
        result["swarm"] = swarm_result
    if relay_result is not None:
        result["relay"] = relay_result
    print(f"\n{command}   ({pairs} pair(s), {elapsed:.0f} s)", file=table_out)
    m = result["machine"]
    print(
        f"{m.get('cpu', '?')} x{m['cpus']}, Python {m['python']}, {m['platform']}; "
        f"qp2p_trio {m['qp2p_trio']}, aioquic {m['aioquic']}, trio {m['trio']}"
        + (f", iroh {m['iroh']}" if m.get("iroh") else ""),
        file=table_out,
    )
    print(table(summary), file=table_out, flush=True)
    if swarm_result is not None:
        print(f"W7 {TITLES['W7']} (qp2p_trio only)", file=table_out)
        print(swarm.table(swarm_result), file=table_out, flush=True)
    if relay_result is not None:
        print(f"W8 {TITLES['W8']} (qp2p_trio only; medians of {pairs} run(s))", file=table_out)
        print(relay.table(relay_result), file=table_out, flush=True)
    if args.profile:
        import profile_top

        for workload in workloads:
            for impl in profile_impls:
                for role in ("client", "server"):
                    files = sorted(
                        str(p) for p in Path(args.profile).glob(f"{workload}-{impl}-*-{role}.txt")
                    )
                    if files:
                        print(f"profile {workload} {impl} {role}:", file=table_out)
                        print(profile_top.report(files), file=table_out)
    if args.json == "-":
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
