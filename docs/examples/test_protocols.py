# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Tests of protocols.py on the virtual network (pytest-trio, ``trio_mode = true``)."""

from __future__ import annotations

import pytest
from protocols import COUNT, ECHO, call, register

import qp2p_trio


async def test_two_protocols_on_one_endpoint(memory_network, autojump_clock):
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as server,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as client,
    ):
        register(server)
        conn = await client.connect(server.local_address, node_id=server.node_id)
        assert await call(conn, ECHO, b"hello") == b"hello"
        assert await call(conn, COUNT, b"x" * 100_000) == b"100000"


async def test_an_unknown_protocol_is_refused(memory_network, autojump_clock):
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as server,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as client,
    ):
        register(server)
        conn = await client.connect(server.local_address, node_id=server.node_id)
        with pytest.raises(qp2p_trio.RawStreamReset) as info:
            await call(conn, "example/nobody/1", b"hi")
        assert info.value.error_code == qp2p_trio.StreamErrorCode.UNKNOWN_PROTOCOL
