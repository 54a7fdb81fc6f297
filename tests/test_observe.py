# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Seeing inside: the ``qp2p_trio`` loggers, aioquic's logger, the key log and qlog files."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio
from aioquic import tls

import qp2p_trio
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

TESTS = Path(__file__).parent


async def exchange(config: qp2p_trio.Config | None = None, **server_config: Any) -> list[Any]:
    """One message and one request between two endpoints; returns [client conn, its peer]."""
    net = MemoryNetwork(seed=1)
    with net.activate():
        async with open_endpoint_factory(net, config=config) as factory:
            server_conf = qp2p_trio.Config(**server_config) if server_config else config
            server = await factory(config=server_conf)
            client = await factory()
            with trio.fail_after(5):
                conn = await client.connect(server.local_address, node_id=server.node_id)
                await conn.send(b"hello")
                msg = await server.receive()
                assert msg.payload == b"hello"
                accepted = await server.accept()
            return [conn, accepted]


# ------------------------------------------------------------------ logging
async def test_a_connection_logs_its_handshake_and_close(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="qp2p_trio")
    conn, _ = await exchange()
    records = [r for r in caplog.records if r.name.startswith("qp2p_trio")]
    text = [f"{r.name} {r.levelname} {r.getMessage()}" for r in records]
    assert any("connection DEBUG handshake started to" in t for t in text), text
    assert any("connection DEBUG handshake started from" in t for t in text), text
    established = [t for t in text if "connection INFO connection established to" in t]
    assert established, text
    assert conn.peer_id.short() in established[0]
    assert conn.core.original_destination_cid.hex() in established[0]
    assert any("ended: connection closed" in t and "code 0x0" in t for t in text), text
    assert any(t.startswith("qp2p_trio.endpoint INFO endpoint") for t in text), text
    # Normal peer behaviour never logs at WARNING.
    assert not [r for r in records if r.levelno >= logging.WARNING]


async def test_a_refused_handshake_logs_the_reason_below_warning(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="qp2p_trio")
    net = MemoryNetwork(seed=1)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory(config=qp2p_trio.Config(retry=None))
            with pytest.raises(qp2p_trio.PeerIdentityError):
                await client.connect(server.local_address, node_id=client.node_id)
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert failed, [r.getMessage() for r in caplog.records]
    assert all(r.levelno < logging.WARNING for r in caplog.records if r.name != "qp2p_trio")


async def test_retries_are_logged_with_their_delay(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="qp2p_trio.dial")
    net = MemoryNetwork(seed=1)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            client = await factory(config=qp2p_trio.Config(handshake_timeout=0.5))
            with pytest.raises(qp2p_trio.ConnectError):
                await client.connect(("127.0.0.9", 9))
    retries = [r.getMessage() for r in caplog.records if r.name == "qp2p_trio.dial"]
    assert retries
    assert "attempt 1 failed" in retries[0]
    assert "retrying in" in retries[0]


_REFUSED_CLIENT_HELLO = """
import logging, sys
sys.path.insert(0, {tests!r})
import trio
from hostile_peer import HostilePeer
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

async def main():
    net = MemoryNetwork(seed=1)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address, alpn="h3") as p:
                await p.start_handshake()
                await p.wait_for(lambda: p.close_code() is not None, limit=5)
    print("refused", p.close_code())

trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
"""


