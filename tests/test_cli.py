# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""End-to-end tests of the ``qp2p-trio`` command, run as real processes on loopback.

Every command runs as ``python -m qp2p_trio ...`` in a scratch directory, so
that under nox it is the installed package that runs, not the source tree.
Processes are synchronised by the lines they print (read with bounded
waits), never by sleeping, and are killed in ``finally`` blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from qp2p_trio import Identity, NodeId, PeerAddress

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

COMMAND = [sys.executable, "-m", "qp2p_trio"]
#: Bound of any single wait; generous because other suites may load the machine.
WAIT = 60.0

EXIT_USAGE = 2
EXIT_BAD_PEER = 3
EXIT_FILE = 4
EXIT_PEER_IDENTITY = 5
EXIT_UNREACHABLE = 6
EXIT_TOO_LARGE = 7
EXIT_PEER_FAILED = 8


def run(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command to completion (bounded) and return its result."""
    result = subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed run."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qp2p-trio"), lines[0]
    return lines[0]


class Process:
    """A running command whose stdout lines are read by a thread, for bounded waits."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.stderr_path = cwd / f"stderr-{os.getpid()}-{id(self)}.txt"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [*COMMAND, *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        """Return the next stdout line matching ``predicate``; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"the process ended; stdout: {self.seen}; {self.stderr()}")
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no matching line within {timeout} s; stdout so far: {self.seen}")

    def wait_event(self, event: str, timeout: float = WAIT) -> dict[str, Any]:
        """For ``--json`` listeners: the next event of that kind."""
        line = self.wait_for(lambda text: json.loads(text).get("event") == event, timeout)
        result: dict[str, Any] = json.loads(line)
        return result

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text()

    def finish(self, timeout: float = WAIT) -> int:
        """Wait for the exit status (bounded) and the rest of stdout."""
        code = self.proc.wait(timeout=timeout)
        self._thread.join(timeout=timeout)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return code

    def close(self) -> None:
        """Kill the process if it still runs, and release everything."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT)
        self._thread.join(timeout=WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


class Listener(Process):
    """``qp2p-trio listen``, started and waited for until it prints its peer address."""

    def __init__(self, cwd: Path, *args: str) -> None:
        super().__init__(cwd, "listen", *args)
        try:
            json_mode = "--json" in args
            if json_mode:
                self.peer = self.wait_event("listening")["peer_address"]
            else:
                line = self.wait_for(lambda text: "peer address:" in text)
                self.peer = line.split("peer address:", 1)[1].strip()
        except BaseException:
            self.close()
            raise


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def listener(workdir: Path) -> Iterator[Listener]:
    """One listener for the module: a saved identity, files saved in ``received/``."""
    key = workdir / "listener.key"
    Identity.generate().save(key)
    (workdir / "received").mkdir()
    node = Listener(workdir, "--identity", str(key), "--save-dir", "received")
    try:
        yield node
    finally:
        node.close()


@pytest.fixture(scope="module")
def strict_listener(workdir: Path) -> Iterator[Listener]:
    """A listener that accepts 1000-byte messages at most and rejects requests."""
    node = Listener(
        workdir,
        "--max-message-size",
        "1000",
        "--max-file-size",
        "1000",
        "--reply",
        "reject",
        "--json",
    )
    try:
        yield node
    finally:
        node.close()


# --------------------------------------------------------------------- help


def test_help_documents_every_exit_code(tmp_path: Path) -> None:
    result = run(tmp_path, "--help")
    assert result.returncode == 0
    assert "exit codes:" in result.stdout
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 130):
        assert f"\n  {code:<4} " in result.stdout
    for command in ("demo", "id", "listen", "send", "request", "ping", "bench", "ca"):
        assert command in result.stdout
    version = run(tmp_path, "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("qp2p-trio ")


def test_usage_error_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "ping")
    assert result.returncode == EXIT_USAGE
    assert "PEER" in one_line_error(result)
    result = run(tmp_path, "ping", "x@127.0.0.1:1", "-c", "many")
    assert result.returncode == EXIT_USAGE
    one_line_error(result)


# ----------------------------------------------------------------------- id


def test_id_create_then_show(tmp_path: Path) -> None:
    created = run(tmp_path, "id", "--new", "node.key")
    assert created.returncode == 0, created.stderr
    node_id = NodeId.parse(created.stdout.strip())
    assert created.stdout == f"{node_id}\n"
    assert stat.S_IMODE((tmp_path / "node.key").stat().st_mode) == 0o600
    assert Identity.load(tmp_path / "node.key").node_id == node_id

    shown = run(tmp_path, "id", "node.key")
    assert shown.returncode == 0
    assert shown.stdout == f"{node_id}\n"
    assert shown.stderr == ""

    as_json = run(tmp_path, "id", "--json", "node.key")
    info = json.loads(as_json.stdout)
    assert info["node_id"] == str(node_id)
    assert info["node_id_hex"] == node_id.raw.hex()
    assert info["created"] is False
    assert info["mode"] == "0600"


def test_id_never_replaces_without_force(tmp_path: Path) -> None:
    first = run(tmp_path, "id", "--new", "node.key").stdout.strip()
    again = run(tmp_path, "id", "--new", "node.key")
    assert again.returncode == EXIT_FILE
    assert "already exists" in one_line_error(again)
    assert run(tmp_path, "id", "node.key").stdout.strip() == first
    forced = run(tmp_path, "id", "--new", "--force", "--json", "node.key")
    assert forced.returncode == 0
    assert json.loads(forced.stdout)["node_id"] != first


def test_id_warns_about_readable_key(tmp_path: Path) -> None:
    run(tmp_path, "id", "--new", "node.key")
    os.chmod(tmp_path / "node.key", 0o644)
    shown = run(tmp_path, "id", "node.key")
    assert shown.returncode == 0
    assert "chmod 600" in shown.stderr


@pytest.mark.parametrize("content", [None, b"not a key\n", b""])
def test_id_bad_file(tmp_path: Path, content: bytes | None) -> None:
    if content is not None:
        (tmp_path / "node.key").write_bytes(content)
    result = run(tmp_path, "id", "node.key")
    assert result.returncode == EXIT_FILE
    one_line_error(result)


# ------------------------------------------------------------------- listen


def test_listener_keeps_its_identity(listener: Listener, workdir: Path) -> None:
    peer = PeerAddress.parse(listener.peer)
    assert peer.node_id == Identity.load(workdir / "listener.key").node_id
    assert peer.host == "127.0.0.1"


def test_send_text(listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "send", listener.peer, "hello, listener")
    assert result.returncode == 0, result.stderr
    assert "sent 15 bytes" in result.stdout
    line = listener.wait_for(lambda text: text.startswith("message:"))
    assert "'hello, listener'" in line
    assert "--json" not in line


def test_send_json_and_stdin(listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "send", "--json", listener.peer, "-", stdin=b"from stdin")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["bytes"] == 10
    assert info["peer"] == listener.peer
    assert "'from stdin'" in listener.wait_for(lambda text: text.startswith("message:"))


def test_request_prints_reply(listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "request", listener.peer, "echo me")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo me\n"
    line = listener.wait_for(lambda text: text.startswith("request:"))
    assert "'echo me'" in line
    assert "answered (echo)" in line


def test_request_json(listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "request", "--json", listener.peer, "héllo")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["reply"] == "héllo"
    assert info["bytes"] == len("héllo".encode())
    assert info["rtt_ms"] > 0
    assert info["handshake_ms"] > 0


def test_send_file_is_verified_and_saved(listener: Listener, workdir: Path, tmp_path: Path) -> None:
    content = os.urandom(300_000)
    (tmp_path / "data.bin").write_bytes(content)
    result = run(tmp_path, "send", "--json", "--progress", listener.peer, "--file", "data.bin")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    digest = hashlib.sha256(content).hexdigest()
    assert info["verified"] is True
    assert info["sha256"] == info["peer_sha256"] == digest
    assert info["bytes"] == len(content)
    assert "100%" in result.stderr  # the progress bar
    line = listener.wait_for(lambda text: text.startswith("file:"))
    assert "'data.bin'" in line
    assert digest[:16] in line
    saved = line.split("saved to ", 1)[1].strip()
    assert (workdir / saved).read_bytes() == content


def test_send_file_larger_than_messages_is_streamed_to_a_new_dir(
    workdir: Path, tmp_path: Path
) -> None:
    node = Listener(workdir, "--max-message-size", "64KiB", "--save-dir", "new/sub", "--json")
    try:
        content = os.urandom(3 * 1024 * 1024 + 7)
        (tmp_path / "big.bin").write_bytes(content)
        result = run(tmp_path, "send", "--json", node.peer, "--file", "big.bin")
        assert result.returncode == 0, result.stderr
        info = json.loads(result.stdout)
        digest = hashlib.sha256(content).hexdigest()
        assert info["verified"] is True
        assert info["peer_sha256"] == digest
        event = node.wait_event("file")
        assert event["bytes"] == len(content)
        assert event["sha256"] == digest
        assert (workdir / event["saved"]).read_bytes() == content
        assert (workdir / "new" / "sub").is_dir()
    finally:
        node.close()


def test_json_failure_is_a_json_object(tmp_path: Path) -> None:
    peer = f"{Identity.generate().node_id}@127.0.0.1:9"
    result = run(tmp_path, "send", "--json", "--timeout", "1", peer, "x")
    assert result.returncode == EXIT_UNREACHABLE
    info = json.loads(result.stdout)
    assert info["exit_code"] == EXIT_UNREACHABLE
    assert info["kind"] == "unreachable"
    assert "127.0.0.1:9" in info["error"]
    one_line_error(result)  # and the usual line on stderr


def test_subcommand_help_is_short(tmp_path: Path) -> None:
    result = run(tmp_path, "send", "--help")
    assert result.returncode == 0
    assert "PEER is a peer address" in result.stdout
    assert "exit codes:" not in result.stdout
    assert "qp2p-trio --help" in result.stdout


def test_ping(listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "ping", listener.peer, "-c", "3", "-i", "0.05")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "handshake:" in out
    for seq in (1, 2, 3):
        assert f"seq={seq} time=" in out
    assert "3 probes sent, 3 replies, 0% lost" in out
    assert "rtt min/avg/max/mdev" in out


def test_ping_json(listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "ping", "--json", "-c", "2", "-i", "0", listener.peer)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["sent"] == info["received"] == 2
    assert info["loss_percent"] == 0
    assert [r["seq"] for r in info["rounds"]] == [1, 2]
    assert 0 < info["min_ms"] <= info["avg_ms"] <= info["max_ms"]


def test_ping_until_interrupted(listener: Listener, tmp_path: Path) -> None:
    ping = Process(tmp_path, "ping", "-c", "0", "-i", "0.02", listener.peer)
    try:
        ping.wait_for(lambda text: "seq=2 " in text)
        ping.proc.send_signal(signal.SIGINT)
        # The summary, then the exit code of an interrupt (as --help says).
        assert ping.finish() == 130, ping.stderr()
        assert any("ping statistics" in line for line in ping.seen)
    finally:
        ping.close()


def test_bench_against_listener(listener: Listener, tmp_path: Path) -> None:
    result = run(
        tmp_path,
        *("bench", "--json", listener.peer, "--rounds", "5"),
        *("--size", "256KiB", "--message-size", "64KiB", "--parallel", "2"),
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["mode"] == "remote"
    assert info["peer"] == listener.peer
    assert info["latency"]["rounds"] == 5
    assert info["throughput"]["messages"] == 4
    assert info["throughput"]["bytes_per_second"] > 0


def test_bench_local(tmp_path: Path) -> None:
    result = run(tmp_path, "bench", "--rounds", "3", "--size", "128KiB", "--message-size", "32KiB")
    assert result.returncode == 0, result.stderr
    assert "two endpoints on 127.0.0.1 in this process" in result.stdout
    assert "latency:" in result.stdout
    assert "throughput:" in result.stdout


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("command", "peer"),
    [
        (["send"], "nonsense"),
        (["request"], "abc@127.0.0.1:1"),
        (["ping"], "{id}@127.0.0.1"),
        (["bench"], "{id}@::1:4433"),
        (["send", "--file", "x"], "{id}@127.0.0.1:99999"),
    ],
)
def test_malformed_peer(tmp_path: Path, command: list[str], peer: str) -> None:
    text = peer.format(id=Identity.generate().node_id)
    args = [*command, text]
    if command in (["send"], ["request"]):
        args.append("hello")
    result = run(tmp_path, *args)
    assert result.returncode == EXIT_BAD_PEER, (args, result.stderr)
    assert "invalid peer address" in one_line_error(result)


def test_wrong_node_id(listener: Listener, tmp_path: Path) -> None:
    real = PeerAddress.parse(listener.peer)
    impostor = PeerAddress(Identity.generate().node_id, real.address)
    result = run(tmp_path, "request", str(impostor), "hello")
    assert result.returncode == EXIT_PEER_IDENTITY
    line = one_line_error(result)
    assert str(real.node_id) in line
    assert str(impostor.node_id) in line


def test_unreachable_after_bounded_wait(tmp_path: Path) -> None:
    # A bound socket that never answers: the handshake cannot complete.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        peer = PeerAddress(Identity.generate().node_id, silent.getsockname())
        start = time.monotonic()
        result = run(tmp_path, "ping", "--timeout", "0.5", str(peer))
        assert time.monotonic() - start < WAIT
    assert result.returncode == EXIT_UNREACHABLE
    assert "no handshake" in one_line_error(result)


def test_missing_file(listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "send", listener.peer, "--file", "missing.bin")
    assert result.returncode == EXIT_FILE
    assert "missing.bin" in one_line_error(result)


def test_missing_identity(listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "ping", "--identity", "missing.key", listener.peer)
    assert result.returncode == EXIT_FILE
    assert "qp2p-trio id --new missing.key" in one_line_error(result)


def test_message_too_large(strict_listener: Listener, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(bytes(5000))
    result = run(tmp_path, "send", strict_listener.peer, "--file", "big.bin")
    assert result.returncode == EXIT_TOO_LARGE
    assert "too large" in one_line_error(result)
    for command in ("request", "send"):
        result = run(tmp_path, command, strict_listener.peer, "x" * 5000)
        assert result.returncode == EXIT_TOO_LARGE, result.stderr
        one_line_error(result)


def test_rejected_request(strict_listener: Listener, tmp_path: Path) -> None:
    result = run(tmp_path, "request", strict_listener.peer, "please")
    assert result.returncode == EXIT_PEER_FAILED
    one_line_error(result)
    event = strict_listener.wait_event("request")
    assert event["answer"] == "reject"
    assert event["text"] == "please"


def test_send_and_file_need_exactly_one(listener: Listener, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    for args in (["send", listener.peer], ["send", listener.peer, "text", "--file", "f"]):
        result = run(tmp_path, *args)
        assert result.returncode == EXIT_USAGE
        one_line_error(result)


def test_listen_bad_address_and_busy_port(tmp_path: Path) -> None:
    result = run(tmp_path, "listen", "localhost:4433")
    assert result.returncode == EXIT_USAGE
    one_line_error(result)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run(tmp_path, "listen", f"127.0.0.1:{port}")
    assert result.returncode == 10
    one_line_error(result)


# ---------------------------------------------------------- clean shutdown


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_listener_stops_cleanly_closing_connections(tmp_path: Path, signum: int) -> None:
    node = Listener(tmp_path, "--json")
    ping = Process(tmp_path, "ping", "-c", "0", "-i", "0.05", node.peer)
    try:
        node.wait_event("connected")
        ping.wait_for(lambda text: "seq=1 " in text)
        node.proc.send_signal(signum)
        stopping = node.wait_event("stopping")
        assert stopping["connections"] >= 1
        assert stopping["signal"] == signal.Signals(signum).name
        node.wait_event("stopped")
        assert node.finish() == 0, node.stderr()
        # The peer learns at once that the connection was closed (no idle timeout).
        assert ping.finish() == EXIT_PEER_FAILED
        error = ping.stderr().strip()
        assert "closed" in error, error
        assert "timed out" not in error, error
    finally:
        ping.close()
        node.close()


# --------------------------------------------------------------------- demo


def test_demo_small(tmp_path: Path) -> None:
    result = run(tmp_path, "demo", "--transfer-size", "256KiB")
    assert result.returncode == 0, result.stderr
    assert "every step worked" in result.stdout
    assert "PeerIdentityError" in result.stdout
    # The step across NATs (virtual network): relayed first, then direct, nothing lost.
    assert "Across NATs: through a relay, a hole punched, then direct" in result.stdout
    assert "through the relay: connected in " in result.stdout
    assert "path relayed, request round trip " in result.stdout
    assert re.search(r"direct after [\d.]+ ms, request round trip now", result.stdout)
    assert re.search(r"\(\d+ relayed, \d+ direct\): all arrived, exactly once", result.stdout)


@pytest.mark.slow
def test_demo_default_no_arguments(tmp_path: Path) -> None:
    """``python -m qp2p_trio`` with no arguments runs the full demo and exits 0."""
    result = subprocess.run(
        COMMAND, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "[1/" in out
    assert "every step worked" in out
    assert "50.0 MiB" in out
    assert "intact" in out
    assert "Statistics" in out


# ---------------------------------------------------------------- debugging
def test_debugging_switches_log_keylog_and_qlog(tmp_path: Path) -> None:
    node = Listener(tmp_path, "-v", "--keylog", "listen.keys")
    try:
        result = run(
            tmp_path, "request", "-vv", "--keylog", "client.keys", "--qlog", "qlog", node.peer, "hi"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "hi\n"
        assert "qp2p_trio.connection DEBUG: handshake started to" in result.stderr
        assert "qp2p_trio.connection INFO: connection established to" in result.stderr
        labels = {line.split(" ")[0] for line in (tmp_path / "client.keys").read_text().split("\n")}
        assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"} <= labels
        (qlog,) = (tmp_path / "qlog").iterdir()
        assert "-client-" in qlog.name
        assert json.loads(qlog.read_text())["traces"][0]["events"]
        deadline = time.monotonic() + WAIT
        while "connection INFO: connection established from" not in node.stderr():
            assert time.monotonic() < deadline, node.stderr()
            time.sleep(0.05)
        assert "DEBUG" not in node.stderr()  # -v: INFO and above
        server_keys = (tmp_path / "listen.keys").read_text().split("\n")
        assert set(server_keys) == set((tmp_path / "client.keys").read_text().split("\n"))
    finally:
        node.close()


def test_netcheck_reports_how_two_peers_see_us(listener: Listener, tmp_path: Path) -> None:
    """Two listeners at distinct loopback IPs tell the address they see us at."""
    other = Listener(tmp_path, "127.0.0.2:0", "--json")
    try:
        result = run(tmp_path, "netcheck", listener.peer, other.peer, "--json")
    finally:
        other.close()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [p["reached"] for p in report["peers"]] == [True, True]
    (observed,) = [a for a in report["external_addresses"] if a["source"] == "observed"]
    assert observed["observers"] == 2  # one per observer IP
    assert observed["address"].startswith("127.0.0.")
    # Bound to the wildcard, its own address is unknown: one address seen by
    # both is what an endpoint-independent mapping looks like (documented).
    assert report["nat_mapping"] == "endpoint_independent"


def test_netcheck_unreachable_peer(tmp_path: Path) -> None:
    stranger = Identity.generate().node_id
    result = run(tmp_path, "netcheck", f"{stranger}@127.0.0.1:9", "--timeout", "0.5")
    assert result.returncode == 6, result.stderr  # unreachable
