# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The peer cache's contents and file format (sans-IO: no file, no clock).

Theory of operation
-------------------
A `PeerCache` remembers the peers an endpoint met (`Config.peer_cache`):
for each node id, the direct addresses it was connected at, the relays it
was reached through, when it was last seen (Unix time, passed in by the
caller) and whether that last contact was direct.  It is bounded: at most
`MAX_PEERS` peers (the least recently seen are forgotten first), at most
`MAX_ADDRESSES` addresses and `MAX_RELAYS` relays each (the latest first).

`dumps` writes it as JSON text, and `loads` reads it back::

    {"format": "qp2p-trio peer cache", "version": 1,
     "peers": [{"node_id": "<base32>", "addresses": ["192.0.2.7:4433"],
                "relays": ["<relay-id>@198.51.100.1:4433"],
                "last_seen": 1795000000.0, "direct": true}, ...]}

The file is input like any other: `loads` raises `PeerCacheError` for text
that is not a peer cache at all (not JSON, another format, a newer version,
more than `MAX_FILE_BYTES`), and skips, counting them, entries that do not
parse (a bad node id, address or relay, a non-finite time) and those past
the bounds.  Nothing read here is trusted for identity: a cached address is
only where to dial, and the TLS handshake still proves the node id.

Owns nothing but the entries; the endpoint's `_peercache_io.PeerCacheStore`
reads and writes the file.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, final

import attrs

from ._errors import PeerCacheError
from ._identity import NodeId
from ._peer import PeerAddress

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "FORMAT",
    "MAX_ADDRESSES",
    "MAX_FILE_BYTES",
    "MAX_PEERS",
    "MAX_RELAYS",
    "VERSION",
    "CachedPeer",
    "PeerCache",
    "loads",
]

#: The ``format`` field every peer cache file carries.
FORMAT: Final = "qp2p-trio peer cache"
#: The file format version this module writes and reads.
VERSION: Final = 1
#: Peers a cache keeps, at most (the least recently seen go first).
MAX_PEERS: Final = 1000
#: Direct addresses kept per peer, at most (the latest first).
MAX_ADDRESSES: Final = 4
#: Relays kept per peer, at most (the latest first).
MAX_RELAYS: Final = 2
#: Largest file `loads` reads: 1,000 full entries fit several times over.
MAX_FILE_BYTES: Final = 4 * 1024 * 1024


def _text_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@final
@attrs.frozen
class CachedPeer:
    """What the cache knows about one peer.

    Attributes:
        node_id: the peer's node id.
        addresses: direct ``(host, port)`` addresses it was connected at,
            the latest first.
        relays: relays it was reached through, the latest first.
        last_seen: Unix time of the last contact.
        direct: whether that last contact was direct (not relayed).
    """

    node_id: NodeId
    addresses: tuple[tuple[str, int], ...] = ()
    relays: tuple[PeerAddress, ...] = ()
    last_seen: float = 0.0
    direct: bool = False

    def peer_address(self, *, one_path: bool = False) -> PeerAddress | None:
        """The peer as `Endpoint.connect` takes it: the latest address and relay.

        With ``one_path``, only the path of the last contact (its address
        if it was direct, else its relay), for callers that cannot race two.
        ``None`` if the cache holds neither.
        """
        address = self.addresses[0] if self.addresses else None
        relay = self.relays[0] if self.relays else None
        if one_path and address is not None and relay is not None:
            if self.direct:
                relay = None
            else:
                address = None
        if address is None and relay is None:
            return None
        return PeerAddress(self.node_id, address, relay=relay)

    def to_json(self) -> dict[str, object]:
        return {
            "node_id": str(self.node_id),
            "addresses": [_text_address(a) for a in self.addresses],
            "relays": [str(r) for r in self.relays],
            "last_seen": self.last_seen,
            "direct": self.direct,
        }


def _parse_address(text: object) -> tuple[str, int]:
    if not isinstance(text, str) or len(text) > 300:
        raise ValueError("an address must be a 'host:port' string")
    # Borrow PeerAddress's parser (and its checks) with a throwaway id.
    address = PeerAddress.parse(f"{_ANY_ID}@{text}").address
    if address is None:  # pragma: no cover - "<id>@..." always has one
        raise ValueError("no address")
    return address


_ANY_ID: Final = "a" * 64  # 64 hex digits: parses as a node id


def _parse_entry(raw: object) -> CachedPeer:
    """One entry of the file; ValueError (or TypeError) if it does not parse."""
    if not isinstance(raw, dict):
        raise TypeError("an entry must be an object")
    node_text = raw.get("node_id")
    if not isinstance(node_text, str):
        raise TypeError("node_id must be a string")
    node_id = NodeId.parse(node_text)
    addresses = raw.get("addresses", [])
    relays = raw.get("relays", [])
    if not isinstance(addresses, list) or not isinstance(relays, list):
        raise TypeError("addresses and relays must be lists")
    last_seen = raw.get("last_seen", 0.0)
    if isinstance(last_seen, bool) or not isinstance(last_seen, int | float):
        raise TypeError("last_seen must be a number")
    if not math.isfinite(last_seen) or last_seen < 0:
        raise ValueError("last_seen must be a finite number >= 0")
    direct = raw.get("direct", False)
    if not isinstance(direct, bool):
        raise TypeError("direct must be true or false")
    parsed_relays: list[PeerAddress] = []
    for text in relays[:MAX_RELAYS]:
        if not isinstance(text, str) or len(text) > 300:
            raise TypeError("a relay must be a peer address string")
        relay = PeerAddress.parse(text)
        if relay.address is None or relay.relay is not None or relay.node_id == node_id:
            raise ValueError(f"{text!r} cannot be this peer's relay")
        parsed_relays.append(relay)
    return CachedPeer(
        node_id,
        tuple(_parse_address(a) for a in addresses[:MAX_ADDRESSES]),
        tuple(parsed_relays),
        float(last_seen),
        direct,
    )


