"""The numbers a finding and its alert share, and where the alerts' runbooks live.

One source: the mixin's values, i.e. config.libsonnet's defaults with the operator's overrides
(the YAML file `generate --values FILE` renders the alerts with). The defaults are rendered once,
at build/test time, into the packaged mixin_defaults.json (`python -m etcd_inspector.mixin`
rewrites it; tests/test_thresholds.py fails when it is out of date), so no jsonnet runs when the
exporter or `inspect` starts. The same values file, given to them as `--mixin.values FILE`
(config: inspection.mixin_values), is applied over those defaults: the alerts and the findings
then compare with the same numbers. Findings read them from ReportContext.thresholds.

A finding's `runbook` is the anchor of the matching alert in docs/mixin.md (runbook_url_base +
lower-cased alert name, as rules/runbooks.libsonnet builds every alert's runbook_url). Which
alert matches which kind of finding each probe declares in its spec (probes/base.py Check).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULTS_FILE = "mixin_defaults.json"


class ThresholdsError(ValueError):
    """A values file the exporter cannot use (one line: the file and the cause)."""


@functools.cache
def packaged_defaults() -> dict[str, Any]:
    """config.libsonnet's names and default values, as rendered into the package."""
    text = resources.files("etcd_inspector").joinpath(DEFAULTS_FILE).read_text(encoding="utf-8")
    values: dict[str, Any] = json.loads(text)
    return values


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def _seconds(duration: str) -> float:
    """A Prometheus duration ('1h', '1h30m') in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ThresholdsError(f"not a Prometheus duration: {duration!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


_SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class QuotaTier:
    """One tier of EtcdInspectorQuotaHeadroomLow: over `ratio` of the quota, `severity`."""

    severity: str  # info | warning | critical (report/findings.py Severity)
    ratio: float


def quota_tiers(value: Any) -> tuple[QuotaTier, ...]:
    """config.libsonnet's quota_used_ratio_tiers, checked: rising ratios in (0, 1]."""
    name = "quota_used_ratio_tiers"
    if not isinstance(value, list) or not value:
        raise ThresholdsError(f"{name} must be a non-empty list of {{severity, ratio}}")
    tiers = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"severity", "ratio"}:
            raise ThresholdsError(
                f"{name}: each tier is {{severity: ..., ratio: ...}}, got {item!r}"
            )
        severity, ratio = item["severity"], item["ratio"]
        if severity not in _SEVERITIES:
            raise ThresholdsError(f"{name}: severity must be one of {', '.join(_SEVERITIES)}, "
                                  f"got {severity!r}")  # fmt: skip
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
            raise ThresholdsError(f"{name}: ratio must be a number in (0, 1], got {ratio!r}")
        tiers.append(QuotaTier(severity, float(ratio)))
    if [t.ratio for t in tiers] != sorted({t.ratio for t in tiers}):
        raise ThresholdsError(f"{name}: ratios must rise from tier to tier")
    return tuple(tiers)


