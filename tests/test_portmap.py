# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Port mapping, sans-IO: NAT-PMP / PCP codecs, the client state machine, UPnP messages.

Then the UPnP client against a fake IGD on loopback sockets (SSDP over UDP,
HTTP over TCP, ephemeral ports: real sockets, loopback only).  Every parser
of gateway replies is fuzzed a little: garbage gives `GatewayReplyError`
(or, for a SOAP fault, `PortMappingError`), nothing else.
"""

from __future__ import annotations

import random
import struct

import pytest
import trio

from qp2p_trio import GatewayReplyError, PortMappingError, _natpmp as pmp, _upnp as upnp
from qp2p_trio._portmap import (
    CHECK_INTERVAL,
    RETRY_DELAYS,
    Lease,
    MappingClient,
    Phase,
    gateway_restarted,
)
from qp2p_trio._portmap_io import PortMapper, parse_proc_route

NONCE = bytes(range(12))


# ------------------------------------------------------------------ codecs
def natpmp_map_reply(
    internal: int, external: int, lifetime: int, epoch: int, result: int = 0
) -> bytes:
    return struct.pack(">BBHIHHI", 0, 129, result, epoch, internal, external, lifetime)


def natpmp_address_reply(ip: str, epoch: int) -> bytes:
    return struct.pack(">BBHI4B", 0, 128, 0, epoch, *map(int, ip.split(".")))


def pcp_map_reply(
    internal: int, external: int, lifetime: int, epoch: int, result: int = 0, nonce: bytes = NONCE
) -> bytes:
    head = struct.pack(">BBBBII12x", 2, 0x81, 0, result, lifetime, epoch)
    ip = bytes(10) + b"\xff\xff" + bytes([203, 0, 113, 5])
    return head + struct.pack(">12sB3xHH16s", nonce, 17, internal, external, ip)


def test_natpmp_requests_are_as_rfc_6886_lays_them_out() -> None:
    assert pmp.encode_natpmp_address_request() == b"\x00\x00"
    assert pmp.encode_natpmp_map_request(4433, 4433, 7200) == bytes.fromhex(
        "0001 0000 1151 1151 00001c20".replace(" ", "")
    )
    with pytest.raises(ValueError, match="port"):
        pmp.encode_natpmp_map_request(0, 1, 1)


def test_natpmp_replies_decode() -> None:
    reply = pmp.decode_natpmp(natpmp_address_reply("203.0.113.5", 77))
    assert (reply.external_ip, reply.epoch, reply.result) == ("203.0.113.5", 77, 0)
    reply = pmp.decode_natpmp(natpmp_map_reply(4433, 5000, 3600, 78))
    assert (reply.internal_port, reply.external_port, reply.lifetime) == (4433, 5000, 3600)
    refused = pmp.decode_natpmp(struct.pack(">BBHI", 0, 129, 2, 5))
    assert refused.result == 2
    assert pmp.natpmp_result_text(2) == "not authorized or refused"


def test_pcp_requests_and_replies() -> None:
    request = pmp.encode_pcp_map_request("192.168.1.10", NONCE, 4433, 7200)
    assert len(request) == 60
    assert request[:4] == b"\x02\x01\x00\x00"
    assert request[8:24] == bytes(10) + b"\xff\xff" + bytes([192, 168, 1, 10])
    assert request[24:36] == NONCE
    assert len(pmp.encode_pcp_announce("192.168.1.10")) == 24
    reply = pmp.decode_pcp(pcp_map_reply(4433, 4433, 600, 9), NONCE)
    assert (reply.external_ip, reply.external_port, reply.lifetime) == ("203.0.113.5", 4433, 600)
    with pytest.raises(GatewayReplyError, match="another nonce"):
        pmp.decode_pcp(pcp_map_reply(4433, 4433, 600, 9, nonce=bytes(12)), NONCE)
    # A NAT-PMP-only gateway answers PCP with "unsupported version".
    assert pmp.decode_pcp(struct.pack(">BBHI", 0, 129, 1, 3)).result == 1
    with pytest.raises(ValueError, match="nonce"):
        pmp.encode_pcp_map_request("192.168.1.10", b"short", 4433, 1)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x01\x80" + bytes(10), b"\x00\x01" + bytes(10), b"\x00\x85" + bytes(6),
     b"\x00\x80\x00\x00" + bytes(4), b"\x00\x81" + bytes(10)],
)  # fmt: skip
def test_malformed_natpmp_replies(data: bytes) -> None:
    with pytest.raises(GatewayReplyError, match="malformed NAT-PMP reply"):
        pmp.decode_natpmp(data)


@pytest.mark.parametrize(
    "data",
    [b"", bytes(23), b"\x02\x81" + bytes(23), b"\x03\x81" + bytes(22), b"\x02\x01" + bytes(22),
     b"\x02\x85" + bytes(22), b"\x02\x81" + bytes(58), b"\x02" + bytes(1200)],
)  # fmt: skip
def test_malformed_pcp_replies(data: bytes) -> None:
    with pytest.raises(GatewayReplyError, match="malformed PCP reply"):
        pmp.decode_pcp(data, NONCE)


def test_fuzzed_replies_raise_only_gateway_reply_errors() -> None:
    rng = random.Random(13)
    seeds = [
        natpmp_address_reply("203.0.113.5", 1),
        natpmp_map_reply(4433, 4433, 60, 1),
        pcp_map_reply(4433, 4433, 60, 1),
        struct.pack(">BBBBII12x", 2, 0x80, 0, 0, 0, 1),
    ]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            if op == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1:
                data = data[: rng.randrange(len(data) + 1)]
            else:
                data += bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
        for decode in (pmp.decode_natpmp, lambda d: pmp.decode_pcp(d, NONCE)):
            try:
                decode(bytes(data))
            except GatewayReplyError:
                pass
        client = MappingClient("pcp", 4433, 60, client_ip="192.168.1.10", nonce=NONCE)
        client.start(0.0)
        client.poll(0.0)
        try:
            client.receive(bytes(data), 0.1)
        except GatewayReplyError:
            pass
        assert client.phase in (Phase.REQUESTING, Phase.MAPPED, Phase.FAILED)


# ---------------------------------------------------------- state machine
def test_epoch_rule_of_rfc_6887() -> None:
    assert not gateway_restarted(None, 10.0, 0)
    assert not gateway_restarted((0.0, 100), 60.0, 160)
    assert not gateway_restarted((0.0, 100), 60.0, 158)  # within the tolerance
    assert gateway_restarted((0.0, 100), 60.0, 5)  # went back: restarted
    assert gateway_restarted((0.0, 100), 60.0, 100)  # stood still while we waited a minute
    assert gateway_restarted((0.0, 100), 60.0, 400)  # ran far ahead


def test_natpmp_client_requests_retries_and_gives_up() -> None:
    client = MappingClient("natpmp", 4433, 7200)
    client.start(0.0)
    sent_at = []
    now = 0.0
    for _ in range(10):  # bounded
        if client.poll(now):
            sent_at.append(now)
        if client.phase is Phase.FAILED:
            break
        now = client.deadline
    assert sent_at == [0.0, 0.25, 0.75, 1.75]
    assert now == sum(RETRY_DELAYS)
    assert client.phase is Phase.FAILED
    assert isinstance(client.error, PortMappingError)
    assert client.error.protocol == "natpmp"


def test_natpmp_client_maps_renews_checks_and_deletes() -> None:
    client = MappingClient("natpmp", 4433, 7200)
    client.start(0.0)
    assert sorted(client.poll(0.0)) == sorted(
        [pmp.encode_natpmp_address_request(), pmp.encode_natpmp_map_request(4433, 4433, 7200)]
    )
    client.receive(natpmp_map_reply(4433, 4433, 600, 1000), 0.01)
    assert client.lease is None  # the address is still missing
    client.receive(natpmp_address_reply("203.0.113.5", 1000), 0.02)
    assert client.lease == Lease("natpmp", ("203.0.113.5", 4433), 4433, 600.0, 0.02)
    assert client.phase is Phase.MAPPED
    assert client.deadline == 0.02 + CHECK_INTERVAL  # an epoch check before the renewal
    # The check: the address request again, the epoch advanced as our clock.
    assert client.poll(client.deadline) == [pmp.encode_natpmp_address_request()]
    client.receive(natpmp_address_reply("203.0.113.5", 1060), 60.05)
    assert client.phase is Phase.MAPPED
    assert client.restarts == 0
    # Renewal at half the lease: both requests, the external port suggested.
    now = 300.02
    for _ in range(5):  # checks at 120, 180, 240 (answered), then the renewal
        sent = client.poll(now if client.deadline >= now else client.deadline)
        if len(sent) == 2:
            break
        epoch = 1000 + int(client.deadline)
        client.receive(natpmp_address_reply("203.0.113.5", epoch), client.deadline)
    assert client.phase is Phase.RENEWING
    client.receive(natpmp_address_reply("203.0.113.5", 1300), now + 0.01)
    client.receive(natpmp_map_reply(4433, 4433, 600, 1300), now + 0.01)
    assert client.phase is Phase.MAPPED
    assert client.lease is not None
    assert client.lease.granted == now + 0.01
    client.close(now + 1)
    assert client.poll(now + 1) == [pmp.encode_natpmp_map_request(4433, 0, 0)]
    client.receive(natpmp_map_reply(4433, 0, 0, 1301), now + 1.01)
    assert client.phase is Phase.CLOSED
    assert client.lease is None


def test_restart_detected_by_the_check_maps_again() -> None:
    client = MappingClient("pcp", 4433, 7200, client_ip="192.168.1.10", nonce=NONCE)
    client.start(0.0)
    client.poll(0.0)
    client.receive(pcp_map_reply(4433, 4433, 600, 5000), 0.01)
    assert client.phase is Phase.MAPPED
    check = client.poll(client.deadline)
    assert check == [pmp.encode_pcp_announce("192.168.1.10")]
    announce = struct.pack(">BBBBII12x", 2, 0x80, 0, 0, 0, 3)  # epoch 3: restarted
    client.receive(announce, CHECK_INTERVAL + 0.02)
    assert client.restarts == 1
    assert client.phase is Phase.RENEWING
    assert len(client.poll(CHECK_INTERVAL + 0.02)[0]) == 60  # the MAP again, at once


def test_refusal_fails_with_the_code_and_lost_renewal_maps_from_scratch() -> None:
    client = MappingClient("pcp", 4433, 7200, client_ip="192.168.1.10", nonce=NONCE)
    client.start(0.0)
    client.poll(0.0)
    client.receive(pcp_map_reply(4433, 0, 0, 1, result=2), 0.01)
    assert client.phase is Phase.FAILED
    assert client.error is not None
    assert client.error.code == 2
    assert "not authorized" in str(client.error)

    client = MappingClient("pcp", 4433, 20, client_ip="192.168.1.10", nonce=NONCE)
    client.start(0.0)
    client.poll(0.0)
    client.receive(pcp_map_reply(4433, 4433, 20, 1), 0.0)
    now = 10.0  # renewal due; the gateway is silent from now on
    for _ in range(50):  # bounded
        client.poll(now)
        if client.phase is Phase.REQUESTING:
            break
        now = client.deadline
    assert client.lease is None
    assert now == 20.0  # the lease ran out: ask again from scratch


def test_tiny_lifetimes_are_clamped() -> None:
    lease = Lease("pcp", ("203.0.113.5", 1), 1, 1.0, 100.0)
    assert lease.renew_at == 104.0
    assert Lease("upnp", ("203.0.113.5", 1), 1, 0.0, 100.0).expires_at == float("inf")


def test_proc_net_route() -> None:
    text = (
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n"
    )
    assert parse_proc_route(text) == "192.168.1.1"
    assert parse_proc_route(text.splitlines()[0]) is None
    assert parse_proc_route("h\neth0 00000000 zz 0003") is None


# ------------------------------------------------------------------- UPnP
DESCRIPTION = b"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceList><device><deviceList><device>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<controlURL>/ctl/IPConn</controlURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>"""


