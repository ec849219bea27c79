"""The probe contract: a probe defined only here, registered with one line, shows up everywhere.

Its config section and option are accepted, its CLI flag exists, its metrics are in /metrics
(with probe_success), and `inspect` puts its section in the text and JSON reports and its
finding in the exit code, with no other file of the package touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
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
from etcd_inspector.demo.localcluster import LocalCluster, free_ports
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import (
    Probe,
    ProbeContext,
    ProbeFlag,
    ProbeSpec,
    ReportContext,
)
from etcd_inspector.report.findings import Finding
from etcd_inspector.web.app import create_app

pytestmark = pytest.mark.etcd


class AnswerOptions(Section):
    limit: int = 100


@dataclass(frozen=True)
class AnswerResult:
    members: int  # members that answered Status, read from the topology
    leader: str | None


class AnswerProbe(Probe[AnswerOptions, AnswerResult]):
    async def run(self, ctx: ProbeContext) -> AnswerResult:
        topology = ctx.topology
        return AnswerResult(len(topology.answered), topology.leader)

    def metrics(self, cluster: str, result: AnswerResult) -> Iterable[Metric]:
        fam = GaugeMetricFamily("etcd_inspector_answer_members", "Test probe.", labels=["cluster"])
        fam.add_metric([cluster], result.members)
        yield fam

    def findings(self, result: AnswerResult, rc: ReportContext) -> Iterable[Finding]:
        if result.members > self.options.limit:
            yield Finding(rc.cluster, "too_many_answers", f"{result.members} members answered")

    def report_json(self, result: AnswerResult | None, rc: ReportContext) -> dict[str, Any]:
        return {"answer": None if result is None else {"members": result.members}}

    def report_text(self, result: AnswerResult | None, rc: ReportContext) -> list[str]:
        assert result is not None
        return [f"Answer: {result.members} members, leader {result.leader}"]


SPEC = ProbeSpec(
    name="answer",
    probe_type=AnswerProbe,
    description="Counts the members that answered (a test probe).",
    options_type=AnswerOptions,
    default_interval=1.0,
    default_timeout=1.0,
    title="Answer",
    flags=(ProbeFlag("--answer.limit", "limit", int, "N", "Members before it is a finding."),),
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
    assert cluster["answer"] == {"members": 3}
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
