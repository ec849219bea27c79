"""Drill group `nospace`: a 16 MiB backend quota filled with 256 KiB values until etcd raises
NOSPACE; writes then fail with ResourceExhausted. Healed the way the runbook says: delete,
compact, defragment, disarm. One cluster; see tests/drillkit.py."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import etcdctl
from drill_catalog import FINDINGS, NEVER
from drillkit import Expect, drill_stack, record_group, run_drill

pytestmark = [pytest.mark.etcd, pytest.mark.prometheus, pytest.mark.drills]
GROUP = "nospace"
QUOTA_BYTES = 16 << 20
FILL_VALUE_BYTES = 256 << 10
# The quota probe's projection from seconds of samples (the defaults want hours).
EXPORTER_CONFIG = """
inspection:
  probes:
    quota:
      projection_window_seconds: 30
      projection_max_samples: 30
      projection_min_span_seconds: 8
"""


def _put(url: str, key: str, value: bytes) -> bool:
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(value).decode()}).encode()  # fmt: skip
    req = urllib.request.Request(url + "/v3/kv/put", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status == 200 and b"error" not in resp.read()
    except urllib.error.HTTPError:
        return False


def test_the_backend_quota_exhausted(etcd_binary: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with drill_stack(
        GROUP, tmp_path, etcd_binary, quota_backend_bytes=QUOTA_BYTES,
        exporter_config=EXPORTER_CONFIG,
    ) as stack:  # fmt: skip
        fc = stack.fc
        url = fc.member(fc.leader()).client_url

        def fill() -> None:
            for i in range(4 * QUOTA_BYTES // FILL_VALUE_BYTES):
                if not _put(url, f"/drill/fill/{i:04d}", b"F" * FILL_VALUE_BYTES):
                    return
            raise AssertionError("the quota never ran out")

        def free() -> None:
            etcdctl(fc.cluster, "del", "--prefix", "/drill/fill/")
            status = json.loads(etcdctl(fc.cluster, "endpoint", "status", "-w", "json"))
            revision = max(s["Status"]["header"]["revision"] for s in status)
            etcdctl(fc.cluster, "compact", str(revision))
            etcdctl(fc.cluster, "defrag")
            etcdctl(fc.cluster, "alarm", "disarm")

        run_drill(
            stack, "quota exhausted (NOSPACE)", fill, free,
            [
                Expect("EtcdInspectorAlarmActive", "critical"),
                Expect("etcdDatabaseQuotaLowSpace", "critical"),
                # Every tier at once: the fill runs past the top one (85%).
                Expect("EtcdInspectorQuotaHeadroomLow", "info"),
                Expect("EtcdInspectorQuotaHeadroomLow", "warning"),
                Expect("EtcdInspectorQuotaHeadroomLow", "critical"),
                Expect("EtcdInspectorQuotaExhaustionProjected", "warning"),
                # Every put answers ResourceExhausted while the alarm is on.
                Expect("etcdHighNumberOfFailedGRPCRequests", "warning"),
                Expect("etcdHighNumberOfFailedGRPCRequests", "critical"),
            ],
            # The alarm is cluster-wide: every member is out of space.
            set(fc.names), FINDINGS[GROUP], NEVER.get(GROUP, ()),
            inspect_probes=("status", "quota"),
        )  # fmt: skip
    record_group(GROUP, time.monotonic() - started)
