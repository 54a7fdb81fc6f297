# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""End to end: ``qp2p-trio ca``, ``--ca``/``--cert``, ``--allow``/``--deny``, as real processes.

A CA network of three nodes on loopback, and nodes outside it refused with
exit code 11 (see test_cli.py for the process helpers).
"""

from __future__ import annotations

import json
import os
import stat
from typing import TYPE_CHECKING

import pytest
from test_cli import EXIT_FILE, EXIT_USAGE, Listener, one_line_error, run

from qp2p_trio import Identity, load_certificate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

EXIT_ENDPOINT = 10
EXIT_REFUSED = 11


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA (``netca``), members a, b, c (signed), outsider x, and a second CA's member o."""
    cwd = tmp_path_factory.mktemp("cli-ca")
    for directory in ("netca", "otherca"):
        result = run(cwd, "ca", "new", directory)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{directory}/ca.crt\n"
    for name in ("a", "b", "c", "x", "o"):
        Identity.generate().save(cwd / f"{name}.key")
    for name in ("a", "b", "c"):
        result = run(cwd, "ca", "sign", f"{name}.key", "--ca", "netca", "--days", "30")
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{name}.crt\n"
    result = run(cwd, "ca", "sign", "o.key", "--ca", "otherca", "-o", "o-signed.crt")
    assert result.returncode == 0, result.stderr
    return cwd


@pytest.fixture(scope="module")
def node_a(net: Path) -> Iterator[Listener]:
    node = Listener(net, "--identity", "a.key", "--ca", "netca/ca.crt")
    try:
        yield node
    finally:
        node.close()


def test_ca_files_and_modes(net: Path) -> None:
    assert stat.S_IMODE(os.stat(net / "netca" / "ca.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(net / "netca").st_mode) == 0o700
    assert (net / "a.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    again = run(net, "ca", "new", "netca")
    assert again.returncode == EXIT_FILE
    assert "already holds a CA key" in one_line_error(again)


def test_three_members_talk(net: Path, node_a: Listener) -> None:
    node_b = Listener(net, "--identity", "b.key", "--ca", "netca")  # a CA directory works too
    try:
        for peer in (node_a.peer, node_b.peer):
            result = run(net, "request", "--identity", "c.key", "--ca", "netca/ca.crt", peer, "hi")
            assert result.returncode == 0, result.stderr
            assert result.stdout == "hi\n"
        result = run(net, "ping", "-c", "1", "--identity", "b.key", "--ca", "netca", node_a.peer)
        assert result.returncode == 0, result.stderr
    finally:
        node_b.close()


@pytest.mark.parametrize(
    "args",
    [
        ("--identity", "x.key"),  # no node certificate
        ("--identity", "x.key", "--ca", "netca/ca.crt"),  # trusts the CA, is no member
        ("--identity", "o.key", "--cert", "o-signed.crt"),  # another network's member
        ("--identity", "b.key", "--cert", "b.crt", "--ca", "otherca"),  # a member; we refuse a
    ],
    ids=["stranger", "stranger-trusting", "other-network", "we-refuse"],
)
def test_outsiders_exit_11(net: Path, node_a: Listener, args: tuple[str, ...]) -> None:
    result = run(net, "request", *args, node_a.peer, "hi")
    assert result.returncode == EXIT_REFUSED, result.stderr
    assert "was refused" in one_line_error(result)
    if "otherca" not in args:  # node_a refused it, and says so
        node_id = run(net, "id", args[1]).stdout.strip()
        node_a.wait_for(lambda line: line.startswith(f"refused:      {node_id[:10]} from"))


def test_allow_and_deny(net: Path) -> None:
    node_id = run(net, "id", "c.key").stdout.strip()
    x_id = run(net, "id", "x.key").stdout.strip()
    node = Listener(net, "--deny", node_id)
    try:
        assert run(net, "request", "--identity", "c.key", node.peer, "hi").returncode == 11
        assert run(net, "request", "--identity", "x.key", node.peer, "hi").returncode == 0
    finally:
        node.close()
    node = Listener(net, "--allow", x_id)
    try:
        assert run(net, "request", "--identity", "c.key", node.peer, "hi").returncode == 11
        assert run(net, "request", "--identity", "x.key", node.peer, "hi").returncode == 0
    finally:
        node.close()
    bad = run(net, "listen", "--deny", "not-a-node-id")
    assert bad.returncode == EXIT_USAGE


def test_bad_files(net: Path) -> None:
    result = run(net, "listen", "--ca", "missing.crt")
    assert result.returncode == EXIT_FILE
    assert "missing.crt" in one_line_error(result)
    result = run(net, "listen", "--identity", "x.key", "--cert", "a.crt")
    assert result.returncode == EXIT_FILE
    assert "not for this identity" in one_line_error(result)
    result = run(net, "ca", "sign", "x.key", "--ca", "nowhere")
    assert result.returncode == EXIT_FILE
    assert "qp2p-trio ca new nowhere" in one_line_error(result)


def test_unwritable_keylog_is_a_configuration_error(net: Path) -> None:
    result = run(net, "listen", "--keylog", str(net / "no" / "such" / "dir" / "keys"))
    assert result.returncode == EXIT_ENDPOINT
    assert "key log file" in one_line_error(result)


def test_sign_a_bare_node_id(net: Path) -> None:
    """The CA's operator needs only the member's node id, never its key."""
    node_id = run(net, "id", "x.key").stdout.strip()
    result = run(net, "ca", "sign", node_id, "--ca", "netca", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["node_id"] == node_id
    assert info["certificate"].endswith(f"{node_id}.crt")
    cert = load_certificate(info["certificate"])
    assert f"{cert.serial_number:x}" == info["serial"]
