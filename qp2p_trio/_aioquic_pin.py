# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The aioquic releases the adapter (`_quic`) is tested with, checked at import (sans-IO).

`_quic` uses aioquic internals (listed in its docstring) that may move in
any release; pyproject.toml pins the same range, and ``nox -s
aioquic_latest`` runs the adapter tests against the newest aioquic so that
moving the pin is a decision.
"""

from __future__ import annotations

import itertools
from typing import Final

__all__ = ["AIOQUIC_OVERRIDE", "AIOQUIC_SUPPORTED", "check_aioquic_version"]

#: The aioquic releases the adapter is tested with, [low, high): its private
#: accesses (listed above) may move in any other.
AIOQUIC_SUPPORTED: Final = ((1, 7, 2), (1, 8))
#: Set (to anything non-empty) to import with another aioquic all the same.
AIOQUIC_OVERRIDE: Final = "QP2P_TRIO_ANY_AIOQUIC"


def check_aioquic_version(version: str, *, allow_any: bool = False) -> None:
    """Raise `ImportError` unless aioquic ``version`` is one the adapter is tested with."""
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        parts.append(int(digits) if digits else 0)
    low, high = AIOQUIC_SUPPORTED
    if allow_any or low <= tuple(parts) < high:
        return
    wanted = f"aioquic>={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
    raise ImportError(
        f"qp2p_trio needs {wanted}, but aioquic {version} is installed: its QUIC adapter "
        "uses aioquic internals that may differ in other releases (see qp2p_trio/_quic.py). "
        f"Install a supported release with: pip install '{wanted}' "
        f"(or set {AIOQUIC_OVERRIDE}=1 to try this one anyway)"
    )
