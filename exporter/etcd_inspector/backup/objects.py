"""Snapshots in an S3 bucket, the pure parts: the `s3://BUCKET/PREFIX` location, which objects
are snapshots, which of them are published, and what a failed request means.

Publishing is by naming plus a checksum object written last. `snapshot --out s3://...` uploads
`PREFIX/<cluster>-<UTC time>.db` as one multipart upload (S3 shows an object only once its
upload completes, so no reader ever sees part of one), then `PREFIX/<cluster>-<UTC time>.db.sha256`
(`sha256sum` format: the hex SHA-256 of the whole object, two spaces, the name). A snapshot of
ours counts only once its `.sha256` is there: a crash between the two leaves a `.db` nobody
takes for the newest, and retention removes it. Other tools' `*.db` objects (`aws s3 cp` of an
`etcdctl snapshot save` file) count as they are, by their LastModified time.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from enum import StrEnum

from etcd_inspector.backup.files import FULL_NAME, OWN_NAME, TIME_FORMAT, Layout, SnapshotFile

SCHEME = "s3://"
CHECKSUM_SUFFIX = ".sha256"
# `snapshot --out s3://` names: the revision is not known before the upload is complete.
OBJECT_NAME = re.compile(r"^(?P<cluster>.+)-(?P<time>\d{8}T\d{6}Z)\.db$")
# An unpublished upload of ours this old is abandoned (its writer crashed): retention removes it.
ABANDONED_SECONDS = 3600.0


def is_s3(location: str) -> bool:
    return location.startswith(SCHEME)


@dataclass(frozen=True)
class BucketLocation:
    bucket: str
    prefix: str  # "" or ending in "/"

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, name: str) -> str:
        return self.prefix + name

    def object_url(self, key: str) -> str:
        return f"{SCHEME}{self.bucket}/{key}"


def redacted(url: str) -> str:
    """The URL without what may be credentials (`s3://KEY:SECRET@bucket/...`), for labels,
    logs and pages."""
    if not is_s3(url):
        return url
    authority, slash, rest = url[len(SCHEME):].partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{SCHEME}{authority}{slash}{rest}"


def parse_location(url: str) -> BucketLocation:
    """`s3://BUCKET[/PREFIX]`; raises ValueError with the reason (never echoing credentials)."""
    if not is_s3(url):
        raise ValueError(f"{url}: not an s3:// URL")
    rest = url[len(SCHEME):]
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise ValueError(f"{redacted(url)}: put credentials and the endpoint in the environment "
                         "or the AWS config files, not in the URL")  # fmt: skip
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{1,254}", bucket):
        raise ValueError(f"{url}: {bucket!r} is not a bucket name")
    prefix = prefix.strip("/")
    return BucketLocation(bucket, prefix + "/" if prefix else "")


def object_name(cluster: str, taken_at: float) -> str:
    return f"{cluster}-{time.strftime(TIME_FORMAT, time.gmtime(taken_at))}.db"


def checksum_text(sha256_hex: str, name: str) -> str:
    return f"{sha256_hex}  {name}\n"


def parse_checksum(text: str) -> str | None:
    """The hex digest of a `sha256sum` line, or None when it is not one."""
    first = text.strip().split(maxsplit=1)
    if first and re.fullmatch(r"[0-9a-f]{64}", first[0]):
        return first[0]
    return None


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    last_modified: float
    etag: str = ""


def _basename(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _taken_from_name(stamp: str) -> float:
    return float(calendar.timegm(time.strptime(stamp, TIME_FORMAT)))


def snapshot_objects(loc: BucketLocation, objects: list[ListedObject]) -> list[SnapshotFile]:
    """The published snapshots among a listing of the prefix (and one level below), newest
    first; the same layouts as in a directory (backup/files.py), plus ours without a revision
    in the name, which count only once their checksum object is there."""
    keys = {o.key for o in objects}
    found: list[SnapshotFile] = []
    for o in objects:
        rel = o.key[len(loc.prefix):]
        if rel.count("/") > 1:
            continue
        name = _basename(o.key)
        if name.startswith(".") or name.endswith(".part"):
            continue
        url = loc.object_url(o.key)
        mtime_ns = int(o.last_modified * 1e9)
        if m := OBJECT_NAME.match(name):
            if o.key + CHECKSUM_SUFFIX not in keys:
                continue  # not published (yet, or its writer died)
            found.append(SnapshotFile(url, Layout.INSPECTOR, _taken_from_name(m["time"]), o.size,
                                      mtime_ns))  # fmt: skip
        elif m := OWN_NAME.match(name):
            found.append(SnapshotFile(url, Layout.INSPECTOR, _taken_from_name(m["time"]), o.size,
                                      mtime_ns, int(m["revision"])))  # fmt: skip
        elif m := FULL_NAME.match(name):
            compression = m["compression"][1:] if m["compression"] else None
            found.append(SnapshotFile(url, Layout.BACKUP_RESTORE, float(m["unix"]), o.size,
                                      mtime_ns, int(m["revision"]), compression))  # fmt: skip
        elif name.endswith(".db"):
            found.append(SnapshotFile(url, Layout.ETCDCTL, o.last_modified, o.size, mtime_ns))
    found.sort(key=lambda s: (s.taken_at, s.name_revision or 0, s.path), reverse=True)
    return found


def own_objects(
    loc: BucketLocation, cluster: str, objects: list[ListedObject], now: float
) -> tuple[list[SnapshotFile], list[str]]:
    """This command's published snapshots of `cluster` directly under the prefix (newest
    first), and the keys of its abandoned uploads (a `.db` without checksum, old, or a
    checksum without its `.db`)."""
    keys = {o.key for o in objects}
    published: list[SnapshotFile] = []
    abandoned: list[str] = []
    for o in objects:
        name = _basename(o.key)
        if o.key != loc.key(name):
            continue
        if name.endswith(CHECKSUM_SUFFIX):
            data = name[: -len(CHECKSUM_SUFFIX)]
            m = OBJECT_NAME.match(data)
            if m and m["cluster"] == cluster and loc.key(data) not in keys:
                abandoned.append(o.key)
            continue
        m = OBJECT_NAME.match(name)
        if m is None or m["cluster"] != cluster:
            continue
        if o.key + CHECKSUM_SUFFIX in keys:
            published.append(SnapshotFile(loc.object_url(o.key), Layout.INSPECTOR,
                                          _taken_from_name(m["time"]), o.size,
                                          int(o.last_modified * 1e9)))  # fmt: skip
        elif now - o.last_modified > ABANDONED_SECONDS:
            abandoned.append(o.key)
    published.sort(key=lambda s: (s.taken_at, s.path), reverse=True)
    return published, abandoned


def key_of(url: str) -> tuple[str, str]:
    """(bucket, key) of an object URL."""
    bucket, _, key = url[len(SCHEME):].partition("/")
    return bucket, key


class Failure(StrEnum):
    """Why a request to the bucket failed; each kind has its own exit code in `snapshot`."""

    NO_BUCKET = "no such bucket"
    ACCESS_DENIED = "access denied"
    CREDENTIALS = "credentials missing or rejected"  # unknown key id, wrong secret, none found
    EXPIRED = "credentials expired"
    ENDPOINT = "endpoint unreachable or not S3"
    NETWORK = "network error"  # the connection broke or timed out mid-way
    NOT_FOUND = "no such object"
    OTHER = "request failed"


_CODES = {
    "NoSuchBucket": Failure.NO_BUCKET,
    "AccessDenied": Failure.ACCESS_DENIED,
    "AllAccessDisabled": Failure.ACCESS_DENIED,
    "AccountProblem": Failure.ACCESS_DENIED,
    "InvalidAccessKeyId": Failure.CREDENTIALS,
    "SignatureDoesNotMatch": Failure.CREDENTIALS,
    "InvalidToken": Failure.CREDENTIALS,
    "InvalidClientTokenId": Failure.CREDENTIALS,
    "ExpiredToken": Failure.EXPIRED,
    "ExpiredTokenException": Failure.EXPIRED,
    "TokenRefreshRequired": Failure.EXPIRED,
    "RequestExpired": Failure.EXPIRED,
    "NoSuchKey": Failure.NOT_FOUND,
    "NoSuchUpload": Failure.NOT_FOUND,
}


def failure_of_code(code: str, status: int | None) -> Failure:
    """The kind of an S3 error response, by its code (then its HTTP status: HEAD has no body)."""
    if code in _CODES:
        return _CODES[code]
    if code == "404" or status == 404:
        return Failure.NOT_FOUND
    if code == "403" or status == 403:
        return Failure.ACCESS_DENIED
    if code in ("400", "405", "501") or status in (405, 501):
        return Failure.ENDPOINT
    return Failure.OTHER
