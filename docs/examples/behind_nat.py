# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A node behind a home router: what it learns, and a port mapping that makes it reachable.

Runs on the testing kit's virtual network, in no real time: a NAT with a
NAT-PMP / PCP gateway, a node behind it, two public observers (the first
serves reachability checks, with a third public node as its dial-back helper).
"""

import trio
import trio.testing

import qp2p_trio
from qp2p_trio.testing import FakeGateway, MemoryNetwork, NatConfig


async def main() -> None:
    net = MemoryNetwork(seed=1)
    router = net.add_nat("127.203.0.1", NatConfig())  # a port-restricted cone
    gateway = FakeGateway(net, router, "127.1.0.1")  # NAT-PMP and PCP on the LAN side
    net.add_host("127.1.0.10", behind=router)
    for ip in ("127.0.2.1", "127.0.2.2", "127.0.2.3"):
        net.add_host(ip)
    config = qp2p_trio.Config(port_mapping=True, port_mapping_gateway=gateway.address)
    serving = qp2p_trio.Config(serve_reachability_checks=True)

    with net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            async with (
                qp2p_trio.open_endpoint(("127.1.0.10", 4433), config=config) as node,
                qp2p_trio.open_endpoint(("127.0.2.1", 4433), config=serving) as observer1,
                qp2p_trio.open_endpoint(("127.0.2.2", 4433)) as observer2,
                qp2p_trio.open_endpoint(("127.0.2.3", 4433), config=serving) as helper,
            ):
                await helper.connect(observer1.peer_address)  # observer1's dial-back helper
                # 1. Peers tell the node where they see it.
                for peer in (observer1, observer2):
                    await node.connect(peer.peer_address)
                await trio.sleep(1)
                for address in node.external_addresses():
                    print(f"{address.source:9} {address.address} seen by {address.observers}")
                print("NAT mapping:", node.nat_mapping().name)

                # 2. The gateway forwarded a port: a dial-back proves strangers get in.
                status = node.port_mapping()
                print("mapped by", status.protocol, "at", status.external)
                assert status.external is not None
                (check,) = await node.check_reachability(status.external)
                print("dial-back:", check.reachability.value, "-", check.detail)
                stranger = qp2p_trio.PeerAddress(node.node_id, status.external)
                conn = await observer2.connect(stranger)
                await conn.send(b"hello through the router")
                print("node got:", (await node.receive()).payload.decode())
            nursery.cancel_scope.cancel()
    print("mappings left on the router:", router.port_forwards)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
