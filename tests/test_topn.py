"""Bounded top-N (pure)."""

from __future__ import annotations

import math
import random

import pytest

from etcd_inspector.keyspace.topn import TopN


def test_keeps_the_n_largest_largest_first() -> None:
    top: TopN[str] = TopN(3)
    for value, key in [(5, "e"), (1, "a"), (9, "i"), (3, "c"), (7, "g"), (2, "b")]:
        top.push(value, key)
    assert top.items() == [(9, "i"), (7, "g"), (5, "e")]
    assert len(top) == 3


def test_matches_sorting_on_random_input() -> None:
    rng = random.Random(7)
    values = [(rng.randrange(10_000), f"k{i}") for i in range(5000)]
    top: TopN[str] = TopN(10)
    for value, key in values:
        top.push(value, key)
    expected = sorted((v for v, _ in values), reverse=True)[:10]
    assert [v for v, _ in top.items()] == expected


def test_floor_is_the_entry_bar() -> None:
    top: TopN[str] = TopN(2)
    assert top.floor == -math.inf
    top.push(4, "a")
    assert top.floor == -math.inf  # not full yet: anything enters
    top.push(8, "b")
    assert top.floor == 4
    top.push(6, "c")
    assert top.floor == 6
    assert top.items() == [(8, "b"), (6, "c")]


def test_ties_first_come_first_kept() -> None:
    top: TopN[bytes] = TopN(2)
    for key in (b"/a", b"/b", b"/c", b"/d"):
        top.push(1, key)
    assert top.items() == [(1, b"/a"), (1, b"/b")]


def test_fewer_items_than_n() -> None:
    top: TopN[str] = TopN(10)
    top.push(1, "x")
    assert top.items() == [(1, "x")]


def test_zero_keeps_nothing() -> None:
    top: TopN[str] = TopN(0)
    top.push(10**9, "x")
    assert top.items() == []
    assert top.floor == math.inf


def test_negative_size_is_rejected() -> None:
    with pytest.raises(ValueError):
        TopN(-1)
