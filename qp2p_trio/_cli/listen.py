# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio listen [ADDRESS]``: run a node until SIGINT or SIGTERM (see `service`)."""

from __future__ import annotations

import functools
import ipaddress
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import trio

from qp2p_trio import PeerAddress, open_endpoint

from .client import config_for, load_identity, parse_bind_address
from .errors import CliError, ExitCode
from .metrics import metrics_address, metrics_option, serving_metrics
from .options import DEFAULT_MAX_MESSAGE_SIZE, debug_options, ipv4, relay_options, size
from .output import format_address, format_size
from .service import Service
from .trust import trust_options

if TYPE_CHECKING:
    import argparse

    from qp2p_trio import Endpoint

    from .options import Commands

__all__ = ["add_parser", "run"]

#: Largest file accepted by default, and room for a file request's head.
DEFAULT_MAX_FILE_SIZE: Final = 64 * 1024**3
_FILE_HEAD: Final = 4096


def add_parser(commands: Commands) -> None:
    """Add the ``listen`` subcommand."""
    parser = commands.add(
        "listen",
        "run a node: print its peer address, the peers and messages arriving",
        "Run a node on ADDRESS and print its peer address, peers connecting and leaving, "
        "and messages and requests arriving. Requests are answered (echo by default), files "
        "sent with `send --file` are acknowledged with their SHA-256. Ctrl-C (SIGINT) or "
        "SIGTERM stops it, closing every connection gracefully.",
        run,
    )
    parser.add_argument(
        "address",
        nargs="?",
        default="127.0.0.1:0",
        metavar="ADDRESS",
        help="numeric HOST:PORT to bind, [::]:PORT for IPv6 (default: 127.0.0.1:0, any free port)",
    )
    parser.add_argument(
        "--identity",
        metavar="FILE",
        help="identity file (see `id`); default: a fresh identity for this run",
    )
    parser.add_argument(
        "--reply",
        choices=("echo", "upper", "reject"),
        default="echo",
        help="how to answer requests (default: echo)",
    )
    parser.add_argument(
        "--save-dir",
        metavar="DIR",
        help="save files sent with `send --file` in DIR (created if missing)",
    )
    parser.add_argument(
        "--max-message-size",
        type=size,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="SIZE",
        help=f"largest message accepted (default: {format_size(DEFAULT_MAX_MESSAGE_SIZE)})",
    )
    parser.add_argument(
        "--max-file-size",
        type=size,
        default=DEFAULT_MAX_FILE_SIZE,
        metavar="SIZE",
        help="largest file accepted from `send --file`; files over --max-message-size are "
        f"streamed to disk in bounded memory (default: {format_size(DEFAULT_MAX_FILE_SIZE)})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per event")
    metrics_option(parser)
    parser.add_argument(
        "--port-mapping",
        action="store_true",
        help="ask the gateway (NAT-PMP, PCP or UPnP-IGD) to forward this node's port, "
        "print the mapped address, delete the mapping on exit",
    )
    parser.add_argument(
        "--gateway",
        type=ipv4,
        metavar="IP",
        help="with --port-mapping: the gateway's IPv4 address (default: the default route's)",
    )
    trust_options(parser, lists=True)
    relay_options(parser, serve=True)
    debug_options(parser)


async def run(args: argparse.Namespace) -> int:
    """``qp2p-trio listen [ADDRESS]``: serve until SIGINT or SIGTERM."""
    bind = parse_bind_address(args.address)
    identity = load_identity(args.identity)
    save_dir: Path | None = None
    if args.save_dir is not None:
        save_dir = Path(args.save_dir)
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(
                ExitCode.FILE, f"--save-dir {args.save_dir!r}: cannot create it ({exc.strerror})"
            ) from None
        if not save_dir.is_dir():
            raise CliError(ExitCode.FILE, f"--save-dir {args.save_dir!r} is not a directory")
    streamed = args.max_file_size + _FILE_HEAD if args.max_file_size > args.max_message_size else 0
    config = attrs.evolve(
        config_for(args.max_message_size, args, identity), max_streamed_message_size=streamed
    )
    if args.port_mapping:
        config = attrs.evolve(config, port_mapping=True, port_mapping_gateway=args.gateway)
    metrics = metrics_address(args.metrics)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_endpoint(bind, identity=identity, config=config) as ep:
            service = Service(ep, reply=args.reply, json=args.json, save_dir=save_dir)
            _announce(args, ep, service)
            received = "none"
            async with (
                serving_metrics(ep, metrics, functools.partial(_announce_metrics, service)),
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(service.run)
                if args.port_mapping:
                    nursery.start_soon(_watch_mapping, ep, service)
                async for signum in signals:
                    received = signal.Signals(signum).name
                    break
                open_connections = len(service.live)
                service.event(
                    "stopping",
                    f"stopping ({received}): closing {open_connections} connection(s) gracefully",
                    signal=received,
                    connections=open_connections,
                )
                nursery.cancel_scope.cancel()
        service.event(
            "stopped",
            f"stopped: {service.messages} message(s), {service.requests} request(s), "
            f"{service.files} file(s), {service.probes} probe(s) served",
            messages=service.messages,
            requests=service.requests,
            files=service.files,
            probes=service.probes,
        )
    return ExitCode.OK


async def _watch_mapping(ep: Endpoint, service: Service) -> None:
    """Print a ``mapped`` event whenever the mapped address changes."""
    last: tuple[str, int] | None = None
    while True:  # until the node stops; a look every half second
        status = ep.port_mapping()
        if status.external != last:
            last = status.external
            address = None if last is None else format_address(last)
            text = f"  mapped:       {address} ({status.protocol})" if address else "  unmapped"
            service.event("mapped", text, address=address, protocol=status.protocol)
        await trio.sleep(0.5)


def _announce_metrics(service: Service, url: str) -> None:
    service.event("metrics", f"  metrics:      {url}", url=url)


def _announce(args: argparse.Namespace, ep: Endpoint, service: Service) -> None:
    """Print the ``listening`` event: node id, bound address, peer address."""
    host, port = ep.local_address[0], ep.local_address[1]
    reachable = host
    if ipaddress.ip_address(host).is_unspecified:
        reachable = "::1" if ":" in host else "127.0.0.1"
    peer = PeerAddress(ep.node_id, (reachable, port), relay=ep.config.home_relay)
    service.event(
        "listening",
        "\n".join(
            [
                "qp2p-trio listening",
                f"  node id:      {ep.node_id}",
                f"  bound to:     {format_address((host, port))}",
                f"  peer address: {peer}",
                *(
                    [
                        "  (bound to every interface: from other machines use this "
                        "machine's address instead of " + reachable + ")"
                    ]
                    if reachable != host
                    else []
                ),
                *(["  serving as a relay for the peers it admits"] if ep.config.relay else []),
                *(
                    ["  serving reachability checks (dial-backs)"]
                    if ep.config.serve_reachability_checks
                    else []
                ),
                f"  requests are answered with: {args.reply}; "
                f"largest message accepted: {format_size(args.max_message_size)}",
                "  Ctrl-C stops it",
            ]
        ),
        node_id=str(ep.node_id),
        address=format_address((host, port)),
        peer_address=str(peer),
    )
