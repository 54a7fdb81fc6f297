# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The sans-IO modules import neither Trio nor a clock (house rule, checked)."""

import ast
from pathlib import Path

import pytest

import qp2p_trio

PACKAGE = Path(qp2p_trio.__file__).parent
SANS_IO = [
    "_wire",
    "_quic",
    "_certs",
    "_identity",
    "_config",
    "_errors",
    "_retry",
    "_admission",
    "_budget",
]
FORBIDDEN = {"trio", "time", "asyncio", "socket", "selectors", "outcome"}


def imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
    return names


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_module_imports(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    imported = imported_modules(tree)
    assert imported, "the parser found no imports: the check would be vacuous"
    for name in imported:
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{module} imports {name}"
        if name.startswith("."):
            # Only other sans-IO modules of the package.
            assert name.lstrip(".") in SANS_IO, f"{module} imports {name}"


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_module_reads_no_clock(module: str) -> None:
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    for call in ("datetime.now(", "utcnow(", "monotonic(", "perf_counter(", "current_time("):
        assert call not in source, f"{module} reads a clock with {call}"


#: Who may not import whom (type-checking imports included): lower layers
#: never reach up.  The connection knows its driver only as the
#: `ConnectionHost` interface it declares itself.
FORBIDDEN_UPWARD = {
    "_session": {"_connection", "_driver", "_dial", "_endpoint", "_message", "_streams"},
    "_connection": {"_driver", "_dial", "_endpoint"},
    "_message": {"_driver", "_dial", "_endpoint"},
    "_streams": {"_driver", "_dial", "_endpoint"},
    "_pool": {"_driver", "_dial", "_endpoint"},
    "_driver": {"_dial", "_endpoint"},
    "_dial": {"_endpoint"},
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN_UPWARD))
def test_no_upward_imports(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    imported = {name.lstrip(".") for name in imported_modules(tree) if name.startswith(".")}
    assert imported, "the parser found no relative imports: the check would be vacuous"
    assert not imported & FORBIDDEN_UPWARD[module], f"{module} imports upward"
