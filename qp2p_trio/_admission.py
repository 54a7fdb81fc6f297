# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Admission of incoming handshakes, sans-IO: who may start a connection.

Theory of operation
-------------------
Every Initial for an unknown connection id goes through `Admission.screen`,
which answers with `Admit` (start a connection) or `Answer` (a datagram to
send, or nothing; keep no state).  In order:

1. **Limits** (`Config.max_connections`, `Config.max_pending_handshakes`,
   `Config.max_pending_handshakes_per_address`): past one, the Initial is
   refused with a CONNECTION_CLOSE (CONNECTION_REFUSED) built from the
   Initial keys alone (`close_initial`): no TLS, no aioquic connection, a few
   microseconds.  Per-address limits are keyed by `address_key`: an IPv4
   address, or an IPv6 /64.
2. **Tokens**: an Initial carrying a token must carry one of our Retry
   tokens (`RetryTokens`), issued to this very address for this very
   connection id, not expired; otherwise it is closed with INVALID_TOKEN
   (RFC 9000 8.1.3), cheaply as above.  A valid token proves the address.
3. **Address validation under pressure**: once
   ``ceil(address_validation_threshold * max_pending_handshakes)``
   handshakes are pending, an Initial without a token gets a Retry packet
   (a token, no state).  The slots above the threshold thus go to clients
   that proved their address.

Every such stateless answer (a refusal or a Retry) spends a token of a
bucket refilled at `ANSWERS_PER_SECOND` (burst `ANSWER_BURST`); with the
bucket empty the Initial is dropped unanswered (counted in
``answers_suppressed``), so a flood of Initials costs what a flood of junk
costs, and the endpoint keeps serving its connections.  A client whose
Initial went unanswered retransmits it.

Admitted handshakes are tracked here (`add`, `observe`, `remove`) until
the endpoint reports them established or closed.  Two deadlines run from
the first Initial, whatever the peer sends meanwhile:

- a handshake whose client never proved its address (`observe` saw nothing
  addressed to a connection id of ours) expires after
  `Config.unvalidated_handshake_timeout` if handshakes are under pressure
  then (as many pending as the Retry threshold, or an Initial met the
  threshold within the last ``unvalidated_handshake_timeout``), and is
  looked at again that much later otherwise: `expired` reports it as
  ``UNVALIDATED`` and the endpoint forgets it silently;
- any handshake expires at the set-up deadline (`setup_deadline`):
  reported as ``SETUP``; the endpoint closes it.

Nothing here reads a clock or does I/O: ``now`` is passed in.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import hmac
import ipaddress
import logging
import math
import secrets
import struct
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, final

import attrs

# First: checks the aioquic version before any aioquic module is imported.
from ._quicheader import CID_LENGTH

# isort: split
from aioquic.buffer import Buffer, BufferReadError  # type: ignore[attr-defined]
from aioquic.quic.crypto import (
    INITIAL_CIPHER_SUITE,
    INITIAL_SALT_VERSION_1,
    INITIAL_SALT_VERSION_2,
    CryptoPair,
)
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_retry,
    pull_quic_header,
)
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.tls import cipher_suite_hash, hkdf_expand_label, hkdf_extract

if TYPE_CHECKING:
    from collections.abc import Hashable

    from ._config import Config
    from ._quic import Address

__all__ = [
    "CONNECTION_REFUSED",
    "INVALID_TOKEN",
    "Admission",
    "Admit",
    "Answer",
    "Expiry",
    "RetryTokens",
    "address_key",
    "close_initial",
    "setup_deadline",
]

C = TypeVar("C", bound="Hashable")

#: QUIC transport error CONNECTION_REFUSED (RFC 9000, section 20.1).
CONNECTION_REFUSED: Final = int(QuicErrorCode.CONNECTION_REFUSED)
#: QUIC transport error INVALID_TOKEN (RFC 9000, section 20.1).
INVALID_TOKEN: Final = int(QuicErrorCode.INVALID_TOKEN)

#: The set-up deadline is ``2 * handshake_timeout + _SETUP_PTOS * PTO``.
_log = logging.getLogger("qp2p_trio.admission")

_SETUP_PTOS: Final = 4
#: Stateless answers (refusals, Retries) per second at most, and the burst.
ANSWERS_PER_SECOND: Final = 1000.0
ANSWER_BURST: Final = 200.0
_MIN_INITIAL: Final = 1200


