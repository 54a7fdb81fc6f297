# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Shared pieces of the ``qp2p-trio`` command: exit codes, output, progress, sizes.

Also the command's small application protocol, spoken between its own
subcommands on top of qp2p_trio messages (plain messages and requests are
left as they are, so any qp2p_trio application can talk to a listener):

- a *file* is a request whose payload is `FILE_TAG`, the file name's length
  (u16 big-endian), the UTF-8 file name, and the file's bytes; the listener
  answers with the 32-byte SHA-256 of the bytes it received;
- a *probe* (ping, latency benchmark) is a request starting with
  `PROBE_TAG`; the listener echoes it without printing anything;
- a *bulk* message (throughput benchmark) is a message starting with
  `BULK_TAG`; the listener drops it without printing anything.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import struct
import sys
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO, final

import trio

from ._errors import (
    ConnectError,
    ConnectionClosed,
    EndpointError,
    MessageError,
    MessageTooLarge,
    PeerIdentityError,
    ProtocolError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._connection import Connection, ConnectionStatistics

__all__ = [
    "BULK_TAG",
    "EXIT_CODE_HELP",
    "FILE_TAG",
    "GiB",
    "KiB",
    "MiB",
    "PAYLOAD_SHARE",
    "PROBE_TAG",
    "CliError",
    "ExitCode",
    "Progress",
    "ProgressMode",
    "acknowledged_payload",
    "decode_file_request",
    "describe_error",
    "encode_file_request",
    "format_duration",
    "format_rate",
    "format_size",
    "parse_size",
    "print_json",
    "preview",
    "sha256",
]

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB

FILE_TAG: Final = b"\x00qp2p-trio-cli:file\x00"
PROBE_TAG: Final = b"\x00qp2p-trio-cli:probe\x00"
BULK_TAG: Final = b"\x00qp2p-trio-cli:bulk\x00"


class ExitCode(enum.IntEnum):
    """The exit status of ``qp2p-trio``: one code per class of failure."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    BAD_PEER = 3
    FILE = 4
    PEER_IDENTITY = 5
    UNREACHABLE = 6
    TOO_LARGE = 7
    PEER_FAILED = 8
    MISMATCH = 9
    ENDPOINT = 10
    INTERRUPTED = 130


EXIT_CODE_HELP: Final = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "unexpected internal error (please report it)",
    ExitCode.USAGE: "bad command line",
    ExitCode.BAD_PEER: "malformed or unresolvable peer address",
    ExitCode.FILE: "a file is missing, unreadable or unwritable, or not an identity file",
    ExitCode.PEER_IDENTITY: "the peer proved another node id than the peer address names",
    ExitCode.UNREACHABLE: "peer unreachable: no handshake within --timeout, or the handshake failed",
    ExitCode.TOO_LARGE: "the message is larger than the peer accepts",
    ExitCode.PEER_FAILED: (
        "the peer failed mid-exchange: it closed the connection, refused or reset the "
        "message, or sent no reply within --timeout"
    ),
    ExitCode.MISMATCH: "the data arrived changed (checksum or echo mismatch)",
    ExitCode.ENDPOINT: "cannot open the local endpoint (address in use or not available)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); listen stops cleanly with 0 instead",
}


class CliError(Exception):
    """A failure the command reports as one line on stderr, exiting with ``code``."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


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


def sha256(data: bytes | bytearray | memoryview) -> bytes:
    """Return the SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def print_json(obj: Any, stream: TextIO | None = None) -> None:
    """Print one JSON object on one line and flush."""
    out = sys.stdout if stream is None else stream
    print(json.dumps(obj, sort_keys=True, ensure_ascii=False), file=out, flush=True)


# ------------------------------------------------------------- protocol

_NAME_LENGTH: Final = struct.Struct(">H")


def encode_file_request(name: str, content: bytes) -> bytes:
    """Build a file request's payload (see the module docstring)."""
    raw_name = name.encode("utf-8", "surrogateescape")[:1024]
    return b"".join((FILE_TAG, _NAME_LENGTH.pack(len(raw_name)), raw_name, content))


def decode_file_request(payload: bytes) -> tuple[str, memoryview] | None:
    """Split a file request into name and content, or return ``None`` if it is not one."""
    if not payload.startswith(FILE_TAG):
        return None
    start = len(FILE_TAG) + _NAME_LENGTH.size
    if len(payload) < start:
        return None
    (length,) = _NAME_LENGTH.unpack_from(payload, len(FILE_TAG))
    if len(payload) < start + length:
        return None
    name = payload[start : start + length].decode("utf-8", "replace")
    return name, memoryview(payload)[start + length :]


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


# ------------------------------------------------------------- errors


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def describe_error(exc: BaseException) -> tuple[ExitCode, str]:
    """Map an exception (or a group of them) to an exit code and a one-line message."""
    leaves = [e for e in _leaves(exc) if not isinstance(e, trio.Cancelled)] or [exc]
    # Prefer what the command diagnosed itself, then interrupts, then library errors.
    leaves.sort(
        key=lambda e: 0 if isinstance(e, CliError) else 1 if isinstance(e, KeyboardInterrupt) else 2
    )
    first = leaves[0]
    code, message = _describe_one(first)
    return code, " ".join(message.split())


def _describe_one(exc: BaseException) -> tuple[ExitCode, str]:
    if isinstance(exc, CliError):
        return exc.code, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED, "interrupted"
    if isinstance(exc, PeerIdentityError):
        return ExitCode.PEER_IDENTITY, f"wrong peer identity: {exc}"
    if isinstance(exc, ConnectError):
        return ExitCode.UNREACHABLE, f"cannot connect: {exc}"
    if isinstance(exc, MessageTooLarge):
        return ExitCode.TOO_LARGE, f"message too large: {exc}"
    if isinstance(exc, ConnectionClosed):
        who = "the peer" if exc.by_peer else "we"
        if exc.idle_timeout:
            return ExitCode.PEER_FAILED, "the connection timed out: the peer went silent"
        return ExitCode.PEER_FAILED, f"the connection closed ({who} closed it): {exc}"
    if isinstance(exc, (MessageError, ProtocolError)):
        return ExitCode.PEER_FAILED, f"the peer failed the exchange: {exc}"
    if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
        return ExitCode.PEER_FAILED, f"the connection broke: {exc}"
    if isinstance(exc, EndpointError):
        return ExitCode.ENDPOINT, str(exc)
    return ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
