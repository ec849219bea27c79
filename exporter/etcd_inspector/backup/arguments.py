"""The `snapshot` command's own flags (its etcd flags are cli.add_etcd_flags'); kept apart
from snapshot.py so that building the parser imports nothing heavy."""

from __future__ import annotations

import argparse


def add_snapshot_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("snapshot")
    g.add_argument("--out", required=True, metavar="DIR|s3://BUCKET/PREFIX",
                   help="Directory to write <cluster>-<UTC time>-r<revision>.db into, or a "
                   "bucket (and prefix) to upload <cluster>-<UTC time>.db and its .sha256 "
                   "to.")  # fmt: skip
    g.add_argument("--s3.endpoint-url", dest="s3_endpoint_url", default="", metavar="URL",
                   help="S3-compatible endpoint (MinIO, Ceph RGW, ...); default: "
                   "AWS_ENDPOINT_URL(_S3), the AWS config file's endpoint_url, else AWS "
                   "S3. Credentials: the AWS environment, config files or web "
                   "identity.")  # fmt: skip
    g.add_argument("--keep", type=int, default=None, metavar="N",
                   help="Keep the newest N snapshots of the cluster in DIR or the bucket, "
                   "delete older ones.")  # fmt: skip
    g.add_argument("--max-age", dest="max_age", default=None, metavar="DURATION",
                   help="Delete the cluster's snapshots in DIR or the bucket older than this, "
                   "e.g. 7d (the newest is always kept).")  # fmt: skip
    g.add_argument("--every", default=None, metavar="DURATION",
                   help="Take one every DURATION until stopped (a sidecar); default: once "
                   "(a CronJob).")  # fmt: skip
