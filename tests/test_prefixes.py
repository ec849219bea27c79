"""Prefix groups (pure)."""

from __future__ import annotations

import pytest

from etcd_inspector.keyspace.prefixes import OTHER, ROOT, PrefixRules, group_of, prefix_of

K8S = PrefixRules()
PLAIN = PrefixRules(depth=2, kubernetes=False)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # built-in resources are stored under the resource name, whatever their API group
        (b"/registry/pods/default/web-0", "/registry/pods/"),
        (b"/registry/deployments/kube-system/coredns", "/registry/deployments/"),
        (b"/registry/namespaces/default", "/registry/namespaces/"),
        (b"/registry/ranges/serviceips", "/registry/ranges/"),
        # a dotted segment is an API group: group and resource
        (b"/registry/apps.example.com/widgets/ns/w1", "/registry/apps.example.com/widgets/"),
        (b"/registry/apiregistration.k8s.io/apiservices/v1.",
         "/registry/apiregistration.k8s.io/apiservices/"),
        # too short for the rule: the key's own directory
        (b"/registry/pods", "/registry/"),
        (b"/registry/apps.example.com/widgets", "/registry/apps.example.com/"),
        # outside /registry/: the depth rule
        (b"/app/config/x/y", "/app/config/"),
        (b"/registry2/pods/x", "/registry2/pods/"),
    ],
)  # fmt: skip
def test_kubernetes_rules(key: bytes, expected: str) -> None:
    assert prefix_of(key, K8S) == expected


@pytest.mark.parametrize(
    ("key", "depth", "expected"),
    [
        (b"/a/b/c/d", 1, "/a/"),
        (b"/a/b/c/d", 2, "/a/b/"),
        (b"/a/b/c/d", 3, "/a/b/c/"),
        (b"/a/b/c/d", 4, "/a/b/c/"),  # the last segment is the key's name, not a directory
        (b"/a/b", 2, "/a/"),
        (b"/a", 2, "/"),
        (b"a/b/c", 2, "a/b/"),  # no leading '/'
        (b"a/b", 2, "a/"),
        (b"plainkey", 2, ROOT),
        (b"/a/b/", 2, "/a/b/"),
    ],
)
def test_depth_rule(key: bytes, depth: int, expected: str) -> None:
    assert prefix_of(key, PrefixRules(depth=depth, kubernetes=False)) == expected


def test_without_kubernetes_registry_is_plain_depth() -> None:
    key = b"/registry/apps.example.com/widgets/ns/w1"
    assert prefix_of(key, PLAIN) == "/registry/apps.example.com/"
    assert prefix_of(key, K8S) == "/registry/apps.example.com/widgets/"


def test_labels_are_valid_utf8_for_any_bytes() -> None:
    label = prefix_of(b"/t\xff\xfe/\x00x/y", PLAIN)
    assert label == "/t\\xff\\xfe/\\x00x/"
    label.encode("utf-8")  # would raise on a lone surrogate


def test_special_labels_cannot_be_real_groups() -> None:
    # Real groups end with '/'; the special labels do not.
    assert prefix_of(b"<other>", PLAIN) == ROOT
    assert not ROOT.endswith("/") and not OTHER.endswith("/")


@pytest.mark.parametrize(
    ("key", "rules", "closed"),
    [
        (b"/a/b/c", PLAIN, True),
        (b"/a/b", PLAIN, False),  # '/a/b/c' also starts with '/a/' but belongs to '/a/b/'
        (b"plain", PLAIN, False),
        (b"/registry/pods/ns/p", K8S, True),
        (b"/registry/x.io/things/t", K8S, True),
        (b"/registry/x.io/things", K8S, False),
    ],
)
def test_closed_groups(key: bytes, rules: PrefixRules, closed: bool) -> None:
    assert group_of(key, rules)[1] is closed


def test_closed_group_holds_every_key_that_starts_with_it() -> None:
    keys = [
        b"/a/b/c", b"/a/b/c/d/e", b"/a/b/zz", b"/a/b/", b"/registry/pods/x/y",
        b"/registry/pods/x", b"/registry/x.io/r/a/b", b"/registry/x.io/r/",
    ]  # fmt: skip
    for rules in (K8S, PLAIN, PrefixRules(depth=3, kubernetes=False)):
        for key in keys:
            group, closed = group_of(key, rules)
            if closed:
                for other in keys:
                    if other.startswith(group):
                        assert group_of(other, rules)[0] == group, (rules, key, other)


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        PrefixRules(depth=0)
