# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Tests of qp2p_trio.PeerAddress: the ``<node-id>@<host>:<port>`` text form."""

from __future__ import annotations

import ipaddress

import attrs
import pytest
from hypothesis import given, strategies as st

import qp2p_trio
from qp2p_trio import NodeId, PeerAddress

NODE = NodeId(bytes(range(32)))
OTHER = NodeId(bytes(range(1, 33)))


def test_exported() -> None:
    assert qp2p_trio.PeerAddress is PeerAddress
    assert "PeerAddress" in qp2p_trio.__all__
    assert PeerAddress.__module__ == "qp2p_trio"


# --- construction -----------------------------------------------------------


def test_fields_and_properties() -> None:
    p = PeerAddress(NODE, ("127.0.0.1", 4433))
    assert p.node_id == NODE
    assert p.address == ("127.0.0.1", 4433)
    assert p.host == "127.0.0.1"
    assert p.port == 4433


def test_frozen_and_hashable() -> None:
    p = PeerAddress(NODE, ("127.0.0.1", 4433))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.address = ("127.0.0.1", 1)  # type: ignore[misc]
    assert {p, PeerAddress(NODE, ("127.0.0.1", 4433))} == {p}
    assert p != PeerAddress(OTHER, ("127.0.0.1", 4433))
    assert p != PeerAddress(NODE, ("127.0.0.1", 4434))


def test_hosts_are_canonical() -> None:
    assert PeerAddress(NODE, ("0:0:0::1", 1)).host == "::1"
    assert PeerAddress(NODE, ("2001:DB8::7", 1)).host == "2001:db8::7"
    assert PeerAddress(NODE, ("Node7.Example.ORG", 1)).host == "node7.example.org"
    assert PeerAddress(NODE, ("fe80::1%eth0", 1)).host == "fe80::1%eth0"


def test_ipv6_socket_address_accepted_without_scope() -> None:
    p = PeerAddress(NODE, ("::1", 4433, 7, 0))
    assert p.address == ("::1", 4433)
    with pytest.raises(ValueError, match="scope id"):
        PeerAddress(NODE, ("fe80::1", 4433, 0, 2))


