# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The private aioquic accesses of qp2p_trio._quic, one test each (see its docstring).

Two `QuicCore` objects are driven in memory by a small pump with a fake clock,
so these tests need neither sockets nor Trio.  If one fails after an aioquic
upgrade, `qp2p_trio/_quic.py` needs updating.
"""

import ssl
import time

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated

from qp2p_trio import ALPN, Config, Identity
from qp2p_trio._certs import make_certificate
from qp2p_trio._quic import (
    HandshakeDone,
    QuicCore,
    StreamData,
    Terminated,
    build_configuration,
)
from qp2p_trio._quicshare import FrameTable

CLIENT_ADDR = ("10.0.0.1", 1111)
SERVER_ADDR = ("10.0.0.2", 2222)


def conf(is_client, identity=None):
    cert, key = make_certificate(identity or Identity.generate(), now=time.time())
    return build_configuration(Config(), is_client=is_client, certificate=cert, private_key=key)


class Pump:
    """Feed each side's datagrams into the other until nothing moves (<= 50 rounds)."""

    def __init__(self, client, server):
        self.client, self.server = client, server
        self.now = 1000.0
        self.events = {id(client): [], id(server): []}

    def _drain(self, side):
        if isinstance(side, QuicCore):
            self.events[id(side)].extend(side.events())
        else:
            while (ev := side.next_event()) is not None:
                self.events[id(side)].append(ev)

    @staticmethod
    def _out(side, now):
        if isinstance(side, QuicCore):
            return side.datagrams(now)
        return side.datagrams_to_send(now=now)

    @staticmethod
    def _in(side, data, addr, now):
        if isinstance(side, QuicCore):
            side.receive(data, addr, now)
        else:
            side.receive_datagram(data, addr, now=now)

    def run(self, rounds=50):
        for _ in range(rounds):
            self.now += 0.01
            moved = False
            for src, dst, src_addr in (
                (self.client, self.server, CLIENT_ADDR),
                (self.server, self.client, SERVER_ADDR),
            ):
                for data, _addr in self._out(src, self.now):
                    moved = True
                    self._in(dst, data, src_addr, self.now)
                self._drain(src)
                self._drain(dst)
            if not moved:
                return
        raise AssertionError("the in-memory pump did not go quiet within 50 rounds")


def handshake(client_id=None, server_id=None):
    client = QuicCore(conf(True, client_id))
    server_conf = conf(False, server_id)
    client.connect(SERVER_ADDR, 1000.0)
    # The endpoint creates a server core from the client's first Initial.
    first = client.datagrams(1000.0)
    from qp2p_trio._quicheader import parse_datagram_header

    header = parse_datagram_header(first[0][0])
    server = QuicCore(server_conf, original_destination_connection_id=header.destination_cid)
    for data, _ in first:
        server.receive(data, CLIENT_ADDR, 1000.0)
    pump = Pump(client, server)
    pump.run()
    for side in (client, server):
        assert any(isinstance(e, HandshakeDone) for e in pump.events[id(side)]), (
            "handshake between two QuicCore objects did not complete"
        )
    return client, server, pump


# 1. QuicConnection._initialize, tls._request_client_certificate
def test_private_initialize_exists():
    assert callable(getattr(QuicConnection, "_initialize", None)), (
        "aioquic QuicConnection._initialize is gone: QuicCore cannot request client certificates"
    )


def test_server_requests_client_certificate():
    client, server, _ = handshake()
    tls = server._quic.tls
    assert getattr(tls, "_request_client_certificate", None) is True, (
        "aioquic tls.Context._request_client_certificate changed: mutual TLS is broken"
    )
    assert client._quic.tls._request_client_certificate is False


# 11. tls._supported_groups: the client offers one key share, X25519
def test_client_offers_only_the_x25519_key_share():
    from aioquic.tls import Group

    client = QuicCore(conf(True))
    client.connect(SERVER_ADDR, 1000.0)
    tls = client._quic.tls
    assert getattr(tls, "_supported_groups", None) == [Group.X25519], (
        "aioquic tls.Context._supported_groups changed: the client builds four key shares again"
    )
    assert tls._x448_private_key is None, "an X448 key share was generated"
    assert tls._ec_private_keys == [], "an ECDHE key share was generated"
    assert tls._x25519_private_key is not None
    # One Initial datagram carries the whole ClientHello.
    assert len(client.datagrams(1000.0)) == 1


