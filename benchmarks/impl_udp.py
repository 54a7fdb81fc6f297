# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The raw UDP ceiling: blocking sockets, one process each side, no event loop.

The sender writes ``count`` datagrams of ``size`` bytes as fast as one
Python loop can; the receiver counts them until it has them all or the line
has been quiet for a while (loopback drops what overflows the receive buffer).
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

from bench_common import emit, snapshot

_BUFFER = 4 * 1024 * 1024
_QUIET = 1.0


def server(params: dict[str, Any]) -> None:
    count = params["count"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
    sock.bind(("127.0.0.1", 0))
    emit({"ready": {"host": "127.0.0.1", "port": sock.getsockname()[1], "node_id": ""}})
    received = 0
    nbytes = 0
    t_first = t_last = None
    deadline = time.monotonic() + params["timeout"]
    sock.settimeout(_QUIET)
    while received < count and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            if received:
                break
            continue
        t_last = time.monotonic()
        if t_first is None:
            t_first = t_last
        received += 1
        nbytes += len(data)
    sock.close()
    # Wait for the runner's "stop" (or EOF) so the result comes after the client's.
    sys.stdin.readline()
    emit(
        {
            "result": {
                "received": received,
                "received_bytes": nbytes,
                "t_first": t_first,
                "t_all": t_last,
                **snapshot(),
            }
        }
    )


def client(params: dict[str, Any], peer: dict[str, Any]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
    sock.connect((peer["host"], int(peer["port"])))
    payload = b"\x01" * params["size"]
    send = sock.send
    sent = 0
    t0 = time.monotonic()
    for _ in range(params["count"]):
        try:
            send(payload)
            sent += 1
        except OSError:  # ENOBUFS, or ECONNREFUSED from an earlier datagram
            pass
    t_sent = time.monotonic()
    sock.close()
    emit({"result": {"t0": t0, "t_sent": t_sent, "sent": sent, **snapshot()}})


def main(role: str, workload: str, params: dict[str, Any], peer: dict[str, Any] | None) -> None:
    if role == "server":
        server(params)
    else:
        assert peer is not None
        client(params, peer)
