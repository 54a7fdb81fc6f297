# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Port mapping, the Trio edge: NAT-PMP, PCP and UPnP-IGD over ``trio.socket``.

`PortMapper` maps one endpoint's UDP port on the gateway in front of it.
`PortMapper.run` (a task of the endpoint, when `Config.port_mapping` is on)
probes the three protocols at once with harmless requests (NAT-PMP's
external address, PCP's ANNOUNCE, UPnP's SSDP search and
GetExternalIPAddress), each bounded by `PROBE_TIMEOUT`; the first to answer
and any other answering within `ANSWER_WINDOW`, the most preferred
(`PROTOCOLS`: PCP, NAT-PMP, UPnP) is asked for the mapping (the others
next if it refuses), which is then kept: renewed at half its lease, asked for again
after a gateway restart, and retried every `RETRY_INTERVAL` after a
failure.  `PortMapper.aclose` deletes the mapping, bounded in time.

The protocols' logic is sans-IO (`_natpmp`, `_portmap`, `_upnp`): this
module owns the sockets, the waiting and the bounds.  A gateway's
malformed or hostile reply is ignored (counted, logged): it never ends
the endpoint.  Sockets come from ``trio.socket``, so a
`qp2p_trio.testing.MemoryNetwork` (whose fake gateways speak NAT-PMP and
PCP) replaces the real network in tests.  The gateway is
`Config.port_mapping_gateway`, else the IPv4 default route's (Linux
``/proc/net/route``); SSDP goes to the multicast group only for a
gateway found that way.
"""

from __future__ import annotations

import ipaddress
import os
import socket as _stdlib_socket
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from . import _natpmp, _upnp
from ._errors import GatewayReplyError, PortMappingError
from ._observe import get_logger
from ._portmap import CHECK_INTERVAL, Lease, MappingClient, Phase

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "PROBE_TIMEOUT",
    "GatewayProbe",
    "PortMapper",
    "PortMappingStatus",
    "default_gateway",
    "parse_proc_route",
]

_log = get_logger("portmap")

PROBE_TIMEOUT: Final = 2.0
"""Seconds each protocol's probe may take (a LAN gateway answers in milliseconds)."""
RETRY_INTERVAL: Final = 300.0
"""Seconds between attempts after every protocol failed to map."""
PROTOCOLS: Final = ("pcp", "natpmp", "upnp")
"""The protocols, most preferred first (PCP is NAT-PMP's successor; UPnP is the
heaviest and the least often trusted)."""
ANSWER_WINDOW: Final = 0.2
"""Seconds the other probes get after the first answer: then the most
preferred protocol that answered is used."""
_HTTP_TIMEOUT: Final = 3.0
_MAX_DATAGRAM: Final = 2048


@final
@attrs.frozen
class GatewayProbe:
    """What one port mapping protocol's probe found.

    Attributes:
        protocol: ``"natpmp"``, ``"pcp"`` or ``"upnp"``.
        answered: whether the gateway answered it.
        external_ip: the gateway's external address, if it said.
        detail: why it did not answer, or what it said.
    """

    protocol: str
    answered: bool
    external_ip: str | None = None
    detail: str = ""


@final
@attrs.frozen
class PortMappingStatus:
    """The port mapping of an endpoint (`Endpoint.port_mapping`).

    Attributes:
        gateway: the gateway's IP address, or None if none is known.
        probes: what each protocol's probe found (empty before probing).
        protocol: the protocol of the live mapping, or None.
        external: the mapped public ``(ip, port)``, or None.
        error: why there is no mapping, if it failed.
    """

    gateway: str | None
    probes: tuple[GatewayProbe, ...] = ()
    protocol: str | None = None
    external: tuple[str, int] | None = None
    error: str | None = None

    @property
    def answered(self) -> tuple[str, ...]:
        """The protocols whose probe the gateway answered."""
        return tuple(p.protocol for p in self.probes if p.answered)


