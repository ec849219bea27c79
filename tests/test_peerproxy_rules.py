"""Which bytes a peer-link rule touches (demo/faults/peerproxy), without sockets.

rafthttp: on a connection dialed by D to T, request bytes are D's outgoing (T's incoming)
messages, response bytes T's outgoing (D's incoming) ones.
"""

from __future__ import annotations

import contextlib

import pytest

from etcd_inspector.demo.faults.peerproxy import LinkRule, PeerNetwork, _Conn, parse_dialer

ROUTES = {"m1": (1, 2), "m2": (3, 4), "m3": (5, 6)}


def link(rules: dict[str, LinkRule], target: str, dialer: str | None, request: bool) -> float:
    with contextlib.closing(PeerNetwork(ROUTES, seed=1)) as net:
        net.rules.update(rules)
        delay, _, _ = net._link(_Conn(target, dialer), request)
    return delay


@pytest.mark.parametrize(
    ("direction", "target", "dialer", "from_dialer", "delayed"),
    [
        # m1's rule on connections m2 dialed to m1:
        ("in", "m1", "m2", True, True),  # m2 -> m1 request: incoming for m1
        ("in", "m1", "m2", False, False),  # m1 -> m2 response: outgoing for m1
        ("out", "m1", "m2", True, False),
        ("out", "m1", "m2", False, True),
        # m1's rule on connections m1 dialed to m2:
        ("in", "m2", "m1", True, False),  # m1 -> m2 request: outgoing for m1
        ("in", "m2", "m1", False, True),  # m2 -> m1 response: incoming for m1
        ("out", "m2", "m1", True, True),
        ("out", "m2", "m1", False, False),
        ("both", "m2", "m1", True, True),
        ("both", "m2", "m1", False, True),
        # Between the other two members, never.
        ("both", "m2", "m3", True, False),
        ("both", "m3", "m2", False, False),
        # An unattributed connection to m1 is still m1's.
        ("both", "m1", None, True, True),
    ],
)
def test_a_rule_follows_the_member_s_own_messages(
    direction: str, target: str, dialer: str | None, from_dialer: bool, delayed: bool
) -> None:
    rule = LinkRule(delay=0.1, direction=direction)  # type: ignore[arg-type]
    assert link({"m1": rule}, target, dialer, from_dialer) == (0.1 if delayed else 0.0)


def test_rules_on_both_ends_add_up() -> None:
    rules = {"m1": LinkRule(delay=0.1), "m2": LinkRule(delay=0.05)}
    assert link(rules, "m1", "m2", True) == pytest.approx(0.15)


def test_jitter_stays_within_its_bounds() -> None:
    with contextlib.closing(PeerNetwork(ROUTES, seed=7)) as net:
        net.rules["m1"] = LinkRule(delay=0.1, jitter=0.02)
        delays = [net._link(_Conn("m1", "m2"), True)[0] for _ in range(500)]
    assert 0.08 <= min(delays) < 0.085 and 0.115 < max(delays) <= 0.12


def test_the_dialer_comes_from_rafthttp_s_header() -> None:
    head = (
        b"GET /raft/stream/msgappv2/ea298746153c0bfb HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"
        b"X-Server-From: EA298746153C0BFB\r\nX-Raft-To: 58cd832d5a75015a\r\n\r\n"
    )
    assert parse_dialer(head) == "ea298746153c0bfb"
    assert parse_dialer(b"GET /raft/probing HTTP/1.1\r\nHost: x\r\n\r\n") is None
