# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The message protocol, sans-IO: two `Session`s over two `QuicCore`s, no Trio.

The test plays the driver by hand: it moves datagrams between the cores with
a fake clock, calls `Session.process` after every input, and answers the
sessions' events (a `MessageArrived` is taken, as the endpoint's queue
would).  Nothing here imports Trio or a socket.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest

from qp2p_trio import (
    AdmissionRefused,
    Config,
    Identity,
    PeerIdentityError,
    _quic,
    _quicheader,
    _wire,
)
from qp2p_trio._budget import ReceiveBudget
from qp2p_trio._certs import make_certificate
from qp2p_trio._classify import refused_by_tls
from qp2p_trio._session import Phase, Session
from qp2p_trio._sessionevents import (
    AdmissionNeeded,
    Closed,
    Established,
    MessageArrived,
    StreamRefused,
)

K = _wire.StreamKind
E = _wire.StreamErrorCode
C = _wire.CloseCode
CLIENT_ADDR = ("10.0.0.1", 1111)
SERVER_ADDR = ("10.0.0.2", 2222)
WALL = time.time()


@attrs.define
class Side:
    """One end: its identity, core, session, and the events it produced."""

    identity: Identity
    core: _quic.QuicCore
    session: Session
    addr: tuple[Any, ...]
    events: list[Any] = attrs.field(factory=list)
    admit: bool = True
    taken: list[MessageArrived] = attrs.field(factory=list)
    #: Deliver arriving messages (True), or play an endpoint that stopped.
    deliver: bool = True


def make_session(
    core: _quic.QuicCore, config: Config, expected: Any = None, *, early_settings: bool = True
) -> Session:
    budget = ReceiveBudget[str](
        messages=config.receive_queue_messages,
        nbytes=config.receive_queue_bytes,
        share=config.receive_share,
        min_share_bytes=config.max_message_size,
    )
    return Session(
        core,
        config,
        expected_peer=expected,
        incarnation=7,
        wall_clock=lambda: WALL,
        budget=budget,
        budget_key="peer",
        early_settings=early_settings,
    )


class Pair:
    """A client and a server session joined by an in-memory pump."""

    def __init__(
        self,
        client_config: Config | None = None,
        server_config: Config | None = None,
        *,
        expect_server: Identity | None = None,
        admit_client: bool = True,
    ) -> None:
        self.now = 1000.0
        cc, sc = client_config or Config(), server_config or Config()
        c_id, s_id = Identity.generate(), Identity.generate()
        c_core = _quic.QuicCore(tls_config(cc, c_id, is_client=True))
        c_core.connect(SERVER_ADDR, self.now)
        first = c_core.datagrams(self.now)
        header = _quicheader.parse_datagram_header(first[0][0])
        assert header is not None
        s_core = _quic.QuicCore(
            tls_config(sc, s_id, is_client=False),
            original_destination_connection_id=header.destination_cid,
        )
        expected = (expect_server or s_id).node_id
        self.client = Side(c_id, c_core, make_session(c_core, cc, expected), CLIENT_ADDR)
        server = make_session(s_core, sc, early_settings=admit_client)
        self.server = Side(s_id, s_core, server, SERVER_ADDR, admit=admit_client)
        for data, _ in first:
            self._feed(self.server, data, CLIENT_ADDR)
        self.run()

    def _feed(self, side: Side, data: bytes, src: tuple[Any, ...]) -> None:
        side.core.receive(data, src, self.now)
        self._process(side)

    def _process(self, side: Side) -> None:
        side.session.process(self.now)
        self._drain(side)

    def _drain(self, side: Side) -> None:
        session = side.session
        while session.events:
            batch, session.events = session.events, []
            for ev in batch:
                side.events.append(ev)
                if isinstance(ev, MessageArrived):
                    side.taken.append(ev)
                    session.message_taken(ev.sid, side.deliver)
                elif isinstance(ev, AdmissionNeeded):  # the host's trust policy
                    session.decide_admission(side.admit, self.now)

    def run(self, rounds: int = 200) -> None:
        """Move datagrams (and fire timers) until both sides are quiet."""
        for _ in range(rounds):
            self.now += 0.001
            moved = False
            for src, dst in ((self.client, self.server), (self.server, self.client)):
                timer = src.core.timer()
                if timer is not None and timer <= self.now:
                    src.core.on_timer(self.now)
                    self._process(src)
                out = src.core.datagrams(self.now)
                self._process(src)
                for data, _ in out:
                    moved = True
                    self._feed(dst, data, src.addr)
            if not moved:
                return
        raise AssertionError("the pump did not go quiet")

    def of(self, side: Side, kind: type) -> list[Any]:
        return [e for e in side.events if isinstance(e, kind)]


