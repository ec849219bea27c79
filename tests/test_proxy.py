"""relabel.py (text-level relabel, filters), proxy.py (merge, render) and scrape.py's reading of
the request (budget, format, gzip): pure, no network.

The output is judged by the parsers that will read it: prometheus_client's text and (strict)
OpenMetrics parsers here, promtool and a real Prometheus in tests/test_scrape_path.py.
"""

from __future__ import annotations

import gzip
import re

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from etcd_inspector.config import ScrapeConfig
from etcd_inspector.etcd.metrics_fetch import FetchResult, wait_deadline
from etcd_inspector.web.own_text import OwnText, encode_own, encode_part, own_kinds
from etcd_inspector.web.proxy import (
    DROPPED,
    MERGED,
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    merge,
    render,
)
from etcd_inspector.web.relabel import MalformedMetrics, relabel, wanted
from etcd_inspector.web.scrape import (
    MIN_BUDGET_SECONDS,
    ScrapeState,
    accepts_gzip,
    scrape,
    scrape_budget,
    wants_openmetrics,
)
from exposition import promtool_check

MEMBER_TEXT = """\
# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
# HELP etcd_server_proposals_failed_total The total number of failed proposals seen.
# TYPE etcd_server_proposals_failed_total counter
etcd_server_proposals_failed_total 3
# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 5
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 7
etcd_disk_wal_fsync_duration_seconds_sum 0.02
etcd_disk_wal_fsync_duration_seconds_count 7
# HELP grpc_server_handled_total Total number of RPCs completed on the server.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",cluster="inner",member="x"} 42
"""


def _own(families, openmetrics: bool) -> OwnText:
    return OwnText.of([encode_part(families, openmetrics)])


def _render(parts, own=(), openmetrics=False) -> str:
    merged = merge(parts, own_kinds(own))
    return render(merged, _own(own, openmetrics), openmetrics).decode()


def _samples(text: str, openmetrics: bool = False):
    parse = parse_openmetrics if openmetrics else parse_text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parse(text)
        for s in f.samples
    }


def _names(exposition) -> list[str]:
    return [f.name for f in exposition.families]


def test_relabel_adds_cluster_and_member_to_every_sample() -> None:
    exposition = relabel(MEMBER_TEXT, "prod", "m1")
    assert _names(exposition) == [
        "etcd_server_has_leader",
        "etcd_server_proposals_failed_total",  # the name as exposed
        "etcd_disk_wal_fsync_duration_seconds",
        "grpc_server_handled_total",
    ]
    samples = _samples(_render([exposition]))
    assert samples[("etcd_server_has_leader", (("cluster", "prod"), ("member", "m1")))] == 1
    assert (
        samples[("etcd_server_proposals_failed_total", (("cluster", "prod"), ("member", "m1")))]
        == 3
    )
    bucket = ("etcd_disk_wal_fsync_duration_seconds_bucket",
              (("cluster", "prod"), ("le", "0.001"), ("member", "m1")))  # fmt: skip
    assert samples[bucket] == 5
    assert all(dict(labels)["cluster"] == "prod" for _, labels in samples)
    assert exposition.families[0].help.startswith("Whether or not a leader exists.")


def test_relabel_keeps_a_members_own_cluster_and_member_labels_as_exported() -> None:
    text = _render([relabel(MEMBER_TEXT, "prod", "m1")])
    [labels] = [dict(k[1]) for k in _samples(text) if k[0] == "grpc_server_handled_total"]
    assert labels == {
        "cluster": "prod",
        "member": "m1",
        "exported_cluster": "inner",
        "exported_member": "x",
        "grpc_code": "OK",
        "grpc_method": "Range",
    }


def test_relabel_output_keeps_the_exposition_names_and_metadata() -> None:
    text = _render([relabel(MEMBER_TEXT, "prod", "m1")])
    assert "# TYPE etcd_server_proposals_failed_total counter" in text
    assert "# HELP etcd_server_proposals_failed_total The total number of failed" in text
    assert 'etcd_server_proposals_failed_total{cluster="prod",member="m1"} 3\n' in text
    assert 'etcd_disk_wal_fsync_duration_seconds_count{cluster="prod",member="m1"} 7\n' in text


