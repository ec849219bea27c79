"""The Helm chart (charts/etcd-inspector) as Helm, Kubernetes and Prometheus take it.

`helm lint --strict` and `helm template` pass for the defaults and every ci/*-values.yaml; every
object rendered passes kubernetes-validate in strict mode for the oldest and newest Kubernetes
we check, and the Prometheus-Operator objects their CRD schemas (tests/schemas/crds, with the
pruned-field check of test_manifests_crd). The PrometheusRule's groups are the rendered mixin and
pass `promtool check rules`; the dashboards ConfigMap carries the rendered dashboards. The values
schema refuses wrong types. Chart version and appVersion are the package's version. helm is
installed by scripts/bootstrap (pinned; see docs/decisions.md); a missing helm is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import heavy
from etcd_inspector import cli, mixin
from etcd_inspector.config import parse_config
from etcd_inspector.probes import REGISTRY
from test_manifests_crd import schema_for, undeclared_fields

try:
    import kubernetes_validate
except ImportError:  # a missing tool is a failure, never a skip
    pytest.fail("kubernetes-validate is not installed: pip install -e '.[test]'", pytrace=False)

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "etcd-inspector"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# Every test here renders the chart with the real helm (or reads what it rendered).
pytestmark = pytest.mark.helm
BAD_VALUES = REPO / "tests" / "testdata" / "chart" / "bad-values.yaml"
# The chart's kubeVersion floor is 1.25; these are the oldest and the newest schemas that
# kubernetes-validate ships which we check against.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
CRD_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
RELEASE, NAMESPACE = "inspector", "etcd"
FULLNAME = "inspector-etcd-inspector"
IMAGE_UID = 65532


def helm_binary() -> str:
    found = REPO / ".venv" / "bin" / "helm"
    path = str(found) if found.exists() else shutil.which("helm")
    if not path:
        pytest.fail("helm not found: run scripts/bootstrap (it installs a pinned helm)")
    return path


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    heavy.require("helm", "runs the real helm")
    # Helm's caches and config in a private place: template and lint need no repositories.
    home = REPO / ".venv" / "helm-home"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@cache
def render_text(*values_files: Path, sets: tuple[str, ...] = ()) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for values in values_files:
        args += ["--values", str(values)]
    for assignment in sets:
        args += ["--set", assignment]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def render(*values_files: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render_text(*values_files, sets=sets)) if d]


def the(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def container(pod_spec: dict[str, Any], name: str = "etcd-inspector") -> dict[str, Any]:
    (found,) = [c for c in pod_spec["containers"] if c["name"] == name]
    return found


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
    return value


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]
    return found


def ci_id(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


def raw_manifest(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((REPO / "servicemonitors" / name).read_text()))


# --------------------------------------------------------------------------- helm itself


def test_chart_version_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["version"] == package
    assert chart["appVersion"] == package
    assert chart["name"] == "etcd-inspector"
    assert chart["apiVersion"] == "v2"


def test_there_are_ci_values_for_the_main_combinations() -> None:
    assert {ci_id(p) for p in CI_VALUES} >= {
        "default", "kube-prometheus-stack", "web-config", "kubeadm", "external-etcd",
        "config-file",
        "sharded-fleet",
    }  # fmt: skip


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=["no-values", *map(ci_id, CI_VALUES)])
def test_helm_lint_strict(values: Path | None) -> None:
    out = helm("lint", "--strict", str(CHART), *(["--values", str(values)] if values else []))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout, out.stdout


# --------------------------------------------------------------------------- schemas


def validate_kubernetes(obj: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path)
        pytest.fail(f"{version} {obj['kind']}/{obj['metadata']['name']}: {where}: {e.message}")


def validate_crd(obj: dict[str, Any]) -> None:
    schema = schema_for(obj["kind"])
    jsonschema.validate(obj, schema, cls=jsonschema.Draft7Validator)
    assert not undeclared_fields(obj, schema), (obj["kind"], undeclared_fields(obj, schema))


@pytest.mark.parametrize("values", CI_VALUES, ids=map(ci_id, CI_VALUES))
def test_every_rendered_object_passes_its_schema(values: Path) -> None:
    objects = render(values)
    assert objects
    for obj in objects:
        assert obj["metadata"]["namespace"], obj["kind"]
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            assert obj["kind"] in CRD_KINDS
            validate_crd(obj)
        else:
            for version in KUBERNETES_VERSIONS:
                validate_kubernetes(obj, version)


def test_strict_validation_would_catch_a_typo() -> None:
    deployment = workload(render(CI_VALUES[0]))
    container(deployment["spec"]["template"]["spec"])["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFS"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


BAD = {
    "replicas: two": "/replicas",
    "replicas: '2'": "/replicas",
    "mode: sidecar": "/mode",
    "etcd: {endpoints: [etcd-0:2379]}": "/etcd/endpoints/0",
    "etcd: {endpoints: https://etcd-0:2379}": "/etcd/endpoints",
    "serviceMonitor: {enabled: 'yes'}": "/serviceMonitor/enabled",
    "serviceMonitor: {interval: 30}": "/serviceMonitor/interval",
    "service: {port: 99790}": "/service/port",
    "extraArgs: [--log.level, debug]": "/extraArgs/1",
    "replica: 2": "replica",  # a typo: unknown keys are refused
    "config: {inspections: {}}": "inspections",  # not a section of the config file
    "shards: 0": "/shards",
    "config: {clusters: []}": "/config/clusters",
}


@pytest.mark.parametrize(("text", "where"), BAD.items(), ids=list(BAD))
def test_the_values_schema_refuses_wrong_values(text: str, where: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(text + "\n")
    out = helm("template", RELEASE, str(CHART), "--values", str(values))
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr, out.stderr
    assert where in out.stderr, out.stderr


def test_the_bad_values_file_is_refused() -> None:
    out = helm("lint", "--strict", str(CHART), "--values", str(BAD_VALUES))
    assert out.returncode != 0
    assert "got string, want integer" in out.stdout + out.stderr


# --------------------------------------------------------------------------- the mixin


def test_the_charts_copies_are_the_rendered_mixin() -> None:
    """The chart reads the rules and dashboards from files/ (Helm reads nothing outside the
    chart): they must be a fresh render. Fix with `make render` (it runs scripts/sync-chart)."""
    rendered = mixin.render()
    files = CHART / "files"
    stale = "the chart's copy is stale: run `make render`"
    assert (files / "prometheus-rules.yaml").read_text() == rendered["prometheus-rules.yaml"], stale
    dashboards = {n: d for n, d in rendered.items() if n.startswith("dashboards/")}
    assert sorted(p.name for p in (files / "dashboards").glob("*.json")) == sorted(
        Path(n).name for n in dashboards
    )
    for name, dashboard in dashboards.items():
        copy = json.loads((files / "dashboards" / Path(name).name).read_text())
        assert copy == dashboard, f"{name}: {stale}"


def test_prometheusrule_groups_are_the_rendered_mixin() -> None:
    rule = the(render(CHART / "ci" / "kube-prometheus-stack-values.yaml"), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(mixin.render()["prometheus-rules.yaml"])
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["metadata"]["namespace"] == "monitoring"


@pytest.mark.promtool
def test_prometheusrule_groups_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool not found: install Debian's prometheus package (scripts/bootstrap)")
    rule = the(render(CHART / "ci" / "kube-prometheus-stack-values.yaml"), "PrometheusRule")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    count = sum(len(g["rules"]) for g in rule["spec"]["groups"])
    assert f"SUCCESS: {count} rules found" in out.stdout


def test_dashboards_configmap_carries_the_sidecar_label_and_every_dashboard() -> None:
    configmap = the(render(CHART / "ci" / "kube-prometheus-stack-values.yaml"), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "etcd"}
    dashboards = {Path(n).name: d for n, d in mixin.render().items() if n.startswith("dashboards/")}
    assert set(configmap["data"]) == set(dashboards)
    for name, text in configmap["data"].items():
        assert json.loads(text) == dashboards[name]
    # A ConfigMap holds at most 1 MiB.
    assert len(render_text(CHART / "ci" / "kube-prometheus-stack-values.yaml")) < 1 << 20


def test_optional_objects_are_off_by_default() -> None:
    kinds = sorted(o["kind"] for o in render(CHART / "ci" / "default-values.yaml"))
    assert kinds == ["Deployment", "Service", "ServiceAccount"]


# --------------------------------------------------------------------------- the workload


def assert_hardened(pod_spec: dict[str, Any], uid: int = IMAGE_UID) -> None:
    for c in pod_spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsUser"] == uid
        assert sc["runAsNonRoot"] is (uid != 0)
        assert "command" not in c  # the image's entrypoint is etcd-inspector
        assert c["image"] == "ghcr.io/etcd-inspector/etcd-inspector:0.1.0"
        for mount in c["volumeMounts"]:
            assert mount.get("readOnly") is True or mount["mountPath"] == "/backups", mount
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values", CI_VALUES, ids=map(ci_id, CI_VALUES))
def test_every_container_is_hardened_and_its_args_parse(values: Path) -> None:
    objects = render(values)
    pods = [workload(objects)["spec"]["template"]["spec"]]
    pods += [
        o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] == "CronJob"
    ]
    daemonset = workload(objects)["kind"] == "DaemonSet"
    for pod_spec in pods:
        assert_hardened(pod_spec, uid=0 if daemonset else IMAGE_UID)
        for c in pod_spec["containers"]:
            parsed = cli.build_parser().parse_args(c["args"])
            assert parsed.command == c["args"][0]


def test_defaults_are_the_raw_deployments() -> None:
    """The chart's defaults make what servicemonitors/deployment.yaml does (same endpoints,
    port, probes, resources, security), with --etcd.tls-dir for the Secret's three files."""
    raw_deployment, raw_service = raw_manifest("deployment.yaml")
    raw = container(raw_deployment["spec"]["template"]["spec"])
    objects = render(CHART / "ci" / "default-values.yaml")
    deployment = workload(objects)
    pod_spec = deployment["spec"]["template"]["spec"]
    chart = container(pod_spec)
    for name in ("--etcd.endpoints", "--etcd.cluster-name", "--web.listen-address",
                 "--web.telemetry-path"):  # fmt: skip
        assert flag(chart["args"], name) == flag(raw["args"], name), name
    assert flag(chart["args"], "--etcd.tls-dir") == "/etc/etcd-inspector/tls"
    raw_secret = raw_deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]
    (volume,) = pod_spec["volumes"]
    assert volume["secret"] == raw_secret  # the same Secret, mode 0440
    assert pod_spec["securityContext"]["fsGroup"] == IMAGE_UID
    for key in ("ports", "resources", "livenessProbe", "readinessProbe"):
        assert chart[key] == raw[key], key
    for key, value in raw["securityContext"].items():
        if key != "seccompProfile":  # the chart sets it once, on the pod
            assert chart["securityContext"][key] == value, key
    service = the(objects, "Service")
    assert service["spec"]["ports"] == raw_service["spec"]["ports"]
    assert (
        service["spec"]["selector"].items() <= deployment["spec"]["selector"]["matchLabels"].items()
    )
    assert deployment["spec"]["replicas"] == 1


