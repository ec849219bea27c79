"""quota: each member's database size against its backend quota, and when it will hit it.

etcd raises the NOSPACE alarm (and refuses writes) once the backend file outgrows
--quota-backend-bytes. The quota comes from the `quota_bytes` option when set, else from the
member's own `etcd_server_quota_backend_bytes` gauge (etcd >= 3.4), else etcd's 2 GiB default.
The projection fits a least-squares line through the exporter's own recent (time, db size)
samples, so it needs no Prometheus history.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import model_validator

from etcd_inspector.config import Duration, Section
from etcd_inspector.errors import ErrorKind, ProbeError
from etcd_inspector.etcd.deadline import call_timeout
from etcd_inspector.etcd.errors import attempt
from etcd_inspector.etcd.interfaces import Maintenance
from etcd_inspector.etcd.types import MemberStatus
from etcd_inspector.probes.base import CACHED, Check, Probe, ProbeContext, ProbeSpec, ReportContext
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.format import duration, size, table
from etcd_inspector.report.thresholds import DEFAULT as DEFAULT_THRESHOLDS
from etcd_inspector.report.view import Cell, Column, Format, Look, ViewInput, ViewPart

DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024  # etcd's default --quota-backend-bytes

# etcd refuses writes at 100%. The lowest of the mixin's default quota_used_ratio_tiers (the
# info tier); findings use rc.thresholds (the operator's values) and its tiers' severities.
QUOTA_USED_RATIO_LIMIT = DEFAULT_THRESHOLDS.quota_used_ratio_limit

# Below this the fit is mostly noise.
MIN_PROJECTION_SAMPLES = 3

_QUOTA_LINE = re.compile(r"^etcd_server_quota_backend_bytes(?:\{[^}]*\})?[ \t]+(\S+)", re.MULTILINE)


class QuotaOptions(Section):
    # > 0 overrides what the members report (e.g. etcd < 3.4, which has no quota gauge)
    quota_bytes: int = 0
    projection_window_seconds: Duration = 6 * 3600.0
    projection_max_samples: int = 360
    # The samples must span at least this long before a projection is made.
    projection_min_span_seconds: Duration = 60.0
    # A status probe result older than this is not reused; the quota probe asks itself.
    status_max_age_seconds: Duration = 60.0

    @model_validator(mode="after")
    def _check(self) -> QuotaOptions:
        if self.quota_bytes < 0:
            raise ValueError("quota_bytes must not be negative")
        if self.projection_window_seconds <= 0:
            raise ValueError("projection_window_seconds must be positive")
        if self.projection_max_samples < MIN_PROJECTION_SAMPLES:
            raise ValueError(f"projection_max_samples must be >= {MIN_PROJECTION_SAMPLES}")
        return self


@dataclass(frozen=True)
class MemberQuota:
    endpoint: str
    member: str
    db_size: int
    db_size_in_use: int
    quota_bytes: int
    quota_source: str  # option | metrics | default
    exhaustion_seconds: float | None


@dataclass(frozen=True)
class QuotaResult:
    members: tuple[MemberQuota, ...]

    def of(self, endpoint: str) -> MemberQuota | None:
        return next((m for m in self.members if m.endpoint == endpoint), None)


# --------------------------------------------------------------------------- pure logic


def parse_quota_backend_bytes(text: str) -> int | None:
    """The value of `etcd_server_quota_backend_bytes` in a /metrics text, or None."""
    m = _QUOTA_LINE.search(text)
    if m is None:
        return None
    try:
        value = float(m.group(1))
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return round(value)


def least_squares_slope(samples: Sequence[tuple[float, float]]) -> float | None:
    n = len(samples)
    if n < 2:
        return None
    # Centered on the means: epoch seconds squared would swamp a float's precision.
    mean_t = sum(t for t, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in samples)
    if var_t == 0:
        return None
    return sum((t - mean_t) * (y - mean_y) for t, y in samples) / var_t


def project_exhaustion(
    samples: Sequence[tuple[float, float]], quota: float, min_span_seconds: float = 60.0
) -> float | None:
    """Seconds from the last sample until the db size reaches `quota` at the fitted growth rate;
    None when there is no growth or too little data to tell."""
    if len(samples) < MIN_PROJECTION_SAMPLES:
        return None
    if samples[-1][0] - samples[0][0] < min_span_seconds:
        return None
    slope = least_squares_slope(samples)
    if slope is None or slope <= 0:
        return None
    return max(0.0, (quota - samples[-1][1]) / slope)


class SizeHistory:
    """A bounded ring of (time, db size) samples for one member.

    Samples closer together than window/max_samples are not kept (the ring then spans the
    whole window whatever the probe interval), samples older than the window are dropped, and
    a shrinking db (a defragmentation or restore) starts the history over: the growth before
    it says nothing about the growth after."""

    def __init__(self, window_seconds: float, max_samples: int) -> None:
        self.window = window_seconds
        self.min_spacing = window_seconds / max_samples
        self.samples: deque[tuple[float, float]] = deque(maxlen=max_samples)

    def add(self, t: float, size: float) -> None:
        if self.samples and size < self.samples[-1][1]:
            self.samples.clear()
        if not self.samples or t - self.samples[-1][0] >= self.min_spacing:
            self.samples.append((t, size))
        while self.samples and self.samples[0][0] < t - self.window:
            self.samples.popleft()

    def series_until(self, t: float, size: float) -> list[tuple[float, float]]:
        """The kept samples plus the current one, if it was not kept."""
        series = list(self.samples)
        if not series or t > series[-1][0]:
            series.append((t, size))
        return series


# --------------------------------------------------------------------------- gathering


# Status and the /metrics fetches run side by side, in one step: leave a little of the run for
# building the result, but a frozen member must not cost the others' answers.
_SHARE = 0.8


async def _own_status(client: Maintenance) -> tuple[MemberStatus | None, float]:
    status, _ = await attempt(client.status(timeout=call_timeout(client.request_timeout, _SHARE)))
    return status, time.time()


class QuotaProbe(Probe[QuotaOptions, QuotaResult]):
    def __init__(self, options: QuotaOptions) -> None:
        super().__init__(options)
        self._history: dict[str, SizeHistory] = {}
        # The quota a member last reported: it only changes with a restart, so a failed fetch
        # keeps it rather than falling back to the default.
        self._reported_quota: dict[str, int] = {}

    async def run(self, ctx: ProbeContext) -> QuotaResult:
        statuses, quotas = await asyncio.gather(self._statuses(ctx), self._quotas(ctx))
        members: list[MemberQuota] = []
        for client in ctx.members:
            status, taken_at = statuses[client.endpoint]
            if status is None:
                continue  # down: member_up says so
            quota, source = quotas[client.endpoint]
            history = self._history.setdefault(
                client.endpoint,
                SizeHistory(
                    self.options.projection_window_seconds, self.options.projection_max_samples
                ),
            )
            history.add(taken_at, status.db_size)
            members.append(
                MemberQuota(
                    endpoint=client.endpoint,
                    member=ctx.member_name(client.endpoint),
                    db_size=status.db_size,
                    db_size_in_use=status.db_size_in_use,
                    quota_bytes=quota,
                    quota_source=source,
                    exhaustion_seconds=project_exhaustion(
                        history.series_until(taken_at, status.db_size),
                        quota,
                        self.options.projection_min_span_seconds,
                    ),
                )
            )
        if not members:
            raise ProbeError(ErrorKind.NO_ANSWER, "no member answered Status")
        return QuotaResult(members=tuple(members))

    async def _statuses(self, ctx: ProbeContext) -> dict[str, tuple[MemberStatus | None, float]]:
        """Each member's Status with the time it was taken: the topology's when fresh."""
        found: dict[str, tuple[MemberStatus | None, float]] = {}
        topology = ctx.topology
        if (
            topology.known
            and time.time() - topology.taken_at <= self.options.status_max_age_seconds
        ):
            for client in ctx.members:
                st = topology.status_of(client.endpoint)
                if st is not None:
                    found[client.endpoint] = (st, topology.taken_at)
        missing = [c for c in ctx.members if c.endpoint not in found]
        for client, answer in zip(
            missing, await asyncio.gather(*(_own_status(c) for c in missing)), strict=True
        ):
            found[client.endpoint] = answer
        return found

    async def _quotas(self, ctx: ProbeContext) -> dict[str, tuple[int, str]]:
        if self.options.quota_bytes > 0:
            return {c.endpoint: (self.options.quota_bytes, "option") for c in ctx.members}
        assert ctx.metrics is not None, "the quota probe needs the cluster's metrics fetcher"
        fetches = await ctx.metrics.fetch_all(call_timeout(ctx.request_timeout, _SHARE))
        for endpoint, fetch in fetches.items():
            reported = parse_quota_backend_bytes(fetch.text) if fetch.text else None
            if reported is not None:
                self._reported_quota[endpoint] = reported
        return {
            c.endpoint: (
                (self._reported_quota[c.endpoint], "metrics")
                if c.endpoint in self._reported_quota
                else (DEFAULT_QUOTA_BYTES, "default")
            )
            for c in ctx.members
        }

    def metrics(self, cluster: str, result: QuotaResult) -> Iterable[Metric]:
        labels = ["cluster", "member"]

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"etcd_inspector_{name}", f"{doc} {CACHED}", labels=labels)

        quota = gauge(
            "quota_bytes",
            "The member's backend quota (the quota_bytes option, else the member's "
            "etcd_server_quota_backend_bytes, else etcd's 2 GiB default).",
        )
        used = gauge("quota_used_ratio", "Database size divided by the quota (1 = NOSPACE).")
        headroom = gauge(
            "quota_headroom_bytes", "Quota minus database size (negative once it is exceeded)."
        )
        in_use = gauge(
            "db_in_use_ratio",
            "Logically used part of the database file (low = fragmented; defragment to shrink).",
        )
        exhaustion = gauge(
            "quota_exhaustion_seconds",
            "Projected seconds until the database reaches the quota, from a least-squares fit "
            "of the exporter's recent samples; absent while the size is not growing.",
        )
        for m in result.members:
            lv = [cluster, m.member]
            quota.add_metric(lv, m.quota_bytes)
            used.add_metric(lv, m.db_size / m.quota_bytes)
            headroom.add_metric(lv, m.quota_bytes - m.db_size)
            if m.db_size > 0:
                in_use.add_metric(lv, m.db_size_in_use / m.db_size)
            if m.exhaustion_seconds is not None:
                exhaustion.add_metric(lv, m.exhaustion_seconds)
        yield from (quota, used, headroom, in_use, exhaustion)

    # ----------------------------------------------------------------------- report

    def findings(self, result: QuotaResult, rc: ReportContext) -> Iterable[Finding]:
        for mq in result.members:
            ratio = mq.db_size / mq.quota_bytes if mq.quota_bytes else 0.0
            tier = rc.thresholds.quota_tier(ratio)
            if tier is not None:
                yield Finding(
                    rc.cluster,
                    "quota",
                    f"member {mq.member} uses {ratio:.0%} of its quota "
                    f"({size(mq.db_size)} of {size(mq.quota_bytes)}; {tier.severity} tier: "
                    f"limit {tier.ratio:.0%})",
                    mq.member,
                    Severity(tier.severity),
                    subject=mq.member,
                    value=round(ratio, 4),
                    threshold=tier.ratio,
                )

    def report_json(self, result: QuotaResult | None, rc: ReportContext) -> dict[str, Any]:
        if result is None:
            return {"quota": None}
        doc = quota_json(result, rc.thresholds.quota_used_ratio_limit)
        doc["used_ratio_tiers"] = [
            {"severity": t.severity, "ratio": t.ratio} for t in rc.thresholds.quota_used_ratio_tiers
        ]
        return {"quota": doc}

    def report_text(self, result: QuotaResult | None, rc: ReportContext) -> list[str]:
        if result is None:
            return []
        rows = [
            [
                m["name"],
                size(m["db_size_bytes"]),
                f"{size(m['quota_bytes'])} ({m['quota_source']})",
                f"{m['used_ratio']:.1%}" if m["used_ratio"] is not None else None,
                size(m["headroom_bytes"]),
                duration(m["exhaustion_seconds"]) if m["exhaustion_seconds"] is not None else "-",
            ]
            for m in quota_json(result, rc.thresholds.quota_used_ratio_limit)["members"]
        ]
        tiers = ", ".join(
            f"{t.ratio:.0%} {t.severity}" for t in rc.thresholds.quota_used_ratio_tiers
        )
        return [
            f"Quota (limit {rc.thresholds.quota_used_ratio_limit:.0%} used; tiers {tiers})",
            *table(["MEMBER", "DB SIZE", "QUOTA", "USED", "HEADROOM", "FULL IN"], rows),
        ]


def quota_json(result: QuotaResult, limit: float = QUOTA_USED_RATIO_LIMIT) -> dict[str, Any]:
    return {
        "used_ratio_limit": limit,
        "members": [
            {
                "name": m.member,
                "db_size_bytes": m.db_size,
                "db_size_in_use_bytes": m.db_size_in_use,
                "quota_bytes": m.quota_bytes,
                "quota_source": m.quota_source,
                "used_ratio": m.db_size / m.quota_bytes if m.quota_bytes else None,
                "headroom_bytes": m.quota_bytes - m.db_size,
                "exhaustion_seconds": m.exhaustion_seconds,
            }
            for m in result.members
        ],
    }


def quota_view(v: ViewInput) -> list[ViewPart]:
    """A "quota used" column in the members table: the share, over the limit in red."""
    q = v.doc.get("quota")
    if q is None:
        return []
    limit = q.get("used_ratio_limit") or 1
    cells = {
        m["name"]: Cell(
            m["used_ratio"], Format.RATIO, Look.BAD if m["used_ratio"] > limit else Look.PLAIN,
            note=f"of {size(m['quota_bytes'])}", tag="quota",
        )
        for m in q.get("members", [])
        if m.get("used_ratio") is not None
    }  # fmt: skip
    return [Column("members", "quota used", cells)]


SPEC = ProbeSpec(
    name="quota",
    probe_type=QuotaProbe,
    description="Each member's database size against its backend quota, with a projection.",
    options_type=QuotaOptions,
    default_interval=30.0,
    default_timeout=15.0,
    title="Quota",
    view=quota_view,
    checks=(
        Check(
            "quota",
            "EtcdInspectorQuotaHeadroomLow",
            Format.RATIO,
            thresholds=("quota_used_ratio_tiers",),
        ),
    ),
    stale_seconds=1800,
)
