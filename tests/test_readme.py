# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The README's testing example, verbatim, so the README stays true."""

import trio

import qp2p_trio
from qp2p_trio.testing import LinkConfig


async def test_over_a_lossy_link(memory_network, autojump_clock):
    memory_network.default_link = LinkConfig(loss=0.05, delay=0.02)
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as a,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as b,
    ):
        conn = await a.connect(b.local_address, node_id=b.node_id)
        await conn.send(b"x" * 100_000)
        assert (await b.receive()).payload == b"x" * 100_000
    assert memory_network.statistics().total.dropped_loss > 0


async def test_tour():
    with trio.fail_after(20):
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as a,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as b,
        ):
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await conn.send(b"hello")
            msg = await b.receive()
            assert msg.payload == b"hello"
            assert msg.sender == a.node_id

            async with trio.open_nursery() as n:

                async def answer():
                    req = await b.receive()
                    await req.reply(req.payload.upper())

                n.start_soon(answer)
                assert await conn.request(b"ping") == b"PING"


def test_the_fixture_example_runs_as_pasted(tmp_path):
    """README's fixture test, cut from README.rst, in a fresh project with its config."""
    import pathlib
    import subprocess
    import sys

    readme = pathlib.Path(__file__).resolve().parent.parent / "README.rst"
    if not readme.exists():  # pragma: no cover - run against an installed copy
        import pytest

        pytest.skip("no source tree here")
    text = readme.read_text(encoding="utf-8")
    start = text.index(".. code-block:: python", text.index("Then this test runs as pasted:"))
    block = []
    for line in text[start:].split("\n")[2:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntrio_mode = true\n")
    (tmp_path / "test_pasted.py").write_text("\n".join(block))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
