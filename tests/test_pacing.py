"""The scan's pacing controller (probes/bigvalue/pacing.py) on synthetic latency series: pure,
no etcd, no clock."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

import pytest

from etcd_inspector.probes.bigvalue import BigValueOptions
from etcd_inspector.probes.bigvalue.pacing import (
    PAGE_LATENCY_TARGET,
    Decision,
    PacingLimits,
    PageSample,
    ScanPacer,
)
from etcd_inspector.probes.bigvalue.probe import pacing_limits

PER_KEY = 2e-6  # seconds a key costs an idle member
OVERHEAD = 0.0005  # seconds per request


class Member:
    """A synthetic member: latency = (overhead + per-key cost) x load(t), `writes` revisions/s;
    the clock advances by each page's latency and the pacer's delay."""

    def __init__(self, pacer: ScanPacer, load: Callable[[float], float] = lambda t: 1.0) -> None:
        self.pacer, self.load = pacer, load
        self.now = 0.0
        self.revision = 1000
        self.writes = 0.0
        self.keys = 0
        # Whether our own HashKV runs at t (PageSample.own_load).
        self.own_load: Callable[[float], bool] = lambda t: False

    def page(self, noise: float = 0.0, rnd: random.Random | None = None) -> Decision:
        limit = self.pacer.limit
        latency = (OVERHEAD + PER_KEY * limit) * self.load(self.now)
        if rnd is not None:
            latency *= 1 + noise * rnd.random()
        own = self.own_load(self.now) or self.own_load(self.now + latency)
        self.now += latency
        self.revision += round(self.writes * latency)
        decision = self.pacer.observe(
            PageSample(latency=latency, keys=limit, nbytes=limit * 130, counted=2 * limit,
                       at=self.now, header_revision=self.revision, own_load=own)
        )  # fmt: skip
        self.revision += round(self.writes * decision.delay)
        self.now += decision.delay
        self.keys += limit
        return decision

    def pages(self, n: int, **kw: object) -> Iterator[Decision]:
        for _ in range(n):
            yield self.page(**kw)  # type: ignore[arg-type]

    def rate_over(self, n: int) -> float:
        """Keys per second over the next n pages."""
        start, keys = self.now, self.keys
        for _ in self.pages(n):
            pass
        return (self.keys - keys) / (self.now - start)


def pacer(cap: float | None = None, floor: float = 1000, max_page: int = 10000) -> ScanPacer:
    return ScanPacer(PacingLimits(floor=floor, cap=cap, min_page=100, max_page=max_page))


def test_idle_member_is_read_unpaced_with_pages_growing_to_the_largest() -> None:
    member = Member(pacer())
    decisions = list(member.pages(20))
    assert all(d.delay == 0 for d in decisions)
    assert [d.limit for d in decisions[:4]] == [2000, 4000, 8000, 10000]
    assert member.pacer.decreases == 0
    # as fast as the member answers
    assert member.rate_over(50) == pytest.approx(10000 / (OVERHEAD + PER_KEY * 10000), rel=0.01)


def test_backs_off_on_a_latency_spike_and_recovers() -> None:
    spike = (0.5, 2.5)  # the member is 5x slower for two seconds
    member = Member(pacer(), load=lambda t: 5.0 if spike[0] <= t < spike[1] else 1.0)
    before = member.rate_over(20)
    assert member.now < spike[0]
    seen: list[tuple[float, int]] = []
    while member.now < spike[1]:
        member.page()
        seen.append((member.now, member.keys))
    assert member.pacer.decreases >= 2
    # in the spike's second half the scan reads slower than the slowed member answers (5x):
    # it backs off rather than only suffering the latency
    late = [(t, k) for t, k in seen if t >= spike[0] + 1.0]
    during = (late[-1][1] - late[0][1]) / (late[-1][0] - late[0][0])
    assert during < before / 5 * 0.8
    member.rate_over(60)  # recovering
    after = member.rate_over(20)
    assert after == pytest.approx(before, rel=0.1)


def test_a_single_slow_page_is_noise() -> None:
    member = Member(pacer())
    member.rate_over(20)
    member.load = lambda t, at=member.now: 10.0 if t - at < 0.02 else 1.0
    member.rate_over(20)
    assert member.pacer.decreases == 0


def test_never_exceeds_the_cap_and_never_drops_below_the_floor() -> None:
    rnd = random.Random(3)
    for cap in (500.0, 2000.0, 20000.0):
        member = Member(pacer(cap=cap, floor=min(1000, cap)))
        for decision in member.pages(300, noise=3.0, rnd=rnd):
            assert decision.limit <= cap  # a page holds at most one second's keys
        # every page took at least its share of a second at the cap
        assert member.keys / member.now <= cap * 1.0001
    # a member 100x slower for good: AIMD halves down to the floor, not below it
    member = Member(pacer(floor=1000), load=lambda t: 1.0 if t < 0.1 else 100.0)
    rates = []
    for _ in member.pages(100):
        rates.append(member.pacer.rate)
    assert min(rates) == 1000


def test_a_writing_cluster_gets_a_small_share_and_small_pages() -> None:
    idle = Member(pacer())
    idle_rate = idle.rate_over(50)
    busy = Member(pacer())
    busy.writes = 1000.0  # revisions/s
    busy.rate_over(50)
    rate = busy.rate_over(100)
    assert busy.pacer.share == pytest.approx(1 / 51, rel=0.05)
    assert rate < idle_rate / 20
    # a page costs at most the scan's share of the target latency (or is the smallest page)
    assert busy.pacer.limit == 100 or (
        OVERHEAD + PER_KEY * busy.pacer.limit <= PAGE_LATENCY_TARGET * busy.pacer.share * 1.5
    )
    # back to idle: back to full speed within a few seconds (the write rate is measured over
    # one-second windows)
    busy.writes = 0.0
    quiet_from = busy.now
    while busy.now < quiet_from + 4:
        busy.page()
    assert busy.rate_over(50) == pytest.approx(idle_rate, rel=0.15)


def test_big_values_make_small_pages() -> None:
    p = pacer()
    p.observe(PageSample(latency=0.05, keys=100, nbytes=100 * 1024 * 1024, counted=100, at=1.0,
                         header_revision=5))  # fmt: skip
    assert p.limit == 4  # 4 MiB of 1 MiB values


def test_big_values_make_small_pages_while_we_hash_too() -> None:
    p = pacer()
    for i in range(5):
        p.observe(PageSample(latency=0.01, keys=4, nbytes=4 * 1024 * 1024, counted=4,
                             at=1.0 + i / 10, header_revision=5, own_load=True))  # fmt: skip
    assert p.limit == 4 and p.shadowed == 5


def test_first_page_counting_everything_is_not_congestion() -> None:
    p = pacer()
    p.observe(PageSample(latency=0.2, keys=1000, nbytes=130000, counted=500000, at=0.2,
                         header_revision=5))  # fmt: skip
    for i in range(10):
        p.observe(PageSample(latency=0.003, keys=1000, nbytes=130000, counted=2000,
                             at=0.3 + i / 100, header_revision=5))  # fmt: skip
    assert p.decreases == 0 and p.rate == math.inf


def test_limits_from_the_options() -> None:
    limits = pacing_limits(BigValueOptions())
    assert (limits.floor, limits.cap, limits.min_page, limits.max_page) == (1000, None, 100, 10000)
    # a cap under the floor wins; a page_size under the smallest page pins the page size
    limits = pacing_limits(BigValueOptions(keys_per_second=500, page_size=50))
    assert (limits.floor, limits.cap, limits.min_page, limits.max_page) == (500, 500, 50, 50)
    with pytest.raises(ValueError, match="floor"):
        PacingLimits(floor=10, cap=5, min_page=1, max_page=1)


def test_our_own_hash_is_not_the_cluster_being_busy() -> None:
    """The consistency probe's HashKV slows the member 5x for two seconds (etcd serves it under
    the backend's read lock): the scan holds its pace instead of halving it, its pages still
    grow, and it reads as fast as the slowed member answers."""
    hashing = (0.05, 2.05)
    member = Member(pacer(), load=lambda t: 5.0 if hashing[0] <= t < hashing[1] else 1.0)
    member.own_load = lambda t: hashing[0] <= t < hashing[1]
    idle = 10000 / (OVERHEAD + PER_KEY * 10000)
    while member.now < hashing[1]:
        decision = member.page()
        assert decision.delay == 0
    assert member.pacer.decreases == 0 and member.pacer.rate == math.inf
    assert member.pacer.limit == 10000 and member.pacer.shadowed > 20
    assert member.rate_over(20) == pytest.approx(idle, rel=0.01)
    # the same slowdown from the cluster's clients: the pacer backs off (the control)
    busy = Member(pacer(), load=lambda t: 5.0 if hashing[0] <= t < hashing[1] else 1.0)
    while busy.now < hashing[1]:
        busy.page()
    assert busy.pacer.decreases >= 2 and busy.pacer.shadowed == 0


def test_a_writer_keeps_its_share_while_we_hash() -> None:
    """While our own HashKV runs the latency signal is off, the write-rate share is not."""
    member = Member(pacer())
    member.writes = 1000.0
    member.own_load = lambda t: True
    member.rate_over(50)
    rate = member.rate_over(100)
    assert member.pacer.share == pytest.approx(1 / 51, rel=0.05)
    assert rate < 10000 / (OVERHEAD + PER_KEY * 10000) / 20


def test_a_slow_page_early_in_a_cold_start_is_noise() -> None:
    """Pages 2 and 3 at 4x the first (a cold channel, a neighbour's burst): the baselines hold
    one page then, and a median of two ratios is no verdict (three halvings at a 500k-key
    scan's start, measured)."""
    slow = {1, 2}
    p = pacer()
    at = 0.0
    for i in range(12):
        latency = (OVERHEAD + PER_KEY * 1000) * (4.0 if i in slow else 1.0)
        at += latency
        p.observe(PageSample(latency=latency, keys=1000, nbytes=130000, counted=2000, at=at,
                             header_revision=5))  # fmt: skip
    assert p.decreases == 0 and p.rate == math.inf
