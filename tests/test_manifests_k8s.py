"""The Kubernetes workloads the mixin renders are complete, valid and able to run.

Three ways to run the exporter, each checked as Kubernetes would take it:
  deployment.yaml                 one exporter per cluster, Deployment + Service (servicemonitor)
  statefulset-sidecar-patch.yaml  a sidecar patched into an etcd StatefulSet (podmonitor)
  kubeadm-static-pod.yaml         a static pod beside kubeadm's etcd (kubeadm-podmonitor)

Every complete object (the Deployment, the Service, the static Pod, and the sample StatefulSet in
tests/testdata/k8s with the patch merged in) passes kubernetes-validate in strict mode, which
rejects unknown fields. The exporter's own `run --config.check` accepts every container's
arguments (with $(POD_NAME) expanded for each replica, and the certificate files made), so a
sidecar's --etcd.local-member is one of its endpoints. The monitors select the objects.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from etcd_inspector import cli, mixin
from etcd_inspector.demo.pki import make_pki
from mixin_overrides import OVERRIDES

try:
    import kubernetes_validate
except ImportError:  # a missing tool is a failure, never a skip
    pytest.fail("kubernetes-validate is not installed: pip install -e '.[test]'", pytrace=False)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_STATEFULSET = REPO / "tests" / "testdata" / "k8s" / "etcd-statefulset.yaml"
# The newest Kubernetes whose schemas kubernetes-validate 1.37 ships.
KUBERNETES_VERSION = "1.37.0"
IMAGE_UID = 65532  # the Dockerfile's USER
# Strategic-merge keys of the lists a StatefulSet patch touches (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
FILE_FLAGS = ("--etcd.ca-file", "--etcd.cert-file", "--etcd.key-file", "--etcd.password-file")
VAR_REF = re.compile(r"\$\((\w+)\)")


class Rendering:
    def __init__(self, values: dict[str, Any] | None) -> None:
        self.values = dict(values or {})
        self.files = mixin.render(self.values)
        self.config = {**mixin.config_defaults(), **self.values}

    def docs(self, name: str) -> list[dict[str, Any]]:
        return list(yaml.safe_load_all(self.files[name]))

    def kind(self, name: str, kind: str) -> dict[str, Any]:
        (obj,) = [d for d in self.docs(name) if d["kind"] == kind]
        return obj


@pytest.fixture(scope="module", params=["defaults", "overrides"])
def rendering(request: pytest.FixtureRequest) -> Rendering:
    return Rendering(OVERRIDES if request.param == "overrides" else None)


@pytest.fixture(scope="module")
def defaults() -> Rendering:
    return Rendering(None)


# --------------------------------------------------------------------------- helpers


def validate(obj: dict[str, Any]) -> None:
    """kubernetes-validate, strict: unknown fields are errors (the API server would drop them)."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path)
        pytest.fail(f"{obj['kind']}/{obj['metadata'].get('name')}: {where}: {e.message}")


def strategic_merge(base: Any, patch: Any) -> Any:
    """What `kubectl patch` (strategic merge) does for a patch that adds and sets fields: maps
    merge, lists with a merge key merge item by item on that key, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if key in MERGE_KEYS and isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = merge_list(merged[key], value, MERGE_KEYS[key])
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    return copy.deepcopy(patch)


def merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        index = next((i for i, old in enumerate(merged) if old.get(key) == item[key]), None)
        if index is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[index] = strategic_merge(merged[index], item)
    return merged


def sample_statefulset() -> dict[str, Any]:
    return yaml.safe_load(SAMPLE_STATEFULSET.read_text())


def merged_statefulset(rendering: Rendering) -> dict[str, Any]:
    (patch,) = rendering.docs("statefulset-sidecar-patch.yaml")
    return strategic_merge(sample_statefulset(), patch)


def inspector(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod_spec["containers"] if c["name"] == "etcd-inspector"]
    return container


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
    return value


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion in args, for the variables the container defines."""
    return [VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), arg) for arg in args]


