"""hotkeys: a continuous watch on the keyspace counting writes per prefix and the hottest keys.

The scheduler calls run() once per interval with a deadline, but a watch lives for hours, so the
watch runs in background tasks (one per watched range) that the cluster's supervisor keeps
alive: started by the first run(), restarted with backoff if one dies, cancelled by close().
run() itself only snapshots the counters into a frozen result.

Each range's watcher streams from one member, preferring a follower so the leader does not
also carry the watch. When the stream breaks (member down, keepalive failure) or stalls, it
moves to the next member and resumes from the last revision it saw + 1, so no event is lost or
counted twice. If etcd compacted that revision meanwhile, the events in between are gone: the
watcher counts a missed window and resumes from the compaction revision, the oldest one left.

Per-key state is only the Space-Saving sketch (`capacity` counters, see spacesaving.py); the
prefix counters are bounded by `max_prefixes` (beyond it, `<other>`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from etcd_inspector.cluster.supervisor import Supervisor
from etcd_inspector.etcd.ranges import prefix_range_end
from etcd_inspector.keyspace.prefixes import PrefixRules
from etcd_inspector.probes.base import (
    CACHED,
    Check,
    InspectMode,
    Probe,
    ProbeContext,
    ProbeSpec,
    ReportContext,
)
from etcd_inspector.probes.hotkeys.counters import WriteCounters
from etcd_inspector.probes.hotkeys.model import (
    HotKeysOptions,
    HotKeysResult,
    WatchBehind,
    WatchUnavailable,
)
from etcd_inspector.probes.hotkeys.watch import (
    CATCH_UP_SECONDS,
    RangeWatcher,
    behind_by,
    catch_up_target,
    max_known_revision,
)
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.format import table
from etcd_inspector.report.view import (
    Cell,
    Format,
    Look,
    PageSection,
    Table,
    ViewInput,
    ViewPart,
    text,
)

log = logging.getLogger(__name__)

# Reconnecting to another member takes well under this; a run in the middle of a failover still
# succeeds, a watch that stays down fails the run (probe_success 0).
DOWN_GRACE_SECONDS = 5.0

# Supervisor task names of the watchers: one per watched range.
TASK_PREFIX = "hotkeys/watch-"


# --------------------------------------------------------------------------- the probe


class HotKeysProbe(Probe[HotKeysOptions, HotKeysResult]):
    def __init__(self, options: HotKeysOptions) -> None:
        super().__init__(options)
        rules = PrefixRules(depth=options.prefix_depth)
        self.counters = WriteCounters(options, rules, time.monotonic())
        self.watchers: list[RangeWatcher] = []
        self._supervisor: Supervisor | None = None
        # (status round taken at, its highest member revision), oldest first: the revisions a
        # healthy watch must have reached by now (watch.py's catch_up_target).
        self._checkpoints: list[tuple[float, int]] = []

    def _ranges(self) -> list[tuple[bytes, bytes]]:
        if not self.options.prefixes:
            return [(b"\0", b"\0")]
        return [(p.encode(), prefix_range_end(p.encode())) for p in self.options.prefixes]

    def _ensure_watching(self, ctx: ProbeContext) -> None:
        """Start a watcher per range, or restart one that died (a bug: the supervisor logs it,
        counts a restart and backs off)."""
        if not self.watchers:
            self.watchers = [
                RangeWatcher(key, end, self.counters, self.options, ctx.cluster)
                for key, end in self._ranges()
            ]
        self._supervisor = ctx.supervisor or self._supervisor or Supervisor(ctx.cluster)
        for i, watcher in enumerate(self.watchers):
            watcher.ctx = ctx
            self._supervisor.spawn(f"{TASK_PREFIX}{i}", watcher.run_forever)

    async def run(self, ctx: ProbeContext) -> HotKeysResult:
        self._ensure_watching(ctx)
        # The first run waits for the first stream; the scheduler's deadline bounds the wait.
        await asyncio.gather(*(w.settled.wait() for w in self.watchers))
        now = time.monotonic()
        snapshot = self.snapshot(ctx, now)
        # A failed run still exports what the watch has counted, and so its lag.
        partial = snapshot if snapshot.revision is not None else None
        for w in self.watchers:
            if w.connected:
                continue
            down_for = now - w.down_since if w.down_since is not None else 0.0
            if w.last_seen is None or down_for >= DOWN_GRACE_SECONDS:
                raise WatchUnavailable(
                    f"watch down for {down_for:.0f}s: {w.last_error or 'not started'}", partial
                )
        target = self._catch_up_target(ctx)
        for w in self.watchers:
            if not w.whole_keyspace:
                continue  # its last_seen moves only with its own writes (see watch.py)
            owed = behind_by(last_seen=w.last_seen, catching_up_to=w.catching_up_to,
                             target=target)  # fmt: skip
            if owed:
                why = (
                    f"replaying a backlog up to revision {w.catching_up_to}"
                    if w.catching_up_to > (w.last_seen or 0)
                    else f"the cluster was at revision {target} {CATCH_UP_SECONDS:g}s ago"
                )
                raise WatchBehind(
                    f"watch behind by {owed} revisions: seen up to {w.last_seen}, {why}", partial
                )
        return snapshot

    def _catch_up_target(self, ctx: ProbeContext) -> int:
        """Record this status round, forget those no longer needed, return the target."""
        topology = ctx.topology
        if topology.known and topology.max_revision > 0 and (
            not self._checkpoints or topology.taken_at > self._checkpoints[-1][0]
        ):
            self._checkpoints.append((topology.taken_at, topology.max_revision))
        now = time.time()
        old_enough = [
            i for i, (at, _) in enumerate(self._checkpoints) if at <= now - CATCH_UP_SECONDS
        ]
        if old_enough:
            del self._checkpoints[: old_enough[-1]]  # keep the newest one old enough, and later
        return catch_up_target(self._checkpoints, now)

    def snapshot(self, ctx: ProbeContext, now: float) -> HotKeysResult:
        seen = [w.last_seen for w in self.watchers]
        revision = None if not seen or None in seen else min(s for s in seen if s is not None)
        lag = None
        if revision is not None and not self.options.prefixes:
            # A resumed stream knows its member's revision before the next status round does.
            known = max(
                [max_known_revision(ctx.topology), *(w.catching_up_to for w in self.watchers)]
            )
            lag = max(0, known - revision) if known else None
        c = self.counters
        return HotKeysResult(
            prefix_writes=c.prefix_writes(),
            hot_keys=c.hot_keys(now, ctx.key_labels, ctx.sensitive_prefixes),
            events_total=c.events_total,
            revision=revision,
            lag_revisions=lag,
            missed_windows_total=c.missed_windows_total,
            missed_revisions_total=c.missed_revisions_total,
            restarts_total=c.restarts_total + self._watcher_deaths(),
            watched_endpoints=tuple(w.endpoint for w in self.watchers if w.endpoint),
            sketch_entries=len(c.sketch),
            key_writes=c.key_writes(ctx.key_labels, ctx.sensitive_prefixes),
            events_per_second=c.sketch.total_rate(now),
            noop_writes=c.noop_writes(now, ctx.key_labels, ctx.sensitive_prefixes),
            noop_key_writes=c.noop_key_writes(ctx.key_labels, ctx.sensitive_prefixes),
            noop_writes_total=c.noop_total if self.options.noop_writes else None,
        )

    def _watcher_deaths(self) -> int:
        """Watcher tasks the supervisor restarted (only a bug ends one)."""
        if self._supervisor is None:
            return 0
        return sum(n for t, n in self._supervisor.restarts.items() if t.startswith(TASK_PREFIX))

    async def close(self) -> None:
        """Stop watching; the counters and last seen revisions stay, so a later run() resumes."""
        if self._supervisor is not None:
            await self._supervisor.stop(TASK_PREFIX)
        for w in self.watchers:
            w.endpoint = None
            w.settled = asyncio.Event()
            w.down_since = time.monotonic()

    def metrics(self, cluster: str, result: HotKeysResult) -> Iterable[Metric]:
        writes = CounterMetricFamily(
            "etcd_inspector_prefix_writes",
            "Write events seen by the exporter's watch, per key prefix and operation (put or "
            f"delete), since the exporter started. {CACHED}",
            labels=["cluster", "prefix", "op"],
        )
        for pw in result.prefix_writes:
            writes.add_metric([cluster, pw.prefix, pw.op], pw.count)
        hot = GaugeMetricFamily(
            "etcd_inspector_hot_key_writes_per_second",
            "Recent write rate of the hottest keys (top-N by an exponentially decayed rate; "
            f"a lower bound from a Space-Saving sketch). {CACHED}",
            labels=["cluster", "key"],
        )
        for hk in result.hot_keys:
            hot.add_metric([cluster, hk.key], hk.writes_per_second)
        events = CounterMetricFamily(
            "etcd_inspector_watch_events",
            f"Events received by the exporter's watch. {CACHED}",
            labels=["cluster"],
        )
        events.add_metric([cluster], result.events_total)
        missed = CounterMetricFamily(
            "etcd_inspector_watch_missed_windows",
            "Times the watch could not resume where it stopped because the revision was "
            f"compacted, so events were missed. {CACHED}",
            labels=["cluster"],
        )
        missed.add_metric([cluster], result.missed_windows_total)
        restarts = CounterMetricFamily(
            "etcd_inspector_watch_restarts",
            f"Times the watch broke or stalled and was restarted. {CACHED}",
            labels=["cluster"],
        )
        restarts.add_metric([cluster], result.restarts_total)
        yield from (writes, hot, events, missed, restarts)
        if result.noop_writes is not None:
            noop = GaugeMetricFamily(
                "etcd_inspector_noop_writes_per_second",
                "Recent rate of rewrites that left a key's value unchanged, for the top keys "
                "(the hot-key probe's noop_writes option; keys labelled as the hot keys are). "
                + CACHED,
                labels=["cluster", "key"],
            )
            for hk in result.noop_writes:
                noop.add_metric([cluster, hk.key], hk.writes_per_second)
            yield noop
        if result.revision is not None:
            revision = GaugeMetricFamily(
                "etcd_inspector_watch_revision",
                f"The revision up to which the watch has seen every event. {CACHED}",
                labels=["cluster"],
            )
            revision.add_metric([cluster], result.revision)
            yield revision
        if result.lag_revisions is not None:
            lag = GaugeMetricFamily(
                "etcd_inspector_watch_lag_revisions",
                "Highest member revision (status probe) minus the revision the watch has seen "
                f"up to. {CACHED}",
                labels=["cluster"],
            )
            lag.add_metric([cluster], result.lag_revisions)
            yield lag

    # ----------------------------------------------------------------------- report

    def findings(self, result: HotKeysResult, rc: ReportContext) -> Iterable[Finding]:
        """A key written faster than the alert's limit (EtcdInspectorHotKey), by key."""
        doc = self.report_json(result, rc)["hot_keys"]
        limit = rc.thresholds.hot_key_writes_per_second
        for k in doc["keys"] if doc else ():
            if k["writes_per_second"] > limit:
                yield Finding(
                    rc.cluster, "hot_key",
                    f"key {k['key']} is written {k['writes_per_second']:.1f} times a second "
                    f"(> {limit:g}/s, {doc['rate_basis']})",
                    severity=Severity.WARNING, subject=k["key"], value=k["writes_per_second"],
                    threshold=limit,
                )  # fmt: skip

    def report_json(self, result: HotKeysResult | None, rc: ReportContext) -> dict[str, Any]:
        if result is None or (rc.watch_seconds is None and not rc.live):
            return {"hot_keys": None}
        r, window = result, rc.watch_seconds
        decay = self.options.rate_window_seconds
        if window is None:  # the exporter's continuous watch: decayed rates
            keys = [(hk.key, hk.writes_per_second) for hk in r.hot_keys]
            per_second = r.events_per_second
            basis = f"decayed rate, time constant {decay:g}s"
        else:  # inspect --watch: what the window counted, over the window
            keys = [(k, n / window) for k, n in r.key_writes if n / window >= self.options.min_rate]
            per_second = r.events_total / window
            basis = f"writes counted in the {window:g}s window / {window:g}s"
        return {
            "hot_keys": {
                "watch_seconds": window,
                # A window shorter than the decay's time constant: a burst weighs a lot.
                "short_window": window is not None and window < decay,
                "rate_basis": basis,
                "threshold_writes_per_second": rc.thresholds.hot_key_writes_per_second,
                "events": r.events_total,
                "events_per_second": round(per_second, 3) if per_second is not None else None,
                "revision": r.revision,
                "lag_revisions": r.lag_revisions,
                # Resumes that found their revision compacted, and the revisions so skipped.
                "missed_windows": r.missed_windows_total,
                "missed_revisions": r.missed_revisions_total,
                "restarts": r.restarts_total,
                # The members the watch streams from (it leaves one without a leader or lagging).
                "watched_members": [rc.member(e) for e in r.watched_endpoints],
                "keys": [{"key": k, "writes_per_second": round(rate, 3)} for k, rate in keys],
                # Rewrites with an unchanged value (None: the noop_writes option is off).
                "noop_writes": noop_json(r, window),
                "prefixes": [
                    {"prefix": p, "puts": puts, "deletes": dels}
                    for p, puts, dels in prefix_write_totals(r)
                ],
            }
        }

    def report_text(self, result: HotKeysResult | None, rc: ReportContext) -> list[str]:
        h = self.report_json(result, rc)["hot_keys"]
        if h is None:
            return []
        if h["watch_seconds"] is None:
            lines = [f"Hot keys ({h['rate_basis']})"]
        else:
            lines = [
                f"Hot keys (watched {h['watch_seconds']:g}s: {h['events']} writes, "
                f"{h['events_per_second']:.1f}/s)"
            ]
        if h["missed_windows"]:
            lines.append(
                f"  missed {h['missed_revisions']} revisions compacted before the watch read them "
                f"({h['missed_windows']} windows): the counts are low by that much at most"
            )
        if h["short_window"]:
            lines.append(
                f"  short window: rates are writes counted / {h['watch_seconds']:g}s; "
                f"watch {self.options.rate_window_seconds:g}s or longer for steadier rates"
            )
        rows = [[f"{k['writes_per_second']:.1f}", k["key"]] for k in h["keys"]]
        lines += table(["WRITES/S", "KEY"], rows) if rows else ["  (no key over the minimum rate)"]
        noop = h["noop_writes"]
        if noop is not None:
            rows = [[f"{k['writes_per_second']:.2f}", k["key"]] for k in noop["keys"]]
            lines += ["", f"No-op rewrites (value unchanged): {noop['total']}"]
            lines += table(["REWRITES/S", "KEY"], rows) if rows else ["  (none)"]
        rows = [[p["prefix"], p["puts"], p["deletes"]] for p in h["prefixes"][: self.options.top_n]]
        if rows:
            lines += ["", *table(["PREFIX", "PUTS", "DELETES"], rows)]
        return lines


