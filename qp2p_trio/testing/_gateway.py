# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A fake NAT-PMP / PCP gateway for a NAT of a `MemoryNetwork`.

Owns `FakeGateway`: a task answering NAT-PMP (RFC 6886) and PCP (RFC 6887)
requests on port 5351 of a LAN address behind a kit `Nat`, whose mappings
are real port forwards of that NAT (`Nat.add_port_forward`): once mapped,
anyone can reach the inside socket at the NAT's public address.  A test can
make it refuse (`refusing`), restart it (`restart`: a new epoch, every
mapping forgotten), switch either protocol off, or mangle its replies
(`mangle`) to play a hostile gateway.  It speaks the gateway side of just
what qp2p_trio's client sends: external address, UDP MAP, ANNOUNCE.

UPnP-IGD needs TCP (HTTP, SOAP), which a `MemoryNetwork` does not carry:
tests of the UPnP client run a fake over loopback sockets instead, and
against a real miniupnpd in network namespaces.

May import Trio, the standard library and this package's modules.
"""

from __future__ import annotations

import ipaddress
import socket as _stdlib_socket
import struct
from typing import TYPE_CHECKING, Final, final

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._network import Host, MemoryNetwork, Nat

__all__ = ["FakeGateway"]

PORT: Final = 5351
_NOT_AUTHORIZED: Final = {0: 2, 2: 2}  # NAT-PMP and PCP: "not authorized"


@final
class FakeGateway:
    """NAT-PMP and PCP for a kit NAT, on port 5351 of a LAN host behind it.

    Example::

        nat = network.add_nat("127.0.0.100")
        gateway = FakeGateway(network, nat, "127.0.1.1")
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            config = Config(port_mapping=True, port_mapping_gateway=gateway.address)
            ...

    Args:
        network: The network.
        nat: The NAT whose ports it forwards.
        address: The gateway's LAN IPv4 address (a new host behind *nat*).
        natpmp: Whether it speaks NAT-PMP.
        pcp: Whether it speaks PCP (if not, it answers PCP requests as a
            NAT-PMP-only gateway does: "unsupported version").
        max_lifetime: The longest lease it grants, seconds.

    Attributes:
        refusing: While true, map requests are answered "not authorized".
        mangle: ``None``, or a function through which every reply goes
            (return ``None`` to drop it): a hostile gateway.
        requests: Requests received, by protocol (``"natpmp"``, ``"pcp"``).
    """

    def __init__(
        self,
        network: MemoryNetwork,
        nat: Nat,
        address: str,
        *,
        natpmp: bool = True,
        pcp: bool = True,
        max_lifetime: int = 3600,
    ) -> None:
        self._network = network
        self._nat = nat
        self.host: Host = network.add_host(address, behind=nat)
        self.natpmp = natpmp
        self.pcp = pcp
        self.max_lifetime = max_lifetime
        self.refusing = False
        self.mangle: Callable[[bytes], bytes | None] | None = None
        self.requests = {"natpmp": 0, "pcp": 0}
        self._started = 0.0

    @property
    def address(self) -> str:
        """The gateway's LAN address (what `Config.port_mapping_gateway` names)."""
        assert self.host.v4 is not None
        return self.host.v4

    @property
    def nat(self) -> Nat:
        """The NAT whose ports it forwards."""
        return self._nat

    def restart(self) -> None:
        """Restart: the epoch starts again at 0 and every mapping is forgotten."""
        self._started = trio.current_time()
        self._nat.clear_port_forwards()

    def _epoch(self) -> int:
        return int(trio.current_time() - self._started)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer requests until cancelled (start it with ``nursery.start``)."""
        self._started = trio.current_time()
        with self._network.use_host(self.host):
            sock = trio.socket.socket(_stdlib_socket.AF_INET, _stdlib_socket.SOCK_DGRAM)
        with sock:
            await sock.bind((self.address, PORT))
            task_status.started()
            while True:
                data, addr = await sock.recvfrom(2048)
                reply = self._answer(data, (str(addr[0]), int(addr[1])))
                if reply is not None and self.mangle is not None:
                    reply = self.mangle(reply)
                if reply is not None:
                    await sock.sendto(reply, addr)

    def _answer(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        if len(data) < 2:
            return None
        if data[0] == 0 and self.natpmp:
            self.requests["natpmp"] += 1
            return self._natpmp(data, source[0])
        if data[0] == 2 and self.pcp:
            self.requests["pcp"] += 1
            return self._pcp(data, source[0])
        if data[0] == 2 and self.natpmp:  # NAT-PMP only: "unsupported version"
            return struct.pack(">BBHI", 0, 128 + (data[1] & 0x7F), 1, self._epoch())
        return None

    def _natpmp(self, data: bytes, ip: str) -> bytes | None:
        op = data[1]
        head = struct.Struct(">BBHI")
        if op == 0:
            public = ipaddress.IPv4Address(self._nat.public_ip).packed
            return head.pack(0, 128, 0, self._epoch()) + public
        if op != 1 or len(data) < 12:
            return head.pack(0, 128 + op, 5, self._epoch())  # unsupported opcode
        internal, external, lifetime = struct.unpack_from(">HHI", data, 4)
        if self.refusing:
            return head.pack(0, 129, _NOT_AUTHORIZED[0], self._epoch())
        if lifetime == 0:
            self._nat.remove_port_forward((ip, internal))
            port = 0
        else:
            lifetime = min(lifetime, self.max_lifetime)
            got = self._nat.add_port_forward((ip, internal), external, lifetime)
            if got is None:
                return head.pack(0, 129, 4, self._epoch())  # out of resources
            port = got
        return head.pack(0, 129, 0, self._epoch()) + struct.pack(">HHI", internal, port, lifetime)

    def _pcp(self, data: bytes, ip: str) -> bytes | None:
        if len(data) < 24 or data[1] & 0x80:
            return None
        op = data[1] & 0x7F
        lifetime = struct.unpack_from(">I", data, 4)[0]
        client = ipaddress.IPv6Address(data[8:24]).ipv4_mapped

        def head(result: int, life: int = 0) -> bytes:
            return struct.pack(">BBBBII12x", 2, 0x80 | op, 0, result, life, self._epoch())

        if op == 0:
            return head(0)
        if op != 1 or len(data) < 60:
            return head(4)  # unsupported opcode (or malformed)
        nonce, proto, internal, external, ext_ip = struct.unpack_from(">12sB3xHH16s", data, 24)
        body = struct.pack(">12sB3xHH16s", nonce, proto, internal, 0, bytes(16))
        if client is None or str(client) != ip:
            return head(12) + body  # address mismatch
        if self.refusing:
            return head(_NOT_AUTHORIZED[2]) + body
        if lifetime == 0:
            self._nat.remove_port_forward((ip, internal))
            return head(0) + struct.pack(">12sB3xHH16s", nonce, proto, internal, 0, ext_ip)
        lifetime = min(lifetime, self.max_lifetime)
        got = self._nat.add_port_forward((ip, internal), external, lifetime)
        if got is None:
            return head(8) + body  # no resources
        public = ipaddress.IPv6Address("::ffff:" + self._nat.public_ip).packed
        return head(0, lifetime) + struct.pack(">12sB3xHH16s", nonce, proto, internal, got, public)
