"""`etcd-inspector drill`: watch the alerts API while a fault is on, then report.

Start it next to the experiment (`kubectl apply -f chaos/etcd-io-latency.yaml`). It polls from
0 to --duration (the fault), then up to --resolve-timeout more while an expected alert that
fired is still firing. Exit 0 when every expected alert fired and resolved, 1 otherwise, 2 bad
flags or experiment file, 3 the API does not answer, 4 it answers but not as an alerts API or
refuses the credentials (exitcodes.py). A failed first poll ends the drill at once; a failed
poll later is counted and reported, and the drill goes on.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from etcd_inspector.config.durations import parse_duration
from etcd_inspector.drill.alertsapi import AlertsApi, ApiError, ApiErrorKind, check_base_url
from etcd_inspector.drill.httpconfig import HttpClientConfig, HttpConfigError, load_http_config
from etcd_inspector.drill.render import render_json, render_text, span
from etcd_inspector.drill.timeline import DrillReport, Observer
from etcd_inspector.errors import UsageError
from etcd_inspector.exitcodes import (
    EXIT_API_REFUSED,
    EXIT_API_UNREACHABLE,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_OK,
)

__all__ = ["ALERTS_ANNOTATION", "DrillPlan", "plan_from_args", "run_drill", "watch"]

# Written by servicemonitors/chaos.libsonnet on every experiment.
ALERTS_ANNOTATION = "etcd-inspector.io/expected-alerts"


@dataclass(frozen=True)
class DrillPlan:
    api_kind: str  # prometheus | alertmanager
    url: str
    expected: tuple[str, ...]
    fault_seconds: float
    resolve_timeout_seconds: float
    interval_seconds: float
    request_timeout_seconds: float
    http: HttpClientConfig
    match: tuple[tuple[str, str], ...] = ()  # label -> value every counted alert carries


def _duration(flag: str, text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise UsageError(f"{flag}: {err}") from None
    if not 0 < seconds < float("inf"):
        raise UsageError(f"{flag}: must be more than 0, got {text!r}")
    return seconds


def _matchers(values: list[str]) -> tuple[tuple[str, str], ...]:
    found = []
    for value in values:
        name, sep, wanted = value.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--match: expected LABEL=VALUE, e.g. cluster=staging, got {value!r}")
        found.append((name.strip(), wanted.strip().strip('"')))
    return tuple(found)


def _split(values: list[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _annotations(document: dict[str, Any]) -> dict[str, Any]:
    metadata = document.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def read_experiment(path: Path) -> tuple[list[str], str | None]:
    """The expected alerts (annotation) and spec.duration of a rendered experiment."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except OSError as err:
        raise UsageError(f"--experiment {path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UsageError(
            f"--experiment {path}: not valid YAML: {str(err).splitlines()[0]}"
        ) from None
    found = [d for d in documents if isinstance(d, dict) and ALERTS_ANNOTATION in _annotations(d)]
    if len(found) != 1:
        raise UsageError(
            f"--experiment {path}: expected one object annotated {ALERTS_ANNOTATION} "
            f"(an experiment `etcd-inspector generate` wrote to chaos/), found {len(found)}"
        )
    (experiment,) = found
    alerts = _split([str(_annotations(experiment)[ALERTS_ANNOTATION])])
    spec = experiment.get("spec")
    duration = spec.get("duration") if isinstance(spec, dict) else None
    return alerts, (str(duration) if duration is not None else None)


