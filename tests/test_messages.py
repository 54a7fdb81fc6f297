# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""End-to-end tests of messages and request/response (real UDP on loopback)."""

import contextlib
import hashlib
import os
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

import qp2p_trio

LO4 = ("127.0.0.1", 0)
MiB = 1024 * 1024


@asynccontextmanager
async def pair(a_config=None, b_config=None):
    async with (
        qp2p_trio.open_endpoint(LO4, config=a_config) as a,
        qp2p_trio.open_endpoint(LO4, config=b_config) as b,
    ):
        conn = await a.connect(b.local_address, node_id=b.node_id)
        yield a, b, conn


async def test_empty_payloads():
    with trio.fail_after(20):
        async with pair() as (_a, b, conn):
            await conn.send(b"")
            msg = await b.receive()
            assert msg.payload == b""
            assert not msg.expects_reply
            async with trio.open_nursery() as nursery:

                async def responder():
                    req = await b.receive()
                    assert req.payload == b""
                    assert req.expects_reply
                    await req.reply(b"")

                nursery.start_soon(responder)
                assert await conn.request(b"") == b""


async def test_large_message_8mib():
    with trio.fail_after(20):
        async with pair() as (_a, b, conn):
            payload = os.urandom(8 * MiB)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.send, payload)
                msg = await b.receive()
            assert len(msg.payload) == len(payload)
            assert hashlib.sha256(msg.payload).digest() == hashlib.sha256(payload).digest()


@pytest.mark.slow
async def test_large_message_100mib():
    # The floor for "large": 100 MiB in one message, over real UDP.
    size = 100 * MiB
    config = qp2p_trio.Config(max_message_size=size, receive_queue_bytes=size)
    with trio.fail_after(240):
        async with pair(a_config=config, b_config=config) as (_a, b, conn):
            payload = os.urandom(size)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.send, payload)
                msg = await b.receive()
            assert len(msg.payload) == size
            assert hashlib.sha256(msg.payload).digest() == hashlib.sha256(payload).digest()


def ignore_peer_settings(conn):
    """Make ``conn`` behave like a sender that ignores the peer's SETTINGS.

    Without this, a sender refuses a too-large message itself, so these tests
    would not reach the receiver's own enforcement (which protects it from
    buggy or hostile peers).
    """
    conn.session.control.peer_max_message_size = None


async def test_max_message_size_refused_by_sender():
    # The peer's limit arrives in its SETTINGS before connect() returns: the
    # sender refuses a too-large message itself, before sending a byte.
    with trio.fail_after(20):
        async with pair(b_config=qp2p_trio.Config(max_message_size=1000)) as (_a, b, conn):
            with pytest.raises(qp2p_trio.MessageTooLarge) as info:
                await conn.send(b"x" * 1001)
            assert info.value.error_code == qp2p_trio.StreamErrorCode.TOO_LARGE
            with pytest.raises(qp2p_trio.MessageTooLarge):
                await conn.request(b"x" * 1001)
            assert b.statistics().streams_refused == 0
            await conn.send(b"y" * 1000)
            assert (await b.receive()).payload == b"y" * 1000


async def test_max_message_size_send():
    # A message that arrives whole in one packet is acknowledged by QUIC
    # before the receiver refuses it: the RECEIPT still tells the sender.
    with trio.fail_after(20):
        async with pair(b_config=qp2p_trio.Config(max_message_size=1000)) as (_a, b, conn):
            ignore_peer_settings(conn)
            with pytest.raises(qp2p_trio.MessageTooLarge) as info:
                await conn.send(b"x" * 1001)
            assert info.value.error_code == qp2p_trio.StreamErrorCode.TOO_LARGE
            assert b.statistics().streams_refused == 1
            # The connection is kept.
            assert not conn.is_closed
            await conn.send(b"y" * 1000)
            msg = await b.receive()
            assert msg.payload == b"y" * 1000
            assert b.statistics().streams_refused == 1
            assert b.statistics().messages_received == 1


