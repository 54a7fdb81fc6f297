# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""What the subcommands that reach a peer share: parsing, identities, connecting.

`open_client` opens an endpoint and connects to a peer address, turning
every way that can fail into a `CliError` with the right exit code.
"""

from __future__ import annotations

import ipaddress
import socket as _stdlib_socket
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TextIO, TypeVar

import trio

from qp2p_trio import (
    AdmissionRefused,
    Config,
    ConnectError,
    HandshakeError,
    Identity,
    MessageTooLarge,
    NodeId,
    PeerAddress,
    PeerCacheError,
    PeerIdentityError,
    open_endpoint,
    read_peer_cache,
)

from .errors import CliError, ExitCode
from .output import MiB, Progress, acknowledged_payload, format_address, format_size
from .trust import trust_settings

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Awaitable, Callable

    from qp2p_trio import Connection, Endpoint

    from .output import ProgressMode

__all__ = [
    "bind_address_for",
    "config_for",
    "load_identity",
    "open_client",
    "parse_bind_address",
    "parse_peer",
    "read_input",
    "refused",
    "text_payload",
    "too_large",
    "with_progress",
]

_T = TypeVar("_T")


def parse_peer(text: str, args: argparse.Namespace | None = None) -> PeerAddress:
    """Parse a PEER argument, or fail with `ExitCode.BAD_PEER`.

    With ``--peer-cache FILE`` in ``args``, a bare node id is looked up in FILE.
    """
    cache = getattr(args, "peer_cache", None)
    if cache is not None and "@" not in text and "/" not in text:
        return _cached_peer(cache, text)
    try:
        return PeerAddress.parse(text)
    except ValueError as exc:
        raise CliError(ExitCode.BAD_PEER, str(exc)) from None


def _cached_peer(path: str, text: str) -> PeerAddress:
    try:
        node_id = NodeId.parse(text.strip())
    except ValueError as exc:
        raise CliError(ExitCode.BAD_PEER, f"invalid node id {text!r}: {exc}") from None
    try:
        known = read_peer_cache(path)
    except (PeerCacheError, OSError) as exc:
        raise CliError(ExitCode.FILE, f"cannot use the peer cache {path!r}: {exc}") from None
    peer = known.get(node_id)
    if peer is None:
        raise CliError(
            ExitCode.BAD_PEER,
            f"no peer {node_id} in the peer cache {path!r}: give its peer address "
            "(<node-id>@host:port or <node-id>/via/<relay>) once",
        )
    return peer


def parse_bind_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` or ``[V6HOST]:PORT`` (numeric host) for binding."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    try:
        ip = ipaddress.ip_address(host)
        port = int(port_text)
        if not port_text.isdigit() or not 0 <= port < 65536:
            raise ValueError(port_text)
    except ValueError:
        raise CliError(
            ExitCode.USAGE,
            f"invalid address {text!r}: expected HOST:PORT with a numeric host, "
            "for example 0.0.0.0:4433, 127.0.0.1:0 or [::]:4433",
        ) from None
    return (str(ip), port)


def load_identity(path: str | None) -> Identity:
    """Load ``path``, or make a fresh identity when it is ``None``."""
    if path is None:
        return Identity.generate()
    try:
        return Identity.load(path)
    except FileNotFoundError:
        raise CliError(
            ExitCode.FILE,
            f"no identity file at {path!r} (create one with: qp2p-trio id --new {path})",
        ) from None
    except OSError as exc:
        raise CliError(
            ExitCode.FILE, f"cannot read identity file {path!r}: {exc.strerror}"
        ) from None
    except ValueError as exc:
        raise CliError(ExitCode.FILE, f"not an identity file: {exc}") from None


def config_for(
    max_message_size: int, args: argparse.Namespace | None = None, identity: Identity | None = None
) -> Config:
    """The endpoint configuration of the command's endpoints.

    ``args``: `debug_options`, `relay_options`, and with ``identity`` the
    `trust.trust_options`.
    """
    trust = trust_settings(args, identity) if args is not None and identity is not None else {}
    home_relay = getattr(args, "home_relay", None)
    return Config(
        max_message_size=max_message_size,
        receive_queue_bytes=max(64 * MiB, max_message_size),
        keylog_file=getattr(args, "keylog", None),
        qlog_dir=getattr(args, "qlog", None),
        **trust,
        relay=bool(getattr(args, "relay", False)),
        serve_reachability_checks=bool(getattr(args, "serve_reachability", False)),
        home_relay=_home_relay(home_relay) if home_relay is not None else None,
        peer_cache=getattr(args, "peer_cache", None),
    )


def _home_relay(text: str) -> PeerAddress:
    peer = parse_peer(text)
    if peer.address is None or peer.relay is not None:
        raise CliError(ExitCode.BAD_PEER, f"--home-relay needs <node-id>@host:port, not {text}")
    return peer


def read_input(path: str) -> bytes:
    """The bytes of the file at ``path``, or of stdin for ``-``."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise CliError(ExitCode.FILE, f"cannot read {path!r}: {exc.strerror}") from None


