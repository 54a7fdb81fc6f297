# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""``qp2p-trio demo`` (also plain ``python -m qp2p_trio``): a small network on loopback.

The demo is a list of steps (`STEPS`), each an async function taking the
shared `Demo` state (see `demo_steps`).  A step raises to fail the demo; the
command then exits non-zero with the step and the reason.

To add a step, write ``async def step_x(demo: Demo) -> None`` in
`demo_steps` and put a `DemoStep` for it in `STEPS` where it belongs in the
story.
"""

from __future__ import annotations

import argparse
import math
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Final, TextIO, final

import attrs
import trio

from qp2p_trio import Config, Message, __version__, open_endpoint

from .demo_nat import step_across_nats
from .demo_steps import (
    Demo,
    DemoFailed,
    DemoNode,
    step_connect,
    step_messages,
    step_nodes,
    step_pool,
    step_race,
    step_requests,
    step_simultaneous_open,
    step_statistics,
    step_transfer,
    step_wrong_identity,
)
from .errors import CliError, ExitCode, describe_error
from .options import size
from .output import MiB, Progress, format_duration, format_size

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .options import Commands

__all__ = [
    "DEMO_TRANSFER_SIZE",
    "STEPS",
    "DemoStep",
    "add_parser",
    "run",
    "run_demo",
    "set_as_default",
]

#: Size of the demo's large message.  At the library's current loopback
#: throughput (about 3 MB/s, both ends in one process) it takes ~15-20 s.
DEMO_TRANSFER_SIZE: Final = 50 * MiB
NODE_NAMES: Final = ("alice", "bob", "carol", "dave")
#: Seconds any step but the transfer may take before the demo gives up.
STEP_TIMEOUT: Final = 30.0
#: The transfer step's time limit is this plus the time at this rate (bytes/s).
TRANSFER_SLOWEST_RATE: Final = 256 * 1024


def add_parser(commands: Commands) -> None:
    """Add the ``demo`` subcommand."""
    parser = commands.add(
        "demo",
        "run the demo (the default command)",
        "Start four nodes on 127.0.0.1 and narrate: identities, verified connections, "
        "messages, request/response, a refused wrong identity, two nodes behind NATs meeting "
        "through a relay and moving direct (virtual network), a large transfer, statistics. "
        "Exits 0 when every step worked.",
        run,
    )
    parser.add_argument(
        "--transfer-size",
        type=size,
        default=DEMO_TRANSFER_SIZE,
        metavar="SIZE",
        help=f"size of the large message (default: {format_size(DEMO_TRANSFER_SIZE)})",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="redraw the progress bar in place (default: when stdout is a terminal)",
    )


def set_as_default(parser: argparse.ArgumentParser) -> None:
    """Make the demo, with its default options, what ``parser`` runs without a COMMAND."""
    parser.set_defaults(command=None, handler=run, transfer_size=DEMO_TRANSFER_SIZE, progress=None)


async def run(args: argparse.Namespace) -> int:
    """``qp2p-trio demo``."""
    await run_demo(transfer_size=args.transfer_size, progress=args.progress)
    return ExitCode.OK


@final
@attrs.frozen
class DemoStep:
    """One step of the demo: a title and the function that runs it."""

    title: str
    run: Callable[[Demo], Awaitable[None]]
    timeout: Callable[[Demo], float] = lambda _demo: STEP_TIMEOUT


def _transfer_timeout(demo: Demo) -> float:
    return STEP_TIMEOUT + demo.transfer_size / TRANSFER_SLOWEST_RATE


#: The story, in order.
STEPS: Final[list[DemoStep]] = [
    DemoStep("Four nodes on 127.0.0.1", step_nodes),
    DemoStep("Connections, both sides proving their node id", step_connect),
    DemoStep("Messages", step_messages),
    DemoStep("Request/response", step_requests),
    DemoStep("A wrong node id is refused", step_wrong_identity),
    DemoStep("The pool reuses a live connection", step_pool),
    DemoStep("Racing a dead, a black-holed and a live peer", step_race),
    DemoStep("Simultaneous open resolves to one connection", step_simultaneous_open),
    DemoStep("Across NATs: through a relay, a hole punched, then direct", step_across_nats),
    DemoStep("A large message", step_transfer, _transfer_timeout),
    DemoStep("Statistics of every endpoint", step_statistics),
]


async def run_demo(
    *, transfer_size: int = DEMO_TRANSFER_SIZE, out: TextIO | None = None, progress: bool | None
) -> None:
    """Run every step of `STEPS` on a fresh network of `NODE_NAMES` endpoints.

    Raises:
        CliError: a step failed; the message names it and says why.
    """
    stream = sys.stdout if out is None else out
    mode = Progress.choose(stream, progress, fallback="lines")
    demo = Demo(transfer_size=transfer_size, out=stream, progress_mode=mode)
    config = Config(
        max_message_size=max(transfer_size, 1 * MiB),
        receive_queue_bytes=max(64 * MiB, transfer_size),
    )
    started = trio.current_time()
    demo.say(
        f"qp2p_trio {__version__} demo: {len(NODE_NAMES)} nodes on 127.0.0.1, real UDP, "
        "QUIC with mutually authenticated TLS 1.3"
    )
    async with AsyncExitStack() as stack:
        for name in NODE_NAMES:
            endpoint = await stack.enter_async_context(
                open_endpoint(("127.0.0.1", 0), config=config)
            )
            inbox_send, inbox = trio.open_memory_channel[Message](math.inf)
            demo.nodes[name] = DemoNode(name, endpoint, inbox_send, inbox)
        nursery = await stack.enter_async_context(trio.open_nursery())
        for node in demo.nodes.values():
            nursery.start_soon(node.serve)
        for number, step in enumerate(STEPS, 1):
            demo.say()
            demo.say(f"[{number}/{len(STEPS)}] {step.title}")
            await _run_step(demo, number, step)
        nursery.cancel_scope.cancel()
        demo.say()
        demo.say("Closing every endpoint gracefully (peers see an application close, code 0)")
    demo.say(f"Done in {format_duration(trio.current_time() - started)}: every step worked.")


async def _run_step(demo: Demo, number: int, step: DemoStep) -> None:
    """Run one step within its time limit; its failure becomes a `CliError` naming it."""
    limit = step.timeout(demo)
    try:
        with trio.fail_after(limit):
            await step.run(demo)
    except trio.TooSlowError:
        raise CliError(
            ExitCode.INTERNAL,
            f"demo step {number} ({step.title}) took longer than {limit:.0f} s",
        ) from None
    except DemoFailed as exc:
        raise CliError(
            ExitCode.INTERNAL, f"demo step {number} ({step.title}) failed: {exc}"
        ) from None
    except Exception as exc:
        code, reason = describe_error(exc)
        raise CliError(code, f"demo step {number} ({step.title}) failed: {reason}") from None
