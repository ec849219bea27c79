"""backup: the newest snapshot in each backup location is there, fresh, whole, holds the
cluster's data and (optionally) restores.

Locations and the age limit are the probe's options (`inspection.probes.backup`, overridden per
cluster in `clusters[].probes.backup`, or `--backup.location` and `--backup.max-age`); files
are read in a thread, page by page (backup/files.py, backup/bbolt.py), and a file is checked
once: the verdict is kept for as long as its size and mtime stay the same.
"Holds the cluster's data": its revision is one the cluster has reached, and a member counts as
many keys at that revision as the snapshot holds (unless the revision is compacted away). The
restore drill (option `restore_drill`, off by default) restores each new newest snapshot into a
throwaway etcd on loopback (backup/drill.py).

A location may also be a bucket, `s3://BUCKET/PREFIX` (backup/objects.py, backup/s3.py): the
listing says what is there and how old, the newest object is streamed once through the checksums
and the bbolt reader (backup/bucketcheck.py), and its verdict is kept while its size, time and
ETag stay the same. The location label is the URL as configured: credentials never are in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import Field

from etcd_inspector.backup.bucketcheck import (
    DEFAULT_FULL_CHECK_MAX_BYTES,
    drill_object,
    survey_bucket,
)
from etcd_inspector.backup.drill import restore_drill
from etcd_inspector.backup.files import (
    FileKey,
    SnapshotCheck,
    SnapshotFile,
    check_snapshot,
    file_key,
    find_snapshots,
)
from etcd_inspector.backup.locations import (
    BackupResult,
    Comparison,
    DataCheck,
    LocationState,
    RestoreDrill,
)
from etcd_inspector.backup.objects import is_s3
from etcd_inspector.backup.s3 import make_client
from etcd_inspector.config import NonEmptyStr, PositiveDuration, Section, unique
from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.deadline import call_timeout
from etcd_inspector.etcd.errors import EtcdError
from etcd_inspector.etcd.interfaces import KV
from etcd_inspector.probes.base import (
    CACHED,
    Check,
    Probe,
    ProbeContext,
    ProbeFlag,
    ProbeSpec,
    ReportContext,
)
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.format import duration, rfc3339, size, table
from etcd_inspector.report.view import (
    Cell,
    Facts,
    Format,
    Line,
    Look,
    PageSection,
    Table,
    ViewInput,
    ViewPart,
    text,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_MAX_AGE_SECONDS = 3600.0


class BackupOptions(Section):
    # Local directories (mounted volumes) or buckets (s3://BUCKET/PREFIX) holding the cluster's
    # snapshots; none: not configured. A location that does not exist is a finding at run
    # time, not a configuration error: a volume may be mounted after the exporter starts.
    locations: Annotated[tuple[NonEmptyStr, ...], unique("location", "locations")] = ()
    # How old the newest snapshot may be.
    max_age: PositiveDuration = DEFAULT_MAX_AGE_SECONDS
    # Restore each new newest snapshot into a throwaway single-member etcd on loopback.
    restore_drill: bool = False
    # The etcd binary for the drill; "" means $ETCD_BIN, else `etcd` on PATH. etcdutl (or
    # etcdctl on 3.4) is taken from beside it, else from PATH.
    etcd_binary: str = ""
    # Compare each snapshot's key count with the cluster's at the snapshot's revision.
    compare_keys: bool = True
    # S3-compatible endpoint for s3:// locations; "": AWS_ENDPOINT_URL(_S3), the AWS config
    # file's endpoint_url, else AWS. Credentials: the AWS environment, files or web identity.
    endpoint_url: str = ""
    # An object up to this size is read through the bbolt reader (spooled to a temporary
    # file); a bigger one is checked by its checksums and metadata only.
    full_check_max_bytes: int = Field(default=DEFAULT_FULL_CHECK_MAX_BYTES, gt=0)




class BackupProbe(Probe[BackupOptions, BackupResult]):
    def __init__(self, options: BackupOptions) -> None:
        super().__init__(options)
        # Verdicts by (path, size, mtime): a check that outlives a run's timeout still lands here.
        self._checks: dict[FileKey, SnapshotCheck] = {}
        self._drills: dict[FileKey, RestoreDrill] = {}
        # One S3 client for the probe's life (thread-safe; botocore refreshes credentials).
        self._s3: S3Client | None = None

    def _s3_client(self) -> S3Client:
        if self._s3 is None:
            self._s3 = make_client(self.options.endpoint_url)
        return self._s3

    def _check_and_keep(self, f: SnapshotFile) -> SnapshotCheck:
        found = check_snapshot(f)
        self._checks[file_key(f)] = found
        return found

    async def _bucket(self, location: str) -> tuple[LocationState, SnapshotCheck | None]:
        return await survey_bucket(
            location, self._s3_client, self._checks, self.options.full_check_max_bytes
        )

    async def _location(self, location: str) -> tuple[LocationState, SnapshotCheck | None]:
        if is_s3(location):
            return await self._bucket(location)
        try:
            files = await asyncio.to_thread(find_snapshots, location)
        except FileNotFoundError:
            return LocationState(location, False, 0, error="does not exist"), None
        except OSError as err:
            why = f"cannot be listed: {err.strerror or err}"
            return LocationState(location, True, 0, error=why), None
        if not files:
            return LocationState(location, True, 0), None
        newest = files[0]
        check = self._checks.get(file_key(newest)) or await asyncio.to_thread(
            self._check_and_keep, newest
        )
        return LocationState(location, True, len(files), newest=check), check

    async def run(self, ctx: ProbeContext) -> BackupResult:
        max_age = self.options.max_age
        if not self.options.locations:
            return BackupResult(max_age, (), time.time(), configured=False)
        states = []
        for location in self.options.locations:
            state, check = await self._location(location)
            if check is not None and check.whole and check.stats is not None:
                if self.options.compare_keys:
                    state = replace(state, data=await compare_with_cluster(ctx, check))
                if self.options.restore_drill:
                    state = replace(state, restore=await self._drill(check))
            states.append(state)
        newest = {file_key(s.newest.file) for s in states if s.newest is not None}
        self._checks = {k: v for k, v in self._checks.items() if k in newest}
        self._drills = {k: v for k, v in self._drills.items() if k in newest}
        return BackupResult(max_age, tuple(states), time.time())

    async def _drill(self, check: SnapshotCheck) -> RestoreDrill:
        key = file_key(check.file)
        if key not in self._drills:
            if is_s3(check.file.path):
                client = await asyncio.to_thread(self._s3_client)
                self._drills[key] = await drill_object(
                    client, check, self.options.etcd_binary, call_timeout(120.0, 0.9)
                )
            else:
                self._drills[key] = await restore_drill(
                    check, self.options.etcd_binary, call_timeout(120.0, 0.9)
                )
        return self._drills[key]

    # ----------------------------------------------------------------------- metrics

    def metrics(self, cluster: str, result: BackupResult) -> Iterable[Metric]:
        labels = ["cluster", "location"]

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, f"{doc} {CACHED}", labels=labels)

        found = gauge("etcd_inspector_backup_snapshots",
                      "Snapshot files found in the backup location (0: none, or the location "
                      "does not exist).")  # fmt: skip
        last = gauge("etcd_inspector_backup_last_timestamp_seconds",
                     "When the newest snapshot in the location was taken (from its name, else "
                     "its mtime).")  # fmt: skip
        size_bytes = gauge("etcd_inspector_backup_size_bytes", "Size of the newest snapshot.")
        valid = gauge("etcd_inspector_backup_valid",
                      "1 when the newest snapshot is whole (etcd's SHA-256 matches where present "
                      "and the bbolt file opens), else 0.")  # fmt: skip
        revision = gauge("etcd_inspector_backup_revision",
                         "Revision of the newest snapshot (as etcdctl snapshot status "
                         "reports it).")  # fmt: skip
        keys = gauge("etcd_inspector_backup_keys", "Live keys in the newest snapshot.")
        matches = gauge("etcd_inspector_backup_matches_cluster",
                        "1 when the cluster had the snapshot's key count at the snapshot's "
                        "revision, 0 when not (or the snapshot is ahead of the cluster); absent "
                        "when it cannot be compared (compacted).")  # fmt: skip
        restore = gauge("etcd_inspector_backup_restore_success",
                        "1 when the restore drill of the newest snapshot served its keys, else "
                        "0; absent unless the restore_drill option is on.")  # fmt: skip
        for s in result.locations:
            lv = [cluster, s.location]
            found.add_metric(lv, s.snapshots)
            if s.newest is None:
                continue
            last.add_metric(lv, s.newest.file.taken_at)
            size_bytes.add_metric(lv, s.newest.file.size)
            valid.add_metric(lv, 1 if s.newest.whole else 0)
            if s.newest.stats is not None:
                revision.add_metric(lv, s.newest.stats.revision)
                keys.add_metric(lv, s.newest.stats.live_keys)
            if s.data is not None and s.data.matches is not None:
                matches.add_metric(lv, 1 if s.data.matches else 0)
            if s.restore is not None:
                restore.add_metric(lv, 1 if s.restore.success else 0)
        yield from (found, last, size_bytes, valid, revision, keys, matches, restore)

    # ----------------------------------------------------------------------- report

    def findings(self, result: BackupResult, rc: ReportContext) -> Iterable[Finding]:
        return backup_findings(result, rc.cluster, time.time())

    def report_json(self, result: BackupResult | None, rc: ReportContext) -> dict[str, Any]:
        if result is None or not result.configured:
            return {"backup": None}
        return {"backup": backup_json(result, time.time())}

    def report_text(self, result: BackupResult | None, rc: ReportContext) -> list[str]:
        if result is None:
            return []
        if not result.configured:
            return ["Backups: no locations configured (--backup.location, probes.backup.locations)"]
        return backup_text(result, time.time())


# --------------------------------------------------------------------------- comparison


async def compare_with_cluster(ctx: ProbeContext, check: SnapshotCheck) -> DataCheck:
    """The snapshot's revision and key count against the cluster's, from the most advanced
    member that answers."""
    assert check.stats is not None
    topology = ctx.topology
    by_revision = sorted(
        (m for m in topology.answered if m.status is not None),
        key=lambda m: -(m.status.revision if m.status else 0),
    )
    clients: list[KV] = [
        c for m in by_revision for c in ctx.members if c.endpoint == m.endpoint
    ] or list(ctx.members)
    for client in clients:
        try:
            count, current = await client.count_keys(
                revision=check.stats.revision,
                timeout=call_timeout(client.request_timeout, 0.5),
            )
        except EtcdError as err:
            if err.kind is ErrorKind.COMPACTED:
                return DataCheck(Comparison.COMPACTED)
            if err.kind is ErrorKind.FUTURE_REVISION:
                return DataCheck(Comparison.AHEAD, topology.max_revision or None)
            continue
        comparison = Comparison.MATCH if count == check.stats.live_keys else Comparison.KEYS_DIFFER
        return DataCheck(comparison, current, count)
    return DataCheck(Comparison.UNKNOWN)


# --------------------------------------------------------------------------- report (pure)


def backup_findings(result: BackupResult, cluster: str, now: float) -> Iterable[Finding]:
    for s in result.locations:
        where = f"backup location {s.location}"
        if s.newest is None:
            why = s.error or "holds no snapshot"
            yield Finding(cluster, "backup_missing", f"{where} {why}", subject=s.location)
            continue
        newest = s.newest
        age = s.age(now) or 0.0
        if age > result.max_age:
            yield Finding(
                cluster, "backup_too_old",
                f"the newest snapshot in {where}, {newest.file.name}, is {duration(age)} old "
                f"(limit {duration(result.max_age)})",
                subject=s.location, value=age, threshold=result.max_age,
            )  # fmt: skip
        if not newest.whole:
            yield Finding(
                cluster, "backup_not_whole",
                f"the newest snapshot in {where}, {newest.file.name}, is not whole: "
                f"{newest.problem}",
                severity=Severity.CRITICAL, subject=s.location,
            )  # fmt: skip
        if s.data is not None and s.data.matches is False:
            yield Finding(
                cluster, "backup_data_mismatch",
                f"the newest snapshot in {where}, {newest.file.name}, "
                + _mismatch_text(s.data, newest),
                subject=s.location,
            )  # fmt: skip
        if s.restore is not None and not s.restore.success:
            yield Finding(
                cluster, "backup_restore_failed",
                f"the restore drill of {newest.file.name} ({where}) failed: {s.restore.problem}",
                subject=s.location,
            )  # fmt: skip


def _mismatch_text(data: DataCheck, check: SnapshotCheck) -> str:
    assert check.stats is not None
    if data.comparison is Comparison.AHEAD:
        return (f"is at revision {check.stats.revision}, ahead of the cluster "
                f"({data.cluster_revision}): it is another cluster's, or the cluster was "
                "restored from an older one")  # fmt: skip
    return (f"holds {check.stats.live_keys} keys at revision {check.stats.revision}, the "
            f"cluster had {data.cluster_keys} there")  # fmt: skip


def location_json(s: LocationState, now: float) -> dict[str, Any]:
    n = s.newest
    st = n.stats if n is not None else None
    return {
        "location": s.location,
        "exists": s.exists,
        "error": s.error,
        "snapshots": s.snapshots,
        "newest": None if n is None else {
            "path": n.file.path,
            "layout": n.file.layout.value,
            "taken_at": rfc3339(n.file.taken_at),
            "age_seconds": s.age(now),
            "size_bytes": n.file.size,
            "whole": n.whole,
            "problem": n.problem,
            "checksum": n.checksum.value,
            "revision": st.revision if st else None,
            "keys": st.live_keys if st else None,
            "total_entries": st.total_keys if st else None,
            "compact_revision": st.compact_revision if st else None,
            "check_seconds": round(n.check_seconds, 3),
            "note": n.note,
        },
        "cluster": None if s.data is None else {
            "comparison": s.data.comparison.value,
            "revision": s.data.cluster_revision,
            "keys_at_snapshot_revision": s.data.cluster_keys,
        },
        "restore": None if s.restore is None else {
            "success": s.restore.success,
            "seconds": round(s.restore.seconds, 3),
            "keys": s.restore.keys,
            "revision": s.restore.revision,
            "problem": s.restore.problem,
        },
    }  # fmt: skip


def backup_json(result: BackupResult, now: float) -> dict[str, Any]:
    return {
        "max_age_seconds": result.max_age,
        "locations": [location_json(s, now) for s in result.locations],
    }


def backup_text(result: BackupResult, now: float) -> list[str]:
    rows = []
    for s in result.locations:
        n = s.newest
        if n is None:
            rows.append([s.location, s.error or "no snapshot", None, None, None, None, None])
            continue
        st = n.stats
        verdict = "whole" if n.whole else f"NOT WHOLE: {n.problem}"
        if n.note:
            verdict += f" ({n.note})"
        if s.data is not None:
            verdict += f", cluster: {s.data.comparison.value}"
        if s.restore is not None:
            verdict += ", restore: " + ("ok" if s.restore.success else "FAILED")
        rows.append([
            s.location, n.file.name, duration(s.age(now) or 0.0), size(n.file.size),
            str(st.revision) if st else None, str(st.live_keys) if st else None, verdict,
        ])  # fmt: skip
    headers = ["LOCATION", "NEWEST", "AGE", "SIZE", "REVISION", "KEYS", "CHECK"]
    return [f"Backups (newest at most {duration(result.max_age)} old)", *table(headers, rows)]


def backups_view(v: ViewInput) -> list[ViewPart]:
    """Each location's newest snapshot: when taken, how big, and whether it checked out."""
    b = v.doc.get("backup")
    if b is None:
        if v.why is not None:
            return []
        where = "--backup.location, probes.backup.locations"
        none = text(f"no locations configured ({where})", Look.MUTED)
        return [PageSection("Backups", (Line("backups", (none,)),))]
    rows = []
    for loc in b["locations"]:
        n = loc["newest"]
        if n is None:
            missing = text(loc["error"] or "no snapshot", Look.BAD)
            rows.append((text(loc["location"], Look.CODE), missing, *(Cell(None),) * 5))
            continue
        verdict, bad = ("whole", False) if n["whole"] else (f"NOT WHOLE: {n['problem']}", True)
        if n.get("note"):
            verdict += f" ({n['note']})"
        if loc["cluster"] is not None:
            verdict += f", cluster: {loc['cluster']['comparison']}"
            bad = bad or loc["cluster"]["comparison"] in (Comparison.KEYS_DIFFER, Comparison.AHEAD)
        if loc["restore"] is not None:
            verdict += ", restore: " + ("ok" if loc["restore"]["success"] else "FAILED")
            bad = bad or not loc["restore"]["success"]
        old = (n["age_seconds"] or 0) > b["max_age_seconds"]
        rows.append((
            text(loc["location"], Look.CODE), text(n["path"].rsplit("/", 1)[-1], Look.CODE),
            Cell(n["taken_at"], Format.AGE, Look.BAD if old else Look.PLAIN),
            Cell(n["size_bytes"], Format.BYTES), text(n["revision"]), text(n["keys"]),
            text(verdict, Look.BAD if bad else Look.GOOD),
        ))  # fmt: skip
    headers = ("location", "newest", "taken", "size", "revision", "keys", "check")
    limit = Facts(
        "backup-limits", (("newest at most", Cell(b["max_age_seconds"], Format.SECONDS)),)
    )
    return [PageSection("Backups", (limit, Table("backups", headers, tuple(rows))))]


