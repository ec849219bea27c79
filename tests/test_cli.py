"""cli.py: flags -> raw config (pure), and the real CLI's exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from etcd_inspector import __version__
from etcd_inspector.cli import UsageError, build_parser, flag_overrides, parse_listen_address
from harness import exporter_command


def flags(*argv: str):
    return flag_overrides(build_parser().parse_args(["run", *argv]))


def test_no_flags_override_nothing() -> None:
    assert flags() == {}


def test_endpoints_with_metrics_urls_become_endpoint_mappings() -> None:
    raw = flags(
        "--etcd.endpoints=http://a:2379, http://b:2379",
        "--etcd.metrics-urls=http://a:2381/metrics,http://b:2381/metrics",
        "--etcd.cluster-name=prod",
        "--etcd.ca-file=/ca.pem",
        "--etcd.username=inspector",
        "--etcd.password-file=/pw",
        "--inspection.interval=5s",
        "--log.level=debug",
        "--web.listen-address=:9000",
    )
    assert raw == {
        "clusters": [
            {
                "name": "prod",
                "endpoints": [
                    {"url": "http://a:2379", "metrics_url": "http://a:2381/metrics"},
                    {"url": "http://b:2379", "metrics_url": "http://b:2381/metrics"},
                ],
                "tls": {"ca_file": "/ca.pem"},
                "username": "inspector",
                "password_file": "/pw",
            }
        ],
        "inspection": {"interval": "5s"},
        "log": {"level": "debug"},
        "web": {"listen_address": ":9000"},
    }


def test_endpoints_alone_are_plain_urls_in_cluster_default() -> None:
    assert flags("--etcd.endpoints=http://a:2379,,http://b:2379,")["clusters"] == [
        {"name": "default", "endpoints": ["http://a:2379", "http://b:2379"]}
    ]


def test_metrics_urls_count_must_match_endpoints() -> None:
    with pytest.raises(UsageError, match=r"--etcd.metrics-urls has 1 URLs for 2 endpoints"):
        flags("--etcd.endpoints=http://a:2379,http://b:2379", "--etcd.metrics-urls=http://a:2381")


def test_cluster_flags_without_endpoints_are_an_error() -> None:
    with pytest.raises(UsageError) as err:
        flags("--etcd.ca-file=/ca.pem", "--etcd.username=u")
    assert str(err.value) == (
        "--etcd.ca-file, --etcd.username need --etcd.endpoints (or put them in the config file)"
    )


@pytest.mark.parametrize(
    ("address", "parsed"),
    [(":9979", (None, 9979)), ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:9979", ("::1", 9979))],
)
def test_parse_listen_address(address: str, parsed: tuple[str | None, int]) -> None:
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize("address", ["9979", "host:", "host:http"])
def test_parse_listen_address_rejects(address: str) -> None:
    with pytest.raises(UsageError, match="expected \\[host\\]:port"):
        parse_listen_address(address)


# --------------------------------------------------------------------------- the real CLI


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*exporter_command(), *argv], capture_output=True, text=True, timeout=30, check=False
    )


BAD_CONFIG = """\
log:
  level: loud
scrape:
  timeuot: 10s
clusters:
  - name: main
    endpoint: ['http://10.0.0.1:2379']
  - name: other
    endpoints: ['htp://10.0.0.2:2379']
