"""Shared test helpers: render metric families as Prometheus text and lint them with promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

import heavy
from etcd_inspector.runtime.runtime import ClusterRuntime
from etcd_inspector.web.own_text import OutcomeCache
from etcd_inspector.web.proxy import merge
from etcd_inspector.web.proxy import render as proxy_render
from etcd_inspector.web.scrape import own_families


class Families:
    """What prometheus_client's exposition needs: an object with collect()."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families


def render(families: Iterable[Metric]) -> str:
    return generate_latest(Families(families)).decode()  # type: ignore[arg-type]


def exposed(runtimes: Sequence[ClusterRuntime], outcomes: OutcomeCache | None = None) -> str:
    """The probes' families of `runtimes` as a scrape of /metrics writes them (text format),
    through the scrape's own code (web/scrape.py's `own_families`), without a member's.
    `outcomes`: the cache the exporter keeps across scrapes (a fresh one: the first scrape)."""
    cache = OutcomeCache() if outcomes is None else outcomes  # an empty cache is falsy
    own = own_families(runtimes, CollectorRegistry(), False, cache)
    return proxy_render(merge([], own.kinds), own, False).decode()


_NAME = re.compile(r"(?:# (?:HELP|TYPE) )?([a-zA-Z_:][a-zA-Z0-9_:]*)")


def only_families(text: str, prefix: str) -> str:
    """The HELP, TYPE and sample lines of the metrics whose name starts with `prefix`."""
    kept = []
    for line in text.splitlines():
        m = _NAME.match(line)
        if m and m.group(1).startswith(prefix):
            kept.append(line)
    return "\n".join(kept) + "\n"


def promtool_check(text: str) -> tuple[int, list[str]]:
    """(exit code, output lines) of the real `promtool check metrics`; fails if it is missing."""
    heavy.require("promtool", "runs promtool check metrics")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH (Debian's prometheus package has it)")
    out = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    return out.returncode, (out.stdout + out.stderr).splitlines()


def assert_promtool_clean(text: str) -> None:
    code, lines = promtool_check(text)
    assert code == 0, "\n".join(lines)