def test_service_and_servicemonitor_select_the_pods() -> None:
    objects = render(CHART / "ci" / "kube-prometheus-stack-values.yaml")
    deployment, service = workload(objects), the(objects, "Service")
    monitor = the(objects, "ServiceMonitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "10s")
    assert endpoint["honorLabels"] is True
    assert endpoint["scheme"] == "http"
    # The rules select job="etcd-inspector", whatever the release is called.
    assert {"action": "replace", "targetLabel": "job", "replacement": "etcd-inspector"} in (
        endpoint["relabelings"]
    )
    args = container(deployment["spec"]["template"]["spec"])["args"]
    assert args[-1] == "--log.level=debug"  # extraArgs come last
    assert deployment["spec"]["replicas"] == 2


def test_web_config_turns_on_https_and_basic_auth_everywhere() -> None:
    objects = render(CHART / "ci" / "web-config-values.yaml")
    pod_spec = workload(objects)["spec"]["template"]["spec"]
    c = container(pod_spec)
    assert flag(c["args"], "--web.config.file") == "/etc/etcd-inspector/web/web-config.yml"
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "web-config"]
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == "web-config"]
    assert mount["mountPath"] == "/etc/etcd-inspector/web"
    assert volume["secret"]["secretName"] == "etcd-inspector-web"
    assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    # /-/ready asks for the password under basic auth; /-/healthy does not.
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/healthy"
    (endpoint,) = the(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["serverName"] == "etcd-inspector"
    assert endpoint["basicAuth"]["password"] == {"name": "etcd-inspector-scrape", "key": "password"}


def test_web_config_basic_auth_needs_the_scrape_credentials(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "webConfig: {enabled: true, secretName: web, basicAuth: true}\n"
        "serviceMonitor: {enabled: true}\n"
    )
    out = helm("template", RELEASE, str(CHART), "--values", str(values))
    assert out.returncode != 0
    assert "serviceMonitor.basicAuth" in out.stderr


def test_kubeadm_mode_is_the_static_pod_as_a_daemonset() -> None:
    """mode: daemonset answers kubeadm's 127.0.0.1:2381: one exporter per control-plane node
    on the host network, with the static pod's arguments and kubeadm's certificates."""
    (static_pod,) = raw_manifest("kubeadm-static-pod.yaml")
    raw = container(static_pod["spec"])
    daemonset = workload(render(CHART / "ci" / "kubeadm-values.yaml"))
    assert daemonset["kind"] == "DaemonSet"
    pod_spec = daemonset["spec"]["template"]["spec"]
    chart = container(pod_spec)
    for name in ("--etcd.endpoints", "--etcd.metrics-urls", "--etcd.local-member",
                 "--etcd.ca-file", "--etcd.cert-file", "--etcd.key-file",
                 "--web.listen-address", "--web.telemetry-path"):  # fmt: skip
        assert flag(chart["args"], name) == flag(raw["args"], name), name
    assert pod_spec["hostNetwork"] is True
    assert pod_spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod_spec["priorityClassName"] == "system-node-critical"
    assert pod_spec["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert pod_spec["tolerations"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert pod_spec["volumes"] == static_pod["spec"]["volumes"]
    assert chart["volumeMounts"] == raw["volumeMounts"]
    assert chart["livenessProbe"]["httpGet"]["host"] == "127.0.0.1"
    assert "fsGroup" not in pod_spec["securityContext"]


def test_external_etcd_password_and_snapshots() -> None:
    objects = render(CHART / "ci" / "external-etcd-values.yaml")
    deployment = workload(objects)
    pod_spec = deployment["spec"]["template"]["spec"]
    args = container(pod_spec)["args"]
    assert flag(args, "--etcd.username") == "inspector"
    assert flag(args, "--etcd.password-file") == "/etc/etcd-inspector/auth/password"
    assert flag(args, "--etcd.server-name") == "etcd.example.internal"
    assert flag(args, "--etcd.metrics-urls").split(",")[0] == "http://10.0.0.11:2381/metrics"
    (password,) = [v for v in pod_spec["volumes"] if v["name"] == "etcd-password"]
    assert password["secret"]["secretName"] == "external-etcd-inspector"
    cronjob = the(objects, "CronJob")
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]  # existingClaim
    assert cronjob["spec"]["schedule"] == "0 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    job_pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    snapshot = container(job_pod, "snapshot")
    parsed = cli.build_parser().parse_args(snapshot["args"])
    assert parsed.command == "snapshot" and parsed.keep == 24
    # The same connection flags as the exporter.
    etcd_flags = [a for a in snapshot["args"] if a.startswith("--etcd.")]
    assert etcd_flags == [a for a in args if a.startswith("--etcd.") and "metrics-urls" not in a]
    (backups,) = [v for v in job_pod["volumes"] if v["name"] == "backups"]
    assert backups["persistentVolumeClaim"]["claimName"] == "etcd-snapshots"
    policy = the(objects, "NetworkPolicy")
    (to_etcd, _dns) = policy["spec"]["egress"]
    assert to_etcd["to"] == [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    assert [p["port"] for p in to_etcd["ports"]] == [2379, 2381]


def test_snapshot_makes_its_claim_unless_given_one() -> None:
    objects = render(CHART / "ci" / "default-values.yaml", sets=("snapshot.enabled=true",))
    claim = the(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == f"{FULLNAME}-snapshots"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    for version in KUBERNETES_VERSIONS:
        validate_kubernetes(claim, version)
        validate_kubernetes(the(objects, "CronJob"), version)


def test_snapshots_refuse_the_kubeadm_mode(tmp_path: Path) -> None:
    out = helm("template", RELEASE, str(CHART), "--set", "mode=daemonset",
               "--set", "snapshot.enabled=true")  # fmt: skip
    assert out.returncode != 0
    assert "snapshot.enabled" in out.stderr


def test_snapshots_to_a_bucket_take_a_credentials_secret_and_no_claim() -> None:
    objects = render(CHART / "ci" / "default-values.yaml", sets=(
        "snapshot.enabled=true", "snapshot.bucket=s3://etcd-backups/main",
        "snapshot.s3.endpointUrl=http://minio.storage:9000",
        "snapshot.s3.credentialsSecret=s3-keys", "networkPolicy.enabled=true",
        "networkPolicy.s3Ports={9000}",
    ))  # fmt: skip
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    cronjob = the(objects, "CronJob")
    job_pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    snapshot = container(job_pod, "snapshot")
    parsed = cli.build_parser().parse_args(snapshot["args"])
    assert parsed.out == "s3://etcd-backups/main"
    assert parsed.s3_endpoint_url == "http://minio.storage:9000"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in snapshot["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}
    assert env["AWS_SESSION_TOKEN"]["optional"] is True
    assert "backups" not in [v["name"] for v in job_pod["volumes"]]
    egress = the(objects, "NetworkPolicy")["spec"]["egress"]
    assert [p["port"] for p in egress[1]["ports"]] == [9000]
    for version in KUBERNETES_VERSIONS:
        validate_kubernetes(cronjob, version)

    # IRSA: no Secret, the role on the service account; the pod gets no keys.
    objects = render(CHART / "ci" / "default-values.yaml", sets=(
        "snapshot.enabled=true", "snapshot.bucket=s3://etcd-backups/main",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/backup",
    ))  # fmt: skip
    job_pod = the(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert "env" not in container(job_pod, "snapshot")
    account = the(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/backup"
    }
    assert job_pod["serviceAccountName"] == account["metadata"]["name"]


# --------------------------------------------------------------------------- the config file


def test_config_file_comes_from_a_configmap_and_a_change_rolls_the_pods(tmp_path: Path) -> None:
    values = CHART / "ci" / "config-file-values.yaml"
    objects = render(values)
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap" and "config.yml" in o["data"]]
    file = yaml.safe_load(configmap["data"]["config.yml"])
    assert file == yaml.safe_load(values.read_text())["config"]
    # What the exporter will read passes its own loader (unknown keys, durations, ...); the
    # TLS directory exists only in the pod, so it is left out here.
    local = {
        **file,
        "clusters": [{k: v for k, v in c.items() if k != "tls"} for c in file["clusters"]],
    }
    parsed = parse_config(local, REGISTRY, source="config.yml")
    assert [c.name for c in parsed.clusters] == ["main", "events"]
    pod = workload(objects)["spec"]["template"]
    args = container(pod["spec"])["args"]
    assert flag(args, "--config.file") == "/etc/etcd-inspector/config/config.yml"
    assert not [a for a in args if a.startswith("--etcd.")], args  # the file names the clusters
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    checksum = pod["metadata"]["annotations"]["checksum/config"]
    assert len(checksum) == 64

    changed = tmp_path / "changed.yaml"
    changed.write_text(values.read_text().replace("1m", "2m"))
    other = workload(render(values, changed))["spec"]["template"]["metadata"]["annotations"]
    assert other["checksum/config"] != checksum
    # Without a config file: no ConfigMap, no annotation, the flags as before.
    default = workload(render(CHART / "ci" / "default-values.yaml"))["spec"]["template"]
    assert "annotations" not in default["metadata"]
    assert flag(container(default["spec"])["args"], "--etcd.endpoints")


def test_a_config_without_clusters_keeps_the_etcd_flags(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("config: {inspection: {interval: 30s}}\npodAnnotations: {team: db}\n")
    pod = workload(render(values))["spec"]["template"]
    args = container(pod["spec"])["args"]
    assert flag(args, "--config.file") == "/etc/etcd-inspector/config/config.yml"
    assert flag(args, "--etcd.endpoints")
    assert pod["metadata"]["annotations"]["team"] == "db"
    assert "checksum/config" in pod["metadata"]["annotations"]


def test_a_sharded_fleet_is_a_statefulset_of_shards(tmp_path: Path) -> None:
    """shards: 3 with a config of clusters: a StatefulSet whose pods take their shard from
    their name; the ConfigMap is a configuration the exporter accepts, and the three ordinals'
    shares cover every cluster once."""
    from etcd_inspector.config import parse_config
    from etcd_inspector.probes import REGISTRY
    from etcd_inspector.sharding import clusters_of_shard

    objects = render(CHART / "ci" / "sharded-fleet-values.yaml")
    statefulset = workload(objects)
    assert statefulset["kind"] == "StatefulSet"
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["serviceName"] == the(objects, "Service")["metadata"]["name"]
    pod_spec = statefulset["spec"]["template"]["spec"]
    c = container(pod_spec)
    assert flag(c["args"], "--total-shards") == "3"
    assert "--shard.from-pod-name" in c["args"]
    assert not [a for a in c["args"] if a.startswith("--etcd.")]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c[
        "env"
    ]
    path = flag(c["args"], "--config.file")
    (mount,) = [m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    configmap = the(objects, "ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    raw = yaml.safe_load(configmap["data"][path.rsplit("/", 1)[1]])
    for cluster in raw["clusters"]:  # the TLS directory exists only in the pod
        cluster.pop("tls")
    config = parse_config(raw, REGISTRY, source="configmap")
    names = [cl.name for cl in config.clusters]
    shares = [[cl.name for cl in clusters_of_shard(config.clusters, i, 3)] for i in range(3)]
    assert sorted(n for share in shares for n in share) == sorted(names)
    # Prometheus scrapes every replica: the Service selects the StatefulSet's pods.
    service = the(objects, "Service")
    assert (
        service["spec"]["selector"].items()
        <= statefulset["spec"]["selector"]["matchLabels"].items()
    )


def test_shards_need_a_config_of_clusters(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("shards: 2\n")
    out = helm("template", RELEASE, str(CHART), "--values", str(values))
    assert out.returncode != 0
    assert "shards > 1: needs mode deployment and a config with clusters" in out.stderr, out.stderr
