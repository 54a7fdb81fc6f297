# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Packaging: the aioquic versions the adapter accepts, and the extras users install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from qp2p_trio._aioquic_pin import AIOQUIC_OVERRIDE, AIOQUIC_SUPPORTED, check_aioquic_version

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("version", ["1.7.2", "1.7.3", "1.7.10", "1.7.5.dev1"])
def test_supported_aioquic_versions_import(version: str) -> None:
    check_aioquic_version(version)


@pytest.mark.parametrize("version", ["1.7.1", "1.6.0", "1.8.0", "1.8.0rc1", "2.0.0"])
def test_other_aioquic_versions_fail_clearly(version: str) -> None:
    with pytest.raises(ImportError) as info:
        check_aioquic_version(version)
    text = str(info.value)
    assert f"aioquic {version} is installed" in text
    assert "pip install 'aioquic>=1.7.2,<1.8'" in text
    assert AIOQUIC_OVERRIDE in text
    check_aioquic_version(version, allow_any=True)


def test_the_pin_matches_the_check() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    low, high = (".".join(map(str, v)) for v in AIOQUIC_SUPPORTED)
    assert f"aioquic>={low},<{high}" in project["dependencies"]


def test_the_check_runs_at_import() -> None:
    code = "import aioquic; aioquic.__version__ = '1.9.0'; import qp2p_trio"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "ImportError: qp2p_trio needs aioquic>=1.7.2,<1.8" in result.stderr
    assert "aioquic 1.9.0 is installed" in result.stderr


def test_extras_for_users_and_for_us() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # What an application's tests need for the fixtures, and nothing of ours.
    for name in ("pytest", "testing"):
        assert sorted(d.split(">")[0] for d in extras[name]) == ["pytest", "pytest-trio"]
    assert any(d.startswith("hypothesis") for d in extras["test"])
