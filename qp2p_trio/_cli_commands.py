# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The subcommands of ``qp2p-trio`` other than ``demo``: id, listen, send, request, ping, bench.

Each ``run_*`` function takes the parsed arguments and returns an exit code,
or raises `CliError` (or a library error that ``_cli`` maps to an exit
code).  Async ones run under one `trio.run`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import signal
import socket as _stdlib_socket
import stat
import statistics
import struct
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeVar

import trio

from ._cli_serve import Service, format_address
from ._cli_util import (
    BULK_TAG,
    PROBE_TAG,
    CliError,
    ExitCode,
    MiB,
    Progress,
    ProgressMode,
    acknowledged_payload,
    encode_file_request,
    format_duration,
    format_rate,
    format_size,
    preview,
    print_json,
    sha256,
)
from ._config import Config
from ._endpoint import open_endpoint
from ._errors import ConnectError, HandshakeError, MessageTooLarge, PeerIdentityError
from ._identity import Identity
from ._peer import PeerAddress

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Awaitable, Callable

    from ._connection import Connection
    from ._endpoint import Endpoint

__all__ = [
    "config_for",
    "load_identity",
    "parse_bind_address",
    "parse_peer",
    "run_bench",
    "run_id",
    "run_listen",
    "run_ping",
    "run_request",
    "run_send",
]

#: Message size limit of the command's endpoints unless --max-message-size says otherwise.
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * MiB
_SEQ: Final = struct.Struct(">Q")
_T = TypeVar("_T")


# ------------------------------------------------------------------ helpers


def parse_peer(text: str) -> PeerAddress:
    """Parse a PEER argument, or fail with `ExitCode.BAD_PEER`."""
    try:
        return PeerAddress.parse(text)
    except ValueError as exc:
        raise CliError(ExitCode.BAD_PEER, str(exc)) from None


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


def config_for(max_message_size: int) -> Config:
    """The endpoint configuration of the command's endpoints."""
    return Config(
        max_message_size=max_message_size,
        receive_queue_bytes=max(64 * MiB, max_message_size),
    )