def test_server_still_accepts_a_client_offering_only_p256():
    """Servers keep every group: a peer offering only P-256 completes the handshake."""
    from aioquic.tls import Group

    client = QuicCore(conf(True))
    original = type(client._quic)._initialize

    def p256_only(self, peer_cid):
        original(self, peer_cid)
        self.tls._supported_groups = [Group.SECP256R1]

    client._quic._initialize = p256_only.__get__(client._quic)
    client.connect(SERVER_ADDR, 1000.0)
    assert client._quic.tls._x25519_private_key is None
    first = client.datagrams(1000.0)
    from qp2p_trio._quicheader import parse_datagram_header

    header = parse_datagram_header(first[0][0])
    server = QuicCore(conf(False), original_destination_connection_id=header.destination_cid)
    for data, _ in first:
        server.receive(data, CLIENT_ADDR, 1000.0)
    pump = Pump(client, server)
    pump.run()
    for side in (client, server):
        assert any(isinstance(e, HandshakeDone) for e in pump.events[id(side)])


# 12. _crypto_buffers: the handshake's 16 KiB TLS output buffers are let go
def test_crypto_buffers_shrink_once_the_handshake_completed():
    from qp2p_trio._quic import SPENT_CRYPTO_BUFFER

    fresh = QuicCore(conf(True))
    fresh.connect(SERVER_ADDR, 1000.0)
    buffers = getattr(fresh._quic, "_crypto_buffers", None)
    assert isinstance(buffers, dict), "aioquic QuicConnection._crypto_buffers is gone"
    assert all(b.capacity > SPENT_CRYPTO_BUFFER for b in buffers.values())
    client, server, _ = handshake()
    for side in (client, server):
        assert all(b.capacity == SPENT_CRYPTO_BUFFER for b in side._quic._crypto_buffers.values())


def test_a_connection_works_after_its_crypto_buffers_shrank():
    client, server, pump = handshake()
    sid = client.next_stream_id(unidirectional=True)
    client.send(sid, b"x" * 5000, end_stream=True)
    back = server.next_stream_id(unidirectional=True)
    server.send(back, b"y" * 5000, end_stream=True)
    pump.run()
    got = b"".join(
        e.data for e in pump.events[id(server)] if isinstance(e, StreamData) and e.stream_id == sid
    )
    assert got == b"x" * 5000
    got = b"".join(
        e.data for e in pump.events[id(client)] if isinstance(e, StreamData) and e.stream_id == back
    )
    assert got == b"y" * 5000


# 13. __frame_handlers: one shared table, bound per look-up
def test_frame_handler_table_is_shared_and_binds_to_its_connection():
    a, b = QuicCore(conf(True)), QuicCore(conf(True))
    tables = [getattr(c._quic, "_QuicConnection__frame_handlers", None) for c in (a, b)]
    assert all(isinstance(t, FrameTable) for t in tables), (
        "aioquic QuicConnection.__frame_handlers is gone or no longer a dict: "
        "each connection builds its own table again"
    )
    plain = QuicConnection(configuration=conf(True))
    own = plain._QuicConnection__frame_handlers  # type: ignore[attr-defined]
    first, second = tables
    assert len(first) == len(own)
    for frame_type, (handler, epochs) in own.items():
        for table, core in ((first, a), (second, b)):
            bound, shared = table[frame_type]
            assert bound.__self__ is core._quic, hex(frame_type)
            assert bound.__func__ is getattr(type(core._quic), handler.__name__), hex(frame_type)
            assert shared == epochs, hex(frame_type)
        assert first[frame_type][1] is second[frame_type][1]
    with pytest.raises(KeyError):
        first[0x7FFF]  # aioquic answers an unknown frame type with FRAME_ENCODING_ERROR


def _one_rtt_packet(sender, frame_type, body):
    """A 1-RTT packet from ``sender`` holding one frame of ``frame_type`` (test only)."""
    from aioquic.buffer import Buffer
    from aioquic.quic.packet import QuicPacketType
    from aioquic.quic.packet_builder import QuicPacketBuilder
    from aioquic.tls import Epoch

    quic = sender._quic
    builder = QuicPacketBuilder(
        host_cid=quic.host_cid,
        is_client=quic._is_client,
        max_datagram_size=1200,
        packet_number=quic._packet_number,
        peer_cid=quic._peer_cid.cid,
        version=quic._version,
    )
    builder.start_packet(QuicPacketType.ONE_RTT, quic._cryptos[Epoch.ONE_RTT])
    buf = Buffer(capacity=16)
    buf.push_uint_var(frame_type)
    builder.start_frame(0x01, capacity=len(buf.data) + len(body))  # PING's slot, rewritten
    builder._buffer.seek(builder._buffer.tell() - 1)  # drop the PING type byte
    builder._buffer.push_bytes(buf.data + body)
    quic._packet_number += 1
    datagrams, _packets = builder.flush()
    return datagrams[0]


