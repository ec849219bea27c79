"""`etcd-inspector inspect`: run the probes once against every configured cluster and report.

Meant for checks before and after a change (upgrade, restart, member swap). Per cluster:
`status` first (it resolves member names and decides whether the cluster answers at all), then
`consistency`, `quota` and `bigvalue` once each, concurrently, each with its configured timeout.
`hotkeys` runs only with --watch: once to open the watch, then again after the window to take
the snapshot. The command ends as soon as the probes end. Probes run here regardless of their
`enabled` setting (that setting is for the long-running exporter); a probe this build does not
ship is reported as "not available".

Like the exporter, inspect only ever reads: every call goes through etcd/client.py, which has
no write RPC at all.

Output: the text report or one JSON document on stdout (schema: see report.py); progress and
errors on stderr. While the bigvalue scan runs and stderr is a terminal, one line on stderr is
rewritten in place with its progress. Exit codes (report.exit_code): 0 all clear, 1 findings,
2 could not inspect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from etcd_inspector.cluster.runtime import ClusterRuntime, build_runtime
from etcd_inspector.cluster.scheduler import run_probe_once
from etcd_inspector.config import Config, parse_duration
from etcd_inspector.probes import REGISTRY
from etcd_inspector.report.legacy import (
    EXIT_ERROR,
    ClusterInspection,
    exit_code,
    render_text,
    to_json,
)

ONE_SHOT_PROBES = ("status", "consistency", "quota", "bigvalue")
WATCH_PROBE = "hotkeys"
SCAN_PROBE = "bigvalue"
PROGRESS_INTERVAL_SECONDS = 0.2


# --------------------------------------------------------------------------- progress line


def progress_fields(progress: Any, now: float) -> tuple[int, int | None, float | None]:
    """(keys scanned, revision, keys/s) from the bigvalue probe's ScanProgress. Read by name, not
    imported, so the line degrades to what is there if the probe's progress type changes."""
    keys = getattr(progress, "keys_done", 0)
    revision = getattr(progress, "revision", None)
    started_at = getattr(progress, "started_at", None)
    rate = None
    if isinstance(started_at, int | float) and now > started_at:
        rate = keys / (now - started_at)
    return (
        keys if isinstance(keys, int) else 0,
        revision if isinstance(revision, int) else None,
        rate,
    )


def progress_text(keys: int, revision: int | None, rate: float | None) -> str:
    text = f"scanning: {keys} keys"
    if revision:
        text += f" at revision {revision}"
    if rate is not None:
        text += f" ({rate:.0f} keys/s)"
    return text


class ProgressLine:
    """One status line on a terminal, rewritten in place; cleared before the report prints."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def show(self, text: str) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r" + text[:width] + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


async def show_progress(runtimes: Sequence[ClusterRuntime], line: ProgressLine) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)
        parts = []
        for rt in runtimes:
            progress = rt.state.progress.get(SCAN_PROBE)
            if progress is None:
                continue
            text = progress_text(*progress_fields(progress, time.time()))
            parts.append(f"{rt.name}: {text}" if len(runtimes) > 1 else text)
        if parts:
            line.show("; ".join(parts))
        else:
            line.clear()


# --------------------------------------------------------------------------- running


def wanted_probes(watch_seconds: float | None) -> tuple[str, ...]:
    return ONE_SHOT_PROBES + ((WATCH_PROBE,) if watch_seconds is not None else ())


async def _watch_window(rt: ClusterRuntime, seconds: float) -> None:
    """hotkeys: the first run opens the watch, the run after the window reads what it saw."""
    scheduled = rt.probes[WATCH_PROBE]
    ctx = rt.scheduler.context_for(WATCH_PROBE)
    await run_probe_once(scheduled, ctx, rt.state)
    await asyncio.sleep(seconds)
    await run_probe_once(scheduled, ctx, rt.state)


async def inspect_cluster(rt: ClusterRuntime, watch_seconds: float | None) -> None:
    """Run the probes once; outcomes land in rt.state (as they do for the exporter)."""
    status = await run_probe_once(rt.probes["status"], rt.scheduler.context_for("status"), rt.state)
    if not status.success:
        return  # nobody answered: the other probes would only time out one by one
    runs = [
        run_probe_once(rt.probes[name], rt.scheduler.context_for(name), rt.state)
        for name in ONE_SHOT_PROBES
        if name != "status" and name in rt.probes
    ]
    if watch_seconds is not None and WATCH_PROBE in rt.probes:
        runs.append(_watch_window(rt, watch_seconds))
    await asyncio.gather(*runs)


def inspection_of(
    rt: ClusterRuntime, config: Config, wanted: Sequence[str], watch_seconds: float | None
) -> ClusterInspection:
    return ClusterInspection(
        name=rt.name,
        endpoints=rt.state.endpoints,
        member_names=dict(rt.state.member_names),
        outcomes=dict(rt.state.outcomes),
        unavailable=tuple(name for name in wanted if name not in rt.probes),
        options={name: config.probes[name].options for name in rt.probes},
        watch_seconds=watch_seconds,
    )


async def inspect_all(
    config: Config, watch_seconds: float | None, line: ProgressLine | None
) -> list[ClusterInspection]:
    wanted = wanted_probes(watch_seconds)
    runtimes = [
        build_runtime(cluster, config, only={n for n in wanted if n in REGISTRY})
        for cluster in config.clusters
    ]
    progress = asyncio.create_task(show_progress(runtimes, line)) if line else None
    try:
        await asyncio.gather(*(inspect_cluster(rt, watch_seconds) for rt in runtimes))
    finally:
        if progress is not None:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
            line.clear()  # type: ignore[union-attr]
        for rt in runtimes:
            try:
                async with asyncio.timeout(10):
                    await rt.close()
            except TimeoutError:
                pass  # a frozen member must not keep the command from ending
    return [inspection_of(rt, config, wanted, watch_seconds) for rt in runtimes]


def _log_level(args: argparse.Namespace, config: Config) -> str:
    # The report already says what failed; probe warnings on stderr would repeat it. An explicit
    # --log.level still wins (a config file's level is meant for the long-running exporter).
    return config.log_level if getattr(args, "log_level", None) else "error"


def run_inspect(args: argparse.Namespace, config: Config) -> int:
    from etcd_inspector.logsetup import setup_logging

    watch_seconds: float | None = None
    if getattr(args, "watch_seconds", None):
        try:
            watch_seconds = parse_duration(args.watch_seconds)
        except ValueError as err:
            print(f"etcd-inspector: --watch: {err}", file=sys.stderr)
            return EXIT_ERROR
        if watch_seconds <= 0:
            print("etcd-inspector: --watch must be greater than 0", file=sys.stderr)
            return EXIT_ERROR
    setup_logging(_log_level(args, config), config.log_format)
    show = getattr(args, "progress", True) and sys.stderr.isatty()
    line = ProgressLine(sys.stderr) if show else None
    started = time.time()
    inspections = asyncio.run(inspect_all(config, watch_seconds, line))
    code = exit_code(inspections)
    if args.output == "json":
        doc = to_json(inspections, started_at=started, finished_at=time.time())
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    else:
        sys.stdout.write(render_text(inspections, started_at=started))
    sys.stdout.flush()
    for insp in inspections:
        if not insp.inspected:
            print(
                f"etcd-inspector: could not inspect cluster {insp.name!r}: {insp.error} "
                f"(endpoints: {', '.join(insp.endpoints)})",
                file=sys.stderr,
            )
    return code
