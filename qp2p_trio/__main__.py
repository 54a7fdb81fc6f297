# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``python -m qp2p_trio``: a small demo of two endpoints on loopback.

It needs no arguments: two nodes with fresh identities connect over real
UDP on 127.0.0.1, exchange a message, a request/response and a raw stream,
and print what happened.  Exit status 0 means every step worked.
(The full command line arrives with the CLI issue.)
"""

from __future__ import annotations

import hashlib
import sys

import trio

import qp2p_trio


async def _demo() -> None:
    config = qp2p_trio.Config(max_message_size=32 * 1024 * 1024)
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0), config=config) as alice,
        qp2p_trio.open_endpoint(("127.0.0.1", 0), config=config) as bob,
    ):
        print(f"alice  {alice.node_id}  at {alice.local_address}")
        print(f"bob    {bob.node_id}  at {bob.local_address}")

        start = trio.current_time()
        conn = await alice.connect(bob.local_address, node_id=bob.node_id)
        print(
            f"alice -> bob: connected, both identities verified "
            f"({(trio.current_time() - start) * 1000:.1f} ms)"
        )

        await conn.send(b"hello, bob")
        msg = await bob.receive()
        print(f"bob received {msg.payload!r} from {msg.sender.short()}")

        async with trio.open_nursery() as nursery:

            async def answer() -> None:
                req = await bob.receive()
                await req.reply(req.payload.upper())

            nursery.start_soon(answer)
            reply = await conn.request(b"ping")
            print(f"alice asked b'ping', bob replied {reply!r}")

        payload = bytes(range(256)) * (16 * 4096)  # 16 MiB
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.send, payload)
            big = await bob.receive()
        elapsed = trio.current_time() - start
        same = hashlib.sha256(big.payload).digest() == hashlib.sha256(payload).digest()
        print(f"16 MiB message: intact={same}, {len(payload) * 8 / elapsed / 1e6:.0f} Mbit/s")
        if not same:
            raise SystemExit("the large message arrived corrupted")

        wrong = qp2p_trio.Identity.generate().node_id
        try:
            await alice.connect(bob.local_address, node_id=wrong)
        except qp2p_trio.PeerIdentityError:
            print("connecting with the wrong node id was refused, as it must be")
        else:
            raise SystemExit("a wrong node id was accepted")

        stats = conn.statistics()
        print(
            f"connection: rtt {stats.rtt * 1000:.2f} ms, {stats.datagrams_sent} datagrams sent, "
            f"{stats.packets_lost} packets lost"
        )
    print("done: both endpoints closed gracefully")


def main() -> None:
    """Run the demo; exit non-zero with the reason if anything fails."""
    try:
        trio.run(_demo)
    except qp2p_trio.QP2PError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