@pytest.mark.parametrize(
    ("allow", "deny", "kept"),
    [
        (None, None, {"etcd_server_has_leader", "etcd_server_proposals_failed_total",
                      "etcd_disk_wal_fsync_duration_seconds", "grpc_server_handled_total"}),
        ("etcd_server_.*", None, {"etcd_server_has_leader",
                                  "etcd_server_proposals_failed_total"}),
        # users write the exposed counter name, with _total
        ("etcd_server_proposals_failed_total", None, {"etcd_server_proposals_failed_total"}),
        # ... and the name without it works as well
        ("etcd_server_proposals_failed", None, {"etcd_server_proposals_failed_total"}),
        (None, "grpc_.*|etcd_disk_.*", {"etcd_server_has_leader",
                                         "etcd_server_proposals_failed_total"}),
        (None, "grpc_server_handled_total", {"etcd_server_has_leader",
                                             "etcd_server_proposals_failed_total",
                                             "etcd_disk_wal_fsync_duration_seconds"}),
        ("etcd_.*", "etcd_disk_.*", {"etcd_server_has_leader",
                                     "etcd_server_proposals_failed_total"}),
        # fullmatch: a prefix of a name is no match
        ("etcd_server", None, set()),
    ],
)  # fmt: skip
def test_allow_and_deny_filters(allow: str | None, deny: str | None, kept: set[str]) -> None:
    exposition = relabel(
        MEMBER_TEXT, "c", "m",
        re.compile(allow) if allow else None, re.compile(deny) if deny else None,
    )  # fmt: skip
    assert set(_names(exposition)) == kept


def test_wanted_only_strips_total_for_counters() -> None:
    allow = re.compile("foo")
    assert wanted("foo_total", "counter", allow, None)
    assert not wanted("foo_total", "gauge", allow, None)


@pytest.mark.parametrize(
    "text",
    [
        "<html><body>502 Bad Gateway</body></html>\n",
        'etcd_server_has_leader{member="m1 1\n',
        "etcd_server_has_leader one\n",
        "etcd_server_\n",  # a body cut off mid-line
        "# TYPE etcd_server_has_leader gauges\netcd_server_has_leader 1\n",
        "# TYPE 0bad gauge\n",
        'x{a="b\\q"} 1\n',  # not one of the text format's escapes
        "x 1\n# TYPE x gauge\n",  # TYPE after the samples
    ],
)
def test_malformed_text_raises_malformed_metrics(text: str) -> None:
    with pytest.raises(MalformedMetrics):
        relabel(text, "c", "m")


def test_empty_text_is_no_families() -> None:
    assert relabel("", "c", "m").families == ()


# Valid, but not as Go writes it: the line-by-line path.
UNUSUAL_TEXT = (
    "# a comment\n"
    "plain 1\n"
    '# HELP typed_total Help with "quotes" and a \\\\ backslash\\nand a newline.\n'
    "# TYPE typed_total counter\n"
    'typed_total{a="x\\"y",b="1"} 2 1700000000123\n'
    "typed_total{} 3\n"
    "typed_total\t4\n"
    "\n"
    'undeclared{le="1",} NaN\n'
)


def test_the_line_by_line_path_takes_what_go_would_not_write() -> None:
    exposition = relabel(UNUSUAL_TEXT, "c", "m")
    kinds = {f.name: f.kind for f in exposition.families}
    assert kinds == {"plain": "untyped", "typed_total": "counter", "undeclared": "untyped"}
    text = _render([exposition])
    samples = _samples(text)
    labels = (("a", 'x"y'), ("b", "1"), ("cluster", "c"), ("member", "m"))
    assert samples[("typed_total", labels)] == 2
    assert samples[("typed_total", (("cluster", "c"), ("member", "m")))] in (3, 4)
    assert 'typed_total{cluster="c",member="m",a="x\\"y",b="1"} 2 1700000000123\n' in text
    om = _render([exposition], openmetrics=True)
    assert 'typed_total{cluster="c",member="m",a="x\\"y",b="1"} 2 1700000000.123\n' in om
    assert '# HELP typed Help with \\"quotes\\"' in om
    assert 'undeclared{cluster="c",member="m",le="1"} NaN\n' in om  # no trailing comma


