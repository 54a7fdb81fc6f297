# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The sans-IO modules import neither Trio nor a clock (house rule, checked).

Modules are named by their path in the package without ``.py``, so that those
of a subpackage (``testing/_impairment``) can be listed too.
"""

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
    "testing/_types",
    "testing/_impairment",
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


def resolve_relative(module: str, name: str) -> str:
    """The package path (``testing/_types``) of relative import *name* made in *module*."""
    level = len(name) - len(name.lstrip("."))
    package = module.split("/")[:-1]
    assert level - 1 <= len(package), f"{module}: {name} leaves the package"
    base = package[: len(package) - (level - 1)]
    rest = [part for part in name.lstrip(".").split(".") if part]
    return "/".join(base + rest)


def test_resolve_relative() -> None:
    assert resolve_relative("_wire", "._errors") == "_errors"
    assert resolve_relative("testing/_impairment", "._types") == "testing/_types"
    assert resolve_relative("testing/_impairment", ".._errors") == "_errors"


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
            assert resolve_relative(module, name) in SANS_IO, f"{module} imports {name}"


CLOCKS = ("datetime.now", "utcnow", "monotonic", "monotonic_ns", "perf_counter", "current_time")


def clock_calls(tree: ast.AST) -> list[str]:
    """The calls in *tree* that read a clock (docstrings may mention them)."""
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            if any(func == clock or func.endswith(f".{clock}") for clock in CLOCKS):
                calls.append(func)
    return calls


def test_clock_calls_are_found() -> None:
    source = "import time\nx = time.monotonic() + trio.current_time()\ny = dt.datetime.now(UTC)\n"
    found = sorted(clock_calls(ast.parse(source)))
    assert found == ["dt.datetime.now", "time.monotonic", "trio.current_time"]
    assert clock_calls(ast.parse('"""Use trio.current_time()."""\n')) == []


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_module_reads_no_clock(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    assert not clock_calls(tree), f"{module} reads a clock"
