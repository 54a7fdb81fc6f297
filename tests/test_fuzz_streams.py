# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Hostile stream sequences (issue 10): authenticated peers send random streams.

One or two authenticated attackers (`hostile_peer.HostilePeer`, aioquic
driven directly) run a random program against a server endpoint: data on
new, reused, invalid or foreign stream ids (junk, valid and corrupted
preambles, message heads with random lengths, truncated or overlong
payloads, control records valid and malformed, a second control stream,
SETTINGS twice, RECEIPTs for random ids, GOAWAY), with or without FIN;
STOP_SENDING and RESET_STREAM with random codes on random streams (the
server's control stream included); virtual pauses; no flow-control credit;
whole valid messages and requests.  Meanwhile an honest client sends
messages and requests, answered by the README's handler.

Every example checks: the server endpoint never dies; every honest message
arrives exactly once and intact and every honest request gets its reply,
within a bounded virtual time; no connection is closed with an internal
error (nothing escaped the stream handling); once the attackers are gone the
server holds one connection, none closing, no open stream on the honest
connection, and none of its receive budget.

Hypothesis draws the programs (derandomized: the same examples on every run,
and a failure is shrunk to a short program and printed).  Set
``QP2P_FUZZ_STREAM_EXAMPLES`` for a longer local run.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import struct
from typing import Any, TypeAlias

import attrs
import pytest
import trio
import trio.testing
from hostile_peer import HostilePeer
from hypothesis import HealthCheck, given, settings, strategies as st

import qp2p_trio
from qp2p_trio import _wire
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

K = _wire.StreamKind
E = _wire.StreamErrorCode
C = _wire.CloseCode
R = _wire.ControlRecordType

EXAMPLES = int(os.environ.get("QP2P_FUZZ_STREAM_EXAMPLES", "200"))
MAX_SIZE = 256 * 1024  # the server's max_message_size: larger heads are TOO_LARGE
# Honest traffic must be through within this (virtual) time of its start,
# whatever the attackers do.  Without attackers it takes well under a second.
HONEST_LIMIT = 10.0
# Closed connections must be forgotten within this (virtual) time.
SETTLE = 5.0


def budget_held(endpoint: qp2p_trio.Endpoint) -> tuple[int, int]:
    """The endpoint's receive budget in use: (messages, bytes).

    Private bookkeeping (`Driver.budget`, see `qp2p_trio._budget`): update
    here if it moves.
    """
    total = endpoint._driver.budget.total
    return total.messages, total.bytes


# -- the attackers' programs (plain data, printed by Hypothesis on failure) ------------

# Where an action goes: "new_uni" / "new_bidi" (the next stream id), "own_control"
# (our control stream, if opened), "server_control" (the server's), ("used", i)
# (the i-th stream we used, modulo), ("id", n) (stream id n, whoever's it is).
Target: TypeAlias = str | tuple[str, int]


@attrs.frozen
class Junk:
    data: bytes

    def render(self) -> bytes:
        return self.data


@attrs.frozen
class Preamble:
    """A 4-byte preamble, valid or not, then some bytes."""

    version: int
    kind: int
    reserved: int
    tail: bytes

    def render(self) -> bytes:
        return struct.pack(">BBH", self.version, self.kind, self.reserved) + self.tail


@attrs.frozen
class Head:
    """A message head (any kind byte) declaring ``length``, then ``body`` bytes."""

    kind: int
    length: int
    body: int

    def render(self) -> bytes:
        return struct.pack(">BBHQ", 1, self.kind, 0, self.length) + b"\x5a" * self.body


@attrs.frozen
class Records:
    """Control records, after a control preamble or not."""

    preamble: bool
    records: tuple[bytes, ...]

    def render(self) -> bytes:
        head = _wire.encode_control_preamble() if self.preamble else b""
        return head + b"".join(self.records)


Content: TypeAlias = Junk | Preamble | Head | Records


@attrs.frozen
class Data:
    target: Target
    content: Content
    fin: bool


@attrs.frozen
class Reset:
    target: Target
    code: int


@attrs.frozen
class Stop:
    target: Target
    code: int


@attrs.frozen
class Pause:
    seconds: float


@attrs.frozen
class NoCredit:
    pass


@attrs.frozen
class Whole:
    """A whole valid MESSAGE or REQUEST."""

    kind: K
    size: int


Action: TypeAlias = Data | Reset | Stop | Pause | NoCredit | Whole


@attrs.frozen
class Program:
    control: bool  # open our control stream (with SETTINGS) after the handshake
    actions: tuple[Action, ...]


@attrs.frozen
class Scenario:
    seed: int
    messages: tuple[int, ...]  # honest message sizes
    requests: tuple[int, ...]  # honest request sizes
    honest_delay: float  # when the honest client starts
    attackers: tuple[Program, ...]


codes = st.one_of(st.sampled_from([int(c) for c in E]), st.integers(0, 2**62 - 1))
# Mostly within the server's stream limits (a stream beyond them closes the
# connection with STREAM_LIMIT_ERROR at once, ending the program early).
stream_ids = st.one_of(st.integers(0, 64), st.integers(0, 64), st.integers(0, 2**20))
targets: st.SearchStrategy[Target] = st.one_of(
    st.sampled_from(["new_uni", "new_bidi", "own_control", "server_control"]),
    st.tuples(st.just("used"), st.integers(0, 15)),
    st.tuples(st.just("id"), stream_ids),
)
lengths = st.one_of(
    st.integers(0, 64),
    st.integers(0, 70_000),
    st.sampled_from([MAX_SIZE, MAX_SIZE + 1, 2**64 - 1]),
)


@st.composite
def heads(draw: st.DrawFn) -> Head:
    kind = draw(st.one_of(st.sampled_from([int(k) for k in K]), st.integers(0, 255)))
    length = draw(lengths)
    shape = draw(st.sampled_from(["exact", "short", "long", "none"]))
    exact = min(length, 70_000)
    body = {
        "exact": exact,
        "short": draw(st.integers(0, exact)),
        "long": exact + draw(st.integers(1, 16)),
        "none": 0,
    }[shape]
    return Head(kind, length, body)


def record(rtype: int, body: bytes) -> bytes:
    return struct.pack(">BH", rtype, len(body)) + body


records = st.one_of(
    st.builds(
        lambda size, inc: _wire.encode_settings(max_message_size=size, incarnation=inc),
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1),
    ),
    st.builds(
        _wire.encode_receipt,
        st.one_of(stream_ids, st.integers(0, 2**64 - 1)),
        codes.map(lambda c: c & 0xFFFF),
    ),
    st.builds(
        lambda u, b: _wire.encode_goaway(uni_opened=u, bidi_opened=b),
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1),
    ),
    # Unknown types (skipped by the parser), known types of the wrong length.
    st.builds(record, st.integers(4, 255), st.binary(max_size=12)),
    st.builds(record, st.sampled_from([int(r) for r in R]), st.binary(max_size=20)),
    st.binary(min_size=1, max_size=6),  # a torn record
)

