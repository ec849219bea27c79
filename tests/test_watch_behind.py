"""When the hot-key watch counts as behind (pure): watch.py's behind_by and catch_up_target."""

from __future__ import annotations

from etcd_inspector.probes.hotkeys import CATCH_UP_SECONDS, behind_by, catch_up_target


def test_catch_up_target_is_the_newest_revision_seen_long_enough_ago() -> None:
    checkpoints = [(100.0, 50), (110.0, 80), (118.0, 95)]
    assert catch_up_target(checkpoints, now=100.0 + CATCH_UP_SECONDS - 0.1) == 0  # none yet
    assert catch_up_target(checkpoints, now=100.0 + CATCH_UP_SECONDS) == 50
    assert catch_up_target(checkpoints, now=120.0) == 80  # 95 is only 2s old
    assert catch_up_target([], now=1e9) == 0


def test_a_busy_watch_that_keeps_up_is_never_behind() -> None:
    # 30,000 writes/s: the status probe saw 1,500,000 five seconds ago, the cluster is at
    # 1,650,000 now and the watch, 0.1s of writes behind, at 1,647,000.
    assert behind_by(last_seen=1_647_000, catching_up_to=0, target=1_500_000) == 0


def test_a_silent_or_replaying_watch_is_behind_by_what_it_owes() -> None:
    # A frozen member: its stream is silent while the others moved on.
    assert behind_by(last_seen=100, catching_up_to=0, target=160) == 60
    # A stream resumed from the past: behind until it reaches the member's revision at creation.
    assert behind_by(last_seen=100, catching_up_to=161, target=0) == 61
    assert behind_by(last_seen=161, catching_up_to=161, target=150) == 0
    # Never streamed: down, not behind.
    assert behind_by(last_seen=None, catching_up_to=0, target=160) == 0
