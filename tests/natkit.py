# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""One seeded run of two peers behind NATs meeting through a relay, for the NAT matrix.

`run` builds a virtual network (a relay on a public address, peer A behind
one NAT and peer B behind another, links with seeded delay, jitter and
loss), has A send B a message every `INTERVAL` seconds from the moment it
first dials (by node id, through the relay) until `MESSAGES` are sent, and
returns an `Outcome`: which path the connection ended on, when the first
message arrived, when the connection moved to the direct path, and whether
every message arrived exactly once.  Each run is its own `trio.run` under a
`MockClock`, so runs are independent and cost no wall time waiting.

`theory` says what RFC 4787 behaviours allow: whether a hole can be punched
between two NATs at all.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import attrs
import trio
import trio.testing

import qp2p_trio
from qp2p_trio import Config, PeerAddress
from qp2p_trio.testing import (
    LinkConfig,
    MemoryNetwork,
    NatBehaviour,
    NatConfig,
    open_endpoint_factory,
    wait_until,
)

EIM = NatBehaviour.ENDPOINT_INDEPENDENT
ADM = NatBehaviour.ADDRESS_DEPENDENT
APDM = NatBehaviour.ADDRESS_AND_PORT_DEPENDENT
SHORT = {EIM: "EI", ADM: "AD", APDM: "APD"}

BEHAVIOURS = (EIM, ADM, APDM)
FILTER_PAIRS = list(itertools.combinations_with_replacement(BEHAVIOURS, 2))


def cone_pair(seed: int) -> tuple[NatConfig, NatConfig]:
    """Endpoint-independent mapping on both sides; the filtering pair and port
    preservation vary with the seed."""
    fa, fb = FILTER_PAIRS[seed % len(FILTER_PAIRS)]
    return (
        NatConfig(filtering=fa, port_preservation=seed % 2 == 0),
        NatConfig(filtering=fb, port_preservation=seed % 3 != 0),
    )


