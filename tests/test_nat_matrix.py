# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The NAT matrix of issue 14: 100 seeded runs per case on the virtual network.

Two peers behind NATs meet through a relay; A sends B 20 messages, one
every 50 ms from its first dial on, through the set-up and the switch to
the direct path (`natkit.run`).  Links have seeded delay, jitter and
1 % loss, NATs seeded ports, so each seed is a different run.

- Both NATs endpoint-independent mapping (every filtering pair): direct in
  at least 95 runs, each within 3 virtual seconds.
- One or both address-dependent mapping: connected through the relay, the
  first message within 2 virtual seconds; direct exactly where theory
  (`natkit.theory`) says a hole can exist, relayed everywhere else.
- UDP between the peers blocked: relayed, every run.
- Both behind one NAT (20 runs): direct, at their bound addresses.
- Every run: every message arrives exactly once, across the switch.

A failing case prints the table of all its runs.
"""

from __future__ import annotations

import pytest
from natkit import (
    ADM,
    APDM,
    BEHAVIOURS,
    EIM,
    Outcome,
    cone_pair,
    dependent_pair,
    run,
    table,
    theory,
)

from qp2p_trio.testing import NatConfig

pytestmark = pytest.mark.slow

SEEDS = range(100)


def check_common(outcomes: list[Outcome]) -> None:
    report = table(outcomes)
    assert all(o.exactly_once for o in outcomes), report
    assert all(o.first_message < 2.0 for o in outcomes), report


def test_endpoint_independent_nats_go_direct():
    outcomes = [run(seed, *cone_pair(seed)) for seed in SEEDS]
    check_common(outcomes)
    direct = [o for o in outcomes if o.path == "direct" and o.direct_at is not None]
    assert len(direct) >= 95, table(outcomes)
    assert all(o.direct_at is not None and o.direct_at < 3.0 for o in direct), table(outcomes)


def test_address_dependent_nats_follow_theory():
    outcomes: list[Outcome] = []
    possible: list[Outcome] = []
    for seed in SEEDS:
        a, b = dependent_pair(seed)
        outcome = run(seed, a, b)
        outcomes.append(outcome)
        if theory(a, b):
            possible.append(outcome)
        else:
            assert outcome.path == "relayed", table(outcomes)
    check_common(outcomes)
    assert 10 < len(possible) < 90  # both kinds are in the matrix
    direct = [o for o in possible if o.path == "direct" and o.direct_at is not None]
    assert len(direct) >= 0.95 * len(possible), table(possible)
    assert all(o.direct_at is not None and o.direct_at < 3.0 for o in direct), table(direct)


def test_blocked_udp_stays_relayed():
    outcomes = [run(seed, *cone_pair(seed), blocked=True) for seed in SEEDS]
    check_common(outcomes)
    assert all(o.path == "relayed" for o in outcomes), table(outcomes)


def test_peers_behind_one_nat_go_direct():
    """Behind one NAT the peers reach each other's bound addresses (candidates
    too), hairpinning or not, whatever the NAT's mapping."""
    outcomes = []
    for seed in range(20):
        nat = NatConfig(mapping=BEHAVIOURS[seed % 3], hairpinning=seed % 2 == 0)
        outcomes.append(run(seed, nat, None))
    check_common(outcomes)
    assert all(o.path == "direct" for o in outcomes), table(outcomes)
    assert all(o.direct_at is not None and o.direct_at < 3.0 for o in outcomes), table(outcomes)


@pytest.mark.parametrize(
    ("a", "b", "possible"),
    [
        (NatConfig(), NatConfig(), True),
        (NatConfig(mapping=APDM), NatConfig(), False),  # port-restricted cone
        (NatConfig(mapping=APDM), NatConfig(filtering=ADM), True),  # restricted cone
        (NatConfig(mapping=ADM, filtering=EIM), NatConfig(mapping=ADM, filtering=EIM), False),
    ],
)
def test_theory(a: NatConfig, b: NatConfig, possible: bool):
    assert theory(a, b) is possible
    assert theory(b, a) is possible
