"""Member discovery, etcdctl-style flags and environment, and the login backoff (no network)."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pytest

from etcd_inspector.cluster.membership import Membership
from etcd_inspector.errors import UsageError
from etcd_inspector.etcd.auth import AuthGate
from etcd_inspector.etcd.client import MemberClient, MemberInfo, MemberList, MemberStatus
from etcd_inspector.flags import add_etcd_flags, flag_overrides

SEED = "https://10.0.0.1:2379"


def member(i: int, url: str, name: str | None = None) -> MemberInfo:
    return MemberInfo(i, name or f"m{i}", (), (url,), False)


def status(member_id: int, endpoint: str = SEED) -> MemberStatus:
    return MemberStatus(endpoint, member_id, 7, 1, 2, 9, 9, 5, 1, 1, "3.5.1", False, ())


async def test_members_no_endpoint_reaches_are_added_and_dropped_when_they_leave() -> None:
    made: list[str] = []

    def new_client(url: str) -> MemberClient:
        made.append(url)
        return MemberClient(url)

    ms = Membership("c", [MemberClient(SEED)], {SEED: "http://10.0.0.1:2381/metrics"}, new_client)
    changes: list[int] = []
    ms.on_change.append(lambda: changes.append(len(ms)))
    listed = MemberList(7, (member(1, SEED), member(2, "https://10.0.0.2:2379"),
                            member(3, "https://10.0.0.3:2379")))  # fmt: skip
    added = ms.sync(listed, {SEED: status(1)})
    assert [c.endpoint for c in added] == ["https://10.0.0.2:2379", "https://10.0.0.3:2379"]
    assert ms.endpoints == (SEED, "https://10.0.0.2:2379", "https://10.0.0.3:2379")
    assert ms.metrics_targets() == {
        SEED: "http://10.0.0.1:2381/metrics",  # the configured one is kept
        "https://10.0.0.2:2379": "https://10.0.0.2:2379/metrics",
        "https://10.0.0.3:2379": "https://10.0.0.3:2379/metrics",
    }
    assert ms.sync(listed, {SEED: status(1)}) == []  # nothing new: nothing made
    assert made == ["https://10.0.0.2:2379", "https://10.0.0.3:2379"]

    # m3 removed from the cluster: its client goes; the seed stays even when it is m1 no more.
    smaller = MemberList(7, (member(1, SEED), member(2, "https://10.0.0.2:2379")))
    ms.sync(smaller, {SEED: None})
    assert ms.endpoints == (SEED, "https://10.0.0.2:2379")
    assert changes == [3, 2]
    await ms.close()


def test_a_member_reached_by_a_configured_endpoint_is_not_added_twice() -> None:
    ms = Membership("c", [MemberClient("https://etcd-a:2379")], {}, MemberClient)
    # The seed did not answer, but the list names its URL (in another case).
    listed = MemberList(7, (member(1, "HTTPS://etcd-a:2379"),))
    assert ms.sync(listed, {"https://etcd-a:2379": None}) == []


def test_discovery_off_adds_nothing() -> None:
    ms = Membership("c", [MemberClient(SEED)], {}, MemberClient, discover=False)
    assert ms.sync(MemberList(7, (member(2, "https://10.0.0.2:2379"),)), {}) == []


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_etcd_flags(parser)
    return parser.parse_args(argv)


def test_etcdctl_environment_and_scheme_less_endpoints() -> None:
    env = {
        "ETCDCTL_ENDPOINTS": "10.0.0.1:2379,10.0.0.2:2379",
        "ETCDCTL_CACERT": "/pki/ca.crt",
        "ETCDCTL_CERT": "/pki/c.crt",
        "ETCDCTL_KEY": "/pki/c.key",
        "ETCDCTL_USER": "reader",
    }
    (cluster,) = flag_overrides(parse(), env)["clusters"]
    assert cluster["endpoints"] == ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    assert cluster["tls"] == {"ca_file": "/pki/ca.crt", "cert_file": "/pki/c.crt",
                              "key_file": "/pki/c.key"}  # fmt: skip
    assert cluster["username"] == "reader"
    # A flag wins over the environment; without TLS a scheme-less endpoint is plain http.
    (cluster,) = flag_overrides(parse("--etcd.endpoints=127.0.0.1:2379"), {})["clusters"]
    assert cluster["endpoints"] == ["http://127.0.0.1:2379"]
    (cluster,) = flag_overrides(parse("--etcd.endpoints=h:1", "--etcd.tls-dir=/s"), env)[
        "clusters"
    ]
    assert cluster["endpoints"] == ["https://h:1"] and cluster["tls"]["dir"] == "/s"
    # With a config file, the shell's etcdctl setup is not a second source of clusters.
    assert "clusters" not in flag_overrides(parse("--config.file=x.yml"), env)


def test_a_password_in_etcdctl_user_is_refused() -> None:
    with pytest.raises(UsageError, match="without ':password'"):
        flag_overrides(parse("--etcd.endpoints=h:1"), {"ETCDCTL_USER": "root:secret"})


def test_discovery_flag() -> None:
    (cluster,) = flag_overrides(parse("--etcd.endpoints=h:1", "--no-etcd.discovery"), {})[
        "clusters"
    ]
    assert cluster["discover"] is False


def test_logins_back_off_after_a_wrong_password_and_retry_when_the_file_changes(
    tmp_path: Path,
) -> None:
    password = tmp_path / "password"
    password.write_text("wrong\n")
    gate = AuthGate("reader", password_file=str(password))
    assert gate.password() == "wrong" and gate.wait_seconds() == 0
    delays = []
    for _ in range(6):
        gate.failed("https://e:2379", "authentication failed")
        delays.append(gate.wait_seconds())
    # 2s, 4s, 8s ... with +-20% jitter, capped at 2 minutes.
    assert 1.5 < delays[0] < 2.5 and 50 < delays[5] <= 120 * 1.2
    assert all(b > a for a, b in itertools.pairwise(delays))
    password.write_text("right, at last\n")  # a rotated secret ends the wait at once
    assert gate.wait_seconds() == 0 and gate.password() == "right, at last"
    gate.succeeded()
    assert gate.failures == 0
