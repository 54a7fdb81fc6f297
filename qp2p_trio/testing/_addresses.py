# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Address parsing and errors shared by the socket emulation and the network.

Owns the canonical form of an address on the virtual network (an `Endpoint`,
``(ip, port)`` with IPv4-mapped IPv6 addresses turned into IPv4), the checks
that make bad addresses fail as real sockets fail, and the ranges hosts may
take their addresses from.

May import the standard library only (``socket`` for its constants and
`socket.gaierror`); nothing of Trio.
"""

from __future__ import annotations

import ipaddress
import os
import socket as _stdlib_socket
from typing import Final, TypeAlias

__all__ = [
    "IP",
    "LAST_PORT",
    "Endpoint",
    "as_bytes",
    "canonical_endpoint",
    "check_port",
    "oserror",
    "parse_ip",
    "split_address",
    "virtual_ip",
]

Endpoint: TypeAlias = tuple[str, int]
"""A canonical ``(ip, port)`` address: how the network keys sockets and routes."""
IP: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

LAST_PORT: Final = 65535
_V4_VIRTUAL: Final = ipaddress.IPv4Network("127.0.0.0/8")
_V6_LOOPBACK: Final = ipaddress.IPv6Address("::1")
_V6_VIRTUAL: Final = ipaddress.IPv6Network("2001:db8::/32")


def oserror(code: int) -> OSError:
    """An `OSError` for *code* with the system's message, as a real socket raises it."""
    return OSError(code, os.strerror(code))


#: Addresses parsed recently (every datagram's address is parsed): at most
#: `_PARSED_MAX`, emptied when full.  IP address objects are immutable.
_parsed: dict[str, IP] = {}
_PARSED_MAX: Final = 4096


def parse_ip(text: object) -> IP:
    """Parse a numeric IP address; IPv4-mapped IPv6 addresses become IPv4."""
    if not isinstance(text, str):
        raise TypeError(f"IP address must be a str, not {type(text).__name__}")
    ip = _parsed.get(text)
    if ip is None:
        ip = _parse_ip(text)
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[text] = ip
    return ip


def _parse_ip(text: str) -> IP:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise _stdlib_socket.gaierror(
            _stdlib_socket.EAI_NONAME,
            f"MemoryNetwork accepts numeric IP addresses only, not {text!r}",
        ) from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def check_port(port: object) -> int:
    """Return *port* if it is a valid port number, else raise as a real socket does."""
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 0 <= port <= LAST_PORT:
        raise OverflowError("port must be 0-65535.")
    return port


def split_address(address: object, *, v6: bool) -> tuple[object, object]:
    """Return the (host, port) of a socket address tuple, checking its shape."""
    if v6:
        if not isinstance(address, tuple) or not 2 <= len(address) <= 4:
            raise ValueError("address should be a (host, port, [flowinfo, [scopeid]]) tuple")
    elif not isinstance(address, tuple) or len(address) != 2:
        raise ValueError("address should be a (host, port) tuple")
    return address[0], address[1]


def canonical_endpoint(address: object) -> Endpoint:
    """Normalise a control-API address (2- or 4-tuple) to a canonical endpoint."""
    host, port = split_address(address, v6=True)
    try:
        ip = parse_ip(host)
    except _stdlib_socket.gaierror as exc:
        raise ValueError(str(exc)) from None
    return str(ip), check_port(port)


def as_bytes(data: object, what: str) -> bytes:
    """Return *data* (bytes-like, named *what* in errors) as `bytes`."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what} must be a bytes-like object, not {type(data).__name__}")


def virtual_ip(text: str, *, version: int) -> str:
    """Check that *text* may be a host's address of IP *version*; return it canonical.

    So that no test looks as if it targets a real network, IPv4 addresses must
    be loopback (``127.0.0.0/8``), IPv6 ones ``::1`` or documentation
    (``2001:db8::/32``) addresses.
    """
    ip = ipaddress.ip_address(text)
    if version == 4:
        if not isinstance(ip, ipaddress.IPv4Address) or ip not in _V4_VIRTUAL:
            raise ValueError(f"virtual IPv4 addresses must be in {_V4_VIRTUAL}, not {text!r}")
    elif not isinstance(ip, ipaddress.IPv6Address) or not (ip == _V6_LOOPBACK or ip in _V6_VIRTUAL):
        raise ValueError(f"virtual IPv6 addresses must be ::1 or in {_V6_VIRTUAL}, not {text!r}")
    return str(ip)
