# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Endpoints for tests: a factory that opens them and closes them all at the end.

An endpoint is an async context manager (`qp2p_trio.open_endpoint`) whose
nursery must be entered and left by the same task, which a test body that
wants "an endpoint" rather than a ``with`` block cannot do.  The factory runs
each endpoint in a task of its own nursery instead: the endpoint lives until
the factory's ``async with`` block ends, then every endpoint closes
gracefully (peers see an application close, code 0).

The pytest plugin builds its ``endpoint_factory`` and ``endpoint_pair``
fixtures on this module.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from .._config import Config
from .._endpoint import open_endpoint
from .._identity import Identity
from .._util import unwrap_group
from ._addresses import canonical_endpoint

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._connection import Connection
    from .._endpoint import Endpoint
    from ._network import Host, MemoryNetwork

__all__ = ["EndpointFactory", "EndpointPair", "open_endpoint_factory", "seeded_identity"]

_MAX_HOSTS = 250


@final
@attrs.frozen
class EndpointPair:
    """Two endpoints, connected: what `EndpointFactory.pair` returns.

    Attributes:
        a: The endpoint that dialled.
        b: The endpoint that accepted.
        conn_ab: *a*'s connection to *b* (from `Endpoint.connect`, identity
            checked).
        conn_ba: *b*'s side of the same connection (from `Endpoint.accept`).
    """

    a: Endpoint
    b: Endpoint
    conn_ab: Connection
    conn_ba: Connection


