# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The endpoint's receive budget, shared fairly among peers (sans-IO).

Theory of operation
-------------------
Everything a peer makes us hold before the application takes it counts
here: the declared size of every message or request being received or
waiting in the receive queue (one *message* and its length in *bytes*,
reserved at the message head, before any payload byte is buffered), and
the unread bytes of raw streams (bytes only, reserved as they arrive).

The endpoint-wide totals are `Config.receive_queue_messages` and
`Config.receive_queue_bytes`.  No one peer may hold more than its *share*:
`Config.receive_share` of each total (at least one message of
`Config.max_message_size`).  A peer is its address key (the IPv4 address,
or the IPv6 /64, see `_admission.address_key`), so opening more connections
from one address buys nothing.  A reservation that does not fit is refused:
the message gets ``BUSY``, the raw stream is stopped.
"""

from __future__ import annotations

from typing import Generic, TypeVar, final

import attrs

__all__ = ["ReceiveBudget", "Usage"]

K = TypeVar("K")


@final
@attrs.define
class Usage:
    """What one peer (or everybody) holds: messages and bytes."""

    messages: int = 0
    bytes: int = 0


@final
class ReceiveBudget(Generic[K]):
    """Endpoint-wide receive budget with a fair share per peer (see module doc)."""

    def __init__(self, *, messages: int, nbytes: int, share: float, min_share_bytes: int) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be within (0, 1], got {share!r}")
        self.limit = Usage(messages, nbytes)
        self.share = Usage(
            max(1, int(messages * share)), min(nbytes, max(min_share_bytes, int(nbytes * share)))
        )
        self.total = Usage()
        self._peers: dict[K, Usage] = {}
        #: Set when the endpoint stops receiving: every reservation fails.
        self.closed = False

    def reserve(self, peer: K, *, messages: int, nbytes: int) -> bool:
        """Reserve for ``peer``; False (nothing reserved) if it would pass a limit."""
        if self.closed:
            return False
        used = self._peers.get(peer)
        mine = used if used is not None else Usage()
        total, limit, share = self.total, self.limit, self.share
        if messages and (
            total.messages + messages > limit.messages or mine.messages + messages > share.messages
        ):
            return False
        if nbytes and (total.bytes + nbytes > limit.bytes or mine.bytes + nbytes > share.bytes):
            return False
        total.messages += messages
        total.bytes += nbytes
        mine.messages += messages
        mine.bytes += nbytes
        if used is None:
            self._peers[peer] = mine
        return True

    def release(self, peer: K, *, messages: int, nbytes: int) -> None:
        """Give back what `reserve` granted (never more)."""
        mine = self._peers.get(peer)
        if mine is None:
            raise ValueError(f"release for {peer!r}, which holds nothing")
        if messages > mine.messages or nbytes > mine.bytes:
            raise ValueError(
                f"release of {messages} messages / {nbytes} bytes for {peer!r}, "
                f"which holds {mine.messages} / {mine.bytes}"
            )
        mine.messages -= messages
        mine.bytes -= nbytes
        self.total.messages -= messages
        self.total.bytes -= nbytes
        if not mine.messages and not mine.bytes:
            del self._peers[peer]

    def usage(self, peer: K) -> Usage:
        """What ``peer`` holds now (a copy)."""
        mine = self._peers.get(peer)
        return Usage() if mine is None else Usage(mine.messages, mine.bytes)

    @property
    def peers(self) -> int:
        """How many peers hold anything."""
        return len(self._peers)