GO_MEMSTATS = """\
# HELP go_memstats_alloc_bytes Number of bytes allocated and still in use.
# TYPE go_memstats_alloc_bytes gauge
go_memstats_alloc_bytes 2.0529176e+07
# HELP go_memstats_alloc_bytes_total Total number of bytes allocated, even if freed.
# TYPE go_memstats_alloc_bytes_total counter
go_memstats_alloc_bytes_total 2.3023944e+07
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
"""
# A member whose process_open_fds is a counter (the exporter's is a gauge).
ODD_FDS = """\
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds counter
process_open_fds 10
"""


@pytest.mark.parametrize("openmetrics", [False, True])
def test_no_family_is_dropped_in_either_format(openmetrics: bool) -> None:
    parts = [relabel(MEMBER_TEXT + GO_MEMSTATS, "c", m) for m in ("m1", "m2")]
    text = _render(parts, openmetrics=openmetrics)
    samples = _samples(text, openmetrics)
    names = {name for name, _ in samples}
    for want in ("go_memstats_alloc_bytes", "go_memstats_alloc_bytes_total",
                 "etcd_server_proposals_failed_total", "grpc_server_handled_total"):  # fmt: skip
        assert want in names, want
        assert {dict(labels)["member"] for name, labels in samples if name == want} == {"m1", "m2"}
    if openmetrics:
        assert text.endswith("# EOF\n")
        # the counter next to a gauge of its bare name stays under its own name, as unknown
        assert "# TYPE go_memstats_alloc_bytes_total unknown\n" in text
        assert "# TYPE etcd_server_proposals_failed counter\n" in text
        assert "# TYPE etcd_server_has_leader gauge\n" in text
    else:
        assert text.count("# TYPE go_memstats_alloc_bytes_total counter\n") == 1


def test_families_of_all_members_share_one_help_and_type() -> None:
    parts = [relabel(MEMBER_TEXT, "c", m) for m in ("m1", "m2", "m3")]
    text = _render(parts)
    assert text.count("# TYPE etcd_server_has_leader gauge\n") == 1
    assert text.count("# HELP etcd_server_has_leader ") == 1
    leader = [line for line in text.splitlines() if line.startswith("etcd_server_has_leader{")]
    assert [line.split('member="')[1][:2] for line in leader] == ["m1", "m2", "m3"]


def test_a_clash_with_the_exporters_own_family_merges_same_types_and_drops_others() -> None:
    ours = [
        CounterMetricFamily("process_cpu_seconds", "ours", value=1),  # same type: merged
        GaugeMetricFamily("process_open_fds", "ours", value=3),  # counter at the member
    ]
    member = relabel(GO_MEMSTATS + ODD_FDS, "c", "m1")
    merged = merge([member], own_kinds(ours))
    assert merged.clashes == [{MERGED: 1, DROPPED: 1}]
    text = render(merged, _own(ours, False), openmetrics=False).decode()
    assert text.count("# TYPE process_cpu_seconds_total ") == 1
    assert text.count("# TYPE process_open_fds ") == 1
    assert "# HELP process_cpu_seconds_total ours" in text
    samples = _samples(text)
    assert samples[("process_cpu_seconds_total", ())] == 1
    assert samples[("process_cpu_seconds_total", (("cluster", "c"), ("member", "m1")))] == 1.5
    assert ("process_open_fds", (("cluster", "c"), ("member", "m1"))) not in samples
    om = render(merged, _own(ours, True), openmetrics=True).decode()
    assert _samples(om, openmetrics=True)[("process_cpu_seconds_total", ())] == 1