def _read_input(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise CliError(ExitCode.FILE, f"cannot read {path!r}: {exc.strerror}") from None


async def _resolve(peer: PeerAddress) -> tuple[str, int]:
    host, port = peer.address
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


def _bind_for(address: tuple[str, int]) -> tuple[str, int]:
    return (
        ("::", 0) if ipaddress.ip_address(address[0].split("%")[0]).version == 6 else ("0.0.0.0", 0)
    )


@asynccontextmanager
async def _client(
    args: argparse.Namespace, peer: PeerAddress
) -> AsyncIterator[tuple[Endpoint, Connection, float]]:
    """Open an endpoint and connect to ``peer``; yield it, the connection and the handshake time."""
    address = await _resolve(peer)
    identity = load_identity(args.identity)
    async with open_endpoint(
        _bind_for(address), identity=identity, config=config_for(args.max_message_size)
    ) as ep:
        start = trio.current_time()
        try:
            with trio.fail_after(args.timeout):
                conn = await ep.connect(address, node_id=peer.node_id)
        except trio.TooSlowError:
            raise CliError(
                ExitCode.UNREACHABLE,
                f"no handshake with {format_address(peer.address)} within {args.timeout:g} s "
                "(is the peer listening there?)",
            ) from None
        except PeerIdentityError as exc:
            actual = f"node id {exc.actual}" if exc.actual is not None else "no node id"
            raise CliError(
                ExitCode.PEER_IDENTITY,
                f"the peer at {format_address(peer.address)} proved {actual}, "
                f"not {peer.node_id}: the peer address is wrong or stale",
            ) from None
        except HandshakeError as exc:
            raise CliError(
                ExitCode.UNREACHABLE,
                f"the handshake with {format_address(peer.address)} failed: {exc}",
            ) from None
        except ConnectError as exc:
            raise CliError(
                ExitCode.UNREACHABLE, f"cannot connect to {format_address(peer.address)}: {exc}"
            ) from None
        yield ep, conn, trio.current_time() - start


async def _with_progress(
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


def _too_large(exc: MessageTooLarge, size: int) -> CliError:
    return CliError(
        ExitCode.TOO_LARGE,
        f"the peer refused {format_size(size)} as too large ({exc}); "
        "a listener accepts more with --max-message-size",
    )


# ----------------------------------------------------------------------- id


def run_id(args: argparse.Namespace) -> int:
    """``qp2p-trio id [--new [--force]] FILE``."""
    path: str = args.file
    if args.new:
        identity = Identity.generate()
        try:
            identity.save(path, overwrite=args.force)
        except FileExistsError:
            raise CliError(
                ExitCode.FILE,
                f"{path!r} already exists; keep it (it is a node's identity) or pass --force",
            ) from None
        except OSError as exc:
            raise CliError(ExitCode.FILE, f"cannot write {path!r}: {exc.strerror}") from None
    else:
        identity = load_identity(path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if args.json:
        print_json(
            {
                "node_id": str(identity.node_id),
                "node_id_hex": identity.node_id.raw.hex(),
                "file": os.path.abspath(path),
                "created": bool(args.new),
                "mode": f"{mode:04o}",
            }
        )
    else:
        if args.new:
            print(
                f"created {path} (mode {mode:04o}): keep it secret, it is this node's key",
                file=sys.stderr,
            )
        print(identity.node_id)
    if mode & 0o077:
        print(
            f"qp2p-trio: warning: {path} is readable by others (mode {mode:04o}); "
            f"run: chmod 600 {path}",
            file=sys.stderr,
        )
    return ExitCode.OK


# ------------------------------------------------------------------- listen


async def run_listen(args: argparse.Namespace) -> int:
    """``qp2p-trio listen [ADDRESS]``: serve until SIGINT or SIGTERM."""
    bind = parse_bind_address(args.address)
    identity = load_identity(args.identity)
    save_dir: Path | None = None
    if args.save_dir is not None:
        save_dir = Path(args.save_dir)
        if not save_dir.is_dir():
            raise CliError(ExitCode.FILE, f"--save-dir {args.save_dir!r} is not a directory")
    config = config_for(args.max_message_size)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_endpoint(bind, identity=identity, config=config) as ep:
            host, port = ep.local_address[0], ep.local_address[1]
            reachable = host
            if ipaddress.ip_address(host).is_unspecified:
                reachable = "::1" if ":" in host else "127.0.0.1"
            peer = PeerAddress(ep.node_id, (reachable, port))
            service = Service(ep, reply=args.reply, json=args.json, save_dir=save_dir)
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
                        f"  requests are answered with: {args.reply}; "
                        f"largest message accepted: {format_size(args.max_message_size)}",
                        "  Ctrl-C stops it",
                    ]
                ),
                node_id=str(ep.node_id),
                address=format_address((host, port)),
                peer_address=str(peer),
            )
            received = "none"
            async with trio.open_nursery() as nursery:
                nursery.start_soon(service.run)
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


# --------------------------------------------------------------------- send


async def run_send(args: argparse.Namespace) -> int:
    """``qp2p-trio send PEER TEXT`` or ``send PEER --file PATH``."""
    peer = parse_peer(args.peer)
    if (args.text is None) == (args.file is None):
        raise CliError(ExitCode.USAGE, "send needs exactly one of TEXT or --file PATH")
    if args.file is not None:
        return await _send_file(args, peer)
    payload = _read_input("-") if args.text == "-" else args.text.encode("utf-8", "surrogateescape")
    async with _client(args, peer) as (_ep, conn, handshake):
        start = trio.current_time()
        try:
            await conn.send(payload)
        except MessageTooLarge as exc:
            raise _too_large(exc, len(payload)) from None
        elapsed = trio.current_time() - start
    if args.json:
        print_json(
            {
                "peer": str(peer),
                "bytes": len(payload),
                "handshake_ms": handshake * 1e3,
                "send_ms": elapsed * 1e3,
            }
        )
    else:
        print(
            f"sent {len(payload)} bytes to {peer.node_id.short()} in {format_duration(elapsed)} "
            f"(the peer confirmed delivery; handshake {format_duration(handshake)})"
        )
    return ExitCode.OK


