# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""One side of one benchmark run, in its own process (started by ``run.py``).

Usage: ``worker.py IMPL ROLE WORKLOAD PARAMS_JSON [PEER_JSON]`` with IMPL one
of ``qp2p_trio``, ``qp2p_trio-1200``, ``aioquic``, ``iroh``, ``udp`` and ROLE ``server`` or ``client``.

Run as a script (never ``-m``): its directory, not the repository root, is
then on ``sys.path``, so ``import qp2p_trio`` finds the installed package.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

_MODULES = {
    "qp2p_trio": "impl_qp2p",
    "qp2p_trio-1200": "impl_qp2p",  # path MTU discovery off
    "aioquic": "impl_aioquic",
    "iroh": "impl_iroh",
    "udp": "impl_udp",
}


def main(argv: list[str]) -> None:
    if len(argv) not in (4, 5) or argv[0] not in _MODULES or argv[1] not in ("server", "client"):
        sys.exit(__doc__)
    impl, role, workload, params = argv[0], argv[1], argv[2], json.loads(argv[3])
    peer = json.loads(argv[4]) if len(argv) == 5 else None
    if impl == "qp2p_trio-1200":
        os.environ["QP2P_BENCH_PMTU"] = "0"
    module = importlib.import_module(_MODULES[impl])
    module.main(role, workload, params, peer)


if __name__ == "__main__":
    main(sys.argv[1:])
