# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Real networks: nft NAT routers and a real miniupnpd in network namespaces (root only).

The topology is `netns.Topology` (a cone NAT, a symmetric NAT, a public
namespace with two addresses).  The library runs for real, over real UDP,
as subprocesses in the namespaces: the CLI's ``listen`` as public observers
and as a mapped node, ``netcheck`` behind each NAT, ``ping`` from outside,
and the port mapping client against miniupnpd (NAT-PMP, PCP, UPnP-IGD).
Every namespace and process is removed afterwards, also on failure.  Skipped
with the reason when not root or a tool is missing (``.ci/run`` installs
them: CI runs these).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from netns import (
    MINIUPNPD_CONF,
    STUN_SERVER,
    Topology,
    miniupnpd,
    missing_tools,
    read_line,
    topology,
)

from qp2p_trio import Identity

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_why = missing_tools()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")
CLI = [sys.executable, "-m", "qp2p_trio"]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("netns")


@pytest.fixture(scope="module")
def topo(state: Path) -> Iterator[Topology]:
    with topology(str(state)) as built:
        yield built


@pytest.fixture(scope="module")
def observers(topo: Topology, state: Path) -> list[str]:
    """Two public observers (``listen``) at 10.99.0.1 and 10.99.0.2: their peer addresses."""
    peers = []
    for i, ip in enumerate(("10.99.0.1", "10.99.0.2")):
        identity = Identity.generate()
        path = state / f"observer{i}.key"
        identity.save(str(path))
        proc = topo.spawn("pub", *CLI, "listen", f"{ip}:7000", "--identity", str(path), "--json")
        read_line(proc, '"listening"', 15)
        peers.append(f"{identity.node_id}@{ip}:7000")
    return peers


def netcheck(topo: Topology, ns: str, peers: list[str], *extra: str) -> dict[str, object]:
    proc = topo.spawn(ns, *CLI, "netcheck", *peers, "--json", "--timeout", "10", *extra, limit=30)
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err.decode()
    report: dict[str, object] = json.loads(out)
    return report


def test_cone_and_symmetric_nats_learned_from_two_observers(
    topo: Topology, observers: list[str]
) -> None:
    cone = netcheck(topo, "a", observers)
    symmetric = netcheck(topo, "b", observers)
    assert cone["nat_mapping"] == "endpoint_independent"
    seen = cone["external_addresses"]
    assert isinstance(seen, list)
    assert [a["address"].rsplit(":", 1)[0] for a in seen] == ["10.99.0.11"]
    assert seen[0]["observers"] == 2
    assert symmetric["nat_mapping"] == "address_dependent"
    seen = symmetric["external_addresses"]
    assert isinstance(seen, list)
    assert {a["address"].rsplit(":", 1)[0] for a in seen} == {"10.99.0.12"}
    assert len(seen) == 2  # one public port per observer


@pytest.fixture(scope="module")
def gateway(topo: Topology, state: Path) -> Iterator[Topology]:
    """miniupnpd (nftables) on the cone router n1, with its STUN self-check answered."""
    binary = miniupnpd()
    if binary is None:
        pytest.skip("needs miniupnpd (apt-get install miniupnpd)")
    stun = topo.spawn("pub", sys.executable, "-c", STUN_SERVER, "10.99.0.1", "3478", "110")
    read_line(stun, "stun ready", 10)
    conf = state / "miniupnpd.conf"
    conf.write_text(MINIUPNPD_CONF.format(state=state))
    proc = topo.spawn("n1", binary, "-f", str(conf), "-d", "-P", str(state / "miniupnpd.pid"))
    read_line(proc, "Listening for NAT-PMP/PCP", 20, stderr=True)
    yield topo
    proc.terminate()
    proc.wait(timeout=10)


def forwarded(topo: Topology) -> str:
    """miniupnpd's DNAT rules on n1."""
    return topo.run("nft", "list", "chain", "inet", "qt", "prerouting_miniupnpd", ns="n1")


