# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Two nodes chatting: ``python chat.py`` waits, ``python chat.py PEER`` joins.

Every line typed on one side is one message to the other side.
"""

import sys

import trio

import qp2p_trio


async def show_messages(endpoint: qp2p_trio.Endpoint) -> None:
    # Messages from every connection arrive here, each with the sender's
    # node id, as proved in the handshake.
    async for msg in endpoint.messages():
        print(f"{msg.sender.short()}> {msg.payload.decode(errors='replace')}")


async def send_lines(conn: qp2p_trio.Connection) -> None:
    while True:
        # Reading stdin blocks, so it runs in a thread.
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:  # end of input (Ctrl-D)
            return
        await conn.send(line.rstrip("\n").encode())


async def main() -> None:
    async with qp2p_trio.open_endpoint(("127.0.0.1", 0)) as endpoint:
        if len(sys.argv) < 2:
            me = qp2p_trio.PeerAddress(endpoint.node_id, endpoint.local_address)
            print(f"waiting; on the other side run:\n  python chat.py {me}")
            conn = await endpoint.accept()
        else:
            peer = qp2p_trio.PeerAddress.parse(sys.argv[1])
            conn = await endpoint.connect(peer.address, node_id=peer.node_id)
        print(f"talking to {conn.peer_id} (identity verified); Ctrl-D to leave")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(show_messages, endpoint)

            async def watch_peer() -> None:
                closed = await conn.wait_closed()
                print(f"the peer left ({closed})")
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_peer)
            await send_lines(conn)
            nursery.cancel_scope.cancel()
    # Leaving the `async with` closes the connection gracefully.


if __name__ == "__main__":
    trio.run(main)
