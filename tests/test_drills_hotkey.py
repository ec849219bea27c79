"""Drill group `hotkey`: a 200 KiB value planted and one key rewritten 100 times/s (a second
writer); healed by stopping that writer and deleting the value. One cluster; see
tests/drillkit.py."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from conftest import etcdctl
from drill_catalog import FINDINGS, NEVER
from drillkit import Expect, drill_stack, record_group, run_drill, start_writer, stop_process

pytestmark = [pytest.mark.etcd, pytest.mark.prometheus, pytest.mark.drills]
GROUP = "hotkey"
BIG_KEY = "/drill/big-bundle"
HOT_KEY = "/drill/runaway-lease"


def test_a_big_value_and_a_hot_key(etcd_binary: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with drill_stack(GROUP, tmp_path, etcd_binary) as stack:
        fc = stack.fc
        hot: list[subprocess.Popen[bytes]] = []

        def inject() -> None:
            hot.append(start_writer(
                [m.client_url for m in fc.cluster.members], tmp_path / "hot-writer.log",
                "--hot-key", HOT_KEY, "--hot-rate", "100",
                "--big-key", BIG_KEY, "--big-bytes", str(200 << 10),
            ))  # fmt: skip

        def heal() -> None:
            for process in hot:
                stop_process(process)
            etcdctl(fc.cluster, "del", BIG_KEY)

        run_drill(
            stack, "a big value and a hot key", inject, heal,
            [
                Expect("EtcdInspectorBigValues", "info"),
                Expect("EtcdInspectorHotKey", "warning"),
            ],
            set(), FINDINGS[GROUP], NEVER.get(GROUP, ()),
            inspect_probes=("status", "bigvalue"),
        )  # fmt: skip
    record_group(GROUP, time.monotonic() - started)
