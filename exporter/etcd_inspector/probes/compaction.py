"""Revisions since compaction: how much history etcd keeps (pure; the consistency probe's).

etcd keeps every revision until it compacts; with no auto-compaction a few keys rewritten often
fill the quota (backend.ai#13752). HashKV answers with the member's compact_revision, and the
consistency probe already calls HashKV on every member, so the number costs no extra call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from etcd_inspector.etcd.types import MemberStatus
from etcd_inspector.probes.base import Check, ReportContext
from etcd_inspector.report.findings import Finding, Severity


class MemberFacts(Protocol):
    """What a member told the consistency probe (its MemberFacts), as far as this needs."""

    @property
    def status(self) -> MemberStatus | None: ...

    @property
    def hash_compact_revision(self) -> int | None: ...

CHECK = Check(
    "compaction_stalled", "EtcdInspectorCompactionStalled",
    thresholds=("revisions_since_compaction_max",),
)  # fmt: skip

HELP = (
    "Current revision minus the compacted revision (from HashKV's compact_revision): the "
    "history etcd keeps until the next compaction; absent without a HashKV answer."
)


def since(members: Iterable[MemberFacts]) -> int | None:
    """The newest current revision minus the newest compacted revision a member's HashKV
    answered; None without a Status and a HashKV answer."""
    facts = list(members)
    current = [f.status.revision for f in facts if f.status is not None]
    compacted = [f.hash_compact_revision for f in facts if f.hash_compact_revision is not None]
    if not current or not compacted:
        return None
    # etcd answers -1 before its first compaction: every revision since 1 is kept.
    return max(current) - max(0, max(compacted))


def findings(since: int | None, rc: ReportContext) -> Iterable[Finding]:
    limit = rc.thresholds.revisions_since_compaction_max
    if since is not None and since > limit:
        yield Finding(
            rc.cluster, CHECK.kind,
            f"{since} revisions since the last compaction (limit {limit}): history grows "
            "until etcd compacts (--auto-compaction-retention, or the API server's compaction)",
            severity=Severity.WARNING, value=since, threshold=limit,
        )  # fmt: skip