def test_unknown_and_known_frames_through_the_shared_table():
    client, server, pump = handshake(Identity.generate(), Identity.generate())
    # A known frame (PING, 0x01) is handled: the server stays up.
    server.receive(_one_rtt_packet(client, 0x01, b""), CLIENT_ADDR, pump.now)
    pump.run()
    assert server._quic._close_event is None
    # An unknown frame type ends the connection with FRAME_ENCODING_ERROR (0x7).
    server.receive(_one_rtt_packet(client, 0x3FFF, b""), CLIENT_ADDR, pump.now)
    assert server._quic._close_event is not None
    assert server._quic._close_event.error_code == 0x7  # told to the client too:
    pump.run()
    assert client._quic._close_event is not None
    assert client._quic._close_event.error_code == 0x7


# 17. aioquic.quic.connection.EPOCHS is memoised
def test_epochs_is_memoised_and_gives_what_it_gave():
    from aioquic.quic import connection as aioquic_connection
    from aioquic.tls import Epoch

    epochs = aioquic_connection.EPOCHS
    assert hasattr(epochs, "cache_info"), "aioquic's EPOCHS is no longer memoised"
    assert epochs("IH1") is epochs("IH1")
    assert epochs("IH1") == frozenset({Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT})
    assert epochs.__wrapped__("IH1") == epochs("IH1")  # type: ignore[attr-defined]
    hits = epochs.cache_info().hits
    QuicCore(conf(True))
    assert epochs.cache_info().hits >= hits + 30, "a new connection no longer calls EPOCHS"


# 2. tls._peer_certificate / _peer_certificate_chain
def test_peer_certificates_both_sides():
    cid, sid = Identity.generate(), Identity.generate()
    client, server, _ = handshake(cid, sid)
    assert hasattr(server._quic.tls, "_peer_certificate"), "aioquic tls._peer_certificate is gone"
    assert hasattr(server._quic.tls, "_peer_certificate_chain"), (
        "aioquic tls._peer_certificate_chain is gone"
    )
    from qp2p_trio._certs import verify_certificate_chain

    c_sees = client.peer_certificates()
    s_sees = server.peer_certificates()
    assert c_sees, "the client saw no server certificate"
    assert s_sees, "the server saw no client certificate (mutual TLS broken)"
    now = time.time()
    assert verify_certificate_chain(c_sees, now=now, expected=sid.node_id) == sid.node_id
    assert verify_certificate_chain(s_sees, now=now, expected=cid.node_id) == cid.node_id


# 3. QuicConnection._close_event
@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_seen_reports_peer_close_promptly(closer):
    client, server, pump = handshake()
    a, b = (client, server) if closer == "client" else (server, client)
    assert b.close_seen() is None
    a.close(7, "bye")
    mine = a.close_seen()
    assert mine is not None
    assert mine.by_peer is False
    assert mine.error_code == 7
    # One delivery of the CONNECTION_CLOSE, no timers fired: well before 3 PTOs.
    now = pump.now + 0.01
    for data, _ in a.datagrams(now):
        b.receive(data, CLIENT_ADDR if a is client else SERVER_ADDR, now)
    assert hasattr(b._quic, "_close_event"), "aioquic QuicConnection._close_event is gone"
    seen = b.close_seen()
    assert seen == Terminated(
        error_code=7, reason="bye", by_peer=True, idle_timeout=False, is_application=True
    )
    assert b.close_seen() is None  # reported once
    assert not any(isinstance(e, Terminated) for e in b.events())  # and not again by events()


# 4. QuicConnection._streams[sid].sender (_buffer_start, _buffer_stop, is_finished, _reset_error_code)
def test_send_progress():
    client, server, pump = handshake()
    sid = client.next_stream_id(unidirectional=True)
    client.send(sid, b"x" * 5000, end_stream=True)
    sender = client._quic._streams[sid].sender
    for attr in ("_buffer_start", "_buffer_stop", "is_finished", "_reset_error_code"):
        assert hasattr(sender, attr), f"aioquic QuicStreamSender.{attr} is gone"
    p = client.send_progress(sid)
    assert p.unacked == 5000
    assert not p.finished
    assert p.reset_code is None
    pump.run()
    data = b"".join(
        e.data for e in pump.events[id(server)] if isinstance(e, StreamData) and e.stream_id == sid
    )
    assert data == b"x" * 5000
    p = client.send_progress(sid)
    assert p.finished
    assert p.unacked == 0

    sid2 = client.next_stream_id(unidirectional=True)
    client.send(sid2, b"y" * 100)
    client.reset(sid2, 9)
    p = client.send_progress(sid2)
    assert p.reset_code == 9
    assert not p.finished


