# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Seeing inside an endpoint: its loggers, its TLS key log and its qlog files.

Loggers
-------
Everything the library logs goes to the ``qp2p_trio`` logger hierarchy:

- ``qp2p_trio.endpoint``: an endpoint opened and closed;
- ``qp2p_trio.connection``: handshakes started (DEBUG), done (INFO) and
  failed (INFO, with the reason), closes (INFO, with code and reason);
- ``qp2p_trio.admission``: incoming handshakes refused, answered with a
  Retry or dropped, and streams refused (DEBUG: a flood would be loud);
- ``qp2p_trio.pool``: duplicate connections replaced or closed (INFO);
- ``qp2p_trio.dial``: failed attempts retried, with the delay (INFO);
- ``qp2p_trio`` itself: internal errors, our bugs (WARNING).

Peers misbehaving or going away never log at WARNING or above.  No key,
secret or payload is ever logged.  ``qp2p_trio`` has a `logging.NullHandler`
(the library convention), and so has aioquic's ``quic`` logger: aioquic logs
peers' protocol errors (a foreign ALPN: "No common ALPN protocols") at
WARNING, and without a handler of its own Python's last-resort handler would
print them on stderr of an application that configured no logging.  A
NullHandler only marks the record as handled: an application that configures
logging (``logging.basicConfig``, a handler on the root logger, or on
``quic``) still receives every record, as propagation is unchanged.

Key log and qlog
----------------
`Observer` holds an endpoint's key log file (NSS format, for Wireshark),
opened once per endpoint in append mode and closed with it, and its qlog
sink, which writes one JSON file per connection when the connection ends
(or when the endpoint closes, for connections still open then).
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any, Final, TextIO

from . import _quic
from ._errors import EndpointError

if TYPE_CHECKING:
    from ._config import Config
    from ._connection import Connection
    from ._identity import NodeId

__all__ = [
    "KEYLOG_ENV",
    "Observer",
    "connection_closed",
    "connection_established",
    "get_logger",
    "handshake_started",
    "keylog_path",
]

#: The environment variable browsers and curl read for a key log file.
KEYLOG_ENV: Final = "SSLKEYLOGFILE"

ROOT: Final = "qp2p_trio"

logging.getLogger(ROOT).addHandler(logging.NullHandler())
logging.getLogger("quic").addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger ``qp2p_trio.<name>``."""
    return logging.getLogger(f"{ROOT}.{name}")


_conn_log = get_logger("connection")


def _describe(conn: Connection) -> str:
    """``client``/``server``, the peer's id if known, its address and the ODCID (the qlog name)."""
    peer = conn.session.peer_id
    role = "to" if conn.core.is_client else "from"
    who = f"{peer.short()} at " if peer is not None else ""
    return f"{role} {who}{conn.peer_address!r} (odcid {conn.core.original_destination_cid.hex()})"


def handshake_started(conn: Connection) -> None:
    """A handshake started (we dialled, or a peer's Initial was admitted)."""
    if _conn_log.isEnabledFor(logging.DEBUG):
        _conn_log.debug("handshake started %s", _describe(conn))


def connection_established(conn: Connection) -> None:
    if _conn_log.isEnabledFor(logging.INFO):
        _conn_log.info("connection established %s", _describe(conn))


def connection_closed(conn: Connection) -> None:
    """A connection ended: failed set-up (with the reason) or a close (code and reason)."""
    if not _conn_log.isEnabledFor(logging.INFO):
        return
    session = conn.session
    if session.established:
        _conn_log.info("connection %s ended: %s", _describe(conn), session.close_exc)
    elif session.handshake_error is not None:
        _conn_log.info("handshake %s failed: %s", _describe(conn), session.handshake_error)
    elif _conn_log.isEnabledFor(logging.DEBUG):
        _conn_log.debug("connection %s ended unused: %s", _describe(conn), session.close_exc)


def keylog_path(config: Config) -> str | None:
    """Where to write TLS secrets: `Config.keylog_file`, else ``$SSLKEYLOGFILE``, else nowhere."""
    if config.keylog_file is not None:
        return os.fspath(config.keylog_file)
    return os.environ.get(KEYLOG_ENV) or None


class Observer:
    """An endpoint's key log file and qlog sink (see the module docstring)."""

    def __init__(self, config: Config, local_id: NodeId) -> None:
        self.keylog: TextIO | None = None
        self.qlog: _quic.QlogSink | None = None
        self._local = local_id.short()
        self._peers: dict[bytes, str] = {}
        path = keylog_path(config)
        if path is not None:
            # Line-buffered appends: aioquic writes and flushes one line per secret.
            try:
                self.keylog = open(path, "a", encoding="ascii", buffering=1)  # noqa: SIM115
            except OSError as exc:
                raise EndpointError(f"cannot open the key log file {path!r}: {exc}") from exc
            get_logger("endpoint").warning(
                "writing TLS secrets to %s: anyone who reads it can decrypt the traffic", path
            )
        if config.qlog_dir is not None:
            self._qlog_dir = os.fspath(config.qlog_dir)
            os.makedirs(self._qlog_dir, exist_ok=True)
            self.qlog = _quic.QlogSink(self._write_trace)

    def peer_known(self, odcid: bytes, peer: NodeId) -> None:
        """Name the qlog file of connection ``odcid`` after its peer too."""
        if self.qlog is not None:
            self._peers[odcid] = peer.short()

    def _write_trace(self, odcid: bytes, is_client: bool, trace: dict[str, Any]) -> None:
        parts = [self._local, "client" if is_client else "server", odcid.hex()]
        peer = self._peers.pop(odcid, None)
        if peer is not None:
            parts.append(peer)
        path = os.path.join(self._qlog_dir, "-".join(parts) + ".qlog")
        document = {"qlog_format": "JSON", "qlog_version": _quic.QLOG_VERSION, "traces": [trace]}
        try:
            with open(path, "w", encoding="utf-8") as file:
                json.dump(document, file)
        except OSError as exc:
            get_logger("endpoint").error("cannot write qlog file %s: %s", path, exc)

    def close(self) -> None:
        """Write the qlog traces of connections still open, close the key log."""
        if self.qlog is not None:
            self.qlog.end_all()
        if self.keylog is not None:
            self.keylog.close()
            self.keylog = None
