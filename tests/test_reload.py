"""Configuration reloads without a restart (runtime/reload.py): SIGHUP and POST /-/reload.

Against a real etcd cluster watched under two names by a real `etcd-inspector run`: a reload
that adds a cluster makes its series appear, one that removes it makes them go, a changed probe
setting applies, a bad file is refused with one log line while the old configuration keeps
running, and /-/reload is behind basic auth when the web config turns it on.
"""

from __future__ import annotations

import base64
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from etcd_inspector.demo.localcluster import LocalCluster
from harness import ExporterProcess, Scrape, run_exporter

pytestmark = pytest.mark.etcd

RELOAD_OK = "etcd_inspector_config_last_reload_successful"
RELOAD_TIME = "etcd_inspector_config_last_reload_success_timestamp_seconds"


def config_text(cluster: LocalCluster, names: list[str], probes: str = "") -> str:
    endpoints = "".join(
        f"      - {{url: {m.client_url}, metrics_url: {m.metrics_url}}}\n" for m in cluster.members
    )
    body = "".join(f"  - name: {name}\n    endpoints:\n{endpoints}" for name in names)
    return f"inspection:\n  interval: 1s\n{probes}clusters:\n{body}"


def clusters_with_probes(scrape: Scrape) -> set[str]:
    return {s.labels["cluster"] for s in scrape.samples("etcd_inspector_probe_success")}


def probes_of(scrape: Scrape, cluster: str) -> set[str]:
    return {
        s.labels["probe"]
        for s in scrape.samples("etcd_inspector_probe_success")
        if s.labels["cluster"] == cluster
    }


def post(
    exporter: ExporterProcess, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    req = urllib.request.Request(
        exporter.base_url + path, data=b"", method="POST", headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def config_file(tmp_path: Path, shared_cluster: LocalCluster) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(config_text(shared_cluster, ["a"]))
    return path


@pytest.fixture
def exporter(tmp_path: Path, config_file: Path) -> Iterator[ExporterProcess]:
    with run_exporter(tmp_path, f"--config.file={config_file}") as running:
        running.wait_for(lambda s: clusters_with_probes(s) == {"a"}, "cluster a probed")
        yield running


def test_post_reload_adds_then_removes_a_cluster(
    exporter: ExporterProcess, config_file: Path, shared_cluster: LocalCluster
) -> None:
    started = exporter.scrape().value(RELOAD_TIME)
    assert exporter.scrape().value(RELOAD_OK) == 1.0
    assert started is not None and started <= time.time()

    config_file.write_text(config_text(shared_cluster, ["a", "b"]))
    assert post(exporter, "/-/reload") == (200, "Configuration reloaded.\n")
    scrape = exporter.wait_for(lambda s: clusters_with_probes(s) == {"a", "b"}, "b added")
    assert scrape.value(RELOAD_OK) == 1.0
    assert (scrape.value(RELOAD_TIME) or 0) > started
    exporter.wait_for(
        lambda s: set(s.by_member("etcd_inspector_member_up", cluster="b")) == {"m1", "m2", "m3"},
        "b's members up",
    )

    config_file.write_text(config_text(shared_cluster, ["b"]))
    assert post(exporter, "/-/reload")[0] == 200
    scrape = exporter.scrape()  # the reply comes after the change: no wait
    assert clusters_with_probes(scrape) == {"b"}
    assert 'cluster="a"' not in scrape.text
    assert "configuration reloaded" in exporter.log()


def test_changed_probe_settings_apply(
    exporter: ExporterProcess, config_file: Path, shared_cluster: LocalCluster
) -> None:
    before = probes_of(exporter.scrape(), "a")
    assert "bigvalue" in before, before
    off = "  probes:\n    bigvalue:\n      enabled: false\n"
    config_file.write_text(config_text(shared_cluster, ["a"], off))
    assert post(exporter, "/-/reload")[0] == 200
    exporter.wait_for(lambda s: probes_of(s, "a") == before - {"bigvalue"}, "bigvalue off")


def test_bad_file_is_refused_and_the_old_config_keeps_running(
    exporter: ExporterProcess, config_file: Path, shared_cluster: LocalCluster
) -> None:
    good_time = exporter.scrape().value(RELOAD_TIME)
    config_file.write_text("clusters:\n  - name: a\n    endpoints: [nonsense]\n  bad: [\n")
    status, body = post(exporter, "/-/reload")
    assert status == 500, body
    assert body.startswith(f"Configuration not reloaded: {config_file}:"), body
    scrape = exporter.scrape()
    assert scrape.value(RELOAD_OK) == 0.0
    assert scrape.value(RELOAD_TIME) == good_time
    assert clusters_with_probes(scrape) == {"a"}
    refused = [line for line in exporter.log().splitlines() if "reload refused" in line]
    assert len(refused) == 1, exporter.log()
    # The old configuration keeps probing.
    exporter.wait_for(
        lambda s: s.value("etcd_inspector_probe_success", cluster="a", probe="status") == 1.0,
        "a probed",
    )

    # A good file afterwards: success again.
    config_file.write_text(config_text(shared_cluster, ["a"]))
    assert post(exporter, "/-/reload")[0] == 200
    assert exporter.scrape().value(RELOAD_OK) == 1.0


def test_sighup_reloads_like_post(
    exporter: ExporterProcess, config_file: Path, shared_cluster: LocalCluster
) -> None:
    config_file.write_text(config_text(shared_cluster, ["a", "c"]))
    exporter.signal(signal.SIGHUP)
    exporter.wait_for(lambda s: clusters_with_probes(s) == {"a", "c"}, "c added by SIGHUP")
    config_file.write_text("clusters: 7\n")
    exporter.signal(signal.SIGHUP)
    scrape = exporter.wait_for(lambda s: s.value(RELOAD_OK) == 0.0, "bad file refused")
    assert clusters_with_probes(scrape) == {"a", "c"}


def test_shutdown_during_a_reload_is_clean(
    exporter: ExporterProcess, config_file: Path, shared_cluster: LocalCluster
) -> None:
    config_file.write_text(config_text(shared_cluster, ["a", "b", "c"]))
    exporter.signal(signal.SIGHUP)
    exporter.signal(signal.SIGTERM)
    started = time.monotonic()
    assert exporter.stop(timeout=30) == 0, exporter.log()
    assert time.monotonic() - started < 20
    assert "Traceback" not in exporter.log()
    assert "Task was destroyed" not in exporter.log()


def test_reload_needs_basic_auth_when_it_is_on(
    tmp_path: Path, config_file: Path, shared_cluster: LocalCluster
) -> None:
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    good = {"Authorization": "Basic " + base64.b64encode(b"prom:secret").decode()}
    with run_exporter(
        tmp_path, f"--config.file={config_file}", f"--web.config.file={web_config}", headers=good
    ) as exporter:
        config_file.write_text(config_text(shared_cluster, ["a", "b"]))
        assert post(exporter, "/-/reload")[0] == 401
        wrong = {"Authorization": "Basic " + base64.b64encode(b"prom:wrong").decode()}
        assert post(exporter, "/-/reload", wrong)[0] == 401
        assert post(exporter, "/-/reload", good)[0] == 200
        exporter.wait_for(lambda s: clusters_with_probes(s) == {"a", "b"}, "b added")
