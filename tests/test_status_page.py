"""The status page and its JSON twin.

Unit tests render the page from the report model (escaping, verdicts, units); the browser tests
run the real exporter on a demo-like cluster (the demo's sample data and runaway writer), load
`/` in headless Chromium and assert on the DOM it built: members, quota use, the consistency
verdict, the planted big value and the hot key by name with their runbook links, and a frozen
member shown down with the reason. A screenshot is left in the test's tmp dir for a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import shutil
import subprocess
import threading
import time
from html import unescape
from pathlib import Path

import pytest

import heavy
from etcd_inspector.backup.bbolt import SnapshotStats
from etcd_inspector.backup.files import Checksum, Layout, SnapshotCheck, SnapshotFile
from etcd_inspector.backup.locations import BackupResult, LocationState
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.demo.run import HOT_WRITES_PER_SECOND, _runaway_writer
from etcd_inspector.demo.sampledata import BIG_KEY, HOT_KEY, load_sample_data
from etcd_inspector.errors import ErrorKind
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.certs import CertExpiry, CertsResult
from etcd_inspector.render.inspection import declared_checks
from etcd_inspector.render.jsondoc import to_json
from etcd_inspector.report.format import rfc3339
from etcd_inspector.report.thresholds import HOT_KEY_WRITES_PER_SECOND, RUNBOOK_URL_BASE
from etcd_inspector.report.view import no_view
from etcd_inspector.web import status_page
from harness import ExporterProcess, endpoints_flag, run_exporter
from test_report import T0, bigvalue_result, inspection, status_result

# --------------------------------------------------------------------------- DOM helpers


def _text(cell: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split())


def table_rows(dom: str, cls: str) -> list[list[str]]:
    """The text of each body cell of the first <table class="cls">."""
    match = re.search(rf'<table class="{cls}">(.*?)</table>', dom, re.S)
    if match is None:
        return []
    body = match.group(1).split("<tbody>", 1)[-1]
    return [
        [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def links(dom: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'<a href="([^"]+)"', dom)]


def page(*inspections, now: float = T0) -> str:
    doc = to_json(list(inspections), started_at=now, finished_at=now)
    return status_page.render(doc["clusters"], "/metrics", now=now)


# --------------------------------------------------------------------------- unit


def test_a_healthy_cluster_says_healthy_with_every_member_up() -> None:
    dom = page(inspection())
    assert 'class="verdict verdict-ok">healthy<' in dom
    members = table_rows(dom, "members")
    assert [r[0] for r in members] == ["m1", "m2", "m3"]
    assert all(r[2] == "up" for r in members)
    assert members[0][3] == "leader"
    assert members[0][8].startswith("0.2%")  # 4 MiB of 2 GiB
    assert "3 of 3 members compared at revision 500" in dom
    assert '<meta http-equiv="refresh"' in dom and "<script" not in dom
    assert "/metrics" in links(dom) and "/api/v1/status" in links(dom)


def test_findings_name_the_key_with_the_runbook_and_the_alerts_threshold() -> None:
    dom = page(inspection(bigvalue=bigvalue_result(big=1, top_size=1048576)))
    assert "1 finding<" in dom
    (row,) = table_rows(dom, "findings")
    assert row[:3] == ["info", "big_value", "/big/blob"]
    assert row[4:6] == ["1.0 MiB", "100.0 KiB"]
    assert RUNBOOK_URL_BASE + "etcdinspectorbigvalues" in links(dom)


def test_a_down_member_shows_why_and_an_auth_failure_is_not_down() -> None:
    dom = page(inspection(status=status_result(down=(2,))))
    members = {r[0]: r for r in table_rows(dom, "members")}
    assert members["m3"][2].startswith("down unreachable")
    assert "2 of 3 members up" in dom

    topology = status_result()
    refused = dataclasses.replace(
        topology.members[2], status=None, error=ErrorKind.AUTH_FAILED,
        detail="etcdserver: authentication failed, invalid user ID or password",
    )  # fmt: skip
    members_now = (*topology.members[:2], refused)
    dom = page(inspection(status=dataclasses.replace(topology, members=members_now)))
    members = {r[0]: r for r in table_rows(dom, "members")}
    assert members["m3"][2].startswith("up: auth failed authentication failed (wrong user")
    (finding,) = table_rows(dom, "findings")
    assert finding[1] == "auth_failed" and "answered, but authentication failed" in finding[3]


def test_a_cluster_that_does_not_answer_cannot_be_inspected() -> None:
    dom = page(inspection(status="no_answer: no member answered Status (timeout)"))
    assert 'verdict-error">cannot inspect<' in dom
    assert "no member answered Status (timeout)" in dom


def test_keys_and_names_are_escaped() -> None:
    hostile = '<script>alert("x")</script>&'
    insp = inspection(bigvalue=bigvalue_result(big=1, top_size=1048576))
    doc = to_json([insp], started_at=T0, finished_at=T0)["clusters"][0]
    doc["keyspace"]["largest_values"][0]["key"] = hostile
    doc["findings"][0]["subject"] = hostile
    doc["findings"][0]["runbook_url"] = "javascript:alert(1)"
    doc["name"] = hostile
    dom = status_page.render([doc], '/metrics"><script>', now=T0)
    assert "<script" not in dom
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in dom
    assert 'href="javascript' not in dom


def test_certificates_and_backups_have_sections_of_their_own() -> None:
    soon = CertExpiry("serving", "m1", "https://10.0.0.1:2379", T0 + 3 * 86400)
    later = CertExpiry("client", "", "/etc/etcd/client.crt", T0 + 90 * 86400)
    old = SnapshotFile("/b/prod-old.db", Layout.ETCDCTL, T0 - 5 * 3600, 4 * 1048576, 0)
    stats = SnapshotStats(812, 20, 5, 0, 4096, 4, 2, ("key",))
    backups = BackupResult(3600.0, (
        LocationState("/b", True, 1, newest=SnapshotCheck(old, True, Checksum.OK, stats)),
        LocationState("/gone", False, 0, error="does not exist"),
    ), T0)  # fmt: skip
    insp = inspection(certs=CertsResult((soon, later), T0), backup=backups)
    dom = page(insp)
    assert table_rows(dom, "certificates") == [
        ["serving", "m1", rfc3339(T0 + 3 * 86400)[:10], "3.0d",
         "https://10.0.0.1:2379"],
        ["client", "-", rfc3339(T0 + 90 * 86400)[:10], "90.0d", "/etc/etcd/client.crt"],
    ]  # fmt: skip
    assert '<span class="n bad">3.0d</span>' in dom  # the one a finding names
    cert = next(r for r in table_rows(dom, "findings") if r[1] == "certificate_expiry")
    assert cert[:3] == ["critical", "certificate_expiry", "https://10.0.0.1:2379"]
    assert cert[4:6] == [rfc3339(T0 + 3 * 86400)[:10], rfc3339(T0 + 21 * 86400)[:10]]
    assert table_rows(dom, "backup-limits") == [["newest at most", "1.0h"]]
    assert table_rows(dom, "backups") == [
        ["/b", "prod-old.db", "5.0h ago", "4.0 MiB", "812", "5", "whole"],
        ["/gone", "does not exist", "-", "-", "-", "-", "-"],
    ]
    too_old = next(r for r in table_rows(dom, "findings") if r[1] == "backup_too_old")
    # a duration (the probe measures the age against the clock, not the page's `now`)
    assert re.fullmatch(r"\d+\.\d[hd]", too_old[4]) and too_old[5] == "1.0h"
    assert RUNBOOK_URL_BASE + "etcdinspectorbackuptooold" in links(dom)
    assert RUNBOOK_URL_BASE + "etcdinspectorbackupmissing" in links(dom)
    assert dom.index(">Keyspace<") < dom.index(">Certificates<") < dom.index(">Backups<")


def test_the_page_names_no_probe_and_no_kind_of_finding() -> None:
    """Everything probe-specific comes from the probes' declared views and checks."""
    source = Path(status_page.__file__).read_text()
    for spec in REGISTRY.values():
        assert f'"{spec.name}"' not in source, spec.name
        assert spec.view is not no_view, spec.name
    for kind in declared_checks():
        assert f'"{kind}"' not in source, kind
    doc = to_json([inspection()], started_at=T0, finished_at=T0)["clusters"][0]
    report_keys = {"name", "inspected", "error", "probes", "findings"}
    for key in set(doc) - report_keys:
        assert f'"{key}"' not in source and f"'{key}'" not in source, key