def setup_deadline(config: Config) -> float:
    """Seconds an incoming connection has, from its first Initial, to be established.

    ``2 * handshake_timeout + 4 * PTO`` with ``PTO = 3 * initial_rtt``
    (QUIC's first probe timeout: smoothed RTT + 4 * RTT variance, the
    variance starting at half the RTT).  See `Config.handshake_timeout` for why.
    """
    return 2 * config.handshake_timeout + _SETUP_PTOS * 3 * config.initial_rtt


def address_key(host: str) -> str:
    """The key per-address limits count under: an IPv4 address or an IPv6 /64.

    IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``, as a dual-stack socket
    reports IPv4 peers) count as the IPv4 address; a zone (``%eth0``) is
    ignored.  A host that is not an IP address is its own key.
    """
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


# ---------------------------------------------------------------- packets
def close_initial(
    *, version: int, client_dcid: bytes, client_scid: bytes, error_code: int, reason: str
) -> bytes:
    """A server Initial packet carrying CONNECTION_CLOSE (a transport close).

    Protected with the Initial keys derived from the client's destination
    connection id, as the client expects; no TLS and no connection state.
    The datagram is far smaller than the 1200-byte Initial it answers, so it
    cannot amplify.
    """
    # Only the sending half of `CryptoPair.setup_initial`: half the cost.
    crypto = CryptoPair()
    algorithm = cipher_suite_hash(INITIAL_CIPHER_SUITE)
    salt = (
        INITIAL_SALT_VERSION_2
        if version == QuicProtocolVersion.VERSION_2
        else INITIAL_SALT_VERSION_1
    )
    initial_secret = hkdf_extract(algorithm, salt, client_dcid)
    crypto.send.setup(
        cipher_suite=INITIAL_CIPHER_SUITE,
        secret=hkdf_expand_label(
            algorithm, initial_secret, b"server in", b"", algorithm.digest_size
        ),
        version=version,
    )
    builder = QuicPacketBuilder(
        host_cid=secrets.token_bytes(CID_LENGTH),
        peer_cid=client_scid,
        version=version,
        is_client=False,
        max_datagram_size=_MIN_INITIAL,
    )
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    phrase = reason.encode("utf-8", "replace")[:64]
    buf = builder.start_frame(QuicFrameType.TRANSPORT_CLOSE, capacity=20 + len(phrase))
    buf.push_uint_var(error_code)
    buf.push_uint_var(0)  # the frame type that triggered it: none (PADDING)
    buf.push_uint_var(len(phrase))
    buf.push_bytes(phrase)
    datagrams, _packets = builder.flush()
    return bytes(datagrams[0])


# ------------------------------------------------------------------ tokens
_TOKEN_HEAD: Final = struct.Struct(">Bd")
_TOKEN_VERSION: Final = 1
_MAC_SIZE: Final = 16


