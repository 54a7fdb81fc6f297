# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The stream records of one connection and what they hold, sans-IO.

Theory of operation
-------------------
A `StreamTable` belongs to one `_session.Session` and keeps the bookkeeping
that outlives a single QUIC event: every `StreamState` by stream id (a
peer's stream keeps its record as a tombstone until its FIN or reset, so
late data is never taken for a new stream), how many streams the peer
opened (GOAWAY counts them), our free stream slots
(`Config.max_concurrent_streams`, by direction), the peer's raw streams
waiting to be accepted, and the share of the endpoint's receive budget the
streams hold (a message reserves its declared size and one message slot at
its head; a raw stream reserves the bytes it buffers).

It owns no core and sends nothing: the session decides what goes on the
wire (a refusal, a STOP_SENDING) from what these methods answer.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, final

from . import _wire
from ._streamstate import QUEUED, RecvState, StreamState, is_uni

if TYPE_CHECKING:
    from ._budget import ReceiveBudget
    from ._config import Config

__all__ = ["StreamTable"]

K = _wire.StreamKind
#: The kinds a peer may open, on a unidirectional and a bidirectional stream.
_PEER_UNI_KINDS = frozenset({K.MESSAGE, K.RAW_UNI, K.CONTROL})
_PEER_BIDI_KINDS = frozenset({K.REQUEST, K.RAW_BIDI, K.PROTOCOL})
E = _wire.StreamErrorCode


@final
class StreamTable:
    """One connection's streams (see the module docstring)."""

    __slots__ = (
        "_budget",
        "_budget_key",
        "_config",
        "_is_client",
        "accept_queue",
        "incoming",
        "slots_free",
        "streams",
    )

    def __init__(
        self, config: Config, *, budget: ReceiveBudget[str], budget_key: str, is_client: bool
    ) -> None:
        self._config = config
        self._budget = budget
        self._budget_key = budget_key
        self._is_client = is_client
        self.streams: dict[int, StreamState] = {}
        self.incoming = {True: 0, False: 0}  # distinct streams the peer opened, by uni
        # Our own opens take a slot (Config.max_concurrent_streams), by uni.
        self.slots_free = {
            True: config.max_concurrent_streams,
            False: config.max_concurrent_streams,
        }
        # The peer's raw streams waiting for accept_uni / accept_bi, by uni;
        # each deque is made on first use (most connections accept none).
        self.accept_queue: dict[bool, collections.deque[StreamState]] = collections.defaultdict(
            collections.deque
        )

    def is_ours(self, sid: int) -> bool:
        """Whether we opened stream ``sid``."""
        return (sid & 1) == (0 if self._is_client else 1)

    # ------------------------------------------------------------- records
    def add_ours(self, sid: int, kind: _wire.StreamKind, *, slot: bool) -> StreamState:
        """Record a stream we open; ``slot``: it keeps a stream slot until forgotten."""
        st = StreamState(sid, kind, ours=True)
        st.send.open()
        st.holds_slot = slot
        self.streams[sid] = st
        return st

    def add_incoming(self, sid: int) -> StreamState | None:
        """Record a stream the peer opened (``None``: one of ours, already forgotten)."""
        if self.is_ours(sid):
            return None
        st = StreamState(sid, None, ours=False)
        uni = is_uni(sid)
        self.incoming[uni] += 1
        allowed = _PEER_UNI_KINDS if uni else _PEER_BIDI_KINDS
        st.parser = _wire.StreamParser(
            allowed=allowed,
            max_message_size=self._config.max_message_size,
            max_streamed_size=self._config.max_streamed_message_size,
        )
        self.streams[sid] = st
        return st

    def queue_for_accept(self, st: StreamState, *, uni: bool) -> bool:
        """Queue the peer's raw stream for accepting; False if the queue is full."""
        queue = self.accept_queue[uni]
        if len(queue) >= self._config.stream_accept_queue_size:
            return False
        if not uni:
            st.send.open()  # our direction of the peer's bidi stream
        st.handle = QUEUED
        queue.append(st)
        return True

    def forget(self, st: StreamState) -> None:
        """Drop ``st``'s record: its budget and its slot are given back."""
        self.release(st)
        self.streams.pop(st.sid, None)
        if st.holds_slot:
            st.holds_slot = False
            self.slots_free[is_uni(st.sid)] += 1

    def maybe_forget(self, st: StreamState) -> None:
        """Drop a raw stream's record once both directions are over."""
        if st.kind not in (K.RAW_BIDI, K.RAW_UNI):
            return
        send, recv = st.send, st.recv
        send_done = (is_uni(st.sid) and not st.ours) or send.closed or send.stop_code is not None
        # A stream the peer opened stays (a tombstone) until its FIN or reset:
        # data still in flight must not look like a new stream.
        recv_done = (
            recv.state is RecvState.NONE
            or (recv.peer_done and (recv.stopped or not recv.buf))
            or (recv.stopped and st.ours)
        )
        if send_done and recv_done:
            self.forget(st)

    # -------------------------------------------------------------- budget
    def reserve_message(self, st: StreamState, length: int) -> bool:
        """Reserve a message's declared size and one message slot at its head."""
        if not self._budget.reserve(self._budget_key, messages=1, nbytes=length):
            return False
        st.reserved = length
        st.holds_message = True
        return True

    def reserve_streamed(self, st: StreamState) -> bool:
        """A streamed message takes one message slot (its bytes: as they arrive)."""
        return self._budget.reserve(self._budget_key, messages=1, nbytes=0)

    def buffer_raw(self, st: StreamState, data: bytes) -> tuple[int, str] | None:
        """Buffer a raw stream's bytes, or say why not: (the code to stop it with, the limit).

        A streamed message's bytes too: its QUIC window bounds them, not
        `Config.stream_receive_buffer`.
        """
        n = len(data)
        if not st.streamed and len(st.recv.buf) + n > self._config.stream_receive_buffer:
            return E.CLOSED, "Config.stream_receive_buffer bytes on this stream"
        if not self._budget.reserve(self._budget_key, messages=0, nbytes=n):
            return E.BUSY, "its share of the receive budget (Config.receive_share)"
        st.recv.buf += data
        st.reserved += n
        return None

    def hand_over(self, st: StreamState) -> int:
        """A whole message leaves for the receive queue: the bytes its reservation moves."""
        reserved, st.reserved = st.reserved, 0
        st.holds_message = False
        return reserved

    def release(self, st: StreamState, nbytes: int | None = None) -> None:
        """Give back ``st``'s receive budget: all of it, or ``nbytes`` of a raw stream's."""
        if not st.reserved and not st.holds_message:
            return
        n = st.reserved if nbytes is None else min(nbytes, st.reserved)
        st.reserved -= n
        messages = 1 if st.holds_message and nbytes is None else 0
        if messages:
            st.holds_message = False
        self._budget.release(self._budget_key, messages=messages, nbytes=n)

    def stalled(self) -> tuple[list[StreamState], bool]:
        """Messages that hold budget and got no byte since the last check, and
        whether others still wait (each check remembers what had arrived)."""
        stalled = []
        waiting = False
        for st in self.streams.values():
            if not st.holds_message:
                continue
            if st.received == st.checked:
                stalled.append(st)
            else:
                st.checked = st.received
                waiting = True
        return stalled, waiting