def test_unacked_total_kept_up_to_date_agrees_with_a_fresh_sum():
    client, _server, pump = handshake()

    def fresh() -> int:
        client._unacked = None
        return client.unacked_total()

    checks = []
    for i in range(6):
        sid = client.next_stream_id(unidirectional=i % 2 == 0)
        client.send(sid, b"a" * (1000 * (i + 1)))
        checks.append((client.unacked_total(), fresh()))
        client.send(sid, memoryview(b"b" * 600)[100:], end_stream=i == 3)
        checks.append((client.unacked_total(), fresh()))
        if i == 2:
            client.reset(sid, 5)
            checks.append((client.unacked_total(), fresh()))
        if i == 4:
            with pytest.raises(AssertionError):  # not quiet yet: some acknowledged
                pump.run(rounds=2)
            checks.append((client.unacked_total(), fresh()))
    for cached, summed in checks:
        assert cached == summed
    assert checks[1][0] == 1000 + 500
    pump.run()
    assert client.unacked_total() == fresh() == 0


# 5. QuicConnection._loss (_rtt_*, congestion_window, bytes_in_flight, _on_packets_lost)
def test_statistics():
    client, server, _pump = handshake()
    for side in (client, server):
        loss = side._quic._loss
        for attr in (
            "_rtt_smoothed",
            "_rtt_min",
            "_rtt_latest",
            "congestion_window",
            "bytes_in_flight",
            "_on_packets_lost",
        ):
            assert hasattr(loss, attr), f"aioquic QuicPacketRecovery.{attr} is gone"
        s = side.statistics()
        assert s["rtt"] > 0, "no RTT sample after the handshake"
        assert s["rtt_min"] > 0
        assert s["congestion_window"] > 0
        assert isinstance(s["packets_lost"], int)
        assert s["packets_lost"] == 0


def test_packets_lost_counter_counts():
    client, server, pump = handshake()
    sid = client.next_stream_id(unidirectional=True)
    client.send(sid, b"z" * 20000, end_stream=True)
    # Drop everything the client sends now, then let time pass so loss detection fires.
    dropped = client.datagrams(pump.now + 0.01)
    assert dropped
    now = pump.now + 0.01
    for _ in range(20):
        timer = client.timer()
        if timer is None or client.statistics()["packets_lost"]:
            break
        now = max(now, timer)
        client.on_timer(now)
        for data, _ in client.datagrams(now):
            server.receive(data, CLIENT_ADDR, now)
        for data, _ in server.datagrams(now):
            client.receive(data, SERVER_ADDR, now)
    assert client.statistics()["packets_lost"] > 0, (
        "the wrapped _loss._on_packets_lost did not count lost packets"
    )


# 6. QuicConnection._state
def test_state_and_is_ended():
    client, server, pump = handshake()
    assert client._quic._state.name == "CONNECTED", "aioquic QuicConnectionState names changed"
    assert not client.is_ended
    assert not server.is_ended
    client.close(0, "")
    now = pump.now + 0.01
    for data, _ in client.datagrams(now):
        server.receive(data, CLIENT_ADDR, now)
    assert server._quic._state.name == "DRAINING"
    assert client._quic._state.name == "CLOSING"
    # After the 3-PTO draining period timers end both connections.
    for side in (client, server):
        t = now
        for _ in range(10):
            timer = side.timer()
            if timer is None or side.is_ended:
                break
            t = max(t, timer)
            side.on_timer(t)
        assert side.is_ended, "QuicCore.is_ended never became true (aioquic _state changed?)"