contents: st.SearchStrategy[Content] = st.one_of(
    st.builds(Junk, st.binary(max_size=40)),
    st.builds(
        Preamble,
        st.sampled_from([1, 1, 1, 0, 2, 255]),
        st.one_of(st.sampled_from([int(k) for k in K]), st.integers(0, 255)),
        st.sampled_from([0, 0, 0, 1, 0x100, 0xFFFF]),
        st.binary(max_size=24),
    ),
    heads(),
    st.builds(Records, st.booleans(), st.lists(records, max_size=4).map(tuple)),
)

actions: st.SearchStrategy[Action] = st.one_of(
    st.builds(Data, targets, contents, st.booleans()),
    st.builds(Reset, targets, codes),
    st.builds(Stop, targets, codes),
    st.builds(Pause, st.sampled_from([0.0, 0.001, 0.05, 0.3, 1.0, 3.0])),
    st.just(NoCredit()),
    st.builds(Whole, st.sampled_from([K.MESSAGE, K.REQUEST]), st.integers(0, 3000)),
)

programs = st.builds(Program, st.booleans(), st.lists(actions, max_size=16).map(tuple))

scenarios = st.builds(
    Scenario,
    seed=st.integers(0, 2**32 - 1),
    messages=st.lists(st.integers(0, 20_000), min_size=1, max_size=8).map(tuple),
    requests=st.lists(st.integers(0, 5_000), max_size=4).map(tuple),
    honest_delay=st.sampled_from([0.0, 0.01, 0.2, 1.5]),
    attackers=st.lists(programs, min_size=1, max_size=2).map(tuple),
)


