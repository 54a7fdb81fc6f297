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
    assert story.relayed_rtt == pytest.approx(relayed, abs=0.01)
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