def text_payload(text: str) -> bytes:
    """The payload a TEXT argument names: stdin for ``-``, else the text itself."""
    return read_input("-") if text == "-" else text.encode("utf-8", "surrogateescape")


async def _resolve(peer: PeerAddress) -> tuple[str, int]:
    """The peer's address (its relay's if it has none), resolved."""
    address = peer.address if peer.address is not None or peer.relay is None else peer.relay.address
    assert address is not None  # a PeerAddress has an address or a relay
    host, port = address
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        await trio.lowlevel.checkpoint()
        return (host, port)
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=_stdlib_socket.SOCK_DGRAM)
    except OSError as exc:
        raise CliError(
            ExitCode.BAD_PEER, f"cannot resolve the host {host!r} of {peer}: {exc}"
        ) from None
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise CliError(ExitCode.BAD_PEER, f"cannot resolve the host {host!r} of {peer}")
    return (str(infos[0][4][0]), port)


def bind_address_for(address: tuple[str, int]) -> tuple[str, int]:
    """The wildcard address, of ``address``'s family, to bind a client endpoint to."""
    return (
        ("::", 0) if ipaddress.ip_address(address[0].split("%")[0]).version == 6 else ("0.0.0.0", 0)
    )


@asynccontextmanager
async def open_client(
    args: argparse.Namespace, peer: PeerAddress
) -> AsyncIterator[tuple[Endpoint, Connection, float]]:
    """Open an endpoint and connect to ``peer``; yield it, the connection and the handshake time.

    ``args`` holds the `options.client_options`.
    """
    address = await _resolve(peer)
    target: PeerAddress | tuple[str, int] = address
    where = format_address(address)
    if peer.relay is not None:
        # Through its relay (racing the direct address if there is one).
        direct = address if peer.address is not None else None
        target = PeerAddress(peer.node_id, direct, relay=peer.relay)
        where = str(peer)
    identity = load_identity(args.identity)
    config = config_for(args.max_message_size, args, identity)
    async with open_endpoint(bind_address_for(address), identity=identity, config=config) as ep:
        start = trio.current_time()
        try:
            with trio.fail_after(args.timeout):
                conn = await ep.connect(target, node_id=peer.node_id)
        except trio.TooSlowError:
            raise CliError(
                ExitCode.UNREACHABLE,
                f"no handshake with {where} within {args.timeout:g} s "
                "(is the peer listening there?)",
            ) from None
        except PeerIdentityError as exc:
            actual = f"node id {exc.actual}" if exc.actual is not None else "no node id"
            raise CliError(
                ExitCode.PEER_IDENTITY,
                f"the peer at {where} proved {actual}, "
                f"not {peer.node_id}: the peer address is wrong or stale",
            ) from None
        except AdmissionRefused as exc:
            raise refused(exc, where) from None
        except HandshakeError as exc:
            raise CliError(
                ExitCode.UNREACHABLE,
                f"the handshake with {where} failed: {exc}",
            ) from None
        except ConnectError as exc:
            raise CliError(ExitCode.UNREACHABLE, f"cannot connect to {where}: {exc}") from None
        yield ep, conn, trio.current_time() - start


async def with_progress(
    conn: Connection,
    total: int,
    mode: ProgressMode,
    stream: TextIO,
    operation: Callable[[], Awaitable[_T]],
) -> _T:
    """Run ``await operation()`` while a progress bar follows the connection's counters."""
    progress = Progress(total, stream=stream, mode=mode)
    baseline = conn.statistics()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress.follow, acknowledged_payload(conn, baseline))
        result = await operation()
        nursery.cancel_scope.cancel()
    progress.finish()
    return result


def refused(exc: AdmissionRefused, where: str) -> CliError:
    """The error for a connection a trust policy refused (`ExitCode.REFUSED`)."""
    if exc.by_peer:
        why = "it does not admit this node (is it a member of the peer's network: --ca, --cert?)"
    else:
        why = "this node does not admit it (--ca, --deny, --allow)"
    return CliError(ExitCode.REFUSED, f"the peer at {where} was refused: {why}")


def too_large(exc: MessageTooLarge, size: int) -> CliError:
    """The error for a message of ``size`` bytes the peer refused as too large."""
    return CliError(
        ExitCode.TOO_LARGE,
        f"the peer refused {format_size(size)} as too large ({exc}); "
        "a listener accepts more with --max-message-size",
    )