def tls_config(config: Config, identity: Identity, *, is_client: bool) -> Any:
    cert, key = make_certificate(identity, now=WALL)
    return _quic.build_configuration(config, is_client=is_client, certificate=cert, private_key=key)


def send_message(side: Side, payload: bytes) -> Any:
    """What `Connection.send` does to the session, without the waiting."""
    st = side.session.open_stream(K.MESSAGE, slot=False)
    side.core.send(st.sid, _wire.encode_message_head(K.MESSAGE, len(payload)) + payload, True)
    st.send.finish()
    return st


def test_handshake_verifies_both_and_exchanges_settings() -> None:
    pair = Pair()
    for side, other in ((pair.client, pair.server), (pair.server, pair.client)):
        assert side.session.phase is Phase.OPEN
        assert side.session.peer_id == other.identity.node_id
        assert side.session.established
        assert len(pair.of(side, Established)) == 1
        assert side.session.control.peer_incarnation == 7
        assert side.session.control.peer_max_message_size == Config().max_message_size


def test_message_arrives_and_the_receipt_confirms_it() -> None:
    pair = Pair()
    st = send_message(pair.client, b"hello")
    pair.run()
    (arrived,) = pair.server.taken
    assert arrived.payload == b"hello"
    assert not arrived.request
    assert arrived.reserved == 5
    assert st.receipt == 0
    # The receiver forgot the stream; its budget went with the message.
    assert set(pair.server.session.streams) == {pair.server.session.control.peer_sid}


def test_a_message_nobody_takes_gets_a_closed_receipt() -> None:
    pair = Pair()
    pair.server.deliver = False
    st = send_message(pair.client, b"too late")
    pair.run()
    assert st.receipt == E.CLOSED


def test_request_and_reply_on_one_bidirectional_stream() -> None:
    pair = Pair()
    st = pair.client.session.open_stream(K.REQUEST, slot=False)
    st.parser = _wire.StreamParser(allowed={K.REPLY}, max_message_size=1000)
    pair.client.core.send(st.sid, _wire.encode_message_head(K.REQUEST, 3) + b"ask", True)
    pair.run()
    (req,) = pair.server.taken
    assert req.request
    assert req.sid == st.sid
    reply = _wire.encode_message_head(K.REPLY, 6) + b"answer"
    pair.server.core.send(req.sid, reply, True)
    pair.run()
    assert st.reply == b"answer"


def test_too_large_message_is_refused_with_a_receipt() -> None:
    pair = Pair(server_config=Config(max_message_size=100, receive_queue_bytes=1000))
    st = send_message(pair.client, b"x" * 200)  # ignores the server's SETTINGS
    pair.run()
    assert st.receipt == E.TOO_LARGE
    assert [e.code for e in pair.of(pair.server, StreamRefused)] == [E.TOO_LARGE]
    assert pair.server.taken == []