@final
class EndpointFactory:
    """Opens endpoints that stay open until the factory closes.

    Get one from `open_endpoint_factory` (or the ``endpoint_factory`` pytest
    fixture); it has no public constructor.  Call it, from any task, to open
    an endpoint::

        async with open_endpoint_factory(network) as factory:
            a = await factory()
            b = await factory(config=qp2p_trio.Config(idle_timeout=60))
            conn = await a.connect(b.local_address, node_id=b.node_id)

    On a `MemoryNetwork`, each endpoint gets a virtual host of its own by
    default (``127.0.0.2``, ``127.0.0.3``, ... with IPv6 addresses
    ``2001:db8::2``, ...), so that links, partitions and blackholes can tell
    them apart.  Without a network, endpoints bind real sockets on
    ``127.0.0.1``.

    With a `seed`, the identities are seeded too: the n-th endpoint opened
    without an ``identity`` gets a key derived from the seed and n, so node
    ids (which decide, for example, who keeps the connection after a
    simultaneous open) are the same in every run.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        network: MemoryNetwork | None,
        config: Config | None,
        seed: int | None = None,
    ) -> None:
        self._nursery = nursery
        self._network = network
        self._config = config
        self._seed = seed
        self._seeded = 0
        self._endpoints: list[Endpoint] = []
        self._hosts: dict[Endpoint, Host] = {}
        self._stop = trio.Event()
        self._closed = False

    @property
    def network(self) -> MemoryNetwork | None:
        """The virtual network the endpoints run on, or ``None`` for real sockets."""
        return self._network

    @property
    def seed(self) -> int | None:
        """The seed of the endpoints' identities, or ``None`` for fresh random ones."""
        return self._seed

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint opened so far, in order (closed ones included)."""
        return tuple(self._endpoints)

    def host_of(self, endpoint: Endpoint) -> Host:
        """Return the virtual host an endpoint of this factory runs on.

        Raises:
            KeyError: if *endpoint* was not opened by this factory on a network.
        """
        return self._hosts[endpoint]

    async def __call__(
        self,
        *,
        identity: Identity | None = None,
        config: Config | None = None,
        host: Host | None = None,
        local_address: tuple[Any, ...] | None = None,
    ) -> Endpoint:
        """Open an endpoint that lives until the factory closes.

        Args:
            identity: The endpoint's identity; by default the next seeded one
                (see `seed`), or a fresh one.
            config: Its configuration; the factory's default otherwise.
            host: A virtual host to put it on (one of `network`'s hosts, to
                share it with other endpoints); a new host by default.
            local_address: The address to bind, overriding *host*; by default
                port 0 on the host's IPv4 address (``127.0.0.1`` without a
                network).

        Returns:
            The open endpoint.  Closing it early with `Endpoint.aclose` is fine.

        Raises:
            trio.ClosedResourceError: the factory is closed.
            RuntimeError: the network has no free host address left (250 hosts).
            qp2p_trio.EndpointError: the socket cannot be bound.
        """
        if self._closed:
            raise trio.ClosedResourceError("this endpoint factory is closed")
        network = self._network
        if local_address is None:
            if network is None:
                local_address = ("127.0.0.1", 0)
            else:
                if host is None:
                    host = _new_host(network)
                local_address = (host.v4, 0) if host.v4 is not None else (host.v6, 0)
        if config is None:
            config = self._config
        if identity is None and self._seed is not None:
            identity = seeded_identity(self._seed, self._seeded)
            self._seeded += 1
        endpoint: Endpoint = await self._nursery.start(self._serve, local_address, identity, config)
        self._endpoints.append(endpoint)
        if network is not None:
            self._hosts[endpoint] = _host_of(network, endpoint.local_address)
        return endpoint

    async def pair(
        self, *, config: Config | None = None, config_b: Config | None = None
    ) -> EndpointPair:
        """Open two endpoints (each on its own host) and connect the first to the second.

        Args:
            config: Configuration of both endpoints (the factory's default
                otherwise).
            config_b: Configuration of the second endpoint, if it differs.

        Returns:
            The endpoints and both sides of their connection.
        """
        a = await self(config=config)
        b = await self(config=config_b if config_b is not None else config)
        conn_ab = await a.connect(b.local_address, node_id=b.node_id)
        conn_ba = await b.accept()
        return EndpointPair(a, b, conn_ab, conn_ba)

    async def _serve(
        self,
        local_address: tuple[Any, ...],
        identity: Identity | None,
        config: Config | None,
        *,
        task_status: trio.TaskStatus[Endpoint],
    ) -> None:
        async with open_endpoint(local_address, identity=identity, config=config) as endpoint:
            task_status.started(endpoint)
            await self._stop.wait()


def seeded_identity(seed: int, n: int) -> Identity:
    """The n-th identity of ``seed``: the same key in every run (for tests only)."""
    digest = hashlib.sha256(f"qp2p_trio.testing identity {seed} {n}".encode()).digest()
    return Identity.from_private_bytes(digest)


def _only_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is `trio.Cancelled`, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        _match, rest = exc.split(trio.Cancelled)
        return rest is None
    return isinstance(exc, trio.Cancelled)


def _host_of(network: MemoryNetwork, address: tuple[Any, ...]) -> Host:
    ip = canonical_endpoint(address)[0]
    for host in network.hosts:
        if ip in host.addresses:
            return host
    raise ValueError(f"no host owns {address!r}")


def _new_host(network: MemoryNetwork) -> Host:
    owned = {address for host in network.hosts for address in host.addresses}
    for n in range(2, 2 + _MAX_HOSTS):
        v4, v6 = f"127.0.0.{n}", f"2001:db8::{n:x}"
        if v4 not in owned and v6 not in owned:
            return network.add_host(v4, v6)
    raise RuntimeError(f"no free virtual host address left ({_MAX_HOSTS} hosts)")


@contextlib.asynccontextmanager
async def open_endpoint_factory(
    network: MemoryNetwork | None = None,
    *,
    config: Config | None = None,
    seed: int | None = None,
) -> AsyncIterator[EndpointFactory]:
    """Open an `EndpointFactory`; its endpoints close when the block ends.

    On exit, every endpoint still open closes gracefully, all at once (each
    bounded by its `Config.close_grace`), also when the block raises; then
    the block's exception propagates.  If the block is cancelled, the
    endpoints close as `qp2p_trio.open_endpoint` does when cancelled.

    Args:
        network: The `MemoryNetwork` the endpoints run on.  It must be
            activated (`MemoryNetwork.activate`) while endpoints are opened.
            ``None`` uses whatever sockets Trio creates (real ones by default).
        config: Default configuration of the endpoints (`Config()` otherwise).
        seed: Derive the endpoints' identities from this seed (see
            `EndpointFactory`); ``None``: fresh random identities.

    Yields:
        The factory.
    """
    if config is not None and not isinstance(config, Config):
        raise TypeError(f"config must be a qp2p_trio.Config, got {type(config).__name__}")
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            factory = EndpointFactory(nursery, network, config, seed)
            try:
                yield factory
            except BaseException as exc:
                # Held until the endpoints have closed: raised inside the
                # nursery, it would cancel them before they told their peers.
                error = exc
            finally:
                factory._closed = True
                factory._stop.set()
    except BaseExceptionGroup as group:
        # An endpoint's own failure, not wrapped in a group.  The block's
        # Cancelled is only the echo of that failure: raise the failure.
        if error is not None and not _only_cancelled(error):
            raise error from group
        unwrap_group(group)
    if error is not None:
        raise error