@pytest.mark.parametrize("logging_configured", [False, True])
def test_aioquic_logs_print_only_through_a_configured_handler(logging_configured: bool) -> None:
    """aioquic warns "No common ALPN protocols": silent unless the application set up logging."""
    script = "import trio.testing\n" + textwrap.dedent(_REFUSED_CLIENT_HELLO).format(
        tests=str(TESTS)
    )
    mode = "configured" if logging_configured else "unconfigured"
    result = subprocess.run(
        [sys.executable, "-c", script, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused 376"  # 0x178: no_application_protocol
    if logging_configured:
        assert "quic: " in result.stderr
        assert "No common ALPN protocols" in result.stderr
    else:
        assert result.stderr == ""


# ------------------------------------------------------------------ key log
LABELS = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
}


def keylog_lines(path: Path) -> list[tuple[str, str, str]]:
    lines = path.read_text(encoding="ascii").splitlines()
    parsed = [tuple(line.split(" ")) for line in lines]
    assert all(len(p) == 3 for p in parsed), lines
    return parsed  # type: ignore[return-value]


async def test_keylog_has_the_connections_secrets_in_nss_format(
    autojump_clock: Any, tmp_path: Path
) -> None:
    client_log, server_log = tmp_path / "client.keys", tmp_path / "server.keys"
    client_log.write_text("", encoding="ascii")  # appended to, not truncated
    conn, _ = await exchange(
        qp2p_trio.Config(keylog_file=client_log), keylog_file=os.fspath(server_log)
    )
    client, server = keylog_lines(client_log), keylog_lines(server_log)
    assert {label for label, _, _ in client} == LABELS
    random = conn.core._quic.tls.client_random.hex()  # what aioquic used
    assert {r for _, r, _ in client} == {random}
    for _, r, secret in client:
        assert len(bytes.fromhex(r)) == 32
        assert len(bytes.fromhex(secret)) in (32, 48)  # SHA-256 or SHA-384 suites
    # Both sides derived the same secrets independently: they are the real ones.
    assert sorted(client) == sorted(server)
    # The 1-RTT secrets in the file are those aioquic keys its packets with.
    own = {label: secret for label, _, secret in client}
    one_rtt = conn.core._quic._cryptos[tls.Epoch.ONE_RTT]
    assert own["CLIENT_TRAFFIC_SECRET_0"] == one_rtt.send.secret.hex()
    assert own["SERVER_TRAFFIC_SECRET_0"] == one_rtt.recv.secret.hex()


async def test_sslkeylogfile_is_used_when_config_names_no_file(
    autojump_clock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_log, own_log = tmp_path / "env.keys", tmp_path / "own.keys"
    monkeypatch.setenv("SSLKEYLOGFILE", str(env_log))
    await exchange(None, keylog_file=str(own_log))
    # The client (no keylog_file) used the environment; the server its own field.
    assert {label for label, _, _ in keylog_lines(env_log)} == LABELS
    assert sorted(keylog_lines(env_log)) == sorted(keylog_lines(own_log))


async def test_an_unwritable_keylog_fails_the_endpoint_open(tmp_path: Path) -> None:
    config = qp2p_trio.Config(keylog_file=tmp_path / "missing" / "keys")
    with pytest.raises(qp2p_trio.EndpointError, match="key log"):
        async with qp2p_trio.open_endpoint(("127.0.0.1", 0), config=config):
            pass  # pragma: no cover


def test_config_rejects_a_path_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="keylog_file"):
        qp2p_trio.Config(keylog_file=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="qlog_dir"):
        qp2p_trio.Config(qlog_dir=b"dir")  # type: ignore[arg-type]


# --------------------------------------------------------------------- qlog
async def test_qlog_writes_one_json_file_per_connection(
    autojump_clock: Any, tmp_path: Path
) -> None:
    qlog = tmp_path / "qlog"  # created by the endpoint
    conn, accepted = await exchange(qp2p_trio.Config(qlog_dir=qlog))
    odcid = conn.core.original_destination_cid.hex()
    files = sorted(p.name for p in qlog.iterdir())
    assert len(files) == 2, files
    client_file = [f for f in files if "-client-" in f]
    server_file = [f for f in files if "-server-" in f]
    assert client_file[0] == (
        f"{accepted.peer_id.short()}-client-{odcid}-{conn.peer_id.short()}.qlog"
    )
    assert server_file[0] == (
        f"{conn.peer_id.short()}-server-{odcid}-{accepted.peer_id.short()}.qlog"
    )
    for name in files:
        document = json.loads((qlog / name).read_text(encoding="utf-8"))
        (trace,) = document["traces"]
        assert trace["common_fields"]["ODCID"] == odcid
        names = {event["name"] for event in trace["events"]}
        assert {"transport:packet_sent", "transport:packet_received"} <= names
        frames = {
            frame["frame_type"]
            for event in trace["events"]
            for frame in event.get("data", {}).get("frames", [])
        }
        assert {"crypto", "stream", "connection_close"} <= frames, frames