"""


def test_config_check_names_every_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yml"
    config.write_text(BAD_CONFIG)
    out = cli("run", f"--config.file={config}", "--config.check")
    assert out.returncode == 2
    assert out.stdout == ""
    err = out.stderr
    assert err.startswith(f"etcd-inspector: 5 problems in {config}:")
    assert "log.level: 'loud' is not one of debug, info, warn, error" in err
    assert "scrape: unknown key 'timeuot' (did you mean 'timeout'?)" in err
    assert "clusters[0]: unknown key 'endpoint' (did you mean 'endpoints'?)" in err
    assert "clusters[0]: missing required key 'endpoints'" in err
    assert "clusters[1].endpoints[0]: 'htp://10.0.0.2:2379' is not an http(s) URL" in err


def test_run_without_check_also_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yml"
    config.write_text("clusters:\n  - name: main\n    endpoints: ['http://a:2379']\nbogus: 1\n")
    out = cli("run", f"--config.file={config}", "--web.listen-address=127.0.0.1:1")
    assert out.returncode == 2
    assert "top level: unknown key 'bogus'" in out.stderr


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    config = tmp_path / "good.yml"
    config.write_text(
        "inspection:\n  interval: 30s\n"
        "clusters:\n"
        "  - name: main\n"
        "    endpoints:\n"
        "      - http://127.0.0.1:9\n"
        "      - {url: 'http://127.0.0.2:9', metrics_url: 'http://127.0.0.2:2381'}\n"
    )
    out = cli("run", f"--config.file={config}", "--config.check")
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == f"{config}: configuration OK (1 cluster(s))\n"


def test_flags_override_the_file_and_are_checked_too(tmp_path: Path) -> None:
    config = tmp_path / "good.yml"
    config.write_text("clusters:\n  - name: main\n    endpoints: ['http://127.0.0.1:9']\n")
    out = cli(
        "run", f"--config.file={config}", "--config.check",
        "--etcd.endpoints=http://127.0.0.1:9,http://127.0.0.2:9",
        "--etcd.metrics-urls=http://127.0.0.1:2381",
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr == "etcd-inspector: --etcd.metrics-urls has 1 URLs for 2 endpoints\n"
    out = cli(
        "run", "--config.check", "--etcd.endpoints=http://127.0.0.1:9", "--inspection.interval=5"
    )
    assert out.returncode == 2
    assert "inspection.interval: '5' has no unit; write e.g. '5s'" in out.stderr


def test_version() -> None:
    out = cli("--version")
    assert (out.returncode, out.stdout) == (0, f"etcd-inspector {__version__}\n")


def test_scan_pace_flag_overrides_the_file_and_keeps_its_other_options(tmp_path: Path) -> None:
    from etcd_inspector.cli import build_parser, load_config

    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "inspection: {probes: {bigvalue: {keys_per_second: 500, top_n: 3}}}\n"
        "clusters: [{name: c, endpoints: ['http://127.0.0.1:2379']}]\n"
    )
    args = build_parser().parse_args(
        ["inspect", f"--config.file={cfg}", "--scan.keys-per-second=0"]
    )
    options = load_config(args).probes["bigvalue"].options
    assert (options.keys_per_second, options.top_n) == (0, 3)


def test_run_with_nothing_to_watch_says_how_to_give_endpoints() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "etcd_inspector", "run"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "--etcd.endpoints" in out.stderr and "--config.file" in out.stderr


def run_cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "etcd_inspector", *argv],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith(("ts=", "{"))]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("target", ["a-file", "a-file/below", "/proc/no/such/dir"])
def test_generate_into_something_not_a_writable_directory_is_one_line_exit_4(
    tmp_path: Path, target: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    out = run_cli("generate", "--out", str(tmp_path / target) if target[0] != "/" else target)
    assert out.returncode == 4
    line = one_line(out.stderr)
    assert line.startswith("etcd-inspector generate: ") and ("directory" in line), line


def test_run_on_a_busy_or_unresolvable_address_is_one_line_exit_3() -> None:
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        out = run_cli("run", "--etcd.endpoints=http://127.0.0.1:1",
                      f"--web.listen-address=127.0.0.1:{port}")  # fmt: skip
    finally:
        busy.close()
    assert out.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in one_line(out.stderr)

    out = run_cli("run", "--etcd.endpoints=http://127.0.0.1:1",
                  "--web.listen-address=no-such-host.invalid:9979")  # fmt: skip
    assert out.returncode == 3
    assert "cannot listen on no-such-host.invalid:9979" in one_line(out.stderr)


def test_demo_on_a_busy_port_says_so_before_starting_etcd() -> None:
    import socket
    import time

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    started = time.monotonic()
    try:
        out = run_cli("demo", f"--web.listen-address=127.0.0.1:{port}")
    finally:
        busy.close()
    assert out.returncode == 3
    line = one_line(out.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--web.listen-address" in line
    assert time.monotonic() - started < 10  # no cluster was started


def test_the_demo_banner_gives_commands_that_work_when_pasted(tmp_path: Path) -> None:
    import shlex

    from etcd_inspector.demo.run import banner

    text = banner("127.0.0.1:9979", ["http://127.0.0.1:2379"], tmp_path)
    (command,) = [line.strip() for line in text.splitlines() if " inspect " in line
                  and "--watch" not in line]  # fmt: skip
    argv = shlex.split(command)
    assert Path(argv[0]).is_absolute() and Path(argv[0]).exists(), argv[0]
    assert "--etcd.cluster-name=demo" in argv
    assert "http://127.0.0.1:9979/api/v1/status" in text