def parse_proc_route(text: str) -> str | None:
    """The IPv4 default gateway in the text of Linux's ``/proc/net/route``."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[1] != "00000000":
            continue
        try:
            flags = int(fields[3], 16)
            raw = int(fields[2], 16)
        except ValueError:
            continue
        if flags & 0x2 and raw:  # RTF_GATEWAY
            return str(ipaddress.IPv4Address(raw.to_bytes(4, "little")))
    return None


def default_gateway() -> str | None:
    """The IPv4 default gateway of this machine (Linux), or None."""
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            return parse_proc_route(f.read(16384))
    except OSError:
        return None


def _local_ip_towards(gateway: str) -> str | None:
    """Our IPv4 address on the route to ``gateway`` (a connected UDP socket sends nothing)."""
    try:
        with _stdlib_socket.socket(_stdlib_socket.AF_INET, _stdlib_socket.SOCK_DGRAM) as s:
            s.connect((gateway, _natpmp.GATEWAY_PORT))
            return str(s.getsockname()[0])
    except OSError:
        return None


async def _udp_socket(bind_ip: str) -> trio.socket.SocketType:
    sock = trio.socket.socket(_stdlib_socket.AF_INET, _stdlib_socket.SOCK_DGRAM)
    try:
        await sock.bind((bind_ip, 0))
    except BaseException:
        sock.close()
        raise
    return sock


@final
class PortMapper:
    """One endpoint's port mapping (see the module docstring).

    Args:
        gateway: the gateway's IPv4 address, or None to use the default route's.
        internal: our ``(ip, port)``: the endpoint's socket (a wildcard IP is
            replaced by our address towards the gateway).
        lifetime: seconds of lease to ask for.
        ports: the gateway's ports ``{"natpmp": 5351, "ssdp": 1900}`` (tests
            on loopback change them).
    """

    def __init__(
        self,
        gateway: str | None,
        internal: tuple[str, int],
        lifetime: int,
        *,
        ports: dict[str, int] | None = None,
    ) -> None:
        self._multicast = gateway is None
        self.gateway = default_gateway() if gateway is None else gateway
        ip, self.internal_port = internal
        if ipaddress.ip_address(ip).is_unspecified and self.gateway is not None:
            ip = _local_ip_towards(self.gateway) or ip
        self.internal_ip = ip
        self.lifetime = lifetime
        self._ports = {"natpmp": _natpmp.GATEWAY_PORT, "ssdp": 1900} | (ports or {})
        self.probes: dict[str, GatewayProbe] = {}
        self._order: list[str] = []  # protocols in the order they answered
        self._answered = trio.Event()
        self.lease: Lease | None = None
        self.error: str | None = None
        self._client: MappingClient | None = None
        self._upnp: _upnp.ControlPoint | None = None
        self._scope = trio.CancelScope()
        #: Gateway replies ignored because they did not parse.
        self.malformed = 0

    def status(self) -> PortMappingStatus:
        """A snapshot (`PortMappingStatus`)."""
        lease = self.lease
        return PortMappingStatus(
            gateway=self.gateway,
            probes=tuple(self.probes[p] for p in PROTOCOLS if p in self.probes),
            protocol=None if lease is None else lease.protocol,
            external=None if lease is None else lease.external,
            error=self.error,
        )

    # ------------------------------------------------------------- probing
    async def probe(self) -> PortMappingStatus:
        """Probe the three protocols at once (each bounded by `PROBE_TIMEOUT`)."""
        if self.gateway is None:
            self.error = "no IPv4 default gateway"
            await trio.lowlevel.checkpoint()
            return self.status()
        async with trio.open_nursery() as nursery:
            for protocol in PROTOCOLS:
                nursery.start_soon(self._probe_one, protocol)
        return self.status()

    async def _probe_one(self, protocol: str) -> None:
        probe = {"natpmp": self._probe_natpmp, "pcp": self._probe_pcp, "upnp": self._probe_upnp}
        result = GatewayProbe(protocol, answered=False, detail="no answer")
        with trio.move_on_after(PROBE_TIMEOUT):
            try:
                result = await probe[protocol]()
            except (PortMappingError, OSError, ValueError, trio.TooSlowError) as exc:
                detail = str(exc) or type(exc).__name__
                result = GatewayProbe(protocol, answered=False, detail=detail)
        self.probes[protocol] = result
        if result.answered:
            self._order.append(protocol)
            self._answered.set()

    async def _exchange(
        self, protocol: str, request: bytes, decode: Callable[[bytes], _natpmp.GatewayReply]
    ) -> _natpmp.GatewayReply:
        """Send ``request`` to the gateway (retransmitted) until a reply decodes."""
        assert self.gateway is not None
        target = (self.gateway, self._ports["natpmp"])
        with await _udp_socket(self.internal_ip) as sock:
            for wait in (0.25, 0.5, 1.0):
                await sock.sendto(request, target)
                with trio.move_on_after(wait):
                    while True:  # bounded by the deadline
                        data, addr = await sock.recvfrom(_MAX_DATAGRAM)
                        if addr[:2] != target:
                            continue
                        try:
                            return decode(data)
                        except GatewayReplyError as exc:
                            self.malformed += 1
                            _log.info("ignoring a gateway reply: %s", exc)
        raise PortMappingError("no reply", protocol=protocol)

    async def _probe_natpmp(self) -> GatewayProbe:
        reply = await self._exchange(
            "natpmp", _natpmp.encode_natpmp_address_request(), _natpmp.decode_natpmp
        )
        if reply.result != 0:
            return GatewayProbe("natpmp", True, None, _natpmp.natpmp_result_text(reply.result))
        return GatewayProbe("natpmp", True, reply.external_ip, "answered")

    async def _probe_pcp(self) -> GatewayProbe:
        reply = await self._exchange(
            "pcp", _natpmp.encode_pcp_announce(self.internal_ip), _natpmp.decode_pcp
        )
        if reply.result == 1:  # a NAT-PMP-only gateway: no PCP
            return GatewayProbe("pcp", False, None, "unsupported version (NAT-PMP only)")
        return GatewayProbe("pcp", True, None, _natpmp.pcp_result_text(reply.result))

    async def _probe_upnp(self) -> GatewayProbe:
        self._upnp = await self._discover()
        answer = await self._soap("GetExternalIPAddress", [])
        ip = answer.get("NewExternalIPAddress") or None
        return GatewayProbe("upnp", True, ip, self._upnp.service_type.rsplit(":", 2)[-2])

    # -------------------------------------------------------------- UPnP
    async def _discover(self) -> _upnp.ControlPoint:
        assert self.gateway is not None
        with await _udp_socket(self.internal_ip) as sock:
            targets = [(self.gateway, self._ports["ssdp"])]
            if self._multicast:
                targets.append(_upnp.SSDP_ADDRESS)
                sock.setsockopt(_stdlib_socket.IPPROTO_IP, _stdlib_socket.IP_MULTICAST_TTL, 2)
            for target in targets:
                await sock.sendto(_upnp.encode_msearch(target[0]), target)
            while True:  # bounded by the caller's deadline
                data, addr = await sock.recvfrom(_MAX_DATAGRAM)
                if addr[0] != self.gateway:
                    continue  # only the gateway may tell us where it is
                try:
                    location = _upnp.parse_ssdp_response(data, self.gateway)
                except GatewayReplyError as exc:
                    self.malformed += 1
                    _log.info("ignoring an SSDP answer: %s", exc)
                    continue
                response = await self._http("GET", location, {}, b"")
                return _upnp.parse_description(response.body, location, self.gateway)

    async def _http(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> _upnp.HttpResponse:
        assert self.gateway is not None
        (host, port), request = _upnp.encode_http_request(method, url, self.gateway, headers, body)
        raw = bytearray()
        with trio.fail_after(_HTTP_TIMEOUT):
            local = (
                None if ipaddress.ip_address(self.internal_ip).is_unspecified else self.internal_ip
            )
            stream = await trio.open_tcp_stream(host, port, local_address=local)
            async with stream:
                await stream.send_all(request)
                while len(raw) <= _upnp.MAX_HTTP_SIZE:
                    chunk = await stream.receive_some(16384)
                    if not chunk:
                        break
                    raw += chunk
        return _upnp.parse_http_response(bytes(raw))

    async def _soap(self, action: str, args: list[tuple[str, str]]) -> dict[str, str]:
        assert self._upnp is not None
        headers, body = _upnp.soap_request(self._upnp.service_type, action, args)
        try:
            response = await self._http("POST", self._upnp.control_url, headers, body)
        except trio.TooSlowError:
            raise PortMappingError(f"no UPnP answer to {action}", protocol="upnp") from None
        return _upnp.parse_soap_response(response, action)

    async def _upnp_add(self, port: int, lifetime: int) -> None:
        await self._soap(
            "AddPortMapping",
            [
                ("NewRemoteHost", ""),
                ("NewExternalPort", str(port)),
                ("NewProtocol", "UDP"),
                ("NewInternalPort", str(self.internal_port)),
                ("NewInternalClient", self.internal_ip),
                ("NewEnabled", "1"),
                ("NewPortMappingDescription", f"qp2p_trio {self.internal_port}"),
                ("NewLeaseDuration", str(lifetime)),
            ],
        )

    async def _map_upnp(self) -> Lease:
        """AddPortMapping: our port, else a few others on a conflict (718)."""
        if self._upnp is None:
            with trio.fail_after(PROBE_TIMEOUT):
                self._upnp = await self._discover()
        ip = (await self._soap("GetExternalIPAddress", [])).get("NewExternalIPAddress", "")
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise GatewayReplyError(f"external address {ip[:40]!r}", protocol="upnp") from None
        wanted = self.lease.external[1] if self.lease is not None else self.internal_port
        lifetime = self.lifetime
        for attempt in range(4):
            port = wanted if attempt == 0 else 1024 + int.from_bytes(os.urandom(2)) % 64000
            try:
                await self._upnp_add(port, lifetime)
            except PortMappingError as exc:
                if exc.code == 725 and lifetime:  # OnlyPermanentLeasesSupported
                    lifetime = 0
                    await self._upnp_add(port, 0)
                elif exc.code != 718 or isinstance(exc, GatewayReplyError):
                    raise
                else:
                    continue
            return Lease(
                "upnp", (ip, port), self.internal_port, float(lifetime), trio.current_time()
            )
        raise PortMappingError(
            "every external port tried was taken (718)", protocol="upnp", code=718
        )

    # ------------------------------------------------------------ running
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe, map, keep the mapping; until `aclose` (a task of the endpoint)."""
        task_status.started()
        with self._scope:
            while True:  # one round per RETRY_INTERVAL at most
                await self._round()
                await trio.sleep(RETRY_INTERVAL)

    async def _round(self) -> None:
        self._order.clear()
        self._answered = trio.Event()
        probed = trio.Event()

        async def probe_all() -> None:
            await self.probe()
            probed.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe_all)
            with trio.move_on_after(PROBE_TIMEOUT + 0.5):
                await self._answered.wait()
            with trio.move_on_after(ANSWER_WINDOW):  # the others' answers, if they come
                await probed.wait()
            tried: set[str] = set()
            while True:  # at most one try per protocol
                pending = [p for p in sorted(self._order, key=PROTOCOLS.index) if p not in tried]
                if not pending:
                    break
                tried.add(pending[0])
                await self.keep(pending[0])

    async def keep(self, protocol: str) -> None:
        """Map with ``protocol`` and keep the mapping while it works."""
        try:
            if protocol == "upnp":
                await self._keep_upnp()
            else:
                await self._keep_udp(protocol)
        except (PortMappingError, OSError, ValueError, trio.TooSlowError) as exc:
            self.error = str(exc) or type(exc).__name__
            _log.info("port mapping with %s failed: %s", protocol, exc)
        finally:
            self.lease = None

    async def _keep_udp(self, protocol: str) -> None:
        client = MappingClient(
            protocol,
            self.internal_port,
            self.lifetime,
            client_ip=self.internal_ip,
            nonce=os.urandom(12),
        )
        self._client = client
        client.start(trio.current_time())
        await self._drive(client)
        if client.error is not None:
            raise client.error

    async def _drive(self, client: MappingClient) -> None:
        """Run ``client``'s exchanges with the gateway until it is closed or failed."""
        assert self.gateway is not None
        target = (self.gateway, self._ports["natpmp"])
        with await _udp_socket(self.internal_ip) as sock:
            while True:  # each pass waits for a datagram or the client's next deadline
                for datagram in client.poll(trio.current_time()):
                    await sock.sendto(datagram, target)
                self._publish(client)
                if client.phase in (Phase.CLOSED, Phase.FAILED):
                    return
                with trio.move_on_at(client.deadline):
                    data, addr = await sock.recvfrom(_MAX_DATAGRAM)
                    if addr[:2] == target:
                        try:
                            client.receive(data, trio.current_time())
                        except GatewayReplyError as exc:
                            self.malformed += 1
                            _log.info("ignoring a gateway reply: %s", exc)
                self._publish(client)
                await trio.lowlevel.checkpoint()

    def _publish(self, client: MappingClient) -> None:
        if client.lease != self.lease:
            self.lease = client.lease
            if client.lease is not None:
                self.error = None
                _log.info("port mapped by %s: %s", client.protocol, client.lease.external)

    async def _keep_upnp(self) -> None:
        """Map, then renew at half the lease; between renewals, check every
        `CHECK_INTERVAL` that the gateway still has the mapping (UPnP has no
        epoch: a gateway that restarted just forgot it) and map again if not."""
        while True:  # one round per renewal or lost mapping
            lease = await self._map_upnp()
            if lease != self.lease:
                _log.info("port mapped by upnp: %s", lease.external)
            self.lease, self.error = lease, None
            while trio.current_time() + CHECK_INTERVAL < lease.renew_at:  # bounded by the lease
                await trio.sleep(CHECK_INTERVAL)
                if not await self._upnp_has(lease):
                    _log.info("the upnp gateway lost our mapping %s", lease.external)
                    break
            else:
                await trio.sleep_until(lease.renew_at)

    async def _upnp_has(self, lease: Lease) -> bool:
        """Whether the gateway still forwards ``lease``'s port to us."""
        args = [("NewRemoteHost", ""), ("NewExternalPort", str(lease.external[1]))]
        try:
            entry = await self._soap("GetSpecificPortMappingEntry", [*args, ("NewProtocol", "UDP")])
        except PortMappingError as exc:
            if exc.code == 714 and not isinstance(exc, GatewayReplyError):  # NoSuchEntryInArray
                return False
            raise
        return entry.get("NewInternalClient") in (None, self.internal_ip) and entry.get(
            "NewInternalPort"
        ) in (None, str(self.internal_port))

    async def aclose(self, limit: float) -> None:
        """Stop and delete the mapping, within ``limit`` seconds (shielded).

        A gateway that fails to delete it is logged, not raised: the lease
        runs out on its own.
        """
        self._scope.cancel()
        lease, self.lease = self.lease, None
        with trio.CancelScope(shield=True), trio.move_on_after(limit):
            try:
                await self._delete(lease)
            except (PortMappingError, OSError, ValueError, trio.TooSlowError) as exc:
                _log.info("could not delete the port mapping: %s", exc)

    async def _delete(self, lease: Lease | None) -> None:
        if lease is None:
            await trio.lowlevel.checkpoint()
        elif lease.protocol == "upnp":
            args = [("NewRemoteHost", ""), ("NewExternalPort", str(lease.external[1]))]
            await self._soap("DeletePortMapping", [*args, ("NewProtocol", "UDP")])
        elif self._client is not None:
            client = self._client
            client.close(trio.current_time())
            await self._drive(client)
