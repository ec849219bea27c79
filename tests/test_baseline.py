"""`inspect --baseline BEFORE.json`: the pure comparison (render/baseline.py), then the command
on a real cluster before and after a change."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import etcdctl
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.render.baseline import (
    BaselineError,
    Limits,
    compare,
    comparison_text,
    load_baseline,
)
from etcd_inspector.report import thresholds

MiB = 1024 * 1024


def member(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "up": True, "leader": name == "m1", "version": "3.4.23",
            "db_size_bytes": 20 * MiB, **kw}  # fmt: skip


def finding(check: str, message: str, subject: str | None = None) -> dict[str, Any]:
    return {"check": check, "member": None, "subject": subject, "message": message,
            "severity": "info"}  # fmt: skip


def report(**cluster: Any) -> dict[str, Any]:
    doc = {
        "name": "prod",
        "members": [member("m1"), member("m2"), member("m3")],
        "leader": "m1",
        "keyspace": {"prefixes": [{"prefix": "/registry/pods/", "keys": 4000, "bytes": 1}]},
        "findings": [],
    }
    doc.update(cluster)
    return {"schema": 1, "started_at": "2026-12-07T12:00:00.000Z", "clusters": [doc]}


# --------------------------------------------------------------------------- pure


def test_an_unchanged_report_has_no_changes() -> None:
    c = compare(report(), report())
    assert c.changes == () and not c.worse
    assert comparison_text(c, "before.json") == [
        "Changes since before.json (saved 2026-12-07T12:00:00.000Z)", "  none"
    ]


def test_new_and_resolved_findings_are_known_by_check_member_and_subject() -> None:
    before = report(findings=[finding("quota", "m1 uses 70%"), finding("big_value", "v", "/a")])
    # The same quota finding with another message is not new; /a resolved, /b new.
    after = report(findings=[finding("quota", "m1 uses 72%"), finding("big_value", "w", "/b")])
    c = compare(before, after)
    assert [(x.kind, x.subject, x.worse) for x in c.changes] == [
        ("finding_new", "big_value", True), ("finding_resolved", "big_value", False)
    ]  # fmt: skip
    assert c.worse


def test_members_removed_or_down_are_worse_added_and_version_changes_are_listed() -> None:
    before = report()
    after = report(
        members=[member("m1", version="3.5.17"), member("m2", up=False), member("m4")],
        leader="m4",
    )
    c = compare(before, after)
    got = {(x.kind, x.subject): (x.before, x.after, x.worse) for x in c.changes}
    assert got == {
        ("member_added", "m4"): (None, "m4", False),
        ("member_removed", "m3"): ("m3", None, True),
        ("member_down", "m2"): (True, False, True),
        ("version_changed", "m1"): ("3.4.23", "3.5.17", False),
        ("leader_moved", "m4"): ("m1", "m4", False),
    }


def test_only_a_leader_move_or_an_upgrade_is_not_worse() -> None:
    after = report(members=[member("m1", version="3.5.17"), member("m2"), member("m3")],
                   leader="m2")  # fmt: skip
    c = compare(report(), after)
    assert [x.kind for x in c.changes] == ["version_changed", "leader_moved"] and not c.worse


def test_prefix_and_db_size_deltas_beyond_the_limits() -> None:
    after = report(
        members=[member("m1", db_size_bytes=23 * MiB), member("m2", db_size_bytes=20 * MiB + 5),
                 member("m3", db_size_bytes=10 * MiB)],
        keyspace={"prefixes": [{"prefix": "/registry/pods/", "keys": 4900, "bytes": 1},
                               {"prefix": "/bulk/", "keys": 5000, "bytes": 1}]},
    )  # fmt: skip
    c = compare(report(), after)
    got = {(x.kind, x.subject): (x.before, x.after, x.worse) for x in c.changes}
    assert got == {
        ("db_size", "m1"): (20 * MiB, 23 * MiB, True),
        ("db_size", "m3"): (20 * MiB, 10 * MiB, False),  # a defragmentation
        ("prefix_keys", "/bulk/"): (0, 5000, True),
    }
    bulk = next(x for x in c.changes if x.subject == "/bulk/")
    assert bulk.message == "new prefix /bulk/: 0 -> 5000 keys (+5000; limit ±1000)"
    looser = compare(report(), after, Limits(prefix_keys_delta=10_000, db_size_delta_bytes=4 * MiB))
    assert [(x.kind, x.subject) for x in looser.changes] == [("db_size", "m3")]
    text = comparison_text(c, "b.json")
    assert text[1].startswith("  WORSE [prod] member m1: database 20.0 MiB -> 23.0 MiB (+3.0 MiB")
    assert text[-1] == "  verdict: worse (2 worse, 3 changes)"


def test_a_lease_count_that_grew_past_the_limit_is_worse() -> None:
    """One run sees no growth rate: a leak shows as a count that grew since the saved report
    (the alert EtcdInspectorLeasesGrowing watches the rate)."""
    before = report(leases={"count": 200, "limit": 10_000})
    grown = compare(before, report(leases={"count": 1500, "limit": 10_000}))
    assert [(x.kind, x.subject, x.before, x.after, x.worse) for x in grown.changes] == [
        ("leases", None, 200, 1500, True)
    ]
    assert grown.changes[0].message == "leases: 200 -> 1500 active (+1300; limit ±1000)"
    assert comparison_text(grown, "b.json")[1] == (
        "  WORSE [prod] leases: 200 -> 1500 active (+1300; limit ±1000)"
    )
    assert grown.as_json("b.json")["changes"][0]["kind"] == "leases"
    # within the limit: not named; revoked leases: named, not worse; not counted: nothing
    assert compare(before, report(leases={"count": 1200, "limit": 10_000})).changes == ()
    (fell,) = compare(report(leases={"count": 5000, "limit": 10_000}), before).changes
    assert (fell.kind, fell.worse) == ("leases", False)
    assert compare(before, report(leases=None)).changes == ()
    assert compare(report(), report(leases={"count": 9000, "limit": 10_000})).changes == ()


def test_the_limits_are_the_mixin_values_and_a_values_file_moves_them(tmp_path: Path) -> None:
    """config.libsonnet's baseline_* values (mixin_defaults.json), overridden by the values
    file `--mixin.values` takes, like every other threshold."""
    defaults = thresholds.packaged_defaults()
    assert Limits() == Limits.of(thresholds.DEFAULT) == Limits(
        prefix_keys_delta=defaults["baseline_prefix_keys_delta"],
        db_size_delta_bytes=defaults["baseline_db_size_delta_bytes"],
        leases_delta=defaults["baseline_leases_delta"],
    ) == Limits(1000, MiB, 1000)  # fmt: skip
    values = tmp_path / "values.yaml"
    values.write_text("baseline_prefix_keys_delta: 100\nbaseline_leases_delta: 5000\n")
    limits = Limits.of(thresholds.load_thresholds(str(values)))
    assert limits == Limits(100, MiB, 5000)
    after = report(
        keyspace={"prefixes": [{"prefix": "/registry/pods/", "keys": 4500, "bytes": 1}]},
        leases={"count": 3000, "limit": 10_000},
    )
    before = report(leases={"count": 100, "limit": 10_000})
    assert [x.kind for x in compare(before, after).changes] == ["leases"]
    assert [x.kind for x in compare(before, after, limits).changes] == ["prefix_keys"]


def test_no_keyspace_scan_on_one_side_compares_no_prefixes() -> None:
    c = compare(report(), report(keyspace=None))
    assert c.changes == ()


def test_a_cluster_gone_from_the_report_is_worse() -> None:
    after = report()
    after["clusters"][0]["name"] = "other"
    c = compare(report(), after)
    assert [(x.kind, x.cluster, x.worse) for x in c.changes] == [("cluster_missing", "prod", True)]


def test_the_json_form() -> None:
    after = copy.deepcopy(report())
    after["clusters"][0]["leader"] = "m2"
    doc = compare(report(), after).as_json("before.json")
    assert doc == {
        "file": "before.json", "started_at": "2026-12-07T12:00:00.000Z", "worse": False,
        "changes": [{"cluster": "prod", "kind": "leader_moved", "subject": "m2", "before": "m1",
                     "after": "m2", "worse": False, "message": "leader moved: m1 -> m2"}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read: No such file or directory"),
        ("{", "not JSON: "),
        ('{"schema": 1}', 'not an `inspect --output json` report (no "clusters" list)'),
    ],
)
def test_an_unusable_baseline_is_one_line(tmp_path: Path, content: str | None, message: str):
    path = tmp_path / "before.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BaselineError) as err:
        load_baseline(str(path))
    assert str(err.value).startswith(f"--baseline {path}: {message}")


# --------------------------------------------------------------------------- real cluster


def inspect(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("etcd-inspector")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "etcd_inspector"]
    return subprocess.run(
        [*cmd, "inspect", "--etcd.endpoints", ",".join(cluster.endpoints), "--no-progress",
         *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.etcd
def test_baseline_on_a_real_cluster_before_and_after_a_change(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    for i in range(20):
        etcdctl(etcd_cluster, "put", f"/app/config/{i}", "x" * 100)
    saved = inspect(etcd_cluster, "--output", "json")
    assert saved.returncode in (0, 1), saved.stderr
    before = tmp_path / "before.json"
    before.write_text(saved.stdout)

    same = inspect(etcd_cluster, "--baseline", str(before))
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.rstrip().endswith("Changes since " + str(before) + " (saved "
                                         + json.loads(saved.stdout)["started_at"] + ")\n  none")

    # The change: one 1 MiB value and 5,000 keys under a new prefix.
    etcdctl(etcd_cluster, "put", "/blobs/huge", input=b"v" * MiB)
    for first in range(0, 5000, 100):
        ops = "".join(f"put /bulk/load/{i} {i}\n" for i in range(first, first + 100))
        etcdctl(etcd_cluster, "txn", input=f"\n{ops}\n\n".encode())

    text = inspect(etcd_cluster, "--baseline", str(before))
    assert text.returncode == 1, text.stdout + text.stderr
    worse = [line for line in text.stdout.splitlines() if line.startswith("  WORSE ")]
    assert any("new finding: value of /blobs/huge is 1.0 MiB" in line for line in worse), worse
    assert any("new prefix /bulk/load/: 0 -> 5000 keys" in line for line in worse), worse

    doc = json.loads(inspect(etcd_cluster, "--baseline", str(before), "--output", "json").stdout)
    assert doc["exit_code"] == 1 and doc["baseline"]["worse"] is True
    kinds = {(c["kind"], c["subject"]) for c in doc["baseline"]["changes"] if c["worse"]}
    assert ("finding_new", "big_value") in kinds and ("prefix_keys", "/bulk/load/") in kinds

    # The limits are mixin values: a values file that tolerates 10,000 new keys and 64 MiB no
    # longer names the prefix, and one that tolerates 2 new leases names the 5 granted since.
    for _ in range(5):
        etcdctl(etcd_cluster, "lease", "grant", "600")
    values = tmp_path / "values.yaml"
    values.write_text("baseline_prefix_keys_delta: 10000\nbaseline_db_size_delta_bytes: 67108864\n"
                      "baseline_leases_delta: 2\n")  # fmt: skip
    moved = inspect(etcd_cluster, "--baseline", str(before), "--mixin.values", str(values),
                    "--output", "json")  # fmt: skip
    changes = json.loads(moved.stdout)["baseline"]["changes"]
    named = {(c["kind"], c["subject"]) for c in changes}
    assert ("prefix_keys", "/bulk/load/") not in named and ("leases", None) in named, changes
    (leases,) = [c for c in changes if c["kind"] == "leases"]
    assert (leases["after"] - leases["before"], leases["worse"]) == (5, True), leases