def test_netcheck_reports_the_gateways_protocols(gateway: Topology, observers: list[str]) -> None:
    report = netcheck(gateway, "a", observers, "--port-mapping")
    mapping = report["port_mapping"]
    assert isinstance(mapping, dict)
    assert mapping["gateway"] == "192.168.1.1"
    assert sorted(mapping["answered"]) == ["natpmp", "pcp", "upnp"]
    ips = {p["protocol"]: p["external_ip"] for p in mapping["probes"]}
    assert ips["natpmp"] == ips["upnp"] == "10.99.0.11"


MAP_ONE = r"""
import sys, trio
from qp2p_trio._portmap_io import PortMapper
async def main(protocol, port):
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("0.0.0.0", port))
    mapper = PortMapper(None, ("0.0.0.0", port), 600)
    with trio.fail_after(60):
        await mapper.probe()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mapper.keep, protocol)
            while mapper.lease is None:
                await trio.sleep(0.02)
            print("LEASE", *mapper.lease.external, mapper.lease.protocol, flush=True)
            data, addr = await sock.recvfrom(100)
            print("GOT", data.decode(), addr[0], flush=True)
            await mapper.aclose(5)
            print("CLOSED", flush=True)
            nursery.cancel_scope.cancel()
trio.run(main, sys.argv[1], int(sys.argv[2]))
"""

SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(20):
    s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.1)
"""


@pytest.mark.parametrize(("protocol", "port"), [("pcp", 6101), ("natpmp", 6102), ("upnp", 6103)])
def test_each_protocol_maps_a_reachable_port_and_deletes_it(
    gateway: Topology, protocol: str, port: int
) -> None:
    proc = gateway.spawn("a", sys.executable, "-c", MAP_ONE, protocol, str(port), limit=60)
    lease = read_line(proc, "LEASE", 20).split()
    ip, external, used = lease[1], lease[2], lease[3]
    assert (ip, used) == ("10.99.0.11", protocol)
    assert f"dport {external} dnat ip to 192.168.1.10:{port}" in forwarded(gateway)
    sender = gateway.spawn("pub", sys.executable, "-c", SEND, ip, external, limit=10)
    got = read_line(proc, "GOT", 10).split()
    assert got[1:] == ["hello", "10.99.0.1"]  # from outside, through the mapping
    read_line(proc, "CLOSED", 10)
    assert proc.wait(timeout=10) == 0
    sender.kill()
    assert f"dport {external} " not in forwarded(gateway)


def test_listening_node_is_reachable_at_its_mapped_address(gateway: Topology, state: Path) -> None:
    identity = Identity.generate()
    path = state / "mapped.key"
    identity.save(str(path))
    # Without a mapping the cone NAT drops strangers: the control.
    plain = gateway.spawn("a", *CLI, "listen", "0.0.0.0:6300", "--identity", str(path), "--json")
    read_line(plain, '"listening"', 15)
    ping = gateway.spawn("pub", *CLI, "ping", f"{identity.node_id}@10.99.0.11:6300", "-c", "1",
                         "--json", "--timeout", "1.5", limit=30)  # fmt: skip
    ping.communicate(timeout=40)
    assert ping.returncode == 6  # unreachable
    plain.send_signal(signal.SIGTERM)
    plain.wait(timeout=15)
    node = gateway.spawn(
        "a", *CLI, "listen", "0.0.0.0:6200", "--identity", str(path), "--port-mapping", "--json"
    )
    event = json.loads(read_line(node, '"mapped"', 20))
    address = event["address"]
    assert re.fullmatch(r"10\.99\.0\.11:\d+", address), event
    assert "dnat ip to 192.168.1.10:6200" in forwarded(gateway)
    ping = gateway.spawn("pub", *CLI, "ping", f"{identity.node_id}@{address}", "-c", "2",
                         "-i", "0.2", "--json", "--timeout", "10", limit=30)  # fmt: skip
    out, err = ping.communicate(timeout=40)
    assert ping.returncode == 0, err.decode()
    assert json.loads(out)["received"] == 2
    node.send_signal(signal.SIGTERM)
    node.wait(timeout=15)
    assert "192.168.1.10:6200" not in forwarded(gateway)  # deleted on close


REACH_CHECK = r"""
import json, sys, trio, qp2p_trio
async def main(server, port, mapping):
    config = qp2p_trio.Config(port_mapping=mapping == "map")
    async with qp2p_trio.open_endpoint(("0.0.0.0", port), config=config) as ep:
        with trio.fail_after(60):
            await ep.connect(server)
            while not any(a.source != "local" for a in ep.external_addresses()):
                await trio.sleep(0.02)  # the observed (and the mapped) address
            if mapping == "map":
                while ep.port_mapping().external is None:
                    await trio.sleep(0.02)
            results = await ep.check_reachability()
        mapped = ep.port_mapping().external
        print(json.dumps({
            "mapped": None if mapped is None else "%s:%d" % mapped,
            "results": {"%s:%d" % r.address: [r.reachability.value, r.detail] for r in results},
        }), flush=True)
