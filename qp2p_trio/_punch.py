# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Hole punching over a relayed connection (``qp2p/punch/1``), in the manner of DCUtR.

Theory of operation
-------------------
When `Endpoint.connect` ends up with a relayed connection, the dialler (A)
starts `Puncher.start`: a task that opens a ``qp2p/punch/1`` protocol
stream on the relayed connection and, for up to `ROUNDS` rounds:

1. A sends CONNECT with its candidate addresses (`Endpoint.external_addresses`:
   the bound address and the ones peers observe, at most `MAX_CANDIDATES`)
   and starts a clock;
2. B answers CONNECT with its own; A now knows the round-trip time;
3. A sends SYNC and waits half the round-trip time, B dials A's candidates
   as soon as SYNC arrives, A dials B's when its wait ends: both first
   packets leave at about the same moment, so each NAT has a mapping for
   the other side when the other's packets arrive (QUIC retransmits the
   Initials that arrive too early);
4. whichever direct handshake completes enters the pool, which prefers a
   direct connection to a relayed one (`_pool`): the relayed connection is
   *retired* (GOAWAY on both sides, streams in flight finish, new messages
   go direct), so no message is lost or doubled across the switch.

A round whose dials all fail within `ROUND_TIMEOUT` is followed by the next
after a pause; when all `ROUNDS` fail, the session is tried again after
`SESSION_BACKOFF` seconds, then after twice that (`SESSIONS` in all: the
path may open later, a NAT reboot, a blackhole that lifts).  With two
address-dependent (symmetric) NATs every round fails and the connection
stays relayed.  The dialler of a relayed connection starts punching
(`_pathkeeper` calls `Puncher.start` when the connection is pooled).

Records on the stream: type (u8), length (u16 BE), body; CONNECT (0x01) is
a sequence of OBSERVED_ADDRESS records (`_observed`), SYNC (0x02) is empty
(docs/wire.rst).

