# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Relays and hole punching through real nft NATs in network namespaces (root only).

A relay (``listen --relay``) runs in the public namespace of a
`netns.Topology`; node B listens behind router n2 with ``--home-relay``;
node A, behind router n1, pings ``<B-id>/via/<relay>``.  Behind two cone
NATs hole punching moves the connection to a direct path; behind two
symmetric NATs it cannot, and the ping goes on through the relay.  Every
namespace and process is removed afterwards, also on failure; skipped with
the reason when not root or a tool is missing.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import TYPE_CHECKING, Any

import pytest
from netns import Topology, missing_tools, read_line, topology

from qp2p_trio import Identity

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_why = missing_tools()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")
CLI = [sys.executable, "-m", "qp2p_trio"]


def _key(state: Path, name: str) -> tuple[str, Identity]:
    identity = Identity.generate()
    path = state / f"{name}.key"
    identity.save(str(path))
    return str(path), identity


class Run:
    """What a relayed ping printed: A's ``ping --json`` summary, B's ``connected`` events."""

    def __init__(self, ping: dict[str, Any], connected: list[dict[str, Any]]) -> None:
        self.ping = ping
        self.rounds: list[dict[str, Any]] = ping["rounds"]
        self.connected = connected


@pytest.fixture
def relayed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Run]:
    """The topology with ``request.param`` NATs (n1, n2), a relay, B and A's ping through it."""
    with topology(str(tmp_path), request.param) as topo:
        yield _ping_via_relay(topo, tmp_path)


def _ping_via_relay(topo: Topology, state: Path) -> Run:
    relay_key, relay_id = _key(state, "relay")
    relay = topo.spawn("pub", *CLI, "listen", "10.99.0.1:7100", "--identity", relay_key,
                       "--relay", "--json", limit=60)  # fmt: skip
    read_line(relay, '"listening"', 15)
    relay_peer = f"{relay_id.node_id}@10.99.0.1:7100"
    b_key, b_id = _key(state, "b")
    node = topo.spawn("b", *CLI, "listen", "0.0.0.0:7200", "--identity", b_key,
                      "--home-relay", relay_peer, "--json", limit=60)  # fmt: skip
    listening = json.loads(read_line(node, '"listening"', 15))
    assert listening["peer_address"].endswith(f"/via/{relay_peer}")
    # 12 rounds over 3 s: hole punching (cone NATs) is done well within them.
    ping = topo.spawn("a", *CLI, "ping", f"{b_id.node_id}/via/{relay_peer}", "-c", "12",
                      "-i", "0.25", "--json", "--timeout", "10", limit=40)  # fmt: skip
    out, err = ping.communicate(timeout=45)
    assert ping.returncode == 0, err.decode()
    node.send_signal(signal.SIGTERM)
    rest, _ = node.communicate(timeout=15)
    events = [json.loads(line) for line in rest.decode().splitlines() if line.startswith("{")]
    return Run(json.loads(out), [e for e in events if e.get("event") == "connected"])


@pytest.mark.parametrize("relayed", [("cone", "cone")], indirect=True)
def test_cone_to_cone_starts_relayed_and_moves_direct(relayed: Run) -> None:
    via = "relayed via "
    assert relayed.ping["path"].startswith(via)  # the path at the handshake
    assert relayed.ping["received"] == relayed.ping["sent"] == 12  # none lost across the switch
    paths = [r["path"] for r in relayed.rounds]
    assert paths[0].startswith(via), paths  # a round answered through the relay...
    switch = paths.index("direct")  # ...then hole punching moved the connection,
    assert all(p == "direct" for p in paths[switch:]), paths  # for good
    assert all(r["rtt_ms"] is not None for r in relayed.rounds)
    # B saw A twice: through the relay, then directly from A's NAT (n1).
    assert [e["path"] for e in relayed.connected] == ["relayed", "direct"]
    assert relayed.connected[0]["address"].startswith("via ")
    assert relayed.connected[1]["address"].startswith("10.99.0.11:")


@pytest.mark.parametrize("relayed", [("symmetric", "symmetric")], indirect=True)
def test_symmetric_to_symmetric_stays_relayed(relayed: Run) -> None:
    assert relayed.ping["received"] == relayed.ping["sent"] == 12
    paths = {r["path"] for r in relayed.rounds}
    assert paths == {relayed.ping["path"]}, paths
    assert relayed.ping["path"].startswith("relayed via ")
    assert len(relayed.connected) == 1  # only the relayed connection: no direct one
    assert relayed.connected[0]["path"] == "relayed"


@pytest.mark.parametrize("relayed", [("cone", "symmetric")], indirect=True)
def test_cone_to_symmetric_stays_relayed(relayed: Run) -> None:
    """A behind a cone NAT, B behind a symmetric one: relayed throughout.

    nft ``masquerade`` maps endpoint-independently but filters by address
    and port (conntrack lets in only replies from the exact address a packet
    went to: a port-restricted cone); ``masquerade random`` gives every new
    destination a new random port.  B's Initials to A's cone address leave
    from a port A never sent to, so A's router drops them; A's Initials to
    B's relay-observed port find no conntrack entry for A's address, so B's
    router drops them.  No hole either way (`tests/natkit.py` ``theory``
    says the same of the virtual NATs): the ping goes on through the relay.
    """
    assert relayed.ping["received"] == relayed.ping["sent"] == 12
    paths = {r["path"] for r in relayed.rounds}
    assert paths == {relayed.ping["path"]}, paths
    assert relayed.ping["path"].startswith("relayed via ")
    assert [e["path"] for e in relayed.connected] == ["relayed"]  # no direct connection
