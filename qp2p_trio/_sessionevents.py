# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""What a `_session.Session` tells whoever drives it (sans-IO).

After every input a session leaves these in ``Session.events``; its Trio
`Connection` forwards each to the driver (routes, admission, established,
retirement, close, messages, refusals).  `_control` makes `Established`,
`PeerGoaway` and `_observed.AddressObserved` from the peer's control records.
"""

from __future__ import annotations

from typing import final

import attrs

from ._observed import AddressObserved

__all__ = [
    "AdmissionNeeded",
    "Closed",
    "Established",
    "MessageArrived",
    "PeerGoaway",
    "ProtocolOpened",
    "RouteAdded",
    "RouteRemoved",
    "SessionEvent",
    "StreamRefused",
]


@final
@attrs.frozen
class RouteAdded:
    """Route datagrams for this new local connection id here."""

    cid: bytes


@final
@attrs.frozen
class RouteRemoved:
    """Stop routing datagrams for this retired local connection id here."""

    cid: bytes


@final
@attrs.frozen
class AdmissionNeeded:
    """The peer proved its node id: admit it or not (`Session.decide_admission`)."""


@final
@attrs.frozen
class Closed:
    """The connection ended; `Session.close_exc` says how."""


@final
@attrs.frozen
class MessageArrived:
    """A complete message or request; ``reserved`` bytes of budget go with it."""

    sid: int
    payload: bytes
    request: bool
    reserved: int
    streamed: int | None = None  # the declared size of a message read in chunks


@final
@attrs.frozen
class StreamRefused:
    """We refused one of the peer's streams with ``code`` (counted by the driver)."""

    code: int


@final
@attrs.frozen
class Established:
    """The peer is verified and its SETTINGS arrived."""


@final
@attrs.frozen
class PeerGoaway:
    """The peer retired this connection (a duplicate)."""


@final
@attrs.frozen
class ProtocolOpened:
    """The peer opened a PROTOCOL stream (``sid``) for protocol ``name``: route it."""

    sid: int
    name: str


_Lifecycle = RouteAdded | RouteRemoved | AdmissionNeeded | Established | PeerGoaway | Closed
SessionEvent = _Lifecycle | MessageArrived | StreamRefused | AddressObserved | ProtocolOpened
