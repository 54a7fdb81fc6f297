# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio netcheck`` and the reachability check: real processes on loopback.

A serving listener (``--serve-reachability``) at 127.0.0.2 has a helper, a
second serving listener at 127.0.0.3 registered with it; netcheck asks the
first to dial it back and the helper's probe proves the address reachable.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from test_cli import Listener, run

if TYPE_CHECKING:
    from pathlib import Path


def test_netcheck_reachability_verdicts(tmp_path: Path) -> None:
    server = Listener(tmp_path, "127.0.0.2:0", "--relay", "--serve-reachability", "--json")
    try:
        helper = Listener(
            tmp_path, "127.0.0.3:0", "--home-relay", server.peer, "--serve-reachability", "--json"
        )
        try:
            server.wait_event("connected")  # the helper is connected to the server
            result = run(tmp_path, "netcheck", server.peer, "--json")
            assert result.returncode == 0, result.stderr
            report = json.loads(result.stdout)
            (check,) = report["reachability"]
            assert check["reachability"] == "reachable", check
            assert check["server"] == server.peer.split("@")[0]
            (observed,) = report["external_addresses"]
            assert observed["address"] == check["address"]
            assert observed["reachability"] == "reachable"
            text = run(tmp_path, "netcheck", server.peer)
            assert text.returncode == 0, text.stderr
            assert "reachability:   127.0.0.1:" in text.stdout
            assert ": reachable (a probe with our nonce came from 127.0.0.3)" in text.stdout
        finally:
            helper.close()
    finally:
        server.close()


def test_netcheck_without_serving_peers(tmp_path: Path) -> None:
    plain = Listener(tmp_path, "127.0.0.2:0", "--json")
    try:
        result = run(tmp_path, "netcheck", plain.peer, "--json")
        assert result.returncode == 0, result.stderr
        (check,) = json.loads(result.stdout)["reachability"]
        assert check["reachability"] == "unknown"
        skipped = run(tmp_path, "netcheck", plain.peer, "--json", "--no-reachability")
        assert json.loads(skipped.stdout)["reachability"] == []
    finally:
        plain.close()
