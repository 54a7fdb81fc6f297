# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""CPU cost of refusing one Initial (issue 10, row 6), in microseconds.

Compares, in one run: the old refusal (a throw-away aioquic server
connection runs the whole TLS flight, then closes), the new one
(`Admission.screen` answering from the Initial keys alone), a Retry, and
dropping junk (parsing a header that turns out to be garbage).

    python benchmarks/refusal_cost.py
"""

from __future__ import annotations

import itertools
import time
import timeit

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

import qp2p_trio
from qp2p_trio import Config, Identity, _quic, _quicheader
from qp2p_trio._admission import Admission
from qp2p_trio._certs import make_certificate


def main() -> None:
    cert, key = make_certificate(Identity.generate(), now=time.time())
    server_conf = _quic.build_configuration(
        Config(), is_client=False, certificate=cert, private_key=key
    )
    client = QuicConnection(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=[qp2p_trio.ALPN])
    )
    client.connect(("127.0.0.1", 4433), now=0.0)
    initial = client.datagrams_to_send(now=0.0)[0][0]
    odcid = client.original_destination_connection_id
    addr = ("127.0.0.1", 5555)

    def old_refusal() -> None:
        # What the endpoint did before: TLS flight, then CONNECTION_CLOSE.
        quic = _quic._QuicConnection(
            configuration=server_conf, original_destination_connection_id=odcid
        )
        quic.receive_datagram(initial, addr, now=0.0)
        quic.close(error_code=0x2, frame_type=0, reason_phrase="too many connections")
        quic.datagrams_to_send(now=0.0)

    refusing: Admission[object] = Admission(Config(max_connections=1))
    retrying: Admission[object] = Admission(Config(address_validation_threshold=0.0))
    junk = bytes([0xC0]) + bytes(1199)
    clock = itertools.count()  # a second apart: the answer bucket is never empty

    def later() -> float:
        return float(next(clock))

    cases = [
        ("old refusal (TLS flight + close)", old_refusal, 200),
        (
            "new refusal (Initial keys only)",
            lambda: refusing.screen(initial, addr, later(), connections=1),
            5000,
        ),
        ("Retry", lambda: retrying.screen(initial, addr, later(), connections=0), 5000),
        (
            "refusal past 1,000/s (dropped)",
            lambda: refusing.screen(initial, addr, 0.0, connections=1),
            5000,
        ),
        ("junk dropped (header parse)", lambda: _quicheader.parse_datagram_header(junk), 50000),
    ]
    for name, fn, number in cases:
        best = min(timeit.repeat(fn, number=number, repeat=5)) / number
        print(f"{name:36s} {best * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
