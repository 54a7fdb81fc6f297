# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""qp2p_trio: Trio-native peer-to-peer networking over QUIC.

Endpoints identified by an Ed25519 key, mutually authenticated TLS 1.3
connections, discrete messages (one per QUIC stream) with request/response,
and raw QUIC streams as Trio streams.
"""

# This file chooses the public API; each name is re-exported explicitly.
from ._ca import (
    CertificateAuthority as CertificateAuthority,
    load_certificate as load_certificate,
    save_certificate as save_certificate,
)
from ._config import ALPN as ALPN, Config as Config
from ._connection import Connection as Connection, ConnectionStatistics as ConnectionStatistics
from ._endpoint import (
    Endpoint as Endpoint,
    EndpointStatistics as EndpointStatistics,
    open_endpoint as open_endpoint,
)
from ._errors import (
    AdmissionRefused as AdmissionRefused,
    ConnectError as ConnectError,
    ConnectionClosed as ConnectionClosed,
    ConnectRefused as ConnectRefused,
    EndpointError as EndpointError,
    GatewayReplyError as GatewayReplyError,
    HandshakeError as HandshakeError,
    LocalProtocolError as LocalProtocolError,
    MessageError as MessageError,
    MessageRefused as MessageRefused,
    MessageTooLarge as MessageTooLarge,
    PeerCacheError as PeerCacheError,
    PeerIdentityError as PeerIdentityError,
    PeerNotAtRelay as PeerNotAtRelay,
    PeerUnreachable as PeerUnreachable,
    PortMappingError as PortMappingError,
    ProtocolError as ProtocolError,
    QP2PError as QP2PError,
    RelayUnavailable as RelayUnavailable,
    RemoteProtocolError as RemoteProtocolError,
    StreamReset as StreamReset,
)
from ._events import (
    Connected as Connected,
    Disconnected as Disconnected,
    DisconnectReason as DisconnectReason,
    HandshakeFailed as HandshakeFailed,
    PathChanged as PathChanged,
    PeerEvent as PeerEvent,
    PeerEvents as PeerEvents,
)
from ._identity import Identity as Identity, NodeId as NodeId
from ._message import Message as Message
from ._metrics import EndpointMetrics as EndpointMetrics, Histogram as Histogram
from ._observed import (
    ExternalAddress as ExternalAddress,
    NatMapping as NatMapping,
    Reachability as Reachability,
)
from ._peer import PeerAddress as PeerAddress
from ._peercache_io import read_peer_cache as read_peer_cache
from ._portmap_io import GatewayProbe as GatewayProbe, PortMappingStatus as PortMappingStatus
from ._prometheus import PrometheusCollector as PrometheusCollector, serve_metrics as serve_metrics
from ._reachcore import ReachabilityResult as ReachabilityResult
from ._retry import RetryPolicy as RetryPolicy
from ._streams import (
    BidirectionalStream as BidirectionalStream,
    RawStreamReset as RawStreamReset,
    ReceiveStream as ReceiveStream,
    SendStream as SendStream,
)
from ._trust import Trust as Trust
from ._version import __version__ as __version__
from ._wire import CloseCode as CloseCode, StreamErrorCode as StreamErrorCode

__all__ = [
    "ALPN",
    "AdmissionRefused",
    "BidirectionalStream",
    "CertificateAuthority",
    "CloseCode",
    "Config",
    "ConnectError",
    "ConnectRefused",
    "Connection",
    "ConnectionClosed",
    "ConnectionStatistics",
    "Endpoint",
    "EndpointError",
    "EndpointStatistics",
    "ExternalAddress",
    "EndpointMetrics",
    "GatewayProbe",
    "GatewayReplyError",
    "HandshakeError",
    "Histogram",
    "Identity",
    "LocalProtocolError",
    "Message",
    "MessageError",
    "MessageRefused",
    "MessageTooLarge",
    "NatMapping",
    "NodeId",
    "PeerAddress",
    "RetryPolicy",
    "Connected",
    "Disconnected",
    "DisconnectReason",
    "HandshakeFailed",
    "PathChanged",
    "PeerEvent",
    "PeerEvents",
    "PeerIdentityError",
    "PeerCacheError",
    "PeerNotAtRelay",
    "PortMappingError",
    "PortMappingStatus",
    "PeerUnreachable",
    "PrometheusCollector",
    "ProtocolError",
    "QP2PError",
    "RelayUnavailable",
    "Reachability",
    "ReachabilityResult",
    "ReceiveStream",
    "RemoteProtocolError",
    "SendStream",
    "StreamErrorCode",
    "StreamReset",
    "Trust",
    "RawStreamReset",
    "__version__",
    "load_certificate",
    "open_endpoint",
    "read_peer_cache",
    "save_certificate",
    "serve_metrics",
]


def _fixup_module_metadata() -> None:
    # Show public objects as qp2p_trio.X in reprs, tracebacks and docs.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("qp2p_trio._"):
            try:
                obj.__module__ = __name__
            except (AttributeError, TypeError):  # pragma: no cover
                pass


_fixup_module_metadata()
del _fixup_module_metadata
