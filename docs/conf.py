# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Sphinx configuration of the qp2p_trio documentation.

Build with ``python3 -m nox -s docs`` (warnings are errors), or directly:
``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import pkgutil
import re
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
    """Let autodoc find the ``#:`` comments of public classes' attributes and data.

    ``qp2p_trio/__init__.py`` renames every public object's ``__module__`` to
    ``qp2p_trio``, so that reprs, tracebacks and these docs show the public
    name.  Autodoc reads attribute doc comments from the source of
    ``__module__``, which is then ``__init__.py``; so the comments found in
    the defining modules are added to the analysis of the public package
    (``qp2p_trio`` or ``qp2p_trio.testing``), module-level ones (such as
    ``SCHEDULED``'s) included.
    """
    from sphinx.errors import PycodeError
    from sphinx.pycode import ModuleAnalyzer

    for package in (qp2p_trio, qp2p_trio.testing):
        public = ModuleAnalyzer.for_module(package.__name__)
        public.analyze()
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg:
                continue
            try:
                source = ModuleAnalyzer.for_module(f"{package.__name__}.{info.name}")
            except PycodeError:
                # A module that needs an optional dependency the docs build
                # lacks (testing's pytest plugin needs pytest): it defines no
                # public names.
                continue
            source.analyze()
            for (scope, attribute), comment in source.attr_docs.items():
                name = scope.split(".")[0] if scope else attribute
                if name in package.__all__:
                    public.attr_docs.setdefault((scope, attribute), comment)
                    key = f"{scope}.{attribute}" if scope else attribute
                    public.tagorder.setdefault(key, len(public.tagorder))


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


_NO_CONSTRUCTOR_PHRASES = ("no public constructor", "do not instantiate it yourself")
#: What the library hands out (snapshots, events, handles): nobody constructs these.
_HANDED_OUT = frozenset(
    {
        "ConnectionStatistics",
        "Connected",
        "Disconnected",
        "EndpointMetrics",
        "EndpointPair",
        "EndpointStatistics",
        "ExternalAddress",
        "HandshakeFailed",
        "NetworkStatistics",
        "PeerEvents",
        "TraceRecord",
        "TrafficCounts",
    }
)


def _has_public_constructor(cls: type) -> bool:
    """False for classes users never construct (they say so, or refuse to be called)."""
    from qp2p_trio._util import NoPublicConstructor

    if isinstance(cls, NoPublicConstructor) or cls.__name__ in _HANDED_OUT:
        return False
    doc = " ".join((cls.__doc__ or "").split()).lower()
    return not any(phrase in doc for phrase in _NO_CONSTRUCTOR_PHRASES)


def _skip_private_constructors(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """Leave out ``__init__`` of classes without a public constructor, and enums' ``__new__``."""
    if name == "__new__":
        return True
    if name != "__init__":
        return None
    owner = getattr(obj, "__qualname__", "").rpartition(".")[0]
    if owner.startswith("_"):
        return True  # a private base class's (inherited): not how users construct it
    for module in (qp2p_trio, qp2p_trio.testing):
        cls = getattr(module, owner, None)
        if isinstance(cls, type) and not _has_public_constructor(cls):
            return True
    return None


def _default_text(default: Any) -> str:
    import enum

    import attrs

    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        factory = default.factory
        return f"{getattr(factory, '__name__', repr(factory))}()"
    if isinstance(default, enum.Enum):
        return f"{type(default).__name__}.{default.name}"
    if type(default) is int and default >= 1024**2 and default % 1024**2 == 0:
        return f"{default // 1024**2} * 2**20"
    if type(default) is int and default >= 1024 and default % 1024 == 0:
        return f"{default // 1024} * 2**10"
    return repr(default)


def _drop_attrs_boilerplate(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """attrs documents its generated methods with one line that says nothing."""
    if len(lines) <= 2 and lines and lines[0].startswith("Method generated by attrs for class"):
        lines.clear()


def _attrs_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Render an attrs class's ``__init__`` with its real defaults.

    attrs generates ``__init__`` whose source reads
    ``attr_dict['idle_timeout'].default``; `autodoc_preserve_defaults` would
    show that text.  The fields say what the defaults are.
    """
    import attrs

    if not name.endswith(".__init__"):
        return None
    owner = name.rpartition(".")[0].rpartition(".")[2]
    cls = getattr(qp2p_trio, owner, None) or getattr(qp2p_trio.testing, owner, None)
    if not (isinstance(cls, type) and attrs.has(cls)):
        return None
    params: list[str] = []
    keyword_only = False
    for field in attrs.fields(cls):
        if not field.init:
            continue
        if field.kw_only and not keyword_only:
            params.append("*")
            keyword_only = True
        text = field.alias or field.name
        if field.default is not attrs.NOTHING:
            text += f"={_default_text(field.default)}"
        params.append(text)
    return f"({', '.join(params)})", return_annotation


_PAIRED_ENTRY = re.compile(r"^(\s+)(\w+(?: / \w+)+):(.*)$")


def _split_paired_entries(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Turn ``a / b: text`` entries (Attributes, Raises) into one entry per name.

    Napoleon would read ``a / b`` as the name ``b`` of type ``a /``.  Runs
    before napoleon (priority 400).
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _PAIRED_ENTRY.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent, names, first = match.groups()
        body = [first]
        i += 1
        while (
            i < len(lines)
            and lines[i].strip()
            and len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i])
            i += 1
        for entry in names.split(" / "):
            out.append(f"{indent}{entry}:{body[0]}")
            out.extend(body[1:])
    lines[:] = out


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-docstring", _split_paired_entries, priority=400)
    app.connect("source-read", _exit_codes_table)
    app.connect("autodoc-skip-member", _skip_private_constructors)
    app.connect("autodoc-process-signature", _attrs_signature)
    app.connect("autodoc-process-docstring", _drop_attrs_boilerplate)
    app.connect("env-check-consistency", _check_every_public_name_documented)