@pytest.mark.parametrize(
    ("address", "error"),
    [
        (("127.0.0.1", 0), ValueError),
        (("127.0.0.1", 65536), ValueError),
        (("127.0.0.1", -1), ValueError),
        (("127.0.0.1", True), TypeError),
        (("127.0.0.1", "4433"), TypeError),
        ((b"127.0.0.1", 4433), TypeError),
        (("", 4433), ValueError),
        (("1.2.3", 4433), ValueError),
        (("01.2.3.4", 4433), ValueError),
        (("256.1.1.1", 4433), ValueError),
        (("exa mple.org", 4433), ValueError),
        (("-example.org", 4433), ValueError),
        (("example..org", 4433), ValueError),
        (("a" * 64 + ".org", 4433), ValueError),
        (("::g", 4433), ValueError),
        (["127.0.0.1", 4433], TypeError),
        (("127.0.0.1",), TypeError),
        ("127.0.0.1:4433", TypeError),
    ],
)
def test_bad_address(address: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        PeerAddress(NODE, address)  # type: ignore[arg-type]


def test_bad_node_id() -> None:
    with pytest.raises(TypeError, match="NodeId"):
        PeerAddress(str(NODE), ("127.0.0.1", 1))  # type: ignore[arg-type]


# --- text form ----------------------------------------------------------------


def test_str_ipv4_ipv6_and_name() -> None:
    assert str(PeerAddress(NODE, ("127.0.0.1", 4433))) == f"{NODE}@127.0.0.1:4433"
    assert str(PeerAddress(NODE, ("::1", 4433))) == f"{NODE}@[::1]:4433"
    assert str(PeerAddress(NODE, ("localhost", 80))) == f"{NODE}@localhost:80"


@pytest.mark.parametrize(
    "location",
    ["127.0.0.1:4433", "[::1]:4433", "localhost:1", "[fe80::1%eth0]:65535", "node-7.example.org:9"],
)
def test_parse(location: str) -> None:
    p = PeerAddress.parse(f"{NODE}@{location}")
    assert p.node_id == NODE
    assert str(p) == f"{NODE}@{location}"


def test_parse_accepts_hex_node_id_any_case_and_whitespace() -> None:
    text = f"  {NODE.raw.hex().upper()}@LOCALHOST:4433\n"
    assert PeerAddress.parse(text) == PeerAddress(NODE, ("localhost", 4433))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no '@'"),
        ("127.0.0.1:4433", "no '@'"),
        ("@127.0.0.1:4433", "node id before '@' is missing"),
        ("abc@127.0.0.1:4433", "bad node id"),
        (f"{NODE}@127.0.0.1", "':<port>' after the host is missing"),
        (f"{NODE}@127.0.0.1:", "port '' is not a number"),
        (f"{NODE}@127.0.0.1:0", "1..65535"),
        (f"{NODE}@127.0.0.1:65536", "1..65535"),
        (f"{NODE}@127.0.0.1:+80", "is not a number"),
        (f"{NODE}@127.0.0.1:123456", "is not a number"),
        (f"{NODE}@127.0.0.1:44 33", "is not a number"),
        (f"{NODE}@:4433", "host is empty"),
        (f"{NODE}@::1:4433", "must be written in brackets"),
        (f"{NODE}@[::1:4433", "no matching ']'"),
        (f"{NODE}@[::1]4433", "':<port>' after the ']' is missing"),
        (f"{NODE}@[127.0.0.1]:4433", "only IPv6 hosts go in brackets"),
        (f"{NODE}@[::g]:4433", "not a valid IPv6 address"),
        (f"{NODE}@999.1.1.1:4433", "not a valid IPv4 address"),
        (f"{NODE}@bad_host:4433", "neither an IP address nor a valid host name"),
        (f"{NODE}@{NODE}@127.0.0.1:4433", "neither an IP address"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid peer address") as info:
        PeerAddress.parse(text)
    message = str(info.value)
    assert fragment in message
    assert "expected <node-id>@<host>:<port>" in message


def test_parse_error_shortens_long_input() -> None:
    with pytest.raises(ValueError) as info:
        PeerAddress.parse("x" * 10_000)
    assert len(str(info.value)) < 400


def test_parse_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        PeerAddress.parse(b"abc@127.0.0.1:1")  # type: ignore[arg-type]


# --- round trips ----------------------------------------------------------------

node_ids = st.binary(min_size=32, max_size=32).map(NodeId)
ports = st.integers(min_value=1, max_value=65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
names = (
    st.lists(label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda name: not name.split(".")[-1].isdigit())
)
hosts = st.one_of(ipv4, ipv6, names)


@given(node_ids, hosts, ports)
def test_round_trip_through_text(node_id: NodeId, host: str, port: int) -> None:
    p = PeerAddress(node_id, (host, port))
    text = str(p)
    assert PeerAddress.parse(text) == p
    assert str(PeerAddress.parse(text)) == text
    if ":" in p.host:
        assert f"@[{p.host}]:{port}" in text


@given(node_ids, hosts, ports)
def test_canonical_host_is_stable(node_id: NodeId, host: str, port: int) -> None:
    p = PeerAddress(node_id, (host, port))
    assert PeerAddress(node_id, p.address) == p
    if ":" in host or host.replace(".", "").isdigit():
        assert ipaddress.ip_address(p.host) == ipaddress.ip_address(host)


@given(st.text(max_size=200))
def test_parse_raises_only_value_error(text: str) -> None:
    try:
        p = PeerAddress.parse(text)
    except ValueError:
        return
    assert PeerAddress.parse(str(p)) == p