def test_other_alpn_fails_handshake():
    other = QuicConfiguration(alpn_protocols=["other"], is_client=True, verify_mode=ssl.CERT_NONE)
    raw_client = QuicConnection(configuration=other)
    raw_client.connect(SERVER_ADDR, now=1000.0)
    first = raw_client.datagrams_to_send(now=1000.0)
    from qp2p_trio._quicheader import parse_datagram_header

    header = parse_datagram_header(first[0][0])
    server = QuicCore(conf(False), original_destination_connection_id=header.destination_cid)
    for data, _ in first:
        server.receive(data, CLIENT_ADDR, 1000.0)
    pump = Pump(raw_client, server)
    pump.run()
    client_events = pump.events[id(raw_client)]
    terminated = [e for e in client_events if isinstance(e, ConnectionTerminated)]
    closed = raw_client._close_event
    assert terminated or closed is not None, "the client was not told the handshake failed"
    ev = terminated[0] if terminated else closed
    # TLS alert no_application_protocol (120) as QUIC CRYPTO_ERROR 0x100 + 120.
    assert ev.error_code == 0x100 + 120
    assert not any(isinstance(e, HandshakeDone) for e in pump.events[id(server)])
    term = server.close_seen() or next(
        (e for e in pump.events[id(server)] if isinstance(e, Terminated)), None
    )
    assert term is not None
    assert term.by_peer is False


# 7. _cryptos[ONE_RTT].send.is_valid(), _remote_max_streams_uni
def test_can_send_early_once_the_client_hello_is_in():
    client = QuicCore(conf(True))
    client.connect(SERVER_ADDR, 1000.0)
    first = client.datagrams(1000.0)
    from qp2p_trio._quicheader import parse_datagram_header

    header = parse_datagram_header(first[0][0])
    server = QuicCore(conf(False), original_destination_connection_id=header.destination_cid)
    assert not server.can_send_early  # no keys, no transport parameters yet
    assert not client.can_send_early
    for data, _ in first:
        server.receive(data, CLIENT_ADDR, 1000.0)
    assert server.can_send_early
    # Data queued now leaves in the server's first flight, before the
    # handshake completes (0.5-RTT), and the client reads it once verified.
    sid = server.next_stream_id(unidirectional=True)
    server.send(sid, b"early")
    flight = server.datagrams(1000.0)
    assert flight
    for data, _ in flight:
        client.receive(data, SERVER_ADDR, 1000.01)
    events = client.events()
    assert any(isinstance(e, HandshakeDone) for e in events)
    got = [e for e in events if getattr(e, "stream_id", None) == sid]
    assert got
    assert got[0].data == b"early"


# 10. _state leaving FIRSTFLIGHT once a packet decrypted
def test_decrypted_tells_a_first_client_hello_part_from_junk():
    from qp2p_trio._quicheader import parse_datagram_header

    client_conf = conf(True)
    # ALPN entries long enough to spread the ClientHello over 2+ datagrams.
    client_conf.alpn_protocols = [*("x" * 250 + str(i) for i in range(6)), ALPN]
    client = QuicCore(client_conf)
    client.connect(SERVER_ADDR, 1000.0)
    first = client.datagrams(1000.0)
    assert len(first) >= 2, "the test's ClientHello no longer spans several datagrams"
    dcid = parse_datagram_header(first[0][0]).destination_cid

    # Junk with the same header but a payload that does not decrypt.
    junk = QuicCore(conf(False), original_destination_connection_id=dcid)
    data = bytearray(first[0][0])
    data[-40:] = bytes(40)
    junk.receive(bytes(data), CLIENT_ADDR, 1000.0)
    assert not junk.decrypted
    assert junk.close_seen() is None

    # The first part alone: it decrypted, but yields no keys and no event.
    server = QuicCore(conf(False), original_destination_connection_id=dcid)
    assert not server.decrypted
    server.receive(first[0][0], CLIENT_ADDR, 1000.0)
    assert server.decrypted, "aioquic's _state no longer leaves FIRSTFLIGHT on decryption"
    assert not server.can_send_early
    assert server.events() == []
    assert server.close_seen() is None
    for data, _ in first[1:]:
        server.receive(data, CLIENT_ADDR, 1000.0)
    assert server.can_send_early  # the whole ClientHello is in
    pump = Pump(client, server)
    pump.run()
    assert any(isinstance(e, HandshakeDone) for e in pump.events[id(server)])


def test_terminated_tls_alert():
    def term(code, *, is_application=False):
        return Terminated(code, "", by_peer=True, idle_timeout=False, is_application=is_application)

    assert term(0x178).tls_alert == 120
    assert term(0x128).tls_alert == 40
    assert term(0x100).tls_alert == 0
    assert term(0x1FF).tls_alert == 0xFF
    assert term(0x200).tls_alert is None
    assert term(0x2).tls_alert is None
    # An application close with a code in that range carries no alert.
    assert term(0x101, is_application=True).tls_alert is None


