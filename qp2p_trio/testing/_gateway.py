# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A fake port mapping gateway (NAT-PMP, PCP, UPnP-IGD) for a NAT of a `MemoryNetwork`.

Owns `FakeGateway`: tasks answering NAT-PMP (RFC 6886) and PCP (RFC 6887)
requests on UDP port 5351, and UPnP-IGD (SSDP on UDP port 1900, the device
description and SOAP over the network's minimal TCP on port 5555) of a LAN
address behind a kit `Nat`, whose mappings are real port forwards of that
NAT (`Nat.add_port_forward`): once mapped, anyone can reach the inside
socket at the NAT's public address.  A test can make it refuse
(`refusing`), restart it (`restart`: a new epoch, every mapping
forgotten), switch each protocol off, or mangle its UDP replies (`mangle`)
to play a hostile gateway.  It speaks the gateway side of just what
qp2p_trio's client sends: external address, UDP MAP, ANNOUNCE; M-SEARCH,
GetExternalIPAddress, AddPortMapping, DeletePortMapping.

May import Trio, the standard library and this package's modules.
"""

from __future__ import annotations

import ipaddress
import re
import socket as _stdlib_socket
import struct
from typing import TYPE_CHECKING, Final, final

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._network import Host, MemoryNetwork, Nat

__all__ = ["FakeGateway"]

PORT: Final = 5351
SSDP_PORT: Final = 1900
HTTP_PORT: Final = 5555
_SERVICE: Final = "urn:schemas-upnp-org:service:WANIPConnection:1"
_DESCRIPTION: Final = (
    '<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
    "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
    f"<serviceList><service><serviceType>{_SERVICE}</serviceType>"
    "<controlURL>/ctl/IPConn</controlURL></service></serviceList></device></root>"
)
_NOT_AUTHORIZED: Final = {0: 2, 2: 2}  # NAT-PMP and PCP: "not authorized"


@final
class FakeGateway:
    """NAT-PMP, PCP and UPnP-IGD for a kit NAT, on a LAN host behind it.

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
        upnp: Whether it speaks UPnP-IGD.
        max_lifetime: The longest lease it grants, seconds.

    Attributes:
        refusing: While true, map requests are answered "not authorized".
        mangle: ``None``, or a function through which every reply goes
            (return ``None`` to drop it): a hostile gateway.
        requests: Requests received, by protocol (``"natpmp"``, ``"pcp"``,
            ``"upnp"``: SOAP calls).
    """

    def __init__(
        self,
        network: MemoryNetwork,
        nat: Nat,
        address: str,
        *,
        natpmp: bool = True,
        pcp: bool = True,
        upnp: bool = True,
        max_lifetime: int = 3600,
    ) -> None:
        self._network = network
        self._nat = nat
        self.host: Host = network.add_host(address, behind=nat)
        self.natpmp = natpmp
        self.pcp = pcp
        self.upnp = upnp
        self.max_lifetime = max_lifetime
        self.refusing = False
        self.mangle: Callable[[bytes], bytes | None] | None = None
        self.requests = {"natpmp": 0, "pcp": 0, "upnp": 0}
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
        async with trio.open_nursery() as nursery:
            await nursery.start(self._serve_udp, PORT, self._answer)
            if self.upnp:
                await nursery.start(self._serve_udp, SSDP_PORT, self._ssdp)
                await nursery.start(self._serve_http)
            task_status.started()

    def _socket(self, kind: int) -> trio.socket.SocketType:
        with self._network.use_host(self.host):
            return trio.socket.socket(_stdlib_socket.AF_INET, kind)

    async def _serve_udp(
        self,
        port: int,
        answer: Callable[[bytes, tuple[str, int]], bytes | None],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with self._socket(_stdlib_socket.SOCK_DGRAM) as sock:
            await sock.bind((self.address, port))
            task_status.started()
            while True:
                data, addr = await sock.recvfrom(2048)
                reply = answer(data, (str(addr[0]), int(addr[1])))
                if reply is not None and self.mangle is not None:
                    reply = self.mangle(reply)
                if reply is not None:
                    await sock.sendto(reply, addr)

    # --------------------------------------------------------------- UPnP
    def _ssdp(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        if not data.startswith(b"M-SEARCH"):
            return None
        location = f"http://{self.address}:{HTTP_PORT}/rootDesc.xml"
        return f"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nLOCATION: {location}\r\n\r\n".encode()

    async def _serve_http(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with self._socket(_stdlib_socket.SOCK_STREAM) as sock:
            await sock.bind((self.address, HTTP_PORT))
            sock.listen(16)
            task_status.started()
            async with trio.open_nursery() as nursery:
                while True:
                    conn, _ = await sock.accept()
                    nursery.start_soon(self._http, trio.SocketStream(conn))

    async def _http(self, stream: trio.SocketStream) -> None:
        async with stream:
            raw = b""
            with trio.move_on_after(5):
                while len(raw) < 65536:  # bounded
                    head, sep, body = raw.partition(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length: *(\d+)", head)
                    if sep and len(body) >= (int(length.group(1)) if length else 0):
                        break
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    raw += chunk
            client = stream.socket.getpeername()[0]
            status, answer = self._soap(raw, str(client))
            top = f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\n\r\n"
            await stream.send_all(top.encode() + answer)

    def _soap(self, raw: bytes, client: str) -> tuple[int, bytes]:
        if raw.startswith(b"GET"):
            return 200, _DESCRIPTION.encode()
        found = re.search(rb'SOAPAction: *"[^#"]*#(\w+)"', raw)
        if found is None:
            return 400, b""
        self.requests["upnp"] += 1
        action = found.group(1).decode()
        args = {k.decode(): v.decode() for k, v in re.findall(rb"<(New\w+)>([^<]*)</New\w+>", raw)}
        if action == "GetExternalIPAddress":
            return 200, _soap_answer(action, {"NewExternalIPAddress": self._nat.public_ip})
        try:
            port = int(args.get("NewExternalPort", ""))
        except ValueError:
            return 500, _soap_fault(402)  # invalid args
        internal = next((i for i, p in self._nat.port_forwards.items() if p == port), None)
        if action in ("DeletePortMapping", "GetSpecificPortMappingEntry") and internal is None:
            return 500, _soap_fault(714)  # NoSuchEntryInArray
        if action == "GetSpecificPortMappingEntry" and internal is not None:
            entry = {"NewInternalPort": str(internal[1]), "NewInternalClient": internal[0]}
            return 200, _soap_answer(action, entry)
        if action == "DeletePortMapping" and internal is not None:
            self._nat.remove_port_forward(internal)
            return 200, _soap_answer(action, {})
        if action != "AddPortMapping":
            return 500, _soap_fault(401)  # invalid action
        if self.refusing or args.get("NewInternalClient") != client:
            return 500, _soap_fault(606)  # action not authorized
        internal = (client, int(args.get("NewInternalPort", "0") or 0))
        held = self._nat.port_forwards
        if held.get(internal, port) != port or any(
            p == port and i != internal for i, p in held.items()
        ):
            return 500, _soap_fault(718)  # conflict
        lease = int(args.get("NewLeaseDuration", "0") or 0)
        got = self._nat.add_port_forward(internal, port, lease or self.max_lifetime)
        if got != port:
            if got is not None:
                self._nat.remove_port_forward(internal)
            return 500, _soap_fault(718)
        return 200, _soap_answer(action, {})

    # -------------------------------------------------------- NAT-PMP, PCP
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


def _soap_answer(action: str, args: dict[str, str]) -> bytes:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in args.items())
    return (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<s:Body><u:{action}Response xmlns:u="{_SERVICE}">{inner}</u:{action}Response>'
        "</s:Body></s:Envelope>"
    ).encode()


def _soap_fault(code: int) -> bytes:
    return (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        "<s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
        '<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>error {code}</errorDescription>"
        "</UPnPError></detail></s:Fault></s:Body></s:Envelope>"
    ).encode()