def soap_answer(action: str, args: dict[str, str]) -> bytes:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in args.items())
    return (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<s:Body><u:{action}Response xmlns:u="x">{inner}</u:{action}Response></s:Body>'
        "</s:Envelope>"
    ).encode()


def soap_fault(code: int) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        "<detail><UPnPError><errorCode>"
        f"{code}</errorCode><errorDescription>Conflict</errorDescription></UPnPError></detail>"
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()


def test_upnp_messages() -> None:
    assert upnp.encode_msearch().startswith(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900")
    answer = b"HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1:5555/rootDesc.xml\r\n\r\n"
    assert upnp.parse_ssdp_response(answer, "192.168.1.1") == "http://192.168.1.1:5555/rootDesc.xml"
    point = upnp.parse_description(
        DESCRIPTION, "http://192.168.1.1:5555/rootDesc.xml", "192.168.1.1"
    )
    assert point == upnp.ControlPoint(
        "urn:schemas-upnp-org:service:WANIPConnection:1", "http://192.168.1.1:5555/ctl/IPConn"
    )
    headers, body = upnp.soap_request(point.service_type, "AddPortMapping", [("A", "<&>")])
    assert headers["SOAPAction"] == f'"{point.service_type}#AddPortMapping"'
    assert b"<A>&lt;&amp;&gt;</A>" in body
    (host, port), request = upnp.encode_http_request(
        "POST", point.control_url, "192.168.1.1", headers, body
    )
    assert (host, port) == ("192.168.1.1", 5555)
    assert request.startswith(b"POST /ctl/IPConn HTTP/1.1\r\nHost: 192.168.1.1:5555\r\n")
    ok = upnp.HttpResponse(
        200, {}, soap_answer("GetExternalIPAddress", {"NewExternalIPAddress": "203.0.113.5"})
    )
    assert upnp.parse_soap_response(ok, "GetExternalIPAddress") == {
        "NewExternalIPAddress": "203.0.113.5"
    }
    with pytest.raises(PortMappingError, match="error 718") as info:
        upnp.parse_soap_response(upnp.HttpResponse(500, {}, soap_fault(718)), "AddPortMapping")
    assert info.value.code == 718
    assert not isinstance(info.value, GatewayReplyError)


def test_http_responses() -> None:
    body = upnp.parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").body
    assert body == b"abc"
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n"
    )
    assert upnp.parse_http_response(chunked).body == b"abcde"
    assert upnp.parse_http_response(b"HTTP/1.0 404 Nope\r\n\r\n").status == 404


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: upnp.parse_ssdp_response(b"HTTP/1.1 200 OK\r\n\r\n", "10.0.0.1"),
            "without LOCATION",
        ),
        (lambda: upnp.parse_ssdp_response(b"NOTIFY * HTTP/1.1\r\n\r\n", "10.0.0.1"), "status line"),
        (
            lambda: upnp.parse_ssdp_response(
                b"HTTP/1.1 200 OK\r\nLOCATION: http://10.6.6.6/x\r\n\r\n", "10.0.0.1"
            ),
            "points away from the gateway",
        ),
        (
            lambda: upnp.parse_ssdp_response(
                b"HTTP/1.1 200 OK\r\nLOCATION: file:///etc/passwd\r\n\r\n", "10.0.0.1"
            ),
            "http://",
        ),
        (lambda: upnp.parse_ssdp_response(b"\xff" * 10, "10.0.0.1"), "not ASCII"),
        (lambda: upnp.parse_http_response(b"HTTP/1.1 200 OK\r\n"), "end of its headers"),
        (lambda: upnp.parse_http_response(b"HTTP/1.1 \xb2 OK\r\n\r\n"), "status line"),
        (
            lambda: upnp.parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n"),
            "Content-Length",
        ),
        (
            lambda: upnp.parse_ssdp_response(
                "HTTP/1.1 200 OK\r\nLOCATION: http://10.0.0.1/\u20ac\r\n\r\n".encode(), "10.0.0.1"
            ),
            "not ASCII",
        ),
        (lambda: upnp.parse_http_response(b"junk\r\n\r\n"), "status line"),
        (
            lambda: upnp.parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"),
            "Content-Length",
        ),
        (
            lambda: upnp.parse_http_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            ),
            "chunk size",
        ),
        (lambda: upnp.parse_http_response(b"x" * (upnp.MAX_HTTP_SIZE + 1)), "over"),
        (
            lambda: upnp.parse_description(b"<root/>", "http://10.0.0.1/", "10.0.0.1"),
            "without a WAN",
        ),
        (lambda: upnp.parse_description(b"<root", "http://10.0.0.1/", "10.0.0.1"), "XML"),
        (
            lambda: upnp.parse_description(
                b'<!DOCTYPE r [<!ENTITY a "aaaa">]><r>&a;</r>', "http://10.0.0.1/", "10.0.0.1"
            ),
            "DOCTYPE",
        ),
        (
            lambda: upnp.parse_description(
                DESCRIPTION.replace(b"/ctl/IPConn", b"http://10.9.9.9/ctl"),
                "http://10.0.0.1/",
                "10.0.0.1",
            ),
            "points away",
        ),
        (lambda: upnp.parse_soap_response(upnp.HttpResponse(200, {}, b"<a/>"), "X"), "Envelope"),
    ],
)
def test_malformed_upnp_replies(call: object, match: str) -> None:
    with pytest.raises(GatewayReplyError, match=match):
        call()  # type: ignore[operator]


