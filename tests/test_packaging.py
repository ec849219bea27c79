"""The wheel carries what `etcd-inspector generate` needs outside a source checkout."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from etcd_inspector import mixin

REPO = Path(__file__).resolve().parents[1]


def test_setup_py_copies_the_same_sources_as_mixin_py():
    tree = ast.parse((REPO / "setup.py").read_text())
    patterns = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "SOURCE_PATTERNS"
    )
    assert tuple(patterns) == mixin.SOURCE_PATTERNS


def test_wheel_contains_the_mixin_sources_and_the_console_script(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("etcd_inspector-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "etcd_inspector/mixin_data/mixin.libsonnet",
        "etcd_inspector/mixin_data/config.libsonnet",
        "etcd_inspector/mixin_data/dashboards/lib/panels.libsonnet",
        "etcd_inspector/cli.py",
    ):
        assert expected in names, expected
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "etcd-inspector = etcd_inspector.cli:main" in text
