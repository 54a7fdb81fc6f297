# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""What the benchmark workers share: settings, framing, the control channel, measurements.

A worker process talks to the runner (``run.py``) with JSON lines: it writes
``{"ready": ...}``, ``{"mark": NAME, ...}`` and ``{"result": ...}`` on stdout,
and reads commands on stdin (``mark NAME``, ``ok``, ``stop``).  Nothing else
may be written to stdout.

This module imports neither trio nor asyncio, so each implementation pays
only for its own event loop.
"""

from __future__ import annotations

import json
import math
import os
import resource
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable

KiB: Final = 1024
MiB: Final = 1024 * KiB

#: QUIC settings both implementations use, mirroring ``qp2p_trio.Config``'s
#: defaults and what ``qp2p_trio._quic.build_configuration`` passes to
#: aioquic's ``QuicConfiguration``.  ``max_message_size`` is raised so that
#: W5's 100 MiB message is allowed.
SETTINGS: Final[dict[str, Any]] = {
    "idle_timeout": 30.0,
    "keep_alive_interval": 10.0,
    "max_datagram_size": 1200,
    "congestion_control": "cubic",
    "initial_rtt": 0.1,
    "initial_stream_window": 1 * MiB,
    "initial_connection_window": 1 * MiB,
    "max_message_size": 128 * MiB,
}

#: Baseline framing: an unsigned 64-bit big-endian payload length, then the
#: payload, then the stream's FIN (qp2p_trio's own frame is a 4-byte
#: preamble plus the same length field).
HEADER: Final = struct.Struct("!Q")

#: First payload byte of one-way messages the receiver counts; warm-up
#: messages start with another byte.
MEASURED: Final = b"\x01"
WARMUP: Final = b"\x00"

_PAGE_KIB: Final = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def emit(obj: dict[str, Any]) -> None:
    """Write one control line for the runner."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def rss_kib() -> int:
    """Current resident set size of this process, KiB (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_KIB
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return maxrss_kib()


def maxrss_kib() -> int:
    """Peak resident set size of this process, KiB (``ru_maxrss``, KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def snapshot() -> dict[str, float]:
    """Memory and CPU of this process now, with a system-wide monotonic timestamp."""
    return {
        "t": time.monotonic(),
        "cpu_s": time.process_time(),
        "rss_kib": rss_kib(),
        "maxrss_kib": maxrss_kib(),
    }


def start_stdin_reader(deliver: Callable[[str | None], None]) -> None:
    """Call ``deliver(line)`` for each stdin line (stripped), then ``deliver(None)`` at EOF.

    Runs in a daemon thread; ``deliver`` must be thread-safe (each event loop
    passes its own "call soon from another thread").  Once ``deliver``
    raises (the loop is gone), the thread stops.
    """

    def pump() -> None:
        try:
            for line in sys.stdin:
                deliver(line.strip())
            deliver(None)
        except Exception:
            return

    threading.Thread(target=pump, name="bench-stdin", daemon=True).start()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies: list[float]) -> dict[str, float]:
    """Round trips per second (of the time spent in them), p50 and p99 in ms."""
    lat = sorted(latencies)
    total = sum(lat)
    return {
        "count": len(lat),
        "rt_per_s": len(lat) / total if total > 0 else math.nan,
        "p50_ms": percentile(lat, 50) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
    }