@dataclass(frozen=True)
class Thresholds:
    """The mixin values findings compare with (each the alert's of the same name)."""

    # EtcdInspectorQuotaHeadroomLow: tiers of the share (0..1) of the backend quota in use.
    quota_used_ratio_tiers: tuple[QuotaTier, ...]
    # EtcdInspectorBigValues: values over the big-value size tolerated.
    big_values_max: int
    # The bigvalue probe's default size threshold (its `threshold_bytes` option).
    big_value_threshold_bytes: int
    # EtcdInspectorHotKey: writes per second to a single key.
    hot_key_writes_per_second: float
    # EtcdInspectorPrefixKeyGrowth: keys a prefix may gain within the window.
    prefix_key_growth_max: int
    prefix_key_growth_window_seconds: float
    # EtcdInspectorCertificateExpiry: days left before a certificate expires.
    certificate_expiry_warning_days: float
    certificate_expiry_critical_days: float
    # etcdHighFsyncDurations: p99 WAL fsync seconds (warning, critical).
    fsync_p99_seconds_warning: float = 0.5
    fsync_p99_seconds_critical: float = 1.0
    # etcdHighCommitDurations: p99 backend commit seconds.
    commit_p99_seconds_warning: float = 0.25
    # etcdMemberCommunicationSlow: p99 peer round-trip seconds.
    peer_rtt_p99_seconds: float = 0.15
    # etcdHighNumberOfFailedProposals: failed proposals per second.
    failed_proposals_per_second: float = 5.0
    # etcdHighNumberOfSlowApplies: applies per second slower than 100 ms.
    slow_applies_per_second: float = 0.1
    # etcdHighNumberOfLeaderChanges: leader changes within the window.
    leader_changes_max: int = 4
    leader_changes_window_seconds: float = 900.0
    # EtcdInspectorMemberRevisionLag / ...AppliedIndexLag: how far a member may trail.
    revision_lag_max: int = 1000
    applied_index_lag_max: int = 1000
    # EtcdInspectorLearnerBehind: raft entries a learner may trail the leader's index.
    learner_lag_entries_max: int = 10000
    # EtcdInspectorLearnerDatabaseLarge: a learner's database over this many times the
    # largest voter's (a learner cannot be defragmented).
    learner_db_size_ratio_max: float = 1.5
    # EtcdInspectorCompactionStalled: revisions kept since the last compaction.
    revisions_since_compaction_max: int = 1_000_000
    # EtcdInspectorLeasesHigh: active leases in a cluster.
    leases_max: int = 10_000
    # `inspect --baseline` (render/baseline.py): how much may change since the saved report
    # before the comparison names it (growth beyond them is worse).
    baseline_prefix_keys_delta: int = 1000
    baseline_db_size_delta_bytes: int = 1024 * 1024
    baseline_leases_delta: int = 1000

    @property
    def quota_used_ratio_limit(self) -> float:
        """The lowest tier: where a member's quota use starts to be a finding."""
        return self.quota_used_ratio_tiers[0].ratio

    def quota_tier(self, ratio: float) -> QuotaTier | None:
        """The highest tier `ratio` is over, or None."""
        return next((t for t in reversed(self.quota_used_ratio_tiers) if ratio > t.ratio), None)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Thresholds:
        return cls(
            quota_used_ratio_tiers=quota_tiers(values["quota_used_ratio_tiers"]),
            big_values_max=int(values["big_values_max"]),
            big_value_threshold_bytes=int(values["big_value_threshold_bytes"]),
            hot_key_writes_per_second=float(values["hot_key_writes_per_second"]),
            prefix_key_growth_max=int(values["prefix_key_growth_max"]),
            prefix_key_growth_window_seconds=_seconds(values["prefix_key_growth_window"]),
            certificate_expiry_warning_days=float(values["certificate_expiry_warning_days"]),
            certificate_expiry_critical_days=float(values["certificate_expiry_critical_days"]),
            fsync_p99_seconds_warning=float(values["fsync_p99_seconds_warning"]),
            fsync_p99_seconds_critical=float(values["fsync_p99_seconds_critical"]),
            commit_p99_seconds_warning=float(values["commit_p99_seconds_warning"]),
            peer_rtt_p99_seconds=float(values["peer_rtt_p99_seconds"]),
            failed_proposals_per_second=float(values["failed_proposals_per_second"]),
            slow_applies_per_second=float(values["slow_applies_per_second"]),
            leader_changes_max=int(values["leader_changes_max"]),
            leader_changes_window_seconds=_seconds(values["leader_changes_window"]),
            revision_lag_max=int(values["revision_lag_max"]),
            applied_index_lag_max=int(values["applied_index_lag_max"]),
            learner_lag_entries_max=int(values["learner_lag_entries_max"]),
            learner_db_size_ratio_max=float(values["learner_db_size_ratio_max"]),
            revisions_since_compaction_max=int(values["revisions_since_compaction_max"]),
            leases_max=int(values["leases_max"]),
            baseline_prefix_keys_delta=int(values["baseline_prefix_keys_delta"]),
            baseline_db_size_delta_bytes=int(values["baseline_db_size_delta_bytes"]),
            baseline_leases_delta=int(values["baseline_leases_delta"]),
        )


def with_overrides(overrides: Mapping[str, Any], origin: str = "values") -> Thresholds:
    """The packaged defaults with `overrides` (config.libsonnet names) applied, checked as
    `generate --values` checks them: a name the mixin lacks or a value of another type is an
    error."""
    from etcd_inspector import mixin  # with PyYAML: only when a values file is given

    defaults = packaged_defaults()
    try:
        mixin.check_values(overrides, defaults, origin)
    except mixin.MixinError as err:
        raise ThresholdsError(str(err)) from err
    return Thresholds.of({**defaults, **overrides})


def load_thresholds(values_file: str | None) -> Thresholds:
    """The thresholds for a values file (the one `generate --values` takes), or the defaults."""
    if values_file is None:
        return DEFAULT
    from etcd_inspector import mixin  # with PyYAML: only when a values file is given

    try:
        values = mixin.load_values(Path(values_file))
    except mixin.MixinError as err:
        raise ThresholdsError(str(err)) from err
    return with_overrides(values, values_file)


DEFAULT = Thresholds.of(packaged_defaults())

# The defaults under their old names, for code that needs no override (the demo, the scan's
# default size threshold and growth window).
RUNBOOK_URL_BASE: str = packaged_defaults()["runbook_url_base"]
BIG_VALUE_BYTES = DEFAULT.big_value_threshold_bytes
HOT_KEY_WRITES_PER_SECOND = DEFAULT.hot_key_writes_per_second
PREFIX_KEY_GROWTH_WINDOW_SECONDS = DEFAULT.prefix_key_growth_window_seconds


def runbook_anchor(alert: str) -> str:
    """The anchor of an alert's runbook heading in docs/mixin.md."""
    return alert.lower()


def runbook_url(anchor: str | None) -> str | None:
    return RUNBOOK_URL_BASE + anchor if anchor else None
