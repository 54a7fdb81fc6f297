# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Observed addresses, sans-IO: the OBSERVED_ADDRESS control record and what we make of it.

Three parts, none doing I/O or reading a clock:

- the codec of the OBSERVED_ADDRESS control record (type 0x04, see
  ``docs/wire.rst``): `encode_observed_address`, `decode_observed_address`
  (which `_wire.ControlParser` calls);
- `ObservedReporter`, one per connection (owned by its `_control.ControlStreams`):
  sends the peer the address we see it at once it is established, again when
  that address changes (NAT rebinding, migration), and takes the peer's
  reports, at most `MAX_REPORTS` per connection (the rest are ignored);
- `ObservationBook`, one per endpoint: each observing peer's latest report
  (at most `MAX_OBSERVERS` peers, the least recent dropped), from which come
  `external_addresses` (with a quorum of observers) and the NAT mapping
  classification `nat_mapping`.  A report counts while its observer's
  connection lives and for ``max_age`` seconds after it ended (`ended`);
  the caller passes the time in.
"""

from __future__ import annotations

import collections
import enum
import ipaddress
import math
import struct
from typing import TYPE_CHECKING, Final, Literal, final

import attrs

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

__all__ = [
    "RECORD_TYPE",
    "MAX_REPORTS",
    "MAX_OBSERVERS",
    "AddressObserved",
    "ExternalAddress",
    "NatMapping",
    "ObservationBook",
    "ObservedAddress",
    "ObservedReporter",
    "Reachability",
    "decode_observed_address",
    "encode_observed_address",
]

RECORD_TYPE: Final = 0x04
"""The control record type of OBSERVED_ADDRESS."""

MAX_REPORTS: Final = 8
"""OBSERVED_ADDRESS records taken from one connection; later ones are ignored.
(A sender stops after as many: a peer rebinding more often than that is no
source of a stable address anyway.)"""

MAX_OBSERVERS: Final = 64
"""Observing peers an endpoint remembers; the least recently heard is dropped."""

#: Address family codes of the record body.
FAMILY_IPV4: Final = 4
FAMILY_IPV6: Final = 6
_SIZES: Final = {FAMILY_IPV4: 4, FAMILY_IPV6: 16}
_HEAD: Final = struct.Struct(">BH")  # family (u8), port (u16 BE)
_RECORD: Final = struct.Struct(">BH")  # control record: type (u8), length (u16 BE)

# The IP part of an address; the port alone is a plain int.
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip_of(addr: Sequence[object]) -> IPAddress | None:
    """The IP of a socket address (IPv4-mapped IPv6 as IPv4), None for a path address."""
    try:
        ip = ipaddress.ip_address(str(addr[0]))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# ----------------------------------------------------------------- codec
@final
@attrs.frozen
class ObservedAddress:
    """The peer saw us at ``(ip, port)`` (a decoded OBSERVED_ADDRESS record)."""

    ip: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)


def encode_observed_address(addr: Sequence[object]) -> bytes | None:
    """The whole OBSERVED_ADDRESS record saying "I see you at ``addr``".

    None if ``addr`` is not an IP socket address (a path address: nothing to
    report).  IPv4-mapped IPv6 addresses are reported as IPv4.
    """
    ip = _ip_of(addr)
    port = addr[1] if len(addr) > 1 else None
    if ip is None or not isinstance(port, int) or not 0 < port < 65536:
        return None
    family = FAMILY_IPV4 if ip.version == 4 else FAMILY_IPV6
    body = _HEAD.pack(family, port) + ip.packed
    return _RECORD.pack(RECORD_TYPE, len(body)) + body


def decode_observed_address(body: bytes | bytearray | memoryview) -> ObservedAddress | None:
    """Decode the body of an OBSERVED_ADDRESS record.

    Returns None for an unknown family (a later version's: skipped, like an
    unknown record).  Bytes after the address are allowed and ignored (later
    versions may append fields).

    Raises:
        ValueError: a body too short for its family, or port 0 (the
            `_wire.ControlParser` makes it a MALFORMED `RemoteProtocolError`).
    """
    if len(body) < _HEAD.size:
        raise ValueError(f"a body of {len(body)} bytes")
    family, port = _HEAD.unpack_from(body)
    size = _SIZES.get(family)
    if size is None:
        return None
    if len(body) < _HEAD.size + size:
        raise ValueError(f"an IPv{family} body of {len(body)} bytes")
    if port == 0:
        raise ValueError("port 0")
    raw = bytes(body[_HEAD.size : _HEAD.size + size])
    ip: IPAddress = ipaddress.IPv4Address(raw) if size == 4 else ipaddress.IPv6Address(raw)
    return ObservedAddress(ip=str(ip), port=port)


# ----------------------------------------------------- one connection's side
@final
@attrs.frozen
class AddressObserved:
    """Session event: the peer says it sees us at ``address``."""

    address: tuple[str, int]


@final
class ObservedReporter:
    """One connection's OBSERVED_ADDRESS bookkeeping (owned by its session)."""

    __slots__ = ("latest", "received", "sent", "sent_for")

    def __init__(self) -> None:
        self.sent = 0
        self.sent_for: tuple[object, ...] | None = None  # the peer address last reported
        self.received = 0
        self.latest: tuple[str, int] | None = None

    def report(self, peer_address: Sequence[object] | None) -> bytes | None:
        """The record to send now, if ``peer_address`` is new (call when established)."""
        if peer_address is None or self.sent >= MAX_REPORTS:
            return None
        key = tuple(peer_address[:2])
        if key == self.sent_for:
            return None
        self.sent_for = key
        record = encode_observed_address(peer_address)
        if record is not None:
            self.sent += 1
        return record

    def received_record(self, record: ObservedAddress) -> list[AddressObserved]:
        """The events a received record makes: none past `MAX_REPORTS` or if unchanged."""
        self.received += 1
        if self.received > MAX_REPORTS or record.address == self.latest:
            return []
        self.latest = record.address
        return [AddressObserved(record.address)]


