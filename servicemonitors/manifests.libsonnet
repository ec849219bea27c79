// Deployment manifests under the hidden field `manifests`: a ServiceMonitor for the exporter
// run as a Deployment, a PodMonitor for the exporter run as a sidecar of the etcd pods, a
// PrometheusRule with every alert and recording rule, a Prometheus configuration for VMs
// (static targets), and the sidecar itself (sidecar.libsonnet).
{
  local c = $._config,
  local interval = '%ds' % c.scrape_interval_seconds,
  // The exporter bounds its work by Prometheus' scrape timeout header; leave it most of the
  // interval because it fetches every member's /metrics within one scrape.
  local timeout = '%ds' % std.max(c.scrape_interval_seconds - 5, 5),
  local labels = { 'app.kubernetes.io/name': 'etcd-inspector', 'app.kubernetes.io/part-of': 'etcd-inspector' } + c.prometheus_operator_labels,
  local endpoint = {
    path: c.exporter_metrics_path,
    interval: interval,
    scrapeTimeout: timeout,
    // The exporter's `cluster` and `member` labels must win over target labels of the same
    // name, or they would be renamed exported_cluster / exported_member.
    honorLabels: true,
    // One job name whatever the Service or pod is called; etcd_selector and
    // exporter_selector match it.
    relabelings: [{ action: 'replace', targetLabel: 'job', replacement: c.exporter_job }],
  },

  manifests+:: {
    serviceMonitor: {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: 'etcd-inspector', namespace: c.namespace, labels: labels },
      spec: {
        selector: { matchLabels: c.exporter_service_labels },
        namespaceSelector: { matchNames: c.monitored_namespaces },
        endpoints: [endpoint { port: 'metrics' }],
      },
    },

    podMonitor: {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: { name: 'etcd-inspector-sidecar', namespace: c.namespace, labels: labels },
      spec: {
        selector: { matchLabels: c.sidecar_pod_labels },
        namespaceSelector: { matchNames: c.monitored_namespaces },
        podMetricsEndpoints: [endpoint { port: 'inspector' }],
      },
    },

    prometheusRule: {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'etcd-inspector', namespace: c.namespace, labels: labels },
      spec: { groups: $.prometheusAlerts.groups + $.prometheusRules.groups },
    },

    // A complete prometheus.yml for the exporter on a VM; rule_files is the plain rule file
    // `etcd-inspector generate` writes beside it.
    scrapeConfig: {
      global: { scrape_interval: interval, evaluation_interval: interval },
      rule_files: ['prometheus-rules.yaml'],
      scrape_configs: [{
        job_name: c.exporter_job,
        honor_labels: true,
        metrics_path: c.exporter_metrics_path,
        scrape_interval: interval,
        scrape_timeout: timeout,
        static_configs: [{ targets: c.static_exporter_targets }],
      }],
    },

    // Comment lines written at the top of each generated file.
    comments:: {
      'scrape-config.yaml': |||
        Prometheus configuration for etcd-inspector on VMs (static targets). Start the exporter
        next to etcd with the members' client endpoints and etcd's client certificates:
          etcd-inspector run --etcd.endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379 \
            --etcd.ca-file=/etc/etcd/pki/ca.crt --etcd.cert-file=/etc/etcd/pki/client.crt \
            --etcd.key-file=/etc/etcd/pki/client.key --etcd.cluster-name=%(etcd_cluster_name)s \
            --web.listen-address=:%(exporter_port)d
        Check it with: promtool check config scrape-config.yaml
      ||| % c,
      'servicemonitor.yaml': 'ServiceMonitor for etcd-inspector run as a Deployment behind a Service\nwith a port named "metrics" (%d).\n' % c.exporter_port,
      'podmonitor.yaml': 'PodMonitor for etcd-inspector run as a sidecar of the etcd pods (sidecar.yaml),\nport "inspector" (%d).\n' % c.exporter_port,
      'prometheusrule.yaml': 'Every etcd-inspector alert and recording rule, for Prometheus-Operator.\n',
      'prometheus-rules.yaml': 'Every etcd-inspector alert and recording rule, as a plain Prometheus rule file.\n',
      'sidecar.yaml': |||
        etcd-inspector as a sidecar of each etcd member, talking to its member on 127.0.0.1 with
        etcd's client certificates. Two examples, one per document:
          1. an etcd StatefulSet: kubectl -n etcd patch statefulset etcd --patch-file FILE
             (save the first document as FILE); the client certificate comes from the Secret
             %(sidecar_tls_secret)s (ca.crt, tls.crt, tls.key).
          2. a kubeadm static pod: merge the container and volume into
             /etc/kubernetes/manifests/etcd.yaml on each control-plane node; it uses kubeadm's
             healthcheck client certificate from %(kubeadm_etcd_pki_dir)s.
        Scrape the sidecars with podmonitor.yaml.
      ||| % c,
    },
  },
}
+ (import 'sidecar.libsonnet')