async def test_max_message_size_send_multi_packet():
    # Same contract as above, with a message that spans many packets (the
    # refusal reaches the sender before the whole message is acknowledged).
    limit = 100_000
    with trio.fail_after(20):
        async with pair(b_config=qp2p_trio.Config(max_message_size=limit)) as (_a, b, conn):
            ignore_peer_settings(conn)
            with pytest.raises(qp2p_trio.MessageTooLarge) as info:
                await conn.send(b"x" * (limit + 200_000))
            assert info.value.error_code == qp2p_trio.StreamErrorCode.TOO_LARGE
            assert b.statistics().streams_refused == 1
            assert not conn.is_closed
            await conn.send(b"y" * limit)
            assert (await b.receive()).payload == b"y" * limit
            assert b.statistics().streams_refused == 1


async def test_receive_queue_full_multi_packet():
    size = 300_000
    with trio.fail_after(20):
        # One peer may use the whole queue here (its share is 1).
        config = qp2p_trio.Config(receive_queue_messages=2, receive_share=1.0)
        async with pair(b_config=config) as (_a, b, conn):
            await conn.send(b"1" * size)
            await conn.send(b"2" * size)
            with pytest.raises(qp2p_trio.MessageRefused) as info:
                await conn.send(b"3" * size)
            assert b.statistics().streams_refused == 1
            assert not isinstance(info.value, qp2p_trio.MessageTooLarge)
            assert info.value.error_code == qp2p_trio.StreamErrorCode.BUSY
            assert (await b.receive()).payload == b"1" * size
            assert (await b.receive()).payload == b"2" * size
            await conn.send(b"4" * size)
            assert (await b.receive()).payload == b"4" * size


async def test_reply_too_large_for_requester():
    with trio.fail_after(20):
        async with pair(a_config=qp2p_trio.Config(max_message_size=1000)) as (_a, b, conn):

            async def responder():
                req = await b.receive()
                with contextlib.suppress(qp2p_trio.MessageError):
                    await req.reply(b"z" * 1001)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(responder)
                with pytest.raises(qp2p_trio.MessageTooLarge) as info:
                    await conn.request(b"give me a lot")
            assert info.value.error_code == qp2p_trio.StreamErrorCode.TOO_LARGE
            # The connection stays usable, and a reply within the limit works.
            assert not conn.is_closed

            async def small_responder():
                req = await b.receive()
                await req.reply(b"z" * 1000)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(small_responder)
                assert await conn.request(b"a little") == b"z" * 1000


async def test_reply_too_large_responder_notified():
    with trio.fail_after(20):
        async with pair(a_config=qp2p_trio.Config(max_message_size=1000)) as (_a, b, conn):
            errors = []

            async def responder():
                req = await b.receive()
                try:
                    await req.reply(b"z" * 1001, wait_for_ack=True)
                except qp2p_trio.MessageError as exc:
                    errors.append(exc)
                # Without wait_for_ack a peer cannot make reply() raise.
                req = await b.receive()
                errors.append(await req.reply(b"z" * 1001))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(responder)
                with pytest.raises(qp2p_trio.MessageTooLarge):
                    await conn.request(b"give me a lot")
                with pytest.raises(qp2p_trio.MessageTooLarge):
                    await conn.request(b"and again")
            assert len(errors) == 2
            assert isinstance(errors[0], qp2p_trio.MessageTooLarge)
            assert errors[1] is False


async def test_reply_too_large_refused_by_requester():
    # The responder ignores the requester's SETTINGS: the requester refuses
    # the one-packet reply and its RECEIPT tells the responder.
    with trio.fail_after(20):
        async with pair(a_config=qp2p_trio.Config(max_message_size=1000)) as (a, b, conn):
            errors = []

            async def responder():
                req = await b.receive()
                ignore_peer_settings(req.connection)
                try:
                    await req.reply(b"z" * 1001, wait_for_ack=True)
                except qp2p_trio.MessageError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(responder)
                with pytest.raises(qp2p_trio.MessageTooLarge):
                    await conn.request(b"give me a lot")
            assert len(errors) == 1
            assert isinstance(errors[0], qp2p_trio.MessageTooLarge)
            assert a.statistics().streams_refused == 1


async def test_receive_queue_full():
    with trio.fail_after(20):
        # One peer may use the whole queue here (its share is 1).
        config = qp2p_trio.Config(receive_queue_messages=2, receive_share=1.0)
        async with pair(b_config=config) as (_a, b, conn):
            await conn.send(b"1")
            await conn.send(b"2")
            with pytest.raises(qp2p_trio.MessageRefused) as info:
                await conn.send(b"3")
            assert not isinstance(info.value, qp2p_trio.MessageTooLarge)
            assert info.value.error_code == qp2p_trio.StreamErrorCode.BUSY
            assert (await b.receive()).payload == b"1"
            assert (await b.receive()).payload == b"2"
            await conn.send(b"4")
            assert (await b.receive()).payload == b"4"


