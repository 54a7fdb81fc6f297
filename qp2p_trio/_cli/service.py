# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The service behind ``qp2p-trio listen`` (and the local ``bench``).

`Service` announces connecting peers, prints the messages that arrive, and
answers requests: plain ones as ``--reply`` says (echo by default), the
command's own file requests with a SHA-256, and probes by echoing them
quietly (see `protocol` for that small protocol).  A file over the
listener's --max-message-size arrives as a streamed message and is hashed
and written as it arrives, in bounded memory.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO, final

import trio

from qp2p_trio import AdmissionRefused, ConnectionClosed, HandshakeFailed, QP2PError

from .output import format_address, format_size, preview, print_json
from .protocol import BULK_TAG, PROBE_TAG, decode_file_request, file_head_size, sha256

if TYPE_CHECKING:
    from pathlib import Path

    from qp2p_trio import Connection, Endpoint, Message

__all__ = ["ReplyMode", "Service"]

ReplyMode = Literal["echo", "upper", "reject"]

#: Requests answered concurrently; more wait in the endpoint's bounded queue.
_MAX_HANDLERS: Final = 64
_MAX_NAME_TRIES: Final = 1000
#: Bytes read per call from a streamed file.
_CHUNK: Final = 1024 * 1024


@final
class Service:
    """Serve one endpoint's peers until cancelled.

    Args:
        endpoint: the endpoint to serve.
        reply: how to answer plain requests: ``echo`` the payload,
            ``upper``-case it, or ``reject`` it.
        quiet: print nothing (a local benchmark's server side).
        json: print JSON lines instead of text.
        save_dir: directory to save received files in, or ``None``.
        stream: where to print (stdout by default).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        reply: ReplyMode = "echo",
        quiet: bool = False,
        json: bool = False,
        save_dir: Path | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.reply: ReplyMode = reply
        self.quiet = quiet
        self.json = json
        self.save_dir = save_dir
        self.stream = sys.stdout if stream is None else stream
        self.limiter = trio.CapacityLimiter(_MAX_HANDLERS)
        self.messages = 0
        self.requests = 0
        self.files = 0
        self.probes = 0
        self.bulk_bytes = 0
        #: Connections peers opened to us that are still open.
        self.live: set[Connection] = set()

    # ------------------------------------------------------------- output
    def event(self, kind: str, human: str, /, **fields: Any) -> None:
        """Print one event: ``kind`` and ``fields`` as JSON, or the ``human`` text."""
        if self.quiet:
            return
        if self.json:
            print_json({"event": kind, **fields}, self.stream)
        else:
            print(human, file=self.stream, flush=True)

    def _peer_fields(self, conn: Connection) -> dict[str, Any]:
        return {"peer": str(conn.peer_id), "address": _where(conn), "path": conn.path}

    # ------------------------------------------------------------ serving
    async def run(self) -> None:
        """Accept connections and serve messages until cancelled or the endpoint closes."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._accept_loop, nursery)
            nursery.start_soon(self._report_refusals)
            async for msg in self.endpoint.messages():
                await self.limiter.acquire_on_behalf_of(msg)
                nursery.start_soon(self._handle, msg)

    async def _report_refusals(self) -> None:
        """Print the peers our trust policy (``--ca``, ``--allow``, ``--deny``) refused."""
        async with self.endpoint.events() as events:
            async for event in events:
                if not (
                    isinstance(event, HandshakeFailed)
                    and event.incoming
                    and isinstance(event.error, AdmissionRefused)
                    and not event.error.by_peer
                ):
                    continue
                peer = "" if event.peer is None else str(event.peer)
                address = format_address(event.address)
                self.event(
                    "refused",
                    f"refused:      {peer[:10]} from {address} (trust policy; -v says why)",
                    peer=peer,
                    address=address,
                )

    async def _accept_loop(self, nursery: trio.Nursery) -> None:
        while True:
            try:
                conn = await self.endpoint.accept()
            except trio.ClosedResourceError:
                return
            self.event(
                "connected",
                f"connected:    {conn.peer_id.short()} from {_where(conn)}",
                **self._peer_fields(conn),
            )
            self.live.add(conn)
            nursery.start_soon(self._watch, conn)

    async def _watch(self, conn: Connection) -> None:
        fields = self._peer_fields(conn)
        try:
            closed = await conn.wait_closed()
        finally:
            self.live.discard(conn)
        if closed.idle_timeout:
            how = "idle timeout"
        elif closed.by_peer:
            how = "closed by the peer"
        else:
            how = "closed by us"
        if closed.error_code or closed.reason:
            how += f", code {closed.error_code}" + (f": {closed.reason}" if closed.reason else "")
        self.event(
            "disconnected",
            f"disconnected: {conn.peer_id.short()} ({how})",
            reason=how,
            code=closed.error_code,
            **fields,
        )

    async def _handle(self, msg: Message) -> None:
        try:
            await self._dispatch(msg)
        except ConnectionClosed as exc:
            if not (exc.by_peer and exc.error_code == 0):
                self._error(msg, exc)
            # Else the requester closed normally right after reading the
            # reply, before our side saw its receipt: nothing went wrong.
        except (QP2PError, trio.ClosedResourceError, trio.BrokenResourceError, OSError) as exc:
            self._error(msg, exc)
        finally:
            self.limiter.release_on_behalf_of(msg)

    def _error(self, msg: Message, exc: BaseException) -> None:
        self.event(
            "error",
            f"error:        {msg.sender.short()}: {exc}",
            peer=str(msg.sender),
            error=str(exc),
        )

    async def _dispatch(self, msg: Message) -> None:
        if msg.streamed:
            await self._receive_streamed(msg)
            return
        payload = msg.payload
        who = msg.sender.short()
        if not msg.expects_reply:
            if payload.startswith(BULK_TAG):
                self.bulk_bytes += len(payload)
                return
            self.messages += 1
            self.event(
                "message",
                f"message:      {who}  {len(payload)} bytes  {preview(payload)}",
                peer=str(msg.sender),
                bytes=len(payload),
                text=payload.decode("utf-8", "replace"),
            )
            return
        if payload.startswith(PROBE_TAG):
            self.probes += 1
            await msg.reply(payload)
            return
        file = decode_file_request(payload)
        if file is not None:
            await self._receive_file(msg, *file)
            return
        self.requests += 1
        answer = "rejected" if self.reply == "reject" else f"answered ({self.reply})"
        self.event(
            "request",
            f"request:      {who}  {len(payload)} bytes  {preview(payload)}  {answer}",
            peer=str(msg.sender),
            bytes=len(payload),
            text=payload.decode("utf-8", "replace"),
            answer=self.reply,
        )
        if self.reply == "reject":
            msg.reject()
        else:
            await msg.reply(payload.upper() if self.reply == "upper" else payload)

    async def _receive_file(self, msg: Message, name: str, content: memoryview) -> None:
        self.files += 1
        digest = await trio.to_thread.run_sync(sha256, content)
        saved: str | None = None
        if self.save_dir is not None:
            saved = await trio.to_thread.run_sync(_save, self.save_dir, name, content)
        self._file_event(msg, name, len(content), digest, saved)
        await msg.reply(digest)

    async def _receive_streamed(self, msg: Message) -> None:
        """A message over --max-message-size: a file is hashed (and saved) as it arrives."""
        start = b""
        while (need := file_head_size(start)) is None or len(start) < need:
            chunk = await msg.receive_some(_CHUNK)
            if not chunk:
                break
            start += chunk
        need = file_head_size(start)
        file = decode_file_request(start) if need and msg.expects_reply else None
        if file is None:
            # Not one of our files: too large to show; refused unread.
            msg.discard()
            self.event(
                "message",
                f"message:      {msg.sender.short()}  {msg.size} bytes  (too large to show: "
                "discarded)",
                peer=str(msg.sender),
                bytes=msg.size,
                text=None,
            )
            if msg.expects_reply:
                msg.reject()
            return
        assert need is not None
        name = file[0]
        self.files += 1
        digest = hashlib.sha256()
        saved: str | None = None
        out: Any = None
        if self.save_dir is not None:
            saved, fd = await trio.to_thread.run_sync(_create, self.save_dir, name)
            out = trio.wrap_file(os.fdopen(fd, "wb"))
        try:
            chunk = start[need:]
            while True:
                if chunk:
                    digest.update(chunk)
                    if out is not None:
                        await out.write(chunk)
                chunk = await msg.receive_some(_CHUNK)
                if not chunk:
                    break
        finally:
            if out is not None:
                await out.aclose()
        self._file_event(msg, name, msg.size - need, digest.digest(), saved)
        await msg.reply(digest.digest())

    def _file_event(
        self, msg: Message, name: str, size: int, digest: bytes, saved: str | None
    ) -> None:
        where = f", saved to {saved}" if saved else ""
        self.event(
            "file",
            f"file:         {msg.sender.short()}  {name!r}  {format_size(size)}  "
            f"sha256 {digest.hex()[:16]}...{where}",
            peer=str(msg.sender),
            name=name,
            bytes=size,
            sha256=digest.hex(),
            saved=saved,
        )


def _safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    cleaned = "".join(ch if ch.isprintable() else "_" for ch in base)
    if cleaned in ("", ".", "..") or cleaned.startswith("."):
        cleaned = "received" + (cleaned if cleaned not in (".", "..") else "")
    return cleaned[:200]


def _create(directory: Path, name: str) -> tuple[str, int]:
    """Create a new file for ``name`` in ``directory``, never replacing one: (path, fd)."""
    base = _safe_name(name)
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem:
        stem, suffix = base, ""
    for attempt in range(_MAX_NAME_TRIES):
        candidate = base if attempt == 0 else f"{stem}.{attempt}" + (f".{suffix}" if suffix else "")
        path = directory / candidate
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        return str(path), fd
    raise OSError(f"no free file name for {base!r} in {directory}")


def _save(directory: Path, name: str, content: memoryview) -> str:
    """Write ``content`` to a new file in ``directory``, never replacing one."""
    path, fd = _create(directory, name)
    with os.fdopen(fd, "wb") as file:
        file.write(content)
    return path


def _where(conn: Connection) -> str:
    """``host:port``, or ``via <relay>`` for a relayed connection."""
    relay = conn.peer.relay
    return f"via {relay}" if relay is not None else format_address(conn.remote_address)