def test_short_header_fast_path_agrees_with_aioquic():
    import random

    from aioquic.buffer import Buffer
    from aioquic.quic.packet import pull_quic_header

    from qp2p_trio._quicheader import CID_LENGTH, parse_datagram_header

    rng = random.Random(5)
    for _ in range(2000):
        data = bytes([rng.randrange(0, 0x80)]) + rng.randbytes(rng.randrange(0, 30))
        ours = parse_datagram_header(data)
        try:
            theirs = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except Exception:
            theirs = None
        if theirs is None:
            assert ours is None, data
        else:
            assert ours is not None, data
            assert ours.destination_cid == theirs.destination_cid
            assert not ours.is_long_header
            assert not ours.is_initial


# 8. QuicStreamSender._buffer_fin (QuicCore.writable)
def test_writable_follows_fin_reset_and_stop_sending():
    client, server, pump = handshake()
    sid = client.next_stream_id(unidirectional=False)
    client.send(sid, b"req")
    sender = client._quic._streams[sid].sender
    assert hasattr(sender, "_buffer_fin"), "aioquic QuicStreamSender._buffer_fin is gone"
    assert client.writable(sid)
    assert not client.writable(sid + 400)  # no such stream
    pump.run()
    # The peer's STOP_SENDING resets our side inside aioquic: no longer writable.
    server.stop(sid, 3)
    pump.run()
    assert not client.writable(sid)
    sid2 = client.next_stream_id(unidirectional=True)
    client.send(sid2, b"x", end_stream=True)
    assert not client.writable(sid2)


# 9. QuicConnection._spaces[ONE_RTT].ack_at (QuicCore.ack_now)
def test_ack_now_brings_the_ack_forward():
    client, server, pump = handshake()
    sid = client.next_stream_id(unidirectional=True)
    client.send(sid, b"x" * 100)
    now = pump.now + 0.001
    for data, _ in client.datagrams(now):
        server.receive(data, CLIENT_ADDR, now)
    from aioquic import tls

    space = server._quic._spaces[tls.Epoch.ONE_RTT]
    assert space.ack_at is not None
    assert space.ack_at > now, "the ACK is delayed"
    assert server.datagrams(now) == []  # nothing due yet
    server.ack_now(now)
    assert space.ack_at < now
    assert len(server.datagrams(now)) == 1  # the ACK leaves at once


# 14. QuicConnection._write_stream_limits, QuicStream.max_stream_data_local, receiver.highest_offset
def test_a_held_window_grows_only_as_the_reader_consumes():
    client, server, pump = handshake()
    sid = client.next_stream_id(unidirectional=True)
    client.send(sid, b"h")
    pump.run()
    window = 64 * 1024
    # Replaced on the instance only once a window is held (a frame per
    # stream per packet saved otherwise).
    assert "_write_stream_limits" not in vars(server._quic)
    server.hold_window(sid, window, consumed=1)
    assert "_write_stream_limits" in vars(server._quic)
    stream = server._quic._streams[sid]
    assert hasattr(stream.receiver, "highest_offset"), "aioquic receiver.highest_offset is gone"

    def received():
        return sum(
            len(e.data)
            for e in pump.events[id(server)]
            if isinstance(e, StreamData) and e.stream_id == sid
        )

    def pump_a_while():
        # A blocked sender keeps signalling it: the pump need not go quiet.
        try:
            pump.run(rounds=200)
        except AssertionError:
            pass

    client.send(sid, b"x" * (3 * 1024 * 1024))
    pump_a_while()
    # aioquic alone would double the window as bytes arrive; held, the
    # sender stops at what was granted (the initial window here).
    first = received()
    assert first == stream.max_stream_data_local == Config().initial_stream_window
    server.consumed(sid, first - 1)
    pump_a_while()
    assert stream.max_stream_data_local == first + window
    assert received() == first + window


# 15. QuicConnection._datagrams_pending, _remote_max_datagram_frame_size
def test_datagrams_limit_queue_and_receive():
    client, server, pump = handshake()
    assert hasattr(client._quic, "_remote_max_datagram_frame_size")
    assert hasattr(client._quic, "_datagrams_pending")
    limit = client.datagram_limit()
    assert 1000 < limit < 1200
    assert client.send_datagram(b"d" * limit)
    pump.run()
    # Queued on the receiving side only when it takes datagrams (queue 0 here).
    assert server.datagram_counts == [0, 0, 1]
    from qp2p_trio._quic import DATAGRAMS_PENDING

    for _ in range(DATAGRAMS_PENDING):
        assert client.send_datagram(b"x")
    assert not client.send_datagram(b"one too many")
    assert client.datagram_counts[2] == 1