# ------------------------------------------------------- the endpoint's view
class NatMapping(enum.Enum):
    """How the NAT in front of an endpoint maps its socket, judged from observations.

    Only the *mapping* (RFC 4787): which public address the endpoint's
    packets get towards different peers.  It says nothing about *filtering*
    (which inbound packets the NAT lets through), so an endpoint-independent
    mapping is necessary for hole punching, not a proof that unsolicited
    packets arrive.
    """

    #: Fewer than two observers at distinct addresses reported.
    UNKNOWN = "unknown"
    #: Every observer sees the endpoint at its own bound address.
    NONE = "none"
    #: Every observer sees the same public address: hole-punchable (a "cone" NAT).
    ENDPOINT_INDEPENDENT = "endpoint-independent"
    #: Observers see different ports (or IPs): the mapping depends on the
    #: destination's address or address and port (a "symmetric" NAT).
    ADDRESS_DEPENDENT = "address-dependent"


@final
class Reachability(enum.Enum):
    """The verdict of a reachability check on one address (`Endpoint.check_reachability`)."""

    #: A dial-back probe with our nonce arrived from an IP we had not sent
    #: to: strangers can reach this address unasked.
    REACHABLE = "reachable"
    #: The server says it sent dial-back probes, and none arrived.
    UNREACHABLE = "unreachable"
    #: No proof either way: no server, a refusal, a timeout, or a probe from
    #: an IP we had sent to (it would pass an address-dependent filter).
    UNKNOWN = "unknown"


@final
@attrs.frozen
class ExternalAddress:
    """An address this endpoint may be reachable at.

    Attributes:
        address: ``(ip, port)``.
        source: ``"local"`` (the bound address, when it is not a wildcard),
            ``"observed"`` (reported by peers on their connections) or
            ``"mapped"`` (forwarded to us by the gateway: `Config.port_mapping`).
        observers: how many distinct observers (peers at distinct IPs)
            report this address now.
        confirmed: whether ``observers`` reached
            `Config.observed_address_quorum` (for a mapped address: whether
            the gateway's lease is live).
        reachability: the latest verdict of a reachability check on this
            address (`Endpoint.check_reachability`), or ``None`` if none was
            made in the last ten minutes.  A ``"mapped"`` address is offered
            to peers as a hole-punching candidate only once it is
            `Reachability.REACHABLE`.
    """

    address: tuple[str, int]
    source: Literal["local", "observed", "mapped"]
    observers: int
    confirmed: bool
    reachability: Reachability | None = None


