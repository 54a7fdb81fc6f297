# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Retry policy: exponential backoff with jitter (sans-IO).

`RetryPolicy` only computes delays; the Trio edge (`Endpoint`) sleeps them
and decides which failures are transient.  Randomness comes from a
`random.Random` (or anything with its ``random()`` method) the caller passes
in, so runs are reproducible.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, final

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["RandomSource", "RetryPolicy"]


class RandomSource(Protocol):
    """What the policy draws its jitter from: `random.Random` or one seeded lazily."""

    def random(self) -> float:
        """A float in [0, 1)."""
        ...


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"RetryPolicy.{attribute.name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be finite and >= 0, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How `Endpoint.connect`, `Endpoint.send` and `Endpoint.request` retry.

    Only transient failures are retried: a handshake that timed out, a peer
    that refused for a limit or was busy, a connection that died under a
    message the peer had not acknowledged.  A refused identity, a TLS
    failure, a too-large message, a protocol violation or our own close are
    never retried.  Cancellation stops retrying at once.

    The defaults are MaidSafe qp2p's: the n-th delay (n = 0, 1, ...) is
    ``min(initial_delay * multiplier**n, max_delay)``, scaled by a random
    factor in ``[1 - jitter, 1 + jitter]``; no attempt starts more than
    ``max_elapsed`` seconds after the first.

    Example::

        Config(retry=RetryPolicy(max_elapsed=5.0))   # give up sooner
        Config(retry=None)                           # never retry
    """

    #: Seconds before the first retry.
    initial_delay: float = attrs.field(default=0.5, validator=_non_negative)
    #: Factor applied to the delay after each retry (>= 1).
    multiplier: float = attrs.field(default=1.5, validator=_non_negative)
    #: Relative random spread of each delay, within [0, 1).
    jitter: float = attrs.field(default=0.3, validator=_non_negative)
    #: Longest delay between two attempts, in seconds.
    max_delay: float = attrs.field(default=15.0, validator=_non_negative)
    #: Seconds after the first attempt past which no new attempt starts.
    max_elapsed: float = attrs.field(default=30.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.multiplier < 1:
            raise ValueError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier}")
        if self.jitter >= 1:
            raise ValueError(f"RetryPolicy.jitter must be below 1, got {self.jitter}")
        if self.max_delay < self.initial_delay:
            raise ValueError("RetryPolicy.max_delay must be >= RetryPolicy.initial_delay")

    def delays(self, rng: RandomSource) -> Iterator[float]:
        """Yield the delay before each retry, forever (the caller stops)."""
        base = self.initial_delay
        while True:
            spread = self.jitter * (2.0 * rng.random() - 1.0)
            yield max(0.0, min(base, self.max_delay) * (1.0 + spread))
            base = min(base * self.multiplier, self.max_delay)

    def schedule(self, rng: RandomSource) -> Iterator[float]:
        """Yield the start offsets (seconds after the first attempt) of each retry.

        Stops before an offset past ``max_elapsed``; attempt times are not
        counted here, the caller checks the clock against ``max_elapsed`` too.
        """
        at = 0.0
        for delay in self.delays(rng):
            at += delay
            if at > self.max_elapsed:
                return
            yield at
