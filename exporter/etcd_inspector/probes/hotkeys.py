"""hotkeys: a continuous watch on the keyspace counting writes per prefix and the hottest keys.

The scheduler calls run() once per interval with a deadline, but a watch lives for hours, so the
watch runs in background tasks owned by the probe (one per watched range): started by the first
run(), restarted by later runs if one died (with backoff), cancelled by close(). run() itself
only snapshots the counters into a frozen result.

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
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from etcd_inspector.etcd.client import (
    EtcdError,
    MemberClient,
    MemberStatus,
    WatchBatch,
    WatchCompacted,
    WatchEvent,
    prefix_range_end,
)
from etcd_inspector.keyspace.keys import key_label
from etcd_inspector.keyspace.prefixes import OTHER, PrefixRules, group_label, group_of, prefix_of
from etcd_inspector.keyspace.spacesaving import DecayingHeavyHitters
from etcd_inspector.probes.base import CACHED, Probe, ProbeContext, ProbeSpec

log = logging.getLogger(__name__)

# etcd sends a progress notification to an idle watcher every 10 minutes (its default
# --experimental-watch-progress-notify-interval); a narrow watch that has heard nothing for
# longer than that plus one stall period is stalled, whatever the revision says.
PROGRESS_NOTIFY_SECONDS = 600.0

# Reconnecting to another member takes well under this; a run in the middle of a failover still
# succeeds, a watch that stays down fails the run (probe_success 0).
DOWN_GRACE_SECONDS = 5.0

BACKOFF_MIN_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 10.0


@dataclass(frozen=True)
class HotKeysOptions:
    # Key prefixes to watch; () watches the whole keyspace.
    prefixes: tuple[str, ...] = ()
    top_n: int = 10
    # Space-Saving counters: the only per-key state, whatever the number of keys.
    capacity: int = 1000
    # Time constant of the exponential decay behind the "recent rate".
    rate_window_seconds: float = 60.0
    # Keys writing less than this (writes/s) are not reported among the hot keys.
    min_rate: float = 1.0
    prefix_depth: int = 2
    max_prefixes: int = 200
    # No response for this long while the cluster's revision moved on: restart the watch.
    stall_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError("top_n must be at least 1")
        if self.capacity < self.top_n:
            raise ValueError("capacity must be at least top_n")
        if self.rate_window_seconds <= 0:
            raise ValueError("rate_window_seconds must be positive")
        if self.min_rate < 0:
            raise ValueError("min_rate must not be negative")
        if self.prefix_depth < 1:
            raise ValueError("prefix_depth must be at least 1")
        if self.max_prefixes < 1:
            raise ValueError("max_prefixes must be at least 1")
        if self.stall_seconds <= 0:
            raise ValueError("stall_seconds must be positive")
        if any(not p for p in self.prefixes):
            raise ValueError("prefixes must not contain an empty string (use [] for everything)")
        # Two watches over one key would count its writes twice.
        for a in self.prefixes:
            for b in self.prefixes:
                if a != b and b.startswith(a):
                    raise ValueError(f"prefixes overlap: {a!r} contains {b!r}")
        if len(set(self.prefixes)) != len(self.prefixes):
            raise ValueError("prefixes contain duplicates")


@dataclass(frozen=True)
class PrefixWrites:
    prefix: str
    op: str  # put | delete
    count: int


@dataclass(frozen=True)
class HotKey:
    key: str  # the label value (keys.key_label), not the raw key
    writes_per_second: float


@dataclass(frozen=True)
class HotKeysResult:
    prefix_writes: tuple[PrefixWrites, ...]
    hot_keys: tuple[HotKey, ...]  # hottest first
    events_total: int
    # The lowest revision every watched range has seen up to (None before the first stream).
    revision: int | None
    # The status probe's highest member revision minus `revision`; None unless the whole
    # keyspace is watched (a narrow watch's revision only moves with its own writes).
    lag_revisions: int | None
    missed_windows_total: int
    restarts_total: int
    watched_endpoints: tuple[str, ...]
    sketch_entries: int


class WatchUnavailable(RuntimeError):
    pass


class WatchStalled(Exception):
    pass


class WatchEnded(Exception):
    pass


# --------------------------------------------------------------------------- pure logic


def watch_order(
    endpoints: Sequence[str],
    statuses: dict[str, MemberStatus | None],
    last_failed: str | None,
) -> list[str]:
    """Which members to try, best first: followers that answered, the leader, members that did
    not answer, learners (they serve no watches); the member that just failed goes last."""

    def rank(endpoint: str) -> int:
        st = statuses.get(endpoint)
        if st is None:
            return 2
        if st.is_learner:
            return 3
        return 1 if st.leader_id == st.member_id else 0

    order = sorted(endpoints, key=lambda e: (e == last_failed, rank(e)))
    return order


def is_stalled(
    *,
    member_revision: int | None,
    known_revision: int,
    last_seen: int,
    whole_keyspace: bool,
    silent_seconds: float,
    stall_seconds: float,
) -> bool:
    """Whether a watch that has been silent for `silent_seconds` is stuck.

    `member_revision` is None when the watched member did not answer Status: stuck. A quiet
    cluster is not: nothing was written after `last_seen`. On a narrow watch, writes elsewhere
    move the revision too, so only a missing progress notification proves it stuck.
    """
    if member_revision is None:
        return True
    if max(member_revision, known_revision) <= last_seen:
        return False
    return whole_keyspace or silent_seconds >= PROGRESS_NOTIFY_SECONDS + stall_seconds


class WriteCounters:
    """Everything the watchers count, shared by all watched ranges. Mutated only by the event
    loop's one thread, so snapshots need no lock."""

    def __init__(self, options: HotKeysOptions, rules: PrefixRules, now: float) -> None:
        self.options = options
        self.rules = rules
        self.sketch = DecayingHeavyHitters(options.capacity, options.rate_window_seconds, now)
        # raw prefix group (None: OTHER) -> [puts, deletes]; labels are made at snapshot time,
        # which keeps the per-event work to one group_of() and one dict lookup.
        self.groups: dict[bytes | None, list[int]] = {}
        self.events_total = 0
        self.missed_windows_total = 0
        self.restarts_total = 0

    def count(self, events: Sequence[WatchEvent], now: float) -> None:
        self.sketch.add_many([ev.key for ev in events], now)
        groups, rules, max_groups = self.groups, self.rules, self.options.max_prefixes
        for ev in events:
            group: bytes | None = group_of(ev.key, rules)[0]
            counts = groups.get(group)
            if counts is None:
                # Once full, new groups go to OTHER, which may take one slot past the bound;
                # a group that has its own series keeps it, so every series stays monotonic.
                if len(groups) >= max_groups:
                    group = None
                counts = groups.setdefault(group, [0, 0])
            counts[ev.is_delete] += 1
        self.events_total += len(events)

    def prefix_writes(self) -> tuple[PrefixWrites, ...]:
        # Distinct groups can share a label (printable_key cuts very long ones): add them up.
        by_label: dict[str, list[int]] = {}
        for group, counts in self.groups.items():
            label = OTHER if group is None else group_label(group)
            total = by_label.setdefault(label, [0, 0])
            total[0] += counts[0]
            total[1] += counts[1]
        return tuple(
            PrefixWrites(label, op, counts[i])
            for label, counts in sorted(by_label.items())
            for i, op in enumerate(("put", "delete"))
        )

    def hot_keys(self, now: float, key_labels: str) -> tuple[HotKey, ...]:
        """The top-N keys by recent rate at or above min_rate, as label values.

        Rates are the sketch's guaranteed lower bounds: with many more keys than counters, a
        key that just took over a counter inherits its count as error, and the upper bound
        would show a key written once as hot. Exact for keys tracked since their first write.
        Keys that share a label (prefix mode, cut long keys) are added up so no series is
        duplicated."""
        by_label: dict[str, float] = {}
        for rate in self.sketch.top(self.options.top_n, now, guaranteed=True):
            per_second = rate.guaranteed_per_second
            if per_second < self.options.min_rate:
                break
            label = key_label(rate.key, key_labels, prefix_of(rate.key, self.rules))
            by_label[label] = by_label.get(label, 0.0) + per_second
        ranked = sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(HotKey(label, per_second) for label, per_second in ranked)


