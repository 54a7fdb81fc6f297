# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Port mapping leases and the NAT-PMP / PCP client state machine, sans-IO.

`MappingClient` owns one mapping of our UDP port on a NAT-PMP (RFC 6886)
or PCP (RFC 6887) gateway through its life::

    idle -start-> requesting -reply-> mapped -half the lease-> renewing -reply-> mapped
                      |                  |  every CHECK_INTERVAL: checking (epoch)
                      v                  v  gateway restarted: renewing at once
                    failed            close -> deleting -reply or retries done-> closed

The caller (`_portmap_io`) sends what `poll` returns to the gateway, feeds
every datagram from the gateway to `receive`, and calls `poll` again at
`deadline` or after a datagram.  Requests are retransmitted after 0.25,
0.5, 1 and 2 s (RFC 6886's schedule, cut short: a gateway on the LAN
answers in milliseconds or not at all).  A lease is renewed at half its
lifetime.  Between renewals a cheap request (NAT-PMP's external address,
PCP's ANNOUNCE) checks the gateway's epoch every `CHECK_INTERVAL` seconds:
a gateway that restarted (RFC 6887 §8.5's rule) lost our mapping, which is
then asked for again at once.

`Lease` is also what the UPnP client (`_upnp`, `_portmap_io`) produces.
Time is passed in; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import enum
import math
from typing import Final, final

import attrs

from . import _natpmp
from ._errors import GatewayReplyError, PortMappingError

__all__ = [
    "CHECK_INTERVAL",
    "MIN_LIFETIME",
    "RETRY_DELAYS",
    "Lease",
    "MappingClient",
    "Phase",
    "gateway_restarted",
]

RETRY_DELAYS: Final = (0.25, 0.5, 1.0, 2.0)
"""Seconds to wait for a reply after each send of a request; then it failed."""

CHECK_INTERVAL: Final = 60.0
"""Seconds between epoch checks of a mapped gateway (a restart loses mappings)."""

MIN_LIFETIME: Final = 8.0
"""A granted lifetime below this counts as this much: a gateway granting one
second cannot make us renew in a tight loop."""


@final
@attrs.frozen
class Lease:
    """A port mapping a gateway granted.

    Attributes:
        protocol: ``"natpmp"``, ``"pcp"`` or ``"upnp"``.
        external: the public ``(ip, port)`` the gateway forwards to us.
        internal_port: our UDP port it forwards to.
        lifetime: seconds granted (0: until deleted, UPnP only).
        granted: when it was granted (the caller's clock).
    """

    protocol: str
    external: tuple[str, int]
    internal_port: int
    lifetime: float
    granted: float

    @property
    def renew_at(self) -> float:
        """When to renew: half the lifetime on (an hour on for a permanent one)."""
        if self.lifetime <= 0:
            return self.granted + 3600.0
        return self.granted + max(self.lifetime, MIN_LIFETIME) / 2

    @property
    def expires_at(self) -> float:
        """When the gateway forgets it unless renewed."""
        return math.inf if self.lifetime <= 0 else self.granted + max(self.lifetime, MIN_LIFETIME)


def gateway_restarted(previous: tuple[float, int] | None, now: float, epoch: int) -> bool:
    """Whether a gateway's epoch says it lost its state since the previous reply.

    RFC 6887 §8.5 (NAT-PMP's §3.6 is the same idea): the epoch went back by
    more than a second, or it advanced much more or much less than our
    clock did (a 1/16 tolerance plus two seconds).

    Args:
        previous: ``(our time, epoch)`` of the previous reply, or None.
        now: our time of this reply.
        epoch: this reply's epoch.
    """
    if previous is None:
        return False
    then, before = previous
    if epoch < before - 1:
        return True
    ours = now - then
    theirs = epoch - before
    return ours + 2 < theirs - theirs / 16 or theirs + 2 < ours - ours / 16


class Phase(enum.Enum):
    """Where a `MappingClient` is (see the module docstring)."""

    IDLE = "idle"
    REQUESTING = "requesting"
    MAPPED = "mapped"
    CHECKING = "checking"
    RENEWING = "renewing"
    DELETING = "deleting"
    CLOSED = "closed"
    FAILED = "failed"


_WAITING: Final = (Phase.REQUESTING, Phase.CHECKING, Phase.RENEWING, Phase.DELETING)


@final
class MappingClient:
    """One UDP port mapping on a NAT-PMP or PCP gateway (see the module docstring).

    Args:
        protocol: ``"natpmp"`` or ``"pcp"``.
        internal_port: the port our socket is bound to.
        lifetime: seconds to ask for.
        client_ip: our address as the gateway sees it (PCP checks it).
        nonce: 12 random bytes naming the mapping's owner (PCP).
    """

    def __init__(
        self,
        protocol: str,
        internal_port: int,
        lifetime: int,
        *,
        client_ip: str = "0.0.0.0",
        nonce: bytes = bytes(12),
    ) -> None:
        if protocol not in ("natpmp", "pcp"):
            raise ValueError(f"unknown port mapping protocol {protocol!r}")
        self.protocol = protocol
        self.internal_port = internal_port
        self.lifetime = lifetime
        self.client_ip = client_ip
        self.nonce = nonce
        self.phase = Phase.IDLE
        self.lease: Lease | None = None
        self.error: PortMappingError | None = None
        #: Gateway restarts detected (each led to a new request).
        self.restarts = 0
        #: Replies ignored because they did not parse.
        self.malformed = 0
        self._external_ip: str | None = None  # NAT-PMP learns the IP separately
        self._granted: tuple[int, int] | None = None  # (external port, lifetime)
        self._epoch: tuple[float, int] | None = None
        self._pending: dict[int, bytes] = {}  # opcode -> request awaiting its reply
        self._sends = 0
        self._next_send = 0.0
        self._next_check = math.inf

    # ----------------------------------------------------------- the API
    def start(self, now: float) -> None:
        """Ask for the mapping."""
        self._request(Phase.REQUESTING, now)

    def close(self, now: float) -> None:
        """Delete the mapping (if any): `poll` then sends the deletion."""
        if self.lease is None or self.phase in (Phase.CLOSED, Phase.FAILED, Phase.IDLE):
            self.phase = Phase.CLOSED
            return
        if self.protocol == "natpmp":
            request = _natpmp.encode_natpmp_map_request(self.internal_port, 0, 0)
        else:
            request = _natpmp.encode_pcp_map_request(
                self.client_ip, self.nonce, self.internal_port, 0, self.lease.external
            )
        self._pending = {_natpmp.NATPMP_OP_MAP_UDP: request}
        self._begin(Phase.DELETING, now)

    @property
    def deadline(self) -> float:
        """When to call `poll` next (unless a datagram comes first)."""
        if self.phase in _WAITING:
            if self.phase is Phase.RENEWING and self.lease is not None:
                return min(self._next_send, self.lease.expires_at)
            return self._next_send
        if self.phase is Phase.MAPPED and self.lease is not None:
            return min(self.lease.renew_at, self._next_check)
        return math.inf

    def poll(self, now: float) -> list[bytes]:
        """Advance the timers to ``now``; the datagrams to send the gateway now."""
        if self.phase is Phase.MAPPED and self.lease is not None:
            if now >= self.lease.renew_at:
                self._request(Phase.RENEWING, now)
            elif now >= self._next_check:
                self._check(now)
        if self.phase is Phase.RENEWING and self.lease is not None and now >= self.lease.expires_at:
            self.lease = None  # lost: ask again from scratch
            self._request(Phase.REQUESTING, now)
        if self.phase not in _WAITING or now < self._next_send:
            return []
        if self._sends >= len(RETRY_DELAYS):
            self._timed_out(now)
            return self.poll(now) if self.phase in _WAITING else []
        self._next_send = now + RETRY_DELAYS[self._sends]
        self._sends += 1
        return list(self._pending.values())

    def receive(self, data: bytes, now: float) -> None:
        """Take a datagram from the gateway.

        Raises:
            GatewayReplyError: it did not parse, or answers nothing we asked
                (the caller ignores it; `malformed` counts it).
        """
        try:
            reply = self._decode(data)
        except GatewayReplyError:
            self.malformed += 1
            raise
        if self.phase not in _WAITING or reply.opcode not in self._pending:
            return  # late or duplicate: nothing waits for it
        restarted = gateway_restarted(self._epoch, now, reply.epoch)
        self._epoch = (now, reply.epoch)
        if reply.result != 0:
            self._refused(reply, now)
            return
        del self._pending[reply.opcode]
        if reply.external_ip is not None:
            self._external_ip = reply.external_ip
        if self.phase is Phase.DELETING:
            self.lease = None
            self.phase = Phase.CLOSED
            return
        if self.phase is Phase.CHECKING:
            self._checked(restarted, now)
            return
        if reply.external_port is not None:
            if reply.internal_port != self.internal_port or not reply.lifetime:
                raise GatewayReplyError(
                    f"{self.protocol} gateway mapped port {reply.internal_port} for "
                    f"{reply.lifetime} s; we asked for {self.internal_port}",
                    protocol=self.protocol,
                )
            self._granted = (reply.external_port, reply.lifetime)
        if not self._pending:
            self._mapped(now)

    # ---------------------------------------------------------- internals
    def _decode(self, data: bytes) -> _natpmp.GatewayReply:
        if self.protocol == "natpmp":
            return _natpmp.decode_natpmp(data)
        reply = _natpmp.decode_pcp(data, self.nonce)
        if reply.opcode == _natpmp.PCP_OP_ANNOUNCE:  # the check's answer: file it as such
            return attrs.evolve(reply, opcode=_natpmp.NATPMP_OP_ADDRESS)
        return reply

    def _begin(self, phase: Phase, now: float) -> None:
        self.phase = phase
        self._sends = 0
        self._next_send = now

    def _request(self, phase: Phase, now: float) -> None:
        suggested = self.lease.external if self.lease is not None else None
        if self.protocol == "natpmp":
            port = suggested[1] if suggested else self.internal_port
            self._pending = {
                _natpmp.NATPMP_OP_ADDRESS: _natpmp.encode_natpmp_address_request(),
                _natpmp.NATPMP_OP_MAP_UDP: _natpmp.encode_natpmp_map_request(
                    self.internal_port, port, self.lifetime
                ),
            }
        else:
            self._pending = {
                _natpmp.PCP_OP_MAP: _natpmp.encode_pcp_map_request(
                    self.client_ip,
                    self.nonce,
                    self.internal_port,
                    self.lifetime,
                    suggested or ("0.0.0.0", self.internal_port),
                )
            }
        self._begin(phase, now)

    def _check(self, now: float) -> None:
        if self.protocol == "natpmp":
            request = _natpmp.encode_natpmp_address_request()
        else:
            request = _natpmp.encode_pcp_announce(self.client_ip)
        self._pending = {_natpmp.NATPMP_OP_ADDRESS: request}
        self._begin(Phase.CHECKING, now)

    def _checked(self, restarted: bool, now: float) -> None:
        if restarted:
            self.restarts += 1
            self._request(Phase.RENEWING, now)
            return
        if self.lease is not None and self._external_ip not in (None, self.lease.external[0]):
            self._request(Phase.RENEWING, now)  # the external address changed
            return
        self.phase = Phase.MAPPED
        self._next_check = now + CHECK_INTERVAL

    def _mapped(self, now: float) -> None:
        ip = self._external_ip
        if ip is None or self._granted is None:
            raise GatewayReplyError(
                f"{self.protocol} gateway gave no external address", protocol=self.protocol
            )
        port, lifetime = self._granted
        self.lease = Lease(self.protocol, (ip, port), self.internal_port, float(lifetime), now)
        self.phase = Phase.MAPPED
        self._next_check = now + CHECK_INTERVAL

    def _timed_out(self, now: float) -> None:
        if self.phase is Phase.DELETING:
            self.phase = Phase.CLOSED
        elif self.phase is Phase.CHECKING:
            self.phase = Phase.MAPPED  # an unanswered check: try again later
            self._next_check = now + CHECK_INTERVAL
        elif self.phase is Phase.RENEWING:
            self._begin(Phase.RENEWING, now + RETRY_DELAYS[-1])  # until the lease expires
        else:
            self.phase = Phase.FAILED
            self.error = PortMappingError(
                f"no {self.protocol} reply from the gateway after {len(RETRY_DELAYS)} tries",
                protocol=self.protocol,
            )

    def _refused(self, reply: _natpmp.GatewayReply, now: float) -> None:
        if self.phase is Phase.DELETING:
            self.phase = Phase.CLOSED
            return
        if self.phase is Phase.CHECKING:
            self._checked(False, now)
            return
        text = (
            _natpmp.natpmp_result_text if self.protocol == "natpmp" else _natpmp.pcp_result_text
        )(reply.result)
        self.lease = None
        self.phase = Phase.FAILED
        self.error = PortMappingError(
            f"the {self.protocol} gateway refused the mapping: {text}",
            protocol=self.protocol,
            code=reply.result,
        )
