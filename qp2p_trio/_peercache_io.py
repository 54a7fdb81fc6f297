# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The peer cache's file and its task: the Trio edge of `_peercache`.

Theory of operation
-------------------
With `Config.peer_cache` set, the endpoint makes a `PeerCacheStore` when it
opens: it reads the file at once (a missing file is an empty cache).  A
file that is not a peer cache this version can use (`PeerCacheError`: not
JSON, another format, a newer version, too large, not a regular file) or
cannot be read is logged and *left untouched*: the endpoint runs with an
empty cache that lives in memory only, so a mistyped path never destroys
someone's file.  Entries that do not parse are skipped (logged, counted).

`PeerCacheStore.run`, a task of the endpoint, follows the endpoint's peer
events: a peer that we dialled, or whose connection moves to the direct
path, is recorded with the path it uses now (its address if direct, its
relay if relayed) and the wall-clock time; one that disconnects gets its
time updated.  A peer that dialled us only updates an entry it has: a node
that makes up identities by the thousand cannot push the peers we chose out
of the bounded cache.  Changes are written `SAVE_DELAY` seconds after the first one
(so a burst of connections costs one write), and once more when the
endpoint closes, with the live peers marked seen then.  Each write goes to
a temporary file in the same directory (mode 0600: the cache says whom
this node talks to), is flushed to disk and renamed over the file, so a
crash leaves the old file or the new one, never a torn one.  Writes run in
a worker thread; a failing one is logged and never stops the endpoint.

`PeerCacheStore.lookup` gives `Endpoint.connect` the peer address of a node
id it has no live connection to.  The cache is never trusted for identity:
it only says where to dial, and the handshake still proves the node id.

Owns: the cache in memory, the file, the saving task.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import tempfile
import threading
from typing import TYPE_CHECKING, Final, TypeVar, final

import trio

from ._errors import PeerCacheError
from ._events import Connected, Disconnected, PathChanged
from ._identity import NodeId
from ._observe import get_logger
from ._peercache import MAX_FILE_BYTES, MAX_PEERS, PeerCache, loads

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._connection import Connection
    from ._events import PeerEvent, PeerEvents
    from ._peer import PeerAddress
    from ._pool import Pool

__all__ = ["SAVE_DELAY", "PeerCacheStore", "read_peer_cache"]

#: Seconds between a change and the write that saves it.
SAVE_DELAY: Final = 2.0

_log = get_logger("peercache")
T = TypeVar("T")


