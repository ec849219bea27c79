"""Which of the configured clusters this replica watches, when n replicas share a fleet.

kube-state-metrics' scheme: every replica gets the same configuration and its own
``--shard=i --total-shards=n`` (or reads i from its StatefulSet pod name), keeps the clusters
whose hash lands on i, and never talks to another replica. The hash is rendezvous
(highest-random-weight) hashing of the cluster name: a cluster's replica depends only on its
own name and n, so adding or removing a cluster moves no other cluster, and adding a replica
moves only the clusters the new replica wins (about 1/(n+1) of them, where ``hash mod n``
moves about n/(n+1)).

Pure functions only: the flags and the web app call them, and so can a config reload.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

# A StatefulSet pod is `<statefulset name>-<ordinal>`.
_ORDINAL = re.compile(r"-(\d+)$")


class ShardError(ValueError):
    """A shard setting that cannot be used; the message is the one line the user sees."""


@dataclass(frozen=True)
class Shard:
    """This replica's place: shard ``index`` of ``total`` (0 of 1: unsharded, every cluster)."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ShardError(f"--total-shards must be at least 1, not {self.total}")
        if not 0 <= self.index < self.total:
            raise ShardError(
                f"--shard must be from 0 to {self.total - 1} with --total-shards={self.total}, "
                f"not {self.index}"
            )

    @property
    def sharded(self) -> bool:
        return self.total > 1


class Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def _weight(cluster: str, shard: int) -> int:
    # A stable hash (Python's hash() of a str changes with every process).
    digest = hashlib.blake2b(f"{shard}\x00{cluster}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(cluster: str, total: int) -> int:
    """The shard (0..total-1) that watches ``cluster``: the one with the highest weight."""
    return max(range(total), key=lambda shard: _weight(cluster, shard))


def clusters_of_shard(clusters: Iterable[N], shard: int, total: int) -> tuple[N, ...]:
    """The clusters shard ``shard`` of ``total`` watches, in their configured order."""
    if total <= 1:
        return tuple(clusters)
    return tuple(c for c in clusters if shard_of(c.name, total) == shard)


def ordinal_of(pod_name: str) -> int:
    """The StatefulSet ordinal at the end of a pod name (``etcd-inspector-2`` -> 2)."""
    found = _ORDINAL.search(pod_name.strip())
    if found is None:
        raise ShardError(
            f"--shard.from-pod-name: {pod_name!r} does not end in -<ordinal> "
            "(a StatefulSet pod name, from $POD_NAME or the host name)"
        )
    return int(found.group(1))


def moved(names: Sequence[str], before: int, after: int) -> list[str]:
    """The names whose shard differs between ``before`` and ``after`` total shards."""
    return [n for n in names if shard_of(n, before) != shard_of(n, after)]
