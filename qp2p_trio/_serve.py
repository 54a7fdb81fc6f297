# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`Endpoint.serve`: answer every message with a handler, each in its own task.

In the style of `trio.serve_tcp`: one call runs the service until the
endpoint closes (or the caller cancels it).  At most ``limit`` handlers run
at once; past it, no more messages are taken from the endpoint, so its
bounded receive queue fills and peers are refused with ``BUSY``: the
service slows its peers down instead of growing.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import trio

from ._errors import LocalProtocolError

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Awaitable, Callable

    from ._message import Message

__all__ = ["serve_messages"]


async def serve_messages(
    messages: AsyncIterable[Message],
    handler: Callable[[Message], Awaitable[bytes | bytearray | memoryview | None]],
    *,
    limit: int,
    task_status: trio.TaskStatus[None],
) -> None:
    """Run ``handler`` for every message of ``messages``; see `Endpoint.serve`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    limiter = trio.CapacityLimiter(limit)
    async with trio.open_nursery() as nursery:
        task_status.started()
        async for msg in messages:
            await limiter.acquire_on_behalf_of(msg)
            nursery.start_soon(_handle, handler, msg, limiter)


async def _handle(
    handler: Callable[[Message], Awaitable[bytes | bytearray | memoryview | None]],
    msg: Message,
    limiter: trio.CapacityLimiter,
) -> None:
    try:
        result = await handler(msg)
        if msg.expects_reply and not msg.answered:
            if result is None:
                msg.reject()
            elif msg.streamed:
                # A streamed request is answered once read to its end; one
                # the handler left unread is refused below.
                with contextlib.suppress(LocalProtocolError):
                    await msg.reply(result)
            else:
                await msg.reply(result)
    finally:
        if msg.expects_reply and not msg.answered:
            msg.reject()  # the handler failed or was cancelled: do not leave it waiting
        elif msg.streamed and not msg.expects_reply:
            msg.discard()  # a streamed message the handler left unread (no-op if read)
        limiter.release_on_behalf_of(msg)