trio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3])
"""


@pytest.fixture(scope="module")
def reach_server(topo: Topology, state: Path) -> str:
    """A server of reachability checks at 10.99.0.1 with a helper at 10.99.0.2: its address."""
    identity = Identity.generate()
    path = state / "reach.key"
    identity.save(str(path))
    server = topo.spawn("pub", *CLI, "listen", "10.99.0.1:7100", "--identity", str(path),
                        "--relay", "--serve-reachability", "--json")  # fmt: skip
    read_line(server, '"listening"', 15)
    peer = f"{identity.node_id}@10.99.0.1:7100"
    helper = topo.spawn("pub", *CLI, "listen", "10.99.0.2:7100", "--home-relay", peer,
                        "--serve-reachability", "--json")  # fmt: skip
    read_line(helper, '"listening"', 15)
    read_line(server, '"connected"', 15)  # the helper is connected to the server
    return peer


def reach_check(topo: Topology, server: str, port: int, mapping: str) -> dict[str, Any]:
    proc = topo.spawn("a", sys.executable, "-c", REACH_CHECK, server, str(port), mapping, limit=60)
    out, err = proc.communicate(timeout=70)
    assert proc.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    return report


def test_dial_back_proves_the_mapped_address_reachable(
    gateway: Topology, reach_server: str
) -> None:
    """Behind the cone NAT (port-restricted): unreachable, until miniupnpd maps the port."""
    plain = reach_check(gateway, reach_server, 6400, "none")
    assert plain["mapped"] is None
    assert [v[0] for v in plain["results"].values()] == ["unreachable"], plain
    (address,) = plain["results"]
    assert address.startswith("10.99.0.11:")
    mapped = reach_check(gateway, reach_server, 6500, "map")
    assert mapped["mapped"] is not None
    verdict, detail = mapped["results"][mapped["mapped"]]
    assert verdict == "reachable", mapped
    assert detail == "a probe with our nonce came from 10.99.0.2"  # the helper
    assert "192.168.1.10:6500" not in forwarded(gateway)  # deleted on close


def test_cleanup_leaves_nothing(state: Path) -> None:
    """A topology removes its namespaces and processes, also when the body fails."""
    made: list[Topology] = []

    def fail_inside() -> None:
        with topology(str(state / "x")) as topo:
            made.append(topo)
            topo.spawn("a", "sleep", "100")
            raise RuntimeError("on purpose")

    with pytest.raises(RuntimeError, match="on purpose"):
        fail_inside()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, check=True).stdout
    assert made[0].prefix.encode() not in listed
    assert made[0].namespaces == []
    assert all(p.poll() is not None for p in made[0].processes)


def test_path_mtu_discovery_in_a_namespace_pair_reaches_ethernet_size() -> None:
    """Two namespaces, a veth pair of MTU 1500: discovery reaches 1472 (1500 - IPv4 - UDP).

    Runs ``benchmarks/netns_bulk.py`` small (4 MiB, once with discovery on,
    once off): real UDP through the kernel, with the don't-fragment bit set,
    so a probe above 1472 bytes fails at the sender (EMSGSIZE) instead of
    leaving in fragments.  The script removes its namespaces itself.
    """
    import pathlib

    script = pathlib.Path(__file__).parent.parent / "benchmarks" / "netns_bulk.py"
    done = subprocess.run(
        [sys.executable, str(script), "--mib", "4", "--pairs", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["on"]["path_mtu"] == [1472]
    assert report["off"]["path_mtu"] == [1200]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, check=True).stdout
    assert b"qpb" not in listed