def test_full_budget_refuses_with_busy_until_taken() -> None:
    pair = Pair(server_config=Config(receive_queue_messages=1, receive_share=1.0))
    pair.server.deliver = True
    first = send_message(pair.client, b"one")
    pair.run()
    assert first.receipt == 0
    # The message holds its share until the application takes it from the
    # queue; our harness never releases it, so the next one is BUSY.
    second = send_message(pair.client, b"two")
    pair.run()
    assert second.receipt == E.BUSY


def test_goaway_on_both_sides_drains_and_closes_with_code_zero() -> None:
    pair = Pair()
    assert pair.client.session.retire()
    assert pair.server.session.retire()
    assert not pair.client.session.retire()  # once
    pair.run()
    for side in (pair.client, pair.server):
        assert side.session.control.peer_goaway is not None
        assert side.session.close_exc is not None
        assert side.session.close_exc.error_code == C.NO_ERROR
        assert len(pair.of(side, Closed)) == 1


def test_stop_sending_on_the_control_stream_is_a_violation() -> None:
    pair = Pair()
    ctrl = pair.server.session.control.peer_sid
    assert ctrl is not None
    pair.server.core.stop(ctrl, 0)
    pair.run()
    closed = pair.client.session.close_exc
    assert closed is not None
    assert closed.error_code == C.PROTOCOL_VIOLATION
    assert not closed.by_peer
    assert pair.server.session.close_exc is not None
    assert pair.server.session.close_exc.by_peer


def test_the_wrong_node_id_fails_the_handshake() -> None:
    pair = Pair(expect_server=Identity.generate())
    assert isinstance(pair.client.session.handshake_error, PeerIdentityError)
    assert refused_by_tls(pair.client.session.handshake_error)
    assert pair.client.session.close_exc is not None
    assert pair.client.session.close_exc.error_code == C.PEER_IDENTITY
    assert pair.of(pair.client, Established) == []


def test_a_refused_client_gets_admission_refused_before_it_is_established() -> None:
    # A server whose policy may refuse holds its SETTINGS until it admitted.
    pair = Pair(admit_client=False)
    error = pair.client.session.handshake_error
    assert isinstance(error, AdmissionRefused)
    assert error.by_peer
    assert error.error_code == C.ADMISSION_REFUSED
    assert pair.of(pair.client, Established) == []
    assert not refused_by_tls(pair.client.session.handshake_error)  # not a TLS failure
    server_error = pair.server.session.handshake_error
    assert isinstance(server_error, AdmissionRefused)
    assert not server_error.by_peer


def test_a_stalled_message_is_reset() -> None:
    pair = Pair()
    st = pair.client.session.open_stream(K.MESSAGE, slot=False)
    pair.client.core.send(st.sid, _wire.encode_message_head(K.MESSAGE, 100) + b"x")
    pair.run()
    server = pair.server.session
    assert server.stall_at is not None
    server.check_stalls(server.stall_at)  # progress since the head: a first look
    server.check_stalls(server.stall_at + 1)  # nothing since: reset
    pair._drain(pair.server)
    assert [e.code for e in pair.of(pair.server, StreamRefused)] == [E.STALLED]
    pair.run()
    assert st.receipt == E.STALLED


@pytest.mark.parametrize("module", ["trio", "socket"])
def test_this_file_needs_no_io(module: str) -> None:
    """The protocol tests above import neither Trio nor sockets (checked by reading)."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    names = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert module not in names


def test_a_close_queued_during_a_send_is_not_taken_for_sent() -> None:
    """A user task closing while the send task awaits the socket: the close is still to go."""
    pair = Pair()
    session = pair.server.session
    session.before_transmit()  # the send task collects (nothing closed yet) ...
    pair.server.core.datagrams(pair.now)
    session.close_locally(C.NO_ERROR, "bye", pair.now)  # ... a user closes meanwhile ...
    session.after_transmit()  # ... and the send completes
    assert not session.close_sent
    assert not session.discard_when_sent()
    session.before_transmit()
    assert pair.server.core.datagrams(pair.now)  # the CONNECTION_CLOSE
    session.after_transmit()
    assert session.close_sent
