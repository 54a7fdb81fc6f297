# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The reachability check (``qp2p/reach/1``): the Trio edge, requester, server and helper.

Theory of operation
-------------------
The protocol, the tables and the verdict rules are `_reachcore`'s (read its
docstring first).  This module does the waiting:

- **requester** (`ReachService.check`): for one address, asks up to
  `MAX_SERVERS` connected peers in turn, each on a fresh ``qp2p/reach/1``
  stream: REQUEST (nonce, address), then waits for RESPONSE at most
  `RESPONSE_TIMEOUT` seconds and, after SENT, for the probe at most
  `PROBE_WAIT` more.  The driver wakes it when the probe arrives (its
  `_reachcore.PendingProbes`).  The first definite verdict wins.
- **server** (a handler, only with `Config.serve_reachability_checks`):
  checks the rate limits and that the address's IP is the one it sees the
  requester at, then asks up to `MAX_HELPERS` of its other direct peers
  (at an IP other than the requester's) for a DIAL_BACK; if none sends,
  it sends the probes itself, from a socket of its own.
- **helper** (the same handler, a DIAL_BACK record): rate limits, then
  `PROBES` probes to the address from a socket of its own.

Every record a peer sends is bounded (`_reachcore.MAX_RECORD`); a malformed
one resets that stream with ``MALFORMED``, and nothing else.

Owns: the rate limiters, the verdict book and the counters.
"""

from __future__ import annotations

import contextlib
import secrets
import socket as _stdlib_socket
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from . import _observe
from ._errors import QP2PError, RemoteProtocolError
from ._observed import ExternalAddress, Reachability
from ._reachcore import (
    DIAL_BACK,
    DIAL_BACK_MIN,
    HEAD,
    NONCE_SIZE,
    PROBES,
    REACH_PROTOCOL,
    REQUEST,
    RESPONSE,
    RateLimiter,
    ReachabilityResult,
    Status,
    VerdictBook,
    decode_dial,
    decode_record_head,
    decode_status,
    encode_dial,
    encode_status,
    ip_of,
    make_probe,
    verdict,
)
from ._wire import StreamErrorCode

if TYPE_CHECKING:
    from ._config import Config
    from ._connection import Connection
    from ._driver import Driver
    from ._streams import BidirectionalStream

__all__ = ["ReachCounters", "ReachService", "candidates"]

MAX_SERVERS: Final = 3
MAX_HELPERS: Final = 2
RESPONSE_TIMEOUT: Final = 5.0
HELPER_TIMEOUT: Final = 2.0
PROBE_WAIT: Final = 1.5
PROBE_INTERVAL: Final = 0.1
MAX_ADDRESSES: Final = 8
VERIFY_INTERVAL: Final = 60.0
_log = _observe.get_logger("reach")

Address = tuple[str, int]


@attrs.define
class ReachCounters:
    """Reachability checks asked, served and helped with, and their verdicts."""

    reach_checks_served: int = 0
    reach_checks_declined: int = 0
    reach_dial_backs_helped: int = 0
    reach_probes_sent: int = 0
    reach_records_malformed: int = 0
    reach_verdicts_reachable: int = 0
    reach_verdicts_unreachable: int = 0
    reach_verdicts_unknown: int = 0


async def _read_record(stream: BidirectionalStream, buf: bytearray) -> tuple[int, bytes]:
    """The next record on ``stream`` (raises RemoteProtocolError if too long)."""
    while True:
        if len(buf) >= HEAD.size:
            kind, length = decode_record_head(bytes(buf[: HEAD.size]))
            end = HEAD.size + length
            if len(buf) >= end:
                body = bytes(buf[HEAD.size : end])
                del buf[:end]
                return kind, body
        chunk = await stream.receive_some()
        if not chunk:
            raise trio.BrokenResourceError("the reachability stream ended early")
        buf += chunk


def candidates(found: list[ExternalAddress]) -> list[Address]:
    """The addresses worth a check: not wildcards, at an IP peers see us at (if any do).

    A server dials back only the IP it sees us at: asking about a private
    bound address behind a NAT would only spend its rate limit.  At most
    `MAX_ADDRESSES`, most observers first.
    """
    usable = [a for a in found if a.address[0] not in ("0.0.0.0", "::")]
    seen = {a.address[0] for a in usable if a.observers or a.source == "mapped"}
    return [a.address for a in usable if not seen or a.address[0] in seen][:MAX_ADDRESSES]


@final
class ReachService:
    """Asks for, serves and helps with reachability checks (see the module docstring)."""

    def __init__(self, config: Config, driver: Driver, local: Address) -> None:
        self._config = config
        self._driver = driver
        self._local = local
        # Keyed by IP: a peer with many node ids gets no bigger share.
        self._served = RateLimiter(per_key=8, total=64)  # by requester IP
        self._helped = RateLimiter(per_key=16, total=64)  # by asking server's IP
        self._targets = RateLimiter(per_key=24, total=64)  # helped dial-backs by target IP
        self.book = VerdictBook()
        self._verifying: dict[Address, float] = {}  # mapped addresses checked unasked, when
        self.counters = ReachCounters()
        if config.serve_reachability_checks:
            driver.protocols.register(REACH_PROTOCOL, self._handle, internal=True)

    # --------------------------------------------------------- requester
    async def check_all(
        self, addresses: list[Address], servers: list[Connection]
    ) -> list[ReachabilityResult]:
        """`check` every address (at once), in the order given."""
        results: dict[Address, ReachabilityResult] = {}

        async def one(address: Address) -> None:
            results[address] = await self.check(address, servers)

        async with trio.open_nursery() as nursery:
            for address in dict.fromkeys(addresses):
                nursery.start_soon(one, address)
        return [results[a] for a in dict.fromkeys(addresses)]

    def offered(self, found: list[ExternalAddress], conns: list[Connection]) -> list[Address]:
        """The addresses to offer peers for hole punching: a mapped one only once verified.

        An unverified mapped address is checked in the background (with
        ``conns``' direct peers, at most once every `VERIFY_INTERVAL` seconds),
        so a later round can offer it.
        """
        now = trio.current_time()
        for a in found:
            if a.source == "mapped" and a.reachability is None:
                last = self._verifying.get(a.address)
                if last is None or now - last >= VERIFY_INTERVAL:
                    self._verify(a.address, [c for c in conns if c.path == "direct"], now)
        return [
            a.address
            for a in found
            if a.source != "mapped" or a.reachability is Reachability.REACHABLE
        ]

    def _verify(self, address: Address, servers: list[Connection], now: float) -> None:
        if not servers:
            return
        self._verifying[address] = now
        while len(self._verifying) > 16:
            del self._verifying[next(iter(self._verifying))]

        async def verify() -> None:
            try:
                await self.check(address, servers)
            except Exception:  # a bug here must not end the endpoint's tasks
                _log.exception("reachability: checking %r failed", address)

        with contextlib.suppress(trio.ClosedResourceError):  # the endpoint is closing
            self._driver.protocols.spawn(verify, "verify a mapped address")

    def annotate(self, found: list[ExternalAddress]) -> list[ExternalAddress]:
        """``found`` with each address's latest verdict (`ExternalAddress.reachability`)."""
        now = trio.current_time()
        return [attrs.evolve(a, reachability=self.book.get(a.address, now)) for a in found]

    async def check(self, address: Address, servers: list[Connection]) -> ReachabilityResult:
        """Ask up to `MAX_SERVERS` of ``servers`` in turn to dial ``address`` back."""
        result = ReachabilityResult(address, Reachability.UNKNOWN, None, "no peer to ask")
        for conn in servers[:MAX_SERVERS]:
            reach, detail = await self._ask(conn, address)
            result = ReachabilityResult(address, reach, conn.peer_id, detail)
            if reach is not Reachability.UNKNOWN:
                break
        counters = self.counters
        if result.reachability is Reachability.REACHABLE:
            counters.reach_verdicts_reachable += 1
        elif result.reachability is Reachability.UNREACHABLE:
            counters.reach_verdicts_unreachable += 1
        else:
            counters.reach_verdicts_unknown += 1
        self.book.record(address, result.reachability, trio.current_time())
        _log.info("reachability of %r: %s (%s)", address, result.reachability.value, result.detail)
        return result

    async def _ask(self, conn: Connection, address: Address) -> tuple[Reachability, str]:
        nonce = secrets.token_bytes(NONCE_SIZE)
        arrived = trio.Event()
        probes = self._driver.probes
        if not probes.add(nonce, address, arrived.set):
            return Reachability.UNKNOWN, "too many checks at once"
        status: Status | None = None
        try:
            with trio.move_on_after(RESPONSE_TIMEOUT):
                status = await self._request(conn, nonce, address)
            if status is Status.SENT:
                with trio.move_on_after(PROBE_WAIT):
                    await arrived.wait()
        finally:
            source = probes.pop(nonce)
        contacted = source is not None and self._contacted(source)
        return verdict(status, source, contacted)

    def _contacted(self, source: Address) -> bool:
        """Whether we sent to ``source``'s IP lately (its packets pass an address filter)."""
        driver = self._driver
        ip = ip_of(source)
        if driver.recent.contacted(source, trio.current_time()):
            return True
        return any(ip_of(conn.remote_address) == ip for conn in list(driver.connections))

    async def _request(self, conn: Connection, nonce: bytes, address: Address) -> Status | None:
        try:
            stream = await conn.open_protocol(REACH_PROTOCOL)
        except (QP2PError, trio.ClosedResourceError) as exc:
            _log.debug("reachability: cannot ask %r: %s", conn, exc)
            return None
        try:
            await stream.send_all(encode_dial(REQUEST, nonce, address))
            kind, body = await _read_record(stream, bytearray())
            if kind != RESPONSE:
                raise RemoteProtocolError(f"reachability: a record of type {kind} from a server")
            return decode_status(body)
        except RemoteProtocolError as exc:
            self.counters.reach_records_malformed += 1
            _log.info("reachability: %r answered garbage: %s", conn, exc)
            stream.reset(StreamErrorCode.MALFORMED)
            return None
        except (QP2PError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            _log.debug("reachability: %r did not answer: %s", conn, exc)
            return None
        finally:
            await stream.aclose()

    # ---------------------------------------------------- server and helper
    async def _handle(self, conn: Connection, stream: BidirectionalStream) -> None:
        try:
            kind, body = await _read_record(stream, bytearray())
            nonce, address = decode_dial(body)
            if kind == REQUEST:
                status = await self._serve(conn, nonce, address)
            elif kind == DIAL_BACK and len(body) + HEAD.size >= DIAL_BACK_MIN:
                status = await self._help(conn, nonce, address)
            else:
                raise RemoteProtocolError(f"reachability: a record of type {kind} ({len(body)} B)")
        except RemoteProtocolError as exc:
            self.counters.reach_records_malformed += 1
            _log.info("reachability: %r sent garbage: %s", conn, exc)
            stream.reset(StreamErrorCode.MALFORMED)
            return
        except trio.BrokenResourceError:
            return
        with contextlib.suppress(QP2PError, trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(encode_status(status))  # the requester may have gone

    async def _serve(self, conn: Connection, nonce: bytes, address: Address) -> Status:
        requester_ip = ip_of(conn.remote_address)
        if requester_ip is None or ip_of(address) != requester_ip:
            self.counters.reach_checks_declined += 1
            return Status.BAD_ADDRESS  # the amplification guard: only the IP we see
        if not self._served.allow(requester_ip, trio.current_time()):
            self.counters.reach_checks_declined += 1
            return Status.DECLINED
        self.counters.reach_checks_served += 1
        for helper in self._helpers(conn, requester_ip):
            if await self._ask_helper(helper, nonce, address) is Status.SENT:
                return Status.SENT
        await self._send_probes(nonce, address)
        return Status.SENT

    def _helpers(self, requester: Connection, requester_ip: str) -> list[Connection]:
        found = []
        for conn in list(self._driver.live):
            if conn is requester or conn.path != "direct" or not conn.session.established:
                continue
            ip = ip_of(conn.remote_address)
            if ip is None or ip == requester_ip or conn.peer_id == requester.peer_id:
                continue
            found.append(conn)
            if len(found) >= MAX_HELPERS:
                break
        return found

    async def _ask_helper(
        self, helper: Connection, nonce: bytes, address: Address
    ) -> Status | None:
        with trio.move_on_after(HELPER_TIMEOUT):
            try:
                stream = await helper.open_protocol(REACH_PROTOCOL)
            except (QP2PError, trio.ClosedResourceError):
                return None
            try:
                await stream.send_all(encode_dial(DIAL_BACK, nonce, address))
                kind, body = await _read_record(stream, bytearray())
                return decode_status(body) if kind == RESPONSE else None
            except (QP2PError, trio.BrokenResourceError, trio.ClosedResourceError):
                stream.reset(StreamErrorCode.CANCELLED)
                return None
            finally:
                await stream.aclose()
        return None

    async def _help(self, conn: Connection, nonce: bytes, address: Address) -> Status:
        now, asker, target = trio.current_time(), ip_of(conn.remote_address), ip_of(address)
        if not (self._helped.allow(asker, now) and self._targets.allow(target, now)):
            self.counters.reach_checks_declined += 1
            return Status.DECLINED
        self.counters.reach_dial_backs_helped += 1
        await self._send_probes(nonce, address)
        return Status.SENT

    async def _send_probes(self, nonce: bytes, address: Address) -> None:
        """`PROBES` probes to ``address``, from a fresh socket (not the endpoint's)."""
        ipv6 = ":" in address[0]
        family = _stdlib_socket.AF_INET6 if ipv6 else _stdlib_socket.AF_INET
        own = str(self._local[0])
        bind_ip = own if (":" in own) == ipv6 and own not in ("0.0.0.0", "::") else ""
        probe = make_probe(nonce)
        now = trio.current_time()
        with trio.socket.socket(family, _stdlib_socket.SOCK_DGRAM) as sock:
            try:
                await sock.bind((bind_ip or ("::" if ipv6 else "0.0.0.0"), 0))
                for i in range(PROBES):
                    if i:
                        await trio.sleep(PROBE_INTERVAL)
                    await sock.sendto(probe, address)
                    self.counters.reach_probes_sent += 1
            except OSError as exc:
                _log.info("reachability: cannot probe %r: %s", address, exc)
        self._driver.recent.note(address, now)  # its replies would pass our own filters
