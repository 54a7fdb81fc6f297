# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Peer addresses: a node id, the socket address where that node listens, its relay.

The text form puts them in one copy-pasteable string::

    <node-id>@<host>:<port>
    ciqbfxk3...2xq@192.0.2.7:4433
    ciqbfxk3...2xq@[2001:db8::7]:4433      (IPv6 hosts go in brackets)
    ciqbfxk3...2xq@node7.example.org:4433  (a DNS name, resolved when connecting)
    ciqbfxk3...2xq@192.0.2.7:4433/via/<relay-id>@198.51.100.1:4433
    ciqbfxk3...2xq/via/<relay-id>@198.51.100.1:4433   (reachable through its relay only)

Nothing here performs I/O: host names are checked for syntax only.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, final

import attrs

from ._identity import NodeId

__all__ = ["PeerAddress"]

_FORMAT: Final = (
    "expected <node-id>@<host>:<port>, for example <node-id>@127.0.0.1:4433 or <node-id>@[::1]:4433,"
    " optionally followed by /via/<relay-id>@<host>:<port> (or only <node-id>/via/...)"
)
_VIA: Final = "/via/"
_LABEL_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")


def _shorten(text: str) -> str:
    if len(text) > 120:
        return repr(text[:120]) + "..."
    return repr(text)


def _normalize_host(host: str) -> str:
    """Return the canonical spelling of a host, or raise ValueError.

    IP literals are written in their standard (compressed) form; DNS names
    are lowercased and checked against the usual syntax (RFC 1123 labels, a
    last label that is not all digits, 253 characters at most).
    """
    if not host:
        raise ValueError("the host is empty")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.lower()
    if ":" in name:
        raise ValueError(f"{host!r} is not a valid IPv6 address")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is neither an IP address nor a valid host name")
    if labels[-1].isdigit():
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    return name


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"the port must be an int, got {port!r}")
    if not 0 < port < 65536:
        raise ValueError(f"the port must be within 1..65535, got {port}")
    return port


def _convert_address(value: object) -> tuple[str, int]:
    """Validate and normalize ``(host, port)`` (an attrs converter)."""
    if not isinstance(value, tuple) or len(value) not in (2, 4):
        raise TypeError(f"address must be a (host, port) tuple, got {value!r}")
    if len(value) == 4 and value[3] not in (0, None):
        raise ValueError(
            f"address {value!r} has an IPv6 scope id; write the host as 'fe80::1%eth0' instead"
        )
    host, port = value[0], value[1]
    if not isinstance(host, str):
        raise TypeError(f"the host must be a str, got {host!r}")
    return (_normalize_host(host), _check_port(port))


def _convert_optional_address(value: object) -> tuple[str, int] | None:
    return None if value is None else _convert_address(value)


def _check_relay(inst: PeerAddress, _attribute: object, value: PeerAddress | None) -> None:
    if value is None:
        if inst.address is None:
            raise ValueError("a peer address needs a socket address, a relay, or both")
        return
    if not isinstance(value, PeerAddress):
        raise TypeError(f"relay must be a qp2p_trio.PeerAddress, got {type(value).__name__}")
    if value.address is None or value.relay is not None:
        raise ValueError(f"a relay must be reachable directly (<node-id>@host:port): {value}")
    if value.node_id == inst.node_id:
        raise ValueError("a peer cannot be its own relay")


def _check_node_id(_inst: object, _attribute: attrs.Attribute[NodeId], value: NodeId) -> None:
    if not isinstance(value, NodeId):
        raise TypeError(f"node_id must be a qp2p_trio.NodeId, got {type(value).__name__}")


