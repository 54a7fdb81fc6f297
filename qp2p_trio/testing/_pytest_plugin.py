# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The qp2p_trio pytest plugin (entry point ``pytest11``: ``qp2p_trio``).

Provides fixtures for tests of code built on qp2p_trio:

- ``memory_network``: a `qp2p_trio.testing.MemoryNetwork`, activated;
- ``endpoint_config``: the default `qp2p_trio.Config` of the endpoints below
  (``None``: the library's defaults); override it to change them;
- ``endpoint_seed``: the seed of their identities (0; override it, or
  return ``None`` for fresh random ones);
- ``endpoint_factory``: an async callable that opens endpoints on that
  network, each on its own virtual host, with seeded identities (the same
  node ids in every run), closed when the test ends;
- ``endpoint_pair``: two endpoints already connected.

They are async fixtures, so they need pytest-trio (``trio_mode = true``, or
``@pytest.mark.trio`` on the test); add pytest-trio's ``autojump_clock``
fixture to run on virtual time.  Importing this module imports only pytest;
qp2p_trio itself is imported when a fixture runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._config import Config
    from ._fixtures import EndpointFactory, EndpointPair
    from ._network import MemoryNetwork

__all__ = [
    "endpoint_config",
    "endpoint_factory",
    "endpoint_pair",
    "endpoint_seed",
    "memory_network",
]


@pytest.fixture
async def memory_network() -> AsyncIterator[MemoryNetwork]:
    """A `qp2p_trio.testing.MemoryNetwork` (seed 0), activated for the test's Trio run.

    While the test runs, ``trio.socket.socket`` creates sockets on this
    network; the previous socket factory is restored afterwards.  This is an
    async fixture, so it needs pytest-trio (a Trio test, ``@pytest.mark.trio``
    or ``trio_mode = true``); combine it with pytest-trio's ``autojump_clock``
    fixture to skip delays instantly.

    Yields:
        The activated network.
    """
    from ._network import MemoryNetwork

    network = MemoryNetwork(seed=0)
    with network.activate():
        yield network


@pytest.fixture
def endpoint_config() -> Config | None:
    """The default `qp2p_trio.Config` of endpoints opened by ``endpoint_factory``.

    ``None`` (this fixture's value) means ``Config()``.  Override the fixture in
    a test module or ``conftest.py`` to change it, for example::

        @pytest.fixture
        def endpoint_config():
            return qp2p_trio.Config(idle_timeout=120.0, keep_alive_interval=None)

    Returns:
        ``None``.
    """
    return None


@pytest.fixture
def endpoint_seed() -> int | None:
    """The seed of the identities ``endpoint_factory`` gives its endpoints.

    0 (this fixture's value): the n-th endpoint of a test gets the same key,
    so the same node id, in every run.  Override the fixture to change it,
    or return ``None`` for fresh random identities.

    Returns:
        0.
    """
    return 0


@pytest.fixture
async def endpoint_factory(
    memory_network: MemoryNetwork, endpoint_config: Config | None, endpoint_seed: int | None
) -> AsyncIterator[EndpointFactory]:
    """An async callable that opens endpoints on ``memory_network``.

    ``await endpoint_factory()`` returns an open `qp2p_trio.Endpoint` on a
    virtual host of its own (``127.0.0.2``, ``127.0.0.3``, ...) with the
    next identity seeded by ``endpoint_seed``; keyword
    arguments ``identity``, ``config``, ``host`` and ``local_address`` change
    that (see `qp2p_trio.testing.EndpointFactory`).  ``await
    endpoint_factory.pair()`` opens two and connects them.

    Every endpoint it opened closes gracefully when the test ends, whether it
    passed, failed or was cancelled.

    Yields:
        The `qp2p_trio.testing.EndpointFactory`.
    """
    from ._fixtures import open_endpoint_factory

    async with open_endpoint_factory(
        memory_network, config=endpoint_config, seed=endpoint_seed
    ) as factory:
        yield factory


@pytest.fixture
async def endpoint_pair(endpoint_factory: EndpointFactory) -> EndpointPair:
    """Two endpoints on ``memory_network``, the first connected to the second.

    Fields: ``a`` (it dialled), ``b`` (it accepted), ``conn_ab`` (``a``'s
    connection, ``b``'s node id verified) and ``conn_ba`` (``b``'s side, from
    ``b.accept()``).  Both endpoints use ``endpoint_config`` and close when the
    test ends.

    Returns:
        The `qp2p_trio.testing.EndpointPair`.
    """
    return await endpoint_factory.pair()
