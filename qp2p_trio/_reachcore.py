# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The reachability check (``qp2p/reach/1``), sans-IO: records, probes, tables, verdicts.

Theory of operation
-------------------
A requester R asks a connected peer S (a server: `Config.serve_reachability_checks`)
to *dial back* one of R's candidate addresses.  The dial-back is a **probe**:
one small datagram shaped like a QUIC v1 Initial whose Destination
Connection ID is a 16-byte **nonce** R drew at random (`make_probe`), sent
`PROBES` times.  R's driver looks every datagram for no connection up in
R's `PendingProbes` before anything else (a probe is far below the 1200
bytes of a real Initial, so an endpoint that expects no probe drops it
unread).  R never trusts S's word: only a probe carrying a pending nonce
counts, and only when it comes from an IP R has **not** sent to recently
(`RecentContacts`): behind an address-dependent filtering NAT, a probe from
such an IP passes the filter whatever the NAT lets strangers do, so it
proves nothing (`verdict`: unknown).  Hence S asks a *helper* H (another
serving peer it is connected to, at another IP) to send the probe; without
one S probes from a socket of its own other than the one R talks to, which
can only tell "unreachable" (an address-and-port-dependent filter drops it)
from "unknown".

Amplification guard: S dials back only the IP it sees R at (any port: a
mapped one may differ), at most `PROBES` datagrams of `PROBE_SIZE` bytes.
H cannot see R, so S *pays* for H's probes: a DIAL_BACK record is padded to
at least `DIAL_BACK_MIN` bytes, more than H sends.  Both rate-limit per IP
(the requester's, the asking server's, the target's) and the endpoint as a
whole (`RateLimiter`).

Records on the protocol stream: type (u8), length (u16 BE), body; see
``docs/wire.rst``.  Nothing here does I/O or reads a clock; times are passed in.

Owns: the codec, the pending-nonce table (bounded: `MAX_PENDING`), the
recently contacted IPs (bounded LRU), the rate limiter and the verdict book.
"""

from __future__ import annotations

import collections
import enum
import ipaddress
import struct
from typing import TYPE_CHECKING, Final, final

import attrs

from ._errors import RemoteProtocolError
from ._observed import Reachability, decode_observed_address, encode_observed_address

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

    from ._identity import NodeId

__all__ = [
    "DIAL_BACK",
    "DIAL_BACK_MIN",
    "NONCE_SIZE",
    "PROBES",
    "PROBE_SIZE",
    "REACH_PROTOCOL",
    "REQUEST",
    "RESPONSE",
    "PendingProbes",
    "RateLimiter",
    "Reachability",
    "ReachabilityResult",
    "RecentContacts",
    "Status",
    "VerdictBook",
    "check_address",
    "decode_dial",
    "decode_record_head",
    "decode_status",
    "encode_dial",
    "encode_status",
    "ip_of",
    "make_probe",
    "verdict",
]

REACH_PROTOCOL: Final = "qp2p/reach/1"
REQUEST: Final = 0x01  # requester -> server: nonce, address
DIAL_BACK: Final = 0x02  # server -> helper: nonce, address, padding
RESPONSE: Final = 0x03  # answer to either: a status byte
NONCE_SIZE: Final = 16
PROBES: Final = 3
PROBE_SIZE: Final = 48
DIAL_BACK_MIN: Final = 1024
MAX_RECORD: Final = 2048
MAX_PENDING: Final = 64
HEAD: Final = struct.Struct(">BH")
_QUIC_V1: Final = 0x00000001


class Status(enum.IntEnum):
    """What a server (or a helper) answers a request."""

    SENT = 0  #: probes sent (by the server or a helper)
    DECLINED = 1  #: not now (rate limit, no way to send)
    BAD_ADDRESS = 2  #: not the IP the server sees the requester at
    FAILED = 3  #: a helper was asked and failed


@final
@attrs.frozen
class ReachabilityResult:
    """The outcome of a reachability check on one address (`Endpoint.check_reachability`).

    Attributes:
        address: the address checked, ``(ip, port)``.
        reachability: the verdict.
        server: the peer asked last (None: no peer could be asked).
        detail: why, in words (for logs and ``qp2p-trio netcheck``).
    """

    address: tuple[str, int]
    reachability: Reachability
    server: NodeId | None
    detail: str


def ip_of(addr: Sequence[object]) -> str | None:
    """The IP of a socket address as text (IPv4-mapped IPv6 as IPv4), None for a path address."""
    try:
        ip = ipaddress.ip_address(str(addr[0]))
    except (ValueError, IndexError):
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def check_address(address: object) -> tuple[str, int]:
    """``address`` as ``(ip, port)`` for a check (IPv4-mapped IPv6 as IPv4).

    Raises:
        TypeError: not a tuple.
        ValueError: not a numeric IP and a port in 1-65535.
    """
    if not isinstance(address, tuple) or len(address) not in (2, 4):
        raise TypeError(f"an address to check is an (ip, port) tuple, not {address!r}")
    ip, port = ip_of(address), address[1]
    if ip is None or isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"an address to check needs a numeric IP and a port: {address!r}")
    return ip, port


# ----------------------------------------------------------------- codec
def _record(kind: int, body: bytes) -> bytes:
    return HEAD.pack(kind, len(body)) + body


def encode_dial(kind: int, nonce: bytes, address: Sequence[object]) -> bytes:
    """A REQUEST or DIAL_BACK record (the latter padded to `DIAL_BACK_MIN` bytes).

    Raises:
        ValueError: a nonce not of `NONCE_SIZE` bytes, or not an IP socket address.
    """
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a reachability nonce has {NONCE_SIZE} bytes, not {len(nonce)}")
    encoded = encode_observed_address(address)
    if encoded is None:
        raise ValueError(f"not an IP socket address: {address!r}")
    body = nonce + encoded[HEAD.size :]
    if kind == DIAL_BACK:
        body += bytes(max(0, DIAL_BACK_MIN - HEAD.size - len(body)))
    return _record(kind, body)


def decode_dial(body: bytes) -> tuple[bytes, tuple[str, int]]:
    """The nonce and address of a REQUEST or DIAL_BACK body.

    Raises:
        RemoteProtocolError: a body too short, an unknown family, port 0.
    """
    if len(body) < NONCE_SIZE:
        raise RemoteProtocolError(f"reachability: a dial record of {len(body)} bytes")
    try:
        decoded = decode_observed_address(body[NONCE_SIZE:])
    except ValueError as exc:
        raise RemoteProtocolError(f"reachability: a malformed address ({exc})") from None
    if decoded is None:
        raise RemoteProtocolError("reachability: an address of an unknown family")
    return body[:NONCE_SIZE], decoded.address


def encode_status(status: Status) -> bytes:
    """A RESPONSE record."""
    return _record(RESPONSE, bytes([status]))


def decode_status(body: bytes) -> Status:
    """The status of a RESPONSE body.

    Raises:
        RemoteProtocolError: not one byte, or an unknown status.
    """
    try:
        if len(body) == 1:
            return Status(body[0])
    except ValueError:
        pass
    raise RemoteProtocolError(f"reachability: a malformed RESPONSE {body.hex()!r}")


def decode_record_head(head: bytes) -> tuple[int, int]:
    """Type and body length of a record head (`HEAD`).

    Raises:
        RemoteProtocolError: a body longer than `MAX_RECORD`.
    """
    kind, length = HEAD.unpack(head)
    if length > MAX_RECORD:
        raise RemoteProtocolError(f"reachability: a record of {length} bytes")
    return kind, length


def make_probe(nonce: bytes) -> bytes:
    """The probe datagram: a QUIC v1 long header, Initial type, DCID = ``nonce``, no SCID.

    `PROBE_SIZE` bytes in all; the rest is zero (an empty token, then a
    length and a payload that decrypt to nothing: it is no real packet).
    """
    head = bytes([0xC0]) + struct.pack(">I", _QUIC_V1) + bytes([len(nonce)]) + nonce + b"\x00"
    rest = PROBE_SIZE - len(head) - 3  # token length (1 byte), then a 2-byte varint length
    return head + b"\x00" + struct.pack(">H", 0x4000 | rest) + bytes(rest)


# ----------------------------------------------------------- requester side
@attrs.define
class _Pending:
    address: tuple[str, int]
    wake: Callable[[], None]
    source: tuple[str, int] | None = None


@final
class PendingProbes:
    """The nonces we wait for a probe of (at most `MAX_PENDING`)."""

    __slots__ = ("_table", "limit", "received")

    def __init__(self, limit: int = MAX_PENDING) -> None:
        self.limit = limit
        self._table: dict[bytes, _Pending] = {}
        self.received = 0  # probe datagrams taken (duplicates too)

    def __len__(self) -> int:
        return len(self._table)

    def add(self, nonce: bytes, address: tuple[str, int], wake: Callable[[], None]) -> bool:
        """Wait for ``nonce`` (its probe calls ``wake``); False when the table is full."""
        if len(self._table) >= self.limit or nonce in self._table:
            return False
        self._table[nonce] = _Pending(address, wake)
        return True

    def arrived(self, dcid: bytes, source: Sequence[object]) -> bool:
        """A datagram for no connection came: True if it is a probe we wait for (drop it)."""
        entry = self._table.get(dcid) if len(dcid) == NONCE_SIZE else None
        if entry is None:
            return False
        self.received += 1
        if entry.source is None:
            entry.source = (ip_of(source) or str(source[0]), int(str(source[1])))
            entry.wake()
        return True

    def source(self, nonce: bytes) -> tuple[str, int] | None:
        """Where the probe for ``nonce`` came from (None: not yet)."""
        entry = self._table.get(nonce)
        return None if entry is None else entry.source

    def pop(self, nonce: bytes) -> tuple[str, int] | None:
        """Stop waiting for ``nonce``; where its probe came from, if it came."""
        entry = self._table.pop(nonce, None)
        return None if entry is None else entry.source


@final
class RecentContacts:
    """IPs we sent to lately (bounded LRU): their packets pass an address-dependent filter.

    An IP counts for ``max_age`` seconds after we last noted it (longer than
    the UDP mapping timeouts of RFC 4787, REQ-5: two minutes).  Once the LRU
    had to drop an IP younger than that, no IP can be ruled out for
    ``max_age`` seconds: `contacted` says True for all.
    """

    __slots__ = ("_ips", "_overflow_at", "limit", "max_age")

    def __init__(self, limit: int = 512, max_age: float = 300.0) -> None:
        self.limit = limit
        self.max_age = max_age
        # Made by the first note: most endpoints never answer connectionless.
        self._ips: collections.OrderedDict[str, float] | None = None
        self._overflow_at: float | None = None

    def note(self, address: Sequence[object], now: float) -> None:
        """We sent to ``address`` (a path address is ignored)."""
        ip = ip_of(address)
        if ip is None:
            return
        ips = self._ips
        if ips is None:
            ips = self._ips = collections.OrderedDict()
        ips[ip] = now
        ips.move_to_end(ip)
        while len(ips) > self.limit:
            _, when = ips.popitem(last=False)
            if now - when < self.max_age:
                self._overflow_at = now

    def contacted(self, address: Sequence[object], now: float) -> bool:
        """Whether we may have sent to ``address``'s IP within ``max_age`` seconds."""
        if self._overflow_at is not None and now - self._overflow_at < self.max_age:
            return True
        when = None if self._ips is None else self._ips.get(ip_of(address) or "")
        return when is not None and now - when < self.max_age


def verdict(
    status: Status | None, source: tuple[str, int] | None, contacted: bool
) -> tuple[Reachability, str]:
    """The verdict on one check, and why.

    Args:
        status: what the server answered (None: no answer, a reset, a timeout).
        source: where our probe came from (None: it did not come).
        contacted: whether we had sent to ``source``'s IP lately.
    """
    if source is not None:
        if contacted:
            return Reachability.UNKNOWN, (
                f"the probe came from {source[0]}, an IP we sent to lately: "
                "it would pass an address-dependent filter"
            )
        return Reachability.REACHABLE, f"a probe with our nonce came from {source[0]}"
    if status is Status.SENT:
        return Reachability.UNREACHABLE, "the server sent probes; none arrived"
    if status is None:
        return Reachability.UNKNOWN, "no answer from the server"
    return Reachability.UNKNOWN, f"the server answered {status.name}"


@final
class VerdictBook:
    """The latest verdict per address (at most ``limit``, each for ``max_age`` seconds)."""

    __slots__ = ("_book", "limit", "max_age")

    def __init__(self, limit: int = 32, max_age: float = 600.0) -> None:
        self.limit = limit
        self.max_age = max_age
        # Made by the first verdict: most endpoints never check reachability.
        self._book: collections.OrderedDict[tuple[str, int], tuple[Reachability, float]] | None
        self._book = None

    def record(self, address: tuple[str, int], result: Reachability, now: float) -> None:
        """Remember ``result`` for ``address`` (an unknown never replaces a fresh answer)."""
        old = self.get(address, now)
        if result is Reachability.UNKNOWN and old is not None:
            return
        book = self._book
        if book is None:
            book = self._book = collections.OrderedDict()
        book[address] = (result, now)
        book.move_to_end(address)
        while len(book) > self.limit:
            book.popitem(last=False)

    def get(self, address: tuple[str, int], now: float) -> Reachability | None:
        """The verdict on ``address`` if fresh, else None."""
        entry = None if self._book is None else self._book.get(address)
        if entry is None or now - entry[1] >= self.max_age:
            return None
        return entry[0]


# ------------------------------------------------------------- server side
@final
class RateLimiter:
    """At most ``per_key`` events per key and ``total`` in all, per ``window`` seconds.

    At most ``max_keys`` keys are tracked; a new key past that is refused.
    """

    __slots__ = ("_events", "_keys", "max_keys", "per_key", "total", "window")

    def __init__(
        self, per_key: int, total: int, window: float = 60.0, max_keys: int = 1024
    ) -> None:
        self.per_key = per_key
        self.total = total
        self.window = window
        self.max_keys = max_keys
        # Created by the first event: most endpoints never serve a check.
        self._events: collections.deque[tuple[float, Hashable]] | None = None
        self._keys: collections.Counter[Hashable] | None = None

    def allow(self, key: Hashable, now: float) -> bool:
        """Count an event for ``key`` if within the limits; whether it was."""
        events, keys = self._events, self._keys
        if events is None or keys is None:
            events, keys = self._events, self._keys = collections.deque(), collections.Counter()
        while events and now - events[0][0] >= self.window:
            _, old = events.popleft()
            keys[old] -= 1
            if not keys[old]:
                del keys[old]
        count = keys.get(key, 0)
        if len(events) >= self.total or count >= self.per_key:
            return False
        if not count and len(keys) >= self.max_keys:
            return False
        events.append((now, key))
        keys[key] += 1
        return True
