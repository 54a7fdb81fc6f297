# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The link impairment model on its own: no Trio, no sockets, no clock.

`impair` is a function of a `LinkConfig`, a `LinkState` and the send time, so
these tests call it by hand with times they choose.
"""

from __future__ import annotations

import random

import pytest

from qp2p_trio.testing import LinkConfig
from qp2p_trio.testing._impairment import Copy, LinkState, RateQueue, Verdict, impair

PAYLOAD = b"0123456789" * 10  # 100 bytes


def run(config: LinkConfig, count: int, *, seed: int = 1, gap: float = 0.001) -> list[Verdict]:
    """The verdicts of *count* datagrams sent *gap* seconds apart on one link."""
    state = LinkState.seeded(seed, 0, 1)
    return [impair(config, state, PAYLOAD, n * gap) for n in range(count)]


def test_a_perfect_link_delivers_at_once_and_draws_nothing() -> None:
    state = LinkState(random.Random(7))
    before = state.rng.getstate()
    verdict = impair(LinkConfig(), state, PAYLOAD, 3.0)
    assert verdict == Verdict(copies=(Copy(PAYLOAD, 3.0),))
    assert state.rng.getstate() == before


def test_a_perfect_link_makes_no_generator_nor_queue() -> None:
    # A swarm has thousands of links: a seeded Random (2.5 KiB) and a queue
    # are only made for a link whose impairments need them.
    state = LinkState.seeded(3, 0, 1)
    impair(LinkConfig(), state, PAYLOAD, 1.0)
    assert state._rng is None
    assert state._queue is None
    eager = random.Random("3/0/1")
    assert [state.rng.random() for _ in range(3)] == [eager.random() for _ in range(3)]


def test_seeded_states_are_per_link_direction() -> None:
    draws = [LinkState.seeded(0, *link).rng.random() for link in ((0, 1), (1, 0), (0, 1))]
    assert draws[0] == draws[2] != draws[1]
    assert LinkState.seeded(1, 0, 1).rng.random() != draws[0]


def test_loss_rate_with_a_seeded_rng() -> None:
    config = LinkConfig(loss=0.3)
    lost = [v.dropped == "dropped_loss" for v in run(config, 10_000)]
    assert 0.28 < sum(lost) / len(lost) < 0.32
    assert not any(v.copies for v in run(config, 200) if v.dropped)
    # The same seed gives the same losses; another seed, others.
    assert lost == [v.dropped == "dropped_loss" for v in run(config, 10_000)]
    assert lost != [v.dropped == "dropped_loss" for v in run(config, 10_000, seed=2)]


def burst_lengths(lost: list[bool]) -> list[int]:
    lengths: list[int] = []
    previous = False
    for flag in lost:
        if flag:
            if previous:
                lengths[-1] += 1
            else:
                lengths.append(1)
        previous = flag
    return lengths


def test_burst_loss_follows_the_gilbert_model() -> None:
    config = LinkConfig(loss=0.05, loss_burst=4)
    lost = [v.dropped == "dropped_loss" for v in run(config, 40_000)]
    assert 0.04 < sum(lost) / len(lost) < 0.06
    bursts = burst_lengths(lost)
    assert 3.3 < sum(bursts) / len(bursts) < 4.7
    # Independent losses at the same rate come mostly one at a time.
    single = burst_lengths(
        [v.dropped == "dropped_loss" for v in run(LinkConfig(loss=0.05), 40_000)]
    )
    assert sum(single) / len(single) < 1.2


def test_burst_state_lives_in_the_link_state() -> None:
    # Bursts of 1,000 on average: a good link stays good, a bad one bad.
    config = LinkConfig(loss=0.5, loss_burst=1000)
    good, bad = LinkState(random.Random(0)), LinkState(random.Random(0), bursting=True)
    assert [impair(config, good, PAYLOAD, 0.0).dropped for _ in range(3)] == [None] * 3
    assert [impair(config, bad, PAYLOAD, 0.0).dropped for _ in range(3)] == ["dropped_loss"] * 3
    assert bad.bursting
    assert not good.bursting


def test_total_loss_in_bursts_drops_everything() -> None:
    assert all(v.dropped == "dropped_loss" for v in run(LinkConfig(loss=1.0, loss_burst=2), 500))


def test_delay_and_jitter() -> None:
    exact = run(LinkConfig(delay=0.05), 100)
    assert [v.copies[0].arrival for v in exact] == [n * 0.001 + 0.05 for n in range(100)]
    jittered = run(LinkConfig(delay=0.05, jitter=0.01), 1000)
    arrivals = [v.copies[0].arrival or 0.0 for v in jittered]
    for n, arrival in enumerate(arrivals):
        assert n * 0.001 + 0.05 <= arrival <= n * 0.001 + 0.06
    # Datagrams 1 ms apart with up to 10 ms of jitter overtake one another.
    assert arrivals != sorted(arrivals)


def test_reorder_holds_some_back() -> None:
    config = LinkConfig(delay=0.01, reorder=0.2, reorder_delay=0.03)
    copies = [v.copies[0] for v in run(config, 2000)]
    held = [c for c in copies if c.reordered]
    assert 0.17 < len(held) / len(copies) < 0.23
    for n, copy in enumerate(copies):
        expected = n * 0.001 + 0.01 + (0.03 if copy.reordered else 0.0)
        assert copy.arrival == pytest.approx(expected)


def test_duplication() -> None:
    always = run(LinkConfig(duplicate=1.0, delay=0.02), 10)
    for verdict in always:
        assert verdict.duplicated
        original, extra = verdict.copies
        assert (original.duplicate, extra.duplicate) == (False, True)
        assert original.data == extra.data == PAYLOAD
    half = run(LinkConfig(duplicate=0.5), 4000)
    assert 0.47 < sum(v.duplicated for v in half) / len(half) < 0.53
    assert all(len(v.copies) == 1 + v.duplicated for v in half)


def test_corruption_flips_one_byte() -> None:
    for verdict in run(LinkConfig(corrupt=1.0), 200):
        (copy,) = verdict.copies
        assert copy.corrupted
        diffs = [(a, b) for a, b in zip(copy.data, PAYLOAD, strict=True) if a != b]
        assert len(diffs) == 1
    # Duplicates are corrupted independently; empty datagrams never are.
    verdicts = run(LinkConfig(corrupt=0.5, duplicate=1.0), 400)
    assert any(v.copies[0].corrupted != v.copies[1].corrupted for v in verdicts)
    state = LinkState(random.Random(0))
    assert impair(LinkConfig(corrupt=1.0), state, b"", 0.0).copies == (Copy(b"", 0.0),)


def test_rate_cap_serialises_and_tail_drops() -> None:
    # 1,000 B/s: a 100-byte datagram takes 0.1 s; 250 bytes may wait.
    config = LinkConfig(rate=1000.0, queue_limit=250, delay=0.5)
    state = LinkState(random.Random(0))
    arrivals = [impair(config, state, PAYLOAD, 0.0).copies[0].arrival for _ in range(4)]
    # One being serialised, two waiting (200 bytes), the fourth would make 300.
    assert arrivals == [pytest.approx(0.6), pytest.approx(0.7), pytest.approx(0.8), None]
    # Once the first two are on the wire, the queue has room again.
    later = impair(config, state, PAYLOAD, 0.25).copies[0]
    assert later.arrival == pytest.approx(0.9)


def test_rate_queue_without_limit_and_when_idle() -> None:
    queue = RateQueue()
    assert [queue.admit(100, None, 1000.0, 0.0) for _ in range(3)] == [
        pytest.approx(0.1),
        pytest.approx(0.2),
        pytest.approx(0.3),
    ]
    assert queue.waiting_bytes == 200
    # An idle link serialises at once, even with a zero limit.
    assert queue.admit(100, 0, 1000.0, 5.0) == pytest.approx(5.1)
    assert queue.waiting_bytes == 0
    assert queue.admit(100, 0, 1000.0, 5.05) is None


def test_mtu_drops_before_any_draw() -> None:
    config = LinkConfig(mtu=100, loss=0.5, duplicate=0.5)
    state = LinkState(random.Random(0))
    before = state.rng.getstate()
    assert impair(config, state, PAYLOAD + b"!", 0.0) == Verdict(dropped="dropped_mtu")
    assert state.rng.getstate() == before
    assert impair(LinkConfig(mtu=100), state, PAYLOAD, 0.0).copies == (Copy(PAYLOAD, 0.0),)


def test_the_draw_order_is_stable() -> None:
    """Loss, duplication, then per copy corruption, jitter and reordering.

    The order is what makes a seed give the same run in every version; this
    replays it with a generator of the same seed.
    """
    config = LinkConfig(
        loss=0.1, duplicate=0.3, corrupt=0.3, jitter=0.01, reorder=0.2, reorder_delay=0.05
    )
    state = LinkState(random.Random(42))
    replay = random.Random(42)
    for n in range(300):
        verdict = impair(config, state, PAYLOAD, float(n))
        if replay.random() < config.loss:
            assert verdict.dropped == "dropped_loss"
            continue
        assert verdict.duplicated == (replay.random() < config.duplicate)
        for copy in verdict.copies:
            data = PAYLOAD
            if replay.random() < config.corrupt:
                flipped = bytearray(data)
                flipped[replay.randrange(len(flipped))] ^= replay.randrange(1, 256)
                data = bytes(flipped)
            arrival = n + replay.uniform(0.0, config.jitter)
            if replay.random() < config.reorder:
                arrival += config.reorder_delay
            assert (copy.data, copy.arrival) == (data, arrival)