def dependent_pair(seed: int) -> tuple[NatConfig, NatConfig]:
    """A: address- or address-and-port-dependent mapping; B: any mapping; both
    filterings vary (54 combinations, cycled)."""
    a = NatConfig(
        mapping=BEHAVIOURS[1 + seed % 2],
        filtering=BEHAVIOURS[seed // 2 % 3],
        port_preservation=seed % 4 < 2,
    )
    b = NatConfig(mapping=BEHAVIOURS[seed // 6 % 3], filtering=BEHAVIOURS[seed // 18 % 3])
    return a, b


RELAY_IP = "127.100.0.1"
A_IP, A_NAT = "127.10.0.2", "127.200.0.1"
B_IP, B_NAT = "127.10.1.2", "127.200.0.2"
MESSAGES = 20
INTERVAL = 0.05
#: Links: 20 ms each way, up to 10 ms jitter, 1 % loss, seeded per link direction.
LINK = LinkConfig(delay=0.02, jitter=0.01, loss=0.01)


@attrs.frozen
class Outcome:
    """What one run gave (times in virtual seconds from A's first dial)."""

    seed: int
    label: str
    path: str
    first_message: float
    direct_at: float | None
    exactly_once: bool
    detail: str = ""

    def row(self) -> str:
        direct = "-" if self.direct_at is None else f"{self.direct_at:.2f}"
        return (
            f"seed {self.seed:3d}  {self.label:28s} {self.path:8s} first msg "
            f"{self.first_message:.2f}  direct at {direct:>5s}  once={self.exactly_once} "
            f"{self.detail}"
        )


def describe(nat: NatConfig) -> str:
    return f"{SHORT[nat.mapping]}M/{SHORT[nat.filtering]}F"


def theory(a: NatConfig, b: NatConfig) -> bool:
    """Whether RFC 4787 behaviours let a hole be punched between *a* and *b*.

    Each side dials the other's relay-observed address from its own NAT
    mapping for that destination (the observed one when its mapping is
    endpoint-independent, a new one otherwise); a hole exists if either
    side's Initials get in and the answers come back from the address
    dialled.
    """

    def one_way(src: NatConfig, dst: NatConfig) -> bool:
        # src's Initial reaches dst's observed mapping: dst's filter must let
        # it in.  dst has sent to src's observed address from that mapping
        # only if dst's mapping is endpoint-independent.
        # A QUIC client takes answers only from the address it dialled, so
        # dst's answer must leave from that same mapping: dst's mapping must
        # be endpoint-independent (then src's filter lets it in: src sent there).
        if dst.mapping is not EIM:
            return False
        # dst sent to src's observed address from that mapping: an
        # address-dependent filter lets src's packets in from any port of
        # that IP, a port-dependent one only from that port (src's mapping
        # must be endpoint-independent too).
        return dst.filtering is not APDM or src.mapping is EIM

    return one_way(a, b) or one_way(b, a)


@attrs.frozen
class _Case:
    nat_a: NatConfig
    nat_b: NatConfig | None  # None: B is behind A's NAT
    blocked: bool
    wait_punching: bool
    messages: int


def run(
    seed: int,
    nat_a: NatConfig,
    nat_b: NatConfig | None,
    *,
    blocked: bool = False,
    wait_punching: bool = True,
    messages: int = MESSAGES,
) -> Outcome:
    """One seeded run (see the module docstring).

    Args:
        nat_a: A's NAT.
        nat_b: B's NAT, or ``None`` to put B behind A's NAT (its private
            network: A and B reach each other's bound addresses).
        blocked: no UDP between A and B (a partition; the relay still reaches both).
        wait_punching: before returning, wait until a punch round ended
            (succeeded, or failed: the NATs do not change, later ones would too).
        messages: how many messages A sends, one every `INTERVAL` seconds.
    """
    clock = trio.testing.MockClock(autojump_threshold=0)
    case = _Case(nat_a, nat_b, blocked, wait_punching, messages)
    return trio.run(_run, seed, case, clock=clock)


async def _run(seed: int, case: _Case) -> Outcome:
    nat_a, nat_b, blocked = case.nat_a, case.nat_b, case.blocked
    wait_punching, messages = case.wait_punching, case.messages
    b_side = "same NAT" if nat_b is None else describe(nat_b)
    label = f"{describe(nat_a)} <-> {b_side}" + (" blocked" if blocked else "")
    if nat_a.hairpinning is False:
        label += " no hairpin"
    net = MemoryNetwork(seed=seed, default_link=LINK)
    net.add_host(RELAY_IP)
    nat = net.add_nat(A_NAT, nat_a)
    host_a = net.add_host(A_IP, behind=nat)
    host_b = net.add_host(B_IP, behind=nat if nat_b is None else net.add_nat(B_NAT, nat_b))
    if blocked:
        net.partition([host_a], [host_b])
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net, seed=seed) as factory:
            relay = await factory(config=Config(relay=True), local_address=(RELAY_IP, 4433))
            config = Config(home_relay=relay.peer_address)
            a = await factory(config=config, local_address=(A_IP, 0))
            b = await factory(config=config, local_address=(B_IP, 0))
            service = relay._relay_service
            assert service is not None
            while len(service.clients) < 2:
                await service.changed.wait()
            return await _exchange(seed, label, a, b, relay, wait_punching, messages)


async def _exchange(
    seed: int,
    label: str,
    a: qp2p_trio.Endpoint,
    b: qp2p_trio.Endpoint,
    relay: qp2p_trio.Endpoint,
    wait_punching: bool,
    messages: int,
) -> Outcome:
    start = trio.current_time()
    peer = PeerAddress(b.node_id, relay=relay.peer_address)
    sent = [b"msg %d" % i for i in range(messages)]
    got: list[bytes] = []
    arrivals: list[float] = []
    direct_at: list[float] = []
    events = a.events()

    async def collect() -> None:
        while len(got) < len(sent):
            got.append((await b.receive()).payload)
            arrivals.append(trio.current_time() - start)

    async def watch() -> None:
        async for event in events:
            if isinstance(event, qp2p_trio.PathChanged) and event.path == "direct":
                direct_at.append(trio.current_time() - start)
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        async with trio.open_nursery() as inner:
            inner.start_soon(collect)
            for payload in sent:  # from the first dial on, through the switch
                await a.send(peer, payload)
                await trio.sleep(INTERVAL)
        if wait_punching:
            counters = a.statistics
            await wait_until(lambda: counters().punch_successes or counters().punch_failures)
        await _settle(a, b)
        nursery.cancel_scope.cancel()
    await events.aclose()
    paths = {c.path for c in a.connections() if c.peer_id == b.node_id}
    exactly_once = sorted(got) == sorted(sent) and b.metrics().messages_received == len(sent)
    return Outcome(
        seed=seed,
        label=label,
        path="direct" if paths == {"direct"} else "/".join(sorted(paths)) or "none",
        first_message=arrivals[0],
        direct_at=direct_at[0] if direct_at else None,
        exactly_once=exactly_once,
        detail=_detail(a),
    )


async def _settle(a: qp2p_trio.Endpoint, b: qp2p_trio.Endpoint) -> None:
    """Wait until only one connection between A and B is left (retired ones closed)."""

    await wait_until(lambda: a.statistics().connections == 2 and b.statistics().connections == 2)


def _detail(a: qp2p_trio.Endpoint) -> str:
    st = a.statistics()
    return f"punch {st.punch_attempts}/{st.punch_successes}/{st.punch_failures}"


def table(outcomes: list[Outcome]) -> str:
    """The outcomes, one a line, for a failure message."""
    return "\n".join(o.row() for o in outcomes)


def tally(outcomes: list[Outcome]) -> dict[str, Any]:
    """Counts by (label, path), for the docs' table."""
    out: dict[str, Any] = {}
    for o in outcomes:
        key = f"{o.label}: {o.path}"
        out[key] = out.get(key, 0) + 1
    return out


def summary(seeds: range = range(100)) -> str:
    """The matrix of ``tests/test_nat_matrix.py`` as docs/relays.rst shows it."""
    rows: dict[str, list[Outcome]] = {}
    for seed in seeds:
        a, b = cone_pair(seed)
        rows.setdefault("endpoint-independent", []).append(run(seed, a, b))
        rows.setdefault("blocked", []).append(run(seed, a, b, blocked=True))
        a, b = dependent_pair(seed)
        kind = "dependent, possible" if theory(a, b) else "dependent, impossible"
        rows.setdefault(kind, []).append(run(seed, a, b))
        if seed < 20:
            nat = NatConfig(mapping=BEHAVIOURS[seed % 3], hairpinning=seed % 2 == 0)
            rows.setdefault("one NAT", []).append(run(seed, nat, None))
    lines = []
    for name, outcomes in rows.items():
        direct = [o.direct_at for o in outcomes if o.path == "direct" and o.direct_at is not None]
        first = [o.first_message for o in outcomes]
        at = (
            f"direct at {statistics.median(direct):.2f} (max {max(direct):.2f}); " if direct else ""
        )
        lines.append(
            f"{name}: {len(outcomes)} runs, {len(direct)} direct; {at}first message "
            f"{statistics.median(first):.2f} (max {max(first):.2f}); exactly once: "
            f"{all(o.exactly_once for o in outcomes)}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary())
