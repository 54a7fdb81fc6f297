# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The demo's step across NATs, run in-process: its numbers are what the network gives.

The story runs on the virtual network under a virtual clock (its own Trio
run), so its figures follow from the configured delays: a relayed round
trip crosses two 40 ms links each way, a direct one a 10 ms link.
"""

from __future__ import annotations

import pytest

from qp2p_trio._cli.demo_nat import DIRECT_DELAY, MESSAGES, RELAY_DELAY, run_story


def test_story_numbers_follow_the_network():
    story = run_story()
    relayed = 4 * RELAY_DELAY  # alice -> relay -> bob and back
    direct = 2 * DIRECT_DELAY
    assert story.connect_time == pytest.approx(relayed, abs=0.01)  # one round trip through it
    # The request shares the relayed connection with the messages and the
    # hole punching sent meanwhile, so it may wait up to a pacing interval of
    # aioquic's sender (about 16 ms at 160 ms RTT and the initial window)
    # behind them, depending on the order Trio runs ready tasks in.
    assert relayed - 0.001 <= story.relayed_rtt <= relayed + 0.02
    assert story.direct_rtt == pytest.approx(direct, abs=0.005)
    assert story.punch_rounds == 1
    assert 0 < story.time_to_direct < 1.0
    assert story.sent_relayed > 0
    assert story.sent_direct > 0
    assert story.sent_relayed + story.sent_direct == MESSAGES
    assert story.arrived == MESSAGES
    assert story.arrived_once
    assert story.relay_datagrams > 0
    assert story.relay_bytes > story.relay_datagrams
