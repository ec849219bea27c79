"""One set of non-default mixin values for every test that renders with overrides.

A render takes about two seconds of jsonnet, and mixin.py keeps renders per process by their
values: the manifest tests (CRDs, Kubernetes objects) and generate's test share this one render
instead of making one each. Each test checks the names it cares about.
"""

from typing import Any

OVERRIDES: dict[str, Any] = {
    # the Prometheus Operator objects (test_manifests_crd.py)
    "namespace": "observability",
    "prometheus_operator_labels": {"release": "kube-prometheus-stack"},
    "scrape_interval_seconds": 15,
    "sidecar_pod_labels": {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": "main"},
    "kubeadm_pod_labels": {"app": "etcd-inspector"},
    "monitored_namespaces": ["kube-system"],
    # the workloads (test_manifests_k8s.py, test_mixin_render.py's generate)
    "exporter_port": 9100,
    "exporter_metrics_path": "/inspector/metrics",
    "exporter_namespace": "observability",
    "exporter_etcd_endpoints": ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
    "exporter_tls_secret": "etcd-client",
    "etcd_cluster_name": "main",
    "etcd_statefulset_name": "main-etcd",
    "etcd_statefulset_service": "main-etcd-headless",
    "etcd_statefulset_replicas": 5,
    "etcd_client_port": 12379,
    "cluster_domain": "k8s.example",
    "kubeadm_metrics_url": "http://127.0.0.1:12381/metrics",
}
