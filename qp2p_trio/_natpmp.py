# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""NAT-PMP (RFC 6886) and PCP (RFC 6887) messages, sans-IO.

Both protocols talk UDP to the gateway's port 5351; a PCP server answers a
NAT-PMP request in NAT-PMP and a NAT-PMP-only gateway answers a PCP request
with a NAT-PMP "unsupported version" reply.  This module encodes the few
requests we send (NAT-PMP: external address, UDP mapping; PCP: ANNOUNCE,
MAP for UDP) and decodes replies into `GatewayReply`.  The client's side
(retries, leases, epochs) is `_portmap`'s; the sockets are `_portmap_io`'s.

Replies are peer input: every decoder raises `GatewayReplyError` (never
anything else) for a reply that is too short, of another version or opcode,
not a response, or, for PCP, with a nonce that is not ours.  A well-formed
reply with a non-zero result code decodes normally (``result`` says it); the
client turns it into a `PortMappingError`.

Imports the standard library, attrs and `_errors` only; no Trio, no clock.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final, final

import attrs

from ._errors import GatewayReplyError

__all__ = [
    "GATEWAY_PORT",
    "GatewayReply",
    "decode_natpmp",
    "decode_pcp",
    "encode_natpmp_address_request",
    "encode_natpmp_map_request",
    "encode_pcp_announce",
    "encode_pcp_map_request",
    "natpmp_result_text",
    "pcp_result_text",
]

GATEWAY_PORT: Final = 5351
"""The UDP port NAT-PMP and PCP servers listen on."""

NATPMP_VERSION: Final = 0
PCP_VERSION: Final = 2
#: NAT-PMP opcodes: external address, map UDP; a response's is 128 + the request's.
NATPMP_OP_ADDRESS: Final = 0
NATPMP_OP_MAP_UDP: Final = 1
#: PCP opcodes.
PCP_OP_ANNOUNCE: Final = 0
PCP_OP_MAP: Final = 1
UDP_PROTOCOL: Final = 17
#: A PCP message is at most 1100 bytes (RFC 6887 §7).
PCP_MAX_SIZE: Final = 1100

_NATPMP_RESULTS: Final = {
    0: "success",
    1: "unsupported version",
    2: "not authorized or refused",
    3: "network failure",
    4: "out of resources",
    5: "unsupported opcode",
}
_PCP_RESULTS: Final = {
    0: "success",
    1: "unsupported version",
    2: "not authorized",
    3: "malformed request",
    4: "unsupported opcode",
    5: "unsupported option",
    6: "malformed option",
    7: "network failure",
    8: "no resources",
    9: "unsupported protocol",
    10: "user exceeded quota",
    11: "cannot provide external",
    12: "address mismatch",
    13: "excessive remote peers",
}

_NATPMP_HEAD = struct.Struct(">BBHI")  # version, opcode, result, epoch
_NATPMP_MAP = struct.Struct(">BBHHHI")  # version, opcode, reserved, internal, external, lifetime
_NATPMP_MAP_BODY = struct.Struct(">HHI")  # internal port, external port, lifetime
_PCP_REQUEST = struct.Struct(">BBHI16s")  # version, opcode, reserved, lifetime, client ip
_PCP_RESPONSE = struct.Struct(">BBBBII12x")  # version, R|op, reserved, result, lifetime, epoch
_PCP_MAP = struct.Struct(">12sB3xHH16s")  # nonce, protocol, internal, external port, ip


def natpmp_result_text(code: int) -> str:
    """The name RFC 6886 gives a NAT-PMP result code."""
    return _NATPMP_RESULTS.get(code, f"result {code}")


def pcp_result_text(code: int) -> str:
    """The name RFC 6887 gives a PCP result code."""
    return _PCP_RESULTS.get(code, f"result {code}")


