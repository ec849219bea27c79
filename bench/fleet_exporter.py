"""`etcd-inspector` for the fleet benchmark, with two things the product does not need.

- On SIGUSR1 it writes its asyncio task count (and the count per task name, digits and URLs
  folded, so "per-cluster" tasks show as one line) as JSON to $FLEET_TASKS_FILE. The handler
  runs in the event loop's thread between two bytecodes: it reads the loop's task set and does
  no I/O but one small file write, once per measurement window.
- With $FLEET_TRACEMALLOC set (investigation only: it slows the exporter and adds to its RSS),
  tracemalloc runs from the start and the SIGUSR1 answer adds the 15 largest holders by file.
- With $FLEET_PROFILE set to a path, the whole run is under cProfile, written there at exit
  (SIGTERM stops the exporter cleanly, so `main()` returns and the profile is saved).

Usage (bench_fleet.py starts it): python bench/fleet_exporter.py run --config.file FILE
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import re
import signal
import sys
import tracemalloc
from collections import Counter
from types import FrameType

from etcd_inspector.cli import main

_FOLD = re.compile(r"https?://\S+|\d+")


def _dump_tasks(signum: int, frame: FrameType | None) -> None:
    path = os.environ.get("FLEET_TASKS_FILE")
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # before the loop started, or after it stopped
        return
    tasks = asyncio.all_tasks(loop)
    names = Counter(_FOLD.sub("#", t.get_name()) for t in tasks)
    found: dict[str, object] = {"tasks": len(tasks), "by_name": dict(names.most_common())}
    if tracemalloc.is_tracing():
        stats = tracemalloc.take_snapshot().statistics("filename")
        found["memory_by_file"] = {
            str(s.traceback[0].filename).rsplit("site-packages/", 1)[-1]: s.size for s in stats[:15]
        }
    if path:
        with open(path, "w") as f:
            json.dump(found, f)


def run() -> int:
    signal.signal(signal.SIGUSR1, _dump_tasks)
    if os.environ.get("FLEET_TRACEMALLOC"):
        tracemalloc.start()
    profile_path = os.environ.get("FLEET_PROFILE")
    if not profile_path:
        return main(sys.argv[1:])
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return main(sys.argv[1:])
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)


if __name__ == "__main__":
    sys.exit(run())
