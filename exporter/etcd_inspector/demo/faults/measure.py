"""Reading a member's own /metrics: what the fault tests (and drills) assert on."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from etcd_inspector.demo.localcluster import LocalMember

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class MetricsSnapshot:
    """Every sample of one /metrics read: (name, labels) -> value."""

    samples: Mapping[tuple[str, Labels], float]

    def value(self, name: str, **labels: str) -> float:
        """The sum over samples named `name` whose labels include `labels` (0 when none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def buckets(self, histogram: str, **labels: str) -> dict[float, float]:
        """le -> cumulative count, summed over the series that match `labels`."""
        want = set(labels.items())
        out: dict[float, float] = {}
        for (n, ls), v in self.samples.items():
            if n == histogram + "_bucket" and want <= ls:
                le = float(dict(ls)["le"])
                out[le] = out.get(le, 0.0) + v
        return out


def read_metrics(member: LocalMember, timeout: float = 5.0) -> MetricsSnapshot:
    with urllib.request.urlopen(member.metrics_url, timeout=timeout) as resp:
        text = resp.read().decode()
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return MetricsSnapshot(samples)


def quantile_between(
    before: MetricsSnapshot, after: MetricsSnapshot, histogram: str, q: float, **labels: str
) -> float:
    """histogram_quantile(q) over what was observed between two snapshots (the upper bound of
    the bucket the quantile falls in; NaN when nothing was observed)."""
    start, end = before.buckets(histogram, **labels), after.buckets(histogram, **labels)
    delta = sorted((le, end[le] - start.get(le, 0.0)) for le in end)
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return math.nan
    for le, count in delta:
        if count >= q * total:
            return le
    return math.inf


def observed_between(
    before: MetricsSnapshot, after: MetricsSnapshot, histogram: str, **labels: str
) -> float:
    return after.value(histogram + "_count", **labels) - before.value(
        histogram + "_count", **labels
    )


def timed_get(url: str, timeout: float = 5.0) -> float:
    """Seconds one GET of `url` took (raises on failure)."""
    start = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        resp.read()
    return time.monotonic() - start


def member_status(member: LocalMember, timeout: float = 2.0) -> dict[str, Any]:
    """The member's own Status (grpc-gateway), e.g. `leader` ('0': none) and `raftTerm`.
    Raises (TimeoutError, URLError) when the member does not answer within `timeout`."""
    req = urllib.request.Request(
        member.client_url + "/v3/maintenance/status", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status: dict[str, Any] = json.loads(resp.read())
    return status
