# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The state of one stream, as its `_session.Session` keeps it (sans-IO).

Theory of operation
-------------------
A stream has two directions, each a small state machine with an enum state
(after aioquic's ``QuicStreamSender`` / ``QuicStreamReceiver`` split and
quinn-proto's send and receive states):

.. code-block:: text

    SendSide: our direction            RecvSide: the peer's direction, our reading
    ----------------------------       ------------------------------------------
    IDLE     --open-->   OPEN          RECV     --peer_fin-->   FIN
    IDLE     --reset-->  RESET         RECV     --peer_reset--> RESET
    OPEN     --finish--> FINISHED      RECV     --stop-->       STOPPED
    OPEN     --reset-->  RESET         FIN      --peer_reset--> RESET
    OPEN     --peer_stop--> STOPPED    FIN      --stop-->       DONE
    STOPPED  --finish--> FINISHED      RESET    --stop-->       DONE
    STOPPED  --reset-->  RESET         STOPPED  --peer_fin-->   DONE
    FINISHED --reset-->  RESET         STOPPED  --peer_reset--> DONE

    A RecvSide starts in RECV, or in NONE (no such direction: our own
    unidirectional stream), which allows no step.

Only the transitions listed are legal; anything else is a bug of ours and
raises `LocalProtocolError` naming the stream, the direction, the state and
the attempted step (the session then closes that connection alone).  The
peer's STOP_SENDING is recorded as ``stop_code`` in whatever state it finds
(it moves OPEN to STOPPED): a reply not yet started or a message waiting
for its receipt reads it.

`StreamState` holds both machines and the rest of a stream's bookkeeping:
its kind and parser, the receive budget it holds, the reply, receipt or
error our caller waits for, and who holds it (a handle, `QUEUED` or
`DELIVERED`).  The session changes these records as QUIC events arrive, the
Trio `Connection` reads them while it waits, and the stream handles of
`_streams` point at them.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

from ._errors import LocalProtocolError

if TYPE_CHECKING:
    from . import _wire

__all__ = [
    "DELIVERED",
    "QUEUED",
    "RecvSide",
    "RecvState",
    "SendSide",
    "SendState",
    "StreamState",
    "is_uni",
]

#: `StreamState.handle` of a peer's raw stream queued for accepting.
QUEUED: Final = "queued"
#: `StreamState.handle` of a request delivered to the application.
DELIVERED: Final = "delivered"


def is_uni(sid: int) -> bool:
    """Whether ``sid`` is a unidirectional stream."""
    return bool(sid & 2)


class SendState(enum.Enum):
    """Where our sending direction of a stream is."""

    IDLE = "idle"  # nothing sent yet (the peer's stream; a request before its reply)
    OPEN = "open"  # we write on it
    STOPPED = "stopped"  # the peer's STOP_SENDING came while we were writing
    FINISHED = "finished"  # our FIN is queued (or, after STOPPED, we gave up)
    RESET = "reset"  # we reset it


S = SendState
_SEND_STEPS: Final = {
    "open": ({S.IDLE}, S.OPEN),
    "finish": ({S.OPEN, S.STOPPED}, S.FINISHED),
    "reset": ({S.IDLE, S.OPEN, S.STOPPED, S.FINISHED}, S.RESET),
}


class RecvState(enum.Enum):
    """Where the peer's sending direction of a stream is, and our reading of it."""

    NONE = "none"  # no such direction (our own unidirectional stream)
    RECV = "recv"  # the peer sends, we read
    FIN = "fin"  # the peer's FIN arrived: the buffer holds the rest
    RESET = "reset"  # the peer reset it: its unread bytes are gone
    STOPPED = "stopped"  # we stopped reading; what still arrives is dropped
    DONE = "done"  # we stopped reading and the peer's FIN or reset arrived


R = RecvState
_RECV_STEPS: Final = {
    "peer_fin": {R.RECV: R.FIN, R.STOPPED: R.DONE},
    "peer_reset": {R.RECV: R.RESET, R.FIN: R.RESET, R.STOPPED: R.DONE},
    "stop": {R.RECV: R.STOPPED, R.FIN: R.DONE, R.RESET: R.DONE},
}


def _illegal(sid: int, side: str, state: enum.Enum, step: str) -> LocalProtocolError:
    return LocalProtocolError(
        f"stream {sid}: illegal step {step!r} of the {side} side in state {state.name}"
    )


class SendSide:
    """Our sending direction of one stream (see the module docstring)."""

    __slots__ = ("sid", "state", "stop_code")

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.state = SendState.IDLE
        self.stop_code: int | None = None  # the peer's STOP_SENDING

    def _step(self, step: str) -> None:
        sources, target = _SEND_STEPS[step]
        if self.state not in sources:
            raise _illegal(self.sid, "send", self.state, step)
        self.state = target

    def open(self) -> None:
        """We start writing (our stream, a reply, the peer's raw bidi stream)."""
        self._step("open")

    def finish(self) -> None:
        """Our FIN is queued (or, once stopped, we are done writing)."""
        self._step("finish")

    def reset(self) -> None:
        """We reset our direction (RESET_STREAM)."""
        self._step("reset")

    def peer_stop(self, code: int) -> None:
        """The peer's STOP_SENDING with ``code``: writing stops if it was going on."""
        self.stop_code = code
        if self.state is SendState.OPEN:
            self.state = SendState.STOPPED

    @property
    def started(self) -> bool:
        """Whether we write (or wrote) on it."""
        return self.state is not SendState.IDLE

    @property
    def closed(self) -> bool:
        """Whether our direction is over: FIN queued or reset."""
        return self.state in (SendState.FINISHED, SendState.RESET)


class RecvSide:
    """The peer's sending direction of one stream, and what we read of it."""

    __slots__ = ("buf", "reset_code", "sid", "state")

    def __init__(self, sid: int, *, exists: bool) -> None:
        self.sid = sid
        self.state = RecvState.RECV if exists else RecvState.NONE
        self.buf = bytearray()  # a raw stream's unread bytes
        self.reset_code: int | None = None  # the peer's RESET_STREAM

    def _step(self, step: str) -> None:
        target = _RECV_STEPS[step].get(self.state)
        if target is None:
            raise _illegal(self.sid, "receive", self.state, step)
        self.state = target

    def peer_fin(self) -> None:
        """The peer's FIN arrived."""
        self._step("peer_fin")

    def peer_reset(self, code: int) -> None:
        """The peer's RESET_STREAM with ``code``: unread bytes are dropped."""
        self._step("peer_reset")
        self.reset_code = code
        self.buf = bytearray()

    def stop(self) -> None:
        """We stop reading: unread bytes are dropped."""
        self._step("stop")
        self.buf = bytearray()

    @property
    def stopped(self) -> bool:
        """Whether we stopped reading."""
        return self.state in (RecvState.STOPPED, RecvState.DONE)

    @property
    def peer_done(self) -> bool:
        """Whether the peer's FIN or reset arrived."""
        return self.state in (RecvState.FIN, RecvState.RESET, RecvState.DONE)


class StreamState:
    """Bookkeeping of one stream, owned by its `_session.Session` (see module doc)."""

    __slots__ = (
        "checked",
        "error",
        "handle",
        "holds_message",
        "holds_slot",
        "kind",
        "ours",
        "overrun",
        "parser",
        "receipt",
        "received",
        "recv",
        "reply",
        "reserved",
        "send",
        "sid",
        "streamed",
    )

    def __init__(self, sid: int, kind: _wire.StreamKind | None, *, ours: bool) -> None:
        self.sid = sid
        self.kind = kind
        self.ours = ours  # we opened it (else the peer did)
        self.parser: _wire.StreamParser | None = None
        self.send = SendSide(sid)
        self.recv = RecvSide(sid, exists=not (ours and is_uni(sid)))
        self.reserved = 0  # receive budget held: bytes, and maybe one message
        self.holds_message = False  # one message slot of the budget (even for 0 bytes)
        self.holds_slot = False  # one of our stream slots (a raw stream we opened)
        self.received = 0  # bytes the peer sent on it, and at the last stall check
        self.checked = 0
        self.reply: bytes | None = None
        self.receipt: int | None = None  # the peer's RECEIPT code for our message/reply
        self.error: Exception | None = None  # what our request's waiter raises
        self.overrun: str | None = None  # why a raw stream was stopped (reader's error)
        self.handle: object = None  # whoever holds it: a handle, QUEUED or DELIVERED
        self.streamed = False  # a message read in chunks (its receive window is held)
