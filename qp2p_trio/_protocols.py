# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Protocol routing: each PROTOCOL stream a peer opens goes to its name's handler.

Theory of operation
-------------------
`Endpoint.handle_protocol` registers an async handler under a name; a peer
opens a stream for it with `Connection.open_protocol` (the name travels in
the stream's head, see `_protoname`).  When the head arrives, the
connection hands the stream to the driver, which asks the `ProtocolRouter`
(`ProtocolRouter.offer`, synchronous): the router starts
``handler(connection, stream)`` in a task of the endpoint's nursery, or
answers a refusal code and the stream is reset with it:

- no handler for the name: ``UNKNOWN_PROTOCOL``;
- the peer already runs `Config.protocol_handlers_per_peer` handlers, or
  the endpoint `Config.protocol_handlers`: ``BUSY`` (no peer takes more
  than its share of handler tasks; the opener may try again later);
- the endpoint is closing: ``REFUSED``.

A handler that returns closes the stream gracefully (FIN, and STOP_SENDING
if the peer's side is unfinished); one that raises has the stream reset with
``HANDLER_FAILED``, the error logged on ``qp2p_trio.protocols`` and
counted; the endpoint and every other stream go on.  Names starting with
``qp2p/`` are the library's own (the relay's ``qp2p/relay/1``): only
`register` with ``internal=True`` takes them.

Owns: the handler table, the count of running handlers per peer.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, final

import attrs
import trio

from . import _observe
from ._protoname import RESERVED_PREFIX, check_name
from ._wire import StreamErrorCode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._config import Config
    from ._connection import Connection
    from ._streams import BidirectionalStream

    ProtocolHandler = Callable[[Connection, BidirectionalStream], Awaitable[object]]

__all__ = ["ProtocolCounters", "ProtocolRouter"]

_log = _observe.get_logger("protocols")
E = StreamErrorCode


@attrs.define
class ProtocolCounters:
    """What the router did with the PROTOCOL streams peers opened."""

    protocol_streams_handled: int = 0
    protocol_streams_unknown: int = 0
    protocol_streams_busy: int = 0
    protocol_handler_failures: int = 0


@final
class ProtocolRouter:
    """The handler table and the running handlers (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._handlers: dict[str, ProtocolHandler] = {}
        self._running: collections.Counter[object] = collections.Counter()
        self._total = 0
        self._nursery: trio.Nursery | None = None
        self.closing = False
        self.counters = ProtocolCounters()

    def start(self, nursery: trio.Nursery) -> None:
        """Run handlers in ``nursery`` from now on."""
        self._nursery = nursery

    def spawn(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        """Run ``fn`` (a task of the library's own protocols) in the same nursery."""
        if self._nursery is None or self.closing:
            raise trio.ClosedResourceError("the endpoint is not running")
        self._nursery.start_soon(fn, name=name)

    def register(
        self, name: str, handler: ProtocolHandler | None, *, internal: bool = False
    ) -> None:
        """Route streams for ``name`` to ``handler`` (``None``: stop routing them).

        Raises:
            ValueError: a malformed name, a reserved one (without
                ``internal``), or a name that already has a handler.
            TypeError: ``handler`` is not callable.
        """
        check_name(name)
        if name.startswith(RESERVED_PREFIX) and not internal:
            raise ValueError(
                f"protocol names starting with {RESERVED_PREFIX!r} are reserved for qp2p_trio: "
                f"{name!r}"
            )
        if handler is None:
            self._handlers.pop(name, None)
            return
        if not callable(handler):
            raise TypeError(f"a protocol handler must be an async function, got {handler!r}")
        if name in self._handlers:
            raise ValueError(f"protocol {name!r} already has a handler")
        self._handlers[name] = handler

    def names(self) -> list[str]:
        """The names that have a handler, sorted."""
        return sorted(self._handlers)

    def offer(self, conn: Connection, name: str, stream: BidirectionalStream) -> int:
        """Start the handler for ``name`` on ``stream``; 0, or the code to reset it with."""
        counters = self.counters
        handler = self._handlers.get(name)
        if handler is None:
            counters.protocol_streams_unknown += 1
            _log.debug("%r opened a stream for unknown protocol %r", conn, name)
            return E.UNKNOWN_PROTOCOL
        nursery = self._nursery
        if nursery is None or self.closing:
            return E.REFUSED
        peer = conn.session.peer_id
        config = self._config
        if (
            self._total >= config.protocol_handlers
            or self._running[peer] >= config.protocol_handlers_per_peer
        ):
            counters.protocol_streams_busy += 1
            return E.BUSY
        self._running[peer] += 1
        self._total += 1
        counters.protocol_streams_handled += 1
        nursery.start_soon(self._run, handler, conn, stream, peer, name)
        return 0

    async def _run(
        self,
        handler: ProtocolHandler,
        conn: Connection,
        stream: BidirectionalStream,
        peer: object,
        name: str,
    ) -> None:
        try:
            await handler(conn, stream)
        except Exception as exc:
            self.counters.protocol_handler_failures += 1
            _log.warning(
                "the handler of protocol %r failed (%r): stream reset", name, conn, exc_info=exc
            )
            stream.reset(E.HANDLER_FAILED)
        else:
            await stream.aclose()
        finally:
            stream.reset(E.CANCELLED)  # a no-op once closed; a cancelled handler's stream ends
            self._total -= 1
            self._running[peer] -= 1
            if not self._running[peer]:
                del self._running[peer]
