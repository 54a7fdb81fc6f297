# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""An endpoint's TLS settings for new connections, renewed with its certificate.

Owns the endpoint's current self-signed certificate (which carries the node
id) and the two aioquic configurations built from it, one per role.  The
certificate is minted at the first use and again once the wall clock leaves
its renewal window (`_certs.renewal_window`); connections keep the settings
they started with.  The wall clock is passed in, so nothing here reads one.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

from . import _quic
from ._ca import own_chain
from ._certs import make_certificate, renewal_window

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

    from aioquic.quic.configuration import QuicConfiguration

    from ._config import Config
    from ._identity import Identity

__all__ = ["TlsSettings"]


class TlsSettings:
    """Client and server TLS settings for a new connection (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        identity: Identity,
        wall_clock: Callable[[], float],
        *,
        keylog: TextIO | None,
        qlog: _quic.QlogSink | None,
    ) -> None:
        self._config = config
        self._identity = identity
        self._keylog = keylog
        self._qlog = qlog
        self._wall_clock = wall_clock
        self._window = (math.inf, -math.inf)
        self._pair: tuple[QuicConfiguration, QuicConfiguration] | None = None
        self.current()  # mints the first certificate

    @property
    def client(self) -> QuicConfiguration:
        return self.current()[0]

    @property
    def server(self) -> QuicConfiguration:
        return self.current()[1]

    def current(self) -> tuple[QuicConfiguration, QuicConfiguration]:
        """The (client, server) settings, renewing the certificate when due."""
        now = self._wall_clock()
        start, renew_at = self._window
        if self._pair is None or not start <= now < renew_at:
            cert, key = make_certificate(self._identity, now=now)
            build = functools.partial(
                _quic.build_configuration,
                self._config,
                certificate=cert,
                private_key=key,
                keylog=self._keylog,
                qlog=self._qlog,
                chain=own_chain(self._config, self._identity.node_id),
            )
            self._pair = (build(is_client=True), build(is_client=False))
            self._window = renewal_window(cert)
        return self._pair
