# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The sans-IO parts of the reachability check: records, probes, tables, verdicts."""

from __future__ import annotations

import pytest

from qp2p_trio import RemoteProtocolError
from qp2p_trio._quicheader import parse_datagram_header
from qp2p_trio._reachcore import (
    DIAL_BACK,
    DIAL_BACK_MIN,
    HEAD,
    PROBE_SIZE,
    REQUEST,
    PendingProbes,
    RateLimiter,
    Reachability,
    RecentContacts,
    Status,
    VerdictBook,
    decode_dial,
    decode_record_head,
    decode_status,
    encode_dial,
    encode_status,
    make_probe,
    verdict,
)

NONCE = bytes(range(16))


@pytest.mark.parametrize("address", [("192.0.2.7", 4433), ("2001:db8::1", 9)])
def test_dial_records_round_trip(address: tuple[str, int]) -> None:
    record = encode_dial(REQUEST, NONCE, address)
    kind, length = decode_record_head(record[: HEAD.size])
    assert (kind, length) == (REQUEST, len(record) - HEAD.size)
    assert decode_dial(record[HEAD.size :]) == (NONCE, address)
    padded = encode_dial(DIAL_BACK, NONCE, address)
    assert len(padded) == DIAL_BACK_MIN  # the server pays for the helper's probes
    assert decode_dial(padded[HEAD.size :]) == (NONCE, address)
    assert encode_dial(REQUEST, NONCE, ("::ffff:192.0.2.7", 1))[-4:] == bytes([192, 0, 2, 7])


def test_bad_records() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        encode_dial(REQUEST, b"short", ("192.0.2.1", 1))
    with pytest.raises(ValueError, match="not an IP socket address"):
        encode_dial(REQUEST, NONCE, ("peer", "path"))
    for body in (b"", NONCE, NONCE + b"\x04\x00", NONCE + b"\x09\x00\x01", NONCE + bytes(7)):
        with pytest.raises(RemoteProtocolError, match="reachability"):
            decode_dial(body)
    with pytest.raises(RemoteProtocolError, match="record of 4096 bytes"):
        decode_record_head(b"\x01\x10\x00")
    for body in (b"", b"\x00\x00", b"\x09"):
        with pytest.raises(RemoteProtocolError, match="RESPONSE"):
            decode_status(body)
    assert decode_status(encode_status(Status.DECLINED)[HEAD.size :]) is Status.DECLINED


def test_probe_is_a_small_initial_with_the_nonce() -> None:
    probe = make_probe(NONCE)
    assert len(probe) == PROBE_SIZE < 1200  # an endpoint expecting none drops it
    header = parse_datagram_header(probe)
    assert header is not None
    assert header.is_initial
    assert header.destination_cid == NONCE


def test_pending_probes() -> None:
    woken: list[int] = []
    table = PendingProbes(limit=2)
    assert table.add(NONCE, ("192.0.2.1", 1), lambda: woken.append(1))
    assert not table.add(NONCE, ("192.0.2.1", 1), lambda: None)  # no duplicates
    assert table.add(bytes(16), ("192.0.2.1", 1), lambda: None)
    assert not table.add(bytes(range(1, 17)), ("192.0.2.1", 1), lambda: None)  # full
    assert not table.arrived(bytes(range(2, 18)), ("198.51.100.1", 5))  # not ours
    assert not table.arrived(NONCE[:8], ("198.51.100.1", 5))
    assert table.arrived(NONCE, ("198.51.100.1", 5))
    assert table.arrived(NONCE, ("198.51.100.2", 6))  # a second probe: dropped, first kept
    assert woken == [1]
    assert table.received == 2
    assert table.source(NONCE) == ("198.51.100.1", 5)
    assert table.pop(NONCE) == ("198.51.100.1", 5)
    assert table.pop(NONCE) is None
    assert table.source(NONCE) is None
    assert len(table) == 1
    assert table.add(b"m" * 16, ("192.0.2.1", 1), lambda: None)
    assert table.arrived(b"m" * 16, ("::ffff:198.51.100.3", 7, 0, 0))  # a dual-stack socket
    assert table.pop(b"m" * 16) == ("198.51.100.3", 7)


def test_recent_contacts() -> None:
    recent = RecentContacts(limit=2, max_age=300.0)
    recent.note(("192.0.2.1", 1), 0.0)
    recent.note(("relay-peer", "relay"), 0.0)  # a path address: ignored
    assert recent.contacted(("192.0.2.1", 99), 299.0)  # any port
    assert recent.contacted(("::ffff:192.0.2.1", 99, 0, 0), 10.0)
    assert not recent.contacted(("192.0.2.1", 99), 300.0)  # aged out
    assert not recent.contacted(("192.0.2.2", 1), 10.0)
    recent.note(("192.0.2.2", 1), 400.0)
    recent.note(("192.0.2.3", 1), 400.0)  # drops 192.0.2.1, old: fine
    assert not recent.contacted(("192.0.2.9", 1), 400.0)
    recent.note(("192.0.2.4", 1), 401.0)  # drops 192.0.2.2, young: cannot rule anyone out
    assert recent.contacted(("192.0.2.9", 1), 401.0)
    assert not recent.contacted(("192.0.2.9", 1), 701.0)


def test_verdicts() -> None:
    stranger = ("198.51.100.1", 5)
    assert verdict(Status.SENT, stranger, False)[0] is Reachability.REACHABLE
    assert verdict(None, stranger, False)[0] is Reachability.REACHABLE  # the nonce is the proof
    assert verdict(Status.SENT, stranger, True)[0] is Reachability.UNKNOWN
    assert verdict(Status.SENT, None, False)[0] is Reachability.UNREACHABLE
    assert verdict(Status.DECLINED, None, False)[0] is Reachability.UNKNOWN
    assert verdict(None, None, False)[0] is Reachability.UNKNOWN


def test_verdict_book() -> None:
    book = VerdictBook(limit=2, max_age=600.0)
    a, b, c = ("192.0.2.1", 1), ("192.0.2.2", 1), ("192.0.2.3", 1)
    book.record(a, Reachability.REACHABLE, 0.0)
    book.record(a, Reachability.UNKNOWN, 1.0)  # no proof does not undo a proof
    assert book.get(a, 1.0) is Reachability.REACHABLE
    book.record(a, Reachability.UNREACHABLE, 2.0)
    assert book.get(a, 2.0) is Reachability.UNREACHABLE
    assert book.get(a, 602.0) is None
    book.record(b, Reachability.UNKNOWN, 3.0)
    book.record(c, Reachability.UNKNOWN, 3.0)
    assert book.get(a, 3.0) is None  # the oldest went
    assert book.get(c, 3.0) is Reachability.UNKNOWN


def test_rate_limiter() -> None:
    limiter = RateLimiter(per_key=2, total=3, window=60.0, max_keys=2)
    assert limiter.allow("a", 0.0)
    assert limiter.allow("a", 1.0)
    assert not limiter.allow("a", 2.0)  # per key
    assert limiter.allow("b", 2.0)
    assert not limiter.allow("b", 3.0)  # in all
    assert limiter.allow("a", 60.0)  # the first one left the window
    assert not limiter.allow("c", 61.5)  # no room for a third key
    assert limiter.allow("c", 200.0)