# --------------------------------------------------------------------------- the watch


async def _next_batch(stream: AsyncIterator[WatchBatch]) -> WatchBatch:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        # Tasks and futures handle StopAsyncIteration badly; name it for what it is.
        raise WatchEnded("the watch stream ended") from None


async def _status_or_none(client: MemberClient) -> MemberStatus | None:
    try:
        return await client.status()
    except EtcdError:
        return None


def _status_probe_revisions(ctx: ProbeContext) -> dict[str, MemberStatus | None] | None:
    status = ctx.state.latest("status")
    if status is None:
        return None
    return {m.endpoint: m.status for m in status.members}


def max_known_revision(ctx: ProbeContext) -> int:
    statuses = _status_probe_revisions(ctx) or {}
    return max((st.revision for st in statuses.values() if st is not None), default=0)


class RangeWatcher:
    """Watches one key range from one member at a time, forever, resuming where it left off."""

    def __init__(
        self,
        key: bytes,
        range_end: bytes,
        counters: WriteCounters,
        options: HotKeysOptions,
        cluster: str,
    ) -> None:
        self.key = key
        self.range_end = range_end
        self.whole_keyspace = key == b"\0" and range_end == b"\0"
        self.counters = counters
        self.options = options
        self.cluster = cluster
        self.ctx: ProbeContext | None = None
        # Every event with a revision <= last_seen has been counted (None: never streamed).
        self.last_seen: int | None = None
        self.endpoint: str | None = None  # the member streaming now
        self.down_since: float | None = time.monotonic()
        self.last_error: str | None = None
        # Set once the first stream is up or every member has failed once.
        self.settled = asyncio.Event()
        self._last_failed: str | None = None
        self._delivered = False  # the current stream delivered a response after "created"

    @property
    def connected(self) -> bool:
        return self.endpoint is not None

    async def _candidates(self) -> list[MemberClient]:
        assert self.ctx is not None
        members = list(self.ctx.members)
        statuses = _status_probe_revisions(self.ctx)
        if statuses is None:  # the status probe is disabled or has not run: ask ourselves
            answers = await asyncio.gather(*(_status_or_none(m) for m in members))
            statuses = {m.endpoint: st for m, st in zip(members, answers, strict=True)}
        by_endpoint = {m.endpoint: m for m in members}
        order = watch_order([m.endpoint for m in members], statuses, self._last_failed)
        return [by_endpoint[e] for e in order]

    async def run_forever(self) -> None:
        backoff = BACKOFF_MIN_SECONDS
        while True:
            candidates = await self._candidates()
            for attempt, client in enumerate(candidates, start=1):
                self._delivered = False
                try:
                    await self._stream(client)
                except WatchCompacted as err:
                    self.counters.missed_windows_total += 1
                    log.warning(
                        "watch start revision compacted, events were missed",
                        extra={"cluster": self.cluster, "probe": "hotkeys",
                               "resume_from": self.resume_revision(),
                               "compacted": err.compact_revision},
                    )  # fmt: skip
                    # The compaction revision itself is still readable: nothing after it is lost.
                    self.last_seen = max(self.last_seen or 0, err.compact_revision - 1)
                    self.endpoint = None
                    break
                except (EtcdError, WatchStalled, WatchEnded, TimeoutError) as err:
                    self._stream_ended(client, err)
                    if self._delivered:
                        backoff = BACKOFF_MIN_SECONDS
                        break  # a working stream broke: re-rank the members, retry at once
                    if attempt == len(candidates):
                        # Every member failed (or streams die right after creation): wait.
                        self.settled.set()
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def _stream_ended(self, client: MemberClient, err: BaseException) -> None:
        was_connected = self.connected
        self.endpoint = None
        self._last_failed = client.endpoint
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.last_error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        if was_connected:
            self.counters.restarts_total += 1
            log.warning(
                "watch broke, moving to the next member",
                extra={"cluster": self.cluster, "probe": "hotkeys", "endpoint": client.endpoint,
                       "err": self.last_error, "resume_from": self.resume_revision()},
            )  # fmt: skip
        else:
            log.debug(
                "watch could not start",
                extra={"cluster": self.cluster, "endpoint": client.endpoint,
                       "err": self.last_error},
            )  # fmt: skip

    def resume_revision(self) -> int:
        """0 asks etcd for "from now on" (only before the very first stream)."""
        return 0 if self.last_seen is None else self.last_seen + 1

    async def _stream(self, client: MemberClient) -> None:
        start_revision = self.resume_revision()
        stream = client.watch(self.key, self.range_end, start_revision)
        pending: asyncio.Task[WatchBatch] | None = None
        try:
            # etcd answers a create request at once; a member that does not is not serving.
            created = await asyncio.wait_for(_next_batch(stream), client.request_timeout)
            if start_revision == 0:
                # etcd watches "from now" as header revision + 1: nothing up to it is ours.
                self.last_seen = created.revision
            self._apply(created)
            self.endpoint = client.endpoint
            self.down_since = None
            self.last_error = None
            self.settled.set()
            heard_at = time.monotonic()
            while True:
                pending = asyncio.create_task(_next_batch(stream))
                while True:
                    try:
                        # shield: a timeout must not cancel (and so end) the stream itself
                        async with asyncio.timeout(self.options.stall_seconds):
                            batch = await asyncio.shield(pending)
                        break
                    except TimeoutError:
                        if await self._stalled(client, time.monotonic() - heard_at):
                            raise WatchStalled(
                                f"no watch response for {time.monotonic() - heard_at:.0f}s "
                                "while the revision moved on"
                            ) from None
                pending = None
                heard_at = time.monotonic()
                self._delivered = True
                self._apply(batch)
        finally:
            if pending is not None:
                # Also a finished one: its exception must be retrieved. A batch it may hold is
                # not lost, the next stream starts after the last batch applied.
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    def _apply(self, batch: WatchBatch) -> None:
        if batch.events:
            self.counters.count(batch.events, time.monotonic())
            # Responses never split a revision, and events come in revision order.
            self.last_seen = max(self.last_seen or 0, batch.events[-1].mod_revision)
        elif self.endpoint is not None and self.last_seen is not None:
            # A progress notification (etcd sends them only to watchers that are caught up):
            # every event up to its revision has been delivered. The created response, the
            # first of every stream, says nothing of the kind when resuming from the past.
            self.last_seen = max(self.last_seen, batch.revision)

    async def _stalled(self, client: MemberClient, silent_seconds: float) -> bool:
        assert self.ctx is not None and self.last_seen is not None
        status = await _status_or_none(client)
        return is_stalled(
            member_revision=status.revision if status is not None else None,
            known_revision=max_known_revision(self.ctx),
            last_seen=self.last_seen,
            whole_keyspace=self.whole_keyspace,
            silent_seconds=silent_seconds,
            stall_seconds=self.options.stall_seconds,
        )


