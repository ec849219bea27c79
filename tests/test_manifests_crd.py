"""Generated Prometheus-Operator objects validate against the operator's CRD schemas.

The schemas are prometheus-operator's CRDs, vendored in tests/schemas/crds (see its README);
missing schemas are a failure. Besides JSON-schema validation, every field must be
one the schema declares: Kubernetes silently prunes unknown fields, so a typo (`honorlabels`)
would pass validation and then do nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import heavy
from etcd_inspector import mixin
from mixin_overrides import OVERRIDES

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "tests" / "schemas" / "crds"
CRD_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
MANIFESTS = {
    "servicemonitor.yaml": "ServiceMonitor",
    "podmonitor.yaml": "PodMonitor",
    "kubeadm-podmonitor.yaml": "PodMonitor",
    "prometheusrule.yaml": "PrometheusRule",
}


def python_patterns(schema: Any) -> Any:
    """Go regexps may put a flag group after `^` (`^(?i)(abort|warn)?$`); Python wants the
    flags first. Same meaning, so the schema itself can still be checked."""
    if isinstance(schema, dict):
        return {
            key: (
                "(?i)^" + value[len("^(?i)") :]
                if key == "pattern" and isinstance(value, str) and value.startswith("^(?i)")
                else python_patterns(value)
            )
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [python_patterns(item) for item in schema]
    return schema


def schema_for(kind: str) -> dict[str, Any]:
    path = CRDS / CRD_FILES[kind]
    if not path.is_file():
        pytest.fail(f"CRD schema missing: {path} (vendored in tests/schemas/crds)")
    crd = yaml.safe_load(path.read_text())
    assert crd["spec"]["names"]["kind"] == kind
    return python_patterns(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def undeclared_fields(instance: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields Kubernetes would prune: not in `properties` of a schema that does not keep them."""
    found = []
    if isinstance(instance, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        keeps_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or (
            "additionalProperties" in schema
        )
        for key, value in instance.items():
            if properties is not None and key in properties:
                found += undeclared_fields(value, properties[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += undeclared_fields(value, schema["additionalProperties"], f"{path}.{key}")
            elif properties is not None and not keeps_unknown:
                found.append(f"{path}.{key}")
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(instance):
            found += undeclared_fields(item, schema["items"], f"{path}[{i}]")
    return found


def objects(files: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(files[name]))


@pytest.fixture(scope="module", params=["defaults", "overrides"])
def rendered(request: pytest.FixtureRequest) -> dict[str, Any]:
    return mixin.render(OVERRIDES if request.param == "overrides" else None)


@pytest.mark.parametrize(("name", "kind"), MANIFESTS.items())
def test_manifest_validates_against_its_crd(rendered: dict, name: str, kind: str) -> None:
    schema = schema_for(kind)
    (manifest,) = objects(rendered, name)
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == kind
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft7Validator)
    assert not undeclared_fields(manifest, schema), undeclared_fields(manifest, schema)


def test_the_field_check_catches_a_typo() -> None:
    schema = schema_for("ServiceMonitor")
    (monitor,) = objects(mixin.render(), "servicemonitor.yaml")
    monitor["spec"]["endpoints"][0]["honorlabels"] = True
    jsonschema.validate(monitor, schema, cls=jsonschema.Draft7Validator)  # passes: pruned
    assert undeclared_fields(monitor, schema) == [".spec.endpoints[0].honorlabels"]


def test_prometheusrule_carries_every_rule(rendered: dict) -> None:
    (rule,) = objects(rendered, "prometheusrule.yaml")
    (plain,) = objects(rendered, "prometheus-rules.yaml")
    assert rule["spec"] == plain


def test_monitors_keep_the_exporter_labels_and_job(rendered: dict) -> None:
    monitors = (
        ("servicemonitor.yaml", "endpoints"),
        ("podmonitor.yaml", "podMetricsEndpoints"),
        ("kubeadm-podmonitor.yaml", "podMetricsEndpoints"),
    )
    # The path the exporter serves, as its Deployment says (the overrides move it).
    (deployment,) = [d for d in objects(rendered, "deployment.yaml") if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    (path,) = [a.split("=", 1)[1] for a in args if a.startswith("--web.telemetry-path=")]
    assert path in ("/metrics", OVERRIDES["exporter_metrics_path"])
    for name, endpoints in monitors:
        (monitor,) = objects(rendered, name)
        (endpoint,) = monitor["spec"][endpoints]
        assert endpoint["honorLabels"] is True, name
        assert {"action": "replace", "targetLabel": "job", "replacement": "etcd-inspector"} in (
            endpoint["relabelings"]
        )
        assert endpoint["path"] == path, name


def test_overrides_reach_the_manifests() -> None:
    files = mixin.render(OVERRIDES)
    (monitor,) = objects(files, "podmonitor.yaml")
    assert monitor["metadata"]["namespace"] == "observability"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == OVERRIDES["sidecar_pod_labels"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "15s"
    assert monitor["spec"]["podMetricsEndpoints"][0]["scrapeTimeout"] == "10s"


def test_overrides_reach_the_kubeadm_podmonitor() -> None:
    (monitor,) = objects(mixin.render(OVERRIDES), "kubeadm-podmonitor.yaml")
    assert monitor["metadata"]["namespace"] == "observability"
    assert monitor["spec"]["selector"]["matchLabels"] == OVERRIDES["kubeadm_pod_labels"]
    # kubeadm's static pods are in kube-system, whatever monitored_namespaces says.
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["kube-system"]


@pytest.mark.promtool
def test_scrape_config_passes_promtool_check_config(tmp_path: Path) -> None:
    heavy.require("promtool", "runs promtool check config")
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool not found: install Debian's prometheus package (scripts/bootstrap)")
    mixin.generate(tmp_path)
    out = subprocess.run(
        [promtool, "check", "config", "scrape-config.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # The rule file beside it was checked too.
    assert "prometheus-rules.yaml" in out.stdout + out.stderr
    config = yaml.safe_load((tmp_path / "scrape-config.yaml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "etcd-inspector"
    assert job["honor_labels"] is True
