# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""What the command prints: sizes, rates, durations, addresses, payloads, JSON, progress bars."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO, final

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

    from qp2p_trio import Connection, ConnectionStatistics

__all__ = [
    "GiB",
    "KiB",
    "MiB",
    "PAYLOAD_SHARE",
    "Progress",
    "ProgressMode",
    "acknowledged_payload",
    "format_address",
    "format_duration",
    "format_rate",
    "format_size",
    "parse_size",
    "preview",
    "print_json",
]

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB

# ------------------------------------------------------------------- sizes

_SIZE_RE: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)(i?b?)\s*", re.IGNORECASE)
_UNITS: Final = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}
_BINARY_UNITS: Final = {"k": KiB, "m": MiB, "g": GiB}


def parse_size(text: str) -> int:
    """Parse a byte count such as ``1000``, ``64KiB``, ``16MiB``, ``1.5M`` or ``2GB``.

    ``K``/``M``/``G`` alone or with ``B`` are powers of 1000; with ``iB`` (or
    ``i``) powers of 1024.

    Raises:
        ValueError: the text is not a size.
    """
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (examples: 1000, 64KiB, 16MiB, 1.5MB)")
    number, prefix, suffix = match.group(1), match.group(2).lower(), match.group(3).lower()
    if suffix.startswith("i") and not prefix:
        raise ValueError(f"not a size: {text!r} (examples: 1000, 64KiB, 16MiB, 1.5MB)")
    unit = _BINARY_UNITS[prefix] if suffix.startswith("i") else _UNITS[prefix]
    value = float(number) * unit
    if value != int(value):
        raise ValueError(f"not a whole number of bytes: {text!r}")
    return int(value)


def format_size(size: float) -> str:
    """Write a byte count for humans: ``512 B``, ``1.5 KiB``, ``50.0 MiB``."""
    if size < KiB:
        return f"{size:.0f} B"
    if size < MiB:
        return f"{size / KiB:.1f} KiB"
    if size < GiB:
        return f"{size / MiB:.1f} MiB"
    return f"{size / GiB:.2f} GiB"


def format_rate(size: float, seconds: float) -> str:
    """Write a throughput: ``3.1 MB/s (24.8 Mbit/s)``."""
    if seconds <= 0:
        return "- MB/s"
    per_second = size / seconds
    return f"{per_second / 1e6:.1f} MB/s ({per_second * 8 / 1e6:.1f} Mbit/s)"


def format_duration(seconds: float) -> str:
    """Write a duration: ``850 µs``, ``12.3 ms``, ``4.56 s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_address(address: tuple[Any, ...]) -> str:
    """Write a socket address as ``host:port`` (IPv6 hosts in brackets)."""
    host, port = address[0], address[1]
    if ":" in str(host):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def preview(payload: bytes, limit: int = 60) -> str:
    """Show a payload in one line: its text (shortened) or its size if binary."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(payload)} bytes of binary data>"
    if not text.isprintable():
        return f"<{len(payload)} bytes of text with control characters>"
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


def print_json(obj: Any, stream: TextIO | None = None) -> None:
    """Print one JSON object on one line and flush."""
    out = sys.stdout if stream is None else stream
    print(json.dumps(obj, sort_keys=True, ensure_ascii=False), file=out, flush=True)


# ------------------------------------------------------------- progress

#: Share of UDP payload bytes that carry stream data in a bulk transfer
#: (measured on loopback with 1200-byte datagrams: headers, AEAD tags and
#: ACK frames take the rest).  Used to estimate a message's progress from
#: the connection's counters; the library has no per-stream progress yet.
PAYLOAD_SHARE: Final = 0.97

ProgressMode = Literal["live", "lines", "off"]


@final
class Progress:
    """A progress bar for one transfer.

    ``live`` redraws one line with carriage returns (for a terminal),
    ``lines`` prints a line at every quarter (for logs), ``off`` prints
    nothing.
    """

    def __init__(
        self, total: int, *, stream: TextIO, mode: ProgressMode, indent: str = "", width: int = 30
    ) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.mode = mode
        self.indent = indent
        self.width = width
        self.start = trio.current_time()
        self._next_quarter = 1
        self._drawn = False

    @staticmethod
    def choose(stream: TextIO, forced: bool | None, *, fallback: ProgressMode) -> ProgressMode:
        """Pick ``live`` on a terminal, else ``fallback``; ``forced`` overrides (None: auto)."""
        if forced is False:
            return "off"
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        if tty:
            return "live"
        return "lines" if forced else fallback

    def _line(self, done: int, now: float) -> str:
        fraction = min(done / self.total, 1.0)
        filled = math.floor(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = now - self.start
        rate = format_rate(done, elapsed).split(" (")[0] if elapsed > 0 else "- MB/s"
        return (
            f"{self.indent}[{bar}] {fraction * 100:3.0f}%  "
            f"{format_size(done)} / {format_size(self.total)}  {rate}"
        )

    def update(self, done: int) -> None:
        """Show that ``done`` bytes of the total have arrived."""
        now = trio.current_time()
        done = min(max(done, 0), self.total)
        if self.mode == "live":
            self.stream.write("\r" + self._line(done, now) + "\x1b[K")
            self.stream.flush()
            self._drawn = True
        elif self.mode == "lines":
            while self._next_quarter <= 4 and done * 4 >= self._next_quarter * self.total:
                self._next_quarter += 1
                print(self._line(done, now), file=self.stream, flush=True)

    def finish(self) -> None:
        """Show 100% and end the line."""
        self.update(self.total)
        if self.mode == "live" and self._drawn:
            self.stream.write("\n")
            self.stream.flush()

    async def follow(self, read_done: Callable[[], int], interval: float = 0.1) -> None:
        """Redraw from ``read_done()`` every ``interval`` seconds until cancelled."""
        if self.mode == "off":
            await trio.sleep_forever()
        while True:
            self.update(min(read_done(), self.total - 1))
            await trio.sleep(interval)


def acknowledged_payload(conn: Connection, baseline: ConnectionStatistics) -> Callable[[], int]:
    """Estimate stream bytes the peer acknowledged since ``baseline`` (for a progress bar)."""

    def read() -> int:
        now = conn.statistics()
        acked = now.bytes_sent - baseline.bytes_sent - now.bytes_in_flight
        return int(acked * PAYLOAD_SHARE)

    return read
