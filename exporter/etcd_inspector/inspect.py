"""`etcd-inspector inspect`: run the probes once against every configured cluster and report.

Meant for checks before and after a change (upgrade, restart, member swap). Per cluster: the
topology probe (status) first: it resolves member names and decides whether the cluster answers
at all; then every probe whose spec says InspectMode.ONCE, concurrently, each with its configured
timeout: consistency's HashKV of every member runs while bigvalue's scan reads one of them, the
scan's adaptive pace not counting the slowdown our own hash causes as the cluster's
(cluster/own_load.py, docs/decisions.md). A probe that measures over a window
(Probe.waits_seconds: performance) spans the others: it is given ProbeContext.others_done.
Probes with InspectMode.WATCH run only with --watch: once to start, then again after the window
to take the snapshot. The command ends as soon as the probes end. A probe with
`enabled: false` is skipped (reported as not run), as is every probe not named in `--probes`
when that is given; the topology probe always runs.

Like the exporter, inspect only ever reads: every call goes through etcd/client.py, which has
no write RPC at all.

Output: the text report or one JSON document on stdout (schema: render/jsondoc.py); progress
and errors on stderr. While a probe publishes progress (the keyspace scan) and stderr is a
terminal, one line on stderr is rewritten in place with it.
Exit codes (render.inspection.exit_code): 0 all clear, 1 findings, 2 could not inspect.
With --baseline BEFORE.json (render/baseline.py) the report ends with what changed since that
saved JSON report, and the exit code says whether anything got worse: 0 no, 1 yes, 2 could not
inspect (or an unreadable baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, TextIO

from etcd_inspector.config import Config, parse_duration
from etcd_inspector.config.errors import did_you_mean
from etcd_inspector.errors import UsageError
from etcd_inspector.exitcodes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import InspectMode
from etcd_inspector.render.baseline import (
    BaselineError,
    Limits,
    compare,
    comparison_text,
    load_baseline,
)
from etcd_inspector.render.inspection import ClusterInspection, exit_code
from etcd_inspector.render.jsondoc import to_json
from etcd_inspector.render.text import render_text
from etcd_inspector.report.thresholds import load_thresholds
from etcd_inspector.runtime.runtime import ClusterRuntime, build_runtime
from etcd_inspector.runtime.scheduler import ScheduledProbe, run_probe_once

PROGRESS_INTERVAL_SECONDS = 0.2


# --------------------------------------------------------------------------- progress line


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


# Cluster name -> when its --watch window ends (time.time()); set once the watch is up.
WatchEnds = dict[str, float]


def progress_texts(
    runtimes: Sequence[ClusterRuntime], now: float, watch_ends: WatchEnds | None = None
) -> list[str]:
    parts = []
    for rt in runtimes:
        end = (watch_ends or {}).get(rt.name)
        if end is not None and end > now:
            left = f"watching writes: {end - now:.0f}s left"
            parts.append(f"{rt.name}: {left}" if len(runtimes) > 1 else left)
        for name, progress in rt.state.progress.items():
            scheduled = rt.probes.get(name)
            text = scheduled.probe.progress_text(progress, now) if scheduled else None
            if text:
                parts.append(f"{rt.name}: {text}" if len(runtimes) > 1 else text)
    return parts


async def show_progress(
    runtimes: Sequence[ClusterRuntime], line: ProgressLine, watch_ends: WatchEnds | None = None
) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)
        parts = progress_texts(runtimes, time.time(), watch_ends)
        if parts:
            line.show("; ".join(parts))
        else:
            line.clear()


# --------------------------------------------------------------------------- running


def wanted_probes(watch_seconds: float | None) -> tuple[str, ...]:
    modes = {InspectMode.ONCE} | ({InspectMode.WATCH} if watch_seconds is not None else set())
    return tuple(name for name, spec in REGISTRY.items() if spec.inspect in modes)


def parse_probe_list(text: str, watch_seconds: float | None) -> tuple[str, ...]:
    """--probes: comma-separated probe names; raises UsageError (one line) on a bad one."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise UsageError("--probes: no probe named")
    for name in names:
        spec = REGISTRY.get(name)
        runnable = [n for n, sp in REGISTRY.items() if sp.inspect is not InspectMode.NEVER]
        if spec is None or spec.inspect is InspectMode.NEVER:
            raise UsageError(
                f"--probes: unknown probe {name!r}{did_you_mean(name, runnable)}; "
                f"known probes: {', '.join(runnable)}"
            )
        if spec.inspect is InspectMode.WATCH and watch_seconds is None:
            raise UsageError(f"--probes: {name} observes over time and needs --watch DURATION")
    return names