# 16. QuicConnection._streams_queue (a property on our subclass)
def test_stream_priorities_order_the_queue():
    client, _server, pump = handshake()
    sids = []
    for _ in range(3):
        sid = client.next_stream_id(unidirectional=True)
        client.send(sid, b"x")
        sids.append(sid)
    queue = client._quic._streams_queue
    assert [s.stream_id for s in queue] == sids, "aioquic's _streams_queue changed"
    client.set_priority(sids[2], 5)
    client.set_priority(sids[0], -1)
    assert [s.stream_id for s in client._quic._streams_queue] == [sids[2], sids[1], sids[0]]
    client.set_priority(sids[2], 0)
    assert [s.stream_id for s in client._quic._streams_queue][-1] == sids[0]
    pump.run()


# 18-20. Path MTU discovery (_quicpmtu): size hooks, probes, black-hole hooks
def _pmtu_pair():
    """A handshake whose client searches up to 16384 bytes."""
    cert, key = make_certificate(Identity.generate(), now=time.time())
    client = QuicCore(
        build_configuration(Config(), is_client=True, certificate=cert, private_key=key),
        pmtu_ceiling=16384,
    )
    client.connect(SERVER_ADDR, 1000.0)
    first = client.datagrams(1000.0)
    from qp2p_trio._quicheader import parse_datagram_header

    header = parse_datagram_header(first[0][0])
    server = QuicCore(conf(False), original_destination_connection_id=header.destination_cid)
    for data, _ in first:
        server.receive(data, CLIENT_ADDR, 1000.0)
    pump = Pump(client, server)
    pump.run()
    assert client.pmtu is not None
    return client, server, pump


def test_datagram_size_reaches_every_cache():
    from qp2p_trio._quicpmtu import set_datagram_size

    client, _server, pump = _pmtu_pair()
    quic = client._quic
    set_datagram_size(quic, 4000)
    assert quic._max_datagram_size == 4000
    assert quic._loss._pacer._max_datagram_size == 4000
    assert quic._loss._cc._max_datagram_size == 4000
    assert quic._loss._cc.additive_increase_factor == 4000  # cubic, our default
    sid = client.next_stream_id(unidirectional=True)
    client.send(sid, b"x" * 100_000, end_stream=True)
    sizes = [len(d) for d, _ in client.datagrams(pump.now)]
    assert max(sizes) == 4000


def test_a_probe_is_exact_not_in_flight_and_raises_the_size_when_acked():
    client, _server, pump = _pmtu_pair()
    quic = client._quic
    loss = quic._loss
    in_flight = loss.bytes_in_flight
    probe = client.pmtu._build(3000, pump.now)
    assert probe is not None
    assert len(probe) == 3000
    assert loss.bytes_in_flight == in_flight  # never counted by congestion control
    assert loss._time_of_last_sent_ack_eliciting_packet == pump.now
    pump.server.receive(probe, CLIENT_ADDR, pump.now)
    pump.run()
    assert client.statistics()["path_mtu"] == 3000


def test_black_hole_hooks_fall_back_when_large_packets_vanish():
    client, server, pump = _pmtu_pair()
    probe = client.pmtu._build(4096, pump.now)
    server.receive(probe, CLIENT_ADDR, pump.now)
    pump.run()
    assert client.statistics()["path_mtu"] == 4096
    loss = client._quic._loss
    assert loss._cc.on_packet_acked.__name__ == "on_acked"
    assert loss._on_packets_lost.__name__ == "on_lost"
    sid = client.next_stream_id(unidirectional=True)
    client.send(sid, b"y" * 200_000, end_stream=True)
    now = pump.now
    got = 0
    for _ in range(200):  # the path now drops whatever is larger than 1200 bytes
        for data, _ in client.datagrams(now):
            if len(data) <= 1200:
                server.receive(data, CLIENT_ADDR, now)
        for data, _ in server.datagrams(now):
            client.receive(data, SERVER_ADDR, now)
        got += sum(len(e.data) for e in server.events() if isinstance(e, StreamData))
        client.events()
        if got == 200_000:
            break
        timer = client.timer()
        now = max(now + 0.001, timer if timer is not None else now)
        client.on_timer(now)
    assert client.pmtu.search.black_holes == 1
    assert got == 200_000


