# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Small helpers shared by the Trio modules (our own versions of trio's patterns)."""

from __future__ import annotations

from abc import ABCMeta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import trio

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ConflictDetector", "NoPublicConstructor", "reraise", "unwrap_group"]

T = TypeVar("T")


class NoPublicConstructor(ABCMeta):
    """Metaclass: ``Cls()`` raises TypeError; internal code calls ``Cls._create()``.

    It derives from `abc.ABCMeta` so that classes implementing Trio's stream
    ABCs can use it too.
    """

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} has no public constructor")

    def _create(cls: type[T], *args: Any, **kwargs: Any) -> T:
        return super().__call__(*args, **kwargs)  # type: ignore[misc,no-any-return]


class ConflictDetector:
    """Raise `trio.BusyResourceError` when two tasks use one resource at once."""

    __slots__ = ("_held", "_msg")

    def __init__(self, msg: str) -> None:
        self._msg = msg
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._msg)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._held = False


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in exc.exceptions:
            out.extend(_leaves(sub))
        return out
    return [exc]


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` keeping its own ``__context__``/``__cause__``."""
    context, cause, suppress = exc.__context__, exc.__cause__, exc.__suppress_context__
    try:
        raise exc
    finally:
        exc.__context__, exc.__cause__, exc.__suppress_context__ = context, cause, suppress
        del exc


def unwrap_group(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the one real error of a group from our own nursery.

    ``KeyboardInterrupt``/``SystemExit`` win; `trio.Cancelled` is dropped when
    something else is there.  Several real errors: the group is re-raised
    with a note (never pick one; that hides bugs).
    """
    leaves = _leaves(group)
    for exc in leaves:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            reraise(exc)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        reraise(real[0])
    if not real and leaves:
        reraise(leaves[0])
    group.add_note("qp2p_trio: several errors happened at once; all are in this group")
    raise group