def selected_probes(
    config: Config, watch_seconds: float | None, named: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(probes to run, probes skipped): --probes when given (the topology probe always runs),
    else the probes the configuration enables."""
    run: list[str] = []
    skipped: list[str] = []
    for name in wanted_probes(watch_seconds):
        spec = REGISTRY[name]
        if named is not None:
            chosen = name in named or spec.provides_topology
        else:
            enabled = any(config.probes_for(c.name)[name].enabled for c in config.clusters)
            chosen = spec.provides_topology or enabled
        (run if chosen else skipped).append(name)
    return tuple(run), tuple(skipped)


def cluster_probes(
    config: Config, cluster: str, wanted: Sequence[str], named: Sequence[str] | None
) -> set[str]:
    """The probes one cluster runs: --probes as given; else those its own settings enable (a
    cluster's `probes: {x: {enabled: false}}` leaves x out there, not in the other clusters)."""
    if named is not None:
        return set(wanted)
    settings = config.probes_for(cluster)
    return {n for n in wanted if REGISTRY[n].provides_topology or settings[n].enabled}


async def _once(
    rt: ClusterRuntime,
    scheduled: ScheduledProbe,
    others_done: Callable[[], Awaitable[object]] | None = None,
) -> None:
    ctx = rt.scheduler.context_for(scheduled.spec.name)
    if others_done is not None:
        ctx = replace(ctx, others_done=others_done)
    await run_probe_once(scheduled, ctx, rt.state)


async def _watch_window(
    rt: ClusterRuntime, scheduled: ScheduledProbe, seconds: float, watch_ends: WatchEnds
) -> None:
    """The first run starts watching, the run after the window reads what it saw."""
    await _once(rt, scheduled)
    watch_ends[rt.name] = time.time() + seconds
    await asyncio.sleep(seconds)
    await _once(rt, scheduled)


async def inspect_cluster(
    rt: ClusterRuntime, watch_seconds: float | None, watch_ends: WatchEnds | None = None
) -> None:
    """Run the probes once; outcomes land in rt.state (as they do for the exporter)."""
    probes = list(rt.probes.values())
    for scheduled in probes:
        if scheduled.spec.provides_topology:
            await _once(rt, scheduled)
            if not rt.state.outcomes[scheduled.spec.name].success:
                return  # nobody answered: the other probes would only time out one by one
    others_ended = asyncio.Event()
    runs: list[Coroutine[Any, Any, None]] = []
    windows: list[Coroutine[Any, Any, None]] = []  # they measure over the others' span
    for scheduled in probes:
        if scheduled.spec.provides_topology:
            continue
        if scheduled.spec.inspect is InspectMode.ONCE:
            if scheduled.probe.waits_seconds() > 0:
                windows.append(_once(rt, scheduled, others_ended.wait))
            else:
                runs.append(_once(rt, scheduled))
        elif scheduled.spec.inspect is InspectMode.WATCH and watch_seconds is not None:
            runs.append(_watch_window(rt, scheduled, watch_seconds, watch_ends or {}))

    async def others() -> None:
        try:
            await asyncio.gather(*runs)
        finally:
            others_ended.set()

    await asyncio.gather(others(), *windows)


async def inspect_all(
    config: Config,
    watch_seconds: float | None,
    line: ProgressLine | None,
    named: Sequence[str] | None = None,
) -> list[ClusterInspection]:
    wanted, skipped = selected_probes(config, watch_seconds, named)
    runtimes = [
        build_runtime(cluster, config, only=cluster_probes(config, cluster.name, wanted, named))
        for cluster in config.clusters
    ]
    watch_ends: WatchEnds = {}
    progress = asyncio.create_task(show_progress(runtimes, line, watch_ends)) if line else None
    try:
        await asyncio.gather(*(inspect_cluster(rt, watch_seconds, watch_ends) for rt in runtimes))
    finally:
        if progress is not None and line is not None:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
            line.clear()
        for rt in runtimes:
            try:
                async with asyncio.timeout(10):
                    await rt.close()
            except TimeoutError:
                pass  # a frozen member must not keep the command from ending
    return [
        ClusterInspection.of_runtime(
            rt, wanted=wanted, watch_seconds=watch_seconds, skipped=skipped
        )
        for rt in runtimes
    ]


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
    named: tuple[str, ...] | None = None
    if getattr(args, "probes", None) is not None:
        try:
            named = parse_probe_list(args.probes, watch_seconds)
        except UsageError as err:
            print(f"etcd-inspector: {err}", file=sys.stderr)
            return EXIT_ERROR
    baseline_file: str | None = getattr(args, "baseline", None)
    baseline = None
    if baseline_file is not None:
        try:
            baseline = load_baseline(baseline_file)
        except BaselineError as err:
            print(f"etcd-inspector: {err}", file=sys.stderr)
            return EXIT_ERROR
    setup_logging(_log_level(args, config), config.log_format)
    show = getattr(args, "progress", True) and sys.stderr.isatty()
    line = ProgressLine(sys.stderr) if show else None
    started = time.time()
    inspections = asyncio.run(inspect_all(config, watch_seconds, line, named))
    code = exit_code(inspections)
    doc = to_json(inspections, started_at=started, finished_at=time.time())
    if baseline is not None and baseline_file is not None:
        comparison = compare(baseline, doc, Limits.of(load_thresholds(config.mixin_values)))
        if code != EXIT_ERROR:
            # The question is what the change changed: findings that were there before are not.
            code = EXIT_FINDINGS if comparison.worse else EXIT_OK
        doc["exit_code"] = code
        doc["baseline"] = comparison.as_json(baseline_file)
    if args.output == "json":
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    else:
        sys.stdout.write(render_text(inspections, started_at=started))
        if baseline is not None and baseline_file is not None:
            sys.stdout.write("\n".join(["", *comparison_text(comparison, baseline_file)]) + "\n")
    sys.stdout.flush()
    for insp in inspections:
        if not insp.inspected:
            print(
                f"etcd-inspector: could not inspect cluster {insp.name!r}: {insp.error} "
                f"(endpoints: {', '.join(insp.endpoints)})",
                file=sys.stderr,
            )
    return code