def plan_from_args(args: argparse.Namespace) -> DrillPlan:
    """Every flag checked, each problem one line (UsageError)."""
    urls = [(k, v) for k, v in (("prometheus", args.prometheus_url),
                                ("alertmanager", args.alertmanager_url)) if v]  # fmt: skip
    if len(urls) != 1:
        raise UsageError(
            "drill: give one of --prometheus.url=URL or --alertmanager.url=URL"
            + (", not both" if urls else "")
        )
    kind, raw_url = urls[0]
    try:
        url = check_base_url(raw_url, f"--{kind}.url")
    except ValueError as err:
        raise UsageError(str(err)) from None
    expected = _split(args.expect)
    duration_text = args.duration
    if args.experiment:
        from_file, file_duration = read_experiment(Path(args.experiment))
        expected += from_file
        duration_text = duration_text or file_duration
    expected = list(dict.fromkeys(expected))  # once each, in order
    if not expected:
        raise UsageError("drill: no alert to expect: give --expect=ALERT[,ALERT...] "
                         "or --experiment=FILE")  # fmt: skip
    if duration_text is None:
        raise UsageError("drill: give --duration (how long the fault is on), or an "
                         "--experiment with spec.duration")  # fmt: skip
    http = HttpClientConfig()
    if args.http_config_file:
        try:
            http = load_http_config(Path(args.http_config_file))
        except HttpConfigError as err:
            raise UsageError(f"--http.config.file: {err}") from None
    return DrillPlan(
        api_kind=kind,
        url=url,
        expected=tuple(expected),
        fault_seconds=_duration("--duration", duration_text),
        resolve_timeout_seconds=_duration("--resolve-timeout", args.resolve_timeout),
        interval_seconds=_duration("--interval", args.interval),
        request_timeout_seconds=_duration("--timeout", args.request_timeout),
        http=http,
        match=_matchers(args.match),
    )


def watch(
    api: AlertsApi,
    observer: Observer,
    plan: DrillPlan,
    progress: Callable[[str], None] | None = None,
    started: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until the fault is over and the expected alerts that fired resolved, or the
    resolve timeout. The first poll's ApiError propagates; later ones are recorded."""
    start = clock()

    def poll() -> None:
        at = clock() - start
        before = {a for a, t in observer.tracks.items() if t.resolved_at is None}
        try:
            firing = [
                alert for alert in api.firing()
                if all((name, value) in alert.labels for name, value in plan.match)
            ]  # fmt: skip
        except ApiError as err:
            if observer.polls == 0 and observer.failed_polls == 0:
                raise
            observer.failed(at, str(err))
            return
        observer.observe(at, firing)
        now = set(firing)
        if progress is not None and observer.polls > 1:
            for alert in sorted(now - before, key=lambda a: a.name):
                progress(f"+{span(at)} firing   {alert.name} {dict(alert.labels)}")
            for alert in sorted(before - now, key=lambda a: a.name):
                progress(f"+{span(at)} resolved {alert.name} {dict(alert.labels)}")

    poll()
    if started is not None:
        started()
    ticks = 1
    end = plan.fault_seconds + plan.resolve_timeout_seconds
    while True:
        elapsed = clock() - start
        if elapsed >= plan.fault_seconds and not observer.waiting_to_resolve():
            return
        if elapsed >= end:
            return
        # Polls on a fixed grid, plus one right at the fault's end.
        target = ticks * plan.interval_seconds
        if elapsed < plan.fault_seconds:
            target = min(target, plan.fault_seconds)
        target = min(target, end)
        if target > elapsed:
            sleep(target - elapsed)
        while ticks * plan.interval_seconds <= target:
            ticks += 1
        poll()


def _print_report(report: DrillReport, output: str, out: TextIO) -> None:
    out.write(render_json(report) if output == "json" else render_text(report))
    out.flush()


def run_drill(args: argparse.Namespace) -> int:
    plan = plan_from_args(args)
    api = AlertsApi(plan.api_kind, plan.url, plan.http, plan.request_timeout_seconds)
    observer = Observer(expected=plan.expected)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def started() -> None:
        progress(
            f"drill: watching {api.name} at {plan.url} for {', '.join(plan.expected)}: "
            f"fault {span(plan.fault_seconds)}, then up to {span(plan.resolve_timeout_seconds)} "
            "to resolve"
        )

    text = args.output == "text"
    interrupted = False
    try:
        watch(api, observer, plan, progress if text else None, started if text else None)
    except ApiError as err:
        print(f"etcd-inspector drill: {err}", file=sys.stderr)
        return EXIT_API_UNREACHABLE if err.kind is ApiErrorKind.UNREACHABLE else EXIT_API_REFUSED
    except KeyboardInterrupt:
        interrupted = True  # report what was seen so far
    report = observer.report(
        api.name, plan.url, plan.fault_seconds, plan.resolve_timeout_seconds,
        plan.interval_seconds, plan.match,
    )  # fmt: skip
    _print_report(report, args.output, sys.stdout)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if report.passed else EXIT_FINDINGS