@attrs.frozen
class _Observation:
    observer_address: tuple[str, int]  # where we see the observing peer
    observed: tuple[str, int]  # where it sees us
    ended: float | None = None  # when the observer's connection ended


@final
class ObservationBook:
    """The endpoint's observations: each observing peer's latest (bounded)."""

    __slots__ = ("_by_peer", "limit", "max_age")

    def __init__(self, limit: int = MAX_OBSERVERS, max_age: float = math.inf) -> None:
        self.limit = limit
        self.max_age = max_age
        self._by_peer: collections.OrderedDict[Hashable, _Observation] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._by_peer)

    def record(
        self,
        observer: Hashable,
        observer_address: Sequence[object],
        observed: tuple[str, int],
    ) -> None:
        """``observer``, whom we see at ``observer_address``, sees us at ``observed``."""
        ip = _ip_of(observer_address)
        if ip is None:  # an observer over a path (relay): no IP of its own to count
            return
        by_peer = self._by_peer
        by_peer.pop(observer, None)
        by_peer[observer] = _Observation((str(ip), int(str(observer_address[1]))), observed)
        while len(by_peer) > self.limit:
            by_peer.popitem(last=False)

    def ended(self, observer: Hashable, now: float) -> None:
        """``observer``'s connection ended at ``now``: its report expires ``max_age`` later."""
        obs = self._by_peer.get(observer)
        if obs is not None and obs.ended is None:
            self._by_peer[observer] = attrs.evolve(obs, ended=now)

    def expire(self, now: float) -> None:
        """Forget the reports of observers gone for ``max_age`` seconds or more at ``now``."""
        stale = [
            key
            for key, obs in self._by_peer.items()
            if obs.ended is not None and now - obs.ended >= self.max_age
        ]
        for key in stale:
            del self._by_peer[key]

    def _observers(self) -> dict[tuple[str, int], set[str]]:
        """Each observed address and the distinct observer IPs reporting it."""
        out: dict[tuple[str, int], set[str]] = {}
        for obs in self._by_peer.values():
            out.setdefault(obs.observed, set()).add(obs.observer_address[0])
        return out

    def external_addresses(self, local: Sequence[object], quorum: int) -> list[ExternalAddress]:
        """The local address (if not a wildcard), then observed ones, most observers first."""
        observers = self._observers()
        out: list[ExternalAddress] = []
        local_key = _local_key(local)
        if local_key is not None:
            n = len(observers.pop(local_key, ()))
            out.append(ExternalAddress(local_key, "local", n, n >= quorum))
        ranked = sorted(observers.items(), key=lambda item: (-len(item[1]), item[0]))
        out += [ExternalAddress(a, "observed", len(s), len(s) >= quorum) for a, s in ranked]
        return out

    def nat_mapping(self, local: Sequence[object]) -> NatMapping:
        """Classify the mapping from observers at distinct addresses (see `NatMapping`).

        IPv4 observations are judged if two observers at distinct addresses
        made them, else IPv6 ones.
        """
        for version in (4, 6):
            seen: dict[tuple[str, int], tuple[str, int]] = {}
            for obs in self._by_peer.values():
                if ipaddress.ip_address(obs.observed[0]).version == version:
                    seen[obs.observer_address] = obs.observed
            if len(seen) < 2:
                continue
            distinct = set(seen.values())
            if len(distinct) > 1:
                return NatMapping.ADDRESS_DEPENDENT
            if distinct == {_local_key(local)}:
                return NatMapping.NONE
            return NatMapping.ENDPOINT_INDEPENDENT
        return NatMapping.UNKNOWN


def _local_key(local: Sequence[object]) -> tuple[str, int] | None:
    """The bound address as ``(ip, port)``; None for a wildcard or a path."""
    ip = _ip_of(local)
    if ip is None or ip.is_unspecified:
        return None
    return (str(ip), int(str(local[1])))
