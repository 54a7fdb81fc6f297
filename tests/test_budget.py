# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The receive budget and its per-peer share (sans-IO, no Trio)."""

from __future__ import annotations

import pytest

from qp2p_trio._budget import ReceiveBudget, Usage


def budget(share: float = 0.25) -> ReceiveBudget[str]:
    return ReceiveBudget(messages=8, nbytes=1000, share=share, min_share_bytes=100)


def test_one_peer_holds_at_most_its_share():
    b = budget()
    assert b.share == Usage(2, 250)
    assert b.reserve("a", messages=1, nbytes=200)
    assert not b.reserve("a", messages=1, nbytes=51), "bytes over the share"
    assert b.reserve("a", messages=1, nbytes=50)
    assert not b.reserve("a", messages=1, nbytes=0), "messages over the share"
    assert b.reserve("a", messages=0, nbytes=0)
    # Others are served all the same.
    assert b.reserve("b", messages=2, nbytes=250)
    assert b.usage("a") == Usage(2, 250)
    assert b.total == Usage(4, 500)


def test_the_total_bounds_everyone():
    b = budget(share=1.0)
    assert b.reserve("a", messages=4, nbytes=600)
    assert not b.reserve("b", messages=1, nbytes=401)
    assert not b.reserve("b", messages=5, nbytes=1)
    assert b.reserve("b", messages=4, nbytes=400)
    assert b.total == Usage(8, 1000)


def test_release_gives_back_and_forgets_idle_peers():
    b = budget()
    assert b.reserve("a", messages=1, nbytes=100)
    assert b.reserve("a", messages=0, nbytes=30)  # raw bytes
    assert b.peers == 1
    b.release("a", messages=0, nbytes=30)
    b.release("a", messages=1, nbytes=100)
    assert b.peers == 0
    assert b.total == Usage()
    with pytest.raises(ValueError, match="holds nothing"):
        b.release("a", messages=1, nbytes=1)
    assert b.reserve("a", messages=1, nbytes=10)
    with pytest.raises(ValueError, match="holds 1 / 10"):
        b.release("a", messages=1, nbytes=11)


def test_share_is_at_least_one_largest_message_and_closing_refuses():
    b = ReceiveBudget[str](messages=3, nbytes=1000, share=0.1, min_share_bytes=400)
    assert b.share == Usage(1, 400)
    assert b.reserve("a", messages=1, nbytes=400)
    b.closed = True
    assert not b.reserve("b", messages=1, nbytes=1)
    with pytest.raises(ValueError, match="share"):
        ReceiveBudget[str](messages=1, nbytes=1, share=0, min_share_bytes=1)