def test_a_new_primary_path_starts_over_at_the_floor():
    from aioquic.quic.connection import QuicNetworkPath

    client, _server, pump = _pmtu_pair()
    sid = client.next_stream_id(unidirectional=True)
    client.send(sid, b"z" * 300_000, end_stream=True)  # bulk data: the search runs
    pump.run()
    assert client.statistics()["path_mtu"] == 16384
    quic = client._quic
    quic._network_paths[0] = QuicNetworkPath(("10.0.0.9", 2222), is_validated=True)
    client.datagrams(pump.now)
    assert client.statistics()["path_mtu"] == 1200
    assert client.pmtu.search.size == 1200


# 28. CryptoContext._setup_cb / _teardown_cb, QuicConnection._quic_logger
def test_key_callbacks_are_dropped_without_qlog_and_kept_with_it():
    from aioquic.quic.crypto import NoCallback

    from qp2p_trio._quic import QlogSink

    client, server, _ = handshake()
    for core in (client, server):
        assert core._quic._quic_logger is None, "aioquic QuicConnection._quic_logger is gone"
        for pair in core._quic._cryptos.values():
            for context in (pair.recv, pair.send):
                assert context._setup_cb is NoCallback, "aioquic CryptoContext._setup_cb is gone"
                assert context._teardown_cb is NoCallback
    # With a qlog, aioquic's own callbacks stay and log every key.
    traces = []
    sink = QlogSink(lambda odcid, is_client, trace: traces.append(trace))
    cert, key = make_certificate(Identity.generate(), now=time.time())
    qc = build_configuration(Config(), is_client=True, certificate=cert, private_key=key, qlog=sink)
    logged = QuicCore(qc)
    logged.connect(SERVER_ADDR, 1000.0)
    first = logged.datagrams(1000.0)
    from qp2p_trio._quicheader import parse_datagram_header

    odcid = parse_datagram_header(first[0][0]).destination_cid
    peer = QuicCore(conf(False), original_destination_connection_id=odcid)
    for data, _ in first:
        peer.receive(data, CLIENT_ADDR, 1000.0)
    Pump(logged, peer).run()
    sink.end_all()
    names = [event["name"] for trace in traces for event in trace["events"]]
    assert "security:key_updated" in names, names


# 29. QuicConnection._discard_epoch, _crypto_streams, _crypto_buffers, _spaces[epoch].discarded
def test_spent_crypto_streams_are_dropped_and_late_handshake_packets_are_harmless():
    from aioquic.tls import Epoch

    from qp2p_trio._quicheader import parse_datagram_header

    client = QuicCore(conf(True))
    client.connect(SERVER_ADDR, 1000.0)
    first = client.datagrams(1000.0)
    header = parse_datagram_header(first[0][0])
    server = QuicCore(conf(False), original_destination_connection_id=header.destination_cid)
    for data, _ in first:
        server.receive(data, CLIENT_ADDR, 1000.0)
    answer = server.datagrams(1000.0)  # the server's Initial and Handshake flight
    for data, _ in answer:
        client.receive(data, SERVER_ADDR, 1000.0)
    pump = Pump(client, server)
    pump.run()
    for core in (client, server):
        quic = core._quic
        assert all(quic._spaces[e].discarded for e in (Epoch.INITIAL, Epoch.HANDSHAKE))
        assert set(quic._crypto_streams) == {Epoch.ONE_RTT}, "aioquic _crypto_streams changed"
        assert set(quic._crypto_buffers) == {Epoch.ONE_RTT}
        spent = quic._cryptos[Epoch.INITIAL]
        assert spent is quic._cryptos[Epoch.HANDSHAKE], "aioquic _cryptos changed"
        assert all(pair is spent for pair in quic._cryptos_initial.values())
        assert not spent.send.is_valid()
        assert not spent.recv.is_valid()
    # Handshake packets arriving late (retransmitted or replayed) are dropped.
    for data, _ in first:
        server.receive(data, CLIENT_ADDR, pump.now)
    for data, _ in answer:
        client.receive(data, SERVER_ADDR, pump.now)
    pump.run()
    assert client._quic._close_event is None
    assert server._quic._close_event is None
    # And the connection carries data as before.
    sid = client.next_stream_id(unidirectional=False)
    client.send(sid, b"after" * 1000, end_stream=True)
    pump.run()
    got = b"".join(
        e.data for e in pump.events[id(server)] if isinstance(e, StreamData) and e.stream_id == sid
    )
    assert got == b"after" * 1000
