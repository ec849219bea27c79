"""The Chaos Mesh experiments `generate` renders: valid for Chaos Mesh, and naming real alerts.

The schemas are Chaos Mesh's CRDs, vendored in tests/schemas/chaosmesh (see its README); a
missing schema is a failure. As for the Prometheus-Operator objects (test_manifests_crd.py),
every field must also be one the schema declares, since Kubernetes prunes unknown fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from etcd_inspector import mixin
from etcd_inspector.config.durations import parse_duration
from test_manifests_crd import undeclared_fields

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "tests" / "schemas" / "chaosmesh"
CRD_FILES = {
    "IOChaos": "chaos-mesh.org_iochaos.yaml",
    "NetworkChaos": "chaos-mesh.org_networkchaos.yaml",
    "PodChaos": "chaos-mesh.org_podchaos.yaml",
    "StressChaos": "chaos-mesh.org_stresschaos.yaml",
}
# The drills of issue 22: the fault each file injects, by kind and action.
EXPECTED = {
    "chaos/etcd-io-latency.yaml": ("IOChaos", "latency"),
    "chaos/etcd-network-partition.yaml": ("NetworkChaos", "partition"),
    "chaos/etcd-network-delay.yaml": ("NetworkChaos", "delay"),
    "chaos/etcd-pod-failure.yaml": ("PodChaos", "pod-failure"),
    "chaos/etcd-cpu-stress.yaml": ("StressChaos", None),
}
ALERTS_ANNOTATION = "etcd-inspector.io/expected-alerts"
KUBEADM = {
    "chaos_namespace": "kube-system",
    "chaos_etcd_pod_labels": {"component": "etcd", "tier": "control-plane"},
    "chaos_data_volume_path": "/var/lib/etcd",
    "chaos_io_delay": "2s",
}


def schema_for(kind: str, version: str) -> dict[str, Any]:
    path = SCHEMAS / CRD_FILES[kind]
    if not path.is_file():
        pytest.fail(f"CRD schema missing: {path} (vendored in tests/schemas/chaosmesh)")
    crd = yaml.safe_load(path.read_text())
    assert crd["spec"]["names"]["kind"] == kind
    assert crd["spec"]["group"] == "chaos-mesh.org"
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
    return schema


def experiments(files: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, text in files.items():
        if name.startswith(mixin.CHAOS_DIR):
            (found[name],) = yaml.safe_load_all(text)
    return found


def alert_names(files: dict[str, Any]) -> set[str]:
    rules = yaml.safe_load(files["prometheus-rules.yaml"])
    return {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }


def alert_for_seconds(files: dict[str, Any]) -> dict[str, float]:
    rules = yaml.safe_load(files["prometheus-rules.yaml"])
    longest: dict[str, float] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                seconds = parse_duration(rule.get("for", "0s"))
                longest[rule["alert"]] = max(longest.get(rule["alert"], 0.0), seconds)
    return longest


@pytest.fixture(scope="module", params=["defaults", "kubeadm"])
def rendered(request: pytest.FixtureRequest) -> dict[str, Any]:
    return mixin.render(KUBEADM if request.param == "kubeadm" else None)


def test_every_drill_is_rendered(rendered: dict[str, Any]) -> None:
    found = experiments(rendered)
    assert set(found) == set(EXPECTED)
    for name, (kind, action) in EXPECTED.items():
        assert found[name]["kind"] == kind, name
        assert found[name]["spec"].get("action") == action, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_experiment_validates_against_its_crd(rendered: dict[str, Any], name: str) -> None:
    experiment = experiments(rendered)[name]
    group, version = experiment["apiVersion"].split("/")
    assert group == "chaos-mesh.org"
    schema = schema_for(experiment["kind"], version)
    jsonschema.validate(experiment, schema, cls=jsonschema.Draft7Validator)
    assert not undeclared_fields(experiment, schema), undeclared_fields(experiment, schema)


def test_the_schema_catches_a_wrong_action() -> None:
    experiment = experiments(mixin.render())["chaos/etcd-io-latency.yaml"]
    experiment["spec"]["action"] = "slow"
    with pytest.raises(jsonschema.ValidationError, match="'slow' is not one of"):
        jsonschema.validate(experiment, schema_for("IOChaos", "v1alpha1"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_named_alert_exists_in_the_rendered_rules(rendered: dict[str, Any], name: str) -> None:
    experiment = experiments(rendered)[name]
    expected = experiment["metadata"]["annotations"][ALERTS_ANNOTATION].split(",")
    assert expected, name
    assert set(expected) <= alert_names(rendered), name
    assert experiment["metadata"]["labels"]["etcd-inspector.io/drill"] == (
        name.removeprefix("chaos/etcd-").removesuffix(".yaml")
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_fault_lasts_long_enough_for_its_alerts(rendered: dict[str, Any], name: str) -> None:
    experiment = experiments(rendered)[name]
    expected = experiment["metadata"]["annotations"][ALERTS_ANNOTATION].split(",")
    longest_for = max(alert_for_seconds(rendered)[alert] for alert in expected)
    margin = mixin.config_defaults()["chaos_fire_margin_seconds"]
    assert parse_duration(experiment["spec"]["duration"]) == longest_for + margin


def test_selectors_come_from_the_config() -> None:
    for experiment in experiments(mixin.render(KUBEADM)).values():
        spec = experiment["spec"]
        assert experiment["metadata"]["namespace"] == "kube-system"
        assert spec["selector"] == {
            "namespaces": ["kube-system"],
            "labelSelectors": {"component": "etcd", "tier": "control-plane"},
        }
        if "target" in spec:  # the member's peers: the other etcd pods
            assert spec["target"]["selector"] == spec["selector"]
        if experiment["kind"] == "IOChaos":
            assert spec["volumePath"] == "/var/lib/etcd"
            assert spec["delay"] == "2s"
            assert spec["containerNames"] == ["etcd"]


def test_default_selectors_fit_the_statefulset() -> None:
    defaults = mixin.config_defaults()
    (io,) = [e for e in experiments(mixin.render()).values() if e["kind"] == "IOChaos"]
    assert io["metadata"]["namespace"] == defaults["exporter_namespace"]
    assert io["spec"]["selector"]["labelSelectors"] == defaults["sidecar_pod_labels"]
    assert io["spec"]["volumePath"] == "/bitnami/etcd"


def test_an_unknown_alert_fails_the_rendering(tmp_path: Path) -> None:
    """The mapping is checked when rendering, not only here."""
    for path in mixin.copy_sources(tmp_path):
        if path.name == "chaos.libsonnet":
            path.write_text(path.read_text().replace("'etcdNoLeader'", "'etcdNoLeaderTypo'"))
    with pytest.raises(mixin.MixinError, match="expects alert etcdNoLeaderTypo"):
        mixin.render(source_dir=tmp_path)