@final
@attrs.frozen
class GatewayReply:
    """A decoded NAT-PMP or PCP reply.

    Attributes:
        protocol: ``"natpmp"`` or ``"pcp"``.
        opcode: the request's opcode (without the response bit).
        result: the result code (0 is success).
        epoch: the gateway's epoch (seconds since its mapping state began).
        external_ip: the external address (NAT-PMP address reply, PCP MAP).
        external_port: the mapped external port (map replies).
        internal_port: the internal port the reply is about (map replies).
        lifetime: seconds the mapping lives (map replies).
    """

    protocol: str
    opcode: int
    result: int
    epoch: int
    external_ip: str | None = None
    external_port: int | None = None
    internal_port: int | None = None
    lifetime: int | None = None


# ------------------------------------------------------------------ NAT-PMP
def encode_natpmp_address_request() -> bytes:
    """The NAT-PMP external address request (opcode 0)."""
    return bytes([NATPMP_VERSION, NATPMP_OP_ADDRESS])


def encode_natpmp_map_request(internal_port: int, external_port: int, lifetime: int) -> bytes:
    """A NAT-PMP UDP mapping request (lifetime 0 and external port 0 delete it)."""
    _check_port(internal_port, allow_zero=False)
    _check_port(external_port, allow_zero=True)
    return _NATPMP_MAP.pack(
        NATPMP_VERSION, NATPMP_OP_MAP_UDP, 0, internal_port, external_port, _u32(lifetime)
    )


def decode_natpmp(data: bytes | bytearray | memoryview) -> GatewayReply:
    """Decode a NAT-PMP reply (a response to opcode 0 or 1).

    Raises:
        GatewayReplyError: not a NAT-PMP response to one of our requests, or
            too short for its opcode.
    """
    data = bytes(data)
    if len(data) < _NATPMP_HEAD.size:
        raise _bad("natpmp", f"a reply of {len(data)} bytes (at least 8 needed)")
    version, opcode, result, epoch = _NATPMP_HEAD.unpack_from(data)
    if version != NATPMP_VERSION:
        raise _bad("natpmp", f"version {version} (expected 0)")
    if opcode < 128:
        raise _bad("natpmp", f"opcode {opcode} is a request, not a response")
    opcode -= 128
    if opcode not in (NATPMP_OP_ADDRESS, NATPMP_OP_MAP_UDP):
        raise _bad("natpmp", f"response to opcode {opcode}, which we never send")
    if result != 0:  # an error reply may stop after the epoch
        return GatewayReply("natpmp", opcode, result, epoch)
    if opcode == NATPMP_OP_ADDRESS:
        if len(data) < 12:
            raise _bad("natpmp", f"an address reply of {len(data)} bytes (12 needed)")
        ip = str(ipaddress.IPv4Address(data[8:12]))
        return GatewayReply("natpmp", opcode, result, epoch, external_ip=ip)
    if len(data) < 16:
        raise _bad("natpmp", f"a mapping reply of {len(data)} bytes (16 needed)")
    internal, external, lifetime = _NATPMP_MAP_BODY.unpack_from(data, 8)
    if internal == 0 or (external == 0 and lifetime != 0):
        raise _bad("natpmp", f"a mapping reply with port {internal} -> {external}")
    return GatewayReply(
        "natpmp",
        opcode,
        result,
        epoch,
        external_port=external,
        internal_port=internal,
        lifetime=lifetime,
    )


# ---------------------------------------------------------------------- PCP
def _pcp_ip(ip: str) -> bytes:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return ipaddress.IPv6Address("::ffff:" + str(addr)).packed
    return addr.packed


def encode_pcp_announce(client_ip: str) -> bytes:
    """A PCP ANNOUNCE request: harmless, answered by any PCP server (a probe)."""
    return _PCP_REQUEST.pack(PCP_VERSION, PCP_OP_ANNOUNCE, 0, 0, _pcp_ip(client_ip))


