# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Which of our dials an ICMP "unreachable" report may fail (sans-IO).

The socket reports ICMP errors (IP_RECVERR) as (address, errno) pairs.  A
report is easy to forge, so it may end only a dial over the socket whose
handshake has not received a single datagram from its peer (a peer that
answered is there); established connections never look at them.  This
module keeps those dials by the peer's (host, port) and decides; the
driver carries the decision out.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

from ._errors import PeerUnreachable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._quic import Address

__all__ = ["DialWatch"]

Dial = TypeVar("Dial", bound=Hashable)


class DialWatch(Generic[Dial]):
    """Our socket dials still waiting for their handshake, by the peer's (host, port)."""

    __slots__ = ("_by_address", "_key")

    def __init__(self) -> None:
        self._by_address: dict[Address, list[Dial]] = {}
        self._key: dict[Dial, Address] = {}

    def add(self, conn: Dial, key: Address) -> None:
        self._by_address.setdefault(key, []).append(conn)
        self._key[conn] = key

    def done(self, conn: Dial) -> None:
        """``conn`` finished its handshake, failed or was forgotten."""
        key = self._key.pop(conn, None) if self._key else None
        if key is not None:
            dialing = self._by_address[key]
            dialing.remove(conn)
            if not dialing:
                del self._by_address[key]

    def failed_by(
        self,
        reports: Iterable[tuple[Address, int]],
        present: Callable[[Address], Address],
        heard_from: Callable[[Dial], bool],
    ) -> list[tuple[Dial, PeerUnreachable]]:
        """The dials these reports end, each with its error.

        ``present`` converts a socket-form address to the form users see;
        ``heard_from`` tells whether a dial received anything from its peer.
        """
        out: list[tuple[Dial, PeerUnreachable]] = []
        failed: set[Dial] = set()
        for addr, code in reports:
            key = present(addr)[:2]
            for conn in self._by_address.get(key, ()):
                if conn in failed or heard_from(conn):
                    continue
                failed.add(conn)
                host = f"[{key[0]}]" if ":" in str(key[0]) else str(key[0])
                error = PeerUnreachable(
                    f"{host}:{key[1]} is unreachable: {os.strerror(code)} "
                    "(an ICMP error answered our handshake)",
                    address=key,
                    errno=code,
                )
                out.append((conn, error))
        return out
