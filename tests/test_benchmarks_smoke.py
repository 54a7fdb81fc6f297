# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The benchmark suite runs end to end in its smoke mode (no performance thresholds).

``benchmarks/run.py`` is started as a script in a subprocess, from a scratch
directory, so it and its workers import whichever qp2p_trio this interpreter
imports (the installed package under nox).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
PAIRED = ("W1", "W2", "W3", "W4", "W5", "W6")


@pytest.mark.slow
def test_smoke_mode_reports_every_workload(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "ratio q/a" in proc.stdout
    result = json.loads(out.read_text())
    assert result["smoke"] is True
    workloads = result["workloads"]
    assert set(workloads) == {*PAIRED, "UDP"}
    for name in PAIRED:
        metrics = workloads[name]["metrics"]
        assert metrics, name
        for key, m in metrics.items():
            for impl in ("qp2p_trio", "aioquic"):
                values = m[impl]["values"]
                assert len(values) == result["pairs"], (name, key, impl)
                assert all(math.isfinite(v) for v in values), (name, key, impl, values)
                if m["must_be_positive"]:
                    assert all(v > 0 for v in values), (name, key, impl, values)
            assert math.isfinite(m["ratio"]), (name, key)
    swarm = result["swarm"]
    assert [r["endpoints"] for r in swarm["sizes"]] == [10, 20]
    for r in swarm["sizes"]:
        assert r["received"] == r["messages"] == r["endpoints"] * 4 * 2
        assert r["wall_s"] > 0
        assert r["peak_rss_mib"] > 0
    assert swarm["growth"]["endpoints_x"] == 2
    assert "swarm on the virtual network" in proc.stdout
    assert set(result["relay"]["ratio"]) == {"p50", "p99", "cpu_per_rt", "goodput", "cpu_per_mb"}
    udp = workloads["UDP"]["metrics"]
    assert udp["datagrams_per_s"]["udp"]["median"] > 0
    assert udp["mb_per_s"]["udp"]["median"] > 0


@pytest.mark.slow
def test_smoke_mode_against_the_iroh_baseline(tmp_path):
    """``--baseline iroh`` runs W1-W6 against iroh's Python bindings and gives ratios."""
    pytest.importorskip(
        "iroh", reason="the iroh baseline needs PyPI iroh (nox -s tests installs it)"
    )
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--baseline", "iroh", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "iroh median" in proc.stdout
    result = json.loads(out.read_text())
    assert result["baseline"] == "iroh"
    workloads = result["workloads"]
    assert set(workloads) == {"W1", "W2", "W3", "W4", "W5", "W6"}
    for name, w in workloads.items():
        for key, m in w["metrics"].items():
            for impl in ("qp2p_trio", "iroh"):
                values = m[impl]["values"]
                assert len(values) == 1, (name, key, impl)
                assert all(math.isfinite(v) for v in values), (name, key, impl, values)
                # W6's memory and idle CPU are differences of two snapshots.
                if name != "W6" or key.startswith("active"):
                    assert all(v > 0 for v in values), (name, key, impl, values)
            assert math.isfinite(m["ratio"]), (name, key)


def test_the_iroh_baseline_refuses_workloads_it_has_not(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--baseline", "iroh", "-w", "UDP"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "the iroh baseline has no ['UDP']" in proc.stderr


def test_relay_benchmark_smoke(tmp_path):
    """``benchmarks/relay.py``: relayed against direct, on loopback (no thresholds)."""
    script = RUN.parent / "relay.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--smoke", "--json", "-"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["direct"]["path"] == "direct"
    assert result["relayed"]["path"] == "relayed"
    for key in ("p50", "p99", "cpu_per_rt", "goodput", "cpu_per_mb"):
        assert math.isfinite(result["ratio"][key])
        assert result["ratio"][key] > 0
    assert "relayed vs direct" in proc.stderr


def test_w8_relayed_vs_direct_in_the_suite(tmp_path):
    """``run.py -w W8``: relayed against direct in the benchmark suite, ratios per run."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "-w", "W8", "--pairs", "2", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "W8 relayed vs direct" in proc.stdout
    assert "relayed/direct" in proc.stdout
    relay = json.loads(out.read_text())["relay"]
    assert relay["pairs"] == 2
    assert [r["relayed_first"] for r in relay["runs"]] == [False, True]  # alternated
    for run in relay["runs"]:
        assert (run["direct"]["path"], run["relayed"]["path"]) == ("direct", "relayed")
    for kind in ("direct", "relayed"):
        assert all(v > 0 and math.isfinite(v) for v in relay[kind].values()), relay[kind]
    for name, ratio in relay["ratio"].items():
        assert math.isfinite(ratio), name
        assert ratio > 0, name


def test_memory_benchmark_smoke(tmp_path):
    """``benchmarks/memory.py``: per added endpoint, both sides, with tracemalloc."""
    script = RUN.parent / "memory.py"
    for side in ("client", "server"):
        proc = subprocess.run(
            [sys.executable, str(script), side, "-n", "3", "--top", "3", "--trace"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert f"{side}: 3 added; per added: RSS" in proc.stdout
        assert "tracemalloc:" in proc.stdout
