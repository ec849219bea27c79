"""Reading the scan's pages: which member serves it, failing over, resizing pages (I/O)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from etcd_inspector.cluster.topology import Topology
from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.errors import EtcdError
from etcd_inspector.etcd.ranges import MAX_RECEIVE_BYTES
from etcd_inspector.etcd.types import RangePage
from etcd_inspector.probes.base import ProbeContext
from etcd_inspector.probes.bigvalue.model import BigValueOptions
from etcd_inspector.probes.bigvalue.pacing import MIN_PAGE, PAGE_BYTES, PacingLimits
from etcd_inspector.probes.bigvalue.paging import ScanFailed
from etcd_inspector.report.thresholds import DEFAULT as DEFAULT_THRESHOLDS

log = logging.getLogger(__name__)


# A member that lags behind R answers "future revision"; followers catch up within milliseconds.
_FUTURE_REVISION_RETRIES = 5
_FUTURE_REVISION_BACKOFF_SECONDS = 0.05


def serving_problem(topology: Topology | None, endpoint: str) -> str | None:
    """Why the last status round says a member should not serve the scan (no leader: stale
    data; lagging), or None."""
    if topology is None or not topology.known:
        return None
    return topology.serving_problem(endpoint, DEFAULT_THRESHOLDS.revision_lag_max)


def scan_order(endpoints: Sequence[str], topology: Topology | None) -> list[int]:
    """Indexes of the members to read from, best first: followers that answered the last status
    probe, learners, the leader (spare it), members with no leader or lagging, then members of
    unknown state. Config order within each group, so the choice is stable from one scan to
    the next."""

    def rank(i: int) -> float:
        st = topology.status_of(endpoints[i]) if topology is not None else None
        if st is None:
            return 3
        if serving_problem(topology, endpoints[i]):
            return 2.5
        if st.is_learner:
            return 1
        return 2 if st.is_leader else 0

    return sorted(range(len(endpoints)), key=rank)


def pacing_limits(opts: BigValueOptions) -> PacingLimits:
    """The pacer's bounds from the options: keys_per_second caps (0: no cap) and wins over the
    floor; a page aims at a quarter of gRPC's receive limit at most."""
    cap = float(opts.keys_per_second) if opts.keys_per_second else None
    floor = float(min(opts.min_keys_per_second, opts.keys_per_second or opts.min_keys_per_second))
    return PacingLimits(
        floor=floor,
        cap=cap,
        min_page=min(MIN_PAGE, opts.page_size),
        max_page=opts.page_size,
        page_bytes=min(PAGE_BYTES, MAX_RECEIVE_BYTES // 4),
    )


@dataclass(frozen=True)
class Answer:
    """A page as the scan received it: the limit it asked for, when it asked and when the
    answer came (monotonic seconds)."""

    page: RangePage
    limit: int
    asked: float
    answered: float

    @property
    def latency(self) -> float:
        return self.answered - self.asked


@dataclass
class ScanCost:
    """Requests and waits of one scan (the result's cost fields)."""

    requests: int = 0
    empty: int = 0
    counted: int = 0  # keys etcd counted for the requests
    first_seconds: float = 0.0
    waited: float = 0.0
    decreases: int = 0
    last_page_size: int = 0
    shadowed: int = 0  # pages answered while our own HashKV ran (pacing.py: not judged)

    def add(self, latency: float, keys: int, counted: int) -> None:
        if not self.requests:
            self.first_seconds = latency
        self.requests += 1
        self.empty += not keys
        self.counted += counted

    def log_done(self, cluster: str, keys: int, seconds: float) -> None:
        """One debug line per scan: what it cost and how it paced itself."""
        log.debug(
            "bigvalue scan done",
            extra={"cluster": cluster, "probe": "bigvalue", "keys": keys,
                   "seconds": round(seconds, 3), "requests": self.requests,
                   "pace_decreases": self.decreases, "waited_seconds": round(self.waited, 3),
                   "shadowed_pages": self.shadowed, "last_page_size": self.last_page_size},
        )  # fmt: skip


# --------------------------------------------------------------------------- reading pages


class _Reader:
    """Pages from one member at a time, at one revision; moves on to the next member when one
    fails, and shrinks the page when gRPC finds it too large."""

    def __init__(self, ctx: ProbeContext, order: Sequence[int], page_size: int) -> None:
        self.ctx = ctx
        self.order = list(order)
        self.position = 0
        self.page_size = page_size  # what the pacer asked for; limit is below after a shrink
        self.limit = page_size
        self.revision = 0  # 0 until the first page pins it
        self.failures: list[str] = []

    @property
    def endpoint(self) -> str:
        return self.ctx.members[self.order[self.position]].endpoint

    def _fail_over(self, err: EtcdError) -> None:
        member = self.ctx.member_name(self.endpoint)
        self.failures.append(f"{member}: {err.kind.reason}")
        self.position += 1
        if self.position >= len(self.order):
            raise ScanFailed(f"no member could serve the scan ({', '.join(self.failures)})")
        log.warning(
            "bigvalue scan moves to another member",
            extra={
                "cluster": self.ctx.cluster,
                "probe": "bigvalue",
                "member": member,
                "next_member": self.ctx.member_name(self.endpoint),
                "err": str(err),
            },
        )

    async def ask(self, key: bytes, range_end: bytes) -> Answer:
        """One page, timed."""
        asked = time.monotonic()
        page, limit = await self.page(key, range_end)
        return Answer(page, limit, asked, time.monotonic())

    def leave_if_unfit(self) -> None:
        """Within one status round of a member losing its leader or falling behind, read the
        next pages from the first fit member that answered (the pinned revision is one every
        member has or will have); when none is fit, stay."""
        topology = self.ctx.topology
        problem = serving_problem(topology, self.endpoint)
        if problem is None:
            return
        for j in range(self.position + 1, len(self.order)):
            endpoint = self.ctx.members[self.order[j]].endpoint
            if topology.up(endpoint) and serving_problem(topology, endpoint) is None:
                member = self.ctx.member_name(self.endpoint)
                self.order.insert(self.position, self.order.pop(j))
                log.warning(
                    "bigvalue scan leaves a member that stopped serving",
                    extra={"cluster": self.ctx.cluster, "probe": "bigvalue", "member": member,
                           "why": problem, "next_member": self.ctx.member_name(endpoint)},
                )  # fmt: skip
                return

    async def page(self, key: bytes, range_end: bytes) -> tuple[RangePage, int]:
        """The page and the limit it was asked with (resize may change `limit` meanwhile)."""
        lagging = 0
        self.leave_if_unfit()
        while True:
            client = self.ctx.members[self.order[self.position]]
            limit = self.limit
            try:
                page = await client.range_page(
                    key, range_end, limit=limit, revision=self.revision, serializable=True
                )
            except EtcdError as err:
                if err.kind == ErrorKind.COMPACTED:
                    raise
                if err.kind == ErrorKind.TOO_LARGE and limit > 1:
                    self.limit = min(self.limit, limit // 2)
                    continue
                if err.kind == ErrorKind.FUTURE_REVISION and lagging < _FUTURE_REVISION_RETRIES:
                    lagging += 1
                    await asyncio.sleep(_FUTURE_REVISION_BACKOFF_SECONDS * 2**lagging)
                    continue
                self._fail_over(err)
                lagging = 0
                continue
            if not self.revision:
                self.revision = page.revision
            return page, limit

    def resize(self, limit: int, page_bytes: int) -> None:
        """The pacer's next page size; after a page found too large for gRPC, grow back only
        by doubling, while a doubled page stays well under gRPC's limit (a page rejected as
        too large was read by etcd for nothing)."""
        if self.limit < self.page_size and limit > self.limit:
            if page_bytes * 4 >= MAX_RECEIVE_BYTES:
                return
            limit = min(limit, self.limit * 2)
        self.limit = self.page_size = limit


# --------------------------------------------------------------------------- the probe