async def _send_file(args: argparse.Namespace, peer: PeerAddress) -> int:
    content = await trio.to_thread.run_sync(_read_input, args.file)
    digest = await trio.to_thread.run_sync(sha256, content)
    name = "stdin" if args.file == "-" else os.path.basename(args.file)
    payload = encode_file_request(name, content)
    content_size = len(content)
    del content
    mode = Progress.choose(sys.stderr, args.progress, fallback="off")
    async with _client(args, peer) as (_ep, conn, handshake):
        start = trio.current_time()

        async def transfer() -> bytes:
            try:
                return await conn.request(payload)
            except MessageTooLarge as exc:
                raise _too_large(exc, content_size) from None

        reply = await _with_progress(conn, len(payload), mode, sys.stderr, transfer)
        elapsed = trio.current_time() - start
    verified = reply == digest
    if args.json:
        print_json(
            {
                "peer": str(peer),
                "file": args.file,
                "bytes": content_size,
                "sha256": digest.hex(),
                "peer_sha256": reply.hex() if len(reply) == 32 else None,
                "verified": verified,
                "handshake_ms": handshake * 1e3,
                "seconds": elapsed,
                "bytes_per_second": content_size / elapsed if elapsed > 0 else None,
            }
        )
    elif verified:
        print(
            f"sent {name!r} ({format_size(content_size)}) to {peer.node_id.short()} in "
            f"{format_duration(elapsed)}, {format_rate(content_size, elapsed)}; "
            f"the peer confirmed sha256 {digest.hex()}"
        )
    if not verified:
        if len(reply) != 32:
            raise CliError(
                ExitCode.MISMATCH,
                f"the peer answered {preview(reply)} instead of a SHA-256 "
                "(is it a qp2p-trio listener?)",
            )
        raise CliError(
            ExitCode.MISMATCH,
            f"checksum mismatch: sent sha256 {digest.hex()}, the peer received {reply.hex()}",
        )
    return ExitCode.OK


# ------------------------------------------------------------------ request


async def run_request(args: argparse.Namespace) -> int:
    """``qp2p-trio request PEER TEXT``: print the reply."""
    peer = parse_peer(args.peer)
    payload = _read_input("-") if args.text == "-" else args.text.encode("utf-8", "surrogateescape")
    async with _client(args, peer) as (_ep, conn, handshake):
        start = trio.current_time()
        try:
            with trio.fail_after(args.timeout):
                reply = await conn.request(payload)
        except trio.TooSlowError:
            raise CliError(
                ExitCode.PEER_FAILED, f"no reply within {args.timeout:g} s (--timeout)"
            ) from None
        except MessageTooLarge as exc:
            raise _too_large(exc, len(payload)) from None
        elapsed = trio.current_time() - start
    if args.json:
        print_json(
            {
                "peer": str(peer),
                "reply": reply.decode("utf-8", "replace"),
                "reply_hex": reply.hex() if len(reply) <= 4096 else None,
                "bytes": len(reply),
                "handshake_ms": handshake * 1e3,
                "rtt_ms": elapsed * 1e3,
            }
        )
    else:
        out = sys.stdout.buffer
        out.write(reply)
        if not reply.endswith(b"\n"):
            out.write(b"\n")
        out.flush()
    return ExitCode.OK


# --------------------------------------------------------------------- ping