@final
class RetryTokens:
    """Issues and validates Retry tokens (RFC 9000 8.1.2), stateless.

    A token is ``version | issued-at | len | original DCID | MAC``, the MAC an
    HMAC-SHA256 (truncated to 16 bytes) under a key drawn per endpoint run,
    over the token's head, the client's address (IP and port) and the
    connection id our Retry told the client to use.  So a token is only good
    from the address it was sent to, for that one Retry, for ``lifetime``
    seconds, and only in this endpoint run.
    """

    def __init__(self, lifetime: float, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._lifetime = lifetime

    def _mac(self, head: bytes, addr: Address, retry_scid: bytes) -> bytes:
        where = f"{addr[0]}\x00{addr[1]}\x00".encode()
        msg = head + where + bytes([len(retry_scid)]) + retry_scid
        return hmac.digest(self._key, msg, hashlib.sha256)[:_MAC_SIZE]

    def issue(self, addr: Address, original_dcid: bytes, retry_scid: bytes, now: float) -> bytes:
        head = _TOKEN_HEAD.pack(_TOKEN_VERSION, now) + bytes([len(original_dcid)]) + original_dcid
        return head + self._mac(head, addr, retry_scid)

    def validate(self, token: bytes, addr: Address, retry_scid: bytes, now: float) -> bytes | None:
        """The original destination connection id the token vouches for, or None."""
        if len(token) < _TOKEN_HEAD.size + 1 + _MAC_SIZE:
            return None
        version, issued = _TOKEN_HEAD.unpack_from(token)
        length = token[_TOKEN_HEAD.size]
        end = _TOKEN_HEAD.size + 1 + length
        if version != _TOKEN_VERSION or len(token) != end + _MAC_SIZE:
            return None
        head, mac = token[:end], token[end:]
        if not hmac.compare_digest(mac, self._mac(head, addr, retry_scid)):
            return None
        if not issued <= now <= issued + self._lifetime:
            return None
        return token[_TOKEN_HEAD.size + 1 : end]


# --------------------------------------------------------------- decisions
@final
@attrs.frozen
class Admit:
    """Start a server connection with these ids (see aioquic's `QuicConnection`)."""

    original_destination_cid: bytes
    retry_source_cid: bytes | None
    validated: bool


@final
@attrs.frozen
class Answer:
    """Keep nothing; send ``datagram`` back (if any)."""

    datagram: bytes | None


class Expiry(enum.Enum):
    """Why `Admission.expired` reports a handshake."""

    UNVALIDATED = "unvalidated"
    """The client never proved its address in time: forget it silently."""
    SETUP = "setup"
    """The set-up deadline passed: close it."""


@attrs.define
class _Pending:
    key: str
    first_dcid: bytes
    validated: bool


@attrs.define
class AdmissionCounters:
    connections_refused: int = 0
    retries_sent: int = 0
    invalid_tokens: int = 0
    handshakes_timed_out: int = 0
    handshakes_unvalidated_expired: int = 0
    answers_suppressed: int = 0
    addresses_refused: int = 0


@final
class Admission(Generic[C]):
    """Decides on new Initials and tracks pending handshakes (see the module doc)."""

    def __init__(self, config: Config, *, token_key: bytes | None = None) -> None:
        self._config = config
        self._setup = setup_deadline(config)
        self._unvalidated = min(config.unvalidated_handshake_timeout, self._setup)
        self._retry_from = math.ceil(
            config.address_validation_threshold * config.max_pending_handshakes
        )
        self.tokens = RetryTokens(lifetime=config.handshake_timeout, key=token_key)
        self._pending: dict[C, _Pending] = {}
        self._by_key: dict[str, int] = {}
        # (deadline, seq, conn, expiry); stale entries are skipped when popped.
        self._heap: list[tuple[float, int, C, Expiry]] = []
        self._seq = 0
        # Pressure seen by `screen` keeps counting until then (see `expired`).
        self._pressure_until = -math.inf
        self.counters = AdmissionCounters()
        self._answers = ANSWER_BURST  # the stateless-answer bucket (see module doc)
        self._answers_at = -math.inf

    # -- decisions
    def screen(
        self, data: bytes, addr: Address, now: float, *, connections: int, refused: bool = False
    ) -> Admit | Answer:
        """Decide on an Initial datagram (at least 1200 bytes) for an unknown connection id.

        ``refused``: the application's address hook (`Config.admit_address`)
        refused it; it is answered as a limit refuses.
        """
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except (ValueError, BufferReadError):
            return Answer(None)
        version = header.version
        if version is None or header.packet_type != QuicPacketType.INITIAL:
            return Answer(None)
        cfg = self._config
        counters = self.counters
        if len(self._pending) >= self._retry_from:
            self._pressure_until = now + self._unvalidated
        if refused:
            counters.addresses_refused += 1
            if not self._may_answer(now):
                return Answer(None)
            return Answer(self._close(header, CONNECTION_REFUSED, "refused"))
        if (
            connections >= cfg.max_connections
            or len(self._pending) >= cfg.max_pending_handshakes
            or self._by_key.get(address_key(addr[0]), 0) >= cfg.max_pending_handshakes_per_address
        ):
            counters.connections_refused += 1
            _log.debug("refused a handshake from %r: connection or handshake limit", addr)
            if not self._may_answer(now):
                return Answer(None)
            return Answer(self._close(header, CONNECTION_REFUSED, "too many connections"))
        if header.token:
            odcid = self.tokens.validate(header.token, addr, header.destination_cid, now)
            if odcid is None:
                counters.invalid_tokens += 1
                _log.debug("refused a handshake from %r: invalid address token", addr)
                if not self._may_answer(now):
                    return Answer(None)
                return Answer(self._close(header, INVALID_TOKEN, "invalid token"))
            return Admit(odcid, header.destination_cid, validated=True)
        if len(self._pending) >= self._retry_from:
            if not self._may_answer(now):
                return Answer(None)
            scid = secrets.token_bytes(CID_LENGTH)
            token = self.tokens.issue(addr, header.destination_cid, scid, now)
            counters.retries_sent += 1
            _log.debug("answered a handshake from %r with a Retry (validating addresses)", addr)
            return Answer(
                encode_quic_retry(
                    version=version,
                    source_cid=scid,
                    destination_cid=header.source_cid,
                    original_destination_cid=header.destination_cid,
                    retry_token=token,
                )
            )
        return Admit(header.destination_cid, None, validated=False)

    def _may_answer(self, now: float) -> bool:
        """Take a token from the stateless-answer bucket, if there is one."""
        elapsed = now - self._answers_at
        self._answers_at = now
        tokens = min(ANSWER_BURST, self._answers + elapsed * ANSWERS_PER_SECOND)
        if tokens < 1:
            self._answers = tokens
            self.counters.answers_suppressed += 1
            return False
        self._answers = tokens - 1
        return True

    @staticmethod
    def _close(header: Any, error_code: int, reason: str) -> bytes:
        return close_initial(
            version=header.version,
            client_dcid=header.destination_cid,
            client_scid=header.source_cid,
            error_code=error_code,
            reason=reason,
        )

    # -- bookkeeping
    def add(
        self, conn: C, addr: Address, first_dcid: bytes, now: float, *, validated: bool
    ) -> None:
        """Track an admitted handshake; its deadlines run from ``now``."""
        key = address_key(addr[0])
        self._pending[conn] = _Pending(key, first_dcid, validated)
        self._by_key[key] = self._by_key.get(key, 0) + 1
        self._push(now + self._setup, conn, Expiry.SETUP)
        if not validated:
            self._push(now + self._unvalidated, conn, Expiry.UNVALIDATED)

    def _push(self, at: float, conn: C, why: Expiry) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, conn, why))

    def observe(self, conn: C, dcid: bytes) -> None:
        """A datagram for ``conn`` arrived addressed to ``dcid``.

        Anything addressed to a connection id other than the one of the
        client's first Initial was sent by someone who received our reply:
        the address is proven (RFC 9000 8.1 accepts a Handshake packet; any
        packet to our connection id shows the same).  Retransmitted Initials
        prove nothing.
        """
        entry = self._pending.get(conn)
        if entry is not None and not entry.validated and dcid != entry.first_dcid:
            entry.validated = True

    def remove(self, conn: C) -> None:
        """Stop tracking ``conn`` (established, closed or forgotten); idempotent."""
        entry = self._pending.pop(conn, None)
        if entry is None:
            return
        left = self._by_key[entry.key] - 1
        if left:
            self._by_key[entry.key] = left
        else:
            del self._by_key[entry.key]

    def is_pending(self, conn: C) -> bool:
        return conn in self._pending

    def is_validated(self, conn: C) -> bool:
        entry = self._pending.get(conn)
        return entry is not None and entry.validated

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pending_for(self, host: str) -> int:
        """Pending handshakes counted under ``host``'s `address_key`."""
        return self._by_key.get(address_key(host), 0)

    # -- deadlines
    def _under_pressure(self, now: float) -> bool:
        """At the Retry threshold now, or an Initial met it recently."""
        return len(self._pending) >= self._retry_from or now <= self._pressure_until

    def next_deadline(self) -> float:
        return self._heap[0][0] if self._heap else math.inf

    def expired(self, now: float) -> list[tuple[C, Expiry]]:
        """Pop the handshakes whose deadline passed (no longer tracked afterwards)."""
        out: list[tuple[C, Expiry]] = []
        heap = self._heap
        pressured = self._under_pressure(now)  # for the whole batch
        while heap and heap[0][0] <= now:
            _at, _seq, conn, why = heapq.heappop(heap)
            entry = self._pending.get(conn)
            if entry is None or (why is Expiry.UNVALIDATED and entry.validated):
                continue
            if why is Expiry.UNVALIDATED and not pressured:
                # No pressure: an honest client may just be unlucky (under
                # bursty loss it can hear us seconds before we hear it); its
                # slot is needed by nobody.  Look again later.
                self._push(now + self._unvalidated, conn, why)
                continue
            self.remove(conn)
            if why is Expiry.SETUP:
                self.counters.handshakes_timed_out += 1
            else:
                self.counters.handshakes_unvalidated_expired += 1
            out.append((conn, why))
        return out