async def test_many_concurrent_sends():
    n = 300
    with trio.fail_after(20):
        # More than one peer's share of the default queue (256 messages).
        async with pair(b_config=qp2p_trio.Config(receive_share=0.5)) as (_a, b, conn):
            payloads = {f"message {i}".encode() for i in range(n)}
            async with trio.open_nursery() as nursery:
                for p in payloads:
                    nursery.start_soon(conn.send, p)
            got = [(await b.receive()).payload for _ in range(n)]
            assert len(got) == n
            assert set(got) == payloads
            assert b.statistics().messages_received == n


async def test_many_concurrent_requests():
    n = 64
    with trio.fail_after(20):
        async with pair() as (_a, b, conn):
            results = {}

            async def responder(task_status=trio.TASK_STATUS_IGNORED):
                task_status.started()
                async for req in b.messages():
                    nursery.start_soon(req.reply, b"re:" + req.payload)

            async def requester(i):
                results[i] = await conn.request(str(i).encode())

            async with trio.open_nursery() as nursery:
                await nursery.start(responder)
                async with trio.open_nursery() as inner:
                    for i in range(n):
                        inner.start_soon(requester, i)
                nursery.cancel_scope.cancel()
            assert results == {i: b"re:" + str(i).encode() for i in range(n)}


async def test_reply_misuse_and_reject():
    with trio.fail_after(20):
        async with pair() as (_a, b, conn):
            await conn.send(b"plain")
            msg = await b.receive()
            with pytest.raises(qp2p_trio.LocalProtocolError):
                await msg.reply(b"no")
            with pytest.raises(qp2p_trio.LocalProtocolError):
                msg.reject()

            async def answer_twice():
                req = await b.receive()
                await req.reply(b"first")
                with pytest.raises(qp2p_trio.LocalProtocolError):
                    await req.reply(b"second")
                with pytest.raises(qp2p_trio.LocalProtocolError):
                    req.reject()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer_twice)
                assert await conn.request(b"q1") == b"first"

            async def reject():
                req = await b.receive()
                req.reject()
                with pytest.raises(qp2p_trio.LocalProtocolError):
                    await req.reply(b"late")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reject)
                with pytest.raises(qp2p_trio.MessageRefused) as info:
                    await conn.request(b"q2")
            assert info.value.error_code == qp2p_trio.StreamErrorCode.NO_REPLY


async def test_cancel_request_keeps_connection():
    with trio.fail_after(20):
        async with pair() as (_a, b, conn):
            with trio.move_on_after(0.2) as scope:
                await conn.request(b"never answered")
            assert scope.cancelled_caught
            req = await b.receive()
            assert req.expects_reply
            assert req.payload == b"never answered"
            await conn.send(b"still works")
            assert (await b.receive()).payload == b"still works"
            assert not conn.is_closed


async def test_cancelled_receive_loses_nothing():
    with trio.fail_after(20):
        async with pair() as (_a, b, conn):
            with trio.CancelScope() as scope:
                scope.cancel()
                await b.receive()
            assert scope.cancelled_caught

            async def receive_then_cancelled(task_status=trio.TASK_STATUS_IGNORED):
                with trio.CancelScope() as inner:
                    task_status.started(inner)
                    await b.receive()
                    raise AssertionError("receive should not have completed")  # pragma: no cover

            async with trio.open_nursery() as nursery:
                inner = await nursery.start(receive_then_cancelled)
                await trio.testing.wait_all_tasks_blocked()
                inner.cancel()
            await conn.send(b"kept")
            assert (await b.receive()).payload == b"kept"


async def test_non_bytes_payload():
    with trio.fail_after(20):
        async with pair() as (_a, b, conn):
            for bad in ("text", 123, None, [1, 2]):
                with pytest.raises(TypeError):
                    await conn.send(bad)
                with pytest.raises(TypeError):
                    await conn.request(bad)
            await conn.send(bytearray(b"ba"))
            await conn.send(memoryview(b"mv"))
            assert (await b.receive()).payload == b"ba"
            assert (await b.receive()).payload == b"mv"