# --------------------------------------------------------------------------- the browser


def chromium() -> str:
    heavy.require("browser", "runs headless Chromium")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium not found: install Debian's chromium package (scripts/bootstrap)")
    return found


def browse(url: str, tmp_path: Path, *, screenshot: Path | None = None) -> str:
    """The DOM headless Chromium built for `url` (or a screenshot of it)."""
    profile = tmp_path / f"chromium-{time.monotonic_ns()}"
    args = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}",
    ]  # fmt: skip
    if screenshot is not None:
        args += [f"--screenshot={screenshot}", "--window-size=1400,1400"]
    else:
        args += ["--dump-dom"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=90, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    shutil.rmtree(profile, ignore_errors=True)
    return out.stdout


@contextlib.contextmanager
def runaway_writer(endpoint: str):
    """The demo's runaway writer, in a thread of its own."""
    stop = threading.Event()

    async def run() -> None:
        task = asyncio.create_task(_runaway_writer(endpoint))
        await asyncio.to_thread(stop.wait)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def status_json(exporter: ExporterProcess) -> dict:
    code, body, _ = exporter.get("/api/v1/status")
    assert code == 200
    return json.loads(body)


def wait_status(exporter: ExporterProcess, condition, what: str, timeout: float = 45) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = status_json(exporter)
        if condition(doc):
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}\n{json.dumps(doc)[:3000]}")
        time.sleep(0.5)


