# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Keeping a peer met through a relay on the best path: punch, and fall back.

Theory of operation
-------------------
`PathKeeper.on_event` listens to the pool's peer events (`EventHub.listen`:
synchronously, as they happen):

- `Connected` with a relayed connection we dialled, however it was dialled
  (`Endpoint.connect`, `send`, `request`, a fallback): hole punching starts
  on it (`Puncher.start`, if `Config.hole_punching`).
- `PathChanged` to ``"direct"`` from a relayed connection: the keeper
  remembers the peer's relay and the direct connection (at most
  `MAX_REMEMBERED` peers, the least recent forgotten).
- `Disconnected` with `DisconnectReason.IDLE_TIMEOUT` of such a direct
  connection: its path died (blackholed, the NAT forgot its mapping).  The
  peer is *fallen back*: while no connection to it is pooled,
  `Endpoint.connect` and `send` by its node id go through its relay
  (`relay_for`, which the dialer asks).  The side that dialled the first
  relayed connection also dials the relay at once, so new messages have a
  connection to take; when it is up, a `PathChanged` to ``"relayed"`` is
  emitted, and punching starts on it again (with its backoff: `_punch`).
  The other side waits for it (or dials the relay itself if it sends first:
  both connections then meet in the pool, which keeps one).

A peer that closed the connection, or one we closed, is not fallen back to:
only a silent path is a dead path.

Owns: the remembered relays, the fallback tasks (one per peer at a time)
and their counters.  Calls the puncher and the endpoint's connect; never
the driver.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, final

import attrs
import trio

from . import _observe
from ._classify import DisconnectReason
from ._errors import QP2PError
from ._events import Connected, Disconnected, PathChanged
from ._peer import PeerAddress

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._connection import Connection
    from ._events import EventHub, PeerEvent
    from ._identity import NodeId
    from ._punch import Puncher

__all__ = ["FallbackCounters", "PathKeeper"]

#: Peers whose relay the keeper remembers (the least recent are forgotten).
MAX_REMEMBERED: Final = 1024
_log = _observe.get_logger("punch")


@attrs.define
class FallbackCounters:
    """Direct connections that died and were replaced through the relay."""

    path_fallbacks: int = 0
    path_fallback_failures: int = 0


@final
@attrs.define
class _Met:
    """A peer whose relayed connection a direct one replaced."""

    relay: PeerAddress
    dialled: bool  # we dialled the relayed connection
    direct: Connection
    fallen_back: bool = False


@final
class PathKeeper:
    """Punches for relayed connections and falls back to the relay (see the module docstring)."""

    def __init__(
        self,
        hub: EventHub,
        puncher: Puncher,
        connect: Callable[[PeerAddress], Awaitable[Connection]],
        punching: bool,
    ) -> None:
        self._hub = hub
        self._puncher = puncher
        self._connect = connect
        self._punching = punching
        self._met: OrderedDict[NodeId, _Met] = OrderedDict()
        self._falling_back: dict[NodeId, None] = {}  # a set, at 64 bytes while empty
        self.counters = FallbackCounters()
        hub.listen(self.on_event)

    def relay_for(self, peer: NodeId) -> PeerAddress | None:
        """The relay to reach ``peer`` through, if its direct path died."""
        met = self._met.get(peer)
        return met.relay if met is not None and met.fallen_back else None

    def on_event(self, event: PeerEvent) -> None:
        """Follow one peer event (synchronously, from the pool)."""
        if isinstance(event, Connected):
            conn = event.connection
            if self._punching and not event.incoming and conn.path == "relayed":
                self._puncher.start(conn)
        elif isinstance(event, PathChanged):
            self._path_changed(event)
        elif isinstance(event, Disconnected):
            if event.reason is DisconnectReason.IDLE_TIMEOUT:
                self._path_died(event.peer)
            else:  # closed on purpose: nothing to fall back to
                self._met.pop(event.peer, None)

    def _path_changed(self, event: PathChanged) -> None:
        previous, conn = event.previous, event.connection
        if event.path != "direct" or previous.path != "relayed":
            return
        relay = previous.peer.relay
        if relay is None:  # pragma: no cover - a relayed connection names its relay
            return
        self._met[event.peer] = _Met(relay, previous.core.is_client, conn)
        self._met.move_to_end(event.peer)
        while len(self._met) > MAX_REMEMBERED:
            self._met.popitem(last=False)

    def _path_died(self, peer: NodeId) -> None:
        met = self._met.get(peer)
        if met is None or met.fallen_back or not met.direct.is_closed:
            return
        met.fallen_back = True
        self.counters.path_fallbacks += 1
        _log.info("the direct path to %s died: falling back to %s", peer.short(), met.relay)
        if met.dialled and peer not in self._falling_back:
            self._falling_back[peer] = None
            try:
                spawn = self._puncher.spawn
                spawn(functools.partial(self._fall_back, peer, met), "relay fallback")
            except trio.ClosedResourceError:
                self._falling_back.pop(peer, None)

    async def _fall_back(self, peer: NodeId, met: _Met) -> None:
        try:
            conn = await self._connect(PeerAddress(peer, relay=met.relay))
        except (QP2PError, trio.ClosedResourceError) as exc:
            self.counters.path_fallback_failures += 1
            _log.info("falling back to %s for %s failed: %s", met.relay, peer.short(), exc)
            return
        finally:
            self._falling_back.pop(peer, None)
        if conn.path == "relayed":
            self._hub.emit(PathChanged(peer, "relayed", conn, met.direct))