def _read(path: str) -> bytes | None:
    """The file's bytes, ``None`` if there is none (PeerCacheError, OSError)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise PeerCacheError("not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise PeerCacheError(f"larger than {MAX_FILE_BYTES} bytes: not a peer cache")
    with open(path, "rb") as file:
        return file.read(MAX_FILE_BYTES + 1)


def read_peer_cache(path: str | os.PathLike[str]) -> dict[NodeId, PeerAddress]:
    """Read a peer cache file (`Config.peer_cache`): where each peer in it can be dialled.

    For each peer, its latest direct address and relay, as `Endpoint.connect`
    takes them; entries that do not parse are skipped.  Nothing here proves
    anything: connecting still checks the node id.

    Example::

        known = qp2p_trio.read_peer_cache("peers.json")
        for node_id, peer in known.items():
            print(node_id.short(), peer)

    Args:
        path: the file.

    Returns:
        Peer addresses by node id, the least recently seen first; empty if
        there is no file.

    Raises:
        PeerCacheError: the file is not a peer cache this version reads.
        OSError: it cannot be read.
    """
    data = _read(os.fspath(path))
    if data is None:
        return {}
    cache, _skipped = loads(data)
    found = {}
    for entry in cache:
        peer = entry.peer_address()
        if peer is not None:
            found[entry.node_id] = peer
    return found


def write_atomically(path: str, text: str, commit: Callable[[], bool] = lambda: True) -> None:
    """Replace ``path`` with ``text``: a 0600 temporary file, fsync, rename.

    ``commit`` is asked just before the rename (under a lock): if it says
    no, a newer text was written meanwhile and this one is dropped.
    """
    directory, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        with _RENAME_LOCK:
            if commit():
                os.replace(temporary, path)
                return
        os.unlink(temporary)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


_RENAME_LOCK = threading.Lock()


@final
class PeerCacheStore:
    """An endpoint's peer cache and its file (see the module docstring).

    Attributes:
        cache: the entries.
        writable: whether the file is ours to write (false after a file we
            could not use, which is left alone).
        skipped: entries of the file that did not parse.
        saves / save_errors: writes done and writes that failed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        wall_clock: Callable[[], float],
        limit: int = MAX_PEERS,
    ) -> None:
        self.path = "" if path is None else os.fspath(path)
        self._wall_clock = wall_clock
        self._generation = 0  # of the latest text taken to be written
        self._written = 0  # of the text in the file
        self.cache = PeerCache(limit)
        self.enabled = self.writable = path is not None
        self.skipped = 0
        self.saves = 0
        self.save_errors = 0
        if not self.enabled:
            return  # no Config.peer_cache: an empty cache nobody writes
        try:
            data = _read(self.path)
            if data is not None:
                self.cache, self.skipped = loads(data, limit)
        except (PeerCacheError, OSError) as exc:
            self.writable = False
            _log.warning(
                "peer cache %s unusable (%s): starting empty, the file is left untouched",
                self.path,
                exc,
            )
            return
        if self.skipped:
            _log.warning("peer cache %s: %d bad entries skipped", self.path, self.skipped)
        _log.info("peer cache %s: %d peers", self.path, len(self.cache))

    # ------------------------------------------------------------ recording
    def record(self, conn: Connection, *, create: bool) -> None:
        """``conn``'s peer is connected now, on ``conn``'s path; ``create``: a new
        entry if the cache has none."""
        kind = conn.path
        if kind not in ("direct", "relayed"):
            return  # another attached path: nothing a later dial could use
        try:
            peer = conn.peer
            now = self._wall_clock()
            if kind == "direct":
                self.cache.seen(peer.node_id, now, address=peer.address, create=create)
            elif peer.relay is not None:
                self.cache.seen(peer.node_id, now, relay=peer.relay, create=create)
        except (ValueError, TypeError, RuntimeError) as exc:
            _log.debug("peer cache: not recording %r (%s)", conn, exc)

    def note(self, event: PeerEvent) -> None:
        """Record what a peer event says.

        Only peers this endpoint dialled get an entry: any node can dial us,
        and one that makes up identities by the thousand must not push the
        peers we chose out of the bounded cache.  A peer that dialled us
        updates its entry if it has one (its address and time only).
        """
        if isinstance(event, Connected):
            self.record(event.connection, create=not event.incoming)
        elif isinstance(event, PathChanged):
            self.record(event.connection, create=False)
        elif isinstance(event, Disconnected):
            self.cache.seen(event.peer, self._wall_clock())

    def note_live(self, conns: Iterable[Connection]) -> None:
        """Every one of ``conns`` is connected now (the endpoint is closing)."""
        for conn in conns:
            self.record(conn, create=False)

    def lookup(self, node_id: NodeId, *, one_path: bool) -> PeerAddress | None:
        """Where to dial ``node_id`` (`CachedPeer.peer_address`), if cached."""
        entry = self.cache.get(node_id)
        return None if entry is None else entry.peer_address(one_path=one_path)

    def dial(self, peer: T, pool: Pool, *, one_path: bool) -> T | PeerAddress:
        """``peer``, or its cached address if it is a node id without a live
        connection in ``pool`` (for `Endpoint.connect`, ``send`` and ``request``)."""
        if not self.enabled or not isinstance(peer, NodeId) or pool.peer(peer) is not None:
            return peer
        return self.lookup(peer, one_path=one_path) or peer

    def close(self, live: Iterable[Connection]) -> None:
        """The endpoint is closing: mark the ``live`` peers seen now, write the file."""
        self.note_live(live)
        self.save_now()  # blocking, once: no thread to wait for

    # --------------------------------------------------------------- saving
    def save_now(self) -> bool:
        """Write the cache now if it changed (blocking: when the endpoint closes);
        whether the file is up to date."""
        job = self._take()
        return self.writable if job is None else self._done(self._write(*job))

    async def save(self) -> bool:
        """`save_now` in a worker thread."""
        job = self._take()
        if job is None:
            await trio.lowlevel.checkpoint()
            return self.writable
        return self._done(await trio.to_thread.run_sync(self._write, *job))

    def _take(self) -> tuple[str, int] | None:
        if not self.writable or not self.cache.changed:
            return None
        self.cache.changed = False
        self._generation += 1
        return self.cache.dumps(), self._generation

    def _write(self, text: str, generation: int) -> OSError | None:
        """Write one generation of the file (maybe in a worker thread); the error."""

        def newest() -> bool:  # under the rename lock
            if generation <= self._written:
                return False  # a newer save got there first
            self._written = generation
            return True

        try:
            write_atomically(self.path, text, newest)
        except OSError as exc:
            return exc
        return None

    def _done(self, error: OSError | None) -> bool:
        if error is None:
            self.saves += 1
            return True
        self.cache.changed = True
        self.save_errors += 1
        _log.warning("cannot write the peer cache %s: %s", self.path, error)
        return False

    async def run(self, subscribe: Callable[[], PeerEvents]) -> None:
        """Follow the peer events (``subscribe()``) and save changes, until the
        endpoint closes them; nothing without a file."""
        if not self.enabled:
            return
        deadline = math.inf
        async with subscribe() as events:
            while True:
                with trio.move_on_at(deadline) as timer:
                    try:
                        event = await events.receive()
                    except (trio.EndOfChannel, trio.ClosedResourceError):
                        return
                if timer.cancelled_caught:
                    deadline = math.inf
                    await self.save()
                    continue
                self.note(event)
                if self.cache.changed and deadline == math.inf:
                    deadline = trio.current_time() + SAVE_DELAY