def downward_env(container: dict[str, Any], pod: dict[str, str]) -> dict[str, str]:
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = pod[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


PEM_FILES = {"--etcd.ca-file": "ca_file", "--etcd.cert-file": "client_cert",
             "--etcd.key-file": "client_key"}  # fmt: skip
URL_HOST = re.compile(r"(https?://)([^/:,]+)")


def loopback_hosts(arg: str, hosts: dict[str, str]) -> str:
    """Each host name in an argument's URLs as its own 127.0.0.N: --config.check shakes hands
    with every endpoint, and a test talks to nothing but loopback (nothing listens there, so
    it only warns)."""

    def local(m: re.Match[str]) -> str:
        host = hosts.setdefault(m.group(2), f"127.0.0.{len(hosts) + 2}")
        return m.group(1) + host

    return URL_HOST.sub(local, arg)


def config_check(args: list[str], tmp_path: Path) -> list[str]:
    """`etcd-inspector <args> --config.check` (the image's entrypoint with the container's
    args), with the certificate files the args name made under tmp_path (real PEM files: the
    check loads them). Returns the args run. It calls the CLI's main() in this process: the
    same parse and check as the entrypoint, without a second of interpreter start per pod
    (test_cli.py runs the real entrypoint)."""
    pki = make_pki(tmp_path / "pki")
    checked = []
    hosts: dict[str, str] = {}
    for arg in args:
        name, _, value = arg.partition("=")
        if name in FILE_FLAGS:
            path = tmp_path / value.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if name in PEM_FILES:
                shutil.copy(getattr(pki, PEM_FILES[name]), path)
            else:
                path.write_text("a password\n")
            arg = f"{name}={path}"
        checked.append(loopback_hosts(arg, hosts))
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main([*checked, "--config.check"])
    assert code == 0, f"{args}:\n{stdout.getvalue()}{stderr.getvalue()}"
    assert "configuration OK" in stdout.getvalue()
    return checked


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def assert_hardened(container: dict[str, Any], pod_spec: dict[str, Any], config: dict) -> None:
    """What every etcd-inspector container has, whichever way it runs."""
    assert container["image"] == config["exporter_image"]
    assert "command" not in container  # the image's entrypoint is etcd-inspector
    args = container["args"]
    assert args[0] == "run"
    assert flag(args, "--web.listen-address") == f":{config['exporter_port']}"
    assert flag(args, "--web.telemetry-path") == config["exporter_metrics_path"]
    assert flag(args, "--etcd.cluster-name") == config["etcd_cluster_name"]
    (port,) = container["ports"]
    assert port["containerPort"] == config["exporter_port"]
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in (port["name"], port["containerPort"]), probe
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc.get("privileged") is not True
    seccomp = sc.get("seccompProfile") or pod_spec.get("securityContext", {}).get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}
    volumes = {v["name"] for v in pod_spec["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes
        assert mount["readOnly"] is True, mount


def assert_non_root(container: dict[str, Any]) -> None:
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == IMAGE_UID


def tls_files_from(container: dict[str, Any], mount_path: str) -> dict[str, str]:
    args = container["args"]
    files = {f: flag(args, f"--etcd.{f}") for f in ("ca-file", "cert-file", "key-file")}
    for value in files.values():
        assert value.startswith(mount_path + "/"), value
    return {f: value[len(mount_path) + 1 :] for f, value in files.items()}


# --------------------------------------------------------------------------- every way


def test_every_workload_object_is_valid_kubernetes(rendering: Rendering) -> None:
    objects = [
        *rendering.docs("deployment.yaml"),
        *rendering.docs("kubeadm-static-pod.yaml"),
    ]
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "Pod"]
    if not rendering.values:  # the sample StatefulSet is named as the defaults are
        objects.append(merged_statefulset(rendering))
    for obj in objects:
        validate(obj)


def test_strict_validation_rejects_an_unknown_field(defaults: Rendering) -> None:
    deployment = defaults.kind("deployment.yaml", "Deployment")
    validate(deployment)
    inspector(deployment["spec"]["template"]["spec"])["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFS"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_image_is_what_the_manifests_expect(defaults: Rendering) -> None:
    """Args start with `run` because the entrypoint is etcd-inspector; the non-root UID is the
    image's own user."""
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    assert 'ENTRYPOINT ["etcd-inspector"]' in dockerfile
    assert f"USER {IMAGE_UID}:{IMAGE_UID}" in dockerfile
    assert defaults.config["exporter_uid"] == IMAGE_UID


def test_the_patch_file_is_named_as_a_patch() -> None:
    assert (REPO / "servicemonitors" / "statefulset-sidecar-patch.yaml").is_file()
    assert mixin.committed_path("statefulset-sidecar-patch.yaml").endswith("-patch.yaml")


# --------------------------------------------------------------------------- 1. Deployment


def test_deployment_runs_one_hardened_non_root_exporter(rendering: Rendering, tmp_path) -> None:
    config = rendering.config
    deployment = rendering.kind("deployment.yaml", "Deployment")
    spec = deployment["spec"]
    assert deployment["metadata"]["namespace"] == config["exporter_namespace"]
    assert spec["replicas"] == 1
    pod = spec["template"]
    assert matches(spec["selector"]["matchLabels"], pod["metadata"]["labels"])
    pod_spec = pod["spec"]
    container = inspector(pod_spec)
    assert_hardened(container, pod_spec, config)
    assert_non_root(container)
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] == IMAGE_UID
    assert container["ports"][0]["name"] == "metrics"
    args = container["args"]
    assert flag(args, "--etcd.endpoints").split(",") == config["exporter_etcd_endpoints"]
    # The client certificate: a kubernetes.io/tls-style Secret mounted read-only.
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == config["exporter_tls_secret"]
    assert tls_files_from(container, mount["mountPath"]) == {
        "ca-file": "ca.crt", "cert-file": "tls.crt", "key-file": "tls.key",
    }  # fmt: skip
    # Mode 0440 with fsGroup = the exporter's group: the key is readable by the exporter.
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod_spec["securityContext"]["fsGroup"] == IMAGE_UID
    config_check(args, tmp_path)


def test_service_and_servicemonitor_select_the_deployment(rendering: Rendering) -> None:
    deployment = rendering.kind("deployment.yaml", "Deployment")
    service = rendering.kind("deployment.yaml", "Service")
    (monitor,) = rendering.docs("servicemonitor.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert matches(service["spec"]["selector"], pod_labels)
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics"
    assert (
        port["targetPort"] == inspector(deployment["spec"]["template"]["spec"])["ports"][0]["name"]
    )
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    assert monitor["spec"]["endpoints"][0]["port"] == port["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == rendering.config["exporter_metrics_path"]


# --------------------------------------------------------------------------- 2. StatefulSet sidecar


def test_sidecar_patch_merges_into_an_etcd_statefulset(defaults: Rendering) -> None:
    sample = sample_statefulset()
    merged = merged_statefulset(defaults)
    validate(merged)
    pod_spec = merged["spec"]["template"]["spec"]
    assert [c["name"] for c in pod_spec["containers"]] == ["etcd", "etcd-inspector"]
    # etcd itself is untouched: the patch only adds.
    assert pod_spec["containers"][0] == sample["spec"]["template"]["spec"]["containers"][0]
    assert pod_spec["securityContext"] == sample["spec"]["template"]["spec"]["securityContext"]
    assert [v["name"] for v in pod_spec["volumes"]] == [
        *(v["name"] for v in sample["spec"]["template"]["spec"]["volumes"]),
        "etcd-inspector-tls",
    ]
    container = inspector(pod_spec)
    assert_hardened(container, pod_spec, defaults.config)
    assert_non_root(container)
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == defaults.config["sidecar_tls_secret"]
    # No fsGroup of ours in etcd's pod: the files must be readable by any UID.
    assert volume["secret"]["defaultMode"] == 0o444
    assert tls_files_from(container, mount["mountPath"]) == {
        "ca-file": "ca.crt", "cert-file": "tls.crt", "key-file": "tls.key",
    }  # fmt: skip


def test_the_patch_fits_the_sample_statefulset(defaults: Rendering) -> None:
    """The names the patch builds member URLs from are the StatefulSet's own."""
    sample = sample_statefulset()
    (patch,) = defaults.docs("statefulset-sidecar-patch.yaml")
    assert patch["metadata"]["name"] == sample["metadata"]["name"]
    config = defaults.config
    assert config["etcd_statefulset_name"] == sample["metadata"]["name"]
    assert config["etcd_statefulset_service"] == sample["spec"]["serviceName"]
    assert config["etcd_statefulset_replicas"] == sample["spec"]["replicas"]
    etcd = sample["spec"]["template"]["spec"]["containers"][0]
    client = next(p for p in etcd["ports"] if p["name"] == "client")
    assert config["etcd_client_port"] == client["containerPort"]
    advertised = next(e["value"] for e in etcd["env"] if e["name"] == "ETCD_ADVERTISE_CLIENT_URLS")
    pod = {"metadata.name": "etcd-1", "metadata.namespace": sample["metadata"]["namespace"]}
    container = inspector(patch["spec"]["template"]["spec"])
    local = flag(expand(container["args"], downward_env(container, pod)), "--etcd.local-member")
    assert local in advertised.replace("$(MY_POD_NAME)", "etcd-1").split(",")


def test_each_sidecar_names_its_own_member(rendering: Rendering, tmp_path) -> None:
    config = rendering.config
    (patch,) = rendering.docs("statefulset-sidecar-patch.yaml")
    container = inspector(patch["spec"]["template"]["spec"])
    # Every $(VAR) in the args is one the container defines, or Kubernetes leaves it as is.
    defined = {var["name"] for var in container["env"]}
    for arg in container["args"]:
        assert set(VAR_REF.findall(arg)) <= defined, arg
    assert VAR_REF.findall(flag(container["args"], "--etcd.local-member")) == [
        "POD_NAME", "POD_NAMESPACE",
    ]  # fmt: skip
    namespace = "etcd"
    replicas = config["etcd_statefulset_replicas"]
    seen = set()
    for ordinal in range(replicas):
        pod_name = f"{config['etcd_statefulset_name']}-{ordinal}"
        pod = {"metadata.name": pod_name, "metadata.namespace": namespace}
        args = expand(container["args"], downward_env(container, pod))
        endpoints = flag(args, "--etcd.endpoints").split(",")
        local = flag(args, "--etcd.local-member")
        assert len(endpoints) == replicas
        assert local == (
            f"https://{pod_name}.{config['etcd_statefulset_service']}.{namespace}"
            f".svc.{config['cluster_domain']}:{config['etcd_client_port']}"
        )
        assert local in endpoints
        seen.add(local)
        config_check(args, tmp_path / pod_name)
    assert len(seen) == replicas


def test_podmonitor_selects_the_statefulset_pods(defaults: Rendering) -> None:
    sample = sample_statefulset()
    (monitor,) = defaults.docs("podmonitor.yaml")
    pod_labels = sample["spec"]["template"]["metadata"]["labels"]
    assert matches(monitor["spec"]["selector"]["matchLabels"], pod_labels)
    assert sample["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    container = inspector(merged_statefulset(defaults)["spec"]["template"]["spec"])
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == container["ports"][0]["name"]


# --------------------------------------------------------------------------- 3. kubeadm


def test_kubeadm_static_pod_reads_kubeadms_certificates(rendering: Rendering, tmp_path) -> None:
    config = rendering.config
    (pod,) = rendering.docs("kubeadm-static-pod.yaml")
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["namespace"] == "kube-system"
    assert pod["metadata"]["labels"] == config["kubeadm_pod_labels"]
    spec = pod["spec"]
    assert spec["hostNetwork"] is True
    assert spec["priorityClassName"] == "system-node-critical"
    # Static pods cannot use Secrets, ConfigMaps or service accounts.
    assert "serviceAccountName" not in spec
    container = inspector(spec)
    assert_hardened(container, spec, config)
    # Root (kubeadm's keys are root-only, 0600), with nothing more than a file owner has.
    sc = container["securityContext"]
    assert (sc["runAsUser"], sc["runAsNonRoot"]) == (0, False)
    (mount,) = container["volumeMounts"]
    (volume,) = spec["volumes"]
    pki = "/etc/kubernetes/pki/etcd"
    assert mount == {"name": volume["name"], "mountPath": pki, "readOnly": True}
    assert volume["hostPath"] == {"path": pki, "type": "Directory"}
    assert tls_files_from(container, pki) == {
        "ca-file": "ca.crt",
        "cert-file": "healthcheck-client.crt",
        "key-file": "healthcheck-client.key",
    }
    args = container["args"]
    client = f"https://127.0.0.1:{config['etcd_client_port']}"
    assert flag(args, "--etcd.endpoints") == client
    assert flag(args, "--etcd.local-member") == client
    assert flag(args, "--etcd.metrics-urls") == config["kubeadm_metrics_url"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["host"] == "127.0.0.1"
    config_check(args, tmp_path)


def test_kubeadm_defaults_match_kubeadm(defaults: Rendering) -> None:
    (pod,) = defaults.docs("kubeadm-static-pod.yaml")
    args = inspector(pod["spec"])["args"]
    assert "--etcd.endpoints=https://127.0.0.1:2379" in args
    assert "--etcd.local-member=https://127.0.0.1:2379" in args
    assert "--etcd.metrics-urls=http://127.0.0.1:2381/metrics" in args  # --listen-metrics-urls
    assert pod["metadata"]["labels"] == {"component": "etcd-inspector", "tier": "control-plane"}


def test_kubeadm_podmonitor_selects_the_static_pod(rendering: Rendering) -> None:
    (pod,) = rendering.docs("kubeadm-static-pod.yaml")
    (monitor,) = rendering.docs("kubeadm-podmonitor.yaml")
    assert matches(monitor["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [pod["metadata"]["namespace"]]
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == inspector(pod["spec"])["ports"][0]["name"]
    assert endpoint["path"] == rendering.config["exporter_metrics_path"]


# --------------------------------------------------------------------------- backups


def test_backup_cronjob_snapshots_into_its_claim(rendering: Rendering) -> None:
    config = rendering.config
    claim, cronjob = rendering.docs("backup-cronjob.yaml")
    assert (claim["kind"], cronjob["kind"]) == ("PersistentVolumeClaim", "CronJob")
    validate(claim)
    validate(cronjob)
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod_spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert_non_root(container)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    args = container["args"]
    assert args[0] == "snapshot"
    assert flag(args, "--etcd.endpoints").split(",") == config["exporter_etcd_endpoints"]
    out = flag(args, "--out")
    (backups,) = [m for m in container["volumeMounts"] if m["mountPath"] == out]
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == backups["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["metadata"]["namespace"] == cronjob["metadata"]["namespace"]
    # The arguments are the snapshot command's own.
    parsed = cli.build_parser().parse_args(args)
    assert parsed.command == "snapshot" and parsed.keep == config["backup_keep"]


# The bucket variant (backup_bucket): no claim, `--out s3://...`, AWS_* from a Secret, and a
# ServiceAccount that IRSA or EKS Pod Identity can give an identity.
BUCKET_VALUES: dict[str, Any] = {
    "backup_bucket": "s3://etcd-backups/prod/main",
    "backup_s3_endpoint_url": "https://minio.storage.svc:9000",
    "backup_s3_region": "eu-west-1",
    "backup_s3_credentials_secret": "etcd-backup-s3",
    "backup_service_account_annotations": {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/etcd-backups"
    },
}


@pytest.fixture(scope="module")
def bucket_rendering() -> Rendering:
    return Rendering(BUCKET_VALUES)


def test_backup_cronjob_with_a_bucket_uploads_with_the_secrets_keys(
    bucket_rendering: Rendering,
) -> None:
    account, cronjob = bucket_rendering.docs("backup-cronjob.yaml")
    assert (account["kind"], cronjob["kind"]) == ("ServiceAccount", "CronJob")
    validate(account)
    validate(cronjob)
    assert account["metadata"]["annotations"] == BUCKET_VALUES["backup_service_account_annotations"]
    assert account["metadata"]["namespace"] == cronjob["metadata"]["namespace"]
    pod_spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == account["metadata"]["name"]
    (container,) = pod_spec["containers"]
    assert_non_root(container)
    args = container["args"]
    assert flag(args, "--out") == "s3://etcd-backups/prod/main"
    assert flag(args, "--s3.endpoint-url") == "https://minio.storage.svc:9000"
    # No claim and no volume for one: only the etcd client certificate is mounted.
    assert all("persistentVolumeClaim" not in v for v in pod_spec["volumes"])
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/etc/etcd-inspector/tls"]
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_REGION"]["value"] == "eu-west-1"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("etcd-backup-s3", key)
        assert ref.get("optional", False) is (key == "AWS_SESSION_TOKEN")
    parsed = cli.build_parser().parse_args(args)
    assert parsed.command == "snapshot" and parsed.keep == bucket_rendering.config["backup_keep"]
    assert "s3://etcd-backups/prod/main" in bucket_rendering.files["backup-cronjob.yaml"]


def test_backup_cronjob_with_a_bucket_and_pod_identity_has_no_aws_keys() -> None:
    rendering = Rendering({"backup_bucket": "s3://etcd-backups/main"})
    account, cronjob = rendering.docs("backup-cronjob.yaml")
    validate(account)
    validate(cronjob)
    assert "annotations" not in account["metadata"]
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert "env" not in container
    assert flag(container["args"], "--out") == "s3://etcd-backups/main"
    assert not any(a.startswith("--s3.endpoint-url") for a in container["args"])
