"""Backups without etcd: names and layouts, retention, member choice, the hash of a stream,
the bbolt reader on broken files, the probe's findings, config and flags."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from etcd_inspector import cli, snapshot
from etcd_inspector.backup import bbolt
from etcd_inspector.backup.files import (
    Checksum,
    Layout,
    SnapshotCheck,
    SnapshotFile,
    check_snapshot,
    find_snapshots,
    own_snapshot_name,
)
from etcd_inspector.backup.locations import BackupResult, Comparison, DataCheck, LocationState
from etcd_inspector.backup.objects import (
    Failure,
    ListedObject,
    checksum_text,
    failure_of_code,
    key_of,
    object_name,
    own_objects,
    parse_checksum,
    parse_location,
    redacted,
    snapshot_objects,
)
from etcd_inspector.backup.s3 import MultipartUpload, S3Error, classify
from etcd_inspector.backup.taking import TailHasher, member_order, to_prune
from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.config import ConfigError, parse_config
from etcd_inspector.etcd.client import MemberStatus
from etcd_inspector.exitcodes import (
    EXIT_SNAPSHOT_ACCESS_DENIED,
    EXIT_SNAPSHOT_CREDENTIALS,
    EXIT_SNAPSHOT_CREDENTIALS_EXPIRED,
    EXIT_SNAPSHOT_ENDPOINT,
    EXIT_SNAPSHOT_NO_BUCKET,
    EXIT_SNAPSHOT_UPLOAD_BROKE,
)
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.backup import backup_findings

T0 = 1_796_100_000.0


def touch(path: Path, data: bytes = b"x", mtime: float = T0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_own_names_carry_cluster_utc_time_and_revision() -> None:
    assert own_snapshot_name("prod-eu", 1796105700.0, 12345) == "prod-eu-20261201T061500Z-r12345.db"


def test_find_snapshots_knows_the_three_layouts_and_skips_temporary_files(tmp_path: Path) -> None:
    touch(tmp_path / "prod-20261201T061500Z-r12.db", mtime=T0 + 9999)  # name time wins
    touch(tmp_path / "manual.db", mtime=T0 + 10)
    touch(tmp_path / "Backup-1" / "Full-00000000-00000042-1796100005", mtime=T0 + 99999)
    touch(tmp_path / "Backup-1" / "Incr-00000043-00000050-1796100900")  # a delta: not counted
    touch(tmp_path / "v2" / "Full-00000000-00000041-1796100001.gz")
    touch(tmp_path / ".prod-1-2.db.part", mtime=T0 + 10**6)  # in progress
    touch(tmp_path / "manual.db.part", mtime=T0 + 10**6)  # etcdctl's in progress
    touch(tmp_path / "notes.txt")
    found = find_snapshots(str(tmp_path))
    assert [(f.name, f.layout) for f in found] == [
        ("prod-20261201T061500Z-r12.db", Layout.INSPECTOR),
        ("manual.db", Layout.ETCDCTL),
        ("Full-00000000-00000042-1796100005", Layout.BACKUP_RESTORE),
        ("Full-00000000-00000041-1796100001.gz", Layout.BACKUP_RESTORE),
    ]
    assert found[0].taken_at == 1796105700.0 and found[0].name_revision == 12
    assert found[2].taken_at == 1796100005.0 and found[2].name_revision == 42
    assert found[3].compression == "gz"


def snap(name: str, taken_at: float) -> SnapshotFile:
    return SnapshotFile(f"/b/{name}", Layout.INSPECTOR, taken_at, 100, 0, 1)


def test_retention_keeps_the_newest_n_and_drops_the_too_old_but_never_the_newest() -> None:
    files = [snap(f"s{i}", T0 - i * 3600) for i in range(5)]  # newest first
    assert [f.name for f in to_prune(files, 2, None, T0)] == ["s2", "s3", "s4"]
    assert [f.name for f in to_prune(files, None, 2.5 * 3600, T0)] == ["s3", "s4"]
    assert [f.name for f in to_prune(files, 4, 1.5 * 3600, T0)] == ["s2", "s3", "s4"]
    assert to_prune(files[:1], 1, 1.0, T0 + 10**6) == []  # the only one stays, however old


def status(i: int, revision: int, leader: int = 1, learner: bool = False) -> MemberStatus:
    return MemberStatus(
        endpoint=f"http://m{i}:2379", member_id=i, cluster_id=7, leader_id=leader, raft_term=2,
        raft_index=10, raft_applied_index=10, revision=revision, db_size=1, db_size_in_use=1,
        version="3.5.1", is_learner=learner, errors=(),
    )  # fmt: skip


def test_member_order_prefers_the_most_advanced_follower_and_skips_learners_and_alarms() -> None:
    views = (
        MemberView("http://m1:2379", "m1", status(1, 100)),  # the leader
        MemberView("http://m2:2379", "m2", status(2, 98)),
        MemberView("http://m3:2379", "m3", status(3, 100)),
        MemberView("http://m4:2379", "m4", status(4, 100, learner=True)),
        MemberView("http://m5:2379", "m5", status(5, 100)),
        MemberView("http://m6:2379", "m6", None),
    )
    topology = Topology(views, None, (("m5", "CORRUPT"),))
    assert member_order(topology) == ["http://m3:2379", "http://m2:2379", "http://m1:2379"]


@pytest.mark.parametrize("chunk", [1, 7, 32, 33, 4096])
def test_tail_hasher_checks_etcds_appended_sha256_whatever_the_chunking(chunk: int) -> None:
    body = os.urandom(10_000)
    stream = body + hashlib.sha256(body).digest()
    hasher = TailHasher()
    for i in range(0, len(stream), chunk):
        hasher.update(stream[i : i + chunk])
    assert hasher.matches() and hasher.size == len(stream)
    broken = TailHasher()
    broken.update(stream[:-1] + bytes([stream[-1] ^ 1]))
    assert not broken.matches()


def meta_page(page_size: int, txid: int, *, magic: int = bbolt.MAGIC) -> bytes:
    body = struct.pack("<IIIIQQQQQ", magic, 2, page_size, 0, 3, 0, 2, 4, txid)
    header = struct.pack("<QHHI", txid % 2, bbolt.META_PAGE, 0, 0)
    page = header + body + struct.pack("<Q", bbolt.fnv64a(body))
    return page.ljust(page_size, b"\0")


def test_the_reader_rejects_what_is_not_a_bbolt_file(tmp_path: Path) -> None:
    with pytest.raises(bbolt.SnapshotCorrupt, match="not a bbolt database"):
        bbolt.read_snapshot(touch(tmp_path / "text.db", b"hello" * 2000))
    # Valid metas that point at pages beyond the end: a truncated file.
    short = touch(tmp_path / "short.db", meta_page(4096, 4) + meta_page(4096, 5))
    with pytest.raises(bbolt.SnapshotCorrupt, match="truncated: the database needs 16384"):
        bbolt.read_snapshot(short)
    # A meta whose checksum does not match is skipped; with both broken the file is refused.
    bad = bytearray(meta_page(4096, 4) + meta_page(4096, 5))
    bad[40] ^= 0xFF
    bad[4096 + 40] ^= 0xFF
    with pytest.raises(bbolt.SnapshotCorrupt, match="meta checksum mismatch"):
        bbolt.read_snapshot(touch(tmp_path / "bad.db", bytes(bad)))


def test_a_file_that_is_not_whole_is_reported_with_its_reason(tmp_path: Path) -> None:
    body = os.urandom(512 * 3)
    f = touch(tmp_path / "x.db", body + hashlib.sha256(b"other").digest())
    check = check_snapshot(find_snapshots(str(tmp_path))[0])
    assert not check.whole and check.checksum is Checksum.MISMATCH
    assert check.problem == "the trailing SHA-256 does not match the content"
    f.write_bytes(body + hashlib.sha256(body).digest())
    check = check_snapshot(find_snapshots(str(tmp_path))[0])
    assert check.checksum is Checksum.OK and not check.whole
    assert check.problem is not None and "not a bbolt database" in check.problem


def test_user_key_reads_field_one_of_a_key_value_record() -> None:
    record = b"\x0a\x04/k/1\x10\x02\x18\x02\x20\x01\x2a\x02v1"
    assert bbolt.user_key(record) == b"/k/1"
    assert bbolt.user_key(b"\x10\x05\x0a\x02ab") == b"ab"  # field order does not matter
    with pytest.raises(bbolt.SnapshotCorrupt):
        bbolt.user_key(b"\x10")


def test_findings_name_the_location_and_the_file() -> None:
    stale = SnapshotFile("/b/old.db", Layout.ETCDCTL, T0 - 5 * 3600, 10, 0)
    stats = bbolt.SnapshotStats(10, 20, 5, 0, 4096, 4, 2, ("key",))
    result = BackupResult(3600.0, (
        LocationState("/empty", True, 0),
        LocationState("/gone", False, 0, error="does not exist"),
        LocationState("/b", True, 1, newest=SnapshotCheck(stale, True, Checksum.OK, stats),
                      data=DataCheck(Comparison.KEYS_DIFFER, 12, 6)),
        LocationState("/c", True, 1, newest=SnapshotCheck(
            SnapshotFile("/c/new.db", Layout.ETCDCTL, T0, 10, 0), False, Checksum.ABSENT, None,
            "truncated")),
    ), T0)  # fmt: skip
    found = [(f.check, f.subject, f.message) for f in backup_findings(result, "prod", T0)]
    assert found == [
        ("backup_missing", "/empty", "backup location /empty holds no snapshot"),
        ("backup_missing", "/gone", "backup location /gone does not exist"),
        ("backup_too_old", "/b",
         "the newest snapshot in backup location /b, old.db, is 5.0h old (limit 1.0h)"),
        ("backup_data_mismatch", "/b", "the newest snapshot in backup location /b, old.db, "
         "holds 5 keys at revision 10, the cluster had 6 there"),
        ("backup_not_whole", "/c",
         "the newest snapshot in backup location /c, new.db, is not whole: truncated"),
    ]  # fmt: skip


CLUSTER = {"name": "c", "endpoints": ["http://127.0.0.1:2379"]}


P = "clusters[0].probes.backup"


@pytest.mark.parametrize(
    ("backup", "expected"),
    [
        ({"locations": [""]}, f"{P}.locations[0]: must not be empty"),
        ({"locations": "/b"}, f"{P}.locations: expected a list, got string"),
        ({"locations": ["/b", "/b"]},
         f"{P}.locations[1]: duplicate location '/b' (same as locations[0])"),
        ({"locations": ["/b"], "max_age": 60}, f"{P}.max_age: '60' has no unit; write e.g. '60s'"),
        ({"locations": ["/b"], "maxage": "1h"},
         f"{P}: unknown key 'maxage' (did you mean 'max_age'?)"),
    ],
)  # fmt: skip
def test_the_backup_options_are_strict(backup: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"clusters": [{**CLUSTER, "probes": {"backup": backup}}]}, REGISTRY)
    assert info.value.errors == [expected]


def test_the_old_cluster_backup_key_names_the_new_place() -> None:
    raw = {"clusters": [{**CLUSTER, "backup": {"locations": ["/b"]}}]}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, REGISTRY)
    assert info.value.errors == [
        "clusters[0]: 'backup' is no longer a cluster key: backup locations are the backup "
        "probe's options (probes: {backup: {locations: [...], max_age: ...}} in this cluster, "
        "or inspection.probes)"
    ]


def test_backup_flags_are_the_backup_probes_options() -> None:
    args = cli.build_parser().parse_args([
        "inspect", "--etcd.endpoints=http://127.0.0.1:2379", "--backup.location=/a",
        "--backup.location", "/b", "--backup.max-age=2h",
    ])  # fmt: skip
    options = cli.load_config(args).probes["backup"].options
    assert options.locations == ("/a", "/b") and options.max_age == 7200.0


def test_backup_locations_differ_per_cluster() -> None:
    other = {"name": "d", "endpoints": ["http://127.0.0.1:2479"]}
    raw = {
        "inspection": {"probes": {"backup": {"locations": ["/shared"], "max_age": "2h"}}},
        "clusters": [{**CLUSTER, "probes": {"backup": {"locations": ["/c-only"]}}}, other],
    }
    config = parse_config(raw, REGISTRY)
    own, shared = config.probes_for("c")["backup"], config.probes_for("d")["backup"]
    assert (own.options.locations, own.options.max_age) == (("/c-only",), 7200.0)
    assert (shared.options.locations, shared.options.max_age) == (("/shared",), 7200.0)


# --------------------------------------------------------------------------- buckets (pure)


def test_bucket_urls_parse_and_reject_credentials_and_bad_names() -> None:
    loc = parse_location("s3://bkt/etcd/main/")
    assert (loc.bucket, loc.prefix, loc.url) == ("bkt", "etcd/main/", "s3://bkt/etcd/main")
    assert parse_location("s3://bkt").prefix == ""
    assert loc.object_url(loc.key("a.db")) == "s3://bkt/etcd/main/a.db"
    assert key_of("s3://bkt/etcd/main/a.db") == ("bkt", "etcd/main/a.db")
    with pytest.raises(ValueError, match="not in the URL") as err:
        parse_location("s3://KEY:SECRET@bkt/x")
    assert "SECRET" not in str(err.value) and str(err.value).startswith("s3://***@bkt/x: ")
    assert redacted("s3://KEY:SECRET@bkt/x") == "s3://***@bkt/x"
    assert redacted("s3://bkt/x") == "s3://bkt/x"
    with pytest.raises(ValueError, match="is not a bucket name"):
        parse_location("s3://b/x")


def test_only_published_snapshots_count_and_retention_finds_abandoned_uploads() -> None:
    loc = parse_location("s3://bkt/etcd")
    now = 1_800_000_000.0
    ours = object_name("prod", now - 60)
    older = object_name("prod", now - 7200)
    unpublished = object_name("prod", now - 10)  # in flight: newer, but no checksum yet
    abandoned = object_name("prod", now - 2 * 3600 - 5)
    listing = [
        ListedObject(f"etcd/{ours}", 100, now - 50),
        ListedObject(f"etcd/{ours}.sha256", 90, now - 50),
        ListedObject(f"etcd/{older}", 100, now - 7100),
        ListedObject(f"etcd/{older}.sha256", 90, now - 7100),
        ListedObject(f"etcd/{unpublished}", 100, now - 5),
        ListedObject(f"etcd/{abandoned}", 100, now - 7000),
        ListedObject(f"etcd/{object_name('other', now)}", 100, now),
        ListedObject(f"etcd/{object_name('other', now)}.sha256", 90, now),
        ListedObject("etcd/nightly.db", 100, now - 30),  # `aws s3 cp` of an etcdctl file
        ListedObject("etcd/deep/er/x.db", 100, now),  # two levels down: not looked at
    ]
    found = snapshot_objects(loc, listing)
    assert [f.path.rsplit("/", 1)[1] for f in found] == [
        object_name("other", now), "nightly.db", ours, older,
    ]  # fmt: skip
    assert found[2].layout is Layout.INSPECTOR and found[2].name_revision is None
    published, gone = own_objects(loc, "prod", listing, now)
    assert [f.path for f in published] == [f"s3://bkt/etcd/{ours}", f"s3://bkt/etcd/{older}"]
    assert gone == [f"etcd/{abandoned}"]  # the in-flight one is young: left alone
    assert [f.path for f in to_prune(published, 1, None, now)] == [f"s3://bkt/etcd/{older}"]


def test_the_checksum_object_is_a_sha256sum_line() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert parse_checksum(checksum_text(digest, "a.db")) == digest
    assert parse_checksum("not a checksum\n") is None


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("NoSuchBucket", 404, Failure.NO_BUCKET),
    ("AccessDenied", 403, Failure.ACCESS_DENIED),
    ("InvalidAccessKeyId", 403, Failure.CREDENTIALS),
    ("SignatureDoesNotMatch", 403, Failure.CREDENTIALS),
    ("ExpiredToken", 400, Failure.EXPIRED),
    ("RequestExpired", 403, Failure.EXPIRED),
    ("403", 403, Failure.ACCESS_DENIED),  # HEAD: no body, the status says it
    ("NoSuchKey", 404, Failure.NOT_FOUND),
    ("MethodNotAllowed", 405, Failure.ENDPOINT),  # not an S3 server
    ("SlowDown", 503, Failure.OTHER),
])  # fmt: skip
def test_s3_error_codes_map_to_kinds(code: str, status: int, kind: Failure) -> None:
    assert failure_of_code(code, status) is kind


def test_botocore_exceptions_are_classified_by_type() -> None:
    import botocore.exceptions as bex

    response: Any = {"Error": {"Code": "ExpiredToken", "Message": "expired"},
                     "ResponseMetadata": {"HTTPStatusCode": 400}}  # fmt: skip
    expired = bex.ClientError(response, "PutObject")
    assert classify(expired).kind is Failure.EXPIRED
    assert classify(bex.NoCredentialsError()).kind is Failure.CREDENTIALS
    assert classify(bex.EndpointConnectionError(endpoint_url="http://x")).kind is Failure.ENDPOINT
    assert classify(bex.ReadTimeoutError(endpoint_url="http://x")).kind is Failure.NETWORK
    with pytest.raises(KeyError):
        classify(KeyError("a bug is not an S3 failure"))


@pytest.mark.parametrize(("kind", "started", "code"), [
    (Failure.NO_BUCKET, False, EXIT_SNAPSHOT_NO_BUCKET),
    (Failure.ACCESS_DENIED, True, EXIT_SNAPSHOT_ACCESS_DENIED),
    (Failure.CREDENTIALS, False, EXIT_SNAPSHOT_CREDENTIALS),
    (Failure.EXPIRED, True, EXIT_SNAPSHOT_CREDENTIALS_EXPIRED),
    (Failure.ENDPOINT, False, EXIT_SNAPSHOT_ENDPOINT),
    (Failure.ENDPOINT, True, EXIT_SNAPSHOT_UPLOAD_BROKE),
    (Failure.NETWORK, True, EXIT_SNAPSHOT_UPLOAD_BROKE),
])  # fmt: skip
def test_each_bucket_failure_has_its_own_exit_code(kind: Failure, started: bool, code: int) -> None:
    failed = snapshot._bucket_failure(S3Error(kind, "detail"), parse_location("s3://bkt/p"),
                                      "uploading x.db", started)  # fmt: skip
    assert failed.code == code
    assert failed.message == f"s3://bkt/p: uploading x.db: {kind} (detail)"
    assert len({EXIT_SNAPSHOT_NO_BUCKET, EXIT_SNAPSHOT_ACCESS_DENIED, EXIT_SNAPSHOT_CREDENTIALS,
                EXIT_SNAPSHOT_CREDENTIALS_EXPIRED, EXIT_SNAPSHOT_ENDPOINT,
                EXIT_SNAPSHOT_UPLOAD_BROKE, 3, 4, 5, 6}) == 10  # fmt: skip


def test_a_bad_bucket_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["snapshot", "--etcd.endpoints=http://127.0.0.1:1", "--out=s3://A/x"]) == 2
    assert capsys.readouterr().err == "etcd-inspector: --out s3://A/x: 'A' is not a bucket name\n"


class _RecordingParts:
    """What MultipartUpload hands the client, part by part (the S3 server is tested in
    test_backup_s3.py; here the cut into parts)."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}

    def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        return {"UploadId": "u1"}

    def upload_part(self, **kw: Any) -> dict[str, str]:
        assert isinstance(kw["Body"], bytearray)  # the buffer itself, not a joined copy
        self.parts[kw["PartNumber"]] = bytes(kw["Body"])
        return {"ETag": str(kw["PartNumber"])}

    def complete_multipart_upload(self, **_: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("chunks", "sizes"),
    [
        ([b"abc"] * 7, [10, 10, 1]),
        ([b"x" * 25, b"y" * 3], [10, 10, 8]),  # a chunk over two parts: both sent whole
        ([b"z" * 10], [10]),
        ([], [0]),  # an empty object still needs one part
    ],
)
def test_multipart_upload_cuts_whole_parts_from_one_buffer(
    chunks: list[bytes], sizes: list[int]
) -> None:
    client = _RecordingParts()
    upload = MultipartUpload(client, "bkt", "k", part_size=10)  # type: ignore[arg-type]
    upload.start()
    for chunk in chunks:
        if upload.buffer(chunk):
            upload.flush()
    upload.complete()
    assert [len(client.parts[n]) for n in sorted(client.parts)] == sizes
    assert b"".join(client.parts[n] for n in sorted(client.parts)) == b"".join(chunks)
    assert upload.sha256.digest() == hashlib.sha256(b"".join(chunks)).digest()