Owns: the punch tasks (one per relayed connection) and their counters.
"""

from __future__ import annotations

import functools
import struct
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from . import _observe
from ._errors import QP2PError
from ._observed import decode_observed_address, encode_observed_address

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._connection import Connection
    from ._identity import NodeId
    from ._protocols import ProtocolRouter
    from ._streams import BidirectionalStream

__all__ = ["PUNCH_PROTOCOL", "PunchCounters", "Puncher"]

PUNCH_PROTOCOL: Final = "qp2p/punch/1"
ROUNDS: Final = 3
#: Sessions of `ROUNDS` rounds per relayed connection: a failed session is
#: tried again after `SESSION_BACKOFF` seconds, then twice that.
SESSIONS: Final = 3
SESSION_BACKOFF: Final = 30.0
ROUND_TIMEOUT: Final = 2.0
MAX_CANDIDATES: Final = 8
CONNECT: Final = 0x01
SYNC: Final = 0x02
_RECORD = struct.Struct(">BH")
_log = _observe.get_logger("punch")

Address = tuple[str, int]


@attrs.define
class PunchCounters:
    """Hole punching attempts and how they ended."""

    punch_attempts: int = 0
    punch_successes: int = 0
    punch_failures: int = 0
    punch_requests_refused: int = 0


def _encode(kind: int, body: bytes = b"") -> bytes:
    return _RECORD.pack(kind, len(body)) + body


def encode_candidates(addresses: list[Address]) -> bytes:
    """A CONNECT record: each address as an OBSERVED_ADDRESS record."""
    parts = [encode_observed_address(a) for a in addresses[:MAX_CANDIDATES]]
    return _encode(CONNECT, b"".join(p for p in parts if p is not None))


def decode_candidates(body: bytes) -> list[Address]:
    """The addresses of a CONNECT body (malformed ones skipped, at most `MAX_CANDIDATES`)."""
    out: list[Address] = []
    pos = 0
    while pos + _RECORD.size <= len(body) and len(out) < MAX_CANDIDATES:
        _kind, length = _RECORD.unpack_from(body, pos)
        start = pos + _RECORD.size
        pos = start + length
        try:
            record = decode_observed_address(body[start:pos])
        except ValueError:
            continue
        if record is not None:
            out.append(record.address)
    return out


async def _read_record(stream: BidirectionalStream, buf: bytearray) -> tuple[int, bytes]:
    while True:
        if len(buf) >= _RECORD.size:
            kind, length = _RECORD.unpack_from(buf)
            end = _RECORD.size + length
            if len(buf) >= end:
                body = bytes(buf[_RECORD.size : end])
                del buf[:end]
                return kind, body
        chunk = await stream.receive_some()
        if not chunk:
            raise trio.BrokenResourceError("the punch stream ended early")
        buf += chunk
        if len(buf) > 4096:
            raise trio.BrokenResourceError("a punch record over 4096 bytes")


@final
class Puncher:
    """Runs hole punching for relayed connections (see the module docstring)."""

    def __init__(
        self,
        candidates: Callable[[], list[Address]],
        dial: Callable[[Address, NodeId], Awaitable[Connection | None]],
        spawn: Callable[[Callable[[], Awaitable[None]], str], None],
    ) -> None:
        self._candidates = candidates
        self._dial = dial
        #: Starts a task in the endpoint's nursery (the path keeper's too).
        self.spawn = spawn
        self._running: dict[Connection, None] = {}  # a set, at 64 bytes while empty
        self._answered: dict[Connection, int] = {}  # punch requests answered, per connection
        self.counters = PunchCounters()

    def install(self, router: ProtocolRouter) -> None:
        """Answer ``qp2p/punch/1`` streams from now on."""
        router.register(PUNCH_PROTOCOL, self._respond, internal=True)

    def start(self, conn: Connection) -> None:
        """Punch a hole for the relayed ``conn`` in a task of the endpoint (once)."""
        if conn in self._running or conn.path != "relayed":
            return
        self._running[conn] = None
        self.spawn(functools.partial(self._initiate, conn), "hole punching")

    def _ours(self) -> list[Address]:
        return [a for a in self._candidates() if a[0] not in ("0.0.0.0", "::")]

    async def _initiate(self, conn: Connection) -> None:
        try:
            for session in range(SESSIONS):
                if session:
                    await trio.sleep(SESSION_BACKOFF * 2 ** (session - 1))
                for round_ in range(ROUNDS):
                    if conn.is_retired or conn.is_closed:
                        return
                    self.counters.punch_attempts += 1
                    try:
                        won = await self._round(conn)
                    except (QP2PError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        _log.info(
                            "hole punching with %r: round %d failed: %s", conn, round_ + 1, exc
                        )
                        won = False
                    if won:
                        self.counters.punch_successes += 1
                        return
                    self.counters.punch_failures += 1
                    await trio.sleep(ROUND_TIMEOUT * (round_ + 1))
        finally:
            self._running.pop(conn, None)

    async def _round(self, conn: Connection) -> bool:
        stream = await conn.open_protocol(PUNCH_PROTOCOL)
        buf = bytearray()
        try:
            start = trio.current_time()
            await stream.send_all(encode_candidates(self._ours()))
            kind, body = await _read_record(stream, buf)
            if kind != CONNECT:
                return False
            rtt = trio.current_time() - start
            await stream.send_all(_encode(SYNC))
            await trio.sleep(rtt / 2)
            return await self._dial_any(decode_candidates(body), conn.peer_id)
        finally:
            await stream.aclose()

    def _may_answer(self, conn: Connection) -> bool:
        """A peer makes us dial its candidates only over a relayed connection and
        ``ROUNDS * SESSIONS`` times in all: we are nobody's packet cannon."""
        answered = self._answered
        if len(answered) > 256:
            for done in [c for c in answered if c.is_closed]:
                del answered[done]
        count = answered.get(conn, 0)
        if conn.path != "relayed" or count >= ROUNDS * SESSIONS:
            self.counters.punch_requests_refused += 1
            return False
        answered[conn] = count + 1
        return True

    async def _respond(self, conn: Connection, stream: BidirectionalStream) -> None:
        if not self._may_answer(conn):
            stream.reset()
            return
        buf = bytearray()
        kind, body = await _read_record(stream, buf)
        if kind != CONNECT:
            return
        await stream.send_all(encode_candidates(self._ours()))
        kind, _ = await _read_record(stream, buf)
        if kind == SYNC:
            await self._dial_any(decode_candidates(body), conn.peer_id)

    async def _dial_any(self, candidates: list[Address], peer: NodeId) -> bool:
        """Dial every candidate at once; True once one direct handshake completes."""
        won: list[Connection] = []
        with trio.move_on_after(ROUND_TIMEOUT):
            async with trio.open_nursery() as nursery:

                async def one(address: Address) -> None:
                    conn = await self._dial(address, peer)
                    if conn is not None:
                        won.append(conn)
                        nursery.cancel_scope.cancel()

                for address in candidates:
                    nursery.start_soon(one, address)
        return bool(won)
