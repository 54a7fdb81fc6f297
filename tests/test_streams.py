# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Trio's own stream conformance checks on raw QUIC streams (real UDP on loopback)."""

from contextlib import asynccontextmanager

from trio.testing import check_half_closeable_stream, check_one_way_stream

import qp2p_trio


@asynccontextmanager
async def pair():
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as a,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as b,
    ):
        conn = await a.connect(b.local_address)
        peer = await b.accept()
        yield conn, peer


async def test_bidi():
    async with pair() as (conn, peer):

        async def maker():
            s = await conn.open_bi()
            t = await peer.accept_bi()
            return s, t

        await check_half_closeable_stream(maker, None)


async def test_uni():
    async with pair() as (conn, peer):

        async def maker():
            s = await conn.open_uni()
            t = await peer.accept_uni()
            return s, t

        await check_one_way_stream(maker, None)
