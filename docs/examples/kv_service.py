# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A request/response service: a tiny key-value store served over qp2p_trio.

Requests and replies are JSON objects, one per qp2p_trio request:
``{"op": "put", "key": K, "value": V}`` answers ``{"ok": true}``, and
``{"op": "get", "key": K}`` answers ``{"value": V}`` (``null`` if unknown).
Anything else is rejected.  Run it to see a client use it.
"""

from __future__ import annotations

import json
from typing import Any

import trio

import qp2p_trio


class KeyValueStore:
    """The application: no networking in here."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one request; raise ValueError for a bad one."""
        op, key = request.get("op"), request.get("key")
        if not isinstance(key, str):
            raise ValueError("a request needs a string key")
        if op == "put" and isinstance(request.get("value"), str):
            self.data[key] = request["value"]
            return {"ok": True}
        if op == "get":
            return {"value": self.data.get(key)}
        raise ValueError(f"unknown request {request!r}")


async def answer(msg: qp2p_trio.Message, store: KeyValueStore) -> None:
    """Answer one request message."""
    try:
        reply = store.handle(json.loads(msg.payload))
    except (ValueError, AttributeError):
        # The requester's request() raises MessageRefused.
        msg.reject()
        return
    try:
        await msg.reply(json.dumps(reply).encode())
    except (qp2p_trio.QP2PError, trio.ClosedResourceError):
        pass  # the requester gave up or left: nobody to answer


async def serve(
    endpoint: qp2p_trio.Endpoint,
    store: KeyValueStore,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer every request that reaches ``endpoint``, concurrently, until cancelled."""
    async with trio.open_nursery() as nursery:
        task_status.started()
        async for msg in endpoint.messages():
            if msg.expects_reply:
                # One task per request: a slow requester delays nobody else.
                nursery.start_soon(answer, msg, store)


class Client:
    """The service's client side, on one connection."""

    def __init__(self, conn: qp2p_trio.Connection, *, timeout: float = 5.0) -> None:
        self.conn = conn
        self.timeout = timeout

    async def call(self, **request: Any) -> dict[str, Any]:
        # No timeout= arguments in qp2p_trio: bound the wait with a cancel
        # scope.  Cancelling a request resets its stream; the connection
        # stays usable.
        with trio.fail_after(self.timeout):
            raw = await self.conn.request(json.dumps(request).encode())
        reply: dict[str, Any] = json.loads(raw)
        return reply

    async def put(self, key: str, value: str) -> None:
        await self.call(op="put", key=key, value=value)

    async def get(self, key: str) -> str | None:
        value: str | None = (await self.call(op="get", key=key))["value"]
        return value


async def main() -> None:
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as server,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as client,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(serve, server, KeyValueStore())

        conn = await client.connect(server.local_address, node_id=server.node_id)
        kv = Client(conn)
        await kv.put("colour", "blue")
        print("colour =", await kv.get("colour"))
        print("shape =", await kv.get("shape"))
        try:
            await conn.request(b"this is not JSON")
        except qp2p_trio.MessageRefused as exc:
            print("a malformed request is refused:", exc)

        nursery.cancel_scope.cancel()  # stop serving; then both endpoints close


if __name__ == "__main__":
    trio.run(main)
