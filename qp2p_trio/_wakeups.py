# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Waiters parked by stream: wake only the tasks whose stream changed (Trio edge).

Theory of operation
-------------------
A connection's waiters used to share one parking lot that every input,
timer or transmit emptied: with 64 requests in flight, each ACK woke 64
tasks that re-checked their stream and parked again.  `StreamWaiters`
parks a task under its stream id instead (a message waiting for its
receipt, a raw read); the session lists the streams an input touched
(`_session.Session.touched`) and the connection wakes just those (`wake`),
or everyone once the connection closed (`wake_all`).

Conditions no stream event reports (acknowledgements: send-buffer room, a
reply acknowledged; stream slots; accept queues) stay on the connection's
own lot, woken after every change as before, and so do requests waiting
for replies (see `StreamIO.request`).

Cancellation: a cancelled waiter removes itself (its abort callback); a
woken one was removed by the waker, so no task is ever rescheduled twice.
"""

from __future__ import annotations

import trio

__all__ = ["StreamWaiters"]


class StreamWaiters:
    """Tasks parked by stream id, woken per stream or all at once."""

    __slots__ = ("_parked",)

    def __init__(self) -> None:
        self._parked: dict[int, list[trio.lowlevel.Task]] = {}

    def __len__(self) -> int:
        """How many tasks are parked (on every stream)."""
        return sum(len(tasks) for tasks in self._parked.values())

    async def wait(self, sid: int) -> None:
        """Park the calling task until `wake` (``sid``) or `wake_all`; a checkpoint."""
        task = trio.lowlevel.current_task()
        parked = self._parked
        tasks = parked.get(sid)
        if tasks is None:
            parked[sid] = tasks = []
        tasks.append(task)

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            waiting = parked.get(sid)
            if waiting is not None and task in waiting:
                waiting.remove(task)
                if not waiting:
                    del parked[sid]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def wake(self, sid: int) -> None:
        """Wake every task parked on stream ``sid`` (none: nothing happens)."""
        tasks = self._parked.pop(sid, None)
        if tasks is not None:
            for task in tasks:
                trio.lowlevel.reschedule(task)

    def wake_all(self) -> None:
        """Wake every parked task (the connection closed)."""
        parked, self._parked = self._parked, {}
        for tasks in parked.values():
            for task in tasks:
                trio.lowlevel.reschedule(task)