def test_fuzzed_upnp_replies_raise_only_gateway_errors() -> None:
    rng = random.Random(17)
    seeds = [
        b"HTTP/1.1 200 OK\r\nLOCATION: http://10.0.0.1:5555/rootDesc.xml\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        DESCRIPTION,
        soap_fault(718),
        soap_answer("AddPortMapping", {}),
    ]
    for _ in range(2000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            if rng.random() < 0.5 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                data = data[: rng.randrange(len(data) + 1)]
        raw = bytes(data)
        calls = [
            (upnp.parse_ssdp_response, (raw, "10.0.0.1")),
            (upnp.parse_http_response, (raw,)),
            (upnp.parse_description, (raw, "http://10.0.0.1:5555/", "10.0.0.1")),
            (upnp.parse_soap_response, (upnp.HttpResponse(200, {}, raw), "AddPortMapping")),
        ]
        for call, args in calls:
            try:
                call(*args)  # type: ignore[operator]
            except PortMappingError:  # GatewayReplyError is one
                pass


# --------------------------------------------------- UPnP over loopback
class FakeIgd:
    """SSDP on a UDP socket and HTTP on a TCP listener, both on 127.0.0.1."""

    def __init__(self) -> None:
        self.mappings: dict[int, tuple[str, int, int]] = {}  # external -> client, port, lease
        self.taken = {5000}  # ports someone else holds: AddPortMapping -> 718
        self.hostile_location: bytes | None = None
        self.permanent_only = False
        self.refuse_delete = False
        self.calls: list[str] = []

    async def serve_ssdp(self, sock: trio.socket.SocketType, http_port: int) -> None:
        with sock:
            while True:
                data, addr = await sock.recvfrom(2048)
                if data.startswith(b"M-SEARCH"):
                    url = f"http://127.0.0.1:{http_port}/desc.xml".encode()
                    location = self.hostile_location or url
                    answer = b"HTTP/1.1 200 OK\r\nLOCATION: " + location + b"\r\n\r\n"
                    await sock.sendto(answer, addr)

    async def handle(self, stream: trio.SocketStream) -> None:
        raw = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in raw or len(raw) < raw.index(b"\r\n\r\n") + 4 + _length(raw):
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                raw += chunk
        status, body = self.answer(raw)
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        await stream.send_all(head.encode() + body)
        await stream.aclose()

    def answer(self, raw: bytes) -> tuple[int, bytes]:
        if raw.startswith(b"GET"):
            return 200, DESCRIPTION
        action = raw.split(b"#", 1)[1].split(b'"', 1)[0].decode()
        self.calls.append(action)
        args = dict(re_args(raw))
        if action == "GetExternalIPAddress":
            return 200, soap_answer(action, {"NewExternalIPAddress": "203.0.113.5"})
        port = int(args["NewExternalPort"])
        if action == "DeletePortMapping":
            if self.refuse_delete:
                return 500, soap_fault(714)  # NoSuchEntryInArray
            self.mappings.pop(port, None)
            return 200, soap_answer(action, {})
        if port in self.taken:
            return 500, soap_fault(718)
        if self.permanent_only and args["NewLeaseDuration"] != "0":
            return 500, soap_fault(725)
        self.mappings[port] = (
            args["NewInternalClient"],
            int(args["NewInternalPort"]),
            int(args["NewLeaseDuration"]),
        )
        return 200, soap_answer(action, {})


def _length(raw: bytes) -> int:
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def re_args(raw: bytes) -> list[tuple[str, str]]:
    import re

    body = raw.split(b"\r\n\r\n", 1)[1].decode()
    return re.findall(r"<(New\w+)>([^<]*)</New\w+>", body)


async def run_igd(nursery: trio.Nursery, igd: FakeIgd) -> dict[str, int]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    http_port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(trio.serve_listeners, igd.handle, listeners)
    ssdp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await ssdp.bind(("127.0.0.1", 0))
    nursery.start_soon(igd.serve_ssdp, ssdp, http_port)
    # Nobody answers NAT-PMP / PCP on this port: a closed loopback port.
    return {"ssdp": ssdp.getsockname()[1], "natpmp": 9}


async def test_upnp_client_probes_maps_around_conflicts_and_deletes() -> None:
    igd = FakeIgd()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            ports = await run_igd(nursery, igd)
            mapper = PortMapper("127.0.0.1", ("127.0.0.1", 4433), 600, ports=ports)
            status = await mapper.probe()
            assert status.answered == ("upnp",)
            assert status.probes[2].external_ip == "203.0.113.5"
            igd.taken.add(4433)  # our own port is taken: another is tried
            nursery.start_soon(mapper.keep, "upnp")
            while mapper.lease is None:  # noqa: ASYNC110 - loopback, a few ms
                await trio.sleep(0.01)
            port = mapper.lease.external[1]
            assert port != 4433
            assert igd.mappings == {port: ("127.0.0.1", 4433, 600)}
            await mapper.aclose(5)
            assert igd.mappings == {}
            assert igd.calls[-1] == "DeletePortMapping"
            nursery.cancel_scope.cancel()


async def test_upnp_permanent_only_gateway() -> None:
    igd = FakeIgd()
    igd.permanent_only = True
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            ports = await run_igd(nursery, igd)
            mapper = PortMapper("127.0.0.1", ("127.0.0.1", 4434), 600, ports=ports)
            await mapper.probe()
            nursery.start_soon(mapper.keep, "upnp")
            while mapper.lease is None:  # noqa: ASYNC110 - loopback, a few ms
                await trio.sleep(0.01)
            assert mapper.lease.lifetime == 0
            assert igd.mappings == {4434: ("127.0.0.1", 4434, 0)}
            igd.refuse_delete = True
            await mapper.aclose(5)  # logged, not raised: closing goes on
            assert mapper.lease is None
            nursery.cancel_scope.cancel()


async def test_upnp_answer_pointing_elsewhere_is_ignored() -> None:
    igd = FakeIgd()
    igd.hostile_location = b"http://10.6.6.6:80/desc.xml"
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            ports = await run_igd(nursery, igd)
            mapper = PortMapper("127.0.0.1", ("127.0.0.1", 4435), 600, ports=ports)
            status = await mapper.probe()
            assert status.answered == ()
            assert mapper.malformed >= 1
            assert igd.calls == []  # nothing fetched, nothing posted
            nursery.cancel_scope.cancel()


# ------------------------------------------------------------------- CLI
def test_netcheck_port_mapping_probe_on_loopback(tmp_path: object) -> None:
    """``netcheck --port-mapping --gateway 127.0.0.1``: the probe's report (nobody answers)."""
    import json
    import subprocess
    import sys

    from qp2p_trio import Identity

    stranger = Identity.generate().node_id
    argv = [sys.executable, "-m", "qp2p_trio", "netcheck", f"{stranger}@127.0.0.1:9"]
    argv += ["--timeout", "0.5", "--port-mapping", "--gateway", "127.0.0.1"]
    result = subprocess.run(
        [*argv, "--json"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 6, result.stderr  # the peer is unreachable
    mapping = json.loads(result.stdout)["port_mapping"]
    assert mapping["gateway"] == "127.0.0.1"
    assert mapping["answered"] == []
    assert [p["protocol"] for p in mapping["probes"]] == ["pcp", "natpmp", "upnp"]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout
    assert "gateway:        127.0.0.1" in text
    assert "port mapping:   upnp: no" in text


@pytest.mark.parametrize("command", ["listen", "netcheck"])
def test_cli_gateway_must_be_ipv4(command: str) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "qp2p_trio", command, "--port-mapping", "--gateway", "junk"]
    if command == "netcheck":
        argv.append(f"{'a' * 52}@127.0.0.1:9")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr  # a usage error
    assert "--gateway: must be an IPv4 address: 'junk'" in result.stderr


async def test_keep_without_a_gateway_gives_up_in_bounded_time() -> None:
    mapper = PortMapper("127.0.0.1", ("127.0.0.1", 4436), 600, ports={"ssdp": 9, "natpmp": 9})
    start = trio.current_time()
    with trio.fail_after(10):
        await mapper.keep("upnp")  # nobody answers the search
        await mapper.keep("pcp")  # nobody answers the MAP
    assert trio.current_time() - start < 2.0 + sum(RETRY_DELAYS) + 1.0
    assert mapper.lease is None
    assert mapper.error == "no pcp reply from the gateway after 4 tries"


def test_a_changed_external_address_is_mapped_again() -> None:
    client = MappingClient("natpmp", 4433, 7200)
    client.start(0.0)
    client.poll(0.0)
    client.receive(natpmp_address_reply("203.0.113.5", 100), 0.01)
    client.receive(natpmp_map_reply(4433, 4433, 7200, 100), 0.01)
    assert client.phase is Phase.MAPPED
    assert client.poll(client.deadline) == [pmp.encode_natpmp_address_request()]
    client.receive(natpmp_address_reply("198.51.100.9", 160), CHECK_INTERVAL + 0.01)
    assert client.phase is Phase.RENEWING  # same epoch run, new address: ask again
    assert client.restarts == 0
    sent = client.poll(CHECK_INTERVAL + 0.01)
    assert pmp.encode_natpmp_address_request() in sent
    client.receive(natpmp_address_reply("198.51.100.9", 160), CHECK_INTERVAL + 0.02)
    client.receive(natpmp_map_reply(4433, 4433, 7200, 160), CHECK_INTERVAL + 0.02)
    assert client.lease is not None
    assert client.lease.external == ("198.51.100.9", 4433)
