# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Endpoint configuration: one frozen, validated class.

Every protocol timer and every limit lives here, so that no public call
needs a ``timeout=`` argument (callers use cancel scopes) and so that the
limits that keep memory bounded are documented in one place.
"""

from __future__ import annotations

import ipaddress
import math
import os
from typing import TYPE_CHECKING, Any, Literal, final

import attrs
from cryptography import x509

from ._ca import check_root
from ._identity import NodeId
from ._peer import PeerAddress
from ._retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._quic import Address

__all__ = ["ALPN", "Config"]

#: The ALPN protocol id every qp2p_trio connection negotiates.  A peer that
#: offers only other protocols fails the handshake (TLS alert 120).
ALPN = "qp2p-trio/1"

KiB = 1024
MiB = 1024 * KiB


def _optional_peer(value: object) -> PeerAddress | None:
    if value is None or isinstance(value, PeerAddress):
        if value is not None and value.address is None:
            raise ValueError(f"Config.home_relay must have a direct address: {value}")
        return value
    if isinstance(value, str):
        return _optional_peer(PeerAddress.parse(value))
    raise TypeError(f"Config.home_relay must be a PeerAddress or its text, got {value!r}")


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Config.{attribute.name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Config.{attribute.name} must be a finite number > 0, got {value!r}")


def _positive_int(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Config.{attribute.name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"Config.{attribute.name} must be > 0, got {value!r}")


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Config.{attribute.name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"Config.{attribute.name} must be a finite number >= 0, got {value!r}")


def _non_negative_int(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Config.{attribute.name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"Config.{attribute.name} must be >= 0, got {value!r}")


def _fraction(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Config.{attribute.name} must be a number, got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"Config.{attribute.name} must be within 0..1, got {value!r}")


def _share(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    _positive(_inst, attribute, value)
    if value > 1:
        raise ValueError(f"Config.{attribute.name} must be within (0, 1], got {value!r}")


def _optional_retry(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, RetryPolicy):
        raise TypeError(f"Config.{attribute.name} must be a RetryPolicy or None, got {value!r}")


def _optional_callable(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"Config.{attribute.name} must be a callable or None, got {value!r}")


def _node_ids(value: object) -> frozenset[NodeId]:
    if isinstance(value, NodeId | str | bytes):
        raise TypeError(f"expected a collection of NodeId, got {value!r}")
    ids: frozenset[NodeId] = frozenset(value)  # type: ignore[call-overload]
    for node_id in ids:
        if not isinstance(node_id, NodeId):
            raise TypeError(f"expected NodeId values, got {node_id!r}")
    return ids


def _optional_node_ids(value: object) -> frozenset[NodeId] | None:
    return None if value is None else _node_ids(value)


def _certificates(value: object) -> tuple[x509.Certificate, ...]:
    if isinstance(value, x509.Certificate | str | bytes):
        raise TypeError(f"Config.trusted_cas must be a collection of certificates, got {value!r}")
    roots: tuple[x509.Certificate, ...] = tuple(value)  # type: ignore[arg-type]
    for root in roots:
        try:
            check_root(root)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"Config.trusted_cas: {exc}") from None
    return roots


def _revocations(value: object) -> frozenset[NodeId | int]:
    if isinstance(value, NodeId | int | str | bytes):
        raise TypeError(f"Config.revoked_certificates must be a collection, got {value!r}")
    entries: frozenset[NodeId | int] = frozenset(value)  # type: ignore[call-overload]
    for entry in entries:
        if isinstance(entry, bool) or not isinstance(entry, NodeId | int):
            raise TypeError(
                f"Config.revoked_certificates holds NodeId or int serial numbers, got {entry!r}"
            )
    return entries


def _optional_certificate(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, x509.Certificate):
        raise TypeError(
            f"Config.{attribute.name} must be an x509.Certificate or None, got {value!r}"
        )


def _optional_path(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise TypeError(f"Config.{attribute.name} must be a path or None, got {value!r}")


def _optional_ipv4(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"Config.{attribute.name} must be an IPv4 address or None, got {value!r}")
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(
            f"Config.{attribute.name} must be an IPv4 address, got {value!r}"
        ) from None


def _optional_positive(_inst: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _positive(_inst, attribute, value)


@final
@attrs.frozen(kw_only=True)
class Config:
    """Settings of an endpoint; immutable and validated when constructed.

    Every field has a default chosen for a P2P node on the open Internet; the
    limits keep an endpoint's memory bounded whatever its peers do.

    Example::

        config = qp2p_trio.Config(idle_timeout=60.0, max_message_size=64 * 1024 * 1024)
        async with qp2p_trio.open_endpoint(config=config) as ep:
            ...

    Use `attrs.evolve` to derive a changed copy.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: a field is out of range, or two fields contradict each other
            (for example a keep-alive interval not below the idle timeout).
    """

    #: Seconds without any packet after which a connection is closed (QUIC
    #: max_idle_timeout; the smaller of both peers' values applies).
    idle_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: Seconds between keep-alive PINGs on an otherwise idle connection, or
    #: ``None`` to send none.  The default stays below common NAT UDP mapping
    #: timeouts (about 30 s) so that mappings survive.
    keep_alive_interval: float | None = attrs.field(default=10.0, validator=_optional_positive)
    #: Largest message payload (bytes) this endpoint accepts; checked against
    #: the frame header before any payload byte is buffered.  Also bounds
    #: replies to our requests.
    max_message_size: int = attrs.field(default=16 * MiB, validator=_positive_int)
    #: Largest message (bytes) this endpoint accepts as a stream: a message
    #: or request over `max_message_size` and at most this size is handed to
    #: `Endpoint.receive` as soon as its head arrives, with
    #: `Message.streamed` true, and read in chunks (`Message.receive_some`);
    #: the peer may send only `stream_receive_buffer` bytes ahead of the
    #: reader (QUIC flow control), so memory stays bounded whatever the size.
    #: 0 (the default) accepts none: larger messages are refused with
    #: ``TOO_LARGE``, checked from the head.
    max_streamed_message_size: int = attrs.field(default=0, validator=_non_negative_int)
    #: Complete messages waiting for `Endpoint.receive`, at most.  Messages
    #: beyond it are refused with ``BUSY`` (the sender gets `MessageRefused`).
    receive_queue_messages: int = attrs.field(default=1024, validator=_positive_int)
    #: Payload bytes of messages being received or waiting in the queue, at
    #: most; a message whose declared size does not fit is refused with ``BUSY``.
    receive_queue_bytes: int = attrs.field(default=64 * MiB, validator=_positive_int)
    #: Fraction of `receive_queue_messages` and of `receive_queue_bytes` that
    #: one peer address (an IPv4 address, or an IPv6 /64, however many
    #: connections it has) may hold: messages being received or queued, and
    #: unread raw-stream bytes.  At least one message of `max_message_size`.
    #: Past it that peer's new messages are refused with ``BUSY`` and its raw
    #: streams are stopped, while other peers are served.
    receive_share: float = attrs.field(default=0.25, validator=_share)
    #: Seconds a message being received may go without a new byte while it
    #: holds part of the receive budget; past it (checked every that many
    #: seconds, so after one to two of them) the stream is reset with
    #: ``STALLED`` and the budget freed.
    message_stall_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: New incoming connections waiting for `Endpoint.accept`; see that method
    #: for what happens past it.
    accept_queue_size: int = attrs.field(default=64, validator=_positive_int)
    #: Unreliable datagrams (RFC 9221, `Connection.send_datagram`) received
    #: and not yet taken with `Connection.receive_datagram`, per connection;
    #: past it new ones are dropped (counted).  0: datagrams are off (the
    #: peer learns so in the handshake and cannot send any).
    datagram_receive_queue: int = attrs.field(default=64, validator=_non_negative_int)
    #: Raw streams a peer opened that wait for ``accept_bi``/``accept_uni``
    #: (per connection and direction); past it they are refused with ``REFUSED``.
    stream_accept_queue_size: int = attrs.field(default=64, validator=_positive_int)
    #: Protocol handlers (`Endpoint.handle_protocol`) running at once, in
    #: all; a stream past it is reset with ``BUSY``.
    protocol_handlers: int = attrs.field(default=1024, validator=_positive_int)
    #: Protocol handlers running at once for one peer (node id): its share.
    protocol_handlers_per_peer: int = attrs.field(default=64, validator=_positive_int)
    #: Serve as a relay (see :doc:`relays`): forward datagrams between the
    #: peers this endpoint admits that register with it.
    relay: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    #: The relay this endpoint registers with and keeps a connection to
    #: (reconnecting with backoff), so peers can reach it by node id through
    #: it; it appears in `Endpoint.peer_address`.  ``None``: none.
    home_relay: PeerAddress | None = attrs.field(default=None, converter=_optional_peer)
    #: A relay serves at most this many registered peers; more are refused.
    relay_max_peers: int = attrs.field(default=512, validator=_positive_int)
    #: Bytes a second a relay forwards from one peer (a burst of one second).
    relay_peer_rate: int = attrs.field(default=4 * MiB, validator=_positive_int)
    #: Bytes a relay queues for one peer that reads slowly; beyond, frames
    #: for it are dropped (as a full UDP queue would).
    relay_peer_buffer: int = attrs.field(default=256 * KiB, validator=_positive_int)
    #: The largest datagram a relay frame may carry; a peer that declares a
    #: larger one has its relay stream reset.
    relay_max_datagram: int = attrs.field(default=16 * KiB, validator=_positive_int)
    #: Punch a hole next to a relayed connection (``qp2p/punch/1``): when it
    #: works, the connection moves to the direct path without losing a message.
    hole_punching: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    #: A file in which to remember the peers this endpoint dials (node id,
    #: direct addresses, relays, when last seen, whether directly; 1,000
    #: peers at most), read when the endpoint opens and rewritten atomically
    #: as it goes, so that after a restart `Endpoint.connect` with only a
    #: node id finds the peer without bootstrap help.  ``None``: no cache.
    #: An unreadable file is logged and left alone (see :doc:`relays`).
    peer_cache: str | os.PathLike[str] | None = attrs.field(default=None, validator=_optional_path)
    #: Answer peers' reachability checks (``qp2p/reach/1``): dial back the
    #: address a peer asks about (only at the IP we see it at; rate-limited),
    #: and send dial-backs other serving peers ask for.  Off by default; a
    #: relay or another public node turns it on.
    serve_reachability_checks: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )
    #: Unread bytes buffered per raw receive stream; a peer that sends more
    #: than that ahead of the reader gets STOP_SENDING (the reader gets an error).
    stream_receive_buffer: int = attrs.field(default=4 * MiB, validator=_positive_int)
    #: Bytes a sender may have in flight per stream (written to QUIC but not
    #: acknowledged); writers block above it.
    stream_send_buffer: int = attrs.field(default=1 * MiB, validator=_positive_int)
    #: Bytes a connection may have in flight across all its streams.
    connection_send_buffer: int = attrs.field(default=8 * MiB, validator=_positive_int)
    #: Streams this endpoint opens concurrently per connection and direction;
    #: further sends wait for a free slot (aioquic peers allow 128).
    max_concurrent_streams: int = attrs.field(default=100, validator=_positive_int)
    #: Seconds `open_endpoint` spends closing connections gracefully on exit
    #: before it cancels everything.
    close_grace: float = attrs.field(default=1.0, validator=_positive)
    #: The wall clock: a function returning the current Unix time in seconds,
    #: or ``None`` for ``time.time``.  It dates our TLS certificates (a fresh one
    #: is minted for new connections 30 days before the current one expires,
    #: so an endpoint may run for years) and checks the validity period of
    #: peers' certificates and of their node certificates (`trusted_cas`).
    #: Trio's clock cannot serve: it has no epoch.  Tests under
    #: `trio.testing.MockClock` pass a fake that adds a fixed epoch to Trio's
    #: time, to run an endpoint through years of expiry and renewal.
    wall_clock: Callable[[], float] | None = attrs.field(default=None, validator=_optional_callable)
    #: UDP payload size QUIC packets are built to (bytes) until path MTU
    #: discovery finds more; 1200 is the QUIC minimum that every path must
    #: carry.  The floor: discovery never goes below it, and falls back to it
    #: when large packets stop getting through (a black hole).  At most
    #: 16384, the largest packet aioquic fills.
    max_datagram_size: int = attrs.field(default=1200, validator=_positive_int)
    #: Path MTU discovery (RFC 8899 DPLPMTUD, RFC 9000 14.3): after the
    #: handshake, PING + PADDING probes of growing sizes find the largest UDP
    #: payload the path carries, up to `pmtu_max_datagram_size`, and raise
    #: the connection's datagram size to it.  Not on relayed connections.
    pmtu_discovery: bool = True
    #: The largest UDP payload path MTU discovery tries (bytes), at most
    #: 16384: aioquic writes the length of a STREAM frame in two bytes
    #: (below 16384), so it cannot fill a larger packet with one.  No
    #: discovery when it is not above `max_datagram_size`.
    pmtu_max_datagram_size: int = attrs.field(default=16384, validator=_positive_int)
    #: Congestion controller of aioquic to use.
    congestion_control: Literal["reno", "cubic"] = attrs.field(
        default="cubic", validator=attrs.validators.in_(("reno", "cubic"))
    )
    #: Initial RTT estimate (seconds) before a sample exists.
    initial_rtt: float = attrs.field(default=0.1, validator=_positive)
    #: Initial per-stream and per-connection receive windows (bytes) we grant;
    #: aioquic doubles them as data arrives.
    initial_stream_window: int = attrs.field(default=1 * MiB, validator=_positive_int)
    initial_connection_window: int = attrs.field(default=1 * MiB, validator=_positive_int)
    #: Seconds a handshake may take before `Endpoint.connect` gives up on the
    #: attempt (a transient failure: retried under `retry`).
    #:
    #: It also sets the *server-side set-up deadline*: an incoming connection
    #: must be established (TLS done and the peer's SETTINGS received) within
    #: ``2 * handshake_timeout + 4 * PTO`` of its first Initial, where ``PTO =
    #: 3 * initial_rtt`` is QUIC's first probe timeout (21.2 s by default).
    #: The dialler stops waiting after ``handshake_timeout``, but it may be
    #: done on its side while its last flight (Finished, SETTINGS) is still
    #: being lost: it resends it with exponential backoff, the gaps growing
    #: about as long as the time spent so far, so one more probe arrives
    #: before ``2 * handshake_timeout``; the PTOs are the margin.  Activity
    #: (PINGs, anything) does not extend the deadline.  Past it the
    #: connection is closed with ``CloseCode.HANDSHAKE_TIMEOUT`` and counted
    #: in `EndpointStatistics.handshakes_timed_out`.
    handshake_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Backoff for `Endpoint.connect`, `Endpoint.send` and `Endpoint.request`,
    #: or ``None`` to try once.
    retry: RetryPolicy | None = attrs.field(default=RetryPolicy(), validator=_optional_retry)
    #: Seconds between the starts of successive attempts in
    #: `Endpoint.connect_to_any` (happy-eyeballs style); 0 dials all at once.
    race_stagger: float = attrs.field(default=0.0, validator=_non_negative)
    #: Connections (established or handshaking) this endpoint keeps; new
    #: incoming ones past it are refused (QUIC CONNECTION_REFUSED).
    max_connections: int = attrs.field(default=1000, validator=_positive_int)
    #: Incoming handshakes in progress at once; more are refused likewise.
    max_pending_handshakes: int = attrs.field(default=100, validator=_positive_int)
    #: Incoming handshakes in progress from one address: one host cannot take
    #: every handshake slot (more from it are refused likewise).  An address
    #: is an IPv4 address (also when it arrives IPv4-mapped, ``::ffff:a.b.c.d``)
    #: or an IPv6 /64 network: one IPv6 host commonly owns a whole /64.
    max_pending_handshakes_per_address: int = attrs.field(default=10, validator=_positive_int)
    #: Fraction of `max_pending_handshakes`: once that many incoming
    #: handshakes are pending (rounded up), a new one must first prove it owns
    #: its address: it is answered with a QUIC Retry carrying a token, and
    #: only the Initial that echoes the token from the same address starts a
    #: connection (one extra round trip, no state kept before).  The slots
    #: above the threshold thus go to validated addresses only, so Initials
    #: from spoofed or silent addresses can hold at most that fraction.
    #: 0 validates every address; 1 never sends a Retry.
    address_validation_threshold: float = attrs.field(default=0.5, validator=_fraction)
    #: Seconds after which an incoming handshake whose client never proved
    #: its address may be dropped, while handshakes are under pressure (at
    #: least the `address_validation_threshold` share of
    #: `max_pending_handshakes` pending, now or when an Initial arrived
    #: within the last ``unvalidated_handshake_timeout``).  A client proves its address by
    #: sending anything to the connection id we chose (so it got our first
    #: flight), or with a Retry token; retransmitted Initials prove nothing.
    #: Such a handshake is forgotten without an answer and counted in
    #: `EndpointStatistics.handshakes_unvalidated_expired` (a client that is
    #: merely slow retransmits its Initial and starts afresh).  Without
    #: pressure it is left alone, up to the set-up deadline: under bursty
    #: loss an honest client can stay unheard for several seconds.
    unvalidated_handshake_timeout: float = attrs.field(default=3.0, validator=_positive)
    #: Peer events buffered per `Endpoint.events` subscriber; past it, events
    #: are dropped for that subscriber and counted.
    event_queue_size: int = attrs.field(default=256, validator=_positive_int)
    # -- seeing inside (see README, "Debugging")
    #: File to append the TLS secrets of every connection to, in the NSS key
    #: log format, so that Wireshark can decrypt a capture; or ``None`` for
    #: the file named by the ``SSLKEYLOGFILE`` environment variable, if set
    #: (this field takes precedence over it).  Anyone who reads the file can
    #: decrypt the traffic: for debugging only.
    keylog_file: str | os.PathLike[str] | None = attrs.field(default=None, validator=_optional_path)
    #: Directory (created if missing) to write one qlog file per connection
    #: to, for qvis and other qlog tools, or ``None`` for none.  A file is
    #: written when its connection ends (or the endpoint closes), named
    #: ``<our id>-<client|server>-<original destination CID>[-<peer id>].qlog``;
    #: each open connection's trace is held in memory until then.
    qlog_dir: str | os.PathLike[str] | None = attrs.field(default=None, validator=_optional_path)

    # ---- trust: who may connect (see `Trust`; `Endpoint.trust` changes the lists later)
    #: The node ids admitted (an allow-list), or ``None`` for any peer that
    #: proves a key: qp2p's "encrypted only" mode, where identity management
    #: is left to a layer above.  Checked after the peer proved its node id,
    #: in both directions (a peer we dial must be on it too).
    allowed_peers: frozenset[NodeId] | None = attrs.field(
        default=None, converter=_optional_node_ids
    )
    #: Node ids never admitted (a deny-list), in both directions; it wins
    #: over `allowed_peers`.
    denied_peers: frozenset[NodeId] = attrs.field(factory=frozenset, converter=_node_ids)
    #: The root certificates of the network CAs we trust (see
    #: `CertificateAuthority`), or empty.  When set, a peer is admitted, in
    #: both directions, only if it presents a node certificate that one of
    #: them signed for the node id it proved, valid at `wall_clock` and not
    #: revoked; the lists and the hook apply on top.  `Trust.trust_cas`
    #: replaces them later.
    trusted_cas: tuple[x509.Certificate, ...] = attrs.field(default=(), converter=_certificates)
    #: Our own node certificate (signed by a network CA for our node id,
    #: `CertificateAuthority.sign`), presented to every peer after our TLS
    #: certificate; or ``None``.  It must be for the endpoint's identity.
    node_certificate: x509.Certificate | None = attrs.field(
        default=None, validator=_optional_certificate
    )
    #: Revoked node certificates from the start: node ids (all of theirs) and
    #: serial numbers (one each).  `Trust.revoke` adds more while running.
    revoked_certificates: frozenset[NodeId | int] = attrs.field(
        factory=frozenset, converter=_revocations
    )
    #: An async hook ``admit_peer(node_id, address, certificate) -> bool``
    #: asked about every connection the lists admit, incoming and outgoing,
    #: once the peer proved its node id and before any of its data is read:
    #: ``certificate`` is the peer's DER certificate.  ``False``, an exception
    #: (logged) or no answer within `admit_peer_timeout` refuses.  ``None``:
    #: the lists decide alone.
    admit_peer: Callable[[NodeId, Address, bytes], Awaitable[bool]] | None = attrs.field(
        default=None, validator=_optional_callable
    )
    #: Seconds `admit_peer` may take, waiting for a slot included.
    admit_peer_timeout: float = attrs.field(default=5.0, validator=_positive)
    #: Calls of `admit_peer` running at once; more wait for a slot.
    admit_peer_concurrency: int = attrs.field(default=16, validator=_positive_int)
    #: A cheap synchronous hook ``admit_address(address) -> bool`` called for
    #: each new incoming connection attempt (a QUIC Initial) before any TLS
    #: work, with the source address (for rate limits).  ``False`` (or an
    #: exception, logged) refuses it as a limit does: QUIC CONNECTION_REFUSED,
    #: which the dialler sees as `ConnectRefused` (retried later).
    admit_address: Callable[[Address], bool] | None = attrs.field(
        default=None, validator=_optional_callable
    )

    #: Distinct observers (peers at distinct IP addresses) that must report
    #: the same address before `Endpoint.external_addresses` calls it
    #: confirmed.  3: one lying or confused peer (or two) cannot confirm an
    #: address alone, and a small network still gets there (libp2p's
    #: identify uses 4).
    observed_address_quorum: int = attrs.field(default=3, validator=_positive_int)
    #: Seconds a peer's report of our address still counts after its last
    #: connection closed (while connected it counts, and the peer reports
    #: again if the address changes).  Half an hour: NAT mappings and DHCP
    #: leases change, and a peer long gone says nothing about now.
    observed_address_max_age: float = attrs.field(default=1800.0, validator=_positive)

    # ---- port mapping (NAT-PMP, PCP, UPnP-IGD; see `Endpoint.port_mapping`)
    #: Ask the gateway in front of this machine to forward the endpoint's
    #: UDP port (NAT-PMP, PCP and UPnP-IGD are probed at once; the first
    #: that answers is used), keep the mapping while the endpoint runs and
    #: delete it on close.  Off by default: opening a port on the user's
    #: router is the application's decision, and a library that every test
    #: and one-shot command opens should not talk to routers unasked.
    port_mapping: bool = False
    #: The gateway's IPv4 address, or ``None`` for this machine's IPv4
    #: default gateway (then SSDP also searches by multicast).
    port_mapping_gateway: str | None = attrs.field(default=None, validator=_optional_ipv4)
    #: Seconds of lease to ask for (renewed at half of what is granted);
    #: 7200 as RFC 6886 recommends.
    port_mapping_lifetime: int = attrs.field(default=7200, validator=_positive_int)

    def __attrs_post_init__(self) -> None:
        if self.keep_alive_interval is not None and self.keep_alive_interval >= self.idle_timeout:
            raise ValueError(
                f"Config.keep_alive_interval ({self.keep_alive_interval}) must be below "
                f"Config.idle_timeout ({self.idle_timeout}), or None to disable keep-alive"
            )
        if self.max_datagram_size < 1200 or self.max_datagram_size > 16384:
            raise ValueError(
                f"Config.max_datagram_size must be within 1200..16384 (QUIC's minimum and "
                f"the largest packet aioquic fills), got {self.max_datagram_size}"
            )
        if not 1200 <= self.pmtu_max_datagram_size <= 16384:
            raise ValueError(
                f"Config.pmtu_max_datagram_size must be within 1200..16384 (QUIC's minimum and "
                f"the largest packet aioquic fills), got {self.pmtu_max_datagram_size}"
            )
        if self.receive_queue_bytes < self.max_message_size:
            raise ValueError(
                "Config.receive_queue_bytes must be >= Config.max_message_size, or no message "
                "of the largest allowed size could ever be received"
            )
        if self.stream_send_buffer > self.connection_send_buffer:
            raise ValueError(
                "Config.stream_send_buffer must not exceed Config.connection_send_buffer"
            )
        if self.max_concurrent_streams > 128:
            raise ValueError(
                "Config.max_concurrent_streams must be <= 128 (the stream limit aioquic peers grant)"
            )
