# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The per-stream state machines of `_streamstate`, alone (no core, no Trio).

Each legal transition is driven once (the tables below list them all, and a
test checks that they cover every step from every state that allows it);
illegal ones raise `LocalProtocolError` naming the stream, the side, the
state and the step.
"""

from __future__ import annotations

import pytest

from qp2p_trio import LocalProtocolError
from qp2p_trio._streamstate import (
    RecvSide,
    RecvState,
    SendSide,
    SendState,
    StreamState,
)

S = SendState
R = RecvState

#: Every legal step of the sending side: (state before, step, state after).
SEND_LEGAL = [
    (S.IDLE, "open", S.OPEN),
    (S.IDLE, "reset", S.RESET),
    (S.OPEN, "finish", S.FINISHED),
    (S.OPEN, "reset", S.RESET),
    (S.STOPPED, "finish", S.FINISHED),
    (S.STOPPED, "reset", S.RESET),
    (S.FINISHED, "reset", S.RESET),
]
SEND_PATHS = {
    S.IDLE: (),
    S.OPEN: ("open",),
    S.STOPPED: ("open", "stop"),
    S.FINISHED: ("open", "finish"),
    S.RESET: ("reset",),
}


def send_side(path: tuple[str, ...]) -> SendSide:
    side = SendSide(4)
    for step in path:
        if step == "stop":
            side.peer_stop(7)
        else:
            getattr(side, step)()
    return side


@pytest.mark.parametrize(("before", "step", "after"), SEND_LEGAL)
def test_send_side_legal_steps(before: SendState, step: str, after: SendState) -> None:
    side = send_side(SEND_PATHS[before])
    assert side.state is before
    getattr(side, step)()
    assert side.state is after
    assert side.closed == (after in (S.FINISHED, S.RESET))
    assert side.started


@pytest.mark.parametrize("before", list(SendState))
@pytest.mark.parametrize("step", ["open", "finish", "reset"])
def test_send_side_every_other_step_is_illegal(before: SendState, step: str) -> None:
    if any(b is before and s == step for b, s, _ in SEND_LEGAL):
        return
    side = send_side(SEND_PATHS[before])
    with pytest.raises(LocalProtocolError, match=rf"stream 4: illegal step '{step}' of the send"):
        getattr(side, step)()
    assert side.state is before  # nothing changed


@pytest.mark.parametrize(
    ("path", "after"),
    [((), S.IDLE), (("open",), S.STOPPED), (("open", "finish"), S.FINISHED), (("reset",), S.RESET)],
)
def test_peer_stop_is_recorded_in_every_state(path: tuple[str, ...], after: SendState) -> None:
    # STOP_SENDING stops an ongoing write; otherwise only its code is kept,
    # for a reply not yet started or a message waiting for its receipt.
    side = send_side(path)
    side.peer_stop(9)
    assert side.state is after
    assert side.stop_code == 9


def test_a_fresh_send_side_is_idle() -> None:
    side = SendSide(0)
    assert (side.state, side.started, side.closed, side.stop_code) == (S.IDLE, False, False, None)


#: Every legal step of the receiving side: (state before, step, state after).
RECV_LEGAL = [
    (R.RECV, "peer_fin", R.FIN),
    (R.RECV, "peer_reset", R.RESET),
    (R.RECV, "stop", R.STOPPED),
    (R.FIN, "peer_reset", R.RESET),
    (R.FIN, "stop", R.DONE),
    (R.RESET, "stop", R.DONE),
    (R.STOPPED, "peer_fin", R.DONE),
    (R.STOPPED, "peer_reset", R.DONE),
]
RECV_PATHS = {
    R.RECV: (),
    R.FIN: ("peer_fin",),
    R.RESET: ("peer_reset",),
    R.STOPPED: ("stop",),
    R.DONE: ("stop", "peer_fin"),
}


def recv_side(state: RecvState) -> RecvSide:
    if state is R.NONE:
        return RecvSide(2, exists=False)
    side = RecvSide(2, exists=True)
    for step in RECV_PATHS[state]:
        do(side, step)
    assert side.state is state
    return side


def do(side: RecvSide, step: str) -> None:
    if step == "peer_reset":
        side.peer_reset(5)
    else:
        getattr(side, step)()


@pytest.mark.parametrize(("before", "step", "after"), RECV_LEGAL)
def test_recv_side_legal_steps(before: RecvState, step: str, after: RecvState) -> None:
    side = recv_side(before)
    side.buf += b"unread"
    do(side, step)
    assert side.state is after
    assert side.stopped == (after in (R.STOPPED, R.DONE))
    assert side.peer_done == (after in (R.FIN, R.RESET, R.DONE))
    if step != "peer_fin":  # a reset or a stop drops what was not read
        assert side.buf == b""
    if step == "peer_reset":
        assert side.reset_code == 5


@pytest.mark.parametrize("before", list(RecvState))
@pytest.mark.parametrize("step", ["peer_fin", "peer_reset", "stop"])
def test_recv_side_every_other_step_is_illegal(before: RecvState, step: str) -> None:
    if any(b is before and s == step for b, s, _ in RECV_LEGAL):
        return
    side = recv_side(before)
    with pytest.raises(
        LocalProtocolError, match=rf"stream 2: illegal step '{step}' of the receive"
    ):
        do(side, step)
    assert side.state is before


def test_stream_state_directions_follow_who_opened_it() -> None:
    ours_uni = StreamState(2, None, ours=True)
    assert ours_uni.recv.state is R.NONE  # we only send on it
    theirs_uni = StreamState(3, None, ours=False)
    assert theirs_uni.recv.state is R.RECV
    assert theirs_uni.send.state is S.IDLE
    ours_bidi = StreamState(0, None, ours=True)
    assert ours_bidi.recv.state is R.RECV
