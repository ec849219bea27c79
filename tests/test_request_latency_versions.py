"""The overview's "Request latency p99" panel on every supported etcd version (issue 19), with
the real promtool evaluating the rendered panel's own query.

Three members, one per kind of etcd, the series each exposes (names, labels and bucket bounds
from etcd's source):
  m1  etcd 3.7: etcd_server_request_duration_seconds{type,success} (etcd-io/etcd v3.7.0
      server/etcdserver/metrics.go requestDurationSec, ExponentialBuckets(0.001, 2, 14);
      v3_server.go observes it per request type), always on;
  m2  etcd 3.5 with --metrics=extensive: grpc_server_handling_seconds (go-grpc-prometheus'
      default buckets, as in the mixin's existing etcdGRPCRequestsSlow cases);
  m3  etcd 3.4/3.5 without it: neither, only etcd_disk_backend_commit_duration_seconds
      (v3.5 server/storage/backend/metrics.go, ExponentialBuckets(0.001, 2, 14)).
Every member also has the commit histogram: the fallback must not add a second line for m1/m2.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from test_rules_promtool import promtool

pytestmark = pytest.mark.promtool

REPO = Path(__file__).resolve().parents[1]
SEL = 'job="etcd-inspector", instance="etcd-inspector:9979", cluster="prod"'


def panel_expr(title: str) -> str:
    dashboard = json.loads((REPO / "dashboards" / "etcd-inspector-overview.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == title]
    (target,) = panel["targets"]
    expr: str = target["expr"]
    return (expr.replace("$cluster", "prod").replace("$member", ".*")
            .replace("$__rate_interval", "5m"))  # fmt: skip


def buckets(name: str, member: str, labels: str, bounds: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"series": f'{name}_bucket{{{SEL}, member="{member}"{labels}, le="{le}"}}',
         "values": values}
        for le, values in bounds.items()
    ]  # fmt: skip


SLOW_256_512 = {"0.128": "0x20", "0.256": "0x20", "0.512": "0+10x20", "+Inf": "0+10x20"}
GRPC_250_500 = {"0.1": "0x20", "0.25": "0x20", "0.5": "0+10x20", "+Inf": "0+10x20"}
FAST_COMMIT = {"0.002": "0+10x20", "+Inf": "0+10x20"}


def test_the_request_latency_panel_has_one_line_per_member_on_every_version(
    tmp_path: Path,
) -> None:
    series = [
        *buckets("etcd_server_request_duration_seconds", "m1", ', type="Put", success="true"',
                 SLOW_256_512),
        *buckets("grpc_server_handling_seconds", "m2",
                 ', grpc_method="Range", grpc_service="etcdserverpb.KV", grpc_type="unary"',
                 GRPC_250_500),
        *buckets("etcd_disk_backend_commit_duration_seconds", "m3", "", SLOW_256_512),
        *buckets("etcd_disk_backend_commit_duration_seconds", "m1", "", FAST_COMMIT),
        *buckets("etcd_disk_backend_commit_duration_seconds", "m2", "", FAST_COMMIT),
    ]  # fmt: skip
    (tmp_path / "empty.yaml").write_text("groups: []\n")
    tests = {
        "rule_files": ["empty.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [{
                "expr": panel_expr("Request latency p99"),
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": '{member="m1", type="Put"}', "value": 0.50944},
                    {"labels": '{member="m2", grpc_method="Range", type="Range"}',
                     "value": 0.4975},
                    {"labels": '{member="m3", type="backend commit"}', "value": 0.50944},
                ],
            }],
        }],
    }  # fmt: skip
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    out = subprocess.run([promtool(), "test", "rules", "test.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
