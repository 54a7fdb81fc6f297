# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""docs/tutorial/ca-network.rst, run: every ``$`` command of its console blocks, in order.

``listen`` runs in the background (on any free port instead of 4433); ``PEER``
stands for the address it prints.  A command whose shown output is an error
line must exit with 11 (refused), every other one with 0.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from test_cli import Listener, run

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial" / "ca-network.rst"


def console_steps(text: str) -> list[tuple[list[str], list[str]]]:
    """``(argv, shown output lines)`` of each ``$`` line in the console blocks."""
    steps: list[tuple[list[str], list[str]]] = []
    for block in re.findall(r"\.\. code-block:: console\n\n((?:    .*\n|\n)+)", text):
        for line in block.splitlines():
            line = line[4:]
            if line.startswith("$ "):
                steps.append((shlex.split(line[2:]), []))
            elif line and steps:
                steps[-1][1].append(line)
    return steps


def test_the_tutorial_runs(tmp_path: Path) -> None:
    if not TUTORIAL.exists():  # pragma: no cover - run against an installed copy
        pytest.skip("no source tree here")
    steps = console_steps(TUTORIAL.read_text(encoding="utf-8"))
    assert len(steps) >= 8
    node: Listener | None = None
    try:
        for argv, shown in steps:
            assert argv[0] == "qp2p-trio", argv
            args = [a.replace("127.0.0.1:4433", "127.0.0.1:0") for a in argv[1:]]
            if args[0] == "listen":
                node = Listener(tmp_path, *args[1:])
                continue
            if node is not None:
                args = [node.peer if a == "PEER" else a for a in args]
            result = run(tmp_path, *args)
            refused = bool(shown) and shown[0].startswith("qp2p-trio: error:")
            assert result.returncode == (11 if refused else 0), (argv, result.stderr)
            if refused:
                assert "was refused" in result.stderr
            elif shown and args[0] != "id":
                assert result.stdout.splitlines() == shown, argv
        assert node is not None
    finally:
        if node is not None:
            node.close()
