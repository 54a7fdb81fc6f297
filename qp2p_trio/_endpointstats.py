# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`EndpointStatistics`: the snapshot `Endpoint.statistics` returns (sans-IO)."""

from __future__ import annotations

from typing import final

import attrs

__all__ = ["EndpointStatistics"]


@final
@attrs.frozen
class EndpointStatistics:
    """A snapshot of an endpoint's counters (`Endpoint.statistics`).

    Attributes:
        connections: connections alive (handshaking or open, not closing).
        connections_closing: closed connections still in QUIC's closing
            period (they only answer stray packets, then are forgotten).
        pooled: peers with a live pooled connection.
        connections_refused: Initial datagrams of new incoming connections
            answered with CONNECTION_REFUSED, because of
            `Config.max_connections`, `Config.max_pending_handshakes` or
            `Config.max_pending_handshakes_per_address` (a client that
            retransmits its Initial is counted again).
        retries_sent: Initials answered with a QUIC Retry (address
            validation, see `Config.address_validation_threshold`).
        invalid_tokens: Initials whose token was not a valid Retry token of
            ours for that address (expired, forged, replayed elsewhere),
            answered with INVALID_TOKEN.
        handshakes_timed_out: incoming connections closed with
            ``CloseCode.HANDSHAKE_TIMEOUT`` because they were not established
            by the set-up deadline (see `Config.handshake_timeout`).
        handshakes_unvalidated_expired: incoming handshakes forgotten because
            their client never proved its address within
            `Config.unvalidated_handshake_timeout`.
        peers_refused: connections closed with
            ``CloseCode.ADMISSION_REFUSED`` because our trust policy did not
            admit the peer (`Trust` lists, `Config.admit_peer`), incoming or
            outgoing, including live ones closed when the lists changed.
        admission_hook_failures: `Config.admit_peer` calls that raised or
            timed out (each refused the peer).
        addresses_refused: Initials of new incoming connections that
            `Config.admit_address` refused (answered with CONNECTION_REFUSED
            like a limit, before any TLS work).
        answers_suppressed: refusals and Retries not sent because more than
            1,000 per second (burst 200) were due: the Initials were dropped,
            so a flood of them costs what junk costs.
        datagrams_received / datagrams_sent: UDP datagrams (and those
            carried by an attached datagram path; sent ones as handed over).
        bytes_received / bytes_sent: their payload bytes.
        dropped_malformed: datagrams whose QUIC header did not parse, or that
            aioquic rejected.
        dropped_unknown_connection: datagrams for no known connection that
            could not start one (not an Initial, or shorter than 1200 bytes).
        dropped_unsupported_version: datagrams of another QUIC version
            (answered with Version Negotiation).
        send_errors / receive_errors: socket errors, datagram skipped.
        messages_received: messages delivered to the receive queue.
        streams_refused: incoming streams refused (too large, queue full,
            malformed, unsupported).
        connections_unannounced: accepted connections `Endpoint.accept` did
            not get because its queue was full (they work all the same).
        streams_stalled: incoming messages reset with ``STALLED``: they held
            receive budget and made no progress for
            `Config.message_stall_timeout` (also in ``streams_refused``).
        handshake_failures: handshakes, incoming or outgoing, that TLS
            refused: a TLS alert sent or received (QUIC CRYPTO_ERROR, 0x100 +
            alert; for example 0x178 for a ClientHello without our ALPN, 0x128
            for one without Ed25519 among its signature algorithms), or a
            peer certificate that proves no node id or not the expected one.
            The listener answers a refused ClientHello with its alert within
            one round trip; these are not counted as `dropped_malformed`.
        unreachable_reports: ICMP destination-unreachable reports the
            socket delivered (Linux ``IP_RECVERR``).
        dials_unreachable: dials those reports failed with
            `PeerUnreachable`: handshakes to the reported address that had
            heard nothing from their peer yet (every other report is ignored).
        protocol_streams_handled: peers' protocol streams given to a
            handler (`handle_protocol`).
        protocol_streams_unknown / protocol_streams_busy: protocol streams
            reset with ``UNKNOWN_PROTOCOL`` / ``BUSY`` (also in
            ``streams_refused``).
        protocol_handler_failures: protocol handlers that raised.
        relay_clients: peers registered with this relay (`Config.relay`).
        relay_frames_forwarded / relay_bytes_forwarded: what it forwarded.
        relay_dropped_rate / _buffer / _unknown_peer: datagrams it dropped
            (source over `Config.relay_peer_rate`, destination's queue full,
            nobody registered with that id).
        relay_clients_refused / relay_clients_malformed: clients refused
            (`Config.relay_max_peers`) or cut off for a bad frame.
        relay_paths_dropped: our datagrams dropped on the way to a relay.
        relay_paths / relay_paths_up: relays this endpoint uses (its home
            relay and those of peers it dialled), and those with a relay
            stream up now (gauges).
        home_relay_up: 1 while the stream to `Config.home_relay` is up,
            else 0 (also without a home relay).
        punch_attempts / punch_successes / punch_failures: hole punching
            rounds for relayed connections we dialled; punch_requests_refused:
            peers' punch requests not answered (not relayed, or too many).
        reach_checks_served / reach_checks_declined: peers' reachability
            checks we served (`Config.serve_reachability_checks`) or declined
            (rate limit, an address not at the IP we see the peer at);
            reach_dial_backs_helped: dial-backs we sent for another server;
            reach_probes_sent: dial-back probe datagrams we sent;
            reach_records_malformed: ``qp2p/reach/1`` streams reset for a bad
            record; reach_verdicts_reachable / _unreachable / _unknown: the
            verdicts of our own checks (`Endpoint.check_reachability`);
            reach_probes_received: dial-back probes with a nonce we waited for.
    """

    connections: int
    connections_closing: int
    pooled: int
    datagrams_received: int
    datagrams_sent: int
    bytes_received: int
    bytes_sent: int
    dropped_malformed: int
    dropped_unknown_connection: int
    dropped_unsupported_version: int
    send_errors: int
    receive_errors: int
    messages_received: int
    streams_refused: int
    connections_unannounced: int
    streams_stalled: int
    connections_refused: int
    handshake_failures: int
    retries_sent: int
    invalid_tokens: int
    handshakes_timed_out: int
    handshakes_unvalidated_expired: int
    answers_suppressed: int
    peers_refused: int
    admission_hook_failures: int
    addresses_refused: int
    unreachable_reports: int = 0
    dials_unreachable: int = 0
    protocol_streams_handled: int = 0
    protocol_streams_unknown: int = 0
    protocol_streams_busy: int = 0
    protocol_handler_failures: int = 0
    relay_clients: int = 0
    relay_frames_forwarded: int = 0
    relay_bytes_forwarded: int = 0
    relay_dropped_rate: int = 0
    relay_dropped_buffer: int = 0
    relay_dropped_unknown_peer: int = 0
    relay_clients_refused: int = 0
    relay_clients_malformed: int = 0
    relay_paths_dropped: int = 0
    relay_paths: int = 0
    relay_paths_up: int = 0
    home_relay_up: int = 0
    punch_attempts: int = 0
    punch_successes: int = 0
    punch_failures: int = 0
    punch_requests_refused: int = 0
    reach_checks_served: int = 0
    reach_checks_declined: int = 0
    reach_dial_backs_helped: int = 0
    reach_probes_sent: int = 0
    reach_records_malformed: int = 0
    reach_verdicts_reachable: int = 0
    reach_verdicts_unreachable: int = 0
    reach_verdicts_unknown: int = 0
    reach_probes_received: int = 0