SPEC = ProbeSpec(
    name="backup",
    probe_type=BackupProbe,
    description="The newest snapshot in each backup location: there, fresh, whole, restorable.",
    options_type=BackupOptions,
    default_interval=300.0,
    default_timeout=240.0,
    cluster_wide=True,
    title="Backups",
    view=backups_view,
    checks=(
        Check("backup_missing", "EtcdInspectorBackupMissing"),
        Check(
            "backup_too_old",
            "EtcdInspectorBackupTooOld",
            Format.SECONDS,
            thresholds=("backup_max_age_seconds",),
        ),
        Check("backup_not_whole", "EtcdInspectorBackupNotWhole"),
        Check("backup_data_mismatch", "EtcdInspectorBackupDataMismatch"),
        Check("backup_restore_failed", "EtcdInspectorBackupRestoreFailed"),
    ),
    stale_seconds=3600,
    flags=(
        ProbeFlag(
            flag="--backup.location",
            option="locations",
            type=str,
            metavar="DIR|s3://BUCKET/PREFIX",
            help="A directory or bucket holding the cluster's snapshots, for the backup probe "
            "(repeatable).",
            repeatable=True,
        ),
        ProbeFlag(
            flag="--backup.max-age",
            option="max_age",
            type=str,
            metavar="DURATION",
            help="How old the newest snapshot may be (default: 1h).",
        ),
    ),
)
