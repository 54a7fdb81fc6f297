# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""UPnP-IGD port mapping messages, sans-IO: SSDP, HTTP, the device description, SOAP.

What a UPnP client needs, as bytes in and values out (`_portmap_io` does the
sockets): the SSDP M-SEARCH for an Internet Gateway Device and the parsing
of its answer (the device description's URL); a minimal HTTP/1.1 request
and response (``Connection: close``, Content-Length or chunked bodies); the
description's WANIPConnection / WANPPPConnection service and control URL;
and the SOAP calls GetExternalIPAddress, AddPortMapping and
DeletePortMapping with their answers.

Everything a gateway sends is peer input.  Parsers raise `GatewayReplyError`
for anything malformed and `PortMappingError` (with the UPnP error code) for
a SOAP fault; nothing else.  Sizes are capped (`MAX_HTTP_SIZE`), XML with a
DOCTYPE is refused (no entity tricks), and every URL a gateway gives must
point at the IP address that answered the M-SEARCH: a hostile answer cannot
send us to fetch from, or post to, another host.

Imports the standard library, attrs and `_errors` only; no Trio, no clock.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Final, final
from xml.sax.saxutils import escape

import attrs

from ._errors import GatewayReplyError, PortMappingError

__all__ = [
    "MAX_HTTP_SIZE",
    "SSDP_ADDRESS",
    "ControlPoint",
    "HttpResponse",
    "encode_http_request",
    "encode_msearch",
    "parse_description",
    "parse_http_response",
    "parse_soap_response",
    "parse_ssdp_response",
    "soap_request",
]

SSDP_ADDRESS: Final = ("239.255.255.250", 1900)
"""Where SSDP M-SEARCH requests go (IPv4 multicast; a known gateway also gets one unicast)."""

IGD_TARGET: Final = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
MAX_HTTP_SIZE: Final = 64 * 1024
"""The largest HTTP response (headers and body) we read from a gateway."""

#: The services that can map ports, best first.
SERVICE_TYPES: Final = (
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)


def _bad(what: str) -> GatewayReplyError:
    return GatewayReplyError(f"malformed UPnP reply: {what}", protocol="upnp")


# --------------------------------------------------------------------- SSDP
def encode_msearch(host: str = "239.255.255.250", mx: int = 1) -> bytes:
    """An SSDP M-SEARCH for Internet Gateway Devices (answers within ``mx`` s)."""
    return (
        "M-SEARCH * HTTP/1.1\r\n"
        f"HOST: {host}:1900\r\n"
        'MAN: "ssdp:discover"\r\n'
        f"MX: {mx}\r\n"
        f"ST: {IGD_TARGET}\r\n"
        "\r\n"
    ).encode("ascii")


def _headers(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise _bad(f"header line {line[:60]!r}")
        out[name.strip().lower()] = value.strip()
    return out


def parse_ssdp_response(data: bytes, source_ip: str) -> str:
    """The description URL in an SSDP answer from ``source_ip``.

    Raises:
        GatewayReplyError: not an HTTP 200 answer with a LOCATION header, or
            the URL is not ``http://`` on ``source_ip``.
    """
    if len(data) > MAX_HTTP_SIZE:
        raise _bad(f"an SSDP answer of {len(data)} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _bad("an SSDP answer that is not ASCII") from None
    lines = text.split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200"):
        raise _bad(f"SSDP status line {lines[0][:60]!r}")
    end = lines.index("") if "" in lines else len(lines)
    location = _headers(lines[1:end]).get("location")
    if not location:
        raise _bad("an SSDP answer without LOCATION")
    _url_on(location, source_ip)
    return location


def _url_on(url: str, ip: str) -> tuple[str, int, str]:
    """``(host, port, path)`` of an ``http://`` URL, which must be on ``ip``."""
    if not url.isascii() or any(c in url for c in "\r\n "):
        raise _bad(f"URL {url[:100]!r} (not plain ASCII)")
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        raise _bad(f"URL {url[:100]!r}") from None
    if parts.scheme != "http" or host is None:
        raise _bad(f"URL {url[:100]!r} (http:// on an IP address needed)")
    try:
        same = ipaddress.ip_address(host) == ipaddress.ip_address(ip)
    except ValueError:
        same = False
    if not same:
        raise _bad(f"URL {url[:100]!r} points away from the gateway {ip}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, port, path


# --------------------------------------------------------------------- HTTP
def encode_http_request(
    method: str, url: str, gateway_ip: str, headers: dict[str, str], body: bytes = b""
) -> tuple[tuple[str, int], bytes]:
    """``((host, port), request bytes)`` for ``url`` (which must be on ``gateway_ip``)."""
    host, port, path = _url_on(url, gateway_ip)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return (host, port), head + body


@final
@attrs.frozen
class HttpResponse:
    """A parsed HTTP response: status code, lower-case headers, body."""

    status: int
    headers: dict[str, str]
    body: bytes


def parse_http_response(raw: bytes) -> HttpResponse:
    """Parse a whole HTTP/1.x response (the connection was closed after it).

    Raises:
        GatewayReplyError: too large, no status line or header end, a bad
            Content-Length or chunked encoding, a body cut short.
    """
    if len(raw) > MAX_HTTP_SIZE:
        raise _bad(f"an HTTP response over {MAX_HTTP_SIZE} bytes")
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise _bad("an HTTP response without the end of its headers")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or not _digits(status[1]):
        raise _bad(f"HTTP status line {lines[0][:60]!r}")
    headers = _headers(lines[1:])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not _digits(length) or int(length) > len(body):
            raise _bad(f"Content-Length {length[:20]!r} for a body of {len(body)} bytes")
        body = body[: int(length)]
    return HttpResponse(int(status[1]), headers, body)


def _digits(text: str) -> bool:
    """Whether ``text`` is a decimal number in ASCII digits (``"²".isdigit()`` is true)."""
    return text.isascii() and text.isdigit() and len(text) <= 12


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:  # bounded: each round consumes bytes of a capped input
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise _bad("a chunked body cut short")
        size_text = data[pos:end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _bad(f"chunk size {size_text[:20]!r}") from None
        if size < 0 or end + 2 + size > len(data):
            raise _bad("a chunk longer than the body")
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


# -------------------------------------------------------------------- XML
def _xml(body: bytes) -> ET.Element:
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise _bad("XML with a DOCTYPE or ENTITY")
    try:
        return ET.fromstring(body)  # no DTD (checked above), size capped
    except ET.ParseError as exc:
        raise _bad(f"XML: {exc}") from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


@final
@attrs.frozen
class ControlPoint:
    """Where to send SOAP calls: the service type and its control URL."""

    service_type: str
    control_url: str


def parse_description(body: bytes, location: str, gateway_ip: str) -> ControlPoint:
    """The port mapping service in a device description fetched from ``location``.

    Raises:
        GatewayReplyError: not XML, no WANIPConnection / WANPPPConnection
            service with a control URL, or a control URL off the gateway.
    """
    root = _xml(body)
    base = location
    for element in root.iter():
        if _local(element.tag) == "URLBase" and (element.text or "").strip():
            base = (element.text or "").strip()
    found: dict[str, str] = {}
    for element in root.iter():
        if _local(element.tag) != "service":
            continue
        kind = _child_text(element, "serviceType")
        control = _child_text(element, "controlURL")
        if kind in SERVICE_TYPES and control and kind not in found:
            found[kind] = control
    for kind in SERVICE_TYPES:
        if kind in found:
            url = urllib.parse.urljoin(base, found[kind])
            _url_on(url, gateway_ip)
            return ControlPoint(kind, url)
    raise _bad("a device description without a WANIPConnection or WANPPPConnection service")


# ------------------------------------------------------------------- SOAP
def soap_request(
    service_type: str, action: str, args: list[tuple[str, str]]
) -> tuple[dict[str, str], bytes]:
    """``(headers, body)`` of a SOAP call of ``action`` with ``args`` in order."""
    params = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in args)
    body = (
        '<?xml version="1.0"?>\r\n'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
        f'<s:Body><u:{action} xmlns:u="{service_type}">{params}</u:{action}></s:Body>'
        "</s:Envelope>\r\n"
    ).encode()
    headers = {
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPAction": f'"{service_type}#{action}"',
    }
    return headers, body


def parse_soap_response(response: HttpResponse, action: str) -> dict[str, str]:
    """The out-arguments of a SOAP answer to ``action``.

    Raises:
        PortMappingError: a SOAP fault (``code`` is the UPnP error code,
            e.g. 718 ConflictInMappingEntry, 725 OnlyPermanentLeasesSupported).
        GatewayReplyError: not a SOAP envelope answering ``action``.
    """
    root = _xml(response.body)
    body = next((e for e in root if _local(e.tag) == "Body"), None)
    if _local(root.tag) != "Envelope" or body is None:
        raise _bad(f"a SOAP answer to {action} without an Envelope and Body")
    for element in body:
        name = _local(element.tag)
        if name == "Fault":
            raise _fault(element, action)
        if name == f"{action}Response":
            return {_local(c.tag): (c.text or "").strip() for c in element}
    raise _bad(f"a SOAP answer (HTTP {response.status}) without {action}Response")


def _fault(fault: ET.Element, action: str) -> PortMappingError:
    code: int | None = None
    text = ""
    for element in fault.iter():
        name = _local(element.tag)
        if name == "errorCode" and _digits((element.text or "").strip()):
            code = int((element.text or "").strip())
        elif name == "errorDescription":
            text = (element.text or "").strip()[:100]
    return PortMappingError(
        f"the UPnP gateway refused {action}: error {code} {text}".rstrip(),
        protocol="upnp",
        code=code,
    )