def noop_json(r: HotKeysResult, window: float | None) -> dict[str, Any] | None:
    """The no-op rewrites: decayed rates in the exporter, counted / window in `inspect`."""
    if r.noop_writes is None:
        return None
    if window is None:
        keys = [(hk.key, hk.writes_per_second) for hk in r.noop_writes]
    else:
        keys = [(k, n / window) for k, n in r.noop_key_writes]
    return {
        "total": r.noop_writes_total,
        "keys": [{"key": k, "writes_per_second": round(rate, 3)} for k, rate in keys],
    }


def prefix_write_totals(result: HotKeysResult) -> list[tuple[str, int, int]]:
    """(prefix, puts, deletes), most writes first."""
    totals: dict[str, list[int]] = {}
    for pw in result.prefix_writes:
        totals.setdefault(pw.prefix, [0, 0])[pw.op == "delete"] += pw.count
    rows = [(p, puts, dels) for p, (puts, dels) in totals.items() if puts or dels]
    return sorted(rows, key=lambda r: (-(r[1] + r[2]), r[0]))


TOP_ROWS = 10


def hot_keys_view(v: ViewInput) -> list[ViewPart]:
    """The hottest keys (over the alert's rate in red), beside the keyspace scan's tables."""
    hk = v.doc.get("hot_keys")
    if hk is None:
        return []
    limit = hk.get("threshold_writes_per_second")
    rows = tuple(
        (text(k["key"], Look.KEY),
         Cell(k["writes_per_second"], Format.RATE,
              Look.BAD if limit is not None and k["writes_per_second"] > limit else Look.PLAIN))
        for k in hk["keys"][:TOP_ROWS]
    )  # fmt: skip
    caption = hk["rate_basis"] + (f"; alert over {limit:g}/s" if limit is not None else "")
    table = Table("hotkeys", ("key", "writes"), rows, "Hot keys", caption,
                  empty="no key over the minimum rate")  # fmt: skip
    return [PageSection("Keyspace", (table,), grid=True)]


SPEC = ProbeSpec(
    name="hotkeys",
    probe_type=HotKeysProbe,
    description="A continuous watch counting writes per key prefix and the hottest keys.",
    options_type=HotKeysOptions,
    default_interval=15.0,
    default_timeout=10.0,
    cluster_wide=True,
    inspect=InspectMode.WATCH,
    title="Hot keys",
    view=hot_keys_view,
    checks=(
        Check(
            "hot_key", "EtcdInspectorHotKey", Format.RATE, thresholds=("hot_key_writes_per_second",)
        ),
    ),
    stale_seconds=1800,
)
