# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Sphinx configuration of the qp2p_trio documentation.

Build with ``python3 -m nox -s docs`` (warnings are errors), or directly:
``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import pkgutil
from typing import TYPE_CHECKING, Any

import qp2p_trio
import qp2p_trio.testing

if TYPE_CHECKING:
    from sphinx.application import Sphinx

project = "qp2p_trio"
author = "The qp2p_trio developers"
copyright = "2026, The qp2p_trio developers"  # noqa: A001 - Sphinx's name
release = qp2p_trio.__version__
version = ".".join(release.split(".")[:2])

# No viewcode: highlighted copies of the sources would carry broken-up SPDX
# lines that `reuse lint` flags if it meets a local build.
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

# No intersphinx: the build must work without network access.
default_role = "py:obj"
primary_domain = "py"
highlight_language = "python3"
exclude_patterns = ["_build"]
templates_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_class_signature = "separated"
autodoc_default_options = {"members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"qp2p_trio {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False


def _merge_attribute_docs() -> None:
    """Let autodoc find the ``#:`` comments of public classes' attributes.

    ``qp2p_trio/__init__.py`` renames every public object's ``__module__`` to
    ``qp2p_trio``, so that reprs, tracebacks and these docs show the public
    name.  Autodoc reads attribute doc comments from the source of
    ``__module__``, which is then ``__init__.py``; so the comments found in
    the defining modules are added to the analysis of ``qp2p_trio``.
    """
    from sphinx.pycode import ModuleAnalyzer

    public = ModuleAnalyzer.for_module("qp2p_trio")
    public.analyze()
    for info in pkgutil.iter_modules(qp2p_trio.__path__):
        if info.ispkg:
            continue
        source = ModuleAnalyzer.for_module(f"qp2p_trio.{info.name}")
        source.analyze()
        for (scope, attribute), comment in source.attr_docs.items():
            if scope and scope.split(".")[0] in qp2p_trio.__all__:
                public.attr_docs.setdefault((scope, attribute), comment)
                public.tagorder.setdefault(f"{scope}.{attribute}", len(public.tagorder))


_merge_attribute_docs()


def _check_every_public_name_documented(app: Sphinx, env: Any) -> None:
    """Warn (an error under -W) about public names the API reference leaves out."""
    from sphinx.util import logging

    logger = logging.getLogger("qp2p_trio.docs")
    documented = set(env.get_domain("py").objects)
    for module in (qp2p_trio, qp2p_trio.testing):
        for name in module.__all__:
            if name == "__version__":
                continue
            full = f"{module.__name__}.{name}"
            if full not in documented:
                logger.warning(
                    "%s is public (in %s.__all__) but docs/reference.rst does not document it",
                    full,
                    module.__name__,
                )


def _exit_codes_table(app: Sphinx, docname: str, source: list[str]) -> None:
    """Fill the exit code table of cli.rst from the code, so the two never differ."""
    if docname != "cli":
        return
    from qp2p_trio._cli.errors import EXIT_CODE_HELP

    width = max(len(text) for text in EXIT_CODE_HELP.values())
    rule = f"====  {'=' * width}"
    rows = [rule, f"{'code':<4}  meaning", rule]
    rows += [f"{int(code):<4}  {text}" for code, text in EXIT_CODE_HELP.items()]
    rows.append(rule)
    source[0] = source[0].replace("EXIT_CODES_TABLE", "\n".join(rows))


def setup(app: Sphinx) -> None:
    app.connect("source-read", _exit_codes_table)
    app.connect("env-check-consistency", _check_every_public_name_documented)
