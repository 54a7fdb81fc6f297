# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``--metrics HOST:PORT`` of the long-running subcommands (``listen``, ``ping``).

`metrics_option` adds it, `metrics_address` checks it before anything starts
(a numeric address; the ``metrics`` extra installed) and `serving_metrics`
serves the endpoint's metrics while the command runs.
"""

from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from qp2p_trio import serve_metrics

from .client import parse_bind_address
from .errors import CliError, ExitCode
from .output import format_address

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Callable

    from qp2p_trio import Endpoint

__all__ = ["metrics_address", "metrics_option", "serving_metrics"]


def metrics_option(parser: argparse.ArgumentParser) -> None:
    """``--metrics HOST:PORT``."""
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (port 0: any "
        "free port; keep it on loopback); needs the qp2p_trio[metrics] extra",
    )


def metrics_address(text: str | None) -> tuple[str, int] | None:
    """``--metrics HOST:PORT``, checked before anything starts (the extra is installed)."""
    if text is None:
        return None
    address = parse_bind_address(text)
    try:
        importlib.import_module("prometheus_client")
    except ImportError:
        raise CliError(
            ExitCode.USAGE,
            "--metrics needs the prometheus_client package: pip install 'qp2p_trio[metrics]'",
        ) from None
    return address


@asynccontextmanager
async def serving_metrics(
    ep: Endpoint, address: tuple[str, int] | None, announce: Callable[[str], None]
) -> AsyncIterator[None]:
    """Serve the metrics inside the block (the server thread stops on exit).

    ``announce`` gets the URL once the server listens.
    """
    if address is None:
        yield
        return
    try:
        server = serve_metrics(ep, address)
        host, port = await server.__aenter__()
    except OSError as exc:
        raise CliError(
            ExitCode.ENDPOINT, f"cannot serve metrics on {format_address(address)}: {exc}"
        ) from None
    try:
        announce(f"http://{format_address((host, port))}/metrics")
        yield
    finally:
        await server.__aexit__(None, None, None)
