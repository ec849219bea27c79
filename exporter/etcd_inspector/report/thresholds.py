"""The numbers a finding and its alert share, and where the alerts' runbooks live (pure).

One source: the mixin's config.libsonnet. These constants are its defaults, copied here because
evaluating the jsonnet costs a second at every start; tests/test_thresholds.py renders the mixin
and fails when a constant and its config.libsonnet name disagree. A finding's `threshold` is the
number here, the alert compares the same metric against the same number, and a finding's
`runbook` is the anchor of the matching alert in docs/mixin.md (runbook_url_base + lower-cased
alert name, as rules/runbooks.libsonnet builds every alert's runbook_url). Which alert matches
which kind of finding each probe declares in its spec (probes/base.py Check).
"""

from __future__ import annotations

# config.libsonnet name -> value; tests compare every entry with config_defaults().
MIXIN_DEFAULTS: dict[str, object] = {}


def _mixin(name: str, value: float) -> float:
    MIXIN_DEFAULTS[name] = value
    return value


RUNBOOK_URL_BASE = "https://github.com/etcd-inspector/etcd-inspector/blob/main/docs/mixin.md#"
MIXIN_DEFAULTS["runbook_url_base"] = RUNBOOK_URL_BASE

# EtcdInspectorQuotaHeadroomLow: share (0..1) of the backend quota in use.
QUOTA_USED_RATIO = _mixin("quota_used_ratio_warning", 0.8)
# EtcdInspectorBigValues: values over the big-value size tolerated.
BIG_VALUES_MAX = int(_mixin("big_values_max", 0))
# The bigvalue probe's default size threshold (its `threshold_bytes` option).
BIG_VALUE_BYTES = int(_mixin("big_value_threshold_bytes", 100 * 1024))
# EtcdInspectorHotKey: writes per second to a single key.
HOT_KEY_WRITES_PER_SECOND = _mixin("hot_key_writes_per_second", 50)
# EtcdInspectorPrefixKeyGrowth: keys a prefix may gain within the window.
PREFIX_KEY_GROWTH_MAX = int(_mixin("prefix_key_growth_max", 10000))
PREFIX_KEY_GROWTH_WINDOW_SECONDS = 3600.0  # prefix_key_growth_window: '1h'
MIXIN_DEFAULTS["prefix_key_growth_window"] = "1h"
# EtcdInspectorCertificateExpiry: days left before a certificate expires (warning, critical).
CERT_EXPIRY_WARNING_DAYS = _mixin("certificate_expiry_warning_days", 21)
CERT_EXPIRY_CRITICAL_DAYS = _mixin("certificate_expiry_critical_days", 7)


def runbook_anchor(alert: str) -> str:
    """The anchor of an alert's runbook heading in docs/mixin.md."""
    return alert.lower()


def runbook_url(anchor: str | None) -> str | None:
    return RUNBOOK_URL_BASE + anchor if anchor else None
