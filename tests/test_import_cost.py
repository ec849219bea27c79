"""A command loads only what it uses (issue 21: start-up; issue 20: the snapshot's memory).

Not a timing test: each case starts a fresh interpreter, does what the command does before its
first byte of work, and lists the heavy third-party packages then in `sys.modules`. Timings are
in BENCHMARKS.md; what is asserted here is the cause of them (aiohttp, grpc and aetcd, boto3,
jsonnet and cryptography were ~0.3 s and ~40 MB of RSS of every `--help`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("aiohttp", "aetcd", "boto3", "botocore", "cryptography", "grpc", "_jsonnet", "s3transfer")

_PROBE = """
import contextlib, io, json, sys
{body}
heavy = {heavy!r}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set(heavy))))
"""

_HELP = """
from etcd_inspector.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main({argv!r})
    except SystemExit:
        pass
"""


def loaded(body: str) -> list[str]:
    """The heavy packages a fresh interpreter has loaded after running `body`."""
    code = _PROBE.format(body=body, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    result: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "argv", [["--help"], ["inspect", "--help"], ["snapshot", "--help"], ["run", "--help"]]
)
def test_help_loads_no_network_stack(argv: list[str]) -> None:
    assert loaded(_HELP.format(argv=argv)) == []


def test_snapshot_loads_the_etcd_client_only() -> None:
    # `snapshot` talks gRPC to etcd (grpc, aetcd); boto3 comes with the first s3:// location
    # (backup/s3.py), never aiohttp, jsonnet or cryptography.
    assert loaded("import etcd_inspector.snapshot") == ["aetcd", "grpc"]


def test_inspect_loads_no_bucket_web_or_jsonnet_code() -> None:
    # aiohttp comes with the members' /metrics fetcher, when inspect makes one.
    assert loaded("import etcd_inspector.inspect") == ["aetcd", "grpc"]


def test_inspect_builds_its_runtimes_without_aiohttp() -> None:
    # Up to its first gRPC call `inspect` needs no HTTP client: aiohttp (~0.2 s, two TLS
    # contexts at import) comes with the first /metrics fetch (etcd/http_session.py).
    body = """
from etcd_inspector.cli import build_parser, load_config
from etcd_inspector.inspect import cluster_probes, selected_probes
from etcd_inspector.runtime.runtime import build_runtime
args = build_parser().parse_args(["inspect", "--etcd.endpoints", "http://127.0.0.1:1"])
config = load_config(args)
wanted, _ = selected_probes(config, None, None)
for cluster in config.clusters:
    rt = build_runtime(cluster, config, only=cluster_probes(config, cluster.name, wanted, None))
    assert rt.metrics.targets and "quota" in rt.probes
"""
    assert loaded(body) == ["aetcd", "grpc"]


def test_a_command_without_a_file_loads_no_yaml() -> None:
    # PyYAML (~20-40 ms here) comes with a --config.file or a --mixin.values file only.
    code = _PROBE.format(body="import etcd_inspector.cli, etcd_inspector.inspect", heavy=("yaml",))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_probe_sees_what_is_loaded() -> None:
    # The check is not vacuous: the exporter's app does load aiohttp.
    assert "aiohttp" in loaded("import etcd_inspector.web.app")
