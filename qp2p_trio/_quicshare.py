# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""One frame handler table for every connection (``_quic`` private access 13; sans-IO).

aioquic's ``QuicConnection`` builds, per connection, a dict of its 33 frame
handlers, each a bound method and a frozenset of the epochs it may arrive in,
and only ever reads it as ``table[frame_type]``.  `share_frame_table` swaps
it for a `FrameTable` that looks the frame type up in one table shared by
every connection and binds the handler on each look-up: about 4.6 KiB and 66
objects for the cyclic collector less per connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from collections.abc import Callable

    from aioquic.quic.connection import QuicConnection

__all__ = ["FrameTable", "share_frame_table"]

#: The frame handler table every connection of ``_quic._QuicConnection`` shares
#: (access 13): frame type -> (handler function, frozenset of epochs).
_FRAME_FUNCS: dict[int, tuple[Callable[..., None], frozenset[Any]]] = {}


@final
class FrameTable:
    """A connection's frame handler table: the shared one, bound on each look-up.

    aioquic builds a dict of 33 bound methods and tuples per connection and
    only ever reads it with ``table[frame_type]`` (a missing type raises
    KeyError, which aioquic turns into FRAME_ENCODING_ERROR).
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: QuicConnection) -> None:
        self._conn = conn

    def __getitem__(self, frame_type: int) -> tuple[Callable[..., None], frozenset[Any]]:
        func, epochs = _FRAME_FUNCS[frame_type]
        return func.__get__(self._conn), epochs

    def __len__(self) -> int:
        return len(_FRAME_FUNCS)


def share_frame_table(quic: QuicConnection) -> None:
    """Swap a new connection's own frame handler table for the shared one."""
    handlers = getattr(quic, "_QuicConnection__frame_handlers", None)
    if not isinstance(handlers, dict):
        return
    funcs = {}
    for frame_type, (handler, epochs) in handlers.items():
        if getattr(handler, "__self__", None) is not quic:  # pragma: no cover - aioquic changed
            return
        funcs[frame_type] = (handler.__func__, epochs)
    if not _FRAME_FUNCS:
        _FRAME_FUNCS.update(funcs)
    elif funcs != _FRAME_FUNCS:  # pragma: no cover - handlers differ per connection: keep its own
        return
    quic._QuicConnection__frame_handlers = FrameTable(quic)  # type: ignore[attr-defined]