def encode_pcp_map_request(
    client_ip: str,
    nonce: bytes,
    internal_port: int,
    lifetime: int,
    external: tuple[str, int] | None = None,
) -> bytes:
    """A PCP MAP request for UDP (lifetime 0 deletes the mapping).

    Args:
        client_ip: our address as the gateway sees it (it checks).
        nonce: 12 bytes identifying the mapping's owner; the same for its
            renewals and its deletion.
        internal_port: the port our socket is bound to.
        lifetime: seconds asked for.
        external: the external address suggested (or to delete), if any.
    """
    if len(nonce) != 12:
        raise ValueError(f"a PCP nonce is 12 bytes, not {len(nonce)}")
    _check_port(internal_port, allow_zero=False)
    ext_ip, ext_port = external if external is not None else ("0.0.0.0", 0)
    _check_port(ext_port, allow_zero=True)
    head = _PCP_REQUEST.pack(PCP_VERSION, PCP_OP_MAP, 0, _u32(lifetime), _pcp_ip(client_ip))
    body = _PCP_MAP.pack(nonce, UDP_PROTOCOL, internal_port, ext_port, _pcp_ip(ext_ip))
    return head + body


def decode_pcp(data: bytes | bytearray | memoryview, nonce: bytes | None = None) -> GatewayReply:
    """Decode a PCP response (ANNOUNCE or MAP); options after it are ignored.

    A NAT-PMP "unsupported version" reply (a NAT-PMP-only gateway) decodes
    as a PCP reply with result 1 (unsupported version).

    Args:
        data: the datagram.
        nonce: for a MAP response, the nonce of our request: another
            nonce is not a reply to us.

    Raises:
        GatewayReplyError: not a PCP response, too long or short, not a
            multiple of 4 bytes, a MAP response for another nonce, protocol
            or with a malformed address.
    """
    data = bytes(data)
    if len(data) >= 2 and data[0] == NATPMP_VERSION and data[1] >= 128:
        return GatewayReply("pcp", data[1] - 128, 1, 0)  # NAT-PMP only: "unsupported version"
    if not _PCP_RESPONSE.size <= len(data) <= PCP_MAX_SIZE or len(data) % 4:
        raise _bad("pcp", f"a reply of {len(data)} bytes (24-1100, a multiple of 4)")
    version, r_op, _, result, lifetime, epoch = _PCP_RESPONSE.unpack_from(data)
    if version != PCP_VERSION:
        raise _bad("pcp", f"version {version} (expected 2)")
    if not r_op & 0x80:
        raise _bad("pcp", "a request, not a response")
    opcode = r_op & 0x7F
    if opcode == PCP_OP_ANNOUNCE:
        return GatewayReply("pcp", opcode, result, epoch)
    if opcode != PCP_OP_MAP:
        raise _bad("pcp", f"response to opcode {opcode}, which we never send")
    if len(data) < _PCP_RESPONSE.size + _PCP_MAP.size:
        raise _bad("pcp", f"a MAP reply of {len(data)} bytes (60 needed)")
    got_nonce, proto, internal, external, raw_ip = _PCP_MAP.unpack_from(data, _PCP_RESPONSE.size)
    if nonce is not None and got_nonce != nonce:
        raise _bad("pcp", "a MAP reply for another nonce")
    if proto != UDP_PROTOCOL or internal == 0:
        raise _bad("pcp", f"a MAP reply for protocol {proto}, internal port {internal}")
    if result != 0:
        return GatewayReply("pcp", opcode, result, epoch, internal_port=internal)
    ip = ipaddress.IPv6Address(raw_ip)
    mapped = ip.ipv4_mapped
    if external == 0 and lifetime != 0:
        raise _bad("pcp", "a MAP reply granting external port 0")
    return GatewayReply(
        "pcp",
        opcode,
        result,
        epoch,
        external_ip=str(mapped if mapped is not None else ip),
        external_port=external,
        internal_port=internal,
        lifetime=lifetime,
    )


# ------------------------------------------------------------------ helpers
def _bad(protocol: str, what: str) -> GatewayReplyError:
    name = "NAT-PMP" if protocol == "natpmp" else "PCP"
    return GatewayReplyError(f"malformed {name} reply: {what}", protocol=protocol)


def _check_port(port: int, *, allow_zero: bool) -> None:
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ValueError(f"port {port} out of range")


def _u32(value: int) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"lifetime {value} out of range")
    return value