# -- running a program -------------------------------------------------------------------


class Attacker:
    def __init__(self, peer: HostilePeer) -> None:
        self.peer = peer
        self.used: list[int] = []
        self.control: int | None = None
        self.refused_locally = 0  # actions aioquic refused on our side
        self.close_code: int | None = None  # how the server closed us, if it did

    def resolve(self, target: Target) -> int | None:
        quic = self.peer.quic
        if target == "new_uni":
            return quic.get_next_available_stream_id(is_unidirectional=True)
        if target == "new_bidi":
            return quic.get_next_available_stream_id(is_unidirectional=False)
        if target == "own_control":
            return self.control
        if target == "server_control":
            return self.peer.peer_control_sid()
        assert isinstance(target, tuple)
        what, n = target
        if what == "used":
            return self.used[n % len(self.used)] if self.used else None
        return n

    async def perform(self, action: Action) -> None:
        quic = self.peer.quic
        if isinstance(action, Pause):
            await trio.sleep(action.seconds)
            return
        if isinstance(action, NoCredit):
            self.peer.grant_no_credit()
            return
        sid: int | None
        try:
            if isinstance(action, Whole):
                sid = self.peer.send_message(action.kind, b"w" * action.size)
            else:
                sid = self.resolve(action.target)
                if sid is None:
                    return
                if isinstance(action, Data):
                    quic.send_stream_data(sid, action.content.render(), end_stream=action.fin)
                elif isinstance(action, Reset):
                    quic.reset_stream(sid, action.code)
                else:
                    quic.stop_stream(sid, action.code)
        except (ValueError, RuntimeError, AssertionError):
            # The attacker's own stack refused (a peer's stream, a finished
            # or reset one): nothing went on the wire.
            self.refused_locally += 1
            return
        if sid not in self.used:
            self.used.append(sid)
        await self.peer.flush()


async def attack(
    network: MemoryNetwork,
    server: qp2p_trio.Endpoint,
    host_ip: str,
    program: Program,
    honest_done: trio.Event,
    out: list[Attacker],
) -> None:
    async with HostilePeer.open(network, host_ip, server.local_address) as peer:
        attacker = Attacker(peer)
        out.append(attacker)
        await peer.handshake()
        if program.control:
            attacker.control = peer.open_control()
            attacker.used.append(attacker.control)
            await peer.flush()
        for action in program.actions:
            await attacker.perform(action)
        # Half-open streams stay open until the honest traffic is through.
        await honest_done.wait()
        await trio.sleep(0.5)  # virtual: the server's answer to our last action arrives
        attacker.close_code = peer.close_code()
        if attacker.close_code is None:
            await peer.close(0x77, "done")


async def readme_handler(endpoint: qp2p_trio.Endpoint, got: list[qp2p_trio.Message]) -> None:
    """The README's handler, recording what it got."""
    async for msg in endpoint.messages():
        got.append(msg)
        if msg.expects_reply:
            await msg.reply(msg.payload)


class _InternalErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "internal error" in record.getMessage():
            self.records.append(record)


