# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Summarise py-spy ``--format raw`` profiles: the top functions by own and by total samples.

Usage: ``python benchmarks/profile_top.py [-n 12] FILE...`` (several files are
added together).  Each line of a raw profile is ``frame;frame;...;leaf COUNT``
with the root first; ``run.py --profile DIR`` writes them with ``--function``,
so a frame is ``function (file:first line)``.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys


def _short(frame: str) -> str:
    """``f (/long/path/pkg/mod.py:12)`` -> ``f (pkg/mod.py:12)``."""
    name, sep, where = frame.partition(" (")
    if not sep:
        return frame
    path = where.rstrip(")")
    parts = path.split(os.sep)
    for anchor in ("site-packages", "lib", "work"):
        if anchor in parts:
            parts = parts[len(parts) - 1 - parts[::-1].index(anchor) + 1 :]
            break
    return f"{name} ({'/'.join(parts[-3:])})"


# Frames that sit under (nearly) every sample: the worker's entry points and
# the event loops' run functions.  Left out of the "total" list.
_ENTRY = (
    "<module> ",
    "main (worker.py",
    "main (benchmarks/worker.py",
    "run (",
    "main (",
    "unrolled_run (",
    "Runner.run (",
    "BaseEventLoop.run_until_complete (",
    "BaseEventLoop.run_forever (",
    "BaseEventLoop._run_once (",
    "_guard (",
)
_POLL = ("EpollIOManager.get_events (", "EpollSelector.select (")


def load(paths: list[str]) -> tuple[collections.Counter[str], collections.Counter[str], int, int]:
    """Own and inclusive samples per function, samples counted, samples spent importing."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = imports = 0
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                if "<frozen importlib" in stack:
                    imports += n  # start-up, not the workload
                    continue
                frames = [_short(fr) for fr in stack.split(";")]
                samples += n
                own[frames[-1]] += n
                for fr in set(frames):
                    total[fr] += n
    return own, total, samples, imports


def report(paths: list[str], top: int = 12) -> str:
    own, total, samples, imports = load(paths)
    if not samples:
        return "  (no samples)\n"
    poll = sum(n for fr, n in own.items() if fr.startswith(_POLL))
    out = [
        f"  {samples} samples ({', '.join(os.path.basename(p) for p in paths)}); "
        f"{imports} more while importing, left out; {100 * poll / samples:.1f}% in epoll"
    ]
    out.append("  own%   function (top by own samples)")
    out.extend(f"  {100 * n / samples:5.1f}  {fr}" for fr, n in own.most_common(top))
    out.append("  total% function (top by inclusive samples, entry points left out)")
    ranked = [(fr, n) for fr, n in total.most_common() if not fr.startswith(_ENTRY)]
    out.extend(f"  {100 * n / samples:5.1f}  {fr}" for fr, n in ranked[:top])
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=12, help="functions to list (default 12)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    sys.stdout.write(report(args.files, args.n))


if __name__ == "__main__":
    main()
