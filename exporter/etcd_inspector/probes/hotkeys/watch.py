"""One watched key range, streamed from one member at a time, resumed where it left off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

from etcd_inspector.cluster.topology import Topology
from etcd_inspector.etcd.errors import EtcdError, WatchCompacted, attempt
from etcd_inspector.etcd.interfaces import Maintenance, Member
from etcd_inspector.etcd.types import MemberStatus, WatchBatch
from etcd_inspector.probes.base import ProbeContext
from etcd_inspector.probes.hotkeys.counters import WriteCounters
from etcd_inspector.probes.hotkeys.model import HotKeysOptions
from etcd_inspector.report.thresholds import DEFAULT as DEFAULT_THRESHOLDS

log = logging.getLogger(__name__)

# etcd sends a progress notification to an idle watcher every 10 minutes (its default
# --experimental-watch-progress-notify-interval); a narrow watch that has heard nothing for
# longer than that plus one stall period is stalled, whatever the revision says.
PROGRESS_NOTIFY_SECONDS = 600.0


BACKOFF_MIN_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 10.0

# A healthy watch delivers a revision well within this after the status probe saw it on a
# member: bench_hotkeys measured at most 0.15 s of lag at 40,800 events/s (BENCHMARKS.md), so
# a watch still short of a revision seen this long ago is behind, not busy (docs/decisions.md).
CATCH_UP_SECONDS = 5.0


# How often a stream checks the latest status round for its member (in memory, costs nothing):
# a member the status probe sees without a leader or lagging is left within one round.
LEAVE_CHECK_SECONDS = 1.0


class WatchStalled(Exception):
    pass


class MemberUnfit(WatchStalled):
    """The status probe says the watched member has no leader or lags: its stream serves stale
    data, or none, while a fit member could serve it."""


class WatchEnded(Exception):
    pass


# --------------------------------------------------------------------------- pure logic


def watch_order(
    endpoints: Sequence[str],
    statuses: dict[str, MemberStatus | None],
    last_failed: str | None,
    unfit: frozenset[str] = frozenset(),
) -> list[str]:
    """Which members to try, best first: followers that answered, the leader, members with no
    leader or lagging (`unfit`, Topology.serving_problem), members that did not answer,
    learners (they serve no watches); the member that just failed goes last."""

    def rank(endpoint: str) -> float:
        st = statuses.get(endpoint)
        if st is None:
            return 2
        if st.is_learner:
            return 3
        if endpoint in unfit:
            return 1.5
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


def catch_up_target(
    checkpoints: Sequence[tuple[float, int]], now: float, grace: float = CATCH_UP_SECONDS
) -> int:
    """The highest revision the status probe saw on a member at least `grace` seconds ago
    (0: none yet). `checkpoints` are (when the status round was taken, its highest revision),
    oldest first."""
    return max((rev for taken_at, rev in checkpoints if taken_at <= now - grace), default=0)


def behind_by(*, last_seen: int | None, catching_up_to: int, target: int) -> int:
    """How many revisions a whole-keyspace watch still owes (0: it is not behind).

    Two things prove a watch behind without flagging one that is merely busy:
      `catching_up_to`  the member's revision when the current stream resumed from the past:
                        until the stream has delivered up to it, it is replaying a backlog;
      `target`          a revision the cluster had CATCH_UP_SECONDS ago (catch_up_target): a
                        frozen member's stream is silent, and only the other members show it.
    Writes younger than that never count, so a cluster at any write rate with a watch that keeps
    up (its lag is well under a second) is never reported behind.
    """
    if last_seen is None:
        return 0  # never streamed: that is "down", not "behind"
    return max(0, max(catching_up_to, target) - last_seen)


# --------------------------------------------------------------------------- the watch


async def _next_batch(stream: AsyncIterator[WatchBatch]) -> WatchBatch:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        # Tasks and futures handle StopAsyncIteration badly; name it for what it is.
        raise WatchEnded("the watch stream ended") from None


async def _status_or_none(client: Maintenance) -> MemberStatus | None:
    status, _ = await attempt(client.status())
    return status


def max_known_revision(topology: Topology) -> int:
    return topology.max_revision


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
        # The member's revision when the current stream resumed from the past (0: it started
        # "from now", or a narrow watch, whose last_seen only moves with its own writes).
        self.catching_up_to = 0

    @property
    def connected(self) -> bool:
        return self.endpoint is not None

    async def _candidates(self) -> list[Member]:
        assert self.ctx is not None
        members = list(self.ctx.members)
        statuses = self.ctx.topology.statuses() if self.ctx.topology.known else None
        if statuses is None:  # the status probe is disabled or has not run: ask ourselves
            answers = await asyncio.gather(*(_status_or_none(m) for m in members))
            statuses = {m.endpoint: st for m, st in zip(members, answers, strict=True)}
        by_endpoint = {m.endpoint: m for m in members}
        unfit = frozenset(e for e in by_endpoint if self._serving_problem(e))
        order = watch_order([m.endpoint for m in members], statuses, self._last_failed, unfit)
        return [by_endpoint[e] for e in order]

    def _serving_problem(self, endpoint: str) -> str | None:
        assert self.ctx is not None
        topology = self.ctx.topology
        if not topology.known:
            return None
        return topology.serving_problem(endpoint, DEFAULT_THRESHOLDS.revision_lag_max)

    def _leave_if_unfit(self, client: Member) -> None:
        """Raise MemberUnfit when the latest status round says the watched member has no leader
        or lags while another member that answered is fit (never ping-pong when none is)."""
        assert self.ctx is not None
        problem = self._serving_problem(client.endpoint)
        if problem is None:
            return
        topology = self.ctx.topology
        others = [
            m for m in topology.answered
            if m.endpoint != client.endpoint and not m.is_learner
            and self._serving_problem(m.endpoint) is None
        ]  # fmt: skip
        if others:
            name = self.ctx.member_name(client.endpoint)
            raise MemberUnfit(f"member {name} stopped serving: {problem}")

    async def run_forever(self) -> None:
        try:
            await self._watch_forever()
        finally:
            # Only cancellation (close) or a bug ends the loop: the watch is down from now on.
            self.endpoint = None
            if self.down_since is None:
                self.down_since = time.monotonic()

    async def _watch_forever(self) -> None:
        backoff = BACKOFF_MIN_SECONDS
        while True:
            candidates = await self._candidates()
            for tried, client in enumerate(candidates, start=1):
                self._delivered = False
                try:
                    await self._stream(client)
                except WatchCompacted as err:
                    self.counters.missed_windows_total += 1
                    # Revisions resume_revision .. compact_revision - 1 are gone.
                    skipped = max(0, err.compact_revision - self.resume_revision())
                    self.counters.missed_revisions_total += skipped
                    log.warning(
                        "watch start revision compacted, events were missed",
                        extra={"cluster": self.cluster, "probe": "hotkeys",
                               "resume_from": self.resume_revision(),
                               "compacted": err.compact_revision, "skipped": skipped},
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
                    if tried == len(candidates):
                        # Every member failed (or streams die right after creation): wait.
                        self.settled.set()
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def _stream_ended(self, client: Member, err: BaseException) -> None:
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

    async def _stream(self, client: Member) -> None:
        start_revision = self.resume_revision()
        stream = (
            client.watch(self.key, self.range_end, start_revision, prev_kv=True)
            if self.options.noop_writes
            else client.watch(self.key, self.range_end, start_revision)
        )
        pending: asyncio.Task[WatchBatch] | None = None
        try:
            # etcd answers a create request at once; a member that does not is not serving.
            created = await asyncio.wait_for(_next_batch(stream), client.request_timeout)
            if start_revision == 0:
                # etcd watches "from now" as header revision + 1: nothing up to it is ours.
                self.last_seen = created.revision
            # The created response's header is the member's revision now: a stream resumed
            # from before it replays a backlog until it gets there.
            self.catching_up_to = created.revision if self.whole_keyspace else 0
            self._apply(created)
            self.endpoint = client.endpoint
            self.down_since = None
            self.last_error = None
            self.settled.set()
            heard_at = checked_at = time.monotonic()
            wait = min(self.options.stall_seconds, LEAVE_CHECK_SECONDS)
            while True:
                pending = asyncio.create_task(_next_batch(stream))
                while True:
                    try:
                        # shield: a timeout must not cancel (and so end) the stream itself
                        async with asyncio.timeout(wait):
                            batch = await asyncio.shield(pending)
                        break
                    except TimeoutError:
                        self._leave_if_unfit(client)
                        if time.monotonic() - checked_at < self.options.stall_seconds:
                            continue
                        checked_at = time.monotonic()
                        if await self._stalled(client, time.monotonic() - heard_at):
                            raise WatchStalled(
                                f"no watch response for {time.monotonic() - heard_at:.0f}s "
                                "while the revision moved on"
                            ) from None
                pending = None
                heard_at = checked_at = time.monotonic()
                self._delivered = True
                self._apply(batch)
                self._leave_if_unfit(client)
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

    async def _stalled(self, client: Member, silent_seconds: float) -> bool:
        assert self.ctx is not None and self.last_seen is not None
        status = await _status_or_none(client)
        return is_stalled(
            member_revision=status.revision if status is not None else None,
            known_revision=max_known_revision(self.ctx.topology),
            last_seen=self.last_seen,
            whole_keyspace=self.whole_keyspace,
            silent_seconds=silent_seconds,
            stall_seconds=self.options.stall_seconds,
        )
