# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The ``qp2p-trio`` command (console script, and ``python -m qp2p_trio``).

`main` parses the command line, runs one subcommand and returns its exit
status.  The command is a client of the library like any other program: its
modules import only the public API (``qp2p_trio``'s ``__all__``) and each
other, never a private ``qp2p_trio._*`` module (tests/test_layering.py checks
it).  The package is private because its interface is the command line, not
these Python names.

Modules:

- `app`: `build_parser` (a loop over the subcommands) and `main`;
- one module per subcommand, each with ``add_parser`` and its handler ``run``:
  `demo` (with `demo_steps`), `ident` (``id``), `listen`, `send`,
  `request`, `ping`, `bench`;
- shared: `options` (argument types, shared options, `options.Commands`),
  `errors` (exit codes, `errors.describe_error`), `output` (sizes, JSON,
  progress bars), `client` (identities and connecting to a PEER), `service`
  (what ``listen`` serves), `protocol` (the command's file, probe and bulk
  conventions).
"""

from __future__ import annotations

from .app import build_parser, main

__all__ = ["build_parser", "main"]
