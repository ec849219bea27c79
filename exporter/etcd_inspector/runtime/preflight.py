"""`run --config.check`: beyond the files, can the exporter talk TLS to every endpoint?

A TLS handshake per endpoint (no request is sent): a certificate, name or scheme problem is an
error, since the exporter would never get an answer; a member that does not accept connections
is only a warning, since it may simply be down right now.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from etcd_inspector.config import ClusterConfig, Config
from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.tls import handshake
from etcd_inspector.runtime.runtime import tls_files


async def _check_cluster(cluster: ClusterConfig) -> tuple[list[str], list[str]]:
    files = tls_files(cluster)
    urls = [e.url for e in cluster.endpoints]
    shakes = await asyncio.gather(*(handshake(u, files, cluster.dial_timeout) for u in urls))
    by_problem: dict[str, list[str]] = defaultdict(list)
    warnings = []
    for url, shake in zip(urls, shakes, strict=True):
        if shake.kind == ErrorKind.TLS:
            by_problem[shake.message].append(url)
        elif shake.kind is not None:
            warnings.append(f"cluster {cluster.name!r}: {url}: {shake.message}")
    # One line per problem, however many endpoints share it.
    errors = [
        f"cluster {cluster.name!r}: {', '.join(endpoints)}: {message}"
        for message, endpoints in by_problem.items()
    ]
    return errors, warnings


async def check_connections(config: Config) -> tuple[list[str], list[str]]:
    """(errors, warnings) over every cluster."""
    results = await asyncio.gather(*(_check_cluster(c) for c in config.clusters))
    return [e for r in results for e in r[0]], [w for r in results for w in r[1]]
