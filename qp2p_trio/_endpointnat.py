# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`EndpointNat`: what an `Endpoint` knows about the NAT in front of it.

External addresses (observed, mapped, local, with their reachability
verdicts), the NAT's mapping behaviour and port mapping: their methods live
here and `Endpoint` inherits them, so that the endpoint module stays the
lifecycle, connections and messages.  They read the endpoint's driver
(observations), its port mapper and its reachability service.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import trio

from ._observed import ExternalAddress
from ._portmap_io import PortMapper, PortMappingStatus

if TYPE_CHECKING:
    from ._config import Config
    from ._driver import Driver
    from ._observed import NatMapping
    from ._quic import Address
    from ._reach import ReachService

__all__ = ["EndpointNat", "new_port_mapper"]


def new_port_mapper(config: Config, local: Address) -> PortMapper:
    """A port mapper for an endpoint bound to ``local`` (IPv4 only: else the wildcard)."""
    ip = str(local[0])
    if ipaddress.ip_address(ip).version != 4:
        ip = "0.0.0.0"
    return PortMapper(
        config.port_mapping_gateway, (ip, int(local[1])), config.port_mapping_lifetime
    )


class EndpointNat:
    """External addresses, NAT mapping and port mapping of an `Endpoint` (which inherits them)."""

    # Set by `Endpoint.__init__` (and the port mapper by `open_endpoint`).
    _config: Config
    _driver: Driver
    _local_address: Address
    _reach: ReachService
    _portmapper: PortMapper | None

    def external_addresses(self) -> list[ExternalAddress]:
        """The addresses this endpoint may be reachable at, and where each came from.

        The bound address first (``source="local"``) unless it is a wildcard,
        then the addresses peers report seeing it at (``"observed"``: each
        peer tells, on its connection, the address its packets came from),
        most observers first.  Each peer counts for its latest report only;
        observers are counted by IP address, and an address is ``confirmed``
        once `Config.observed_address_quorum` of them agree.  At most 64
        peers' reports are kept (the least recent dropped), also after their
        connections closed, for `Config.observed_address_max_age` seconds.

        With `Config.port_mapping`, the address the gateway forwards to this
        endpoint comes right after the bound one (``source="mapped"``,
        ``confirmed`` while the gateway's lease lasts) for as long as the
        mapping is kept.  Each carries the latest verdict of
        `check_reachability` on it (``reachability``); a mapped address is
        offered to peers for hole punching only once it was found reachable
        (hole punching has it checked, with our direct peers, when it needs it).
        """
        book = self._driver.observations
        book.expire(trio.current_time())
        found = book.external_addresses(self._local_address, self._config.observed_address_quorum)
        lease = None if self._portmapper is None else self._portmapper.lease
        if lease is None:
            return self._reach.annotate(found)
        seen = [a for a in found if a.address == lease.external]
        mapped = ExternalAddress(lease.external, "mapped", seen[0].observers if seen else 0, True)
        rest = [a for a in found if a.address != lease.external]
        local = [a for a in rest if a.source == "local"]
        return self._reach.annotate([*local, mapped, *(a for a in rest if a.source != "local")])

    def port_mapping(self) -> PortMappingStatus:
        """The port mapping of this endpoint: gateway, protocols that answered, mapped address.

        Empty (no gateway, no probes) unless `Config.port_mapping` is on;
        see `probe_port_mapping` to probe without mapping.
        """
        if self._portmapper is None:
            return PortMappingStatus(gateway=self._config.port_mapping_gateway)
        return self._portmapper.status()

    async def probe_port_mapping(self) -> PortMappingStatus:
        """Ask the gateway which port mapping protocols it speaks, mapping nothing.

        Sends NAT-PMP's external address request, PCP's ANNOUNCE and UPnP's
        SSDP search and GetExternalIPAddress to the gateway
        (`Config.port_mapping_gateway`, else the default route's) at once;
        takes at most about 2 s.  Gateways that do not answer, or answer
        garbage, are reported as such: nothing is raised for them.

        Cancellation: safe; nothing is left behind.
        """
        mapper = new_port_mapper(self._config, self._local_address)
        return await mapper.probe()

    def nat_mapping(self) -> NatMapping:
        """How a NAT in front of this endpoint maps its socket, judged from observations.

        Needs reports from two or more peers at distinct addresses (else
        `NatMapping.UNKNOWN`): all seeing the bound address is
        `NatMapping.NONE`; all seeing one other address is
        `NatMapping.ENDPOINT_INDEPENDENT` (hole-punchable; also what a
        wildcard-bound endpoint without a NAT gets, as its bound address is
        unknown); different addresses is `NatMapping.ADDRESS_DEPENDENT`.  It
        says nothing about the NAT's filtering, nor whether anyone can reach
        the address unasked.
        """
        book = self._driver.observations
        book.expire(trio.current_time())
        return book.nat_mapping(self._local_address)
