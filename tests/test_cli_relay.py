# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The CLI and relays: ``listen --relay``, ``--home-relay PEER``, ping and send through a relay.

Real processes on loopback: a relay, a listener registered with it, and
clients that reach the listener by its node id through the relay only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from test_cli import Listener, one_line_error, run

from qp2p_trio import PeerAddress

if TYPE_CHECKING:
    from pathlib import Path

EXIT_BAD_PEER = 3


def test_ping_and_send_through_a_relay(tmp_path: Path) -> None:
    relay = Listener(tmp_path, "--relay", "--json")
    try:
        assert "/via/" not in relay.peer
        node = Listener(tmp_path, "--home-relay", relay.peer, "--json")
        try:
            relay.wait_event("connected")  # the node registers with its home relay
            advertised = PeerAddress.parse(node.peer)
            assert advertised.relay == PeerAddress.parse(relay.peer)
            # Its node id and its relay only: no direct address to try.
            relayed = str(PeerAddress(advertised.node_id, relay=advertised.relay))
            result = run(tmp_path, "ping", "-c", "2", "-i", "0", relayed)
            assert result.returncode == 0, result.stderr
            assert f"path: relayed via {relay.peer}" in result.stdout
            assert "2 probes sent, 2 replies" in result.stdout
            # Hole punching on loopback works at once: the path changes to direct.
            result = run(tmp_path, "ping", "--json", "-c", "20", "-i", "0.1", relayed)
            info = json.loads(result.stdout)
            assert info["path"].startswith("relayed via ")
            assert info["rounds"][-1]["path"] == "direct"
            result = run(tmp_path, "ping", "-c", "20", "-i", "0.1", relayed)
            assert "path changed: direct" in result.stdout
            result = run(tmp_path, "send", relayed, "through the relay")
            assert result.returncode == 0, result.stderr
            event = node.wait_event("connected")  # the first ping's connection
            assert event["path"] == "relayed"
            assert event["address"] == f"via {relay.peer}"
            assert "through the relay" in node.wait_for(lambda line: "through the relay" in line)
        finally:
            node.close()
    finally:
        relay.close()


def test_bad_home_relay(tmp_path: Path) -> None:
    relay_only = "a" * 52 + "/via/" + "b" * 52 + "@127.0.0.1:1"
    result = run(tmp_path, "ping", "--home-relay", "nonsense", "x@127.0.0.1:1")
    assert result.returncode == EXIT_BAD_PEER
    assert "invalid peer address" in one_line_error(result)
    result = run(tmp_path, "ping", "--home-relay", relay_only, "x@127.0.0.1:1")
    assert result.returncode == EXIT_BAD_PEER