@final
@attrs.frozen
class PeerAddress:
    """Where to reach a peer and which node id it must prove: ``<node-id>@<host>:<port>``.

    A peer behind a NAT that nobody can dial names its home relay too:
    ``<node-id>@<host>:<port>/via/<relay-id>@<host>:<port>``, or only
    ``<node-id>/via/<relay-id>@<host>:<port>``; `Endpoint.connect` then
    reaches it through the relay (racing the direct address when there is
    one).  See :doc:`relays`.

    Peer addresses are immutable and hashable.  `str` gives the text form, in
    which IPv6 hosts are written in brackets (``<node-id>@[::1]:4433``), and
    `parse` reads it back: ``PeerAddress.parse(str(p)) == p``.

    The host is an IPv4 or IPv6 address, or a DNS name that is resolved when
    connecting; it is stored in its canonical form (IP addresses compressed,
    names lowercased).

    Example::

        peer = qp2p_trio.PeerAddress(ep.node_id, ("127.0.0.1", 4433))
        print(peer)  # <node-id>@127.0.0.1:4433
        conn = await other.connect(peer.address, node_id=peer.node_id)

    Args:
        node_id: the node id the peer must prove.
        address: ``(host, port)``.  An IPv6 socket address
            ``(host, port, flowinfo, scope_id)`` is accepted too when its scope
            id is 0; flowinfo is dropped.  ``None`` if the peer is reachable
            through its relay only.
        relay: the peer's home relay (a `PeerAddress` with an address and no
            relay of its own), or ``None``.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: the host is not an IP address or a valid DNS name, the
            port is not within 1..65535, there is neither an address nor a
            relay, or the relay is not directly reachable.

    Attributes:
        node_id: the node id the peer must prove.
        address: ``(host, port)``, the host in canonical form, or ``None``.
        relay: the peer's relay, or ``None``.
    """

    node_id: NodeId = attrs.field(validator=_check_node_id)
    address: tuple[str, int] | None = attrs.field(default=None, converter=_convert_optional_address)
    relay: PeerAddress | None = attrs.field(default=None, kw_only=True, validator=_check_relay)

    @property
    def host(self) -> str:
        """The host: an IP address or a DNS name (`ValueError` if there is no address)."""
        return self._direct()[0]

    @property
    def port(self) -> int:
        """The UDP port (`ValueError` if there is no address)."""
        return self._direct()[1]

    def _direct(self) -> tuple[str, int]:
        if self.address is None:
            raise ValueError(f"{self} has no direct address, only a relay")
        return self.address

    @classmethod
    def parse(cls, text: str) -> PeerAddress:
        """Parse the text form ``<node-id>@<host>:<port>[/via/<relay>]`` (see the class).

        The node id may be written in base32 (as `str` writes it) or as 64
        hexadecimal digits.  IPv6 hosts must be in brackets.  Surrounding
        whitespace is ignored.

        Args:
            text: the text to parse.

        Returns:
            The peer address.

        Raises:
            TypeError: ``text`` is not a `str`.
            ValueError: ``text`` is not a valid peer address; the message
                says what is wrong.
        """
        if not isinstance(text, str):
            raise TypeError(f"PeerAddress.parse() takes a str, not {type(text).__name__}")
        cleaned = text.strip()

        def bad(why: str) -> ValueError:
            return ValueError(f"invalid peer address {_shorten(text)}: {why}; {_FORMAT}")

        cleaned, via, relay_text = cleaned.partition(_VIA)
        relay = None
        if via:
            if _VIA in relay_text:
                raise bad("a relay must be reachable directly (one '/via/' at most)")
            try:
                relay = cls.parse(relay_text)
            except ValueError as exc:
                raise bad(f"bad relay ({exc})") from None
        node_text, at, location = cleaned.partition("@")
        if not at and via:
            try:
                return cls(NodeId.parse(node_text), None, relay=relay)
            except ValueError as exc:
                raise bad(f"bad node id ({exc})") from None
        if not at:
            raise bad("there is no '@' between the node id and the host")
        if not node_text:
            raise bad("the node id before '@' is missing")
        try:
            node_id = NodeId.parse(node_text)
        except ValueError as exc:
            raise bad(f"bad node id ({exc})") from None
        if location.startswith("["):
            host, bracket, rest = location[1:].partition("]")
            if not bracket:
                raise bad("the '[' before the IPv6 host has no matching ']'")
            if not rest.startswith(":"):
                raise bad("the ':<port>' after the ']' is missing")
            port_text = rest[1:]
            if ":" not in host:
                raise bad(f"only IPv6 hosts go in brackets, not {host!r}")
        else:
            host, colon, port_text = location.rpartition(":")
            if not colon:
                raise bad("the ':<port>' after the host is missing")
            if ":" in host:
                raise bad("an IPv6 host must be written in brackets, like [::1]:4433")
        if not _PORT_RE.fullmatch(port_text):
            raise bad(f"the port {port_text!r} is not a number within 1..65535")
        try:
            return cls(node_id, (host, int(port_text)), relay=relay)
        except ValueError as exc:
            raise bad(str(exc)) from None

    def __str__(self) -> str:
        """Return the text form ``<node-id>@<host>:<port>[/via/<relay>]`` (IPv6 in brackets)."""
        text = str(self.node_id)
        if self.address is not None:
            host, port = self.address
            text += f"@[{host}]:{port}" if ":" in host else f"@{host}:{port}"
        if self.relay is not None:
            text += f"{_VIA}{self.relay}"
        return text
