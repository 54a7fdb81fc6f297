# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio netcheck PEER [PEER ...]``: how the peers see this machine.

Connects to every PEER at once, waits (bounded) for each to report the
address it sees us at (the OBSERVED_ADDRESS control record), and prints
this endpoint's external addresses and the NAT mapping they imply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from qp2p_trio import QP2PError, open_endpoint

from .client import bind_address_for, config_for, load_identity, parse_peer
from .errors import ExitCode
from .options import client_options
from .output import format_address, print_json

if TYPE_CHECKING:
    import argparse

    from qp2p_trio import Endpoint, PeerAddress

    from .options import Commands

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    """Add the ``netcheck`` subcommand."""
    parser = commands.add(
        "netcheck",
        "how peers see this machine: external addresses, NAT mapping",
        "Connect to every PEER at once and print the addresses they see this "
        "machine at, and the NAT mapping that implies (two or more peers at "
        "different IP addresses are needed for a verdict).",
        run,
    )
    parser.add_argument("peers", metavar="PEER", nargs="+", help="peer addresses")
    client_options(parser)


async def run(args: argparse.Namespace) -> int:
    """``qp2p-trio netcheck PEER [PEER ...]``: exit 0 if any peer answered."""
    peers = [parse_peer(text) for text in args.peers]
    config = config_for(args.max_message_size, args)
    bind = bind_address_for(peers[0].address or ("0.0.0.0", 0))
    async with open_endpoint(bind, identity=load_identity(args.identity), config=config) as ep:
        results: dict[str, str | None] = {}
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(_dial, ep, peer, args.timeout, results)
        reached = sum(error is None for error in results.values())
        await _wait_for_reports(ep, reached, min(args.timeout, 5.0))
        report = _report(ep, peers, results)
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
        print(f"address:        {a['address']} [{a['source']}{seen}]{confirmed}")
    print(f"NAT mapping:    {report['nat_mapping']}")