async def run_ping(args: argparse.Namespace) -> int:
    """``qp2p-trio ping PEER``: handshake time, then one probe request per round."""
    peer = parse_peer(args.peer)
    size = max(args.size, len(PROBE_TAG) + _SEQ.size)
    human = not args.json
    rounds: list[dict[str, Any]] = []
    handshake: float | None = None
    total_time = 0.0
    # Ctrl-C ends the pinging (and prints the summary, like ping), at any
    # point: while connecting too.
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            async with _client(args, peer) as (_ep, conn, handshake):
                if human:
                    print(
                        f"PING {peer}: {size}-byte probes over a verified QUIC connection\n"
                        f"handshake: {format_duration(handshake)} (node id verified)",
                        flush=True,
                    )
                start = trio.current_time()
                try:
                    await _ping_rounds(args, conn, peer, size, rounds, human)
                finally:
                    total_time = trio.current_time() - start
            nursery.cancel_scope.cancel()
    if handshake is None:
        raise KeyboardInterrupt
    rtts = [r["rtt_ms"] for r in rounds if r.get("rtt_ms") is not None]
    sent = len(rounds)
    lost = sent - len(rtts)
    summary: dict[str, Any] = {
        "peer": str(peer),
        "handshake_ms": handshake * 1e3,
        "sent": sent,
        "received": len(rtts),
        "loss_percent": 100.0 * lost / sent if sent else 0.0,
        "rounds": rounds,
    }
    if rtts:
        mean = statistics.fmean(rtts)
        summary.update(
            min_ms=min(rtts),
            avg_ms=mean,
            max_ms=max(rtts),
            mdev_ms=math.sqrt(statistics.fmean([(r - mean) ** 2 for r in rtts])),
        )
    if args.json:
        print_json(summary)
    else:
        print(f"--- {peer.node_id.short()} ping statistics ---")
        print(
            f"{sent} probes sent, {len(rtts)} replies, {summary['loss_percent']:.0f}% lost, "
            f"time {format_duration(total_time)}"
        )
        if rtts:
            print(
                "rtt min/avg/max/mdev = "
                f"{summary['min_ms']:.3f}/{summary['avg_ms']:.3f}/"
                f"{summary['max_ms']:.3f}/{summary['mdev_ms']:.3f} ms"
            )
    if sent and not rtts:
        return ExitCode.PEER_FAILED
    return ExitCode.OK


async def _ping_rounds(
    args: argparse.Namespace,
    conn: Connection,
    peer: PeerAddress,
    size: int,
    rounds: list[dict[str, Any]],
    human: bool,
) -> None:
    start = trio.current_time()
    seq = 0
    while args.count == 0 or seq < args.count:
        seq += 1
        await trio.sleep_until(start + (seq - 1) * args.interval)
        probe = PROBE_TAG + _SEQ.pack(seq)
        probe += bytes(size - len(probe))
        sent_at = trio.current_time()
        reply: bytes | None = None
        with trio.move_on_after(args.wait):
            reply = await conn.request(probe)
        rtt = trio.current_time() - sent_at
        if reply is None:
            rounds.append({"seq": seq, "rtt_ms": None})
            if human:
                print(f"no reply from {peer.node_id.short()}: seq={seq} within {args.wait:g} s")
            continue
        if reply != probe:
            raise CliError(
                ExitCode.MISMATCH, f"seq={seq}: the reply differs from the probe it echoes"
            )
        rounds.append({"seq": seq, "rtt_ms": rtt * 1e3})
        if human:
            print(
                f"{len(reply)} bytes from {peer.node_id.short()}: seq={seq} time={rtt * 1e3:.3f} ms",
                flush=True,
            )


# -------------------------------------------------------------------- bench


async def run_bench(args: argparse.Namespace) -> int:
    """``qp2p-trio bench [PEER]``: latency and throughput, remote or local."""
    if args.message_size <= len(BULK_TAG):
        raise CliError(ExitCode.USAGE, f"--message-size must exceed {len(BULK_TAG)} bytes")
    if args.peer is not None:
        peer = parse_peer(args.peer)
        async with _client(args, peer) as (_ep, conn, handshake):
            result = await _bench(args, conn)
        result.update(mode="remote", peer=str(peer), handshake_ms=handshake * 1e3)
    else:
        result = await _bench_local(args)
    if args.json:
        print_json(result)
    else:
        _print_bench(result)
    return ExitCode.OK


