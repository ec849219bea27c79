"""The drill's pure parts: the polling schedule and verdict (a scripted API and a fake clock),
the HTTP client configuration, and reading a rendered experiment. The real APIs are in
test_drill.py."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import pytest

from etcd_inspector import mixin
from etcd_inspector.drill.alertsapi import ApiError, ApiErrorKind, FiringAlert
from etcd_inspector.drill.arguments import add_drill_arguments
from etcd_inspector.drill.httpconfig import HttpClientConfig, HttpConfigError, load_http_config
from etcd_inspector.drill.render import render_json, render_text
from etcd_inspector.drill.run import DrillPlan, plan_from_args, read_experiment, watch
from etcd_inspector.drill.timeline import Observer
from etcd_inspector.errors import UsageError


def alert(name: str, **labels: str) -> FiringAlert:
    return FiringAlert(name, tuple(sorted(labels.items())))


class ScriptedApi:
    """Answers from a script of (from second, firing alerts or an error), on a fake clock."""

    def __init__(self, script: list[tuple[float, list[FiringAlert] | ApiError]]) -> None:
        self.script = script
        self.now = 0.0
        self.calls: list[float] = []

    def firing(self) -> list[FiringAlert]:
        self.calls.append(self.now)
        answer = [a for at, a in self.script if at <= self.now][-1]
        if isinstance(answer, ApiError):
            raise answer
        return answer

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def plan(fault: float, resolve: float, interval: float) -> DrillPlan:
    return DrillPlan("prometheus", "http://p", ("Fault",), fault, resolve, interval, 5.0,
                     HttpClientConfig())  # fmt: skip


def run(api: ScriptedApi, drill: DrillPlan) -> Observer:
    observer = Observer(expected=drill.expected)
    watch(api, observer, drill, clock=lambda: api.now, sleep=api.sleep)  # type: ignore[arg-type]
    return observer


def test_polls_on_a_grid_with_one_at_the_fault_end_and_stops_when_resolved() -> None:
    fault = alert("Fault", member="m2")
    api = ScriptedApi([(0, []), (12, [fault]), (31, [])])
    observer = run(api, plan(fault=25, resolve=60, interval=10))
    assert api.calls == [0, 10, 20, 25, 30, 40]
    report = observer.report("Prometheus", "http://p", 25, 60, 10)
    (result,) = report.expected
    assert result.fired_after == 20 and result.resolved_after == 40 and report.passed


def test_gives_up_at_the_resolve_timeout() -> None:
    api = ScriptedApi([(0, []), (5, [alert("Fault")])])
    observer = run(api, plan(fault=10, resolve=15, interval=5))
    assert api.calls[-1] == 25
    report = observer.report("Prometheus", "http://p", 10, 15, 5)
    assert report.problems == ["Fault did not resolve within 15s of the fault's end"]


def test_nothing_fired_ends_at_the_fault_end() -> None:
    api = ScriptedApi([(0, [])])
    observer = run(api, plan(fault=10, resolve=600, interval=5))
    assert api.calls == [0, 5, 10]
    assert observer.report("Prometheus", "http://p", 10, 600, 5).problems == ["Fault did not fire"]


def test_a_failed_first_poll_ends_the_drill_later_ones_are_counted() -> None:
    down = ApiError(ApiErrorKind.UNREACHABLE, "cannot reach Prometheus at http://p: refused")
    with pytest.raises(ApiError):
        run(ScriptedApi([(0, down)]), plan(fault=10, resolve=5, interval=5))
    api = ScriptedApi([(0, []), (4, down), (6, [alert("Fault")]), (11, [])])
    observer = run(api, plan(fault=10, resolve=5, interval=5))
    report = observer.report("Prometheus", "http://p", 10, 5, 5)
    assert report.failed_polls == 1 and report.last_poll_error == str(down)
    assert report.passed and report.expected[0].fired_after == 10


def test_a_refiring_alert_keeps_its_first_time() -> None:
    observer = Observer(expected=["Fault"])
    observer.observe(0, [])
    observer.observe(5, [alert("Fault")])
    observer.observe(10, [])
    observer.observe(15, [alert("Fault")])
    observer.observe(20, [])
    (result,) = observer.report("Prometheus", "http://p", 20, 5, 5).expected
    assert result.fired_after == 5 and result.resolved_after == 20


def test_only_alerts_that_match_count() -> None:
    staging, prod = alert("Fault", cluster="staging"), alert("Fault", cluster="prod")
    api = ScriptedApi([(0, [prod]), (5, [prod, staging]), (10, [prod])])
    drill = DrillPlan("prometheus", "http://p", ("Fault",), 10, 5, 5, 5.0,
                      HttpClientConfig(), match=(("cluster", "staging"),))  # fmt: skip
    observer = Observer(expected=drill.expected)
    watch(api, observer, drill, clock=lambda: api.now, sleep=api.sleep)  # type: ignore[arg-type]
    report = observer.report("Prometheus", "http://p", 10, 5, 5, drill.match)
    assert report.passed and report.firing_at_start == ()
    assert 'counting only alerts with cluster="staging"' in render_text(report)
    assert json.loads(render_json(report))["match"] == {"cluster": "staging"}
    (instance,) = report.expected[0].instances
    assert instance.labels == (("cluster", "staging"),)


def test_match_needs_label_equals_value() -> None:
    parser = argparse.ArgumentParser()
    add_drill_arguments(parser)
    args = parser.parse_args(["--prometheus.url", "http://p", "--expect", "X", "--duration",
                              "1m", "--match", "cluster"])  # fmt: skip
    with pytest.raises(UsageError, match="--match: expected LABEL=VALUE"):
        plan_from_args(args)
    args.match = ['cluster="staging"', "job=etcd"]
    assert plan_from_args(args).match == (("cluster", "staging"), ("job", "etcd"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_http_config_basic_auth_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    write(tmp_path / "pw", "hunter2\n")
    config = load_http_config(
        write(tmp_path / "h.yml", "basic_auth: {username: u, password_file: pw}\n")
    )
    assert config.headers() == {"Authorization": "Basic " + base64.b64encode(b"u:hunter2").decode()}
    assert "hunter2" not in repr(config)


def test_http_config_bearer_token_and_authorization(tmp_path: Path) -> None:
    write(tmp_path / "token", "abc\n")
    bearer = load_http_config(write(tmp_path / "a.yml", "bearer_token_file: token\n"))
    assert bearer.headers() == {"Authorization": "Bearer abc"}
    auth = load_http_config(write(tmp_path / "b.yml", "authorization: {credentials: xyz}\n"))
    assert auth.headers() == {"Authorization": "Bearer xyz"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth: {password: p}\n", "basic_auth needs a username"),
        ("basic_auth: {username: u}\nbearer_token: t\n",
         "give one of basic_auth, bearer_token, not several"),
        ("tls_config: {ca_file: missing.pem}\n", "missing.pem is not a readable file"),
        ("tls_config: {server_name: x}\n", "unknown key in tls_config: server_name"),
        ("basic_auth: {username: u, password: p, password_file: f}\n",
         "basic_auth: give password or password_file, not both"),
        ("- a\n", "the file must be a mapping"),
    ],
)  # fmt: skip
def test_http_config_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(HttpConfigError, match=message):
        load_http_config(write(tmp_path / "h.yml", text))


@pytest.mark.parametrize("name", sorted(n for n in mixin.render() if n.startswith(mixin.CHAOS_DIR)))
def test_every_rendered_experiment_gives_the_drill_its_alerts_and_duration(
    tmp_path: Path, name: str
) -> None:
    path = write(tmp_path / "e.yaml", str(mixin.render()[name]))
    alerts, duration = read_experiment(path)
    assert alerts and all(a.startswith(("etcd", "EtcdInspector")) for a in alerts)
    parser = argparse.ArgumentParser()
    add_drill_arguments(parser)
    argv = ["--prometheus.url", "http://p:9090/", "--experiment", str(path)]
    drill = plan_from_args(parser.parse_args([*argv, "--expect", alerts[0]]))
    assert drill.expected == tuple(alerts)  # once each
    assert drill.url == "http://p:9090"
    assert duration is not None and drill.fault_seconds >= 600


def test_a_file_that_is_not_a_rendered_experiment_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "e.yaml", "apiVersion: v1\nkind: ConfigMap\n")
    with pytest.raises(UsageError, match=r"expected one object annotated etcd-inspector\.io/"):
        read_experiment(path)
