# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Issue 15 (W7): small memos on per-datagram and per-stream paths change no result."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from qp2p_trio import _wire
from qp2p_trio.testing import _addresses

K = _wire.StreamKind


def test_parse_ip_remembers_results_bounded() -> None:
    _addresses._parsed.clear()
    first = _addresses.parse_ip("127.0.0.9")
    assert first == ipaddress.IPv4Address("127.0.0.9")
    assert _addresses.parse_ip("127.0.0.9") is first
    assert _addresses.parse_ip("::ffff:127.0.0.9") == first  # mapped: still IPv4
    with pytest.raises(socket.gaierror):
        _addresses.parse_ip("localhost")  # errors are not remembered
    assert "localhost" not in _addresses._parsed
    for i in range(_addresses._PARSED_MAX + 10):
        _addresses.parse_ip(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(_addresses._parsed) <= _addresses._PARSED_MAX


def test_stream_parser_converts_kind_sets_once_and_alike() -> None:
    plain = frozenset({int(K.MESSAGE), int(K.CONTROL)})
    for _ in range(2):  # the second time from the memo
        parser = _wire.StreamParser(allowed=plain, max_message_size=10)
        assert parser.allowed == {K.MESSAGE, K.CONTROL}
        assert all(type(kind) is K for kind in parser.allowed)
    with pytest.raises(ValueError):
        _wire.StreamParser(allowed=frozenset({0x7F}), max_message_size=10)
    with pytest.raises(ValueError):
        _wire.StreamParser(allowed=frozenset(), max_message_size=10)
    assert frozenset({0x7F}) not in _wire._KIND_SETS
    assert len(_wire._KIND_SETS) <= _wire._KIND_SETS_MAX