@final
class PeerCache:
    """Known peers, bounded, least recently seen first (see the module docstring).

    Attributes:
        changed: set by every change, cleared by whoever saved the cache.
    """

    def __init__(self, limit: int = MAX_PEERS) -> None:
        if limit <= 0:
            raise ValueError(f"a peer cache must hold at least one peer, got {limit}")
        self._limit = limit
        self._peers: OrderedDict[NodeId, CachedPeer] = OrderedDict()
        self.changed = False

    def __len__(self) -> int:
        return len(self._peers)

    def __iter__(self) -> Iterator[CachedPeer]:
        """The entries, least recently seen first."""
        return iter(list(self._peers.values()))

    def get(self, node_id: NodeId) -> CachedPeer | None:
        """What the cache knows about ``node_id``, if anything."""
        return self._peers.get(node_id)

    def seen(
        self,
        node_id: NodeId,
        now: float,
        *,
        address: tuple[str, int] | None = None,
        relay: PeerAddress | None = None,
        create: bool = True,
    ) -> None:
        """Record a contact with ``node_id`` at ``now``: direct at ``address``, or
        relayed through ``relay`` (neither: the entry's time only, if it exists).
        Without ``create``, only a peer the cache holds already is updated."""
        old = self._peers.get(node_id)
        if old is None and (not create or (address is None and relay is None)):
            return
        if old is None:
            old = CachedPeer(node_id)
        addresses, relays, direct = old.addresses, old.relays, old.direct
        if address is not None:
            addresses = (address, *(a for a in addresses if a != address))[:MAX_ADDRESSES]
            direct = True
        if relay is not None:
            relays = (relay, *(r for r in relays if r != relay))[:MAX_RELAYS]
            direct = address is not None
        self._put(CachedPeer(node_id, addresses, relays, max(now, old.last_seen), direct))

    def add(self, peer: CachedPeer) -> None:
        """Insert or replace an entry (as read from a file), keeping the order by time."""
        self._put(peer)

    def forget(self, node_id: NodeId) -> None:
        """Drop ``node_id``'s entry, if any."""
        if self._peers.pop(node_id, None) is not None:
            self.changed = True

    def _put(self, peer: CachedPeer) -> None:
        peers = self._peers
        peers.pop(peer.node_id, None)
        peers[peer.node_id] = peer
        # Keep the order by last_seen: entries seen later move behind it (rare).
        later: list[NodeId] = []
        for other in reversed(list(peers.values())[:-1]):
            if other.last_seen <= peer.last_seen:
                break
            later.append(other.node_id)
        for node_id in reversed(later):
            peers.move_to_end(node_id)
        while len(peers) > self._limit:
            peers.popitem(last=False)
        self.changed = True

    def dumps(self) -> str:
        """The cache as the JSON text of the file format (least recently seen first)."""
        document = {
            "format": FORMAT,
            "version": VERSION,
            "peers": [peer.to_json() for peer in self._peers.values()],
        }
        return json.dumps(document, indent=1, allow_nan=False) + "\n"


def loads(text: str | bytes, limit: int = MAX_PEERS) -> tuple[PeerCache, int]:
    """Read a peer cache from the text of its file.

    Returns:
        The cache (at most ``limit`` peers: the most recently seen) and how
        many entries were skipped because they did not parse.

    Raises:
        PeerCacheError: the text is not a peer cache of this version (not
            JSON, no or another ``format``, a ``version`` other than
            `VERSION`), or is larger than `MAX_FILE_BYTES`.
    """
    if len(text) > MAX_FILE_BYTES:
        raise PeerCacheError(f"larger than {MAX_FILE_BYTES} bytes: not a peer cache")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise PeerCacheError(f"not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PeerCacheError(f"not a peer cache (no 'format': {FORMAT!r})")
    version = document.get("version")
    if version != VERSION:
        raise PeerCacheError(f"version {version!r}; this qp2p_trio reads version {VERSION}")
    entries = document.get("peers")
    if not isinstance(entries, list):
        raise PeerCacheError("'peers' is not a list")
    cache = PeerCache(limit)
    skipped = 0
    parsed: list[CachedPeer] = []
    for raw in entries:
        try:
            parsed.append(_parse_entry(raw))
        except (ValueError, TypeError):
            skipped += 1
    parsed.sort(key=lambda peer: peer.last_seen)
    for peer in parsed[-limit:]:
        cache.add(peer)
    cache.changed = False
    return cache, skipped