def browse_after(
    exporter: ExporterProcess, tmp_path: Path, condition, what: str, page_ok
) -> str:
    """The page once the JSON API meets `condition` and the page itself `page_ok`: the two
    are read a moment apart, and a probe round can fail in between (at most 5 tries)."""
    for _ in range(5):
        wait_status(exporter, condition, what)
        dom = browse(exporter.base_url + "/", tmp_path)
        if page_ok(dom):
            break
    return dom


def checks(doc: dict) -> set[tuple[str, str | None]]:
    return {(f["check"], f["subject"]) for f in doc["findings"]}


@pytest.mark.browser
@pytest.mark.etcd
def test_the_status_page_in_a_real_browser(etcd_cluster: LocalCluster, tmp_path: Path) -> None:
    assert HOT_WRITES_PER_SECOND > HOT_KEY_WRITES_PER_SECOND  # the demo trips the alert
    asyncio.run(load_sample_data(etcd_cluster.endpoints[0], keys=1000, rewrites=100))
    big, hot = BIG_KEY.decode(), HOT_KEY.decode()
    with runaway_writer(etcd_cluster.endpoints[0]), run_exporter(
        tmp_path, endpoints_flag(etcd_cluster), "--etcd.cluster-name=demo",
        "--inspection.interval=1s", "--scan.keys-per-second=0",
    ) as exporter:  # fmt: skip
        def all_up(dom: str) -> bool:
            return all(r[2] == "up" for r in table_rows(dom, "members")) and (
                "3 of 3 members compared" in dom
            )

        # Probes run every second here: on a loaded machine one status round can time out,
        # and the page then says so for that second; the page is read again after the next.
        dom = browse_after(
            exporter, tmp_path,
            lambda d: (
                {("big_value", big), ("hot_key", hot)} <= checks(d)
                and (d["clusters"][0]["consistency"] or {}).get("consistent") is True
            ),
            "the planted big value and the hot key are findings", all_up,
        )  # fmt: skip
        browse(exporter.base_url + "/", tmp_path, screenshot=tmp_path / "status.png")

        assert 'id="cluster-demo"' in dom
        members = {r[0]: r for r in table_rows(dom, "members")}
        assert set(members) == {"m1", "m2", "m3"}
        assert all(r[2] == "up" for r in members.values()), members
        assert sum(r[3] == "leader" for r in members.values()) == 1
        # the performance probe's column ("ok", or the causes), then the quota's
        assert all(r[8] for r in members.values()), members
        assert all(re.fullmatch(r"\d+\.\d% of 2\.0 GiB", r[9]) for r in members.values())
        assert re.search(r"consistent</span> · <span class=\"compared\">3 of 3 members "
                         r"compared at revision \d+", dom)  # fmt: skip
        findings = {r[2]: r for r in table_rows(dom, "findings")}
        assert findings[big][:2] == ["info", "big_value"]
        assert findings[hot][:2] == ["warning", "hot_key"]
        assert findings[hot][5] == f"{HOT_KEY_WRITES_PER_SECOND:.1f}/s"
        assert RUNBOOK_URL_BASE + "etcdinspectorbigvalues" in links(dom)
        assert RUNBOOK_URL_BASE + "etcdinspectorhotkey" in links(dom)
        assert table_rows(dom, "hotkeys")[0][0] == hot
        assert big in [r[0] for r in table_rows(dom, "largest")]

        def m3_down_others_up(d: dict) -> bool:
            states = {m["name"]: m["state"] for m in d["clusters"][0]["members"]}
            return states == {"m1": "up", "m2": "up", "m3": "down"}

        etcd_cluster.member("m3").freeze()
        try:
            dom = browse_after(
                exporter, tmp_path, m3_down_others_up, "m3 is down, m1 and m2 up",
                lambda dom: [r[2].split()[0] for r in table_rows(dom, "members")]
                == ["up", "up", "down"],
            )  # fmt: skip
            browse(exporter.base_url + "/", tmp_path, screenshot=tmp_path / "frozen.png")
        finally:
            etcd_cluster.member("m3").thaw()
        members = {r[0]: r for r in table_rows(dom, "members")}
        assert members["m3"][2].startswith("down timed out"), members["m3"]
        assert members["m1"][2] == "up"
        findings = {r[1]: r for r in table_rows(dom, "findings")}
        assert findings["member_down"][0] == "critical"
        assert "2 of 3 members up" in dom
        assert 'msg="member stopped answering"' in exporter.log()