def test_members_disagreeing_on_a_type_keep_the_first() -> None:
    first = relabel("# TYPE x gauge\nx 1\n", "c", "m1")
    second = relabel("# TYPE x counter\nx 2\n", "c", "m2")
    merged = merge([first, second], {})
    assert merged.clashes == [{}, {DROPPED: 1}]
    assert _samples(_render([first, second])) == {("x", (("cluster", "c"), ("member", "m1"))): 1}


def test_label_values_we_add_are_escaped() -> None:
    text = _render([relabel("x 1\n", 'a"b\\c', "m\n1")])
    assert 'x{cluster="a\\"b\\\\c",member="m\\n1"} 1\n' in text
    assert _samples(text) == {("x", (("cluster", 'a"b\\c'), ("member", "m\n1"))): 1}


@pytest.mark.promtool
def test_promtool_accepts_the_merged_text() -> None:
    parts = [relabel(MEMBER_TEXT + GO_MEMSTATS, "c", m) for m in ("m1", "m2")]
    code, lines = promtool_check(_render(parts, [GaugeMetricFamily("own", "Own.", value=1)]))
    assert code == 0, lines


def test_own_families_render_with_prometheus_client() -> None:
    fam = CounterMetricFamily("own_things", "Own things.", value=2)
    assert "own_things_total 2.0" in encode_own([fam], openmetrics=False)
    om = encode_own([fam], openmetrics=True)
    assert "# TYPE own_things counter" in om and "# EOF" not in om


@pytest.mark.parametrize("openmetrics", [False, True])
def test_own_families_of_several_clusters_share_one_help_and_type(openmetrics: bool) -> None:
    """Each (cluster, probe) builds its own families; the body names each family once."""

    def cluster(name: str, keys: float) -> list[CounterMetricFamily | GaugeMetricFamily]:
        gauge = GaugeMetricFamily("etcd_inspector_keys", "Keys.", labels=["cluster"])
        gauge.add_metric([name], keys)
        counter = CounterMetricFamily("etcd_inspector_runs", "Runs.", labels=["cluster"])
        counter.add_metric([name], 2)
        return [gauge, counter]

    own = OwnText.of(encode_part(cluster(c, k), openmetrics) for c, k in (("a", 1), ("b", 2)))
    parts = [relabel(GO_MEMSTATS, "a", "m")]
    text = render(merge(parts, own.kinds), own, openmetrics).decode()
    assert text.count("# TYPE etcd_inspector_keys gauge") == 1
    runs = "etcd_inspector_runs" if openmetrics else "etcd_inspector_runs_total"
    assert text.count(f"# TYPE {runs} counter") == 1
    samples = _samples(text, openmetrics)
    assert samples[("etcd_inspector_keys", (("cluster", "a"),))] == 1
    assert samples[("etcd_inspector_keys", (("cluster", "b"),))] == 2
    assert samples[("etcd_inspector_runs_total", (("cluster", "b"),))] == 2