# --------------------------------------------------------------------------- the probe


class HotKeysProbe(Probe[HotKeysOptions, HotKeysResult]):
    def __init__(self, options: HotKeysOptions) -> None:
        super().__init__(options)
        rules = PrefixRules(depth=options.prefix_depth)
        self.counters = WriteCounters(options, rules, time.monotonic())
        self.watchers: list[RangeWatcher] = []
        self._tasks: list[asyncio.Task[None] | None] = []
        self._task_deaths = 0
        self._restart_not_before = 0.0

    def _ranges(self) -> list[tuple[bytes, bytes]]:
        if not self.options.prefixes:
            return [(b"\0", b"\0")]
        return [(p.encode(), prefix_range_end(p.encode())) for p in self.options.prefixes]

    def _ensure_watching(self, ctx: ProbeContext) -> None:
        if not self.watchers:
            self.watchers = [
                RangeWatcher(key, end, self.counters, self.options, ctx.cluster.name)
                for key, end in self._ranges()
            ]
            self._tasks = [None] * len(self.watchers)
        now = time.monotonic()
        for i, watcher in enumerate(self.watchers):
            watcher.ctx = ctx
            task = self._tasks[i]
            if task is not None and not task.done():
                continue
            if task is not None:
                # Only a bug ends run_forever; keep it from turning into a restart loop.
                err = task.exception() if not task.cancelled() else None
                log.error(
                    "watcher task died",
                    exc_info=err,
                    extra={"cluster": ctx.cluster.name, "probe": "hotkeys"},
                )
                self._tasks[i] = None
                self._task_deaths += 1
                self.counters.restarts_total += 1
                delay = min(BACKOFF_MIN_SECONDS * 2**self._task_deaths, BACKOFF_MAX_SECONDS)
                self._restart_not_before = now + delay
                watcher.endpoint = None
                watcher.last_error = f"watcher died: {err!r}"
                if watcher.down_since is None:
                    watcher.down_since = now
            if now < self._restart_not_before:
                continue
            self._tasks[i] = asyncio.create_task(
                watcher.run_forever(), name=f"hotkeys-watch-{ctx.cluster.name}"
            )

    async def run(self, ctx: ProbeContext) -> HotKeysResult:
        self._ensure_watching(ctx)
        # The first run waits for the first stream; the scheduler's deadline bounds the wait.
        running = [w for w, t in zip(self.watchers, self._tasks, strict=True) if t is not None]
        await asyncio.gather(*(w.settled.wait() for w in running))
        now = time.monotonic()
        for w in self.watchers:
            if w.connected:
                continue
            down_for = now - w.down_since if w.down_since is not None else 0.0
            if w.last_seen is None or down_for >= DOWN_GRACE_SECONDS:
                raise WatchUnavailable(
                    f"watch down for {down_for:.0f}s: {w.last_error or 'not started'}"
                )
        for w in self.watchers:
            if w.connected:
                self._task_deaths = 0
        return self.snapshot(ctx, now)

    def snapshot(self, ctx: ProbeContext, now: float) -> HotKeysResult:
        seen = [w.last_seen for w in self.watchers]
        revision = None if not seen or None in seen else min(s for s in seen if s is not None)
        lag = None
        if revision is not None and not self.options.prefixes:
            known = max_known_revision(ctx)
            lag = max(0, known - revision) if known else None
        c = self.counters
        return HotKeysResult(
            prefix_writes=c.prefix_writes(),
            hot_keys=c.hot_keys(now, ctx.key_labels),
            events_total=c.events_total,
            revision=revision,
            lag_revisions=lag,
            missed_windows_total=c.missed_windows_total,
            restarts_total=c.restarts_total,
            watched_endpoints=tuple(w.endpoint for w in self.watchers if w.endpoint),
            sketch_entries=len(c.sketch),
        )

    async def close(self) -> None:
        """Stop watching; the counters and last seen revisions stay, so a later run() resumes."""
        tasks = [t for t in self._tasks if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = [None] * len(self.watchers)
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


SPEC = ProbeSpec(
    name="hotkeys",
    probe_type=HotKeysProbe,
    description="A continuous watch counting writes per key prefix and the hottest keys.",
    options_type=HotKeysOptions,
    default_interval=15.0,
    default_timeout=10.0,
    cluster_wide=True,
)
