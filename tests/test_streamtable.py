# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`_streamtable.StreamTable` alone: records, budget, slots, accept queues (no Trio)."""

from __future__ import annotations

from qp2p_trio import Config, _wire
from qp2p_trio._budget import ReceiveBudget, Usage
from qp2p_trio._streamstate import QUEUED, SendState
from qp2p_trio._streamtable import StreamTable

K = _wire.StreamKind
E = _wire.StreamErrorCode


def make(config: Config | None = None) -> tuple[StreamTable, ReceiveBudget[str]]:
    config = config or Config()
    budget = ReceiveBudget[str](messages=4, nbytes=10_000, share=1.0, min_share_bytes=1)
    return StreamTable(config, budget=budget, budget_key="p", is_client=True), budget


def test_a_message_reserves_at_its_head_and_hands_the_reservation_over() -> None:
    table, budget = make()
    st = table.add_incoming(3)  # the server's first unidirectional stream
    assert st is not None
    assert table.incoming == {True: 1, False: 0}
    assert table.reserve_message(st, 600)
    assert budget.usage("p") == Usage(1, 600)
    assert table.hand_over(st) == 600  # the receive queue holds it now
    table.forget(st)
    assert budget.usage("p") == Usage(1, 600)  # handed over, not given back twice
    assert table.streams == {}


def test_forgetting_gives_back_the_budget_and_the_slot() -> None:
    table, budget = make()
    st = table.add_incoming(7)
    assert st is not None
    assert table.reserve_message(st, 100)
    table.forget(st)
    assert budget.usage("p") == Usage(0, 0)
    ours = table.add_ours(2, K.RAW_UNI, slot=True)
    table.slots_free[True] -= 1  # as StreamIO.take_slot does
    table.forget(ours)
    assert table.slots_free[True] == Config().max_concurrent_streams


def test_our_forgotten_stream_is_not_taken_for_a_new_one() -> None:
    table, _ = make()
    assert table.add_incoming(0) is None  # a client's own bidi stream id


def test_raw_bytes_are_bounded_per_stream_and_by_the_budget() -> None:
    table, budget = make(Config(stream_receive_buffer=1000))
    st = table.add_incoming(1)
    assert st is not None
    assert table.buffer_raw(st, b"x" * 900) is None
    assert table.buffer_raw(st, b"x" * 200) == (
        E.CLOSED,
        "Config.stream_receive_buffer bytes on this stream",
    )
    assert budget.usage("p").bytes == 900
    table.release(st, 400)
    assert budget.usage("p").bytes == 500


def test_the_accept_queue_is_bounded_and_opens_our_direction() -> None:
    table, _ = make(Config(stream_accept_queue_size=1))
    first, second = table.add_incoming(1), table.add_incoming(5)
    assert first is not None
    assert second is not None
    assert table.queue_for_accept(first, uni=False)
    assert first.handle is QUEUED
    assert first.send.state is SendState.OPEN
    assert not table.queue_for_accept(second, uni=False)
    assert list(table.accept_queue[False]) == [first]


def test_a_raw_stream_is_forgotten_once_both_directions_are_over() -> None:
    table, _ = make()
    st = table.add_ours(0, K.RAW_BIDI, slot=False)
    st.send.finish()
    table.maybe_forget(st)
    assert 0 in table.streams  # the peer's direction is still open
    st.recv.peer_fin()
    table.maybe_forget(st)
    assert 0 not in table.streams


def test_stalled_messages_are_those_that_got_no_byte_since_the_last_check() -> None:
    table, _ = make()
    quiet, busy = table.add_incoming(3), table.add_incoming(7)
    assert quiet is not None
    assert busy is not None
    assert table.reserve_message(quiet, 10)
    assert table.reserve_message(busy, 10)
    busy.received = 5
    assert table.stalled() == ([quiet], True)
    assert table.stalled() == ([quiet, busy], False)
