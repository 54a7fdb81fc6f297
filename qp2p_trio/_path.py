# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Datagram paths: where a connection's datagrams go when not to the UDP socket.

Theory of operation
-------------------
Every connection is bound, for its whole life, to one *path*: by default the
endpoint's UDP socket (the driver's transport, no `Path` object at all), or
a `Path` attached to the driver (`_driver.Driver.attach_path`): an
in-process pipe (`MemoryPath`, for tests), later a relay's stream.  A
relayed connection is an ordinary end-to-end QUIC connection; only the
carriage of its datagrams differs.

A path names the peers it reaches with *path addresses*: ``(peer, path)``,
two strings, the label of the peer on that path and the path's `Path.name`.
Socket addresses have an integer port in second place, so the two kinds
never compare equal (aioquic compares addresses as tuples) and
`is_path_address` tells them apart.  The peer label is what per-address
limits and the receive budget count under (`_admission.address_key` keeps
a label that is not an IP address as it is), so a path should label each
peer stably (a relay: by the node id the relay authenticated).

The driver hands a path the datagrams of its connections with `Path.send`
(synchronous, never waits, never calls back into the driver: what the path
cannot take now it drops and counts, as UDP would) and runs one task per
attached path that waits in `Path.receive_batch` and feeds what arrives to
its router exactly as the socket's receive task does.

Owns nothing of the driver's; imports only Trio and `_udp`'s batch size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, final

import trio

from ._udp import BATCH, TransportClosed

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MemoryPath", "Path", "is_path_address", "memory_path_pair"]

Address = tuple[Any, ...]

#: Datagrams a `MemoryPath` direction holds before it drops.
MEMORY_PATH_CAPACITY = 256


def is_path_address(addr: Address) -> bool:
    """Whether ``addr`` is a path address ``(peer, path)`` rather than a socket address."""
    return len(addr) == 2 and isinstance(addr[1], str)


class Path(Protocol):
    """What the driver needs of a datagram path (see the module docstring)."""

    @property
    def name(self) -> str:
        """Unique among the paths of one endpoint; second item of its addresses."""

    def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> int:
        """Take datagrams to the given path addresses now; return how many were taken.

        Must not wait and must not call into the driver; what cannot be taken
        now is dropped (and counted by the path).
        """

    async def receive_batch(self, out: list[tuple[bytes, Address]]) -> None:
        """Wait for at least one datagram; append up to `_udp.BATCH` to ``out``.

        Each comes with the path address of its sender.  Raises
        `_udp.TransportClosed` once the path is closed for good.
        """


@final
class MemoryPath:
    """One end of an in-process path between two endpoints (`memory_path_pair`).

    Each direction is a bounded Trio memory channel of datagrams: when it is
    full, `send` drops (counted in `dropped`) as a full UDP queue would.
    It reaches exactly one peer, at `peer_address`.
    """

    def __init__(
        self,
        name: str,
        local: str,
        remote: str,
        send_channel: trio.MemorySendChannel[bytes],
        receive_channel: trio.MemoryReceiveChannel[bytes],
    ) -> None:
        self._name = name
        self.local_address: Address = (local, name)
        self.peer_address: Address = (remote, name)
        self._send = send_channel
        self._receive = receive_channel
        #: Datagrams `send` could not take (the channel full or closed, or
        #: addressed to nobody on this path).
        self.dropped = 0
        self.sent = 0
        self.received = 0

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<MemoryPath {self._name!r} {self.local_address[0]} -> {self.peer_address[0]}>"

    def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> int:
        taken = 0
        for data, addr in datagrams:
            if addr != self.peer_address:
                self.dropped += 1
                continue
            try:
                self._send.send_nowait(data)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.dropped += 1
            else:
                taken += 1
        self.sent += taken
        return taken

    async def receive_batch(self, out: list[tuple[bytes, Address]]) -> None:
        peer = self.peer_address
        receive = self._receive
        try:
            out.append((await receive.receive(), peer))
        except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
            raise TransportClosed from exc
        while len(out) < BATCH:
            try:
                out.append((receive.receive_nowait(), peer))
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        self.received += len(out)

    def close(self) -> None:
        """Close this end: the peer's end receives nothing more and ends."""
        self._send.close()
        self._receive.close()


def memory_path_pair(
    name: str = "memory",
    *,
    labels: tuple[str, str] = ("memory-a", "memory-b"),
    capacity: float = MEMORY_PATH_CAPACITY,
) -> tuple[MemoryPath, MemoryPath]:
    """Two joined `MemoryPath` ends, one for each endpoint.

    The first end reaches the second's endpoint at ``(labels[1], name)``;
    the second sees the first at ``(labels[0], name)``.  Each direction
    holds ``capacity`` datagrams (``math.inf``: unbounded).
    """
    if not capacity >= 0 or (capacity != math.inf and int(capacity) != capacity):
        raise ValueError(f"capacity must be a whole number >= 0 or math.inf, got {capacity!r}")
    a_to_b_send, a_to_b_receive = trio.open_memory_channel[bytes](capacity)
    b_to_a_send, b_to_a_receive = trio.open_memory_channel[bytes](capacity)
    first = MemoryPath(name, labels[0], labels[1], a_to_b_send, b_to_a_receive)
    second = MemoryPath(name, labels[1], labels[0], b_to_a_send, a_to_b_receive)
    return first, second
