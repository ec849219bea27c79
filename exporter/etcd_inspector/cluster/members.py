"""Which etcd member sits behind which configured endpoint (pure).

The `member` label is the member's name as etcd's member list knows it, also for a member that
is down now: we match the endpoint against the member list's client URLs (so a member that never
answered still gets its name from its peers) and remember the last name we saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from etcd_inspector.etcd.types import MemberInfo, MemberList, MemberStatus


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def fallback_name(endpoint: str) -> str:
    """A label for a member we never identified: its host:port."""
    return urlsplit(endpoint).netloc or endpoint


def resolve_member_names(
    endpoints: Sequence[str],
    statuses: Mapping[str, MemberStatus | None],
    member_list: MemberList | None,
    previous: Mapping[str, str],
) -> dict[str, str]:
    by_id = {m.id: m.name for m in member_list.members if m.name} if member_list else {}
    by_url = (
        {_netloc(u): m.name for m in member_list.members if m.name for u in m.client_urls}
        if member_list
        else {}
    )
    names: dict[str, str] = {}
    for endpoint in endpoints:
        status = statuses.get(endpoint)
        name = (
            (by_id.get(status.member_id) if status else None)
            or by_url.get(_netloc(endpoint))
            or previous.get(endpoint)
            or fallback_name(endpoint)
        )
        names[endpoint] = name
    return names


def member_id_names(member_list: MemberList | None) -> dict[int, str]:
    return {m.id: m.name for m in member_list.members} if member_list else {}


def merge_member_lists(lists: Sequence[MemberList]) -> MemberList | None:
    """One list of every member the given lists name (the first list's cluster ID)."""
    if not lists:
        return None
    seen: dict[int, MemberInfo] = {}
    for member_list in lists:
        for m in member_list.members:
            seen.setdefault(m.id, m)
    return MemberList(cluster_id=lists[0].cluster_id, members=tuple(seen.values()))
