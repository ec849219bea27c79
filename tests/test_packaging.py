"""The wheel carries what `etcd-inspector generate` needs outside a source checkout."""

import ast
import os
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
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


def dockerignore_patterns():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "exceptions would need a real matcher"
    return patterns


def docker_excludes(path, patterns):
    """Whether .dockerignore leaves `path` (relative to the repo) out of the build context: a
    pattern matching the path or one of its folders (`**/` at any depth). Python's `*` also
    crosses `/`, so this errs on the side of "excluded"."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for prefix in prefixes:
        for pattern in patterns:
            if fnmatch(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch(prefix.rsplit("/", 1)[-1], pattern[3:]):
                return True
    return False


def dockerfile_copy_sources():
    sources = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_dockerignore_leaves_out_the_virtualenv_git_and_outputs():
    patterns = dockerignore_patterns()
    left_out = [
        ".venv/bin/python",
        ".git/HEAD",
        "build/lib/x.py",
        "dist/x.whl",
        "out/x.yaml",
        ".demo/x",
        ".pytest_cache/v",
        ".ruff_cache/x",
        "exporter/etcd_inspector/__pycache__/x.pyc",
        "exporter/etcd_inspector.egg-info/PKG-INFO",
    ]
    for path in left_out:
        assert docker_excludes(path, patterns), path


def test_dockerignore_keeps_everything_the_dockerfile_copies():
    patterns = dockerignore_patterns()
    sources = dockerfile_copy_sources()
    assert {"pyproject.toml", "exporter", "mixin.libsonnet", "servicemonitors"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not docker_excludes(source, patterns), source
        for root, dirs, files in os.walk(REPO / source):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info")]
            for name in files:
                path = (Path(root) / name).relative_to(REPO).as_posix()
                if not path.endswith(".pyc"):
                    assert not docker_excludes(path, patterns), path
