# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Development tasks for qp2p_trio.

Run ``python3 -m nox -l`` to list the sessions and ``python3 -m nox -s NAME``
to run one.  Every session installs what it needs into its own virtualenv
(the default ``virtualenv`` backend; uv is not required) and runs on the
interpreter that runs nox.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
SOURCE_PACKAGE = ROOT / "qp2p_trio"

nox.options.sessions = ["tests", "lint", "typecheck"]

DEFAULT_PYTEST_ARGS = ("-ra", "--durations=10")

# Run in a scratch directory, so "" on sys.path cannot shadow the installed
# package with the source tree: fails unless qp2p_trio was imported from the
# session's site-packages.
_CHECK_INSTALLED_PACKAGE = """\
import pathlib, sys, sysconfig
import qp2p_trio
if qp2p_trio.__file__ is None:
    sys.exit(f"error: qp2p_trio is a namespace package here (no __init__.py?): {list(qp2p_trio.__path__)}")
pkg = pathlib.Path(qp2p_trio.__file__).resolve().parent
src = pathlib.Path(sys.argv[1]).resolve()
site = pathlib.Path(sysconfig.get_path("purelib")).resolve()
print(f"qp2p_trio imported from {pkg}")
if pkg == src or src in pkg.parents:
    sys.exit(f"error: qp2p_trio was imported from the source tree {src}, not the installed copy")
if site not in pkg.parents:
    sys.exit(f"error: qp2p_trio was imported from {pkg}, outside this session's site-packages {site}")
"""


def _check_installed_package(session: nox.Session) -> None:
    """Fail the session unless ``import qp2p_trio`` finds the installed (non-source) copy."""
    with session.chdir(session.create_tmp()):
        session.run("python", "-c", _CHECK_INSTALLED_PACKAGE, str(SOURCE_PACKAGE))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against a real (non-editable) install of the package.

    Extra arguments go to pytest, replacing the defaults:
    ``python3 -m nox -s tests -- -k pool -x``.
    """
    session.install(".[test]")
    # qh3, an independent QUIC stack for tests/test_interop.py: best effort
    # (those tests skip without it), so a platform without its wheels still
    # runs the suite.
    session.run("python", "-m", "pip", "install", "--quiet", "qh3>=2.1", success_codes=[0, 1])
    # iroh's Python bindings, the benchmarks' second baseline, smoke-tested in
    # tests/test_benchmarks_smoke.py: best effort too (that test skips).
    session.run("python", "-m", "pip", "install", "--quiet", "iroh>=1.2", success_codes=[0, 1])
    _check_installed_package(session)
    # The ``pytest`` console script (unlike ``python -m pytest``) does not put
    # the working directory on sys.path, and pyproject.toml selects
    # --import-mode=importlib, so the tests import the installed package.
    # pytest's exit status is propagated as is: exit code 5 (no tests
    # collected) fails the session.
    session.run("pytest", *(session.posargs or DEFAULT_PYTEST_ARGS))


@nox.session
def aioquic_latest(session: nox.Session) -> None:
    """Run the aioquic adapter's tests against the newest aioquic release.

    The package pins aioquic to the releases its adapter is tested with
    (``qp2p_trio._aioquic_pin.AIOQUIC_SUPPORTED``, checked at import); this session
    shows what a newer one would break, so that moving the pin is a decision.
    Extra arguments go to pytest.
    """
    session.install(".[test]")
    session.install("--upgrade", "aioquic")
    session.env["QP2P_TRIO_ANY_AIOQUIC"] = "1"
    session.run("python", "-c", "import aioquic; print('aioquic', aioquic.__version__)")
    tests = ("tests/test_quic_adapter.py", "tests/test_session.py", "tests/test_streamed.py")
    session.run("pytest", *(session.posargs or tests))


@nox.session
def lint(session: nox.Session) -> None:
    """Check style, formatting and REUSE (licensing) compliance."""
    session.install("ruff", "reuse")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("reuse", "lint")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package (files from pyproject.toml) and this noxfile with mypy."""
    # nox itself is installed so that ``mypy noxfile.py`` can see its types.
    session.install(".[test]", "mypy", "nox")
    session.run("mypy")
    session.run("mypy", "noxfile.py")


@nox.session
def demo(session: nox.Session) -> None:
    """Run the demo (``python -m qp2p_trio``) from an installed copy, outside the source tree."""
    session.install(".")
    with session.chdir(session.create_tmp()):
        session.run("python", "-m", "qp2p_trio", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmark suite against an installed copy: ``python3 -m nox -s bench -- --smoke``.

    Arguments go to ``benchmarks/run.py`` (``-- --help`` lists them).  It runs
    as a script, so it imports the installed package, not the source tree.
    """
    session.install(".", "iroh>=1.2")  # iroh: the second baseline (--baseline iroh)
    session.run("python", str(ROOT / "benchmarks" / "run.py"), *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML documentation (docs/_build/html) with warnings as errors.

    Sphinx imports the installed package (not the source tree) for the API
    reference.  Extra arguments go to sphinx-build.
    """
    session.install(".[docs]")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        str(ROOT / "docs"),
        str(ROOT / "docs" / "_build" / "html"),
        *session.posargs,
    )
