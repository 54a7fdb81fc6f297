# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``python -m qp2p_trio``: the ``qp2p-trio`` command; with no arguments, the demo.

The demo needs no arguments: four nodes with fresh identities on 127.0.0.1
connect over real UDP and exchange messages, requests and a large transfer,
narrating as they go.  Exit status 0 means every step worked.  Run
``python -m qp2p_trio --help`` for the other commands.
"""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
