# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The CONTROL streams of one connection, sans-IO.

Theory of operation
-------------------
Each side opens one unidirectional CONTROL stream as soon as it may (see
`_wire`): SETTINGS first, then RECEIPT, GOAWAY and OBSERVED_ADDRESS records.
`ControlStreams` keeps all the state of both directions: our stream's id,
the peer's stream id and its record parser, what the peer announced
(SETTINGS, GOAWAY) and the OBSERVED_ADDRESS bookkeeping with its bounds.

It owns no `QuicCore` and reads no clock.  Its session tells it what
happened (`open`, `peer_stream`, `receive`) and writes the bytes it returns
on our control stream; what the peer sent comes back as `ControlEvent`
objects: `Established`, `PeerGoaway` and `AddressObserved` go on to the
driver as they are, a `Receipt` is the session's to apply to its stream,
and a `Violation` closes the connection (never the endpoint).

Adding a record type: its encoder and its case in `_wire.ControlParser`,
then here a method that returns the record to send and a case in `receive`
that turns the received record into an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import attrs

from . import _wire
from ._errors import RemoteProtocolError
from ._observed import AddressObserved, ObservedAddress, ObservedReporter
from ._sessionevents import Established, PeerGoaway

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["ControlEvent", "ControlStreams", "Violation"]


@final
@attrs.frozen
class Violation:
    """The peer broke the control protocol: close the connection with ``reason``."""

    reason: str


ControlEvent = Established | PeerGoaway | AddressObserved | _wire.Receipt | Violation


@final
class ControlStreams:
    """Both CONTROL streams of one connection (see the module docstring).

    Attributes:
        sid: our control stream, once `open` chose it.
        peer_sid: the peer's control stream, once its preamble arrived.
        peer_max_message_size: the peer's SETTINGS limit (``None`` before).
        peer_incarnation: the peer's SETTINGS incarnation (``None`` before).
        goaway_sent: we retired the connection (`goaway`).
        peer_goaway: the peer's GOAWAY, once it arrived.
        observed: OBSERVED_ADDRESS records, both ways, bounded.
    """

    __slots__ = (
        "_incarnation",
        "_max_message_size",
        "_parser",
        "goaway_sent",
        "must_arrive",
        "observed",
        "peer_goaway",
        "peer_incarnation",
        "peer_max_message_size",
        "peer_sid",
        "sid",
        "written",
    )

    def __init__(self, *, max_message_size: int, incarnation: int) -> None:
        self._max_message_size = max_message_size
        self._incarnation = incarnation
        self._parser = _wire.ControlParser()
        self.sid: int | None = None
        self.peer_sid: int | None = None
        self.peer_max_message_size: int | None = None
        self.peer_incarnation: int | None = None
        self.goaway_sent = False
        self.peer_goaway: _wire.GoAway | None = None
        self.observed = ObservedReporter()
        #: Bytes written on our control stream, and the offset after the last
        #: record the peer must have before we close (receipts, GOAWAY).
        self.written = 0
        self.must_arrive = 0

    # ------------------------------------------------------------- sending
    def open(self, sid: int) -> bytes:
        """Take ``sid`` as our control stream: its first bytes (preamble, SETTINGS)."""
        if self.sid is not None:
            raise RuntimeError(f"control stream already open on {self.sid}")
        self.sid = sid
        return _wire.encode_control_preamble() + _wire.encode_settings(
            max_message_size=self._max_message_size, incarnation=self._incarnation
        )

    def wrote(self, size: int, *, must_arrive: bool) -> None:
        """Count ``size`` bytes written on our control stream (after `open`'s)."""
        self.written += size
        if must_arrive:
            self.must_arrive = self.written

    def undelivered(self, unacked: int) -> bool:
        """Whether a record that must arrive is not acknowledged yet.

        ``unacked``: bytes of our control stream not yet acknowledged.  Only
        SETTINGS or OBSERVED_ADDRESS in flight do not hold a close back.
        """
        return self.written - unacked < self.must_arrive

    @staticmethod
    def receipt(sid: int, code: int) -> bytes:
        """The RECEIPT record telling the peer what became of its stream ``sid``."""
        return _wire.encode_receipt(sid, code)

    def goaway(self, *, uni_opened: int, bidi_opened: int) -> bytes | None:
        """The GOAWAY record retiring the connection, once (``None`` after)."""
        if self.goaway_sent:
            return None
        self.goaway_sent = True
        return _wire.encode_goaway(uni_opened=uni_opened, bidi_opened=bidi_opened)

    def observed_address(self, peer_address: Sequence[object] | None) -> bytes | None:
        """The OBSERVED_ADDRESS record to send now, if the address is new (bounded)."""
        return self.observed.report(peer_address)

    # ----------------------------------------------------------- receiving
    def peer_stream(self, sid: int) -> Violation | None:
        """The peer opened a CONTROL stream on ``sid``: one is allowed."""
        if self.peer_sid is not None:
            return Violation("a second control stream")
        self.peer_sid = sid
        return None

    def receive(self, data: bytes, fin: bool) -> list[ControlEvent]:
        """Records from the peer's control stream, as events (a `Violation` ends them)."""
        try:
            records = self._parser.feed(data)
        except RemoteProtocolError as exc:
            return [Violation(f"control stream: {exc}")]
        events: list[ControlEvent] = []
        for rec in records:
            if isinstance(rec, _wire.Settings):
                self.peer_max_message_size = rec.max_message_size
                self.peer_incarnation = rec.incarnation
                events.append(Established())
            elif isinstance(rec, _wire.GoAway):
                if self.peer_goaway is None:
                    self.peer_goaway = rec
                    events.append(PeerGoaway())
            elif isinstance(rec, ObservedAddress):
                events += self.observed.received_record(rec)
            else:
                events.append(rec)
        if fin:
            events.append(Violation("the control stream ended"))
        return events

    def peer_streams_arrived(self, opened: Mapping[bool, int]) -> bool:
        """Whether every stream the peer's GOAWAY counts has arrived.

        ``opened``: the distinct streams the peer opened so far, by
        unidirectional.  False while no GOAWAY came.
        """
        goaway = self.peer_goaway
        return (
            goaway is not None
            and opened[True] >= goaway.uni_opened
            and opened[False] >= goaway.bidi_opened
        )
