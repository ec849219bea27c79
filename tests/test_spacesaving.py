"""Space-Saving and its decay, checked against exact counts (pure, no network)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from etcd_inspector.keyspace.spacesaving import RESCALE_EXPONENT, DecayingHeavyHitters, SpaceSaving


def zipf_stream(rng: random.Random, distinct: int, length: int, s: float = 1.2) -> list[bytes]:
    weights = [1 / (rank**s) for rank in range(1, distinct + 1)]
    keys = [f"/k/{i}".encode() for i in range(distinct)]
    return rng.choices(keys, weights=weights, k=length)


def check_bounds(sketch: SpaceSaving, truth: Counter[bytes] | dict[bytes, float]) -> None:
    tracked = {c.key: c for c in sketch.top(len(sketch))}
    floor = sketch.min_count()
    for key, true in truth.items():
        c = tracked.get(key)
        if c is None:
            # An untracked key can never have more than the smallest counter.
            assert true <= floor + 1e-9, (key, true, floor)
        else:
            assert c.count - c.error <= true + 1e-9, (key, c, true)
            assert true <= c.count + 1e-9, (key, c, true)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_error_bounds_hold_on_skewed_streams(seed: int) -> None:
    rng = random.Random(seed)
    stream = zipf_stream(rng, distinct=2000, length=20_000)
    sketch = SpaceSaving(50)
    for key in stream:
        sketch.add(key)
    assert len(sketch) == 50
    assert sketch.total == len(stream)
    check_bounds(sketch, Counter(stream))


def test_error_bounds_hold_with_weights_and_add_many() -> None:
    rng = random.Random(7)
    sketch = SpaceSaving(30)
    truth: dict[bytes, float] = {}
    for _ in range(500):
        batch = zipf_stream(rng, distinct=400, length=rng.randint(1, 40))
        weight = rng.uniform(0.1, 10.0)
        sketch.add_many(batch, weight)
        for key in batch:
            truth[key] = truth.get(key, 0.0) + weight
    assert len(sketch) == 30
    assert sketch.total == pytest.approx(sum(truth.values()))
    check_bounds(sketch, truth)


def test_every_key_above_total_over_capacity_is_tracked() -> None:
    rng = random.Random(11)
    stream = zipf_stream(rng, distinct=5000, length=30_000, s=1.0)
    capacity = 40
    sketch = SpaceSaving(capacity)
    sketch.add_many(stream)
    truth = Counter(stream)
    frequent = [k for k, n in truth.items() if n > len(stream) / capacity]
    assert frequent  # the stream is skewed enough for the guarantee to say something
    for key in frequent:
        assert key in sketch


def test_all_distinct_keys_stay_within_capacity() -> None:
    sketch = SpaceSaving(100)
    sketch.add_many(f"/unique/{i}".encode() for i in range(20_000))
    assert len(sketch) == 100
    # Every counter is exactly one write above its inherited error.
    assert all(c.count - c.error == 1 for c in sketch.top(100))


def test_top_orders_by_count_and_reports_exact_counts_without_eviction() -> None:
    sketch = SpaceSaving(10)
    for key, n in ((b"a", 5), (b"b", 9), (b"c", 1), (b"d", 9)):
        for _ in range(n):
            sketch.add(key)
    top = sketch.top(3)
    assert [(c.key, c.count, c.error) for c in top] == [(b"b", 9, 0), (b"d", 9, 0), (b"a", 5, 0)]
    assert sketch.min_count() == 0  # not full: an unseen key has no writes at all


def test_eviction_takes_the_smallest_counter() -> None:
    sketch = SpaceSaving(2)
    sketch.add_many([b"a"] * 3 + [b"b"] * 5)
    sketch.add(b"c")  # evicts a (3): c = 3 + 1, error 3
    assert b"a" not in sketch
    c = sketch.get(b"c")
    assert c is not None and (c.count, c.error) == (4, 3)
    sketch.add(b"a")  # now c (4) is the smallest: a = 5, error 4
    assert b"c" not in sketch and b"b" in sketch
    a = sketch.get(b"a")
    assert a is not None and (a.count, a.error) == (5, 4)


def test_stale_heap_entries_do_not_evict_a_grown_key() -> None:
    sketch = SpaceSaving(2)
    sketch.add(b"a")
    sketch.add(b"b")
    sketch.add_many([b"a"] * 10)  # a's heap entry still says 1
    sketch.add(b"c")  # must evict b (1), not a (11)
    assert b"a" in sketch and b"b" not in sketch


def test_scale_keeps_order_and_bounds() -> None:
    rng = random.Random(3)
    stream = zipf_stream(rng, distinct=300, length=3000)
    sketch = SpaceSaving(20)
    sketch.add_many(stream)
    before = [(c.key, c.count, c.error) for c in sketch.top(20)]
    sketch.scale(0.25)
    after = [(c.key, c.count, c.error) for c in sketch.top(20)]
    assert [k for k, _, _ in after] == [k for k, _, _ in before]
    assert all(
        a[1] == b[1] * 0.25 and a[2] == b[2] * 0.25 for a, b in zip(after, before, strict=True)
    )
    # The heap was rebuilt on the scaled counts: eviction still takes the smallest.
    smallest = min(after, key=lambda t: (t[1], t[0]))
    sketch.add(b"new")
    assert smallest[0] not in sketch and b"new" in sketch


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        SpaceSaving(0)
    with pytest.raises(ValueError):
        SpaceSaving(3).scale(0)
    with pytest.raises(ValueError):
        DecayingHeavyHitters(10, 0, now=0.0)


# --------------------------------------------------------------------------- decay


def test_steady_rate_converges_to_the_rate() -> None:
    hh = DecayingHeavyHitters(10, window_seconds=10.0, now=0.0)
    # 50 writes/s for 200 s (20 windows), 10 per 0.2 s tick
    t = 0.0
    for _ in range(1000):
        t += 0.2
        hh.add_many([b"hot"] * 10, now=t)
    rate = hh.rate(b"hot", now=t)
    assert rate is not None
    # The discrete ticks make the decayed sum a little larger than the continuous r * window.
    assert rate.per_second == pytest.approx(50.0, rel=0.02)
    assert hh.total_rate(now=t) == pytest.approx(rate.per_second)


# Sketches started this long before the events are past their warm-up: the divisor is the window.
WARM = -10_000.0


def test_a_burst_decays_with_the_window() -> None:
    hh = DecayingHeavyHitters(10, window_seconds=60.0, now=WARM)
    for _ in range(500):
        hh.add(b"burst", now=100.0)
    assert hh.top(1, now=100.0)[0].per_second == pytest.approx(500 / 60)
    later = hh.top(1, now=160.0)[0]
    assert later.key == b"burst"
    assert later.per_second == pytest.approx(500 / 60 / math.e)


def test_recent_writes_outrank_older_bigger_ones() -> None:
    hh = DecayingHeavyHitters(10, window_seconds=5.0, now=WARM)
    for _ in range(1000):
        hh.add(b"old", now=0.0)
    for _ in range(100):
        hh.add(b"new", now=30.0)  # 6 windows later: old's 1000 weigh 1000 * e^-6 ~ 2.5
    top = hh.top(2, now=30.0)
    assert [r.key for r in top] == [b"new", b"old"]
    assert top[0].per_second == pytest.approx(100 / 5)
    assert top[1].per_second == pytest.approx(1000 * math.exp(-6) / 5)


def test_a_steady_rate_is_exact_during_the_warm_up() -> None:
    # Without the warm-up divisor, 30 s into a 60 s window would show 39% of the rate.
    hh = DecayingHeavyHitters(10, window_seconds=60.0, now=0.0)
    t = 0.0
    for _ in range(300):
        t += 0.1
        hh.add_many([b"k"] * 5, now=t)  # 50 writes/s
    rate = hh.rate(b"k", now=t)
    assert rate is not None
    assert rate.per_second == pytest.approx(50.0, rel=0.01)


def test_the_first_seconds_do_not_make_a_few_writes_hot() -> None:
    hh = DecayingHeavyHitters(10, window_seconds=60.0, now=0.0)
    hh.add_many([b"k"] * 10, now=0.01)
    rate = hh.rate(b"k", now=0.02)
    assert rate is not None
    # observed time floored at MIN_OBSERVED_SECONDS = 10 s: 1/s, not 10 / 0.02 s = 500/s
    assert rate.per_second == pytest.approx(1.0 * math.exp(-0.01 / 60))
    # A window shorter than the floor is its own floor.
    short = DecayingHeavyHitters(10, window_seconds=2.0, now=0.0)
    short.add_many([b"k"] * 10, now=0.0)
    assert short.top(1, now=0.0)[0].per_second == pytest.approx(5.0)


def test_guaranteed_top_ranks_by_lower_bound() -> None:
    sketch = SpaceSaving(2)
    sketch.add_many([b"a"] * 5 + [b"b"] * 3)
    sketch.add(b"c")  # takes b's counter: count 4, error 3 (guaranteed 1)
    assert [c.key for c in sketch.top(2)] == [b"a", b"c"]
    hh = DecayingHeavyHitters(2, window_seconds=1.0, now=WARM)
    hh.add_many([b"x"] * 3, now=0.0)
    hh.add_many([b"y"] * 2, now=0.0)
    hh.add(b"z", now=0.0)  # evicts y: z = 3 (error 2), a tie with x on the upper bound
    top = hh.top(2, now=0.0, guaranteed=True)
    assert [r.key for r in top] == [b"x", b"z"]
    assert top[0].guaranteed_per_second == pytest.approx(3.0)
    assert top[1].guaranteed_per_second == pytest.approx(1.0)
    assert top[1].per_second == pytest.approx(3.0)


def test_rescaling_is_invisible() -> None:
    window = 1.0
    a = DecayingHeavyHitters(5, window, now=WARM)
    for key in (b"x", b"y", b"x"):
        a.add(key, now=1.0)
    # 30 windows per step: the forward-decay landmark has to move at steps 2 and 4.
    t = 1.0
    for _ in range(4):
        t += RESCALE_EXPONENT * window * 0.75
        a.add(b"x", now=t)
        a.add(b"z", now=t)
    rates = {r.key: r.per_second for r in a.top(5, now=t)}
    # x: one write now plus ones long decayed; z: one write now.
    assert rates[b"z"] == pytest.approx(1 / window)
    assert rates[b"x"] == pytest.approx(1 / window + math.exp(-RESCALE_EXPONENT * 0.75) / window)
    assert all(math.isfinite(v) for v in rates.values())
    assert a.sketch.total < math.exp(RESCALE_EXPONENT + 1)  # the landmark moved forward


def test_decayed_sketch_keeps_the_bounds_against_exact_decayed_counts() -> None:
    rng = random.Random(5)
    window = 3.0
    hh = DecayingHeavyHitters(25, window, now=WARM)
    events: list[tuple[float, bytes]] = []
    t = 0.0
    for _ in range(400):
        t += rng.uniform(0.0, 0.3)
        batch = zipf_stream(rng, distinct=500, length=rng.randint(1, 20))
        hh.add_many(batch, now=t)
        events.extend((t, k) for k in batch)
    truth: dict[bytes, float] = {}
    for when, key in events:
        truth[key] = truth.get(key, 0.0) + math.exp(-(t - when) / window) / window
    top = {r.key: r for r in hh.top(25, now=t)}
    for key, rate in top.items():
        assert rate.per_second - rate.error_per_second <= truth[key] + 1e-9
        assert truth[key] <= rate.per_second + 1e-9
    best = max(truth, key=truth.__getitem__)
    assert next(iter(top)) == best


def test_a_very_long_quiet_gap_forgets_everything_instead_of_failing() -> None:
    # A day of a 60 s window: exp(-1440) is 0.0 in floating point (below ~exp(-745)).
    hh = DecayingHeavyHitters(3, window_seconds=60.0, now=WARM)
    hh.add_many([b"old-1", b"old-2", b"old-3"], now=0.0)
    hh.add(b"new", now=24 * 3600.0)
    assert [(r.key, r.per_second) for r in hh.top(3, now=24 * 3600.0)] == [(b"new", 1 / 60)]
    assert len(hh) == 1
