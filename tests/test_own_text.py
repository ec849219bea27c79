"""web/own_text.py: the exporter's own families split into per-name blocks, joined across
clusters, and each probe outcome encoded once (pure, no network)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from etcd_inspector.web.own_text import OutcomeCache, OwnText, encode_part, split_blocks


def keys(cluster: str, value: float) -> list[Metric]:
    fam = GaugeMetricFamily("etcd_inspector_keys", "Keys.", labels=["cluster"])
    fam.add_metric([cluster], value)
    return [fam]


def test_blocks_split_at_each_help_line_keep_their_header_and_samples() -> None:
    registry = CollectorRegistry()
    Counter("jobs", "Jobs done.", registry=registry).inc(3)  # _created: a family of its own
    part = encode_part(registry.collect(), openmetrics=False)
    assert [b.name for b in part.blocks] == ["jobs_total", "jobs_created"]
    jobs = part.blocks[0]
    assert jobs.header == "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\n"
    assert jobs.samples == "jobs_total 3.0\n"
    assert part.blocks[1].samples.startswith("jobs_created ")
    own = OwnText.of([part])
    assert own.kinds["jobs_total"] == "counter"
    assert {"jobs", "jobs_total", "jobs_created"} <= own.taken()


def test_split_of_nothing_is_nothing() -> None:
    assert split_blocks("") == []


def test_own_text_joins_equal_names_under_the_first_header() -> None:
    own = OwnText.of(encode_part(keys(c, n), openmetrics=False) for c, n in (("a", 1), ("b", 2)))
    (fam,) = own.families.values()
    assert fam.header == "# HELP etcd_inspector_keys Keys.\n# TYPE etcd_inspector_keys gauge\n"
    assert fam.samples == [
        'etcd_inspector_keys{cluster="a"} 1.0\n',
        'etcd_inspector_keys{cluster="b"} 2.0\n',
    ]
    assert own.taken() == {"etcd_inspector_keys"}


def test_an_outcome_is_encoded_once_per_format_until_the_next_one() -> None:
    cache = OutcomeCache()
    builds: list[str] = []
    probe = object()

    def build(value: float):  # type: ignore[no-untyped-def]
        def families() -> list[Metric]:
            builds.append(f"{value}")
            return keys("a", value)

        return families

    first = object()
    one = cache.part(("a", "status"), first, probe, False, build(1))
    assert cache.part(("a", "status"), first, probe, False, build(1)) is one
    om = cache.part(("a", "status"), first, probe, True, build(1))
    assert om is not one and om.blocks[0].samples == 'etcd_inspector_keys{cluster="a"} 1.0\n'
    assert builds == ["1", "1"]  # once per format

    second = object()  # the scheduler published a new outcome
    two = cache.part(("a", "status"), second, probe, False, build(2))
    assert two.blocks[0].samples == 'etcd_inspector_keys{cluster="a"} 2.0\n'
    # A reload that replaces the probe re-encodes the same outcome (its options may differ).
    again = cache.part(("a", "status"), second, object(), False, build(2))
    assert again is not two
    assert builds == ["1", "1", "2", "2"]


def test_pairs_no_scrape_asked_for_are_forgotten() -> None:
    cache = OutcomeCache()
    cache.part(("a", "status"), object(), None, False, lambda: keys("a", 1))
    cache.part(("b", "status"), object(), None, False, lambda: keys("b", 1))
    cache.sweep()
    assert len(cache) == 2
    cache.part(("a", "status"), object(), None, False, lambda: keys("a", 1))
    cache.sweep()  # cluster b was removed by a reload
    assert len(cache) == 1
