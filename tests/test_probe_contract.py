"""The probe contract: a probe defined only here, registered with one line, shows up everywhere.

Its config section and option are accepted, its CLI flag exists, its metrics are in /metrics
(with probe_success), `inspect` puts its section in the text and JSON reports and its
finding in the exit code, and the status page shows its section, its column in the members
table and its finding with the runbook of the alert its check declares, with no other file of
the package touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from etcd_inspector import cli
from etcd_inspector.config import Section, parse_config
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.ports import free_ports
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import (
    Check,
    Probe,
    ProbeContext,
    ProbeFlag,
    ProbeSpec,
    ReportContext,
)
from etcd_inspector.report.findings import Finding
from etcd_inspector.report.view import (
    Cell,
    Column,
    Format,
    Look,
    PageSection,
    Table,
    ViewInput,
    ViewPart,
    text,
)
from etcd_inspector.web.app import create_app
from test_status_page import table_rows

pytestmark = pytest.mark.etcd


class AnswerOptions(Section):
    limit: int = 100


@dataclass(frozen=True)
class AnswerResult:
    members: int  # members that answered Status, read from the topology
    leader: str | None
    names: tuple[str, ...] = ()


class AnswerProbe(Probe[AnswerOptions, AnswerResult]):
    async def run(self, ctx: ProbeContext) -> AnswerResult:
        topology = ctx.topology
        names = tuple(m.name for m in topology.answered)
        return AnswerResult(len(topology.answered), topology.leader, names)

    def metrics(self, cluster: str, result: AnswerResult) -> Iterable[Metric]:
        fam = GaugeMetricFamily("etcd_inspector_answer_members", "Test probe.", labels=["cluster"])
        fam.add_metric([cluster], result.members)
        yield fam

    def findings(self, result: AnswerResult, rc: ReportContext) -> Iterable[Finding]:
        if result.members > self.options.limit:
            yield Finding(
                rc.cluster, "too_many_answers", f"{result.members} members answered",
                value=result.members, threshold=self.options.limit,
            )  # fmt: skip

    def report_json(self, result: AnswerResult | None, rc: ReportContext) -> dict[str, Any]:
        if result is None:
            return {"answer": None}
        return {"answer": {"members": result.members, "limit": self.options.limit,
                           "answered": list(result.names)}}  # fmt: skip

    def report_text(self, result: AnswerResult | None, rc: ReportContext) -> list[str]:
        assert result is not None
        return [f"Answer: {result.members} members, leader {result.leader}"]


def answer_view(v: ViewInput) -> list[ViewPart]:
    a = v.doc.get("answer")
    if a is None:
        return []
    over = Look.BAD if a["members"] > a["limit"] else Look.GOOD
    row = (Cell(a["members"], Format.COUNT, over), Cell(a["limit"], Format.COUNT))
    return [
        PageSection("Answers", (Table("answers", ("members answered", "limit"), (row,)),)),
        Column("members", "answered", {name: text("yes", Look.GOOD) for name in a["answered"]}),
    ]


SPEC = ProbeSpec(
    name="answer",
    probe_type=AnswerProbe,
    description="Counts the members that answered (a test probe).",
    options_type=AnswerOptions,
    default_interval=1.0,
    default_timeout=1.0,
    title="Answer",
    flags=(ProbeFlag("--answer.limit", "limit", int, "N", "Members before it is a finding."),),
    view=answer_view,
    checks=(Check("too_many_answers", "EtcdInspectorProbeFailing", Format.COUNT),),
    stale_seconds=60,
)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(REGISTRY, SPEC.name, SPEC)  # the one registration line
    yield


def inspect(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["inspect", "--no-progress", *argv])
    return code, out.getvalue()


def test_config_accepts_the_new_probes_section_and_rejects_its_typos(registered: None) -> None:
    raw = {
        "inspection": {"probes": {"answer": {"limit": 7, "interval": "2s"}}},
        "clusters": [{"name": "c", "endpoints": ["http://127.0.0.1:2379"]}],
    }
    config = parse_config(raw, REGISTRY)
    assert config.probes["answer"].options == AnswerOptions(limit=7)
    assert config.probes["answer"].interval == 2.0
    raw["inspection"]["probes"]["answer"] = {"limmit": 7}
    with pytest.raises(Exception, match="limmit"):
        parse_config(raw, REGISTRY)


def test_inspect_reports_the_new_probe_in_text_json_and_exit_code(
    registered: None, shared_cluster: LocalCluster
) -> None:
    endpoints = "--etcd.endpoints=" + ",".join(shared_cluster.endpoints)
    code, text = inspect([endpoints, "--scan.keys-per-second=0"])
    assert code == 0, text
    assert "Answer: 3 members, leader m" in text

    code, doc_text = inspect([endpoints, "--output=json", "--answer.limit=2"])
    doc = json.loads(doc_text)
    (cluster,) = doc["clusters"]
    assert cluster["answer"]["members"] == 3
    assert cluster["probes"]["answer"]["success"] is True
    assert [f["check"] for f in doc["findings"]] == ["too_many_answers"]
    assert code == doc["exit_code"] == 1


async def test_the_new_probes_metrics_are_scraped(
    registered: None, shared_cluster: LocalCluster
) -> None:
    raw = {
        "inspection": {"interval": "1s"},
        "clusters": [{"name": "c", "endpoints": list(shared_cluster.endpoints)}],
    }
    runner = web.AppRunner(create_app(parse_config(raw, REGISTRY)))
    await runner.setup()
    port = free_ports(1)[0]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            text = ""
            for _ in range(50):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
                if 'etcd_inspector_answer_members{cluster="c"} 3.0' in text:
                    break
                await asyncio.sleep(0.2)
        assert 'etcd_inspector_answer_members{cluster="c"} 3.0' in text
        assert 'etcd_inspector_probe_success{cluster="c",probe="answer"} 1.0' in text
    finally:
        await runner.cleanup()


async def test_the_status_page_shows_the_new_probes_section_column_and_finding(
    registered: None, shared_cluster: LocalCluster
) -> None:
    raw = {
        "inspection": {"interval": "1s", "probes": {"answer": {"limit": 2}}},
        "clusters": [{"name": "c", "endpoints": list(shared_cluster.endpoints)}],
    }
    runner = web.AppRunner(create_app(parse_config(raw, REGISTRY)))
    await runner.setup()
    port = free_ports(1)[0]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            dom = ""
            for _ in range(50):
                async with session.get(f"http://127.0.0.1:{port}/") as resp:
                    dom = await resp.text()
                if 'class="answers"' in dom and "too_many_answers" in dom:
                    break
                await asyncio.sleep(0.2)
    finally:
        await runner.cleanup()
    assert '<h3 id="section-answers">Answers</h3>' in dom
    assert table_rows(dom, "answers") == [["3", "2"]]
    members = table_rows(dom, "members")
    headers = re.search(r'<table class="members"><thead>(.*?)</thead>', dom, re.S)
    assert headers is not None and "<th>answered</th>" in headers.group(1)
    assert len(members) == 3 and all("yes" in row for row in members)
    (finding,) = [r for r in table_rows(dom, "findings") if r[1] == "too_many_answers"]
    assert finding[4:6] == ["3", "2"]
    assert "mixin.md#etcdinspectorprobefailing" in dom
