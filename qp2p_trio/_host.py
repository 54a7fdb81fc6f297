# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`ConnectionHost`: all a connection needs from whoever drives it.

The interface between a `Connection` and the endpoint side, declared on the
connection's side: the connection imports nothing from `_driver`, `_dial` or
`_endpoint`; the `_driver.Driver` implements this (structurally).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._budget import ReceiveBudget
    from ._config import Config
    from ._connection import Connection
    from ._message import Message
    from ._peer import PeerAddress
    from ._protocols import ProtocolRouter
    from ._quic import Address

__all__ = ["ConnectionHost"]


class ConnectionHost(Protocol):
    """What a connection needs from whoever drives it (the `_driver.Driver`).

    The whole interface between a connection and the endpoint side: a
    connection imports nothing from there.
    """

    config: Config
    #: Our endpoint's run number, sent in SETTINGS.
    incarnation: int
    #: Unix time, for certificate validity.
    wall_clock: Callable[[], float]
    #: The endpoint's receive budget, shared fairly among peer addresses.
    budget: ReceiveBudget[str]
    #: Where the peer's PROTOCOL streams go (`ProtocolRouter.offer`).
    protocols: ProtocolRouter

    @property
    def may_refuse(self) -> bool:
        """Whether a trust policy might refuse a new connection's peer."""

    def judge_peer(self, conn: Connection) -> bool | None:
        """Admit the verified peer (True), refuse it (False), or decide later (None).

        Later: the host calls `Connection.decide_admission`.
        """

    def present_address(self, addr: Address) -> Address:
        """A socket address in the form users see."""

    def mark_dirty(self, conn: Connection) -> None:
        """The connection has something to transmit: the send task will."""

    def flush(self, conn: Connection) -> None:
        """Transmit the connection now from the calling task, if possible."""

    def route_add(self, cid: bytes, conn: Connection) -> None:
        """Route datagrams for a new local connection id here."""

    def route_remove(self, cid: bytes, conn: Connection) -> None:
        """Stop routing a retired local connection id here."""

    def connection_established(self, conn: Connection) -> None:
        """The peer is verified and its SETTINGS arrived."""

    def connection_closed(self, conn: Connection) -> None:
        """The connection ended (either side, or a timeout)."""

    def peer_goaway(self, conn: Connection) -> None:
        """The peer retired the connection (GOAWAY)."""

    def address_observed(self, conn: Connection, address: tuple[str, int]) -> None:
        """The peer says it sees us at ``address`` (an OBSERVED_ADDRESS record)."""

    def deliver(self, msg: Message, peer: str, reserved: int) -> bool:
        """Queue a complete message for the application; False if nobody takes it."""

    def count_refused(self, code: int) -> None:
        """An incoming stream was refused with ``code``."""

    def path_info(self, conn: Connection) -> tuple[str, PeerAddress | None]:
        """Which path carries the connection: ``"direct"``, ``"relayed"`` (and the relay)."""
