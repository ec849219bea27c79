"""relabel.py's general path (`relabel`) and its GO path (run by relabel_cache.py's FamilyCache)
give the same families; gzipped.py's
pieces make one valid gzip member. Pure, no network (a real member's text: test_scrape_path.py).
"""

from __future__ import annotations

import gzip
import re

import pytest

from etcd_inspector.etcd.metrics_fetch import FetchResult
from etcd_inspector.web import grammar, gzipped
from etcd_inspector.web.relabel import MalformedMetrics, relabel
from etcd_inspector.web.relabel_cache import FamilyCache, RelabelCache, go_parts

GO_TEXT = """\
# HELP etcd_server_has_leader Whether or not a leader exists.
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 5
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 7
etcd_disk_wal_fsync_duration_seconds_sum 0.02
etcd_disk_wal_fsync_duration_seconds_count 7
# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 1.1e-05
go_gc_duration_seconds{quantile="1"} 0.00012
go_gc_duration_seconds_sum 0.0011
go_gc_duration_seconds_count 12
# HELP grpc_server_handled_total Total number of RPCs completed on the server.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV"} 42
grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Put",grpc_service="x{y} z"} 1
# HELP etcd_empty_family Declared, no samples.
# TYPE etcd_empty_family gauge
# HELP no_help_text
# TYPE no_help_text untyped
no_help_text NaN
"""


def test_the_text_is_go_and_the_paths_agree() -> None:
    assert grammar.is_text_format(GO_TEXT)
    parts = go_parts(GO_TEXT)
    assert parts and all(grammar.is_go_family(f"# HELP {p.rstrip()}\n") for p in parts)
    fast = FamilyCache("c", "m", None, None).relabel(GO_TEXT)
    assert fast == relabel(GO_TEXT, "c", "m")
    names = [f.name for f in fast.families]
    assert "etcd_empty_family" not in names and len(names) == 5
    assert fast.families[3].samples.splitlines()[1] == (
        'grpc_server_handled_total{cluster="c",member="m",grpc_code="Unavailable",'
        'grpc_method="Put",grpc_service="x{y} z"} 1'
    )
    assert fast.families[4].help == ""


def _changed(text: str, family: str, value: str) -> str:
    return re.sub(rf"(?m)^({family}(?:{{[^}}]*}})?) \S+$", rf"\g<1> {value}", text)


def test_the_family_cache_follows_every_change() -> None:
    cache = FamilyCache("c", "m", None, None)
    texts = [
        GO_TEXT,
        _changed(GO_TEXT, "etcd_server_has_leader", "0"),
        _changed(GO_TEXT, "etcd_disk_wal_fsync_duration_seconds_bucket", "9"),
        GO_TEXT,
        GO_TEXT.replace("# HELP no_help_text\n# TYPE no_help_text untyped\nno_help_text NaN\n", ""),
        # families in another order
        GO_TEXT.split("# HELP grpc_server")[1].join(["# HELP grpc_server", ""])
        + GO_TEXT.split("# HELP grpc_server")[0],
        "",
        GO_TEXT,
    ]
    for text in texts:
        assert cache.relabel(text) == relabel(text, "c", "m")


@pytest.mark.parametrize(
    "text",
    [
        # A sample of another family inside a GO-shaped family: an untyped family of its own.
        GO_TEXT.replace("etcd_server_has_leader 1\n", "etcd_server_has_leader 1\nstray 2\n"),
        # The same name twice: its samples join the first block.
        GO_TEXT + "# HELP etcd_server_has_leader Again.\n# TYPE etcd_server_has_leader gauge\n"
        "etcd_server_has_leader 3\n",
        # A label of ours: kept as exported_member.
        GO_TEXT.replace('grpc_code="OK"', 'member="inner"'),
        # Text before the first HELP, a timestamp: not GO.
        "# a comment\n" + GO_TEXT,
        GO_TEXT.replace("etcd_server_has_leader 1\n", "etcd_server_has_leader 1 1700000000000\n"),
    ],
    ids=["stray-sample", "name-twice", "our-label", "comment", "timestamp"],
)
def test_texts_off_the_go_layout_go_the_general_way(text: str) -> None:
    cache = FamilyCache("c", "m", None, None)
    cache.relabel(GO_TEXT)  # a warm cache must not hide the change
    assert cache.relabel(text) == relabel(text, "c", "m")
    assert cache.relabel(GO_TEXT) == relabel(GO_TEXT, "c", "m")


@pytest.mark.parametrize(
    "text",
    [
        "# HELP a x\n# TYPE a histogram\na 1",
        "# HELP a x\n# TYPE a histogram\na 1\n",
        "# HELP a x\n# TYPE a gauge\na 1\n\n# HELP b y\n# TYPE b histogram\nb 1\n",
    ],
)
def test_a_histogram_sample_under_the_bare_family_name_is_malformed_on_every_path(
    text: str,
) -> None:
    """Found in review: the Go path took `a 1` for a sample of histogram `a`."""
    for path in (
        lambda: relabel(text, "c", "m"),
        lambda: FamilyCache("c", "m", None, None).relabel(text),
    ):
        with pytest.raises(MalformedMetrics):
            path()


def test_the_cache_forgets_members_no_longer_scraped() -> None:
    cache = RelabelCache()
    for endpoint in ("a:2379", "b:2379"):
        cache.relabel("c", endpoint, "m", FetchResult("u", GO_TEXT, None, 0.0), None, None)
    cache.retain({("c", "b:2379")})
    assert set(cache._last) == set(cache._families) == {("c", "b:2379")}


def test_a_malformed_family_raises_and_the_cache_recovers() -> None:
    cache = FamilyCache("c", "m", None, None)
    cache.relabel(GO_TEXT)
    broken = GO_TEXT.replace("etcd_server_has_leader 1\n", "etcd_server_has_leader one\n")
    with pytest.raises(MalformedMetrics):
        cache.relabel(broken)
    assert cache.relabel(GO_TEXT) == relabel(GO_TEXT, "c", "m")


def test_filters_apply_to_cached_families() -> None:
    allow = re.compile("etcd_.*")
    cache = FamilyCache("c", "m", allow, None)
    for _ in range(2):
        got = cache.relabel(GO_TEXT)
        assert [f.name for f in got.families] == [
            "etcd_server_has_leader",
            "etcd_disk_wal_fsync_duration_seconds",
        ]
        assert got == relabel(GO_TEXT, "c", "m", allow, None)


@pytest.mark.parametrize("pieces", [1, 2, 3, 8])
@pytest.mark.parametrize(
    "body", [GO_TEXT.encode() * 500, b"", b"no newline at all", b"\n\n\n"], ids=len
)
def test_gzip_pieces_make_one_member(body: bytes, pieces: int) -> None:
    packed = gzipped.gzip_now(body, pieces)
    assert gzip.decompress(packed) == body
    assert packed[:3] == b"\x1f\x8b\x08"
    if len(body) > 100_000:
        assert len(packed) < len(body) / 10


async def test_gzip_body_in_threads() -> None:
    body = GO_TEXT.encode() * 3000  # ~3 MB: as many pieces as cores
    assert gzip.decompress(await gzipped.gzip_body(body)) == body
