# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio netcheck PEER [PEER ...]``: how the peers see this machine.

Connects to every PEER at once, waits (bounded) for each to report the
address it sees us at (the OBSERVED_ADDRESS control record), and prints
this endpoint's external addresses and the NAT mapping they imply.  Then
it asks the peers to dial each address back (`Endpoint.check_reachability`;
only peers serving checks answer) and prints the verdicts, unless
``--no-reachability``.  With ``--port-mapping`` it also probes the gateway
for NAT-PMP, PCP and UPnP-IGD (mapping nothing) and prints which answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio

from qp2p_trio import QP2PError, open_endpoint

from .client import bind_address_for, config_for, load_identity, parse_peer
from .errors import ExitCode
from .options import client_options, ipv4
from .output import format_address, print_json

if TYPE_CHECKING:
    import argparse

    from qp2p_trio import Endpoint, PeerAddress, PortMappingStatus, ReachabilityResult

    from .options import Commands

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    """Add the ``netcheck`` subcommand."""
    parser = commands.add(
        "netcheck",
        "how peers see this machine: external addresses, NAT mapping, reachability",
        "Connect to every PEER at once and print the addresses they see this "
        "machine at, and the NAT mapping that implies (two or more peers at "
        "different IP addresses are needed for a verdict); then ask them to dial "
        "each address back (peers started with --serve-reachability answer) and "
        "print whether strangers can reach it: reachable, unreachable or unknown.",
        run,
    )
    parser.add_argument("peers", metavar="PEER", nargs="+", help="peer addresses")
    parser.add_argument(
        "--port-mapping",
        action="store_true",
        help="also ask the gateway which of NAT-PMP, PCP and UPnP-IGD it speaks "
        "(harmless requests: nothing is mapped; up to 2 s)",
    )
    parser.add_argument(
        "--gateway",
        type=ipv4,
        metavar="IP",
        help="with --port-mapping: the gateway's IPv4 address (default: the default route's)",
    )
    parser.add_argument(
        "--no-reachability",
        action="store_true",
        help="do not ask the peers to dial this machine back",
    )
    client_options(parser)


async def run(args: argparse.Namespace) -> int:
    """``qp2p-trio netcheck PEER [PEER ...]``: exit 0 if any peer answered."""
    peers = [parse_peer(text) for text in args.peers]
    identity = load_identity(args.identity)
    config = attrs.evolve(
        config_for(args.max_message_size, args, identity), port_mapping_gateway=args.gateway
    )
    bind = bind_address_for(peers[0].address or ("0.0.0.0", 0))
    async with open_endpoint(bind, identity=identity, config=config) as ep:
        results: dict[str, str | None] = {}
        probes: list[PortMappingStatus] = []
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(_dial, ep, peer, args.timeout, results)
            if args.port_mapping:
                nursery.start_soon(_probe, ep, probes)
        reached = sum(error is None for error in results.values())
        await _wait_for_reports(ep, reached, min(args.timeout, 5.0))
        checks: list[ReachabilityResult] = []
        if reached and not args.no_reachability:
            with trio.move_on_after(max(args.timeout, 10.0)):
                checks = await ep.check_reachability()
        report = _report(ep, peers, results)
        report["reachability"] = [
            {
                "address": format_address(c.address),
                "reachability": c.reachability.value,
                "server": None if c.server is None else str(c.server),
                "detail": c.detail,
            }
            for c in checks
        ]
        if probes:
            report["port_mapping"] = _port_mapping(probes[0])
    if args.json:
        print_json(report)
    else:
        _print(report)
    return ExitCode.OK if reached else ExitCode.UNREACHABLE


async def _dial(
    ep: Endpoint, peer: PeerAddress, seconds: float, out: dict[str, str | None]
) -> None:
    try:
        with trio.fail_after(seconds):
            await ep.connect(peer)
    except trio.TooSlowError:
        out[str(peer)] = f"no handshake within {seconds:g} s"
    except QP2PError as exc:
        out[str(peer)] = str(exc)
    else:
        out[str(peer)] = None


async def _probe(ep: Endpoint, out: list[PortMappingStatus]) -> None:
    out.append(await ep.probe_port_mapping())


def _port_mapping(status: PortMappingStatus) -> dict[str, Any]:
    return {
        "gateway": status.gateway,
        "answered": list(status.answered),
        "probes": [
            {
                "protocol": p.protocol,
                "answered": p.answered,
                "external_ip": p.external_ip,
                "detail": p.detail,
            }
            for p in status.probes
        ],
    }


async def _wait_for_reports(ep: Endpoint, reached: int, limit: float) -> None:
    """Until every reached peer reported what it sees (one round trip), or ``limit``."""
    with trio.move_on_after(limit):
        # No event tells a peer's report; its record follows the handshake by
        # one round trip, so look again shortly (bounded by ``limit``).
        while sum(a.observers for a in ep.external_addresses()) < reached:  # noqa: ASYNC110
            await trio.sleep(0.02)


def _report(
    ep: Endpoint, peers: list[PeerAddress], results: dict[str, str | None]
) -> dict[str, Any]:
    return {
        "local": format_address(ep.local_address),
        "peers": [
            {"peer": str(p), "reached": results[str(p)] is None, "error": results[str(p)]}
            for p in peers
        ],
        "external_addresses": [
            {
                "address": format_address(a.address),
                "source": a.source,
                "observers": a.observers,
                "confirmed": a.confirmed,
                "reachability": None if a.reachability is None else a.reachability.value,
            }
            for a in ep.external_addresses()
        ],
        "nat_mapping": ep.nat_mapping().name.lower(),
    }


def _print(report: dict[str, Any]) -> None:
    print(f"local socket:   {report['local']}")
    for peer in report["peers"]:
        state = "reached" if peer["reached"] else f"failed: {peer['error']}"
        print(f"peer {peer['peer']}: {state}")
    for a in report["external_addresses"]:
        confirmed = " (confirmed)" if a["confirmed"] else ""
        seen = "" if a["source"] == "local" else f", seen by {a['observers']}"
        verdict = f" {a['reachability']}" if a["reachability"] else ""
        print(f"address:        {a['address']} [{a['source']}{seen}]{confirmed}{verdict}")
    print(f"NAT mapping:    {report['nat_mapping']}")
    for c in report["reachability"]:
        print(f"reachability:   {c['address']}: {c['reachability']} ({c['detail']})")
    mapping = report.get("port_mapping")
    if mapping is not None:
        print(f"gateway:        {mapping['gateway'] or 'none found'}")
        for p in mapping["probes"]:
            said = f", external {p['external_ip']}" if p["external_ip"] else ""
            state = "answered" if p["answered"] else "no"
            print(f"port mapping:   {p['protocol']}: {state} ({p['detail']}{said})")
