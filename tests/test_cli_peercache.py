# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The CLI and the peer cache: ``--peer-cache FILE``, then a bare node id as PEER.

Real processes on loopback: a listener, and clients that reach it once by
its peer address (remembered in the cache file) and then by node id alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_cli import Listener, one_line_error, run

import qp2p_trio
from qp2p_trio import Identity, PeerAddress

if TYPE_CHECKING:
    from pathlib import Path

EXIT_BAD_PEER = 3
EXIT_FILE = 4


def test_a_node_id_alone_through_the_peer_cache(tmp_path: Path) -> None:
    node = Listener(tmp_path)
    try:
        node_id = PeerAddress.parse(node.peer).node_id
        result = run(tmp_path, "send", "--peer-cache", "peers.json", node.peer, "first")
        assert result.returncode == 0, result.stderr
        known = qp2p_trio.read_peer_cache(tmp_path / "peers.json")
        assert known == {node_id: PeerAddress.parse(node.peer)}
        # Later runs: the node id is enough.
        result = run(tmp_path, "request", "--peer-cache", "peers.json", str(node_id), "again")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "again\n"
        result = run(tmp_path, "ping", "--peer-cache", "peers.json", "-c", "1", str(node_id))
        assert result.returncode == 0, result.stderr
        assert f"PING {node.peer}" in result.stdout
    finally:
        node.close()
    stranger = Identity.generate().node_id
    result = run(tmp_path, "send", "--peer-cache", "peers.json", str(stranger), "x")
    assert result.returncode == EXIT_BAD_PEER
    assert "no peer" in one_line_error(result)
    result = run(tmp_path, "send", "--peer-cache", "peers.json", "not-a-node-id", "x")
    assert result.returncode == EXIT_BAD_PEER
    # Without --peer-cache a node id alone is no peer address.
    result = run(tmp_path, "send", str(node_id), "x")
    assert result.returncode == EXIT_BAD_PEER
    (tmp_path / "garbage.json").write_text("{not json")
    result = run(tmp_path, "send", "--peer-cache", "garbage.json", str(node_id), "x")
    assert result.returncode == EXIT_FILE
    assert "cannot use the peer cache" in one_line_error(result)
