"""The S3 edge (boto3): a client configured the way every S3 tool is, listing, a multipart
upload that either completes or is aborted, and a streamed download. Blocking calls: run them
in a thread (asyncio.to_thread). boto3 rather than obstore or aiobotocore: docs/decisions.md.

Credentials and endpoint come from botocore's own chain: AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE with ~/.aws/credentials and
~/.aws/config, web identity tokens (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE: IRSA), container
credentials (EKS Pod Identity, ECS), instance metadata; AWS_ENDPOINT_URL(_S3) or `endpoint_url`
in the config file, or our own `endpoint_url` key, for S3-compatible stores (which get path-style
addressing). Every request has a connect and a read timeout. Nothing here logs a credential.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etcd_inspector.backup.objects import BucketLocation, Failure, ListedObject, failure_of_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# S3's minimum (but for the last part), and the least memory: one part's buffer, allocated once
# and sent as it is (no joined copy); 10,000 parts make 48 GiB, far over etcd's largest backend.
PART_SIZE = 5 << 20
READ_CHUNK = 1 << 20


class S3Error(Exception):
    """A failed request: its kind, and one line without credentials."""

    def __init__(self, kind: Failure, detail: str) -> None:
        super().__init__(f"{kind}: {detail}" if detail else str(kind))
        self.kind = kind
        self.detail = detail


def classify(err: Exception) -> S3Error:
    """botocore's exceptions (typed, never by message text) to our kinds."""
    import botocore.exceptions as bex

    if isinstance(err, S3Error):
        return err
    if isinstance(err, bex.ClientError):
        e = err.response.get("Error", {})
        code = str(e.get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return S3Error(failure_of_code(code, status), str(e.get("Message") or code))
    if isinstance(err, (bex.NoCredentialsError, bex.PartialCredentialsError)):
        return S3Error(Failure.CREDENTIALS, "no credentials found (AWS_ACCESS_KEY_ID, "
                       "AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, ...)")  # fmt: skip
    if isinstance(err, bex.CredentialRetrievalError):
        return S3Error(Failure.CREDENTIALS, f"cannot get credentials: {err}")
    if isinstance(err, (bex.EndpointConnectionError, bex.ConnectTimeoutError)):
        return S3Error(Failure.ENDPOINT, str(err))
    if isinstance(err, (bex.ReadTimeoutError, bex.ConnectionClosedError,
                        bex.ResponseStreamingError, bex.HTTPClientError)):  # fmt: skip
        return S3Error(Failure.NETWORK, str(err))
    if isinstance(err, ValueError):  # botocore: an endpoint URL that does not parse
        return S3Error(Failure.ENDPOINT, str(err))
    if isinstance(err, bex.BotoCoreError):
        return S3Error(Failure.OTHER, str(err))
    if isinstance(err, OSError):
        return S3Error(Failure.NETWORK, err.strerror or str(err))
    raise err


def make_client(endpoint_url: str = "") -> S3Client:
    # boto3 is imported on first use: the exporter without a bucket location never loads it.
    import boto3.session
    from botocore.config import Config

    session = boto3.session.Session()
    custom = bool(endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                  or os.environ.get("AWS_ENDPOINT_URL"))  # fmt: skip
    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"max_attempts": 3, "mode": "standard"},
        # S3-compatible stores differ on the newer flexible checksums (rclone's ranged GETs
        # trip the response validation): we keep our own SHA-256.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"} if custom else {},
    )
    kwargs: dict[str, Any] = {"config": config}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if not session.region_name:
        kwargs["region_name"] = "us-east-1"  # signing needs one; S3-compatible stores ignore it
    try:
        return session.client("s3", **kwargs)
    except Exception as err:
        raise classify(err) from None


def shared_client(endpoint_url: str = "") -> S3Client:
    """One client per endpoint and AWS environment for the process (`snapshot --every` runs for
    days): a client is thread-safe, and botocore refreshes expiring credentials (web identity)
    inside it."""
    aws = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    return _cached_client(endpoint_url, aws)


@functools.lru_cache(maxsize=4)
def _cached_client(endpoint_url: str, _aws_environment: tuple[tuple[str, str], ...]) -> S3Client:
    return make_client(endpoint_url)


def list_objects(client: S3Client, loc: BucketLocation) -> list[ListedObject]:
    found: list[ListedObject] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=loc.bucket, Prefix=loc.prefix
        ):
            for o in page.get("Contents", ()):
                found.append(ListedObject(o["Key"], o["Size"], o["LastModified"].timestamp(),
                                          o.get("ETag", "")))  # fmt: skip
    except Exception as err:
        raise classify(err) from None
    return found