@pytest.mark.promtool
def test_promtool_accepts_own_families_of_several_clusters() -> None:
    fams = []
    for name in ("a", "b", "c"):
        fam = GaugeMetricFamily("etcd_inspector_keys", "Keys.", labels=["cluster"])
        fam.add_metric([name], 1)
        fams.append(encode_part([fam], openmetrics=False))
    own = OwnText.of(fams)
    text = render(merge([], own.kinds), own, openmetrics=False).decode()
    code, lines = promtool_check(text)
    assert code == 0, lines


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("", False),
        ("text/plain;version=0.0.4", False),
        ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", True),
        ("text/plain;q=0.5, application/openmetrics-text; version=0.0.1", True),
    ],
)
def test_format_negotiation(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


@pytest.mark.parametrize(
    ("recent", "suspect", "configured", "budget", "wait"),
    [
        ((), False, "auto", 10.0, 5.0),  # not heard from yet
        ((), False, "auto", 2.0, 2.0),
        ((0.01, 0.02), False, "auto", 10.0, 1.0),
        ((0.3, 0.5), False, "auto", 10.0, 2.5),  # 5x the slowest recent
        ((0.5,), False, "auto", 2.0, 2.0),  # never beyond the budget
        ((0.5,), True, "auto", 10.0, 0.25),  # timed out last time: a short probe
        ((), False, 3.0, 10.0, 3.0),
        ((), True, 3.0, 10.0, 0.25),
        ((), True, 0.1, 10.0, 0.1),
    ],
)
def test_member_wait_deadline(recent, suspect, configured, budget, wait) -> None:
    assert wait_deadline(recent, suspect, configured, budget) == pytest.approx(wait)


SCRAPE = ScrapeConfig(timeout=10.0, timeout_offset=0.5)


@pytest.mark.parametrize(
    ("header", "budget"),
    [
        (None, 10.0),  # no header: the configured timeout
        ("", 10.0),
        ("2", 1.5),  # header minus the offset
        ("4.5", 4.0),
        ("30", 10.0),  # capped at the configured timeout
        ("garbage", 10.0),
        ("0.3", MIN_BUDGET_SECONDS),  # never below the floor
        ("-5", MIN_BUDGET_SECONDS),
    ],
)
def test_scrape_budget(header: str | None, budget: float) -> None:
    assert scrape_budget(header, SCRAPE) == pytest.approx(budget)


def test_scrape_budget_with_zero_offset() -> None:
    assert scrape_budget("3", ScrapeConfig(timeout=10.0, timeout_offset=0.0)) == 3.0


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("*", True),
    ],
)
def test_gzip_negotiation(header: str | None, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("openmetrics", [False, True])
async def test_a_scrape_of_no_cluster_answers_with_the_exporters_own_families(
    openmetrics: bool, gzipped: bool
) -> None:
    """scrape() from headers to body, no member to ask: the format and encoding asked for."""
    headers = {"Accept": "application/openmetrics-text" if openmetrics else "text/plain"}
    if gzipped:
        headers["Accept-Encoding"] = "gzip"
    body, answer = await scrape(headers, SCRAPE, [], CollectorRegistry(), ScrapeState())
    content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    assert answer == {"Content-Type": content_type, "Vary": "Accept-Encoding"} | (
        {"Content-Encoding": "gzip"} if gzipped else {}
    )
    text = (gzip.decompress(body) if gzipped else body).decode()
    samples = _samples(text, openmetrics)
    assert [k for k in samples if k[0] == "etcd_inspector_build_info"] != []
    assert text.endswith("# EOF\n") is openmetrics


async def test_what_only_concurrent_scrapes_share_is_let_go_after_the_last() -> None:
    """The members' relabeled fetches and rendered text serve scrapes that overlap; once no
    scrape is in progress they are let go (the per-family relabel cache stays)."""
    state = ScrapeState()
    fetch = FetchResult("u", MEMBER_TEXT, None, 0.0)
    exposition = state.relabel.relabel("c", "a:2379", "m", fetch, None, None)
    state.member_text.get(merge([exposition], {}), frozenset(), False)
    assert state.relabel._last and state.member_text._last

    # As one member's own target (`only`): no cluster is configured here, and a scrape of
    # /metrics would also forget every member that is not (RelabelCache.retain).
    only = ("c", "a:2379")
    state.active = 1  # another scrape is in progress
    await scrape({}, SCRAPE, [], CollectorRegistry(), state, only)
    assert state.active == 1
    assert state.relabel._last and state.member_text._last
    state.active = 0  # it ended (without this one it would have let go itself)
    await scrape({}, SCRAPE, [], CollectorRegistry(), state, only)
    assert state.active == 0
    assert not state.relabel._last and not state.member_text._last
    assert state.relabel._families  # what the next fetch's relabeling starts from