async def run_scenario(scenario: Scenario) -> None:
    network = MemoryNetwork(seed=scenario.seed)
    rng = random.Random(scenario.seed)
    messages = [rng.randbytes(n) for n in scenario.messages]
    requests = [rng.randbytes(n) for n in scenario.requests]
    config = qp2p_trio.Config(max_message_size=MAX_SIZE)
    got: list[qp2p_trio.Message] = []
    attackers: list[Attacker] = []
    replies: list[bytes] = []
    honest_done = trio.Event()
    with network.activate():
        async with open_endpoint_factory(network, config=config) as factory:
            server = await factory()
            client = await factory()

            async def ask(conn: qp2p_trio.Connection, payload: bytes) -> None:
                replies.append(await conn.request(payload))

            async def honest() -> None:
                await trio.sleep(scenario.honest_delay)
                start = trio.current_time()
                with trio.fail_after(HONEST_LIMIT):
                    conn = await client.connect(server.local_address, node_id=server.node_id)
                    async with trio.open_nursery() as nursery:
                        for payload in messages:
                            nursery.start_soon(conn.send, payload)
                        for payload in requests:
                            nursery.start_soon(ask, conn, payload)
                assert trio.current_time() - start < HONEST_LIMIT
                assert not conn.is_closed
                honest_done.set()

            async with trio.open_nursery() as serving:
                serving.start_soon(readme_handler, server, got)
                with trio.fail_after(60):
                    async with trio.open_nursery() as nursery:
                        for i, program in enumerate(scenario.attackers):
                            nursery.start_soon(
                                attack,
                                network,
                                server,
                                f"127.0.0.{66 + i}",
                                program,
                                honest_done,
                                attackers,
                            )
                        nursery.start_soon(honest)
                await trio.sleep(SETTLE)  # virtual: the attackers' closes are done with

                # Every honest message arrived exactly once, intact; every request
                # got its own reply.
                from_client = [m for m in got if m.sender == client.node_id]
                delivered = [m.payload for m in from_client if not m.expects_reply]
                assert collections.Counter(delivered) == collections.Counter(messages)
                assert collections.Counter(replies) == collections.Counter(requests)
                # No attacker's input made the server fail inside.
                for attacker in attackers:
                    assert attacker.close_code != C.INTERNAL_ERROR
                # The server's books are back to the honest client alone.
                stats = server.statistics()
                assert stats.connections == 1, stats
                assert stats.connections_closing == 0, stats
                assert stats.messages_received == len(got)
                (honest_conn,) = server.connections()
                assert honest_conn.peer_id == client.node_id
                assert honest_conn.statistics().open_streams == 0
                assert budget_held(server) == (0, 0)
                serving.cancel_scope.cancel()
    OUTCOMES.append(
        Outcome(
            honest=len(from_client),
            from_attackers=len(got) - len(from_client),
            closes=tuple(_close_name(a.close_code) for a in attackers),
            refused_locally=sum(a.refused_locally for a in attackers),
            streams_refused=stats.streams_refused,
        )
    )


@attrs.frozen
class Outcome:
    """What one example did (for the summary and the coverage checks)."""

    honest: int
    from_attackers: int
    closes: tuple[str, ...]
    refused_locally: int
    streams_refused: int


OUTCOMES: list[Outcome] = []


def _close_name(code: int | None) -> str:
    if code is None:
        return "open"
    for enum_type in (C,):
        try:
            return enum_type(code).name
        except ValueError:
            pass
    return f"0x{code:x}"


def run(scenario: Scenario) -> None:
    errors = _InternalErrors()
    logger = logging.getLogger("qp2p_trio")
    logger.addHandler(errors)
    try:
        trio.run(run_scenario, scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios)
def test_hostile_stream_sequences(scenario: Scenario) -> None:
    run(scenario)


def test_quiet_scenario() -> None:
    """The harness itself: no attack at all, honest traffic through."""
    run(Scenario(1, (10, 20_000), (5,), 0.0, (Program(True, ()),)))


# -- findings ----------------------------------------------------------------------------


@pytest.mark.parametrize("then", ["reset", "close"])
async def test_zero_length_heads_never_finished_exhaust_the_budget(
    autojump_clock: Any, then: str
) -> None:
    net = MemoryNetwork(seed=41)
    # Found by test_hostile_stream_sequences: a head declaring length 0
    # reserved a message slot that was never given back.  The attacker may
    # take every slot here (share 1), so a leak would refuse the honest send.
    config = qp2p_trio.Config(receive_queue_messages=3, receive_share=1.0)
    with net.activate():
        async with open_endpoint_factory(net, config=config) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                sids = [evil.start_message(K.MESSAGE, 0) for _ in range(3)]  # no FIN
                await evil.flush()
                await trio.sleep(0.5)  # virtual: the heads arrive (and reserve)
                if then == "reset":
                    for sid in sids:
                        evil.quic.reset_stream(sid, E.CANCELLED)
                    await evil.flush()
                    await trio.sleep(0.5)
                await evil.close()
            await trio.sleep(SETTLE)  # virtual: the attacker and its streams are gone
            assert server.statistics().connections == 0
            with trio.fail_after(5):
                conn = await client.connect(server.local_address, node_id=server.node_id)
                await conn.send(b"honest")  # with the leak: MessageRefused (BUSY)
                assert (await server.receive()).payload == b"honest"
