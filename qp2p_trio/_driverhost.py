# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`DriverHost`: what the driver does when its connections call it.

`_host.ConnectionHost` is all a connection sees of its driver.  The calls
about a connection's life (established, closed, admitted, a GOAWAY, an
observed address) and its messages (deliver, release budget, a refusal)
are implemented here, and `_driver.Driver` inherits them, so that the
driver module stays the socket, the routing and the send task.  They
update the pool, the metrics tally, the gatekeeper, the observations and
the queues the driver owns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from . import _classify, _observe
from ._pool import Close, handshake_failure
from ._relaypath import PathInfo, describe_path
from ._wire import CloseCode, StreamErrorCode

if TYPE_CHECKING:
    from ._admission import Admission
    from ._budget import ReceiveBudget
    from ._config import Config
    from ._connection import Connection
    from ._lazy import LazyChannel
    from ._message import Message
    from ._metrics import Tally
    from ._observed import ObservationBook
    from ._path import Path
    from ._pool import Pool, PoolAction
    from ._trust import Gatekeeper
    from ._unreachable import DialWatch

__all__ = ["DriverHost"]

_pool_log = _observe.get_logger("pool")
_admission_log = _observe.get_logger("admission")


class DriverHost:
    """The connection-facing callbacks of `_driver.Driver` (which inherits them)."""

    __slots__ = ()  # the attributes are the driver's slots

    # Set by `Driver.__init__`.
    config: Config
    gate: Gatekeeper
    observe: _observe.Observer
    tally: Tally
    counters: Any
    live: set[Connection]
    observations: ObservationBook
    budget: ReceiveBudget[str]
    admission: Admission[Connection]
    inbox: LazyChannel[tuple[Message, str, int]]
    accepted: LazyChannel[Connection]
    _closing: bool
    _pool: Pool
    _path_of: dict[Connection, Path]
    _dialing: DialWatch[Connection]

    @property
    def may_refuse(self) -> bool:
        return self.gate.may_refuse

    def judge_peer(self, conn: Connection) -> bool | None:
        # Closing: undecided; the shutdown closes it like any other (code 0).
        return None if self._closing else self.gate.judge(conn)

    def connection_established(self, conn: Connection) -> None:
        self._pending_remove(conn)
        _observe.connection_established(conn)
        self.observe.peer_known(conn.core.original_destination_cid, conn.peer_id)
        self._apply(self._pool.ready(conn, conn.peer_address[:2]))
        interval = self.config.keep_alive_interval
        if interval is not None:
            conn.next_ping_at = trio.current_time() + interval
        self.tally.established(conn, trio.current_time())
        if conn.core.is_client:
            self.tally.opened_outgoing += 1
        else:
            self.tally.opened_incoming += 1
            try:
                self.accepted.send.send_nowait(conn)
            except (trio.WouldBlock, trio.ClosedResourceError):
                self.counters.connections_unannounced += 1

    def connection_closed(self, conn: Connection) -> None:
        conn.next_ping_at = None
        self.live.discard(conn)
        self._pending_remove(conn)
        self._pool.closed(conn)
        self.gate.forget(conn)
        _observe.connection_closed(conn)
        if conn.session.peer_id is not None:
            self.observations.ended(conn.session.peer_id, trio.current_time())
        session = conn.session
        if _classify.refused_by_tls(session.handshake_error):
            self.counters.handshake_failures += 1
        tally = self.tally
        if session.established:
            reason = _classify.disconnect_reason(session.close_exc, session.closed_locally)
            tally.connection_ended(conn, reason)
        else:
            tally.connection_ended(conn, None)
            if handshake_failure(conn) is not None:
                if conn.core.is_client:
                    tally.failed_outgoing += 1
                else:
                    tally.failed_incoming += 1

    def _pending_remove(self, conn: Connection) -> None:
        self.admission.remove(conn)
        self._dialing.done(conn)

    def address_observed(self, conn: Connection, address: tuple[str, int]) -> None:
        self.observations.record(conn.peer_id, conn.peer_address, address)

    def path_info(self, conn: Connection) -> PathInfo:
        return describe_path(self._path_of.get(conn) if self._path_of else None)

    def peer_goaway(self, conn: Connection) -> None:
        self._apply(self._pool.peer_goaway(conn))

    def _apply(self, actions: list[PoolAction]) -> None:
        """Carry out what the pool decided, now that its update is complete."""
        for action in actions:
            if isinstance(action, Close):
                _pool_log.info("closing the connection %r: %s", action.conn, action.reason)
                action.conn.close_locally(CloseCode.NO_ERROR, action.reason)
            else:
                _pool_log.info("retiring %r, replaced by %r", action.conn, action.winner)
                action.conn.retire(action.winner)

    def budget_release(self, peer: str, messages: int, nbytes: int) -> None:
        self.budget.release(peer, messages=messages, nbytes=nbytes)

    def deliver(self, msg: Message, peer: str, reserved: int) -> bool:
        """Queue ``msg`` for `receive`; False if the endpoint stopped receiving."""
        try:
            self.inbox.send.send_nowait((msg, peer, reserved))
        except trio.ClosedResourceError:
            self.budget.release(peer, messages=1, nbytes=reserved)
            return False
        self.counters.messages_received += 1
        self.tally.message_bytes_received += len(msg.payload)
        return True

    def count_refused(self, code: int) -> None:
        _admission_log.debug("refused a stream (code 0x%x)", code)
        self.counters.streams_refused += 1
        self.tally.stream_refused(code)
        if code == StreamErrorCode.STALLED:
            self.counters.streams_stalled += 1