async def _bench_local(args: argparse.Namespace) -> dict[str, Any]:
    limit = max(args.max_message_size, args.message_size + 1024)
    config = config_for(limit)
    async with (
        open_endpoint(("127.0.0.1", 0), config=config) as server,
        open_endpoint(("127.0.0.1", 0), config=config) as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(Service(server, quiet=True).run)
        start = trio.current_time()
        conn = await client.connect(server.local_address, node_id=server.node_id)
        handshake = trio.current_time() - start
        result = await _bench(args, conn)
        nursery.cancel_scope.cancel()
    result.update(mode="local", peer=None, handshake_ms=handshake * 1e3)
    return result


async def _bench(args: argparse.Namespace, conn: Connection) -> dict[str, Any]:
    # Latency: sequential probes, each a full request/response.
    rtts: list[float] = []
    for seq in range(args.rounds):
        probe = PROBE_TAG + _SEQ.pack(seq)
        sent_at = trio.current_time()
        with trio.fail_after(args.timeout):
            reply = await conn.request(probe)
        rtts.append((trio.current_time() - sent_at) * 1e3)
        if reply != probe:
            raise CliError(ExitCode.MISMATCH, f"probe {seq}: the echo differs")
    latency: dict[str, Any] = {"rounds": len(rtts), "request_bytes": len(PROBE_TAG) + _SEQ.size}
    if rtts:
        ordered = sorted(rtts)
        latency.update(
            min_ms=ordered[0],
            median_ms=statistics.median(ordered),
            mean_ms=statistics.fmean(ordered),
            p90_ms=_percentile(ordered, 0.90),
            p99_ms=_percentile(ordered, 0.99),
            max_ms=ordered[-1],
        )
    # Throughput: bulk messages, several in flight.
    message = BULK_TAG + bytes(args.message_size - len(BULK_TAG))
    count = max(1, math.ceil(args.size / args.message_size))
    total = count * len(message)
    parallel = max(1, min(args.parallel, count))
    remaining = count
    mode = Progress.choose(sys.stderr, args.progress, fallback="off")

    async def sender() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await conn.send(message)

    async def send_all() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(parallel):
                nursery.start_soon(sender)

    start = trio.current_time()
    try:
        await _with_progress(conn, total, mode, sys.stderr, send_all)
    except MessageTooLarge as exc:
        raise _too_large(exc, len(message)) from None
    elapsed = trio.current_time() - start
    return {
        "latency": latency,
        "throughput": {
            "bytes": total,
            "messages": count,
            "message_bytes": len(message),
            "parallel": parallel,
            "seconds": elapsed,
            "bytes_per_second": total / elapsed if elapsed > 0 else None,
            "mbit_per_second": total * 8 / elapsed / 1e6 if elapsed > 0 else None,
        },
    }


def _percentile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _print_bench(result: dict[str, Any]) -> None:
    if result["mode"] == "local":
        print("bench: two endpoints on 127.0.0.1 in this process (no PEER given)")
    else:
        print(f"bench: against {result['peer']}")
    print(f"handshake:   {result['handshake_ms']:.2f} ms")
    lat = result["latency"]
    if lat["rounds"]:
        print(
            f"latency:     {lat['rounds']} requests of {lat['request_bytes']} bytes: "
            f"min {lat['min_ms']:.3f} ms, median {lat['median_ms']:.3f} ms, "
            f"p90 {lat['p90_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms, max {lat['max_ms']:.3f} ms"
        )
    thr = result["throughput"]
    print(
        f"throughput:  {format_size(thr['bytes'])} in {thr['messages']} message(s) of "
        f"{format_size(thr['message_bytes'])}, {thr['parallel']} in flight: "
        f"{format_duration(thr['seconds'])}, {format_rate(thr['bytes'], thr['seconds'])}"
    )
