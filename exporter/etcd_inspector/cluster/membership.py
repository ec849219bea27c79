"""Which members a cluster's probes talk to: the configured endpoints, plus the members the
member list names that none of them reaches (discovery, as etcdctl users expect from one
endpoint).

Configured endpoints are seeds and stay, answering or not (a fallback, and a configured
endpoint of another cluster is still reported). A discovered member is reached at the client
URL its member list entry advertises (preferring the seeds' scheme); its /metrics at that URL's
/metrics. Members that leave the member list are dropped at the next sync.

It is a live Sequence of MemberClient, so probes iterate it like the list they always had.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, overload
from urllib.parse import urlsplit

from etcd_inspector.etcd.types import MemberList, MemberStatus

if TYPE_CHECKING:  # grpc loads with the clients, not with the status probe's module
    from etcd_inspector.etcd.client import MemberClient

log = logging.getLogger(__name__)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class Membership(Sequence["MemberClient"]):
    def __init__(
        self,
        cluster: str,
        configured: Sequence[MemberClient],
        metrics_urls: Mapping[str, str],
        new_client: Callable[[str], MemberClient],
        discover: bool = True,
    ) -> None:
        self.cluster = cluster
        self.configured = list(configured)
        self.discover = discover
        self._metrics_urls = dict(metrics_urls)
        self._new_client = new_client
        self.discovered: dict[str, tuple[int, MemberClient]] = {}  # url -> (member id, client)
        self._closing: set[asyncio.Task[None]] = set()
        self.on_change: list[Callable[[], None]] = []

    # ----------------------------------------------------------------- Sequence

    @property
    def clients(self) -> list[MemberClient]:
        return [*self.configured, *(client for _, client in self.discovered.values())]

    @overload
    def __getitem__(self, index: int) -> MemberClient: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[MemberClient]: ...
    def __getitem__(self, index: int | slice) -> MemberClient | Sequence[MemberClient]:
        return self.clients[index]

    def __len__(self) -> int:
        return len(self.configured) + len(self.discovered)

    def __iter__(self) -> Iterator[MemberClient]:
        return iter(self.clients)

    # ----------------------------------------------------------------- views

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(c.endpoint for c in self.clients)

    def metrics_targets(self) -> dict[str, str]:
        """Client URL -> /metrics URL of every member."""
        return {
            c.endpoint: self._metrics_urls.get(c.endpoint, f"{c.endpoint}/metrics")
            for c in self.clients
        }

    # ----------------------------------------------------------------- discovery

    def sync(
        self, member_list: MemberList, statuses: Mapping[str, MemberStatus | None]
    ) -> list[MemberClient]:
        """Add a client for every listed member no client reaches; drop discovered ones that
        left the list. Returns the clients added."""
        if not self.discover:
            return []
        listed = {m.id for m in member_list.members}
        reached = {st.member_id for st in statuses.values() if st is not None}
        origins = {_origin(c.endpoint) for c in self.clients}
        reached |= {
            m.id for m in member_list.members if any(_origin(u) in origins for u in m.client_urls)
        }
        reached |= {member_id for member_id, _ in self.discovered.values()}
        schemes = {urlsplit(c.endpoint).scheme for c in self.configured}
        added: list[MemberClient] = []
        for member in member_list.members:
            if member.id in reached or not member.client_urls:
                continue
            urls = sorted(member.client_urls, key=lambda u: urlsplit(u).scheme not in schemes)
            url = _origin(urls[0])
            client = self._new_client(url)
            self.discovered[url] = (member.id, client)
            added.append(client)
            log.info(
                "member discovered from the member list",
                extra={"cluster": self.cluster, "member": member.name, "endpoint": url},
            )
        removed = 0
        for url, (member_id, client) in list(self.discovered.items()):
            if member_id not in listed:
                del self.discovered[url]
                removed += 1
                log.info(
                    "member left the member list", extra={"cluster": self.cluster, "endpoint": url}
                )
                task = asyncio.get_running_loop().create_task(client.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        if added or removed:
            self._changed()
        return added

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task
