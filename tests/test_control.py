# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`_control.ControlStreams` alone, sans-IO: bytes in, records and events out.

Two `ControlStreams` talk by passing the bytes one returns to the other's
`receive`, with no core, session or Trio.  Hostile input (records before
SETTINGS, a second control stream, a malformed record, the stream's end)
becomes a `Violation`, which the session turns into a close of this
connection alone.
"""

from __future__ import annotations

import pytest

from qp2p_trio import _wire
from qp2p_trio._control import ControlStreams, Violation
from qp2p_trio._observed import MAX_REPORTS, AddressObserved, encode_observed_address
from qp2p_trio._sessionevents import Established, PeerGoaway

PREAMBLE = len(_wire.encode_control_preamble())


def make() -> ControlStreams:
    return ControlStreams(max_message_size=1000, incarnation=42)


def test_settings_first_then_records_become_events() -> None:
    ours, theirs = make(), make()
    opening = ours.open(2)
    assert ours.sid == 2
    assert theirs.peer_stream(3) is None
    events = theirs.receive(opening[PREAMBLE:], fin=False)
    assert events == [Established()]
    assert (theirs.peer_max_message_size, theirs.peer_incarnation) == (1000, 42)
    # A receipt is the session's to apply; it comes back as the record.
    assert theirs.receive(ours.receipt(8, 3), fin=False) == [_wire.Receipt(stream_id=8, code=3)]


def test_goaway_is_sent_once_and_counted_on_arrival() -> None:
    ours, theirs = make(), make()
    theirs.receive(ours.open(2)[PREAMBLE:], fin=False)
    record = ours.goaway(uni_opened=2, bidi_opened=1)
    assert record is not None
    assert ours.goaway_sent
    assert ours.goaway(uni_opened=5, bidi_opened=5) is None
    assert not theirs.peer_streams_arrived({True: 5, False: 5})  # no GOAWAY yet
    assert theirs.receive(record, fin=False) == [PeerGoaway()]
    assert theirs.receive(record, fin=False) == []  # a repeat changes nothing
    assert not theirs.peer_streams_arrived({True: 1, False: 1})
    assert theirs.peer_streams_arrived({True: 2, False: 1})


def test_observed_addresses_are_bounded_both_ways() -> None:
    ours, theirs = make(), make()
    theirs.receive(ours.open(2)[PREAMBLE:], fin=False)
    first = ours.observed_address(("192.0.2.1", 1000))
    assert first is not None
    assert ours.observed_address(("192.0.2.1", 1000)) is None  # unchanged
    assert theirs.receive(first, fin=False) == [AddressObserved(("192.0.2.1", 1000))]
    sent = [ours.observed_address(("192.0.2.1", 2000 + i)) for i in range(MAX_REPORTS + 3)]
    assert sum(r is not None for r in sent) == MAX_REPORTS - 1  # one went first
    events = []
    for i in range(MAX_REPORTS + 3):  # a hostile peer that keeps changing its story
        record = encode_observed_address(("198.51.100.1", 3000 + i))
        assert record is not None
        events += theirs.receive(record, fin=False)
    assert len(events) == MAX_REPORTS - 1  # the first report took one


@pytest.mark.parametrize(
    ("data", "fin", "why"),
    [
        (_wire.encode_receipt(4, 0), False, "must start with a SETTINGS"),
        (b"", True, "ended"),
        (_wire.encode_settings(max_message_size=1) * 2, False, "second SETTINGS"),
        (
            _wire.encode_settings(max_message_size=1)
            + bytes([_wire.ControlRecordType.RECEIPT, 0, 1, 0]),
            False,
            "RECEIPT record of 1 bytes",
        ),
    ],
)
def test_hostile_records_are_violations(data: bytes, fin: bool, why: str) -> None:
    theirs = make()
    events = theirs.receive(data, fin)
    assert isinstance(events[-1], Violation)
    assert why in events[-1].reason


def test_a_second_peer_control_stream_is_a_violation() -> None:
    theirs = make()
    assert theirs.peer_stream(3) is None
    violation = theirs.peer_stream(7)
    assert violation is not None
    assert "second control stream" in violation.reason
    assert theirs.peer_sid == 3


def test_our_stream_opens_once() -> None:
    ours = make()
    ours.open(2)
    with pytest.raises(RuntimeError, match="already open"):
        ours.open(6)


def test_only_records_that_must_arrive_hold_a_close_back() -> None:
    control = make()
    head = control.open(2)
    control.wrote(len(head), must_arrive=False)
    # SETTINGS unacknowledged: nothing that must arrive is in flight.
    assert not control.undelivered(unacked=len(head))
    receipt = control.receipt(0, 0)
    control.wrote(len(receipt), must_arrive=True)
    assert control.undelivered(unacked=len(receipt))
    observed = b"\x04" * 9
    control.wrote(len(observed), must_arrive=False)
    # The receipt acknowledged, the later record not: no wait.
    assert not control.undelivered(unacked=len(observed))
    assert control.undelivered(unacked=len(observed) + 1)
    assert not control.undelivered(unacked=0)