def put_small(client: S3Client, loc: BucketLocation, key: str, body: bytes) -> None:
    try:
        client.put_object(Bucket=loc.bucket, Key=key, Body=body)
    except Exception as err:
        raise classify(err) from None


def delete(client: S3Client, bucket: str, keys: list[str]) -> None:
    try:
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})  # fmt: skip
    except Exception as err:
        raise classify(err) from None


def read_small(client: S3Client, bucket: str, key: str, limit: int = 4096) -> bytes:
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return body.read(limit)
        finally:
            body.close()
    except Exception as err:
        raise classify(err) from None


class MultipartUpload:
    """One object written part by part: `add` buffers at most one part; `complete` publishes it,
    `abort` (on any failure) leaves nothing behind. The SHA-256 of the whole is kept.

    Every part is copied into one bytearray of `part_size`, allocated once and handed to botocore
    as the body: no list of chunks joined into a second copy per part, and no fresh 5 MiB block
    per part for malloc to keep (5 MiB less peak memory: BENCHMARKS.md)."""

    def __init__(self, client: S3Client, bucket: str, key: str,
                 part_size: int = PART_SIZE) -> None:  # fmt: skip
        self.client = client
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.upload_id: str | None = None
        self._part = bytearray(0)  # sized on the first byte: an empty snapshot needs none
        self._filled = 0
        self._carry = b""  # what a chunk had past the full part; the next part's start
        self._parts: list[CompletedPartTypeDef] = []

    def start(self) -> None:
        try:
            r = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
        except Exception as err:
            raise classify(err) from None
        self.upload_id = r["UploadId"]

    def buffer(self, chunk: bytes) -> bool:
        """Keep `chunk` (no I/O); True when a whole part is buffered: `flush` it then."""
        assert not self._carry, "flush the full part first"
        self.sha256.update(chunk)
        self.size += len(chunk)
        self._fill(chunk)
        return self._filled >= self.part_size

    def _fill(self, data: bytes) -> None:
        if not self._part:
            self._part = bytearray(self.part_size)
        take = min(len(data), self.part_size - self._filled)
        view = memoryview(data)
        self._part[self._filled : self._filled + take] = view[:take]
        self._filled += take
        self._carry = bytes(view[take:])

    def flush(self) -> None:
        """Upload what is buffered as the next part (and every further whole part a chunk larger
        than a part left)."""
        while True:
            if self._filled < self.part_size:  # the last, short part: cut to size, not copied
                del self._part[self._filled :]
            self._upload(self._part)
            if self._filled < self.part_size:
                self._part = bytearray(0)
            self._filled = 0
            carry, self._carry = self._carry, b""
            self._fill(carry)
            if self._filled < self.part_size:
                return

    def _upload(self, body: bytearray) -> None:
        assert self.upload_id is not None
        number = len(self._parts) + 1
        # botocore sends a bytearray as it is (its validator takes bytes, bytearray or a file;
        # the stubs name only bytes); bytes would be wrapped in a BytesIO, also without a copy.
        try:
            r = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                        PartNumber=number, Body=body)  # type: ignore[arg-type]  # fmt: skip
        except Exception as err:
            raise classify(err) from None
        self._parts.append({"PartNumber": number, "ETag": r["ETag"]})

    @property
    def pending(self) -> bool:
        """Bytes buffered, or no part yet (an upload needs one, if empty)."""
        return self._filled > 0 or not self._parts

    def complete(self) -> None:
        assert self.upload_id is not None
        if self.pending:
            self.flush()
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": self._parts},
            )  # fmt: skip
        except Exception as err:
            raise classify(err) from None

    def abort(self) -> None:
        """Best effort: with the server gone the parts stay until a lifecycle rule
        (AbortIncompleteMultipartUpload) removes them; they are never an object."""
        if self.upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                               UploadId=self.upload_id)  # fmt: skip
        except Exception:  # the failure that brought us here is the one to report
            pass


@dataclass
class Download:
    """An object's bytes in chunks of at most READ_CHUNK; raises S3Error when the stream breaks."""

    client: S3Client
    bucket: str
    key: str

    def chunks(self) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
        except Exception as err:
            raise classify(err) from None
        try:
            while True:
                try:
                    chunk = body.read(READ_CHUNK)
                except Exception as err:
                    raise classify(err) from None
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()
